"""One BLAS thread while a kernel runs.

Kernels that multiply large matrices (rung 2's, docs/design.md §7.8) call BLAS through
Numba, which uses SciPy's OpenBLAS. Left alone, OpenBLAS starts its own threads for every
large product, on top of the batch-of-runs ``prange`` that already keeps each core busy
with one run: the threads then fight for the cores (a step of a small LSTM took 2.7 ms
with one BLAS thread and 7–44 ms without). `one_blas_thread` sets SciPy's OpenBLAS to one
thread for the length of a kernel call and restores the count after; the parallelism is
the engine's, over runs. One thread also fixes the products' bits: OpenBLAS's threaded
driver cuts the summed dimension into other blocks than its one-thread driver does (a
product summing over 464 differs in its last bits), so a kernel's products are the same
whatever the machine's thread settings, alone or among runs.

Where SciPy's BLAS is not an OpenBLAS this module can find, nothing is changed; set
``OPENBLAS_NUM_THREADS=1`` (or your BLAS's equivalent) before starting Python instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import threading

_LOCK = threading.Lock()
_LIB = None
_SEARCHED = False


def _openblas():
    """SciPy's bundled OpenBLAS (its ``set``/``get_num_threads``), or None."""
    global _LIB, _SEARCHED
    if _SEARCHED:
        return _LIB
    _SEARCHED = True
    try:
        import scipy

        libs = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs")
        for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas*.so*"))):
            lib = ctypes.CDLL(path)
            if hasattr(lib, "scipy_openblas_set_num_threads") and hasattr(lib, "scipy_openblas_get_num_threads"):
                lib.scipy_openblas_get_num_threads.restype = ctypes.c_int
                lib.scipy_openblas_set_num_threads.argtypes = [ctypes.c_int]
                _LIB = lib
                break
    except OSError:  # pragma: no cover - a SciPy without a loadable bundled OpenBLAS
        _LIB = None
    return _LIB


@contextlib.contextmanager
def one_blas_thread():
    """Run the body with SciPy's OpenBLAS on one thread (nested uses are fine)."""
    lib = _openblas()
    if lib is None:
        yield
        return
    with _LOCK:
        before = lib.scipy_openblas_get_num_threads()
        lib.scipy_openblas_set_num_threads(1)
    try:
        yield
    finally:
        with _LOCK:
            lib.scipy_openblas_set_num_threads(before)


def _openblas_string(name: str) -> str | None:
    """One of OpenBLAS's strings (``scipy_openblas_get_<name>``), or None."""
    lib = _openblas()
    get = getattr(lib, f"scipy_openblas_get_{name}", None) if lib is not None else None
    if get is None:
        return None
    get.restype = ctypes.c_char_p
    return get().decode()


def blas_core() -> str:
    """Which of OpenBLAS's kernels SciPy's BLAS runs on this machine (e.g. ``SkylakeX``); the
    products' bits can differ between kernels, so a result made in parts on several
    machines says which. ``unknown`` where SciPy's BLAS is not an OpenBLAS this module finds."""
    return _openblas_string("corename") or "unknown"


def openblas_version() -> str:
    """The release of SciPy's OpenBLAS (e.g. ``0.3.30``), or ``unknown``."""
    words = (_openblas_string("config") or "").split()
    return words[1] if len(words) > 1 and words[0] == "OpenBLAS" else "unknown"
