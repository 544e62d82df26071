#!/usr/bin/env python3
"""Distillation and scoring (SPEC §7) in one run: a TopK KL and row_stats against one plain
cross-entropy pass over the same logits and against the equivalent torch composites.

    PYTHONPATH=. python benchmarks/bench_distill.py [--quick] [--repeat N] [--threads N]

float32 (4096, 32000) logits (--quick: (512, 32000)), int labels, a teacher's top-64:
  ce            divcore.cross_entropy(x, y, reduction="none"): one log-sum-exp pass
  topk_kl       divcore.kl_divergence(x, TopK(top-64)) (bucket tail)       budget 1.2x ce
  stats         divcore.row_stats(x, y)                                    budget 1.2x ce
  stats_k20     divcore.row_stats(x, y, k=20)                              budget 2x ce
and, in torch (same threads), what each replaces:
  torch_topk_kl   log_softmax, gather of the k classes, the rest's log1mexp, sum
  torch_stats     log_softmax, gather of the label, logsumexp
  torch_stats_k20 the same plus topk(20)
Best of N repeats, each call in turn (the machine's load hits them alike). The ratios
divcore / torch are printed as "torch is N x slower" (the target is >= 10).
"""
import argparse
import time

import numpy as np

import divcore

K_TEACHER, K_STATS = 64, 20


def best_times(calls, repeat):
    best = {name: float("inf") for name in calls}
    for _ in range(repeat):
        for name, fn in calls.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def torch_calls(torch, x, y, topk):
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    idx, lp = torch.from_numpy(topk.indices), torch.from_numpy(topk.values)

    def topk_kl():
        with torch.no_grad():
            lq = torch.log_softmax(xt, dim=1).gather(1, idx)
            p = lp.exp()
            lq_r = torch.log(-torch.expm1(torch.logsumexp(lq, 1).clamp(max=-1e-30)))
            lp_r = torch.log(-torch.expm1(torch.logsumexp(lp, 1).clamp(max=-1e-30)))
            kl = (p * (lp - lq)).sum(1) + lp_r.exp() * (lp_r - lq_r)
            return kl.mean()

    def stats():
        with torch.no_grad():
            ls = torch.log_softmax(xt, dim=1)
            return ls.gather(1, yt[:, None]), torch.logsumexp(xt, 1)

    def stats_k20():
        with torch.no_grad():
            ls = torch.log_softmax(xt, dim=1)
            return ls.gather(1, yt[:, None]), torch.logsumexp(xt, 1), torch.topk(ls, K_STATS, 1)

    return {"torch_topk_kl": topk_kl, "torch_stats": stats, "torch_stats_k20": stats_k20}


def run(quick=False, repeat=5, threads=0):
    if threads:
        divcore.set_num_threads(threads)
    shape = (512, 32000) if quick else (4096, 32000)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32) * 2
    y = rng.integers(0, shape[1], shape[0])
    teacher = x + rng.standard_normal(shape, dtype=np.float32)
    topk = divcore.TopK.from_logits(teacher, K_TEACHER)
    calls = {
        "ce": lambda: divcore.cross_entropy(x, y, reduction="none"),
        "topk_kl": lambda: divcore.kl_divergence(x, topk),
        "stats": lambda: divcore.row_stats(x, y),
        "stats_k20": lambda: divcore.row_stats(x, y, k=K_STATS),
    }
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(divcore.get_num_threads())
        calls.update(torch_calls(torch, x, y, topk))
        got = float(calls["torch_topk_kl"]())
        assert np.isclose(got, divcore.kl_divergence(x, topk), rtol=1e-4), got
    best = best_times(calls, repeat)
    ce = best["ce"]
    print(f"float32 {shape}, int labels, teacher top-{K_TEACHER}; "
          f"{divcore.get_num_threads()} threads (divcore and torch); best of {repeat}\n")
    print(f"| {'call':<16} | {'time':>10} | {'vs one CE pass':>14} | {'budget':>6} | "
          f"{'torch is N x slower':>19} |")
    print(f"|{'-' * 18}|{'-' * 12}|{'-' * 16}|{'-' * 8}|{'-' * 21}|")
    for name, budget in (("ce", ""), ("topk_kl", "1.2x"), ("stats", "1.2x"),
                         ("stats_k20", "2x")):
        t = best[name]
        slower = best.get(f"torch_{name}")
        vs = f"{slower / t:18.1f}x" if slower else f"{'':>19}"
        print(f"| {name:<16} | {t * 1e3:7.1f} ms | {t / ce:13.2f}x | {budget:>6} | {vs} |")
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="(512, 32000) instead")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="0: divcore's default")
    args = parser.parse_args(argv)
    run(args.quick, args.repeat, args.threads)


if __name__ == "__main__":
    main()
