"""Config pieces of loading in pseudo-time: values as expressions, amplitudes, rotation, steps.

A `fe2 run` study runs from t = 0 to its end time T through the times of ``steps``; every
prescribed value is multiplied by an amplitude (a named piecewise-linear table). See
:mod:`fe2.macro.loading` for the meaning and docs/config.md for the keys.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import Field, field_validator

from fe2.config.base import ConfigModel
from fe2.expressions import ExpressionError, parse_expression

#: Amplitudes every study has: ``ramp`` (0 at t = 0, 1 at t = T) and ``constant`` (1).
BUILTIN_AMPLITUDES = ("ramp", "constant")

ValueEntry = float | str
"""A number, or an expression of x, y, z, t (see :mod:`fe2.expressions`)."""


def check_values(value: Any) -> Any:
    """Parse every string of a value (a number, an expression or a list of them)."""
    for entry in value if isinstance(value, list) else [value]:
        if isinstance(entry, str):
            try:
                parse_expression(entry)
            except ExpressionError as exc:
                raise ValueError(str(exc)) from None
    return value


def uses_time(value: Any) -> bool:
    """Whether a value (number, expression or list) depends on t."""
    entries = value if isinstance(value, list) else [value]
    return any(isinstance(e, str) and parse_expression(e).uses_time for e in entries)


class RotationConfig(ConfigModel):
    """Rigid rotation of a boundary: u = (R(theta(t)) - I)(x - centre), exact at every t."""

    angle: ValueEntry = Field(
        description="rotation angle in radians: a number (times the amplitude) or an expression of t"
    )
    centre: list[float] = Field(default_factory=lambda: [0.0, 0.0, 0.0], description="centre c (d coordinates)")
    axis: list[float] | None = Field(None, description="rotation axis (3D only, 3 components; 2D: the z axis)")

    @field_validator("angle")
    @classmethod
    def _time_only(cls, angle: ValueEntry) -> ValueEntry:
        check_values(angle)
        if isinstance(angle, str) and parse_expression(angle).uses_position:
            raise ValueError("the angle may depend on t only")
        return angle

    @field_validator("axis")
    @classmethod
    def _axis(cls, axis: list[float] | None) -> list[float] | None:
        if axis is not None and (len(axis) != 3 or not any(axis)):
            raise ValueError("the axis must have 3 components, not all 0")
        return axis


class StepIncrement(ConfigModel):
    """Steps of at most this length, also ending at every break point of the amplitudes."""

    max_increment: float = Field(gt=0, description="largest time step")


AmplitudeTable = list[tuple[float, float]]


def check_amplitudes(tables: dict[str, AmplitudeTable]) -> dict[str, AmplitudeTable]:
    for name, table in tables.items():
        if name in BUILTIN_AMPLITUDES:
            raise ValueError(f"amplitudes.{name}: '{name}' is a built-in amplitude; choose another name")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
            raise ValueError(f"amplitudes: name {name!r}: use letters, digits, '_' and '-'")
        if not table:
            raise ValueError(f"amplitudes.{name}: give at least one [time, factor] point")
        times = [t for t, _ in table]
        if times[0] < 0 or any(b <= a for a, b in zip(times, times[1:])):
            raise ValueError(f"amplitudes.{name}: times must be >= 0 and increasing (got {times})")
    return tables


def _divisions(length: float, h: float) -> float:
    """Equal steps of at most ``h`` in an interval of ``length`` (a float: may be huge or inf)."""
    ratio = length / h * (1 - 1e-12)
    return max(1.0, float(math.ceil(ratio))) if math.isfinite(ratio) else math.inf


def _intervals(end_time: float, break_points: list[float]) -> list[tuple[float, float]]:
    ends = sorted({t for t in break_points if 0.0 < t < end_time} | {end_time})
    return list(zip([0.0, *ends[:-1]], ends))


def step_count(steps: int | list[float] | StepIncrement, end_time: float,
               break_points: list[float]) -> float:
    """The number of steps :func:`step_times` gives, without building them (inf if the
    ``max_increment`` is too small for a float count)."""
    if isinstance(steps, int):
        return float(steps)
    if isinstance(steps, list):
        return float(len(steps))
    return sum(_divisions(end - start, steps.max_increment) for start, end in _intervals(end_time, break_points))


def step_times(steps: int | list[float] | StepIncrement, end_time: float,
               break_points: list[float]) -> list[float]:
    """The times of the steps (increasing, ending at ``end_time``).

    ``steps``: n equal steps, the listed times, or the break points (in (0, T)) and T with
    each interval split into equal steps of at most ``max_increment``. Check
    :func:`step_count` against a limit first.
    """
    if isinstance(steps, int):
        return [end_time * (k + 1) / steps for k in range(steps)]
    if isinstance(steps, list):
        return list(steps)
    times = []
    for start, end in _intervals(end_time, break_points):
        n = int(_divisions(end - start, steps.max_increment))
        times += [start + (end - start) * (k + 1) / n for k in range(n - 1)] + [end]
    return times


def default_end_time(end_time: float | None, amplitudes: dict[str, AmplitudeTable]) -> float:
    """T: ``end_time``; else the last time of the amplitude tables (if > 0); else 1."""
    if end_time is not None:
        return end_time
    last = max((table[-1][0] for table in amplitudes.values() if table), default=0.0)
    return last if last > 0 else 1.0
