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
import tempfile
import time
from pathlib import Path

import dolfinx
import numpy as np
from mpi4py import MPI

import fe2
from fe2.config.run import RunConfig
from fe2.coupling.factory import coupling
from fe2.errors import ComputationError, InputError, collectively
from fe2.io.macro_output import MacroOutput
from fe2.io.probes import RveProbes
from fe2.io.progress import RunStatus
from fe2.macro.lattice_stability import StabilityMonitor
from fe2.macro.checkpoint import (
    check_compatible, checkpoint_root, latest_checkpoint, read_meta, restore_checkpoint, write_checkpoint,
)
from fe2.macro.problem import Dirichlet, MacroProblem, Traction
from fe2.macro.stepping import StepRecord, run_load_steps
from fe2.meshing.macro import MacroMesh, generate_macro_mesh, read_macro_mesh
from fe2.rve.micro_solver import NewtonOptions
from fe2.rve.physics import make_physics

log = logging.getLogger(__name__)

COMPONENTS = {"x": 0, "y": 1, "z": 2, "all": None}


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
    monitor = StabilityMonitor(config, comm, macro.dim)  # a lattice of the wrong dimension: InputError
    source = coupling(config, macro, physics, comm)
    if comm.rank == 0:
        log.info("coupling: %s (%s)", source.mode, source.reason)
    solver = config.solver
    problem = MacroProblem(
        macro.mesh, physics, config.macro.degree, source.make_points,
        dirichlet=dirichlet, tractions=tractions, body_force=body,
        newton=NewtonOptions(**solver.newton.model_dump()), petsc_options=solver.petsc_options,
    )
    monitor.locate(problem.forms.quadrature_coordinates().reshape(problem.num_points, macro.dim))
    targets = config.load_factors
    points = comm.allreduce(problem.num_points, op=MPI.SUM)
    cells = macro.mesh.topology.index_map(macro.dim).size_global
    dofs = problem.V.dofmap.index_map.size_global * problem.V.dofmap.index_map_bs
    if comm.rank == 0:
        log.info("macro mesh: %d cells, %d dofs, %d quadrature points on %d rank(s); %d load steps",
                 cells, dofs, points, comm.size, len(targets))
    output.mkdir(parents=True, exist_ok=True)
    resumed = _resume(config, problem, output, restart)
    monitor.restore(resumed.get("lattice_stability") if resumed else None)
    done = resumed["step"] if resumed else 0
    field_files = resumed["field_files"] if resumed else []
    fields_file = None if done == len(targets) else ("fields.xdmf" if not done else f"fields_from_step_{done + 1}.xdmf")
    probes = None
    if fields_file is None and comm.rank == 0:
        log.info("restart: every load step is done already; nothing to compute")
    if config.output.probes and fields_file is not None:
        suffix = "" if not done else f"_from_step_{done + 1}"
        probes = RveProbes(problem, config.output.probes, output, suffix)  # errors: the same on all ranks
    writer = MacroOutput(
        problem, output, fields_every=config.output.fields_every, num_steps=len(targets),
        fields_file=fields_file, rows=resumed["history"] if resumed else None, probes=probes,
    )
    if fields_file is not None:
        field_files = [*field_files, fields_file]
    every = config.checkpoint.every
    status = RunStatus.attach(problem, len(targets), done, start)  # live line on a terminal

    def progress(record: StepRecord) -> None:
        if status is not None:
            status.step_done(record.step)
        stop = monitor.check(record, problem.points.point_fields)
        writer.write_step(record, fields=stop)
        if every and (record.step % every == 0 or record.step == len(targets)):
            write_checkpoint(problem, output, {
                "step": record.step, "load_factor": record.load_factor,
                "completed_targets": targets[: record.step], "history": writer.rows,
                "field_files": field_files, "study": config.study_identity(),
                "lattice_stability": monitor.state(),
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
        if stop:
            raise monitor.error()

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
    if monitor.active:
        summary["lattice_stability"] = monitor.summary()
    stats = problem.points.statistics
    if stats:  # RVE points: totals over all ranks
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
    writer.write_summary(summary)
    writer.close()
    if status is not None:
        status.finish()
    problem.destroy()
    if failure is not None:
        raise failure
    return summary
