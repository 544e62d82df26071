"""Half-precision storage and class axes that are not last, against divcore's own float32
class-last path and against torch, in one run.

    python benchmarks/layouts.py [--quick] [--repeat 5]

Rows (4096, 32000) (512, 32000 with --quick): float16 and bfloat16 (ml_dtypes) CE against
float32 CE on the same shape, torch's bf16 CE; CE / log_softmax / KL from teacher logits
with the class axis 0 of (C, N) and axis 1 of (16, C, N / 16) against class-last. Times are
the best of `repeat`; peak memory is tracemalloc's (numpy's allocations) for one call.
"""
import argparse
import time
import tracemalloc

import numpy as np

import divcore


def best(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def peak_mib(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    n, c = (512, 32000) if args.quick else (4096, 32000)
    rng = np.random.default_rng(0)
    x32 = rng.standard_normal((n, c), dtype=np.float32)
    y = rng.integers(0, c, n)
    print(f"divcore {divcore.__version__}, {divcore.get_num_threads()} threads; ({n}, {c}); "
          f"best of {args.repeat}")

    print("\n| input | divcore ms | vs float32 | peak MiB | torch ms |")
    print("|---|---:|---:|---:|---:|")
    base = best(lambda: divcore.cross_entropy(x32, y), args.repeat)
    print(f"| float32 CE | {base * 1e3:.1f} | 1.00 | "
          f"{peak_mib(lambda: divcore.cross_entropy(x32, y)):.1f} | — |")
    halves = [("float16", np.float16)]
    try:
        import ml_dtypes
        halves.append(("bfloat16", ml_dtypes.bfloat16))
    except ImportError:
        pass
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        torch = None
    for name, dtype in halves:
        xh = x32.astype(dtype)
        t = best(lambda: divcore.cross_entropy(xh, y), args.repeat)
        theirs = "—"
        if torch is not None:
            tx = torch.from_numpy(x32).to(getattr(torch, name))
            ty = torch.from_numpy(y)
            theirs = f"{best(lambda: F.cross_entropy(tx, ty), args.repeat) * 1e3:.1f}"
        print(f"| {name} CE | {t * 1e3:.1f} | {t / base:.2f} | "
              f"{peak_mib(lambda: divcore.cross_entropy(xh, y)):.1f} | {theirs} |")

    print("\n| operation | class-last ms | axis 0 of (C, N) ms | ratio | "
          "axis 1 of (16, C, N/16) ms | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    t32 = rng.standard_normal((n, c), dtype=np.float32)
    xt, tt = np.ascontiguousarray(x32.T), np.ascontiguousarray(t32.T)
    x3 = np.ascontiguousarray(x32.reshape(16, n // 16, c).transpose(0, 2, 1))
    t3 = np.ascontiguousarray(t32.reshape(16, n // 16, c).transpose(0, 2, 1))
    y3 = y.reshape(16, n // 16)
    cases = [
        ("CE labels", lambda: divcore.cross_entropy(x32, y),
         lambda: divcore.cross_entropy(xt, y, axis=0),
         lambda: divcore.cross_entropy(x3, y3, axis=1)),
        ("log_softmax", lambda: divcore.log_softmax(x32),
         lambda: divcore.log_softmax(xt, axis=0), lambda: divcore.log_softmax(x3, axis=1)),
        ("KL, teacher logits", lambda: divcore.kl_divergence(x32, t32, target_type="logits"),
         lambda: divcore.kl_divergence(xt, tt, axis=0, target_type="logits"),
         lambda: divcore.kl_divergence(x3, t3, axis=1, target_type="logits")),
    ]
    for name, last, axis0, axis1 in cases:
        a, b, d = (best(f, args.repeat) for f in (last, axis0, axis1))
        print(f"| {name} | {a * 1e3:.1f} | {b * 1e3:.1f} | {b / a:.2f} | {d * 1e3:.1f} | "
              f"{d / a:.2f} |")


if __name__ == "__main__":
    main()
