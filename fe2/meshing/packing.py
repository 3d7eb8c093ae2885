r"""Random sequential addition (RSA) of equal, non-overlapping periodic balls.

Centres :math:`c_i \in [0, L)^d`; the periodic (minimum image) distance is
:math:`|c_i - c_j - L\,\mathrm{round}((c_i - c_j)/L)|`.  A candidate is accepted when

* its distance to every placed centre is :math:`\ge 2r + g` (``min_gap`` :math:`g`
  between the ball surfaces, periodically), and
* it is well separated from the cell boundary: with :math:`\delta = g/2` and
  :math:`d_k = \min(c_k, L - c_k)` the distance to the nearest plane of axis *k*,
  :math:`d_k \ge \delta` (no vertex/seam of the OCC circle/sphere grazing a face) and
  for every non-empty set of axes :math:`S`,
  :math:`\bigl|\sqrt{\sum_{k\in S} d_k^2} - r\bigr| \ge \delta`
  (the ball is not within :math:`\delta` of being tangent to a face, an edge or a corner).
"""

from __future__ import annotations

import itertools
import logging
from functools import lru_cache

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

_BATCH = 1024


class PackingError(ValueError):
    """The requested inclusions could not be placed."""


def periodic_distance(a: npt.ArrayLike, b: npt.ArrayLike, *, size: float) -> np.ndarray:
    """Minimum-image distance between points ``a`` (..., d) and ``b`` (..., d) [length]."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    diff -= size * np.round(diff / size)
    return np.linalg.norm(diff, axis=-1)


def boundary_clearance_ok(
    centres: npt.ArrayLike, *, radius: float, size: float, clearance: float
) -> np.ndarray:
    """Mask of centres (m, d) whose ball is at least ``clearance`` from tangency to the box."""
    c = np.atleast_2d(np.asarray(centres, dtype=float))
    dist = np.minimum(c, size - c)
    ok = np.all(dist >= clearance, axis=1)
    dim = c.shape[1]
    for k in range(1, dim + 1):
        for axes in itertools.combinations(range(dim), k):
            d_s = np.sqrt(np.sum(dist[:, list(axes)] ** 2, axis=1))
            ok &= np.abs(d_s - radius) >= clearance
    return ok


def periodic_images(centre: npt.ArrayLike, *, radius: float, size: float) -> np.ndarray:
    """The ball and its translates ``centre + L*s`` (s in {-1,0,1}^d) that may meet the box.

    The original comes first. A ball crossing the faces of k axes has :math:`2^k` copies
    (a corner copy may miss the box; it is then discarded after the OCC fragment).
    """
    c = np.asarray(centre, dtype=float)
    shifts_per_axis = []
    for x in c:
        s = [0.0]
        if x < radius:
            s.append(size)
        elif x > size - radius:
            s.append(-size)
        shifts_per_axis.append(s)
    return np.array([c + np.array(s) for s in itertools.product(*shifts_per_axis)])


def random_sequential_addition(
    *,
    n: int,
    radius: float,
    dim: int,
    size: float,
    min_gap: float,
    seed: int,
    max_attempts: int,
) -> np.ndarray:
    """Place ``n`` balls of radius ``radius`` in the periodic box [0, size)^dim.

    Candidates are drawn uniformly with ``numpy.random.default_rng(seed)`` in blocks;
    the result is a deterministic function of the arguments.

    Returns
    -------
    numpy.ndarray
        Centres, shape (n, dim), read-only.

    Raises
    ------
    PackingError
        After ``max_attempts`` candidates without placing all balls.
    """
    return _rsa(n, float(radius), dim, float(size), float(min_gap), int(seed), int(max_attempts))


@lru_cache(maxsize=64)
def _rsa(
    n: int, radius: float, dim: int, size: float, min_gap: float, seed: int, max_attempts: int
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    placed = np.empty((n, dim))
    count = 0
    attempts = 0
    min_dist = 2.0 * radius + min_gap
    while count < n and attempts < max_attempts:
        batch = min(_BATCH, max_attempts - attempts)
        candidates = rng.uniform(0.0, size, size=(batch, dim))
        ok = boundary_clearance_ok(candidates, radius=radius, size=size, clearance=0.5 * min_gap)
        for i in range(batch):
            attempts += 1
            if not ok[i]:
                continue
            if count:
                gaps = periodic_distance(placed[:count], candidates[i], size=size)
                if np.min(gaps) < min_dist:
                    continue
            placed[count] = candidates[i]
            count += 1
            if count == n:
                break
    if count < n:
        raise PackingError(
            f"could not place {n} inclusions with volume fraction "
            f"{_volume_fraction(n, radius, dim, size):.6g} and min_gap {min_gap:g} "
            f"after {attempts} attempts (placed {count})"
        )
    log.debug("placed %d inclusions (r=%g) after %d attempts", n, radius, attempts)
    placed.setflags(write=False)
    return placed


def _volume_fraction(n: int, radius: float, dim: int, size: float) -> float:
    ball = np.pi * radius**2 if dim == 2 else 4.0 / 3.0 * np.pi * radius**3
    return n * ball / size**dim
