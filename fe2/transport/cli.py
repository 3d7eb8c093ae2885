"""`fe2 green-kubo FLUX.csv`: a transport coefficient from a sampled flux (see green_kubo.py).

Writes into --output: green_kubo.png (autocorrelation; running integral with its block
error band and the plateau), green_kubo.csv (t, C, I, error), green_kubo.json and
green_kubo.yaml (the coefficient as a phase snippet; error in the comment). Input errors: one
line, exit code 2, nothing written. A negative coefficient: exit code 1, only the plot and the
table are written (for diagnosis), no snippet.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from fe2.errors import InputError
from fe2.io.arguments import integer, number
from fe2.transport.green_kubo import KINDS, GreenKubo, green_kubo, prefactor, require_positive

BOLTZMANN_SI = 1.380649e-23  # J/K
TIME_COLUMNS = ("time", "t")
OUTPUTS = ("green_kubo.png", "green_kubo.csv", "green_kubo.json", "green_kubo.yaml")
#: Key of the coefficient in the phase snippet, and the law using it (None: no fe2 law yet).
SNIPPET = {"conductivity": ("k", "linear_conduction"), "viscosity": ("viscosity", None)}


def add_green_kubo_parser(commands, parents: list[argparse.ArgumentParser]) -> None:
    gk = commands.add_parser(
        "green-kubo", parents=parents, help="transport coefficient from a flux time series (Green-Kubo)",
        description="Green-Kubo: conductivity (heat flux J, prefactor V/(k_B T^2)) or shear "
        "viscosity (off-diagonal stress, prefactor V/(k_B T)) from a CSV time series; "
        "autocorrelation, running integral, plateau, block-averaged error, plot, YAML snippet.",
    )
    gk.add_argument("flux", help="CSV file with a header; columns: optional 'time', then flux components")
    gk.add_argument("--kind", choices=sorted(KINDS), required=True)
    gk.add_argument("--volume", required=True, help="system volume V (> 0)")
    gk.add_argument("--temperature", required=True, help="temperature T (> 0)")
    gk.add_argument("--kb", default=str(BOLTZMANN_SI), help="Boltzmann constant in your units (default SI, J/K)")
    gk.add_argument("--dt", help="sampling interval (default: from the time column)")
    gk.add_argument("--columns", help="comma-separated flux columns (default: all but time)")
    gk.add_argument("--blocks", default="10", help="independent segments for the error (>= 2, default 10)")
    gk.add_argument("--window", default="5", help="plateau at t >= WINDOW x integrated correlation time (default 5)")
    gk.add_argument("--subtract-mean", action="store_true", help="subtract each column's mean first")
    gk.add_argument("--output", "-o", default="results/green_kubo", help="output directory")
    gk.add_argument("--overwrite", action="store_true", help="replace existing result files")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_flux(path: Path, columns: str | None, dt_text: str | None) -> tuple[np.ndarray, float, list[str]]:
    """(flux (N, c), dt, column names) from a CSV file; InputError naming the problem."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    rows = [r for r in rows if r and any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise InputError(f"{path}: expected a header line and data rows")
    header = [h.strip() for h in rows[0]]
    if any(_is_number(h) for h in header):
        raise InputError(f"{path}: the first line must name the columns (e.g. time,Jx,Jy,Jz)")
    data = np.full((len(rows) - 1, len(header)), np.nan)
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InputError(f"{path}: line {i} has {len(row)} values, the header {len(header)}")
        try:
            data[i - 2] = [float(x) for x in row]
        except ValueError:
            raise InputError(f"{path}: line {i}: not a number in {row}") from None
    bad = np.argwhere(~np.isfinite(data))
    if len(bad):
        raise InputError(f"{path}: line {bad[0][0] + 2}: non-finite value in column {header[bad[0][1]]!r}")
    time = next((header.index(c) for c in TIME_COLUMNS if c in header), None)
    names = [h for j, h in enumerate(header) if j != time]
    if columns:
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in header or header.index(c) == time]
        if unknown:
            raise InputError(f"--columns: {unknown[0]!r} is not a flux column of {path} ({names})")
        names = wanted
    if not names:
        raise InputError(f"{path}: no flux column")
    dt = None if dt_text is None else number(dt_text, "--dt", positive=True)
    if time is not None:
        steps = np.diff(data[:, time])
        if len(steps) == 0 or not steps.min() > 0 or np.ptp(steps) > 1e-6 * steps.mean():
            raise InputError(f"{path}: the time column must increase in equal steps")
        if dt is not None and abs(dt - steps.mean()) > 1e-6 * dt:
            raise InputError(f"--dt: {dt:g} differs from the time step of {path} ({steps.mean():g})")
        dt = float(steps.mean())
    if dt is None:
        raise InputError(f"--dt: required ({path} has no 'time' column)")
    return data[:, [header.index(c) for c in names]], dt, names


def write_plot(result: GreenKubo, path: Path, *, kind: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = min(len(result.time), max(4 * result.plateau, 20))
    t = result.time[:end]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(6, 6), sharex=True)
    top.plot(t, result.acf[:end] / result.acf[0])
    top.axhline(0.0, color="k", lw=0.8)
    top.set(ylabel="C(t) / C(0)", title=f"Green–Kubo {kind}")
    top.grid(True, alpha=0.3)
    I, e = result.integral[:end], result.error[:end]
    bottom.plot(t, I, label="running integral")
    bottom.fill_between(t, I - e, I + e, alpha=0.3, label="± block error")
    bottom.axvline(result.plateau_time, color="k", ls="--", lw=0.8, label="plateau")
    bottom.axhline(result.coefficient, color="C3", lw=0.8,
                   label=f"{result.coefficient:.4g} ± {result.uncertainty:.2g}")
    bottom.set(xlabel="t", ylabel=kind)
    bottom.grid(True, alpha=0.3)
    bottom.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def snippet(result: GreenKubo, *, kind: str, source: str, units: str) -> str:
    key, law = SNIPPET[kind]
    lines = [
        f"# fe2 green-kubo {source}: {kind} = {result.coefficient:.6g} ± {result.uncertainty:.2g} "
        f"(1 sigma, {result.blocks} blocks)",
        f"# {units}; plateau at t = {result.plateau_time:g} ({result.tau:.4g} correlation time)",
    ]
    if law is None:
        lines.append("# (no fe2 phase law takes a viscosity yet)")
    else:
        lines.append(f"law: {law}")
    lines.append(f"{key}: {result.coefficient:.10g}")
    return "\n".join(lines) + "\n"


def run_green_kubo(args: argparse.Namespace) -> int:
    """Compute, write and print the coefficient (rank 0)."""
    volume = number(args.volume, "--volume", positive=True)
    temperature = number(args.temperature, "--temperature", positive=True)
    kB = number(args.kb, "--kb", positive=True)
    blocks = integer(args.blocks, "--blocks", minimum=2)
    window = number(args.window, "--window", positive=True)
    source = Path(args.flux)
    flux, dt, names = read_flux(source, args.columns, args.dt)
    output = Path(args.output)
    clashes = [output / name for name in OUTPUTS if (output / name).exists()]
    if clashes and not args.overwrite:
        raise InputError(f"{clashes[0]} exists; choose another --output or pass --overwrite to replace it")
    factor = prefactor(args.kind, volume=volume, temperature=temperature, kB=kB)
    result = green_kubo(flux, dt, factor, blocks=blocks, window=window, subtract_mean=args.subtract_mean)
    output.mkdir(parents=True, exist_ok=True)
    write_plot(result, output / "green_kubo.png", kind=args.kind)
    table = np.column_stack([result.time, result.acf, result.integral, result.error])
    np.savetxt(output / "green_kubo.csv", table, delimiter=",", header="t,acf,integral,error", comments="", fmt="%.10g")
    require_positive(result)  # a negative coefficient: the plot and table only
    units = (f"V/(k_B T^{KINDS[args.kind]}) with V = {volume:g}, T = {temperature:g}, k_B = {kB:g}")
    (output / "green_kubo.yaml").write_text(snippet(result, kind=args.kind, source=source.name, units=units))
    summary = {
        "kind": args.kind, "coefficient": result.coefficient, "error": result.uncertainty,
        "plateau_time": result.plateau_time, "correlation_time": result.tau, "drift": result.drift,
        "blocks": result.blocks, "samples": result.samples, "dt": dt, "columns": names,
        "prefactor": factor, "volume": volume, "temperature": temperature, "k_B": kB,
    }
    (output / "green_kubo.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{args.kind} {result.coefficient:.6g} ± {result.uncertainty:.2g} (1 sigma, {blocks} blocks of "
          f"{result.samples // blocks} samples; plateau at t = {result.plateau_time:g}, "
          f"correlation time {result.tau:.4g})")
    if abs(result.drift) > 2 * result.uncertainty:
        print(f"warning: the running integral drifts by {result.drift:.3g} beyond the plateau "
              f"(> 2 errors): the plateau is doubtful")
    if result.coefficient < 2 * result.uncertainty:
        print("warning: the coefficient is within 2 errors of zero")
    print(snippet(result, kind=args.kind, source=source.name, units=units), end="")
    print(f"wrote {', '.join(str(output / n) for n in OUTPUTS)}")
    return 0
