"""Rung 3, ``clf``, beyond what tests/test_architectures.py checks of every architecture:
its config, PyTorch's default init, the authors' state dicts, the two directions, the probe,
and that it learns the keyword task with the KTIW probe no later than attention."""

import numpy as np
import pytest

import attnsim as at
from attnsim.arch.clf import _reference as oracle


def test_config_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match="one label of two classes"):
        at.ClassifierConfig.for_task(at.tasks.copy(5, 3))
    with pytest.raises(ValueError, match="attention must be one of mlp, uniform"):
        at.ClassifierConfig(vocab_in=5, vocab_out=2, src_len=3, tgt_len=1, attention="dot")
    with pytest.raises(ValueError, match="hidden must be a positive integer"):
        at.ClassifierConfig(vocab_in=5, vocab_out=2, src_len=3, tgt_len=1, hidden=0)
    with pytest.raises(ValueError, match="'heads' is not an option of the model 'clf'"):
        at.ClassifierConfig.for_task(at.tasks.keyword(5, 3), heads=2)
    for config in (at.ModelConfig, at.DotConfig, at.RNNConfig, at.ClassifierConfig):  # a task's name is not a task
        with pytest.raises(ValueError, match=f"{config.__name__}.for_task takes a task .*got str 'keyword'"):
            config.for_task("keyword")


def test_shapes_are_the_authors():
    cfg = at.ClassifierConfig.for_task(at.tasks.keyword(30, 12), embed=7, hidden=5, intermediate=3)
    s = cfg.param_shapes()
    assert s["embedding.weight"] == (30, 7) and s["encoder.weight_ih_reverse"] == (20, 7)
    assert s["encoder.weight_hh"] == (20, 5) and s["hidden2attn_intermediate.weight"] == (3, 10)
    assert s["attn_intermediate2logit.weight"] == (1, 3) and s["hidden2beta.weight"] == (1, 10)
    assert cfg.out_shape(4) == (4, 1, 2) and cfg.alpha_shape(4) == (1, 4, 1, 12)
    uniform = at.ClassifierConfig.for_task(at.tasks.keyword(30, 12), attention="uniform").param_shapes()
    assert not any(k.startswith(("hidden2attn", "attn_inter")) for k in uniform)


def test_default_init_is_pytorchs():
    cfg = at.ClassifierConfig.for_task(at.tasks.keyword(40, 10), embed=50, hidden=16, intermediate=9)
    p = at.init_params(cfg, seed=3)
    assert abs(p["embedding.weight"].std() - 1.0) < 0.05  # N(0, 1), 40·50 draws
    bounds = {"encoder.weight_hh_reverse": 1 / 4, "hidden2attn_intermediate.weight": 1 / np.sqrt(32),
              "attn_intermediate2logit.weight": 1 / 3, "hidden2beta.weight": 1 / np.sqrt(32)}  # fmt: skip
    for name, bound in bounds.items():
        a = p[name]
        assert a.max() <= bound and a.min() >= -bound and np.abs(a).max() > 0.8 * bound, name
    assert p["encoder.weight_hh"].dtype == np.float32


def _authors(params):
    """``params`` under the authors' key names (their nn.LSTM's ``_l0`` and ``_l0_reverse``)."""
    sd = {}
    for k, v in params.items():
        if k.startswith("encoder."):
            part = k.removeprefix("encoder.")
            rev = part.endswith("_reverse")
            sd[f"encoder.{part.removesuffix('_reverse')}_l0{'_reverse' if rev else ''}"] = v
        else:
            sd[k] = v
    return sd


@pytest.mark.parametrize("attention", ["mlp", "uniform"])
def test_state_dict_of_the_authors_classifier_maps_by_name(attention):
    cfg = at.ClassifierConfig.for_task(at.tasks.keyword(8, 5), hidden=3, embed=4, attention=attention,
                                       dtype="float64")  # fmt: skip
    params = at.init_params(cfg, seed=1)
    sd = _authors(params)
    if attention == "uniform":  # their uniform model still holds the attention network, unused
        sd.update({"hidden2attn_intermediate.weight": np.zeros((32, 6)), "attn_intermediate2logit.bias": np.zeros(1)})
    back = cfg.params_from_state_dict(sd)
    assert list(back) == list(params)
    for k in params:
        assert np.array_equal(back[k], params[k]), k


def test_state_dict_refusals():
    cfg = at.ClassifierConfig.for_task(at.tasks.keyword(8, 5), hidden=3, embed=4, dtype="float64")
    sd = _authors(at.init_params(cfg, seed=1))
    with pytest.raises(ValueError, match="one bidirectional layer"):
        cfg.params_from_state_dict({**sd, "encoder.weight_ih_l1": sd["encoder.weight_ih_l0"]})
    with pytest.raises(ValueError, match="does not use: extra.weight"):
        cfg.params_from_state_dict({**sd, "extra.weight": np.zeros(3)})
    with pytest.raises(ValueError, match="missing encoder.weight_hh_l0_reverse"):
        cfg.params_from_state_dict({k: v for k, v in sd.items() if k != "encoder.weight_hh_l0_reverse"})
    with pytest.raises(ValueError, match=r"encoder.weight_ih_l0: the state dict's shape \(1, 1\)"):
        cfg.params_from_state_dict({**sd, "encoder.weight_ih_l0": np.zeros((1, 1))})
    with pytest.raises(ValueError, match="holds encoder.bias_ih twice, as encoder.bias_ih_l0 and as encoder.bias_ih"):
        cfg.params_from_state_dict({**sd, "encoder.bias_ih": sd["encoder.bias_ih_l0"]})
    with pytest.raises(ValueError, match="missing hidden2beta.bias"):
        cfg.params_from_state_dict({k: v for k, v in sd.items() if k != "hidden2beta.bias"})
    with pytest.raises(ValueError, match=r"hidden2beta.weight: the state dict's shape \(1, 5\)"):
        cfg.params_from_state_dict({**sd, "hidden2beta.weight": np.zeros((1, 5))})
    with pytest.raises(ValueError, match="not finite"):
        cfg.params_from_state_dict({**sd, "hidden2beta.bias": np.array([np.inf])})
    with pytest.raises(ValueError, match="a mapping"):
        cfg.params_from_state_dict([1, 2])


def test_the_backward_direction_reads_the_words_last_first():
    """With the forward direction's weights zero, a position's state is what the backward
    LSTM made of the words from it to the end: position l's state on x equals position
    L−1−l's on x reversed once the directions' weights are swapped (and the probe reads
    only that half)."""
    task = at.tasks.keyword(7, 5)
    cfg = at.ClassifierConfig.for_task(task, hidden=3, embed=2, attention="uniform", dtype="float64")
    p = oracle.random_params(cfg, np.random.default_rng(0))
    swapped = dict(p)
    for k in [k for k in p if k.startswith("encoder.") and not k.endswith("_reverse")]:
        swapped[k], swapped[k + "_reverse"] = p[k + "_reverse"], p[k]
    w = p["hidden2beta.weight"].copy()
    p["hidden2beta.weight"] = np.concatenate([np.zeros((1, 3)), w[:, 3:]], axis=1)  # read the backward half
    swapped["hidden2beta.weight"] = np.concatenate([w[:, 3:], np.zeros((1, 3))], axis=1)  # now the forward half
    x, y, _ = task.sample(np.random.default_rng(1), 4)
    beta = at.metrics.ktiw_probe(cfg, p, x, y)
    beta_rev = at.metrics.ktiw_probe(cfg, swapped, x[:, ::-1], y)
    assert np.allclose(beta, beta_rev[:, :, ::-1], rtol=0, atol=1e-13)


@pytest.mark.parametrize("batch", [1, 40])
def test_input_table_and_gathered_inputs_agree_with_the_oracle(batch):
    """The input halves of the gates go through the table ``Emb W_ihᵀ`` when the vocabulary
    has fewer rows than there are inputs (batch 40 here), gathered embeddings otherwise."""
    from attnsim.arch.clf import _kernels as K

    task = at.tasks.keyword(12, 4, keywords=2)
    cfg = at.ClassifierConfig.for_task(task, hidden=3, embed=2, intermediate=4, dtype="float64")
    assert K._uses_table(cfg.vocab_in, cfg.src_len * batch) == (batch == 40)
    params = oracle.random_params(cfg, np.random.default_rng(1))
    x, y, _ = task.sample(np.random.default_rng(2), batch)
    loss, grads = at.loss_and_grad(cfg, params, x, y)
    want_loss, want = oracle.loss_and_grad(cfg, params, x, y)
    assert loss == pytest.approx(want_loss, rel=1e-13)
    for name in want:
        assert np.allclose(grads[name], want[name], rtol=1e-11, atol=1e-13), name


def test_ktiw_probe_is_the_kernels_and_the_oracles():
    """The public probe (B, 1, L) is ±β (the label's log-odds from position l alone), its
    accuracy is the one the kernel logs, and the score is Σ_l α β."""
    task = at.tasks.keyword(20, 8, keywords=3)
    cfg = at.ClassifierConfig.for_task(task, hidden=6, embed=5, intermediate=4, dtype="float64")
    run = at.train(cfg, task, steps=20, batch=16, lr=0.01, log_every=20, seed=2)
    x, y, gold = task.sample(np.random.default_rng(0), 16)
    beta = at.metrics.ktiw_probe(cfg, run.params, x, y)
    assert beta.shape == (16, 1, 8)
    assert np.allclose(beta, oracle.ktiw_probe(cfg, run.params, x, y), rtol=0, atol=1e-12)
    z, alpha = at.forward(cfg, run.params, x)
    sign = np.where(y[:, 0] == 1, 1.0, -1.0)
    assert np.allclose(z[:, 0, 1], (alpha[0, :, 0] * beta[:, 0] * sign[:, None]).sum(-1), atol=1e-12)
    assert np.all(z[:, 0, 0] == 0.0)
    met = oracle.batch_metrics(cfg, run.params, x, y, gold)
    assert met["ktiw_acc"] == pytest.approx(at.metrics.ktiw_accuracy(beta, gold), abs=0)


def test_learns_keywords_with_the_probe_no_later_than_attention():
    """keyword(40, 20, 8 Zipf keywords), e = d = 16, Adam lr 3e-3, 6 seeds: every run
    reaches accuracy 0.95 and attention accuracy 0.9 within 300 steps, and the KTIW probe
    reaches 0.5 no later than attention in every run, strictly earlier in at least 4 (the
    paper's stage 1 then 2; measured here: earlier in 5, the same logged step in 1)."""
    task = at.tasks.keyword(40, 20, keywords=8, zipf=1.0)
    cfg = at.ClassifierConfig.for_task(task, embed=16, hidden=16, intermediate=16)
    runs = at.train_many(cfg, task, seeds=range(6), steps=300, batch=32, lr=3e-3, log_every=5)
    first = lambda h, k: h["step"][int(np.argmax(np.asarray(h[k]) >= 0.5))]  # noqa: E731
    earlier = 0
    for run in runs:
        h = run.history
        assert h["acc"][-1] >= 0.95 and h["attn_acc"][-1] >= 0.9
        assert first(h, "ktiw_acc") <= first(h, "attn_acc")
        earlier += first(h, "ktiw_acc") < first(h, "attn_acc")
    assert earlier >= 4


def test_runs_speak_of_a_classifiers_accuracy_and_of_no_attention_accuracy_when_uniform():
    """A classifier's accuracy is its label accuracy, not a token accuracy; a model whose
    attention is frozen uniform has no attention accuracy to print."""
    from attnsim._train import accuracies

    final = {"acc": 0.5, "attn_acc": 0.25}
    task = at.tasks.keyword(12, 6, keywords=2)
    clf = at.ClassifierConfig.for_task(task, embed=4, hidden=4, intermediate=4)
    assert accuracies(clf, final) == "accuracy 0.500, attention acc 0.250"
    uni = at.ClassifierConfig.for_task(task, embed=4, hidden=4, intermediate=4, attention="uniform")
    assert accuracies(uni, final) == "accuracy 0.500 (attention uniform)"
    copy = at.tasks.copy(6, 6)
    assert accuracies(at.ModelConfig.for_task(copy), final) == "token acc 0.500, attention acc 0.250"
    assert accuracies(at.RNNConfig.for_task(copy, hidden=4, attention="uniform"), final) == (
        "token acc 0.500 (attention uniform)"
    )


def test_value_columns_give_the_logits_and_the_saliency_is_the_logit_gradient():
    """A position adds (0, β[l]) to the logits, so z = Σ α (0, β); the saliency Δ is minus
    the gradient of each example's loss on the attention logits, here against central
    differences of the logistic loss of softmax(logits) · β, logits moved one at a time."""
    rng = np.random.default_rng(5)
    task = at.tasks.keyword(12, 6, keywords=2)
    cfg = at.ClassifierConfig.for_task(task, embed=3, hidden=3, intermediate=4, dtype="float64")
    params = oracle.random_params(cfg, rng, 1.0)
    x, y, _ = task.sample(rng, 5)
    cols = oracle.value_columns(cfg, params, x)
    z, alpha = at.forward(cfg, params, x)
    assert cols.shape == (1, 5, 6, 2) and np.all(cols[..., 0] == 0)
    assert np.allclose(np.einsum("hbl,hblo->bo", alpha[:, :, 0, :], cols), z[:, 0, :], rtol=1e-12, atol=1e-12)
    delta = at.metrics.saliency(cfg, params, x, y)
    p = oracle._p64(params)
    h = 1e-5
    for b, words in enumerate(x):
        one = oracle._one(cfg, p, words)
        beta, logit = one["beta"], np.log(one["alpha"])  # logits up to a constant, which softmax ignores
        sign = 1.0 if y[b, 0] == 1 else -1.0

        def loss(lg, beta=beta, sign=sign):
            a = np.exp(lg - lg.max())
            a /= a.sum()
            return np.logaddexp(0.0, -sign * (a @ beta))

        fd = [(loss(logit + h * e) - loss(logit - h * e)) / (2 * h) for e in np.eye(len(words))]
        assert np.allclose(delta[b, 0], -np.array(fd), rtol=1e-6, atol=1e-9)


def test_a_uniform_classifier_succeeds_by_its_accuracy_alone():
    """Uniform attention has nothing to learn: success and time to learn read the accuracy only."""
    task = at.tasks.keyword(12, 6, keywords=2)
    cfg = at.ClassifierConfig.for_task(task, embed=8, hidden=8, intermediate=8, attention="uniform")
    run = at.train(cfg, task, steps=150, batch=32, lr=1e-2, log_every=10)
    acc = np.asarray(run.history["acc"])
    assert acc[-1] >= 0.95 and run.success
    assert run.time_to_learn == run.history["step"][int(np.flatnonzero(acc >= 0.95)[0])]


def test_learning_curves_of_a_uniform_model_draw_no_attention_accuracy():
    from attnsim import _plots

    h = {"step": [0, 10], "loss": [0.7, 0.1], "acc": [0.5, 1.0], "attn_acc": [0.1, 0.2], "ktiw_acc": [0.0, 0.9]}
    fig = _plots.learning_curves(h, "t", accuracy="accuracy (label)", uniform=True)
    attn = fig.axes[2]
    assert attn.get_ylabel().startswith("attention accuracy") and len(attn.get_lines()) == 1  # the 0.95 line only
    assert "attention frozen uniform" in " ".join(t.get_text() for t in attn.texts)
    assert fig.axes[1].get_ylabel() == "accuracy (label)" and len(fig.axes[1].get_lines()) == 2
