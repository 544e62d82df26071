"""The long-row terms that issue 16 moved into vector loops, against float64 and exact sums:
the target's entropy Σ p log p (a vector log per entry: zeros, subnormal and tiny
probabilities, log-probability targets) and the one-pass entropy of float32 logits (its
two-sum-corrected exp, and the double recomputation of very peaked rows)."""
import math

import numpy as np
import pytest


def _exact_entropy_logits(row):
    r = np.asarray(row, dtype=np.float64)
    m = r.max()
    e = np.exp(r - m)
    top = r == m
    rest = math.fsum(e[~top].tolist()) + (int(top.sum()) - 1)
    keep = e > 0
    u = math.fsum((e[keep] * (m - r[keep])).tolist())
    return math.log1p(rest) + u / (rest + 1)


def _f32_ulps(got, exact):
    return abs(float(got) - exact) / float(np.spacing(np.float32(abs(exact))))


@pytest.mark.parametrize("c", [16, 100, 1037, 5000])
def test_target_entropy_float32_with_zero_tiny_and_subnormal_entries(compiled_or_any, c):
    dc = compiled_or_any
    rng = np.random.default_rng(c)
    p = np.exp(rng.standard_normal((4, c)) * 3)
    p[0, ::5] = 0.0
    p[1, ::7] = 1e-30
    p[2, ::3] = 1e-40                       # subnormal in float32
    p /= p.sum(-1, keepdims=True)
    p32 = p.astype(np.float32)
    x = rng.standard_normal((4, c)).astype(np.float32)
    d = dc.decompose(x, p32, reduction="none")
    h_probs = dc.entropy(p32, input_type="probs")
    with np.errstate(divide="ignore"):
        lp = np.log(p32.astype(np.float64)).astype(np.float32)   # -inf where p = 0
    kl_lp = dc.kl_divergence(x, lp, target_type="log_probs", reduction="none")
    for i in range(4):
        q = p32[i].astype(np.float64)
        k = q > 0
        exact_h = -math.fsum((q[k] * np.log(q[k])).tolist())
        assert _f32_ulps(d.entropy[i], exact_h) <= 8, (i, float(d.entropy[i]), exact_h)
        assert _f32_ulps(h_probs[i], exact_h) <= 8, (i, float(h_probs[i]), exact_h)
        # KL against the log-probabilities: within float32 sums of the probabilities' KL
        np.testing.assert_allclose(kl_lp[i], d.kl_divergence[i], rtol=1e-5, atol=1e-6)


def test_target_entropy_bad_entries_still_nan_without_validation(compiled_or_any):
    dc = compiled_or_any
    x = np.zeros((2, 100), dtype=np.float32)
    p = np.full((2, 100), 0.01, dtype=np.float32)
    p[0, 40] = -0.01
    p[1, 41] = np.nan
    d = dc.decompose(x, p, reduction="none", validate=False)
    assert np.isnan(d.entropy).all()
    with pytest.raises(ValueError):
        dc.kl_divergence(x, p)


@pytest.mark.parametrize("scale", [0.1, 1.0, 3.0, 10.0, 30.0])
@pytest.mark.parametrize("offset", [0.0, 12.3, -1000.0])
def test_entropy_of_float32_logits_within_2_ulps(compiled_or_any, scale, offset):
    dc = compiled_or_any
    rng = np.random.default_rng(int(scale * 10) + int(abs(offset)))
    x = (rng.standard_normal((4, 1037)) * scale + offset).astype(np.float32)
    x[1, 7] += 25                            # a dominant class
    x[2, :5] = -np.inf
    x[3, 3] = x[3].max() + 60                # peaked: tiny terms, far from the max
    h = dc.entropy(x)
    for i in range(4):
        exact = _exact_entropy_logits(x[i])
        assert _f32_ulps(h[i], exact) <= 2, (i, float(h[i]), exact)


@pytest.mark.parametrize("gap", [80.0, 87.0, 95.0, 100.0, 103.0])
def test_entropy_of_very_peaked_float32_rows(compiled_or_any, gap):
    # float32 exps of the small terms are subnormal: the row is computed in double
    dc = compiled_or_any
    x = np.zeros((1, 300), dtype=np.float32)
    x[0, 17] = gap
    h = float(dc.entropy(x)[0])
    exact = _exact_entropy_logits(x[0])
    if exact > 1e-37:
        assert abs(h / exact - 1) < 1e-6, (gap, h, exact)
