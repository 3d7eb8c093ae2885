"""``fe2 mesh TYPE -o OUT.msh [--param value ...]``: options generated from the spec models.

TYPE is a periodic RVE generator (:data:`~fe2.meshing.specs.MESH_SPECS`) or a macroscopic
specimen (:data:`~fe2.meshing.macro.MACRO_MESH_SPECS`), listed in that order.
"""

from __future__ import annotations

import argparse
import logging
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from fe2.meshing.macro import MACRO_MESH_SPECS
from fe2.meshing.specs import MESH_SPECS

log = logging.getLogger(__name__)

_PREFIX = "mesh_param_"
"""Namespace prefix of the spec fields, so they cannot clash with the main CLI's options."""

ALL_MESH_SPECS: dict[str, type[BaseModel]] = {**MESH_SPECS, **MACRO_MESH_SPECS}
"""Every ``fe2 mesh`` kind: the RVE generators, then the macro specimens."""
assert len(ALL_MESH_SPECS) == len(MESH_SPECS) + len(MACRO_MESH_SPECS), "duplicate mesh kind"


def _argument(name: str, field: FieldInfo) -> tuple[list[str], dict[str, Any]]:
    """argparse flags and keywords for one pydantic field."""
    annotation = field.annotation
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # X | None
        annotation = next(a for a in args if a is not type(None))
        args = typing.get_args(annotation)
    kwargs: dict[str, Any] = {"dest": _PREFIX + name, "default": argparse.SUPPRESS}
    if typing.get_origin(annotation) is list:
        kwargs.update(nargs="+", type=args[0], metavar=name.upper())
    elif typing.get_origin(annotation) is typing.Literal:
        kwargs.update(choices=list(args), type=type(args[0]))
    elif annotation is bool:
        kwargs.update(action=argparse.BooleanOptionalAction)
    else:
        kwargs.update(type=annotation, metavar=name.upper())
    help_text = field.description or ""
    if field.default is PydanticUndefined:
        kwargs["required"] = True
    elif field.default is not None:
        help_text += f" (default: {field.default})"
    kwargs["help"] = help_text.replace("%", "%%")  # argparse formats help strings with %
    return [f"--{name.replace('_', '-')}"], kwargs


def add_mesh_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``mesh`` subcommand (one sub-subcommand per generator) to ``subparsers``."""
    parser = subparsers.add_parser(
        "mesh", help="generate a periodic RVE mesh or a macro specimen mesh (gmsh MSH 4.1)",
        description="Generate a periodic RVE mesh of [0, size]^d, one physical group per phase, "
        "or a macroscopic specimen mesh with named boundary groups.",
    )
    kinds = parser.add_subparsers(dest="mesh_type", metavar="TYPE", required=True)
    for kind, model in ALL_MESH_SPECS.items():
        doc = (model.__doc__ or kind).strip().splitlines()[0]
        sub = kinds.add_parser(kind, help=doc, description=doc)
        sub.add_argument("-o", "--output", dest="mesh_output", type=Path, required=True,
                         metavar="OUT.msh", help="output mesh file (.msh)")
        for name, field in model.model_fields.items():
            if name == "type":
                continue
            flags, kwargs = _argument(name, field)
            sub.add_argument(*flags, **kwargs)
        sub.add_argument("--overwrite", dest="mesh_overwrite", action="store_true",
                         help="replace OUT.msh if it exists")
        sub.add_argument("--binary", dest="mesh_binary", action="store_true",
                         help="write binary instead of ASCII MSH 4.1")
        sub.add_argument("--gmsh-verbose", dest="mesh_gmsh_verbose", action="store_true",
                         help="show gmsh's own output")
    return parser


def _spec_from_args(args: argparse.Namespace) -> BaseModel:
    """Validate the parsed options with the spec model of ``args.mesh_type``."""
    model = ALL_MESH_SPECS[args.mesh_type]
    params = {k[len(_PREFIX):]: v for k, v in vars(args).items() if k.startswith(_PREFIX)}
    return model.model_validate({"type": args.mesh_type, **params})


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def run_mesh(args: argparse.Namespace) -> int:
    """Validate, generate and summarize a mesh; return the exit status.

    0 on success; 2 on invalid parameters (one ``error: <field>: <message>`` line on
    stderr, nothing written); 1 if gmsh fails.
    """
    try:
        spec = _spec_from_args(args)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or args.mesh_type
        message = first["msg"].removeprefix("Value error, ")
        return _error(f"{field}: {message}")
    output = Path(args.mesh_output)
    if output.suffix != ".msh":
        return _error(f"output: file name must end in '.msh' (got {output})")
    if output.exists() and not args.mesh_overwrite:
        return _error(f"{output} exists; choose another -o or pass --overwrite to replace it")
    try:
        path = spec.generate(output, binary=args.mesh_binary,  # type: ignore[attr-defined]
                             verbose=args.mesh_gmsh_verbose)
    except Exception as exc:
        log.debug("mesh generation failed", exc_info=True)
        print(f"error: mesh generation failed: {exc}", file=sys.stderr)
        return 1
    _summarize(path, spec)
    return 0


def _summarize(path: Path, spec: BaseModel) -> None:
    """Print nodes, cells and per-phase volume fractions (macro: boundaries) of the mesh."""
    if spec.type in MACRO_MESH_SPECS:  # type: ignore[attr-defined]
        _summarize_macro(path, spec)
        return
    from mpi4py import MPI

    from fe2.meshing.io import read_rve_mesh
    from fe2.meshing.measures import phase_fractions

    rve = read_rve_mesh(path, MPI.COMM_SELF)
    num_nodes = rve.mesh.geometry.x.shape[0]
    num_cells = rve.mesh.topology.index_map(rve.dim).size_local
    print(f"wrote {path}: {num_nodes} nodes, {num_cells} cells ({rve.dim}D)")
    expected = spec.expected_volume_fractions()  # type: ignore[attr-defined]
    for tag, fraction in phase_fractions(rve).items():
        print(f"  {tag} {rve.names[tag]}: volume fraction {fraction:.6f} "
              f"(geometry {expected.get(tag, float('nan')):.6f})")


def _summarize_macro(path: Path, spec: BaseModel) -> None:
    """Print nodes, cells, area/volume and the facet count of every named boundary."""
    import dolfinx.fem
    import numpy as np
    import ufl
    from mpi4py import MPI

    from fe2.meshing.macro import read_macro_mesh

    macro = read_macro_mesh(path, MPI.COMM_SELF)
    mesh, dim = macro.mesh, macro.dim
    num_nodes = mesh.geometry.x.shape[0]
    num_cells = mesh.topology.index_map(dim).size_local
    volume = dolfinx.fem.assemble_scalar(dolfinx.fem.form(1.0 * ufl.dx(domain=mesh)))
    print(f"wrote {path}: {num_nodes} nodes, {num_cells} cells ({dim}D, "
          f"{mesh.topology.cell_name()}); {'area' if dim == 2 else 'volume'} {volume:.6g} "
          f"(geometry {spec.exact_volume():.6g})")  # type: ignore[attr-defined]
    values = macro.facet_tags.values
    for name, tag in macro.boundaries.items():
        print(f"  {tag} {name}: {int(np.count_nonzero(values == tag))} facets")
