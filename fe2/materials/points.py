"""Closed-form material points: m points of one phase law, the material-point contract.

Used on the macro side for single-scale runs (DNS, verification) and for hierarchical FE²
(a precomputed effective tensor). States are arrays of the law's history, committed or trial.
"""

from __future__ import annotations

import numpy as np

from fe2.material_point import MaterialPointFailure
from fe2.materials.base import Material


class LawPoints:
    """m points governed by one :class:`~fe2.materials.base.Material`.

    Args:
        material: the law.
        num_points: number of points m.
        dim: spatial dimension.
        n_comp: strain components of the physics (3/6 Mandel, 4/9 for F).
    """

    def __init__(self, material: Material, num_points: int, *, dim: int, n_comp: int):
        self.material, self.dim = material, dim
        self.num_points, self.n_comp = num_points, n_comp
        self._committed = material.initial_state(dim, num_points)
        self._trial: dict[str, np.ndarray] | None = None

    def evaluate(self, strains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        result = self.material.update(np.asarray(strains, dtype=float), self._committed, self.dim)
        if not result.ok.all():
            point = int(np.flatnonzero(~result.ok)[0])
            raise MaterialPointFailure(point, "inadmissible strain (NaN or det F <= 0)")
        self._trial = result.state
        return result.stress, np.array(result.tangent)

    def commit(self) -> None:
        if self._trial is not None:
            self._committed, self._trial = self._trial, None

    def rollback(self) -> None:
        self._trial = None

    def point_fields(self) -> dict[str, np.ndarray]:
        """Scalar output per point of the committed state, name -> (m,)."""
        fields = {}
        if "equivalent_plastic_strain" in self._committed:
            fields["equivalent_plastic_strain"] = self._committed["equivalent_plastic_strain"]
        return fields
