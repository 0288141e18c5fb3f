"""attnsim's loss and hand-derived gradients against torch autograd of an independent
implementation (``_torch_models.py``), float64, on random configurations of every kind.

    pip install torch==2.13.0
    python benchmarks/crosscheck_torch.py            # every kind, 3 random configs each
    python benchmarks/crosscheck_torch.py --per-kind 10

Rung 1 (dot): every attention mode × both value modes × context ρ ∈ {0, 0.5, 1} (where the
context reaches keys or values) × 1–2 heads;
rung 0 (free): every attention mode × a table or a factored one × 1–3 heads;
rung 2 (rnn), against torch's own ``nn.LSTM``/``nn.GRU``: both cells × dot or uniform
attention × shared or separate embeddings × 1–2 heads;
rung 3 (clf), against torch's bidirectional ``nn.LSTM`` and its logistic loss: mlp or
uniform attention (each direction's gradients by name, ``_reverse`` the backward one). Each
configuration draws its sizes, parameters (N(0, 0.7²)) and a batch at random. A gradient
agrees when its largest difference from autograd's, relative to its largest entry (at
least 1e-6 absolute), is at most 1e-8; the loss, to 1e-10 relative. Exits 1 if any does not.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import attnsim as at  # noqa: E402
from attnsim import _arch  # noqa: E402

GRAD_RTOL = 1e-8
LOSS_RTOL = 1e-10


def kinds():
    for attention, values, rho, heads in itertools.product(
        ("both", "positional", "content", "uniform"), ("word", "word+position"), (0.0, 0.5, 1.0), (1, 2)
    ):
        if rho and not (attention in ("both", "content") or values == "word+position"):
            continue  # a context that reaches neither keys nor values changes nothing: DotConfig refuses it
        yield "dot", {"attention": attention, "values": values, "context": rho, "heads": heads}
    for attention, factored, heads in itertools.product(("positional", "content", "both", "uniform"), (0, 1), (1, 3)):
        yield "free", {"attention": attention, "d_model": "factored" if factored else None, "heads": heads}
    for cell, attention, shared, heads in itertools.product(("lstm", "gru"), ("dot", "uniform"), (True, False), (1, 2)):
        yield "rnn", {"cell": cell, "attention": attention, "shared_embedding": shared, "heads": heads}
    for attention, _ in itertools.product(("mlp", "uniform"), range(4)):  # four draws each: as many as rnn's kinds
        yield "clf", {"attention": attention}


def _torch_loss_and_grads(cfg, params, x, y):
    """The loss and autograd's gradients, by attnsim's parameter names."""
    import torch
    from _torch_models import Classifier, Seq2seq, clf_loss, loss, rnn_loss, tensors

    if cfg.model in ("rnn", "clf"):
        model = Seq2seq(cfg) if cfg.model == "rnn" else Classifier(cfg)
        model.load(params)
        value = (rnn_loss if cfg.model == "rnn" else clf_loss)(model, torch.from_numpy(x), torch.from_numpy(y))
        value.backward()
        return float(value.detach()), {k: g.numpy() for k, g in model.grads().items()}
    p = tensors(params)
    value = loss(cfg, p, torch.from_numpy(x), torch.from_numpy(y))
    value.backward()
    return float(value.detach()), {k: (t.grad.numpy() if t.grad is not None else None) for k, t in p.items()}


def check(model: str, kind: dict, rng: np.random.Generator) -> dict:
    oracle = _arch.get(model).reference
    cfg = oracle.random_config(rng, **kind)
    params = oracle.random_params(cfg, rng, scale=0.7)
    B = int(rng.integers(1, 6))
    x = rng.integers(0, cfg.vocab_in, size=(B, cfg.src_len))
    y = rng.integers(0, cfg.vocab_out, size=(B, cfg.tgt_len))
    ours, grads = at.loss_and_grad(cfg, params, x, y)
    want_loss, theirs = _torch_loss_and_grads(cfg, params, x, y)
    worst = 0.0
    for name, g in grads.items():
        want = theirs[name] if theirs[name] is not None else np.zeros_like(g)
        scale = max(float(np.abs(want).max()), 1e-6)
        worst = max(worst, float(np.abs(g - want).max()) / scale)
    loss_err = abs(ours - want_loss) / max(abs(want_loss), 1e-12)
    return {
        "model": model,
        "config": cfg.describe()
        + f", H {cfg.heads}, V {cfg.vocab_in}→{cfg.vocab_out}, L {cfg.src_len}, T {cfg.tgt_len}, B {B}",
        "params": len(grads),
        "loss_rel": loss_err,
        "grad_rel": worst,
        "ok": worst <= GRAD_RTOL and loss_err <= LOSS_RTOL,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-kind", type=int, default=3, help="random configurations per kind [3]")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("torch is not installed: pip install torch==2.13.0 (the CPU wheel)", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    rows = [check(model, kind, rng) for model, kind in kinds() for _ in range(args.per_kind)]
    width = max(len(r["config"]) for r in rows)
    print(f"{'configuration':{width}s}  {'loss rel':>9s}  {'grad rel':>9s}  ok")
    for r in rows:
        print(f"{r['config']:{width}s}  {r['loss_rel']:9.1e}  {r['grad_rel']:9.1e}  {'yes' if r['ok'] else 'NO'}")
    for model in ("clf", "rnn", "dot", "free"):
        mine = [r for r in rows if r["model"] == model]
        print(
            f"{model}: {sum(r['ok'] for r in mine)} of {len(mine)} configurations agree with torch {torch.__version__} "
            f"autograd; worst gradient {max(r['grad_rel'] for r in mine):.1e} (tolerance {GRAD_RTOL:g}), "
            f"worst loss {max(r['loss_rel'] for r in mine):.1e} (tolerance {LOSS_RTOL:g})"
        )
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
