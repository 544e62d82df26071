"""`divcore demo --plot FILE.png`: the forward vs reverse KL figure (needs matplotlib,
the `plot` extra). The fits themselves are in divcore._kl_fit and need only numpy."""
import numpy as np

import divcore

from . import _kl_fit


class PlotUnavailable(Exception):
    """matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'divcore[plot]'") from None
    matplotlib.use("Agg")  # files only: no display needed, none opened
    import matplotlib.pyplot as plt
    return plt


def draw_forward_reverse(ax, forward, reverse):
    """Target p and the two fitted models on the axes `ax`."""
    x = _kl_fit.GRID
    dx = x[1] - x[0]
    p = divcore.softmax(_kl_fit.target_logits()) / dx  # a density, so the grid drops out
    ax.fill_between(x, p, color="0.82", label="target p (two modes)")
    ax.plot(x, divcore.softmax(forward.model_logits) / dx, color="tab:blue", lw=2,
            label=f"forward KL(p||q) fit: mass-covering\n"
                  f"  mu={forward.mu:.2f}, sigma={forward.sigma:.2f}, KL={forward.kl:.3f}")
    ax.plot(x, divcore.softmax(reverse.model_logits) / dx, color="tab:red", lw=2, ls="--",
            label=f"reverse KL(q||p) fit: mode-seeking\n"
                  f"  mu={reverse.mu:.2f}, sigma={reverse.sigma:.2f}, KL={reverse.kl:.3f}")
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.set_ylim(0, None)
    ax.legend(loc="upper left", fontsize=8, frameon=False)


def plot_forward_reverse(path, forward=None, reverse=None):
    """Write the figure of a unimodal q fitted to a bimodal p by forward and reverse KL."""
    plt = _pyplot()
    forward = forward or _kl_fit.fit(reverse=False)
    reverse = reverse or _kl_fit.fit(reverse=True)
    fig, ax = plt.subplots(figsize=(7.5, 4.0), layout="constrained")
    draw_forward_reverse(ax, forward, reverse)
    ax.set_title("One Gaussian fitted to two modes")
    ax.set_ylim(0, 1.45 * float(np.max(divcore.softmax(reverse.model_logits)))
                / (_kl_fit.GRID[1] - _kl_fit.GRID[0]))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
