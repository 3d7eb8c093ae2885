"""Dense periodic packings (collective rearrangement): 60 % discs and 45 % spheres for several
seeds, admissible (min gap, boundary clearance) by a brute-force check, periodic, seeded; RSA
unchanged where it works; the mesh of a 60 % packing with its thin layers refined."""

import itertools
import math

import numpy as np
import pytest
from mpi4py import MPI

from fe2.meshing import RandomInclusions2DSpec, RandomInclusions3DSpec, phase_volumes, read_rve_mesh
from fe2.meshing.packing import (
    PackingError,
    close_pairs,
    dense_packing,
    narrow_spots,
    random_sequential_addition,
)


def check_admissible(c, *, r, L, g):
    """Brute force, independent of the package: all pairs (minimum image) >= 2r + g, centres
    in [0, L), every ball at least g/2 from tangency to the faces, edges and corners."""
    assert np.all((c >= 0) & (c < L))
    diff = c[:, None, :] - c[None, :, :]
    diff -= L * np.round(diff / L)
    dist = np.linalg.norm(diff, axis=-1)
    np.fill_diagonal(dist, np.inf)
    assert dist.min() >= 2 * r + g
    d = np.minimum(c, L - c)
    assert np.all(d >= g / 2)
    for k in range(1, c.shape[1] + 1):
        for axes in itertools.combinations(range(c.shape[1]), k):
            assert np.all(np.abs(np.linalg.norm(d[:, list(axes)], axis=1) - r) >= g / 2)
    return dist.min()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("n,f,g", [(20, 0.60, 0.02), (40, 0.62, 0.01), (30, 0.65, 0.01)])
def test_dense_discs_reach_60_to_65_percent(n, f, g, seed):
    spec = RandomInclusions2DSpec(n=n, volume_fraction=f, min_gap=g, seed=seed, mesh_size=0.03)
    c = spec.centres()
    assert c.shape == (n, 2)
    assert n * math.pi * spec.radius**2 == pytest.approx(f, rel=1e-12)
    check_admissible(c, r=spec.radius, L=1.0, g=g)
    np.testing.assert_array_equal(c, spec.centres())  # deterministic
    other = RandomInclusions2DSpec(n=n, volume_fraction=f, min_gap=g, seed=seed + 10, mesh_size=0.03)
    assert not np.allclose(np.sort(c, axis=0), np.sort(other.centres(), axis=0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dense_spheres_reach_45_percent(seed):
    spec = RandomInclusions3DSpec(n=20, volume_fraction=0.45, min_gap=0.02, seed=seed, mesh_size=0.1)
    check_admissible(spec.centres(), r=spec.radius, L=1.0, g=0.02)


def test_dense_packing_in_a_larger_cell_and_many_inclusions():
    """size 2 (lengths scale), and 450 discs (the cell-grid neighbour search)."""
    r = math.sqrt(0.6 * 4 / (50 * math.pi))
    check_admissible(dense_packing(n=50, radius=r, dim=2, size=2.0, min_gap=0.02, seed=5), r=r, L=2.0, g=0.02)
    r = math.sqrt(0.6 / (450 * math.pi))
    check_admissible(dense_packing(n=450, radius=r, dim=2, size=1.0, min_gap=0.003, seed=1), r=r, L=1.0, g=0.003)


@pytest.mark.parametrize("dim", [2, 3])
def test_cell_grid_neighbour_search_equals_all_pairs(dim):
    rng = np.random.default_rng(dim)
    c = rng.uniform(0, 1, size=(700, dim))
    cutoff = 0.05 if dim == 2 else 0.12
    i, j = close_pairs(c, cutoff=cutoff, size=1.0)
    diff = c[:, None] - c[None]
    diff -= np.round(diff)
    a, b = np.nonzero(np.triu(np.linalg.norm(diff, axis=-1) < cutoff, 1))
    assert len(i) > 100
    assert sorted(zip(i.tolist(), j.tolist())) == sorted(zip(a.tolist(), b.tolist()))


def test_auto_keeps_rsa_where_it_works():
    spec = RandomInclusions2DSpec(n=6, volume_fraction=0.3, seed=1, mesh_size=0.04)
    rsa = random_sequential_addition(n=6, radius=spec.radius, dim=2, size=1.0, min_gap=0.02, seed=1, max_attempts=100_000)
    np.testing.assert_array_equal(spec.centres(), rsa)
    dense = RandomInclusions2DSpec(n=6, volume_fraction=0.3, seed=1, mesh_size=0.04, packing="dense")
    check_admissible(dense.centres(), r=dense.radius, L=1.0, g=0.02)
    assert not np.allclose(dense.centres(), rsa)


def test_impossible_dense_packing_says_what_to_change():
    with pytest.raises(PackingError, match="more than the densest packing of equal spheres"):
        dense_packing(n=40, radius=0.2, dim=3, size=1.0, min_gap=0.02, seed=0)


def test_mesh_of_a_60_percent_packing_is_periodic_and_refined_in_thin_layers(tmp_path):
    spec = RandomInclusions2DSpec(n=30, volume_fraction=0.6, min_gap=0.01, seed=2, mesh_size=0.03)
    rve = read_rve_mesh(spec.generate(tmp_path / "dense.msh"), MPI.COMM_SELF)
    x = rve.mesh.geometry.x[:, :2]
    for axis in range(2):  # nodes on opposite faces match
        low, high = x[np.abs(x[:, axis]) < 1e-12].copy(), x[np.abs(x[:, axis] - 1) < 1e-12]
        low[:, axis] += 1.0
        assert len(low) == len(high) and np.linalg.norm(low[:, None] - high[None], axis=-1).min(axis=1).max() < 1e-10
    volumes = phase_volumes(rve)
    assert 0.58 < volumes[2] <= 0.6  # inscribed polygons: a little below the geometric 0.6
    # In every matrix gap narrower than mesh_size/2 the elements are about twice the gap.
    cells = rve.mesh.geometry.dofmaps[0] if hasattr(rve.mesh.geometry, "dofmaps") else rve.mesh.geometry.dofmap
    points, thickness, _ = narrow_spots(spec.centres(), radius=spec.radius, size=1.0, gap_width=0.015, face_width=0.01)
    midpoints = x[cells].mean(axis=1)
    edges = np.max([np.linalg.norm(x[cells[:, a]] - x[cells[:, b]], axis=1) for a, b in ((0, 1), (1, 2), (2, 0))], axis=0)
    checked = 0
    for point, t in zip(points, thickness):
        near = np.linalg.norm(midpoints - point, axis=1) < 0.5 * t
        if near.any():  # the spot lies in the cell (not only an image of it)
            assert edges[near].max() <= 2.5 * t + 1e-12, (point, t, edges[near].max())
            checked += 1
    assert checked >= 5


def test_fe2_mesh_takes_the_packing_option(tmp_path, capsys):
    from fe2.cli import main

    if MPI.COMM_WORLD.rank != 0:
        return  # `fe2 mesh` runs on rank 0 only
    out = tmp_path / "dense.msh"
    args = ["mesh", "random_inclusions_2d", "--n", "20", "--volume-fraction", "0.6", "--packing", "dense",
            "--mesh-size", "0.05", "-o", str(out)]
    assert main(args) == 0 and out.is_file()
    with pytest.raises(SystemExit) as exit_info:
        main(["mesh", "random_inclusions_2d", "--help"])
    assert exit_info.value.code == 0 and "{auto,rsa,dense}" in capsys.readouterr().out
    assert main([*args[:-2], "--volume-fraction", "0.7", "--n", "60", "-o", str(tmp_path / "no.msh")]) == 2
    assert "lower volume_fraction or min_gap" in capsys.readouterr().err
