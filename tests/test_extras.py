"""sample_weight, z_loss and softcap (SPEC §7) against independent float64 numpy oracles:
values, reductions, and gradients by central finite differences, on both backends."""
import numpy as np
import pytest

import divcore
import divcore.reference as ref

BACKENDS = [pytest.param(divcore, id="compiled"), pytest.param(ref, id="reference")]


def log_softmax64(x, t=1.0, cap=None):
    z = np.asarray(x, dtype=np.float64)
    if cap is not None:
        z = np.where(np.isneginf(z), -np.inf, cap * np.tanh(z / cap))
    z = z / t
    m = np.max(z, axis=-1, keepdims=True)
    return z - m - np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))


def lse64(x, t=1.0, cap=None):
    z = np.asarray(x, dtype=np.float64)
    if cap is not None:
        z = cap * np.tanh(z / cap)
    z = z / t
    m = np.max(z, axis=-1)
    return m + np.log(np.sum(np.exp(z - m[:, None]), axis=-1))


def ce_rows(x, y, t=1.0, cap=None, z_loss=0.0, weight=None, ignore=-100):
    ls = log_softmax64(x, t, cap)
    rows = np.arange(len(y))
    keep = y != ignore
    yy = np.where(keep, y, 0)
    w = np.ones(x.shape[-1]) if weight is None else np.asarray(weight, np.float64)
    l = -ls[rows, yy] + z_loss * lse64(x, t, cap) ** 2
    rw = np.where(keep, w[yy], 0.0)
    return np.where(keep, rw * l, 0.0), rw


def reduce(values, rw, s, reduction):
    if reduction == "none":
        return s * values
    if reduction == "sum":
        return np.sum(s * values)
    return np.sum(s * values) / np.sum(s * rw)


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    x = rng.normal(scale=4.0, size=(9, 6))
    y = rng.integers(0, 6, size=9)
    y[3] = -100
    s = rng.uniform(0.0, 2.0, size=9)
    s[5] = 0.0
    p = rng.dirichlet(np.ones(6), size=9)
    return x, y, s, p


@pytest.mark.parametrize("dc", BACKENDS)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_sample_weight_labels_with_class_weights(dc, data, reduction):
    x, y, s, _ = data
    w = np.linspace(0.5, 2.0, 6)
    values, rw = ce_rows(x, y, weight=w)
    got = dc.cross_entropy(x, y, weight=w, sample_weight=s, reduction=reduction)
    np.testing.assert_allclose(got, reduce(values, rw, s, reduction), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dc", BACKENDS)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_sample_weight_soft_targets(dc, data, reduction):
    x, _, s, p = data
    ls = log_softmax64(x)
    ce = -np.sum(p * ls, axis=-1)
    h = -np.sum(p * np.log(p), axis=-1)
    np.testing.assert_allclose(dc.cross_entropy(x, p, sample_weight=s, reduction=reduction),
                               reduce(ce, 1.0, s, reduction), rtol=1e-12)
    np.testing.assert_allclose(dc.kl_divergence(x, p, sample_weight=s, reduction=reduction),
                               reduce(ce - h, 1.0, s, reduction), rtol=1e-9, atol=1e-15)
    d = dc.decompose(x, p, sample_weight=s, reduction=reduction)
    np.testing.assert_allclose(d.entropy, reduce(h, 1.0, s, reduction), rtol=1e-12)
    js = dc.js_divergence(x, p, sample_weight=s, reduction=reduction)
    plain = dc.js_divergence(x, p, reduction="none")
    np.testing.assert_allclose(js, reduce(plain, 1.0, s, reduction), rtol=1e-12)


@pytest.mark.parametrize("dc", BACKENDS)
def test_sample_weight_zero_leaves_a_row_out_even_when_nan(dc, data):
    x, y, s, _ = data
    x = x.copy()
    x[5, 2] = np.nan  # s[5] == 0
    got = dc.cross_entropy(x, y, sample_weight=s)
    values, rw = ce_rows(np.delete(x, 5, 0), np.delete(y, 5), weight=None)
    expect = reduce(values, rw, np.delete(s, 5), "mean")
    assert np.isclose(got, expect, rtol=1e-12)
    loss, grad = dc.cross_entropy_and_grad(x, y, sample_weight=s)
    assert np.isclose(loss, expect, rtol=1e-12)
    assert np.all(grad[5] == 0) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("dc", BACKENDS)
def test_sample_weight_broadcasts_over_leading_axes(dc):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 5))
    y = rng.integers(0, 5, size=(2, 3))
    s = np.array([[1.0], [3.0]])  # per first-axis entry
    full = np.broadcast_to(s, (2, 3)).reshape(-1)
    values, rw = ce_rows(x.reshape(6, 5), y.reshape(6))
    np.testing.assert_allclose(dc.cross_entropy(x, y, sample_weight=s),
                               reduce(values, rw, full, "mean"), rtol=1e-12)


@pytest.mark.parametrize("dc", BACKENDS)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("t", [1.0, 2.5])
def test_z_loss_value(dc, data, reduction, t):
    x, y, s, _ = data
    values, rw = ce_rows(x, y, t=t, z_loss=1e-2)
    got = dc.cross_entropy(x, y, z_loss=1e-2, temperature=t, reduction=reduction)
    np.testing.assert_allclose(got, reduce(values, rw, 1.0, reduction), rtol=1e-12)


@pytest.mark.parametrize("dc", BACKENDS)
@pytest.mark.parametrize("cap", [1.5, 30.0])
def test_softcap_value_every_function(dc, data, cap):
    x, y, _, p = data
    values, rw = ce_rows(x, y, cap=cap)
    np.testing.assert_allclose(dc.cross_entropy(x, y, softcap=cap), reduce(values, rw, 1.0, "mean"),
                               rtol=1e-12)
    ls = log_softmax64(x, cap=cap)
    np.testing.assert_allclose(dc.log_softmax(x, softcap=cap), ls, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dc.softmax(x, softcap=cap), np.exp(ls), rtol=1e-12, atol=1e-15)
    h = -np.sum(np.exp(ls) * ls, axis=-1)
    np.testing.assert_allclose(dc.entropy(x, softcap=cap), h, rtol=1e-12)
    kl = np.sum(p * (np.log(p) - ls), axis=-1)
    np.testing.assert_allclose(dc.kl_divergence(x, p, softcap=cap, reduction="none"), kl,
                               rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("dc", BACKENDS)
def test_softcap_keeps_masked_classes_masked(dc):
    x = np.array([[1.0, -np.inf, 3.0]])
    got = dc.softmax(x, softcap=2.0)
    assert got[0, 1] == 0.0
    loss, grad = dc.cross_entropy_and_grad(x, [0], softcap=2.0)
    assert np.isfinite(loss) and grad[0, 1] == 0.0


def numeric_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        g[idx] = (f(up) - f(down)) / (2 * h)
    return g


@pytest.mark.parametrize("dc", BACKENDS)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("target", ["labels", "probs"])
def test_gradients_of_every_extra_by_finite_differences(dc, data, reduction, target):
    x, y, s, p = data
    tgt = y if target == "labels" else p
    kw = dict(sample_weight=s, softcap=3.0, temperature=1.7, reduction=reduction)
    if target == "labels":
        kw["z_loss"] = 0.05
        kw["weight"] = np.linspace(0.5, 2.0, 6)
    loss, grad = dc.cross_entropy_and_grad(x, tgt, **kw)
    assert np.isclose(loss, dc.cross_entropy(x, tgt, **kw), rtol=1e-12)
    num = numeric_grad(lambda z: float(dc.cross_entropy(z, tgt, **kw)), x)
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-8)
    kw.pop("z_loss", None), kw.pop("weight", None)
    if target == "probs":
        loss, grad = dc.kl_divergence_and_grad(x, tgt, **kw)
        num = numeric_grad(lambda z: float(dc.kl_divergence(z, tgt, **kw)), x)
        np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("dc", BACKENDS)
def test_per_row_gradients_with_reduction_none(dc, data):
    x, y, s, _ = data
    _, grad = dc.cross_entropy_and_grad(x, y, sample_weight=s, z_loss=0.01, reduction="none")
    num = numeric_grad(lambda z: float(np.sum(dc.cross_entropy(z, y, sample_weight=s,
                                                                 z_loss=0.01,
                                                                 reduction="none"))), x)
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-8)


def test_compiled_equals_reference_in_float32(data):
    x, y, s, p = data
    x32 = x.astype(np.float32)
    for fn, tgt, kw in [("cross_entropy", y, dict(sample_weight=s, z_loss=1e-3, softcap=5.0)),
                        ("kl_divergence", p.astype(np.float32), dict(sample_weight=s, softcap=5.0)),
                        ("js_divergence", p.astype(np.float32), dict(sample_weight=s))]:
        a = getattr(divcore, fn)(x32, tgt, **kw)
        b = getattr(ref, fn)(x32, tgt, **kw)
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-5)


@pytest.mark.parametrize("kw, error, words", [
    (dict(sample_weight=[1.0, -1.0, 1.0]), ValueError, "row 1"),
    (dict(sample_weight=[1.0, np.nan, 1.0]), ValueError, "row 1"),
    (dict(sample_weight=[1.0, 2.0]), ValueError, "broadcast"),
    (dict(sample_weight=["a", "b", "c"]), TypeError, "sample_weight"),
    (dict(z_loss=-1.0), ValueError, "z_loss"),
    (dict(z_loss="big"), TypeError, "z_loss"),
    (dict(softcap=0.0), ValueError, "softcap"),
    (dict(softcap=np.inf), ValueError, "softcap"),
    (dict(tail="drop"), ValueError, "TopK"),
    (dict(tail="bogus"), ValueError, "tail"),
])
@pytest.mark.parametrize("dc", BACKENDS)
def test_bad_keywords_name_the_argument(dc, kw, error, words):
    x = np.zeros((3, 4))
    with pytest.raises(error, match=words):
        dc.cross_entropy(x, [0, 1, 2], **kw)


def test_plain_calls_are_unchanged_by_default_extras(data):
    """Writing the defaults out gives the same bits as leaving them out."""
    x, y, _, p = data
    for fn, tgt in [("cross_entropy", y), ("cross_entropy", p), ("kl_divergence", p)]:
        f = getattr(divcore, fn)
        assert f(x, tgt) == f(x, tgt, tail="bucket", sample_weight=None, softcap=None)
    assert divcore.cross_entropy(x, y) == divcore.cross_entropy(x, y, z_loss=0.0)


@pytest.mark.parametrize("dc", BACKENDS)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_bce_sample_weight(dc, reduction):
    rng = np.random.default_rng(4)
    x = rng.normal(scale=3, size=(5, 3))
    y = rng.uniform(size=(5, 3))
    s = rng.uniform(0, 2, size=(5, 1))
    s[2] = 0
    x[2, 1] = np.nan  # left out by its weight 0
    w = np.array([1.0, 0.5, 2.0])
    with np.errstate(invalid="ignore"):  # the NaN of the left-out element
        l = w * (y * np.logaddexp(0, -x) + (1 - y) * np.logaddexp(0, x))
    sb = np.broadcast_to(s, x.shape)
    vals = np.where(sb != 0, sb * l, 0.0)
    expect = {"none": vals, "sum": vals.sum(), "mean": vals.sum() / sb.sum()}[reduction]
    got = dc.binary_cross_entropy(x, y, weight=w, sample_weight=s, reduction=reduction)
    np.testing.assert_allclose(got, expect, rtol=1e-12)
    with pytest.raises(ValueError, match="sample_weight"):
        dc.binary_cross_entropy(x, y, sample_weight=-s)
