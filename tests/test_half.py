"""Half-precision storage (float16, and bfloat16 where ml_dtypes provides numpy's dtype for
it) read as stored: each row widened exactly to float32 in a one-row buffer, never a float32
copy of the array. The results are those of the float32 computation on the widened values,
bit for bit, for every function, layout and target kind."""
import tracemalloc

import numpy as np
import pytest

import divcore
import divcore.reference as ref
from _helpers import SIMD_LEVELS, run_at_simd_level

try:
    import ml_dtypes
    HALVES = [np.float16, ml_dtypes.bfloat16]
except ImportError:  # pragma: no cover - ml_dtypes is optional
    HALVES = [np.float16]

pytestmark = pytest.mark.skipif(divcore.backend() != "compiled",
                                reason="half storage read in place is the compiled core's")

EDGES = [np.inf, -np.inf, np.nan, 0.0, -0.0, 6.0e-8, 65504.0, -65504.0, 1e-3]


def halves_of(rng, shape, dtype, edges=True):
    x = rng.standard_normal(shape) * 4
    if edges and x.size:
        flat = x.reshape(-1)
        for k, v in enumerate(EDGES):
            flat[(7 * k + 3) % flat.size] = v
    return x.astype(dtype)


def widened(a):
    return np.asarray(a).astype(np.float32) if np.asarray(a).dtype.itemsize == 2 else a


def same(a, b):
    if isinstance(a, tuple):
        return all(same(x, y) for x, y in zip(a, b))
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype == np.float32 and np.array_equal(a, b, equal_nan=True)


CALLS = [
    ("logsumexp", {}), ("log_softmax", {}), ("softmax", {"temperature": 2.0}),
    ("entropy", {}), ("cross_entropy", {"labels": True}),
    ("cross_entropy", {"labels": True, "label_smoothing": 0.1, "temperature": 0.5}),
    ("decompose", {"labels": True}), ("cross_entropy_and_grad", {"labels": True}),
    ("kl_divergence", {"target_type": "logits"}),
    ("kl_divergence", {"target_type": "logits", "reverse": True}),
    ("kl_divergence_and_grad", {"target_type": "logits"}),
    ("js_divergence", {"target_type": "logits"}),
    ("cross_entropy", {"target_type": "probs"}),
]


@pytest.mark.parametrize("dtype", HALVES)
@pytest.mark.parametrize("fname,kw", CALLS)
@pytest.mark.parametrize("layout", ["c", "strided", "class axis 0"])
def test_half_equals_float32_of_the_widened_values(rng, dtype, fname, kw, layout):
    kw = dict(kw)
    x = halves_of(rng, (9, 37), dtype)
    t = halves_of(rng, (9, 37), dtype, edges=False)
    axis = -1
    if layout == "strided":
        x = np.repeat(x, 2, axis=1)[:, ::2]
        t = np.repeat(t, 2, axis=1)[:, ::2]
    elif layout == "class axis 0":
        x, t, axis = x.T, t.T, 0
    fn = getattr(divcore, fname)
    args = [x]
    if kw.pop("labels", False):
        args.append(rng.integers(0, 37, 9))
    elif "target_type" in kw:
        if kw["target_type"] == "probs":
            p = np.exp(widened(t).astype(np.float64))
            t = (p / p.sum(axis=axis, keepdims=True)).astype(dtype)
            kw["sum_tol"] = 0.05
        args.append(t)
    with np.errstate(all="ignore"):
        got = fn(*args, axis=axis, **kw)
        want = fn(*[widened(a) for a in args], axis=axis, **kw)
    assert same(got, want), (got, want)
    # the reference widens too, and agrees within its usual float32 tolerance
    with np.errstate(all="ignore"):
        oracle = getattr(ref, fname)(*args, axis=axis, **kw)
    first = (lambda v: v[0] if isinstance(v, tuple) else v)
    np.testing.assert_allclose(np.asarray(first(got), dtype=np.float64),
                               np.asarray(first(oracle), dtype=np.float64),
                               rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("dtype", HALVES)
def test_mixed_pairs(rng, dtype):
    """A half student against a float32 teacher, and a float32 student against a half one."""
    s = halves_of(rng, (5, 11), dtype, edges=False)
    t = rng.standard_normal((5, 11)).astype(np.float32)
    for a, b in ((s, t), (t.astype(dtype), widened(s))):
        got = divcore.kl_divergence(a, b, target_type="logits", reduction="none")
        want = divcore.kl_divergence(widened(a), widened(b), target_type="logits",
                                     reduction="none")
        assert same(got, want)


@pytest.mark.parametrize("dtype", HALVES)
def test_no_float32_copy_of_the_array(dtype):
    x = np.zeros((512, 8192), dtype=dtype)  # 8 MiB of half values; a copy would be 16 MiB
    y = np.zeros(512, dtype=np.int64)
    divcore.cross_entropy(x[:1], y[:1])  # warm up
    tracemalloc.start()
    try:
        divcore.cross_entropy(x, y)
        divcore.kl_divergence(x, x, target_type="logits")
        divcore.logsumexp(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak


def test_widening_is_exact_for_every_float16():
    bits = np.arange(1 << 16, dtype=np.uint16)
    h = bits.view(np.float16).reshape(1, -1)
    finite = np.isfinite(h.astype(np.float32))
    # softmax over a row holding one value and -inf elsewhere reads that value back: test the
    # widened values through logsumexp of single-value rows instead (lse of one value is it)
    rows = h.reshape(-1, 1)
    got = divcore.logsumexp(rows)
    want = rows.astype(np.float32)[:, 0]
    assert np.array_equal(got[finite[0]], want[finite[0]])
    assert np.isnan(got[np.isnan(want)]).all()


def test_torch_bfloat16_without_a_copy():
    torch = pytest.importorskip("torch")
    pytest.importorskip("ml_dtypes")
    x = torch.randn(64, 100).to(torch.bfloat16)
    y = torch.randint(0, 100, (64,))
    got = divcore.cross_entropy(x, y.numpy())
    want = divcore.cross_entropy(x.float().numpy(), y.numpy())
    assert got.dtype == np.float32 and got == want


# The largest finite bfloat16 (which is +inf in float16) and the smallest subnormal of each.
BF16_MAX = 3.3895313892515355e38


@pytest.mark.parametrize("dtype", HALVES)
def test_extremes_and_masks(rng, dtype):
    """The largest half values, the smallest subnormals, and -inf from a `where=` mask, in
    long rows (several blocks) and short ones (lanes): the bits of the widened values."""
    for c in (13, 1500):
        x = (rng.standard_normal((6, c)) * 3).astype(dtype)
        x[0, 1] = np.finfo(np.float16).max if dtype == np.float16 else BF16_MAX
        x[1, 2] = -(np.finfo(np.float16).max if dtype == np.float16 else BF16_MAX)
        x[2, :] = np.asarray(6.0e-8 if dtype == np.float16 else 9.2e-41).astype(dtype)
        x[3, 0] = np.asarray(6.0e-8 if dtype == np.float16 else 9.2e-41).astype(dtype)
        where = rng.random((6, c)) < 0.7
        where[4] = False  # a fully masked row: no distribution
        y = rng.integers(0, c, 6)
        t = (rng.standard_normal((6, c))).astype(dtype)
        for fname, args, kw in [
                ("logsumexp", (x,), {"where": where}),
                ("log_softmax", (x,), {"where": where}),
                ("cross_entropy", (x, y), {"reduction": "none"}),
                ("entropy", (x,), {"where": where}),
                ("kl_divergence", (x, t), {"target_type": "logits", "where": where,
                                           "reduction": "none"}),
                ("cross_entropy_and_grad", (x, y), {})]:
            fn = getattr(divcore, fname)
            with np.errstate(all="ignore"):
                got = fn(*args, **kw)
                want = fn(*[widened(a) if a.dtype == dtype else a for a in args], **kw)
            assert same(got, want), (fname, c)


LEVEL_SCRIPT = """
import json, sys
import numpy as np
import divcore, divcore._core
from test_half import HALVES, halves_of, same, widened
rng = np.random.default_rng(3)
ok = []
for dtype in HALVES:
    for c in (10, 700, 5000):
        x = halves_of(rng, (9, c), dtype)
        t = halves_of(rng, (9, c), dtype, edges=False)
        y = rng.integers(0, c, 9)
        for name, args, kw in [("cross_entropy", (x, y), {"reduction": "none"}),
                               ("log_softmax", (x,), {}), ("entropy", (x,), {}),
                               ("kl_divergence", (x, t), {"target_type": "logits",
                                                          "reduction": "none"}),
                               ("cross_entropy_and_grad", (x, y), {})]:
            fn = getattr(divcore, name)
            with np.errstate(all="ignore"):
                ok.append(bool(same(fn(*args, **kw),
                                    fn(*[widened(a) if a.dtype == dtype else a
                                         for a in args], **kw))))
json.dump({"simd": divcore._core.simd_path(), "ok": ok}, sys.stdout)
"""


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_half_bits_at_every_simd_level(level):
    got = run_at_simd_level(level, LEVEL_SCRIPT)
    assert got["ok"] and all(got["ok"]), got


@pytest.mark.parametrize("dtype", HALVES)
def test_long_half_rows_through_the_row_kernels(rng, dtype):
    """Class-last half rows of logsumexp and of cross-entropy with labels go to the C API's
    half kernels one row at a time (in threads for many rows): the widened float32 bits,
    with class weights, ignore_index, NaN and -inf rows, the max in a late block."""
    x = halves_of(rng, (300, 1500), dtype)
    x[5, 1400] = 30.0
    x[7, :] = -np.inf
    x[9, 3] = np.nan
    y = rng.integers(0, 1500, 300)
    y[11] = -100
    w = rng.uniform(0.5, 2.0, 1500).astype(np.float32)
    xw = widened(x)
    with np.errstate(all="ignore"):
        for kw in ({"reduction": "none"}, {"reduction": "mean", "weight": w},
                   {"reduction": "sum"}):
            assert same(divcore.cross_entropy(x, y, **kw), divcore.cross_entropy(xw, y, **kw))
        assert same(divcore.logsumexp(x), divcore.logsumexp(xw))
        assert same(divcore.decompose(x, y), divcore.decompose(xw, y))
