"""`fe2 lattice chain`: dispersion and critical stretch of a stretched 1D chain."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from fe2.errors import InputError
from fe2.io.arguments import integer, number
from fe2.lattice.cauchy_born import CauchyBorn
from fe2.lattice.chain import critical_stretch, write_dispersion
from fe2.lattice.potentials import CUTOFF_KINDS, POTENTIALS, CutOff, LennardJones, Morse

log = logging.getLogger(__name__)

#: Potential parameters: option -> (potential, default).
PARAMETERS = {
    "epsilon": ("lennard_jones", 1.0), "sigma": ("lennard_jones", 1.0),
    "D": ("morse", 1.0), "alpha": ("morse", 1.0), "r0": ("morse", 1.0),
}


def add_lattice_parser(commands, parents: list[argparse.ArgumentParser]) -> None:
    lattice = commands.add_parser(
        "lattice", help="lattice utilities (Cauchy-Born stability)", parents=parents,
        description="Lattice utilities of the Cauchy-Born laws.",
    )
    sub = lattice.add_subparsers(dest="lattice_command", required=True, metavar="UTILITY")
    chain = sub.add_parser(
        "chain", parents=parents, help="dispersion and critical stretch of a stretched 1D chain",
        description="Phonon dispersion omega^2(q) of a uniformly stretched 1D chain of atoms "
        "with a pair potential, and the critical stretch at which it becomes unstable "
        "(printed as 'critical stretch <value>'); writes chain_dispersion.png/.csv.",
    )
    chain.add_argument("--potential", choices=sorted(POTENTIALS), default="lennard_jones")
    for name, (potential, default) in PARAMETERS.items():
        chain.add_argument(f"--{name}", default=str(default), help=f"{potential} parameter (default {default})")
    chain.add_argument("--cutoff", help="cut-off radius (default 1.5 x the distance of the potential's minimum)")
    chain.add_argument("--cutoff-kind", choices=CUTOFF_KINDS, default="smooth")
    chain.add_argument("--cutoff-inner", help="smooth cut-off: where the switch starts (default 0.9 x cutoff)")
    chain.add_argument("--lattice-constant", help="spacing a of the unstretched chain (default: equilibrium)")
    chain.add_argument("--stretches", nargs="+", help="stretches of the plot (default: 1, between, critical, beyond)")
    chain.add_argument("--grid", default="64", help="wave numbers in the Brillouin zone for the check (even, >= 4)")
    chain.add_argument("--limit", default="2.0", help="largest stretch examined (default 2)")
    chain.add_argument("--output", "-o", default="results/chain", help="output directory")
    chain.add_argument("--overwrite", action="store_true", help="replace existing result files")


def _chain_law(args: argparse.Namespace) -> CauchyBorn:
    values = {name: number(getattr(args, name), f"--{name}", positive=True) for name in PARAMETERS}
    if args.potential == "lennard_jones":
        potential = LennardJones(epsilon=values["epsilon"], sigma=values["sigma"])
    else:
        potential = Morse(D=values["D"], alpha=values["alpha"], r0=values["r0"])
    radius = 1.5 * potential.minimum if args.cutoff is None else number(args.cutoff, "--cutoff", positive=True)
    inner = None if args.cutoff_inner is None else number(args.cutoff_inner, "--cutoff-inner", positive=True)
    if inner is not None and inner >= radius:
        raise InputError(f"--cutoff-inner: must be < the cut-off radius {radius:g}, got {inner:g}")
    a = None if args.lattice_constant is None else number(args.lattice_constant, "--lattice-constant", positive=True)
    try:
        return CauchyBorn("chain", CutOff(potential, radius, args.cutoff_kind, inner), a)
    except ValueError as exc:
        raise InputError(f"--cutoff: {exc}") from None


def run_chain(args: argparse.Namespace) -> int:
    """Print the chain's bonds and critical stretch, write the dispersion plot (rank 0)."""
    law = _chain_law(args)
    grid = integer(args.grid, "--grid", minimum=4)
    if grid % 2:
        raise InputError(f"--grid: must be even (so that q = pi/a is on it), got {grid}")
    limit = number(args.limit, "--limit", minimum=1.0 + 1e-9)
    output = Path(args.output)
    clashes = [output / n for n in ("chain_dispersion.png", "chain_dispersion.csv") if (output / n).exists()]
    if clashes and not args.overwrite:
        raise InputError(f"{clashes[0]} exists; choose another --output or pass --overwrite to replace it")
    stretches = None
    if args.stretches:
        stretches = [number(s, "--stretches", positive=True) for s in args.stretches]
    a = law.lattice.a
    shells = ", ".join(f"{c} at {r:.6g}" for r, c in law.lattice.shells(law.potential.radius))
    print(f"chain: {args.potential}, cut-off {law.potential.radius:.6g} ({law.potential.kind}); "
          f"bonds per atom: {shells}")
    print(f"lattice constant {a:.15g}")
    critical = critical_stretch(law, grid=grid, limit=limit)
    if critical.stretch is None:
        print(f"stable up to stretch {limit:g}: no critical stretch")
        default = [1.0, 0.5 * (1.0 + limit), limit]
    else:
        print(f"critical stretch {critical.stretch:.15g}")
        print(f"soft mode at q a = {critical.qa / 3.141592653589793:.6g} pi "
              f"({'zone boundary' if abs(critical.qa - 3.141592653589793) < 1e-12 else 'inside the zone'})")
        c = critical.stretch
        default = [1.0, 0.5 * (1.0 + c), c, c + 0.5 * (c - 1.0)]
    paths = write_dispersion(law, stretches or default, output)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
