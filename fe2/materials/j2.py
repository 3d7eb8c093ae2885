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
from typing import ClassVar

import numpy as np

from fe2.linalg.kernels import double_pointer, kernels
from fe2.materials.base import Update, check_elastic_constants
from fe2.tensors import isotropic_stiffness, lame_parameters


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

    def out_of_plane_stress(self, strain: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        """Out-of-plane stress (m,) of plane strain (eps33 = 0) at the in-plane Mandel strains
        (m, 3) of a converged state (its plastic strain eps_p (m, 6), 3D Mandel):
        sigma33 = lambda (eps11 + eps22 - tr eps_p) - 2 mu eps_p33."""
        lmbda, mu = lame_parameters(self.E, self.nu)
        strain, plastic = np.asarray(strain, dtype=float), state["plastic_strain"]
        return lmbda * (strain[:, 0] + strain[:, 1] - plastic[:, :3].sum(axis=1)) - 2.0 * mu * plastic[:, 2]

    def update(self, strain: np.ndarray, state: dict[str, np.ndarray], dim: int) -> Update:
        """The radial return of the module docstring at every point (a C loop over the points,
        :func:`fe2.linalg.kernels.kernels`)."""
        ffi, lib = kernels()
        lmbda, mu = lame_parameters(self.E, self.nu)
        strain = np.ascontiguousarray(strain, dtype=float)
        m, nc = strain.shape
        inputs = [np.ascontiguousarray(state[k], dtype=float)
                  for k in ("plastic_strain", "equivalent_plastic_strain", "back_stress")]
        stress, tangent = np.empty((m, nc)), np.empty((m, nc, nc))
        new = {"plastic_strain": np.empty((m, 6)), "equivalent_plastic_strain": np.empty(m),
               "back_stress": np.empty((m, 6))}
        ok = np.empty(m, dtype=np.int8)
        lib.j2_update(m, dim, double_pointer(ffi, strain), *(double_pointer(ffi, a) for a in inputs),
                      lmbda, mu, self.sigma_y, self.H, self.H_kin,
                      double_pointer(ffi, stress), double_pointer(ffi, tangent),
                      *(double_pointer(ffi, new[k]) for k in ("plastic_strain", "equivalent_plastic_strain", "back_stress")),
                      ffi.cast("signed char*", ok.ctypes.data))
        return Update(stress=stress, tangent=tangent, state=new, ok=ok.astype(bool))
