"""Mathematical properties on random inputs (hypothesis), on both backends:

- CE = H + KL, with H and KL computed by other functions (entropy, kl_divergence),
- KL >= 0 (forward and reverse), 0 <= JS <= h(β) (ln 2 for β = ½), never NaN,
- the gradient is the finite-difference gradient of the loss,
- invariance of every loss, and of the CE gradient, to adding a constant to a row of
  logits (and of a logits target).
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _helpers import EPS32, EPS64, eps_of, fd_gradient, random_logits, random_probs

TTYPES = ("labels", "probs", "log_probs", "logits")


def h_beta(beta):
    return -sum(b * math.log(b) for b in (beta, 1.0 - beta) if b > 0)


def _softmax(z):
    m = np.max(z, axis=-1, keepdims=True)
    e = np.exp(z - m)
    return e / e.sum(-1, keepdims=True)


class Problem:
    """Logits, a target of some type, and keywords; the target has no mass where the
    model has none (masked or -inf), so every loss is finite."""

    def __init__(self, x, target, ttype, kw, p=None, avail=None, desc=""):
        self.x, self.target, self.ttype, self.kw = x, target, ttype, kw
        self.p, self.avail, self.desc = p, avail, desc

    def __repr__(self):
        return f"Problem({self.desc})"


@st.composite
def problems(draw, ttypes=TTYPES, dtypes=("float64",), smoothing=True, weight=True,
             neginf=True, scales=(0.1, 1.0, 4.0, 30.0)):
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    n = draw(st.integers(1, 4))
    c = draw(st.integers(1, 7))
    seed = draw(st.integers(0, 2**32 - 1))
    ttype = draw(st.sampled_from(ttypes))
    scale = draw(st.sampled_from(scales))
    eps = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0])) if (
        smoothing and ttype in ("labels", "probs")) else 0.0
    p_neginf = draw(st.sampled_from([0.0, 0.25])) if neginf and not eps else 0.0
    use_where = draw(st.booleans())
    temperature = draw(st.sampled_from([1.0, 0.5, 2.0, 3.0]))
    rng = np.random.default_rng(seed)
    x = random_logits(rng, (n, c), dtype, scale=scale, p_neginf=p_neginf)
    keep_one = rng.integers(0, c, n)
    x[np.arange(n), keep_one] = rng.standard_normal(n) * scale  # a finite logit per row
    where = np.ones((n, c), dtype=bool)
    if use_where:
        where = rng.random((n, c)) < 0.7
        where[np.arange(n), keep_one] = True
    avail = where & np.isfinite(x)
    kw = {"target_type": ttype, "temperature": temperature}
    if use_where:
        kw["where"] = where
    p = None
    if ttype == "labels":
        target = np.array([rng.choice(np.flatnonzero(a)) for a in avail])
        p = np.eye(c)[target]
    elif ttype == "logits":
        target = random_logits(rng, (n, c), dtype, scale=scale, p_neginf=p_neginf)
        target[~avail] = -np.inf
        target[np.arange(n), keep_one] = 0.0
        p = _softmax(np.where(avail, target.astype(np.float64) / temperature, -np.inf))
    else:
        p = random_probs(rng, (n, c), p_zero=0.2, zero_where=~avail)
        with np.errstate(divide="ignore"):
            target = (p if ttype == "probs" else np.log(p)).astype(dtype)
        p = target.astype(np.float64) if ttype == "probs" else np.exp(target.astype(np.float64))
    if eps:
        kw["label_smoothing"] = eps
    if weight and ttype in ("labels", "probs") and draw(st.booleans()):
        kw["weight"] = rng.uniform(0.2, 2.0, c)
    shown = {k: (v if not isinstance(v, np.ndarray) else "<array>") for k, v in kw.items()}
    desc = f"dtype={dtype}, n={n}, c={c}, seed={seed}, ttype={ttype}, scale={scale}, kw={shown}"
    return Problem(x, target, ttype, kw, p, avail, desc)


def _smoothed(prob):
    """The effective target distribution p' (label smoothing over the unmasked classes)."""
    eps = prob.kw.get("label_smoothing", 0.0)
    p = prob.p
    if not eps:
        return p
    where = prob.kw.get("where", np.ones_like(p, dtype=bool))
    return (1 - eps) * p + eps * where / where.sum(-1, keepdims=True)


# --------------------------------------------------------------------- CE = H + KL


@given(problems())
def test_ce_equals_entropy_plus_kl(dc, prob):
    kw = dict(prob.kw, reduction="none")
    x, target = prob.x, prob.target
    dec = dc.decompose(x, target, **kw)
    ce = dc.cross_entropy(x, target, **kw)
    np.testing.assert_allclose(dec.cross_entropy, ce, rtol=1e-14, atol=1e-300)
    w = kw.pop("weight", None)
    eps = kw.pop("label_smoothing", 0.0)
    where = kw.get("where")
    t = kw["temperature"]
    pe = _smoothed(prob)
    # H(p) from entropy(), of the target as it was given (or of p' if smoothed)
    if prob.ttype == "labels" and not eps:
        h = np.zeros(len(x))
    elif prob.ttype == "logits":
        h = dc.entropy(target, temperature=t, where=where)
    elif prob.ttype == "log_probs":
        h = dc.entropy(target, input_type="log_probs", where=where)
    else:
        h = dc.entropy(pe, input_type="probs", where=where)
    # KL(p‖q) from kl_divergence() (of p' for a smoothed target)
    if eps or prob.ttype == "labels":
        kl = dc.kl_divergence(x, pe, target_type="probs", temperature=t, where=where,
                              reduction="none")
    else:
        kl = dc.kl_divergence(x, target, **kw)
    tol = dict(rtol=1e-12, atol=1e-13 * (1.0 + float(np.max(np.abs(ce)))))
    if w is None:
        np.testing.assert_allclose(ce, h + kl, **tol)
        np.testing.assert_allclose(dec.entropy, h, **tol)
        np.testing.assert_allclose(dec.kl_divergence, kl, **tol)
    else:
        # weighted: CE_w = H_w + KL_w with H_w = -Σ w p log p (docs/numerics.md)
        with np.errstate(divide="ignore", invalid="ignore"):
            hw = -np.sum(np.where(pe > 0, w * pe * np.log(pe), 0.0), axis=-1)
        np.testing.assert_allclose(dec.entropy, hw, **tol)
        # a weighted KL is not clamped (it may be negative): CE_w = H_w + KL_w throughout
        # (a hand-made negative case: test_weighted_decompose_kl_is_ce_minus_h below)
        np.testing.assert_allclose(dec.cross_entropy, dec.entropy + dec.kl_divergence, **tol)


def test_weighted_decompose_kl_is_ce_minus_h(dc):
    # weights can make the weighted "KL" negative: a heavy weight on a class that the
    # target overweights relative to the model
    x = np.array([0.0, 0.0])
    p = np.array([0.9, 0.1])
    w = np.array([0.1, 3.0])
    dec = dc.decompose(x, p, weight=w, reduction="none")
    ce_w = -np.sum(w * p * np.log(0.5))
    h_w = -np.sum(w * p * np.log(p))
    assert ce_w - h_w < 0
    np.testing.assert_allclose(dec.cross_entropy, ce_w, rtol=1e-14)
    np.testing.assert_allclose(dec.entropy, h_w, rtol=1e-14)
    np.testing.assert_allclose(dec.kl_divergence, ce_w - h_w, rtol=1e-14)


# ----------------------------------------------------------------- KL >= 0, JS bounds


@st.composite
def near_pairs(draw, dtypes=("float32", "float64")):
    """Logits and a target that is random, or the model's own distribution up to
    rounding (where rounding could make a careless KL negative)."""
    prob = draw(problems(ttypes=("probs", "log_probs", "logits"), dtypes=dtypes,
                         smoothing=False, weight=False))
    if draw(st.booleans()):
        x = prob.x
        t = prob.kw["temperature"]
        where = prob.kw.get("where", np.ones(x.shape, dtype=bool))
        z = np.where(where, x.astype(np.float64) / t, -np.inf)
        if prob.ttype == "logits":
            noise = draw(st.sampled_from([0.0, 1e-12, 1e-6]))
            target = x.astype(np.float64) * (1 + noise)
            prob.target = target.astype(x.dtype)
        else:
            q = _softmax(z)
            with np.errstate(divide="ignore"):
                prob.target = (q if prob.ttype == "probs" else np.log(q)).astype(x.dtype)
        prob.desc += ", near-identical target"
    return prob


@given(near_pairs(), st.booleans())
def test_kl_is_nonnegative(dc, prob, reverse):
    kw = dict(prob.kw, reduction="none", reverse=reverse, validate=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        kl = dc.kl_divergence(prob.x, prob.target, **kw)
    assert not np.isnan(kl).any(), (prob, kl)
    assert np.all(kl >= 0), (prob, kl)
    if not reverse and prob.ttype == "logits" and np.array_equal(prob.target, prob.x):
        assert np.all(kl == 0)   # KL(p‖p) = 0 exactly for the same logits


@given(near_pairs(), st.sampled_from([0.5, 0.5, 0.0, 0.2, 0.9, 1.0]), st.sampled_from([None, 2]))
def test_js_bounds(dc, prob, beta, base):
    kw = dict(prob.kw, reduction="none", beta=beta, validate=False, base=base)
    js = dc.js_divergence(prob.x, prob.target, **kw)
    top = h_beta(beta) / (1.0 if base is None else math.log(base))
    if js.dtype == np.float32:
        top = np.float32(top)
    else:
        top = top * (1 + 4 * EPS64)
    assert not np.isnan(js).any(), (prob, js)
    assert np.all(js >= 0) and np.all(js <= top), (prob, js, top)
    if beta == 0.5:
        assert np.all(js <= np.float32(math.log(2)) / (1.0 if base is None else math.log(base))
                      * (1 + 4 * EPS32))


# ------------------------------------------------------ gradient = finite differences


@given(problems(scales=(0.1, 1.0, 3.0)), st.sampled_from(["ce", "kl"]),
       st.booleans(), st.sampled_from(["none", "sum", "mean"]), st.sampled_from([None, 2]))
def test_gradient_is_finite_difference_gradient(prob, fn, reverse, reduction, base):
    import divcore as dc

    kw = dict(prob.kw, reduction=reduction, base=base)
    if fn == "kl":
        kw.pop("weight", None)
        kw.pop("label_smoothing", None)
        if prob.ttype != "labels":
            kw["reverse"] = reverse
            if reverse:
                # KL(q‖p) is finite only with p > 0 wherever q > 0
                r = np.random.default_rng(0).random(prob.x.shape)
                if prob.ttype == "logits":
                    prob.target = np.where(prob.avail, r, -np.inf)
                else:
                    p = np.where(prob.avail, 0.5 + r, 0.0)
                    p /= p.sum(-1, keepdims=True)
                    with np.errstate(divide="ignore"):
                        prob.target = p if prob.ttype == "probs" else np.log(p)
    loss_f = dc.cross_entropy if fn == "ce" else dc.kl_divergence
    grad_f = dc.cross_entropy_and_grad if fn == "ce" else dc.kl_divergence_and_grad
    target = prob.target

    def f(z):
        return np.sum(loss_f(z, target, **kw))

    loss, grad = grad_f(prob.x, target, **kw)
    assert np.all(np.isfinite(grad)), (prob, grad)
    expected = fd_gradient(f, prob.x, h=1e-3 * kw["temperature"])
    np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-10, err_msg=repr(prob))


# ------------------------------------------------------------ shift invariance


@st.composite
def grid_problems(draw):
    """Logits on a grid (multiples of 1/256) and per-row shifts (multiples of 1/16),
    so that x + s is exact in the dtype and T a power of two: every loss is then
    mathematically *and* in its inputs exactly invariant; only divcore's own rounding
    may differ."""
    dtype = np.dtype(draw(st.sampled_from(["float32", "float64"])))
    n = draw(st.integers(1, 4))
    c = draw(st.integers(1, 7))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    big = 64 if dtype == np.float32 else 2**20
    x = rng.integers(-4096, 4097, (n, c)) / 256.0
    t = rng.integers(-4096, 4097, (n, c)) / 256.0
    if draw(st.booleans()):
        x[rng.random((n, c)) < 0.2] = -np.inf
        x[np.arange(n), rng.integers(0, c, n)] = 1.0
        t[np.isneginf(x)] = -np.inf
    s = rng.integers(-16 * big, 16 * big + 1, (n, 1)) / 16.0
    s_t = rng.integers(-16 * big, 16 * big + 1, (n, 1)) / 16.0
    temperature = draw(st.sampled_from([1.0, 0.5, 2.0, 4.0]))
    desc = f"dtype={dtype}, n={n}, c={c}, seed={seed}, T={temperature}"
    return x.astype(dtype), t.astype(dtype), s, s_t, temperature, desc


def _assert_invariant(a, b, dtype, mag, what):
    eps = eps_of(dtype)
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    np.testing.assert_array_equal(np.isposinf(a64), np.isposinf(b64), err_msg=what)
    fin = np.isfinite(b64)
    np.testing.assert_allclose(a64[fin], b64[fin], rtol=16 * eps, atol=16 * eps * mag,
                               err_msg=what)


@given(grid_problems())
def test_losses_invariant_to_adding_a_constant_to_a_row(dc, problem):
    x, t, s, s_t, temp, desc = problem
    dtype = x.dtype
    xs = (x + s).astype(dtype)
    ts = (t + s_t).astype(dtype)
    assert np.array_equal(xs.astype(np.float64) - s, x.astype(np.float64))  # exact shift
    n, c = x.shape
    labels = np.argmax(x, axis=-1)
    p = _softmax(t.astype(np.float64) / temp)
    # the size of the terms: |x - lse|/T is bounded by the spread of a row, but the
    # rounding of an intermediate lse may be relative to |x + s|/T
    finite = lambda a: np.abs(a[np.isfinite(a)]).max(initial=0.0)  # noqa: E731
    mag = (1.0 + (finite(x) + np.abs(s).max() + finite(t) + np.abs(s_t).max()) / temp
           + math.log(c + 1))
    common = dict(temperature=temp, reduction="none")
    checks = [
        ("CE labels", dc.cross_entropy, (labels,), {}),
        ("CE probs", dc.cross_entropy, (p,), {}),
        ("CE logits", dc.cross_entropy, (t,), {"target_type": "logits"}),
        ("KL probs", dc.kl_divergence, (p,), {}),
        ("KL logits", dc.kl_divergence, (t,), {"target_type": "logits"}),
        ("KL logits reverse", dc.kl_divergence, (t,), {"target_type": "logits",
                                                       "reverse": True}),
        ("KL probs reverse", dc.kl_divergence, (p,), {"reverse": True}),
        ("JS probs", dc.js_divergence, (p,), {}),
        ("JS logits", dc.js_divergence, (t,), {"target_type": "logits"}),
    ]
    for what, f, (target,), kw in checks:
        shifted_target = ts if target is t else target
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            a = f(xs, shifted_target, **common, **kw)
            b = f(x, target, **common, **kw)
        _assert_invariant(a, b, dtype, mag, f"{what}: {desc}")
    _assert_invariant(dc.entropy(xs, temperature=temp), dc.entropy(x, temperature=temp),
                      dtype, mag, f"entropy: {desc}")
    # the CE gradient: entries A·q_c - a_c, each q_c = exp(x_c/T - lse) with an error
    # relative to the size of its exponent
    for target, kw in ((labels, {}), (p, {}), (t, {"target_type": "logits"})):
        _, ga = dc.cross_entropy_and_grad(xs, ts if target is t else target, **common, **kw)
        _, gb = dc.cross_entropy_and_grad(x, target, **common, **kw)
        _assert_invariant(ga, gb, dtype, mag / temp, f"CE grad {kw}: {desc}")
