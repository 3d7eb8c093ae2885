"""RVE fields for ParaView and meshio: snapshots of states, written together as one XDMF file
(:meth:`RveFields.write`) or step by step into a :class:`fe2.io.field_series.FieldSeries`
(:meth:`RveFields.write_step`).

Fields (``snapshot``): the total displacement u = (macro part) + w, or the temperature, as a
P1 function; the stress (Cauchy sigma, Piola P, or the flux) averaged over each cell (DG0,
a 3 x 3 tensor, or a d-vector for the flux); the equivalent plastic strain averaged over each
cell (DG0; zero in phases without plasticity). In 2D the stress tensor is stored embedded in
3 x 3 with the out-of-plane entries 0 (XDMF readers such as ParaView expect 9 components; the
plane-strain sigma_33 is not part of the homogenised answer). Snapshots are plain arrays so that they can be gathered to the
writing rank; every rank builds the same spaces on the same RVE mesh.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import ufl
from dolfinx import fem

from fe2.io.field_series import FieldSeries, write_series_file
from fe2.rve.model import History, RveModel

Snapshot = dict[str, np.ndarray]


def set_cell_values(function: fem.Function, values: np.ndarray) -> None:
    """Write per-cell values (num_cells, ...) of the owned cells into a DG0 function."""
    dofmap = function.function_space.dofmap
    cells = values.shape[0]
    blocks = function.x.array.reshape(-1, dofmap.index_map_bs)
    blocks[dofmap.list[:cells, 0]] = values.reshape(cells, dofmap.index_map_bs)
    function.x.scatter_forward()


class RveFields:
    """Builds and writes field snapshots of one RVE model."""

    def __init__(self, model: RveModel):
        self.model = model
        mesh, physics, dim = model.mesh, model.physics, model.box.dim
        self.primary, self.stress_name = physics.primary, physics.stress_field
        V1 = fem.functionspace(mesh, ("Lagrange", 1, physics.value_shape))
        x = ufl.SpatialCoordinate(mesh)
        centre = fem.Constant(mesh, model.box.centre)
        self.E = fem.Constant(mesh, np.zeros(physics.n_comp))  # macro strain of a snapshot
        self.w = fem.Function(model.V)  # fluctuation of a snapshot
        total = physics.macro_field(self.E, x - centre) + self.w
        self._total = fem.Expression(total, V1.element.interpolation_points)
        self.functions = {
            self.primary: fem.Function(V1, name=self.primary),
            self.stress_name: fem.Function(fem.functionspace(mesh, ("DG", 0, physics.output_shape)),
                                           name=self.stress_name),
            "equivalent_plastic_strain": fem.Function(
                fem.functionspace(mesh, ("DG", 0)), name="equivalent_plastic_strain"
            ),
        }

    def _cell_average(self, values: np.ndarray) -> np.ndarray:
        """(num_cells, num_qp, ...) -> (num_cells, ...), weighted by the quadrature volumes."""
        dV = self.model.dV
        return np.einsum("cq,cq...->c...", dV, values) / dV.sum(axis=1).reshape((-1,) + (1,) * (values.ndim - 2))

    def snapshot(self, E: np.ndarray, w: np.ndarray, stress_qp: np.ndarray, history: History) -> Snapshot:
        """Fields of one RVE state: macro strain E (n,), fluctuation w (N,), stress at the
        quadrature points (num_cells, num_qp, n) and history."""
        model = self.model
        self.E.value = E
        self.w.x.array[:] = w
        u = self.functions[self.primary]
        u.interpolate(self._total)
        stress = model.physics.output_values(self._cell_average(stress_qp))
        if model.has_out_of_plane_stress:  # the out-of-plane stress of plane strain: (cells, 3, 3)
            micro = model.operators.strain(np.asarray(w, dtype=float)[None], np.asarray(E, dtype=float)[None])
            stress[:, 2, 2] = self._cell_average(model.out_of_plane_stress(micro, history)[0])
        p = np.zeros((model.num_cells, model.num_qp))
        for tag, state in history.items():
            if "equivalent_plastic_strain" in state:
                cells = model.phase_cells[tag]
                p[cells] = state["equivalent_plastic_strain"].reshape(len(cells), model.num_qp)
        return {
            self.primary: u.x.array.copy(),
            self.stress_name: stress.ravel(),
            "equivalent_plastic_strain": self._cell_average(p),
        }

    def load(self, snapshot: Snapshot) -> dict[str, fem.Function]:
        """Set :attr:`functions` to the values of a snapshot; returns them."""
        for name, function in self.functions.items():
            if name == self.primary:
                function.x.array[:] = snapshot[name]
            else:
                set_cell_values(function, snapshot[name].reshape(self.model.num_cells, -1))
        return self.functions

    def write_step(self, series: FieldSeries, step: int, time: float, snapshot: Snapshot) -> None:
        """Write a snapshot as ``step`` at ``time`` of a series on the RVE mesh (collective on
        the mesh's communicator; errors as :meth:`FieldSeries.write`)."""
        functions = self.load(snapshot)
        series.write(step, time, node_fields=[functions[self.primary]],
                     cell_fields=[f for name, f in functions.items() if name != self.primary])

    def write(self, path: Path, snapshots: list[tuple[float, Snapshot]]) -> None:
        """Write snapshots (time, fields) to one XDMF file (+ .h5), atomically (the layout of
        :func:`fe2.io.field_series.write_series_file`: ParaView, meshio, h5py).

        Raises:
            OSError: the file system refused (no temporary file is left).
        """
        centers = {name: "Node" if name == self.primary else "Cell" for name in self.functions}
        series = []
        for time, snapshot in snapshots:
            functions = {}
            for name, function in self.load(snapshot).items():
                copy = function.copy()
                copy.name = name
                functions[name] = copy
            series.append((time, functions))
        write_series_file(Path(path), self.model.mesh, series, centers)
