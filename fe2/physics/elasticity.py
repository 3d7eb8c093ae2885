"""Small-strain elasticity (plane strain in 2D): Mandel strain and stress.

The strain and stress tensors have dimension ``tensor_dim`` (the mesh dimension here; 3 for
the generalised plane strain of :mod:`fe2.physics.generalized_plane_strain`)."""

from __future__ import annotations

import numpy as np
import ufl

from fe2.errors import InputError
from fe2.physics.base import Physics, check_shape
from fe2.tensors import MANDEL_LABELS, MANDEL_PAIRS, SQRT2, from_mandel, to_mandel, ufl_mandel


class Elasticity(Physics):
    """Field u (vector), strain = Mandel(sym grad u), stress = Mandel(sigma)."""

    name = "elasticity"
    default_law = "linear_elastic"
    tensor_key = "C"
    csv_prefix = ("E", "S")
    notation = "mandel"
    gradient_name = "strain"
    flux_name = "stress"
    elastic_shortcut = True

    @property
    def value_shape(self) -> tuple[int, ...]:
        return (self.dim,)

    @property
    def labels(self) -> tuple[str, ...]:
        return MANDEL_LABELS[self.tensor_dim]

    def strain(self, w):
        return ufl_mandel(ufl.sym(ufl.grad(w)))

    def macro_tensor(self, E):
        """The symmetric strain tensor (tensor_dim x tensor_dim, UFL) of a Mandel vector E."""
        s2 = 2.0**0.5
        if self.tensor_dim == 2:
            return ufl.as_matrix([[E[0], E[2] / s2], [E[2] / s2, E[1]]])
        return ufl.as_matrix(
            [
                [E[0], E[5] / s2, E[4] / s2],
                [E[5] / s2, E[1], E[3] / s2],
                [E[4] / s2, E[3] / s2, E[2]],
            ]
        )

    def macro_field(self, E, x):
        return self.macro_tensor(E) * x

    def _symmetric(self, value, *, key, what):
        d = self.tensor_dim
        array = check_shape(np.asarray(value, dtype=float), (d, d), key=key, what=f"a {d} x {d} tensor")
        if not np.allclose(array, array.T, rtol=0, atol=1e-14 * max(1.0, np.abs(array).max())):
            raise InputError(f"{key}: the {what} tensor must be symmetric")
        return to_mandel(0.5 * (array + array.T))

    def parse_strain(self, value, *, key):
        return self._symmetric(value, key=key, what="small-strain")

    def parse_stress(self, value, *, key):
        return self._symmetric(value, key=key, what="stress")

    def component_map(self):
        """'11', '22', '12' (and '21': the same symmetric component); shears scaled by sqrt 2."""
        table = {}
        for k, (i, j) in enumerate(MANDEL_PAIRS[self.tensor_dim]):
            factor = 1.0 if i == j else SQRT2
            table[f"{i + 1}{j + 1}"] = table[f"{j + 1}{i + 1}"] = (k, factor)
        return table

    @property
    def output_shape(self):
        return (3, 3)

    def output_values(self, vectors):
        out = np.zeros((len(vectors), 3, 3))
        d = self.tensor_dim
        out[:, :d, :d] = from_mandel(vectors)
        return out

    def tensor_components(self, vector):
        matrix = from_mandel(vector)
        return np.array([matrix[i, j] for i, j in MANDEL_PAIRS[self.tensor_dim]])

    def stress_fields(self, stress, strain, out_of_plane):
        """Full stress, von Mises and principal stresses (2D: with sigma33 only)."""
        from fe2.io.derived import full_stress_fields

        return full_stress_fields(stress, dim=self.tensor_dim, sigma33=out_of_plane)

    def effective_law(self, C):
        from fe2.materials import AnisotropicLinearElastic

        return AnisotropicLinearElastic(C)
