"""Sweeps: a grid of runs from a TOML spec, trained in groups by the batch-of-runs
engine, written to ``results.csv`` as they finish, resumable, and runnable on Dask.

A spec has the sections ``[task]`` (with ``name``), ``[model]``, ``[train]`` and an
optional ``[plot]`` (``x``, ``y``: the axes of the phase diagram). Any value given as a
list is swept; the grid is the product of the lists, in the order they are written,
with the seeds innermost. ``seeds = N`` means seeds 0…N−1.

Runs that share their shapes and schedule (task, model, optimizer, steps, batch, …)
form a group and are trained together in units of a few runs (`train_many`); learning
rates, init scales and weight decays may differ inside a unit. A run's bits depend on
its own settings only, so the finished table is the same whether the sweep ran
serially, on several cores, resumed after a kill, or on a Dask cluster.

Files in the output directory:

* ``sweep.json`` — the spec as parsed (a resume must match it);
* ``results.csv`` — one row per finished run, appended as units finish, each unit's
  rows in one ``write`` (a kill loses the runs in flight, never tears a row); when the
  sweep completes it is rewritten sorted by ``run``;
* ``summary.json`` and ``phase.png`` — success rate and time to learn over the two
  main axes, with the theory's prediction where one exists.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from . import _arch
from . import tasks as _tasks
from ._memory import SWEEP_ROW_BYTES, fmt_bytes, require, run_bytes
from ._progress import progress as make_progress

SECTIONS = ("task", "model", "train", "plot")
DEFAULT_MODEL = "free"  # a spec without [model] name: rung 0, as sweeps before the ladder
TRAIN_KEYS = ("optimizer", "lr", "steps", "batch", "scale", "log_every", "weight_decay", "beta1", "beta2", "eps")
TRAIN_DEFAULTS = {
    "optimizer": "adam",
    "lr": 0.05,
    "steps": 300,
    "batch": 128,
    "scale": None,  # the architecture's default init
    "log_every": 10,
    "weight_decay": 0.0,
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
}
PER_RUN = ("lr", "scale", "weight_decay")  # may differ between the runs of one unit
RESULT_COLUMNS = (
    "status",
    "success",
    "time_to_learn",
    "time_to_attend",
    "final_loss",
    "final_acc",
    "final_attn_acc",
    "final_gold_mass",
    "saddle_projection",
)
ATTEND_LEVEL = 0.5  # time_to_attend: first logged step with gold attention mass >= this
FORMAT = "attnsim-sweep/1"


# =============================================================================
# the spec
# =============================================================================


@dataclass(frozen=True)
class Point:
    """One run of the grid: its row number, its column values and its settings."""

    run: int
    values: dict  # column -> value (the parameters as the table shows them)
    task: dict  # task spec for `tasks.from_spec`
    model: dict  # the config's keywords besides the task's shapes
    train: dict  # TRAIN_KEYS -> value
    seed: int
    model_name: str = DEFAULT_MODEL

    def group_key(self) -> str:
        """Runs with equal keys share shapes and schedule and can be trained together."""
        shared = {k: v for k, v in self.train.items() if k not in PER_RUN}
        return json.dumps([self.task, self.model_name, self.model, shared], sort_keys=True)


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep spec. Build it with `load_spec` (a TOML file or a dict).

    ``seeds`` is a ``range`` for ``seeds = N`` (never expanded) or a tuple of the
    listed seeds; ``model_name`` the architecture (``[model] name``, default rung 0) and
    ``model`` the other settings of its config; ``run_bytes`` is the memory one run of the
    largest group needs.
    """

    task: dict
    model: dict
    train: dict
    seeds: Sequence
    plot: dict = field(default_factory=dict)
    run_bytes: int = field(default=0, compare=False, repr=False)
    model_name: str = DEFAULT_MODEL

    def to_dict(self) -> dict:
        """The spec as plain data (also what ``sweep.json`` holds); ``seeds = N`` stays N."""
        return {
            "task": self.task,
            "model": {"name": self.model_name, **self.model},
            "train": {**self.train, "seeds": _seeds_json(self.seeds)},
            "plot": self.plot,
        }

    def _named(self):
        """(section, key, column name, values list, swept) in spec order."""
        out = []
        model_keys = {f.name for f in _arch.get(self.model_name).config.options()}
        train_like = set(TRAIN_KEYS) | model_keys | {"seed", "run", "task", "model", *RESULT_COLUMNS}
        for key, value in self.task.items():
            if key == "name":
                continue
            col = f"task_{key}" if key in train_like else key
            out.append(("task", key, col, value))
        out += [("model", k, k, v) for k, v in self.model.items()]
        out += [("train", k, k, v) for k, v in self.train.items()]
        return [(s, k, c, v if _swept(k, v) else [v], _swept(k, v)) for s, k, c, v in out]

    @property
    def parameter_columns(self) -> list[str]:
        return ["task", "model"] + [c for _, _, c, _, _ in self._named()] + ["seed"]

    @property
    def columns(self) -> list[str]:
        return ["run"] + self.parameter_columns + list(RESULT_COLUMNS)

    @property
    def swept(self) -> list[tuple[str, list]]:
        """The swept axes: (column, values), in spec order."""
        return [(c, v) for _, _, c, v, s in self._named() if s]

    @property
    def n_runs(self) -> int:
        """Number of runs of the grid, counted without expanding it."""
        return math.prod(len(v) for *_, v, _ in self._named()) * len(self.seeds)

    def points(self) -> Grid:
        """The runs in order (the product of the lists in spec order, seeds innermost),
        as a lazy sequence: a run is built when it is asked for."""
        return Grid(self)


class Grid(Sequence):
    """The runs of a `SweepSpec` as a sequence of `Point`, computed on demand from the
    run number (its digits in the mixed radix of the list lengths)."""

    def __init__(self, spec: SweepSpec):
        self.spec = spec
        self.named = spec._named()
        self.sizes = [len(v) for *_, v, _ in self.named] + [len(spec.seeds)]
        self.strides = [math.prod(self.sizes[i + 1 :]) for i in range(len(self.sizes))]
        self._n = math.prod(self.sizes)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._point(j) for j in range(*i.indices(self._n))]
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"grid indices are run numbers, got {i!r}")
        j = int(i) + (self._n if i < 0 else 0)
        if not 0 <= j < self._n:
            raise IndexError(f"run {i} is not in this sweep of {self._n} runs")
        return self._point(j)

    def __iter__(self):
        return (self._point(j) for j in range(self._n))

    def _point(self, run: int) -> Point:
        digits = [(run // st) % n for st, n in zip(self.strides, self.sizes, strict=True)]
        task, model, train = {"name": self.spec.task["name"]}, {}, dict(TRAIN_DEFAULTS)
        values = {"task": self.spec.task["name"], "model": self.spec.model_name}
        for (section, key, col, vals, _), d in zip(self.named, digits, strict=False):
            {"task": task, "model": model, "train": train}[section][key] = vals[d]
            values[col] = vals[d]
        seed = int(self.spec.seeds[digits[-1]])
        return Point(run, {**values, "seed": seed}, task, model, train, seed, self.spec.model_name)

    def groups(self):
        """The runs grouped as they are trained: per combination of the settings runs
        of one group share (all but the seeds and `PER_RUN`), in the order of each
        group's first run. Yields, per group, an iterator over its run numbers in
        order; nothing is expanded ahead."""
        shared = [i for i, (sec, key, *_) in enumerate(self.named) if not (sec == "train" and key in PER_RUN)]
        own = [i for i in range(len(self.sizes)) if i not in shared]  # per-run axes, then the seeds
        for s_idx in itertools.product(*(range(self.sizes[i]) for i in shared)):
            base = sum(d * self.strides[i] for d, i in zip(s_idx, shared, strict=True))
            yield (
                base + sum(d * self.strides[i] for d, i in zip(o_idx, own, strict=True))
                for o_idx in itertools.product(*(range(self.sizes[i]) for i in own))
            )


def _seeds_json(seeds):
    """``seeds = N`` as N, a list as the list (what ``sweep.json`` holds)."""
    if isinstance(seeds, range) and seeds.start == 0 and seeds.step == 1:
        return len(seeds)
    return [int(s) for s in seeds]


def _swept(key, value) -> bool:
    return isinstance(value, list)


def load_spec(spec, base_dir: str | None = None) -> SweepSpec:
    """Parse and validate a sweep spec: a path to a TOML file, a dict of sections, or a
    `SweepSpec`. Every task, model and setting of the grid is built once here, so an
    impossible value is a ValueError before anything runs."""
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        path = os.fspath(spec)
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise ValueError(f"{path}: no such spec file") from None
        except OSError as err:
            raise ValueError(f"{path}: cannot read the spec ({err.strerror or err})") from None
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path}: not valid TOML ({err})") from None
        except UnicodeDecodeError as err:
            byte = err.object[err.start]
            raise ValueError(f"{path}: not a TOML spec (TOML is UTF-8 text; byte {err.start} is {byte:#04x})") from None
        base_dir = os.path.dirname(os.path.abspath(path)) if base_dir is None else base_dir
        where = path
    elif isinstance(spec, Mapping):
        doc, where = spec, "spec"
    else:
        raise ValueError(f"a sweep spec is a TOML file path or a dict, got {type(spec).__name__}")
    try:
        parsed = _parse(doc, base_dir or os.getcwd())
        n = parsed.n_runs  # counted, not expanded: a spec of 1e8 runs is refused here, in microseconds
        require(n * SWEEP_ROW_BYTES, f"a sweep of {n:,} runs (its table, held in memory as rows finish)")
        return replace(parsed, run_bytes=_validate(parsed))
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _parse(doc, base_dir) -> SweepSpec:
    unknown = sorted(set(doc) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown section [{unknown[0]}]; sections are [{'], ['.join(SECTIONS)}]")
    for s in SECTIONS:
        if s in doc and not isinstance(doc[s], Mapping):
            raise ValueError(f"[{s}] must be a table of settings")
    task = dict(doc.get("task", {}))
    if "name" not in task:
        raise ValueError("[task] needs a name (copy, reorder, translate, keyword or text)")
    if not isinstance(task["name"], str):
        raise ValueError(f"[task] name must be one task name (a string), got {task['name']!r}")
    if task["name"] == "text" and isinstance(task.get("path"), str):
        task["path"] = os.path.normpath(os.path.join(base_dir, task["path"]))
    model = dict(doc.get("model", {}))
    name = model.pop("name", DEFAULT_MODEL)
    if not isinstance(name, str) or name not in _arch.names():
        raise ValueError(f"[model] name must be one model name ({', '.join(_arch.names())}), got {name!r}")
    model_keys = [f.name for f in _arch.get(name).config.options()]
    for k in model:
        if k not in model_keys:
            hint = " (the task sets the shapes)" if k in _arch.SHAPES else ""
            raise ValueError(
                f"unknown [model] parameter {k!r} for the model {name!r}{hint}; known: name, {', '.join(model_keys)}"
            )
    train = dict(doc.get("train", {}))
    seeds = train.pop("seeds", 1)
    for k in train:
        if k not in TRAIN_KEYS:
            raise ValueError(f"unknown [train] parameter {k!r}; known: {', '.join(TRAIN_KEYS)}, seeds")
    if isinstance(seeds, bool) or not isinstance(seeds, (int, list)):
        raise ValueError(f"seeds must be a count N (seeds 0..N-1) or a list of seeds, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {seeds}")
        seeds = range(seeds)  # never expanded
    else:
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise ValueError(f"seeds must be non-negative integers, got {seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds repeat a seed: {seeds!r}")
        seeds = tuple(seeds)
    plot = dict(doc.get("plot", {}))
    for k in plot:
        if k not in ("x", "y"):
            raise ValueError(f"unknown [plot] setting {k!r}; known: x, y")
    for section, values in (("task", task), ("model", model), ("train", train)):
        for k, v in values.items():
            if isinstance(v, list) and not v:
                raise ValueError(f"[{section}] {k} is an empty list: nothing to sweep")
            if isinstance(v, list) and len(set(map(repr, v))) != len(v):
                raise ValueError(f"[{section}] {k} lists a value twice: {v!r}")
            if isinstance(v, Mapping) or (isinstance(v, list) and any(isinstance(x, (list, Mapping)) for x in v)):
                raise ValueError(f"[{section}] {k} must be a value or a list of values, got {v!r}")
    spec = SweepSpec(task, model, train, seeds, plot, model_name=name)
    columns = spec.parameter_columns
    for k, v in plot.items():
        if v not in columns:
            raise ValueError(f"[plot] {k} = {v!r} is not a parameter of the sweep ({', '.join(columns)})")
    return spec


def _validate(spec: SweepSpec) -> int:
    """Build every distinct task, config and shared setting of the grid once, check each
    per-run value alone; return the memory one run of the largest group needs."""
    from ._train import _check_number, _check_shared, _run_settings, chunk_steps

    grid = spec.points()
    for key in PER_RUN:  # lr, scale, weight_decay: each value on its own
        values = spec.train.get(key, TRAIN_DEFAULTS[key])
        for v in values if isinstance(values, list) else [values]:
            if v is not None:  # scale None: the model's default init
                _check_number(key, v, 0, strict=key == "lr")
    most = 0
    for runs in grid.groups():
        p = grid[next(iter(runs))]
        task = _build_task(p.task)
        cfg = _build_config(task, p.model_name, p.model)
        t = p.train
        steps, batch, log_every = _check_shared(cfg, task, t["optimizer"], t["steps"], t["batch"], t["log_every"])
        _run_settings(
            t["optimizer"], t["lr"], steps, batch, 0, t["scale"], log_every, t["weight_decay"],
            (t["beta1"], t["beta2"]), t["eps"], None,
        )  # fmt: skip
        most = max(most, run_bytes(cfg, task, steps, batch, log_every, chunk_steps(task, batch)))
    return most


_TASK_CACHE: dict = {}


def _build_task(spec: dict):
    key = json.dumps(spec, sort_keys=True)
    if key not in _TASK_CACHE:
        if len(_TASK_CACHE) > 64:
            _TASK_CACHE.clear()
        _TASK_CACHE[key] = _tasks.from_spec(dict(spec))
    return _TASK_CACHE[key]


def _build_config(task, name: str, model: dict):
    return _arch.config_for_task(name, task, **model)


# =============================================================================
# running one unit (locally or on a Dask worker)
# =============================================================================


def run_unit(unit: dict, threads: int | None = None, progress=None) -> list[dict]:
    """Train the runs of one unit (same group) and return their result rows.

    ``unit = {"task", "model_name", "model", "train", "runs": [{"run", "seed", "lr", "scale",
    "weight_decay"}, ...]}``. A plain function of plain data, so that Dask can ship it.
    """
    from ._train import train_many

    task = _build_task(unit["task"])
    cfg = _build_config(task, unit["model_name"], unit["model"])
    t = unit["train"]
    runs = unit["runs"]
    done = train_many(
        cfg,
        task,
        seeds=[r["seed"] for r in runs],
        optimizer=t["optimizer"],
        lr=[r["lr"] for r in runs],
        steps=t["steps"],
        batch=t["batch"],
        scale=[r["scale"] for r in runs],
        log_every=t["log_every"],
        weight_decay=[r["weight_decay"] for r in runs],
        betas=(t["beta1"], t["beta2"]),
        eps=t["eps"],
        threads=threads,
        progress=progress or False,
    )
    projections = _saddle_projections(cfg, task, done)
    rows = []
    for spec_run, run, proj in zip(runs, done, projections, strict=True):
        s = run.summary()
        gm = run.history["gold_mass"]
        hit = np.flatnonzero(gm >= ATTEND_LEVEL)
        rows.append(
            {
                "run": spec_run["run"],
                "status": run.status,
                "success": bool(s["success"]),
                "time_to_learn": s["time_to_learn"],
                "time_to_attend": int(run.history["step"][hit[0]]) if hit.size else None,
                "final_loss": s["final_loss"],
                "final_acc": s["final_acc"],
                "final_attn_acc": s["final_attn_acc"],
                "final_gold_mass": s["final_gold_mass"],
                "saddle_projection": proj,
            }
        )
    return rows


def _saddle_projections(cfg, task, runs) -> list:
    """The saddle's verdict on each run's init (its effective tables), where the theory
    has one (a hard task, positional attention alone); None elsewhere."""
    from . import theory

    none = [None] * len(runs)
    if _arch.of(cfg).effective_tables is None or getattr(cfg, "attention", None) != "positional":
        return none
    try:
        if not theory.hardness(task).hard:
            return none
        theory.saddle(task, cfg.heads)
    except ValueError:
        return none
    return [float(theory.saddle_projection(cfg, run.initial_params, task)) for run in runs]


# =============================================================================
# the table
# =============================================================================


def _cell(v) -> str:
    """A CSV cell: shortest round-trip repr for floats, '' for None."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    return str(v)


def _lines(columns, rows) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for row in rows:
        w.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue().encode()


def _parse_cell(text: str):
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


class SweepTable:
    """The finished table of a sweep: ``columns`` and ``rows`` (dicts), sorted by run."""

    def __init__(self, columns, rows, out=None):
        self.columns = list(columns)
        self.rows = sorted(rows, key=lambda r: r["run"])
        self.out = out

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __repr__(self):
        done = sum(1 for r in self.rows if r.get("success"))
        return f"SweepTable({len(self.rows)} runs, {done} learned, out={self.out!r})"

    def column(self, name) -> list:
        return [r.get(name) for r in self.rows]

    def to_csv(self) -> bytes:
        return (",".join(self.columns) + "\n").encode() + _lines(self.columns, self.rows)

    def to_pandas(self):
        """The table as a pandas DataFrame (pandas is not a dependency of attnsim)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_pandas needs pandas: pip install pandas") from None
        return pd.DataFrame(self.rows, columns=self.columns)


def read_results(path, columns) -> tuple[dict, bool]:
    """The rows of a ``results.csv`` written by a sweep with these columns, as
    ``{run: line}``, and whether a torn last line (a kill during a write) was dropped.
    Any other damage is a ValueError: finished results are never silently dropped."""
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file") from None
    lines = text.split("\n")
    torn = lines[-1] != ""  # the file does not end with a complete line
    lines = lines[:-1]
    if not lines or lines[0] != ",".join(columns):
        raise ValueError(f"{path}: its header is not this sweep's columns; was it written by another sweep?")
    out = {}
    for i, line in enumerate(lines[1:], start=2):
        (cells,) = list(csv.reader([line]))
        if len(cells) != len(columns):
            raise ValueError(f"{path}:{i}: {len(cells)} cells, expected {len(columns)}")
        try:
            run = int(cells[0])
        except ValueError:
            raise ValueError(f"{path}:{i}: run {cells[0]!r} is not an integer") from None
        if run in out and out[run] != line:
            raise ValueError(f"{path}:{i}: run {run} appears twice with different results")
        out[run] = line
    return out, torn


def rows_from_lines(columns, lines) -> list[dict]:
    return [{c: _parse_cell(x) for c, x in zip(columns, next(csv.reader([line])), strict=True)} for line in lines]


# =============================================================================
# the runner
# =============================================================================


def sweep(
    spec,
    out,
    workers: int | None = None,
    resume: bool = False,
    scheduler: str | None = None,
    progress: bool = True,
    unit_runs: int | None = None,
) -> SweepTable:
    """Run the sweep ``spec`` (a TOML path, a dict of sections or a `SweepSpec`) into
    the directory ``out`` and return its table.

    ``workers``: cores to train on (Numba threads; default all); ``resume``: finish a
    sweep already in ``out`` without repeating a finished run; ``scheduler``: the
    address of a Dask scheduler (``tcp://host:port``) to send the runs to instead;
    ``unit_runs``: runs trained together per call (default 4 per worker locally, 8 per
    Dask task). A directory that already holds a sweep is never overwritten, and
    nothing is written before the spec, the target directory, the memory the sweep
    needs and the scheduler (when given) have all been checked.
    """
    from ._outputs import atomic_write, claim, clean_json
    from ._train import check_threads

    spec = load_spec(spec)
    if workers is not None:
        workers = check_threads(workers)
    if unit_runs is not None and (isinstance(unit_runs, bool) or not isinstance(unit_runs, int) or unit_runs < 1):
        raise ValueError(f"unit_runs must be a positive integer, got {unit_runs!r}")
    if scheduler is not None:
        check_address(scheduler)
    out = claim(out, "sweep", force=resume)  # writable, and no result of another kind
    columns = spec.columns
    grid = spec.points()
    header = (",".join(columns) + "\n").encode()
    meta = {"format": FORMAT, "spec": spec.to_dict(), "columns": columns, "runs": len(grid)}
    results_path, meta_path = os.path.join(out, "results.csv"), os.path.join(out, "sweep.json")

    finished: dict[int, str] = {}
    torn = fresh = False
    if os.path.exists(meta_path) or os.path.exists(results_path):
        if not resume:
            raise ValueError(f"{out} already holds a sweep; pass --resume to finish it, or choose another --out")
        finished, torn = _load_previous(meta_path, results_path, meta, columns)
    else:
        fresh = True
    if scheduler is None:
        threads = workers
        size = unit_runs or 4 * (workers or _numba_threads())
        n = min(size, len(grid))
        each = fmt_bytes(spec.run_bytes)
        require(n * spec.run_bytes, f"training {n} runs at once (a unit of this sweep, {each} each)")
        client = None
    else:
        threads, size = None, unit_runs or 8
        client = _connect(scheduler)  # before anything is written: a scheduler that fails leaves no files
    try:
        if fresh:
            os.makedirs(out, exist_ok=True)
            atomic_write(meta_path, (json.dumps(meta, indent=1) + "\n").encode())
            atomic_write(results_path, header)
        elif torn or not os.path.exists(results_path):  # start appending on a fresh line, without the torn row
            lines = [finished[i] for i in sorted(finished)]
            atomic_write(results_path, header + "".join(line + "\n" for line in lines).encode())
        pending = len(grid) - len(finished)
        units = _units(grid, finished, size)
        desc = f"sweep ({len(finished):,} runs done before)" if finished else "sweep"
        fmt = "{l_bar}{bar}| {n:.0f}/{total} runs [{elapsed}<{remaining}]"
        bar = make_progress(pending, progress, desc=desc, unit="runs", bar_format=fmt)
        try:
            fd = os.open(results_path, os.O_WRONLY | os.O_APPEND)
            try:
                stream = _local(units, threads, bar) if client is None else _dask(units, client)
                for rows in stream:
                    lines = [_lines(columns, [{**grid[r["run"]].values, **r}]).decode() for r in rows]
                    os.write(fd, "".join(lines).encode())  # one write: whole rows or none
                    os.fsync(fd)
                    finished.update((r["run"], line[:-1]) for r, line in zip(rows, lines, strict=True))
                    if client is not None:
                        bar.update(len(rows))
            finally:
                os.close(fd)
        finally:
            bar.close()
    finally:
        if client is not None:
            client.close()

    lines = [finished[i] for i in sorted(finished)]
    atomic_write(results_path, header + "".join(line + "\n" for line in lines).encode())
    table = SweepTable(columns, rows_from_lines(columns, lines), out)
    summary = summarize(spec, table)
    atomic_write(
        os.path.join(out, "summary.json"), (json.dumps(clean_json(summary), indent=1, allow_nan=False) + "\n").encode()
    )
    from ._outputs import save_figure
    from ._plots import phase_diagram

    save_figure(phase_diagram(summary), os.path.join(out, "phase.png"))
    return table


def _normal_meta(meta: dict) -> dict:
    """``sweep.json`` in one form, so that older sweeps resume: its seeds as a count N for
    seeds 0..N-1 (a sweep started before ``seeds = N`` was stored as N), and a sweep
    started before the model ladder with its model named (rung 0) and its ``model``
    column."""
    meta = json.loads(json.dumps(meta))
    spec = meta.get("spec") if isinstance(meta.get("spec"), dict) else {}
    train = spec.get("train", {})
    seeds = train.get("seeds") if isinstance(train, dict) else None
    if isinstance(seeds, list) and seeds == list(range(len(seeds))):
        train["seeds"] = len(seeds)
    if isinstance(spec.get("model"), dict):
        spec["model"].setdefault("name", DEFAULT_MODEL)
    columns = meta.get("columns")
    if isinstance(columns, list) and "model" not in columns and "task" in columns:
        columns.insert(columns.index("task") + 1, "model")
    return meta


def _without_model(columns) -> list:
    return [c for c in columns if c != "model"]


def _load_previous(meta_path, results_path, meta, columns) -> tuple[dict, bool]:
    """The finished runs of the sweep being resumed, and whether ``results.csv`` must be
    rewritten before appending (its last row is torn and dropped, or it predates the
    ``model`` column). Reads only."""
    try:
        with open(meta_path, encoding="utf-8") as fh:
            old = json.load(fh)
    except FileNotFoundError:
        raise ValueError(f"{meta_path} is missing: this directory does not hold an attnsim sweep") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{meta_path}: cannot read it ({err})") from None
    if not isinstance(old, dict) or old.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: not an attnsim sweep")
    if _normal_meta(old) != _normal_meta(meta):
        raise ValueError(f"{meta_path}: written by a different spec; --resume needs the spec that started the sweep")
    if not os.path.exists(results_path):
        return {}, False
    if "model" not in old.get("columns", columns):  # written before the model ladder: rows without the model
        finished, torn = read_results(results_path, _without_model(columns))
        at = columns.index("model")
        for run, line in finished.items():
            cells = next(csv.reader([line]))
            row = dict(zip(columns, [*cells[:at], DEFAULT_MODEL, *cells[at:]], strict=True))
            finished[run] = _lines(columns, [row]).decode()[:-1]
        torn = True  # rewrite the file in this sweep's columns before appending to it
    else:
        finished, torn = read_results(results_path, columns)
    bad = sorted(r for r in finished if not 0 <= r < meta["runs"])
    if bad:
        raise ValueError(f"{results_path}: run {bad[0]} is not in this sweep (runs 0..{meta['runs'] - 1})")
    return finished, torn


def _numba_threads() -> int:
    import numba

    return numba.get_num_threads()


def _units(grid: Grid, finished, size: int):
    """The runs not yet finished, grouped by shapes and schedule (`Grid.groups`), cut
    into units of ``size`` runs; generated lazily, one unit at a time."""
    for group in grid.groups():
        chunk = []
        for run in group:
            if run in finished:
                continue
            chunk.append(run)
            if len(chunk) == size:
                yield _unit(grid, chunk)
                chunk = []
        if chunk:
            yield _unit(grid, chunk)


def _unit(grid: Grid, runs: list[int]) -> dict:
    points = [grid[r] for r in runs]
    first = points[0]
    return {
        "task": first.task,
        "model_name": first.model_name,
        "model": first.model,
        "train": first.train,
        "runs": [{"run": p.run, "seed": p.seed, **{k: p.train[k] for k in PER_RUN}} for p in points],
    }


def _local(units, threads, bar):
    for unit in units:
        R, steps = len(unit["runs"]), max(unit["train"]["steps"], 1)
        shown = [0.0]

        def advance(n, R=R, steps=steps, shown=shown):  # steps of the unit → fractions of its runs
            step = min(n * R / steps, R - shown[0])
            shown[0] += step
            bar.update(step)

        rows = run_unit(unit, threads=threads, progress=advance)
        bar.update(R - shown[0])  # whole runs once the unit is written
        yield rows


SCHEMES = ("tcp",)  # the transport `dask scheduler` listens on by default; others need a security set-up
CONNECT_SECONDS = 30  # a scheduler that has not answered by then is not one


def check_address(address) -> str:
    """A Dask scheduler address ``scheme://host:port`` (scheme tcp by default), checked
    for its form only — before Dask is imported, so that a malformed address is called
    malformed whether or not Dask is installed."""
    from urllib.parse import urlsplit

    if not isinstance(address, str):
        raise ValueError(f"scheduler must be an address like tcp://host:8786, got {address!r}")
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in SCHEMES or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ValueError(f"scheduler address {address!r} is malformed: expected tcp://host:port")
    return address


def _connect(address: str):
    """A Dask client of the scheduler at ``address``, or ValueError (one line) in seconds."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise ValueError("--scheduler needs Dask's distributed scheduler: pip install 'attnsim[dask]'") from None
    _reachable(address)
    import threading

    got: dict = {}

    def connect():  # in a thread: a server that accepts but never speaks Dask would hold us forever
        try:
            got["client"] = Client(address, timeout=f"{CONNECT_SECONDS}s")
        except BaseException as err:  # noqa: BLE001 - any failure of a foreign server is reported below
            got["error"] = err

    thread = threading.Thread(target=connect, name="attnsim-dask-connect", daemon=True)
    thread.start()
    thread.join(CONNECT_SECONDS + 5)
    if "client" in got:
        return got["client"]
    err = got.get("error")
    why = f"{type(err).__name__}: {err}" if err is not None else f"no answer in {CONNECT_SECONDS} s"
    why = why.splitlines()[0][:200] if why else why
    raise ValueError(f"no Dask scheduler answered at {address} ({why})")


def _dask(units, client):
    """Results of the units as the cluster finishes them, with a bounded number of
    units submitted at a time (units are generated lazily)."""
    from dask.distributed import as_completed

    flight = max(8, 4 * sum(client.nthreads().values()))
    units = iter(units)
    pool = as_completed([client.submit(run_unit, u, pure=False) for u in itertools.islice(units, flight)])
    for fut in pool:
        rows = fut.result()
        nxt = next(units, None)
        if nxt is not None:
            pool.add(client.submit(run_unit, nxt, pure=False))
        yield rows


def _reachable(address: str) -> None:
    """Fail in seconds, with one line, when nothing listens at a tcp:// address (Dask
    itself would retry until its timeout)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme != "tcp":
        return  # other transports: let Dask judge
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=5).close()
    except OSError as err:
        raise ValueError(f"cannot reach the Dask scheduler at {address}: {err.strerror or err}") from None


# =============================================================================
# summary: the phase diagram
# =============================================================================


def plot_axes(spec: SweepSpec) -> tuple[str | None, str | None]:
    """The two axes of the phase diagram: ``[plot] x, y``, else the first two swept."""
    swept = [c for c, _ in spec.swept]
    x = spec.plot.get("x") or (swept[0] if swept else None)
    y = spec.plot.get("y") or next((c for c in swept if c != x), None)
    return x, y


def summarize(spec: SweepSpec, table: SweepTable) -> dict:
    """Success rate and time to learn per cell of the two main axes (other axes and the
    seeds pooled), with the saddle's predicted success rate where it applies."""
    x, y = plot_axes(spec)
    xs = _values(spec, table, x)
    ys = _values(spec, table, y)
    by_cell: dict = {}  # one pass over the rows (a grid of 100 × 100 cells once took a minute)
    for r in table.rows:
        by_cell.setdefault((repr(r[x]) if x else None, repr(r[y]) if y else None), []).append(r)
    cells = []
    for yv in ys:
        for xv in xs:
            rows = by_cell.get((repr(xv) if x else None, repr(yv) if y else None), [])
            ok = [r for r in rows if r["success"]]
            proj = [r["saddle_projection"] for r in rows]
            t_learn = [r["time_to_learn"] for r in ok if r["time_to_learn"] is not None]
            cells.append(
                {
                    "x": xv,
                    "y": yv,
                    "runs": len(rows),
                    "success_rate": len(ok) / len(rows) if rows else None,
                    "median_time_to_learn": float(np.median(t_learn)) if t_learn else None,
                    "predicted_success_rate": (
                        float(np.mean([p > 0 for p in proj])) if rows and all(p is not None for p in proj) else None
                    ),
                    "prediction_accuracy": (
                        float(np.mean([(r["saddle_projection"] > 0) == r["success"] for r in rows]))
                        if rows and all(p is not None for p in proj)
                        else None
                    ),
                }
            )
    pooled = [c for c, _ in spec.swept if c not in (x, y)]
    return {
        "task": spec.task["name"],
        "model": spec.model_name,
        "optimizer": spec.train.get("optimizer", TRAIN_DEFAULTS["optimizer"]),
        "x": x,
        "y": y,
        "x_values": xs,
        "y_values": ys,
        "pooled": pooled,
        "runs": len(table),
        "cells": cells,
    }


def _values(spec, table, column):
    if column is None:
        return [None]
    if column == "seed":
        return list(spec.seeds)
    for c, values in spec.swept:
        if c == column:
            return list(values)
    return sorted({r[column] for r in table.rows}, key=repr)
