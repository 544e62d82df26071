"""Gradients: cross_entropy_and_grad / kl_divergence_and_grad (SPEC §1, design.md items 6-7).

Checked against torch autograd (float64, CPU), against central finite differences of
divcore's own loss, for the identity grad CE == grad KL (same numbers), for exact zeros
where nothing depends on a logit, and compiled core against the reference.
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given

from _helpers import (
    assert_allclose_nan,
    assert_same_kind,
    compute_dtype,
    eps_of,
    fd_gradient,
    oracle_cross_entropy,
    oracle_kl_divergence,
    random_logits,
    random_probs,
    tolerances,
)
from test_vs_reference import call_both, cases


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _t(torch, a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _log_softmax_np(t, axis=-1):
    m = t.max(axis=axis, keepdims=True)
    return t - m - np.log(np.exp(t - m).sum(axis=axis, keepdims=True))


# (temperature, base): the gradient is divided by T and by log(base)
TEMP_BASE = [(1.0, None), (2.5, 2), (0.5, math.e)]


def _backward(torch, loss, reduction, base):
    """d(reduced loss in units of base)/dx; 'none' means the gradient of the sum."""
    total = loss.sum() if reduction == "none" else loss
    if base is not None:
        total = total / math.log(base)
    total.backward()


# ----------------------------------------------------------------- torch autograd


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.7])
@pytest.mark.parametrize("temp_base", TEMP_BASE)
@pytest.mark.parametrize("shape", [(7, 5), (3, 5, 4)])  # class axis 1 (torch's)
def test_ce_labels_grad_vs_torch(dc, rng, torch, reduction, use_weight, ignore, smoothing,
                                 temp_base, shape):
    from test_torch_parity import _torch_smoothing_mean_over_kept_rows

    if (ignore and smoothing and not use_weight and reduction == "mean"
            and not _torch_smoothing_mean_over_kept_rows()):
        pytest.skip("this torch averages the smoothing term over all rows")
    F = torch.nn.functional
    temp, base = temp_base
    x = rng.standard_normal(shape) * 3
    lead = (shape[0],) + shape[2:]
    y = rng.integers(0, shape[1], lead)
    if ignore:
        y.flat[1::3] = -100
    w = rng.uniform(0.2, 2.0, shape[1]) if use_weight else None
    xt = _t(torch, x).requires_grad_(True)
    loss = F.cross_entropy(xt / temp, _t(torch, y), weight=None if w is None else _t(torch, w),
                           ignore_index=-100, label_smoothing=smoothing, reduction=reduction)
    _backward(torch, loss, reduction, base)
    expected_loss = loss.detach().numpy() / (1.0 if base is None else math.log(base))
    got_loss, got_grad = dc.cross_entropy_and_grad(
        x, y, axis=1, weight=w, label_smoothing=smoothing, temperature=temp,
        reduction=reduction, base=base)
    assert got_grad.shape == x.shape and got_grad.dtype == np.float64
    np.testing.assert_allclose(got_loss, expected_loss, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got_grad, xt.grad.numpy(), rtol=1e-10, atol=1e-14)
    if ignore:
        assert not np.any(np.moveaxis(got_grad, 1, -1)[y == -100])


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("target_type,use_weight,smoothing", [
    ("probs", False, 0.0), ("probs", True, 0.0), ("probs", True, 0.3), ("probs", False, 0.2),
    ("log_probs", False, 0.0), ("log_probs", True, 0.0), ("logits", False, 0.0),
    ("logits", True, 0.0),
])
@pytest.mark.parametrize("temp_base", TEMP_BASE)
def test_ce_soft_grad_vs_torch(dc, rng, torch, reduction, target_type, use_weight, smoothing,
                               temp_base):
    F = torch.nn.functional
    temp, base = temp_base
    n, c = 6, 7
    x = rng.standard_normal((n, c)) * 3
    if target_type == "logits":
        target = rng.standard_normal((n, c)) * 3
        p = np.exp(_log_softmax_np(target / temp))
    else:
        p = random_probs(rng, (n, c), p_zero=0.2)
        with np.errstate(divide="ignore"):
            target = p if target_type == "probs" else np.log(p)
    w = rng.uniform(0.2, 2.0, c) if use_weight else None
    xt = _t(torch, x).requires_grad_(True)
    loss = F.cross_entropy(xt / temp, _t(torch, p), weight=None if w is None else _t(torch, w),
                           label_smoothing=smoothing, reduction=reduction)
    _backward(torch, loss, reduction, base)
    got_loss, got_grad = dc.cross_entropy_and_grad(
        x, target, target_type=target_type, weight=w, label_smoothing=smoothing,
        temperature=temp, reduction=reduction, base=base)
    expected_loss = loss.detach().numpy() / (1.0 if base is None else math.log(base))
    np.testing.assert_allclose(got_loss, expected_loss, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got_grad, xt.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("target_type", ["logits", "probs", "log_probs"])
@pytest.mark.parametrize("temp_base", TEMP_BASE)
def test_kl_grad_vs_torch_kl_div(dc, rng, torch, reduction, reverse, target_type, temp_base):
    """F.kl_div(input, target, log_target=True) = Σ exp(target)·(target - input):
    forward KL(p‖q) is kl_div(log q, log p), reverse KL(q‖p) is kl_div(log p, log q)
    (the gradient then flows through kl_div's target)."""
    F = torch.nn.functional
    temp, base = temp_base
    n, c = 6, 7
    x = rng.standard_normal((n, c)) * 3
    t = rng.standard_normal((n, c)) * 3
    logp = _log_softmax_np(t / temp) if target_type == "logits" else _log_softmax_np(t)
    target = {"logits": t, "probs": np.exp(logp), "log_probs": logp}[target_type]
    xt = _t(torch, x).requires_grad_(True)
    lq = F.log_softmax(xt / temp, dim=-1)
    lp = _t(torch, logp)
    args = (lp, lq) if reverse else (lq, lp)
    torch_red = {"none": "none", "sum": "sum", "mean": "batchmean"}[reduction]
    loss = F.kl_div(*args, log_target=True, reduction=torch_red)
    if reduction == "none":
        loss = loss.sum(-1)
    _backward(torch, loss, reduction, base)
    got_loss, got_grad = dc.kl_divergence_and_grad(
        x, target, target_type=target_type, reverse=reverse, temperature=temp,
        reduction=reduction, base=base)
    expected_loss = loss.detach().numpy() / (1.0 if base is None else math.log(base))
    np.testing.assert_allclose(got_loss, expected_loss, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(got_grad, xt.grad.numpy(), rtol=1e-10, atol=1e-14)


# ------------------------------------------------------- finite differences (float64)

FD_CASES = [
    # (function, target type, keywords)
    ("ce", "labels", {}),
    ("ce", "labels", {"weight": True, "label_smoothing": 0.2, "ignore_index": 1,
                      "reduction": "mean", "temperature": 1.7}),
    ("ce", "labels", {"where": True, "label_smoothing": 0.3, "reduction": "sum", "base": 2}),
    ("ce", "labels", {"weight": True, "reduction": "none", "temperature": 0.6}),
    ("ce", "probs", {"weight": True, "label_smoothing": 0.1, "temperature": 2.0}),
    ("ce", "probs", {"where": True, "reduction": "none", "base": 10}),
    ("ce", "log_probs", {"temperature": 0.8, "reduction": "sum"}),
    ("ce", "logits", {"where": True, "temperature": 3.0}),
    ("kl", "probs", {"reduction": "none"}),
    ("kl", "logits", {"temperature": 2.0, "base": 2}),
    ("kl", "logits", {"reverse": True, "where": True, "reduction": "sum"}),
    ("kl", "probs", {"reverse": True, "temperature": 0.7, "reduction": "none"}),
    ("kl", "log_probs", {"reverse": True}),
    ("kl", "labels", {"reduction": "sum", "temperature": 1.3}),
]


def _fd_problem(rng, ttype, kw, shape=(4, 6), axis=-1):
    """Logits, target and keywords for a gradient check (float64, target mass only on
    unmasked classes)."""
    kw = dict(kw)
    ax = axis % len(shape)
    c = shape[ax]
    lead = shape[:ax] + shape[ax + 1:]
    x = rng.standard_normal(shape) * 2
    masked = np.zeros(shape, dtype=bool)
    if kw.pop("where", False):
        mshape = [1] * len(shape)
        mshape[ax] = c
        keep = np.ones(c, dtype=bool)
        keep[[1, c - 2]] = False
        kw["where"] = keep.reshape(mshape)
        masked = ~np.broadcast_to(kw["where"], shape)
    if kw.pop("weight", False):
        kw["weight"] = rng.uniform(0.3, 2.0, c)
    if ttype == "labels":
        allowed = np.flatnonzero(~np.moveaxis(masked, ax, -1).reshape(-1, c)[0])
        target = rng.choice(allowed, size=lead)
        if "ignore_index" in kw:
            target.flat[::3] = kw["ignore_index"]
    elif ttype == "logits":
        target = rng.standard_normal(shape) * 2
    else:
        p = random_probs(rng, shape, ax, p_zero=0.0 if kw.get("reverse") else 0.2,
                         zero_where=masked)
        with np.errstate(divide="ignore"):
            target = p if ttype == "probs" else np.log(p)
    kw["target_type"] = ttype
    kw["axis"] = axis
    return x, target, kw


def _loss_fn(dc, fn):
    return dc.cross_entropy if fn == "ce" else dc.kl_divergence


def _grad_fn(dc, fn):
    return dc.cross_entropy_and_grad if fn == "ce" else dc.kl_divergence_and_grad


def check_fd(dc, fn, x, target, kw, rtol=1e-9, atol=1e-10):
    reduction = kw.get("reduction", "mean")
    loss_f = _loss_fn(dc, fn)

    def f(z):
        return np.sum(loss_f(z, target, **kw))  # 'none': the gradient of the sum

    t = kw.get("temperature", 1.0)
    expected = fd_gradient(f, x, h=1e-3 * t)
    loss, grad = _grad_fn(dc, fn)(x, target, **kw)
    np.testing.assert_allclose(loss, loss_f(x, target, **kw), rtol=0, atol=0,
                               err_msg="loss of *_and_grad differs from the loss function")
    assert grad.shape == x.shape
    assert np.all(np.isfinite(grad)), grad
    np.testing.assert_allclose(grad, expected, rtol=rtol, atol=atol)
    if "where" in kw:
        masked = ~np.broadcast_to(kw["where"], x.shape)
        assert np.all(grad[masked] == 0)


@pytest.mark.parametrize("i", range(len(FD_CASES)))
def test_grad_matches_finite_differences(dc, rng, i):
    fn, ttype, kw = FD_CASES[i]
    x, target, kw = _fd_problem(rng, ttype, kw)
    check_fd(dc, fn, x, target, kw)


@pytest.mark.parametrize("shape,axis", [((3, 5, 2), 1), ((5, 3), 0), ((6,), 0)])
@pytest.mark.parametrize("fn,ttype", [("ce", "labels"), ("ce", "probs"), ("kl", "logits")])
def test_grad_finite_differences_other_axes(dc, rng, shape, axis, fn, ttype):
    x, target, kw = _fd_problem(rng, ttype, {"reduction": "mean"}, shape, axis)
    check_fd(dc, fn, x, target, kw)


# -------------------------------------------------------- CE and KL: the same numbers


@pytest.mark.parametrize("ttype", ["labels", "probs", "log_probs", "logits"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ce_and_kl_gradients_are_identical(dc, rng, ttype, reduction, dtype):
    shape = (5, 8)
    x = random_logits(rng, shape, dtype, p_neginf=0.1)
    x[:, 0] = 1.0  # every row keeps a finite logit
    where = rng.random(shape) < 0.85
    where[:, 0] = True
    masked = ~where | np.isneginf(x)
    if ttype == "labels":
        target = np.zeros(5, dtype=np.int64)
    elif ttype == "logits":
        target = random_logits(rng, shape, dtype, p_neginf=0.1)
        target[:, 0] = 0.5
        target[np.isneginf(x)] = -np.inf  # no teacher mass where the model has none
    else:
        p = random_probs(rng, shape, p_zero=0.2, zero_where=masked)
        with np.errstate(divide="ignore"):
            target = (p if ttype == "probs" else np.log(p)).astype(dtype)
    for kw in ({}, {"where": where, "temperature": 1.7, "base": 2}):
        kw = dict(kw, target_type=ttype, reduction=reduction)
        ce, g_ce = dc.cross_entropy_and_grad(x, target, **kw)
        kl, g_kl = dc.kl_divergence_and_grad(x, target, **kw)
        assert g_ce.dtype == g_kl.dtype == np.dtype(dtype)
        assert np.array_equal(g_ce, g_kl), (ttype, kw)
        assert np.all(np.isfinite(g_ce))
        if ttype == "labels":
            np.testing.assert_array_equal(ce, kl)  # H(one-hot) = 0
        else:
            # they are different losses (CE - KL = H(p) >= 0)
            assert np.all(np.asarray(ce) >= np.asarray(kl))
            assert np.any(np.asarray(ce) > np.asarray(kl))


# ------------------------------------------- exact zeros, and no NaN where none belongs


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("use_weight", [False, True])
def test_ignored_rows_have_zero_gradient_whatever_their_logits(dc, reduction, use_weight):
    x = np.array([
        [0.5, -1.0, 2.0, 0.0],
        [np.nan, 1.0, np.nan, 0.0],        # ignored, NaN
        [-np.inf, -np.inf, -np.inf, -np.inf],  # ignored, no distribution
        [np.inf, 3.0, -np.inf, 1.0],        # ignored, +inf
        [1.0, 2.0, 3.0, -np.inf],
        [np.nan] * 4,                       # ignored, all NaN
    ])
    y = np.array([2, 7, 7, 7, 0, 7])
    w = np.array([0.5, 1.0, 2.0, 1.5]) if use_weight else None
    for smoothing in (0.0, 0.25):
        loss, grad = dc.cross_entropy_and_grad(x, y, ignore_index=7, weight=w,
                                               label_smoothing=smoothing, reduction=reduction)
        assert not np.any(np.isnan(loss))
        assert np.all(np.isfinite(grad)), grad
        ignored = y == 7
        assert np.all(grad[ignored] == 0.0)
        # the kept rows' gradient is the one of the kept rows alone
        kept_loss, kept_grad = dc.cross_entropy_and_grad(
            x[~ignored], y[~ignored], weight=w, label_smoothing=smoothing,
            reduction=reduction)
        np.testing.assert_allclose(grad[~ignored], kept_grad, rtol=1e-15, atol=0)
        np.testing.assert_allclose(loss if reduction != "none" else loss[~ignored],
                                   kept_loss, rtol=1e-15)
        # the -inf logit of row 4 carries no target mass without smoothing: exactly 0
        if smoothing == 0.0:
            assert grad[4, 3] == 0.0


def test_fully_ignored_batch_mean_is_nan_gradient_zero(dc):
    x = np.array([[np.nan, 1.0], [-np.inf, -np.inf]])
    y = np.array([-100, -100])
    loss, grad = dc.cross_entropy_and_grad(x, y)
    assert np.isnan(loss)
    assert np.array_equal(grad, np.zeros((2, 2)))
    loss, grad = dc.cross_entropy_and_grad(x, y, reduction="sum")
    assert loss == 0.0 and np.array_equal(grad, np.zeros((2, 2)))


@pytest.mark.parametrize("fn,ttype,reverse", [
    ("ce", "labels", False), ("ce", "probs", False), ("ce", "log_probs", False),
    ("ce", "logits", False), ("kl", "probs", False), ("kl", "logits", False),
    ("kl", "probs", True), ("kl", "log_probs", True), ("kl", "logits", True),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_masked_and_neg_inf_classes_have_exactly_zero_gradient(dc, rng, fn, ttype, reverse,
                                                                dtype):
    n, c = 4, 6
    x = random_logits(rng, (n, c), dtype)
    x[:, 2] = -np.inf           # a -inf logit
    x[1, 4] = np.nan            # NaN under the mask: never read
    where = np.ones((n, c), dtype=bool)
    where[:, 4] = False
    where[0, 5] = False
    masked = ~where | np.isneginf(x)
    if ttype == "labels":
        target = np.array([0, 1, 3, 5])
    elif ttype == "logits":
        target = random_logits(rng, (n, c), dtype)
        target[:, 4] = np.nan    # masked in the target too
        target[:, 2] = -np.inf   # no teacher mass where the model has none
    else:
        p = random_probs(rng, (n, c), p_zero=0.0 if reverse else 0.2, zero_where=masked)
        with np.errstate(divide="ignore"):
            target = (p if ttype == "probs" else np.log(p)).astype(dtype)
    kw = dict(target_type=ttype, where=where, reduction="none")
    if fn == "kl":
        kw["reverse"] = reverse
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no RuntimeWarning from NaN/inf arithmetic
        loss, grad = _grad_fn(dc, fn)(x, target, **kw)
    assert np.all(np.isfinite(loss)), loss
    assert np.all(np.isfinite(grad)), grad
    assert np.all(grad[masked] == 0.0), grad
    # the same as the problem with the masked classes removed
    for i in range(n):
        keep = ~masked[i]
        ti = target[i] if ttype == "labels" else target[i][keep]
        if ttype == "labels":
            ti = int(np.flatnonzero(keep).tolist().index(target[i]))
        kwi = dict(kw, where=None)
        li, gi = _grad_fn(dc, fn)(x[i][keep], ti, **kwi)
        tol = 1e-5 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(loss[i], li, rtol=tol)
        np.testing.assert_allclose(grad[i][keep], gi, rtol=tol, atol=tol * 1e-3)


def test_zero_target_on_neg_inf_logit_gives_zero_gradient(dc):
    # without `where`: p = 0 exactly where the logit is -inf
    x = np.array([[0.0, -np.inf, 1.0], [-np.inf, 2.0, 2.0]])
    p = np.array([[0.25, 0.0, 0.75], [0.0, 0.5, 0.5]])
    for fn in ("ce", "kl"):
        for ttype, t in (("probs", p), ("log_probs", np.log(np.where(p > 0, p, 1.0))
                                        + np.where(p > 0, 0.0, -np.inf))):
            loss, grad = _grad_fn(dc, fn)(x, t, target_type=ttype, reduction="none")
            assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
            assert grad[0, 1] == 0.0 and grad[1, 0] == 0.0
    # target mass on a -inf logit: the loss is +inf
    loss, grad = dc.cross_entropy_and_grad(x, p[::-1].copy(), reduction="none")
    assert np.isposinf(loss).all()


def test_row_without_distribution_gives_nan_gradient_only_there(dc):
    x = np.array([[0.0, 1.0, 2.0], [-np.inf, -np.inf, -np.inf], [1.0, np.nan, 0.0]])
    y = np.array([0, 1, 2])
    loss, grad = dc.cross_entropy_and_grad(x, y, reduction="none")
    assert np.isfinite(loss[0]) and np.isnan(loss[1:]).all()
    assert np.all(np.isfinite(grad[0]))
    assert np.isnan(grad[1:]).all()


# ----------------------------------------------------------- compiled vs reference


def _grad_atol(case, ref_grad):
    """Per-element bound for |grad_compiled - grad_reference|: a few ulp of the compute
    dtype times the magnitude of the terms (case.scale) times the size of the row's
    gradient terms, sf·A·q_c·(1 + |loss|) with sf the reduction / temperature / base scale
    and A the row's weighted target mass (computed here from the inputs, not from
    divcore)."""
    kw = case.kwargs
    x = case.args[0]
    target = case.args[1]
    ax = kw.get("axis", -1) % x.ndim
    c = x.shape[ax]
    nrows = case.nrows
    t = kw.get("temperature", 1.0)
    base = kw.get("base")
    sf = 1.0 / (t * (1.0 if base is None else abs(math.log(base))))
    w = kw.get("weight")
    amax = 1.0 if w is None else float(np.max(w))
    ttype = kw.get("target_type", "auto")
    tarr = np.asarray(target)
    if ttype == "auto":
        ttype = "labels" if tarr.dtype.kind in "iu" else "probs"
    if kw.get("reduction", "mean") == "mean":
        if ttype == "labels" and case.fname.startswith("cross_entropy"):
            ign = kw.get("ignore_index", -100)
            y = tarr.reshape(-1)
            ww = np.ones(c) if w is None else np.asarray(w, dtype=np.float64)
            denom = sum(float(ww[v]) for v in y.tolist() if v != ign)
        else:
            denom = float(nrows)
        sf = sf / denom if denom else 0.0
    # per-row losses in nats from the independent oracle in _helpers
    okw = {k: v for k, v in kw.items() if k not in ("reduction", "base")}
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if case.fname.startswith("cross_entropy"):
            rows = oracle_cross_entropy(*case.args, reduction="none", **okw)
        else:
            rows = oracle_kl_divergence(*case.args, reduction="none", **okw)
    rows = np.abs(np.nan_to_num(np.asarray(rows, dtype=np.float64), nan=0.0, posinf=0.0))
    rows = np.expand_dims(rows, ax) if x.ndim > 1 else rows
    eps = eps_of(case.dtype)
    return 64.0 * eps * case.scale * (np.abs(np.nan_to_num(ref_grad.astype(np.float64)))
                                      + sf * amax * (1.0 + rows))


def check_grad_case(case):
    both = call_both(case)
    if both is None:
        return
    (a_loss, a_grad), (b_loss, b_grad) = both
    rtol, atol = tolerances(case)
    assert_same_kind(a_loss, b_loss)
    assert_allclose_nan(a_loss, b_loss, rtol, atol, msg=f"{case} [loss]")
    assert type(a_grad) is type(b_grad) is np.ndarray
    assert a_grad.dtype == b_grad.dtype == compute_dtype(case.dtype), (a_grad.dtype, case)
    assert a_grad.shape == b_grad.shape == np.shape(case.args[0])
    bound = _grad_atol(case, b_grad)
    a64, b64 = a_grad.astype(np.float64), b_grad.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(a64), np.isnan(b64), err_msg=f"{case} [grad NaN]")
    np.testing.assert_array_equal(np.isposinf(a64), np.isposinf(b64), err_msg=f"{case} [+inf]")
    np.testing.assert_array_equal(np.isneginf(a64), np.isneginf(b64), err_msg=f"{case} [-inf]")
    fin = np.isfinite(b64)
    diff = np.abs(np.where(fin, a64, 0.0) - np.where(fin, b64, 0.0))
    bad = fin & (diff > bound)
    assert not bad.any(), (f"{case} [grad]: max excess {np.max((diff - bound)[fin])}, "
                           f"at {np.argwhere(bad)[:5].tolist()}")


def _as_grad_case(case):
    case.fname = {"cross_entropy": "cross_entropy_and_grad",
                  "kl_divergence": "kl_divergence_and_grad"}[case.fname]
    return case


@pytest.mark.usefixtures("compiled")
@given(cases(funcs=("cross_entropy", "kl_divergence")))
def test_grad_compiled_vs_reference_hypothesis(case):
    check_grad_case(_as_grad_case(case))


@pytest.mark.usefixtures("compiled")
@pytest.mark.parametrize("fname", ["cross_entropy", "kl_divergence"])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_grad_compiled_vs_reference_grid(fname, dtype):
    from test_vs_reference import LOSS_SHAPES, LOSS_VARIANTS, LAYOUTS
    from _helpers import make_case

    for variant, opts in enumerate(LOSS_VARIANTS):
        opts = dict(opts)
        if fname == "kl_divergence":
            opts["reverse"] = variant % 2 == 1
        for j, (shape, axis) in enumerate(LOSS_SHAPES):
            layout = LAYOUTS[(variant + j) % len(LAYOUTS)]
            case = make_case(fname, dtype, shape, axis, seed=100 + 10 * variant + j,
                             layout=layout, **opts)
            check_grad_case(_as_grad_case(case))
