r"""Scale-separation indicator of a macro solution: is the first-order FE² model valid here?

At every macro quadrature point, with :math:`\ell` the RVE's physical size (macro length
units) and :math:`\bar E` the macro strain measured from the reference state (the
small-strain tensor, or :math:`\bar F - I` at finite strain):

.. math::  \varepsilon_L = \ell\, |\nabla \bar E| \,/\, \max(|\bar E|,\ \eta \max_\Omega |\bar E|)

with Frobenius norms (Mandel components keep the tensor norms) and the floor
:math:`\eta` (``strain_floor``, default 0.1) where the strain nearly vanishes: at a zero
crossing of the strain (a neutral axis, the point of the hole where the hoop stress changes
sign, an unloaded corner) the ratio is unbounded although the neglected gradient term is
small against the stresses of the body, so the gradient is measured against that level. :math:`\nabla \bar E` is recovered by the
**L2 projection** of the quadrature-point strain onto continuous P1 (mass matrix with exact
quadrature, factorised once), then differentiated: exact for a strain field linear in x
(P2 macro displacement), first-order accurate for P1.

Classes (τ = ``tolerance``): ``0`` strong separation (ε < τ, the first-order model
suffices), ``1`` weak (ε ≥ τ but ε² < τ: a second-order, strain-gradient model would be
needed), ``2`` none (ε² ≥ τ: FE² is not valid there). The indicator ε_T of transient
problems is not computed: every fe2 problem is quasi-static.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import ufl
from dolfinx import fem
from dolfinx.fem.petsc import assemble_matrix, assemble_vector
from mpi4py import MPI
from petsc4py import PETSc

from fe2.fem.quadrature_forms import QuadratureForms
from fe2.rve.solver import DirectSolver

log = logging.getLogger(__name__)

CLASSES = ("strong", "weak", "none")


@dataclass(frozen=True)
class Indicator:
    """The indicator at the owned quadrature points, and its reductions (all ranks).

    Attributes:
        epsilon: ε_L per point, (cells * qp,).
        classes: 0 strong, 1 weak, 2 none, (cells * qp,).
        fractions: class name -> volume fraction of the body.
        worst: largest ε_L over all ranks, and ``point`` where it is (dim coordinates).
    """

    epsilon: np.ndarray
    classes: np.ndarray
    fractions: dict[str, float]
    worst: float
    point: list[float]


class ScaleSeparation:
    """Computes ε_L of the macro strains of one mesh (collective methods).

    Args:
        forms: the macro problem's quadrature forms (mesh, physics, quadrature points).
        rve_size: ℓ, the RVE's edge in macro length units (> 0).
        tolerance: τ in (0, 1).
        strain_floor: η in [0, 1).
    """

    def __init__(self, forms: QuadratureForms, *, rve_size: float, tolerance: float, strain_floor: float = 0.1):
        self.forms, self.rve_size, self.tolerance, self.strain_floor = forms, rve_size, tolerance, strain_floor
        mesh, n = forms.mesh, forms.physics.n_comp
        self.comm = mesh.comm
        self.strain_q = fem.Function(forms.space.quadrature_space((n,)))
        W = fem.functionspace(mesh, ("Lagrange", 1, (n,)))
        self.projected = fem.Function(W)
        u, v = ufl.TrialFunction(W), ufl.TestFunction(W)
        exact = ufl.dx(domain=mesh, metadata={"quadrature_degree": 2})  # P1 x P1 on affine cells
        self.mass = assemble_matrix(fem.form(ufl.inner(u, v) * exact))
        self.mass.assemble()
        self.rhs_form = fem.form(ufl.inner(self.strain_q, v) * forms.dx)
        self.solver = DirectSolver(self.comm, prefix=f"fe2_scale_separation_{id(self)}_")
        self.solver.factorize(self.mass)
        self.gradient = fem.Expression(ufl.grad(self.projected), forms.space.reference_points)
        dim = mesh.geometry.dim
        self.points = forms.quadrature_coordinates().reshape(-1, dim)
        self.dV = forms.dV.ravel()

    def evaluate(self, strains: np.ndarray) -> Indicator:
        """ε_L of the strains (cells * qp, n) at the owned points (collective)."""
        forms, n = self.forms, self.forms.physics.n_comp
        E = np.asarray(strains, float).reshape(-1, n) - forms.physics.reference_strain
        size = E.size
        self.strain_q.x.array[:size] = E.ravel()
        self.strain_q.x.scatter_forward()
        b = assemble_vector(self.rhs_form)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        self.solver.solve(b, self.projected.x.petsc_vec)
        b.destroy()
        self.projected.x.scatter_forward()
        grad = self.gradient.eval(forms.mesh, forms.cells).reshape(len(E), -1)
        magnitude = np.linalg.norm(E, axis=1)
        largest = self.comm.allreduce(float(magnitude.max()) if len(magnitude) else 0.0, op=MPI.MAX)
        floor = self.strain_floor * largest
        denominator = np.maximum(magnitude, floor)
        epsilon = np.zeros(len(E))
        positive = denominator > 0
        epsilon[positive] = self.rve_size * np.linalg.norm(grad[positive], axis=1) / denominator[positive]
        tau = self.tolerance
        classes = np.where(epsilon < tau, 0, np.where(epsilon**2 < tau, 1, 2)).astype(np.int32)
        volume = self.comm.allreduce(float(self.dV.sum()), op=MPI.SUM)
        fractions = {
            name: self.comm.allreduce(float(self.dV[classes == c].sum()), op=MPI.SUM) / volume
            for c, name in enumerate(CLASSES)
        }
        local = int(np.argmax(epsilon)) if len(epsilon) else -1
        mine = (float(epsilon[local]) if len(epsilon) else -np.inf, -self.comm.rank)
        worst, owner = max(self.comm.allgather(mine))
        point = self.comm.bcast(self.points[local].tolist() if -owner == self.comm.rank else None, root=-owner)
        return Indicator(epsilon=epsilon, classes=classes, fractions=fractions, worst=worst, point=point)

    def destroy(self) -> None:
        self.solver.destroy()
        self.mass.destroy()


class ScaleSeparationMonitor:
    """The indicator as an output of `fe2 run`: history columns, fields, warnings, summary.

    Args:
        problem: the macro problem (its current displacement is evaluated).
        rve_size, tolerance, strain_floor: as :class:`ScaleSeparation`.
    """

    #: Per-point fields written to fields.xdmf, and how a cell value is made of them.
    FIELDS = {"scale_separation": np.max, "separation_class": np.max}

    def __init__(self, problem, *, rve_size: float, tolerance: float, strain_floor: float):
        self.problem = problem
        self.indicator = ScaleSeparation(
            problem.forms, rve_size=rve_size, tolerance=tolerance, strain_floor=strain_floor
        )
        self.last: Indicator | None = None

    def check(self, record) -> None:
        """Evaluate at the converged step and add the history.csv columns to
        ``record.diagnostics`` (a :class:`fe2.macro.stepping.StepRecord`; collective)."""
        record.diagnostics.update(self.step_columns(record.step))

    def step_columns(self, step: int) -> dict[str, str]:
        """Evaluate at the converged step; the history.csv columns (collective; rank 0 warns)."""
        result = self.last = self.indicator.evaluate(self.problem.macro_strains())
        tau = self.indicator.tolerance
        if result.fractions["none"] > 0 and self.problem.comm.rank == 0:
            log.warning(
                "step %d: no scale separation on %.1f %% of the body, weak on %.1f %% (eps_L up to "
                "%.3g at %s; strong needs eps_L < %.3g, weak eps_L^2 < %.3g): the first-order FE² "
                "model is not valid there", step, 100 * result.fractions["none"],
                100 * result.fractions["weak"], result.worst, np.round(result.point, 6).tolist(), tau, tau,
            )
        return {
            "scale_separation_max": f"{result.worst:.6e}",
            "scale_separation_point": " ".join(f"{x:.6g}" for x in result.point),
            **{f"separation_{name}": f"{result.fractions[name]:.6f}" for name in CLASSES},
        }

    def point_fields(self) -> dict[str, np.ndarray]:
        """ε_L and the class at the owned quadrature points of the last evaluation."""
        if self.last is None:
            return {}
        return {"scale_separation": self.last.epsilon, "separation_class": self.last.classes.astype(float)}

    def summary(self, rows: list[dict]) -> dict:
        """The indicator's part of summary.json, from the history rows of the run."""
        s = self.indicator
        out = {
            "rve_size": s.rve_size, "tolerance": s.tolerance, "strain_floor": s.strain_floor,
            "gradient": "L2 projection of the quadrature-point strain onto continuous P1",
            "classes": {"0": "strong (eps_L < tolerance)", "1": "weak (eps_L^2 < tolerance)", "2": "none"},
        }
        rows = [r for r in rows if "scale_separation_max" in r]
        if rows:
            worst = max(rows, key=lambda r: float(r["scale_separation_max"]))
            last = rows[-1]
            out["final"] = {name: float(last[f"separation_{name}"]) for name in CLASSES}
            out["worst"] = {
                "step": int(worst["step"]), "epsilon": float(worst["scale_separation_max"]),
                "point": [float(x) for x in worst["scale_separation_point"].split()],
            }
        return out

    def destroy(self) -> None:
        self.indicator.destroy()
