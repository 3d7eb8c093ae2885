"""Fields at the macro quadrature points of `fe2 run` (``output.quadrature_fields``).

A point cloud series in the layout of ``fields.xdmf`` (:class:`fe2.io.field_series.FieldSeries`:
one HDF5 file per written step, the index rewritten atomically after it; kill-safe and
continued by a restart; ParaView and meshio's XDMF ``TimeSeriesReader`` read it)::

    quadrature_fields.xdmf           the points as Polyvertex cells, one step grid per write
    quadrature_fields/mesh.h5        /geometry (N, 3): the quadrature points; /topology (N, 1)
    quadrature_fields/step-NNNNNN.h5 one dataset per field, (N, components)

Point q of the mesh-file cell c (input cell order, as in ``fields.xdmf``) is row
c * num_qp + q, so the files do not depend on the number of ranks. Fields per point (node
data of the cloud): ``stress`` and ``strain`` (3 x 3 row-major, as the cell fields: the full
stress with sigma33 / P33 of plane strain where known), the derived stresses where the full
stress is known (``von_mises``, ``principal_stress``, ``cauchy_stress``:
:func:`fe2.io.derived.stress_output_values`), every point output of the constitutive source
and monitors (``equivalent_plastic_strain``, ``stress_33``, ...), ``cell`` (the mesh-file
index of the point's cell) and ``weight`` (its quadrature volume |det J| w_q: the weights of
a cell sum to its volume, and the weighted mean over a cell is the cell field).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fe2.io.derived import flat_output_values, stress_output_values
from fe2.io.field_series import FieldSeries, MeshNumbering, PointCloudNumbering


def _rows(values: np.ndarray, m: int) -> np.ndarray:
    """(m, k) with k in (1, 3, 9): scalars as a column, 2-vectors padded to 3 components."""
    values = np.asarray(values, dtype=float).reshape(m, -1)
    if values.shape[1] == 2:
        values = np.hstack([values, np.zeros((m, 1))])
    return values


class QuadratureFields:
    """Writes the fields at the owned macro quadrature points of a problem (collective).

    Args:
        problem: the macro problem (mesh, physics, quadrature forms).
        directory: the output directory.
        keep_until: as for :class:`FieldSeries` (a restart keeps its steps up to there).
    """

    NAME = "quadrature_fields"
    FILES = (f"{NAME}.xdmf", NAME)

    def __init__(self, problem, directory: Path, *, keep_until: int | None = None):
        self.problem = problem
        forms = problem.forms
        nq = forms.num_qp
        original = MeshNumbering(problem.mesh).original  # mesh-file index of each owned cell
        ids = (original[:, None] * nq + np.arange(nq)).ravel()
        x = forms.quadrature_coordinates().reshape(len(ids), -1)
        self.ids = ids
        self.cell = np.repeat(original, nq).astype(float)
        self.weight = forms.dV.ravel().copy()
        self.series = FieldSeries(problem.mesh, directory, self.NAME, keep_until=keep_until,
                                  numbering=PointCloudNumbering(problem.comm, ids, x))

    def write(self, step: int, time: float, *, strains: np.ndarray, point_fields: dict[str, np.ndarray]) -> None:
        """Write the fields of ``step`` (collective): ``strains`` (m, n) the macro strains at
        the owned points (cell-major), ``point_fields`` name -> (m,) per-point outputs."""
        physics, forms = self.problem.physics, self.problem.forms
        m = len(self.ids)
        stress = forms.stress_qp.reshape(m, physics.n_comp)
        out_of_plane = point_fields.get("stress_33")
        values = stress_output_values(physics, stress, strains,
                                      None if out_of_plane is None else np.asarray(out_of_plane).reshape(m))
        values["strain"] = flat_output_values(physics, strains)
        values.update(point_fields)
        values.update(cell=self.cell, weight=self.weight)
        self.series.write_values(step, time, {
            name: ("Node", (self.ids, _rows(value, m))) for name, value in values.items()
        })
