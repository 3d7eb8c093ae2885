"""`fe2 run` studies: a macro specimen, its constitutive source, supports, loads and steps."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from fe2.physics import MACRO_PHYSICS_NAMES
from fe2.config.base import ConfigModel, Limits, load_config
from fe2.config.loading import (
    BUILTIN_AMPLITUDES, AmplitudeTable, RotationConfig, StepIncrement, ValueEntry, check_amplitudes,
    check_values, default_end_time, step_count, step_times, uses_time,
)
from fe2.config.materials import Phase, check_law, check_phases, with_default_laws
from fe2.config.rve import (
    BATCH_DESCRIPTION, LINEAR_SOLVER_DESCRIPTION, Batch, LinearSolver, MeshSource, NewtonConfig, SolverOptions,
    existing_file,
)
from fe2.config.scale_separation import ScaleSeparationConfig
from fe2.meshing.macro_specs import MacroMeshSpec


class MacroMeshSource(ConfigModel):
    """The macro mesh: a mesh file with named boundary groups, or a specimen generator."""

    file: Path | None = Field(
        None, description="mesh file with named boundary sets (gmsh .msh, Abaqus .inp, Medit .mesh, "
        "VTK .vtu/.vtk, XDMF .xdmf), relative to the config file",
    )
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


_AMPLITUDE = Field(
    None, description="name of an amplitude (see `amplitudes`); default: ramp, or constant for a "
    "value that depends on t",
)


class DirichletConfig(_OnBoundary):
    """Prescribed displacement (temperature for conduction): a value (times an amplitude), or a
    rigid rotation."""

    component: Literal["x", "y", "z", "all"] = Field(
        "all", description="displacement component ('all' for a temperature)"
    )
    value: ValueEntry | list[ValueEntry] = Field(
        0.0, description="displacement (length units) or temperature at amplitude 1: a number or an "
        "expression of x, y, z, t; with component 'all' also a list of one entry per field component",
    )
    amplitude: str | None = _AMPLITUDE
    rotation: RotationConfig | None = Field(None, description="rigid rotation of the boundary (component 'all')")

    _values = field_validator("value")(classmethod(lambda cls, v: check_values(v)))

    @model_validator(mode="after")
    def _rotation_alone(self) -> DirichletConfig:
        if self.rotation is not None and (self.component != "all" or self.value != 0.0):
            raise ValueError("rotation: give it with component 'all' and no value")
        if isinstance(self.value, list) and self.component != "all":
            raise ValueError("value: a list needs component 'all' (one entry per component)")
        return self

    def depends_on_time(self) -> bool:
        return uses_time(self.rotation.angle if self.rotation is not None else self.value)

    def is_zero(self) -> bool:
        """A fixed support: the value is 0 (numbers only, no rotation)."""
        values = self.value if isinstance(self.value, list) else [self.value]
        return self.rotation is None and all(not isinstance(v, str) and v == 0 for v in values)


class TractionConfig(_OnBoundary):
    """Surface traction (force per area; an inward normal heat flux for conduction) times an
    amplitude."""

    traction: list[ValueEntry] = Field(
        description="traction vector at amplitude 1, d numbers or expressions of x, y, z, t "
        "(conduction: one entry, the heat flux into the body per area)"
    )
    amplitude: str | None = _AMPLITUDE

    _values = field_validator("traction")(classmethod(lambda cls, v: check_values(v)))

    def depends_on_time(self) -> bool:
        return uses_time(self.traction)


class LoadsConfig(ConfigModel):
    """External loads, each times an amplitude."""

    tractions: list[TractionConfig] = Field(default_factory=list)
    body_force: list[ValueEntry] | None = Field(
        None, description="force per volume at amplitude 1, d numbers or expressions "
        "(conduction: one entry, the heat source per volume)"
    )
    body_force_amplitude: str | None = _AMPLITUDE

    _values = field_validator("body_force")(classmethod(lambda cls, v: check_values(v) if v is not None else v))


class MacroSolver(ConfigModel):
    """Macro Newton, linear solver and cut-back."""

    newton: NewtonConfig = NewtonConfig()
    petsc_options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="PETSc options of the macro solve (default MUMPS LU)"
    )
    max_cutbacks: int = Field(6, ge=0, le=20, description="halvings of a load step before giving up")
    predictor: bool = Field(
        True, description="consistent predictor: the first iteration of a step solves the "
        "linearised problem with the boundary increment as a lifting",
    )
    line_search: Literal["backtracking", "secant", "off"] = Field(
        "secant", description="line search on the macro residual (Newton iterations after the predictor)"
    )


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
    scale_separation: ScaleSeparationConfig | None = Field(
        None, description="scale-separation indicator eps_L at every macro point (fields, history)"
    )
    quadrature_fields: bool = Field(
        False, description="also write the fields at the macro quadrature points (a point cloud, "
        "quadrature_fields.xdmf) whenever the fields are written"
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
#: appending times; ``end_time`` and ``amplitudes`` only after the restart time).
RESTART_SAFE = ("steps", "end_time", "amplitudes", "parallel", "output", "checkpoint", "limits")


class RunConfig(ConfigModel):
    """A macro (FE² or single-scale) study: `fe2 run`."""

    physics: Literal[MACRO_PHYSICS_NAMES] = Field(  # type: ignore[valid-type]
        description="macro field problem: small strain, finite strain (F = I + grad U), or "
        "stationary conduction / Darcy flow (temperature T, -div q = s)"
    )
    macro: MacroOptions
    material: MaterialSource
    boundary_conditions: list[DirichletConfig] = Field(min_length=1)
    loads: LoadsConfig = LoadsConfig()
    steps: int | list[float] | StepIncrement = Field(
        10, description="number of equal time steps from 0 to end_time, the list of times "
        "(increasing), or {max_increment: h} (to end_time, through the amplitudes' break points)",
    )
    end_time: float | None = Field(
        None, gt=0, description="time T at which the default ramp amplitude reaches 1 and the "
        "equal steps end (default: the last time of the amplitudes, else 1)",
    )
    amplitudes: dict[str, AmplitudeTable] = Field(
        default_factory=dict, description="name -> [[time, factor], ...]: piecewise-linear amplitudes",
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
                raise ValueError("steps: times must be positive and increasing")
        elif isinstance(self.steps, int) and self.steps < 1:
            raise ValueError("steps: the number of steps must be >= 1")
        check_amplitudes(self.amplitudes)
        known = set(self.amplitudes) | set(BUILTIN_AMPLITUDES)
        used = [(f"boundary_conditions[{i}].amplitude", bc.amplitude) for i, bc in enumerate(self.boundary_conditions)]
        used += [(f"loads.tractions[{i}].amplitude", t.amplitude) for i, t in enumerate(self.loads.tractions)]
        used += [("loads.body_force_amplitude", self.loads.body_force_amplitude)]
        for key, name in used:
            if name is not None and name not in known:
                raise ValueError(f"{key}: no amplitude {name!r} (defined: {sorted(known)})")
        count = step_count(self.steps, self.resolved_end_time, self._break_points())
        if count > self.limits.steps:
            what = "end_time / max_increment gives" if isinstance(self.steps, StepIncrement) else "asks for"
            raise ValueError(f"steps: {what} {count:.6g} time steps; at most limits.steps = {self.limits.steps}")
        return self

    def study_identity(self) -> dict:
        """The config without the sections a restart may change (JSON-compatible)."""
        data = self.model_dump(mode="json")
        return {k: v for k, v in data.items() if k not in RESTART_SAFE}

    @property
    def resolved_end_time(self) -> float:
        """T, the end of the pseudo-time."""
        return default_end_time(self.end_time, self.amplitudes)

    def _break_points(self) -> list[float]:
        return [t for table in self.amplitudes.values() for t, _ in table]

    @property
    def times(self) -> list[float]:
        """The times of the steps (at most ``limits.steps``, checked at validation)."""
        return step_times(self.steps, self.resolved_end_time, self._break_points())

    def amplitude_names(self) -> list[str]:
        """The amplitude of every prescribed value, in order: dirichlet (but zero values),
        tractions, body force (default: ramp, or constant for a value that depends on t)."""
        def name(given: str | None, depends_on_time: bool) -> str:
            return given if given is not None else ("constant" if depends_on_time else "ramp")

        names = [name(bc.amplitude, bc.depends_on_time()) for bc in self.boundary_conditions
                 if bc.amplitude is not None or not bc.is_zero()]
        names += [name(t.amplitude, t.depends_on_time()) for t in self.loads.tractions]
        if self.loads.body_force is not None:
            names.append(name(self.loads.body_force_amplitude, uses_time(self.loads.body_force)))
        return names

    def amplitude_tables(self, *, used: bool = True) -> dict[str, list[list[float]]]:
        """The amplitudes by name: the built-in ramp (0 at 0, 1 at T) and constant, and the
        tables of ``amplitudes``; ``used``: only those a nonzero value uses."""
        tables = {"ramp": [[0.0, 0.0], [self.resolved_end_time, 1.0]], "constant": [[0.0, 1.0]]}
        tables.update({k: [list(p) for p in v] for k, v in self.amplitudes.items()})
        if not used:
            return tables
        return {name: tables[name] for name in dict.fromkeys(self.amplitude_names())}


def load_run_config(path: str | Path) -> RunConfig:
    """Read and validate a `fe2 run` study."""
    return load_config(RunConfig, path)
