"""Green-Kubo: VERIFICATION.md fact 17 (Ornstein-Uhlenbeck flux: integral s^2 tau)."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from fe2.cli import main
from fe2.config import ConductorPhase
from fe2.errors import InputError
from fe2.transport.green_kubo import NegativeCoefficient, autocorrelation, green_kubo, require_positive

S, TAU, DT = 2.0, 1.0, 0.1  # exact Green-Kubo integral S^2 TAU = 4


def ornstein_uhlenbeck(n: int, seed: int, columns: int = 1) -> np.ndarray:
    """Exact discretisation: x_{i+1} = a x_i + s sqrt(1 - a^2) xi, a = exp(-dt/tau)."""
    rng = np.random.default_rng(seed)
    a = np.exp(-DT / TAU)
    noise = S * np.sqrt(1 - a * a) * rng.standard_normal((n, columns))
    x = np.empty((n, columns))
    x[0] = S * rng.standard_normal(columns)
    for i in range(1, n):
        x[i] = a * x[i - 1] + noise[i]
    return x


def test_fft_autocorrelation_is_the_unbiased_sum():
    x = np.random.default_rng(0).standard_normal((257, 2))
    direct = np.array([np.mean([(x[: len(x) - j, c] * x[j:, c]).mean() for c in range(2)]) for j in range(len(x))])
    assert np.abs(autocorrelation(x) - direct).max() <= 1e-12 * direct[0]


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_ornstein_uhlenbeck_integral_within_error_bar(seed):
    result = green_kubo(ornstein_uhlenbeck(100_000, seed), DT, 1.0)
    assert abs(result.coefficient - S**2 * TAU) <= 3 * result.uncertainty  # 3 sigma
    assert result.uncertainty < 0.1 * S**2 * TAU
    assert 3 * TAU < result.plateau_time < 8 * TAU


def test_error_bar_is_calibrated():
    """Over 200 independent series the z-scores (estimate - exact) / error have the spread of
    a Student t with blocks - 1 = 9 degrees of freedom (std 1.13; 66 % within one error): the
    error bar is a one-sigma bar, neither inflated nor too small."""
    series = ornstein_uhlenbeck(20_000, 100, columns=200)
    results = [green_kubo(x, DT, 1.0) for x in series.T]
    z = np.array([(r.coefficient - S**2 * TAU) / r.uncertainty for r in results])
    assert 0.95 < z.std() < 1.3
    assert 0.57 < np.mean(np.abs(z) < 1) < 0.75
    assert -0.4 < z.mean() < 0.1  # the plateau cuts e^-5 of the exponential tail: slightly low


def test_error_bar_shrinks_like_inverse_square_root_of_length():
    series = ornstein_uhlenbeck(160_000, 200, columns=4)
    lengths = np.array([10_000, 40_000, 160_000])
    errors = [np.mean([green_kubo(x[:n], DT, 1.0).uncertainty for x in series.T]) for n in lengths]
    slope = np.polyfit(np.log(lengths), np.log(errors), 1)[0]
    assert -0.62 < slope < -0.38


def test_negative_coefficient_is_refused():
    flux = np.tile([1.0, 1.0, -2.0], 2000)  # running integral -0.5 dt C... at its plateau
    result = green_kubo(flux, DT, 1.0)
    assert result.coefficient < 0
    with pytest.raises(NegativeCoefficient):
        require_positive(result)


def test_too_short_series_is_an_input_error():
    with pytest.raises(InputError, match="too short"):
        green_kubo(ornstein_uhlenbeck(1_000, 0), DT, 1.0)


def _write(path: Path, flux: np.ndarray, time: bool = True) -> Path:
    columns = [f"J{i}" for i in range(flux.shape[1])]
    data = np.column_stack([DT * np.arange(len(flux)), flux]) if time else flux
    header = ",".join((["time"] if time else []) + columns)
    np.savetxt(path, data, delimiter=",", header=header, comments="")
    return path


def test_cli_writes_plot_table_and_phase_snippet(shared_tmp_path, capsys):
    flux = _write(shared_tmp_path / "flux.csv", ornstein_uhlenbeck(30_000, 9, columns=3))
    out = shared_tmp_path / "gk"
    # V / (k_B T^2) = 8 / (2 * 2^2) = 1: the coefficient is the integral itself.
    code = main(["green-kubo", str(flux), "--kind", "conductivity", "--volume", "8", "--temperature", "2",
                 "--kb", "2", "-o", str(out)])
    assert code == 0
    for name in ("green_kubo.png", "green_kubo.csv", "green_kubo.json", "green_kubo.yaml"):
        assert (out / name).is_file()
    snippet = yaml.safe_load((out / "green_kubo.yaml").read_text())
    phase = ConductorPhase.model_validate({**snippet, "tag": 1})  # usable as a phase
    summary = json.loads((out / "green_kubo.json").read_text())
    direct = green_kubo(ornstein_uhlenbeck(30_000, 9, columns=3), DT, 1.0)  # the same numbers
    assert phase.k == pytest.approx(direct.coefficient, rel=1e-9)
    assert summary["error"] == pytest.approx(direct.uncertainty, rel=1e-9)
    assert summary["plateau_time"] == pytest.approx(direct.plateau_time)
    table = np.loadtxt(out / "green_kubo.csv", delimiter=",", skiprows=1)
    assert np.allclose(table[:, 2], direct.integral, rtol=1e-8, atol=1e-12)


def test_cli_refuses_a_negative_coefficient(shared_tmp_path, capsys):
    flux = _write(shared_tmp_path / "neg.csv", np.tile([1.0, 1.0, -2.0], 2000)[:, None])
    out = shared_tmp_path / "neg"
    code = main(["green-kubo", str(flux), "--kind", "viscosity", "--volume", "1", "--temperature", "1",
                 "--kb", "1", "-o", str(out)])
    assert code == 1
    assert not (out / "green_kubo.yaml").exists() and not (out / "green_kubo.json").exists()
    if __import__("mpi4py").MPI.COMM_WORLD.rank == 0:
        assert "negative" in capsys.readouterr().err


@pytest.mark.parametrize("content,options,message", [
    ("time,J\n0,1\n0.1,nan\n", [], "non-finite"),
    ("J\n1\n2\n", [], "--dt: required"),
    ("time,J\n0,1\n0.1,2\n0.3,1\n", [], "equal steps"),
    ("1,2\n3,4\n", ["--dt", "1"], "name the columns"),
    ("time,J\n0,1\n0.1,2\n", ["--blocks", "1"], "--blocks"),
    ("time,J\n0,1\n0.1,2\n", ["--volume", "inf"], "--volume"),
    ("time,J\n0,1\n0.1,2\n", ["--columns", "K"], "--columns"),
])
def test_cli_input_errors_are_one_line_exit_2(shared_tmp_path, capsys, content, options, message):
    path = shared_tmp_path / "bad.csv"
    if __import__("mpi4py").MPI.COMM_WORLD.rank == 0:
        path.write_text(content)
    __import__("mpi4py").MPI.COMM_WORLD.barrier()
    out = shared_tmp_path / "bad_out"
    args = ["green-kubo", str(path), "--kind", "conductivity", "--volume", "1", "--temperature", "1", "-o", str(out)]
    code = main(args + options)
    assert code == 2
    err = capsys.readouterr().err
    if __import__("mpi4py").MPI.COMM_WORLD.rank == 0:
        assert err.count("\n") == 1 and message in err, err
    assert not out.exists()
