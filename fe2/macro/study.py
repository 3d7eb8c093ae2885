"""`fe2 run`: a macro study from its config -- mesh, material points, supports, loads, steps.

Coupling: a closed-form law (``material.law``), closed-form laws per macro cell tag
(``material.phases``), or FE² (``material.rve``). For FE², when every RVE phase is linear and
the strain small, the effective tensor is computed once and used at every point
(hierarchical); otherwise every macro point owns an RVE, solved at every macro Newton
iteration (concurrent). The log says which mode ran and why.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dolfinx
import numpy as np
from mpi4py import MPI

import fe2
from fe2.config.run import RunConfig
from fe2.coupling.balanced_pool import BalancedRvePool
from fe2.errors import ComputationError, InputError, collectively
from fe2.homogenization.study import check_phase_tags, load_rve_mesh
from fe2.io.macro_output import MacroOutput
from fe2.io.probes import RveProbes
from fe2.io.progress import RunStatus
from fe2.macro.checkpoint import (
    check_compatible, checkpoint_root, latest_checkpoint, read_meta, restore_checkpoint, write_checkpoint,
)
from fe2.macro.problem import Dirichlet, MacroProblem, Traction
from fe2.macro.scale_separation import ScaleSeparationMonitor
from fe2.macro.stepping import StepRecord, run_load_steps
from fe2.material_point import MaterialPoints
from fe2.materials import AnisotropicLinearElastic
from fe2.materials.points import LawPoints, PhasePoints
from fe2.meshing.macro import MacroMesh, generate_macro_mesh, read_macro_mesh
from fe2.rve.effective import effective_tensor
from fe2.rve.model import RveModel
from fe2.rve.newton import NewtonOptions, RveSolver
from fe2.rve.physics import Physics, make_physics
from fe2.rve.pool import RvePool

log = logging.getLogger(__name__)

COMPONENTS = {"x": 0, "y": 1, "z": 2, "all": None}


@dataclass
class Coupling:
    """How the macro points get their stress: the factory and a description for the log."""

    make_points: Callable[[int], MaterialPoints]
    mode: str
    reason: str


def load_macro_mesh(config: RunConfig, comm: MPI.Comm, output: Path) -> MacroMesh:
    """Read, or generate (rank 0, saved as output/macro.msh) and read, the macro mesh."""
    source = config.macro.mesh
    try:
        if source.file is not None:
            return read_macro_mesh(source.file, comm)
        with tempfile.TemporaryDirectory(prefix="fe2-") as tmp:
            mesh = generate_macro_mesh(source.generate, comm, directory=tmp, filename="macro.msh")
            if comm.rank == 0:
                output.mkdir(parents=True, exist_ok=True)
                shutil.copy(Path(tmp) / "macro.msh", output / "macro.msh")
            return mesh
    except (ValueError, OSError, RuntimeError) as exc:
        key = "macro.mesh.file" if source.file is not None else "macro.mesh.generate"
        raise InputError(f"{key}: {exc}") from None


def _facets(macro: MacroMesh, selector, key: str) -> np.ndarray:
    """Local boundary facets of a config selector (named group or plane); none anywhere -> error."""
    mesh = macro.mesh
    if selector.boundary is not None:
        if selector.boundary not in macro.boundaries:
            raise InputError(
                f"{key}.boundary: the mesh has no boundary {selector.boundary!r} "
                f"(it has {sorted(macro.boundaries)})"
            )
        facets = macro.facets(selector.boundary)
    else:
        axis = "xyz".index(selector.plane.axis)
        if axis >= macro.dim:
            raise InputError(f"{key}.plane.axis: {selector.plane.axis!r} in a {macro.dim}D mesh")
        x = mesh.geometry.x
        extent = mesh.comm.allreduce(float(np.ptp(x, axis=0).max()) if len(x) else 0.0, op=MPI.MAX)
        value = selector.plane.value
        facets = dolfinx.mesh.locate_entities_boundary(
            mesh, macro.dim - 1, lambda p: np.abs(p[axis] - value) <= 1e-8 * extent
        )
    if mesh.comm.allreduce(len(facets), op=MPI.SUM) == 0:
        raise InputError(f"{key}: selects no boundary facet of the mesh")
    return facets.astype(np.int32)


def _vector(values, dim: int, key: str) -> np.ndarray:
    if len(values) != dim:
        raise InputError(f"{key}: expected {dim} components, got {len(values)}")
    return np.asarray(values, dtype=float)


def supports_and_loads(config: RunConfig, macro: MacroMesh) -> tuple[list[Dirichlet], list[Traction], np.ndarray | None]:
    dim = macro.dim
    dirichlet = []
    for i, bc in enumerate(config.boundary_conditions):
        key = f"boundary_conditions[{i}]"
        component = COMPONENTS[bc.component]
        if component is not None and component >= dim:
            raise InputError(f"{key}.component: {bc.component!r} in a {dim}D mesh")
        dirichlet.append(Dirichlet(bc.label, _facets(macro, bc, key), component, bc.value))
    tractions = [
        Traction(t.label, _facets(macro, t, f"loads.tractions[{i}]"), _vector(t.traction, dim, f"loads.tractions[{i}].traction"))
        for i, t in enumerate(config.loads.tractions)
    ]
    body = config.loads.body_force
    return dirichlet, tractions, (None if body is None else _vector(body, dim, "loads.body_force"))


def coupling(config: RunConfig, macro: MacroMesh, physics: Physics, comm: MPI.Comm) -> Coupling:
    """The material-point factory of the config's material source (collective)."""
    material, dim, n = config.material, macro.dim, physics.n_comp
    if material.law is not None:
        law = material.law.material()
        return Coupling(lambda m: LawPoints(law, m, dim=dim, n_comp=n), "law", f"closed-form {material.law.law} law")
    if material.phases is not None:
        laws = {p.tag: p.material() for p in material.phases.values()}
        tags = macro.cell_tags
        cells = macro.mesh.topology.index_map(dim).size_local
        cell_tag = np.zeros(cells, dtype=np.int32)
        cell_tag[tags.indices[tags.indices < cells]] = tags.values[tags.indices < cells]
        missing = sorted(set(np.unique(cell_tag).tolist()) - set(laws))
        if comm.allreduce(len(missing), op=MPI.MAX):
            raise InputError(f"material.phases: macro cells with tags {missing} have no law")
        return Coupling(
            lambda m: PhasePoints(laws, np.repeat(cell_tag, m // max(cells, 1)), dim=dim, n_comp=n),
            "phases", "closed-form laws per macro cell tag",
        )
    rve = material.rve
    rve_mesh, _ = load_rve_mesh(rve.mesh, comm, key="material.rve.mesh")
    collectively(comm, lambda: check_phase_tags(rve.phases, rve_mesh, key="material.rve.phases"), errors=(InputError,))
    laws = {p.tag: p.material() for p in rve.phases.values()}
    if rve_mesh.dim != dim:
        raise InputError(f"material.rve.mesh: a {rve_mesh.dim}D RVE for a {dim}D macro mesh")
    model = RveModel(rve_mesh.mesh, rve_mesh.cell_tags, physics, laws, degree=rve.degree)
    nonlinear = [name for name, p in rve.phases.items() if not laws[p.tag].is_linear]
    linear_small = not nonlinear and physics.name == "elasticity"
    mode = rve.coupling
    if mode == "auto":
        mode = "hierarchical" if linear_small else "concurrent"
        why = (
            "every RVE phase is linear at small strain: the effective tensor is computed once"
            if linear_small
            else (f"RVE phases {nonlinear} are nonlinear" if nonlinear else "finite strain")
            + ": an RVE solve per macro point and Newton iteration"
        )
    elif mode == "hierarchical":
        if not linear_small:
            raise InputError("material.rve.coupling: 'hierarchical' needs linear RVE phases at small strain")
        why = "requested; the effective tensor is computed once"
    else:
        why = "requested: an RVE solve per macro point and Newton iteration"
    if mode == "hierarchical":
        C = comm.bcast(
            effective_tensor(model, rve.bc, solver_options=rve.solver.petsc_options).C if comm.rank == 0 else None
        )
        law = AnisotropicLinearElastic(C)
        return Coupling(lambda m: LawPoints(law, m, dim=dim, n_comp=n), "hierarchical", why)
    newton = NewtonOptions(**rve.solver.newton.model_dump())
    balancing = config.parallel.balancing

    def make(m: int) -> MaterialPoints:
        solver = RveSolver(model, rve.bc, newton=newton, petsc_options=rve.solver.petsc_options)
        if balancing == "off":
            return RvePool(solver, m)
        return BalancedRvePool(solver, m, comm, equal_counts=balancing == "static")

    return Coupling(make, "concurrent", f"{why}; load balancing {balancing}")


def _reactions(row: dict) -> dict[str, list[float]]:
    """Reaction forces per boundary from a history row (columns reaction_<name>_<axis>)."""
    forces: dict[str, list[float]] = {}
    for key, value in row.items():
        if key.startswith("reaction_"):
            forces.setdefault(key[len("reaction_"):-2], []).append(float(value))
    return forces


def _resume(config: RunConfig, problem: MacroProblem, output: Path, restart: bool) -> dict | None:
    """With ``restart``, restore the newest complete checkpoint in ``output`` and return its
    meta data; without (or with none), clear the restart files of earlier runs (collective)."""
    comm = problem.comm
    path = comm.bcast(latest_checkpoint(output) if comm.rank == 0 else None)
    if restart and path is not None:
        meta = read_meta(path, comm)
        check_compatible(meta, config.study_identity(), config.load_factors, path)
        restore_checkpoint(problem, path, meta)
        if comm.rank == 0:
            log.info("restart: continuing after step %d (load factor %.6g) from %s, written by %d rank(s)",
                     meta["step"], meta["load_factor"], path, meta["ranks"])
        return meta
    if comm.rank == 0:
        if restart:
            log.info("restart: no checkpoint in %s; starting from the beginning", output)
        shutil.rmtree(checkpoint_root(output), ignore_errors=True)
        for stale in output.glob("*_from_step_*"):  # fields of restarted runs
            stale.unlink()
    comm.barrier()
    return None


def run_study(config: RunConfig, comm: MPI.Comm, output: Path, *, restart: bool = False) -> dict:
    """Run a macro study, writing into ``output``; returns the summary (collective).

    ``restart``: continue from the newest complete checkpoint in ``output`` (if any), on any
    number of ranks.
    """
    start = time.perf_counter()
    macro = load_macro_mesh(config, comm, output)
    physics = make_physics(config.physics, macro.dim)
    dirichlet, tractions, body = collectively(comm, lambda: supports_and_loads(config, macro), errors=(InputError,))
    source = coupling(config, macro, physics, comm)
    if comm.rank == 0:
        log.info("coupling: %s (%s)", source.mode, source.reason)
    solver = config.solver
    problem = MacroProblem(
        macro.mesh, physics, config.macro.degree, source.make_points,
        dirichlet=dirichlet, tractions=tractions, body_force=body,
        newton=NewtonOptions(**solver.newton.model_dump()), petsc_options=solver.petsc_options,
    )
    targets = config.load_factors
    points = comm.allreduce(problem.num_points, op=MPI.SUM)
    cells = macro.mesh.topology.index_map(macro.dim).size_global
    dofs = problem.V.dofmap.index_map.size_global * problem.V.dofmap.index_map_bs
    if comm.rank == 0:
        log.info("macro mesh: %d cells, %d dofs, %d quadrature points on %d rank(s); %d load steps",
                 cells, dofs, points, comm.size, len(targets))
    output.mkdir(parents=True, exist_ok=True)
    resumed = _resume(config, problem, output, restart)
    done = resumed["step"] if resumed else 0
    field_files = resumed["field_files"] if resumed else []
    fields_file = None if done == len(targets) else ("fields.xdmf" if not done else f"fields_from_step_{done + 1}.xdmf")
    probes = None
    if fields_file is None and comm.rank == 0:
        log.info("restart: every load step is done already; nothing to compute")
    if config.output.probes and fields_file is not None:
        suffix = "" if not done else f"_from_step_{done + 1}"
        probes = RveProbes(problem, config.output.probes, output, suffix)  # errors: the same on all ranks
    separation = None
    if (scale := config.output.scale_separation) is not None:
        separation = ScaleSeparationMonitor(problem, **scale.model_dump())
    writer = MacroOutput(
        problem, output, fields_every=config.output.fields_every, num_steps=len(targets),
        fields_file=fields_file, rows=resumed["history"] if resumed else None, probes=probes,
        monitors=[separation] if separation is not None else [],
    )
    if fields_file is not None:
        field_files = [*field_files, fields_file]
    every = config.checkpoint.every
    status = RunStatus.attach(problem, len(targets), done, start)  # live line on a terminal

    def progress(record: StepRecord) -> None:
        if status is not None:
            status.step_done(record.step)
        writer.write_step(record)
        if every and (record.step % every == 0 or record.step == len(targets)):
            write_checkpoint(problem, output, {
                "step": record.step, "load_factor": record.load_factor,
                "completed_targets": targets[: record.step], "history": writer.rows,
                "field_files": field_files, "study": config.study_identity(),
            })
        if comm.rank == 0:
            elapsed = time.perf_counter() - start
            remaining = elapsed / (record.step - done) * (len(targets) - record.step)
            log.info(
                "step %d/%d  load %.4g  Newton %d (|R| %.2e)%s  RVE solves %d, failures %d  "
                "imbalance %.2f%s  %.1f s  elapsed %.0f s  ETA %.0f s",
                record.step, len(targets), record.load_factor, record.newton_iterations,
                record.residual_norm,
                f"  cut-backs {record.cutbacks}" if record.cutbacks else "",
                record.rve_solves, record.rve_failures, record.imbalance,
                f" (moved {record.moved_points})" if record.moved_points else "",
                record.seconds, elapsed, remaining,
            )

    summary = {
        "fe2_version": fe2.__version__,
        "physics": config.physics,
        "coupling": {"mode": source.mode, "reason": source.reason},
        "ranks": comm.size,
        "macro": {"cells": cells, "dofs": dofs, "quadrature_points": points, "degree": config.macro.degree},
        "steps": len(targets),
        "field_files": field_files,
    }
    if resumed:
        summary["restarted_after_step"] = done
    if probes is not None:
        summary["probes"] = probes.located
    failure: ComputationError | None = None
    try:
        run_load_steps(
            problem, targets, max_cutbacks=solver.max_cutbacks, on_step=progress,
            rebalance=config.parallel.balancing == "dynamic", start=done,
        )
        summary["status"] = "completed"
    except ComputationError as exc:  # raised on every rank: the summary below is collective
        summary.update(status="failed", error=str(exc))
        failure = exc
    summary.update(
        completed_steps=len(writer.rows),
        newton_iterations=int(sum(int(r["newton_iterations"]) for r in writer.rows)),
        rve_solves=int(sum(int(r["rve_solves"]) for r in writer.rows)),
        rve_failures=int(sum(int(r["rve_failures"]) for r in writer.rows)),
        cutbacks=int(sum(int(r["cutbacks"]) for r in writer.rows)),
        final_reactions=_reactions(writer.rows[-1]) if writer.rows else {},
        wall_time=time.perf_counter() - start,
    )
    stats = getattr(problem.points, "statistics", None)
    if stats is not None:  # RVE pool: totals over all ranks
        totals = {k: comm.allreduce(v, op=MPI.SUM) for k, v in stats.items()}
        rank_seconds = comm.allgather(stats["seconds"])
        solves = max(totals["solves"], 1)
        summary["rve"] = {
            "solves": totals["solves"],
            "newton_iterations": totals["newton_iterations"],
            "seconds": totals["seconds"],
            "mean_seconds_per_solve": totals["seconds"] / solves,
            "mean_newton_iterations": totals["newton_iterations"] / solves,
            "elastic_shortcuts": totals["elastic_shortcuts"],
            "seconds_per_rank": rank_seconds,
            "work_imbalance": max(rank_seconds) / (sum(rank_seconds) / len(rank_seconds))
            if sum(rank_seconds) > 0 else 1.0,
        }
    if separation is not None:
        summary["scale_separation"] = separation.summary(writer.rows)
        separation.destroy()
    writer.write_summary(summary)
    writer.close()
    if status is not None:
        status.finish()
    problem.destroy()
    if failure is not None:
        raise failure
    return summary
