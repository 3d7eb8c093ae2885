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
from fe2.physics import Physics, make_physics

def _physics(result: HomogenizationResult) -> Physics:
    return result.physics or make_physics(result.config.physics, result.dim)


def _tensor_report(result: HomogenizationResult, C: np.ndarray) -> dict:
    """Engineering constants and symmetry of an effective tensor (of its gradient block: a
    temperature column dq/dT of a k(T) phase is not part of the conductivity)."""
    return tensor_report(_physics(result), C, expect_isotropic=result.expected_isotropic)


def _notation(result: HomogenizationResult) -> dict:
    physics = _physics(result)
    return {"notation": physics.notation, "components": list(physics.labels)}


def effective_record(result: HomogenizationResult, bc: str) -> dict:
    """JSON-ready record of one apparent tensor."""
    eff = result.effective[bc]
    return {
        "fe2_version": fe2.__version__,
        "physics": result.config.physics,
        "dim": result.dim,
        "bc": bc,
        **_notation(result),
        _physics(result).tensor_key: eff.C.tolist(),
        "volume_fractions": result.volume_fractions,
        **_tensor_report(result, eff.C),
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


def load_path_csv(result: HomogenizationResult, path_result: LoadPathResult) -> str:
    """One row per step: strain and stress (tensor components), tangent, Newton work."""
    physics = _physics(result)
    labels = list(physics.labels)
    e, s = physics.csv_prefix
    key = physics.tensor_key
    full = path_result.full_stress_columns(physics)  # S33 and von Mises where known
    header = (
        ["step"] + [f"{e}{c}" for c in labels] + [f"{s}{c}" for c in labels] + list(full)
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
            + [repr(float(v)) for v in physics.tensor_components(r.strains[k])]
            + [repr(float(v)) for v in physics.tensor_components(r.stresses[k])]
            + [repr(float(values[k])) for values in full.values()]
            + [repr(float(v)) for v in r.tangents[k].ravel()]
            + [r.iterations[k], r.substeps[k], " ".join(np.array(labels)[r.stress_controlled[k]]),
               r.control_iterations[k], f"{r.stress_residual[k]:.3e}", f"{r.hill_mandel[k]:.3e}",
               repr(r.max_plastic_strain[k]), f"{r.seconds[k]:.4f}"]
        )
    return out.getvalue()


def load_path_record(result: HomogenizationResult, path_result: LoadPathResult) -> dict:
    """JSON summary of a load path: the final state and the Newton work; where the RVE has
    the out-of-plane stress, its value and the von Mises stress per step."""
    r = path_result
    full = r.full_stress_columns(_physics(result))
    return {
        "fe2_version": fe2.__version__,
        "physics": result.config.physics,
        "dim": result.dim,
        "bc": r.bc,
        **_notation(result),
        "steps": len(r.strains),
        "final_strain": r.strains[-1].tolist(),
        "final_stress": r.stresses[-1].tolist(),
        _physics(result).tensor_key: r.tangents[-1].tolist(),
        "newton_iterations": int(sum(r.iterations)),
        "substeps": int(sum(r.substeps)),
        "control_iterations": int(sum(r.control_iterations)),
        "max_hill_mandel_residual": float(max(r.hill_mandel)),
        "volume_fractions": result.volume_fractions,
        "mesh": result.mesh,
        "degree": result.config.rve.degree,
        "seconds": float(sum(r.seconds)),
        "fields_at_steps": [int(t) for t, _ in r.snapshots],
        **({"full_stress_per_step": {name: values.tolist() for name, values in full.items()}} if full else {}),
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
        names = output_files(bcs)
        if len(bcs) > 1 and result.bounds:
            records.append(bounds_record(result))
        elif len(bcs) > 1:  # no bounds for these phases (see study.phase_bounds)
            names.remove("bounds.json")
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


def format_load_paths(result: HomogenizationResult) -> str:
    """Per BC, one line per step: strain and stress components, Newton iterations."""
    physics, dim = _physics(result), result.dim
    labels = list(physics.labels)
    e, s = physics.csv_prefix
    fractions = ", ".join(f"{name} {f:.4f}" for name, f in result.volume_fractions.items())
    lines = [f"{physics.name}, {dim}D RVE: {result.mesh['cells']} cells, volume fractions: {fractions}"]
    for bc, r in result.load_paths.items():
        mixed = any(mask.any() for mask in r.stress_controlled)
        lines += ["", f"{bc} BC load path ({sum(r.iterations)} Newton iterations, {sum(r.seconds):.2f} s)"]
        if mixed:
            lines.append("* prescribed stress (its strain is free); ctrl: stress-control iterations")
        full = r.full_stress_columns(physics)  # S33 and von Mises where known
        lines.append(
            f"{'step':>5}" + "".join(f"{e + c:>11}" for c in labels) + "".join(f"{s + c:>12}" for c in labels)
            + "".join(f"{name.replace('_', ' '):>11}" for name in full)
            + f"{'iter':>6}" + (f"{'ctrl':>5}" if mixed else "") + f"{'max p':>11}"
        )
        for k in range(len(r.strains)):
            strain = physics.tensor_components(r.strains[k])
            stress = physics.tensor_components(r.stresses[k])
            marks = ["*" if m else " " for m in r.stress_controlled[k]]
            lines.append(
                f"{k + 1:>5}" + "".join(f"{v:11.4g}" for v in strain)
                + "".join(f"{v:11.4g}{m}" for v, m in zip(stress, marks))
                + "".join(f"{values[k]:11.4g}" for values in full.values())
                + f"{r.iterations[k]:>6}" + (f"{r.control_iterations[k]:>5}" if mixed else "")
                + f"{r.max_plastic_strain[k]:11.3g}"
            )
    return "\n".join(lines)


def format_report(result: HomogenizationResult) -> str:
    """Human-readable summary: phases, then the tensors from stiffest to softest."""
    if result.load_paths:
        return format_load_paths(result)
    labels = _notation(result)["components"]
    key = _physics(result).tensor_key
    fractions = ", ".join(f"{name} {f:.4f}" for name, f in result.volume_fractions.items())
    lines = [
        f"{result.config.physics}, {result.dim}D RVE: {result.mesh['cells']} cells, "
        f"volume fractions: {fractions}",
        f"{key} in {_notation(result)['notation']} notation, components {', '.join(labels)}",
    ]
    bcs = [bc for bc in BC_ORDER if bc in result.effective]
    ordered: list[tuple[str, np.ndarray]] = [("Voigt bound", result.bounds["voigt"])] if result.bounds else []
    for bc in bcs:
        ordered.append((f"{bc} BC", result.effective[bc].C))
    if result.bounds:
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
        report = _tensor_report(result, result.effective[bc].C)
        lines += ["", f"{bc} BC:", *format_tensor_report(report, _physics(result).tensor_dim)]
    if len(bcs) == 3 and result.bounds:
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
