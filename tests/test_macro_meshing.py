"""Tests of the macro specimen meshes (fe2.meshing.macro), their reader and the CLI hook.

Meshes read with ``generate_macro_mesh``/``read_macro_mesh`` on MPI.COMM_WORLD are
distributed: the same tests run serially and under ``mpiexec -n 2``. Files are written on
rank 0 (its tmp_path) and parsed there only; per-rank files use MPI.COMM_SELF.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

import fe2  # noqa: F401  (must precede dolfinx / mpi4py bindings)
import gmsh
import numpy as np
import pytest
import ufl
from dolfinx import fem
from mpi4py import MPI
from pydantic import ValidationError

from fe2.meshing import (
    MACRO_MESH_SPECS,
    MESH_SPECS,
    BoxSpec,
    LShapeSpec,
    NotchedBarSpec,
    PlateWithHoleSpec,
    RectangleSpec,
    generate_macro_mesh,
    parse_macro_mesh_spec,
    read_macro_mesh,
)
from fe2.meshing.cli import add_mesh_parser, run_mesh

comm = MPI.COMM_WORLD
REPO = Path(__file__).resolve().parents[1]

SPECS = {
    "rectangle": RectangleSpec(mesh_size=0.25),
    "rectangle_quads": RectangleSpec(length=3.0, height=0.5, mesh_size=0.2, quadrilaterals=True),
    "rectangle_structured": RectangleSpec(cells_x=4, cells_y=2),
    "rectangle_structured_quads": RectangleSpec(cells_x=4, cells_y=2, quadrilaterals=True),
    "plate_with_hole": PlateWithHoleSpec(mesh_size=0.1, hole_mesh_size=0.04),
    "plate_with_hole_quads": PlateWithHoleSpec(
        width=2.0, height=1.5, radius=0.5, mesh_size=0.15, quadrilaterals=True
    ),
    "notched_bar": NotchedBarSpec(mesh_size=0.1, notch_mesh_size=0.04),
    "notched_bar_quads": NotchedBarSpec(mesh_size=0.1, quadrilaterals=True),
    # Blossom leaves triangles here: remeshed at 2h and subdivided into quadrilaterals
    "notched_bar_quads_subdivided": NotchedBarSpec(
        mesh_size=0.2, notch_radius=0.35, quadrilaterals=True
    ),
    "l_shape": LShapeSpec(mesh_size=0.1, corner_mesh_size=0.02),
    "l_shape_quads": LShapeSpec(size=2.0, mesh_size=0.2, quadrilaterals=True),
    "box": BoxSpec(mesh_size=0.35),
    "box_structured": BoxSpec(cells_x=4, cells_y=2, cells_z=2),
    "box_structured_hexahedra": BoxSpec(cells_x=4, cells_y=2, cells_z=2, hexahedra=True),
    "box_hexahedra": BoxSpec(lx=1.0, mesh_size=0.25, hexahedra=True),
}

ARCS = {"hole": ("radius", "hole_mesh_size", math.pi / 2), "notch": ("notch_radius",
                                                                     "notch_mesh_size", math.pi)}
"""Curved boundary -> (radius field, local size field, opening angle)."""


@pytest.fixture(scope="module", params=list(SPECS))
def generated(request, tmp_path_factory):
    """(spec, MacroMesh) for every spec in SPECS, generated on rank 0, read on COMM_WORLD."""
    spec = SPECS[request.param]
    macro = generate_macro_mesh(spec, comm, directory=tmp_path_factory.mktemp(request.param))
    assert not gmsh.isInitialized()
    return spec, macro


def _total(form) -> float:
    """Assemble a scalar form on every rank and sum (collective)."""
    return comm.allreduce(fem.assemble_scalar(fem.form(form)), op=MPI.SUM)


def _arc(spec, name: str) -> tuple[float, float, float]:
    """(radius, largest element length on the arc, opening angle) of a curved boundary."""
    radius_field, size_field, angle = ARCS[name]
    h = getattr(spec, size_field) or spec.mesh_size
    return getattr(spec, radius_field), h, angle


def _all_coords(macro) -> np.ndarray:
    """Node coordinates of all ranks (with duplicates of shared nodes)."""
    x = macro.mesh.geometry.x[:, : macro.dim]
    return np.vstack(comm.allgather(x))


def test_tags_names_and_cell_type(generated):
    spec, macro = generated
    mesh, dim = macro.mesh, macro.dim
    assert dim == spec.dim == mesh.topology.dim == mesh.geometry.dim
    assert mesh.comm.size == comm.size
    assert mesh.topology.cell_name() == spec.cell_type()
    assert macro.boundaries == spec.boundary_tags()
    assert list(macro.boundaries) == list(spec.boundary_names)
    assert macro.subdomains == {"domain": 1}
    num_cells = mesh.topology.index_map(dim).size_local
    owned = macro.cell_tags.indices < num_cells
    assert sorted(macro.cell_tags.indices[owned]) == list(range(num_cells))
    assert set(np.unique(macro.cell_tags.values)) <= {1}
    assert macro.facet_tags.dim == dim - 1
    assert set(np.unique(macro.facet_tags.values)) <= set(macro.boundaries.values())
    present = set().union(*comm.allgather(set(macro.facet_tags.values.tolist())))
    assert present == set(macro.boundaries.values())
    for name in macro.boundaries:
        assert len(macro.facets(name)) == np.count_nonzero(
            macro.facet_tags.values == macro.boundaries[name]
        )
    with pytest.raises(KeyError, match="no boundary 'nowhere'"):
        macro.facets("nowhere")


def test_volume(generated):
    spec, macro = generated
    volume = _total(1.0 * ufl.dx(domain=macro.mesh))
    exact = spec.exact_volume()
    arcs = [name for name in spec.boundary_names if name in ARCS]
    if not arcs:
        assert volume == pytest.approx(exact, rel=1e-12)
        return
    # the mesh removes the inscribed polygon of the disc: a bit more area than exact
    (name,) = arcs
    r, h, angle = _arc(spec, name)
    theta = 2.0 * h / r  # generous bound of the angle of one arc segment
    assert 0.0 <= volume - exact <= angle * r**2 * theta**2 / 12.0


def test_boundary_lengths(generated):
    spec, macro = generated
    ds = ufl.Measure("ds", domain=macro.mesh, subdomain_data=macro.facet_tags)
    exact = spec.exact_boundary_measures()
    assert set(exact) == set(macro.boundaries)
    for name, tag in macro.boundaries.items():
        measure = _total(1.0 * ds(tag))
        if name in ARCS:  # inscribed polygon: shorter than the arc
            r, h, _ = _arc(spec, name)
            theta = 2.0 * h / r
            assert 0.0 < exact[name] - measure <= exact[name] * theta**2 / 24.0, name
        else:
            assert measure == pytest.approx(exact[name], rel=1e-12), name
    # every boundary facet carries a name
    assert _total(1.0 * ufl.ds(domain=macro.mesh)) == pytest.approx(
        sum(_total(1.0 * ds(tag)) for tag in macro.boundaries.values()), rel=1e-12
    )


@pytest.mark.parametrize(("quads", "cells"), [(False, 16), (True, 8)])
def test_structured_rectangle(tmp_path, quads, cells):
    spec = RectangleSpec(cells_x=4, cells_y=2, quadrilaterals=quads)
    macro = generate_macro_mesh(spec, comm, directory=tmp_path)
    assert macro.mesh.topology.index_map(2).size_global == cells
    assert macro.mesh.topology.cell_name() == ("quadrilateral" if quads else "triangle")
    x = _all_coords(macro)
    np.testing.assert_allclose(np.unique(x[:, 0].round(12)), [0.0, 0.5, 1.0, 1.5, 2.0])
    np.testing.assert_allclose(np.unique(x[:, 1].round(12)), [0.0, 0.5, 1.0])
    assert len(np.unique(x.round(12), axis=0)) == 15


@pytest.mark.parametrize(("hexahedra", "cells"), [(False, 96), (True, 16)])
def test_structured_box(tmp_path, hexahedra, cells):
    spec = BoxSpec(cells_x=4, cells_y=2, cells_z=2, hexahedra=hexahedra)
    macro = generate_macro_mesh(spec, comm, directory=tmp_path)
    assert macro.mesh.topology.index_map(3).size_global == cells
    x = _all_coords(macro)
    assert len(np.unique(x.round(12), axis=0)) == 5 * 3 * 3
    np.testing.assert_allclose(x / 0.5, np.round(x / 0.5), atol=1e-12)


def test_hexahedra_from_mesh_size():
    assert BoxSpec(mesh_size=0.5, hexahedra=True).structured_cells() == (4, 2, 2)
    assert BoxSpec(mesh_size=0.5).structured_cells() is None
    assert RectangleSpec(mesh_size=0.5, quadrilaterals=True).structured_cells() is None


def test_quadrilaterals_keep_the_boundaries(tmp_path):
    for kind in ("plate_with_hole", "notched_bar", "l_shape"):
        tri, quad = (
            generate_macro_mesh(SPECS[name], comm, directory=tmp_path)
            for name in (kind, f"{kind}_quads")
        )
        assert tri.mesh.topology.cell_name() == "triangle"
        assert quad.mesh.topology.cell_name() == "quadrilateral"
        assert list(tri.boundaries.items()) == list(quad.boundaries.items())


def test_blossom_fallback_subdivides_into_quadrilaterals(tmp_path, caplog):
    spec = SPECS["notched_bar_quads_subdivided"]
    with caplog.at_level(logging.DEBUG, logger="fe2.meshing.macro_gmsh"):
        path = spec.generate(tmp_path / "sub.msh")
    # pins the fallback path with gmsh 4.15; the quad checks below hold anyway
    assert "subdividing into quadrilaterals" in caplog.text
    macro = read_macro_mesh(path, MPI.COMM_SELF)
    assert macro.mesh.topology.cell_name() == "quadrilateral"


def test_generation_is_deterministic(tmp_path):
    spec = PlateWithHoleSpec(mesh_size=0.1, hole_mesh_size=0.05, quadrilaterals=True)
    a = spec.generate(tmp_path / "a.msh")
    b = spec.generate(tmp_path / "b.msh")
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text()
    assert text.startswith("$MeshFormat\n4.1 0 8\n")
    for name in ("domain", *spec.boundary_names):
        assert f'"{name}"' in text


def test_mesh_is_distributed(tmp_path):
    spec = {"type": "plate_with_hole", "mesh_size": 0.1}
    macro = generate_macro_mesh(spec, comm, directory=tmp_path, filename="plate.msh")
    num_owned = macro.mesh.topology.index_map(2).size_local
    counts = comm.allgather(num_owned)
    assert sum(counts) == macro.mesh.topology.index_map(2).size_global
    assert all(n > 0 for n in counts)


@pytest.mark.parametrize(
    ("model", "kwargs", "field"),
    [
        (RectangleSpec, dict(), "mesh_size"),
        (RectangleSpec, dict(mesh_size=0.0), "mesh_size"),
        (RectangleSpec, dict(mesh_size=0.1, length=-2.0), "length"),
        (RectangleSpec, dict(mesh_size=0.1, cells_x=4, cells_y=2), "mesh_size"),
        (RectangleSpec, dict(cells_x=4), "cells_y"),
        (RectangleSpec, dict(cells_x=0, cells_y=2), "cells_x"),
        (RectangleSpec, dict(mesh_size=0.1, bogus=1), "bogus"),
        (PlateWithHoleSpec, dict(), "mesh_size"),
        (PlateWithHoleSpec, dict(mesh_size=0.1, radius=1.0), "radius"),
        (PlateWithHoleSpec, dict(mesh_size=0.1, width=2.0, height=0.5, radius=0.6), "radius"),
        (PlateWithHoleSpec, dict(mesh_size=0.1, radius=0.0), "radius"),
        (PlateWithHoleSpec, dict(mesh_size=0.1, hole_mesh_size=0.2), "hole_mesh_size"),
        (PlateWithHoleSpec, dict(mesh_size=0.1, hole_mesh_size=-0.01), "hole_mesh_size"),
        (NotchedBarSpec, dict(mesh_size=0.1, notch_radius=0.5), "notch_radius"),
        (NotchedBarSpec, dict(mesh_size=0.1, length=0.5, height=2.0, notch_radius=0.3),
         "notch_radius"),
        (NotchedBarSpec, dict(mesh_size=0.1, notch_mesh_size=0.3), "notch_mesh_size"),
        (LShapeSpec, dict(mesh_size=0.1, size=0.0), "size"),
        (LShapeSpec, dict(mesh_size=0.1, corner_mesh_size=0.2), "corner_mesh_size"),
        (BoxSpec, dict(), "mesh_size"),
        (BoxSpec, dict(cells_x=2, cells_y=2), "cells_z"),
        (BoxSpec, dict(mesh_size=0.1, lz=-1.0), "lz"),
        (BoxSpec, dict(mesh_size=0.1, quadrilaterals=True), "quadrilaterals"),
    ],
)
def test_invalid_parameters_name_the_field(model, kwargs, field):
    with pytest.raises(ValidationError) as info:
        model(**kwargs)
    locs = {".".join(map(str, e["loc"])) for e in info.value.errors()}
    assert field in locs, locs


def test_discriminated_union_and_registry():
    spec = parse_macro_mesh_spec({"type": "l_shape", "mesh_size": 0.1})
    assert isinstance(spec, LShapeSpec)
    assert parse_macro_mesh_spec(spec) is spec
    assert list(MACRO_MESH_SPECS) == ["rectangle", "plate_with_hole", "notched_bar", "l_shape",
                                      "box"]
    assert not set(MACRO_MESH_SPECS) & set(MESH_SPECS)
    for name, model in MACRO_MESH_SPECS.items():
        assert model.model_fields["type"].default == name
        assert model.boundary_names and len(set(model.boundary_names)) == len(
            model.boundary_names
        )
    with pytest.raises(ValidationError):
        parse_macro_mesh_spec({"type": "l_shape", "mesh_size": 0.1, "bogus": 1})
    with pytest.raises(ValidationError):
        parse_macro_mesh_spec({"type": "inclusion_2d", "volume_fraction": 0.3, "mesh_size": 0.1})
    with pytest.raises(ValidationError):  # frozen
        spec.mesh_size = 0.2  # type: ignore[misc]


def _on_rank0(make) -> Path:
    """Run ``make()`` on rank 0 and broadcast the path it returns."""
    path = make() if comm.rank == 0 else None
    return comm.bcast(path, root=0)


def _mixed_mesh(path: Path) -> Path:
    """A triangle + quadrilateral mesh of the unit square (simple recombination)."""
    from fe2.meshing.geometry import write_msh
    from fe2.meshing.session import gmsh_session

    with gmsh_session():
        gmsh.model.occ.addRectangle(0.0, 0.0, 0.0, 1.0, 1.0)
        gmsh.model.occ.addDisk(0.0, 0.0, 0.0, 0.3, 0.3)
        gmsh.model.occ.cut([(2, 1)], [(2, 2)])
        gmsh.model.occ.synchronize()
        gmsh.model.addPhysicalGroup(2, [1], tag=1, name="domain")
        gmsh.model.mesh.setSize(gmsh.model.getEntities(0), 0.1)
        gmsh.option.setNumber("Mesh.RecombineAll", 1)
        gmsh.option.setNumber("Mesh.RecombinationAlgorithm", 0)
        gmsh.model.mesh.generate(2)
        types, _, _ = gmsh.model.mesh.getElements(2)
        assert sorted(types) == [2, 3]
        write_msh(path)
    return path


def test_read_errors_name_the_file_on_every_rank(tmp_path):
    missing = comm.bcast(tmp_path / "missing.msh", root=0)
    with pytest.raises(FileNotFoundError, match="missing.msh"):
        read_macro_mesh(missing, comm)

    def notes() -> Path:
        (tmp_path / "notes.msh").write_text("this is not a mesh\n")
        return tmp_path / "notes.msh"

    with pytest.raises(ValueError, match="notes.msh"):
        read_macro_mesh(_on_rank0(notes), comm)
    mixed = _on_rank0(lambda: _mixed_mesh(tmp_path / "mixed.msh"))
    with pytest.raises(ValueError, match=r"mixed\.msh mixes cell types"):
        read_macro_mesh(mixed, comm)
    assert not gmsh.isInitialized()
    with pytest.raises(ValueError, match=r"\.msh"):
        LShapeSpec(mesh_size=0.2).generate(tmp_path / "out.vtk")


def test_generation_error_is_raised_on_every_rank(tmp_path):
    with pytest.raises(RuntimeError, match="generation failed on rank 0"):
        generate_macro_mesh(LShapeSpec(mesh_size=0.2), comm, directory=tmp_path,
                            filename="l_shape.vtk")


def test_rve_mesh_reads_as_macro_mesh_without_boundaries():
    macro = read_macro_mesh(REPO / "meshes" / "inclusion_2d.msh", comm)
    assert macro.subdomains == {"matrix": 1, "inclusion": 2}
    assert macro.boundaries == {}
    assert comm.allreduce(len(macro.facet_tags.values)) == 0
    assert _total(1.0 * ufl.dx(domain=macro.mesh)) == pytest.approx(1.0, rel=1e-12)


def test_shipped_plate_with_hole():
    macro = read_macro_mesh(REPO / "meshes" / "plate_with_hole.msh", comm)
    spec = PlateWithHoleSpec(mesh_size=0.08, hole_mesh_size=0.03)
    assert macro.boundaries == spec.boundary_tags()
    assert macro.mesh.topology.cell_name() == "triangle"
    assert macro.mesh.topology.index_map(2).size_global < 1000
    area = _total(1.0 * ufl.dx(domain=macro.mesh))
    assert area == pytest.approx(spec.exact_volume(), rel=2e-4)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fe2")
    add_mesh_parser(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["plate_with_hole", "--mesh-size", "0.1", "--radius", "1.5"], "radius"),
        (["plate_with_hole", "--mesh-size", "0.1", "--hole-mesh-size", "0.5"], "hole_mesh_size"),
        (["rectangle", "--cells-x", "4"], "cells_y"),
        (["rectangle"], "mesh_size"),
        (["notched_bar", "--mesh-size", "0.1", "--notch-radius", "0.6"], "notch_radius"),
        (["box", "--mesh-size", "-1"], "mesh_size"),
    ],
)
def test_cli_bad_parameter_returns_2_and_writes_nothing(tmp_path, capsys, argv, field):
    out = tmp_path / "bad.msh"
    args = _parser().parse_args(["mesh", argv[0], "-o", str(out), *argv[1:]])
    assert run_mesh(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {field}:"), err
    assert list(tmp_path.iterdir()) == []


def test_cli_lists_macro_kinds_after_rve_kinds():
    kinds = _parser()._subparsers._group_actions[0].choices["mesh"]._subparsers
    names = list(kinds._group_actions[0].choices)
    assert names == [*MESH_SPECS, *MACRO_MESH_SPECS]


def test_cli_writes_macro_mesh(tmp_path, capsys):
    out = tmp_path / "sub" / "plate.msh"
    args = _parser().parse_args(
        ["mesh", "plate_with_hole", "-o", str(out), "--mesh-size", "0.1", "--hole-mesh-size",
         "0.05", "--quadrilaterals"]
    )
    assert run_mesh(args) == 0
    text = capsys.readouterr().out
    assert "nodes" in text and "cells" in text and "quadrilateral" in text
    macro = read_macro_mesh(out, MPI.COMM_SELF)
    counts = {name: int(np.count_nonzero(macro.facet_tags.values == tag))
              for name, tag in macro.boundaries.items()}
    for name, tag in macro.boundaries.items():
        assert f"  {tag} {name}: {counts[name]} facets" in text
    args = _parser().parse_args(["mesh", "rectangle", "-o", str(out), "--cells-x", "3",
                                 "--cells-y", "1"])
    assert run_mesh(args) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err
    assert run_mesh(_parser().parse_args(["mesh", "rectangle", "-o", str(out), "--cells-x", "3",
                                          "--cells-y", "1", "--overwrite"])) == 0
    assert "6 cells" in capsys.readouterr().out
