"""Linear phase laws: isotropic small-strain elasticity and isotropic heat conduction.

A linear law is fully described by its constant tangent ``tangent(dim)``: the matrix that maps
the "strain" (Mandel small strain, or the temperature gradient) to the "stress" (Mandel
Cauchy stress, or the heat flux with the sign dropped, ``q = k grad T``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fe2.materials.base import Update, check_elastic_constants, linear_update
from fe2.tensors import isotropic_stiffness, lame_parameters


@dataclass(frozen=True)
class LinearElastic:
    """Isotropic linear elasticity, sigma = lambda tr(eps) I + 2 mu eps.

    Args:
        E: Young's modulus (stress units, > 0).
        nu: Poisson's ratio, in (-1, 0.5).
    """

    E: float
    nu: float
    physics: ClassVar[str] = "elasticity"
    is_linear: ClassVar[bool] = True

    def __post_init__(self):
        check_elastic_constants(self.E, self.nu)

    @property
    def lame(self) -> tuple[float, float]:
        """(lambda, mu)."""
        return lame_parameters(self.E, self.nu)

    def tangent(self, dim: int) -> np.ndarray:
        """Mandel stiffness (plane strain in 2D), shape (3, 3) or (6, 6)."""
        return isotropic_stiffness(*self.lame, dim)

    def initial_state(self, dim: int, m: int) -> dict[str, np.ndarray]:
        return {}

    def point_fields(self, state: dict[str, np.ndarray], dim: int) -> dict[str, np.ndarray]:
        return {}

    def update(self, strain: np.ndarray, state: dict[str, np.ndarray], dim: int) -> Update:
        return linear_update(self.tangent(dim), strain)

    def out_of_plane_stress(self, strain: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        """Out-of-plane stress (m,) of plane strain (eps33 = 0) at the in-plane Mandel strains
        (m, 3): sigma33 = lambda (eps11 + eps22)."""
        lmbda, _ = self.lame
        strain = np.asarray(strain, dtype=float)
        return lmbda * (strain[:, 0] + strain[:, 1])


@dataclass(frozen=True)
class LinearConductor:
    """Isotropic Fourier conduction, flux = k grad T (sign dropped).

    Args:
        k: conductivity (> 0), e.g. W/(m K).
    """

    k: float
    physics: ClassVar[str] = "conduction"
    is_linear: ClassVar[bool] = True

    def __post_init__(self):
        if not self.k > 0:
            raise ValueError(f"k must be > 0, got {self.k}")

    def tangent(self, dim: int) -> np.ndarray:
        """k I, shape (dim, dim)."""
        return self.k * np.eye(dim)

    def initial_state(self, dim: int, m: int) -> dict[str, np.ndarray]:
        return {}

    def point_fields(self, state: dict[str, np.ndarray], dim: int) -> dict[str, np.ndarray]:
        return {}

    def update(self, strain: np.ndarray, state: dict[str, np.ndarray], dim: int) -> Update:
        if strain.shape[1] == dim + 1:  # with the temperature: zero last row and column
            C = np.zeros((dim + 1, dim + 1))
            C[:dim, :dim] = self.tangent(dim)
            return linear_update(C, strain)
        return linear_update(self.tangent(dim), strain)


def symmetric_positive_definite(C: np.ndarray, name: str, tol: float) -> np.ndarray:
    """The symmetric part of C if C is finite, symmetric relative to its norm
    (|C - C^T| <= tol |C|) and positive definite; ValueError otherwise."""
    if not np.isfinite(C).all():
        raise ValueError(f"{name} must be finite")
    asymmetry = np.linalg.norm(C - C.T) / max(np.linalg.norm(C), np.finfo(float).tiny)
    if asymmetry > tol:
        raise ValueError(f"{name} must be symmetric (|{name} - {name}^T| / |{name}| = {asymmetry:.2e})")
    C = 0.5 * (C + C.T)
    if np.linalg.eigvalsh(C).min() <= 0:
        raise ValueError(f"{name} must be positive definite")
    return C


@dataclass(frozen=True, eq=False)
class AnisotropicLinearConductor:
    """Linear conduction with any conductivity: q = K grad T (sign dropped).

    Args:
        K: symmetric positive definite conductivity, (dim, dim) (e.g. an effective tensor
           from `fe2 homogenize`); symmetry judged as for :class:`AnisotropicLinearElastic`.
    """

    K: np.ndarray
    physics: ClassVar[str] = "conduction"
    is_linear: ClassVar[bool] = True

    def __post_init__(self):
        K = np.array(self.K, dtype=float)
        if K.shape not in ((2, 2), (3, 3)):
            raise ValueError(f"K must be a 2 x 2 (2D) or 3 x 3 (3D) matrix, got {K.shape}")
        object.__setattr__(self, "K", symmetric_positive_definite(K, "K", AnisotropicLinearElastic.SYMMETRY_TOL))

    def tangent(self, dim: int) -> np.ndarray:
        if self.K.shape[0] != dim:
            raise ValueError(f"a {self.K.shape[0]} x {self.K.shape[0]} conductivity in {dim}D")
        return self.K

    def initial_state(self, dim: int, m: int) -> dict[str, np.ndarray]:
        return {}

    def point_fields(self, state: dict[str, np.ndarray], dim: int) -> dict[str, np.ndarray]:
        return {}

    def update(self, strain: np.ndarray, state: dict[str, np.ndarray], dim: int) -> Update:
        return linear_update(self.tangent(dim), strain)


@dataclass(frozen=True, eq=False)
class AnisotropicLinearElastic:
    """Linear elasticity with any stiffness: sigma = C eps in Mandel notation.

    Args:
        C: symmetric positive definite Mandel stiffness, (3, 3) in 2D or (6, 6) in 3D
           (e.g. an effective tensor from `fe2 homogenize`). Symmetry is judged relative to
           the norm of C, |C - C^T| <= SYMMETRY_TOL |C| (entries that are zero by symmetry
           come out of a computation as round-off); the symmetric part is kept.
    """

    SYMMETRY_TOL: ClassVar[float] = 1e-10

    C: np.ndarray
    physics: ClassVar[str] = "elasticity"
    is_linear: ClassVar[bool] = True

    def __post_init__(self):
        C = np.array(self.C, dtype=float)
        if C.shape not in ((3, 3), (6, 6)):
            raise ValueError(f"C must be a 3 x 3 (2D) or 6 x 6 (3D) Mandel matrix, got {C.shape}")
        object.__setattr__(self, "C", symmetric_positive_definite(C, "C", self.SYMMETRY_TOL))

    def tangent(self, dim: int) -> np.ndarray:
        if self.C.shape[0] != {2: 3, 3: 6}[dim]:
            raise ValueError(f"a {self.C.shape[0]} x {self.C.shape[0]} stiffness in {dim}D")
        return self.C

    def initial_state(self, dim: int, m: int) -> dict[str, np.ndarray]:
        return {}

    def point_fields(self, state: dict[str, np.ndarray], dim: int) -> dict[str, np.ndarray]:
        return {}

    def update(self, strain: np.ndarray, state: dict[str, np.ndarray], dim: int) -> Update:
        return linear_update(self.tangent(dim), strain)


@dataclass(frozen=True, eq=False)
class EffectiveLinearElastic(AnisotropicLinearElastic):
    """The effective law of a linear 2D RVE: the Mandel stiffness C (3, 3) and the out-of-plane
    stress of plane strain, linear in the in-plane strain, sigma33 = s33 . eps.

    Args:
        C: as for :class:`AnisotropicLinearElastic`.
        s33: (3,) <sigma33> of the RVE under the unit Mandel strains
            (:func:`fe2.rve.effective.plane_strain_sigma33_coefficients`).
    """

    s33: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self):
        super().__post_init__()
        s33 = np.array(self.s33, dtype=float)
        if self.C.shape != (3, 3) or s33.shape != (3,) or not np.isfinite(s33).all():
            raise ValueError("EffectiveLinearElastic: a 3 x 3 (2D) C and finite s33 of 3 components")
        object.__setattr__(self, "s33", s33)

    def out_of_plane_stress(self, strain: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        """sigma33 = s33 . eps (m,) at the in-plane Mandel strains (m, 3)."""
        return np.asarray(strain, dtype=float) @ self.s33
