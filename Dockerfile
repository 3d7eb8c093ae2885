# fe2 image: the same install route as CI (scripts/setup.sh on Python 3.12 + gcc).
#   docker build -t fe2 .
#   docker run --rm -v "$PWD/results:/opt/fe2/results" fe2 homogenize configs/fibre_2d.yaml --bc all
#   docker run --rm fe2 mpiexec -n 2 fe2 homogenize configs/fibre_2d.yaml --bc all   (see README)
FROM python:3.12-slim

# gcc: FFCx compiles forms at run time. The X/GL libraries are load-time dependencies of the
# gmsh wheel (no display is used).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libgomp1 libglu1-mesa libgl1 \
       libxrender1 libxcursor1 libxfixes3 libxext6 libxft2 libfontconfig1 libxinerama1 libx11-6 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/fe2
COPY pyproject.toml README.md ./
COPY scripts ./scripts
COPY fe2 ./fe2
RUN bash scripts/setup.sh
COPY . .
ENV PATH=/opt/fe2/.venv/bin:$PATH \
    OMP_NUM_THREADS=1
# Compile the forms once at build time so containers start warm.
RUN fe2 homogenize configs/fibre_2d.yaml --bc all -o /tmp/warmup -q && rm -rf /tmp/warmup
ENTRYPOINT ["fe2"]
CMD ["info"]
