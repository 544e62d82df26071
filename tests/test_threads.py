"""Threads: a threaded call gives bit for bit what a single thread gives, concurrent
Python threads get the serial answers, and the thread count can be set."""
import threading

import numpy as np
import pytest

import divcore

pytestmark = pytest.mark.skipif(divcore.backend() != "compiled",
                                reason="threads belong to the compiled core")


@pytest.fixture
def restore_threads():
    yield
    divcore.set_num_threads(0)


def _calls(x, y, p, t):
    return [
        divcore.logsumexp(x),
        divcore.cross_entropy(x, y, reduction="none"),
        divcore.cross_entropy(x, p, reduction="none"),
        divcore.kl_divergence(x, t, target_type="logits", reduction="none"),
        divcore.entropy(x),
        divcore.js_divergence(x, t, target_type="logits", reduction="none"),
        divcore.log_softmax(x),
        divcore.cross_entropy_and_grad(x, y)[1],
        divcore.kl_divergence_and_grad(x, p)[1],
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threaded_equals_serial(dtype, restore_threads):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((300, 700)) * 3).astype(dtype)  # above the threading threshold
    y = rng.integers(0, 700, 300)
    t = rng.standard_normal((300, 700)).astype(dtype)
    p = divcore.softmax(t)
    divcore.set_num_threads(1)
    serial = _calls(x, y, p, t)
    divcore.set_num_threads(4)
    threaded = _calls(x, y, p, t)
    for a, b in zip(serial, threaded):
        assert np.array_equal(a, b, equal_nan=True)


def test_validation_errors_name_the_first_bad_row_when_threaded(restore_threads):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((400, 500))
    p = divcore.softmax(rng.standard_normal((400, 500)))
    p[123, 0] = -0.5
    p[321, 0] = -0.5
    divcore.set_num_threads(4)
    with pytest.raises(ValueError, match="row 123"):
        divcore.cross_entropy(x, p)
    y = rng.integers(0, 500, 400)
    y[222] = 500
    y[333] = -7
    with pytest.raises(IndexError, match="row 222"):
        divcore.cross_entropy(x, y)


def test_concurrent_python_threads_agree_with_serial():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((256, 1024)).astype(np.float32)
    y = rng.integers(0, 1024, 256)
    want = divcore.cross_entropy(x, y, reduction="none")
    results, errors = [None] * 8, []

    def work(k):
        try:
            for _ in range(5):
                results[k] = divcore.cross_entropy(x, y, reduction="none")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    for got in results:
        assert np.array_equal(got, want)


def test_thread_count_settings(restore_threads):
    divcore.set_num_threads(3)
    assert divcore.get_num_threads() in (1, 3)  # 1 in a build without OpenMP
    divcore.set_num_threads(0)
    assert divcore.get_num_threads() >= 1
    with pytest.raises(ValueError):
        divcore.set_num_threads(-1)
    info = divcore.show_config()
    assert info["backend"] == "compiled" and info["simd"] in ("baseline", "avx2", "avx512")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["plain", "tiny loss", "max late", "nan late", "inf",
                                  "strided"])
def test_one_huge_row_split_across_threads(dtype, case, restore_threads):
    # A row of 2^20 + 3 values in a call of one row is cut into block-aligned parts, one
    # per thread, whose states are merged: the same results as one thread up to rounding,
    # and the special values of any part reach the whole row.
    rng = np.random.default_rng(5)
    n = (1 << 20) + 3
    x = (rng.standard_normal(n) * 4).astype(dtype)
    label = 7
    if case == "tiny loss":
        x[label] = 60.0
    elif case == "max late":
        x[n - 2] = 30.0
    elif case == "nan late":
        x[n - 1] = np.nan
    elif case == "inf":
        x[n // 2 + 1] = np.inf
    elif case == "strided":
        x = np.repeat(x, 2)[::2]            # not contiguous: read through the row buffer
    results = {}
    for threads in (1, 2, 3):
        divcore.set_num_threads(threads)
        results[threads] = (divcore.logsumexp(x), divcore.cross_entropy(x, label),
                            divcore.log_softmax(x))
    xd = x.astype(np.float64)
    finite = np.all(np.isfinite(xd))
    if finite:
        m = xd.max()
        want_lse = m + np.log(np.sum(np.exp(xd - m)))
        want_ce = (m - xd[label]) + np.log(np.sum(np.exp(xd - m)))
        if case == "tiny loss":             # the label is the max: log1p of the others
            want_ce = np.log1p(np.sum(np.exp(np.delete(xd, label) - m)))
    for threads in (2, 3):
        lse, ce, ls = results[threads]
        if not finite:
            assert np.isnan(lse) and np.isnan(ce) and np.all(np.isnan(ls))
            assert np.isnan(results[1][0]) and np.isnan(results[1][1])
            continue
        rtol = 1e-6 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(lse, want_lse, rtol=rtol)
        np.testing.assert_allclose(ce, want_ce, rtol=rtol)
        np.testing.assert_allclose(ce, results[1][1], rtol=rtol)
        np.testing.assert_allclose(ls, results[1][2], rtol=rtol, atol=rtol)


def test_threadpoolctl_limits_the_openmp_threads(restore_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not divcore._core.has_openmp():
        pytest.skip("a build without OpenMP is single-threaded")
    divcore.set_num_threads(0)              # follow OpenMP's own count
    apis = {info["user_api"] for info in threadpoolctl.threadpool_info()}
    assert "openmp" in apis                 # divcore's OpenMP runtime is visible to it
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert divcore.get_num_threads() == 1
        x = np.random.default_rng(0).standard_normal((512, 1024))
        serial = divcore.logsumexp(x)
    with threadpoolctl.threadpool_limits(limits=2, user_api="openmp"):
        assert divcore.get_num_threads() == 2
        assert np.array_equal(divcore.logsumexp(x), serial)
