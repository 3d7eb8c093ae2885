"""RVE points with their work spread over the ranks: the MPI-balanced material-point source.

Every macro quadrature point has a *home* rank (the owner of its cell: the macro problem
hands it the strain and wants its stress there) and a *worker* rank (which holds the point's
state and solves its RVE). An evaluate sends strains to the workers and stresses/tangents
back home (two all-to-all exchanges); failures are agreed on by all ranks. ``rebalance``
(between load steps, after commit) re-assigns points to workers from their measured cost --
longest first, each to the least-loaded rank, deterministically on every rank -- and moves
the committed states (fluctuation and history arrays, with the last response for output)
that change worker. A point's answer
depends only on its strain and state, so results do not depend on the assignment.
"""

from __future__ import annotations

import logging

import numpy as np
from mpi4py import MPI

from fe2.material_point import MaterialPointFailure
from fe2.rve.micro_solver import MicroSolver, PointState, RveResponse
from fe2.rve.pool import SolverPointsBase

log = logging.getLogger(__name__)


def assign_by_cost(costs: np.ndarray, num_ranks: int) -> np.ndarray:
    """Greedy longest-processing-time assignment of points (costs (N,)) to ranks, (N,) ints.

    Deterministic: ties in cost are broken by point id, ties in load by rank.
    """
    order = np.lexsort((np.arange(len(costs)), -costs))
    loads = np.zeros(num_ranks)
    worker = np.empty(len(costs), dtype=int)
    for point in order:
        rank = int(np.argmin(loads))
        worker[point] = rank
        loads[rank] += costs[point]
    return worker


class BalancedRvePool(SolverPointsBase):
    """The material-point contract for the home points of this rank, solved on any rank.

    Args:
        solver: this rank's RVE solver (one RVE type and BC).
        num_points: the number of home points of this rank.
        comm: the macro communicator (collective methods: evaluate, commit, rollback,
            rebalance, point_fields).
        equal_counts: start from an assignment with equal point counts per rank ("static"
            balancing); otherwise every point starts on its home rank.
    """

    def __init__(self, solver: MicroSolver, num_points: int, comm: MPI.Comm, *, equal_counts: bool = False):
        self.solver, self.comm = solver, comm
        self.num_points, self.n_comp = num_points, solver.n_comp
        counts = np.array(comm.allgather(num_points))
        self.offset = int(counts[: comm.rank].sum())
        self.home = np.repeat(np.arange(comm.size), counts)  # home rank of every global point
        self.worker = self.home.copy()
        initial = solver.initial_state()
        self.states: dict[int, PointState] = {
            int(g): initial for g in range(self.offset, self.offset + num_points)
        }
        self.trials: dict[int, PointState] = {}
        self.responses: dict[int, RveResponse] = {}
        self.costs: dict[int, float] = {}  # seconds spent on each point since the last rebalance
        self.moved = 0  # points moved by the last rebalance (all ranks)
        self.equal_counts = equal_counts
        self.probes: set[int] = set()  # global points whose RVE fields every solve keeps
        if equal_counts:
            self.rebalance(costs=np.ones(len(self.home)))

    # ------------------------------------------------------------------ evaluate

    def evaluate(self, strains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        strains = np.asarray(strains, dtype=float).reshape(self.num_points, self.n_comp)
        size = self.comm.size
        outgoing = [[] for _ in range(size)]
        for local, strain in enumerate(strains):
            g = self.offset + local
            outgoing[self.worker[g]].append((g, strain))
        work = sorted((g, e) for batch in self.comm.alltoall(outgoing) for g, e in batch)
        points = [g for g, _ in work]
        result = self.solver.solve_batch(
            np.array([e for _, e in work]).reshape(-1, self.n_comp),
            [self.states[g] for g in points],
            warm=[self.trials[g].w if g in self.trials else self.states[g].w for g in points],
            fields=[g in self.probes for g in points],
        )
        results = [[] for _ in range(size)]
        for i, g in enumerate(points):
            self.costs[g] = self.costs.get(g, 0.0) + float(result.costs[i])
            if i in result.failures:
                continue
            response = result.responses[i]
            self.trials[g], self.responses[g] = result.trials[i], response
            results[self.home[g]].append((g, response.stress, response.tangent))
        failure = None
        if result.failures:
            i = min(result.failures)
            failure = (points[i], str(result.failures[i]))
        failures = [f for f in self.comm.allgather(failure) if f is not None]
        if failures:  # every rank raises the same failure
            g, reason = min(failures)
            raise MaterialPointFailure(g, f"(worker rank {self.worker[g]}) {reason}")
        stresses = np.empty((self.num_points, self.n_comp))
        tangents = np.empty((self.num_points, self.n_comp, self.n_comp))
        for batch in self.comm.alltoall(results):
            for g, stress, tangent in batch:
                stresses[g - self.offset], tangents[g - self.offset] = stress, tangent
        return stresses, tangents

    def commit(self) -> None:
        self.states.update(self.trials)
        self.trials.clear()

    def rollback(self) -> None:
        self.trials.clear()

    def committed_states(self) -> list[PointState]:
        """The committed states of the home points, fetched from their workers (collective)."""
        outgoing = [[] for _ in range(self.comm.size)]
        for g, state in self.states.items():
            outgoing[self.home[g]].append((g, state))
        states: list = [None] * self.num_points
        for batch in self.comm.alltoall(outgoing):
            for g, state in batch:
                states[g - self.offset] = state
        return states

    def restore_states(self, states: list[PointState]) -> None:
        """Give the home points these committed states; every point starts on its home rank
        (or, with ``equal_counts``, on the equal-count assignment). Collective."""
        if len(states) != self.num_points:
            raise ValueError(f"expected {self.num_points} states, got {len(states)}")
        self.worker = self.home.copy()
        self.states = {self.offset + i: state for i, state in enumerate(states)}
        self.trials.clear()
        self.responses.clear()
        self.costs = {}
        if self.equal_counts:
            self.rebalance(costs=np.ones(len(self.home)))

    # ------------------------------------------------------------------ balancing

    def work_per_rank(self) -> np.ndarray:
        """Seconds of RVE work of every rank since the last rebalance, (size,) (collective)."""
        return np.array(self.comm.allgather(sum(self.costs.values())))

    def rebalance(self, costs: np.ndarray | None = None, *, tolerance: float = 1.05) -> float:
        """Re-assign points to ranks by cost (default: measured since the last rebalance).

        Nothing moves while the current assignment's imbalance (max/mean load) is within
        ``tolerance``. Call between load steps, after commit. Returns the predicted imbalance
        of the assignment in force afterwards. Collective.
        """
        if self.trials:
            raise RuntimeError("rebalance() needs committed states: call commit() or rollback() first")
        if costs is None:
            measured: dict[int, float] = {}
            for part in self.comm.allgather(self.costs):
                measured.update(part)
            costs = np.array([measured.get(g, 0.0) for g in range(len(self.home))])
        costs = np.asarray(costs, dtype=float)
        self.costs, self.moved = {}, 0
        current = np.bincount(self.worker, weights=costs, minlength=self.comm.size)
        if current.mean() == 0 or current.max() / current.mean() <= tolerance:
            return float(current.max() / current.mean()) if current.mean() > 0 else 1.0
        worker = assign_by_cost(costs, self.comm.size)
        outgoing = [[] for _ in range(self.comm.size)]
        for g in [g for g in self.states if worker[g] != self.comm.rank]:
            outgoing[worker[g]].append((g, self.states.pop(g), self.responses.pop(g, None)))
        for batch in self.comm.alltoall(outgoing):
            for g, state, response in batch:
                self.states[g] = state
                if response is not None:
                    self.responses[g] = response
        self.moved = int(np.count_nonzero(worker != self.worker))
        self.worker = worker
        loads = np.bincount(worker, weights=costs, minlength=self.comm.size)
        return float(loads.max() / loads.mean()) if loads.mean() > 0 else 1.0

    # ------------------------------------------------------------------ output

    def set_probes(self, points: list[int]) -> None:
        """Keep the RVE fields of these home points at every solve (collective)."""
        self.probes = {g for part in self.comm.allgather([self.offset + p for p in points]) for g in part}

    def probe_fields(self) -> dict[int, dict[str, np.ndarray]]:
        """Home point -> RVE fields of its last solve, for the probes (collective)."""
        outgoing = [[] for _ in range(self.comm.size)]
        for g in self.probes:
            if g in self.responses and self.responses[g].fields is not None:
                outgoing[self.home[g]].append((g, self.responses[g].fields))
        return {g - self.offset: f for batch in self.comm.alltoall(outgoing) for g, f in batch}

    def point_fields(self) -> dict[str, np.ndarray]:
        """As :meth:`fe2.rve.pool.RvePool.point_fields`, for the home points (collective)."""
        points = sorted(self.states)
        outputs = self.solver.point_outputs([self.states[g] for g in points],
                                            [self.responses.get(g) for g in points])
        outgoing = [[] for _ in range(self.comm.size)]
        for i, g in enumerate(points):
            outgoing[self.home[g]].append((g, {name: float(v[i]) for name, v in outputs.items()}))
        fields: dict[str, np.ndarray] = {}
        for batch in self.comm.alltoall(outgoing):
            for g, values in batch:
                for name, value in values.items():
                    fields.setdefault(name, np.zeros(self.num_points))[g - self.offset] = value
        names = sorted({name for part in self.comm.allgather(sorted(fields)) for name in part})
        return {name: fields.get(name, np.zeros(self.num_points)) for name in names}
