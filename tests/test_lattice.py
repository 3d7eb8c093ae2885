"""Cauchy-Born lattice laws and their stability checks (VERIFICATION.md facts 13 and 16).

Independent references: closed forms (the LJ chain's inflection, nearest-neighbour fcc
constants, Cauchy relations), finite differences of W and P, and a brute-force energy
minimisation of a periodic supercell written here from scratch.
"""

import itertools

import numpy as np
import pytest

from fe2.lattice.cauchy_born import CauchyBorn
from fe2.lattice.chain import critical_stretch, dispersion
from fe2.lattice.potentials import CutOff, LennardJones, Morse
from fe2.lattice.stability import dynamical_matrices, lattice_stability, phonon_check
from fe2.materials.cauchy_born import CauchyBornLaw, rve_stability_fields

LJ = LennardJones(epsilon=1.0, sigma=1.0)
MORSE = Morse(D=0.8, alpha=3.0, r0=1.3)  # alpha r0 = 3.9, like copper
LAMBDA_C = (13.0 / 7.0) ** (1.0 / 6.0)
LATTICES_2D3D = ("square", "triangular", "sc", "bcc", "fcc")
# Long cut-offs (several shells, smooth) and nearest-neighbour ones (shifted, between shells).
CUTOFFS = {"smooth_long": lambda p: CutOff(p, 2.5 * p.minimum, "smooth", 2.0 * p.minimum),
           "shifted_short": lambda p: CutOff(p, 1.3 * p.minimum, "shifted")}


def law(lattice, potential=LJ, cutoff="smooth_long", a=None):
    return CauchyBorn(lattice, CUTOFFS[cutoff](potential), a)


# ----------------------------------------------------------------- the 1D chain (fact 13)

def test_lennard_jones_chain_critical_stretch_is_the_inflection():
    chain = law("chain", cutoff="shifted_short")
    assert len(chain.reference_bonds) == 2  # nearest neighbours only
    critical = critical_stretch(chain, grid=64)
    assert abs(critical.stretch - LAMBDA_C) <= 1e-10
    qa = np.linspace(0.0, np.pi, 257)[1:]
    before, beyond = dispersion(chain, np.array([LAMBDA_C * (1 - 1e-4), LAMBDA_C * (1 + 1e-4)]), qa)
    assert before.min() > 0
    assert beyond.max() < 0  # every mode is soft beyond lambda_c ...
    assert np.argmin(beyond) == len(qa) - 1  # ... the most negative at the zone boundary q = pi/a
    assert critical.qa == pytest.approx(np.pi, abs=1e-12)
    # omega^2 = 4 phi''(lambda a) sin^2(q a / 2): the closed form of the nearest-neighbour chain.
    phi2 = LJ.derivatives(chain.lattice.a * 1.05)[2]
    assert np.allclose(dispersion(chain, np.array([1.05]), qa)[0], 4 * phi2 * np.sin(qa / 2) ** 2, rtol=1e-12)


def test_morse_chain_critical_stretch():
    chain = CauchyBorn("chain", CutOff(MORSE, 2.0, "shifted"))  # nearest neighbours (1.3; 2.6)
    assert chain.lattice.a == pytest.approx(MORSE.r0, rel=1e-14)
    assert abs(critical_stretch(chain).stretch - MORSE.inflection / MORSE.r0) <= 1e-10


# ----------------------------------------------------------------- W, P, A (2D/3D)

@pytest.mark.parametrize("cutoff", CUTOFFS)
@pytest.mark.parametrize("potential", [LJ, MORSE], ids=["lj", "morse"])
@pytest.mark.parametrize("lattice", LATTICES_2D3D)
def test_equilibrium_lattice_constant_is_stress_free(lattice, potential, cutoff):
    cb = law(lattice, potential, cutoff)
    d = cb.dim
    P, A, ok = cb.stress_and_tangent(np.eye(d)[None])
    assert ok.all()
    assert np.abs(P).max() <= 1e-10 * np.abs(A).max()
    # Another lattice constant is not stress-free (the check can fail).
    P_off = CauchyBorn(lattice, cb.potential, 1.01 * cb.lattice.a).stress(np.eye(d)[None])
    assert np.abs(P_off).max() > 1e-3 * np.abs(A).max()


@pytest.mark.parametrize("lattice", LATTICES_2D3D)
def test_stress_and_tangent_match_finite_differences(lattice):
    cb = law(lattice, MORSE if lattice == "bcc" else LJ)
    d = cb.dim
    rng = np.random.default_rng(7)
    F = np.eye(d) + 0.06 * rng.standard_normal((2, d, d))
    P, A, _ = cb.stress_and_tangent(F)
    h = 1e-6
    P_fd, A_fd = np.zeros_like(P), np.zeros_like(A)
    for k, l in itertools.product(range(d), repeat=2):
        dF = np.zeros((d, d))
        dF[k, l] = h
        P_fd[:, k, l] = (cb.energy(F + dF) - cb.energy(F - dF)) / (2 * h)
        A_fd[:, :, :, k, l] = (cb.stress(F + dF) - cb.stress(F - dF)) / (2 * h)
    assert np.abs(P_fd - P).max() <= 1e-6 * np.abs(P).max()
    assert np.abs(A_fd - A).max() <= 1e-6 * np.abs(A).max()
    assert np.abs(A - A.transpose(0, 3, 4, 1, 2)).max() <= 1e-12 * np.abs(A).max()  # hyperelastic


@pytest.mark.parametrize("lattice", ["sc", "bcc", "fcc", "square"])
def test_cauchy_relation_of_cubic_lattices(lattice):
    C = law(lattice).small_strain_stiffness()
    d = C.shape[0]
    scale = np.abs(C).max()
    for i, j in itertools.permutations(range(d), 2):
        assert abs(C[i, i, j, j] - C[i, j, i, j]) <= 1e-12 * scale  # C12 = C44
        assert abs(C[i, i, i, i] - C[j, j, j, j]) <= 1e-12 * scale  # cubic symmetry
    assert abs(C[0, 0, 0, 0] - C[0, 0, 1, 1]) > 1e-2 * scale  # not trivially equal


@pytest.mark.parametrize("potential", [LJ, MORSE], ids=["lj", "morse"])
def test_triangular_lattice_is_isotropic_with_lambda_equal_mu(potential):
    C = law("triangular", potential).small_strain_stiffness()
    scale = np.abs(C).max()
    lam, mu = C[0, 0, 1, 1], C[0, 1, 0, 1]
    expected = lam * np.einsum("ij,kl->ijkl", np.eye(2), np.eye(2)) + mu * (
        np.einsum("ik,jl->ijkl", np.eye(2), np.eye(2)) + np.einsum("il,jk->ijkl", np.eye(2), np.eye(2)))
    assert np.abs(C - expected).max() <= 1e-12 * scale
    assert abs(lam - mu) <= 1e-12 * scale  # the Cauchy relation of a pair-potential lattice


@pytest.mark.parametrize("potential", [LJ, MORSE], ids=["lj", "morse"])
def test_nearest_neighbour_fcc_constants_closed_form(potential):
    cb = CauchyBornLaw("fcc", potential, 1.25 * potential.minimum, cutoff_kind="shifted")
    a = cb.model.lattice.a
    assert a == pytest.approx(np.sqrt(2.0) * potential.minimum, rel=1e-14)
    k = 72.0 / 2 ** (1 / 3) if potential is LJ else 2 * MORSE.D * MORSE.alpha**2  # phi''(r0) by hand
    C = cb.tangent(3)  # Mandel: C44 enters as 2 C44
    assert C[0, 0] == pytest.approx(2 * k / a, rel=1e-12)
    assert C[0, 1] == pytest.approx(k / a, rel=1e-12)
    assert C[3, 3] == pytest.approx(2 * k / a, rel=1e-12)


# ----------------------------------------------------------------- stability checks

def test_long_wave_phonons_are_the_acoustic_tensor():
    """D(eps K) / eps^2 -> Omega0 Q(K): second-order convergence (a Bravais lattice)."""
    cb = law("fcc")
    F = np.eye(3) + 0.04 * np.random.default_rng(3).standard_normal((1, 3, 3))
    A = cb.stress_and_tangent(F)[1][0]
    k = np.array([0.3, -0.2, 0.5])
    K = k @ cb.lattice.reciprocal
    Q = cb.omega0 * np.einsum("ijkl,j,l->ik", A, K, K)
    errors = [np.abs(dynamical_matrices(cb, F, eps * k[None])[0, 0] / eps**2 - Q).max() for eps in (1e-2, 5e-3)]
    assert errors[0] <= 1e-3 * np.abs(Q).max()
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.05)


def _supercell_minimum(cb: CauchyBorn, F: np.ndarray, cells: tuple[int, ...], seed: int) -> tuple[float, float]:
    """Energy of the affine supercell and the lowest energy found from a perturbed state.

    Brute force, written independently of the phonon code: the supercell of cells[i] primitive
    cells along a_i, deformed by F, periodic; every pair within the cut-off (via lattice
    images), steepest descent with backtracking on the atom positions.
    """
    vectors = cb.lattice.vectors
    sites = np.array(list(itertools.product(*[range(c) for c in cells]))) @ vectors
    box = np.array(cells)[:, None] * vectors  # supercell vectors (rows)
    reach = cb.potential.radius * 1.3
    shifts = np.array([s for s in itertools.product(range(-3, 4), repeat=len(cells))]) @ box
    shifts = shifts[np.linalg.norm(shifts, axis=1) <= reach + np.linalg.norm(box, axis=1).sum()]

    def energy_and_gradient(x):
        y = x @ F.T
        diff = y[None, :, None, :] - y[:, None, None, :] + (shifts @ F.T)[None, None]  # (i, j, s, d)
        r = np.linalg.norm(diff, axis=-1)
        mask = r > 1e-12
        phi, d1, _ = cb.potential.derivatives(np.where(mask, r, 1.0))
        phi, d1 = np.where(mask, phi, 0.0), np.where(mask, d1, 0.0)
        unit = diff / np.where(mask, r, 1.0)[..., None]
        grad_y = -(d1[..., None] * unit).sum(axis=(1, 2))  # dE/dy_i
        return 0.5 * phi.sum(), grad_y @ F

    E_affine, _ = energy_and_gradient(sites)
    rng = np.random.default_rng(seed)
    x = sites + 0.02 * cb.lattice.a * rng.standard_normal(sites.shape)
    E, g = energy_and_gradient(x)
    step = 1e-3
    for _ in range(4000):
        while True:
            trial = x - step * g
            E_trial, g_trial = energy_and_gradient(trial)
            if E_trial <= E - 1e-4 * step * (g * g).sum() or step < 1e-14:
                break
            step *= 0.5
        x, E, g = trial, E_trial, g_trial
        step *= 2.0
        if np.abs(g).max() < 1e-10:
            break
    return E_affine, E


@pytest.mark.parametrize("lattice,cells", [("square", (2, 2)), ("sc", (2, 1, 1))])
def test_uniaxial_stretch_soft_mode_at_bond_inflection_and_supercell(lattice, cells):
    """The first negative phonon under F = diag(lambda, 1, ...) appears where the stretched
    bonds' stiffness vanishes (phi'' = 0, lambda_c = (13/7)^(1/6)) at k = (1/2, ...); a
    periodic supercell relaxed from a perturbed affine state finds a lower energy exactly
    beyond it, and none before it."""
    cb = law(lattice, cutoff="shifted_short")
    d = cb.dim

    def F(stretch):
        return np.diag([stretch] + [1.0] * (d - 1))

    def phonon_min(stretch):
        return phonon_check(cb, F(stretch)[None], 4)["min_omega2"][0]

    lo, hi = 1.0, 1.2
    assert phonon_min(lo) > -1e-12 and phonon_min(hi) < 0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if phonon_min(mid) < -1e-12 else (mid, hi)
    assert hi == pytest.approx(LAMBDA_C, abs=1e-9)
    assert phonon_check(cb, F(1.01 * LAMBDA_C)[None], 4)["k"][0][0] == pytest.approx(0.5)
    for factor, lower in ((0.99, False), (1.01, True)):
        E_affine, E_min = _supercell_minimum(cb, F(factor * LAMBDA_C), cells, seed=1)
        found = E_min < E_affine - 1e-9 * abs(E_affine)
        assert found == lower, (factor, E_affine, E_min)


def test_triangular_phonon_check_agrees_with_supercell_minimisation():
    """Under uniaxial strain along a bond, the 2 x 2 supercell is unstable exactly when the
    phonon check on the commensurate grid (k_i in {0, 1/2}) says so."""
    cb = law("triangular", cutoff="shifted_short")

    def F(stretch):
        return np.diag([stretch, 1.0])

    def phonon_min(stretch):
        return phonon_check(cb, F(stretch)[None], 2)["min_omega2"][0]

    lo, hi = 1.0, 1.25  # the stretched bonds stay inside the cut-off (1.3 r_min)
    assert phonon_min(hi) < 0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if phonon_min(mid) < -1e-12 else (mid, hi)
    for factor, lower in ((0.995, False), (1.005, True)):
        E_affine, E_min = _supercell_minimum(cb, F(factor * hi), (2, 2), seed=2)
        assert (E_min < E_affine - 1e-9 * abs(E_affine)) == lower, (factor, E_affine, E_min)


@pytest.mark.parametrize("lattice", ["sc", "bcc", "fcc"])
def test_rest_stability_of_cubic_lennard_jones_lattices_follows_born_criteria(lattice):
    """With a long-ranged LJ potential fcc is stable at rest, while sc (C44 < 0) and bcc
    (C11 - C12 < 0) are not: the checks agree with the Born criteria from the constants."""
    cb = law(lattice)
    C = cb.small_strain_stiffness()
    c11, c12, c44 = C[0, 0, 0, 0], C[0, 0, 1, 1], C[1, 2, 1, 2]
    born = c11 - c12 > 0 and c44 > 0 and c11 + 2 * c12 > 0
    assert born == (lattice == "fcc")
    rest = lattice_stability(cb, np.eye(3)[None], grid=4)
    assert rest["unstable"][0] == (not born)
    assert (rest["acoustic_min_eigenvalue"][0] < 0) == (not born)
    if lattice == "fcc":  # a strong hydrostatic stretch makes the stable one lose ellipticity
        stretched = lattice_stability(cb, 1.2 * np.eye(3)[None], grid=4)
        assert stretched["unstable"][0] and stretched["acoustic_min_eigenvalue"][0] < 0


def test_rve_reduction_is_the_minimum_over_each_rve():
    material = CauchyBornLaw("triangular", LJ, 1.6)
    F = np.array([[1.0, 0, 0, 1.0], [1.14, 0, 0, 1.0], [1.05, 0, 0, 1.0], [1.0, 0.01, 0, 1.0]])
    histories = [{1: {"deformation_gradient": F[:2]}}, {1: {"deformation_gradient": F[2:]}}]
    reduced = rve_stability_fields({1: material, 2: object()}, histories, 2)
    pointwise = material.point_fields({"deformation_gradient": F}, 2)
    for name in ("phonon_min_omega2", "acoustic_min_eigenvalue"):
        assert reduced[name].tolist() == [pointwise[name][:2].min(), pointwise[name][2:].min()]
    assert reduced["lattice_unstable"].tolist() == [1.0, 0.0]
    assert reduced["soft_mode_k1"][0] == pointwise["soft_mode_k1"][1]  # that of the worst point


def test_chain_command_prints_the_critical_stretch_and_plots(shared_tmp_path, capsys):
    from mpi4py import MPI

    from fe2.cli import main

    out = shared_tmp_path / "chain"
    assert main(["lattice", "chain", "--potential", "lennard_jones", "--cutoff-kind", "shifted", "-o", str(out)]) == 0
    if MPI.COMM_WORLD.rank == 0:
        printed = capsys.readouterr().out
        line = next(x for x in printed.splitlines() if x.startswith("critical stretch "))
        assert abs(float(line.split()[-1]) - LAMBDA_C) <= 1e-10
        assert "zone boundary" in printed
        png = (out / "chain_dispersion.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        table = np.loadtxt(out / "chain_dispersion.csv", delimiter=",", skiprows=1)
        assert table.shape[1] == 1 + 4 and table[:, -1].min() < 0 < table[:, 1].max()  # unstable beyond
    assert main(["lattice", "chain", "--sigma", "nan", "-o", str(out), "--overwrite"]) == 2
    assert main(["lattice", "chain", "--cutoff", "0.5", "-o", str(out), "--overwrite"]) == 2
    assert main(["lattice", "chain", "-o", str(out)]) == 2  # existing results are kept
    if MPI.COMM_WORLD.rank == 0:
        err = capsys.readouterr().err.strip().splitlines()
        assert err[0].startswith("error: --sigma") and err[1].startswith("error: --cutoff")
        assert err[2].startswith("error:") and "--overwrite" in err[2]
