"""RVE fields at named probe points of the macro domain (FE², concurrent coupling).

A probe is the macro quadrature point nearest to a named position (over all ranks; of points
at the same distance the one with the lexicographically smallest coordinates, so the choice
does not depend on the number of ranks). Its RVE keeps its fields at every solve; whenever the
macro fields are written, rank 0 collects them from the rank that solved it and adds the step
to the probe's series, in the kill-safe layout of ``fields.xdmf``
(:class:`fe2.io.field_series.FieldSeries`; ParaView, meshio, h5py; time = the pseudo-time t)::

    rve_<name>.xdmf                 the index: the RVE mesh and one grid per written step
    rve_<name>/mesh.h5              the RVE mesh (nodes and cells in mesh-file order)
    rve_<name>/step-NNNNNN.h5       the fields of macro step N

Fields: the total RVE displacement (P1), the stress and the equivalent plastic strain per
cell, as in `fe2 homogenize` load paths. A restart continues the series after its checkpoint
(the steps after it are dropped and written again), so every run segment adds to one series.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from fe2.errors import InputError, ResourceError, collectively
from fe2.io.field_series import FieldSeries
from fe2.io.rve_fields import RveFields
from fe2.macro.problem import MacroProblem
from fe2.material_point import ProbesUnsupported

log = logging.getLogger(__name__)


class RveProbes:
    """The probes of one run.

    Args:
        problem: the macro problem; its points must offer ``set_probes``/``probe_fields``.
        positions: probe name -> position (dim coordinates, length units).
        directory: where the series go.

    Nothing is written before :meth:`start`.
    """

    def __init__(self, problem: MacroProblem, positions: dict[str, list[float]], directory: Path):
        self.problem, self.comm = problem, problem.comm
        points = problem.points
        dim = problem.mesh.geometry.dim
        x = problem.forms.quadrature_coordinates().reshape(-1, dim)
        self.home: dict[str, int] = {}  # probe -> local point index, for the probes homed here
        self.located: dict[str, dict] = {}
        for name, position in positions.items():
            if len(position) != dim:
                raise InputError(f"output.probes.{name}: expected {dim} coordinates, got {len(position)}")
            distance = np.linalg.norm(x - np.asarray(position), axis=1) if len(x) else np.empty(0)
            local = int(np.lexsort((*x.T[::-1], distance))[0]) if len(x) else -1  # nearest, then smallest x
            mine = ((float(distance[local]), tuple(x[local].tolist()), self.comm.rank) if len(x)
                    else (np.inf, (), self.comm.rank))
            best = min(self.comm.allgather(mine))
            owner = best[2]
            if owner == self.comm.rank:
                self.home[name] = local
            at = self.comm.bcast(x[local].tolist() if owner == self.comm.rank else None, root=owner)
            self.located[name] = {"position": list(position), "point": at, "distance": best[0],
                                  "file": f"rve_{name}.xdmf"}
            if self.comm.rank == 0:
                log.info("probe %r: RVE fields of the macro point at %s (%.3g from %s) -> %s",
                         name, np.round(at, 6).tolist(), best[0], position, self.located[name]["file"])
        try:
            points.set_probes(sorted(self.home.values()))
        except ProbesUnsupported as exc:
            raise InputError(
                "output.probes: RVE fields exist only with concurrent FE² coupling "
                f"(material.rve with nonlinear phases, or coupling: concurrent); {exc}"
            ) from None
        self.directory = Path(directory)
        self.writer = RveFields(points.solver.model) if self.comm.rank == 0 else None
        self.series: dict[str, FieldSeries] = {}  # rank 0, from start()

    def start(self, *, keep_until: int | None = None) -> None:
        """Open the series (collective; rank 0 writes): new ones, or, with ``keep_until``
        (a restart after that step), continue them, dropping their steps after it.

        Raises:
            ResourceError: the file system refused (on every rank).
        """
        def start() -> None:
            if self.comm.rank != 0:
                return
            for name in self.located:
                if keep_until is None:  # the one-file layout of earlier versions
                    (self.directory / f"rve_{name}.h5").unlink(missing_ok=True)
                self.series[name] = FieldSeries(self.writer.model.mesh, self.directory, f"rve_{name}",
                                                keep_until=keep_until)

        collectively(self.comm, start, errors=(ResourceError,))

    def write(self, step: int, time: float) -> None:
        """Add the probes' RVE fields of the last solve as ``step`` at ``time`` (collective).

        Raises:
            ResourceError: the file system refused (on every rank; the series keep their
                earlier steps).
        """
        fields = self.problem.points.probe_fields()
        mine = {name: fields[i] for name, i in self.home.items() if i in fields}
        gathered = self.comm.gather(mine, root=0)

        def write() -> None:  # rank 0; a file system error is raised on every rank
            if self.comm.rank != 0:
                return
            found = {name: snap for part in gathered for name, snap in part.items()}
            for name, series in self.series.items():
                if name in found:
                    self.writer.write_step(series, step, time, found[name])

        collectively(self.comm, write, errors=(ResourceError,))
