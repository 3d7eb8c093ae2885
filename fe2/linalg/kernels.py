"""C kernels of the batched RVE solver, compiled at first use and cached on disk.

Compiled with the system C compiler through cffi (as FFCx compiles forms), into
``$FE2_CACHE_DIR`` (default ``$XDG_CACHE_HOME/fe2`` or ``~/.cache/fe2``), keyed by a hash of
the source. Concurrent first uses (MPI ranks) build in private directories and move the
result into place atomically. Two families:

* sparse Cholesky of many matrices with one pattern (:mod:`fe2.linalg.cholesky`);
* finite element kernels on element strain operators (:mod:`fe2.fem.element_operators`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

_CDEF = """
void chol_symbolic(int n, const int* Up, const int* Ui, int* parent, int* count, int* Lp, int* Li, int* work);
void chol_numeric(int n, int P, const int* Ap, const int* Ai, const double* Ax, const int* Lp, const int* Li,
                  const int* Rp, const int* Rk, const int* Rpos, const int* Rrun, double* Lx, double* x,
                  int* failed);
void chol_solve(int n, int P, int R, const int* Lp, const int* Li, const double* Lx, const int* blocks,
                int nblocks, double* y);
void fe_strain(int P, int cells, int nqp, int n, int k, int N, const double* B, const int* dofs,
               const double* w, const double* E, double* out);
void fe_residual(int P, int R, int cells, int nqp, int n, int k, int N, const double* B, const int* dofs,
                 const double* flux, long sP, long sR, long sX, long sI, const double* dV, double scale,
                 double* out);
void fe_assemble(int cells, int nqp, int n, int k, int P, const double* B, const double* D,
                 const int64_t* points, long stride, const double* dV, const int* slot, double* K, double* T);
void fe_sensitivity(int P, int cells, int nqp, int n, int k, int N, const double* B, const int* dofs,
                    const double* dw, const double* tangent, const double* weights, double* avg_stress,
                    double* avg_strain, double* micro, double* scale);
void j2_update(long m, int dim, const double* strain, const double* ep_n, const double* p_n,
               const double* beta_n, double lmbda, double mu, double sigma_y, double H, double H_kin,
               double* stress, double* tangent, double* ep, double* p, double* beta, signed char* ok);
void qp_averages(int P, long X, int n, const double* stress, const double* strain, const double* ref,
                 const double* w, double* avg_stress, double* avg_strain, double* energy, double* scale);
void qp_terms(int P, long X, int n, int c0, int m, const double* tangent, const double* strain,
              const double* w, double* out);
void scatter_sum(int P, long S, long groups, long size, const double* values, const int64_t* order,
                 const int64_t* starts, const int64_t* slots, double* out);
"""

#: The C source (``kernels.c`` next to this module), keyed into the cache by its text.
_SOURCE = (Path(__file__).with_name("kernels.c")).read_text()

#: -march=native: the batch loops vectorise with the machine's widest SIMD (about 2x on AVX2).
#: The cache key includes the CPU's feature flags, so a node of another kind builds its own.
_FLAGS = ["-O3", "-march=native", "-std=c99", "-fno-math-errno"]
_lib = None


def _cpu_signature() -> str:
    """The processor's model and feature flags (Linux), so that natively tuned kernels are
    never loaded on another kind of CPU (clusters with a shared home directory)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return os.uname().machine
    keep = [line for line in lines if line.split(":")[0].strip() in ("flags", "Features", "model name", "CPU part")]
    return os.uname().machine + "\n" + "\n".join(sorted(set(keep)))


def _cache_dir() -> Path:
    """``$FE2_CACHE_DIR``, else ``$XDG_CACHE_HOME/fe2`` or ``~/.cache/fe2``."""
    if os.environ.get("FE2_CACHE_DIR"):
        return Path(os.environ["FE2_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fe2"


def kernels():
    """The compiled kernels (``ffi``, ``lib``), built on first use and cached on disk."""
    global _lib
    if _lib is not None:
        return _lib
    import cffi

    signature = _CDEF + _SOURCE + " ".join(_FLAGS) + sys.version + _cpu_signature()
    tag = hashlib.sha256(signature.encode()).hexdigest()[:16]
    name = f"_fe2_kernels_{tag}"
    directory = _cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    existing = sorted(directory.glob(f"{name}*.so"))
    if existing:
        path = existing[0]
    else:
        ffi = cffi.FFI()
        ffi.cdef(_CDEF)
        ffi.set_source(name, _SOURCE, extra_compile_args=_FLAGS)
        with tempfile.TemporaryDirectory(dir=directory) as build:
            built = Path(ffi.compile(tmpdir=build))
            path = directory / built.name
            os.replace(built, path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _lib = module.ffi, module.lib
    return _lib


def int_pointer(ffi, array: np.ndarray):
    """``int*`` to a C-contiguous int32 array."""
    assert array.dtype == np.int32 and array.flags.c_contiguous
    return ffi.cast("int*", array.ctypes.data)


def double_pointer(ffi, array: np.ndarray):
    """``double*`` to a C-contiguous float64 array."""
    assert array.dtype == np.float64 and array.flags.c_contiguous
    return ffi.cast("double*", array.ctypes.data)
