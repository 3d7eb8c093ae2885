"""Closed-form material points: m points of one phase law, the material-point contract.

Used on the macro side for single-scale runs (DNS, verification) and for hierarchical FE²
(a precomputed effective tensor). States are arrays of the law's history, committed or trial.
"""

from __future__ import annotations

import numpy as np

from fe2.material_point import MaterialPointFailure, MaterialPointsBase
from fe2.materials.base import Material


#: Value of a point field at points whose law does not have it (default NaN: not defined).
ABSENT = {"equivalent_plastic_strain": 0.0, "lattice_unstable": 0.0}


class LawPoints(MaterialPointsBase):
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
        self._fields: dict[str, np.ndarray] | None = None  # of the committed state, computed once
        # strains of the committed state (for outputs; unknown after restore_states until a commit)
        self._strains = np.zeros((num_points, n_comp))
        self._trial_strains: np.ndarray | None = None

    def evaluate(self, strains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        result = self.material.update(np.asarray(strains, dtype=float), self._committed, self.dim)
        if not result.ok.all():
            point = int(np.flatnonzero(~result.ok)[0])
            raise MaterialPointFailure(point, "inadmissible strain (NaN or det F <= 0)")
        self._trial, self._trial_strains = result.state, np.array(strains, dtype=float)
        return result.stress, np.array(result.tangent)

    def commit(self) -> None:
        if self._trial is not None:
            self._committed, self._trial = self._trial, None
            self._strains, self._trial_strains = self._trial_strains, None
            self._fields = None

    def rollback(self) -> None:
        self._trial, self._trial_strains = None, None

    def committed_states(self) -> list[dict[str, np.ndarray]]:
        """Per point: history variable name -> its value at the point."""
        return [{k: v[i].copy() for k, v in self._committed.items()} for i in range(self.num_points)]

    def restore_states(self, states: list[dict[str, np.ndarray]]) -> None:
        if len(states) != self.num_points:
            raise ValueError(f"expected {self.num_points} states, got {len(states)}")
        self._committed = {
            k: np.array([s[k] for s in states]).reshape(v.shape) for k, v in self._committed.items()
        }
        self._trial, self._fields = None, None
        self._strains = np.full((self.num_points, self.n_comp), np.nan)

    def point_fields(self) -> dict[str, np.ndarray]:
        """Scalar output per point of the committed state, name -> (m,) (the law's
        ``point_fields``, evaluated once per committed state); in 2D, for a law that defines
        it, ``stress_33``: the out-of-plane stress of plane strain."""
        if self._fields is None:
            self._fields = dict(self.material.point_fields(self._committed, self.dim))
            if self.dim == 2 and hasattr(self.material, "out_of_plane_stress"):
                self._fields["stress_33"] = self.material.out_of_plane_stress(self._strains, self._committed)
        return self._fields


class PhasePoints(MaterialPointsBase):
    """Points of several closed-form laws, one per phase tag (heterogeneous single-scale / DNS).

    Args:
        laws: phase tag -> law.
        point_tags: phase tag of every point, (m,).
        dim, n_comp: as for :class:`LawPoints`.
    """

    def __init__(self, laws: dict[int, Material], point_tags: np.ndarray, *, dim: int, n_comp: int):
        point_tags = np.asarray(point_tags)
        unknown = sorted(set(np.unique(point_tags).tolist()) - set(laws))
        if unknown:
            raise ValueError(f"points with phase tags {unknown} have no law")
        self.num_points, self.n_comp = len(point_tags), n_comp
        self.groups = [
            (np.flatnonzero(point_tags == tag), LawPoints(law, int(np.count_nonzero(point_tags == tag)), dim=dim, n_comp=n_comp))
            for tag, law in laws.items()
        ]

    def evaluate(self, strains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        stresses = np.empty((self.num_points, self.n_comp))
        tangents = np.empty((self.num_points, self.n_comp, self.n_comp))
        for index, points in self.groups:
            try:
                stresses[index], tangents[index] = points.evaluate(strains[index])
            except MaterialPointFailure as exc:
                raise MaterialPointFailure(int(index[exc.point]), exc.reason) from None
        return stresses, tangents

    def commit(self) -> None:
        for _, points in self.groups:
            points.commit()

    def rollback(self) -> None:
        for _, points in self.groups:
            points.rollback()

    def committed_states(self) -> list:
        states: list = [None] * self.num_points
        for index, points in self.groups:
            for i, state in zip(index, points.committed_states()):
                states[i] = state
        return states

    def restore_states(self, states: list) -> None:
        if len(states) != self.num_points:
            raise ValueError(f"expected {self.num_points} states, got {len(states)}")
        for index, points in self.groups:
            points.restore_states([states[i] for i in index])

    def point_fields(self) -> dict[str, np.ndarray]:
        """The laws' point fields; points of a law without a field get its ABSENT value."""
        fields: dict[str, np.ndarray] = {}
        for index, points in self.groups:
            for name, values in points.point_fields().items():
                fields.setdefault(name, np.full(self.num_points, ABSENT.get(name, np.nan)))[index] = values
        return fields
