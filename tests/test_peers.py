"""divcore against its peers: SciPy parity, and one test per row of docs/differences.md
asserting the documented difference (each skips cleanly when its peer is missing)."""
import warnings

import numpy as np
import pytest

from _helpers import random_probs


def _torch():
    return pytest.importorskip("torch")


def _t(torch, a):
    return torch.from_numpy(np.ascontiguousarray(a))


# ======================================================================== SciPy parity


@pytest.mark.parametrize("shape,axis", [((6, 9), -1), ((6, 9), 0), ((3, 5, 4), 1)])
def test_kl_is_row_sum_of_rel_entr(dc, rng, shape, axis):
    special = pytest.importorskip("scipy.special")
    p = random_probs(rng, shape, axis, p_zero=0.25)
    q = random_probs(rng, shape, axis, p_zero=0.25)
    q = np.where(p > 0, np.maximum(q, 1e-3), q)   # q = 0 only where p = 0
    q /= q.sum(axis=axis, keepdims=True)
    with np.errstate(divide="ignore"):
        logq = np.log(q)                           # -inf where q = 0
    expected = special.rel_entr(p, q).sum(axis=axis)
    got = dc.kl_divergence(logq, p, axis=axis, reduction="none")
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    # p > 0 where q = 0: both say +inf
    x = np.array([0.0, -np.inf, 1.0])
    pp = np.array([0.5, 0.25, 0.25])
    qq = np.exp(x - np.log(np.exp(x).sum()))
    assert np.isposinf(special.rel_entr(pp, qq).sum())
    assert np.isposinf(dc.kl_divergence(x, pp))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kl_rel_entr_float32_logits(dc, rng, dtype):
    special = pytest.importorskip("scipy.special")
    p = random_probs(rng, (5, 7), p_zero=0.2)
    q = random_probs(rng, (5, 7))
    logq = np.log(q).astype(dtype)
    # the reference value for the logits actually passed (rounded to dtype)
    q_exact = np.exp(logq.astype(np.float64))
    q_exact /= q_exact.sum(-1, keepdims=True)
    expected = special.rel_entr(p, q_exact).sum(-1)
    got = dc.kl_divergence(logq, p.astype(dtype), reduction="none")
    assert got.dtype == np.dtype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * 1e-2)


@pytest.mark.parametrize("base", [None, 2])
@pytest.mark.parametrize("axis", [-1, 0])
def test_entropy_matches_scipy_stats_entropy(dc, rng, base, axis):
    stats = pytest.importorskip("scipy.stats")
    p = random_probs(rng, (6, 8), axis, p_zero=0.2)
    expected = stats.entropy(p, base=base, axis=axis)
    got = dc.entropy(p, axis=axis, input_type="probs", base=base)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    # the same through logits: entropy(log p) is the entropy of softmax(log p) = p
    with np.errstate(divide="ignore"):
        got = dc.entropy(np.log(p), axis=axis, base=base)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


# =================================================== docs/differences.md, row by row


def test_diff_soft_target_zero_on_neg_inf_logit_torch_nan(dc):
    torch = _torch()
    F = torch.nn.functional
    x = np.array([[0.5, -np.inf, 2.0], [1.0, 0.0, -np.inf]])
    p = np.array([[0.3, 0.0, 0.7], [0.4, 0.6, 0.0]])
    peer = F.cross_entropy(_t(torch, x), _t(torch, p), reduction="none").numpy()
    assert np.isnan(peer).all()
    got = dc.cross_entropy(x, p, reduction="none")
    # finite: the same as the problem without the -inf class
    for i, keep in enumerate([[0, 2], [0, 1]]):
        alone = F.cross_entropy(_t(torch, x[i:i + 1, keep]), _t(torch, p[i:i + 1, keep]))
        assert np.isclose(got[i], alone.item(), rtol=1e-13)


def test_diff_bce_infinite_logit_with_matching_label(dc):
    torch = _torch()
    F = torch.nn.functional
    x = np.array([np.inf, -np.inf])
    y = np.array([1.0, 0.0])
    peer = F.binary_cross_entropy_with_logits(_t(torch, x), _t(torch, y), reduction="none")
    assert np.isnan(peer.numpy()).all()
    np.testing.assert_array_equal(dc.binary_cross_entropy(x, y, reduction="none"), [0.0, 0.0])


def test_diff_kl_div_mean_is_over_elements(dc, rng):
    torch = _torch()
    F = torch.nn.functional
    n, c = 5, 7
    x = rng.standard_normal((n, c))
    t = rng.standard_normal((n, c))
    lq = F.log_softmax(_t(torch, x), -1)
    lp = F.log_softmax(_t(torch, t), -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # torch's own note on this
        peer_mean = F.kl_div(lq, lp, log_target=True, reduction="mean").item()
    peer_batchmean = F.kl_div(lq, lp, log_target=True, reduction="batchmean").item()
    got = dc.kl_divergence(x, t, target_type="logits")
    assert np.isclose(got, peer_batchmean, rtol=1e-12)
    assert np.isclose(got, peer_mean * c, rtol=1e-12)
    assert not np.isclose(got, peer_mean, rtol=1e-3)


def test_diff_kl_div_takes_log_probabilities_divcore_takes_logits(dc, rng):
    torch = _torch()
    F = torch.nn.functional
    x = rng.standard_normal((4, 6)) * 2 + 3     # raw logits, far from normalised
    p = random_probs(rng, (4, 6))
    got = dc.kl_divergence(x, p, reduction="sum")
    right = F.kl_div(F.log_softmax(_t(torch, x), -1), _t(torch, p), reduction="sum").item()
    raw = F.kl_div(_t(torch, x), _t(torch, p), reduction="sum").item()
    assert np.isclose(got, right, rtol=1e-12)
    assert not np.isclose(got, raw, rtol=1e-3)


def test_diff_float16_result_dtype(dc, rng):
    torch = _torch()
    F = torch.nn.functional
    x = (rng.standard_normal((6, 5)) * 3).astype(np.float16)
    y = rng.integers(0, 5, 6)
    peer = F.cross_entropy(_t(torch, x), _t(torch, y), reduction="none")
    assert peer.dtype == torch.float16
    got = dc.cross_entropy(x, y, reduction="none")
    assert got.dtype == np.float32
    # computed in float32 from the float16 values: float32 accuracy, not float16's
    exact = F.cross_entropy(_t(torch, x.astype(np.float64)), _t(torch, y),
                            reduction="none").numpy()
    np.testing.assert_allclose(got, exact, rtol=1e-6, atol=1e-6)
    assert np.abs(got - exact).max() <= np.abs(peer.numpy().astype(np.float64) - exact).max()


def test_diff_distillation_has_no_t_squared_factor(dc, rng):
    torch = _torch()
    F = torch.nn.functional
    temp = 3.0
    x = rng.standard_normal((6, 10)) * 3
    t = rng.standard_normal((6, 10)) * 3
    # the usual distillation loss (Hinton et al.): KL at temperature T, times T^2
    usual = F.kl_div(F.log_softmax(_t(torch, x) / temp, -1), F.softmax(_t(torch, t) / temp, -1),
                     reduction="batchmean").item() * temp ** 2
    got = dc.kl_divergence(x, t, target_type="logits", temperature=temp)
    assert np.isclose(got * temp ** 2, usual, rtol=1e-12)
    assert not np.isclose(got, usual, rtol=1e-3)


def test_diff_scipy_entropy_renormalises_divcore_raises(dc):
    stats = pytest.importorskip("scipy.stats")
    p = np.array([[0.25, 0.25, 0.5], [0.2, 0.3, 0.6]])   # row 1 sums to 1.1
    assert np.isclose(stats.entropy(p[1]), stats.entropy(p[1] / p[1].sum()), rtol=1e-14)
    with pytest.raises(ValueError, match=r"row 1 .*sums to 1\.1"):
        dc.entropy(p, input_type="probs")


def test_diff_scipy_jensenshannon_is_the_distance(dc, rng):
    distance = pytest.importorskip("scipy.spatial.distance")
    p = random_probs(rng, (5, 6))
    q = random_probs(rng, (5, 6))
    d = distance.jensenshannon(p, q, axis=-1)          # base e
    js = dc.js_divergence(np.log(q), p, reduction="none")
    np.testing.assert_allclose(js, d ** 2, rtol=1e-10)
    assert not np.allclose(js, d, rtol=1e-3)
    # SciPy renormalises its input; divcore refuses an unnormalised target
    assert np.allclose(distance.jensenshannon(3 * p[0], q[0]), d[0], rtol=1e-12)
    with pytest.raises(ValueError, match="row 0"):
        dc.js_divergence(np.log(q), 3 * p)
    # near-identical inputs: SciPy's sqrt of a rounding-negative sum can be nan;
    # divcore's JS is >= 0 and finite
    r = np.random.default_rng(99)
    saw_nan = False
    for _ in range(100):
        a = r.dirichlet(np.ones(5))
        b = a * (1 + 1e-15 * r.standard_normal(5))
        b /= b.sum()
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            saw_nan |= bool(np.isnan(distance.jensenshannon(a, b)))
        v = dc.js_divergence(np.log(b), a)
        assert v >= 0 and np.isfinite(v)
    assert saw_nan, "SciPy no longer gives nan here: update docs/differences.md"


def test_diff_scipy_logsumexp_of_pos_inf(dc):
    special = pytest.importorskip("scipy.special")
    x = np.array([[0.0, np.inf, 1.0], [0.0, 1.0, 2.0]])
    peer = special.logsumexp(x, axis=-1)
    assert np.isposinf(peer[0])
    got = dc.logsumexp(x)
    assert np.isnan(got[0])
    assert np.isclose(got[1], peer[1], rtol=1e-15)
    assert np.isnan(dc.softmax(x)[0]).all()


def test_diff_label_smoothing_with_where(dc, rng):
    torch = _torch()
    F = torch.nn.functional
    eps = 0.2
    x = rng.standard_normal((5, 6)) * 2
    where = np.array([True, False, True, True, False, True])
    kept = np.flatnonzero(where)
    y = rng.choice(kept, 5)
    got = dc.cross_entropy(x, y, where=where, label_smoothing=eps, reduction="none")
    # divcore = torch on the unmasked classes only (ε/4 on each of the 4 kept classes)
    y_kept = np.searchsorted(kept, y)
    alone = F.cross_entropy(_t(torch, x[:, kept]), _t(torch, y_kept), label_smoothing=eps,
                            reduction="none").numpy()
    np.testing.assert_allclose(got, alone, rtol=1e-13)
    # torch, masking with -inf logits (it has no `where`), puts ε/C on them: +inf
    xm = np.where(where, x, -np.inf)
    peer = F.cross_entropy(_t(torch, xm), _t(torch, y), label_smoothing=eps,
                           reduction="none").numpy()
    assert np.isposinf(peer).all()


def test_diff_weight_with_soft_targets_mean_same_as_torch(dc, rng):
    torch = _torch()
    F = torch.nn.functional
    n, c = 6, 5
    x = rng.standard_normal((n, c)) * 2
    p = random_probs(rng, (n, c))
    w = rng.uniform(0.2, 3.0, c)
    peer = F.cross_entropy(_t(torch, x), _t(torch, p), weight=_t(torch, w)).item()
    got = dc.cross_entropy(x, p, weight=w)
    rows = dc.cross_entropy(x, p, weight=w, reduction="none")
    assert np.isclose(got, peer, rtol=1e-12)
    assert np.isclose(got, rows.sum() / n, rtol=1e-13)
    # labels: Σ w_y l / Σ w_y (torch's rule there too)
    y = rng.integers(0, c, n)
    peer = F.cross_entropy(_t(torch, x), _t(torch, y), weight=_t(torch, w)).item()
    rows = dc.cross_entropy(x, y, weight=w, reduction="none")
    assert np.isclose(dc.cross_entropy(x, y, weight=w), peer, rtol=1e-12)
    assert np.isclose(peer, rows.sum() / w[y].sum(), rtol=1e-12)
    assert not np.isclose(peer, rows.sum() / n, rtol=1e-6)


def test_every_row_of_differences_md_is_tested():
    import os
    import re

    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(os.path.dirname(here), "docs", "differences.md")
    if not os.path.exists(path):
        pytest.skip("docs/differences.md not in this checkout")
    with open(path, encoding="utf-8") as fh:
        rows = [ln for ln in fh if ln.startswith("|") and not re.match(r"\|\s*-", ln)]
    rows = rows[1:]   # the header
    tests = [name for name in globals() if name.startswith("test_diff_")]
    assert len(rows) == len(tests), (
        f"{len(rows)} rows in docs/differences.md, {len(tests)} test_diff_* tests")
