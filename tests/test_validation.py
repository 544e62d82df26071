"""Argument validation: error types and what the messages name (SPEC §3, design.md)."""
import math
import re

import numpy as np
import pytest


def _row_re(row):
    return re.compile(rf"\brow {row}\b")


# ------------------------------------------------------------------ labels out of range


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize("bad", [-5, 4, 1000, -101])
def test_label_out_of_range_raises_index_error(dc, validate, bad):
    x = np.zeros((6, 4))
    y = np.array([0, 1, 2, bad, 3, 7])
    with pytest.raises(IndexError) as info:
        dc.cross_entropy(x, y, validate=validate)
    msg = str(info.value)
    assert "target" in msg and _row_re(3).search(msg) and str(bad) in msg, msg
    with pytest.raises(IndexError, match="target"):
        dc.decompose(x, y, validate=validate)
    with pytest.raises(IndexError, match="target"):
        dc.kl_divergence(x, y, validate=validate)


def test_label_row_number_is_flat_c_order_of_leading_axes(dc):
    x = np.zeros((2, 4, 3))  # class axis 1 -> rows are (2, 3), flattened in C order
    y = np.zeros((2, 3), dtype=np.int64)
    y[1, 2] = 9
    y[1, 1] = -3
    with pytest.raises(IndexError) as info:
        dc.cross_entropy(x, y, axis=1)
    msg = str(info.value)
    assert _row_re(4).search(msg) and "-3" in msg, msg  # first bad row: (1, 1) -> 4
    assert "9" not in msg.replace("row 4", "")


def test_label_out_of_range_even_with_other_keywords(dc):
    x = np.zeros((3, 4), dtype=np.float32)
    y = np.array([0, 4, 1])
    for kw in ({"weight": np.ones(4)}, {"label_smoothing": 0.1}, {"reduction": "none"},
               {"where": np.array([True, True, False, True])}, {"ignore_index": 1}):
        with pytest.raises(IndexError, match=r"row 1"):
            dc.cross_entropy(x, y, **kw)


def test_ignore_index_is_checked_before_range(dc):
    x = np.zeros((3, 4))
    assert np.isfinite(dc.cross_entropy(x, np.array([-100, 1, 2])))
    assert np.isfinite(dc.cross_entropy(x, np.array([7, 1, 2]), ignore_index=7))
    # kl_divergence has no ignore_index: -100 is out of range there
    with pytest.raises(IndexError, match=r"target.*row 0|row 0.*target"):
        dc.kl_divergence(x, np.array([-100, 1, 2]))


def test_label_on_1d_logits(dc):
    with pytest.raises(IndexError, match="target"):
        dc.cross_entropy(np.zeros(3), 3)
    with pytest.raises(IndexError, match="target"):
        dc.cross_entropy(np.zeros(3), np.int64(-1))


# --------------------------------------------------------------- probability targets


def _probs(n=5, c=4, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    p = rng.random((n, c)) + 0.1
    return (p / p.sum(-1, keepdims=True)).astype(dtype)


@pytest.mark.parametrize("fname", ["cross_entropy", "kl_divergence", "decompose"])
@pytest.mark.parametrize("problem", ["negative", "nan", "sum"])
def test_bad_probs_target_raises_value_error_naming_row(dc, fname, problem):
    f = getattr(dc, fname)
    x = np.zeros((5, 4))
    p = _probs()
    if problem == "negative":
        p[2] = [0.5, 0.7, -0.2, 0.0]  # sums to 1
    elif problem == "nan":
        p[2, 1] = np.nan
    else:
        p[2] *= 1.01
    p[4] = [2.0, -1.0, 0, 0]  # a later bad row: the first one is reported
    with pytest.raises(ValueError) as info:
        f(x, p)
    msg = str(info.value)
    assert "target" in msg and _row_re(2).search(msg), msg
    # validate=False skips the check (nothing is renormalised: the value is just computed)
    f(x, p, validate=False)


def test_bad_log_probs_target(dc):
    x = np.zeros((3, 4))
    lp = np.log(_probs(3))
    lp[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"target.*row 1"):
        dc.cross_entropy(x, lp, target_type="log_probs")
    lp = np.log(_probs(3)) + 0.01  # sums to e^0.01
    with pytest.raises(ValueError, match=r"target.*row 0"):
        dc.kl_divergence(x, lp, target_type="log_probs")
    dc.kl_divergence(x, lp, target_type="log_probs", validate=False)


@pytest.mark.parametrize("dtype,bad,ok", [("float64", 1e-3, 1e-6), ("float32", 3e-3, 1e-5)])
def test_sum_tolerance_default(dc, dtype, bad, ok):
    """max(√eps, 1e-4) by default: probabilities stored with 6 decimals pass (issue: they
    were refused in float64), a row summing to 0.999 or 0.99 or 1.1 does not."""
    x = np.zeros((2, 4), dtype=dtype)
    p = np.full((2, 4), 0.25)
    p_ok = p.copy()
    p_ok[1, 0] += ok
    dc.cross_entropy(x, p_ok.astype(dtype))
    for off in (bad, -0.01, 0.1):
        p_bad = p.copy()
        p_bad[1, 0] += off
        with pytest.raises(ValueError, match=r"row 1.*sum_tol"):
            dc.cross_entropy(x, p_bad.astype(dtype))


def test_stored_probabilities_pass(dc):
    rng = np.random.default_rng(3)
    p = rng.random((50, 1000))
    p = np.round(p / p.sum(axis=1, keepdims=True), 6)  # as a CSV with 6 decimals stores them
    assert np.abs(p.sum(axis=1) - 1).max() > 1.5e-8  # what √eps of float64 refused
    x = rng.standard_normal((50, 1000))
    assert np.isfinite(dc.cross_entropy(x, p))


def test_sum_tol_keyword(dc):
    x = np.zeros((1, 4))
    p = np.array([[0.25, 0.25, 0.25, 0.25 + 1e-6]])
    with pytest.raises(ValueError, match="row 0"):
        dc.cross_entropy(x, p, sum_tol=1e-9)
    q = np.array([[0.25, 0.25, 0.25, 0.26]])
    assert dc.cross_entropy(x, q, sum_tol=0.02) == dc.cross_entropy(x, q, validate=False)
    assert dc.entropy(q, input_type="probs", sum_tol=0.02) > 0
    with pytest.raises(ValueError, match="row 0"):
        dc.entropy(q, input_type="probs")


def test_masked_classes_are_part_of_the_sum(dc):
    x = np.zeros((1, 3))
    where = np.array([True, False, True])
    # sums to 1 over all classes, mass on a masked class: valid, and costs +inf
    assert dc.cross_entropy(x, np.array([[0.5, 0.25, 0.25]]), where=where) == math.inf
    # sums to 1 over the unmasked classes only: not a distribution
    with pytest.raises(ValueError, match="row 0"):
        dc.cross_entropy(x, np.array([[0.5, 0.5, 0.5]]), where=where)


def test_entropy_validates_probs_input(dc):
    p = _probs(4)
    p[3, 0] = -0.1
    with pytest.raises(ValueError, match=r"row 3"):
        dc.entropy(p, input_type="probs")
    p = _probs(4)
    p[1] *= 1.5
    with pytest.raises(ValueError, match=r"row 1"):
        dc.entropy(p, input_type="probs")
    with pytest.raises(ValueError, match=r"row 1"):
        dc.entropy(np.log(p), input_type="log_probs")


def test_label_smoothing_is_applied_after_validation(dc):
    # the raw target is checked, so a valid target with smoothing is fine
    dc.cross_entropy(np.zeros((5, 4)), _probs(), label_smoothing=0.3)


# -------------------------------------------------------------------- bad keywords


def _raises_naming(word, func, *args, **kw):
    with pytest.raises(ValueError) as info:
        func(*args, **kw)
    assert word in str(info.value), str(info.value)


@pytest.mark.parametrize("reduction", ["avg", "", None, "MEAN", 1])
def test_bad_reduction(dc, reduction):
    x = np.zeros((2, 3))
    for f, t in ((dc.cross_entropy, np.array([0, 1])), (dc.kl_divergence, _probs(2, 3)),
                 (dc.decompose, np.array([0, 1]))):
        with pytest.raises((ValueError, TypeError)) as info:
            f(x, t, reduction=reduction)
        assert "reduction" in str(info.value)
    with pytest.raises((ValueError, TypeError), match="reduction"):
        dc.entropy(x, reduction=reduction)


@pytest.mark.parametrize("base", [1, 1.0, 0, -2.0, math.nan, math.inf])
def test_bad_base(dc, base):
    x = np.zeros((2, 3))
    _raises_naming("base", dc.cross_entropy, x, np.array([0, 1]), base=base)
    _raises_naming("base", dc.kl_divergence, x, _probs(2, 3), base=base)
    _raises_naming("base", dc.entropy, x, base=base)
    _raises_naming("base", dc.decompose, x, np.array([0, 1]), base=base)


@pytest.mark.parametrize("temperature", [0.0, -1.0, math.nan, math.inf])
def test_bad_temperature(dc, temperature):
    x = np.zeros((2, 3))
    _raises_naming("temperature", dc.softmax, x, temperature=temperature)
    _raises_naming("temperature", dc.log_softmax, x, temperature=temperature)
    _raises_naming("temperature", dc.cross_entropy, x, np.array([0, 1]),
                   temperature=temperature)
    _raises_naming("temperature", dc.kl_divergence, x, x, target_type="logits",
                   temperature=temperature)
    _raises_naming("temperature", dc.entropy, x, temperature=temperature)


@pytest.mark.parametrize("input_type", ["probs", "log_probs"])
def test_entropy_temperature_only_for_logits(dc, input_type):
    p = _probs(2, 3)
    if input_type == "log_probs":
        p = np.log(p)
    _raises_naming("temperature", dc.entropy, p, input_type=input_type, temperature=2.0)
    dc.entropy(p, input_type=input_type, temperature=1.0)  # the default is fine


@pytest.mark.parametrize("eps", [-0.1, 1.5, math.nan])
def test_bad_label_smoothing(dc, eps):
    x = np.zeros((2, 3))
    _raises_naming("label_smoothing", dc.cross_entropy, x, np.array([0, 1]),
                   label_smoothing=eps)
    _raises_naming("label_smoothing", dc.decompose, x, np.array([0, 1]), label_smoothing=eps)


@pytest.mark.parametrize("target_type", ["log_probs", "logits"])
def test_label_smoothing_only_with_labels_or_probs(dc, target_type):
    x = np.zeros((2, 3))
    t = np.log(_probs(2, 3))
    _raises_naming("label_smoothing", dc.cross_entropy, x, t, target_type=target_type,
                   label_smoothing=0.1)
    _raises_naming("label_smoothing", dc.decompose, x, t, target_type=target_type,
                   label_smoothing=0.1)


def test_bad_target_type_and_input_type(dc):
    x = np.zeros((2, 3))
    _raises_naming("target_type", dc.cross_entropy, x, np.array([0, 1]), target_type="label")
    _raises_naming("target_type", dc.kl_divergence, x, x, target_type="soft")
    _raises_naming("input_type", dc.entropy, x, input_type="prob")


def test_bad_axis(dc):
    x = np.zeros((2, 3))
    for call in (lambda: dc.logsumexp(x, axis=2), lambda: dc.softmax(x, axis=-3),
                 lambda: dc.cross_entropy(x, np.array([0, 1]), axis=5),
                 lambda: dc.entropy(x, axis=2)):
        with pytest.raises((ValueError, IndexError)) as info:
            call()
        assert "axis" in str(info.value)


# ----------------------------------------------------------------- shape mismatches


def test_shape_mismatch_names_the_argument(dc):
    x = np.zeros((4, 3))
    _raises_naming("target", dc.cross_entropy, x, np.array([0, 1, 2]))
    _raises_naming("target", dc.cross_entropy, x, np.zeros((4, 1), dtype=np.int64))
    _raises_naming("target", dc.cross_entropy, x, _probs(4, 4))
    _raises_naming("target", dc.kl_divergence, x, _probs(3, 3))
    _raises_naming("target", dc.kl_divergence, x, np.zeros((4, 4)), target_type="logits")
    _raises_naming("weight", dc.cross_entropy, x, np.array([0, 1, 2, 0]), weight=np.ones(4))
    _raises_naming("weight", dc.cross_entropy, x, np.array([0, 1, 2, 0]),
                   weight=np.ones((3, 1)))
    _raises_naming("where", dc.logsumexp, x, where=np.ones((4, 2), dtype=bool))
    _raises_naming("where", dc.cross_entropy, x, np.array([0, 1, 2, 0]),
                   where=np.ones((2, 3), dtype=bool))


@pytest.mark.parametrize("bad", [np.array([[1 + 2j, 0j]]), np.array([[1.0, 2.0]], dtype=object),
                                 np.array([["a", "b"]]), [["a", "b"]]])
def test_complex_object_string_logits_raise_type_error(dc, bad):
    for call in (lambda: dc.logsumexp(bad), lambda: dc.softmax(bad),
                 lambda: dc.log_softmax(bad), lambda: dc.entropy(bad),
                 lambda: dc.cross_entropy(bad, np.array([0])),
                 lambda: dc.kl_divergence(bad, np.array([[0.5, 0.5]]))):
        with pytest.raises(TypeError):
            call()


def test_complex_target_raises_type_error(dc):
    with pytest.raises(TypeError):
        dc.cross_entropy(np.zeros((1, 2)), np.array([[0.5 + 0j, 0.5]]))
