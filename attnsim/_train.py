"""Training (docs/design.md §3), for every architecture: ``train``, ``train_many``, the
``Run`` they return, and ``Run.extend`` to continue one.

The step loop runs compiled (the architecture's ``train_runs``) over chunks of steps; the
data of a chunk is drawn in bulk from the run's data stream, in chunks whose size depends
on the shapes and the batch only. So a run is a prefix of any longer run with the same
seed, the same seed gives the same bits, and a run continued from its saved state
(parameters, Adam's moments, the data stream's position, the divergence threshold) gives
the bits of one that never stopped.

Step semantics: the metrics logged at step k are those of the parameters after k
updates, measured on the batch that update k+1 uses (for "gd", the fixed batch); the
last logged step, ``steps``, is measured on one more batch and not followed by an
update. τ = lr · step.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from . import _arch
from . import _kernels as K
from ._blas import one_blas_thread
from ._memory import describe_runs, group_bytes, require
from ._model import STREAM_DATA, check_params, init_params, pack, seed_sequence, unpack
from ._outputs import atomic_npz, atomic_write, jsonable
from ._progress import progress as make_progress
from .metrics import success as _success
from .metrics import time_to_learn as _time_to_learn
from .tasks import Task, from_spec

log = logging.getLogger("attnsim")

OPTIMIZERS = ("gd", "sgd", "adam")
CHUNK_ELEMS = 1 << 18  # token ids drawn per chunk of steps (bounds memory)
# Numba's default "workqueue" threading layer must not be entered by two threads at once.
_KERNEL_LOCK = threading.Lock()
HISTORY_KEYS = ("step", "tau", "loss", "acc", "attn_acc", "gold_mass", "ktiw_acc", "head_attn_acc", "head_gold_mass")


CALL_SECONDS = 2.0  # a compiled call's length: a stop request and progress are seen between calls


class _CallSize:
    """Steps per compiled call, sized by the clock: the first call of a group is one step,
    and each later one is sized from the last one's speed to take about `CALL_SECONDS`,
    growing at most fourfold. A Ctrl-C or SIGTERM is seen between calls (a call cannot be
    interrupted), so a group of d-256 runs answers within seconds, not at the end of a chunk
    of minutes. The kernels keep no state between calls, so the bits are the same however a
    chunk is cut (tested)."""

    def __init__(self):
        self.steps = 1

    def took(self, steps: int, seconds: float) -> None:
        fit = CALL_SECONDS * steps / seconds if seconds > 0 else math.inf
        self.steps = max(1, int(min(4 * steps, fit)))


def chunk_steps(task: Task, batch: int) -> int:
    """Steps per compiled chunk: a function of the shapes and the batch only."""
    per_step = batch * (task.src_len + 2 * task.tgt_len)
    return max(1, min(1024, CHUNK_ELEMS // per_step))


def fmt_value(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def accuracies(cfg, final: dict) -> str:
    """A run's accuracies in words: a classifier's is its label accuracy, a seq2seq model's
    its token accuracy; a model whose attention is frozen uniform has no attention accuracy."""
    acc = f"accuracy {fmt_value(final['acc'])}" if cfg.model == "clf" else f"token acc {fmt_value(final['acc'])}"
    if getattr(cfg, "attention", None) == "uniform":
        return f"{acc} (attention uniform)"
    return f"{acc}, attention acc {fmt_value(final['attn_acc'])}"


@dataclass
class Run:
    """One training run: its config (and so its architecture), task, settings, history,
    final parameters, initial parameters, and the state that continuing it needs.

    ``history`` holds arrays over logged steps: ``step``, ``tau`` (lr·step), ``loss``,
    ``acc`` (token accuracy), ``attn_acc`` and ``gold_mass`` (of the best head: the
    one with the highest attention accuracy), ``ktiw_acc``, and per head
    ``head_attn_acc``, ``head_gold_mass`` (shape (n_logged, H)).

    ``initial_params`` are the parameters at step 0. ``state`` (None for runs saved before
    runs kept it, and for diverged runs) holds ``updates`` (the number of updates taken),
    ``limit`` (the divergence threshold, docs/design.md §3.5), ``adam_m``, ``adam_v`` (dicts
    like ``params``; None unless the optimizer is Adam) and ``data`` (the data stream's
    position: the generator's state before the chunk holding the last pass, and that
    chunk's first pass; None for "gd", whose one batch is redrawn).
    """

    cfg: object
    task: dict
    settings: dict
    history: dict
    params: dict
    status: str = "finished"  # or "diverged"
    message: str = ""
    elapsed: float = 0.0
    snapshots: dict | None = field(default=None, repr=False)
    stopped_at: int | None = None  # the step a diverged run stopped at
    initial_params: dict | None = field(default=None, repr=False)
    state: dict | None = field(default=None, repr=False)

    @property
    def model(self) -> str:
        """The architecture's name (``"free"``, ``"dot"``, …)."""
        return self.cfg.model

    def __repr__(self) -> str:
        f = self.final()
        st = self.settings
        if self.status == "diverged":
            how = f"diverged at step {self.stopped_at}"
        else:
            how = f"learned at step {self.time_to_learn}" if self.success else "did not learn"
        return (
            f"Run({self.task.get('name')}, {self.model}, {self.cfg.heads} head{'s' if self.cfg.heads > 1 else ''}, "
            f"{st.get('optimizer')} lr {st.get('lr'):g}, seed {st.get('seed')}, {f['step']} steps: {how}; "
            f"loss {f['loss']:.4g}, {accuracies(self.cfg, f)})"
        )

    @property
    def success(self) -> bool:
        """Token and attention accuracy >= 0.95 at the end of the budget (docs/design.md §3.5);
        token accuracy alone for a model whose attention is frozen uniform."""
        return self.status == "finished" and _success(self._judged())

    def _judged(self) -> dict:
        """The history success reads: a uniform-attention model has no attention to learn, so
        its attention accuracy (the argmax of a constant) is left out, as where there is no gold."""
        if getattr(self.cfg, "attention", None) != "uniform":
            return self.history
        return {**self.history, "attn_acc": np.full(len(self.history["acc"]), np.nan)}

    @property
    def time_to_learn(self) -> int | None:
        """First logged step where token and attention accuracy are both >= 0.95: a
        multiple of ``log_every`` (or the last step), up to ``log_every - 1`` steps after
        the step where both first held."""
        return _time_to_learn(self._judged())

    def final(self) -> dict:
        """The last logged values."""
        out = {}
        for k in ("step", "loss", "acc", "attn_acc", "gold_mass", "ktiw_acc"):
            v = self.history[k]
            out[k] = (int(v[-1]) if k == "step" else float(v[-1])) if len(v) else None
        return out

    def summary(self) -> dict:
        return {
            "success": self.success,
            "time_to_learn": self.time_to_learn,
            **{f"final_{k}": v for k, v in self.final().items()},
        }

    # --------------------------------------------------------------- continuing
    def extend(
        self, steps: int, task: Task | None = None, progress: bool = False, snapshots: bool | None = None
    ) -> Run:
        """This run continued for ``steps`` more updates, as a new `Run`: bit for bit the
        run ``train`` gives with the same settings and ``steps`` more in all (its history
        and parameters; the data stream, Adam's moments and the divergence threshold go on
        from where they were). ``task`` is rebuilt from the run's spec unless given (a
        task of your own arrays must be given: its spec does not hold the data).
        ``snapshots`` defaults to whether this run recorded them."""
        if self.status == "diverged":
            raise ValueError(f"this run diverged at step {self.stopped_at}; a diverged run cannot be continued")
        if self.state is None:
            raise ValueError(
                "this run was saved without its optimizer state and data position (attnsim-run/1, "
                "before runs kept them): it cannot be continued"
            )
        more = _check_number("steps", steps, 0, integer=True)
        if task is None:
            task = resume_task(self)
        elif not isinstance(task, Task) or task.spec() != self.task:
            raise ValueError(f"extend: the task given is not this run's ({self.task.get('name')!r} with its spec)")
        st = self.settings
        snapshots = self.snapshots is not None if snapshots is None else bool(snapshots)
        total = st["steps"] + more
        _check_shared(self.cfg, task, st["optimizer"], total, st["batch"], st["log_every"], snapshots=snapshots)
        settings = dict(st, steps=total)
        (run,) = _train_group(
            self.cfg, task, st["optimizer"], total, st["batch"], st["log_every"], [settings], [self.params],
            snapshots=snapshots, progress=progress, resume=[self.state],
        )  # fmt: skip
        keep = self.history["step"] < self.state["updates"]  # the last row is measured again (or not logged)
        run.history = {k: np.concatenate([v[keep], run.history[k]]) for k, v in self.history.items()}
        if snapshots and self.snapshots is not None:
            keep_s = self.snapshots["step"] < self.state["updates"]
            run.snapshots = {k: np.concatenate([v[keep_s], run.snapshots[k]]) for k, v in self.snapshots.items()}
        run.initial_params = self.initial_params
        run.elapsed += self.elapsed
        return run

    # --------------------------------------------------------------- files
    def save(self, directory, force: bool = False) -> None:
        """Write ``history.json`` (model, config, task, settings, history, summary, state),
        ``params.npz`` (final parameters), ``state.npz`` (initial parameters and Adam's
        moments) and, when recorded, ``snapshots.npz`` into ``directory``.

        A directory that already holds a run is refused (ValueError) unless ``force``,
        and one holding another kind of result (a sweep, a report) always is, so a
        finished result is never overwritten by accident. Each file is written whole to
        a temporary name and then renamed, so a reader never sees half a file.
        """
        from ._outputs import claim

        directory = claim(directory, "run", force)
        os.makedirs(directory, exist_ok=True)
        state = None
        arrays = {}
        if self.initial_params is not None:
            arrays.update({f"initial.{k}": v for k, v in self.initial_params.items()})
        if self.state is not None:
            state = {k: self.state[k] for k in ("updates", "limit", "data")}
            state["limit"] = None if not math.isfinite(state["limit"]) else state["limit"]
            for moment in ("adam_m", "adam_v"):
                if self.state[moment] is not None:
                    arrays.update({f"{moment}.{k}": v for k, v in self.state[moment].items()})
        doc = {
            "format": RUN_FORMAT,
            "model": self.model,
            "config": self.cfg.to_dict(),
            "task": self.task,
            "settings": self.settings,
            "status": self.status,
            "message": self.message,
            "stopped_at": self.stopped_at,
            "elapsed_seconds": self.elapsed,
            "summary": {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in self.summary().items()
            },
            "state": state,
            "history": {k: jsonable(v) for k, v in self.history.items()},
        }
        atomic_write(os.path.join(directory, "history.json"), json.dumps(doc, indent=1, allow_nan=False).encode())
        atomic_npz(os.path.join(directory, "params.npz"), self.params)
        if arrays:
            atomic_npz(os.path.join(directory, "state.npz"), arrays)
        if self.snapshots is not None:
            atomic_npz(os.path.join(directory, "snapshots.npz"), self.snapshots)

    @classmethod
    def load(cls, directory) -> Run:
        """Read a run written by `save` (this format, or attnsim-run/1 from before the model
        ladder: a rung-0 run without initial parameters or state)."""
        directory = os.fspath(directory)
        path = os.path.join(directory, "history.json")
        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except OSError as err:
            raise ValueError(f"cannot read {path}: {err.strerror or err}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(doc, dict) or doc.get("format") not in (RUN_FORMAT, "attnsim-run/1"):
            raise ValueError(f"{path}: not an attnsim run (no 'format': '{RUN_FORMAT}')")
        try:
            config = dict(doc["config"])
            if "model" in doc:
                config.setdefault("model", doc["model"])
            cfg = _arch.config_from_dict(config)
            history = {k: _from_json(k, v) for k, v in doc["history"].items()}
            with np.load(os.path.join(directory, "params.npz")) as z:
                params = check_params(cfg, {k: z[k] for k in z.files})
            arrays = {}
            sp = os.path.join(directory, "state.npz")
            if os.path.exists(sp):
                with np.load(sp) as z:
                    arrays = {k: z[k] for k in z.files}
            initial = _prefixed(arrays, "initial")
            state = doc.get("state")
            if state is not None:
                state = {
                    "updates": int(state["updates"]),
                    "limit": math.nan if state["limit"] is None else float(state["limit"]),
                    "data": state["data"],
                    "adam_m": _prefixed(arrays, "adam_m"),
                    "adam_v": _prefixed(arrays, "adam_v"),
                }
                for moment in ("adam_m", "adam_v"):
                    if state[moment] is not None:
                        state[moment] = check_params(cfg, state[moment])
            if initial is not None:
                initial = check_params(cfg, initial)
        except (KeyError, TypeError, OSError) as err:
            raise ValueError(f"{directory}: incomplete or malformed run ({err})") from None
        snaps = None
        sp = os.path.join(directory, "snapshots.npz")
        if os.path.exists(sp):
            with np.load(sp) as z:
                snaps = {k: z[k] for k in z.files}
        return cls(
            cfg=cfg,
            task=doc["task"],
            settings=doc["settings"],
            history=history,
            params=params,
            status=doc.get("status", "finished"),
            message=doc.get("message", ""),
            stopped_at=doc.get("stopped_at"),
            elapsed=float(doc.get("elapsed_seconds", 0.0)),
            snapshots=snaps,
            initial_params=initial,
            state=state,
        )


RUN_FORMAT = "attnsim-run/2"


def load_run(directory) -> Run:
    """Read a run saved with ``Run.save`` (``attnsim run`` writes one)."""
    return Run.load(directory)


def _prefixed(arrays: dict, prefix: str) -> dict | None:
    """The arrays saved as ``prefix.name``, by name (None when there are none)."""
    out = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.split(".", 1)[0] == prefix}
    return out or None


def _from_json(key, v):
    if key == "step":
        return np.array(v, dtype=np.int64)
    a = np.array(v, dtype=object)
    a[a == None] = np.nan  # noqa: E711 - elementwise test for JSON null
    return a.astype(np.float64)


# =============================================================================
# train
# =============================================================================


def _check_number(name, value, minimum=None, strict=False, integer=False):
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (not integer or v.is_integer())
        if ok and minimum is not None:
            ok = v > minimum if strict else v >= minimum
    if not ok:
        kind = "an integer" if integer else "a number"
        bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
        raise ValueError(f"{name} must be {kind}{bound}, got {value!r}")
    return int(value) if integer else float(value)


def check_compatible(cfg, task: Task) -> None:
    """Raise ValueError unless the config's shapes are the task's."""
    pairs = [
        ("vocab_in", task.vocab_in),
        ("vocab_out", task.vocab_out),
        ("src_len", task.src_len),
        ("tgt_len", task.tgt_len),
    ]
    bad = [f"{k}={getattr(cfg, k)} (task has {v})" for k, v in pairs if getattr(cfg, k) != v]
    if bad:
        raise ValueError("model config does not fit the task: " + ", ".join(bad))


def kernels_cached(cfg) -> bool:
    """Whether the step loop of ``cfg``'s architecture and dtype is compiled in this
    process or in Numba's cache on disk (so that a first run can say it is compiling).
    True when the kernels run as plain Python (``NUMBA_DISABLE_JIT=1``)."""
    kernel = _arch.of(cfg).kernels.train_runs
    if not hasattr(kernel, "signatures"):
        return True
    import numba

    want = numba.from_dtype(np.dtype(cfg.dtype))

    def has(sig):  # argument 3 is theta: (R, P) of the parameters' dtype
        return len(sig) > 3 and getattr(sig[3], "dtype", None) == want

    if any(has(sig) for sig in kernel.signatures):
        return True
    try:
        index = kernel._cache._cache_file._load_index()  # {(signature, target, code hash): file}
    except Exception:  # pragma: no cover - numba internals changed: fall back to the index file
        try:
            return bool(glob.glob(os.path.join(kernel._cache._cache_path, "*train_runs-*.nbi")))
        except AttributeError:
            return True
    return any(has(key[0]) for key in index)


def train(
    cfg,
    task: Task,
    optimizer: str = "adam",
    lr: float = 0.05,
    steps: int = 300,
    batch: int = 128,
    seed: int = 0,
    scale: float | Mapping[str, float] | None = None,
    log_every: int = 10,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    params: Mapping | None = None,
    snapshots: bool = False,
    progress: bool = False,
) -> Run:
    """Train the model ``cfg`` (any architecture) on ``task`` and return the `Run`.

    Parameters
    ----------
    optimizer : "gd" (one fixed batch, drawn once), "sgd" or "adam" (a fresh batch every step)
    lr, steps, batch : learning rate (> 0), number of updates (>= 0), batch size (>= 1)
    seed : the init is ``init_params(cfg, seed, scale)``; the data come from an
        independent stream of the same seed
    scale : the init scale (see `init_params`); None: the architecture's default init
    log_every : log metrics every this many steps (and at step 0 and ``steps``)
    weight_decay : adds ``weight_decay/2 · |θ|²`` to the loss (L2, also under Adam)
    params : start from these parameters instead of ``init_params(cfg, seed, scale)``
    snapshots : also record the effective tables U, b (zeros without one), S and/or A
        (where the architecture has them) and the mean attention at every logged step
    progress : show a progress bar (tqdm)

    A run whose loss becomes non-finite stops there with ``status == "diverged"`` and
    keeps its history up to that point. ``Run.extend(steps)`` continues a run.
    """
    steps, batch, log_every = _check_shared(cfg, task, optimizer, steps, batch, log_every, snapshots=snapshots)
    settings = _run_settings(optimizer, lr, steps, batch, seed, scale, log_every, weight_decay, betas, eps, params)
    start = init_params(cfg, seed, scale) if params is None else _copied(check_params(cfg, params))
    (run,) = _train_group(
        cfg, task, optimizer, steps, batch, log_every, [settings], [start], snapshots=snapshots, progress=progress
    )
    return run


def train_many(
    cfg,
    task: Task,
    seeds,
    optimizer: str = "adam",
    lr=0.05,
    steps: int = 300,
    batch: int = 128,
    scale=None,
    log_every: int = 10,
    weight_decay=0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    threads: int | None = None,
    progress: bool = False,
    params=None,
) -> list[Run]:
    """Train independent runs of the same shapes in one compiled call, in parallel over
    runs on ``threads`` cores (default: all of Numba's threads).

    ``seeds`` is a sequence of seeds, one run each; ``lr``, ``scale`` and
    ``weight_decay`` are one value for all runs or a sequence with one per run. Run r
    is bit for bit ``train(cfg, task, optimizer, lr[r], steps, batch, seeds[r],
    scale[r], log_every, weight_decay[r], betas, eps)``, whatever the other runs and the
    number of threads.

    ``params``: a sequence of parameter dicts, one per run, to start from instead of
    ``init_params(cfg, seeds[r], scale[r])``; the seeds then choose the data streams
    only (run r is ``train(..., seed=seeds[r], params=params[r])``).
    """
    if isinstance(seeds, (int, np.integer, str, bytes)) or not hasattr(seeds, "__iter__"):
        raise ValueError(f"seeds must be a non-empty sequence of seeds, one per run, got {seeds!r}")
    if not hasattr(seeds, "__len__"):
        seeds = list(seeds)
    R = len(seeds)
    if R == 0:
        raise ValueError("seeds must be a non-empty sequence of seeds, one per run")
    # the memory of R runs is checked before a list of R seeds (a range of 1e7, say) is made
    steps, batch, log_every = _check_shared(cfg, task, optimizer, steps, batch, log_every, runs=R, threads=threads)
    seeds = list(seeds)

    def per_run(name, value):
        if value is None or isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__"):
            return [value] * R
        if len(value) != R:
            raise ValueError(f"{name} has {len(value)} values for {R} seeds")
        return list(value)

    lrs, scales, wds = per_run("lr", lr), per_run("scale", scale), per_run("weight_decay", weight_decay)
    if params is not None:
        if isinstance(params, Mapping) or len(params) != R:
            raise ValueError(f"params must be a sequence of {R} parameter dicts, one per seed")
        starts = [_copied(check_params(cfg, p)) for p in params]
    given = [None] * R if params is None else starts
    settings = [
        _run_settings(optimizer, lrs[r], steps, batch, seeds[r], scales[r], log_every, wds[r], betas, eps, given[r])
        for r in range(R)
    ]
    if params is None:
        starts = [init_params(cfg, seeds[r], scales[r]) for r in range(R)]
    return _train_group(
        cfg, task, optimizer, steps, batch, log_every, settings, starts, threads=threads, progress=progress
    )


def _copied(params: dict) -> dict:
    """Arrays of our own (a run keeps its starting point; the caller may change theirs)."""
    return {k: np.array(v) for k, v in params.items()}


def _check_shared(
    cfg, task, optimizer, steps, batch, log_every, runs=1, snapshots=False, threads=None
) -> tuple[int, int, int]:
    """Validate what the runs of a group share (their shapes and schedule), and that
    ``runs`` of them, on ``threads`` threads, fit in this machine's memory (before anything
    is allocated)."""
    _arch.of(cfg)
    if not isinstance(task, Task):
        raise ValueError(f"task must be an attnsim task (see attnsim.tasks), got {type(task).__name__}")
    check_compatible(cfg, task)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    steps = _check_number("steps", steps, 0, integer=True)
    batch = _check_number("batch", batch, 1, integer=True)
    log_every = _check_number("log_every", log_every, 1, integer=True)
    import numba

    parallel = numba.get_num_threads() if threads is None else check_threads(threads)
    need = group_bytes(cfg, task, steps, batch, log_every, chunk_steps(task, batch), runs, parallel, snapshots)
    require(need, f"training {describe_runs(cfg, task, runs)} at batch {batch:,} for {steps:,} steps")
    return steps, batch, log_every


def _run_settings(optimizer, lr, steps, batch, seed, scale, log_every, weight_decay, betas, eps, params) -> dict:
    """Validate one run's settings and return them as ``Run.settings`` (``scale`` None: the
    architecture's default init)."""
    lr = _check_number("lr", lr, 0, strict=True)
    weight_decay = _check_number("weight_decay", weight_decay, 0)
    b1 = _check_number("betas[0]", betas[0], 0)
    b2 = _check_number("betas[1]", betas[1], 0)
    if b1 >= 1 or b2 >= 1:
        raise ValueError(f"betas must lie in [0, 1), got {betas!r}")
    eps = _check_number("eps", eps, 0, strict=True)
    seed_sequence(seed)
    if scale is not None and not isinstance(scale, Mapping):
        scale = _check_number("scale", scale, 0)
    return {
        "optimizer": optimizer,
        "lr": lr,
        "steps": int(steps),
        "batch": int(batch),
        "seed": int(seed),
        "scale": dict(scale) if isinstance(scale, Mapping) else scale,
        "log_every": int(log_every),
        "weight_decay": weight_decay,
        "betas": [b1, b2],
        "eps": eps,
        "init": "given" if params is not None else "init_params",
    }


def _train_group(
    cfg, task, optimizer, steps, batch, log_every, settings, starts, snapshots=False, threads=None, progress=False,
    resume=None,
):  # fmt: skip
    """Train R runs of the same shapes and schedule together (the architecture's ``train_runs``).

    Run r starts from ``starts[r]`` with the lr, weight decay, betas and eps of
    ``settings[r]`` (validated, from `_run_settings`) and draws its data from the data
    stream of its seed, chunk by chunk exactly as a run alone does, so its bits do not
    depend on the other runs. ``resume`` (one `Run.state` per run, all after the same
    number of updates) continues runs from their state instead of step 0: their history
    starts at that step. ``progress`` is a bool (a bar over steps, or lines off a
    terminal) or a callable given the number of steps each call advanced.
    """
    arch = _arch.of(cfg)
    if not kernels_cached(cfg):
        # a warning, so that Python users without a logging set-up see it too (a minute of silence otherwise)
        log.warning(
            f"compiling the {arch.name} model's {cfg.dtype} kernels (once per machine, about a minute; "
            "later runs start at once)"
        )
    t_start = time.perf_counter()
    R = len(settings)
    seeds = [st["seed"] for st in settings]
    hypers = np.array([[st["lr"], st["weight_decay"], *st["betas"], st["eps"]] for st in settings], np.float64)
    if snapshots and R != 1:
        raise ValueError("snapshots are recorded for single runs only")
    lay = arch.kernels.layout(cfg)
    flat = [pack(cfg, p) for p in starts]
    thetas, m1s, m2s = (_aligned_rows(R, flat[0].size, flat[0].dtype) for _ in range(3))
    for r, theta in enumerate(flat):
        thetas[r, : theta.size] = theta
    adam = optimizer == "adam"
    opts = np.full(R, K.OPT_ADAM if adam else K.OPT_SGD, dtype=np.int64)
    limits = np.full(R, np.nan)  # divergence thresholds, set by the kernel at step 0
    H = cfg.heads
    rngs = [np.random.default_rng(seed_sequence(s, STREAM_DATA)) for s in seeds]
    pos = 0  # the pass about to run (= updates taken)
    if resume is not None:
        pos = resume[0]["updates"]
        for r, st in enumerate(resume):
            limits[r] = st["limit"]
            if adam:
                m1s[r, : flat[r].size] = pack(cfg, st["adam_m"])
                m2s[r, : flat[r].size] = pack(cfg, st["adam_v"])
            if st["data"] is not None:  # back to where the chunk holding pass `pos` was drawn
                rngs[r].bit_generator.state = st["data"]["rng"]

    n_forward = steps + 1  # the last forward pass measures the final parameters
    chunk = chunk_steps(task, batch)
    if optimizer == "gd":  # one fixed batch per run, drawn once
        per_run = [task.sample(rng, batch) for rng in rngs]
        fixed = tuple(np.stack([d[i] for d in per_run])[:, None] for i in range(3))
    else:
        fixed = None
        xs = ys = gs = None  # (R or 1, chunk, batch, ·), allocated at the first draw
        if task.gold_constant is not None:  # the same gold alignment for every sequence: one copy for all runs
            gs = np.zeros((1, chunk, batch, task.tgt_len), np.int64)
            gs[:] = task.gold_constant
    drawn = [None] * R  # per run: the generator's state before its last chunk, and that chunk's first pass

    active = np.ones(R, dtype=np.bool_)
    rows = [([], [], []) for _ in range(R)]  # per run: steps, losses, metric rows
    status, message, stopped = ["finished"] * R, [""] * R, [None] * R
    snaps = {} if snapshots else None
    bar = make_progress(
        steps - pos, progress, desc="training" if R == 1 else f"training {R} runs", unit="step", leave=False
    )
    first = True
    size = _CallSize()
    try:
        while pos < n_forward and active.any():
            off = pos % chunk  # 0 except where a continued run starts, inside a chunk
            K_ = min(chunk - off, n_forward - pos)
            if fixed is None and (off == 0 or first):
                for r in np.flatnonzero(active):
                    drawn[r] = (rngs[r].bit_generator.state, pos - off)
                    x, y, g = task.draw(rngs[r], chunk * batch)  # a whole chunk, always
                    xs, ys, gs = _place(r, R, (chunk, batch), x, y, g, xs, ys, gs)
            first = False
            logged = _log_flags(pos, pos + K_, log_every, n_forward)
            # with snapshots, calls are split at logged steps, and the snapshot is taken
            # before that step's update; the kernel keeps no state between calls, so
            # the bits are the same either way
            cuts = [0, K_] if snaps is None else sorted({0, K_, *np.flatnonzero(logged).tolist()})
            for a, b in _calls(cuts, size, active):
                n_here = b - a
                t_call = time.perf_counter()
                last_call = pos + b == n_forward
                flags = logged[a:b].copy()
                out_loss = np.zeros((R, n_here))
                out_met = np.zeros((R, n_here, K.n_metrics(H)))
                done = np.zeros(R, np.int64)
                data = fixed or _slice_steps(xs, ys, gs, off + a, off + b)
                if snaps is not None and flags[0]:
                    _snapshot(snaps, cfg, thetas[0], data[0][0, 0], data[1][0, 0], pos + a)
                with _KERNEL_LOCK, _numba_threads(threads), one_blas_thread():
                    arch.kernels.train_runs(
                        *data, thetas, m1s, m2s, lay, hypers, opts, pos + a, not last_call, flags, active, limits,
                        out_loss, out_met, done,
                    )  # fmt: skip
                size.took(n_here, time.perf_counter() - t_call)
                for r in np.flatnonzero(active):
                    stopped_now = done[r] < n_here
                    grew = stopped_now and np.isfinite(out_loss[r, done[r]])  # the step that grew is kept
                    steps_r, loss_r, met_r = rows[r]
                    for k in np.flatnonzero(flags[: done[r] + int(grew)]):
                        steps_r.append(pos + a + k)
                        loss_r.append(out_loss[r, k])
                        met_r.append(out_met[r, k].copy())
                    if stopped_now:
                        active[r] = False
                        status[r] = "diverged"
                        stopped[r] = pos + a + int(done[r])
                        message[r] = _divergence(pos + a + int(done[r]), grew, out_met[r, done[r], K.MET_LOSS],
                                                 limits[r], settings[r])  # fmt: skip
                        log.warning(message[r])
                bar.update(n_here - int(last_call))
            pos += K_
    finally:
        bar.close()

    elapsed = time.perf_counter() - t_start
    if snaps is not None:  # one per logged step of the history (a diverged run's last one is not)
        keep = np.isin(snaps["step"], rows[0][0])
        snaps = {k: np.array(v)[keep] for k, v in snaps.items()}
    runs = []
    for r in range(R):
        params = unpack(cfg, thetas[r])  # the padding is not read
        state = None
        if status[r] == "finished":
            state = {
                "updates": steps,
                "limit": float(limits[r]),
                "adam_m": unpack(cfg, m1s[r]) if adam else None,
                "adam_v": unpack(cfg, m2s[r]) if adam else None,
                "data": None if drawn[r] is None else {"rng": drawn[r][0], "chunk_start": int(drawn[r][1])},
            }
        runs.append(
            Run(
                cfg=cfg,
                task=task.spec(),
                settings=settings[r],
                history=_history(rows[r], hypers[r, 0], H),
                params=params,
                status=status[r],
                message=message[r],
                elapsed=elapsed,
                snapshots=snaps,
                stopped_at=stopped[r],
                initial_params=starts[r] if resume is None else None,
                state=state,
            )
        )
    return runs


def _calls(cuts, size: _CallSize, active):
    """The compiled calls of one chunk, as (first, end) steps within it: its pieces between
    ``cuts`` (logged steps, when snapshots are taken before them), each cut into calls of
    ``size.steps``, read afresh before each call; none once no run is active."""
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        a = lo
        while a < hi:
            if not active.any():
                return
            b = min(hi, a + size.steps)
            yield a, b
            a = b


def _log_flags(lo: int, hi: int, log_every: int, n_forward: int) -> np.ndarray:
    """Which of the forward passes lo..hi-1 are logged: every ``log_every``-th, and the
    last one (the final evaluation)."""
    k = np.arange(lo, hi)
    return (k % log_every == 0) | (k == n_forward - 1)


def _divergence(step: int, grew: bool, loss: float, limit: float, settings: dict) -> str:
    """The one-line message of a run stopped at ``step``."""
    if grew:
        what = (
            f"the loss grew to {loss:.3g} at step {step}, more than {K.DIVERGE_FACTOR:g} × its value at step 0 "
            f"({limit / K.DIVERGE_FACTOR:.3g})"
        )
    elif step == 0:
        return "diverged: the loss is not finite at the starting parameters (step 0); use a smaller init scale"
    else:
        what = f"the loss became non-finite at step {step}"
    return f"diverged: {what}; lr {settings['lr']:g} is probably too large for this setting"


ALIGN = 64  # bytes: a cache line, and the widest vector load


def _aligned_rows(R: int, P: int, dtype) -> np.ndarray:
    """Zeros of shape (R, P') with every row starting on a 64-byte boundary (P' >= P,
    padded). The padding stays 0 through training (zero gradient, zero Adam step), and a
    run's row is then laid out the same whatever R, so it costs the same alone or
    among others."""
    dtype = np.dtype(dtype)
    per = ALIGN // dtype.itemsize
    width = -(-P // per) * per
    raw = np.zeros(R * width * dtype.itemsize + ALIGN, np.uint8)
    skip = (-raw.ctypes.data) % ALIGN
    return raw[skip : skip + R * width * dtype.itemsize].view(dtype).reshape(R, width)


@contextlib.contextmanager
def _numba_threads(n):
    """Run the body with ``n`` Numba threads (None: leave the count as it is)."""
    if n is None:
        yield
        return
    import numba

    n = check_threads(n)
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def check_threads(n) -> int:
    """``n`` as a number of Numba threads: 1 up to the cores Numba was started with."""
    import numba

    top = numba.config.NUMBA_NUM_THREADS
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= top:
        raise ValueError(f"threads must be an integer from 1 to {top} (the cores Numba can use), got {n!r}")
    return int(n)


def _slice_steps(xs, ys, gs, a, b):
    """Steps a..b of the chunk buffers, C-contiguous (a copy only for a partial chunk)."""
    xs_ = np.ascontiguousarray(xs[:, a:b])
    ys_ = xs_ if ys is xs else np.ascontiguousarray(ys[:, a:b])
    return xs_, ys_, np.ascontiguousarray(gs[:, a:b])


def _place(r, R, lead, x, y, g, xs, ys, gs):
    """Put run r's drawn chunk into the arrays the kernel reads. A single run passes the
    drawn arrays themselves; several runs share buffers, allocated at the first draw.
    When the task returns ``y is x`` (a copy in order), ``ys`` is ``xs``: half the
    memory, and no second copy."""
    x4 = x.reshape(1, *lead, -1)
    y4 = x4 if y is x else y.reshape(1, *lead, -1)
    g4 = None if g is None else g.reshape(1, *lead, -1)
    if R == 1:
        return x4, y4, gs if g4 is None else g4
    if xs is None:
        xs = np.empty((R, *x4.shape[1:]), np.int64)
        ys = xs if y is x else np.empty((R, *y4.shape[1:]), np.int64)
        if g4 is not None:
            gs = np.empty((R, *g4.shape[1:]), np.int64)
    xs[r] = x4[0]
    if ys is not xs:
        ys[r] = y4[0]
    if g4 is not None:
        gs[r] = g4[0]
    return xs, ys, gs


def _history(rows, lr, H) -> dict:
    rows_step, rows_loss, rows_met = rows
    met = np.array(rows_met).reshape(len(rows_met), K.n_metrics(H))
    heads_acc = met[:, K.MET_HEADS : K.MET_HEADS + H]
    heads_mass = met[:, K.MET_HEADS + H : K.MET_HEADS + 2 * H]
    steps_arr = np.array(rows_step, dtype=np.int64)
    return {
        "step": steps_arr,
        "tau": lr * steps_arr.astype(np.float64),
        "loss": np.array(rows_loss, dtype=np.float64),
        "acc": met[:, K.MET_ACC].copy(),
        "attn_acc": _best_head(heads_acc, heads_acc),
        "gold_mass": _best_head(heads_acc, heads_mass),
        "ktiw_acc": met[:, K.MET_KTIW].copy(),
        "head_attn_acc": heads_acc.copy(),
        "head_gold_mass": heads_mass.copy(),
    }


def _best_head(acc: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per logged step, the value of the head with the highest attention accuracy
    (the first such head; NaN when attention accuracy is undefined)."""
    if acc.shape[0] == 0:
        return np.zeros(0)
    if np.all(np.isnan(acc)):
        return np.full(acc.shape[0], np.nan)
    best = np.argmax(np.where(np.isnan(acc), -np.inf, acc), axis=1)
    return values[np.arange(acc.shape[0]), best]


def _snapshot(snaps, cfg, theta, x, y, step):
    """Record the effective tables at ``step`` (where the architecture has them) and the
    attention on the batch ``x`` (targets ``y``), through the kernel itself: the parameters of a run about
    to diverge need not be finite, which the public `forward` refuses."""
    arch = _arch.of(cfg)
    params = unpack(cfg, theta)
    n = cfg.n_params
    alpha = np.zeros(cfg.alpha_shape(x.shape[0]), cfg.np_dtype)
    z = np.zeros(cfg.out_shape(x.shape[0]), cfg.np_dtype)
    with one_blas_thread():
        arch.kernels.forward(
            np.ascontiguousarray(x), np.ascontiguousarray(y), np.ascontiguousarray(theta[:n]), arch.kernels.layout(cfg),
            z, alpha,
        )  # fmt: skip
    record = {"step": step}
    if arch.effective_tables is not None:
        record.update(arch.effective_tables(cfg, params))
    record["alpha"] = alpha.mean(axis=1)
    for k, v in record.items():
        snaps.setdefault(k, []).append(v)


def resume_task(run: Run) -> Task:
    """The task of a saved run, rebuilt from its spec."""
    if run.task.get("name") == "arrays":
        raise ValueError("this run's task holds your own arrays, which its spec does not keep: pass task=")
    return from_spec(run.task)
