"""Draw the figures of docs/guide.md (needs matplotlib: pip install "divcore[plot]").

    python docs/figures/make_figures.py          # writes the PNGs next to this file

Every number in the figures is computed by divcore; the script is deterministic (fixed
seeds), so re-running it after a change shows what moved.
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# The checkout's divcore (run as a script, only docs/figures/ would be on the path)
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import divcore  # noqa: E402
from divcore import _plot  # noqa: E402
DPI = 110


def decomposition(plt, path):
    """H(p, q) = H(p) + KL(p || q) as stacked bars, one model q, targets from sharp to flat."""
    logits = np.array([2.0, 1.0, 0.1, -1.0])
    names, targets = [], []
    for eps in (0.0, 0.1, 0.3, 0.6, 1.0):
        # label smoothing of the label 0: from one-hot (eps = 0) to uniform (eps = 1)
        targets.append((1 - eps) * np.eye(4)[0] + eps / 4)
        names.append(f"one-hot\nsmoothed {eps:g}" if eps else "one-hot")
    targets.append(divcore.softmax(logits))
    names.append("p = q")
    d = divcore.decompose(np.tile(logits, (len(targets), 1)), np.array(targets),
                          reduction="none")
    names[-2] = "uniform"
    x = np.arange(len(targets))
    fig, ax = plt.subplots(figsize=(7.5, 3.8), layout="constrained")
    ax.bar(x, d.entropy, color="0.75", label="H(p): the target's own entropy")
    ax.bar(x, d.kl_divergence, bottom=d.entropy, color="tab:blue",
           label="KL(p || q): what the model can still reduce")
    for xi, ce in zip(x, d.cross_entropy):
        ax.text(xi, ce + 0.03, f"H(p,q) = {ce:.2f}", ha="center", fontsize=8)
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("nats")
    ax.set_ylim(0, 1.2 * float(np.max(d.cross_entropy)))
    ax.set_title("Cross-entropy = entropy of the target + KL divergence "
                 "(q = softmax([2, 1, 0.1, -1]))", fontsize=10)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def forward_reverse(plt, path):
    _plot.plot_forward_reverse(path)


def minibatch_entropy(plt, path, steps=300, batch=32, classes=10, features=8, seed=0):
    """Train a softmax regression on soft targets whose entropy varies from example to
    example (a linear teacher on inputs of varying size). The update is the same whether
    one calls it CE or KL (identical gradients); the reported minibatch CE carries the
    batch's mean H(p), which jumps from batch to batch, while the KL goes to 0."""
    rng = np.random.default_rng(seed)
    teacher = rng.standard_normal((features, classes)) * 1.5
    weights = np.zeros((features, classes))
    ce_curve, kl_curve, h_curve = [], [], []
    for _ in range(steps):
        # inputs of very different sizes: sharp targets for large x, flat ones for small
        x = rng.standard_normal((batch, features)) * rng.uniform(0.1, 1.5, size=(batch, 1))
        p = divcore.softmax(x @ teacher)  # a linear student can match it exactly
        ce, grad = divcore.cross_entropy_and_grad(x @ weights, p)
        d = divcore.decompose(x @ weights, p)
        ce_curve.append(float(ce))
        kl_curve.append(float(d.kl_divergence))
        h_curve.append(float(d.entropy))
        weights -= 1.0 * x.T @ grad  # grad is already divided by the batch size
    steps_axis = np.arange(1, steps + 1)
    fig, ax = plt.subplots(figsize=(7.5, 3.8), layout="constrained")
    ax.plot(steps_axis, ce_curve, color="tab:orange", lw=1.2,
            label="minibatch cross-entropy H(p, q)")
    ax.plot(steps_axis, h_curve, color="0.5", lw=1, ls=":",
            label="minibatch entropy H(p) (no model can go below it)")
    ax.plot(steps_axis, kl_curve, color="tab:blue", lw=1.5,
            label="minibatch KL(p || q) = H(p, q) - H(p)")
    ax.set_xlabel("training step (the same updates for both losses)")
    ax.set_ylabel("nats")
    ax.set_ylim(0, 1.3 * max(ce_curve))  # room for the legend
    ax.set_title("Soft targets of varying entropy: CE's noise is the targets' entropy",
                 fontsize=10)
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


FIGURES = {
    "decomposition.png": decomposition,
    "forward_reverse_kl.png": forward_reverse,
    "minibatch_entropy.png": minibatch_entropy,
}


def main(out_dir=HERE):
    plt = _plot._pyplot()
    for name, draw in FIGURES.items():
        path = os.path.join(out_dir, name)
        draw(plt, path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
