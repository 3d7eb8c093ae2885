"""The uniform-traction (minimal kinematic) RVE boundary condition, on one rank or several.

Constraints B w = 0 (m rows: the boundary integrals of w n and the volume integrals of w),
imposed by Lagrange multipliers for a direct solver, K = [[A, B^T], [B, 0]], or, for a Krylov
solver, by projection with Pi = I - B^T (B B^T)^-1 B (CG on Pi A Pi in ker B). The interface
and the prolongation BCs are in :mod:`fe2.rve.boundary_conditions`.
"""

from __future__ import annotations

import numpy as np
import ufl
from dolfinx import fem, la
from mpi4py import MPI
from petsc4py import PETSc

from fe2.rve.boundary_conditions import RveBoundaryCondition, gather
from fe2.rve.model import RveModel


class _ProjectedOperator:
    """Pi A Pi as a PETSc shell matrix (python context), A refilled in place by the caller."""

    def __init__(self, A: PETSc.Mat, bc: TractionBC):
        self.A, self.bc = A, bc

    def mult(self, mat, x, y):
        self.A.mult(x, y)
        self.bc.project(y)


class TractionBC(RveBoundaryCondition):
    """Uniform traction (uniform flux) by the minimal kinematic condition.

    Constraints, as rows of B (m x N), m = bs (dim + 1), bs = components of the field:

        int_dY w_c n_j dS = 0   (c < bs, j < dim)   -> <grad w> = 0, removes rotations,
        int_Y  w_c dx     = 0   (c < bs)            -> removes translations.

    Args:
        model: the RVE.
        multipliers: impose them by Lagrange multipliers (for direct solvers; the rows are
            scaled to the size of A's diagonal, which only changes the unreported
            multipliers), else by projection (for Krylov solvers; see the module docstring).
    """

    kind = "traction"

    def __init__(self, model: RveModel, *, multipliers: bool = True):
        super().__init__(model)
        self.multipliers = multipliers
        self.B = self._constraint_rows()  # (m, owned dofs)
        self.N = model.global_dofs
        self._BBt_inv = np.linalg.inv(model.sum(self.B @ self.B.T))
        self._scale: float | None = None
        last = self.comm.rank == self.comm.size - 1
        self._extra = len(self.B) if multipliers and last else 0  # multipliers held by the last rank

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
        owned = self.nodes.dofs

        def row(form) -> np.ndarray:
            vector = fem.assemble_vector(form)
            vector.scatter_reverse(la.InsertMode.add)
            return vector.array[:owned].copy()

        rows = []
        for e_c in components:
            pick.value = e_c
            for e_j in np.eye(dim):
                normal.value = e_j
                rows.append(row(boundary))
            rows.append(row(volume))
        return np.array(rows)

    @property
    def size(self) -> int:
        return self.N + (len(self.B) if self.multipliers else 0)

    @property
    def local_size(self) -> int:
        return self.nodes.dofs + self._extra

    @property
    def projected(self) -> bool:
        return not self.multipliers

    def _solver_nodes(self):
        return self.nodes.x

    def _project(self, R: np.ndarray) -> np.ndarray:
        """R - B^T (B B^T)^-1 B R of owned entries R (owned dofs,)."""
        return R - self.B.T @ (self._BBt_inv @ self.model.sum(self.B @ R))

    def project(self, v):
        v.array[: self.nodes.dofs] = self._project(v.array_r[: self.nodes.dofs])

    def residual_norm(self, R):
        """Norm of R projected on the null space of B: R - B^T (B B^T)^-1 B R."""
        return float(np.sqrt(self.model.sum(float(np.sum(self._project(R.array_r) ** 2)))))

    def system_matrix(self, A, K=None):
        """Multipliers: [[A, s B^T], [s B, 0]] as one AIJ matrix (B rows stored sparse, held
        by the last rank). Projection: the shell Pi A Pi."""
        if not self.multipliers:
            if K is None:
                K = PETSc.Mat().createPython(A.getSizes(), context=_ProjectedOperator(A, self), comm=self.comm)
                K.setUp()
            return K
        csr = self._augmented_csr(A)
        if K is None:
            sizes = (self.local_size, self.size)
            K = PETSc.Mat().createAIJ(size=(sizes, sizes), csr=csr, comm=self.comm)
        else:
            K.zeroEntries()
            K.setValuesCSR(*csr)
        K.assemble()
        return K

    def preconditioner_matrix(self, A, K, M=None):
        """Projection: the singular A itself (the constrained preconditioner handles its null
        space)."""
        return K if self.multipliers else A

    @property
    def rows(self) -> np.ndarray:
        """The constraint rows B, (m, owned dofs)."""
        return self.B

    def reduce(self, values):
        """Sum over the ranks."""
        return self.model.sum(values)

    def _augmented_csr(self, A):
        comm = self.comm
        indptr, indices, data = A.getValuesCSR()
        N, m = self.N, self.B.shape[0]
        rstart = A.getOwnershipRange()[0]
        if self._scale is None:  # fixed at the first call: K keeps one pattern and scaling
            diagonal = comm.allreduce(float(np.abs(A.getDiagonal().array).max(initial=0.0)), op=MPI.MAX)
            self._scale = diagonal / comm.allreduce(float(np.abs(self.B).max(initial=0.0)), op=MPI.MAX)
        B = self.B * self._scale
        n = B.shape[1]
        # Columns N + r appended to row i wherever B[r, i] != 0.
        extra = (B != 0).T  # (n, m)
        counts = extra.sum(axis=1)
        row_len = np.diff(indptr) + counts
        new_indptr = np.concatenate([[0], np.cumsum(row_len)])
        nnz_top = new_indptr[-1]
        new_indices = np.empty(nnz_top, dtype=PETSc.IntType)
        new_data = np.empty(nnz_top)
        row_of = np.repeat(np.arange(n), np.diff(indptr))
        old_pos = np.arange(len(indices)) + (new_indptr[:-1] - indptr[:-1])[row_of]
        new_indices[old_pos] = indices
        new_data[old_pos] = data
        rows, cols = np.nonzero(extra)  # row-major: sorted by row, then r
        start = new_indptr[rows] + np.diff(indptr)[rows]
        rank = np.arange(len(rows)) - np.concatenate([[0], np.cumsum(counts)])[rows]
        new_indices[start + rank] = N + cols
        new_data[start + rank] = B[cols, rows]
        # Bottom rows (last rank): B with an explicit zero diagonal for the multipliers.
        bottom_indices, bottom_data, bottom_len = [], [], []
        for r in range(m):
            nz = np.flatnonzero(B[r])
            columns = gather(comm, rstart + nz)
            values = gather(comm, B[r, nz])
            if self._extra:
                bottom_indices += [columns, [N + r]]
                bottom_data += [values, [0.0]]
                bottom_len.append(len(columns) + 1)
        return (
            np.concatenate([new_indptr, nnz_top + np.cumsum(bottom_len, dtype=np.int64)]).astype(PETSc.IntType),
            np.concatenate([new_indices, *bottom_indices]).astype(PETSc.IntType),
            np.concatenate([new_data, *bottom_data]),
        )

    def restrict(self, b, r):
        n = self.nodes.dofs
        if self.multipliers:
            r.array[:n] = b.array_r
            r.array[n:] = 0.0
        else:
            r.array[:] = self._project(b.array_r)

    def prolong(self, x, w):
        n = self.nodes.dofs
        w.array[:] = x.array_r[:n] if self.multipliers else self._project(x.array_r)
