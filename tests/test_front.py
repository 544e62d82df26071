"""The compiled front (divcore/_front.pxi) against the rules' path it stands in front of.

divcore.<name> is the front on the compiled backend; divcore._functions.<name> is the same
function through the rules (divcore._rules) with the front out of the way, as
DIVCORE_FRONT=0 makes every call. For the same arguments both must give identical bits
(same type, dtype and shape) or the identical exception type and message. Hypothesis
concentrates on the guard's edges: dtype, byte order, strides, ndim, empty arrays, masks,
ignored rows, keyword types and bad values.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import divcore

pytestmark = pytest.mark.skipif(
    divcore.backend() != "compiled" or not divcore._kernels.front_enabled(),
    reason="the front belongs to the compiled core")

SLOW = divcore._functions


def outcome(fn, *args, **kwargs):
    try:
        return "value", fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the exception itself is compared
        return "error", (type(exc), str(exc))


def same(a, b):
    """Identical results: same structure, types, dtypes, shapes and bits."""
    if isinstance(a, tuple):
        return (isinstance(b, tuple) and type(a) is type(b) and len(a) == len(b)
                and all(same(x, y) for x, y in zip(a, b)))
    if type(a) is not type(b):
        return False
    if isinstance(a, (np.ndarray, np.generic)):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.dtype.kind != "f":
            return np.array_equal(a, b)
        numbers = ~np.isnan(a)
        return (np.array_equal(a, b, equal_nan=True)  # and the signs of zeros
                and np.array_equal(np.signbit(a[numbers]), np.signbit(b[numbers])))
    return a == b


def check(name, *args, **kwargs):
    fast = outcome(getattr(divcore, name), *args, **kwargs)
    slow = outcome(getattr(SLOW, name), *args, **kwargs)
    assert fast[0] == slow[0], (name, fast, slow)
    if fast[0] == "error":
        assert fast[1] == slow[1]
    else:
        assert same(fast[1], slow[1]), (name, fast[1], slow[1])
    return fast


# ------------------------------------------------------------------ strategies

DTYPES = [np.float32, np.float64, np.float16, np.int32]
VALUES = st.sampled_from([0.0, 1.0, -2.5, 30.0, -np.inf, np.nan, np.inf, 1e-30, -700.0])


@st.composite
def arrays(draw, shape, dtype=None, values=VALUES):
    dtype = dtype or draw(st.sampled_from(DTYPES))
    n = int(np.prod(shape))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = rng.standard_normal(n) * draw(st.sampled_from([1.0, 5.0, 50.0]))
    for i in draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=3)) if n else []:
        a[i] = draw(values)
    a = a.reshape(shape)
    with np.errstate(invalid="ignore", over="ignore"):
        a = a.astype(dtype)
    layout = draw(st.sampled_from(["c", "f", "swapped", "strided", "readonly"]))
    if layout == "f":
        a = np.asfortranarray(a)
    elif layout == "swapped" and a.dtype.itemsize > 1:
        a = a.astype(a.dtype.newbyteorder())
    elif layout == "strided":
        big = np.zeros(tuple(2 * s for s in shape), dtype=a.dtype)
        big[tuple(slice(None, None, 2) for _ in shape)] = a
        a = big[tuple(slice(None, None, 2) for _ in shape)]
    elif layout == "readonly":
        a = a.copy()
        a.flags.writeable = False
    return a


SHAPES = st.sampled_from([(5,), (1, 5), (4, 3), (3, 1), (2, 3, 4), (0, 3), (3, 0), (1,),
                          (70, 2), (2, 1, 3)])


@st.composite
def probs_like(draw, shape, dtype):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p = rng.random(shape) + 1e-3
    p = p / p.sum(axis=-1, keepdims=True) if p.size else p
    kind = draw(st.sampled_from(["ok", "ok", "negative", "off", "rounded"]))
    if kind == "negative" and p.size:
        p.flat[0] = -0.1
    elif kind == "off" and p.size:
        p = p * 1.1
    elif kind == "rounded":
        p = np.round(p, 6)
    return p.astype(dtype)


KEYWORD = {
    "temperature": st.sampled_from([1.0, 2, np.float32(0.5), 0.0, -1.0, float("nan"), "x",
                                    True, 10**400]),
    "base": st.sampled_from([None, 2, np.e, np.float64(10.0), 1.0, -2.0, "2"]),
    "reduction": st.sampled_from(["mean", "sum", "none", "avg", None, np.str_("mean"),
                                  np.str_("none")]),
    "validate": st.sampled_from([True, False, 1, None]),
    "sum_tol": st.sampled_from([None, 1e-9, 0.2, -1.0, np.float32(1e-3)]),
    "label_smoothing": st.sampled_from([0.0, 0.1, np.float64(0.3), 1.5, -0.1]),
    "ignore_index": st.sampled_from([-100, None, 0, 1, np.int64(2), 2**70, "a", True]),
    "axis": st.sampled_from([-1, 0, 1, -2, 5, np.int64(-1), 1.0]),
}


@st.composite
def keywords(draw, names):
    kw = {}
    for name in names:
        if draw(st.booleans()):
            kw[name] = draw(KEYWORD[name])
    return kw


@st.composite
def mask_for(draw, shape):
    choice = draw(st.sampled_from(["none", "full", "broadcast", "int", "list"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if choice == "none":
        return None
    if choice == "full":
        return rng.random(shape) < 0.7
    if choice == "broadcast":
        return rng.random(shape[-1:]) < 0.7
    if choice == "int":
        return (rng.random(shape) < 0.7).astype(np.int8)
    return (rng.random(shape) < 0.7).tolist()


@st.composite
def labels_for(draw, lead_shape, n_classes):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    hi = max(n_classes, 1)
    y = rng.integers(0, hi, size=lead_shape)
    if y.size and draw(st.booleans()):
        y.flat[0] = draw(st.sampled_from([-100, -1, n_classes, 1]))
    kind = draw(st.sampled_from(["int64", "int32", "uint8", "float", "scalar", "list",
                                 "swapped"]))
    if kind == "int32":
        return y.astype(np.int32)
    if kind == "uint8":
        return np.abs(y).astype(np.uint8)
    if kind == "float":
        return y.astype(np.float64)
    if kind == "scalar" and y.ndim == 0:
        return draw(st.sampled_from([int(y), np.int64(y), np.int32(y)]))
    if kind == "list":
        return y.tolist()
    if kind == "swapped":
        return y.astype(np.dtype(np.int64).newbyteorder())
    return y


# 200 examples a test by default (derandomized: the suite's profile); DIVCORE_FUZZ=long runs
# 3000 random ones
SETTINGS = settings(max_examples=3000 if os.environ.get("DIVCORE_FUZZ", "").strip().lower()
                    == "long" else 200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ------------------------------------------------------------------ tests

@SETTINGS
@given(st.data())
def test_losses_with_labels(data):
    shape = data.draw(SHAPES)
    x = data.draw(arrays(shape))
    axis = data.draw(st.sampled_from([-1, 0])) if len(shape) > 1 else -1
    lead = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
    y = data.draw(labels_for(lead, shape[axis]))
    kw = data.draw(keywords(["temperature", "base", "reduction", "ignore_index",
                             "label_smoothing", "validate"]))
    if data.draw(st.booleans()):
        wdtype = data.draw(st.sampled_from([np.float32, np.float64, np.int64]))
        kw["weight"] = data.draw(arrays((shape[axis],), wdtype))
    if data.draw(st.booleans()):
        kw["where"] = data.draw(mask_for(shape))
    name = data.draw(st.sampled_from(["cross_entropy", "decompose",
                                      "cross_entropy_and_grad"]))
    check(name, x, y, axis=axis, **kw)
    kw.pop("ignore_index", None), kw.pop("label_smoothing", None), kw.pop("weight", None)
    check(data.draw(st.sampled_from(["kl_divergence", "kl_divergence_and_grad"])), x, y,
          axis=axis, **kw)


@SETTINGS
@given(st.data())
def test_losses_with_soft_targets(data):
    shape = data.draw(SHAPES)
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    x = data.draw(arrays(shape, dtype))
    target_type = data.draw(st.sampled_from(["auto", "probs", "log_probs", "logits"]))
    tdtype = data.draw(st.sampled_from([dtype, dtype, np.float64, np.float16]))
    if target_type == "logits":
        t = data.draw(arrays(shape, tdtype))
    else:
        t = data.draw(probs_like(shape, tdtype))
        if target_type == "log_probs":
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.log(t)
    kw = data.draw(keywords(["temperature", "base", "reduction", "validate", "sum_tol"]))
    if data.draw(st.booleans()):
        kw["where"] = data.draw(mask_for(shape))
    name = data.draw(st.sampled_from(["cross_entropy", "decompose", "cross_entropy_and_grad",
                                      "kl_divergence", "kl_divergence_and_grad",
                                      "js_divergence"]))
    if name in ("cross_entropy", "decompose", "cross_entropy_and_grad"):
        kw.update(data.draw(keywords(["ignore_index", "label_smoothing"])))
        if data.draw(st.booleans()):
            kw["weight"] = np.linspace(0.5, 2.0, shape[-1]).astype(
                data.draw(st.sampled_from([np.float32, np.float64])))
    elif name.startswith("kl"):
        kw["reverse"] = data.draw(st.sampled_from([False, True, 1]))
    else:
        kw["beta"] = data.draw(st.sampled_from([0.5, 0.25, np.float32(0.75), 2.0]))
    check(name, x, t, target_type=target_type, **kw)


@SETTINGS
@given(st.data())
def test_rows_and_entropy(data):
    shape = data.draw(SHAPES)
    x = data.draw(arrays(shape))
    kw = data.draw(keywords(["temperature", "axis"]))
    if data.draw(st.booleans()):
        kw["where"] = data.draw(mask_for(shape))
    name = data.draw(st.sampled_from(["log_softmax", "softmax", "logsumexp", "entropy"]))
    if name == "logsumexp":
        kw.pop("temperature", None)
        kw["keepdims"] = data.draw(st.sampled_from([False, True, 0]))
    if name == "entropy":
        kw.update(data.draw(keywords(["base", "reduction", "sum_tol"])))
        kw["input_type"] = data.draw(st.sampled_from(["logits", "probs", "log_probs", "x"]))
        if kw["input_type"] != "logits":
            x = data.draw(probs_like(shape, np.float64))
            if kw["input_type"] == "log_probs":
                with np.errstate(divide="ignore", invalid="ignore"):
                    x = np.log(x)
    check(name, x, **kw)


@SETTINGS
@given(st.data())
def test_binary_cross_entropy(data):
    shape = data.draw(st.sampled_from([(), (3,), (2, 5), (0,), (50, 200)]))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    x = data.draw(arrays(shape, dtype))
    y = data.draw(arrays(shape, data.draw(st.sampled_from([dtype, np.float64]))))
    kw = data.draw(keywords(["base", "reduction"]))
    if data.draw(st.booleans()):
        kw["pos_weight"] = np.full(shape[-1:] if shape else (), 2.0)
    check("binary_cross_entropy", x, y, **kw)


def test_pairwise_sum_is_numpys():
    """The front reduces in numpy's pairwise order: the same bits as np.sum."""
    rng = np.random.default_rng(7)
    for n in list(range(0, 300)) + [1000, 4097, 65537, 200003]:
        a = rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 8, n)
        assert divcore._kernels._pairwise_sum_for_tests(a) == float(np.sum(a)), n


def test_sum_tol_floor_is_the_rules():
    from divcore import _rules
    x = np.zeros((1, 2))
    p = np.array([[0.5, 0.5 + 0.9 * _rules.SUM_TOL_FLOOR]])
    divcore.cross_entropy(x, p)  # accepted by both paths
    bad = np.array([[0.5, 0.5 + 1.1 * _rules.SUM_TOL_FLOOR]])
    with pytest.raises(ValueError, match="sum_tol"):
        divcore.cross_entropy(x, bad)


def test_ordinary_calls_do_not_fall_back(monkeypatch):
    """The calls of the latency benchmark are read by the front, not handed to the rules."""
    calls = []
    for name in ("cross_entropy", "kl_divergence", "decompose", "cross_entropy_and_grad",
                 "log_softmax", "softmax", "logsumexp", "entropy", "js_divergence",
                 "binary_cross_entropy", "kl_divergence_and_grad"):
        monkeypatch.setattr(SLOW, name, lambda *a, _n=name, **k: calls.append(_n))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 10)).astype(np.float32)
    y = np.arange(32) % 10
    p = np.full((32, 10), 0.1, dtype=np.float32)
    t = rng.standard_normal((32, 10)).astype(np.float32)
    divcore.cross_entropy(x[0].copy(), np.int64(3), temperature=1.0)
    divcore.cross_entropy(x, y)
    divcore.cross_entropy(x, y, weight=np.ones(10), ignore_index=3, label_smoothing=0.1)
    divcore.cross_entropy(x, p, reduction="sum", base=2)
    divcore.kl_divergence(x, t, target_type="logits", temperature=np.float32(2))
    divcore.kl_divergence(x, p, reverse=True)
    divcore.decompose(x, p)
    divcore.cross_entropy_and_grad(x, y)
    divcore.kl_divergence_and_grad(x, t, target_type="logits")
    divcore.log_softmax(x)
    divcore.softmax(x, temperature=2)
    divcore.logsumexp(x)
    divcore.entropy(x)
    divcore.js_divergence(x, p)
    divcore.binary_cross_entropy(x, (x > 0).astype(np.float32))
    divcore.cross_entropy(x, y, where=np.ones((32, 10), bool))
    assert calls == []


def test_front_switch_off():
    """DIVCORE_FRONT=0: every call takes the rules' path, with the same results."""
    code = ("import divcore, numpy as np; "
            "print(divcore._kernels.front_enabled(), divcore.cross_entropy is "
            "divcore._functions.cross_entropy.__func__ or type(divcore.cross_entropy).__name__,"
            " divcore.cross_entropy(np.zeros((2, 2)), [0, 1]))")
    env = dict(os.environ, DIVCORE_FRONT="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] == "False" and out[1] == "method"
    assert float(out[2]) == float(divcore.cross_entropy(np.zeros((2, 2)), [0, 1]))
