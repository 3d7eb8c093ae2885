"""Conduction FE² against a fully resolved strip of cells (the DNS ε-study of issue 13).

A strip [0, 1] x [0, eps] of N = 1/eps square cells of size eps in one row, T = 0 on the left,
T = 1 on the right, top and bottom insulated (the cells are mirror-symmetric in y, so this is
the periodic row). Each cell: a square inclusion (k = 10, linear), half the cell wide, in a
matrix k(T) = 1 + alpha T (contrast 10 .. 5 for alpha = 1). FE²: the cell, meshed exactly as
one DNS cell (8 x 8 P2 quadrilaterals), as periodic RVE on a macro strip; compared: the heat
flow per unit height through the right end.

- Centred inclusion: the cell is mirror-symmetric in x, so the periodic corrector vanishes on
  the cell faces x = 0, 1 and the Dirichlet ends cause no boundary layer. With a linear matrix
  (alpha = 0) the DNS then equals FE² at every eps (to round-off); with k(T) the error comes from
  the variation of the macro gradient across a cell: O(eps^2).
- Off-centre inclusion: the corrector does not vanish at the ends; the boundary layer of width
  ~ eps at each end gives an O(eps) error.
The homogenised heat flow does not depend on where the inclusion sits in the cell (periodic
homogenisation is translation invariant): the two FE² answers agree to the solver tolerance.
"""

import functools

import numpy as np
import pytest
from dolfinx import mesh as dmesh
from mpi4py import MPI

from fe2.macro.problem import Dirichlet, MacroProblem
from fe2.macro.stepping import run_load_steps
from fe2.materials import LinearConductor
from fe2.materials.points import PhasePoints
from fe2.materials.transport import TemperatureDependentConductor
from fe2.physics import make_physics
from fe2.rve.factory import make_rve_solver
from fe2.rve.micro_solver import NewtonOptions
from fe2.rve.model import RveModel
from fe2.rve.pool import RvePool

comm = MPI.COMM_WORLD
PER_CELL, DEGREE = 8, 2  # elements per cell edge (the inclusion edges fall on element edges); P2
NEWTON = NewtonOptions(rtol=1e-10)
PHYSICS = make_physics("conduction", 2, [TemperatureDependentConductor(k0=1.0, alpha=0.0)])  # strain (grad T, T)


def laws(alpha):
    return {1: TemperatureDependentConductor(k0=1.0, alpha=alpha, T0=0.0), 2: LinearConductor(k=10.0)}


def phase_tags(domain, eps, centre):
    """Tag 2 in the square inclusion |x/eps - centre| < 1/4, |y/eps - 1/2| < 1/4 of each cell."""
    cells = domain.topology.index_map(2).size_local
    x = dmesh.compute_midpoints(domain, 2, np.arange(cells, dtype=np.int32))
    u, v = (x[:, 0] / eps) % 1.0, (x[:, 1] / eps) % 1.0
    return np.where((np.abs(u - centre) < 0.25) & (np.abs(v - 0.5) < 0.25), 2, 1).astype(np.int32)


def heat_flow(domain, make_points, height):
    """Heat flow per unit height out through x = 1 (T = 0 at x = 0, T = 1 at x = 1)."""
    def facets(marker):
        return dmesh.locate_entities_boundary(domain, 1, marker)

    ends = [Dirichlet("left", facets(lambda x: np.isclose(x[0], 0.0)), None, 0.0),
            Dirichlet("right", facets(lambda x: np.isclose(x[0], 1.0)), None, 1.0)]
    problem = MacroProblem(domain, PHYSICS, DEGREE, make_points, dirichlet=ends, newton=NEWTON)
    record = run_load_steps(problem, [1.0])[-1]
    problem.destroy()
    return float(np.ravel(record.reactions["right"])[0]) / height


def dns(eps, *, alpha, centre):
    n = round(1 / eps)
    domain = dmesh.create_rectangle(comm, [[0, 0], [1, eps]], [n * PER_CELL, PER_CELL],
                                    cell_type=dmesh.CellType.quadrilateral)
    tags = phase_tags(domain, eps, centre)
    return heat_flow(domain, lambda m: PhasePoints(laws(alpha), np.repeat(tags, m // max(len(tags), 1)),
                                                   dim=2, n_comp=PHYSICS.n_comp), eps)


@functools.cache
def fe2(*, alpha, centre):
    cell = dmesh.create_rectangle(MPI.COMM_SELF, [[0, 0], [1, 1]], [PER_CELL, PER_CELL],
                                  cell_type=dmesh.CellType.quadrilateral)
    tags = phase_tags(cell, 1.0, centre)
    cell_tags = dmesh.meshtags(cell, 2, np.arange(len(tags), dtype=np.int32), tags)
    model = RveModel(cell, cell_tags, PHYSICS, laws(alpha), degree=DEGREE)
    solver = make_rve_solver(model, "periodic", newton=NewtonOptions(rtol=1e-12))
    height = 0.25
    domain = dmesh.create_rectangle(comm, [[0, 0], [1, height]], [4, 1], cell_type=dmesh.CellType.quadrilateral)
    return heat_flow(domain, lambda m: RvePool(solver, m), height)


def test_linear_symmetric_cells_dns_equals_fe2_at_every_eps():
    reference = fe2(alpha=0.0, centre=0.5)
    for eps in (1 / 2, 1 / 4):
        assert dns(eps, alpha=0.0, centre=0.5) == pytest.approx(reference, rel=1e-10)


@pytest.mark.parametrize("centre,rate", [(0.375, 1.0), (0.5, 2.0)], ids=["off-centre", "centred"])
def test_nonlinear_fe2_converges_to_dns_as_cells_shrink(centre, rate, record_property):
    reference = fe2(alpha=1.0, centre=centre)
    sizes = [1 / 2, 1 / 4, 1 / 8]
    errors = np.array([abs(dns(eps, alpha=1.0, centre=centre) - reference) / reference for eps in sizes])
    rates = np.log2(errors[:-1] / errors[1:])
    record_property("dns_errors", errors.tolist())
    record_property("dns_rates", rates.tolist())
    print(f"conduction DNS vs FE² heat flow (centre {centre}): errors {errors}, rates {rates}")
    assert np.all(errors[1:] < errors[:-1])
    assert np.all(np.abs(rates - rate) < 0.15), rates


def test_fe2_heat_flow_does_not_depend_on_where_the_inclusion_sits():
    assert fe2(alpha=1.0, centre=0.375) == pytest.approx(fe2(alpha=1.0, centre=0.5), rel=1e-9)
    assert fe2(alpha=1.0, centre=0.5) > 1.1 * fe2(alpha=0.0, centre=0.5)  # k(T) matters here
