"""RVE fields at named probe points of the macro domain (FE², concurrent coupling).

A probe is the macro quadrature point nearest to a named position (over all ranks; ties go to
the lowest rank). Its RVE keeps its fields at every solve; whenever the macro fields are
written, rank 0 collects them and rewrites ``rve_<name><suffix>.xdmf`` (ParaView; time = load
factor) with all snapshots so far: the total RVE displacement, the stress and the equivalent
plastic strain per cell, as in `fe2 homogenize` load paths.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from fe2.errors import InputError, ResourceError, collectively, os_error_cause
from fe2.io.rve_fields import RveFields, Snapshot
from fe2.macro.problem import MacroProblem
from fe2.material_point import ProbesUnsupported

log = logging.getLogger(__name__)


class RveProbes:
    """The probes of one run.

    Args:
        problem: the macro problem; its points must offer ``set_probes``/``probe_fields``.
        positions: probe name -> position (dim coordinates, length units).
        directory: where the XDMF files go.
        suffix: appended to the file names (a restarted run writes new files).
    """

    def __init__(self, problem: MacroProblem, positions: dict[str, list[float]], directory: Path, suffix: str = ""):
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
            local = int(np.argmin(distance)) if len(x) else -1
            mine = (float(distance[local]), self.comm.rank) if len(x) else (np.inf, self.comm.rank)
            best = min(self.comm.allgather(mine))
            owner = best[1]
            if owner == self.comm.rank:
                self.home[name] = local
            at = self.comm.bcast(x[local].tolist() if owner == self.comm.rank else None, root=owner)
            self.located[name] = {"position": list(position), "point": at, "distance": best[0],
                                  "file": f"rve_{name}{suffix}.xdmf"}
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
        self.snapshots: dict[str, list[tuple[float, Snapshot]]] = {name: [] for name in positions}

    def write(self, time: float) -> None:
        """Add the probes' RVE fields of the last solve at ``time`` and rewrite the files (collective)."""
        fields = self.problem.points.probe_fields()
        mine = {name: fields[i] for name, i in self.home.items() if i in fields}
        gathered = self.comm.gather(mine, root=0)

        def write() -> None:  # rank 0; a file system error is raised on every rank
            if self.comm.rank != 0:
                return
            found = {name: snap for part in gathered for name, snap in part.items()}
            for name, snapshots in self.snapshots.items():
                if name in found:
                    snapshots.append((time, found[name]))
                    path = self.directory / self.located[name]["file"]
                    try:
                        self.writer.write(path, snapshots)
                    except OSError as exc:
                        raise ResourceError(f"cannot write {path}: {os_error_cause(exc)}") from None

        collectively(self.comm, write, errors=(ResourceError,))
