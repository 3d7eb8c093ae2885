"""Stability of a homogeneously deformed lattice: phonons and the acoustic tensor, batched.

Phonons. The atoms of the lattice deformed by F sit at F X; a displacement wave
u_l = e exp(i K . R_l) (K a reference wave vector, R_l the reference lattice vectors; the
deformed wave vector is k = F^-T K) has frequencies omega^2 = eigenvalues of the dynamical
matrix (atomic mass M = 1: omega^2 in energy / (mass length^2))

    D(K) = sum_b K_b (1 - cos(K . R_b)),   K_b = phi'' n n + (phi'/rho) (I - n n),

with n = r_b / rho_b, r_b = F R_b, over every bond b. D(K + G) = D(K) for reciprocal lattice
vectors G, and D(-K) = D(K): the check samples K = sum_i k_i b_i on the grid
k_i in {0, 1/N, ..., (N-1)/N} (one of each +-K pair, Gamma excluded), which contains the
zone-boundary points k_i = 1/2 for even N (and the triangular corners for N divisible by
3). Reported: min omega^2 and its k (reduced coordinates in (-1/2, 1/2]).

Continuum. The acoustic tensor Q_ik(N) = A_iJkL N_J N_L of A = dP/dF; strong ellipticity
is lost where min over unit N of its smallest eigenvalue is <= 0 (localisation). The minimum
is found from a grid of directions, then refined by alternating minimisation of the
biquadratic form v.Q(N).v over (v, N): v = lowest eigenvector of Q(N), then N = lowest
eigenvector of M(v)_JL = A_iJkL v_i v_k (each step lowers it).

For a Bravais lattice D(eps K) / eps^2 -> Omega0 Q(K) as eps -> 0: the acoustic check is the
long-wave limit of the phonon check, which a finite K grid cannot resolve.

A point is unstable if min omega^2 < -TOL max omega^2 or min Q < -TOL |A|.
"""

from __future__ import annotations

import itertools

import numpy as np

from fe2.lattice.cauchy_born import CauchyBorn

#: Relative round-off tolerance of both checks.
TOL = 1e-10
#: Points per chunk of the phonon sums (memory: chunk x grid x d x d floats).
_CHUNK_ENTRIES = 2_000_000


def phonon_grid(dim: int, n: int) -> np.ndarray:
    """Reduced wave vectors k (G, d) of the n^d grid, without Gamma and without -k duplicates."""
    if n < 2:
        raise ValueError(f"the phonon grid needs n >= 2 points per direction, got {n}")
    points = np.array(list(itertools.product(range(n), repeat=dim)), dtype=int)
    opposite = (-points) % n
    keep = [tuple(p) < tuple(q) or tuple(p) == tuple(q) for p, q in zip(points, opposite)]
    points = points[np.array(keep) & points.any(axis=1)]
    reduced = points / n
    return np.where(reduced > 0.5, reduced - 1.0, reduced)


def bond_stiffness(law: CauchyBorn, F: np.ndarray):
    """Pair stiffness matrices K_b (m, B, d, d) of the deformed bonds, R (B, d), ok (m,)."""
    r, rho, _, d1, d2, R, ok = law._bond_terms(F)
    n = r / rho[..., None]
    nn = n[..., :, None] * n[..., None, :]
    t = d1 / rho
    Kb = (d2 - t)[..., None, None] * nn + t[..., None, None] * np.eye(law.dim)
    return Kb, R, ok


def dynamical_matrices(law: CauchyBorn, F: np.ndarray, k: np.ndarray) -> np.ndarray:
    """D(K) (m, G, d, d) at reduced wave vectors k (G, d) (K = k @ reciprocal), unit mass."""
    Kb, R, _ = bond_stiffness(law, F)
    m, B, d = Kb.shape[0], Kb.shape[1], law.dim
    phase = 2.0 * np.pi * k @ np.linalg.solve(law.lattice.vectors.T, R.T)  # K . R_b, (G, B)
    D = Kb.reshape(m, B, d * d).transpose(0, 2, 1) @ (1.0 - np.cos(phase)).T  # (m, d*d, G)
    return D.transpose(0, 2, 1).reshape(m, len(k), d, d)


def phonon_check(law: CauchyBorn, F: np.ndarray, grid: int) -> dict[str, np.ndarray]:
    """min omega^2 over the grid (m,), its reduced k (m, d), the band top max omega^2 (m,)."""
    k = phonon_grid(law.dim, grid)
    m, d = len(F), law.dim
    out = {"min_omega2": np.empty(m), "k": np.empty((m, d)), "max_omega2": np.empty(m)}
    chunk = max(1, _CHUNK_ENTRIES // (len(k) * d * d))
    for start in range(0, m, chunk):
        part = slice(start, min(m, start + chunk))
        omega2 = np.linalg.eigvalsh(dynamical_matrices(law, F[part], k))  # (c, G, d)
        lowest = omega2[..., 0]
        where = np.argmin(lowest, axis=1)
        out["min_omega2"][part] = lowest[np.arange(len(where)), where]
        out["k"][part] = k[where]
        out["max_omega2"][part] = omega2[..., -1].max(axis=1)
    return out


def directions(dim: int, count: int) -> np.ndarray:
    """Unit vectors (c, d) covering the half circle / hemisphere (N and -N are equivalent)."""
    if dim == 1:
        return np.ones((1, 1))
    if dim == 2:
        angle = np.pi * np.arange(count) / count
        return np.stack([np.cos(angle), np.sin(angle)], axis=1)
    i = np.arange(count) + 0.5  # Fibonacci points on the upper hemisphere
    z = 1.0 - i / count
    phi = np.pi * (1.0 + 5**0.5) * i
    s = np.sqrt(1.0 - z * z)
    return np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=1)


def acoustic_check(A: np.ndarray, *, count: int = 0, starts: int = 4, iterations: int = 40) -> dict[str, np.ndarray]:
    """min over unit N of the smallest eigenvalue of Q(N) = A_iJkL N_J N_L, (m,), and N (m, d).

    A is (m, d, d, d, d). ``count`` grid directions (default 90 in 2D, 200 in 3D); the
    ``starts`` best of them are refined (the function has several local minima on the sphere).
    """
    m, d = A.shape[0], A.shape[1]
    grid = directions(d, count or {1: 1, 2: 90, 3: 200}[d])
    Aik = A.transpose(0, 1, 3, 2, 4).reshape(m, d * d, d * d)  # [m, (i, k), (J, L)]
    NN = (grid[:, :, None] * grid[:, None, :]).reshape(len(grid), d * d)
    Q = (Aik @ NN.T).transpose(0, 2, 1).reshape(m, len(grid), d, d)
    values = np.linalg.eigvalsh(Q)[..., 0]
    starts = min(starts, len(grid)) if d > 1 else 1
    N = grid[np.argsort(values, axis=1)[:, :starts]].reshape(m * starts, d)
    AA = np.repeat(Aik, starts, axis=0)  # (m * starts, (i, k), (J, L))

    def contract(matrix, u):  # matrix . (u (x) u), reshaped to (., d, d)
        return (matrix @ (u[:, :, None] * u[:, None, :]).reshape(-1, d * d, 1)).reshape(-1, d, d)

    if d > 1:
        AT = AA.transpose(0, 2, 1)
        previous = np.full(len(N), np.inf)
        tol = 1e-14 * np.abs(Aik).max(initial=0.0)
        for _ in range(iterations):
            w, vectors = np.linalg.eigh(contract(AA, N))  # Q(N) = A : (N (x) N)
            N = np.linalg.eigh(contract(AT, vectors[..., 0]))[1][..., 0]  # M(v) = (v (x) v) : A
            if np.abs(previous - w[:, 0]).max() <= tol:  # each step lowers it: converged
                break
            previous = w[:, 0]
    value = np.linalg.eigvalsh(contract(AA, N))[:, 0].reshape(m, starts)
    best = np.argmin(value, axis=1)
    N = N.reshape(m, starts, d)[np.arange(m), best]
    first = np.argmax(np.abs(N) > 1e-12, axis=1)
    N = N * np.sign(N[np.arange(m), first])[:, None]  # N and -N: first nonzero component > 0
    return {"min_eigenvalue": np.minimum(value[np.arange(m), best], values.min(axis=1)), "normal": N}


def lattice_stability(law: CauchyBorn, F: np.ndarray, *, grid: int, phonons: bool = True) -> dict[str, np.ndarray]:
    """Both checks at deformation gradients F (m, d, d): a pure batched function.

    Returns, per point: ``phonon_min_omega2`` (m,) (NaN without ``phonons``), ``phonon_k``
    (m, d), ``acoustic_min_eigenvalue`` (m,) (stress units), ``acoustic_normal`` (m, d) and
    ``unstable`` (m,) bool. Inadmissible F (see :meth:`CauchyBorn.admissible`) count as
    unstable with NaN values.
    """
    F = np.asarray(F, dtype=float).reshape(-1, law.dim, law.dim)
    m, d = len(F), law.dim
    ok = law.admissible(F)[0]
    safe = np.where(ok[:, None, None], F, np.eye(d))
    _, A, _ = law.stress_and_tangent(safe)
    acoustic = acoustic_check(A)
    scale = np.abs(A).reshape(m, -1).max(axis=1)
    unstable = acoustic["min_eigenvalue"] < -TOL * scale
    result = {
        "phonon_min_omega2": np.full(m, np.nan),
        "phonon_k": np.full((m, d), np.nan),
        "acoustic_min_eigenvalue": acoustic["min_eigenvalue"],
        "acoustic_normal": acoustic["normal"],
    }
    if phonons:
        ph = phonon_check(law, safe, grid)
        result["phonon_min_omega2"], result["phonon_k"] = ph["min_omega2"], ph["k"]
        unstable |= ph["min_omega2"] < -TOL * ph["max_omega2"]
    for key in ("phonon_min_omega2", "acoustic_min_eigenvalue"):
        result[key] = np.where(ok, result[key], np.nan)
    result["unstable"] = unstable | ~ok
    return result
