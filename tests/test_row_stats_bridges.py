"""divcore.torch.row_stats and divcore.dask.row_stats: the numpy function's statistics,
as tensors (torch's class dim, forward only) and as lazy dask arrays (blockwise over
chunks of rows). Skipped without torch / dask."""
import numpy as np
import pytest

import divcore


def same(stats, expected):
    for got, want in zip(stats, expected):
        if want is None:
            assert got is None
        else:
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


# ------------------------------------------------------------------------ torch

@pytest.fixture(scope="module")
def dct():
    pytest.importorskip("torch")
    import divcore.torch as dct
    return dct


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_torch_row_stats(dct, rng, dtype):
    import torch

    x = torch.randn(6, 11, dtype=getattr(torch, dtype), requires_grad=True)
    y = torch.randint(0, 11, (6,))
    st = dct.row_stats(x, y, k=4, temperature=1.5)
    assert isinstance(st, divcore.RowStats)
    assert all(isinstance(v, torch.Tensor) for v in st)
    # the statistics with a gradient carry one (tests/test_torch_spec7.py checks it)
    assert st.logsumexp.requires_grad and st.log_prob.requires_grad
    assert not st.argmax.requires_grad and not st.topk_indices.requires_grad
    st = divcore.RowStats(*(None if v is None else v.detach() for v in st))
    want = torch.float64 if dtype == "float64" else torch.float32
    assert st.logsumexp.dtype == want and st.topk_log_probs.dtype == want
    assert st.argmax.dtype == torch.int64 and st.topk_indices.shape == (6, 4)
    ref = divcore.row_stats(x.detach().float().numpy() if dtype == "bfloat16"
                            else x.detach().numpy(), y.numpy(), k=4, temperature=1.5)
    same(st, ref)
    # against torch itself
    ls = torch.log_softmax(x.detach().double() / 1.5, dim=1)
    torch.testing.assert_close(st.log_prob.double(), ls.gather(1, y[:, None])[:, 0],
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(st.entropy.double(), -(ls.exp() * ls).sum(1), rtol=1e-5,
                               atol=1e-6)


def test_torch_class_dim_one_and_no_target(dct):
    import torch

    x = torch.randn(3, 7, 5)  # (N, C, d): class dim 1
    st = dct.row_stats(x, k=2)
    assert st.logsumexp.shape == (3, 5) and st.topk_indices.shape == (3, 5, 2)
    assert st.log_prob is None
    same(st, divcore.row_stats(x.numpy(), axis=1, k=2))
    same(dct.row_stats(x, dim=-1), divcore.row_stats(x.numpy(), axis=-1))
    one = dct.row_stats(torch.tensor([1.0, 3.0, 2.0]), torch.tensor(1))
    assert one.argmax.item() == 1 and one.logsumexp.dim() == 0


def test_torch_errors(dct):
    import torch

    with pytest.raises(TypeError, match="torch.Tensor"):
        dct.row_stats(np.zeros((2, 3)))
    with pytest.raises(IndexError, match="row 1"):
        dct.row_stats(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="k must be"):
        dct.row_stats(torch.zeros(2, 3), k=4)


# ------------------------------------------------------------------------- dask

@pytest.fixture(scope="module")
def dcd():
    pytest.importorskip("dask")
    import divcore.dask as dcd
    return dcd


@pytest.mark.parametrize("axis", [-1, 0])
def test_dask_row_stats_matches_numpy(dcd, rng, axis):
    import dask
    import dask.array as da

    x = rng.standard_normal((23, 9)).astype(np.float32)
    if axis == 0:
        x = np.ascontiguousarray(x.T)
    n = x.shape[1 - (axis % 2)] if axis == 0 else x.shape[0]
    y = rng.integers(0, x.shape[axis], n)
    where = rng.random(x.shape) < 0.9
    chunks = (4, 9) if axis == -1 else (9, 5)
    st = dcd.row_stats(da.from_array(x, chunks=chunks), da.from_array(y, chunks=6), axis=axis,
                       k=3, temperature=0.8, where=where)
    assert st.logsumexp.dtype == np.float32 and st.argmax.dtype == np.int64
    got = dask.compute(*st)
    same(got, divcore.row_stats(x, y, axis=axis, k=3, temperature=0.8, where=where))


def test_dask_without_labels_and_k(dcd, rng):
    import dask.array as da

    x = rng.standard_normal((10, 4))
    st = dcd.row_stats(da.from_array(x, chunks=3))
    assert st.log_prob is None and st.topk_indices is None and st.topk_log_probs is None
    same([st.logsumexp.compute(), st.argmax.compute()], [divcore.logsumexp(x), np.argmax(x, 1)])
    np.testing.assert_allclose(st.entropy.compute(), divcore.entropy(x), rtol=1e-13)


def test_dask_errors(dcd):
    import dask.array as da

    x = da.zeros((8, 3), chunks=(2, 3))
    with pytest.raises(ValueError, match="k must be"):
        dcd.row_stats(x, k=5)
    with pytest.raises(ValueError, match="labels"):
        dcd.row_stats(x, np.zeros(7, dtype=int))
    st = dcd.row_stats(x, da.from_array(np.array([0, 1, 2, 0, 0, 9, 0, 0]), chunks=2))
    with pytest.raises(IndexError, match="row 5"):
        st.logsumexp.compute()
