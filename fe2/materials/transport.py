"""Nonlinear transport laws (heat conduction, Darcy flow): flux = q(grad T [, T]).

Sign convention as for :class:`~fe2.materials.linear.LinearConductor`: the "stress" is the
flux with the sign dropped, q = K(g) g for the gradient g = grad T (or grad p). For Darcy flow
read T as the pressure p and q as the seepage velocity -v.

Strain layout: (m, n) with n = dim (the gradient g), or n = dim + 1 when the physics passes
the macro temperature as a last component (:class:`~fe2.physics.Conduction` with
``temperature=True``; then the stress has a zero last component and the tangent a last column
dq/dT and a zero last row). Each law:

* :class:`PowerLawConductor`: q = k (delta^2 + |g|^2)^((p-2)/2) g (the p-Laplacian for
  delta = 0; shear-thinning flow p < 2, shear-thickening p > 2);
* :class:`ForchheimerFlow`: |g| = (mu/kappa) |q| + beta rho |q|^2, solved for |q|,
  q = 2 g / (mu/kappa + sqrt((mu/kappa)^2 + 4 beta rho |g|));
* :class:`TemperatureDependentConductor`: q = k0 (1 + alpha (T - T0)) g, T the macro
  temperature (needs the temperature component).

All are vectorised over the m points, have no history, and return ``ok = False`` where the
update is not admissible (non-finite strain, k(T) <= 0, an infinite tangent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fe2.materials.base import Update


def split_strain(strain: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(m, n) transport strain -> gradient (m, dim) and temperature (m,) or None (n = dim)."""
    n = strain.shape[1]
    if n not in (dim, dim + 1):
        raise ValueError(f"a transport law in {dim}D takes {dim} or {dim + 1} strain components, got {n}")
    return strain[:, :dim], (strain[:, dim] if n == dim + 1 else None)


def transport_update(q: np.ndarray, dq_dg: np.ndarray, dq_dT: np.ndarray | None, n: int,
                     ok: np.ndarray) -> Update:
    """Pack flux q (m, dim), dq/dg (m, dim, dim) and dq/dT (m, dim) into an Update of n
    components (n = dim, or dim + 1 with a zero last stress component and tangent row)."""
    m, dim = q.shape
    stress = np.zeros((m, n))
    tangent = np.zeros((m, n, n))
    stress[:, :dim] = q
    tangent[:, :dim, :dim] = dq_dg
    if n > dim and dq_dT is not None:
        tangent[:, :dim, dim] = dq_dT
    ok = ok & np.isfinite(stress).all(axis=1) & np.isfinite(tangent).reshape(m, -1).all(axis=1)
    return Update(stress=stress, tangent=tangent, state={}, ok=ok)


class _Stateless:
    physics: ClassVar[str] = "conduction"
    is_linear: ClassVar[bool] = False
    #: The law depends on the temperature itself (the macro temperature must be passed).
    uses_temperature: ClassVar[bool] = False

    def initial_state(self, dim: int, m: int) -> dict[str, np.ndarray]:
        return {}

    def tangent(self, dim: int) -> np.ndarray:
        """dq/dg at zero gradient (and T = T0), (dim, dim): the small-gradient limit."""
        strain = np.zeros((1, dim + int(self.uses_temperature)))
        if self.uses_temperature:
            strain[0, dim] = getattr(self, "T0", 0.0)
        with np.errstate(all="ignore"):
            return self.update(strain, {}, dim).tangent[0, :dim, :dim]

    def point_fields(self, state: dict[str, np.ndarray], dim: int) -> dict[str, np.ndarray]:
        return {}


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if not (np.isfinite(value) and (value >= 0 if allow_zero else value > 0)):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value}")


@dataclass(frozen=True)
class PowerLawConductor(_Stateless):
    """q = k (delta^2 + |g|^2)^((p-2)/2) g.

    Tangent: dq/dg = k s^(p-2) I + k (p-2) s^(p-4) g g^T with s^2 = delta^2 + |g|^2; its
    eigenvalue along g is k s^(p-4) (delta^2 + (p-1)|g|^2) > 0 for p > 1.

    Args:
        k: consistency (conductivity at |g| = 1 for delta = 0), > 0.
        p: exponent, > 1 (p = 2: linear).
        delta: regularising gradient (>= 0, gradient units): keeps the tangent finite and
            positive at g = 0 (with delta = 0 it is 0 there for p > 2 and infinite for p < 2).
    """

    k: float
    p: float
    delta: float = 0.0

    def __post_init__(self):
        _positive("k", self.k)
        _positive("delta", self.delta, allow_zero=True)
        if not (np.isfinite(self.p) and self.p > 1):
            raise ValueError(f"p must be > 1, got {self.p}")

    def scalar(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The 1D law: q(g) and q'(g) for gradients g (any shape)."""
        s2 = self.delta**2 + g * g
        with np.errstate(divide="ignore", invalid="ignore"):
            q = self.k * s2 ** ((self.p - 2) / 2) * g
            dq = self.k * s2 ** ((self.p - 4) / 2) * (self.delta**2 + (self.p - 1) * g * g)
        return q, dq

    def update(self, strain: np.ndarray, state: dict[str, np.ndarray], dim: int) -> Update:
        g, _ = split_strain(strain, dim)
        s2 = self.delta**2 + np.einsum("mi,mi->m", g, g)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            a = self.k * s2 ** ((self.p - 2) / 2)
            b = self.k * (self.p - 2) * s2 ** ((self.p - 4) / 2)
            b = np.where((self.p == 2) | (np.einsum("mi,mi->m", g, g) == 0), 0.0, b)
            q = a[:, None] * g
            dq = a[:, None, None] * np.eye(dim) + b[:, None, None] * g[:, :, None] * g[:, None, :]
        return transport_update(q, dq, np.zeros_like(g), strain.shape[1], np.isfinite(strain).all(axis=1))


@dataclass(frozen=True)
class ForchheimerFlow(_Stateless):
    """Forchheimer flow: |g| = (mu/kappa) |q| + beta rho |q|^2 with q parallel to g.

    With b = mu/kappa, a = beta rho, G = |g|, s = sqrt(b^2 + 4 a G):
    q = c(G) g, c = 2 / (b + s); dq/dg = c I + c'(G)/G g g^T with c'(G) = -4a / (s (b+s)^2),
    whose eigenvalue along g is dq/dG = 1 / (b + 2 a |q|) > 0. a = 0 is Darcy's law q = g / b.

    Args:
        mu: dynamic viscosity (> 0, e.g. Pa s).
        kappa: intrinsic permeability (> 0, e.g. m^2).
        beta: Forchheimer (inertial) coefficient (>= 0, 1/m).
        rho: fluid density (> 0, e.g. kg/m^3).
    """

    mu: float
    kappa: float
    beta: float
    rho: float = 1.0

    def __post_init__(self):
        _positive("mu", self.mu)
        _positive("kappa", self.kappa)
        _positive("rho", self.rho)
        _positive("beta", self.beta, allow_zero=True)

    @property
    def coefficients(self) -> tuple[float, float]:
        """(b, a) = (mu/kappa, beta rho)."""
        return self.mu / self.kappa, self.beta * self.rho

    def scalar(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The 1D law: q(g) and q'(g) for gradients g (any shape)."""
        b, a = self.coefficients
        s = np.sqrt(b * b + 4 * a * np.abs(g))
        q = 2 * g / (b + s)
        return q, 1.0 / (b + 2 * a * np.abs(q))

    def update(self, strain: np.ndarray, state: dict[str, np.ndarray], dim: int) -> Update:
        g, _ = split_strain(strain, dim)
        b, a = self.coefficients
        G = np.sqrt(np.einsum("mi,mi->m", g, g))
        s = np.sqrt(b * b + 4 * a * G)
        c = 2.0 / (b + s)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(G > 0, -4 * a / (s * (b + s) ** 2 * G), 0.0)  # c'(G) / G
        q = c[:, None] * g
        dq = c[:, None, None] * np.eye(dim) + d[:, None, None] * g[:, :, None] * g[:, None, :]
        return transport_update(q, dq, np.zeros_like(g), strain.shape[1], np.isfinite(strain).all(axis=1))


@dataclass(frozen=True)
class TemperatureDependentConductor(_Stateless):
    """q = k(T) g with k(T) = k0 (1 + alpha (T - T0)); dq/dg = k(T) I, dq/dT = k0 alpha g.

    T is the macro temperature passed with the gradient (the micro temperature differs from
    it by O(epsilon) across the cell: the leading order of the two-scale expansion).
    Inadmissible where k(T) <= 0.

    Args:
        k0: conductivity at T0 (> 0).
        alpha: temperature coefficient (1/K, any sign).
        T0: reference temperature (K).
    """

    k0: float
    alpha: float
    T0: float = 0.0
    uses_temperature: ClassVar[bool] = True

    def __post_init__(self):
        _positive("k0", self.k0)
        if not (np.isfinite(self.alpha) and np.isfinite(self.T0)):
            raise ValueError("alpha and T0 must be finite")

    def conductivity(self, T: np.ndarray) -> np.ndarray:
        return self.k0 * (1.0 + self.alpha * (np.asarray(T) - self.T0))

    def update(self, strain: np.ndarray, state: dict[str, np.ndarray], dim: int) -> Update:
        g, T = split_strain(strain, dim)
        if T is None:
            raise ValueError("a temperature-dependent conductor needs the temperature (n = dim + 1)")
        k = self.conductivity(T)
        q = k[:, None] * g
        dq = k[:, None, None] * np.eye(dim)
        ok = np.isfinite(strain).all(axis=1) & (k > 0)
        return transport_update(q, dq, self.k0 * self.alpha * g, strain.shape[1], ok)
