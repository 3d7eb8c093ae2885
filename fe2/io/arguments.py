"""Numbers from the command line, checked: one-line :class:`InputError` naming the option.

argparse's own ``type=float`` errors print the usage as well; options read as text and
checked here give a single ``error: --option: ...`` line (exit code 2) and accept only finite
values.
"""

from __future__ import annotations

import math

from fe2.errors import InputError


def number(text: str | float | None, option: str, *, positive: bool = False, minimum: float | None = None) -> float:
    """A finite float from ``text``; > 0 with ``positive``; >= ``minimum`` if given."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InputError(f"{option}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{option}: must be a finite number, got {text!r}")
    if positive and not value > 0:
        raise InputError(f"{option}: must be > 0, got {value:g}")
    if minimum is not None and value < minimum:
        raise InputError(f"{option}: must be >= {minimum:g}, got {value:g}")
    return value


def integer(text: str | int, option: str, *, minimum: int) -> int:
    """An int >= ``minimum`` from ``text``."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise InputError(f"{option}: expected an integer, got {text!r}") from None
    if value < minimum:
        raise InputError(f"{option}: must be >= {minimum}, got {value}")
    return value
