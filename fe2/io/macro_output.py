"""Outputs of `fe2 run`: XDMF fields, history.csv (rewritten after every step), summary.json.

Fields (``fields.xdmf`` with one HDF5 file per step in ``fields/``, see
:mod:`fe2.io.field_series`; ParaView and meshio, time = the pseudo-time t): the displacement
(P1; interpolated for P2) or the temperature; per cell (DG0) the macro stress and strain
averaged over the cell's quadrature points as 3 x 3 tensors (in 2D the in-plane components,
out-of-plane entries 0; Cauchy stress and small strain, or P and F at finite strain), or the
heat flux and temperature gradient as vectors (names and shapes from the physics); and the point outputs of the constitutive source averaged per cell
(equivalent plastic strain, RVE-averaged for FE²) or maximised (RVE Newton iterations).
Where the full stress is known (3D; plane strain with the out-of-plane stress ``stress_33``,
sigma33 or P33, among the point outputs): it is the 33 entry of the stress tensor, and
``von_mises`` and ``principal_stress`` of the cell-mean stress -- at finite strain of the
``cauchy_stress`` J^-1 P F^T of the cell-mean P and F (:mod:`fe2.io.derived`).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
from dolfinx import fem

from fe2.errors import ResourceError, collectively, os_error_cause
from fe2.io.derived import flat_output_values, stress_output_values
from fe2.io.field_series import FieldSeries
from fe2.io.quadrature_fields import QuadratureFields
from fe2.macro.problem import MacroProblem
from fe2.macro.stepping import StepRecord
from fe2.io.probes import RveProbes
from fe2.io.rve_fields import set_cell_values

#: How a per-point output becomes a cell value.
CELL_REDUCTION = {
    "rve_newton_iterations": np.max,
    "phonon_min_omega2": np.min, "acoustic_min_eigenvalue": np.min, "lattice_unstable": np.max,
}


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` via a temporary file renamed when complete; OSError -> ResourceError
    naming the path (no temporary file left)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise ResourceError(f"cannot write {path}: {os_error_cause(exc)}") from None


def _finite(value):
    """JSON-safe: non-finite floats become None (JSON has no NaN)."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class MacroOutput:
    """Writes the outputs of one run into ``directory`` (collective; rank 0 writes text).

    A restarted run passes the history rows of the steps already done and the step it
    continues after (``resume_after``): the field series keeps its steps up to there and
    continues, and so do the series of the ``probes``, written whenever the macro fields are. File system
    errors raise :class:`ResourceError` naming the path.
    """

    FILES = ("fields.xdmf", "fields", "history.csv", "summary.json", "checkpoints", *QuadratureFields.FILES)

    def __init__(
        self, problem: MacroProblem, directory: Path, *, fields_every: int, num_steps: int,
        resume_after: int | None = None, rows: list[dict] | None = None,
        probes: RveProbes | None = None, monitors: list | None = None, quadrature_fields: bool = False,
    ):
        self.problem, self.directory = problem, Path(directory)
        self.fields_every, self.num_steps = fields_every, num_steps
        self.comm = problem.comm
        mesh, dim = problem.mesh, problem.mesh.geometry.dim
        self.dim = dim
        physics = problem.physics
        V1 = fem.functionspace(mesh, ("Lagrange", 1, physics.value_shape))
        self.displacement = fem.Function(V1, name=physics.primary)  # the primary field
        self._interpolate = problem.forms.degree != 1
        tensor = fem.functionspace(mesh, ("DG", 0, physics.output_shape))
        self.stress = fem.Function(tensor, name=physics.stress_field)
        self.strain = fem.Function(tensor, name=physics.strain_field)
        self.scalar_space = fem.functionspace(mesh, ("DG", 0))
        self.point_outputs: dict[str, fem.Function] = {}
        self.derived = {  # fields of the full (3D) stress, when known (_stress_fields)
            "von_mises": fem.Function(self.scalar_space, name="von_mises"),
            "cauchy_stress": fem.Function(tensor, name="cauchy_stress"),
            "principal_stress": fem.Function(fem.functionspace(mesh, ("DG", 0, (3,))), name="principal_stress"),
        }
        self.probes = probes
        self.series = FieldSeries(mesh, self.directory, "fields", keep_until=resume_after)
        if probes is not None:  # one series per probe, continued as the fields
            probes.start(keep_until=resume_after)
        #: the fields at the quadrature points (``output.quadrature_fields``), or None
        self.quadrature = (QuadratureFields(problem, self.directory, keep_until=resume_after)
                           if quadrature_fields else None)
        self.rows: list[dict] = list(rows or [])
        #: Per-point outputs besides the material points' (e.g. the scale-separation
        #: indicator): ``point_fields()`` -> name -> (points,), ``FIELDS``: name -> cell reduction.
        self.monitors = list(monitors or [])

    # ------------------------------------------------------------------ fields

    def _cell_mean(self, values: np.ndarray) -> np.ndarray:
        """(cells, qp, ...) -> (cells, ...) weighted by the quadrature volumes."""
        dV = self.problem.forms.dV
        shape = (len(dV),) + (1,) * (values.ndim - 2)
        return np.einsum("cq,cq...->c...", dV, values) / dV.sum(axis=1).reshape(shape)

    def _tensor_cells(self, vectors: np.ndarray) -> np.ndarray:
        """Cell-mean strain/stress vectors (cells, n) -> output values (3 x 3 tensors, or
        vectors for conduction), flat per cell."""
        return flat_output_values(self.problem.physics, vectors)

    def _stress_fields(self, stress: np.ndarray, strain: np.ndarray, out_of_plane: np.ndarray | None) -> dict[str, np.ndarray]:
        """Cell means of the stress and strain (cells, n) and, in 2D, of the out-of-plane stress
        (cells,) or None -> name -> cell values: ``stress`` (cells, 9) and, where the full
        stress is known, ``von_mises`` and ``principal_stress`` (of the Cauchy stress at
        finite strain, also written as ``cauchy_stress``)."""
        return stress_output_values(self.problem.physics, stress, strain, out_of_plane)

    def _set_cells(self, function: fem.Function, values: np.ndarray) -> None:
        """Write per-cell values (cells, ...) of the owned cells into a DG0 function."""
        set_cell_values(function, values)

    def write_fields(self, step: int, time: float) -> None:
        problem, forms = self.problem, self.problem.forms
        cells, nq = forms.num_cells, forms.num_qp
        if self._interpolate:
            self.displacement.interpolate(problem.u)
        else:
            self.displacement.x.array[:] = problem.u.x.array
        strains = problem.macro_strains()  # (cells * nq, n)
        strain = self._cell_mean(strains.reshape(cells, nq, problem.physics.n_comp))
        self._set_cells(self.strain, self._tensor_cells(strain))
        point_fields = dict(problem.points.point_fields())
        out_of_plane = point_fields.get("stress_33")
        stress_fields = self._stress_fields(
            self._cell_mean(forms.stress_qp), strain,
            None if out_of_plane is None else self._cell_mean(out_of_plane.reshape(cells, nq)))
        self._set_cells(self.stress, stress_fields.pop("stress"))
        derived = [self.derived[name] for name in stress_fields]
        for name, values in stress_fields.items():
            self._set_cells(self.derived[name], values)
        reductions = dict(CELL_REDUCTION)
        for monitor in self.monitors:
            point_fields.update(monitor.point_fields())
            reductions.update(monitor.FIELDS)
        for name, values in point_fields.items():
            if name not in self.point_outputs:
                self.point_outputs[name] = fem.Function(self.scalar_space, name=name)
            per_point = values.reshape(cells, nq)
            reduce = reductions.get(name)
            cell_values = reduce(per_point, axis=1) if reduce else self._cell_mean(per_point)
            self._set_cells(self.point_outputs[name], cell_values)
        self.series.write(step, time, node_fields=[self.displacement],
                          cell_fields=[self.stress, self.strain, *derived, *self.point_outputs.values()])
        if self.quadrature is not None:
            self.quadrature.write(step, time, strains=strains, point_fields=point_fields)
        if self.probes is not None:
            self.probes.write(step, time)

    # ------------------------------------------------------------------ history

    def history_row(self, record: StepRecord) -> dict:
        row = {
            "step": record.step,
            "time": record.time,
            "newton_iterations": record.newton_iterations,
            "residual_norm": f"{record.residual_norm:.6e}",
            "residual_norms": " ".join(f"{r:.3e}" for r in record.residual_norms),
            "substeps": record.substeps,
            "cutbacks": record.cutbacks,
            "rve_solves": record.rve_solves,
            "rve_failures": record.rve_failures,
            "line_search_trials": record.line_search_trials,
            "imbalance": f"{record.imbalance:.3f}",
            "moved_points": record.moved_points,
            "seconds": f"{record.seconds:.3f}",
        }
        physics = self.problem.physics
        for name, force in record.reactions.items():
            for column, value in zip(physics.history_columns(name)[0], force):
                row[column] = repr(float(value))
        for name, mean in record.displacements.items():
            for column, value in zip(physics.history_columns(name)[1], mean):
                row[column] = repr(float(value))
        row.update(record.diagnostics)
        return row

    def write_step(self, record: StepRecord, *, fields: bool = False) -> None:
        """Append the step to history.csv and write the fields when due or asked for (collective)."""
        self.rows.append(self.history_row(record))
        last = record.step == self.num_steps
        due = fields or last or (self.fields_every and record.step % self.fields_every == 0)
        if due:
            self.write_fields(record.step, record.time)

        def write() -> None:
            if self.comm.rank == 0:
                out = io.StringIO()
                columns = list(dict.fromkeys(key for row in self.rows for key in row))  # a restart may add some
                writer = csv.DictWriter(out, fieldnames=columns, restval="", lineterminator="\n")
                writer.writeheader()
                writer.writerows(self.rows)
                _atomic_write(self.directory / "history.csv", out.getvalue())

        collectively(self.comm, write, errors=(ResourceError,))

    def write_summary(self, summary: dict) -> None:
        """Write summary.json (rank 0); non-finite numbers become null (valid JSON)."""
        text = json.dumps(_finite(summary), indent=2, allow_nan=False) + "\n"
        collectively(
            self.comm,
            lambda: _atomic_write(self.directory / "summary.json", text) if self.comm.rank == 0 else None,
            errors=(ResourceError,),
        )

    def close(self) -> None:
        """Nothing stays open between steps (every step file is closed when written)."""
