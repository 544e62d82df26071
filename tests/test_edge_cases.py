"""One test per edge case of SPEC §4 (and the design.md choices), on both backends.

Expected values come from closed forms evaluated with `math`, never from divcore.
"""
import math
import warnings

import numpy as np
import pytest

INF = math.inf
NAN = math.nan

FLOATS = ["float32", "float64"]


@pytest.fixture(autouse=True)
def _no_runtime_warnings_fail():
    # numpy may warn inside the API on nan/inf data; the values are what is checked.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _lse(values):
    m = max(values)
    return m + math.log(math.fsum(math.exp(v - m) for v in values))


def arr(values, dtype):
    return np.array(values, dtype=dtype)


def close(a, b, dtype, ulps=8):
    eps = np.finfo(np.float32 if dtype in ("float32", "float16") else np.float64).eps
    return math.isclose(float(a), b, rel_tol=ulps * eps, abs_tol=ulps * eps)


# ------------------------------------------------------------------- 0 · log 0 = 0


@pytest.mark.parametrize("dtype", FLOATS)
def test_zero_target_on_neg_inf_logit_contributes_nothing(dc, dtype):
    x = arr([0.0, -INF, 1.0], dtype)
    p = arr([0.5, 0.0, 0.5], dtype)
    lse = _lse([0.0, 1.0])
    ce = 0.5 * (lse - 0.0) + 0.5 * (lse - 1.0)
    h = math.log(2.0)
    got = dc.cross_entropy(x, p, reduction="none")
    assert close(got, ce, dtype), (got, ce)
    assert close(dc.kl_divergence(x, p, reduction="none"), ce - h, dtype)
    lp = arr([math.log(0.5), -INF, math.log(0.5)], dtype)
    assert close(dc.cross_entropy(x, lp, target_type="log_probs", reduction="none"), ce,
                 dtype)
    assert close(dc.kl_divergence(x, lp, target_type="log_probs", reduction="none"),
                 ce - h, dtype)
    d = dc.decompose(x, p, reduction="none")
    assert close(d.entropy, h, dtype) and close(d.cross_entropy, ce, dtype)
    # entropy of probs / log-probs with a zero entry
    assert close(dc.entropy(p, input_type="probs"), h, dtype)
    assert close(dc.entropy(lp, input_type="log_probs"), h, dtype)
    # entropy of logits with a -inf logit: the class simply has q = 0
    q1 = 1 / (1 + math.e)
    hq = -(q1 * math.log(q1) + (1 - q1) * math.log(1 - q1))
    assert close(dc.entropy(x), hq, dtype)
    # a logits target with the same -inf: p = 0 there
    assert float(dc.kl_divergence(x, x, target_type="logits", reduction="none")) == 0.0


# ------------------------------------------------------------ -inf logits are legal


@pytest.mark.parametrize("dtype", FLOATS)
def test_neg_inf_logits_are_legal(dc, dtype):
    x = arr([[0.0, -INF, -INF], [2.0, -INF, 1.0]], dtype)
    lse = dc.logsumexp(x)
    assert float(lse[0]) == 0.0
    assert close(lse[1], _lse([2.0, 1.0]), dtype)
    ls = dc.log_softmax(x)
    assert ls[0, 0] == 0.0 and np.isneginf(ls[0, 1:]).all() and np.isneginf(ls[1, 1])
    sm = dc.softmax(x)
    assert sm[0, 0] == 1.0 and (sm[0, 1:] == 0).all() and sm[1, 1] == 0
    ce = dc.cross_entropy(x, np.array([0, 0]), reduction="none")
    assert ce[0] == 0.0
    assert close(ce[1], _lse([2.0, 1.0]) - 2.0, dtype)
    assert np.isfinite(dc.entropy(x)).all()


# --------------------------------------------------- target mass on -inf gives +inf


@pytest.mark.parametrize("dtype", FLOATS)
def test_target_mass_on_neg_inf_logit_is_inf(dc, dtype):
    x = arr([0.0, -INF, 1.0], dtype)
    assert dc.cross_entropy(x, 1, reduction="none") == INF
    p = arr([0.25, 0.25, 0.5], dtype)
    assert dc.cross_entropy(x, p, reduction="none") == INF
    assert dc.kl_divergence(x, p, reduction="none") == INF
    assert dc.kl_divergence(x, p) == INF
    d = dc.decompose(x, p, reduction="none")
    assert d.cross_entropy == INF and d.kl_divergence == INF and np.isfinite(d.entropy)
    # same through a mask
    xm = arr([0.0, 5.0, 1.0], dtype)
    where = np.array([True, False, True])
    assert dc.cross_entropy(xm, 1, where=where, reduction="none") == INF
    assert dc.cross_entropy(xm, p, where=where, reduction="none") == INF
    # reverse KL: q > 0 where p == 0 -> inf
    pz = arr([0.0, 0.5, 0.5], dtype)
    assert dc.kl_divergence(arr([0.0, 0.0, 0.0], dtype), pz, reverse=True,
                            reduction="none") == INF
    # a tiny but non-zero target probability on a -inf logit: no epsilon saves it
    pt = np.array([1.0, 1e-300, 0.0])
    assert dc.cross_entropy(np.array([0.0, -INF, 1.0]), pt, reduction="none") == INF


def test_label_smoothing_on_neg_inf_logit_is_inf_but_masked_class_is_not(dc):
    # design.md: smoothing spreads eps/C over the *unmasked* classes; a -inf logit that
    # is not masked receives eps/C and therefore costs +inf; a where-masked class does not.
    x = np.array([1.0, -INF, 0.0])
    assert dc.cross_entropy(x, 0, label_smoothing=0.1, reduction="none") == INF
    where = np.array([True, False, True])
    got = dc.cross_entropy(np.array([1.0, 7.0, 0.0]), 0, label_smoothing=0.1, where=where,
                           reduction="none")
    lse = _lse([1.0, 0.0])
    expected = 0.95 * (lse - 1.0) + 0.05 * (lse - 0.0)
    assert math.isclose(got, expected, rel_tol=1e-14)


# ------------------------------------------------------- row with no finite logit


@pytest.mark.parametrize("dtype", FLOATS)
def test_row_without_finite_logit(dc, dtype):
    x = arr([[-INF, -INF, -INF], [0.0, 1.0, 2.0]], dtype)
    lse = dc.logsumexp(x)
    assert lse[0] == -INF and np.isfinite(lse[1])
    assert np.isnan(dc.log_softmax(x)[0]).all() and np.isfinite(dc.log_softmax(x)[1]).all()
    assert np.isnan(dc.softmax(x)[0]).all() and np.isfinite(dc.softmax(x)[1]).all()
    ce = dc.cross_entropy(x, np.array([0, 1]), reduction="none")
    assert np.isnan(ce[0]) and np.isfinite(ce[1])
    p = arr([[1 / 3] * 3, [0.2, 0.3, 0.5]], dtype)
    for f in (dc.cross_entropy, dc.kl_divergence):
        r = f(x, p, reduction="none")
        assert np.isnan(r[0]) and np.isfinite(r[1])
    assert np.isnan(dc.entropy(x)[0])
    # all masked by `where` is the same
    w = np.array([[False, False, False], [True, True, True]])
    xf = arr([[1.0, 2.0, 3.0], [0.0, 1.0, 2.0]], dtype)
    assert dc.logsumexp(xf, where=w)[0] == -INF
    assert np.isnan(dc.softmax(xf, where=w)[0]).all()
    assert np.isnan(dc.cross_entropy(xf, np.array([0, 1]), where=w, reduction="none")[0])
    assert np.isnan(dc.entropy(xf, where=w)[0])
    # the mean of a batch holding such a row is nan (the row is not ignored)
    assert np.isnan(dc.cross_entropy(x, np.array([0, 1])))


@pytest.mark.parametrize("dtype", FLOATS)
def test_zero_classes(dc, dtype):
    x = np.zeros((3, 0), dtype=dtype)
    assert (dc.logsumexp(x) == -INF).all() and dc.logsumexp(x).shape == (3,)
    assert dc.softmax(x).shape == (3, 0)
    with pytest.raises(IndexError):
        dc.cross_entropy(x, np.array([0, 0, 0]))


# ------------------------------------------------------------- ignored rows


@pytest.mark.parametrize("dtype", FLOATS)
def test_ignored_rows_are_exactly_zero_whatever_their_logits(dc, dtype):
    x = arr([[NAN, 1.0, 2.0], [-INF, -INF, -INF], [0.0, 1.0, 2.0], [INF, 0.0, 0.0]], dtype)
    y = np.array([-100, -100, 1, -100])
    ce_row = _lse([0.0, 1.0, 2.0]) - 1.0
    none = dc.cross_entropy(x, y, reduction="none")
    assert none[0] == 0.0 and none[1] == 0.0 and none[3] == 0.0
    assert close(none[2], ce_row, dtype)
    assert close(dc.cross_entropy(x, y), ce_row, dtype)
    assert close(dc.cross_entropy(x, y, reduction="sum"), ce_row, dtype)
    w = np.array([0.5, 2.0, 3.0])
    assert close(dc.cross_entropy(x, y, weight=w), ce_row, dtype)
    assert close(dc.cross_entropy(x, y, weight=w, reduction="sum"), 2.0 * ce_row, dtype)
    assert close(dc.cross_entropy(x, y, label_smoothing=0.1, reduction="none")[0], 0.0, dtype)
    assert np.isfinite(dc.cross_entropy(x, y, label_smoothing=0.1))
    d = dc.decompose(x, y, label_smoothing=0.2, reduction="none")
    for v in d:
        assert v[0] == 0.0 and v[1] == 0.0 and v[3] == 0.0
    assert all(np.isfinite(v) for v in dc.decompose(x, y, label_smoothing=0.2))
    # a custom ignore_index, also a valid class number
    assert dc.cross_entropy(x, np.array([2, 2, 1, 2]), ignore_index=2, reduction="none")[0] == 0


# -------------------------------------------------------------- NaN isolated to its row


@pytest.mark.parametrize("dtype", FLOATS)
def test_nan_row_is_isolated(dc, dtype):
    x = arr([[0.0, NAN, 1.0], [0.0, 1.0, 2.0]], dtype)
    lse = dc.logsumexp(x)
    assert np.isnan(lse[0]) and close(lse[1], _lse([0.0, 1.0, 2.0]), dtype)
    assert np.isnan(dc.log_softmax(x)[0]).all() and np.isfinite(dc.log_softmax(x)[1]).all()
    assert np.isnan(dc.softmax(x)[0]).all()
    ce = dc.cross_entropy(x, np.array([0, 0]), reduction="none")
    assert np.isnan(ce[0]) and close(ce[1], _lse([0.0, 1.0, 2.0]), dtype)
    p = arr([[0.2, 0.3, 0.5]] * 2, dtype)
    for f in (dc.cross_entropy, dc.kl_divergence):
        r = f(x, p, reduction="none")
        assert np.isnan(r[0]) and np.isfinite(r[1])
    e = dc.entropy(x)
    assert np.isnan(e[0]) and np.isfinite(e[1])
    # the NaN propagates to sum and mean
    assert np.isnan(dc.cross_entropy(x, np.array([0, 0])))


@pytest.mark.parametrize("dtype", FLOATS)
def test_pos_inf_logit_gives_nan(dc, dtype):
    x = arr([[INF, 0.0, 1.0], [0.0, 1.0, 2.0]], dtype)
    assert np.isnan(dc.logsumexp(x)[0]) and np.isfinite(dc.logsumexp(x)[1])
    assert np.isnan(dc.softmax(x)[0]).all()
    assert np.isnan(dc.log_softmax(x)[0]).all()
    assert np.isnan(dc.cross_entropy(x, np.array([0, 0]), reduction="none")[0])
    assert np.isnan(dc.cross_entropy(x, np.array([1, 0]), reduction="none")[0])
    assert np.isnan(dc.entropy(x)[0])
    p = arr([[0.2, 0.3, 0.5]] * 2, dtype)
    assert np.isnan(dc.kl_divergence(x, p, reduction="none")[0])


# ------------------------------------------------------------------ KL >= 0, KL(p||p) = 0


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_kl_of_identical_logits_is_exactly_zero(dc, rng, dtype):
    x = (rng.standard_normal((50, 13)) * 5).astype(dtype)
    x[3, 4] = -INF
    for T in (1.0, 0.3):
        kl = dc.kl_divergence(x, x, target_type="logits", temperature=T, reduction="none")
        np.testing.assert_array_equal(kl, np.zeros(50))
        klr = dc.kl_divergence(x, x, target_type="logits", temperature=T, reverse=True,
                               reduction="none")
        np.testing.assert_array_equal(klr, np.zeros(50))
    assert dc.kl_divergence(x, x, target_type="logits") == 0.0


@pytest.mark.parametrize("dtype", FLOATS)
def test_kl_is_clamped_at_zero(dc, rng, dtype):
    # p equal to softmax(x) up to rounding: rounding may make CE - H negative; KL is >= 0
    x = rng.standard_normal((200, 7)) * 3
    p = np.exp(x - x.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    x = x.astype(dtype)
    p = p.astype(dtype)
    eps = np.finfo(dtype).eps
    for kw in ({}, {"reverse": True}):
        kl = dc.kl_divergence(x, p, reduction="none", **kw)
        assert (kl >= 0).all()
        assert (kl <= 64 * eps * (1 + np.abs(x).max(-1))).all(), kl.max()
        klp = dc.kl_divergence(x, np.log(p), target_type="log_probs", reduction="none", **kw)
        assert (klp >= 0).all()
    d = dc.decompose(x, p, reduction="none")
    assert (d.kl_divergence >= 0).all()


# --------------------------------------------------------------- CE = H + KL (decompose)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("target_type", ["probs", "log_probs", "logits"])
def test_cross_entropy_is_entropy_plus_kl(dc, rng, dtype, target_type):
    x = (rng.standard_normal((40, 9)) * 3).astype(dtype)
    p = np.exp(rng.standard_normal((40, 9)) * 2)
    p[rng.random((40, 9)) < 0.2] = 0
    p[:, 0] += 1e-3
    p /= p.sum(-1, keepdims=True)
    t = {"probs": p, "log_probs": np.log(np.where(p > 0, p, 1.0)) + np.where(p > 0, 0, -INF),
         "logits": rng.standard_normal((40, 9)) * 3}[target_type].astype(dtype)
    d = dc.decompose(x, t, target_type=target_type, reduction="none")
    eps = np.finfo(dtype).eps
    scale = 1 + np.abs(x).max(-1) + np.log(9)
    assert (np.abs(d.cross_entropy - (d.entropy + d.kl_divergence)) <= 16 * eps * scale).all()
    np.testing.assert_allclose(d.cross_entropy,
                               dc.cross_entropy(x, t, target_type=target_type,
                                                reduction="none"), rtol=4 * eps, atol=0)
    np.testing.assert_allclose(d.kl_divergence,
                               dc.kl_divergence(x, t, target_type=target_type,
                                                reduction="none"), rtol=4 * eps, atol=0)
    # H(p) is the target's own entropy, independent of the logits
    h_direct = {"probs": lambda: dc.entropy(t, input_type="probs"),
                "log_probs": lambda: dc.entropy(t, input_type="log_probs"),
                "logits": lambda: dc.entropy(t)}[target_type]()
    np.testing.assert_allclose(d.entropy, h_direct, rtol=16 * eps, atol=16 * eps)
    # and against the closed form in float64
    t64 = t.astype(np.float64)
    if target_type == "probs":
        pt = t64
    elif target_type == "log_probs":
        pt = np.exp(t64)
    else:
        e = np.exp(t64 - t64.max(-1, keepdims=True))
        pt = e / e.sum(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(pt > 0, pt * np.log(pt), 0).sum(-1)
    np.testing.assert_allclose(d.entropy, h, rtol=1e-5 if dtype == "float32" else 1e-12,
                               atol=1e-6 if dtype == "float32" else 1e-14)
    for red in ("sum", "mean"):
        dr = dc.decompose(x, t, target_type=target_type, reduction=red)
        assert math.isclose(dr.cross_entropy, dr.entropy + dr.kl_divergence,
                            rel_tol=64 * eps, abs_tol=64 * eps)


# ------------------------------------------------------------------------ dtype rules


def test_dtype_rules(dc):
    x16 = np.array([[0.0, -INF, 1.5], [NAN, 0, 0]], dtype=np.float16)
    r = dc.logsumexp(x16)
    assert r.dtype == np.float32
    assert math.isclose(r[0], _lse([0.0, 1.5]), rel_tol=1e-6) and np.isnan(r[1])
    assert dc.softmax(x16).dtype == np.float32
    assert dc.logsumexp(np.array([1, 2, 3])).dtype == np.float64
    assert dc.logsumexp(np.array([True, False])).dtype == np.float64
    assert math.isclose(dc.logsumexp(np.array([True, False])), math.log(1 + math.e),
                        rel_tol=1e-15)
    for bad in (np.array([1 + 1j, 2]), np.array([1.0, 2.0], dtype=object),
                np.array(["a", "b"])):
        with pytest.raises(TypeError):
            dc.logsumexp(bad)
        with pytest.raises(TypeError):
            dc.cross_entropy(bad, 0)


# ----------------------------------------------------- no epsilon clipping, tiny values


def test_no_epsilon_clipping_float64(dc):
    # a very unlikely label: the loss is the full 800 nats, not -log(eps)
    assert math.isclose(dc.cross_entropy(np.array([0.0, -800.0]), 1, reduction="none"),
                        800.0, rel_tol=1e-15)
    # tiny probabilities survive softmax unclipped
    sm = dc.softmax(np.array([0.0, -700.0]))
    assert sm[0] == 1.0 and math.isclose(sm[1], math.exp(-700.0), rel_tol=1e-13)
    ls = dc.log_softmax(np.array([0.0, -700.0]))
    assert ls[1] == -700.0
    # entropy of [1e-300, 1]: -1e-300 log 1e-300
    h = dc.entropy(np.array([1e-300, 1.0]), input_type="probs")
    assert math.isclose(h, -1e-300 * math.log(1e-300), rel_tol=1e-13)
    # a tiny target probability on a finite logit contributes its tiny share
    x = np.array([0.0, -50.0])
    ce = dc.cross_entropy(x, np.array([1.0, 1e-300]), reduction="none")
    lse = math.log1p(math.exp(-50.0))
    assert math.isclose(ce, lse + 1e-300 * (lse + 50.0), rel_tol=1e-14)
    kl = dc.kl_divergence(np.array([0.0, 0.0]), np.array([1.0, 1e-300]), reduction="none")
    assert math.isclose(kl, math.log(2.0) + 1e-300 * (math.log(1e-300) + math.log(2.0)),
                        rel_tol=1e-14)


def test_no_epsilon_clipping_float32(dc):
    assert math.isclose(dc.cross_entropy(np.array([0.0, -90.0], np.float32), 1,
                                         reduction="none"), 90.0, rel_tol=1e-6)
    sm = dc.softmax(np.array([0.0, -80.0], np.float32))
    assert sm.dtype == np.float32
    assert math.isclose(sm[1], math.exp(-80.0), rel_tol=1e-5)
    # tiny losses in float32 keep relative precision: log1p(e^-30)
    ce = dc.cross_entropy(np.array([0.0, -30.0], np.float32), 0, reduction="none")
    assert math.isclose(ce, math.log1p(math.exp(-30.0)), rel_tol=4 * 2**-23)


# ----------------------------------------------------------- error not growing with C


@pytest.mark.parametrize("dtype", FLOATS)
def test_error_does_not_grow_with_c(dc, dtype):
    # Rows alternating two values have closed forms for lse, CE and entropy. A naive
    # running float32 sum of 2^18 terms drifts by ~1e-3 relative; blocked accumulation
    # (float32 within a block, float64 across blocks) stays within a few ulp.
    if dc.__name__ == "divcore.reference":
        sizes = [10, 1000, 2**14]
    else:
        sizes = [10, 1000, 2**14, 2**18]
    a = float(np.asarray(-1.0 / 3.0, dtype=dtype))
    b = float(np.asarray(-1.0 / 3.0 - 0.5, dtype=dtype))
    r = math.exp(b - a)
    for c in sizes:
        # alternate a and b (b < a): the running sum of exp(b - a) terms is what is stressed
        x = np.empty(c, dtype=dtype)
        x[0::2] = a
        x[1::2] = b
        exact = a + math.log(c / 2 * (1 + r))
        got = dc.logsumexp(x)
        sp = float(np.spacing(np.asarray(abs(exact), dtype=dtype)))
        assert abs(float(got) - exact) <= 4 * sp, (c, float(got), exact)
        # CE of label 0 (an `a` class): lse - a
        ce_exact = exact - a
        ce = dc.cross_entropy(x, 0, reduction="none")
        sp = float(np.spacing(np.asarray(ce_exact, dtype=dtype)))
        assert abs(float(ce) - ce_exact) <= 4 * sp, (c, float(ce), ce_exact)
        # entropy: lse - E_q[x]
        h_exact = exact - (a + b * r) / (1 + r)
        h = dc.entropy(x)
        sp = float(np.spacing(np.asarray(h_exact, dtype=dtype)))
        assert abs(float(h) - h_exact) <= 8 * sp, (c, float(h), h_exact)


# --------------------------------------------------- floating-point environment unchanged


def test_no_flush_to_zero_side_effect(dc, rng):
    x = rng.standard_normal((8, 300)).astype(np.float32)
    dc.logsumexp(x)
    dc.softmax(x)
    dc.cross_entropy(x, np.zeros(8, np.int64))
    dc.kl_divergence(x.astype(np.float64), x.astype(np.float64), target_type="logits")
    tiny32 = np.array([1e-40], dtype=np.float32)
    assert (tiny32 * np.float32(0.5))[0] != 0
    tiny64 = np.array([1e-310])
    assert (tiny64 * 0.5)[0] != 0
    assert (np.array([2.2250738585072014e-308]) / 4)[0] != 0


def test_zero_weight_times_inf_is_nan_like_torch(dc):
    # design.md: without smoothing ce = w_y * (lse - x_y) in plain arithmetic
    x = np.array([[0.0, -INF], [0.0, 1.0]])
    got = dc.cross_entropy(x, np.array([1, 0]), weight=np.array([1.0, 0.0]), reduction="none")
    assert np.isnan(got[0])
