"""Study configuration: YAML -> validated, typed models (pydantic).

Every error is reported as one line naming the key (``phases.matrix.nu: ...``) and raised as
:class:`ConfigError`. YAML is read with ``yaml.safe_load`` (no tags, no code). Relative paths
in a config are resolved against the directory of the config file.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fe2.errors import InputError
from fe2.materials import J2Plasticity, LinearConductor, LinearElastic, Material, NeoHookean
from fe2.meshing.specs import MeshSpec


class ConfigError(InputError):
    """Invalid study configuration; the message names the key and what is expected."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_TAG = Field(description="cell tag (gmsh physical group) of the phase")
_E = Field(gt=0, description="Young's modulus, stress units (e.g. GPa)")
_NU = Field(gt=-1.0, lt=0.5, description="Poisson's ratio, in (-1, 0.5)")


class ElasticPhase(_Model):
    """Isotropic linear elastic phase (plane strain in 2D)."""

    law: Literal["linear_elastic"] = "linear_elastic"
    tag: int = _TAG
    E: float = _E
    nu: float = _NU

    def material(self) -> Material:
        return LinearElastic(E=self.E, nu=self.nu)


class J2Phase(_Model):
    """Small-strain von Mises plasticity with linear isotropic/kinematic hardening."""

    law: Literal["j2"] = "j2"
    tag: int = _TAG
    E: float = _E
    nu: float = _NU
    sigma_y: float = Field(gt=0, description="initial yield stress, stress units")
    H: float = Field(0.0, ge=0, description="isotropic hardening modulus, stress units")
    H_kin: float = Field(0.0, ge=0, description="kinematic (Prager) hardening modulus")

    def material(self) -> Material:
        return J2Plasticity(E=self.E, nu=self.nu, sigma_y=self.sigma_y, H=self.H, H_kin=self.H_kin)


class NeoHookeanPhase(_Model):
    """Compressible Neo-Hookean hyperelasticity (finite strain)."""

    law: Literal["neo_hookean"] = "neo_hookean"
    tag: int = _TAG
    E: float = _E
    nu: float = _NU

    def material(self) -> Material:
        return NeoHookean(E=self.E, nu=self.nu)


class ConductorPhase(_Model):
    """Isotropic linear heat conductor."""

    law: Literal["linear_conduction"] = "linear_conduction"
    tag: int = _TAG
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


class MeshSource(_Model):
    """Where the RVE mesh comes from: a gmsh file, or a generator."""

    file: Path | None = Field(None, description="gmsh .msh file, relative to the config file")
    generate: MeshSpec | None = Field(None, description="parameters of a mesh generator")

    @field_validator("file")
    @classmethod
    def _exists(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is None:
            return None
        base = (info.context or {}).get("base_dir", Path.cwd())
        path = (Path(base) / path).resolve()
        if not path.is_file():
            raise ValueError(f"no such mesh file: {path}")
        return path

    @model_validator(mode="after")
    def _one_source(self) -> MeshSource:
        if (self.file is None) == (self.generate is None):
            raise ValueError("give exactly one of 'file' and 'generate'")
        return self


class RveOptions(_Model):
    """RVE discretisation and boundary condition."""

    bc: Literal["periodic", "affine", "traction", "all"] = Field(
        "periodic", description="boundary condition; 'all' = the three plus Voigt/Reuss bounds"
    )
    degree: int = Field(1, ge=1, le=3, description="Lagrange degree of the fluctuation")


class NewtonConfig(_Model):
    """Newton tolerances of the RVE problems."""

    atol: float = Field(0.0, ge=0, description="absolute tolerance on the residual norm")
    rtol: float = Field(
        1e-10, gt=0, lt=1,
        description="tolerance relative to the norm of the boundary reaction forces",
    )
    max_iterations: int = Field(25, ge=1, description="Newton iterations before failure")


class SolverOptions(_Model):
    """Newton and linear solver of the RVE problems."""

    newton: NewtonConfig = NewtonConfig()
    petsc_options: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="PETSc options without prefix, passed through unchanged "
        "(default: preonly + LU with MUMPS)",
    )


Matrix = list[list[float]] | list[float]


class LoadPath(_Model):
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


class HomogenizeConfig(_Model):
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

    @model_validator(mode="before")
    @classmethod
    def _default_laws(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("phases"), dict):
            law = DEFAULT_LAW.get(data.get("physics"))
            if law is not None:
                data = dict(data)
                data["phases"] = {
                    name: ({"law": law, **phase} if isinstance(phase, dict) else phase)
                    for name, phase in data["phases"].items()
                }
        return data

    @model_validator(mode="after")
    def _consistent(self) -> HomogenizeConfig:
        tags: dict[int, str] = {}
        for name, phase in self.phases.items():
            if LAW_PHYSICS[phase.law] != self.physics:
                raise ValueError(
                    f"phases.{name}.law: {phase.law!r} is a law for physics "
                    f"{LAW_PHYSICS[phase.law]!r}, but physics is {self.physics!r}"
                )
            if phase.tag in tags:
                raise ValueError(
                    f"phases.{name}.tag: tag {phase.tag} is already used by phase {tags[phase.tag]!r}"
                )
            tags[phase.tag] = name
        path = self.load_path
        if path is not None and path.fields_at is not None:
            bad = [s for s in path.fields_at if not 1 <= s <= path.num_steps]
            if bad:
                raise ValueError(
                    f"load_path.fields_at: steps {bad} are not in 1..{path.num_steps}"
                )
        return self


# ---------------------------------------------------------------- loading and error messages


def _known_keys(model: type[BaseModel], seen: set | None = None) -> set[str]:
    """All field names reachable from a model (for 'did you mean' hints)."""
    seen = set() if seen is None else seen
    if model in seen:
        return set()
    seen.add(model)
    keys = set(model.model_fields)
    for field in model.model_fields.values():
        for arg in _nested_models(field.annotation):
            keys |= _known_keys(arg, seen)
    return keys


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _nested_models(arg)]


def _format_error(error: dict, known: set[str], tags: set[str]) -> str:
    loc = [str(part) for part in error["loc"] if str(part) not in tags]
    key = ".".join(loc) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        hint = difflib.get_close_matches(loc[-1], sorted(known), n=1)
        message = "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    elif error["type"] == "missing":
        message = "required key is missing"
    elif error["type"] == "union_tag_invalid":
        message = message.replace("Input tag", "value").replace("found using", "of")
    if "input" in error and error["type"] not in ("missing", "extra_forbidden"):
        shown = repr(error["input"])
        if len(shown) < 60 and not message.startswith(key):
            message += f" (got {shown})"
    if not loc and ":" in message:  # a model-level check that names its own key
        return message
    return message if message.startswith(f"{key}:") else f"{key}: {message}"


def validate(model: type[BaseModel], data: Any, *, base_dir: Path, source: str) -> BaseModel:
    """Validate a parsed YAML document; raise :class:`ConfigError` with one line per problem."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level")
    try:
        return model.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        known = _known_keys(model)
        tags = set(LAW_PHYSICS) | set(_mesh_types())
        lines = sorted({_format_error(e, known, tags) for e in exc.errors()})
        raise ConfigError(f"{source}: invalid configuration\n  " + "\n  ".join(lines)) from None


def _mesh_types() -> list[str]:
    from fe2.meshing.specs import MESH_SPECS

    return list(MESH_SPECS)


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file safely; errors become :class:`ConfigError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        with path.open() as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def load_homogenize_config(path: str | Path) -> HomogenizeConfig:
    """Read and validate a `fe2 homogenize` study."""
    path = Path(path)
    data = load_yaml(path)
    return validate(HomogenizeConfig, data, base_dir=path.resolve().parent, source=str(path))
