"""The constrained RVE systems of P points at once, in arrays (the batched backend's linear algebra).

Same constraints as :mod:`fe2.rve.boundary_conditions` (whose objects supply the dof maps and
constraint rows), built from the tangents at the quadrature points (weighted by the
quadrature volumes, (P, num_cells, num_qp, n, n)) through element matrices, instead of PETSc
matrices:

* periodic / affine: w = P x with P a 0/1 prolongation; K = P^T A P is summed directly from
  the element matrices into the lower triangle of K and factorised by the batched sparse
  Cholesky (:mod:`fe2.linalg.cholesky`), or, for large factors, by PETSc's multifrontal LU
  point by point (:mod:`fe2.linalg.petsc_lu`);
* traction (minimal kinematic condition, multipliers): the saddle-point system
  [[A, B^T], [B, 0]] is solved exactly by block elimination. A is singular (rigid modes), so
  r dofs p that fix them (3-2-1 nodes) are set apart: A_qq (the rest) is SPD and factorised;
  the small dense system in (w_p, lambda) (its Schur complement, size r + m) is inverted per
  point. No dof is pinned in the answer: w_p and lambda are unknowns like the others. The
  elimination amplifies round-off by the condition of A_qq, so every solve takes one step
  of iterative refinement (residual from the tangent, matrix-free).

A point whose factorisation breaks down (a pivot that is not positive: an unstable or
indefinite tangent) is reported in ``failed``; the caller solves it another way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from fe2.fem.element_operators import ElementOperators, MatrixSlots, Scatter
from fe2.linalg.cholesky import BatchedCholesky, unique_keys
from fe2.linalg.petsc_lu import PetscKrylov, PetscLU
from fe2.rve.boundary_conditions import RveBoundaryCondition, rigid_mode_dofs
from fe2.rve.model import RveModel
from fe2.rve.traction_bc import TractionBC


#: Factorisations dearer than this (multiply-adds; about a 10k-dof 2D or a 2.5k-dof 3D RVE)
#: are done by PETSc's multifrontal LU point by point, whose dense kernels win there. Measured
#: with the run-blocked Cholesky (2026-11-30, factorisation + n solves per matrix, batched
#: Cholesky / PETSc LU; `benchmarks/rve_batch.py --crossover`): 2D 2k dofs (8e6) 0.33, 10k
#: (9.2e7) 0.61, 19k (2.6e8) 1.08; 3D 0.9k (1.2e7) 0.51, 2.3k (8.3e7) 0.72, 5.9k (7.8e8) 2.26.
CHOLESKY_LIMIT = 100_000_000


def matrix_solver(n: int, rows: np.ndarray, cols: np.ndarray, options=None, *, kind: str = "direct",
                  block_size: int = 1, near_null: np.ndarray | None = None, embed=None):
    """The solver of symmetric matrices of the lower pattern (rows, cols) and the memory of
    one matrix's factor in bytes. Direct: the batched Cholesky, or PETSc LU point by point
    above :data:`CHOLESKY_LIMIT`. Iterative: CG + GAMG point by point, with the block size,
    near null space and embedding of :class:`fe2.linalg.petsc_lu.PetscKrylov`."""
    if kind == "iterative":
        krylov = PetscKrylov(n, rows, cols, options=options, block_size=block_size, near_null=near_null,
                             embed=embed)
        return krylov, krylov.bytes_per_matrix()
    cholesky = BatchedCholesky(n, rows, cols)
    if cholesky.flops <= CHOLESKY_LIMIT:
        return cholesky, cholesky.bytes_per_matrix()
    return PetscLU(n, rows, cols, options=options), 2 * cholesky.bytes_per_matrix()


class SystemFactor(ABC):
    """The factorised constrained systems of P points."""

    failed: np.ndarray  # (P,) bool

    @abstractmethod
    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """Full-space loads (P, R, N) -> fluctuations w (P, R, N) that meet the constraints."""


class ConstrainedSystem(ABC):
    """Restriction, residual norms and factorisation of the constrained system of P points."""

    def __init__(self, model: RveModel, bc: RveBoundaryCondition, options=None, *, linear_solver: str = "direct",
                 operators: ElementOperators | None = None):
        self.model, self.bc, self.options, self.kind = model, bc, options, linear_solver
        self.operators = model.operators if operators is None else operators
        self.N = self.operators.num_dofs

    @abstractmethod
    def residual_norms(self, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(|R|_adm, |R|) of full-space residuals R (P, N): the part the constraints do not
        absorb, and the whole (boundary reactions included), (P,) each."""

    @abstractmethod
    def factorize(self, tangent: np.ndarray, dV: np.ndarray, points: np.ndarray | None = None) -> SystemFactor:
        """Factorise the systems of the tangents (P_all, num_cells, num_qp, n, n) of the points
        ``points`` (indices, default all; P of them), with the quadrature volumes dV
        (num_cells, num_qp), cells in the order of :attr:`operators`."""

    @property
    @abstractmethod
    def bytes_per_point(self) -> int:
        """Memory of one point's factorisation."""

    def destroy(self) -> None:
        """Free PETSc objects of the linear solver, if any."""
        self.linear.destroy()


def _element_pairs(cell_dofs: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) indices (num_cells, k, k) of the element entries under a dof map ``index``."""
    mapped = index[cell_dofs]
    return np.broadcast_arrays(mapped[:, :, None], mapped[:, None, :])


def _lower_slots(I: np.ndarray, J: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slots of the lower-triangle entries (I >= J >= 0) of element entries (I, J): the slot of
    every entry (-1: none) and the (row, col) of every slot."""
    valid = (I >= 0) & (J >= 0) & (I >= J)
    key = np.where(valid, I.astype(np.int64) * size + J, -1)
    slots, _, target = unique_keys(key[valid])
    slot = np.full(key.shape, -1, dtype=np.int64)
    slot[valid] = target
    rows, cols = np.divmod(slots, size)
    return slot, rows, cols


# ---------------------------------------------------------------------- periodic / affine


class _ProlongationFactor(SystemFactor):
    def __init__(self, system: ProlongationSystem, factor):
        self.system, self.factor, self.failed = system, factor, factor.failed

    def solve(self, rhs):
        s = self.system
        r = s.restrict(rhs.reshape(-1, s.N)).reshape(*rhs.shape[:2], -1)
        x = self.factor.solve(r)
        w = np.zeros(rhs.shape)
        w[:, :, s.free] = x[:, :, s.columns[s.free]]
        return w


class ProlongationSystem(ConstrainedSystem):
    """K = P^T A P for w = P x (periodic or affine BC)."""

    def __init__(self, model: RveModel, bc: RveBoundaryCondition, options=None, *, linear_solver: str = "direct",
                 operators: ElementOperators | None = None):
        super().__init__(model, bc, options, linear_solver=linear_solver, operators=operators)
        self.columns = bc.columns
        self.free = np.flatnonzero(self.columns >= 0)
        M = bc.size
        self.restrict = Scatter(self.columns, M)  # R (P, N) -> P^T R (P, M)
        I, J = _element_pairs(self.operators.cell_dofs, self.columns)
        slot, rows, cols = _lower_slots(I, J, M)  # K is symmetric: its lower triangle
        self.assemble_matrix = MatrixSlots(self.operators, slot, len(rows))
        self.linear, self._factor_bytes = matrix_solver(
            M, rows, cols, options, kind=self.kind, block_size=bc.nodes.bs,
            near_null=bc.near_null_space() if self.kind == "iterative" else None)

    @property
    def bytes_per_point(self) -> int:
        return self._factor_bytes + 8 * (self.assemble_matrix.size + self.N * self.model.physics.n_comp)

    def residual_norms(self, R):
        return np.linalg.norm(self.restrict(R), axis=1), np.linalg.norm(R, axis=1)

    def factorize(self, tangent, dV, points=None):
        values = self.assemble_matrix(tangent, points=points, dV=dV)
        return _ProlongationFactor(self, self.linear.factorize(values, interleaved=True))


# ---------------------------------------------------------------------- traction


class _TractionFactor(SystemFactor):
    def __init__(self, system: TractionSystem, tangent, factor, A_qp, Z, S_inv, scale, failed):
        self.system, self.tangent, self.factor = system, tangent, factor
        self.A_qp, self.Z, self.S_inv, self.scale, self.failed = A_qp, Z, S_inv, scale, failed

    def _eliminate(self, f: np.ndarray, c: np.ndarray) -> np.ndarray:
        """w with A w + B^T lambda = f, B w = c, by block elimination; f (P, R, N), c (P, R, m)."""
        s = self.system
        r = len(s.p)
        y = self.factor.solve(f[:, :, s.q])
        g = np.concatenate([
            f[:, :, s.p] - np.einsum("pqa,pRq->pRa", self.A_qp, y),
            self.scale[:, None, None] * (c - np.einsum("mq,pRq->pRm", s.Bq, y)),
        ], axis=2)
        z = np.einsum("pij,pRj->pRi", self.S_inv, g)
        w = np.empty(f.shape)
        w[:, :, s.p] = z[:, :, :r]
        w[:, :, s.q] = y - np.einsum("pjq,pRj->pRq", self.Z, z)
        return w

    def solve(self, rhs):
        s = self.system
        P, R, N = rhs.shape
        # A load in the range of B^T is taken by the multipliers alone and does not move w:
        # solving with its projection keeps the error relative to what moves w.
        f = s.project(rhs)
        w = self._eliminate(f, np.zeros((P, R, len(s.B))))
        ops = s.operators
        strain = ops.strain(w.reshape(P * R, N)).reshape(P, R, *self.tangent.shape[1:-1])
        flux = np.einsum("pcqij,pRcqj->pRcqi", self.tangent, strain, optimize=True)
        Aw = ops.residual(flux.reshape(P * R, *flux.shape[2:])).reshape(P, R, N)
        return w + self._eliminate(s.project(f - Aw), -w @ s.B.T)


class TractionSystem(ConstrainedSystem):
    """[[A, B^T], [B, 0]] by block elimination around the rigid-mode dofs (see module doc)."""

    def __init__(self, model: RveModel, bc: TractionBC, options=None, *, linear_solver: str = "direct",
                 operators: ElementOperators | None = None):
        super().__init__(model, bc, options, linear_solver=linear_solver, operators=operators)
        N = self.N
        self.B = bc.B  # (m, N) constraint rows
        self._BBt_inv = np.linalg.inv(self.B @ self.B.T)
        self.p = rigid_mode_dofs(model)
        self.q = np.setdiff1d(np.arange(N), self.p)
        self.Bq, self.Bp = self.B[:, self.q], self.B[:, self.p]
        r, Nq = len(self.p), len(self.q)
        q_index = np.full(N, -1)
        q_index[self.q] = np.arange(Nq)
        p_index = np.full(N, -1)
        p_index[self.p] = np.arange(r)
        cell_dofs = self.operators.cell_dofs
        Iq, Jq = _element_pairs(cell_dofs, q_index)
        Ip, Jp = _element_pairs(cell_dofs, p_index)
        # One slot array: the lower triangle of A_qq, then A_qp (Nq x r) and A_pp (r x r), dense.
        slot, rows, cols = _lower_slots(Iq, Jq, Nq)
        self.num_qq = len(rows)
        self.qq_diagonal = np.flatnonzero(rows == cols)
        slot = np.where((Iq >= 0) & (Jp >= 0), self.num_qq + Iq * r + Jp, slot)
        slot = np.where((Ip >= 0) & (Jp >= 0), self.num_qq + Nq * r + Ip * r + Jp, slot)
        self.assemble_matrix = MatrixSlots(self.operators, slot, self.num_qq + Nq * r + r * r)
        # Iterative: A_qq solved inside the full space (the p rows held), whose node blocks
        # and rigid modes GAMG needs.
        self.linear, self._factor_bytes = matrix_solver(
            Nq, rows, cols, options, kind=self.kind, block_size=bc.nodes.bs,
            near_null=bc.near_null_space() if self.kind == "iterative" else None, embed=(self.q, N))

    @property
    def bytes_per_point(self) -> int:
        extra = len(self.q) * (len(self.p) + self.B.shape[0]) * 2 + self.N * self.model.physics.n_comp
        return self._factor_bytes + 8 * (self.assemble_matrix.size + extra)

    def project(self, R: np.ndarray) -> np.ndarray:
        """R - B^T (B B^T)^-1 B R: the part of loads (..., N) that the multipliers do not take."""
        return R - ((R @ self.B.T) @ self._BBt_inv.T) @ self.B

    def residual_norms(self, R):
        return np.linalg.norm(self.project(R), axis=1), np.linalg.norm(R, axis=1)

    def factorize(self, tangent, dV, points=None):
        if points is not None:
            tangent = tangent[points]
        tangent = tangent * dV[None, :, :, None, None]
        P = len(tangent)
        values = self.assemble_matrix(tangent)  # (slots, P)
        factor = self.linear.factorize(values[: self.num_qq], interleaved=True)
        r, Nq = len(self.p), len(self.q)
        A_qp = values[self.num_qq : self.num_qq + Nq * r].T.reshape(P, Nq, r)
        A_pp = values[self.num_qq + Nq * r :].T.reshape(P, r, r)
        # Constraint rows scaled to the stiffness (only the multipliers change): a balanced S.
        diagonal = np.abs(values[self.qq_diagonal]).max(axis=0)
        scale = np.maximum(diagonal, np.abs(np.einsum("pii->pi", A_pp)).max(axis=1)) / np.abs(self.B).max()
        Bq = scale[:, None, None] * self.Bq
        rhs = np.concatenate([A_qp.transpose(0, 2, 1), Bq], axis=1)
        Z = factor.solve(rhs)  # A_qq^-1 [A_qp, s B_q^T], as rows (P, r + m, Nq)
        coupling = np.concatenate([A_qp, Bq.transpose(0, 2, 1)], axis=2)  # (P, Nq, r + m)
        S = np.zeros((P, r + len(self.B), r + len(self.B)))
        S[:, :r, :r] = A_pp
        S[:, :r, r:] = scale[:, None, None] * self.Bp.T
        S[:, r:, :r] = scale[:, None, None] * self.Bp
        S -= np.einsum("pqi,pjq->pij", coupling, Z)
        failed = factor.failed.copy()
        S_inv = np.zeros_like(S)
        failed |= ~np.isfinite(S).reshape(P, -1).all(axis=1)  # an iterative solve of Z failed
        for i in range(P):  # tiny dense systems; a singular one fails that point only
            if not failed[i]:
                try:
                    S_inv[i] = np.linalg.inv(S[i])
                except np.linalg.LinAlgError:
                    failed[i] = True
        return _TractionFactor(self, tangent, factor, A_qp, Z, S_inv, scale, failed)


def make_constrained_system(model: RveModel, bc: RveBoundaryCondition, options=None, *,
                            linear_solver: str = "direct",
                            operators: ElementOperators | None = None) -> ConstrainedSystem:
    """The array form of a boundary condition object (``options``: PETSc options of the LU
    used for large factors, or of the iterative solver; ``operators``: the element strain
    operators whose cell order the tangents follow, default the model's)."""
    cls = TractionSystem if isinstance(bc, TractionBC) else ProlongationSystem
    return cls(model, bc, options, linear_solver=linear_solver, operators=operators)
