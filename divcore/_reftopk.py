"""The reference backend's TopK rows (SPEC §7): the formulas of src/divcore/topk.h in
plain Python floats (math.fsum, math.log1p), row by row, as divcore._refkernels does for
the dense targets.

Per row, with the student's row x (masked, tempered), M = max x, log S:
    log q_j = -((M - x_j) + log S), summed with one rounding (j in K)
    log Q = log Σ_K q_j,  log q_r = log1mexp(log Q);  log P, log p_r alike for the teacher
and the cells (K and the rest) of each tail: bucket (p, q), drop (p / P, q with its rest),
renormalize (p / P, q / Q, no rest); then CE, H, KL, KL(q ‖ p) and JS_β over the cells.
"""
import math

import numpy as np

from . import _refkernels as _k

_INF = math.inf
_NAN = math.nan
_LN2 = math.log(2.0)


def log1mexp(a):
    """log(1 - e^a) for a <= 0 without cancellation; -inf for a >= 0 (no rest)."""
    if math.isnan(a):
        return a
    if a >= 0.0:
        return -_INF
    return math.log(-math.expm1(a)) if a > -_LN2 else math.log1p(-math.exp(a))


def _log_mass(logs):
    """log Σ exp(l) of a few log-values: M + log1p((at_max - 1) + Σ_{l<M} exp(l - M))."""
    if any(math.isnan(v) for v in logs):
        return _NAN
    m = max(logs, default=-_INF)
    if m == -_INF:
        return m
    rest = [math.exp(v - m) for v in logs if v != m]
    return m + math.log1p(_k._fsum([logs.count(m) - 1] + rest))


def _teacher(values, is_log):
    """(log p_j, Σ p as given, bad entries) of a row of TopK values."""
    if is_log:
        logs = list(values)
        bad = sum(1 for v in values if not v <= 0.0)
        return logs, _k._fsum(_k._exp(v) for v in values), bad
    logs = [_k._log(v) for v in values]
    bad = sum(1 for v in values if not 0.0 <= v <= 1.0)
    return logs, _k._fsum(values), bad


def _cell(p, lp, q, lq, beta, acc):
    """One cell's terms of CE, H, KL, KL(q ‖ p) and JS_β (0·log 0 = 0)."""
    if p != 0.0:
        acc["ce"].append(p * -lq)
        acc["h"].append(p * -lp)
        acc["kl"].append(p * (lp - lq))
    if q != 0.0:
        acc["kl_rev"].append(q * (lq - lp))
    if 0.0 < beta < 1.0 and (p != 0.0 or q != 0.0):
        d = lq - lp
        if p != 0.0:
            acc["js"].append(beta * -p * _k._log1p_c_expm1(1.0 - beta, d))
        if q != 0.0:
            acc["js"].append((1.0 - beta) * -q * _k._log1p_c_expm1(beta, -d))


def _exp(v):
    return 0.0 if v == -_INF else _k._exp(v)


def topk_row(row, idx, values, is_log, tail, beta, single=False):
    """Every loss of one row (a dict), and what the gradient needs."""
    log_p_raw, psum, nbad = _teacher(values, is_log)
    parts = _k._row_lse_parts(row)
    out = {"psum": psum, "nbad": nbad}
    if not _k._has_distribution(parts):
        out.update(ce=_NAN, h=_NAN, kl=_NAN, kl_rev=_NAN, js=_NAN, parts=None)
        return out
    m, _, log_s = parts
    log_q_raw = [-_k._fsum((m, -row[j], log_s)) for j in idx]
    log_p = _log_mass(log_p_raw)
    log_q = _log_mass(log_q_raw)
    p_shift = 0.0 if tail == "bucket" else log_p
    q_shift = log_q if tail == "renormalize" else 0.0
    log_pr = log1mexp(log_p) if tail == "bucket" else -_INF
    log_qr = log1mexp(log_q)
    if log_qr < (-4.852 if single else -6.931):  # a small rest: summed over the classes
        outside = set(range(len(row))) - set(idx)
        rest = [v for c, v in enumerate(row) if c in outside and v != -_INF]
        if rest:
            mr = max(rest)
            log_qr = _k._fsum([mr, -m, math.log(_k._fsum(math.exp(v - mr) for v in rest)),
                               -log_s])
        else:
            log_qr = -_INF
    # a teacher's rest below √eps of the type against an empty rest is rounding
    if log_qr == -_INF and log_pr < (-7.97 if single else -18.02):
        log_pr = -_INF
    acc = {name: [] for name in ("ce", "h", "kl", "kl_rev", "js")}
    mass = []
    for lp0, lq0 in zip(log_p_raw, log_q_raw):
        lp, lq = lp0 - p_shift, lq0 - q_shift
        p = _exp(lp)
        mass.append(p)
        _cell(p, lp, _exp(lq), lq, beta, acc)
    lqr = -_INF if tail == "renormalize" else log_qr
    mass.append(_exp(log_pr))
    _cell(_exp(log_pr), log_pr, _exp(lqr), lqr, beta, acc)
    out.update({name: _k._fsum(terms) for name, terms in acc.items()})
    out["kl"] = _k._clamp_nonnegative(out["kl"])
    out["kl_rev"] = _k._clamp_nonnegative(out["kl_rev"])
    if 0.0 < beta < 1.0:
        top = _k._binary_entropy(beta)
        js = _k._clamp_nonnegative(out["js"])
        out["js"] = top if js > top else js
    else:
        out["js"] = 0.0
    out.update(parts=parts, log_p=log_p, log_q=log_q, log_pr=log_pr, log_qr=log_qr,
               log_p_raw=log_p_raw, log_q_raw=log_q_raw, mass=_k._fsum(mass))
    return out


def topk_grad_row(row, idx, tail, r, scale):
    """scale · T ∂L/∂z of the row's CE (or KL) (see src/divcore/topk.h):
        bucket, drop:  A q_j - p_j on K;  A q_j - p_r exp(log q_j - log q_r) elsewhere
        renormalize:   A q_j / Q - p̂_j on K;  0 elsewhere."""
    n = len(row)
    if r["parts"] is None:
        return [_NAN] * n
    m, _, log_s = r["parts"]
    a = r["mass"]
    log_q_all = [-_k._fsum((m, -x, log_s)) if x != -_INF else -_INF for x in row]
    if tail == "renormalize":
        g = [0.0] * n
    else:
        pr = _exp(r["log_pr"])
        g = [scale * (a * _exp(lq) - (pr * _exp(lq - r["log_qr"]) if pr != 0.0 and lq != -_INF
                                      else 0.0))
             for lq in log_q_all]
    p_shift = 0.0 if tail == "bucket" else r["log_p"]
    q_shift = r["log_q"] if tail == "renormalize" else 0.0
    for j, lp0, lq0 in zip(idx, r["log_p_raw"], r["log_q_raw"]):
        g[j] = scale * (a * _exp(lq0 - q_shift) - _exp(lp0 - p_shift))
    return g


def topk_rows(x, where, temperature, idx, values, kind, tail, beta):
    """Per-row ce, h, kl, kl_rev, js, psum, nbad (float64 arrays)."""
    names = ("ce", "h", "kl", "kl_rev", "js", "psum", "nbad")
    cols = {name: [] for name in names}
    is_log = kind == "log_probs"
    for i in range(x.shape[0]):
        r = topk_row(_k._row(x, where, i, temperature), idx[i].tolist(), values[i].tolist(),
                     is_log, tail, beta, x.dtype == np.float32)
        for name in names:
            cols[name].append(r[name])
    return {name: np.array(v, dtype=np.float64) for name, v in cols.items()}


def topk_grad_rows(x, where, temperature, idx, values, kind, tail, loss, log_base, grad):
    """Per-row "ce" or "kl", psum, nbad; each row's gradient (scaled 1/(T·log_base)) into
    grad."""
    is_log = kind == "log_probs"
    scale = 1.0 / (temperature * log_base)
    vals, psum, nbad = [], [], []
    for i in range(x.shape[0]):
        row = _k._row(x, where, i, temperature)
        ks = idx[i].tolist()
        r = topk_row(row, ks, values[i].tolist(), is_log, tail, -1.0, x.dtype == np.float32)
        vals.append(r[loss])
        psum.append(r["psum"])
        nbad.append(r["nbad"])
        grad[i, :] = topk_grad_row(row, ks, tail, r, scale)
    return (np.array(vals, dtype=np.float64), np.array(psum, dtype=np.float64),
            np.array(nbad, dtype=np.float64))
