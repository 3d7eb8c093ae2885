"""Transport coefficients of a phase from equilibrium fluctuations (Green-Kubo)."""
