"""divcore.dask with SPEC §7's extras: the numpy functions' results, chunk by chunk."""
import numpy as np
import pytest

da = pytest.importorskip("dask.array")
import divcore  # noqa: E402
import divcore.dask as dcd  # noqa: E402


@pytest.fixture
def data():
    rng = np.random.default_rng(11)
    x = rng.normal(scale=3, size=(10, 6))
    y = rng.integers(0, 6, size=10)
    y[4] = -100
    s = rng.uniform(0, 2, size=10)
    s[7] = 0
    p = rng.dirichlet(np.ones(6), size=10)
    return x, y, s, p


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_extras_chunk_by_chunk_equal_numpy(data, reduction):
    x, y, s, p = data
    X, Y, S, P = (da.from_array(a, chunks=3) for a in (x, y, s, p))
    w = np.linspace(0.5, 2, 6)
    kw = dict(sample_weight=s, z_loss=0.01, softcap=4.0, reduction=reduction)
    got = dcd.cross_entropy(X, Y, weight=w, **dict(kw, sample_weight=S)).compute()
    np.testing.assert_allclose(got, divcore.cross_entropy(x, y, weight=w, **kw), rtol=1e-12)
    kw.pop("z_loss")
    for fn in ("kl_divergence", "js_divergence", "cross_entropy"):
        got = getattr(dcd, fn)(X, P, **dict(kw, sample_weight=S)).compute()
        np.testing.assert_allclose(got, getattr(divcore, fn)(x, p, **kw), rtol=1e-12,
                                   atol=1e-15)
    np.testing.assert_allclose(dcd.entropy(X, softcap=2.0).compute(),
                               divcore.entropy(x, softcap=2.0), rtol=1e-12)


def test_bad_sample_weight_names_the_global_row(data):
    x, y, s, _ = data
    s = s.copy()
    s[8] = -1.0
    X, Y, S = (da.from_array(a, chunks=3) for a in (x, y, s))
    with pytest.raises(ValueError, match="row 8"):
        dcd.cross_entropy(X, Y, sample_weight=S).compute()


@pytest.mark.parametrize("tail", ["bucket", "renormalize"])
def test_topk_target_chunk_by_chunk(data, tail):
    x, _, s, p = data
    idx = np.argsort(-p, axis=1)[:, :3]
    vals = np.log(np.take_along_axis(p, idx, 1))
    tk = divcore.TopK(idx, vals)
    dtk = divcore.TopK(da.from_array(idx, chunks=(4, 3)), da.from_array(vals, chunks=(4, 3)))
    X, S = da.from_array(x, chunks=3), da.from_array(s, chunks=3)
    for fn in ("kl_divergence", "cross_entropy", "js_divergence"):
        for reduction in ("none", "mean"):
            got = getattr(dcd, fn)(X, dtk, tail=tail, sample_weight=S,
                                   reduction=reduction).compute()
            expect = getattr(divcore, fn)(x, tk, tail=tail, sample_weight=s,
                                          reduction=reduction)
            np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-15)


def test_bce_sample_weight_chunked():
    rng = np.random.default_rng(2)
    x, y, s = rng.normal(size=(8, 3)), rng.uniform(size=(8, 3)), rng.uniform(size=(8, 1))
    got = dcd.binary_cross_entropy(da.from_array(x, chunks=3), da.from_array(y, chunks=3),
                                   sample_weight=s).compute()
    np.testing.assert_allclose(got, divcore.binary_cross_entropy(x, y, sample_weight=s),
                               rtol=1e-12)
