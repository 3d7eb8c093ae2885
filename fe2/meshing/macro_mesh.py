"""The macro mesh as the macro problem sees it: a DOLFINx mesh with cell and named facet tags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import dolfinx.mesh


@dataclass(frozen=True)
class MacroMesh:
    """A distributed DOLFINx macro mesh with its cell and named boundary markers.

    Attributes
    ----------
    mesh : dolfinx.mesh.Mesh
        First-order mesh with one cell type; geometry has ``dim`` components.
    cell_tags : dolfinx.mesh.MeshTags
        Physical tag of every cell (1 = ``"domain"`` for generated meshes).
    facet_tags : dolfinx.mesh.MeshTags
        Physical tags of the boundary facets (dimension dim-1), local to each rank: a
        facet's tag is present on the ranks that hold the facet (in particular the
        owner of its cell), so ``ds(tag)`` integrates every boundary facet once.
    boundaries : dict[str, int]
        Boundary name -> facet tag (e.g. ``{"left": 1, "right": 2, ...}``).
    dim : int
        Geometric = topological dimension (2 or 3).
    subdomains : dict[str, int]
        Cell physical name -> cell tag (``{"domain": 1}`` for generated meshes).
    facet_sets : dict[str, numpy.ndarray] or None
        Boundary name -> local facet indices, for files whose named sets may overlap (e.g.
        Abaqus node sets); then ``facet_tags`` holds each facet's first set only.
    """

    mesh: dolfinx.mesh.Mesh
    cell_tags: dolfinx.mesh.MeshTags
    facet_tags: dolfinx.mesh.MeshTags
    boundaries: dict[str, int]
    dim: int
    subdomains: dict[str, int]
    facet_sets: dict[str, np.ndarray] | None = None

    def facets(self, name: str) -> np.ndarray:
        """Local indices of the facets of boundary ``name`` on this rank."""
        if name not in self.boundaries:
            raise KeyError(f"no boundary {name!r}; the mesh has {sorted(self.boundaries)}")
        if self.facet_sets is not None:
            return self.facet_sets[name]
        return self.facet_tags.find(self.boundaries[name])
