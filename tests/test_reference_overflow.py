"""The reference backend near ±DBL_MAX (issue 12, item 5): no intermediate overflow.

math.fsum raises OverflowError when a partial sum of finite terms overflows (DBL_MAX +
DBL_MAX - DBL_MAX), and a probability that underflows to 0 met an infinite log-ratio
(0·inf = nan). The values here are checked against mpmath (200-bit mantissa, unbounded
exponent: exp(-2·DBL_MAX) is an ordinary positive number there) and, where the compiled
core is right, against it too.
"""
import math
import sys

import mpmath
import numpy as np
import pytest

import divcore
import divcore.reference as ref
from divcore import _refkernels

M = sys.float_info.max
INF = math.inf


# ------------------------------------------------------------------ mpmath oracle

def _mp_log_softmax(row, temperature):
    """(q, log q) of softmax(row / T) in mpmath; -inf entries are masked classes."""
    with mpmath.workprec(200):
        z = [mpmath.mpf(v) / temperature if v != -INF else mpmath.ninf for v in row]
        top = max(z)
        s = mpmath.fsum(mpmath.exp(v - top) for v in z if v != mpmath.ninf)
        log_q = [v - top - mpmath.log(s) if v != mpmath.ninf else mpmath.ninf for v in z]
        return [mpmath.exp(v) if v != mpmath.ninf else mpmath.mpf(0) for v in log_q], log_q


def _mp_kl(a_row, b_row, temperature):
    """KL(softmax(a/T) ‖ softmax(b/T)), +inf where a has mass and b has none."""
    pa, la = _mp_log_softmax(a_row, temperature)
    _, lb = _mp_log_softmax(b_row, temperature)
    with mpmath.workprec(200):
        total = mpmath.mpf(0)
        for p, lp, lq in zip(pa, la, lb):
            if p > 0:
                if lq == mpmath.ninf:
                    return INF
                total += p * (lp - lq)
        return float(total)


def _mp_js(x_row, t_row, temperature, beta):
    q, _ = _mp_log_softmax(x_row, temperature)
    p, _ = _mp_log_softmax(t_row, temperature)
    with mpmath.workprec(200):
        total = mpmath.mpf(0)
        for p_c, q_c in zip(p, q):
            m = beta * p_c + (1 - beta) * q_c
            if p_c > 0:
                total += beta * p_c * mpmath.log(p_c / m)
            if q_c > 0:
                total += (1 - beta) * q_c * mpmath.log(q_c / m)
        return float(total)


def _close(got, want):
    if math.isinf(want) or math.isnan(want):
        return got == want or (math.isnan(got) and math.isnan(want))
    return abs(got - want) <= 1e-13 * max(1.0, abs(want))


# ------------------------------------------------------------------------- cases

ROWS = [
    # (logits, teacher logits): each has a partial sum past DBL_MAX somewhere
    ([M, 0.0], [M, M]),
    ([M, -M], [-M, M]),
    ([M, M, 0.0], [0.0, M, M]),
    ([-1.0, 1.0, M / 2], [M, -M, -INF]),
    ([-M / 2, M, M], [-1.0, 1e308, 1.0]),
    ([1e308, 700.0], [1.0, 1e308]),
    ([-1.0, 1.0], [M / 2, -INF]),
    ([M, -M / 2, -INF], [700.0, -INF, -M]),
    ([1.0, M, 700.0], [M, -INF, M]),
    ([-M, -1.0, 1.0], [-M / 2, M, M]),
]


def test_the_reported_case_matches_the_compiled_core_and_mpmath():
    got = ref.kl_divergence_and_grad([M, 0.0], [M, M], target_type="logits", reverse=True,
                                     axis=0)
    assert got[0] == pytest.approx(math.log(2), rel=1e-15)
    assert got[0] == pytest.approx(_mp_kl([M, 0.0], [M, M], 1.0), rel=1e-15)
    np.testing.assert_array_equal(got[1], [0.0, 0.0])
    if divcore.backend() == "compiled":
        want = divcore.kl_divergence_and_grad([M, 0.0], [M, M], target_type="logits",
                                              reverse=True, axis=0)
        assert got[0] == pytest.approx(float(want[0]), rel=1e-15)
        np.testing.assert_array_equal(got[1], want[1])


def test_the_known_issue_js_case():
    # was docs/RELIABILITY.md's known issue 5 and a selfcheck.KNOWN_ISSUES entry
    got = ref.js_divergence([[M, M, 0.0]], [[0.0, M, M]], target_type="logits",
                            reduction="none")
    assert got[0] == pytest.approx(_mp_js([M, M, 0.0], [0.0, M, M], 1.0, 0.5), rel=1e-14)
    assert got[0] == pytest.approx(math.log(2) / 2, rel=1e-14)


@pytest.mark.parametrize("temperature", [1.0, 3.0])
@pytest.mark.parametrize("x, t", ROWS)
def test_reference_losses_near_dbl_max_match_mpmath(x, t, temperature):
    kw = dict(target_type="logits", axis=0, temperature=temperature)
    for beta in (0.5, 0.3):
        got = float(ref.js_divergence(x, t, beta=beta, **kw))
        assert _close(got, _mp_js(x, t, temperature, beta)), (beta, got)
    got = float(ref.kl_divergence(x, t, reverse=True, **kw))
    assert _close(got, _mp_kl(x, t, temperature)), ("reverse", got)
    got = float(ref.kl_divergence(x, t, **kw))
    assert _close(got, _mp_kl(t, x, temperature)), ("forward", got)


@pytest.mark.parametrize("x, t", ROWS)
def test_reference_gradients_near_dbl_max_have_no_spurious_nan(x, t):
    # a finite loss has a finite gradient (softmax terms times bounded log-ratios)
    for fn, kw in ((ref.kl_divergence_and_grad, {"reverse": True}),
                   (ref.kl_divergence_and_grad, {}), (ref.cross_entropy_and_grad, {})):
        loss, grad = fn(x, t, target_type="logits", axis=0, **kw)
        if math.isfinite(loss):
            assert np.isfinite(grad).all(), (fn.__name__, kw, loss, grad)


@pytest.mark.parametrize("values", [
    [M, M, -M],
    [M, -M, M, -M, 1.0],
    [-M, -M, M, 0.5],
    [M, M],
    [-M, -M, 1e-300],
    [M, M, -M, -INF],
    [M, M, INF, -INF],
    [M, M, math.nan],
    [M / 3, M, M, -M, -M, 2.0 ** -1074],
])
def test_fsum_is_exact_past_intermediate_overflow(values):
    with mpmath.workprec(4000):  # exact for these terms
        finite = [v for v in values if math.isfinite(v)]
        if any(math.isnan(v) for v in values) or (INF in values and -INF in values):
            want = math.nan
        elif INF in values or -INF in values:
            want = INF if INF in values else -INF
        else:
            want = float(mpmath.fsum(mpmath.mpf(v) for v in finite))
    got = _refkernels._fsum(values)
    assert got == want or (math.isnan(got) and math.isnan(want))


def test_logits_target_with_overflowing_differences_both_backends(dc):
    """x - max(x) overflows for a finite logit whose class has (underflowed) zero teacher
    mass: that class contributes 0, not 0·inf or +inf (the compiled core gave +inf)."""
    big = sys.float_info.max
    x = np.array([-big / 2, big, big])
    t = np.array([-1.0, 1e308, 1.0])
    assert dc.cross_entropy(x, t, target_type="logits", axis=0) == pytest.approx(math.log(2))
    assert dc.kl_divergence(x, t, target_type="logits", axis=0) == pytest.approx(math.log(2))
    # a true -inf logit under teacher mass still costs +inf
    assert dc.cross_entropy(np.array([-np.inf, 0.0]), np.array([0.0, 0.0]),
                            target_type="logits") == math.inf
