"""Load stepping with automatic cut-back for the macro problem.

The load factor goes through the targets (0 < lambda_1 < lambda_2 < ...). A sub-step whose
Newton solve fails (a material point failed on some rank, Newton diverged or ran out of
iterations) is undone -- material points rolled back, U restored -- and halved; after a
sub-step that converged easily the increment grows back (doubled, up to the whole step).
A step fails for good when its increment would drop below 2^-max_cutbacks of the step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from mpi4py import MPI

from fe2.errors import ComputationError
from fe2.macro.problem import MacroProblem

log = logging.getLogger(__name__)


@dataclass
class StepRecord:
    """One converged load step (the row of history.csv)."""

    step: int
    load_factor: float
    newton_iterations: int = 0
    substeps: int = 0
    cutbacks: int = 0
    residual_norm: float = 0.0
    residual_norms: list[float] = field(default_factory=list)  # of the last sub-step
    substep_loads: list[float] = field(default_factory=list)  # load factors of the sub-steps
    rve_solves: int = 0
    rve_failures: int = 0
    reactions: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0
    imbalance: float = 1.0  # max/mean over ranks of the RVE work (seconds) of the step
    moved_points: int = 0  # points moved to another rank by the rebalance after the step
    diagnostics: dict[str, object] = field(default_factory=dict)  # extra history columns


def run_load_steps(
    problem: MacroProblem,
    targets: list[float],
    *,
    max_cutbacks: int = 5,
    easy_iterations: int = 4,
    on_step: Callable[[StepRecord], None] | None = None,
    rebalance: bool = False,
    start: int = 0,
) -> list[StepRecord]:
    """Reach every target load factor in turn; returns one record per step taken (collective).

    ``start``: the number of targets already reached (a restart: U and the committed point
    states are those at ``targets[start - 1]``). With ``rebalance``, material points are re-assigned to
    ranks from their measured cost after every step.

    Raises:
        ComputationError: a step cannot be completed within ``max_cutbacks`` halvings.
    """
    comm = problem.comm
    records = []
    load = targets[start - 1] if start else 0.0
    committed_u = problem.u.x.array.copy()
    stats = problem.points.statistics  # RVE solver totals of this rank ({} for closed-form laws)
    for step, target in enumerate(targets[start:], start=start + 1):
        t0 = time.perf_counter()
        work_before = stats.get("seconds", 0.0)
        solves_before = stats.get("solves", 0) + stats.get("failures", 0)
        record = StepRecord(step=step, load_factor=target)
        whole = target - load
        increment = whole
        while target - load > 1e-12 * abs(whole):
            trial = min(load + increment, target) if whole > 0 else max(load + increment, target)
            result = problem.solve(trial)
            record.newton_iterations += result.iterations
            if result.converged:
                problem.points.commit()
                committed_u[:] = problem.u.x.array
                load = trial
                record.substeps += 1
                record.substep_loads.append(trial)
                record.residual_norm = result.residual_norms[-1]
                record.residual_norms = result.residual_norms
                if result.iterations <= easy_iterations and abs(increment) < abs(whole):
                    increment = 2 * increment
                continue
            problem.points.rollback()
            problem.u.x.array[:] = committed_u
            record.rve_failures += int(result.point_failure)
            record.cutbacks += 1
            increment = increment / 2
            if comm.rank == 0:
                log.info("step %d: sub-step to %.6g failed (%s); cutting back", step, trial, result.reason)
            if abs(increment) < abs(whole) * 2.0**-max_cutbacks:
                raise ComputationError(
                    f"load step {step} (load factor {target:g}) failed after {record.cutbacks} "
                    f"cut-backs: {result.reason}"
                )
        solves = stats.get("solves", 0) + stats.get("failures", 0) - solves_before
        record.rve_solves = comm.allreduce(solves, op=MPI.SUM)
        record.reactions = problem.reactions(load)
        if stats:
            work = np.array(comm.allgather(stats["seconds"] - work_before))
            record.imbalance = float(work.max() / work.mean()) if work.mean() > 0 else 1.0
        if rebalance:
            problem.points.rebalance()
            record.moved_points = problem.points.moved
        record.seconds = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        records.append(record)
        if on_step is not None:
            on_step(record)
    return records
