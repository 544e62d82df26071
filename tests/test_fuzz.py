"""Fuzzing the compiled core against the pure-Python reference (issue 6).

Hypothesis draws the *values* (not a seed): mixes of ordinary numbers and special ones
(±inf, NaN, ±0, subnormals, ±max of both float types, exp's overflow and underflow
edges), any shape with a class axis anywhere, float16/32/64 in either byte order, memory
layouts (strided with NaN in the gaps, reversed, Fortran, broadcast with stride 0), and
every keyword of every public function. The two backends must agree: same error (type
and message), or same result type/dtype/shape, NaN and ±inf in the same places and
values within divcore.selfcheck's tolerance. A second fuzzer throws garbage arguments at
every function: only TypeError, ValueError or IndexError may come out, the same from both.

Short and deterministic by default (the `divcore` hypothesis profile in conftest.py: 60
examples a test, derived from the test's name, no example database). Long random runs:
    DIVCORE_FUZZ=long                            600 new random examples a test, every test
    DIVCORE_HYPOTHESIS_PROFILE=divcore-long      the same (or pytest --hypothesis-profile)
    DIVCORE_FUZZ_EXAMPLES=20000                  any number of random examples, these tests
"""
import math
import os
import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import divcore
import divcore.reference
from divcore import selfcheck

pytestmark = pytest.mark.usefixtures("compiled")

INF, NAN = math.inf, math.nan
F32 = np.finfo(np.float32)
F64 = np.finfo(np.float64)
SPECIAL = [0.0, -0.0, INF, -INF, NAN, float(F64.smallest_subnormal),
           -float(F64.smallest_subnormal), float(F32.smallest_subnormal), float(F32.tiny),
           float(F64.max), -float(F64.max), float(F32.max), -float(F32.max), 1e30, -1e30,
           88.72, -103.97, 709.78, -745.13, 1e-7, 1.0, -1.0]

_examples = os.environ.get("DIVCORE_FUZZ_EXAMPLES")
fuzz_settings = (settings(max_examples=int(_examples), deadline=None, derandomize=False,
                          suppress_health_check=list(HealthCheck))
                 if _examples else settings(suppress_health_check=list(HealthCheck)))


# ------------------------------------------------------------------------ strategies

values = st.one_of(st.floats(-30, 30, width=64), st.floats(-30, 30, width=64),
                   st.floats(-1e4, 1e4, width=64), st.sampled_from(SPECIAL))
dtypes = st.sampled_from(["float16", "float32", "float64", ">f4", ">f8"])


@st.composite
def layouts(draw, a):
    """The same values as `a` (or a broadcast of part of them) in another memory layout."""
    kind = draw(st.sampled_from(["C", "C", "F", "strided", "reversed", "broadcast"]))
    if kind == "F":
        return np.asfortranarray(a)
    if kind == "strided" and a.ndim:
        big = np.full(tuple(2 * s + 1 for s in a.shape),
                      np.nan if a.dtype.kind == "f" else 7, dtype=a.dtype)
        sl = tuple(slice(1, None, 2) for _ in a.shape)
        big[sl] = a
        return big[sl]
    if kind == "reversed" and a.ndim:
        rev = tuple(slice(None, None, -1) for _ in a.shape)
        return np.ascontiguousarray(a[rev])[rev]
    if kind == "broadcast" and a.ndim and a.shape[0] > 0:
        return np.broadcast_to(a[:1], a.shape)  # stride 0 along the first axis
    return a


@st.composite
def float_arrays(draw, shape, dtype=None, elements=values):
    dtype = np.dtype(dtype or draw(dtypes))
    a = draw(hnp.arrays(np.float64, shape, elements=elements))
    with np.errstate(over="ignore"):
        a = a.astype(dtype)
    return draw(layouts(a))


@st.composite
def problem_shapes(draw, max_classes=9):
    """(shape, class axis): 1-3 dimensions, any of them the class axis, empty ones too."""
    ndim = draw(st.integers(1, 3))
    shape = draw(st.lists(st.integers(0, 4), min_size=ndim, max_size=ndim))
    axis = draw(st.integers(-ndim, ndim - 1))
    shape[axis] = draw(st.integers(0, max_classes))
    return tuple(shape), axis


def _scale(*arrays, temperature=1.0):
    s = 1.0
    for a in arrays:
        a = np.asarray(a, dtype=np.float64)
        fin = np.abs(a[np.isfinite(a)])
        s += (float(fin.max()) if fin.size else 0.0) / temperature
    return s + math.log(max(arrays[0].shape or (1,)) + 1)


def _where(draw, shape, axis):
    kind = draw(st.sampled_from([None, None, "full", "class"]))
    if kind is None:
        return None
    if kind == "full":
        return draw(layouts(draw(hnp.arrays(np.bool_, shape))))
    wshape = [1] * len(shape)
    wshape[axis] = shape[axis]
    return draw(hnp.arrays(np.bool_, tuple(wshape)))


def _probs(draw, shape, axis, dtype):
    """A probability target: valid rows (with exact zeros), or with validate=False any
    values at all."""
    raw = draw(hnp.arrays(np.float64, shape, elements=st.sampled_from(
        [0.0, 0.0, 0.1, 0.5, 1.0, 2.0, 7.0, 1e-30, 1e-300])))
    s = raw.sum(axis=axis, keepdims=True)
    p = np.where(s > 0, raw / np.where(s > 0, s, 1), 1.0 / max(shape[axis], 1))
    return p.astype(dtype)


# --------------------------------------------------------------------------- cases

@st.composite
def lse_family(draw):
    fname = draw(st.sampled_from(["logsumexp", "log_softmax", "softmax"]))
    shape, axis = draw(problem_shapes(max_classes=12))
    x = draw(float_arrays(shape))
    kw = {}
    if draw(st.booleans()):
        kw["axis"] = axis
    if fname == "logsumexp" and len(shape) > 1 and draw(st.booleans()):
        kw["axis"] = draw(st.sampled_from([None, (0, -1), tuple(range(len(shape)))]))
    if fname == "logsumexp" and draw(st.booleans()):
        kw["keepdims"] = draw(st.booleans())
    if fname != "logsumexp" and draw(st.booleans()):
        kw["temperature"] = draw(st.sampled_from([1.0, 0.5, 3.0, 1e-3, 1e3]))
    where = _where(draw, shape, axis if not isinstance(kw.get("axis"), tuple) else -1)
    if where is not None and not (fname == "logsumexp" and kw.get("axis", -1) is None):
        kw["where"] = where
    scale = _scale(x, temperature=kw.get("temperature", 1.0))
    if fname == "logsumexp" and "axis" in kw and not isinstance(kw["axis"], int):
        scale += math.log(max(x.size, 1) + 1)
    return selfcheck.Case(fname, [x], kw, 2 * scale, "fuzz")


@st.composite
def entropy_cases(draw):
    shape, axis = draw(problem_shapes())
    input_type = draw(st.sampled_from(["logits", "logits", "probs", "log_probs"]))
    kw = {"axis": axis, "input_type": input_type}
    if input_type == "logits":
        x = draw(float_arrays(shape))
        kw["temperature"] = draw(st.sampled_from([1.0, 0.5, 3.0]))
    else:
        dtype = draw(st.sampled_from(["float32", "float64"]))
        p = _probs(draw, shape, axis, np.float64)
        if draw(st.booleans()):  # invalid distributions: both must raise the same
            p = p * draw(st.sampled_from([1.5, -1.0, NAN]))
        with np.errstate(divide="ignore", invalid="ignore"):
            x = (p if input_type == "probs" else np.log(p)).astype(dtype)
    where = _where(draw, shape, axis)
    if where is not None:
        kw["where"] = where
    kw["reduction"] = draw(st.sampled_from(["none", "sum", "mean"]))
    kw["base"] = draw(st.sampled_from([None, 2, 10]))
    scale = _scale(x, temperature=kw.get("temperature", 1.0))
    if kw["reduction"] == "sum":
        scale *= max(x.size, 1)
    return selfcheck.Case("entropy", [x], kw, 2 * scale, "fuzz")


LOSS_FUNCS = ["cross_entropy", "kl_divergence", "decompose", "js_divergence",
              "cross_entropy_and_grad", "kl_divergence_and_grad"]


@st.composite
def loss_cases(draw, funcs=tuple(LOSS_FUNCS)):
    fname = draw(st.sampled_from(funcs))
    shape, axis = draw(problem_shapes())
    x = draw(float_arrays(shape))
    lead = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    c = shape[axis]
    ttype = draw(st.sampled_from(["labels", "probs", "log_probs", "logits"]))
    kw = {"axis": axis, "target_type": ttype, "temperature": draw(
        st.sampled_from([1.0, 1.0, 0.5, 4.0]))}
    takes_ce_keywords = fname in ("cross_entropy", "decompose", "cross_entropy_and_grad")
    if ttype == "labels":
        label_dtype = draw(st.sampled_from(["int64", "int32", "int8", "uint16", "uint64"]))
        hi = max(c, 1)
        y = draw(hnp.arrays(np.int64, lead, elements=st.integers(0, hi - 1)))
        if takes_ce_keywords and y.size and draw(st.booleans()):
            ign = draw(st.sampled_from([0, 1, 255]))
            kw["ignore_index"] = ign
            y = np.where(draw(hnp.arrays(np.bool_, lead)), ign, y)
        if draw(st.booleans()) and y.size:  # out of range: both raise the same
            y = y.copy()
            y.reshape(-1)[draw(st.integers(0, y.size - 1))] = draw(
                st.sampled_from([c, c + 1, 200]))
        target = draw(layouts(y.astype(label_dtype)))
    elif ttype == "logits":
        target = draw(float_arrays(shape, dtype=x.dtype))
    else:
        tdtype = draw(st.sampled_from(["float32", "float64"]))
        p = _probs(draw, shape, axis, np.float64)
        if draw(st.booleans()):  # specials in the target too
            p = np.where(draw(hnp.arrays(np.bool_, shape)), draw(
                hnp.arrays(np.float64, shape, elements=st.sampled_from(SPECIAL))), p)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            target = draw(layouts((p if ttype == "probs" else np.log(p)).astype(tdtype)))
    if takes_ce_keywords:
        if ttype in ("labels", "probs") and draw(st.booleans()):
            kw["weight"] = draw(layouts(draw(hnp.arrays(
                np.float64, (c,), elements=st.sampled_from([0.0, 0.5, 1.0, 2.0, 1e-3])))))
        if ttype in ("labels", "probs") and draw(st.booleans()):
            kw["label_smoothing"] = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    if fname.startswith("kl_divergence") and draw(st.booleans()):
        kw["reverse"] = draw(st.booleans())
    if fname == "js_divergence" and draw(st.booleans()):
        kw["beta"] = draw(st.sampled_from([0.5, 0.0, 1.0, 0.25, 1e-9]))
    where = _where(draw, shape, axis)
    if where is not None:
        kw["where"] = where
    kw["reduction"] = draw(st.sampled_from(["none", "sum", "mean"]))
    kw["base"] = draw(st.sampled_from([None, 2, math.e, 10]))
    kw["validate"] = draw(st.booleans())
    t = kw["temperature"]
    scale = _scale(x, temperature=t) + (_scale(target, temperature=t)
                                         if ttype == "logits" else 0.0)
    scale *= 2.0 if "weight" in kw else 1.0
    if kw["base"] is not None:
        scale /= min(1.0, math.log(kw["base"]))
    n_rows = max(math.prod(lead), 1)
    if kw["reduction"] != "none" or fname.endswith("_and_grad"):
        scale *= n_rows  # a sum of rows; a mean's gradient is a row's over n_rows
    return selfcheck.Case(fname, [x, target], kw, 2 * scale, "fuzz")


@st.composite
def bce_cases(draw):
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
    x = draw(float_arrays(shape))
    y = draw(float_arrays(shape, elements=st.sampled_from([0.0, 1.0, 0.5, 0.25, 1e-9])))
    kw = {"reduction": draw(st.sampled_from(["none", "sum", "mean"])),
          "base": draw(st.sampled_from([None, 2]))}
    for name in ("weight", "pos_weight"):
        if draw(st.booleans()):
            k = draw(st.integers(0, len(shape)))
            sub = tuple(1 if draw(st.booleans()) else s for s in shape[len(shape) - k:])
            kw[name] = draw(float_arrays(sub, elements=st.sampled_from([0.0, 0.5, 2.0, 3.0])))
    scale = 6.0 * _scale(x if x.ndim else x.reshape(1))
    if kw["reduction"] == "sum":
        scale *= max(x.size, 1)
    return selfcheck.Case("binary_cross_entropy", [x, y], kw, scale, "fuzz")


def _not_a_distribution(case):
    """validate=False on a target that is no distribution (negative, NaN, inf, sums off
    1): no value is right, so the backends need only agree on the result's kind."""
    if case.kwargs.get("validate", True):
        return False
    checked = selfcheck.Case(case.fname, case.args, dict(case.kwargs, validate=True),
                             case.scale, case.what)
    outcome = selfcheck._call(divcore.reference, checked)
    return outcome[0] == "error" and "not a probability distribution" in outcome[1][1]


def _same_kinds(got, want):
    if got[0] != want[0]:
        return False
    a, b = selfcheck._leaves(got[1]), selfcheck._leaves(want[1])
    return len(a) == len(b) and all(
        type(u) is type(v) and np.shape(u) == np.shape(v)
        and np.asarray(u).dtype == np.asarray(v).dtype for u, v in zip(a, b))


def check(case):
    got = selfcheck._call(divcore, case)
    want = selfcheck._call(divcore.reference, case)
    with np.errstate(all="ignore"):
        _, problem = selfcheck.compare(case, got, want)
    if problem is None or selfcheck.known_issue(case) is not None:
        return
    if got[0] == "ok" and _not_a_distribution(case) and _same_kinds(got, want):
        return
    raise AssertionError(f"{case!r}\n{problem}\nargs={case.args!r}\nkwargs={case.kwargs!r}")


@fuzz_settings
@given(lse_family())
def test_fuzz_logsumexp_softmax(case):
    check(case)


@fuzz_settings
@given(entropy_cases())
def test_fuzz_entropy(case):
    check(case)


@fuzz_settings
@given(loss_cases(funcs=("cross_entropy", "decompose")))
def test_fuzz_cross_entropy(case):
    check(case)


@fuzz_settings
@given(loss_cases(funcs=("kl_divergence", "js_divergence")))
def test_fuzz_kl_js(case):
    check(case)


@fuzz_settings
@given(loss_cases(funcs=("cross_entropy_and_grad", "kl_divergence_and_grad")))
def test_fuzz_gradients(case):
    check(case)


@fuzz_settings
@given(bce_cases())
def test_fuzz_binary_cross_entropy(case):
    check(case)


# ------------------------------------------------------------------------ garbage

GARBAGE = [None, 0, -1, 2**70, 1.5, NAN, INF, "mean", b"x", [], [[1.0], [2.0, 3.0]], {},
           (0, 1), True, np.float64(1.0), np.zeros(()), np.zeros((0, 3)), np.zeros((2, 0)),
           np.zeros((2, 3)), np.zeros((2, 3), np.int8), np.zeros(2, np.uint64),
           np.full((2, 3), np.nan), np.ones((2, 3), bool), np.zeros((2, 3), complex),
           np.zeros((2, 3), object), np.full((2, 3), "a"), np.zeros((2, 3), "M8[s]"),
           np.zeros((2, 3), np.longdouble), np.zeros((3, 2)), np.array([0, 5]),
           np.array([-1, 1]), slice(None), object()]
KEYWORDS = ["axis", "keepdims", "where", "temperature", "reduction", "base", "target_type",
            "input_type", "weight", "pos_weight", "ignore_index", "label_smoothing", "beta",
            "reverse", "validate", "sum_tol"]
ALLOWED = (TypeError, ValueError, IndexError)


def _outcome(module, fname, args, kw):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            getattr(module, fname)(*args, **kw)
        return "ok"
    except ALLOWED as exc:
        message = str(exc).replace("Functions.", "")
        if isinstance(exc, TypeError) and re.search(
                r"positional argument|keyword argument|required argument", message):
            # a call that does not bind: Python and the compiled front word it differently
            message = "the call does not match the signature"
        return type(exc).__name__, message
    except Exception as exc:  # the point of the test
        raise AssertionError(f"{module.__name__}.{fname}: {type(exc).__name__}: {exc}") \
            from exc


@fuzz_settings
@given(st.sampled_from(sorted(selfcheck.ROWWISE + selfcheck.LOSSES
                              + ("binary_cross_entropy",))),
       st.lists(st.sampled_from(range(len(GARBAGE))), min_size=0, max_size=3),
       st.dictionaries(st.sampled_from(KEYWORDS), st.sampled_from(range(len(GARBAGE))),
                       max_size=3),
       st.booleans())
def test_fuzz_garbage_arguments(fname, positional, keywords, start_valid):
    args = [GARBAGE[k] for k in positional]
    if start_valid:  # a valid call with garbage keywords on top
        args = [np.zeros((2, 3)), np.array([0, 2])][:1 if fname in selfcheck.ROWWISE else 2]
        if fname == "binary_cross_entropy":
            args[1] = np.zeros((2, 3))
    kw = {k: GARBAGE[v] for k, v in keywords.items()}
    got = _outcome(divcore, fname, args, kw)
    want = _outcome(divcore.reference, fname, args, kw)
    if got != want and selfcheck.known_issue(selfcheck.Case(fname, args, kw, 1.0, "")):
        return
    assert got == want or (got != "ok" and want != "ok" and got[0] == want[0]
                           and "sums to" in got[1]), (fname, args, kw, got, want)
