"""divcore.dask on a dask.distributed LocalCluster: every result is compared with the numpy
API on the whole (computed) array, and the weighted mean with ignore_index with an
independent numpy formula, so that a per-chunk mean of means would fail."""
import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import divcore  # noqa: E402
import divcore.dask as dcd  # noqa: E402


@pytest.fixture(scope="module")
def client():
    """Two single-threaded workers in this process: chunks really are scored apart."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as c:
            yield c


def chunked(a, chunks):
    return da.from_array(np.asarray(a), chunks=chunks)


def check(lazy, expected, rtol=1e-12):
    assert isinstance(lazy, da.Array)
    got = lazy.compute()
    expected = np.asarray(expected)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=0, equal_nan=True)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_cross_entropy_labels_weight_ignore(client, rng, reduction):
    x = rng.standard_normal((40, 7)) * 3
    y = rng.integers(0, 7, 40)
    y[:10] = -1  # the first chunk entirely ignored, others partly
    y[15::4] = -1
    w = rng.uniform(0.1, 3.0, 7)
    kw = dict(weight=w, ignore_index=-1, label_smoothing=0.1, temperature=1.5,
              reduction=reduction)
    lazy = dcd.cross_entropy(chunked(x, (10, 3)), chunked(y, 7), **kw)
    check(lazy, divcore.cross_entropy(x, y, **kw))
    if reduction == "mean":  # Σ w_y l / Σ w_y over kept rows, computed independently
        per_row = divcore.cross_entropy(x, y, **{**kw, "reduction": "none"})
        kept = y != -1
        expected = per_row[kept].sum() / w[y[kept]].sum()
        np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-12)


def test_fully_ignored_batch_is_nan(client):
    x = chunked(np.zeros((6, 3)), 2)
    y = chunked(np.full(6, -100), 2)
    assert np.isnan(dcd.cross_entropy(x, y).compute())
    assert dcd.cross_entropy(x, y, reduction="sum").compute() == 0.0


@pytest.mark.parametrize("kind", ["probs", "log_probs", "logits"])
def test_soft_targets_3d_class_axis_chunked(client, rng, kind):
    x = rng.standard_normal((6, 5, 4)) * 2  # class axis 1, chunked too: rechunked to one
    t = rng.standard_normal((6, 5, 4)) * 2
    if kind != "logits":
        t = divcore.log_softmax(t, axis=1)
        t = np.exp(t) if kind == "probs" else t
    where = rng.random((1, 5, 1)) < 0.8
    where[0, 0, 0] = True
    if kind != "logits":
        where = None  # a probability target keeps its mass on every class
    for fn in ("cross_entropy", "kl_divergence", "js_divergence"):
        for reduction in ("none", "mean"):
            kw = dict(axis=1, target_type=kind, where=where, reduction=reduction,
                      temperature=0.9)
            lazy = getattr(dcd, fn)(chunked(x, (2, 2, 3)), chunked(t, (3, 5, 2)), **kw)
            check(lazy, getattr(divcore, fn)(x, t, **kw))


def test_kl_reverse_and_js_with_labels(client, rng):
    x = rng.standard_normal((9, 4))
    y = rng.integers(0, 4, 9)
    for fn, kw in ((dcd.kl_divergence, {"reverse": True}), (dcd.js_divergence,
                                                             {"beta": 0.3})):
        for reduction in ("none", "sum", "mean"):
            lazy = fn(chunked(x, 4), chunked(y, 4), reduction=reduction, base=2, **kw)
            check(lazy, getattr(divcore, fn.__name__)(x, y, reduction=reduction, base=2,
                                                      **kw))


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_entropy(client, rng, reduction):
    x = rng.standard_normal((11, 6)).astype(np.float32)
    lazy = dcd.entropy(chunked(x, (4, 6)), reduction=reduction)
    check(lazy, divcore.entropy(x, reduction=reduction), rtol=1e-6)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_binary_cross_entropy(client, rng, reduction):
    x = rng.standard_normal((10, 6)) * 4
    y = rng.random((10, 6))
    w = rng.uniform(0.5, 2, (10, 1))
    pw = rng.uniform(0.5, 2, 6)
    kw = dict(weight=w, pos_weight=pw, reduction=reduction)
    lazy = dcd.binary_cross_entropy(chunked(x, (3, 4)), chunked(y, (5, 6)), **kw)
    check(lazy, divcore.binary_cross_entropy(x, y, **kw))


def test_float32_stays_float32(client, rng):
    x = rng.standard_normal((20, 5)).astype(np.float32)
    y = rng.integers(0, 5, 20)
    for reduction in ("none", "sum", "mean"):
        check(dcd.cross_entropy(chunked(x, 6), chunked(y, 6), reduction=reduction),
              divcore.cross_entropy(x, y, reduction=reduction), rtol=1e-6)


def test_none_is_lazy_and_chunked_like_rows(client, rng):
    x = chunked(rng.standard_normal((10, 4)), (3, 2))
    out = dcd.cross_entropy(x, chunked(np.zeros(10, np.int64), 5), reduction="none")
    assert isinstance(out, da.Array) and out.chunks == ((3, 3, 3, 1),)


def test_one_row_and_unknown_chunk_sizes(client, rng):
    x = rng.standard_normal(5)  # 1-d: one row, a 0-d result
    p = divcore.softmax(rng.standard_normal(5))
    check(dcd.kl_divergence(chunked(x, 5), chunked(p, 2)), divcore.kl_divergence(x, p))
    rows = rng.standard_normal((12, 4))
    lazy = chunked(rows, (5, 4))
    kept = lazy[lazy[:, 0] > 0]  # chunk sizes unknown until computed
    expected = divcore.entropy(rows[rows[:, 0] > 0], reduction="mean")
    check(dcd.entropy(kept, reduction="mean"), expected)


def test_numpy_operands_are_accepted(client, rng):
    x = rng.standard_normal((8, 3))
    y = rng.integers(0, 3, 8)
    check(dcd.cross_entropy(chunked(x, 3), y), divcore.cross_entropy(x, y))


def test_errors(client, rng):
    x = chunked(rng.standard_normal((8, 3)), 4)
    with pytest.raises(ValueError, match="reduction"):
        dcd.cross_entropy(x, chunked(np.zeros(8, np.int64), 4), reduction="avg")
    with pytest.raises(ValueError, match="do not match"):
        dcd.cross_entropy(x, chunked(np.zeros(7, np.int64), 4))
    with pytest.raises(ValueError, match="temperature"):
        dcd.kl_divergence(x, x, target_type="logits", temperature=0)
    bad = np.zeros(8, np.int64)
    bad[6] = 3
    lazy = dcd.cross_entropy(x, chunked(bad, 4))  # data errors surface at compute time
    with pytest.raises(IndexError, match="label 3 at row 6 "):  # counted over all rows
        lazy.compute()
    p = np.full((8, 3), 0.5)
    with pytest.raises(ValueError, match="not a probability distribution"):
        dcd.cross_entropy(x, chunked(p, 4)).compute()


def test_process_workers_smoke():
    """Workers in other processes import divcore themselves and score their chunks."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((64, 10)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster):
            got = dcd.cross_entropy(chunked(x, 16), chunked(y, 16)).compute()
    np.testing.assert_allclose(got, divcore.cross_entropy(x, y), rtol=1e-6)


# ------------------------------------------------------------- issue 12, item 10

def test_unknown_chunk_sizes_say_to_compute_them(client, rng):
    rows = rng.standard_normal((12, 4))
    labels = rng.integers(0, 4, 12)
    x, y = chunked(rows, (5, 4)), chunked(labels, 5)
    keep = x[:, 0] > 0
    kx, ky = x[keep], y[keep]  # boolean indexing: chunk sizes unknown (nan)
    for call in (lambda: dcd.cross_entropy(kx, ky), lambda: dcd.cross_entropy(x, ky),
                 lambda: dcd.kl_divergence(kx, divcore.softmax(rows)),
                 lambda: dcd.entropy(kx, where=kx > 0),
                 lambda: dcd.binary_cross_entropy(kx, kx)):
        with pytest.raises(ValueError, match=r"compute_chunk_sizes\(\)") as info:
            call()
        assert "(expected (nan" not in str(info.value)
    # and the advice works
    kx.compute_chunk_sizes()
    ky.compute_chunk_sizes()
    want = divcore.cross_entropy(rows[rows[:, 0] > 0], labels[rows[:, 0] > 0])
    check(dcd.cross_entropy(kx, ky), want)


@pytest.mark.parametrize("bad_row", [0, 4, 5, 11])
def test_bad_label_names_the_global_row(client, rng, bad_row):
    x = rng.standard_normal((12, 3))
    y = rng.integers(0, 3, 12)
    y[bad_row] = 7
    with pytest.raises(IndexError) as want:
        divcore.cross_entropy(x, y)
    with pytest.raises(IndexError) as got:
        dcd.cross_entropy(chunked(x, 5), chunked(y, 5), reduction="none").compute()
    assert str(got.value) == str(want.value)  # the numpy API's words, row included
    assert f"at row {bad_row} " in str(got.value)


def test_bad_row_counted_over_all_leading_axes(client, rng):
    # rows chunked along two leading axes and the class axis in the middle
    x = rng.standard_normal((4, 3, 5))
    p = divcore.softmax(rng.standard_normal((4, 3, 5)), axis=1)
    p[3, :, 2] = [0.5, 0.5, 0.5]  # row (3, 2) of the (4, 5) rows sums to 1.5
    with pytest.raises(ValueError) as want:
        divcore.kl_divergence(x, p, axis=1)
    with pytest.raises(ValueError) as got:
        dcd.kl_divergence(chunked(x, (3, 3, 2)), chunked(p, (3, 3, 2)), axis=1).compute()
    assert str(got.value) == str(want.value)
    assert "row 17 " in str(got.value)  # 3 * 5 + 2


def test_bad_label_with_unknown_offsets_is_counted_in_its_chunk(client, rng):
    # only the logits themselves (entropy of probabilities) after boolean indexing: the
    # chunk offsets are unknown, the chunk's own row is named
    p = divcore.softmax(rng.standard_normal((10, 3)))
    p[8] = [0.5, 0.5, 0.5]
    lazy = chunked(p, (5, 3))
    kept = lazy[da.from_array(np.arange(10) != 1, chunks=5)]  # drops row 1: nan chunks
    with pytest.raises(ValueError, match="row 3 "):  # row 8 is the 4th of rows 5..9
        dcd.entropy(kept, input_type="probs").compute()
