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
Each time is the median over N repeats; a repeat runs the step enough times to last a few
tens of milliseconds. "ratio" is divcore's time / torch's (below 1: divcore is faster).
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

import divcore
import divcore.torch as dct


def timeit(fn, repeat, min_time=0.05):
    fn()
    fn()
    n, t = 1, 0.0
    while True:  # how many calls make one repeat last min_time
        start = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - start
        if t >= min_time or n >= 1 << 20:
            break
        n *= 2
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - start) / n)
    return statistics.median(times)


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

    t_ours, t_torch = timeit(ours, repeat), timeit(theirs, repeat)
    t_numpy = timeit(lambda: divcore.cross_entropy_and_grad(xn, yn), repeat)
    return {"divcore.torch_us": t_ours * 1e6, "torch_us": t_torch * 1e6,
            "numpy_call_us": t_numpy * 1e6, "bridge_us": (t_ours - t_numpy) * 1e6,
            "ratio": t_ours / t_torch}


def case_mlp(repeat, compiled):
    torch.manual_seed(0)
    x = torch.randn(64, 784)
    y = torch.randint(0, 10, (64,))
    out = {}
    for name, loss in (("divcore", dct.cross_entropy), ("torch", F.cross_entropy)):
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

        out[name] = timeit(step, repeat)
    return {"divcore_us": out["divcore"] * 1e6, "torch_us": out["torch"] * 1e6,
            "ratio": out["divcore"] / out["torch"]}


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
        t_ours = timeit(run(dct.cross_entropy), repeat, min_time=0.2)
        t_torch = timeit(run(F.cross_entropy), repeat, min_time=0.2)
        res[mode] = {"divcore_ms": t_ours * 1e3, "torch_ms": t_torch * 1e3,
                     "divcore_GBps": gb / t_ours, "torch_GBps": gb / t_torch,
                     "ratio": t_ours / t_torch}
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
    if args.threads:
        torch.set_num_threads(args.threads)
        divcore.set_num_threads(args.threads)
    results = {"torch": torch.__version__, "threads": torch.get_num_threads(),
               "repeat": repeat}
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
