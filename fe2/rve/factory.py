"""The RVE solver of a config: the batched backend, or the per-point reference (``batch: off``),
with a direct or an iterative linear solver (``linear_solver``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fe2.rve.micro_solver import MicroSolver, NewtonOptions
from fe2.rve.model import RveModel

#: ``linear_solver: auto`` takes CG + GAMG from this many fluctuation dofs on (by dimension).
#: Measured on the P2 sphere cell (benchmarks/rve_large.py): in 3D the direct solver's fill-in
#: makes MUMPS slower than CG + GAMG from ~30k dofs on; in 2D MUMPS stays faster up to ~10^6
#: dofs (its fill grows like N log N there).
ITERATIVE_MIN_DOFS = {2: 1_000_000, 3: 30_000}

#: PETSc options that ask for a direct solve: with them ``auto`` stays direct.
_DIRECT_OPTIONS = {"ksp_type": ("preonly",), "pc_type": ("lu", "cholesky")}


def resolve_linear_solver(model: RveModel, requested: str, petsc_options: Mapping[str, Any] | None = None) -> str:
    """'direct' or 'iterative' for ``requested`` ('direct', 'iterative' or 'auto': iterative
    from :data:`ITERATIVE_MIN_DOFS` dofs on, unless ``petsc_options`` ask for a direct solve)."""
    if requested in ("direct", "iterative"):
        return requested
    if requested != "auto":
        raise ValueError(f"linear_solver must be 'direct', 'iterative' or 'auto', got {requested!r}")
    options = petsc_options or {}
    if any(str(options.get(key)).lower() in values for key, values in _DIRECT_OPTIONS.items()):
        return "direct"
    return "iterative" if model.global_dofs >= ITERATIVE_MIN_DOFS[model.physics.dim] else "direct"


def make_rve_solver(
    model: RveModel,
    bc: str,
    *,
    batch: int | str = "auto",
    newton: NewtonOptions = NewtonOptions(),
    petsc_options: Mapping[str, Any] | None = None,
    elastic_shortcut: bool = True,
    single: bool = False,
    linear_solver: str = "auto",
) -> MicroSolver:
    """A micro solver for the RVE: 'off' -> per point (PETSc), else batched (``batch``: 'auto'
    or the most points per batch). ``single``: the solver will only ever see one point at a
    time (an effective tensor, a load path): 'auto' then means per point, as there is nothing
    to batch and the batched solver's set-up would not pay. A distributed RVE (a mesh on
    several ranks) is always solved per point. ``linear_solver``: see
    :func:`resolve_linear_solver`."""
    kind = resolve_linear_solver(model, linear_solver, petsc_options)
    if batch == "off" or (single and batch == "auto") or model.distributed:
        from fe2.rve.newton import PointwiseRveSolver

        return PointwiseRveSolver(model, bc, newton=newton, petsc_options=petsc_options,
                                  elastic_shortcut=elastic_shortcut, linear_solver=kind)
    from fe2.rve.batched import BatchedRveSolver

    return BatchedRveSolver(model, bc, newton=newton, batch=batch, petsc_options=petsc_options,
                            elastic_shortcut=elastic_shortcut, linear_solver=kind)
