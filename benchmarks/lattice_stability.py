"""Benchmark: the stability check of Cauchy-Born points against the law update itself.

The floor is what a point of the law costs anyway at every macro Newton iteration: one
batched update (P and dP/dF). The check (phonons over the default Brillouin-zone grid plus the
acoustic tensor) runs once per committed load step. Printed per point, with the ratio
check / update, for each lattice, in one process.

    python benchmarks/lattice_stability.py [--points 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import fe2  # noqa: F401
import numpy as np

from fe2.lattice.potentials import LennardJones
from fe2.materials.cauchy_born import CauchyBornLaw, default_phonon_grid

CASES = [("triangular", 1.6), ("triangular", 2.5), ("fcc", 1.3), ("fcc", 2.5), ("bcc", 2.2)]


def best(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        function()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'lattice':>10} {'cutoff':>6} {'bonds':>5} {'grid':>4} {'update [us/pt]':>14} "
          f"{'check [us/pt]':>13} {'ratio':>6}")
    for lattice, cutoff in CASES:
        law = CauchyBornLaw(lattice, LennardJones(1.0, 1.0), cutoff)
        d = law.dim
        F = (np.eye(d) + 0.02 * rng.standard_normal((args.points, d, d))).reshape(args.points, d * d)
        state = {"deformation_gradient": F}
        t_update = best(lambda: law.update(F, state, d), args.repeat)
        t_check = best(lambda: law.point_fields(state, d), args.repeat)
        per = 1e6 / args.points
        print(f"{lattice:>10} {cutoff:>6.2f} {len(law.model.reference_bonds):>5} {default_phonon_grid(d):>4} "
              f"{t_update * per:>14.1f} {t_check * per:>13.1f} {t_check / t_update:>6.1f}")


if __name__ == "__main__":
    main()
