"""Command line: `fe2 run | homogenize | mesh | plot | validate | schema | lattice | green-kubo | info`.

Every failure prints one line `error: ...`; the exit code says which kind (see
:mod:`fe2.errors`): 1 the computation failed, or an internal error (its traceback goes to a
log file named in the line); 2 invalid input, nothing written; 3 interrupted (SIGTERM/SIGINT);
4 a file system error. Under MPI every rank runs the command; rank 0 prints and writes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mpi4py import MPI

import fe2
from fe2.errors import Fe2Error, InputError, ResourceError, collectively, os_error_cause

log = logging.getLogger("fe2")


def _setup_logging(verbosity: int, comm: MPI.Comm, log_file: str | None = None) -> None:
    """Rank 0 logs to stdout (and to ``log_file`` with time stamps); other ranks warnings only.
    On a terminal, rank 0's log keeps a live status line below it."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    if comm.rank != 0:
        level = logging.WARNING
    output = {"stream": sys.stdout}
    if comm.rank == 0 and verbosity >= 0 and sys.stdout.isatty():  # live status line under the log
        from fe2.io.progress import TerminalStatus

        output = {"handlers": [TerminalStatus(sys.stdout)]}
    logging.basicConfig(level=level, format="%(message)s", force=True, **output)
    if log_file and comm.rank == 0:
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)


#: Sections only a `fe2 run` study has.
RUN_SECTIONS = {"macro", "material", "boundary_conditions", "loads", "steps", "parallel", "output", "checkpoint"}


def _study_kind(data) -> str:
    """'run' for macro studies (any run-only section), 'rve_size' for RVE-size studies, else
    'homogenize'."""
    if isinstance(data, dict) and RUN_SECTIONS & set(data):
        return "run"
    return "rve_size" if isinstance(data, dict) and "rve_size" in data else "homogenize"


def _study_model(kind: str):
    from fe2.config import HomogenizeConfig, RunConfig
    from fe2.config.rve_size import RveSizeConfig

    return {"run": RunConfig, "rve_size": RveSizeConfig}.get(kind, HomogenizeConfig)


def cmd_validate(args: argparse.Namespace, comm: MPI.Comm) -> int:
    from fe2.config import load_yaml, validate

    data = load_yaml(args.config)
    kind = _study_kind(data)
    model = _study_model(kind)
    validate(model, data, base_dir=Path(args.config).resolve().parent, source=str(args.config))
    if comm.rank == 0:
        print(f"{args.config}: valid `fe2 {'homogenize' if kind == 'rve_size' else kind}` study"
              + (" (RVE size)" if kind == "rve_size" else ""))
    return 0


def cmd_schema(args: argparse.Namespace, comm: MPI.Comm) -> int:
    import json

    model = _study_model(args.kind)
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"fe2 {args.kind} study"
    if comm.rank == 0:
        print(json.dumps(schema, indent=2))
    return 0


def cmd_homogenize(args: argparse.Namespace, comm: MPI.Comm) -> int:
    from fe2.config import load_homogenize_config, load_yaml

    if _study_kind(load_yaml(args.config)) == "rve_size":
        return cmd_rve_size(args, comm)
    from fe2.homogenization.study import BC_ORDER, run_homogenization
    from fe2.io.results import format_report, output_files, write_homogenization

    config = load_homogenize_config(args.config)
    bc = args.bc or config.rve.bc
    bcs = list(BC_ORDER) if bc == "all" else [bc]
    output = Path(args.output) if args.output else Path("results") / Path(args.config).stem
    names = output_files(bcs, load_path=config.load_path is not None)
    clashes = [output / name for name in names if (output / name).exists()]
    clashes = comm.bcast(clashes if comm.rank == 0 else None)  # rank 0 writes: its view counts
    if clashes and not args.overwrite:
        raise InputError(
            f"{clashes[0]} exists; choose another --output or pass --overwrite to replace it"
        )
    if output.exists() and not output.is_dir():
        raise InputError(f"--output {output}: exists and is not a directory")
    from fe2.io.hdf5 import silence_hdf5_diagnostics

    silence_hdf5_diagnostics()
    result = run_homogenization(config, bcs=bcs, comm=comm)

    def write() -> list[Path]:  # rank 0 writes; a file system error is raised on every rank
        if comm.rank != 0:
            return []
        try:
            return write_homogenization(result, output)
        except (OSError, RuntimeError) as exc:  # RuntimeError: DOLFINx's XDMF/HDF5 writer
            for tmp in output.glob(".*tmp*") if output.is_dir() else []:
                tmp.unlink(missing_ok=True)
            raise ResourceError(f"cannot write the results to {output}: {os_error_cause(exc)}") from None

    paths = collectively(comm, write, errors=(ResourceError,))
    if comm.rank == 0:
        paths += _plot(output)
        print(format_report(result))
        print(f"\nwrote {', '.join(str(p) for p in paths)}")
    return 0


def cmd_rve_size(args: argparse.Namespace, comm: MPI.Comm) -> int:
    """`fe2 homogenize` of a config with an `rve_size` section (see docs/config.md)."""
    from fe2.config.rve_size import load_rve_size_config
    from fe2.homogenization.rve_size import run_rve_size_study
    from fe2.io.rve_size_output import FILES, format_rve_size_report, write_rve_size

    config = load_rve_size_config(args.config)
    bcs = config.rve_size.bcs if args.bc is None else (
        ["affine", "periodic", "traction"] if args.bc == "all" else [args.bc])
    output = Path(args.output) if args.output else Path("results") / Path(args.config).stem
    clashes = [output / name for name in FILES if (output / name).exists()]
    clashes = comm.bcast(clashes if comm.rank == 0 else None)
    if clashes and not args.overwrite:
        raise InputError(
            f"{clashes[0]} exists; choose another --output or pass --overwrite to replace it "
            f"(finished windows of the same study are reused)"
        )
    from fe2.io.lock import OutputLock

    lock = OutputLock(output, comm)
    lock.acquire()  # exit 2 if another study or run uses the directory
    try:
        result = run_rve_size_study(config, bcs=bcs, comm=comm, output=output, discard_other=args.overwrite)

        def write() -> list[Path]:  # rank 0 writes; a file system error is raised on every rank
            if comm.rank != 0:
                return []
            try:
                return write_rve_size(result, output)
            except OSError as exc:
                raise ResourceError(f"cannot write the results to {output}: {os_error_cause(exc)}") from None

        paths = collectively(comm, write, errors=(ResourceError,))
    finally:
        lock.release()
    if comm.rank == 0:
        paths += _plot(output)
        print(format_rve_size_report(result))
        print(f"\nwrote {', '.join(str(p) for p in paths)}")
    return 0


def cmd_run(args: argparse.Namespace, comm: MPI.Comm) -> int:
    from fe2.config import load_run_config
    from fe2.io.hdf5 import silence_hdf5_diagnostics
    from fe2.io.lock import OutputLock
    from fe2.io.macro_output import MacroOutput
    from fe2.macro.study import run_study
    from fe2.stop import StopRequest

    config = load_run_config(args.config)
    output = Path(args.output) if args.output else Path("results") / Path(args.config).stem
    clashes = [output / name for name in MacroOutput.FILES if (output / name).exists()]
    clashes = comm.bcast(clashes if comm.rank == 0 else None)  # rank 0 writes: its view counts
    if clashes and not (args.overwrite or args.restart):
        raise InputError(
            f"{clashes[0]} exists; choose another --output, pass --restart to continue that run "
            f"from its last checkpoint or --overwrite to replace it"
        )
    silence_hdf5_diagnostics()  # errors are reported as one line naming the file
    lock = OutputLock(output, comm)
    lock.acquire()  # exit 2 if another run uses the directory
    refused = True
    try:
        with StopRequest().handling() as stop:  # also while plotting: a signal skips the plots
            summary = run_study(config, comm, output, restart=args.restart, stop=stop)
            refused = False
            if comm.rank == 0:
                if summary.get("nothing_to_do"):
                    print(f"nothing to do: all {summary.get('steps')} steps of {output} are done; "
                          "no file changed")
                    return 0
                if stop.signal is None:
                    _plot(output)
                print(
                    f"{summary['status']}: {summary['completed_steps']} steps, "
                    f"{summary['newton_iterations']} macro Newton iterations, "
                    f"{summary['rve_solves']} RVE solves, {summary['wall_time']:.1f} s "
                    f"({summary['coupling']['mode']} coupling); results in {output}"
                )
    except InputError:  # refused before writing: leave no trace
        raise
    except BaseException:
        refused = False
        raise
    finally:
        lock.release(remove_empty_directory=refused)
    return 0


def _plot(output: Path) -> list[Path]:
    """Best-effort plots after a run (rank 0): a plotting problem never fails the study."""
    from fe2.io.plots import plot_directory

    try:
        return plot_directory(output)
    except Exception as exc:  # noqa: BLE001 - plots are a convenience
        log.warning("could not draw the plots of %s: %s", output, exc)
        return []


def cmd_plot(args: argparse.Namespace, comm: MPI.Comm) -> int:
    from fe2.io.plots import plot_directory

    directory = Path(args.directory)

    def plot() -> None:  # rank 0 draws; its errors are raised on every rank
        if comm.rank != 0:
            return
        if not directory.is_dir():
            raise InputError(f"{directory}: no such result directory")
        paths = plot_directory(directory)
        if not paths:
            raise InputError(f"{directory}: no history.csv or load_path*.csv to plot")
        print("wrote " + ", ".join(str(p) for p in paths))

    collectively(comm, plot, errors=(InputError,))
    return 0


def cmd_mesh(args: argparse.Namespace, comm: MPI.Comm) -> int:
    from fe2.meshing.cli import run_mesh

    return run_mesh(args) if comm.rank == 0 else 0


def cmd_lattice(args: argparse.Namespace, comm: MPI.Comm) -> int:
    from fe2.lattice.cli import run_chain

    collectively(comm, lambda: run_chain(args) if comm.rank == 0 else 0, errors=(InputError,))
    return 0


def cmd_green_kubo(args: argparse.Namespace, comm: MPI.Comm) -> int:
    from fe2.transport.cli import run_green_kubo

    collectively(comm, lambda: run_green_kubo(args) if comm.rank == 0 else 0, errors=(Fe2Error,))
    return 0


def cmd_info(args: argparse.Namespace, comm: MPI.Comm) -> int:
    import dolfinx
    import gmsh
    from petsc4py import PETSc

    if comm.rank == 0:
        petsc = ".".join(str(v) for v in PETSc.Sys.getVersion())
        print(f"fe2 {fe2.__version__}")
        print(f"DOLFINx {dolfinx.__version__}, PETSc {petsc}, gmsh {gmsh.__version__}")
        print(f"MPI: {MPI.Get_library_version().splitlines()[0].strip()}, {comm.size} rank(s)")
        print(f"Python {sys.version.split()[0]}")
    return 0


def _common() -> argparse.ArgumentParser:
    """Options every subcommand takes."""
    common = argparse.ArgumentParser(add_help=False)
    verbosity = common.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1,
                           help="print warnings and errors only")
    verbosity.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1,
                           help="print debug messages")
    common.add_argument("--log-file", help="also write the log, time-stamped, to this file")
    common.set_defaults(verbosity=0, log_file=None)
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fe2", description=fe2.__doc__)
    parser.add_argument("--version", action="version", version=f"fe2 {fe2.__version__}")
    parser.set_defaults(verbosity=0)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    hom = commands.add_parser(
        "homogenize", help="apparent tensor of an RVE (linear phases)", parents=[_common()],
        description=(
            "Compute the apparent (effective) tensor of an RVE from a YAML study; "
            "--bc all adds the Voigt and Reuss bounds. A config with an `rve_size` section "
            "runs an RVE-size study (random windows of growing size)."
        )
    )
    hom.add_argument("config", help="study YAML file (see docs/config.md)")
    hom.add_argument("--bc", choices=["periodic", "affine", "traction", "all"],
                     help="boundary condition (default: rve.bc of the config)")
    hom.add_argument("--output", "-o", help="output directory (default: results/<config name>)")
    hom.add_argument("--overwrite", action="store_true", help="replace existing result files")
    hom.set_defaults(func=cmd_homogenize)

    run = commands.add_parser(
        "run", help="macro FE² (or single-scale) study", parents=[_common()],
        description="Run a macro study from a YAML config: load steps with Newton, outputs "
        "fields.xdmf, history.csv and summary.json.",
    )
    run.add_argument("config", help="study YAML file (see docs/config.md)")
    run.add_argument("--output", "-o", help="output directory (default: results/<config name>)")
    existing = run.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing result files")
    existing.add_argument(
        "--restart", action="store_true",
        help="continue from the newest complete checkpoint in the output directory, on any "
        "number of ranks (start from the beginning if there is none)",
    )
    run.set_defaults(func=cmd_run)

    from fe2.meshing.cli import add_mesh_parser

    add_mesh_parser(commands)
    commands.choices["mesh"].set_defaults(func=cmd_mesh)

    plot = commands.add_parser(
        "plot", help="PNG plots of a result directory (from its CSV files)", parents=[_common()]
    )
    plot.add_argument("directory", help="output directory of fe2 run or fe2 homogenize")
    plot.set_defaults(func=cmd_plot)

    check = commands.add_parser(
        "validate", help="check a study file (exit 0 if valid, 2 with the problems if not)",
        parents=[_common()],
    )
    check.add_argument("config", help="study YAML file (`fe2 run` or `fe2 homogenize`)")
    check.set_defaults(func=cmd_validate)

    schema = commands.add_parser(
        "schema", help="JSON Schema of the study files (for editors)", parents=[_common()]
    )
    schema.add_argument("kind", nargs="?", choices=["run", "homogenize", "rve_size"], default="run")
    schema.set_defaults(func=cmd_schema)

    from fe2.lattice.cli import add_lattice_parser
    from fe2.transport.cli import add_green_kubo_parser

    add_lattice_parser(commands, [_common()])
    commands.choices["lattice"].set_defaults(func=cmd_lattice)
    add_green_kubo_parser(commands, [_common()])
    commands.choices["green-kubo"].set_defaults(func=cmd_green_kubo)

    info = commands.add_parser(
        "info", help="versions of fe2 and its stack, MPI size", parents=[_common()]
    )
    info.set_defaults(func=cmd_info)
    return parser


def _save_traceback(args: argparse.Namespace, comm: MPI.Comm) -> str:
    """Write the traceback being handled to a log file; return its path ('' if none could be).

    The file: next to ``--log-file`` if given, else in the output directory if it exists, else
    in the working directory, else in the temporary directory; one per rank."""
    import tempfile
    import time
    import traceback

    name = f"fe2-traceback-{time.strftime('%Y%m%d-%H%M%S')}-rank{comm.rank}.log"
    places = []
    if getattr(args, "log_file", None):
        places.append(Path(args.log_file).resolve().parent)
    if getattr(args, "output", None) and Path(args.output).is_dir():
        places.append(Path(args.output))
    places += [Path.cwd(), Path(tempfile.gettempdir())]
    text = f"fe2 {fe2.__version__}: {' '.join(sys.argv)}\n{traceback.format_exc()}"
    for place in places:
        try:
            path = place / name
            path.write_text(text)
            return str(path)
        except OSError:
            continue
    return ""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `fe2` console script; returns the exit code."""
    from fe2.errors import Interrupted

    comm = MPI.COMM_WORLD
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbosity, comm, getattr(args, "log_file", None))
    from fe2.stop import interrupt_on_signals

    try:
        if args.func is cmd_run:  # the run handles the signals at its safe points
            return args.func(args, comm)
        with interrupt_on_signals():
            return args.func(args, comm)
    except Fe2Error as exc:
        if comm.rank == 0:
            print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside a run's safe points
        print(f"error: interrupted (rank {comm.rank})", file=sys.stderr)
        sys.stderr.flush()
        if comm.size > 1:
            comm.Abort(Interrupted.exit_code)
        return Interrupted.exit_code
    except Exception as exc:  # a bug: one line, the traceback in a file
        path = _save_traceback(args, comm)
        where = f"; traceback in {path}" if path else ""
        first = str(exc).splitlines()[0] if str(exc) else ""
        rank = f" on rank {comm.rank}" if comm.size > 1 else ""
        print(f"error: internal error{rank}: {type(exc).__name__}: {first}{where}", file=sys.stderr)
        sys.stderr.flush()
        if comm.size > 1:  # the other ranks may wait in a collective: end the job
            comm.Abort(1)
        return 1


if __name__ == "__main__":
    sys.exit(main())
