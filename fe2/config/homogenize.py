"""`fe2 homogenize` studies: an RVE, its phases, and an effective tensor or a load path."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from fe2.physics import PHYSICS, PHYSICS_NAMES
from fe2.config.base import ConfigModel, Limits, load_config
from fe2.config.materials import Phase, WithDefaultLaws, check_phases
from fe2.config.rve import MeshSource, RveOptions, SolverOptions

Matrix = list[list[float]] | list[float]
#: Per component: {11: 0.01, 22: 0.0} (tensor components; YAML may read the labels as ints).
Components = dict[str | int, float]
Prescribed = Matrix | Components

_STRAIN_DOC = (
    "the strain tensor (elasticity, d x d, symmetric), the deformation gradient "
    "(finite_strain, d x d) or the temperature gradient (conduction, d); or per component a "
    "mapping {11: value, ...} (with `stress` for the other components)"
)
_STRESS_DOC = (
    "prescribed stress: the stress tensor (elasticity), the first Piola-Kirchhoff stress "
    "(finite_strain) or the flux (conduction), in full; or per component a mapping "
    "{22: value, ...}: these components are stress-controlled, their strains free"
)


class PathSegment(ConfigModel):
    """One ramp of a load path: from the state at its start to its target in `steps` steps."""

    strain: Prescribed | None = Field(None, description="target strain: " + _STRAIN_DOC)
    stress: Prescribed | None = Field(None, description=_STRESS_DOC)
    steps: int = Field(1, ge=1, le=100_000, description="number of steps of the ramp")


class MixedNewtonConfig(ConfigModel):
    """Outer Newton on the free strains of the stress-controlled components."""

    rtol: float = Field(
        1e-9, gt=0.0, lt=1.0,
        description="converged when |Sigma_f - Sigma_f*| <= atol + rtol * max(|Sigma|, |Sigma| at the start of the step)",
    )
    atol: float = Field(0.0, ge=0.0, description="absolute tolerance on the stress residual")
    max_iterations: int = Field(25, ge=1, le=1000, description="iterations before the step counts as failed")


class LoadPath(ConfigModel):
    """A sequence of macro strains and/or stresses applied to one RVE (instead of the
    effective tensor)."""

    strain: Prescribed | None = Field(
        None,
        description="final macro strain, reached linearly in `steps` steps from the undeformed "
        "state: " + _STRAIN_DOC,
    )
    stress: Prescribed | None = Field(
        None, description="final macro stress (with or instead of `strain`): " + _STRESS_DOC
    )
    steps: int = Field(10, ge=1, le=100_000, description="number of steps of the ramp to `strain`")
    strains: list[Matrix] | None = Field(
        None, min_length=1, description="explicit sequence of macro strains (instead of strain/steps)"
    )
    segments: list[PathSegment] | None = Field(
        None, min_length=1,
        description="sequence of ramps (each `strain` and/or `stress`, `steps`), e.g. loading "
        "and unloading under stress control",
    )
    fields_at: list[int] | None = Field(
        None, description="steps (1-based) whose RVE fields are written (default: the last)"
    )
    max_cutbacks: int = Field(
        4, ge=0, le=10, description="times a step that fails may be halved (with rollback)"
    )
    mixed_newton: MixedNewtonConfig = Field(
        MixedNewtonConfig(), description="tolerances of the stress control"
    )

    @model_validator(mode="after")
    def _one_source(self) -> LoadPath:
        ramp = self.strain is not None or self.stress is not None
        if ramp + (self.strains is not None) + (self.segments is not None) != 1:
            raise ValueError(
                "load_path: give exactly one of 'strain' and/or 'stress' (with 'steps'), "
                "'strains' and 'segments'"
            )
        return self

    @property
    def num_steps(self) -> int:
        if self.strains is not None:
            return len(self.strains)
        if self.segments is not None:
            return sum(s.steps for s in self.segments)
        return self.steps


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


class HomogenizeConfig(WithDefaultLaws):
    """A homogenisation study (`fe2 homogenize`): effective tensor, or a load path."""

    physics: Literal[PHYSICS_NAMES] = Field(  # type: ignore[valid-type]
        description="field problem on the RVE; generalized_plane_strain: a 2D section of a "
        "body uniform along x3 (e.g. a fibre cross-section) with the out-of-plane displacement "
        "as a third component: full 3D strains, stresses and the 6 x 6 tensor"
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

    @model_validator(mode="after")
    def _consistent(self) -> HomogenizeConfig:
        check_phases(self.phases, self.physics)
        generate = self.mesh.generate
        if generate is not None and generate.dim not in PHYSICS[self.physics].mesh_dims:
            raise ValueError(
                f"mesh.generate.type: {generate.type} makes a {generate.dim}D mesh; physics "
                f"{self.physics} needs a 2D RVE mesh (a cross-section normal to x3)"
            )
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
