"""divcore's losses as differentiable functions of CPU torch tensors.

Each function takes the keywords of the numpy function of the same name and returns a
torch tensor with a gradient: the forward pass runs divcore's kernels on the tensors'
memory (no copy for float32/float64), and the backward pass returns the gradient that
the fused value+gradient kernels computed alongside the loss (cross-entropy and KL), or
the analytic gradient derived below (Jensen-Shannon, binary cross-entropy, targets).

Examples
--------
>>> import torch
>>> import divcore.torch as dct
>>> logits = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]], requires_grad=True)
>>> loss = dct.cross_entropy(logits, torch.tensor([0, 1]))
>>> loss.backward()
>>> print(f"{loss.item():.6f}")
0.285104
>>> print(logits.grad.sum(dim=1).abs().max().item() < 1e-6)  # rows of a softmax gradient
True

Notes
-----
- CPU tensors only: a tensor on another device raises TypeError (move it with `.cpu()`).
- float32 and float64 compute in their own precision; float16 and bfloat16 compute in
  float32 and the loss comes back as float32, as in the numpy API (the gradient reaching a
  float16 leaf is cast to float16 by autograd). Tensors may have any strides.
- Gradients flow to `logits`; to a floating target (probs, log_probs or a teacher's
  logits), like `torch.nn.functional.kl_div`; to `weight` and `pos_weight` of
  `binary_cross_entropy`. Class weights of `cross_entropy` get no gradient (as in torch):
  passing a `weight` that requires grad raises NotImplementedError.
- A probability target that requires grad is differentiated as a free vector (each
  entry independently, off the simplex); `torch.autograd.gradcheck` on such a target needs
  `validate=False`, since the perturbed rows no longer sum to 1. Where a target
  probability is exactly 0 the derivative is one-sided and may be ±inf.
- `reduction` and `base` act as in the numpy API; the gradient follows them ('mean' over
  rows, the weighted mean Σ w_y·l / Σ w_y with labels and `weight`, ignored rows get 0).

divcore.torch is imported only on request (`import divcore.torch`); torch stays an
optional dependency of divcore.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Literal, Optional

import numpy as np
import torch

import divcore
from divcore._rules import compute_dtype as _api_compute_dtype, target_kind as _target_kind

__all__ = ["binary_cross_entropy", "cross_entropy", "js_divergence", "kl_divergence"]

Reduction = Literal["none", "sum", "mean"]
TargetType = Literal["auto", "labels", "probs", "log_probs", "logits"]


# ------------------------------------------------------------------- conversions

def _as_numpy(value: Any, name: str) -> Any:
    """A CPU tensor as the numpy array over its memory (bfloat16 as a float32 copy, since
    numpy has no bfloat16); anything else is passed on for divcore to read."""
    if not isinstance(value, torch.Tensor):
        return value
    if value.device.type != "cpu":
        raise TypeError(f"{name}: a tensor on {value.device}; divcore.torch computes on "
                        "the CPU only (move it there with .cpu())")
    if value.layout != torch.strided:
        raise TypeError(f"{name}: a {value.layout} tensor; pass a dense tensor "
                        "(.to_dense())")
    t = value.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()  # computed in float32 anyway
    return t.resolve_conj().resolve_neg().numpy()


def _as_tensor(a: Any) -> torch.Tensor:
    """A numpy result (array or scalar) as a tensor, sharing memory where it can."""
    arr = np.asarray(a)
    if not (arr.flags.writeable and arr.dtype.isnative):
        arr = arr.copy()
    return torch.from_numpy(arr)


def _compute_dtype(x: np.ndarray) -> np.dtype:
    """The dtype divcore computes and returns `x`'s results in (float16 -> float32)."""
    return _api_compute_dtype(x.dtype, "logits")


def _class_axis(x: np.ndarray, axis: int) -> int:
    """`axis` of `x` as a non-negative number (divcore has already checked it)."""
    return axis % x.ndim


def _scaled(per_row: np.ndarray, grad_output: torch.Tensor, reduction: str, axis: int,
            row_scale: float) -> torch.Tensor:
    """The gradient of the reduced loss from each row's own gradient `per_row` (class axis
    at `axis`): 'none' multiplies row i by grad_output[i], 'sum' and 'mean' by the scalar
    grad_output; `row_scale` carries 1/N for the mean and 1/log(base)."""
    go = grad_output.detach().numpy().astype(per_row.dtype, copy=False)
    if reduction == "none":
        go = np.expand_dims(go, axis)
    return _as_tensor(per_row * (go * per_row.dtype.type(row_scale)))


def _log_base(base: Optional[float]) -> float:
    return 1.0 if base is None else math.log(base)


# ----------------------------------------------------------- the autograd bridge

class _Loss:
    """One call's keywords and the numpy computations of its value and gradients.

    `forward(arrays, needs)` returns the value; `backward(arrays, grad_output, needs)`
    returns one tensor (or None) per array. `arrays` are the numpy views of the call's
    tensors (logits, target, then the extras), `needs` says which need a gradient."""

    def forward(self, arrays, needs):  # pragma: no cover - overridden
        raise NotImplementedError

    def backward(self, arrays, grad_output, needs):  # pragma: no cover - overridden
        raise NotImplementedError


class _Bridge(torch.autograd.Function):
    """Calls a _Loss's numpy forward and backward from autograd; every tensor operand is
    saved with save_for_backward, so an in-place change between the passes is caught."""

    @staticmethod
    def forward(ctx, loss: _Loss, names: tuple, *operands):
        needs = tuple(ctx.needs_input_grad[2:])
        arrays = [_as_numpy(v, n) for v, n in zip(operands, names)]
        value = loss.forward(arrays, needs)
        ctx.loss, ctx.names = loss, names
        ctx.is_tensor = tuple(isinstance(v, torch.Tensor) for v in operands)
        ctx.others = [None if t else v for v, t in zip(operands, ctx.is_tensor)]
        ctx.save_for_backward(*(v if t else None for v, t in zip(operands, ctx.is_tensor)))
        return _as_tensor(value)

    @staticmethod
    @torch.autograd.function.once_differentiable  # numpy inside: no second derivative
    def backward(ctx, grad_output):
        saved = ctx.saved_tensors
        operands = [s if t else o for s, t, o in zip(saved, ctx.is_tensor, ctx.others)]
        arrays = [_as_numpy(v, n) for v, n in zip(operands, ctx.names)]
        needs = tuple(ctx.needs_input_grad[2:])
        grads = ctx.loss.backward(arrays, grad_output, needs)
        return (None, None, *grads)


def _apply(loss: _Loss, logits: torch.Tensor, target: Any, **extras: Any) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits: expected a torch.Tensor, got {type(logits).__name__} "
                        "(use divcore's numpy functions for arrays)")
    names = ("logits", "target") + tuple(extras)
    return _Bridge.apply(loss, names, logits, target, *extras.values())


# ------------------------------------------------------ soft targets: the chain rule

def _target_distribution(target: np.ndarray, kind: str, axis: int, temperature: float,
                         where: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(p, log p) in float64, in the target's layout, for probs / log_probs / logits /
    labels (one-hot) targets, as divcore's kernels read them."""
    if kind == "labels":
        labels = np.asarray(target)
        p = np.moveaxis(np.eye(n_classes)[labels], -1, axis)
        with np.errstate(divide="ignore"):
            return p, np.log(p)
    if kind == "logits":
        log_p = np.asarray(divcore.log_softmax(target, axis, temperature=temperature,
                                               where=where), dtype=np.float64)
        return np.exp(log_p), log_p
    t = np.asarray(target, dtype=np.float64)
    if kind == "log_probs":
        return np.exp(t), t
    with np.errstate(divide="ignore", invalid="ignore"):
        return t, np.log(t)


def _logits_chain(h: np.ndarray, p: np.ndarray, axis: int, temperature: float) -> np.ndarray:
    """From h_c = ∂l/∂log p_c to ∂l/∂t for p = softmax(t / T):
    ∂log p_k/∂t_c = (δ_kc - p_c)/T, so ∂l/∂t_c = (h_c - p_c·Σ_k h_k) / T."""
    return (h - p * h.sum(axis=axis, keepdims=True)) / temperature


def _target_gradient(kind: str, d_p: Callable[[], np.ndarray], h: Callable[[], np.ndarray],
                     p: np.ndarray, axis: int, temperature: float) -> np.ndarray:
    """∂(row loss)/∂target for each target parametrisation, from the free partial
    ∂l/∂p (`d_p`, probs) or h = p·∂l/∂p = ∂l/∂log p (`h`, log_probs and logits)."""
    if kind == "probs":
        return d_p()
    if kind == "log_probs":
        return h()
    if kind == "logits":
        return _logits_chain(h(), p, axis, temperature)
    raise TypeError("target: integer labels have no gradient")


def _where_positive(p: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`values` where p > 0, else exactly 0 (a class without target mass contributes
    nothing, even where its log q or log p is -inf)."""
    with np.errstate(invalid="ignore"):
        return np.where(p > 0, values, 0.0)


# --------------------------------------------------------------- cross-entropy, KL

class _FusedLoss(_Loss):
    """cross_entropy / kl_divergence: value and logits gradient from divcore's fused
    kernel in one pass; the target's gradient, when asked, from the per-class partials
    each subclass writes down in `partials`."""

    def __init__(self, name: str, keywords: dict):
        self.name, self.kw = name, keywords
        self.grad: Optional[np.ndarray] = None

    def forward(self, arrays, needs):
        x, t = arrays[0], arrays[1]
        if needs[0]:
            fused = getattr(divcore, f"{self.name}_and_grad")
            value, self.grad = fused(x, t, **self.kw)
            return value
        return getattr(divcore, self.name)(x, t, **self.kw)

    def backward(self, arrays, grad_output, needs):
        x, t = arrays[0], arrays[1]
        axis = _class_axis(np.asarray(x), self.kw["axis"])
        reduction = self.kw["reduction"]
        grads: list = [None] * len(arrays)
        if needs[0]:
            assert self.grad is not None  # the forward pass computed it: needs[0] was set
            grads[0] = _scaled(self.grad, grad_output, reduction, axis, 1.0)
        if needs[1]:
            grads[1] = self._target_grad(np.asarray(x), t, axis, grad_output)
        return grads

    def partials(self, p: np.ndarray, log_p: np.ndarray, log_q: np.ndarray, axis: int
                 ) -> tuple[Callable[[], np.ndarray], Callable[[], np.ndarray]]:
        """(∂l/∂p, h = ∂l/∂log p) of one row's loss, as functions computed on demand."""
        raise NotImplementedError  # pragma: no cover - overridden

    def _target_grad(self, x, t, axis, grad_output):
        kw = self.kw
        kind = _target_kind(t, kw["target_type"])
        temperature, where = kw["temperature"], kw["where"]
        log_q = np.asarray(divcore.log_softmax(x, axis, temperature=temperature,
                                               where=where), dtype=np.float64)
        p, log_p = _target_distribution(t, kind, axis, temperature, where, x.shape[axis])
        d_p, h = self.partials(p, log_p, log_q, axis)
        per_row = _target_gradient(kind, d_p, h, p, axis, temperature)
        n_rows = x.size // max(x.shape[axis], 1)
        scale = 1.0 / _log_base(kw["base"])
        if kw["reduction"] == "mean":  # soft targets: over rows, whatever the weights
            scale /= max(n_rows, 1)  # (an empty batch has an empty gradient)
        return _scaled(per_row, grad_output, kw["reduction"], axis, scale)


class _CrossEntropy(_FusedLoss):
    def __init__(self, keywords):
        super().__init__("cross_entropy", keywords)

    def partials(self, p, log_p, log_q, axis):
        """l = -Σ_c w_c p'_c log q_c with p' = (1-ε)p + ε/C_eff on the unmasked classes:
        ∂l/∂p_c = -(1-ε)·w_c·log q_c (smoothing is for probs targets only)."""
        w = self.kw["weight"]
        shape = [1] * log_q.ndim
        shape[axis] = -1
        w = np.ones(1) if w is None else np.asarray(w, dtype=np.float64).reshape(shape)
        d_p = -(1.0 - self.kw["label_smoothing"]) * w * log_q
        return (lambda: d_p), (lambda: _where_positive(p, p * d_p))


class _KLDivergence(_FusedLoss):
    def __init__(self, keywords):
        super().__init__("kl_divergence", keywords)

    def partials(self, p, log_p, log_q, axis):
        """KL(p ‖ q) = Σ p (log p - log q): ∂/∂p_c = log p_c + 1 - log q_c.
        KL(q ‖ p) = Σ q (log q - log p): ∂/∂p_c = -q_c / p_c, so h_c = -q_c."""
        if self.kw["reverse"]:
            q = np.exp(log_q)
            with np.errstate(divide="ignore", invalid="ignore"):
                d_p = _where_positive(q, -q / p)
            return (lambda: d_p), (lambda: -q)
        with np.errstate(invalid="ignore"):
            d_p = log_p + 1.0 - log_q
        return (lambda: d_p), (lambda: _where_positive(p, p * d_p))


# ------------------------------------------------------------------ Jensen-Shannon

class _JSDivergence(_Loss):
    """JS_β = β·KL(p ‖ m) + (1-β)·KL(q ‖ m), m = βp + (1-β)q, value from divcore.

    Gradient. Treating p and q as free vectors,
        ∂JS/∂p_c = β·log(p_c / m_c),    ∂JS/∂q_c = (1-β)·log(q_c / m_c)
    (the +β and +(1-β) from differentiating p log p and q log q cancel against the
    derivative of -m log m). With q = softmax(z / T), ∂log q_k/∂z_c = (δ_kc - q_c)/T, so
    with h^q_c = q_c·∂JS/∂q_c = (1-β)·q_c·log(q_c / m_c):
        ∂JS/∂z_c = (h^q_c - q_c·Σ_k h^q_k) / T = (1-β)/T · q_c·(log(q_c/m_c) - KL(q ‖ m))
    and likewise for the target through h^p_c = β·p_c·log(p_c / m_c). Terms with q_c = 0
    (or p_c = 0) are 0. log m = logaddexp(log β + log p, log(1-β) + log q). For β in
    {0, 1} the divergence is identically 0 and so is the gradient."""

    def __init__(self, keywords):
        self.kw = keywords

    def forward(self, arrays, needs):
        return divcore.js_divergence(arrays[0], arrays[1], **self.kw)

    def backward(self, arrays, grad_output, needs):
        kw = self.kw
        x, t = np.asarray(arrays[0]), arrays[1]
        axis = _class_axis(x, kw["axis"])
        beta, temperature, where = float(kw["beta"]), kw["temperature"], kw["where"]
        kind = _target_kind(t, kw["target_type"])
        log_q = np.asarray(divcore.log_softmax(x, axis, temperature=temperature,
                                               where=where), dtype=np.float64)
        p, log_p = _target_distribution(t, kind, axis, temperature, where, x.shape[axis])
        q = np.exp(log_q)
        scale = 1.0 / _log_base(kw["base"])
        if kw["reduction"] == "mean":
            scale /= max(x.size // max(x.shape[axis], 1), 1)
        dtype = _compute_dtype(x)
        grads: list = [None] * len(arrays)
        trivial = not 0.0 < beta < 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            log_m = np.logaddexp((math.log(beta) if beta > 0 else -np.inf) + log_p,
                                 (math.log1p(-beta) if beta < 1 else -np.inf) + log_q)
            if needs[0]:
                h_q = np.zeros_like(q) if trivial else \
                    _where_positive(q, (1.0 - beta) * q * (log_q - log_m))
                per_row = _logits_chain(h_q, q, axis, temperature).astype(dtype)
                grads[0] = _scaled(per_row, grad_output, kw["reduction"], axis, scale)
            if needs[1]:
                d_p = np.zeros_like(p) if trivial else beta * (log_p - log_m)
                h_p = np.zeros_like(p) if trivial else _where_positive(p, p * d_p)
                per_row = _target_gradient(kind, lambda: d_p, lambda: h_p, p, axis,
                                           temperature)
                grads[1] = _scaled(per_row, grad_output, kw["reduction"], axis, scale)
        return grads


# ---------------------------------------------------------- binary cross-entropy

def _softplus(v: np.ndarray) -> np.ndarray:
    """log(1 + e^v), without overflow."""
    return np.logaddexp(0.0, v)


def _sum_to_shape(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a broadcast gradient back to an operand's own shape."""
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead))) if lead else g
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


class _BinaryCrossEntropy(_Loss):
    """l = w·[pw·y·softplus(-x) + (1-y)·softplus(x)] elementwise, value from divcore.

    Gradient, with σ(x) = exp(-softplus(-x)) and σ(-x) = exp(-softplus(x)):
        ∂l/∂x  = w·[(1-y)·σ(x) - pw·y·σ(-x)]
        ∂l/∂y  = w·[pw·softplus(-x) - softplus(x)]
        ∂l/∂w  = pw·y·softplus(-x) + (1-y)·softplus(x)
        ∂l/∂pw = w·y·softplus(-x)
    A term whose coefficient is exactly 0 is 0 (so x = ±inf with the matching label
    gives finite values, as the loss does)."""

    def __init__(self, keywords):
        self.kw = keywords

    def forward(self, arrays, needs):
        x, y, w, pw = arrays
        return divcore.binary_cross_entropy(x, y, weight=w, pos_weight=pw, **self.kw)

    def backward(self, arrays, grad_output, needs):
        x = np.asarray(arrays[0])
        dtype = _compute_dtype(x)
        x = x.astype(np.float64)
        y = np.broadcast_to(np.asarray(arrays[1], dtype=np.float64), x.shape)
        w = np.ones(()) if arrays[2] is None else np.asarray(arrays[2], dtype=np.float64)
        pw = np.ones(()) if arrays[3] is None else np.asarray(arrays[3], dtype=np.float64)
        a, b = pw * y, 1.0 - y  # the coefficients of softplus(-x) and softplus(x)
        sp_neg, sp_pos = _softplus(-x), _softplus(x)
        with np.errstate(invalid="ignore", over="ignore"):
            term_a = np.where(a != 0, a * sp_neg, 0.0)
            term_b = np.where(b != 0, b * sp_pos, 0.0)
            partials = [
                lambda: w * (b * np.exp(-sp_neg) - a * np.exp(-sp_pos)),
                lambda: w * (pw * sp_neg - sp_pos),
                lambda: term_a + term_b,
                lambda: w * np.where(y != 0, y * sp_neg, 0.0),
            ]
        reduction = self.kw["reduction"]
        scale = 1.0 / _log_base(self.kw["base"])
        if reduction == "mean":
            scale /= max(x.size, 1)
        go = grad_output.detach().numpy().astype(np.float64) * scale
        grads: list = [None] * 4
        for i, partial in enumerate(partials):
            if needs[i]:
                with np.errstate(invalid="ignore", over="ignore"):
                    g = np.broadcast_to(partial(), x.shape) * go
                shape = np.shape(arrays[i])
                grads[i] = _as_tensor(_sum_to_shape(g, shape).reshape(shape).astype(dtype))
        return grads


# ------------------------------------------------------------------- public functions

def cross_entropy(logits: torch.Tensor, target: Any, *, axis: int = -1,
                  target_type: TargetType = "auto", weight: Any = None,
                  ignore_index: Optional[int] = -100, label_smoothing: float = 0.0,
                  temperature: float = 1.0, where: Any = None,
                  reduction: Reduction = "mean", base: Optional[float] = None,
                  validate: bool = True) -> torch.Tensor:
    """Differentiable `divcore.cross_entropy` of CPU tensors.

    Same keywords and semantics as `divcore.cross_entropy`; the gradient with respect to
    `logits` comes from divcore's fused value+gradient kernel, the one with respect to a
    floating target (probs, log_probs or a teacher's logits) from ∂l/∂p_c =
    -(1-ε)·w_c·log q_c. Class weights get no gradient.

    Parameters
    ----------
    logits : torch.Tensor
        CPU tensor of raw scores, any float dtype and strides.
    target : torch.Tensor or array_like
        As for `divcore.cross_entropy`; a floating tensor that requires grad gets a
        gradient. Class weights get none (NotImplementedError if `weight` requires grad).
    **keywords
        Those of `divcore.cross_entropy`, with the same meaning.

    Returns
    -------
    torch.Tensor
        The loss in the numpy function's dtype (float32 for float16/bfloat16 logits):
        0-d for 'sum' and 'mean', one value per row for 'none'.

    Raises
    ------
    TypeError
        `logits` is not a tensor, or a tensor is not a dense CPU tensor.
    IndexError, ValueError
        As the numpy function raises them (labels out of range, bad keywords, a target
        row that is not a distribution).

    Examples
    --------
    >>> import torch, divcore.torch as dct
    >>> x = torch.tensor([[0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    >>> dct.cross_entropy(x, torch.tensor([1])).backward()
    >>> x.grad
    tensor([[ 0.5000, -0.5000]], dtype=torch.float64)
    """
    if isinstance(weight, torch.Tensor) and weight.requires_grad:
        raise NotImplementedError("cross_entropy: no gradient with respect to `weight` "
                                  "(as in torch); pass weight.detach()")
    kw = dict(axis=axis, target_type=target_type, weight=_as_numpy(weight, "weight"),
              ignore_index=ignore_index, label_smoothing=label_smoothing,
              temperature=temperature, where=_as_numpy(where, "where"),
              reduction=reduction, base=base, validate=validate)
    return _apply(_CrossEntropy(kw), logits, target)


def kl_divergence(logits: torch.Tensor, target: Any, *, axis: int = -1,
                  target_type: TargetType = "auto", reverse: bool = False,
                  temperature: float = 1.0, where: Any = None,
                  reduction: Reduction = "mean", base: Optional[float] = None,
                  validate: bool = True) -> torch.Tensor:
    """Differentiable `divcore.kl_divergence` of CPU tensors: KL(p ‖ q) (reverse=True:
    KL(q ‖ p)) with q = softmax(logits / T).

    The gradient with respect to `logits` comes from divcore's fused kernel (for a fixed
    target, the same as cross-entropy's); a floating target gets ∂KL/∂p_c =
    log p_c + 1 - log q_c (reverse: -q_c / p_c), chained through its parametrisation,
    as torch's `kl_div` does.

    Parameters
    ----------
    logits : torch.Tensor
        CPU tensor of raw scores, any float dtype and strides.
    target : torch.Tensor or array_like
        As for `divcore.kl_divergence`; a floating tensor that requires grad gets a
        gradient.
    **keywords
        Those of `divcore.kl_divergence`, with the same meaning.

    Returns
    -------
    torch.Tensor
        The loss in the numpy function's dtype (float32 for float16/bfloat16 logits):
        0-d for 'sum' and 'mean', one value per row for 'none'.

    Raises
    ------
    TypeError
        `logits` is not a tensor, or a tensor is not a dense CPU tensor.
    IndexError, ValueError
        As the numpy function raises them (labels out of range, bad keywords, a target
        row that is not a distribution).

    Examples
    --------
    >>> import torch, divcore.torch as dct
    >>> student = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    >>> teacher = torch.tensor([[2.0, 0.0]], dtype=torch.float64, requires_grad=True)
    >>> kl = dct.kl_divergence(student, teacher, target_type="logits")
    >>> kl.backward()
    >>> print(f"{kl.item():.6f}")
    0.327813
    >>> student.grad  # q - p
    tensor([[-0.3808,  0.3808]], dtype=torch.float64)
    """
    kw = dict(axis=axis, target_type=target_type, reverse=reverse,
              temperature=temperature, where=_as_numpy(where, "where"),
              reduction=reduction, base=base, validate=validate)
    return _apply(_KLDivergence(kw), logits, target)


def js_divergence(logits: torch.Tensor, target: Any, *, axis: int = -1,
                  target_type: TargetType = "auto", beta: float = 0.5,
                  temperature: float = 1.0, where: Any = None,
                  reduction: Reduction = "mean", base: Optional[float] = None,
                  validate: bool = True) -> torch.Tensor:
    """Differentiable `divcore.js_divergence` of CPU tensors: β·KL(p ‖ m) + (1-β)·KL(q ‖ m),
    m = βp + (1-β)q, q = softmax(logits / T).

    Gradients (derived in `_JSDivergence`): ∂JS/∂z_c = (1-β)/T·q_c·(log(q_c/m_c) -
    KL(q ‖ m)) for the logits, ∂JS/∂p_c = β·log(p_c/m_c) for a floating target.

    Parameters
    ----------
    logits : torch.Tensor
        CPU tensor of raw scores, any float dtype and strides.
    target : torch.Tensor or array_like
        As for `divcore.js_divergence`; a floating tensor that requires grad gets a
        gradient.
    **keywords
        Those of `divcore.js_divergence`, with the same meaning.

    Returns
    -------
    torch.Tensor
        The loss in the numpy function's dtype (float32 for float16/bfloat16 logits):
        0-d for 'sum' and 'mean', one value per row for 'none'.

    Raises
    ------
    TypeError
        `logits` is not a tensor, or a tensor is not a dense CPU tensor.
    IndexError, ValueError
        As the numpy function raises them (labels out of range, bad keywords, a target
        row that is not a distribution).

    Examples
    --------
    >>> import torch, divcore.torch as dct
    >>> x = torch.tensor([[1.0, -1.0]], dtype=torch.float64, requires_grad=True)
    >>> js = dct.js_divergence(x, torch.tensor([[0.0, 1.0]], dtype=torch.float64))
    >>> js.backward()
    >>> print(f"{js.item():.6f}", x.grad[0, 0].item() > 0)
    0.503359 True
    """
    kw = dict(axis=axis, target_type=target_type, beta=beta, temperature=temperature,
              where=_as_numpy(where, "where"), reduction=reduction, base=base,
              validate=validate)
    return _apply(_JSDivergence(kw), logits, target)


def binary_cross_entropy(logits: torch.Tensor, target: Any, *, weight: Any = None,
                         pos_weight: Any = None, reduction: Reduction = "mean",
                         base: Optional[float] = None) -> torch.Tensor:
    """Differentiable `divcore.binary_cross_entropy` of CPU tensors (torch's
    `binary_cross_entropy_with_logits`), with gradients for logits, target, weight and
    pos_weight (formulas in `_BinaryCrossEntropy`).

    Parameters
    ----------
    logits : torch.Tensor
        CPU tensor of raw scores, any float dtype and strides.
    target : torch.Tensor or array_like
        As for `divcore.binary_cross_entropy`; a floating tensor that requires grad gets
        a gradient, and so may `weight` and `pos_weight`.
    **keywords
        Those of `divcore.binary_cross_entropy`, with the same meaning.

    Returns
    -------
    torch.Tensor
        The loss in the numpy function's dtype (float32 for float16/bfloat16 logits):
        0-d for 'sum' and 'mean', one value per row for 'none'.

    Raises
    ------
    TypeError
        `logits` is not a tensor, or a tensor is not a dense CPU tensor.
    IndexError, ValueError
        As the numpy function raises them (labels out of range, bad keywords, a target
        row that is not a distribution).

    Examples
    --------
    >>> import torch, divcore.torch as dct
    >>> x = torch.tensor([0.0, 0.0], dtype=torch.float64, requires_grad=True)
    >>> dct.binary_cross_entropy(x, torch.tensor([1.0, 0.0], dtype=torch.float64)).backward()
    >>> x.grad
    tensor([-0.2500,  0.2500], dtype=torch.float64)
    """
    kw = dict(reduction=reduction, base=base)
    return _apply(_BinaryCrossEntropy(kw), logits, target, weight=weight,
                  pos_weight=pos_weight)
