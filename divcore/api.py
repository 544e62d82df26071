"""The numpy-facing functions, built for a given backend.

This layer only normalises arguments (array-likes, dtypes, the class axis, target types,
keywords, shapes) and reduces the per-row results a backend returns; every formula lives
in the backend's row kernels (docs/design.md). `make_functions(kernels)` binds the public
functions to a backend module: divcore binds them to the compiled core, divcore.reference
to the pure-Python one, so both share every argument rule and every reduction.
"""
import math
import numbers
import operator
from typing import Any, NamedTuple

import numpy as np

from . import _docstrings, _errors

_REDUCTIONS = ("none", "sum", "mean")
_TARGET_TYPES = ("auto", "labels", "probs", "log_probs", "logits")
_INPUT_TYPES = ("logits", "probs", "log_probs")
_INT64 = np.iinfo(np.int64)
# The defaults of label_smoothing and temperature, as objects: the one-row shortcut takes
# only calls that left them alone.
_ZERO = 0.0
_ONE = 1.0


class Decomposition(NamedTuple):
    """H(p, q) = H(p) + KL(p ‖ q), each reduced the same way."""

    cross_entropy: Any
    entropy: Any
    kl_divergence: Any


# --------------------------------------------------------------------------- arrays

def _as_array(x, name):
    """Any array-like as a numpy array, without copying what is already one."""
    if isinstance(x, np.ndarray):
        return x
    if type(x).__module__.split(".")[0] == "torch":
        return _torch_to_numpy(x, name)
    try:
        if not hasattr(x, "__array__") and hasattr(x, "__dlpack__"):
            return np.from_dlpack(x)
        return np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}: cannot be read as an array ({exc})") from None


def _torch_to_numpy(t, name):
    if getattr(t, "device", None) is not None and t.device.type != "cpu":
        raise TypeError(f"{name}: a torch tensor on {t.device} (move it to the CPU first)")
    t = t.detach()
    if str(t.dtype) == "torch.bfloat16":
        t = t.float()  # numpy has no bfloat16; computed in float32 anyway
    return t.resolve_conj().resolve_neg().numpy()


def _compute_dtype(dtype, name):
    """float32/float64 as they are; float16 and bfloat16 in float32; ints and bools in
    float64; anything else is a TypeError."""
    if dtype == np.float32 or dtype == np.float64:
        return np.dtype(dtype.type)
    if dtype.kind == "f":
        return np.dtype(np.float32) if dtype.itemsize <= 4 else np.dtype(np.float64)
    if dtype.kind in "iub":
        return np.dtype(np.float64)
    if dtype.name == "bfloat16":
        return np.dtype(np.float32)
    if dtype.kind == "c":
        raise TypeError(f"{name}: complex input is not supported (dtype {dtype})")
    raise TypeError(f"{name}: expected real numbers, got an array of dtype {dtype}")


def _native(a, dtype):
    """a in the given native dtype: a view when it already is, else one conversion."""
    if a.dtype == dtype and a.dtype.isnative:
        return a
    return a.astype(dtype)


def _eps_tolerance(*dtypes):
    """√eps of the least precise dtype: how far a probability row may sum from 1."""
    eps = max(float(np.finfo(d).eps) for d in dtypes if np.dtype(d).kind == "f")
    return math.sqrt(eps)


def _normalize_axis(axis, ndim, name="axis"):
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {axis!r}") from None
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(axis, ndim)
    return axis % ndim


def _rows_view(a):
    """The (N, C) view of `a`, whose last axis is the class axis: the leading axes are
    collapsed into one row axis (C order). Copies only when their strides cannot be
    collapsed (e.g. a slice in the middle of a 3-d array)."""
    n_cls = a.shape[-1]
    lead = a.shape[:-1]
    n_rows = math.prod(lead)
    if a.ndim == 2:
        return a
    dims = [(s, st) for s, st in zip(lead, a.strides[:-1]) if s != 1]
    collapsible = all(dims[k][1] == dims[k + 1][1] * dims[k + 1][0]
                      for k in range(len(dims) - 1))
    if not collapsible:
        return np.ascontiguousarray(a).reshape(n_rows, n_cls)
    row_stride = dims[-1][1] if dims else a.itemsize * max(n_cls, 1)
    return np.lib.stride_tricks.as_strided(
        a, shape=(n_rows, n_cls), strides=(row_stride, a.strides[-1]), writeable=False)


def _broadcast_mask(where, shape):
    """`where` as a boolean array broadcast to `shape` (a view)."""
    w = _as_array(where, "where")
    if w.dtype != np.bool_:
        raise TypeError(f"where must be a boolean array, got dtype {w.dtype}")
    try:
        return np.broadcast_to(w, shape)
    except ValueError:
        raise ValueError(f"where: shape {w.shape} does not broadcast to the input's shape "
                         f"{shape}") from None


def _python_int_labels(a):
    """True for labels given as Python ints, some beyond int64 (numpy then makes an
    object array of them): they are out of range, not of a wrong dtype."""
    if a.dtype != object or a.size == 0:
        return False
    values = a.reshape(-1).tolist()
    return (all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values)
            and any(not _INT64.min <= v <= _INT64.max for v in values))


def _scalar_or_array(a):
    return a[()] if a.ndim == 0 else a


# ------------------------------------------------------------------------- keywords

def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'none', 'sum' or 'mean', got {reduction!r}")
    return reduction


def _real(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def _log_base(base):
    """The divisor that turns nats into units of `base` (1.0 for None / e)."""
    if base is None:
        return 1.0
    b = _real(base, "base")
    if not (b > 0 and math.isfinite(b)) or b == 1.0:
        raise ValueError(f"base must be a positive number other than 1, got {base!r}")
    return math.log(b)


def _check_temperature(temperature):
    t = _real(temperature, "temperature")
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return t


def _check_smoothing(label_smoothing):
    eps = _real(label_smoothing, "label_smoothing")
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    return eps


def _check_choice(value, choices, name):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


# --------------------------------------------------------------- a normalised problem

class _Logits:
    """logits (or entropy input) moved to (N, C) rows, with the mask and output dtype."""

    def __init__(self, x, axis, where, name="logits"):
        a = _as_array(x, name)
        if a.ndim == 0:
            raise ValueError(f"{name} must have at least one dimension (the class axis)")
        self.orig_dtype = a.dtype
        self.dtype = _compute_dtype(a.dtype, name)
        self.shape = a.shape
        self.axis = _normalize_axis(axis, a.ndim)
        self.lead_shape = a.shape[:self.axis] + a.shape[self.axis + 1:]
        self.n_classes = a.shape[self.axis]
        self.rows = _rows_view(np.moveaxis(_native(a, self.dtype), self.axis, -1))
        self.where = self._mask(where)

    def _mask(self, where):
        if where is None:
            return None
        w = _broadcast_mask(where, self.shape)
        return _rows_view(np.moveaxis(w, self.axis, -1)).view(np.uint8)

    def same_layout(self, y, name):
        """Another array of the logits' shape (a soft target) as matching rows."""
        a = _as_array(y, name)
        if a.shape != self.shape:
            raise ValueError(f"{name}: shape {a.shape} does not match the logits' shape "
                             f"{self.shape}")
        if a.dtype.kind not in "fiub" and a.dtype.name != "bfloat16":
            _compute_dtype(a.dtype, name)  # raises the TypeError
        return a.dtype, _rows_view(np.moveaxis(_native(a, self.dtype), self.axis, -1))

    def labels(self, y):
        """Integer labels of the logits' shape without the class axis, as int64 (N,)."""
        a = _as_array(y, "target")
        if _python_int_labels(a) and a.shape == self.lead_shape:
            flat = a.reshape(-1)
            row = next(i for i, v in enumerate(flat) if not _INT64.min <= v <= _INT64.max)
            raise _errors.label_out_of_range(row, int(flat[row]), self.n_classes)
        if a.dtype.kind not in "iu":
            raise TypeError(f"target: labels must be integers, got dtype {a.dtype} "
                            "(pass target_type='probs' for probabilities)")
        if a.shape != self.lead_shape:
            raise ValueError(f"target: labels of shape {a.shape} do not match the logits' "
                             f"shape {self.shape} without the class axis {self.axis} "
                             f"(expected {self.lead_shape})")
        flat = a.reshape(-1)
        if a.dtype == np.uint64 and flat.size and flat.max() > _INT64.max:
            row = int(np.argmax(flat > _INT64.max))
            raise _errors.label_out_of_range(row, int(flat[row]), self.n_classes)
        return np.ascontiguousarray(flat, dtype=np.int64)

    def weight(self, weight):
        if weight is None:
            return None
        w = _as_array(weight, "weight")
        if w.ndim != 1 or w.shape[0] != self.n_classes:
            raise ValueError(f"weight must be a 1-d array of {self.n_classes} class weights, "
                             f"got shape {w.shape}")
        _compute_dtype(w.dtype, "weight")
        return np.ascontiguousarray(w, dtype=self.dtype)

    def finish(self, per_row):
        """Per-row float64 results -> the output dtype, in the leading shape."""
        return _scalar_or_array(per_row.reshape(self.lead_shape).astype(self.dtype))


def _check_label_range(labels, n_classes):
    """IndexError for the first label outside [0, n_classes) (no ignore_index here)."""
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        row = int(np.argmax(bad))
        raise _errors.label_out_of_range(row, int(labels[row]), n_classes)


def _bce_operand(value, shape, name, exact=False):
    """A BCE operand: the logits' shape exactly (target), or broadcastable to it."""
    a = _as_array(value, name)
    _compute_dtype(a.dtype, name)
    if exact and a.shape != shape:
        raise ValueError(f"{name}: shape {a.shape} does not match the logits' shape {shape}")
    try:
        ok = np.broadcast_shapes(a.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name}: shape {a.shape} does not broadcast to the logits' shape "
                         f"{shape}")
    return a


def _target_kind(target, target_type):
    _check_choice(target_type, _TARGET_TYPES, "target_type")
    if target_type != "auto":
        return target_type
    a = _as_array(target, "target")
    if a.dtype.kind in "iu" or _python_int_labels(a):
        return "labels"
    if a.dtype.kind == "f" or a.dtype.name == "bfloat16":
        return "probs"
    raise TypeError(f"target: cannot infer target_type from dtype {a.dtype} (integers are "
                    "labels, floats are probabilities; pass target_type explicitly)")


def _reduce(values, row_weight, reduction, dtype):
    """Reduce float64 per-row values: 'sum', or 'mean' = Σ values / Σ row_weight (the
    number of rows when row_weight is None; nan for an empty or fully ignored batch)."""
    total = float(np.sum(values))
    if reduction == "sum":
        return dtype.type(total)
    denom = float(values.shape[0]) if row_weight is None else float(np.sum(row_weight))
    return dtype.type(total / denom if denom != 0.0 else math.nan)


def _finish_loss(lg, values, row_weight, reduction, log_base):
    if log_base != 1.0:
        values = values / log_base
    if reduction == "none":
        return lg.finish(values)
    return _reduce(values, row_weight, reduction, lg.dtype)


# ----------------------------------------------------------------------- functions

def make_functions(kernels):
    """The public functions of SPEC §3, computing with the row kernels of `kernels`."""
    # The compiled core's shortcut for the commonest tiny call (one contiguous row, an int
    # label, default keywords): the same kernel without the argument normalisation.
    one_row = getattr(kernels, "ce_label_one_row", None)

    def _class_rows(x, axis, where, name="x"):
        """logsumexp / softmax: `axis` may be an int, a tuple or None (all axes)."""
        a = _as_array(x, name)
        if a.ndim == 0:
            raise ValueError(f"{name} must have at least one dimension")
        if axis is None:
            axes = tuple(range(a.ndim))
        elif isinstance(axis, tuple):
            axes = tuple(_normalize_axis(ax, a.ndim) for ax in axis)
            if len(set(axes)) != len(axes):
                raise ValueError(f"axis: repeated axis in {axis!r}")
        else:
            return _Logits(a, axis, where, name), (_normalize_axis(axis, a.ndim),), a.shape
        if not axes:
            raise ValueError("axis: the empty tuple names no class axis")
        # Several class axes: move them last (in order) and merge them into one.
        rest = [ax for ax in range(a.ndim) if ax not in axes]
        moved = np.transpose(a, rest + list(axes))
        merged = moved.reshape(moved.shape[:len(rest)] + (-1,))
        w = None
        if where is not None:
            wm = np.transpose(_broadcast_mask(where, a.shape), rest + list(axes))
            w = wm.reshape(wm.shape[:len(rest)] + (-1,))
        return _Logits(merged, -1, w, name), axes, a.shape

    def logsumexp(x, axis=-1, *, keepdims=False, where=None):
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
        lg, axes, shape = _class_rows(x, axis, where)
        lse = kernels.lse_rows(lg.rows, lg.where, 1.0)
        out = lse.reshape(lg.lead_shape).astype(lg.dtype)
        if keepdims:
            shape = list(shape)
            for ax in axes:
                shape[ax] = 1
            out = out.reshape(shape)
        return _scalar_or_array(out)

    def _softmax_family(x, axis, temperature, where, exponentiate):
        t = _check_temperature(temperature)
        lg, axes, a_shape = _class_rows(x, axis, where)
        out = np.empty(lg.rows.shape, dtype=lg.dtype)
        kernels.log_softmax_rows(lg.rows, lg.where, t, out, exponentiate)
        rest = [ax for ax in range(len(a_shape)) if ax not in axes]
        moved_shape = tuple(a_shape[ax] for ax in rest) + tuple(a_shape[ax] for ax in axes)
        out = out.reshape(moved_shape)
        return np.moveaxis(out, list(range(len(rest), len(a_shape))), list(axes))

    def log_softmax(x, axis=-1, *, temperature=1.0, where=None):
        """log softmax(x / T) along `axis`: x_i/T - logsumexp(x/T).

        Parameters
        ----------
        $x_values
        $x_axes
        $x_temperature
        $x_where

        Returns
        -------
        ndarray
            Same shape as `x`, compute dtype. Masked entries are -inf; a row with no finite value,
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
        return _softmax_family(x, axis, temperature, where, False)

    def softmax(x, axis=-1, *, temperature=1.0, where=None):
        """softmax(x / T) along `axis`: exp(x_i/T - logsumexp(x/T)).

        Parameters
        ----------
        $x_values
        $x_axes
        $x_temperature
        $x_where

        Returns
        -------
        ndarray
            Same shape as `x`, compute dtype. Masked entries are 0; a row with no finite value, a
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
        return _softmax_family(x, axis, temperature, where, True)

    def _prepare(logits, target, *, axis, target_type, weight, ignore_index,
                 label_smoothing, temperature, where, validate, reverse=False):
        """Everything a loss needs, normalised: the logits' rows, and either int64 labels
        or target rows in the logits' layout and dtype (with their validation tolerance).
        A label target of a reverse KL or a JS becomes its one-hot distribution."""
        job = {"t": _check_temperature(temperature), "eps": _check_smoothing(label_smoothing),
               "validate": bool(validate), "reverse": bool(reverse), "labels": None,
               "target": None, "tol": 1.0}
        lg = job["lg"] = _Logits(logits, axis, where)
        kind = job["kind"] = _target_kind(target, target_type)
        job["weight"] = lg.weight(weight)
        if kind == "labels":
            labels = lg.labels(target)
            if not reverse:
                if ignore_index is not None:
                    try:
                        ignore_index = operator.index(ignore_index)
                    except TypeError:
                        raise TypeError("ignore_index must be an integer or None, got "
                                        f"{ignore_index!r}") from None
                    if not _INT64.min <= ignore_index <= _INT64.max:
                        raise ValueError(f"ignore_index must fit in int64, got {ignore_index}")
                job["labels"], job["ignore_index"] = labels, ignore_index
                return job
            _check_label_range(labels, lg.n_classes)
            onehot = np.zeros(lg.rows.shape, dtype=lg.dtype)
            onehot[np.arange(labels.shape[0]), labels] = 1
            job["target"], job["kind"] = onehot, "probs"
            return job
        if job["eps"] != 0.0 and kind != "probs":
            raise ValueError("label_smoothing applies to 'labels' and 'probs' targets, "
                             f"not {kind!r}")
        tdtype, job["target"] = lg.same_layout(target, "target")
        job["tol"] = _eps_tolerance(lg.dtype, tdtype if tdtype.kind == "f" else lg.dtype)
        return job

    def _losses(logits, target, *, want, **keywords):
        """Per-row losses (dict of float64 arrays) and the row weights of the mean."""
        job = _prepare(logits, target, **keywords)
        lg = job["lg"]
        if job["labels"] is not None:
            ce, h, kl, row_weight = kernels.ce_labels_rows(
                lg.rows, job["labels"], lg.where, job["t"], job["weight"],
                job["ignore_index"], job["eps"], "h" in want or "kl" in want)
            return lg, {"ce": ce, "h": h, "kl": kl}, row_weight
        ce, h, kl = kernels.soft_rows(lg.rows, job["target"], job["kind"], lg.where, job["t"],
                                      job["weight"], job["eps"], job["reverse"],
                                      job["validate"], job["tol"], tuple(want))
        return lg, {"ce": ce, "h": h, "kl": kl}, None

    def _loss_and_grad(loss, logits, target, *, reduction, base, **keywords):
        """(reduced loss, gradient of the reduced loss w.r.t. the logits) from one fused
        kernel per row; the gradient has the logits' shape and compute dtype."""
        _check_reduction(reduction)
        log_base = _log_base(base)
        job = _prepare(logits, target, **keywords)
        lg = job["lg"]
        grad = np.empty(lg.rows.shape, dtype=lg.dtype)
        if job["labels"] is not None:
            values, row_weight = kernels.ce_labels_grad_rows(
                lg.rows, job["labels"], lg.where, job["t"], job["weight"],
                job["ignore_index"], job["eps"], reduction, log_base, grad)
        else:
            row_weight = None
            values = kernels.soft_grad_rows(
                lg.rows, job["target"], job["kind"], lg.where, job["t"], job["weight"],
                job["eps"], job["reverse"], job["validate"], job["tol"], loss, reduction,
                log_base, grad)
        value = _finish_loss(lg, values, row_weight, reduction, log_base)
        grad = np.moveaxis(grad.reshape(lg.lead_shape + (lg.n_classes,)), -1, lg.axis)
        return value, grad

    def cross_entropy(logits, target, *, axis=-1, target_type="auto", weight=None,
                      ignore_index=-100, label_smoothing=_ZERO, temperature=_ONE,
                      where=None, reduction="mean", base=None, validate=True):
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
        if (one_row is not None and weight is None and where is None and base is None
                and temperature is _ONE and label_smoothing is _ZERO
                and type(axis) is int and axis == -1 and type(ignore_index) is int
                and (target_type == "auto" or target_type == "labels")
                and (reduction == "mean" or reduction == "sum" or reduction == "none")):
            try:
                value = one_row(logits, target, ignore_index)
            except OverflowError:  # a label or ignore_index beyond int64: worded below
                value = None
            if value is not None:  # one row: its loss is the mean, the sum and the row
                return value
        _check_reduction(reduction)
        log_base = _log_base(base)
        lg, rows, row_weight = _losses(
            logits, target, axis=axis, target_type=target_type, weight=weight,
            ignore_index=ignore_index, label_smoothing=label_smoothing,
            temperature=temperature, where=where, validate=validate, want=("ce",))
        return _finish_loss(lg, rows["ce"], row_weight, reduction, log_base)

    def kl_divergence(logits, target, *, axis=-1, target_type="auto", reverse=False,
                      temperature=1.0, where=None, reduction="mean", base=None,
                      validate=True):
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
        _check_reduction(reduction)
        log_base = _log_base(base)
        lg, rows, row_weight = _losses(
            logits, target, axis=axis, target_type=target_type, weight=None,
            ignore_index=None, label_smoothing=0.0, temperature=temperature, where=where,
            validate=validate, want=("kl",), reverse=bool(reverse))
        return _finish_loss(lg, rows["kl"], row_weight, reduction, log_base)

    def decompose(logits, target, *, axis=-1, target_type="auto", weight=None,
                  ignore_index=-100, label_smoothing=0.0, temperature=1.0, where=None,
                  reduction="mean", base=None, validate=True):
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
        _check_reduction(reduction)
        log_base = _log_base(base)
        lg, rows, row_weight = _losses(
            logits, target, axis=axis, target_type=target_type, weight=weight,
            ignore_index=ignore_index, label_smoothing=label_smoothing,
            temperature=temperature, where=where, validate=validate,
            want=("ce", "h", "kl"))
        return Decomposition(*(_finish_loss(lg, rows[k], row_weight, reduction, log_base)
                               for k in ("ce", "h", "kl")))

    def entropy(x, *, axis=-1, input_type="logits", temperature=1.0, where=None,
                reduction="none", base=None):
        """Entropy H = -Σ p log p of softmax(x / T), of probabilities or of log-probabilities.

        One value per row (0·log 0 = 0), reduced as asked.

        Parameters
        ----------
        $x_values
        axis : int, default -1
            The class axis.
        input_type : {'logits', 'probs', 'log_probs'}, default 'logits'
            What `x` holds. Probabilities and log-probabilities are always checked: an entry
            that is negative or NaN, or a row whose sum is off 1 by more than √eps of the dtype,
            raises ValueError.
        temperature : float, default 1.0
            T > 0 divides logits before the softmax (logits only).
        $x_where
        reduction : {'none', 'sum', 'mean'}, default 'none'
            'none': one value per row; 'sum'; 'mean' over rows.
        $base

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
        _check_choice(input_type, _INPUT_TYPES, "input_type")
        _check_reduction(reduction)
        log_base = _log_base(base)
        t = _check_temperature(temperature)
        if input_type != "logits" and t != 1.0:
            raise ValueError("temperature applies only to input_type='logits'")
        lg = _Logits(x, axis, where, name="x")
        tol = _eps_tolerance(lg.dtype, lg.orig_dtype if lg.orig_dtype.kind == "f"
                             else lg.dtype)
        h = kernels.entropy_rows(lg.rows, input_type, lg.where, t, tol)
        return _finish_loss(lg, h, None, reduction, log_base)

    def cross_entropy_and_grad(logits, target, *, axis=-1, target_type="auto", weight=None,
                               ignore_index=-100, label_smoothing=0.0, temperature=1.0,
                               where=None, reduction="mean", base=None, validate=True):
        """(cross_entropy(...), its gradient with respect to `logits`), from one fused pass.

        Parameters
        ----------
        logits, target, **keywords
            As for `cross_entropy`.

        Returns
        -------
        loss : numpy scalar or ndarray
            As `cross_entropy` returns it.
        grad : ndarray
            The gradient of the reduced loss with respect to `logits` (for 'none', each row's
            own gradient), of the logits' shape and compute dtype.

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
        return _loss_and_grad("ce", logits, target, axis=axis, target_type=target_type,
                              weight=weight, ignore_index=ignore_index,
                              label_smoothing=label_smoothing, temperature=temperature,
                              where=where, reduction=reduction, base=base, validate=validate)

    def kl_divergence_and_grad(logits, target, *, axis=-1, target_type="auto", reverse=False,
                               temperature=1.0, where=None, reduction="mean", base=None,
                               validate=True):
        """(kl_divergence(...), its gradient with respect to `logits`), from one fused pass.

        Parameters
        ----------
        logits, target, **keywords
            As for `kl_divergence`.

        Returns
        -------
        loss : numpy scalar or ndarray
            As `kl_divergence` returns it.
        grad : ndarray
            The gradient of the reduced loss with respect to `logits`, of the logits' shape and
            compute dtype.

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
        return _loss_and_grad("kl", logits, target, axis=axis, target_type=target_type,
                              weight=None, ignore_index=None, label_smoothing=0.0,
                              temperature=temperature, where=where, reduction=reduction,
                              base=base, validate=validate, reverse=reverse)

    def js_divergence(logits, target, *, axis=-1, target_type="auto", beta=0.5,
                      temperature=1.0, where=None, reduction="mean", base=None,
                      validate=True):
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
        _check_reduction(reduction)
        log_base = _log_base(base)
        b = _real(beta, "beta")
        if not 0.0 <= b <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta!r}")
        job = _prepare(logits, target, axis=axis, target_type=target_type, weight=None,
                       ignore_index=None, label_smoothing=0.0, temperature=temperature,
                       where=where, validate=validate, reverse=True)
        lg = job["lg"]
        values = kernels.js_rows(lg.rows, job["target"], job["kind"], lg.where, job["t"], b,
                                 job["validate"], job["tol"])
        return _finish_loss(lg, values, None, reduction, log_base)

    def binary_cross_entropy(logits, target, *, weight=None, pos_weight=None,
                             reduction="mean", base=None):
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
        _check_reduction(reduction)
        log_base = _log_base(base)
        x = _as_array(logits, "logits")
        dtype = _compute_dtype(x.dtype, "logits")
        operands = [x, _bce_operand(target, x.shape, "target", exact=True)]
        for name, extra in (("weight", weight), ("pos_weight", pos_weight)):
            operands.append(None if extra is None else _bce_operand(extra, x.shape, name))
        present = [a for a in operands if a is not None]
        out = np.empty(x.shape, dtype=np.float64) if reduction == "none" else None
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
                total += kernels.bce_flat(xs, ys, ws, pws, next(ops, None))
        if log_base != 1.0:
            total /= log_base
            if out is not None:
                out /= log_base
        if reduction == "none":
            return _scalar_or_array(out.astype(dtype))
        if reduction == "sum":
            return dtype.type(total)
        return dtype.type(total / x.size if x.size else math.nan)

    functions = {
        "logsumexp": logsumexp,
        "log_softmax": log_softmax,
        "softmax": softmax,
        "cross_entropy": cross_entropy,
        "kl_divergence": kl_divergence,
        "entropy": entropy,
        "decompose": decompose,
        "cross_entropy_and_grad": cross_entropy_and_grad,
        "kl_divergence_and_grad": kl_divergence_and_grad,
        "js_divergence": js_divergence,
        "binary_cross_entropy": binary_cross_entropy,
    }
    for fn in functions.values():  # the shared parameter descriptions, written once
        fn.__doc__ = _docstrings.fill(fn.__doc__)
    return functions
