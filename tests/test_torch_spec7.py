"""divcore.torch with SPEC §7's extras (sample weights, z-loss, soft-cap, TopK targets):
the numpy functions' values, gradients of any order, torch.compile without graph breaks."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import divcore  # noqa: E402
import divcore.torch as dct  # noqa: E402

F64 = torch.float64


def make(seed=0, n=6, c=7):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=F64) * 3
    y = torch.randint(0, c, (n,), generator=g)
    y[1] = -100
    s = torch.rand(n, generator=g, dtype=F64) * 2
    s[2] = 0
    p = torch.softmax(torch.randn(n, c, generator=g, dtype=F64), -1)
    return x, y, s, p


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_extras_equal_the_numpy_functions(reduction):
    x, y, s, p = make()
    w = torch.linspace(0.5, 2.0, 7, dtype=F64)
    kw = dict(sample_weight=s, z_loss=0.01, softcap=4.0, temperature=1.3, reduction=reduction)
    got = dct.cross_entropy(x, y, w, **kw)
    expect = divcore.cross_entropy(x.numpy(), y.numpy(), weight=w.numpy(), **kw.copy(
        sample_weight=s.numpy()) if False else dict(kw, sample_weight=s.numpy()))
    np.testing.assert_allclose(got.numpy(), expect, rtol=1e-12)
    kw.pop("z_loss")
    for fn in ("kl_divergence", "js_divergence"):
        got = getattr(dct, fn)(x, p, **kw)
        expect = getattr(divcore, fn)(x.numpy(), p.numpy(), **dict(kw, sample_weight=s.numpy()))
        np.testing.assert_allclose(got.numpy(), expect, rtol=1e-10, atol=1e-15)
    got = dct.entropy(x, sample_weight=s, softcap=4.0, reduction=reduction)
    expect = divcore.entropy(x.numpy(), sample_weight=s.numpy(), softcap=4.0,
                             reduction=reduction)
    np.testing.assert_allclose(got.numpy(), expect, rtol=1e-12)


def test_extras_gradients_match_numpy_and_second_order():
    x, y, s, p = make(1)
    leaf = x.clone().requires_grad_()
    loss = dct.cross_entropy(leaf, y, sample_weight=s, z_loss=0.02, softcap=3.0)
    (g,) = torch.autograd.grad(loss, leaf, create_graph=True)
    _, expect = divcore.cross_entropy_and_grad(x.numpy(), y.numpy(), sample_weight=s.numpy(),
                                               z_loss=0.02, softcap=3.0)
    np.testing.assert_allclose(g.detach().numpy(), expect, rtol=1e-10, atol=1e-14)
    assert g.requires_grad  # a second derivative exists
    f = lambda z: dct.cross_entropy(z, y, sample_weight=s, z_loss=0.02, softcap=3.0)  # noqa
    assert torch.autograd.gradgradcheck(f, (x.clone().requires_grad_(),))
    f = lambda z: dct.kl_divergence(z, p, sample_weight=s, softcap=3.0)  # noqa
    assert torch.autograd.gradcheck(f, (x.clone().requires_grad_(),))
    assert torch.autograd.gradgradcheck(f, (x.clone().requires_grad_(),))


def topk_of(p, k):
    vals, idx = torch.topk(p, k, dim=-1)
    return divcore.TopK(idx, torch.log(vals))


def coarse_oracle(x, idx, logp, tail, t=1.0):
    """Dense float64 numpy: the coarse-grained distributions of SPEC §7, then the sums."""
    z = x / t
    q = np.exp(z - z.max(-1, keepdims=True))
    q /= q.sum(-1, keepdims=True)
    out = {}
    qk = np.take_along_axis(q, idx, -1)
    pk = np.exp(logp)
    if tail == "bucket":
        pt = np.concatenate([pk, 1 - pk.sum(-1, keepdims=True)], -1)
        qt = np.concatenate([qk, 1 - qk.sum(-1, keepdims=True)], -1)
    elif tail == "renormalize":
        pt, qt = pk / pk.sum(-1, keepdims=True), qk / qk.sum(-1, keepdims=True)
    else:
        pt, qt = pk / pk.sum(-1, keepdims=True), qk
    with np.errstate(divide="ignore", invalid="ignore"):
        out["kl"] = np.sum(np.where(pt > 0, pt * np.log(pt / qt), 0), -1)
        out["ce"] = -np.sum(np.where(pt > 0, pt * np.log(qt), 0), -1)
        out["rkl"] = np.sum(np.where(qt > 0, qt * np.log(qt / pt), 0), -1)
        m = (pt + qt) / 2
        out["js"] = 0.5 * np.sum(np.where(pt > 0, pt * np.log(pt / m), 0), -1) + \
            0.5 * np.sum(np.where(qt > 0, qt * np.log(qt / m), 0), -1)
    return out


@pytest.mark.parametrize("tail", ["bucket", "drop", "renormalize"])
def test_topk_targets_against_a_dense_oracle(tail):
    x, _, _, p = make(2)
    tk = topk_of(p, 3)
    o = coarse_oracle(x.numpy(), tk.indices.numpy(), tk.values.numpy(), tail, 1.5)
    kw = dict(tail=tail, temperature=1.5, reduction="none")
    np.testing.assert_allclose(dct.kl_divergence(x, tk, **kw).numpy(), o["kl"], rtol=1e-10)
    np.testing.assert_allclose(dct.cross_entropy(x, tk, **kw).numpy(), o["ce"], rtol=1e-10)
    if tail != "drop":
        np.testing.assert_allclose(dct.kl_divergence(x, tk, reverse=True, **kw).numpy(),
                                   o["rkl"], rtol=1e-10)
        np.testing.assert_allclose(dct.js_divergence(x, tk, **kw).numpy(), o["js"],
                                   rtol=1e-10)
    else:
        with pytest.raises(ValueError, match="drop"):
            dct.kl_divergence(x, tk, reverse=True, **kw)


def test_topk_bucket_is_never_above_the_full_kl():
    x, _, _, p = make(3, n=20, c=30)
    tk = topk_of(p, 5)
    coarse = dct.kl_divergence(x, tk, reduction="none")
    full = dct.kl_divergence(x, p, reduction="none")
    assert torch.all(coarse <= full + 1e-12)


def test_topk_gradients_and_k_equal_c():
    x, _, _, p = make(4)
    tk = topk_of(p, 3)
    f = lambda z: dct.kl_divergence(z, tk)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x.clone().requires_grad_(),))
    assert torch.autograd.gradgradcheck(f, (x.clone().requires_grad_(),))
    full = topk_of(p, 7)  # every class: p_r = q_r = 0, the dense KL
    np.testing.assert_allclose(dct.kl_divergence(x, full).item(),
                               dct.kl_divergence(x, p).item(), rtol=1e-9)
    leaf = x.clone().requires_grad_()
    dct.kl_divergence(leaf, full).backward()
    assert torch.all(torch.isfinite(leaf.grad))


@pytest.mark.parametrize("bad, error, words", [
    ("range", IndexError, "row 0"), ("dup", ValueError, "row 0"), ("shape", ValueError, "k")])
def test_topk_bad_indices_name_the_row(bad, error, words):
    x, _, _, p = make(5)
    tk = topk_of(p, 3)
    idx = tk.indices.clone()
    if bad == "range":
        idx[0, 0] = 7
    elif bad == "dup":
        idx[0, 1] = idx[0, 0]
    else:
        idx = idx[:3]
    with pytest.raises(error, match=words):
        dct.kl_divergence(x, divcore.TopK(idx, tk.values[: idx.shape[0]]))


def test_compile_fullgraph_with_extras_no_recompiles():
    import torch._dynamo as dynamo
    x, y, s, p = make(6)
    tk = topk_of(p, 3)

    def step(z, y, s, idx, vals):
        return (dct.cross_entropy(z, y, sample_weight=s, z_loss=1e-3, softcap=5.0)
                + dct.kl_divergence(z, divcore.TopK(idx, vals)))

    dynamo.reset()
    compiled = torch.compile(step, fullgraph=True, backend="eager")
    for seed in range(3):
        z = torch.randn(6, 7, dtype=F64, generator=torch.Generator().manual_seed(seed))
        got = compiled(z, y, s, tk.indices, tk.values)
        assert math.isclose(got.item(), step(z, y, s, tk.indices, tk.values).item(),
                            rel_tol=1e-12)


@pytest.mark.parametrize("tail", ["bucket", "drop", "renormalize"])
@pytest.mark.parametrize("kind", ["log_probs", "probs"])
def test_topk_torch_equals_the_numpy_kernels(tail, kind):
    """divcore.torch's TopK (torch operations) against the compiled kernels: values and the
    gradient with respect to the logits, (N, C, d) layout with class dim 1."""
    g = torch.Generator().manual_seed(9)
    x = torch.randn(3, 8, 4, generator=g, dtype=F64) * 2            # (N, C, d)
    p = torch.softmax(torch.randn(3, 8, 4, generator=g, dtype=F64), 1)
    vals, idx = torch.topk(p.movedim(1, -1), 3, dim=-1)               # (N, d, k)
    tk = divcore.TopK(idx, vals if kind == "probs" else torch.log(vals), kind=kind)
    leaf = x.clone().requires_grad_()
    loss = dct.kl_divergence(leaf, tk, tail=tail, temperature=1.5)
    loss.backward()
    np_tk = divcore.TopK(tk.indices.numpy(), tk.values.numpy(), kind=kind)
    value, grad = divcore.kl_divergence_and_grad(x.numpy(), np_tk, axis=1, tail=tail,
                                                 temperature=1.5)
    np.testing.assert_allclose(loss.item(), value, rtol=1e-10)
    np.testing.assert_allclose(leaf.grad.numpy(), grad, rtol=1e-8, atol=1e-12)


def test_bce_sample_weight_equals_numpy_and_has_gradients():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 3, generator=g, dtype=F64)
    y = torch.rand(4, 3, generator=g, dtype=F64)
    s = torch.rand(4, 1, generator=g, dtype=F64)
    got = dct.binary_cross_entropy_with_logits(x, y, sample_weight=s)
    expect = divcore.binary_cross_entropy(x.numpy(), y.numpy(), sample_weight=s.numpy())
    np.testing.assert_allclose(got.item(), expect, rtol=1e-12)
    f = lambda z: dct.binary_cross_entropy_with_logits(z, y, sample_weight=s)  # noqa: E731
    assert torch.autograd.gradgradcheck(f, (x.clone().requires_grad_(),))


def test_modules_take_per_batch_sample_weights():
    x, y, s, p = make(8)
    assert torch.equal(dct.CrossEntropyLoss(label_smoothing=0.1)(x, y, sample_weight=s),
                       dct.cross_entropy(x, y, label_smoothing=0.1, sample_weight=s))
    assert torch.equal(dct.KLDivergenceLoss()(x, p, s), dct.kl_divergence(x, p, sample_weight=s))
    assert torch.equal(dct.CrossEntropyLoss()(x, y), dct.cross_entropy(x, y))


def test_row_stats_is_an_op_that_compiles_fullgraph():
    import torch._dynamo as dynamo
    x = torch.randn(6, 9, dtype=F64)
    y = torch.randint(0, 9, (6,))
    eager = dct.row_stats(x, y, k=3)
    dynamo.reset()
    compiled = torch.compile(lambda a, b: dct.row_stats(a, b, k=3), fullgraph=True,
                             backend="eager")(x, y)
    for a, b in zip(eager, compiled):
        assert torch.equal(a, b)
    st = dct.row_stats(x)  # no labels, k = 0: those fields are None
    assert st.log_prob is None and st.topk_indices is None and st.topk_log_probs is None
    expect = divcore.row_stats(x.numpy(), y.numpy(), k=3)
    np.testing.assert_array_equal(eager.topk_indices.numpy(), expect.topk_indices)
    np.testing.assert_array_equal(eager.log_prob.numpy(), expect.log_prob)


@pytest.mark.parametrize("case", ["labels-k", "plain", "nd", "one-row"])
def test_row_stats_op_passes_opcheck(case):
    from divcore import _torch_ops as ops
    args = {"labels-k": (torch.randn(5, 7, dtype=F64), torch.randint(0, 7, (5,)), None, 1, 3,
                         1.0),
            "plain": (torch.randn(4, 7), None, None, 1, 0, 2.0),
            "nd": (torch.randn(2, 7, 3), torch.randint(0, 7, (2, 3)), None, 1, 2, 1.0),
            "one-row": (torch.randn(7), torch.tensor(2), None, 0, 2, 1.0)}[case]
    torch.library.opcheck(ops.row_stats_op, args)


def _row_stats_composite(x, y, k, t, where=None, dim=1):
    """The statistics from torch's own operations (autograd's gradients are the oracle)."""
    z = torch.movedim(x, dim, -1) / t
    if where is not None:
        z = z.masked_fill(~torch.movedim(where, dim, -1), float("-inf"))
    lq = torch.log_softmax(z, -1)
    q = lq.exp()
    lse = torch.logsumexp(z, -1)
    h = -(q * torch.where(q > 0, lq, torch.zeros_like(lq))).sum(-1)
    lp = lq.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    idx = torch.topk(lq.detach(), k, -1).indices
    return lse, lp, h, lq.gather(-1, idx)


@pytest.mark.parametrize("shape,dim,masked", [((5, 9), 1, False), ((3, 9, 2), 1, True),
                                              ((9,), 0, False)])
def test_row_stats_gradients_equal_torch_composite(shape, dim, masked):
    """logsumexp, log_prob, entropy and topk_log_probs are differentiable (any order);
    the gradients equal those of torch's own operations."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(shape, dtype=F64, generator=gen, requires_grad=True)
    lead = shape[:dim] + shape[dim + 1:]
    y = torch.randint(0, shape[dim], lead, generator=gen)
    where = None
    if masked:
        where = torch.rand(shape, generator=gen) < 0.8
        where.scatter_(dim, y.unsqueeze(dim), True)
    w = [torch.randn(lead + ((3,) if i == 3 else ()), dtype=F64, generator=gen)
         for i in range(4)]

    def ours(x):
        st = dct.row_stats(x, y, dim=dim, k=3, temperature=1.3, where=where)
        return sum((v * wi).sum() for v, wi in zip(
            (st.logsumexp, st.log_prob, st.entropy, st.topk_log_probs), w))

    def theirs(x):
        return sum((v * wi).sum() for v, wi in zip(
            _row_stats_composite(x, y, 3, 1.3, where, dim), w))

    g = torch.autograd.grad(ours(x), x, create_graph=True)[0]
    want = torch.autograd.grad(theirs(x), x, create_graph=True)[0]
    torch.testing.assert_close(g, want, rtol=1e-12, atol=1e-12)
    v = torch.randn(shape, dtype=F64, generator=gen)
    hv = torch.autograd.grad((g * v).sum(), x)[0]
    hv_want = torch.autograd.grad((want * v).sum(), x)[0]
    torch.testing.assert_close(hv, hv_want, rtol=1e-10, atol=1e-10)
    if not masked:
        assert torch.autograd.gradgradcheck(ours, (x,))


def test_row_stats_gradient_with_torch_func_and_compile():
    x = torch.randn(4, 6, dtype=F64)
    y = torch.randint(0, 6, (4,))

    def nll(x):
        return -dct.row_stats(x, y).log_prob.mean()

    want = torch.func.grad(lambda x: torch.nn.functional.cross_entropy(x, y))(x)
    torch.testing.assert_close(torch.func.grad(nll)(x), want, rtol=1e-12, atol=1e-14)
    xc = x.clone().requires_grad_(True)
    torch.compile(nll, fullgraph=True, backend="eager")(xc).backward()
    torch.testing.assert_close(xc.grad, want, rtol=1e-12, atol=1e-14)
    # per-sample gradients of the selected tokens' log-probabilities (vmap over grad)

    def one(xi, yi):
        return dct.row_stats(xi, yi, dim=0).log_prob

    per_sample = torch.func.vmap(torch.func.grad(one))(x, y)
    loop = torch.stack([torch.autograd.grad(one(xi, y[i]), xi)[0]
                        for i, xi in enumerate(x.clone().requires_grad_(True))])
    torch.testing.assert_close(per_sample, loop, rtol=0, atol=0)
    torch.testing.assert_close(per_sample, torch.softmax(x, 1).neg().scatter_add(
        1, y[:, None], torch.ones(4, 1, dtype=F64)), rtol=1e-12, atol=1e-14)


def test_row_stats_op_opcheck_with_grad():
    from divcore import _torch_ops as ops
    x = torch.randn(5, 7, dtype=F64, requires_grad=True)
    torch.library.opcheck(ops.row_stats_op, (x, torch.randint(0, 7, (5,)), None, 1, 3, 1.0))
