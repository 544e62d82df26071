/* divcore/_half.h: half-precision storage widened to float, one value at a time, exactly.
 *
 * float16 (IEEE binary16): sign, 5 exponent bits (bias 15), 10 mantissa bits. A normal
 * value moves its exponent to float's bias (127 - 15 = 112) and its mantissa up 13 bits; a
 * subnormal is man · 2^-24, exact in float; inf and NaN keep their mantissa (NaN stays
 * NaN). bfloat16 is float's upper half: shifting it up 16 bits is the float itself.
 * Every half value is exactly representable in float, so widening never rounds. */
#ifndef DIVCORE_HALF_H
#define DIVCORE_HALF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline float dc_f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exponent = (uint32_t)(h >> 10) & 0x1fu, mantissa = (uint32_t)h & 0x3ffu;
    uint32_t bits;
    float f;
    if (exponent == 0) {
        f = (float)mantissa * 5.9604644775390625e-08f; /* 2^-24: zero or subnormal */
        return sign ? -f : f;
    }
    if (exponent == 31)
        bits = sign | 0x7f800000u | (mantissa << 13);
    else
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline float dc_bf16_to_f32(uint16_t h)
{
    const uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* A contiguous row of n half values widened into dst. float16 uses the F16C conversion
 * instruction where the CPU has it (8 values at a time; chosen at run time, as the kernels'
 * instruction sets are), else the exact scalar conversion above; bfloat16 is a shift the
 * compiler vectorises. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx,f16c"))) static inline void dc_widen_f16_f16c(
    const uint16_t *src, ptrdiff_t n, float *dst)
{
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = dc_f16_to_f32(src[i]);
}

static int dc_have_f16c = -1; /* not yet asked */

static inline void dc_widen_f16(const uint16_t *src, ptrdiff_t n, float *dst)
{
    if (dc_have_f16c < 0) {
        __builtin_cpu_init();
        dc_have_f16c = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
    }
    if (dc_have_f16c) {
        dc_widen_f16_f16c(src, n, dst);
        return;
    }
    for (ptrdiff_t i = 0; i < n; i++) dst[i] = dc_f16_to_f32(src[i]);
}
#else
static inline void dc_widen_f16(const uint16_t *src, ptrdiff_t n, float *dst)
{
    for (ptrdiff_t i = 0; i < n; i++) dst[i] = dc_f16_to_f32(src[i]);
}
#endif

static inline void dc_widen_bf16(const uint16_t *src, ptrdiff_t n, float *dst)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        const uint32_t bits = (uint32_t)src[i] << 16;
        memcpy(dst + i, &bits, sizeof bits);
    }
}

#endif /* DIVCORE_HALF_H */
