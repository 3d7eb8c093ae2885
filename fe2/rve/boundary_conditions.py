"""The three RVE boundary-condition families, behind one interface, on one rank or several.

Each turns the assembled, unconstrained stiffness A (N x N, fluctuation dofs) into a regular
system K and maps vectors between the full space and K's space:

* :class:`AffineBC` (linear displacement): w = 0 on the boundary;
* :class:`PeriodicBC`: w periodic, w = 0 at the corners (removes the constant);
* :class:`~fe2.rve.traction_bc.TractionBC` (uniform traction / flux, minimal kinematic condition):
  int_dY w (x) n dS = 0 and int_Y w dx = 0.

The first two are prolongations w = P x (K = P^T A P). The third is imposed by Lagrange
multipliers for a direct solver, K = [[A, B^T], [B, 0]], or, for a Krylov solver, by
projection: with Pi = I - B^T (B B^T)^-1 B the orthogonal projector onto ker B, CG runs on
Pi A Pi in ker B, where A is positive definite (the constraints remove the rigid modes),
with the constrained preconditioner of :mod:`fe2.rve.solver` (no dof is pinned). Apparent
tensors are ordered C_affine >= C_periodic >= C_traction because the admissible spaces are
nested.

The same code serves an RVE on one process and one distributed over the ranks of its mesh's
communicator: vectors hold the dofs a rank owns (PETSc layout), P and K are parallel PETSc
matrices in global numbering, the periodic matching runs on the boundary nodes of all ranks
(gathered with their global numbers, so a node's master may live on another rank), and the
constraint rows B are stored by owned columns with their products summed over the ranks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from fe2.rve.model import RveModel
from fe2.rve.periodicity import periodic_masters


class OwnedNodes:
    """The nodes (blocks of ``bs`` dofs) of the fluctuation space that this rank owns.

    Attributes:
        bs: dofs per node; count: owned nodes; dofs: owned scalar dofs (count * bs).
        global_index: (count,) global node numbers; x: (count, dim) coordinates.
        starts: (size + 1,) first global node of every rank (owner ranges).
    """

    def __init__(self, model: RveModel):
        V, comm = model.V, model.comm
        index_map = V.dofmap.index_map
        self.bs, self.count = V.dofmap.index_map_bs, index_map.size_local
        self.dofs = self.count * self.bs
        self.global_index = index_map.local_to_global(np.arange(self.count, dtype=np.int32)).astype(np.int64)
        self.x = V.tabulate_dof_coordinates()[: self.count, : model.box.dim]
        lo, hi = index_map.local_range
        self.starts = np.array([r[0] for r in comm.allgather((lo, hi))] + [index_map.size_global], dtype=np.int64)

    def owner(self, nodes: np.ndarray) -> np.ndarray:
        """Owning rank of global nodes."""
        return np.searchsorted(self.starts, nodes, side="right") - 1


def gather(comm: MPI.Comm, array: np.ndarray) -> np.ndarray:
    """The rows of every rank's ``array``, in rank order (collective)."""
    if comm.size == 1:
        return array
    return np.concatenate(comm.allgather(array))


def rigid_modes(x: np.ndarray, bs: int, centre: np.ndarray) -> np.ndarray:
    """Rigid modes of a field at nodes x (n, dim): a constant (bs = 1), or translations and
    rotations about ``centre`` (bs = dim), as (k, n * bs) dof vectors (near null space of
    the stiffness, for algebraic multigrid)."""
    n, dim = x.shape
    if bs == 1:
        return np.ones((1, n))
    modes = []
    for c in range(bs):
        mode = np.zeros((n, bs))
        mode[:, c] = 1.0
        modes.append(mode)
    y = x - centre
    for a, b in ([(0, 1)] if dim == 2 else [(0, 1), (1, 2), (2, 0)]):
        mode = np.zeros((n, bs))
        mode[:, a], mode[:, b] = -y[:, b], y[:, a]
        modes.append(mode)
    return np.array([m.ravel() for m in modes])


def rigid_mode_dofs(model: RveModel) -> np.ndarray:
    """Global dofs that fix the rigid modes of the unconstrained RVE operator (3-2-1 nodes).

    Scalar field: one node (constants). Vector field: node a near the lo corner (all
    components: the translations), node b along x from it (components 2..d: the rotations
    about the axes normal to x), in 3D node c along y (component 3: the rotation about x). A
    field with more components than the mesh dimension (generalised plane strain: u3 on a 2D
    section) has no more rigid modes: only the translation u3.
    The nodes are the same on any number of ranks (nearest owned node, then the smallest
    distance and global number over the ranks).
    """
    nodes, box = OwnedNodes(model), model.box
    bs = nodes.bs

    def nearest(target) -> int:
        d = np.linalg.norm(nodes.x - target, axis=1)
        i = int(np.argmin(d)) if len(d) else -1
        mine = (float(d[i]), int(nodes.global_index[i])) if i >= 0 else (np.inf, -1)
        return model.comm.allreduce(mine, op=MPI.MIN)[1]

    a = nearest(box.lo)
    if bs == 1:
        return np.array([a])
    along = [box.lo + np.eye(box.dim)[i] * box.lengths[i] for i in range(box.dim)]
    dofs = [a * bs + c for c in range(bs)]
    b = nearest(along[0])
    dofs += [b * bs + c for c in range(1, box.dim)]
    if box.dim == 3:
        c = nearest(along[1])
        dofs.append(c * bs + 2)
    return np.array(sorted(dofs), dtype=np.int64)


class RveBoundaryCondition(ABC):
    """Constraint on the fluctuation: builds K from A and maps vectors to and from K's space.

    Vectors are PETSc vectors in their parallel layout (full space: the dofs each rank owns).
    """

    kind: str

    def __init__(self, model: RveModel):
        self.model = model
        self.comm = model.comm
        self.nodes = OwnedNodes(model)

    @property
    @abstractmethod
    def size(self) -> int:
        """Number of unknowns of the constrained system (global)."""

    @property
    @abstractmethod
    def local_size(self) -> int:
        """Unknowns of the constrained system owned by this rank."""

    @abstractmethod
    def system_matrix(self, A: PETSc.Mat, K: PETSc.Mat | None = None) -> PETSc.Mat:
        """The constrained system matrix K built from the full stiffness A.

        With ``K`` from an earlier call on a matrix of A's sparsity, K is refilled in place
        (same nonzero pattern, so a factorisation can reuse its symbolic phase).
        """

    def preconditioner_matrix(self, A: PETSc.Mat, K: PETSc.Mat, M: PETSc.Mat | None = None) -> PETSc.Mat:
        """The matrix a Krylov solver's preconditioner is built from (default: K itself)."""
        return K

    def near_null_space(self) -> np.ndarray:
        """Rigid modes of the field in the preconditioner's space, (k, local_size): the near
        null space algebraic multigrid needs."""
        return rigid_modes(self._solver_nodes(), self.nodes.bs, self.model.box.centre)

    @abstractmethod
    def _solver_nodes(self) -> np.ndarray:
        """Coordinates of the nodes of the solver space owned here, (local_size / bs, dim)."""

    def project(self, v: PETSc.Vec) -> None:
        """Remove from v what the constraints forbid (in place; identity unless overridden)."""

    @property
    def projected(self) -> bool:
        """The solver space is the full space restricted by a projection (see :meth:`project`)."""
        return False

    @abstractmethod
    def residual_norm(self, R: PETSc.Vec) -> float:
        """Norm of the part of a full-space residual R (N,) that the constraints do not absorb."""

    @abstractmethod
    def restrict(self, b: PETSc.Vec, r: PETSc.Vec) -> None:
        """Full-space load b (N,) -> right-hand side r of the constrained system."""

    @abstractmethod
    def prolong(self, x: PETSc.Vec, w: PETSc.Vec) -> None:
        """Solution x of the constrained system -> full fluctuation w (owned part of w)."""

    def create_vector(self) -> PETSc.Vec:
        """A vector of the constrained system's layout."""
        v = PETSc.Vec().create(comm=self.comm)
        v.setSizes((self.local_size, self.size), bsize=self._block)
        v.setUp()
        return v

    @property
    def _block(self) -> int:
        return 1

    def destroy(self) -> None:
        """Free owned PETSc objects."""


class _ProlongationBC(RveBoundaryCondition):
    """w = P x with P (N x M) a 0/1 matrix: row (node, c) -> column (master(node), c).

    Args:
        model: the RVE.
        master: (owned nodes,) the global number of every owned node's master node, -1 where
            the node is held at zero. Masters are the nodes that are their own master; they
            are numbered rank by rank (the columns of P a rank owns are its masters).
    """

    def __init__(self, model: RveModel, master: np.ndarray):
        super().__init__(model)
        nodes, comm, bs = self.nodes, self.comm, self.nodes.bs
        is_master = master == nodes.global_index
        count = int(np.count_nonzero(is_master))
        offset = comm.exscan(count) or 0
        reduced = np.full(nodes.count, -1, dtype=np.int64)
        reduced[is_master] = offset + np.arange(count)
        self._masters = nodes.x[is_master]
        node_column = np.where(master < 0, -1, reduced)
        # Dependent nodes take their master's column, asked of the master's owner.
        dependent = np.flatnonzero((master >= 0) & ~is_master)
        node_column[dependent] = self._columns_of(master[dependent], reduced)
        if np.any(node_column[dependent] < 0):
            raise RuntimeError("a node's master is not a master node")
        dof_column = (node_column[:, None] * bs + np.arange(bs)).ravel()
        has = (node_column[:, None] >= 0).repeat(bs, axis=1).ravel()
        #: Column of P of every owned dof (-1: the dof is held at zero), (owned dofs,).
        self.columns = np.where(has, dof_column, -1)
        indptr = np.concatenate([[0], np.cumsum(has)]).astype(PETSc.IntType)
        indices = dof_column[has].astype(PETSc.IntType)
        self._local_size = count * bs
        self._size = comm.allreduce(self._local_size)
        N = model.global_dofs
        self.P = PETSc.Mat().createAIJ(
            size=((nodes.dofs, N), (self._local_size, self._size)), bsize=bs,
            csr=(indptr, indices, np.ones(len(indices))), comm=comm,
        )
        self.P.assemble()
        self._work = self.create_vector()  # restricted residual of residual_norm

    def _columns_of(self, wanted: np.ndarray, reduced: np.ndarray) -> np.ndarray:
        """Reduced column of global master nodes ``wanted``, from their owners (collective)."""
        nodes, comm = self.nodes, self.comm
        owner = nodes.owner(wanted)
        if comm.size == 1:
            return reduced[wanted - nodes.starts[0]]
        requests = [wanted[owner == r] for r in range(comm.size)]
        asked = comm.alltoall(requests)
        start = nodes.starts[comm.rank]
        answers = comm.alltoall([reduced[a - start] for a in asked])
        out = np.empty(len(wanted), dtype=np.int64)
        for r in range(comm.size):
            out[owner == r] = answers[r]
        return out

    @property
    def size(self) -> int:
        return self._size

    @property
    def local_size(self) -> int:
        return self._local_size

    @property
    def _block(self) -> int:
        return self.nodes.bs

    def _solver_nodes(self):
        return self._masters

    def system_matrix(self, A, K=None):
        return A.ptap(self.P, result=K)

    def residual_norm(self, R):
        self.P.multTranspose(R, self._work)
        return self._work.norm()

    def restrict(self, b, r):
        self.P.multTranspose(b, r)

    def prolong(self, x, w):
        self.P.mult(x, w)

    def destroy(self):
        self.P.destroy()
        self._work.destroy()


class AffineBC(_ProlongationBC):
    """Linear (affine) boundary displacement / temperature: the fluctuation vanishes on dY."""

    kind = "affine"

    def __init__(self, model: RveModel):
        nodes = OwnedNodes(model)
        super().__init__(model, np.where(model.box.on_boundary(nodes.x), -1, nodes.global_index))


class PeriodicBC(_ProlongationBC):
    """Periodic fluctuation; its value at the corners is fixed to zero (fixes the constant).

    The boundary nodes of all ranks are gathered (coordinates and global numbers) and matched
    by :func:`fe2.rve.periodicity.periodic_masters`, the same on every rank.

    Raises:
        MeshNotPeriodicError: if boundary nodes on opposite faces do not match.
    """

    kind = "periodic"

    def __init__(self, model: RveModel):
        nodes, box, comm = OwnedNodes(model), model.box, model.comm
        on_boundary = np.flatnonzero(box.on_boundary(nodes.x))
        x = gather(comm, nodes.x[on_boundary])
        number = gather(comm, nodes.global_index[on_boundary])
        master = number[periodic_masters(x, box)]
        corner = np.flatnonzero(box.on_lo(x).all(axis=1))
        if len(corner) != 1:
            raise ValueError(f"expected one node at the corner {box.lo}, found {len(corner)}")
        master[master == number[corner[0]]] = -1
        first = comm.exscan(len(on_boundary)) or 0
        masters = nodes.global_index.copy()
        masters[on_boundary] = master[first : first + len(on_boundary)]
        super().__init__(model, masters)


def make_boundary_condition(kind: str, model: RveModel, *, iterative: bool = False) -> RveBoundaryCondition:
    """Boundary condition by name: 'periodic', 'affine' or 'traction'; ``iterative``: for a
    Krylov solver (the traction constraints by projection instead of multipliers)."""
    from fe2.rve.traction_bc import TractionBC  # builds on this module

    classes = {cls.kind: cls for cls in (PeriodicBC, AffineBC, TractionBC)}
    try:
        cls = classes[kind]
    except KeyError:
        raise ValueError(
            f"unknown RVE boundary condition {kind!r}; expected one of {sorted(classes)}"
        ) from None
    return cls(model, multipliers=not iterative) if cls is TractionBC else cls(model)
