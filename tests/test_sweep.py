"""Sweeps: the batch-of-runs engine is bit-identical to single runs; the sweep table is
the same serially, in parallel, in other unit sizes, after SIGKILL and resume, and on a
Dask cluster; bad specs end with one line and exit code 2, writing nothing."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import attnsim as at
from attnsim import _sweep
from attnsim.cli import main

SPEC = """\
[task]
name = "copy"
vocab = [{vocabs}]
length = {length}
[model]
heads = [1, 2]
[train]
optimizer = "adam"
lr = [0.05, 0.2]
steps = {steps}
batch = {batch}
seeds = {seeds}
"""


def _spec(tmp_path, name="spec.toml", vocabs="8, 10", length=8, steps=60, batch=16, seeds=3):
    p = tmp_path / name
    p.write_text(SPEC.format(vocabs=vocabs, length=length, steps=steps, batch=batch, seeds=seeds))
    return p


def _same_run(a, b):
    assert a.status == b.status
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k
    for k in a.history:
        assert np.array_equal(a.history[k], b.history[k], equal_nan=True), k


# ----------------------------------------------------------------- the engine


@pytest.mark.parametrize("threads", [1, 2])
def test_train_many_is_bit_identical_to_single_runs(threads):
    """Different seeds, learning rates and init scales in one call, with one run that
    diverges (lr 1e308 overflows): each equals `train` alone, bit for bit."""
    task = at.tasks.copy(10, 8)
    cfg = at.ModelConfig.for_task(task, heads=2)
    seeds, lrs, scales = [3, 0, 7, 1], [0.5, 2.0, 1e308, 1.0], [0.01, 0.1, 0.5, 0.0]
    kw = dict(optimizer="sgd", steps=90, batch=12, log_every=7)
    many = at.train_many(cfg, task, seeds=seeds, lr=lrs, scale=scales, threads=threads, **kw)
    assert [r.status for r in many].count("diverged") == 1 and many[2].status == "diverged"
    for r, (s, lr, sc) in enumerate(zip(seeds, lrs, scales, strict=True)):
        _same_run(many[r], at.train(cfg, task, seed=s, lr=lr, scale=sc, **kw))
        assert many[r].settings == at.train(cfg, task, seed=s, lr=lr, scale=sc, **kw).settings


@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_train_many_other_optimizers_and_task_kinds(optimizer):
    """A fixed batch per run (gd), and a task with per-sequence gold alignments."""
    task = at.tasks.translate(9, 7, 6, zipf=1.1, order="reverse")
    cfg = at.ModelConfig.for_task(task, heads=1, attention="both")
    kw = dict(optimizer=optimizer, lr=0.5 if optimizer == "gd" else 0.05, steps=40, batch=8, log_every=5)
    many = at.train_many(cfg, task, seeds=[5, 2], weight_decay=[0.0, 0.01], threads=2, **kw)
    _same_run(many[0], at.train(cfg, task, seed=5, **kw))
    _same_run(many[1], at.train(cfg, task, seed=2, weight_decay=0.01, **kw))


def test_train_many_from_given_params_equals_train_from_them():
    """Given starting points (the multi-head protocol composes heads): the seeds choose
    the data only, and each run is `train(..., params=...)` bit for bit."""
    task = at.tasks.copy(8, 8)
    cfg = at.ModelConfig.for_task(task, heads=2)
    starts = [at.init_params(cfg, 10 + r, 0.1) for r in range(3)]
    kw = dict(optimizer="adam", lr=0.05, steps=30, batch=8, log_every=5)
    many = at.train_many(cfg, task, seeds=[0, 0, 1], params=starts, threads=2, **kw)
    for r, seed in enumerate([0, 0, 1]):
        alone = at.train(cfg, task, seed=seed, params=starts[r], **kw)
        _same_run(many[r], alone)
        assert many[r].settings == alone.settings and alone.settings["init"] == "given"
    assert not np.array_equal(many[0].params["U"], many[1].params["U"])  # same data, other start
    with pytest.raises(ValueError, match="params must be a sequence of 2 parameter dicts"):
        at.train_many(cfg, task, seeds=[0, 1], params=starts)


def test_train_many_rejects_bad_input():
    task = at.tasks.copy(6, 4)
    cfg = at.ModelConfig.for_task(task)
    with pytest.raises(ValueError, match="lr has 2 values for 3 seeds"):
        at.train_many(cfg, task, seeds=[0, 1, 2], lr=[0.1, 0.2])
    with pytest.raises(ValueError, match="lr must be a number > 0"):
        at.train_many(cfg, task, seeds=[0, 1], lr=[0.1, -1.0])
    with pytest.raises(ValueError, match="threads must be an integer from 1"):
        at.train_many(cfg, task, seeds=[0], threads=0)
    with pytest.raises(ValueError, match="non-empty sequence"):
        at.train_many(cfg, task, seeds=[])


# ----------------------------------------------------------------- the spec


def test_spec_grid_columns_and_order(tmp_path):
    spec = at.load_spec(_spec(tmp_path))
    assert spec.parameter_columns == [
        "task",
        "model",
        "vocab",
        "length",
        "heads",
        "optimizer",
        "lr",
        "steps",
        "batch",
        "seed",
    ]
    assert spec.swept == [("vocab", [8, 10]), ("heads", [1, 2]), ("lr", [0.05, 0.2])]
    points = spec.points()
    assert len(points) == 2 * 2 * 2 * 3
    # the grid in spec order, seeds innermost
    assert [(p.values["vocab"], p.values["heads"], p.values["lr"], p.seed) for p in points[:4]] == [
        (8, 1, 0.05, 0),
        (8, 1, 0.05, 1),
        (8, 1, 0.05, 2),
        (8, 1, 0.2, 0),
    ]
    assert [p.run for p in points] == list(range(24))
    # a task parameter named like a run setting gets its section's prefix
    s2 = at.load_spec({"task": {"name": "reorder", "vocab": 6, "length": 4, "seed": [1, 2]}, "train": {"seeds": [4]}})
    assert "task_seed" in s2.parameter_columns and s2.parameter_columns[-1] == "seed"
    assert [(p.task["seed"], p.seed) for p in s2.points()] == [(1, 4), (2, 4)]


BAD_SPECS = [
    ("[task]\nname = 'copy'\nvocab = 10\nlength = 20\n", "vocab"),
    ("[task]\nname = 'copy'\nvocab = 10\nlength = 5\n[train]\nlr = [0.1, -0.5]\n", "lr must be a number > 0"),
    ("[task]\nname = 'copy'\nvocab = 10\nlength = 5\n[train]\nlearning_rate = 0.1\n", "unknown [train] parameter"),
    ("[task]\nname = 'copy'\nvocab = 10\nlength = 5\n[model]\nvocab_in = 3\n", "the task sets the shapes"),
    ("[task]\nname = 'copy'\nvocab = 10\nlength = 5\n[optim]\nlr = 1\n", "unknown section [optim]"),
    ("[task]\nvocab = 10\n", "needs a name"),
    ("[task]\nname = 'copy'\nvocab = []\nlength = 5\n", "empty list"),
    ("[task]\nname = 'copy'\nvocab = 10\nlength = 5\n[train]\nseeds = 0\n", "seeds must be at least 1"),
    ("[task]\nname = 'copy'\nvocab = 10\nlength = 5\n[train]\nseeds = [1, 1]\n", "repeat"),
    ("[task]\nname = 'copy'\nvocab = 10\nlength = 5\n[model]\nheads = 0\n", "heads"),
    ("[task]\nname = 'copy'\nvocab = 10\nlength = 5\n[train]\nsteps = 2.5\n", "steps must be an integer"),
    ("[task]\nname = 'copy'\nvocab = 10\nlength = 5\n[plot]\nx = 'width'\n", "not a parameter"),
    ("[task]\nname = 'nope'\n", "unknown task"),
    ("[task\nname = 'copy'\n", "not valid TOML"),
]


@pytest.mark.parametrize("text,message", BAD_SPECS, ids=[m for _, m in BAD_SPECS])
def test_bad_specs_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, text, message):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        at.sweep(p, out, progress=False)
    assert main(["sweep", str(p), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not out.exists()


def test_a_binary_spec_names_the_file(tmp_path, capsys):
    p = tmp_path / "figure.toml"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    out = tmp_path / "out"
    assert main(["sweep", str(p), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{p}: not a TOML spec (TOML is UTF-8 text; byte 0 is 0x89)" in err
    assert not out.exists()


def test_progress_off_a_terminal_is_a_line_every_few_seconds(tmp_path, capsys, monkeypatch):
    from attnsim import _progress

    monkeypatch.setattr(_progress, "EVERY", 0.0)  # a line at every update
    spec = _spec(tmp_path, seeds=2)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--workers", "1"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("attnsim: sweep: ")]
    assert len(lines) >= 4 and lines[-1].startswith("attnsim: sweep: 16/16 runs (100 %), ")
    assert all("elapsed" in line for line in lines) and any("left" in line for line in lines)
    assert sum("16/16 runs" in line for line in lines) == 1  # the end is said once, not again on closing


def test_an_interrupted_sweep_says_what_it_kept(tmp_path, capsys, monkeypatch):
    spec = _spec(tmp_path, seeds=2)
    out = tmp_path / "o"

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(_sweep, "run_unit", interrupt)
    assert main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 130
    assert "interrupted before any run finished; --resume starts the sweep" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.setattr(_sweep, "_reachable", interrupt)  # before anything is written
    assert main(["sweep", str(spec), "--out", str(tmp_path / "p"), "--scheduler", "tcp://h:1", "--quiet"]) == 130
    assert "attnsim sweep: interrupted; nothing written" in capsys.readouterr().err and not (tmp_path / "p").exists()


def test_missing_spec_and_bad_options(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sweep", str(tmp_path / "none.toml"), "--out", str(out)]) == 2
    assert "no such spec file" in capsys.readouterr().err
    spec = _spec(tmp_path)
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "0"]) == 2
    assert "attnsim sweep: --workers must be from 1 to" in capsys.readouterr().err
    assert not out.exists()


# ----------------------------------------------------------------- the table


def test_serial_parallel_and_unit_sizes_give_the_same_table(tmp_path):
    spec = _spec(tmp_path)
    serial = at.sweep(spec, tmp_path / "serial", workers=1, unit_runs=1, progress=False)
    parallel = at.sweep(spec, tmp_path / "parallel", workers=2, unit_runs=5, progress=False)
    csv1 = (tmp_path / "serial" / "results.csv").read_bytes()
    assert csv1 == (tmp_path / "parallel" / "results.csv").read_bytes()
    assert serial.to_csv() == csv1 and parallel.rows == serial.rows
    assert len(serial) == 24 and serial.column("run") == list(range(24))
    # each row is the run trained alone
    row = serial.rows[17]
    task = at.tasks.copy(row["vocab"], row["length"])
    run = at.train(
        at.ModelConfig.for_task(task, heads=row["heads"]), task, lr=row["lr"], steps=60, batch=16, seed=row["seed"]
    )
    s = run.summary()
    assert row["success"] == s["success"] and row["final_loss"] == s["final_loss"]
    assert row["final_gold_mass"] == s["final_gold_mass"] and row["time_to_learn"] == s["time_to_learn"]
    for name in ("sweep.json", "summary.json", "phase.png"):
        assert (tmp_path / "serial" / name).exists()


def test_to_pandas_and_summary(tmp_path):
    table = at.sweep(_spec(tmp_path, seeds=2), tmp_path / "o", progress=False)
    df = table.to_pandas()
    assert list(df.columns) == table.columns and len(df) == 16
    assert df["success"].dtype == bool and df["vocab"].tolist() == table.column("vocab")
    summary = _sweep.summarize(at.load_spec(_spec(tmp_path, seeds=2)), table)
    assert (summary["x"], summary["y"], summary["pooled"]) == ("vocab", "heads", ["lr"])
    cell = summary["cells"][0]
    rows = [r for r in table if r["vocab"] == 8 and r["heads"] == 1]
    assert cell["runs"] == 4 and cell["success_rate"] == sum(r["success"] for r in rows) / 4


def test_theory_prediction_on_the_permutation_copy(tmp_path):
    """On a hard task (the permutation copy) every row carries the saddle projection of
    its init, and the summary its predicted success rate."""
    spec = {
        "task": {"name": "copy", "vocab": 8, "length": 8},
        "train": {"optimizer": "adam", "lr": 0.05, "steps": 150, "batch": 32, "scale": 0.01, "seeds": 8},
    }
    table = at.sweep(spec, tmp_path / "perm", progress=False)
    cfg = at.ModelConfig.for_task(at.tasks.copy(8, 8))
    want = [at.theory.saddle_projection(cfg, at.init_params(cfg, s, 0.01)) for s in range(8)]
    assert table.column("saddle_projection") == pytest.approx(want, rel=1e-12)
    (cell,) = _sweep.summarize(at.load_spec(spec), table)["cells"]
    assert cell["predicted_success_rate"] == np.mean(np.array(want) > 0)
    # no verdict where the saddle does not apply (a copy with spare words)
    spec["task"]["vocab"] = 12
    assert at.sweep(spec, tmp_path / "easy", progress=False).column("saddle_projection") == [None] * 8


# ----------------------------------------------------------------- kill and resume


def _rows(path):
    lines = path.read_text().split("\n")
    assert lines[-1] == ""  # every row complete
    return lines[1:-1]


def test_sigkill_then_resume_gives_the_uninterrupted_table(tmp_path):
    """A 60-run sweep killed with SIGKILL part-way, then resumed: 60 rows, none
    repeated, the same bytes as a sweep that was never interrupted."""
    spec = _spec(tmp_path, vocabs="12, 16", length=12, steps=1500, batch=64, seeds=5)
    spec.write_text(spec.read_text().replace("lr = [0.05, 0.2]", "lr = [0.05, 0.1, 0.2]"))
    assert len(at.load_spec(spec).points()) == 60
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "attnsim.cli", "sweep", str(spec), "--out", str(out), "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = out / "results.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill once some units are written
        if results.exists() and len(results.read_bytes().split(b"\n")) > 9:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _rows(results)
    assert 8 <= len(before) < 60, f"kill came at {len(before)} rows; the test needs a sweep in progress"
    # a torn last row (as if the kill had come inside a write) is dropped on resume
    with open(results, "a") as fh:
        fh.write(before[-1][:17])
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "2", "--resume", "--quiet"]) == 0
    after = _rows(results)
    runs = [int(line.split(",")[0]) for line in after]
    assert runs == list(range(60))
    assert set(before) <= set(after)  # finished runs kept as they were
    whole = tmp_path / "whole"
    at.sweep(spec, whole, workers=2, progress=False)
    assert results.read_bytes() == (whole / "results.csv").read_bytes()
    # resuming a finished sweep repeats nothing
    assert main(["sweep", str(spec), "--out", str(out), "--resume", "--quiet"]) == 0
    assert results.read_bytes() == (whole / "results.csv").read_bytes()


def test_existing_results_are_never_overwritten(tmp_path, capsys):
    spec = _spec(tmp_path, seeds=1)
    out = tmp_path / "o"
    at.sweep(spec, out, progress=False)
    kept = (out / "results.csv").read_bytes()
    assert main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 2
    assert "already holds a sweep (sweep.json); pass --resume" in capsys.readouterr().err
    other = _spec(tmp_path, name="other.toml", seeds=2)
    assert main(["sweep", str(other), "--out", str(out), "--resume", "--quiet"]) == 2
    assert "written by a different spec" in capsys.readouterr().err
    (out / "results.csv").write_bytes(kept.replace(b",copy,", b",copy,x,", 1))
    assert main(["sweep", str(spec), "--out", str(out), "--resume", "--quiet"]) == 2
    assert "cells, expected" in capsys.readouterr().err


# ----------------------------------------------------------------- Dask


def _wait_for(path, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            try:
                return json.loads(path.read_text())
            except json.JSONDecodeError:  # being written
                pass
        time.sleep(0.1)
    raise AssertionError(f"{path} did not appear in {seconds} s")


def test_dask_with_the_readmes_worker_command_gives_the_local_bytes(tmp_path):
    """A scheduler and one worker started as the README says (`dask worker ADDRESS
    --nthreads 1`, which runs BLAS on one thread): the same results.csv bytes as a local
    sweep. The spec holds a permutation copy of 30 words, whose saddle projections once
    differed in the last digits (LAPACK's SVD depends on BLAS's thread count)."""
    pytest.importorskip("distributed", reason="the dask extra: pip install 'attnsim[dask]'")
    dask = [sys.executable, "-m", "dask"]
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(vocabs="30", length=30, steps=5, batch=16, seeds=3))
    local = at.sweep(spec, tmp_path / "local", workers=1, progress=False)
    assert all(p is not None for p in local.column("saddle_projection"))
    info = tmp_path / "scheduler.json"
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    scheduler = subprocess.Popen(
        [*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(info)],
        **quiet,
    )
    try:
        address = _wait_for(info)["address"]
        worker = subprocess.Popen([*dask, "worker", address, "--nthreads", "1", "--no-dashboard"], **quiet)
        try:
            out = tmp_path / "dask"
            assert main(["sweep", str(spec), "--out", str(out), "--scheduler", address, "--quiet"]) == 0
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=60)
    assert (out / "results.csv").read_bytes() == (tmp_path / "local" / "results.csv").read_bytes()
    assert len(local) == 12


def test_unreachable_scheduler_is_one_line_and_writes_nothing(tmp_path, capsys):
    pytest.importorskip("distributed")
    spec = _spec(tmp_path, seeds=1)
    out = tmp_path / "o"
    assert main(["sweep", str(spec), "--out", str(out), "--scheduler", "tcp://127.0.0.1:9", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the Dask scheduler" in err
    assert not out.exists()  # so the same command without --scheduler is not refused
    assert main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 0


def test_a_server_that_is_not_a_scheduler_is_one_line_and_writes_nothing(tmp_path):
    """A port that accepts connections but does not speak Dask (an HTTP server here)
    once held the sweep forever; it is given a bounded time, then reported."""
    pytest.importorskip("distributed")
    import http.server
    import threading

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    spec = _spec(tmp_path, seeds=1)
    out = tmp_path / "o"
    code = (
        "import sys; import attnsim._sweep as s; s.CONNECT_SECONDS = 2\n"
        "from attnsim.cli import main; sys.exit(main(sys.argv[1:]))\n"
    )
    address = f"tcp://127.0.0.1:{server.server_address[1]}"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, "sweep", str(spec), "--out", str(out), "--scheduler", address, "--quiet"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and f"no Dask scheduler answered at {address}" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "address", ["tcp//host:8786", "tls://host:8786", "tcp://host", "tcp://host:port", "http://host:8786", "  ", ""]
)
def test_a_malformed_scheduler_address_is_called_malformed_with_or_without_dask(tmp_path, capsys, monkeypatch, address):
    spec = _spec(tmp_path, seeds=1)
    out = tmp_path / "o"
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # as if Dask were not installed
    assert main(["sweep", str(spec), "--out", str(out), "--scheduler", address, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("malformed" in err or "must be an address" in err) and "dask" not in err.lower()
    assert not out.exists()
    assert main(["sweep", str(spec), "--out", str(out), "--scheduler", "tcp://127.0.0.1:9", "--quiet"]) == 2
    assert "needs Dask's distributed scheduler: pip install 'attnsim[dask]'" in capsys.readouterr().err
    assert not out.exists()


def test_a_sweep_started_before_the_model_ladder_resumes_and_finishes_in_the_new_form(tmp_path):
    """tests/data/sweep_v1 is a 4-run sweep written by attnsim 0.1 and cut after 2 runs (no
    model name, no model column). --resume finishes it; the file it leaves is the same
    sweep run from scratch now: the same columns, rows and text, and numbers equal to
    rounding (its first two rows were computed on another machine, and the same bits are
    promised on one machine only: docs/design.md §5)."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(os.path.join(os.path.dirname(__file__), "data", "sweep_v1"), old)
    spec = str(old / "spec.toml")
    table = at.sweep(spec, old, resume=True, progress=False)
    assert len(table) == 4 and table.column("model") == ["free"] * 4
    fresh = at.sweep(spec, tmp_path / "fresh", progress=False)
    import csv

    rows = [
        list(csv.reader((p / "results.csv").read_text(encoding="utf-8").splitlines()))
        for p in (old, tmp_path / "fresh")
    ]
    assert rows[0][0] == rows[1][0] and len(rows[0]) == len(rows[1])  # header and row count
    for a, b in zip(rows[0][1:], rows[1][1:], strict=True):
        for u, v in zip(a, b, strict=True):
            try:
                fu, fv = float(u), float(v)
            except ValueError:
                assert u == v
                continue
            assert fu == pytest.approx(fv, rel=1e-9, abs=1e-12), (u, v)
    assert fresh.column("run") == [0, 1, 2, 3]


def test_a_sweep_of_the_dot_head(tmp_path):
    """[model] name = "dot" with its options swept; each row is the run train_many gives."""
    spec = {
        "task": {"name": "copy", "vocab": 8, "length": 6},
        "model": {"name": "dot", "dim": [4, 8], "context": 0.5, "values": "word+position"},
        "train": {"steps": 30, "batch": 16, "seeds": 2},
    }
    table = at.sweep(spec, tmp_path / "s", progress=False)
    assert table.columns[:8] == ["run", "task", "model", "vocab", "length", "dim", "context", "values"]
    assert table.column("model") == ["dot"] * 4 and table.column("dim") == [4, 4, 8, 8]
    task = at.tasks.copy(8, 6)
    cfg = at.DotConfig.for_task(task, dim=8, context=0.5, values="word+position")
    runs = at.train_many(cfg, task, seeds=[0, 1], steps=30, batch=16)
    assert table.column("final_loss")[2:] == [r.final()["loss"] for r in runs]
    assert table.column("saddle_projection") == [None] * 4  # a learnable task: no saddle
    doc = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert doc["spec"]["model"]["name"] == "dot"
    with pytest.raises(ValueError, match="unknown \\[model\\] parameter 'd_model' for the model 'dot'"):
        at.load_spec({**spec, "model": {"name": "dot", "d_model": 3}})
    with pytest.raises(ValueError, match="\\[model\\] name must be one model name"):
        at.load_spec({**spec, "model": {"name": "lstm"}})


def test_phase_diagram_times_are_coloured_from_zero():
    """Times of 20 and 30 steps are a third of the time panel's scale apart, not all of it;
    the success rate's scale is 0-1 whatever the rates."""
    from attnsim._plots import phase_diagram

    cells = [{"x": v, "y": h, "success_rate": 1.0, "predicted_success_rate": None,
              "median_time_to_learn": 20.0 if v == 40 else 30.0} for v in (40, 50) for h in (1, 2)]  # fmt: skip
    fig = phase_diagram(
        {
            "x": "vocab",
            "y": "heads",
            "x_values": [40, 50],
            "y_values": [1, 2],
            "cells": cells,
            "pooled": [],
            "task": "copy",
            "optimizer": "adam",
            "runs": 4,
        }
    )
    rate, time = (a.images[0] for a in fig.axes[:2])
    assert rate.get_clim() == (0, 1) and time.get_clim() == (0, 30.0)
