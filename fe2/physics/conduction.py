"""Stationary heat conduction or Darcy flow: strain = the temperature (pressure) gradient."""

from __future__ import annotations

import numpy as np
import ufl

from fe2.errors import InputError
from fe2.physics.base import Physics, check_shape


class Conduction(Physics):
    """Field T (scalar), strain = grad T, stress = the flux with the sign dropped, q = K grad T
    (the physical flux is -q). For Darcy flow read T as the pressure and q as -v.

    With ``temperature=True`` (phase laws that depend on the temperature itself, k(T)), the
    strain gets the temperature as a last component: (grad T, T), n = dim + 1, and the flux a
    zero last component. In an RVE the fluctuation changes only the gradient: the micro
    temperature is the macro one to leading order (it varies by O(epsilon) across the cell),
    so the laws see (E_g + grad w, T_bar) and the tangent's last column is dq/dT_bar; on the
    macro scale the strain of T is (grad T, T), so the macro Jacobian has the term
    (dq/dT dT, grad v).
    """

    name = "conduction"
    primary = "temperature"
    default_law = "linear_conduction"
    tensor_key = "K"
    tensor_kind = "conductivity"
    csv_prefix = ("G", "Q")
    notation = "vector (gradient -> flux)"
    gradient_name = "temperature gradient"
    flux_name = "heat flux"
    strain_field = "gradient"
    stress_field = "flux"
    # history.csv: heat_flow_<b> (into the body through boundary b), temperature_<b> (its mean)
    reaction_column = "heat_flow"
    reaction_label = "heat flow into the body"
    mean_label = "mean temperature of the boundary"

    def __init__(self, dim: int, *, temperature: bool = False):
        super().__init__(dim)
        self.temperature = temperature

    @property
    def value_shape(self) -> tuple[int, ...]:
        return ()

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple("123"[: self.dim]) + (("T",) if self.temperature else ())

    def strain(self, w):
        if self.temperature:
            return ufl.as_vector([*(w.dx(i) for i in range(self.dim)), w])
        return ufl.grad(w)

    def fluctuation_strain(self, w):
        if self.temperature:
            return ufl.as_vector([*(w.dx(i) for i in range(self.dim)), ufl.zero()])
        return ufl.grad(w)

    @property
    def fluctuation_components(self) -> slice:
        return slice(0, self.dim)

    @property
    def stress_labels(self) -> tuple[str, ...]:
        """The gradient components (the temperature T has no conjugate flux)."""
        return self.labels[: self.dim]

    def macro_field(self, E, x):
        """T_bar + grad T_bar . x (the temperature term with ``temperature``)."""
        gradient = sum(E[i] * x[i] for i in range(self.dim))
        return gradient + E[self.dim] if self.temperature else gradient

    def parse_strain(self, value, *, key):
        n = self.n_comp
        what = "the temperature gradient and the temperature" if self.temperature else "a temperature gradient"
        return check_shape(np.asarray(value, dtype=float), (n,), key=key, what=f"{what}, {n} components")

    def parse_stress(self, value, *, key):
        d = self.dim
        if self.temperature:  # the flux has no T component: T must be prescribed as a strain
            raise InputError(f"{key}: with a temperature-dependent phase prescribe the flux per "
                             f"component and the temperature as a strain component, e.g. "
                             f"strain: {{T: 20}}, stress: {{1: 0.5, 2: 0}}")
        return check_shape(np.asarray(value, dtype=float), (d,), key=key, what=f"a vector of {d} components")

    @property
    def output_shape(self):
        return (self.dim,)

    def output_values(self, vectors):
        return np.asarray(vectors)[:, : self.dim]

    def effective_law(self, C):
        from fe2.materials.linear import AnisotropicLinearConductor

        return AnisotropicLinearConductor(C)
