"""Generalised plane strain: the full 3D tensor of a 2D section (physics
generalized_plane_strain), verified against independent computations:

* a homogeneous section returns the 3D isotropic tensor (all BCs, P1-P3, both backends);
* its in-plane block is the plane-strain tensor, its anti-plane block the conductivity of the
  same section with k = mu (anti-plane shear is a scalar potential problem), the blocks are
  uncoupled for isotropic phases;
* equal Poisson ratios: the longitudinal modulus is the rule of mixtures exactly (Hill 1964);
  unequal: slightly above it;
* a laminate: the exact 3D laminate tensor (all 36 entries);
* the same fibres extruded along x3 into a 3D RVE (periodic): the same tensor, and the same
  J2 load path with out-of-plane components;
* a homogeneous J2 section under mixed control: the closed-form 3D law.

Every RVE lives on MPI.COMM_SELF, so under `mpiexec -n 2` each rank repeats the checks.
"""

import json
from pathlib import Path

import basix.ufl
import dolfinx
import numpy as np
import pytest
import ufl
import yaml
from mpi4py import MPI

from fe2.cli import main
from fe2.homogenization.engineering import ISOTROPY_TOLERANCE, engineering_constants, stiffness_from_constants
from fe2.homogenization.mixed_control import MixedOptions, MixedState, MixedTarget, reach_target
from fe2.materials import J2Plasticity, LinearConductor, LinearElastic
from fe2.materials.points import LawPoints
from fe2.physics import make_physics
from fe2.rve.effective import effective_tensor
from fe2.rve.factory import make_rve_solver
from fe2.rve.micro_solver import NewtonOptions
from fe2.rve.model import RveModel
from fe2.rve.pool import RvePool

comm = MPI.COMM_WORLD
BCS = ("affine", "periodic", "traction")
ROUND_OFF = 1e-10
GLASS_EPOXY = {1: LinearElastic(E=3.5, nu=0.35), 2: LinearElastic(E=72.0, nu=0.22)}
IN_PLANE, ANTI_PLANE = [0, 1, 5], [4, 3]  # Mandel 11, 22, 12 and 13, 23
RANDOM_FIBRES = dict(type="random_inclusions_2d", n=5, volume_fraction=0.4, min_gap=0.03, seed=3, mesh_size=0.05)


def section(rve, phases, degree=1, physics="generalized_plane_strain"):
    return RveModel(rve.mesh, rve.cell_tags, make_physics(physics, 2), phases, degree=degree)


def relative(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(b).max()


def extrude(rve, *, layers, thickness):
    """The 3D RVE of a 2D section extruded along x3: each triangle x layer is a prism cut into
    three tetrahedra by the vertex order (conforming across prisms); periodic node sets on
    every face pair. Returns (mesh, cell tags) on MPI.COMM_SELF."""
    mesh = rve.mesh
    x2, triangles = mesh.geometry.x[:, :2], mesh.geometry.dofmaps[0]
    tags = np.empty(len(triangles), dtype=np.int32)
    tags[rve.cell_tags.indices] = rve.cell_tags.values
    n = len(x2)
    x = np.vstack([np.column_stack([x2, np.full(n, k * thickness / layers)]) for k in range(layers + 1)])
    i, j, k = np.sort(triangles, axis=1).T
    tets = []
    for layer in range(layers):
        lo, hi = layer * n, (layer + 1) * n
        tets += [np.column_stack(c) for c in ((i + lo, j + lo, k + lo, k + hi), (i + lo, j + lo, j + hi, k + hi),
                                              (i + lo, i + hi, j + hi, k + hi))]
    tets = np.vstack(tets).astype(np.int64)
    tet_tags = np.tile(tags, 3 * layers)
    domain = ufl.Mesh(basix.ufl.element("Lagrange", "tetrahedron", 1, shape=(3,)))
    solid = dolfinx.mesh.create_mesh(MPI.COMM_SELF, tets, domain, x)
    cells = solid.topology.index_map(3).size_local
    original = np.asarray(solid.topology.original_cell_index[:cells])
    return solid, dolfinx.mesh.meshtags(solid, 3, np.arange(cells, dtype=np.int32), tet_tags[original])


@pytest.fixture(scope="module")
def fibres(make_mesh):
    return make_mesh(**RANDOM_FIBRES)


# ----------------------------------------------------------------- homogeneous section


@pytest.mark.parametrize("degree", [1, 2, 3])
@pytest.mark.parametrize("batch", ["auto", "off"])
def test_homogeneous_section_returns_the_full_isotropic_tensor(make_mesh, degree, batch):
    rve = make_mesh(type="inclusion_2d", volume_fraction=0.3, mesh_size=0.15)
    law = LinearElastic(E=3.0, nu=0.3)
    model = section(rve, {1: law, 2: law}, degree)
    for bc in BCS:
        C = effective_tensor(model, bc, batch=batch).C
        assert C.shape == (6, 6)
        assert relative(C, law.tangent(3)) < ROUND_OFF, bc


def test_iterative_solver_gives_the_direct_answer(fibres):
    """CG + GAMG with the section's near null space (3 translations, the in-plane rotation)."""
    model = section(fibres, GLASS_EPOXY, 2)
    for bc in BCS:
        direct = effective_tensor(model, bc, linear_solver="direct").C
        assert relative(effective_tensor(model, bc, linear_solver="iterative").C, direct) < 1e-8, bc


# ----------------------------------------------------------------- blocks = 2D problems


@pytest.mark.parametrize("bc", BCS)
@pytest.mark.parametrize("degree", [1, 2])
def test_blocks_equal_plane_strain_and_antiplane_conduction(fibres, bc, degree):
    """In-plane block = the plane-strain tensor of the same section; anti-plane block / 2 =
    the conductivity of the section with k = mu (sigma_i3 = mu u3,i; G13 = C_(13)(13) / 2 in
    Mandel form); isotropic phases do not couple the two."""
    C = effective_tensor(section(fibres, GLASS_EPOXY, degree), bc).C
    plane = effective_tensor(section(fibres, GLASS_EPOXY, degree, "elasticity"), bc).C
    conductors = {tag: LinearConductor(k=law.lame[1]) for tag, law in GLASS_EPOXY.items()}
    K = effective_tensor(section(fibres, conductors, degree, "conduction"), bc).C
    assert relative(C[np.ix_(IN_PLANE, IN_PLANE)], plane) < ROUND_OFF
    assert relative(C[np.ix_(ANTI_PLANE, ANTI_PLANE)] / 2, K) < ROUND_OFF
    assert np.abs(C[np.ix_(IN_PLANE + [2], ANTI_PLANE)]).max() < ROUND_OFF * np.abs(C).max()
    assert relative(C, C.T) < ROUND_OFF


# ----------------------------------------------------------------- longitudinal modulus


@pytest.mark.parametrize("bc", BCS)
def test_equal_poisson_ratios_give_the_rule_of_mixtures_exactly(fibres, bc):
    """Hill (1964): with nu_f = nu_m the fibre-direction response is affine for any section,
    E3 = sum f_i E_i and nu31 = nu32 = nu exactly (f_i the meshed fractions)."""
    phases = {1: LinearElastic(E=3.5, nu=0.3), 2: LinearElastic(E=72.0, nu=0.3)}
    model = section(fibres, phases)
    fractions = model.volume_fractions()
    constants = engineering_constants(effective_tensor(model, bc).C)
    rule = sum(fractions[tag] * law.E for tag, law in phases.items())
    assert constants["E3"] == pytest.approx(rule, rel=ROUND_OFF)
    assert constants["nu31"] == pytest.approx(0.3, rel=ROUND_OFF)
    assert constants["nu32"] == pytest.approx(0.3, rel=ROUND_OFF)


def test_longitudinal_modulus_is_slightly_above_the_rule_of_mixtures(fibres):
    """nu_f != nu_m: E3 exceeds the rule of mixtures (Hill's bound) by a small amount (the
    lateral constraint between phases; of order f(1-f)(nu_f - nu_m)^2 relative)."""
    model = section(fibres, GLASS_EPOXY)
    fractions = model.volume_fractions()
    rule = sum(fractions[tag] * law.E for tag, law in GLASS_EPOXY.items())
    for bc in BCS:
        E3 = engineering_constants(effective_tensor(model, bc).C)["E3"]
        assert 0 < (E3 - rule) / rule < 5e-3, bc


# ----------------------------------------------------------------- laminate


def laminate_3d(layers, fractions):
    """Exact 3D stiffness (Mandel) of layers normal to x1: sigma_11, sigma_12, sigma_13 (t)
    are the same in every layer, eps_22, eps_33, eps_23 (p) too; then
    C_tt = <C_tt^-1>^-1, C_tp = C_tt <C_tt^-1 C_tp>,
    C_pp = <C_pp - C_pt C_tt^-1 C_tp> + <C_pt C_tt^-1> C_tt <C_tt^-1 C_tp>."""
    t, p = [0, 4, 5], [1, 2, 3]
    avg = lambda values: sum(f * v for f, v in zip(fractions, values))  # noqa: E731
    blocks = [(C[np.ix_(t, t)], C[np.ix_(t, p)], C[np.ix_(p, t)], C[np.ix_(p, p)]) for C in (law.tangent(3) for law in layers)]
    inverse = [np.linalg.inv(tt) for tt, _, _, _ in blocks]
    Ctt = np.linalg.inv(avg(inverse))
    right = avg([i @ tp for i, (_, tp, _, _) in zip(inverse, blocks)])
    left = avg([pt @ i for i, (_, _, pt, _) in zip(inverse, blocks)])
    Cpp = avg([pp - pt @ i @ tp for i, (_, tp, pt, pp) in zip(inverse, blocks)]) + left @ Ctt @ right
    C = np.zeros((6, 6))
    C[np.ix_(t, t)], C[np.ix_(t, p)], C[np.ix_(p, t)], C[np.ix_(p, p)] = Ctt, Ctt @ right, left @ Ctt, Cpp
    return C


@pytest.mark.parametrize("degree", [1, 2])
def test_laminate_section_gives_the_exact_3d_laminate(make_mesh, degree):
    fractions = [0.2, 0.5, 0.3]
    layers = [LinearElastic(E=1.0, nu=0.3), LinearElastic(E=10.0, nu=0.2), LinearElastic(E=3.0, nu=0.45)]
    rve = make_mesh(type="laminate_2d", fractions=fractions, mesh_size=0.08)
    C = effective_tensor(section(rve, {i + 1: law for i, law in enumerate(layers)}, degree), "periodic").C
    assert relative(C, laminate_3d(layers, fractions)) < ROUND_OFF


# ----------------------------------------------------------------- extruded 3D RVE


def test_section_equals_its_extrusion_p1(fibres):
    """P1, periodic: the tensor of the extruded 3D RVE (tetrahedra) = the section's, to
    round-off (the z-independent fields of the section are its solution)."""
    solid, tags = extrude(fibres, layers=2, thickness=0.1)
    C2 = effective_tensor(section(fibres, GLASS_EPOXY), "periodic").C
    C3 = effective_tensor(RveModel(solid, tags, make_physics("elasticity", 3), GLASS_EPOXY), "periodic").C
    assert relative(C3, C2) < 1e-10


@pytest.mark.slow
def test_section_equals_its_extrusion_p2(fibres):
    """P2 (37 k dofs in 3D, ~15 s): the richer 3D space differs from the section's by far less
    than the section's own discretisation error (its P1-P2 difference)."""
    solid, tags = extrude(fibres, layers=2, thickness=0.1)
    C1 = effective_tensor(section(fibres, GLASS_EPOXY, 1), "periodic").C
    C2 = effective_tensor(section(fibres, GLASS_EPOXY, 2), "periodic").C
    C3 = effective_tensor(RveModel(solid, tags, make_physics("elasticity", 3), GLASS_EPOXY, degree=2), "periodic").C
    assert relative(C3, C2) < 0.1 * relative(C1, C2)
    E3 = [engineering_constants(C)["E3"] for C in (C2, C3)]
    assert E3[1] == pytest.approx(E3[0], rel=1e-5)


@pytest.mark.parametrize("batch", ["auto", "off"])
def test_plastic_section_follows_its_extrusion(make_mesh, batch):
    """J2 matrix, elastic fibres, a path with axial strain and anti-plane and in-plane shears:
    the section and the extruded 3D RVE give the same stresses and tangents (P1, periodic)."""
    rve = make_mesh(type="random_inclusions_2d", n=3, volume_fraction=0.4, min_gap=0.05, seed=3, mesh_size=0.1)
    phases = {1: J2Plasticity(E=3.5, nu=0.35, sigma_y=0.05, H=0.3), 2: LinearElastic(E=72.0, nu=0.22)}
    solid, tags = extrude(rve, layers=2, thickness=0.1)
    path = [np.array([0, 0, 4, 0, 3, 2]) * 1e-3 * k for k in range(1, 5)] + [np.array([2, 0, 10, 4, 0, 0]) * 1e-3]
    answers = {}
    for name, model in (("section", section(rve, phases)),
                        ("solid", RveModel(solid, tags, make_physics("elasticity", 3), phases))):
        pool = RvePool(make_rve_solver(model, "periodic", batch=batch, newton=NewtonOptions(rtol=1e-12)), 1)
        answers[name] = []
        for E in path:
            stress, tangent = pool.evaluate(E[None])
            pool.commit()
            answers[name].append((stress[0].copy(), tangent[0].copy()))
    for (s2, c2), (s3, c3) in zip(answers["section"], answers["solid"]):
        assert relative(s3, s2) < 1e-10 and relative(c3, c2) < 1e-10
    elastic = effective_tensor(section(rve, {1: LinearElastic(E=3.5, nu=0.35), 2: phases[2]}), "periodic").C
    assert relative(answers["section"][-1][0], elastic @ path[-1]) > 0.05  # the matrix has yielded


# ----------------------------------------------------------------- nonlinear: closed-form law


@pytest.mark.parametrize("bc", BCS)
def test_homogeneous_j2_section_is_the_3d_law_under_mixed_control(bc):
    """Uniaxial stress along the fibres (E33 prescribed, the other stresses zero), then an
    anti-plane shear stress and unloading to zero stress: the homogeneous J2 section = the 3D
    law at a point driven by the same mixed-control solver."""
    law = J2Plasticity(E=200.0, nu=0.3, sigma_y=0.4, H=10.0, H_kin=10.0)
    mesh = dolfinx.mesh.create_unit_square(MPI.COMM_SELF, 2, 2)
    cells = mesh.topology.index_map(2).size_local
    tags = dolfinx.mesh.meshtags(mesh, 2, np.arange(cells, dtype=np.int32), np.ones(cells, dtype=np.int32))
    model = RveModel(mesh, tags, make_physics("generalized_plane_strain", 2), {1: law})
    rve = RvePool(make_rve_solver(model, bc, newton=NewtonOptions(rtol=1e-12)), 1)
    point = LawPoints(law, 1, dim=3, n_comp=6)
    axial = np.array([True, True, False, True, True, True])
    targets = [MixedTarget(axial, [0, 0, e, 0, 0, 0]) for e in (0.001, 0.003, 0.006)]
    targets += [MixedTarget(np.ones(6, bool), [0, 0, s, 0, 0.2, 0]) for s in (0.6, 0.3)]
    targets += [MixedTarget(np.ones(6, bool), np.zeros(6))]
    answers = []
    for points in (rve, point):
        state = MixedState.initial(np.zeros(6), 1)
        states = []
        for target in targets:
            result = reach_target(points, target, start=state, options=MixedOptions(rtol=1e-12))
            assert result.converged, result.reason
            points.commit()
            state = result.state
            states.append(state)
        answers.append(states)
    for a, b in zip(*answers):
        np.testing.assert_allclose(a.strain, b.strain, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(a.stress, b.stress, rtol=1e-10, atol=1e-12)
    # Elastic first step: slope E along the fibres; residual plastic strain after unloading.
    first = answers[0][0]
    assert first.stress[0][2] / first.strain[0][2] == pytest.approx(law.E, rel=1e-10)
    assert np.abs(answers[0][-1].strain[0]).max() > 1e-3 and np.abs(answers[0][-1].stress[0]).max() < 1e-10


# ----------------------------------------------------------------- the study


UD = {
    "physics": "generalized_plane_strain",
    "mesh": {"generate": RANDOM_FIBRES},
    "phases": {"matrix": {"tag": 1, "E": 3.5, "nu": 0.35}, "fibre": {"tag": 2, "E": 72.0, "nu": 0.22}},
    "rve": {"bc": "periodic"},
}


def test_homogenize_reports_3d_constants_of_a_section(tmp_path, capsys):
    two_fibres = dict(RANDOM_FIBRES, n=2)  # far from transversely isotropic
    config = tmp_path / "ud.yaml"
    config.write_text(yaml.safe_dump(dict(UD, mesh={"generate": two_fibres})))
    assert main(["homogenize", str(config), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    if comm.rank != 0:
        return
    record = json.loads((tmp_path / "out" / "effective.json").read_text())
    C = np.array(record["C"])
    assert C.shape == (6, 6) and record["components"] == ["11", "22", "33", "23", "13", "12"]
    constants = record["engineering_constants"]
    np.testing.assert_allclose(stiffness_from_constants(constants, 3), 0.5 * (C + C.T), rtol=1e-12)
    symmetry = record["symmetry"]
    assert symmetry["expected_isotropic"] is True
    # two fibres: not transversely isotropic about the fibres within 2 %: warned, naming the class
    assert symmetry["classes"]["transversely_isotropic_3"]["distance"] > ISOTROPY_TOLERANCE
    assert "transversely isotropic about x3" in symmetry["warning"]
    assert "engineering constants: E1" in out and "E3" in out


def test_section_load_path_with_out_of_plane_components(tmp_path):
    data = dict(UD, phases={"matrix": {"law": "j2", "tag": 1, "E": 3.5, "nu": 0.35, "sigma_y": 0.05, "H": 0.3},
                            "fibre": {"tag": 2, "E": 72.0, "nu": 0.22}},
                mesh={"generate": dict(RANDOM_FIBRES, mesh_size=0.1)},
                load_path={"segments": [{"strain": {"33": 0.03}, "stress": {"11": 0, "22": 0, "12": 0, "13": 0, "23": 0},
                                         "steps": 4}]})
    config = tmp_path / "ud_path.yaml"
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    assert main(["homogenize", str(config), "-o", str(out)]) == 0
    if comm.rank != 0:
        return
    rows = np.genfromtxt(out / "load_path.csv", delimiter=",", names=True)
    assert rows["E33"][-1] == pytest.approx(0.03)
    for free in ("S11", "S22", "S12", "S13", "S23"):
        assert np.abs(rows[free]).max() < 1e-8 * np.abs(rows["S33"]).max()
    assert rows["E11"][-1] < 0 and rows["E22"][-1] < 0  # lateral contraction
    # uniaxial stress along the fibres: von Mises of the full (6-component) stress = |S33|;
    # S33 is a component here, not an extra column
    np.testing.assert_allclose(rows["von_mises"], np.abs(rows["S33"]), rtol=1e-8)
    assert list(rows.dtype.names).count("S33") == 1


def test_section_physics_needs_a_2d_mesh_and_has_no_macro_problem(tmp_path, capsys):
    data = dict(UD, mesh={"generate": {"type": "inclusion_3d", "volume_fraction": 0.2, "mesh_size": 0.3}})
    config = tmp_path / "solid.yaml"
    config.write_text(yaml.safe_dump(data))
    assert main(["homogenize", str(config), "-o", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err  # errors are printed by rank 0
    assert comm.rank != 0 or "generalized_plane_strain needs a 2D RVE mesh" in err
    data["mesh"] = {"file": str(Path(__file__).resolve().parents[1] / "meshes" / "inclusion_3d.msh")}
    config.write_text(yaml.safe_dump(data))  # a 3D mesh file: found when it is read
    assert main(["homogenize", str(config), "-o", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert comm.rank != 0 or "generalized_plane_strain needs a 2D RVE mesh" in err
    run = yaml.safe_load(open("configs/plate_linear_rve.yaml"))
    run["physics"] = "generalized_plane_strain"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(run))
    assert main(["run", str(config), "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert comm.rank != 0 or "physics" in err
