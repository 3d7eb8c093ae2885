"""Verification of linear RVE homogenisation against ../shared/docs/VERIFICATION.md, items 1-6.

Every RVE lives on MPI.COMM_SELF, so under `mpiexec -n 2` each rank repeats these checks.
"""

import numpy as np
import pytest
from mpi4py import MPI

import dolfinx
from fe2.homogenization.bounds import loewner_gaps, reuss_bound, voigt_bound
from fe2.materials import LinearConductor, LinearElastic
from fe2.rve.boundary_conditions import PeriodicBC
from fe2.rve.effective import effective_tensor
from fe2.rve.model import RveModel
from fe2.rve.periodicity import MeshNotPeriodicError
from fe2.physics import make_physics
from fe2.tensors import isotropic_stiffness

BCS = ("affine", "periodic", "traction")
ROUND_OFF = 1e-10  # relative: ~1e6 * machine epsilon, far below any discretisation error


def build(rve, physics, materials, degree=1):
    return RveModel(
        rve.mesh, rve.cell_tags, make_physics(physics, rve.dim), materials, degree=degree
    )


def relative(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(b).max()


# ----------------------------------------------------------------- 1. homogeneous RVE


HOMOGENEOUS = [
    ("elasticity", 2, 1, LinearElastic(E=3.0, nu=0.3)),
    ("elasticity", 2, 2, LinearElastic(E=3.0, nu=0.3)),
    ("elasticity", 3, 1, LinearElastic(E=70.0, nu=0.22)),
    ("conduction", 2, 1, LinearConductor(k=2.5)),
    ("conduction", 3, 1, LinearConductor(k=0.4)),
]


@pytest.mark.parametrize("physics,dim,degree,material", HOMOGENEOUS)
def test_homogeneous_rve_returns_its_material_for_every_bc(
    make_mesh, physics, dim, degree, material
):
    if dim == 2:
        rve = make_mesh(type="inclusion_2d", volume_fraction=0.3, mesh_size=0.1)
    else:
        rve = make_mesh(type="inclusion_3d", volume_fraction=0.2, mesh_size=0.25)
    model = build(rve, physics, {1: material, 2: material}, degree)
    for bc in BCS:
        result = effective_tensor(model, bc)
        assert relative(result.C, material.tangent(dim)) < ROUND_OFF, bc


# ----------------------------------------------------------------- 2./3. laminates


LAYERS = [0.2, 0.5, 0.3]


def laminate(make_mesh):
    return make_mesh(type="laminate_2d", fractions=LAYERS, mesh_size=0.08)


@pytest.mark.parametrize("degree", [1, 2])
def test_laminate_conduction_is_exact(make_mesh, degree):
    k = np.array([1.0, 10.0, 3.0])
    f = np.array(LAYERS)
    model = build(laminate(make_mesh), "conduction", {i + 1: LinearConductor(k[i]) for i in range(3)}, degree)
    K = effective_tensor(model, "periodic").C
    expected = np.diag([1.0 / np.sum(f / k), np.sum(f * k)])  # harmonic, arithmetic
    assert relative(K, expected) < ROUND_OFF


@pytest.mark.parametrize("degree", [1, 2])
def test_laminate_plane_strain_elasticity_is_exact(make_mesh, degree):
    layers = [LinearElastic(E=1.0, nu=0.3), LinearElastic(E=10.0, nu=0.2), LinearElastic(E=3.0, nu=0.45)]
    f = np.array(LAYERS)
    lam, mu = np.array([m.lame for m in layers]).T
    M = lam + 2 * mu
    avg = lambda a: np.sum(f * a)  # noqa: E731
    C11 = 1 / avg(1 / M)
    C12 = avg(lam / M) / avg(1 / M)
    C22 = avg(M) - avg(lam**2 / M) + avg(lam / M) ** 2 / avg(1 / M)
    C66 = 1 / avg(1 / mu)
    # Mandel: the shear entry is 2 C66 (sigma_12 sqrt2 = 2 C66 eps_12 sqrt2).
    expected = np.array([[C11, C12, 0], [C12, C22, 0], [0, 0, 2 * C66]])
    model = build(laminate(make_mesh), "elasticity", {i + 1: m for i, m in enumerate(layers)}, degree)
    C = effective_tensor(model, "periodic").C
    assert relative(C, expected) < ROUND_OFF


def test_laminate_conduction_3d_on_hexahedra():
    """Structured hexahedral mesh conforming to the layers x1 = 1/3: exact as well."""
    mesh = dolfinx.mesh.create_unit_cube(
        MPI.COMM_SELF, 6, 3, 4, cell_type=dolfinx.mesh.CellType.hexahedron
    )
    cells = np.arange(mesh.topology.index_map(3).size_local, dtype=np.int32)
    x = dolfinx.mesh.compute_midpoints(mesh, 3, cells)
    tags = dolfinx.mesh.meshtags(mesh, 3, cells, np.where(x[:, 0] < 1 / 3, 1, 2).astype(np.int32))
    k = np.array([2.0, 7.0])
    f = np.array([1 / 3, 2 / 3])
    model = RveModel(mesh, tags, make_physics("conduction", 3), {1: LinearConductor(k[0]), 2: LinearConductor(k[1])})
    K = effective_tensor(model, "periodic").C
    arithmetic = np.sum(f * k)
    assert relative(K, np.diag([1 / np.sum(f / k), arithmetic, arithmetic])) < ROUND_OFF


# ----------------------------------------------------------------- 4./5./6. hierarchy, symmetry, HM


CONTRAST = {
    "elasticity": {1: LinearElastic(E=1.0, nu=0.35), 2: LinearElastic(E=20.0, nu=0.2)},
    "conduction": {1: LinearConductor(k=1.0), 2: LinearConductor(k=20.0)},
}

INCLUSION_CELLS = {
    "inclusion_2d": dict(type="inclusion_2d", volume_fraction=0.3, mesh_size=0.05),
    "random_2d": dict(type="random_inclusions_2d", n=5, volume_fraction=0.3, min_gap=0.03, seed=3, mesh_size=0.04),
    "inclusion_3d": dict(type="inclusion_3d", volume_fraction=0.2, mesh_size=0.15),
}


@pytest.fixture(scope="module")
def apparent(make_mesh):
    """Apparent tensors of the inclusion cells, all physics and BCs (computed once)."""
    results = {}
    for cell, spec in INCLUSION_CELLS.items():
        rve = make_mesh(**spec)
        for physics, materials in CONTRAST.items():
            model = build(rve, physics, materials)
            fractions = model.volume_fractions()
            tangents = [materials[t].tangent(rve.dim) for t in fractions]
            f = list(fractions.values())
            results[cell, physics] = {
                "voigt": voigt_bound(f, tangents),
                "reuss": reuss_bound(f, tangents),
                **{bc: effective_tensor(model, bc) for bc in BCS},
            }
    return results


CASES = [(cell, physics) for cell in INCLUSION_CELLS for physics in CONTRAST]


@pytest.mark.parametrize("cell,physics", CASES)
def test_hierarchy_voigt_affine_periodic_traction_reuss(apparent, cell, physics):
    r = apparent[cell, physics]
    ordered = [r["voigt"], r["affine"].C, r["periodic"].C, r["traction"].C, r["reuss"]]
    scale = np.abs(r["voigt"]).max()
    gaps = loewner_gaps(ordered)
    assert min(gaps) >= -ROUND_OFF * scale, gaps
    # Not trivially equal: the affine and traction results bracket a non-zero interval.
    assert loewner_gaps([r["affine"].C, r["traction"].C])[0] > 1e-4 * scale


@pytest.mark.parametrize("cell,physics", CASES)
def test_apparent_tensors_symmetric_positive_definite(apparent, cell, physics):
    for bc in BCS:
        C = apparent[cell, physics][bc].C
        assert relative(C, C.T) < ROUND_OFF, bc
        assert np.linalg.eigvalsh(0.5 * (C + C.T)).min() > 0, bc


@pytest.mark.parametrize("cell,physics", CASES)
def test_hill_mandel_and_strain_average(apparent, cell, physics):
    for bc in BCS:
        result = apparent[cell, physics][bc]
        assert result.hill_mandel_residual.max() <= 1e-10, bc
        assert result.strain_average_error <= 1e-10, bc


# ----------------------------------------------------------------- convergence under refinement


def rayleigh_square_array(f: float, k_matrix: float, k_inclusion: float) -> float:
    """Conductivity of a square array of cylinders (Rayleigh; Perrins, McKenzie, McPhedran 1979)."""
    alpha = k_inclusion / k_matrix
    T = (1 + alpha) / (1 - alpha)
    denominator = T + f - 0.305827 * f**4 * T / (T**2 - 1.402958 * f**8) - 0.013362 * f**8
    return k_matrix * (1 - 2 * f / denominator)


@pytest.mark.slow
def test_circular_inclusion_periodic_converges_to_rayleigh(make_mesh):
    f, k_m, k_i = 0.25, 1.0, 5.0
    reference = rayleigh_square_array(f, k_m, k_i)
    sizes = [0.1, 0.05, 0.025]
    errors, keller, anisotropy = [], [], []
    for h in sizes:
        rve = make_mesh(type="inclusion_2d", volume_fraction=f, mesh_size=h)
        K = effective_tensor(build(rve, "conduction", {1: LinearConductor(k_m), 2: LinearConductor(k_i)}), "periodic").C
        swapped = effective_tensor(build(rve, "conduction", {1: LinearConductor(k_i), 2: LinearConductor(k_m)}), "periodic").C
        k, k_swapped = np.trace(K) / 2, np.trace(swapped) / 2
        # Square symmetry makes the exact K isotropic; an unstructured mesh only approximately.
        anisotropy.append(relative(K, k * np.eye(2)))
        errors.append(abs(k - reference) / reference)
        keller.append(abs(k * k_swapped / (k_m * k_i) - 1))  # Keller: K(a,b) K(b,a) = ab
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert errors[-1] < 5e-4, errors
    assert all(rates > 1.5), (errors, rates)
    assert keller[-1] < 1e-3 and keller[-1] < keller[0], keller
    assert anisotropy[-1] < 1e-5 and anisotropy[-1] < anisotropy[0], anisotropy


@pytest.mark.slow
def test_circular_inclusion_elasticity_self_convergence(make_mesh):
    materials = CONTRAST["elasticity"]
    C = [
        effective_tensor(build(make_mesh(type="inclusion_2d", volume_fraction=0.3, mesh_size=h), "elasticity", materials), "periodic").C
        for h in (0.1, 0.05, 0.025)
    ]
    d1, d2 = np.abs(C[0] - C[1]).max(), np.abs(C[1] - C[2]).max()
    assert np.log2(d1 / d2) > 1.5, (d1, d2)
    assert d2 < 2e-3 * np.abs(C[2]).max()


# ----------------------------------------------------------------- non-periodic mesh


def test_periodic_bc_rejects_non_matching_mesh():
    mesh = dolfinx.mesh.create_unit_square(MPI.COMM_SELF, 4, 4)
    x = mesh.geometry.x
    on_right = np.flatnonzero(np.isclose(x[:, 0], 1.0) & np.isclose(x[:, 1], 0.5))
    x[on_right, 1] += 0.05  # slide one node along the face x = 1: the box is unchanged
    cells = np.arange(mesh.topology.index_map(2).size_local, dtype=np.int32)
    tags = dolfinx.mesh.meshtags(mesh, 2, cells, np.ones_like(cells))
    model = RveModel(mesh, tags, make_physics("conduction", 2), {1: LinearConductor(1.0)})
    with pytest.raises(MeshNotPeriodicError, match="not periodic"):
        PeriodicBC(model)
    effective_tensor(model, "affine")  # the other BCs do not need matching nodes


def test_isotropic_stiffness_plane_strain_entries():
    lam, mu = LinearElastic(E=2.0, nu=0.25).lame
    C = isotropic_stiffness(lam, mu, 2)
    assert np.allclose(C, [[lam + 2 * mu, lam, 0], [lam, lam + 2 * mu, 0], [0, 0, 2 * mu]])
