"""divcore.TopK: a sparse teacher, per row k class indices and their log-probabilities or
probabilities (SPEC §7), as distillation sets store what a serving engine returns; and
the rules of a loss against one (plan_topk, the TopK part of divcore._rules' Plan).

The formulas are in src/divcore/topk.h (compiled) and divcore/_reftopk.py (reference).
"""
import math
from dataclasses import replace

import numpy as np

from . import _rules

KINDS = ("log_probs", "probs")


class TopK:
    """A sparse target: per row, `k` class indices and their log-probabilities or probabilities.

    Parameters
    ----------
    indices : array_like of int
        The logits' shape without the class axis, plus k: the k classes given per row (no
        duplicates within a row). numpy arrays or CPU torch tensors.
    values : array_like
        Of `indices`' shape: their log-probabilities (kind='log_probs', <= 0) or
        probabilities (kind='probs', in [0, 1]); per row they sum to at most 1.
    kind : {'log_probs', 'probs'}, default 'log_probs'
        What `values` holds.

    Notes
    -----
    Accepted as `target` by cross_entropy, kl_divergence, js_divergence, decompose and the
    *_and_grad functions; `tail` says how the teacher's missing mass counts. With K the
    row's classes, p the teacher's probabilities on K, P = Σ_K p, q = softmax(logits / T)
    and Q = Σ_K q:

    - ``tail="bucket"`` (default): the classes K and one more, "the rest", holding
      p_r = 1 - P and q_r = 1 - Q (computed without cancellation):
      KL = Σ_K p log(p/q) + p_r log(p_r/q_r). A proper divergence, never above the KL of
      the full distributions (coarse-graining).
    - ``tail="drop"``: the teacher renormalised on K (p / P) against q over all classes.
    - ``tail="renormalize"``: both renormalised on K (p / P against q / Q).

    The temperature applies to the student's logits only. The indices are always checked
    to lie in [0, C); with validate=True a row's indices must be distinct, its values be
    probabilities (or log-probabilities) and its mass P at most 1 + sum_tol.

    Examples
    --------
    >>> import numpy as np, divcore
    >>> teacher = np.array([[4.0, 2.0, 0.0, -1.0]])
    >>> student = np.array([[3.0, 2.5, 0.0, 0.0]])
    >>> topk = divcore.TopK.from_logits(teacher, 2)
    >>> topk.indices
    array([[0, 1]])
    >>> kl = divcore.kl_divergence(student, topk)  # bucket: K = {0, 1} and the rest
    >>> full = divcore.kl_divergence(student, teacher, target_type="logits")
    >>> bool(0 <= kl <= full)
    True
    """

    __slots__ = ("indices", "values", "kind")

    def __init__(self, indices, values, *, kind="log_probs"):
        if kind not in KINDS:
            raise ValueError(f"kind must be 'log_probs' or 'probs', got {kind!r}")
        self.indices = indices
        self.values = values
        self.kind = kind

    @property
    def k(self):
        """The number of classes given per row."""
        return np.shape(self.indices)[-1]

    def __repr__(self):
        return f"TopK(indices of shape {tuple(np.shape(self.indices))}, kind={self.kind!r})"

    @classmethod
    def from_logits(cls, logits, k, *, axis=-1, temperature=1.0, where=None):
        """The k most probable classes of a teacher's logits, with their log-probabilities.

        Parameters
        ----------
        logits : array_like
            The teacher's logits (numpy array, CPU torch tensor, any array-like).
        k : int
            Classes kept per row, 1 <= k <= C.
        axis : int, default -1
            The class axis.
        temperature : float, default 1.0
            The teacher's temperature: log_softmax(logits / T).
        where : array_like of bool, optional
            Classes left out of the teacher's distribution.

        Returns
        -------
        TopK
            kind='log_probs'; indices (int64) and values (the compute dtype) of shape
            logits' shape without the class axis, plus k, sorted by descending
            log-probability (ties: the lower index first).
        """
        from . import row_stats  # one read of the logits: the row kernel's top-k
        k = _rules.check_integer(k, "k")
        if k < 1:
            raise ValueError(f"k must be at least 1 (the classes kept per row), got {k}")
        stats = row_stats(logits, axis=axis, k=k, temperature=temperature, where=where)
        return cls(np.asarray(stats.topk_indices), np.asarray(stats.topk_log_probs),
                   kind="log_probs")


# ------------------------------------------------------------------------- the plan

TAIL_CODES = {"bucket": 0, "drop": 1, "renormalize": 2}


def plan_topk(op, logits, topk, *, tail="bucket", axis=-1, target_type="auto", weight=None,
              ignore_index=None, label_smoothing=0.0, temperature=1.0, where=None,
              reduction="none", base=None, validate=True, sum_tol=None, reverse=False,
              beta=0.5):
    """The Plan of a loss against a TopK target: the logits as plan_loss makes them ((N, C)
    rows, (B, R, C) blocks of rows, half-precision storage: the kernels get them a piece at
    a time, see in_pieces), topk_indices (N, k) int64, checked in [0, C) (and distinct with
    `validate`), topk_values (N, k) in the compute dtype."""
    reduction = _rules.check_reduction(reduction)
    _rules.check_sum_tol(sum_tol)
    _rules.check_choice(tail, _rules.TAILS, "tail")
    unit = _rules.log_base(base)
    t = _rules.check_temperature(temperature)
    b = _rules.check_beta(beta) if op == "js_divergence" else 0.5
    _refuse(op, topk, tail, target_type, weight, ignore_index, label_smoothing, reverse)
    lg = _rules._Logits(logits, axis, where)
    rows, mask = lg.rows, lg.where
    idx, values, vdtype = _target_arrays(topk, lg)
    tol = _rules.sum_tolerance(sum_tol, lg.dtype, vdtype if vdtype.kind == "f" else lg.dtype)
    if validate:
        _check_distinct(idx)
    return _rules.Plan(op=op, rows=rows, dtype=lg.dtype, shape=lg.shape, axes=(lg.axis,),
                       lead_shape=lg.lead_shape, where=mask, temperature=t,
                       target_kind="topk", validate=bool(validate), tol=tol,
                       reverse=bool(reverse), beta=b, reduction=reduction, log_base=unit,
                       topk_indices=idx, topk_values=values, topk_kind=topk.kind, tail=tail)


# Rows converted per piece (in_pieces): a few MiB of the compute dtype at a time.
PIECE_BYTES = 1 << 22


def _pieces(plan):
    """(first row, rows, mask) pieces of the plan's logits as (n, C) arrays of the compute
    dtype: blocks of rows one block (or part of one) at a time, half storage widened a
    piece at a time."""
    rows, mask, c = plan.rows, plan.where, plan.n_classes
    step = max(1, PIECE_BYTES // max(1, c * plan.dtype.itemsize))
    blocks = rows if rows.ndim == 3 else rows[None]
    masks = None if mask is None else (mask if mask.ndim == 3 else mask[None])
    first = 0
    for b in range(blocks.shape[0]):
        for lo in range(0, blocks.shape[1], step):
            piece = blocks[b, lo:lo + step]
            yield (first, np.ascontiguousarray(piece, dtype=plan.dtype),
                   None if masks is None else masks[b, lo:lo + step])
            first += piece.shape[0]


def in_pieces(plan, run, grad=None):
    """run(plan, grad) for (N, C) rows of the compute dtype (the kernels' form); for blocks of
    rows or half storage, run on pieces of rows converted one at a time (no (N, C) copy of
    the logits), with their slices of the TopK arrays and of grad. The per-row results
    (float64 arrays, or dicts of them) are joined in row order."""
    if plan.rows.ndim == 2 and plan.rows.dtype == plan.dtype:
        return run(plan, grad)
    parts = []
    for first, rows, mask in _pieces(plan):
        n = rows.shape[0]
        sub = replace(plan, rows=rows, where=mask, first_row=plan.first_row + first,
                      topk_indices=plan.topk_indices[first:first + n],
                      topk_values=plan.topk_values[first:first + n])
        parts.append(run(sub, None if grad is None else grad[first:first + n]))
        del rows, mask, sub  # before the next piece is made: one piece alive at a time
    if not parts:
        return run(replace(plan, rows=np.empty((0, plan.n_classes), plan.dtype), where=None),
                   grad)
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


def _log_mass(logs):
    """Per row, log Σ exp(logs) of an (N, k) float64 array (-inf for an empty sum)."""
    if logs.shape[1] == 0:
        return np.full(logs.shape[0], -np.inf)
    m = logs.max(axis=1)
    finite = np.isfinite(m)
    shifted = np.where(finite[:, None], logs - np.where(finite, m, 0.0)[:, None], logs)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(finite, m + np.log(np.exp(shifted).sum(axis=1)), m)


def _log1mexp(a):
    """log(1 - e^a) for a <= 0, elementwise, without cancellation; -inf for a >= 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        near = np.log(-np.expm1(np.minimum(a, 0.0)))
        far = np.log1p(-np.exp(np.minimum(a, 0.0)))
    return np.where(a >= 0.0, -np.inf, np.where(a > -math.log(2.0), near, far))


def reverse_kl_grad(plan, kl, grad):
    """Each row's gradient of KL(q ‖ p) against a TopK target (bucket or renormalize),
    scaled 1/(T·log_base), into grad, which holds log q = log_softmax(logits / T) on entry.

    With the cells of the tail (K, and for the bucket "the rest" r) and f_c = log(q_c/p_c)
    on them, KL = Σ_c q_c f_c, and the softmax's Jacobian gives, for a class j in cell c,

        T ∂KL/∂z_j = q_j (f_c - KL)      (bucket: q_r = Σ_{j ∉ K} q_j, summed, no 1 - Q)
        renormalize: q̂_j (f_j - KL) on K with q̂ = q/Q, p̂ = p/P; 0 elsewhere.

    A class with q_j = 0 (masked, underflowed) gets 0."""
    idx = plan.topk_indices
    scale = 1.0 / (plan.temperature * plan.log_base)
    lq_k = np.take_along_axis(grad, idx, axis=1).astype(np.float64)
    vals = plan.topk_values.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        lp_k = vals if plan.topk_kind == "log_probs" else np.log(vals)
        log_p = _log_mass(lp_k)
        np.exp(grad, out=grad)                       # q
        np.put_along_axis(grad, idx, 0.0, axis=1)    # q outside K
        if plan.tail == "bucket":
            q_r = grad.sum(axis=1, dtype=np.float64)
            f_r = np.where(q_r > 0.0, np.log(q_r) - _log1mexp(log_p) - kl, 0.0)
            grad *= (f_r * scale)[:, None].astype(grad.dtype)
            shift_q = shift_p = 0.0
        else:
            grad[...] = 0.0
            shift_q, shift_p = _log_mass(lq_k)[:, None], log_p[:, None]
        lq_k, lp_k = lq_k - shift_q, lp_k - shift_p
        q_k = np.exp(lq_k)
        g_k = np.where(q_k > 0.0, q_k * (lq_k - lp_k - kl[:, None]), 0.0) * scale
    np.put_along_axis(grad, idx, g_k.astype(grad.dtype), axis=1)


def _refuse(op, topk, tail, target_type, weight, ignore_index, label_smoothing, reverse):
    """The keywords that have no meaning against a TopK target."""
    if topk.kind not in KINDS:
        raise ValueError(f"target: TopK kind must be 'log_probs' or 'probs', got {topk.kind!r}")
    if target_type != "auto":
        raise ValueError(f"target_type={target_type!r} does not apply to a divcore.TopK "
                         "target (it carries its own kind, TopK(..., kind='probs' or "
                         "'log_probs')); leave target_type at 'auto'")
    if weight is not None:
        raise ValueError("weight (class weights) is not supported with a divcore.TopK target")
    if ignore_index is not None and ignore_index != -100:
        raise ValueError("ignore_index applies to 'labels' targets, not to a divcore.TopK "
                         "target (to leave rows out pass sample_weight with 0 there)")
    if label_smoothing != 0.0:
        raise ValueError("label_smoothing applies to 'labels' and 'probs' targets, not to a "
                         "divcore.TopK target")
    if reverse and tail == "drop":
        raise ValueError("reverse=True with tail='drop' is not a divergence (the student's "
                         "mass outside the teacher's k classes meets no teacher mass: always "
                         "+inf); use tail='bucket' or tail='renormalize'")
    if op == "js_divergence" and tail == "drop":
        raise ValueError("js_divergence with tail='drop' compares the renormalised teacher "
                         "with the student's mass on the teacher's k classes, which is not a "
                         "distribution; use tail='bucket' or tail='renormalize'")


def _target_arrays(topk, lg):
    """(indices (N, k) int64, values (N, k) compute dtype, the values' dtype), shapes and
    range checked."""
    idx = _rules.as_array(topk.indices, "target.indices")
    val = _rules.as_array(topk.values, "target.values")
    if idx.dtype.kind not in "iu":
        raise TypeError(f"target.indices: TopK indices must be integers, got dtype {idx.dtype}")
    if val.dtype.kind not in "fiu" and val.dtype.name != "bfloat16":
        _rules.compute_dtype(val.dtype, "target.values")  # raises the TypeError
        raise TypeError(f"target.values: expected real numbers, got dtype {val.dtype}")
    expected = "(" + ", ".join(str(s) for s in lg.lead_shape) + (", " if lg.lead_shape else "") + "k)"
    if idx.ndim != len(lg.lead_shape) + 1 or idx.shape[:-1] != lg.lead_shape:
        raise ValueError(f"target.indices: shape {idx.shape} does not match the logits' shape "
                         f"{lg.shape} without the class axis {lg.axis}, plus k: expected "
                         f"{expected}")
    if val.shape != idx.shape:
        raise ValueError(f"target.values: shape {val.shape} does not match the indices' "
                         f"shape {idx.shape}")
    k = idx.shape[-1]
    n_rows = math.prod(lg.lead_shape)
    flat = idx.reshape(n_rows, k)
    bad = (flat < 0) | (flat >= lg.n_classes)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise IndexError(f"target: TopK index {int(flat[row, col])} at row {int(row)} is out "
                         f"of range for {lg.n_classes} classes (valid indices are "
                         f"0..{lg.n_classes - 1})")
    flat = np.ascontiguousarray(flat, dtype=np.int64)
    values = np.ascontiguousarray(val.reshape(n_rows, k), dtype=lg.dtype)
    return flat, values, val.dtype


def _check_distinct(idx):
    if idx.shape[1] < 2:
        return
    s = np.sort(idx, axis=1)
    dup = (s[:, 1:] == s[:, :-1]).any(axis=1)
    if dup.any():
        row = int(np.argmax(dup))
        value = int(s[row, 1:][s[row, 1:] == s[row, :-1]][0])
        raise ValueError(f"target: TopK row {row} gives class {value} more than once (the k "
                         "indices of a row must be distinct)")


def check_rows(plan, psum, nbad):
    """After the kernels (validate=True): ValueError for the first row whose values are
    not probabilities (log-probabilities) or whose mass Σ_K p exceeds 1 + tol, or (drop,
    renormalize) has no mass at all. psum, nbad: per row, from the kernels' pass."""
    if not plan.validate or psum.shape[0] == 0:
        return
    over = ~(psum <= 1.0 + plan.tol)
    empty = (psum == 0.0) if plan.tail != "bucket" else np.zeros_like(over)
    bad = (nbad > 0) | over | empty
    if not bad.any():
        return
    at = int(np.argmax(bad))
    row = at + plan.first_row
    if nbad[at] > 0:
        what = ("a NaN or positive log-probability" if plan.topk_kind == "log_probs"
                else "a NaN entry or one outside [0, 1]")
        hint = (" (log-probabilities are <= 0; probabilities? pass TopK(..., kind='probs'))"
                if plan.topk_kind == "log_probs" else
                " (log-probabilities? pass TopK(..., kind='log_probs'))")
        raise ValueError(f"target: row {row} of the TopK values has {what}{hint}")
    if over[at]:
        raise ValueError(f"target: row {row} of the TopK target has total mass "
                         f"{float(psum[at])!r} > 1 (beyond sum_tol {plan.tol:.3g}); its k "
                         "probabilities must sum to at most 1 (probabilities rounded in "
                         "storage? pass a larger sum_tol; validate=False skips this check)")
    raise ValueError(f"target: row {row} of the TopK target has no mass (all its "
                     f"probabilities are 0): tail={plan.tail!r} cannot renormalise it")


def row_results(plan, want, res):
    """The names in `want` from the per-row arrays `res` (ce, h, kl, kl_rev, js)."""
    out = {}
    for name in want:
        if name == "kl" and plan.reverse:
            out[name] = res["kl_rev"]
        else:
            out[name] = res[name]
    return out
