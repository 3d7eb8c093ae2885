"""Derived output quantities: sigma33 of plane strain, von Mises, principal and Cauchy stress,
against closed forms and the laws evaluated in 3D (a second code path)."""

import numpy as np
import pytest

from fe2.io.derived import (
    cauchy_stress,
    cauchy_stress_plane_strain,
    embed_plane_strain,
    finite_strain_stress_fields,
    full_stress_fields,
    neo_hookean_plane_strain_p33,
    plane_strain_sigma33,
    principal_stresses,
    von_mises,
)
from fe2.materials import J2Plasticity, LinearElastic, NeoHookean
from fe2.tensors import from_mandel, lame_parameters, to_mandel

LAW = J2Plasticity(E=200.0, nu=0.3, sigma_y=0.4, H=20.0)
PLANE = [0, 1, 5]


def test_von_mises_of_uniaxial_plane_strain_j2_state_is_the_closed_form():
    """Uniaxial strain e along x1 (plane strain): radial loading, so after yield the von
    Mises stress is sigma_y + H p with p = (2 mu e - sigma_y) / (3 mu + H) -- but only with
    sigma33 in the stress."""
    lmbda, mu = lame_parameters(LAW.E, LAW.nu)
    e_yield = LAW.sigma_y / (2 * mu)
    strains = np.array([[e, 0.0, 0.0] for e in e_yield * np.array([0.5, 1.5, 3.0, 6.0])])
    update = LAW.update(strains, LAW.initial_state(2, len(strains)), 2)
    p = np.maximum(0.0, (2 * mu * strains[:, 0] - LAW.sigma_y) / (3 * mu + LAW.H))
    np.testing.assert_allclose(update.state["equivalent_plastic_strain"], p, rtol=1e-12, atol=1e-16)
    sigma33 = plane_strain_sigma33(
        update.stress, E=LAW.E, nu=LAW.nu, inelastic_strain_33=update.state["plastic_strain"][:, 2]
    )
    full = embed_plane_strain(update.stress, sigma33)
    expected = np.where(p > 0, LAW.sigma_y + LAW.H * p, 2 * mu * strains[:, 0])  # elastic: 2 mu e
    np.testing.assert_allclose(von_mises(full), expected, rtol=1e-12)
    # sigma33 is not zero, and leaving it out gives a wrong von Mises stress
    assert np.all(np.abs(sigma33) > 0.1 * np.abs(update.stress[:, 0]))
    assert np.all(np.abs(von_mises(embed_plane_strain(update.stress, 0 * sigma33)) - expected) > 0.05 * expected)
    # the law evaluated in 3D with the same (embedded) strain has the same sigma33
    eps3 = np.zeros((len(strains), 6))
    eps3[:, PLANE] = strains
    np.testing.assert_allclose(sigma33, LAW.update(eps3, LAW.initial_state(3, len(strains)), 3).stress[:, 2], rtol=1e-12)


def test_sigma33_of_elastic_plane_strain_and_of_a_plastic_history():
    rng = np.random.default_rng(0)
    strains = rng.normal(scale=1e-3, size=(7, 3))
    law = LinearElastic(E=70.0, nu=0.3)
    stress = law.update(strains, {}, 2).stress
    sigma33 = plane_strain_sigma33(stress, E=law.E, nu=law.nu)
    assert np.all(sigma33 != 0)
    np.testing.assert_allclose(sigma33, law.nu * (stress[:, 0] + stress[:, 1]), rtol=1e-14)
    # J2 after a committed plastic step and an elastic unloading: the history counts
    first = LAW.update(8 * strains / np.abs(strains).max() * 0.004, LAW.initial_state(2, 7), 2)
    second = LAW.update(0.5 * strains, first.state, 2)
    assert first.state["equivalent_plastic_strain"].min() > 0 and np.abs(second.state["plastic_strain"][:, 2]).min() > 0
    sigma33 = plane_strain_sigma33(second.stress, E=LAW.E, nu=LAW.nu, inelastic_strain_33=second.state["plastic_strain"][:, 2])
    eps3 = np.zeros((7, 6))
    eps3[:, PLANE] = 0.5 * strains
    np.testing.assert_allclose(sigma33, LAW.update(eps3, first.state, 3).stress[:, 2], rtol=1e-11, atol=1e-14)


def test_principal_stresses_and_invariants():
    rng = np.random.default_rng(1)
    values = np.sort(rng.normal(size=(5, 3)), axis=1)[:, ::-1]
    Q = np.linalg.qr(rng.normal(size=(5, 3, 3)))[0]
    sigma = np.einsum("mij,mj,mkj->mik", Q, values, Q)
    np.testing.assert_allclose(principal_stresses(to_mandel(sigma)), values, rtol=1e-12, atol=1e-14)
    # von Mises from the principal stresses (a second formula)
    s1, s2, s3 = values.T
    vm = np.sqrt(0.5 * ((s1 - s2) ** 2 + (s2 - s3) ** 2 + (s3 - s1) ** 2))
    np.testing.assert_allclose(von_mises(to_mandel(sigma)), vm, rtol=1e-12)
    # 2D: two principal stresses
    two = principal_stresses(np.array([[3.0, 1.0, 0.0], [0.0, 0.0, np.sqrt(2) * 2.0]]))
    np.testing.assert_allclose(two, [[3.0, 1.0], [2.0, -2.0]], atol=1e-14)
    with pytest.raises(ValueError, match="embed sigma33"):
        von_mises(np.zeros((1, 3)))


def neo_hookean_cauchy(F, law):
    """Closed form: sigma = mu/J (F F^T - I) + lambda ln J / J I."""
    lmbda, mu = lame_parameters(law.E, law.nu)
    J = np.linalg.det(F)
    b = np.einsum("mij,mkj->mik", F, F)
    eye = np.eye(F.shape[-1])
    return (mu * (b - eye) + (lmbda * np.log(J))[:, None, None] * eye) / J[:, None, None]


def test_cauchy_stress_from_piola():
    law = NeoHookean(E=1.0, nu=0.3)
    rng = np.random.default_rng(2)
    F = np.eye(3) + 0.2 * rng.normal(size=(6, 3, 3))
    F = F[np.linalg.det(F) > 0.2]
    P = law.update(F.reshape(len(F), 9), {}, 3).stress
    sigma = cauchy_stress(P, F.reshape(len(F), 9))
    np.testing.assert_allclose(sigma, neo_hookean_cauchy(F, law), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sigma, sigma.transpose(0, 2, 1), atol=1e-12)
    # objectivity: sigma(QF) = Q sigma(F) Q^T
    Q = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    Q *= np.sign(np.linalg.det(Q))
    QF = np.einsum("ij,mjk->mik", Q, F)
    rotated = cauchy_stress(law.update(QF.reshape(len(F), 9), {}, 3).stress, QF.reshape(len(F), 9))
    np.testing.assert_allclose(rotated, np.einsum("ij,mjk,lk->mil", Q, sigma, Q), atol=1e-11)


def test_plane_strain_cauchy_with_sigma33_from_the_law():
    law = NeoHookean(E=1.0, nu=0.3)
    F2 = np.array([[1.3, 0.2, -0.1, 0.8], [0.9, 0.0, 0.0, 0.9], [1.1, -0.3, 0.25, 1.05]])
    P2 = law.update(F2, {}, 2).stress
    P33 = neo_hookean_plane_strain_p33(F2, E=law.E, nu=law.nu)
    full = cauchy_stress_plane_strain(P2, F2, P33)
    # the 3D law at the embedded F (F33 = 1): same P33, and the same full Cauchy stress
    F3 = np.zeros((3, 3, 3))
    F3[:, :2, :2] = F2.reshape(3, 2, 2)
    F3[:, 2, 2] = 1.0
    P3 = law.update(F3.reshape(3, 9), {}, 3).stress
    np.testing.assert_allclose(P33, P3[:, 8], rtol=1e-12)
    np.testing.assert_allclose(from_mandel(full), neo_hookean_cauchy(F3, law), rtol=1e-10, atol=1e-13)
    assert np.all(np.abs(full[:, 2]) > 1e-3)  # sigma33 != 0 in plane strain


@pytest.mark.parametrize("law", [LinearElastic(E=200.0, nu=0.3), LAW], ids=["linear", "j2"])
def test_laws_sigma33_from_strain_equals_the_stress_formula(law):
    """The laws' out_of_plane_stress (from the strain and the state) equals the formula of
    the stress, nu (s11 + s22) - E eps_p33, after elastic and plastic histories."""
    rng = np.random.default_rng(3)
    strains = rng.normal(scale=0.01, size=(20, 3))
    update = law.update(strains, law.initial_state(2, 20), 2)
    plastic = update.state["plastic_strain"][:, 2] if "plastic_strain" in update.state else None
    expected = plane_strain_sigma33(update.stress, E=law.E, nu=law.nu, inelastic_strain_33=plastic)
    np.testing.assert_allclose(law.out_of_plane_stress(strains, update.state), expected, rtol=1e-12, atol=1e-14)
    if plastic is not None:
        assert np.abs(plastic).max() > 1e-4  # the random strains reached plasticity


def test_full_stress_fields():
    rng = np.random.default_rng(5)
    stress3 = rng.normal(size=(7, 6))
    fields = full_stress_fields(stress3, dim=3)
    np.testing.assert_allclose(fields["von_mises"], von_mises(stress3))
    np.testing.assert_allclose(fields["stress"], from_mandel(stress3))
    np.testing.assert_allclose(fields["principal_stress"], principal_stresses(stress3))
    plane = rng.normal(size=(7, 3))
    assert full_stress_fields(plane, dim=2) == {}  # no sigma33, no von Mises
    sigma33 = rng.normal(size=7)
    fields = full_stress_fields(plane, dim=2, sigma33=sigma33)
    np.testing.assert_allclose(fields["stress"][:, 2, 2], sigma33)
    np.testing.assert_allclose(fields["von_mises"], von_mises(embed_plane_strain(plane, sigma33)))


@pytest.mark.parametrize("batch", ["auto", "off"])
def test_rve_sigma33_is_the_volume_average(make_mesh, batch):
    """<sigma33> of a heterogeneous linear RVE (both RVE backends) equals the UFL integral
    (1/|Y|) int lambda(x) tr(E + sym grad w) dx of the solved fluctuation (another code path)."""
    import ufl
    from dolfinx import fem

    from fe2.rve.factory import make_rve_solver
    from fe2.rve.model import RveModel
    from fe2.physics import make_physics

    rve = make_mesh(type="inclusion_2d", volume_fraction=0.3, mesh_size=0.1)
    phases = {1: LinearElastic(E=3.5, nu=0.35), 2: LinearElastic(E=72.0, nu=0.22)}
    model = RveModel(rve.mesh, rve.cell_tags, make_physics("elasticity", 2), phases, degree=2)
    solver = make_rve_solver(model, "periodic", batch=batch)
    strains = np.array([[0.01, -0.004, 0.003], [0.0, 0.002, -0.005]])
    result = solver.solve_batch(strains, [solver.initial_state()] * 2)
    got = solver.point_outputs(result.trials, result.responses)["stress_33"]
    lmbda = fem.Function(fem.functionspace(model.mesh, ("DG", 0)))
    for tag, law in phases.items():
        lmbda.x.array[model.phase_cells[tag]] = law.lame[0]
    w = fem.Function(model.V)
    for E, trial, value in zip(strains, result.trials, got):
        w.x.array[:] = trial.w
        trace = E[0] + E[1] + ufl.div(w)
        expected = fem.assemble_scalar(fem.form(lmbda * trace * ufl.dx)) / model.volume
        assert value == pytest.approx(expected, rel=1e-12)
        assert abs(value) > 1e-3


def test_finite_strain_stress_fields():
    rng = np.random.default_rng(8)
    F3 = np.eye(3) + 0.1 * rng.normal(size=(5, 3, 3))
    P3 = NeoHookean(E=3.0, nu=0.3).update(F3.reshape(5, 9), {}, 3).stress.reshape(5, 3, 3)
    fields = finite_strain_stress_fields(P3.reshape(5, 9), F3.reshape(5, 9), dim=3)
    np.testing.assert_allclose(fields["cauchy_stress"], cauchy_stress(P3.reshape(5, 9), F3.reshape(5, 9)), atol=1e-14)
    np.testing.assert_allclose(fields["stress"], P3)
    np.testing.assert_allclose(fields["von_mises"], von_mises(to_mandel(fields["cauchy_stress"])))
    F3[:, :2, 2] = F3[:, 2, :2] = 0.0  # plane strain: F33 = 1 block
    F3[:, 2, 2] = 1.0
    P3 = NeoHookean(E=3.0, nu=0.3).update(F3.reshape(5, 9), {}, 3).stress.reshape(5, 3, 3)
    F2, P2 = F3[:, :2, :2].reshape(5, 4), P3[:, :2, :2].reshape(5, 4)
    assert finite_strain_stress_fields(P2, F2, dim=2) == {}  # no P33, no Cauchy stress
    fields = finite_strain_stress_fields(P2, F2, dim=2, P33=P3[:, 2, 2])
    np.testing.assert_allclose(fields["stress"][:, 2, 2], P3[:, 2, 2])
    np.testing.assert_allclose(to_mandel(fields["cauchy_stress"]), cauchy_stress_plane_strain(P2, F2, P3[:, 2, 2]))


def test_neo_hookean_p33_is_the_3d_law():
    rng = np.random.default_rng(9)
    F = np.eye(2) + 0.2 * rng.normal(size=(6, 2, 2))
    F[np.linalg.det(F) < 0.2] = np.eye(2)
    law = NeoHookean(E=3.0, nu=0.3)
    F3 = np.zeros((6, 3, 3))
    F3[:, :2, :2], F3[:, 2, 2] = F, 1.0
    P33 = law.update(F3.reshape(6, 9), {}, 3).stress.reshape(6, 3, 3)[:, 2, 2]
    np.testing.assert_allclose(law.out_of_plane_stress(F.reshape(6, 4), {}), P33, rtol=1e-12, atol=1e-14)


def test_rve_p33_of_finite_strain_is_the_volume_average(make_mesh):
    """<P33> of a heterogeneous Neo-Hookean RVE in plane strain equals the UFL integral
    (1/|Y|) int lambda(x) ln det(F + grad w) dx of the solved fluctuation."""
    import ufl
    from dolfinx import fem

    from fe2.rve.factory import make_rve_solver
    from fe2.rve.model import RveModel
    from fe2.physics import make_physics

    rve = make_mesh(type="inclusion_2d", volume_fraction=0.3, mesh_size=0.1)
    phases = {1: NeoHookean(E=3.5, nu=0.35), 2: NeoHookean(E=72.0, nu=0.22)}
    model = RveModel(rve.mesh, rve.cell_tags, make_physics("finite_strain", 2), phases)
    solver = make_rve_solver(model, "periodic")
    F = np.array([[1.1, 0.05, 0.0, 0.95], [0.97, 0.0, -0.03, 1.02]])
    result = solver.solve_batch(F, [solver.initial_state()] * 2)
    got = solver.point_outputs(result.trials, result.responses)["stress_33"]
    lmbda = fem.Function(fem.functionspace(model.mesh, ("DG", 0)))
    for tag, law in phases.items():
        lmbda.x.array[model.phase_cells[tag]] = lame_parameters(law.E, law.nu)[0]
    w = fem.Function(model.V)
    for Fk, trial, value in zip(F, result.trials, got):
        w.x.array[:] = trial.w
        total = ufl.as_matrix(Fk.reshape(2, 2).tolist()) + ufl.grad(w)
        expected = fem.assemble_scalar(fem.form(lmbda * ufl.ln(ufl.det(total)) * ufl.dx)) / model.volume
        assert value == pytest.approx(expected, rel=1e-10)
        assert abs(value) > 1e-3
