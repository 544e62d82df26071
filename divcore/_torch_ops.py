"""divcore's losses registered as torch operators (namespace `divcore`), and their gradients.

Design:
- Each loss is one custom op, `torch.ops.divcore.<name>`, whose CPU kernel calls divcore's
  public numpy functions on the tensors' memory and returns (loss, grad): `grad` is the
  fused gradient with respect to the logits (cross-entropy, KL) when asked, else empty.
- A fake kernel gives the shapes and dtypes, so torch.compile captures the op whole.
- The autograd formula scales the saved fused gradient (one multiply) when that is all
  that is needed; otherwise (a floating target, create_graph, torch.func) it computes the
  gradients with the closed forms below, in differentiable torch operations, so second
  derivatives are exact.
- A vmap rule runs the op once per batch entry.
- Three doors to the same kernel and backward (`call` picks one): the op under
  torch.compile; `_Func`, an autograd.Function with setup_context and a vmap rule, under
  torch.func (a custom op's registered autograd does not reach torch.func's transforms in
  torch 2.13); `_Eager`, a plain autograd.Function, otherwise (a custom op's dispatch
  costs more than a small loss).
- And a fast path in front of them for the common cross-entropy call
  (`plain_cross_entropy`: a dense float tensor with the classes last, int64 labels,
  torch's keywords only, in eager mode): one compiled call for loss and gradient on the
  tensors' memory (divcore/_torch_front.pxi), one autograd.Function (`_PlainCE`); the
  same kernel call, so the same bits, as the doors above.

The closed forms, per row, with q = softmax(z / T) over the unmasked classes, p the
target distribution and h = p·∂l/∂p = ∂l/∂log p:
    cross-entropy  l = -Σ a log q, a = w·p' (p' the smoothed target):
                   ∂l/∂z = (Σa·q - a)/T,  ∂l/∂p = -(1-ε)·w·log q
    KL(p ‖ q)      ∂/∂z = (Σp·q - p)/T,   ∂/∂p = log p + 1 - log q
    KL(q ‖ p)      ∂/∂z = q·(log q - log p - KL)/T,  ∂/∂p = -q/p  (h = -q)
    JS_β           ∂/∂z = (h_q - q·Σh_q)/T with h_q = (1-β)·q·log(q/m),  ∂/∂p = β·log(p/m)
    entropy        ∂H/∂z = -q·(log q + H)/T;  probs: -(log p + 1);  log_probs: -p·(s + 1)
    BCE            ∂/∂x = w·[(1-y)σ(x) - pw·y·σ(-x)],  ∂/∂y = w·[pw·sp(-x) - sp(x)],
                   ∂/∂w = pw·y·sp(-x) + (1-y)·sp(x),  ∂/∂pw = w·y·sp(-x)
and through the target's parametrisation: probs ∂l/∂p; log_probs h; logits (h - p·Σh)/T.
"""
from __future__ import annotations

import math
import sys
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

import divcore

NO_IGNORE = -(2 ** 63)  # ignore_index=None in the op schema (an int)


def _numpy_api() -> Any:
    """divcore's numpy API as divcore.torch holds it (the tests swap divcore.reference in
    there to run the bridge on the pure-Python backend)."""
    bridge = sys.modules.get("divcore.torch")
    return divcore if bridge is None else bridge.divcore


# ----------------------------------------------------------- tensors and arrays

def as_array(t: Optional[torch.Tensor]) -> Any:
    """A CPU tensor as the numpy array over its memory (no copy), for divcore's kernels.

    The one place where a dtype is looked at: float16 is numpy's float16; bfloat16, which
    numpy lacks, is viewed as ml_dtypes' bfloat16 (the same memory: divcore reads it as
    stored and computes in float32), or widened to a float32 copy without ml_dtypes."""
    if t is None:
        return None
    if t.requires_grad:
        t = t.detach()
    if t.is_neg():  # a negative view (as z.conj().imag): its values, not its memory
        t = t.resolve_neg()
    if t.dtype == torch.bfloat16:
        bf16 = _bfloat16()
        return t.float().numpy() if bf16 is None else t.view(torch.int16).numpy().view(bf16)
    return t.numpy()


_BF16: list = []


def _bfloat16() -> Any:
    """ml_dtypes' bfloat16 numpy dtype, or None without ml_dtypes (imported once)."""
    if not _BF16:
        try:
            import ml_dtypes
            _BF16.append(np.dtype(ml_dtypes.bfloat16))
        except ImportError:  # pragma: no cover - ml_dtypes comes with most ML stacks
            _BF16.append(None)
    return _BF16[0]


def _as_tensor(a: Any) -> torch.Tensor:
    """A numpy result (array or scalar) as a tensor, sharing memory where it can."""
    arr = np.asarray(a)
    if not (arr.flags.writeable and arr.dtype.isnative):
        arr = arr.copy()
    return torch.from_numpy(arr)


def loss_dtype(dtype: torch.dtype) -> torch.dtype:
    """The loss's dtype: float64 stays, other floats compute and return float32 (the
    numpy API's rule), integer logits give float64."""
    if dtype == torch.float64 or not dtype.is_floating_point:
        return torch.float64
    return torch.float32


def _lead_shape(x: torch.Tensor, dim: int) -> list:
    return [n for i, n in enumerate(x.shape) if i != dim]


# --------------------------------------------------------------- the loss table

class _Spec:
    """One loss: its op's tensor and scalar arguments (schema order), the numpy function
    computing its value, and the fused value+gradient function if divcore has one."""

    def __init__(self, name, tensors, params, fused=None):
        self.name, self.tensors, self.params, self.fused = name, tensors, params, fused
        self.tensor_names = [a.split()[-1] for a in tensors]
        self.param_names = [a.split()[-1] for a in params]
        self.schema = f"({', '.join(tensors + params)}) -> (Tensor, Tensor)"
        self.op: Any = None

    def split(self, args):
        k = len(self.tensors)
        return list(args[:k]), dict(zip(self.param_names, args[k:]))

    def keywords(self, tensors, p) -> dict:
        """The numpy function's keywords; those at their defaults are left out (the
        numpy API's plain path), the class dim becomes `axis` unless it is the last."""
        kw = dict(p)
        dim = kw.pop("dim", None)
        kw.pop("need_grad", None)
        if dim is not None and dim != tensors[0].dim() - 1:
            kw["axis"] = dim
        if kw.get("ignore_index") == NO_IGNORE:
            kw["ignore_index"] = None
        elif kw.get("ignore_index") == -100:
            del kw["ignore_index"]
        for name in ("base", "sum_tol"):
            if name in kw and kw[name] is None:
                del kw[name]
        for name, t in zip(self.tensor_names[2:], tensors[2:]):
            if t is not None:
                kw[name] = as_array(t)
        return kw

    def compute(self, tensors, p):
        """(loss, fused gradient or an empty tensor) from divcore's numpy functions."""
        x = tensors[0]
        if self.name == "cross_entropy" and _plain_labels(tensors, p):
            # the fast path's kernel call (the same call as below, without the keywords)
            out = _plain_kernel(_numpy_api(), x, tensors[1], p["reduction"],
                                None if p["ignore_index"] == NO_IGNORE else p["ignore_index"],
                                p["label_smoothing"], p["need_grad"])
            if not p["need_grad"]:
                return torch.from_numpy(out), x.new_empty(0)
            grad = torch.from_numpy(out[1])
            return torch.from_numpy(out[0]), grad if grad.dtype == x.dtype else grad.to(x.dtype)
        kw = self.keywords(tensors, p)
        if self.name == "entropy":
            args = (as_array(x),)
        else:
            args = (as_array(x), as_array(tensors[1]))
        if self.fused and p["need_grad"]:
            value, grad = getattr(_numpy_api(), self.fused)(*args, **kw)
            grad = torch.from_numpy(grad)  # a fresh array of divcore's
            return _as_tensor(value), grad if grad.dtype == x.dtype else grad.to(x.dtype)
        value = getattr(_numpy_api(), self.name)(*args, **kw)
        return _as_tensor(value), x.new_empty(0)

    def fake(self, tensors, p):
        x = tensors[0]
        if self.name == "binary_cross_entropy":
            lead = list(x.shape)
        else:
            lead = _lead_shape(x, p["dim"])
        shape = lead if p["reduction"] == "none" else []
        grad = torch.empty_like(x) if (p.get("need_grad") and self.fused) else x.new_empty(0)
        return x.new_empty(shape, dtype=loss_dtype(x.dtype)), grad


_COMMON = ["float temperature", "str reduction", "float? base"]
SPECS = {s.name: s for s in [
    _Spec("cross_entropy", ["Tensor input", "Tensor target", "Tensor? weight", "Tensor? where"],
          ["int dim", "str target_type", "int ignore_index", "float label_smoothing"]
          + _COMMON + ["bool validate", "float? sum_tol", "bool need_grad"],
          fused="cross_entropy_and_grad"),
    _Spec("kl_divergence", ["Tensor input", "Tensor target", "Tensor? where"],
          ["int dim", "str target_type", "bool reverse"] + _COMMON
          + ["bool validate", "float? sum_tol", "bool need_grad"],
          fused="kl_divergence_and_grad"),
    _Spec("js_divergence", ["Tensor input", "Tensor target", "Tensor? where"],
          ["int dim", "str target_type", "float beta"] + _COMMON
          + ["bool validate", "float? sum_tol"]),
    _Spec("entropy", ["Tensor input", "Tensor? target", "Tensor? where"],
          ["int dim", "str input_type"] + _COMMON + ["float? sum_tol"]),
    _Spec("binary_cross_entropy",
          ["Tensor input", "Tensor target", "Tensor? weight", "Tensor? pos_weight"],
          ["str reduction", "float? base"]),
]}


# ------------------------------------------------------ gradients in torch operations

def _log_q(x, where, dim, temperature):
    z = x / temperature
    if where is not None:
        z = z.masked_fill(~where, -math.inf)
    return torch.log_softmax(z, dim)


def _safe_log(p, log_p):
    """log p where p > 0, else 0 (so that 0·log 0 terms and their derivatives are 0)."""
    return torch.where(p > 0, log_p, torch.zeros_like(log_p))


def _along(v, dim, ndim):
    """A per-class vector shaped to broadcast along `dim` of an ndim tensor."""
    shape = [1] * ndim
    shape[dim] = -1
    return v.reshape(shape)


def _one_hot(labels, x, dim):
    """One-hot rows of `labels` in x's layout and dtype (no data-dependent checks, so
    vmap can batch it)."""
    classes = _along(torch.arange(x.shape[dim], device=x.device), dim, x.dim())
    return (labels.unsqueeze(dim) == classes).to(x.dtype)


def _target(t, kind, x, where, dim, temperature):
    """(p, log p) of a soft target (probs, log_probs, logits) in torch operations."""
    if kind == "logits":
        log_p = _log_q(t, where, dim, temperature)
        return log_p.exp(), log_p
    if kind == "log_probs":
        return t.exp(), t
    return t, torch.log(t)


def _through_kind(kind, d_p, h, p, dim, temperature):
    """∂l/∂target from the free partial ∂l/∂p (probs) or h = ∂l/∂log p."""
    if kind == "probs":
        return d_p
    if kind == "log_probs":
        return h
    return (h - p * h.sum(dim, keepdim=True)) / temperature


def _upstream(g, p, lead_shape, row_weight=None):
    """Per-row multiplier of the per-row gradients: the incoming gradient, the mean's
    denominator (rows, or Σ w_y over kept rows for labels) and 1/log(base)."""
    scale = 1.0 if p["base"] is None else 1.0 / math.log(p["base"])
    u = g * scale if p["reduction"] == "none" else (g * scale).expand(lead_shape)
    if p["reduction"] == "mean":
        if row_weight is None:
            n = 1
            for s in lead_shape:
                n *= s
            u = u / max(n, 1)
        else:
            den = row_weight.sum()
            u = torch.where(den > 0, u / torch.where(den > 0, den, 1), torch.zeros_like(u))
    return u


def _ce_or_kl_grads(spec, tensors, p, g, needs):
    """Gradients of cross_entropy / kl_divergence with respect to input and target."""
    x, t = tensors[0], tensors[1]
    where = tensors[3] if spec.name == "cross_entropy" else tensors[2]
    weight = tensors[2] if spec.name == "cross_entropy" else None
    dim, temp, kind = p["dim"], p["temperature"], p["target_type"]
    eps = p.get("label_smoothing", 0.0)
    lead = _lead_shape(x, dim)
    n_classes = x.shape[dim]
    if kind == "labels":
        kept = t != p.get("ignore_index", NO_IGNORE)
        y = torch.where(kept, t, torch.zeros_like(t)).long()
        x = torch.where(kept.unsqueeze(dim), x, torch.zeros_like(x))  # no NaN from ignored rows
        target = _one_hot(y, x, dim)
        log_target = torch.log(target)
        kept_f = kept.to(x.dtype)
        row_weight = kept_f if weight is None else kept_f * weight.to(x.dtype)[y]
        u = _upstream(g, p, lead, row_weight).unsqueeze(dim) * kept_f.unsqueeze(dim)
    else:
        target, log_target = _target(t, kind, x, where, dim, temp)
        u = _upstream(g, p, lead).unsqueeze(dim)
    log_q = _log_q(x, where, dim, temp)
    q = log_q.exp()
    out = [None] * len(tensors)
    if spec.name == "kl_divergence" and p["reverse"]:
        f = _safe_log(q, log_q - log_target)
        kl = (q * f).sum(dim, keepdim=True)
        if needs[0]:
            out[0] = q * (f - kl) / temp * u
        if needs[1]:
            d_p = torch.where(q > 0, -q / target, torch.zeros_like(q))
            out[1] = _through_kind(kind, d_p, -q, target, dim, temp) * u
        return out
    a = target
    if eps:
        m = torch.ones_like(x, dtype=torch.bool) if where is None else where.expand_as(x)
        c_eff = m.sum(dim, keepdim=True).to(x.dtype)
        a = (1.0 - eps) * target + eps * m.to(x.dtype) / c_eff
    if weight is not None:
        a = a * _along(weight.to(x.dtype), dim, x.ndim)
    if needs[0]:
        out[0] = (a.sum(dim, keepdim=True) * q - a) / temp * u
    if needs[1]:
        if spec.name == "cross_entropy":
            w = 1.0 if weight is None else _along(weight.to(x.dtype), dim, x.ndim)
            d_p = -(1.0 - eps) * w * log_q
            h = target * (-(1.0 - eps) * w * _safe_log(q, log_q))
        else:
            d_p = log_target + 1.0 - log_q
            h = target * (_safe_log(target, log_target) + 1.0 - _safe_log(q, log_q))
        out[1] = _through_kind(kind, d_p, h, target, dim, temp) * u
    return out


def _js_grads(spec, tensors, p, g, needs):
    x, t, where = tensors
    dim, temp, kind, beta = p["dim"], p["temperature"], p["target_type"], float(p["beta"])
    lead = _lead_shape(x, dim)
    out = [None] * 3
    if kind == "labels":
        target = _one_hot(t.long(), x, dim)
        log_target = torch.log(target)
    else:
        target, log_target = _target(t, kind, x, where, dim, temp)
    log_q = _log_q(x, where, dim, temp)
    q = log_q.exp()
    u = _upstream(g, p, lead).unsqueeze(dim)
    if not 0.0 < beta < 1.0:  # JS is identically 0
        return [torch.zeros_like(v) if (n and v is not None) else None
                for v, n in zip(tensors, needs)]
    log_m = torch.logaddexp(math.log(beta) + log_target, math.log1p(-beta) + log_q)
    if needs[0]:
        h_q = (1.0 - beta) * q * _safe_log(q, log_q - log_m)
        out[0] = (h_q - q * h_q.sum(dim, keepdim=True)) / temp * u
    if needs[1]:
        d_p = beta * (log_target - log_m)
        h_p = beta * target * _safe_log(target, log_target - log_m)
        out[1] = _through_kind(kind, d_p, h_p, target, dim, temp) * u
    return out


def _entropy_grads(spec, tensors, p, g, needs):
    x, _, where = tensors
    dim, temp, kind = p["dim"], p["temperature"], p["input_type"]
    u = _upstream(g, p, _lead_shape(x, dim)).unsqueeze(dim)
    out = [None] * 3
    if not needs[0]:
        return out
    if kind == "logits":
        log_q = _log_q(x, where, dim, temp)
        q = log_q.exp()
        lq = _safe_log(q, log_q)
        h = -(q * lq).sum(dim, keepdim=True)
        out[0] = -q * (lq + h) / temp * u
    elif kind == "log_probs":
        out[0] = -x.exp() * (x + 1.0) * u
    else:
        out[0] = -(torch.log(x) + 1.0) * u
    if where is not None:
        out[0] = torch.where(where, out[0], torch.zeros_like(out[0]))
    return out


def _bce_grads(spec, tensors, p, g, needs):
    x, y, w, pw = tensors
    y = y.to(x.dtype)
    w1 = torch.ones((), dtype=x.dtype) if w is None else w.to(x.dtype)
    pw1 = torch.ones((), dtype=x.dtype) if pw is None else pw.to(x.dtype)
    a, b = pw1 * y, 1.0 - y
    sp_neg, sp_pos = F.softplus(-x), F.softplus(x)
    zero = torch.zeros((), dtype=x.dtype)
    u = _upstream(g, p, list(x.shape))
    out = [None] * 4
    if needs[0]:
        out[0] = w1 * (b * torch.sigmoid(x) - a * torch.sigmoid(-x)) * u
    if needs[1]:
        out[1] = w1 * (pw1 * sp_neg - sp_pos) * u
    if needs[2]:
        out[2] = (torch.where(a != 0, a * sp_neg, zero)
                  + torch.where(b != 0, b * sp_pos, zero)) * u
    if needs[3]:
        out[3] = w1 * torch.where(y != 0, y * sp_neg, zero) * u
    for i in range(4):
        if out[i] is not None:
            out[i] = out[i].sum_to_size(tensors[i].shape)
    return out


_GRADS = {"cross_entropy": _ce_or_kl_grads, "kl_divergence": _ce_or_kl_grads,
          "js_divergence": _js_grads, "entropy": _entropy_grads,
          "binary_cross_entropy": _bce_grads}


def backward(spec, tensors, p, grad, g, needs):
    """The gradients of the reduced loss for each tensor argument (None where not needed).

    Fast path: only the logits need a gradient, from a loss with a fused kernel, and no
    graph is being built: the saved gradient times g. Otherwise the closed forms above in
    torch operations (differentiable again)."""
    x = tensors[0]
    if (spec.fused and grad is not None and grad.shape == x.shape and needs[0]
            and not any(needs[1:]) and not torch.is_grad_enabled()):
        if p["reduction"] == "none":
            g = g.unsqueeze(p["dim"])
        grad = grad * g
        return [grad if grad.dtype == x.dtype else grad.to(x.dtype)] + [None] * (len(tensors) - 1)
    x_c = x.to(torch.float64) if x.dtype == torch.float64 else x.float()
    work = [x_c] + [t for t in tensors[1:]]
    grads = _GRADS[spec.name](spec, work, p, g.to(x_c.dtype), needs)
    return [None if r is None else r.to(t.dtype) for r, t in zip(grads, tensors)]


# ---------------------------------------------------------- the ops, registered

def _register(spec: _Spec):
    def impl(*args):
        tensors, p = spec.split(args)
        return spec.compute(tensors, p)

    def fake(*args):
        tensors, p = spec.split(args)
        return spec.fake(tensors, p)

    def setup_context(ctx, inputs, output):
        tensors, p = spec.split(inputs)
        ctx.p = p
        ctx.n_tensors = len(tensors)
        ctx.save_for_backward(*tensors, output[1])
        ctx.mark_non_differentiable(output[1])

    def backward_rule(ctx, g, _unused):
        saved = ctx.saved_tensors
        tensors, grad = list(saved[:ctx.n_tensors]), saved[ctx.n_tensors]
        needs = tuple(ctx.needs_input_grad[:ctx.n_tensors])
        grads = backward(spec, tensors, ctx.p, grad, g, needs)
        return tuple(grads) + (None,) * len(spec.params)

    def vmap_rule(info, in_dims, *args):
        """The op once per batch entry, results stacked along dim 0."""
        results = []
        for i in range(info.batch_size):
            one = [a.select(d, i) if d is not None else a for a, d in zip(args, in_dims)]
            results.append(spec.op(*one))
        loss = torch.stack([r[0] for r in results])
        grad = torch.stack([r[1] for r in results])
        return (loss, grad), (0, 0)

    op = torch.library.custom_op(f"divcore::{spec.name}", impl, mutates_args=(),
                                 device_types="cpu", schema=spec.schema)
    op.register_fake(fake)
    op.register_autograd(backward_rule, setup_context=setup_context)
    torch.library.register_vmap(op, vmap_rule)
    spec.op = op


for _spec in SPECS.values():
    _register(_spec)


# ---------------------------------------------------------------- row statistics

def _row_stats_impl(x, target, where, dim, k, temperature):
    """divcore.row_stats on the tensors' memory; an absent result (no target: log_prob;
    k = 0: the top-k) is an empty tensor (an op returns tensors only)."""
    st = _numpy_api().row_stats(as_array(x), None if target is None else as_array(target),
                                axis=dim, k=k, temperature=temperature,
                                where=None if where is None else as_array(where))
    return tuple(x.new_empty(0, dtype=torch.float32) if v is None
                 else torch.from_numpy(np.array(v)) for v in st)


def _row_stats_fake(x, target, where, dim, k, temperature):
    lead = _lead_shape(x, dim)
    dt = loss_dtype(x.dtype)

    def empty():  # one each: outputs never alias one another
        return x.new_empty(0, dtype=torch.float32)

    lp = x.new_empty(lead, dtype=dt) if target is not None else empty()
    top = (x.new_empty(lead + [k], dtype=torch.int64), x.new_empty(lead + [k], dtype=dt)) \
        if k else (empty(), empty())
    return (x.new_empty(lead, dtype=dt), lp, x.new_empty(lead, dtype=dt),
            x.new_empty(lead, dtype=torch.int64)) + top


row_stats_op = torch.library.custom_op(
    "divcore::row_stats", _row_stats_impl, mutates_args=(), device_types="cpu",
    schema="(Tensor input, Tensor? target, Tensor? where, int dim, int k, float temperature)"
           " -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)")
row_stats_op.register_fake(_row_stats_fake)


def _row_stats_setup(ctx, inputs, output):
    x, target, where, dim, k, temperature = inputs
    ctx.dim, ctx.temperature = dim, temperature
    ctx.save_for_backward(x, target, where, output[2], output[4])


def _row_stats_backward(ctx, g_lse, g_lp, g_h, g_argmax, g_top_idx, g_top_lp):
    """The gradient of the statistics that have one, in differentiable torch operations
    (so second derivatives and torch.func work), with q = softmax(z), z = x / T and H the
    row's entropy:

        ∂lse/∂x = q / T                        ∂log q_y/∂x = (e_y - q) / T
        ∂H/∂x = -q (log q + H) / T             ∂log q_i/∂x = (e_i - q) / T  (each top-k entry)

    argmax and the top-k indices are integers: no gradient. A masked class (q = 0) gets 0."""
    x, target, where, h, top_idx = ctx.saved_tensors
    t, dim = ctx.temperature, ctx.dim
    z = torch.movedim(x.to(loss_dtype(x.dtype)), dim, -1) / t
    if where is not None:
        keep = torch.movedim(torch.broadcast_to(where, x.shape), dim, -1)
        z = z.masked_fill(~keep.bool(), -math.inf)
    log_q = torch.log_softmax(z, -1)
    q = torch.exp(log_q)
    grad = torch.zeros_like(z)
    qmass = torch.zeros_like(z[..., 0])  # the coefficient of q collected from every term

    def used(g):
        return g is not None and g.numel() > 0

    if used(g_lse):
        qmass = qmass + g_lse
    if used(g_lp) and target is not None and target.numel() > 0:
        grad = torch.scatter_add(grad, -1, target.unsqueeze(-1).long(), g_lp.unsqueeze(-1))
        qmass = qmass - g_lp
    if used(g_top_lp) and top_idx.numel() > 0:
        grad = torch.scatter_add(grad, -1, top_idx.long(), g_top_lp.to(grad.dtype))
        qmass = qmass - g_top_lp.sum(-1)
    grad = grad + qmass.unsqueeze(-1) * q
    if used(g_h):
        # log q taken as 0 where q = 0 before the product: 0·(-inf) would make the second
        # derivative nan there, even through a torch.where
        safe_log_q = torch.where(q > 0, log_q, torch.zeros_like(log_q))
        terms = q * (safe_log_q + h.unsqueeze(-1))
        terms = torch.where(q > 0, terms, torch.zeros_like(terms))
        grad = grad - g_h.unsqueeze(-1) * terms
    grad = torch.movedim(grad / t, -1, dim).to(x.dtype)
    return grad, None, None, None, None, None


row_stats_op.register_autograd(_row_stats_backward, setup_context=_row_stats_setup)


class _RowStatsFunc(torch.autograd.Function):
    """row_stats under torch.func's transforms (as _Func is for the losses): the same kernel
    and backward, with setup_context and a vmap rule."""

    @staticmethod
    def forward(x, target, where, dim, k, temperature):
        return _row_stats_impl(x, target, where, dim, k, temperature)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _row_stats_setup(ctx, inputs, output)
        ctx.mark_non_differentiable(output[3], output[4])

    @staticmethod
    def backward(ctx, *grads):
        return _row_stats_backward(ctx, *grads)

    @staticmethod
    def vmap(info, in_dims, x, target, where, dim, k, temperature):
        """Once per batch entry; the class dim moves down by one in each entry."""
        results = []
        for i in range(info.batch_size):
            one = [None if t is None else (t.select(d, i) if d is not None else t)
                   for t, d in zip((x, target, where), in_dims[:3])]
            d = dim - 1 if in_dims[0] is not None and in_dims[0] < dim else dim
            results.append(_RowStatsFunc.apply(*one, d, k, temperature))
        return tuple(torch.stack([r[j] for r in results]) for j in range(6)), (0,) * 6


def row_stats(x, target, where, dim, k, temperature):
    """The registered op, or _RowStatsFunc under torch.func's transforms."""
    if not torch.compiler.is_compiling() and _transforms_active():
        return _RowStatsFunc.apply(x, target, where, dim, k, temperature)
    return row_stats_op(x, target, where, dim, k, temperature)


# -------------------------------------------------------------- the eager path

_keep_graph = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph",
                      lambda: True)  # (another torch: never hand the gradient over)
_is_compiling = torch.compiler.is_compiling


def _fused_times(ctx, g, reduction, dim):
    """A plain backward's gradient: the fused gradient ctx.grad (in the input's dtype)
    times the incoming gradient g. For `loss.backward()` (g = 1) of a graph that is not
    kept, ctx.grad itself is handed over and dropped from ctx, so that autograd adopts it
    as the input's .grad without a pass over memory (a copy, were ctx still holding it);
    a later backward of a kept graph multiplies a copy."""
    grad = ctx.grad
    if reduction == "none":
        out = grad * g.unsqueeze(dim)  # (a half gradient times a float32 g: float32)
        return out if out.dtype == grad.dtype else out.to(grad.dtype)
    if _hand_over(g):
        ctx.grad = None
        return grad
    return grad * g


def _hand_over(g):
    """Whether a plain backward may hand the fused gradient over: g is 1 and the graph is
    not kept (and compiled autograd is not tracing this backward)."""
    return not _is_compiling() and g.item() == 1.0 and not _keep_graph()


class _Eager(torch.autograd.Function):
    """The op's kernel and backward without the dispatcher (plain eager calls only).

    `fast` (decided in forward): only the logits need a gradient and the loss has a fused
    kernel, so a plain backward is the saved gradient times the incoming one."""

    @staticmethod
    def forward(ctx, spec, p, *tensors):
        loss, grad = spec.compute(tensors, p)
        ctx.spec, ctx.p, ctx.grad = spec, p, grad  # grad: kept on ctx, not saved
        ctx.fast = spec.fused is not None and p["need_grad"] and \
            not any(ctx.needs_input_grad[3:])
        ctx.save_for_backward(*tensors)  # for a backward that builds a graph
        return loss

    @staticmethod
    def backward(ctx, g):
        if ctx.fast and ctx.grad is not None and not torch.is_grad_enabled():
            return (None, None, _fused_times(ctx, g, ctx.p["reduction"], ctx.p["dim"])) + \
                (None,) * (len(ctx.spec.tensors) - 1)
        grads = backward(ctx.spec, list(ctx.saved_tensors), ctx.p, ctx.grad, g,
                         tuple(ctx.needs_input_grad[2:]))
        return (None, None, *grads)


class _Func(torch.autograd.Function):
    """The same kernel and backward for torch.func (grad, vmap, jacrev): custom ops do
    not carry their autograd formula into torch.func's transforms, this Function does."""

    @staticmethod
    def forward(spec, p, *tensors):
        return spec.compute(tensors, p)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.spec, ctx.p = inputs[0], inputs[1]
        ctx.save_for_backward(*inputs[2:], output[1])
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx, g, _unused):
        saved = ctx.saved_tensors
        tensors, grad = list(saved[:-1]), saved[-1]
        grads = backward(ctx.spec, tensors, ctx.p, grad, g, tuple(ctx.needs_input_grad[2:]))
        return (None, None, *grads)

    @staticmethod
    def vmap(info, in_dims, spec, p, *tensors):
        """Once per batch entry (through apply, so outer transforms still see it)."""
        results = []
        for i in range(info.batch_size):
            one = [t.select(d, i) if d is not None else t
                   for t, d in zip(tensors, in_dims[2:])]
            results.append(_Func.apply(spec, p, *one))
        return ((torch.stack([r[0] for r in results]),
                 torch.stack([r[1] for r in results])), (0, 0))


def _c_apply(function):
    """`function.apply` without autograd.Function.apply's Python layer (its default-argument
    binding and functorch unwrapping, ~3 µs of a small call): used only when no torch.func
    transform is active, where that layer does nothing for these arguments."""
    try:
        return torch._C._FunctionBase.__dict__["apply"].__get__(None, function)
    except (AttributeError, KeyError, TypeError):  # pragma: no cover - another torch
        return function.apply


_eager_apply = _c_apply(_Eager)


def _transforms_active() -> bool:
    """Whether a torch.func transform (grad, vmap, ...) is active."""
    return _peek_interpreter() is not None


_peek_interpreter = getattr(getattr(torch._C, "_functorch", None), "peek_interpreter_stack",
                            lambda: True)  # (another torch: as if one were, always)


def call(name: str, tensors: list, params: list) -> torch.Tensor:
    """The loss of one call: the registered op under torch.compile, `_Func` under
    torch.func's transforms, `_Eager` otherwise (the same kernel and gradients)."""
    spec = SPECS[name]
    if torch.compiler.is_compiling():
        return spec.op(*tensors, *params)[0]
    p = dict(zip(spec.param_names, params))
    if _transforms_active():
        return _Func.apply(spec, p, *tensors)[0]
    if not torch.is_grad_enabled() or not any(
            t is not None and t.requires_grad for t in tensors):
        return spec.compute(tensors, p)[0]  # no graph to record
    return _eager_apply(spec, p, *tensors)


# ------------------------------------------------ the plain cross-entropy, fast

_PLAIN_DTYPES = frozenset((torch.float32, torch.float64, torch.bfloat16, torch.float16))
_PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)  # exactly these: no subclass's overrides
_INT64, _STRIDED = torch.int64, torch.strided
_NP_DTYPES = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64)}
# the compiled front's door for tensors (divcore/_torch_front.pxi; None on the reference)
_front_ce = getattr(divcore._kernels, "_torch_cross_entropy", None)


def _plain_kernel(api: Any, x: torch.Tensor, t: torch.Tensor, reduction: Any,
                  ignore_index: Any, eps: Any, with_grad: bool) -> Any:
    """(loss, gradient) as numpy's cross_entropy_and_grad(x, t, ...) gives them (with_grad),
    else cross_entropy's loss; the loss as a fresh array. The compiled front reads the
    tensors' memory itself when `api` is divcore with its compiled front (the same call,
    so the same bits); otherwise, or when the front does not take the call, `api`'s
    function on numpy views (the tests swap the reference in for divcore)."""
    if _front_ce is not None and (api.cross_entropy_and_grad if with_grad
                                  else api.cross_entropy) is (
            _kernels_ce_and_grad if with_grad else _kernels_ce):
        dt = _NP_DTYPES.get(x.dtype)
        if dt is not None:
            out = _front_ce(x, dt, t, reduction, ignore_index, eps, with_grad)
            if out is not None:
                return out
    kw = {"reduction": reduction, "label_smoothing": eps}
    if ignore_index != -100:
        kw["ignore_index"] = ignore_index
    xa, ta = as_array(x), t.numpy()
    if with_grad:
        value, grad = api.cross_entropy_and_grad(xa, ta, **kw)
        return _fresh(value), grad
    return _fresh(api.cross_entropy(xa, ta, **kw))


def _fresh(value: Any) -> np.ndarray:
    """A numpy result (scalar or array) as an array torch.from_numpy can take."""
    arr = np.asarray(value)
    return arr if arr.flags.writeable and arr.dtype.isnative else arr.copy()


_kernels_ce = getattr(divcore._kernels, "cross_entropy", None)
_kernels_ce_and_grad = getattr(divcore._kernels, "cross_entropy_and_grad", None)


def _plain_labels(tensors: list, p: dict) -> bool:
    """Whether a cross_entropy op call is a plain one (`plain_cross_entropy`'s, with the
    class dim last): int64 labels, no class weights or mask, divcore's keywords at their
    defaults."""
    x, t, weight, where = tensors
    return (weight is None and where is None and t.dtype is _INT64
            and p["dim"] == x.dim() - 1 and p["target_type"] == "labels"
            and p["temperature"] == 1.0 and p["base"] is None and p["validate"] is True
            and p["sum_tol"] is None and x.layout is _STRIDED and t.layout is _STRIDED
            and not x.is_neg())


def _plain_params(reduction: str, ignore_index: Any, eps: float, x: torch.Tensor) -> dict:
    """The registered op's parameters of a plain call (for the closed-form backward, as
    `call` would have built them)."""
    return {"dim": x.dim() - 1, "target_type": "labels",
            "ignore_index": NO_IGNORE if ignore_index is None else ignore_index,
            "label_smoothing": eps, "temperature": 1.0, "reduction": reduction,
            "base": None, "validate": True, "sum_tol": None, "need_grad": True}


class _PlainCE(torch.autograd.Function):
    """cross_entropy(input, labels) of a plain eager call (see `plain_cross_entropy`): the
    loss and its gradient from one call of the compiled front (`_plain_kernel`); a plain
    backward scales that gradient (or hands it over), one that builds a graph takes the
    closed forms, as `_Eager` does."""

    @staticmethod
    def forward(ctx, x, t, call):
        api, reduction, ignore_index, eps = call
        value, grad = _plain_kernel(api, x, t, reduction, ignore_index, eps, True)
        grad = torch.from_numpy(grad)  # a fresh array of divcore's
        ctx.grad = grad if grad.dtype == x.dtype else grad.to(x.dtype)
        ctx.call = (reduction, ignore_index, eps)
        ctx.save_for_backward(x, t)  # for a backward that builds a graph
        return torch.from_numpy(value)

    @staticmethod
    def backward(ctx, g):
        grad = ctx.grad
        if grad is not None and not torch.is_grad_enabled():
            if ctx.call[0] == "none":
                grad = _fused_times(ctx, g, "none", grad.dim() - 1)
            elif _hand_over(g):  # _fused_times, inlined
                ctx.grad = None
            else:
                grad = grad * g
            return grad, None, None
        x, t = ctx.saved_tensors
        grads = backward(SPECS["cross_entropy"], [x, t, None, None],
                         _plain_params(*ctx.call, x), grad, g, (True, False, False, False))
        return grads[0], None, None


_plain_apply = _c_apply(_PlainCE)


def plain_cross_entropy(api: Any, x: Any, t: Any, ignore_index: Any, reduction: Any,
                        label_smoothing: Any) -> Optional[torch.Tensor]:
    """divcore.torch.cross_entropy(x, t, ignore_index=, reduction=, label_smoothing=) of a
    plain eager call, or None when the call is not plain (the caller then takes the general
    path, `call`). divcore.torch.cross_entropy asks only when its other keywords are at
    their defaults.

    Plain: not under torch.compile or a torch.func transform; x a dense CPU tensor (a
    plain Tensor or Parameter, not a negative view) of float32, float64, bfloat16 or
    float16 of one or two dims, so that the classes are its last dim; t a dense CPU int64
    tensor of one dim less; ignore_index an int or None, label_smoothing a float or an
    int, reduction a str. Such a call skips the general path's argument handling and runs
    the same compiled call on the same values (so the loss and gradient are the same
    bits): once, for loss and gradient together, in one autograd.Function (`_PlainCE`)."""
    if (_is_compiling() or type(x) not in _PLAIN_TYPES or type(t) is not torch.Tensor
            or x.dtype not in _PLAIN_DTYPES or t.dtype is not _INT64
            or not 0 < (nd := x.dim()) < 3 or t.dim() != nd - 1
            or not (x.is_cpu and t.is_cpu) or x.layout is not _STRIDED
            or t.layout is not _STRIDED or x.is_neg() or _transforms_active()):
        return None
    if type(label_smoothing) is not float:
        if type(label_smoothing) is not int:
            return None
        label_smoothing = float(label_smoothing)
    if type(reduction) is not str:
        return None
    if ignore_index != -100 and ignore_index is not None:
        if type(ignore_index) is not int:
            return None
        if ignore_index == NO_IGNORE:  # the op schema's None, as `call` reads it
            ignore_index = None
    if x.requires_grad and torch.is_grad_enabled():
        return _plain_apply(x, t, (api, reduction, ignore_index, label_smoothing))
    return torch.from_numpy(_plain_kernel(api, x, t, reduction, ignore_index,
                                          label_smoothing, False))
