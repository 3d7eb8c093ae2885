"""Study configuration: YAML -> validated, typed models (pydantic); see docs/config.md."""

from fe2.config.base import ConfigError, ConfigModel, load_config, load_yaml, validate
from fe2.config.homogenize import HomogenizeConfig, LoadPath, load_homogenize_config
from fe2.config.materials import (
    LAW_PHYSICS,
    PHASE_MODELS,
    ConductorPhase,
    ElasticPhase,
    J2Phase,
    NeoHookeanPhase,
    Phase,
)
from fe2.config.rve import MeshSource, NewtonConfig, RveOptions, SolverOptions
from fe2.config.run import RunConfig, load_run_config

__all__ = [
    "LAW_PHYSICS",
    "PHASE_MODELS",
    "ConductorPhase",
    "ConfigError",
    "ConfigModel",
    "ElasticPhase",
    "HomogenizeConfig",
    "J2Phase",
    "LoadPath",
    "MeshSource",
    "NeoHookeanPhase",
    "NewtonConfig",
    "Phase",
    "RunConfig",
    "RveOptions",
    "SolverOptions",
    "load_config",
    "load_homogenize_config",
    "load_run_config",
    "load_yaml",
    "validate",
]
