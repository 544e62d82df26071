"""divcore against scipy.special / scipy.stats on random data."""
import numpy as np
import pytest

special = pytest.importorskip("scipy.special")
stats = pytest.importorskip("scipy.stats")

SHAPES_AXES = [((7,), -1), ((7,), 0), ((4, 9), -1), ((4, 9), 0), ((3, 5, 6), 1),
               ((3, 5, 6), -1), ((3, 5, 6), 0), ((2, 2000), -1)]


def _tol(dtype):
    return (2e-6, 2e-6) if dtype == np.float32 else (1e-13, 1e-13)


@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logsumexp_softmax_log_softmax(dc, rng, shape, axis, dtype):
    if dc.__name__ == "divcore.reference" and np.prod(shape) > 500:
        shape = shape[:-1] + (50,)
    x = (rng.standard_normal(shape) * 5 + 3).astype(dtype)
    x64 = x.astype(np.float64)
    rtol, atol = _tol(dtype)
    scale = 1 + np.abs(x64).max()
    np.testing.assert_allclose(dc.logsumexp(x, axis=axis),
                               special.logsumexp(x64, axis=axis), rtol=rtol, atol=atol * scale)
    np.testing.assert_allclose(dc.logsumexp(x, axis=axis, keepdims=True),
                               special.logsumexp(x64, axis=axis, keepdims=True), rtol=rtol,
                               atol=atol * scale)
    np.testing.assert_allclose(dc.log_softmax(x, axis=axis),
                               special.log_softmax(x64, axis=axis), rtol=rtol,
                               atol=atol * scale)
    np.testing.assert_allclose(dc.softmax(x, axis=axis), special.softmax(x64, axis=axis),
                               rtol=rtol * scale, atol=1e-300)


def test_logsumexp_with_neg_inf_like_scipy(dc, rng):
    x = rng.standard_normal((6, 8))
    x[rng.random((6, 8)) < 0.3] = -np.inf
    x[0] = -np.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = special.logsumexp(x, axis=-1)
    np.testing.assert_allclose(dc.logsumexp(x), expected, rtol=1e-13)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("base", [None, 2, 10])
def test_entropy_of_probs_matches_scipy_stats(dc, rng, axis, base):
    p = np.exp(rng.standard_normal((5, 7)) * 2)
    p[rng.random((5, 7)) < 0.2] = 0
    p[0, 0] = p[0, 0] + 1e-3
    p /= p.sum(axis=axis, keepdims=True)
    got = dc.entropy(p, axis=axis, input_type="probs", base=base)
    np.testing.assert_allclose(got, stats.entropy(p, axis=axis, base=base), rtol=1e-13,
                               atol=1e-15)
    with np.errstate(divide="ignore"):
        logp = np.log(p)
    got = dc.entropy(logp, axis=axis, input_type="log_probs", base=base)
    np.testing.assert_allclose(got, stats.entropy(p, axis=axis, base=base), rtol=1e-13,
                               atol=1e-15)


@pytest.mark.parametrize("axis", [0, -1])
def test_entropy_of_logits_matches_scipy(dc, rng, axis):
    x = rng.standard_normal((6, 9)) * 3
    q = special.softmax(x, axis=axis)
    np.testing.assert_allclose(dc.entropy(x, axis=axis), stats.entropy(q, axis=axis),
                               rtol=1e-12)


@pytest.mark.parametrize("axis", [0, -1])
def test_kl_matches_rel_entr(dc, rng, axis):
    # kl_divergence(logits, target) = KL(target || softmax(logits)); logits = log q
    # reproduces the normalised q exactly up to rounding.
    p = np.exp(rng.standard_normal((6, 9)) * 2)
    p[rng.random((6, 9)) < 0.2] = 0
    p[0, 0] += 1e-3
    p /= p.sum(axis=axis, keepdims=True)
    q = np.exp(rng.standard_normal((6, 9)) * 2)
    q /= q.sum(axis=axis, keepdims=True)
    expected = special.rel_entr(p, q).sum(axis=axis)
    got = dc.kl_divergence(np.log(q), p, axis=axis, reduction="none")
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got, stats.entropy(p, q, axis=axis), rtol=1e-12, atol=1e-14)
    # mean over rows and reverse KL
    assert np.isclose(dc.kl_divergence(np.log(q), p, axis=axis), expected.mean(), rtol=1e-12)
    rev = dc.kl_divergence(np.log(q), p, axis=axis, reverse=True, reduction="none")
    np.testing.assert_allclose(rev, special.rel_entr(q, p).sum(axis=axis), rtol=1e-12)
    # cross-entropy = H(p) + KL(p || q)
    ce = dc.cross_entropy(np.log(q), p, axis=axis, reduction="none")
    np.testing.assert_allclose(ce, stats.entropy(p, axis=axis) + expected, rtol=1e-12)
