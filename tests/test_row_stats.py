"""divcore.row_stats (SPEC §7): one read of the logits for the log-sum-exp, the label's
log-probability, the entropy, the argmax and the top-k.

Checked against the library's own single-purpose functions (logsumexp, cross_entropy,
entropy, log_softmax + a stable sort), against float64 numpy and mpmath oracles computed
from the input values, on both backends; edge rows (NaN, +inf, all -inf, masked, C = 0),
layouts and dtypes; the argument rules and their messages.
"""
import math

import numpy as np
import pytest

import divcore
from _helpers import EPS64, ulp_error

# ---------------------------------------------------------------- oracles


def tempered(x, temperature):
    """x / T in the compute dtype, as the kernels compute it."""
    x = np.asarray(x)
    if x.dtype == np.float32:
        return (x.astype(np.float64) / temperature).astype(np.float32)
    return x.astype(np.float64) / temperature


def numpy_oracle(x, labels, k, where=None):
    """Float64 row statistics of the (already tempered) rows x, with masked classes -inf:
    (lse, log_prob, entropy, argmax over kept classes, top-k indices, top-k log-probs)."""
    r = np.asarray(x, dtype=np.float64).copy()
    if where is not None:
        r[~where] = -np.inf
    out = []
    for i, row in enumerate(r):
        m = row.max()
        e = np.exp(row - m)
        s = math.fsum(e.tolist())
        lse = m + math.log(s)
        lq = (row - m) - math.log(s)
        q = np.exp(lq)
        h = math.fsum((q[q > 0] * -lq[q > 0]).tolist())
        order = np.argsort(-row, kind="stable")[:k]
        lp = None if labels is None else lq[labels[i]]
        out.append((lse, lp, h, int(np.argmax(row)), order, lq[order]))
    return out


def assert_close_rows(st, expected, rtol, atol):
    for i, (lse, lp, h, am, idx, tlp) in enumerate(expected):
        np.testing.assert_allclose(st.logsumexp[i], lse, rtol=rtol, atol=atol)
        np.testing.assert_allclose(st.entropy[i], h, rtol=rtol, atol=atol)
        if lp is not None:
            np.testing.assert_allclose(st.log_prob[i], lp, rtol=rtol, atol=atol)
        assert st.argmax[i] == am
        if len(idx):
            np.testing.assert_array_equal(st.topk_indices[i], idx)
            np.testing.assert_allclose(st.topk_log_probs[i], tlp, rtol=rtol, atol=atol)


TOL = {np.float32: (2e-6, 2e-6), np.float64: (1e-13, 1e-13)}


# ---------------------------------------------------------- values and agreement


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [1, 5, 64, 65, 700, 3000])
def test_against_float64_oracle(dc, rng, dtype, c):
    n = 6 if dc is divcore else 3
    x = (rng.standard_normal((n, c)) * 3).astype(dtype)
    y = rng.integers(0, c, n)
    k = min(c, 7)
    st = dc.row_stats(x, y, k=k)
    rtol, atol = TOL[dtype]
    assert_close_rows(st, numpy_oracle(x, y, k), rtol, atol)
    for name in ("logsumexp", "log_prob", "entropy", "topk_log_probs"):
        assert getattr(st, name).dtype == dtype, name
    assert st.argmax.dtype == np.int64 and st.topk_indices.dtype == np.int64
    assert st.topk_indices.shape == (n, k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("temperature", [1.0, 0.7, 3.0])
@pytest.mark.parametrize("masked", [False, True])
def test_agrees_with_the_single_purpose_functions(dc, rng, dtype, temperature, masked):
    n, c, k = 5, 300, 10
    x = (rng.standard_normal((n, c)) * 4).astype(dtype)
    where = rng.random((n, c)) < 0.8 if masked else None
    y = np.array([int(np.argmax(w)) if w is not None else 0
                  for w in (where if masked else [None] * n)])
    st = dc.row_stats(x, y, k=k, temperature=temperature, where=where)
    rtol, atol = TOL[dtype]
    xt = tempered(x, temperature)
    np.testing.assert_allclose(st.logsumexp, dc.logsumexp(xt, where=where), rtol, atol)
    ce = dc.cross_entropy(x, y, temperature=temperature, where=where, reduction="none")
    np.testing.assert_allclose(st.log_prob, -ce, rtol, atol)
    h = dc.entropy(x, temperature=temperature, where=where)
    np.testing.assert_allclose(st.entropy, h, rtol, atol)
    ls = dc.log_softmax(x, temperature=temperature, where=where)
    order = np.argsort(-ls.astype(np.float64), axis=-1, kind="stable")[:, :k]
    np.testing.assert_array_equal(st.topk_indices, order)
    np.testing.assert_allclose(st.topk_log_probs, np.take_along_axis(ls, order, -1), rtol,
                               atol)
    np.testing.assert_array_equal(st.argmax, np.argmax(np.where(where, xt, -np.inf)
                                                       if masked else xt, axis=-1))


def test_compiled_matches_reference(compiled, rng):
    x = rng.standard_normal((40, 90)) * 5
    x[rng.random(x.shape) < 0.1] = -np.inf
    where = rng.random(x.shape) < 0.9
    y = rng.integers(0, 90, 40)
    for dtype in (np.float32, np.float64):
        a = divcore.row_stats(x.astype(dtype), y, k=12, where=where, temperature=1.3)
        b = divcore.reference.row_stats(x.astype(dtype), y, k=12, where=where,
                                        temperature=1.3)
        rtol, atol = TOL[dtype]
        for name in ("logsumexp", "log_prob", "entropy", "topk_log_probs"):
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol, atol,
                                       err_msg=name)
        np.testing.assert_array_equal(a.argmax, b.argmax)
        np.testing.assert_array_equal(a.topk_indices, b.topk_indices)


# ----------------------------------------------------------------- accuracy


@pytest.mark.parametrize("c", [3, 100, 2000])
def test_float64_against_mpmath(dc, rng, c):
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    x = rng.standard_normal((4, c)) * 3 + 2
    y = np.array([int(np.argmax(x[0])), 0, 1, c - 1])
    st = dc.row_stats(x, y, k=3)
    for i in range(4):
        vals = [mp.mpf(float(v)) for v in x[i]]
        lse = mp.log(mp.fsum(mp.exp(v) for v in vals))
        h = mp.fsum(mp.exp(v - lse) * (lse - v) for v in vals)
        assert ulp_error(st.logsumexp[i], lse) <= 4
        assert abs(float(mp.mpf(float(st.log_prob[i])) - (vals[y[i]] - lse))) \
            <= 4 * float(np.spacing(abs(float(vals[y[i]] - lse))))
        assert abs(float(mp.mpf(float(st.entropy[i])) - h)) <= 64 * EPS64 * (float(h) + 3)


def test_tiny_log_prob_keeps_relative_precision(dc):
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    for dtype in (np.float32, np.float64):
        x = np.array([[50.0, 0.0, -3.0], [0.0, 60.0, 1.0]], dtype=dtype)
        st = dc.row_stats(x, [0, 1])
        for i, y in enumerate([0, 1]):
            vals = [mp.mpf(float(v)) for v in x[i]]
            exact = -mp.log1p(mp.fsum(mp.exp(v - vals[y]) for j, v in enumerate(vals)
                                      if j != y))
            assert st.log_prob[i] < 0
            assert abs(float(st.log_prob[i]) / float(exact) - 1) < 1e-5


def test_float32_large_c_entropy_within_f32_ulps(compiled_or_any):
    dc = compiled_or_any
    rng = np.random.default_rng(262144)
    x = (rng.standard_normal((2, 262144)) * 3).astype(np.float32)
    st = dc.row_stats(x, [7, 12345], k=5)
    for i in range(2):
        r = x[i].astype(np.float64)
        m = r.max()
        s = math.fsum(np.exp(r - m).tolist())
        lse = m + math.log(s)
        q = np.exp(r - lse)
        h = math.fsum((q * (lse - r)).tolist())
        sp = float(np.spacing(np.float32(h)))
        assert abs(float(st.entropy[i]) - h) <= 8 * sp
        assert abs(float(st.logsumexp[i]) - lse) <= 4 * float(np.spacing(np.float32(lse)))


def test_float32_peaked_row_entropy(dc):
    # e^(x - M) of the small logits is subnormal in float32: computed again in double
    for gap in (60.0, 90.0, 100.0, 200.0):
        x = np.array([gap, 0.0, 0.0], dtype=np.float32)
        h = dc.row_stats(x).entropy
        exact = float(dc.entropy(x.astype(np.float64)))
        assert h.dtype == np.float32
        if exact > 1e-37:
            assert abs(float(h) / exact - 1) < 1e-5, (gap, float(h), exact)


# ------------------------------------------------------------------ top-k


def test_topk_ties_lower_index_first(dc):
    x = np.array([1.0, 3.0, 3.0, 2.0, 3.0, 1.0])
    st = dc.row_stats(x, k=6)
    assert st.topk_indices.tolist() == [1, 2, 4, 3, 0, 5]
    assert st.argmax == 1
    st = dc.row_stats(np.zeros(2000), k=5)
    assert st.topk_indices.tolist() == [0, 1, 2, 3, 4]


def test_topk_full_sort_and_none(dc, rng):
    x = rng.standard_normal((3, 50))
    st = dc.row_stats(x, k=50)
    np.testing.assert_array_equal(st.topk_indices, np.argsort(-x, axis=-1, kind="stable"))
    st0 = dc.row_stats(x)
    assert st0.topk_indices is None and st0.topk_log_probs is None and st0.log_prob is None


def test_topk_rows_with_few_finite_values(dc):
    x = np.array([[-np.inf, 1.0, -np.inf, 0.0, 5.0]])
    where = np.array([[True, True, True, True, False]])
    st = dc.row_stats(x, k=5, where=where)
    # the kept -inf classes, then the masked one, each in index order
    assert st.topk_indices.tolist() == [[1, 3, 0, 2, 4]]
    assert np.isneginf(st.topk_log_probs[0, 2:]).all()
    assert st.argmax.tolist() == [1]


# ---------------------------------------------------------------- edge rows


def test_edge_rows(dc):
    x = np.array([[0.0, np.nan, 1.0, np.nan],
                  [0.0, np.inf, 1.0, np.inf],
                  [-np.inf] * 4,
                  [3.0, 1.0, 2.0, 0.0]])
    where = np.array([[True] * 4, [True] * 4, [True] * 4, [False] * 4])
    with np.errstate(invalid="ignore"):
        st = dc.row_stats(x, [0, 0, 0, 0], k=2, where=where)
    assert np.isnan(st.logsumexp[:2]).all() and st.logsumexp[2] == -np.inf
    assert st.logsumexp[3] == -np.inf
    assert np.isnan(st.log_prob).all() and np.isnan(st.entropy).all()
    assert st.argmax.tolist() == [1, 1, 0, -1]  # numpy's argmax; masked never chosen
    assert st.topk_indices.tolist() == [[0, 1]] * 4
    assert np.isnan(st.topk_log_probs).all()


def test_no_classes(dc):
    st = dc.row_stats(np.zeros((3, 0)))
    assert st.logsumexp.tolist() == [-np.inf] * 3
    assert np.isnan(st.entropy).all()
    assert st.argmax.tolist() == [-1] * 3
    st = dc.row_stats(np.zeros((0, 4)), np.zeros(0, dtype=int), k=2)
    assert st.logsumexp.shape == (0,) and st.topk_indices.shape == (0, 2)


def test_ordinary_masked_row_argmax(dc):
    x = np.array([[9.0, 1.0, 2.0]])
    st = dc.row_stats(x, where=np.array([[False, True, True]]), k=1)
    assert st.argmax.tolist() == [2] and st.topk_indices.tolist() == [[2]]


# ------------------------------------------------------------ shapes and dtypes


def test_one_row_gives_scalars(dc):
    st = dc.row_stats([1.0, 2.0, 0.5], 1, k=2)
    for name in ("logsumexp", "log_prob", "entropy", "argmax"):
        assert np.ndim(getattr(st, name)) == 0 and isinstance(getattr(st, name), np.generic)
    assert st.topk_indices.shape == (2,)
    assert isinstance(st, divcore.RowStats)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_class_axis_and_lead_shape(dc, rng, axis):
    x = rng.standard_normal((4, 6, 5))
    moved = np.moveaxis(x, axis, -1)
    labels = np.zeros(moved.shape[:-1], dtype=int)
    st = dc.row_stats(x, labels, axis=axis, k=3)
    ref = dc.row_stats(np.ascontiguousarray(moved), labels, k=3)
    assert st.logsumexp.shape == moved.shape[:-1]
    assert st.topk_indices.shape == moved.shape[:-1] + (3,)
    for a, b in zip(st, ref):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_storage(dc, rng, half):
    if half == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        dtype = ml_dtypes.bfloat16
    else:
        dtype = np.float16
    x = rng.standard_normal((5, 70)).astype(dtype)
    st = dc.row_stats(x, np.arange(5), k=4, where=rng.random((5, 70)) < 0.9)
    assert st.logsumexp.dtype == np.float32 and st.topk_log_probs.dtype == np.float32
    x32 = x.astype(np.float32)
    st32 = dc.row_stats(x32, np.arange(5), k=4, where=rng.random((5, 70)) < 2)
    st = dc.row_stats(x, np.arange(5), k=4)
    st32 = dc.row_stats(x32, np.arange(5), k=4)
    for a, b in zip(st, st32):
        np.testing.assert_array_equal(a, b)
    strided = dc.row_stats(np.asfortranarray(x.T), np.arange(5), axis=0, k=4)
    for a, b in zip(strided, st32):
        np.testing.assert_array_equal(a, b)


def test_threads_do_not_change_results(compiled, rng):
    x = rng.standard_normal((300, 600)).astype(np.float32)
    y = rng.integers(0, 600, 300)
    old = divcore.get_num_threads()
    try:
        divcore.set_num_threads(1)
        one = divcore.row_stats(x, y, k=9)
        divcore.set_num_threads(2)
        two = divcore.row_stats(x, y, k=9)
    finally:
        divcore.set_num_threads(0 if old == 0 else old)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_torch_cpu_tensor_input(dc):
    torch = pytest.importorskip("torch")
    t = torch.randn(3, 8)
    st = dc.row_stats(t, torch.tensor([0, 1, 2]), k=2)
    ref = dc.row_stats(t.numpy(), np.array([0, 1, 2]), k=2)
    for a, b in zip(st, ref):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------- errors


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(k=-1), ValueError, ["k must be in [0, 4]", "-1"]),
    (dict(k=5), ValueError, ["k must be in [0, 4]", "k=min(k, 4)"]),
    (dict(k=1.5), TypeError, ["k must be an integer"]),
    (dict(k=True), TypeError, ["k must be an integer"]),
    (dict(temperature=0.0), ValueError, ["temperature"]),
    (dict(where=np.ones((2, 3), bool)), ValueError, ["where"]),
    (dict(axis=2), np.exceptions.AxisError, ["axis"]),
])
def test_bad_keywords(dc, kwargs, exc, words):
    with pytest.raises(exc) as info:
        dc.row_stats(np.zeros((3, 4)), **kwargs)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_bad_labels(dc):
    x = np.zeros((3, 4))
    with pytest.raises(IndexError) as info:
        dc.row_stats(x, [0, 4, 1])
    assert "row 1" in str(info.value) and "4" in str(info.value)
    with pytest.raises(IndexError):
        dc.row_stats(x, [0, 1, -1])
    with pytest.raises(ValueError, match="shape"):
        dc.row_stats(x, [0, 1])
    with pytest.raises(TypeError, match="integers"):
        dc.row_stats(x, np.array([0.5, 1.0, 2.0]).astype(object))
    with pytest.raises(TypeError, match="complex"):
        dc.row_stats(np.zeros((3, 4), complex))
    with pytest.raises(ValueError):
        dc.row_stats(np.float64(1.0))


@pytest.mark.parametrize("k", [63, 64, 65, 300, 1000])
def test_topk_sorted_and_heap_paths_with_ties(dc, rng, k):
    # up to 64 entries the top-k is a sorted array, beyond it a heap: same results
    x = np.round(rng.standard_normal((3 if dc is divcore else 1, 1000)) * 3, 1)
    st = dc.row_stats(x, k=k)
    np.testing.assert_array_equal(st.topk_indices,
                                  np.argsort(-x, axis=-1, kind="stable")[:, :k])
    ls = dc.log_softmax(x)
    np.testing.assert_allclose(st.topk_log_probs,
                               np.take_along_axis(ls, st.topk_indices, -1), 1e-13, 1e-13)
