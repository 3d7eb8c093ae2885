"""Plots of an RVE-size study, from rve_size.csv and rve_size.json (matplotlib, headless).

* ``rve_size_mean.png``: the mean ± one standard deviation of each diagonal component of the
  apparent tensor against the window size L, one curve per BC (affine above, traction below,
  closing in on each other and on the periodic one as L grows);
* ``rve_size_variance.png``: the total variance against L in log-log axes, with the fitted
  power laws L^-gamma (gamma and its 95 % interval in the legend) and the slope -d of theory.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib.ticker
import numpy as np

from fe2.io.plots import _save, plt

STYLE = {"affine": ("tab:red", "v"), "periodic": ("tab:green", "o"), "traction": ("tab:blue", "^")}


def plot_rve_size(directory: Path) -> list[Path]:
    """Draw both plots of the study in ``directory``; returns the PNG paths."""
    directory = Path(directory)
    with (directory / "rve_size.csv").open() as f:
        rows = list(csv.DictReader(f))
    record = json.loads((directory / "rve_size.json").read_text())
    if not rows:
        return []
    bcs = list(dict.fromkeys(r["bc"] for r in rows))
    key, labels = record["tensor"], record["components"]
    diagonal = [f"{key}_{c}_{c}" for c in labels]
    ncols = min(3, len(diagonal))
    nrows = -(-len(diagonal) // ncols)
    figure, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
    for ax, column in zip(axes.ravel(), diagonal):
        for bc in bcs:
            mine = [r for r in rows if r["bc"] == bc]
            size = np.array([float(r["size"]) for r in mine])
            mean = np.array([float(r[f"{column}_mean"]) for r in mine])
            std = np.array([float(r[f"{column}_std"]) for r in mine])
            color, marker = STYLE.get(bc, (None, "s"))
            ax.errorbar(size, mean, yerr=std, color=color, marker=marker, capsize=3, label=bc)
        _size_axis(ax, sorted({float(r["size"]) for r in rows}))
        ax.set(xlabel="window size L [inclusion diameters]", ylabel=column, title=f"{column}: mean ± std")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes.ravel()[len(diagonal):]:
        ax.set_visible(False)
    outputs = [_save(figure, directory / "rve_size_mean.png")]

    figure, ax = plt.subplots(figsize=(6, 4.5))
    exponents = record["variance_exponent"]
    for bc in bcs:
        mine = [r for r in rows if r["bc"] == bc]
        size = np.array([float(r["size"]) for r in mine])
        variance = np.array([float(r["variance"]) for r in mine])
        color, marker = STYLE.get(bc, (None, "s"))
        fit = exponents.get(bc, {})
        label = bc
        positive = variance > 0
        if fit.get("gamma") is not None and positive.all():
            gamma = fit["gamma"]
            prefactor = np.exp(np.mean(np.log(variance) + gamma * np.log(size)))
            ax.loglog(size, prefactor * size**-gamma, color=color, linestyle="--", linewidth=1)
            label += f": γ = {gamma:.2f}"
            if fit.get("ci95"):
                label += f" [{fit['ci95'][0]:.2f}, {fit['ci95'][1]:.2f}]"
        ax.loglog(size[positive], variance[positive], color=color, marker=marker, linestyle="none", label=label)
    d = record["dim"]
    all_variance = np.array([float(r["variance"]) for r in rows])
    size = np.array(sorted({float(r["size"]) for r in rows}))
    if (all_variance > 0).any():
        top = all_variance[all_variance > 0].max()
        ax.loglog(size, top * (size / size[0]) ** -d, color="gray", linestyle=":", label=f"slope −{d} (theory)")
    _size_axis(ax, list(size))
    ax.set(xlabel="window size L [inclusion diameters]", ylabel=f"total variance of {key}",
           title="Variance of the apparent tensor: Var ∝ L^−γ")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    outputs.append(_save(figure, directory / "rve_size_variance.png"))
    return outputs


def _size_axis(ax, sizes: list[float]) -> None:
    """Log-scaled size axis with a labelled tick at every size studied."""
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{s:g}" for s in sizes])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
