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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["plain", "weights", "max late", "zeros", "lost mass",
                                  "nan late", "hot"])
def test_one_huge_row_against_soft_targets_split_across_threads(dtype, case,
                                                               restore_threads):
    # CE and KL against probabilities, log-probabilities and a teacher's logits, and the
    # entropy of logits, on one row of 2^20 + 5 values: parts per thread whose one-read
    # states are merged (split_t.h) give one thread's results to rounding (its special
    # values exactly), and the float64 formulas'.
    rng = np.random.default_rng(11)
    n = (1 << 20) + 5
    x = (rng.standard_normal(n) * 3).astype(dtype)
    tl = (rng.standard_normal(n) * 2).astype(dtype)
    w = None
    if case == "weights":
        w = rng.uniform(0.2, 2.0, n).astype(dtype)
    elif case == "max late":
        x[n - 3] = 25.0
        tl[n - 2] = 20.0
    elif case == "zeros":
        tl[: n // 2] = -np.inf                  # the first parts have no target mass
    elif case == "lost mass":
        x[n - 7] = -np.inf                      # target mass on a -inf logit: +inf
    elif case == "nan late":
        x[n - 1] = np.nan
    elif case == "hot":
        x[3] = 40.0                             # a confident, right model: tiny losses
        tl[3] = 40.0
    with np.errstate(all="ignore"):
        t64 = tl.astype(np.float64)
        lp64 = t64 - np.logaddexp.reduce(t64)
        p = np.exp(lp64).astype(dtype)
        lp = lp64.astype(dtype)
        targets = {"probs": p, "log_probs": lp, "logits": tl}
        results = {}
        for threads in (1, 2, 3):
            divcore.set_num_threads(threads)
            got = {kind: (divcore.cross_entropy(x, t, target_type=kind, weight=w,
                                                validate=False),
                          divcore.kl_divergence(x, t, target_type=kind, validate=False))
                   for kind, t in targets.items()}
            got["entropy"] = (divcore.entropy(x),
                              divcore.entropy(p, input_type="probs", sum_tol=1e-3),
                              divcore.entropy(lp, input_type="log_probs", sum_tol=1e-3))
            got["reverse"] = tuple(divcore.kl_divergence(x, t, target_type=kind, reverse=True,
                                                         validate=False)
                                   for kind, t in targets.items())
            got["js"] = tuple(divcore.js_divergence(x, t, target_type=kind, validate=False)
                              for kind, t in targets.items())
            results[threads] = got
        # float64 formulas on the stored values; log S = log1p((at max - 1) + Σ the rest)
        # keeps a dominant class's log q ≈ -1e-9 exact

        def log_softmax64(v):
            m = np.max(v)
            e = np.exp(v - m)
            at = v == m
            e[at] = 0.0
            return (v - m) - np.log1p((np.count_nonzero(at) - 1.0) + np.sum(e))
        x64 = x.astype(np.float64)
        lq = log_softmax64(x64)
        q = np.exp(lq)
        ww = np.ones(n) if w is None else w.astype(np.float64)
        want = {}
        for kind, t in targets.items():
            lpk = (log_softmax64(t.astype(np.float64)) if kind == "logits"
                   else np.log(t.astype(np.float64)) if kind == "probs"
                   else t.astype(np.float64))
            pk = np.exp(lpk)
            has = pk > 0
            want[kind] = (np.sum(ww[has] * pk[has] * -lq[has]),
                          np.sum(pk[has] * (lpk[has] - lq[has])))
        lp_t = log_softmax64(tl.astype(np.float64))
        p64 = p.astype(np.float64)
        h_p = -np.sum(p64[p64 > 0] * np.log(p64[p64 > 0]))
        lp64s = lp.astype(np.float64)
        h_lp = -np.sum(np.exp(lp64s[lp64s > -np.inf]) * lp64s[lp64s > -np.inf])
        want["entropy"] = (-np.sum(q[q > 0] * lq[q > 0]), h_p, h_lp)
        want["reverse"] = tuple(np.sum(q[q > 0] * (lq[q > 0] - lpk[q > 0]))
                                for lpk in (np.log(p64), lp64s, lp_t))
        js = []
        for kind, t in targets.items():             # JS = H(m) - H(p)/2 - H(q)/2
            lpk = (log_softmax64(t.astype(np.float64)) if kind == "logits"
                   else np.log(t.astype(np.float64)) if kind == "probs"
                   else t.astype(np.float64))
            pk = np.exp(lpk)
            m = 0.5 * (pk + q)

            def plogp(v):
                return np.sum(v[v > 0] * np.log(v[v > 0]))
            js.append(plogp(pk) / 2 + plogp(q) / 2 - plogp(m))
        want["js"] = tuple(js)
        if case == "nan late":                  # NaN in x, NaN out (the targets' own
            want = {k: tuple(np.nan for _ in v) for k, v in want.items()}   # entropy kept)
            want["entropy"] = (np.nan, h_p, h_lp)
    rtol = 1e-5 if dtype == np.float32 else 1e-11
    for threads in (2, 3):
        for key, have in results[threads].items():
            for h, one, r in zip(have, results[1][key], want[key]):
                if not np.isfinite(one):
                    assert np.array_equal(h, one, equal_nan=True), (key, threads, h, one)
                    assert np.array_equal(r, one, equal_nan=True), (key, r, one)
                    continue
                np.testing.assert_allclose(h, one, rtol=rtol, atol=1e-300,
                                           err_msg=f"{key}: {threads} threads vs 1")
                np.testing.assert_allclose(h, r, rtol=1e-5 if dtype == np.float32 else 1e-9,
                                           atol=1e-12, err_msg=f"{key} vs float64")


def test_one_huge_row_soft_target_validation_names_the_row(restore_threads):
    # A bad probability in the last part of a split row is still reported, with its row.
    n = (1 << 20) + 5
    x = np.zeros((1, n), dtype=np.float32)
    p = np.full((1, n), 1.0 / n, dtype=np.float32)
    p[0, n - 2] = -0.5
    divcore.set_num_threads(2)
    with pytest.raises(ValueError, match="row 0"):
        divcore.kl_divergence(x, p)
    with pytest.raises(ValueError, match="row 0"):
        divcore.js_divergence(x, p)
