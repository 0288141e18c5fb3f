"""Figures (PNG). Built on ``matplotlib.figure.Figure`` directly: no pyplot state, no
display needed."""

from __future__ import annotations

import io
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ._model import forward

DPI = 130


def save_figure(fig: Figure, path) -> None:
    """Write ``fig`` as PNG to ``path`` whole (temporary file, then rename)."""
    from ._train import _atomic_write

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    _atomic_write(os.fspath(path), buf.getvalue())


def learning_curves(history: dict, title: str = "", heads: int = 1) -> Figure:
    """Loss, token accuracy, attention accuracy and KTIW accuracy against step."""
    fig = Figure(figsize=(10, 6.4))
    axes = fig.subplots(2, 2, sharex=True)
    step = np.asarray(history["step"])
    panels = [
        ("loss", "loss (cross-entropy, nats)", axes[0, 0]),
        ("acc", "token accuracy", axes[0, 1]),
        ("attn_acc", "attention accuracy (argmax α = gold)", axes[1, 0]),
        ("ktiw_acc", "KTIW accuracy (argmax β = gold)", axes[1, 1]),
    ]
    for key, label, ax in panels:
        y = np.asarray(history[key], dtype=np.float64)
        if key == "attn_acc" and heads > 1:
            per = np.asarray(history["head_attn_acc"], dtype=np.float64)
            for h in range(per.shape[1]):
                ax.plot(step, per[:, h], color="0.75", lw=0.8, label="single heads" if h == 0 else None)
            ax.plot(step, y, color="C0", lw=1.8, label="best head")
            ax.legend(loc="lower right", fontsize=8)
        elif np.all(np.isnan(y)):
            ax.text(0.5, 0.5, "no gold alignment\nfor this task", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.plot(step, y, color="C0", lw=1.8)
        if key == "loss":
            if np.all(y[np.isfinite(y)] > 0):
                ax.set_yscale("log")
        else:
            ax.set_ylim(-0.03, 1.03)
            ax.axhline(0.95, color="C3", lw=0.8, ls="--")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("training step")
    axes[0, 1].text(
        0.99,
        0.02,
        "dashed: 0.95 success threshold",
        ha="right",
        va="bottom",
        transform=axes[0, 1].transAxes,
        fontsize=8,
        color="C3",
    )
    if title:
        fig.suptitle(title)
    return fig


def attention_map(cfg, params, x, gold=None, title: str = "") -> Figure:
    """The attention of each head on the batch ``x``: for sequence-to-sequence models the
    mean over the batch (target step × source position, gold positions marked); for
    classification (one target step) the attention of the first 16 inputs."""
    _, alpha = forward(cfg, params, x)
    H = min(cfg.heads, 8)
    cols = min(H, 4)
    rows = (H + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols + 1.2, 3.8 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    classification = cfg.tgt_len == 1
    im = None
    for h in range(H):
        ax = axes[h]
        if classification:
            a = alpha[h, :16, 0, :]
            im = ax.imshow(a, aspect="auto", cmap="viridis", vmin=0, vmax=max(float(a.max()), 1e-9))
            ax.set_xlabel("source position")
            ax.set_ylabel("example")
            if gold is not None:
                g = np.asarray(gold)[:16, 0]
                rows_g = np.flatnonzero(g >= 0)
                ax.scatter(g[rows_g], rows_g, marker="o", s=18, facecolors="none", edgecolors="r", label="gold")
        else:
            a = alpha[h].mean(axis=0)
            im = ax.imshow(a, aspect="auto", cmap="viridis", vmin=0, vmax=1)
            ax.set_xlabel("source position l")
            ax.set_ylabel("target step t")
            if gold is not None:
                g = np.asarray(gold)
                if g.size and np.all(g == g[:1]) and np.all(g[0] >= 0):
                    ax.scatter(
                        g[0],
                        np.arange(g.shape[1]),
                        marker="o",
                        s=10,
                        facecolors="none",
                        edgecolors="r",
                        label="gold position",
                    )
        if gold is not None and ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize=7)
        ax.set_title(f"head {h}" if cfg.heads > 1 else "attention α")
    for ax in axes[H:]:
        ax.set_visible(False)
    if im is not None:
        cb = fig.colorbar(im, ax=list(axes[:H]), shrink=0.85)
        cb.set_label("attention weight" + (" (mean over the batch)" if not classification else ""))
    if title:
        fig.suptitle(title)
    return fig
