"""Parity with torch.nn.functional (float64, CPU) where the semantics coincide."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional


def T(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _torch_smoothing_mean_over_kept_rows():
    """True if this torch averages the label-smoothing term over non-ignored rows only.

    Older torch versions averaged the smoothing term of an unweighted loss over *all*
    rows (ignored ones included) while the NLL term was averaged over non-ignored rows;
    divcore (SPEC §3) averages the whole per-row loss over non-ignored rows. Newer torch
    divides by the number of non-ignored rows, like divcore. With a class weight both
    divide by sum(w_y) over non-ignored rows."""
    x = torch.zeros(2, 3, dtype=torch.float64)
    y = torch.tensor([0, -100])
    mean = F.cross_entropy(x, y, label_smoothing=0.5).item()
    none = F.cross_entropy(x, y, label_smoothing=0.5, reduction="none")
    return np.isclose(mean, none.sum().item() / 1)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.7])
@pytest.mark.parametrize("shape", [(8, 5), (3, 5, 4)])  # class axis 1 for torch
def test_cross_entropy_labels(dc, rng, reduction, use_weight, ignore, smoothing, shape):
    if (ignore and smoothing and not use_weight and reduction == "mean"
            and not _torch_smoothing_mean_over_kept_rows()):
        pytest.skip("this torch averages the smoothing term over all rows")
    x = rng.standard_normal(shape) * 3
    lead = (shape[0],) + shape[2:]
    y = rng.integers(0, shape[1], lead)
    if ignore:
        y.flat[::3] = -100
    w = rng.uniform(0.2, 2.0, shape[1]) if use_weight else None
    expected = F.cross_entropy(T(x), T(y), weight=None if w is None else T(w),
                               ignore_index=-100, label_smoothing=smoothing,
                               reduction=reduction).numpy()
    got = dc.cross_entropy(x, y, axis=1, weight=w, label_smoothing=smoothing,
                           reduction=reduction)
    assert np.shape(got) == np.shape(expected)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_probs(dc, rng, reduction, use_weight, smoothing):
    x = rng.standard_normal((7, 6)) * 3
    p = np.exp(rng.standard_normal((7, 6)) * 2)
    p[rng.random((7, 6)) < 0.2] = 0
    p[:, 0] += 1e-3
    p /= p.sum(-1, keepdims=True)
    w = rng.uniform(0.2, 2.0, 6) if use_weight else None
    expected = F.cross_entropy(T(x), T(p), weight=None if w is None else T(w),
                               label_smoothing=smoothing, reduction=reduction).numpy()
    got = dc.cross_entropy(x, p, weight=w, label_smoothing=smoothing, reduction=reduction)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_softmax_softmax_logsumexp(dc, rng, dtype):
    x = (rng.standard_normal((4, 7, 9)) * 4).astype(dtype)
    tol = dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)
    for axis in (0, 1, -1):
        xt = T(x.astype(np.float64))
        np.testing.assert_allclose(dc.log_softmax(x, axis=axis),
                                   F.log_softmax(xt, dim=axis).numpy(), **tol)
        np.testing.assert_allclose(dc.softmax(x, axis=axis), F.softmax(xt, dim=axis).numpy(),
                                   **tol)
        np.testing.assert_allclose(dc.logsumexp(x, axis=axis),
                                   torch.logsumexp(xt, dim=axis).numpy(), **tol)


@pytest.mark.parametrize("target", ["probs", "log_probs", "logits"])
def test_kl_div(dc, rng, target):
    n, c = 9, 7
    x = rng.standard_normal((n, c)) * 2
    t = rng.standard_normal((n, c)) * 2
    logp = t - np.log(np.exp(t).sum(-1, keepdims=True))
    xt = T(x)
    lq = F.log_softmax(xt, dim=-1)
    # torch: kl_div(input=log q, target=log p, log_target=True) = sum p (log p - log q)
    total = F.kl_div(lq, T(logp), log_target=True, reduction="sum").item()
    rows = F.kl_div(lq, T(logp), log_target=True, reduction="none").sum(-1).numpy()
    arg = {"probs": np.exp(logp), "log_probs": logp, "logits": t}[target]
    got_mean = dc.kl_divergence(x, arg, target_type=target)
    assert np.isclose(got_mean, total / n, rtol=1e-12)
    got_sum = dc.kl_divergence(x, arg, target_type=target, reduction="sum")
    assert np.isclose(got_sum, total, rtol=1e-12)
    np.testing.assert_allclose(dc.kl_divergence(x, arg, target_type=target, reduction="none"),
                               rows, rtol=1e-11, atol=1e-14)
    # torch's batchmean is divcore's mean
    bm = F.kl_div(lq, T(logp), log_target=True, reduction="batchmean").item()
    assert np.isclose(got_mean, bm, rtol=1e-12)


def test_kl_div_temperature_distillation(dc, rng):
    # the usual distillation loss without the T^2 factor (divcore never applies it)
    x = rng.standard_normal((6, 10)) * 3
    t = rng.standard_normal((6, 10)) * 3
    temp = 4.0
    ref = F.kl_div(F.log_softmax(T(x) / temp, -1), F.log_softmax(T(t) / temp, -1),
                   log_target=True, reduction="batchmean").item()
    got = dc.kl_divergence(x, t, target_type="logits", temperature=temp)
    assert np.isclose(got, ref, rtol=1e-12)


def test_entropy_vs_torch_distributions(dc, rng):
    x = rng.standard_normal((5, 8)) * 3
    ref = torch.distributions.Categorical(logits=T(x)).entropy().numpy()
    np.testing.assert_allclose(dc.entropy(x), ref, rtol=1e-12)
