"""Half-precision storage and class axes that are not last, against divcore's own float32
class-last path and against torch, in one run.

    python benchmarks/layouts.py [--quick] [--repeat 5]

Rows (4096, 32000) (512, 32000 with --quick): float16 and bfloat16 (ml_dtypes) CE against
float32 CE on the same shape, torch's bf16 CE; CE / log_softmax / KL from teacher logits
with the class axis not last, read in place: axis 0 of (C, N), axis 1 of (16, C, N / 16)
and of torch's (16, 1000, 4096) ((16, 1000, 512) with --quick), against the same call on
the class-last copy (the ratio: issue 13 asks for <= 1.2). Times are the best of `repeat`
(the two calls of a ratio alternated); peak memory is tracemalloc's (numpy's allocations)
for one call.
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


def best_pair(a, b, repeat):
    """Best times of a and b, their calls alternated (a noisy machine slows both alike)."""
    a()
    b()
    ta, tb = [], []
    for _ in range(repeat):
        for f, times in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
    return min(ta), min(tb)


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
    # each half row's ratio is to float32 calls alternated with its own (a loaded machine
    # slows both alike); the float32 time above is its own best
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
        f32, t = best_pair(lambda: divcore.cross_entropy(x32, y),
                           lambda: divcore.cross_entropy(xh, y), args.repeat)
        theirs = "—"
        if torch is not None:
            tx = torch.from_numpy(x32).to(getattr(torch, name))
            ty = torch.from_numpy(y)
            theirs = f"{best(lambda: F.cross_entropy(tx, ty), args.repeat) * 1e3:.1f}"
        print(f"| {name} CE | {t * 1e3:.1f} | {t / f32:.2f} | "
              f"{peak_mib(lambda: divcore.cross_entropy(xh, y)):.1f} | {theirs} |")

    del x32
    print("\n| layout | operation | class-last ms | in place ms | ratio |")
    print("|---|---|---:|---:|---:|")
    d = 512 if args.quick else 4096
    layouts = [  # (name, shape, class axis): the class-last copy is timed against it
        (f"axis 0 of ({c}, {n})", (c, n), 0),
        (f"axis 1 of (16, {c}, {n // 16})", (16, c, n // 16), 1),
        (f"axis 1 of (16, 1000, {d})", (16, 1000, d), 1),
    ]
    for layout, shape, axis in layouts:
        x = rng.standard_normal(shape, dtype=np.float32)
        t = rng.standard_normal(shape, dtype=np.float32)
        xl = np.ascontiguousarray(np.moveaxis(x, axis, -1))
        tl = np.ascontiguousarray(np.moveaxis(t, axis, -1))
        labels = rng.integers(0, shape[axis], xl.shape[:-1])
        cases = [
            ("CE labels", lambda: divcore.cross_entropy(xl, labels),
             lambda: divcore.cross_entropy(x, labels, axis=axis)),
            ("log_softmax", lambda: divcore.log_softmax(xl),
             lambda: divcore.log_softmax(x, axis=axis)),
            ("KL, teacher logits", lambda: divcore.kl_divergence(xl, tl, target_type="logits"),
             lambda: divcore.kl_divergence(x, t, axis=axis, target_type="logits")),
        ]
        for name, last, strided in cases:
            a, b = best_pair(last, strided, args.repeat)
            print(f"| {layout} | {name} | {a * 1e3:.1f} | {b * 1e3:.1f} | {b / a:.2f} |")
        del x, t, xl, tl


if __name__ == "__main__":
    main()
