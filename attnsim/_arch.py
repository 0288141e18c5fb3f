"""Architectures: what one engine needs to know about a model, and the registry of them.

An architecture is a package ``attnsim/arch/<name>/`` that registers one `Architecture`
record: its config class, its kernels (a named step kernel per architecture, see
`attnsim._kernels`), its plain-NumPy oracle and its probes. The engine — parameters and
inits (`_model`), training and runs (`_train`), sweeps, compare, the command line — reads
only this record, so adding an architecture touches none of those files: register it in
``attnsim/arch/__init__.py`` (the ladder, in order) and the tests of
``tests/test_architectures.py`` take it up.

Configs share `ArchConfig`: a frozen dataclass whose fields are the architecture's
options (with ``metadata={"help": ...}`` for the command line and sweeps) besides the four
shapes every task fixes (``vocab_in``, ``vocab_out``, ``src_len``, ``tgt_len``), plus
``heads`` and ``dtype``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import ClassVar

import numpy as np

SHAPES = ("vocab_in", "vocab_out", "src_len", "tgt_len")
DTYPES = ("float64", "float32")


class ArchConfig:
    """What every architecture's config has (its subclasses are frozen dataclasses).

    Subclasses set ``model`` (the architecture's name) and implement ``param_shapes()``
    (names and shapes in layout order), ``default_init()`` and ``for_task``.
    """

    model: ClassVar[str] = ""

    # ------------------------------------------------------------- validation
    def _check_ints(self, names, allow_none=()):
        for name in names:
            value = getattr(self, name)
            if value is None and name in allow_none:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                extra = "None or " if name in allow_none else ""
                raise ValueError(f"{type(self).__name__}: {name} must be {extra}a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))

    def _check_choice(self, name, choices):
        if getattr(self, name) not in choices:
            raise ValueError(
                f"{type(self).__name__}: {name} must be one of {', '.join(map(str, choices))}, "
                f"got {getattr(self, name)!r}"
            )

    def _check_bool(self, name):
        value = getattr(self, name)
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{type(self).__name__}: {name} must be True or False, got {value!r}")
        object.__setattr__(self, name, bool(value))

    def _check_dtype(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"{type(self).__name__}: dtype must be 'float64' or 'float32', got {self.dtype!r}")

    # ------------------------------------------------------------- shapes
    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    @property
    def n_params(self) -> int:
        """Number of parameters (an exact integer, however large the shapes)."""
        return sum(math.prod(s) for s in self.param_shapes().values())

    @property
    def head_params(self) -> tuple[str, ...]:
        """The parameters with a leading head axis (each head its own slice)."""
        return tuple(k for k in self.param_shapes() if k != "b")

    def describe(self) -> str:
        """'dot (d 32, positional attention)': the architecture and its options, briefly."""
        return self.model

    @property
    def n_out(self) -> int:
        """Classes each prediction is over (the task's output words, and any the model adds)."""
        return self.vocab_out

    @property
    def out_steps(self) -> int:
        """Predictions per sequence (``tgt_len``, and any the model adds)."""
        return self.tgt_len

    @property
    def in_positions(self) -> int:
        """Source states attention ranges over (``src_len``, and any the model adds)."""
        return self.src_len

    @property
    def output_bias(self) -> str:
        """The name of the output layer's bias (its gradient sums to zero)."""
        return "b"

    @property
    def needs_targets(self) -> bool:
        """Whether the forward pass reads the targets (a decoder fed the previous target word)."""
        return False

    def out_shape(self, batch: int) -> tuple[int, int, int]:
        """Shape of the logits of ``batch`` sequences."""
        return (batch, self.out_steps, self.n_out)

    def alpha_shape(self, batch: int) -> tuple[int, int, int, int]:
        """Shape of the attention on ``batch`` sequences."""
        return (self.heads, batch, self.out_steps, self.in_positions)

    @property
    def exact_tables(self) -> bool:
        """Whether the model equals rung 0 at its effective tables (docs/design.md §7.1):
        then every position votes with its word's column of ``U`` alone."""
        return False

    # ------------------------------------------------------------- files
    @classmethod
    def options(cls) -> list[dataclasses.Field]:
        """The config's fields besides the task's shapes, in order (what a user chooses)."""
        return [f for f in dataclasses.fields(cls) if f.name not in SHAPES]

    @classmethod
    def _check_for_task(cls, options, task) -> None:
        """ValueError when ``task`` (`for_task`'s) is not a task, or naming the model's options
        when ``options`` holds one it does not have."""
        from .tasks import Task

        if not isinstance(task, Task):
            raise ValueError(
                f"{cls.__name__}.for_task takes a task (attnsim.tasks.copy(...), keyword(...), ...), got "
                f"{type(task).__name__} {task!r}"
            )
        known = [f.name for f in cls.options()]
        unknown = [k for k in options if k not in known]
        if unknown:
            raise ValueError(
                f"{', '.join(map(repr, unknown))} {'is not an option' if len(unknown) == 1 else 'are not options'} "
                f"of the model {cls.model!r} (its options: {', '.join(known)})"
            )

    def to_dict(self) -> dict:
        """The fields, and the architecture's name under ``model``."""
        return {"model": self.model, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: Mapping) -> ArchConfig:
        d = dict(d)
        name = d.pop("model", cls.model)
        if name != cls.model:
            raise ValueError(f"{cls.__name__}: this is a config of the model {name!r}, not {cls.model!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**d)


@dataclass(frozen=True)
class Architecture:
    """One rung of the ladder, as the engine sees it.

    Attributes
    ----------
    name : the name users give (``--model``, ``[model] name``, ``Run.cfg.model``)
    rung : its place on the ladder (0: the paper's approximation)
    title : one line: what it is
    config : its `ArchConfig` subclass
    kernels : module with ``layout(cfg)``, ``workspace_bytes(lay, B, itemsize)`` and the
        compiled ``loss_grad(x, y, theta, lay, grad)``, ``forward(x, y, theta, lay, z, alpha)``
        (``y``: the targets, which only a teacher-forced decoder reads)
        and ``train_runs(...)`` (the signature of `attnsim._kernels` conventions)
    reference : module with the plain-NumPy oracle ``forward``, ``loss``,
        ``loss_and_grad``, ``batch_metrics``, ``REGISTRY`` (public kernel → check) and the
        test makers ``random_config(rng, **fixed)``, ``random_params(cfg, rng, scale)``
    group_order : the parameter groups in the order of their random streams (append only)
    value_columns : ``(cfg, params, x) -> (H, B, L, Vout)``: the logits each head adds
        when it attends to position l alone (the KTIW probe and the saliency read it);
        None where what a position adds depends on the target step too (rung 2)
    effective_tables : ``(cfg, params) -> dict`` of rung 0's tables ``U`` (H, Vout, Vin),
        ``S``, ``A`` (when the model has them) and ``b``, through which the theory of §4
        applies; None where no such tables exist
    zero_output : the parameters that, at zero, make every logit zero (the output layer)
    compare_defaults : ``optimizer``, ``lr``, ``batch``, ``scale`` of `attnsim.compare`
        when not given (the setting in which its theory is best compared), and optionally
        ``tau``, the span of τ it trains over (else rung 0's predicted time to attend sets it)
    ktiw_probe : ``(cfg, params, x, y) -> β`` of shape (B, out_steps, in_positions), for a
        model whose probe is not read off ``value_columns`` (None: it is)
    theory_beside : ``(cfg, task, scale, threshold) -> dict`` with a ``note``, and
        optionally ``reduced_time_to_attend`` and ``curve`` ((label, τ -> curve)): what
        ``attnsim theory`` adds of this model's own beside rung 0's theory (None: nothing)
    """

    name: str
    rung: int
    title: str
    config: type
    kernels: ModuleType
    reference: ModuleType
    group_order: tuple[str, ...]
    value_columns: Callable
    effective_tables: Callable | None
    zero_output: tuple[str, ...]
    compare_defaults: dict
    ktiw_probe: Callable | None = None
    theory_beside: Callable | None = None


REGISTRY: dict[str, Architecture] = {}


def register(arch: Architecture) -> Architecture:
    if arch.name in REGISTRY:
        raise ValueError(f"an architecture named {arch.name!r} is already registered")
    if any(a.rung == arch.rung for a in REGISTRY.values()):
        raise ValueError(f"rung {arch.rung} is taken by {[a.name for a in REGISTRY.values() if a.rung == arch.rung]}")
    if arch.config.model != arch.name:
        raise ValueError(f"{arch.config.__name__}.model is {arch.config.model!r}, not {arch.name!r}")
    REGISTRY[arch.name] = arch
    return arch


# The ladder registers itself when the package is imported (``attnsim/__init__`` imports
# ``attnsim.arch``, whose packages call `register`), which importing this module implies.


def names() -> list[str]:
    """The registered architectures, in ladder order (by rung)."""
    return sorted(REGISTRY, key=lambda n: REGISTRY[n].rung)


def get(name: str) -> Architecture:
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; the models are {', '.join(names())}")
    return REGISTRY[name]


def of(cfg) -> Architecture:
    """The architecture of a config, or ValueError for anything that is not one."""
    arch = REGISTRY.get(getattr(type(cfg), "model", None))
    if arch is None or not isinstance(cfg, arch.config):
        kinds = ", ".join(a.config.__name__ for a in REGISTRY.values())
        raise ValueError(f"cfg must be an attnsim model config ({kinds}), got {type(cfg).__name__}")
    return arch


def config_for_task(name: str, task, **options):
    """``name``'s config for ``task`` with ``options`` (its config's fields besides the task's
    shapes); an option the model does not have is a ValueError naming the ones it has."""
    return get(name).config.for_task(task, **options)


def config_from_dict(d: Mapping):
    """A config from its ``to_dict()`` (``model`` names the architecture; none: rung 0,
    as files written before the ladder)."""
    if not isinstance(d, Mapping):
        raise ValueError(f"a model config is a dict, got {type(d).__name__}")
    return get(d.get("model", "free")).config.from_dict(d)
