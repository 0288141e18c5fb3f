"""The models of docs/design.md §1, §7.1, §7.7 and §7.9 written in PyTorch, straight from the
equations (rungs 2 and 3 from torch's own ``nn.LSTM``/``nn.GRU``, as the authors' code builds them),
for the cross-check (autograd's gradients against attnsim's hand-derived ones) and the
speed comparison (torch eager against attnsim on the same model and Adam loop).

This is a third implementation, independent of attnsim's kernels (effective tables, the
table pass, the chain rule) and of its NumPy oracle (hand-written backward): the forward
pass follows the equations with torch's own modules' operations, and the gradients are
autograd's. torch is optional (``pip install torch==2.13.0``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _neighbours(e: torch.Tensor) -> torch.Tensor:
    """e[:, l−1] + e[:, l+1] along the positions (missing neighbours are 0)."""
    zero = torch.zeros_like(e[:, :1])
    return torch.cat([zero, e[:, :-1]], dim=1) + torch.cat([e[:, 1:], zero], dim=1)


def dot_logits(cfg, p: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, T, Vout) and attention (H, B, T, L) of rung 1 (docs/design.md §7.1)."""
    rho = cfg.context
    heads_out, alphas = [], []
    B, L = x.shape
    for h in range(cfg.heads):
        e = F.embedding(x, p["E"][h])  # (B, L, d)
        ctx = 0.5 * rho * _neighbours(e) if rho else torch.zeros_like(e)
        state = e + ctx + (p["P"][h] if "P" in p else 0.0)  # h[b, l]
        if cfg.attention == "uniform":
            alpha = torch.full((B, cfg.tgt_len, L), 1.0 / L, dtype=e.dtype)
        else:
            if cfg.attention == "both":
                key_in = state
            elif cfg.attention == "positional":
                key_in = p["P"][h].expand_as(e)
            else:
                key_in = e + ctx
            query = p["R"][h] @ p["WQ"][h]  # (T, k)
            keys = key_in @ p["WK"][h]  # (B, L, k)
            scores = torch.matmul(query, keys.transpose(1, 2)) / math.sqrt(cfg.k)  # (B, T, L)
            alpha = torch.softmax(scores, dim=-1)
        values = (state if cfg.values == "word+position" else e) @ p["WV"][h]  # (B, L, d)
        heads_out.append(torch.matmul(alpha, values) @ p["WO"][h].T)  # (B, T, Vout)
        alphas.append(alpha)
    z = torch.stack(heads_out).mean(dim=0)
    if "b" in p:
        z = z + p["b"]
    return z, torch.stack(alphas)


def free_logits(cfg, p: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and attention of rung 0 (docs/design.md §1.1)."""
    B, L = x.shape
    U = p["U"] if "U" in p else torch.matmul(p["W"], p["E"])  # (H, Vout, Vin)
    heads_out, alphas = [], []
    for h in range(cfg.heads):
        s = torch.zeros((B, cfg.tgt_len, L), dtype=U.dtype)
        if "S" in p:
            s = s + p["S"][h]
        if "A" in p:
            s = s + p["A"][h][:, x].permute(1, 0, 2)  # A[t, x[b, l]]
        alpha = torch.softmax(s, dim=-1) if cfg.attention != "uniform" else torch.full_like(s, 1.0 / L)
        cols = F.embedding(x, U[h].T)  # (B, L, Vout): U[:, x[b, l]]
        heads_out.append(torch.matmul(alpha, cols))
        alphas.append(alpha)
    z = torch.stack(heads_out).mean(dim=0)
    if "b" in p:
        z = z + p["b"]
    return z, torch.stack(alphas)


class Seq2seq(torch.nn.Module):
    """Rung 2 (docs/design.md §7.7) as the authors build it: ``nn.Embedding``, the fused
    ``nn.LSTM``/``nn.GRU`` (PyTorch's own gate equations and order), one ``nn.Linear`` per
    head for queries and for projected contexts, ``tanh(after_decoder_hidden([h_dec; ctx]))``
    and ``hidden2vocab``. Time-major, as ``nn.LSTM`` expects by default."""

    def __init__(self, cfg, dtype=torch.float64):
        super().__init__()
        nn = torch.nn
        d, H = cfg.hidden, cfg.heads
        self.cfg = cfg
        cell = nn.LSTM if cfg.cell == "lstm" else nn.GRU
        if cfg.shared_embedding:
            self.embedding = nn.Embedding(cfg.vocab_in + 2, d)
        else:
            self.enc_embedding = nn.Embedding(cfg.vocab_in + 2, d)
            self.dec_embedding = nn.Embedding(cfg.vocab_out + 2, d)
        self.encoder, self.decoder = cell(d, d), cell(d, d)
        if cfg.attention == "dot":
            self.attn_lin = nn.ModuleList([nn.Linear(d, d) for _ in range(H)])
        self.project_enc = nn.ModuleList([nn.Linear(d, d) for _ in range(H)])
        self.after_decoder_hidden = nn.Linear(2 * d, d)
        self.hidden2vocab = nn.Linear(d, cfg.vocab_out + 2)
        self.to(dtype)

    def named(self) -> dict:
        """attnsim's parameter names → this module's tensors (heads stacked by `load`)."""
        out = {}
        for name, t in self.named_parameters():
            part, rest = name.split(".", 1)
            if part in ("encoder", "decoder"):
                out[f"{part}.{rest.removesuffix('_l0')}"] = t
            elif part not in ("attn_lin", "project_enc"):
                out[name] = t
        return out

    def load(self, params: dict) -> None:
        with torch.no_grad():
            for name, t in self.named().items():
                t.copy_(torch.as_tensor(params[name]))
            for part in ("attn_lin", "project_enc"):
                if f"{part}.weight" in params:
                    for h, lin in enumerate(getattr(self, part)):
                        lin.weight.copy_(torch.as_tensor(params[f"{part}.weight"][h]))
                        lin.bias.copy_(torch.as_tensor(params[f"{part}.bias"][h]))

    def grads(self) -> dict:
        out = {name: t.grad for name, t in self.named().items()}
        for part in ("attn_lin", "project_enc"):
            if hasattr(self, part):
                lins = getattr(self, part)
                out[f"{part}.weight"] = torch.stack([lin.weight.grad for lin in lins])
                out[f"{part}.bias"] = torch.stack([lin.bias.grad for lin in lins])
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, T+1, Vout+2) and attention (H, B, T+1, L+1), teacher-forced."""
        cfg = self.cfg
        B = x.shape[0]
        eos_in = torch.full((B, 1), cfg.vocab_in, dtype=x.dtype)
        sos = torch.full((B, 1), cfg.vocab_out + 1, dtype=y.dtype)
        src, dec_in = torch.cat([x, eos_in], 1).T, torch.cat([sos, y], 1).T  # time-major
        emb_e = self.embedding if cfg.shared_embedding else self.enc_embedding
        emb_d = self.embedding if cfg.shared_embedding else self.dec_embedding
        h_enc, last = self.encoder(emb_e(src))  # (L+1, B, d)
        h_dec, _ = self.decoder(emb_d(dec_in), last)  # (T+1, B, d)
        ctxs, alphas = [], []
        for h in range(cfg.heads):
            if cfg.attention == "dot":
                s = torch.einsum("tbf,sbf->bts", self.attn_lin[h](h_dec), h_enc)
            else:
                s = torch.zeros(B, h_dec.shape[0], h_enc.shape[0], dtype=h_enc.dtype)
            a = torch.softmax(s, dim=-1)
            ctxs.append(self.project_enc[h](torch.einsum("bts,sbf->tbf", a, h_enc)))
            alphas.append(a)
        ctx = torch.stack(ctxs).mean(0)
        out = torch.tanh(self.after_decoder_hidden(torch.cat([h_dec, ctx], -1)))
        return self.hidden2vocab(out).transpose(0, 1), torch.stack(alphas)


def rnn_loss(model: Seq2seq, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the B·(T+1) predictions (the targets, then EOS)."""
    z, _ = model(x, y)
    tgt = torch.cat([y, torch.full((y.shape[0], 1), model.cfg.vocab_out, dtype=y.dtype)], 1)
    return F.cross_entropy(z.reshape(-1, z.shape[-1]), tgt.reshape(-1))


class Classifier(torch.nn.Module):
    """Rung 3 (docs/design.md §7.9) as the authors build it: ``nn.Embedding``, a
    bidirectional ``nn.LSTM`` (batch-first), ``ReLU(hidden2attn_intermediate(h))`` then
    ``attn_intermediate2logit`` for the attention logits (zero for uniform attention),
    ``hidden2beta`` for β, the score ``Σ_l α β`` and torch's logistic loss on it."""

    def __init__(self, cfg, dtype=torch.float64):
        super().__init__()
        nn = torch.nn
        d = cfg.hidden
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_in, cfg.embed)
        self.encoder = nn.LSTM(cfg.embed, d, batch_first=True, bidirectional=True)
        if cfg.attention == "mlp":
            self.hidden2attn_intermediate = nn.Linear(2 * d, cfg.intermediate)
            self.attn_intermediate2logit = nn.Linear(cfg.intermediate, 1)
        self.hidden2beta = nn.Linear(2 * d, 1)
        self.to(dtype)

    def named(self) -> dict:
        """attnsim's parameter names → this module's tensors (the LSTM's without ``_l0``)."""
        return {name.replace("_l0", ""): t for name, t in self.named_parameters()}

    def load(self, params: dict) -> None:
        with torch.no_grad():
            for name, t in self.named().items():
                t.copy_(torch.as_tensor(params[name]))

    def grads(self) -> dict:
        return {name: t.grad for name, t in self.named().items()}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (B,) and attention (B, L)."""
        h, _ = self.encoder(self.embedding(x))  # (B, L, 2d): [forward; backward]
        if self.cfg.attention == "mlp":
            logit = self.attn_intermediate2logit(torch.relu(self.hidden2attn_intermediate(h))).squeeze(-1)
        else:
            logit = torch.zeros(h.shape[:2], dtype=h.dtype)
        alpha = torch.softmax(logit, dim=-1)
        beta = self.hidden2beta(h).squeeze(-1)
        return (alpha * beta).sum(-1), alpha


def clf_loss(model: Classifier, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean logistic loss of the score against the label (y: (B, 1) of 0 and 1)."""
    score, _ = model(x)
    return F.binary_cross_entropy_with_logits(score, y[:, 0].to(score.dtype))


LOGITS = {"dot": dot_logits, "free": free_logits}


def loss(cfg, p: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the B·T predictions."""
    z, _ = LOGITS[cfg.model](cfg, p, x)
    return F.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1))


def tensors(params: dict, dtype=torch.float64) -> dict:
    """attnsim's parameters as leaf tensors that require gradients."""
    return {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in params.items()}
