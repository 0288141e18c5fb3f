"""The headline of `attnsim reproduce rnn --full` alone: the permutation of 40 against 40 of
60 on the authors' LSTM seq2seq at the paper's width (d 256, Adam lr 1e-3, batch 128, 200
steps, float32, 20 seeds each), without the sweeps and the multi-head protocol that make
the full section take hours. Writes docs/rnn_d256/ (report.md, rnn_copy.png, results.json).

    python docs/rnn_d256.py          # about 45 minutes on 2 cores
"""

import dataclasses
import logging
import os

from attnsim._reproduce import Sizes, reproduce

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # a line per stage, and the bar's lines
    sizes = dataclasses.replace(Sizes.full_sizes(), rnn_vocabs=(40, 60), rnn_dims=(256,), rnn_candidates=0)
    reproduce(os.path.join(HERE, "rnn_d256"), "rnn", sizes=sizes, progress=True, force=True)
