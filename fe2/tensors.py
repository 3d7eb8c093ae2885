"""Mandel notation for symmetric second-order tensors, and isotropic tensors.

One place for every index convention of the package. A symmetric tensor ``a`` (d x d) is
stored as the Mandel vector

    2D: (a11, a22, sqrt2 a12)                                   n = 3
    3D: (a11, a22, a33, sqrt2 a23, sqrt2 a13, sqrt2 a12)        n = 6

so that ``a : b = mandel(a) . mandel(b)`` and a fourth-order tensor with minor symmetries is a
symmetric n x n matrix whose eigenvalues are those of the tensor. Conversions to Voigt
(engineering shear strain) are given for comparison with the literature.
"""

from __future__ import annotations

import numpy as np
import ufl

SQRT2 = np.sqrt(2.0)

#: (i, j) index pairs of the Mandel components, per dimension.
MANDEL_PAIRS: dict[int, tuple[tuple[int, int], ...]] = {
    2: ((0, 0), (1, 1), (0, 1)),
    3: ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)),
}

#: Component labels in Mandel order.
MANDEL_LABELS: dict[int, tuple[str, ...]] = {
    d: tuple(f"{i + 1}{j + 1}" for i, j in pairs) for d, pairs in MANDEL_PAIRS.items()
}


def mandel_size(dim: int) -> int:
    """Number of independent components of a symmetric dim x dim tensor (3 or 6)."""
    return len(_pairs(dim))


def _pairs(dim: int) -> tuple[tuple[int, int], ...]:
    try:
        return MANDEL_PAIRS[dim]
    except KeyError:
        raise ValueError(f"dimension must be 2 or 3, got {dim}") from None


def _weights(dim: int) -> np.ndarray:
    return np.array([1.0 if i == j else SQRT2 for i, j in _pairs(dim)])


def to_mandel(a: np.ndarray) -> np.ndarray:
    """Symmetric tensor(s) ``(..., d, d)`` -> Mandel vector(s) ``(..., n)``."""
    a = np.asarray(a)
    dim = a.shape[-1]
    return np.stack([a[..., i, j] for i, j in _pairs(dim)], axis=-1) * _weights(dim)


def from_mandel(v: np.ndarray) -> np.ndarray:
    """Mandel vector(s) ``(..., n)`` -> symmetric tensor(s) ``(..., d, d)``."""
    v = np.asarray(v)
    dim = {3: 2, 6: 3}[v.shape[-1]]
    a = np.zeros(v.shape[:-1] + (dim, dim), dtype=v.dtype)
    for k, (i, j) in enumerate(_pairs(dim)):
        value = v[..., k] / _weights(dim)[k]
        a[..., i, j] = value
        a[..., j, i] = value
    return a


def mandel_basis(dim: int) -> np.ndarray:
    """Symmetric tensors ``E_k`` (n, d, d) whose Mandel vectors are the unit vectors e_k."""
    return from_mandel(np.eye(mandel_size(dim)))


def ufl_mandel(a: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
    """Mandel vector of a symmetric UFL tensor (shape (d, d) -> (n,))."""
    dim = a.ufl_shape[0]
    return ufl.as_vector([w * a[i, j] for (i, j), w in zip(_pairs(dim), _weights(dim))])


def lame_parameters(E: float, nu: float) -> tuple[float, float]:
    """Young's modulus E and Poisson's ratio nu -> Lamé parameters (lambda, mu), units of E."""
    return E * nu / ((1.0 + nu) * (1.0 - 2.0 * nu)), E / (2.0 * (1.0 + nu))


def isotropic_stiffness(lmbda: float, mu: float, dim: int) -> np.ndarray:
    """Isotropic stiffness lambda I(x)I + 2 mu I_s in Mandel form, (n, n).

    In 2D this is the plane-strain stiffness (sigma_33 does not enter the in-plane problem).
    """
    n = mandel_size(dim)
    C = 2.0 * mu * np.eye(n)
    C[:dim, :dim] += lmbda
    return C


def mandel_to_voigt_stiffness(C: np.ndarray) -> np.ndarray:
    """Mandel stiffness (n, n) -> Voigt stiffness for engineering shear strains (n, n).

    Voigt: sigma_v = C_v . (e11, e22, 2 e12) with sigma_v = (s11, s22, s12) (2D).
    """
    dim = {3: 2, 6: 3}[C.shape[0]]
    w = _weights(dim)
    return C / np.outer(w, w)


def voigt_to_mandel_stiffness(C: np.ndarray) -> np.ndarray:
    """Inverse of :func:`mandel_to_voigt_stiffness`."""
    dim = {3: 2, 6: 3}[C.shape[0]]
    w = _weights(dim)
    return C * np.outer(w, w)


def mandel_to_tensor(C: np.ndarray) -> np.ndarray:
    """Mandel matrix (n, n) of a tensor with minor symmetries -> full tensor (d, d, d, d)."""
    dim = {3: 2, 6: 3}[C.shape[0]]
    pairs, w = _pairs(dim), _weights(dim)
    T = np.zeros((dim,) * 4)
    for a, (i, j) in enumerate(pairs):
        for b, (k, l) in enumerate(pairs):
            value = C[a, b] / (w[a] * w[b])
            for p, q in {(i, j), (j, i)}:
                for r, s in {(k, l), (l, k)}:
                    T[p, q, r, s] = value
    return T
