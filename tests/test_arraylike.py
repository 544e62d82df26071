"""Any array-like is accepted (SPEC §4): lists, any strides and byte order, read-only
buffers, memmaps, objects with __array__, CPU torch tensors. Each result must equal the
result on a plain C-contiguous native array, and that one is checked against numpy."""
import numpy as np
import pytest


def _np_log_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def _all_results(dc, x, y, p, axis=-1):
    return {
        "logsumexp": dc.logsumexp(x, axis=axis),
        "log_softmax": dc.log_softmax(x, axis=axis),
        "softmax": dc.softmax(x, axis=axis),
        "ce_labels": dc.cross_entropy(x, y, axis=axis, reduction="none"),
        "ce_probs": dc.cross_entropy(x, p, axis=axis, reduction="none"),
        "kl": dc.kl_divergence(x, p, axis=axis, reduction="none"),
        "entropy": dc.entropy(x, axis=axis),
        "entropy_probs": dc.entropy(p, axis=axis, input_type="probs"),
    }


@pytest.fixture
def data(rng):
    x = rng.standard_normal((5, 6)) * 3
    y = rng.integers(0, 6, 5)
    p = np.exp(rng.standard_normal((5, 6)))
    p /= p.sum(-1, keepdims=True)
    return x, y, p


def _check_same(dc, got_inputs, data):
    x, y, p = data
    expected = _all_results(dc, x, y, p)
    # the plain array result against numpy
    np.testing.assert_allclose(expected["log_softmax"], _np_log_softmax(x), rtol=1e-13,
                               atol=1e-14)
    np.testing.assert_allclose(expected["ce_labels"],
                               -_np_log_softmax(x)[np.arange(len(y)), y], rtol=1e-13)
    got = _all_results(dc, *got_inputs)
    for k in expected:
        assert np.asarray(got[k]).dtype == np.asarray(expected[k]).dtype, k
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)


def test_lists(dc, data):
    x, y, p = data
    _check_same(dc, (x.tolist(), y.tolist(), p.tolist()), data)
    # nested Python scalars, a plain int label, 1-D lists
    assert dc.cross_entropy(x[0].tolist(), int(y[0]), reduction="none") == \
        dc.cross_entropy(x[0], y[0], reduction="none")
    assert dc.logsumexp([0.0, 0.0]) == np.log(2.0)


def test_tuple_and_scalar_types(dc, data):
    x, y, p = data
    _check_same(dc, (tuple(map(tuple, x)), tuple(y), tuple(map(tuple, p))), data)


def test_strided_and_fortran(dc, data):
    x, y, p = data
    big = np.full((10, 18), np.nan)
    big[::2, ::3] = x
    bigp = np.full((5, 12), np.nan)
    bigp[:, 1::2] = p
    bigy = np.full(15, 99)
    bigy[::3] = y
    _check_same(dc, (big[::2, ::3], bigy[::3], bigp[:, 1::2]), data)
    _check_same(dc, (np.asfortranarray(x), y, np.asfortranarray(p)), data)
    _check_same(dc, (x[::-1][::-1], y[::-1][::-1], p[:, ::-1][:, ::-1]), data)
    # transposed views with the class axis first
    res = dc.cross_entropy(x.T, y, axis=0, reduction="none")
    np.testing.assert_array_equal(res, dc.cross_entropy(x, y, reduction="none"))
    # a broadcast (stride 0) logits array
    xb = np.broadcast_to(x[0], (4, 6))
    np.testing.assert_array_equal(dc.logsumexp(xb), np.full(4, dc.logsumexp(x[0])))


def test_big_endian(dc, data):
    x, y, p = data
    _check_same(dc, (x.astype(">f8"), y.astype(">i8"), p.astype(">f8")), data)
    x32 = x.astype(np.float32)
    np.testing.assert_array_equal(dc.logsumexp(x32.astype(">f4")), dc.logsumexp(x32))
    np.testing.assert_array_equal(dc.softmax(x32.astype(">f4")), dc.softmax(x32))
    w = np.linspace(0.5, 2, 6)
    np.testing.assert_array_equal(
        dc.cross_entropy(x, y, weight=w.astype(">f8"), reduction="none"),
        dc.cross_entropy(x, y, weight=w, reduction="none"))
    wh = np.array([True, False, True, True, True, False])
    np.testing.assert_array_equal(dc.logsumexp(x, where=wh.astype(">u1").astype(bool)),
                                  dc.logsumexp(x, where=wh))


def test_read_only(dc, data):
    x, y, p = data
    xr, yr, pr = x.copy(), y.copy(), p.copy()
    for a in (xr, yr, pr):
        a.flags.writeable = False
    _check_same(dc, (xr, yr, pr), data)
    # a read-only buffer from bytes
    xb = np.frombuffer(x.tobytes(), dtype=np.float64).reshape(x.shape)
    assert not xb.flags.writeable
    np.testing.assert_array_equal(dc.logsumexp(xb), dc.logsumexp(x))


def test_memmap(dc, data, tmp_path):
    x, y, p = data
    fn = tmp_path / "x.dat"
    mm = np.memmap(fn, dtype=np.float64, mode="w+", shape=x.shape)
    mm[:] = x
    mm.flush()
    ro = np.memmap(fn, dtype=np.float64, mode="r", shape=x.shape)
    _check_same(dc, (ro, y, p), data)
    out = dc.logsumexp(ro)
    assert type(out) is np.ndarray  # not a memmap subclass leaking out
    # float32 memmap with an offset
    fn32 = tmp_path / "x32.dat"
    raw = np.memmap(fn32, dtype=np.float32, mode="w+", shape=(1 + x.size,))
    raw[1:] = x.ravel()
    raw.flush()
    off = np.memmap(fn32, dtype=np.float32, mode="r", offset=4, shape=x.shape)
    np.testing.assert_array_equal(dc.softmax(off), dc.softmax(x.astype(np.float32)))


class ArrayWrapper:
    def __init__(self, a):
        self._a = a

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)


def test_objects_with_array_interface(dc, data):
    x, y, p = data
    _check_same(dc, (ArrayWrapper(x), ArrayWrapper(y), ArrayWrapper(p)), data)
    np.testing.assert_array_equal(
        dc.cross_entropy(x, y, weight=ArrayWrapper(np.ones(6)), reduction="none"),
        dc.cross_entropy(x, y, reduction="none"))
    np.testing.assert_array_equal(
        dc.logsumexp(x, where=ArrayWrapper(np.ones(6, dtype=bool))), dc.logsumexp(x))


def test_numpy_subclass_and_matrix_like(dc, data):
    x, y, p = data
    ma = np.ma.MaskedArray(x)  # a subclass, no mask: values as is
    np.testing.assert_array_equal(np.asarray(dc.logsumexp(ma)), dc.logsumexp(x))


def test_torch_cpu_tensors(dc, data):
    torch = pytest.importorskip("torch")
    x, y, p = data
    _check_same(dc, (torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(p)), data)
    # a non-contiguous tensor view and float32
    xt = torch.from_numpy(x.T.copy()).t()
    assert not xt.is_contiguous()
    np.testing.assert_array_equal(dc.logsumexp(xt), dc.logsumexp(x))
    x32 = torch.from_numpy(x.astype(np.float32))
    out = dc.softmax(x32)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_array_equal(out, dc.softmax(x.astype(np.float32)))
    # a tensor that requires grad (values are read, no autograd)
    xg = torch.from_numpy(x.copy()).requires_grad_(True)
    np.testing.assert_array_equal(dc.logsumexp(xg), dc.logsumexp(x))
    # bfloat16 / float16 tensors compute in float32
    xh = torch.from_numpy(x).to(torch.float16)
    r = dc.logsumexp(xh)
    assert r.dtype == np.float32
    np.testing.assert_allclose(r, dc.logsumexp(xh.float().numpy()), rtol=0)
    xbf = torch.from_numpy(x).to(torch.bfloat16)
    r = dc.logsumexp(xbf)
    assert r.dtype == np.float32
    np.testing.assert_allclose(r, dc.logsumexp(xbf.float().numpy()), rtol=0)


def test_numpy_str_keywords_are_strings():
    """A reduction read from an array of strings (numpy.str_) works like the str itself,
    also where the compiled path needs a str."""
    import divcore
    x, y = np.zeros((2, 3)), np.array([0, 1])
    p = np.full((2, 3), 1 / 3)
    for fname, args in (("cross_entropy_and_grad", (x, y)), ("kl_divergence_and_grad", (x, p)),
                        ("cross_entropy", (x, y)), ("js_divergence", (x, p))):
        for r in ("mean", "sum", "none"):
            got = getattr(divcore, fname)(*args, reduction=np.str_(r))
            want = getattr(divcore, fname)(*args, reduction=r)
            for a, b in zip(got if isinstance(got, tuple) else (got,),
                            want if isinstance(want, tuple) else (want,)):
                assert np.array_equal(a, b)
