"""divcore's losses on dask arrays: each chunk of rows is scored by the compiled kernels
where it lives, and only per-row values travel, so scoring scales past one machine.

The logits may be chunked along any of their row (non-class) axes; the class axis is
rechunked to a single chunk, since a row's log-sum-exp needs the whole row. Targets,
masks and weights are rechunked to match the logits. Every function takes the keywords of
the numpy function of the same name and returns a lazy dask array (call `.compute()`):

- reduction='none': one value per row, chunked like the logits' rows;
- reduction='sum' / 'mean': a 0-d array. The mean is reduced exactly across chunks from
  per-chunk partial sums of the numerator and the denominator, with the numpy API's rule:
  over rows, Σ w_y·l / Σ w_y over non-ignored rows with labels and `weight`, nan for an
  empty or fully ignored batch. Partial sums are float64; the result has the numpy API's
  dtype (float32 for float32 logits).

Argument errors (a bad keyword, a target of the wrong shape) are raised when the function
is called; errors that depend on the data (a label out of range, a probability row that
does not sum to 1) are raised by `.compute()`, and then name the row counted over the
whole array (the leading axes flattened in C order, as the numpy API counts them), or
within its chunk when the chunk sizes are unknown. A target, mask or weight cannot be
matched to logits whose chunk sizes are unknown (after boolean indexing), or the other
way round: that is refused at the call, saying to call `compute_chunk_sizes()` first.

Examples
--------
>>> import numpy as np, dask.array as da
>>> import divcore.dask as dcd
>>> logits = da.from_array(np.array([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]]), chunks=(1, 3))
>>> loss = dcd.cross_entropy(logits, da.from_array(np.array([0, 1]), chunks=1))
>>> print(f"{loss.compute():.6f}")
0.285104

divcore.dask is imported only on request (`import divcore.dask`); dask stays an optional
dependency of divcore.
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable, Literal, Optional

import dask.array as da
import numpy as np

import divcore
from divcore import _rules
from divcore._rules import normalize_axis as _normalize_axis, target_kind as _target_kind

__all__ = ["binary_cross_entropy", "cross_entropy", "entropy", "js_divergence",
           "kl_divergence", "row_stats"]

Reduction = Literal["none", "sum", "mean"]
TargetType = Literal["auto", "labels", "probs", "log_probs", "logits"]
_LETTERS = "abcdefghijklmnopqrstuvwxy"
_TOPK_LETTER = "z"  # a TopK target's k axis, never a logits axis


# ------------------------------------------------------------------------ layout

class _Rows:
    """The logits as a dask array whose class axis is one chunk, with the blockwise index
    strings of the logits (`full`) and of their rows (`rows`, the class axis dropped)."""

    def __init__(self, logits: Any, axis: int, name: str = "logits"):
        x = da.asarray(logits)
        if x.ndim == 0:
            raise ValueError(f"{name} must have at least one dimension (the class axis)")
        if x.ndim > len(_LETTERS):
            raise ValueError(f"{name}: at most {len(_LETTERS)} dimensions")
        self.axis = _normalize_axis(axis, x.ndim)
        self.x = x.rechunk({self.axis: -1})
        self.full = _LETTERS[:x.ndim]
        self.rows = self.full.replace(self.full[self.axis], "")
        self.lead_shape = tuple(n for i, n in enumerate(x.shape) if i != self.axis)
        self.lead_chunks = tuple(c for i, c in enumerate(self.x.chunks) if i != self.axis)

    def like_logits(self, value: Any, name: str) -> da.Array:
        """A soft target of the logits' shape, chunked like them."""
        a = _known_chunks(da.asarray(value), name, self.x)
        if a.shape != self.x.shape:
            raise ValueError(f"{name}: shape {a.shape} does not match the logits' shape "
                             f"{self.x.shape}")
        return a.rechunk(self.x.chunks)

    def like_rows(self, value: Any, name: str) -> da.Array:
        """Labels of the logits' shape without the class axis, chunked like the rows."""
        a = _known_chunks(da.asarray(value), name, self.x)
        if a.shape != self.lead_shape:
            raise ValueError(f"{name}: labels of shape {a.shape} do not match the logits' "
                             f"shape {self.x.shape} without the class axis {self.axis} "
                             f"(expected {self.lead_shape})")
        return a.rechunk(self.lead_chunks)

    def mask(self, where: Any) -> Optional[da.Array]:
        """`where` broadcast to the logits' shape and chunks."""
        if where is None:
            return None
        w = _known_chunks(da.asarray(where), "where", self.x)
        try:
            shape = np.broadcast_shapes(w.shape, self.x.shape)
        except ValueError:
            shape = None
        if shape != self.x.shape:
            raise ValueError(f"where: shape {w.shape} does not broadcast to the input's "
                             f"shape {self.x.shape}")
        return da.broadcast_to(w, self.x.shape).rechunk(self.x.chunks)

    def first_rows(self) -> da.Array:
        """Per chunk of rows, the global row number (leading axes flattened in C order) of
        its first row, broadcast over the chunk's rows (no memory): the chunk's offset."""
        lead_shape = self.lead_shape

        def offsets(block_info=None):
            info = block_info[None]
            start = tuple(lo for lo, _ in info["array-location"])
            first = np.ravel_multi_index(start, lead_shape) if all(lead_shape) else 0
            return np.broadcast_to(np.int64(first), info["chunk-shape"])

        return da.map_blocks(offsets, chunks=self.lead_chunks, dtype=np.int64,
                             meta=np.empty((0,) * len(lead_shape), dtype=np.int64))


def _known_chunks(a: da.Array, name: str, logits: da.Array) -> da.Array:
    """`a` (to be matched to `logits`) if both have known chunk sizes; else ValueError
    saying how to learn them (a shape of nan cannot be compared)."""
    for what, array in ((name, a), ("logits", logits)):
        if any(math.isnan(n) for n in array.shape):
            raise ValueError(f"{what}: the chunk sizes of this dask array are unknown "
                             f"(shape {array.shape}), as after boolean indexing, so "
                             f"{name} cannot be matched to the logits; call "
                             f"{what}.compute_chunk_sizes() first")
    return a


_ROW = re.compile(r"\brow (\d+)\b")


def _at_global_row(exc: Exception, first: np.ndarray, lead_shape: tuple) -> Exception:
    """`exc` (raised for one chunk, naming "row r" counted in the chunk) naming the row
    counted over the whole array instead; `first` is the chunk's first_rows() block."""
    message = str(exc)
    match = _ROW.search(message)
    if match is None or first.size == 0 or not lead_shape:
        return exc
    local = np.unravel_index(int(match.group(1)), first.shape)
    start = np.unravel_index(int(first.flat[0]), lead_shape)
    row = int(np.ravel_multi_index(tuple(s + i for s, i in zip(start, local)), lead_shape))
    try:
        return type(exc)(message[:match.start(1)] + str(row) + message[match.end(1):])
    except TypeError:  # an exception type with another constructor: leave it
        return exc


def _stand_in(rows: _Rows, dtype: np.dtype, full: bool = True) -> np.ndarray:
    """A zero-row numpy stand-in for the logits (`full`, class axis last) or their labels:
    a call on it checks every keyword at once and gives the result's dtype."""
    return np.empty((0, rows.x.shape[rows.axis]) if full else (0,), dtype=dtype)


# ------------------------------------------------------------------ reductions

def _per_row(fn: Callable, rows: _Rows, operands: list, out_dtype: np.dtype) -> da.Array:
    """`fn(*blocks)` on every chunk of rows: one value per row, lazily. `operands` are
    (array or None, 'full' | 'rows') pairs; None is passed through as None. An error that
    names a row of the chunk is raised naming that row in the whole array."""
    args: list = []
    for a, kind in operands:
        if a is None:
            args += [None, None]
        else:
            args += [a, {"full": rows.full, "rows": rows.rows,
                         "topk": rows.rows + _TOPK_LETTER}[kind]]
    lead_shape = rows.lead_shape
    if any(math.isnan(n) for c in rows.lead_chunks for n in c):  # offsets unknown
        return da.blockwise(fn, rows.rows, *args, dtype=out_dtype, concatenate=True)

    def located(*blocks):
        *data, first = blocks
        try:
            return fn(*data)
        except (IndexError, ValueError) as exc:
            raise _at_global_row(exc, first, lead_shape) from None

    return da.blockwise(located, rows.rows, *args, rows.first_rows(), rows.rows,
                        dtype=out_dtype, concatenate=True)


def _mean_of(total: np.ndarray, denom: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Σ values / Σ weights, nan when nothing counts (the numpy API's rule)."""
    t, d = float(total), float(denom)
    return np.asarray(t / d if d != 0.0 else math.nan, dtype=dtype)


def _reduce(values: da.Array, row_weight: Optional[da.Array], reduction: str,
            dtype: np.dtype) -> da.Array:
    """Exact global 'sum' / 'mean' of per-row values from per-chunk float64 partials."""
    if reduction == "none":
        return values
    total = values.sum(dtype=np.float64)
    if reduction == "sum":
        return total.astype(dtype)
    if row_weight is None:  # the number of rows (elements for BCE), even if unknown yet
        denom = da.ones_like(values, dtype=np.float64).sum()
    else:
        denom = row_weight.sum(dtype=np.float64)
    return da.blockwise(_mean_of, "", total, "", denom, "", dtype, None, dtype=dtype)


def _label_row_weights(labels: np.ndarray, weight: Optional[np.ndarray],
                       ignore_index: Optional[int], n_classes: int) -> np.ndarray:
    """Each row's weight in the mean: w_y (1 without weights), 0 for an ignored row. A label
    out of range gets 0 here; the loss of its chunk raises the IndexError."""
    y = np.asarray(labels).astype(np.int64, copy=False)
    keep = (y >= 0) & (y < n_classes)
    if ignore_index is not None:
        keep &= y != ignore_index
    if weight is None:
        return keep.astype(np.float64)
    w = np.asarray(weight, dtype=np.float64)
    return np.where(keep, w[np.where(keep, y, 0)], 0.0)


# ------------------------------------------------------------- the loss functions

def _soft_or_label_loss(name: str, logits: Any, target: Any, keywords: dict,
                        reduction: str, label_mean: bool) -> da.Array:
    """A loss of logits against a target (labels or soft), chunk by chunk; `label_mean`:
    the mean uses the label row weights (cross_entropy) rather than the row count."""
    fn = getattr(divcore, name)
    rows = _Rows(logits, keywords.pop("axis"))
    where = rows.mask(keywords.pop("where"))
    sample_weight = keywords.pop("sample_weight", None)
    s = None
    if sample_weight is not None:  # per row: broadcast to the rows, chunked like them
        s = da.asarray(sample_weight)
        try:
            s = da.broadcast_to(s, rows.lead_shape)
        except ValueError:
            raise ValueError(f"sample_weight: shape {s.shape} does not broadcast to the "
                             f"logits' shape without the class axis, {rows.lead_shape} "
                             "(one weight per row)") from None
        s = s.rechunk(rows.lead_chunks)
    if "weight" in keywords and keywords["weight"] is not None:
        keywords["weight"] = np.asarray(keywords["weight"])  # per class: small
    axis = rows.axis
    w_stand_in = None if where is None else _stand_in(rows, where.dtype)
    if _rules.is_topk(target):
        return _topk_loss(fn, rows, target, where, s, keywords, reduction, w_stand_in)
    t = da.asarray(target)
    kind = _target_kind(np.empty(0, dtype=t.dtype), keywords.get("target_type", "auto"))
    is_labels = kind == "labels"
    t = rows.like_rows(t, "target") if is_labels else rows.like_logits(t, "target")
    # Check every keyword now (a zero-row call), and learn the result's dtype.
    probe = fn(_stand_in(rows, rows.x.dtype), _stand_in(rows, t.dtype, not is_labels),
               where=w_stand_in, reduction=reduction, **keywords)
    dtype = np.asarray(probe).dtype

    def chunk_values(x, t, w, sb):
        return np.asarray(fn(x, t, axis=axis, where=w, reduction="none", sample_weight=sb,
                             **keywords))

    values = _per_row(chunk_values, rows, [(rows.x, "full"), (t, "full" if not is_labels
                                                               else "rows"),
                                           (where, "full"), (s, "rows")], dtype)
    row_weight = None
    if label_mean and is_labels and reduction == "mean":
        weight, ignore_index = keywords.get("weight"), keywords.get("ignore_index")
        n_classes = rows.x.shape[axis]
        row_weight = da.map_blocks(_label_row_weights, t, weight, ignore_index, n_classes,
                                   dtype=np.float64)
    return _reduce(values, _times(s, row_weight, reduction), reduction, dtype)


def _times(s: Optional[da.Array], row_weight: Optional[da.Array],
           reduction: str) -> Optional[da.Array]:
    """The rows' weights in the mean with sample weights s: s·r (r: w_y, or 1)."""
    if s is None or reduction != "mean":
        return row_weight
    s = s.astype(np.float64)
    return s if row_weight is None else s * row_weight


def _topk_loss(fn: Callable, rows: _Rows, target: Any, where: Optional[da.Array],
               s: Optional[da.Array], keywords: dict, reduction: str,
               w_stand_in: Optional[np.ndarray]) -> da.Array:
    """A loss against a divcore.TopK whose indices and values are (dask) arrays of the
    rows' shape plus k: chunked like the rows, k in one chunk."""
    idx, vals = da.asarray(target.indices), da.asarray(target.values)
    k = idx.shape[-1] if idx.ndim else 0
    for name, a in (("indices", idx), ("values", vals)):
        if a.shape != rows.lead_shape + (k,):
            raise ValueError(f"target: TopK {name} of shape {a.shape}; expected the logits' "
                             f"shape without the class axis plus k, {rows.lead_shape + (k,)}")
    idx = idx.rechunk(rows.lead_chunks + (-1,))
    vals = vals.rechunk(rows.lead_chunks + (-1,))
    kind, axis = target.kind, rows.axis
    probe = fn(_stand_in(rows, rows.x.dtype),
               type(target)(np.zeros((0, k), dtype=idx.dtype), np.zeros((0, k), vals.dtype),
                            kind=kind), where=w_stand_in, reduction=reduction, **keywords)
    dtype = np.asarray(probe).dtype

    def chunk_values(x, ib, vb, w, sb):
        return np.asarray(fn(x, type(target)(ib, vb, kind=kind), axis=axis, where=w,
                             reduction="none", sample_weight=sb, **keywords))

    values = _per_row(chunk_values, rows, [(rows.x, "full"), (idx, "topk"), (vals, "topk"),
                                           (where, "full"), (s, "rows")], dtype)
    return _reduce(values, _times(s, None, reduction), reduction, dtype)


def cross_entropy(logits: Any, target: Any, *, axis: int = -1,
                  target_type: TargetType = "auto", weight: Any = None,
                  ignore_index: Optional[int] = -100, label_smoothing: float = 0.0,
                  temperature: float = 1.0, where: Any = None,
                  reduction: Reduction = "mean", base: Optional[float] = None,
                  validate: bool = True, tail: str = "bucket", sample_weight: Any = None,
                  z_loss: float = 0.0, softcap: Optional[float] = None) -> da.Array:
    """`divcore.cross_entropy` of dask arrays, chunk by chunk; same keywords.

    'mean' is Σ w_y·l / Σ w_y over the non-ignored rows of all chunks (labels; the number
    of rows for soft targets), nan when no row counts.

    Parameters
    ----------
    logits : dask.array.Array or array_like
        Any chunks along the rows; the class axis is rechunked to one chunk.
    target : dask.array.Array or array_like
        As for `divcore.cross_entropy`, rechunked like the logits' rows.
    **keywords
        Those of `divcore.cross_entropy`, with the same meaning.

    Returns
    -------
    dask.array.Array
        Lazy: 0-d for 'sum' and 'mean', one value per row (chunked like the rows) for
        'none'; the numpy function's dtype. Call `.compute()`.

    Raises
    ------
    ValueError, TypeError
        At the call, for bad keywords or shapes; data errors (IndexError for a label out
        of range, ValueError for a bad probability row) at `.compute()`.

    Examples
    --------
    >>> import numpy as np, dask.array as da, divcore.dask as dcd
    >>> x = da.zeros((4, 3), chunks=(2, 3))
    >>> y = da.from_array(np.array([0, 1, -100, 2]), chunks=2)
    >>> print(f"{dcd.cross_entropy(x, y).compute():.6f}")  # log 3, three rows counted
    1.098612
    """
    kw = dict(axis=axis, target_type=target_type, weight=weight, ignore_index=ignore_index,
              label_smoothing=label_smoothing, temperature=temperature, where=where,
              validate=validate, base=base, tail=tail, sample_weight=sample_weight,
              z_loss=z_loss, softcap=softcap)
    return _soft_or_label_loss("cross_entropy", logits, target, kw, reduction, True)


def kl_divergence(logits: Any, target: Any, *, axis: int = -1,
                  target_type: TargetType = "auto", reverse: bool = False,
                  temperature: float = 1.0, where: Any = None,
                  reduction: Reduction = "mean", base: Optional[float] = None,
                  validate: bool = True, tail: str = "bucket", sample_weight: Any = None,
                  softcap: Optional[float] = None) -> da.Array:
    """`divcore.kl_divergence` of dask arrays, chunk by chunk; 'mean' is over all rows.

    Parameters
    ----------
    logits : dask.array.Array or array_like
        Any chunks along the rows; the class axis is rechunked to one chunk.
    target : dask.array.Array or array_like
        As for `divcore.kl_divergence`, rechunked like the logits' rows.
    **keywords
        Those of `divcore.kl_divergence`, with the same meaning.

    Returns
    -------
    dask.array.Array
        Lazy: 0-d for 'sum' and 'mean', one value per row (chunked like the rows) for
        'none'; the numpy function's dtype. Call `.compute()`.

    Raises
    ------
    ValueError, TypeError
        At the call, for bad keywords or shapes; data errors (IndexError for a label out
        of range, ValueError for a bad probability row) at `.compute()`.

    Examples
    --------
    >>> import numpy as np, dask.array as da, divcore.dask as dcd
    >>> x = da.from_array(np.log([[0.5, 0.5], [0.9, 0.1]]), chunks=1)
    >>> p = da.from_array(np.array([[0.5, 0.5], [0.5, 0.5]]), chunks=1)
    >>> print(np.round(dcd.kl_divergence(x, p, reduction="none").compute(), 6))
    [0.       0.510826]
    """
    kw = dict(axis=axis, target_type=target_type, reverse=reverse, temperature=temperature,
              where=where, validate=validate, base=base, tail=tail,
              sample_weight=sample_weight, softcap=softcap)
    return _soft_or_label_loss("kl_divergence", logits, target, kw, reduction, False)


def js_divergence(logits: Any, target: Any, *, axis: int = -1,
                  target_type: TargetType = "auto", beta: float = 0.5,
                  temperature: float = 1.0, where: Any = None,
                  reduction: Reduction = "mean", base: Optional[float] = None,
                  validate: bool = True, tail: str = "bucket", sample_weight: Any = None,
                  softcap: Optional[float] = None) -> da.Array:
    """`divcore.js_divergence` of dask arrays, chunk by chunk; 'mean' is over all rows.

    Parameters
    ----------
    logits : dask.array.Array or array_like
        Any chunks along the rows; the class axis is rechunked to one chunk.
    target : dask.array.Array or array_like
        As for `divcore.js_divergence`, rechunked like the logits' rows.
    **keywords
        Those of `divcore.js_divergence`, with the same meaning.

    Returns
    -------
    dask.array.Array
        Lazy: 0-d for 'sum' and 'mean', one value per row (chunked like the rows) for
        'none'; the numpy function's dtype. Call `.compute()`.

    Raises
    ------
    ValueError, TypeError
        At the call, for bad keywords or shapes; data errors (IndexError for a label out
        of range, ValueError for a bad probability row) at `.compute()`.

    Examples
    --------
    >>> import numpy as np, dask.array as da, divcore.dask as dcd
    >>> x = da.from_array(np.array([[0.0, -np.inf], [0.0, 0.0]]), chunks=1)
    >>> p = da.from_array(np.array([[0.0, 1.0], [0.5, 0.5]]), chunks=1)
    >>> print(np.round(dcd.js_divergence(x, p, reduction="none", base=2).compute(), 6))
    [1. 0.]
    """
    kw = dict(axis=axis, target_type=target_type, beta=beta, temperature=temperature,
              where=where, validate=validate, base=base, tail=tail,
              sample_weight=sample_weight, softcap=softcap)
    return _soft_or_label_loss("js_divergence", logits, target, kw, reduction, False)


def entropy(x: Any, *, axis: int = -1, input_type: str = "logits", temperature: float = 1.0,
            where: Any = None, reduction: Reduction = "none",
            base: Optional[float] = None, softcap: Optional[float] = None) -> da.Array:
    """`divcore.entropy` of a dask array, chunk by chunk; 'mean' is over all rows.

    Parameters
    ----------
    x : dask.array.Array or array_like
        Any chunks along the rows; the class axis is rechunked to one chunk.
    **keywords
        Those of `divcore.entropy`, with the same meaning.

    Returns
    -------
    dask.array.Array
        Lazy: 0-d for 'sum' and 'mean', one value per row (chunked like the rows) for
        'none'; the numpy function's dtype. Call `.compute()`.

    Raises
    ------
    ValueError, TypeError
        At the call, for bad keywords or shapes; data errors (IndexError for a label out
        of range, ValueError for a bad probability row) at `.compute()`.

    Examples
    --------
    >>> import dask.array as da, divcore.dask as dcd
    >>> print(dcd.entropy(da.zeros((6, 4), chunks=(3, 4)), base=2).compute())
    [2. 2. 2. 2. 2. 2.]
    """
    rows = _Rows(x, axis, name="x")
    mask = rows.mask(where)
    kw: dict[str, Any] = dict(input_type=input_type, temperature=temperature, base=base,
                              softcap=softcap)
    probe = divcore.entropy(_stand_in(rows, rows.x.dtype), reduction=reduction,
                            where=None if mask is None else _stand_in(rows, mask.dtype),
                            **kw)
    dtype = np.asarray(probe).dtype
    axis_ = rows.axis

    def chunk_values(xb, wb):
        return np.asarray(divcore.entropy(xb, axis=axis_, where=wb, reduction="none", **kw))

    values = _per_row(chunk_values, rows, [(rows.x, "full"), (mask, "full")], dtype)
    return _reduce(values, None, reduction, dtype)


def binary_cross_entropy(logits: Any, target: Any, *, weight: Any = None,
                         pos_weight: Any = None, reduction: Reduction = "mean",
                         base: Optional[float] = None, sample_weight: Any = None) -> da.Array:
    """`divcore.binary_cross_entropy` of dask arrays, elementwise, in any chunks (the
    target, `weight` and `pos_weight` are broadcast and rechunked like the logits);
    'mean' is over all elements.

    Parameters
    ----------
    logits : dask.array.Array or array_like
        Raw scores, in any chunks (the loss is elementwise).
    target : dask.array.Array or array_like
        As for `divcore.binary_cross_entropy`, rechunked like the logits.
    **keywords
        Those of `divcore.binary_cross_entropy`, with the same meaning.

    Returns
    -------
    dask.array.Array
        Lazy: 0-d for 'sum' and 'mean', the elementwise losses (chunked like the logits)
        for 'none'; the numpy function's dtype. Call `.compute()`.

    Raises
    ------
    ValueError, TypeError
        At the call, for bad keywords or shapes; data errors (IndexError for a label out
        of range, ValueError for a bad probability row) at `.compute()`.

    Examples
    --------
    >>> import numpy as np, dask.array as da, divcore.dask as dcd
    >>> x = da.zeros((4, 2), chunks=(2, 1))
    >>> y = da.from_array(np.array([[1.0, 0.0]] * 4), chunks=(1, 2))
    >>> print(f"{dcd.binary_cross_entropy(x, y).compute():.6f}")  # log 2
    0.693147
    """
    x = da.asarray(logits)
    y = _known_chunks(da.asarray(target), "target", x)
    if y.shape != x.shape:
        raise ValueError(f"target: shape {y.shape} does not match the logits' shape "
                         f"{x.shape}")
    operands = {"weight": weight, "pos_weight": pos_weight, "sample_weight": sample_weight}
    for name, value in operands.items():
        if value is not None:
            a = _known_chunks(da.asarray(value), name, x)
            try:
                ok = np.broadcast_shapes(a.shape, x.shape) == x.shape
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"{name}: shape {a.shape} does not broadcast to the "
                                 f"logits' shape {x.shape}")
            operands[name] = da.broadcast_to(a, x.shape).rechunk(x.chunks)
    kw: dict[str, Any] = dict(base=base)
    stand_in = {k: None if v is None else np.empty((0,), v.dtype)
                for k, v in operands.items()}  # zero elements: checks the keywords now
    probe = divcore.binary_cross_entropy(
        np.empty((0,), x.dtype), np.empty((0,), y.dtype), weight=stand_in["weight"],
        pos_weight=stand_in["pos_weight"], reduction=reduction,
        sample_weight=stand_in["sample_weight"], **kw)
    dtype = np.asarray(probe).dtype

    def chunk_values(xb, yb, wb, pwb, sb):
        out = divcore.binary_cross_entropy(xb, yb, weight=wb, pos_weight=pwb,
                                           reduction="none", sample_weight=sb, **kw)
        return np.asarray(out)

    index = _LETTERS[:x.ndim]
    args: list = [x, index, y.rechunk(x.chunks), index]
    for v in operands.values():
        args += [None, None] if v is None else [v, index]
    values = da.blockwise(chunk_values, index, *args, dtype=dtype)
    s = operands["sample_weight"]
    return _reduce(values, None if s is None else s.astype(np.float64), reduction, dtype)


def row_stats(logits: Any, labels: Any = None, *, axis: int = -1, k: int = 0,
              temperature: float = 1.0, where: Any = None) -> "divcore.RowStats":
    """`divcore.row_stats` of a dask array, chunk by chunk: each chunk of rows is read once
    for all the statistics.

    Parameters
    ----------
    logits : dask.array.Array or array_like
        Any chunks along the rows; the class axis is rechunked to one chunk.
    labels : dask.array.Array or array_like, optional
        Integer labels of the logits' shape without the class axis (rechunked to match).
    **keywords
        axis, k, temperature, where: those of `divcore.row_stats`.

    Returns
    -------
    divcore.RowStats
        Of lazy dask arrays chunked like the rows (topk_* with a last axis of k), with the
        numpy function's dtypes; log_prob None without labels, topk_* None for k = 0. The
        fields share one computation per chunk (compute them together, e.g.
        `dask.compute(*stats)`).

    Raises
    ------
    ValueError, TypeError
        At the call, for bad keywords or shapes (k outside [0, C]); at `.compute()`,
        IndexError for a label out of range, naming its row in the whole array.

    Examples
    --------
    >>> import numpy as np, dask, dask.array as da, divcore.dask as dcd
    >>> x = da.from_array(np.array([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]]), chunks=(1, 3))
    >>> st = dcd.row_stats(x, da.from_array(np.array([0, 1]), chunks=1), k=2)
    >>> lse, am, top = dask.compute(st.logsumexp, st.argmax, st.topk_indices)
    >>> print(np.round(lse, 6), am, top.tolist())
    [2.41703  2.653178] [0 1] [[0, 1], [1, 0]]
    """
    rows = _Rows(logits, axis)
    mask = rows.mask(where)
    y = None if labels is None else rows.like_rows(labels, "labels")
    # Check every keyword now (a zero-row call), and learn the result's dtype.
    probe = divcore.row_stats(_stand_in(rows, rows.x.dtype),
                              None if y is None else _stand_in(rows, y.dtype, False),
                              k=k, temperature=temperature,
                              where=None if mask is None else _stand_in(rows, mask.dtype))
    dtype = np.asarray(probe.logsumexp).dtype
    axis_ = rows.axis
    width = 4 + 2 * k

    def chunk_values(xb, yb, wb):
        st = divcore.row_stats(xb, yb, axis=axis_, k=k, temperature=temperature, where=wb)
        lead = np.shape(st.argmax)
        out = np.empty(lead + (width,), dtype=np.float64)
        out[..., 0] = st.logsumexp
        out[..., 1] = math.nan if st.log_prob is None else st.log_prob
        out[..., 2] = st.entropy
        out[..., 3] = st.argmax  # class indices: exact in float64
        if k:
            out[..., 4:4 + k] = st.topk_indices
            out[..., 4 + k:] = st.topk_log_probs
        return out

    args: list = [rows.x, rows.full]
    args += [None, None] if y is None else [y, rows.rows]
    args += [None, None] if mask is None else [mask, rows.full]
    lead_shape = rows.lead_shape
    out_index = rows.rows + "Z"
    if any(math.isnan(n) for c in rows.lead_chunks for n in c):  # offsets unknown
        packed = da.blockwise(chunk_values, out_index, *args, new_axes={"Z": width},
                              dtype=np.float64, concatenate=True)
    else:
        def located(xb, yb, wb, first):
            try:
                return chunk_values(xb, yb, wb)
            except (IndexError, ValueError) as exc:
                raise _at_global_row(exc, first, lead_shape) from None

        packed = da.blockwise(located, out_index, *args, rows.first_rows(), rows.rows,
                              new_axes={"Z": width}, dtype=np.float64, concatenate=True)
    topk = (None, None)
    if k:
        topk = (packed[..., 4:4 + k].astype(np.int64), packed[..., 4 + k:].astype(dtype))
    return divcore.RowStats(packed[..., 0].astype(dtype),
                            None if y is None else packed[..., 1].astype(dtype),
                            packed[..., 2].astype(dtype), packed[..., 3].astype(np.int64),
                            *topk)
