"""The public API of both backends against an independent float64 oracle (tests/_helpers.py).

api.py is shared by the compiled and the reference backend, so the compiled-vs-reference
tests cannot see a mistake in argument handling, reductions, axes, dtypes or shapes; these
tests can. The oracle is plain numpy + math.fsum written from SPEC §3/§4 and design.md.
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _helpers import (
    assert_allclose_nan,
    compute_dtype,
    make_case,
    oracle,
)


def _tol(case):
    cd = compute_dtype(case.dtype)
    if case.fname == "entropy" and case.kwargs.get("input_type", "logits") != "logits":
        cd = compute_dtype(case.args[0].dtype)
    if cd == np.float32:
        rtol, atol = 1e-5, 1e-5 * case.scale
    else:
        rtol, atol = 1e-10, 1e-11 * case.scale
    if case.fname == "softmax":
        return rtol * case.scale, 1e-300
    if case.kwargs.get("reduction") == "sum":
        atol *= max(case.nrows, 1)
    return rtol, atol


def check_against_oracle(dc, case):
    f = getattr(dc, case.fname)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = f(*case.args, **case.kwargs)
        expected = oracle(case.fname, case.args, case.kwargs)
    rtol, atol = _tol(case)
    if case.fname == "decompose":
        assert isinstance(got, tuple) and len(got) == 3
        assert got._fields == ("cross_entropy", "entropy", "kl_divergence")
        pairs = list(zip(got._fields, got, expected))
    else:
        pairs = [(case.fname, got, expected)]
    for name, g, e in pairs:
        if np.ndim(e) == 0:
            assert isinstance(g, np.generic) and not isinstance(g, np.ndarray), (
                f"{case} [{name}]: expected a numpy scalar, got {type(g)}")
        else:
            assert isinstance(g, np.ndarray), f"{case} [{name}]: got {type(g)}"
        assert np.asarray(g).dtype == np.asarray(e).dtype, (
            f"{case} [{name}]: dtype {np.asarray(g).dtype} != {np.asarray(e).dtype}")
        assert np.shape(g) == np.shape(e), f"{case} [{name}]: {np.shape(g)} != {np.shape(e)}"
        assert_allclose_nan(g, e, rtol, atol, msg=f"{case} [{name}]")


@st.composite
def oracle_cases(draw, funcs):
    fname = draw(st.sampled_from(funcs))
    dtype = draw(st.sampled_from(["float32", "float64", "float64"]))
    ndim = draw(st.integers(1, 3))
    c = draw(st.integers(1, 7))
    lead = draw(st.lists(st.integers(0, 3), min_size=ndim - 1, max_size=ndim - 1))
    pos = draw(st.integers(0, ndim - 1))
    shape = list(lead)
    shape.insert(pos, c)
    axis = draw(st.sampled_from([pos, pos - ndim]))
    ttype = draw(st.sampled_from(["labels", "probs", "log_probs", "logits"]))
    smoothing = draw(st.sampled_from([None, 0.0, 0.2, 1.0]))
    p_neginf = draw(st.sampled_from([0.0, 0.0, 0.15]))
    if smoothing:
        p_neginf = 0.0  # smoothing mass on a (non-masked) -inf logit: see test_edge_cases
    options = dict(
        scale=draw(st.sampled_from([1.0, 3.0])),
        offset=draw(st.sampled_from([0.0, -20.0, 30.0])),
        p_neginf=p_neginf,
        p_nan=0.0 if fname == "decompose" else draw(st.sampled_from([0.0, 0.0, 0.1])),
        where=draw(st.sampled_from(["none", "full", "class"])),
        ttype=ttype,
        auto=draw(st.booleans()),
        ignore_index=draw(st.sampled_from(["default", -1, 1])),
        p_ignore=draw(st.sampled_from([0.0, 0.4])),
        weight=draw(st.booleans()),
        smoothing=smoothing,
        temperature=draw(st.sampled_from([None, 0.5, 2.0])),
        reduction=draw(st.sampled_from([None, "none", "sum", "mean"])),
        base=draw(st.sampled_from([None, 2, 10])),
        reverse=draw(st.sampled_from([None, True])),
        keepdims=draw(st.sampled_from([None, True])),
        input_type=draw(st.sampled_from(["logits", "probs", "log_probs"])),
        zero_masked_target=draw(st.booleans()),
        layout=draw(st.sampled_from(["C", "F", "strided"])),
    )
    if fname == "entropy" and options["input_type"] != "logits":
        options["temperature"] = None
    seed = draw(st.integers(0, 2**32 - 1))
    return make_case(fname, dtype, shape, axis, seed, **options)


@settings(max_examples=50)
@given(oracle_cases(("logsumexp", "log_softmax", "softmax", "entropy")))
def test_lse_family_and_entropy_vs_oracle(dc, case):
    check_against_oracle(dc, case)


@settings(max_examples=60)
@given(oracle_cases(("cross_entropy", "kl_divergence", "decompose")))
def test_losses_vs_oracle(dc, case):
    check_against_oracle(dc, case)


# ---------------------------------------------------------- targeted semantics checks


def _np_log_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def test_reduction_shapes_and_types(dc, rng):
    x = rng.standard_normal((2, 3, 5))
    y = rng.integers(0, 5, size=(2, 3))
    none = dc.cross_entropy(x, y, reduction="none")
    assert isinstance(none, np.ndarray) and none.shape == (2, 3) and none.dtype == np.float64
    for red in ("sum", "mean"):
        v = dc.cross_entropy(x, y, reduction=red)
        assert isinstance(v, np.float64) and np.ndim(v) == 0
    v32 = dc.cross_entropy(x.astype(np.float32), y, reduction="mean")
    assert isinstance(v32, np.float32)
    # 1-D logits: a numpy scalar even with reduction="none"
    one = dc.cross_entropy(x[0, 0], int(y[0, 0]), reduction="none")
    assert isinstance(one, np.float64) and not isinstance(one, np.ndarray)
    assert np.asarray(one).shape == ()
    # class axis in the middle
    nm = dc.cross_entropy(np.moveaxis(x, -1, 1), y, axis=1, reduction="none")
    np.testing.assert_allclose(nm, none, rtol=1e-14)
    # logsumexp shapes
    assert dc.logsumexp(x, axis=1).shape == (2, 5)
    assert dc.logsumexp(x, axis=1, keepdims=True).shape == (2, 1, 5)
    assert isinstance(dc.logsumexp(x[0, 0]), np.float64)
    assert dc.softmax(x, axis=0).shape == x.shape
    assert dc.entropy(x).shape == (2, 3)  # entropy defaults to reduction="none"


def test_mean_rules(dc, rng):
    x = rng.standard_normal((6, 4))
    y = np.array([0, 3, -100, 2, 1, -100])
    w = np.array([0.5, 2.0, 1.5, 0.25])
    ls = _np_log_softmax(x)
    nll = np.array([-ls[i, y[i]] if y[i] != -100 else 0.0 for i in range(6)])
    keep = y != -100
    # unweighted: mean over non-ignored rows
    assert math.isclose(dc.cross_entropy(x, y), nll[keep].mean(), rel_tol=1e-13)
    assert math.isclose(dc.cross_entropy(x, y, reduction="sum"), nll.sum(), rel_tol=1e-13)
    # weighted: sum(w_y l) / sum(w_y)
    wy = np.where(keep, w[np.where(keep, y, 0)], 0.0)
    expected = (wy * nll).sum() / wy.sum()
    assert math.isclose(dc.cross_entropy(x, y, weight=w), expected, rel_tol=1e-13)
    none = dc.cross_entropy(x, y, weight=w, reduction="none")
    np.testing.assert_allclose(none, wy * nll, rtol=1e-13)
    # soft targets: mean over all rows
    p = np.exp(rng.standard_normal((6, 4)))
    p /= p.sum(-1, keepdims=True)
    ce_rows = -(p * ls).sum(-1)
    assert math.isclose(dc.cross_entropy(x, p), ce_rows.mean(), rel_tol=1e-13)
    # empty batch and fully ignored batch: mean is nan, sum is 0
    assert math.isnan(dc.cross_entropy(np.zeros((0, 4)), np.zeros(0, dtype=np.int64)))
    assert dc.cross_entropy(np.zeros((0, 4)), np.zeros(0, np.int64), reduction="sum") == 0
    assert math.isnan(dc.cross_entropy(x[:2], np.array([-100, -100])))
    assert math.isnan(dc.cross_entropy(x[:2], np.array([-100, -100]), weight=w))
    assert math.isnan(dc.kl_divergence(np.zeros((0, 4)), np.zeros((0, 4))))
    assert math.isnan(dc.entropy(np.zeros((0, 4)), reduction="mean"))


def test_base_conversion(dc, rng):
    x = rng.standard_normal((4, 5))
    y = rng.integers(0, 5, 4)
    nats = dc.cross_entropy(x, y, reduction="none")
    for base in (2, 10, 0.5, 7.3):
        got = dc.cross_entropy(x, y, reduction="none", base=base)
        np.testing.assert_allclose(got, nats / math.log(base), rtol=1e-13)
    e = dc.cross_entropy(x, y, base=math.e)
    assert math.isclose(e, float(nats.mean()), rel_tol=1e-14)
    np.testing.assert_allclose(dc.entropy(x, base=2), dc.entropy(x) / math.log(2), rtol=1e-13)
    p = dc.softmax(rng.standard_normal((4, 5)))
    np.testing.assert_allclose(dc.kl_divergence(x, p, reduction="none", base=2),
                               dc.kl_divergence(x, p, reduction="none") / math.log(2),
                               rtol=1e-13)


def test_temperature_semantics(dc, rng):
    x = rng.standard_normal((3, 6)) * 4
    t = rng.standard_normal((3, 6)) * 4
    T = 2.5
    np.testing.assert_allclose(dc.log_softmax(x, temperature=T), _np_log_softmax(x / T),
                               rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(dc.softmax(x, temperature=T), np.exp(_np_log_softmax(x / T)),
                               rtol=1e-13, atol=1e-300)
    # temperature divides both the logits and a logits target, no T^2 factor
    p = np.exp(_np_log_softmax(t / T))
    kl = (p * (_np_log_softmax(t / T) - _np_log_softmax(x / T))).sum(-1)
    got = dc.kl_divergence(x, t, target_type="logits", temperature=T, reduction="none")
    np.testing.assert_allclose(got, kl, rtol=1e-11, atol=1e-14)
    q = np.exp(_np_log_softmax(x / T))
    np.testing.assert_allclose(dc.entropy(x, temperature=T),
                               -(q * _np_log_softmax(x / T)).sum(-1), rtol=1e-12)
    y = np.array([1, 0, 5])
    np.testing.assert_allclose(dc.cross_entropy(x, y, temperature=T, reduction="none"),
                               -_np_log_softmax(x / T)[np.arange(3), y], rtol=1e-13)


def test_where_equals_neg_inf(dc, rng):
    x = rng.standard_normal((4, 6))
    where = rng.random((4, 6)) < 0.7
    where[:, 0] = True
    xi = np.where(where, x, -np.inf)
    np.testing.assert_array_equal(dc.logsumexp(x, where=where), dc.logsumexp(xi))
    np.testing.assert_array_equal(dc.log_softmax(x, where=where), dc.log_softmax(xi))
    np.testing.assert_array_equal(dc.softmax(x, where=where), dc.softmax(xi))
    np.testing.assert_array_equal(dc.entropy(x, where=where), dc.entropy(xi))
    y = np.zeros(4, dtype=np.int64)
    np.testing.assert_array_equal(dc.cross_entropy(x, y, where=where, reduction="none"),
                                  dc.cross_entropy(xi, y, reduction="none"))
    p = dc.softmax(rng.standard_normal((4, 6)), where=where)
    assert np.all(p[~where] == 0)
    np.testing.assert_array_equal(dc.kl_divergence(x, p, where=where, reduction="none"),
                                  dc.kl_divergence(xi, p, reduction="none"))
    # a logits target is masked too: masked entries of the target do not matter
    t = rng.standard_normal((4, 6))
    t2 = np.where(where, t, 1e3)
    np.testing.assert_array_equal(
        dc.kl_divergence(x, t, target_type="logits", where=where, reduction="none"),
        dc.kl_divergence(x, t2, target_type="logits", where=where, reduction="none"))
    # NaN under the mask is irrelevant
    xn = np.where(where, x, np.nan)
    np.testing.assert_array_equal(dc.logsumexp(xn, where=where), dc.logsumexp(xi))
    # a broadcast mask (one per class)
    wc = np.array([True, False, True, True, False, True])
    np.testing.assert_array_equal(dc.logsumexp(x, where=wc),
                                  dc.logsumexp(np.where(wc, x, -np.inf)))


def test_target_type_auto(dc, rng):
    x = rng.standard_normal((5, 4))
    y = rng.integers(0, 4, 5)
    p = dc.softmax(rng.standard_normal((5, 4)))
    assert dc.cross_entropy(x, y) == dc.cross_entropy(x, y, target_type="labels")
    assert dc.cross_entropy(x, p) == dc.cross_entropy(x, p, target_type="probs")
    # auto never guesses logits: float target is probs (so invalid probs raise)
    with pytest.raises(ValueError, match="target"):
        dc.cross_entropy(x, rng.standard_normal((5, 4)) * 3)


def test_log_probs_equals_probs(dc, rng):
    x = rng.standard_normal((5, 4))
    p = dc.softmax(rng.standard_normal((5, 4)))
    for f in (dc.cross_entropy, dc.kl_divergence):
        a = f(x, p, target_type="probs", reduction="none")
        b = f(x, np.log(p), target_type="log_probs", reduction="none")
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    c = dc.kl_divergence(x, np.log(p) + 7.0, target_type="logits", reduction="none")
    np.testing.assert_allclose(c, dc.kl_divergence(x, p, reduction="none"), rtol=1e-12,
                               atol=1e-15)


def test_reverse_kl(dc, rng):
    x = rng.standard_normal((5, 4))
    p = dc.softmax(rng.standard_normal((5, 4)))
    q = np.exp(_np_log_softmax(x))
    expected = (q * (np.log(q) - np.log(p))).sum(-1)
    got = dc.kl_divergence(x, p, reverse=True, reduction="none")
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    # reverse is KL(q || p): swapping roles with logits targets
    t = rng.standard_normal((5, 4))
    a = dc.kl_divergence(x, t, target_type="logits", reverse=True, reduction="none")
    b = dc.kl_divergence(t, x, target_type="logits", reduction="none")
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_label_smoothing_matches_soft_target(dc, rng):
    c = 5
    x = rng.standard_normal((6, c))
    y = rng.integers(0, c, 6)
    eps = 0.15
    p = np.full((6, c), eps / c)
    p[np.arange(6), y] += 1 - eps
    a = dc.cross_entropy(x, y, label_smoothing=eps, reduction="none")
    b = dc.cross_entropy(x, p, reduction="none")
    np.testing.assert_allclose(a, b, rtol=1e-13)
    # probs target smoothing: (1-eps) p + eps/C
    q = dc.softmax(rng.standard_normal((6, c)))
    a = dc.cross_entropy(x, q, label_smoothing=eps, reduction="none")
    b = dc.cross_entropy(x, (1 - eps) * q + eps / c, reduction="none")
    np.testing.assert_allclose(a, b, rtol=1e-13)
    # smoothing spreads over the unmasked classes only
    where = np.array([True, True, False, True, False])
    ym = np.array([0, 1, 3, 0, 1, 3])
    pm = np.where(where, eps / where.sum(), 0.0) + np.eye(c)[ym] * (1 - eps)
    a = dc.cross_entropy(x, ym, label_smoothing=eps, where=where, reduction="none")
    b = dc.cross_entropy(x, pm, where=where, reduction="none")
    np.testing.assert_allclose(a, b, rtol=1e-13)


def test_decompose_labels(dc, rng):
    x = rng.standard_normal((5, 4))
    y = np.array([0, 1, -100, 3, 2])
    d = dc.decompose(x, y, reduction="none")
    np.testing.assert_array_equal(d.entropy, np.zeros(5))
    np.testing.assert_array_equal(d.kl_divergence, d.cross_entropy)
    np.testing.assert_array_equal(d.cross_entropy, dc.cross_entropy(x, y, reduction="none"))
    ds = dc.decompose(x, y, label_smoothing=0.1)
    assert math.isclose(ds.cross_entropy, ds.entropy + ds.kl_divergence, rel_tol=1e-13)
    h = -(0.9 + 0.025) * math.log(0.9 + 0.025) - 3 * 0.025 * math.log(0.025)
    assert math.isclose(ds.entropy, h, rel_tol=1e-13)


def test_int_and_bool_logits_are_float64(dc):
    xi = np.array([[1, 2, 3], [0, 0, 5]], dtype=np.int32)
    got = dc.logsumexp(xi)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, np.log(np.exp(xi.astype(float)).sum(-1)), rtol=1e-15)
    xb = np.array([[True, False, False]])
    got = dc.log_softmax(xb)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, _np_log_softmax(xb.astype(float)), rtol=1e-15)
    assert dc.cross_entropy(xi, np.array([2, 2])).dtype == np.float64


@pytest.mark.parametrize("dtype,out", [("float16", "float32"), ("float32", "float32"),
                                       ("float64", "float64"), ("int64", "float64"),
                                       ("uint8", "float64"), ("bool", "float64")])
def test_output_dtype_rules(dc, dtype, out):
    x = np.array([[1, 0, 1], [0, 1, 1]], dtype=dtype)
    p = np.array([[0.5, 0.25, 0.25], [0.0, 0.5, 0.5]])
    y = np.array([0, 2])
    assert dc.logsumexp(x).dtype == out
    assert dc.logsumexp(x[0]).dtype == out
    assert dc.log_softmax(x).dtype == out
    assert dc.softmax(x).dtype == out
    assert dc.entropy(x).dtype == out
    for red in ("none", "sum", "mean"):
        assert np.asarray(dc.cross_entropy(x, y, reduction=red)).dtype == out
        assert np.asarray(dc.cross_entropy(x, p, reduction=red)).dtype == out
        assert np.asarray(dc.kl_divergence(x, p, reduction=red)).dtype == out
        d = dc.decompose(x, y, reduction=red)
        assert all(np.asarray(v).dtype == out for v in d)
