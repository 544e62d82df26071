"""A catalogue of bad input for every public function (issue 6), on both backends.

Each entry is a call that must fail, the exception type it must raise and the words its
message must hold: the argument at fault, and the row and value where one is to blame.
The tables are driven by the functions' own signatures, so a function or keyword added
later without a catalogue entry fails `test_catalogue_covers_every_keyword`.

Nothing here may crash, hang or return a number: a wrong exception type (OverflowError,
AttributeError, SystemError, ...) or an unhelpful message is a bug.
"""
import inspect
import math
import re
import warnings

import numpy as np
import pytest

import divcore

N, C = 5, 4

# ------------------------------------------------------------------ the functions

# name -> (the name of its first array argument, what its second one is, if any)
FUNCS = {
    "logsumexp": ("x", None),
    "log_softmax": ("x", None),
    "softmax": ("x", None),
    "entropy": ("x", None),
    "cross_entropy": ("logits", "labels"),
    "decompose": ("logits", "labels"),
    "cross_entropy_and_grad": ("logits", "labels"),
    "kl_divergence": ("logits", "probs"),
    "kl_divergence_and_grad": ("logits", "probs"),
    "js_divergence": ("logits", "probs"),
    "binary_cross_entropy": ("logits", "same"),
}
ONE_ARRAY = [f for f, (_, t) in FUNCS.items() if t is None]
TWO_ARRAYS = [f for f, (_, t) in FUNCS.items() if t is not None]
TAKE_LABELS = [f for f in TWO_ARRAYS if f != "binary_cross_entropy"]
SOFT_TARGET = TAKE_LABELS  # every label-taking function also takes probabilities


def _probs(n=N, c=C):
    rng = np.random.default_rng(0)
    p = rng.random((n, c)) + 0.1
    return p / p.sum(-1, keepdims=True)


def good_args(fname, target=None):
    """A valid call's positional arguments; `target` 'labels' or 'probs' picks the
    target of a loss (its usual one by default)."""
    x = np.zeros((N, C))
    kind = FUNCS[fname][1]
    if kind is None:
        return [x]
    if kind == "same":
        return [x, np.full((N, C), 0.5)]
    if (target or kind) == "labels":
        return [x, np.arange(N) % C]
    return [x, _probs()]


def call(dc, fname, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return getattr(dc, fname)(*args, **kw)


def raises(exc_type, words, dc, fname, *args, **kw):
    """The call raises exc_type (exactly that class or a subclass) and its message holds
    every one of `words` (whole words where they are identifiers)."""
    with pytest.raises(exc_type) as info:
        call(dc, fname, *args, **kw)
    msg = str(info.value)
    for word in words:
        # a whole word or number: "-1" must not match inside "-100", nor "row 3" in "row 30"
        pattern = rf"(?<![\w-]){re.escape(word)}(?![\w])"
        assert re.search(pattern, msg), f"{fname}: {word!r} not in the message {msg!r}"
    return msg


# ------------------------------------------------------------ wrong array dtypes

BAD_DTYPES = {
    "complex": (lambda a: np.asarray(a) + 0j, TypeError),
    "complex64": (lambda a: np.asarray(a).astype(np.complex64), TypeError),
    "object": (lambda a: np.asarray(a).astype(object), TypeError),
    "strings": (lambda a: np.asarray(a).astype(str), TypeError),
    "bytes": (lambda a: np.asarray(a).astype("S3"), TypeError),
    "datetime": (lambda a: np.asarray(a).astype("M8[s]"), TypeError),
    "timedelta": (lambda a: np.asarray(a).astype("m8[s]"), TypeError),
    "structured": (lambda a: np.zeros(np.shape(a), dtype=[("v", "f8")]), TypeError),
    "string list": (lambda a: np.asarray(a).astype(str).tolist(), TypeError),
    "None list": (lambda a: np.full(np.shape(a), None).tolist(), TypeError),
}


@pytest.mark.parametrize("bad", sorted(BAD_DTYPES))
@pytest.mark.parametrize("fname", sorted(FUNCS))
def test_wrong_dtype_of_first_array(dc, fname, bad):
    make, exc = BAD_DTYPES[bad]
    args = good_args(fname)
    args[0] = make(args[0])
    raises(exc, [FUNCS[fname][0]], dc, fname, *args)


@pytest.mark.parametrize("bad", sorted(BAD_DTYPES))
@pytest.mark.parametrize("target_type", [None, "labels", "probs", "log_probs", "logits"])
@pytest.mark.parametrize("fname", sorted(TWO_ARRAYS))
def test_wrong_dtype_of_target(dc, fname, target_type, bad):
    if fname == "binary_cross_entropy" and target_type is not None:
        return
    make, exc = BAD_DTYPES[bad]
    args = good_args(fname, "labels" if target_type == "labels" else "probs")
    args[1] = make(args[1])
    kw = {} if target_type is None else {"target_type": target_type}
    raises(exc, ["target"], dc, fname, *args, **kw)


@pytest.mark.parametrize("fname", sorted(TAKE_LABELS))
def test_float_or_bool_labels_where_labels_are_meant(dc, fname):
    x = np.zeros((N, C))
    for labels in (np.array([0.0, 1.0, 2.0, 3.0, 0.0]), np.arange(N, dtype=np.float32) % C,
                   [0.0, 1.0, 2.0, 3.0, 0.0]):
        # whole-number floats are labels when target_type says so (one rule with `divcore
        # score`, which reads label files of any dtype)
        got = call(dc, fname, x, labels, target_type="labels")
        want = call(dc, fname, x, np.asarray(labels).astype(np.int64), target_type="labels")
        assert np.array_equal(np.asarray(got[0] if isinstance(got, tuple) else got),
                              np.asarray(want[0] if isinstance(want, tuple) else want))
        # without target_type a float array of the leading shape is read as
        # probabilities, whose shape is then wrong: an error naming the target and saying
        # how to pass labels, not a guess
        raises((TypeError, ValueError), ["target"], dc, fname, x, labels)
    raises(ValueError, ["target", "row 1", "whole number"], dc, fname, x,
           np.array([0.0, 1.5, 2.0, 3.0, 0.0]), target_type="labels")
    raises(TypeError, ["target", "integers"], dc, fname, x,
           np.array([True, False, True, False, True]), target_type="labels")


# ------------------------------------------------------------- ragged and 0-d input

RAGGED = [[0.0, 1.0], [2.0]]


@pytest.mark.parametrize("fname", sorted(FUNCS))
def test_ragged_first_array(dc, fname):
    args = good_args(fname)
    args[0] = RAGGED
    raises(ValueError, [FUNCS[fname][0]], dc, fname, *args)


@pytest.mark.parametrize("fname", sorted(TWO_ARRAYS))
def test_ragged_target(dc, fname):
    args = good_args(fname)
    args[1] = [[0.5, 0.5], [1.0]]
    raises(ValueError, ["target"], dc, fname, *args)


@pytest.mark.parametrize("fname", sorted(FUNCS))
def test_zero_dimensional_input(dc, fname):
    name = FUNCS[fname][0]
    if fname == "binary_cross_entropy":
        # elementwise: a scalar logit and label is a valid call; a 0-d against a 1-d is not
        assert np.isfinite(call(dc, fname, 0.5, 1.0))
        raises(ValueError, ["target"], dc, fname, 0.5, np.array([1.0, 0.0]))
        return
    args = good_args(fname)
    for scalar in (np.float64(1.0), 1.0, np.array(2.0), None):
        args[0] = scalar
        raises(ValueError, [name, "dimension"], dc, fname, *args)


@pytest.mark.parametrize("fname", sorted(SOFT_TARGET))
def test_zero_dimensional_target(dc, fname):
    x = np.zeros((N, C))
    raises(ValueError, ["target"], dc, fname, x, 0.25, target_type="probs")
    raises(ValueError, ["target"], dc, fname, x, np.float32(0.25))


# ----------------------------------------------------------------- shape mismatches

@pytest.mark.parametrize("fname", sorted(TAKE_LABELS))
def test_label_shape_mismatch(dc, fname):
    x = np.zeros((N, C))
    for labels in (np.zeros(N + 1, np.int64), np.zeros((N, 1), np.int64),
                   np.zeros((1, N), np.int64), np.zeros(C, np.int64), np.int64(0)):
        msg = raises(ValueError, ["target"], dc, fname, x, labels)
        assert "shape" in msg


@pytest.mark.parametrize("target_type", ["probs", "log_probs", "logits"])
@pytest.mark.parametrize("fname", sorted(SOFT_TARGET))
def test_soft_target_shape_mismatch(dc, fname, target_type):
    x = np.zeros((N, C))
    for shape in ((N, C + 1), (N + 1, C), (C, N), (N, C, 1), (1, N, C), (C,), (N,)):
        raises(ValueError, ["target", "shape"], dc, fname, x, np.full(shape, 1.0 / C),
               target_type=target_type)


def test_bce_operand_shapes(dc):
    x = np.zeros((N, C))
    y = np.zeros((N, C))
    # the target must have the logits' shape exactly (no broadcasting of labels)
    for shape in ((C,), (1, C), (N, 1), (N, C + 1), (N, C, 1)):
        raises(ValueError, ["target", "shape"], dc, "binary_cross_entropy", x, np.zeros(shape))
    # weight and pos_weight broadcast to the logits, nothing else
    for name in ("weight", "pos_weight"):
        for shape in ((C + 1,), (N,), (N, C + 1), (2, N, C), (N + 1, 1)):
            raises(ValueError, [name, "shape"], dc, "binary_cross_entropy", x, y,
                   **{name: np.ones(shape)})
        raises(TypeError, [name], dc, "binary_cross_entropy", x, y, **{name: np.ones(C) + 0j})
        raises(TypeError, [name], dc, "binary_cross_entropy", x, y, **{name: ["a"] * C})
        raises(ValueError, [name], dc, "binary_cross_entropy", x, y, **{name: RAGGED})


@pytest.mark.parametrize("fname", ["cross_entropy", "decompose", "cross_entropy_and_grad"])
def test_class_weight_shape_and_dtype(dc, fname):
    x, y = good_args(fname)
    for w in (np.ones(C + 1), np.ones(C - 1), np.ones((C, 1)), np.ones((1, C)),
              np.ones((N, C)), np.float64(1.0), np.ones(0)):
        raises(ValueError, ["weight"], dc, fname, x, y, weight=w)
    raises(TypeError, ["weight"], dc, fname, x, y, weight=np.ones(C) + 0j)
    raises(TypeError, ["weight"], dc, fname, x, y, weight=np.array(["a"] * C))
    raises(TypeError, ["weight"], dc, fname, x, y, weight=np.ones(C).astype(object))
    raises(ValueError, ["weight"], dc, fname, x, y, weight=RAGGED)


@pytest.mark.parametrize("fname", sorted(set(FUNCS) - {"binary_cross_entropy"}))
def test_where_shape_and_dtype(dc, fname):
    args = good_args(fname)
    for shape in ((N, C + 1), (C + 1,), (N,), (N, 1, C), (2, N, C)):
        raises(ValueError, ["where", "shape"], dc, fname, *args, where=np.ones(shape, bool))
    for w in (np.ones((N, C)), np.ones((N, C), np.uint8), np.ones((N, C), np.int64),
              np.ones(C).tolist(), np.full((N, C), "True")):
        raises(TypeError, ["where", "boolean"], dc, fname, *args, where=w)
    raises(ValueError, ["where"], dc, fname, *args, where=[[True], [True, False]])


# ------------------------------------------------------- labels out of range

# label values that can never be valid for C = 4 (ignore_index is left at -100)
BAD_LABELS = [C, C + 1, 1000, -1, -C, -101, -99, 2**31 - 1, 2**31, -2**31, 2**32 + 1,
              2**62, np.iinfo(np.int64).max, np.iinfo(np.int64).min]


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize("bad", BAD_LABELS)
@pytest.mark.parametrize("fname", sorted(TAKE_LABELS))
def test_label_out_of_range(dc, fname, bad, validate):
    x = np.zeros((N, C))
    y = np.arange(N) % C
    y[3] = bad
    y[4] = C + 7  # a later bad row: the first one is reported
    msg = raises(IndexError, ["target", "row 3", str(bad)], dc, fname, x, y, validate=validate)
    assert str(C + 7) not in msg.replace(str(bad), "")


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "int32", "uint32",
                                   "uint64", ">i8", "<i4"])
@pytest.mark.parametrize("fname", sorted(TAKE_LABELS))
def test_label_out_of_range_every_integer_dtype(dc, fname, dtype):
    info = np.iinfo(np.dtype(dtype))
    x = np.zeros((N, C))
    for bad in {C, info.max} | ({-1, info.min} if info.min < 0 else set()):
        y = (np.arange(N) % C).astype(dtype)
        y[2] = bad
        raises(IndexError, ["target", "row 2", str(bad)], dc, fname, x, y, validate=False)


@pytest.mark.parametrize("bad", [2**63, 2**64 - 1, 2**70, -2**63 - 1, -2**70])
@pytest.mark.parametrize("fname", sorted(TAKE_LABELS))
def test_labels_beyond_int64(dc, fname, bad):
    x = np.zeros((N, C))
    y = (np.arange(N) % C).tolist()
    y[1] = bad
    if np.asarray(y).dtype.kind == "f":
        # numpy reads [0, 2**63, ...] as float64 (it has no integer type for both): that
        # is no label array, and the error must say so rather than compute anything
        raises((TypeError, ValueError), ["target"], dc, fname, x, y)
        raises(IndexError, ["target", "row 1"], dc, fname, x, y, target_type="labels")
    else:  # Python ints numpy keeps as objects: out of range, whatever their type
        raises(IndexError, ["target", "row 1", str(bad)], dc, fname, x, y)
    if bad > 0 and bad < 2**64:
        yu = (np.arange(N) % C).astype(np.uint64)
        yu[1] = bad
        raises(IndexError, ["target", "row 1", str(bad)], dc, fname, x, yu)


@pytest.mark.parametrize("bad", [C, -1, 2**40, 2**63 - 1, -2**63, 2**63, 2**70, -2**70])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_row_label_out_of_range(dc, dtype, bad):
    # one row and a Python int label: the compiled core's one-row shortcut
    x = np.zeros(C, dtype=dtype)
    for f in TAKE_LABELS:
        raises(IndexError, ["target", "row 0", str(bad)], dc, f, x, bad)
    raises(IndexError, ["target", "row 0", str(bad)], dc, "cross_entropy", x, bad,
           reduction="sum", ignore_index=-100)


def test_ignore_index_is_not_a_way_around_the_bounds_check(dc):
    x = np.zeros((N, C))
    y = np.array([0, 1, -100, 9, 2])
    raises(IndexError, ["row 3", "9"], dc, "cross_entropy", x, y, ignore_index=-100)
    raises(IndexError, ["row 2", "-100"], dc, "cross_entropy", x, y, ignore_index=None)
    raises(IndexError, ["row 2", "-100"], dc, "cross_entropy", x, y, ignore_index=9)
    # kl_divergence, js_divergence have no ignore_index: -100 is just out of range
    for f in ("kl_divergence", "js_divergence", "kl_divergence_and_grad"):
        raises(IndexError, ["row 2", "-100"], dc, f, x, y)


def test_labels_on_zero_classes(dc):
    x = np.zeros((N, 0))
    for f in TAKE_LABELS:
        raises(IndexError, ["target", "row 0", "0"], dc, f, x, np.zeros(N, np.int64))


# ------------------------------------------------------- probability targets

@pytest.mark.parametrize("problem", ["negative", "nan", "sum", "inf"])
@pytest.mark.parametrize("fname", sorted(SOFT_TARGET))
def test_bad_probability_row_names_the_row(dc, fname, problem):
    x = np.zeros((N, C))
    p = _probs()
    if problem == "negative":
        p[2] = [0.5, 0.7, -0.2, 0.0]
    elif problem == "nan":
        p[2, 1] = np.nan
    elif problem == "inf":
        p[2, 1] = np.inf
    else:
        p[2] *= 1.01
    p[4] = [2.0, -1.0, 0.0, 0.0]
    raises(ValueError, ["target", "row 2"], dc, fname, x, p)
    # validate=False skips the check: a number (or nan) comes back, never a crash
    call(dc, fname, x, p, validate=False)


@pytest.mark.parametrize("fname", sorted(SOFT_TARGET))
def test_bad_log_probability_row_names_the_row(dc, fname):
    x = np.zeros((N, C))
    lp = np.log(_probs())
    lp[1, 0] = np.nan
    raises(ValueError, ["target", "row 1"], dc, fname, x, lp, target_type="log_probs")
    lp = np.log(_probs()) + 0.01
    raises(ValueError, ["target", "row 0"], dc, fname, x, lp, target_type="log_probs")


@pytest.mark.parametrize("input_type", ["probs", "log_probs"])
def test_entropy_bad_distribution_names_x_and_row(dc, input_type):
    p = _probs()
    p[3, 0] = -0.1
    q = p if input_type == "probs" else np.where(p < 0, np.nan, np.log(np.abs(p)))
    raises(ValueError, ["x", "row 3"], dc, "entropy", q, input_type=input_type)


# ---------------------------------------------------------------- bad keywords

INF, NAN = math.inf, math.nan
# keyword -> [(bad value, exception type)], for every keyword of every public function;
# None as the list: any value is accepted (flags read with bool()).
BAD_KEYWORDS = {
    "axis": [(2, (ValueError, IndexError)), (-3, (ValueError, IndexError)), (1.0, TypeError),
             ("0", TypeError), (None, None)],  # None: all axes (logsumexp / softmax family)
    "keepdims": None,
    "where": [(np.ones((N, C)), TypeError), (np.ones((N, C + 1), bool), ValueError)],
    "temperature": [(0.0, ValueError), (-1.0, ValueError), (NAN, ValueError), (INF, ValueError),
                    ("2", TypeError), (None, TypeError), (True, TypeError),
                    (np.array([2.0]), TypeError), (1 + 0j, TypeError)],
    "reduction": [("avg", ValueError), ("", ValueError), (None, ValueError), ("MEAN", ValueError),
                  (1, ValueError)],
    "base": [(1, ValueError), (1.0, ValueError), (0, ValueError), (-2.0, ValueError),
             (NAN, ValueError), (INF, ValueError), ("2", TypeError), (True, TypeError)],
    "target_type": [("label", ValueError), ("prob", ValueError), (None, ValueError),
                    ("Labels", ValueError)],
    "input_type": [("prob", ValueError), (None, ValueError), ("labels", ValueError)],
    "weight": [(np.ones(C + 1), ValueError), (np.ones(C) + 0j, TypeError)],
    "pos_weight": [(np.ones(C + 1), ValueError), (np.ones(C) + 0j, TypeError)],
    "ignore_index": [(1.5, TypeError), ("a", TypeError), (-100.0, TypeError),
                     (2**63, ValueError), (-2**70, ValueError)],
    "label_smoothing": [(-0.1, ValueError), (1.5, ValueError), (NAN, ValueError),
                        ("0.1", TypeError), (None, TypeError)],
    "beta": [(-0.1, ValueError), (1.5, ValueError), (NAN, ValueError), ("a", TypeError),
             (None, TypeError)],
    "reverse": None,
    "validate": None,
    "sum_tol": [(-1.0, ValueError), (NAN, ValueError), ("0.1", TypeError), (True, TypeError)],
    "tail": [("buckets", ValueError), (None, ValueError), ("drop", ValueError)],  # dense target
    "sample_weight": [(np.ones(N + 1), ValueError), (-1.0, ValueError), (NAN, ValueError),
                      (INF, ValueError), ("a", TypeError), (np.ones(N) + 0j, TypeError)],
    "z_loss": [(-1.0, ValueError), (NAN, ValueError), (INF, ValueError), ("a", TypeError),
               (True, TypeError), (None, TypeError)],
    "out": [(np.empty((N, C + 1)), ValueError), (np.empty((N, C), dtype=np.int32), TypeError),
            ([[0.0] * C] * N, TypeError)],
    "softcap": [(0.0, ValueError), (-1.0, ValueError), (NAN, ValueError), (INF, ValueError),
                ("2", TypeError), (True, TypeError)],
}


def _keyword_cases():
    for fname in sorted(FUNCS):
        params = inspect.signature(getattr(divcore, fname)).parameters
        for name, p in params.items():
            if p.kind is not p.KEYWORD_ONLY and p.default is p.empty:
                continue
            for value, exc in BAD_KEYWORDS.get(name) or []:
                if exc is None:
                    continue
                if name == "axis" and fname in ("logsumexp", "log_softmax", "softmax") \
                        and value in (1.0, "0"):
                    exc = TypeError
                yield pytest.param(fname, name, value, exc, id=f"{fname}-{name}={value!r}")


@pytest.mark.parametrize("fname,name,value,exc", list(_keyword_cases()))
def test_bad_keyword_value(dc, fname, name, value, exc):
    args = good_args(fname)
    kw = {name: value}
    if name == "ignore_index":
        args = good_args(fname, "labels")
    if name in ("beta", "label_smoothing") and fname != "js_divergence":
        kw["target_type"] = "labels"
    raises(exc, [name], dc, fname, *args, **kw)


def test_catalogue_covers_every_keyword():
    """A keyword added to a public function needs an entry in BAD_KEYWORDS."""
    for fname in FUNCS:
        params = inspect.signature(getattr(divcore, fname)).parameters
        for name, p in params.items():
            if p.default is not p.empty:
                assert name in BAD_KEYWORDS, f"{fname}({name}=...) has no bad-input entry"
    public = {n for n in divcore.__all__ if callable(getattr(divcore, n))
              and n not in ("Decomposition", "TopK", "backend", "get_include", "show_config",
                            "get_num_threads", "set_num_threads",
                            # row_stats' bad input: tests/test_row_stats.py
                            "RowStats", "row_stats")}
    assert public == set(FUNCS), public ^ set(FUNCS)


@pytest.mark.parametrize("fname", sorted(FUNCS))
def test_unknown_keyword_and_extra_positional(dc, fname):
    args = good_args(fname)
    raises(TypeError, ["no_such_keyword"], dc, fname, *args, no_such_keyword=1)
    # keywords are keyword-only past the documented positional ones
    with pytest.raises(TypeError):
        call(dc, fname, *args, -1, -1, -1)
    with pytest.raises(TypeError):
        call(dc, fname)  # nothing at all


@pytest.mark.parametrize("fname", ["cross_entropy", "decompose", "cross_entropy_and_grad"])
def test_label_smoothing_with_other_target_types(dc, fname):
    x = np.zeros((N, C))
    lp = np.log(_probs())
    for tt in ("log_probs", "logits"):
        raises(ValueError, ["label_smoothing"], dc, fname, x, lp, target_type=tt,
               label_smoothing=0.1)


def test_entropy_temperature_only_with_logits(dc):
    p = _probs()
    for it in ("probs", "log_probs"):
        q = p if it == "probs" else np.log(p)
        raises(ValueError, ["temperature"], dc, "entropy", q, input_type=it, temperature=2.0)


def test_torch_tensor_on_another_device_is_a_type_error(dc):
    torch = pytest.importorskip("torch")
    t = torch.zeros((N, C), device="meta")
    raises(TypeError, ["logits", "meta"], dc, "cross_entropy", t, np.arange(N) % C)
