"""The Cauchy-Born rule for a Bravais lattice with a pair potential, batched over points.

Every atom's bond vectors R_b (reference, all lattice vectors within reach of the cut-off)
deform affinely, r_b = F R_b, rho_b = |r_b|. The strain energy per reference volume (per
reference area for 2D lattices, per length for the chain) is

    W(F) = 1/(2 Omega0) sum_b phi(rho_b),

the first Piola stress and the tangent in closed form (phi' = dphi/drho, ...):

    P_iJ     = 1/(2 Omega0) sum_b (phi'/rho) r_i R_J,
    A_iJkL   = 1/(2 Omega0) sum_b [ (phi'' - phi'/rho) / rho^2  r_i r_k R_J R_L
                                    + (phi'/rho) delta_ik R_J R_L ].

Arrays: F (m, d, d); W (m,); P (m, d, d); A (m, d, d, d, d) (A.reshape(m, d*d, d*d) is
dP/dF for F and P flattened row-major). The bond set of a batch holds every R with
|R| <= radius / s_min (s_min: the smallest principal stretch in the batch), so no bond that
the deformation brings inside the cut-off is missed; points with s_min < MIN_STRETCH (or
det F <= 0) are inadmissible (``ok`` False).

The default lattice constant is the equilibrium one: W(s I) minimal over s, i.e.
sum_b phi'(rho_b) rho_b = 0 (a stress-free reference, P(I) = 0).
"""

from __future__ import annotations

import math

import numpy as np

from fe2.lattice.lattices import Lattice
from fe2.lattice.potentials import CutOff

#: Smallest principal stretch a point may have (the lattice is crushed beyond).
MIN_STRETCH = 0.5


class CauchyBorn:
    """Cauchy-Born energy, stress and tangent of one lattice and cut-off pair potential.

    Args:
        lattice: lattice name (see :mod:`fe2.lattice.lattices`).
        potential: the pair potential with its cut-off.
        lattice_constant: a (> 0, length units); None: the equilibrium constant.

    Raises:
        ValueError: no bond within the cut-off, or no stress-free lattice constant.
    """

    def __init__(self, lattice: str, potential: CutOff, lattice_constant: float | None = None):
        self.potential = potential
        if lattice_constant is None:
            lattice_constant = equilibrium_constant(lattice, potential)
        self.lattice = Lattice(lattice, lattice_constant)
        self.dim = self.lattice.dim
        self.omega0 = self.lattice.atomic_volume
        if len(self.lattice.bonds(potential.radius)) == 0:
            raise ValueError(
                f"cutoff radius {potential.radius:g} is shorter than the nearest-neighbour "
                f"distance {self.lattice.nearest_distance:g}: no bond"
            )
        self._bonds: dict[int, np.ndarray] = {}

    @property
    def reference_bonds(self) -> np.ndarray:
        """Bond vectors within the cut-off in the reference state, (B, d)."""
        return self.lattice.bonds(self.potential.radius)

    def admissible(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ok (m,), smallest principal stretch (m,)) of F (m, d, d)."""
        finite = np.isfinite(F).all(axis=(1, 2))
        safe = np.where(finite[:, None, None], F, np.eye(self.dim))
        stretch = np.linalg.svd(safe, compute_uv=False).min(axis=1)
        ok = finite & (np.linalg.det(safe) > 0) & (stretch >= MIN_STRETCH)
        return ok, stretch

    def bonds_for(self, F: np.ndarray, ok: np.ndarray, stretch: np.ndarray) -> np.ndarray:
        """Bond vectors covering the cut-off for every admissible F of the batch, (B, d)."""
        s_min = float(stretch[ok].min()) if ok.any() else 1.0
        key = max(1, math.ceil(20.0 / min(s_min, 1.0) - 1e-9))  # radius / s rounded up, cached
        if key not in self._bonds:
            self._bonds[key] = self.lattice.bonds(self.potential.radius * key / 20.0)
        return self._bonds[key]

    def _bond_terms(self, F: np.ndarray):
        """r (m, B, d), rho, phi, phi', phi'' (m, B), R (B, d), ok (m,)."""
        ok, stretch = self.admissible(F)
        F = np.where(ok[:, None, None], F, np.eye(self.dim))
        R = self.bonds_for(F, ok, stretch)
        r = np.einsum("mij,bj->mbi", F, R)
        rho = np.linalg.norm(r, axis=2)
        phi, d1, d2 = self.potential.derivatives(rho)
        return r, rho, phi, d1, d2, R, ok

    def energy(self, F: np.ndarray) -> np.ndarray:
        """W(F) per reference volume, (m,) (NaN where not admissible)."""
        _, _, phi, _, _, _, ok = self._bond_terms(F)
        return np.where(ok, phi.sum(axis=1) / (2.0 * self.omega0), np.nan)

    def stress(self, F: np.ndarray) -> np.ndarray:
        """P (m, d, d)."""
        return self.stress_and_tangent(F, tangent=False)[0]

    def stress_and_tangent(self, F: np.ndarray, *, tangent: bool = True):
        """(P (m, d, d), A (m, d, d, d, d) or None, ok (m,))."""
        r, rho, _, d1, d2, R, ok = self._bond_terms(F)
        m, d = len(F), self.dim
        scale = 1.0 / (2.0 * self.omega0)
        c2 = d1 / rho
        P = scale * np.einsum("mb,mbi,bj->mij", c2, r, R)
        if not tangent:
            return P, None, ok
        c1 = (d2 - c2) / rho**2
        rR = (r[:, :, :, None] * R[None, :, None, :]).reshape(m, len(R), d * d)
        A = scale * np.einsum("mb,mbx,mby->mxy", c1, rR, rR).reshape(m, d, d, d, d)
        S = scale * np.einsum("mb,bj,bl->mjl", c2, R, R)
        A += np.eye(d)[None, :, None, :, None] * S[:, None, :, None, :]
        return P, A, ok

    def small_strain_stiffness(self) -> np.ndarray:
        """A at F = I as a (d, d, d, d) tensor: the elastic constants C_ijkl of the lattice
        (with the minor symmetries when the reference is stress-free)."""
        return self.stress_and_tangent(np.eye(self.dim)[None])[1][0]


def equilibrium_constant(lattice: str, potential: CutOff) -> float:
    """Lattice constant a0 with sum_b phi'(rho_b) rho_b = 0 at the minimum of the energy per
    atom e(a) = 1/2 sum_b phi(a |R_b|) (R_b for a = 1), to round-off.

    Raises:
        ValueError: e has no interior minimum below the cut-off, or the minimum is a kink of a
            shifted cut-off (a shell crossing the radius) rather than a stress-free state.
    """
    if potential.radius <= potential.minimum:
        raise ValueError(
            f"cutoff radius {potential.radius:g} does not exceed the minimum of the potential "
            f"({potential.minimum:g}): no bonded equilibrium; give a larger radius"
        )
    unit = Lattice(lattice, 1.0)
    nearest = unit.nearest_distance
    a_lo = 0.7 * potential.minimum / nearest
    a_hi = potential.radius / nearest
    if a_hi <= a_lo:
        raise ValueError(
            f"cutoff radius {potential.radius:g} leaves no nearest-neighbour bond near the "
            f"minimum of the potential ({potential.minimum:g})"
        )
    lengths = np.linalg.norm(unit.bonds(potential.radius / a_lo), axis=1)

    def energy(a):
        return 0.5 * potential.derivatives(np.multiply.outer(a, lengths))[0].sum(axis=-1)

    def slope(a: float) -> float:
        return 0.5 * float((potential.derivatives(a * lengths)[1] * lengths).sum())

    grid = np.linspace(a_lo, a_hi, 801)[:-1]
    i = int(np.argmin(energy(grid)))
    if i == 0 or i == len(grid) - 1:
        raise ValueError(
            f"the energy of the {lattice} lattice has no minimum for nearest-neighbour distances "
            f"in [{a_lo * nearest:g}, {a_hi * nearest:g}); give lattice_constant"
        )
    lo, hi = float(grid[i - 1]), float(grid[i + 1])
    if not (slope(lo) < 0 < slope(hi)):
        raise ValueError(f"could not bracket the equilibrium lattice constant of the {lattice} lattice")
    while hi - lo > 4 * np.finfo(float).eps * hi:
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if slope(mid) < 0 else (lo, mid)
    a0 = 0.5 * (lo + hi)
    _, d1, d2 = potential.derivatives(a0 * lengths)
    scale = 0.5 * float((np.abs(d1) * lengths + a0 * np.abs(d2) * lengths**2).sum())
    if abs(slope(a0)) > 1e-8 * scale:
        raise ValueError(
            f"the energy minimum of the {lattice} lattice is a kink where a neighbour shell "
            f"crosses the shifted cut-off (not stress-free); use cutoff kind 'smooth' or "
            f"another radius, or give lattice_constant"
        )
    return a0
