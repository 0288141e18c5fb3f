"""Rung 3's configuration, ``ClassifierConfig``: the authors' attention classifier
(docs/design.md §7.9 names the parameters and their shapes). The kernels never see a
config: ``_kernels.layout`` unpacks it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from ..._arch import ArchConfig

ATTENTION_MODES = ("mlp", "uniform")

# Order of the parameter groups in theta and of their random streams (append only).
GROUP_ORDER = (
    "embedding.weight",
    "encoder.weight_ih",
    "encoder.weight_hh",
    "encoder.bias_ih",
    "encoder.bias_hh",
    "encoder.weight_ih_reverse",
    "encoder.weight_hh_reverse",
    "encoder.bias_ih_reverse",
    "encoder.bias_hh_reverse",
    "hidden2attn_intermediate.weight",
    "hidden2attn_intermediate.bias",
    "attn_intermediate2logit.weight",
    "attn_intermediate2logit.bias",
    "hidden2beta.weight",
    "hidden2beta.bias",
)


@dataclass(frozen=True)
class ClassifierConfig(ArchConfig):
    """Shapes and options of rung 3, the authors' attention classifier (``clf``,
    docs/design.md §7.9).

    A bidirectional one-layer LSTM reads the L words; at each position its two states
    ``h[l]`` (2d) give an attention logit through a one-hidden-layer ReLU network and a
    scalar ``β[l]`` (what position l alone would say: the classifier's KTIW probe); the
    score is ``s = Σ_l α[l] β[l]`` and the loss is logistic on the label. As every model
    here its output is a pair of logits per sequence, ``(0, s)``, over the two classes.

    Parameters
    ----------
    vocab_in, src_len : int
        The task's vocabulary ``V`` and length ``L``.
    vocab_out, tgt_len : int
        Must be 2 and 1: one label of two classes per sequence (the ``keyword`` task, or
        the user's own labelled text).
    embed : int
        Width ``e`` of the word embeddings.
    hidden : int
        Width ``d`` of each direction's LSTM state (a position's state is 2d wide).
    intermediate : int
        Width of the attention network's hidden layer.
    attention : {"mlp", "uniform"}
        The learned logits, or α = 1/L (the attention network is then not a parameter:
        the uniform model of the paper, whose β is β^uf).
    dtype : {"float64", "float32"}
    """

    model: ClassVar[str] = "clf"
    cell: ClassVar[str] = "lstm"  # the authors' encoder (the oracle's cell reads it)
    heads: ClassVar[int] = 1

    vocab_in: int
    vocab_out: int
    src_len: int
    tgt_len: int
    embed: int = field(default=32, metadata={"help": "width e of the word embeddings [32]"})
    hidden: int = field(default=32, metadata={"help": "width d of each direction's LSTM state [32]"})
    intermediate: int = field(default=32, metadata={"help": "width of the attention network's hidden layer [32]"})
    attention: str = field(
        default="mlp", metadata={"help": "learned (mlp) or uniform attention [mlp]", "choices": ATTENTION_MODES}
    )
    dtype: str = field(default="float32", metadata={"help": "float64 or float32 [float32]"})

    def __post_init__(self):
        self._check_ints(("vocab_in", "vocab_out", "src_len", "tgt_len", "embed", "hidden", "intermediate"))
        self._check_choice("attention", ATTENTION_MODES)
        self._check_dtype()
        if self.vocab_out != 2 or self.tgt_len != 1:
            raise ValueError(
                f"ClassifierConfig: the classifier predicts one label of two classes (vocab_out 2, tgt_len 1), "
                f"got vocab_out {self.vocab_out} and tgt_len {self.tgt_len} (a task such as keyword)"
            )

    # ------------------------------------------------------------------ shapes
    @property
    def output_bias(self):
        """None: the two logits are (0, s); no bias of the output sums over classes."""
        return None

    @property
    def head_params(self) -> tuple[str, ...]:
        return ()

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """PyTorch's names and shapes (docs/design.md §7.9); ``_reverse``: the backward direction."""
        V, e, d, m = self.vocab_in, self.embed, self.hidden, self.intermediate
        shapes = {"embedding.weight": (V, e)}
        for sfx in ("", "_reverse"):
            shapes[f"encoder.weight_ih{sfx}"] = (4 * d, e)
            shapes[f"encoder.weight_hh{sfx}"] = (4 * d, d)
            shapes[f"encoder.bias_ih{sfx}"] = (4 * d,)
            shapes[f"encoder.bias_hh{sfx}"] = (4 * d,)
        if self.attention == "mlp":
            shapes["hidden2attn_intermediate.weight"] = (m, 2 * d)
            shapes["hidden2attn_intermediate.bias"] = (m,)
            shapes["attn_intermediate2logit.weight"] = (1, m)
            shapes["attn_intermediate2logit.bias"] = (1,)
        shapes["hidden2beta.weight"] = (1, 2 * d)
        shapes["hidden2beta.bias"] = (1,)
        return shapes

    def default_init(self) -> dict:
        """PyTorch's defaults: ``nn.Embedding`` N(0, 1); ``nn.LSTM`` U(−1/√d, 1/√d) for every
        weight and bias; ``nn.Linear`` U(−1/√fan_in, 1/√fan_in), fan-in 2d for the layers
        that read a state and ``intermediate`` for the attention logit."""
        laws = {}
        for name in self.param_shapes():
            if name == "embedding.weight":
                laws[name] = ("normal", 1.0)
            elif name.startswith("encoder."):
                laws[name] = ("uniform", 1.0 / math.sqrt(self.hidden))
            elif name.startswith("attn_intermediate2logit"):
                laws[name] = ("uniform", 1.0 / math.sqrt(self.intermediate))
            else:
                laws[name] = ("uniform", 1.0 / math.sqrt(2 * self.hidden))
        return laws

    def describe(self) -> str:
        parts = [f"e {self.embed}", f"d {self.hidden}", f"intermediate {self.intermediate}"]
        if self.attention == "uniform":
            parts.append("uniform attention")
        return f"clf ({', '.join(parts)})"

    def params_from_state_dict(self, state_dict) -> dict:
        """``params`` from a state dict of the authors' classifier (their key names, e.g.
        ``encoder.weight_ih_l0_reverse``)."""
        from ._state_dict import params_from_state_dict

        return params_from_state_dict(self, state_dict)

    @classmethod
    def for_task(cls, task, **kw) -> ClassifierConfig:
        """The config whose shapes match ``task`` (one label of two classes per sequence)."""
        cls._check_for_task(kw, task)
        return cls(vocab_in=task.vocab_in, vocab_out=task.vocab_out, src_len=task.src_len, tgt_len=task.tgt_len, **kw)
