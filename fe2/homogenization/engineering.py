r"""Engineering constants and material symmetry of effective tensors.

**Engineering constants** come from the compliance S = C^-1 in Voigt form (engineering shear
strains gamma_ij = 2 eps_ij), labels a = 11, 22, 33, 23, 13, 12 (3D) or 11, 22, 12 (2D):

    E_i = 1 / S_ii (normal a = ii),      G_ij = 1 / S_aa (shear a = ij),
    nu_ij = -S_ji / S_ii = -eps_j / eps_i under uniaxial sigma_i,
    coupling "b/a" = S_ba / S_aa = (strain b) / (strain a) under uniaxial stress a, for the
    pairs with a shear (Lekhnitskii's mutual-influence and Chentsov coefficients; 0 for an
    orthotropic tensor in its axes).

They determine S (and C) completely: :func:`stiffness_from_constants` inverts
:func:`engineering_constants`. In 2D the tensor is the plane-strain stiffness (eps_33 = 0),
so these are **plane-strain constants** of the in-plane compliance S' = C^-1 (3 x 3): for an
isotropic material E'_i = E / (1 - nu^2), nu'_12 = nu / (1 - nu), G_12 = G. The 3D constants of
a fibre cross-section (the longitudinal ones) come from its 6 x 6 tensor under generalised
plane strain (:mod:`fe2.physics.generalized_plane_strain`).

**Symmetry**: the closest tensor of a class, in the Frobenius norm of the Mandel matrices (the
norm of the fourth-order tensor), is the orthogonal projection onto the class's subspace
*in the axes of the cell* (no search over orientations). It is the group average
P(C) = mean_g R_g C R_g^T over a symmetry group G, R_g the Mandel form of x -> g x g^T:

* isotropic: sum over the isotropic projectors, 3K = J::C, 2mu = K::C / 5 (3D);
* cubic (cell axes): the 48 signed permutations;
* transversely isotropic about axis k: the dihedral group D12 about e_k (an n-fold axis
  with n > 4 makes a fourth-order tensor invariant under every rotation about it);
* orthotropic (cell axes): the reflections x_k -> -x_k;
* 2D (in-plane tensor of plane strain): isotropic in-plane (D12), square symmetric (D4, the
  2D "cubic" class), orthotropic (reflections).

The relative distance of a class is |C - P(C)| / |C|. A fibre cross-section whose fibres are
randomly placed is transversely isotropic about the fibre axis: its in-plane tensor is
isotropic in-plane.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from fe2.physics import Physics
from fe2.tensors import MANDEL_LABELS, mandel_basis, mandel_size, to_mandel

#: Relative distance below which a tensor counts as having a symmetry (classifications).
SYMMETRY_TOLERANCE = 0.01
#: Relative distance to isotropy above which a cell meant to be isotropic is reported.
ISOTROPY_TOLERANCE = 0.02


def mandel_rotation(Q: np.ndarray) -> np.ndarray:
    """Mandel matrix R (n, n) of x -> Q x Q^T for an orthogonal Q (d, d): mandel(Q a Q^T) =
    R mandel(a); R is orthogonal."""
    Q = np.asarray(Q, dtype=float)
    basis = mandel_basis(Q.shape[0])
    return to_mandel(Q @ basis @ Q.T).T


def _voigt_weights(dim: int) -> np.ndarray:
    n = mandel_size(dim)
    return np.array([1.0] * dim + [math.sqrt(2.0)] * (n - dim))


def voigt_compliance(C: np.ndarray) -> np.ndarray:
    """Compliance with engineering shear strains (Voigt), (n, n), from a Mandel stiffness."""
    dim = {3: 2, 6: 3}[C.shape[0]]
    w = _voigt_weights(dim)
    return np.linalg.inv(C) * np.outer(w, w)


def engineering_constants(C: np.ndarray) -> dict:
    """E_i, G_ij, nu_ij and the coupling ratios of a Mandel stiffness (n, n) (see the module
    docstring); in 2D the plane-strain constants. Units of C (moduli), ratios without."""
    C = np.asarray(C, dtype=float)
    dim = {3: 2, 6: 3}[C.shape[0]]
    S = voigt_compliance(0.5 * C + 0.5 * C.T)
    labels = MANDEL_LABELS[dim]
    normal = range(dim)
    constants: dict = {}
    for a, label in enumerate(labels):
        constants[("E" if a < dim else "G") + (label[0] if a < dim else label)] = 1.0 / S[a, a]
    for i, j in itertools.permutations(normal, 2):
        constants[f"nu{i + 1}{j + 1}"] = -S[j, i] / S[i, i]
    coupling = {
        f"{labels[b]}/{labels[a]}": S[b, a] / S[a, a]
        for a, b in itertools.permutations(range(len(labels)), 2)
        if a >= dim or b >= dim
    }
    return {**constants, "coupling": coupling}


def stiffness_from_constants(constants: dict, dim: int) -> np.ndarray:
    """The Mandel stiffness (n, n) whose :func:`engineering_constants` are ``constants``."""
    labels = MANDEL_LABELS[dim]
    n = len(labels)
    S = np.zeros((n, n))
    for a, label in enumerate(labels):
        S[a, a] = 1.0 / constants[("E" + label[0]) if a < dim else ("G" + label)]
    for a, b in itertools.permutations(range(n), 2):
        if a < dim and b < dim:
            S[b, a] = -constants[f"nu{a + 1}{b + 1}"] * S[a, a]
        else:
            S[b, a] = constants["coupling"][f"{labels[b]}/{labels[a]}"] * S[a, a]
    w = _voigt_weights(dim)
    C = np.linalg.inv(S / np.outer(w, w))
    return 0.5 * C + 0.5 * C.T


# ----------------------------------------------------------------------------- symmetry


def _rotation(axis: int, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    i, j = [k for k in range(3) if k != axis]
    Q = np.eye(3)
    Q[i, i], Q[i, j], Q[j, i], Q[j, j] = c, -s, s, c
    return Q


def _dihedral_3d(axis: int, order: int) -> list[np.ndarray]:
    """D_order about e_axis: rotations by 2 pi k / order, and those times a half-turn about
    a perpendicular axis."""
    flip = _rotation((axis + 1) % 3, math.pi)
    rotations = [_rotation(axis, 2 * math.pi * k / order) for k in range(order)]
    return rotations + [R @ flip for R in rotations]


def _dihedral_2d(order: int) -> list[np.ndarray]:
    rotations = [_rotation(2, 2 * math.pi * k / order)[:2, :2] for k in range(order)]
    return rotations + [R @ np.diag([1.0, -1.0]) for R in rotations]


def _reflections(dim: int) -> list[np.ndarray]:
    return [np.diag(signs) for signs in itertools.product((1.0, -1.0), repeat=dim)]


def _signed_permutations() -> list[np.ndarray]:
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            Q = np.zeros((3, 3))
            Q[range(3), perm] = signs
            out.append(Q)
    return out


def group_average(C: np.ndarray, group: list[np.ndarray]) -> np.ndarray:
    """Reynolds average mean_g R_g C R_g^T of a Mandel matrix over a finite group of
    orthogonal matrices (the orthogonal projection onto its invariant tensors)."""
    total = np.zeros_like(C, dtype=float)
    for Q in group:
        R = mandel_rotation(Q)
        total += R @ C @ R.T
    return total / len(group)


def isotropic_part(C: np.ndarray) -> np.ndarray:
    """Closest isotropic tensor (3D) or in-plane isotropic tensor (2D), Mandel (n, n)."""
    dim = {3: 2, 6: 3}[C.shape[0]]
    if dim == 2:
        return group_average(C, _dihedral_2d(12))
    n = 6
    J = np.zeros((n, n))
    J[:3, :3] = 1.0 / 3.0
    K = np.eye(n) - J
    return J * np.sum(J * C) + K * (np.sum(K * C) / 5.0)


def symmetry_classes(dim: int) -> dict[str, object]:
    """Class name -> projection (a function of a Mandel matrix), in the cell axes."""
    if dim == 2:
        return {
            "isotropic": isotropic_part,
            "square": lambda C: group_average(C, _dihedral_2d(4)),
            "orthotropic": lambda C: group_average(C, _reflections(2)),
        }
    classes = {
        "isotropic": isotropic_part,
        "cubic": lambda C: group_average(C, _signed_permutations()),
    }
    for axis in range(3):
        classes[f"transversely_isotropic_{axis + 1}"] = (
            lambda C, axis=axis: group_average(C, _dihedral_3d(axis, 12))
        )
    classes["orthotropic"] = lambda C: group_average(C, _reflections(3))
    return classes


#: Classes from the most to the least symmetric, per dimension (for the classification).
_ORDER = {
    2: ("isotropic", "square", "orthotropic"),
    3: ("isotropic", "cubic", "transversely_isotropic_1", "transversely_isotropic_2",
        "transversely_isotropic_3", "orthotropic"),
}


def _unit(T: np.ndarray) -> float:
    """The largest entry's magnitude (1 for a zero tensor)."""
    largest = float(np.abs(T).max())
    return largest if largest > 0 else 1.0


def _relative(difference: np.ndarray, norm: float) -> float:
    """|difference| / norm; 0 for a zero tensor (which has every symmetry)."""
    return float(np.linalg.norm(difference) / norm) if norm > 0 else 0.0


def symmetry_report(C: np.ndarray, *, tolerance: float = SYMMETRY_TOLERANCE) -> dict:
    """Per class the closest tensor and its relative distance; ``class``: the most symmetric
    class within ``tolerance`` (cubic and transversely isotropic rank equal: the nearer one),
    'anisotropic' if none."""
    C = np.asarray(C, dtype=float)
    dim = {3: 2, 6: 3}[C.shape[0]]
    unit = _unit(C)  # distances are scale-free; no overflow for huge moduli
    C = 0.5 * (C / unit + (C / unit).T)
    norm = np.linalg.norm(C)
    report: dict = {}
    for name, project in symmetry_classes(dim).items():
        closest = project(C)
        report[name] = {"distance": _relative(C - closest, norm), "closest": unit * closest}
    within = [name for name in _ORDER[dim] if report[name]["distance"] <= tolerance]
    if not within:
        found = "anisotropic"
    elif within[0] == "isotropic" or within[0] == "orthotropic":
        found = within[0]
    else:  # cubic / transversely isotropic: equally ranked, take the nearer
        found = min((n for n in within if n != "orthotropic"), key=lambda n: report[n]["distance"])
    return {"classes": report, "class": found, "tolerance": tolerance}


def small_strain_stiffness(A: np.ndarray) -> np.ndarray:
    """Mandel stiffness (n, n) of dP/dF at F = I (d^2, d^2, row-major F) of a stress-free
    reference state, where it has the minor symmetries (symmetrised over them)."""
    A = np.asarray(A, dtype=float)
    dim = {4: 2, 9: 3}[A.shape[0]]
    T = A.reshape(dim, dim, dim, dim)
    T = 0.25 * (T + T.transpose(1, 0, 2, 3) + T.transpose(0, 1, 3, 2) + T.transpose(1, 0, 3, 2))
    basis = mandel_basis(dim)
    return np.einsum("aij,ijkl,bkl->ab", basis, T, basis)


def conductivity_report(
    K: np.ndarray, *, tolerance: float = SYMMETRY_TOLERANCE
) -> tuple[dict, dict]:
    """(principal conductivities and axes, symmetry) of a conductivity tensor (d, d)."""
    K = np.asarray(K, dtype=float)
    K = 0.5 * K + 0.5 * K.T  # (no overflow for huge entries)
    values, vectors = np.linalg.eigh(K)
    norm = np.linalg.norm(K / _unit(K))
    iso = np.trace(K) / K.shape[0] * np.eye(K.shape[0])
    ortho = np.diag(np.diag(K))
    classes = {
        "isotropic": {"distance": _relative((K - iso) / _unit(K), norm), "closest": iso},
        "orthotropic": {"distance": _relative((K - ortho) / _unit(K), norm), "closest": ortho},
    }
    within = [n for n in ("isotropic", "orthotropic") if classes[n]["distance"] <= tolerance]
    found = within[0] if within else "anisotropic"
    constants = {
        "principal_conductivities": values[::-1].tolist(),
        "principal_axes": vectors[:, ::-1].T.tolist(),
    }
    return constants, {"classes": classes, "class": found, "tolerance": tolerance}


def _elastic_report(C: np.ndarray, dim: int) -> tuple[dict, dict]:
    if not np.linalg.eigvalsh(0.5 * C + 0.5 * C.T).min() > 0:
        return {"note": "the tensor is not positive definite: no engineering constants"}, symmetry_report(C)
    constants = engineering_constants(C)
    constants = {k: v if isinstance(v, dict) else float(v) for k, v in constants.items()}
    constants["coupling"] = {k: float(v) for k, v in constants["coupling"].items()}
    constants["notation"] = (
        "plane strain: E_i = 1/S'_ii, nu_ij = -S'_ji/S'_ii, G12 = 1/S'_66 of the in-plane "
        "compliance S' (isotropic: E/(1-nu^2), nu/(1-nu), G)" if dim == 2 else
        "E_i = 1/S_ii, nu_ij = -S_ji/S_ii, G_ij = 1/S_(ij)(ij) of the compliance (Voigt, "
        "engineering shears)"
    ) + "; coupling 'b/a' = S_ba/S_aa, strain b per strain a under uniaxial stress a"
    return constants, symmetry_report(C)


def tensor_report(physics: Physics, tensor: np.ndarray, *, expect_isotropic: bool = False) -> dict:
    """``engineering_constants`` and ``symmetry`` of an effective tensor (n, n), JSON-ready.

    By ``physics.tensor_kind``: 'stiffness' (Mandel C), 'tangent_at_identity' (dP/dF at
    F = I, analysed as its small-strain Mandel stiffness) or 'conductivity' (K: the block of
    the gradient components, without the dq/dT column of a k(T) phase). With
    ``expect_isotropic`` (a statistically isotropic cell, e.g. random inclusions) a
    ``warning`` is added when the distance to the class such a cell must have
    (``physics.statistical_symmetry``: isotropy; transverse isotropy about x3 for the 3D tensor
    of a fibre section) exceeds :data:`ISOTROPY_TOLERANCE`.
    """
    dim, kind = physics.tensor_dim, physics.tensor_kind
    block = physics.fluctuation_components
    tensor = np.asarray(tensor, dtype=float)[block, block]
    if kind == "conductivity":
        constants, symmetry = conductivity_report(tensor)
    elif kind == "tangent_at_identity":
        constants, symmetry = _elastic_report(small_strain_stiffness(tensor), dim)
        if "notation" in constants:
            constants["notation"] = "of the small-strain stiffness at F = I; " + constants["notation"]
    else:
        constants, symmetry = _elastic_report(tensor, dim)
    symmetry["classes"] = {
        name: {"distance": c["distance"], "closest": np.asarray(c["closest"]).tolist()}
        for name, c in symmetry["classes"].items()
    }
    plane = dim == 2 and kind != "conductivity"
    symmetry["metric"] = (
        "relative Frobenius distance |C - P(C)| / |C| of the Mandel matrices to the closest "
        "tensor P(C) of each class, in the axes of the cell"
        + ("; 2D: classes of the in-plane (plane-strain) tensor" if plane else "")
    )
    expected = physics.statistical_symmetry if kind != "conductivity" else "isotropic"
    distance = symmetry["classes"][expected]["distance"]
    symmetry["expected_isotropic"] = expect_isotropic
    if expect_isotropic and distance > ISOTROPY_TOLERANCE:
        what = {"isotropic": "in-plane isotropic (transversely isotropic section)" if dim == 2 else "isotropic",
                "transversely_isotropic_3": "transversely isotropic about x3 (random fibres along x3)"}[expected]
        away = "isotropy" if expected == "isotropic" else "transverse isotropy about x3"
        symmetry["warning"] = (
            f"the random cell is meant to be statistically {what} but its tensor is "
            f"{100 * distance:.1f} % away from {away} "
            f"(tolerance {100 * ISOTROPY_TOLERANCE:g} %): "
            "the cell is too small to be representative; use more inclusions (n) or average "
            "several seeds"
        )
    return {"engineering_constants": constants, "symmetry": symmetry}


def format_tensor_report(report: dict, dim: int) -> list[str]:
    """Lines for the terminal: the constants and the class distances (and the warning)."""
    constants = report["engineering_constants"]
    lines = []
    if "principal_conductivities" in constants:
        values = constants["principal_conductivities"]
        lines.append("  principal conductivities: " + ", ".join(f"{k:.5g}" for k in values))
    elif "note" in constants:
        lines.append(f"  {constants['note']}")
    else:
        moduli = [k for k in constants if k[0] in "EG" and k[1:].isdigit()]
        ratios = [k for k in constants if k.startswith("nu")]
        head = "  plane-strain constants: " if dim == 2 else "  engineering constants: "
        lines.append(head + ", ".join(f"{k} {constants[k]:.5g}" for k in moduli))
        lines.append("    " + ", ".join(f"{k} {constants[k]:.4f}" for k in ratios))
        coupling = max((abs(v) for v in constants["coupling"].values()), default=0.0)
        lines[-1] += f", largest coupling ratio {coupling:.3g}"
    symmetry = report["symmetry"]
    ti = "transversely_isotropic_"
    distances = [
        f"{name.replace(ti, 'TI axis ')} {100 * c['distance']:.2f} %"
        for name, c in symmetry["classes"].items()
    ]
    found = symmetry["class"].replace(ti, "transversely isotropic, axis ")
    lines.append(f"  distance to symmetry classes (cell axes): {', '.join(distances)} -> {found}")
    if "warning" in symmetry:
        lines.append(f"  WARNING: {symmetry['warning']}")
    return lines
