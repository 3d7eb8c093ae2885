"""Element strain operators: the strain of each basis function at each quadrature point.

For a field w in the Lagrange space V, the strain at quadrature point q of cell c is

    strain(w)[c, q, i] = sum_k B[c, q, i, k] w[cell_dofs[c, k]],

so that residuals and Jacobians of many states are loops over shared B (C kernels of
:mod:`fe2.linalg.kernels`, P states at a time):

    R[dofs(c)] += sum_q B[c, q]^T (dV sigma)[c, q],      K_c = sum_q B[c, q]^T (dV C)[c, q] B[c, q].

B is computed by DOLFINx (no hand-written shape functions): the matrix of the form
(strain(u), v_q) over the quadrature space of the strain, whose test functions are point
evaluations, is G scaled by the quadrature volumes; dividing by dV gives G, and B is G cut
into its cell blocks. ``cell_dofs`` are unrolled local dofs (node * bs + component; on a mesh
distributed over ranks, the owned dofs and ghosts of this rank).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import ufl
from dolfinx import fem
from dolfinx.fem.petsc import assemble_matrix

from fe2.fem.quadrature_forms import QuadratureSpace
from fe2.linalg.kernels import double_pointer, int_pointer, kernels


@dataclass(frozen=True)
class ElementOperators:
    """Strain operators of the owned cells of one space.

    Attributes:
        cell_dofs: (num_cells, k) unrolled dofs of each cell, sorted per cell.
        B: (num_cells, num_qp, n, k) strain of the cell's basis functions at its points.
        num_dofs: size N of the unrolled (local) dof vector.
    """

    cell_dofs: np.ndarray
    B: np.ndarray
    num_dofs: int

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(num_cells, num_qp, n, k)."""
        return self.B.shape

    def strain(self, w: np.ndarray, E: np.ndarray | None = None) -> np.ndarray:
        """E + strain(w) of P fields w (P, N) (E (P, n) or None) -> (P, num_cells, num_qp, n)."""
        ffi, lib = kernels()
        w = np.ascontiguousarray(w, dtype=float)
        P = w.shape[0]
        cells, nqp, n, k = self.shape
        out = np.empty((P, cells, nqp, n))
        E_ptr = ffi.NULL if E is None else double_pointer(ffi, np.ascontiguousarray(E, dtype=float))
        lib.fe_strain(P, cells, nqp, n, k, self.num_dofs, double_pointer(ffi, self.B),
                      int_pointer(ffi, self.cell_dofs), double_pointer(ffi, w), E_ptr, double_pointer(ffi, out))
        return out

    def residual(self, flux: np.ndarray, *, dV: np.ndarray | None = None) -> np.ndarray:
        """R = sum_c B_c^T (flux dV)_c assembled: flux (P, num_cells, num_qp, n) -> (P, N);
        ``dV`` (num_cells, num_qp) quadrature volumes (None: flux is already weighted)."""
        flux = np.ascontiguousarray(flux, dtype=float)
        cells, nqp, n, _ = self.shape
        return self._residual(flux, flux.shape[0], 1, (cells * nqp * n, 0, n, 1), dV, 1.0)[:, 0]

    def tangent_residuals(self, tangent: np.ndarray, dV: np.ndarray, *, scale: float = 1.0) -> np.ndarray:
        """The residuals of the columns of P tangent fields (P, num_cells, num_qp, n, n):
        R[p, r] = sum_c B_c^T (scale tangent[p, c, :, :, r] dV_c) -> (P, n, N) (the
        sensitivity loads, scale -1)."""
        tangent = np.ascontiguousarray(tangent, dtype=float)
        cells, nqp, n, _ = self.shape
        return self._residual(tangent, tangent.shape[0], n, (cells * nqp * n * n, 1, n * n, n), dV, scale)

    def _residual(self, flux, P, R, strides, dV, scale) -> np.ndarray:
        ffi, lib = kernels()
        cells, nqp, n, k = self.shape
        out = np.zeros((P, R, self.num_dofs))
        dV_ptr = ffi.NULL if dV is None else double_pointer(ffi, np.ascontiguousarray(dV, dtype=float))
        lib.fe_residual(P, R, cells, nqp, n, k, self.num_dofs, double_pointer(ffi, self.B),
                        int_pointer(ffi, self.cell_dofs), double_pointer(ffi, flux), *strides, dV_ptr, scale,
                        double_pointer(ffi, out))
        return out

    def sensitivity_averages(self, dw: np.ndarray, tangent: np.ndarray, weights: np.ndarray):
        """Volume averages of the n sensitivity fields of P points: e = e_r + strain(dw[p, r])
        and s = C e at the quadrature points, with dw (P, n, N), the tangents C (P, num_cells,
        num_qp, n, n) and the averaging weights dV / V (num_cells, num_qp). Returns
        <s> (P, n, n) and <e> (P, n, n) (column r: field r), <s.e> (P, n) and <|s||e|> (P, n)."""
        ffi, lib = kernels()
        cells, nqp, n, k = self.shape
        dw = np.ascontiguousarray(dw, dtype=float)
        tangent = np.ascontiguousarray(tangent, dtype=float)
        P = len(dw)
        avg_stress, avg_strain = np.empty((P, n, n)), np.empty((P, n, n))
        micro, scale = np.empty((P, n)), np.empty((P, n))
        lib.fe_sensitivity(P, cells, nqp, n, k, self.num_dofs, double_pointer(ffi, self.B),
                           int_pointer(ffi, self.cell_dofs), double_pointer(ffi, dw), double_pointer(ffi, tangent),
                           double_pointer(ffi, np.ascontiguousarray(weights, dtype=float)),
                           *(double_pointer(ffi, a) for a in (avg_stress, avg_strain, micro, scale)))
        return avg_stress, avg_strain, micro, scale


class MatrixSlots:
    """Sums element matrices B^T D B of P tangent fields into the entries ("slots") of P
    sparse matrices that share one pattern.

    Args:
        operators: the element strain operators.
        slot: (num_cells, k, k) target slot of every element entry (< 0: not stored, e.g. a
            constrained dof or the upper triangle of a symmetric matrix).
        size: number of slots.
    """

    def __init__(self, operators: ElementOperators, slot: np.ndarray, size: int):
        self.operators, self.size = operators, size
        self.slot = np.ascontiguousarray(slot, dtype=np.int32)

    def __call__(self, tangent: np.ndarray, *, points: np.ndarray | None = None,
                 dV: np.ndarray | None = None) -> np.ndarray:
        """Tangents (P_all, num_cells, num_qp, n, n) of the points ``points`` (indices, default
        all), weighted by the quadrature volumes ``dV`` (num_cells, num_qp; None: weighted
        already) -> slot values (size, P), the P points innermost. The tangents are read in
        place (no copy)."""
        ffi, lib = kernels()
        tangent = np.ascontiguousarray(tangent, dtype=float)
        points = np.arange(len(tangent)) if points is None else np.asarray(points)
        points = np.ascontiguousarray(points, dtype=np.int64)
        P = len(points)
        if P and not (0 <= points.min() and points.max() < len(tangent)):
            raise IndexError("MatrixSlots: a point index is out of range")
        cells, nqp, n, k = self.operators.shape
        K = np.zeros((self.size, P))
        T = np.empty((k * n + n * n) * P)
        dV_ptr = ffi.NULL if dV is None else double_pointer(ffi, np.ascontiguousarray(dV, dtype=float))
        lib.fe_assemble(cells, nqp, n, k, P, double_pointer(ffi, self.operators.B), double_pointer(ffi, tangent),
                        ffi.cast("int64_t*", points.ctypes.data), cells * nqp * n * n, dV_ptr,
                        int_pointer(ffi, self.slot), double_pointer(ffi, K), double_pointer(ffi, T))
        return K


class Scatter:
    """Sums values given per (source index) into target slots: out[:, t] = sum_{s: target[s]=t} in[:, s].

    Sources with target < 0 are dropped. Precomputed once (sort by target); each call is one
    C pass (each slot's sources summed in source order).

    Args:
        target: (S,) target slot of every source entry (< 0: dropped).
        size: number of target slots.
    """

    def __init__(self, target: np.ndarray, size: int):
        target = np.asarray(target).ravel()
        keep = np.flatnonzero(target >= 0)
        order = keep[np.argsort(target[keep], kind="stable")]
        sorted_target = target[order]
        self.order = order.astype(np.int64)
        self.starts = np.flatnonzero(np.r_[True, sorted_target[1:] != sorted_target[:-1]]) if len(order) else \
            np.zeros(0, dtype=np.int64)
        self.slots = sorted_target[self.starts].astype(np.int64)
        self.size = size
        self.complete = len(self.slots) == size  # every slot receives a value
        self._bounds = np.r_[self.starts, len(order)].astype(np.int64)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """values (P, S) (or (P, ...) with S entries after the first axis) -> (P, size)."""
        ffi, lib = kernels()
        P = values.shape[0]
        values = np.ascontiguousarray(values.reshape(P, -1), dtype=float)
        out = np.empty((P, self.size)) if self.complete else np.zeros((P, self.size))
        index = [ffi.cast("int64_t*", a.ctypes.data) for a in (self.order, self._bounds, self.slots)]
        lib.scatter_sum(P, values.shape[1], len(self.slots), self.size, double_pointer(ffi, values), *index,
                        double_pointer(ffi, out))
        return out


def element_operators(space: QuadratureSpace) -> ElementOperators:
    """The strain operators of the owned cells of ``space`` (see the module docstring)."""
    physics, V = space.physics, space.V
    n = physics.n_comp
    Q = space.quadrature_space((n,))
    form = fem.form(ufl.inner(space.strain(ufl.TrialFunction(V)), ufl.TestFunction(Q)) * space.dx)
    G = assemble_matrix(form)
    G.assemble()
    indptr, indices, data = G.getValuesCSR()
    G.destroy()
    cells, nqp = space.num_cells, space.num_qp
    bs = V.dofmap.index_map_bs
    nodes = V.dofmap.list[:cells]
    cell_dofs = np.sort((nodes[:, :, None] * bs + np.arange(bs)).reshape(cells, -1), axis=1).astype(np.int32)
    k = cell_dofs.shape[1]
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    owned = rows < cells * nqp * n
    rows, cols, values = rows[owned], indices[owned], data[owned]
    c, rest = np.divmod(rows, nqp * n)
    q, i = np.divmod(rest, n)
    index_map = V.dofmap.index_map
    num_dofs = (index_map.size_local + index_map.num_ghosts) * bs
    if space.mesh.comm.size > 1:  # PETSc columns are global dofs: to this rank's local ones
        nodes_global = index_map.local_to_global(np.arange(num_dofs // bs, dtype=np.int32))
        global_dofs = (nodes_global[:, None] * bs + np.arange(bs)).ravel()
        by_global = np.argsort(global_dofs)
        cols = by_global[np.searchsorted(global_dofs[by_global], cols).clip(max=num_dofs - 1)]
    # Local index of each column among its cell's sorted dofs.
    keys = (np.arange(cells)[:, None] * num_dofs + cell_dofs).ravel()
    local = np.searchsorted(keys, c * num_dofs + cols) - c * k
    if not np.array_equal(cell_dofs[c, local], cols):
        raise RuntimeError("strain operator: a column is not a dof of its cell")
    B = np.zeros((cells, nqp, n, k))  # C-contiguous, as the kernels expect
    B[c, q, i, local] = values / space.dV[c, q]
    return ElementOperators(cell_dofs=cell_dofs, B=B, num_dofs=num_dofs)
