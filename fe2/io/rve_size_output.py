"""Result files of an RVE-size study: rve_size.json, rve_size.csv, rve_size_samples.csv.

Tensor components are named ``<K>_<a>_<b>`` (K = C, A or K as in ``effective.json``; a, b
the component labels, upper triangle) in the notation of ``effective.json``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

import fe2
from fe2.homogenization.rve_size import TASKS, WINDOWS, RveSizeResult
from fe2.io.results import NOTATION, TENSOR_KEY, _atomic, write_json
from fe2.rve.physics import make_physics

FILES = ("rve_size.json", "rve_size.csv", "rve_size_samples.csv")
#: How the Loewner order of the means is shown in the table.
LOEWNER = {"holds": "ok", "within sampling error": "ok (±2se)", "violated": "VIOLATED"}


def _labels(result: RveSizeResult) -> list[str]:
    return list(make_physics(result.config.physics, result.config.dim).labels)


def _pairs(n: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(n) for b in range(a, n)]


def _column(result: RveSizeResult, a: int, b: int) -> str:
    labels = _labels(result)
    return f"{TENSOR_KEY[result.config.physics]}_{labels[a]}_{labels[b]}"


def rve_size_record(result: RveSizeResult) -> dict:
    """JSON-ready record of the whole study."""
    config, options = result.config, result.config.rve_size
    labels = _labels(result)

    def named(exponent: dict) -> dict:
        components = {
            _column(result, *map(int, key.split("_"))): value
            for key, value in exponent["components"].items()
        }
        return {**exponent, "components": components}

    return {
        "fe2_version": fe2.__version__,
        "physics": config.physics,
        "dim": config.dim,
        "notation": NOTATION[config.physics],
        "components": labels,
        "tensor": TENSOR_KEY[config.physics],
        "microstructure": options.microstructure.model_dump(),
        "phases": {name: p.model_dump() for name, p in config.phases.items()},
        "sizes": [float(s) for s in options.sizes],
        "size_unit": "mean inclusion diameter",
        "realisations": options.realisations,
        "bcs": result.bcs,
        "seed": options.seed,
        "degree": options.degree,
        "statistics": {bc: [s.record() for s in group] for bc, group in result.statistics.items()},
        "bound_gap": result.gaps,
        "variance_exponent": {
            "expected": config.dim,
            "method": "least squares of log(total variance) vs log L; 95 % interval: bootstrap "
            "percentiles (realisations resampled per size, 2000 times)",
            **{bc: named(e) for bc, e in result.exponents.items()},
        },
        "recommended_size": result.recommendation,
        "tasks": result.tasks,
    }


def _csv(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _f(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def statistics_csv(result: RveSizeResult) -> str:
    """One row per (size, BC): means and standard deviations, eigenvalues, scatter, gap."""
    n = len(_labels(result))
    pairs = _pairs(n)
    header = ["size", "bc", "realisations", "volume_fraction_mean", "volume_fraction_std",
              "variance", "relative_std", "bound_gap"]
    header += [f"{_column(result, a, b)}_{s}" for a, b in pairs for s in ("mean", "std")]
    header += [f"eigenvalue_{i + 1}_{s}" for i in range(n) for s in ("mean", "std")]
    rows = []
    for bc, group in result.statistics.items():
        for i, st in enumerate(group):
            row = [repr(st.size), bc, st.realisations, _f(st.volume_fraction_mean),
                   _f(st.volume_fraction_std), _f(st.variance), _f(st.relative_std),
                   _f(result.gaps[i].get("gap"))]
            row += [_f(v) for a, b in pairs for v in (st.mean[a, b], st.std[a, b])]
            row += [_f(v) for i in range(n) for v in (st.eigenvalues_mean[i], st.eigenvalues_std[i])]
            rows.append(row)
    return _csv(header, rows)


def samples_csv(result: RveSizeResult) -> str:
    """One row per (size, realisation, BC): the tensor components and eigenvalues."""
    n = len(_labels(result))
    pairs = _pairs(n)
    header = ["size", "realisation", "bc", "volume_fraction", "dofs", "hill_mandel_residual",
              "seconds"]
    header += [_column(result, a, b) for a, b in pairs]
    header += [f"eigenvalue_{i + 1}" for i in range(n)]
    rows = []
    for s in result.samples:
        eig = np.linalg.eigvalsh(0.5 * (s.tensor + s.tensor.T))
        rows.append([repr(s.size), s.realisation, s.bc, _f(s.volume_fraction), s.dofs,
                     f"{s.hill_mandel_residual:.3e}", f"{s.seconds:.4f}"]
                    + [_f(s.tensor[a, b]) for a, b in pairs] + [_f(v) for v in eig])
    return _csv(header, rows)


def write_rve_size(result: RveSizeResult, directory: Path) -> list[Path]:
    """Write the result files (rank 0); returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / name for name in FILES]
    write_json(paths[0], rve_size_record(result))
    _atomic(paths[1], statistics_csv(result))
    _atomic(paths[2], samples_csv(result))
    return paths


def format_rve_size_report(result: RveSizeResult) -> str:
    """The table printed at the end: scatter and gap per size, exponents, recommendation."""
    config = result.config
    key = TENSOR_KEY[config.physics]
    lines = [
        f"{config.physics}, {config.dim}D {config.rve_size.microstructure.inclusions}, f = "
        f"{config.rve_size.microstructure.volume_fraction:g}: {config.rve_size.realisations} "
        f"realisations per size (L in inclusion diameters)",
        f"relative std of one window's {key} (Frobenius) per BC, affine-traction gap, order "
        f"affine >= periodic >= traction of the means:",
        f"{'L':>8}" + "".join(f"{bc:>12}" for bc in result.bcs) + f"{'gap':>10}{'order':>10}",
    ]
    for i, gap in enumerate(result.gaps):
        order = gap.get("loewner_order")
        lines.append(
            f"{gap['size']:>8g}"
            + "".join(f"{result.statistics[bc][i].relative_std:>12.4g}" for bc in result.bcs)
            + (f"{gap['gap']:>10.4g}" if "gap" in gap else f"{'':>10}")
            + f"{LOEWNER.get(order, ''):>10}"
        )
    lines.append(f"variance exponent gamma (Var ~ L^-gamma; theory {config.dim}):")
    for bc, e in result.exponents.items():
        ci = e["ci95"]
        gamma = "n/a" if e["gamma"] is None else f"{e['gamma']:.3f}"
        lines.append(f"  {bc:>9}: {gamma}" + (f"  (95 % interval {ci[0]:.3f} .. {ci[1]:.3f})" if ci else ""))
    rec = result.recommendation
    size = "none of the sizes studied" if rec["size"] is None else f"L = {rec['size']:g}"
    lines.append(f"recommended RVE size for tolerance {rec['tolerance']:g}: {size} ({rec['criterion']})")
    if rec["extrapolated_size"] is not None:
        lines.append(f"  extrapolated from the fits: L = {rec['extrapolated_size']:.3g}")
    tasks = result.tasks
    if tasks:
        lines.append(f"{tasks['computed']} tensors computed, {tasks['reused']} reused from "
                     f"{TASKS}/, {tasks['wall_time']:.1f} s on {tasks['ranks']} rank(s); window "
                     f"meshes of the first realisations in {WINDOWS}/")
    return "\n".join(lines)
