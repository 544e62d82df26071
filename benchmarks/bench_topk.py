#!/usr/bin/env python3
"""TopK distillation losses (SPEC §7) against the plain cross-entropy pass and torch, in one run.

    PYTHONPATH=. python benchmarks/bench_topk.py [--quick] [--repeat N] [--threads N]

At (4096, 32000) float32 (--quick: (512, 32000)) with k = 64 teacher classes per row:
  ce_labels     divcore.cross_entropy(logits, labels): one log-sum-exp pass, the reference
  topk_kl       divcore.kl_divergence(logits, TopK(...)) for each tail: one log-sum-exp pass
                plus O(k) gathers per row
  torch         the same bucket KL as a torch composite: log_softmax, gather, the rest's
                log1mexp, sum (torch only if it imports)
  topk_grad     divcore.kl_divergence_and_grad(logits, TopK(...)) (bucket)
Each time is the median over N repeats: wall clock, or with --threads 1 the thread's CPU
time (time.thread_time), which a shared machine's other load does not inflate. Ratios: topk_kl / ce_labels (the
budget is 1.2) and topk_kl / torch (below 1: divcore is faster).
"""
import argparse
import statistics
import time

import numpy as np

import divcore


CLOCK = time.perf_counter  # time.thread_time with --threads 1 (see main)


def _timed(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = CLOCK()
        fn()
        times.append(CLOCK() - t0)
    return statistics.median(times)


def _torch_bucket_kl(torch, logits, idx, lp):
    """KL over K ∪ {rest} with torch ops: log_softmax + gather + log1mexp of the rest."""
    lq = torch.log_softmax(logits, dim=-1).gather(-1, idx).double()
    lp = lp.double()
    lq_r = torch.log(-torch.expm1(torch.logsumexp(lq, -1).clamp(max=-1e-300)))
    lp_sum = torch.logsumexp(lp, -1)
    lp_r = torch.log(-torch.expm1(lp_sum.clamp(max=-1e-300)))
    p, p_r = lp.exp(), lp_r.exp()
    kl = (p * (lp - lq)).sum(-1) + torch.where(p_r > 0, p_r * (lp_r - lq_r),
                                                 torch.zeros_like(p_r))
    return kl.clamp(min=0).mean()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--k", type=int, default=64)
    args = ap.parse_args()
    global CLOCK
    if args.threads:
        divcore.set_num_threads(args.threads)
    if args.threads == 1:
        CLOCK = time.thread_time
    n_rows, n_cls, k = (512 if args.quick else 4096), 32000, args.k
    print(f"divcore {divcore.__version__} from {divcore.__file__} ({divcore.backend()}, "
          f"{divcore.get_num_threads()} threads); ({n_rows}, {n_cls}) float32, k = {k}")
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((n_rows, n_cls), dtype=np.float32) * 3).astype(np.float32)
    labels = rng.integers(0, n_cls, n_rows)
    teacher = logits + rng.standard_normal((n_rows, n_cls), dtype=np.float32)
    topk = divcore.TopK.from_logits(teacher, k)
    base = _timed(lambda: divcore.cross_entropy(logits, labels), args.repeat)
    print(f"{'ce_labels':24s} {base * 1e3:9.2f} ms   1.00x")
    kl = {}
    for tail in ("bucket", "drop", "renormalize"):
        kl[tail] = _timed(lambda: divcore.kl_divergence(logits, topk, tail=tail), args.repeat)
        print(f"{'topk_kl ' + tail:24s} {kl[tail] * 1e3:9.2f} ms   {kl[tail] / base:.2f}x "
              "of ce_labels")
    g = _timed(lambda: divcore.kl_divergence_and_grad(logits, topk), max(3, args.repeat // 2))
    print(f"{'topk_grad bucket':24s} {g * 1e3:9.2f} ms   {g / base:.2f}x of ce_labels")
    try:
        import torch
    except ImportError:
        print("torch: not installed")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    tl = torch.from_numpy(logits)
    ti = torch.from_numpy(topk.indices)
    tv = torch.from_numpy(topk.values)
    ref = float(_torch_bucket_kl(torch, tl, ti, tv))
    ours = float(divcore.kl_divergence(logits, topk))
    t = _timed(lambda: _torch_bucket_kl(torch, tl, ti, tv), args.repeat)
    print(f"{'torch composite bucket':24s} {t * 1e3:9.2f} ms   divcore/torch = "
          f"{kl['bucket'] / t:.2f}   (values {ours:.6g} vs {ref:.6g})")
    print(f"ratio topk_kl(bucket)/ce_labels = {kl['bucket'] / base:.3f}; "
          f"topk_kl(bucket)/torch = {kl['bucket'] / t:.3f}")


if __name__ == "__main__":
    main()
