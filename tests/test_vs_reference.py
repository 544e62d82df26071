"""The compiled core against the pure-Python reference (SPEC §5: the reference is the oracle).

Every public function, on random inputs over shapes, axes, layouts, dtypes and keywords.
Both backends sit under the same api.py, so errors must match word for word and results
must have the same type, dtype and shape; values must agree to a few ulp of the compute
dtype, scaled by the magnitude of the terms involved (|logits|/T + log C).
"""
import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _helpers import (
    ALL_FUNCS,
    assert_allclose_nan,
    assert_same_kind,
    make_case,
    tolerances,
)

pytestmark = pytest.mark.usefixtures("compiled")


def _call(mod, case):
    snapshot = [np.array(a, copy=True) for a in case.args]
    kw_snapshot = {k: np.array(v, copy=True) for k, v in case.kwargs.items()
                   if isinstance(v, np.ndarray)}
    f = getattr(mod, case.fname)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            out = ("ok", f(*case.args, **case.kwargs))
        except Exception as exc:  # compared below
            out = ("err", type(exc), str(exc))
    # inputs are never modified
    for before, after in zip(snapshot, case.args):
        np.testing.assert_array_equal(before, np.asarray(after), err_msg="input modified")
    for k, before in kw_snapshot.items():
        np.testing.assert_array_equal(before, case.kwargs[k], err_msg=f"{k} modified")
    return out


_SUM_RE = re.compile(r"sums to (\S+) \(")


def _split_sums(message):
    sums = [float(v) for v in _SUM_RE.findall(message)]
    return _SUM_RE.sub("sums to # (", message), sums


def call_both(case):
    """The case on the compiled and the reference backend: their two results, or None
    when both raised the same error (checked here) - so callers compare values only."""
    import divcore
    import divcore.reference

    got = _call(divcore, case)
    ref = _call(divcore.reference, case)
    if got[0] == "err" or ref[0] == "err":
        assert got[:2] == ref[:2], f"{case}: compiled {got!r} vs reference {ref!r}"
        # same words; a row sum quoted in the message may differ in the last digits
        # (each backend sums in its own order and precision)
        msg_got, sums_got = _split_sums(got[2])
        msg_ref, sums_ref = _split_sums(ref[2])
        assert msg_got == msg_ref, f"{case}: compiled {got!r} vs reference {ref!r}"
        np.testing.assert_allclose(sums_got, sums_ref, rtol=1e-5, err_msg=repr(case))
        return None
    return got[1], ref[1]


def check_case(case):
    both = call_both(case)
    if both is None:
        return
    a, b = both
    rtol, atol = tolerances(case)
    if case.fname == "decompose":
        assert type(a).__name__ == type(b).__name__ == "Decomposition"
        assert a._fields == ("cross_entropy", "entropy", "kl_divergence")
        for name, x, y in zip(a._fields, a, b):
            assert_same_kind(x, y)
            assert_allclose_nan(x, y, rtol, atol, msg=f"{case} [{name}]")
        return
    assert_same_kind(a, b)
    assert_allclose_nan(a, b, rtol, atol, msg=repr(case))


# ------------------------------------------------------------------ hypothesis


@st.composite
def cases(draw, funcs=ALL_FUNCS, dtypes=("float16", "float32", "float64")):
    fname = draw(st.sampled_from(funcs))
    dtype = draw(st.sampled_from(dtypes))
    ndim = draw(st.integers(1, 3))
    c = draw(st.integers(1, 9))
    lead = draw(st.lists(st.integers(0, 4), min_size=ndim - 1, max_size=ndim - 1))
    pos = draw(st.integers(0, ndim - 1))
    shape = list(lead)
    shape.insert(pos, c)
    axis = draw(st.sampled_from([pos, pos - ndim]))
    seed = draw(st.integers(0, 2**32 - 1))
    ttype = draw(st.sampled_from(["labels", "probs", "log_probs", "logits"]))
    smoothing = draw(st.sampled_from([None, 0.0, 0.1, 1.0]))
    options = dict(
        scale=draw(st.sampled_from([0.1, 1.0, 3.0, 20.0])),
        offset=draw(st.sampled_from([0.0, 0.0, -30.0, 50.0])),
        p_neginf=draw(st.sampled_from([0.0, 0.0, 0.15])),
        p_nan=draw(st.sampled_from([0.0, 0.0, 0.0, 0.05])),
        where=draw(st.sampled_from(["none", "none", "full", "class"])),
        ttype=ttype,
        auto=draw(st.booleans()),
        label_dtype=draw(st.sampled_from(["int64", "int32", "int16"])),
        ignore_index=draw(st.sampled_from(["default", -1, 2])),
        p_ignore=draw(st.sampled_from([0.0, 0.3])),
        weight=draw(st.booleans()),
        smoothing=smoothing,
        temperature=draw(st.sampled_from([None, 1.0, 0.5, 3.0])),
        reduction=draw(st.sampled_from([None, "none", "sum", "mean"])),
        base=draw(st.sampled_from([None, None, 2, 10, math.e])),
        reverse=draw(st.sampled_from([None, False, True])),
        validate=draw(st.sampled_from([None, True, False])),
        keepdims=draw(st.sampled_from([None, False, True])),
        input_type=draw(st.sampled_from(["logits", "probs", "log_probs"])),
        zero_masked_target=draw(st.booleans()),
        layout=draw(st.sampled_from(["C", "F", "strided", "reversed"])),
        tlayout=draw(st.sampled_from(["C", "F", "strided", "reversed"])),
        target_dtype=draw(st.sampled_from(["compute", "float64"])),
    )
    if fname == "entropy" and options["input_type"] != "logits":
        options["temperature"] = None
    return make_case(fname, dtype, shape, axis, seed, **options)


@given(cases(funcs=("logsumexp", "log_softmax", "softmax")))
def test_lse_family_hypothesis(case):
    check_case(case)


@given(cases(funcs=("cross_entropy",)))
def test_cross_entropy_hypothesis(case):
    check_case(case)


@given(cases(funcs=("kl_divergence",)))
def test_kl_divergence_hypothesis(case):
    check_case(case)


@given(cases(funcs=("entropy",)))
def test_entropy_hypothesis(case):
    check_case(case)


@given(cases(funcs=("decompose",)))
def test_decompose_hypothesis(case):
    check_case(case)


# ------------------------------------------------------------------ parametrized grid

SHAPES = [
    ((7,), -1),
    ((7,), 0),
    ((5, 6), -1),
    ((5, 6), 0),
    ((5, 6), 1),
    ((3, 4, 5), -1),
    ((3, 4, 5), 1),
    ((3, 4, 5), 0),
    ((0, 5), -1),
    ((4, 1), -1),
    ((2, 300), -1),  # more than one SIMD block per row
]
DTYPES = ["float16", "float32", "float64"]
LAYOUTS = ["C", "F", "strided", "reversed"]


@pytest.mark.parametrize("fname", ["logsumexp", "log_softmax", "softmax"])
@pytest.mark.parametrize("shape,axis", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_lse_family_grid(fname, shape, axis, dtype):
    for i, (layout, where, extra) in enumerate([
        ("C", "none", {}),
        ("F", "full", {"p_neginf": 0.2}),
        ("strided", "class", {"temperature": 0.7, "keepdims": True}),
        ("reversed", "none", {"offset": 80.0, "scale": 10.0, "temperature": 2.0}),
        ("C", "none", {"p_nan": 0.1, "p_neginf": 0.1, "keepdims": False}),
    ]):
        if fname == "logsumexp":
            extra = {k: v for k, v in extra.items() if k != "temperature"}
        else:
            extra = {k: v for k, v in extra.items() if k != "keepdims"}
        check_case(make_case(fname, dtype, shape, axis, seed=1000 + i, layout=layout,
                             where=where, **extra))


LOSS_VARIANTS = [
    dict(ttype="labels"),
    dict(ttype="labels", auto=True, p_ignore=0.3),
    dict(ttype="labels", weight=True, p_ignore=0.3, reduction="mean"),
    dict(ttype="labels", weight=True, smoothing=0.2, reduction="sum", ignore_index=1,
         p_ignore=0.3),
    dict(ttype="labels", smoothing=0.1, where="full", temperature=1.5, base=2),
    dict(ttype="labels", label_dtype="int32", where="class", reduction="none",
         p_neginf=0.1),
    dict(ttype="probs"),
    dict(ttype="probs", auto=True, weight=True, smoothing=0.3, reduction="none"),
    dict(ttype="probs", where="full", zero_masked_target=False, reduction="none"),
    dict(ttype="probs", p_neginf=0.2, temperature=0.5, base=10, validate=False),
    dict(ttype="log_probs", reduction="none", target_dtype="float64"),
    dict(ttype="log_probs", where="class", temperature=2.0),
    dict(ttype="logits", reduction="none"),
    dict(ttype="logits", temperature=4.0, where="full", p_neginf=0.1, reduction="sum"),
    dict(ttype="logits", offset=-40.0, scale=10.0, reduction="none", tlayout="F"),
    dict(ttype="probs", p_nan=0.1, reduction="none"),
]
LOSS_SHAPES = [((6,), 0), ((5, 6), -1), ((6, 5), 0), ((3, 4, 5), 1), ((0, 4), -1),
               ((3, 257), -1)]


@pytest.mark.parametrize("variant", range(len(LOSS_VARIANTS)))
@pytest.mark.parametrize("fname", ["cross_entropy", "kl_divergence", "decompose"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_losses_grid(variant, fname, dtype):
    opts = dict(LOSS_VARIANTS[variant])
    if fname == "kl_divergence":
        opts["reverse"] = variant % 2 == 1
    for j, (shape, axis) in enumerate(LOSS_SHAPES):
        layout = LAYOUTS[(variant + j) % len(LAYOUTS)]
        check_case(make_case(fname, dtype, shape, axis, seed=10 * variant + j,
                             layout=layout, **opts))


@pytest.mark.parametrize("input_type", ["logits", "probs", "log_probs"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", [None, "none", "sum", "mean"])
def test_entropy_grid(input_type, dtype, reduction):
    for j, (shape, axis) in enumerate(LOSS_SHAPES):
        extra = {}
        if input_type == "logits":
            extra = dict(temperature=[None, 0.5, 3.0][j % 3], p_neginf=0.1 * (j % 2))
        check_case(make_case("entropy", dtype, shape, axis, seed=j, input_type=input_type,
                             reduction=reduction, where=["none", "full", "class"][j % 3],
                             layout=LAYOUTS[j % 4], base=[None, 2][j % 2], **extra))


def test_large_rows_float32_and_float64():
    # long rows exercise the blocked loops (several blocks, a tail); few rows keep the
    # pure-Python reference fast.
    for dtype in ("float32", "float64"):
        for fname, opts in [
            ("logsumexp", {}),
            ("softmax", {"temperature": 0.3}),
            ("cross_entropy", {"ttype": "labels", "smoothing": 0.1}),
            ("cross_entropy", {"ttype": "probs", "reduction": "none"}),
            ("kl_divergence", {"ttype": "logits", "reduction": "none"}),
            ("entropy", {"reduction": "none"}),
        ]:
            check_case(make_case(fname, dtype, (2, 4099), -1, seed=5, scale=4.0, **opts))


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_float32_underflowing_probability_on_neg_inf_logit(dtype):
    # A target or model probability that underflows float32 (e^-110 < 1.4e-45) but sits
    # on a -inf logit, or where the other side is 0: the compiled core (float32 compute)
    # and the reference (double) must agree on +inf.
    import divcore
    import divcore.reference as ref

    x = np.array([0.0, -np.inf], dtype=dtype)
    t = np.array([0.0, -110.0], dtype=dtype)
    for kw in ({"target_type": "logits"}, {"target_type": "log_probs"}):
        for f in ("cross_entropy", "kl_divergence"):
            a = getattr(divcore, f)(x, t, reduction="none", **kw)
            b = getattr(ref, f)(x, t, reduction="none", **kw)
            assert_same_kind(a, b)
            assert_allclose_nan(a, b, 0, 0, msg=f"{f} {kw}")
    # reverse KL: q = softmax([0, -110]) has q_1 = e^-110 > 0 where p_1 = 0
    xr = np.array([0.0, -110.0], dtype=dtype)
    p = np.array([1.0, 0.0], dtype=dtype)
    a = divcore.kl_divergence(xr, p, reverse=True, reduction="none")
    b = ref.kl_divergence(xr, p, reverse=True, reduction="none")
    assert_allclose_nan(a, b, 0, 0, msg="reverse KL")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["probs", "log_probs"])
def test_reverse_kl_long_rows_against_the_reference(dtype, kind):
    # Rows of 1000-3001 classes (whole vectors and a scalar tail in every block): target
    # zeros under a finite logit (+inf), zeros under -inf logits (0 terms), a row whose
    # zeros are all masked by -inf logits, and ordinary rows; the vector values pass and
    # the reference (float64) agree.
    import divcore
    import divcore.reference as ref

    rng = np.random.default_rng(17)
    for n in (1000, 1037, 3001):
        x = (rng.standard_normal((6, n)) * 3).astype(dtype)
        p = rng.dirichlet(np.ones(n) * 0.5, size=6)
        p[1, 5] = 0.0                       # q > 0 where p = 0: +inf
        p[2, :40] = 0.0
        x[2, :40] = -np.inf                 # p = 0 only where q = 0: finite
        x[3, n - 3:] = -np.inf
        p = (p / p.sum(axis=1, keepdims=True)).astype(dtype)
        with np.errstate(divide="ignore"):
            t = p if kind == "probs" else np.log(p)
            a = divcore.kl_divergence(x, t, target_type=kind, reverse=True,
                                      reduction="none", validate=False)
            b = ref.kl_divergence(x.astype(np.float64), t.astype(np.float64),
                                  target_type=kind, reverse=True, reduction="none",
                                  validate=False)
        assert np.isinf(a[1]) and np.isinf(b[1])
        finite = np.isfinite(b)
        assert np.array_equal(np.isfinite(a), finite)
        rtol = 2e-6 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(a[finite], b[finite], rtol=rtol, atol=0, err_msg=str(n))
