/* divcore/simd_t.h: vector types and the vector exp for one instruction set: included by
 * lse.h (portable build, 16-byte vectors) and by dispatch.h (AVX2: 32 bytes, AVX-512: 64)
 * with DC_ISA_NAME, DC_TARGET and DC_VBYTES defined. A vector is as wide as the target's
 * registers, so no operation is split or emulated. The types are unaligned (aligned(4) /
 * aligned(8)) and may_alias, so a row is read as `*(const vector *)(x + i)` directly: a
 * memcpy into a vector goes through the stack where GCC splits 256-bit loads, and the
 * narrow-store / wide-load pair stalls store forwarding. */
#ifdef DC_HAVE_VEC

#define DC_VF32 DC_ISA_NAME(dc_v, f32)
#define DC_VIF32 DC_ISA_NAME(dc_vi, f32)
#define DC_VF64 DC_ISA_NAME(dc_v, f64)
#define DC_VIF64 DC_ISA_NAME(dc_vi, f64)
#define DC_VSEL32(mask, a, b) ((DC_VF32)(((mask) & (DC_VIF32)(a)) | (~(mask) & (DC_VIF32)(b))))
#define DC_VSEL64(mask, a, b) ((DC_VF64)(((mask) & (DC_VIF64)(a)) | (~(mask) & (DC_VIF64)(b))))

typedef float DC_ISA_NAME(dc_v, f32) __attribute__((vector_size(DC_VBYTES), aligned(4), may_alias));
typedef int32_t DC_ISA_NAME(dc_vi, f32) __attribute__((vector_size(DC_VBYTES), aligned(4), may_alias));
typedef double DC_ISA_NAME(dc_v, f64) __attribute__((vector_size(DC_VBYTES), aligned(8), may_alias));
typedef int64_t DC_ISA_NAME(dc_vi, f64) __attribute__((vector_size(DC_VBYTES), aligned(8), may_alias));

/* max(a, b) / min(a, b), b where a or b is NaN: x86's maxps/minps rule, one instruction
 * there (the vector-extension select compiles to a compare and a blend). The AVX-512 forms
 * are the masked ones with every lane kept: GCC 12's unmasked wrappers start from an
 * "undefined" vector that g++ -Wall reports as uninitialised. */
#if defined(DC_X86_INTRINSICS) && DC_VBYTES == 64
#define DC_VMAXPS(a, b) ((DC_VF32)_mm512_mask_max_ps((__m512)(a), (__mmask16)-1, (__m512)(a), (__m512)(b)))
#define DC_VMAXPD(a, b) ((DC_VF64)_mm512_mask_max_pd((__m512d)(a), (__mmask8)-1, (__m512d)(a), (__m512d)(b)))
#define DC_VMINPS(a, b) ((DC_VF32)_mm512_mask_min_ps((__m512)(a), (__mmask16)-1, (__m512)(a), (__m512)(b)))
#define DC_VMINPD(a, b) ((DC_VF64)_mm512_mask_min_pd((__m512d)(a), (__mmask8)-1, (__m512d)(a), (__m512d)(b)))
#elif defined(DC_X86_INTRINSICS) && DC_VBYTES == 32
#define DC_VMAXPS(a, b) ((DC_VF32)_mm256_max_ps((__m256)(a), (__m256)(b)))
#define DC_VMAXPD(a, b) ((DC_VF64)_mm256_max_pd((__m256d)(a), (__m256d)(b)))
#define DC_VMINPS(a, b) ((DC_VF32)_mm256_min_ps((__m256)(a), (__m256)(b)))
#define DC_VMINPD(a, b) ((DC_VF64)_mm256_min_pd((__m256d)(a), (__m256d)(b)))
#elif defined(DC_X86_INTRINSICS) && DC_VBYTES == 16
#define DC_VMAXPS(a, b) ((DC_VF32)_mm_max_ps((__m128)(a), (__m128)(b)))
#define DC_VMAXPD(a, b) ((DC_VF64)_mm_max_pd((__m128d)(a), (__m128d)(b)))
#define DC_VMINPS(a, b) ((DC_VF32)_mm_min_ps((__m128)(a), (__m128)(b)))
#define DC_VMINPD(a, b) ((DC_VF64)_mm_min_pd((__m128d)(a), (__m128d)(b)))
#else
#define DC_VMAXPS(a, b) DC_VSEL32((a) > (b), a, b)
#define DC_VMAXPD(a, b) DC_VSEL64((a) > (b), a, b)
#define DC_VMINPS(a, b) DC_VSEL32((a) < (b), a, b)
#define DC_VMINPD(a, b) DC_VSEL64((a) < (b), a, b)
#endif

DC_TARGET DC_VINLINE DC_VF32 DC_ISA_NAME(dc_vmax_keep, f32)(DC_VF32 a, DC_VF32 b)
{
    return DC_VMAXPS(a, b);
}

DC_TARGET DC_VINLINE DC_VF64 DC_ISA_NAME(dc_vmax_keep, f64)(DC_VF64 a, DC_VF64 b)
{
    return DC_VMAXPD(a, b);
}

/* p·2^n for integral n in [-150, 128] (float) / [-1075, 1024] (double), rounded once:
 * AVX-512's scalef does exactly this. Elsewhere 2^n is built from its bits in two factors
 * (each a normal number), so results in the subnormals are rounded once, by the second
 * product. `t` is n + shifter, whose low mantissa bits hold n as an integer. */
DC_TARGET DC_VINLINE DC_VF32 DC_ISA_NAME(dc_vscale, f32)(DC_VF32 p, DC_VF32 n, DC_VF32 t)
{
#if defined(DC_X86_INTRINSICS) && DC_VBYTES == 64
    (void)t;
    return (DC_VF32)_mm512_mask_scalef_ps((__m512)p, (__mmask16)-1, (__m512)p, (__m512)n);
#else
    (void)n;
    /* e1 = ⌊(n + 254)/2⌋ = ⌊n/2⌋ + 127 and e2 = n + 254 - e1 = ⌈n/2⌉ + 127: the two
     * biased exponents, with the bias folded into the one subtraction. */
    const DC_VIF32 b = (DC_VIF32)t - (int32_t)(DC_EXP_F32_SHIFTER_BITS - 254);
    const DC_VIF32 e1 = b >> 1, e2 = b - e1;
    return p * (DC_VF32)(e1 << 23) * (DC_VF32)(e2 << 23);
#endif
}

DC_TARGET DC_VINLINE DC_VF64 DC_ISA_NAME(dc_vscale, f64)(DC_VF64 p, DC_VF64 n)
{
#if defined(DC_X86_INTRINSICS) && DC_VBYTES == 64
    return (DC_VF64)_mm512_mask_scalef_pd((__m512d)p, (__mmask8)-1, (__m512d)p, (__m512d)n);
#else
    /* Split n = n1 + n2 in double (both exact) and read each as an integer from the
     * shifter's bits: only 64-bit integer add and shift, which every x86-64 has in SIMD
     * (a 64-bit float-to-int conversion needs AVX-512). */
    const DC_VF64 n1 = (n * 0.5 + DC_EXP_F64_SHIFTER) - DC_EXP_F64_SHIFTER;
    const int64_t sbits = (int64_t)DC_EXP_F64_SHIFTER_BITS - 1023;
    const DC_VIF64 e1 = (DC_VIF64)(n1 + DC_EXP_F64_SHIFTER) - sbits;
    const DC_VIF64 e2 = (DC_VIF64)((n - n1) + DC_EXP_F64_SHIFTER) - sbits;
    return p * (DC_VF64)(e1 << 52) * (DC_VF64)(e2 << 52);
#endif
}

/* exp.h's dc_exp_f32 / dc_exp_f64 lane by lane: the same constants, polynomial and
 * (correctly rounded once) scaling, so a lane gives the scalar's value. The clamps keep a
 * NaN lane NaN (DC_VMAX* return their second operand on NaN). */
DC_TARGET DC_VINLINE DC_VF32 DC_ISA_NAME(dc_vexp_nonpos, f32)(DC_VF32 x);
DC_TARGET DC_VINLINE DC_VF32 DC_ISA_NAME(dc_vexp, f32)(DC_VF32 x)
{
    const DC_VF32 zero = {0};
    return DC_ISA_NAME(dc_vexp_nonpos, f32)(DC_VMINPS(zero + DC_EXP_F32_HI, x));
}

/* exp(x) for x ≤ DC_EXP_F32_HI (no upper clamp: the sums' x - M ≤ 0), or NaN. */
DC_TARGET DC_VINLINE DC_VF32 DC_ISA_NAME(dc_vexp_nonpos, f32)(DC_VF32 x)
{
    const DC_VF32 zero = {0};
    const DC_VF32 xc = DC_VMAXPS(zero + DC_EXP_F32_LO, x);
    const DC_VF32 t = xc * DC_EXP_F32_LOG2E + DC_EXP_F32_SHIFTER;
    const DC_VF32 n = t - DC_EXP_F32_SHIFTER;
    DC_VF32 r = xc - n * DC_EXP_F32_LN2_HI;
    r = r - n * DC_EXP_F32_LN2_LO;
    DC_VF32 p;
    DC_EXP_F32_POLY(p, r, zero);
    return DC_ISA_NAME(dc_vscale, f32)(p, n, t);
}

DC_TARGET DC_VINLINE DC_VF64 DC_ISA_NAME(dc_vexp_nonpos, f64)(DC_VF64 x)
{
    const DC_VF64 zero = {0};
    const DC_VF64 xc = DC_VMAXPD(zero + DC_EXP_F64_LO, x);
    const DC_VF64 n = (xc * DC_EXP_F64_LOG2E + DC_EXP_F64_SHIFTER) - DC_EXP_F64_SHIFTER;
    DC_VF64 r = xc - n * DC_EXP_F64_LN2_HI;
    r = r - n * DC_EXP_F64_LN2_LO;
    DC_VF64 p;
    DC_EXP_F64_POLY(p, r, zero);
    return DC_ISA_NAME(dc_vscale, f64)(p, n);
}

DC_TARGET DC_VINLINE DC_VF64 DC_ISA_NAME(dc_vexp, f64)(DC_VF64 x)
{
    const DC_VF64 zero = {0};
    return DC_ISA_NAME(dc_vexp_nonpos, f64)(DC_VMINPD(zero + DC_EXP_F64_HI, x));
}

/* The first n < lanes values at x as a vector, the other lanes -inf, reading nothing past
 * x + n: a masked load where the target has one. Elsewhere the lanes are set one by one,
 * which compiles to a store of each and a vector load (a store-forwarding stall). */
DC_TARGET DC_VINLINE DC_VF32 DC_ISA_NAME(dc_vload_tail, f32)(const float *x, ptrdiff_t n)
{
    const DC_VF32 zero = {0}, ninf = zero - INFINITY;
#if defined(DC_X86_INTRINSICS) && DC_VBYTES == 64
    return (DC_VF32)_mm512_mask_loadu_ps((__m512)ninf, (__mmask16)((1u << n) - 1u), x);
#elif defined(DC_X86_INTRINSICS) && DC_VBYTES == 32
    const DC_VIF32 lane = {0, 1, 2, 3, 4, 5, 6, 7};
    const DC_VIF32 keep = lane < (int32_t)n;
    const DC_VF32 v = (DC_VF32)_mm256_maskload_ps(x, (__m256i)keep);
    return DC_VSEL32(keep, v, ninf);
#else
    DC_VF32 v = ninf;
    for (ptrdiff_t j = 0; j < n; j++) v[j] = x[j];
    return v;
#endif
}

DC_TARGET DC_VINLINE DC_VF64 DC_ISA_NAME(dc_vload_tail, f64)(const double *x, ptrdiff_t n)
{
    const DC_VF64 zero = {0}, ninf = zero - INFINITY;
#if defined(DC_X86_INTRINSICS) && DC_VBYTES == 64
    return (DC_VF64)_mm512_mask_loadu_pd((__m512d)ninf, (__mmask8)((1u << n) - 1u), x);
#elif defined(DC_X86_INTRINSICS) && DC_VBYTES == 32
    const DC_VIF64 lane = {0, 1, 2, 3};
    const DC_VIF64 keep = lane < (int64_t)n;
    const DC_VF64 v = (DC_VF64)_mm256_maskload_pd(x, (__m256i)keep);
    return DC_VSEL64(keep, v, ninf);
#else
    DC_VF64 v = ninf;
    for (ptrdiff_t j = 0; j < n; j++) v[j] = x[j];
    return v;
#endif
}

/* log1p(u) for u ≥ 0 (NaN stays NaN), in double lanes: what a short row's log S =
 * log1p((at_max - 1) + rest) needs without a libm call per row.
 *     w = 1 + u (rounded),  log1p(u) = log w + (u - (w - 1)) / w   (first-order correction
 *                                       for the rounding of w; exact when w = 1)
 *     w = 2^k · f,  f ∈ [√½, √2),   log w = k·ln 2 + log f
 *     log f = f1 - h + s·(h + R),   f1 = f - 1, h = f1²/2, s = f1 / (2 + f1), z = s²,
 *     R = Σ_{j≥1} 2 z^j / (2j + 1)
 * (log f = 2 atanh s = 2s + s·R, and 2s = f1 - h + s·h.) |s| ≤ 0.172, so z^j/(2j+1)
 * falls below 2^-60 by j = 11. k·ln 2 is split into an exact high part and a low part. */
DC_TARGET DC_VINLINE DC_VF64 DC_ISA_NAME(dc_vlog1p, f64)(DC_VF64 u)
{
    const DC_VF64 zero = {0};
    const DC_VF64 w = u + 1.0;
    const DC_VF64 corr = (u - (w - 1.0)) / w;
    const DC_VIF64 hx = (DC_VIF64)w;
    const DC_VIF64 k = (hx - (int64_t)0x3fe6a09e667f3bcdLL) >> 52; /* f = w / 2^k ∈ [√½, √2) */
    const DC_VF64 f = (DC_VF64)(hx - (k << 52));
    /* k (small, ≥ 0) as a double through the bits of 2^52 + k: no int64 conversion needed */
    const DC_VF64 kd = (DC_VF64)(k + (int64_t)0x4330000000000000LL) - 4503599627370496.0;
    const DC_VF64 f1 = f - 1.0, h = 0.5 * f1 * f1;
    const DC_VF64 s = f1 / (f1 + 2.0), z = s * s;
    DC_VF64 R = zero + 2.0 / 23.0;
    R = R * z + 2.0 / 21.0;
    R = R * z + 2.0 / 19.0;
    R = R * z + 2.0 / 17.0;
    R = R * z + 2.0 / 15.0;
    R = R * z + 2.0 / 13.0;
    R = R * z + 2.0 / 11.0;
    R = R * z + 2.0 / 9.0;
    R = R * z + 2.0 / 7.0;
    R = R * z + 2.0 / 5.0;
    R = R * z + 2.0 / 3.0;
    R = R * z;
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    return kd * ln2_hi + (f1 - (h - (s * (h + R) + (kd * ln2_lo + corr))));
}

/* Rows as double vectors, for the elementwise outputs that are computed in double (see
 * docs/design.md, "Float32 notes"): dc_vload2 reads as many values as two double vectors
 * hold into lo and hi, dc_vstore2 writes them back rounded to the row's type. For float
 * that is one float vector, converted to a double vector twice as wide and split, which
 * GCC (12+) and clang lower to the target's widening conversions (cvtps2pd of each half;
 * GCC 12 splits a half-width float vector's conversion into quarters). The double-width
 * vector stays inside these functions: nothing is computed on it, and it is never passed
 * (its comparisons would be scalarised, and passing it changes the ABI). */
#define DC_VW32 DC_ISA_NAME(dc_vw, f32)
#define DC_VH32 DC_ISA_NAME(dc_vh, f32)
typedef double DC_VW32 __attribute__((vector_size(2 * DC_VBYTES), aligned(8), may_alias));
typedef float DC_VH32 __attribute__((vector_size(DC_VBYTES / 2), aligned(4), may_alias));

DC_TARGET DC_VINLINE void DC_ISA_NAME(dc_vload2, f32)(const float *x, DC_VF64 *lo, DC_VF64 *hi)
{
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
    const DC_VW32 w = __builtin_convertvector(*(const DC_VF32 *)x, DC_VW32);
#if DC_VBYTES == 16
    *lo = __builtin_shufflevector(w, w, 0, 1);
    *hi = __builtin_shufflevector(w, w, 2, 3);
#elif DC_VBYTES == 32
    *lo = __builtin_shufflevector(w, w, 0, 1, 2, 3);
    *hi = __builtin_shufflevector(w, w, 4, 5, 6, 7);
#else
    *lo = __builtin_shufflevector(w, w, 0, 1, 2, 3, 4, 5, 6, 7);
    *hi = __builtin_shufflevector(w, w, 8, 9, 10, 11, 12, 13, 14, 15);
#endif
#else /* older GCC: no __builtin_shufflevector */
    const int half = (int)(sizeof(DC_VF64) / sizeof(double));
    const DC_VF32 v = *(const DC_VF32 *)x;
    for (int j = 0; j < half; j++) {
        (*lo)[j] = (double)v[j];
        (*hi)[j] = (double)v[half + j];
    }
#endif
}

DC_TARGET DC_VINLINE void DC_ISA_NAME(dc_vstore2, f32)(float *out, DC_VF64 lo, DC_VF64 hi)
{
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#if DC_VBYTES == 16
    *(DC_VF32 *)out = __builtin_convertvector(__builtin_shufflevector(lo, hi, 0, 1, 2, 3),
                                              DC_VF32);
#else
    const int half = (int)(sizeof(DC_VF64) / sizeof(double));
    *(DC_VH32 *)out = __builtin_convertvector(lo, DC_VH32);
    *(DC_VH32 *)(out + half) = __builtin_convertvector(hi, DC_VH32);
#endif
#else
    const int half = (int)(sizeof(DC_VF64) / sizeof(double));
    DC_VF32 v;
    for (int j = 0; j < half; j++) {
        v[j] = (float)lo[j];
        v[half + j] = (float)hi[j];
    }
    *(DC_VF32 *)out = v;
#endif
}

DC_TARGET DC_VINLINE void DC_ISA_NAME(dc_vload2, f64)(const double *x, DC_VF64 *lo, DC_VF64 *hi)
{
    *lo = *(const DC_VF64 *)x;
    *hi = *(const DC_VF64 *)(x + sizeof(DC_VF64) / sizeof(double));
}

DC_TARGET DC_VINLINE void DC_ISA_NAME(dc_vstore2, f64)(double *out, DC_VF64 lo, DC_VF64 hi)
{
    *(DC_VF64 *)out = lo;
    *(DC_VF64 *)(out + sizeof(DC_VF64) / sizeof(double)) = hi;
}

#include "simd_log_t.h" /* dc_vlog_f32 / dc_vlog_f64 */

#undef DC_VW32
#undef DC_VH32
#undef DC_VF32
#undef DC_VIF32
#undef DC_VF64
#undef DC_VIF64
#undef DC_VSEL32
#undef DC_VSEL64
#undef DC_VMAXPS
#undef DC_VMAXPD
#undef DC_VMINPS
#undef DC_VMINPD
#endif /* DC_HAVE_VEC */
