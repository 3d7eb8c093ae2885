"""FE² against a fully resolved simulation (VERIFICATION.md item 10).

A strip [0, 2] x [0, 1] of N x M periodic laminate cells of size eps (layers normal to x1:
a J2-plastic and an elastic layer), stretched by rollers (u_x = 0 on the left, 2 * 0.02 on
the right, u_y = 0 at the bottom, top free). The homogenised field is exactly uniform, so the
FE² answer (unit cell as RVE) has no macro discretisation error and does not depend on eps;
the resolved solution (DNS) differs by the boundary layer at the free edge, of width ~ eps:
the reaction force converges to the FE² one at rate ~1 in eps.
"""

import numpy as np
from dolfinx import mesh as dmesh
from mpi4py import MPI

from fe2.macro.problem import Dirichlet, MacroProblem
from fe2.macro.stepping import run_load_steps
from fe2.materials import J2Plasticity, LinearElastic
from fe2.materials.points import PhasePoints
from fe2.rve.model import RveModel
from fe2.rve.factory import make_rve_solver
from fe2.rve.micro_solver import NewtonOptions
from fe2.physics import make_physics
from fe2.rve.pool import RvePool

comm = MPI.COMM_WORLD
PHYSICS = make_physics("elasticity", 2)
LAWS = {1: J2Plasticity(E=1.0, nu=0.3, sigma_y=0.01, H=0.1), 2: LinearElastic(E=5.0, nu=0.2)}
LENGTH, HEIGHT, STRAIN = 2.0, 1.0, 0.02
LOADS = [0.25, 0.5, 0.75, 1.0]
NEWTON = NewtonOptions(rtol=1e-10)


def rollers(domain):
    def facets(marker):
        return dmesh.locate_entities_boundary(domain, 1, marker)

    return [
        Dirichlet("left", facets(lambda x: np.isclose(x[0], 0.0)), 0, 0.0),
        Dirichlet("right", facets(lambda x: np.isclose(x[0], LENGTH)), 0, STRAIN * LENGTH),
        Dirichlet("bottom", facets(lambda x: np.isclose(x[1], 0.0)), 1, 0.0),
    ]


def reaction(problem):
    return run_load_steps(problem, LOADS)[-1].reactions["right"][0]


def dns_reaction(eps, per_cell=4, degree=2):
    """Resolved strip: quads conforming to the layers, per_cell elements per cell edge."""
    n, m = round(LENGTH / eps), round(HEIGHT / eps)
    domain = dmesh.create_rectangle(
        comm, [[0, 0], [LENGTH, HEIGHT]], [n * per_cell, m * per_cell], cell_type=dmesh.CellType.quadrilateral
    )
    cells = domain.topology.index_map(2).size_local
    x = dmesh.compute_midpoints(domain, 2, np.arange(cells, dtype=np.int32))
    tags = np.where((x[:, 0] / eps) % 1.0 < 0.5, 1, 2)
    problem = MacroProblem(
        domain, PHYSICS, degree,
        lambda points: PhasePoints(LAWS, np.repeat(tags, points // max(cells, 1)), dim=2, n_comp=3),
        dirichlet=rollers(domain), newton=NEWTON,
    )
    value = reaction(problem)
    problem.destroy()
    return value


def fe2_reaction(make_mesh):
    rve = make_mesh(type="laminate_2d", fractions=[0.5, 0.5], mesh_size=0.125)
    model = RveModel(rve.mesh, rve.cell_tags, PHYSICS, LAWS)
    domain = dmesh.create_rectangle(comm, [[0, 0], [LENGTH, HEIGHT]], [2, 1], cell_type=dmesh.CellType.quadrilateral)
    problem = MacroProblem(domain, PHYSICS, 1, lambda m: RvePool(make_rve_solver(model, "periodic"), m),
                           dirichlet=rollers(domain), newton=NEWTON)
    value = reaction(problem)
    assert problem.points.num_points == 0 or problem.points.point_fields()["equivalent_plastic_strain"].max() > 0
    problem.destroy()
    return value


def test_fe2_converges_to_dns_as_cells_shrink(make_mesh, record_property):
    reference = fe2_reaction(make_mesh)
    sizes = [0.5, 0.25, 0.125]
    errors = [abs(dns_reaction(eps) - reference) / abs(reference) for eps in sizes]
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    record_property("dns_errors", errors)
    record_property("dns_rates", rates.tolist())
    print(f"DNS vs FE2 reaction: errors {errors}, observed rates {rates}")
    assert errors[0] > errors[1] > errors[2]
    assert errors[-1] < 0.05
    assert all(rates > 0.8), rates  # O(eps): the free-edge boundary layer
