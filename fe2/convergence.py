r"""The Newton convergence test shared by the macro problem and the RVE solver.

A residual norm |R| counts as converged when

.. math::

    |R| \le \mathrm{atol} + \mathrm{rtol}\,s
    \quad\text{or}\quad
    |R| \le c\,\epsilon\,t,

with s the scale of the problem's forces (e.g. the full residual including the reactions),
:math:`\epsilon` the machine epsilon, c = :data:`ROUNDOFF_FACTOR`, and t the size of the terms
that make up the residual (:func:`residual_terms`). The second test is the round-off floor:
the residual is assembled from terms of size t, so it cannot be computed more accurately than
about :math:`\epsilon t`, however small the net forces are (a macro point with
F̄ - I ~ 1e-18, where P = μ(F - F^{-T}) + ... is a difference of terms of size μ; a plastic RVE
at a large strain, whose stress is the difference of a trial stress C ε and a return of the
same size). A residual at that level is as converged as it can be.
"""

from __future__ import annotations

import numpy as np

#: c in |R| <= c eps t. Each entry of R sums a few terms, and the Newton update comes from a
#: direct solve whose backward error is a modest multiple of eps; measured: Newton stagnates at
#: |R| ~ 40 eps t on a perfectly plastic inclusion RVE sheared to 100 % (P2, periodic).
ROUNDOFF_FACTOR = 100.0


def tolerance(*, atol: float, rtol: float, scale: float, terms: float = 0.0) -> float:
    """The largest residual norm that counts as converged: max(atol + rtol s, c eps t)."""
    return max(atol + rtol * scale, ROUNDOFF_FACTOR * np.finfo(float).eps * terms)


def converged(norm: float, *, atol: float, rtol: float, scale: float, terms: float = 0.0) -> bool:
    """Whether the residual norm ``norm`` meets the test of the module docstring.

    Args:
        norm: residual norm (force units).
        atol: absolute tolerance (force units).
        rtol: tolerance relative to ``scale``.
        scale: size of the forces of the problem (e.g. the full residual incl. reactions).
        terms: size of the terms that make up the residual (:func:`residual_terms`); 0: no
            round-off floor.
    """
    return bool(norm <= tolerance(atol=atol, rtol=rtol, scale=scale, terms=terms))


def residual_terms(tangent: np.ndarray, strain: np.ndarray, dV: np.ndarray, *, dim: int) -> float | np.ndarray:
    r"""Size t of the terms making up a residual :math:`R_i = \sum_q B_{qi} \sigma_q dV_q`.

    The stress at a point is built from terms of size :math:`|C_q| |\varepsilon_q|` (tangent
    times total strain, F including I at finite strain), each entry of R from a few points
    with :math:`|B| \sim 1/h` (h the cell size, :math:`V_c^{1/d}`):

    .. math:: t = \Big(\sum_q \big(|C_q|\,|\varepsilon_q|\,dV_q / h_{c(q)}\big)^2\Big)^{1/2}.

    Args:
        tangent: (..., cells, qp, n, n) tangents at the quadrature points (leading axes: several
            states, e.g. the points of a batch).
        strain: (..., cells, qp, n) total strains (or F) there.
        dV: (cells, qp) quadrature volumes.
        dim: spatial dimension d.

    Returns:
        t, a float (or an array of the leading shape).
    """
    lead = strain.shape[:-3]
    if dV.size == 0:
        return np.zeros(lead) if lead else 0.0
    h = dV.sum(axis=1, keepdims=True) ** (1.0 / dim)
    squared = np.einsum("...ij,...ij->...", tangent, tangent) * np.einsum("...i,...i->...", strain, strain)
    t = np.sqrt(np.einsum("...cq,cq->...", squared, (dV / h) ** 2))
    return t if lead else float(t)
