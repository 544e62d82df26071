"""The public functions of SPEC §3, as methods of one class bound to a backend.

`Functions(kernels)` computes with the row kernels of `kernels`: divcore binds one to the
compiled core (divcore._core), divcore.reference one to the pure-Python reference
(divcore._refkernels), so both share every argument rule (divcore._rules, which turns a
call into a Plan) and every reduction. No formula lives here (docs/design.md): a method
builds the plan, hands it to the backend and shapes what comes back.

On the compiled backend the names in the `divcore` namespace are the compiled front's
(divcore/_front.pxi): the same signatures and docstrings, reading ordinary calls straight
into the batch driver and handing anything else to these methods, untouched.
"""
import math
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np

from . import _docstrings, _rules, _topk

PUBLIC = ("logsumexp", "log_softmax", "softmax", "cross_entropy", "kl_divergence",
          "entropy", "decompose", "cross_entropy_and_grad", "kl_divergence_and_grad",
          "js_divergence", "binary_cross_entropy")


class Decomposition(NamedTuple):
    """H(p, q) = H(p) + KL(p ‖ q), each reduced the same way."""

    cross_entropy: Any
    entropy: Any
    kl_divergence: Any


class RowStats(NamedTuple):
    """divcore.row_stats' per-row statistics, from one read of the logits."""

    logsumexp: Any
    log_prob: Any
    entropy: Any
    argmax: Any
    topk_indices: Any
    topk_log_probs: Any


def _reduce(values, row_weight, reduction, dtype):
    """Reduce float64 per-row values: 'sum', or 'mean' = Σ values / Σ row_weight (the
    number of rows when row_weight is None; nan for an empty or fully ignored batch).
    np.sum's pairwise order: the compiled front reproduces it bit for bit."""
    total = float(np.sum(values))
    if reduction == "sum":
        return dtype.type(total)
    denom = float(values.shape[0]) if row_weight is None else float(np.sum(row_weight))
    return dtype.type(total / denom if denom != 0.0 else math.nan)


def _weighted(plan, rows, row_weight, sample_weight, reduction):
    """Per-row float64 values (a dict) -> results: divided by log(base), each row times its
    sample weight s_i (a row of weight 0 gives exactly 0, whatever its loss), then reduced:
    'mean' = Σ s_i·l_i / Σ s_i·r_i with r_i the row weight of the plain mean (w_y with
    class-weighted labels, 0 for an ignored row, else 1)."""
    out = {}
    if sample_weight is not None:
        counted = sample_weight != 0
        row_weight = sample_weight if row_weight is None else sample_weight * row_weight
    for name, values in rows.items():
        if plan.log_base != 1.0:
            values = values / plan.log_base
        if sample_weight is not None:
            values = np.where(counted, values * sample_weight, 0.0)
        out[name] = (plan.finish(values) if reduction == "none"
                     else _reduce(values, row_weight, reduction, plan.dtype))
    return out


def _grad_row_scale(n_rows, row_weight, sample_weight, reduction):
    """What each row's own gradient is multiplied by in the gradient of the reduced loss
    (a scalar or per-row float64), as _weighted reduces the values."""
    if sample_weight is not None:
        row_weight = sample_weight if row_weight is None else sample_weight * row_weight
    scale = 1.0
    if reduction == "mean":
        denom = float(n_rows) if row_weight is None else float(np.sum(row_weight))
        scale = 1.0 / denom if denom != 0.0 else 0.0
    return scale if sample_weight is None else sample_weight * scale


_WANT = {"cross_entropy": ("ce",), "cross_entropy_and_grad": ("ce",),
         "kl_divergence": ("kl",), "kl_divergence_and_grad": ("kl",),
         "decompose": ("ce", "h", "kl"), "js_divergence": ("js",)}


_BOUND = {}  # backend name -> its Functions, for pickling bound methods by name


def bound_functions(backend_name):
    """The Functions instance of a backend ('compiled' or 'reference')."""
    return _BOUND[backend_name]


# When a writer fills `out=`, it computes this many bytes of rows at a time: one piece's
# float result is the only temporary, never a float copy of the whole output.
_OUT_PIECE_BYTES = 1 << 22


def _rounded_into(out, result):
    """result rounded once into `out` (numpy's and ml_dtypes' casts: to nearest even)."""
    np.copyto(out, result, casting="unsafe")
    return out


def _grad_into(result, out):
    """(loss, grad) with the gradient rounded into `out` when one is given."""
    if out is None:
        return result
    return result[0], _rounded_into(out, result[1])


def _write_into(out, compute, x, axis, where):
    """compute(x, where), a writer's result, rounded into `out`: piece by piece along the
    first axis when that axis is not a class axis and `out` does not overlap the input,
    else whole (numpy's rule for overlapping operands: the result first, then the copy)."""
    a = _rules.as_array(x, "x")
    _rules.check_out(out, a.shape)
    if a.ndim < 2 or axis is None:
        return _rounded_into(out, compute(a, where))
    axes = axis if isinstance(axis, tuple) else (axis,)
    try:
        axes = [_rules.normalize_axis(ax, a.ndim) for ax in axes]
        w = None if where is None else np.broadcast_to(np.asarray(where), a.shape)
    except (TypeError, ValueError, IndexError):
        return _rounded_into(out, compute(a, where))  # the call's own error, as usual
    if 0 in axes or np.may_share_memory(out, a) or (w is not None
                                                     and np.may_share_memory(out, w)):
        return _rounded_into(out, compute(a, where))
    step = max(1, _OUT_PIECE_BYTES // max(1, 4 * (a.size // a.shape[0])))
    for lo in range(0, a.shape[0], step):
        piece = slice(lo, lo + step)
        _rounded_into(out[piece], compute(a[piece], None if w is None else w[piece]))
    return out


class Functions:
    """The public functions computing with one backend's row kernels."""

    def __init__(self, kernels, name):
        self.kernels = kernels
        self.name = name
        _BOUND[name] = self

    def __reduce__(self):  # bound methods pickle by the backend's name
        return bound_functions, (self.name,)

    def __repr__(self):
        return f"<divcore functions on the {self.name} backend>"

    # ---------------------------------------------------------------- shaping results

    def _logsumexp(self, plan):
        lse = self.kernels.lse_rows(plan)
        out = lse.reshape(plan.lead_shape).astype(plan.dtype)
        if plan.keepdims:
            shape = list(plan.shape)
            for ax in plan.axes:
                shape[ax] = 1
            out = out.reshape(shape)
        return _rules.scalar_or_array(out)

    def _softmax_family(self, plan, exponentiate):
        # rows adjacent along a strided class axis come back laid out as the logits are,
        # written in their order (the compiled core's in-place scan); else class-last
        in_layout = getattr(self.kernels, "log_softmax_in_layout", None)
        if in_layout is not None and in_layout(plan):
            out = _rules.empty_in_layout(plan.rows, plan.dtype)
        else:
            out = np.empty((plan.n_rows, plan.n_classes), dtype=plan.dtype)
        self.kernels.log_softmax_rows(plan, out, exponentiate)
        ndim, axes = len(plan.shape), plan.axes
        rest = [ax for ax in range(ndim) if ax not in axes]
        moved_shape = tuple(plan.shape[ax] for ax in rest) + tuple(plan.shape[ax] for ax in axes)
        out = out.reshape(moved_shape)
        return np.moveaxis(out, list(range(len(rest), ndim)), list(axes))

    def _losses(self, plan, want):
        """Per-row losses (dict of float64 arrays) and the row weights of the mean."""
        if plan.labels is not None:
            ce, h, kl, row_weight = self.kernels.ce_labels_rows(
                plan, "h" in want or "kl" in want)
            return {"ce": ce, "h": h, "kl": kl}, row_weight
        ce, h, kl = self.kernels.soft_rows(plan, tuple(want))
        return {"ce": ce, "h": h, "kl": kl}, None

    def _finish_loss(self, plan, values, row_weight):
        if plan.log_base != 1.0:
            values = values / plan.log_base
        if plan.reduction == "none":
            return plan.finish(values)
        return _reduce(values, row_weight, plan.reduction, plan.dtype)

    def _loss_and_grad(self, plan, loss):
        """(reduced loss, gradient of the reduced loss w.r.t. the logits) from one fused
        kernel per row; the gradient has the logits' shape and compute dtype."""
        grad = np.empty((plan.n_rows, plan.n_classes), dtype=plan.dtype)
        if plan.labels is not None:
            values, row_weight = self.kernels.ce_labels_grad_rows(plan, grad)
        else:
            row_weight = None
            values = self.kernels.soft_grad_rows(plan, loss, grad)
        value = self._finish_loss(plan, values, row_weight)
        axis = plan.axes[0]
        grad = np.moveaxis(grad.reshape(plan.lead_shape + (plan.n_classes,)), -1, axis)
        return value, grad

    def _bce(self, plan):
        x, dtype = plan.logits, plan.dtype
        operands = [x, plan.target, plan.weight, plan.pos_weight]
        present = [a for a in operands if a is not None]
        out = np.empty(x.shape, dtype=np.float64) if plan.reduction == "none" else None
        it = np.nditer(present + ([out] if out is not None else []),
                       flags=["external_loop", "buffered", "zerosize_ok", "grow_inner"],
                       op_flags=[["readonly"]] * len(present)
                       + ([["writeonly"]] if out is not None else []),
                       op_dtypes=[dtype] * len(present)
                       + ([np.float64] if out is not None else []),
                       casting="unsafe", buffersize=16384)
        total = 0.0
        with it:
            for chunk in it:
                ops = iter(chunk)
                xs, ys = next(ops), next(ops)
                ws = next(ops) if operands[2] is not None else None
                pws = next(ops) if operands[3] is not None else None
                total += self.kernels.bce_flat(xs, ys, ws, pws, next(ops, None))
        if plan.log_base != 1.0:
            total /= plan.log_base
            if out is not None:
                out /= plan.log_base
        if plan.reduction == "none":
            return _rules.scalar_or_array(out.astype(dtype))
        if plan.reduction == "sum":
            return dtype.type(total)
        return dtype.type(total / x.size if x.size else math.nan)


    # ------------------------------------- SPEC §7: TopK targets, sample weights, z-loss, cap

    def _extended(self, op, logits, target, kw, tail, sample_weight, z_loss, softcap):
        """A loss call with a TopK target, sample weights, a z-loss or a soft-cap: the per-row
        values (and per-row gradients) of the plain kernels or of the TopK kernels, then

            softcap c:   logits z -> c·tanh(z / c) first; ∂/∂z gains the factor 1 - tanh²
            z-loss z:    l_i += z·lse_i² with lse_i = logsumexp(z_i / T) (times the row weight
                         r_i: 0 for an ignored row);  ∂/∂z_i += 2z·lse_i·r_i·softmax(z_i / T) / T
            weights s:   as _weighted reduces (the gradient scaled the same way).

        These cost extra passes (and a soft-cap one copy of the logits); the plain calls are
        untouched."""
        reduction = _rules.check_reduction(kw["reduction"])
        _rules.check_tail(tail, target)
        z = _rules.check_z_loss(z_loss)
        c = _rules.check_softcap(softcap)
        grad_wanted = op.endswith("_and_grad")
        x, dcap = logits, None
        if c is not None:
            x = _rules.soft_capped(logits, c, derivative=grad_wanted)
            if grad_wanted:
                x, dcap = x
        topk = _rules.is_topk(target)
        rows_kw = dict(kw, reduction="none")
        plan = (self._topk_plan(op, x, target, tail, rows_kw) if topk
                else _rules.plan_loss(op, x, target, **rows_kw))
        s = (None if sample_weight is None
             else _rules.sample_weight_rows(sample_weight, plan.lead_shape))
        want, row_weight, grad = _WANT[op], None, None
        if grad_wanted:
            grad = np.empty((plan.n_rows, plan.n_classes), dtype=plan.dtype)
            if topk and plan.reverse:
                values = self._topk_reverse_grad(plan, x, kw, grad)
            elif topk:
                values = _topk.in_pieces(
                    plan, lambda p, g: self.kernels.topk_grad_rows(p, want[0], g), grad)
            elif plan.labels is not None:
                values, row_weight = self.kernels.ce_labels_grad_rows(plan, grad)
            else:
                values = self.kernels.soft_grad_rows(plan, want[0], grad)
            rows = {want[0]: values}
        elif topk:
            rows = _topk.in_pieces(plan, lambda p, g: self.kernels.topk_rows(p, want))
        elif op == "js_divergence":
            rows = {"js": self.kernels.js_rows(plan)}
        else:
            rows, row_weight = self._losses(plan, want)
            rows = {k: rows[k] for k in want}
        if z != 0.0:
            self._add_z_loss(plan, x, kw, z, rows, row_weight, grad)
        result = _weighted(plan, rows, row_weight, s, reduction)
        if op == "decompose":
            return Decomposition(*(result[k] for k in want))
        if grad is None:
            return result[want[0]]
        scale = _grad_row_scale(plan.n_rows, row_weight, s, reduction)
        if s is not None:
            grad *= scale[:, None]
            grad[s == 0] = 0  # a left-out row's gradient is 0, even where its loss is nan
        elif scale != 1.0:
            grad *= scale
        grad = np.moveaxis(grad.reshape(plan.lead_shape + (plan.n_classes,)), -1, plan.axes[0])
        if dcap is not None:
            grad = (grad * dcap).astype(plan.dtype, copy=False)
        return result[want[0]], grad

    def _add_z_loss(self, plan, x, kw, z, rows, row_weight, grad):
        """rows['ce'] += z·lse²·r per row, and its gradient into `grad` (see _extended)."""
        lse_plan = _rules.plan_class_rows("logsumexp", x, kw["axis"], kw["where"],
                                          kw["temperature"])
        lse = self.kernels.lse_rows(lse_plan)
        r = np.ones(plan.n_rows) if row_weight is None else row_weight
        counted = r != 0
        rows["ce"] = rows["ce"] + np.where(counted, z * lse * lse * r, 0.0)
        if grad is None:
            return
        q = np.empty((plan.n_rows, plan.n_classes), dtype=plan.dtype)
        self.kernels.log_softmax_rows(
            _rules.plan_class_rows("softmax", x, kw["axis"], kw["where"], kw["temperature"]),
            q, True)
        g = 2.0 * z * lse * r / (plan.temperature * plan.log_base)
        grad[counted] += (g[counted, None] * q[counted]).astype(plan.dtype, copy=False)

    def _topk_reverse_grad(self, plan, x, kw, grad):
        """KL(q ‖ p) per row against a TopK target, and its gradient into grad: the row
        values from the TopK kernels, the gradient from log_softmax (divcore._topk)."""
        kl = _topk.in_pieces(plan, lambda p, g: self.kernels.topk_rows(p, ("kl",)))["kl"]
        self.kernels.log_softmax_rows(
            _rules.plan_class_rows("log_softmax", x, kw["axis"], kw["where"],
                                   kw["temperature"]), grad, False)
        _topk.reverse_kl_grad(plan, kl, grad)
        return kl

    def _topk_plan(self, op, x, target, tail, kw):
        """The plan of a loss against a TopK target (divcore._topk)."""
        return _topk.plan_topk(op, x, target, tail=tail, **kw)

    # ------------------------------------------------------------- public functions

    def logsumexp(self, x, axis=-1, *, keepdims=False, where=None):
        """log Σ exp(x) along `axis`, max-shifted, in one pass (SciPy's logsumexp).

        Parameters
        ----------
        $x_values
        $x_axes
        keepdims : bool, default False
            Keep the reduced axes with length 1.
        $x_where

        Returns
        -------
        ndarray or numpy scalar
            The compute dtype (float32 for float32/float16 input, float64 for float64 and
            integers), of `x`'s shape without the class axes.

        Raises
        ------
        ValueError
            0-d input, a repeated axis, or a mask that does not broadcast.
        TypeError
            Complex or non-numeric input.

        Notes
        -----
        lse(x) = M + log Σ_i exp(x_i - M) with M = max x, computed in one blocked pass over
        memory (a block's max, one rescale of the running sum when it grows). A row with no
        finite value (all -inf or all masked) gives -inf; a NaN or +inf gives nan.

        Examples
        --------
        >>> print(f"{divcore.logsumexp([1000.0, 1000.0]):.6f}")  # no overflow: 1000 + log 2
        1000.693147
        >>> print(divcore.logsumexp([[0.0, -np.inf], [-np.inf, -np.inf]]))
        [  0. -inf]
        >>> print(f"{divcore.logsumexp([1.0, 5.0, 2.0], where=[True, False, True]):.6f}")
        2.313262
        """
        plan = _rules.plan_class_rows("logsumexp", x, axis, where, keepdims=keepdims)
        return self._logsumexp(plan)

    def log_softmax(self, x, axis=-1, *, temperature=1.0, where=None, softcap=None,
                    out=None):
        """log softmax(x / T) along `axis`: x_i/T - logsumexp(x/T).

        Parameters
        ----------
        $x_values
        $x_axes
        $x_temperature
        $x_where
        softcap : float, optional
            c > 0: `x` becomes c·tanh(x / c) first; -inf stays -inf.
        $out

        Returns
        -------
        ndarray
            Same shape as `x`, compute dtype (or `out`). Masked entries are -inf; a row with no finite value,
            a NaN or a +inf is nan.

        Raises
        ------
        $raises_x

        Notes
        -----
        Computed as (x_i - M) - log Σ exp(x - M) (M the row's max), so the largest entry's
        log-probability keeps its relative precision.

        Examples
        --------
        >>> print(np.round(divcore.log_softmax([0.0, np.log(3.0)]), 6))
        [-1.386294 -0.287682]
        >>> print(np.round(divcore.log_softmax([2.0, 7.0, 7.0], where=[False, True, True]), 6))
        [     -inf -0.693147 -0.693147]
        """
        if out is not None:
            return _write_into(out, lambda a, w: self.log_softmax(
                a, axis, temperature=temperature, where=w, softcap=softcap), x, axis, where)
        if softcap is not None:
            x = _rules.soft_capped(x, _rules.check_softcap(softcap), "x")
        plan = _rules.plan_class_rows("log_softmax", x, axis, where, temperature)
        return self._softmax_family(plan, False)

    def softmax(self, x, axis=-1, *, temperature=1.0, where=None, softcap=None,
                out=None):
        """softmax(x / T) along `axis`: exp(x_i/T - logsumexp(x/T)).

        Parameters
        ----------
        $x_values
        $x_axes
        $x_temperature
        $x_where
        softcap : float, optional
            c > 0: `x` becomes c·tanh(x / c) first; -inf stays -inf.
        $out

        Returns
        -------
        ndarray
            Same shape as `x`, compute dtype (or `out`). Masked entries are 0; a row with no finite value, a
            NaN or a +inf is nan.

        Raises
        ------
        $raises_x

        Examples
        --------
        >>> print(divcore.softmax([0.0, np.log(3.0)]))
        [0.25 0.75]
        >>> print(divcore.softmax([0.0, 2 * np.log(3.0)], temperature=2.0))
        [0.25 0.75]
        >>> print(np.round(divcore.softmax([1.0, 2.0, 3.0], where=[True, False, True]), 6))
        [0.119203 0.       0.880797]
        """
        if out is not None:
            return _write_into(out, lambda a, w: self.softmax(
                a, axis, temperature=temperature, where=w, softcap=softcap), x, axis, where)
        if softcap is not None:
            x = _rules.soft_capped(x, _rules.check_softcap(softcap), "x")
        plan = _rules.plan_class_rows("softmax", x, axis, where, temperature)
        return self._softmax_family(plan, True)

    def cross_entropy(self, logits, target, *, axis=-1, target_type="auto", weight=None,
                      ignore_index=-100, label_smoothing=0.0, temperature=1.0, where=None,
                      reduction="mean", base=None, validate=True, sum_tol=None,
                      tail="bucket", sample_weight=None, z_loss=0.0, softcap=None):
        """Cross-entropy H(p, q) = -Σ p log softmax(logits / T), per row, reduced.

        Parameters
        ----------
        $logits
        target : array_like
            Integer class labels (the logits' shape without the class axis), or probabilities,
            log-probabilities or a teacher's logits of the logits' shape (see `target_type`).
        $class_axis
        $target_type
        weight : array_like, optional
            Per-class weights w (one per class), as torch: each class's term is multiplied by
            w_c; with labels, 'mean' is Σ w_y·l / Σ w_y.
        ignore_index : int or None, default -100
            Rows whose label equals it contribute exactly 0 and are left out of the mean,
            whatever their logits hold (NaN included). None: no row is ignored.
        label_smoothing : float, default 0.0
            ε in [0, 1]: the target becomes (1-ε)·p + ε/C over the C unmasked classes
            (labels and probs targets only).
        $temperature
        $where
        reduction : {'none', 'sum', 'mean'}, default 'mean'
            'none': one value per row; 'sum'; 'mean': over rows, Σ w_y·l / Σ w_y over the
            non-ignored rows with labels (torch's rule), nan when no row counts.
        $base
        $validate
        $sum_tol
        $tail
        $sample_weight
        $z_loss
        $softcap

        Returns
        -------
        $returns_loss

        Raises
        ------
        $raises_loss

        Notes
        -----
        With q = softmax(z / T) and lse = logsumexp(z / T), a row's loss is

            l = Σ_c w_c p_c (lse - z_c / T)

        (p one-hot for a label). When the label is the row's maximum, lse - z_y is computed with
        log1p of the other classes' sum, so a confident correct prediction keeps its relative
        precision. 0·log 0 = 0: a class without target mass contributes nothing, even where its
        logit is -inf; target mass on a -inf logit gives +inf.

        Examples
        --------
        >>> logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]])
        >>> print(f"{divcore.cross_entropy(logits, [0, 1]):.6f}")
        0.285104
        >>> probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
        >>> print(np.round(divcore.cross_entropy(logits, probs, reduction="none"), 6))
        [0.80703  0.703178]

        A weighted mean with an ignored row (torch's rule), on uniform logits (each loss log 3):

        >>> loss = divcore.cross_entropy(np.zeros((4, 3)), [0, 1, 2, -100], weight=[1.0, 2.0, 3.0])
        >>> print(f"{loss:.6f}")
        1.098612

        Tiny losses are not rounded to 0:

        >>> print(f"{divcore.cross_entropy([50.0, 0.0], 0):.6e}")  # log1p(exp(-50))
        1.928750e-22
        """
        kw = dict(axis=axis, target_type=target_type, weight=weight, ignore_index=ignore_index,
                  label_smoothing=label_smoothing, temperature=temperature, where=where,
                  reduction=reduction, base=base, validate=validate, sum_tol=sum_tol)
        if _rules.wants_extras(target, tail, sample_weight, z_loss, softcap):
            return self._extended("cross_entropy", logits, target, kw, tail, sample_weight,
                                  z_loss, softcap)
        plan = _rules.plan_loss("cross_entropy", logits, target, **kw)
        rows, row_weight = self._losses(plan, ("ce",))
        return self._finish_loss(plan, rows["ce"], row_weight)

    def kl_divergence(self, logits, target, *, axis=-1, target_type="auto", reverse=False,
                      temperature=1.0, where=None, reduction="mean", base=None,
                      validate=True, sum_tol=None, tail="bucket", sample_weight=None,
                      softcap=None):
        """KL divergence KL(p ‖ q) of the target p from q = softmax(logits / T), per row.

        KL(p ‖ q) = Σ p (log p - log q), reduced over rows; reverse=True gives KL(q ‖ p).

        Parameters
        ----------
        $logits
        $target
        $class_axis
        $target_type
        reverse : bool, default False
            Compute KL(q ‖ p) (the model's distribution first) instead.
        $temperature
        $where
        $reduction_mean
        $base
        $validate
        $sum_tol
        $tail
        $sample_weight
        $softcap

        Returns
        -------
        $returns_loss

        Raises
        ------
        $raises_loss

        Notes
        -----
        KL(p ‖ q) = H(p, q) - H(p), computed per class as p_c (log p_c - log q_c) (no cancellation
        between two large terms), clamped at 0 so rounding never makes it negative; KL(p ‖ p) = 0.
        Terms with p_c = 0 are 0; p_c > 0 where q_c = 0 gives +inf.

        Examples
        --------
        >>> print(f"{divcore.kl_divergence([0.0, 0.0], [1.0, 0.0]):.6f}")  # log 2
        0.693147
        >>> x = np.array([1.0, 2.0, 3.0])
        >>> print(divcore.kl_divergence(x, x, target_type="logits"))  # KL(p ‖ p)
        0.0
        >>> print(f"{divcore.kl_divergence([0.0, 0.0], [0.2, 0.8], reverse=True):.6f}")
        0.223144
        >>> student, teacher = np.zeros((1, 2)), np.array([[2.0, 0.0]])
        >>> print(f"{divcore.kl_divergence(student, teacher, target_type='logits'):.6f}")
        0.327813
        """
        kw = dict(axis=axis, target_type=target_type, temperature=temperature, where=where,
                  reduction=reduction, base=base, validate=validate, sum_tol=sum_tol,
                  reverse=reverse)
        if _rules.wants_extras(target, tail, sample_weight, 0.0, softcap):
            return self._extended("kl_divergence", logits, target, kw, tail, sample_weight,
                                  0.0, softcap)
        plan = _rules.plan_loss("kl_divergence", logits, target, **kw)
        rows, row_weight = self._losses(plan, ("kl",))
        return self._finish_loss(plan, rows["kl"], row_weight)

    def decompose(self, logits, target, *, axis=-1, target_type="auto", weight=None,
                  ignore_index=-100, label_smoothing=0.0, temperature=1.0, where=None,
                  reduction="mean", base=None, validate=True, sum_tol=None, tail="bucket",
                  sample_weight=None, softcap=None):
        """H(p, q) = H(p) + KL(p ‖ q): the three terms from one pass.

        Parameters
        ----------
        logits, target, **keywords
            As for `cross_entropy` (same keywords, same reductions; H(p) and KL use the same
            class weights, label smoothing and ignored rows).

        Returns
        -------
        Decomposition
            A named tuple (cross_entropy, entropy, kl_divergence), each reduced like
            `cross_entropy`'s result.

        Raises
        ------
        $raises_loss

        Notes
        -----
        With p fixed, H(p) does not depend on the logits: cross-entropy and KL divergence have
        the same minimiser and the same gradient. With class weights, KL_w = CE_w - H_w is
        reported as is (it may be negative: it is not a divergence).

        Examples
        --------
        >>> logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]])
        >>> target = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
        >>> ce, h, kl = divcore.decompose(logits, target, reduction="none")
        >>> print(np.round(h, 6), np.round(kl, 6))
        [0.801819 0.639032] [0.005211 0.064146]
        >>> print(np.allclose(ce, h + kl))
        True
        """
        kw = dict(axis=axis, target_type=target_type, weight=weight, ignore_index=ignore_index,
                  label_smoothing=label_smoothing, temperature=temperature, where=where,
                  reduction=reduction, base=base, validate=validate, sum_tol=sum_tol)
        if _rules.wants_extras(target, tail, sample_weight, 0.0, softcap):
            return self._extended("decompose", logits, target, kw, tail, sample_weight, 0.0,
                                  softcap)
        plan = _rules.plan_loss("decompose", logits, target, **kw)
        rows, row_weight = self._losses(plan, ("ce", "h", "kl"))
        return Decomposition(*(self._finish_loss(plan, rows[k], row_weight)
                               for k in ("ce", "h", "kl")))

    def entropy(self, x, *, axis=-1, input_type="logits", temperature=1.0, where=None,
                reduction="none", base=None, sum_tol=None, sample_weight=None, softcap=None):
        """Entropy H = -Σ p log p of softmax(x / T), of probabilities or of log-probabilities.

        One value per row (0·log 0 = 0), reduced as asked.

        Parameters
        ----------
        $x_values
        axis : int, default -1
            The class axis.
        input_type : {'logits', 'probs', 'log_probs'}, default 'logits'
            What `x` holds. Probabilities and log-probabilities are always checked: an entry
            that is negative or NaN, or a row whose sum is off 1 by more than `sum_tol`,
            raises ValueError.
        temperature : float, default 1.0
            T > 0 divides logits before the softmax (logits only).
        $x_where
        reduction : {'none', 'sum', 'mean'}, default 'none'
            'none': one value per row; 'sum'; 'mean' over rows.
        $base
        $sum_tol
        $sample_weight
        softcap : float, optional
            c > 0: logits become c·tanh(x / c) first (input_type='logits' only).

        Returns
        -------
        entropy : numpy scalar or ndarray
            One value per row for 'none' (`x`'s shape without the class axis), else a scalar.

        Raises
        ------
        ValueError
            A probability row that is not a distribution, a bad keyword value.
        TypeError
            Complex or non-numeric input.

        Notes
        -----
        For logits, H = Σ q_i (lse - x_i) with q = softmax(x): a sum of non-negative terms,
        without the cancellation of lse - Σ q_i x_i.

        Examples
        --------
        >>> print(divcore.entropy(np.zeros((2, 4)), base=2))
        [2. 2.]
        >>> print(f"{divcore.entropy([0.5, 0.25, 0.25, 0.0], input_type='probs', base=2):.6f}")
        1.500000
        """
        if sample_weight is None and softcap is None:
            plan = _rules.plan_entropy(x, axis, input_type, temperature, where, reduction,
                                       base, sum_tol)
            return self._finish_loss(plan, self.kernels.entropy_rows(plan), None)
        c = _rules.check_softcap(softcap)
        if c is not None:
            if input_type != "logits":
                raise ValueError("softcap applies to input_type='logits' only")
            x = _rules.soft_capped(x, c, "x")
        plan = _rules.plan_entropy(x, axis, input_type, temperature, where, "none", base,
                                   sum_tol)
        s = (None if sample_weight is None
             else _rules.sample_weight_rows(sample_weight, plan.lead_shape))
        return _weighted(plan, {"h": self.kernels.entropy_rows(plan)}, None, s,
                         reduction)["h"]

    def cross_entropy_and_grad(self, logits, target, *, axis=-1, target_type="auto",
                               weight=None, ignore_index=-100, label_smoothing=0.0,
                               temperature=1.0, where=None, reduction="mean", base=None,
                               validate=True, sum_tol=None, tail="bucket",
                               sample_weight=None, z_loss=0.0, softcap=None, out=None):
        """(cross_entropy(...), its gradient with respect to `logits`), from one fused pass.

        Parameters
        ----------
        logits, target, **keywords
            As for `cross_entropy`.
        out : ndarray, optional
            Where to write the gradient: an array of the logits' shape, float16, bfloat16,
            float32 or float64 (e.g. the logits' own half dtype), rounded once into it.

        Returns
        -------
        loss : numpy scalar or ndarray
            As `cross_entropy` returns it.
        grad : ndarray
            The gradient of the reduced loss with respect to `logits` (for 'none', each row's
            own gradient), of the logits' shape and compute dtype (or `out`).

        Raises
        ------
        $raises_loss

        Notes
        -----
        For each row, with a = w·p the weighted target (for labels, a = w_y·one-hot) and
        q = softmax(z / T):

            ∂l/∂z = (Σa·q - a) / T

        scaled by the reduction (1/Σw_y or 1/N for 'mean') and by 1/log(base). Ignored rows and
        classes with no target mass and zero probability (masked, -inf) get exactly 0.

        Examples
        --------
        >>> loss, grad = divcore.cross_entropy_and_grad(np.zeros((1, 2)), [1])
        >>> print(f"{loss:.6f}", grad)
        0.693147 [[ 0.5 -0.5]]
        """
        kw = dict(axis=axis, target_type=target_type, weight=weight, ignore_index=ignore_index,
                  label_smoothing=label_smoothing, temperature=temperature, where=where,
                  reduction=reduction, base=base, validate=validate, sum_tol=sum_tol)
        if out is not None:
            _rules.check_out(out, np.shape(logits))
        if _rules.wants_extras(target, tail, sample_weight, z_loss, softcap):
            result = self._extended("cross_entropy_and_grad", logits, target, kw, tail,
                                    sample_weight, z_loss, softcap)
        else:
            plan = _rules.plan_loss("cross_entropy_and_grad", logits, target, **kw)
            result = self._loss_and_grad(plan, "ce")
        return _grad_into(result, out)

    def kl_divergence_and_grad(self, logits, target, *, axis=-1, target_type="auto",
                               reverse=False, temperature=1.0, where=None, reduction="mean",
                               base=None, validate=True, sum_tol=None, tail="bucket",
                               sample_weight=None, softcap=None, out=None):
        """(kl_divergence(...), its gradient with respect to `logits`), from one fused pass.

        Parameters
        ----------
        logits, target, **keywords
            As for `kl_divergence`.
        out : ndarray, optional
            As for `cross_entropy_and_grad`.

        Returns
        -------
        loss : numpy scalar or ndarray
            As `kl_divergence` returns it.
        grad : ndarray
            The gradient of the reduced loss with respect to `logits`, of the logits' shape and
            compute dtype (or `out`).

        Raises
        ------
        $raises_loss

        Notes
        -----
        KL(p ‖ q) = H(p, q) - H(p) and H(p) does not depend on the logits, so for a fixed target
        this gradient is exactly `cross_entropy_and_grad`'s: (Σp·q - p) / T per row. With
        reverse=True: ∂KL(q ‖ p)/∂z_c = q_c (log q_c - log p_c - KL) / T.

        Examples
        --------
        >>> logits, target = np.array([[1.0, 2.0, 0.5]]), np.array([[0.2, 0.5, 0.3]])
        >>> _, g_kl = divcore.kl_divergence_and_grad(logits, target)
        >>> _, g_ce = divcore.cross_entropy_and_grad(logits, target)
        >>> print(np.array_equal(g_kl, g_ce))
        True
        """
        kw = dict(axis=axis, target_type=target_type, temperature=temperature, where=where,
                  reduction=reduction, base=base, validate=validate, sum_tol=sum_tol,
                  reverse=reverse)
        if out is not None:
            _rules.check_out(out, np.shape(logits))
        if _rules.wants_extras(target, tail, sample_weight, 0.0, softcap):
            result = self._extended("kl_divergence_and_grad", logits, target, kw, tail,
                                    sample_weight, 0.0, softcap)
        else:
            plan = _rules.plan_loss("kl_divergence_and_grad", logits, target, **kw)
            result = self._loss_and_grad(plan, "kl")
        return _grad_into(result, out)

    def js_divergence(self, logits, target, *, axis=-1, target_type="auto", beta=0.5,
                      temperature=1.0, where=None, reduction="mean", base=None,
                      validate=True, sum_tol=None, tail="bucket", sample_weight=None,
                      softcap=None):
        """Generalised Jensen-Shannon divergence of the target p and q = softmax(logits / T).

        JS_β = β·KL(p ‖ m) + (1-β)·KL(q ‖ m) with m = βp + (1-β)q, per row, reduced.

        Parameters
        ----------
        $logits
        $target
        $class_axis
        $target_type
        beta : float, default 0.5
            β in [0, 1], the weight of p in the mixture m.
        $temperature
        $where
        $reduction_mean
        $base
        $validate
        $sum_tol
        $tail
        $sample_weight
        $softcap

        Returns
        -------
        $returns_loss

        Raises
        ------
        $raises_loss

        Notes
        -----
        Computed in log space with d = log q - log p: log p - log m = -log1p((1-β)·expm1(d)) and
        log q - log m = -log1p(β·expm1(-d)), then clamped to [0, h(β)] with h the binary entropy
        (ln 2 for β = ½), so near-equal inputs give 0, never a negative number or NaN. Symmetric
        in p and q for β = ½; 0 for β in {0, 1}.

        Examples
        --------
        >>> print(divcore.js_divergence([0.0, -np.inf], [0.0, 1.0], base=2))  # disjoint: 1 bit
        1.0
        >>> print(divcore.js_divergence(np.log([0.3, 0.7]), [0.3, 0.7]))
        0.0
        """
        kw = dict(axis=axis, target_type=target_type, temperature=temperature, where=where,
                  reduction=reduction, base=base, validate=validate, sum_tol=sum_tol, beta=beta)
        if _rules.wants_extras(target, tail, sample_weight, 0.0, softcap):
            return self._extended("js_divergence", logits, target, kw, tail, sample_weight,
                                  0.0, softcap)
        plan = _rules.plan_loss("js_divergence", logits, target, **kw)
        return self._finish_loss(plan, self.kernels.js_rows(plan), None)

    def binary_cross_entropy(self, logits, target, *, weight=None, pos_weight=None,
                             reduction="mean", base=None, sample_weight=None):
        """Binary cross-entropy on logits, elementwise (torch's binary_cross_entropy_with_logits).

        Parameters
        ----------
        logits : array_like
            Raw scores x, any shape.
        target : array_like
            y, the probability of the positive class, of the logits' shape.
        weight : array_like, optional
            w, broadcast to the logits' shape.
        pos_weight : array_like, optional
            pw, the weight of the positive term, broadcast along the last axis (one per class
            of a multi-label problem).
        reduction : {'none', 'sum', 'mean'}, default 'mean'
            'none': the elementwise losses; 'sum'; 'mean': over all elements, nan when empty.
        $base
        sample_weight : array_like, optional
            s >= 0, broadcast to the logits' shape (e.g. one per row: s[:, None]): each loss
            is multiplied by s, and 'mean' becomes Σ s·l / Σ s (`weight` leaves the mean's
            denominator alone, as torch's does). An element of weight 0 counts exactly 0.

        Returns
        -------
        loss : numpy scalar or ndarray
            The logits' shape for 'none', else a scalar; compute dtype.

        Raises
        ------
        ValueError
            Operands whose shapes do not fit, a bad keyword value.
        TypeError
            Complex or non-numeric input.

        Notes
        -----
            l = w·[pw·y·softplus(-x) + (1 - y)·softplus(x)],  softplus(v) = log(1 + e^v)

        with softplus(v) = max(v, 0) + log1p(e^-|v|): stable for logits of any size. A term
        whose coefficient is exactly 0 is 0, so x = ±inf with the matching label gives 0.

        Examples
        --------
        >>> print(f"{divcore.binary_cross_entropy([0.0, 0.0], [1.0, 0.0]):.6f}")  # log 2
        0.693147
        >>> print(divcore.binary_cross_entropy([np.inf, -np.inf], [1.0, 0.0], reduction="none"))
        [0. 0.]
        >>> loss = divcore.binary_cross_entropy([0.0, 2.0], [1.0, 0.0], pos_weight=[2.0, 2.0])
        >>> print(f"{loss:.6f}")  # (2·log 2 + softplus(2)) / 2
        1.756611
        """
        plan = _rules.plan_bce(logits, target, weight, pos_weight, reduction, base)
        if sample_weight is None:
            return self._bce(plan)
        s = _rules.bce_sample_weight(sample_weight, plan.logits.shape)
        values = np.asarray(self._bce(replace(plan, reduction="none")), dtype=np.float64)
        values = np.where(s != 0, values * s, 0.0)
        if plan.reduction == "none":
            return _rules.scalar_or_array(values.astype(plan.dtype))
        total = float(np.sum(values))
        if plan.reduction == "sum":
            return plan.dtype.type(total)
        denom = float(np.sum(s))
        return plan.dtype.type(total / denom if denom != 0.0 else math.nan)

    def row_stats(self, logits, labels=None, *, axis=-1, k=0, temperature=1.0, where=None):
        """Per-row log-sum-exp, log-probability of the label, entropy, argmax and top-k of
        softmax(logits / T), from one read of each row.

        Parameters
        ----------
        $logits
        labels : array_like of int, optional
            One class per row (the logits' shape without the class axis): `log_prob` is
            log softmax at the label. A label outside [0, C) raises IndexError. None: no
            `log_prob`.
        $class_axis
        k : int, default 0
            How many of each row's largest log-probabilities to return, 0 <= k <= C.
        $temperature
        $where

        Returns
        -------
        RowStats
            A named tuple (logsumexp, log_prob, entropy, argmax, topk_indices,
            topk_log_probs). logsumexp, log_prob and entropy have the logits' shape without
            the class axis and the compute dtype (float32 for float32 and half input,
            float64 for float64), numpy scalars for a 1-d row; log_prob is None without
            labels. argmax is int64 of the same shape. topk_indices (int64) and
            topk_log_probs (compute dtype) have that shape plus (k,), sorted by descending
            log-probability, ties by the lower index; both None for k = 0.

        Raises
        ------
        IndexError
            A label outside [0, C).
        ValueError
            k outside [0, C], a temperature that is not a finite number > 0, a mask or labels
            whose shape does not fit.
        TypeError
            Complex or non-numeric logits, labels that are not integers, a k that is not one.

        Notes
        -----
        One blocked pass over each row keeps the running max M, S = Σ e^(x_i - M), the
        entropy's U = Σ e^(x_i - M)(M - x_i) (both rescaled when M grows), the first index
        of the max and a heap of the k largest values. Then

            logsumexp = M + log S,  log_prob = -((M - x_y) + log S),  entropy = log S + U / S

        with x = logits / T (a second look at a row only for the rare cases: the first NaN of
        a NaN row, the -inf entries that end a short top-k, and, for float32, the entropy of a
        row so peaked that it is below 1e-20, computed again in double): the same numbers as `logsumexp(logits / T)`,
        `-cross_entropy(..., reduction='none')`, `entropy(...)` and `log_softmax` with a
        stable descending sort, within the accuracy of docs/numerics.md (log_prob keeps its
        relative precision when the label is the row's maximum). Perplexity is
        exp(-mean(log_prob)).

        Edge rows: a row with a NaN or +inf has nan logsumexp, log_prob and entropy; no
        finite value (all -inf, all masked, or C = 0) gives logsumexp -inf and nan for the
        others. argmax is numpy's (the first maximum; the first NaN if there is one) over the
        kept classes: a masked class is never chosen; a row whose kept values are all -inf
        gives its first kept class, a row with none -1. The top-k of a row without a
        distribution is the indices 0 .. k-1 with nan log-probabilities; a row with fewer than
        k classes of nonzero probability ends its top-k with log-probability -inf: its kept
        -inf classes, then its masked ones, each in index order.

        Examples
        --------
        >>> logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]])
        >>> st = divcore.row_stats(logits, [0, 1], k=2)
        >>> print(np.round(st.logsumexp, 6), np.round(st.log_prob, 6))
        [2.41703  2.653178] [-0.41703  -0.153178]
        >>> print(st.argmax, st.topk_indices.tolist())
        [0 1] [[0, 1], [1, 0]]
        >>> print(np.round(st.entropy, 6))
        [0.846738 0.476088]
        >>> print(f"perplexity {np.exp(-st.log_prob.mean()):.6f}")
        perplexity 1.329900

        A confident correct prediction keeps its tiny log-probability:

        >>> print(f"{divcore.row_stats([50.0, 0.0], 0).log_prob:.6e}")
        -1.928750e-22
        """
        plan, k = _rules.plan_row_stats(logits, labels, axis, k, temperature, where)
        lse, log_prob, h, argmax, topk_index, topk_log_prob = \
            self.kernels.row_stats_rows(plan, k)
        lead = plan.lead_shape
        topk = (None, None)
        if k > 0:
            topk = (topk_index.reshape(lead + (k,)),
                    topk_log_prob.reshape(lead + (k,)).astype(plan.dtype))
        return RowStats(plan.finish(lse), None if log_prob is None else plan.finish(log_prob),
                        plan.finish(h), _rules.scalar_or_array(argmax.reshape(lead)), *topk)


for _name in PUBLIC + ("row_stats",):  # the shared parameter descriptions, written once
    _method = getattr(Functions, _name)
    _method.__doc__ = _docstrings.fill(_method.__doc__)
del _name, _method
