"""Field problems as objects (:class:`Physics`): elasticity, generalised plane strain, finite
strain, conduction.

Adding a physics: a module with a :class:`Physics` subclass, registered in :data:`PHYSICS`.
"""

from __future__ import annotations

from collections.abc import Iterable

from fe2.physics.base import Physics, any_uses_temperature
from fe2.physics.conduction import Conduction
from fe2.physics.elasticity import Elasticity
from fe2.physics.finite_strain import FiniteStrain
from fe2.physics.generalized_plane_strain import GeneralizedPlaneStrain

PHYSICS: dict[str, type[Physics]] = {
    cls.name: cls for cls in (Elasticity, GeneralizedPlaneStrain, FiniteStrain, Conduction)
}
#: The physics names, for config schemas.
PHYSICS_NAMES = tuple(PHYSICS)
#: Physics of a macro problem (`fe2 run`): a section physics has no macro counterpart.
MACRO_PHYSICS_NAMES = tuple(name for name, cls in PHYSICS.items() if cls.macro)


def make_physics(name: str, dim: int, phases: Iterable = ()) -> Physics:
    """Physics by name; ``phases`` (the phase laws) decide optional components (the
    temperature, if a conduction law uses it)."""
    try:
        cls = PHYSICS[name]
    except KeyError:
        raise ValueError(f"unknown physics {name!r}; expected one of {sorted(PHYSICS)}") from None
    if cls is Conduction:
        return Conduction(dim, temperature=any_uses_temperature(phases))
    return cls(dim)


def laws_of(name) -> str | None:
    """The physics whose phase laws a physics name uses (None for an unknown name)."""
    cls = PHYSICS.get(name) if isinstance(name, str) else None
    return (cls.law_physics or cls.name) if cls is not None else None


def default_law(name) -> str | None:
    """The default phase law of a physics name (None for an unknown name)."""
    cls = PHYSICS.get(name) if isinstance(name, str) else None
    return cls.default_law if cls is not None else None


__all__ = ["MACRO_PHYSICS_NAMES", "PHYSICS", "PHYSICS_NAMES", "Conduction", "Elasticity", "FiniteStrain",
           "GeneralizedPlaneStrain", "Physics", "default_law", "laws_of", "make_physics"]
