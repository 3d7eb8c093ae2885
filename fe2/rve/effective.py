"""Apparent (effective) tensor of a linear RVE by the sensitivity solve.

For each unit macro strain e_k (k < n) the fluctuation solves K x_k = R(-L_{e_k}) with one
factorisation of K; then column k of the apparent tensor is C*[:, k] = <sigma>(e_k), and the
Hill-Mandel residual of that solve is |<sigma:eps> - <sigma>.e_k| / |<sigma>.e_k|.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from dolfinx.fem.petsc import assemble_matrix, assemble_vector
from petsc4py import PETSc

from fe2.rve.boundary_conditions import make_boundary_condition
from fe2.rve.model import RveModel
from fe2.rve.solver import DirectSolver, SolveError

log = logging.getLogger(__name__)

#: A direct solve meets Hill-Mandel and <eps> = E to round-off (~1e-14 here); beyond this the
#: constrained system was singular or the constraints were not met, and no tensor is returned.
CONSISTENCY_TOL = 1e-8


@dataclass
class EffectiveTensor:
    """Result of one homogenisation.

    Attributes:
        bc: boundary-condition kind.
        C: apparent tensor (n, n): Mandel stiffness, or conductivity.
        hill_mandel_residual: per unit load case, |<sigma:eps> - Sigma.E| / |Sigma.E|, (n,).
        strain_average_error: per load case, |<eps> - E| / |E|, (n,).
        dofs: fluctuation dofs (full space) and size of the constrained system.
        timings: seconds per phase (assemble, constrain, factorize, solve, average).
    """

    bc: str
    C: np.ndarray
    hill_mandel_residual: np.ndarray
    strain_average_error: np.ndarray
    dofs: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)


def effective_tensor(
    model: RveModel, bc: str, *, solver_options: Mapping[str, Any] | None = None
) -> EffectiveTensor:
    """Apparent tensor of the RVE under boundary condition ``bc``.

    Args:
        model: the discretised RVE.
        bc: 'periodic', 'affine' or 'traction'.
        solver_options: PETSc options for the direct solver (default: MUMPS LU).
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter
    t0 = clock()
    condition = make_boundary_condition(bc, model)
    timings["constraint_setup"] = clock() - t0

    t0 = clock()
    A = assemble_matrix(model.a)
    A.assemble()
    timings["assemble"] = clock() - t0
    t0 = clock()
    K = condition.system_matrix(A)
    timings["constrain"] = clock() - t0

    solver = DirectSolver(model.mesh.comm, prefix=f"fe2_rve_{bc}_{id(model)}_", options=solver_options)
    n = model.physics.n_comp
    C = np.zeros((n, n))
    hm, strain_error = np.zeros(n), np.zeros(n)
    b = model.w.x.petsc_vec.duplicate()
    r, x = condition.create_vector(), condition.create_vector()
    try:
        t0 = clock()
        solver.factorize(K)
        timings["factorize"] = clock() - t0
        timings["solve"] = timings["average"] = 0.0
        for k, e_k in enumerate(np.eye(n)):
            t0 = clock()
            model.E.value = e_k
            with b.localForm() as b_local:
                b_local.set(0.0)
            assemble_vector(b, model.L)
            b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
            condition.restrict(b, r)
            solver.solve(r, x)
            condition.prolong(x, model.w.x.petsc_vec)
            model.w.x.scatter_forward()
            timings["solve"] += clock() - t0
            t0 = clock()
            avg = model.averages()
            C[:, k] = avg.stress
            work = float(avg.stress @ e_k)
            hm[k] = abs(avg.energy - work) / abs(work)
            strain_error[k] = np.linalg.norm(avg.strain - e_k)
            timings["average"] += clock() - t0
    finally:
        model.E.value = np.zeros(n)
        for obj in (solver, condition, A, K, b, r, x):
            obj.destroy()
    log.info("%s: max Hill-Mandel residual %.2e", bc, hm.max())
    if max(hm.max(), strain_error.max()) > CONSISTENCY_TOL:
        raise SolveError(
            f"{bc} RVE solution is inconsistent: Hill-Mandel residual {hm.max():.2e}, "
            f"|<eps> - E| / |E| = {strain_error.max():.2e} (tolerance {CONSISTENCY_TOL:g}); "
            "the constrained system is singular or ill-conditioned"
        )
    return EffectiveTensor(
        bc=bc,
        C=C,
        hill_mandel_residual=hm,
        strain_average_error=strain_error,
        dofs={"fluctuation": model.num_dofs, "system": int(condition.size)},
        timings=timings,
    )
