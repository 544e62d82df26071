"""The reference of row_stats (SPEC §7), in plain Python as divcore._refkernels: per row of
x / T (masked classes -inf), with M, S, log S as there,

    lse        M + log S                       (-inf with no finite value, nan with a NaN/+inf)
    log_prob   -((M - x_y) + log S)            (the label's log-probability)
    entropy    Σ q_i (lse - x_i)               (terms with q_i == 0 are 0)
    argmax     the first index of the max among the kept classes; a NaN counts as the max
               (numpy's argmax); a row whose kept values are all -inf: its first kept class;
               no kept class: -1
    top-k      the k largest log-probabilities, best first, ties by the lower index; a row
               with fewer than k classes of nonzero probability ends with the kept -inf
               classes, then the masked ones, each in index order (log-probability -inf); a
               row without a distribution gives the indices 0 .. k-1 and nan.
"""
import math

import numpy as np

from . import _refkernels as _k

_INF = math.inf
_NAN = math.nan


def _argmax(row, keep):
    for c, v in enumerate(row):
        if math.isnan(v):
            return c
    best, where = -_INF, -1
    for c, v in enumerate(row):
        if keep[c] and (where < 0 or v > best):
            best, where = v, c
    return where


def _topk(row, keep, parts, k):
    if not _k._has_distribution(parts):
        return list(range(k)), [_NAN] * k
    finite = sorted((c for c, v in enumerate(row) if v > -_INF), key=lambda c: (-row[c], c))
    tail = ([c for c, v in enumerate(row) if v == -_INF and keep[c]]
            + [c for c in range(len(row)) if not keep[c]])
    chosen = (finite + tail)[:k]
    return chosen, [-_k._neg_log_q(row[c], parts) for c in chosen]


def row_stats_rows(x, labels, where, temperature, k):
    """(lse, log_prob or None, entropy, argmax, topk_index (N, k), topk_log_prob (N, k))
    per row: float64 values, int64 indices."""
    n_rows, n = x.shape
    lse, log_prob, entropy, argmax = [], [], [], []
    topk_index = np.zeros((n_rows, k), dtype=np.int64)
    topk_log_prob = np.zeros((n_rows, k), dtype=np.float64)
    for i in range(n_rows):
        row = _k._row(x, where, i, temperature)
        keep = _k._keep(where, i, n)
        parts = _k._row_lse_parts(row)
        m, _, log_s = parts
        lse.append(m + log_s if math.isfinite(m) else m)
        entropy.append(_k._entropy_of_logits(row))
        argmax.append(_argmax(row, keep))
        if labels is not None:
            ok = _k._has_distribution(parts)
            log_prob.append(-_k._neg_log_q(row[int(labels[i])], parts) if ok else _NAN)
        chosen, values = _topk(row, keep, parts, k)
        topk_index[i, :] = chosen
        topk_log_prob[i, :] = values
    return (_k._per_row(lse), _k._per_row(log_prob) if labels is not None else None,
            _k._per_row(entropy), np.array(argmax, dtype=np.int64), topk_index,
            topk_log_prob)
