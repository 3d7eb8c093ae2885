"""Stability of the Cauchy-Born laws of a `fe2 run`, checked after every converged step.

The material points' ``point_fields()`` of the committed state carry the checks of the
lattice laws (``lattice_unstable``, ``phonon_min_omega2``, ``acoustic_min_eigenvalue``, the
soft-mode wave vector ``soft_mode_k*`` and the localisation normal ``localization_n*``, see
:mod:`fe2.materials.cauchy_born`). After each load step the monitor counts the unstable
points over all ranks, adds ``unstable_points``, ``min_phonon_omega2`` and
``min_acoustic_eigenvalue`` to the step's history row, logs the first failure (step, load
factor, the most unstable point's position and its mode) and, with policy ``stop``, ends
the run after writing that step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from mpi4py import MPI

from fe2.config.materials import CauchyBornPhase, stability_policy
from fe2.config.run import RunConfig
from fe2.errors import ComputationError, InputError
from fe2.lattice.lattices import Lattice

log = logging.getLogger(__name__)


class LatticeInstability(ComputationError):
    """A Cauchy-Born point became unstable under policy ``stop``."""


def _nan_min(values: np.ndarray, comm: MPI.Comm) -> float:
    local = float(np.nanmin(values)) if len(values) and not np.isnan(values).all() else np.inf
    value = comm.allreduce(local, op=MPI.MIN)
    return value if np.isfinite(value) else float("nan")


class StabilityMonitor:
    """The stability bookkeeping of one run (collective methods).

    Args:
        config: the study (policy: the strictest of its Cauchy-Born phases).
        comm: the macro communicator.
        dim: macro dimension (a lattice of another dimension is an input error).
    """

    def __init__(self, config: RunConfig, comm: MPI.Comm, dim: int):
        named = _named(config)
        for name, phase in named:
            if isinstance(phase, CauchyBornPhase) and Lattice(phase.lattice).dim != dim:
                raise InputError(
                    f"{name}.lattice: a {Lattice(phase.lattice).dim}D lattice ({phase.lattice}) in a {dim}D problem"
                )
        self.policy = stability_policy([phase for _, phase in named])
        self.coordinates, self.comm = np.zeros((0, dim)), comm
        self.first_failure: dict | None = None
        self.last_unstable = 0
        self._missing_logged = False

    def locate(self, coordinates: np.ndarray) -> None:
        """Positions of this rank's material points, (m, dim), for the reports."""
        self.coordinates = coordinates

    @property
    def active(self) -> bool:
        return self.policy != "off"

    def state(self) -> dict:
        """What a checkpoint keeps (JSON-compatible)."""
        return {"first_failure": self.first_failure, "last_unstable": self.last_unstable}

    def restore(self, state: dict | None) -> None:
        if state:
            self.first_failure, self.last_unstable = state["first_failure"], state["last_unstable"]

    def check(self, record, point_fields: Callable[[], dict[str, np.ndarray]]) -> bool:
        """Record the checks of a converged step in ``record.diagnostics``; True: stop the run.

        ``point_fields``: the material points' method (called, collectively, only when active).
        """
        if not self.active:
            return False
        comm = self.comm
        fields = point_fields()
        unstable = fields.get("lattice_unstable")
        if comm.allreduce(unstable is None, op=MPI.LOR):
            if comm.rank == 0 and not self._missing_logged:
                log.warning("lattice stability: these material points report no check; "
                            "nothing is checked")
            self._missing_logged = True
            return False
        phonon, acoustic = fields["phonon_min_omega2"], fields["acoustic_min_eigenvalue"]
        failing = np.flatnonzero(unstable > 0)
        count = comm.allreduce(len(failing), op=MPI.SUM)
        record.diagnostics.update(
            unstable_points=count,
            min_phonon_omega2=f"{_nan_min(phonon, comm):.6e}",
            min_acoustic_eigenvalue=f"{_nan_min(acoustic, comm):.6e}",
        )
        self.last_unstable = count
        if count == 0:
            return False
        if self.first_failure is None:
            self.first_failure = self._worst(record, fields, failing, count)
            if comm.rank == 0:
                log.warning("Cauchy-Born rule fails: %s", describe(self.first_failure))
        return self.policy == "stop"

    def _worst(self, record, fields, failing: np.ndarray, count: int) -> dict:
        """The failing point with the lowest phonon (then acoustic) value, over all ranks."""
        candidate = None
        if len(failing):
            phonon = np.nan_to_num(fields["phonon_min_omega2"][failing], nan=np.inf)
            acoustic = np.nan_to_num(fields["acoustic_min_eigenvalue"][failing], nan=np.inf)
            i = failing[np.lexsort((acoustic, phonon))[0]]
            dim = self.coordinates.shape[1]
            candidate = {
                "step": record.step, "time": record.time, "unstable_points": count,
                "position": [float(x) for x in self.coordinates[i]],
                "phonon_min_omega2": float(fields["phonon_min_omega2"][i]),
                "soft_mode_k": [float(fields.get(f"soft_mode_k{j + 1}", np.full(i + 1, np.nan))[i]) for j in range(dim)],
                "acoustic_min_eigenvalue": float(fields["acoustic_min_eigenvalue"][i]),
                "localization_n": [float(fields.get(f"localization_n{j + 1}", np.full(i + 1, np.nan))[i]) for j in range(dim)],
            }
        found = [c for c in self.comm.allgather(candidate) if c is not None]

        def key(c):
            values = [c["phonon_min_omega2"], c["acoustic_min_eigenvalue"]]
            return tuple(np.inf if np.isnan(v) else v for v in values) + tuple(c["position"])

        return min(found, key=key)

    def summary(self) -> dict:
        return {
            "policy": self.policy,
            "first_failure": self.first_failure,
            "unstable_points_last_step": self.last_unstable,
        }

    def error(self) -> LatticeInstability:
        return LatticeInstability(f"stability policy 'stop': Cauchy-Born rule fails: {describe(self.first_failure)}")


def _named(config: RunConfig) -> list[tuple[str, object]]:
    material = config.material
    if material.law is not None:
        return [("material.law", material.law)]
    if material.phases is not None:
        return [(f"material.phases.{n}", p) for n, p in material.phases.items()]
    return [(f"material.rve.phases.{n}", p) for n, p in material.rve.phases.items()]


def describe(failure: dict) -> str:
    """One line: where and how the first failure happened."""
    position = ", ".join(f"{x:.4g}" for x in failure["position"])
    k = ", ".join(f"{x:.3g}" for x in failure["soft_mode_k"])
    n = ", ".join(f"{x:.3g}" for x in failure["localization_n"])
    return (
        f"step {failure['step']} (t = {failure['time']:.6g}), "
        f"{failure['unstable_points']} unstable point(s); most unstable at x = ({position}): "
        f"min omega^2 = {failure['phonon_min_omega2']:.4g} at k = ({k}), "
        f"acoustic tensor min eigenvalue = {failure['acoustic_min_eigenvalue']:.4g} for N = ({n})"
    )
