/* divcore/half.h: half-precision storage widened to float, exactly.
 *
 * float16 (IEEE binary16): sign, 5 exponent bits (bias 15), 10 mantissa bits. A normal
 * value moves its exponent to float's bias (127 - 15 = 112) and its mantissa up 13 bits; a
 * subnormal is man · 2^-24, exact in float (and a normal float: no subnormal arithmetic,
 * so a caller's flush-to-zero / denormals-are-zero mode changes nothing); inf and NaN keep
 * their mantissa (NaN stays NaN). bfloat16 is float's upper half: shifting it up 16 bits
 * is the float itself. Every half value is exactly representable in float, so widening
 * never rounds, and every way of widening below gives the same bits.
 *
 * Self-contained (C library headers only): divcore's C API (half_t.h, the _f16 / _bf16
 * row kernels) and divcore._core (divcore/_half.h includes this file) share it. */
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

/* A contiguous row of n float16 values widened into dst, one value at a time. */
static inline void dc_widen_f16_scalar(const uint16_t *src, ptrdiff_t n, float *dst)
{
    for (ptrdiff_t i = 0; i < n; i++) dst[i] = dc_f16_to_f32(src[i]);
}

/* A contiguous row of n bfloat16 values widened into dst: a shift the compiler
 * vectorises with the instructions of the build it is in. */
static inline void dc_widen_bf16(const uint16_t *src, ptrdiff_t n, float *dst)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        const uint32_t bits = (uint32_t)src[i] << 16;
        memcpy(dst + i, &bits, sizeof bits);
    }
}

/* dc_widen_f16: float16 with the F16C conversion instruction (8 values at a time) where
 * the CPU has it, chosen at run time (never compiled in as a requirement: the build runs
 * on any x86-64), else dc_widen_f16_scalar. GCC and clang on x86-64, under the same
 * conditions as the vector kernels (simd.h); elsewhere always the scalar widening. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && \
    !defined(DIVCORE_NO_VECTORS) && !defined(DIVCORE_NO_INTRINSICS)
#include <cpuid.h>
#include <immintrin.h>
#define DC_HAVE_F16C_PATH 1

__attribute__((target("avx,f16c"))) static inline void dc_widen_f16_f16c(
    const uint16_t *src, ptrdiff_t n, float *dst)
{
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = dc_f16_to_f32(src[i]);
}

/* 16 values at a time with AVX-512's form of the same conversion (AVX512F): called only
 * from the AVX-512 build of the kernels, which runs only where the CPU has AVX-512. The
 * conversion is exact, as the 8-wide one is. */
__attribute__((target("avx512f,avx,f16c"))) static inline void dc_widen_f16_avx512(
    const uint16_t *src, ptrdiff_t n, float *dst)
{
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16)
        /* the zero-masked form: GCC 12's plain _mm512_cvtph_ps reads an uninitialised
         * pass-through register (-Wmaybe-uninitialized in C++) */
        _mm512_storeu_ps(dst + i, _mm512_maskz_cvtph_ps(
                                      (__mmask16)0xffff,
                                      _mm256_loadu_si256((const __m256i *)(src + i))));
    dc_widen_f16_f16c(src + i, n - i, dst + i);
}

/* 1 when the CPU has F16C and the OS keeps AVX registers (the 256-bit form needs them).
 * CPUID leaf 1, ECX bit 29, rather than __builtin_cpu_supports("f16c"), which older
 * clang releases do not know. */
static inline int dc_cpu_has_f16c(void)
{
    unsigned int a = 0, b = 0, c = 0, d = 0;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx") || !__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (int)((c >> 29) & 1u);
}

/* -1 until asked, then 0 or 1; per translation unit, read and written with relaxed
 * atomics (threads asking at once all find the same answer, without a data race). */
static int dc_have_f16c = -1;

static inline void dc_widen_f16(const uint16_t *src, ptrdiff_t n, float *dst)
{
    int have = __atomic_load_n(&dc_have_f16c, __ATOMIC_RELAXED);
    if (have < 0) {
        have = dc_cpu_has_f16c();
        __atomic_store_n(&dc_have_f16c, have, __ATOMIC_RELAXED);
    }
    if (have)
        dc_widen_f16_f16c(src, n, dst);
    else
        dc_widen_f16_scalar(src, n, dst);
}
#else
static inline void dc_widen_f16(const uint16_t *src, ptrdiff_t n, float *dst)
{
    dc_widen_f16_scalar(src, n, dst);
}

static inline void dc_widen_f16_avx512(const uint16_t *src, ptrdiff_t n, float *dst)
{
    dc_widen_f16_scalar(src, n, dst);
}
#endif

#endif /* DIVCORE_HALF_H */
