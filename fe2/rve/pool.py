"""Many material points of one RVE type: the FE² side of the material-point contract.

All points share one :class:`~fe2.rve.newton.RveSolver` (mesh, forms, matrices, sparsity,
symbolic factorisation); a point owns only its :class:`~fe2.rve.newton.PointState`. States are
never modified in place: a solve returns a new trial state, ``commit`` adopts the trial
states and ``rollback`` drops them, so committed arrays stay bit for bit.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from fe2.material_point import MaterialPointFailure
from fe2.rve.newton import PointState, RveFailure, RveResponse, RveSolver
from fe2.rve.solver import SolveError

log = logging.getLogger(__name__)


class RvePool:
    """m material points, each an RVE with its own state.

    Args:
        solver: the shared RVE solver (one RVE type and boundary condition).
        num_points: number of points m.
        tangent: 'consistent' (dSigma/dE from the sensitivity solve) or 'averaged' (the volume
            average of the micro tangents: not consistent on a heterogeneous RVE; for studies of
            the macro convergence only).

    Attributes:
        responses: the :class:`RveResponse` of each point from the last evaluate.
        seconds: wall time of each point's last solve, (m,).
        statistics: totals since creation: ``solves``, ``newton_iterations``,
            ``elastic_shortcuts`` (solves answered without Newton), ``seconds``.
    """

    kind = "rve"

    def __init__(self, solver: RveSolver, num_points: int, *, tangent: str = "consistent"):
        if tangent not in ("consistent", "averaged"):
            raise ValueError(f"tangent must be 'consistent' or 'averaged', got {tangent!r}")
        self.tangent = tangent
        self.solver = solver
        self.num_points = num_points
        self.n_comp = solver.model.physics.n_comp
        initial = solver.initial_state()  # shared until a point commits its own
        self._committed: list[PointState] = [initial] * num_points
        self._trial: list[PointState | None] = [None] * num_points
        self.responses: list[RveResponse | None] = [None] * num_points
        self.seconds = np.zeros(num_points)
        self.statistics = {"solves": 0, "newton_iterations": 0, "elastic_shortcuts": 0, "seconds": 0.0}
        self.probes: set[int] = set()  # points whose RVE fields every solve keeps

    def state(self, point: int, *, trial: bool = False) -> PointState:
        """The committed (or, if any, the trial) state of a point; do not modify it."""
        if trial and self._trial[point] is not None:
            return self._trial[point]
        return self._committed[point]

    def evaluate(self, strains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Homogenised stresses (m, n) and consistent tangents (m, n, n) for strains (m, n).

        Each point starts from its committed history and is warm-started from its last
        fluctuation (trial if any, else committed).

        Raises:
            MaterialPointFailure: at the first point whose RVE has no answer.
        """
        strains = np.asarray(strains, dtype=float)
        if strains.shape != (self.num_points, self.n_comp):
            raise ValueError(f"strains must have shape {(self.num_points, self.n_comp)}, got {strains.shape}")
        stresses = np.empty((self.num_points, self.n_comp))
        tangents = np.empty((self.num_points, self.n_comp, self.n_comp))
        for point in range(self.num_points):
            t0 = time.perf_counter()
            warm = self.state(point, trial=True).w
            try:
                response, trial = self.solver.solve(
                    strains[point], self._committed[point], warm_start=warm, fields=point in self.probes
                )
            except (RveFailure, SolveError) as exc:
                raise MaterialPointFailure(point, str(exc)) from None
            self._trial[point] = trial
            self.responses[point] = response
            stresses[point], tangents[point] = response.stress, response.tangent
            self.statistics["solves"] += 1
            self.statistics["newton_iterations"] += response.iterations
            self.statistics["elastic_shortcuts"] += int(response.elastic_shortcut)
            if self.tangent == "averaged":  # the model holds this point's converged state
                model = self.solver.model
                tangents[point] = model.average(model.tangent_qp)
            self.seconds[point] = time.perf_counter() - t0
            self.statistics["seconds"] += self.seconds[point]
        return stresses, tangents

    def point_fields(self) -> dict[str, np.ndarray]:
        """Scalar output per point, name -> (m,): the RVE average of the committed equivalent
        plastic strain (if any phase has one) and the Newton iterations of the last solve."""
        model = self.solver.model
        fields = {
            "rve_newton_iterations": np.array(
                [r.iterations if r is not None else 0 for r in self.responses], dtype=float
            )
        }
        plastic = [t for t, h in model.initial_history().items() if "equivalent_plastic_strain" in h]
        if plastic:
            values = np.zeros(self.num_points)
            for point, state in enumerate(self._committed):
                total = 0.0
                for tag in plastic:
                    dV = model.dV[model.phase_cells[tag]].ravel()
                    total += dV @ state.history[tag]["equivalent_plastic_strain"]
                values[point] = total / model.volume
            fields["equivalent_plastic_strain"] = values
        return fields

    def set_probes(self, points: list[int]) -> None:
        """Keep the RVE fields of these points at every solve (see :meth:`probe_fields`)."""
        self.probes = set(points)

    def probe_fields(self) -> dict[int, dict[str, np.ndarray]]:
        """Point -> RVE fields (an RveFields snapshot) of its last solve, for the probes."""
        return {p: self.responses[p].fields for p in self.probes if self.responses[p] is not None}

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
