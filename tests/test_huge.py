"""64-bit index arithmetic: arrays with more than 2**31 elements, and byte offsets past
2**32, give the right answers (issue 6).

The arrays come from np.zeros, whose pages the kernel maps on first touch and which read
as the shared zero page: 8 GiB of float32 costs ~10 MiB of RAM (the page tables) and about
a second to read. Only the few entries a test sets are ever written. Expected values are
closed forms (an all-zero row of C classes has log-sum-exp log C) evaluated with `math`.

- always on: rows and classes far apart in an 8 GiB buffer (element offsets past 2**31,
  byte offsets past 2**33, but few values), and the cheapest full-size cases (one row of
  2**31 + 17 values; 2**22 + 3 rows of 512): ~4 s;
- DIVCORE_SLOW_TESTS=1 adds every function on the full-size arrays, and float64.
Where the machine cannot map the buffer at all (a small CI box, strict overcommit), the
test is skipped. Compiled core only: the pure-Python reference would take hours.
"""
import math
import os
import time

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("compiled")

SLOW = bool(os.environ.get("DIVCORE_SLOW_TESTS"))
slow = pytest.mark.skipif(not SLOW, reason="full-size >2**31 arrays: set DIVCORE_SLOW_TESTS=1")
BIG = 2**31 + 17  # elements: past what a 32-bit signed index can count


def zeros_or_skip(shape, dtype=np.float32):
    try:
        return np.zeros(shape, dtype=dtype)
    except MemoryError:
        pytest.skip(f"cannot map {np.prod(shape) * np.dtype(dtype).itemsize / 2**30:.0f} GiB "
                    "of zero pages here")


def lse_of(values, zeros):
    """log Σ exp over `values` and `zeros` more zeros."""
    m = max(list(values) + ([0.0] if zeros else []))
    return m + math.log(zeros * math.exp(-m) + math.fsum(math.exp(v - m) for v in values))


@pytest.fixture(scope="module")
def buffer8g():
    """A zero float32 buffer of 2**31 + 2**21 elements (8 GiB virtual)."""
    try:
        return np.zeros(2**31 + 2**21, dtype=np.float32)
    except MemoryError:
        pytest.skip("cannot map 8 GiB of zero pages here")


# ------------------------------------------------------- far apart, few values: cheap

def test_rows_far_apart(dc_compiled, buffer8g):
    # three rows of 100 classes, 2**30 + 3 elements apart: row 2 starts at element
    # 2**31 + 6, byte 2**33 + 24
    stride = 2**30 + 3
    x = np.lib.stride_tricks.as_strided(buffer8g, shape=(3, 100), strides=(4 * stride, 4))
    assert 2 * stride * 4 > 2**33
    rng = np.random.default_rng(0)
    vals = rng.standard_normal((3, 100)).astype(np.float32) * 3
    for i in range(3):
        buffer8g[i * stride:i * stride + 100] = vals[i]
    try:
        ref = vals.astype(np.float64)
        want = [lse_of(r.tolist(), 0) for r in ref]
        np.testing.assert_allclose(dc_compiled.logsumexp(x), want, rtol=1e-6)
        y = np.array([0, 50, 99])
        np.testing.assert_allclose(dc_compiled.cross_entropy(x, y, reduction="none"),
                                   [want[i] - ref[i, y[i]] for i in range(3)], rtol=1e-5)
        sm = dc_compiled.softmax(x, temperature=2.0)
        np.testing.assert_allclose(sm, np.exp(ref / 2 - np.array(
            [lse_of((r / 2).tolist(), 0) for r in ref])[:, None]), rtol=1e-5)
        # a soft target in another far-apart layout: target row i = logits row 2 - i
        t = x[::-1]
        np.testing.assert_allclose(
            dc_compiled.kl_divergence(x, t, target_type="logits", reduction="none")[1], 0.0,
            atol=1e-6)
    finally:
        for i in range(3):
            buffer8g[i * stride:i * stride + 100] = 0


def test_one_row_with_classes_far_apart(dc_compiled, buffer8g):
    # one row of 2049 classes, 2**20 elements (4 MiB) apart: the last class is element
    # 2**31, byte 2**33
    x = buffer8g[::2**20]
    n = x.shape[0]
    assert (n - 1) * 2**20 >= 2**31
    x[-1] = 5.0
    x[-2] = -1.0
    try:
        want = lse_of([5.0, -1.0], n - 2)
        assert math.isclose(dc_compiled.logsumexp(x), want, rel_tol=1e-6)
        for y, v in ((n - 1, 5.0), (n - 2, -1.0), (0, 0.0)):
            assert math.isclose(dc_compiled.cross_entropy(x, y), want - v, rel_tol=1e-5)
        where = np.ones(n, dtype=bool)
        where[-1] = False  # masking the large value: gathered row, mask read far out too
        assert math.isclose(dc_compiled.logsumexp(x, where=where), lse_of([-1.0], n - 2),
                            rel_tol=1e-6)
        sm = dc_compiled.softmax(x)
        assert math.isclose(sm[-1], math.exp(5.0 - want), rel_tol=1e-5)
    finally:
        x[-1] = x[-2] = 0.0


# --------------------------------------------------------- full size, > 2**31 values

def test_one_long_row_cross_entropy_label_near_the_end(dc_compiled):
    x = zeros_or_skip(BIG)
    y = BIG - 3
    x[y] = 3.0
    start = time.perf_counter()
    got = dc_compiled.cross_entropy(x, y)  # one contiguous row: the one-row path
    seconds = time.perf_counter() - start
    want = lse_of([3.0], BIG - 1) - 3.0
    assert math.isclose(got, want, rel_tol=1e-6), (got, want, seconds)


def test_one_long_row_logsumexp(dc_compiled):
    x = zeros_or_skip(BIG)
    x[-1] = 2.0
    # read in place: no row buffer of 2**31 values (run_rows allocates one only for rows
    # it must gather), and split across the threads when there are several
    got = dc_compiled.logsumexp(x)
    assert math.isclose(got, lse_of([2.0], BIG - 1), rel_tol=1e-6)
    ls = dc_compiled.log_softmax(x[: 2**20 + 5])   # the split writer, cheaply
    assert ls.shape == (2**20 + 5,)


@pytest.fixture(scope="module")
def many_rows():
    """(2**22 + 3, 512) float32 zeros: 2**31 + 1536 values; the last rows set."""
    try:
        x = np.zeros((2**22 + 3, 512), dtype=np.float32)
    except MemoryError:
        pytest.skip("cannot map 8 GiB of zero pages here")
    x[-1, -2] = 3.0
    x[-2, 7] = -2.0
    return x


def _row_lse(x):
    """The expected log-sum-exp of each of the last three rows and of an all-zero one."""
    c = x.shape[1]
    return lse_of([], c), lse_of([-2.0], c - 1), lse_of([3.0], c - 1)


def test_many_rows_logsumexp(dc_compiled, many_rows):
    got = dc_compiled.logsumexp(many_rows)
    zero, row2, row1 = _row_lse(many_rows)
    assert got.shape == (many_rows.shape[0],)
    np.testing.assert_allclose(got[[0, 2**21, -3, -2, -1]], [zero, zero, zero, row2, row1],
                               rtol=1e-6)
    assert np.all(got[:-2] == got[0])


def test_many_rows_cross_entropy_labels_near_the_end(dc_compiled, many_rows):
    r, c = many_rows.shape
    y = np.zeros(r, dtype=np.int64)
    y[-1], y[-2], y[-3] = c - 2, 7, c - 1
    zero, row2, row1 = _row_lse(many_rows)
    got = dc_compiled.cross_entropy(many_rows, y, reduction="none")
    np.testing.assert_allclose(got[-3:], [zero, row2 + 2.0, row1 - 3.0], rtol=1e-6)
    mean = dc_compiled.cross_entropy(many_rows, y)
    want = ((r - 2) * zero + (row2 + 2.0) + (row1 - 3.0)) / r
    assert math.isclose(mean, want, rel_tol=1e-6)
    y[-1] = c  # out of range in the very last row: found, with its row number
    with pytest.raises(IndexError, match=rf"row {r - 1}\b"):
        dc_compiled.cross_entropy(many_rows, y, validate=False)


@slow
def test_many_rows_every_function(dc_compiled, many_rows):
    r, c = many_rows.shape
    zero, row2, row1 = _row_lse(many_rows)
    y = np.full(r, 3, dtype=np.int64)
    h = dc_compiled.entropy(many_rows)
    assert math.isclose(h[0], math.log(c), rel_tol=1e-6)
    kl = dc_compiled.kl_divergence(many_rows, many_rows, target_type="logits", reduction="sum")
    assert kl == 0.0
    d = dc_compiled.decompose(many_rows, y, reduction="none")
    np.testing.assert_allclose(d.cross_entropy[-3:], [zero, row2, row1], rtol=1e-6)
    js = dc_compiled.js_divergence(many_rows, many_rows, target_type="logits")
    assert js == 0.0
    ls = dc_compiled.logsumexp(many_rows, axis=0)  # 512 columns of 2**22 + 3 rows each
    assert math.isclose(ls[0], lse_of([], r), rel_tol=1e-6)
    assert math.isclose(ls[-2], lse_of([3.0], r - 1), rel_tol=1e-6)


@slow
def test_one_long_row_float64(dc_compiled):
    x = zeros_or_skip(BIG, np.float64)
    y = BIG - 1
    x[y] = -4.0
    got = dc_compiled.cross_entropy(x, y)
    assert math.isclose(got, lse_of([-4.0], BIG - 1) + 4.0, rel_tol=1e-12)


@pytest.fixture
def dc_compiled(compiled):
    return compiled
