/* divcore/losses.h: per-row kernels for log-softmax, cross-entropy, KL and entropy.
 *
 * Every kernel reads a contiguous row of n logits x (already divided by the temperature,
 * masked classes already -inf; see rows.h) and returns double. Notation:
 *     M = max x,   S = Σ exp(x - M),   lse = M + log S,   log q_i = x_i - lse
 * A row "has a distribution" when it holds no NaN, no +inf and at least one finite value
 * (dc_lse_ok). Otherwise every loss of the row is NaN (and its log-sum-exp is NaN, or -inf
 * when it has no finite value).
 *
 * The rules every kernel keeps:
 *   - 0·log 0 = 0: a term whose target probability is exactly 0 contributes 0, also where
 *     the logit is -inf; target mass on a -inf logit gives +inf.
 *   - Losses are sums of non-negative terms shifted by the max,
 *         lse - x_i = (M - x_i) + log S,
 *     never the difference lse·Σp - Σ p x of two large numbers.
 *   - KL is clamped at 0 from below (NaN stays NaN).
 *   - float32 rows sum in float32 lanes within a block of DC_BLOCK values and in double
 *     across blocks, so the error does not grow with n.
 */
#ifndef DIVCORE_LOSSES_H
#define DIVCORE_LOSSES_H

#include <math.h>
#include <stddef.h>
#include "lse.h"
#include "rows.h" /* dc_lse_scan_rows: short rows are scanned in lanes */

/* What the soft-target kernels return. h and kl are filled only when asked for. */
typedef struct {
    double ce;       /* Σ w p (lse - x)                               cross-entropy H(p, q) */
    double h;        /* -Σ w p log p                                  entropy H(p) */
    double kl;       /* Σ w p (log p - log q) = ce - h, clamped ≥ 0   KL(p ‖ q) */
    double psum;     /* Σ p of the target as given (for validation) */
    ptrdiff_t nbad;  /* target entries that are NaN or negative (NaN for log-probabilities) */
    double asum;     /* Σ a = Σ w p: the total target mass, what the gradient scales q by */
    double max;      /* M and S of the logits' row (see lse.h), for the gradient pass */
    double sum;
    double tmax;     /* M and S of a logits target's row (dc_soft_logits only) */
    double tsum;
} dc_soft_result;

/* softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large x, full
 * relative precision for very negative x; +inf at +inf, 0 at -inf. */
DC_INLINE double dc_softplus(double x)
{
    return (x > 0.0 ? x : 0.0) + log1p(exp(-fabs(x)));
}

/* Binary cross-entropy on a logit x with target y and positive-class weight pw:
 *     l = -[pw·y·log σ(x) + (1 - y)·log(1 - σ(x))]
 *       = pw·y·softplus(-x) + (1 - y)·softplus(x)
 * (-log σ(x) = softplus(-x), -log(1 - σ(x)) = softplus(x)). A term whose coefficient is
 * exactly 0 is 0, so x = +inf with y = 1 and x = -inf with y = 0 give 0, not NaN. */
DC_INLINE double dc_bce_logit(double x, double y, double pw)
{
    const double a = pw * y, b = 1.0 - y;
    return (a != 0.0 ? a * dc_softplus(-x) : 0.0) + (b != 0.0 ? b * dc_softplus(x) : 0.0);
}

/* log1p(c·expm1(d)) = log(1 - c + c·e^d) for c in (0, 1): for large d, expm1 overflows
 * long before the result does, so there it is d + log c + log1p((1-c)/c · e^-d). */
DC_INLINE double dc_log1p_c_expm1(double c, double d)
{
    if (d > 1.0) return d + log(c) + log1p((1.0 - c) / c * exp(-d));
    return log1p(c * expm1(d));
}

/* h(β) = -β log β - (1-β) log(1-β): the largest value JS_β can take. */
DC_INLINE double dc_binary_entropy(double beta)
{
    double h = 0.0;
    if (beta > 0.0) h -= beta * log(beta);
    if (beta < 1.0) h -= (1.0 - beta) * log1p(-beta);
    return h;
}

/* Running sums over a target row: Σ p, Σ a with a = w·p, Σ a·log p, bad entries. */
typedef struct {
    double psum, asum, hsum;
    ptrdiff_t nbad;
} dc_target_sums;

/* The running state of dc_soft_target_row (soft_target_t.h) between parts of a row: the
 * logits' log-sum-exp, the target's sums, Σ a·(M - x) so far and the mass seen so far. */
typedef struct {
    dc_lse_state st;
    dc_target_sums ts;
    double shift, a_seen;
} dc_soft_state;

DC_INLINE void dc_soft_state_init(dc_soft_state *s)
{
    dc_lse_init(&s->st);
    s->ts.psum = s->ts.asum = s->ts.hsum = 0.0;
    s->ts.nbad = 0;
    s->shift = s->a_seen = 0.0;
}

/* -log q_y = lse - x_y = (M - x_y) + log S, from a row's scan st and its
 * log S = log1p((at_max - 1) + rest). Both terms are ≥ 0, so there is no cancellation;
 * when x_y is the max the first is 0 and the loss keeps its relative precision however
 * small it is. x_y = -inf gives +inf; a row without a distribution gives NaN. */
DC_INLINE double dc_ce_label_of_log_sum(const dc_lse_state *st, double log_sum,
                                            double x_y)
{
    if (!dc_lse_ok(st)) return NAN;
    return (st->max - x_y) + log_sum;
}

/* H = log S + U / S from a row's scan and U = Σ e_i (M - x_i) (dc_entropy_update in
 * softmax_t.h): one expression for the float kernel and the half-precision ones. */
DC_INLINE double dc_entropy_of_sums(const dc_lse_state *st, double u)
{
    return dc_lse_log_sum(st) + u / dc_lse_sum(st);
}

/* The running state of dc_soft_logits' one read of both rows (dc_logits_update,
 * logits_target_t.h): the log-sum-exp states of the logits (sx) and of the target (st),
 * and, with a_i = w_i·p_i, p_i = exp(t_i - M_t) / S_t at the running max M_t and sum S_t,
 *     ea = Σ a_i,  c = Σ a_i (M_x - x_i),  h = Σ a_i (t_i - M_t),
 *     k = Σ a_i ((t_i - M_t) - (x_i - M_x)),
 * and how many classes with target mass have a -inf logit (`lost`: the loss is +inf). */
typedef struct {
    dc_lse_state sx, st;
    double ea, c, h, k;
    double lost;
} dc_logits_sums;

DC_INLINE void dc_logits_sums_init(dc_logits_sums *s)
{
    dc_lse_init(&s->sx);
    dc_lse_init(&s->st);
    s->ea = s->c = s->h = s->k = 0.0;
    s->lost = 0.0;
}

/* Both running maxima of s raised to bx, bt where those are larger, the normalised sums
 * moved with them: c' = c + δx·ea, h' = h - δt·ea, k' = k + (δx - δt)·ea (a row's first
 * finite max moves nothing). dc_logits_update's step before each block (dc_logits_raise),
 * and the parts of a split row to their common maxima (dc_logits_sums_merge). */
DC_INLINE void dc_logits_move(dc_logits_sums *s, double bx, double bt)
{
    double dxm = 0.0, dtm = 0.0;
    if (bx > s->sx.max) {
        const double old = s->sx.max;
        dc_lse_raise_max(&s->sx, bx);
        if (old > -INFINITY) dxm = bx - old;
    }
    if (bt > s->st.max) {
        const double old = s->st.max;
        dc_lse_raise_max(&s->st, bt);
        if (old > -INFINITY) dtm = bt - old;
    }
    if (dxm != 0.0 || dtm != 0.0) {
        s->c += dxm * s->ea;
        s->h -= dtm * s->ea;
        s->k += (dxm - dtm) * s->ea;
    }
}

/* Fold the next part's sums of a split row into *into: both moved to the common maxima
 * (dc_logits_move), then each normalised sum weighted by its part's target sum S_t there:
 * Σ = (Σ_a·S_a + Σ_b·S_b) / (S_a + S_b). */
DC_INLINE void dc_logits_sums_merge(dc_logits_sums *into, const dc_logits_sums *part)
{
    dc_logits_sums b = *part;
    const double mx = into->sx.max > b.sx.max ? into->sx.max : b.sx.max;
    const double mt = into->st.max > b.st.max ? into->st.max : b.st.max;
    dc_logits_move(into, mx, mt);
    dc_logits_move(&b, mx, mt);
    const double sa = dc_lse_sum(&into->st), sb = dc_lse_sum(&b.st), sab = sa + sb;
    dc_lse_merge(&into->sx, &b.sx);
    dc_lse_merge(&into->st, &b.st);
    if (sab > 0.0) {
        into->ea = (into->ea * sa + b.ea * sb) / sab;
        into->c = (into->c * sa + b.c * sb) / sab;
        into->h = (into->h * sa + b.h * sb) / sab;
        into->k = (into->k * sa + b.k * sb) / sab;
    }
    into->lost += b.lost;
}

/* dc_logits_update's step after a block: its sums blk[] = {ea, c, h, k} (scaled by
 * 2^-10 for double rows) joined to the normalised ones, the target's sum having gone from
 * `before` to its present value: Σ' = Σ·(before/after) + blk/after. */
DC_INLINE void dc_logits_join(dc_logits_sums *s, double before, const double *blk,
                              double unscale)
{
    const double after = dc_lse_sum(&s->st);
    if (after > 0.0) { /* else the target has no mass yet: every sum is 0 */
        const double keep = before / after;
        s->ea = s->ea * keep + (blk[0] / after) * unscale;
        s->c = s->c * keep + (blk[1] / after) * unscale;
        s->h = s->h * keep + (blk[2] / after) * unscale;
        s->k = s->k * keep + (blk[3] / after) * unscale;
    }
}

/* dc_soft_logits' fields that need only the scans of both rows (sx: the logits, st: the
 * target); returns 0, with NaN losses, when either row has no distribution. */
DC_INLINE int dc_soft_logits_begin(const dc_lse_state *sx, const dc_lse_state *st,
                                   dc_soft_result *res)
{
    res->psum = 1.0;
    res->nbad = 0;
    res->asum = NAN;
    res->max = sx->max;
    res->sum = dc_lse_sum(sx);
    res->tmax = st->max;
    res->tsum = dc_lse_sum(st);
    if (!dc_lse_ok(sx) || !dc_lse_ok(st)) {
        res->ce = res->h = res->kl = NAN;
        return 0;
    }
    return 1;
}

/* Target kinds of the JS and gradient kernels. */
enum { DC_TARGET_PROBS = 0, DC_TARGET_LOG_PROBS = 1, DC_TARGET_LOGITS = 2 };

/* ----------------------------------------------- one long row split across threads */

/* What dc_split_part / dc_split_join compute besides the DC_TARGET_* kinds (losses against
 * such a target): the entropy of softmax(x), of probabilities, of log-probabilities. */
enum { DC_SPLIT_ENTROPY = 3, DC_SPLIT_ENTROPY_PROBS = 4, DC_SPLIT_ENTROPY_LOG_PROBS = 5 };

/* The running state of one part of a long row (split_t.h): that of the kind's one-read
 * kernel (dc_soft_target_update, dc_logits_update, dc_entropy_update). */
typedef struct {
    dc_soft_state soft;     /* probabilities, log-probabilities */
    dc_logits_sums logits;  /* a teacher's logits */
    dc_lse_state ent;       /* entropy: the scan, U = Σ e_i (M - x_i), and 0 after a NaN */
    double u;
    int ent_ok;
    double h, psum;         /* entropy of a target: -Σ p log p, Σ p and the bad entries */
    ptrdiff_t nbad;
} dc_soft_split;

/* Fold the state of the next part of a row into *into: the logits' scans merged
 * (dc_lse_merge), each part's A = Σ a·(M - x) moved to the common max as
 * dc_soft_target_update moves it when a block raises the max (A += (M' - M)·Σa, not
 * formed for a part without mass), the target's sums added. */
DC_INLINE void dc_soft_state_merge(dc_soft_state *into, const dc_soft_state *part)
{
    const double ma = into->st.max, mb = part->st.max;
    double shift = into->shift, more = part->shift;
    dc_lse_merge(&into->st, &part->st);
    const double m = into->st.max;
    if (m > ma && into->a_seen != 0.0) shift += (m - ma) * into->a_seen;
    if (m > mb && part->a_seen != 0.0) more += (m - mb) * part->a_seen;
    into->shift = shift + more;
    into->a_seen += part->a_seen;
    into->ts.psum += part->ts.psum;
    into->ts.asum += part->ts.asum;
    into->ts.hsum += part->ts.hsum;
    into->ts.nbad += part->ts.nbad;
}

/* Fold the next part's entropy sums into *into: U moved to the common max M' as
 * dc_entropy_update moves it (U' = (U + (M' - M)·S)·e^(M - M')), then added. */
DC_INLINE void dc_entropy_sums_merge(dc_lse_state *into, double *u, int *ok,
                                     const dc_lse_state *part, double part_u, int part_ok)
{
    const double m = into->max > part->max ? into->max : part->max;
    double ua = *u, ub = part_u;
    const double sa = dc_lse_sum(into), sb = dc_lse_sum(part);
    if (m > into->max && sa != 0.0) ua = (ua + (m - into->max) * sa) * exp(into->max - m);
    if (m > part->max && sb != 0.0) ub = (ub + (m - part->max) * sb) * exp(part->max - m);
    dc_lse_merge(into, part);
    *u = ua + ub;
    *ok = *ok && part_ok;
}

/* KL is a sum of terms of both signs that is ≥ 0 in exact arithmetic: never let rounding
 * make it negative. A NaN stays NaN (unlike fmax). */
DC_INLINE double dc_clamp_nonnegative(double v) { return v < 0.0 ? 0.0 : v; }

/* dc_kl_reverse_target's result from its row's scan and the sums of its values pass. */
DC_INLINE void dc_kl_reverse_finish(const dc_lse_state *sx, double kl, double psum,
                                    ptrdiff_t nbad, dc_soft_result *res)
{
    res->psum = psum;
    res->nbad = nbad;
    res->asum = 1.0;
    res->max = sx->max;
    res->sum = dc_lse_sum(sx);
    res->ce = res->h = NAN;
    res->kl = dc_lse_ok(sx) ? dc_clamp_nonnegative(kl) : NAN;
}

/* dc_js_row's rows define a distribution: the logits', and a logits target's. */
DC_INLINE int dc_js_ok(const dc_lse_state *sx, const dc_lse_state *st, int kind)
{
    return dc_lse_ok(sx) && (kind != DC_TARGET_LOGITS || dc_lse_ok(st));
}

/* dc_js_row's result from the sums of its values pass (dc_js_values): the target's sums
 * for validation (a logits target has none), NaN without a distribution, and the
 * divergence clamped to [0, h(β)], its range, against rounding. */
DC_INLINE double dc_js_finish(int ok, int kind, double beta, double js, double ps,
                              ptrdiff_t bad, double *psum, ptrdiff_t *nbad)
{
    *psum = kind == DC_TARGET_LOGITS ? 1.0 : ps;
    *nbad = kind == DC_TARGET_LOGITS ? 0 : bad;
    if (!ok) return NAN;
    if (beta == 0.0 || beta == 1.0) return 0.0;
    const double top = dc_binary_entropy(beta);
    js = dc_clamp_nonnegative(js);
    return js > top ? top : js;
}

#define DC_TEMPLATE "losses_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

#define DC_TEMPLATE "adjacent_logits_t.h" /* rows adjacent in memory (adjacent_t.h) */
#include "for_each_type.h"
#undef DC_TEMPLATE

#define DC_TEMPLATE "adjacent_softmax_t.h" /* their log_softmax writer */
#include "for_each_type.h"
#undef DC_TEMPLATE

#define DC_TEMPLATE "split_t.h" /* one long row over threads */
#include "for_each_type.h"
#undef DC_TEMPLATE

#include "lanes_more.h" /* short rows in lanes: the one-row kernels below 65 values */

#endif /* DIVCORE_LOSSES_H */
