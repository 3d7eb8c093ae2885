"""Silence HDF5's diagnostic stack (hundreds of lines on stderr for one failed write).

Errors still reach the caller (DOLFINx raises, h5py raises OSError); only HDF5's automatic
printing of its error stack is switched off, in every HDF5 library loaded in the process
(DOLFINx's and h5py's are different builds).
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

H5E_DEFAULT = ctypes.c_int64(0)  # hid_t of the default error stack


def silence_hdf5_diagnostics() -> int:
    """Switch off the automatic error printing of the loaded HDF5 libraries; returns how many."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libhdf5" in line and "_hl" not in line}
    except OSError:
        return 0
    silenced = 0
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
            library.H5Eset_auto2(H5E_DEFAULT, None, None)
            silenced += 1
        except (OSError, AttributeError) as exc:
            log.debug("could not silence %s: %s", path, exc)
    return silenced
