"""The reference backend: the row functions of docs/design.md in plain Python.

Every row is turned into a list of Python floats (`.tolist()`) and computed with
`math.fsum`, `math.log1p`, `math.exp` and `math.log`, written as the formulas read. This is
the oracle the compiled core (divcore._core) is tested against, and the fallback when it
cannot be built: clarity and exactness come before speed. numpy is used only to read the
rows and to hand back the float64 per-row results (and to write `out` in place).

Notation for one row after masking and temperature: x (C values), M = max x,
S = Σ exp(x_i - M) = at_max + rest (at_max: how many x_i == M; rest: Σ over x_i < M),
log S = log1p((at_max - 1) + rest), lse = M + log S, and
    -log q_c = lse - x_c = (M - x_c) + log S        (summed with one rounding by fsum).
"No distribution": the row has no finite value (all -inf, all masked, or C == 0).
"""
import math

import numpy as np

from . import _errors

_INF = math.inf
_NAN = math.nan


# ------------------------------------------------------------------- float helpers

def _fsum(values):
    """math.fsum (one rounding), but nan for +inf + -inf and the IEEE sum on overflow."""
    values = list(values)
    try:
        return math.fsum(values)
    except ValueError:  # +inf and -inf both present
        return _NAN
    except OverflowError:  # finite terms whose exact sum is past the float range
        return sum(values)


def _log(p):
    """log p as IEEE gives it: -inf at 0, nan below 0 (math.log would raise)."""
    if p > 0:
        return math.log(p)
    return -_INF if p == 0 else _NAN


def _exp(v):
    """exp v as IEEE gives it: +inf on overflow (math.exp would raise)."""
    try:
        return math.exp(v)
    except OverflowError:
        return _INF


def _clamp_nonnegative(v):
    """0 for v <= 0 (also -0.0); nan stays nan."""
    return 0.0 if v <= 0 else v


def _per_row(values):
    return np.array(values, dtype=np.float64)


# ------------------------------------------------------------------------- rows

def _tempered(values, temperature, single):
    """x / T: float32 rows as the C kernel does, (float)((double)x / T); float64 rows x / T."""
    if temperature == 1.0:
        return values
    if single:
        with np.errstate(over="ignore"):
            return [float(np.float32(v / temperature)) for v in values]
    return [v / temperature for v in values]


def _keep(where, i, n):
    """Which classes of row i are kept (not masked)."""
    if where is None:
        return [True] * n
    return [bool(k) for k in where[i].tolist()]


def _row(x, where, i, temperature):
    """Row i of x as floats: x / T, with masked classes set to -inf."""
    values = _tempered(x[i].tolist(), temperature, x.dtype == np.float32)
    if where is None:
        return values
    return [v if k else -_INF for v, k in zip(values, where[i].tolist())]


def _row_lse_parts(row):
    """(M, S, log S) of a row: M = max, S = at_max + rest, log S = log1p((at_max-1) + rest).

    M is nan when the row holds a NaN or +inf, -inf when it has no finite value; S and
    log S are nan in both cases."""
    if any(math.isnan(v) for v in row) or _INF in row:
        return _NAN, _NAN, _NAN
    m = max(row, default=-_INF)
    if m == -_INF:
        return m, _NAN, _NAN
    at_max = row.count(m)
    rest = [math.exp(v - m) for v in row if v < m]
    return m, _fsum([at_max] + rest), math.log1p(_fsum([at_max - 1] + rest))


def _has_distribution(parts):
    return math.isfinite(parts[0])


def _neg_log_q_parts(x_c, parts):
    """The addends of -log q_c = lse - x_c = (M - x_c) + log S."""
    m, _, log_s = parts
    return (m, -x_c, log_s)


def _neg_log_q(x_c, parts):
    """-log q_c = (M - x_c) + log S: no cancellation, exact for tiny losses; +inf at -inf."""
    return _fsum(_neg_log_q_parts(x_c, parts))


def _q(x_c, parts):
    """q_c = exp(x_c - M) / S."""
    m, s, _ = parts
    return math.exp(x_c - m) / s


# ------------------------------------------------------------ target distributions

def _logits_target(t_row):
    """p = softmax(t) of a (masked, tempered) target logit row, as (p, log_p_parts) with
    log p_c = t_c - M_t - log S_t; None when the target has no distribution (or NaN/+inf)."""
    parts = _row_lse_parts(t_row)
    if not _has_distribution(parts):
        return None
    m, _, log_s = parts
    p = [_q(t_c, parts) for t_c in t_row]
    log_p = [(t_c, -m, -log_s) for t_c in t_row]
    return p, log_p


def _smoothed(p, keep, eps):
    """Label smoothing: p'_c = (1 - ε)·p_c + (ε / C_eff)·[c kept], C_eff = kept classes."""
    n_kept = sum(keep)
    share = eps / n_kept if n_kept else 0.0
    return [(1.0 - eps) * p_c + (share if k else 0.0) for p_c, k in zip(p, keep)]


def _target_sum(values, is_log):
    """(bad, Σ p) of a raw probability row (is_log: a log-probability row, p = exp):
    bad when an entry is NaN or negative (a NaN log p)."""
    if is_log:
        return any(math.isnan(v) for v in values), _fsum(_exp(v) for v in values)
    return any(not v >= 0 for v in values), _fsum(values)


def _check_target_row(values, is_log, tol, argument, row, can_skip):
    """Raise ValueError (via _errors.bad_target_row) if the row is not a distribution:
    a NaN or negative entry first, else |Σ p - 1| > tol."""
    bad, total = _target_sum(values, is_log)
    if bad:
        raise _errors.bad_target_row(argument, row, _errors.BAD_ENTRY, can_skip=can_skip)
    if not abs(total - 1.0) <= tol:
        raise _errors.bad_target_row(argument, row, _errors.bad_sum(total, tol),
                                     can_skip=can_skip)


# ------------------------------------------------------------------- loss formulas

def _soft_terms(x_row, parts, p, log_p, weight):
    """(ce, h, kl) of a target p (log p_c given as addends) against q = softmax(x):

        ce = Σ a_c (-log q_c),   h = -Σ a_c log p_c,   kl = Σ a_c (log p_c - log q_c)

    with a_c = w_c p_c (p_c without weights). Terms with a_c == 0 are exactly 0 (0·log 0,
    also on a -inf logit); a_c > 0 on a -inf logit gives +inf. Each log-ratio is summed
    from its addends with one rounding, so a target equal to the model gives kl == 0
    exactly. kl is clamped at 0."""
    ce_terms, h_terms, kl_terms = [], [], []
    for c, x_c in enumerate(x_row):
        a = p[c] if weight is None else weight[c] * p[c]
        if a == 0:
            continue
        neg_log_q = _neg_log_q_parts(x_c, parts)
        ce_terms.append(a * _fsum(neg_log_q))
        h_terms.append(a * -_fsum(log_p[c]))
        kl_terms.append(a * _fsum(log_p[c] + neg_log_q))
    return _fsum(ce_terms), _fsum(h_terms), _clamp_nonnegative(_fsum(kl_terms))


def _reverse_kl(x_row, parts, log_p):
    """KL(q ‖ p) = Σ q_c (log q_c - log p_c), q = softmax(x). Terms with q_c == 0 are 0;
    q_c > 0 where p_c == 0 gives +inf. Clamped at 0."""
    m, _, log_s = parts
    terms = []
    for c, x_c in enumerate(x_row):
        q = _q(x_c, parts)
        if q == 0:
            continue
        terms.append(q * _fsum((x_c, -m, -log_s) + tuple(-v for v in log_p[c])))
    return _clamp_nonnegative(_fsum(terms))


def _entropy_of_logits(row):
    """H(softmax(x)) = Σ q_i (lse - x_i) (terms with q_i == 0 are 0); nan without a
    distribution."""
    parts = _row_lse_parts(row)
    if not _has_distribution(parts):
        return _NAN
    terms = []
    for x_c in row:
        q = _q(x_c, parts)
        if q != 0:
            terms.append(q * _neg_log_q(x_c, parts))
    return _fsum(terms)


# -------------------------------------------------------------------- row functions

def lse_rows(x, where, temperature):
    """Per-row lse = M + log1p((at_max - 1) + Σ_{x_i<M} exp(x_i - M)) of x / T (masked
    classes left out). NaN or +inf in the row -> nan; no finite value -> -inf."""
    out = []
    for i in range(x.shape[0]):
        m, _, log_s = _row_lse_parts(_row(x, where, i, temperature))
        out.append(m + log_s if math.isfinite(m) else m)
    return _per_row(out)


def log_softmax_rows(x, where, temperature, out, exponentiate):
    """Write log q_c = -((M - x_c) + log S) of x / T into out (or q_c = exp(x_c - M) / S
    with `exponentiate`). Masked classes give -inf (0 for softmax); a row with a NaN, a
    +inf or no distribution is all nan."""
    n = x.shape[1]
    for i in range(x.shape[0]):
        row = _row(x, where, i, temperature)
        parts = _row_lse_parts(row)
        if not _has_distribution(parts):
            values = [_NAN] * n
        elif exponentiate:
            values = [_q(x_c, parts) for x_c in row]
        else:
            values = [-_neg_log_q(x_c, parts) for x_c in row]
        out[i, :] = values


def _label_row(row, y, keep, w, label_smoothing):
    """(ce, h, kl) of one row against label y (see ce_labels_rows)."""
    parts = _row_lse_parts(row)
    w_y = w[y] if w is not None else 1.0
    if label_smoothing == 0.0:
        ce = w_y * _neg_log_q(row[y], parts) if _has_distribution(parts) else _NAN
        return ce, 0.0, ce
    if not _has_distribution(parts):
        return _NAN, _NAN, _NAN
    one_hot = [1.0 if c == y else 0.0 for c in range(len(row))]
    p = _smoothed(one_hot, keep, label_smoothing)
    return _soft_terms(row, parts, p, [(_log(p_c),) for p_c in p], w)


def ce_labels_rows(x, labels, where, temperature, weight, ignore_index, label_smoothing,
                   want_entropy):
    """Per-row cross-entropy against integer labels y, with class weights w (1 without):

        no smoothing:  ce = w_y (lse - x_y) = w_y ((M - x_y) + log S)     (0·inf = nan)
                       h = 0, kl = ce
        smoothing ε:   p'_c = (1 - ε)[c == y] + (ε / C_eff)[c kept]
                       ce = Σ w_c p'_c (lse - x_c),  h = -Σ w_c p'_c log p'_c,
                       kl = Σ w_c p'_c (log p'_c - log q_c) clamped at 0

    Rows whose label is ignore_index (None: none is) give ce = h = kl = 0 and row weight 0
    without reading their logits; other labels outside [0, C) raise IndexError. A row with
    a NaN, a +inf or no distribution gives nan. Returns (ce, h or None, kl or None,
    row_weight) with row_weight = w_y (1.0 without weights)."""
    n = x.shape[1]
    w = weight.tolist() if weight is not None else None
    rows, row_weight = [], []
    for i, y in enumerate(labels.tolist()):
        if ignore_index is not None and y == ignore_index:
            rows.append((0.0, 0.0, 0.0))
            row_weight.append(0.0)
            continue
        if not 0 <= y < n:
            raise _errors.label_out_of_range(i, y, n)
        row_weight.append(w[y] if w is not None else 1.0)
        rows.append(_label_row(_row(x, where, i, temperature), y, _keep(where, i, n), w,
                               label_smoothing))
    ce, h, kl = (_per_row([r[k] for r in rows]) for k in range(3))
    if not want_entropy:
        h = kl = None
    return ce, h, kl, _per_row(row_weight)


def _soft_target(target, target_type, where, i, temperature, validate, tol):
    """Row i of the target as (p, log p addends), validated first when asked (probs and
    log_probs); None for a logits target without a distribution."""
    if target_type == "logits":
        return _logits_target(_row(target, where, i, temperature))
    raw = target[i].tolist()
    is_log = target_type == "log_probs"
    if validate:
        _check_target_row(raw, is_log, tol, "target", i, True)
    if is_log:
        return [_exp(v) for v in raw], [(v,) for v in raw]
    return raw, [(_log(v),) for v in raw]


def soft_rows(x, target, target_type, where, temperature, weight, label_smoothing, reverse,
              validate, tol, want):
    """Per-row cross-entropy, target entropy and KL for a soft target p, q = softmax(x / T):

        "probs": p = target;  "log_probs": p = exp(target), log p = target;
        "logits": p = softmax(target / T), masked like x, log p_c = t_c - M_t - log S_t
        smoothing ε: p'_c = (1 - ε) p_c + (ε / C_eff)[c kept]
        ce = Σ w_c p_c (lse - x_c),  h = -Σ w_c p_c log p_c,
        kl = Σ w_c p_c (log p_c - log q_c) clamped at 0 (terms with w_c p_c == 0 are 0)
        reverse: kl = Σ q_c (log q_c - log p_c) clamped at 0 (no weights), ce = h = None

    With `validate` (probs and log_probs), the first row (raw target before smoothing,
    masked classes included) with a NaN or negative p, or |Σ p - 1| > tol, raises
    ValueError. A row of x (or of a logits target) with a NaN, a +inf or no distribution
    gives nan. Returns (ce, h, kl), None for a name not in `want`."""
    n = x.shape[1]
    w = weight.tolist() if weight is not None else None
    ce, h, kl = [], [], []
    for i in range(x.shape[0]):
        dist = _soft_target(target, target_type, where, i, temperature, validate, tol)
        if dist is not None and label_smoothing != 0.0:
            p = _smoothed(dist[0], _keep(where, i, n), label_smoothing)
            dist = p, [(_log(p_c),) for p_c in p]
        row = _row(x, where, i, temperature)
        parts = _row_lse_parts(row)
        if dist is None or not _has_distribution(parts):
            terms = (_NAN, _NAN, _NAN)
        elif reverse:
            terms = (_NAN, _NAN, _reverse_kl(row, parts, dist[1]))
        else:
            terms = _soft_terms(row, parts, dist[0], dist[1], w)
        for column, value in zip((ce, h, kl), terms):
            column.append(value)
    wanted = set(want) if not reverse else set(want) & {"kl"}
    return tuple(_per_row(values) if name in wanted else None
                 for name, values in (("ce", ce), ("h", h), ("kl", kl)))


def _entropy_of_target(kept, is_log):
    """-Σ p log p over the kept entries (p = exp(l), log p = l for log-probabilities);
    terms with p == 0 are 0."""
    pairs = [(_exp(l), l) for l in kept] if is_log else [(p, _log(p)) for p in kept]
    return _fsum(-p * log_p for p, log_p in pairs if p != 0)


def entropy_rows(x, input_type, where, temperature, tol):
    """Per-row entropy, masked entries left out:

        "logits":    H(softmax(x / T)) = Σ q_i (lse - x_i)   (nan without a distribution)
        "probs":     -Σ p_i log p_i                          (0·log 0 = 0)
        "log_probs": -Σ exp(l_i)·l_i

    probs and log_probs rows are always validated on their kept entries (ValueError for the
    first row with a NaN or negative p, or |Σ p - 1| > tol)."""
    n = x.shape[1]
    is_log = input_type == "log_probs"
    out = []
    for i in range(x.shape[0]):
        if input_type == "logits":
            out.append(_entropy_of_logits(_row(x, where, i, temperature)))
            continue
        kept = [v for v, k in zip(x[i].tolist(), _keep(where, i, n)) if k]
        _check_target_row(kept, is_log, tol, "x", i, False)
        out.append(_entropy_of_target(kept, is_log))
    return _per_row(out)
