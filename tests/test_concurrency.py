"""Python threads (issue 6): many threads calling every function at once on shared,
read-only inputs get the serial answers bit for bit; errors raised in one thread do not
disturb the others; a large call releases the GIL (another Python thread keeps running
meanwhile); OpenMP teams started from many Python threads finish, agree, and are reused
rather than piling up threads.

Nothing here asserts a speed-up: two threads on a noisy 2-core box may or may not run
twice as fast. The GIL check counts the work a pure-Python thread gets done *during* a
large call instead; the wall-clock ratio of 2 threads to 1 is printed (pytest -s) only.
"""
import os
import threading
import time

import numpy as np
import pytest

import divcore

pytestmark = pytest.mark.skipif(divcore.backend() != "compiled",
                                reason="the GIL and OpenMP belong to the compiled core")


@pytest.fixture
def restore_threads():
    yield
    divcore.set_num_threads(0)


def _frozen(a):
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


def _inputs(rows, classes, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = _frozen((rng.standard_normal((rows, classes)) * 4).astype(dtype))
    y = _frozen(rng.integers(0, classes, rows))
    t = _frozen(rng.standard_normal((rows, classes)).astype(dtype))
    p = _frozen(divcore.softmax(t))
    return x, y, t, p


def _every_function(x, y, t, p):
    """Every public function once on the shared inputs."""
    b = (p > 0.5 / p.shape[-1]).astype(p.dtype)
    return [
        divcore.logsumexp(x), divcore.log_softmax(x), divcore.softmax(x, temperature=2.0),
        divcore.entropy(x), divcore.cross_entropy(x, y, reduction="none"),
        divcore.cross_entropy(x, p, reduction="none", label_smoothing=0.1),
        divcore.kl_divergence(x, t, target_type="logits", reduction="none"),
        divcore.kl_divergence(x, p, reverse=True, reduction="none"),
        divcore.js_divergence(x, p, reduction="none"), *divcore.decompose(x, y),
        *divcore.cross_entropy_and_grad(x, y), *divcore.kl_divergence_and_grad(x, p),
        divcore.binary_cross_entropy(x, b, reduction="none"),
    ]


def _run_threads(n, work, timeout=120):
    """Start n threads on work(k), join them; the exceptions they raised."""
    errors = []

    def wrapped(k):
        try:
            work(k)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(k,), daemon=True) for k in range(n)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + timeout
    for th in threads:
        th.join(max(deadline - time.monotonic(), 0.1))
    stuck = [th for th in threads if th.is_alive()]
    assert not stuck, f"{len(stuck)} of {n} threads still running after {timeout} s (deadlock?)"
    return errors


@pytest.mark.parametrize("size", ["small", "large"])
def test_many_threads_on_shared_inputs_agree_with_serial(size):
    # small: each call stays on its calling thread; large: each starts an OpenMP team
    rows, classes = (8, 33) if size == "small" else (256, 600)
    inputs = _inputs(rows, classes, seed=1)
    serial = _every_function(*inputs)
    results = {}

    def work(k):
        for _ in range(3 if size == "large" else 30):
            results[k] = _every_function(*inputs)

    assert _run_threads(16, work) == []
    for k, got in results.items():
        for i, (a, b) in enumerate(zip(got, serial)):
            assert np.array_equal(a, b, equal_nan=True), f"thread {k}, result {i}"


def test_errors_in_some_threads_do_not_disturb_the_others():
    x, y, _, p = _inputs(64, 300, seed=2)
    bad_y = np.array(y, copy=True)
    bad_y[17] = 300
    bad_p = np.array(p, copy=True)
    bad_p[40, 0] = -1.0
    want = divcore.cross_entropy(x, y, reduction="none")
    seen = {"index": 0, "value": 0, "ok": 0}
    lock = threading.Lock()

    def work(k):
        for i in range(30):
            kind = (k + i) % 3
            if kind == 0:
                with pytest.raises(IndexError, match=r"row 17\b"):
                    divcore.cross_entropy(x, bad_y)
                key = "index"
            elif kind == 1:
                with pytest.raises(ValueError, match=r"row 40\b"):
                    divcore.kl_divergence(x, bad_p)
                key = "value"
            else:
                assert np.array_equal(divcore.cross_entropy(x, y, reduction="none"), want)
                key = "ok"
            with lock:
                seen[key] += 1

    assert _run_threads(12, work) == []
    assert seen == {"index": 120, "value": 120, "ok": 120}


def test_large_calls_release_the_gil(restore_threads, report):
    """While one thread is inside a large call, a pure-Python thread keeps counting.

    Holding the GIL for the call would let the counter move by at most one switch
    interval's worth (5 ms); the check asks for a fifth of its free-running progress over
    the call's duration (≥ 200 ms), whatever the machine's speed or load."""
    divcore.set_num_threads(1)  # the call on one core, the counter on the other
    x, y, _, _ = _inputs(512, 4096, seed=3)
    start = time.perf_counter()
    calls = 0
    while time.perf_counter() - start < 0.2:
        divcore.cross_entropy(x, y)
        calls += 1

    def long_call():
        for _ in range(calls):
            divcore.cross_entropy(x, y)

    count = [0]
    stop = threading.Event()

    def counter():
        while not stop.is_set():
            count[0] += 1

    # the counter's free-running rate (the GIL is ours when the main thread sleeps)
    th = threading.Thread(target=counter, daemon=True)
    th.start()
    t0, c0 = time.perf_counter(), count[0]
    time.sleep(0.2)
    rate = (count[0] - c0) / (time.perf_counter() - t0)
    # the same counter while this thread is inside divcore
    t0, c0 = time.perf_counter(), count[0]
    long_call()
    during = time.perf_counter() - t0
    progress = count[0] - c0
    stop.set()
    th.join()
    report(f"GIL: counter ran at {progress / during / rate:.0%} of its free rate during "
           f"{during * 1e3:.0f} ms of divcore calls")
    assert progress > 0.2 * rate * during, (progress, rate, during)


def test_two_threads_wall_clock_is_reported(restore_threads, report):
    """Not a timed assertion: reports the wall time of 2 calls on 2 threads vs 1 thread (in
    the summary at the end of the run, not between the dots)."""
    divcore.set_num_threads(1)
    x, y, _, _ = _inputs(512, 4096, seed=4)
    reps = 10

    def batch():
        for _ in range(reps):
            divcore.cross_entropy(x, y)

    batch()
    t0 = time.perf_counter()
    batch()
    batch()
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert _run_threads(2, lambda k: batch()) == []
    two = time.perf_counter() - t0
    report(f"GIL release: 2 batches serially {one * 1e3:.0f} ms, on 2 Python threads "
           f"{two * 1e3:.0f} ms (speed-up {one / two:.2f}x on {os.cpu_count()} CPUs)")


def _os_threads():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def test_openmp_inside_python_threads_finishes_and_threads_are_reused(restore_threads,
                                                                     report):
    if not divcore._kernels.has_openmp():
        pytest.skip("built without OpenMP")
    divcore.set_num_threads(2)
    inputs = _inputs(256, 1024, seed=5)
    want = _every_function(*inputs)
    peak = [0]

    def work(k):
        for _ in range(2):
            got = _every_function(*inputs)
            for a, b in zip(got, want):
                assert np.array_equal(a, b, equal_nan=True)
            n = _os_threads()
            peak[0] = max(peak[0], n or 0)

    before = _os_threads()
    assert _run_threads(8, work) == []
    first_peak = peak[0]
    assert _run_threads(8, work) == []  # again: the thread count must not keep growing
    after = _os_threads()
    if before is not None:
        # each calling thread gets at most one OpenMP team of set_num_threads() threads
        assert peak[0] <= before + 8 * 2 + 2, (before, peak[0])
        assert peak[0] <= first_peak + 2, (first_peak, peak[0])
        assert after <= before + 2 * 8, (before, after)
        report(f"OS threads: {before} before, peak {peak[0]} with 8 Python threads x 2 "
               f"OpenMP threads, {after} after")
