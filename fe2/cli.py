"""Command line: `fe2 run | homogenize | mesh | info`.

User errors (bad config or mesh) print one line `error: ...` and exit with code 2; nothing is
written. Under MPI every rank runs the command; rank 0 prints and writes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mpi4py import MPI

import fe2
from fe2.errors import Fe2Error, InputError

log = logging.getLogger("fe2")


def _setup_logging(verbosity: int, comm: MPI.Comm) -> None:
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    if comm.rank != 0:
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stdout, force=True)


def cmd_homogenize(args: argparse.Namespace, comm: MPI.Comm) -> int:
    from fe2.config import load_homogenize_config
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
    result = run_homogenization(config, bcs=bcs, comm=comm)
    if comm.rank == 0:
        paths = write_homogenization(result, output)
        print(format_report(result))
        print(f"\nwrote {', '.join(str(p) for p in paths)}")
    return 0


def cmd_run(args: argparse.Namespace, comm: MPI.Comm) -> int:
    from fe2.config import load_run_config
    from fe2.io.macro_output import MacroOutput
    from fe2.macro.study import run_study

    config = load_run_config(args.config)
    output = Path(args.output) if args.output else Path("results") / Path(args.config).stem
    clashes = [output / name for name in MacroOutput.FILES if (output / name).exists()]
    clashes = comm.bcast(clashes if comm.rank == 0 else None)  # rank 0 writes: its view counts
    if clashes and not args.overwrite:
        raise InputError(
            f"{clashes[0]} exists; choose another --output or pass --overwrite to replace it"
        )
    summary = run_study(config, comm, output)
    if comm.rank == 0:
        print(
            f"{summary['status']}: {summary['completed_steps']} steps, "
            f"{summary['newton_iterations']} macro Newton iterations, "
            f"{summary['rve_solves']} RVE solves, {summary['wall_time']:.1f} s "
            f"({summary['coupling']['mode']} coupling); results in {output}"
        )
    return 0


def cmd_mesh(args: argparse.Namespace, comm: MPI.Comm) -> int:
    from fe2.meshing.cli import run_mesh

    return run_mesh(args) if comm.rank == 0 else 0


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
    common.set_defaults(verbosity=0)
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
            "--bc all adds the Voigt and Reuss bounds."
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
    run.add_argument("--overwrite", action="store_true", help="replace existing result files")
    run.set_defaults(func=cmd_run)

    from fe2.meshing.cli import add_mesh_parser

    add_mesh_parser(commands)
    commands.choices["mesh"].set_defaults(func=cmd_mesh)

    info = commands.add_parser(
        "info", help="versions of fe2 and its stack, MPI size", parents=[_common()]
    )
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `fe2` console script; returns the exit code."""
    comm = MPI.COMM_WORLD
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbosity, comm)
    try:
        return args.func(args, comm)
    except Fe2Error as exc:
        if comm.rank == 0:
            print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception:
        if comm.size == 1:
            raise
        # A bug on one rank would leave the others waiting in a collective: end the job.
        import traceback

        traceback.print_exc()
        print(f"error: unexpected failure on rank {comm.rank}; aborting all ranks", file=sys.stderr)
        sys.stderr.flush()
        comm.Abort(1)


if __name__ == "__main__":
    sys.exit(main())
