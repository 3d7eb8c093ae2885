r"""Periodic packings of equal, non-overlapping balls: random sequential addition (RSA) and
a dense packing by collective rearrangement (FIRE energy minimisation).

Centres :math:`c_i \in [0, L)^d`; the periodic (minimum image) distance is
:math:`|c_i - c_j - L\,\mathrm{round}((c_i - c_j)/L)|`.  A packing is admissible when

* the distance between any two centres is :math:`\ge 2r + g` (``min_gap`` :math:`g`
  between the ball surfaces, periodically), and
* every ball is well separated from the cell boundary: with :math:`\delta = g/2` and
  :math:`d_k = \min(c_k, L - c_k)` the distance to the nearest plane of axis *k*,
  :math:`d_k \ge \delta` (no vertex/seam of the OCC circle/sphere grazing a face) and
  for every non-empty set of axes :math:`S`,
  :math:`\bigl|\sqrt{\sum_{k\in S} d_k^2} - r\bigr| \ge \delta`
  (the ball is not within :math:`\delta` of being tangent to a face, an edge or a corner).

**RSA** draws candidates uniformly and keeps those that fit: simple, but it jams at a packed
fraction (of the balls grown by g/2) of about 0.547 for discs and 0.38 for spheres.

**Dense packing** (:func:`dense_packing`): all centres start at random and the overlaps are
removed together by minimising the harmonic energy

.. math:: W = \tfrac12 \sum_{i<j} \max(0, \sigma - |c_i - c_j|)^2
          + \tfrac12 \sum_i \sum_{\text{bands}} \max(0, w - \mathrm{dist}(c_i, \text{band}))^2

with :math:`\sigma` slightly above :math:`2r + g` and the boundary bands above as walls of
half-width :math:`w` slightly above :math:`\delta`, by FIRE (fast inertial relaxation,
Bitzek et al. 2006). Below the jamming density of the grown balls (about 0.8 for discs, 0.6
for spheres) the minimum is W = 0: an admissible packing. A start that ends in a jammed
local minimum is replaced by a new random start (up to ``DENSE_STARTS``). Deterministic
from the seed.
"""

from __future__ import annotations

import itertools
import logging
from functools import lru_cache

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

_BATCH = 1024

#: Packed fraction of the grown balls (radius r + g/2) at which RSA jams (discs, spheres).
RSA_JAMMING = {2: 0.547, 3: 0.384}
#: Packed fraction of the grown balls near which random dense packings jam (discs, spheres).
DENSE_JAMMING = {2: 0.82, 3: 0.62}
#: Densest packings of equal discs (hexagonal) and spheres (fcc): nothing fits beyond.
DENSEST = {2: np.pi / np.sqrt(12.0), 3: np.pi / np.sqrt(18.0)}
#: Random starts of the dense packing, and FIRE steps per start.
DENSE_STARTS = 8
DENSE_STEPS = 4000


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
            f"after {attempts} attempts (placed {count}): random sequential addition jams near "
            f"{RSA_JAMMING[dim]:g} of the cell filled by the inclusions grown by min_gap/2 (here "
            f"{_volume_fraction(n, radius + 0.5 * min_gap, dim, size):.3g}); use packing: dense "
            "(or auto), a larger max_attempts, or lower volume_fraction, min_gap or n"
        )
    log.debug("placed %d inclusions (r=%g) after %d attempts", n, radius, attempts)
    placed.setflags(write=False)
    return placed


def _volume_fraction(n: int, radius: float, dim: int, size: float) -> float:
    ball = np.pi * radius**2 if dim == 2 else 4.0 / 3.0 * np.pi * radius**3
    return n * ball / size**dim


def grown_fraction(*, n: int, radius: float, dim: int, size: float, min_gap: float) -> float:
    """Fraction of the cell filled by the balls grown by min_gap/2 (what a packing must fit)."""
    return _volume_fraction(n, radius + 0.5 * min_gap, dim, size)


def close_pairs(
    centres: np.ndarray, *, cutoff: float, size: float
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs i < j of centres (m, d) closer than ``cutoff`` (periodically), (k,) each.

    All pairs for small m; a cell grid of edge >= cutoff otherwise (each pair is found from
    the 3^d cells around a centre).
    """
    m, dim = centres.shape
    cells = int(size // cutoff)
    if m <= 400 or cells < 3:
        i, j = np.triu_indices(m, 1)
    else:
        index = np.minimum((centres / size * cells).astype(int), cells - 1)
        flat = np.ravel_multi_index(index.T, (cells,) * dim)
        order = np.argsort(flat, kind="stable")
        counts = np.bincount(flat, minlength=cells**dim)
        members = np.full((cells**dim, counts.max()), -1)
        slot = np.arange(m) - np.repeat(np.cumsum(counts) - counts, counts)
        members[flat[order], slot] = order
        firsts, seconds = [], []
        for offset in itertools.product((-1, 0, 1), repeat=dim):
            other = np.ravel_multi_index(((index + offset) % cells).T, (cells,) * dim)
            candidates = members[other]  # (m, k)
            rows = np.repeat(np.arange(m), candidates.shape[1])
            cols = candidates.ravel()
            keep = cols > rows
            firsts.append(rows[keep])
            seconds.append(cols[keep])
        i, j = np.concatenate(firsts), np.concatenate(seconds)
    diff = centres[j] - centres[i]
    diff -= size * np.round(diff / size)
    close = np.einsum("kd,kd->k", diff, diff) < cutoff**2
    return i[close], j[close]


def _wall_forces(c: np.ndarray, *, radius: float, size: float, width: float) -> np.ndarray:
    """Forces (m, d) pushing centres out of the boundary bands (harmonic walls, half-width
    ``width``): the face planes, the planes at distance r from them and, for every set of
    axes, the spheres of radius r about the edges/corners."""
    low = c < 0.5 * size
    d = np.where(low, c, size - c)  # distance to the nearest plane of each axis
    away = np.where(low, 1.0, -1.0)  # direction of increasing d
    force = np.where(d < width, width - d, 0.0) * away
    gap = d - radius
    side = np.where(gap >= 0, 1.0, -1.0)
    force += np.where(np.abs(gap) < width, (width - np.abs(gap)) * side, 0.0) * away
    dim = c.shape[1]
    for k in range(2, dim + 1):
        for axes in itertools.combinations(range(dim), k):
            axes = list(axes)
            rho = np.linalg.norm(d[:, axes], axis=1)
            gap = rho - radius
            hit = np.abs(gap) < width
            if hit.any():
                push = (width - np.abs(gap[hit])) * np.where(gap[hit] >= 0, 1.0, -1.0)
                push /= np.maximum(rho[hit], 1e-300)
                block = np.ix_(hit, axes)
                force[block] += push[:, None] * d[block] * away[block]
    return force


def admissible(centres: np.ndarray, *, radius: float, size: float, min_gap: float) -> bool:
    """Every pair at least 2r + g apart and every ball clear of the boundary (module doc)."""
    i, j = close_pairs(centres, cutoff=2.0 * radius + min_gap, size=size)
    return len(i) == 0 and bool(
        boundary_clearance_ok(centres, radius=radius, size=size, clearance=0.5 * min_gap).all()
    )


def _fire(
    c: np.ndarray, *, radius: float, size: float, min_gap: float, steps: int
) -> np.ndarray | None:
    """FIRE minimisation of the overlap energy from centres c (m, d); None if not admissible
    within ``steps``."""
    sigma = (2.0 * radius + min_gap) * (1.0 + 1e-3)
    width = 0.5 * min_gap * 1.05
    skin = 0.25 * sigma
    velocity = np.zeros_like(c)
    dt, alpha, positive = 0.05, 0.1, 0
    listed, since = None, np.inf
    for _ in range(steps):
        if since > 0.5 * skin:  # Verlet list of the pairs that may overlap
            listed, anchor = close_pairs(c, cutoff=sigma + skin, size=size), c.copy()
        i, j = listed
        diff = c[j] - c[i]
        diff -= size * np.round(diff / size)
        dist = np.linalg.norm(diff, axis=1)
        overlapping = dist < sigma
        if not (dist < 2.0 * radius + min_gap).any():
            if admissible(c, radius=radius, size=size, min_gap=min_gap):
                return c
        push = ((sigma - dist) * overlapping / np.maximum(dist, 1e-300))[:, None] * diff
        force = _wall_forces(c, radius=radius, size=size, width=width)
        np.add.at(force, i, -push)
        np.add.at(force, j, push)
        if np.abs(force).max() < 1e-9 * sigma:  # a jammed local minimum: start again
            return None
        if np.sum(force * velocity) > 0:
            steer = np.linalg.norm(velocity) / np.linalg.norm(force)
            velocity = (1 - alpha) * velocity + alpha * steer * force
            positive += 1
            if positive > 5:
                dt, alpha = min(1.1 * dt, 0.5), 0.99 * alpha
        else:
            velocity[:] = 0.0
            dt, alpha, positive = 0.5 * dt, 0.1, 0
        velocity += dt * force
        c = (c + dt * velocity) % size
        shift = c - anchor
        shift -= size * np.round(shift / size)
        since = np.abs(shift).max()
    return None


def dense_packing(
    *, n: int, radius: float, dim: int, size: float, min_gap: float, seed: int
) -> np.ndarray:
    """Admissible centres (n, dim) of ``n`` balls, by collective rearrangement (module doc).

    Deterministic from the arguments; reaches packed fractions of the grown balls up to
    about 0.8 (discs) and 0.6 (spheres).

    Raises:
        PackingError: no admissible packing after ``DENSE_STARTS`` random starts.
    """
    return _dense(n, float(radius), dim, float(size), float(min_gap), int(seed))


@lru_cache(maxsize=64)
def _dense(n: int, radius: float, dim: int, size: float, min_gap: float, seed: int) -> np.ndarray:
    grown = grown_fraction(n=n, radius=radius, dim=dim, size=size, min_gap=min_gap)
    if grown > DENSEST[dim]:
        raise PackingError(
            f"could not pack {n} inclusions with volume fraction {_volume_fraction(n, radius, dim, size):.6g} "
            f"and min_gap {min_gap:g}: with the gaps they would fill {grown:.3g} of the cell, more "
            f"than the densest packing of equal {'discs' if dim == 2 else 'spheres'} ({DENSEST[dim]:.4g}); "
            "lower volume_fraction or min_gap, or use fewer, larger inclusions (smaller n)"
        )
    rng = np.random.default_rng(seed)
    for start in range(DENSE_STARTS):
        start_centres = rng.uniform(0.0, size, size=(n, dim))
        c = _fire(start_centres, radius=radius, size=size, min_gap=min_gap, steps=DENSE_STEPS)
        if c is not None:
            log.debug("dense packing of %d inclusions: start %d", n, start + 1)
            c.setflags(write=False)
            return c
    raise PackingError(
        f"could not pack {n} inclusions with volume fraction {_volume_fraction(n, radius, dim, size):.6g} "
        f"and min_gap {min_gap:g} ({DENSE_STARTS} random starts): with the gaps they fill "
        f"{grown:.3g} of the cell, and random packings of equal {'discs' if dim == 2 else 'spheres'} "
        f"jam near {DENSE_JAMMING[dim]:g}; lower volume_fraction or min_gap, or use fewer, larger "
        "inclusions (smaller n)"
    )


PACKINGS = ("auto", "rsa", "dense")


def pack_balls(
    *, n: int, radius: float, dim: int, size: float, min_gap: float, seed: int,
    max_attempts: int, packing: str = "auto",
) -> np.ndarray:
    """Centres (n, dim) by ``packing``: 'rsa', 'dense', or 'auto' -- RSA (the same centres as
    before for every packing it can make) and the dense packing where RSA jams."""
    args = dict(n=n, radius=radius, dim=dim, size=size, min_gap=min_gap, seed=seed)
    if packing not in PACKINGS:
        raise ValueError(f"packing must be one of {PACKINGS}, got {packing!r}")
    if packing == "dense":
        return dense_packing(**args)
    grown = grown_fraction(n=n, radius=radius, dim=dim, size=size, min_gap=min_gap)
    if packing == "auto" and grown >= RSA_JAMMING[dim]:
        return dense_packing(**args)
    try:
        return random_sequential_addition(**args, max_attempts=max_attempts)
    except PackingError:
        if packing == "rsa":
            raise
        log.info("random sequential addition jammed; packing the inclusions densely")
        return dense_packing(**args)


def narrow_spots(
    centres: np.ndarray, *, radius: float, size: float, gap_width: float, face_width: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Where the periodic packing leaves a thin layer, for mesh refinement.

    Two kinds: a gap g < ``gap_width`` between two balls (a matrix ligament, widening as
    :math:`g + s^2/r` at a distance s from the closest points), and a layer
    w < ``face_width`` between a ball and a face of the cell it nearly touches
    (:math:`w = |d_k - r|`, widening as :math:`w + s^2/(2r)`). Returns the spots (k, d) (the
    middle of the gap; the point of the face nearest the ball), their thickness (k,) and the
    distance (k,) within which the layer stays thinner than its width limit.
    """
    c = np.atleast_2d(np.asarray(centres, dtype=float))
    first, second = close_pairs(c, cutoff=2.0 * radius + gap_width, size=size)
    diff = c[second] - c[first]
    diff -= size * np.round(diff / size)
    distance = np.linalg.norm(diff, axis=1)
    gaps = distance - 2.0 * radius
    points = [c[first] + diff * ((radius + 0.5 * gaps) / distance)[:, None]]
    thickness = [gaps]
    reach = [np.sqrt(radius * (gap_width - gaps))]
    low = c < 0.5 * size
    d = np.where(low, c, size - c)
    for axis in range(c.shape[1]):
        layer = np.abs(d[:, axis] - radius)
        near = layer < face_width
        spot = c[near].copy()
        spot[:, axis] = np.where(low[near, axis], 0.0, size)
        points.append(spot)
        thickness.append(layer[near])
        reach.append(np.sqrt(2.0 * radius * (face_width - layer[near])))
    return np.vstack(points), np.concatenate(thickness), np.concatenate(reach)
