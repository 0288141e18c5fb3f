"""Data distributions (docs/design.md §2).

Every task draws batches ``(x, y, gold)`` from a seeded ``numpy.random.Generator``:
``x`` (n, L) input words, ``y`` (n, T) target words, ``gold`` (n, T) the source position
that target step t copies or translates (-1 where there is none). Each task reports its
statistics

    n[i]    = E[#{l : x_l = i}]
    C[o, i] = E[#{(t, l) : y_t = o, x_l = i}]
    P_tl[o, i] = P(y_t = o, x_l = i)            (``pair_marginal(t, l)``)

exactly for the built-in tasks and as estimates with standard errors for user data
(``from_arrays``, ``from_parallel_text``).
"""

from __future__ import annotations

import abc
import math
import os
import unicodedata
from collections import Counter
from dataclasses import dataclass

import numpy as np

from . import _kernels
from ._memory import require

__all__ = [
    "Task",
    "TaskStats",
    "copy",
    "reorder",
    "translate",
    "keyword",
    "from_arrays",
    "from_parallel_text",
    "from_spec",
    "estimate_stats",
]


@dataclass(frozen=True)
class TaskStats:
    """Co-occurrence statistics of a task (docs/design.md §2); standard errors are 0 when exact."""

    n: np.ndarray  # (Vin,)
    C: np.ndarray  # (Vout, Vin)
    n_se: np.ndarray
    C_se: np.ndarray
    exact: bool
    samples: int = 0  # sequences behind an estimate (0 when exact)


def _int(task: str, name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{task}: {name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{task}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _zipf(task: str, value) -> float:
    try:
        zipf = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{task}: zipf must be a number >= 0, got {value!r}") from None
    if not math.isfinite(zipf) or zipf < 0:
        raise ValueError(f"{task}: zipf must be a number >= 0, got {value!r}")
    return zipf


def _prob(task: str, name: str, value, upper_open: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{task}: {name} must be a number in [0, 1], got {value!r}") from None
    if not math.isfinite(v) or v < 0 or v > 1 or (upper_open and v == 1):
        raise ValueError(f"{task}: {name} must be in [0, 1{')' if upper_open else ']'}, got {value!r}")
    return v


class Task(abc.ABC):
    """A data distribution over fixed-length (source, target) pairs.

    Attributes: ``name``, ``vocab_in``, ``vocab_out``, ``src_len`` (L), ``tgt_len`` (T),
    ``default_attention`` (the attention a model of this task learns by default).
    """

    name: str = "task"
    default_attention: str = "positional"

    def __init__(self, vocab_in: int, vocab_out: int, src_len: int, tgt_len: int):
        self.vocab_in = vocab_in
        self.vocab_out = vocab_out
        self.src_len = src_len
        self.tgt_len = tgt_len

    #: (T,) int64 when every sequence has the same gold alignment, else None
    gold_constant: np.ndarray | None = None
    #: whether some target step has a gold position (user data may have none)
    has_gold: bool = True

    # ------------------------------------------------------------- interface
    def sample(self, rng: np.random.Generator, n: int):
        """Draw ``n`` sequences: ``(x (n, L), y (n, T), gold (n, T))``, int64."""
        x, y, gold = self.draw(rng, n)
        if gold is None:
            gold = np.ascontiguousarray(np.broadcast_to(self.gold_constant, (n, self.tgt_len)))
        return x, y, gold

    @abc.abstractmethod
    def draw(self, rng: np.random.Generator, n: int):
        """Like `sample`, but ``gold`` is None when it is ``gold_constant`` for every
        sequence, and ``y`` may be ``x`` itself (the training loop's fast path)."""

    @abc.abstractmethod
    def spec(self) -> dict:
        """Name and parameters, enough for `from_spec` to rebuild the task."""

    @abc.abstractmethod
    def pair_marginal(self, t: int, l: int) -> np.ndarray:  # noqa: E741
        """P(y_t = o, x_l = i), shape (Vout, Vin)."""

    def stats(self) -> TaskStats:
        """``n`` and ``C``, summed from the pair marginals (exact for built-in tasks)."""
        C = sum(self.pair_marginal(t, l) for t in range(self.tgt_len) for l in range(self.src_len))
        n = sum(self.pair_marginal(0, l).sum(axis=0) for l in range(self.src_len))
        return TaskStats(n=n, C=C, n_se=np.zeros_like(n), C_se=np.zeros_like(C), exact=True)

    # ------------------------------------------------------------- helpers
    def _check_t_l(self, t, l):  # noqa: E741
        if not (0 <= t < self.tgt_len and 0 <= l < self.src_len):
            raise ValueError(f"{self.name}: need 0 <= t < {self.tgt_len} and 0 <= l < {self.src_len}, got t={t}, l={l}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.spec().items() if k != "name")
        return f"{self.name}({args})"


# =============================================================================
# copy and reorder
# =============================================================================


def _distinct_rows(rng: np.random.Generator, n: int, vocab: int, length: int) -> np.ndarray:
    """``n`` rows of ``length`` distinct words of ``vocab``, each set and order uniform:
    the first ``length`` steps of a Fisher-Yates shuffle, on uniforms drawn in bulk."""
    out = np.empty((n, length), dtype=np.int64)
    _kernels.partial_shuffle(rng.random((n, length)), vocab, out)
    return out


def _copy_marginal(vocab: int, same: bool, replace: bool) -> np.ndarray:
    """P(x_s = o, x_l = i) for a source position s and position l (same or not)."""
    if same:
        return np.eye(vocab) / vocab
    if replace:
        return np.full((vocab, vocab), 1.0 / vocab**2)
    return (1.0 - np.eye(vocab)) / (vocab * (vocab - 1))


class _Reorder(Task):
    def __init__(self, name, vocab, length, order, replace, order_spec):
        super().__init__(vocab, vocab, length, len(order))
        self.name = name
        self.vocab = vocab
        self.length = length
        self.order = np.asarray(order, dtype=np.int64)
        self.replace = replace
        self._order_spec = order_spec
        self.gold_constant = self.order
        self._identity = len(order) == length and bool(np.all(self.order == np.arange(length)))

    def draw(self, rng, n):
        if self.replace:
            x = rng.integers(0, self.vocab, size=(n, self.length), dtype=np.int64)
        else:
            x = _distinct_rows(rng, n, self.vocab, self.length)
        y = x if self._identity else np.ascontiguousarray(x[:, self.order])
        return x, y, None

    def pair_marginal(self, t, l):  # noqa: E741
        self._check_t_l(t, l)
        return _copy_marginal(self.vocab, int(self.order[t]) == l, self.replace)

    def stats(self):
        V, L, T = self.vocab, self.length, self.tgt_len
        # every target step copies one source position: it co-occurs with that
        # position's word (diagonal) and with the L-1 others
        C = T * (_copy_marginal(V, True, self.replace) + (L - 1) * _copy_marginal(V, False, self.replace))
        n = np.full(V, L / V)
        return TaskStats(n=n, C=C, n_se=np.zeros_like(n), C_se=np.zeros_like(C), exact=True)

    def spec(self):
        d = {"name": self.name, "vocab": self.vocab, "length": self.length}
        if self.name == "reorder":
            d["order"] = self._order_spec
        d["replace"] = self.replace
        return d


def _vocab_length(task: str, vocab, length, replace: bool) -> tuple[int, int]:
    """Checked sizes of a copy-like task: inputs of distinct words need vocab >= length."""
    vocab = _int(task, "vocab", vocab, 1)
    length = _int(task, "length", length, 1)
    if not replace and length > vocab:
        raise ValueError(
            f"{task}: length {length} > vocab {vocab}: an input holds {length} distinct words, "
            f"so vocab must be at least {length} (or use replace=True)"
        )
    return vocab, length


def copy(vocab: int, length: int, replace: bool = False) -> Task:
    """``length`` words from ``vocab``, distinct (or i.i.d. with ``replace``), ``y = x``.

    ``copy(40, 40)`` is the paper's hard "permutation of 40"; ``copy(60, 40)`` its easy
    "40 out of 60".
    """
    vocab, length = _vocab_length("copy", vocab, length, replace)
    return _Reorder("copy", vocab, length, np.arange(length), bool(replace), None)


def _resolve_order(order, length: int, seed: int):
    if isinstance(order, str):
        name = order.strip().lower()
        if name in ("identity", "copy"):
            return np.arange(length), name
        if name == "reverse":
            return np.arange(length)[::-1].copy(), name
        if name == "shuffle":
            rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(7,)))
            return rng.permutation(length), f"shuffle:{seed}"
        if name.startswith(("shuffle:", "rotate:")):
            what, number = name.split(":", 1)
            try:
                number = int(number)
            except ValueError:
                raise ValueError(f"order {order!r}: the number after '{what}:' must be an integer") from None
            if what == "shuffle":
                return _resolve_order("shuffle", length, number)
        if name == "rotate" or name.startswith("rotate:"):
            k = 1 if name == "rotate" else number
            return (np.arange(length) + k) % length, f"rotate:{k}"
        raise ValueError(
            f"order must be 'identity', 'reverse', 'rotate[:k]', 'shuffle[:seed]' or a list of positions, got {order!r}"
        )
    arr = np.asarray(order)
    if arr.ndim != 1 or arr.size != length or arr.dtype.kind not in "iu":
        raise ValueError(f"order must list {length} source positions (one per target step), got {order!r}")
    if arr.min() < 0 or arr.max() >= length:
        raise ValueError(f"order must hold positions in [0, {length}), got {order!r}")
    return arr.astype(np.int64), [int(v) for v in arr]


def reorder(vocab: int, length: int, order="reverse", replace: bool = False, seed: int = 0) -> Task:
    """``y_t = x[order[t]]``: ``order`` is 'reverse', 'rotate[:k]', 'shuffle[:seed]' (a
    fixed random permutation) or an explicit list of source positions."""
    vocab, length = _vocab_length("reorder", vocab, length, replace)
    try:
        idx, spec = _resolve_order(order, length, seed)
    except ValueError as err:
        raise ValueError(f"reorder: {err}") from None
    return _Reorder("reorder", vocab, length, idx, bool(replace), spec)


# =============================================================================
# translate
# =============================================================================


class _Translate(Task):
    name = "translate"

    def __init__(self, vocab_in, vocab_out, length, zipf, noise, order, seed):
        idx, order_spec = _resolve_order(order, length, seed)
        super().__init__(vocab_in, vocab_out, length, length)
        self.zipf, self.noise, self.seed = zipf, noise, seed
        self.order = idx
        self.gold_constant = idx
        self._order_spec = order_spec
        rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(11,)))
        if vocab_out >= vocab_in:  # an injection
            self.mapping = rng.permutation(vocab_out)[:vocab_in].astype(np.int64)
        else:  # every output word has floor or ceil(Vin/Vout) sources
            self.mapping = rng.permutation(np.arange(vocab_in) % vocab_out).astype(np.int64)
        w = (np.arange(1, vocab_in + 1, dtype=np.float64)) ** (-zipf)
        self.p = w / w.sum()  # word i has frequency rank i + 1
        self._cdf = np.cumsum(self.p)
        self._cdf[-1] = 1.0
        q = np.zeros(vocab_out)
        np.add.at(q, self.mapping, self.p)
        self.q = (1 - noise) * q + noise / vocab_out  # marginal of every y_t

    def draw(self, rng, n):
        L, T = self.src_len, self.tgt_len
        x = np.searchsorted(self._cdf, rng.random((n, L)), side="right").astype(np.int64)
        np.minimum(x, self.vocab_in - 1, out=x)
        y = self.mapping[x[:, self.order]]
        flip = rng.random((n, T)) < self.noise
        noise_words = rng.integers(0, self.vocab_out, size=(n, T), dtype=np.int64)
        y = np.where(flip, noise_words, y)
        return x, np.ascontiguousarray(y), None

    def _aligned(self):
        P = np.zeros((self.vocab_out, self.vocab_in))
        P[self.mapping, np.arange(self.vocab_in)] = (1 - self.noise) * self.p
        return P + self.noise / self.vocab_out * self.p[None, :]

    def pair_marginal(self, t, l):  # noqa: E741
        self._check_t_l(t, l)
        if int(self.order[t]) == l:
            return self._aligned()
        return np.outer(self.q, self.p)

    def stats(self):
        L, T = self.src_len, self.tgt_len
        C = T * (self._aligned() + (L - 1) * np.outer(self.q, self.p))
        n = L * self.p
        return TaskStats(n=n, C=C, n_se=np.zeros_like(n), C_se=np.zeros_like(C), exact=True)

    def spec(self):
        return {
            "name": self.name,
            "vocab_in": self.vocab_in,
            "vocab_out": self.vocab_out,
            "length": self.src_len,
            "zipf": self.zipf,
            "noise": self.noise,
            "order": self._order_spec,
            "seed": self.seed,
        }


def translate(
    vocab_in: int, vocab_out: int, length: int, zipf: float = 1.0, noise: float = 0.0, order="identity", seed: int = 0
) -> Task:
    """Word-for-word translation through a fixed random mapping π (drawn from ``seed``).

    Inputs are i.i.d. Zipf(``zipf``) words (word i has frequency ∝ (i+1)^-zipf);
    ``y_t = π(x[order[t]])``, replaced by a uniform random word with probability
    ``noise``. Frequent words co-occur with their translation more often.
    """
    vocab_in = _int("translate", "vocab_in", vocab_in, 1)
    vocab_out = _int("translate", "vocab_out", vocab_out, 1)
    length = _int("translate", "length", length, 1)
    zipf = _zipf("translate", zipf)
    noise = _prob("translate", "noise", noise)
    seed = _int("translate", "seed", seed, 0)
    require(6 * 8 * (vocab_in + vocab_out), f"translate({vocab_in:,}, {vocab_out:,}, …)'s word tables")
    try:
        return _Translate(vocab_in, vocab_out, length, zipf, noise, order, seed)
    except ValueError as err:
        raise ValueError(f"translate: {err}") from None


# =============================================================================
# keyword classification
# =============================================================================


class _Keyword(Task):
    name = "keyword"
    default_attention = "content"

    def __init__(self, vocab, length, keywords, zipf):
        super().__init__(vocab, 2, length, 1)
        self.vocab, self.length, self.keywords, self.zipf = vocab, length, keywords, zipf
        w = np.arange(1, keywords + 1, dtype=np.float64) ** (-zipf)
        self.keyword_p = w / w.sum()  # keyword i has frequency rank i + 1
        self._cdf = np.cumsum(self.keyword_p)
        self._cdf[-1] = 1.0

    def draw(self, rng, n):
        V, L, k = self.vocab, self.length, self.keywords
        label = (rng.random(n) < 0.5).astype(np.int64)
        x = rng.integers(k, V, size=(n, L), dtype=np.int64)  # filler words
        pos = rng.integers(0, L, size=n, dtype=np.int64)
        if self.zipf == 0:
            word = rng.integers(0, k, size=n, dtype=np.int64)
        else:
            word = np.minimum(np.searchsorted(self._cdf, rng.random(n), side="right"), k - 1).astype(np.int64)
        rows = np.flatnonzero(label)
        x[rows, pos[rows]] = word[rows]
        gold = np.where(label == 1, pos, -1)[:, None]
        return x, label[:, None].copy(), np.ascontiguousarray(gold)

    def _word_dist(self, label: int, keyword_slot: bool) -> np.ndarray:
        V, k = self.vocab, self.keywords
        p = np.zeros(V)
        if label == 1 and keyword_slot:
            p[:k] = self.keyword_p
        else:
            p[k:] = 1.0 / (V - k)
        return p

    def pair_marginal(self, t, l):  # noqa: E741
        self._check_t_l(t, l)
        L = self.length
        filler = self._word_dist(0, False)
        P = np.zeros((2, self.vocab))
        P[0] = 0.5 * filler
        P[1] = 0.5 * ((1 - 1 / L) * filler + (1 / L) * self._word_dist(1, True))
        return P

    def spec(self):
        out = {"name": self.name, "vocab": self.vocab, "length": self.length, "keywords": self.keywords}
        return {**out, "zipf": self.zipf} if self.zipf else out


def keyword(vocab: int, length: int, keywords: int = 1, zipf: float = 0.0) -> Task:
    """Binary classification: label 1 iff a keyword occurs (balanced).

    Keywords are words ``0 .. keywords-1``; a positive input holds exactly one, at a
    uniform random position (its gold position), keyword i with probability ∝
    (i+1)^-``zipf`` (uniform by default); the other words are drawn uniformly from the
    non-keywords. Frequent keywords co-occur with the positive label more often.
    """
    vocab = _int("keyword", "vocab", vocab, 2)
    length = _int("keyword", "length", length, 1)
    keywords = _int("keyword", "keywords", keywords, 1)
    zipf = _zipf("keyword", zipf)
    if keywords >= vocab:
        raise ValueError(
            f"keyword: keywords {keywords} >= vocab {vocab}: at least one non-keyword word is needed to fill inputs"
        )
    return _Keyword(vocab, length, keywords, zipf)


# =============================================================================
# the user's own data
# =============================================================================


class ArrayTask(Task):
    """Sequences drawn uniformly, with replacement, from a fixed data set.

    Its statistics are estimated from the data set (the standard errors are those of
    a mean over its sequences).
    """

    name = "arrays"

    def __init__(self, x, y, gold, vocab_in, vocab_out, source=None):
        super().__init__(vocab_in, vocab_out, x.shape[1], y.shape[1])
        self.x, self.y, self.gold = x, y, gold
        self.source = source  # spec of the file the data came from, if any
        self.src_vocab = None
        self.tgt_vocab = None

    @property
    def has_gold(self) -> bool:
        return bool(np.any(self.gold >= 0))

    def draw(self, rng, n):
        idx = rng.integers(0, self.x.shape[0], size=n)
        return self.x[idx], self.y[idx], self.gold[idx]

    def pair_marginal(self, t, l):  # noqa: E741
        self._check_t_l(t, l)
        P = np.zeros((self.vocab_out, self.vocab_in))
        np.add.at(P, (self.y[:, t], self.x[:, l]), 1.0)
        return P / self.x.shape[0]

    def stats(self):
        return _estimate(self.x, self.y, self.vocab_in, self.vocab_out)

    def __repr__(self) -> str:
        if self.source is None:
            return super().__repr__()
        spec = {
            **self.source,
            "path": os.path.basename(self.source["path"]),
        }  # the file's name: short enough for titles
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in spec.items() if k != 'name')})"

    def spec(self):
        if self.source is not None:
            return dict(self.source)
        return {
            "name": self.name,
            "sequences": int(self.x.shape[0]),
            "vocab_in": self.vocab_in,
            "vocab_out": self.vocab_out,
            "src_len": self.src_len,
            "tgt_len": self.tgt_len,
        }


def _estimate(x, y, vocab_in, vocab_out) -> TaskStats:
    """Mean per-sequence counts and their standard errors over the rows of (x, y)."""
    N = x.shape[0]
    rows_x = np.repeat(np.arange(N), x.shape[1])
    rows_y = np.repeat(np.arange(N), y.shape[1])
    cx = np.zeros((N, vocab_in))
    np.add.at(cx, (rows_x, x.ravel()), 1.0)  # cx[s, i] = #{l : x_sl = i}
    cy = np.zeros((N, vocab_out))
    np.add.at(cy, (rows_y, y.ravel()), 1.0)  # cy[s, o] = #{t : y_st = o}
    n = cx.mean(axis=0)
    C = cy.T @ cx / N  # per sequence, #{(t,l): y_t=o, x_l=i} = cy[s,o] cx[s,i]
    if N > 1:
        n_var = (cx**2).mean(axis=0) - n**2
        C_var = (cy**2).T @ (cx**2) / N - C**2
        n_se = np.sqrt(np.maximum(n_var, 0) / (N - 1))
        C_se = np.sqrt(np.maximum(C_var, 0) / (N - 1))
    else:
        n_se = np.full_like(n, np.inf)
        C_se = np.full_like(C, np.inf)
    return TaskStats(n=n, C=C, n_se=n_se, C_se=C_se, exact=False, samples=N)


def estimate_stats(task: Task, samples: int = 20000, seed: int = 0) -> TaskStats:
    """Monte Carlo estimate of ``n`` and ``C`` with standard errors, from ``samples`` draws."""
    samples = _int("estimate_stats", "samples", samples, 2)
    x, y, _ = task.sample(np.random.default_rng(seed), samples)
    return _estimate(x, y, task.vocab_in, task.vocab_out)


def from_arrays(x, y, gold=None, vocab_in: int | None = None, vocab_out: int | None = None) -> ArrayTask:
    """A task that draws rows of your own arrays: ``x`` (N, L) and ``y`` (N, T) of
    non-negative word ids, and optionally ``gold`` (N, T) source positions (-1: none)."""
    x = _id_array("from_arrays", "x", x)
    y = _id_array("from_arrays", "y", y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"from_arrays: x and y must have the same number of rows, got {x.shape[0]} and {y.shape[0]}")
    vin = int(x.max()) + 1
    vout = int(y.max()) + 1
    if vocab_in is not None:
        vocab_in = _int("from_arrays", "vocab_in", vocab_in, 1)
        if vocab_in < vin:
            raise ValueError(f"from_arrays: x holds word {vin - 1}, but vocab_in is {vocab_in}")
        vin = vocab_in
    if vocab_out is not None:
        vocab_out = _int("from_arrays", "vocab_out", vocab_out, 1)
        if vocab_out < vout:
            raise ValueError(f"from_arrays: y holds word {vout - 1}, but vocab_out is {vocab_out}")
        vout = vocab_out
    if gold is None:
        g = np.full(y.shape, -1, dtype=np.int64)
    else:
        g = np.asarray(gold)
        if g.shape != y.shape or g.dtype.kind not in "iu":
            raise ValueError(f"from_arrays: gold must be an int array of shape {y.shape}, got {g.shape} {g.dtype}")
        if g.size and (g.min() < -1 or g.max() >= x.shape[1]):
            raise ValueError(f"from_arrays: gold must hold source positions in [0, {x.shape[1]}) or -1")
        g = np.ascontiguousarray(g, dtype=np.int64)
    return ArrayTask(x, y, g, vin, vout)


def _id_array(task, name, values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{task}: {name} must be a 2-D array (sequences, positions), got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{task}: {name} must hold integer word ids, got dtype {arr.dtype}")
    if arr.min() < 0:
        raise ValueError(f"{task}: {name} holds a negative word id ({arr.min()})")
    return np.ascontiguousarray(arr, dtype=np.int64)


PAD, UNK = "<pad>", "<unk>"
_CONTROL = {"\x00": "(NUL) ", "\x0b": "(vertical tab) ", "\x0c": "(form feed) ", "\x1b": "(escape) "}


def _build_vocab(sentences, max_vocab):
    counts = Counter(w for s in sentences for w in s)
    words = sorted(counts, key=lambda w: (-counts[w], w))
    if max_vocab is not None:
        words = words[: max(0, max_vocab - 2)]
    vocab = [PAD, UNK] + words
    return vocab, {w: i for i, w in enumerate(vocab)}


def _encode(sentences, index, length):
    out = np.zeros((len(sentences), length), dtype=np.int64)  # <pad> = 0
    unk = index[UNK]
    for r, s in enumerate(sentences):
        ids = [index.get(w, unk) for w in s[:length]]
        out[r, : len(ids)] = ids
    return out


def from_parallel_text(
    path, src_len: int | None = None, tgt_len: int | None = None, max_vocab: int | None = None
) -> ArrayTask:
    """A task from a parallel text file: one sentence pair per line, ``source<TAB>target``,
    whitespace-separated tokens; blank lines are skipped.

    Sentences are padded with ``<pad>`` (id 0) or truncated to ``src_len`` / ``tgt_len``
    (default: the longest in the file). Vocabularies are built from the file, most
    frequent first; with ``max_vocab`` the rarer words become ``<unk>`` (id 1). The
    gold alignment is unknown (-1). ``task.src_vocab`` and ``task.tgt_vocab`` list the
    words by id.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is not part of the first word
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start})") from None
    src, tgt = [], []
    for lineno, line in enumerate(text.split("\n"), start=1):  # lines as an editor numbers them
        line = line.removesuffix("\r")
        bad = next((ch for ch in line if ch != "\t" and unicodedata.category(ch) == "Cc"), None)
        if bad is not None:
            raise ValueError(
                f"{path}, line {lineno}: control character U+{ord(bad):04X} {_CONTROL.get(bad, '')}"
                "in the text; is this a text file?".replace("  ", " ")
            )
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            what = "no tab" if len(parts) == 1 else f"{len(parts) - 1} tabs"
            raise ValueError(f"{path}, line {lineno}: expected 'source<TAB>target', found {what}")
        s, t = parts[0].split(), parts[1].split()
        if not s or not t:
            side = "source" if not s else "target"
            raise ValueError(f"{path}, line {lineno}: empty {side} sentence")
        src.append(s)
        tgt.append(t)
    if not src:
        raise ValueError(f"{path}: no sentence pairs (expected lines 'source<TAB>target')")
    if src_len is not None:
        src_len = _int("from_parallel_text", "src_len", src_len, 1)
    if tgt_len is not None:
        tgt_len = _int("from_parallel_text", "tgt_len", tgt_len, 1)
    if max_vocab is not None:
        max_vocab = _int("from_parallel_text", "max_vocab", max_vocab, 3)
    L = src_len or max(len(s) for s in src)
    T = tgt_len or max(len(t) for t in tgt)
    src_vocab, src_index = _build_vocab(src, max_vocab)
    tgt_vocab, tgt_index = _build_vocab(tgt, max_vocab)
    x = _encode(src, src_index, L)
    y = _encode(tgt, tgt_index, T)
    source = {"name": "text", "path": os.path.abspath(path), "src_len": L, "tgt_len": T, "max_vocab": max_vocab}
    task = ArrayTask(x, y, np.full(y.shape, -1, dtype=np.int64), len(src_vocab), len(tgt_vocab), source)
    task.name = "text"
    task.src_vocab, task.tgt_vocab = src_vocab, tgt_vocab
    return task


# =============================================================================
# specs
# =============================================================================

_BUILDERS = {"copy": copy, "reorder": reorder, "translate": translate, "keyword": keyword}


def from_spec(spec: dict) -> Task:
    """Rebuild a task from ``task.spec()`` (built-in tasks and text files)."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"a task spec is a dict with a 'name', got {spec!r}")
    kw = dict(spec)
    name = kw.pop("name")
    if name == "text":
        return from_parallel_text(kw.pop("path"), **kw)
    if name not in _BUILDERS:
        raise ValueError(f"unknown task {name!r}; built-in tasks are {', '.join(_BUILDERS)} and text")
    import inspect

    params = inspect.signature(_BUILDERS[name]).parameters
    unknown = sorted(set(kw) - set(params))
    if unknown:
        raise ValueError(
            f"{name} has no parameter {', '.join(map(repr, unknown))}; its parameters: {', '.join(params)}"
        )
    missing = [p for p, v in params.items() if v.default is inspect.Parameter.empty and p not in kw]
    if missing:
        raise ValueError(f"{name} needs {', '.join(missing)}")
    return _BUILDERS[name](**kw)
