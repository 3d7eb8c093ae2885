"""The stretched 1D chain: dispersion omega^2(q, lambda) and the critical stretch.

The chain is the 1D Bravais lattice of :mod:`fe2.lattice.lattices` under F = (lambda); its
phonons and its continuum (acoustic) check come from :func:`fe2.lattice.stability` -- the
code path of the 2D/3D check. With nearest-neighbour bonds only,

    omega^2(q) = 4 phi''(lambda a) sin^2(q a / 2)   (unit mass),

so the chain loses stability where phi''(lambda a) = 0, first at the zone boundary q = pi/a
(Lennard-Jones: lambda_c = (13/7)^(1/6)).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fe2.lattice.cauchy_born import CauchyBorn
from fe2.lattice.stability import acoustic_check, dynamical_matrices, phonon_grid


def dispersion(law: CauchyBorn, stretches: np.ndarray, qa: np.ndarray) -> np.ndarray:
    """omega^2 (S, Q) of the chain at stretches (S,) and wave numbers q a (Q,) in [0, pi]."""
    F = np.asarray(stretches, dtype=float).reshape(-1, 1, 1)
    k = (np.asarray(qa, dtype=float) / (2 * np.pi)).reshape(-1, 1)
    return dynamical_matrices(law, F, k)[..., 0, 0]


def _unstable(law: CauchyBorn, stretch: float, grid: int) -> bool:
    """min omega^2 over the q grid < 0 or the chain modulus A < 0 (no tolerance: exact sign)."""
    F = np.array([[[stretch]]])
    k = phonon_grid(1, grid)
    omega2 = dynamical_matrices(law, F, k)[0, :, 0, 0]
    modulus = acoustic_check(law.stress_and_tangent(F)[1])["min_eigenvalue"][0]
    return bool(omega2.min() < 0 or modulus < 0)


@dataclass(frozen=True)
class CriticalStretch:
    """The first stretch lambda_c > 1 at which the chain is unstable, or None up to ``limit``.

    Attributes:
        stretch: lambda_c (bisection to round-off), or None.
        qa: q a of the most negative omega^2 just beyond lambda_c (pi: the zone boundary).
        limit: the largest stretch examined.
    """

    stretch: float | None
    qa: float | None
    limit: float


def critical_stretch(law: CauchyBorn, *, grid: int = 64, limit: float = 2.0, step: float = 1e-3) -> CriticalStretch:
    """Scan lambda = 1, 1 + step, ... up to ``limit``; bisect the first stable -> unstable
    change to round-off. The q grid has ``grid`` points in (0, 2 pi/a) (even: q = pi/a in it)."""
    if _unstable(law, 1.0, grid):
        raise ValueError("the unstretched chain is already unstable (check the lattice constant)")
    lo = 1.0
    while lo < limit:
        hi = min(lo * (1.0 + step), limit)
        if _unstable(law, hi, grid):
            break
        lo = hi
    else:
        return CriticalStretch(None, None, limit)
    while True:
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        lo, hi = (lo, mid) if _unstable(law, mid, grid) else (mid, hi)
    beyond = hi * (1.0 + 1e-6)
    qa = np.linspace(0.0, np.pi, grid // 2 + 1)[1:]
    omega2 = dispersion(law, np.array([beyond]), qa)[0]
    return CriticalStretch(hi, float(qa[np.argmin(omega2)]), limit)


def write_dispersion(law: CauchyBorn, stretches: list[float], directory: Path, *, points: int = 201) -> list[Path]:
    """chain_dispersion.csv (q a, omega^2 per stretch) and chain_dispersion.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    qa = np.linspace(0.0, np.pi, points)
    omega2 = dispersion(law, np.array(stretches), qa)
    directory.mkdir(parents=True, exist_ok=True)
    table = directory / "chain_dispersion.csv"
    header = "qa," + ",".join(f"omega2_stretch_{s:.6g}" for s in stretches)
    np.savetxt(table, np.column_stack([qa, omega2.T]), delimiter=",", header=header, comments="", fmt="%.10g")
    figure, axes = plt.subplots(figsize=(6, 4))
    for s, w2 in zip(stretches, omega2):
        axes.plot(qa / np.pi, w2, label=f"λ = {s:.4g}")
    axes.axhline(0.0, color="k", lw=0.8)
    axes.set(xlabel="q a / π", ylabel="ω² (unit mass)", title="Stretched chain: dispersion ω²(q)")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    image = directory / "chain_dispersion.png"
    figure.savefig(image, dpi=110)
    plt.close(figure)
    return [table, image]
