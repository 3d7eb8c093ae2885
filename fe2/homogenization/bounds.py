"""Elementary bounds and checks on apparent tensors."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def voigt_bound(fractions: Sequence[float], tangents: Sequence[np.ndarray]) -> np.ndarray:
    """Arithmetic mean sum_i f_i C_i (upper bound), shape (n, n)."""
    return sum(f * np.asarray(C) for f, C in zip(fractions, tangents, strict=True))


def reuss_bound(fractions: Sequence[float], tangents: Sequence[np.ndarray]) -> np.ndarray:
    """Harmonic mean (sum_i f_i C_i^-1)^-1 (lower bound), shape (n, n)."""
    compliance = sum(f * np.linalg.inv(C) for f, C in zip(fractions, tangents, strict=True))
    return np.linalg.inv(compliance)


def loewner_gaps(ordered: Iterable[np.ndarray]) -> list[float]:
    """Smallest eigenvalue of C_i - C_{i+1} (symmetric part) for consecutive tensors.

    All >= 0 (to round-off) means C_0 >= C_1 >= ... in the Loewner order.
    """
    tensors = list(ordered)
    return [
        float(np.linalg.eigvalsh(0.5 * ((a - b) + (a - b).T)).min())
        for a, b in zip(tensors[:-1], tensors[1:])
    ]
