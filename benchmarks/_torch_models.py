"""The models of docs/design.md §1 and §7.1 written in PyTorch, straight from the equations,
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


LOGITS = {"dot": dot_logits, "free": free_logits}


def loss(cfg, p: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the B·T predictions."""
    z, _ = LOGITS[cfg.model](cfg, p, x)
    return F.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1))


def tensors(params: dict, dtype=torch.float64) -> dict:
    """attnsim's parameters as leaf tensors that require gradients."""
    return {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in params.items()}
