"""Public model functions for every architecture: validate and cast, then call the kernels.

``init_params``, ``loss_and_grad`` and ``forward`` take a config of any registered
architecture (`_arch`) and a parameter dict with the names and shapes of its
``param_shapes()`` (docs/design.md §1.1 for rung 0, §7 for rung 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from . import _arch
from ._blas import one_blas_thread
from ._memory import describe, require

# Spawn keys of the two independent random streams of a seed (see `seed_sequence`).
STREAM_INIT, STREAM_DATA = 0, 1


def seed_sequence(seed: int, *key: int) -> np.random.SeedSequence:
    """The random stream ``key`` of ``seed``: init and data never share draws."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key))


def _check_cfg(cfg):
    _arch.of(cfg)  # a ValueError for anything that is not a registered architecture's config
    return cfg


def init_params(cfg, seed: int = 0, scale: float | Mapping[str, float] | None = None) -> dict:
    """Initial parameters (docs/design.md §3.2).

    ``scale=None`` draws the architecture's default init (``cfg.default_init()``; rung 0:
    N(0, 0.01²) everywhere; rung 1: PyTorch's defaults, §7.3). Otherwise every entry is
    drawn from N(0, scale²), with ``scale`` a float for every group or a mapping
    ``{group: scale}`` (groups not named start at zero). ``scale=0`` is the exact zero
    init, the symmetric point where the theory is exact.

    Every group, and every head within a group, draws from its own stream of ``seed``,
    so head ``h`` of an ``H``-head init equals head ``h`` of any other init with the same
    seed and more heads, and changing one group's scale leaves the others unchanged.
    """
    arch = _arch.of(cfg)
    shapes = cfg.param_shapes()
    if scale is None:
        laws = cfg.default_init()
    elif isinstance(scale, Mapping):
        unknown = set(scale) - set(shapes)
        if unknown:
            raise ValueError(
                f"init_params: scale names unknown parameter(s) {', '.join(sorted(unknown))}; "
                f"this config has {', '.join(shapes)}"
            )
        laws = {k: ("normal", scale.get(k, 0.0)) for k in shapes}
    else:
        laws = {k: ("normal", scale) for k in shapes}
    scales = {k: s for k, (_, s) in laws.items()}
    for k, s in scales.items():
        if (
            isinstance(s, bool)
            or not isinstance(s, (int, float, np.floating, np.integer))
            or not np.isfinite(s)
            or s < 0
        ):
            raise ValueError(f"init_params: scale for {k} must be a finite number >= 0, got {s!r}")
    seed_sequence(seed)  # validates
    heads = cfg.head_params
    largest = max((math.prod(sh[1:]) if name in heads else math.prod(sh) for name, sh in shapes.items()), default=0)
    require(cfg.n_params * cfg.np_dtype.itemsize + 8 * largest, f"initialising {describe(cfg)}")
    params = {}
    for name, shape in shapes.items():
        law, s = laws[name][0], float(scales[name])
        group = arch.group_order.index(name)
        value = np.zeros(shape, dtype=cfg.np_dtype)
        if s > 0:
            with np.errstate(over="ignore"):  # an overflow is refused below
                if name not in heads:
                    rng = np.random.default_rng(seed_sequence(seed, STREAM_INIT, group))
                    value[:] = _draw(rng, law, s, shape)
                else:
                    for h in range(shape[0]):
                        rng = np.random.default_rng(seed_sequence(seed, STREAM_INIT, group, h))
                        value[h] = _draw(rng, law, s, shape[1:])
        if s > 0 and not np.all(np.isfinite(value)):
            raise ValueError(f"init_params: scale {s:g} for {name} overflows {cfg.dtype}; use a smaller scale")
        params[name] = value
    return params


def _draw(rng, law: str, s: float, shape):
    """N(0, s²) ("normal") or U(−s, s) ("uniform") entries of ``shape``."""
    if law == "uniform":
        return rng.uniform(-s, s, shape)
    return s * rng.standard_normal(shape)


def check_params(cfg, params: Mapping) -> dict:
    """Return ``params`` as C-contiguous arrays of the config's dtype, or raise."""
    cfg = _check_cfg(cfg)
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a dict of arrays, got {type(params).__name__}")
    shapes = cfg.param_shapes()
    missing = [k for k in shapes if k not in params]
    extra = [k for k in params if k not in shapes]
    if missing or extra:
        raise ValueError(
            f"params do not match the config: expected keys {', '.join(shapes)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unexpected {', '.join(map(str, extra))}" if extra else "")
        )
    out = {}
    for k, shape in shapes.items():
        arr = np.asarray(params[k])
        if arr.shape != shape:
            raise ValueError(f"params[{k!r}] has shape {arr.shape}, expected {shape}")
        if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"params[{k!r}] must be numeric, got dtype {arr.dtype}")
        out[k] = np.ascontiguousarray(arr, dtype=cfg.np_dtype)
        if not np.all(np.isfinite(out[k])):
            bad = int(np.size(out[k]) - np.count_nonzero(np.isfinite(out[k])))
            raise ValueError(f"params[{k!r}] holds {bad} non-finite value{'s' if bad > 1 else ''} (NaN or ±inf)")
    return out


def pack(cfg, params: Mapping) -> np.ndarray:
    """Parameters → the flat vector ``theta`` the kernels read (layout order)."""
    params = check_params(cfg, params)
    if not params:
        return np.zeros(0, cfg.np_dtype)
    return np.concatenate([params[k].ravel() for k in cfg.param_shapes()])


def unpack(cfg, theta: np.ndarray) -> dict:
    """The flat vector ``theta`` → a dict of (copied) arrays."""
    out, off = {}, 0
    for k, shape in cfg.param_shapes().items():
        n = int(np.prod(shape))
        out[k] = theta[off : off + n].reshape(shape).copy()
        off += n
    return out


def check_tokens(values, name: str, width: int, vocab: int, what: str) -> np.ndarray:
    """Token ids as a C-contiguous int64 array (batch, width), each in [0, vocab)."""
    arr = np.asarray(values)
    if arr.ndim == 1 and width == arr.shape[0]:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != width or arr.shape[0] < 1:
        raise ValueError(f"{name} must have shape (batch, {width}) ({what}), got {np.shape(values)}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer token ids")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer token ids, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= vocab):
        raise ValueError(f"{name} holds token ids outside [0, {vocab}): min {arr.min()}, max {arr.max()}")
    return arr


def check_batch(cfg, x, y=None):
    x = check_tokens(x, "x", cfg.src_len, cfg.vocab_in, "src_len")
    if y is None:
        return x, None
    y = check_tokens(y, "y", cfg.tgt_len, cfg.vocab_out, "tgt_len")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"x and y must hold the same number of sequences, got {x.shape[0]} and {y.shape[0]}")
    return x, y


def effective_tables(cfg, params: Mapping) -> dict:
    """Rung 0's tables of a model (``U`` (H, Vout, Vin), ``S``, ``A`` where it has them, ``b``):
    rung 0's own parameters (``U = W @ E`` when factored), rung 1's products of factors
    (docs/design.md §7.1), the tables through which the theory of §4 applies. ValueError
    for an architecture that has none."""
    arch = _arch.of(cfg)
    if arch.effective_tables is None:
        raise ValueError(f"the model {arch.name!r} has no effective tables (the theory of rung 0 does not apply)")
    return arch.effective_tables(cfg, check_params(cfg, params))


def translation_table(cfg, params: Mapping) -> np.ndarray:
    """U (H, Vout, Vin): the (effective) translation table."""
    return effective_tables(cfg, params)["U"]


def _require_batch(cfg, B: int, values: int) -> None:
    """Refuse, before allocating, a call whose workspace and ``values`` more entries of
    the model's dtype cannot fit."""
    kernels = _arch.of(cfg).kernels
    need = kernels.workspace_bytes(kernels.layout(cfg), B, cfg.np_dtype.itemsize) + values * cfg.np_dtype.itemsize
    require(need, f"a batch of {B:,} sequences through {describe(cfg)}")


def loss_and_grad(cfg, params: Mapping, x, y, weight_decay: float = 0.0) -> tuple[float, dict]:
    """Mean cross-entropy (docs/design.md §1.1) and its gradient, for any architecture.

    Parameters
    ----------
    cfg : a model config (``ModelConfig``, ``DotConfig``, …)
    params : dict of arrays with the names and shapes of ``cfg.param_shapes()``
    x : int array (B, L), y : int array (B, T)
    weight_decay : float
        Adds ``weight_decay / 2 * |theta|²`` to the loss.

    Returns
    -------
    (loss, grads) with ``grads`` the same keys, shapes and dtype as ``params``.
    """
    kernels = _arch.of(cfg).kernels
    x, y = check_batch(cfg, x, y)
    if not np.isfinite(weight_decay) or weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    _require_batch(cfg, x.shape[0], 3 * cfg.n_params)
    theta = pack(cfg, params)
    grad = np.zeros_like(theta)
    with one_blas_thread():
        loss = float(kernels.loss_grad(x, y, theta, kernels.layout(cfg), grad))
    if weight_decay:
        loss += 0.5 * weight_decay * float(np.dot(theta.astype(np.float64), theta))
        grad += np.asarray(weight_decay, theta.dtype) * theta
    return loss, unpack(cfg, grad)


def forward(cfg, params: Mapping, x, y=None) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``z`` (``cfg.out_shape(B)``: (B, T, Vout) for rungs 0 and 1) and attention
    ``alpha`` (``cfg.alpha_shape(B)``: (H, B, T, L)) for inputs ``x``. A model whose decoder
    reads the previous target word (``cfg.needs_targets``, rung 2) is teacher-forced with
    the targets ``y`` (B, T), which it then needs; the others do not read them."""
    kernels = _arch.of(cfg).kernels
    x, y = check_batch(cfg, x, y)
    if y is None:
        if cfg.needs_targets:
            raise ValueError(
                f"forward: the {cfg.model} model's decoder reads the previous target word (teacher forcing): "
                f"pass the targets y, shape (batch, {cfg.tgt_len})"
            )
        y = np.zeros((x.shape[0], cfg.tgt_len), np.int64)
    B = x.shape[0]
    z_shape, a_shape = cfg.out_shape(B), cfg.alpha_shape(B)
    _require_batch(cfg, B, 2 * cfg.n_params + math.prod(z_shape) + math.prod(a_shape))
    theta = pack(cfg, params)
    z = np.zeros(z_shape, cfg.np_dtype)
    alpha = np.zeros(a_shape, cfg.np_dtype)
    with one_blas_thread():
        kernels.forward(x, y, theta, kernels.layout(cfg), z, alpha)
    return z, alpha
