"""The cells of an RVE ordered by phase: each phase's quadrature points one contiguous block.

The batched RVE solver (:mod:`fe2.rve.batched`) keeps its quadrature arrays (P, num_cells,
num_qp, ...) in this order, so that the constitutive update of a phase reads and writes the
slice ``[:, start:stop]`` of every point -- a block copy -- instead of gathering and
scattering the phase's cells by index. The element strain operators and quadrature volumes
are permuted once to match; the history of a phase keeps its layout (its cells in the order
of ``model.phase_cells[tag]``, which this order preserves within a phase).

    order[position] = cell of the mesh,   values_mesh[..., order, :] = values_phase[...]
"""

from __future__ import annotations

import numpy as np

from fe2.convergence import residual_terms
from fe2.fem.element_operators import ElementOperators
from fe2.linalg.kernels import double_pointer, kernels
from fe2.rve.model import Averages, History, MicroUpdate, RveModel


class PhaseOrder:
    """Cells of ``model`` ordered by phase (phases in the order of ``model.phases``).

    Attributes:
        order: (num_cells,) mesh cell at each position.
        slices: phase tag -> positions of its cells (a slice).
        operators: the model's element strain operators, cells in this order.
        dV: (num_cells, num_qp) quadrature volumes, cells in this order.
    """

    def __init__(self, model: RveModel):
        self.model = model
        self.order = np.concatenate([model.phase_cells[tag] for tag in model.phases]).astype(np.int64)
        if not np.array_equal(np.sort(self.order), np.arange(model.num_cells)):
            raise ValueError("the phases do not partition the RVE's cells")
        self.slices, start = {}, 0
        for tag in model.phases:
            stop = start + len(model.phase_cells[tag])
            self.slices[tag] = slice(start, stop)
            start = stop
        ops = model.operators
        self.operators = ElementOperators(cell_dofs=np.ascontiguousarray(ops.cell_dofs[self.order]),
                                          B=np.ascontiguousarray(ops.B[self.order]), num_dofs=ops.num_dofs)
        self.dV = np.ascontiguousarray(model.dV[self.order])
        self._weights = (self.dV / model.volume).ravel()  # volume average = weights @ values
        h = self.dV.sum(axis=1, keepdims=True) ** (1.0 / model.physics.dim)  # cell sizes
        self._term_weights = np.ascontiguousarray(((self.dV / h) ** 2).ravel())
        s = model.physics.fluctuation_components
        contiguous = isinstance(s, slice) and s.indices(model.physics.n_comp)[2] == 1
        start, stop, _ = s.indices(model.physics.n_comp) if contiguous else (0, 0, 1)
        self._components = (start, stop - start) if contiguous else None  # None: numpy

    def to_mesh(self, values: np.ndarray) -> np.ndarray:
        """Quadrature values of one state (num_cells, num_qp, ...) in this order -> mesh order."""
        out = np.empty_like(values)
        out[self.order] = values
        return out

    def constitutive_update(self, strain: np.ndarray, history: History) -> MicroUpdate:
        """:meth:`fe2.rve.model.RveModel.constitutive_update` with the cells in this order:
        micro strains (P, num_cells, num_qp, n), the committed history stacked over the P
        points -> stress (P, num_cells, num_qp, n), tangent (..., n, n) in this order."""
        return self.model.constitutive_update(strain, history, phase_cells=self.slices)

    def point_averages(self, values: np.ndarray) -> np.ndarray:
        """Volume averages of P states (one process): (P, num_cells, num_qp, ...) -> (P, ...)."""
        P, trailing = values.shape[0], values.shape[3:]
        flat = values.reshape(P, self._weights.size, int(np.prod(trailing)))
        return np.matmul(self._weights, flat).reshape(P, *trailing)

    def averages(self, stress: np.ndarray, strain: np.ndarray) -> Averages:
        """:meth:`fe2.rve.model.RveModel.averages` of P states (one process) with the cells in
        this order, in one pass (a C kernel)."""
        ffi, lib = kernels()
        P, n = stress.shape[0], stress.shape[-1]
        stress, strain = (np.ascontiguousarray(a, dtype=float) for a in (stress, strain))
        ref = np.ascontiguousarray(self.model.physics.reference_strain, dtype=float)
        out = [np.empty((P, n)), np.empty((P, n)), np.empty(P), np.empty(P)]
        lib.qp_averages(P, self._weights.size, n, double_pointer(ffi, stress), double_pointer(ffi, strain),
                        double_pointer(ffi, ref), double_pointer(ffi, self._weights),
                        *(double_pointer(ffi, a) for a in out))
        return Averages(stress=out[0], strain=out[1], energy=out[2], scale=out[3])

    def residual_terms(self, tangent: np.ndarray, strain: np.ndarray) -> np.ndarray:
        """:func:`fe2.convergence.residual_terms` of P states (P,) over the fluctuation
        components, from the tangents (P, num_cells, num_qp, n, n) and strains (..., n) in
        this order (a C kernel)."""
        if self._components is None:
            s = self.model.physics.fluctuation_components
            return residual_terms(tangent[..., s, s], strain[..., s], self.dV, dim=self.model.physics.dim)
        ffi, lib = kernels()
        P, n = strain.shape[0], strain.shape[-1]
        tangent, strain = (np.ascontiguousarray(a, dtype=float) for a in (tangent, strain))
        out = np.empty(P)
        lib.qp_terms(P, self._term_weights.size, n, *self._components, double_pointer(ffi, tangent),
                     double_pointer(ffi, strain), double_pointer(ffi, self._term_weights), double_pointer(ffi, out))
        return out
