"""Rows adjacent in memory with a strided class axis ((C, N) along axis 0, (B, C, d) along
axis 1), scanned in place one row per vector lane (src/divcore/adjacent_t.h): the
log-sum-exp, cross-entropy with labels and the losses against a teacher's logits give the
class-last bits, at every instruction set (each level in a subprocess: the choice is made once per process)."""
import numpy as np
import pytest

import divcore
from _helpers import SIMD_LEVELS, run_at_simd_level

pytestmark = pytest.mark.skipif(divcore.backend() != "compiled",
                                reason="needs the compiled core")

SCRIPT = (
    "import json, sys\n"
    "import divcore, divcore._core\n"
    "from test_adjacent_rows import mismatches\n"
    "json.dump({'simd': divcore._core.simd_path(), 'bad': mismatches()}, sys.stdout)\n"
)


def offset_view(a, rows):
    """a (N, C) as a (C, N) view whose first row lies `rows` values past an aligned
    address (the groups of rows then straddle cache lines)."""
    n, c = a.shape
    wide = np.zeros((c, n + rows + 3), dtype=a.dtype)
    wide[:, rows:rows + n] = a.T
    return wide[:, rows:rows + n]


def hard_rows(rng, n_rows, n_cls, dtype):
    """Random rows, and rows that take every branch of the block loop: ties at the max
    (counted, not summed), a max only in a late block (the running max raised), whole
    blocks of -inf, a NaN, +inf, no finite value, a zero max of both signs."""
    x = (rng.standard_normal((n_rows, n_cls)) * 4).astype(dtype)
    x[1] = np.round(x[1])                      # many values equal to the max
    x[2, :] = -30.0
    x[2, n_cls - 3] = 5.0                       # the max in the last block
    x[3, :min(700, n_cls - 5)] = -np.inf       # a first block with no finite value
    x[4, n_cls // 2] = np.nan
    x[5, 17] = np.inf
    x[6, :] = -np.inf
    x[7, :] = -np.inf
    x[7, n_cls - 100] = -0.0
    x[7, n_cls - 99] = 0.0
    x[8, :] = x[8, 0]                           # every value equal
    x[9] *= 100                                 # exps that underflow
    return x


def mismatches():
    """Cases where the strided-axis result differs from the class-last one (bits), every
    adjacent layout scanned in place (not only the class strides of 4 KiB and more)."""
    from divcore import _core
    old = _core._adjacent_min_stride(0)
    try:
        return _mismatches()
    finally:
        _core._adjacent_min_stride(old)


def _mismatches():
    rng = np.random.default_rng(3)
    bad = []
    for dtype in (np.float32, np.float64):
        for n_rows, n_cls in ((37, 1037), (70, 2048), (16, 513), (12, 700)):
            x = hard_rows(rng, n_rows, n_cls, dtype)
            y = rng.integers(0, n_cls, n_rows)
            y[3] = 5                                # a label on a -inf logit: +inf loss
            with np.errstate(all="ignore"):
                want_lse = divcore.logsumexp(x, axis=-1)
                want_ce = divcore.cross_entropy(x, y, reduction="none")
                want_w = divcore.cross_entropy(x, y, ignore_index=int(y[0]),
                                               reduction="none")
                want_lsm, want_sm = divcore.log_softmax(x), divcore.softmax(x)
                for rows in (0, 1, 5, 13):
                    v = offset_view(x, rows)
                    got = {
                        "lse": (divcore.logsumexp(v, axis=0), want_lse),
                        "ce": (divcore.cross_entropy(v, y, axis=0, reduction="none"),
                               want_ce),
                        "ignore": (divcore.cross_entropy(v, y, axis=0,
                                                         ignore_index=int(y[0]),
                                                         reduction="none"), want_w),
                        # written in v's layout, class by class
                        "log_softmax": (divcore.log_softmax(v, axis=0).T, want_lsm),
                        "softmax": (divcore.softmax(v, axis=0).T, want_sm),
                    }
                    for name, (have, want) in got.items():
                        if not np.array_equal(np.asarray(have), np.asarray(want),
                                              equal_nan=True):
                            bad.append(f"{np.dtype(dtype).name} {n_rows}x{n_cls} "
                                       f"offset {rows} {name}")
            # against a teacher's logits: KL, CE, decompose (t hard too; mass on -inf x)
            t = hard_rows(rng, n_rows, n_cls, dtype)[::-1].copy()
            t[0] = x[0]                                 # KL(x, x) = 0 exactly
            t[3, 2] = 9.0
            kw = dict(target_type="logits", reduction="none")
            with np.errstate(all="ignore"):
                want = {"kl": divcore.kl_divergence(x, t, **kw),
                        "cet": divcore.cross_entropy(x, t, **kw),
                        "dec": np.stack(divcore.decompose(x, t, **kw))}
                for rows in (0, 3):
                    v, tv = offset_view(x, rows), offset_view(t, rows)
                    got = {"kl": divcore.kl_divergence(v, tv, axis=0, **kw),
                           "cet": divcore.cross_entropy(v, tv, axis=0, **kw),
                           "dec": np.stack(divcore.decompose(v, tv, axis=0, **kw))}
                    for name, have in got.items():
                        if not np.array_equal(have, want[name], equal_nan=True):
                            bad.append(f"{np.dtype(dtype).name} {n_rows}x{n_cls} "
                                       f"offset {rows} {name}")
        # torch's layout (B, C, d): every block's rows adjacent
        x = (rng.standard_normal((3 * 40, 1100)) * 3).astype(dtype)
        y = rng.integers(0, 1100, 3 * 40)
        x3 = np.ascontiguousarray(x.reshape(3, 40, 1100).transpose(0, 2, 1))
        have = divcore.cross_entropy(x3, y.reshape(3, 40), axis=1, reduction="none")
        if not np.array_equal(have.reshape(-1), divcore.cross_entropy(x, y, reduction="none")):
            bad.append(f"{np.dtype(dtype).name} (B, C, d) ce")
        t = (rng.standard_normal((3 * 40, 1100)) * 3).astype(dtype)
        t3 = np.ascontiguousarray(t.reshape(3, 40, 1100).transpose(0, 2, 1))
        have = divcore.kl_divergence(x3, t3, axis=1, target_type="logits", reduction="none")
        if not np.array_equal(have.reshape(-1), divcore.kl_divergence(
                x, t, target_type="logits", reduction="none")):
            bad.append(f"{np.dtype(dtype).name} (B, C, d) kl")
        if not np.array_equal(divcore.logsumexp(x3, axis=1).reshape(-1),
                              divcore.logsumexp(x, axis=-1)):
            bad.append(f"{np.dtype(dtype).name} (B, C, d) lse")
        for fn in (divcore.log_softmax, divcore.softmax):
            have = np.moveaxis(fn(x3, axis=1), 1, -1).reshape(x.shape)
            if not np.array_equal(have, fn(x)):
                bad.append(f"{np.dtype(dtype).name} (B, C, d) {fn.__name__}")
    return bad


def test_adjacent_rows_give_class_last_bits():
    assert mismatches() == []


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_every_level(level):
    assert run_at_simd_level(level, SCRIPT)["bad"] == []


@pytest.fixture
def in_place():
    """Every adjacent layout scanned in place, whatever its class stride."""
    from divcore import _core
    old = _core._adjacent_min_stride(0)
    yield
    _core._adjacent_min_stride(old)


@pytest.mark.parametrize("fn", ["log_softmax", "softmax"])
def test_log_softmax_comes_back_in_the_logits_layout(rng, fn):
    """Rows adjacent along a strided class axis: the output is laid out as the logits are
    (C-contiguous for a C-contiguous input), written in their order, at the default
    threshold too; a mask or a temperature keeps the gathered tile (class-last memory),
    with the same values."""
    f = getattr(divcore, fn)
    x = (rng.standard_normal((1500, 2048)) * 3).astype(np.float32)     # 8 KiB apart
    out = f(x, axis=0)
    assert out.flags.c_contiguous
    assert np.array_equal(out, f(np.ascontiguousarray(x.T)).T)
    x3 = (rng.standard_normal((2, 1200, 1030)) * 3).astype(np.float32)
    out3 = f(x3, axis=1)
    assert out3.flags.c_contiguous
    assert np.array_equal(out3, np.moveaxis(f(np.moveaxis(x3, 1, -1)), -1, 1))
    w = rng.random(x.shape) < 0.9
    for kw in ({"where": w}, {"temperature": 0.7}):
        with np.errstate(all="ignore"):
            got = f(x, axis=0, **kw)
            want = f(np.ascontiguousarray(x.T), **{k: (v.T if k == "where" else v)
                                                   for k, v in kw.items()}).T
        assert np.array_equal(got, want, equal_nan=True)


def test_reversed_class_axis(rng, in_place):
    """A negative class stride (a reversed view) is read in place too."""
    x = (rng.standard_normal((40, 1500)) * 3).astype(np.float32)
    t = (rng.standard_normal((40, 1500)) * 3).astype(np.float32)
    y = rng.integers(0, 1500, 40)
    v, tv = np.ascontiguousarray(x.T)[::-1], np.ascontiguousarray(t.T)[::-1]
    xr, tr = np.ascontiguousarray(x[:, ::-1]), np.ascontiguousarray(t[:, ::-1])
    assert np.array_equal(divcore.cross_entropy(v, y, axis=0, reduction="none"),
                          divcore.cross_entropy(xr, y, reduction="none"))
    assert np.array_equal(divcore.kl_divergence(v, tv, axis=0, target_type="logits",
                                                reduction="none"),
                          divcore.kl_divergence(xr, tr, target_type="logits",
                                                reduction="none"))
    assert np.array_equal(divcore.log_softmax(v, axis=0).T, divcore.log_softmax(xr))


def test_against_the_reference(rng, in_place):
    """Not only equal to the class-last kernel: right (divcore.reference, float64)."""
    import divcore.reference as ref
    x = (rng.standard_normal((50, 3000)) * 5).astype(np.float64)
    y = rng.integers(0, 3000, 50)
    v = offset_view(x, 3)
    np.testing.assert_allclose(divcore.logsumexp(v, axis=0), ref.logsumexp(x, axis=-1),
                               rtol=1e-14)
    np.testing.assert_allclose(divcore.cross_entropy(v, y, axis=0, reduction="none"),
                               ref.cross_entropy(x, y, reduction="none"), rtol=1e-12)
    np.testing.assert_allclose(divcore.log_softmax(v, axis=0),
                               ref.log_softmax(v, axis=0), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(divcore.softmax(v, axis=0), ref.softmax(v, axis=0),
                               rtol=1e-13, atol=1e-300)
    t = (rng.standard_normal((50, 3000)) * 5).astype(np.float64)
    np.testing.assert_allclose(
        divcore.kl_divergence(v, offset_view(t, 3), axis=0, target_type="logits",
                              reduction="none"),
        ref.kl_divergence(x, t, target_type="logits", reduction="none"), rtol=1e-10)
