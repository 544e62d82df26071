/* divcore/topk.h: losses against a sparse teacher, k classes per row (SPEC §7, TopK).
 *
 * A row gives the student's logits x (n values, already divided by the temperature,
 * masked classes -inf) and the teacher's k classes K = idx[0 .. k) with their
 * probabilities (is_log = 0) or log-probabilities (is_log = 1) v. With the row's scan
 * M = max x, log S (lse.h):
 *     log q_j = (x_j - M) - log S           (j in K; no cancellation, exact for tiny losses)
 *     log Q   = logsumexp_K(log q_j),       log q_r = log1mexp(log Q)      (q_r = 1 - Q)
 *     log P   = logsumexp_K(log p_j),       log p_r = log1mexp(log P)      (p_r = 1 - P)
 * where log1mexp(a) = log(1 - e^a) is computed without cancellation (dc_log1mexp), so a
 * rest of mass 1e-20 is 1e-20, not 0. A teacher whose given mass exceeds 1 (within the
 * caller's tolerance) has no rest: p_r = 0. 1 - Q carries Q's rounding (and log S's:
 * float rows sum in float lanes), so a small student rest (q_r < 2^-7 for float rows,
 * 2^-10 for double) is summed over the classes outside K instead, one more scan of such a
 * row: exact, and exactly 0 when K is every class or the rest is masked. A teacher's rest
 * against q_r = 0 is +inf, unless it is below √eps of T (log below -7.97 for float,
 * -18.02 for double): then it is the rounding of a complete teacher (log-probabilities
 * that sum to 1 only up to rounding) and counts as 0.
 *
 * The tail says what the teacher's missing mass means:
 *     bucket:       the k + 1 classes K ∪ {rest}: p = (p_K, p_r), q = (q_K, q_r)
 *     drop:         the teacher renormalised on K, the student over all classes: as
 *                   bucket with p̂ = p / P and p̂_r = 0 (the rest only enters through q)
 *     renormalize:  both renormalised on K: p̂ = p / P, q̃ = q / Q, no rest at all
 * and every loss is then that of two distributions over k + 1 cells (the last one the
 * rest): CE = Σ p_c (-log q_c), H = -Σ p_c log p_c, KL = Σ p_c (log p_c - log q_c)
 * (clamped at 0), KL(q ‖ p) and JS_β as the dense kernels define them, with 0·log 0 = 0
 * and mass against a cell of probability 0 giving +inf.
 *
 * Gradients with respect to the logits z (x = z / T), with A = Σ p_c (1 up to rounding):
 *     bucket, drop:  T ∂L/∂z_j = A q_j - p_j  (j in K),   q_j (A - p_r / q_r)  (j not in K)
 *     renormalize:   T ∂L/∂z_j = A q_j / Q - p̂_j  (j in K),  0  (j not in K)
 * (CE and KL have the same gradient: they differ by H(p), which does not depend on z).
 * For bucket, ∂ log q_r / ∂z_j = (q_j [j ∉ K] / q_r - q_j) / T gives the rest's part; the
 * ratio q_j / q_r is taken as exp(log q_j - log q_r) when q_r is tiny.
 *
 * The instruction-set-independent part: the per-cell arithmetic in double. topk_t.h
 * (per instruction set) scans the row and writes the gradient.
 */
#ifndef DIVCORE_TOPK_H
#define DIVCORE_TOPK_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include "lse.h"
#include "losses.h"

/* How a TopK target's missing mass counts (the Python API's tail=...). */
enum { DC_TAIL_BUCKET = 0, DC_TAIL_DROP = 1, DC_TAIL_RENORMALIZE = 2 };

/* What dc_topk_row_* returns. */
typedef struct {
    double ce;        /* H(p, q) over the cells */
    double h;         /* H(p) */
    double kl;        /* KL(p ‖ q), clamped at 0 */
    double kl_rev;    /* KL(q ‖ p), clamped at 0 */
    double js;        /* JS_β(p, q), in [0, h(β)] */
    double psum;      /* Σ_K p as given (for validation) */
    ptrdiff_t nbad;   /* entries that are NaN, negative or above 1 (log-probs: NaN or > 0) */
    double max;       /* M and log S of the student's row */
    double log_sum;
    double log_pr;    /* log p_r of the cells (after renormalising: -inf) */
    double log_qr;    /* log q_r of the student (before renormalising) */
    double log_q;     /* log Q of the student */
    double log_p;     /* log P of the teacher as given */
    double mass;      /* A = Σ over the cells of p (1 up to rounding) */
} dc_topk_result;

/* log(1 - e^a) for a <= 0 without cancellation (Mächler): log(-expm1(a)) near 0, where
 * 1 - e^a is small and expm1 exact, else log1p(-e^a). a >= 0 gives -inf (no rest). */
DC_INLINE double dc_log1mexp(double a)
{
    if (!(a < 0.0)) return a != a ? a : -INFINITY;
    return a > -0.6931471805599453 ? log(-expm1(a)) : log1p(-exp(a));
}

/* One cell's terms of every loss, p and q given with their logs (p = 0 <=> lp = -inf). */
typedef struct {
    double ce, h, kl, kl_rev, js;
} dc_topk_sums;

DC_INLINE void dc_topk_cell(dc_topk_sums *s, double p, double lp, double q, double lq,
                            double beta)
{
    if (p != 0.0) {
        s->ce += p * -lq;
        s->h += p * -lp;
        s->kl += p * (lp - lq);
    }
    if (q != 0.0) s->kl_rev += q * (lq - lp);
    if (beta > 0.0 && beta < 1.0 && (p != 0.0 || q != 0.0)) {
        const double d = lq - lp; /* log q - log p: +inf where p = 0, -inf where q = 0 */
        if (p != 0.0) s->js += beta * -p * dc_log1p_c_expm1(1.0 - beta, d);
        if (q != 0.0) s->js += (1.0 - beta) * -q * dc_log1p_c_expm1(beta, -d);
    }
}

#define DC_TEMPLATE "topk_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

#endif /* DIVCORE_TOPK_H */
