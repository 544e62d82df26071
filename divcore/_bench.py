"""`divcore bench`: a quick, built-in speed check against numpy, SciPy and PyTorch.

A few seconds on one (rows, classes) array: each operation is timed for divcore and for
the straightforward code a user would write with each peer that can be imported; every
peer's value is first checked against divcore's. The full, reproducible comparison (more
shapes, float64, peak memory) is benchmarks/bench.py in the source tree
(`divcore bench --full` runs it from a checkout).
"""
import math
import platform
import statistics
import time

import numpy as np

import divcore

# One repeat loops the call for at least this long, so that a fast call is measurable
MIN_REPEAT_SECONDS = 0.02


def _np_log_softmax(x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _np_logsumexp(x):
    m = x.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))[..., 0]


def _numpy_ops(x, labels, probs, teacher):
    def ce_labels():
        lse = _np_logsumexp(x)
        return float(np.mean(lse - np.take_along_axis(x, labels[:, None], axis=-1)[:, 0]))

    def ce_probs():
        return float(np.mean(-np.sum(probs * _np_log_softmax(x), axis=-1)))

    def kl_logits():
        lp, lq = _np_log_softmax(teacher), _np_log_softmax(x)
        return float(np.mean(np.sum(np.exp(lp) * (lp - lq), axis=-1)))

    return {"ce_labels": ce_labels, "ce_probs": ce_probs, "kl_logits": kl_logits,
            "logsumexp": lambda: _np_logsumexp(x)}


def _scipy_ops(x, labels, probs, teacher):
    from scipy import special

    def ce_labels():
        lse = special.logsumexp(x, axis=-1)
        return float(np.mean(lse - np.take_along_axis(x, labels[:, None], axis=-1)[:, 0]))

    def ce_probs():
        return float(np.mean(-np.sum(probs * special.log_softmax(x, axis=-1), axis=-1)))

    def kl_logits():
        lp = special.log_softmax(teacher, axis=-1)
        lq = special.log_softmax(x, axis=-1)
        return float(np.mean(np.sum(np.exp(lp) * (lp - lq), axis=-1)))

    return {"ce_labels": ce_labels, "ce_probs": ce_probs, "kl_logits": kl_logits,
            "logsumexp": lambda: special.logsumexp(x, axis=-1)}


def _torch_ops(x, labels, probs, teacher):
    import torch
    import torch.nn.functional as F

    tx, tl = torch.from_numpy(x), torch.from_numpy(labels)
    tp, tt = torch.from_numpy(probs), torch.from_numpy(teacher)

    def kl_logits():
        return float(F.kl_div(F.log_softmax(tx, dim=-1), F.log_softmax(tt, dim=-1),
                              log_target=True, reduction="batchmean"))

    return {"ce_labels": lambda: float(F.cross_entropy(tx, tl)),
            "ce_probs": lambda: float(F.cross_entropy(tx, tp)),
            "kl_logits": kl_logits,
            "logsumexp": lambda: torch.logsumexp(tx, dim=-1).numpy()}


def _divcore_ops(x, labels, probs, teacher):
    return {"ce_labels": lambda: float(divcore.cross_entropy(x, labels)),
            "ce_probs": lambda: float(divcore.cross_entropy(x, probs)),
            "kl_logits": lambda: float(divcore.kl_divergence(x, teacher,
                                                             target_type="logits")),
            "logsumexp": lambda: divcore.logsumexp(x)}


OPERATIONS = (  # (key, what the table calls it, which inputs it reads besides the logits)
    ("ce_labels", "CE, int labels", ("labels",)),
    ("ce_probs", "CE, soft probs", ("probs",)),
    ("kl_logits", "KL, two logit sets", ("teacher",)),
    ("logsumexp", "logsumexp", ()),
)
PEERS = (("divcore", _divcore_ops), ("numpy", _numpy_ops), ("scipy", _scipy_ops),
         ("torch", _torch_ops))


def make_inputs(rows, classes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (3.0 * rng.standard_normal((rows, classes))).astype(dtype)
    teacher = (3.0 * rng.standard_normal((rows, classes))).astype(dtype)
    labels = rng.integers(0, classes, size=rows)
    # softmax in float64, then normalised in the target dtype: rows sum to 1 within
    # divcore's validation tolerance
    probs = np.exp(_np_log_softmax(teacher.astype(np.float64))).astype(dtype)
    return {"x": x, "labels": labels, "probs": probs, "teacher": teacher}


def median_seconds(call, repeat):
    """Median over `repeat` repeats of the time of one call (each repeat loops enough
    calls to last MIN_REPEAT_SECONDS)."""
    call()  # warm-up: first-call costs (imports, page faults) are not the steady state
    start = time.perf_counter()
    call()
    once = time.perf_counter() - start
    loops = max(1, math.ceil(MIN_REPEAT_SECONDS / max(once, 1e-9)))
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(loops):
            call()
        times.append((time.perf_counter() - start) / loops)
    return statistics.median(times)


def _agree(a, b):
    return bool(np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
                            rtol=1e-4, atol=1e-5))


def run(rows=512, classes=8192, dtype="float32", repeat=5, out=print):
    """Time every operation for divcore and each importable peer; print a table. Returns
    the rows of the table as dicts."""
    inputs = make_inputs(rows, classes, np.dtype(dtype))
    implementations = []
    for name, make in PEERS:
        try:
            implementations.append((name, make(inputs["x"], inputs["labels"],
                                               inputs["probs"], inputs["teacher"])))
        except ImportError:
            out(f"({name} is not installed: left out)")
    out(f"divcore {divcore.__version__} ({divcore.backend()} backend, "
        f"{divcore.get_num_threads()} threads), numpy {np.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}")
    out(f"({rows}, {classes}) {dtype}, median of {repeat} repeats; GB/s = input bytes / time;"
        " vs divcore = time / divcore's time\n")
    head = f"{'operation':<20}{'implementation':<16}{'median':>12}{'GB/s':>9}{'vs divcore':>12}"
    out(head)
    out("-" * len(head))
    results = []
    for key, title, extra_inputs in OPERATIONS:
        nbytes = inputs["x"].nbytes + sum(inputs[k].nbytes for k in extra_inputs)
        reference_value = implementations[0][1][key]()
        divcore_time = None
        for name, ops in implementations:
            seconds = median_seconds(ops[key], repeat)
            if name == "divcore":
                divcore_time = seconds
            agrees = name == "divcore" or _agree(ops[key](), reference_value)
            row = {"operation": title, "implementation": name, "seconds": seconds,
                   "gb_per_s": nbytes / seconds / 1e9, "vs_divcore": seconds / divcore_time,
                   "agrees": agrees}
            results.append(row)
            flag = "" if agrees else "  (value differs from divcore's!)"
            out(f"{title:<20}{name:<16}{_time(seconds):>12}{row['gb_per_s']:>9.2f}"
                f"{row['vs_divcore']:>11.2f}x{flag}")
    return results


def _time(seconds):
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"
