#!/usr/bin/env python3
"""divcore.torch against torch's own losses, in one run.

    python benchmarks/bench_torch.py [--quick] [--repeat N] [--threads N] [--json PATH]

Cases (CPU, public APIs only):
  small     cross-entropy forward + backward at (32, 10), float32: divcore.torch against
            F.cross_entropy; also divcore's numpy call alone (cross_entropy_and_grad), so
            the bridge's own cost (divcore.torch minus the numpy call) is visible.
  mlp       one training step of a small MLP (784-256-10, batch 64, SGD): zero_grad,
            loss, backward, step; eager, and with the model + loss under
            torch.compile(fullgraph=True) (compiled once, before timing).
  bf16      cross-entropy with labels at (4096, 32000) in bfloat16, forward alone and
            forward + backward, against F.cross_entropy on the same tensor.
Each time is the median over N repeats (the best repeat as *_best); a repeat runs the step
enough times to last a few tens of milliseconds, divcore's and torch's repeats interleaved.
With --threads 1 the clock is the thread's CPU time (time.thread_time), which a shared
machine's other load does not inflate; otherwise wall time. "ratio" is divcore's time /
torch's of the medians, "ratio_best" of the best repeats (below 1: divcore is faster);
"speedup" is torch's median / divcore's.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

import divcore
import divcore.torch as dct


CLOCK = time.perf_counter  # time.thread_time with --threads 1 (see main)


def _calls_per_repeat(fn, min_time):
    fn()
    fn()
    n = 1
    while True:
        start = CLOCK()
        for _ in range(n):
            fn()
        if CLOCK() - start >= min_time or n >= 1 << 20:
            return n
        n *= 2


class Time(float):
    """Seconds per call: the median over the rounds (the float's value), with the best
    round kept as `.best`."""

    def __new__(cls, rounds):
        t = super().__new__(cls, statistics.median(rounds))
        t.best = min(rounds)
        return t


def timeit(*fns, repeat, min_time=0.05):
    """Seconds per call of each function (a Time: median and best over `repeat` rounds),
    the functions interleaved within each round (so a shared machine's load drifts over
    all alike)."""
    counts = [_calls_per_repeat(fn, min_time) for fn in fns]
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, n, out in zip(fns, counts, times):
            start = CLOCK()
            for _ in range(n):
                fn()
            out.append((CLOCK() - start) / n)
    return [Time(t) for t in times]


def ratio(ours, theirs):
    """divcore's time / torch's: of the medians, and of the best rounds."""
    return {"ratio": ours / theirs, "ratio_best": ours.best / theirs.best}


def case_small(repeat):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 10, generator=gen).requires_grad_()
    y = torch.randint(0, 10, (32,), generator=gen)
    xn, yn = x.detach().numpy(), y.numpy()

    def ours():
        x.grad = None
        dct.cross_entropy(x, y).backward()

    def theirs():
        x.grad = None
        F.cross_entropy(x, y).backward()

    t_ours, t_torch, t_numpy = timeit(
        ours, theirs, lambda: divcore.cross_entropy_and_grad(xn, yn), repeat=repeat)
    return {"divcore.torch_us": t_ours * 1e6, "torch_us": t_torch * 1e6,
            "numpy_call_us": t_numpy * 1e6, "bridge_us": (t_ours - t_numpy) * 1e6,
            "divcore.torch_best_us": t_ours.best * 1e6, "torch_best_us": t_torch.best * 1e6,
            **ratio(t_ours, t_torch)}


def case_mlp(repeat, compiled):
    torch.manual_seed(0)
    x = torch.randn(64, 784)
    y = torch.randint(0, 10, (64,))
    steps = []
    for loss in (dct.cross_entropy, F.cross_entropy):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                    torch.nn.Linear(256, 10))
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)

        def forward(model, x, y, loss=loss):
            return loss(model(x), y)

        if compiled:
            forward = torch.compile(forward, fullgraph=True)

        def step(model=model, opt=opt, forward=forward):
            opt.zero_grad()
            forward(model, x, y).backward()
            opt.step()

        steps.append(step)
    ours, theirs = timeit(*steps, repeat=repeat)
    return {"divcore_us": ours * 1e6, "torch_us": theirs * 1e6,
            "divcore_best_us": ours.best * 1e6, "torch_best_us": theirs.best * 1e6,
            **ratio(ours, theirs)}


def case_bf16(repeat, n, c):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, generator=gen).to(torch.bfloat16).requires_grad_()
    y = torch.randint(0, c, (n,), generator=gen)
    gb = x.numel() * x.element_size() / 1e9
    res = {"shape": [n, c]}
    for mode in ("forward", "forward+backward"):
        def run(loss):
            def f():
                x.grad = None
                if mode == "forward":
                    with torch.no_grad():
                        loss(x, y)
                else:
                    loss(x, y).backward()
            return f
        t_ours, t_torch = timeit(run(dct.cross_entropy), run(F.cross_entropy),
                                 repeat=repeat, min_time=0.2)
        res[mode] = {"divcore_ms": t_ours * 1e3, "torch_ms": t_torch * 1e3,
                     "divcore_best_ms": t_ours.best * 1e3, "torch_best_ms": t_torch.best * 1e3,
                     "divcore_GBps": gb / t_ours, "torch_GBps": gb / t_torch,
                     **ratio(t_ours, t_torch), "speedup": t_torch / t_ours}
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller bf16 case, 3 repeats")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch and divcore threads")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    repeat = 3 if args.quick else args.repeat
    global CLOCK
    if args.threads:
        torch.set_num_threads(args.threads)
        divcore.set_num_threads(args.threads)
    if args.threads == 1:  # all work on this thread: its CPU time ignores other load
        CLOCK = time.thread_time
    results = {"torch": torch.__version__, "threads": torch.get_num_threads(),
               "clock": CLOCK.__name__, "repeat": repeat}
    results["small (32, 10) fwd+bwd"] = case_small(repeat)
    results["mlp step, eager"] = case_mlp(repeat, compiled=False)
    if not args.no_compile:
        results["mlp step, compiled"] = case_mlp(repeat, compiled=True)
    n, c = (1024, 32000) if args.quick else (4096, 32000)
    results["bf16 CE"] = case_bf16(repeat, n, c)
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
