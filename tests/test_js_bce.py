"""js_divergence and binary_cross_entropy (design.md items 8-9): against SciPy, torch and
mpmath, their bounds and exact values, and the compiled core against the reference."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _helpers import (
    EPS64,
    assert_allclose_nan,
    assert_same_kind,
    assert_ulp,
    compute_dtype,
    eps_of,
    random_logits,
    random_probs,
    tolerances,
    with_layout,
)
from test_vs_reference import call_both, cases

LN2 = math.log(2.0)


def h_beta(beta):
    """The largest JS_β (disjoint supports): the binary entropy of β, in nats."""
    return -sum(b * math.log(b) for b in (beta, 1.0 - beta) if b > 0)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def mpmath():
    mpmath = pytest.importorskip("mpmath")
    old = mpmath.mp.dps
    mpmath.mp.dps = 50
    yield mpmath
    mpmath.mp.dps = old


def _t(torch, a):
    return torch.from_numpy(np.ascontiguousarray(a))


# ====================================================================== JS divergence


@pytest.mark.parametrize("base", [None, 2, 10])
@pytest.mark.parametrize("target_type", ["probs", "log_probs", "logits"])
@pytest.mark.parametrize("axis", [-1, 0])
def test_js_matches_scipy_jensenshannon_squared(dc, rng, base, target_type, axis):
    distance = pytest.importorskip("scipy.spatial.distance")
    shape = (6, 9)
    p = random_probs(rng, shape, axis, p_zero=0.2)
    q = random_probs(rng, shape, axis, p_zero=0.2)
    with np.errstate(divide="ignore"):
        logp, logq = np.log(p), np.log(q)
    target = {"probs": p, "log_probs": logp, "logits": logp}[target_type]
    expected = distance.jensenshannon(p, q, base=base, axis=axis) ** 2
    got = dc.js_divergence(logq, target, axis=axis, target_type=target_type, base=base,
                           reduction="none")
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-15)
    assert np.isclose(dc.js_divergence(logq, target, axis=axis, target_type=target_type,
                                       base=base), expected.mean(), rtol=1e-10)
    assert np.isclose(dc.js_divergence(logq, target, axis=axis, target_type=target_type,
                                       base=base, reduction="sum"), expected.sum(), rtol=1e-10)


@pytest.mark.parametrize("beta", [0.5, 0.1, 0.3, 0.9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_js_bounds(dc, rng, beta, dtype):
    n, c = 40, 7
    x = random_logits(rng, (n, c), dtype, scale=25.0, p_neginf=0.2)
    t = random_logits(rng, (n, c), dtype, scale=25.0, p_neginf=0.2)
    x[:, 0] = 0.0
    t[:, 1] = 0.0
    # disjoint supports in the first rows: the maximum h(β)
    x[:3] = -np.inf
    x[:3, 0] = 1.0
    t[:3] = -np.inf
    t[:3, 1:] = 2.0
    for base in (None, 2):
        js = dc.js_divergence(x, t, target_type="logits", beta=beta, base=base,
                              reduction="none")
        assert js.dtype == np.dtype(dtype)
        hb = h_beta(beta) / (1.0 if base is None else math.log(base))
        top = dtype(hb) if dtype == np.float32 else hb * (1 + 4 * EPS64)
        assert not np.isnan(js).any()
        assert np.all(js >= 0) and np.all(js <= top), (js.min(), js.max(), hb)
        np.testing.assert_allclose(js[:3], hb, rtol=4 * eps_of(dtype))
        if beta == 0.5:
            assert np.all(js <= (LN2 if base is None else 1.0) * (1 + 4 * eps_of(dtype)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_js_identical_inputs_is_zero(dc, rng, dtype):
    x = random_logits(rng, (10, 12), dtype, scale=5.0, p_neginf=0.1)
    x[:, 0] = 0.0
    for beta in (0.5, 0.2):
        # the same logits: exactly 0
        js = dc.js_divergence(x, x, target_type="logits", beta=beta, reduction="none")
        assert np.array_equal(js, np.zeros(10, dtype=dtype))
        # the same distribution, rounded differently: >= 0, finite, tiny
        q = dc.softmax(x.astype(np.float64))
        js = dc.js_divergence(x, q, target_type="probs", beta=beta, reduction="none",
                              validate=False)
        assert np.all(js >= 0) and np.all(np.isfinite(js))
        assert np.all(js <= (1e-10 if dtype == np.float32 else 1e-28)), js


def test_js_near_identical_where_scipy_gives_nan(dc):
    distance = pytest.importorskip("scipy.spatial.distance")
    rng = np.random.default_rng(1234)
    found = 0
    for _ in range(200):
        p = rng.dirichlet(np.ones(5))
        q = p * (1 + 1e-15 * rng.standard_normal(5))
        q /= q.sum()
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            s = distance.jensenshannon(p, q)
        js = dc.js_divergence(np.log(q), p, reduction="none")
        assert js >= 0 and np.isfinite(js) and js < 1e-28, (p, q, js)
        found += bool(np.isnan(s))
    if not found:
        pytest.skip("this SciPy gave no nan for near-identical inputs")


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_js_beta_zero_or_one_is_zero(dc, rng, beta):
    x = random_logits(rng, (6, 5), p_neginf=0.2)
    x[:, 0] = 1.0
    p = random_probs(rng, (6, 5), p_zero=0.4)   # zeros where q > 0 and vice versa
    js = dc.js_divergence(x, p, beta=beta, reduction="none")
    assert np.array_equal(js, np.zeros(6))
    assert dc.js_divergence(x, np.array([3, 1, 0, 2, 4, 4]), beta=beta) == 0.0


def test_js_labels_are_one_hot(dc, rng):
    x = rng.standard_normal((5, 4)) * 2
    y = np.array([0, 3, 1, 1, 2])
    onehot = np.eye(4)[y]
    np.testing.assert_array_equal(dc.js_divergence(x, y, reduction="none"),
                                  dc.js_divergence(x, onehot, reduction="none"))


def _mp_softmax(mpmath, row):
    vals = [mpmath.mpf(float(v)) if v != -math.inf else None for v in row]
    m = max(v for v in vals if v is not None)
    e = [mpmath.exp(v - m) if v is not None else mpmath.mpf(0) for v in vals]
    s = mpmath.fsum(e)
    return [v / s for v in e]


def _mp_js(mpmath, x_row, t_row, ttype, beta):
    q = _mp_softmax(mpmath, x_row)
    if ttype == "logits":
        p = _mp_softmax(mpmath, t_row)
    else:
        p = [mpmath.mpf(float(v)) for v in t_row]
    b = mpmath.mpf(beta)
    terms = []
    for pi, qi in zip(p, q):
        mi = b * pi + (1 - b) * qi
        if pi > 0:
            terms.append(b * pi * mpmath.log(pi / mi))
        if qi > 0:
            terms.append((1 - b) * qi * mpmath.log(qi / mi))
    return mpmath.fsum(terms)


@pytest.mark.parametrize("beta", [0.5, 0.25, 0.8])
@pytest.mark.parametrize("ttype", ["probs", "logits"])
def test_js_against_mpmath(dc, rng, mpmath, beta, ttype):
    n, c = 8, 6
    x = rng.standard_normal((n, c)) * 3
    if ttype == "logits":
        t = rng.standard_normal((n, c)) * 3
    else:
        t = random_probs(rng, (n, c), p_zero=0.2)
    got = dc.js_divergence(x, t, target_type=ttype, beta=beta, reduction="none")
    for i in range(n):
        exact = _mp_js(mpmath, x[i], t[i], ttype, beta)
        assert abs(float(got[i] - exact)) <= 1e-12 * float(exact) + 1e-17, (i, got[i], exact)


def test_js_near_identical_against_mpmath(dc, rng, mpmath):
    # JS ~ 1e-13: a formula in probability space (Σ p log p/m ...) loses all but a few
    # digits to cancellation; divcore's log-space form keeps ~1e-7 relative precision.
    n, c = 6, 10
    x = rng.standard_normal((n, c)) * 3
    t = x + 1e-6 * rng.standard_normal((n, c))
    got = dc.js_divergence(x, t, target_type="logits", reduction="none")
    for i in range(n):
        exact = _mp_js(mpmath, x[i], t[i], "logits", 0.5)
        assert 1e-16 < float(exact) < 1e-10
        assert abs(float(got[i] - exact)) <= 1e-7 * float(exact), (i, got[i], exact)


# ============================================================= binary cross-entropy


BCE_SHAPES = [
    # (logits shape, weight shape, pos_weight shape)
    ((4, 5, 3), None, None),
    ((4, 5, 3), (4, 5, 3), None),
    ((4, 5, 3), (5, 1), (3,)),
    ((4, 5, 3), (3,), (5, 3)),
    ((4, 5, 3), (1, 5, 1), (1, 1, 3)),
    ((7,), (7,), (7,)),
    ((6, 2), (), (1,)),
]


@pytest.mark.parametrize("shapes", BCE_SHAPES)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("base", [None, 2])
def test_bce_matches_torch(dc, rng, torch, shapes, reduction, soft, base):
    F = torch.nn.functional
    xs, ws, pws = shapes
    x = rng.standard_normal(xs) * 4
    y = rng.random(xs) if soft else (rng.random(xs) < 0.5).astype(np.float64)
    w = None if ws is None else rng.uniform(0.1, 2.0, ws)
    pw = None if pws is None else rng.uniform(0.2, 3.0, pws)
    expected = F.binary_cross_entropy_with_logits(
        _t(torch, x), _t(torch, y), weight=None if w is None else _t(torch, np.asarray(w)),
        pos_weight=None if pw is None else _t(torch, pw), reduction=reduction).numpy()
    if base is not None:
        expected = expected / math.log(base)
    got = dc.binary_cross_entropy(x, y, weight=w, pos_weight=pw, reduction=reduction,
                                  base=base)
    assert np.shape(got) == np.shape(expected)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_float32_matches_torch(dc, rng, torch, dtype):
    F = torch.nn.functional
    x = (rng.standard_normal((5, 8)) * 6).astype(dtype)
    y = rng.random((5, 8)).astype(dtype)
    expected = F.binary_cross_entropy_with_logits(
        _t(torch, x.astype(np.float64)), _t(torch, y.astype(np.float64)),
        reduction="none").numpy()
    got = dc.binary_cross_entropy(x, y, reduction="none")
    assert got.dtype == np.dtype(dtype)
    tol = 4 * eps_of(dtype)
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_stable_for_huge_logits(dc, dtype):
    big = 1e4
    x = np.array([big, -big, big, -big, big, -big], dtype=dtype)
    y = np.array([1.0, 1.0, 0.0, 0.0, 0.25, 0.25], dtype=dtype)
    # softplus(±1e4) = 1e4 or e^-1e4 (0 in floating point)
    expected = np.array([0.0, big, big, 0.0, 0.75 * big, 0.25 * big])
    got = dc.binary_cross_entropy(x, y, reduction="none")
    np.testing.assert_array_equal(got, expected.astype(dtype))
    pw = np.array([3.0], dtype=dtype)
    got = dc.binary_cross_entropy(x, y, pos_weight=pw, reduction="none")
    np.testing.assert_array_equal(got, np.array([0.0, 3 * big, big, 0.0, 0.75 * big,
                                                 3 * 0.25 * big], dtype=dtype))
    assert dc.binary_cross_entropy(x, y, reduction="sum") == dtype(3 * big)


def test_bce_infinite_logits_with_matching_label_is_zero(dc, torch):
    F = torch.nn.functional
    x = np.array([np.inf, -np.inf, np.inf, -np.inf, np.inf])
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.5])
    got = dc.binary_cross_entropy(x, y, reduction="none")
    np.testing.assert_array_equal(got, [0.0, 0.0, np.inf, np.inf, np.inf])
    assert dc.binary_cross_entropy(x[:2], y[:2]) == 0.0
    assert dc.binary_cross_entropy(x[:2], y[:2], weight=np.array([2.0, 3.0]),
                                   pos_weight=np.array([4.0])) == 0.0
    # docs/differences.md: torch gives nan for a certain, correct prediction
    ref = F.binary_cross_entropy_with_logits(_t(torch, x[:2]), _t(torch, y[:2]),
                                             reduction="none").numpy()
    assert np.isnan(ref).all()


def _mp_bce(mpmath, x, y, w=1.0, pw=1.0):
    x, y, w, pw = (mpmath.mpf(float(v)) for v in (x, y, w, pw))
    sp_neg = mpmath.log1p(mpmath.exp(-x))   # softplus(-x)
    sp_pos = mpmath.log1p(mpmath.exp(x))    # softplus(x)
    return w * (pw * y * sp_neg + (1 - y) * sp_pos)


def test_bce_against_mpmath(dc, rng, mpmath):
    n = 200
    x = rng.standard_normal(n) * 15
    x[:20] = rng.uniform(30, 700, 20) * rng.choice([-1, 1], 20)   # tiny or huge losses
    y = rng.random(n)
    y[::3] = np.round(y[::3])
    w = rng.uniform(0.1, 3.0, n)
    pw = rng.uniform(0.1, 3.0, n)
    got = dc.binary_cross_entropy(x, y, weight=w, pos_weight=pw, reduction="none")
    exact = [_mp_bce(mpmath, *args) for args in zip(x, y, w, pw)]
    for i in range(n):
        # softplus (~2 ulp), the products with y, pw, (1 - y) and w, one addition
        assert_ulp(got[i], exact[i], 8, what=f"x={x[i]!r}, y={y[i]!r}")
    total = mpmath.fsum(exact)
    assert_ulp(dc.binary_cross_entropy(x, y, weight=w, pos_weight=pw, reduction="sum"),
               total, 16, what="sum")
    # a confident correct prediction: a loss of ~4e-18 in relative precision
    assert_ulp(dc.binary_cross_entropy(np.array([40.0]), np.array([1.0]), reduction="sum"),
               _mp_bce(mpmath, 40.0, 1.0), 4, what="x=40")


def test_bce_empty_mean_is_nan(dc):
    x = np.zeros((0, 3))
    assert np.isnan(dc.binary_cross_entropy(x, x))
    assert dc.binary_cross_entropy(x, x, reduction="sum") == 0.0


# =========================================================== compiled vs reference


def _check_pair(case, rtol, atol):
    both = call_both(case)
    if both is None:
        return
    assert_same_kind(*both)
    assert_allclose_nan(*both, rtol, atol, msg=repr(case))


@pytest.mark.usefixtures("compiled")
@given(cases(funcs=("kl_divergence",)),
       st.sampled_from([None, 0.5, 0.0, 0.1, 0.75, 1.0]))
def test_js_compiled_vs_reference_hypothesis(case, beta):
    case.fname = "js_divergence"
    case.kwargs.pop("reverse", None)
    if beta is not None:
        case.kwargs["beta"] = beta
    _check_pair(case, *tolerances(case))


class _BCECase:
    def __init__(self, args, kwargs, dtype, scale, nrows, desc):
        self.fname = "binary_cross_entropy"
        self.args, self.kwargs = args, kwargs
        self.dtype, self.scale, self.nrows, self.desc = np.dtype(dtype), scale, nrows, desc

    def __repr__(self):
        return f"Case(binary_cross_entropy, {self.desc})"


@st.composite
def bce_cases(draw):
    dtype = draw(st.sampled_from(["float16", "float32", "float64"]))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=3)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([0.1, 3.0, 30.0, 1e4]))
    x = random_logits(rng, shape or (1,), dtype, scale=scale,
                      p_nan=draw(st.sampled_from([0.0, 0.0, 0.1]))).reshape(shape)
    hard = draw(st.sampled_from(["hard", "soft", "mixed"]))
    y = rng.random(shape)
    if hard == "hard":
        y = (y < 0.5) * 1.0
    elif hard == "mixed":
        y = np.where(rng.random(shape) < 0.5, np.round(y), y)
    if draw(st.booleans()) and x.size:
        # infinite logits, with the matching label (0 loss) or not (+inf)
        inf = rng.random(shape) < 0.2
        sign = np.where(rng.random(shape) < 0.5, 1.0, -1.0)
        x = np.where(inf, sign * np.inf, x).astype(dtype)
        y = np.where(inf & (rng.random(shape) < 0.7), (sign > 0) * 1.0, y)
    ydtype = draw(st.sampled_from(["same", "float64"]))
    y = y.astype(dtype if ydtype == "same" else np.float64)
    kwargs = {}

    def bshape():
        # a shape broadcasting to `shape`: some axes dropped from the left, some set to 1
        k = draw(st.integers(0, len(shape)))
        sub = list(shape[len(shape) - k:])
        for i in range(len(sub)):
            if draw(st.booleans()):
                sub[i] = 1
        return tuple(sub)

    wmax = pwmax = 1.0
    if draw(st.booleans()):
        kwargs["weight"] = rng.uniform(0.1, 2.0, bshape()).astype(
            draw(st.sampled_from([dtype, "float64"])))
        wmax = 2.0
    if draw(st.booleans()):
        kwargs["pos_weight"] = rng.uniform(0.1, 3.0, bshape()).astype(
            draw(st.sampled_from([dtype, "float64"])))
        pwmax = 3.0
    reduction = draw(st.sampled_from([None, "none", "sum", "mean"]))
    if reduction is not None:
        kwargs["reduction"] = reduction
    base = draw(st.sampled_from([None, None, 2, 10]))
    if base is not None:
        kwargs["base"] = base
    x = with_layout(x, draw(st.sampled_from(["C", "F", "strided", "reversed"])))
    size = int(np.prod(shape)) if shape else 1
    fin = np.abs(x[np.isfinite(x)].astype(np.float64))
    mag = wmax * max(pwmax, 1.0) * (1.0 + (float(fin.max()) if fin.size else 0.0))
    if base is not None:
        mag /= math.log(base)
    desc = f"dtype={dtype}, shape={shape}, seed={seed}, scale={scale}, {sorted(kwargs)}"
    return _BCECase((x, y), kwargs, dtype, mag, size, desc)


@pytest.mark.usefixtures("compiled")
@given(bce_cases())
def test_bce_compiled_vs_reference_hypothesis(case):
    eps = eps_of(compute_dtype(case.dtype))
    atol = 16 * eps * case.scale
    if case.kwargs.get("reduction") == "sum":
        atol *= max(case.nrows, 1)
    _check_pair(case, 16 * eps, atol)
