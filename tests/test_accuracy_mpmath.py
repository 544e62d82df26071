"""Accuracy against mpmath (50 digits) evaluated on the exact input values (SPEC §4).

Float64 logsumexp and label cross-entropy must be within 4 ulp, including tiny losses
(relative precision, via log1p); soft-target losses within a small relative error; float32
at C = 262144 within a few float32 ulp (the error must not grow with C).
"""
import math

import numpy as np
import pytest

from _helpers import EPS64, ulp_error

mpmath = pytest.importorskip("mpmath")
mp = mpmath.mp


@pytest.fixture(autouse=True)
def _dps():
    old = mp.dps
    mp.dps = 50
    yield
    mp.dps = old


def mp_lse(row):
    vals = [mpmath.mpf(float(v)) for v in row if v != -math.inf]
    m = max(vals)
    rest = list(vals)
    rest.remove(m)  # S = 1 + sum(rest): log1p keeps tiny tails exact at any precision
    return m + mpmath.log1p(mpmath.fsum(mpmath.exp(v - m) for v in rest))


def mp_ce_label(row, y):
    return mp_lse(row) - mpmath.mpf(float(row[y]))


def mp_soft(row, p):
    """Exact (ce, h, kl) for logits `row` and probabilities `p` (exact float values)."""
    lse = mp_lse(row)
    ce = mpmath.fsum(mpmath.mpf(float(pi)) * (lse - mpmath.mpf(float(xi)))
                     for pi, xi in zip(p, row) if pi > 0)
    h = -mpmath.fsum(mpmath.mpf(float(pi)) * mpmath.log(mpmath.mpf(float(pi)))
                     for pi in p if pi > 0)
    return ce, h, ce - h


def mp_entropy_logits(row):
    lse = mp_lse(row)
    return mpmath.fsum(mpmath.exp(mpmath.mpf(float(v)) - lse) * (lse - mpmath.mpf(float(v)))
                       for v in row)


# ---------------------------------------------------------------- float64, 4 ulp


@pytest.mark.parametrize("c", [2, 3, 17, 256, 1000])
def test_logsumexp_float64_within_4_ulp(dc, rng, c):
    # positive offset: lse = M + log S with both terms >= 0, so 4 ulp of the result
    x = rng.standard_normal((20, c)) * 3 + 5
    got = dc.logsumexp(x)
    for i in range(20):
        err = ulp_error(got[i], mp_lse(x[i]))
        assert err <= 4, (c, i, err)


@pytest.mark.parametrize("c", [3, 17, 1000])
def test_logsumexp_float64_any_sign(dc, rng, c):
    # lse near 0 with M < 0 cancels in M + log S; the bound is 4 ulp of max(|lse|, |M|)
    x = rng.standard_normal((20, c)) * 3 - math.log(c)
    got = dc.logsumexp(x)
    for i in range(20):
        exact = mp_lse(x[i])
        bound = 4 * float(np.spacing(max(abs(float(exact)), abs(float(x[i].max())))))
        assert abs(float(mpmath.mpf(float(got[i])) - exact)) <= bound, (c, i)


@pytest.mark.parametrize("c", [2, 5, 100, 1000])
def test_cross_entropy_labels_float64_within_4_ulp(dc, rng, c):
    n = 30
    x = rng.standard_normal((n, c)) * 4
    y = rng.integers(0, c, n)
    y[:5] = np.argmax(x[:5], axis=1)  # label on the row's max: the log1p path
    got = dc.cross_entropy(x, y, reduction="none")
    for i in range(n):
        err = ulp_error(got[i], mp_ce_label(x[i], y[i]))
        assert err <= 4, (c, i, err, float(got[i]))


TINY_CASES = [
    ([0.0, -50.0, -60.0], 0),            # log1p(e^-50 + e^-60) ~ 1.9e-22
    ([0.0, math.log(1e-20)], 0),          # ~1e-20
    ([-3.0, math.log(1e-20) - 3.0, -80.0], 0),
    ([40.0] + [0.0] * 99, 0),             # 99 e^-40 ~ 4.2e-16
    ([0.0, -745.0], 0),                   # e^-745 is the smallest subnormal
    ([700.0, 650.0, -700.0], 0),
    ([1e-3, -40.0, 0.0, -38.0], 0),       # max not at index 0 of the minimum
]


@pytest.mark.parametrize("row,label", TINY_CASES)
def test_tiny_losses_keep_relative_precision(dc, row, label):
    x = np.array(row)
    exact = mp_ce_label(x, label)
    assert exact > 0
    ce = dc.cross_entropy(x, label, reduction="none")
    assert ulp_error(ce, exact) <= 4, (float(ce), float(exact))
    # the same row inside a batch, and along axis 0
    batch = np.stack([x, x[::-1]])
    got = dc.cross_entropy(batch, np.array([label, len(row) - 1 - label]), reduction="none")
    assert ulp_error(got[0], exact) <= 4 and ulp_error(got[1], exact) <= 4
    got = dc.cross_entropy(batch.T, np.array([label, len(row) - 1 - label]), axis=0,
                           reduction="none")
    assert ulp_error(got[0], exact) <= 4
    # kl_divergence with labels is the same number
    kl = dc.kl_divergence(x, label, reduction="none")
    assert ulp_error(kl, exact) <= 4
    # logsumexp and log_softmax of the max have the same relative precision when M = 0
    if max(row) == 0.0:
        assert ulp_error(dc.logsumexp(x), mp_lse(x)) <= 4
        ls = dc.log_softmax(x)
        assert ulp_error(-ls[label], exact) <= 4


def test_tiny_loss_with_temperature(dc):
    x = np.array([0.0, -50.0, -61.0])
    T = 3.0
    xs = x / T  # the backends divide by T in float64 for float64 input
    exact = mp_ce_label(xs, 0)
    got = dc.cross_entropy(x, 0, temperature=T, reduction="none")
    assert ulp_error(got, exact) <= 4


def test_tiny_loss_with_mask(dc):
    x = np.array([0.0, 100.0, -50.0, 80.0])
    where = np.array([True, False, True, False])
    exact = mp_ce_label(np.array([0.0, -50.0]), 0)
    got = dc.cross_entropy(x, 0, where=where, reduction="none")
    assert ulp_error(got, exact) <= 4


@pytest.mark.parametrize("row,label", [([0.0, -30.0], 0), ([0.0, -20.0, -25.0], 0),
                                       ([10.0, -5.0, 0.0], 0)])
def test_tiny_losses_float32(dc, row, label):
    x = np.array(row, dtype=np.float32)
    exact = mp_ce_label(x, label)
    ce = dc.cross_entropy(x, label, reduction="none")
    assert ce.dtype == np.float32
    assert ulp_error(ce, exact, np.float32) <= 4, (float(ce), float(exact))


# ------------------------------------------------------------- soft targets, float64


@pytest.mark.parametrize("c", [3, 50])
def test_soft_targets_float64(dc, rng, c):
    n = 10
    x = rng.standard_normal((n, c)) * 3
    p = np.exp(rng.standard_normal((n, c)) * 2)
    p[rng.random((n, c)) < 0.2] = 0
    p[:, 0] += 0.01
    p /= p.sum(-1, keepdims=True)
    ce = dc.cross_entropy(x, p, reduction="none")
    kl = dc.kl_divergence(x, p, reduction="none")
    d = dc.decompose(x, p, reduction="none")
    hx = dc.entropy(x)
    hp = dc.entropy(p, input_type="probs")
    for i in range(n):
        ece, eh, ekl = mp_soft(x[i], p[i])
        scale = float(ece + eh) + float(np.abs(x[i]).max())
        tol = 64 * EPS64 * scale
        for name, got, exact in [("ce", ce[i], ece), ("kl", kl[i], ekl),
                                 ("d.ce", d.cross_entropy[i], ece), ("d.h", d.entropy[i], eh),
                                 ("d.kl", d.kl_divergence[i], ekl), ("H(p)", hp[i], eh)]:
            diff = abs(float(mpmath.mpf(float(got)) - exact))
            assert diff <= tol, (name, i, float(got), float(exact), diff / tol)
        # the target's entropy depends only on p: near-correctly rounded
        assert ulp_error(hp[i], eh) <= 8
        eh_x = mp_entropy_logits(x[i])
        assert abs(float(mpmath.mpf(float(hx[i])) - eh_x)) <= tol


def test_kl_logits_target_float64(dc, rng):
    x = rng.standard_normal((8, 20)) * 2
    t = rng.standard_normal((8, 20)) * 2
    got = dc.kl_divergence(x, t, target_type="logits", reduction="none")
    for i in range(8):
        lq = [mpmath.mpf(float(v)) - mp_lse(x[i]) for v in x[i]]
        lp = [mpmath.mpf(float(v)) - mp_lse(t[i]) for v in t[i]]
        exact = mpmath.fsum(mpmath.exp(a) * (a - b) for a, b in zip(lp, lq))
        assert abs(float(mpmath.mpf(float(got[i])) - exact)) <= 1e-14 * (1 + float(exact)) * 8


# --------------------------------------------------------------- C = 262144


C_BIG = 262144


@pytest.fixture(scope="module")
def big_rows():
    rng = np.random.default_rng(262144)
    x32 = (rng.standard_normal((2, C_BIG)) * 3).astype(np.float32)
    x64 = rng.standard_normal((1, C_BIG)) * 3
    p = np.exp(rng.standard_normal((2, C_BIG)))
    p /= p.sum(-1, keepdims=True)
    return x32, x64, p.astype(np.float32)


def _fsum_lse(row):
    """lse of float32 values in float64 with an exactly summed exp series (error ~1e-16
    relative, far below a float32 ulp)."""
    r = row.astype(np.float64)
    m = float(r.max())
    return m + math.log(math.fsum(np.exp(r - m).tolist()))


def _within_f32_ulps(got, exact, k=4):
    sp = float(np.spacing(np.float32(abs(float(got)))))
    return abs(float(got) - float(exact)) <= k * sp


def test_float32_large_c(compiled_or_any, big_rows):
    dc = compiled_or_any
    x32, _, p32 = big_rows
    lse = dc.logsumexp(x32)
    assert lse.dtype == np.float32
    ex = [_fsum_lse(r) for r in x32]
    for i in range(2):
        assert _within_f32_ulps(lse[i], ex[i]), (float(lse[i]), ex[i])
    labels = np.array([7, 12345])
    ce = dc.cross_entropy(x32, labels, reduction="none")
    for i in range(2):
        exact = ex[i] - float(x32[i, labels[i]])
        assert _within_f32_ulps(ce[i], exact), (float(ce[i]), exact)
    # entropy of the logits: sum q (lse - x)
    h = dc.entropy(x32)
    for i in range(2):
        r = x32[i].astype(np.float64)
        q = np.exp(r - ex[i])
        exact = math.fsum((q * (ex[i] - r)).tolist())
        assert _within_f32_ulps(h[i], exact, 8), (float(h[i]), exact)
    # soft-target CE with a probability target
    ces = dc.cross_entropy(x32, p32, reduction="none")
    for i in range(2):
        r = x32[i].astype(np.float64)
        exact = math.fsum((p32[i].astype(np.float64) * (ex[i] - r)).tolist())
        assert _within_f32_ulps(ces[i], exact, 8), (float(ces[i]), exact)
    # softmax sums to 1 within a few ulp and matches the exact values elementwise
    sm = dc.softmax(x32[:1])[0].astype(np.float64)
    exact_sm = np.exp(x32[0].astype(np.float64) - ex[0])
    assert abs(math.fsum(sm.tolist()) - 1) <= 1e-5
    rel = np.abs(sm - exact_sm) / exact_sm
    assert rel.max() <= 64 * 2**-23 * (1 + np.abs(x32[0]).max()), rel.max()


def test_float64_large_c_mpmath(compiled_or_any, big_rows):
    dc = compiled_or_any
    _, x64, _ = big_rows
    row = x64[0]
    m = mpmath.mpf(float(row.max()))
    mp.dps = 30  # plenty for a sum of 262144 positive terms (each exact to 30 digits)
    s = mpmath.fsum(mpmath.exp(mpmath.mpf(v) - m) for v in row.tolist())
    exact = m + mpmath.log(s)
    got = dc.logsumexp(x64)[0]
    assert ulp_error(got, exact) <= 4, float(got)
    y = 4242
    ce = dc.cross_entropy(x64, np.array([y]), reduction="none")[0]
    assert ulp_error(ce, exact - mpmath.mpf(float(row[y]))) <= 4
