"""Inverted, degenerate and tangled meshes are refused by the macro and RVE readers (exit 2
naming the file); sound meshes of either cell orientation are accepted (issue 12, item 2)."""

import itertools
import json

import numpy as np
import pytest
from mpi4py import MPI

from fe2.meshing.checks import cell_determinants, enclosed_volume, mesh_defects
from fe2.meshing.macro import parse_macro_mesh_spec
from fe2.meshing.session import gmsh_session
from test_run import run, study

comm = MPI.COMM_WORLD
SQUARE = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5]], dtype=float)
FAN = np.array([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]])


def test_sound_meshes_of_either_orientation_pass():
    flipped = FAN.copy()
    flipped[::2] = flipped[::2, ::-1]  # half the triangles clockwise
    assert mesh_defects(SQUARE, FAN, "triangle") == ""
    assert mesh_defects(SQUARE, flipped, "triangle") == ""
    assert enclosed_volume(SQUARE, flipped, "triangle") == pytest.approx(1.0, rel=1e-14)
    cube = np.array(list(itertools.product([0, 1], repeat=3)), dtype=float)[:, ::-1] * [2.0, 1.0, 3.0]
    hexahedron = np.array([[0, 1, 3, 2, 4, 5, 7, 6]])  # gmsh order from the product order
    det, volume = cell_determinants(cube, hexahedron, "hexahedron")
    assert np.allclose(det, 6.0) and volume == pytest.approx([6.0])
    assert enclosed_volume(cube, hexahedron, "hexahedron") == pytest.approx(6.0)
    tets = np.array([[0, 1, 3, 4], [1, 2, 3, 6], [1, 4, 5, 6], [3, 4, 6, 7], [1, 3, 4, 6]])
    tets = hexahedron[0][tets]
    assert mesh_defects(cube, tets, "tetrahedron") == ""
    assert mesh_defects(cube, hexahedron, "hexahedron") == ""


def test_inverted_degenerate_and_tangled_cells_are_found():
    tangled = SQUARE.copy()
    tangled[4] = [1.2, 0.5]  # the centre node moved across the right edge
    assert "tangled" in mesh_defects(tangled, FAN, "triangle")
    degenerate = SQUARE.copy()
    degenerate[4] = [1.0, 0.5]  # on the right edge: a zero-area triangle
    assert "degenerate" in mesh_defects(degenerate, FAN, "triangle")
    bowtie = np.array([[0, 1, 3, 2]])  # a self-intersecting quadrilateral
    assert "inverted" in mesh_defects(SQUARE[:4], bowtie, "quadrilateral")


def write_distorted_rectangle(path, *, move, reverse_half=False, quadrilaterals=False):
    """A structured 4 x 2 rectangle mesh; ``move``: (old position, new position) of a node."""
    spec = parse_macro_mesh_spec({"type": "rectangle", "cells_x": 4, "cells_y": 2,
                                  "quadrilaterals": quadrilaterals})
    spec.generate(path)
    with gmsh_session(model="edit") as gmsh:
        gmsh.open(str(path))
        if move is not None:
            tags, coords, _ = gmsh.model.mesh.getNodes()
            i = int(np.argmin(np.linalg.norm(coords.reshape(-1, 3)[:, :2] - move[0], axis=1)))
            gmsh.model.mesh.setNode(int(tags[i]), [*move[1], 0.0], [])
        if reverse_half:
            kind = 3 if quadrilaterals else 2
            cells, _ = gmsh.model.mesh.getElementsByType(kind)
            gmsh.model.mesh.reverseElements(cells[::2].tolist())
        gmsh.write(str(path))
    return path


@pytest.mark.parametrize("case", ["tangled", "inverted quadrilateral"])
def test_run_on_a_bad_macro_mesh_exits_2_naming_the_file(shared_tmp_path, capsys, case):
    mesh = shared_tmp_path / "bad.msh"
    if comm.rank == 0:
        if case == "tangled":  # an interior node moved across an edge: 5 % too much area
            write_distorted_rectangle(mesh, move=([1.0, 0.5], [1.0, 1.1]))
        else:
            write_distorted_rectangle(mesh, move=([1.0, 0.5], [2.2, 0.5]), quadrilaterals=True)
    comm.barrier()
    code, out = run(shared_tmp_path, study(macro={"mesh": {"file": str(mesh)}}))
    err = capsys.readouterr().err
    assert code == 2
    assert not out.exists() or not any(out.iterdir())
    if comm.rank == 0:
        assert "macro.mesh.file" in err and str(mesh) in err and "Traceback" not in err, err
        assert ("tangled" if case == "tangled" else "inverted") in err


def as_meshio_file(msh, suffix):
    """The gmsh file rewritten by meshio as .vtu (integer ``cell_tags``) or Medit .mesh."""
    import meshio

    mesh = meshio.read(msh)
    tags = [np.asarray(block, dtype=np.int32) for block in mesh.cell_data["gmsh:physical"]]
    name = "cell_tags" if suffix == ".vtu" else "medit:ref"
    path = msh.with_suffix(suffix)
    meshio.write(path, meshio.Mesh(mesh.points, [(b.type, b.data) for b in mesh.cells], cell_data={name: tags}))
    return path


@pytest.mark.parametrize("suffix", [".vtu", ".mesh"])
@pytest.mark.parametrize("case", ["tangled", "inverted quadrilateral"])
def test_the_meshio_reader_refuses_bad_macro_meshes_too(shared_tmp_path, capsys, case, suffix):
    """The same checks on the macro meshes read with meshio (other formats than .msh)."""
    mesh = None
    if comm.rank == 0:
        msh = shared_tmp_path / "bad.msh"
        if case == "tangled":
            write_distorted_rectangle(msh, move=([1.0, 0.5], [1.0, 1.1]))
        else:
            write_distorted_rectangle(msh, move=([1.0, 0.5], [2.2, 0.5]), quadrilaterals=True)
        mesh = as_meshio_file(msh, suffix)
    mesh = comm.bcast(mesh)
    code, out = run(shared_tmp_path, study(macro={"mesh": {"file": str(mesh)}}))
    err = capsys.readouterr().err
    assert code == 2
    assert not out.exists() or not any(out.iterdir())
    if comm.rank == 0:
        assert "macro.mesh.file" in err and str(mesh) in err and "Traceback" not in err, err
        assert ("tangled" if case == "tangled" else "inverted") in err


def test_a_mixed_orientation_mesh_runs(shared_tmp_path, capsys):
    mesh = shared_tmp_path / "mixed.msh"
    if comm.rank == 0:
        write_distorted_rectangle(mesh, move=None, reverse_half=True)
    comm.barrier()
    code, out = run(shared_tmp_path, study(macro={"mesh": {"file": str(mesh)}}, steps=1))
    assert code == 0, capsys.readouterr().err
    code, ref = run(shared_tmp_path, study(steps=1), out="reference")
    assert code == 0
    if comm.rank == 0:
        force = json.loads((out / "summary.json").read_text())["final_reactions"]["right"]
        expected = json.loads((ref / "summary.json").read_text())["final_reactions"]["right"]
        np.testing.assert_allclose(force, expected, rtol=1e-10, atol=1e-12)


def test_the_rve_reader_refuses_a_tangled_rve(tmp_path, capsys):
    from fe2.cli import main
    from fe2.meshing.specs import parse_mesh_spec
    import yaml

    mesh = tmp_path / "rve.msh"
    parse_mesh_spec({"type": "inclusion_2d", "volume_fraction": 0.3, "mesh_size": 0.2}).generate(mesh)
    with gmsh_session(model="edit") as gmsh:
        gmsh.open(str(mesh))
        tags, coords, _ = gmsh.model.mesh.getNodes()
        x = coords.reshape(-1, 3)
        i = int(np.argmin(np.linalg.norm(x[:, :2] - [0.5, 0.5], axis=1)))  # the centre node
        gmsh.model.mesh.setNode(int(tags[i]), [0.5, 1.3, 0.0], [])
        gmsh.write(str(mesh))
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump({
        "physics": "elasticity", "mesh": {"file": str(mesh)},
        "phases": {"matrix": {"tag": 1, "E": 3.5, "nu": 0.35}, "fibre": {"tag": 2, "E": 72.0, "nu": 0.22}},
    }))
    assert main(["homogenize", str(config), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    if comm.rank == 0:  # rank 0 prints
        assert "mesh.file" in err and str(mesh) in err and "Traceback" not in err, err
