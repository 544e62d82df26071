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
from fractions import Fraction

import numpy as np

from . import _errors

_INF = math.inf
_NAN = math.nan


# ------------------------------------------------------------------- float helpers

def _fsum(values):
    """The exact sum of the values rounded once, as IEEE arithmetic with unbounded range
    would give it: nan for a NaN or +inf + -inf, ±inf when an infinity is present or the
    exact sum of the finite values is past the float range.

    math.fsum gives this, except that it raises OverflowError when a partial sum of finite
    values overflows even though the total does not (DBL_MAX + DBL_MAX - DBL_MAX): then the
    finite values are summed exactly as fractions (every float is a dyadic rational) and
    rounded once."""
    values = list(values)
    try:
        return math.fsum(values)
    except ValueError:  # +inf and -inf both present
        return _NAN
    except OverflowError:  # an intermediate partial sum of finite terms overflowed
        return _exact_sum(values)


def _exact_sum(values):
    """Σ values with no intermediate rounding or overflow (see _fsum)."""
    if any(math.isnan(v) for v in values):
        return _NAN
    infinities = {v for v in values if math.isinf(v)}
    if infinities:
        return _NAN if len(infinities) == 2 else infinities.pop()
    total = sum((Fraction(v) for v in values), Fraction(0))
    try:
        return float(total)  # int / int true division: correctly rounded
    except OverflowError:
        return _INF if total > 0 else -_INF


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

def _weighted(p, weight):
    """a_c = w_c p_c (p_c without weights): the target mass the losses and gradients use."""
    if weight is None:
        return list(p)
    return [w_c * p_c for w_c, p_c in zip(weight, p)]


def _soft_terms(x_row, parts, p, log_p, weight):
    """(ce, h, kl) of a target p (log p_c given as addends) against q = softmax(x):

        ce = Σ a_c (-log q_c),   h = -Σ a_c log p_c,   kl = Σ a_c (log p_c - log q_c)

    with a_c = w_c p_c (p_c without weights). Terms with a_c == 0 are exactly 0 (0·log 0,
    also on a -inf logit); a_c > 0 on a -inf logit gives +inf, also when p_c > 0 (log p_c
    > -inf, e.g. a finite target logit) underflows to 0 (docs/design.md, Float32 notes).
    Each log-ratio is summed from its addends with one rounding, so a target equal to the
    model gives kl == 0 exactly. kl is clamped at 0, unless weighted: with class weights
    CE_w - H_w may be negative, and only a true KL is bounded below."""
    ce_terms, h_terms, kl_terms = [], [], []
    for c, (x_c, a) in enumerate(zip(x_row, _weighted(p, weight))):
        if a == 0:
            has_mass = (weight is None or weight[c] != 0) and _fsum(log_p[c]) > -_INF
            if has_mass and x_c == -_INF:
                ce_terms.append(_INF)
                kl_terms.append(_INF)
            continue
        neg_log_q = _neg_log_q_parts(x_c, parts)
        ce_terms.append(a * _fsum(neg_log_q))
        h_terms.append(a * -_fsum(log_p[c]))
        kl_terms.append(a * _fsum(log_p[c] + neg_log_q))
    kl = _fsum(kl_terms)
    return _fsum(ce_terms), _fsum(h_terms), kl if weight is not None else _clamp_nonnegative(kl)


def _log_ratio_q_p(x_c, parts, log_p_c, extra=()):
    """log q_c - log p_c (minus the `extra` values) from its addends, one rounding."""
    m, _, log_s = parts
    return _fsum((x_c, -m, -log_s) + tuple(-v for v in log_p_c) + tuple(-v for v in extra))


def _reverse_kl(x_row, parts, log_p):
    """KL(q ‖ p) = Σ q_c (log q_c - log p_c), q = softmax(x). Terms with q_c == 0 (x_c =
    -inf) are 0; q_c > 0 where p_c == 0 gives +inf, also when q_c underflows to 0 (docs/
    design.md, Float32 notes). Clamped at 0."""
    terms = []
    for c, x_c in enumerate(x_row):
        if x_c == -_INF:
            continue
        q = _q(x_c, parts)
        ratio = _log_ratio_q_p(x_c, parts, log_p[c])
        if q == 0:
            # q_c underflowed: its term is +inf where p_c == 0 too, else below
            # 745·e^-745 in size (|q log q| falls with q), and 0 rather than 0·(-inf)
            terms.append(_INF if ratio == _INF else 0.0)
        else:
            terms.append(q * ratio)
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
    p = _label_target(y, keep, label_smoothing)
    return _soft_terms(row, parts, p, [(_log(p_c),) for p_c in p], w)


def _label_target(y, keep, label_smoothing):
    """The smoothed one-hot p'_c = (1 - ε)[c == y] + (ε / C_eff)[c kept]."""
    one_hot = [1.0 if c == y else 0.0 for c in range(len(keep))]
    return _smoothed(one_hot, keep, label_smoothing)


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


def _soft_row(x, target, target_type, where, i, temperature, w, label_smoothing, reverse,
              validate, tol):
    """Row i against its soft target (see soft_rows): (row, lse parts, (p, log p addends)
    or None, (ce, h, kl)); the target is validated first when asked."""
    dist = _soft_target(target, target_type, where, i, temperature, validate, tol)
    if dist is not None and label_smoothing != 0.0:
        p = _smoothed(dist[0], _keep(where, i, x.shape[1]), label_smoothing)
        dist = p, [(_log(p_c),) for p_c in p]
    row = _row(x, where, i, temperature)
    parts = _row_lse_parts(row)
    if dist is None or not _has_distribution(parts):
        terms = (_NAN, _NAN, _NAN)
    elif reverse:
        terms = (_NAN, _NAN, _reverse_kl(row, parts, dist[1]))
    else:
        terms = _soft_terms(row, parts, dist[0], dist[1], w)
    return row, parts, dist, terms


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
    w = weight.tolist() if weight is not None else None
    ce, h, kl = [], [], []
    for i in range(x.shape[0]):
        _, _, _, terms = _soft_row(x, target, target_type, where, i, temperature, w,
                                   label_smoothing, reverse, validate, tol)
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


# ------------------------------------------------------------ gradients, JS and BCE

def _grad_scale(reduction, denom, temperature, log_base):
    """d(reduced loss)/d(row loss) · dx/dz: 1/(T·log_base), divided by denom (Σ row weight)
    for 'mean' (0 when that is 0); 'sum' and 'none' leave it."""
    s = 1.0 / (temperature * log_base)
    if reduction == "mean":
        return s / denom if denom != 0.0 else 0.0
    return s


def _soft_grad(row, parts, a, scale):
    """scale · (A·q_c - a_c), A = Σ a, q = softmax(row): the gradient of Σ a_c (lse - x_c)
    (and of the KL against the same target) with respect to the row."""
    mass = _fsum(a)
    return [scale * (mass * _q(x_c, parts) - a_c) for x_c, a_c in zip(row, a)]


def _reverse_kl_grad(row, parts, log_p, kl, scale):
    """scale · q_c ((log q_c - log p_c) - KL) for KL(q ‖ p), 0 where q_c == 0 (x_c = -inf);
    all nan when KL is nan. When KL is +inf, (log q_c - log p_c) - KL is taken in IEEE
    arithmetic from the rounded log-ratio (-inf, or nan where the log-ratio is +inf too):
    the exact sum of the addends would turn a log-ratio that overflows into a finite one."""
    if math.isnan(kl):
        return [_NAN] * len(row)
    grad = []
    for c, x_c in enumerate(row):
        q = _q(x_c, parts)
        if q == 0:
            grad.append(0.0)
        elif kl == _INF:
            grad.append(scale * (q * (_log_ratio_q_p(x_c, parts, log_p[c]) - kl)))
        else:
            grad.append(scale * (q * _log_ratio_q_p(x_c, parts, log_p[c], (kl,))))
    return grad


def ce_labels_grad_rows(x, labels, where, temperature, weight, ignore_index, label_smoothing,
                        reduction, log_base, grad):
    """ce_labels_rows' per-row cross-entropy (nats) and row weights, and into grad (N, C)
    the gradient of the reduced loss (in units of log_base) with respect to the logits
    before the temperature:

        scale = 1 / (T·log_base), divided by Σ row_weight for 'mean' (0 if that is 0)
        row i:  scale · (A·q - a),  a_c = w_c p'_c (p' the smoothed one-hot; without
                smoothing a = w_y·one-hot(y)),  A = Σ a,  q = softmax(x / T)

    Ignored rows get 0 (their logits are not read), rows without a distribution nan. Every
    label is range-checked (IndexError, first bad row) before anything is written."""
    n = x.shape[1]
    w = weight.tolist() if weight is not None else None
    ys = labels.tolist()
    row_weight = []
    for i, y in enumerate(ys):
        if ignore_index is not None and y == ignore_index:
            row_weight.append(0.0)
            continue
        if not 0 <= y < n:
            raise _errors.label_out_of_range(i, y, n)
        row_weight.append(w[y] if w is not None else 1.0)
    scale = _grad_scale(reduction, _fsum(row_weight), temperature, log_base)
    ce = []
    for i, y in enumerate(ys):
        if ignore_index is not None and y == ignore_index:
            ce.append(0.0)
            grad[i, :] = [0.0] * n
            continue
        row = _row(x, where, i, temperature)
        keep = _keep(where, i, n)
        ce.append(_label_row(row, y, keep, w, label_smoothing)[0])
        parts = _row_lse_parts(row)
        if not _has_distribution(parts):
            grad[i, :] = [_NAN] * n
            continue
        if label_smoothing != 0.0:
            a = _weighted(_label_target(y, keep, label_smoothing), w)
            grad[i, :] = _soft_grad(row, parts, a, scale)
            continue
        w_y = row_weight[i]
        g = _soft_grad(row, parts, [w_y if c == y else 0.0 for c in range(n)], scale)
        # A·q_y - a_y = w_y (q_y - 1) = w_y expm1(-(lse - x_y)): no cancellation when the
        # loss is tiny (q_y ≈ 1)
        g[y] = scale * (w_y * math.expm1(-_neg_log_q(row[y], parts)))
        grad[i, :] = g
    return _per_row(ce), _per_row(row_weight)


def soft_grad_rows(x, target, target_type, where, temperature, weight, label_smoothing,
                   reverse, validate, tol, loss, reduction, log_base, grad):
    """Per-row "ce" or "kl" (`loss`) against a soft target, as soft_rows gives them (nats,
    validated the same way), and into grad (N, C) the gradient of the reduced loss (in
    units of log_base) with respect to the logits before the temperature:

        scale = 1 / (T·log_base), divided by N for 'mean' (0 for N = 0)
        forward:  scale · (A·q - a),  a = w·p (p smoothed if asked), A = Σ a
                  (the same numbers for CE and KL: they differ by H(p))
        reverse:  scale · q_c ((log q_c - log p_c) - KL), 0 where q_c == 0

    A row without a distribution (or with a NaN loss, reverse) gets nan."""
    n = x.shape[1]
    w = weight.tolist() if weight is not None else None
    scale = _grad_scale(reduction, float(x.shape[0]), temperature, log_base)
    values = []
    for i in range(x.shape[0]):
        row, parts, dist, terms = _soft_row(x, target, target_type, where, i, temperature, w,
                                            label_smoothing, reverse, validate, tol)
        values.append(terms[2] if (loss == "kl" or reverse) else terms[0])
        if dist is None or not _has_distribution(parts):
            grad[i, :] = [_NAN] * n
        elif reverse:
            grad[i, :] = _reverse_kl_grad(row, parts, dist[1], terms[2], scale)
        else:
            grad[i, :] = _soft_grad(row, parts, _weighted(dist[0], w), scale)
    return _per_row(values)


def _log1p_c_expm1(c, d):
    """log(1 + c·(e^d - 1)) for c in (0, 1), d in [-inf, +inf]: log1p(c·expm1(d)), and
    d + log c + log1p((1 - c)·e^-d / c) where e^d overflows."""
    if d > 700.0:
        return d + math.log(c) + math.log1p((1.0 - c) / c * math.exp(-d))
    return math.log1p(c * math.expm1(d))


def _binary_entropy(beta):
    """h(β) = -β log β - (1-β) log(1-β), the largest value JS_β can take."""
    terms = []
    if beta > 0.0:
        terms.append(-beta * math.log(beta))
    if beta < 1.0:
        terms.append(-(1.0 - beta) * math.log1p(-beta))
    return _fsum(terms)


def _js_terms(row, parts, p, log_p, beta):
    """β KL(p ‖ m) + (1-β) KL(q ‖ m), m = βp + (1-β)q, 0 < β < 1, with d = log q - log p:

        log p - log m = -log1p((1-β)·expm1(d)),   log q - log m = -log1p(β·expm1(-d))

    p_c > 0 is decided as log p_c > -inf, q_c > 0 as x_c > -inf; terms without mass are 0.
    A term whose p_c (or q_c) underflowed to 0 is 0, not 0·inf = nan: each term is
    p·log(p/m) with p/m ≤ 1/β, so it is at most p·log(1/β) in size."""
    terms = []
    for c, x_c in enumerate(row):
        lp = _fsum(log_p[c])
        has_p = p[c] != 0 or lp > -_INF
        has_q = x_c > -_INF
        if not (has_p or has_q):
            continue
        d = _log_ratio_q_p(x_c, parts, log_p[c])
        q_c = _q(x_c, parts)
        if has_p and p[c] != 0:
            terms.append(beta * -p[c] * _log1p_c_expm1(1.0 - beta, d))
        if has_q and q_c != 0:
            terms.append((1.0 - beta) * -q_c * _log1p_c_expm1(beta, -d))
    return _fsum(terms)


def js_rows(x, target, target_type, where, temperature, beta, validate, tol):
    """Per-row generalised Jensen-Shannon divergence JS_β of the target p and q =
    softmax(x / T) (see _js_terms), clamped to [0, h(β)]; 0 for β in {0, 1}. Targets:
    probs, log_probs (validated like soft_rows when asked) or logits (masked and tempered
    like x). A row without a distribution (x or a logits target) gives nan."""
    top = _binary_entropy(beta)
    out = []
    for i in range(x.shape[0]):
        dist = _soft_target(target, target_type, where, i, temperature, validate, tol)
        row = _row(x, where, i, temperature)
        parts = _row_lse_parts(row)
        if dist is None or not _has_distribution(parts):
            out.append(_NAN)
        elif beta == 0.0 or beta == 1.0:
            out.append(0.0)
        else:
            js = _clamp_nonnegative(_js_terms(row, parts, dist[0], dist[1], beta))
            out.append(top if js > top else js)
    return _per_row(out)


def _softplus(v):
    """log(1 + e^v) = max(v, 0) + log1p(e^-|v|)."""
    return (v if v > 0 else 0.0) + math.log1p(math.exp(-abs(v)))


def bce_flat(x, y, weight, pos_weight, out):
    """Binary cross-entropy on logits over 1-D operands (stride 0 allowed):

        l_i = w_i · [pw_i·y_i·softplus(-x_i) + (1 - y_i)·softplus(x_i)]

    a term whose coefficient (pw·y, or 1 - y) is exactly 0 is 0 (x = ±inf with the matching
    label gives 0). Writes l_i into out (float64) when given; returns Σ l_i."""
    xs, ys = x.tolist(), y.tolist()
    ws = weight.tolist() if weight is not None else None
    pws = pos_weight.tolist() if pos_weight is not None else None
    losses = []
    for i, (x_i, y_i) in enumerate(zip(xs, ys)):
        a = (pws[i] if pws is not None else 1.0) * y_i
        b = 1.0 - y_i
        l = ((a * _softplus(-x_i) if a != 0 else 0.0)
             + (b * _softplus(x_i) if b != 0 else 0.0))
        losses.append(ws[i] * l if ws is not None else l)
    if out is not None:
        out[:] = losses
    return _fsum(losses)
