r"""Cell volumes and phase volume fractions of simplex meshes (numpy, MPI-aware).

For a simplex with vertices :math:`x_0..x_d`,
:math:`|K| = |\det[x_1 - x_0, \dots, x_d - x_0]| / d!`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from mpi4py import MPI

if TYPE_CHECKING:
    import dolfinx.mesh

    from fe2.meshing.io import RveMesh


def cell_volumes(mesh: dolfinx.mesh.Mesh) -> np.ndarray:
    """Volumes (areas in 2D) of the locally owned cells [length^d]."""
    tdim = mesh.topology.dim
    num_owned = mesh.topology.index_map(tdim).size_local
    x = mesh.geometry.x[:, : mesh.geometry.dim]
    nodes = mesh.geometry.dofmaps[0][:num_owned, : tdim + 1]
    if x.shape[1] != tdim:
        raise ValueError(f"geometric dimension {x.shape[1]} != topological dimension {tdim}")
    edges = x[nodes[:, 1:]] - x[nodes[:, :1]]
    return np.abs(np.linalg.det(edges)) / math.factorial(tdim)


def phase_volumes(rve: RveMesh) -> dict[int, float]:
    """Total volume per physical tag, summed over all ranks (collective) [length^d]."""
    tdim = rve.mesh.topology.dim
    num_owned = rve.mesh.topology.index_map(tdim).size_local
    vol = cell_volumes(rve.mesh)
    owned = rve.cell_tags.indices < num_owned
    idx, val = rve.cell_tags.indices[owned], rve.cell_tags.values[owned]
    local = {tag: float(vol[idx[val == tag]].sum()) for tag in rve.names}
    comm = rve.mesh.comm
    return {tag: comm.allreduce(v, op=MPI.SUM) for tag, v in local.items()}


def phase_fractions(rve: RveMesh) -> dict[int, float]:
    """Volume fraction per physical tag, relative to the meshed volume (collective)."""
    volumes = phase_volumes(rve)
    total = sum(volumes.values())
    return {tag: v / total for tag, v in volumes.items()}
