"""The argument rules of every public function, written once, with their error messages.

A call is turned into an immutable `Plan`: the operation, the logits as (N, C) row views
in the compute dtype, the target (integer labels or rows in the logits' layout), the
mask, every keyword checked and converted, the reduction, the unit and the result's dtype
and shape. The backends (divcore._core, divcore._refkernels) compute from a plan; the
numpy API (divcore.api), divcore.dask and divcore.torch build their plans here, so a rule
and its wording exist in one place. The compiled front (divcore/_front.pxi) recognises
ordinary calls without building a plan and hands anything else, untouched, to the
functions that do.
"""
import math
import numbers
import operator
from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import _errors

REDUCTIONS = ("none", "sum", "mean")
TARGET_TYPES = ("auto", "labels", "probs", "log_probs", "logits")
INPUT_TYPES = ("logits", "probs", "log_probs")
_INT64 = np.iinfo(np.int64)

# The smallest tolerance on a probability row's sum (see sum_tolerance): what probabilities
# stored with 6 decimals (|sum - 1| ~ 1e-6 .. 1e-5 for large C) need, far below the 1e-2
# of a row that is not a distribution (0.99, 1.1, log-probabilities, counts).
SUM_TOL_FLOOR = 1e-4


@dataclass(frozen=True)
class Plan:
    """One call, checked and normalised: what a backend needs to compute it."""

    op: str                                  # the public function's name
    rows: np.ndarray                         # (N, C) logits (or (B, R, C) blocks of rows),
    #                                          compute dtype or half storage, any strides
    dtype: np.dtype                          # compute and result dtype
    shape: tuple                             # the input's shape
    axes: tuple                              # the class axes (normalised)
    lead_shape: tuple                        # the shape without the class axes
    where: Optional[np.ndarray] = None       # (N, C) uint8 view of the mask
    temperature: float = 1.0
    target_kind: str = ""                    # labels, probs, log_probs, logits / input_type
    labels: Optional[np.ndarray] = None      # (N,) int64
    ignore_index: Optional[int] = None
    target: Optional[np.ndarray] = None      # rows in the logits' dtype and layout
    weight: Optional[np.ndarray] = None      # (C,) class weights, compute dtype
    smoothing: float = 0.0
    validate: bool = True
    tol: float = 1.0                         # |row sum - 1| allowed for a soft target
    reverse: bool = False
    beta: float = 0.5
    reduction: str = "none"
    log_base: float = 1.0                    # results are divided by log(base)
    keepdims: bool = False
    topk_indices: Optional[np.ndarray] = None  # (N, k) int64 of a TopK target (SPEC §7)
    topk_values: Optional[np.ndarray] = None   # (N, k) compute dtype: its values
    topk_kind: str = ""                      # "probs" or "log_probs"
    tail: str = "bucket"                     # how a TopK target's missing mass counts
    first_row: int = 0                       # a piece of a plan: its rows' offset (messages)

    @property
    def n_rows(self):
        return math.prod(self.rows.shape[:-1])

    @property
    def n_classes(self):
        return self.rows.shape[-1]

    def finish(self, per_row):
        """Per-row float64 results -> the result dtype, in the leading shape."""
        return scalar_or_array(per_row.reshape(self.lead_shape).astype(self.dtype))


# --------------------------------------------------------------------------- arrays

def as_array(x, name):
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
    t = t.detach().resolve_conj().resolve_neg()
    if str(t.dtype) == "torch.bfloat16":
        try:  # ml_dtypes' bfloat16: the tensor's own memory, widened row by row
            import ml_dtypes
            import torch
            return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        except ImportError:
            t = t.float()  # numpy alone has no bfloat16: one float32 copy
    return t.numpy()


def compute_dtype(dtype, name):
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
    """a in the given native dtype: a view when it already is, else one conversion.
    Half-precision storage (float16, bfloat16) of a float32 computation stays as it is:
    the compiled core widens it row by row (never a float32 copy of the array)."""
    if a.dtype == dtype and a.dtype.isnative:
        return a
    if dtype == np.float32 and is_half(a.dtype) and a.dtype.isnative:
        return a
    return a.astype(dtype)


def is_half(dtype):
    """float16 or bfloat16 (ml_dtypes' numpy dtype): half-precision storage."""
    return dtype.itemsize == 2 and (dtype.char == "e" or dtype.name == "bfloat16")


def check_out(out, shape, name="out"):
    """`out=` of a writer or a gradient: a writable numpy array of the result's shape and a
    floating dtype (float16, bfloat16, float32 or float64). The float32 (float64) result is
    rounded once into it, to nearest even, as numpy's and ml_dtypes' casts round."""
    shape = tuple(shape)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(out).__name__}: pass "
                        f"{name}=np.empty({shape}, dtype=np.float32) or leave it None")
    if out.dtype.kind != "f" and out.dtype.name != "bfloat16":
        raise TypeError(f"{name} has dtype {out.dtype}; it must be float16, bfloat16, float32 "
                        f"or float64 (the result is rounded once into it)")
    if out.shape != shape:
        raise ValueError(f"{name} has shape {out.shape}, the result has shape {shape}: pass "
                         f"{name}=np.empty({shape}, dtype={out.dtype.name!r})")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only: pass a writable array")
    return out


def sum_tolerance(sum_tol, *dtypes):
    """How far a probability row's sum may be from 1: `sum_tol` when given, else
    max(√eps of the least precise floating dtype, SUM_TOL_FLOOR)."""
    if sum_tol is not None:
        return check_sum_tol(sum_tol)
    eps = max(float(np.finfo(d).eps) for d in dtypes if np.dtype(d).kind == "f")
    return max(math.sqrt(eps), SUM_TOL_FLOOR)


def check_sum_tol(sum_tol):
    """sum_tol: None (the default rule) or a number >= 0."""
    if sum_tol is None:
        return None
    tol = real(sum_tol, "sum_tol")
    if not tol >= 0.0:
        raise ValueError(f"sum_tol must be a number >= 0, got {sum_tol!r}")
    return tol


def normalize_axis(axis, ndim, name="axis"):
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {axis!r}") from None
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(axis, ndim)
    return axis % ndim


def _collapses(dims):
    """(size, stride) pairs that merge into one axis in C order."""
    return all(dims[k][1] == dims[k + 1][1] * dims[k + 1][0] for k in range(len(dims) - 1))


def rows_view(a):
    """The rows of `a`, whose last axis is the class axis: an (N, C) view whose leading
    axes are collapsed into one row axis (C order), or, when they do not collapse into one
    stride but into two (e.g. (N, d, C) moved from torch's (N, C, d)), a (B, R, C) view of
    blocks of rows read in place. Copies only when neither works."""
    n_cls = a.shape[-1]
    lead = a.shape[:-1]
    n_rows = math.prod(lead)
    if a.ndim == 2:
        return a
    dims = [(s, st) for s, st in zip(lead, a.strides[:-1]) if s != 1]
    if _collapses(dims):
        row_stride = dims[-1][1] if dims else a.itemsize * max(n_cls, 1)
        return np.lib.stride_tricks.as_strided(
            a, shape=(n_rows, n_cls), strides=(row_stride, a.strides[-1]), writeable=False)
    if n_rows and n_cls:
        for k in range(1, len(dims)):
            outer, inner = dims[:k], dims[k:]
            if _collapses(outer) and _collapses(inner):
                blocks, rows = math.prod(s for s, _ in outer), math.prod(s for s, _ in inner)
                return np.lib.stride_tricks.as_strided(
                    a, shape=(blocks, rows, n_cls),
                    strides=(outer[-1][1], inner[-1][1], a.strides[-1]), writeable=False)
    return np.ascontiguousarray(a).reshape(n_rows, n_cls)


def empty_in_layout(rows, dtype):
    """A new array for results of the shape of `rows` ((N, C), or (B, R, C) blocks),
    returned as a view of that shape whose rows are adjacent in memory: each class's run of
    rows (of a block) contiguous, the classes one after the other, as the logits lie when
    their class axis is strided and their rows are adjacent. Moved back to the logits'
    axes, it is laid out as they are ((C, N) for a class axis 0, torch's (N, C, d) for 1)."""
    if rows.ndim == 2:
        return np.empty(rows.shape[::-1], dtype=dtype).T
    blocks, n_rows, n_cls = rows.shape
    return np.empty((blocks, n_cls, n_rows), dtype=dtype).transpose(0, 2, 1)


def rows_like(rows, other):
    """`other` (the rows_view of an array of the logits' shape: a target or a mask) in the
    layout of the logits' `rows`: (N, C), or (B, R, C) blocks of the same sizes."""
    if rows.ndim == 2:
        return other if other.ndim == 2 else np.ascontiguousarray(other).reshape(rows.shape)
    if other.ndim == 3 and other.shape == rows.shape:
        return other
    if other.ndim == 2:
        n_rows = rows.shape[1]
        rs, cs = other.strides
        return np.lib.stride_tricks.as_strided(
            other, shape=rows.shape, strides=(n_rows * rs, rs, cs), writeable=False)
    return np.ascontiguousarray(other).reshape(rows.shape)


def broadcast_mask(where, shape):
    """`where` as a boolean array broadcast to `shape` (a view)."""
    w = as_array(where, "where")
    if w.dtype != np.bool_:
        raise TypeError(f"where must be a boolean array, got dtype {w.dtype}")
    try:
        return np.broadcast_to(w, shape)
    except ValueError:
        raise ValueError(f"where: shape {w.shape} does not broadcast to the input's shape "
                         f"{shape}") from None


def python_int_labels(a):
    """True for labels given as Python ints, some beyond int64 (numpy then makes an
    object array of them): they are out of range, not of a wrong dtype."""
    if a.dtype != object or a.size == 0:
        return False
    values = a.reshape(-1).tolist()
    return (all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values)
            and any(not _INT64.min <= v <= _INT64.max for v in values))


def scalar_or_array(a):
    return a[()] if a.ndim == 0 else a


# ------------------------------------------------------------------------- keywords

def check_reduction(reduction):
    """The reduction as a plain str (a numpy str_ compares equal but is another type)."""
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'none', 'sum' or 'mean', got {reduction!r}")
    return str(reduction)


def real(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def log_base(base):
    """The divisor that turns nats into units of `base` (1.0 for None / e)."""
    if base is None:
        return 1.0
    b = real(base, "base")
    if not (b > 0 and math.isfinite(b)) or b == 1.0:
        raise ValueError(f"base must be a positive number other than 1, got {base!r}")
    return math.log(b)


def check_temperature(temperature):
    t = real(temperature, "temperature")
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return t


def check_smoothing(label_smoothing):
    eps = real(label_smoothing, "label_smoothing")
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    return eps


def check_beta(beta):
    b = real(beta, "beta")
    if not 0.0 <= b <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta!r}")
    return b


def check_choice(value, choices, name):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_integer(value, name):
    """A Python or numpy integer (not a bool) as an int; TypeError naming `name` else."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None


def check_ignore_index(ignore_index):
    if ignore_index is None:
        return None
    try:
        ignore_index = operator.index(ignore_index)
    except TypeError:
        raise TypeError("ignore_index must be an integer or None, got "
                        f"{ignore_index!r}") from None
    if not _INT64.min <= ignore_index <= _INT64.max:
        raise ValueError(f"ignore_index must fit in int64, got {ignore_index}")
    return ignore_index


def target_kind(target, target_type):
    """The target's kind: target_type, or for 'auto' labels (integers) or probs (floats)."""
    check_choice(target_type, TARGET_TYPES, "target_type")
    if target_type != "auto":
        return target_type
    a = as_array(target, "target")
    if a.dtype.kind in "iu" or python_int_labels(a):
        return "labels"
    if a.dtype.kind == "f" or a.dtype.name == "bfloat16":
        return "probs"
    raise TypeError(f"target: cannot infer target_type from dtype {a.dtype} (integers are "
                    "labels, floats are probabilities; pass target_type explicitly)")


# ---------------------------------------------------------------------- the logits

class _Logits:
    """logits (or entropy input) moved to (N, C) rows, with the mask and output dtype."""

    def __init__(self, x, axis, where, name="logits"):
        a = as_array(x, name)
        if a.ndim == 0:
            raise ValueError(f"{name} must have at least one dimension (the class axis)")
        self.dtype = compute_dtype(a.dtype, name)
        self.orig_dtype = a.dtype
        self.shape = a.shape
        self.axis = normalize_axis(axis, a.ndim)
        self.lead_shape = a.shape[:self.axis] + a.shape[self.axis + 1:]
        self.n_classes = a.shape[self.axis]
        self.rows = rows_view(np.moveaxis(_native(a, self.dtype), self.axis, -1))
        self.where = self._mask(where)

    def _mask(self, where):
        if where is None:
            return None
        w = broadcast_mask(where, self.shape)
        return rows_like(self.rows, rows_view(np.moveaxis(w, self.axis, -1))).view(np.uint8)

    def same_layout(self, y, name):
        """Another array of the logits' shape (a soft target) as matching rows."""
        a = as_array(y, name)
        if a.shape != self.shape:
            hint = ""
            if a.shape == self.lead_shape and a.dtype.kind == "f":
                hint = (" (a floating target is read as probabilities; for class labels "
                        "pass integers, e.g. target.astype(int), or target_type='labels')")
            raise ValueError(f"{name}: shape {a.shape} does not match the logits' shape "
                             f"{self.shape}{hint}")
        if a.dtype.kind not in "fiub" and a.dtype.name != "bfloat16":
            compute_dtype(a.dtype, name)  # raises the TypeError
        return a.dtype, rows_like(self.rows, rows_view(np.moveaxis(_native(a, self.dtype),
                                                                     self.axis, -1)))

    def labels(self, y):
        """Integer labels of the logits' shape without the class axis, as int64 (N,).
        Floats that are whole numbers are labels too (as `divcore score` reads files)."""
        a = as_array(y, "target")
        if python_int_labels(a) and a.shape == self.lead_shape:
            flat = a.reshape(-1)
            row = next(i for i, v in enumerate(flat) if not _INT64.min <= v <= _INT64.max)
            raise _errors.label_out_of_range(row, int(flat[row]), self.n_classes)
        if a.dtype.kind == "f" and a.shape == self.lead_shape:
            a = _whole_number_labels(a, self.n_classes)
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
        w = as_array(weight, "weight")
        if w.ndim != 1 or w.shape[0] != self.n_classes:
            raise ValueError(f"weight must be a 1-d array of {self.n_classes} class weights, "
                             f"got shape {w.shape}")
        compute_dtype(w.dtype, "weight")
        return np.ascontiguousarray(w, dtype=self.dtype)


def _whole_number_labels(a, n_classes):
    """Floating labels as int64 when every value is a whole number (as `divcore score`
    reads a labels file): a ValueError naming the first row that is not, an IndexError for
    a whole number beyond int64 (out of range, as an integer label there would be)."""
    flat = a.reshape(-1)
    whole = np.isfinite(flat) & (flat == np.floor(flat))
    if not whole.all():
        row = int(np.argmin(whole))
        raise ValueError(f"target: label {flat[row]!r} at row {row} is not a whole number "
                         "(labels must be integers; for probabilities pass "
                         "target_type='probs')")
    fits = np.abs(flat) < 2.0 ** 63
    if not fits.all():
        row = int(np.argmin(fits))
        raise _errors.label_out_of_range(row, int(flat[row]), n_classes)
    return a.astype(np.int64)


def _class_rows(x, axis, where, name="x"):
    """logsumexp / softmax: `axis` may be an int, a tuple or None (all axes)."""
    a = as_array(x, name)
    if a.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension")
    if axis is None:
        axes = tuple(range(a.ndim))
    elif isinstance(axis, tuple):
        axes = tuple(normalize_axis(ax, a.ndim) for ax in axis)
        if len(set(axes)) != len(axes):
            raise ValueError(f"axis: repeated axis in {axis!r}")
    else:
        return _Logits(a, axis, where, name), (normalize_axis(axis, a.ndim),), a.shape
    if not axes:
        raise ValueError("axis: the empty tuple names no class axis")
    # Several class axes: move them last (in order) and merge them into one.
    rest = [ax for ax in range(a.ndim) if ax not in axes]
    moved = np.transpose(a, rest + list(axes))
    merged = moved.reshape(moved.shape[:len(rest)] + (-1,))
    w = None
    if where is not None:
        wm = np.transpose(broadcast_mask(where, a.shape), rest + list(axes))
        w = wm.reshape(wm.shape[:len(rest)] + (-1,))
    return _Logits(merged, -1, w, name), axes, a.shape


# ------------------------------------------------------------------------- plans

def plan_class_rows(op, x, axis, where, temperature=1.0, keepdims=False):
    """logsumexp, log_softmax, softmax."""
    t = check_temperature(temperature)
    lg, axes, shape = _class_rows(x, axis, where)
    return Plan(op=op, rows=lg.rows, dtype=lg.dtype, shape=shape, axes=axes,
                lead_shape=lg.lead_shape, where=lg.where, temperature=t,
                keepdims=bool(keepdims))


def plan_loss(op, logits, target, *, axis=-1, target_type="auto", weight=None,
              ignore_index=None, label_smoothing=0.0, temperature=1.0, where=None,
              reduction="mean", base=None, validate=True, sum_tol=None, reverse=False,
              beta=0.5):
    """cross_entropy, kl_divergence, decompose, js_divergence and the *_and_grad
    functions. A label target of a reverse KL or a JS becomes its one-hot distribution.
    ignore_index: None when the function has no such keyword; -100 is its default."""
    reduction = check_reduction(reduction)
    check_sum_tol(sum_tol)
    unit = log_base(base)
    t = check_temperature(temperature)
    eps = check_smoothing(label_smoothing)
    b = check_beta(beta) if op == "js_divergence" else 0.5
    lg = _Logits(logits, axis, where)
    kind = target_kind(target, target_type)
    w = lg.weight(weight)
    common = dict(op=op, rows=lg.rows, dtype=lg.dtype, shape=lg.shape, axes=(lg.axis,),
                  lead_shape=lg.lead_shape, where=lg.where, temperature=t, weight=w,
                  smoothing=eps, validate=bool(validate), reverse=bool(reverse), beta=b,
                  reduction=reduction, log_base=unit)
    if kind == "labels":
        labels = lg.labels(target)
        if not (reverse or op == "js_divergence"):
            return Plan(target_kind="labels", labels=labels,
                        ignore_index=check_ignore_index(ignore_index), **common)
        check_label_range(labels, lg.n_classes)
        onehot = np.zeros(lg.rows.shape, dtype=lg.dtype)
        onehot.reshape(-1, lg.n_classes)[np.arange(labels.shape[0]), labels] = 1
        return Plan(target_kind="probs", target=onehot, tol=1.0, **common)
    if ignore_index is not None and ignore_index != -100:
        raise ValueError(f"ignore_index applies to 'labels' targets, not {kind!r} (rows of a "
                         f"soft target cannot be ignored; leave ignore_index at its default "
                         f"or pass None)")
    if eps != 0.0 and kind != "probs":
        raise ValueError("label_smoothing applies to 'labels' and 'probs' targets, "
                         f"not {kind!r}")
    tdtype, rows = lg.same_layout(target, "target")
    tol = sum_tolerance(sum_tol, lg.dtype, tdtype if tdtype.kind == "f" else lg.dtype)
    return Plan(target_kind=kind, target=rows, tol=tol, **common)


def plan_entropy(x, axis, input_type, temperature, where, reduction, base, sum_tol=None):
    check_choice(input_type, INPUT_TYPES, "input_type")
    reduction = check_reduction(reduction)
    check_sum_tol(sum_tol)
    unit = log_base(base)
    t = check_temperature(temperature)
    if input_type != "logits" and t != 1.0:
        raise ValueError("temperature applies only to input_type='logits'")
    lg = _Logits(x, axis, where, name="x")
    tol = sum_tolerance(sum_tol, lg.dtype, lg.orig_dtype if lg.orig_dtype.kind == "f"
                        else lg.dtype)
    return Plan(op="entropy", rows=lg.rows, dtype=lg.dtype, shape=lg.shape, axes=(lg.axis,),
                lead_shape=lg.lead_shape, where=lg.where, temperature=t,
                target_kind=input_type, tol=tol, reduction=reduction, log_base=unit)


def check_label_range(labels, n_classes):
    """IndexError for the first label outside [0, n_classes) (no ignore_index here)."""
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        row = int(np.argmax(bad))
        raise _errors.label_out_of_range(row, int(labels[row]), n_classes)


@dataclass(frozen=True)
class BcePlan:
    """binary_cross_entropy: the logits and the operands broadcast to them."""

    logits: np.ndarray
    target: np.ndarray
    weight: Optional[np.ndarray]
    pos_weight: Optional[np.ndarray]
    dtype: np.dtype
    reduction: str
    log_base: float


def _bce_operand(value, shape, name, exact=False):
    """A BCE operand: the logits' shape exactly (target), or broadcastable to it."""
    a = as_array(value, name)
    compute_dtype(a.dtype, name)
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


def plan_bce(logits, target, weight, pos_weight, reduction, base):
    reduction = check_reduction(reduction)
    unit = log_base(base)
    x = as_array(logits, "logits")
    dtype = compute_dtype(x.dtype, "logits")
    y = _bce_operand(target, x.shape, "target", exact=True)
    w = None if weight is None else _bce_operand(weight, x.shape, "weight")
    pw = None if pos_weight is None else _bce_operand(pos_weight, x.shape, "pos_weight")
    return BcePlan(x, y, w, pw, dtype, reduction, unit)


def first_bad_weight(s):
    """The flat index of the first sample weight that is negative, NaN or infinite (None if
    there is none): the rule of every function's sample_weight."""
    bad = ~(s >= 0) | ~np.isfinite(s)
    return int(np.flatnonzero(bad)[0]) if bad.any() else None


def bce_sample_weight(sample_weight, shape):
    """BCE's sample weights: float64, broadcast to the logits' shape (a view), each >= 0 and
    finite (ValueError naming the first bad element's index)."""
    s = _bce_operand(sample_weight, shape, "sample_weight").astype(np.float64, copy=False)
    bad = first_bad_weight(s)
    if bad is not None:
        where = np.unravel_index(bad, s.shape) if s.ndim else ()
        raise ValueError(f"sample_weight: the weight at index {tuple(int(i) for i in where)} "
                         f"is {s[where]!r}; sample weights must be finite and >= 0 (0 leaves "
                         "an element out)")
    return np.broadcast_to(s, shape)



# ------------------------------------------------- SPEC §7: sample weights, z-loss, soft-cap

TAILS = ("bucket", "drop", "renormalize")


def check_tail(tail, target):
    """`tail` says how a TopK target's missing mass counts; a dense target has none."""
    check_choice(tail, TAILS, "tail")
    if tail != "bucket" and not is_topk(target):
        raise ValueError(f"tail={tail!r} applies to a divcore.TopK target only (a dense "
                         "target has no missing mass); leave tail at its default 'bucket'")
    return tail


def is_topk(target):
    return type(target).__name__ == "TopK" and hasattr(target, "indices")


def check_z_loss(z_loss):
    z = real(z_loss, "z_loss")
    if not (z >= 0 and math.isfinite(z)):
        raise ValueError(f"z_loss must be a finite number >= 0, got {z_loss!r}")
    return z


def check_softcap(softcap):
    """None (no cap) or c > 0, finite: logits become c·tanh(z / c)."""
    if softcap is None:
        return None
    c = real(softcap, "softcap")
    if not (c > 0 and math.isfinite(c)):
        raise ValueError(f"softcap must be None or a finite number > 0, got {softcap!r}")
    return c


def soft_capped(x, c, name="logits", derivative=False):
    """c·tanh(x / c) in the compute dtype (half storage computes in float32). -inf stays
    -inf: a masked class stays out of the distribution (tanh would give it the logit -c).
    With `derivative`: (capped, d capped / dx = 1 - tanh², 0 where x is -inf)."""
    a = as_array(x, name)
    dtype = compute_dtype(a.dtype, name)
    t = np.tanh(a.astype(dtype) / dtype.type(c))
    capped = t * dtype.type(c)
    masked = np.isneginf(a) if a.dtype.kind == "f" or is_half(a.dtype) else None
    if masked is not None and masked.any():
        capped[masked] = -np.inf
    return (capped, 1 - t * t) if derivative else capped


def sample_weight_rows(sample_weight, lead_shape):
    """Per-row weights s_i >= 0 as float64 in row order (the leading shape, C order),
    broadcast from any shape that broadcasts to it; ValueError naming the first bad row."""
    s = as_array(sample_weight, "sample_weight")
    compute_dtype(s.dtype, "sample_weight")  # real numbers only
    try:
        s = np.broadcast_to(s.astype(np.float64), lead_shape)
    except ValueError:
        raise ValueError(f"sample_weight: shape {s.shape} does not broadcast to the logits' "
                         f"shape without the class axis, {tuple(lead_shape)} (one weight per "
                         "row)") from None
    s = s.reshape(-1)
    row = first_bad_weight(s)
    if row is not None:
        raise ValueError(f"sample_weight: row {row} has weight {s[row]!r}; sample weights "
                         "must be finite and >= 0 (0 leaves a row out)")
    return s


def wants_extras(target, tail, sample_weight, z_loss, softcap):
    """Whether a loss call uses anything of SPEC §7 (a TopK target, a tail, sample weights,
    a z-loss, a soft-cap), which the plain kernels do not do alone."""
    if (sample_weight is None and softcap is None and type(tail) is str and tail == "bucket"
            and type(z_loss) in (float, int) and z_loss == 0 and not is_topk(target)):
        return False  # the plain call, decided without the checks' costs
    return (sample_weight is not None or softcap is not None or is_topk(target)
            or check_tail(tail, target) != "bucket" or check_z_loss(z_loss) != 0)
def plan_row_stats(logits, labels, axis, k, temperature, where):
    """row_stats: (the plan, k). Labels (optional) are checked in range here: a label
    outside [0, C) is an IndexError naming its row and value."""
    t = check_temperature(temperature)
    lg = _Logits(logits, axis, where)
    n_classes = lg.n_classes
    k = check_integer(k, "k")
    if not 0 <= k <= n_classes:
        raise ValueError(f"k must be in [0, {n_classes}] (the number of classes), got {k}; "
                         f"pass k=min(k, {n_classes}) to keep every class")
    y = None
    if labels is not None:
        y = lg.labels(labels)
        check_label_range(y, n_classes)
    plan = Plan(op="row_stats", rows=lg.rows, dtype=lg.dtype, shape=lg.shape,
                axes=(lg.axis,), lead_shape=lg.lead_shape, where=lg.where, temperature=t,
                target_kind="labels" if y is not None else "", labels=y)
    return plan, k
