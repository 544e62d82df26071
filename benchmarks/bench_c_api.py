"""The C-level API against the Python API, one thread each (issue 17).

    python benchmarks/bench_c_api.py [--quick] [--repeat N]

Compiles a small consumer of divcore/kernels.h (the documented dc_* names, nothing else)
with the system C compiler, with divcore's own flags (-O3 -ffp-contract=fast), loads it
with ctypes, and times on the same arrays:

- a C loop over the rows of (2048, 32000) float32 (--quick: (256, 32000)) calling
  dc_ce_label_f32 and dc_logsumexp_f32 per row, against divcore.cross_entropy(...,
  reduction="none") and divcore.logsumexp with divcore.set_num_threads(1): the speed of
  the documented names in someone else's loop (target: >= 0.9x the Python API's);
- at C = 10, (200000, 10) float32: the same per-row C loop, the batch kernel
  dc_batch_ce_labels_f32 (per-row values and mean in one call) and dc_batch_logsumexp_f32,
  against the Python API's batch calls.

Prints median times, GB/s of input read, and ratios (Python time / C time: above 1 the C
call is faster). Each C result is first checked against the Python API's (same bits).
Public tools only: numpy, time, ctypes and a C compiler.
"""
import argparse
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import divcore

CONSUMER = r"""
#include <stdint.h>
#include "divcore/kernels.h"

void ce_label_rows(const float *x, const int64_t *y, ptrdiff_t rows, ptrdiff_t n, double *out)
{
    for (ptrdiff_t i = 0; i < rows; i++) {
        const ptrdiff_t label = y[i];
        out[i] = dc_ce_label_f32(x + i * n, n, label);
    }
}

void lse_rows(const float *x, ptrdiff_t rows, ptrdiff_t n, double *out)
{
    for (ptrdiff_t i = 0; i < rows; i++) out[i] = dc_logsumexp_f32(x + i * n, n);
}

double ce_label_batch(const float *x, const int64_t *y, ptrdiff_t rows, ptrdiff_t n,
                      double *out)
{
    dc_reduced red;
    if (dc_batch_ce_labels_f32(x, rows, n, n * 4, 4, y, 1, NULL, -100, NULL, 0, 0, out, &red))
        return -1.0;
    return red.mean;
}

ptrdiff_t lse_batch(const float *x, ptrdiff_t rows, ptrdiff_t n, double *out)
{
    return dc_batch_logsumexp_f32(x, rows, n, n * 4, 4, NULL, 0, 0, out);
}

const char *level(void) { return dc_simd_name(dc_simd_select()); }
"""


def build(folder):
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        sys.exit("no C compiler")
    src = os.path.join(folder, "bench_consumer.c")
    lib = os.path.join(folder, "bench_consumer.so")
    with open(src, "w") as f:
        f.write(CONSUMER)
    subprocess.run([cc, "-O3", "-ffp-contract=fast", "-shared", "-fPIC", "-I",
                    divcore.get_include(), src, "-o", lib, "-lm"], check=True)
    so = ctypes.CDLL(lib)
    vp, sz = ctypes.c_void_p, ctypes.c_ssize_t
    so.ce_label_rows.argtypes = [vp, vp, sz, sz, vp]
    so.lse_rows.argtypes = [vp, sz, sz, vp]
    so.ce_label_batch.argtypes = [vp, vp, sz, sz, vp]
    so.ce_label_batch.restype = ctypes.c_double
    so.lse_batch.argtypes = [vp, sz, sz, vp]
    so.lse_batch.restype = sz
    so.level.restype = ctypes.c_char_p
    return so


def median_time(fn, repeat):
    fn()  # warm up
    times = []
    for _ in range(repeat):
        loops, t = 0, 0.0
        start = time.perf_counter()
        while t < 0.05 or loops < 2:
            fn()
            loops += 1
            t = time.perf_counter() - start
        times.append(t / loops)
    return float(np.median(times))


def check(name, c_values, api_values):
    same = np.array_equal(np.asarray(c_values).astype(np.asarray(api_values).dtype),
                          api_values, equal_nan=True)
    if not same:
        print(f"  ! {name}: the C result differs from the Python API's")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=None)
    args = ap.parse_args()
    repeat = args.repeat or (3 if args.quick else 7)
    if divcore.backend() != "compiled":
        sys.exit("needs divcore's compiled core")
    divcore.set_num_threads(1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        so = build(tmp)
        print(f"divcore {divcore.__version__}; C consumer level {so.level().decode()}, "
              f"Python API level {divcore._core.simd_path()}; one thread each; "
              f"median of {repeat}")
        print()
        print("| case | C | Python API | GB/s C | GB/s API | API time / C time |")
        print("|---|---:|---:|---:|---:|---:|")
        rows_long = 256 if args.quick else 2048
        for shape, cases in (((rows_long, 32000), ("rows",)),
                             ((200000, 10), ("rows", "batch"))):
            x = (rng.standard_normal(shape) * 3).astype(np.float32)
            y = rng.integers(0, shape[1], shape[0])
            out = np.empty(shape[0])
            gb = x.nbytes / 1e9
            xp, yp, op = x.ctypes.data, y.ctypes.data, out.ctypes.data
            runs = []
            if "rows" in cases:
                runs += [
                    ("CE labels, C loop of dc_ce_label_f32",
                     lambda: so.ce_label_rows(xp, yp, shape[0], shape[1], op),
                     lambda: divcore.cross_entropy(x, y, reduction="none")),
                    ("logsumexp, C loop of dc_logsumexp_f32",
                     lambda: so.lse_rows(xp, shape[0], shape[1], op),
                     lambda: divcore.logsumexp(x)),
                ]
            if "batch" in cases:
                runs += [
                    ("CE labels, dc_batch_ce_labels_f32 (rows + mean)",
                     lambda: so.ce_label_batch(xp, yp, shape[0], shape[1], op),
                     lambda: divcore.cross_entropy(x, y, reduction="none")),
                    ("logsumexp, dc_batch_logsumexp_f32",
                     lambda: so.lse_batch(xp, shape[0], shape[1], op),
                     lambda: divcore.logsumexp(x)),
                ]
            for name, c_call, api_call in runs:
                c_call()
                check(name, out, api_call())
                tc, ta = median_time(c_call, repeat), median_time(api_call, repeat)
                print(f"| {name} {shape} | {tc * 1e3:.3f} ms | {ta * 1e3:.3f} ms | "
                      f"{gb / tc:.1f} | {gb / ta:.1f} | {ta / tc:.2f}x |")
            if "batch" in cases:
                mean = so.ce_label_batch(xp, yp, shape[0], shape[1], op)
                if np.float32(mean) != divcore.cross_entropy(x, y):
                    print("  ! the batch mean differs from cross_entropy(..., reduction='mean')")


if __name__ == "__main__":
    main()
