"""A class axis that is not last, read in place: rows that lie next to each other in memory
((C, N) along axis 0, or any transposed view) are gathered a tile of adjacent rows at a
time. Every function gives bit for bit what it gives on the class-last copy, masks, targets,
ignored rows, gradients and the row named by a validation error included."""
import numpy as np
import pytest

import divcore

N, C = 150, 70  # more than one tile of rows, rows longer than the short-row lanes


def transposed(a):
    """a (N, C) as the (C, N) array whose axis 0 is the class axis (a view of a copy)."""
    return np.ascontiguousarray(a.T)


def same(a, b):
    if isinstance(a, tuple):
        return all(same(x, y) for x, y in zip(a, b))
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True) \
        and np.asarray(a).dtype == np.asarray(b).dtype


@pytest.fixture(params=[np.float32, np.float64])
def data(request, rng):
    dtype = request.param
    x = (rng.standard_normal((N, C)) * 3).astype(dtype)
    x[3, 5] = -np.inf
    x[7, :] = -np.inf
    x[9, 2] = np.nan
    p = rng.random((N, C))
    p = (p / p.sum(axis=1, keepdims=True)).astype(dtype)
    t = rng.standard_normal((N, C)).astype(dtype)
    y = rng.integers(0, C, N)
    y[::11] = -100
    where = rng.random((N, C)) < 0.8
    return x, p, t, y, where


CASES = [
    ("logsumexp", {}), ("log_softmax", {}), ("softmax", {"temperature": 2.0}),
    ("entropy", {}), ("cross_entropy", {"labels": True}),
    ("cross_entropy", {"labels": True, "label_smoothing": 0.2}),
    ("decompose", {"labels": True}), ("cross_entropy_and_grad", {"labels": True}),
    ("cross_entropy", {"target": "p"}), ("decompose", {"target": "p"}),
    ("kl_divergence", {"target": "t", "target_type": "logits"}),
    ("kl_divergence", {"target": "p", "reverse": True}),
    ("kl_divergence_and_grad", {"target": "t", "target_type": "logits"}),
    ("js_divergence", {"target": "p"}),
]


@pytest.mark.parametrize("fname,kw", CASES)
@pytest.mark.parametrize("masked", [False, True])
def test_axis_0_equals_class_last(data, fname, kw, masked):
    x, p, t, y, where = data
    kw = dict(kw)
    args_last, args_0 = [x], [transposed(x)]
    if kw.pop("labels", False):
        args_last.append(y)
        args_0.append(y)
    elif "target" in kw:
        target = {"p": p, "t": t}[kw.pop("target")]
        args_last.append(target)
        args_0.append(transposed(target))
    if masked and fname not in ("kl_divergence",) and "reverse" not in kw:
        kw_last, kw_0 = dict(kw, where=where), dict(kw, where=transposed(where))
    else:
        kw_last, kw_0 = kw, kw
    fn = getattr(divcore, fname)
    with np.errstate(all="ignore"):
        last = fn(*args_last, axis=-1, **kw_last)
        first = fn(*args_0, axis=0, **kw_0)
    if fname in ("log_softmax", "softmax"):
        first = first.T
    elif fname.endswith("_and_grad"):
        first = (first[0], first[1].T)
    assert same(last, first)


def test_validation_names_the_same_row(data):
    x, p, *_ = data
    p = p.copy()
    p[97, 3] = -0.5
    for a, b, axis in ((x, p, -1), (transposed(x), transposed(p), 0)):
        with pytest.raises(ValueError, match="row 97 "):
            divcore.cross_entropy(a, b, axis=axis)


def test_a_contiguous_target_with_transposed_logits(data):
    x, p, *_ = data
    xt = transposed(x)
    got = divcore.cross_entropy(xt, p.T, axis=0, reduction="none")  # p.T: a strided view
    assert same(got, divcore.cross_entropy(x, p, reduction="none"))


def torch_layout(a, blocks=3):
    """a (N, C) as torch lays out (B, C, N / B): class axis 1, a copy in that layout."""
    n, c = a.shape
    return np.ascontiguousarray(a.reshape(blocks, n // blocks, c).transpose(0, 2, 1))


def from_torch_layout(a):
    """The inverse of torch_layout for a result of the input's shape."""
    b, c, r = a.shape
    return a.transpose(0, 2, 1).reshape(b * r, c)


@pytest.mark.parametrize("fname,kw", CASES)
@pytest.mark.parametrize("masked", [False, True])
def test_class_axis_1_of_torch_layout_equals_class_last(data, fname, kw, masked):
    """(B, C, d) along axis 1: read in place as B blocks of d adjacent rows."""
    x, p, t, y, where = data
    kw = dict(kw)
    args_last, args_1 = [x], [torch_layout(x)]
    if kw.pop("labels", False):
        args_last.append(y)
        args_1.append(y.reshape(3, N // 3))
    elif "target" in kw:
        target = {"p": p, "t": t}[kw.pop("target")]
        args_last.append(target)
        args_1.append(torch_layout(target))
    if masked and fname not in ("kl_divergence",) and "reverse" not in kw:
        kw_last, kw_1 = dict(kw, where=where), dict(kw, where=torch_layout(where))
    else:
        kw_last, kw_1 = kw, kw
    fn = getattr(divcore, fname)
    with np.errstate(all="ignore"):
        last = fn(*args_last, axis=-1, **kw_last)
        first = fn(*args_1, axis=1, **kw_1)
    if fname in ("log_softmax", "softmax"):
        first = from_torch_layout(first)
    elif fname.endswith("_and_grad"):
        first = (first[0], from_torch_layout(first[1]))
    elif np.ndim(first) == 2:
        first = first.reshape(-1)
    if isinstance(first, tuple) and not fname.endswith("_and_grad"):
        first = tuple(np.reshape(v, -1) if np.ndim(v) == 2 else v for v in first)
    assert same(last, first)


def test_torch_layout_is_not_copied():
    """A reduced loss over (B, C, d) along axis 1 allocates no copy of the logits."""
    import tracemalloc
    x = np.zeros((4, 1000, 512), dtype=np.float32)  # 8 MiB
    y = np.zeros((4, 512), dtype=np.int64)
    divcore.cross_entropy(x[:1], y[:1], axis=1)
    tracemalloc.start()
    try:
        divcore.cross_entropy(x, y, axis=1)
        divcore.kl_divergence(x, x, axis=1, target_type="logits")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak


def test_validation_row_in_torch_layout(data):
    x, p, *_ = data
    p = p.copy()
    p[97, 3] = -0.5
    with pytest.raises(ValueError, match="row 97 "):
        divcore.cross_entropy(torch_layout(x), torch_layout(p), axis=1)
