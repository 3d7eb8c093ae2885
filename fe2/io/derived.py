r"""Derived stress quantities for output: pure batched functions on m points.

Small strain, Mandel vectors (see :mod:`fe2.tensors`): 2D (s11, s22, sqrt2 s12), 3D
(s11, s22, s33, sqrt2 s23, sqrt2 s13, sqrt2 s12). Finite strain: F and P row-major.

* Plane strain (eps33 = 0) carries a stress sigma33 that the in-plane problem does not
  need. For isotropic elasticity with an inelastic (plastic) strain eps^in, the elastic
  eps^e33 = -eps^in33 and Hooke's law give

      sigma33 = nu (sigma11 + sigma22) - E eps^in33

  (J2: eps^in = the plastic strain, its 33 entry in the law's history); at finite strain
  (Neo-Hookean, F33 = 1): P33 = mu (1 - 1) + lambda ln J = lambda ln J, sigma33 = P33 / J.
* von Mises: sigma_eq = sqrt(3/2 s:s), s = dev sigma (needs the full 3D stress: in plane
  strain sigma33 enters).
* principal stresses: eigenvalues of sigma, in descending order.
* Cauchy stress from P and F: sigma = J^-1 P F^T, J = det F.
"""

from __future__ import annotations

import numpy as np

from fe2.tensors import from_mandel, lame_parameters, to_mandel

#: Positions of the 2D Mandel components (11, 22, 12) among the 3D ones.
_PLANE = [0, 1, 5]


def plane_strain_sigma33(
    stress: np.ndarray, *, E: float, nu: float, inelastic_strain_33: np.ndarray | None = None
) -> np.ndarray:
    """Out-of-plane stress (m,) of plane strain from the in-plane stress (m, 3) (Mandel) of an
    isotropic law (E, nu), with the 33 entry of its inelastic strain (m,) (default 0)."""
    stress = np.asarray(stress, dtype=float)
    sigma33 = nu * (stress[:, 0] + stress[:, 1])
    if inelastic_strain_33 is not None:
        sigma33 = sigma33 - E * np.asarray(inelastic_strain_33, dtype=float)
    return sigma33


def neo_hookean_plane_strain_p33(F: np.ndarray, *, E: float, nu: float) -> np.ndarray:
    """P33 (m,) of the Neo-Hookean law in plane strain (F33 = 1) from F (m, 4) row-major."""
    lmbda, _ = lame_parameters(E, nu)
    F = np.asarray(F, dtype=float).reshape(-1, 2, 2)
    return lmbda * np.log(np.linalg.det(F))


def embed_plane_strain(stress: np.ndarray, sigma33: np.ndarray) -> np.ndarray:
    """Full 3D Mandel stress (m, 6) of plane strain: in-plane (m, 3) and sigma33 (m,)."""
    stress = np.asarray(stress, dtype=float)
    full = np.zeros((stress.shape[0], 6))
    full[:, _PLANE] = stress
    full[:, 2] = sigma33
    return full


def von_mises(stress: np.ndarray) -> np.ndarray:
    """Von Mises stress sqrt(3/2 s:s) (m,) of 3D Mandel stresses (m, 6)."""
    stress = np.asarray(stress, dtype=float)
    if stress.shape[-1] != 6:
        raise ValueError(f"von Mises needs the full 3D stress (m, 6), got {stress.shape}; "
                         "in plane strain embed sigma33 first (embed_plane_strain)")
    mean = stress[:, :3].mean(axis=1)
    deviator = stress.copy()
    deviator[:, :3] -= mean[:, None]
    return np.sqrt(1.5 * np.einsum("mi,mi->m", deviator, deviator))


def principal_stresses(stress: np.ndarray) -> np.ndarray:
    """Principal stresses (m, d), descending, of Mandel stresses (m, 3) or (m, 6)."""
    return np.linalg.eigvalsh(from_mandel(np.asarray(stress, dtype=float)))[:, ::-1]


def cauchy_stress(P: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Cauchy stress J^-1 P F^T (m, d, d) from P and F (m, d*d) row-major (d from the size)."""
    P, F = np.asarray(P, dtype=float), np.asarray(F, dtype=float)
    dim = int(round(np.sqrt(F.shape[-1])))
    P, F = P.reshape(-1, dim, dim), F.reshape(-1, dim, dim)
    return np.einsum("mij,mkj->mik", P, F) / np.linalg.det(F)[:, None, None]


def cauchy_stress_plane_strain(P: np.ndarray, F: np.ndarray, P33: np.ndarray) -> np.ndarray:
    """Full 3D Cauchy stress (m, 6) (Mandel) of finite-strain plane strain (F33 = 1) from the
    in-plane P, F (m, 4) and P33 (m,): sigma33 = P33 / J."""
    sigma = cauchy_stress(P, F)
    J = np.linalg.det(np.asarray(F, dtype=float).reshape(-1, 2, 2))
    return embed_plane_strain(to_mandel(sigma), np.asarray(P33, dtype=float) / J)


def full_stress_fields(stress: np.ndarray, *, dim: int, sigma33: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Output fields of small-strain Mandel stresses (m, n): the full 3 x 3 ``stress`` (m, 3, 3),
    ``von_mises`` (m,) and ``principal_stress`` (m, 3) (descending).

    In 2D (plane strain) the full stress needs sigma33 (m,): without it the result is {}
    (von Mises and the principal stresses of an in-plane stress with sigma33 = 0 would be wrong).
    """
    stress = np.asarray(stress, dtype=float)
    if dim == 2:
        if sigma33 is None:
            return {}
        stress = embed_plane_strain(stress, sigma33)
    return {"stress": from_mandel(stress), "von_mises": von_mises(stress),
            "principal_stress": principal_stresses(stress)}


def finite_strain_stress_fields(P: np.ndarray, F: np.ndarray, *, dim: int,
                                P33: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Output fields of first Piola stresses P and deformation gradients F (m, d*d) row-major:
    ``stress`` (P, (m, 3, 3), P33 in 2D), ``cauchy_stress`` (m, 3, 3), and ``von_mises`` (m,)
    and ``principal_stress`` (m, 3) of the Cauchy stress. In 2D (plane strain, F33 = 1) this
    needs P33 (m,): without it the result is {}."""
    P, F = np.asarray(P, dtype=float), np.asarray(F, dtype=float)
    m = len(P)
    first = np.zeros((m, 3, 3))
    first[:, :dim, :dim] = P.reshape(m, dim, dim)
    if dim == 2:
        if P33 is None:
            return {}
        first[:, 2, 2] = P33
        cauchy = cauchy_stress_plane_strain(P, F, P33)
    else:
        cauchy = to_mandel(cauchy_stress(P, F))
    return {"stress": first, "cauchy_stress": from_mandel(cauchy), "von_mises": von_mises(cauchy),
            "principal_stress": principal_stresses(cauchy)}


def flat_output_values(physics, vectors: np.ndarray) -> np.ndarray:
    """Strain or stress vectors (m, n) -> the physics' output values flat per row, (m, 9) for
    3 x 3 tensors, (m, d) for vectors (explicit sizes: a rank may hold no row)."""
    vectors = np.asarray(vectors, dtype=float)
    return physics.output_values(vectors).reshape(len(vectors), int(np.prod(physics.output_shape)))


def stress_output_values(physics, stress: np.ndarray, strain: np.ndarray,
                         out_of_plane: np.ndarray | None) -> dict[str, np.ndarray]:
    """Output rows of m stress states (cell means or quadrature points): from the stress and
    strain vectors (m, n) and, in 2D, the out-of-plane stress (m,) or None, name -> values:
    ``stress`` (m, 9) -- the full stress where the physics knows it (``stress_fields``),
    else its output values -- and the derived fields (``von_mises`` (m,),
    ``principal_stress`` (m, 3), ``cauchy_stress`` (m, 9), ...) where the full stress is known."""
    full = physics.stress_fields(stress, strain, out_of_plane)
    if not full:
        return {"stress": flat_output_values(physics, stress)}
    return {name: value.reshape(len(value), 9) if value.ndim == 3 else value for name, value in full.items()}
