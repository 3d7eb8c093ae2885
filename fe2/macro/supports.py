"""From a `fe2 run` config to the loading: boundary selection, values, amplitudes.

A config entry selects boundary facets by a named group of the mesh or a plane; its value is
numbers and/or expressions (parsed here into :class:`~fe2.expressions.Expression`), or a
rotation; its amplitude is named (default: ``ramp``, or ``constant`` for a value that
depends on t). Errors name the config key (:class:`~fe2.errors.InputError`).
"""

from __future__ import annotations

import dolfinx
import numpy as np
from mpi4py import MPI

from fe2.config.run import RunConfig
from fe2.errors import InputError
from fe2.expressions import parse_expression
from fe2.macro.loading import Amplitude, Components, Dirichlet, Rotation, Traction, amplitude_from_table
from fe2.meshing.macro import MacroMesh

COMPONENTS = {"x": 0, "y": 1, "z": 2, "all": None}


def facets_of(macro: MacroMesh, selector, key: str) -> np.ndarray:
    """Local boundary facets of a config selector (named group or plane); none anywhere -> error."""
    mesh = macro.mesh
    if selector.boundary is not None:
        if selector.boundary not in macro.boundaries:
            raise InputError(
                f"{key}.boundary: the mesh has no boundary {selector.boundary!r} "
                f"(it has {sorted(macro.boundaries)})"
            )
        facets = macro.facets(selector.boundary)
    else:
        axis = "xyz".index(selector.plane.axis)
        if axis >= macro.dim:
            raise InputError(f"{key}.plane.axis: {selector.plane.axis!r} in a {macro.dim}D mesh")
        x = mesh.geometry.x
        extent = mesh.comm.allreduce(float(np.ptp(x, axis=0).max()) if len(x) else 0.0, op=MPI.MAX)
        value = selector.plane.value
        facets = dolfinx.mesh.locate_entities_boundary(
            mesh, macro.dim - 1, lambda p: np.abs(p[axis] - value) <= 1e-8 * extent
        )
    if mesh.comm.allreduce(len(facets), op=MPI.SUM) == 0:
        raise InputError(f"{key}: selects no boundary facet of the mesh")
    return facets.astype(np.int32)


def _entries(values, size: int, key: str) -> tuple:
    """Numbers/expression strings -> numbers/Expressions; a list must have ``size`` entries."""
    if not isinstance(values, list):
        values = [values] * size
    if len(values) != size:
        raise InputError(f"{key}: expected {size} components, got {len(values)}")
    return tuple(parse_expression(v) if isinstance(v, str) else float(v) for v in values)


def amplitude(config: RunConfig, name: str | None, depends_on_time: bool) -> Amplitude:
    """The named amplitude; by default the ramp, or constant 1 for a value that depends on t."""
    if name is None:
        name = "constant" if depends_on_time else "ramp"
    return amplitude_from_table(name, config.amplitude_tables(used=False)[name])


def supports_and_loads(config: RunConfig, macro: MacroMesh) -> tuple[list[Dirichlet], list[Traction], Components | None]:
    """The Dirichlet entries, tractions and body force of the config on this mesh."""
    dim = macro.dim
    dirichlet = []
    for i, bc in enumerate(config.boundary_conditions):
        key = f"boundary_conditions[{i}]"
        component = COMPONENTS[bc.component]
        if component is not None and component >= dim:
            raise InputError(f"{key}.component: {bc.component!r} in a {dim}D mesh")
        a = amplitude(config, bc.amplitude, bc.depends_on_time())
        if bc.rotation is not None:
            value = _rotation(bc.rotation, dim, a, f"{key}.rotation")
            key = f"{key}.rotation.angle"
        else:
            value = Components(_entries(bc.value, dim if component is None else 1, f"{key}.value"), a)
            key = f"{key}.value"
        dirichlet.append(Dirichlet(bc.label, facets_of(macro, bc, f"boundary_conditions[{i}]"), component, value, key))
    tractions = []
    for i, t in enumerate(config.loads.tractions):
        key = f"loads.tractions[{i}]"
        if not isinstance(t.traction, list) or len(t.traction) != dim:
            raise InputError(f"{key}.traction: expected {dim} components, got {len(t.traction)}")
        value = Components(_entries(t.traction, dim, f"{key}.traction"), amplitude(config, t.amplitude, t.depends_on_time()))
        tractions.append(Traction(t.label, facets_of(macro, t, key), value, f"{key}.traction"))
    body = config.loads.body_force
    if body is not None:
        key = "loads.body_force"
        entries = _entries(body, dim, key)
        a = amplitude(config, config.loads.body_force_amplitude, any(getattr(e, "uses_time", False) for e in entries))
        body = Components(entries, a)
    return dirichlet, tractions, body


def _rotation(rotation, dim: int, a: Amplitude, key: str) -> Rotation:
    if len(rotation.centre) not in (dim, 3) or (len(rotation.centre) == 3 and dim == 2 and rotation.centre[2] != 0):
        raise InputError(f"{key}.centre: expected {dim} coordinates, got {rotation.centre}")
    if dim == 2 and rotation.axis is not None:
        raise InputError(f"{key}.axis: a 2D rotation is about the z axis; give no axis")
    if dim == 3 and rotation.axis is None:
        raise InputError(f"{key}.axis: a 3D rotation needs its axis (3 components)")
    angle = parse_expression(rotation.angle) if isinstance(rotation.angle, str) else float(rotation.angle)
    centre = tuple(float(c) for c in rotation.centre) + (0.0,) * (3 - len(rotation.centre))
    axis = tuple(rotation.axis) if rotation.axis is not None else (0.0, 0.0, 1.0)
    return Rotation(angle=angle, dim=dim, centre=centre, axis=axis, amplitude=a)
