"""Config sections shared by RVE studies: the RVE mesh, boundary condition and solvers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from fe2.config.base import ConfigModel
from fe2.meshing.specs import MeshSpec

def existing_file(path: Path | None, info: ValidationInfo) -> Path | None:
    """Resolve ``path`` against the config's directory; it must be a file."""
    if path is None:
        return None
    base = (info.context or {}).get("base_dir", Path.cwd())
    path = (Path(base) / path).resolve()
    if not path.is_file():
        raise ValueError(f"no such mesh file: {path}")
    return path


class MeshSource(ConfigModel):
    """Where the RVE mesh comes from: a gmsh file, or a generator."""

    file: Path | None = Field(None, description="gmsh .msh file, relative to the config file")
    generate: MeshSpec | None = Field(None, description="parameters of a mesh generator")

    @field_validator("file")
    @classmethod
    def _exists(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        return existing_file(path, info)

    @model_validator(mode="after")
    def _one_source(self) -> MeshSource:
        if (self.file is None) == (self.generate is None):
            raise ValueError("give exactly one of 'file' and 'generate'")
        return self


#: ``batch`` of an RVE section: how the RVEs of one type are solved.
BATCH_DESCRIPTION = (
    "auto: RVEs of one type solved together in batches (vectorised constitutive updates and "
    "assembly, one batched sparse Cholesky), as many per batch as fit a memory budget "
    "(FE2_BATCH_MEMORY MiB, default 512; at most 1024 points, factorised in groups of 32); a number: at most that many per batch; "
    "off: one PETSc (MUMPS) solve per point, the reference path"
)
Batch = Literal["auto", "off"] | Annotated[int, Field(ge=1, le=100_000)]

#: ``linear_solver`` of an RVE section: how the RVE linear systems are solved.
LINEAR_SOLVER_DESCRIPTION = (
    "direct: sparse LU (MUMPS; batched Cholesky for small batched RVEs); iterative: CG with "
    "algebraic multigrid (GAMG) to |r| <= 1e-8 |b|, for large RVEs (memory and time close to "
    "linear in the dofs; a solve that does not converge fails the RVE); auto: iterative from "
    "30,000 dofs in 3D and 1,000,000 in 2D, unless solver.petsc_options ask for a direct "
    "solve (ksp_type: preonly, pc_type: lu/cholesky)"
)
LinearSolver = Literal["auto", "direct", "iterative"]


class RveOptions(ConfigModel):
    """RVE discretisation and boundary condition."""

    bc: Literal["periodic", "affine", "traction", "all"] = Field(
        "periodic", description="boundary condition; 'all' = the three plus Voigt/Reuss bounds"
    )
    degree: int = Field(1, ge=1, le=3, description="Lagrange degree of the fluctuation")
    batch: Batch = Field("auto", description=BATCH_DESCRIPTION)
    linear_solver: LinearSolver = Field("auto", description=LINEAR_SOLVER_DESCRIPTION)


class NewtonConfig(ConfigModel):
    """Newton tolerances of the RVE problems."""

    atol: float = Field(0.0, ge=0, description="absolute tolerance on the residual norm")
    rtol: float = Field(
        1e-10, gt=0, lt=1,
        description="tolerance relative to the norm of the boundary reaction forces",
    )
    max_iterations: int = Field(25, ge=1, description="Newton iterations before failure")


class SolverOptions(ConfigModel):
    """Newton and linear solver of the RVE problems."""

    newton: NewtonConfig = NewtonConfig()
    petsc_options: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="PETSc options without prefix, passed through unchanged, over the "
        "defaults of the linear solver (direct: preonly + LU with MUMPS; iterative: cg + gamg, "
        "ksp_rtol 1e-8, ksp_max_it 2000)",
    )
