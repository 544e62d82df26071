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

/* What the soft-target kernels return. h and kl are filled only when asked for. */
typedef struct {
    double ce;       /* Σ w p (lse - x)                               cross-entropy H(p, q) */
    double h;        /* -Σ w p log p                                  entropy H(p) */
    double kl;       /* Σ w p (log p - log q) = ce - h, clamped ≥ 0   KL(p ‖ q) */
    double psum;     /* Σ p of the target as given (for validation) */
    ptrdiff_t nbad;  /* target entries that are NaN or negative (NaN for log-probabilities) */
} dc_soft_result;

/* Running sums over a target row: Σ p, Σ a with a = w·p, Σ a·log p, bad entries. */
typedef struct {
    double psum, asum, hsum;
    ptrdiff_t nbad;
} dc_target_sums;

/* KL is a sum of terms of both signs that is ≥ 0 in exact arithmetic: never let rounding
 * make it negative. A NaN stays NaN (unlike fmax). */
static inline double dc_clamp_nonnegative(double v) { return v < 0.0 ? 0.0 : v; }

#define DC_T float
#define DC_SFX f32
#include "losses_t.h"
#undef DC_T
#undef DC_SFX

#define DC_T double
#define DC_SFX f64
#include "losses_t.h"
#undef DC_T
#undef DC_SFX

#endif /* DIVCORE_LOSSES_H */
