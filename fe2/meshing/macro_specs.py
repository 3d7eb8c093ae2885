r"""Pydantic specs of the macroscopic specimens ("macro meshes") for the FE² macro problem.

The shared base class and helpers are in :mod:`fe2.meshing.macro_spec_base`. Each spec is
generated with gmsh/OCC (:func:`fe2.meshing.macro_gmsh.generate_specimen`) as
a gmsh MSH 4.1 file with first-order cells and

* ONE cell physical group, tag 1, name ``"domain"``;
* one NAMED physical group per boundary part, on the boundary facets (lines in 2D,
  surfaces in 3D), tags 1..N in the order of ``spec.boundary_names``. These names are
  what boundary conditions refer to.

=================== ===== =========================================================
kind                dim   boundaries (facet tags 1, 2, ...)
=================== ===== =========================================================
``rectangle``       2     left, right, bottom, top
``plate_with_hole`` 2     left, bottom, right, top, hole
``notched_bar``     2     left, right, bottom, top, notch
``l_shape``         2     bottom, right, inner_horizontal, inner_vertical, top, left
``box``             3     left, right, front, back, bottom, top
=================== ===== =========================================================

2D meshes are all-triangle, or all-quadrilateral with ``quadrilaterals=True`` (never
mixed: a DOLFINx mesh has one cell type). The box is all-tetrahedron, or
all-hexahedron with ``hexahedra=True`` (always a structured, transfinite grid).

The specs import neither gmsh nor dolfinx at module level; the geometry builders import
gmsh when called.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import (
    BaseModel,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
)

from fe2.meshing.macro_gmsh import DOMAIN_NAME, DOMAIN_TAG
from fe2.meshing.macro_spec_base import (
    _box_face,
    _cells_field,
    _check_local_size,
    _check_size_or_cells,
    _check_structured,
    _local_size_field,
    _MacroSpec,
    _MeshSize,
    _on,
    _Quadrilaterals,
    _Refinement,
    _within,
)

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_TAG",
    "MACRO_MESH_SPECS",
    "BoxSpec",
    "LShapeSpec",
    "MacroMeshSpec",
    "NotchedBarSpec",
    "PlateWithHoleSpec",
    "RectangleSpec",
    "parse_macro_mesh_spec",
]


class RectangleSpec(_MacroSpec):
    """Rectangle [0, length] x [0, height] (strip, cantilever); structured with cells_x/cells_y.

    Boundaries: ``left`` (x=0), ``right`` (x=length), ``bottom`` (y=0), ``top`` (y=height).
    """

    type: Literal["rectangle"] = "rectangle"
    boundary_names: ClassVar[tuple[str, ...]] = ("left", "right", "bottom", "top")

    length: float = Field(2.0, gt=0.0, description="extent along x [length]")
    height: float = Field(1.0, gt=0.0, description="extent along y [length]")
    cells_x: int | None = _cells_field("x")
    cells_y: int | None = _cells_field("y")
    mesh_size: float | None = Field(
        None, gt=0.0, validate_default=True,
        description="characteristic element length h of an unstructured mesh [length] "
        "(exclusive with cells_x/cells_y)",
    )
    quadrilaterals: _Quadrilaterals = False

    @field_validator("cells_y")
    @classmethod
    def _cells_together(cls, value: int | None, info: ValidationInfo) -> int | None:
        _check_structured(("x", "y"), value, info)
        return value

    @field_validator("mesh_size")
    @classmethod
    def _size_or_cells(cls, value: float | None, info: ValidationInfo) -> float | None:
        return _check_size_or_cells(("x", "y"), value, info)

    def structured_cells(self) -> tuple[int, ...] | None:
        if self.cells_x is None or self.cells_y is None:
            return None
        return self.cells_x, self.cells_y

    def exact_volume(self) -> float:
        return self.length * self.height

    def exact_boundary_measures(self) -> dict[str, float]:
        L, H = self.length, self.height
        return {"left": H, "right": H, "bottom": L, "top": L}

    def _extent(self) -> float:
        return max(self.length, self.height)

    def _build_geometry(self) -> list[int]:
        import gmsh

        tag = gmsh.model.occ.addRectangle(0.0, 0.0, 0.0, self.length, self.height)
        gmsh.model.occ.synchronize()
        return [tag]

    def _facet_name(self, lo: np.ndarray, hi: np.ndarray, tol: float) -> str | None:
        return _box_face(lo, hi, tol, (self.length, self.height), self.boundary_names)

class PlateWithHoleSpec(_MacroSpec):
    r"""Quarter of a plate with a central circular hole (symmetry about x=0 and y=0).

    The domain is [0, width] x [0, height] minus the disc of ``radius`` at the origin.
    Boundaries: ``left`` (x=0, symmetry line above the hole), ``bottom`` (y=0, symmetry
    line right of the hole), ``right`` (x=width), ``top`` (y=height), ``hole`` (the arc).
    Area :math:`W H - \pi r^2 / 4`. ``hole_mesh_size`` is the element length on the arc;
    it grows to ``mesh_size`` at the distance ``radius`` from the arc.
    """

    type: Literal["plate_with_hole"] = "plate_with_hole"
    boundary_names: ClassVar[tuple[str, ...]] = ("left", "bottom", "right", "top", "hole")

    width: float = Field(1.0, gt=0.0, description="extent W along x of the quarter plate [length]")
    height: float = Field(1.0, gt=0.0, description="extent H along y of the quarter plate [length]")
    radius: float = Field(
        0.3, gt=0.0, description="hole radius r, 0 < r < min(width, height) [length]"
    )
    mesh_size: _MeshSize
    hole_mesh_size: float | None = _local_size_field("hole")
    quadrilaterals: _Quadrilaterals = False

    @field_validator("radius")
    @classmethod
    def _hole_inside(cls, value: float, info: ValidationInfo) -> float:
        w, h = info.data.get("width"), info.data.get("height")
        if w is not None and h is not None and value >= min(w, h):
            raise ValueError(f"must be < min(width, height) = {min(w, h):g} (got {value:g})")
        return value

    _local_size = field_validator("hole_mesh_size")(_check_local_size)

    def exact_volume(self) -> float:
        return self.width * self.height - math.pi * self.radius**2 / 4.0

    def exact_boundary_measures(self) -> dict[str, float]:
        W, H, r = self.width, self.height, self.radius
        return {"left": H - r, "bottom": W - r, "right": H, "top": W, "hole": math.pi * r / 2.0}

    def _extent(self) -> float:
        return max(self.width, self.height)

    def _build_geometry(self) -> list[int]:
        import gmsh

        occ = gmsh.model.occ
        plate = occ.addRectangle(0.0, 0.0, 0.0, self.width, self.height)
        hole = occ.addDisk(0.0, 0.0, 0.0, self.radius, self.radius)
        out, _ = occ.cut([(2, plate)], [(2, hole)])
        occ.synchronize()
        return [t for d, t in out if d == 2]

    def _facet_name(self, lo: np.ndarray, hi: np.ndarray, tol: float) -> str | None:
        name = _box_face(lo, hi, tol, (self.width, self.height), ("left", "right", "bottom", "top"))
        if name is None and _within(lo, hi, (0.0, 0.0), (self.radius, self.radius), tol):
            return "hole"
        return name

    def _local_refinement(self, facets: dict[str, list[int]]) -> _Refinement | None:
        if self.hole_mesh_size is None:
            return None
        return 1, facets["hole"], self.hole_mesh_size, self.radius


class NotchedBarSpec(_MacroSpec):
    r"""Upper half of a bar with two symmetric semicircular (U) notches (symmetry about y=0).

    The domain is [0, length] x [0, height/2] minus the disc of ``notch_radius`` centred at
    (length/2, height/2). Boundaries: ``left`` (x=0), ``right`` (x=length), ``bottom``
    (y=0, symmetry line), ``top`` (the straight parts of y=height/2), ``notch`` (the arc).
    Area :math:`L H / 2 - \pi \rho^2 / 2`. ``notch_mesh_size`` is the element length on
    the arc; it grows to ``mesh_size`` at the distance ``notch_radius`` from the arc.
    """

    type: Literal["notched_bar"] = "notched_bar"
    boundary_names: ClassVar[tuple[str, ...]] = ("left", "right", "bottom", "top", "notch")

    length: float = Field(2.0, gt=0.0, description="bar length L along x [length]")
    height: float = Field(1.0, gt=0.0, description="FULL bar height H (the mesh is y in [0, H/2]) "
                          "[length]")
    notch_radius: float = Field(
        0.2, gt=0.0, description="notch radius, < height/2 and < length/2 [length]"
    )
    mesh_size: _MeshSize
    notch_mesh_size: float | None = _local_size_field("notch")
    quadrilaterals: _Quadrilaterals = False

    @field_validator("notch_radius")
    @classmethod
    def _notch_inside(cls, value: float, info: ValidationInfo) -> float:
        L, H = info.data.get("length"), info.data.get("height")
        if H is not None and value >= H / 2.0:
            raise ValueError(f"must be < height/2 = {H / 2:g} (got {value:g})")
        if L is not None and value >= L / 2.0:
            raise ValueError(f"must be < length/2 = {L / 2:g} (got {value:g})")
        return value

    _local_size = field_validator("notch_mesh_size")(_check_local_size)

    def exact_volume(self) -> float:
        return self.length * self.height / 2.0 - math.pi * self.notch_radius**2 / 2.0

    def exact_boundary_measures(self) -> dict[str, float]:
        L, H, rho = self.length, self.height, self.notch_radius
        return {"left": H / 2, "right": H / 2, "bottom": L, "top": L - 2 * rho,
                "notch": math.pi * rho}

    def _extent(self) -> float:
        return max(self.length, self.height)

    def _build_geometry(self) -> list[int]:
        import gmsh

        occ = gmsh.model.occ
        half = occ.addRectangle(0.0, 0.0, 0.0, self.length, self.height / 2.0)
        notch = occ.addDisk(self.length / 2.0, self.height / 2.0, 0.0,
                            self.notch_radius, self.notch_radius)
        out, _ = occ.cut([(2, half)], [(2, notch)])
        occ.synchronize()
        return [t for d, t in out if d == 2]

    def _facet_name(self, lo: np.ndarray, hi: np.ndarray, tol: float) -> str | None:
        name = _box_face(lo, hi, tol, (self.length, self.height / 2.0),
                         ("left", "right", "bottom", "top"))
        if name is not None:
            return name
        c, rho = self.length / 2.0, self.notch_radius
        if _within(lo, hi, (c - rho, self.height / 2.0 - rho), (c + rho, self.height / 2.0), tol):
            return "notch"
        return None

    def _local_refinement(self, facets: dict[str, list[int]]) -> _Refinement | None:
        if self.notch_mesh_size is None:
            return None
        return 1, facets["notch"], self.notch_mesh_size, self.notch_radius


class LShapeSpec(_MacroSpec):
    """L-shaped domain [0, size]^2 minus [size/2, size] x [size/2, size].

    Boundaries: ``bottom`` (y=0), ``right`` (x=size, lower part), ``inner_horizontal``
    (y=size/2, x >= size/2), ``inner_vertical`` (x=size/2, y >= size/2), ``top``
    (y=size, x <= size/2), ``left`` (x=0). The re-entrant corner is (size/2, size/2);
    ``corner_mesh_size`` is the element length there, growing to ``mesh_size`` at the
    distance size/4 from the corner.
    """

    type: Literal["l_shape"] = "l_shape"
    boundary_names: ClassVar[tuple[str, ...]] = (
        "bottom", "right", "inner_horizontal", "inner_vertical", "top", "left",
    )

    size: float = Field(1.0, gt=0.0, description="edge length of the enclosing square [length]")
    mesh_size: _MeshSize
    corner_mesh_size: float | None = _local_size_field("re-entrant corner")
    quadrilaterals: _Quadrilaterals = False

    _local_size = field_validator("corner_mesh_size")(_check_local_size)

    def exact_volume(self) -> float:
        return 0.75 * self.size**2

    def exact_boundary_measures(self) -> dict[str, float]:
        s = self.size
        return {"bottom": s, "right": s / 2, "inner_horizontal": s / 2,
                "inner_vertical": s / 2, "top": s / 2, "left": s}

    def _extent(self) -> float:
        return self.size

    def _build_geometry(self) -> list[int]:
        import gmsh

        occ, s = gmsh.model.occ, self.size
        square = occ.addRectangle(0.0, 0.0, 0.0, s, s)
        corner = occ.addRectangle(s / 2.0, s / 2.0, 0.0, s / 2.0, s / 2.0)
        out, _ = occ.cut([(2, square)], [(2, corner)])
        occ.synchronize()
        return [t for d, t in out if d == 2]

    def _facet_name(self, lo: np.ndarray, hi: np.ndarray, tol: float) -> str | None:
        s = self.size
        names = {(1, 0.0): "bottom", (0, s): "right", (1, s / 2): "inner_horizontal",
                 (0, s / 2): "inner_vertical", (1, s): "top", (0, 0.0): "left"}
        for (axis, value), name in names.items():
            if _on(lo, hi, axis, value, tol):
                return name
        return None

    def _refined_band(self) -> tuple[int, float, float] | None:
        return None if self.corner_mesh_size is None else (0, self.corner_mesh_size, self.size / 4.0)

    def _local_refinement(self, facets: dict[str, list[int]]) -> _Refinement | None:
        import gmsh

        if self.corner_mesh_size is None:
            return None
        c, eps = self.size / 2.0, 1e-6 * self.size
        points = gmsh.model.getEntitiesInBoundingBox(c - eps, c - eps, -eps, c + eps, c + eps,
                                                     eps, dim=0)
        return 0, [t for _, t in points], self.corner_mesh_size, self.size / 4.0


class BoxSpec(_MacroSpec):
    """Box [0, lx] x [0, ly] x [0, lz]; tetrahedra, or a structured grid of hexahedra.

    Boundaries: ``left`` (x=0), ``right`` (x=lx), ``front`` (y=0), ``back`` (y=ly),
    ``bottom`` (z=0), ``top`` (z=lz). With cells_x/cells_y/cells_z the mesh is a
    structured (transfinite) grid: cells_x*cells_y*cells_z hexahedra, or six tetrahedra
    per grid cell. ``hexahedra=True`` without counts uses round(l/mesh_size) divisions.
    """

    dim: ClassVar[int] = 3

    type: Literal["box"] = "box"
    boundary_names: ClassVar[tuple[str, ...]] = ("left", "right", "front", "back", "bottom", "top")

    lx: float = Field(2.0, gt=0.0, description="extent along x [length]")
    ly: float = Field(1.0, gt=0.0, description="extent along y [length]")
    lz: float = Field(1.0, gt=0.0, description="extent along z [length]")
    cells_x: int | None = _cells_field("x")
    cells_y: int | None = _cells_field("y")
    cells_z: int | None = _cells_field("z")
    mesh_size: float | None = Field(
        None, gt=0.0, validate_default=True,
        description="characteristic element length h [length] (exclusive with "
        "cells_x/cells_y/cells_z; with hexahedra, the grid has round(l/h) divisions per edge)",
    )
    hexahedra: bool = Field(
        False, description="mesh with hexahedra (a structured grid) instead of tetrahedra"
    )

    @field_validator("cells_z")
    @classmethod
    def _cells_together(cls, value: int | None, info: ValidationInfo) -> int | None:
        _check_structured(("x", "y", "z"), value, info)
        return value

    @field_validator("mesh_size")
    @classmethod
    def _size_or_cells(cls, value: float | None, info: ValidationInfo) -> float | None:
        return _check_size_or_cells(("x", "y", "z"), value, info)

    def structured_cells(self) -> tuple[int, ...] | None:
        counts = (self.cells_x, self.cells_y, self.cells_z)
        if all(n is not None for n in counts):
            return counts  # type: ignore[return-value]
        if self.hexahedra and self.mesh_size is not None:
            return tuple(max(1, round(ext / self.mesh_size)) for ext in (self.lx, self.ly, self.lz))
        return None

    def exact_volume(self) -> float:
        return self.lx * self.ly * self.lz

    def exact_boundary_measures(self) -> dict[str, float]:
        x, y, z = self.lx, self.ly, self.lz
        return {"left": y * z, "right": y * z, "front": x * z, "back": x * z,
                "bottom": x * y, "top": x * y}

    def _extent(self) -> float:
        return max(self.lx, self.ly, self.lz)

    def _build_geometry(self) -> list[int]:
        import gmsh

        tag = gmsh.model.occ.addBox(0.0, 0.0, 0.0, self.lx, self.ly, self.lz)
        gmsh.model.occ.synchronize()
        return [tag]

    def _facet_name(self, lo: np.ndarray, hi: np.ndarray, tol: float) -> str | None:
        return _box_face(lo, hi, tol, (self.lx, self.ly, self.lz), self.boundary_names)


MacroMeshSpec = Annotated[
    RectangleSpec | PlateWithHoleSpec | NotchedBarSpec | LShapeSpec | BoxSpec,
    Field(discriminator="type"),
]
"""Any macro mesh spec, selected by its ``type`` field."""

MACRO_MESH_SPECS: dict[str, type[BaseModel]] = {
    "rectangle": RectangleSpec,
    "plate_with_hole": PlateWithHoleSpec,
    "notched_bar": NotchedBarSpec,
    "l_shape": LShapeSpec,
    "box": BoxSpec,
}

_ADAPTER: TypeAdapter[Any] = TypeAdapter(MacroMeshSpec)


def parse_macro_mesh_spec(data: Any) -> BaseModel:
    """Validate a mapping (or an existing spec) into the matching macro spec model."""
    return _ADAPTER.validate_python(data)
