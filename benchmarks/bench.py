#!/usr/bin/env python3
"""Time divcore against numpy, SciPy and PyTorch, and measure peak memory.

    python benchmarks/bench.py [--quick] [--repeat N]

Every implementation that can be imported runs in the same process on the same arrays
(PyTorch tensors share the numpy buffers, made outside the timed region). A time is the
median over N repeats of `time.perf_counter`; each repeat runs the call enough times to
last at least a few tens of milliseconds. GB/s counts the bytes of input read (logits and
target) per second; "vs divcore" is time / divcore's time (above 1: divcore is faster).
Before timing, each peer's result is checked against divcore's on the same data.

Peak memory: one fresh child process per (operation, implementation) builds the input
(np.zeros + fill, so its pages are resident), reads its peak resident size, makes one
call and reads it again; the difference is the peak memory the call itself needed. The
peak is VmHWM on Linux (ru_maxrss there is inherited from the parent through fork + exec,
see peak_rss_mib) and ru_maxrss elsewhere.

Peers (straightforward, numerically careful code as a user would write it):
  numpy   max-shifted logsumexp and log_softmax, CE via np.take_along_axis
  scipy   scipy.special.logsumexp and scipy.special.log_softmax
  torch   F.cross_entropy (labels and probability targets), F.kl_div(log_target=True)
          on F.log_softmax of both logit sets, F.log_softmax, torch.logsumexp, and
          torch.autograd.grad of F.cross_entropy for CE + grad
"""
import argparse
import functools
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

# operation key -> (label in the table, the data it reads, in call order)
OPS = {
    "ce_labels": ("CE, int labels", ("x", "labels")),
    "ce_probs": ("CE, soft probs", ("x", "probs")),
    "kl_logits": ("KL, two logit sets", ("x", "teacher")),
    "log_softmax": ("log_softmax", ("x",)),
    "logsumexp": ("logsumexp", ("x",)),
    "ce_grad": ("CE + grad, int labels", ("x", "labels")),
    "ce_row": ("CE, one row, int label", ("x", "label")),
}
BATCH_OPS = ("ce_labels", "ce_probs", "kl_logits", "log_softmax", "logsumexp", "ce_grad")
MEMORY_OPS = ("ce_labels", "ce_probs", "kl_logits", "logsumexp")
IMPLEMENTATIONS = ("divcore", "divcore 1 thread", "numpy", "scipy", "torch")


# --------------------------------------------------------------------------- implementations
# Each loader imports its library and returns (version, {op: function(*arrays)}, prepare),
# where prepare turns the numpy inputs into what the functions take. It raises ImportError
# (or anything else) when the library is not usable; the implementation is then skipped.

def _import_divcore():
    try:
        import divcore
    except ImportError:
        sys.path.insert(0, os.path.dirname(HERE))  # an in-place build of the checkout
        import divcore
    return divcore


def load_divcore():
    dc = _import_divcore()
    ops = {
        "ce_labels": dc.cross_entropy,
        "ce_probs": dc.cross_entropy,
        "kl_logits": functools.partial(dc.kl_divergence, target_type="logits"),
        "log_softmax": dc.log_softmax,
        "logsumexp": dc.logsumexp,
        "ce_grad": lambda x, y: dc.cross_entropy_and_grad(x, y)[1],
        "ce_row": dc.cross_entropy,
    }
    return f"{dc.__version__} ({dc.backend()})", ops, dict


def load_divcore_one_thread():
    """divcore's functions with its OpenMP threads set to one around each call: the
    single-core speed of the kernels, in the same run as the rest."""
    version, ops, prepare = load_divcore()
    dc = _import_divcore()

    def one_thread(fn):
        def call(*args):
            before = dc.get_num_threads()
            dc.set_num_threads(1)
            try:
                return fn(*args)
            finally:
                dc.set_num_threads(before)
        return call

    return version, {op: one_thread(fn) for op, fn in ops.items() if op != "ce_row"}, prepare


def np_logsumexp(x):
    m = x.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))[..., 0]


def np_log_softmax(x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _np_ce_grad(log_softmax):
    """The gradient of the mean CE w.r.t. the logits: (softmax(x) - onehot(y)) / N."""
    def grad(x, y):
        g = np.exp(log_softmax(x))
        g[np.arange(len(y)), y] -= 1
        g /= len(y)
        return g
    return grad


def load_numpy():
    ops = {
        "ce_labels": lambda x, y: (np_logsumexp(x)
                                   - np.take_along_axis(x, y[:, None], axis=-1)[:, 0]).mean(),
        "ce_probs": lambda x, p: -(p * np_log_softmax(x)).sum(axis=-1).mean(),
        "kl_logits": _kl_from_log_softmax(np_log_softmax),
        "log_softmax": np_log_softmax,
        "logsumexp": np_logsumexp,
        "ce_grad": _np_ce_grad(np_log_softmax),
        "ce_row": lambda x, y: np_logsumexp(x) - x[y],
    }
    return np.__version__, ops, dict


def _kl_from_log_softmax(log_softmax):
    def kl(x, t):
        log_q, log_p = log_softmax(x), log_softmax(t)
        return (np.exp(log_p) * (log_p - log_q)).sum(axis=-1).mean()
    return kl


def load_scipy():
    import scipy
    from scipy.special import log_softmax, logsumexp

    ops = {
        "ce_labels": lambda x, y: (logsumexp(x, axis=-1)
                                   - np.take_along_axis(x, y[:, None], axis=-1)[:, 0]).mean(),
        "ce_probs": lambda x, p: -(p * log_softmax(x, axis=-1)).sum(axis=-1).mean(),
        "kl_logits": _kl_from_log_softmax(functools.partial(log_softmax, axis=-1)),
        "log_softmax": functools.partial(log_softmax, axis=-1),
        "logsumexp": functools.partial(logsumexp, axis=-1),
        "ce_grad": _np_ce_grad(functools.partial(log_softmax, axis=-1)),
        "ce_row": lambda x, y: logsumexp(x) - x[y],
    }
    return scipy.__version__, ops, dict


def load_torch():
    import torch
    import torch.nn.functional as F

    def no_grad(fn):  # forward timings without autograd, leaving the process's mode alone
        return torch.no_grad()(fn)

    def kl(x, t):
        return F.kl_div(F.log_softmax(x, dim=-1), F.log_softmax(t, dim=-1),
                        reduction="batchmean", log_target=True)

    def ce_grad(x, y):
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(F.cross_entropy(leaf, y), leaf)
        return grad

    ops = {
        "ce_labels": no_grad(F.cross_entropy),
        "ce_probs": no_grad(F.cross_entropy),
        "kl_logits": no_grad(kl),
        "log_softmax": no_grad(functools.partial(F.log_softmax, dim=-1)),
        "logsumexp": no_grad(functools.partial(torch.logsumexp, dim=-1)),
        "ce_grad": ce_grad,
        "ce_row": no_grad(F.cross_entropy),  # unbatched: logits (C,), a 0-d label tensor
    }

    def prepare(data):
        return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else torch.tensor(v)
                for k, v in data.items()}

    version = f"{torch.__version__} ({torch.get_num_threads()} threads)"
    return version, ops, prepare


LOADERS = {"divcore": load_divcore, "divcore 1 thread": load_divcore_one_thread,
           "numpy": load_numpy, "scipy": load_scipy, "torch": load_torch}


def load(names):
    """{name: (version, ops, prepare)} for those that import; {name: reason} for the rest."""
    loaded, missing = {}, {}
    for name in names:
        try:
            loaded[name] = LOADERS[name]()
        except Exception as exc:  # ImportError, or a broken install (OSError, ...)
            missing[name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return loaded, missing


# --------------------------------------------------------------------------- data

def make_data(op, n, c, dtype, rng):
    """Inputs for one operation: logits x, and the target the operation reads."""
    data = {"x": (rng.standard_normal((n, c), dtype=np.float64) * 3).astype(dtype)}
    needs = OPS[op][1]
    if "labels" in needs:
        data["labels"] = rng.integers(0, c, size=n, dtype=np.int64)
    if "label" in needs:
        data["x"] = data["x"][0]
        data["label"] = int(rng.integers(0, c))
    if "probs" in needs:
        z = rng.standard_normal((n, c)) * 3
        z = np.exp(z - z.max(axis=-1, keepdims=True))
        data["probs"] = (z / z.sum(axis=-1, keepdims=True)).astype(dtype)
        del z
    if "teacher" in needs:
        data["teacher"] = (rng.standard_normal((n, c)) * 3).astype(dtype)
    return data


def bytes_read(op, data):
    return sum(data[k].nbytes for k in OPS[op][1] if isinstance(data[k], np.ndarray))


# --------------------------------------------------------------------------- timing

def measure(fn, repeat, min_time):
    """(median seconds per call, the first call's result)."""
    result = fn()  # warm-up; its value is checked against divcore's
    number, elapsed = 1, 0.0
    while True:  # like timeit.autorange: find a loop count that runs long enough
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time / 10 or number >= 10**6:
            break
        number *= 10
    number = max(1, min(10**6, math.ceil(number * min_time / max(elapsed, 1e-9))))
    times = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            times.append((time.perf_counter() - t0) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return statistics.median(times), result


def as_numpy(value):
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().numpy()
    return np.asarray(value, dtype=np.float64)


def mismatch(result, expected, dtype):
    """None if result agrees with divcore's, else the largest relative difference."""
    a, b = as_numpy(result), as_numpy(expected)
    if a.shape != b.shape:
        return f"shape {a.shape} != {b.shape}"
    if a.ndim and len(a) > 64:  # compare a sample of rows; whole outputs can be GiBs
        rows = np.linspace(0, len(a) - 1, 64).astype(np.intp)
        a, b = a[rows], b[rows]
    rtol = 1e-3 if dtype == np.float32 else 1e-9
    scale = np.maximum(np.abs(b), 1.0)
    worst = float(np.max(np.abs(a - b) / scale)) if a.size else 0.0
    return None if worst <= rtol else f"max rel diff {worst:.2g}"


def fmt_time(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < 4 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def run_case(op, shape, dtype, impls, args, rng, notes, per_row=False):
    """Time every implementation on one (operation, shape, dtype); return table rows."""
    data = make_data(op, shape[0], shape[-1], dtype, rng)
    nbytes = bytes_read(op, data)
    shape_text = str(tuple(shape))
    timings = []
    expected = None
    for name, (_, ops, prepare) in impls.items():
        if op not in ops:
            continue
        arrays = prepare(data)
        fn = functools.partial(ops[op], *(arrays[k] for k in OPS[op][1]))
        seconds, result = measure(fn, args.repeat, args.min_time)
        if name == "divcore":
            expected = result
        elif expected is not None:
            problem = mismatch(result, expected, dtype)
            if problem:
                notes.append(f"{OPS[op][0]} {shape_text} {np.dtype(dtype).name}: {name} "
                             f"disagrees with divcore ({problem})")
        del result, arrays, fn
        timings.append((name, seconds))
    del expected, data
    base = dict(timings).get("divcore")
    rows = []
    for name, seconds in timings:
        row = [OPS[op][0], shape_text, np.dtype(dtype).name, name, fmt_time(seconds)]
        if per_row:
            row.append(f"{seconds / shape[0] * 1e9:.1f}")
        if len(shape) > 1 or per_row:
            row.append(f"{nbytes / seconds / 1e9:.2f}")
        row.append(f"{seconds / base:.2f}×" if base else "-")
        rows.append(row)
    print(f"  {OPS[op][0]:<24} {shape_text:<14} {np.dtype(dtype).name:<8} done",
          file=sys.stderr, flush=True)
    return rows


# --------------------------------------------------------------------------- memory

def peak_rss_mib():
    """This process's peak resident memory in MiB, and the counter it came from.

    On Linux, ru_maxrss is carried over from the parent through fork + exec (the kernel
    folds the parent's high-water mark into the child's), so a child of a parent holding
    GiBs would see no growth at all; VmHWM in /proc/self/status is the same high-water
    mark for this process's own address space, reset by exec. Elsewhere: ru_maxrss.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10, "VmHWM"  # kB
    except (OSError, ValueError, IndexError):
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (rss / 2**20 if sys.platform == "darwin" else rss / 2**10), "ru_maxrss"


def memory_child(impl, op, n, c):
    """In a fresh process: build the input, one call, print the peak-memory growth."""
    loaded, missing = load([impl])
    if missing:
        print(json.dumps({"error": missing[impl]}))
        return 0
    _, ops, prepare = loaded[impl]
    data = {}
    x = np.zeros((n, c), dtype=np.float32)
    x.fill(0.5)
    x[:, ::3] = 2.0  # not all equal; in place
    data["x"] = x
    if "labels" in OPS[op][1]:
        data["labels"] = np.arange(n, dtype=np.int64) % c
    if "probs" in OPS[op][1]:
        data["probs"] = np.zeros((n, c), dtype=np.float32)
        data["probs"].fill(1.0 / c)
    if "teacher" in OPS[op][1]:
        data["teacher"] = np.zeros((n, c), dtype=np.float32)
        data["teacher"].fill(0.25)
    arrays = prepare(data)
    fn = ops[op]
    before, counter = peak_rss_mib()
    fn(*(arrays[k] for k in OPS[op][1]))
    after, _ = peak_rss_mib()
    print(json.dumps({"before": before, "after": after, "counter": counter,
                      "input": bytes_read(op, data) / 2**20}))
    return 0


def memory_rows(impl_names, shape, notes):
    """Table rows, and the name of the peak-memory counter the children read."""
    rows, counters = [], set()
    for op in MEMORY_OPS:
        for impl in impl_names:
            cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", impl, op,
                   str(shape[0]), str(shape[1])]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            lines = proc.stdout.strip().splitlines()
            try:
                if proc.returncode:
                    raise ValueError(f"exit status {proc.returncode}")
                out = json.loads(lines[-1])
            except (ValueError, IndexError) as exc:
                tail = (proc.stderr.strip().splitlines() or [str(exc)])[-1]
                notes.append(f"memory, {OPS[op][0]}, {impl}: failed ({tail})")
                continue
            if "error" in out:
                continue
            counters.add(out["counter"])
            growth = out["after"] - out["before"]
            rows.append([OPS[op][0], str(tuple(shape)), "float32", impl,
                         f"{out['input']:.0f}", f"{growth:.1f}",
                         f"{growth / out['input']:.2f}"])
            print(f"  memory {OPS[op][0]:<22} {impl:<8} done", file=sys.stderr, flush=True)
    return rows, "/".join(sorted(counters)) or "peak RSS"


# --------------------------------------------------------------------------- report

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line(loaded, missing):
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    parts = [platform.platform(), cpu_model(),
             f"{os.cpu_count()} cores ({usable} usable)",
             f"Python {platform.python_version()}"]
    parts += [f"{name} {loaded[name][0]}" for name in IMPLEMENTATIONS if name in loaded]
    parts += [f"{name} not available" for name in IMPLEMENTATIONS if name in missing]
    return "Machine: " + " | ".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller large case (512, 32000), fewer repeats")
    parser.add_argument("--repeat", type=int, default=None,
                        help="timed repeats per measurement (default 7, 3 with --quick)")
    parser.add_argument("--only", nargs="+", choices=BATCH_OPS, metavar="OP",
                        help="time only these operations (of: %(choices)s), on the "
                             "large rows, and skip the other sections")
    parser.add_argument("--memory-child", nargs=4, metavar=("IMPL", "OP", "N", "C"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        impl, op, n, c = args.memory_child
        return memory_child(impl, op, int(n), int(c))
    if args.repeat is None:
        args.repeat = 3 if args.quick else 7
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.min_time = 0.02 if args.quick else 0.1

    loaded, missing = load(IMPLEMENTATIONS)
    if "divcore" not in loaded:
        print(f"bench.py: cannot import divcore ({missing['divcore']}); "
              "run `python -m pip install .` first", file=sys.stderr)
        return 2
    if _import_divcore().backend() != "compiled":
        print("bench.py: divcore is running on the pure-Python reference backend; "
              "these sizes would take hours. Build the compiled core (`python -m pip "
              "install .`) and unset DIVCORE_BACKEND.", file=sys.stderr)
        return 2

    rng = np.random.default_rng(0)
    notes = []
    large = (512, 32000) if args.quick else (4096, 32000)
    memory_shape = (512, 32768) if args.quick else (4096, 32768)  # 64 / 512 MiB float32

    print(machine_line(loaded, missing))
    print(f"\nMedian of {args.repeat} repeats (time.perf_counter). GB/s = input bytes read "
          "/ time. vs divcore = time / divcore's time.")

    print(f"\n### Vocabulary-sized rows {large}\n")
    rows = [row for dtype in (np.float32, np.float64) for op in (args.only or BATCH_OPS)
            for row in run_case(op, large, dtype, loaded, args, rng, notes)]
    print(table(["operation", "shape", "dtype", "implementation", "median time", "GB/s",
                 "vs divcore"], rows), flush=True)
    if args.only:
        return 0

    print("\n### Many short rows (200000, 10)\n")
    rows = [row for dtype in (np.float32, np.float64) for op in BATCH_OPS
            for row in run_case(op, (200000, 10), dtype, loaded, args, rng, notes,
                                per_row=True)]
    print(table(["operation", "shape", "dtype", "implementation", "median time", "ns/row",
                 "GB/s", "vs divcore"], rows), flush=True)

    print("\n### One call on one row (C = 10, a Python int label)\n")
    rows = [row for dtype in (np.float32, np.float64)
            for row in run_case("ce_row", (10,), dtype, loaded, args, rng, notes)]
    print(table(["operation", "shape", "dtype", "implementation", "time per call",
                 "vs divcore"], rows), flush=True)

    print("\n### Latency of ordinary small calls\n")
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    import latency  # benchmarks/latency.py, beside this file
    latency.run(args.repeat)

    print("\n### Fractions of the memory limit\n")
    import memlimit  # benchmarks/memlimit.py: the C probe and every operation against it
    memlimit.run(args.quick, args.repeat)
    memlimit.run_short(args.repeat, 20000 if args.quick else 200000)

    print("\n### row_stats: one read for every statistic\n")
    import bench_row_stats  # benchmarks/bench_row_stats.py: row_stats vs one CE pass, torch
    bench_row_stats.run(args.quick, args.repeat)

    print("\n### Distillation: a top-k teacher and row_stats against one CE pass and torch\n")
    import bench_distill  # benchmarks/bench_distill.py
    bench_distill.run(args.quick, args.repeat)

    mib = memory_shape[0] * memory_shape[1] * 4 / 2**20
    print(f"\n### Peak memory of one call, {mib:.0f} MiB float32 logits {memory_shape}\n")
    rows, counter = memory_rows([name for name in IMPLEMENTATIONS
                                 if name in loaded and name != "divcore 1 thread"],
                                memory_shape, notes)
    print(f"Growth of the peak resident size ({counter}) across one call, in a fresh process "
          "per row (input built beforehand with np.zeros + fill). Reduced results (mean), "
          "except logsumexp (one value per row).\n")
    print(table(["operation", "shape", "dtype", "implementation", "input MiB",
                 "peak growth MiB", "growth / input"], rows))

    if notes:
        print("\nNotes:")
        for note in notes:
            print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
