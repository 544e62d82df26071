"""divcore's losses as native PyTorch losses: torch operators with gradients of any order.

Each loss is a torch operator (`torch.ops.divcore.cross_entropy`, ...; see
`divcore._torch_ops`) whose kernel runs divcore's compiled kernels on the tensors' memory.
So, on CPU tensors:

- torch.compile(fullgraph=True) captures the losses whole: no graph break, no
  recompilation when values change;
- torch.func (grad, vmap, jacrev) works, and vmap(grad(...)) gives per-sample gradients;
- second derivatives are exact (Hessians, gradient penalties, gradgradcheck): a plain
  backward scales the gradient divcore's fused kernel computed with the loss; a backward
  that builds a graph (create_graph=True, torch.func) computes the same closed-form
  gradients in differentiable torch operations.

Conventions are torch's: the class dim is 1 for inputs with two or more dims (0 for a
single row), targets are (N, d1, ...); the signatures start as torch.nn.functional's and
divcore's extra keywords follow (keyword-only; `dim` overrides the class dim); the
modules mirror torch.nn's loss modules.

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
- dtypes: the loss is float64 for float64 input and float32 otherwise (float16 and
  bfloat16 are computed in float32, as in the numpy API; torch would return a half loss).
  The gradient comes back in the input's dtype. Half tensors are read as stored (no copy).
- Gradients flow to the input, to a floating target (probs, log_probs or a teacher's
  logits, as with `torch.nn.functional.kl_div`), and to `weight` and `pos_weight` of the
  binary cross-entropy. Class weights of `cross_entropy` get no gradient (as in torch):
  a `weight` that requires grad raises NotImplementedError.
- A probability target that requires grad is differentiated as a free vector (each
  entry independently, off the simplex); `gradcheck` on such a target needs
  `validate=False`, since the perturbed rows no longer sum to 1.

divcore.torch is imported only on request (`import divcore.torch`); torch stays an
optional dependency of divcore.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

import torch

import divcore  # the numpy API that divcore._torch_ops calls (tests swap divcore.reference in)
from divcore import _rules
from divcore import _torch_extras as _tx
from divcore import _torch_ops as _ops
from divcore._topk import TopK  # noqa: F401  (divcore.TopK, also found here)

__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss", "EntropyLoss", "JSDivergenceLoss",
           "KLDivergenceLoss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
           "cross_entropy", "entropy", "js_divergence", "kl_divergence", "row_stats"]

Reduction = Literal["none", "sum", "mean"]
TargetType = Literal["auto", "labels", "probs", "log_probs", "logits"]


# ------------------------------------------------------------------- arguments

def _input(x: Any, name: str = "input") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__} "
                        "(use divcore's numpy functions for arrays)")
    return _checked(x, name)


def _checked(t: torch.Tensor, name: str) -> torch.Tensor:
    if t.is_cpu and t.layout == torch.strided:  # the usual case, checked first (cheap)
        return t
    if t.device.type != "cpu":
        raise TypeError(f"{name}: a tensor on {t.device}; divcore.torch computes on "
                        "the CPU only (move it there with .cpu())")
    if t.layout != torch.strided:
        raise TypeError(f"{name}: a {t.layout} tensor; pass a dense tensor (.to_dense())")
    return t


def _operand(value: Any, name: str) -> Optional[torch.Tensor]:
    """A tensor argument: tensors are checked, arrays and lists become tensors."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return _checked(value, name)
    return torch.as_tensor(value)


def _dim(x: torch.Tensor, dim: Optional[int]) -> int:
    """torch's class dim (1, or 0 for a single row), or `dim` made non-negative."""
    if dim is None:
        return 1 if x.dim() >= 2 else 0
    if not -x.dim() <= dim < max(x.dim(), 1):
        raise ValueError(f"dim {dim} is out of range for a {x.dim()}-d input")
    return dim % max(x.dim(), 1)


def _kind(target: torch.Tensor, target_type: str) -> str:
    if target_type != "auto":
        return target_type
    return "probs" if target.is_floating_point() else "labels"


def _need_grad(x: torch.Tensor) -> bool:
    return x.requires_grad and torch.is_grad_enabled()


def _real(value: Any) -> float:
    return float(value)


def _base(base: Any) -> Optional[float]:
    return None if base is None else float(base)


_opt_real = _base


def _extended(x: torch.Tensor, dim: int, rows: Any, reduction: str, base: Any,
              temperature: float, where: Any, sample_weight: Any, z_loss: Any,
              softcap: Any) -> torch.Tensor:
    """A loss with SPEC §7's extras, in differentiable torch operations around the per-row
    values `rows(x)` -> (values in nats, row weights r_i or None) of the plain op or of a
    TopK target: soft-cap first, then l_i += z·lse_i²·r_i, then sample weights and the
    reduction (divcore._torch_extras; the same rules as the numpy functions)."""
    reduction = _rules.check_reduction(reduction)
    z = _rules.check_z_loss(z_loss)
    c = _rules.check_softcap(softcap)
    unit = _rules.log_base(base)
    t = _rules.check_temperature(temperature)
    if c is not None:
        x = _tx.soft_capped(x, c)
    values, row_weight = rows(x)
    if z != 0.0:
        zt = torch.movedim(x, dim, -1).to(values.dtype) / t
        if where is not None:
            mask = torch.movedim(torch.broadcast_to(_operand(where, "where"), x.shape), dim, -1)
            zt = zt.masked_fill(~mask, -float("inf"))
        lse = torch.logsumexp(zt, dim=-1)
        r = row_weight if row_weight is not None else torch.ones_like(values)
        values = values + torch.where(r != 0, z * lse * lse * r, torch.zeros_like(values))
    if unit != 1.0:
        values = values / unit
    s = (None if sample_weight is None
         else _tx.sample_weights(sample_weight, values.shape, values.dtype))
    return _tx.weighted(values, row_weight, s, reduction)


def _label_row_weight(t: torch.Tensor, weight: Any, ignore_index: Optional[int],
                      dtype: torch.dtype) -> torch.Tensor:
    """r_i = w_y (1 without class weights), 0 for an ignored row: the rows' weights in
    the mean."""
    keep = (t != ignore_index) if ignore_index is not None else torch.ones_like(t, dtype=torch.bool)
    if weight is None:
        return keep.to(dtype)
    w = _operand(weight, "weight").to(dtype)
    return torch.where(keep, w[torch.where(keep, t, torch.zeros_like(t))],
                       torch.zeros((), dtype=dtype))


# ------------------------------------------------------------------- functions

def cross_entropy(input: torch.Tensor, target: Any, weight: Any = None,
                  ignore_index: Optional[int] = -100, reduction: Reduction = "mean",
                  label_smoothing: float = 0.0, *, dim: Optional[int] = None,
                  target_type: TargetType = "auto", temperature: float = 1.0,
                  where: Any = None, base: Optional[float] = None,
                  validate: bool = True, sum_tol: Optional[float] = None,
                  tail: str = "bucket", sample_weight: Any = None, z_loss: float = 0.0,
                  softcap: Optional[float] = None) -> torch.Tensor:
    """Cross-entropy H(p, q) between a target and q = softmax(input / T), as
    `torch.nn.functional.cross_entropy` (same leading arguments and semantics), with
    divcore's target types, temperature, masks and bases.

    Parameters
    ----------
    input : torch.Tensor
        CPU tensor of raw scores: (C,), (N, C) or (N, C, d1, ...); any float dtype and
        strides.
    target : torch.Tensor or array_like
        Class labels (N, d1, ...) or a distribution of the input's shape (probs, log_probs
        or a teacher's logits, see `target_type`); a floating target that requires grad
        gets a gradient.
    weight : torch.Tensor, optional
        (C,) class weights (no gradient).
    ignore_index : int or None, default -100
        Rows with this label contribute 0 and are left out of the mean.
    reduction : {'none', 'sum', 'mean'}, default 'mean'
        As torch: 'mean' with labels and `weight` is Σ w_y·l / Σ w_y.
    label_smoothing : float, default 0.0
        As torch (labels and probs targets).
    dim : int, optional
        The class dim; default torch's (1, or 0 for a 1-d input).
    target_type, temperature, where, base, validate, sum_tol
        As for `divcore.cross_entropy`.
    tail, sample_weight, z_loss, softcap
        As for `divcore.cross_entropy`; a `TopK` target holds tensors (or arrays) of the
        target's shape plus k. These are computed in differentiable torch operations
        around the loss (gradients of any order, torch.compile and torch.func alike).

    Returns
    -------
    torch.Tensor
        The loss: 0-d for 'sum' and 'mean', the target's shape for 'none'; float64 for
        float64 input, else float32.

    Raises
    ------
    TypeError
        `input` is not a tensor, or a tensor is not a dense CPU tensor.
    NotImplementedError
        `weight` requires grad.
    IndexError, ValueError
        As the numpy function raises them (labels out of range, bad keywords, a target
        row that is not a distribution).

    Examples
    --------
    >>> import torch, divcore.torch as dct
    >>> x = torch.zeros(1, 2, 3, dtype=torch.float64, requires_grad=True)  # (N, C, d)
    >>> loss = dct.cross_entropy(x, torch.tensor([[1, 0, 1]]))
    >>> print(f"{loss.item():.6f}")  # log 2
    0.693147
    >>> (g,) = torch.autograd.grad(loss, x, create_graph=True)
    >>> (h,) = torch.autograd.grad(g[0, 0, 0], x)  # a row of the Hessian
    >>> print(f"{h[0, 0, 0].item():.6f}")  # q(1 - q) / 3 rows
    0.083333
    """
    if (weight is None and dim is None and where is None and base is None and sum_tol is None
            and sample_weight is None and softcap is None and validate is True
            and type(target_type) is str and target_type == "auto"
            and type(temperature) is float and temperature == 1.0
            and type(z_loss) is float and z_loss == 0.0
            and type(tail) is str and tail == "bucket"):
        # divcore's keywords at their defaults: maybe a plain call, for the fast path
        loss = _ops.plain_cross_entropy(divcore, input, target, ignore_index, reduction,
                                        label_smoothing)
        if loss is not None:
            return loss
    x = _input(input)
    if isinstance(weight, torch.Tensor) and weight.requires_grad:
        raise NotImplementedError("cross_entropy: no gradient with respect to `weight` "
                                  "(as in torch); pass weight.detach()")
    plain = not _rules.wants_extras(target, tail, sample_weight, z_loss, softcap)
    if _rules.is_topk(target):
        return _extended(x, _dim(x, dim), lambda xc: (_tx.topk_rows(
            xc, target, _dim(x, dim), tail, _real(temperature), _operand(where, "where"),
            "ce"), None), reduction, base, temperature, where, sample_weight, z_loss, softcap)
    t = _operand(target, "target")

    def loss(xc: torch.Tensor, reduction: str, base: Any) -> torch.Tensor:
        return _ops.call("cross_entropy",
                         [xc, t, _operand(weight, "weight"), _operand(where, "where")],
                         [_dim(x, dim), _kind(t, target_type),
                          _ops.NO_IGNORE if ignore_index is None else int(ignore_index),
                          _real(label_smoothing), _real(temperature), reduction,
                          _base(base), bool(validate), _opt_real(sum_tol), _need_grad(xc)])

    def rows(xc: torch.Tensor) -> Any:
        values = loss(xc, "none", None)
        if _kind(t, target_type) != "labels":
            return values, None
        return values, _label_row_weight(t, weight, ignore_index, values.dtype)

    if plain:
        return loss(x, reduction, base)
    return _extended(x, _dim(x, dim), rows, reduction, base, temperature, where,
                     sample_weight, z_loss, softcap)


def kl_divergence(input: torch.Tensor, target: Any, *, dim: Optional[int] = None,
                  target_type: TargetType = "auto", reverse: bool = False,
                  temperature: float = 1.0, where: Any = None,
                  reduction: Reduction = "mean", base: Optional[float] = None,
                  validate: bool = True, sum_tol: Optional[float] = None,
                  tail: str = "bucket", sample_weight: Any = None,
                  softcap: Optional[float] = None) -> torch.Tensor:
    """KL(p ‖ q) (reverse=True: KL(q ‖ p)) with q = softmax(input / T), per row.

    torch's `kl_div(log_softmax(input), target, reduction="batchmean")` for
    reduction='mean', from the raw logits and any target type.

    Parameters
    ----------
    input : torch.Tensor
        CPU tensor of raw scores, class dim 1 (0 for a 1-d input).
    target : torch.Tensor or array_like
        As for `divcore.kl_divergence`; a floating target that requires grad gets a
        gradient.
    dim : int, optional
        The class dim; default torch's.
    target_type, reverse, temperature, where, reduction, base, validate, sum_tol
        As for `divcore.kl_divergence`.
    tail, sample_weight, softcap
        As for `divcore.kl_divergence` (a `TopK` target holds tensors); computed in
        differentiable torch operations around the loss.

    Returns
    -------
    torch.Tensor
        0-d for 'sum' and 'mean', one value per row for 'none'; float64 for float64
        input, else float32.

    Raises
    ------
    TypeError
        `input` is not a tensor, or a tensor is not a dense CPU tensor.
    IndexError, ValueError
        As the numpy function raises them.

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
    x = _input(input)
    if _rules.is_topk(target):
        return _extended(x, _dim(x, dim), lambda xc: (_tx.topk_rows(
            xc, target, _dim(x, dim), tail, _real(temperature), _operand(where, "where"),
            "kl", reverse=bool(reverse)), None), reduction, base, temperature, where,
            sample_weight, 0.0, softcap)
    t = _operand(target, "target")

    def rows(xc: torch.Tensor, reduction: str = "none", base: Any = None) -> Any:
        return _ops.call("kl_divergence", [xc, t, _operand(where, "where")],
                         [_dim(x, dim), _kind(t, target_type), bool(reverse),
                          _real(temperature), reduction, _base(base), bool(validate),
                          _opt_real(sum_tol), _need_grad(xc)])

    if not _rules.wants_extras(target, tail, sample_weight, 0.0, softcap):
        return rows(x, reduction, base)
    return _extended(x, _dim(x, dim), lambda xc: (rows(xc), None), reduction, base,
                     temperature, where, sample_weight, 0.0, softcap)


def js_divergence(input: torch.Tensor, target: Any, *, dim: Optional[int] = None,
                  target_type: TargetType = "auto", beta: float = 0.5,
                  temperature: float = 1.0, where: Any = None,
                  reduction: Reduction = "mean", base: Optional[float] = None,
                  validate: bool = True, sum_tol: Optional[float] = None,
                  tail: str = "bucket", sample_weight: Any = None,
                  softcap: Optional[float] = None) -> torch.Tensor:
    """Jensen-Shannon divergence β·KL(p ‖ m) + (1-β)·KL(q ‖ m), m = βp + (1-β)q,
    q = softmax(input / T), per row.

    Parameters
    ----------
    input : torch.Tensor
        CPU tensor of raw scores, class dim 1 (0 for a 1-d input).
    target : torch.Tensor or array_like
        As for `divcore.js_divergence`; a floating target that requires grad gets a
        gradient.
    dim : int, optional
        The class dim; default torch's.
    target_type, beta, temperature, where, reduction, base, validate, sum_tol
        As for `divcore.js_divergence`.
    tail, sample_weight, softcap
        As for `divcore.js_divergence` (a `TopK` target holds tensors); computed in
        differentiable torch operations around the loss.

    Returns
    -------
    torch.Tensor
        0-d for 'sum' and 'mean', one value per row for 'none'; float64 for float64
        input, else float32.

    Raises
    ------
    TypeError
        `input` is not a tensor, or a tensor is not a dense CPU tensor.
    IndexError, ValueError
        As the numpy function raises them.

    Examples
    --------
    >>> import torch, divcore.torch as dct
    >>> x = torch.tensor([[1.0, -1.0]], dtype=torch.float64, requires_grad=True)
    >>> js = dct.js_divergence(x, torch.tensor([[0.0, 1.0]], dtype=torch.float64))
    >>> js.backward()
    >>> print(f"{js.item():.6f}", x.grad[0, 0].item() > 0)
    0.503359 True
    """
    x = _input(input)
    if _rules.is_topk(target):
        return _extended(x, _dim(x, dim), lambda xc: (_tx.topk_rows(
            xc, target, _dim(x, dim), tail, _real(temperature), _operand(where, "where"),
            "js", beta=_rules.check_beta(beta)), None), reduction, base, temperature, where,
            sample_weight, 0.0, softcap)
    t = _operand(target, "target")

    def rows(xc: torch.Tensor, reduction: str = "none", base: Any = None) -> Any:
        return _ops.call("js_divergence", [xc, t, _operand(where, "where")],
                         [_dim(x, dim), _kind(t, target_type), _real(beta),
                          _real(temperature), reduction, _base(base), bool(validate),
                          _opt_real(sum_tol)])

    if not _rules.wants_extras(target, tail, sample_weight, 0.0, softcap):
        return rows(x, reduction, base)
    return _extended(x, _dim(x, dim), lambda xc: (rows(xc), None), reduction, base,
                     temperature, where, sample_weight, 0.0, softcap)


def entropy(input: torch.Tensor, *, dim: Optional[int] = None,
            input_type: Literal["logits", "probs", "log_probs"] = "logits",
            temperature: float = 1.0, where: Any = None, reduction: Reduction = "none",
            base: Optional[float] = None, sum_tol: Optional[float] = None,
            sample_weight: Any = None, softcap: Optional[float] = None) -> torch.Tensor:
    """Entropy H = -Σ p log p of softmax(input / T) (or of probabilities or
    log-probabilities), per row.

    Parameters
    ----------
    input : torch.Tensor
        CPU tensor, class dim 1 (0 for a 1-d input).
    dim : int, optional
        The class dim; default torch's.
    input_type, temperature, where, reduction, base, sum_tol, sample_weight, softcap
        As for `divcore.entropy` (reduction 'none' by default).

    Returns
    -------
    torch.Tensor
        One value per row for 'none', else 0-d; float64 for float64 input, else float32.

    Raises
    ------
    TypeError
        `input` is not a tensor, or a tensor is not a dense CPU tensor.
    ValueError
        As the numpy function raises them.

    Examples
    --------
    >>> import torch, divcore.torch as dct
    >>> x = torch.zeros(2, 4, dtype=torch.float64, requires_grad=True)
    >>> h = dct.entropy(x, reduction="sum")
    >>> print(f"{h.item():.6f}")  # 2 log 4
    2.772589
    >>> h.backward()
    >>> print(x.grad.abs().max().item())  # the uniform distribution is a maximum
    0.0
    """
    x = _input(input)

    def rows(xc: torch.Tensor, reduction: str = "none", base: Any = None) -> Any:
        return _ops.call("entropy", [xc, None, _operand(where, "where")],
                         [_dim(x, dim), input_type, _real(temperature), reduction,
                          _base(base), _opt_real(sum_tol)])

    if sample_weight is None and softcap is None:
        return rows(x, reduction, base)
    if softcap is not None and input_type != "logits":
        raise ValueError("softcap applies to input_type='logits' only")
    return _extended(x, _dim(x, dim), lambda xc: (rows(xc), None), reduction, base,
                     temperature, where, sample_weight, 0.0, softcap)


def binary_cross_entropy_with_logits(input: torch.Tensor, target: Any, weight: Any = None,
                                     reduction: Reduction = "mean", pos_weight: Any = None,
                                     *, base: Optional[float] = None,
                                     sample_weight: Any = None) -> torch.Tensor:
    """Binary cross-entropy on logits, elementwise, as
    `torch.nn.functional.binary_cross_entropy_with_logits`.

    l = w·[pw·y·softplus(-x) + (1 - y)·softplus(x)]

    Parameters
    ----------
    input : torch.Tensor
        CPU tensor of raw scores x, any shape.
    target : torch.Tensor or array_like
        y, of the input's shape; gets a gradient if it requires one.
    weight : torch.Tensor, optional
        w, broadcast to the input's shape; gets a gradient if it requires one.
    reduction : {'none', 'sum', 'mean'}, default 'mean'
        'mean' over all elements.
    pos_weight : torch.Tensor, optional
        pw, broadcast along the last dim; gets a gradient if it requires one.
    base, sample_weight
        As for `divcore.binary_cross_entropy` (sample weights scale the losses and make
        'mean' Σ s·l / Σ s).

    Returns
    -------
    torch.Tensor
        The input's shape for 'none', else 0-d; float64 for float64 input, else float32.

    Raises
    ------
    TypeError
        `input` is not a tensor, or a tensor is not a dense CPU tensor.
    ValueError
        Operands whose shapes do not fit, a bad keyword value.

    Examples
    --------
    >>> import torch, divcore.torch as dct
    >>> x = torch.tensor([0.0, 0.0], dtype=torch.float64, requires_grad=True)
    >>> y = torch.tensor([1.0, 0.0], dtype=torch.float64)
    >>> dct.binary_cross_entropy_with_logits(x, y).backward()
    >>> x.grad
    tensor([-0.2500,  0.2500], dtype=torch.float64)
    """
    x = _input(input)

    def loss(reduction: str) -> torch.Tensor:
        return _ops.call("binary_cross_entropy",
                         [x, _operand(target, "target"), _operand(weight, "weight"),
                          _operand(pos_weight, "pos_weight")], [reduction, _base(base)])

    if sample_weight is None:
        return loss(reduction)
    reduction = _rules.check_reduction(reduction)
    values = loss("none")
    s = _operand(sample_weight, "sample_weight")
    if not torch.compiler.is_compiling():
        _rules.bce_sample_weight(s.detach().cpu().numpy(), tuple(x.shape))
    s = torch.broadcast_to(s.to(values.dtype), values.shape)
    return _tx.weighted(values, torch.ones_like(values), s, reduction)


def binary_cross_entropy(input: torch.Tensor, target: Any, *, weight: Any = None,
                         pos_weight: Any = None, reduction: Reduction = "mean",
                         base: Optional[float] = None,
                         sample_weight: Any = None) -> torch.Tensor:
    """`binary_cross_entropy_with_logits` under divcore's name and keywords (on logits,
    like `divcore.binary_cross_entropy`; torch's `binary_cross_entropy` takes
    probabilities).

    Parameters
    ----------
    input, target, weight, pos_weight, reduction, base, sample_weight
        As for `binary_cross_entropy_with_logits`.

    Returns
    -------
    torch.Tensor
        As `binary_cross_entropy_with_logits` returns it.

    Raises
    ------
    TypeError, ValueError
        As `binary_cross_entropy_with_logits` raises them.

    Examples
    --------
    >>> import torch, divcore.torch as dct
    >>> x = torch.tensor([0.0, 0.0], dtype=torch.float64, requires_grad=True)
    >>> dct.binary_cross_entropy(x, torch.tensor([1.0, 0.0], dtype=torch.float64)).backward()
    >>> x.grad
    tensor([-0.2500,  0.2500], dtype=torch.float64)
    """
    return binary_cross_entropy_with_logits(input, target, weight, reduction, pos_weight,
                                            base=base, sample_weight=sample_weight)


# --------------------------------------------------------------------- modules

class _Loss(torch.nn.Module):
    """Holds a call's keywords; `forward(input, target)` calls the function."""

    def __init__(self, reduction: Reduction, **keywords: Any):
        super().__init__()
        self.reduction = reduction
        self.keywords = keywords

    def _with(self, sample_weight: Any) -> dict:
        """The module's keywords, plus this call's sample weights when given."""
        if sample_weight is None:
            return self.keywords
        return dict(self.keywords, sample_weight=sample_weight)

    def extra_repr(self) -> str:
        parts = [f"reduction={self.reduction!r}"]
        parts += [f"{k}={v!r}" for k, v in self.keywords.items() if v is not None]
        return ", ".join(parts)


class CrossEntropyLoss(_Loss):
    """`cross_entropy` as a module, like `torch.nn.CrossEntropyLoss`.

    Parameters
    ----------
    weight : torch.Tensor, optional
        (C,) class weights, kept as a buffer (moves with the module).
    ignore_index, reduction, label_smoothing
        As torch's.
    **keywords
        divcore's extra keywords of `cross_entropy` (dim, target_type, temperature,
        where, base, validate).

    Returns
    -------
    CrossEntropyLoss
        A module whose `forward(input, target)` returns `cross_entropy(...)`.

    Raises
    ------
    TypeError, ValueError
        As `cross_entropy` raises them (when called).

    Examples
    --------
    >>> import torch, divcore.torch as dct
    >>> loss_fn = dct.CrossEntropyLoss(label_smoothing=0.1)
    >>> x = torch.zeros(2, 3)
    >>> print(f"{loss_fn(x, torch.tensor([0, 2])).item():.6f}")  # log 3
    1.098612
    """

    def __init__(self, weight: Optional[torch.Tensor] = None, ignore_index: int = -100,
                 reduction: Reduction = "mean", label_smoothing: float = 0.0,
                 **keywords: Any):
        super().__init__(reduction, ignore_index=ignore_index,
                         label_smoothing=label_smoothing, **keywords)
        self.register_buffer("weight", weight)

    def forward(self, input: torch.Tensor, target: Any,
                sample_weight: Any = None) -> torch.Tensor:
        """The loss; `sample_weight` (per row, optional) as for `cross_entropy`."""
        return cross_entropy(input, target, self.weight, reduction=self.reduction,
                             **self._with(sample_weight))


class BCEWithLogitsLoss(_Loss):
    """`binary_cross_entropy_with_logits` as a module, like `torch.nn.BCEWithLogitsLoss`.

    Parameters
    ----------
    weight : torch.Tensor, optional
        Broadcast to the input's shape, kept as a buffer.
    reduction : {'none', 'sum', 'mean'}, default 'mean'
    pos_weight : torch.Tensor, optional
        Broadcast along the last dim, kept as a buffer.
    base : float, optional
        The logarithm's base (None: nats).

    Returns
    -------
    BCEWithLogitsLoss
        A module whose `forward(input, target)` returns the loss.

    Raises
    ------
    TypeError, ValueError
        As `binary_cross_entropy_with_logits` raises them (when called).

    Examples
    --------
    >>> import torch, divcore.torch as dct
    >>> loss_fn = dct.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0]))
    >>> print(f"{loss_fn(torch.zeros(2), torch.tensor([1.0, 0.0])).item():.6f}")
    1.039721
    """

    def __init__(self, weight: Optional[torch.Tensor] = None, reduction: Reduction = "mean",
                 pos_weight: Optional[torch.Tensor] = None, *, base: Optional[float] = None):
        super().__init__(reduction, base=base)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: torch.Tensor, target: Any,
                sample_weight: Any = None) -> torch.Tensor:
        """The loss; `sample_weight` (optional) as for `binary_cross_entropy_with_logits`."""
        return binary_cross_entropy_with_logits(input, target, self.weight, self.reduction,
                                                self.pos_weight, **self._with(sample_weight))


class KLDivergenceLoss(_Loss):
    """`kl_divergence` as a module: KL(target ‖ softmax(input / T)) from raw logits
    (torch.nn.KLDivLoss takes log-probabilities; this one takes logits).

    Parameters
    ----------
    reduction : {'none', 'sum', 'mean'}, default 'mean'
        'mean' is torch's 'batchmean'.
    **keywords
        Those of `kl_divergence` (dim, target_type, reverse, temperature, where, base,
        validate).

    Returns
    -------
    KLDivergenceLoss
        A module whose `forward(input, target)` returns `kl_divergence(...)`.

    Raises
    ------
    TypeError, ValueError
        As `kl_divergence` raises them (when called).

    Examples
    --------
    >>> import torch, divcore.torch as dct
    >>> distill = dct.KLDivergenceLoss(target_type="logits", temperature=2.0)
    >>> print(f"{distill(torch.zeros(1, 2), torch.zeros(1, 2)).item():.6f}")
    0.000000
    """

    def __init__(self, reduction: Reduction = "mean", **keywords: Any):
        super().__init__(reduction, **keywords)

    def forward(self, input: torch.Tensor, target: Any,
                sample_weight: Any = None) -> torch.Tensor:
        """The loss; `sample_weight` (per row, optional) as for `kl_divergence`."""
        return kl_divergence(input, target, reduction=self.reduction,
                             **self._with(sample_weight))


class JSDivergenceLoss(_Loss):
    """`js_divergence` as a module.

    Parameters
    ----------
    reduction : {'none', 'sum', 'mean'}, default 'mean'
    **keywords
        Those of `js_divergence` (dim, target_type, beta, temperature, where, base,
        validate).

    Returns
    -------
    JSDivergenceLoss
        A module whose `forward(input, target)` returns `js_divergence(...)`.

    Raises
    ------
    TypeError, ValueError
        As `js_divergence` raises them (when called).

    Examples
    --------
    >>> import torch, divcore.torch as dct
    >>> js = dct.JSDivergenceLoss(target_type="logits", base=2)
    >>> print(f"{js(torch.tensor([[50.0, -50.0]]), torch.tensor([[-50.0, 50.0]])).item():.4f}")
    1.0000
    """

    def __init__(self, reduction: Reduction = "mean", **keywords: Any):
        super().__init__(reduction, **keywords)

    def forward(self, input: torch.Tensor, target: Any,
                sample_weight: Any = None) -> torch.Tensor:
        """The loss; `sample_weight` (per row, optional) as for `js_divergence`."""
        return js_divergence(input, target, reduction=self.reduction,
                             **self._with(sample_weight))


class EntropyLoss(_Loss):
    """`entropy` as a module (e.g. an entropy bonus or penalty); reduction 'mean' by
    default, as torch's losses.

    Parameters
    ----------
    reduction : {'none', 'sum', 'mean'}, default 'mean'
    **keywords
        Those of `entropy` (dim, input_type, temperature, where, base).

    Returns
    -------
    EntropyLoss
        A module whose `forward(input)` returns `entropy(...)`.

    Raises
    ------
    TypeError, ValueError
        As `entropy` raises them (when called).

    Examples
    --------
    >>> import torch, divcore.torch as dct
    >>> print(f"{dct.EntropyLoss(base=2)(torch.zeros(3, 4)).item():.6f}")  # 2 bits
    2.000000
    """

    def __init__(self, reduction: Reduction = "mean", **keywords: Any):
        super().__init__(reduction, **keywords)

    def forward(self, input: torch.Tensor, sample_weight: Any = None) -> torch.Tensor:
        """The entropy; `sample_weight` (per row, optional) as for `entropy`."""
        return entropy(input, reduction=self.reduction, **self._with(sample_weight))


def row_stats(input: torch.Tensor, target: Any = None, *, dim: Optional[int] = None,
              k: int = 0, temperature: float = 1.0, where: Any = None) -> "divcore.RowStats":
    """`divcore.row_stats` on a CPU tensor: per row, the log-sum-exp, the target's
    log-probability, the entropy, the argmax and the top-k of softmax(input / T), from one
    read of the logits, as tensors.

    Differentiable with respect to `input`: logsumexp, log_prob (the selected tokens'
    log-probabilities of RL losses), entropy and topk_log_probs carry gradients of any
    order (the backward is written in torch operations); argmax and topk_indices are
    integers. The forward reads the tensor's memory without a copy. It is a torch operator
    (`torch.ops.divcore.row_stats`, with a fake kernel for shapes and registered
    autograd), so torch.compile(fullgraph=True) captures it.

    Parameters
    ----------
    input : torch.Tensor
        CPU tensor of logits, class dim 1 (0 for a 1-d input).
    target : torch.Tensor or array_like, optional
        Integer class labels of the input's shape without the class dim.
    dim : int, optional
        The class dim; default torch's.
    k, temperature, where
        As for `divcore.row_stats`.

    Returns
    -------
    divcore.RowStats
        Of tensors: logsumexp, log_prob (None without a target) and entropy (float64 for
        float64 input, else float32), argmax (int64), of the input's shape without the
        class dim; topk_indices (int64) and topk_log_probs with a last dim of k, sorted by
        descending log-probability (None for k = 0).

    Raises
    ------
    TypeError
        `input` is not a tensor, or a tensor is not a dense CPU tensor.
    IndexError, ValueError
        As the numpy function raises them.

    Examples
    --------
    >>> import torch, divcore.torch as dct
    >>> logits = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]])
    >>> st = dct.row_stats(logits, torch.tensor([0, 1]), k=2)
    >>> print(st.argmax.tolist(), st.topk_indices.tolist())
    [0, 1] [[0, 1], [1, 0]]
    >>> print(f"{torch.exp(-st.log_prob.mean()).item():.4f}")  # perplexity
    1.3299
    """
    x = _input(input)
    labels = _operand(target, "target")
    mask = _operand(where, "where")
    k = _rules.check_integer(k, "k")
    out = _ops.row_stats(x, None if labels is None else labels.detach(),
                            None if mask is None else mask.detach(), _dim(x, dim), k,
                            _rules.check_temperature(temperature))
    absent = (False, labels is None, False, False, k == 0, k == 0)
    return divcore.RowStats(*(None if no else v for v, no in zip(out, absent)))
