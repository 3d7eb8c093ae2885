"""Loading and validating YAML studies: safe YAML, pydantic models, one-line errors.

Every error is reported as one line naming the key (``phases.matrix.nu: ...``) and raised as
:class:`ConfigError`. YAML is read with ``yaml.safe_load`` (no tags, no code). Relative paths
in a config are resolved against the directory of the config file (``base_dir`` context).
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from fe2.errors import InputError


class ConfigError(InputError):
    """Invalid study configuration; the message names the key and what is expected."""


class ConfigModel(BaseModel):
    """Base of every config section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _nested_models(arg)]


def _walk(model: type[BaseModel], seen: set) -> tuple[set[str], set[str]]:
    """(field names, discriminator values of 'law'/'type' fields) reachable from a model."""
    if model in seen:
        return set(), set()
    seen.add(model)
    keys, tags = set(model.model_fields), set()
    for name, field in model.model_fields.items():
        if name in ("law", "type") and typing.get_origin(field.annotation) is typing.Literal:
            tags |= set(typing.get_args(field.annotation))
        for nested in _nested_models(field.annotation):
            more_keys, more_tags = _walk(nested, seen)
            keys |= more_keys
            tags |= more_tags
    return keys, tags


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
        known, tags = _walk(model, set())
        lines = sorted({_format_error(e, known, tags) for e in exc.errors()})
        raise ConfigError(f"{source}: invalid configuration\n  " + "\n  ".join(lines)) from None


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


def load_config(model: type[BaseModel], path: str | Path) -> BaseModel:
    """Read and validate a study file with ``model``."""
    path = Path(path)
    return validate(model, load_yaml(path), base_dir=path.resolve().parent, source=str(path))
