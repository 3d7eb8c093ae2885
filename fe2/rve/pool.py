"""Many material points of one RVE type: the FE² side of the material-point contract.

The pool only keeps states: every evaluate is one :meth:`MicroSolver.solve_batch` over all
its points. States are never modified in place: a solve returns new trial states, ``commit``
adopts them and ``rollback`` drops them, so committed arrays stay bit for bit.
"""

from __future__ import annotations

import numpy as np

from fe2.material_point import MaterialPointsBase, failure_of
from fe2.rve.micro_solver import MicroSolver, PointState, RveResponse


class SolverPointsBase(MaterialPointsBase):
    """Material points whose RVE work one :class:`MicroSolver` (``self.solver``) does."""

    solver: MicroSolver

    @property
    def statistics(self) -> dict:
        """The solver's totals on this rank (solves, Newton iterations, shortcuts, failures,
        seconds), for whichever points it solved."""
        return self.solver.statistics

    @property
    def timings(self) -> dict[str, float]:
        """The solver's seconds per part of the solve on this rank."""
        return self.solver.timings


class RvePool(SolverPointsBase):
    """m material points, each an RVE with its own state.

    Args:
        solver: the RVE solver of the points (one RVE type and boundary condition).
        num_points: number of points m.
        tangent: 'consistent' (dSigma/dE from the sensitivity solve) or 'averaged' (the volume
            average of the micro tangents: not consistent on a heterogeneous RVE; for studies of
            the macro convergence only).

    Attributes:
        responses: the :class:`RveResponse` of each point from the last evaluate.
        seconds: solver seconds attributed to each point's last solve, (m,).
    """

    def __init__(self, solver: MicroSolver, num_points: int, *, tangent: str = "consistent"):
        if tangent not in ("consistent", "averaged"):
            raise ValueError(f"tangent must be 'consistent' or 'averaged', got {tangent!r}")
        self.tangent = tangent
        self.solver = solver
        self.num_points = num_points
        self.n_comp = solver.n_comp
        initial = solver.initial_state()  # shared until a point commits its own
        self._committed: list[PointState] = [initial] * num_points
        self._trial: list[PointState | None] = [None] * num_points
        self.responses: list[RveResponse | None] = [None] * num_points
        self.seconds = np.zeros(num_points)
        self.probes: set[int] = set()  # points whose RVE fields every solve keeps

    def state(self, point: int, *, trial: bool = False) -> PointState:
        """The committed (or, if any, the trial) state of a point; do not modify it."""
        if trial and self._trial[point] is not None:
            return self._trial[point]
        return self._committed[point]

    def evaluate(self, strains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Homogenised stresses (m, n) and consistent tangents (m, n, n) for strains (m, n).

        Vectors in the notation of the physics: Mandel (e11, e22, sqrt2 e12) for small strain
        (``fe2.tensors.to_mandel`` / ``from_mandel`` convert tensors), F and P row-major at
        finite strain, the temperature gradient for conduction.

        Each point starts from its committed history and is warm-started from its last
        fluctuation (trial if any, else committed).

        Raises:
            MaterialPointFailure: naming the first point whose RVE has no answer.
        """
        strains = np.asarray(strains, dtype=float)
        if strains.shape != (self.num_points, self.n_comp):
            raise ValueError(f"strains must have shape {(self.num_points, self.n_comp)}, got {strains.shape}")
        warm = [self.state(p, trial=True).w for p in range(self.num_points)]
        fields = [p in self.probes for p in range(self.num_points)]
        result = self.solver.solve_batch(strains, self._committed, warm=warm, fields=fields)
        self.seconds = result.costs
        if result.failures:
            raise failure_of(result.failures)
        self._trial = result.trials
        self.responses = result.responses
        stresses = np.array([r.stress for r in result.responses]).reshape(-1, self.n_comp)
        attribute = "averaged_tangent" if self.tangent == "averaged" else "tangent"
        tangents = np.array([getattr(r, attribute) for r in result.responses])
        return stresses, tangents.reshape(-1, self.n_comp, self.n_comp)

    def point_fields(self) -> dict[str, np.ndarray]:
        """Scalar output per point, name -> (m,) (see :meth:`MicroSolver.point_outputs`)."""
        return self.solver.point_outputs(self._committed, self.responses)

    def set_probes(self, points: list[int]) -> None:
        """Keep the RVE fields of these points at every solve (see :meth:`probe_fields`)."""
        self.probes = set(points)

    def probe_fields(self) -> dict[int, dict[str, np.ndarray]]:
        """Point -> RVE fields (an RveFields snapshot) of its last solve, for the probes."""
        return {p: self.responses[p].fields for p in self.probes if self.responses[p] is not None}

    def rebalance(self) -> None:
        """Nothing to balance: every point is solved on this rank."""

    def commit(self) -> None:
        """Adopt the trial states of the last evaluate."""
        self._committed = [t if t is not None else c for t, c in zip(self._trial, self._committed)]
        self._trial = [None] * self.num_points

    def rollback(self) -> None:
        """Discard the trial states."""
        self._trial = [None] * self.num_points

    def committed_states(self) -> list[PointState]:
        return list(self._committed)

    def restore_states(self, states: list[PointState]) -> None:
        if len(states) != self.num_points:
            raise ValueError(f"expected {self.num_points} states, got {len(states)}")
        self._committed = list(states)
        self._trial = [None] * self.num_points
        self.responses = [None] * self.num_points
