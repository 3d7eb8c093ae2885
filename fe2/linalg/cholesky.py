"""Sparse Cholesky factorisation of many SPD matrices with one sparsity pattern, at once.

All RVEs of one type share the pattern of their (constrained) stiffness matrix; only the
values differ. The symbolic analysis -- a fill-reducing ordering (METIS nested dissection
from PETSc), the elimination tree and the pattern of L -- is done once; a numeric
factorisation then treats P matrices together: every entry of L is stored for the P matrices
side by side, so that each operation of the (left-looking, column) algorithm

    L[j:, j] = (A[j:, j] - sum_{k < j, L[j,k] != 0} L[j:, k] L[j, k]) / sqrt(...)

runs as a vector operation over the P matrices (the index work is shared, the arithmetic
vectorises). The kernels are C (:mod:`fe2.linalg.kernels`).

A matrix whose pivot is not positive (relative to its diagonal entry) is reported as failed;
the caller solves it another way.
"""

from __future__ import annotations

import numpy as np

from fe2.linalg.kernels import double_pointer, int_pointer, kernels


def unique_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted unique values of int64 ``keys``, the index of the first occurrence of each, and
    the inverse (unique[inverse] == keys): np.unique by one stable argsort (large inputs)."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    new = np.r_[True, ordered[1:] != ordered[:-1]] if len(keys) else np.zeros(0, dtype=bool)
    inverse = np.empty(len(keys), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], order[new], inverse


def fill_reducing_ordering(n: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """A fill-reducing permutation of the symmetric pattern {(rows, cols)}: METIS nested
    dissection from PETSc (its own nested dissection if METIS is missing). perm[new] = old."""
    from petsc4py import PETSc

    r = np.concatenate([rows, cols, np.arange(n)])
    c = np.concatenate([cols, rows, np.arange(n)])
    key = unique_keys(r.astype(np.int64) * n + c)[0]
    r, c = np.divmod(key, n)
    indptr = np.searchsorted(r, np.arange(n + 1)).astype(PETSc.IntType)
    A = PETSc.Mat().createAIJ(size=(n, n), csr=(indptr, c.astype(PETSc.IntType), np.ones(len(c))),
                              comm=PETSc.COMM_SELF)
    try:
        for kind in ("metisnd", "nd"):
            try:
                row_perm, col_perm = A.getOrdering(kind)
            except PETSc.Error:
                continue
            perm = row_perm.getIndices().copy()
            row_perm.destroy()
            col_perm.destroy()
            return perm.astype(np.int64)
    finally:
        A.destroy()
    return np.arange(n)


class BatchedCholesky:
    """Symbolic analysis of one symmetric pattern; numeric factorisations of P matrices at once.

    Args:
        n: matrix size.
        rows, cols: the structural nonzeros (S,), one triangle or both (each unordered pair
            once is enough; a pair given twice is counted once). The values handed to
            :meth:`factorize` follow this order.
        perm: fill-reducing ordering (default :func:`fill_reducing_ordering`).
    """

    def __init__(self, n: int, rows: np.ndarray, cols: np.ndarray, *, perm: np.ndarray | None = None):
        ffi, lib = kernels()
        self.n = n
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        self.perm = fill_reducing_ordering(n, rows, cols) if perm is None else np.asarray(perm)
        inverse = np.empty(n, dtype=np.int64)
        inverse[self.perm] = np.arange(n)
        self.inverse = inverse
        pi, pj = inverse[rows], inverse[cols]
        lo, hi = np.maximum(pi, pj), np.minimum(pi, pj)  # (row, column) in the lower triangle
        key = hi * n + lo
        unique, first, _ = unique_keys(key)
        diagonal = np.arange(n, dtype=np.int64) * (n + 1)
        found = np.searchsorted(unique, diagonal)
        if not (found < len(unique)).all() or not np.array_equal(unique[np.minimum(found, len(unique) - 1)], diagonal):
            raise ValueError("the pattern must contain every diagonal entry")
        self.source = first  # position in the caller's values of each lower entry, column-major
        column, row = np.divmod(unique, n)
        self.Ap = np.searchsorted(column, np.arange(n + 1)).astype(np.int32)
        self.Ai = row.astype(np.int32)
        # Strict upper part in CSC = the lower part read by rows.
        strict = row != column
        order = np.lexsort((column[strict], row[strict]))
        Up = np.searchsorted(row[strict][order], np.arange(n + 1)).astype(np.int32)
        Ui = column[strict][order].astype(np.int32)
        parent, count = np.empty(n, np.int32), np.empty(n, np.int32)
        work = np.empty(2 * n, np.int32)
        lib.chol_symbolic(n, *(int_pointer(ffi, a) for a in (Up, Ui, parent, count)),
                          ffi.NULL, ffi.NULL, int_pointer(ffi, work))
        self.Lp = np.concatenate([[0], np.cumsum(count)]).astype(np.int32)
        self.Li = np.empty(self.Lp[-1], np.int32)
        lib.chol_symbolic(n, *(int_pointer(ffi, a) for a in (Up, Ui, parent, count, self.Lp, self.Li, work)))
        self.parent = parent
        # Row structure of L: for each row j, the columns k < j with L[j, k] != 0.
        col_of = np.repeat(np.arange(n, dtype=np.int32), np.diff(self.Lp))
        off = np.flatnonzero(self.Li != col_of)
        order = np.lexsort((col_of[off], self.Li[off]))
        self.Rp = np.searchsorted(self.Li[off][order], np.arange(n + 1)).astype(np.int32)
        self.Rk = col_of[off][order].astype(np.int32)
        self.Rpos = off[order].astype(np.int32)
        self.Rrun = self._runs(count)
        self.blocks = self._blocks(count)

    def _runs(self, count: np.ndarray, longest: int = 8) -> np.ndarray:
        """For every entry t of the row structure, how many columns Rk[t], Rk[t] + 1, ... (at
        most ``longest``) of entries t, t + 1, ... of the same row have the same rows below it:
        column k + 1 is the parent of k and has one entry less (a supernode: the rows of k are
        k and those of k + 1), so from any row j > k + 1 on their rows are the same."""
        n, Rp, Rk = self.n, self.Rp, self.Rk
        chain = np.zeros(n + 1, dtype=bool)  # column k and k + 1 share their rows below k + 1
        chain[:-2] = (self.parent[:-1] == np.arange(1, n)) & (count[1:] == count[:-1] - 1)
        row = np.repeat(np.arange(n), np.diff(Rp))
        follows = np.zeros(len(Rk) + 1, dtype=bool)  # entry t + 1 is column Rk[t] + 1 of the same row
        follows[:-2] = (row[1:] == row[:-1]) & (Rk[1:] == Rk[:-1] + 1) & chain[Rk[:-1]]
        tail = self.Lp[Rk + 1] - self.Rpos  # entries of column Rk[t] from row j on
        linked = follows[:-1].copy()
        linked[:-1] &= tail[1:] == tail[:-1]  # (implied by the supernode; kept as a guard)
        run = np.ones(len(Rk), dtype=np.int32)
        chained = np.ones(len(Rk), dtype=bool)
        padded = np.r_[linked, np.zeros(longest, dtype=bool)]
        for step in range(longest - 1):  # run[t] = 1 + (t+1 follows) + (t+1, t+2 follow) + ...
            chained &= padded[step : step + len(Rk)]
            run += chained
        return run

    def _blocks(self, count: np.ndarray, longest: int = 8) -> np.ndarray:
        """The columns cut into blocks of at most ``longest`` that share their rows below the
        block (chains: column k + 1 the parent of k with one entry less): the first column of
        every block, then n (int32)."""
        n = self.n
        chain = (self.parent[:-1] == np.arange(1, n)) & (count[1:] == count[:-1] - 1)
        starts, j = [], 0
        breaks = np.flatnonzero(~chain) + 1  # a new block must start at these columns
        for stop in np.r_[breaks, n]:
            starts.extend(range(j, stop, longest))  # the chain j .. stop - 1, cut every `longest`
            j = stop
        return np.array([*starts, n], dtype=np.int32)

    def destroy(self) -> None:
        """Nothing to free (numpy arrays only)."""

    @property
    def nnz(self) -> int:
        """Entries of L."""
        return len(self.Li)

    @property
    def flops(self) -> int:
        """Multiply-adds of one numeric factorisation."""
        counts = np.diff(self.Lp).astype(np.int64)
        return int((counts * counts).sum())

    def bytes_per_matrix(self) -> int:
        """Memory of one matrix in a factorisation (L, its input and the work vector)."""
        return 8 * (self.nnz + len(self.Ai) + self.n)

    def factorize(self, values: np.ndarray, *, interleaved: bool = False) -> Factor:
        """Factorise P matrices: ``values`` (P, S) in the order of the constructor's entries,
        or (S, P) with ``interleaved``."""
        ffi, lib = kernels()
        values = np.asarray(values, dtype=float)
        P = values.shape[1] if interleaved else values.shape[0]
        Ax = np.ascontiguousarray(values[self.source] if interleaved else values[:, self.source].T)
        Lx = np.empty((self.nnz, P))
        x = np.zeros((self.n, P))
        failed = np.zeros(P, np.int32)
        lib.chol_numeric(self.n, P, int_pointer(ffi, self.Ap), int_pointer(ffi, self.Ai),
                         double_pointer(ffi, Ax), int_pointer(ffi, self.Lp), int_pointer(ffi, self.Li),
                         int_pointer(ffi, self.Rp), int_pointer(ffi, self.Rk), int_pointer(ffi, self.Rpos),
                         int_pointer(ffi, self.Rrun),
                         double_pointer(ffi, Lx), double_pointer(ffi, x), int_pointer(ffi, failed))
        return Factor(self, Lx, failed.astype(bool))


class Factor:
    """Cholesky factors of P matrices (see :meth:`BatchedCholesky.factorize`).

    Attributes:
        failed: (P,) True where a pivot was not positive: that matrix has no factor.
    """

    def __init__(self, analysis: BatchedCholesky, Lx: np.ndarray, failed: np.ndarray):
        self.analysis, self.Lx, self.failed = analysis, Lx, failed

    @property
    def size(self) -> int:
        return self.Lx.shape[1]

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """Solve A x = rhs for every matrix: rhs (P, R, n) or (P, n) -> x of the same shape."""
        ffi, lib = kernels()
        a = self.analysis
        single = rhs.ndim == 2
        b = rhs[:, None, :] if single else rhs
        P, R, n = b.shape
        y = np.ascontiguousarray(b[:, :, a.perm].transpose(2, 1, 0))
        lib.chol_solve(n, P, R, int_pointer(ffi, a.Lp), int_pointer(ffi, a.Li), double_pointer(ffi, self.Lx),
                       int_pointer(ffi, a.blocks), len(a.blocks) - 1, double_pointer(ffi, y))
        x = np.empty_like(b)
        x[:, :, a.perm] = y.transpose(2, 1, 0)
        return x[:, 0, :] if single else x
