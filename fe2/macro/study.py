"""`fe2 run`: a macro study from its config -- mesh, material points, supports, loads, steps.

Coupling: a closed-form law (``material.law``), closed-form laws per macro cell tag
(``material.phases``), or FE² (``material.rve``). For FE², when every RVE phase is linear and
the strain small, the effective tensor is computed once and used at every point
(hierarchical); otherwise every macro point owns an RVE, solved at every macro Newton
iteration (concurrent). The log says which mode ran and why.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

import fe2
from fe2.config.run import RunConfig
from fe2.coupling.factory import Coupling, coupling
from fe2.errors import ComputationError, Fe2Error, InputError, Interrupted, ResourceError, collectively
from fe2.io.macro_output import MacroOutput
from fe2.io.probes import RveProbes
from fe2.io.progress import RunStatus
from fe2.macro.checkpoint import study_identity, write_checkpoint
from fe2.macro.lattice_stability import StabilityMonitor
from fe2.macro.problem import MacroProblem
from fe2.macro.resume import checkpoint_to_resume, existing_summary, start_writing
from fe2.macro.scale_separation import ScaleSeparationMonitor
from fe2.macro.stepping import StepRecord, run_load_steps
from fe2.macro.supports import supports_and_loads
from fe2.meshing.macro import MacroMesh, generate_macro_mesh, read_macro_mesh
from fe2.rve.micro_solver import NewtonOptions
from fe2.physics import Physics, make_physics
from fe2.rve.summary import format_rve_summary
from fe2.stop import StopRequest

log = logging.getLogger(__name__)

def load_macro_mesh(config: RunConfig, comm: MPI.Comm) -> tuple[MacroMesh, bytes | None]:
    """Read, or generate (rank 0, in a temporary directory) and read, the macro mesh; returns
    it and, if generated, the content of its .msh file (on rank 0; written to the output only
    when the run starts writing)."""
    source = config.macro.mesh
    try:
        if source.file is not None:
            return read_macro_mesh(source.file, comm), None
        with tempfile.TemporaryDirectory(prefix="fe2-") as tmp:
            mesh = generate_macro_mesh(source.generate, comm, directory=tmp, filename="macro.msh")
            content = (Path(tmp) / "macro.msh").read_bytes() if comm.rank == 0 else None
            return mesh, content
    except (ValueError, OSError, RuntimeError) as exc:
        key = "macro.mesh.file" if source.file is not None else "macro.mesh.generate"
        raise InputError(f"{key}: {exc}") from None


def material_laws(config: RunConfig) -> list:
    """Every phase law of the config's material source (they decide optional components of
    the physics, e.g. the temperature)."""
    material = config.material
    phases = [material.law] if material.law is not None else []
    phases += list((material.phases or {}).values())
    phases += list(material.rve.phases.values()) if material.rve is not None else []
    return [p.material() for p in phases]


def _reactions(row: dict, problem: MacroProblem) -> dict[str, list[float]]:
    """What the supports exert per Dirichlet boundary (reaction forces, heat flows) from a
    history row (the columns the physics names)."""
    columns = {name: problem.physics.history_columns(name)[0] for name in problem.reaction_dofs}
    return {name: [float(row[c]) for c in keys] for name, keys in columns.items() if all(c in row for c in keys)}


def _seconds_by_part(timings: dict[str, float], comm: MPI.Comm) -> dict[str, float]:
    """Seconds of the RVE work per part of the solve, summed over ranks (collective)."""
    parts: dict[str, float] = {}
    for rank_timings in comm.allgather(dict(timings)):
        for part, seconds in rank_timings.items():
            parts[part] = parts.get(part, 0.0) + seconds
    return dict(sorted(parts.items(), key=lambda item: -item[1]))


def _log_profile(rve: dict) -> None:
    """Log where the RVE time went: the parts as shares of all RVE seconds (parts may nest)."""
    if rve["seconds"] > 0 and rve["seconds_by_part"]:
        shares = ", ".join(f"{part} {100 * s / rve['seconds']:.0f} %" for part, s in rve["seconds_by_part"].items())
        log.info("RVE work: %d solves, %.1f s (%.2f ms per solve); by part: %s",
                 rve["solves"], rve["seconds"], 1e3 * rve["mean_seconds_per_solve"], shares)


def run_study(config: RunConfig, comm: MPI.Comm, output: Path, *, restart: bool = False,
              stop: StopRequest | None = None) -> dict:
    """Run a macro study, writing into ``output``; returns the summary (collective).

    ``restart``: continue from the newest complete checkpoint in ``output`` (if any), on any
    number of ranks. Nothing is written before every check has passed (meshes, supports,
    coupling, the checkpoint's study); a restart with no step left writes nothing. ``stop``:
    SIGTERM/SIGINT flag looked at every macro Newton iteration (the step is abandoned) and
    after every step (a checkpoint is written): :class:`Interrupted` after the summary
    (status ``interrupted``).
    """
    start = time.perf_counter()
    macro, mesh_file = load_macro_mesh(config, comm)
    physics = make_physics(config.physics, macro.dim, material_laws(config))
    dirichlet, tractions, body = collectively(comm, lambda: supports_and_loads(config, macro, physics),
                                              errors=(InputError,))
    stability = StabilityMonitor(config, comm, macro.dim)  # a lattice of the wrong dimension: InputError
    source = coupling(config, macro, physics, comm)
    if comm.rank == 0:
        log.info("coupling: %s (%s)", source.mode, source.reason)
        if source.rve is not None:
            log.info("%s", format_rve_summary(source.rve))
    solver = config.solver
    problem = MacroProblem(
        macro.mesh, physics, config.macro.degree, source.make_points,
        dirichlet=dirichlet, tractions=tractions, body_force=body,
        newton=NewtonOptions(**solver.newton.model_dump()), petsc_options=solver.petsc_options,
        predictor=solver.predictor, line_search=solver.line_search,
    )
    try:
        problem.loading.check(config.times)  # every value finite at every step time, or exit 2 now
        stability.locate(problem.forms.quadrature_coordinates().reshape(problem.num_points, macro.dim))
        return _run(config, problem, macro, source, stability, output, restart=restart, stop=stop,
                    mesh_file=mesh_file, start=start)
    finally:
        problem.destroy()


def _run(config: RunConfig, problem: MacroProblem, macro: MacroMesh, source: Coupling,
         stability: StabilityMonitor, output: Path, *, restart: bool, stop: StopRequest | None,
         mesh_file: bytes | None, start: float) -> dict:
    comm = problem.comm
    solver = config.solver
    targets = config.times
    points = comm.allreduce(problem.num_points, op=MPI.SUM)
    cells = macro.mesh.topology.index_map(macro.dim).size_global
    dofs = problem.V.dofmap.index_map.size_global * problem.V.dofmap.index_map_bs
    if comm.rank == 0:
        log.info("macro mesh: %d cells, %d dofs, %d quadrature points on %d rank(s); %d steps to t = %g",
                 cells, dofs, points, comm.size, len(targets), targets[-1])
    identity = study_identity(config, comm)
    resumed = checkpoint_to_resume(config, problem, output, restart, identity)
    stability.restore(resumed.get("lattice_stability") if resumed else None)
    done = resumed["step"] if resumed else 0
    summary = {
        "fe2_version": fe2.__version__,
        "physics": config.physics,
        "coupling": {"mode": source.mode, "reason": source.reason},
        "ranks": comm.size,
        "macro": {"cells": cells, "dofs": dofs, "quadrature_points": points, "degree": config.macro.degree},
        "steps": len(targets),
        "field_files": ["fields.xdmf"] + (["quadrature_fields.xdmf"] if config.output.quadrature_fields else []),
    }
    if source.rve is not None:
        summary["rve_mesh"] = source.rve
    if done == len(targets):  # leave every file as it is
        if comm.rank == 0:
            log.info("restart: every load step is done already; nothing to compute, nothing written")
        rows = resumed["history"]
        return existing_summary(output, comm, {
            **summary, "status": "completed", "completed_steps": len(rows),
            "newton_iterations": sum(int(r["newton_iterations"]) for r in rows),
            "rve_solves": sum(int(r["rve_solves"]) for r in rows), "wall_time": 0.0,
        })
    probes = None
    if config.output.probes:
        probes = RveProbes(problem, config.output.probes, output)  # errors: the same on all ranks
    start_writing(output, comm, fresh=resumed is None, mesh_file=mesh_file,
                  rve_mesh_file=source.rve_mesh_file)
    separation = None
    if (scale := config.output.scale_separation) is not None:
        separation = ScaleSeparationMonitor(problem, **scale.model_dump())
    writer = MacroOutput(
        problem, output, fields_every=config.output.fields_every, num_steps=len(targets),
        resume_after=done if resumed else None, rows=resumed["history"] if resumed else None, probes=probes,
        monitors=[separation] if separation is not None else [],
        quadrature_fields=config.output.quadrature_fields,
    )
    every = config.checkpoint.every
    status = RunStatus.attach(problem, len(targets), done, start)  # live line on a terminal
    if stop is not None:  # a safe point at every macro Newton iteration: abandon the step
        status_monitor = problem.monitor

        def monitor(t: float, iteration: int, norm: float) -> None:
            if status_monitor is not None:
                status_monitor(t, iteration, norm)
            if name := stop.agreed(comm):
                raise Interrupted(f"interrupted by {name} during the step to t = {t:.6g} (abandoned); "
                                  "fe2 run --restart continues")

        problem.monitor = monitor
    checkpointed = [done if resumed else 0]

    def checkpoint(record: StepRecord) -> None:
        write_checkpoint(problem, output, {
            "step": record.step, "time": record.time, "completed_times": targets[: record.step],
            "amplitudes": config.amplitude_tables(), "history": writer.rows,
            "field_files": summary["field_files"], "study": identity,
            "lattice_stability": stability.state(),
        })
        checkpointed[0] = record.step

    stats = problem.points.statistics  # RVE solver totals of this rank ({} for closed-form laws)
    before = {"seconds": stats.get("seconds", 0.0), "solves": stats.get("solves", 0) + stats.get("failures", 0)}

    def progress(record: StepRecord) -> None:
        solves = stats.get("solves", 0) + stats.get("failures", 0)
        record.rve_solves = comm.allreduce(solves - before["solves"], op=MPI.SUM)
        if stats:
            work = np.array(comm.allgather(stats["seconds"] - before["seconds"]))
            record.imbalance = float(work.max() / work.mean()) if work.mean() > 0 else 1.0
        if config.parallel.balancing == "dynamic":
            problem.points.rebalance()
            record.moved_points = problem.points.moved
        before.update(seconds=stats.get("seconds", 0.0), solves=stats.get("solves", 0) + stats.get("failures", 0))
        if status is not None:
            status.step_done(record.step)
        unstable = stability.check(record, problem.points.point_fields)
        if separation is not None:
            separation.check(record)
        writer.write_step(record, fields=unstable)
        if every and (record.step % every == 0 or record.step == len(targets)):
            checkpoint(record)
        if comm.rank == 0:
            elapsed = time.perf_counter() - start
            remaining = elapsed / (record.step - done) * (len(targets) - record.step)
            log.info(
                "step %d/%d  t %.4g  Newton %d (|R| %.2e)%s  RVE solves %d, failures %d  "
                "imbalance %.2f%s  %.1f s  elapsed %.0f s  ETA %.0f s",
                record.step, len(targets), record.time, record.newton_iterations,
                record.residual_norm,
                f"  cut-backs {record.cutbacks}" if record.cutbacks else "",
                record.rve_solves, record.rve_failures, record.imbalance,
                f" (moved {record.moved_points})" if record.moved_points else "",
                record.seconds, elapsed, remaining,
            )
        if unstable:
            raise stability.error()
        if stop is not None and record.step < len(targets) and (name := stop.agreed(comm)):
            if every and checkpointed[0] != record.step:  # the step is complete: keep it
                checkpoint(record)
            raise Interrupted(f"interrupted by {name} after load step {record.step}; fe2 run --restart continues")

    if resumed:
        summary["restarted_after_step"] = done
    if probes is not None:
        summary["probes"] = probes.located
    failure: Fe2Error | None = None
    try:
        run_load_steps(problem, targets, max_cutbacks=solver.max_cutbacks, on_step=progress, start=done)
        summary["status"] = "completed"
    except Interrupted as exc:  # raised on every rank at the same safe point
        summary.update(status="interrupted", error=str(exc),
                       resume=f"fe2 run --restart continues after step {checkpointed[0]}")
        failure = exc
    except (ComputationError, ResourceError) as exc:  # raised on every rank
        summary.update(status="failed", error=str(exc))
        failure = exc
    summary.update(
        completed_steps=len(writer.rows),
        newton_iterations=int(sum(int(r["newton_iterations"]) for r in writer.rows)),
        rve_solves=int(sum(int(r["rve_solves"]) for r in writer.rows)),
        rve_failures=int(sum(int(r["rve_failures"]) for r in writer.rows)),
        cutbacks=int(sum(int(r["cutbacks"]) for r in writer.rows)),
        final_reactions=_reactions(writer.rows[-1], problem) if writer.rows else {},
        wall_time=time.perf_counter() - start,
    )
    if stability.active:
        summary["lattice_stability"] = stability.summary()
    if separation is not None:
        summary["scale_separation"] = separation.summary(writer.rows)
        separation.destroy()
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
            "seconds_by_part": _seconds_by_part(problem.points.timings, comm),
        }
        _log_profile(summary["rve"])
    try:
        writer.write_summary(summary)
    except ResourceError:
        if failure is None:
            raise
    writer.close()
    if status is not None:
        status.finish()
    if failure is not None:
        raise failure
    return summary
