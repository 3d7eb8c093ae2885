"""`fe2 run` with load histories: amplitudes, expressions, rotation, restarts in time, and
macro meshes from other formats (Abaqus .inp, Medit .mesh, VTK .vtu vs gmsh .msh)."""

import json

import numpy as np
import pytest
import yaml
from mpi4py import MPI

from fe2.config import load_run_config
from fe2.macro.study import run_study
from field_files import read_meshio
from test_restart import assert_same_history
from test_run import J2_LAW, history, run, study

comm = MPI.COMM_WORLD
CYCLE = [[0.0, 0.0], [1.0, 1.0], [2.0, -1.0], [3.0, 1.0]]


def cyclic(**changes) -> dict:
    """The strip pulled along x by 0.08 * cycle(t): tension, compression, tension."""
    data = study(
        boundary_conditions=[
            {"boundary": "left", "component": "x"},
            {"boundary": "bottom", "component": "y"},
            {"boundary": "right", "component": "x", "value": 0.08, "amplitude": "cycle"},
        ],
        amplitudes={"cycle": CYCLE},
        steps={"max_increment": 0.25},
    )
    data["solver"]["newton"].update(rtol=1e-12, atol=1e-14)
    data.update(changes)
    return data


def test_cyclic_loading_as_amplitude_table_or_expression_gives_the_same_numbers(shared_tmp_path):
    """The loop as an amplitude table stepped by max_increment, and as an expression of t
    with the list of times: identical history; reactions reverse with the displacement."""
    assert run(shared_tmp_path, cyclic(), out="table")[0] == 0
    wave = "0.08 * (t if t <= 1 else (3 - 2 * t if t <= 2 else 2 * t - 5))"
    expression = cyclic(
        boundary_conditions=[
            {"boundary": "left", "component": "x"},
            {"boundary": "bottom", "component": "y"},
            {"boundary": "right", "component": "x", "value": wave},  # depends on t: amplitude 1
        ],
        amplitudes={},
        steps=[0.25 * k for k in range(1, 13)],
    )
    assert run(shared_tmp_path, expression, out="expression")[0] == 0
    if comm.rank != 0:
        return
    table, expr = history(shared_tmp_path / "table"), history(shared_tmp_path / "expression")
    assert [float(r["time"]) for r in table] == [0.25 * k for k in range(1, 13)]
    assert_same_history(expr, table, rtol=1e-12)
    u = np.array([float(r["displacement_right_x"]) for r in table])
    force = np.array([float(r["reaction_right_x"]) for r in table])
    np.testing.assert_allclose(u, [0.08 * v for v in (0.25, 0.5, 0.75, 1, 0.5, 0, -0.5, -1, -0.5, 0, 0.5, 1)], atol=1e-15)
    assert force[3] > 0 and force[7] < 0 and force[11] > 0
    work = np.sum(0.5 * (force[4:] + force[3:-1]) * np.diff(u[3:]))
    assert work > 0  # the closed loop u0 -> -u0 -> u0 dissipates
    for name in ("reactions.png", "reaction_displacement.png", "convergence.png"):
        assert (shared_tmp_path / "table" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rotation_of_the_whole_boundary_through_the_config(shared_tmp_path):
    """Finite strain, the four edges of a rectangle rotated by 30 degrees about a centre in
    3 steps: the written displacement is (R - I)(x - c) and the stress is zero."""
    rotation = {"angle": "pi / 6 * t", "centre": [1.0, 0.5]}
    data = study(
        physics="finite_strain",
        material={"law": {"law": "neo_hookean", "E": 1.0, "nu": 0.3}},
        boundary_conditions=[{"boundary": b, "rotation": rotation} for b in ("left", "right", "bottom", "top")],
        steps=3,
    )
    data["solver"]["newton"].update(atol=1e-13)
    assert run(shared_tmp_path, data)[0] == 0
    if comm.rank != 0:
        return
    x, _, steps = read_meshio(shared_tmp_path / "out" / "fields.xdmf")
    t, point_data, cell_data = max(steps, key=lambda s: s[0])
    assert t == pytest.approx(1.0)  # the series' time is the pseudo-time t (3 steps to T = 1)
    u, stress = point_data["displacement"], cell_data["stress"][0]
    theta = np.pi / 6
    R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    exact = (x[:, :2] - [1.0, 0.5]) @ (R - np.eye(2)).T
    np.testing.assert_allclose(u[:, :2], exact, rtol=0, atol=1e-12)
    assert np.abs(stress).max() < 1e-10


BAD_VALUES = [
    ({"value": "__import__('os')"}, "boundary_conditions.1.value", "unknown function '__import__'"),
    ({"value": "__import__('os').system('true')"}, "boundary_conditions.1.value", "attribute access"),
    ({"value": "x.__class__"}, "boundary_conditions.1.value", "attribute access"),
    ({"value": "speed * t"}, "boundary_conditions.1.value", "unknown name 'speed'"),
    ({"value": "0.1 / (x - 2)"}, "boundary_conditions[1].value", "division by zero"),
    ({"value": "sqrt(1 - 2 * t)"}, "boundary_conditions[1].value", "is not finite at t = 0.6"),
    ({"value": "1e10 * exp(20 * t)"}, "boundary_conditions[1].value", "magnitude must be <= 1e+15"),
    ({"value": 0.1, "amplitude": "nothing"}, "boundary_conditions[1].amplitude", "no amplitude 'nothing'"),
    ({"rotation": {"angle": "x"}}, "boundary_conditions.1.rotation.angle", "the angle may depend on t only"),
    ({"rotation": {"angle": 0.1}, "component": "x"}, "boundary_conditions.1", "rotation: give it with component 'all'"),
]


@pytest.mark.parametrize("change,key,message", BAD_VALUES, ids=[m for _, _, m in BAD_VALUES])
def test_bad_expression_exits_2_naming_the_key_and_writes_nothing(shared_tmp_path, capsys, change, key, message):
    data = study(boundary_conditions=[
        {"boundary": "left", "component": "all"},
        {"boundary": "right", "component": "x", **change},
    ], steps=5, amplitudes={"cycle": CYCLE})
    code, out = run(shared_tmp_path, data)
    err = capsys.readouterr().err
    assert code == 2
    assert not out.exists() or not any(out.iterdir())  # nothing written
    if comm.rank == 0:
        assert key in err and message in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 2


def test_bad_traction_and_amplitude_tables_exit_2(shared_tmp_path, capsys):
    for change, message in [
        ({"loads": {"tractions": [{"boundary": "top", "traction": [0.0, "1 / y"]}]}},
         "loads.tractions[0].traction: division by zero"),
        ({"amplitudes": {"cycle": [[0.0, 0.0], [1.0, 1.0], [1.0, 2.0]]}}, "amplitudes.cycle: times must be"),
        ({"amplitudes": {"ramp": [[0.0, 1.0]]}}, "'ramp' is a built-in amplitude"),
    ]:
        code, out = run(shared_tmp_path, study(**change), out="bad")
        err = capsys.readouterr().err
        assert code == 2 and not (out / "history.csv").exists()
        if comm.rank == 0:
            assert message in err, err


def test_restart_appends_to_the_time_table_on_another_number_of_ranks(shared_tmp_path, capsys):
    """A cyclic run stopped at t = 1.5 continues to t = 3 with the amplitude table extended
    after the restart time, N -> 1 and 1 -> N ranks: the uninterrupted one-rank numbers. An
    amplitude changed before the restart time is refused (exit 2, naming the key)."""
    tmp = shared_tmp_path
    whole = cyclic()
    part = cyclic(amplitudes={"cycle": CYCLE[:3]}, steps=[0.25 * k for k in range(1, 7)])
    if comm.rank == 0:
        for name, data in (("whole", whole), ("part", part)):
            (tmp / f"{name}.yaml").write_text(yaml.safe_dump(data))
    comm.barrier()
    whole_config, part_config = load_run_config(tmp / "whole.yaml"), load_run_config(tmp / "part.yaml")
    if comm.rank == 0:
        run_study(whole_config, MPI.COMM_SELF, tmp / "alone")
        run_study(part_config, MPI.COMM_SELF, tmp / "one_to_n")
    comm.barrier()
    run_study(whole_config, comm, tmp / "one_to_n", restart=True)
    run_study(part_config, comm, tmp / "n_to_one")
    error = ""
    if comm.rank == 0:
        run_study(whole_config, MPI.COMM_SELF, tmp / "n_to_one", restart=True)
        try:
            for name in ("one_to_n", "n_to_one"):
                assert_same_history(history(tmp / name), history(tmp / "alone"), same_ranks=comm.size == 1)
                assert json.loads((tmp / name / "summary.json").read_text())["restarted_after_step"] == 6
        except AssertionError as exc:
            error = f"{name}: {exc}"
    error = comm.bcast(error)
    assert not error, error
    changed = cyclic(amplitudes={"cycle": [[0.0, 0.0], [1.0, 1.2], [2.0, -1.0], [3.0, 1.0]]})
    capsys.readouterr()
    code, _ = run(tmp, changed, "--restart", out="n_to_one")
    assert code == 2
    if comm.rank == 0:
        assert "amplitudes.cycle: the amplitude 'cycle' differs" in capsys.readouterr().err


# ---------------------------------------------------------------------- mesh formats


def write_formats(directory):
    """The generated strip as .msh, and the same nodes and triangles as Abaqus .inp (CPE3,
    node sets per boundary), Medit .mesh and VTK .vtu (boundary edges with integer tags)."""
    import meshio

    from fe2.meshing.macro_specs import RectangleSpec

    msh = RectangleSpec(length=2.0, height=1.0, cells_x=6, cells_y=3).generate(directory / "strip.msh")
    mesh = meshio.read(msh)
    triangles = mesh.cells_dict["triangle"]
    lines = mesh.cells_dict["line"]
    tags = mesh.cell_data_dict["gmsh:physical"]["line"]
    names = {int(v[0]): k for k, v in mesh.field_data.items() if v[1] == 1}
    lines_out = ["*HEADING", "strip", "*NODE"]
    lines_out += [f"{i + 1}, {float(p[0])!r}, {float(p[1])!r}" for i, p in enumerate(mesh.points)]
    lines_out += ["*ELEMENT, TYPE=CPE3, ELSET=domain"]
    lines_out += [f"{i + 1}, " + ", ".join(str(v + 1) for v in c) for i, c in enumerate(triangles)]
    for tag, name in names.items():
        nodes = np.unique(lines[tags == tag]) + 1
        lines_out += [f"*NSET, NSET={name}", ", ".join(str(n) for n in nodes)]
    (directory / "strip.inp").write_text("\n".join(lines_out) + "\n")
    cells = [("triangle", triangles), ("line", lines)]
    meshio.write(directory / "strip.mesh", meshio.Mesh(mesh.points, cells, cell_data={
        "medit:ref": [np.ones(len(triangles), dtype=int), tags.astype(int)]}))
    meshio.write(directory / "strip.vtu", meshio.Mesh(mesh.points, cells, cell_data={
        "cell_tags": [np.ones(len(triangles), dtype=np.int32), tags.astype(np.int32)]}))
    return names


def test_abaqus_medit_and_vtk_meshes_give_the_results_of_the_gmsh_mesh(shared_tmp_path):
    names = None
    if comm.rank == 0:
        names = write_formats(shared_tmp_path)
    names = comm.bcast(names)
    number = {name: str(tag) for tag, name in names.items()}
    results = {}
    for suffix in (".msh", ".inp", ".mesh", ".vtu"):
        named = suffix in (".msh", ".inp")  # Medit and VTK files carry numbers, no names
        label = (lambda n: n) if named else (lambda n: number[n])
        data = study(
            macro={"mesh": {"file": str(shared_tmp_path / f"strip{suffix}")}},
            boundary_conditions=[
                {"boundary": label("left"), "component": "all"},
                {"boundary": label("right"), "component": "x", "value": 0.08},
                {"boundary": label("right"), "component": "y", "value": "0.02 * y"},
            ],
            loads={"tractions": [{"boundary": label("top"), "traction": [0.0, -0.01]}]},
        )
        code, out = run(shared_tmp_path, data, out=suffix[1:])
        assert code == 0
        if comm.rank == 0:
            rows = history(out)
            results[suffix] = [[float(r[f"reaction_{label(b)}_{a}"]) for b in ("left", "right") for a in "xy"]
                               for r in rows]
    if comm.rank == 0:
        reference = np.array(results[".msh"])
        assert np.abs(reference).max() > 1e-3
        for suffix, values in results.items():
            np.testing.assert_allclose(values, reference, rtol=1e-10, atol=1e-12, err_msg=suffix)


def test_mesh_file_errors_name_the_key(shared_tmp_path, capsys):
    bad = shared_tmp_path / "bad.inp"
    if comm.rank == 0:
        bad.write_text("*NODE\n1, 0.0, 0.0\n2, 1.0, 0.0\n*ELEMENT, TYPE=T2D2\n1, 1, 2\n")
    comm.barrier()
    code, _ = run(shared_tmp_path, study(macro={"mesh": {"file": str(bad)}}))
    assert code == 2
    if comm.rank == 0:
        assert "macro.mesh.file:" in capsys.readouterr().err
