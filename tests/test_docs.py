"""docs/config.md documents every configuration key and mesh generator parameter."""

from pathlib import Path

import pytest

from fe2.config import (
    LAW_PHYSICS,
    PHASE_MODELS,
    HomogenizeConfig,
    LoadPath,
    MeshSource,
    NewtonConfig,
    RveOptions,
    SolverOptions,
)
from fe2.config.homogenize import MixedNewtonConfig, PathSegment
from fe2.config.run import (
    CheckpointConfig,
    DirichletConfig,
    LoadsConfig,
    MacroMeshSource,
    MacroOptions,
    MacroSolver,
    MaterialSource,
    OutputConfig,
    ParallelConfig,
    Plane,
    RunConfig,
    RveSource,
    TractionConfig,
)
from fe2.config.base import Limits
from fe2.config.loading import RotationConfig, StepIncrement
from fe2.config.materials import PHASE_PARTS
from fe2.config.rve_size import RveSizeConfig, RveSizeOptions
from fe2.config.scale_separation import ScaleSeparationConfig
from fe2.meshing.macro import MACRO_MESH_SPECS
from fe2.meshing.specs import MESH_SPECS
from fe2.meshing.windows import RandomMediumSpec

DOC = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text()
MODELS = [
    HomogenizeConfig, MeshSource, RveOptions, SolverOptions, NewtonConfig, LoadPath,
    PathSegment, MixedNewtonConfig,
    *PHASE_MODELS, *PHASE_PARTS, *MESH_SPECS.values(),
    RunConfig, MacroOptions, MacroMeshSource, MaterialSource, RveSource, DirichletConfig,
    TractionConfig, LoadsConfig, Plane, MacroSolver, OutputConfig, ParallelConfig, CheckpointConfig,
    RotationConfig, StepIncrement, Limits,
    *MACRO_MESH_SPECS.values(),
    RveSizeConfig, RveSizeOptions, RandomMediumSpec, ScaleSeparationConfig,
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_field_is_documented(model):
    missing = [name for name in model.model_fields if f"`{name}`" not in DOC]
    assert not missing, f"{model.__name__}: undocumented keys {missing}"


def test_every_law_and_physics_is_documented():
    for name in [*LAW_PHYSICS, *set(LAW_PHYSICS.values())]:
        assert f"`{name}`" in DOC, name


def test_every_generator_is_documented():
    for name in [*MESH_SPECS, *MACRO_MESH_SPECS]:
        assert f"`{name}`" in DOC, name
