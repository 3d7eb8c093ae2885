"""Many sparse symmetric matrices of one pattern, each factorised by PETSc (MUMPS LU).

The same interface as :class:`fe2.linalg.cholesky.BatchedCholesky` -- ``factorize(values)``
of P matrices, then ``solve`` -- for matrices whose factor is large, where a multifrontal
solver with dense BLAS kernels outruns the batched column Cholesky, and for indefinite
matrices (LU with pivoting). One KSP and one matrix per point of a batch are kept and
refilled, so the symbolic factorisation is done once per slot of the pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from petsc4py import PETSc

from fe2.errors import ComputationError
from fe2.linalg.cholesky import unique_keys


class PetscLU:
    """P matrices, each factorised on its own by a PETSc direct solver.

    Args:
        n: matrix size.
        rows, cols: the lower-triangle entries (rows >= cols) the values of
            :meth:`factorize` refer to, in that order.
        options: PETSc options of the direct solvers (default MUMPS LU).
    """

    def __init__(self, n: int, rows: np.ndarray, cols: np.ndarray, *, options: Mapping[str, Any] | None = None):
        from fe2.rve.solver import DirectSolver  # noqa: F401 (the one PETSc solver wrapper)

        self.n, self.options = n, dict(options or {})
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        # Full symmetric pattern: every slot once, and its mirror for off-diagonal slots.
        r = np.concatenate([rows, cols[rows != cols]])
        c = np.concatenate([cols, rows[rows != cols]])
        source = np.concatenate([np.arange(len(rows)), np.flatnonzero(rows != cols)])
        keys, first, _ = unique_keys(r * n + c)
        if len(keys) != len(r):
            raise ValueError("duplicate entries in the pattern")
        r, c, self.source = r[first], c[first], source[first]
        self.indptr = np.searchsorted(r, np.arange(n + 1)).astype(PETSc.IntType)
        self.indices = c.astype(PETSc.IntType)
        self._pool: list[tuple] = []  # (matrix, solver, b, x) per point of a batch

    def _slot(self, i: int):
        from fe2.rve.solver import DirectSolver

        while len(self._pool) <= i:
            A = PETSc.Mat().createAIJ(size=(self.n, self.n), csr=(self.indptr, self.indices, np.zeros(len(self.indices))),
                                      comm=PETSc.COMM_SELF)
            A.assemble()
            solver = DirectSolver(PETSc.COMM_SELF, prefix=f"fe2_slot_lu_{id(self)}_{len(self._pool)}_",
                                  options=self.options)
            self._pool.append((A, solver, A.createVecLeft(), A.createVecRight()))
        return self._pool[i]

    def factorize(self, values: np.ndarray, *, interleaved: bool = False) -> _PetscFactor:
        """Factorise P matrices: values (P, S), or (S, P) with ``interleaved``."""
        values = np.asarray(values, dtype=float)
        per_point = values.T if interleaved else values
        failed = np.zeros(len(per_point), dtype=bool)
        for i, v in enumerate(per_point):
            A, solver, _, _ = self._slot(i)
            A.setValuesCSR(self.indptr, self.indices, v[self.source])
            A.assemble()
            try:
                solver.factorize(A)
            except ComputationError:
                failed[i] = True
        return _PetscFactor(self, len(per_point), failed)

    def destroy(self) -> None:
        for obj in (o for slot in self._pool for o in slot):
            obj.destroy()
        self._pool = []


class _PetscFactor:
    def __init__(self, owner: PetscLU, count: int, failed: np.ndarray):
        self.owner, self.count, self.failed = owner, count, failed

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """Solve for every matrix: rhs (P, R, n) or (P, n) -> x of the same shape."""
        single = rhs.ndim == 2
        b3 = rhs[:, None, :] if single else rhs
        x = np.zeros_like(b3)
        for i in range(self.count):
            if self.failed[i]:
                continue
            _, solver, b, xv = self.owner._slot(i)
            for r in range(b3.shape[1]):
                b.array[:] = b3[i, r]
                solver.solve(b, xv)
                x[i, r] = xv.array_r
        return x[:, 0, :] if single else x
