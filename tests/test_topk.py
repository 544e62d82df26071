"""TopK targets (SPEC §7): divcore.TopK against dense float64 oracles built here.

The oracle builds the coarse-grained distributions explicitly from a dense float64
softmax of the student: the rest's mass q_r is summed over the classes outside K (never
1 - Q, which the kernels use through log1mexp), the teacher's rest is 1 - P; then CE, H,
KL, reverse KL and JS are the textbook sums over the cells. Edge cases that need more
than float64 (a rest that underflows) use mpmath. Both backends are checked, and the
compiled one against the reference.
"""
import ctypes
import math
import os
import shutil
import subprocess

import numpy as np
import pytest

import divcore
import divcore.reference as reference

BACKENDS = [pytest.param(divcore, id="compiled"), pytest.param(reference, id="reference")]
TAILS = ("bucket", "drop", "renormalize")


# ----------------------------------------------------------------------------- oracle

def _dense_log_softmax(x, where=None, temperature=1.0):
    x = np.asarray(x, dtype=np.float64) / temperature
    if where is not None:
        x = np.where(where, x, -np.inf)
    m = np.max(x, axis=-1, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))


def _cells(x, idx, vals, kind, tail, where=None, temperature=1.0):
    """Per row: (p cells, q cells) as float64 arrays of k + 1 entries (the last: the rest)."""
    lq = _dense_log_softmax(x, where, temperature)
    q = np.exp(lq)
    out = []
    for i in range(x.shape[0]):
        K = list(idx[i])
        v = np.asarray(vals[i], dtype=np.float64)
        p = np.exp(v) if kind == "log_probs" else v.copy()
        qk = q[i, K]
        outside = np.ones(x.shape[1], bool)
        outside[K] = False
        q_rest = float(np.sum(q[i, outside]))
        P = float(np.sum(p))
        if tail == "bucket":
            pc = np.append(p, max(1.0 - P, 0.0))
            qc = np.append(qk, q_rest)
        elif tail == "drop":
            pc = np.append(p / P, 0.0)
            qc = np.append(qk, q_rest)
        else:
            pc = np.append(p / P, 0.0)
            qc = np.append(qk / np.sum(qk), 0.0)
        out.append((pc, qc))
    return out


def _xlogy(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a == 0, 0.0, a * np.log(b))


def oracle(x, topk, tail="bucket", where=None, temperature=1.0, beta=0.5):
    """dict of per-row float64: ce, h, kl, kl_rev, js."""
    res = {k: [] for k in ("ce", "h", "kl", "kl_rev", "js")}
    idx = np.asarray(topk.indices).reshape(-1, topk.k)
    vals = np.asarray(topk.values).reshape(-1, topk.k)
    for p, q in _cells(np.asarray(x).reshape(-1, np.shape(x)[-1]), idx, vals, topk.kind,
                       tail, where, temperature):
        res["ce"].append(-np.sum(_xlogy(p, q)))
        res["h"].append(-np.sum(_xlogy(p, p)))
        with np.errstate(divide="ignore", invalid="ignore"):
            res["kl"].append(max(np.sum(_xlogy(p, p) - _xlogy(p, q)), 0.0))
            res["kl_rev"].append(max(np.sum(_xlogy(q, q) - _xlogy(q, p)), 0.0))
            m = beta * p + (1 - beta) * q
            js = beta * np.sum(_xlogy(p, p) - _xlogy(p, m)) + (1 - beta) * np.sum(
                _xlogy(q, q) - _xlogy(q, m))
        res["js"].append(max(js, 0.0))
    return {k: np.array(v) for k, v in res.items()}


def random_case(rng, n=6, c=40, k=7, kind="log_probs", dtype=np.float64, scale=2.0):
    """Student logits, and a TopK of a random teacher's k best classes (shuffled order)."""
    x = (rng.standard_normal((n, c)) * scale).astype(dtype)
    t = rng.standard_normal((n, c)) * scale
    lp = _dense_log_softmax(t)
    idx = np.argsort(-lp, axis=-1)[:, :k]
    idx = np.array([rng.permutation(r) for r in idx])
    vals = np.take_along_axis(lp, idx, -1)
    if kind == "probs":
        vals = np.exp(vals)
    return x, divcore.TopK(idx, vals.astype(dtype), kind=kind), t


# -------------------------------------------------------------------- values and oracle

@pytest.mark.parametrize("mod", BACKENDS)
@pytest.mark.parametrize("tail", TAILS)
@pytest.mark.parametrize("kind", ["log_probs", "probs"])
def test_losses_match_the_oracle(mod, tail, kind):
    rng = np.random.default_rng(1)
    x, topk, _ = random_case(rng, kind=kind)
    o = oracle(x, topk, tail)
    kw = dict(tail=tail, reduction="none")
    np.testing.assert_allclose(mod.cross_entropy(x, topk, **kw), o["ce"], rtol=1e-12)
    np.testing.assert_allclose(mod.kl_divergence(x, topk, **kw), o["kl"], rtol=1e-10,
                               atol=1e-14)
    d = mod.decompose(x, topk, **kw)
    np.testing.assert_allclose(d.entropy, o["h"], rtol=1e-12)
    np.testing.assert_allclose(d.cross_entropy, d.entropy + d.kl_divergence, rtol=1e-12)
    if tail == "drop":  # the student's cells are not a distribution: no JS
        with pytest.raises(ValueError, match="tail='drop'"):
            mod.js_divergence(x, topk, **kw)
    else:
        np.testing.assert_allclose(mod.js_divergence(x, topk, **kw), o["js"], rtol=1e-10,
                                   atol=1e-14)
        np.testing.assert_allclose(mod.js_divergence(x, topk, beta=0.2, **kw),
                                   oracle(x, topk, tail, beta=0.2)["js"], rtol=1e-10,
                                   atol=1e-14)
    if tail != "drop":
        np.testing.assert_allclose(mod.kl_divergence(x, topk, reverse=True, **kw),
                                   o["kl_rev"], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("tail", TAILS)
def test_float32(tail):
    rng = np.random.default_rng(2)
    x, topk, _ = random_case(rng, n=8, c=300, k=20, dtype=np.float32)
    got = divcore.kl_divergence(x, topk, tail=tail, reduction="none")
    assert got.dtype == np.float32
    o = oracle(x.astype(np.float64), topk, tail)["kl"]
    np.testing.assert_allclose(got, o, rtol=2e-5, atol=1e-6)
    ref = reference.kl_divergence(x, topk, tail=tail, reduction="none")
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("tail", TAILS)
@pytest.mark.parametrize("kind", ["log_probs", "probs"])
def test_compiled_matches_reference(tail, kind):
    rng = np.random.default_rng(3)
    for _ in range(4):
        x, topk, _ = random_case(rng, n=5, c=int(rng.integers(2, 90)), k=1, kind=kind)
        k = int(rng.integers(1, x.shape[1] + 1))
        x, topk, _ = random_case(rng, n=5, c=x.shape[1], k=k, kind=kind)
        T = float(rng.uniform(0.5, 3))
        for fn in ("cross_entropy", "kl_divergence", "js_divergence")[:3 - (tail == "drop")]:
            a = getattr(divcore, fn)(x, topk, tail=tail, temperature=T, reduction="none")
            b = getattr(reference, fn)(x, topk, tail=tail, temperature=T, reduction="none")
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_bucket_kl_is_at_most_the_dense_kl():
    """Coarse-graining never increases a KL: KL(p̃ ‖ q̃) <= KL(p ‖ q)."""
    rng = np.random.default_rng(4)
    for trial in range(30):
        c = int(rng.integers(2, 200))
        k = int(rng.integers(1, c + 1))
        x = rng.standard_normal((4, c)) * rng.uniform(0.1, 6)
        t = rng.standard_normal((4, c)) * rng.uniform(0.1, 6)
        topk = divcore.TopK.from_logits(t, k)
        coarse = divcore.kl_divergence(x, topk, reduction="none")
        dense = divcore.kl_divergence(x, t, target_type="logits", reduction="none")
        assert np.all(coarse <= dense * (1 + 1e-12) + 1e-15), trial


@pytest.mark.parametrize("mod", BACKENDS)
def test_k_equal_c_is_the_dense_loss(mod):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 12))
    t = rng.standard_normal((3, 12))
    topk = divcore.TopK.from_logits(t, 12)
    for tail in TAILS:
        np.testing.assert_allclose(
            mod.kl_divergence(x, topk, tail=tail, reduction="none"),
            divcore.kl_divergence(x, t, target_type="logits", reduction="none"),
            rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(
            mod.cross_entropy(x, topk, tail=tail, reduction="none"),
            divcore.cross_entropy(x, divcore.softmax(t), reduction="none"), rtol=1e-12)


@pytest.mark.parametrize("mod", BACKENDS)
def test_teacher_mass_of_one_has_no_rest(mod):
    """p_r = 0: no rest term (0·log 0), even where the student's rest is 0 (masked)."""
    x = np.array([[1.0, 2.0, 0.5, -np.inf, -np.inf]])
    topk = divcore.TopK([[1, 0, 2]], [[0.5, 0.25, 0.25]], kind="probs")
    q = np.exp(_dense_log_softmax(x))[0, [1, 0, 2]]
    p = np.array([0.5, 0.25, 0.25])
    assert mod.kl_divergence(x, topk) == pytest.approx(np.sum(p * np.log(p / q)), rel=1e-12)


@pytest.mark.parametrize("mod", BACKENDS)
def test_rest_of_student_zero_gives_inf(mod):
    """p_r > 0 against q_r = 0 (every class outside K masked) gives +inf."""
    x = np.array([[1.0, 2.0, 0.5, -np.inf]])
    topk = divcore.TopK([[1, 0, 2]], [[0.5, 0.25, 0.2]], kind="probs")
    assert mod.kl_divergence(x, topk) == np.inf
    assert mod.cross_entropy(x, topk) == np.inf
    assert np.isfinite(mod.kl_divergence(x, topk, tail="drop"))


@pytest.mark.parametrize("mod", BACKENDS)
def test_masked_class_in_k_with_mass_gives_inf(mod):
    x = np.array([[1.0, 2.0, 0.5, 0.0]])
    topk = divcore.TopK([[1, 0]], [[0.5, 0.25]], kind="probs")
    where = np.array([[False, True, True, True]])
    assert mod.kl_divergence(x, topk, where=where) == np.inf
    zero = divcore.TopK([[1, 0]], [[0.5, 0.0]], kind="probs")  # 0·log 0 on the masked class
    got = mod.kl_divergence(x, zero, where=where, reduction="none")
    o = oracle(x, zero, where=where)["kl"]
    np.testing.assert_allclose(got, o, rtol=1e-12)


@pytest.mark.parametrize("mod", BACKENDS)
def test_tiny_student_rest_against_mpmath(mod):
    """q_r far below 1 - Q's rounding: computed from log1mexp, it keeps its digits."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 60
    x = np.array([[40.0, 39.0, 0.0, -1.0, -2.0]])
    K = [0, 1]
    topk = divcore.TopK([K], [[math.log(0.6), math.log(0.3)]])
    xs = [mpmath.mpf(v) for v in x[0]]
    z = mpmath.fsum(mpmath.exp(v) for v in xs)
    q = [mpmath.exp(v) / z for v in xs]
    qr = q[2] + q[3] + q[4]
    p = [mpmath.exp(mpmath.mpf(math.log(0.6))), mpmath.exp(mpmath.mpf(math.log(0.3)))]
    pr = 1 - p[0] - p[1]
    kl = sum(pi * mpmath.log(pi / qi) for pi, qi in zip(p, q[:2])) + pr * mpmath.log(pr / qr)
    assert float(qr) < 1e-16  # 1 - Q is 0 or noise in float64
    assert mod.kl_divergence(x, topk) == pytest.approx(float(kl), rel=1e-12)
    ce = -sum(pi * mpmath.log(qi) for pi, qi in zip(p, q[:2])) - pr * mpmath.log(qr)
    assert mod.cross_entropy(x, topk) == pytest.approx(float(ce), rel=1e-12)


@pytest.mark.parametrize("mod", BACKENDS)
def test_nan_logits_give_nan_for_that_row_only(mod):
    rng = np.random.default_rng(6)
    x, topk, _ = random_case(rng, n=3, c=10, k=3)
    x[1, 4] = np.nan
    got = mod.kl_divergence(x, topk, reduction="none")
    assert np.isnan(got[1]) and np.all(np.isfinite(got[[0, 2]]))
    _, g = mod.kl_divergence_and_grad(x, topk, reduction="none")
    assert np.all(np.isnan(g[1])) and np.all(np.isfinite(g[[0, 2]]))


# ------------------------------------------------------------ keywords that compose

@pytest.mark.parametrize("mod", BACKENDS)
def test_reductions_and_sample_weight(mod):
    rng = np.random.default_rng(7)
    x, topk, _ = random_case(rng)
    rows = oracle(x, topk)["kl"]
    s = rng.uniform(0, 2, size=x.shape[0])
    s[2] = 0
    assert mod.kl_divergence(x, topk) == pytest.approx(rows.mean(), rel=1e-12)
    assert mod.kl_divergence(x, topk, reduction="sum") == pytest.approx(rows.sum(), rel=1e-12)
    assert mod.kl_divergence(x, topk, sample_weight=s) == pytest.approx(
        np.sum(s * rows) / np.sum(s), rel=1e-12)
    np.testing.assert_allclose(mod.kl_divergence(x, topk, sample_weight=s, reduction="none"),
                               s * rows, rtol=1e-12)
    assert mod.kl_divergence(x, topk, base=2) == pytest.approx(rows.mean() / math.log(2),
                                                                rel=1e-12)


@pytest.mark.parametrize("mod", BACKENDS)
def test_temperature_applies_to_the_student_only(mod):
    rng = np.random.default_rng(8)
    x, topk, _ = random_case(rng)
    got = mod.kl_divergence(x, topk, temperature=2.5, reduction="none")
    np.testing.assert_allclose(got, oracle(x, topk, temperature=2.5)["kl"], rtol=1e-11)
    np.testing.assert_allclose(got, mod.kl_divergence(x / 2.5, topk, reduction="none"),
                               rtol=1e-13)


@pytest.mark.parametrize("mod", BACKENDS)
def test_class_axis_not_last_and_leading_shape(mod):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 15, 3))          # (batch, classes, positions)
    t = rng.standard_normal((2, 15, 3))
    topk = divcore.TopK.from_logits(t, 4, axis=1)
    assert topk.indices.shape == (2, 3, 4)
    got = mod.kl_divergence(x, topk, axis=1, reduction="none")
    assert got.shape == (2, 3)
    xm = np.moveaxis(x, 1, -1).reshape(6, 15)
    flat = divcore.TopK(topk.indices.reshape(6, 4), topk.values.reshape(6, 4))
    np.testing.assert_allclose(got.reshape(-1), oracle(xm, flat)["kl"], rtol=1e-11)
    _, g = mod.cross_entropy_and_grad(x, topk, axis=1)
    assert g.shape == x.shape


def test_where_mask():
    rng = np.random.default_rng(10)
    x, topk, _ = random_case(rng, n=4, c=20, k=3)
    where = rng.random((4, 20)) > 0.3
    where[np.arange(4)[:, None], topk.indices] = True
    for mod in (divcore, reference):
        np.testing.assert_allclose(mod.kl_divergence(x, topk, where=where, reduction="none"),
                                   oracle(x, topk, where=where)["kl"], rtol=1e-11)


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    x, topk, _ = random_case(rng)
    tt = divcore.TopK(torch.from_numpy(topk.indices), torch.from_numpy(topk.values))
    assert divcore.kl_divergence(torch.from_numpy(x), tt) == pytest.approx(
        divcore.kl_divergence(x, topk), rel=1e-15)
    again = divcore.TopK.from_logits(torch.from_numpy(x), 3)
    np.testing.assert_array_equal(again.indices, divcore.TopK.from_logits(x, 3).indices)


# --------------------------------------------------------------------- gradients

def _numeric_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        g[i] = (f(xp) - f(xm)) / (2 * h)
    return g


@pytest.mark.parametrize("mod", BACKENDS)
@pytest.mark.parametrize("tail", TAILS)
@pytest.mark.parametrize("loss", ["cross_entropy", "kl_divergence"])
def test_gradient_by_finite_differences(mod, tail, loss):
    rng = np.random.default_rng(12)
    x, topk, _ = random_case(rng, n=3, c=9, k=3, kind="probs")
    kw = dict(tail=tail, temperature=1.7, base=2, reduction="mean")
    f = getattr(mod, loss)
    value, g = getattr(mod, loss + "_and_grad")(x, topk, **kw)
    assert value == pytest.approx(f(x, topk, **kw), rel=1e-13)
    np.testing.assert_allclose(g, _numeric_grad(lambda z: f(z, topk, **kw), x), atol=1e-7)


def test_gradient_sample_weight_and_float32():
    rng = np.random.default_rng(13)
    x, topk, _ = random_case(rng, n=5, c=30, k=4)
    s = rng.uniform(0, 1, 5)
    _, g = divcore.kl_divergence_and_grad(x, topk, sample_weight=s)
    num = _numeric_grad(lambda z: divcore.kl_divergence(z, topk, sample_weight=s), x)
    np.testing.assert_allclose(g, num, atol=1e-7)
    _, g32 = divcore.kl_divergence_and_grad(x.astype(np.float32), topk, sample_weight=s)
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, g, atol=2e-6)
    _, gr = reference.kl_divergence_and_grad(x, topk, sample_weight=s)
    np.testing.assert_allclose(g, gr, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("mod", BACKENDS)
def test_gradient_when_the_student_rest_is_tiny(mod):
    """q_r ~ 1e-300: p_r/q_r·q_j taken as exp(log q_j - log q_r), finite, and matching
    the analytic form q_j / q_r = exp(x_j) / Σ_rest exp(x)."""
    x = np.array([[700.0, 699.0, 0.0, 1.0, 2.0]])
    topk = divcore.TopK([[0, 1]], [[0.5, 0.3]], kind="probs")
    _, g = mod.cross_entropy_and_grad(x, topk, reduction="sum")
    assert np.all(np.isfinite(g))
    rest = np.exp([0.0, 1.0, 2.0])
    np.testing.assert_allclose(g[0, 2:], -0.2 * rest / rest.sum(), rtol=1e-10)
    assert g[0].sum() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("mod", BACKENDS)
@pytest.mark.parametrize("tail", ["bucket", "renormalize"])
@pytest.mark.parametrize("kind", ["log_probs", "probs"])
def test_reverse_kl_gradient_by_finite_differences(mod, tail, kind):
    rng = np.random.default_rng(14)
    x, topk, _ = random_case(rng, n=3, c=9, k=3, kind=kind)
    kw = dict(tail=tail, temperature=1.7, base=2, reduction="mean", reverse=True)
    value, g = mod.kl_divergence_and_grad(x, topk, **kw)
    assert value == pytest.approx(mod.kl_divergence(x, topk, **kw), rel=1e-13)
    num = _numeric_grad(lambda z: mod.kl_divergence(z, topk, **kw), x)
    np.testing.assert_allclose(g, num, atol=1e-7)
    if tail == "renormalize":  # only the teacher's classes move KL(q̂ ‖ p̂)
        outside = np.ones_like(x, dtype=bool)
        np.put_along_axis(outside, topk.indices, False, axis=1)
        assert np.all(g[outside] == 0.0)


def test_reverse_kl_gradient_weights_masks_float32_and_layouts():
    rng = np.random.default_rng(15)
    x, topk, _ = random_case(rng, n=5, c=30, k=4)
    s = rng.uniform(0, 1, 5)
    where = rng.random((5, 30)) < 0.9
    np.put_along_axis(where, topk.indices, True, axis=1)
    kw = dict(reverse=True, sample_weight=s, where=where)
    _, g = divcore.kl_divergence_and_grad(x, topk, **kw)
    num = _numeric_grad(lambda z: divcore.kl_divergence(z, topk, **kw), x)
    np.testing.assert_allclose(g, num, atol=1e-7)
    assert np.all(g[~where] == 0.0)
    _, gr = reference.kl_divergence_and_grad(x, topk, **kw)
    np.testing.assert_allclose(g, gr, rtol=1e-9, atol=1e-15)
    _, g32 = divcore.kl_divergence_and_grad(x.astype(np.float32), topk, **kw)
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, g, atol=2e-6)
    # the class axis 1 of (N, C, d) and half storage give the class-last gradient
    x3 = rng.standard_normal((2, 30, 3))
    tk3 = divcore.TopK.from_logits(rng.standard_normal((2, 30, 3)), 5, axis=1)
    _, g3 = divcore.kl_divergence_and_grad(x3, tk3, axis=1, reverse=True)
    _, gl = divcore.kl_divergence_and_grad(np.moveaxis(x3, 1, -1).copy(),
                                           divcore.TopK(tk3.indices, tk3.values), reverse=True)
    assert np.array_equal(np.moveaxis(g3, 1, -1), gl)
    x16 = x.astype(np.float16)
    _, gh = divcore.kl_divergence_and_grad(x16, topk, reverse=True)
    _, gw = divcore.kl_divergence_and_grad(x16.astype(np.float32), topk, reverse=True)
    assert np.array_equal(gh, gw)


def test_reverse_kl_gradient_when_the_student_rest_is_tiny():
    """q_r ~ e^-700 summed over the classes outside K (no 1 - Q): the rest's factor
    log(q_r/p_r) - KL is finite, and the gradient matches mpmath's."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    x = np.array([[700.0, 699.0, 0.0, 1.0, 2.0]])
    topk = divcore.TopK([[0, 1]], [[0.5, 0.3]], kind="probs")
    _, g = divcore.kl_divergence_and_grad(x, topk, reverse=True, reduction="sum")
    z = [mpmath.mpf(float(v)) for v in x[0]]
    s = mpmath.fsum(mpmath.exp(v) for v in z)
    q = [mpmath.exp(v) / s for v in z]
    p = {0: mpmath.mpf("0.5"), 1: mpmath.mpf("0.3")}
    qr = q[2] + q[3] + q[4]
    f = {0: mpmath.log(q[0] / p[0]), 1: mpmath.log(q[1] / p[1])}
    fr = mpmath.log(qr / mpmath.mpf("0.2"))
    kl = q[0] * f[0] + q[1] * f[1] + qr * fr
    want = [float(q[j] * ((f[j] if j in f else fr) - kl)) for j in range(5)]
    np.testing.assert_allclose(g[0], want, rtol=1e-9, atol=1e-300)


# ---------------------------------------------------------------------- bad input

@pytest.mark.parametrize("mod", BACKENDS)
def test_out_of_range_index_names_row_and_value(mod):
    x = np.zeros((3, 5))
    for bad in (5, -1):
        idx = np.array([[0, 1], [2, 3], [4, bad]])
        topk = divcore.TopK(idx, np.full((3, 2), -2.0))
        for validate in (True, False):
            with pytest.raises(IndexError, match=f"index {bad} at row 2"):
                mod.kl_divergence(x, topk, validate=validate)


@pytest.mark.parametrize("mod", BACKENDS)
def test_duplicate_index_names_the_row(mod):
    topk = divcore.TopK([[0, 1], [3, 3]], np.full((2, 2), -2.0))
    with pytest.raises(ValueError, match="row 1 gives class 3 more than once"):
        mod.kl_divergence(np.zeros((2, 5)), topk)


@pytest.mark.parametrize("mod", BACKENDS)
def test_bad_values_name_the_row(mod):
    x = np.zeros((3, 5))
    idx = [[0, 1], [2, 3], [1, 4]]
    cases = [([[0.2, 0.3], [0.5, np.nan], [0.1, 0.1]], "probs", "row 1"),
             ([[0.2, 0.3], [0.1, 0.1], [1.5, 0.0]], "probs", "row 2"),
             ([[0.2, 0.3], [0.7, 0.6], [0.1, 0.1]], "probs", "row 1 .* total mass"),
             ([[-1.0, -2.0], [0.5, -2.0], [-1.0, -3.0]], "log_probs", "row 1")]
    for vals, kind, msg in cases:
        with pytest.raises(ValueError, match=msg):
            mod.kl_divergence(x, divcore.TopK(idx, vals, kind=kind))
    # validate=False reads them as given (mass > 1: no rest)
    v = mod.kl_divergence(x, divcore.TopK(idx, [[0.2, 0.3], [0.7, 0.6], [0.1, 0.1]],
                                          kind="probs"), validate=False)
    assert np.isfinite(v)


def test_refused_keywords():
    x, topk, _ = random_case(np.random.default_rng(15))
    with pytest.raises(ValueError, match="target_type"):
        divcore.kl_divergence(x, topk, target_type="probs")
    with pytest.raises(ValueError, match="weight"):
        divcore.cross_entropy(x, topk, weight=np.ones(x.shape[1]))
    with pytest.raises(ValueError, match="label_smoothing"):
        divcore.cross_entropy(x, topk, label_smoothing=0.1)
    with pytest.raises(ValueError, match="ignore_index"):
        divcore.cross_entropy(x, topk, ignore_index=3)
    with pytest.raises(ValueError, match="tail='drop'"):
        divcore.kl_divergence(x, topk, reverse=True, tail="drop")
    with pytest.raises(ValueError, match="tail"):
        divcore.kl_divergence(x, topk, tail="nope")
    with pytest.raises(ValueError, match="applies to a divcore.TopK"):
        divcore.kl_divergence(x, np.full(x.shape, 1 / x.shape[1]), tail="drop")


def test_shapes_and_dtypes_are_checked():
    x = np.zeros((4, 6))
    with pytest.raises(ValueError, match="target.indices: shape"):
        divcore.kl_divergence(x, divcore.TopK(np.zeros((3, 2), int), np.zeros((3, 2))))
    with pytest.raises(ValueError, match="target.values: shape"):
        divcore.kl_divergence(x, divcore.TopK(np.zeros((4, 2), int), np.zeros((4, 3))))
    with pytest.raises(TypeError, match="integers"):
        divcore.kl_divergence(x, divcore.TopK(np.zeros((4, 2)), np.zeros((4, 2))))
    with pytest.raises(ValueError, match="kind"):
        divcore.TopK(np.zeros((4, 2), int), np.zeros((4, 2)), kind="logits")


# ------------------------------------------------------------------------ from_logits

def test_from_logits_sorted_with_ties_lower_index_first():
    x = np.array([[1.0, 3.0, 3.0, 0.0, 3.0, 2.0],
                  [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    t = divcore.TopK.from_logits(x, 3)
    np.testing.assert_array_equal(t.indices, [[1, 2, 4], [0, 1, 2]])
    t = divcore.TopK.from_logits(x, 4)
    np.testing.assert_array_equal(t.indices, [[1, 2, 4, 5], [0, 1, 2, 3]])
    np.testing.assert_allclose(t.values, np.take_along_axis(divcore.log_softmax(x), t.indices,
                                                            -1))
    assert t.kind == "log_probs" and t.indices.dtype == np.int64


def test_from_logits_matches_a_stable_sort():
    rng = np.random.default_rng(16)
    x = np.round(rng.standard_normal((20, 50)), 1)  # many ties
    t = divcore.TopK.from_logits(x, 9, temperature=2.0)
    expected = np.argsort(-x, axis=-1, kind="stable")[:, :9]
    np.testing.assert_array_equal(t.indices, expected)
    np.testing.assert_allclose(
        t.values, np.take_along_axis(divcore.log_softmax(x, temperature=2.0), expected, -1))
    with pytest.raises(ValueError, match="k must be"):
        divcore.TopK.from_logits(x, 51)


def test_docstring_example_runs():
    teacher = np.array([[4.0, 2.0, 0.0, -1.0]])
    topk = divcore.TopK.from_logits(teacher, 2)
    assert divcore.TopK.__doc__ and "Examples" in divcore.TopK.__doc__
    np.testing.assert_array_equal(topk.indices, [[0, 1]])


# --------------------------------------------------------------------------- C API

C_SOURCE = r"""
#include "divcore/kernels.h"
#define ROWS(S, T)                                                                        \
void topk_##S(const T *x, ptrdiff_t rows, ptrdiff_t n, const int64_t *idx, const T *v,    \
              ptrdiff_t k, int is_log, int tail, int ce, double *out)                     \
{ for (ptrdiff_t i = 0; i < rows; i++)                                                    \
      out[i] = ce ? dc_topk_ce_##S(x + i * n, n, idx + i * k, v + i * k, k, is_log, tail) \
                  : dc_topk_kl_##S(x + i * n, n, idx + i * k, v + i * k, k, is_log, tail); }
ROWS(f32, float)
ROWS(f64, double)
"""


@pytest.fixture(scope="module")
def c_topk(tmp_path_factory):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    folder = tmp_path_factory.mktemp("topk_c")
    src = os.path.join(folder, "topk.c")
    with open(src, "w") as f:
        f.write(C_SOURCE)
    lib = os.path.join(folder, "topk.so")
    subprocess.run([cc, "-shared", "-fPIC", "-std=gnu99", "-O2", "-Wall", "-Wextra",
                    "-Wpedantic", "-Wshadow", "-Wconversion", "-Wdouble-promotion",
                    "-Wfloat-equal", "-Wcast-qual", "-Werror", "-ffp-contract=fast", "-I",
                    divcore.get_include(), src, "-o", lib, "-lm"], check=True)
    return ctypes.CDLL(lib)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tail", TAILS)
@pytest.mark.parametrize("kind", ["log_probs", "probs"])
def test_c_api_matches_the_python_api(c_topk, dtype, tail, kind):
    rng = np.random.default_rng(17)
    x, topk, _ = random_case(rng, n=7, c=100, k=10, kind=kind, dtype=dtype)
    fn = getattr(c_topk, "topk_f32" if dtype == np.float32 else "topk_f64")
    ptr = ctypes.c_void_p
    fn.argtypes = [ptr, ctypes.c_ssize_t, ctypes.c_ssize_t, ptr, ptr, ctypes.c_ssize_t,
                   ctypes.c_int, ctypes.c_int, ctypes.c_int, ptr]
    fn.restype = None
    idx = np.ascontiguousarray(topk.indices, dtype=np.int64)
    vals = np.ascontiguousarray(topk.values, dtype=dtype)
    code = {"bucket": 0, "drop": 1, "renormalize": 2}[tail]
    for ce, name in ((0, "kl_divergence"), (1, "cross_entropy")):
        out = np.empty(x.shape[0])
        fn(x.ctypes.data, x.shape[0], x.shape[1], idx.ctypes.data, vals.ctypes.data, 10,
           int(kind == "log_probs"), code, ce, out.ctypes.data)
        py = getattr(divcore, name)(x, topk, tail=tail, reduction="none")
        np.testing.assert_allclose(out.astype(dtype), py, rtol=1e-6 if dtype == np.float32
                                   else 1e-14, atol=1e-7 if dtype == np.float32 else 1e-16)
        o = oracle(x.astype(np.float64), topk, tail)["kl" if ce == 0 else "ce"]
        np.testing.assert_allclose(out, o, rtol=1e-4 if dtype == np.float32 else 1e-11,
                                   atol=1e-6 if dtype == np.float32 else 1e-14)


# ------------------------------------------------------------------ more layouts

def test_confident_float32_rows_take_the_exact_rest():
    """q_r below 2^-7 in float32: summed over the rest, so it keeps its digits (1 - Q in
    float32 lanes would carry ~1e-7 of noise)."""
    rng = np.random.default_rng(18)
    x = rng.standard_normal((6, 500)).astype(np.float32)
    x[:, :5] += np.float32(25.0)                   # K's mass ~ 1 - 1e-8
    topk = divcore.TopK(np.tile(np.arange(5), (6, 1)), np.full((6, 5), np.log(0.19)))
    got = divcore.kl_divergence(x, topk, reduction="none")
    o = oracle(x.astype(np.float64), topk)["kl"]
    np.testing.assert_allclose(got, o, rtol=1e-5)
    np.testing.assert_allclose(reference.kl_divergence(x, topk, reduction="none"), got,
                               rtol=1e-6)


def test_half_storage_and_blocks_of_rows():
    rng = np.random.default_rng(19)
    x16 = rng.standard_normal((4, 30)).astype(np.float16)
    topk = divcore.TopK.from_logits(rng.standard_normal((4, 30)), 5)
    got = divcore.kl_divergence(x16, topk, reduction="none")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, oracle(x16.astype(np.float64), topk)["kl"], rtol=1e-5)
    # (N, C, d) with the class axis 1: rows read as (N, d) blocks
    x = rng.standard_normal((3, 30, 4))
    tk = divcore.TopK.from_logits(rng.standard_normal((3, 30, 4)), 6, axis=1)
    got = divcore.cross_entropy(x, tk, axis=1, reduction="none")
    ref = reference.cross_entropy(x, tk, axis=1, reduction="none")
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_half_and_blocks_in_pieces_equal_float32_rows(monkeypatch):
    """Half storage and (N, C, d) blocks are converted a piece of rows at a time (several
    pieces here): the bits of the float32 (N, C) computation, gradients included, and a bad
    row's message names its row in the whole batch."""
    from divcore import _topk
    monkeypatch.setattr(_topk, "PIECE_BYTES", 40 * 4 * 7)  # 7 rows of 40 classes a piece
    rng = np.random.default_rng(23)
    x16 = rng.standard_normal((30, 40)).astype(np.float16)
    topk = divcore.TopK.from_logits(rng.standard_normal((30, 40)), 5)
    x32 = x16.astype(np.float32)
    for tail in TAILS:
        for fname in ("cross_entropy", "kl_divergence"):
            got = getattr(divcore, fname)(x16, topk, tail=tail, reduction="none")
            want = getattr(divcore, fname)(x32, topk, tail=tail, reduction="none")
            assert np.array_equal(got, want, equal_nan=True)
            got = getattr(divcore, fname + "_and_grad")(x16, topk, tail=tail)
            want = getattr(divcore, fname + "_and_grad")(x32, topk, tail=tail)
            assert got[0] == want[0] and np.array_equal(got[1], want[1])
    x = rng.standard_normal((3, 40, 11))
    tk = divcore.TopK.from_logits(rng.standard_normal((3, 40, 11)), 6, axis=1)
    xl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    tkl = divcore.TopK(tk.indices, tk.values)
    where = rng.random((3, 40, 11)) < 0.95
    for mod in (divcore, reference):
        got = mod.kl_divergence(x, tk, axis=1, where=where, reduction="none")
        want = mod.kl_divergence(xl, tkl, where=np.moveaxis(where, 1, -1), reduction="none")
        assert np.array_equal(got, want, equal_nan=True)
    bad = divcore.TopK(topk.indices, np.where(np.arange(30)[:, None] == 25, 0.5,
                                              topk.values), kind="log_probs")
    with pytest.raises(ValueError, match=r"\brow 25\b"):
        divcore.kl_divergence(x16, bad)


def test_half_topk_holds_no_float_copy_of_the_logits():
    import tracemalloc
    x = np.zeros((1024, 8192), dtype=np.float16)  # 16 MiB; a float32 copy would be 32 MiB
    topk = divcore.TopK(np.tile(np.arange(8), (1024, 1)), np.full((1024, 8), -3.0))
    divcore.kl_divergence(x[:2], divcore.TopK(topk.indices[:2], topk.values[:2]))
    tracemalloc.start()
    try:
        divcore.kl_divergence(x, topk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak


@pytest.mark.parametrize("mod", BACKENDS)
def test_k_zero_bucket_is_zero(mod):
    x = np.random.default_rng(20).standard_normal((2, 5))
    topk = divcore.TopK(np.zeros((2, 0), np.int64), np.zeros((2, 0)))
    np.testing.assert_array_equal(mod.kl_divergence(x, topk, reduction="none"), [0.0, 0.0])
    with pytest.raises(ValueError, match="no mass"):
        mod.kl_divergence(x, topk, tail="drop")


def test_random_masks_and_k_compiled_vs_reference():
    rng = np.random.default_rng(21)
    for _ in range(10):
        c = int(rng.integers(1, 70))
        k = int(rng.integers(1, c + 1))
        x = rng.standard_normal((3, c)) * rng.uniform(0.1, 30)
        where = rng.random((3, c)) > 0.2
        topk = divcore.TopK.from_logits(rng.standard_normal((3, c)) * 5, k)
        for tail in TAILS:
            for fn in ("kl_divergence", "cross_entropy"):
                a = getattr(divcore, fn)(x, topk, where=where, tail=tail, reduction="none")
                b = getattr(reference, fn)(x, topk, where=where, tail=tail, reduction="none")
                np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)
            _, ga = divcore.cross_entropy_and_grad(x, topk, where=where, tail=tail)
            _, gb = reference.cross_entropy_and_grad(x, topk, where=where, tail=tail)
            np.testing.assert_allclose(ga, gb, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("mod", BACKENDS)
def test_z_loss_and_softcap_compose(mod):
    rng = np.random.default_rng(22)
    x, topk, _ = random_case(rng)
    lse = np.log(np.sum(np.exp(x), axis=-1))
    assert mod.cross_entropy(x, topk, z_loss=0.1) == pytest.approx(
        mod.cross_entropy(x, topk) + 0.1 * np.mean(lse ** 2), rel=1e-12)
    capped = 3.0 * np.tanh(x / 3.0)
    assert mod.kl_divergence(x, topk, softcap=3.0) == pytest.approx(
        mod.kl_divergence(capped, topk), rel=1e-12)
    _, g = mod.kl_divergence_and_grad(x, topk, softcap=3.0)
    num = _numeric_grad(lambda z: mod.kl_divergence(z, topk, softcap=3.0), x)
    np.testing.assert_allclose(g, num, atol=1e-7)
