"""`out=` of the writers (log_softmax, softmax) and of the gradients: the result rounded once
into an array of the caller's dtype (float16, bfloat16, float32, float64), e.g. the input's
own half dtype. The oracle is numpy's (and ml_dtypes') cast of the float result, which
rounds to nearest even; the bits must match it exactly."""
import numpy as np
import pytest

import divcore
import divcore.reference as ref

try:
    import ml_dtypes
    OUT_DTYPES = [np.float16, ml_dtypes.bfloat16, np.float32, np.float64]
except ImportError:  # pragma: no cover - ml_dtypes is optional
    OUT_DTYPES = [np.float16, np.float32, np.float64]


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(
        a.astype(np.float64), b.astype(np.float64), equal_nan=True)


@pytest.fixture(params=["compiled", "reference"])
def dc(request):
    if request.param == "compiled":
        return divcore
    return ref


@pytest.mark.parametrize("out_dtype", OUT_DTYPES)
@pytest.mark.parametrize("in_dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("fname", ["log_softmax", "softmax"])
def test_writer_into_out_is_the_rounded_result(dc, rng, fname, in_dtype, out_dtype):
    x = (rng.standard_normal((7, 33)) * 5).astype(in_dtype)
    x[0, 3], x[1, :] = -np.inf, -np.inf  # a masked class, a row without a distribution
    x[2, 4] = np.nan
    out = np.full(x.shape, 7, dtype=out_dtype)
    with np.errstate(all="ignore"):
        got = getattr(dc, fname)(x, out=out, temperature=1.5)
        want = getattr(dc, fname)(x, temperature=1.5).astype(out_dtype)
    assert got is out
    assert same_bits(out, want)


@pytest.mark.parametrize("fname", ["log_softmax", "softmax"])
def test_out_written_in_pieces_with_a_mask_and_a_class_axis_1(rng, fname):
    """Big enough for several pieces (4 MiB of float32 rows each); the mask broadcast along
    the first axis; the class axis in the middle (torch's (N, C, d))."""
    x = rng.standard_normal((300, 64, 70)).astype(np.float32)  # 5.4 MB
    where = rng.random((1, 64, 70)) < 0.9
    out = np.empty(x.shape, dtype=np.float16)
    fn = getattr(divcore, fname)
    got = fn(x, axis=1, where=where, out=out)
    assert got is out
    assert same_bits(out, fn(x, axis=1, where=where).astype(np.float16))


def test_out_may_be_the_input_itself(rng):
    x = rng.standard_normal((50, 40))
    want = divcore.log_softmax(x)
    got = divcore.log_softmax(x, out=x)
    assert got is x and same_bits(x, want)
    y = rng.standard_normal((40, 50))
    want = divcore.softmax(y, axis=0)
    divcore.softmax(y, axis=0, out=y)
    assert same_bits(y, want)


@pytest.mark.parametrize("out_dtype", OUT_DTYPES)
@pytest.mark.parametrize("fname,target", [
    ("cross_entropy_and_grad", "labels"), ("kl_divergence_and_grad", "logits")])
def test_gradient_into_out(dc, rng, fname, target, out_dtype):
    x = rng.standard_normal((6, 20)).astype(np.float32)
    if target == "labels":
        args, kw = (x, rng.integers(0, 20, 6)), {}
    else:
        args, kw = (x, rng.standard_normal((6, 20)).astype(np.float32)), {
            "target_type": "logits"}
    out = np.empty(x.shape, dtype=out_dtype)
    loss, grad = getattr(dc, fname)(*args, out=out, **kw)
    want_loss, want_grad = getattr(dc, fname)(*args, **kw)
    assert grad is out
    assert same_bits(out, want_grad.astype(out_dtype))
    assert loss == want_loss


def test_half_input_into_its_own_dtype(rng):
    """The use the keyword is for: half logits, a half result, no float32 array kept."""
    x = rng.standard_normal((8, 100)).astype(np.float16)
    out = np.empty_like(x)
    divcore.softmax(x, out=out)
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.astype(np.float64).sum(axis=1), 1.0, rtol=2e-3)


@pytest.mark.parametrize("bad,exc,words", [
    (np.empty((4, 6)), ValueError, ["out", "(4, 5)"]),
    (np.empty((4, 5), dtype=np.int64), TypeError, ["out", "int64"]),
    ([[0.0] * 5] * 4, TypeError, ["out", "list"]),
])
@pytest.mark.parametrize("fname", ["log_softmax", "softmax", "cross_entropy_and_grad"])
def test_bad_out(dc, fname, bad, exc, words):
    args = (np.zeros((4, 5)),) if "softmax" in fname else (np.zeros((4, 5)), [0, 1, 2, 3])
    with pytest.raises(exc) as info:
        getattr(dc, fname)(*args, out=bad)
    for w in words:
        assert w in str(info.value)


def test_read_only_out():
    out = np.empty((3, 4))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        divcore.log_softmax(np.zeros((3, 4)), out=out)
