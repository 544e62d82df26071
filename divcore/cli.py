"""The `divcore` command (also `python -m divcore`).

    divcore [demo]      print H(p,q), H(p), KL(p||q) for a few rows and check
                        H(p,q) = H(p) + KL(p||q); exit status 1 if it fails to hold
    divcore --version   print the version and the live backend
"""
import argparse
import math

import numpy as np

import divcore

INF = math.inf

# (what the row shows, logits, target, keywords for decompose)
DEMO_CASES = [
    ("hard label y=0", [2.0, 1.0, 0.1], 0, {}),
    ("soft target", [2.0, 1.0, 0.1], [0.7, 0.2, 0.1], {}),
    ("label smoothing 0.1", [2.0, 1.0, 0.1], 0, {"label_smoothing": 0.1}),
    ("teacher logits, T=2", [2.0, 1.0, 0.1], [1.5, 1.2, -0.3],
     {"target_type": "logits", "temperature": 2.0}),
    ("masked class, 0*log 0", [2.0, -INF, 0.5], [0.8, 0.0, 0.2], {}),
    ("confident and right", [40.0, 0.0, 0.0], 0, {}),
]


def _fmt(values):
    if np.ndim(values) == 0:
        return str(values)
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def demo():
    """Print the decomposition for DEMO_CASES; return 0 if CE = H + KL held for all."""
    print(f"divcore {divcore.__version__}, backend: {divcore.backend()}")
    print("q = softmax(logits / T), p = target;  H(p,q) = H(p) + KL(p||q)\n")
    head = f"{'case':<24}{'logits':<18}{'target':<18}{'H(p,q)':>13}{'H(p)':>13}" \
           f"{'KL(p||q)':>13}{'|CE-(H+KL)|':>13}"
    print(head)
    print("-" * len(head))
    ok = True
    for name, logits, target, kw in DEMO_CASES:
        d = divcore.decompose(np.array(logits), np.array(target), **kw)
        ce, h, kl = float(d.cross_entropy), float(d.entropy), float(d.kl_divergence)
        gap = abs(ce - (h + kl))
        ok &= gap <= 1e-12 * max(1.0, abs(ce))
        print(f"{name:<24}{_fmt(logits):<18}{_fmt(target):<18}"
              f"{ce:>13.6g}{h:>13.6g}{kl:>13.6g}{gap:>13.2g}")
    print("\nWith p fixed, H(p) is a constant: H(p,q) and KL(p||q) have the same minimiser")
    print("and the same gradient in the logits.  The last row's loss is ~2*exp(-40), kept")
    print("exact (not rounded to 0) by the log1p path.")
    print("CE = H + KL holds" if ok else "CE = H + KL FAILED for at least one row")
    return 0 if ok else 1


def main(argv=None):
    """Entry point of the `divcore` console script; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="divcore",
        description="Cross-entropy, KL divergence and entropy on raw logits.")
    parser.add_argument("--version", action="version",
                        version=f"divcore {divcore.__version__} ({divcore.backend()} backend)")
    commands = parser.add_subparsers(dest="command", metavar="{demo}")
    commands.add_parser("demo", help="show H(p,q) = H(p) + KL(p||q) on a few rows (default)")
    parser.parse_args(argv)  # "demo" is the only command, and the default
    return demo()
