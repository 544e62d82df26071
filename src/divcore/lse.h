/* divcore/lse.h: blocked online log-sum-exp.
 *
 * One pass over memory. The row is cut into blocks of DC_BLOCK values; for each block:
 *   1. the block's max b (and whether it holds a NaN), read from L1;
 *   2. if b > M (the running max): one rescale of the running sum,
 *        Σ exp(x - M_old) = exp(M_new - M_old) · Σ exp(x - M_new),  M = b;
 *   3. the block's Σ exp(x - M), in lanes of the input precision (float32 for float
 *      input), added to the running sum in double.
 *
 * The running sum is kept in two parts, S = at_max + rest: at_max counts the values equal
 * to M (each contributes exp(0) = 1 exactly) and rest sums exp(x - M) over the values
 * below M. Then
 *      log S = log1p((at_max - 1) + rest)
 * is exact in *relative* terms when the max dominates: a confident prediction whose loss
 * is 1e-20 comes back as 1e-20, where log(1 + 1e-20) would give 0.
 */
#ifndef DIVCORE_LSE_H
#define DIVCORE_LSE_H

#include "config.h"

#include <math.h>
#include <stddef.h>
#include "exp.h"
#include "simd.h"

/* Values per block: 2 KiB of float32, small enough that the second read is from L1. */
#ifndef DC_BLOCK
#define DC_BLOCK 512
#endif
/* Independent accumulators per block loop, so the compiler can keep them in SIMD lanes
 * without reassociating a single sum (which it may not do without -ffast-math). */
#define DC_LANES 16

typedef struct {
    double max;    /* M: the largest value seen so far (-inf before the first finite one) */
    double at_max; /* how many values equal M */
    double rest;   /* Σ exp(x - M) over the values below M */
    double rest_c; /* the rounding error of `rest` so far (compensated summation) */
    int nan;       /* a NaN was seen: the row has no value but NaN */
} dc_lse_state;

DC_INLINE void dc_lse_init(dc_lse_state *st)
{
    st->max = -INFINITY;
    st->at_max = 0.0;
    st->rest = 0.0;
    st->rest_c = 0.0;
    st->nan = 0;
}

/* Move the running sum to a new, larger max b: everything counted so far drops below it. */
/* s += v, keeping the rounding error in *c (Neumaier): block and lane sums are added this
 * way, so the error of a row's sum does not grow with its length. */
DC_INLINE void dc_sum_add(double *s, double *c, double v)
{
    const double t = *s + v;
    *c += fabs(*s) >= fabs(v) ? (*s - t) + v : (v - t) + *s;
    *s = t;
}

DC_INLINE void dc_lse_raise_max(dc_lse_state *st, double b)
{
    const double sum = st->at_max + (st->rest + st->rest_c);
    st->rest = sum != 0.0 ? sum * exp(st->max - b) : 0.0; /* nothing to move at the start */
    st->rest_c = 0.0;
    st->at_max = 0.0;
    st->max = b;
}

/* Fold the state of another part of the same row into *into (a row split across threads):
 * both sums move to the larger max, S = S_a·e^(M_a - M) + S_b·e^(M_b - M); the values
 * equal to the common max stay counted in at_max. */
DC_INLINE void dc_lse_merge(dc_lse_state *into, const dc_lse_state *part)
{
    into->nan |= part->nan;
    if (part->max > into->max) {
        dc_lse_state moved = *part;
        dc_lse_raise_max(into, part->max);
        into->at_max = moved.at_max;
        dc_sum_add(&into->rest, &into->rest_c, moved.rest);
        dc_sum_add(&into->rest, &into->rest_c, moved.rest_c);
    } else if (part->max == into->max) {
        into->at_max += part->at_max;
        dc_sum_add(&into->rest, &into->rest_c, part->rest);
        dc_sum_add(&into->rest, &into->rest_c, part->rest_c);
    } else if (part->max > -INFINITY) {
        const double scale = exp(part->max - into->max);
        const double sum = part->at_max + (part->rest + part->rest_c);
        dc_sum_add(&into->rest, &into->rest_c, sum * scale);
    }
}

/* 1 when the row defines a distribution: no NaN, and a finite max (+inf gives NaN, no
 * finite value at all gives no distribution). */
DC_INLINE int dc_lse_ok(const dc_lse_state *st)
{
    return !st->nan && st->max > -INFINITY && st->max < INFINITY;
}

/* log S - i.e. lse - M - for a row with dc_lse_ok. */
DC_INLINE double dc_lse_log_sum(const dc_lse_state *st)
{
    return log1p((st->at_max - 1.0) + (st->rest + st->rest_c));
}

/* S itself, for dividing by it (softmax, probabilities from logits). */
DC_INLINE double dc_lse_sum(const dc_lse_state *st)
{
    return st->at_max + (st->rest + st->rest_c);
}

/* The log-sum-exp of the row, M + log S, with log S = dc_lse_log_sum(st) given: NaN for a
 * NaN or +inf value, -inf with no finite value. */
DC_INLINE double dc_lse_value_of_log_sum(const dc_lse_state *st, double log_sum)
{
    if (st->nan || st->max == INFINITY) return NAN;
    if (st->max == -INFINITY) return -INFINITY;
    return st->max + log_sum;
}

DC_INLINE double dc_lse_value(const dc_lse_state *st)
{
    return dc_lse_value_of_log_sum(st, dc_lse_ok(st) ? dc_lse_log_sum(st) : 0.0);
}

#define DC_CAT2(a, b) a##_##b
#define DC_CAT(a, b) DC_CAT2(a, b)
#define DC_CAT3_(a, b, c) a##_##b##_##c
#define DC_CAT3(a, b, c) DC_CAT3_(a, b, c)


/* The portable build of every kernel: names ending _base (dc_ce_label_f32_base), no
 * target attribute. dispatch.h compiles the same templates again for AVX2 and AVX-512
 * (..._avx2, ..._avx512) and defines the public names (dc_ce_label_f32) over the three. */
#ifndef DC_ISA_NAME
#define DC_ISA_NAME(name, sfx) DC_CAT3(name, sfx, base)
#define DC_TARGET
#endif

#define DC_VBYTES 16
#include "simd_t.h"
#undef DC_VBYTES

#define DC_TEMPLATE "lse_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

#endif /* DIVCORE_LSE_H */
