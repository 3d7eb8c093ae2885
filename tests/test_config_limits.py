"""Config values that used to pass validation and give wrong answers or tracebacks: non-finite
and huge numbers, unbounded sizes, alias bombs, encodings, YAML 1.1 `off` (issue 12, item 1).

Every case must exit 2 from `fe2 validate` with one line naming the key (or the file), never a
traceback. Serial only: `fe2 validate` does no MPI work.
"""

import json
import subprocess
import sys
import time

import pytest
import yaml
from mpi4py import MPI

from fe2.cli import main
from test_config_fuzz import HOMOGENIZE, RUN

pytestmark = pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="validation runs serially")


def changed(base: dict, path: str, value) -> dict:
    data = json.loads(json.dumps(base))
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


def validate(tmp_path, capsys, data, text=None):
    config = tmp_path / "study.yaml"
    if text is None:
        config.write_text(yaml.safe_dump(data))
    else:
        config.write_bytes(text if isinstance(text, bytes) else text.encode())
    code = main(["validate", str(config)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


INF, NAN = float("inf"), float("nan")
RVE_RUN = changed(RUN, "material", {"rve": {
    "mesh": {"generate": {"type": "inclusion_2d", "volume_fraction": 0.3, "mesh_size": 0.1}},
    "phases": {"matrix": {"tag": 1, "E": 3.5, "nu": 0.35}, "fibre": {"tag": 2, "E": 72.0, "nu": 0.22}},
}})
CASES = [  # (study, key path, value, the key the message must name)
    (RUN, "steps", [NAN], "steps"),
    (RUN, "steps", [0.5, INF], "steps"),
    (RUN, "steps", 1_000_000_000, "limits.steps"),
    (RUN, "solver.newton.atol", INF, "solver.newton.atol"),
    (RUN, "solver.newton.atol", 1e308, "solver.newton.atol"),
    (RUN, "material.law.E", INF, "material.law.E"),
    (RUN, "material.law.E", 1e308, "material.law.E"),
    (RUN, "material.law.E", NAN, "material.law.E"),
    (RUN, "material.law.sigma_y", INF, "material.law.sigma_y"),
    (RUN, "material.law.H", INF, "material.law.H"),
    (RUN, "boundary_conditions.2.value", INF, "boundary_conditions.2.value"),
    (RUN, "boundary_conditions.2.value", 1e308, "boundary_conditions.2.value"),
    (RUN, "loads.tractions.0.traction", [0.0, NAN], "loads.tractions.0.traction"),
    (RUN, "loads.body_force", [1e308, 0.0], "loads.body_force"),
    (RUN, "output.probes", {"p": [NAN, 0.5]}, "output.probes.p"),
    (RUN, "solver.petsc_options", {"ksp_rtol": INF}, "solver.petsc_options.ksp_rtol"),
    (RVE_RUN, "material.rve.solver", {"newton": {"atol": INF}}, "material.rve.solver.newton.atol"),
    (RVE_RUN, "material.rve.mesh.generate.mesh_size", 1e-4, "limits.cells"),
    (RVE_RUN, "material.rve.mesh.generate.size", INF, "material.rve.mesh.generate.size"),
    (RUN, "macro.mesh", {"generate": {"type": "rectangle", "mesh_size": 1e-4}}, "limits.cells"),
    (HOMOGENIZE, "phases.matrix.E", INF, "phases.matrix.E"),
    (HOMOGENIZE, "load_path", {"strain": [[INF, 0.0], [0.0, 0.0]]}, "load_path.strain"),
    (changed(HOMOGENIZE, "limits", {"steps": 10}), "load_path", {"strains": [[0.01, 0.0, 0.0]] * 11}, "limits.steps"),
    (changed(HOMOGENIZE, "limits", {"list_length": 10}), "solver.petsc_options", {f"o{i}": 1 for i in range(11)}, "limits.list_length"),
]


CYCLE = changed(RUN, "amplitudes", {"cycle": [[0.0, 0.0], [1.0, 1.0], [2.0, -1.0]]})
ROTATED = changed(RUN, "boundary_conditions.2", {"boundary": "right", "rotation": {"angle": 0.1}})
CASES += [  # the loading in pseudo-time (issue 11): every new number and list is bounded too
    (RUN, "end_time", INF, "end_time"),
    (RUN, "end_time", 1e308, "end_time"),
    (RUN, "steps", {"max_increment": NAN}, "steps.max_increment"),
    (RUN, "steps", {"max_increment": 1e-6}, "limits.steps"),  # 1e6 steps to end_time 1
    (changed(RUN, "end_time", 1e15), "steps", {"max_increment": 1e-300}, "limits.steps"),  # count overflows
    (changed(RUN, "limits", {"steps": 10}), "steps", [0.1 * k for k in range(1, 12)], "limits.steps"),
    (CYCLE, "steps", {"max_increment": 1e-5}, "limits.steps"),  # 2e5 steps through the break points
    (CYCLE, "amplitudes.cycle", [[0.0, 0.0], [INF, 1.0]], "amplitudes.cycle"),
    (CYCLE, "amplitudes.cycle", [[0.0, 0.0], [1.0, 1e308]], "amplitudes.cycle"),
    (changed(CYCLE, "limits", {"list_length": 50}), "amplitudes.cycle",
     [[0.1 * k, 1.0] for k in range(51)], "amplitudes.cycle"),
    (ROTATED, "boundary_conditions.2.rotation.angle", INF, "boundary_conditions.2.rotation.angle"),
    (ROTATED, "boundary_conditions.2.rotation.centre", [NAN, 0.0], "boundary_conditions.2.rotation.centre"),
    (ROTATED, "boundary_conditions.2.rotation.centre", [1e308, 0.0], "boundary_conditions.2.rotation.centre"),
    (RUN, "boundary_conditions.2.value", "x * t" + " + x" * 700, "boundary_conditions.2.value"),  # > 2000 characters
    (RUN, "loads.tractions.0.traction", [0.0, "1" + " + y" * 600], "loads.tractions.0.traction"),  # > 500 terms
]


@pytest.mark.parametrize("base,path,value,key", CASES, ids=[f"{c[1]}={str(c[2])[:12]}" for c in CASES])
def test_non_finite_huge_and_unbounded_values_exit_2_naming_the_key(tmp_path, capsys, base, path, value, key):
    code, err = validate(tmp_path, capsys, changed(base, path, value))
    assert code == 2, err
    assert err.startswith("error:") and key in err, err


def test_limits_can_be_raised(tmp_path, capsys):
    data = changed(RUN, "steps", 200_000)
    assert validate(tmp_path, capsys, data)[0] == 2
    data["limits"] = {"steps": 300_000}
    assert validate(tmp_path, capsys, data)[0] == 0


def test_balancing_off_as_documented(tmp_path, capsys):
    text = yaml.safe_dump({k: v for k, v in RUN.items() if k != "parallel"}) + "parallel: {balancing: off}\n"
    code, err = validate(tmp_path, capsys, None, text)
    assert code == 0, err


@pytest.mark.parametrize("encoding", ["utf-16", "latin-1"])
def test_files_that_are_not_utf8_give_one_line(tmp_path, capsys, encoding):
    text = yaml.safe_dump(RUN) + "# Prüfung\n"
    code, err = validate(tmp_path, capsys, None, text.encode(encoding))
    assert code == 2 and "UTF-8" in err and err.count("\n") == 1, err


def test_a_large_file_is_refused_before_parsing(tmp_path, capsys):
    text = yaml.safe_dump(RUN) + "steps: [" + ", ".join(["0.5"] * 3_000_000) + "]\n"
    start = time.process_time()  # CPU time: the machine is shared
    code, err = validate(tmp_path, capsys, None, text)
    assert code == 2 and "FE2_MAX_CONFIG_BYTES" in err, err
    assert time.process_time() - start < 5.0


def test_recursive_alias_is_refused(tmp_path, capsys):
    code, err = validate(tmp_path, capsys, None, yaml.safe_dump(RUN) + "x: &a [*a]\n")
    assert code == 2 and "aliases" in err, err


BOMB = "\n".join(
    ["a0: &a0 [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]"]
    + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
)


@pytest.mark.parametrize("where", ["steps", "output.probes"])
def test_yaml_billion_laughs_is_refused_quickly_in_little_memory(tmp_path, where):
    """Aliases expanding to 9^10 values, under `steps` or `output.probes`: rejected in a fresh
    process in < 2 s of CPU time (not wall time: the machine is shared) and < 200 MB (its peak
    resident set), naming the file, not echoing it."""
    body = {k: v for k, v in RUN.items() if k not in ("steps", "output")}
    tail = "steps: *a9\n" if where == "steps" else "output: {probes: {p: *a9}}\n"
    config = tmp_path / "bomb.yaml"
    anchors = "\n".join("  " + line for line in BOMB.splitlines())
    config.write_text(yaml.safe_dump(body) + "anchors:\n" + anchors + "\n" + tail)
    # the child's own peak resident set: VmHWM (ru_maxrss would include the parent's peak,
    # inherited across fork and exec)
    script = (
        "import sys, time; from fe2.cli import main; "
        "t = time.process_time(); code = main(['validate', sys.argv[1]]); seconds = time.process_time() - t; "
        "peak = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]; "
        "print(seconds, peak); sys.exit(code)"
    )
    result = subprocess.run([sys.executable, "-c", script, str(config)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    seconds, peak_kb = result.stdout.split()
    assert float(seconds) < 2.0
    assert int(peak_kb) < 200 * 1024
    assert "aliases" in result.stderr and result.stderr.count("\n") == 1 and len(result.stderr) < 400
