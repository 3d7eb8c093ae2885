"""States of the points of a batch in the batched RVE solver (:mod:`fe2.rve.batched`).

Histories of P points are kept stacked, (P * npq, ...) per phase variable (as
:meth:`fe2.rve.model.RveModel.stack` builds them), or point-major, (P, npq, ...);
:class:`ActiveStates` are the evaluated states of the points still iterating,
:class:`FinalStates` the converged states filled in as points converge.
"""

from __future__ import annotations

import numpy as np

from fe2.rve.model import History, MicroUpdate, RveModel


def split_points(history: History, P: int) -> dict[int, dict[str, np.ndarray]]:
    """Stacked history (P * npq, ...) -> point-major views (P, npq, ...)."""
    return {t: {k: v.reshape(P, -1 if P else 0, *v.shape[1:]) for k, v in h.items()} for t, h in history.items()}


def take_points(history: dict, points) -> History:
    """Point-major history, points selected -> stacked (len * npq, ...) arrays."""
    return {t: {k: v[points].reshape(-1, *v.shape[2:]) for k, v in h.items()} for t, h in history.items()}


class ActiveStates:
    """Evaluated states of some points of a batch (indices ``points`` into the batch).

    The quadrature arrays of the evaluation are shared, not copied, when points are dropped:
    ``rows`` (None: all) are the rows of these points in them; the properties gather them."""

    def __init__(self, points, update: MicroUpdate, strain, R, adm, target, *, ok=None, rows=None):
        self.points, self.adm, self.target = points, adm, target
        self.ok = update.ok if ok is None else ok
        self._update, self._strain, self._R, self.rows = update, strain, R, rows

    def _gather(self, array: np.ndarray, index=None) -> np.ndarray:
        """Rows of a shared array: of all these points, or of those at ``index`` among them."""
        if self.rows is None:
            return array if index is None else array[index]
        return array[self.rows if index is None else self.rows[index]]

    @property
    def stress(self) -> np.ndarray:
        return self._gather(self._update.stress)

    @property
    def tangent(self) -> np.ndarray:
        return self._gather(self._update.tangent)

    @property
    def strain(self) -> np.ndarray:
        return self._gather(self._strain)

    def residuals(self, index=None) -> np.ndarray:
        """R (len, N) of these points (or of those at ``index`` among them)."""
        return self._gather(self._R, index)

    def tangent_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The shared tangent array and the rows of these points in it (no copy)."""
        tangent = self._update.tangent
        return tangent, np.arange(len(tangent)) if self.rows is None else self.rows

    @property
    def history(self) -> History:
        """The trial history of these points, stacked."""
        history = self._update.history
        if self.rows is None:
            return history
        return {t: {k: v[self.rows].reshape(-1, *v.shape[2:]) for k, v in h.items()}
                for t, h in split_points(history, len(self._update.ok)).items()}

    def where(self, mask: np.ndarray) -> ActiveStates:
        """The states of the points selected by a boolean mask (sharing the arrays)."""
        if mask.all():
            return self
        rows = (np.arange(len(self._update.ok)) if self.rows is None else self.rows)[mask]
        return ActiveStates(self.points[mask], self._update, self._strain, self._R, self.adm[mask], self.target[mask],
                       ok=self.ok[mask], rows=rows)

    @staticmethod
    def concatenate(parts: list[ActiveStates]) -> ActiveStates:
        if len(parts) == 1:
            return parts[0]
        histories = [p.history for p in parts]
        update = MicroUpdate(
            stress=np.concatenate([p.stress for p in parts]),
            tangent=np.concatenate([p.tangent for p in parts]),
            history={t: {k: np.concatenate([h[t][k] for h in histories]) for k in v}
                     for t, v in histories[0].items()},
            ok=np.concatenate([p.ok for p in parts]),
        )

        def join(name):
            return np.concatenate([getattr(p, name) for p in parts])

        return ActiveStates(join("points"), update, join("strain"), np.concatenate([p.residuals() for p in parts]),
                       join("adm"), join("target"))

    def unchanged(self, tangent: np.ndarray, committed: dict) -> np.ndarray:
        """(count,) True where the tangent equals ``tangent`` and the history the committed one."""
        count = len(self.points)
        same = (self.tangent == tangent).reshape(count, -1).all(axis=1)
        for t, h in split_points(self.history, count).items():
            for k, v in h.items():
                same &= (v == committed[t][k][self.points]).reshape(count, -1).all(axis=1)
        return same


class FinalStates:
    """The converged states of a batch's points, filled as points converge."""

    def __init__(self, P: int, model: RveModel, n: int, committed: dict):
        self.stress = np.zeros((P, model.num_cells, model.num_qp, n))
        self.strain = np.zeros_like(self.stress)
        self.tangent = np.zeros((*self.stress.shape, n))
        self.history = {t: {k: np.empty_like(v) for k, v in h.items()} for t, h in committed.items()}

    def keep(self, state: ActiveStates) -> None:
        points = state.points
        if not len(points):
            return
        self.stress[points], self.strain[points], self.tangent[points] = state.stress, state.strain, state.tangent
        for t, h in split_points(state.history, len(points)).items():
            for k, v in h.items():
                self.history[t][k][points] = v

    def history_of(self, i: int) -> History:
        return {t: {k: v[i].copy() for k, v in h.items()} for t, h in self.history.items()}
