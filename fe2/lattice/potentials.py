"""Pair potentials phi(r) with a cut-off, and their first two derivatives, vectorised.

Potentials (energy units E, length units L, the same as the lattice constant):

* Lennard-Jones  phi(r) = 4 epsilon [(sigma/r)^12 - (sigma/r)^6], minimum at 2^(1/6) sigma,
  inflection (phi'' = 0) at (26/7)^(1/6) sigma;
* Morse          phi(r) = D [exp(-2 alpha (r - r0)) - 2 exp(-alpha (r - r0))], minimum -D at
  r0, inflection at r0 + ln 2 / alpha.

Cut-offs (phi = 0 for r >= radius):

* ``shifted``: phi(r) - phi(radius) for r < radius. The energy is continuous; the force jumps
  at the radius (choose a radius between neighbour shells);
* ``smooth``: phi(r) S(r) with the quintic switch S = 1 - 10x^3 + 15x^4 - 6x^5,
  x = (r - inner) / (radius - inner) on [inner, radius] (S = 1 below, 0 above): energy, force
  and stiffness are continuous (C^2), as the tangent and the phonon check need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np


class PairPotential(Protocol):
    """phi(r) of a pair of atoms at distance r > 0."""

    def derivatives(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """phi, phi', phi'' at r (any shape), each of the shape of r."""
        ...

    @property
    def minimum(self) -> float:
        """Distance of the minimum of phi (the equilibrium bond length of a dimer)."""
        ...


@dataclass(frozen=True)
class LennardJones:
    """Args: epsilon (well depth, > 0, energy units), sigma (zero of phi, > 0, length units)."""

    epsilon: float
    sigma: float
    name: ClassVar[str] = "lennard_jones"

    def __post_init__(self):
        _positive(epsilon=self.epsilon, sigma=self.sigma)

    def derivatives(self, r):
        s6 = (self.sigma / r) ** 6
        s12 = s6 * s6
        e4 = 4.0 * self.epsilon
        return e4 * (s12 - s6), e4 * (-12.0 * s12 + 6.0 * s6) / r, e4 * (156.0 * s12 - 42.0 * s6) / r**2

    @property
    def minimum(self) -> float:
        return 2.0 ** (1.0 / 6.0) * self.sigma

    @property
    def inflection(self) -> float:
        """phi''(r) = 0: (26/7)^(1/6) sigma."""
        return (26.0 / 7.0) ** (1.0 / 6.0) * self.sigma


@dataclass(frozen=True)
class Morse:
    """Args: D (well depth, > 0, energy), alpha (stiffness, > 0, 1/length), r0 (minimum, > 0)."""

    D: float
    alpha: float
    r0: float
    name: ClassVar[str] = "morse"

    def __post_init__(self):
        _positive(D=self.D, alpha=self.alpha, r0=self.r0)

    def derivatives(self, r):
        e = np.exp(-self.alpha * (r - self.r0))
        a, D = self.alpha, self.D
        return D * (e * e - 2.0 * e), D * a * (-2.0 * e * e + 2.0 * e), D * a * a * (4.0 * e * e - 2.0 * e)

    @property
    def minimum(self) -> float:
        return self.r0

    @property
    def inflection(self) -> float:
        """phi''(r) = 0: r0 + ln 2 / alpha."""
        return self.r0 + math.log(2.0) / self.alpha


CUTOFF_KINDS = ("smooth", "shifted")


@dataclass(frozen=True)
class CutOff:
    """A pair potential cut off at ``radius`` (see the module docstring).

    Args:
        potential: the bare potential.
        radius: cut-off radius (> 0, length units); phi = 0 at and beyond it.
        kind: 'smooth' or 'shifted'.
        inner: where the smooth switch starts (0 < inner < radius; default 0.9 radius).
    """

    potential: PairPotential
    radius: float
    kind: str = "smooth"
    inner: float | None = None

    def __post_init__(self):
        _positive(radius=self.radius)
        if self.kind not in CUTOFF_KINDS:
            raise ValueError(f"cutoff kind must be one of {CUTOFF_KINDS}, got {self.kind!r}")
        if self.inner is not None and not 0 < self.inner < self.radius:
            raise ValueError(f"cutoff inner radius must be in (0, radius = {self.radius:g}), got {self.inner}")

    @property
    def switch_start(self) -> float:
        return 0.9 * self.radius if self.inner is None else self.inner

    @property
    def minimum(self) -> float:
        return self.potential.minimum

    def derivatives(self, r):
        r = np.asarray(r, dtype=float)
        inside = r < self.radius
        safe = np.where(inside, r, self.radius)  # no overflow/NaN where phi is 0 anyway
        phi, d1, d2 = self.potential.derivatives(safe)
        if self.kind == "shifted":
            phi = phi - self.potential.derivatives(np.float64(self.radius))[0]
        else:
            w = self.radius - self.switch_start
            x = np.clip((safe - self.switch_start) / w, 0.0, 1.0)
            S = 1.0 - x**3 * (10.0 - 15.0 * x + 6.0 * x * x)
            S1 = -30.0 * x * x * (1.0 - x) ** 2 / w
            S2 = -60.0 * x * (1.0 - x) * (1.0 - 2.0 * x) / (w * w)
            phi, d1, d2 = phi * S, d1 * S + phi * S1, d2 * S + 2.0 * d1 * S1 + phi * S2
        zero = np.zeros_like(r)
        return np.where(inside, phi, zero), np.where(inside, d1, zero), np.where(inside, d2, zero)


def _positive(**values: float) -> None:
    for key, value in values.items():
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{key} must be a finite number > 0, got {value}")


POTENTIALS = {cls.name: cls for cls in (LennardJones, Morse)}
