"""The macro boundary value problem, quasi-static, with quadrature-point constitutive data.

Find the displacement U with U = lambda U_D on the Dirichlet boundaries and

    R(U) = F_int(U) - lambda F_ext = 0,   F_int(v) = sum_q Sigma_q . strain(v) dV_q,

where Sigma_q and the tangent C_q at the quadrature points of the owned cells come from a
material-point source (closed-form law or RVE pool) evaluated at the macro strains
Ebar_q = reference + strain(U) (Mandel sym grad U; or F = I + grad U, row-major). Newton:

    J du = -R,   J(du, v) = sum_q strain(du) . C_q strain(v) dV_q,

converged when |R|_free <= atol + rtol * max(|R|, |lambda F_ext|), |R| including the
reaction forces at the Dirichlet dofs (a scale-free test), or when |R|_free is at the
round-off floor of its terms (:mod:`fe2.convergence`). Material-point failures are
reduced over all ranks: every rank sees the same outcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dolfinx
import numpy as np
import ufl
from dolfinx import fem
from dolfinx.fem.petsc import assemble_matrix, assemble_vector, create_matrix, set_bc
from mpi4py import MPI
from petsc4py import PETSc

from fe2.convergence import converged, residual_terms
from fe2.fem.quadrature_forms import QuadratureForms
from fe2.material_point import MaterialPointFailure, MaterialPoints
from fe2.rve.micro_solver import NewtonOptions
from fe2.rve.physics import Physics
from fe2.rve.solver import DirectSolver, SolveError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dirichlet:
    """Prescribed displacement component(s) on a set of boundary facets.

    Attributes:
        boundary: name (reactions are reported per name).
        facets: local indices of the facets.
        component: displacement component, or None for all components.
        value: prescribed value at load factor 1 (length units).
    """

    boundary: str
    facets: np.ndarray
    component: int | None
    value: float


@dataclass(frozen=True)
class Traction:
    """Surface traction (force per area) at load factor 1 on a set of boundary facets."""

    boundary: str
    facets: np.ndarray
    vector: np.ndarray


@dataclass
class NewtonResult:
    """Outcome of one macro Newton solve (the same on every rank).

    ``point_failure``: a material point failed (on some rank); ``reason`` says what failed.
    """

    converged: bool
    iterations: int
    residual_norms: list[float]
    point_evaluations: int
    reason: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    point_failure: bool = False


class MacroProblem:
    """Macro problem on a (distributed) mesh with one material-point source.

    Args:
        mesh: the macro mesh (any communicator).
        physics: elasticity (small strain) or finite_strain.
        degree: Lagrange degree of U.
        make_points: builds the material-point source for m points (the quadrature points of
            the cells this rank owns, cell-major).
        dirichlet: prescribed displacements (at least enough to remove rigid motions).
        tractions: surface loads.
        body_force: force per volume (dim,), or None.
        newton: tolerances of the macro Newton method.
        petsc_options: options of the macro linear solver (default MUMPS LU).
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
        body_force: np.ndarray | None = None,
        newton: NewtonOptions = NewtonOptions(),
        petsc_options: dict[str, Any] | None = None,
    ):
        self.mesh, self.physics, self.newton = mesh, physics, newton
        self.comm = mesh.comm
        self.forms = QuadratureForms(mesh, physics, degree)
        self.V = self.forms.V
        self.u = fem.Function(self.V, name="displacement")
        self.num_points = self.forms.num_cells * self.forms.num_qp
        self.points = make_points(self.num_points)
        #: Called as monitor(load_factor, iteration, residual norm) at every Newton iteration.
        self.monitor: Callable[[float, int, float], None] | None = None

        tdim = mesh.topology.dim
        mesh.topology.create_connectivity(tdim - 1, tdim)
        bs = self.V.dofmap.index_map_bs
        owned = self.V.dofmap.index_map.size_local * bs
        self._bcs: list[tuple[fem.DirichletBC, fem.Constant, float]] = []
        #: Owned dofs whose forces make up each boundary's reaction, per component (only the
        #: prescribed components: a roller exerts no force along its free direction).
        self.reaction_dofs: dict[str, list[np.ndarray]] = {}
        for d in dirichlet:
            reaction = self.reaction_dofs.setdefault(d.boundary, [np.empty(0, dtype=np.int32)] * bs)
            for c in range(bs) if d.component is None else [d.component]:
                Vc = self.V.sub(c)
                g = fem.Constant(mesh, 0.0)
                dofs = fem.locate_dofs_topological(Vc, tdim - 1, d.facets)
                self._bcs.append((fem.dirichletbc(g, dofs, Vc), g, d.value))
                reaction[c] = np.union1d(reaction[c], dofs[dofs < owned]).astype(np.int32)
        self.bcs = [bc for bc, _, _ in self._bcs]

        self.R = self.u.x.petsc_vec.duplicate()
        self.du = self.u.x.petsc_vec.duplicate()
        self.f_ext = self._external_force(tractions, body_force)
        self.J = create_matrix(self.forms.jacobian)
        self.solver = DirectSolver(self.comm, prefix=f"fe2_macro_{id(self)}_", options=petsc_options)

    # ------------------------------------------------------------------ set-up helpers

    def _external_force(self, tractions: Sequence[Traction], body_force) -> PETSc.Vec | None:
        """F_ext(v) = sum int_facets t . v ds + int b . v dx (at load factor 1)."""
        v = ufl.TestFunction(self.V)
        terms = []
        if tractions:
            tdim = self.mesh.topology.dim
            facets = np.concatenate([t.facets for t in tractions]).astype(np.int32)
            markers = np.concatenate(
                [np.full(len(t.facets), i + 1, dtype=np.int32) for i, t in enumerate(tractions)]
            )
            order = np.argsort(facets, kind="stable")
            tags = dolfinx.mesh.meshtags(self.mesh, tdim - 1, facets[order], markers[order])
            ds = ufl.Measure("ds", domain=self.mesh, subdomain_data=tags)
            for i, t in enumerate(tractions):
                terms.append(ufl.dot(fem.Constant(self.mesh, np.asarray(t.vector, float)), v) * ds(i + 1))
        if body_force is not None:
            terms.append(ufl.dot(fem.Constant(self.mesh, np.asarray(body_force, float)), v) * ufl.dx)
        if not terms:
            return None
        f = assemble_vector(fem.form(sum(terms[1:], terms[0])))
        f.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        return f

    # ------------------------------------------------------------------ evaluation

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
        if self.comm.allreduce(int(bool(message)), op=MPI.SUM):
            return next(m for m in self.comm.allgather(message) if m)
        return ""

    def _residual_terms(self) -> float:
        """Size of the terms of the residual over all ranks (round-off floor; collective)."""
        forms = self.forms
        strain = self.macro_strains().reshape(forms.stress_qp.shape)
        local = residual_terms(forms.tangent_qp, strain, forms.dV, dim=self.mesh.topology.dim)
        return float(np.sqrt(self.comm.allreduce(local**2, op=MPI.SUM)))

    def _assemble_residual(self, load_factor: float) -> None:
        with self.R.localForm() as local:
            local.set(0.0)
        assemble_vector(self.R, self.forms.internal_force)
        self.R.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        if self.f_ext is not None:
            self.R.axpy(-load_factor, self.f_ext)

    # ------------------------------------------------------------------ Newton

    def solve(self, load_factor: float) -> NewtonResult:
        """Newton for the load factor, from the current U (collective). U is left as reached."""
        newton, clock = self.newton, time.perf_counter
        for bc, g, value in self._bcs:
            g.value = load_factor * value
            bc.set(self.u.x.array)
        self.u.x.scatter_forward()
        external = abs(load_factor) * (self.f_ext.norm() if self.f_ext is not None else 0.0)
        norms: list[float] = []
        seconds = {"points": 0.0, "assemble": 0.0, "solve": 0.0}
        evaluations = 0
        for iteration in range(newton.max_iterations + 1):
            t0 = clock()
            failure = self._evaluate_points()
            evaluations += self.num_points
            seconds["points"] += clock() - t0
            if failure:
                return NewtonResult(False, iteration, norms, evaluations, failure, seconds, point_failure=True)
            t0 = clock()
            self._assemble_residual(load_factor)
            full = self.R.norm()
            set_bc(self.R, self.bcs, x0=self.u.x.petsc_vec, alpha=-1.0)
            norm = self.R.norm()
            norms.append(norm)
            seconds["assemble"] += clock() - t0
            log.debug("macro Newton %d: |R| = %.3e (full %.3e)", iteration, norm, full)
            if self.monitor is not None:
                self.monitor(load_factor, iteration, norm)
            if not np.isfinite(norm):
                return NewtonResult(False, iteration, norms, evaluations, "residual is not finite", seconds)
            if converged(norm, atol=newton.atol, rtol=newton.rtol, scale=max(full, external),
                         terms=self._residual_terms()):
                return NewtonResult(True, iteration, norms, evaluations, "", seconds)
            if iteration == newton.max_iterations:
                break
            t0 = clock()
            self.J.zeroEntries()
            assemble_matrix(self.J, self.forms.jacobian, bcs=self.bcs)
            self.J.assemble()
            seconds["assemble"] += clock() - t0
            t0 = clock()
            self.R.scale(-1.0)
            try:
                self.solver.factorize(self.J)
                self.solver.solve(self.R, self.du)
            except SolveError as exc:
                return NewtonResult(False, iteration, norms, evaluations, str(exc), seconds)
            self.u.x.petsc_vec.axpy(1.0, self.du)
            self.u.x.scatter_forward()
            seconds["solve"] += clock() - t0
        return NewtonResult(
            False, newton.max_iterations, norms, evaluations,
            f"macro Newton did not converge in {newton.max_iterations} iterations "
            f"(residual {norms[-1]:.3e})", seconds,
        )

    def reactions(self, load_factor: float) -> dict[str, np.ndarray]:
        """Force the supports exert on the body, per Dirichlet boundary and component (dim,).

        F_support = F_int - lambda F_ext summed over the boundary's prescribed dofs (e.g.
        positive in x on an edge pulled in +x; zero along the free direction of a roller);
        summed over ranks (collective).
        """
        self._assemble_residual(load_factor)
        values = self.R.array_r
        return {
            name: np.array([self.comm.allreduce(float(values[d].sum()), op=MPI.SUM) for d in dofs])
            for name, dofs in self.reaction_dofs.items()
        }

    def destroy(self) -> None:
        for obj in (self.solver, self.J, self.R, self.du, self.f_ext):
            if obj is not None:
                obj.destroy()
