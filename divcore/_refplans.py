"""The reference backend's entry points: each takes a Plan (divcore._rules) and runs the
plain-Python row functions of divcore._refkernels on it, with the same results and the
same names as the compiled core's entry points (divcore/_core.pyx)."""
from dataclasses import replace

import numpy as np

from . import _refkernels as _k
from ._rules import is_half

bce_flat = _k.bce_flat


def _widened(plan):
    """The reference reads (N, C) float rows: blocks of rows flattened, half-precision
    storage widened (exactly) to the float32 the compiled core computes in."""
    changes = {}
    for name in ("rows", "target", "where"):
        a = getattr(plan, name)
        if a is None:
            continue
        if a.ndim == 3:  # blocks of rows: the reference walks (N, C) rows
            a = a.reshape(-1, a.shape[-1])
        if is_half(a.dtype):
            a = a.astype(np.float32)
        if a is not getattr(plan, name):
            changes[name] = a
    return replace(plan, **changes) if changes else plan


def lse_rows(plan):
    plan = _widened(plan)
    return _k.lse_rows(plan.rows, plan.where, plan.temperature)


def log_softmax_rows(plan, out, exponentiate):
    plan = _widened(plan)
    return _k.log_softmax_rows(plan.rows, plan.where, plan.temperature, out, exponentiate)


def ce_labels_rows(plan, want_entropy):
    plan = _widened(plan)
    return _k.ce_labels_rows(plan.rows, plan.labels, plan.where, plan.temperature,
                             plan.weight, plan.ignore_index, plan.smoothing, want_entropy)


def soft_rows(plan, want):
    plan = _widened(plan)
    return _k.soft_rows(plan.rows, plan.target, plan.target_kind, plan.where,
                        plan.temperature, plan.weight, plan.smoothing, plan.reverse,
                        plan.validate, plan.tol, want)


def entropy_rows(plan):
    plan = _widened(plan)
    return _k.entropy_rows(plan.rows, plan.target_kind, plan.where, plan.temperature,
                           plan.tol)


def ce_labels_grad_rows(plan, grad):
    plan = _widened(plan)
    return _k.ce_labels_grad_rows(plan.rows, plan.labels, plan.where, plan.temperature,
                                  plan.weight, plan.ignore_index, plan.smoothing,
                                  plan.reduction, plan.log_base, grad)


def soft_grad_rows(plan, loss, grad):
    plan = _widened(plan)
    return _k.soft_grad_rows(plan.rows, plan.target, plan.target_kind, plan.where,
                             plan.temperature, plan.weight, plan.smoothing, plan.reverse,
                             plan.validate, plan.tol, loss, plan.reduction, plan.log_base,
                             grad)


def js_rows(plan):
    plan = _widened(plan)
    return _k.js_rows(plan.rows, plan.target, plan.target_kind, plan.where,
                      plan.temperature, plan.beta, plan.validate, plan.tol)


def topk_rows(plan, want):
    """Per-row losses against a TopK target (divcore._reftopk): a dict of the names in
    `want` ("ce", "h", "kl" — KL(q ‖ p) with plan.reverse — "js")."""
    from . import _reftopk, _topk
    plan = _widened(plan)
    res = _reftopk.topk_rows(plan.rows, plan.where, plan.temperature, plan.topk_indices,
                             plan.topk_values, plan.topk_kind, plan.tail, plan.beta)
    _topk.check_rows(plan, res["psum"], res["nbad"])
    return _topk.row_results(plan, want, res)


def topk_grad_rows(plan, loss, grad):
    """Per-row "ce" or "kl" against a TopK target, and each row's gradient of it (scaled
    by 1/(T·log_base)) into grad."""
    from . import _reftopk, _topk
    plan = _widened(plan)
    values, psum, nbad = _reftopk.topk_grad_rows(
        plan.rows, plan.where, plan.temperature, plan.topk_indices, plan.topk_values,
        plan.topk_kind, plan.tail, loss, plan.log_base, grad)
    _topk.check_rows(plan, psum, nbad)
    return values


def row_stats_rows(plan, k):
    from . import _refrowstats
    plan = _widened(plan)
    return _refrowstats.row_stats_rows(plan.rows, plan.labels, plan.where, plan.temperature,
                                       k)
