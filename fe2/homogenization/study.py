"""`fe2 homogenize`: apparent tensors, or load paths, of one RVE under one or all BCs.

Under MPI the ranks are split into groups of ``parallel.ranks_per_rve`` ranks
(:mod:`fe2.rve.groups`): each group holds the RVE mesh distributed over its ranks and solves
its share of the boundary conditions, one after the other, with all of them. ``auto``: one
group of all ranks (every BC solved by all ranks together) when the RVE is large -- at least
as many dofs as make ``linear_solver: auto`` iterative --, else one rank per group (each RVE on
``MPI.COMM_SELF``, the BCs shared out over the ranks). Every rank ends with all results, so
the answer does not depend on the number of ranks (to the linear solver's tolerance).
RVE fields of a load path are written only for RVEs on one rank.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from dolfinx import fem
from mpi4py import MPI

from fe2.config import HomogenizeConfig, MeshSource
from fe2.errors import ComputationError, InputError, collectively
from fe2.homogenization.bounds import reuss_bound, voigt_bound
from fe2.homogenization.load_path import LoadPathResult, macro_path, run_load_path
from fe2.io.rve_fields import RveFields
from fe2.rve.effective import EffectiveTensor, effective_tensor
from fe2.rve.mesh_source import check_phase_tags, load_rve_mesh
from fe2.rve.model import RveModel
from fe2.rve.factory import ITERATIVE_MIN_DOFS, make_rve_solver
from fe2.rve.groups import split_ranks
from fe2.rve.micro_solver import NewtonOptions
from fe2.rve.physics import make_physics
from fe2.rve.solver import SolveError
from fe2.tensors import mandel_to_tensor

log = logging.getLogger(__name__)

BC_ORDER = ("affine", "periodic", "traction")


@dataclass
class HomogenizationResult:
    """Everything `fe2 homogenize` reports.

    Attributes:
        config: the validated study.
        dim: spatial dimension of the RVE.
        volume_fractions: phase name -> volume fraction.
        effective: bc kind -> apparent tensor, in the order requested (no load path).
        load_paths: bc kind -> load path result (with ``load_path`` in the config).
        bounds: {'voigt': C, 'reuss': C} (n, n) each, in the notation of the tensors.
        mesh: mesh facts (file, cells, nodes).
        mesh_content: the .msh file of a generated mesh (None if read from a file).
    """

    config: HomogenizeConfig
    dim: int
    volume_fractions: dict[str, float]
    effective: dict[str, EffectiveTensor]
    load_paths: dict[str, LoadPathResult]
    bounds: dict[str, np.ndarray]
    mesh: dict
    mesh_content: bytes | None = None
    fields: RveFields | None = None  # writer of RVE fields (on rank 0)


def _groups_and_mesh(config: HomogenizeConfig, comm: MPI.Comm):
    """The rank groups of ``parallel.ranks_per_rve`` and the RVE mesh on this rank's group."""
    k = config.parallel.ranks_per_rve
    if k != "auto" or comm.size == 1:
        groups = collectively(comm, lambda: split_ranks(comm, 1 if k == "auto" else k), errors=(InputError,))
        return (groups, *load_rve_mesh(config.mesh, comm, group=groups.group))
    rve_mesh, content = load_rve_mesh(config.mesh, comm, group=comm)  # shared out, to count dofs
    shape = (rve_mesh.dim,) if config.physics != "conduction" else ()
    V = fem.functionspace(rve_mesh.mesh, ("Lagrange", config.rve.degree, shape))
    dofs = V.dofmap.index_map.size_global * V.dofmap.index_map_bs
    if dofs >= ITERATIVE_MIN_DOFS[rve_mesh.dim]:
        log.info("%d dofs: the RVE is distributed over all %d ranks", dofs, comm.size)
        return split_ranks(comm, comm.size), rve_mesh, content
    return (split_ranks(comm, 1), *load_rve_mesh(config.mesh, comm, content=content))


def run_homogenization(
    config: HomogenizeConfig, *, bcs: list[str], comm: MPI.Comm
) -> HomogenizationResult:
    """Apparent tensors for the boundary conditions ``bcs`` plus Voigt/Reuss bounds.

    Collective on ``comm``; input errors are raised on all ranks as :class:`InputError`.
    """
    groups, rve_mesh, mesh_content = _groups_and_mesh(config, comm)
    collectively(comm, lambda: check_phase_tags(config.phases, rve_mesh), errors=(InputError,))
    dim = rve_mesh.dim
    physics = make_physics(config.physics, dim)
    materials = {phase.tag: phase.material() for phase in config.phases.values()}
    path = None
    if config.load_path is not None:
        path = collectively(comm, lambda: macro_path(physics, config.load_path), errors=(InputError,))
    solver = config.solver
    newton = NewtonOptions(**solver.newton.model_dump())

    def solve_my_share():
        model = RveModel(
            rve_mesh.mesh, rve_mesh.cell_tags, physics, materials, degree=config.rve.degree
        )
        mine: dict = {}
        for bc in bcs[groups.index :: groups.count]:
            if groups.size == 1:
                log.info("rank %d: %s boundary conditions", comm.rank, bc)
            elif groups.leader:
                log.info("ranks %d-%d: %s boundary conditions", *groups.ranks_of(groups.index)[::groups.size - 1], bc)
            if path is None:
                mine[bc] = effective_tensor(model, bc, solver_options=solver.petsc_options,
                                            batch=config.rve.batch, linear_solver=config.rve.linear_solver)
                continue
            rve = make_rve_solver(model, bc, batch=config.rve.batch, newton=newton,
                                  petsc_options=solver.petsc_options, single=True,
                                  linear_solver=config.rve.linear_solver)
            try:
                fields_at = set(config.load_path.fields_at or [len(path)]) if groups.size == 1 else set()
                mine[bc] = run_load_path(
                    rve, path, field_steps=fields_at,
                    max_cutbacks=config.load_path.max_cutbacks,
                )
            finally:
                rve.destroy()
        return (mine if groups.leader else {}), model

    if path is not None and groups.size > 1 and comm.rank == 0:
        log.warning("RVE fields of the load path are not written: the RVE is distributed over "
                    "%d ranks (parallel.ranks_per_rve)", groups.size)
    mine, model = collectively(
        comm, solve_my_share, errors=(InputError, SolveError, ComputationError)
    )
    results: dict = {}
    for part in comm.allgather(mine):
        results.update(part)
    results = {bc: results[bc] for bc in bcs}

    names = list(config.phases)
    tag_fractions = model.volume_fractions()
    fractions = {name: tag_fractions[config.phases[name].tag] for name in names}
    tangents = [materials[config.phases[name].tag].tangent(dim) for name in names]
    weights = [fractions[name] for name in names]
    bounds = {"voigt": voigt_bound(weights, tangents), "reuss": reuss_bound(weights, tangents)}
    if physics.name == "finite_strain":  # the tangent dP/dF at F = I, row-major F components
        bounds = {k: mandel_to_tensor(C).reshape(dim * dim, dim * dim) for k, C in bounds.items()}
    mesh = rve_mesh.mesh
    return HomogenizationResult(
        config=config,
        dim=dim,
        volume_fractions=fractions,
        effective={} if path is not None else results,
        load_paths=results if path is not None else {},
        bounds=bounds,
        fields=RveFields(model) if path is not None and comm.rank == 0 and groups.size == 1 else None,
        mesh={
            "file": str(config.mesh.file) if config.mesh.file else None,
            "generated": config.mesh.generate.model_dump() if config.mesh.generate else None,
            "cells": int(mesh.topology.index_map(dim).size_global),
            "nodes": int(mesh.geometry.index_map().size_global),
        },
        mesh_content=mesh_content,
    )
