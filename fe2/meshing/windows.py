r"""Windows of a stationary random medium of hard-core balls: statistical volume elements.

Lengths are in units of the mean inclusion diameter :math:`\bar D = 1`.

**The medium.** Discs (2D) or spheres (3D) with diameters uniform in :math:`[1-p, 1+p]`
(``polydispersity`` p), placed by random sequential addition (RSA, largest first) on a torus
of side :math:`M \approx 3L + 2`: diameters are drawn until their balls fill f of
:math:`(3L+2)^d` (to the nearest ball), then M is set so that they fill exactly f of
:math:`M^d`; every two surfaces stay ``min_gap`` g apart. On a torus the process is
stationary (translation invariant); a window :math:`[m, m + L]^d`, :math:`m = (M - L)/2`, is translated to
:math:`[0, L]^d`. Fixing the number of balls in the torus lowers the variance of a window's
content by the factor :math:`1 - (L/M)^d \ge 8/9` (2D), nearly the same at every L.

**Slivers.** So that the cut leaves no feature thinner than :math:`\delta = g/2` (caps,
matrix gaps, corner pieces), a candidate ball that meets the window is inadmissible when,
with :math:`d_k` the distance of its centre to the nearest window plane of axis k, some
:math:`d_k < \delta` or :math:`|\sqrt{\sum_{k \in S} d_k^2} - r| < \delta` for a set of axes S
(tangency to a face, an edge or a corner): the rule of the periodic generator
(:func:`fe2.meshing.packing.boundary_clearance_ok`), applied to the window's planes. Such a
candidate is moved by a random displacement of at most :math:`2\delta` per axis out of the
bands, not dropped: dropping would thin out the balls whose centres lie in the bands (bands
of width ~3δ along every face, a content deficit of order :math:`10\delta/L`), while a small
symmetric displacement changes the window's content only at second order.

**Periodic variant** (for periodic BCs): the same RSA on the torus of side L itself, the
balls' diameters drawn alike and scaled by a common factor so that the volume fraction is
exactly f; the same clearance rule (with the same displacement) keeps the periodic copies
clear of the cell faces. Its scatter comes from the arrangement only, not from the inclusion
content.

**Seeds.** Realisation k of size L (and variant) is drawn with
``numpy.random.SeedSequence(seed, spawn_key=(round(1e6 L), k, periodic))``: it is
reproducible alone, independent of the other sizes and realisations.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fe2.meshing.packing import PackingError, boundary_clearance_ok, periodic_images

log = logging.getLogger(__name__)

#: RSA jamming limits (equal balls, no gap): 2D ~0.547, 3D ~0.385.
JAMMING = {2: 0.547, 3: 0.385}
_BATCH = 32
_JITTERS = 8


def ball_volume(radius: np.ndarray | float, dim: int) -> np.ndarray | float:
    r"""Area :math:`\pi r^2` (2D) or volume :math:`\tfrac43\pi r^3` (3D)."""
    return np.pi * np.square(radius) if dim == 2 else 4.0 / 3.0 * np.pi * np.power(radius, 3)


class RandomMediumSpec(BaseModel):
    """The statistics of the random medium and the mesh of its windows (lengths in diameters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inclusions: Literal["discs", "spheres"] = Field(
        "discs", description="discs (2D, plane strain) or spheres (3D)"
    )
    volume_fraction: float = Field(gt=0.0, description="inclusion volume fraction f of the medium [-]")
    polydispersity: float = Field(
        0.0, ge=0.0, le=0.5,
        description="diameters uniform in [1 - p, 1 + p] (mean diameter 1, the unit of length)",
    )
    min_gap: float = Field(
        0.1, gt=0.0, le=0.5,
        description="smallest distance between inclusion surfaces [diameters]; no feature of a "
        "cut window is thinner than min_gap/2",
    )
    mesh_size: float = Field(0.1, gt=0.0, le=0.5, description="element length h [diameters]")
    inclusion_mesh_size: float | None = Field(
        None, gt=0.0, le=0.5,
        description="element length on the inclusion boundaries [diameters] (default: mesh_size)",
    )

    @property
    def dim(self) -> int:
        return 2 if self.inclusions == "discs" else 3

    @property
    def max_volume_fraction(self) -> float:
        """RSA jamming limit with the gap: f_J (1 + g)^-d (RSA slows down long before)."""
        return JAMMING[self.dim] / (1.0 + self.min_gap) ** self.dim

    @model_validator(mode="after")
    def _packable(self) -> RandomMediumSpec:
        limit = 0.85 * self.max_volume_fraction
        if self.volume_fraction > limit:
            raise ValueError(
                f"volume_fraction: must be <= {limit:.4f} for {self.inclusions} with min_gap "
                f"{self.min_gap:g} (85 % of the random-sequential-addition jamming limit; "
                f"got {self.volume_fraction:g})"
            )
        return self

    def window(self, *, size: float, realisation: int, seed: int, periodic: bool) -> WindowSpec:
        """Realisation ``realisation`` of the window of side ``size`` [diameters]."""
        return WindowSpec(
            **self.model_dump(), size=size, realisation=realisation, seed=seed, periodic=periodic
        )


class WindowSpec(RandomMediumSpec):
    """One statistical volume element: a window of side ``size`` cut from the medium, or the
    periodic variant; meshed with one physical group per phase (1 matrix, 2 inclusions)."""

    type: ClassVar[str] = "random_window"

    size: float = Field(ge=2.0, le=1000.0, description="window edge L [diameters]")
    realisation: int = Field(ge=0, description="realisation number k")
    seed: int = Field(0, ge=0, description="entropy of the numpy SeedSequence of the study")
    periodic: bool = Field(False, description="the periodic variant (for periodic BCs)")

    # ------------------------------------------------------------------ random numbers

    def rng(self) -> np.random.Generator:
        """The generator of this realisation (see the module doc)."""
        key = (int(round(self.size * 1e6)), self.realisation, int(self.periodic))
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    def _diameters(self, rng: np.random.Generator, volume: float) -> np.ndarray:
        """Diameters, largest first, of balls filling ``volume`` (to the nearest ball)."""
        p, dim = self.polydispersity, self.dim
        drawn: list[np.ndarray] = []
        total = 0.0
        while total < volume:  # chunks of 256 draws until the volume is reached
            chunk = np.ones(256) if p == 0.0 else rng.uniform(1.0 - p, 1.0 + p, size=256)
            drawn.append(chunk)
            total += float(np.sum(ball_volume(0.5 * chunk, dim)))
        diameters = np.concatenate(drawn)
        filled = np.cumsum(ball_volume(0.5 * diameters, dim))
        n = int(np.searchsorted(filled, volume))  # filled[n-1] < volume <= filled[n]
        if n == 0 or filled[n] - volume < volume - filled[n - 1]:
            n += 1
        return np.sort(diameters[:n])[::-1]

    # ------------------------------------------------------------------ inclusions

    def balls(self) -> tuple[np.ndarray, np.ndarray]:
        """Centres (n, d) and radii (n,) of the balls that meet the box [0, L]^d.

        Cut window: the balls of the medium within reach of the window, in window
        coordinates (they may stick out). Periodic variant: the n balls of the torus,
        centres in [0, L)^d (their periodic copies are added when meshing).
        """
        rng = self.rng()
        L, dim, gap = self.size, self.dim, self.min_gap
        delta = 0.5 * gap
        if self.periodic:
            diameters = self._diameters(rng, self.volume_fraction * L**dim)
            volume = float(np.sum(ball_volume(0.5 * diameters, dim)))
            radii = 0.5 * diameters * (self.volume_fraction * L**dim / volume) ** (1.0 / dim)
            if 2.0 * radii[0] + gap >= L:
                raise PackingError(f"size {L:g}: an inclusion would touch its periodic image")

            def admissible(c: np.ndarray, r: float) -> np.ndarray:
                return boundary_clearance_ok(c, radius=r, size=L, clearance=delta)

            centres = _rsa(
                radii, box=L, gap=gap, rng=rng, admissible=admissible, dim=dim, jitter=2.0 * delta
            )
            return centres, radii
        radii = 0.5 * self._diameters(rng, self.volume_fraction * (3.0 * L + 2.0) ** dim)
        M = (float(np.sum(ball_volume(radii, dim))) / self.volume_fraction) ** (1.0 / dim)
        lo = 0.5 * (M - L)

        def admissible(c: np.ndarray, r: float) -> np.ndarray:
            x = c - lo
            outside = np.maximum(np.maximum(-x, x - L), 0.0)
            near = np.linalg.norm(outside, axis=1) < r + delta
            mirrored = np.where(x < 0.0, -x, np.where(x > L, 2.0 * L - x, x))
            ok = np.ones(len(c), dtype=bool)
            if near.any():
                ok[near] = boundary_clearance_ok(mirrored[near], radius=r, size=L, clearance=delta)
            return ok

        centres = _rsa(
            radii, box=M, gap=gap, rng=rng, admissible=admissible, dim=dim, jitter=2.0 * delta
        ) - lo
        outside = np.maximum(np.maximum(-centres, centres - L), 0.0)
        meets = np.linalg.norm(outside, axis=1) < radii
        return centres[meets], radii[meets]

    # ------------------------------------------------------------------ mesh

    def phase_names(self) -> dict[int, str]:
        return {1: "matrix", 2: "inclusion"}

    def generate(self, path: str | Path, *, binary: bool = False, verbose: bool = False) -> Path:
        """Mesh the window (or the periodic cell) with gmsh/OCC into ``path`` (MSH 4.1).

        Phases: 1 matrix, 2 inclusions (absent if no ball meets the window). The mesh fills
        [0, L]^d exactly; the periodic variant's opposite faces have matching nodes.
        """
        from fe2.meshing import geometry as geo
        from fe2.meshing.session import gmsh_session

        path = Path(path)
        if path.suffix != ".msh":
            raise ValueError(f"mesh file name must end in '.msh': {path}")
        centres, radii = self.balls()
        dim, L = self.dim, self.size
        with gmsh_session(verbose=verbose, model=self.type):
            if self.periodic:
                copies = [(periodic_images(c, radius=r, size=L), r) for c, r in zip(centres, radii)]
            else:
                copies = [(c[None, :], r) for c, r in zip(centres, radii)]
            balls = [t for cs, r in copies for t in geo.add_balls(cs, radius=r, dim=dim)]
            if balls:
                phases = geo.build_matrix_inclusions(dim=dim, size=L, balls=balls)
            else:
                phases = {1: [geo.add_box(dim=dim, size=L)]}
                import gmsh

                gmsh.model.occ.synchronize()
            if self.periodic:
                geo.set_periodic(dim=dim, size=L)
            h_inc = self.inclusion_mesh_size
            geo.set_mesh_size(
                dim=dim, mesh_size=self.mesh_size, inclusion_mesh_size=h_inc,
                inclusions=phases.get(2, []) if h_inc is not None else (),
            )
            names = {tag: name for tag, name in self.phase_names().items() if tag in phases}
            nodes, cells = geo.mesh_and_tag(dim=dim, phases=phases, names=names)
            geo.write_msh(path, binary=binary)
        log.debug("window L=%g k=%d%s: %d balls, %d nodes, %d cells", L, self.realisation,
                  " (periodic)" if self.periodic else "", len(radii), nodes, cells)
        return path


def _rsa(
    radii: np.ndarray, *, box: float, gap: float, rng: np.random.Generator, admissible, dim: int,
    jitter: float = 0.0,
) -> np.ndarray:
    """Random sequential addition of balls ``radii`` (n,) in the given order on the torus
    [0, box)^dim; surfaces at least ``gap`` apart (minimum image); a candidate must also pass
    ``admissible(centres (m, d), r) -> mask (m,)``. Returns the centres (n, d).

    With ``jitter`` > 0 an inadmissible candidate is not dropped but moved: the first of 8
    admissible positions ``c + U(-jitter, jitter)^d`` replaces it (dropped if none is). Its
    ball then still exists, a little displaced, so excluded bands do not thin out the balls
    nearby (dropping would lower the inclusion content near the bands).

    Candidates come in batches of 32 from ``rng``; the first admissible one clear of the
    placed balls is taken. A cell grid of side >= 2 r_max + gap holds the placed balls, so a
    candidate is checked against the 3^d cells around it.
    """
    n = len(radii)
    cells = max(1, int(box // (2.0 * float(np.max(radii)) + gap)))
    side = box / cells
    grid = np.full((cells**dim, 4), -1, dtype=np.int64)  # ball ids per cell, -1: empty slot
    fill = np.zeros(cells**dim, dtype=np.int64)
    offsets = np.array(list(itertools.product((-1, 0, 1), repeat=dim)))
    strides = cells ** np.arange(dim - 1, -1, -1)
    centres = np.empty((n, dim))
    attempts, limit = 0, 20_000 + 2_000 * n
    for i, r in enumerate(radii):
        while True:
            if attempts >= limit:
                f = float(np.sum(ball_volume(radii, dim)) / box**dim)
                raise PackingError(
                    f"could not place {n} inclusions (volume fraction {f:.3g}, min_gap {gap:g}) "
                    f"in a box of side {box:g}: placed {i} after {attempts} attempts"
                )
            candidates = rng.uniform(0.0, box, size=(_BATCH, dim))
            attempts += _BATCH
            ok = admissible(candidates, float(r))
            if jitter > 0.0 and not ok.all():
                moved = (candidates[~ok][:, None, :]
                         + rng.uniform(-jitter, jitter, size=(np.count_nonzero(~ok), _JITTERS, dim))) % box
                good = admissible(moved.reshape(-1, dim), float(r)).reshape(-1, _JITTERS)
                first = np.argmax(good, axis=1)
                rescued = good[np.arange(len(first)), first]
                candidates[np.flatnonzero(~ok)[rescued]] = moved[rescued, first[rescued]]
                ok[np.flatnonzero(~ok)[rescued]] = True
            candidates = candidates[ok]
            if len(candidates) == 0:
                continue
            keys = np.floor(candidates / side).astype(np.int64) % cells
            neighbours = ((keys[:, None, :] + offsets) % cells) @ strides  # (m, 3^d)
            ids = grid[neighbours].reshape(len(candidates), -1)
            diff = centres[np.maximum(ids, 0)] - candidates[:, None, :]
            diff -= box * np.round(diff / box)
            clash = (np.linalg.norm(diff, axis=2) < radii[np.maximum(ids, 0)] + r + gap) & (ids >= 0)
            free = np.flatnonzero(~clash.any(axis=1))
            if len(free):
                break
        centres[i] = candidates[free[0]]
        cell = int(keys[free[0]] @ strides)
        if fill[cell] == grid.shape[1]:
            grid = np.hstack([grid, np.full_like(grid, -1)])
        grid[cell, fill[cell]] = i
        fill[cell] += 1
    return centres
