/* divcore/row_stats.h: a row's statistics from one read of its logits (SPEC §7).
 *
 * For a row x of n logits (already divided by the temperature, masked classes -inf; see
 * rows.h), with M = max x, S = Σ exp(x_i - M) and e_i = exp(x_i - M), one blocked pass
 * (the log-sum-exp's, lse.h) gathers at once
 *     lse      = M + log S                     (S kept as at_max + rest: log S = log1p(...))
 *     log q_y  = -((M - x_y) + log S)          (the label's log-probability: two terms ≥ 0,
 *                                               relative precision when x_y is the max)
 *     H        = log S + U / S,  U = Σ e_i (M - x_i)   (entropy: non-negative terms only)
 *     argmax   the first index of the max (numpy's argmax: the first NaN if there is one)
 *     top-k    the k largest values, kept while the row streams by (a sorted array for
 *              k <= DC_TOPK_SORTED_MAX, else a heap, in the caller's output arrays)
 * U moves with the running max as S does: when M grows to M',
 *     U' = Σ e_i e^(M - M') (M' - x_i) = e^(M - M') (U + (M' - M) S).
 * Within a block U is summed in lanes of the input's precision next to S, from the same
 * exp, and across blocks in double. For float rows the float exp of the terms of a very
 * peaked row falls in the subnormal range; where H < DC_ROW_STATS_H_RECHECK the entropy
 * is computed again in double (dc_entropy_logits_read: a second read of that row only). The
 * other second looks at a row are as rare: the first NaN of a NaN row (its argmax), and
 * the -inf entries that end the top-k of a row with fewer than k values above -inf.
 */
#ifndef DIVCORE_ROW_STATS_H
#define DIVCORE_ROW_STATS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include "lse.h"
#include "losses.h"

/* What dc_row_stats_* returns besides the top-k. */
typedef struct {
    double logsumexp; /* lse; -inf with no finite value, NaN with a NaN or +inf */
    double log_prob;  /* log q_label; NaN without a label (label < 0) or distribution */
    double entropy;   /* H(softmax(x)); NaN without a distribution */
    ptrdiff_t argmax; /* first index of the max (first NaN); 0 when every value is -inf,
                         -1 for n = 0 */
} dc_row_stats;

/* Below this a float row's entropy is computed again in double (see above). */
#define DC_ROW_STATS_H_RECHECK 1e-20

/* The order of the top-k: a is worse than b when its value is smaller, or equal with a
 * larger index (the smaller index ranks first). A heap's root is the worst entry. */
DC_INLINE int dc_topk_worse(double va, int64_t ia, double vb, int64_t ib)
{
    return va < vb || (va == vb && ia > ib);
}

DC_INLINE void dc_topk_sift_down(double *v, int64_t *idx, ptrdiff_t len, ptrdiff_t at)
{
    const double cv = v[at];
    const int64_t ci = idx[at];
    for (;;) {
        ptrdiff_t child = 2 * at + 1;
        if (child >= len) break;
        if (child + 1 < len && dc_topk_worse(v[child + 1], idx[child + 1], v[child], idx[child]))
            child++;
        if (!dc_topk_worse(v[child], idx[child], cv, ci)) break;
        v[at] = v[child];
        idx[at] = idx[child];
        at = child;
    }
    v[at] = cv;
    idx[at] = ci;
}

DC_INLINE void dc_topk_sift_up(double *v, int64_t *idx, ptrdiff_t at)
{
    const double cv = v[at];
    const int64_t ci = idx[at];
    while (at > 0) {
        const ptrdiff_t parent = (at - 1) / 2;
        if (!dc_topk_worse(cv, ci, v[parent], idx[parent])) break;
        v[at] = v[parent];
        idx[at] = idx[parent];
        at = parent;
    }
    v[at] = cv;
    idx[at] = ci;
}

/* A top-k of at most DC_TOPK_SORTED_MAX entries is kept sorted, best first (an insertion
 * shifts the worse entries down: few, predictable steps); a larger one is a heap (root:
 * the worst), sorted at the end. */
#define DC_TOPK_SORTED_MAX 64

/* The entry a new value must beat once k entries are kept. */
DC_INLINE double dc_topk_threshold(const double *v, ptrdiff_t k)
{
    return k <= DC_TOPK_SORTED_MAX ? v[k - 1] : v[0];
}

/* Offer (value, index) to the *len entries kept out of k: kept when there is room or when
 * it beats the worst. Indices arrive in increasing order, so an equal value never beats
 * an entry already kept (the lower index ranks first). */
DC_INLINE void dc_topk_offer(double *v, int64_t *idx, ptrdiff_t *len, ptrdiff_t k,
                             double value, int64_t index)
{
    if (k <= DC_TOPK_SORTED_MAX) {
        ptrdiff_t at;
        if (*len < k) at = (*len)++;
        else if (value > v[k - 1]) at = k - 1; /* the worst entry drops out */
        else return;
        while (at > 0 && value > v[at - 1]) {
            v[at] = v[at - 1];
            idx[at] = idx[at - 1];
            at--;
        }
        v[at] = value;
        idx[at] = index;
        return;
    }
    if (*len < k) {
        v[*len] = value;
        idx[*len] = index;
        dc_topk_sift_up(v, idx, *len);
        (*len)++;
    } else if (value > v[0]) {
        v[0] = value;
        idx[0] = index;
        dc_topk_sift_down(v, idx, k, 0);
    }
}

/* The entries sorted in place, best first (a heap: heapsort, the worst entry goes last
 * each time; a sorted top-k already is). */
DC_INLINE void dc_topk_sort(double *v, int64_t *idx, ptrdiff_t len, ptrdiff_t k)
{
    if (k <= DC_TOPK_SORTED_MAX) return;
    for (ptrdiff_t end = len - 1; end > 0; end--) {
        const double tv = v[0];
        const int64_t ti = idx[0];
        v[0] = v[end];
        idx[0] = idx[end];
        v[end] = tv;
        idx[end] = ti;
        dc_topk_sift_down(v, idx, end, 0);
    }
}

#define DC_TEMPLATE "row_stats_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

#endif /* DIVCORE_ROW_STATS_H */
