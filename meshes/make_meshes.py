"""Regenerate the ready-made RVE (and macro specimen) meshes of this directory.

Usage: ``python meshes/make_meshes.py [OUTDIR]`` (default: the directory of this script).
Each mesh is equivalent to the ``fe2 mesh ...`` command printed next to it
(and listed in ``meshes/README.md``).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import fe2  # noqa: F401  (dolfinx_solver first)
from pydantic import BaseModel

from fe2.meshing import (
    Inclusion2DSpec,
    Inclusion3DSpec,
    Laminate2DSpec,
    PlateWithHoleSpec,
    RandomInclusions2DSpec,
)

MESHES: dict[str, BaseModel] = {
    "inclusion_2d": Inclusion2DSpec(volume_fraction=0.3, mesh_size=0.05),
    "random_inclusions_2d": RandomInclusions2DSpec(
        n=6, volume_fraction=0.3, seed=1, mesh_size=0.04
    ),
    "laminate_2d": Laminate2DSpec(fractions=[0.4, 0.6], mesh_size=0.1),
    "inclusion_3d": Inclusion3DSpec(volume_fraction=0.2, mesh_size=0.15),
    "plate_with_hole": PlateWithHoleSpec(mesh_size=0.08, hole_mesh_size=0.03),  # macro mesh
}


def command(spec: BaseModel, output: str) -> str:
    """The ``fe2 mesh`` command line equivalent to ``spec`` (explicitly set fields only)."""
    parts = ["fe2", "mesh", spec.type, "-o", output]  # type: ignore[attr-defined]
    for name in type(spec).model_fields:
        if name == "type" or name not in spec.model_fields_set:
            continue
        value = getattr(spec, name)
        values = value if isinstance(value, list) else [value]
        parts += [f"--{name.replace('_', '-')}", *map(str, values)]
    return " ".join(parts)


def main(outdir: Path) -> None:
    for name, spec in MESHES.items():
        path = spec.generate(outdir / f"{name}.msh")  # type: ignore[attr-defined]
        print(f"{command(spec, f'meshes/{name}.msh')}\n    -> {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
