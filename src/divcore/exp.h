/* divcore/exp.h: the exponential the kernels use, written so compilers vectorise it.
 *
 * Branch-free range reduction + polynomial, no table, no libm call in the loop:
 *     exp(x) = 2^n · exp(r),   n = round(x / ln 2),   r = x - n·ln 2 ∈ [-ln2/2, ln2/2]
 * - n is rounded by adding and subtracting 1.5·2^(p-1) (p the mantissa bits);
 * - r is computed in two steps (Cody-Waite): ln2_hi has few enough bits that n·ln2_hi and
 *   x - n·ln2_hi are exact, ln2_lo carries the rest;
 * - exp(r) = 1 + r + r²·P(r): a minimax P for float (Cephes' expf coefficients), the Taylor
 *   series to r^13 for double (truncation < 4e-18);
 * - 2^n is built from its bits in two factors, so that results down in the subnormals
 *   (n < -126 / -1022) and up to overflow (n = 128 / 1024) are rounded once, right.
 * Measured: < 1 ulp against long double expl over every float in [-110, 90] and on 2·10^7
 * random doubles in [-746, 710]. exp(-inf) = 0, exp(+inf) = +inf, exp(NaN) = NaN (the
 * clamps keep NaN: every comparison with it is false).
 *
 * log stays the C library's (the kernels call it once per row, or per target entry only
 * where a target's own entropy is asked for).
 */
#ifndef DIVCORE_EXP_H
#define DIVCORE_EXP_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float dc_f32_from_bits(int32_t i)
{
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

static inline double dc_f64_from_bits(int64_t i)
{
    double f;
    memcpy(&f, &i, sizeof f);
    return f;
}

static inline int32_t dc_bits_f32(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i;
}

static inline int64_t dc_bits_f64(double f)
{
    int64_t i;
    memcpy(&i, &f, sizeof i);
    return i;
}

static inline float dc_exp_f32(float x)
{
    float xc = x < -104.0f ? -104.0f : x; /* below: rounds to 0 */
    xc = xc > 89.0f ? 89.0f : xc;         /* above: overflows to +inf */
    const float shifter = 12582912.0f;    /* 1.5·2^23 */
    const float t = xc * 1.44269504088896341f + shifter;
    const float n = t - shifter;
    float r = xc - n * 0.693359375f;      /* ln2_hi, 9 significant bits */
    r = r - n * -2.12194440e-4f;          /* ln2_lo = ln 2 - ln2_hi */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* n as an integer is in t's low mantissa bits: no float-to-int conversion needed. */
    const int32_t ni = dc_bits_f32(t) - dc_bits_f32(shifter);
    const int32_t n1 = ni >> 1, n2 = ni - n1;
    return p * dc_f32_from_bits((n1 + 127) << 23) * dc_f32_from_bits((n2 + 127) << 23);
}

static inline double dc_exp_f64(double x)
{
    double xc = x < -746.0 ? -746.0 : x;
    xc = xc > 710.0 ? 710.0 : xc;
    const double shifter = 6755399441055744.0; /* 1.5·2^52 */
    const double t = xc * 1.4426950408889634 + shifter;
    const double n = t - shifter;
    double r = xc - n * 6.93147180369123816490e-01; /* ln2_hi, 32 significant bits */
    r = r - n * 1.90821492927058770002e-10;          /* ln2_lo */
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r * r + r + 1.0;
    /* Split n = n1 + n2 in double (both exact) and read each as an integer from the
     * shifter's bits: only 64-bit integer add and shift, which every x86-64 has in SIMD
     * (a 64-bit float-to-int conversion needs AVX-512). */
    const double n1 = (n * 0.5 + shifter) - shifter;
    const int64_t i1 = dc_bits_f64(n1 + shifter) - dc_bits_f64(shifter);
    const int64_t i2 = dc_bits_f64((n - n1) + shifter) - dc_bits_f64(shifter);
    return p * dc_f64_from_bits((i1 + 1023) << 52) * dc_f64_from_bits((i2 + 1023) << 52);
}

static inline float dc_log_f32(float x) { return logf(x); }
static inline double dc_log_f64(double x) { return log(x); }

#endif /* DIVCORE_EXP_H */
