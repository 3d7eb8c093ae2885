"""Compressible Neo-Hookean hyperelasticity (finite strain), plane strain in 2D.

    W(F) = mu/2 (tr F^T F - 3) - mu ln J + lambda/2 (ln J)^2,   J = det F,
    P = mu (F - F^-T) + lambda ln J F^-T,
    A_iJkL = dP_iJ/dF_kL = mu d_ik d_JL + (mu - lambda ln J) Finv_Li Finv_Jk
                           + lambda Finv_Ji Finv_Lk.

Strain and stress vectors are F and P flattened row-major (F11, F12, F21, F22 in 2D). At
F = I the tangent is the linear isotropic stiffness with the same (lambda, mu).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fe2.materials.base import Update, check_elastic_constants
from fe2.tensors import isotropic_stiffness, lame_parameters


@dataclass(frozen=True)
class NeoHookean:
    """Args: E (> 0) and nu (in (-1, 0.5)) of the small-strain limit."""

    E: float
    nu: float
    physics: ClassVar[str] = "finite_strain"
    is_linear: ClassVar[bool] = False

    def __post_init__(self):
        check_elastic_constants(self.E, self.nu)

    def tangent(self, dim: int) -> np.ndarray:
        """Small-strain (Mandel) stiffness of the law, for bounds and checks."""
        return isotropic_stiffness(*lame_parameters(self.E, self.nu), dim)

    def initial_state(self, dim: int, m: int) -> dict[str, np.ndarray]:
        return {}

    def point_fields(self, state: dict[str, np.ndarray], dim: int) -> dict[str, np.ndarray]:
        return {}

    def out_of_plane_stress(self, strain: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        """P33 (m,) of plane strain (F33 = 1) at the in-plane F (m, 4) row-major: lambda ln J."""
        lmbda, _ = lame_parameters(self.E, self.nu)
        return lmbda * np.log(np.linalg.det(np.asarray(strain, dtype=float).reshape(-1, 2, 2)))

    def update(self, strain: np.ndarray, state: dict[str, np.ndarray], dim: int) -> Update:
        lmbda, mu = lame_parameters(self.E, self.nu)
        m = strain.shape[0]
        F = strain.reshape(m, dim, dim)
        J = np.linalg.det(F)
        ok = np.isfinite(J) & (J > 0)
        safe = np.where(ok[:, None, None], F, np.eye(dim))  # keep inv/log finite where not ok
        Finv = np.linalg.inv(safe)
        lnJ = np.log(np.where(ok, J, 1.0))
        FinvT = Finv.transpose(0, 2, 1)
        P = mu * (safe - FinvT) + (lmbda * lnJ)[:, None, None] * FinvT
        eye = np.eye(dim)
        A = mu * np.einsum("ik,jl->ijkl", eye, eye)[None]
        A = A + (mu - lmbda * lnJ)[:, None, None, None, None] * np.einsum("mli,mjk->mijkl", Finv, Finv)
        A = A + lmbda * np.einsum("mji,mlk->mijkl", Finv, Finv)
        n = dim * dim
        return Update(stress=P.reshape(m, n), tangent=A.reshape(m, n, n), state={}, ok=ok)
