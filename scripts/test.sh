#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the test suite serially and under `mpiexec -n 2`.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k laminate`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=1
echo "== serial =="
.venv/bin/python -m pytest -q "$@"
echo "== mpiexec -n 2 =="
.venv/bin/mpiexec -n 2 .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
