"""The RVE solver of a config: the batched backend, or the per-point reference (``batch: off``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fe2.rve.micro_solver import MicroSolver, NewtonOptions
from fe2.rve.model import RveModel


def make_rve_solver(
    model: RveModel,
    bc: str,
    *,
    batch: int | str = "auto",
    newton: NewtonOptions = NewtonOptions(),
    petsc_options: Mapping[str, Any] | None = None,
    elastic_shortcut: bool = True,
    single: bool = False,
) -> MicroSolver:
    """A micro solver for the RVE: 'off' -> per point (PETSc), else batched (``batch``: 'auto'
    or the most points per batch). ``single``: the solver will only ever see one point at a
    time (an effective tensor, a load path): 'auto' then means per point, as there is nothing
    to batch and the batched solver's set-up would not pay."""
    if batch == "off" or (single and batch == "auto"):
        from fe2.rve.newton import PointwiseRveSolver

        return PointwiseRveSolver(model, bc, newton=newton, petsc_options=petsc_options,
                                  elastic_shortcut=elastic_shortcut)
    from fe2.rve.batched import BatchedRveSolver

    return BatchedRveSolver(model, bc, newton=newton, batch=batch, petsc_options=petsc_options,
                            elastic_shortcut=elastic_shortcut)
