"""The multi-head half of `attnsim reproduce rnn --full` alone: the authors' protocol on their
GRU seq2seq at the paper's width (d 256, separate embeddings, 8 heads averaged; Adam lr 1e-3,
batch 128, 200 steps, float32). 40 candidate heads sharing one base model are screened by
single-head runs on 3 data seeds; then 20 models each of 7 bad + 1 good, 8 bad and 8 random
heads. The same code as the full section (`attnsim._reproduce_rnn._multihead`). Writes
docs/rnn_multihead/ (report.md, rnn_multihead.png, results.json).

    python docs/rnn_multihead.py          # about 1.5 hours on 2 cores
    python docs/rnn_multihead.py --reuse-screening   # the 8-head models again, from the
                                                     # screening in docs/rnn_multihead/results.json
    python docs/rnn_multihead.py --figure            # the figure again from the curves results.json
                                                     # keeps, nothing trained

Beside the section's text, the report measures whether a head's fate is its own: how often
a candidate's three data seeds agree (all learn or none), against how often they would if
each run learned independently at the screening's overall rate.
"""

import json
import logging
import os
import sys
import time

import numpy as np

from attnsim._outputs import claim
from attnsim._reproduce import Sizes, _Say, _write_files
from attnsim._reproduce_rnn import _multihead, _multihead_text, multihead_figure, multihead_verdict

HERE = os.path.dirname(os.path.abspath(__file__))


def agreement(success) -> dict:
    """How often a candidate's data seeds all agree, against independence at the overall rate."""
    ok = np.asarray(success, bool)
    p, k = ok.mean(), ok.shape[1]
    agree = float(np.mean(ok.all(axis=1) | ~ok.any(axis=1)))
    return {"rate": float(p), "seeds_agree": agree, "if_independent": float(p**k + (1 - p) ** k)}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if sys.argv[1:] == ["--figure"]:
        path = os.path.join(HERE, "rnn_multihead", "results.json")
        with open(path, encoding="utf-8") as fh:
            kept = json.load(fh)["multihead"]
        if not any("curves" in v for v in kept["eight_heads"].values()):
            sys.exit(f"{path} keeps no learning curves (written before they were kept): run the script to train them")
        _write_files(os.path.dirname(path), {"rnn_multihead.png": multihead_figure(kept)})
        sys.exit(0)
    out = claim(os.path.join(HERE, "rnn_multihead"), "reproduce", force=True)
    sizes = Sizes.full_sizes()
    screening, before, done = None, 0.0, None
    if sys.argv[1:] == ["--reuse-screening"]:
        with open(os.path.join(out, "results.json"), encoding="utf-8") as fh:
            old = json.load(fh)
        screening, before = old["multihead"]["screening"], old["screening_seconds"]
        done = old["multihead"]["eight_heads"]
    t0 = time.perf_counter()
    mh = _multihead(sizes, _Say(True, bar=True), screening=screening, done=done)
    reused = [k for k, v in mh["eight_heads"].items() if v.get("reused")]
    kept = f", and its models of {' and '.join(reused)}, which have the same heads" if reused else ""
    check, r71, r8b, apart = multihead_verdict(mh)
    ag = agreement(mh["screening"]["success"])
    elapsed = time.perf_counter() - t0
    text = _multihead_text(mh, check, r71, r8b, apart) + (
        f"\n**Is a head's fate its own?** Of the {mh['screening']['candidates']} candidates' single-head runs, "
        f"{ag['rate']:.0%} learned. A candidate's three data seeds all agree (all learn, or none) for "
        f"{ag['seeds_agree']:.0%} of the candidates, against {ag['if_independent']:.0%} if each run learned "
        f"independently at that rate.\n\n"
        + (
            f"*The screening took {before / 60:.0f} minutes (an earlier run of this script, whose screening this "
            f"one reused{kept}), the 8-head models trained here {elapsed / 60:.0f}, on {os.cpu_count()} cores.*\n"
            if screening
            else f"*{elapsed / 60:.0f} minutes on {os.cpu_count()} cores.*\n"
        )
    )
    doc = {
        "multihead": mh,
        "check": check,
        "seeds_agree": ag,
        "elapsed_seconds": elapsed,
        "screening_seconds": before if screening else None,
    }
    _write_files(out, {"rnn_multihead.png": multihead_figure(mh), "report.md": text.strip() + "\n"})
    _write_files(out, {"results.json": doc})
    print(text)
    print(json.dumps(check))
