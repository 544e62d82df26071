"""dc_row_stats_f32 / _f64 (SPEC §7) from C and C++: a consumer of divcore/kernels.h built
with strict warnings (the helpers of test_c_api.py) gives the Python API's row_stats, to
the bit for contiguous rows at temperature 1 (the same kernel at the same level)."""
import ctypes

import numpy as np
import pytest

import divcore
import test_c_api as capi

CONSUMER = r"""
#include "divcore/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif
#define ROWS(T, SFX)                                                                       \
    void rows_##SFX(const T *x, ptrdiff_t n_rows, ptrdiff_t n, const int64_t *labels,    \
                    ptrdiff_t k, double *lse, double *lp, double *h, int64_t *am,        \
                    int64_t *ti, double *tl)                                             \
    {                                                                                    \
        for (ptrdiff_t i = 0; i < n_rows; i++) {                                          \
            dc_row_stats st;                                                             \
            dc_row_stats_##SFX(x + i * n, n, labels != NULL ? labels[i] : -1,             \
                               k, ti + i * k, tl + i * k, &st);                          \
            lse[i] = st.logsumexp;                                                       \
            lp[i] = st.log_prob;                                                         \
            h[i] = st.entropy;                                                           \
            am[i] = st.argmax;                                                           \
        }                                                                                \
    }
ROWS(float, f32)
ROWS(double, f64)
#ifdef __cplusplus
}
#endif
"""


@pytest.fixture(scope="module", params=capi.C_KINDS)
def consumer(request, tmp_path_factory):
    compiler = request.param
    _, lang, std = next(c for c in capi.COMPILERS if c[0] == compiler)
    folder = str(tmp_path_factory.mktemp(f"row_stats_{compiler}"))
    lib = ctypes.CDLL(capi._compile(compiler, lang, std, CONSUMER, folder, "row_stats"))
    for sfx in ("f32", "f64"):
        getattr(lib, f"rows_{sfx}").restype = None
    return lib


def c_row_stats(lib, x, labels, k):
    x = np.ascontiguousarray(x)
    n_rows, n = x.shape
    lse, lp, h = (np.empty(n_rows) for _ in range(3))
    am = np.empty(n_rows, dtype=np.int64)
    ti = np.empty((n_rows, k), dtype=np.int64)
    tl = np.empty((n_rows, k))
    y = None if labels is None else np.ascontiguousarray(labels, dtype=np.int64)
    p = ctypes.c_void_p
    fn = getattr(lib, "rows_f32" if x.dtype == np.float32 else "rows_f64")
    fn(x.ctypes.data_as(p), ctypes.c_ssize_t(n_rows), ctypes.c_ssize_t(n),
       None if y is None else y.ctypes.data_as(p), ctypes.c_ssize_t(k),
       lse.ctypes.data_as(p), lp.ctypes.data_as(p), h.ctypes.data_as(p),
       am.ctypes.data_as(p), ti.ctypes.data_as(p), tl.ctypes.data_as(p))
    return lse, lp, h, am, ti, tl


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [1, 7, 64, 513, 5000])
def test_c_kernel_gives_the_python_api_bits(consumer, rng, dtype, c):
    if divcore.backend() != "compiled":
        pytest.skip("the Python API runs the reference")
    x = (rng.standard_normal((6, c)) * 3).astype(dtype)
    x[1, ::3] = -np.inf
    x[1, 0] = 1.0
    labels = rng.integers(0, c, 6)
    k = min(c, 5)
    lse, lp, h, am, ti, tl = c_row_stats(consumer, x, labels, k)
    st = divcore.row_stats(x, labels, k=k)
    np.testing.assert_array_equal(lse.astype(dtype), st.logsumexp)
    np.testing.assert_array_equal(lp.astype(dtype), st.log_prob)
    np.testing.assert_array_equal(h.astype(dtype), st.entropy)
    np.testing.assert_array_equal(am, st.argmax)
    np.testing.assert_array_equal(ti, st.topk_indices)
    np.testing.assert_array_equal(tl.astype(dtype), st.topk_log_probs)
    # and the numbers themselves, against float64 numpy
    r = x.astype(np.float64)
    ref_lse = np.log(np.exp(r - r.max(-1, keepdims=True)).sum(-1)) + r.max(-1)
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-6 if dtype == np.float32 else 1e-13)


def test_c_kernel_edge_rows(consumer):
    x = np.array([[0.0, np.nan, 1.0], [-np.inf] * 3, [2.0, -np.inf, 2.0]])
    lse, lp, h, am, ti, tl = c_row_stats(consumer, x, None, 3)
    assert np.isnan(lse[0]) and lse[1] == -np.inf and lse[2] == pytest.approx(2 + np.log(2))
    assert np.isnan(lp).all()  # no labels
    assert np.isnan(h[:2]).all() and h[2] == pytest.approx(np.log(2))
    assert am.tolist() == [1, 0, 0]
    assert ti.tolist() == [[0, 1, 2], [0, 1, 2], [0, 2, 1]]
    assert np.isnan(tl[:2]).all() and tl[2, 2] == -np.inf
    empty = c_row_stats(consumer, np.zeros((2, 0)), None, 0)
    assert empty[0].tolist() == [-np.inf, -np.inf] and empty[3].tolist() == [-1, -1]
