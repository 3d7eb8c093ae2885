"""Apparent (effective) tensor of an RVE: its consistent tangent at the undeformed state.

For linear phases this is the effective tensor: with one factorisation of K, the fluctuation
for each unit macro strain e_k (k < n) solves K x_k = R(-L_{e_k}), column k of C* is
<sigma>(e_k), and each solve reports its Hill-Mandel residual |<sigma:eps> - Sigma.e_k| /
|Sigma.e_k|. For nonlinear phases it is the initial (small-strain) apparent tangent.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fe2.rve.model import RveModel
from fe2.rve.factory import make_rve_solver


@dataclass
class EffectiveTensor:
    """Result of one homogenisation.

    Attributes:
        bc: boundary-condition kind.
        C: apparent tensor (n, n): Mandel stiffness (C[2, 2] = 2 G in 2D;
            ``fe2.tensors.mandel_to_voigt_stiffness`` for engineering shear strains),
            conductivity, or dP/dF at F = I (row-major).
        hill_mandel_residual: per unit load case, |<sigma:eps> - Sigma.E| / |Sigma.E|, (n,).
        strain_average_error: max over the load cases of |<eps> - E| / |E|.
        dofs: fluctuation dofs (full space) and size of the constrained system.
        timings: seconds per phase.
    """

    bc: str
    C: np.ndarray
    hill_mandel_residual: np.ndarray
    strain_average_error: float
    dofs: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)


def effective_tensor(
    model: RveModel, bc: str, *, solver_options: Mapping[str, Any] | None = None,
    batch: int | str = "auto", linear_solver: str = "auto",
) -> EffectiveTensor:
    """Apparent tensor of the RVE under boundary condition ``bc``.

    Args:
        model: the discretised RVE.
        bc: 'periodic', 'affine' or 'traction'.
        solver_options: PETSc options of the linear solver (default: MUMPS LU, or CG + GAMG).
        batch: the RVE solver backend (see :func:`fe2.rve.factory.make_rve_solver`).
        linear_solver: 'direct', 'iterative' or 'auto' (by the number of dofs).
    """
    t0 = time.perf_counter()
    # The full path (not the elastic shortcut): the same numbers, with a timing breakdown.
    solver = make_rve_solver(model, bc, batch=batch, petsc_options=solver_options, elastic_shortcut=False,
                             single=True, linear_solver=linear_solver)
    setup = time.perf_counter() - t0
    try:
        response, _ = solver.solve(model.physics.reference_strain, solver.initial_state())
        size = solver.bc.size
        timings = dict(solver.timings)
    finally:
        solver.destroy()
    return EffectiveTensor(
        bc=bc,
        C=response.tangent,
        hill_mandel_residual=response.tangent_hill_mandel_residual,
        strain_average_error=response.strain_average_error,
        dofs={"fluctuation": model.global_dofs, "system": int(size)},
        timings={"setup": setup, **timings},
    )


def plane_strain_sigma33_coefficients(
    model: RveModel, bc: str, *, solver_options: Mapping[str, Any] | None = None,
) -> np.ndarray | None:
    """s33 (n,) with <sigma33> = s33 . E for a linear 2D RVE in plane strain: the RVE averages
    of sigma33 under the unit Mandel strains e_k. None where the phases do not define sigma33
    (or the RVE is not linear / 2D)."""
    if not (model.is_linear and model.has_out_of_plane_stress):
        return None
    solver = make_rve_solver(model, bc, petsc_options=solver_options)
    try:
        n = model.physics.n_comp
        result = solver.solve_batch(np.eye(n), [solver.initial_state()] * n)
        if result.failures:
            raise result.failures[min(result.failures)]
        return solver.point_outputs(result.trials, result.responses)["stress_33"]
    finally:
        solver.destroy()
