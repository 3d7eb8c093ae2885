"""The material-point source of a `fe2 run` study: closed-form law, laws per cell tag, or FE².

For FE², when every RVE phase is linear and the strain small, the effective tensor is
computed once and used at every point (hierarchical); otherwise every macro point owns an
RVE, solved at every macro Newton iteration (concurrent), by the RVE pool (``balancing:
off``) or the MPI-balanced pool. The reason for the choice goes to the log. With
``parallel.ranks_per_rve`` k > 1 the RVE mesh is distributed over groups of k ranks
(:mod:`fe2.rve.groups`), each group solving its share of the points together (the balanced
pool, with its groups as workers; ``balancing: off`` keeps each point in its home rank's
group).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from fe2.config.run import RunConfig
from fe2.coupling.balanced_pool import BalancedRvePool
from fe2.errors import InputError, collectively
from fe2.material_point import MaterialPoints
from fe2.materials import EffectiveLinearElastic
from fe2.materials.points import LawPoints, PhasePoints
from fe2.meshing.macro import MacroMesh
from fe2.physics import Physics
from fe2.rve.effective import effective_tensor, plane_strain_sigma33_coefficients
from fe2.rve.factory import make_rve_solver
from fe2.rve.groups import split_ranks
from fe2.rve.mesh_source import check_phase_tags, load_rve_mesh
from fe2.rve.micro_solver import NewtonOptions
from fe2.rve.model import RveModel
from fe2.rve.pool import RvePool
from fe2.rve.summary import rve_summary

log = logging.getLogger(__name__)


@dataclass
class Coupling:
    """How the macro points get their stress: the factory and a description for the log."""

    make_points: Callable[[int], MaterialPoints]
    mode: str
    reason: str
    #: FE²: the RVE summary (:func:`fe2.rve.summary.rve_summary`) and the content of a
    #: generated RVE mesh file (rank 0), saved with the results.
    rve: dict | None = None
    rve_mesh_file: bytes | None = None


#: The RVE Newton tolerance is at most this fraction of the macro one (see rve_newton_options).
RVE_TO_MACRO_RTOL = 1e-2


def rve_newton_options(config: RunConfig) -> NewtonOptions:
    """The RVE Newton options of a concurrent study, rtol at most 1/100 of the macro rtol.

    A homogenized stress is only as accurate as its RVE solve: an RVE rtol near the macro
    one leaves noise in the macro residual at that level, the macro Newton stagnates on it
    and cuts back needlessly (a different load path on a path-dependent material). The
    tightening is logged; the RVE test keeps its round-off floor, so it stays reachable.
    """
    options = config.material.rve.solver.newton.model_dump()
    limit = RVE_TO_MACRO_RTOL * config.solver.newton.rtol
    if options["rtol"] > limit:
        log.info("material.rve.solver.newton.rtol tightened from %.3g to %.3g (1/100 of "
                 "solver.newton.rtol: homogenized stresses more accurate than the macro tolerance)",
                 options["rtol"], limit)
        options["rtol"] = limit
    return NewtonOptions(**options)


def coupling(config: RunConfig, macro: MacroMesh, physics: Physics, comm: MPI.Comm) -> Coupling:
    """The material-point factory of the config's material source (collective)."""
    material, dim, n = config.material, macro.dim, physics.n_comp
    if material.law is not None:
        law = material.law.material()
        return Coupling(lambda m: LawPoints(law, m, dim=dim, n_comp=n), "law", f"closed-form {material.law.law} law")
    if material.phases is not None:
        laws = {p.tag: p.material() for p in material.phases.values()}
        tags = macro.cell_tags
        cells = macro.mesh.topology.index_map(dim).size_local
        cell_tag = np.zeros(cells, dtype=np.int32)
        cell_tag[tags.indices[tags.indices < cells]] = tags.values[tags.indices < cells]
        missing = sorted(set(np.unique(cell_tag).tolist()) - set(laws))
        if comm.allreduce(len(missing), op=MPI.MAX):
            raise InputError(f"material.phases: macro cells with tags {missing} have no law")
        return Coupling(
            lambda m: PhasePoints(laws, np.repeat(cell_tag, m // max(cells, 1)), dim=dim, n_comp=n),
            "phases", "closed-form laws per macro cell tag",
        )
    rve = material.rve
    groups = collectively(comm, lambda: split_ranks(comm, config.parallel.ranks_per_rve), errors=(InputError,))
    rve_mesh, rve_mesh_file = load_rve_mesh(rve.mesh, comm, key="material.rve.mesh", group=groups.group)
    collectively(comm, lambda: check_phase_tags(rve.phases, rve_mesh, key="material.rve.phases"), errors=(InputError,))
    laws = {p.tag: p.material() for p in rve.phases.values()}
    if rve_mesh.dim != dim:
        raise InputError(f"material.rve.mesh: a {rve_mesh.dim}D RVE for a {dim}D macro mesh")
    model = RveModel(rve_mesh.mesh, rve_mesh.cell_tags, physics, laws, degree=rve.degree)
    described = {"rve": rve_summary(rve_mesh, model, {name: p.tag for name, p in rve.phases.items()},
                                    source=rve.mesh), "rve_mesh_file": rve_mesh_file}
    nonlinear = [name for name, p in rve.phases.items() if not laws[p.tag].is_linear]
    # Linear phases and a physics whose effective tensor is a closed-form law (not finite strain).
    probe = physics.effective_law(np.eye(n)) if not nonlinear else None
    linear = probe is not None
    mode = rve.coupling
    if mode == "auto":
        mode = "hierarchical" if linear else "concurrent"
        why = (
            "every RVE phase is linear at small strain: the effective tensor is computed once"
            if linear
            else (f"RVE phases {nonlinear} are nonlinear" if nonlinear else physics.name.replace("_", " "))
            + ": an RVE solve per macro point and Newton iteration"
        )
    elif mode == "hierarchical":
        if not linear:
            raise InputError("material.rve.coupling: 'hierarchical' needs linear RVE phases and small strain "
                             "(elasticity or conduction)")
        why = "requested; the effective tensor is computed once"
    else:
        why = "requested: an RVE solve per macro point and Newton iteration"
    if mode == "hierarchical":  # computed by the first group, on its ranks
        def effective_law():
            options = rve.solver.petsc_options
            C = effective_tensor(model, rve.bc, solver_options=options, linear_solver=rve.linear_solver).C
            s33 = plane_strain_sigma33_coefficients(model, rve.bc, solver_options=options)
            return physics.effective_law(C) if s33 is None else EffectiveLinearElastic(C, s33=s33)

        law = comm.bcast(effective_law() if groups.index == 0 else None)
        return Coupling(lambda m: LawPoints(law, m, dim=dim, n_comp=n), "hierarchical", why, **described)
    newton = rve_newton_options(config)
    balancing = config.parallel.balancing

    def make(m: int) -> MaterialPoints:
        solver = make_rve_solver(model, rve.bc, batch=rve.batch, newton=newton,
                                 petsc_options=rve.solver.petsc_options, linear_solver=rve.linear_solver)
        if balancing == "off" and groups.size == 1:
            return RvePool(solver, m)
        return BalancedRvePool(solver, m, comm, equal_counts=balancing == "static", groups=groups)

    ranks = f"; {groups.size} ranks per RVE ({groups.count} groups)" if groups.size > 1 else ""
    return Coupling(make, "concurrent", f"{why}; load balancing {balancing}{ranks}", **described)
