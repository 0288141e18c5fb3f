"""The command line: outputs, one-line errors with exit code 2, nothing half-written."""

import json
import math
import os
import subprocess
import sys

import pytest

import attnsim as at
from attnsim.cli import main

SMALL = ["--vocab", "12", "--length", "6", "--steps", "40", "--batch", "16", "--quiet"]


def test_run_writes_history_params_and_figures(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "copy", "--out", str(out), *SMALL]) == 0
    assert sorted(os.listdir(out)) == [
        "attention.png",
        "history.json",
        "learning_curves.png",
        "params.npz",
        "state.npz",
    ]
    line = capsys.readouterr().out.strip()
    assert line.startswith("copy(vocab=12, length=6, replace=False): ") and "token acc" in line
    run = at.load_run(out)
    assert run.settings["steps"] == 40 and run.cfg.vocab_in == 12
    doc = json.loads((out / "history.json").read_text())
    assert set(doc["summary"]) >= {"success", "time_to_learn", "final_acc", "final_attn_acc"}
    for png in ("attention.png", "learning_curves.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_the_dot_head_with_its_options(tmp_path, capsys):
    out = tmp_path / "dot"
    argv = ["run", "copy", "--model", "dot", "--dim", "8", "--key-dim", "4", "--values", "word+position"]
    assert main([*argv, "--context", "0.5", "--attention", "both", "--out", str(out), *SMALL]) == 0
    run = at.load_run(out)
    assert run.cfg == at.DotConfig(
        12, 12, 6, 6, dim=8, key_dim=4, attention="both", values="word+position", context=0.5
    )
    assert json.loads((out / "history.json").read_text())["model"] == "dot"
    assert run.settings["scale"] is None  # the model's default init
    assert "token acc" in capsys.readouterr().out


@pytest.mark.parametrize("task", ["reorder", "translate", "keyword"])
def test_every_task_runs(tmp_path, task):
    assert main(["run", task, "--out", str(tmp_path / task), *SMALL, "--heads", "2"]) == 0


def test_text_task_runs_on_a_file(tmp_path):
    p = tmp_path / "pairs.txt"
    p.write_text("a b c\tx y z\nb c a\ty z x\nc a b\tz x y\n", encoding="utf-8")
    assert (
        main(
            ["run", "text", "--path", str(p), "--out", str(tmp_path / "t"), "--steps", "10", "--batch", "4", "--quiet"]
        )
        == 0
    )
    assert at.load_run(tmp_path / "t").task["name"] == "text"


BAD = [
    (["run", "copy", "--vocab", "30", "--length", "40"], "length 40 > vocab 30"),
    (["run", "copy", "--lr", "-1"], "--lr must be > 0"),
    (["run", "copy", "--lr", "nan"], "expected a finite number"),
    (["run", "copy", "--steps", "abc"], "argument --steps: expected an integer, got 'abc'"),
    (["run", "copy", "--steps", "-5"], "--steps must be >= 0"),
    (["run", "nosuch"], "invalid choice: 'nosuch'"),
    (["theory", "copy", "--model", "rnn"], "argument --model: invalid choice: 'rnn' (choose from 'free', 'dot')"),
    (["run", "copy", "--heads", "0"], "heads must be a positive integer"),
    (["run", "text"], "--path FILE is required"),
    (["run", "copy", "--path", "x.txt"], "attnsim run copy: --path does not apply to the task 'copy'"),
    (["theory", "text"], "attnsim theory text: --path FILE is required"),
    (["run", "copy", "--zipf", "1", "--keywords", "3"], "--keywords, --zipf do not apply to the task 'copy'"),
    (["compare", "text", "--path", "x.txt", "--vocab", "5"], "--vocab does not apply to the task 'text' (its vocab"),
    (["run", "keyword", "--keywords", "99"], "keywords 99 >= vocab 60"),
    (["run", "copy", "--bogus"], "unrecognized arguments: --bogus"),
    (["compare", "copy", "--lr", "-1"], "--lr must be > 0"),
    (["compare", "copy", "--vocab", "30", "--length", "40"], "length 40 > vocab 30"),
    (["theory", "copy", "--threshold", "2"], "--threshold must lie in (0, 1)"),
    (["theory", "copy", "--scale", "-0.1"], "--scale must be >= 0"),
    # sizes that cannot fit this machine: refused before anything is allocated
    (["run", "copy", "--vocab", "1000000000"], "needs about 90.2 EiB of memory, and this machine has"),
    (["run", "copy", "--batch", "1000000000"], "at batch 1,000,000,000 for 300 steps: needs about"),
    (["run", "translate", "--vocab", "100000000000"], "word tables: needs about"),
    (["theory", "copy", "--vocab", "1000000000"], "the theory of copy(vocab=1000000000"),
    # the model and its own options
    (["run", "copy", "--model", "lstm"], "argument --model: invalid choice: 'lstm'"),
    (["run", "copy", "--model", "dot", "--d-model", "3"], "attnsim run: --d-model does not apply to the model 'dot'"),
    (["run", "copy", "--dim", "3"], "attnsim run: --dim does not apply to the model 'free'"),
    (["run", "copy", "--model", "dot", "--context", "-1"], "DotConfig: context must be a finite number >= 0"),
    (["run", "copy", "--model", "dot", "--dim", "0"], "DotConfig: dim must be a positive integer, got 0"),
    (["run", "copy", "--model", "dot", "--values", "all"], "argument --values: invalid choice: 'all'"),
    (["compare", "copy", "--model", "dot", "--key-dim", "-2"], "DotConfig: key_dim must be None or a positive integer"),
    (["run", "copy", "--model", "dot", "--dim", "100000000000"], "needs about"),
    # a value the task refuses is refused, not replaced by its default
    (["run", "keyword", "--keywords", "0"], "keywords must be an integer >= 1, got 0"),
    (["run", "translate", "--vocab-out", "0"], "vocab_out must be an integer >= 1, got 0"),
    (
        ["run", "keyword", "--model", "clf", "--attention", "uniform", "--intermediate", "8"],
        "--intermediate does not apply to uniform attention",
    ),  # fmt: skip
    # judging a ladder again needs a finished ladder, and nothing else asked of the command
    (["reproduce", "ladder", "--judge-again"], "holds no ladder section to judge again"),
    (["reproduce", "copy", "--judge-again"], "--judge-again is for a finished ladder alone"),
    (["reproduce", "ladder", "--judge-again", "--full"], "--judge-again is for a finished ladder alone"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a[1:]) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert err.startswith(f"attnsim {argv[0]}"), err  # the message names the command it came from
    assert not out.exists() and os.listdir(tmp_path) == []


def test_reproduce_refuses_an_empty_output_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # '' would be the working directory
    assert main(["reproduce", "ladder", "--out", ""]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the output directory is empty" in err and os.listdir(tmp_path) == []
    assert err.startswith("attnsim reproduce: the output directory") and err.count("reproduce:") == 1, err


@pytest.mark.parametrize(
    "content, message",
    [
        ("a b\n", "line 1: expected 'source<TAB>target', found no tab"),
        ("", "no sentence pairs"),
        ("a b\tc\nd\x00e\tf\n", "line 2: control character U+0000 (NUL) in the text; is this a text file?"),
        ("a b\tc\r\nd\x0ce\tf\r\n", "line 2: control character U+000C (form feed) in the text"),
    ],
)
def test_malformed_text_file(tmp_path, capsys, content, message):
    p = tmp_path / "bad.txt"
    p.write_text(content)
    assert main(["run", "text", "--path", str(p), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "o").exists()


def test_out_must_be_a_directory(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["run", "copy", "--out", str(f), *SMALL]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    "lr, optimizer, why", [("1e308", "sgd", "became non-finite at step 1"), ("1e6", "adam", "grew to")]
)
def test_a_diverging_run_exits_1_says_why_once_and_keeps_what_it_has(tmp_path, capsys, lr, optimizer, why):
    out = tmp_path / "d"
    code = main(["run", "copy", "--out", str(out), *SMALL, "--optimizer", optimizer, "--lr", lr, "--scale", "1"])
    assert code == 1
    captured = capsys.readouterr()
    assert captured.err.count(why) == 1 and captured.err.count("\n") == 1  # one line, not two
    assert "diverged at step" in captured.out
    run = at.load_run(out)
    assert run.status == "diverged" and run.stopped_at is not None
    assert (out / "learning_curves.png").stat().st_size > 10_000 and (out / "attention.png").exists()


# ----------------------------------------------------------------- output directories


def _tree(path):
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_finished_result_is_never_overwritten_without_force(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", "copy", "--out", str(out), *SMALL, "--seed", "1"]) == 0
    before = _tree(out)
    assert main(["run", "copy", "--out", str(out), *SMALL, "--seed", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds a training run (history.json); pass --force" in err
    assert _tree(out) == before
    # --force replaces it whole: the new run's files, none of the old run's left
    (out / "snapshots.npz").write_bytes(b"from an older run")
    assert main(["run", "copy", "--out", str(out), *SMALL, "--seed", "2", "--force"]) == 0
    assert at.load_run(out).settings["seed"] == 2 and not (out / "snapshots.npz").exists()


@pytest.mark.parametrize("command", ["run", "theory", "compare"])
def test_a_directory_of_another_kind_is_refused_even_with_force(tmp_path, capsys, command):
    sweep_dir = tmp_path / "sweep"
    spec = tmp_path / "s.toml"
    spec.write_text('[task]\nname = "copy"\nvocab = 12\nlength = 6\n[train]\nsteps = 5\nbatch = 4\n')
    assert main(["sweep", str(spec), "--out", str(sweep_dir), "--quiet"]) == 0
    capsys.readouterr()
    before = _tree(sweep_dir)
    extra = SMALL if command != "theory" else ["--vocab", "12", "--length", "6"]
    if command == "compare":
        extra = [a for a in SMALL if a != "--quiet"] + ["--quiet"]
    assert main([command, "copy", "--out", str(sweep_dir), *extra, "--force"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a sweep (sweep.json); choose another --out" in err
    assert _tree(sweep_dir) == before
    # and the other way round: a sweep into a run's directory
    run_dir = tmp_path / "run"
    assert main(["run", "copy", "--out", str(run_dir), *SMALL]) == 0
    assert main(["sweep", str(spec), "--out", str(run_dir), "--quiet"]) == 2
    assert "holds a training run (history.json); choose another --out for a sweep" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "sweep", "theory", "reproduce"])
def test_an_output_that_cannot_be_made_is_refused_before_any_work(tmp_path, capsys, command, monkeypatch):
    from attnsim import _train

    (tmp_path / "FILE").write_text("x")
    trained = []
    monkeypatch.setattr(_train, "_train_group", lambda *a, **k: trained.append(1))
    spec = tmp_path / "s.toml"
    spec.write_text('[task]\nname = "copy"\nvocab = 12\nlength = 6\n')
    args = {
        "run": ["run", "copy", *SMALL],
        "sweep": ["sweep", str(spec), "--quiet"],
        "theory": ["theory", "copy", "--vocab", "12", "--length", "6"],
        "reproduce": ["reproduce", "toy", "--quiet"],
    }[command]
    before = sorted(os.listdir(tmp_path))
    assert main([*args, "--out", str(tmp_path / "FILE" / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "FILE is a file, not a directory" in err and "Errno" not in err
    # a read-only file system (as root, permission bits do not stop a write: the probe does)
    import errno

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("attnsim._outputs.tempfile.mkstemp", read_only)
    assert main([*args, "--out", str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot create {tmp_path / 'new'}: cannot write in {tmp_path} (Read-only" in err
    assert sorted(os.listdir(tmp_path)) == before and not trained


def test_compare_of_a_diverging_run_says_so_and_exits_1(tmp_path, capsys):
    out = tmp_path / "c"
    args = ["compare", "copy", "--vocab", "12", "--length", "6", "--optimizer", "sgd", "--lr", "1e308", "--scale", "1"]
    assert main([*args, "--out", str(out), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "simulation diverged at step 1" in captured.out and captured.err.count("non-finite") == 1
    doc = json.loads((out / "agreement.json").read_text())
    assert (
        doc["agreement"]["simulated"]["status"] == "diverged" and doc["agreement"]["simulated"]["stopped_at_step"] == 1
    )
    assert (out / "compare.png").stat().st_size > 10_000


def test_python_saves_are_guarded_too(tmp_path):
    run = at.train(at.ModelConfig.for_task(at.tasks.copy(6, 4)), at.tasks.copy(6, 4), steps=2, batch=2)
    run.save(tmp_path / "r")
    with pytest.raises(ValueError, match="already holds a training run .*force=True"):
        run.save(tmp_path / "r")
    run.save(tmp_path / "r", force=True)
    spec = tmp_path / "s.toml"
    spec.write_text('[task]\nname = "copy"\nvocab = 6\nlength = 4\n[train]\nsteps = 2\nbatch = 2\n')
    at.sweep(spec, tmp_path / "sw", progress=False)
    with pytest.raises(ValueError, match="holds a sweep"):
        run.save(tmp_path / "sw", force=True)  # a run never lands in a sweep's directory
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="afile is a file, not a directory"):
        run.save(tmp_path / "afile" / "x")


def test_an_empty_out_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "copy", *SMALL, "--out", ""]) == 2
    assert "the output directory is empty (--out '')" in capsys.readouterr().err and os.listdir(tmp_path) == []


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"attnsim {at.__version__}"


def test_gradcheck_prints_a_table_and_passes(capsys):
    assert main(["gradcheck", "--trials", "4"]) == 0
    out = capsys.readouterr().out
    assert "vs finite diff" in out and "worst:" in out and " NO" not in out


def test_console_script_reports_bad_input_in_one_line(tmp_path):
    """The installed entry point, as a user calls it."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "attnsim.cli",
            "run",
            "copy",
            "--vocab",
            "30",
            "--length",
            "40",
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "length 40 > vocab 30" in proc.stderr
    assert proc.stdout == "" and not (tmp_path / "x").exists()


def test_compare_draws_simulation_and_exact_dynamics_together(tmp_path, capsys):
    """The issue's setting: online SGD lr 10, batch 256, zero init on copy(60, 40)."""
    out = tmp_path / "cmp"
    args = ["compare", "copy", "--vocab", "60", "--length", "40", "--optimizer", "sgd", "--lr", "10"]
    assert main([*args, "--batch", "256", "--scale", "0", "--out", str(out), "--quiet"]) == 0
    assert sorted(os.listdir(out)) == ["agreement.json", "compare.png", "curves.json"]
    doc = json.loads((out / "agreement.json").read_text())
    ag = doc["agreement"]
    assert ag["simulated"]["success"]
    assert ag["reduced"]["max_gold_mass_gap"] <= 2e-3  # same step as the simulation: batch noise only
    assert ag["reduced"]["time_ratio"] == pytest.approx(1.0, abs=0.01)
    assert ag["two_stage"]["early_rel_error"] <= 0.05  # where the two-stage form claims to hold ...
    assert ag["two_stage"]["time_ratio"] > 1.5  # ... and the acceleration it misses later, shown
    curves = json.loads((out / "curves.json").read_text())
    n = len(curves["simulation"]["tau"])
    assert n > 100 and len(curves["reduced"]["gold_mass"]) == n == len(curves["two_stage"]["gold_mass"])
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "reduced dynamics: largest gold-mass gap" in capsys.readouterr().out


def test_compare_on_the_permutation_copy_reports_the_saddle(tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "copy", "--vocab", "10", "--length", "10", "--lr", "2", "--batch", "256", "--steps", "600"]
    assert main([*args, "--scale", "0.01", "--seed", "0", "--out", str(out), "--quiet"]) == 0
    doc = json.loads((out / "agreement.json").read_text())
    assert doc["hardness"]["hard"] and doc["saddle"]["rate"] == pytest.approx(1 / 100)
    assert doc["agreement"]["saddle"]["right"] and doc["agreement"]["simulated"]["success"]
    assert doc["agreement"]["reduced"]["time_ratio"] == pytest.approx(1.0, abs=0.03)


def test_theory_writes_the_verdict_the_rates_and_a_figure(tmp_path, capsys):
    hard, easy = tmp_path / "hard", tmp_path / "easy"
    assert main(["theory", "copy", "--vocab", "40", "--length", "40", "--out", str(hard)]) == 0
    assert "hard" in capsys.readouterr().out
    doc = json.loads((hard / "theory.json").read_text())
    assert doc["verdict"]["hard"] and doc["stage2"]["time_to_attend"] is None  # never, by the two-stage form
    assert doc["saddle"]["rate"] == pytest.approx(1 / 40**2) and doc["saddle"]["unique"]
    assert main(["theory", "keyword", "--vocab", "20", "--length", "10", "--out", str(easy)]) == 0
    doc = json.loads((easy / "theory.json").read_text())
    assert not doc["verdict"]["hard"] and doc["stage2"]["order_first_words"][0][0] == 0  # the keyword first
    assert (easy / "theory.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_theory_and_compare_of_a_text_task_without_gold(tmp_path, capsys):
    """User data has no gold alignment: theory and compare time the attention on the
    position stage 2 ranks first, and compare draws the simulated attention beside it."""
    from attnsim._reproduce_free import synthetic_corpus

    corpus = tmp_path / "pairs.txt"
    corpus.write_text(synthetic_corpus(400, seed=1), encoding="utf-8")
    th, cmp = tmp_path / "th", tmp_path / "cmp"
    assert main(["theory", "text", "--path", str(corpus), "--out", str(th)]) == 0
    assert "attention on the position stage 2 ranks first (no gold) reaches 0.5 at τ =" in capsys.readouterr().out
    doc = json.loads((th / "theory.json").read_text())
    task = at.tasks.from_parallel_text(corpus)
    want = at.theory.time_to_attend(task, 0.5, target="top")
    assert doc["stage2"]["time_to_attend"] == pytest.approx(want, rel=1e-12) and math.isfinite(want)
    curve = doc["curves"]["two-stage closed form"]
    assert curve["top_mass"][0] == pytest.approx(1 / 7) and all(v is None for v in curve["gold_mass"])
    with pytest.raises(ValueError, match="has no gold alignment"):
        at.theory.time_to_attend(task, 0.5)
    assert main(["compare", "text", "--path", str(corpus), "--lr", "2", "--out", str(cmp), "--quiet"]) == 0
    ag = json.loads((cmp / "agreement.json").read_text())["agreement"]
    assert ag["simulated"]["final_top_mass"] > 0.6
    assert 0.5 < ag["two_stage"]["time_ratio"] < 2  # the closed form's clock, on data it was not fitted to
    assert (cmp / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gradcheck_refuses_bad_counts_in_one_line(capsys):
    bad = ((["--seed", "-1"], "--seed must be >= 0, got -1"), (["--trials", "0"], "--trials must be >= 1"))
    for argv, message in bad:
        assert main(["gradcheck", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("attnsim gradcheck: ") and message in err
