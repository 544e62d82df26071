"""The reference backend's entry points: each takes a Plan (divcore._rules) and runs the
plain-Python row functions of divcore._refkernels on it, with the same results and the
same names as the compiled core's entry points (divcore/_core.pyx)."""
from . import _refkernels as _k

bce_flat = _k.bce_flat


def lse_rows(plan):
    return _k.lse_rows(plan.rows, plan.where, plan.temperature)


def log_softmax_rows(plan, out, exponentiate):
    return _k.log_softmax_rows(plan.rows, plan.where, plan.temperature, out, exponentiate)


def ce_labels_rows(plan, want_entropy):
    return _k.ce_labels_rows(plan.rows, plan.labels, plan.where, plan.temperature,
                             plan.weight, plan.ignore_index, plan.smoothing, want_entropy)


def soft_rows(plan, want):
    return _k.soft_rows(plan.rows, plan.target, plan.target_kind, plan.where,
                        plan.temperature, plan.weight, plan.smoothing, plan.reverse,
                        plan.validate, plan.tol, want)


def entropy_rows(plan):
    return _k.entropy_rows(plan.rows, plan.target_kind, plan.where, plan.temperature,
                           plan.tol)


def ce_labels_grad_rows(plan, grad):
    return _k.ce_labels_grad_rows(plan.rows, plan.labels, plan.where, plan.temperature,
                                  plan.weight, plan.ignore_index, plan.smoothing,
                                  plan.reduction, plan.log_base, grad)


def soft_grad_rows(plan, loss, grad):
    return _k.soft_grad_rows(plan.rows, plan.target, plan.target_kind, plan.where,
                             plan.temperature, plan.weight, plan.smoothing, plan.reverse,
                             plan.validate, plan.tol, loss, plan.reduction, plan.log_base,
                             grad)


def js_rows(plan):
    return _k.js_rows(plan.rows, plan.target, plan.target_kind, plan.where,
                      plan.temperature, plan.beta, plan.validate, plan.tol)
