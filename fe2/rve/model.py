"""Discretised linear RVE, independent of the boundary conditions.

Unknown: the fluctuation w in a Lagrange space V on the RVE mesh Y (a box). For a macro
strain E (n,), the micro strain is eps = E + strain(w) and the stress sigma = C(x) eps with a
phase-wise constant tangent C (n x n, Mandel for elasticity). The weak form is

    a(w, v) = (C strain(w), strain(v))_Y,        L_E(v) = -(C E, strain(v))_Y,

and volume averages <.> = |Y|^-1 int_Y . dx are evaluated at quadrature points that
integrate sigma:eps exactly on affine cells (degree 2(p-1) for Lagrange degree p).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import basix
import dolfinx
import numpy as np
import ufl
from dolfinx import fem

from fe2.errors import InputError
from fe2.materials.linear import LinearMaterial
from fe2.rve.box import Box
from fe2.rve.physics import Physics

log = logging.getLogger(__name__)


class RveInputError(InputError):
    """The RVE mesh or phases do not fit together (a user error, not a bug)."""


@dataclass(frozen=True)
class Averages:
    """Volume averages of one RVE state.

    Attributes:
        stress: <sigma>, shape (n,).
        strain: <eps>, shape (n,).
        energy: <sigma : eps> (twice the mean strain-energy density).
    """

    stress: np.ndarray
    strain: np.ndarray
    energy: float


class RveModel:
    """Function space, phase tangents and compiled forms of a linear RVE.

    Args:
        mesh: RVE mesh on a single process (``MPI.COMM_SELF``), filling a box.
        cell_tags: cell markers, one value per phase.
        physics: the field problem (its ``dim`` must equal the mesh's).
        phases: phase tag -> linear material.
        degree: Lagrange degree of the fluctuation.
    """

    def __init__(
        self,
        mesh: dolfinx.mesh.Mesh,
        cell_tags: dolfinx.mesh.MeshTags,
        physics: Physics,
        phases: Mapping[int, LinearMaterial],
        *,
        degree: int = 1,
    ):
        if mesh.comm.size != 1:
            raise RveInputError("an RVE mesh must live on one process (MPI.COMM_SELF)")
        dim = mesh.geometry.dim
        if physics.dim != dim:
            raise RveInputError(f"{physics.name} in {physics.dim}D on a {dim}D mesh")
        self.mesh, self.cell_tags, self.physics, self.degree = mesh, cell_tags, physics, degree
        self.phases = dict(phases)
        self.box = Box.bounding(mesh.geometry.x[:, :dim])
        n = physics.n_comp

        self.V = fem.functionspace(mesh, ("Lagrange", degree, physics.value_shape))
        self.C = fem.Function(fem.functionspace(mesh, ("DG", 0, (n, n))), name="tangent")
        self.E = fem.Constant(mesh, np.zeros(n))
        self.w = fem.Function(self.V, name="fluctuation")
        self._fill_tangent()

        u, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        strain, C = physics.strain, self.C
        self.a = fem.form(ufl.inner(C * strain(u), strain(v)) * ufl.dx)
        self.L = fem.form(-ufl.inner(C * self.E, strain(v)) * ufl.dx)

        # Exact for sigma:eps on affine simplices; tensor-product cells need full degree.
        simplex = mesh.basix_cell() in (basix.CellType.triangle, basix.CellType.tetrahedron)
        quadrature_degree = 2 * (degree - 1) if simplex else 2 * degree
        points, weights = basix.make_quadrature(mesh.basix_cell(), quadrature_degree)
        eps = self.E + strain(self.w)
        self._fields = fem.Expression(ufl.as_vector([*(C * eps), *eps]), points)
        self._cells = np.arange(self._num_cells, dtype=np.int32)
        detJ = fem.Expression(abs(ufl.JacobianDeterminant(mesh)), points)
        self._dV = detJ.eval(mesh, self._cells).reshape(self._num_cells, -1) * weights
        volume = self._dV.sum()
        if abs(volume - self.box.volume) > 1e-8 * self.box.volume:
            raise RveInputError(
                f"the RVE mesh does not fill its bounding box: mesh volume {volume:.12g}, "
                f"box volume {self.box.volume:.12g}"
            )

    @property
    def _num_cells(self) -> int:
        return self.mesh.topology.index_map(self.mesh.topology.dim).size_local

    @property
    def num_dofs(self) -> int:
        """Number of scalar degrees of freedom of the fluctuation."""
        return self.V.dofmap.index_map.size_local * self.V.dofmap.index_map_bs

    def _fill_tangent(self) -> None:
        """Write each phase's tangent into its cells; every cell must belong to a phase."""
        n = self.physics.n_comp
        values = self.C.x.array.reshape(-1, n * n)
        covered = np.zeros(values.shape[0], dtype=bool)
        tags_in_mesh = set(np.unique(self.cell_tags.values).tolist())
        for tag, material in self.phases.items():
            if tag not in tags_in_mesh:
                raise RveInputError(
                    f"phase tag {tag} is not in the mesh (its cell tags are {sorted(tags_in_mesh)})"
                )
            cells = self.cell_tags.find(tag)
            values[cells] = material.tangent(self.physics.dim).ravel()
            covered[cells] = True
        if not covered.all():
            missing = sorted(set(np.unique(self.cell_tags.values).tolist()) - set(self.phases))
            raise RveInputError(
                f"{np.count_nonzero(~covered)} cells have no phase: cell tags {missing} "
                f"are in the mesh but not among the phases"
            )
        self.C.x.scatter_forward()

    def volume_fractions(self) -> dict[int, float]:
        """Volume fraction of each phase tag (sum = 1)."""
        cell_volume = self._dV.sum(axis=1)
        total = cell_volume.sum()
        return {
            tag: float(cell_volume[self.cell_tags.find(tag)].sum() / total) for tag in self.phases
        }

    def averages(self) -> Averages:
        """<sigma>, <eps>, <sigma:eps> of the current state (E, w)."""
        n = self.physics.n_comp
        values = self._fields.eval(self.mesh, self._cells).reshape(self._num_cells, -1, 2 * n)
        sigma, eps = values[..., :n], values[..., n:]
        volume = self._dV.sum()
        return Averages(
            stress=np.einsum("cq,cqi->i", self._dV, sigma) / volume,
            strain=np.einsum("cq,cqi->i", self._dV, eps) / volume,
            energy=float(np.einsum("cq,cqi,cqi->", self._dV, sigma, eps) / volume),
        )
