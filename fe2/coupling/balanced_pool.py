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

Groups of ranks (``ranks_per_rve`` k > 1, :mod:`fe2.rve.groups`): a worker is then a group of
k ranks that solves each of its points together, on an RVE mesh distributed over them. A
point's state is held in k parts, one per member (member j of every group holds the same
part of the mesh, so parts move member j to member j); strains go to every member, answers
come home from the group's first rank; costs and assignments are per group. With k = 1 a
group is one rank and everything reduces to the above.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from fe2.errors import InputError
from fe2.material_point import MaterialPointFailure
from fe2.rve.groups import RankGroups, split_ranks
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


@dataclass
class GroupState:
    """The committed state of a point solved by a group of k ranks: one part per member (each
    the :class:`PointState` of that member's part of the RVE mesh)."""

    parts: list[PointState]


class BalancedRvePool(SolverPointsBase):
    """The material-point contract for the home points of this rank, solved on any rank (or
    group of ranks).

    Args:
        solver: this rank's RVE solver (one RVE type and BC; with groups, on the group's
            distributed RVE).
        num_points: the number of home points of this rank.
        comm: the macro communicator (collective methods: evaluate, commit, rollback,
            rebalance, point_fields).
        equal_counts: start from an assignment with equal point counts per worker ("static"
            balancing); otherwise every point starts on its home rank's group.
        groups: the groups of ranks (default: one rank each).
    """

    def __init__(self, solver: MicroSolver, num_points: int, comm: MPI.Comm, *, equal_counts: bool = False,
                 groups: RankGroups | None = None):
        self.solver, self.comm = solver, comm
        self.groups = groups if groups is not None else split_ranks(comm, 1)
        self.num_points, self.n_comp = num_points, solver.n_comp
        counts = np.array(comm.allgather(num_points))
        self.offset = int(counts[: comm.rank].sum())
        self.home = np.repeat(np.arange(comm.size), counts)  # home rank of every global point
        self.worker = self.home // self.groups.size  # worker group of every global point
        initial = solver.initial_state()  # this member's part, with groups
        self.states: dict[int, PointState] = {
            int(g): initial for g in np.flatnonzero(self.worker == self.groups.index)
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

    def _to_workers(self, items) -> list[list]:
        """(g, ...) items -> outgoing lists: to every member of the worker group of g."""
        outgoing = [[] for _ in range(self.comm.size)]
        for item in items:
            for rank in self.groups.ranks_of(self.worker[item[0]]):
                outgoing[rank].append(item)
        return outgoing

    def evaluate(self, strains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        strains = np.asarray(strains, dtype=float).reshape(self.num_points, self.n_comp)
        size = self.comm.size
        outgoing = self._to_workers((self.offset + local, strain) for local, strain in enumerate(strains))
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
            if self.groups.leader:
                results[self.home[g]].append((g, response.stress, response.tangent))
        failure = None
        if result.failures:
            i = min(result.failures)
            failure = (points[i], str(result.failures[i]))
        failures = [f for f in self.comm.allgather(failure) if f is not None]
        if failures:  # every rank raises the same failure
            g, reason = min(failures)
            where = f"worker rank {self.worker[g]}" if self.groups.size == 1 else f"worker group {self.worker[g]}"
            raise MaterialPointFailure(g, f"({where}) {reason}")
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

    def committed_states(self) -> list[PointState | GroupState]:
        """The committed states of the home points, fetched from their workers (collective);
        with groups, a :class:`GroupState` of the members' parts."""
        k, member = self.groups.size, self.groups.member
        outgoing = [[] for _ in range(self.comm.size)]
        for g, state in self.states.items():
            outgoing[self.home[g]].append((g, member, state))
        parts: list = [[None] * k for _ in range(self.num_points)]
        for batch in self.comm.alltoall(outgoing):
            for g, j, state in batch:
                parts[g - self.offset][j] = state
        return [p[0] if k == 1 else GroupState(parts=p) for p in parts]

    def restore_states(self, states: list[PointState | GroupState]) -> None:
        """Give the home points these committed states; every point starts on its home rank's
        group (or, with ``equal_counts``, on the equal-count assignment). Collective.

        Raises:
            InputError: states saved with another number of ranks per RVE (on every rank).
        """
        if len(states) != self.num_points:
            raise ValueError(f"expected {self.num_points} states, got {len(states)}")
        k = self.groups.size
        parts_of = [s.parts if isinstance(s, GroupState) else [s] for s in states]
        if self.comm.allreduce(any(len(p) != k for p in parts_of), op=MPI.LOR):
            raise InputError(f"parallel.ranks_per_rve: the checkpoint holds RVE states of another number of ranks "
                             f"per RVE; restart with the value it was written with (now {k})")
        self.worker = self.home // k
        outgoing = [[] for _ in range(self.comm.size)]
        for i, parts in enumerate(parts_of):
            g = self.offset + i
            for j, rank in enumerate(self.groups.ranks_of(self.worker[g])):
                outgoing[rank].append((g, parts[j]))
        self.states = {g: state for batch in self.comm.alltoall(outgoing) for g, state in batch}
        self.trials.clear()
        self.responses.clear()
        self.costs = {}
        if self.equal_counts:
            self.rebalance(costs=np.ones(len(self.home)))

    # ------------------------------------------------------------------ balancing

    def work_per_rank(self) -> np.ndarray:
        """Seconds of RVE work of every rank since the last rebalance, (size,) (collective)."""
        return np.array(self.comm.allgather(sum(self.costs.values())))

    def _group_costs(self) -> dict[int, float]:
        """Measured seconds per point, as reported by the leaders of the worker groups."""
        measured: dict[int, float] = {}
        for part in self.comm.allgather(self.costs if self.groups.leader else {}):
            measured.update(part)
        return measured

    def rebalance(self, costs: np.ndarray | None = None, *, tolerance: float = 1.05) -> float:
        """Re-assign points to ranks by cost (default: measured since the last rebalance).

        Nothing moves while the current assignment's imbalance (max/mean load) is within
        ``tolerance``. Call between load steps, after commit. Returns the predicted imbalance
        of the assignment in force afterwards. Collective.
        """
        if self.trials:
            raise RuntimeError("rebalance() needs committed states: call commit() or rollback() first")
        if costs is None:
            measured = self._group_costs()
            costs = np.array([measured.get(g, 0.0) for g in range(len(self.home))])
        costs = np.asarray(costs, dtype=float)
        self.costs, self.moved = {}, 0
        count, k, mine = self.groups.count, self.groups.size, self.groups.index
        current = np.bincount(self.worker, weights=costs, minlength=count)
        if current.mean() == 0 or current.max() / current.mean() <= tolerance:
            return float(current.max() / current.mean()) if current.mean() > 0 else 1.0
        worker = assign_by_cost(costs, count)
        outgoing = [[] for _ in range(self.comm.size)]
        for g in [g for g in self.states if worker[g] != mine]:  # member j -> member j
            outgoing[worker[g] * k + self.groups.member].append((g, self.states.pop(g), self.responses.pop(g, None)))
        for batch in self.comm.alltoall(outgoing):
            for g, state, response in batch:
                self.states[g] = state
                if response is not None:
                    self.responses[g] = response
        self.moved = int(np.count_nonzero(worker != self.worker))
        self.worker = worker
        loads = np.bincount(worker, weights=costs, minlength=count)
        return float(loads.max() / loads.mean()) if loads.mean() > 0 else 1.0

    # ------------------------------------------------------------------ output

    def set_probes(self, points: list[int]) -> None:
        """Keep the RVE fields of these home points at every solve (collective).

        Raises:
            InputError: with groups of ranks (distributed RVEs have no field snapshots).
        """
        self.probes = {g for part in self.comm.allgather([self.offset + p for p in points]) for g in part}
        if self.probes and self.groups.size > 1:
            raise InputError("output.probes: RVE fields are not written for RVEs distributed over "
                             "several ranks (parallel.ranks_per_rve > 1)")

    def probe_fields(self) -> dict[int, dict[str, np.ndarray]]:
        """Home point -> RVE fields of its last solve, for the probes (collective)."""
        outgoing = [[] for _ in range(self.comm.size)]
        for g in self.probes:
            if g in self.responses and self.responses[g].fields is not None and self.groups.leader:
                outgoing[self.home[g]].append((g, self.responses[g].fields))
        return {g - self.offset: f for batch in self.comm.alltoall(outgoing) for g, f in batch}

    def point_fields(self) -> dict[str, np.ndarray]:
        """As :meth:`fe2.rve.pool.RvePool.point_fields`, for the home points (collective)."""
        points = sorted(self.states)
        outputs = self.solver.point_outputs([self.states[g] for g in points],
                                            [self.responses.get(g) for g in points])
        outgoing = [[] for _ in range(self.comm.size)]
        for i, g in enumerate(points if self.groups.leader else []):
            outgoing[self.home[g]].append((g, {name: float(v[i]) for name, v in outputs.items()}))
        fields: dict[str, np.ndarray] = {}
        for batch in self.comm.alltoall(outgoing):
            for g, values in batch:
                for name, value in values.items():
                    fields.setdefault(name, np.zeros(self.num_points))[g - self.offset] = value
        names = sorted({name for part in self.comm.allgather(sorted(fields)) for name in part})
        return {name: fields.get(name, np.zeros(self.num_points)) for name in names}
