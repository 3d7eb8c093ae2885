"""Small-strain J2 (von Mises) plasticity, linear isotropic and kinematic hardening.

Radial return at each point, in 3D Mandel components (plane strain in 2D: eps33 = eps13 =
eps23 = 0 are embedded, the out-of-plane plastic strain is kept in the history):

    sigma_trial = C (eps - eps_p),  eta = dev sigma_trial - beta,
    f = sqrt(3/2) |eta| - (sigma_y + H p),
    f <= 0: elastic;  f > 0: dp = f / (3 mu + H + H_kin),  N = eta / |eta|,
        sigma = sigma_trial - 2 mu sqrt(3/2) dp N,   eps_p += sqrt(3/2) dp N,
        p += dp,   beta += (2/3) H_kin sqrt(3/2) dp N,
    consistent tangent  C - 6 mu^2 / (3 mu + H + H_kin) N (x) N
                          - 4 mu^2 sqrt(3/2) dp / |eta| (I_dev - N (x) N).

History per point: ``plastic_strain`` (6,), ``equivalent_plastic_strain`` p, ``back_stress``
(6,). Units: stresses and moduli in one consistent unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np

from fe2.materials.base import Update, check_elastic_constants
from fe2.tensors import isotropic_stiffness, lame_parameters

#: Positions of the 2D Mandel components (11, 22, 12) among the 3D ones.
PLANE = [0, 1, 5]
_M = np.array([1.0, 1, 1, 0, 0, 0])
_IDEV = np.eye(6) - np.outer(_M, _M) / 3.0
_S32 = np.sqrt(1.5)


@dataclass(frozen=True)
class J2Plasticity:
    """Von Mises plasticity with linear hardening.

    Args:
        E, nu: elastic constants (E > 0, -1 < nu < 0.5).
        sigma_y: initial yield stress (> 0).
        H: isotropic hardening modulus (>= 0), yield stress sigma_y + H p.
        H_kin: kinematic (Prager) hardening modulus (>= 0).
    """

    E: float
    nu: float
    sigma_y: float
    H: float = 0.0
    H_kin: float = 0.0
    physics: ClassVar[str] = "elasticity"
    is_linear: ClassVar[bool] = False

    def __post_init__(self):
        check_elastic_constants(self.E, self.nu)
        if not self.sigma_y > 0:
            raise ValueError(f"sigma_y must be > 0, got {self.sigma_y}")
        if self.H < 0 or self.H_kin < 0:
            raise ValueError("hardening moduli H and H_kin must be >= 0")

    @cached_property
    def _stiffness(self) -> np.ndarray:
        """The elastic 6 x 6 Mandel stiffness."""
        return isotropic_stiffness(*lame_parameters(self.E, self.nu), 3)

    def tangent(self, dim: int) -> np.ndarray:
        """Elastic Mandel stiffness (the tangent before yield)."""
        return isotropic_stiffness(*lame_parameters(self.E, self.nu), dim)

    def initial_state(self, dim: int, m: int) -> dict[str, np.ndarray]:
        return {
            "plastic_strain": np.zeros((m, 6)),
            "equivalent_plastic_strain": np.zeros(m),
            "back_stress": np.zeros((m, 6)),
        }

    def point_fields(self, state: dict[str, np.ndarray], dim: int) -> dict[str, np.ndarray]:
        return {"equivalent_plastic_strain": state["equivalent_plastic_strain"]}

    def update(self, strain: np.ndarray, state: dict[str, np.ndarray], dim: int) -> Update:
        lmbda, mu = lame_parameters(self.E, self.nu)
        C = self._stiffness
        m = strain.shape[0]
        if dim == 2:
            eps = np.zeros((m, 6))
            eps[:, PLANE] = strain
        else:
            eps = strain
        ep_n = state["plastic_strain"]
        p_n = state["equivalent_plastic_strain"]
        beta_n = state["back_stress"]

        sigma = (eps - ep_n) @ C  # C symmetric
        eta = sigma @ _IDEV - beta_n
        norm = np.linalg.norm(eta, axis=1)
        f = _S32 * norm - (self.sigma_y + self.H * p_n)
        plastic = f > 0.0
        denominator = 3.0 * mu + self.H + self.H_kin
        dp = np.where(plastic, f / denominator, 0.0)
        N = np.zeros_like(eta)
        N[plastic] = eta[plastic] / norm[plastic, None]

        sigma = sigma - (2.0 * mu * _S32 * dp)[:, None] * N
        new_state = {
            "plastic_strain": ep_n + (_S32 * dp)[:, None] * N,
            "equivalent_plastic_strain": p_n + dp,
            "back_stress": beta_n + ((2.0 / 3.0) * self.H_kin * _S32 * dp)[:, None] * N,
        }
        # The tangent in the components of the physics only (plane strain: 11, 22, 12).
        comps = np.ix_(PLANE, PLANE) if dim == 2 else np.ix_(range(6), range(6))
        tangent = np.empty((m, *C[comps].shape))
        tangent[:] = C[comps]
        if plastic.any():
            Np = N[plastic][:, comps[0].ravel()]
            NN = Np[:, :, None] * Np[:, None, :]
            theta = 4.0 * mu**2 * _S32 * dp[plastic] / norm[plastic]
            tangent[plastic] -= (6.0 * mu**2 / denominator) * NN + theta[:, None, None] * (_IDEV[comps] - NN)
        if dim == 2:
            sigma = sigma[:, PLANE]
        ok = np.isfinite(sigma).all(axis=1)
        return Update(stress=sigma, tangent=tangent, state=new_state, ok=ok)
