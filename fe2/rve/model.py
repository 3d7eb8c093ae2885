"""Discretised RVE, independent of the boundary conditions and of the state.

Unknown: the fluctuation w in a Lagrange space V on the RVE mesh Y (a box). For a macro
strain E (n,), the micro strain at the quadrature points is eps = E + strain(w). Each phase
law maps it to the stress and the consistent tangent, which live in quadrature spaces:

    residual   R(v)     = (sigma_q, strain(v))_Y,
    Jacobian   J(u, v)  = (C_q strain(u), strain(v))_Y,
    sensitivity L_dE(v) = -(C_q dE, strain(v))_Y.

The quadrature spaces and the first two forms come from :class:`QuadratureForms`; volume
averages <.> = |Y|^-1 int_Y . dx use the same points. Arrays at quadrature points have shape
(num_cells, num_qp, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import dolfinx
import numpy as np
import ufl
from dolfinx import fem

from fe2.errors import InputError
from fe2.fem.quadrature_forms import QuadratureForms
from fe2.materials.base import Material
from fe2.rve.box import Box
from fe2.rve.physics import Physics

log = logging.getLogger(__name__)

#: History of one RVE: phase tag -> variable name -> array (num_phase_points, ...).
History = dict[int, dict[str, np.ndarray]]


class RveInputError(InputError):
    """The RVE mesh or phases do not fit together (a user error, not a bug)."""


@dataclass(frozen=True)
class Averages:
    """Volume averages of one RVE state.

    Attributes:
        stress: <sigma>, shape (n,).
        strain: <eps>, shape (n,).
        energy: <sigma . (eps - eps_ref)> (eps_ref: the physics' reference strain).
        scale: <|sigma| |eps - eps_ref|>, the magnitude ``energy`` is compared with.
    """

    stress: np.ndarray
    strain: np.ndarray
    energy: float
    scale: float


class RveModel:
    """Function spaces, phase laws and compiled forms of an RVE.

    Args:
        mesh: RVE mesh on a single process (``MPI.COMM_SELF``), filling a box.
        cell_tags: cell markers, one value per phase.
        physics: the field problem (its ``dim`` must equal the mesh's).
        phases: phase tag -> material law (of this physics).
        degree: Lagrange degree of the fluctuation.
    """

    def __init__(
        self,
        mesh: dolfinx.mesh.Mesh,
        cell_tags: dolfinx.mesh.MeshTags,
        physics: Physics,
        phases: Mapping[int, Material],
        *,
        degree: int = 1,
    ):
        if mesh.comm.size != 1:
            raise RveInputError("an RVE mesh must live on one process (MPI.COMM_SELF)")
        dim = mesh.geometry.dim
        if physics.dim != dim:
            raise RveInputError(f"{physics.name} in {physics.dim}D on a {dim}D mesh")
        for tag, material in phases.items():
            if material.physics != physics.name:
                raise RveInputError(
                    f"phase {tag}: a {material.physics} law in a {physics.name} RVE"
                )
        self.mesh, self.cell_tags, self.physics, self.degree = mesh, cell_tags, physics, degree
        self.phases = dict(phases)
        self.box = Box.bounding(mesh.geometry.x[:, :dim])
        n = physics.n_comp

        self.forms = QuadratureForms(mesh, physics, degree)
        forms = self.forms
        self.quadrature_degree, self.num_qp = forms.quadrature_degree, forms.num_qp
        self.V, self.dV, self.residual, self.jacobian = forms.V, forms.dV, forms.internal_force, forms.jacobian
        self.stress_q, self.tangent_q, self.strain_of = forms.stress_q, forms.tangent_q, forms.strain_of
        self.w = fem.Function(self.V, name="fluctuation")
        self.E = fem.Constant(mesh, np.zeros(n))  # macro strain
        self.dE = fem.Constant(mesh, np.zeros(n))  # macro strain direction (sensitivity)
        v = ufl.TestFunction(self.V)
        self.sensitivity_rhs = fem.form(
            -ufl.inner(ufl.dot(self.tangent_q, self.dE), physics.strain(v)) * forms.dx
        )
        self.volume = float(self.dV.sum())
        if abs(self.volume - self.box.volume) > 1e-8 * self.box.volume:
            raise RveInputError(
                f"the RVE mesh does not fill its bounding box: mesh volume {self.volume:.12g}, "
                f"box volume {self.box.volume:.12g}"
            )
        self.phase_cells = self._phase_cells()
        #: Micro strain of the last constitutive update, (num_cells, num_qp, n).
        self.strain_qp = np.zeros((self.num_cells, self.num_qp, n))

    @property
    def num_cells(self) -> int:
        return self.forms.num_cells

    @property
    def num_dofs(self) -> int:
        """Number of scalar degrees of freedom of the fluctuation."""
        return self.V.dofmap.index_map.size_local * self.V.dofmap.index_map_bs

    @property
    def stress_qp(self) -> np.ndarray:
        """Stress at the quadrature points, (num_cells, num_qp, n) (a view)."""
        return self.forms.stress_qp

    @property
    def tangent_qp(self) -> np.ndarray:
        """Consistent tangent at the quadrature points, (num_cells, num_qp, n, n) (a view)."""
        return self.forms.tangent_qp

    @property
    def is_linear(self) -> bool:
        """All phases linear: the tangent is constant."""
        return all(material.is_linear for material in self.phases.values())

    def _phase_cells(self) -> dict[int, np.ndarray]:
        """Cells of each phase; every cell must belong to exactly one phase."""
        tags_in_mesh = sorted(set(np.unique(self.cell_tags.values).tolist()))
        covered = np.zeros(self.num_cells, dtype=bool)
        cells = {}
        for tag in self.phases:
            if tag not in tags_in_mesh:
                raise RveInputError(
                    f"phase tag {tag} is not in the mesh (its cell tags are {tags_in_mesh})"
                )
            cells[tag] = np.sort(self.cell_tags.find(tag))
            covered[cells[tag]] = True
        if not covered.all():
            missing = sorted(set(tags_in_mesh) - set(self.phases))
            raise RveInputError(
                f"{np.count_nonzero(~covered)} cells have no phase: cell tags {missing} "
                f"are in the mesh but not among the phases"
            )
        return cells

    def initial_history(self) -> History:
        """History of a virgin RVE."""
        return {
            tag: material.initial_state(self.physics.dim, len(self.phase_cells[tag]) * self.num_qp)
            for tag, material in self.phases.items()
        }

    def constitutive_update(self, history: History) -> tuple[History, bool]:
        """Stress and tangent of the current (E, w) from the committed ``history``.

        Writes :attr:`stress_q`, :attr:`tangent_q` and :attr:`strain_qp`; returns the trial
        history and False if any point is inadmissible (NaN, det F <= 0).
        """
        n = self.physics.n_comp
        self.strain_qp[:] = self.E.value + self.strain_of(self.w.x.array)
        stress, tangent = self.stress_qp, self.tangent_qp
        trial: History = {}
        admissible = True
        for tag, material in self.phases.items():
            cells = self.phase_cells[tag]
            result = material.update(self.strain_qp[cells].reshape(len(cells) * self.num_qp, n), history[tag], self.physics.dim)
            stress[cells] = result.stress.reshape(len(cells), self.num_qp, n)
            tangent[cells] = result.tangent.reshape(len(cells), self.num_qp, n, n)
            trial[tag] = result.state
            admissible &= bool(result.ok.all())
        return trial, admissible and bool(np.isfinite(stress).all())

    def average(self, values: np.ndarray) -> np.ndarray:
        """Volume average of a quadrature array (num_cells, num_qp, ...)."""
        return np.tensordot(self.dV, values, axes=([0, 1], [0, 1])) / self.volume

    def averages(self, stress: np.ndarray | None = None, strain: np.ndarray | None = None) -> Averages:
        """<sigma>, <eps> and the Hill-Mandel work terms (default: the last update)."""
        stress = self.stress_qp if stress is None else stress
        strain = self.strain_qp if strain is None else strain
        h = strain - self.physics.reference_strain
        return Averages(
            stress=self.average(stress),
            strain=self.average(strain),
            energy=float(self.average(np.einsum("cqi,cqi->cq", stress, h))),
            scale=float(self.average(np.linalg.norm(stress, axis=-1) * np.linalg.norm(h, axis=-1))),
        )

    def volume_fractions(self) -> dict[int, float]:
        """Volume fraction of each phase tag (sum = 1)."""
        cell_volume = self.dV.sum(axis=1)
        return {
            tag: float(cell_volume[cells].sum() / self.volume)
            for tag, cells in self.phase_cells.items()
        }
