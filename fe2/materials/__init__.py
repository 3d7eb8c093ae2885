"""Constitutive laws of the phases (micro) and of closed-form macro points."""

from fe2.materials.linear import LinearConductor, LinearElastic, LinearMaterial

__all__ = ["LinearConductor", "LinearElastic", "LinearMaterial"]
