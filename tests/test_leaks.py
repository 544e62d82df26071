"""No leaks (issue 6): repeated calls of every function - small and large inputs, and
calls that raise - do not grow the process's memory.

Two measures, after a warm-up (first calls fill caches, pools and the allocator's free
lists) and a gc.collect():
  - tracemalloc: Python objects and numpy arrays (numpy reports its buffers to it) still
    alive after the calls: catches a cache or a reference cycle that keeps results;
  - malloc's bytes in use (glibc mallinfo2, the calling thread's arena) and the resident
    set size: the C side too (the row buffers the core mallocs). The loops are sized so
    that leaking even one row buffer per call would add many MiB, far above the
    allocator's noise. (RSS alone can miss a leak that reuses free heap pages left
    resident by earlier tests; mallinfo2 cannot.)
Compiled core only (the reference has no C side, and it is slow at these sizes).
"""
import ctypes
import gc
import os
import tracemalloc
import warnings

import numpy as np
import pytest

import divcore

pytestmark = [
    pytest.mark.usefixtures("compiled"),
    # under tools/sanitize.sh, ASan's quarantine keeps freed blocks: RSS says nothing
    pytest.mark.skipif(bool(os.environ.get("DIVCORE_SANITIZED")),
                       reason="memory use is not meaningful under AddressSanitizer"),
]

MiB = 2**20


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _mallinfo2():
    try:
        f = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    f.restype = _MallInfo2
    return f


_MALLINFO2 = _mallinfo2()


def heap_in_use():
    """Bytes malloc has handed out and not had back (glibc's mallinfo2: the main arena,
    i.e. the calling thread's allocations), or None elsewhere. Unlike RSS it grows with a
    leak even when the heap still has resident free space from earlier tests."""
    if _MALLINFO2 is None:
        return None
    info = _MALLINFO2()
    return info.uordblks + info.hblkhd


def rss():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        psutil = pytest.importorskip("psutil")
        return psutil.Process().memory_info().rss


def _problem(rows, classes, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, classes)) * 3).astype(dtype)
    y = rng.integers(0, classes, rows)
    t = rng.standard_normal((rows, classes)).astype(dtype)
    p = divcore.softmax(t)
    return x, y, t, p


def _calls(x, y, t, p):
    """Every public function, each way it allocates (labels, soft targets, masks,
    temperatures that gather rows, gradients)."""
    where = np.ones(x.shape, bool)
    where[:, 0] = False
    b = (p > 1.0 / p.shape[-1]).astype(x.dtype)
    return [
        lambda: divcore.logsumexp(x, where=where),
        lambda: divcore.log_softmax(x, temperature=2.0),
        lambda: divcore.softmax(x[:, ::2]),
        lambda: divcore.entropy(p, input_type="probs"),
        lambda: divcore.cross_entropy(x, y, weight=np.ones(x.shape[1]), label_smoothing=0.1),
        lambda: divcore.cross_entropy(x[0], int(y[0])),  # the one-row shortcut
        lambda: divcore.kl_divergence(x, t, target_type="logits", temperature=1.5),
        lambda: divcore.kl_divergence(x, p, reverse=True),
        lambda: divcore.js_divergence(x, p),
        lambda: divcore.decompose(x, y),
        lambda: divcore.cross_entropy_and_grad(x, p),
        lambda: divcore.kl_divergence_and_grad(x, y),
        lambda: divcore.binary_cross_entropy(x, b, pos_weight=np.ones(x.shape[1])),
    ]


def _failing_calls(x, y, t, p):
    """Calls that raise at each stage: argument checks, the label range check, the
    validation inside the row loop (after buffers were allocated)."""
    bad_y = np.array(y, copy=True)
    bad_y[-1] = x.shape[1]
    bad_p = np.array(p, copy=True)
    bad_p[-1, 0] = -1.0
    return [
        (lambda: divcore.cross_entropy(x, bad_y), IndexError),
        (lambda: divcore.cross_entropy_and_grad(x, bad_y), IndexError),
        (lambda: divcore.js_divergence(x, bad_y), IndexError),
        (lambda: divcore.kl_divergence(x, bad_p), ValueError),
        (lambda: divcore.kl_divergence_and_grad(x, bad_p), ValueError),
        (lambda: divcore.js_divergence(x, bad_p), ValueError),
        (lambda: divcore.entropy(bad_p, input_type="probs"), ValueError),
        (lambda: divcore.logsumexp(x + 0j), TypeError),
        (lambda: divcore.softmax(x, where=np.ones(3, bool)), ValueError),
        (lambda: divcore.cross_entropy(x, y, reduction="avg"), ValueError),
    ]


def _repeat(calls, failing, times):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(times):
            for f in calls:
                f()
            for f, exc in failing:
                try:
                    f()
                except exc:
                    pass
                else:
                    raise AssertionError("expected an error")


def _growth(calls, failing, warmup, times):
    """(memory growth in bytes, bytes still held per tracemalloc) over `times` rounds.
    The growth is the larger of the RSS's and malloc's in-use bytes' (where known)."""
    _repeat(calls, failing, warmup)
    gc.collect()
    before = rss(), heap_in_use()
    _repeat(calls, failing, times)
    gc.collect()
    after = rss(), heap_in_use()
    rss_growth = after[0] - before[0]
    if before[1] is not None:
        rss_growth = max(rss_growth, after[1] - before[1])
    tracemalloc.start()
    try:
        _repeat(calls, failing, 2)
        gc.collect()
        first = tracemalloc.take_snapshot()
        _repeat(calls, failing, max(times // 4, 3))
        gc.collect()
        second = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    held = sum(stat.size_diff for stat in second.compare_to(first, "filename"))
    return rss_growth, held


def test_small_calls_do_not_leak():
    # 64 classes: one leaked row buffer (3 x 64 doubles) per call would be 1.5 KiB x
    # 23 calls x 300 rounds = 10 MiB
    x, y, t, p = _problem(6, 64)
    rss_growth, held = _growth(_calls(x, y, t, p), _failing_calls(x, y, t, p), 30, 300)
    assert rss_growth < 3 * MiB, f"memory grew by {rss_growth / MiB:.1f} MiB"
    assert held < 64 * 1024, f"{held} bytes of Python objects/arrays still held"


def test_large_calls_do_not_leak():
    # 2 x 1e5 values a call: one leaked per-call array or row buffer would be >= 1.2 MiB x
    # 23 calls x 4 rounds
    x, y, t, p = _problem(2, 100_000, dtype=np.float32)
    rss_growth, held = _growth(_calls(x, y, t, p), _failing_calls(x, y, t, p), 2, 4)
    assert rss_growth < 16 * MiB, f"memory grew by {rss_growth / MiB:.1f} MiB"
    assert held < 256 * 1024, f"{held} bytes of Python objects/arrays still held"


def test_threaded_calls_do_not_leak():
    # above the threading threshold: each OpenMP thread mallocs its own row buffers
    x, y, t, p = _problem(64, 2048, dtype=np.float32)
    rss_growth, held = _growth(_calls(x, y, t, p), _failing_calls(x, y, t, p), 2, 6)
    assert rss_growth < 8 * MiB, f"memory grew by {rss_growth / MiB:.1f} MiB"
    assert held < 256 * 1024, f"{held} bytes of Python objects/arrays still held"


def test_the_measures_see_a_leak_of_one_row_buffer_per_call():
    """The thresholds above are not too loose: a call that leaks what the core would
    (one malloc'd row buffer, or one small array) is caught by each measure."""
    try:
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        libc.malloc.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        pytest.skip("no C library to malloc from")
    kept = []

    def leak_c():
        libc.malloc(3 * 64 * 8)

    def leak_array():
        kept.append(np.empty(3 * 64))

    calls = [leak_c] * 23
    rss_growth, _ = _growth(calls, [], 30, 300)
    assert rss_growth >= 3 * MiB, rss_growth / MiB
    _, held = _growth([leak_array] * 23, [], 30, 300)
    assert held >= 64 * 1024, held
