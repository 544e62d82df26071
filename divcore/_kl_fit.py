"""Fit a unimodal model to a bimodal target by forward and by reverse KL.

The classic picture of the two directions (used by `divcore demo`, its --plot figure and
the guide's figure): on a grid of points x_i, the target p is a mixture of two bumps and
the model is one discretised Gaussian,

    q_i = softmax(z)_i,   z_i = -(x_i - mu)^2 / (2 sigma^2).

Minimising the forward KL(p || q) (what cross-entropy training does) makes q cover all of
p's mass: one wide bump between the modes. Minimising the reverse KL(q || p) puts q where p
is large and nowhere else: it picks one mode. The gradient with respect to the logits z
comes from divcore (`kl_divergence_and_grad`); the chain rule to (mu, log sigma) is

    dz_i/dmu = (x_i - mu) / sigma^2,   dz_i/dlog(sigma) = (x_i - mu)^2 / sigma^2.
"""
from typing import NamedTuple

import numpy as np

import divcore

GRID = np.linspace(-6.0, 6.0, 241)
MODES = ((-2.5, 0.6, 0.5), (2.5, 0.6, 0.5))  # (centre, width, weight) of each bump
START = (0.8, 0.0)  # (mu, log sigma): off-centre, so the reverse fit falls into one mode


class Fit(NamedTuple):
    mu: float
    sigma: float
    kl: float  # the minimised divergence at the end
    model_logits: np.ndarray


def target_logits(grid=GRID, modes=MODES):
    """log of the unnormalised mixture density on the grid (p = softmax of it): kept in
    log space so that the far tails are tiny but never 0, and the reverse KL finite."""
    terms = [np.log(w) - np.log(s) - 0.5 * ((grid - c) / s) ** 2 for c, s, w in modes]
    return np.logaddexp.reduce(terms, axis=0)


def model_logits(mu, log_sigma, grid=GRID):
    return -0.5 * ((grid - mu) / np.exp(log_sigma)) ** 2


def fit(reverse, steps=1500, learning_rate=0.05, grid=GRID, modes=MODES, start=START):
    """Fit (mu, sigma) by Adam on KL(p || q) (reverse=False) or KL(q || p)."""
    t = target_logits(grid, modes)
    params = np.array(start, dtype=np.float64)
    moment1 = np.zeros(2)
    moment2 = np.zeros(2)
    beta1, beta2 = 0.9, 0.999
    for step in range(1, steps + 1):
        mu, log_sigma = params
        z = model_logits(mu, log_sigma, grid)
        _, dz = divcore.kl_divergence_and_grad(z, t, target_type="logits", reverse=reverse)
        d = grid - mu
        inv_var = np.exp(-2.0 * log_sigma)
        grad = np.array([np.dot(dz, d * inv_var), np.dot(dz, d * d * inv_var)])
        moment1 = beta1 * moment1 + (1 - beta1) * grad
        moment2 = beta2 * moment2 + (1 - beta2) * grad * grad
        m_hat = moment1 / (1 - beta1 ** step)
        v_hat = moment2 / (1 - beta2 ** step)
        params = params - learning_rate * m_hat / (np.sqrt(v_hat) + 1e-12)
    mu, log_sigma = params
    z = model_logits(mu, log_sigma, grid)
    kl = float(divcore.kl_divergence(z, t, target_type="logits", reverse=reverse))
    # round(., 12) + 0.0: a centre of -1e-17 prints as 0.00, not -0.00
    return Fit(round(float(mu), 12) + 0.0, float(np.exp(log_sigma)), kl, z)
