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
