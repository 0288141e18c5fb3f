"""Rung 0's configuration, ``ModelConfig`` (docs/design.md §1.1 names the parameters and
their shapes). The kernels never see a config: ``_kernels.layout`` unpacks it into the
int64 array they read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..._arch import ArchConfig

ATTENTION_MODES = ("positional", "content", "both", "uniform")

# Order in which parameter groups are laid out in theta and drawn by init_params.
# The index of a group in this tuple is part of its random stream (see init_params),
# so the tuple must only ever grow at the end.
GROUP_ORDER = ("U", "W", "E", "S", "A", "b")

# The default init (docs/design.md §3.2): every entry N(0, DEFAULT_SCALE²).
DEFAULT_SCALE = 0.01


@dataclass(frozen=True)
class ModelConfig(ArchConfig):
    """Shapes and options of rung 0, the attention model of docs/design.md §1 (``free``).

    Parameters
    ----------
    vocab_in, vocab_out : int
        Input and output vocabulary sizes ``Vin``, ``Vout``.
    src_len, tgt_len : int
        Source length ``L`` and target length ``T``.
    heads : int
        Number of heads ``H``; head outputs are averaged.
    attention : {"positional", "content", "both", "uniform"}
        Which attention logits are learned: ``S`` (position), ``A`` (word), both, or
        none (attention frozen at ``1/L``).
    d_model : int or None
        ``None`` for a free translation table ``U``; an int ``d`` for the factored
        ``U[h] = W[h] @ E[h]``.
    bias : bool
        Whether the output bias ``b`` is a parameter.
    dtype : {"float64", "float32"}
        Floating type of parameters, gradients and kernel arithmetic.
    """

    model: ClassVar[str] = "free"

    vocab_in: int
    vocab_out: int
    src_len: int
    tgt_len: int
    heads: int = field(default=1, metadata={"help": "number of heads (averaged) [1]"})
    attention: str = field(
        default="positional",
        metadata={"help": "attention logits to learn [the task's own]", "choices": ATTENTION_MODES},
    )
    d_model: int | None = field(default=None, metadata={"help": "factor U = W·E with this inner size [none]"})
    bias: bool = field(default=True, metadata={"help": "learn an output bias b [true]"})
    dtype: str = field(default="float64", metadata={"help": "float64 or float32 [float64]"})

    def __post_init__(self):
        self._check_ints(("vocab_in", "vocab_out", "src_len", "tgt_len", "heads"))
        self._check_choice("attention", ATTENTION_MODES)
        self._check_ints(("d_model",), allow_none=("d_model",))
        self._check_bool("bias")
        self._check_dtype()

    # ------------------------------------------------------------------ shapes
    @property
    def has_S(self) -> bool:
        return self.attention in ("positional", "both")

    @property
    def has_A(self) -> bool:
        return self.attention in ("content", "both")

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes of the parameters, in layout order (the table of docs/design.md §1.1)."""
        H, Vin, Vout, L, T = self.heads, self.vocab_in, self.vocab_out, self.src_len, self.tgt_len
        shapes: dict[str, tuple[int, ...]] = {}
        if self.d_model is None:
            shapes["U"] = (H, Vout, Vin)
        else:
            shapes["W"] = (H, Vout, self.d_model)
            shapes["E"] = (H, self.d_model, Vin)
        if self.has_S:
            shapes["S"] = (H, T, L)
        if self.has_A:
            shapes["A"] = (H, T, Vin)
        if self.bias:
            shapes["b"] = (Vout,)
        return shapes

    def default_init(self) -> dict:
        """Every group N(0, 0.01²) (docs/design.md §3.2)."""
        return {k: ("normal", DEFAULT_SCALE) for k in self.param_shapes()}

    @property
    def exact_tables(self) -> bool:
        return True

    def describe(self) -> str:
        table = "table U" if self.d_model is None else f"U = W·E (d {self.d_model})"
        return f"free ({table}, {self.attention} attention)"

    @classmethod
    def for_task(cls, task, heads: int = 1, attention: str | None = None, **kw) -> ModelConfig:
        """The config whose shapes match ``task`` (attention defaults to the task's own)."""
        cls._check_for_task(kw, task)
        return cls(
            vocab_in=task.vocab_in,
            vocab_out=task.vocab_out,
            src_len=task.src_len,
            tgt_len=task.tgt_len,
            heads=heads,
            attention=attention or task.default_attention,
            **kw,
        )
