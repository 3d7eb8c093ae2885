"""Many sparse symmetric matrices of one pattern, each solved by PETSc: MUMPS LU or CG + GAMG.

The same interface as :class:`fe2.linalg.cholesky.BatchedCholesky` -- ``factorize(values)``
of P matrices, then ``solve`` -- for matrices whose factor is large, where a multifrontal
solver with dense BLAS kernels outruns the batched column Cholesky, and for indefinite
matrices (LU with pivoting): :class:`PetscLU`; or for matrices too large to factorise:
:class:`PetscKrylov` (the iterative solver of :mod:`fe2.rve.solver`, with a block size and
a near null space). One solver and one matrix per point of a batch are kept and refilled,
so the symbolic factorisation (or the preconditioner, while it fits) is reused per slot.
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
        while len(self._pool) <= i:
            A = PETSc.Mat().createAIJ(size=(self.n, self.n), csr=(self.indptr, self.indices, np.zeros(len(self.indices))),
                                      comm=PETSc.COMM_SELF, bsize=self.block_size)
            A.assemble()
            solver = self._solver(f"fe2_slot_{id(self)}_{len(self._pool)}_")
            self._pool.append((A, solver, A.createVecLeft(), A.createVecRight()))
        return self._pool[i]

    block_size = 1

    def _solver(self, prefix: str):
        from fe2.rve.solver import DirectSolver

        return DirectSolver(PETSc.COMM_SELF, prefix=prefix, options=self.options)

    def _solve(self, i: int, r: int, rhs: np.ndarray) -> np.ndarray:
        """The solution for right-hand side ``rhs`` (n,) of the matrix in slot i (column r of
        a block of right-hand sides)."""
        _, solver, b, x = self._slot(i)
        b.array[:] = rhs
        solver.solve(b, x)
        return x.array_r.copy()

    def _fill(self, A: PETSc.Mat, values: np.ndarray) -> None:
        A.setValuesCSR(self.indptr, self.indices, values[self.source])
        A.assemble()

    def factorize(self, values: np.ndarray, *, interleaved: bool = False) -> _PetscFactor:
        """Factorise P matrices: values (P, S), or (S, P) with ``interleaved``."""
        values = np.asarray(values, dtype=float)
        per_point = values.T if interleaved else values
        failed = np.zeros(len(per_point), dtype=bool)
        for i, v in enumerate(per_point):
            A, solver, _, _ = self._slot(i)
            self._fill(A, v)
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
            for r in range(b3.shape[1]):
                x[i, r] = self.owner._solve(i, r, b3[i, r])
        return x[:, 0, :] if single else x


class PetscKrylov(PetscLU):
    """P matrices, each solved by CG + GAMG (:class:`fe2.rve.solver.KrylovSolver`).

    A solve that does not converge gives NaN for that point (it has no solution; the caller
    fails it). Each slot warm-starts column r of a block of right-hand sides from the last
    solution of the same column.

    Args:
        n: matrix size.
        rows, cols: the lower-triangle entries (rows >= cols) the values refer to.
        options: PETSc options overriding :data:`fe2.rve.solver.KRYLOV_OPTIONS`.
        block_size: unknowns per node (the matrix's, for GAMG).
        near_null: (k, size) near null space (rigid modes), or None.
        embed: (index (n,), size): solve the n x n matrices as the rows and columns ``index``
            of size x size matrices whose other rows are the identity (times the largest
            entry), so that a matrix without some dofs of a node keeps the node blocks and
            the near null space of the full space. None: size = n.
    """

    def __init__(self, n: int, rows: np.ndarray, cols: np.ndarray, *, options: Mapping[str, Any] | None = None,
                 block_size: int = 1, near_null: np.ndarray | None = None,
                 embed: tuple[np.ndarray, int] | None = None):
        index, size = embed if embed is not None else (np.arange(n), n)
        self.index = np.asarray(index, dtype=np.int64)
        rest = np.setdiff1d(np.arange(size), self.index)
        self._extra = len(rest)
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        super().__init__(size, np.concatenate([self.index[rows], rest]), np.concatenate([self.index[cols], rest]),
                         options=options)
        self.block_size, self.near_null = block_size, near_null
        self._guesses: dict[tuple[int, int], PETSc.Vec] = {}
        self.nnz = len(self.indices)

    def _solver(self, prefix: str):
        from fe2.rve.solver import KrylovSolver

        return KrylovSolver(PETSc.COMM_SELF, prefix=prefix, options=self.options, near_null=self.near_null)

    def _fill(self, A: PETSc.Mat, values: np.ndarray) -> None:
        held = np.full(self._extra, np.abs(values).max(initial=1.0))
        super()._fill(A, np.concatenate([values, held]))

    def _solve(self, i: int, r: int, rhs: np.ndarray) -> np.ndarray:
        from fe2.rve.solver import SolveError

        _, solver, b, x = self._slot(i)
        b.set(0.0)
        b.array[self.index] = rhs
        guess = self._guesses.get((i, r))
        if guess is not None:
            guess.copy(x)
        try:
            solver.solve(b, x, guess=guess is not None)
        except SolveError:
            return np.full(len(rhs), np.nan)
        if guess is None:
            self._guesses[(i, r)] = x.copy()
        else:
            x.copy(guess)
        return x.array_r[self.index].copy()

    def bytes_per_matrix(self) -> int:
        """Memory of one matrix and its multigrid hierarchy (about twice the matrix)."""
        return 3 * 12 * self.nnz

    def destroy(self) -> None:
        super().destroy()
        for v in self._guesses.values():
            v.destroy()
        self._guesses = {}
