"""Training (DESIGN §3): ``train`` and the ``Run`` it returns.

The step loop runs compiled (`_kernels.train_chunk`) over chunks of steps; the data of
a chunk is drawn in bulk from the run's data stream, in chunks whose size depends on
the shapes and the batch only. So a run is a prefix of any longer run with the same
seed, and the same seed gives the same bits.

Step semantics: the metrics logged at step k are those of the parameters after k
updates, measured on the batch that update k+1 uses (for "gd", the fixed batch); the
last logged step, ``steps``, is measured on one more batch and not followed by an
update. τ = lr · step.
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from . import _kernels as K
from ._config import ModelConfig, layout
from ._model import STREAM_DATA, check_params, forward, init_params, pack, seed_sequence, unpack
from .metrics import success as _success
from .metrics import time_to_learn as _time_to_learn
from .tasks import Task, from_spec

log = logging.getLogger("attnsim")

OPTIMIZERS = ("gd", "sgd", "adam")
CHUNK_ELEMS = 1 << 18  # token ids drawn per chunk of steps (bounds memory)
HISTORY_KEYS = ("step", "tau", "loss", "acc", "attn_acc", "gold_mass", "ktiw_acc", "head_attn_acc", "head_gold_mass")


def chunk_steps(task: Task, batch: int) -> int:
    """Steps per compiled chunk: a function of the shapes and the batch only."""
    per_step = batch * (task.src_len + 2 * task.tgt_len)
    return max(1, min(1024, CHUNK_ELEMS // per_step))


@dataclass
class Run:
    """One training run: its config, task, settings, history, final parameters.

    ``history`` holds arrays over logged steps: ``step``, ``tau`` (lr·step), ``loss``,
    ``acc`` (token accuracy), ``attn_acc`` and ``gold_mass`` (of the best head: the
    one with the highest attention accuracy), ``ktiw_acc``, and per head
    ``head_attn_acc``, ``head_gold_mass`` (shape (n_logged, H)).
    """

    cfg: ModelConfig
    task: dict
    settings: dict
    history: dict
    params: dict
    status: str = "finished"  # or "diverged"
    message: str = ""
    elapsed: float = 0.0
    snapshots: dict | None = field(default=None, repr=False)

    @property
    def success(self) -> bool:
        """Token and attention accuracy >= 0.95 at the end of the budget (DESIGN §3)."""
        return self.status == "finished" and _success(self.history)

    @property
    def time_to_learn(self) -> int | None:
        """First logged step where token and attention accuracy are both >= 0.95."""
        return _time_to_learn(self.history)

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

    # --------------------------------------------------------------- files
    def save(self, directory) -> None:
        """Write ``history.json`` (config, task, settings, history, summary) and
        ``params.npz`` (and ``snapshots.npz`` when recorded) into ``directory``.

        Each file is written whole to a temporary name and then renamed, so a reader
        never sees half a file.
        """
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        doc = {
            "format": "attnsim-run/1",
            "config": self.cfg.to_dict(),
            "task": self.task,
            "settings": self.settings,
            "status": self.status,
            "message": self.message,
            "elapsed_seconds": self.elapsed,
            "summary": {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in self.summary().items()
            },
            "history": {k: _jsonable(v) for k, v in self.history.items()},
        }
        _atomic_write(os.path.join(directory, "history.json"), json.dumps(doc, indent=1, allow_nan=False).encode())
        _atomic_npz(os.path.join(directory, "params.npz"), self.params)
        if self.snapshots is not None:
            _atomic_npz(os.path.join(directory, "snapshots.npz"), self.snapshots)

    @classmethod
    def load(cls, directory) -> Run:
        """Read a run written by `save`."""
        directory = os.fspath(directory)
        path = os.path.join(directory, "history.json")
        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except OSError as err:
            raise ValueError(f"cannot read {path}: {err.strerror or err}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(doc, dict) or doc.get("format") != "attnsim-run/1":
            raise ValueError(f"{path}: not an attnsim run (no 'format': 'attnsim-run/1')")
        try:
            cfg = ModelConfig.from_dict(doc["config"])
            history = {k: _from_json(k, v) for k, v in doc["history"].items()}
            with np.load(os.path.join(directory, "params.npz")) as z:
                params = check_params(cfg, {k: z[k] for k in z.files})
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
            elapsed=float(doc.get("elapsed_seconds", 0.0)),
            snapshots=snaps,
        )


def load_run(directory) -> Run:
    """Read a run saved with ``Run.save`` (``attnsim run`` writes one)."""
    return Run.load(directory)


def _jsonable(v):
    """Arrays → nested lists; non-finite floats → null (strict JSON)."""
    a = np.asarray(v)
    if a.dtype.kind == "f":
        o = a.astype(object)
        o[~np.isfinite(a)] = None
        return o.tolist()
    return a.tolist()


def _from_json(key, v):
    if key == "step":
        return np.array(v, dtype=np.int64)
    a = np.array(v, dtype=object)
    a[a == None] = np.nan  # noqa: E711 - elementwise test for JSON null
    return a.astype(np.float64)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path: str, data: bytes) -> None:
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


def _atomic_npz(path: str, arrays: Mapping) -> None:
    import io

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    _atomic_write(path, buf.getvalue())


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


def check_compatible(cfg: ModelConfig, task: Task) -> None:
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


def kernels_cached() -> bool:
    """Whether the compiled step loop is already in this process or in Numba's cache."""
    if K.train_chunk.signatures:
        return True
    try:
        cache_dir = K.train_chunk._cache._cache_path
    except AttributeError:  # pragma: no cover - numba internals changed
        return True
    return bool(glob.glob(os.path.join(cache_dir, "_kernels.train_chunk-*.nbi")))


def train(
    cfg: ModelConfig,
    task: Task,
    optimizer: str = "adam",
    lr: float = 0.05,
    steps: int = 300,
    batch: int = 128,
    seed: int = 0,
    scale: float | Mapping[str, float] = 0.01,
    log_every: int = 10,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    params: Mapping | None = None,
    snapshots: bool = False,
    progress: bool = False,
) -> Run:
    """Train the model ``cfg`` on ``task`` and return the `Run`.

    Parameters
    ----------
    optimizer : "gd" (one fixed batch, drawn once), "sgd" or "adam" (a fresh batch every step)
    lr, steps, batch : learning rate (> 0), number of updates (>= 0), batch size (>= 1)
    seed : the init is ``init_params(cfg, seed, scale)``; the data come from an
        independent stream of the same seed
    log_every : log metrics every this many steps (and at step 0 and ``steps``)
    weight_decay : adds ``weight_decay/2 · |θ|²`` to the loss (L2, also under Adam)
    params : start from these parameters instead of ``init_params(cfg, seed, scale)``
    snapshots : also record the table U, the bias b (zeros without one) and the mean
        attention at every logged step
    progress : show a progress bar (tqdm)

    A run whose loss becomes non-finite stops there with ``status == "diverged"`` and
    keeps its history up to that point.
    """
    if not isinstance(cfg, ModelConfig):
        raise ValueError(f"cfg must be an attnsim.ModelConfig, got {type(cfg).__name__}")
    if not isinstance(task, Task):
        raise ValueError(f"task must be an attnsim task (see attnsim.tasks), got {type(task).__name__}")
    check_compatible(cfg, task)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    lr = _check_number("lr", lr, 0, strict=True)
    steps = _check_number("steps", steps, 0, integer=True)
    batch = _check_number("batch", batch, 1, integer=True)
    log_every = _check_number("log_every", log_every, 1, integer=True)
    weight_decay = _check_number("weight_decay", weight_decay, 0)
    b1 = _check_number("betas[0]", betas[0], 0)
    b2 = _check_number("betas[1]", betas[1], 0)
    if b1 >= 1 or b2 >= 1:
        raise ValueError(f"betas must lie in [0, 1), got {betas!r}")
    eps = _check_number("eps", eps, 0, strict=True)
    seed_sequence(seed)
    start = init_params(cfg, seed, scale) if params is None else check_params(cfg, params)

    settings = {
        "optimizer": optimizer,
        "lr": lr,
        "steps": steps,
        "batch": batch,
        "seed": int(seed),
        "scale": dict(scale) if isinstance(scale, Mapping) else float(scale),
        "log_every": log_every,
        "weight_decay": weight_decay,
        "betas": [b1, b2],
        "eps": eps,
        "init": "given" if params is not None else "init_params",
    }
    if not kernels_cached():
        log.info("compiling kernels (first run only, about a minute)")

    t_start = time.perf_counter()
    lay = layout(cfg)
    theta = pack(cfg, start)
    m1 = np.zeros_like(theta)
    m2 = np.zeros_like(theta)
    hyper = np.array([lr, weight_decay, b1, b2, eps], dtype=np.float64)
    opt = K.OPT_ADAM if optimizer == "adam" else K.OPT_SGD
    H = cfg.heads
    rng = np.random.default_rng(seed_sequence(seed, STREAM_DATA))

    n_forward = steps + 1  # the last forward pass measures the final parameters
    logged = np.zeros(n_forward, dtype=np.bool_)
    logged[::log_every] = True
    logged[-1] = True
    chunk = chunk_steps(task, batch)
    fixed = None
    if optimizer == "gd":
        x, y, g = task.sample(rng, batch)
        fixed = (x[None], y[None], g[None])
    elif task.gold_constant is not None:  # the same gold alignment for every sequence: build it once
        gold_chunk = np.ascontiguousarray(np.broadcast_to(task.gold_constant, (chunk, batch, task.tgt_len)))

    rows_step, rows_loss, rows_met = [], [], []
    snaps = {"step": [], "U": [], "b": [], "alpha": []} if snapshots else None
    status, message = "finished", ""
    bar = _progress(steps, progress)
    pos = 0
    try:
        while pos < n_forward:
            K_ = min(chunk, n_forward - pos)
            if fixed is None:
                x, y, g = task.draw(rng, chunk * batch)  # a whole chunk, always
                g = gold_chunk if g is None else g.reshape(chunk, batch, -1)
                data = (x.reshape(chunk, batch, -1), y.reshape(chunk, batch, -1), g)
            else:
                data = fixed
            # with snapshots, calls are split at logged steps, and the snapshot is taken
            # before that step's update; the kernel keeps no state between calls, so
            # the bits are the same either way
            cuts = [0, K_] if snaps is None else sorted({0, K_, *[k for k in range(K_) if logged[pos + k]]})
            for a, b in zip(cuts[:-1], cuts[1:], strict=True):
                n_here = b - a
                last_call = pos + b == n_forward
                flags = logged[pos + a : pos + b].copy()
                out_loss = np.zeros(n_here)
                out_met = np.zeros((n_here, K.n_metrics(H)))
                xs = data[0] if fixed is not None else data[0][a:b]
                ys = data[1] if fixed is not None else data[1][a:b]
                gs = data[2] if fixed is not None else data[2][a:b]
                if snaps is not None and flags[0]:
                    _snapshot(snaps, cfg, theta, xs[0], pos + a)
                done = K.train_chunk(
                    xs, ys, gs, theta, m1, m2, lay, hyper, opt, pos + a, not last_call, flags, out_loss, out_met
                )
                for k in range(done):
                    if flags[k]:
                        rows_step.append(pos + a + k)
                        rows_loss.append(out_loss[k])
                        rows_met.append(out_met[k].copy())
                bar.update(min(done, n_here - int(last_call)))
                if done < n_here:
                    bad = pos + a + done
                    status = "diverged"
                    message = (
                        f"the loss became non-finite at step {bad}; lr {lr:g} is probably too large for this setting"
                    )
                    log.warning(message)
                    raise _Stop
            pos += K_
    except _Stop:
        pass
    finally:
        bar.close()

    met = np.array(rows_met).reshape(len(rows_met), K.n_metrics(H))
    heads_acc = met[:, K.MET_HEADS : K.MET_HEADS + H]
    heads_mass = met[:, K.MET_HEADS + H : K.MET_HEADS + 2 * H]
    steps_arr = np.array(rows_step, dtype=np.int64)
    history = {
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
    if snaps is not None:
        snaps = {k: np.array(v) for k, v in snaps.items()}
    return Run(
        cfg=cfg,
        task=task.spec(),
        settings=settings,
        history=history,
        params=unpack(cfg, theta),
        status=status,
        message=message,
        elapsed=time.perf_counter() - t_start,
        snapshots=snaps,
    )


class _Stop(Exception):
    pass


def _best_head(acc: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per logged step, the value of the head with the highest attention accuracy
    (the first such head; NaN when attention accuracy is undefined)."""
    if acc.shape[0] == 0:
        return np.zeros(0)
    if np.all(np.isnan(acc)):
        return np.full(acc.shape[0], np.nan)
    best = np.argmax(np.where(np.isnan(acc), -np.inf, acc), axis=1)
    return values[np.arange(acc.shape[0]), best]


def _snapshot(snaps, cfg, theta, x, step):
    params = unpack(cfg, theta)
    _, alpha = forward(cfg, params, x)
    U = params["U"] if cfg.d_model is None else np.einsum("hod,hdi->hoi", params["W"], params["E"])
    snaps["step"].append(step)
    snaps["U"].append(U)
    snaps["b"].append(params["b"] if cfg.bias else np.zeros(cfg.vocab_out, cfg.np_dtype))
    snaps["alpha"].append(alpha.mean(axis=1))


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="step", dynamic_ncols=True, leave=False)


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def resume_task(run: Run) -> Task:
    """The task of a saved run, rebuilt from its spec."""
    return from_spec(run.task)
