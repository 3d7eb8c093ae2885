"""Cauchy-Born lattice law (finite strain): a Bravais lattice with a pair potential.

W(F) = 1/(2 Omega0) sum_b phi(|F R_b|), P = dW/dF and A = dP/dF in closed form (see
:mod:`fe2.lattice.cauchy_born`); F and P flattened row-major as for every finite-strain law.
A 2D lattice is a planar sheet of atoms: W is its energy per reference area and P a force
per length (no out-of-plane stretch); a 3D lattice gives W per reference volume.

The law is path-independent; its history is the committed deformation gradient
(``deformation_gradient``, (m, d*d)), kept so that the stability of the committed state can
be checked (:meth:`CauchyBornLaw.point_fields`): the phonon check (min omega^2 over a grid of
wave vectors) and the continuum check (the acoustic tensor), see :mod:`fe2.lattice.stability`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from fe2.lattice.cauchy_born import CauchyBorn
from fe2.lattice.potentials import CutOff, PairPotential
from fe2.lattice.stability import lattice_stability
from fe2.materials.base import Update
from fe2.tensors import MANDEL_PAIRS, SQRT2

#: The point fields of the stability check that are reduced by a minimum (the values) or a
#: maximum (the verdict) over a cell or an RVE.
STABILITY_FIELDS = ("phonon_min_omega2", "acoustic_min_eigenvalue", "lattice_unstable")


def default_phonon_grid(dim: int) -> int:
    """12 per direction in 1D/2D, 6 in 3D (even; divisible by 3: zone boundary and corners)."""
    return 6 if dim == 3 else 12


@dataclass(frozen=True)
class CauchyBornLaw:
    """Cauchy-Born law of a lattice and a pair potential (see the module docstring).

    Args:
        lattice: 'square', 'triangular' (2D), 'sc', 'bcc', 'fcc' (3D).
        potential: the bare pair potential (LennardJones or Morse).
        cutoff: cut-off radius (length units).
        cutoff_kind: 'smooth' or 'shifted'.
        cutoff_inner: start of the smooth switch (default 0.9 cutoff).
        lattice_constant: a, or None for the equilibrium (stress-free) constant.
        phonons: run the phonon check in :meth:`point_fields` (the acoustic check always runs).
        phonon_grid: wave vectors per direction (default :func:`default_phonon_grid`).
    """

    lattice: str
    potential: PairPotential
    cutoff: float
    cutoff_kind: str = "smooth"
    cutoff_inner: float | None = None
    lattice_constant: float | None = None
    phonons: bool = True
    phonon_grid: int | None = None
    physics: ClassVar[str] = "finite_strain"
    is_linear: ClassVar[bool] = False
    model: CauchyBorn = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        cut = CutOff(self.potential, self.cutoff, self.cutoff_kind, self.cutoff_inner)
        object.__setattr__(self, "model", CauchyBorn(self.lattice, cut, self.lattice_constant))
        if self.phonon_grid is not None and self.phonon_grid < 2:
            raise ValueError(f"phonon_grid must be >= 2, got {self.phonon_grid}")

    @property
    def dim(self) -> int:
        return self.model.dim

    def _check_dim(self, dim: int) -> None:
        if dim != self.dim:
            raise ValueError(f"a {self.dim}D lattice ({self.lattice}) in a {dim}D problem")

    def tangent(self, dim: int) -> np.ndarray:
        """Small-strain Mandel stiffness (A at F = I; the lattice's elastic constants)."""
        self._check_dim(dim)
        C = self.model.small_strain_stiffness()
        pairs = MANDEL_PAIRS[dim]
        w = np.array([1.0 if i == j else SQRT2 for i, j in pairs])
        return np.array([[C[i, j, k, l] for k, l in pairs] for i, j in pairs]) * np.outer(w, w)

    def initial_state(self, dim: int, m: int) -> dict[str, np.ndarray]:
        self._check_dim(dim)
        return {"deformation_gradient": np.tile(np.eye(dim).ravel(), (m, 1))}

    def update(self, strain: np.ndarray, state: dict[str, np.ndarray], dim: int) -> Update:
        self._check_dim(dim)
        m, n = strain.shape[0], dim * dim
        P, A, ok = self.model.stress_and_tangent(strain.reshape(m, dim, dim))
        ok = ok & np.isfinite(P).all(axis=(1, 2))
        return Update(
            stress=P.reshape(m, n), tangent=A.reshape(m, n, n),
            state={"deformation_gradient": np.array(strain, dtype=float)}, ok=ok,
        )

    def point_fields(self, state: dict[str, np.ndarray], dim: int) -> dict[str, np.ndarray]:
        """Stability of the states' deformation gradients, name -> (m,): ``phonon_min_omega2``
        (unit mass), ``soft_mode_k1..d`` (its reduced wave vector), ``acoustic_min_eigenvalue``
        (stress units), ``localization_n1..d`` (its normal N), ``lattice_unstable`` (1.0/0.0)."""
        F = state["deformation_gradient"]
        grid = self.phonon_grid or default_phonon_grid(dim)
        result = lattice_stability(self.model, F.reshape(len(F), dim, dim), grid=grid, phonons=self.phonons)
        fields = {"phonon_min_omega2": result["phonon_min_omega2"]}
        fields.update({f"soft_mode_k{i + 1}": result["phonon_k"][:, i] for i in range(dim)})
        fields["acoustic_min_eigenvalue"] = result["acoustic_min_eigenvalue"]
        fields.update({f"localization_n{i + 1}": result["acoustic_normal"][:, i] for i in range(dim)})
        fields["lattice_unstable"] = result["unstable"].astype(float)
        return fields


def reduce_stability_fields(fields: dict[str, np.ndarray], groups: np.ndarray, m: int) -> dict[str, np.ndarray]:
    """Per group (macro point) 0..m-1: min of the check values, max of the verdict, and the
    wave vector / normal of the point with the smallest value."""
    out: dict[str, np.ndarray] = {}
    if len(groups) == 0:
        return {name: np.full(m, np.nan) for name in fields} | {"lattice_unstable": np.zeros(m)}
    for value, companions in (("phonon_min_omega2", "soft_mode_k"), ("acoustic_min_eigenvalue", "localization_n")):
        v = np.where(np.isnan(fields[value]), np.inf, fields[value])
        order = np.lexsort((v, groups))  # by group, smallest value first
        first = order[np.r_[True, groups[order][1:] != groups[order][:-1]]]
        out[value] = np.full(m, np.nan)
        out[value][groups[first]] = fields[value][first]
        for name in [k for k in fields if k.startswith(companions)]:
            out[name] = np.full(m, np.nan)
            out[name][groups[first]] = fields[name][first]
    out["lattice_unstable"] = np.zeros(m)
    np.maximum.at(out["lattice_unstable"], groups, fields["lattice_unstable"])
    return out


def rve_stability_fields(phases: Mapping[int, object], histories: Sequence[Mapping[int, dict]], dim: int) -> dict[str, np.ndarray]:
    """Stability point fields of m RVEs, reduced over each RVE's Cauchy-Born points.

    Args:
        phases: phase tag -> law of the RVE (laws other than :class:`CauchyBornLaw` are skipped).
        histories: the committed history of each of the m RVEs (phase tag -> name -> array).
        dim: spatial dimension.

    Returns:
        name -> (m,) as :meth:`CauchyBornLaw.point_fields`, the minimum over the RVE (the
        verdict: any point unstable), {} if no phase is a Cauchy-Born law. One batched call per
        phase.
    """
    lattices = {tag: law for tag, law in phases.items() if isinstance(law, CauchyBornLaw)}
    if not lattices:
        return {}
    m = len(histories)
    parts, groups = [], []
    for tag, law in lattices.items():
        F = np.concatenate([h[tag]["deformation_gradient"] for h in histories]) if m else np.zeros((0, dim * dim))
        parts.append(law.point_fields({"deformation_gradient": F}, dim))
        groups.append(np.concatenate([np.full(len(h[tag]["deformation_gradient"]), i) for i, h in enumerate(histories)]) if m else np.zeros(0, int))
    fields = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    return reduce_stability_fields(fields, np.concatenate(groups).astype(int), m)
