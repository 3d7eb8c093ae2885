"""Periodic RVE meshes: gmsh/OCC generators (pydantic specs), reading into DOLFINx, CLI.

Macroscopic specimen meshes with named boundaries (:mod:`fe2.meshing.macro`): rectangle,
plate with hole, notched bar, L-shape, box.

The specs import neither gmsh nor dolfinx; the DOLFINx readers
(:mod:`fe2.meshing.io`, :mod:`fe2.meshing.measures`) are loaded on first access
(:mod:`fe2.meshing.macro` imports dolfinx inside its reader functions only).
"""

from __future__ import annotations

import importlib
from typing import Any

from fe2.meshing.macro import (
    MACRO_MESH_SPECS,
    BoxSpec,
    LShapeSpec,
    MacroMesh,
    MacroMeshSpec,
    NotchedBarSpec,
    PlateWithHoleSpec,
    RectangleSpec,
    generate_macro_mesh,
    parse_macro_mesh_spec,
    read_macro_mesh,
)
from fe2.meshing.specs import (
    MESH_SPECS,
    Inclusion2DSpec,
    Inclusion3DSpec,
    Laminate2DSpec,
    MeshSpec,
    RandomInclusions2DSpec,
    RandomInclusions3DSpec,
    parse_mesh_spec,
)

_LAZY = {
    "RveMesh": "fe2.meshing.io",
    "read_rve_mesh": "fe2.meshing.io",
    "generate_rve_mesh": "fe2.meshing.io",
    "cell_volumes": "fe2.meshing.measures",
    "phase_volumes": "fe2.meshing.measures",
    "phase_fractions": "fe2.meshing.measures",
}

__all__ = [
    "MESH_SPECS",
    "Inclusion2DSpec",
    "Inclusion3DSpec",
    "Laminate2DSpec",
    "MeshSpec",
    "RandomInclusions2DSpec",
    "RandomInclusions3DSpec",
    "parse_mesh_spec",
    "MACRO_MESH_SPECS",
    "BoxSpec",
    "LShapeSpec",
    "MacroMesh",
    "MacroMeshSpec",
    "NotchedBarSpec",
    "PlateWithHoleSpec",
    "RectangleSpec",
    "generate_macro_mesh",
    "parse_macro_mesh_spec",
    "read_macro_mesh",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
