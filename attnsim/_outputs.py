"""Writing results: every file whole or not at all, into a directory checked before any
work starts, and never over a finished result unless asked to.

A directory holds at most one kind of result, recognised by its marker file:

    run        history.json     (`attnsim run`, ``Run.save``)
    theory     theory.json      (`attnsim theory`)
    compare    agreement.json   (`attnsim compare`)
    sweep      sweep.json       (`attnsim sweep`, `attnsim.sweep`)
    reproduce  results.json     (`attnsim reproduce`, its own format)

`claim` is called before any training: it refuses a target that cannot be written, a
directory that holds a result of another kind, and one that holds a result of the same
kind unless ``force`` (the command line's ``--force``).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Mapping

import numpy as np

KINDS = {
    "run": (
        "history.json",
        ("history.json", "params.npz", "state.npz", "snapshots.npz", "learning_curves.png", "attention.png"),
    ),
    "theory": ("theory.json", ("theory.json", "theory.png")),
    "compare": ("agreement.json", ("agreement.json", "curves.json", "compare.png")),
    "sweep": ("sweep.json", ("sweep.json", "results.csv", "summary.json", "phase.png")),
    "reproduce": ("results.json", ("results.json", "report.md")),
}
WHAT = {
    "run": "a training run",
    "theory": "a theory result",
    "compare": "a comparison",
    "sweep": "a sweep",
    "reproduce": "a reproduce report",
}


# =============================================================================
# files, whole or not at all
# =============================================================================
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str, data: bytes) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, then a rename.
    The file gets the permissions an ordinary ``open`` would give it (mkstemp's are 0600)."""
    d = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_npz(path: str, arrays: Mapping) -> None:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write(path, buf.getvalue())


def jsonable(v):
    """Arrays → nested lists; non-finite floats → null (strict JSON)."""
    a = np.asarray(v)
    if a.dtype.kind == "f":
        o = a.astype(object)
        o[~np.isfinite(a)] = None
        return o.tolist()
    return a.tolist()


def clean_json(v):
    """A JSON-safe copy: arrays to lists, non-finite floats to null."""
    if isinstance(v, dict):
        return {str(k): clean_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean_json(x) for x in v]
    if isinstance(v, (np.ndarray, np.floating, float)):
        return jsonable(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def write_output(path, content) -> None:
    """Write one output file whole: a dict or list as JSON, str as UTF-8 text, bytes as
    they are, anything else as a figure (PNG)."""
    path = os.fspath(path)
    if isinstance(content, (dict, list)):
        atomic_write(path, (json.dumps(clean_json(content), indent=1, allow_nan=False) + "\n").encode())
    elif isinstance(content, str):
        atomic_write(path, content.encode())
    elif isinstance(content, bytes):
        atomic_write(path, content)
    else:
        save_figure(content, path)


DPI = 130  # every figure attnsim writes


def load_plotting() -> None:
    """Import matplotlib now, before long work whose figures come at its end: a Ctrl-C or
    SIGTERM that lands inside matplotlib's first import can crash the interpreter
    (``PyThreadState_Get``), where one during training stops cleanly."""
    import matplotlib.figure  # noqa: F401


def save_figure(fig, path) -> None:
    """Write the matplotlib figure ``fig`` as PNG to ``path`` whole (temporary file, then rename)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    with np.errstate(over="ignore", invalid="ignore"):  # ticks of a diverged run's astronomical values
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    atomic_write(os.fspath(path), buf.getvalue())


# =============================================================================
# output directories
# =============================================================================
def check_writable(out) -> str:
    """The absolute path of ``out`` once it is known that a directory can be made (or
    is) there and written in; ValueError otherwise. Writes nothing that stays."""
    if not str(os.fspath(out)).strip():
        raise ValueError("the output directory is empty (--out ''): name a directory")
    out = os.path.abspath(os.fspath(out))
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"{out} exists and is not a directory")
    probe = out
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise ValueError(f"cannot create {out}: {probe} is a file, not a directory")
    try:  # access() says yes to root on a read-only file system: try it
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".attnsim-probe-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        reason = err.strerror or err
        if probe == out:
            raise ValueError(f"cannot write in {out}: {reason}") from None
        raise ValueError(f"cannot create {out}: cannot write in {probe} ({reason})") from None
    return out


def result_kinds(directory) -> list[str]:
    """The kinds of result ``directory`` holds (by their marker files)."""
    directory = os.fspath(directory)
    return [k for k, (marker, _) in KINDS.items() if os.path.isfile(os.path.join(directory, marker))]


def claim(out, kind: str, force: bool = False) -> str:
    """Check, before any work, that results of ``kind`` may be written into ``out``;
    return its absolute path. Refused (ValueError, one line): a target that cannot be
    written; a directory holding a result of another kind; one holding a result of the
    same kind, unless ``force``; one holding files of that kind's names, unless ``force``."""
    out = check_writable(out)
    if not os.path.isdir(out):
        return out
    held = result_kinds(out)
    other = [k for k in held if k != kind]
    if other:
        k = other[0]
        raise ValueError(f"{out} holds {WHAT[k]} ({KINDS[k][0]}); choose another --out for {WHAT[kind]}")
    if force:
        return out
    if kind in held:
        flag = "--resume to finish it" if kind == "sweep" else "--force (from Python, force=True) to replace it"
        raise ValueError(f"{out} already holds {WHAT[kind]} ({KINDS[kind][0]}); pass {flag}, or choose another --out")
    clash = [n for n in KINDS[kind][1] if os.path.exists(os.path.join(out, n))]
    if clash:
        raise ValueError(
            f"{out} already holds {', '.join(clash)}; pass --force (from Python, force=True) to replace, or choose "
            "another --out"
        )
    return out


def write_dir(out, files: dict, kind: str, before=None) -> None:
    """Write ``{name: content}`` (see `write_output`), and whatever ``before(dir)``
    writes, into a fresh directory beside ``out``, then move each file in: nothing
    half-written is left behind. Files of ``kind`` left from an earlier result that
    this one does not write (it was claimed with ``force``) are removed, so the
    directory never mixes two results."""
    out = os.path.abspath(os.fspath(out))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".attnsim-", dir=os.path.dirname(out))
    try:
        if before is not None:
            before(staging)
        for name, content in files.items():
            write_output(os.path.join(staging, name), content)
        os.makedirs(out, exist_ok=True)
        written = sorted(os.listdir(staging))
        for name in written:
            os.replace(os.path.join(staging, name), os.path.join(out, name))
        for name in KINDS[kind][1]:
            if name not in written and os.path.isfile(os.path.join(out, name)):
                os.unlink(os.path.join(out, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
