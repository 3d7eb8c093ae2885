"""The field problem as one object: what macro, RVE, io and config code ask about a physics.

All physics are written as "strain" (n,) -> "stress" (n,) with a tangent (n x n). The macro
strain E (n,) enters an RVE as the affine part of the field; the RVE unknown is the
fluctuation w, so the micro strain is E + fluctuation_strain(w).

A physics answers: the primary field (name, value shape), the strain measure (UFL) and its
components (labels, reference value, which components a fluctuation changes), how a config
value becomes a macro strain, the output tensors of strains and stresses, CSV/JSON names,
which closed-form law an effective tensor becomes (hierarchical coupling), and whether the
small-strain elastic shortcut applies. Adding a physics = a module with a subclass +
registration in :mod:`fe2.physics`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

import numpy as np
import ufl

from fe2.errors import InputError


class Physics(ABC):
    """Field problem of dimension ``dim``.

    Class attributes (answered per physics):
        name: the config name.
        primary: name of the primary field ('displacement', 'temperature').
        default_law: the phase law a config phase without 'law' gets.
        tensor_key: key of the effective tensor in JSON and CSV ('C', 'A', 'K').
        csv_prefix: column prefixes of (strain, stress) in load-path CSV files.
        notation: how vectors are written (for JSON records).
        gradient_name, flux_name: what the macro strain and stress are, for messages/plots.
        strain_field, stress_field: their names in field files.
        elastic_shortcut: a never-yielded point may be answered by the virgin RVE's
            sensitivity fields (small-strain mechanics: the response is linear around E = 0).
    """

    name: str
    #: The physics whose phase laws this one uses (its own name unless it is a variant, e.g.
    #: generalised plane strain uses the laws of elasticity); None: ``name``.
    law_physics: str | None = None
    primary: str = "displacement"
    default_law: str
    tensor_key: str
    csv_prefix: tuple[str, str]
    notation: str
    gradient_name: str
    flux_name: str
    elastic_shortcut: bool = False
    #: What an effective tensor is, for its engineering report: 'stiffness' (Mandel C),
    #: 'tangent_at_identity' (dP/dF at F = I) or 'conductivity' (K).
    tensor_kind: str = "stiffness"
    #: Names of the strain and stress fields in field files.
    strain_field: str = "strain"
    stress_field: str = "stress"
    #: history.csv: column prefix and plot label of what the supports exert on the body
    #: (:meth:`history_columns`), and the plot label of the mean field value on a boundary.
    reaction_column: str = "reaction"
    reaction_label: str = "reaction force"
    mean_label: str = "mean displacement of the boundary"
    #: Dimensions of the meshes it is solved on.
    mesh_dims: tuple[int, ...] = (2, 3)
    #: It can be a macro problem (`fe2 run`), not only an RVE's.
    macro: bool = True
    #: The symmetry class (a key of :func:`fe2.homogenization.engineering.symmetry_classes`)
    #: of the effective tensor of a statistically isotropic microstructure.
    statistical_symmetry: str = "isotropic"

    def __init__(self, dim: int):
        if dim not in (2, 3):
            raise ValueError(f"dimension must be 2 or 3, got {dim}")
        self.dim = dim

    @property
    def laws_of(self) -> str:
        """The physics name the phase laws must belong to."""
        return self.law_physics or self.name

    @property
    def tensor_dim(self) -> int:
        """Dimension of the strain and stress tensors, the ``dim`` the phase laws are called
        with: the mesh dimension, except for a section of a 3D body (generalised plane strain
        on a 2D mesh: 3)."""
        return self.dim

    # ------------------------------------------------------------------ field and strain

    @property
    @abstractmethod
    def value_shape(self) -> tuple[int, ...]:
        """Shape of the field: () for a scalar, (dim,) for a vector."""

    @property
    def field_size(self) -> int:
        """Number of components of the field (d for a displacement, 1 for a temperature): the
        entries of a prescribed value, a surface load or a volume load."""
        return int(np.prod(self.value_shape, dtype=int))

    @property
    def supports_rotation(self) -> bool:
        """Whether a boundary may be prescribed a rigid rotation (a displacement field)."""
        return self.value_shape == (self.dim,)

    @property
    @abstractmethod
    def labels(self) -> tuple[str, ...]:
        """Names of the n strain/stress components, e.g. ('11', '22', '12')."""

    @property
    def n_comp(self) -> int:
        """Number of macro strain components n."""
        return len(self.labels)

    @property
    def reference_strain(self) -> np.ndarray:
        """The strain of the undeformed state (zero; the identity for finite strain), (n,)."""
        return np.zeros(self.n_comp)

    @abstractmethod
    def strain(self, w: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
        """Strain vector of a (macro) field, shape (n,)."""

    def fluctuation_strain(self, w: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
        """Strain of an RVE fluctuation, shape (n,) (the strain, unless a component is a
        macro quantity the fluctuation does not change)."""
        return self.strain(w)

    @property
    def fluctuation_components(self) -> slice:
        """The strain components a fluctuation changes (all by default)."""
        return slice(None)

    @abstractmethod
    def macro_field(self, E: ufl.core.expr.Expr, x: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
        """Affine field with uniform strain E (n,) at position x (relative to the centre)."""

    # ------------------------------------------------------------------ input

    @abstractmethod
    def parse_strain(self, value, *, key: str) -> np.ndarray:
        """A config value (tensor d x d, or a vector) -> strain vector (n,); InputError naming
        ``key`` if it does not fit."""

    @abstractmethod
    def parse_stress(self, value, *, key: str) -> np.ndarray:
        """A config stress target (tensor d x d, or a flux vector) -> stress vector (n,);
        InputError naming ``key`` if it does not fit."""

    @property
    def stress_labels(self) -> tuple[str, ...]:
        """The components whose stress may be prescribed (mixed control): those with a
        conjugate flux (all but a macro temperature)."""
        return self.labels

    def check_strain_vector(self, vector: np.ndarray, *, key: str) -> None:
        """InputError naming ``key`` if a strain vector (n,) is inadmissible (default: none is)."""

    def component_map(self) -> dict[str, tuple[int, float]]:
        """Component label -> (index in the strain/stress vector, factor from the tensor
        component to the vector entry); by default the labels in order, factor 1."""
        return {label: (i, 1.0) for i, label in enumerate(self.labels)}

    # ------------------------------------------------------------------ output

    @property
    @abstractmethod
    def output_shape(self) -> tuple[int, ...]:
        """Shape of the strain/stress fields written to files ((3, 3) tensors, (d,) vectors)."""

    @abstractmethod
    def output_values(self, vectors: np.ndarray) -> np.ndarray:
        """Strain or stress vectors (m, n) -> field values (m, *output_shape)."""

    def tensor_components(self, vector: np.ndarray) -> np.ndarray:
        """A strain/stress vector (n,) -> its plain components, in the order of ``labels``
        (Mandel shear scaling removed)."""
        return np.asarray(vector)

    def stress_fields(self, stress: np.ndarray, strain: np.ndarray, out_of_plane: np.ndarray | None) -> dict:
        """Output fields of the full (3D) stress from cell means of the stress and strain
        vectors (m, n) and, in 2D, the out-of-plane stress (m,) or None: name -> values
        (``stress`` (m, 3, 3), ``von_mises``, ``principal_stress``, ...); {} where the full
        stress is not known or has no meaning (e.g. a flux)."""
        return {}

    def full_stress_columns(self, stress: np.ndarray, strain: np.ndarray,
                            out_of_plane: np.ndarray | None) -> dict[str, np.ndarray]:
        """Load-path table columns of the full stress of m homogenised states: from the macro
        stress and strain vectors (m, n) and, for plane strain, the out-of-plane stress (m,)
        (<sigma33>, <P33> at finite strain) or None: '<stress prefix>33' (``S33``, ``P33``;
        plane strain only) and ``von_mises`` (of the full 3D stress; of the Cauchy stress at
        finite strain), each (m,); {} where the full stress is not known (plane strain without
        the out-of-plane stress) or has no meaning (a flux)."""
        if out_of_plane is not None:
            out_of_plane = np.asarray(out_of_plane, dtype=float)
        fields = self.stress_fields(np.asarray(stress, dtype=float), np.asarray(strain, dtype=float), out_of_plane)
        if "von_mises" not in fields:
            return {}
        plane = out_of_plane is not None and "33" not in self.labels
        columns = {f"{self.csv_prefix[1]}33": out_of_plane} if plane else {}
        return {**columns, "von_mises": fields["von_mises"]}

    def tangent_notation(self, C: np.ndarray) -> np.ndarray:
        """A phase tangent at the reference state, as phase laws give it (``tangent(dim)``),
        -> the notation of this physics' effective tensors."""
        return C

    def history_columns(self, boundary: str) -> tuple[list[str], list[str]]:
        """history.csv columns of a Dirichlet boundary, one per field component: what the
        supports exert (``reaction_<b>_x`` ...) and the mean field value there
        (``displacement_<b>_x`` ...); no axis suffix for a scalar field."""
        axes = [f"_{axis}" for axis in "xyz"[: self.field_size]] if self.field_size > 1 else [""]
        return ([f"{self.reaction_column}_{boundary}{a}" for a in axes],
                [f"{self.primary}_{boundary}{a}" for a in axes])

    # ------------------------------------------------------------------ coupling

    def effective_law(self, C: np.ndarray):
        """The closed-form law of an effective tensor C (n, n), for hierarchical coupling;
        None where there is none (then the RVE is solved at every point)."""
        return None


def check_shape(array: np.ndarray, shape: tuple[int, ...], *, key: str, what: str) -> np.ndarray:
    if array.shape != shape:
        raise InputError(f"{key}: expected {what}, shape {shape}, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise InputError(f"{key}: must be finite")
    return array


def any_uses_temperature(phases: Iterable) -> bool:
    return any(getattr(p, "uses_temperature", False) for p in phases)
