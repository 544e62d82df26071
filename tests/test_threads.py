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
