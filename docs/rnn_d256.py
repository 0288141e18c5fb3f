"""The copy half of `attnsim reproduce rnn --full`: the permutation of 40 against 40 of 60 on
the authors' LSTM seq2seq at the paper's width (d 256, Adam lr 1e-3, batch 128, 200 steps,
float32, 20 seeds each), then success against the vocabulary (V = 40, 41, 42, 44, 48, 60 at
length 40, d 256) and the width (d = 32, 64, 128, 256), 10 seeds each; without the
multi-head protocol (docs/rnn_multihead.py). Writes docs/rnn_d256/ (report.md, rnn_copy.png,
rnn_sweeps.png, results.json).

    python docs/rnn_d256.py          # about an hour on 2 cores
    python docs/rnn_d256.py --text   # the text again from results.json, without training
    python docs/rnn_d256.py --figures  # the figures again from results.json (its kept curves)
"""

import dataclasses
import json
import logging
import os
import sys

from attnsim._reproduce import Sizes, _report, _write_files, reproduce
from attnsim._reproduce_rnn import section_figures, section_text

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "rnn_d256")

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # a line per stage, and the bar's lines
    sizes = dataclasses.replace(Sizes.full_sizes(), rnn_candidates=0)
    if sys.argv[1:] in (["--text"], ["--figures"]):
        with open(os.path.join(OUT, "results.json"), encoding="utf-8") as fh:
            doc = json.load(fh)
        sec = doc["sections"]["rnn"]
        if sys.argv[1] == "--figures":
            if "curves" not in sec["results"]["copy"]:
                sys.exit(f"{OUT}/results.json keeps no learning curves (written before they were kept): run the "
                         "script to train them")  # fmt: skip
            _write_files(OUT, section_figures(sec["results"]))
        else:
            _write_files(OUT, {"rnn.md": section_text(sizes.full, sec["results"], sec["checks"]).strip() + "\n"})
            _write_files(OUT, {"report.md": _report(doc, OUT)})
    else:
        reproduce(OUT, "rnn", sizes=sizes, progress=True, force=True)
