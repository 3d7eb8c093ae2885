"""Finite-strain mechanics: F and P flattened row-major (plane strain in 2D)."""

from __future__ import annotations

import numpy as np
import ufl

from fe2.errors import InputError
from fe2.physics.base import Physics, check_shape
from fe2.tensors import mandel_to_tensor


class FiniteStrain(Physics):
    """Field u (vector), strain = F = I + grad u flattened row-major (F11, F12, F21, F22 in
    2D), stress = first Piola-Kirchhoff P flattened alike."""

    name = "finite_strain"
    default_law = "neo_hookean"
    tensor_key = "A"
    tensor_kind = "tangent_at_identity"
    csv_prefix = ("F", "P")
    notation = "row-major F (tangent dP/dF)"
    gradient_name = "deformation gradient"
    flux_name = "first Piola-Kirchhoff stress"

    @property
    def value_shape(self) -> tuple[int, ...]:
        return (self.dim,)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(f"{i + 1}{j + 1}" for i in range(self.dim) for j in range(self.dim))

    @property
    def reference_strain(self) -> np.ndarray:
        return np.eye(self.dim).ravel()

    def strain(self, w):
        g = ufl.grad(w)
        return ufl.as_vector([g[i, j] for i in range(self.dim) for j in range(self.dim)])

    def macro_field(self, E, x):
        d = self.dim
        H = ufl.as_matrix([[E[i * d + j] - (1.0 if i == j else 0.0) for j in range(d)] for i in range(d)])
        return H * x

    def parse_strain(self, value, *, key):
        d = self.dim
        array = check_shape(np.asarray(value, dtype=float), (d, d), key=key, what=f"a {d} x {d} tensor")
        self.check_strain_vector(array.ravel(), key=key)
        return array.ravel()

    def parse_stress(self, value, *, key):
        d = self.dim
        return check_shape(np.asarray(value, dtype=float), (d, d), key=key, what=f"a {d} x {d} tensor").ravel()

    def check_strain_vector(self, vector, *, key):
        d = self.dim
        if np.linalg.det(np.asarray(vector).reshape(d, d)) <= 0:
            raise InputError(f"{key}: the deformation gradient must have det F > 0")

    @property
    def output_shape(self):
        return (3, 3)

    def output_values(self, vectors):
        d = self.dim
        out = np.zeros((len(vectors), 3, 3))
        out[:, :d, :d] = vectors.reshape(len(vectors), d, d)
        return out

    def stress_fields(self, stress, strain, out_of_plane):
        """P, the Cauchy stress, its von Mises and principal stresses (2D: with P33 only)."""
        from fe2.io.derived import finite_strain_stress_fields

        return finite_strain_stress_fields(stress, strain, dim=self.dim, P33=out_of_plane)

    def tangent_notation(self, C):
        """The Mandel small-strain tangent of a phase -> dP/dF at F = I, row-major F components."""
        d = self.dim
        return mandel_to_tensor(C).reshape(d * d, d * d)
