r"""Pydantic models of the RVE mesh generators (the single source of parameters).

Every RVE is the periodic box :math:`[0, L]^d` (``size`` :math:`L`, length units),
meshed with linear simplices, one physical group per phase:

* inclusion kinds: ``1 = "matrix"``, ``2 = "inclusion"``;
* ``laminate_2d``: ``i = "layer_i"`` for i = 1..N.

``spec.generate(path)`` writes a periodic gmsh MSH 4.1 file.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fe2.meshing.packing import pack_balls

log = logging.getLogger(__name__)

BOUNDARY_GAP = 0.01
"""Minimal distance of a centred inclusion to the cell boundary, relative to ``size``."""

MAX_INCLUSION_2D = math.pi * (0.5 - BOUNDARY_GAP) ** 2
"""Largest volume fraction of the centred circle (radius <= (0.5 - gap) L), ~0.7543."""

MAX_INCLUSION_3D = 4.0 / 3.0 * math.pi * (0.5 - BOUNDARY_GAP) ** 3
"""Largest volume fraction of the centred sphere, ~0.4928."""

_MATRIX_INCLUSION = {1: "matrix", 2: "inclusion"}

SIMPLICES_PER_CUBE = {2: 2.31, 3: 8.49}
"""Regular simplices of edge h per h^d: 4/sqrt(3) triangles, 6 sqrt(2) tetrahedra."""


def ball_radius(*, volume_fraction: float, n: int, dim: int, size: float) -> float:
    r"""Radius of ``n`` equal balls filling ``volume_fraction`` of :math:`L^d`.

    2D: :math:`n \pi r^2 = f L^2`; 3D: :math:`n \tfrac43 \pi r^3 = f L^3`.
    """
    if dim == 2:
        return size * math.sqrt(volume_fraction / (n * math.pi))
    return size * (3.0 * volume_fraction / (4.0 * n * math.pi)) ** (1.0 / 3.0)


class _RveSpec(BaseModel):
    """Common fields and the generation driver."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    dim: ClassVar[int] = 2
    #: The cell is a sample of a statistically isotropic microstructure (random inclusions):
    #: its effective tensor should be isotropic (in-plane in 2D) up to the sampling error.
    statistically_isotropic: ClassVar[bool] = False

    size: float = Field(1.0, gt=0.0, description="edge length L of the cell [0, L]^d [length]")
    mesh_size: float = Field(gt=0.0, description="characteristic element length h [length]")

    @field_validator("mesh_size")
    @classmethod
    def _mesh_size_below_cell(cls, value: float, info: ValidationInfo) -> float:
        size = info.data.get("size")
        if size is not None and value > 0.5 * size:
            raise ValueError(f"must be <= size/2 = {0.5 * size:g} (got {value:g})")
        return value

    def phase_names(self) -> dict[int, str]:
        """Physical tag -> physical name of the cell groups."""
        return dict(_MATRIX_INCLUSION)

    def estimated_cells(self) -> float:
        """Rough cell count before meshing: L^d / h^d times the cells per h^d of regular
        simplices (2.3 triangles, 8.5 tetrahedra), h the smallest size asked for."""
        h = min(self.mesh_size, getattr(self, "inclusion_mesh_size", None) or math.inf)
        return SIMPLICES_PER_CUBE[self.dim] * (self.size / h) ** self.dim

    def expected_volume_fractions(self) -> dict[int, float]:
        """Exact (geometric) volume fraction of each phase, before discretization."""
        raise NotImplementedError

    def generate(self, path: str | Path, *, binary: bool = False, verbose: bool = False) -> Path:
        """Build the periodic RVE with gmsh/OCC and write it as MSH 4.1 to ``path``.

        ``path`` must end in ``.msh``; parent directories are created; the file is
        replaced atomically. Returns the path.
        """
        path = Path(path)
        if path.suffix != ".msh":
            raise ValueError(f"mesh file name must end in '.msh': {path}")
        from fe2.meshing import geometry as geo
        from fe2.meshing.session import gmsh_session

        with gmsh_session(verbose=verbose, model=self.type):  # type: ignore[attr-defined]
            phases = self._build_geometry()
            geo.set_periodic(dim=self.dim, size=self.size)
            h_inclusion = getattr(self, "inclusion_mesh_size", None)
            geo.set_mesh_size(
                dim=self.dim,
                mesh_size=self.mesh_size,
                inclusion_mesh_size=h_inclusion,
                inclusions=phases[2] if h_inclusion is not None else (),
            )
            self._refine(geo)
            nodes, cells = geo.mesh_and_tag(dim=self.dim, phases=phases, names=self.phase_names())
            geo.write_msh(path, binary=binary)
        log.debug("wrote %s: %d nodes, %d cells", path, nodes, cells)
        return path

    def _build_geometry(self) -> dict[int, list[int]]:
        raise NotImplementedError

    def _refine(self, geo) -> None:
        """Local mesh refinement after the sizes are set (none by default)."""


class _CentredInclusion(_RveSpec):
    """A single ball of the requested volume fraction at the cell centre."""

    _f_max: ClassVar[float] = MAX_INCLUSION_2D

    volume_fraction: float = Field(gt=0.0, description="inclusion volume fraction f [-]")
    inclusion_mesh_size: float | None = Field(
        None, gt=0.0,
        description="element length on the inclusion boundary [length] (default: mesh_size)",
    )

    @field_validator("volume_fraction")
    @classmethod
    def _fits_in_cell(cls, value: float) -> float:
        if value > cls._f_max:
            raise ValueError(
                f"must be <= {cls._f_max:.6f} so that the inclusion stays "
                f"{BOUNDARY_GAP:g}*size away from the cell boundary (got {value:g})"
            )
        return value

    @property
    def radius(self) -> float:
        """Inclusion radius r [length]."""
        return ball_radius(volume_fraction=self.volume_fraction, n=1, dim=self.dim, size=self.size)

    def expected_volume_fractions(self) -> dict[int, float]:
        return {1: 1.0 - self.volume_fraction, 2: self.volume_fraction}

    def _build_geometry(self) -> dict[int, list[int]]:
        from fe2.meshing import geometry as geo

        centre = np.full(self.dim, 0.5 * self.size)
        balls = geo.add_balls(centre, radius=self.radius, dim=self.dim)
        return geo.build_matrix_inclusions(dim=self.dim, size=self.size, balls=balls)


class Inclusion2DSpec(_CentredInclusion):
    r"""Square cell with one centred circular inclusion.

    Radius from :math:`f = \pi r^2 / L^2`; :math:`f \le \pi (1/2 - 0.01)^2`.
    """

    type: Literal["inclusion_2d"] = "inclusion_2d"


class Inclusion3DSpec(_CentredInclusion):
    r"""Cubic cell with one centred spherical inclusion.

    Radius from :math:`f = \tfrac43\pi r^3 / L^3`; :math:`f \le \tfrac43\pi (1/2 - 0.01)^3`.
    """

    dim: ClassVar[int] = 3
    _f_max: ClassVar[float] = MAX_INCLUSION_3D

    type: Literal["inclusion_3d"] = "inclusion_3d"


class _RandomInclusions(_RveSpec):
    """``n`` equal non-overlapping balls at random positions, wrapped periodically."""

    statistically_isotropic: ClassVar[bool] = True

    n: int = Field(ge=1, le=10_000, description="number of inclusions")
    volume_fraction: float = Field(
        gt=0.0, lt=0.74, description="total inclusion volume fraction f [-]"
    )
    min_gap: float = Field(
        0.02, gt=0.0,
        description="minimal periodic distance between inclusion surfaces [length]; "
        "inclusions also stay min_gap/2 away from tangency to the cell boundary",
    )
    seed: int = Field(0, ge=0, description="seed of numpy.random.default_rng for the positions")
    max_attempts: int = Field(
        100_000, ge=1, le=100_000_000,
        description="maximal number of random position trials of random sequential addition",
    )
    packing: Literal["auto", "rsa", "dense"] = Field(
        "auto",
        description="placement: 'rsa' random sequential addition (jams near 55 % discs / 38 % "
        "spheres, counting min_gap/2 around each), 'dense' collective rearrangement (to about "
        "80 % discs / 60 % spheres, counting the gaps), 'auto' RSA where it can, else dense",
    )

    @field_validator("min_gap")
    @classmethod
    def _inclusion_clear_of_own_image(cls, value: float, info: ValidationInfo) -> float:
        data = info.data
        if {"n", "volume_fraction", "size"} <= data.keys():
            r = ball_radius(volume_fraction=data["volume_fraction"], n=data["n"], dim=cls.dim,
                            size=data["size"])
            if 2.0 * r + value >= data["size"]:
                raise ValueError(
                    f"inclusion diameter 2r = {2 * r:g} plus min_gap {value:g} must be "
                    f"< size {data['size']:g} (an inclusion would touch its periodic image)"
                )
        return value

    @model_validator(mode="after")
    def _packing_possible(self) -> _RandomInclusions:
        self.centres()  # raises PackingError (a ValueError) when the packing fails
        return self

    @property
    def radius(self) -> float:
        """Radius r of every inclusion [length]."""
        return ball_radius(
            volume_fraction=self.volume_fraction, n=self.n, dim=self.dim, size=self.size
        )

    def centres(self) -> np.ndarray:
        """Inclusion centres in [0, L)^d, shape (n, d); deterministic from ``seed``."""
        return np.array(
            pack_balls(
                n=self.n, radius=self.radius, dim=self.dim, size=self.size,
                min_gap=self.min_gap, seed=self.seed, max_attempts=self.max_attempts,
                packing=self.packing,
            )
        )

    def expected_volume_fractions(self) -> dict[int, float]:
        return {1: 1.0 - self.volume_fraction, 2: self.volume_fraction}

    def _build_geometry(self) -> dict[int, list[int]]:
        from fe2.meshing import geometry as geo
        from fe2.meshing.packing import periodic_images

        copies = [periodic_images(c, radius=self.radius, size=self.size) for c in self.centres()]
        balls = geo.add_balls(np.vstack(copies), radius=self.radius, dim=self.dim)
        return geo.build_matrix_inclusions(dim=self.dim, size=self.size, balls=balls)

    def _refine(self, geo) -> None:
        """Elements of twice the layer thickness where two inclusions leave a matrix gap
        narrower than mesh_size/2 (ligaments of dense packings, where the stress
        concentrates) or an inclusion and a face of the cell a layer thinner than
        mesh_size/3 (an artefact of where the cell is cut: refined for the element shape)."""
        from fe2.meshing.packing import narrow_spots

        h = self.mesh_size
        points, thickness, reach = narrow_spots(
            self.centres(), radius=self.radius, size=self.size, gap_width=h / 2, face_width=h / 3
        )
        fields = geo.refine_spots(
            points, sizes=2.0 * thickness, radii=reach, mesh_size=h, size=self.size, dim=self.dim
        )
        if fields:
            log.debug("refined %d thin layers (%d gmsh fields)", len(thickness), fields)


class RandomInclusions2DSpec(_RandomInclusions):
    """Square cell with n random equal circular inclusions, wrapped periodically."""

    type: Literal["random_inclusions_2d"] = "random_inclusions_2d"


class RandomInclusions3DSpec(_RandomInclusions):
    """Cubic cell with n random equal spherical inclusions, wrapped periodically."""

    dim: ClassVar[int] = 3

    type: Literal["random_inclusions_3d"] = "random_inclusions_3d"


class Laminate2DSpec(_RveSpec):
    """Square cell of N layers stacked along x1 (interfaces x1 = const).

    Layer i (i = 1..N, from x1 = 0) has width ``fractions[i-1] * size``, tag i, name ``layer_i``.
    """

    type: Literal["laminate_2d"] = "laminate_2d"
    fractions: list[float] = Field(
        min_length=1, max_length=1000,
        description="volume fraction of each layer, in order along x1 (sum 1)",
    )

    @field_validator("fractions")
    @classmethod
    def _positive_sum_one(cls, value: list[float]) -> list[float]:
        if any(not (f > 0.0) for f in value):
            raise ValueError(f"every fraction must be > 0 (got {value})")
        total = math.fsum(value)
        if abs(total - 1.0) > 1e-12:
            raise ValueError(f"must sum to 1 within 1e-12 (sum = {total!r})")
        return value

    def phase_names(self) -> dict[int, str]:
        return {i + 1: f"layer_{i + 1}" for i in range(len(self.fractions))}

    def interfaces(self) -> list[float]:
        """Interior interface positions x1 = L * sum_{j<=i} f_j, i = 1..N-1 [length]."""
        f = self.fractions
        return [self.size * math.fsum(f[: i + 1]) for i in range(len(f) - 1)]

    def expected_volume_fractions(self) -> dict[int, float]:
        xs = [0.0, *self.interfaces(), self.size]
        return {i + 1: (b - a) / self.size for i, (a, b) in enumerate(zip(xs[:-1], xs[1:]))}

    def _build_geometry(self) -> dict[int, list[int]]:
        from fe2.meshing import geometry as geo

        return geo.build_layers(size=self.size, interfaces=self.interfaces())


MeshSpec = Annotated[
    Inclusion2DSpec
    | RandomInclusions2DSpec
    | Laminate2DSpec
    | Inclusion3DSpec
    | RandomInclusions3DSpec,
    Field(discriminator="type"),
]
"""Any RVE mesh spec, selected by its ``type`` field."""

MESH_SPECS: dict[str, type[BaseModel]] = {
    "inclusion_2d": Inclusion2DSpec,
    "random_inclusions_2d": RandomInclusions2DSpec,
    "laminate_2d": Laminate2DSpec,
    "inclusion_3d": Inclusion3DSpec,
    "random_inclusions_3d": RandomInclusions3DSpec,
}

_ADAPTER: TypeAdapter[Any] = TypeAdapter(MeshSpec)


def parse_mesh_spec(data: Any) -> BaseModel:
    """Validate a mapping (or an existing spec) into the matching spec model."""
    return _ADAPTER.validate_python(data)
