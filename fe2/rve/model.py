"""Discretised RVE: mesh, spaces, phases and quadrature -- no state of any solve.

Unknown: the fluctuation w in a Lagrange space V on the RVE mesh Y (a box). For a macro
strain E (n,) (a Mandel vector (e11, e22, sqrt2 e12) / 6 in 3D for small strain, F row-major
at finite strain, a gradient for conduction), the micro strain at the quadrature points is
eps = E + strain(w). Each phase law maps it to the stress and the consistent tangent at the
quadrature points:

    residual   R(v)     = (sigma_q, strain(v))_Y,
    Jacobian   J(u, v)  = (C_q strain(u), strain(v))_Y,
    sensitivity L_dE(v) = -(C_q dE, strain(v))_Y.

The model is shared by every solver of the RVE type and holds nothing that changes during a
solve: the micro solvers (:mod:`fe2.rve.newton`, :mod:`fe2.rve.batched`) own their work
arrays.

The mesh may be distributed over the ranks of a communicator (a large RVE solved by several
ranks together): quadrature arrays then cover the cells this rank owns, fluctuation arrays
the dofs it holds (owned and ghosts), and volume averages and other reductions are summed
over the communicator (collective calls; a no-op on one process). Arrays at quadrature points have shape (P, num_cells, num_qp, ...) for P points
solved together (P = 1 for one solve); a stacked :data:`History` holds the P points' phase
variables one after the other, (P * num_phase_qp, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import dolfinx
import numpy as np
from mpi4py import MPI

from fe2.errors import InputError
from fe2.fem.element_operators import ElementOperators, element_operators
from fe2.fem.quadrature_forms import QuadratureSpace
from fe2.materials.base import Material
from fe2.rve.box import Box
from fe2.physics import Physics

log = logging.getLogger(__name__)

#: History of one RVE: phase tag -> variable name -> array (num_phase_points, ...).
History = dict[int, dict[str, np.ndarray]]


def allreduce(comm: MPI.Comm, values, op=MPI.SUM):
    """``values`` (a number or an array) reduced over ``comm`` (arrays by buffer, in their dtype)."""
    if comm.size == 1:
        return values
    array = np.asarray(values)
    if array.ndim == 0:
        return comm.allreduce(array.item(), op=op)
    array = np.ascontiguousarray(array)
    out = np.empty_like(array)
    comm.Allreduce(array, out, op=op)
    return out


class RveInputError(InputError):
    """The RVE mesh or phases do not fit together (a user error, not a bug)."""


@dataclass(frozen=True)
class Averages:
    """Volume averages of P RVE states.

    Attributes:
        stress: <sigma>, shape (P, n).
        strain: <eps>, shape (P, n).
        energy: <sigma . (eps - eps_ref)> (eps_ref: the physics' reference strain), (P,).
        scale: <|sigma| |eps - eps_ref|>, the magnitude ``energy`` is compared with, (P,).
    """

    stress: np.ndarray
    strain: np.ndarray
    energy: np.ndarray
    scale: np.ndarray


@dataclass(frozen=True)
class MicroUpdate:
    """Constitutive update of P RVE states.

    Attributes:
        stress: (P, num_cells, num_qp, n).
        tangent: (P, num_cells, num_qp, n, n).
        history: the trial history, stacked over the P points.
        ok: (P,) False where a quadrature point is inadmissible (NaN, det F <= 0).
    """

    stress: np.ndarray
    tangent: np.ndarray
    history: History
    ok: np.ndarray


class RveModel:
    """Function space, phase laws and quadrature of an RVE (immutable during solves).

    Args:
        mesh: RVE mesh filling a box, on one process or distributed over its communicator.
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
        self.comm = mesh.comm
        dim = mesh.geometry.dim
        if physics.dim != dim:
            raise RveInputError(f"{physics.name} in {physics.dim}D on a {dim}D mesh")
        for tag, material in phases.items():
            if material.physics != physics.laws_of:
                raise RveInputError(
                    f"phase {tag}: a {material.physics} law in a {physics.name} RVE"
                )
        self.mesh, self.cell_tags, self.physics, self.degree = mesh, cell_tags, physics, degree
        self.phases = dict(phases)
        x = mesh.geometry.x[:, :dim]
        self.box = Box(lo=allreduce(self.comm, x.min(axis=0), MPI.MIN),
                       hi=allreduce(self.comm, x.max(axis=0), MPI.MAX))
        self.space = QuadratureSpace(mesh, physics, degree, fluctuation=True)
        space = self.space
        self.V, self.dV, self.num_qp = space.V, space.dV, space.num_qp
        self.quadrature_degree = space.quadrature_degree
        self.volume = float(self.sum(self.dV.sum()))
        if abs(self.volume - self.box.volume) > 1e-8 * self.box.volume:
            raise RveInputError(
                f"the RVE mesh does not fill its bounding box: mesh volume {self.volume:.12g}, "
                f"box volume {self.box.volume:.12g}"
            )
        self.phase_cells = self._phase_cells()
        self._operators: ElementOperators | None = None

    @property
    def num_cells(self) -> int:
        return self.space.num_cells

    @property
    def distributed(self) -> bool:
        """The mesh is shared out over several ranks."""
        return self.comm.size > 1

    @property
    def num_dofs(self) -> int:
        """Length of this rank's fluctuation array: the scalar dofs it owns and its ghosts
        (all dofs on one process)."""
        index_map = self.V.dofmap.index_map
        return (index_map.size_local + index_map.num_ghosts) * self.V.dofmap.index_map_bs

    @property
    def global_dofs(self) -> int:
        """Number of scalar degrees of freedom of the fluctuation over all ranks."""
        return self.V.dofmap.index_map.size_global * self.V.dofmap.index_map_bs

    def sum(self, values):
        """Sum of a float or array over the ranks of the mesh (collective)."""
        return allreduce(self.comm, values)

    def all(self, flags) -> np.ndarray | bool:
        """Logical AND of boolean flags (a bool or array) over the ranks (collective)."""
        if self.comm.size == 1:
            return flags
        return allreduce(self.comm, np.asarray(flags, dtype=bool), MPI.LAND)

    @property
    def operators(self) -> ElementOperators:
        """Element strain operators of the fluctuation space (built on first use)."""
        if self._operators is None:
            self._operators = element_operators(self.space)
        return self._operators

    @property
    def is_linear(self) -> bool:
        """All phases linear: the tangent is constant."""
        return all(material.is_linear for material in self.phases.values())

    def _phase_cells(self) -> dict[int, np.ndarray]:
        """Owned cells of each phase; every cell must belong to exactly one phase (checked over
        all ranks, the same error on each)."""
        local_tags = set(np.unique(self.cell_tags.values).tolist())
        tags_in_mesh = sorted(set().union(*self.comm.allgather(local_tags)))
        covered = np.zeros(self.num_cells, dtype=bool)
        cells = {}
        for tag in self.phases:
            if tag not in tags_in_mesh:
                raise RveInputError(
                    f"phase tag {tag} is not in the mesh (its cell tags are {tags_in_mesh})"
                )
            found = self.cell_tags.find(tag)
            cells[tag] = np.sort(found[found < self.num_cells])
            covered[cells[tag]] = True
        uncovered = int(self.sum(np.count_nonzero(~covered)))
        if uncovered:
            missing = sorted(set(tags_in_mesh) - set(self.phases))
            raise RveInputError(
                f"{uncovered} cells have no phase: cell tags {missing} "
                f"are in the mesh but not among the phases"
            )
        return cells

    # ------------------------------------------------------------------ history

    def initial_history(self) -> History:
        """History of one virgin RVE."""
        return {
            tag: material.initial_state(self.physics.tensor_dim, len(self.phase_cells[tag]) * self.num_qp)
            for tag, material in self.phases.items()
        }

    @staticmethod
    def stack(histories: Sequence[History]) -> History:
        """The histories of P points, stacked (one array per phase variable)."""
        if len(histories) == 1:
            return histories[0]
        first = histories[0]
        return {tag: {k: np.concatenate([h[tag][k] for h in histories]) for k in first[tag]} for tag in first}

    @staticmethod
    def split(history: History, count: int) -> list[History]:
        """The stacked history of ``count`` points -> one history per point (copies)."""
        parts = [{} for _ in range(count)]
        for tag, variables in history.items():
            for name, values in variables.items():
                for part, block in zip(parts, np.split(values, count)):
                    part.setdefault(tag, {})[name] = block.copy()
        return parts

    # ------------------------------------------------------------------ constitutive law

    def constitutive_update(self, strain: np.ndarray, history: History, *,
                            phase_cells: Mapping[int, np.ndarray | slice] | None = None) -> MicroUpdate:
        """Stress and tangent at the micro strains ``strain`` (P, num_cells, num_qp, n)
        from the committed ``history`` (stacked over the P points); pure. ``phase_cells``: the
        positions of each phase's cells in the arrays (default :attr:`phase_cells`; a slice
        where the cells are ordered by phase, :mod:`fe2.rve.phase_order`)."""
        P, n = strain.shape[0], self.physics.n_comp
        stress = np.empty(strain.shape)
        tangent = np.empty((*strain.shape, n))
        trial: History = {}
        ok = np.ones(P, dtype=bool)
        for tag, material in self.phases.items():
            cells = (self.phase_cells if phase_cells is None else phase_cells)[tag]
            shape = (P, len(self.phase_cells[tag]), self.num_qp)
            result = material.update(strain[:, cells].reshape(-1, n), history[tag], self.physics.tensor_dim)
            stress[:, cells] = result.stress.reshape(*shape, n)
            tangent[:, cells] = result.tangent.reshape(*shape, n, n)
            trial[tag] = result.state
            ok &= np.asarray(result.ok).reshape(P, -1).all(axis=1)
        ok &= np.isfinite(stress).reshape(P, -1).all(axis=1)
        return MicroUpdate(stress=stress, tangent=tangent, history=trial, ok=ok)

    @property
    def has_out_of_plane_stress(self) -> bool:
        """A plane-strain RVE (2D tensors) whose every phase law defines the out-of-plane
        stress of plane strain (``out_of_plane_stress``: sigma33 at small strain, P33 at
        finite strain)."""
        return (self.physics.tensor_dim == 2
                and all(hasattr(law, "out_of_plane_stress") for law in self.phases.values()))

    def out_of_plane_stress(self, strain: np.ndarray, history: History) -> np.ndarray:
        """sigma33 (P33 at finite strain) of plane strain (P, num_cells, num_qp) at the micro strains ``strain``
        (P, num_cells, num_qp, n) of converged states with the (stacked) ``history``
        (needs :attr:`has_out_of_plane_stress`)."""
        P, n = strain.shape[0], self.physics.n_comp
        sigma33 = np.empty(strain.shape[:3])
        for tag, law in self.phases.items():
            cells = self.phase_cells[tag]
            values = law.out_of_plane_stress(strain[:, cells].reshape(-1, n), history[tag])
            sigma33[:, cells] = values.reshape(P, len(cells), self.num_qp)
        return sigma33

    # ------------------------------------------------------------------ averages

    def average(self, values: np.ndarray) -> np.ndarray:
        """Volume average of a quadrature array (num_cells, num_qp, ...) of one state
        (collective)."""
        return self.sum(np.tensordot(self.dV, values, axes=([0, 1], [0, 1]))) / self.volume

    def point_averages(self, values: np.ndarray) -> np.ndarray:
        """Volume averages of P states: (P, num_cells, num_qp, ...) -> (P, ...) (collective)."""
        return self.sum(np.einsum("cq,pcq...->p...", self.dV, values)) / self.volume

    def averages(self, stress: np.ndarray, strain: np.ndarray) -> Averages:
        """<sigma>, <eps> and the Hill-Mandel work terms of P states, (P, num_cells, num_qp, n) each."""
        h = strain - self.physics.reference_strain
        return Averages(
            stress=self.point_averages(stress),
            strain=self.point_averages(strain),
            energy=self.point_averages(np.einsum("pcqi,pcqi->pcq", stress, h)),
            scale=self.point_averages(np.linalg.norm(stress, axis=-1) * np.linalg.norm(h, axis=-1)),
        )

    def volume_fractions(self) -> dict[int, float]:
        """Volume fraction of each phase tag (sum = 1; collective)."""
        cell_volume = self.dV.sum(axis=1)
        tags = list(self.phase_cells)
        volumes = self.sum(np.array([cell_volume[self.phase_cells[t]].sum() for t in tags]))
        return {tag: float(v / self.volume) for tag, v in zip(tags, volumes)}
