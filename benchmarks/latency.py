"""Latency of ordinary small calls: divcore against PyTorch (one thread) and against the
floor of any numpy call on the same array (np.add.reduce(x, axis=-1)), in one run.

    python benchmarks/latency.py [--repeat 7]

float32 (32, 10) inputs (a 1-d row of 10 for the first case). Each time is the best of
`repeat` runs of a loop of calls (the machine is shared and noisy: the best run is the one
least disturbed). Targets: every divcore call <= 1/3 of torch's time and <= 2x the numpy
floor.
"""
import argparse
import sys
import timeit

import numpy as np

import divcore


def best_time(fn, repeat):
    """Seconds per call: the best of `repeat` loops of about 20 ms each."""
    number = 1
    while timeit.timeit(fn, number=number) < 0.02:
        number *= 2
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def cases():
    """(name, divcore call, torch call or None, numpy floor call)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 10)).astype(np.float32)
    x10 = x[0].copy()
    y = np.arange(32) % 10
    y_ignored = y.copy()
    y_ignored[::4] = -100
    p = rng.random((32, 10)).astype(np.float32)
    p /= p.sum(axis=1, keepdims=True)
    t = rng.standard_normal((32, 10)).astype(np.float32)
    w = np.linspace(0.5, 2.0, 10).astype(np.float32)
    b = (rng.random((32, 10)) < 0.5).astype(np.float32)
    floor = (lambda: np.add.reduce(x, axis=-1))
    floor1 = (lambda: np.add.reduce(x10, axis=-1))
    dc = divcore
    out = [
        ("cross_entropy(row, np.int64(3), temperature=1.0)",
         lambda: dc.cross_entropy(x10, np.int64(3), temperature=1.0), "ce_row", floor1),
        ("cross_entropy(X, Y)", lambda: dc.cross_entropy(x, y), "ce", floor),
        ("cross_entropy(X, Y, weight=w)", lambda: dc.cross_entropy(x, y, weight=w), "ce_w",
         floor),
        ("cross_entropy(X, Y) with ignored rows", lambda: dc.cross_entropy(x, y_ignored),
         "ce_ignored", floor),
        ("cross_entropy(X, Y, label_smoothing=0.1)",
         lambda: dc.cross_entropy(x, y, label_smoothing=0.1), "ce_smooth", floor),
        ("cross_entropy(X, P)", lambda: dc.cross_entropy(x, p), "ce_probs", floor),
        ("kl_divergence(X, T, target_type='logits')",
         lambda: dc.kl_divergence(x, t, target_type="logits"), "kl_logits", floor),
        ("kl_divergence(X, P, reverse=True)", lambda: dc.kl_divergence(x, p, reverse=True),
         "kl_reverse", floor),
        ("js_divergence(X, P)", lambda: dc.js_divergence(x, p), "js", floor),
        ("decompose(X, P)", lambda: dc.decompose(x, p), "decompose", floor),
        ("cross_entropy_and_grad(X, Y)", lambda: dc.cross_entropy_and_grad(x, y), "ce_grad",
         floor),
        ("log_softmax(X)", lambda: dc.log_softmax(x), "log_softmax", floor),
        ("softmax(X, temperature=2)", lambda: dc.softmax(x, temperature=2.0), "softmax_t",
         floor),
        ("logsumexp(X)", lambda: dc.logsumexp(x), "logsumexp", floor),
        ("entropy(X)", lambda: dc.entropy(x), "entropy", floor),
        ("binary_cross_entropy(X, B)", lambda: dc.binary_cross_entropy(x, b), "bce", floor),
    ]
    return out, dict(x=x, x10=x10, y=y, y_ignored=y_ignored, p=p, t=t, w=w, b=b)


def torch_calls(data):
    """The same computations in torch (one thread), by the cases' keys; {} without torch."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return {}
    torch.set_num_threads(1)
    T = {k: torch.from_numpy(v) for k, v in data.items()}
    X, Y, P = T["x"], T["y"], T["p"]

    def ce_grad():
        z = X.detach().requires_grad_()
        loss = F.cross_entropy(z, Y)
        loss.backward()
        return loss, z.grad

    def decompose():
        lq = F.log_softmax(X, -1)
        h = -(P * torch.log(P)).sum(-1)
        ce = -(P * lq).sum(-1)
        return ce.mean(), h.mean(), (ce - h).mean()

    def js():
        q = F.softmax(X, -1)
        m = 0.5 * (P + q)
        lm = torch.log(m)
        return (0.5 * (P * (torch.log(P) - lm)).sum(-1)
                + 0.5 * (q * (torch.log(q) - lm)).sum(-1)).mean()

    def entropy():
        lq = F.log_softmax(X, -1)
        return -(lq.exp() * lq).sum(-1)

    def kl_reverse():
        lq = F.log_softmax(X, -1)
        return (lq.exp() * (lq - torch.log(P))).sum(-1).mean()

    return {
        "ce_row": lambda: F.cross_entropy(T["x10"], torch.tensor(3)),
        "ce": lambda: F.cross_entropy(X, Y),
        "ce_w": lambda: F.cross_entropy(X, Y, weight=T["w"]),
        "ce_ignored": lambda: F.cross_entropy(X, T["y_ignored"]),
        "ce_smooth": lambda: F.cross_entropy(X, Y, label_smoothing=0.1),
        "ce_probs": lambda: F.cross_entropy(X, P),
        "kl_logits": lambda: F.kl_div(F.log_softmax(X, -1), F.log_softmax(T["t"], -1),
                                      reduction="batchmean", log_target=True),
        "kl_reverse": kl_reverse,
        "js": js,
        "decompose": decompose,
        "ce_grad": ce_grad,
        "log_softmax": lambda: F.log_softmax(X, -1),
        "softmax_t": lambda: F.softmax(X / 2.0, -1),
        "logsumexp": lambda: torch.logsumexp(X, -1),
        "entropy": entropy,
        "bce": lambda: F.binary_cross_entropy_with_logits(X, T["b"]),
    }


def run(repeat=7, out=sys.stdout):
    """Print the latency table; return its rows (name, divcore s, torch s, floor s)."""
    rows = []
    items, data = cases()
    torch_fns = torch_calls(data)
    for name, fn, key, floor in items:
        ours = best_time(fn, repeat)
        theirs = best_time(torch_fns[key], repeat) if key in torch_fns else None
        rows.append((name, ours, theirs, best_time(floor, repeat)))
    print(f"\nLatency, float32 (32, 10) (a row of 10 for the first), best of {repeat}; "
          "torch with 1 thread; floor = np.add.reduce(x, axis=-1) on the same array",
          file=out)
    print("\n| call | divcore µs | torch µs | divcore / torch (≤ 0.33) | floor µs "
          "| divcore / floor (≤ 2) |", file=out)
    print("|---|---:|---:|---:|---:|---:|", file=out)
    for name, ours, theirs, floor in rows:
        vs_torch = f"{ours / theirs:.2f}" if theirs else "—"
        t_us = f"{theirs * 1e6:.2f}" if theirs else "—"
        print(f"| `{name}` | {ours * 1e6:.2f} | {t_us} | {vs_torch} | {floor * 1e6:.2f} "
              f"| {ours / floor:.2f} |", file=out)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"divcore {divcore.__version__} from {divcore.__file__}, backend {divcore.backend()}")
    run(args.repeat)


if __name__ == "__main__":
    main()
