"""Tasks: samplers, gold alignments, exact statistics against Monte Carlo, bad input."""

import numpy as np
import pytest

from attnsim import tasks

BUILT_IN = {
    "copy": tasks.copy(6, 4),
    "copy-replace": tasks.copy(6, 4, replace=True),
    "permutation": tasks.copy(5, 5),
    "reorder-reverse": tasks.reorder(6, 4, "reverse"),
    "reorder-shuffle-replace": tasks.reorder(5, 5, "shuffle:3", replace=True),
    "reorder-list": tasks.reorder(6, 3, [2, 2, 0]),
    "translate-zipf-noise": tasks.translate(7, 5, 4, zipf=1.2, noise=0.2, order="reverse", seed=2),
    "translate-injective": tasks.translate(4, 8, 3, zipf=0.0),
    "keyword": tasks.keyword(7, 5, keywords=2),
    "keyword-one-word": tasks.keyword(3, 1),
    "keyword-zipf": tasks.keyword(8, 4, keywords=3, zipf=1.3),
}
N_MC = 20000


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_exact_statistics_equal_monte_carlo_within_4_standard_errors(name):
    task = BUILT_IN[name]
    exact = task.stats()
    est = tasks.estimate_stats(task, samples=N_MC, seed=1)
    assert exact.exact and not est.exact and est.samples == N_MC
    for value, mc, se in ((exact.n, est.n, est.n_se), (exact.C, est.C, est.C_se)):
        assert value.shape == mc.shape
        random = se > 0
        assert np.all(np.abs(value - mc)[random] <= 4 * se[random]), name
        assert np.allclose(value[~random], mc[~random], atol=1e-12)  # constant counts: exact
    # the pair marginals behind C (docs/design.md §4.2 needs them per (t, l))
    x, y, _ = task.sample(np.random.default_rng(2), N_MC)
    for t, l in {(0, 0), (task.tgt_len - 1, 0), (0, task.src_len - 1)}:
        P = task.pair_marginal(t, l)
        F = np.zeros_like(P)
        np.add.at(F, (y[:, t], x[:, l]), 1.0 / N_MC)
        se = np.sqrt(P * (1 - P) / N_MC)
        assert np.all(np.abs(F - P) <= 4 * se + 1e-12), (name, t, l)
        assert P.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_samples_have_the_task_shapes_and_ranges(name):
    task = BUILT_IN[name]
    x, y, gold = task.sample(np.random.default_rng(0), 50)
    assert x.shape == (50, task.src_len) and y.shape == (50, task.tgt_len) and gold.shape == y.shape
    assert x.dtype == y.dtype == gold.dtype == np.int64
    assert 0 <= x.min() and x.max() < task.vocab_in and 0 <= y.min() and y.max() < task.vocab_out
    assert gold.min() >= -1 and gold.max() < task.src_len
    x2, y2, g2 = task.sample(np.random.default_rng(0), 50)
    assert np.array_equal(x, x2) and np.array_equal(y, y2) and np.array_equal(gold, g2)  # seeded


def test_copy_draws_distinct_words_and_copies_them():
    x, y, gold = tasks.copy(60, 40).sample(np.random.default_rng(0), 200)
    assert all(len(set(row)) == 40 for row in x)
    assert np.array_equal(x, y) and np.array_equal(gold, np.broadcast_to(np.arange(40), gold.shape))
    x, _, _ = tasks.copy(40, 40).sample(np.random.default_rng(0), 20)
    assert np.array_equal(np.sort(x, axis=1), np.broadcast_to(np.arange(40), x.shape))  # permutations


@pytest.mark.parametrize("order", ["reverse", "rotate:2", "shuffle:5", [3, 0, 0, 1, 2]])
def test_reorder_targets_follow_the_gold_alignment(order):
    task = tasks.reorder(9, 5, order)
    x, y, gold = task.sample(np.random.default_rng(1), 100)
    assert np.array_equal(y, np.take_along_axis(x, gold, axis=1))


def test_translate_maps_words_through_a_fixed_mapping():
    task = tasks.translate(12, 20, 6, zipf=1.0, noise=0.0, order="rotate:1", seed=4)
    x, y, gold = task.sample(np.random.default_rng(0), 300)
    assert np.array_equal(y, task.mapping[np.take_along_axis(x, gold, axis=1)])
    assert len(set(task.mapping)) == 12  # injective when Vout >= Vin
    many_to_one = tasks.translate(10, 4, 3)
    counts = np.bincount(many_to_one.mapping, minlength=4)
    assert counts.min() >= 2 and counts.max() <= 3  # balanced
    freq = np.bincount(x.ravel(), minlength=12)
    assert freq[0] > freq[5] > freq[11]  # Zipf: word 0 is the most frequent
    noisy = tasks.translate(12, 20, 6, noise=1.0).sample(np.random.default_rng(0), 2000)[1]
    assert len(np.unique(noisy)) == 20  # pure noise reaches every output word


def test_zipf_keywords_have_their_frequencies():
    task = tasks.keyword(30, 6, keywords=4, zipf=1.0)
    x, y, gold = task.sample(np.random.default_rng(1), 40_000)
    rows = np.flatnonzero(y[:, 0] == 1)
    words = x[rows, gold[rows, 0]]
    freq = np.bincount(words, minlength=4) / rows.size
    expected = np.array([1, 1 / 2, 1 / 3, 1 / 4]) / (25 / 12)
    se = np.sqrt(expected * (1 - expected) / rows.size)
    assert np.all(np.abs(freq - expected) < 5 * se)
    assert tasks.from_spec(task.spec()).spec() == task.spec() == {
        "name": "keyword", "vocab": 30, "length": 6, "keywords": 4, "zipf": 1.0
    }  # fmt: skip
    with pytest.raises(ValueError, match="keyword: zipf must be a number >= 0"):
        tasks.keyword(30, 6, keywords=4, zipf=-1)


def test_keyword_label_means_a_keyword_is_present_at_gold():
    task = tasks.keyword(20, 8, keywords=3)
    x, y, gold = task.sample(np.random.default_rng(0), 1000)
    has_kw = (x < 3).any(axis=1)
    assert np.array_equal(y[:, 0] == 1, has_kw)
    assert np.all((x < 3).sum(axis=1) <= 1)
    pos = gold[:, 0]
    assert np.all(pos[y[:, 0] == 0] == -1)
    rows = np.flatnonzero(y[:, 0] == 1)
    assert np.all(x[rows, pos[rows]] < 3)
    assert 0.45 < y.mean() < 0.55  # balanced
    assert task.default_attention == "content"


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: tasks.copy(30, 40), "length 40 > vocab 30"),
        (lambda: tasks.copy(0, 4), "vocab must be an integer >= 1"),
        (lambda: tasks.copy(10, -1), "length must be an integer >= 1"),
        (lambda: tasks.copy(10.5, 4), "vocab must be an integer"),
        (lambda: tasks.reorder(10, 4, "sideways"), "order must be"),
        (lambda: tasks.reorder(10, 4, [0, 1, 2]), "list 4 source positions"),
        (lambda: tasks.reorder(10, 4, [0, 1, 2, 9]), r"positions in \[0, 4\)"),
        (lambda: tasks.reorder(3, 4), "length 4 > vocab 3"),
        (lambda: tasks.translate(10, 10, 5, zipf=-1), "zipf must be a number >= 0"),
        (lambda: tasks.translate(10, 10, 5, noise=1.5), r"noise must be in \[0, 1\]"),
        (lambda: tasks.translate(10, 0, 5), "vocab_out must be an integer >= 1"),
        (lambda: tasks.keyword(5, 4, keywords=5), "keywords 5 >= vocab 5"),
        (lambda: tasks.keyword(5, 4, keywords=0), "keywords must be an integer >= 1"),
        (lambda: tasks.from_arrays([[0, 1]], [[0], [1]]), "same number of rows"),
        (lambda: tasks.from_arrays([[0, -1]], [[0]]), "negative word id"),
        (lambda: tasks.from_arrays([[0.5, 1]], [[0]]), "integer word ids"),
        (lambda: tasks.from_arrays([[0, 3]], [[0]], vocab_in=2), "x holds word 3"),
        (lambda: tasks.from_arrays([[0, 1]], [[0]], gold=[[5]]), "gold must hold source positions"),
        (lambda: tasks.from_spec({"name": "nope"}), "unknown task 'nope'"),
        (lambda: tasks.from_spec({"name": "copy", "vocab": 5, "length": 2, "colour": 1}), "colour"),
    ],
)
def test_impossible_parameters_are_rejected_with_a_clear_message(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_spec_round_trip(name):
    task = BUILT_IN[name]
    again = tasks.from_spec(task.spec())
    a = task.sample(np.random.default_rng(3), 20)
    b = again.sample(np.random.default_rng(3), 20)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


def test_from_arrays_statistics_are_the_data_means_with_standard_errors():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=(400, 3))
    y = rng.integers(0, 4, size=(400, 2))
    task = tasks.from_arrays(x, y)
    st = task.stats()
    counts_x = np.stack([np.bincount(r, minlength=5) for r in x])
    counts_y = np.stack([np.bincount(r, minlength=4) for r in y])
    per_seq = counts_y[:, :, None] * counts_x[:, None, :]
    assert np.allclose(st.n, counts_x.mean(0)) and np.allclose(st.C, per_seq.mean(0))
    assert np.allclose(st.n_se, counts_x.std(0, ddof=1) / np.sqrt(400))
    assert np.allclose(st.C_se, per_seq.std(0, ddof=1) / np.sqrt(400))
    assert not st.exact and st.samples == 400
    # sampling draws rows of the data
    xs, ys, gs = task.sample(np.random.default_rng(1), 30)
    rows = {tuple(r) for r in np.hstack([x, y])}
    assert all(tuple(r) in rows for r in np.hstack([xs, ys])) and np.all(gs == -1)


def _write(tmp_path, text, mode="w", name="pairs.txt"):
    p = tmp_path / name
    if mode == "w":
        p.write_text(text, encoding="utf-8")
    else:
        p.write_bytes(text)
    return p


def test_parallel_text_is_tokenized_padded_and_truncated(tmp_path):
    p = _write(tmp_path, "the cat sat\tle chat assis\n\nthe dog\tle chien\na cat sat down now\tun chat\n")
    task = tasks.from_parallel_text(p)
    assert (task.src_len, task.tgt_len) == (5, 3)
    assert task.src_vocab[:2] == ["<pad>", "<unk>"] and task.src_vocab[2:4] == ["cat", "sat"]  # by frequency
    assert task.x.shape == (3, 5) and task.x[1, 2] == 0  # padded with <pad>
    short = tasks.from_parallel_text(p, src_len=2, tgt_len=2, max_vocab=4)
    assert short.x.shape == (3, 2) and short.vocab_in == 4
    assert (short.x == 1).any()  # rare words became <unk>
    assert tasks.from_spec(short.spec()).x.tolist() == short.x.tolist()
    assert np.all(task.gold == -1) and not task.has_gold
    bom = _write(tmp_path, "\ufeffthe cat\tle chat\r\n".encode(), mode="wb", name="bom.txt")  # BOM, CRLF
    assert tasks.from_parallel_text(bom).src_vocab[2:] == ["cat", "the"]


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"name": "copy", "vocab": 5, "length": 3, "zipf": 1.0}, "copy has no parameter 'zipf'; its parameters: vocab"),
        ({"name": "copy", "vocab": 5}, "copy needs length"),
        ({"name": "reorder", "vocab": 5, "length": 3, "order": "rotate:abc"}, "the number after 'rotate:' must be"),
    ],
)
def test_task_specs_say_what_is_wrong_in_their_words(spec, match):
    with pytest.raises(ValueError, match=match):
        tasks.from_spec(spec)


@pytest.mark.parametrize(
    "content, match",
    [
        ("a b\tc\nno tab here\n", r"line 2: expected 'source<TAB>target', found no tab"),
        ("a\tb\tc\n", "line 1: .* found 2 tabs"),
        ("a b\t  \n", "line 1: empty target sentence"),
        ("\t x\n", "line 1: empty source sentence"),
        ("\n\n  \n", "no sentence pairs"),
        (b"a\tb\n\xff\xfe\tc\n", "not UTF-8"),
    ],
)
def test_malformed_parallel_text_is_rejected(tmp_path, content, match):
    p = _write(tmp_path, content, mode="wb" if isinstance(content, bytes) else "w")
    with pytest.raises(ValueError, match=match):
        tasks.from_parallel_text(p)


def test_missing_parallel_text_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        tasks.from_parallel_text(tmp_path / "nope.txt")
