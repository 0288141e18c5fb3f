"""``attnsim reproduce``: runs the report's sections and writes the report (``report.md``,
the PNG figures, ``results.json`` and one ``<section>.md`` each).

The sections: the paper's experiments on rung 0 (`_reproduce_free`: copy, multihead,
salient, toy, text), on the authors' recurrent seq2seq (`_reproduce_rnn`) and the validity
map across the ladder (`_reproduce_ladder`); what they share is in `_reproduce_common`.
Each is a function ``section(sizes, say) -> Section`` whose every verdict is computed from a
number printed beside it. Here: which sections to run, how an interrupted report goes on,
what a results file must hold to be read, and how the report is put together.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

from ._outputs import load_plotting
from ._progress import progress as make_progress
from ._reproduce_common import Section, Sizes
from ._reproduce_free import section_copy, section_multihead, section_salient, section_text, section_toy
from ._reproduce_ladder import (
    PARTIAL,
    judged_again,
    kept_rungs,
    ladder_section,
    map_counts,
    partial_full,
    results_damage,
    section_ladder,
)
from ._reproduce_rnn import section_rnn

SECTIONS = ("copy", "multihead", "salient", "toy", "text", "rnn", "ladder")


# the paper's experiments (what ``attnsim reproduce`` runs by default); "ladder" is attnsim's
# validity map across the architectures, run by name or with "all"
PAPER = SECTIONS[:6]


RESULTS_FORMAT = "attnsim-reproduce/1"


class _Say:
    """Progress: one line per stage (logged to ``attnsim``) and, when ``bar`` is true,
    a tqdm bar per group of runs."""

    def __init__(self, enabled: bool, bar: bool):
        self.log = logging.getLogger("attnsim")
        self.enabled = enabled
        self.bar = bar
        self.part = lambda fraction: None  # a section says how far it is (the overall bar moves within it)

    def __call__(self, message: str) -> None:
        if self.enabled:
            self.log.info(message)


def parse_sections(which) -> tuple[str, ...]:
    """``"all"``, ``"paper"`` (`PAPER`), one section name, or a list of them -> the sections
    in report order."""
    names = [which] if isinstance(which, str) else list(which)
    if "all" in names:
        return SECTIONS
    if "paper" in names:
        names = [n for n in names if n != "paper"] + list(PAPER)
    bad = [n for n in names if n not in SECTIONS]
    if bad or not names:
        choices = f"{', '.join(SECTIONS)}, paper or all"
        raise ValueError(f"unknown section {bad[0] if bad else '(none)'!r}: choose from {choices}")
    return tuple(s for s in SECTIONS if s in names)


def _write_files(out: str, files: dict) -> None:
    """Each file is written whole (temporary name, then rename)."""
    from ._outputs import write_output

    os.makedirs(out, exist_ok=True)
    for name, content in files.items():
        write_output(os.path.join(out, name), content)


def _read_results(out: str) -> dict:
    import json

    path = os.path.join(out, "results.json")
    if not os.path.exists(path):
        return {"format": RESULTS_FORMAT, "sections": {}}
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable attnsim reproduce results file ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != RESULTS_FORMAT or not isinstance(doc.get("sections"), dict):
        raise ValueError(f"{path}: not an attnsim reproduce results file (expected format {RESULTS_FORMAT})")
    if doc["sections"] and not isinstance(doc.get("full"), bool):
        raise ValueError(f"{path}: is damaged (its \"full\" is not true or false: which sizes its sections have); "
                         "move the file away or choose another --out")  # fmt: skip
    for name, sec in doc["sections"].items():
        damage = _damage(name, sec)
        if damage:
            raise ValueError(f"{path}: its section {name!r} is damaged ({damage}); move the file away or choose "
                             "another --out")  # fmt: skip
    return doc


def _damage(name, sec) -> str:
    """What is wrong with one section of a results file, as the report and the command line
    read it ('' when nothing)."""
    if name not in SECTIONS:
        return f"not a section of attnsim reproduce: {', '.join(SECTIONS)}"
    if not isinstance(sec, dict):
        return "not an object"
    kinds = {"title": str, "elapsed_seconds": (int, float), "figures": list, "checks": list, "results": dict}
    for key, kind in kinds.items():
        if not isinstance(sec.get(key), kind) or isinstance(sec.get(key), bool):
            return f"{key!r} missing or not a {kind.__name__ if isinstance(kind, type) else 'number'}"
    for c in sec["checks"]:
        if not isinstance(c, dict) or not {"claim", "value", "expected", "passed"} <= set(c) or not isinstance(
                c["passed"], bool):  # fmt: skip
            return "a check without its claim, value, expected and passed (true or false)"
    return results_damage(sec["results"]) if name == "ladder" else ""


def checks_summary(doc: dict) -> str:
    """How many checks agree, and with a ladder section its map's counts (its checks are
    rung 0's; the other rungs' cells are measurements, not checks): the report's headline
    and the command line's last line."""
    checks = [c for s in SECTIONS if s in doc["sections"] for c in doc["sections"][s]["checks"]]
    text = f"{sum(c['passed'] for c in checks)} of {len(checks)} agree with the paper"
    ladder = doc["sections"].get("ladder")
    if ladder is not None:
        held, fail, na = map_counts(ladder["results"])
        text += (
            f" (the ladder's are rung 0's: its claims 5 and 6 are attnsim's theory's, not the paper's); the "
            f"validity map: {held} cells hold, {fail} fail, {na} n/a"
        )
    return text


def _report(doc: dict, out: str) -> str:
    done = [s for s in SECTIONS if s in doc["sections"]]
    checks = [(s, c) for s in done for c in doc["sections"][s]["checks"]]
    sizes = "--full (the paper's)" if doc.get("full") else "default (fewer seeds; --full for the paper's sizes)"
    paper = 'Snell, Zhong, Klein and Steinhardt, "Approximating How Single Head Attention Learns" (arXiv 2103.07601)'
    ladder = ("measures which of its claims hold on each of attnsim's architectures; its checks count rung 0 only, "
              "and its map says how the other rungs fare.")  # fmt: skip
    if done == ["ladder"]:
        intro = f"{paper}: the validity map across attnsim's ladder of models {ladder}"
    else:
        intro = (f"{paper}, reproduced in attnsim's analytic model"
                 + (" (and, in the rnn section, on the authors' own recurrent seq2seq)" if "rnn" in done else "")
                 + ", each experiment beside the theory's prediction."
                 + (f" The ladder section {ladder}" if "ladder" in done else ""))  # fmt: skip
    lines = [
        "# attnsim reproduce" + (": the ladder" if done == ["ladder"] else ""),
        "",
        intro,
        "",
        f"Sections: {', '.join(done)}. Sizes: {sizes}. Every number below is in `results.json`; every run is "
        "reproducible bit for bit from its seed.",
        "",
        f"## Checks: {checks_summary(doc)}",
        "",
        "| section | claim | measured | expected | |",
        "|---|---|---|---|---|",
    ]
    for s, c in checks:
        v = c["value"]
        shown = (f"{v:.0f}" if abs(v) >= 1000 else f"{v:.3g}") if isinstance(v, float) else str(v)
        lines.append(f"| {s} | {c['claim']} | {shown} | {c['expected']} | {'✓' if c['passed'] else '✗ disagrees'} |")
    lines.append("")
    for s in done:
        sec = doc["sections"][s]
        lines.append(f"## {sec['title']}")
        lines.append(f"*({sec['elapsed_seconds']:.0f} s)*\n")
        md = os.path.join(out, f"{s}.md")
        if os.path.exists(md):
            with open(md, encoding="utf-8") as fh:
                lines.append(fh.read())
    return "\n".join(lines) + "\n"


def reproduce(
    out, sections="paper", full: bool = False, progress: bool = False, sizes: Sizes | None = None, force: bool = False
) -> dict:
    """Run the paper's experiments (``sections``: "paper", the default: `PAPER`; "all":
    those and the ladder's validity map; a name from `SECTIONS` or a list) and write
    ``out/report.md``, the figures (PNG), ``out/results.json`` and one ``out/<section>.md``
    per section.

    Each section's files are written as soon as it finishes (each file whole), so an
    interruption loses only the section under way; sections already in ``out`` from an
    earlier call are kept in the report. The ladder section also keeps each rung as it
    finishes (in ``out/ladder.partial``, until the section is written): the same call
    goes on from them, with the same numbers. Sections ``out`` already holds are kept and
    only the others run; when it holds every one asked for, a ValueError before any work
    unless ``force``, which redoes them. One report has one set of sizes (default or full):
    others are refused. A damaged results.json is refused before any work. ``sizes`` (a `Sizes`)
    overrides how many runs each section makes. Returns the results document.
    """
    from ._outputs import claim, result_kinds

    names = parse_sections(sections)
    if sizes is None:
        sizes = Sizes.full_sizes() if full else Sizes.default()
    elif not isinstance(sizes, Sizes):
        raise ValueError(f"sizes must be an attnsim reproduce Sizes, got {type(sizes).__name__}")
    if not str(os.fspath(out)).strip():
        raise ValueError("reproduce: the output directory is empty: give a path, e.g. attnsim-reproduce")
    out = os.path.abspath(os.fspath(out))
    is_report = os.path.isdir(out) and "reproduce" in result_kinds(out)
    out = claim(out, "reproduce", force=force or is_report)  # a report may grow by sections
    doc = _read_results(out)  # refuses a foreign or damaged results.json before any work
    held = [n for n in names if n in doc["sections"]]
    if held and not force and len(held) == len(names):
        raise ValueError(
            f"{out} already holds the section{'s' if len(held) > 1 else ''} {', '.join(held)} of a report; "
            "pass --force to redo, or choose another --out"
        )
    if not force:  # the sections an earlier call finished are kept; the same command goes on from them
        names = tuple(n for n in names if n not in held)
    others = [n for n in doc["sections"] if n not in names]
    size = {True: "--full", False: "default"}  # a report has one set of sizes: its sections' and its ladder's
    if others and doc.get("full", False) != sizes.full:
        raise ValueError(
            f"{out} holds a report at the {size[doc.get('full', False)]} sizes ({', '.join(others)}); one report "
            f"has one set of sizes: choose another --out for the {size[sizes.full]} ones"
        )
    begun = partial_full(os.path.join(out, PARTIAL))  # an unfinished ladder there fixes the report's sizes
    if begun is not None and begun != sizes.full:
        raise ValueError(
            f"{out} holds an unfinished ladder at the {size[begun]} sizes ({PARTIAL}); one report has one set of "
            f"sizes: choose another --out for the {size[sizes.full]} ones, or go on with the ladder"
        )
    if "ladder" in names:  # the rungs an interrupted ladder finished must be this run's (else refused now)
        kept_rungs(os.path.join(out, PARTIAL), sizes)
    load_plotting()  # every section draws its figures after training
    weights = {n: SECTION_SECONDS[n] for n in names}
    fmt = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]"
    overall = make_progress(100.0, progress, desc=f"reproduce: {names[0]}", unit="%", bar_format=fmt)
    # a bar per group of runs under the overall one; off a terminal, a group that trains for
    # more than 10 s writes its own line every 10 s (steps done, time left), so that an hour
    # of one section does not read "0 % done" throughout
    say = _Say(progress, bar=progress)
    if held and not force:
        say(f"the sections {', '.join(held)} are kept from an earlier call in {out}; running {', '.join(names)}")
    total, at = sum(weights.values()), {"before": 0.0, "shown": 0.0}

    def part(fraction):  # the section under way has done ``fraction`` of its work
        to = 100.0 * (at["before"] + weights[at["name"]] * min(max(fraction, 0.0), 1.0)) / total
        if to > at["shown"]:
            overall.update(to - at["shown"])
            at["shown"] = to

    say.part = part
    try:
        for name in names:
            overall.set_description(f"reproduce: {name}")
            at["name"] = name
            _run_section(name, sizes, say, doc, out)
            part(1.0)
            at["before"] += weights[name]
    finally:
        overall.close()
    return doc


# Seconds each section takes at the default sizes on 2 cores (measured): the weights of
# the overall progress bar.
SECTION_SECONDS = {
    "copy": 32.0,
    "multihead": 40.0,
    "salient": 3.0,
    "toy": 0.5,
    "text": 0.5,
    "rnn": 87.0,
    "ladder": 596.0,
}


def _run_section(name, sizes, say, doc, out) -> None:
    """Run one section and write its files, the results and the report."""
    scratch = tempfile.mkdtemp(prefix=".attnsim-reproduce-")
    try:
        if name == "text":
            sec = section_text(sizes, say, scratch)
            with open(os.path.join(scratch, "parallel_corpus.txt"), "rb") as fh:
                sec.files["parallel_corpus.txt"] = fh.read()
        elif name == "rnn":
            sec = section_rnn(sizes, say)
        elif name == "ladder":
            sec = section_ladder(sizes, say, keep=os.path.join(out, PARTIAL))
        else:
            sec = {"copy": section_copy, "multihead": section_multihead, "salient": section_salient,
                   "toy": section_toy}[name](sizes, say)  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    doc["full"] = sizes.full
    _write_section(doc, out, sec)
    if name == "ladder":  # its rungs are in results.json now
        shutil.rmtree(os.path.join(out, PARTIAL), ignore_errors=True)
    passed = sum(c["passed"] for c in sec.checks)
    say(f"{name}: {passed} of {len(sec.checks)} checks agree ({sec.elapsed:.0f} s)")


def _write_section(doc: dict, out: str, sec: Section) -> None:
    """A section's files, then the results holding it, then the report (each file whole)."""
    doc["sections"][sec.name] = {
        "title": sec.title,
        "elapsed_seconds": sec.elapsed,
        "figures": sorted(sec.figures),
        "checks": sec.checks,
        "results": sec.results,
    }
    _write_files(out, {**sec.figures, **sec.files, f"{sec.name}.md": sec.text.strip() + "\n"})
    _write_files(out, {"results.json": doc})
    _write_files(out, {"report.md": _report(doc, out)})


def judge_ladder_again(out) -> list[dict]:
    """Judge the finished ladder section in ``out`` again by this attnsim's rules, from the
    results it keeps, and rewrite its text, figures, results.json and report.md: nothing is
    trained (seconds, where the ladder took hours). For a ladder written by an older attnsim
    (claim 7's distinct-set rule, `_reproduce_ladder.RESCUE_MIN_SETS`, is newer than some).
    Returns the cells whose verdict changed (also recorded in its results and shown beside
    the map). ValueError, before anything is written, when ``out`` holds no ladder section."""
    out = os.path.abspath(os.fspath(out))
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"reproduce: {out} is not a directory (give the report's directory)")
    doc = _read_results(out)
    ladder = doc["sections"].get("ladder")
    if ladder is None and os.path.isdir(os.path.join(out, PARTIAL)):
        raise ValueError(f"reproduce: {out} holds an unfinished ladder ({PARTIAL}), not a finished one: finish "
                         "it with the command that began it (attnsim reproduce ladder [--full] --out DIR)")  # fmt: skip
    if ladder is None:
        raise ValueError(f"reproduce: {out} holds no ladder section to judge again (run attnsim reproduce ladder)")
    try:  # everything is computed before anything is written
        changed = judged_again(ladder["results"])
        sec = ladder_section(ladder["results"], ladder["elapsed_seconds"])
    except (KeyError, IndexError, TypeError, AttributeError, ValueError, ZeroDivisionError) as err:  # damage unseen
        raise ValueError(f"{os.path.join(out, 'results.json')}: its ladder section cannot be judged again: it is "
                         f"damaged, or not attnsim's ({type(err).__name__}: {err})") from None  # fmt: skip
    _write_section(doc, out, sec)
    return changed
