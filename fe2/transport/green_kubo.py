"""Green-Kubo transport coefficients from a sampled flux, with a plateau and an error bar.

For a stationary flux J(t) sampled at t_i = i dt (i < N), with c columns (e.g. the three
heat-flux components, or the off-diagonal stresses P_xy, P_xz, P_yz), the coefficient is

    L = prefactor * int_0^inf C(t) dt,   C(t) = <J(0) J(t)> (averaged over the columns),

prefactor = V / (k_B T^2) for the thermal conductivity (J: heat flux) and V / (k_B T) for the
shear viscosity (J: off-diagonal pressure-tensor component).

* C is the unbiased estimate C(j dt) = 1/(N - j) sum_{i < N - j} J_i J_{i+j}, by a zero-padded
  FFT (O(N log N)); the mean is not subtracted (an equilibrium flux has zero mean) unless
  asked.
* I(t) = prefactor * int_0^t C (trapezoid) is the running integral; tau(t) = I(t) /
  (prefactor C(0)) the integrated correlation time.
* Plateau: the integral is read at t_p = the first lag with t >= window * tau(t) (a
  self-consistent window of ``window`` correlation times, Sokal's rule): past a few
  correlation times the integrand has decayed and only noise is added.
* Error: the series is cut into ``blocks`` independent segments (each much longer than
  t_p); each gives its own running integral I_k; the error of L = I(t_p) is the standard error
  std_k(I_k(t_p)) / sqrt(blocks) (one standard deviation).
* A negative L is not a transport coefficient (second law): :class:`NegativeCoefficient`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fe2.errors import ComputationError, InputError

#: Segments must be at least this many plateau times long to count as independent.
MIN_BLOCK_PLATEAUS = 10.0
KINDS = {"conductivity": 2, "viscosity": 1}  # power of T in the prefactor


class NegativeCoefficient(ComputationError):
    """The Green-Kubo integral is negative: refused, never passed on as a coefficient."""


def prefactor(kind: str, *, volume: float, temperature: float, kB: float) -> float:
    """V / (k_B T^2) (conductivity) or V / (k_B T) (viscosity)."""
    return volume / (kB * temperature ** KINDS[kind])


def autocorrelation(flux: np.ndarray, *, subtract_mean: bool = False) -> np.ndarray:
    """Unbiased autocorrelation (N,) of a series (N,) or (N, c), averaged over the columns."""
    x = np.asarray(flux, dtype=float)
    x = x.reshape(len(x), -1)
    if subtract_mean:
        x = x - x.mean(axis=0)
    n = len(x)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spectrum = np.fft.rfft(x, size, axis=0)
    raw = np.fft.irfft(spectrum * spectrum.conj(), size, axis=0)[:n].mean(axis=1)
    return raw / (n - np.arange(n))


def running_integral(acf: np.ndarray, dt: float) -> np.ndarray:
    """int_0^{j dt} C by the trapezoid rule, (len(acf),), starting at 0."""
    out = np.zeros(len(acf))
    out[1:] = np.cumsum(0.5 * (acf[1:] + acf[:-1])) * dt
    return out


@dataclass
class GreenKubo:
    """The estimate and its diagnostics (lags up to the block length).

    Attributes:
        time: lags (L,), time units.
        acf: C (L,) of the whole series.
        integral: prefactor * int_0^t C (L,), the running integral.
        error: block standard error of the running integral (L,).
        plateau: index of t_p in ``time``.
        coefficient, uncertainty: I(t_p) and its one-sigma error.
        tau: integrated correlation time at t_p.
        drift: mean of I over [t_p, 2 t_p] minus I(t_p) (a flat plateau: |drift| ~ error).
        blocks, samples: segments and samples used.
    """

    time: np.ndarray
    acf: np.ndarray
    integral: np.ndarray
    error: np.ndarray
    plateau: int
    coefficient: float
    uncertainty: float
    tau: float
    drift: float
    blocks: int
    samples: int

    @property
    def plateau_time(self) -> float:
        return float(self.time[self.plateau])


def green_kubo(
    flux: np.ndarray, dt: float, factor: float, *, blocks: int = 10, window: float = 5.0,
    subtract_mean: bool = False,
) -> GreenKubo:
    """Estimate prefactor * int_0^inf <J(0) J(t)> dt from flux (N,) or (N, c) sampled every dt.

    The sign is not checked here (see :func:`require_positive`).

    Raises:
        InputError: too few samples for ``blocks`` independent segments, or no plateau.
    """
    flux = np.asarray(flux, dtype=float).reshape(len(flux), -1)
    n = len(flux)
    length = n // blocks
    acf = autocorrelation(flux, subtract_mean=subtract_mean)[:length]
    integral = factor * running_integral(acf, dt)
    time = dt * np.arange(length)
    if not acf[0] > 0:
        raise InputError("the flux is zero: no fluctuation to correlate")
    tau = integral / (factor * acf[0])
    reached = np.flatnonzero(time >= window * tau)
    reached = reached[reached > 0]
    if len(reached) == 0:
        raise InputError(
            f"no plateau: the running integral still grows at the longest lag of a segment "
            f"({time[-1]:g}); give a longer series or fewer --blocks"
        )
    p = int(reached[0])
    if time[p] * MIN_BLOCK_PLATEAUS > time[-1]:
        needed = int(np.ceil(MIN_BLOCK_PLATEAUS * p * blocks))
        raise InputError(
            f"the series is too short: segments of {length} samples are not >= "
            f"{MIN_BLOCK_PLATEAUS:g} x the plateau lag ({p} samples); give >= {needed} samples "
            f"or fewer --blocks (now {blocks})"
        )
    segments = np.array([
        factor * running_integral(autocorrelation(flux[b * length:(b + 1) * length], subtract_mean=subtract_mean), dt)
        for b in range(blocks)
    ])
    error = segments.std(axis=0, ddof=1) / np.sqrt(blocks)
    end = min(2 * p, length - 1)
    result = GreenKubo(
        time=time, acf=acf, integral=integral, error=error, plateau=p,
        coefficient=float(integral[p]), uncertainty=float(error[p]), tau=float(tau[p]),
        drift=float(integral[p:end + 1].mean() - integral[p]), blocks=blocks, samples=n,
    )
    return result


def require_positive(result: GreenKubo) -> None:
    """Raise :class:`NegativeCoefficient` if the estimate is negative (second law)."""
    if result.coefficient < 0:
        raise NegativeCoefficient(
            f"the Green-Kubo integral is negative ({result.coefficient:.4g} ± {result.uncertainty:.2g} "
            f"at t = {result.plateau_time:g}): not a transport coefficient (second law); refused"
        )
