"""`output.scale_separation` of a `fe2 run` study (see :mod:`fe2.macro.scale_separation`)."""

from __future__ import annotations

from pydantic import Field

from fe2.config.base import ConfigModel


class ScaleSeparationConfig(ConfigModel):
    """The scale-separation indicator eps_L = l |grad E| / |E| at every macro point."""

    rve_size: float = Field(
        gt=0.0, allow_inf_nan=False,
        description="l: edge of the RVE in macro length units (its physical size)",
    )
    tolerance: float = Field(
        0.1, gt=0.0, lt=1.0,
        description="tau: strong separation eps_L < tau, weak eps_L^2 < tau, else none",
    )
    strain_floor: float = Field(
        0.1, ge=0.0, lt=1.0,
        description="|E| below strain_floor x the largest |E| of the body is replaced by that floor",
    )
