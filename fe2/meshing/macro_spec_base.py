"""Common parts of the macro specimen specs (:mod:`fe2.meshing.macro_specs`): the spec base
class with boundary naming and the generation driver, and the field and validation helpers
the specs share."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo

from fe2.meshing.macro_gmsh import generate_specimen

_MeshSize = Annotated[float, Field(gt=0.0, description="characteristic element length h [length]")]
_Quadrilaterals = Annotated[
    bool,
    Field(description="mesh with quadrilaterals instead of triangles (all cells, never mixed)"),
]

_Refinement = tuple[int, list[int], float, float]
"""(entity dimension 0/1, entity tags, local element length, transition distance)."""


def _cells_field(axis: str) -> Any:
    return Field(
        None, ge=1, le=100_000, validate_default=True,
        description=f"number of structured (transfinite) divisions along {axis} [-] "
        "(default: unstructured mesh of size mesh_size)",
    )


def _local_size_field(where: str) -> Any:
    return Field(
        None, gt=0.0,
        description=f"element length at the {where} [length] (default: mesh_size; "
        "must be <= mesh_size)",
    )


def _check_local_size(value: float | None, info: ValidationInfo) -> float | None:
    """A local refinement size must not exceed the global mesh size."""
    h = info.data.get("mesh_size")
    if value is not None and h is not None and value > h:
        raise ValueError(f"must be <= mesh_size = {h:g} (got {value:g}); it refines locally")
    return value


def _check_structured(axes: tuple[str, ...], value: int | None, info: ValidationInfo) -> None:
    """The cell counts are given for every axis or for none (checked on the last axis)."""
    given = {a: info.data.get(f"cells_{a}") for a in axes[:-1] if f"cells_{a}" in info.data}
    if len(given) < len(axes) - 1:
        return  # an earlier count is invalid and already reported
    given[axes[-1]] = value
    missing = [f"cells_{a}" for a, n in given.items() if n is None]
    if missing and len(missing) < len(axes):
        names = ", ".join(f"cells_{a}" for a in axes)
        raise ValueError(f"{names} must be given together (missing {', '.join(missing)})")


class _MacroSpec(BaseModel):
    """Common parts of the macro mesh specs: boundary naming and the generation driver."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    dim: ClassVar[int] = 2
    boundary_names: ClassVar[tuple[str, ...]] = ()
    """Names of the boundary parts; the facet tag of ``boundary_names[i]`` is ``i + 1``."""

    # ---- geometry, implemented by the kinds ------------------------------------------
    def exact_volume(self) -> float:
        """Area (2D) or volume (3D) of the exact geometry [length^d]."""
        raise NotImplementedError

    def exact_boundary_measures(self) -> dict[str, float]:
        """Length (2D) or area (3D) of each named boundary part of the exact geometry."""
        raise NotImplementedError

    def _build_geometry(self) -> list[int]:
        """Add the OCC geometry, synchronize; return the tags of the domain entities."""
        raise NotImplementedError

    def _facet_name(self, lo: np.ndarray, hi: np.ndarray, tol: float) -> str | None:
        """Boundary name of a facet entity from its bounding box [lo, hi] (None: unknown)."""
        raise NotImplementedError

    def _extent(self) -> float:
        """Largest edge of the bounding box [length] (for geometric tolerances)."""
        raise NotImplementedError

    # ---- mesh controls, overridden where needed --------------------------------------
    @property
    def recombine(self) -> bool:
        """Whether the cells are quadrilaterals/hexahedra instead of simplices."""
        return bool(getattr(self, "quadrilaterals", False) or getattr(self, "hexahedra", False))

    def structured_cells(self) -> tuple[int, ...] | None:
        """Divisions per axis of a structured (transfinite) mesh, or None if unstructured."""
        return None

    def _local_refinement(self, facets: dict[str, list[int]]) -> _Refinement | None:
        """Where to refine locally: the size grows from the local element length on the
        entities to mesh_size at the transition distance (gmsh Distance + Threshold field);
        None: uniform mesh_size."""
        return None

    def estimated_cells(self) -> float:
        """Rough cell count before meshing (for the limit on generated meshes).

        Structured: the divisions (x2 triangles, x6 tetrahedra per box). Unstructured:
        f V / h^d with f the cells of edge h per h^d (2.3 triangles, 8.5 tetrahedra, 1 for
        quadrilaterals/hexahedra), plus the refined band: the size grows linearly from h_l to
        h over the distance D, which adds about f L D / (h_l h) (L the refined boundary's
        length; D^2 for a refined corner).
        """
        from fe2.meshing.specs import SIMPLICES_PER_CUBE

        cells = self.structured_cells()
        if cells is not None:
            return float(math.prod(cells)) * (1 if self.recombine else {2: 2, 3: 6}[self.dim])
        per_cube = 1.0 if self.recombine else SIMPLICES_PER_CUBE[self.dim]
        h: float = self.mesh_size  # type: ignore[attr-defined]
        estimate = per_cube * self.exact_volume() / h**self.dim
        refinement = self._refined_band()
        if refinement is not None:
            entity_dim, h_local, distance = refinement
            extent = distance if entity_dim == 0 else max(self.exact_boundary_measures().values())
            estimate += per_cube * extent * distance * (h / h_local) / h**2 * h ** (2 - self.dim)
        return estimate

    def _refined_band(self) -> tuple[int, float, float] | None:
        """(entity dimension, local size, transition distance) of the local refinement."""
        refinement = self._local_refinement({name: [] for name in self.boundary_names})
        return None if refinement is None else (refinement[0], refinement[2], refinement[3])

    def boundary_tags(self) -> dict[str, int]:
        """Boundary name -> facet tag."""
        return {name: i + 1 for i, name in enumerate(self.boundary_names)}

    def cell_type(self) -> str:
        """DOLFINx cell type name of the generated cells."""
        if self.dim == 2:
            return "quadrilateral" if self.recombine else "triangle"
        return "hexahedron" if self.recombine else "tetrahedron"

    def generate(self, path: str | Path, *, binary: bool = False, verbose: bool = False) -> Path:
        """Build the specimen with gmsh/OCC and write it as MSH 4.1 to ``path`` (``.msh``;
        replaced atomically); returns the path (:func:`~fe2.meshing.macro_gmsh.generate_specimen`)."""
        return generate_specimen(self, path, binary=binary, verbose=verbose)


def _on(lo: np.ndarray, hi: np.ndarray, axis: int, value: float, tol: float) -> bool:
    """Whether the bounding box [lo, hi] lies in the plane (line) x_axis = value."""
    return abs(lo[axis] - value) <= tol and abs(hi[axis] - value) <= tol


def _within(lo: np.ndarray, hi: np.ndarray, box_lo: tuple[float, ...],
            box_hi: tuple[float, ...], tol: float) -> bool:
    """Whether the bounding box [lo, hi] lies inside [box_lo, box_hi] (first len(box) axes)."""
    return all(lo[k] >= box_lo[k] - tol and hi[k] <= box_hi[k] + tol for k in range(len(box_lo)))


def _check_size_or_cells(axes: tuple[str, ...], value: float | None,
                         info: ValidationInfo) -> float | None:
    """mesh_size (unstructured) and cells_* (structured) exclude each other; one is needed."""
    keys = [f"cells_{a}" for a in axes]
    if any(k not in info.data for k in keys):
        return value  # an invalid count is already reported
    structured = all(info.data[k] is not None for k in keys)
    names = "/".join(keys)
    if value is None and not structured:
        raise ValueError(f"is required unless {names} are given (structured mesh)")
    if value is not None and structured:
        raise ValueError(f"must not be given together with {names} "
                         "(the structured mesh has exactly those divisions)")
    return value


def _box_face(lo: np.ndarray, hi: np.ndarray, tol: float, extents: tuple[float, ...],
              names: tuple[str, ...]) -> str | None:
    """Name of an axis-aligned face: names = (x=0, x=L, y=0, y=L, [z=0, z=L])."""
    for axis, length in enumerate(extents):
        if _on(lo, hi, axis, 0.0, tol):
            return names[2 * axis]
        if _on(lo, hi, axis, length, tol):
            return names[2 * axis + 1]
    return None
