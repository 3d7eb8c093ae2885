"""`fe2 homogenize`: result files, the printed table, and one-line errors with exit code 2.

Runs in-process (all ranks call `main`, as under mpirun); under `mpiexec -n 2` the boundary
conditions are shared out over the ranks and must give the serial numbers.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from mpi4py import MPI

from fe2.cli import main
from fe2.config import load_homogenize_config
from fe2.homogenization.study import run_homogenization

REPO = Path(__file__).resolve().parents[1]
comm = MPI.COMM_WORLD

BASE = {
    "physics": "elasticity",
    "mesh": {"file": str(REPO / "meshes" / "inclusion_2d.msh")},
    "phases": {"matrix": {"tag": 1, "E": 3.5, "nu": 0.35}, "fibre": {"tag": 2, "E": 72.0, "nu": 0.22}},
    "rve": {"bc": "periodic"},
}


def write_config(directory: Path, data: dict, name: str = "study.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(data))
    return path


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_homogenize_writes_effective_json(tmp_path, capsys):
    config = write_config(tmp_path, BASE)
    code, out, err = run(["homogenize", config, "--output", tmp_path / "out"], capsys)
    assert code == 0, err
    if comm.rank == 0:
        record = json.loads((tmp_path / "out" / "effective.json").read_text())
        for key in ("physics", "dim", "bc", "C", "volume_fractions", "hill_mandel_residual", "dofs", "timings"):
            assert key in record, key
        assert record["bc"] == "periodic" and record["dim"] == 2
        assert np.array(record["C"]).shape == (3, 3)
        assert record["hill_mandel_residual"] < 1e-10
        assert abs(sum(record["volume_fractions"].values()) - 1) < 1e-12
        assert "periodic BC" in out


def test_bc_all_prints_five_tensors_in_order_and_matches_single_rank(tmp_path, capsys):
    config = write_config(tmp_path, BASE)
    code, out, err = run(["homogenize", config, "--bc", "all", "-o", tmp_path / "all"], capsys)
    assert code == 0, err
    # Reference on this rank alone (COMM_SELF): the MPI split must not change the numbers.
    reference = run_homogenization(
        load_homogenize_config(config), bcs=["affine", "periodic", "traction"], comm=MPI.COMM_SELF
    )
    if comm.rank == 0:
        titles = ["Voigt bound\n", "affine BC  (", "periodic BC  (", "traction BC  (", "Reuss bound\n"]
        positions = [out.find(title) for title in titles]
        assert min(positions) >= 0 and positions == sorted(positions), positions
        assert "Loewner order Voigt >= affine >= periodic >= traction >= Reuss: holds" in out
        for bc in ("affine", "periodic", "traction"):
            record = json.loads((tmp_path / "all" / f"effective_{bc}.json").read_text())
            np.testing.assert_allclose(record["C"], reference.effective[bc].C, rtol=1e-12, atol=0)
        bounds = json.loads((tmp_path / "all" / "bounds.json").read_text())
        np.testing.assert_allclose(bounds["voigt"], reference.bounds["voigt"], rtol=1e-14)
        assert set(bounds) >= {"voigt", "reuss"}


def test_generated_mesh_and_conduction(tmp_path, capsys):
    data = {
        "physics": "conduction",
        "mesh": {"generate": {"type": "laminate_2d", "fractions": [0.5, 0.5], "mesh_size": 0.25}},
        "phases": {"a": {"tag": 1, "k": 1.0}, "b": {"tag": 2, "k": 3.0}},
    }
    code, out, err = run(["homogenize", write_config(tmp_path, data), "-o", tmp_path / "o"], capsys)
    assert code == 0, err
    if comm.rank == 0:
        record = json.loads((tmp_path / "o" / "effective.json").read_text())
        np.testing.assert_allclose(record["K"], [[1.5, 0], [0, 2.0]], rtol=1e-10, atol=1e-12)
        assert (tmp_path / "o" / "rve.msh").is_file()


def _set(data: dict, dotted: str, value):
    data = json.loads(json.dumps(data))
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


_DELETE = object()

BAD_CONFIGS = [
    # (change, expected text in the one-line error)
    (("phases.matrix.Ee", 3.0), "phases.matrix.Ee: unknown key (did you mean 'E'?)"),
    (("rve.bcc", "periodic"), "rve.bcc: unknown key (did you mean 'bc'?)"),
    (("phases.matrix.E", "stiff"), "phases.matrix.E"),
    (("phases.matrix.E", 0.0), "phases.matrix.E: Input should be greater than 0"),
    (("phases.matrix.E", -2.0), "phases.matrix.E"),
    (("phases.fibre.nu", 0.5), "phases.fibre.nu: Input should be less than 0.5"),
    (("phases.fibre.nu", -1.2), "phases.fibre.nu: Input should be greater than -1"),
    (("physics", "plasticity"), "physics: Input should be 'elasticity', 'generalized_plane_strain', 'finite_strain' or 'conduction'"),
    (("rve.bc", "dirichlet"), "rve.bc"),
    (("mesh.file", "no/such/mesh.msh"), "mesh.file: no such mesh file"),
    (("phases.fibre.tag", 7), "phases.fibre.tag: tag 7 is not a cell tag of the mesh"),
    (("phases.fibre.tag", 1), ".tag: tag 1 is already used by phase '"),
    (("phases.fibre", _DELETE), "phases: the mesh cell tags [2]"),
    (("phases.matrix.E", _DELETE), "phases.matrix.E: required key is missing"),
    (("phases.matrix.k", 1.0), "phases.matrix.k: unknown key"),
    (("rve.degree", 0), "rve.degree"),
]


@pytest.mark.parametrize("change,message", BAD_CONFIGS, ids=[c[0][0] for c in BAD_CONFIGS])
def test_bad_config_exits_2_with_one_named_message_and_writes_nothing(tmp_path, capsys, change, message):
    config = write_config(tmp_path, _set(BASE, *change))
    out_dir = tmp_path / "out"
    code, out, err = run(["homogenize", config, "--output", out_dir], capsys)
    assert code == 2
    assert not out_dir.exists()
    if comm.rank == 0:
        assert message in err, err
        assert "Traceback" not in err + out


def test_conduction_phase_needs_k(tmp_path, capsys):
    data = _set(BASE, "physics", "conduction")
    config = write_config(tmp_path, data)
    code, _, err = run(["homogenize", config, "-o", tmp_path / "out"], capsys)
    assert code == 2
    if comm.rank == 0:
        assert "phases.matrix.k: required key is missing" in err
        assert "phases.matrix.E: unknown key" in err
        assert "phases.matrix.k" in err and "k must be" not in err
    conductor = _set(data, "phases", {"m": {"tag": 1, "k": -1.0}, "f": {"tag": 2, "k": 2.0}})
    code, _, err = run(["homogenize", write_config(tmp_path, conductor), "-o", tmp_path / "out"], capsys)
    assert code == 2
    if comm.rank == 0:
        assert "phases.m.k: Input should be greater than 0" in err


def test_unreadable_files_exit_2(tmp_path, capsys):
    code, _, err = run(["homogenize", tmp_path / "missing.yaml"], capsys)
    assert code == 2
    (tmp_path / "bad.yaml").write_text("physics: [unclosed\n")
    code, _, err = run(["homogenize", tmp_path / "bad.yaml"], capsys)
    assert code == 2
    if comm.rank == 0:
        assert "not valid YAML" in err
    (tmp_path / "fake.msh").write_text("this is not a mesh\n")
    config = write_config(tmp_path, _set(BASE, "mesh.file", str(tmp_path / "fake.msh")))
    code, _, err = run(["homogenize", config, "-o", tmp_path / "out"], capsys)
    assert code == 2 and not (tmp_path / "out").exists()
    if comm.rank == 0:
        assert "mesh.file:" in err and "fake.msh" in err


def _non_periodic_mesh(path: Path) -> None:
    """A unit square whose left and right sides carry different numbers of nodes."""
    import gmsh

    gmsh.initialize(readConfigFiles=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("skew")
        gmsh.model.occ.addRectangle(0, 0, 0, 1, 1)
        gmsh.model.occ.synchronize()
        for _, curve in gmsh.model.getEntities(1):
            x = gmsh.model.occ.getCenterOfMass(1, curve)
            gmsh.model.mesh.setTransfiniteCurve(curve, 7 if x[0] > 0.99 else 5)
        gmsh.model.addPhysicalGroup(2, [1], 1, name="matrix")
        gmsh.model.mesh.generate(2)
        gmsh.write(str(path))
    finally:
        gmsh.finalize()


def test_non_periodic_mesh_with_periodic_bc_exits_2(tmp_path, capsys):
    mesh = tmp_path / "skew.msh"
    _non_periodic_mesh(mesh)
    data = _set(BASE, "mesh.file", str(mesh))
    data = _set(data, "phases", {"matrix": {"tag": 1, "E": 1.0, "nu": 0.3}})
    config = write_config(tmp_path, data)
    code, out, err = run(["homogenize", config, "--bc", "all", "-o", tmp_path / "out"], capsys)
    assert code == 2
    assert not (tmp_path / "out").exists()
    if comm.rank == 0:
        assert "not periodic" in err and "Traceback" not in err
    code, _, err = run(["homogenize", config, "--bc", "affine", "-o", tmp_path / "out"], capsys)
    assert code == 0, err


def test_existing_output_is_not_replaced_without_overwrite(tmp_path, capsys):
    config = write_config(tmp_path, BASE)
    assert run(["homogenize", config, "-o", tmp_path / "o"], capsys)[0] == 0
    code, _, err = run(["homogenize", config, "-o", tmp_path / "o"], capsys)
    assert code == 2
    if comm.rank == 0:
        assert "--overwrite" in err
    assert run(["homogenize", config, "-o", tmp_path / "o", "--overwrite"], capsys)[0] == 0


@pytest.mark.skipif(comm.size > 1, reason="spawns the console script; serial only")
def test_console_script_exit_code_and_no_traceback(tmp_path):
    config = write_config(tmp_path, _set(BASE, "phases.matrix.nu", 0.7))
    fe2 = Path(sys.executable).with_name("fe2")
    result = subprocess.run([fe2, "homogenize", config], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("  phases.matrix.nu: Input should be less than 0.5")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


def test_validate_and_schema(tmp_path, capsys):
    for name in ("plate_fe2", "fibre_2d", "plastic_fibres_2d", "plate_linear_rve", "rubber_2d"):
        code, out, _ = run(["validate", REPO / "configs" / f"{name}.yaml"], capsys)
        assert code == 0
        if comm.rank == 0:
            assert "valid" in out
    bad = write_config(tmp_path, _set(BASE, "phases.matrix.nu", 0.5), name="bad.yaml")
    code, _, err = run(["validate", bad], capsys)
    assert code == 2
    if comm.rank == 0:
        assert "phases.matrix.nu: Input should be less than 0.5" in err
    for kind, sections in (("run", {"macro", "material", "boundary_conditions", "parallel"}),
                           ("homogenize", {"mesh", "phases", "load_path"})):
        code, out, _ = run(["schema", kind], capsys)
        assert code == 0
        if comm.rank == 0:
            schema = json.loads(out)
            assert sections <= set(schema["properties"]) and schema["additionalProperties"] is False


def test_log_file(tmp_path, capsys):
    log = tmp_path / "fe2.log"
    code, _, _ = run(["homogenize", write_config(tmp_path, BASE), "-o", tmp_path / "o", "--log-file", log], capsys)
    assert code == 0
    if comm.rank == 0:
        text = log.read_text()
        assert "periodic" in text and text[:4].isdigit()  # time-stamped lines
