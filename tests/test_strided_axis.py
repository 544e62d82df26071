"""A class axis that is not last, read in place: rows that lie next to each other in memory
((C, N) along axis 0, or any transposed view) are gathered a tile of adjacent rows at a
time. Every function gives bit for bit what it gives on the class-last copy, masks, targets,
ignored rows, gradients and the row named by a validation error included."""
import numpy as np
import pytest

import divcore
from _helpers import SIMD_LEVELS, run_at_simd_level

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


# ------------------------------------------------------------ the gather's own paths
# Rows adjacent in memory are copied into a tile by a transpose (divcore/_gather.h):
# AVX-512, AVX2 or a portable loop, tiles of whole cache lines of rows that start at an
# aligned row (the first tile shorter), blocks of classes and rows with remainders. Every
# path gives the class-last bits.

from divcore import _core  # noqa: E402


@pytest.fixture
def gather_config():
    """Restores the gather's instruction set and tile sizes after a test changes them."""
    level = _core._gather_level()
    tiles = _core._tile_config()
    yield
    _core._gather_level(level)
    _core._tile_config(*tiles)


def offset_view(a, rows):
    """a (N, C) as a (C, N) view whose rows start `rows` values past an aligned address:
    a's transpose inside a wider array, so that the tiles start mid-cache-line."""
    n, c = a.shape
    wide = np.zeros((c, n + rows + 3), dtype=a.dtype)
    wide[:, rows:rows + n] = a.T
    return wide[:, rows:rows + n]


GATHER_CASES = [
    ("log_softmax", {}), ("cross_entropy", {"labels": True}),
    ("cross_entropy_and_grad", {"labels": True}),
    ("kl_divergence", {"target": "t", "target_type": "logits"}),
    ("kl_divergence_and_grad", {"target": "t", "target_type": "logits"}),
    ("js_divergence", {"target": "p"}),
]


@pytest.mark.parametrize("level", [0, 1, 2])
@pytest.mark.parametrize("tile_bytes", [0, 1])  # 0: the default tiles; 1: one line's worth
@pytest.mark.parametrize("rows_offset", [0, 1, 5, 13])
@pytest.mark.parametrize("fname,kw", GATHER_CASES)
def test_every_gather_path_equals_class_last(data, gather_config, level, tile_bytes,
                                             rows_offset, fname, kw):
    x, p, t, y, where = data
    _core._gather_level(level)
    if tile_bytes:
        _core._tile_config(tile_bytes)
    kw = dict(kw)
    args_last, args_0 = [x], [offset_view(x, rows_offset)]
    if kw.pop("labels", False):
        args_last.append(y)
        args_0.append(y)
    elif "target" in kw:
        target = {"p": p, "t": t}[kw.pop("target")]
        args_last.append(target)
        args_0.append(offset_view(target, rows_offset))
    fn = getattr(divcore, fname)
    with np.errstate(all="ignore"):
        last = fn(*args_last, axis=-1, **kw)
        first = fn(*args_0, axis=0, **kw)
    if fname == "log_softmax":
        first = first.T
    elif fname.endswith("_and_grad"):
        first = (first[0], first[1].T)
    assert same(last, first)


@pytest.mark.parametrize("level", [0, 1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_rows,n_classes", [(1, 1), (3, 17), (40, 16), (61, 33), (200, 9)])
def test_gather_shapes(rng, gather_config, level, dtype, n_rows, n_classes):
    """Row and class counts around the transposes' 16 x 16 / 8 x 8 / 4 x 4 blocks, with
    one line's worth of rows per tile."""
    _core._gather_level(level)
    _core._tile_config(1)
    x = (rng.standard_normal((n_rows, n_classes)) * 4).astype(dtype)
    y = rng.integers(0, n_classes, n_rows)
    for view in (transposed(x), offset_view(x, 3)):
        assert same(divcore.log_softmax(x), divcore.log_softmax(view, axis=0).T)
        assert same(divcore.cross_entropy(x, y, reduction="none"),
                    divcore.cross_entropy(view, y, axis=0, reduction="none"))


@pytest.mark.parametrize("blocks,d", [(3, 50), (5, 7), (2, 33)])
@pytest.mark.parametrize("tile_bytes", [0, 1])
def test_blocks_of_unaligned_rows(rng, gather_config, blocks, d, tile_bytes):
    """(B, C, d) with d not a multiple of a cache line: every block's tiles start at its own
    aligned row; all blocks' tiles run as one loop."""
    if tile_bytes:
        _core._tile_config(tile_bytes)
    c = 70
    x = rng.standard_normal((blocks * d, c)).astype(np.float32)
    t = rng.standard_normal((blocks * d, c)).astype(np.float32)
    y = rng.integers(0, c, blocks * d)
    x3, t3 = torch_layout(x, blocks), torch_layout(t, blocks)
    y3 = y.reshape(blocks, d)
    assert same(divcore.cross_entropy(x, y, reduction="none"),
                divcore.cross_entropy(x3, y3, axis=1, reduction="none").reshape(-1))
    assert same(divcore.log_softmax(x), from_torch_layout(divcore.log_softmax(x3, axis=1)))
    assert same(divcore.kl_divergence(x, t, target_type="logits", reduction="none"),
                divcore.kl_divergence(x3, t3, axis=1, target_type="logits",
                                      reduction="none").reshape(-1))


def test_long_rows_one_line_per_tile(rng, gather_config):
    """Rows too long for _tile_bytes: tiles of one cache line's worth of rows (16 float)."""
    _core._tile_config(1 << 12)
    x = rng.standard_normal((100, 300)).astype(np.float32)
    y = rng.integers(0, 300, 100)
    assert same(divcore.cross_entropy(x, y, reduction="none"),
                divcore.cross_entropy(offset_view(x, 7), y, axis=0, reduction="none"))


HALVES = [np.float16]
try:
    import ml_dtypes
    HALVES.append(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - ml_dtypes is optional
    pass


@pytest.mark.parametrize("dtype", HALVES)
def test_half_storage_with_a_strided_class_axis(rng, dtype):
    """Half rows adjacent in memory (axis 0 of (C, N), axis 1 of (B, C, d)) are widened
    class by class: the bits of the class-last half array."""
    x = (rng.standard_normal((N, C)) * 3).astype(dtype)
    y = rng.integers(0, C, N)
    assert same(divcore.cross_entropy(x, y, reduction="none"),
                divcore.cross_entropy(transposed(x), y, axis=0, reduction="none"))
    assert same(divcore.log_softmax(x), divcore.log_softmax(transposed(x), axis=0).T)
    assert same(divcore.cross_entropy(x, y, reduction="none"),
                divcore.cross_entropy(torch_layout(x), y.reshape(3, N // 3), axis=1,
                                      reduction="none").reshape(-1))


STRIDED_LEVEL_SCRIPT = """
import json, sys
import numpy as np
import divcore, divcore._core
rng = np.random.default_rng(5)
ok = []
for dtype in (np.float32, np.float64):
    for shape in ((3, 10, 37), (2, 5, 64), (4, 33, 20)):
        x = (rng.standard_normal(shape) * 3).astype(dtype)
        x[0, 1, 2] = -np.inf
        t = rng.standard_normal(shape).astype(dtype)
        y = rng.integers(0, shape[1], (shape[0], shape[2]))
        w = rng.random(shape) < 0.9
        xl, tl, wl = (np.ascontiguousarray(np.moveaxis(a, 1, -1)) for a in (x, t, w))
        for name, a, b, kw in [
                ("cross_entropy", (x, y), (xl, y), {"reduction": "none", "temperature": 1.7}),
                ("logsumexp", (x,), (xl,), {}),
                ("log_softmax", (x,), (xl,), {"temperature": 0.6}),
                ("entropy", (x,), (xl,), {}),
                ("kl_divergence", (x, t), (xl, tl), {"target_type": "logits",
                                                     "reduction": "none"}),
                ("cross_entropy_and_grad", (x, y), (xl, y), {})]:
            fn = getattr(divcore, name)
            for mask in (False, True):
                extra = dict(kw)
                with np.errstate(all="ignore"):
                    got = fn(*a, axis=1, where=w if mask else None, **extra)
                    want = fn(*b, axis=-1, where=wl if mask else None, **extra)
                if name == "log_softmax":
                    got = np.moveaxis(got, 1, -1)
                if name == "cross_entropy_and_grad":
                    got = (got[0], np.moveaxis(got[1], 1, -1))
                pairs = zip(got, want) if isinstance(got, tuple) else [(got, want)]
                ok.append(all(np.array_equal(np.asarray(g), np.asarray(h), equal_nan=True)
                              for g, h in pairs))
json.dump({"simd": divcore._core.simd_path(), "ok": ok}, sys.stdout)
"""


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_short_rows_in_place_bits_at_every_simd_level(level):
    """Short rows with the class axis 1 are read by the lanes straight from memory (a column
    of adjacent rows is one vector): class-last bits at each instruction set."""
    got = run_at_simd_level(level, STRIDED_LEVEL_SCRIPT)
    assert got["ok"] and all(got["ok"]), got
