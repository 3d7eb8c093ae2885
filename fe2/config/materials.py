"""Phase laws in a config: one model per law, with the physics each belongs to."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from fe2.config.base import ConfigModel
from fe2.lattice.lattices import LATTICES
from fe2.physics import default_law, laws_of
from fe2.lattice.potentials import LennardJones, Morse
from fe2.materials import J2Plasticity, LinearConductor, LinearElastic, Material, NeoHookean
from fe2.materials.cauchy_born import CauchyBornLaw
from fe2.materials.transport import ForchheimerFlow, PowerLawConductor, TemperatureDependentConductor

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


def _positive(description: str):
    return Field(gt=0, allow_inf_nan=False, description=description)


class PowerLawPhase(ConfigModel):
    """Power-law conduction q = k (delta^2 + |grad T|^2)^((p-2)/2) grad T (p-Laplacian)."""

    law: Literal["power_law"] = "power_law"
    tag: int | None = _TAG
    k: float = _positive("consistency: the conductivity at |grad T| = 1 (delta = 0)")
    p: float = Field(gt=1, le=20, allow_inf_nan=False, description="exponent p > 1 (2: linear; < 2 shear-thinning)")
    delta: float = Field(
        0.0, ge=0, allow_inf_nan=False,
        description="regularising gradient, >= 0: keeps the tangent finite and positive at zero gradient",
    )

    def material(self) -> Material:
        return PowerLawConductor(k=self.k, p=self.p, delta=self.delta)


class ForchheimerPhase(ConfigModel):
    """Forchheimer flow through a porous phase: |grad p| = mu/kappa |v| + beta rho |v|^2."""

    law: Literal["forchheimer"] = "forchheimer"
    tag: int | None = _TAG
    mu: float = _positive("dynamic viscosity of the fluid, e.g. Pa s")
    kappa: float = _positive("intrinsic permeability, e.g. m^2")
    beta: float = Field(ge=0, allow_inf_nan=False, description="Forchheimer (inertial) coefficient, 1/m (0: Darcy)")
    rho: float = Field(1.0, gt=0, allow_inf_nan=False, description="fluid density, e.g. kg/m^3")

    def material(self) -> Material:
        return ForchheimerFlow(mu=self.mu, kappa=self.kappa, beta=self.beta, rho=self.rho)


class TemperatureDependentPhase(ConfigModel):
    """Conductivity linear in the temperature, k(T) = k0 (1 + alpha (T - T0))."""

    law: Literal["temperature_dependent_conduction"] = "temperature_dependent_conduction"
    tag: int | None = _TAG
    k0: float = _positive("conductivity at T0")
    alpha: float = Field(allow_inf_nan=False, description="temperature coefficient, 1/K (any sign; k(T) must stay > 0)")
    T0: float = Field(0.0, allow_inf_nan=False, description="reference temperature, K")

    def material(self) -> Material:
        return TemperatureDependentConductor(k0=self.k0, alpha=self.alpha, T0=self.T0)


class LennardJonesPotential(ConfigModel):
    """phi(r) = 4 epsilon [(sigma/r)^12 - (sigma/r)^6]."""

    type: Literal["lennard_jones"] = "lennard_jones"
    epsilon: float = _positive("well depth, energy units")
    sigma: float = _positive("distance where phi = 0, length units")

    def potential(self) -> LennardJones:
        return LennardJones(epsilon=self.epsilon, sigma=self.sigma)


class MorsePotential(ConfigModel):
    """phi(r) = D [exp(-2 alpha (r - r0)) - 2 exp(-alpha (r - r0))]."""

    type: Literal["morse"] = "morse"
    D: float = _positive("well depth, energy units")
    alpha: float = _positive("stiffness, 1/length")
    r0: float = _positive("distance of the minimum, length units")

    def potential(self) -> Morse:
        return Morse(D=self.D, alpha=self.alpha, r0=self.r0)


class CutoffConfig(ConfigModel):
    """Cut-off of the pair potential."""

    radius: float = _positive("cut-off radius, length units: bonds up to it count")
    kind: Literal["smooth", "shifted"] = Field(
        "smooth", description="smooth: C2 switch on [inner, radius]; shifted: phi - phi(radius)"
    )
    inner: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="smooth: where the switch starts (default 0.9 radius)"
    )


class StabilityConfig(ConfigModel):
    """Stability check of the Cauchy-Born state at every committed load step."""

    policy: Literal["warn", "stop", "off"] = Field(
        "warn", description="warn: log and record the first failure; stop: end the run there; off: no check"
    )
    phonons: bool = Field(True, description="the phonon check (the acoustic-tensor check always runs)")
    phonon_grid: int | None = Field(
        None, ge=2, le=48, description="wave vectors per direction of the Brillouin-zone grid (default 12 in 2D, 6 in 3D)"
    )


class CauchyBornPhase(ConfigModel):
    """Cauchy-Born lattice law (finite strain): a Bravais lattice with a pair potential."""

    law: Literal["cauchy_born"] = "cauchy_born"
    tag: int | None = _TAG
    lattice: Literal[LATTICES[1:]] = Field(description="square, triangular (2D); sc, bcc, fcc (3D)")  # type: ignore[valid-type]
    lattice_constant: float | None = Field(
        None, gt=0, allow_inf_nan=False,
        description="a (cube edge; 2D: nearest-neighbour distance); default: the stress-free equilibrium value",
    )
    potential: Annotated[LennardJonesPotential | MorsePotential, Field(discriminator="type")]
    cutoff: CutoffConfig
    stability: StabilityConfig = StabilityConfig()

    @model_validator(mode="after")
    def _builds(self) -> CauchyBornPhase:
        if self.cutoff.inner is not None and self.cutoff.inner >= self.cutoff.radius:
            raise ValueError(f"cutoff.inner: must be < cutoff.radius = {self.cutoff.radius:g}")
        try:
            self.material()
        except ValueError as exc:
            raise ValueError(f"cutoff: {exc}") from None
        return self

    def material(self) -> Material:
        return CauchyBornLaw(
            lattice=self.lattice, potential=self.potential.potential(), cutoff=self.cutoff.radius,
            cutoff_kind=self.cutoff.kind, cutoff_inner=self.cutoff.inner,
            lattice_constant=self.lattice_constant, phonons=self.stability.phonons,
            phonon_grid=self.stability.phonon_grid,
        )


Phase = Annotated[
    ElasticPhase | J2Phase | NeoHookeanPhase | ConductorPhase | PowerLawPhase | ForchheimerPhase
    | TemperatureDependentPhase | CauchyBornPhase,
    Field(discriminator="law"),
]
PHASE_MODELS = (ElasticPhase, J2Phase, NeoHookeanPhase, ConductorPhase, PowerLawPhase, ForchheimerPhase,
                TemperatureDependentPhase, CauchyBornPhase)
#: Sections nested in phase models (documented with them).
PHASE_PARTS = (LennardJonesPotential, MorsePotential, CutoffConfig, StabilityConfig)

LAW_PHYSICS = {
    "linear_elastic": "elasticity",
    "j2": "elasticity",
    "neo_hookean": "finite_strain",
    "linear_conduction": "conduction",
    "power_law": "conduction",
    "forchheimer": "conduction",
    "temperature_dependent_conduction": "conduction",
    "cauchy_born": "finite_strain",
}


def stability_policy(phases: list) -> str:
    """The strictest stability policy of the Cauchy-Born phases ('off' if there is none)."""
    policies = {p.stability.policy for p in phases if isinstance(p, CauchyBornPhase)}
    return next((p for p in ("stop", "warn") if p in policies), "off")


def with_default_laws(data: Any, physics: Any) -> Any:
    """Give each phase mapping without 'law' the default law of the physics."""
    law = default_law(physics)
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
    """The phase's law belongs to the physics (or the physics whose laws it uses; ValueError
    naming the key)."""
    if LAW_PHYSICS[phase.law] != laws_of(physics):
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
