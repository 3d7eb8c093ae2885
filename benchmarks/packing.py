"""Random periodic packings: the highest volume fraction RSA and the dense packing reach.

For equal discs (2D) and spheres (3D) with a given number n and min_gap, the volume fraction
is raised in steps; at each, every seed is packed by random sequential addition (default
max_attempts) and by the dense packing (collective rearrangement). Printed: the fraction of
seeds that succeed, the seconds per packing, and the largest fraction where all seeds succeed
-- with the packed fraction of the balls grown by min_gap/2 that it corresponds to. The RSA
seconds at the largest fraction both reach are the baseline of the ratio.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/packing.py [--seeds 5] [--quick]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import fe2  # noqa: F401  (dolfinx_solver first)
from fe2.meshing.packing import PackingError, dense_packing, grown_fraction, random_sequential_addition


def radius(n: int, f: float, dim: int) -> float:
    return math.sqrt(f / (n * math.pi)) if dim == 2 else (3 * f / (4 * n * math.pi)) ** (1 / 3)


def attempt(method, **kw) -> tuple[bool, float]:
    t0 = time.perf_counter()
    try:
        method(**kw)
        return True, time.perf_counter() - t0
    except PackingError:
        return False, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer cases")
    args = parser.parse_args()
    cases = [(2, 30, 0.01), (2, 60, 0.01), (3, 20, 0.02), (3, 40, 0.01)]
    if args.quick:
        cases = cases[:1] + cases[2:3]
    for dim, n, gap in cases:
        fractions = np.arange(0.30, 0.76, 0.05) if dim == 2 else np.arange(0.20, 0.61, 0.05)
        print(f"\n{'discs' if dim == 2 else 'spheres'}: n = {n}, min_gap = {gap}, {args.seeds} seeds")
        print(f"{'f':>6}{'grown':>7}{'RSA ok':>8}{'RSA s':>9}{'dense ok':>10}{'dense s':>9}")
        best = {"rsa": (0.0, 0.0), "dense": (0.0, 0.0)}
        for f in fractions:
            r = radius(n, f, dim)
            common = dict(n=n, radius=r, dim=dim, size=1.0, min_gap=gap)
            rsa = [attempt(random_sequential_addition, **common, seed=s, max_attempts=100_000) for s in range(args.seeds)]
            dense = [attempt(dense_packing, **common, seed=s) for s in range(args.seeds)]
            row = {"rsa": rsa, "dense": dense}
            for key, results in row.items():
                if all(ok for ok, _ in results):
                    best[key] = (f, np.mean([t for _, t in results]))
            print(
                f"{f:6.2f}{grown_fraction(n=n, radius=r, dim=dim, size=1.0, min_gap=gap):7.3f}"
                f"{sum(ok for ok, _ in rsa):>5}/{args.seeds}{np.mean([t for _, t in rsa]):9.3f}"
                f"{sum(ok for ok, _ in dense):>7}/{args.seeds}{np.mean([t for _, t in dense]):9.3f}"
            )
            if not any(ok for ok, _ in dense) or f >= 0.735:  # the generators take f < 0.74
                break
        f_rsa, t_rsa = best["rsa"]
        f_dense, t_dense = best["dense"]
        print(f"largest fraction for every seed: RSA {f_rsa:.2f}, dense {f_dense:.2f} "
              f"(dense packing {t_dense:.3f} s = {t_dense / t_rsa:.1f} x RSA at its own limit)")


if __name__ == "__main__":
    main()
