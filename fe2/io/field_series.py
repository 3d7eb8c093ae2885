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
checkpoint (first from the index, then their files) and writes them again.

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

XDMF_TOPOLOGY = {"vertex": "Polyvertex", "interval": "Polyline", "triangle": "Triangle", "quadrilateral": "Quadrilateral",
                 "tetrahedron": "Tetrahedron", "hexahedron": "Hexahedron"}
ATTRIBUTE_TYPE = {1: "Scalar", 3: "Vector", 9: "Tensor"}
XINCLUDE = "http://www.w3.org/2001/XInclude"


def _step_name(step: int) -> str:
    return f"step-{step:06d}.h5"


def mesh_grid(domain: ET.Element, *, cell_name: str, num_cells: int, nodes_per_cell: int,
              num_nodes: int, topology: str, geometry: str) -> None:
    """The mesh grid of an index; ``topology``/``geometry``: HDF5 references ``file:/path``."""
    grid = ET.SubElement(domain, "Grid", Name="mesh", GridType="Uniform")
    element = ET.SubElement(grid, "Topology", TopologyType=XDMF_TOPOLOGY[cell_name],
                            NumberOfElements=str(num_cells), NodesPerElement=str(nodes_per_cell))
    ET.SubElement(element, "DataItem", Dimensions=f"{num_cells} {nodes_per_cell}", NumberType="Int",
                  Precision="8", Format="HDF").text = topology
    element = ET.SubElement(grid, "Geometry", GeometryType="XYZ")
    ET.SubElement(element, "DataItem", Dimensions=f"{num_nodes} 3", NumberType="Float",
                  Precision="8", Format="HDF").text = geometry


def step_grid(name: str, time: float, shapes: dict[str, tuple[str, tuple[int, int]]], reference) -> ET.Element:
    """The grid of one time step: the mesh included, the time, one attribute per field
    (``shapes``: name -> (``Node`` or ``Cell``, (rows, components))); ``reference(field)``:
    its HDF5 reference ``file:/path``."""
    grid = ET.Element("Grid", Name=name, GridType="Uniform")
    ptr = 'xpointer(//Grid[@Name="mesh"]/*[self::Topology or self::Geometry])'
    ET.SubElement(grid, f"{{{XINCLUDE}}}include", xpointer=ptr)
    ET.SubElement(grid, "Time", Value=repr(float(time)))
    for field, (center, shape) in shapes.items():
        attribute = ET.SubElement(grid, "Attribute", Name=field, AttributeType=ATTRIBUTE_TYPE[shape[1]],
                                  Center=center)
        ET.SubElement(attribute, "DataItem", Dimensions=f"{shape[0]} {shape[1]}", NumberType="Float",
                      Precision="8", Format="HDF").text = reference(field)
    return grid


def xdmf_text(root: ET.Element) -> str:
    ET.register_namespace("xi", XINCLUDE)
    ET.indent(root)
    return '<?xml version="1.0"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _gather_mesh(mesh, node_ids: np.ndarray, cells: int, original: np.ndarray,
                 num_nodes: int, num_cells: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Geometry (nodes, 3) and topology (cells, k, XDMF node order) in input ordering, rank 0."""
    x = np.zeros((len(node_ids), 3))
    x[:, : mesh.geometry.x.shape[1]] = mesh.geometry.x
    dofmap = np.asarray(mesh.geometry.dofmaps[0][:cells])
    k = dofmap.shape[1]
    perm = np.asarray(perm_vtk(mesh.topology.cell_type, k))
    parts = mesh.comm.gather((node_ids, x, original, node_ids[dofmap[:, perm]]), root=0)
    if mesh.comm.rank != 0:
        return None, None
    geometry = np.zeros((num_nodes, 3))
    topology = np.zeros((num_cells, k), dtype=np.int64)
    for ids, coords, cell_ids, cell_nodes in parts:
        geometry[ids] = coords
        topology[cell_ids] = cell_nodes
    return geometry, topology


def node_values(function: fem.Function, node_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(input node ids, values (nodes, 3 or 1)) of a P1 function on its mesh's geometry nodes."""
    mesh = function.function_space.mesh
    V = function.function_space
    bs = V.dofmap.index_map_bs
    nodes = np.asarray(mesh.geometry.dofmaps[0])
    dofs = np.asarray(V.dofmap.list[: len(nodes)])
    values = function.x.array.reshape(-1, bs)
    out = np.zeros((len(node_ids), 3 if bs > 1 else 1))
    out[nodes.ravel(), :bs] = values[dofs.ravel()]
    return node_ids, out


def cell_values(function: fem.Function, cells: int, original: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(original cell ids, values (cells, components)) of a DG0 function on the owned cells;
    2-vectors padded to 3 components."""
    V = function.function_space
    bs = V.dofmap.index_map_bs
    values = function.x.array.reshape(-1, bs)[np.asarray(V.dofmap.list[:cells, 0])]
    if bs == 2:
        values = np.hstack([values, np.zeros((len(values), 1))])
    return original, values


def assemble(parts, rows: int) -> np.ndarray:
    """Rows gathered from the ranks ((ids, values) each) into one array."""
    out = np.zeros((rows, parts[0][1].shape[1]))
    for ids, values in parts:
        out[ids] = values
    return out


class PointCloudNumbering:
    """A cloud of points with global ids (rank-count independent), written as Polyvertex
    cells, one per point: the numbering of a :class:`FieldSeries` whose node fields are
    values at the points.

    Args:
        comm: the communicator of the ranks holding points.
        ids: (k,) global ids of this rank's points (0 .. N-1 over all ranks, each once).
        coordinates: (k, gdim) their coordinates.
    """

    cell_name = "vertex"
    nodes_per_cell = 1

    def __init__(self, comm: MPI.Comm, ids: np.ndarray, coordinates: np.ndarray):
        self.comm = comm
        self.ids = np.asarray(ids, dtype=np.int64)
        self.coordinates = np.zeros((len(self.ids), 3))
        self.coordinates[:, : np.shape(coordinates)[1]] = coordinates
        local = int(self.ids.max()) + 1 if len(self.ids) else 0
        self.num_nodes = self.num_cells = comm.allreduce(local, op=MPI.MAX)

    def gather_mesh(self):
        parts = self.comm.gather((self.ids, self.coordinates), root=0)
        if self.comm.rank != 0:
            return None, None
        return assemble(parts, self.num_nodes), np.arange(self.num_nodes, dtype=np.int64)[:, None]


class MeshNumbering:
    """The input ordering of a (distributed) first-order mesh: input node ids, original cell
    ids of the owned cells, global counts."""

    def __init__(self, mesh):
        tdim = mesh.topology.dim
        self.mesh = mesh
        self.cells = mesh.topology.index_map(tdim).size_local
        self.original = np.asarray(mesh.topology.original_cell_index[: self.cells], dtype=np.int64)
        self.node_ids = np.asarray(mesh.geometry.input_global_indices, dtype=np.int64)
        local = int(self.node_ids.max()) + 1 if len(self.node_ids) else 0
        self.num_nodes = mesh.comm.allreduce(local, op=MPI.MAX)
        self.num_cells = mesh.topology.index_map(tdim).size_global
        self.nodes_per_cell = np.asarray(mesh.geometry.dofmaps[0]).shape[1]
        self.cell_name = mesh.topology.cell_name()

    def gather_mesh(self):
        return _gather_mesh(self.mesh, self.node_ids, self.cells, self.original, self.num_nodes, self.num_cells)

    def node_values(self, function):
        return node_values(function, self.node_ids)

    def cell_values(self, function):
        return cell_values(function, self.cells, self.original)


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
        numbering: the rows of the files (default: the nodes and cells of ``mesh`` in input
            ordering, :class:`MeshNumbering`; a :class:`PointCloudNumbering` for values at
            points, written with :meth:`write_values`).
    """

    def __init__(self, mesh, directory: Path, name: str = "fields", *, keep_until: int | None = None,
                 numbering: MeshNumbering | PointCloudNumbering | None = None):
        self.mesh, self.comm = mesh, mesh.comm
        self.directory = Path(directory)
        self.index = self.directory / f"{name}.xdmf"
        self.folder = self.directory / name
        self.relative = name  # data paths in the index are relative to it
        self.numbering = MeshNumbering(mesh) if numbering is None else numbering
        self.grids: list[ET.Element] = []
        mesh_file = self.folder / "mesh.h5"
        geometry, topology = self.numbering.gather_mesh()

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
                if keep_until is not None:  # the index lists the kept steps before the others go
                    _write_text_atomically(self.index, self._index_text())
                    self._drop_steps_after(keep_until)
            except OSError as exc:
                raise ResourceError(f"cannot write the fields: {os_error_message(exc)}") from None

        collectively(self.comm, prepare, errors=(ResourceError,))

    # ------------------------------------------------------------------ the index

    def _clear(self) -> None:
        """Remove an earlier series of this name (a new run in the same directory)."""
        import shutil

        self.index.unlink(missing_ok=True)
        if self.folder.is_dir():
            shutil.rmtree(self.folder)

    def _kept_grids(self, keep_until: int) -> list[ET.Element]:
        """The step grids of an existing index with step <= keep_until whose files exist."""
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
        return grids

    def _drop_steps_after(self, keep_until: int) -> None:
        """Remove the step files after ``keep_until`` (a restart writes them again)."""
        for path in self.folder.glob("step-*.h5"):
            if int(path.stem.split("-")[-1]) > keep_until:
                path.unlink()

    def _index_text(self) -> str:
        root = ET.Element("Xdmf", Version="3.0")
        domain = ET.SubElement(root, "Domain")
        n = self.numbering
        mesh_grid(domain, cell_name=n.cell_name, num_cells=n.num_cells, nodes_per_cell=n.nodes_per_cell,
                  num_nodes=n.num_nodes, topology=f"{self.relative}/mesh.h5:/topology",
                  geometry=f"{self.relative}/mesh.h5:/geometry")
        collection = ET.SubElement(domain, "Grid", Name="fields", GridType="Collection",
                                   CollectionType="Temporal")
        collection.extend(self.grids)
        return xdmf_text(root)

    # ------------------------------------------------------------------ writing

    def write(self, step: int, time: float, *, node_fields: list[fem.Function],
              cell_fields: list[fem.Function]) -> None:
        """Write the fields of ``step`` at ``time`` (collective); then rewrite the index.

        Raises:
            ResourceError: the file system refused (on every rank; the earlier steps and the
                index stay as they were, no temporary file is left).
        """
        n = self.numbering
        values = {f.name: ("Node", n.node_values(f)) for f in node_fields}
        values.update({f.name: ("Cell", n.cell_values(f)) for f in cell_fields})
        self.write_values(step, time, values)

    def write_values(self, step: int, time: float, values: dict[str, tuple[str, tuple[np.ndarray, np.ndarray]]]) -> None:
        """Write the fields of ``step`` at ``time`` from this rank's rows (collective; the same
        names in the same order on every rank): name -> (``Node`` or ``Cell``, (ids (k,),
        values (k, 1, 3 or 9))); then rewrite the index. Errors as for :meth:`write`."""
        n = self.numbering
        gathered = {name: (center, self.comm.gather(rows, root=0)) for name, (center, rows) in values.items()}

        def write() -> None:
            if self.comm.rank != 0:
                return
            data, shapes = {}, {}
            for name, (center, parts) in gathered.items():
                data[name] = assemble(parts, n.num_nodes if center == "Node" else n.num_cells)
                shapes[name] = (center, data[name].shape)
            path = self.folder / _step_name(step)
            try:
                _write_h5_atomically(path, data, {"time": float(time), "step": int(step)})
                grids = [g for g in self.grids if g.get("Name") != f"step-{step:06d}"]
                grids.append(step_grid(f"step-{step:06d}", time, shapes,
                                       lambda field: f"{self.relative}/{_step_name(step)}:/{field}"))
                previous, self.grids = self.grids, grids
                try:
                    _write_text_atomically(self.index, self._index_text())
                except OSError:
                    self.grids = previous
                    raise
            except OSError as exc:
                raise ResourceError(f"cannot write the fields of step {step}: {os_error_message(exc, path)}") from None

        collectively(self.comm, write, errors=(ResourceError,))


def write_series_file(path: Path, mesh, snapshots: list[tuple[float, dict[str, fem.Function]]],
                      centers: dict[str, str]) -> None:
    """A whole series in one XDMF file and its HDF5 file (``path`` with suffix .h5), each
    written under a temporary name and renamed (serial: ``mesh`` on one process).

    ``snapshots``: (time, name -> function with the values of that time); ``centers``: name ->
    ``Node`` (P1) or ``Cell`` (DG0). HDF5 layout: /mesh/geometry, /mesh/topology,
    /step-K/<name> for the K-th snapshot.
    """
    path = Path(path)
    h5 = path.with_suffix(".h5")
    n = MeshNumbering(mesh)
    geometry, topology = n.gather_mesh()
    data: dict[str, np.ndarray] = {"mesh/geometry": geometry, "mesh/topology": topology}
    root = ET.Element("Xdmf", Version="3.0")
    domain = ET.SubElement(root, "Domain")
    mesh_grid(domain, cell_name=n.cell_name, num_cells=n.num_cells, nodes_per_cell=n.nodes_per_cell,
              num_nodes=n.num_nodes, topology=f"{h5.name}:/mesh/topology", geometry=f"{h5.name}:/mesh/geometry")
    collection = ET.SubElement(domain, "Grid", Name="fields", GridType="Collection", CollectionType="Temporal")
    for k, (time, functions) in enumerate(snapshots):
        shapes = {}
        for name, function in functions.items():
            ids, values = n.node_values(function) if centers[name] == "Node" else n.cell_values(function)
            rows = n.num_nodes if centers[name] == "Node" else n.num_cells
            data[f"step-{k}/{name}"] = assemble([(ids, values)], rows)
            shapes[name] = (centers[name], data[f"step-{k}/{name}"].shape)
        collection.append(step_grid(f"step-{k}", time, shapes, lambda field, k=k: f"{h5.name}:/step-{k}/{field}"))
    _write_h5_atomically(h5, data, {})
    _write_text_atomically(path, xdmf_text(root))
