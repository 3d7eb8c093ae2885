r"""Generalised plane strain: the 2D cross-section of a body that is uniform along x3.

A unidirectional fibre composite (fibres along x3) is uniform along its fibres, so its RVE is
a 2D section Y of the fibre arrangement, but its effective tensor is the full 3D one. On the
section the field is the displacement u = (u1, u2, u3)(x1, x2) -- three components on a 2D mesh,
the third being the out-of-plane (warping) displacement -- and nothing depends on x3:

.. math::

    \varepsilon(u) = \mathrm{sym}\begin{pmatrix}
        u_{1,1} & u_{1,2} & 0 \\ u_{2,1} & u_{2,2} & 0 \\ u_{3,1} & u_{3,2} & 0\end{pmatrix},
    \qquad \varepsilon_{33}(u) = 0,\quad \varepsilon_{13} = u_{3,1}/2,\quad
    \varepsilon_{23} = u_{3,2}/2.

The macro strain E is the full symmetric 3 x 3 tensor (Mandel, 6 components 11, 22, 33, 23,
13, 12, units of strain); the micro strain is E + eps(w) for the fluctuation w(x1, x2), so the
out-of-plane normal strain E33 is uniform (generalised plane strain) and E13, E23 are the
anti-plane shears. The phase laws are the 3D laws of elasticity (``tensor_dim`` = 3); the
RVE returns the 6 x 6 effective stiffness, exactly the tensor of the 3D RVE made by extruding
the section along x3 (to the discretisation error), and 3D stresses (sigma33 is a component).
"""

from __future__ import annotations

import ufl

from fe2.errors import InputError
from fe2.physics.elasticity import Elasticity
from fe2.tensors import ufl_mandel


class GeneralizedPlaneStrain(Elasticity):
    """Field (u1, u2, u3) on a 2D section, strain = the Mandel 3D strain (6,) with d/dx3 = 0."""

    name = "generalized_plane_strain"
    law_physics = "elasticity"
    #: Random fibres in a section: transversely isotropic about the fibre axis x3.
    statistical_symmetry = "transversely_isotropic_3"
    mesh_dims = (2,)
    macro = False  # a section has no macro problem of its own

    def __init__(self, dim: int):
        if dim not in self.mesh_dims:
            raise InputError(
                f"physics generalized_plane_strain needs a 2D RVE mesh (a cross-section "
                f"normal to x3), got a {dim}D mesh; use physics elasticity for a 3D RVE"
            )
        super().__init__(dim)

    @property
    def tensor_dim(self) -> int:
        return 3

    @property
    def value_shape(self) -> tuple[int, ...]:
        return (3,)

    @staticmethod
    def gradient(w):
        """The 3 x 3 displacement gradient of a field (3,) on the section (d/dx3 = 0)."""
        g = ufl.grad(w)  # (3, 2)
        return ufl.as_matrix([[g[i, 0], g[i, 1], 0] for i in range(3)])

    def strain(self, w):
        return ufl_mandel(ufl.sym(self.gradient(w)))

    def macro_field(self, E, x):
        """E x at the point (x1, x2, 0) of the section."""
        return self.macro_tensor(E) * ufl.as_vector([x[0], x[1], 0])
