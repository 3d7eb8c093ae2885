"""Property-based: malformed study files end with exit code 2 and a message naming the key.

Hypothesis derives configs from valid `fe2 run` and `fe2 homogenize` studies by one mutation at
a random place: a key removed, a value of a wrong type, an out-of-range number, an unknown key,
a missing file. `fe2 validate` and `fe2 run` / `fe2 homogenize` must exit 2 (or 0 when the
mutation happens to be valid) and never show a traceback; an error names the mutated key.
Deterministic (derandomized) so that CI runs the same examples. Serial only.
"""

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mpi4py import MPI

from fe2.cli import main

pytestmark = pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="CLI fuzzing runs serially")

REPO = Path(__file__).resolve().parents[1]
RUN = {
    "physics": "elasticity",
    "macro": {"mesh": {"file": str(REPO / "meshes" / "plate_with_hole.msh")}, "degree": 1},
    "material": {"law": {"law": "j2", "E": 3.5, "nu": 0.35, "sigma_y": 0.06, "H": 0.3}},
    "boundary_conditions": [
        {"boundary": "left", "component": "x", "value": 0.0},
        {"boundary": "bottom", "component": "y"},
        {"boundary": "right", "component": "x", "value": 0.01},
    ],
    "loads": {"tractions": [{"boundary": "top", "traction": [0.0, 0.001]}], "body_force": [0.0, 0.0]},
    "steps": 1,
    "solver": {"newton": {"rtol": 1e-8, "max_iterations": 10}, "max_cutbacks": 2},
    "parallel": {"balancing": "off"},
    "output": {"fields_every": 0},
}
HOMOGENIZE = {
    "physics": "elasticity",
    "mesh": {"file": str(REPO / "meshes" / "inclusion_2d.msh")},
    "phases": {"matrix": {"tag": 1, "E": 3.5, "nu": 0.35}, "fibre": {"tag": 2, "law": "linear_elastic", "E": 72.0, "nu": 0.22}},
    "rve": {"bc": "affine", "degree": 1},
    "solver": {"newton": {"rtol": 1e-10}, "petsc_options": {"pc_type": "lu"}},
}
STUDIES = {"run": RUN, "homogenize": HOMOGENIZE}


def paths(node, prefix=()):
    """Every key path of a nested dict/list document."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return []
    found = []
    for key, value in items:
        found.append(prefix + (key,))
        found += paths(value, prefix + (key,))
    return found


WRONG_VALUES = st.one_of(
    st.none(), st.booleans(), st.text(max_size=8), st.integers(-10**6, 10**6),
    st.floats(allow_nan=True, allow_infinity=True), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(min_size=1, max_size=5), st.integers(), max_size=2),
    st.sampled_from([-1.0, 0.0, 0.5, 0.7, 1e9, -1e-9, "x", "all", "no/such/file.msh", [[1.0, 2.0, 3.0]]]),
)


@st.composite
def mutated(draw):
    kind = draw(st.sampled_from(sorted(STUDIES)))
    data = json.loads(json.dumps(STUDIES[kind]))
    path = draw(st.sampled_from(paths(data)))
    *parents, last = path
    node = data
    for key in parents:
        node = node[key]
    actions = ["delete", "replace"]
    if isinstance(node, dict) or isinstance(node[last], dict):
        actions.append("unknown")
    action = draw(st.sampled_from(actions))
    if action == "delete":
        del node[last]
    elif action == "replace":
        node[last] = draw(WRONG_VALUES)
    else:
        target = node[last] if isinstance(node[last], dict) else node
        name = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)) + "_x"
        target[name] = 1
        path = (*path, name) if target is not node else (*parents, name)
    return kind, data, [str(p) for p in path if not isinstance(p, int)]


def float_paths(node, prefix=()):
    """Key paths of every float and of every list."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        path = prefix + (key,)
        if isinstance(value, float):
            found.append(("number", path))
        elif isinstance(value, list):
            found.append(("list", path))
        found += float_paths(value, path)
    return found


NON_FINITE_OR_HUGE = st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e308, -1e300, 1e16])


@st.composite
def non_finite_or_huge(draw):
    """One number replaced by a non-finite or huge value, or one list by a huge list."""
    kind = draw(st.sampled_from(sorted(STUDIES)))
    data = json.loads(json.dumps(STUDIES[kind]))
    what, path = draw(st.sampled_from(float_paths(data)))
    *parents, last = path
    node = data
    for key in parents:
        node = node[key]
    if what == "number":
        node[last] = draw(NON_FINITE_OR_HUGE)
    else:  # a list longer than limits.list_length (lowered to keep the files small)
        node[last] = [node[last][0]] * 51 if node[last] else [0.5] * 51
        data["limits"] = {"list_length": 50}
    return kind, data, [str(p) for p in path if not isinstance(p, int)], what


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=non_finite_or_huge())
def test_non_finite_huge_numbers_and_lists_exit_2_naming_the_key(tmp_path, capsys, case):
    """Every number of the schema finite and bounded, every list bounded: `fe2 validate`
    refuses a NaN, an infinity, a magnitude beyond 1e15 or more items than limits.list_length,
    naming the key."""
    kind, data, names, what = case
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(data))
    code = main(["validate", str(config)])
    err = capsys.readouterr().err
    assert code == 2, (names, err)
    _check(code, err, names)


def _check(code, err, names):
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert err.startswith("error:"), err
        assert any(name in err for name in names), (names, err)


@settings(max_examples=1000, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=mutated())
def test_malformed_configs_exit_2_naming_the_key(tmp_path, capsys, case):
    kind, data, names = case
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(data))
    code = main(["validate", str(config)])
    _check(code, capsys.readouterr().err, names)
    if code == 2 or kind == "homogenize":
        output = tmp_path / f"out-{abs(hash(yaml.safe_dump(data)))}"
        code = main([kind, str(config), "-o", str(output), "-q", "--overwrite"])
        _check(code, capsys.readouterr().err, names)
        if code == 2:
            assert not output.exists() or not any(output.iterdir())
