"""Phase laws in a config: one model per law, with the physics each belongs to."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from fe2.config.base import ConfigModel
from fe2.materials import J2Plasticity, LinearConductor, LinearElastic, Material, NeoHookean

_TAG = Field(None, description="cell tag (gmsh physical group) of the phase")
_E = Field(gt=0, description="Young's modulus, stress units (e.g. GPa)")
_NU = Field(gt=-1.0, lt=0.5, description="Poisson's ratio, in (-1, 0.5)")


class ElasticPhase(ConfigModel):
    """Isotropic linear elastic phase (plane strain in 2D)."""

    law: Literal["linear_elastic"] = "linear_elastic"
    tag: int | None = _TAG
    E: float = _E
    nu: float = _NU

    def material(self) -> Material:
        return LinearElastic(E=self.E, nu=self.nu)


class J2Phase(ConfigModel):
    """Small-strain von Mises plasticity with linear isotropic/kinematic hardening."""

    law: Literal["j2"] = "j2"
    tag: int | None = _TAG
    E: float = _E
    nu: float = _NU
    sigma_y: float = Field(gt=0, description="initial yield stress, stress units")
    H: float = Field(0.0, ge=0, description="isotropic hardening modulus, stress units")
    H_kin: float = Field(0.0, ge=0, description="kinematic (Prager) hardening modulus")

    def material(self) -> Material:
        return J2Plasticity(E=self.E, nu=self.nu, sigma_y=self.sigma_y, H=self.H, H_kin=self.H_kin)


class NeoHookeanPhase(ConfigModel):
    """Compressible Neo-Hookean hyperelasticity (finite strain)."""

    law: Literal["neo_hookean"] = "neo_hookean"
    tag: int | None = _TAG
    E: float = _E
    nu: float = _NU

    def material(self) -> Material:
        return NeoHookean(E=self.E, nu=self.nu)


class ConductorPhase(ConfigModel):
    """Isotropic linear heat conductor."""

    law: Literal["linear_conduction"] = "linear_conduction"
    tag: int | None = _TAG
    k: float = Field(gt=0, description="thermal conductivity, e.g. W/(m K)")

    def material(self) -> Material:
        return LinearConductor(k=self.k)


Phase = Annotated[
    ElasticPhase | J2Phase | NeoHookeanPhase | ConductorPhase, Field(discriminator="law")
]
PHASE_MODELS = (ElasticPhase, J2Phase, NeoHookeanPhase, ConductorPhase)

#: The phase law each physics uses when a phase does not name one.
DEFAULT_LAW = {
    "elasticity": "linear_elastic",
    "finite_strain": "neo_hookean",
    "conduction": "linear_conduction",
}
LAW_PHYSICS = {
    "linear_elastic": "elasticity",
    "j2": "elasticity",
    "neo_hookean": "finite_strain",
    "linear_conduction": "conduction",
}


def with_default_laws(data: Any, physics: Any) -> Any:
    """Give each phase mapping without 'law' the default law of the physics."""
    law = DEFAULT_LAW.get(physics) if isinstance(physics, str) else None
    if law is None or not isinstance(data, dict):
        return data
    return {name: ({"law": law, **p} if isinstance(p, dict) else p) for name, p in data.items()}


class WithDefaultLaws(ConfigModel):
    """Base of a study with top-level ``physics`` and ``phases``: a phase without ``law``
    gets the default law of the physics."""

    @model_validator(mode="before")
    @classmethod
    def _default_laws(cls, data: Any) -> Any:
        if isinstance(data, dict) and "phases" in data:
            data = {**data, "phases": with_default_laws(data["phases"], data.get("physics"))}
        return data


def check_law(phase, physics: str, *, key: str) -> None:
    """The phase's law belongs to the physics (ValueError naming the key)."""
    if LAW_PHYSICS[phase.law] != physics:
        raise ValueError(
            f"{key}.law: {phase.law!r} is a law for physics {LAW_PHYSICS[phase.law]!r}, "
            f"but physics is {physics!r}"
        )


def check_phases(phases: dict, physics: str, *, key: str = "phases") -> None:
    """Each phase has a tag used once and a law of the physics (ValueError naming the key)."""
    tags: dict[int, str] = {}
    for name, phase in phases.items():
        if phase.tag is None:
            raise ValueError(f"{key}.{name}.tag: required key is missing")
        check_law(phase, physics, key=f"{key}.{name}")
        if phase.tag in tags:
            raise ValueError(
                f"{key}.{name}.tag: tag {phase.tag} is already used by phase {tags[phase.tag]!r}"
            )
        tags[phase.tag] = name
