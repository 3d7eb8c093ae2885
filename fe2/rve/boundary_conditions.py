"""The three RVE boundary-condition families, behind one interface.

Each turns the assembled, unconstrained stiffness A (N x N, fluctuation dofs) into a regular
system K and maps vectors between the full space and K's space:

* :class:`AffineBC` (linear displacement): w = 0 on the boundary;
* :class:`PeriodicBC`: w periodic, w = 0 at the corners (removes the constant);
* :class:`TractionBC` (uniform traction / flux, minimal kinematic condition):
  int_dY w (x) n dS = 0 and int_Y w dx = 0, imposed by Lagrange multipliers.

The first two are prolongations w = P x (K = P^T A P); the third augments A with the
constraint rows B: K = [[A, B^T], [B, 0]]. Apparent tensors are ordered
C_affine >= C_periodic >= C_traction because the admissible spaces are nested.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import ufl
from dolfinx import fem
from petsc4py import PETSc

from fe2.rve.model import RveModel
from fe2.rve.periodicity import periodic_masters


class RveBoundaryCondition(ABC):
    """Constraint on the fluctuation: builds K from A and maps vectors to and from K's space."""

    kind: str

    def __init__(self, model: RveModel):
        self.model = model
        self.comm = model.mesh.comm

    @property
    @abstractmethod
    def size(self) -> int:
        """Number of unknowns of the constrained system."""

    @abstractmethod
    def system_matrix(self, A: PETSc.Mat, K: PETSc.Mat | None = None) -> PETSc.Mat:
        """The constrained system matrix K built from the full stiffness A.

        With ``K`` from an earlier call on a matrix of A's sparsity, K is refilled in place
        (same nonzero pattern, so a factorisation can reuse its symbolic phase).
        """

    @abstractmethod
    def residual_norm(self, R: PETSc.Vec) -> float:
        """Norm of the part of a full-space residual R (N,) that the constraints do not absorb."""

    @abstractmethod
    def restrict(self, b: PETSc.Vec, r: PETSc.Vec) -> None:
        """Full-space load b (N,) -> right-hand side r of the constrained system."""

    @abstractmethod
    def prolong(self, x: PETSc.Vec, w: PETSc.Vec) -> None:
        """Solution x of the constrained system -> full fluctuation w (N,)."""

    def create_vector(self) -> PETSc.Vec:
        """A vector of the constrained system's size."""
        return PETSc.Vec().createSeq(self.size, comm=self.comm)

    def destroy(self) -> None:
        """Free owned PETSc objects."""


class _ProlongationBC(RveBoundaryCondition):
    """w = P x with P (N x M) a 0/1 matrix: row (node, c) -> column (master(node), c)."""

    def __init__(self, model: RveModel, master: np.ndarray):
        super().__init__(model)
        bs = model.V.dofmap.index_map_bs
        free = master >= 0
        column = np.full(len(master), -1, dtype=np.int64)
        masters = np.unique(master[free])
        column[masters] = np.arange(len(masters))
        node_column = np.where(free, column[np.where(free, master, 0)], -1)
        # Expand to block components: dof = node * bs + c.
        dof_column = (node_column[:, None] * bs + np.arange(bs)).ravel()
        has = (node_column[:, None] >= 0).repeat(bs, axis=1).ravel()
        #: Column of P of every dof (-1: the dof is fixed to zero), (N,).
        self.columns = np.where(has, dof_column, -1)
        indptr = np.concatenate([[0], np.cumsum(has)]).astype(PETSc.IntType)
        indices = dof_column[has].astype(PETSc.IntType)
        self._size = len(masters) * bs
        self.P = PETSc.Mat().createAIJ(
            size=(len(dof_column), self._size),
            csr=(indptr, indices, np.ones(len(indices))),
            comm=self.comm,
        )
        self.P.assemble()
        self._work = self.create_vector()  # restricted residual of residual_norm

    @property
    def size(self) -> int:
        return self._size

    def system_matrix(self, A, K=None):
        return A.ptap(self.P, result=K)

    def residual_norm(self, R):
        self.P.multTranspose(R, self._work)
        return self._work.norm()

    def restrict(self, b, r):
        self.P.multTranspose(b, r)

    def prolong(self, x, w):
        self.P.mult(x, w)

    def destroy(self):
        self.P.destroy()
        self._work.destroy()


def _node_coordinates(model: RveModel) -> np.ndarray:
    return model.V.tabulate_dof_coordinates()[:, : model.box.dim]


class AffineBC(_ProlongationBC):
    """Linear (affine) boundary displacement / temperature: the fluctuation vanishes on dY."""

    kind = "affine"

    def __init__(self, model: RveModel):
        x = _node_coordinates(model)
        master = np.where(model.box.on_boundary(x), -1, np.arange(len(x)))
        super().__init__(model, master)


class PeriodicBC(_ProlongationBC):
    """Periodic fluctuation; its value at the corners is fixed to zero (fixes the constant).

    Raises:
        MeshNotPeriodicError: if boundary nodes on opposite faces do not match.
    """

    kind = "periodic"

    def __init__(self, model: RveModel):
        x = _node_coordinates(model)
        master = periodic_masters(x, model.box)
        corner = np.flatnonzero(model.box.on_lo(x).all(axis=1))
        if len(corner) != 1:
            raise ValueError(f"expected one node at the corner {model.box.lo}, found {len(corner)}")
        master[master == corner[0]] = -1
        super().__init__(model, master)


class TractionBC(RveBoundaryCondition):
    """Uniform traction (uniform flux) by the minimal kinematic condition.

    Constraints, as rows of B (m x N), m = bs (dim + 1), bs = components of the field:

        int_dY w_c n_j dS = 0   (c < bs, j < dim)   -> <grad w> = 0, removes rotations,
        int_Y  w_c dx     = 0   (c < bs)            -> removes translations.

    The rows are scaled to the size of A's diagonal; only the (unreported) multipliers change.
    """

    kind = "traction"

    def __init__(self, model: RveModel):
        super().__init__(model)
        self.B = self._constraint_rows()
        self.N = self.B.shape[1]
        self._BBt_inv = np.linalg.inv(self.B @ self.B.T)
        self._scale: float | None = None

    def _constraint_rows(self) -> np.ndarray:
        model = self.model
        mesh, V, dim = model.mesh, model.V, model.box.dim
        shape = model.physics.value_shape
        v = ufl.TestFunction(V)
        pick = fem.Constant(mesh, np.zeros(shape))  # unit vector selecting a component
        normal = fem.Constant(mesh, np.zeros(dim))  # unit vector selecting n_j
        n = ufl.FacetNormal(mesh)
        boundary = fem.form(ufl.inner(v, pick) * ufl.dot(n, normal) * ufl.ds)
        volume = fem.form(ufl.inner(v, pick) * ufl.dx)
        components = np.eye(int(np.prod(shape))).reshape(-1, *shape)
        rows = []
        for e_c in components:
            pick.value = e_c
            for e_j in np.eye(dim):
                normal.value = e_j
                rows.append(fem.assemble_vector(boundary).array.copy())
            rows.append(fem.assemble_vector(volume).array.copy())
        return np.array(rows)

    @property
    def size(self) -> int:
        return self.N + self.B.shape[0]

    def residual_norm(self, R):
        """Norm of R projected on the null space of B: R - B^T (B B^T)^-1 B R."""
        R = R.array_r
        return float(np.linalg.norm(R - self.B.T @ (self._BBt_inv @ (self.B @ R))))

    def system_matrix(self, A, K=None):
        """[[A, s B^T], [s B, 0]] as one AIJ matrix (B rows stored sparse)."""
        csr = self._augmented_csr(A)
        if K is None:
            N, m = self.N, self.B.shape[0]
            K = PETSc.Mat().createAIJ(size=(N + m, N + m), csr=csr, comm=self.comm)
        else:
            K.zeroEntries()
            K.setValuesCSR(*csr)
        K.assemble()
        return K

    def _augmented_csr(self, A):
        indptr, indices, data = A.getValuesCSR()
        N, m = self.N, self.B.shape[0]
        if self._scale is None:  # fixed at the first call: K keeps one pattern and scaling
            self._scale = np.abs(A.getDiagonal().array).max() / np.abs(self.B).max()
        B = self.B * self._scale
        # Columns N + r appended to row i wherever B[r, i] != 0.
        extra = (B != 0).T  # (N, m)
        counts = extra.sum(axis=1)
        row_len = np.diff(indptr) + counts
        new_indptr = np.concatenate([[0], np.cumsum(row_len)])
        nnz_top = new_indptr[-1]
        new_indices = np.empty(nnz_top, dtype=PETSc.IntType)
        new_data = np.empty(nnz_top)
        row_of = np.repeat(np.arange(N), np.diff(indptr))
        old_pos = np.arange(len(indices)) + (new_indptr[:-1] - indptr[:-1])[row_of]
        new_indices[old_pos] = indices
        new_data[old_pos] = data
        rows, cols = np.nonzero(extra)  # row-major: sorted by row, then r
        start = new_indptr[rows] + np.diff(indptr)[rows]
        rank = np.arange(len(rows)) - np.concatenate([[0], np.cumsum(counts)])[rows]
        new_indices[start + rank] = N + cols
        new_data[start + rank] = B[cols, rows]
        # Bottom rows: B with an explicit zero diagonal for the multipliers.
        bottom_indices, bottom_data, bottom_len = [], [], []
        for r in range(m):
            nz = np.flatnonzero(B[r])
            bottom_indices += [nz, [N + r]]
            bottom_data += [B[r, nz], [0.0]]
            bottom_len.append(len(nz) + 1)
        return (
            np.concatenate([new_indptr, nnz_top + np.cumsum(bottom_len)]).astype(PETSc.IntType),
            np.concatenate([new_indices, *bottom_indices]).astype(PETSc.IntType),
            np.concatenate([new_data, *bottom_data]),
        )

    def restrict(self, b, r):
        r.array[: self.N] = b.array_r
        r.array[self.N :] = 0.0

    def prolong(self, x, w):
        w.array[:] = x.array_r[: self.N]


BOUNDARY_CONDITIONS: dict[str, type[RveBoundaryCondition]] = {
    cls.kind: cls for cls in (PeriodicBC, AffineBC, TractionBC)
}


def make_boundary_condition(kind: str, model: RveModel) -> RveBoundaryCondition:
    """Boundary condition by name: 'periodic', 'affine' or 'traction'."""
    try:
        cls = BOUNDARY_CONDITIONS[kind]
    except KeyError:
        raise ValueError(
            f"unknown RVE boundary condition {kind!r}; expected one of {sorted(BOUNDARY_CONDITIONS)}"
        ) from None
    return cls(model)
