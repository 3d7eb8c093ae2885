"""Direct linear solver of RVE systems: one factorisation, many right-hand sides.

The only module of ``fe2.rve`` that configures PETSc solvers. Options are set under a unique
prefix, pushed to the global PETSc options database only while the KSP reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petsc4py import PETSc

from fe2.errors import ComputationError, InputError

#: Default: sparse direct LU with MUMPS. Measured here on a 3D periodic RVE (32k dofs), it
#: factorises 2.4x faster than MUMPS LDL^T (also with the SPD flag), and it takes the
#: indefinite saddle-point system of the traction BC as it is.
DEFAULT_OPTIONS: dict[str, Any] = {
    "ksp_type": "preonly",
    "pc_type": "lu",
    "pc_factor_mat_solver_type": "mumps",
}


class SolveError(ComputationError):
    """A linear solve did not converge (singular matrix, factorisation failure...)."""


class DirectSolver:
    """KSP wrapper with its own options prefix.

    Refactorising a matrix whose values changed but whose nonzero pattern did not reuses the
    symbolic factorisation (PETSc tracks the pattern).

    Args:
        comm: communicator of the matrices (``MPI.COMM_SELF`` for RVEs).
        prefix: unique PETSc options prefix, ending in '_'.
        options: PETSc options (without prefix) overriding :data:`DEFAULT_OPTIONS`.
    """

    def __init__(self, comm, *, prefix: str, options: Mapping[str, Any] | None = None):
        self.prefix = prefix
        self.ksp = PETSc.KSP().create(comm)
        self.ksp.setOptionsPrefix(prefix)
        merged = {**DEFAULT_OPTIONS, **(options or {})}
        database = PETSc.Options()
        for key, value in merged.items():
            database[prefix + key] = value
        try:
            self.ksp.setFromOptions()
            self.ksp.getPC().setFromOptions()
        except PETSc.Error as exc:
            reason = [line for line in str(exc).splitlines() if line.strip()][-1].strip()
            self.ksp.destroy()
            raise InputError(
                f"petsc_options: PETSc rejected {dict(options or {})}: {reason}"
            ) from None
        finally:
            for key in merged:
                database.delValue(prefix + key)

    def factorize(self, K: PETSc.Mat) -> None:
        """Set the operator and factorise it (collective on the matrix communicator)."""
        self.ksp.setOperators(K)
        try:
            self.ksp.setUp()
        except PETSc.Error as exc:
            raise SolveError(f"factorisation failed ({self.prefix}): {exc}") from None
        reason = self.ksp.getPC().getFailedReason()
        if reason != 0:
            raise SolveError(f"factorisation failed ({self.prefix}, PC failed reason {reason})")

    def solve(self, b: PETSc.Vec, x: PETSc.Vec) -> None:
        """x = K^-1 b; raises :class:`SolveError` if PETSc reports divergence."""
        self.ksp.solve(b, x)
        reason = self.ksp.getConvergedReason()
        if reason < 0:
            raise SolveError(f"linear solve diverged ({self.prefix}, KSP reason {reason})")

    def destroy(self) -> None:
        self.ksp.destroy()
