"""`fe2 run` studies: a macro specimen, its constitutive source, supports, loads and steps."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from fe2.config.base import ConfigModel, Limits, load_config
from fe2.config.materials import Phase, check_law, check_phases, with_default_laws
from fe2.config.rve import (
    BATCH_DESCRIPTION, LINEAR_SOLVER_DESCRIPTION, Batch, LinearSolver, MeshSource, NewtonConfig, SolverOptions,
    existing_file,
)
from fe2.meshing.macro import MacroMeshSpec


class MacroMeshSource(ConfigModel):
    """The macro mesh: a gmsh file with named boundary groups, or a specimen generator."""

    file: Path | None = Field(None, description="gmsh .msh file, relative to the config file")
    generate: MacroMeshSpec | None = Field(None, description="parameters of a specimen generator")

    @field_validator("file")
    @classmethod
    def _exists(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        return existing_file(path, info)

    @model_validator(mode="after")
    def _one_source(self) -> MacroMeshSource:
        if (self.file is None) == (self.generate is None):
            raise ValueError("give exactly one of 'file' and 'generate'")
        return self


class MacroOptions(ConfigModel):
    """The macro discretisation."""

    mesh: MacroMeshSource
    degree: int = Field(1, ge=1, le=2, description="Lagrange degree of the macro displacement")


class RveSource(ConfigModel):
    """FE²: an RVE at every macro quadrature point."""

    mesh: MeshSource
    phases: dict[str, Phase] = Field(min_length=1, description="RVE phase name -> material")
    bc: Literal["periodic", "affine", "traction"] = Field("periodic", description="RVE boundary condition")
    degree: int = Field(1, ge=1, le=3, description="Lagrange degree of the RVE fluctuation")
    batch: Batch = Field("auto", description=BATCH_DESCRIPTION)
    linear_solver: LinearSolver = Field("auto", description=LINEAR_SOLVER_DESCRIPTION)
    coupling: Literal["auto", "concurrent", "hierarchical"] = Field(
        "auto",
        description="auto: hierarchical (effective tensor computed once) when every RVE phase is "
        "linear and the strain small, else concurrent (an RVE solve per point and iteration)",
    )
    solver: SolverOptions = SolverOptions()


class MaterialSource(ConfigModel):
    """The constitutive source of the macro problem: exactly one of law, phases, rve."""

    law: Phase | None = Field(None, description="one closed-form law everywhere (no tag)")
    phases: dict[str, Phase] | None = Field(
        None, description="closed-form laws per macro cell tag (heterogeneous single-scale runs)"
    )
    rve: RveSource | None = Field(None, description="FE²: the RVE of every macro point")

    @model_validator(mode="after")
    def _one_source(self) -> MaterialSource:
        given = [k for k in ("law", "phases", "rve") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("material: give exactly one of 'law', 'phases' and 'rve'")
        return self


class Plane(ConfigModel):
    """Boundary facets on the plane x_axis = value (to a relative tolerance of 1e-8)."""

    axis: Literal["x", "y", "z"]
    value: float


class _OnBoundary(ConfigModel):
    boundary: str | None = Field(None, description="name of a boundary group of the mesh")
    plane: Plane | None = Field(None, description="or: the boundary facets on a plane")

    @model_validator(mode="after")
    def _one_selector(self):
        if (self.boundary is None) == (self.plane is None):
            raise ValueError("give exactly one of 'boundary' and 'plane'")
        return self

    @property
    def label(self) -> str:
        return self.boundary if self.boundary is not None else f"{self.plane.axis}={self.plane.value:g}"


class DirichletConfig(_OnBoundary):
    """Prescribed displacement (its value at load factor 1)."""

    component: Literal["x", "y", "z", "all"] = Field("all", description="displacement component")
    value: float = Field(0.0, description="displacement at load factor 1, length units")


class TractionConfig(_OnBoundary):
    """Surface traction (force per area, at load factor 1)."""

    traction: list[float] = Field(description="traction vector, d components")


class LoadsConfig(ConfigModel):
    """External loads, scaled by the load factor."""

    tractions: list[TractionConfig] = Field(default_factory=list)
    body_force: list[float] | None = Field(None, description="force per volume, d components")


class MacroSolver(ConfigModel):
    """Macro Newton, linear solver and cut-back."""

    newton: NewtonConfig = NewtonConfig()
    petsc_options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="PETSc options of the macro solve (default MUMPS LU)"
    )
    max_cutbacks: int = Field(6, ge=0, le=20, description="halvings of a load step before giving up")


class ParallelConfig(ConfigModel):
    """How the RVE work is spread over the MPI ranks (FE², concurrent coupling)."""

    balancing: Literal["off", "static", "dynamic"] = Field(
        "dynamic",
        description="off: each rank solves the RVEs of its own macro points; static: equal "
        "point counts per rank; dynamic: after every load step, points (with their state) are "
        "re-assigned from their measured cost",
    )

    ranks_per_rve: int = Field(
        1, ge=1, le=1_000_000,
        description="ranks that solve one RVE together (its mesh distributed over them); the "
        "ranks are split into groups of that many, and the RVEs of the macro points are shared "
        "out (and balanced) between the groups; must divide the number of ranks",
    )

    @field_validator("balancing", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        return "off" if value is False else value  # YAML 1.1 reads a bare `off` as false


class OutputConfig(ConfigModel):
    """What is written besides history.csv and summary.json."""

    fields_every: int = Field(
        1, ge=0, description="write the XDMF fields every N steps (0: the last step only)"
    )
    probes: dict[str, list[float]] = Field(
        default_factory=dict,
        description="name -> position (d coordinates): the RVE fields of the macro quadrature "
        "point nearest to it go to rve_<name>.xdmf when the fields are written (FE², concurrent)",
    )

    @field_validator("probes")
    @classmethod
    def _file_names(cls, probes: dict[str, list[float]]) -> dict[str, list[float]]:
        bad = [name for name in probes if not re.fullmatch(r"[A-Za-z0-9_-]+", name)]
        if bad:
            raise ValueError(f"probe names become file names: use letters, digits, '_' and '-' (not {bad[0]!r})")
        return probes


class CheckpointConfig(ConfigModel):
    """Restart files in OUTPUT/checkpoints (`fe2 run --restart` continues from the newest)."""

    every: int = Field(
        1, ge=0,
        description="write a checkpoint every N load steps and after the last one (0: never); "
        "only the newest complete checkpoint is kept",
    )


#: Sections that may change when a run is restarted from a checkpoint (``steps`` only by
#: appending load factors).
RESTART_SAFE = ("steps", "parallel", "output", "checkpoint", "limits")


class RunConfig(ConfigModel):
    """A macro (FE² or single-scale) study: `fe2 run`."""

    physics: Literal["elasticity", "finite_strain"] = Field(
        description="macro kinematics: small strain or finite strain (F = I + grad U)"
    )
    macro: MacroOptions
    material: MaterialSource
    boundary_conditions: list[DirichletConfig] = Field(min_length=1)
    loads: LoadsConfig = LoadsConfig()
    steps: int | list[float] = Field(
        10, description="number of equal load steps, or the list of load factors (increasing)"
    )
    solver: MacroSolver = MacroSolver()
    parallel: ParallelConfig = ParallelConfig()
    output: OutputConfig = OutputConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    limits: Limits = Limits()

    @model_validator(mode="before")
    @classmethod
    def _default_laws(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("material"), dict):
            return data
        physics, material = data.get("physics"), dict(data["material"])
        if isinstance(material.get("law"), dict):
            material["law"] = with_default_laws({"law": material["law"]}, physics)["law"]
        if "phases" in material:
            material["phases"] = with_default_laws(material["phases"], physics)
        if isinstance(material.get("rve"), dict) and "phases" in material["rve"]:
            material["rve"] = {**material["rve"], "phases": with_default_laws(material["rve"]["phases"], physics)}
        return {**data, "material": material}

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        material = self.material
        if material.law is not None:
            check_law(material.law, self.physics, key="material.law")
        if material.phases is not None:
            check_phases(material.phases, self.physics, key="material.phases")
        if material.rve is not None:
            check_phases(material.rve.phases, self.physics, key="material.rve.phases")
        if isinstance(self.steps, list):
            if not self.steps or any(b <= a for a, b in zip([0.0, *self.steps], self.steps)):
                raise ValueError("steps: load factors must be positive and increasing")
        elif self.steps < 1:
            raise ValueError("steps: the number of steps must be >= 1")
        count = len(self.steps) if isinstance(self.steps, list) else self.steps
        if count > self.limits.steps:
            raise ValueError(f"steps: {count} load steps; at most limits.steps = {self.limits.steps}")
        return self

    def study_identity(self) -> dict:
        """The config without the sections a restart may change (JSON-compatible)."""
        data = self.model_dump(mode="json")
        return {k: v for k, v in data.items() if k not in RESTART_SAFE}

    @property
    def load_factors(self) -> list[float]:
        if isinstance(self.steps, list):
            return list(self.steps)
        return [(k + 1) / self.steps for k in range(self.steps)]


def load_run_config(path: str | Path) -> RunConfig:
    """Read and validate a `fe2 run` study."""
    return load_config(RunConfig, path)
