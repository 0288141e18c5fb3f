"""Rung 2's configuration, ``RNNConfig``: the authors' recurrent seq2seq with one or more
attention heads (docs/design.md §7.7 names the parameters and their shapes). The kernels
never see a config: ``_kernels.layout`` unpacks it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from ..._arch import ArchConfig

CELLS = ("lstm", "gru")
ATTENTION_MODES = ("dot", "uniform")
GATES = {"lstm": 4, "gru": 3}

# Order of the parameter groups in theta and of their random streams (append only).
GROUP_ORDER = (
    "embedding.weight",
    "enc_embedding.weight",
    "dec_embedding.weight",
    "encoder.weight_ih",
    "encoder.weight_hh",
    "encoder.bias_ih",
    "encoder.bias_hh",
    "decoder.weight_ih",
    "decoder.weight_hh",
    "decoder.bias_ih",
    "decoder.bias_hh",
    "attn_lin.weight",
    "attn_lin.bias",
    "project_enc.weight",
    "project_enc.bias",
    "after_decoder_hidden.weight",
    "after_decoder_hidden.bias",
    "hidden2vocab.weight",
    "hidden2vocab.bias",
)
HEAD_PARAMS = ("attn_lin.weight", "attn_lin.bias", "project_enc.weight", "project_enc.bias")


@dataclass(frozen=True)
class RNNConfig(ArchConfig):
    """Shapes and options of rung 2, the authors' recurrent seq2seq (``rnn``,
    docs/design.md §7.7).

    Tokens ``0…V−1`` are words, ``EOS = V`` and ``SOS = V+1``: the encoder reads the
    source and EOS (``L+1`` states), the decoder reads SOS and the target (teacher
    forcing) and predicts the target and EOS (``T+1`` predictions over ``Vout+2``
    classes).

    Parameters
    ----------
    vocab_in, vocab_out, src_len, tgt_len : int
        The task's shapes ``Vin``, ``Vout``, ``L``, ``T``.
    cell : {"lstm", "gru"}
        The recurrent cell of encoder and decoder (PyTorch's equations and gate order).
    hidden : int
        Width ``d`` of embeddings and states.
    heads : int
        Attention heads ``H``; their projected contexts are averaged.
    shared_embedding : bool
        One embedding for encoder and decoder (the copy model; needs ``Vin == Vout``), or
        one each (the multi-head model).
    attention : {"dot", "uniform"}
        ``s[t, l] = attn_lin(h_dec[t]) · h_enc[l]``, or s ≡ 0 (α = 1/(L+1); ``attn_lin``
        is then not a parameter).
    dtype : {"float64", "float32"}
    """

    model: ClassVar[str] = "rnn"

    vocab_in: int
    vocab_out: int
    src_len: int
    tgt_len: int
    cell: str = field(default="lstm", metadata={"help": "recurrent cell [lstm]", "choices": CELLS})
    hidden: int = field(default=256, metadata={"help": "width d of embeddings and states [256]"})
    heads: int = field(default=1, metadata={"help": "number of heads (contexts averaged) [1]"})
    shared_embedding: bool = field(
        default=True, metadata={"help": "one embedding for encoder and decoder [true when the vocabularies match]"}
    )
    attention: str = field(
        default="dot", metadata={"help": "dot-product or uniform attention [dot]", "choices": ATTENTION_MODES}
    )
    dtype: str = field(default="float32", metadata={"help": "float64 or float32 [float32]"})

    def __post_init__(self):
        self._check_ints(("vocab_in", "vocab_out", "src_len", "tgt_len", "hidden", "heads"))
        self._check_choice("cell", CELLS)
        self._check_choice("attention", ATTENTION_MODES)
        self._check_bool("shared_embedding")
        self._check_dtype()
        if self.shared_embedding and self.vocab_in != self.vocab_out:
            raise ValueError(
                f"RNNConfig: a shared embedding needs one vocabulary, got vocab_in {self.vocab_in} and vocab_out "
                f"{self.vocab_out} (set shared_embedding to false: one embedding each)"
            )

    # ------------------------------------------------------------------ shapes
    @property
    def gates(self) -> int:
        return GATES[self.cell]

    @property
    def n_out(self) -> int:
        return self.vocab_out + 2

    @property
    def out_steps(self) -> int:
        return self.tgt_len + 1

    @property
    def in_positions(self) -> int:
        return self.src_len + 1

    @property
    def output_bias(self) -> str:
        return "hidden2vocab.bias"

    @property
    def head_params(self) -> tuple[str, ...]:
        return tuple(k for k in HEAD_PARAMS if k in self.param_shapes())

    @property
    def needs_targets(self) -> bool:
        return True

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """PyTorch's names and shapes (docs/design.md §7.7), heads stacked on a first axis."""
        H, d, G = self.heads, self.hidden, self.gates
        shapes = {}
        if self.shared_embedding:
            shapes["embedding.weight"] = (self.vocab_in + 2, d)
        else:
            shapes["enc_embedding.weight"] = (self.vocab_in + 2, d)
            shapes["dec_embedding.weight"] = (self.vocab_out + 2, d)
        for part in ("encoder", "decoder"):
            shapes[f"{part}.weight_ih"] = (G * d, d)
            shapes[f"{part}.weight_hh"] = (G * d, d)
            shapes[f"{part}.bias_ih"] = (G * d,)
            shapes[f"{part}.bias_hh"] = (G * d,)
        if self.attention == "dot":
            shapes["attn_lin.weight"] = (H, d, d)
            shapes["attn_lin.bias"] = (H, d)
        shapes["project_enc.weight"] = (H, d, d)
        shapes["project_enc.bias"] = (H, d)
        shapes["after_decoder_hidden.weight"] = (d, 2 * d)
        shapes["after_decoder_hidden.bias"] = (d,)
        shapes["hidden2vocab.weight"] = (self.n_out, d)
        shapes["hidden2vocab.bias"] = (self.n_out,)
        return shapes

    def default_init(self) -> dict:
        """PyTorch's defaults: ``nn.Embedding`` N(0, 1); ``nn.LSTM``/``nn.GRU`` U(−1/√d, 1/√d)
        for every weight and bias; ``nn.Linear`` U(−1/√fan_in, 1/√fan_in), fan-in ``2d`` for
        ``after_decoder_hidden`` and ``d`` elsewhere."""
        d = self.hidden
        laws = {}
        for name in self.param_shapes():
            if name.endswith("embedding.weight"):
                laws[name] = ("normal", 1.0)
            elif name.startswith("after_decoder_hidden"):
                laws[name] = ("uniform", 1.0 / math.sqrt(2 * d))
            else:
                laws[name] = ("uniform", 1.0 / math.sqrt(d))
        return laws

    def describe(self) -> str:
        parts = [self.cell.upper(), f"d {self.hidden}"]
        if self.heads > 1:
            parts.append(f"{self.heads} heads")
        if self.attention == "uniform":
            parts.append("uniform attention")
        if not self.shared_embedding:
            parts.append("separate embeddings")
        return f"rnn ({', '.join(parts)})"

    def params_from_state_dict(self, state_dict) -> dict:
        """``params`` from a state dict of the authors' PyTorch models (their key names,
        e.g. ``encoder_lstm.weight_ih_l0`` or ``attn_heads.3.attn_proj.weight``)."""
        from ._state_dict import params_from_state_dict

        return params_from_state_dict(self, state_dict)

    @classmethod
    def for_task(cls, task, **kw) -> RNNConfig:
        """The config whose shapes match ``task`` (a shared embedding when the task's two
        vocabularies are one, else one each)."""
        cls._check_for_task(kw, task)
        kw.setdefault("shared_embedding", task.vocab_in == task.vocab_out)
        return cls(vocab_in=task.vocab_in, vocab_out=task.vocab_out, src_len=task.src_len, tgt_len=task.tgt_len, **kw)
