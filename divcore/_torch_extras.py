"""divcore.torch's SPEC §7 extras, as differentiable torch operations around the registered
losses: soft-capping before them, the z-loss and per-row sample weights after them (on the
losses' per-row values), and TopK targets.

Everything here is made of torch operations, so torch.compile, torch.func and gradients of
any order follow from torch's own rules. The argument rules are divcore._rules' (the
same words as the numpy functions).

A TopK target (SPEC §7) is compared on its coarse-grained distributions: with q =
softmax(z / T) over the C classes and K the row's indices,

    bucket:       p̃ = (p_K, p_r),  q̃ = (q_K, q_r),  p_r = 1 - Σ_K p,  q_r = 1 - Σ_K q
    renormalize:  p̃ = p_K / P,      q̃ = q_K / Q
    drop:         p̃ = p_K / P,      q̃ = q_K (not a distribution: forward KL and CE only)

and then KL(p̃ ‖ q̃) = Σ p̃ (log p̃ - log q̃), CE = -Σ p̃ log q̃, H = -Σ p̃ log p̃, or the JS
divergence of p̃ and q̃. log q_r = log1mexp(logsumexp_K log q): no cancellation when the
top-k hold almost all the mass.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import torch

from . import _rules

_LN2 = math.log(2.0)


def soft_capped(x: torch.Tensor, c: float) -> torch.Tensor:
    """c·tanh(x / c); -inf stays -inf (a masked class stays masked)."""
    capped = torch.tanh(x / c) * c
    return torch.where(torch.isneginf(x), x, capped)


def sample_weights(sample_weight: Any, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """Per-row weights broadcast to the rows' shape; checked as the numpy functions check
    them (not inside a compiled graph, where the values are not known)."""
    s = sample_weight if isinstance(sample_weight, torch.Tensor) else torch.as_tensor(
        sample_weight)
    if not torch.compiler.is_compiling():
        _rules.sample_weight_rows(s.detach().cpu().numpy(), tuple(shape))
    return torch.broadcast_to(s.to(dtype), shape)


def weighted(values: torch.Tensor, row_weight: Optional[torch.Tensor],
             sample_weight: Optional[torch.Tensor], reduction: str) -> torch.Tensor:
    """As divcore.api._weighted: s_i·l_i ('none'), Σ s_i·l_i, or Σ s_i·l_i / Σ s_i·r_i."""
    if sample_weight is not None:
        values = torch.where(sample_weight != 0, values * sample_weight,
                             torch.zeros((), dtype=values.dtype))
        row_weight = sample_weight if row_weight is None else sample_weight * row_weight
    if reduction == "none":
        return values
    total = values.sum()
    if reduction == "sum":
        return total
    return total / (row_weight.sum() if row_weight is not None else values.numel())


def _log1mexp(a: torch.Tensor) -> torch.Tensor:
    """log(1 - e^a) for a <= 0 (Mächler's two branches), -inf at a = 0. Each branch not
    taken is fed a safe value, so that no gradient becomes 0·inf = nan."""
    near = a > -_LN2
    inside = a < 0
    safe = torch.full_like(a, -1.0)
    a_near = torch.where(near & inside, a, safe)
    a_far = torch.where(near, safe, a)
    value = torch.where(near, torch.log(-torch.expm1(a_near)), torch.log1p(-torch.exp(a_far)))
    return torch.where(inside, value, torch.full_like(a, -math.inf))


def _xlogy_diff(p: torch.Tensor, logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """p (log p - log q), 0 where p = 0 (whatever log q is)."""
    zero = p == 0
    d = torch.where(zero, torch.zeros_like(logp), logp - torch.where(zero, torch.zeros_like(logq),
                                                                      logq))
    return torch.where(zero, torch.zeros_like(p), p * d)


def _plogq(p: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    zero = p == 0
    return torch.where(zero, torch.zeros_like(p), p * torch.where(zero, torch.zeros_like(logq),
                                                                   logq))


def topk_coarse(x: torch.Tensor, topk: Any, dim: int, tail: str, temperature: float,
                where: Optional[torch.Tensor]):
    """(p̃, log p̃, log q̃) of each row, the rows' shape plus one column per class kept
    (k, plus the rest for 'bucket'), in x's compute dtype."""
    idx, vals = topk.indices, topk.values
    if not isinstance(idx, torch.Tensor):
        idx = torch.as_tensor(idx)
    if not isinstance(vals, torch.Tensor):
        vals = torch.as_tensor(vals)
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    z = torch.movedim(x, dim, -1).to(dtype) / temperature
    if where is not None:
        z = z.masked_fill(~torch.movedim(torch.broadcast_to(where, x.shape), dim, -1),
                          -math.inf)
    n = z.shape[-1]
    if idx.shape[:-1] != z.shape[:-1] or vals.shape != idx.shape:
        raise ValueError(f"target: TopK indices of shape {tuple(idx.shape)} and values of "
                         f"shape {tuple(vals.shape)} must both be the input's shape without "
                         f"the class dim plus k, {tuple(z.shape[:-1])} + (k,)")
    if idx.is_floating_point() or idx.dtype == torch.bool:
        raise TypeError("target: TopK indices must be integers")
    idx = idx.long()
    if not torch.compiler.is_compiling() and idx.numel():
        _check_indices(idx, n)
    lse = torch.logsumexp(z, dim=-1, keepdim=True)
    logq = torch.gather(z, -1, idx) - lse
    vals = vals.to(dtype)
    if topk.kind == "log_probs":
        logp, p = vals, torch.exp(vals)
    else:
        p, logp = vals, torch.log(vals)
    if tail == "bucket":
        log_pr = _log1mexp(torch.clamp_max(torch.logsumexp(logp, -1, keepdim=True), 0.0))
        log_qr = _log1mexp(torch.clamp_max(torch.logsumexp(logq, -1, keepdim=True), 0.0))
        return (torch.cat([p, torch.exp(log_pr)], -1), torch.cat([logp, log_pr], -1),
                torch.cat([logq, log_qr], -1))
    log_P = torch.logsumexp(logp, -1, keepdim=True)
    logp_hat = logp - log_P
    if tail == "renormalize":
        logq = logq - torch.logsumexp(logq, -1, keepdim=True)
    return torch.exp(logp_hat), logp_hat, logq


def _check_indices(idx: torch.Tensor, n: int) -> None:
    flat = idx.reshape(-1, idx.shape[-1])
    bad = (flat < 0) | (flat >= n)
    if bool(bad.any()):
        row = int(bad.any(-1).nonzero()[0, 0])
        value = int(flat[row][bad[row]][0])
        raise IndexError(f"target: TopK index {value} at row {row} is out of range for {n} "
                         f"classes (valid indices are 0..{n - 1})")
    s = torch.sort(flat, -1).values
    dup = (s[:, 1:] == s[:, :-1]).any(-1) if s.shape[-1] > 1 else torch.zeros(
        s.shape[0], dtype=torch.bool)
    if bool(dup.any()):
        row = int(dup.nonzero()[0, 0])
        raise ValueError(f"target: TopK indices of row {row} repeat a class (each row's k "
                         "indices must be distinct)")


def topk_rows(x: torch.Tensor, topk: Any, dim: int, tail: str, temperature: float,
              where: Optional[torch.Tensor], what: str, reverse: bool = False,
              beta: float = 0.5) -> torch.Tensor:
    """Per-row CE ('ce'), entropy ('h'), KL ('kl') or JS ('js') against a TopK target."""
    _rules.check_tail(tail, topk)
    if (reverse or what == "js") and tail == "drop":
        raise ValueError("tail='drop' compares the renormalised teacher with the student over "
                         "all classes, which is not a distribution on the teacher's classes: "
                         "reverse KL and JS need tail='bucket' or 'renormalize'")
    p, logp, logq = topk_coarse(x, topk, dim, tail, temperature, where)
    if what == "ce":
        return -_plogq(p, logq).sum(-1)
    if what == "h":
        return -_plogq(p, logp).sum(-1)
    if what == "kl":
        if reverse:
            return torch.clamp_min(_xlogy_diff(torch.exp(logq), logq, logp).sum(-1), 0.0)
        return torch.clamp_min(_xlogy_diff(p, logp, logq).sum(-1), 0.0)
    q = torch.exp(logq)
    m = beta * p + (1 - beta) * q
    logm = torch.log(m)
    js = beta * _xlogy_diff(p, logp, logm).sum(-1) + (1 - beta) * _xlogy_diff(
        q, logq, logm).sum(-1)
    return torch.clamp_min(js, 0.0)
