"""The one-row shortcut of cross_entropy (a contiguous float row and an int label, default
keywords) returns exactly what the general path returns, and declines everything else."""
import numpy as np
import pytest

import divcore
import divcore.reference as ref

pytestmark = pytest.mark.skipif(divcore.backend() != "compiled",
                                reason="the shortcut belongs to the compiled core")

ROWS = [
    [2.0, 1.0, 0.1, -3.0],
    [40.0, 0.0, 0.0, 0.0],              # tiny loss
    [0.0, -np.inf, 1.0, 2.0],           # masked class
    [-np.inf, -np.inf, -np.inf, 5.0],
    [np.nan, 1.0, 2.0, 3.0],            # NaN row
    [np.inf, 1.0, 2.0, 3.0],            # +inf row
    [-np.inf, -np.inf, -np.inf, -np.inf],
]


def general(x, y, **kw):
    # an explicit temperature (a float object other than the default) takes the general path
    return divcore.cross_entropy(x, y, temperature=float("1"), **kw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("row", ROWS)
@pytest.mark.parametrize("label", [0, 1, 3])
def test_shortcut_equals_general_path(dtype, row, label):
    x = np.array(row, dtype=dtype)
    fast = divcore.cross_entropy(x, label)
    slow = general(x, label)
    assert type(fast) is type(slow) and fast.dtype == x.dtype
    assert np.array_equal(fast, slow, equal_nan=True)
    want = ref.cross_entropy(x, label)
    np.testing.assert_allclose(fast, want, rtol=4e-7 if dtype == np.float32 else 1e-15)
    for reduction in ("none", "sum", "mean"):
        assert np.array_equal(divcore.cross_entropy(x, label, reduction=reduction), slow,
                              equal_nan=True)


def test_shortcut_declines_what_it_does_not_handle():
    x = np.array([0.5, 1.5, -1.0])
    # ignore_index: the row is ignored, the mean of no rows is nan (general path)
    assert np.isnan(divcore.cross_entropy(x, -100))
    assert np.isnan(divcore.cross_entropy(x, 2, ignore_index=2))
    assert divcore.cross_entropy(x, 2, ignore_index=2, reduction="sum") == 0.0
    # errors keep the general path's words
    with pytest.raises(IndexError, match="row 0"):
        divcore.cross_entropy(x, 3)
    with pytest.raises(IndexError, match="label -1"):
        divcore.cross_entropy(x, -1)
    with pytest.raises(ValueError, match="reduction"):
        divcore.cross_entropy(x, 1, reduction="avg")
    # other inputs take the general path and still agree with the reference
    for logits in (x[::-1], x.astype(np.float16), x.astype(">f8"), x.tolist(), x[None, :]):
        label = 1 if np.ndim(logits) == 1 else np.array([1])
        np.testing.assert_allclose(divcore.cross_entropy(logits, label),
                                   ref.cross_entropy(logits, label), rtol=1e-6)
    with pytest.raises(TypeError, match="bool"):  # a bool is not a label
        divcore.cross_entropy(x, True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 16, 17, 33, 63, 64, 65, 100])
def test_a_row_alone_and_among_many_give_the_same_bits(dtype, n):
    # Short rows are scanned one row per vector lane in a batch, and along the row when
    # alone (lanes_t.h); both must take the same steps. Ties at the max, -inf and a
    # NaN row included; longer rows (65, 100) take the row kernel both ways.
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((40, n)) * 3).astype(dtype)
    x[1] = x[1, 0]                          # all tied
    x[2, : n // 2] = -np.inf
    x[3, -1] = np.nan
    x[4] = -np.inf
    x[5, 0] = 60.0                          # tiny losses for the other classes' labels
    labels = rng.integers(0, n, 40)
    batch = divcore.cross_entropy(x, labels, reduction="none")
    alone = np.array([divcore.cross_entropy(x[i], int(labels[i])) for i in range(40)])
    assert np.array_equal(batch, alone, equal_nan=True)
    lse_batch = divcore.logsumexp(x)
    lse_alone = np.array([divcore.logsumexp(x[i]) for i in range(40)])
    assert np.array_equal(lse_batch, lse_alone, equal_nan=True)
    ls_batch = divcore.log_softmax(x)
    ls_alone = np.array([divcore.log_softmax(x[i]) for i in range(40)])
    assert np.array_equal(ls_batch, ls_alone, equal_nan=True)
    want = np.array([ref.cross_entropy(x[i].astype(np.float64), int(labels[i]))
                     for i in range(40)])
    np.testing.assert_allclose(batch, want, rtol=4e-6 if dtype == np.float32 else 4e-15)
