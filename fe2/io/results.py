"""Result files of `fe2 homogenize` (JSON) and the table printed on the terminal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

import fe2
from fe2.homogenization.bounds import loewner_gaps
from fe2.homogenization.study import BC_ORDER, HomogenizationResult

TENSOR_KEY = {"elasticity": "C", "conduction": "K"}


def _notation(result: HomogenizationResult) -> dict:
    physics = result.config.physics
    from fe2.rve.physics import make_physics

    labels = list(make_physics(physics, result.dim).labels)
    if physics == "elasticity":
        return {"notation": "mandel", "components": labels}
    return {"notation": "vector (gradient -> flux)", "components": labels}


def effective_record(result: HomogenizationResult, bc: str) -> dict:
    """JSON-ready record of one apparent tensor."""
    eff = result.effective[bc]
    return {
        "fe2_version": fe2.__version__,
        "physics": result.config.physics,
        "dim": result.dim,
        "bc": bc,
        **_notation(result),
        TENSOR_KEY[result.config.physics]: eff.C.tolist(),
        "volume_fractions": result.volume_fractions,
        "hill_mandel_residual": float(eff.hill_mandel_residual.max()),
        "hill_mandel_residual_per_load_case": eff.hill_mandel_residual.tolist(),
        "strain_average_error": float(eff.strain_average_error),
        "dofs": eff.dofs,
        "mesh": result.mesh,
        "degree": result.config.rve.degree,
        "timings": eff.timings,
    }


def bounds_record(result: HomogenizationResult) -> dict:
    """JSON-ready Voigt and Reuss bounds."""
    return {
        "physics": result.config.physics,
        "dim": result.dim,
        **_notation(result),
        "volume_fractions": result.volume_fractions,
        "voigt": result.bounds["voigt"].tolist(),
        "reuss": result.bounds["reuss"].tolist(),
    }


def output_files(bcs: list[str]) -> list[str]:
    """Names of the files a homogenisation with these BCs writes."""
    if len(bcs) == 1:
        return ["effective.json"]
    return [f"effective_{bc}.json" for bc in bcs] + ["bounds.json"]


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (temporary name, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def write_homogenization(result: HomogenizationResult, directory: Path) -> list[Path]:
    """Write the result files; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    bcs = list(result.effective)
    names = output_files(bcs)
    records = [effective_record(result, bc) for bc in bcs]
    if len(bcs) > 1:
        records.append(bounds_record(result))
    paths = [directory / name for name in names]
    for path, record in zip(paths, records, strict=True):
        write_json(path, record)
    if result.mesh_content is not None:
        mesh_path = directory / "rve.msh"
        tmp = mesh_path.with_name(".rve.msh.tmp")
        tmp.write_bytes(result.mesh_content)
        os.replace(tmp, mesh_path)
        paths.append(mesh_path)
    return paths


def _matrix(C: np.ndarray, labels: list[str], indent: str = "  ") -> list[str]:
    head = indent + " " * 6 + "".join(f"{lab:>13}" for lab in labels)
    rows = [indent + f"{lab:>6}" + "".join(f"{v:13.5g}" for v in row) for lab, row in zip(labels, C)]
    return [head, *rows]


def format_report(result: HomogenizationResult) -> str:
    """Human-readable summary: phases, then the tensors from stiffest to softest."""
    labels = _notation(result)["components"]
    key = TENSOR_KEY[result.config.physics]
    fractions = ", ".join(f"{name} {f:.4f}" for name, f in result.volume_fractions.items())
    lines = [
        f"{result.config.physics}, {result.dim}D RVE: {result.mesh['cells']} cells, "
        f"volume fractions: {fractions}",
        f"{key} in {_notation(result)['notation']} notation, components {', '.join(labels)}",
    ]
    bcs = [bc for bc in BC_ORDER if bc in result.effective]
    ordered: list[tuple[str, np.ndarray]] = [("Voigt bound", result.bounds["voigt"])]
    for bc in bcs:
        ordered.append((f"{bc} BC", result.effective[bc].C))
    ordered.append(("Reuss bound", result.bounds["reuss"]))
    for title, C in ordered:
        extra = ""
        if title.endswith(" BC"):
            eff = result.effective[title.split()[0]]
            extra = (
                f"  (dofs {eff.dofs['fluctuation']}, Hill-Mandel residual "
                f"{eff.hill_mandel_residual.max():.1e}, "
                f"{sum(eff.timings.values()):.3f} s)"
            )
        lines += ["", f"{title}{extra}", *_matrix(C, labels)]
    if len(bcs) == 3:
        gaps = loewner_gaps(C for _, C in ordered)
        scale = np.abs(result.bounds["voigt"]).max()
        ok = all(g >= -1e-10 * scale for g in gaps)
        lines += [
            "",
            "Loewner order Voigt >= affine >= periodic >= traction >= Reuss: "
            + ("holds" if ok else "VIOLATED")
            + " (smallest eigenvalues of the differences: "
            + ", ".join(f"{g:.3g}" for g in gaps)
            + ")",
        ]
    return "\n".join(lines)
