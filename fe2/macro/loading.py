"""Loading in pseudo-time: prescribed displacements, tractions and body forces at time t.

Every prescribed quantity is a value of position and time times an amplitude,

    u_D(x, t) = a(t) v(x, t),    t_N(x, t) = a(t) v(x, t),    b(x, t) = a(t) v(x, t),

where v is a number or an :class:`~fe2.expressions.Expression` per component and a a named
piecewise-linear :class:`Amplitude` (held constant beyond its table). A rigid rotation of a
boundary, u_D = (R(theta(t)) - I)(x - c), is exact at every t (finite strain). The default
amplitude is the ramp a(t) = t / T, also beyond T (with T = 1, t is the load factor of the
single-ramp studies); a value that depends on t itself gets the constant amplitude 1.

:class:`Loading` turns these into DOLFINx objects on the macro space V: the Dirichlet values
live in one scalar :class:`dolfinx.fem.Function` per displacement component (nodal values at
the dof coordinates, i.e. Lagrange interpolation), the loads in vector Lagrange functions of
the degree of V; :meth:`Loading.apply` updates them to a time, so that the stepping deals in t
only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import dolfinx
import numpy as np
import ufl
from dolfinx import fem
from dolfinx.fem.petsc import assemble_vector, create_vector
from mpi4py import MPI
from petsc4py import PETSc

from fe2.errors import InputError, collectively
from fe2.expressions import Expression, ExpressionError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Amplitude:
    """A named piecewise-linear factor a(t) through the points (times[i], factors[i]).

    Held constant before the first and after the last time (``extrapolate``: the last segment
    continues instead, as the ramp does); times strictly increasing.
    """

    name: str
    times: tuple[float, ...]
    factors: tuple[float, ...]
    extrapolate: bool = False

    def __post_init__(self):
        if len(self.times) != len(self.factors) or not self.times:
            raise ValueError(f"amplitude {self.name!r}: needs one factor per time, at least one point")
        if any(b <= a for a, b in zip(self.times, self.times[1:])):
            raise ValueError(f"amplitude {self.name!r}: times must increase")

    def __call__(self, t: float) -> float:
        if self.extrapolate and len(self.times) > 1 and t > self.times[-1]:
            (t0, t1), (f0, f1) = self.times[-2:], self.factors[-2:]
            return float(f1 + (f1 - f0) / (t1 - t0) * (t - t1))
        return float(np.interp(t, self.times, self.factors))

    def table(self) -> list[list[float]]:
        return [[t, f] for t, f in zip(self.times, self.factors)]

    def agrees_until(self, other: Amplitude, time: float) -> bool:
        """Whether a(s) = other(s) for every s in [0, time] (compared at all break points)."""
        points = sorted({0.0, time, *(s for s in (*self.times, *other.times) if s <= time)})
        return all(np.isclose(self(s), other(s), rtol=1e-12, atol=1e-14) for s in points)


def ramp(end_time: float = 1.0) -> Amplitude:
    """The default amplitude a(t) = t / T (the load factor for T = 1), also beyond T."""
    return Amplitude("ramp", (0.0, float(end_time)), (0.0, 1.0), extrapolate=True)


def amplitude_from_table(name: str, table: Sequence[Sequence[float]]) -> Amplitude:
    """An amplitude from its [[time, factor], ...] table (the ramp extrapolates)."""
    return Amplitude(name, tuple(float(t) for t, _ in table), tuple(float(f) for _, f in table),
                     extrapolate=name == "ramp")


CONSTANT = Amplitude("constant", (0.0,), (1.0,))
Scalar = float | Expression


def _scalar(value: Scalar, x: np.ndarray, t: float) -> np.ndarray:
    if isinstance(value, Expression):
        return value(x, t)
    return np.full(x.shape[1], float(value))


@dataclass(frozen=True)
class Components:
    """k components, each a number or an expression, times one amplitude: (3, N) -> (k, N)."""

    values: tuple[Scalar, ...]
    amplitude: Amplitude = field(default_factory=ramp)

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        factor = self.amplitude(t)
        return np.array([factor * _scalar(v, x, t) for v in self.values]).reshape(len(self.values), -1)

    @property
    def size(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Rotation:
    """Rigid rotation by theta(t) = a(t) angle(t) about ``centre`` (and ``axis`` in 3D).

    u(x, t) = (R(theta) - I)(x - c), R by Rodrigues' formula about the unit axis (the z axis
    in 2D); angle in radians, a number or an expression of t.
    """

    angle: Scalar
    dim: int
    centre: tuple[float, ...] = (0.0, 0.0, 0.0)
    axis: tuple[float, ...] = (0.0, 0.0, 1.0)
    amplitude: Amplitude = field(default_factory=ramp)

    @property
    def size(self) -> int:
        return self.dim

    def theta(self, t: float) -> float:
        return self.amplitude(t) * float(_scalar(self.angle, np.zeros((3, 1)), t)[0])

    def matrix(self, t: float) -> np.ndarray:
        """R(theta(t)), 3 x 3."""
        n = np.asarray(self.axis, dtype=float)
        n = n / np.linalg.norm(n)
        K = np.array([[0.0, -n[2], n[1]], [n[2], 0.0, -n[0]], [-n[1], n[0], 0.0]])
        theta = self.theta(t)
        return np.eye(3) + np.sin(theta) * K + (1.0 - np.cos(theta)) * (K @ K)

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        c = np.zeros(3)
        c[: len(self.centre)] = self.centre
        R = self.matrix(t)
        return ((R - np.eye(3)) @ (x - c[:, None]))[: self.dim]


Value = Components | Rotation


def as_value(value, size: int) -> Value:
    """A number, a sequence of ``size`` numbers/expressions or a Value -> a Value (ramp)."""
    if isinstance(value, Components | Rotation):
        return value
    if isinstance(value, float | int | Expression):
        return Components((value,) * size)
    values = tuple(value)
    if len(values) != size:
        raise ValueError(f"expected {size} components, got {len(values)}")
    return Components(values)


@dataclass(frozen=True)
class Dirichlet:
    """Prescribed displacement component(s) on a set of boundary facets.

    Attributes:
        boundary: name (reactions are reported per name).
        facets: local indices of the facets.
        component: displacement component, or None for all components.
        value: a number (at amplitude 1, with the ramp), one entry per prescribed component,
            or a :class:`Components` / :class:`Rotation` (length units).
        key: the config key, for error messages.
    """

    boundary: str
    facets: np.ndarray
    component: int | None
    value: object
    key: str = ""


@dataclass(frozen=True)
class Traction:
    """Surface traction (force per area) on a set of boundary facets: d numbers (at amplitude
    1, with the ramp) or a :class:`Components` value."""

    boundary: str
    facets: np.ndarray
    vector: object
    key: str = ""


@dataclass
class _Entry:
    """A Dirichlet entry on this rank: per prescribed component, the collapsed-space dofs."""

    value: Value
    components: list[int]
    dofs: list[np.ndarray]
    key: str


class Loading:
    """The prescribed displacements and loads of a macro problem on V, at a pseudo-time.

    Args:
        V: the vector Lagrange space of the displacement.
        dirichlet: prescribed displacements; later entries win on shared dofs.
        tractions: surface loads.
        body_force: force per volume (d numbers with the ramp, or a Components value), or None.
        body_force_key: its config key (error messages).

    Attributes:
        bcs: the DirichletBCs (values in fem.Functions, set by :meth:`apply`).
        reaction_dofs: boundary name -> per component the owned dofs of V prescribed there.
        boundary_dofs: boundary name -> per component all owned dofs of V on the boundary.
        external_form: the form F_ext(v) = sum int t . v ds + int b . v dx, or None.
    """

    def __init__(self, V: fem.FunctionSpace, dirichlet: Sequence[Dirichlet], tractions: Sequence[Traction] = (),
                 body_force=None, *, body_force_key: str = "loads.body_force"):
        mesh = V.mesh
        self.mesh, self.V = mesh, V
        tdim, bs = mesh.topology.dim, V.dofmap.index_map_bs
        mesh.topology.create_connectivity(tdim - 1, tdim)
        owned = V.dofmap.index_map.size_local * bs
        self.time: float | None = None
        subspaces = [V.sub(c).collapse()[0] for c in range(bs)]
        self._values = [fem.Function(Vc, name=f"u_D{c}") for c, Vc in enumerate(subspaces)]
        self._points = [Vc.tabulate_dof_coordinates().T for Vc in subspaces]  # (3, n) each
        self._entries: list[_Entry] = []
        self.bcs: list[fem.DirichletBC] = []
        self.reaction_dofs: dict[str, list[np.ndarray]] = {}
        self.boundary_dofs: dict[str, list[np.ndarray]] = {}
        empty = np.empty(0, dtype=np.int32)
        for d in dirichlet:
            components = list(range(bs)) if d.component is None else [d.component]
            value = as_value(d.value, len(components))
            if value.size != len(components):
                raise ValueError(f"{d.key}: {value.size} values for {len(components)} components")
            entry = _Entry(value, components, [], d.key)
            reaction = self.reaction_dofs.setdefault(d.boundary, [empty] * bs)
            if d.boundary not in self.boundary_dofs:
                self.boundary_dofs[d.boundary] = [
                    (lambda dofs: dofs[dofs < owned])(fem.locate_dofs_topological(V.sub(c), tdim - 1, d.facets))
                    for c in range(bs)
                ]
            for c in components:
                dofs, local = fem.locate_dofs_topological((V.sub(c), subspaces[c]), tdim - 1, d.facets)
                self.bcs.append(fem.dirichletbc(self._values[c], [dofs, local], V.sub(c)))
                entry.dofs.append(local)
                reaction[c] = np.union1d(reaction[c], dofs[dofs < owned]).astype(np.int32)
            self._entries.append(entry)
        self._loads: list[tuple[fem.Function, Value, str]] = []
        self.external_form = self._external_form(tractions, body_force, body_force_key)
        self._external: PETSc.Vec | None = None

    def _external_form(self, tractions, body_force, body_key) -> fem.Form | None:
        mesh, V = self.mesh, self.V
        dim = mesh.geometry.dim
        W = fem.functionspace(mesh, ("Lagrange", V.ufl_element().degree, (dim,)))
        v = ufl.TestFunction(V)
        terms = []
        if tractions:
            tdim = mesh.topology.dim
            facets = np.concatenate([t.facets for t in tractions]).astype(np.int32)
            markers = np.concatenate([np.full(len(t.facets), i + 1, dtype=np.int32) for i, t in enumerate(tractions)])
            order = np.argsort(facets, kind="stable")
            tags = dolfinx.mesh.meshtags(mesh, tdim - 1, facets[order], markers[order])
            ds = ufl.Measure("ds", domain=mesh, subdomain_data=tags)
            for i, t in enumerate(tractions):
                f = fem.Function(W, name=f"traction{i}")
                self._loads.append((f, as_value(t.vector, dim), t.key))
                terms.append(ufl.dot(f, v) * ds(i + 1))
        if body_force is not None:
            f = fem.Function(W, name="body_force")
            self._loads.append((f, as_value(body_force, dim), body_key))
            terms.append(ufl.dot(f, v) * ufl.dx)
        return fem.form(sum(terms[1:], terms[0])) if terms else None

    # ------------------------------------------------------------------ time

    def apply(self, t: float) -> None:
        """Set every prescribed value and load to time ``t`` (local; no communication).

        Raises:
            InputError: a value is not finite (naming its key) on this rank.
        """
        for entry in self._entries:
            for c, dofs in zip(entry.components, entry.dofs):
                if len(dofs):
                    values = self._evaluate(entry.value, self._points[c][:, dofs], t, entry.key)
                    self._values[c].x.array[dofs] = values[entry.components.index(c)]
        for f, value, key in self._loads:
            f.interpolate(lambda x, value=value, key=key: self._evaluate(value, x, t, key))
        self.time = t

    @staticmethod
    def _evaluate(value: Value, x: np.ndarray, t: float, key: str) -> np.ndarray:
        try:
            values = value(x, t)
        except ExpressionError as exc:
            raise InputError(f"{key}: {exc}") from None
        if not np.isfinite(values).all():
            raise InputError(f"{key}: the value is not finite at t = {t:g}")
        return values

    def check(self, times: Sequence[float]) -> None:
        """Evaluate everything at every time, raising an InputError naming the key on every
        rank if a value is not finite anywhere (collective). Leaves the time unset."""
        def evaluate_all():
            for t in [0.0, *times]:
                self.apply(t)

        collectively(self.mesh.comm, evaluate_all, errors=(InputError,))
        self.time = None

    def external_force(self) -> PETSc.Vec | None:
        """F_ext at the applied time (assembled into one vector, owned by this object)."""
        if self.external_form is None:
            return None
        if self._external is None:
            self._external = create_vector(self.V)
        with self._external.localForm() as local:
            local.set(0.0)
        assemble_vector(self._external, self.external_form)
        self._external.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        return self._external

    def mean_displacements(self, u: fem.Function) -> dict[str, np.ndarray]:
        """Boundary name -> mean of each displacement component over the boundary's dofs
        (dim,), summed over ranks (collective). For a prescribed component the mean
        prescribed displacement."""
        comm, values = self.mesh.comm, u.x.array
        out = {}
        for name, per_component in self.boundary_dofs.items():
            sums = np.array([values[d].sum() for d in per_component] + [len(d) for d in per_component], dtype=float)
            sums = comm.allreduce(sums, op=MPI.SUM)
            k = len(per_component)
            out[name] = sums[:k] / np.maximum(sums[k:], 1)
        return out

    def destroy(self) -> None:
        if self._external is not None:
            self._external.destroy()
