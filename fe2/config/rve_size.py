"""`fe2 homogenize` RVE-size studies: apparent tensors of random windows of growing size."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from fe2.config.base import ConfigModel, Limits, load_config
from fe2.config.materials import Phase, WithDefaultLaws, check_phases
from fe2.config.rve import SolverOptions
from fe2.meshing.specs import SIMPLICES_PER_CUBE
from fe2.meshing.windows import RandomMediumSpec
from fe2.physics import PHYSICS

BC = Literal["affine", "periodic", "traction"]


class RveSizeOptions(ConfigModel):
    """The `rve_size` section: the medium, the window sizes and realisations, the BCs."""

    microstructure: RandomMediumSpec = Field(
        description="statistics of the random medium and mesh of its windows (lengths in "
        "inclusion diameters)"
    )
    sizes: list[float] = Field(
        min_length=2, max_length=50,
        description="window edges L_1 < ... < L_k [inclusion diameters], each >= 2",
    )
    realisations: int = Field(ge=2, le=100_000, description="realisations per size")
    bcs: list[BC] = Field(
        default_factory=lambda: ["affine", "periodic", "traction"],
        min_length=1, description="boundary conditions (periodic: on the periodic variant)",
    )
    tolerance: float = Field(
        0.05, gt=0.0, lt=1.0,
        description="relative tolerance of the recommended RVE size (scatter of one window "
        "and affine-traction gap)",
    )
    seed: int = Field(0, ge=0, le=2**63 - 1, description="entropy of the numpy SeedSequence")
    degree: int = Field(1, ge=1, le=3, description="Lagrange degree of the fluctuation")
    save_meshes: int = Field(
        1, ge=0, description="realisations per size whose window meshes are kept in windows/"
    )

    def estimated_cells(self) -> float:
        """Rough cell count of the largest window before meshing (checked against
        ``limits.cells``), as for the RVE generators."""
        medium = self.microstructure
        h = min(medium.mesh_size, medium.inclusion_mesh_size or medium.mesh_size)
        return SIMPLICES_PER_CUBE[medium.dim] * (max(self.sizes) / h) ** medium.dim

    @field_validator("sizes")
    @classmethod
    def _increasing(cls, sizes: list[float]) -> list[float]:
        if any(not (2.0 <= s <= 1000.0) for s in sizes):
            raise ValueError(f"every size must be in [2, 1000] inclusion diameters (got {sizes})")
        if any(b <= a for a, b in zip(sizes, sizes[1:])):
            raise ValueError(f"sizes must increase (got {sizes})")
        return sizes

    @field_validator("bcs")
    @classmethod
    def _unique(cls, bcs: list[str]) -> list[str]:
        if len(set(bcs)) != len(bcs):
            raise ValueError(f"a boundary condition is listed twice (got {bcs})")
        return [bc for bc in ("affine", "periodic", "traction") if bc in bcs]


class RveSizeConfig(WithDefaultLaws):
    """An RVE-size study: `fe2 homogenize` of a config with an `rve_size` section."""

    physics: Literal["elasticity", "generalized_plane_strain", "finite_strain", "conduction"] = Field(
        description="field problem on the windows (generalized_plane_strain: discs only, the 6 x 6 "
        "tensor of fibre-section windows)"
    )
    phases: dict[str, Phase] = Field(
        min_length=2, max_length=2, description="the matrix (tag 1) and the inclusions (tag 2)"
    )
    rve_size: RveSizeOptions
    solver: SolverOptions = SolverOptions()
    limits: Limits = Limits()

    @model_validator(mode="after")
    def _consistent(self) -> RveSizeConfig:
        check_phases(self.phases, self.physics)
        if self.dim not in PHYSICS[self.physics].mesh_dims:
            raise ValueError(f"rve_size.microstructure.inclusions: physics {self.physics} needs 2D "
                             f"windows (discs), got {self.rve_size.microstructure.inclusions}")
        tags = sorted(p.tag for p in self.phases.values())
        if tags != [1, 2]:
            raise ValueError(f"phases: the windows have tags 1 (matrix) and 2 (inclusions); got {tags}")
        return self

    @property
    def dim(self) -> int:
        return self.rve_size.microstructure.dim

    def study_identity(self) -> dict:
        """What a window's apparent tensor depends on (finished tasks of another identity
        cannot be reused)."""
        data = self.model_dump(mode="json")
        options = data["rve_size"]
        return {
            "physics": data["physics"], "phases": data["phases"], "solver": data["solver"],
            "microstructure": options["microstructure"], "seed": options["seed"],
            "degree": options["degree"],
        }


def load_rve_size_config(path: str | Path) -> RveSizeConfig:
    """Read and validate an RVE-size study."""
    return load_config(RveSizeConfig, path)
