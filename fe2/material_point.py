"""The contract between the macro solver and any constitutive source ("material points").

    evaluate(strains (m, n)) -> (stresses (m, n), tangents (m, n, n))
                 small strain: Mandel vectors (e11, e22, sqrt2 e12) / 6 in 3D
                 (fe2.tensors.to_mandel converts tensors); finite strain: F -> P
                 row-major; conduction: gradient -> flux
    commit()     accept the trial states of the last evaluate (converged load step)
    rollback()   discard them (cut-back); the committed states stay bit for bit
    committed_states() / restore_states(states)   one picklable state per point (checkpoints)

Every evaluate starts from the committed state of each point; a second evaluate replaces the
trial states of the first. Implementations: closed-form laws (:mod:`fe2.materials.points`),
the RVE pool (:class:`fe2.rve.pool.RvePool`) and the MPI-balanced RVE pool
(:class:`fe2.coupling.balanced_pool.BalancedRvePool`); :class:`MaterialPointsBase` gives the
defaults of the optional parts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np

from fe2.errors import ComputationError


class MaterialPointFailure(ComputationError):
    """A point has no answer for its strain (RVE not converged, det F <= 0, ...).

    Attributes:
        point: index of the first failed point in the evaluated batch.
        reason: what went wrong.
    """

    def __init__(self, point: int, reason: str):
        super().__init__(f"material point {point}: {reason}")
        self.point, self.reason = point, reason


class ProbesUnsupported(Exception):
    """These material points have no RVE fields to probe (closed-form laws)."""


def failure_of(failures: Mapping[int, Exception]) -> MaterialPointFailure:
    """The failure to raise for a batch: the lowest failed point, with its reason."""
    point = min(failures)
    return MaterialPointFailure(point, str(failures[point]))


class MaterialPoints(Protocol):
    """A batch of m material points with n strain components."""

    num_points: int
    n_comp: int

    def evaluate(self, strains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stresses (m, n) and consistent tangents (m, n, n) for strains (m, n), Mandel
        vectors for small strain (F and P row-major at finite strain; module docstring).

        Raises:
            MaterialPointFailure: a point has no admissible answer.
        """
        ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    @property
    def statistics(self) -> dict:
        """Solver totals of RVE points (``solves``, ``failures``, ``seconds``, ...); {} if none."""
        ...

    @property
    def timings(self) -> dict[str, float]:
        """Seconds of this rank's RVE work per part of the solve (a profile); {} if none."""
        ...

    def point_fields(self) -> dict[str, np.ndarray]:
        """Scalar output per point of the committed state (e.g. equivalent plastic strain;
        ``stress_33``: the out-of-plane stress of plane strain, sigma33 or P33, where known --
        the outputs then write the full stress, von Mises and principal stresses)."""
        ...

    def committed_states(self) -> list:
        """The committed state of every point, (m,) picklable objects (for checkpoints)."""
        ...

    def restore_states(self, states: list) -> None:
        """Make ``states`` (as returned by :meth:`committed_states`) the committed states."""
        ...

    def rebalance(self) -> None:
        """Re-assign work over ranks between load steps, where that applies (collective)."""
        ...

    def set_probes(self, points: list[int]) -> None:
        """Keep the RVE fields of these points (raises :class:`ProbesUnsupported` if none)."""
        ...

    def probe_fields(self) -> dict[int, dict[str, np.ndarray]]:
        """Point -> RVE fields of its last solve, for the probes."""
        ...


class MaterialPointsBase:
    """Defaults of the optional parts of :class:`MaterialPoints` (closed-form sources)."""

    #: Points moved to another rank by the last :meth:`rebalance`.
    moved = 0

    @property
    def statistics(self) -> dict:
        return {}

    @property
    def timings(self) -> dict[str, float]:
        return {}

    def point_fields(self) -> dict[str, np.ndarray]:
        return {}

    def rebalance(self) -> None:
        return None

    def set_probes(self, points: list[int]) -> None:
        raise ProbesUnsupported("no RVE fields: the material points are closed-form laws")

    def probe_fields(self) -> dict[int, dict[str, np.ndarray]]:
        return {}
