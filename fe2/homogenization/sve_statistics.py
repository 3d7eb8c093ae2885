r"""Statistics of apparent tensors of statistical volume elements (SVEs) of growing size.

Input: for each boundary condition and window size L, the apparent tensors
:math:`C^{(k)}` (n, n) of N realisations. Per (L, BC):

* mean :math:`\bar C` and standard deviation of every component (ddof = 1), the mean and
  standard deviation of the eigenvalues (ascending, of the symmetric part);
* the total variance :math:`V(L) = \frac{1}{N-1}\sum_k \|C^{(k)} - \bar C\|_F^2` (the sum of
  the component variances; basis-independent in Mandel notation) and the relative scatter of
  one window :math:`s(L) = \sqrt{V} / \|\bar C\|_F`.

Per L: the bound gap :math:`g(L) = \|\bar C_{affine} - \bar C_{traction}\|_F / \|\bar C_{ref}\|_F`
(reference: the periodic mean, else the mean of the two) and the smallest eigenvalues of
:math:`\bar C_{affine} - \bar C_{periodic}`, :math:`\bar C_{periodic} - \bar C_{traction}` and
:math:`\bar C_{affine} - \bar C_{traction}` with their standard errors (Loewner order when all
are >= 0; affine >= traction holds window by window, while the periodic windows are other
geometries, so their mean is compared within its sampling error).

**Variance exponent.** :math:`V \propto L^{-\gamma}`: :math:`\gamma` is minus the
least-squares slope of :math:`\log V` against :math:`\log L`; its 95 % confidence interval
is the 2.5/97.5 percentile interval of :math:`\gamma` over bootstrap resamples (the N
realisations of every size drawn with replacement, 2000 times, seeded), which needs no
assumption on the distribution of the tensors (none with fewer than 5 realisations). Theory: :math:`\gamma = d` for a medium with
finite correlation length. The same fit is made per component and for the bound gap
(:math:`g \propto L^{-\beta}`, no interval).

**Recommended size**: the smallest L at which :math:`s(L) \le \tau` for every BC and
:math:`g(L) \le \tau`; and, extrapolated from the power-law fits, the L where both would
reach :math:`\tau` (an estimate, for planning a larger study).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP = 2000
MIN_BOOTSTRAP = 5
"""Fewest realisations per size for a bootstrap interval (with fewer it is meaningless)."""


@dataclass(frozen=True)
class SizeStatistics:
    """Statistics of one (size, BC) group of N realisations; tensors (n, n), vectors (n,)."""

    size: float
    bc: str
    realisations: int
    mean: np.ndarray
    std: np.ndarray
    eigenvalues_mean: np.ndarray
    eigenvalues_std: np.ndarray
    variance: float
    relative_std: float
    volume_fraction_mean: float
    volume_fraction_std: float

    def record(self) -> dict:
        return {
            "size": self.size, "realisations": self.realisations,
            "mean": self.mean.tolist(), "std": self.std.tolist(),
            "eigenvalues_mean": self.eigenvalues_mean.tolist(),
            "eigenvalues_std": self.eigenvalues_std.tolist(),
            "variance": self.variance, "relative_std": self.relative_std,
            "volume_fraction_mean": self.volume_fraction_mean,
            "volume_fraction_std": self.volume_fraction_std,
        }


def eigenvalues(tensors: np.ndarray) -> np.ndarray:
    """Ascending eigenvalues of the symmetric parts of tensors (N, n, n) -> (N, n)."""
    return np.linalg.eigvalsh(0.5 * (tensors + np.swapaxes(tensors, -1, -2)))


def total_variance(tensors: np.ndarray) -> float:
    """Sum of the component variances (ddof 1) of tensors (N, n, n)."""
    return float(np.sum(np.var(tensors, axis=0, ddof=1)))


def size_statistics(size: float, bc: str, tensors: np.ndarray, fractions: np.ndarray) -> SizeStatistics:
    """Statistics of the tensors (N, n, n) and inclusion volume fractions (N,) of one group."""
    tensors = np.asarray(tensors, dtype=float)
    if len(tensors) < 2:
        raise ValueError(f"size {size:g}, {bc}: need at least 2 realisations, got {len(tensors)}")
    mean = tensors.mean(axis=0)
    eig = eigenvalues(tensors)
    variance = total_variance(tensors)
    return SizeStatistics(
        size=float(size), bc=bc, realisations=len(tensors), mean=mean,
        std=tensors.std(axis=0, ddof=1), eigenvalues_mean=eig.mean(axis=0),
        eigenvalues_std=eig.std(axis=0, ddof=1), variance=variance,
        relative_std=float(np.sqrt(variance) / np.linalg.norm(mean)),
        volume_fraction_mean=float(np.mean(fractions)),
        volume_fraction_std=float(np.std(fractions, ddof=1)),
    )


def power_law_exponent(sizes: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """(exponent, prefactor) of values ~ prefactor * L^-exponent by least squares in log-log.

    Values <= 0 cannot be fitted: NaN is returned.
    """
    x, y = np.log(np.asarray(sizes, float)), np.asarray(values, float)
    if len(x) < 2 or np.any(~(y > 0)):
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(x, np.log(y), 1)
    return float(-slope), float(np.exp(intercept))


def variance_exponent(
    sizes: Sequence[float], groups: Sequence[np.ndarray], *, rng: np.random.Generator,
    bootstrap: int = BOOTSTRAP,
) -> dict:
    """Fit V(L) ~ L^-gamma to the groups (one (N_i, n, n) array per size), with a bootstrap
    95 % interval; also per upper-triangle component ``"a_b"`` (0-based indices)."""
    groups = [np.asarray(g, float) for g in groups]
    n = groups[0].shape[-1]
    pairs = [(a, b) for a in range(n) for b in range(a, n)]
    rows, cols = np.array(pairs).T

    def series(variances: np.ndarray) -> np.ndarray:
        """(..., sizes, n, n) component variances -> (..., sizes, 1 + pairs): total, components."""
        return np.concatenate(
            [variances.sum(axis=(-2, -1))[..., None], variances[..., rows, cols]], axis=-1
        )

    def exponents(values: np.ndarray) -> np.ndarray:
        """Minus the least-squares slope of log values (..., sizes, m) vs log L; NaN where a
        value is not positive."""
        x = np.log(np.asarray(sizes, float))
        x = (x - x.mean())[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(values > 0, np.log(np.where(values > 0, values, 1.0)), np.nan)
        return -np.sum(x * (y - y.mean(axis=-2, keepdims=True)), axis=-2) / np.sum(x**2)

    estimate = exponents(series(np.array([np.var(g, axis=0, ddof=1) for g in groups])))
    few = min(len(g) for g in groups)
    resampled = np.stack([
        np.var(g[rng.integers(0, len(g), size=(bootstrap, len(g)))], axis=1, ddof=1) for g in groups
    ], axis=1)  # (bootstrap, sizes, n, n)
    draws = exponents(series(resampled))  # (bootstrap, 1 + pairs)

    def entry(column: int) -> dict:
        gamma = estimate[column]
        values = draws[:, column][np.isfinite(draws[:, column])]
        enough = len(values) >= 0.9 * bootstrap and bootstrap > 1 and few >= MIN_BOOTSTRAP
        return {
            "gamma": float(gamma) if np.isfinite(gamma) else None,
            "ci95": [float(v) for v in np.percentile(values, [2.5, 97.5])] if enough else None,
            "stderr": float(np.std(values, ddof=1)) if enough else None,
        }

    return {
        **entry(0),
        "components": {f"{a}_{b}": entry(1 + i) for i, (a, b) in enumerate(pairs)},
    }


#: (upper, lower) pairs of the Loewner order affine >= periodic >= traction.
ORDER = (("affine", "periodic"), ("periodic", "traction"), ("affine", "traction"))
#: Pairs solved on the same windows (realisation k of both is one geometry).
PAIRED = {("affine", "traction")}


def bound_gaps(tensors: Mapping[str, np.ndarray]) -> dict:
    """Gap and Loewner order of the mean tensors of one size, from the samples by BC
    (N, n, n) each, realisations in the same order.

    For each pair (upper, lower) present: the smallest eigenvalue lambda of the symmetric
    part of mean(upper) - mean(lower), with eigenvector v, and the standard error of
    v.(mean(upper) - mean(lower)).v over the realisations (of the per-window differences for
    affine-traction, which share their windows; else of two independent means).
    ``loewner_order``: "holds" (every lambda >= 0 to round-off), "within sampling error"
    (every lambda >= -2 standard errors) or "violated".
    """
    means = {bc: np.asarray(t, float).mean(axis=0) for bc, t in tensors.items()}
    out: dict = {}
    affine, periodic, traction = (means.get(bc) for bc in ("affine", "periodic", "traction"))
    if affine is not None and traction is not None:
        reference = periodic if periodic is not None else 0.5 * (affine + traction)
        out["gap"] = float(np.linalg.norm(affine - traction) / np.linalg.norm(reference))
    checks = []
    for upper, lower in ORDER:
        if upper not in means or lower not in means:
            continue
        difference = means[upper] - means[lower]
        values, vectors = np.linalg.eigh(0.5 * (difference + difference.T))
        v = vectors[:, 0]
        a = np.einsum("i,kij,j->k", v, np.asarray(tensors[upper], float), v)
        b = np.einsum("i,kij,j->k", v, np.asarray(tensors[lower], float), v)
        if (upper, lower) in PAIRED and len(a) == len(b):
            error = float(np.std(a - b, ddof=1) / np.sqrt(len(a)))
        else:
            error = float(np.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b)))
        out[f"{upper}_minus_{lower}"] = {"smallest_eigenvalue": float(values[0]), "stderr": error}
        checks.append((float(values[0]), error))
    if checks:
        scale = max(float(np.abs(m).max()) for m in means.values())
        if all(value >= -1e-10 * scale for value, _ in checks):
            out["loewner_order"] = "holds"
        elif all(value >= -2.0 * error for value, error in checks):
            out["loewner_order"] = "within sampling error"
        else:
            out["loewner_order"] = "violated"
    return out


def recommended_size(
    stats: Mapping[str, Sequence[SizeStatistics]], gaps: Sequence[dict], *, tolerance: float,
    exponents: Mapping[str, dict],
) -> dict:
    """Smallest studied size meeting the tolerance, and the size extrapolated from the fits.

    ``stats``: per BC, the statistics in increasing size; ``gaps``: per size, from
    :func:`bound_gaps`; ``exponents``: per BC, from :func:`variance_exponent`.
    """
    sizes = [s.size for s in next(iter(stats.values()))]
    has_gap = all("gap" in g for g in gaps)
    found = None
    for i, size in enumerate(sizes):
        scatter_ok = all(group[i].relative_std <= tolerance for group in stats.values())
        if scatter_ok and (not has_gap or gaps[i]["gap"] <= tolerance):
            found = size
            break
    needed: list[float] = []
    for bc, group in stats.items():
        gamma = exponents[bc]["gamma"]
        rel = np.array([s.relative_std for s in group])
        if gamma is None or not gamma > 0:
            needed.append(float("inf"))
            continue
        # s(L) ~ a L^(-gamma/2) with the fitted gamma of the variance; a by least squares
        a = float(np.exp(np.mean(np.log(rel) + 0.5 * gamma * np.log(sizes))))
        needed.append((a / tolerance) ** (2.0 / gamma))
    gap_fit = None
    if has_gap:
        beta, b = power_law_exponent(sizes, [g["gap"] for g in gaps])
        gap_fit = {"beta": beta if np.isfinite(beta) else None}
        needed.append((b / tolerance) ** (1.0 / beta) if np.isfinite(beta) and beta > 0 else float("inf"))
    extrapolated = max(needed) if needed else None
    return {
        "tolerance": tolerance,
        "size": found,
        "criterion": "relative std of one window <= tolerance for every BC"
        + (" and affine-traction gap <= tolerance" if has_gap else ""),
        "extrapolated_size": extrapolated if extrapolated is not None and np.isfinite(extrapolated) else None,
        "gap_exponent": gap_fit,
    }
