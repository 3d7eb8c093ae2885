"""Result files of `fe2 homogenize` (JSON, CSV, XDMF) and the tables printed on the terminal."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

import fe2
from fe2.homogenization.bounds import loewner_gaps
from fe2.homogenization.engineering import format_tensor_report, tensor_report
from fe2.homogenization.load_path import LoadPathResult
from fe2.homogenization.study import BC_ORDER, HomogenizationResult
from fe2.rve.physics import make_physics
from fe2.tensors import MANDEL_PAIRS, from_mandel

TENSOR_KEY = {"elasticity": "C", "finite_strain": "A", "conduction": "K"}
#: Column prefixes of (strain, stress) per physics in load_path.csv.
CSV_PREFIX = {"elasticity": ("E", "S"), "finite_strain": ("F", "P"), "conduction": ("G", "Q")}
NOTATION = {
    "elasticity": "mandel",
    "finite_strain": "row-major F (tangent dP/dF)",
    "conduction": "vector (gradient -> flux)",
}


def _notation(result: HomogenizationResult) -> dict:
    labels = list(make_physics(result.config.physics, result.dim).labels)
    return {"notation": NOTATION[result.config.physics], "components": labels}


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
        **tensor_report(result.config.physics, eff.C, result.dim, expect_isotropic=result.expected_isotropic),
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


def _suffix(bc: str, bcs: list[str]) -> str:
    return "" if len(bcs) == 1 else f"_{bc}"


def output_files(bcs: list[str], *, load_path: bool = False) -> list[str]:
    """Names of the files a homogenisation with these BCs writes (besides rve.msh)."""
    if load_path:
        return [
            f"{stem}{_suffix(bc, bcs)}.{ext}"
            for bc in bcs
            for stem, ext in (("load_path", "csv"), ("load_path", "json"), ("rve_fields", "xdmf"))
        ]
    if len(bcs) == 1:
        return ["effective.json"]
    return [f"effective_{bc}.json" for bc in bcs] + ["bounds.json"]


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (temporary name, then rename)."""
    _atomic(path, json.dumps(data, indent=2) + "\n")


def _tensor_components(physics: str, vector: np.ndarray, dim: int) -> np.ndarray:
    """Strain/stress vector -> plain tensor components (Mandel shear scaling removed)."""
    if physics == "elasticity":
        matrix = from_mandel(vector)
        return np.array([matrix[i, j] for i, j in MANDEL_PAIRS[dim]])
    return vector


def load_path_csv(result: HomogenizationResult, path_result: LoadPathResult) -> str:
    """One row per step: strain and stress (tensor components), tangent, Newton work."""
    physics, dim = result.config.physics, result.dim
    labels = list(make_physics(physics, dim).labels)
    e, s = CSV_PREFIX[physics]
    key = TENSOR_KEY[physics]
    header = (
        ["step"] + [f"{e}{c}" for c in labels] + [f"{s}{c}" for c in labels]
        + [f"{key}_{a}_{b}" for a in labels for b in labels]
        + ["newton_iterations", "substeps", "stress_controlled", "control_iterations", "stress_residual",
           "hill_mandel_residual", "max_equivalent_plastic_strain", "seconds"]
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    r = path_result
    for k in range(len(r.strains)):
        writer.writerow(
            [k + 1]
            + [repr(float(v)) for v in _tensor_components(physics, r.strains[k], dim)]
            + [repr(float(v)) for v in _tensor_components(physics, r.stresses[k], dim)]
            + [repr(float(v)) for v in r.tangents[k].ravel()]
            + [r.iterations[k], r.substeps[k], " ".join(np.array(labels)[r.stress_controlled[k]]),
               r.control_iterations[k], f"{r.stress_residual[k]:.3e}", f"{r.hill_mandel[k]:.3e}",
               repr(r.max_plastic_strain[k]), f"{r.seconds[k]:.4f}"]
        )
    return out.getvalue()


def load_path_record(result: HomogenizationResult, path_result: LoadPathResult) -> dict:
    """JSON summary of a load path: the final state and the Newton work."""
    r = path_result
    return {
        "fe2_version": fe2.__version__,
        "physics": result.config.physics,
        "dim": result.dim,
        "bc": r.bc,
        **_notation(result),
        "steps": len(r.strains),
        "final_strain": r.strains[-1].tolist(),
        "final_stress": r.stresses[-1].tolist(),
        TENSOR_KEY[result.config.physics]: r.tangents[-1].tolist(),
        "newton_iterations": int(sum(r.iterations)),
        "substeps": int(sum(r.substeps)),
        "control_iterations": int(sum(r.control_iterations)),
        "max_hill_mandel_residual": float(max(r.hill_mandel)),
        "volume_fractions": result.volume_fractions,
        "mesh": result.mesh,
        "degree": result.config.rve.degree,
        "seconds": float(sum(r.seconds)),
        "fields_at_steps": [int(t) for t, _ in r.snapshots],
    }


def write_homogenization(result: HomogenizationResult, directory: Path) -> list[Path]:
    """Write the result files; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    if result.load_paths:
        bcs = list(result.load_paths)
        for bc, path_result in result.load_paths.items():
            suffix = _suffix(bc, bcs)
            paths.append(directory / f"load_path{suffix}.csv")
            _atomic(paths[-1], load_path_csv(result, path_result))
            paths.append(directory / f"load_path{suffix}.json")
            write_json(paths[-1], load_path_record(result, path_result))
            if path_result.snapshots:
                paths.append(directory / f"rve_fields{suffix}.xdmf")
                result.fields.write(paths[-1], path_result.snapshots)
    else:
        bcs = list(result.effective)
        records = [effective_record(result, bc) for bc in bcs]
        if len(bcs) > 1:
            records.append(bounds_record(result))
        paths = [directory / name for name in output_files(bcs)]
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


def format_load_paths(result: HomogenizationResult) -> str:
    """Per BC, one line per step: strain and stress components, Newton iterations."""
    physics, dim = result.config.physics, result.dim
    labels = list(make_physics(physics, dim).labels)
    e, s = CSV_PREFIX[physics]
    fractions = ", ".join(f"{name} {f:.4f}" for name, f in result.volume_fractions.items())
    lines = [f"{physics}, {dim}D RVE: {result.mesh['cells']} cells, volume fractions: {fractions}"]
    for bc, r in result.load_paths.items():
        mixed = any(mask.any() for mask in r.stress_controlled)
        lines += ["", f"{bc} BC load path ({sum(r.iterations)} Newton iterations, {sum(r.seconds):.2f} s)"]
        if mixed:
            lines.append("* prescribed stress (its strain is free); ctrl: stress-control iterations")
        lines.append(
            f"{'step':>5}" + "".join(f"{e + c:>11}" for c in labels) + "".join(f"{s + c:>12}" for c in labels)
            + f"{'iter':>6}" + (f"{'ctrl':>5}" if mixed else "") + f"{'max p':>11}"
        )
        for k in range(len(r.strains)):
            strain = _tensor_components(physics, r.strains[k], dim)
            stress = _tensor_components(physics, r.stresses[k], dim)
            marks = ["*" if m else " " for m in r.stress_controlled[k]]
            lines.append(
                f"{k + 1:>5}" + "".join(f"{v:11.4g}" for v in strain)
                + "".join(f"{v:11.4g}{m}" for v, m in zip(stress, marks))
                + f"{r.iterations[k]:>6}" + (f"{r.control_iterations[k]:>5}" if mixed else "")
                + f"{r.max_plastic_strain[k]:11.3g}"
            )
    return "\n".join(lines)


def format_report(result: HomogenizationResult) -> str:
    """Human-readable summary: phases, then the tensors from stiffest to softest."""
    if result.load_paths:
        return format_load_paths(result)
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
    for bc in bcs:
        report = tensor_report(
            result.config.physics, result.effective[bc].C, result.dim, expect_isotropic=result.expected_isotropic
        )
        lines += ["", f"{bc} BC:", *format_tensor_report(report, result.dim)]
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
