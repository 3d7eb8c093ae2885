"""The contract between the macro solver and any constitutive source ("material points").

    evaluate(strains (m, n)) -> (stresses (m, n), tangents (m, n, n))
    commit()     accept the trial states of the last evaluate (converged load step)
    rollback()   discard them (cut-back); the committed states stay bit for bit
    committed_states() / restore_states(states)   one picklable state per point (checkpoints)

Every evaluate starts from the committed state of each point. Implementations: closed-form
laws and the RVE pool (:class:`fe2.rve.pool.RvePool`).
"""

from __future__ import annotations

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


class MaterialPoints(Protocol):
    """A batch of m material points with n strain components."""

    num_points: int
    n_comp: int
    #: "rve" if every evaluation of a point solves an RVE, else the kind of closed-form source.
    kind: str

    def evaluate(self, strains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stresses (m, n) and consistent tangents (m, n, n) for strains (m, n).

        Raises:
            MaterialPointFailure: a point has no admissible answer.
        """
        ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def point_fields(self) -> dict[str, np.ndarray]:
        """Scalar output per point of the committed state (e.g. equivalent plastic strain)."""
        ...

    def committed_states(self) -> list:
        """The committed state of every point, (m,) picklable objects (for checkpoints)."""
        ...

    def restore_states(self, states: list) -> None:
        """Make ``states`` (as returned by :meth:`committed_states`) the committed states."""
        ...
