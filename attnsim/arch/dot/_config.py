"""Rung 1's configuration, ``DotConfig`` (docs/design.md §7.1 names the parameters and
their shapes). The kernels never see a config: ``_kernels.layout`` unpacks it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from ..._arch import ArchConfig

ATTENTION_MODES = ("both", "positional", "content", "uniform")
VALUE_MODES = ("word", "word+position")

# Order in which parameter groups are laid out in theta and drawn by init_params; the
# index of a group is part of its random stream, so the tuple only ever grows at the end.
GROUP_ORDER = ("E", "P", "R", "WQ", "WK", "WV", "WO", "b")


@dataclass(frozen=True)
class DotConfig(ArchConfig):
    """Shapes and options of rung 1, a dot-product attention head over learned embeddings
    (``dot``, docs/design.md §7).

    Parameters
    ----------
    vocab_in, vocab_out, src_len, tgt_len : int
        The task's shapes ``Vin``, ``Vout``, ``L``, ``T``.
    heads : int
        Number of heads ``H``, averaged; each has its own embeddings and maps.
    dim : int
        Width ``d`` of the embeddings ``E``, ``P``, ``R`` and of the values.
    key_dim : int or None
        Width ``k`` of queries and keys (None: ``dim``).
    attention : {"both", "positional", "content", "uniform"}
        What the keys see: the source state ``h = e + P + context`` ("both"), the position
        embedding alone ("positional"), the word and its context ("content"), or nothing
        (attention frozen at ``1/L``; ``R``, ``WQ``, ``WK`` are then not parameters).
    values : {"word", "word+position"}
        What the values see: the word embedding alone, or the whole source state ``h``.
    context : float
        ρ ≥ 0: a source state also carries ρ/2 of each neighbour's word embedding. ρ = 0
        keeps the paper's assumption that a position carries only its own word.
    bias : bool
        Whether the output bias ``b`` is a parameter.
    dtype : {"float64", "float32"}
    """

    model: ClassVar[str] = "dot"

    vocab_in: int
    vocab_out: int
    src_len: int
    tgt_len: int
    heads: int = field(default=1, metadata={"help": "number of heads (averaged) [1]"})
    dim: int = field(default=32, metadata={"help": "embedding width d [32]"})
    key_dim: int | None = field(default=None, metadata={"help": "query and key width k [= dim]"})
    attention: str = field(
        default="both",
        metadata={"help": "what the keys see [the task's own; DotConfig's default: both]", "choices": ATTENTION_MODES},
    )
    values: str = field(default="word", metadata={"help": "what the values see [word]", "choices": VALUE_MODES})
    context: float = field(default=0.0, metadata={"help": "ρ: the share of each neighbour's word in a state [0]"})
    bias: bool = field(default=True, metadata={"help": "learn an output bias b [true]"})
    dtype: str = field(default="float64", metadata={"help": "float64 or float32 [float64]"})

    def __post_init__(self):
        self._check_ints(("vocab_in", "vocab_out", "src_len", "tgt_len", "heads", "dim"))
        self._check_ints(("key_dim",), allow_none=("key_dim",))
        self._check_choice("attention", ATTENTION_MODES)
        self._check_choice("values", VALUE_MODES)
        rho = self.context
        if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not math.isfinite(rho) or rho < 0:
            raise ValueError(f"DotConfig: context must be a finite number >= 0, got {rho!r}")
        object.__setattr__(self, "context", float(rho))
        self._check_bool("bias")
        self._check_dtype()
        # options that would change nothing are refused, not ignored
        if self.context and not (self.has_A or self.position_values):
            raise ValueError(
                f"DotConfig: context {self.context:g} changes nothing with {self.attention} attention and word "
                "values (context reaches keys that see words, attention 'both' or 'content', and values "
                "'word+position')"
            )
        if self.key_dim is not None and not self.has_query:
            raise ValueError("DotConfig: key_dim changes nothing with uniform attention (there are no queries or keys)")

    # ------------------------------------------------------------------ shapes
    @property
    def k(self) -> int:
        """The query and key width."""
        return self.dim if self.key_dim is None else self.key_dim

    @property
    def has_S(self) -> bool:
        """Keys see the position: an effective positional table S."""
        return self.attention in ("positional", "both")

    @property
    def has_A(self) -> bool:
        """Keys see the word: an effective content table A."""
        return self.attention in ("content", "both")

    @property
    def has_query(self) -> bool:
        return self.attention != "uniform"

    @property
    def position_values(self) -> bool:
        return self.values == "word+position"

    @property
    def has_P(self) -> bool:
        return self.has_S or self.position_values

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes of the parameters, in layout order (the table of docs/design.md
        §7.1); parameters the model does not use are absent (``P`` without positional keys
        or values, ``R``, ``WQ``, ``WK`` with uniform attention)."""
        H, Vin, Vout, L, T, d, k = (
            self.heads, self.vocab_in, self.vocab_out, self.src_len, self.tgt_len, self.dim, self.k
        )  # fmt: skip
        shapes = {"E": (H, Vin, d)}
        if self.has_P:
            shapes["P"] = (H, L, d)
        if self.has_query:
            shapes["R"] = (H, T, d)
            shapes["WQ"] = (H, d, k)
            shapes["WK"] = (H, d, k)
        shapes["WV"] = (H, d, d)
        shapes["WO"] = (H, Vout, d)
        if self.bias:
            shapes["b"] = (Vout,)
        return shapes

    def default_init(self) -> dict:
        """PyTorch's defaults for the same modules (docs/design.md §7.3): embeddings
        (``nn.Embedding``) N(0, 1); the maps and the output bias (``nn.Linear``, fan-in d)
        U(−1/√d, 1/√d)."""
        bound = 1.0 / math.sqrt(self.dim)
        return {
            name: ("normal", 1.0) if name in ("E", "P", "R") else ("uniform", bound) for name in self.param_shapes()
        }

    @property
    def exact_tables(self) -> bool:
        return self.context == 0.0 and self.values == "word"

    def describe(self) -> str:
        parts = [f"d {self.dim}"] + ([f"k {self.k}"] if self.key_dim is not None else [])
        parts += [f"{self.attention} attention", f"{self.values} values"]
        if self.context:
            parts.append(f"context {self.context:g}")
        return f"dot ({', '.join(parts)})"

    @classmethod
    def for_task(cls, task, heads: int = 1, attention: str | None = None, **kw) -> DotConfig:
        """The config whose shapes match ``task`` (attention defaults to the task's own:
        positional for sequence tasks, content for classification)."""
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
