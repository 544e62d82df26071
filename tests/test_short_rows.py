"""Short rows (C <= 64) are computed one row per vector lane (src/divcore/lanes_t.h) for
logsumexp, log_softmax, labels and probability targets: the same values as the reference,
special values and validation included, whatever the chunk a row falls in."""
import numpy as np
import pytest

import divcore
import divcore.reference as ref

pytestmark = pytest.mark.skipif(divcore.backend() != "compiled",
                                reason="the lane kernels belong to the compiled core")


def _probs(rng, shape, dtype):
    z = rng.standard_normal(shape) * 2
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    return (p / p.sum(axis=-1, keepdims=True)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 3, 10, 16, 17, 64, 65])
@pytest.mark.parametrize("weighted", [False, True])
def test_soft_target_rows_match_the_reference(dtype, n, weighted):
    rng = np.random.default_rng(n)
    rows = 300                              # more than one chunk of 256 rows
    x = (rng.standard_normal((rows, n)) * 3).astype(dtype)
    p = _probs(rng, (rows, n), dtype)
    x[1, 0] = -np.inf                       # a masked class with target mass: +inf
    p[2] = 0
    p[2, -1] = 1
    x[2, 0] = -np.inf                       # masked, no mass: 0·log 0 = 0
    x[3] = -np.inf                          # no distribution: nan
    x[4, -1] = np.nan                       # nan row
    x[299, 0] = 40.0                        # in the second chunk, a large logit
    weight = rng.uniform(0.5, 2.0, n).astype(dtype) if weighted else None
    got = divcore.cross_entropy(x, p, weight=weight, reduction="none")
    want = np.array([ref.cross_entropy(x[i], p[i], weight=weight, reduction="sum")
                     for i in range(rows)], dtype=np.float64)
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0)
    if n > 1:
        assert got[1] == np.inf and np.isfinite(got[2]) and np.isnan(got[3])
    assert np.isnan(got[4])
    divcore.set_num_threads(2)
    try:
        assert np.array_equal(divcore.cross_entropy(x, p, weight=weight, reduction="none"),
                              got, equal_nan=True)
    finally:
        divcore.set_num_threads(0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_bad_target_row_in_a_later_chunk_is_named(dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((600, 10)).astype(dtype)
    p = _probs(rng, (600, 10), dtype)
    p[517, 3] = -0.25
    with pytest.raises(ValueError, match="row 517"):
        divcore.cross_entropy(x, p)
    p[517, 3] = np.nan
    with pytest.raises(ValueError, match="row 517"):
        divcore.cross_entropy(x, p)
    assert np.isnan(divcore.cross_entropy(x, p, validate=False, reduction="none")[517])


def test_short_rows_through_masks_temperature_and_strides():
    rng = np.random.default_rng(2)
    big = rng.standard_normal((500, 24))
    x = big[::2, ::2]                       # strided rows and classes
    p = _probs(rng, x.shape, np.float64)
    where = rng.random(x.shape) > 0.2
    where[:, 0] = True
    labels = rng.integers(0, x.shape[1], x.shape[0])
    labels[~where[np.arange(x.shape[0]), labels]] = 0
    for fn, args, kw in [
        (divcore.logsumexp, (x,), {"where": where}),
        (divcore.log_softmax, (x,), {"temperature": 1.7}),
        (divcore.cross_entropy, (x, labels), {"where": where, "temperature": 0.5,
                                              "reduction": "none"}),
        (divcore.cross_entropy, (x, p), {"temperature": 2.0, "reduction": "none"}),
    ]:
        got = fn(*args, **kw)
        want = getattr(ref, fn.__name__)(*args, **kw)
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)


# ------------------------------------------ every other operation in lanes (lanes_soft_t.h,
# lanes_grad_t.h): a short row gives what the one-row kernels give it (the same row widened
# past DC_LANES_MAX_N = 64 with classes that hold nothing: -inf logits, zero or -inf
# targets, masked), and what the reference gives it.

ROWS = 300                                  # more than one chunk of 256 rows
WIDE = 72                                   # > 64: the row-by-row kernels


def _lane_inputs(dtype, n, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((ROWS, n)) * 3).astype(dtype)
    t = (rng.standard_normal((ROWS, n)) * 3).astype(dtype)
    p = _probs(rng, (ROWS, n), dtype)
    y = rng.integers(0, n, ROWS)
    w = rng.uniform(0.5, 2.0, n).astype(dtype)
    where = rng.random((ROWS, n)) > 0.25
    where[:, 0] = True
    for r in (0, 260):                      # the same special rows in both chunks
        x[r + 1, 0] = -np.inf               # a -inf logit under target mass: +inf
        p[r + 2] = 0
        p[r + 2, -1] = 1                    # 0·log 0 = 0 at a -inf logit
        x[r + 2, 0] = -np.inf if n > 1 else x[r + 2, 0]
        x[r + 3] = -np.inf                  # no distribution: nan
        x[r + 4, n // 2] = np.nan           # a NaN row
        x[r + 5, -1] = np.inf               # +inf: nan
        t[r + 6] = x[r + 6]                 # KL exactly 0
        t[r + 7] = -np.inf                  # a target without a distribution
        x[r + 9, 0] = 40.0                  # a confident row: tiny losses
        y[r + 9] = 0
        y[r + 8] = -100                     # ignored, whatever its logits hold
        x[r + 8] = np.nan
        where[r + 10] = False               # all masked: no distribution
    y[np.flatnonzero(x[:, 0] == -np.inf)] = 0
    with np.errstate(divide="ignore"):
        lp = np.log(p)
    return x, t, p, lp, y, w, where


def _widen(a, value):
    """a (rows, n) widened to WIDE classes that hold `value`."""
    out = np.full(a.shape[:-1] + (WIDE,), value, dtype=a.dtype)
    out[..., :a.shape[-1]] = a
    return out


def _kw(name):
    """(call(dc, x, t, p, lp, y, w, where) -> array or tuple of arrays) by name."""
    lab = dict(reduction="none")
    return {
        "kl_logits": lambda dc, x, t, p, lp, y, w, m: dc.kl_divergence(
            x, t, target_type="logits", **lab),
        "decompose_logits_w": lambda dc, x, t, p, lp, y, w, m: dc.decompose(
            x, t, target_type="logits", weight=w, **lab),
        "kl_logits_masked_T": lambda dc, x, t, p, lp, y, w, m: dc.kl_divergence(
            x, t, target_type="logits", where=m, temperature=1.7, **lab),
        "kl_logits_reverse": lambda dc, x, t, p, lp, y, w, m: dc.kl_divergence(
            x, t, target_type="logits", reverse=True, **lab),
        "entropy": lambda dc, x, t, p, lp, y, w, m: dc.entropy(x),
        "entropy_masked_T": lambda dc, x, t, p, lp, y, w, m: dc.entropy(
            x, where=m, temperature=0.5),
        "decompose_probs": lambda dc, x, t, p, lp, y, w, m: dc.decompose(x, p, **lab),
        "decompose_probs_w": lambda dc, x, t, p, lp, y, w, m: dc.decompose(
            x, p, weight=w, **lab),
        "decompose_log_probs": lambda dc, x, t, p, lp, y, w, m: dc.decompose(
            x, lp, target_type="log_probs", **lab),
        "kl_probs_reverse": lambda dc, x, t, p, lp, y, w, m: dc.kl_divergence(
            x, p, reverse=True, **lab),
        "kl_log_probs_reverse": lambda dc, x, t, p, lp, y, w, m: dc.kl_divergence(
            x, lp, target_type="log_probs", reverse=True, **lab),
        "ce_labels_grad": lambda dc, x, t, p, lp, y, w, m: dc.cross_entropy_and_grad(
            x, y, **lab),
        "ce_labels_grad_w_masked": lambda dc, x, t, p, lp, y, w, m: dc.cross_entropy_and_grad(
            x, y, weight=w, where=m, reduction="mean"),
        "ce_probs_grad": lambda dc, x, t, p, lp, y, w, m: dc.cross_entropy_and_grad(
            x, p, weight=w, **lab),
        "kl_probs_grad": lambda dc, x, t, p, lp, y, w, m: dc.kl_divergence_and_grad(x, p, **lab),
        "kl_log_probs_grad": lambda dc, x, t, p, lp, y, w, m: dc.kl_divergence_and_grad(
            x, lp, target_type="log_probs", **lab),
        "kl_logits_grad": lambda dc, x, t, p, lp, y, w, m: dc.kl_divergence_and_grad(
            x, t, target_type="logits", **lab),
        "kl_reverse_grad": lambda dc, x, t, p, lp, y, w, m: dc.kl_divergence_and_grad(
            x, p, reverse=True, **lab),
        "kl_logits_reverse_grad": lambda dc, x, t, p, lp, y, w, m: dc.kl_divergence_and_grad(
            x, t, target_type="logits", reverse=True, **lab),
        "smoothed_labels": lambda dc, x, t, p, lp, y, w, m: dc.decompose(
            x, y, label_smoothing=0.1, where=m, **lab),
        "smoothed_labels_grad_w": lambda dc, x, t, p, lp, y, w, m: dc.cross_entropy_and_grad(
            x, y, label_smoothing=0.2, weight=w, where=m, reduction="sum"),
        "smoothed_probs": lambda dc, x, t, p, lp, y, w, m: dc.decompose(
            x, p, label_smoothing=0.1, where=m, **lab),
        "smoothed_probs_grad": lambda dc, x, t, p, lp, y, w, m: dc.cross_entropy_and_grad(
            x, p, label_smoothing=0.1, where=m, **lab),
        "js_probs": lambda dc, x, t, p, lp, y, w, m: dc.js_divergence(x, p, **lab),
        "js_log_probs_beta": lambda dc, x, t, p, lp, y, w, m: dc.js_divergence(
            x, lp, target_type="log_probs", beta=0.2, **lab),
        "js_logits_masked": lambda dc, x, t, p, lp, y, w, m: dc.js_divergence(
            x, t, target_type="logits", where=m, beta=0.7, **lab),
    }[name]


LANE_OPS = ["kl_logits", "decompose_logits_w", "kl_logits_masked_T", "kl_logits_reverse",
            "entropy", "entropy_masked_T", "decompose_probs", "decompose_probs_w",
            "decompose_log_probs", "kl_probs_reverse", "kl_log_probs_reverse",
            "ce_labels_grad", "ce_labels_grad_w_masked", "ce_probs_grad", "kl_probs_grad",
            "kl_log_probs_grad", "kl_logits_grad", "kl_reverse_grad",
            "kl_logits_reverse_grad", "smoothed_labels", "smoothed_labels_grad_w",
            "smoothed_probs", "smoothed_probs_grad", "js_probs", "js_log_probs_beta",
            "js_logits_masked"]


def _parts(value):
    if isinstance(value, tuple):
        return [np.asarray(v, dtype=np.float64) for v in value]
    return [np.asarray(value, dtype=np.float64)]


def _assert_close(got, want, dtype, scale, what):
    rtol = 4e-6 if dtype == np.float32 else 1e-12
    for g, v in zip(got, want):
        if g.ndim == 2 and v.shape[-1] != g.shape[-1]:
            v = v[:, :g.shape[-1]]          # a widened row's gradient: its first classes
        assert np.array_equal(np.isnan(g), np.isnan(v)), what
        inf = np.isinf(g) | np.isinf(v)
        assert np.array_equal(g[inf], v[inf]), what
        ok = ~np.isnan(g) & ~inf
        np.testing.assert_allclose(g[ok], v[ok], rtol=rtol, atol=rtol * scale, err_msg=what)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", LANE_OPS)
def test_lanes_match_the_one_row_kernels(name, dtype):
    call = _kw(name)
    with np.errstate(all="ignore"):
        for n in range(1, 65):
            x, t, p, lp, y, w, m = _lane_inputs(dtype, n, n)
            got = _parts(call(divcore, x, t, p, lp, y, w, m))
            want = _parts(call(divcore, _widen(x, -np.inf), _widen(t, -np.inf), _widen(p, 0),
                               _widen(lp, -np.inf), y,
                               np.concatenate([w, np.ones(WIDE - n, dtype)]),
                               _widen(m, False)))
            _assert_close(got, want, dtype, 50.0, f"{name} n={n}")
            if n in (1, 10, 64):            # and a second thread gives the same bits
                divcore.set_num_threads(2)
                try:
                    again = _parts(call(divcore, x, t, p, lp, y, w, m))
                finally:
                    divcore.set_num_threads(0)
                for a, b in zip(again, got):
                    assert np.array_equal(a, b, equal_nan=True), f"{name} n={n} threads"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", LANE_OPS)
@pytest.mark.parametrize("n", [1, 2, 10, 17, 64])
def test_lanes_match_the_reference(name, dtype, n):
    call = _kw(name)
    x, t, p, lp, y, w, m = _lane_inputs(dtype, n, 100 + n)
    rows = np.r_[0:14, 256:274]             # the special rows and a chunk boundary
    args = (x[rows], t[rows], p[rows], lp[rows], y[rows], w, m[rows])
    with np.errstate(all="ignore"):
        got = _parts(call(divcore, *args))
        want = _parts(call(ref, *args))
    _assert_close(got, want, dtype, 50.0, f"{name} n={n}")


def test_lane_log_of_targets_is_within_an_ulp():
    """The reverse KL of a probability target takes log p in double lanes: against
    log-probabilities (the exact log given) it agrees to the last bits, over p spanning
    every binade of float64 (subnormals included)."""
    rng = np.random.default_rng(5)
    n = 8
    e = rng.uniform(-1074, 0, (4000, n))
    p = np.exp2(e)
    p /= p.sum(axis=1, keepdims=True)
    x = rng.standard_normal((4000, n))
    a = divcore.kl_divergence(x, p, reverse=True, reduction="none", validate=False)
    with np.errstate(divide="ignore"):
        b = divcore.kl_divergence(x, np.log(p), target_type="log_probs", reverse=True,
                                  reduction="none", validate=False)
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("beta", [0.5, 0.1])
def test_lane_js_keeps_relative_precision_for_near_equal_rows(beta):
    """JS of p and q that differ by 1e-6 relative is ~1e-13: the lanes' expm1 and log1p
    keep it to many digits, as the row kernel does (the rows widened past 64 values)."""
    rng = np.random.default_rng(9)
    for n in (2, 10, 64):
        x = rng.standard_normal((50, n)) * 2
        q = np.exp(x - x.max(axis=1, keepdims=True))
        q /= q.sum(axis=1, keepdims=True)
        p = q * (1 + 1e-6 * rng.standard_normal((50, n)))
        p /= p.sum(axis=1, keepdims=True)
        got = divcore.js_divergence(x, p, beta=beta, reduction="none")
        want = divcore.js_divergence(_widen(x, -np.inf), _widen(p, 0), beta=beta,
                                     reduction="none")
        assert np.all(got > 0)
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=0)
