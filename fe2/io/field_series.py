"""Field files that survive a kill: one HDF5 file per time step, an XDMF index rewritten
atomically after each step, readable by ParaView, meshio and h5py.

Layout, for ``name = "fields"`` in the output directory::

    fields.xdmf                XDMF 3 index: the mesh grid, and a temporal collection with
                               one grid per written step (time = load factor) whose attributes
                               point into that step's file
    fields/mesh.h5             /geometry (nodes, 3), /topology (cells, nodes per cell)
    fields/step-000004.h5      one dataset per field: /displacement (nodes, 3), /stress
                               (cells, 9), ... ; attribute "time"

The mesh and the fields are stored in the input ordering of the mesh file (nodes by
``input_global_indices``, cells by ``original_cell_index``), gathered to rank 0: every run
segment, on any number of ranks, writes the same mesh and node/cell order, so a restarted run
continues the same series. A step file is written under a temporary name and renamed when
complete; the index is rewritten (temporary name, rename) only after that. Killed at any
moment, the index lists complete steps only, and a restart drops the steps after its
checkpoint and writes them again.

This is the layout of meshio's XDMF ``TimeSeriesWriter`` (one mesh, per step an
``xi:include`` of it plus the attributes), which its ``TimeSeriesReader`` reads.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from dolfinx import fem
from dolfinx.cpp.io import perm_vtk
from mpi4py import MPI

from fe2.errors import ResourceError, collectively, os_error_message

XDMF_TOPOLOGY = {"interval": "Polyline", "triangle": "Triangle", "quadrilateral": "Quadrilateral",
                 "tetrahedron": "Tetrahedron", "hexahedron": "Hexahedron"}
ATTRIBUTE_TYPE = {1: "Scalar", 3: "Vector", 9: "Tensor"}
XINCLUDE = "http://www.w3.org/2001/XInclude"


def _step_name(step: int) -> str:
    return f"step-{step:06d}.h5"


def _write_h5_atomically(path: Path, datasets: dict[str, np.ndarray], attrs: dict) -> None:
    """Write datasets into ``path`` via a temporary file renamed when complete (rank 0)."""
    import h5py

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            for name, data in datasets.items():
                f.create_dataset(name, data=data)
            f.attrs.update(attrs)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_text_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class FieldSeries:
    """A time series of node (P1) and cell (DG0) fields on one mesh (collective).

    Args:
        mesh: the (distributed) first-order mesh.
        directory: the output directory.
        name: the index is ``name.xdmf``, the data in the folder ``name/``.
        keep_until: steps already written and kept (a restart after step N keeps the steps
            <= N of an existing index and drops the rest); None: start a new series.
    """

    def __init__(self, mesh, directory: Path, name: str = "fields", *, keep_until: int | None = None):
        self.mesh, self.comm = mesh, mesh.comm
        self.directory = Path(directory)
        self.index = self.directory / f"{name}.xdmf"
        self.folder = self.directory / name
        self.relative = name  # data paths in the index are relative to it
        tdim = mesh.topology.dim
        self.num_cells = mesh.topology.index_map(tdim).size_local
        self.original_cells = np.asarray(mesh.topology.original_cell_index[: self.num_cells], dtype=np.int64)
        self.node_ids = np.asarray(mesh.geometry.input_global_indices, dtype=np.int64)
        self.num_nodes = self.comm.allreduce(int(self.node_ids.max()) + 1 if len(self.node_ids) else 0, op=MPI.MAX)
        self.num_cells_global = mesh.topology.index_map(tdim).size_global
        self.cell_name = mesh.topology.cell_name()
        self.grids: list[ET.Element] = []
        mesh_file = self.folder / "mesh.h5"
        geometry, topology = self._gather_mesh()
        self.nodes_per_cell = topology.shape[1] if topology is not None else 0
        self.nodes_per_cell = self.comm.bcast(self.nodes_per_cell)

        def prepare() -> None:
            if self.comm.rank != 0:
                return
            try:
                if keep_until is None:
                    self._clear()
                else:
                    self.grids = self._kept_grids(keep_until)
                self.folder.mkdir(parents=True, exist_ok=True)
                for stale in self.folder.glob(".*.tmp"):
                    stale.unlink()
                if keep_until is None or not mesh_file.is_file():
                    _write_h5_atomically(mesh_file, {"geometry": geometry, "topology": topology}, {})
            except OSError as exc:
                raise ResourceError(f"cannot write the fields: {os_error_message(exc)}") from None

        collectively(self.comm, prepare, errors=(ResourceError,))

    # ------------------------------------------------------------------ gathering

    def _gather_mesh(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Geometry (nodes, 3) and topology (cells, k) in input ordering, on rank 0."""
        mesh = self.mesh
        x = np.zeros((len(self.node_ids), 3))
        x[:, : mesh.geometry.x.shape[1]] = mesh.geometry.x
        dofmap = np.asarray(mesh.geometry.dofmaps[0][: self.num_cells])
        k = dofmap.shape[1]
        perm = np.asarray(perm_vtk(mesh.topology.cell_type, k))
        cells = self.node_ids[dofmap[:, perm]]
        parts = self.comm.gather((self.node_ids, x, self.original_cells, cells), root=0)
        if self.comm.rank != 0:
            return None, None
        geometry = np.zeros((self.num_nodes, 3))
        topology = np.zeros((self.num_cells_global, k), dtype=np.int64)
        for ids, coords, cell_ids, cell_nodes in parts:
            geometry[ids] = coords
            topology[cell_ids] = cell_nodes
        return geometry, topology

    def _node_values(self, function: fem.Function) -> tuple[np.ndarray, np.ndarray]:
        """(input node ids, values (nodes, 3 or 1)) of a P1 function on this rank."""
        V = function.function_space
        bs = V.dofmap.index_map_bs
        dofs = np.asarray(V.dofmap.list[: len(self.mesh.geometry.dofmaps[0])])
        nodes = np.asarray(self.mesh.geometry.dofmaps[0])
        values = function.x.array.reshape(-1, bs)
        out = np.zeros((len(self.node_ids), 3 if bs > 1 else 1))
        out[nodes.ravel(), :bs] = values[dofs.ravel()]
        return self.node_ids, out

    def _cell_values(self, function: fem.Function) -> tuple[np.ndarray, np.ndarray]:
        """(original cell ids, values (cells, components)) of a DG0 function, owned cells."""
        V = function.function_space
        bs = V.dofmap.index_map_bs
        dofs = np.asarray(V.dofmap.list[: self.num_cells, 0])
        values = function.x.array.reshape(-1, bs)[dofs]
        if bs == 2:  # a 2D vector: 3 components for XDMF
            values = np.hstack([values, np.zeros((len(values), 1))])
        return self.original_cells, values

    @staticmethod
    def _assemble(parts, rows: int) -> np.ndarray:
        width = parts[0][1].shape[1]
        out = np.zeros((rows, width))
        for ids, values in parts:
            out[ids] = values
        return out

    # ------------------------------------------------------------------ the index

    def _clear(self) -> None:
        """Remove an earlier series of this name (a new run in the same directory)."""
        import shutil

        self.index.unlink(missing_ok=True)
        if self.folder.is_dir():
            shutil.rmtree(self.folder)

    def _kept_grids(self, keep_until: int) -> list[ET.Element]:
        """The step grids of an existing index with step <= keep_until whose files exist;
        the step files after it are removed (a restart writes them again)."""
        grids = []
        if self.index.is_file():
            try:
                root = ET.parse(self.index).getroot()
            except ET.ParseError:
                root = None
            collection = root.find("Domain/Grid[@GridType='Collection']") if root is not None else None
            for grid in (collection if collection is not None else []):
                step = int(grid.get("Name", "step-0").split("-")[-1])
                if step <= keep_until and (self.folder / _step_name(step)).is_file():
                    grids.append(grid)
        if self.folder.is_dir():
            for path in self.folder.glob("step-*.h5"):
                if int(path.stem.split("-")[-1]) > keep_until:
                    path.unlink()
        return grids

    def _index_text(self) -> str:
        ET.register_namespace("xi", XINCLUDE)
        root = ET.Element("Xdmf", Version="3.0")
        domain = ET.SubElement(root, "Domain")
        grid = ET.SubElement(domain, "Grid", Name="mesh", GridType="Uniform")
        topology = ET.SubElement(grid, "Topology", TopologyType=XDMF_TOPOLOGY[self.cell_name],
                                 NumberOfElements=str(self.num_cells_global),
                                 NodesPerElement=str(self.nodes_per_cell))
        ET.SubElement(topology, "DataItem", Dimensions=f"{self.num_cells_global} {self.nodes_per_cell}",
                      NumberType="Int", Precision="8", Format="HDF").text = f"{self.relative}/mesh.h5:/topology"
        geometry = ET.SubElement(grid, "Geometry", GeometryType="XYZ")
        ET.SubElement(geometry, "DataItem", Dimensions=f"{self.num_nodes} 3", NumberType="Float",
                      Precision="8", Format="HDF").text = f"{self.relative}/mesh.h5:/geometry"
        collection = ET.SubElement(domain, "Grid", Name="fields", GridType="Collection",
                                   CollectionType="Temporal")
        collection.extend(self.grids)
        ET.indent(root)
        return '<?xml version="1.0"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

    def _step_grid(self, step: int, time: float, shapes: dict[str, tuple[str, tuple[int, int]]]) -> ET.Element:
        grid = ET.Element("Grid", Name=f"step-{step:06d}", GridType="Uniform")
        ptr = 'xpointer(//Grid[@Name="mesh"]/*[self::Topology or self::Geometry])'
        ET.SubElement(grid, f"{{{XINCLUDE}}}include", xpointer=ptr)
        ET.SubElement(grid, "Time", Value=repr(float(time)))
        for name, (center, shape) in shapes.items():
            attribute = ET.SubElement(grid, "Attribute", Name=name, AttributeType=ATTRIBUTE_TYPE[shape[1]],
                                      Center=center)
            ET.SubElement(attribute, "DataItem", Dimensions=f"{shape[0]} {shape[1]}", NumberType="Float",
                          Precision="8", Format="HDF").text = f"{self.relative}/{_step_name(step)}:/{name}"
        return grid

    # ------------------------------------------------------------------ writing

    def write(self, step: int, time: float, *, node_fields: list[fem.Function],
              cell_fields: list[fem.Function]) -> None:
        """Write the fields of ``step`` at ``time`` (collective); then rewrite the index.

        Raises:
            ResourceError: the file system refused (on every rank; the earlier steps and the
                index stay as they were, no temporary file is left).
        """
        node_parts = [self.comm.gather(self._node_values(f), root=0) for f in node_fields]
        cell_parts = [self.comm.gather(self._cell_values(f), root=0) for f in cell_fields]

        def write() -> None:
            if self.comm.rank != 0:
                return
            data, shapes = {}, {}
            for function, parts in zip(node_fields, node_parts):
                data[function.name] = self._assemble(parts, self.num_nodes)
                shapes[function.name] = ("Node", data[function.name].shape)
            for function, parts in zip(cell_fields, cell_parts):
                data[function.name] = self._assemble(parts, self.num_cells_global)
                shapes[function.name] = ("Cell", data[function.name].shape)
            path = self.folder / _step_name(step)
            try:
                _write_h5_atomically(path, data, {"time": float(time), "step": int(step)})
                grids = [g for g in self.grids if g.get("Name") != f"step-{step:06d}"]
                grids.append(self._step_grid(step, time, shapes))
                previous, self.grids = self.grids, grids
                try:
                    _write_text_atomically(self.index, self._index_text())
                except OSError:
                    self.grids = previous
                    raise
            except OSError as exc:
                raise ResourceError(f"cannot write the fields of step {step}: {os_error_message(exc, path)}") from None

        collectively(self.comm, write, errors=(ResourceError,))
