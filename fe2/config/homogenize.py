"""`fe2 homogenize` studies: an RVE, its phases, and an effective tensor or a load path."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from fe2.config.base import ConfigModel, Limits, load_config
from fe2.config.materials import Phase, check_phases, with_default_laws
from fe2.config.rve import MeshSource, RveOptions, SolverOptions

Matrix = list[list[float]] | list[float]


class LoadPath(ConfigModel):
    """A sequence of macro strains applied to one RVE (instead of the effective tensor)."""

    strain: Matrix | None = Field(
        None,
        description="final macro strain, reached linearly in `steps` steps from the undeformed "
        "state: the strain tensor (elasticity, d x d, symmetric), the deformation gradient "
        "(finite_strain, d x d) or the temperature gradient (conduction, d)",
    )
    steps: int = Field(10, ge=1, le=100_000, description="number of steps of the ramp to `strain`")
    strains: list[Matrix] | None = Field(
        None, min_length=1, description="explicit sequence of macro strains (instead of strain/steps)"
    )
    fields_at: list[int] | None = Field(
        None, description="steps (1-based) whose RVE fields are written (default: the last)"
    )
    max_cutbacks: int = Field(
        4, ge=0, le=10, description="times a step that fails may be halved (with rollback)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> LoadPath:
        if (self.strain is None) == (self.strains is None):
            raise ValueError("load_path: give exactly one of 'strain' (with 'steps') and 'strains'")
        return self

    @property
    def num_steps(self) -> int:
        return len(self.strains) if self.strains is not None else self.steps


class HomogenizeParallel(ConfigModel):
    """How the ranks of an `fe2 homogenize` run are used."""

    ranks_per_rve: Literal["auto"] | Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        "auto",
        description="ranks that solve one RVE together (its mesh distributed over them); the "
        "boundary conditions are shared out over the groups of that many ranks. auto: all "
        "ranks on one RVE (the BCs one after the other) when the RVE has at least as many "
        "dofs as rve.linear_solver: auto takes the iterative solver for, else 1 (each rank "
        "solves whole BCs)",
    )


class HomogenizeConfig(ConfigModel):
    """A homogenisation study (`fe2 homogenize`): effective tensor, or a load path."""

    physics: Literal["elasticity", "finite_strain", "conduction"] = Field(
        description="field problem on the RVE"
    )
    mesh: MeshSource
    phases: dict[str, Phase] = Field(min_length=1, description="phase name -> material")
    rve: RveOptions = RveOptions()
    solver: SolverOptions = SolverOptions()
    load_path: LoadPath | None = Field(
        None, description="apply a sequence of macro strains (nonlinear phases)"
    )
    parallel: HomogenizeParallel = HomogenizeParallel()
    limits: Limits = Limits()

    @model_validator(mode="before")
    @classmethod
    def _default_laws(cls, data: Any) -> Any:
        if isinstance(data, dict) and "phases" in data:
            data = {**data, "phases": with_default_laws(data["phases"], data.get("physics"))}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> HomogenizeConfig:
        check_phases(self.phases, self.physics)
        path = self.load_path
        if path is not None and path.num_steps > self.limits.steps:
            raise ValueError(
                f"load_path: {path.num_steps} steps; at most limits.steps = {self.limits.steps}"
            )
        if path is not None and path.fields_at is not None:
            bad = [s for s in path.fields_at if not 1 <= s <= path.num_steps]
            if bad:
                raise ValueError(
                    f"load_path.fields_at: steps {bad} are not in 1..{path.num_steps}"
                )
        return self


def load_homogenize_config(path: str | Path) -> HomogenizeConfig:
    """Read and validate a `fe2 homogenize` study."""
    return load_config(HomogenizeConfig, path)
