"""Short rows (C <= 64) are computed one row per vector lane (src/divcore/lanes_t.h) for
logsumexp, log_softmax, labels and probability targets: the same values as the reference,
special values and validation included, whatever the chunk a row falls in."""
import numpy as np
import pytest

import divcore
import divcore.reference as ref

pytestmark = pytest.mark.skipif(divcore.backend() != "compiled",
                                reason="the lane kernels belong to the compiled core")


def _probs(rng, shape, dtype):
    z = rng.standard_normal(shape) * 2
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    return (p / p.sum(axis=-1, keepdims=True)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 3, 10, 16, 17, 64, 65])
@pytest.mark.parametrize("weighted", [False, True])
def test_soft_target_rows_match_the_reference(dtype, n, weighted):
    rng = np.random.default_rng(n)
    rows = 300                              # more than one chunk of 256 rows
    x = (rng.standard_normal((rows, n)) * 3).astype(dtype)
    p = _probs(rng, (rows, n), dtype)
    x[1, 0] = -np.inf                       # a masked class with target mass: +inf
    p[2] = 0
    p[2, -1] = 1
    x[2, 0] = -np.inf                       # masked, no mass: 0·log 0 = 0
    x[3] = -np.inf                          # no distribution: nan
    x[4, -1] = np.nan                       # nan row
    x[299, 0] = 40.0                        # in the second chunk, a large logit
    weight = rng.uniform(0.5, 2.0, n).astype(dtype) if weighted else None
    got = divcore.cross_entropy(x, p, weight=weight, reduction="none")
    want = np.array([ref.cross_entropy(x[i], p[i], weight=weight, reduction="sum")
                     for i in range(rows)], dtype=np.float64)
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0)
    if n > 1:
        assert got[1] == np.inf and np.isfinite(got[2]) and np.isnan(got[3])
    assert np.isnan(got[4])
    divcore.set_num_threads(2)
    try:
        assert np.array_equal(divcore.cross_entropy(x, p, weight=weight, reduction="none"),
                              got, equal_nan=True)
    finally:
        divcore.set_num_threads(0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_bad_target_row_in_a_later_chunk_is_named(dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((600, 10)).astype(dtype)
    p = _probs(rng, (600, 10), dtype)
    p[517, 3] = -0.25
    with pytest.raises(ValueError, match="row 517"):
        divcore.cross_entropy(x, p)
    p[517, 3] = np.nan
    with pytest.raises(ValueError, match="row 517"):
        divcore.cross_entropy(x, p)
    assert np.isnan(divcore.cross_entropy(x, p, validate=False, reduction="none")[517])


def test_short_rows_through_masks_temperature_and_strides():
    rng = np.random.default_rng(2)
    big = rng.standard_normal((500, 24))
    x = big[::2, ::2]                       # strided rows and classes
    p = _probs(rng, x.shape, np.float64)
    where = rng.random(x.shape) > 0.2
    where[:, 0] = True
    labels = rng.integers(0, x.shape[1], x.shape[0])
    labels[~where[np.arange(x.shape[0]), labels]] = 0
    for fn, args, kw in [
        (divcore.logsumexp, (x,), {"where": where}),
        (divcore.log_softmax, (x,), {"temperature": 1.7}),
        (divcore.cross_entropy, (x, labels), {"where": where, "temperature": 0.5,
                                              "reduction": "none"}),
        (divcore.cross_entropy, (x, p), {"temperature": 2.0, "reduction": "none"}),
    ]:
        got = fn(*args, **kw)
        want = getattr(ref, fn.__name__)(*args, **kw)
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)
