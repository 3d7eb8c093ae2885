"""The examples of docs/python.md run, and print what the page says they print.

Every ```python block of the page runs, in order, in one namespace per example (a section
``## N. ...`` of the page; the blocks of a section continue each other). A ```text block
right after a python block is the output that block must print, compared line by line.
The examples check themselves with ``assert`` as well (Hill's bounds, closed forms, finite
differences of the tangent). Under ``mpiexec`` every rank runs every example: the RVE
examples on ``MPI.COMM_SELF`` (each rank its own RVE, in its own temporary directory), the
macro example on ``MPI.COMM_WORLD`` (a distributed mesh, global reactions), so every rank
must print the same lines.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "python.md"
BLOCK = re.compile(r"^```(python|text)\n(.*?)^```\n", re.S | re.M)


def examples() -> dict[str, list[tuple[str, str | None]]]:
    """Section title -> [(python source, expected output or None)] in page order."""
    text = PAGE.read_text()
    sections: dict[str, list[tuple[str, str | None]]] = {}
    parts = re.split(r"^## (\d+\..*)$", text, flags=re.M)
    for title, body in zip(parts[1::2], parts[2::2]):
        blocks = [(m.group(1), m.group(2), m.start(), m.end()) for m in BLOCK.finditer(body)]
        pairs: list[tuple[str, str | None]] = []
        for i, (kind, code, _, end) in enumerate(blocks):
            if kind != "python":
                continue
            following = blocks[i + 1] if i + 1 < len(blocks) else None
            expected = None
            if following is not None and following[0] == "text" and not body[end:following[2]].strip():
                expected = following[1]
            pairs.append((code, expected))
        if pairs:
            sections[title.strip()] = pairs
    return sections


EXAMPLES = examples()


def test_the_page_has_its_examples():
    assert len(EXAMPLES) == 3, list(EXAMPLES)  # effective tensor, RVE points, macro problem
    assert all(any(expected is not None for _, expected in blocks) for blocks in EXAMPLES.values())


@pytest.mark.parametrize("title", list(EXAMPLES))
def test_example_runs_and_prints_what_the_page_says(title):
    namespace: dict = {"__name__": "__docs__"}
    for number, (code, expected) in enumerate(EXAMPLES[title]):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"docs/python.md [{title}] block {number + 1}", "exec"), namespace)
        if expected is not None:
            printed = [line.rstrip() for line in out.getvalue().rstrip("\n").splitlines()]
            assert printed == [line.rstrip() for line in expected.rstrip("\n").splitlines()], out.getvalue()
