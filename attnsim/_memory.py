"""Will it fit? Memory estimates made before anything is allocated, so that a size this
machine cannot hold is one clear line (a ValueError) instead of a MemoryError, a
swapping machine, or a traceback after minutes of work.

The estimates are upper bounds of what attnsim itself allocates (arrays and the
per-row bookkeeping of histories and sweep tables), not of Python's own overhead, and
are compared with the memory the machine has available now.
"""

from __future__ import annotations

import os

# A finished sweep row held in memory: its CSV line, the dict of its parsed cells and
# the entry of the finished-runs index. Measured with tracemalloc on a 9,600-run sweep
# of 19 columns: 1.0 KB per run in the table it returns, 2.0 KB at the peak (the final
# sorted rewrite); 3 KB leaves room for longer cells (`tests/test_memory.py` checks the
# bound).
SWEEP_ROW_BYTES = 3072
# A logged step of a history while a run trains: the step, the loss and the metrics
# row as Python objects.
HISTORY_ROW_BYTES = 320


def available_bytes() -> int | None:
    """Memory this process can still use: the kernel's MemAvailable, capped by a cgroup
    limit if one is set; None where neither can be read (then nothing is refused)."""
    avail = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as fh:
            limit = fh.read().strip()
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as fh:
            used = int(fh.read().strip())
        if limit != "max":
            avail = min(avail, int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(avail, 0)


def fmt_bytes(n: float) -> str:
    """``n`` bytes in binary units, three significant digits: '1.50 GiB', '6.94 EiB'."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB"):
        if n < 1024 or unit == "ZiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} YiB"  # pragma: no cover


def require(nbytes: float, what: str) -> None:
    """Raise ValueError (one line) when ``what`` needs more than the available memory."""
    avail = available_bytes()
    if avail is not None and not nbytes <= avail:
        raise ValueError(
            f"{what}: needs about {fmt_bytes(nbytes)} of memory, and this machine has {fmt_bytes(avail)} available"
        )


def run_bytes(
    cfg, task, steps: int, batch: int, log_every: int, chunk: int, snapshots: bool = False, workspace: bool = True
) -> int:
    """Upper bound on the bytes one training run of ``cfg`` on ``task`` allocates: its
    parameters, Adam's moments, the gradient, its starting point and the copies a `Run`
    keeps (8 parameter vectors), the kernel's workspace (unless ``workspace`` is false),
    one chunk of drawn data with the sampler's temporaries, its history and, when asked,
    its snapshots. Exact integers: no overflow for absurd sizes."""
    item = cfg.np_dtype.itemsize
    P = cfg.n_params
    L, T, Vin = task.src_len, task.tgt_len, task.vocab_in
    total = 8 * P * item
    if workspace:
        total += workspace_bytes(cfg, batch)
    total += 3 * 8 * chunk * batch * (L + 2 * T) + 8 * Vin  # data, the sampler's temporaries and its word list
    n_logged = steps // log_every + 2
    total += n_logged * (HISTORY_ROW_BYTES + 8 * (3 + 2 * cfg.heads)) + (steps + 1)
    if snapshots:
        H, Vout = cfg.heads, cfg.vocab_out
        total += n_logged * item * (H * Vout * Vin + Vout + 2 * H * T * L + H * T * Vin)
    return int(total)


def workspace_bytes(cfg, batch: int) -> int:
    """The kernel's workspace for one run at ``batch``."""
    from . import _arch

    kernels = _arch.of(cfg).kernels
    return int(kernels.workspace_bytes(kernels.layout(cfg), batch, cfg.np_dtype.itemsize))


def group_bytes(cfg, task, steps, batch, log_every, chunk, runs: int, parallel: int, snapshots=False) -> int:
    """Upper bound for ``runs`` runs trained together on ``parallel`` threads: each run's own
    arrays, and a workspace per thread (a run's workspace lives while its chunk of steps
    runs, inside the loop over runs)."""
    own = run_bytes(cfg, task, steps, batch, log_every, chunk, snapshots, workspace=False)
    return runs * own + min(runs, max(parallel, 1)) * workspace_bytes(cfg, batch)


def describe_runs(cfg, task, runs: int) -> str:
    """'2 runs of copy(vocab=…, …) with 1 head (1.6e+09 parameters each)'."""
    n = "1 run" if runs == 1 else f"{runs:,} runs"
    heads = f"{cfg.heads} head{'s' if cfg.heads > 1 else ''}"
    each = " each" if runs > 1 else ""
    return f"{n} of {task!r} with {heads} ({_count(cfg.n_params)} parameters{each})"


def describe(cfg) -> str:
    """'the 5,260 parameters of a model with 1 head (Vin 60, Vout 60, L 40, T 40)'."""
    heads = f"{cfg.heads} head{'s' if cfg.heads > 1 else ''}"
    sizes = f"Vin {cfg.vocab_in:,}, Vout {cfg.vocab_out:,}, L {cfg.src_len:,}, T {cfg.tgt_len:,}"
    return f"the {_count(cfg.n_params)} parameters of a model with {heads} ({sizes})"


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**7 else f"{n:.3g}".replace("e+", "e")
