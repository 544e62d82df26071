"""Every operation as a fraction of this machine's memory limit, measured in the same run.

    python benchmarks/memlimit.py [--quick] [--repeat 5]

The limit comes from a small C probe compiled here with the system compiler (cc, OpenMP):
a streaming read (a vectorised sum) and a copy (memcpy, non-temporal for large sizes),
both with divcore's thread count, on an array the size of the logits. Operations that
reduce (losses, logsumexp, entropy) are reported against the read limit, counting the
bytes of every input; operations that write an (N, C) result (softmax, log_softmax,
gradients) against the copy limit. torch's time, when it is installed, is beside it.
Float32 (4096, 32000) ((512, 32000) with --quick); times are the best of `repeat`. Then
every operation on (200000, 10) ((20000, 10) with --quick) against torch, and JS against KL;
then every reduction on one row of 2^22 values (2^21) with one thread and with all.
"""
import argparse
import ctypes
import os
import subprocess
import tempfile
import time

import numpy as np

import divcore

PROBE = r"""
#include <stddef.h>
#include <string.h>
double probe_read(const float *a, ptrdiff_t n, int threads)
{
    double total = 0.0;
    #pragma omp parallel for reduction(+:total) num_threads(threads) schedule(static)
    for (ptrdiff_t b = 0; b < n; b += 8192) {
        const ptrdiff_t e = b + 8192 < n ? b + 8192 : n;
        float s[16] = {0};
        ptrdiff_t i = b;
        for (; i + 16 <= e; i += 16)
            for (int j = 0; j < 16; j++) s[j] += a[i + j];
        for (; i < e; i++) s[0] += a[i];
        for (int j = 0; j < 16; j++) total += s[j];
    }
    return total;
}
void probe_copy(float *dst, const float *src, ptrdiff_t n, int threads)
{
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (ptrdiff_t b = 0; b < n; b += 1 << 20) {
        const ptrdiff_t e = b + (1 << 20) < n ? b + (1 << 20) : n;
        memcpy(dst + b, src + b, (size_t)(e - b) * sizeof(float));
    }
}
"""


def load_probe():
    """The probe as a ctypes library, or None without a C compiler with OpenMP."""
    folder = tempfile.mkdtemp(prefix="divcore-probe-")
    src, lib = os.path.join(folder, "probe.c"), os.path.join(folder, "probe.so")
    with open(src, "w") as f:
        f.write(PROBE)
    cc = os.environ.get("CC", "cc")
    try:
        subprocess.run([cc, "-O3", "-fopenmp", "-shared", "-fPIC", src, "-o", lib],
                       check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    probe = ctypes.CDLL(lib)
    probe.probe_read.restype = ctypes.c_double
    probe.probe_read.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int]
    probe.probe_copy.restype = None
    probe.probe_copy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ssize_t,
                                 ctypes.c_int]
    return probe


def best(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def limits(probe, x, repeat):
    """(read GB/s, copy GB/s) with divcore's threads, on arrays of x's size."""
    threads = divcore.get_num_threads()
    out = np.empty_like(x)
    n = x.size
    read = best(lambda: probe.probe_read(x.ctypes.data, n, threads), repeat)
    copy = best(lambda: probe.probe_copy(out.ctypes.data, x.ctypes.data, n, threads), repeat)
    return x.nbytes / read / 1e9, x.nbytes / copy / 1e9


def cases(rng, shape):
    x = rng.standard_normal(shape, dtype=np.float32)
    t = rng.standard_normal(shape, dtype=np.float32)
    p = np.exp(t - t.max(axis=1, keepdims=True))
    p = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
    lp = np.log(p)
    y = rng.integers(0, shape[1], shape[0])
    dc = divcore
    # (name, divcore call, input bytes, "read" or "copy", torch key)
    return [
        ("CE, labels", lambda: dc.cross_entropy(x, y), x.nbytes, "read", "ce"),
        ("CE, probs", lambda: dc.cross_entropy(x, p), 2 * x.nbytes, "read", "ce_probs"),
        ("KL, probs", lambda: dc.kl_divergence(x, p), 2 * x.nbytes, "read", "kl_probs"),
        ("KL, log_probs", lambda: dc.kl_divergence(x, lp, target_type="log_probs"),
         2 * x.nbytes, "read", "kl_log_probs"),
        ("KL, two logit sets", lambda: dc.kl_divergence(x, t, target_type="logits"),
         2 * x.nbytes, "read", "kl_logits"),
        ("JS, probs", lambda: dc.js_divergence(x, p), 2 * x.nbytes, "read", "js"),
        ("JS, teacher logits", lambda: dc.js_divergence(x, t, target_type="logits"),
         2 * x.nbytes, "read", "js_logits"),
        ("entropy of logits", lambda: dc.entropy(x), x.nbytes, "read", "entropy"),
        ("logsumexp", lambda: dc.logsumexp(x), x.nbytes, "read", "logsumexp"),
        ("softmax", lambda: dc.softmax(x), x.nbytes, "copy", "softmax"),
        ("log_softmax", lambda: dc.log_softmax(x), x.nbytes, "copy", "log_softmax"),
        ("CE + grad, labels", lambda: dc.cross_entropy_and_grad(x, y), x.nbytes, "copy",
         "ce_grad"),
        ("KL + grad, two logit sets",
         lambda: dc.kl_divergence_and_grad(x, t, target_type="logits"), 2 * x.nbytes,
         "copy", "kl_grad"),
    ], dict(x=x, t=t, p=p, lp=lp, y=y)


def torch_calls(data):
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return {}
    T = {k: torch.from_numpy(v) for k, v in data.items()}
    X, Y, P, LP, TT = T["x"], T["y"], T["p"], T["lp"], T["t"]

    def grad_of(fn):
        def call():
            z = X.detach().requires_grad_()
            fn(z).backward()
        return call

    def kl(lq, lp):
        return (lp.exp() * (lp - lq)).sum(-1).mean()

    def js_of(p, lp):
        q = F.softmax(X, -1)
        m = 0.5 * (p + q)
        return 0.5 * (kl(torch.log(m), lp) + (q * (torch.log(q) - torch.log(m))).sum(-1).mean())

    def js():
        return js_of(P, LP)

    def js_logits():
        return js_of(F.softmax(TT, -1), F.log_softmax(TT, -1))

    return {
        "ce": lambda: F.cross_entropy(X, Y), "ce_probs": lambda: F.cross_entropy(X, P),
        "kl_probs": lambda: F.kl_div(F.log_softmax(X, -1), P, reduction="batchmean"),
        "kl_log_probs": lambda: F.kl_div(F.log_softmax(X, -1), LP, reduction="batchmean",
                                         log_target=True),
        "kl_logits": lambda: F.kl_div(F.log_softmax(X, -1), F.log_softmax(TT, -1),
                                      reduction="batchmean", log_target=True),
        "js": js, "js_logits": js_logits,
        "entropy": lambda: -(F.softmax(X, -1) * F.log_softmax(X, -1)).sum(-1),
        "logsumexp": lambda: torch.logsumexp(X, -1),
        "softmax": lambda: F.softmax(X, -1), "log_softmax": lambda: F.log_softmax(X, -1),
        "ce_grad": grad_of(lambda z: F.cross_entropy(z, Y)),
        "kl_grad": grad_of(lambda z: F.kl_div(F.log_softmax(z, -1), F.log_softmax(TT, -1),
                                              reduction="batchmean", log_target=True)),
    }


def run(quick=False, repeat=5):
    shape = (512, 32000) if quick else (4096, 32000)
    rng = np.random.default_rng(0)
    probe = load_probe()
    items, data = cases(rng, shape)
    if probe is None:
        print("memlimit: no C compiler with OpenMP (cc -fopenmp): no memory-limit probe")
        return []
    read_gbs, copy_gbs = limits(probe, data["x"], repeat)
    torch_fns = torch_calls(data)
    if torch_fns:
        import torch
        torch.set_num_threads(divcore.get_num_threads())
    print(f"\nMemory limit with {divcore.get_num_threads()} threads on {shape} float32: "
          f"streaming read {read_gbs:.1f} GB/s, copy {copy_gbs:.1f} GB/s (a C probe, this "
          f"run); best of {repeat}\n")
    print("| operation | divcore ms | GB/s | fraction of the limit | limit | torch ms "
          "| torch / divcore |")
    print("|---|---:|---:|---:|---|---:|---:|")
    rows = []
    for name, fn, nbytes, kind, key in items:
        t = best(fn, repeat)
        gbs = nbytes / t / 1e9
        frac = gbs / (read_gbs if kind == "read" else copy_gbs)
        theirs = best(torch_fns[key], max(1, repeat // 2)) if key in torch_fns else None
        rows.append((name, t, gbs, frac, kind, theirs))
        tt = f"{theirs * 1e3:.1f}" if theirs else "—"
        ratio = f"{theirs / t:.1f}×" if theirs else "—"
        print(f"| {name} | {t * 1e3:.1f} | {gbs:.1f} | {frac:.2f} | {kind} | {tt} | {ratio} |",
              flush=True)
    return rows


def run_short(repeat=5, rows=200000, classes=10):
    """Every operation on many short rows against torch, in one run (no memory limit:
    these calls are bound by their per-row work), with JS's time against KL's."""
    rng = np.random.default_rng(1)
    items, data = cases(rng, (rows, classes))
    torch_fns = torch_calls(data)
    if torch_fns:
        import torch
        torch.set_num_threads(divcore.get_num_threads())
    print(f"\nShort rows {(rows, classes)} float32, {divcore.get_num_threads()} threads, "
          f"best of {repeat}\n")
    print("| operation | divcore ms | ns/row | torch ms | torch / divcore |")
    print("|---|---:|---:|---:|---:|")
    times = {}
    for name, fn, _, _, key in items:
        t = best(fn, repeat)
        times[name] = t
        theirs = best(torch_fns[key], repeat) if key in torch_fns else None
        tt = f"{theirs * 1e3:.2f}" if theirs else "—"
        ratio = f"{theirs / t:.1f}×" if theirs else "—"
        print(f"| {name} | {t * 1e3:.2f} | {t / rows * 1e9:.1f} | {tt} | {ratio} |",
              flush=True)
    print(f"\nJS / KL on short rows: probability target "
          f"{times['JS, probs'] / times['KL, probs']:.2f}x, teacher logits "
          f"{times['JS, teacher logits'] / times['KL, two logit sets']:.2f}x")
    return times


def run_one_row(repeat=5, n=1 << 22):
    """Every reduction on one row of n values with one thread and with all of them: a call
    with fewer rows than threads splits a row of 2^20 values or more across threads."""
    rng = np.random.default_rng(2)
    items, _ = cases(rng, (1, n))
    threads = divcore.get_num_threads()
    print(f"\nOne row of {n} float32 values: 1 thread against {threads}, best of {repeat}\n")
    print(f"| operation | 1 thread ms | {threads} threads ms | speedup |")
    print("|---|---:|---:|---:|")
    speedups = {}
    for name, fn, _, kind, _ in items:
        if kind != "read":
            continue
        try:
            divcore.set_num_threads(1)
            one = best(fn, repeat)
        finally:
            divcore.set_num_threads(0)
        many = best(fn, repeat)
        speedups[name] = one / many
        print(f"| {name} | {one * 1e3:.2f} | {many * 1e3:.2f} | {one / many:.2f}× |",
              flush=True)
    return speedups


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"divcore {divcore.__version__} from {divcore.__file__}")
    run(args.quick, args.repeat)
    run_short(args.repeat, 20000 if args.quick else 200000)
    run_one_row(args.repeat, 1 << 21 if args.quick else 1 << 22)


if __name__ == "__main__":
    main()
