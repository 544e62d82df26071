/* divcore/exp.h: the exponential the kernels use, written so compilers vectorise it.
 *
 * Branch-free range reduction + polynomial, no table, no libm call in the loop:
 *     exp(x) = 2^n · exp(r),   n = round(x / ln 2),   r = x - n·ln 2 ∈ [-ln2/2, ln2/2]
 * - n is rounded by adding and subtracting 1.5·2^(p-1) (p the mantissa bits);
 * - r is computed in two steps (Cody-Waite): ln2_hi has few enough bits that n·ln2_hi and
 *   x - n·ln2_hi are exact, ln2_lo carries the rest;
 * - exp(r) = 1 + r + r²·P(r): for float a degree-4 P fitted for the least maximum
 *   relative error over |r| ≤ ln2/2 (Lawson's iterations; 0.05 ulp of approximation
 *   error, so the result's error is the rounding's; one degree less would be 1.8 ulp),
 *   the Taylor series to r^13 for double (truncation < 4e-18);
 * - 2^n is built from its bits in two factors, so that results down in the subnormals
 *   (n < -126 / -1022) and up to overflow (n = 128 / 1024) are rounded once, right.
 * Measured: < 1 ulp against long double expl over every float in [-110, 90] and on 2·10^7
 * random doubles in [-746, 710]. exp(-inf) = 0, exp(+inf) = +inf, exp(NaN) = NaN (the
 * clamps keep NaN: every comparison with it is false).
 *
 * log stays the C library's where the kernels call it once per row; a target's own entropy
 * (a log per entry) takes the vector log of simd_log_t.h on whole vectors.
 */
#ifndef DIVCORE_EXP_H
#define DIVCORE_EXP_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include "config.h"

DC_INLINE float dc_f32_from_bits(int32_t i)
{
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

DC_INLINE double dc_f64_from_bits(int64_t i)
{
    double f;
    memcpy(&f, &i, sizeof f);
    return f;
}

DC_INLINE int32_t dc_bits_f32(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i;
}

DC_INLINE int64_t dc_bits_f64(double f)
{
    int64_t i;
    memcpy(&i, &f, sizeof i);
    return i;
}

/* The constants and the polynomial, shared with the vector exp of simd_t.h: written once,
 * applied to a float / double or to a vector of them (`zero` is 0 of that type, so that
 * `zero + c` is c in every lane). */
#define DC_EXP_F32_LO -104.0f /* below: rounds to 0 */
#define DC_EXP_F32_HI 89.0f   /* above: overflows to +inf */
#define DC_EXP_F32_SHIFTER 12582912.0f /* 1.5·2^23 */
#define DC_EXP_F32_SHIFTER_BITS 0x4b400000
#define DC_EXP_F32_LOG2E 1.44269504088896341f
#define DC_EXP_F32_LN2_HI 0.693359375f    /* 9 significant bits: n·ln2_hi is exact */
#define DC_EXP_F32_LN2_LO -2.12194440e-4f /* ln 2 - ln2_hi */
#define DC_EXP_F32_POLY(p, r, zero)                                                   \
    do {                                                                              \
        p = (zero) + 1.3814539e-3f;                                                   \
        p = p * (r) + 8.368745e-3f;                                                   \
        p = p * (r) + 4.166839e-2f;                                                   \
        p = p * (r) + 1.6666521e-1f;                                                  \
        p = p * (r) + 4.9999994e-1f;                                                  \
        p = p * (r) * (r) + (r) + 1.0f;                                               \
    } while (0)

#define DC_EXP_F64_LO -746.0
#define DC_EXP_F64_HI 710.0
#define DC_EXP_F64_SHIFTER 6755399441055744.0 /* 1.5·2^52 */
#define DC_EXP_F64_SHIFTER_BITS 0x4338000000000000LL
#define DC_EXP_F64_LOG2E 1.4426950408889634
#define DC_EXP_F64_LN2_HI 6.93147180369123816490e-01 /* 32 significant bits */
#define DC_EXP_F64_LN2_LO 1.90821492927058770002e-10
#define DC_EXP_F64_POLY(p, r, zero)                                                   \
    do {                                                                              \
        p = (zero) + 1.0 / 6227020800.0;                                              \
        p = p * (r) + 1.0 / 479001600.0;                                              \
        p = p * (r) + 1.0 / 39916800.0;                                               \
        p = p * (r) + 1.0 / 3628800.0;                                                \
        p = p * (r) + 1.0 / 362880.0;                                                 \
        p = p * (r) + 1.0 / 40320.0;                                                  \
        p = p * (r) + 1.0 / 5040.0;                                                   \
        p = p * (r) + 1.0 / 720.0;                                                    \
        p = p * (r) + 1.0 / 120.0;                                                    \
        p = p * (r) + 1.0 / 24.0;                                                     \
        p = p * (r) + 1.0 / 6.0;                                                      \
        p = p * (r) + 0.5;                                                            \
        p = p * (r) * (r) + (r) + 1.0;                                                \
    } while (0)

DC_INLINE float dc_exp_f32(float x)
{
    float xc = x < DC_EXP_F32_LO ? DC_EXP_F32_LO : x;
    xc = xc > DC_EXP_F32_HI ? DC_EXP_F32_HI : xc;
    const float t = xc * DC_EXP_F32_LOG2E + DC_EXP_F32_SHIFTER;
    const float n = t - DC_EXP_F32_SHIFTER;
    float r = xc - n * DC_EXP_F32_LN2_HI;
    r = r - n * DC_EXP_F32_LN2_LO;
    float p;
    DC_EXP_F32_POLY(p, r, 0.0f);
    /* n as an integer is in t's low mantissa bits: no float-to-int conversion needed. */
    const int32_t ni = dc_bits_f32(t) - DC_EXP_F32_SHIFTER_BITS;
    const int32_t n1 = ni >> 1, n2 = ni - n1;
    /* Shifted as unsigned: for a NaN x, n is garbage and a signed shift could overflow
     * (undefined behaviour); the result is NaN through p either way. */
    return p * dc_f32_from_bits((int32_t)((uint32_t)(n1 + 127) << 23)) *
           dc_f32_from_bits((int32_t)((uint32_t)(n2 + 127) << 23));
}

DC_INLINE double dc_exp_f64(double x)
{
    double xc = x < DC_EXP_F64_LO ? DC_EXP_F64_LO : x;
    xc = xc > DC_EXP_F64_HI ? DC_EXP_F64_HI : xc;
    const double n = (xc * DC_EXP_F64_LOG2E + DC_EXP_F64_SHIFTER) - DC_EXP_F64_SHIFTER;
    double r = xc - n * DC_EXP_F64_LN2_HI;
    r = r - n * DC_EXP_F64_LN2_LO;
    double p;
    DC_EXP_F64_POLY(p, r, 0.0);
    /* Split n = n1 + n2 in double (both exact) and read each as an integer from the
     * shifter's bits: only 64-bit integer add and shift, which every x86-64 has in SIMD
     * (a 64-bit float-to-int conversion needs AVX-512). */
    const double n1 = (n * 0.5 + DC_EXP_F64_SHIFTER) - DC_EXP_F64_SHIFTER;
    const int64_t i1 = dc_bits_f64(n1 + DC_EXP_F64_SHIFTER) - DC_EXP_F64_SHIFTER_BITS;
    const int64_t i2 = dc_bits_f64((n - n1) + DC_EXP_F64_SHIFTER) - DC_EXP_F64_SHIFTER_BITS;
    return p * dc_f64_from_bits((int64_t)((uint64_t)(i1 + 1023) << 52)) *
           dc_f64_from_bits((int64_t)((uint64_t)(i2 + 1023) << 52));
}

DC_INLINE float dc_log_f32(float x) { return logf(x); }
DC_INLINE double dc_log_f64(double x) { return log(x); }

#endif /* DIVCORE_EXP_H */
