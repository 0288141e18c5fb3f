"""The one place kernels are compiled from: ``jit``, Numba's ``njit`` with attnsim's cache.

Numba caches a compiled function beside its source and checks only that one file for
changes, so a cached caller keeps running an old copy of a callee that changed in another
file. attnsim's kernels live in several files (the engine's, the shared table model's, one
per architecture), so every kernel is cached in a directory keyed by a hash of *all* the
kernel sources (`cache_dir`): change any of them and every kernel recompiles, once.

* ``ATTNSIM_NUMBA_CACHE=0`` turns caching off (each process compiles what it uses).
* ``NUMBA_CACHE_DIR`` set by the user is honoured as the base directory; otherwise the
  package's own ``__pycache__`` (when writable), else ``~/.cache/attnsim``.

The package's own cache keeps the current sources' kernels only: the directories of
earlier sources are removed (`_prune`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time

import numba

CACHE = os.environ.get("ATTNSIM_NUMBA_CACHE", "1") != "0"
FASTMATH = {"contract"}
FASTMATH_REDUCE = {"contract", "reassoc"}  # dot products only (see _kernels._gemm_acc_nt)

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def kernel_sources() -> list[str]:
    """Every file of the package that defines kernels: the ``*kernels.py`` modules."""
    found = []
    for root, dirs, files in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        found += [os.path.join(root, f) for f in sorted(files) if f.endswith("kernels.py")]
    return found


def sources_hash() -> str:
    """SHA-1 of the kernel sources (paths relative to the package, and contents)."""
    h = hashlib.sha1()
    for path in kernel_sources() + [os.path.abspath(__file__)]:
        h.update(os.path.relpath(path, _PACKAGE).encode() + b"\0")
        with open(path, "rb") as fh:
            h.update(fh.read())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _writable(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()  # access() says yes to root on a read-only mount
        return True
    except OSError:
        return False


def cache_dir() -> str:
    """Where the kernels of these sources are cached."""
    name = f"attnsim-kernels-{sources_hash()}"
    base = os.environ.get("NUMBA_CACHE_DIR")
    if base:
        return os.path.join(base, name)
    here = os.path.join(_PACKAGE, "__pycache__", name)
    if not os.path.isdir(here) and _writable(here):
        _prune(os.path.dirname(here), name)
    if _writable(here):
        return here
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(home, "attnsim", name)


def _prune(parent: str, keep: str, age: float = 600.0) -> None:
    """Remove the caches of earlier kernel sources from the package's own ``__pycache__``
    (not from a shared directory, which other installations may use), once they are
    ``age`` seconds old: a process still running the old sources keeps its files."""
    now = time.time()
    for entry in os.listdir(parent):
        path = os.path.join(parent, entry)
        if entry.startswith("attnsim-kernels-") and entry != keep:
            try:
                if now - os.path.getmtime(path) > age:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass


_CACHE_DIR = cache_dir() if CACHE else None


def jit(
    fastmath=FASTMATH, parallel: bool = False, nogil: bool = False, inline: str = "never", error_model: str = "python"
):
    """``numba.njit`` with attnsim's cache (`cache_dir`) and floating-point settings.

    ``inline="always"`` inlines the function into its callers in Numba's own IR (before
    LLVM): worth it only for a large function called once per step with many arrays, whose
    reference counts on entry, one per array, would otherwise be paid every call.

    The directory is set on Numba's config only while the dispatcher is created (that is
    when Numba picks a function's cache location) and restored after, so nothing else in
    the process is affected.

    ``error_model="numpy"`` drops Python's check for a division by zero (``x / 0`` is then
    inf or NaN, as in NumPy): a loop that divides vectorizes only without that branch.
    """

    def wrap(fn):
        if not CACHE:
            return numba.njit(
                fastmath=fastmath, parallel=parallel, nogil=nogil, inline=inline, error_model=error_model
            )(fn)
        before = numba.config.CACHE_DIR
        numba.config.CACHE_DIR = _CACHE_DIR
        try:
            return numba.njit(
                fastmath=fastmath, parallel=parallel, nogil=nogil, inline=inline, error_model=error_model, cache=True
            )(fn)
        finally:
            numba.config.CACHE_DIR = before

    return wrap
