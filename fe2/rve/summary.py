"""What the RVE of a study is: its mesh, discretisation and *meshed* phase fractions.

The meshed volume fraction of a phase is the volume of its cells over the mesh volume; a
generator's requested (geometric) fraction differs from it by the discretisation of curved
interfaces (inscribed polygons: 17.1 % meshed where 20 % was asked on a coarse mesh), which
the effective response follows. Both go to the log and ``summary.json`` of ``fe2 run``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fe2.meshing.io import RveMesh
from fe2.meshing.measures import phase_fractions
from fe2.rve.model import RveModel

#: Name of the generated RVE mesh in the output directory of ``fe2 run``.
RVE_MESH_FILE = "rve.msh"


def rve_summary(rve_mesh: RveMesh, model: RveModel, phase_tags: Mapping[str, int], *,
                source: Any) -> dict:
    """Summary of an RVE (JSON-ready).

    Args:
        rve_mesh: the RVE mesh (on ``MPI.COMM_SELF``).
        model: its discretisation.
        phase_tags: phase name -> cell tag (the config's phases).
        source: the config's mesh source (``file`` or ``generate``: a mesh spec).

    Returns:
        ``mesh`` (the file read, or ``rve.msh`` for a generated mesh, saved with the
        results), ``generator`` (its type, or None), ``cells``, ``dofs`` (of the
        fluctuation), ``degree``, ``size`` (edges of the box) and per phase name ``tag``,
        ``volume_fraction`` (meshed) and, for a generator that defines it,
        ``requested_volume_fraction``.
    """
    dim = rve_mesh.dim
    meshed = phase_fractions(rve_mesh)
    requested: dict[int, float] = {}
    if source.generate is not None:
        try:
            requested = source.generate.expected_volume_fractions()
        except NotImplementedError:
            requested = {}
    phases = {}
    for name, tag in phase_tags.items():
        phases[name] = {"tag": tag, "volume_fraction": meshed.get(tag, 0.0)}
        if tag in requested:
            phases[name]["requested_volume_fraction"] = requested[tag]
    return {
        "mesh": str(source.file) if source.file is not None else RVE_MESH_FILE,
        "generator": source.generate.type if source.generate is not None else None,
        "cells": int(rve_mesh.mesh.topology.index_map(dim).size_local),
        "dofs": int(model.num_dofs),
        "degree": model.degree,
        "size": [float(s) for s in model.box.lengths],
        "phases": phases,
    }


def format_rve_summary(summary: dict) -> str:
    """One log line: cells, dofs and the meshed (requested) fraction of every phase."""
    phases = ", ".join(
        f"{name} {100 * p['volume_fraction']:.2f} %"
        + (f" (requested {100 * p['requested_volume_fraction']:.2f} %)"
           if "requested_volume_fraction" in p else "")
        for name, p in summary["phases"].items()
    )
    return (f"RVE mesh {summary['mesh']}: {summary['cells']} cells, {summary['dofs']} dofs "
            f"(P{summary['degree']}); meshed phase fractions: {phases}")
