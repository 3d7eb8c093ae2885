"""The macro boundary value problem, quasi-static, with quadrature-point constitutive data.

Find the displacement U with U = U_D(t) on the Dirichlet boundaries and

    R(U) = F_int(U) - F_ext(t) = 0,   F_int(v) = sum_q Sigma_q . strain(v) dV_q,

where Sigma_q and the tangent C_q at the quadrature points of the owned cells come from a
material-point source (closed-form law or RVE pool) evaluated at the macro strains
Ebar_q = reference + strain(U) (Mandel sym grad U; or F = I + grad U, row-major), and the
prescribed values at time t come from a :class:`~fe2.macro.loading.Loading`. Newton:

    J du = -R,   J(du, v) = sum_q strain(du) . C_q strain(v) dV_q.

* **Consistent predictor** (first iteration of a step): from the converged U_n, whose stresses
  and tangents the points still hold, J du = -R(U_n; t) is solved with du = U_D(t) - U_n on
  the Dirichlet dofs, imposed as a lifting (``apply_lifting``/``set_bc``): the boundary
  increment enters through the stiffness of the whole body, not as a strain jump in the
  elements next to the moving boundary. Without it (``predictor=False``) the new boundary
  values are written into U before the first evaluation, as before.
* **Line search** on the later iterations: U + alpha du with alpha = 1 first, accepted when
  |R|_free <= (1 - 1e-4 alpha) |R_0|_free (a step that reduces the residual is always taken
  whole); otherwise alpha is halved (``backtracking``) or taken from the secant root of
  g(alpha) = du . R(U + alpha du) through the last two trials (``secant``), up to
  ``line_search_steps`` trials, the last of which is kept. Each trial is one evaluation of the
  material points whose trial states the next evaluation replaces.

Converged when the Dirichlet values are met and |R|_free <= atol + rtol max(|R|, |F_ext|),
|R| including the reaction forces at the Dirichlet dofs (a scale-free test), or when
|R|_free is at the round-off floor of its terms (:mod:`fe2.convergence`); a line-search trial
that meets this test is accepted whatever its decrease. Material-point failures are reduced
over all ranks: every rank sees the same outcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dolfinx
import numpy as np
from dolfinx import fem
from dolfinx.fem.petsc import apply_lifting, assemble_matrix, assemble_vector, create_matrix, set_bc
from mpi4py import MPI
from petsc4py import PETSc

from fe2.convergence import converged, residual_terms
from fe2.fem.quadrature_forms import QuadratureForms
from fe2.macro.loading import Dirichlet, Loading, Traction
from fe2.material_point import MaterialPointFailure, MaterialPoints
from fe2.rve.micro_solver import NewtonOptions
from fe2.physics import Physics
from fe2.rve.solver import DirectSolver, SolveError

log = logging.getLogger(__name__)

__all__ = ["Dirichlet", "MacroProblem", "NewtonResult", "Traction", "LINE_SEARCHES"]

LINE_SEARCHES = ("backtracking", "secant", "off")
SUFFICIENT_DECREASE = 1e-4


@dataclass
class NewtonResult:
    """Outcome of one macro Newton solve (the same on every rank).

    ``iterations``: linear solves (the predictor counts as one); ``point_evaluations``: material
    point evaluations on this rank (m per evaluate); ``line_search_trials``: evaluations beyond
    the first trial of each iteration; ``point_failure``: a material point failed (on some rank);
    ``reason`` says what failed.
    """

    converged: bool
    iterations: int
    residual_norms: list[float]
    point_evaluations: int
    reason: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    point_failure: bool = False
    line_search_trials: int = 0


class MacroProblem:
    """Macro problem on a (distributed) mesh with one material-point source.

    Args:
        mesh: the macro mesh (any communicator).
        physics: elasticity (small strain) or finite_strain.
        degree: Lagrange degree of U.
        make_points: builds the material-point source for m points (the quadrature points of
            the cells this rank owns, cell-major); it is evaluated at Mandel strain vectors
            (small strain) or row-major F (finite strain), see :mod:`fe2.material_point`.
        dirichlet: prescribed displacements (at least enough to remove rigid motions).
        tractions: surface loads.
        body_force: force per volume (dim,) or a loading value, or None.
        newton: tolerances of the macro Newton method (``line_search_steps``: trials per
            iteration).
        petsc_options: options of the macro linear solver (default MUMPS LU).
        predictor: the consistent predictor (module docstring).
        line_search: 'backtracking', 'secant' or 'off'.
    """

    def __init__(
        self,
        mesh: dolfinx.mesh.Mesh,
        physics: Physics,
        degree: int,
        make_points: Callable[[int], MaterialPoints],
        *,
        dirichlet: Sequence[Dirichlet],
        tractions: Sequence[Traction] = (),
        body_force=None,
        newton: NewtonOptions = NewtonOptions(),
        petsc_options: dict[str, Any] | None = None,
        predictor: bool = True,
        line_search: str = "secant",
    ):
        if line_search not in LINE_SEARCHES:
            raise ValueError(f"line_search must be one of {LINE_SEARCHES}, got {line_search!r}")
        self.mesh, self.physics, self.newton = mesh, physics, newton
        self.predictor, self.line_search = predictor, line_search
        self.comm = mesh.comm
        self.forms = QuadratureForms(mesh, physics, degree)
        self.V = self.forms.V
        self.u = fem.Function(self.V, name=physics.primary)
        self.num_points = self.forms.num_cells * self.forms.num_qp
        self.points = make_points(self.num_points)
        #: Called as monitor(time, iteration, residual norm) at every Newton iteration.
        self.monitor: Callable[[float, int, float], None] | None = None
        self.loading = Loading(self.V, dirichlet, tractions, body_force)
        self.bcs = self.loading.bcs
        self.reaction_dofs = self.loading.reaction_dofs
        owned = self.V.dofmap.index_map.size_local * self.V.dofmap.index_map_bs
        dofs = [bc.dof_indices()[0] for bc in self.bcs]
        constrained = np.unique(np.concatenate(dofs)) if dofs else np.empty(0, dtype=np.int32)
        self._constrained = constrained[constrained < owned]
        self.R = self.u.x.petsc_vec.duplicate()
        self.du = self.u.x.petsc_vec.duplicate()
        self.b = self.u.x.petsc_vec.duplicate()
        self.f_ext: PETSc.Vec | None = None
        self.J = create_matrix(self.forms.jacobian)
        self.solver = DirectSolver(self.comm, prefix=f"fe2_macro_{id(self)}_", options=petsc_options)
        self._committed_u = self.u.x.array.copy()
        self._current = False  # the quadrature stresses/tangents belong to the present U

    # ------------------------------------------------------------------ material points

    def macro_strains(self) -> np.ndarray:
        """Macro strains at the owned quadrature points, (m, n)."""
        strain = self.physics.reference_strain + self.forms.strain_of(self.u.x.array)
        return strain.reshape(self.num_points, self.physics.n_comp)

    def _evaluate_points(self) -> str:
        """Evaluate the material points into the quadrature spaces; '' or the failure (all ranks)."""
        message = ""
        try:
            stresses, tangents = self.points.evaluate(self.macro_strains())
        except MaterialPointFailure as exc:
            message = f"rank {self.comm.rank}: {exc}"
        else:
            self.forms.stress_qp[:] = stresses.reshape(self.forms.stress_qp.shape)
            self.forms.tangent_qp[:] = tangents.reshape(self.forms.tangent_qp.shape)
        self._current = not message
        if self.comm.allreduce(int(bool(message)), op=MPI.SUM):
            self._current = False
            return next(m for m in self.comm.allgather(message) if m)
        return ""

    def commit(self) -> None:
        """Accept the present state (a converged step): the points' trial states and U."""
        self.points.commit()
        self._committed_u[:] = self.u.x.array

    def rollback(self) -> None:
        """Return to the committed state (a failed step)."""
        self.points.rollback()
        self.u.x.array[:] = self._committed_u
        self._current = False

    def set_committed(self, *, responses: bool = False) -> None:
        """Take the present U and the points' committed states as the committed state (after
        they were set from outside, e.g. from a checkpoint); ``responses``: the quadrature
        stresses and tangents were set too (the committed response at U)."""
        self._committed_u[:] = self.u.x.array
        self._current = responses

    # ------------------------------------------------------------------ residual

    def _residual_terms(self) -> float:
        """Size of the terms of the residual over all ranks (round-off floor; collective)."""
        forms = self.forms
        strain = self.macro_strains().reshape(forms.stress_qp.shape)
        s = self.physics.fluctuation_components  # the gradient part (not a macro temperature)
        local = residual_terms(forms.tangent_qp[..., s, s], strain[..., s], forms.dV, dim=self.mesh.topology.dim)
        return float(np.sqrt(self.comm.allreduce(local**2, op=MPI.SUM)))

    def _converged(self, norm: float, *, full: float, external: float) -> bool:
        """The convergence test of :mod:`fe2.convergence` at the present state (collective):
        |R|_free <= atol + rtol max(|R|, |F_ext|), else the round-off floor of the terms
        (computed only when the first test fails; ``norm`` and ``full`` agree on all ranks)."""
        newton, scale = self.newton, max(full, external)
        if converged(norm, atol=newton.atol, rtol=newton.rtol, scale=scale):
            return True
        return converged(norm, atol=newton.atol, rtol=newton.rtol, scale=scale,
                         terms=self._residual_terms())

    def _assemble_full_residual(self) -> None:
        """R = F_int - F_ext at the present U and the applied time, every row."""
        with self.R.localForm() as local:
            local.set(0.0)
        assemble_vector(self.R, self.forms.internal_force)
        self.R.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        if self.f_ext is not None:
            self.R.axpy(-1.0, self.f_ext)

    def _assemble_residual(self) -> tuple[float, float]:
        """R at the present U; (norm of R, norm of R on the free dofs). Leaves R with its
        Dirichlet rows zeroed."""
        self._assemble_full_residual()
        full = self.R.norm()
        self.R.array[self._constrained] = 0.0
        return full, self.R.norm()

    def _boundary_gap(self) -> float:
        """max |U_D(t) - U| over the Dirichlet dofs (all ranks)."""
        with self.b.localForm() as local:
            local.set(0.0)
        set_bc(self.b, self.bcs, x0=self.u.x.petsc_vec, alpha=1.0)
        return self.b.norm(PETSc.NormType.NORM_INFINITY)

    def _set_boundary_values(self) -> None:
        for bc in self.bcs:
            bc.set(self.u.x.array)
        self.u.x.scatter_forward()

    # ------------------------------------------------------------------ Newton

    def solve(self, t: float) -> NewtonResult:
        """Newton for time ``t`` from the present U (collective); U is left as reached."""
        newton, clock = self.newton, time.perf_counter
        self.loading.apply(t)
        self.f_ext = self.loading.external_force()
        external = self.f_ext.norm() if self.f_ext is not None else 0.0
        norms: list[float] = []
        seconds = {"points": 0.0, "assemble": 0.0, "solve": 0.0}
        evaluations, trials = 0, 0

        def result(ok: bool, iteration: int, reason: str = "", failure: bool = False) -> NewtonResult:
            return NewtonResult(ok, iteration, norms, evaluations, reason, seconds, failure, trials)

        def evaluate() -> str:
            nonlocal evaluations
            t0 = clock()
            failure = self._evaluate_points()
            evaluations += self.num_points
            seconds["points"] += clock() - t0
            return failure

        if not self.predictor:
            self._set_boundary_values()
            self._current = False
        if not self._current and (failure := evaluate()):
            return result(False, 0, failure, True)
        t0 = clock()
        full, norm = self._assemble_residual()
        gap = self._boundary_gap()
        seconds["assemble"] += clock() - t0
        for iteration in range(newton.max_iterations + 1):
            if self.monitor is not None:
                self.monitor(t, iteration, norm)
            if gap == 0.0:  # residuals are recorded for states that meet the boundary values
                norms.append(norm)
                log.debug("macro Newton %d: |R| = %.3e (full %.3e)", iteration, norm, full)
                if not np.isfinite(norm):
                    return result(False, iteration, "residual is not finite")
                if self._converged(norm, full=full, external=external):
                    return result(True, iteration)
            if iteration == newton.max_iterations:
                break
            t0 = clock()
            self.J.zeroEntries()
            assemble_matrix(self.J, self.forms.jacobian, bcs=self.bcs)
            self.J.assemble()
            self._right_hand_side(gap)
            seconds["assemble"] += clock() - t0
            t0 = clock()
            try:
                self.solver.factorize(self.J)
                self.solver.solve(self.b, self.du)
            except SolveError as exc:
                return result(False, iteration, str(exc))
            seconds["solve"] += clock() - t0
            if gap > 0.0:  # the predictor: taken whole, the boundary values then met exactly
                self.u.x.petsc_vec.axpy(1.0, self.du)
                self._set_boundary_values()
                if failure := evaluate():
                    return result(False, iteration + 1, failure, True)
                gap = 0.0
                t0 = clock()
                full, norm = self._assemble_residual()
                seconds["assemble"] += clock() - t0
                continue
            outcome = self._line_search(norm, evaluate, seconds, external=external)
            if isinstance(outcome, str):
                return result(False, iteration + 1, outcome, True)
            full, norm, extra = outcome
            trials += extra
        return result(
            False, newton.max_iterations,
            f"macro Newton did not converge in {newton.max_iterations} iterations "
            f"(residual {norms[-1] if norms else float('nan'):.3e})",
        )

    def _right_hand_side(self, gap: float) -> None:
        """b = -R on the free dofs, lifted by the boundary increment when ``gap`` > 0, and
        b = U_D - U on the Dirichlet dofs."""
        with self.b.localForm() as local:
            local.set(0.0)
        if gap > 0.0:
            apply_lifting(self.b, [self.forms.jacobian], bcs=[self.bcs], x0=[self.u.x.petsc_vec], alpha=1.0)
            self.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        self.b.axpy(-1.0, self.R)
        set_bc(self.b, self.bcs, x0=self.u.x.petsc_vec, alpha=1.0)

    def _line_search(self, norm0: float, evaluate: Callable[[], str], seconds: dict, *, external: float):
        """Take U + alpha du (module docstring); (|R|, |R|_free, extra trials) or the failure.
        ``external``: |F_ext| for the convergence test of a trial."""
        clock = time.perf_counter
        u0 = self.u.x.array.copy()
        slope0 = self.du.dot(self.R)  # g(0) = du . R(U), R with zeroed Dirichlet rows
        history = [(0.0, slope0)]
        alpha, steps = 1.0, max(1, self.newton.line_search_steps) if self.line_search != "off" else 1
        for trial in range(steps):
            self.u.x.array[:] = u0
            self.u.x.petsc_vec.axpy(alpha, self.du)
            self.u.x.scatter_forward()
            if failure := evaluate():
                return failure
            t0 = clock()
            full, norm = self._assemble_residual()
            seconds["assemble"] += clock() - t0
            if (norm <= (1.0 - SUFFICIENT_DECREASE * alpha) * norm0 or trial == steps - 1
                    or self._converged(norm, full=full, external=external)):
                if trial:
                    log.debug("line search: alpha = %.3g after %d trials", alpha, trial + 1)
                return full, norm, trial
            history.append((alpha, self.du.dot(self.R)))
            alpha = self._next_alpha(history)
        raise AssertionError("unreachable")

    def _next_alpha(self, history: list[tuple[float, float]]) -> float:
        """The next trial step: half the last one, or the secant root of g through the last
        two trials (kept within [alpha/10, alpha/2 ... ] bounds, else halving)."""
        alpha = history[-1][0]
        if self.line_search == "secant" and np.isfinite(history[-1][1]):
            (a0, g0), (a1, g1) = history[-2], history[-1]
            if g1 != g0:
                root = a1 - g1 * (a1 - a0) / (g1 - g0)
                if np.isfinite(root) and 0.1 * alpha <= root < alpha:
                    return float(root)
                if np.isfinite(root) and 0.0 < root < 0.1 * alpha:
                    return 0.1 * alpha
        return 0.5 * alpha

    # ------------------------------------------------------------------ outputs

    def reactions(self) -> dict[str, np.ndarray]:
        """Force the supports exert on the body at the present state, per Dirichlet boundary
        and component (dim,).

        F_support = F_int - F_ext summed over the boundary's prescribed dofs (e.g. positive in
        x on an edge pulled in +x; zero along the free direction of a roller); summed over
        ranks (collective).
        """
        self._assemble_full_residual()
        values = self.R.array_r
        return {
            name: np.array([self.comm.allreduce(float(values[d].sum()), op=MPI.SUM) for d in dofs])
            for name, dofs in self.reaction_dofs.items()
        }

    def boundary_displacements(self) -> dict[str, np.ndarray]:
        """Mean displacement per Dirichlet boundary and component (dim,) (collective)."""
        return self.loading.mean_displacements(self.u)

    def destroy(self) -> None:
        for obj in (self.solver, self.J, self.R, self.du, self.b):
            obj.destroy()
        self.loading.destroy()
