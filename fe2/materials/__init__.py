"""Constitutive laws of the phases: one protocol (:class:`Material`), one module per law."""

from fe2.materials.base import Material, Update
from fe2.materials.j2 import J2Plasticity
from fe2.materials.linear import (
    AnisotropicLinearConductor, AnisotropicLinearElastic, EffectiveLinearElastic, LinearConductor, LinearElastic,
)
from fe2.materials.neo_hookean import NeoHookean

__all__ = [
    "AnisotropicLinearConductor", "AnisotropicLinearElastic", "EffectiveLinearElastic",
    "J2Plasticity", "LinearConductor", "LinearElastic", "Material", "NeoHookean", "Update"]
