"""Rung 2, ``rnn``, beyond what tests/test_architectures.py checks of every architecture:
its config, PyTorch's default init, the authors' state dicts, teacher forcing, the probe,
and that it learns the copy task with the KTIW probe ahead of attention."""

import dataclasses

import numpy as np
import pytest

import attnsim as at
from attnsim.arch.rnn import _reference as oracle


def test_config_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match="shared embedding needs one vocabulary"):
        at.RNNConfig(vocab_in=5, vocab_out=6, src_len=3, tgt_len=3)
    with pytest.raises(ValueError, match="cell must be one of"):
        at.RNNConfig(vocab_in=5, vocab_out=5, src_len=3, tgt_len=3, cell="rnn")
    with pytest.raises(ValueError, match="hidden must be a positive integer"):
        at.RNNConfig(vocab_in=5, vocab_out=5, src_len=3, tgt_len=3, hidden=0)
    with pytest.raises(ValueError, match="not an option"):
        at.RNNConfig.for_task(at.tasks.copy(5, 3), dim=8)
    translate = at.tasks.from_arrays(np.zeros((4, 3), int), np.ones((4, 2), int), vocab_in=5, vocab_out=3)
    cfg = at.RNNConfig.for_task(translate, hidden=4)
    assert not cfg.shared_embedding and cfg.param_shapes()["dec_embedding.weight"] == (5, 4)


def test_shapes_are_the_authors():
    cfg = at.RNNConfig.for_task(at.tasks.copy(40, 40), heads=8, cell="gru", shared_embedding=False)
    s = cfg.param_shapes()
    assert s["enc_embedding.weight"] == (42, 256) and s["encoder.weight_ih"] == (768, 256)
    assert s["attn_lin.weight"] == (8, 256, 256) and s["after_decoder_hidden.weight"] == (256, 512)
    assert s["hidden2vocab.weight"] == (42, 256)
    assert cfg.out_shape(3) == (3, 41, 42) and cfg.alpha_shape(3) == (8, 3, 41, 41)
    assert "attn_lin.weight" not in at.RNNConfig.for_task(at.tasks.copy(5, 3), attention="uniform").param_shapes()


def test_default_init_is_pytorchs():
    cfg = at.RNNConfig.for_task(at.tasks.copy(40, 40), hidden=64)
    p = at.init_params(cfg, seed=3)
    assert abs(p["embedding.weight"].std() - 1.0) < 0.05  # N(0, 1), 42·64 draws
    for name, bound in (("encoder.weight_hh", 1 / 8), ("attn_lin.weight", 1 / 8),
                        ("after_decoder_hidden.weight", 1 / np.sqrt(128))):  # fmt: skip
        a = p[name]
        assert a.max() <= bound and a.min() >= -bound and a.max() > 0.95 * bound  # U(−1/√fan_in, 1/√fan_in)
    assert p["encoder.weight_hh"].dtype == np.float32  # the authors' precision by default


def test_forward_needs_the_targets():
    cfg = oracle.random_config(np.random.default_rng(0))
    params = oracle.random_params(cfg, np.random.default_rng(1))
    x = np.zeros((2, cfg.src_len), int)
    with pytest.raises(ValueError, match="teacher forcing.: pass the targets y"):
        at.forward(cfg, params, x)


def _authors(cfg, params, multihead):
    """``params`` under the authors' key names (PyTorch tensors are accepted too: arrays here)."""
    sd = {}
    for k, v in params.items():
        part, rest = k.split(".", 1)
        if part in ("encoder", "decoder"):
            sd[f"{part}_{'rnn' if multihead else 'lstm'}.{rest}_l0"] = v
        elif part in ("attn_lin", "project_enc"):
            if multihead:
                for h in range(cfg.heads):
                    sd[f"attn_heads.{h}.{'attn_proj' if part == 'attn_lin' else 'enc_proj'}.{rest}"] = v[h]
            else:
                sd[k] = v[0]
        elif k == "after_decoder_hidden.weight" and multihead:  # the multi-head model reads [ctx; h_dec]
            d = cfg.hidden
            sd[k] = np.concatenate([v[:, d:], v[:, :d]], axis=1)
        elif part == "hidden2vocab" and multihead:
            sd[f"out_lin.{rest}"] = v
        else:
            sd[k] = v
    return sd


@pytest.mark.parametrize("multihead", [False, True])
def test_state_dict_of_the_authors_models_maps_by_name(multihead):
    task = at.tasks.copy(6, 4)
    kw = dict(cell="gru", heads=3, shared_embedding=False) if multihead else dict(cell="lstm")
    cfg = at.RNNConfig.for_task(task, hidden=5, dtype="float64", **kw)
    params = at.init_params(cfg, seed=1)
    back = cfg.params_from_state_dict(_authors(cfg, params, multihead))
    assert list(back) == list(params)
    for k in params:
        assert np.array_equal(back[k], params[k]), k


def test_state_dict_refusals():
    cfg = at.RNNConfig.for_task(at.tasks.copy(6, 4), hidden=5, dtype="float64")
    sd = _authors(cfg, at.init_params(cfg, seed=1), False)
    with pytest.raises(ValueError, match="one unidirectional layer"):
        cfg.params_from_state_dict({**sd, "encoder_lstm.weight_ih_l1": sd["encoder_lstm.weight_ih_l0"]})
    with pytest.raises(ValueError, match="does not use: extra_ff.weight"):
        cfg.params_from_state_dict({**sd, "extra_ff.weight": np.zeros((5, 10))})
    with pytest.raises(ValueError, match="missing hidden2vocab.bias"):
        cfg.params_from_state_dict({k: v for k, v in sd.items() if k != "hidden2vocab.bias"})
    with pytest.raises(ValueError, match="shape"):
        cfg.params_from_state_dict({**sd, "hidden2vocab.bias": np.zeros(3)})
    with pytest.raises(ValueError, match=r"attn_lin.weight, head 0: the state dict's shape \(5,\)"):
        cfg.params_from_state_dict({**sd, "attn_lin.weight": np.zeros(5)})
    with pytest.raises(ValueError, match="lacks what .* needs: encoder.weight_ih"):
        typo = {("encoder_lstm.weight_ihh_l0" if k == "encoder_lstm.weight_ih_l0" else k): v for k, v in sd.items()}
        cfg.params_from_state_dict(typo)
    with pytest.raises(ValueError, match="mixes the copy model"):
        cfg.params_from_state_dict({**sd, "attn_heads.0.attn_proj.weight": sd["attn_lin.weight"]})
    with pytest.raises(ValueError, match="not finite"):
        cfg.params_from_state_dict({**sd, "hidden2vocab.bias": np.full(8, np.nan)})


def test_float32_exponential_is_within_two_ulps():
    """The float32 models' gates go through `_exp_inplace_f32`: within 2 ulps of exp on
    [-87, 0] (its truncation error is 6e-9, under float32's 6e-8), clamped below -87,
    NaN through."""
    from attnsim._kernels import _exp_inplace_f32

    rng = np.random.default_rng(0)
    x = -np.concatenate([np.linspace(0, 87, 200_001), rng.exponential(3, 200_000), [0.0, -1e-30]])
    x = x[x >= -87].astype(np.float32)
    e, k = x.copy(), np.zeros_like(x)
    _exp_inplace_f32(e, k, k.view(np.int32), x.size)
    want = np.exp(x.astype(np.float64))
    assert np.max(np.abs(e - want) / want) <= 2 * 2.0**-24
    z, kz = np.array([np.nan, -np.inf, -100.0], np.float32), np.zeros(3, np.float32)
    _exp_inplace_f32(z, kz, kz.view(np.int32), 3)
    assert np.isnan(z[0]) and z[1] == z[2] == np.float32(np.exp(-87.0))


@pytest.mark.parametrize("batch", [1, 32])
@pytest.mark.parametrize("shared", [True, False])
def test_input_table_and_gathered_inputs_agree_with_the_oracle(batch, shared):
    """The input halves of the gates go through the table ``Emb W_ihᵀ`` when the vocabulary
    has fewer rows than there are inputs (batch 32 here), through gathered embeddings
    otherwise (batch 1, vocabulary 12 > 4 inputs): both give the oracle's loss and gradient."""
    from attnsim.arch.rnn import _kernels as K

    task = at.tasks.copy(10, 3)
    cfg = at.RNNConfig.for_task(task, hidden=3, heads=2, shared_embedding=shared, dtype="float64")
    assert K._uses_table(cfg.vocab_in + 2, (cfg.src_len + 1) * batch) == (batch == 32)
    params = oracle.random_params(cfg, np.random.default_rng(1))
    x, y, _ = task.sample(np.random.default_rng(2), batch)
    loss, grads = at.loss_and_grad(cfg, params, x, y)
    want_loss, want = oracle.loss_and_grad(cfg, params, x, y)
    assert loss == pytest.approx(want_loss, rel=1e-13)
    for name in want:
        assert np.allclose(grads[name], want[name], rtol=1e-11, atol=1e-13), name


def test_ktiw_probe_is_the_kernels_and_the_oracles():
    """The public probe (B, T+1, L+1) equals the oracle's, and its accuracy is the one the
    kernel logs during training."""
    task = at.tasks.copy(6, 4)
    cfg = at.RNNConfig.for_task(task, hidden=6, heads=2, dtype="float64")
    run = at.train(cfg, task, steps=30, batch=16, lr=0.02, log_every=30, seed=2)
    x, y, gold = task.sample(np.random.default_rng(0), 16)
    beta = at.metrics.ktiw_probe(cfg, run.params, x, y)
    assert beta.shape == (16, 5, 5)
    assert np.allclose(beta, oracle.ktiw_probe(cfg, run.params, x, y), rtol=0, atol=1e-12)
    met = oracle.batch_metrics(cfg, run.params, x, y, gold)
    assert met["ktiw_acc"] == pytest.approx(at.metrics.ktiw_accuracy(beta[:, :4], gold), abs=0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_init_coordinates_are_the_attention_logits_and_a_difference_quotient(cell):
    """Claim 6's recurrent coordinates (docs/design.md §7.10): c from the compiled kernel's
    attention (s[gold] − mean s = log α[gold] − mean log α over the L words), and a as a
    central difference of the oracle's logits, one example at a time, when head h's
    attention moves from uniform over the L words towards position l."""
    from attnsim.arch.rnn import init_coordinates

    task = at.tasks.copy(5, 4)
    cfg = at.RNNConfig.for_task(task, hidden=6, heads=2, cell=cell, dtype="float64")
    params = at.init_params(cfg, 3)
    x, y, gold = task.sample(np.random.default_rng(4), 12)
    a, c = init_coordinates(cfg, params, x, y, gold)
    L, T, H, V = cfg.src_len, cfg.tgt_len, cfg.heads, cfg.vocab_out
    _, alpha = at.forward(cfg, params, x, y)
    la = np.log(alpha[:, :, :T, :L])
    b, t = np.nonzero(gold >= 0)
    assert np.allclose(c, [np.mean(la[h, b, t, gold[b, t]] - la[h, b, t].mean(axis=1)) for h in range(H)], rtol=1e-9)
    p = oracle._p64(params)
    src, dec_in, _ = oracle.sequences(cfg, x, y)
    eps = 1e-5
    want = np.zeros(H)
    for bb in range(len(x)):
        r = oracle._one(cfg, p, src[bb], dec_in[bb])
        uniform = np.r_[np.full(L, 1.0 / L), 0.0]  # EOS aside
        for h in range(H):
            for l in range(L):  # noqa: E741
                moved = []
                for e in (eps, -eps):
                    ctx = 0.0
                    for k in range(H):
                        att = uniform + (e * (np.eye(L + 1)[l] - uniform) if k == h else 0.0)
                        ctx = ctx + (att @ r["Henc"] @ p["project_enc.weight"][k].T + p["project_enc.bias"][k]) / H
                    cat = np.concatenate([r["Hdec"][:T], np.broadcast_to(ctx, (T, cfg.hidden))], axis=1)
                    z = np.tanh(cat @ p["after_decoder_hidden.weight"].T + p["after_decoder_hidden.bias"])
                    z = z @ p["hidden2vocab.weight"][:V].T
                    moved.append(z[:, x[bb, l]] - z.mean(axis=1))
                want[h] += np.sum(moved[0] - moved[1]) / (2 * eps)
    assert np.allclose(a, want / (len(x) * T * L), rtol=1e-7)
    with pytest.raises(ValueError, match="dot-product"):
        init_coordinates(dataclasses.replace(cfg, attention="uniform"), {}, x, y, gold)


def test_init_coordinates_refuse_what_they_cannot_read():
    from attnsim.arch.rnn import init_coordinates

    task = at.tasks.copy(5, 4)
    cfg = at.RNNConfig.for_task(task, hidden=6, dtype="float64")
    params = at.init_params(cfg, 0)
    x, y, gold = task.sample(np.random.default_rng(0), 8)
    bad = [
        ((at.DotConfig.for_task(task), params, x, y, gold), "needs an RNNConfig"),
        ((at.RNNConfig.for_task(at.tasks.translate(5, 7, 4), hidden=6), params, x, y, gold), "needs a copy task"),
        ((cfg, params, x, y, gold[:3]), "gold must be integers of shape"),
        ((cfg, params, x, y, gold.astype(float)), "gold must be integers of shape"),
        ((cfg, params, x, y, gold + 4), "gold positions must lie in"),
        ((cfg, params, x, y, np.full_like(gold, -1)), "no target word has a gold position"),
        ((cfg, params, x[:, :2], y, gold), "x must have shape"),
        ((cfg, {}, x, y, gold), "params do not match"),
    ]
    for args, message in bad:
        with pytest.raises(ValueError, match=message):
            init_coordinates(*args)


def test_learns_the_copy_task_with_the_probe_first():
    """copy(10, 8), LSTM d 32, Adam: token and attention accuracy reach 0.95 within 300
    steps, and the KTIW probe is right before attention is (the paper's stage 1 then 2)."""
    task = at.tasks.copy(10, 8)
    cfg = at.RNNConfig.for_task(task, hidden=32)
    run = at.train(cfg, task, steps=300, batch=32, lr=0.01, log_every=10, seed=0)
    h = run.history
    assert h["acc"][-1] >= 0.95 and h["attn_acc"][-1] >= 0.95
    first = lambda v: int(np.argmax(np.asarray(v) >= 0.5))  # noqa: E731
    assert h["step"][first(h["ktiw_acc"])] < h["step"][first(h["attn_acc"])]
