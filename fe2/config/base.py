"""Loading and validating YAML studies: safe YAML, pydantic models, one-line errors.

Every error is reported as one line naming the key (``phases.matrix.nu: ...``) and raised as
:class:`ConfigError`. YAML is read with ``yaml.safe_load`` (no tags, no code). Relative paths
in a config are resolved against the directory of the config file (``base_dir`` context).

Checks every model gets without asking (:func:`validate`), so that a key added anywhere is
covered:

* every float is finite (``allow_inf_nan=False`` on :class:`ConfigModel`; and a walk over the
  validated document for models that are not config models, e.g. the mesh generators) and its
  magnitude is at most :data:`MAX_ABS`, unless its field says otherwise
  (``json_schema_extra={"max_abs": ...}``);
* every list has at most ``limits.list_length`` items; a generator whose ``estimated_cells()``
  exceeds ``limits.cells`` is refused (see :class:`Limits`);
* the file is at most :data:`MAX_CONFIG_BYTES` (environment variable ``FE2_MAX_CONFIG_BYTES``),
  UTF-8, and its YAML aliases expand to at most :data:`MAX_EXPANDED_VALUES` values.
"""

from __future__ import annotations

import difflib
import math
import os
import reprlib
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fe2.errors import InputError


class ConfigError(InputError):
    """Invalid study configuration; the message names the key and what is expected."""


#: Largest magnitude of any number in a study (a float field may set its own ``max_abs``).
MAX_ABS = 1e15
#: Largest config file read (bytes); the environment variable FE2_MAX_CONFIG_BYTES overrides it.
MAX_CONFIG_BYTES = 4_000_000
#: Most values (scalars, list items, mapping entries) a document may hold once its YAML
#: aliases are expanded ("billion laughs" documents are refused before anything walks them).
MAX_EXPANDED_VALUES = 1_000_000


class ConfigModel(BaseModel):
    """Base of every config section: unknown keys are errors, values are frozen, floats finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Limits(ConfigModel):
    """Limits on the work a study may ask for; raise them here if a study needs more."""

    steps: int = Field(
        100_000, ge=1, le=100_000_000, description="most load steps (or load path steps) of a study"
    )
    cells: int = Field(
        2_000_000, ge=1, le=1_000_000_000,
        description="most cells of a mesh generated from mesh_size (estimated before meshing)",
    )
    list_length: int = Field(
        100_000, ge=1, le=100_000_000, description="most items of any list in the study"
    )


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _nested_models(arg)]


def _walk(model: type[BaseModel], seen: set) -> tuple[set[str], set[str]]:
    """(field names, location parts that are not keys) reachable from a model: discriminator
    values of 'law'/'type' fields, and the class names pydantic puts in the location of a union
    member that is a model (``steps.StepIncrement.max_increment``)."""
    if model in seen:
        return set(), set()
    seen.add(model)
    keys, tags = set(model.model_fields), {model.__name__}
    for name, field in model.model_fields.items():
        if name in ("law", "type") and typing.get_origin(field.annotation) is typing.Literal:
            tags |= set(typing.get_args(field.annotation))
        for nested in _nested_models(field.annotation):
            more_keys, more_tags = _walk(nested, seen)
            keys |= more_keys
            tags |= more_tags
    return keys, tags


#: Location parts pydantic adds for the members of a union (``steps.list[float].1``).
_UNION_MEMBERS = {"int", "float", "str", "bool", "none", "list", "dict", "function-after", "function-before"}


def _loc(error: dict, tags: set[str]) -> list[str]:
    return [
        str(part) for part in error["loc"]
        if str(part) not in tags and str(part) not in _UNION_MEMBERS and "[" not in str(part)
    ]


def _format_error(error: dict, known: set[str], tags: set[str]) -> str:
    loc = _loc(error, tags)
    key = ".".join(loc) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        hint = difflib.get_close_matches(loc[-1], sorted(known), n=1)
        message = "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    elif error["type"] == "missing":
        message = "required key is missing"
    elif error["type"] == "union_tag_invalid":
        message = message.replace("Input tag", "value").replace("found using", "of")
    elif error["type"] == "finite_number":
        message = "must be a finite number"
    if "input" in error and error["type"] not in ("missing", "extra_forbidden"):
        shown = _short_repr(error["input"])  # never the whole of a large (expanded) input
        if len(shown) < 60 and not message.startswith(key):
            message += f" (got {shown})"
    if not loc and ":" in message:  # a model-level check that names its own key
        return message
    return message if message.startswith(f"{key}:") else f"{key}: {message}"


def _short_repr(value: Any) -> str:
    """repr of at most a few items and levels (cheap on huge or alias-expanded inputs)."""
    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict, short.maxstring, short.maxother = 2, 4, 4, 40, 40
    return short.repr(value)


def _errors(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """One line per problem; for a union (``steps: int | list[float]``) a value error of a
    member is shown instead of the type mismatches of the others."""
    known, tags = _walk(model, set())
    errors = exc.errors()
    valued = {".".join(_loc(e, tags)[:1]) for e in errors if not e["type"].endswith("_type")}
    kept = [
        e for e in errors
        if not (e["type"].endswith("_type") and ".".join(_loc(e, tags)[:1]) in valued)
    ]
    return sorted({_format_error(e, known, tags) for e in kept or errors})


def _is_float(value: Any) -> bool:
    return isinstance(value, float) and not isinstance(value, bool)


def value_problems(node: Any, limits: Limits, key: str = "", max_abs: float = MAX_ABS) -> list[str]:
    """Problems of a validated document, one line each naming the key: non-finite or huge
    numbers, too long lists, generated meshes estimated larger than ``limits.cells``."""
    problems: list[str] = []
    if _is_float(node):
        if not math.isfinite(node):
            problems.append(f"{key}: must be a finite number (got {node})")
        elif abs(node) > max_abs:
            problems.append(f"{key}: magnitude must be <= {max_abs:g} (got {node:g})")
    elif isinstance(node, (list, tuple)):
        if len(node) > limits.list_length:
            problems.append(
                f"{key}: {len(node)} items; at most limits.list_length = {limits.list_length}"
            )
        else:
            for i, item in enumerate(node):
                problems += value_problems(item, limits, f"{key}.{i}", max_abs)
    elif isinstance(node, dict):
        if len(node) > limits.list_length:
            problems.append(
                f"{key}: {len(node)} entries; at most limits.list_length = {limits.list_length}"
            )
        else:
            for name, item in node.items():
                problems += value_problems(item, limits, f"{key}.{name}" if key else str(name), max_abs)
    elif isinstance(node, BaseModel):
        for name, field in type(node).model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            bound = float(extra.get("max_abs", MAX_ABS))
            problems += value_problems(getattr(node, name), limits, f"{key}.{name}" if key else name, bound)
        estimate = getattr(node, "estimated_cells", None)
        if callable(estimate) and not problems:
            cells = estimate()
            if cells > limits.cells:
                problems.append(
                    f"{key or '(top level)'}: this mesh would have about {cells:.3g} cells, more than "
                    f"limits.cells = {limits.cells} (coarsen mesh_size, or raise limits.cells)"
                )
    return problems


def validate(model: type[BaseModel], data: Any, *, base_dir: Path, source: str) -> BaseModel:
    """Validate a parsed YAML document; raise :class:`ConfigError` with one line per problem."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level")
    try:
        config = model.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        lines = _errors(exc, model)
        raise ConfigError(f"{source}: invalid configuration\n  " + "\n  ".join(lines)) from None
    limits = getattr(config, "limits", None)
    problems = value_problems(config, limits if isinstance(limits, Limits) else Limits())
    if problems:
        raise ConfigError(f"{source}: invalid configuration\n  " + "\n  ".join(problems[:20]))
    return config


def _expanded_size(node: Any, budget: int) -> int:
    """Number of values of ``node`` with YAML aliases expanded, or budget + 1 if larger or
    cyclic. Shared (aliased) objects are counted once per reference, computed once (memo)."""
    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(item: Any) -> int:
        if not isinstance(item, (list, dict)):
            return 1
        ident = id(item)
        if ident in memo:
            return memo[ident]
        if ident in active:  # a recursive alias: infinite expansion
            return budget + 1
        active.add(ident)
        children = item.values() if isinstance(item, dict) else item
        total = 1 + len(item) if isinstance(item, dict) else 1
        for child in children:
            total += size(child)
            if total > budget:
                break
        active.discard(ident)
        memo[ident] = min(total, budget + 1)
        return memo[ident]

    return size(node)


def _decode(raw: bytes, path: Path) -> str:
    """UTF-8 text of a config file (a UTF-8 byte-order mark is allowed)."""
    for bom, name in ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
                      (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16")):
        if raw.startswith(bom):
            raise ConfigError(f"{path}: the file is {name} text; save it as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}); save it as UTF-8"
        ) from None


def max_config_bytes() -> int:
    """The config size limit: FE2_MAX_CONFIG_BYTES if set, else :data:`MAX_CONFIG_BYTES`."""
    value = os.environ.get("FE2_MAX_CONFIG_BYTES", "")
    return int(value) if value.strip().isdigit() else MAX_CONFIG_BYTES


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file safely; errors become :class:`ConfigError` naming the file.

    Refused before parsing: files over :func:`max_config_bytes`, text that is not UTF-8.
    After parsing: documents whose aliases expand to more than :data:`MAX_EXPANDED_VALUES`
    values (or recursively).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    limit = max_config_bytes()
    try:
        size = path.stat().st_size
        if size > limit:
            raise ConfigError(
                f"{path}: {size} bytes, larger than {limit} bytes allowed for a study file "
                "(set FE2_MAX_CONFIG_BYTES to raise the limit)"
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    text = _decode(raw, path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or type(exc).__name__
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        raise ConfigError(f"{path}: not valid YAML: {problem}{at}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    if _expanded_size(data, MAX_EXPANDED_VALUES) > MAX_EXPANDED_VALUES:
        raise ConfigError(
            f"{path}: the YAML aliases (*name) expand to more than {MAX_EXPANDED_VALUES} values "
            "(or refer to themselves); write the values out or use fewer aliases"
        )
    return data


def load_config(model: type[BaseModel], path: str | Path) -> BaseModel:
    """Read and validate a study file with ``model``."""
    path = Path(path)
    return validate(model, load_yaml(path), base_dir=path.resolve().parent, source=str(path))
