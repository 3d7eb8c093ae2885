"""fe2: concurrent two-scale (FE²) finite element homogenization on DOLFINx."""

import dolfinx_solver  # noqa: F401  (loads libmpi before any binding that links it)

__version__ = "0.1.0"
