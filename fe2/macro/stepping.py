"""One load-stepping driver with automatic cut-back, in pseudo-time.

A study is a list of target times t_1 < t_2 < ... (the steps). Each step is reached by one or
more sub-steps, each a call ``target.solve(t)`` that tries to reach time t from the committed
state -- the seam where a problem says how it reaches a target (the macro Newton solve, one
RVE evaluation under a strain path, a mixed stress/strain control, ...). A sub-step that
converged is committed (``target.commit()``); one that failed (a material point failed on some
rank, Newton diverged or ran out of iterations) is undone (``target.rollback()``) and halved;
after a sub-step that converged easily the increment grows back (doubled, up to the whole
step). A step fails for good when its increment would drop below 2^-max_cutbacks of the step.

Used by `fe2 run` (:class:`fe2.macro.problem.MacroProblem`) and by `fe2 homogenize`'s load
paths (:mod:`fe2.homogenization.load_path`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from mpi4py import MPI

from fe2.errors import ComputationError

log = logging.getLogger(__name__)


class Attempt(Protocol):
    """What a solve to a target time reports (e.g. :class:`fe2.macro.problem.NewtonResult`)."""

    converged: bool
    iterations: int
    residual_norms: list[float]
    point_evaluations: int
    reason: str
    point_failure: bool


class Steppable(Protocol):
    """A problem the driver can advance in time (collective methods)."""

    def solve(self, t: float) -> Attempt:
        """Try to reach time ``t`` from the committed state; the state is left as reached."""
        ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


@dataclass
class StepRecord:
    """One converged step (the row of history.csv / load_path.csv).

    The driver fills the first group; the caller's ``on_step`` may fill the rest.
    """

    step: int
    time: float
    newton_iterations: int = 0  # over all sub-steps
    substeps: int = 0
    cutbacks: int = 0
    residual_norm: float = 0.0
    residual_norms: list[float] = field(default_factory=list)  # of the last sub-step
    substep_times: list[float] = field(default_factory=list)
    point_evaluations: int = 0  # on all ranks, over all attempts
    point_failures: int = 0  # failed attempts because a material point failed
    line_search_trials: int = 0  # extra evaluations of the line search, over all attempts
    seconds: float = 0.0
    # filled by the macro study
    rve_solves: int = 0
    reactions: dict[str, np.ndarray] = field(default_factory=dict)
    displacements: dict[str, np.ndarray] = field(default_factory=dict)
    imbalance: float = 1.0  # max/mean over ranks of the RVE work (seconds) of the step
    moved_points: int = 0  # points moved to another rank by the rebalance after the step
    diagnostics: dict[str, object] = field(default_factory=dict)  # extra history columns

    @property
    def rve_failures(self) -> int:
        return self.point_failures


def run_steps(
    target: Steppable,
    times: Sequence[float],
    *,
    comm: MPI.Comm,
    max_cutbacks: int = 5,
    easy_iterations: int = 4,
    on_step: Callable[[StepRecord], None] | None = None,
    start: int = 0,
    start_time: float = 0.0,
    label: str = "load step",
) -> list[StepRecord]:
    """Reach every time in turn; returns one record per step taken (collective).

    ``start``: the number of times already reached (a restart: the committed state is that at
    ``times[start - 1]``); ``start_time``: the time of the committed state when ``start`` is 0.

    Raises:
        ComputationError: a step cannot be completed within ``max_cutbacks`` halvings.
    """
    records = []
    now = times[start - 1] if start else start_time
    for step, goal in enumerate(times[start:], start=start + 1):
        t0 = time.perf_counter()
        record = StepRecord(step=step, time=goal)
        whole = goal - now
        increment = whole
        while goal - now > 1e-12 * abs(whole):
            trial = min(now + increment, goal)
            result = target.solve(trial)
            record.newton_iterations += result.iterations
            record.point_evaluations += result.point_evaluations
            record.line_search_trials += getattr(result, "line_search_trials", 0)
            if result.converged:
                target.commit()
                now = trial
                record.substeps += 1
                record.substep_times.append(trial)
                record.residual_norms = list(result.residual_norms)
                record.residual_norm = result.residual_norms[-1] if result.residual_norms else 0.0
                if result.iterations <= easy_iterations and increment < whole:
                    increment = 2 * increment
                continue
            target.rollback()
            record.point_failures += int(result.point_failure)
            if increment / 2 < whole * 2.0**-max_cutbacks:
                raise ComputationError(
                    f"{label} {step} (time {goal:g}) failed after {record.cutbacks} cut-backs: {result.reason}"
                )
            record.cutbacks += 1
            increment = increment / 2
            if comm.rank == 0:
                log.info("%s %d: sub-step to t = %.6g failed (%s); cutting back", label, step, trial, result.reason)
        record.point_evaluations = comm.allreduce(record.point_evaluations, op=MPI.SUM)
        record.seconds = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        if on_step is not None:
            on_step(record)
        records.append(record)
    return records


def run_load_steps(problem, times: Sequence[float], *, max_cutbacks: int = 5, easy_iterations: int = 4,
                   on_step: Callable[[StepRecord], None] | None = None, start: int = 0) -> list[StepRecord]:
    """:func:`run_steps` for a :class:`~fe2.macro.problem.MacroProblem`, with the reactions and
    mean boundary displacements of every step in its record (collective)."""

    def record_step(record: StepRecord) -> None:
        record.reactions = problem.reactions()
        record.displacements = problem.boundary_displacements()
        if on_step is not None:
            on_step(record)

    return run_steps(problem, times, comm=problem.comm, max_cutbacks=max_cutbacks,
                     easy_iterations=easy_iterations, on_step=record_step, start=start)
