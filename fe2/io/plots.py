"""PNG plots of a result directory, drawn from its CSV files (matplotlib, headless).

* ``history.csv`` (`fe2 run`): ``reactions.png`` -- the reaction force components of each
  supported boundary against the time t; ``reaction_displacement.png`` -- each reaction
  component against the mean displacement of its boundary in that direction, from the
  unloaded state (load-unload cycles show as hysteresis loops), for the components whose
  displacement changes; ``convergence.png`` -- the macro Newton residual norms of every load
  step against the iteration (log scale: quadratic convergence shows as ever steeper lines).
  Column names and labels come from the physics (conduction: heat flows against mean
  temperatures).
* ``load_path*.csv`` (`fe2 homogenize` with a load path): ``load_path*.png`` -- each
  homogenised stress component against its strain component (those that are not zero), the
  stress components and the RVE Newton iterations against the step.
* ``rve_size.csv`` (`fe2 homogenize` of an RVE-size study): see :mod:`fe2.io.rve_size_plots`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp, dpi=120)
    plt.close(figure)
    tmp.replace(path)
    return path


def _physics_of(columns) -> type:
    """The physics whose history columns these are (its reaction column prefix is present;
    mechanics for a history without any)."""
    from fe2.physics import PHYSICS

    found = [cls for cls in PHYSICS.values() if any(c.startswith(cls.reaction_column + "_") for c in columns)]
    return found[0] if found else PHYSICS["elasticity"]


def _reaction_columns(rows: list[dict[str, str]], prefix: str) -> list[str]:
    return [c for c in rows[0] if c.startswith(prefix) and any(float(r[c]) for r in rows)]


def plot_history(history: Path) -> list[Path]:
    """reactions.png, reaction_displacement.png and convergence.png from a history.csv."""
    rows = _rows(history)
    if not rows:
        return []
    time_column = "time" if "time" in rows[0] else "load_factor"  # history files of older versions
    times = [0.0] + [float(r[time_column]) for r in rows]  # from the unloaded state
    physics = _physics_of(rows[0])
    prefix = physics.reaction_column + "_"
    columns = _reaction_columns(rows, prefix)
    figure, axes = plt.subplots(figsize=(6, 4))
    for column in columns:
        axes.plot(times, [0.0] + [float(r[column]) for r in rows], marker="o", label=column.removeprefix(prefix))
    axes.set(xlabel="time t", ylabel=physics.reaction_label, title="Reactions on the supported boundaries")
    axes.grid(True, alpha=0.3)
    if columns:
        axes.legend(fontsize=8)
    outputs = [_save(figure, history.with_name("reactions.png"))]
    pairs = [(c, f"{physics.primary}_{c.removeprefix(prefix)}") for c in columns]
    pairs = [(f, u) for f, u in pairs if u in rows[0] and len({r[u] for r in rows}) > 1]
    if pairs:
        figure, axes = plt.subplots(figsize=(6, 4.5))
        for force, displacement in pairs:
            axes.plot([0.0] + [float(r[displacement]) for r in rows], [0.0] + [float(r[force]) for r in rows],
                      marker=".", label=force.removeprefix(prefix))
        axes.set(xlabel=physics.mean_label, ylabel=physics.reaction_label,
                 title=f"Reaction against {physics.primary}, per boundary and component")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
        outputs.append(_save(figure, history.with_name("reaction_displacement.png")))
    figure, axes = plt.subplots(figsize=(6, 4))
    for r in rows:
        norms = [float(x) for x in r.get("residual_norms", "").split()]
        norms = [max(x, 1e-300) for x in norms]
        if norms:
            axes.semilogy(range(len(norms)), norms, marker=".", label=f"step {r['step']}")
    axes.set(xlabel="macro Newton iteration", ylabel="residual norm", title="Macro Newton convergence")
    axes.grid(True, which="both", alpha=0.3)
    if len(rows) <= 12:
        axes.legend(fontsize=7)
    outputs.append(_save(figure, history.with_name("convergence.png")))
    return outputs


def plot_load_path(path_csv: Path) -> list[Path]:
    """Stress-strain curves, stress components and RVE Newton iterations per step from a
    load_path csv."""
    rows = _rows(path_csv)
    if not rows:
        return []
    steps = [int(r["step"]) for r in rows]
    stress = [c for c in rows[0] if c[0] in "SPQ" and c[1:].isdigit()]
    figure, (curve, top, bottom) = plt.subplots(3, 1, figsize=(6, 9))
    for column in stress:
        strain = {"S": "E", "P": "F", "Q": "G"}[column[0]] + column[1:]
        if strain not in rows[0]:  # S33 (P33) of plane strain: eps33 = 0, no curve
            continue
        values = [float(r[column]) for r in rows]
        if max(abs(v) for v in values) > 1e-6 * max(abs(float(r[c])) for r in rows for c in stress):
            start = 1.0 if column[0] == "P" and column[1] == column[2] else 0.0  # F = I unloaded
            curve.plot([start] + [float(r[strain]) for r in rows], [0.0] + values, marker=".", label=f"{column}({strain})")
    curve.set(xlabel="macro strain component", ylabel="homogenised stress", title="Stress-strain")
    curve.grid(True, alpha=0.3)
    curve.legend(fontsize=8)
    for column in stress:
        top.plot(steps, [float(r[column]) for r in rows], marker="o", label=column)
    top.set(xlabel="step", ylabel="homogenised stress", title=path_csv.stem.replace("_", " "))
    top.grid(True, alpha=0.3)
    top.legend(fontsize=8)
    bottom.bar(steps, [int(r["newton_iterations"]) for r in rows])
    bottom.set(xlabel="step", ylabel="RVE Newton iterations")
    return [_save(figure, path_csv.with_suffix(".png"))]


def plot_directory(directory: Path) -> list[Path]:
    """All plots for the result files found in ``directory``; returns the PNG paths."""
    directory = Path(directory)
    outputs = []
    if (directory / "history.csv").is_file():
        outputs += plot_history(directory / "history.csv")
    for path_csv in sorted(directory.glob("load_path*.csv")):
        outputs += plot_load_path(path_csv)
    if (directory / "rve_size.csv").is_file() and (directory / "rve_size.json").is_file():
        from fe2.io.rve_size_plots import plot_rve_size

        outputs += plot_rve_size(directory)
    return outputs
