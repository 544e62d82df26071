/* divcore/simd_log_t.h: a vector log in the lanes' own precision, for the long-row block
 * loops that need log p of every target entry (the target's entropy Σ a·log p of
 * cross-entropy decompositions and KL). Included by simd_t.h (its DC_VF32 / DC_VF64 names,
 * one instruction set at a time).
 *
 * Both reduce x = 2^k · f with f ∈ [√½, √2) by the exponent bits (subnormal x is scaled
 * by 2^23 / 2^54 first), log x = k·ln 2 + log f, k·ln 2 in an exact high part and a low
 * part added with the small terms. log 0 = -inf, log +inf = +inf, a negative or NaN x
 * gives NaN (as the C library's log, which the scalar tails keep). The double one is also
 * the short-row lanes' log (lanes_math_t.h), with a correction term for their log1p. */
#ifdef DC_HAVE_VEC

/* float: log f = f1 - f1²/2 + f1³·P(f1), f1 = f - 1 ∈ [-0.293, 0.414], P of degree 8 (the
 * Cephes logf polynomial, ≈ 1 ulp; measured against the double log over every positive
 * float, see docs/numerics.md). No division: one vector of floats costs as much as its
 * 9 multiply-adds. */
DC_TARGET DC_VINLINE DC_VF32 DC_ISA_NAME(dc_vlog, f32)(DC_VF32 x)
{
    const DC_VF32 zero = {0}, inf = zero + INFINITY;
    const DC_VIF32 tiny = x < 1.17549435e-38f; /* FLT_MIN */
    const DC_VF32 xs = DC_VSEL32(tiny, x * 8388608.0f, x); /* 2^23 */
    const DC_VIF32 hx = (DC_VIF32)xs;
    const DC_VIF32 k = (hx - (int32_t)0x3f3504f3) >> 23; /* f = xs / 2^k ∈ [√½, √2) */
    const DC_VF32 f = (DC_VF32)(hx - (k << 23));
    const DC_VF32 kf = __builtin_convertvector(k, DC_VF32) - DC_VSEL32(tiny, zero + 23.0f, zero);
    const DC_VF32 f1 = f - 1.0f, z = f1 * f1;
    DC_VF32 y = zero + 7.0376836292e-2f;
    y = y * f1 - 1.1514610310e-1f;
    y = y * f1 + 1.1676998740e-1f;
    y = y * f1 - 1.2420140846e-1f;
    y = y * f1 + 1.4249322787e-1f;
    y = y * f1 - 1.6668057665e-1f;
    y = y * f1 + 2.0000714765e-1f;
    y = y * f1 - 2.4999993993e-1f;
    y = y * f1 + 3.3333331174e-1f;
    y = y * f1 * z;
    y = y + kf * -2.12194440e-4f; /* ln 2 - 0.693359375 */
    y = y - 0.5f * z;
    DC_VF32 r = (f1 + y) + kf * 0.693359375f; /* 0.693359375: 9 bits, k·it is exact */
    r = DC_VSEL32(x == zero, zero - inf, r);
    r = DC_VSEL32(x == inf, inf, r);
    return DC_VSEL32((x < zero) | (x != x), zero + NAN, r);
}

/* double: log x + corr, corr a small correction added with the low-order part (log1p
 * in lanes_math_t.h). x = 2^k · f, f ∈ [√½, √2), log f = f1 - h + s·(h + R),
 * h = f1²/2, s = f1 / (2 + f1), z = s², R = Σ_{j=1..11} 2 z^j / (2j + 1)
 * (log f = 2 atanh s; |s| ≤ 0.172), < 1 ulp; subnormal x is scaled by 2^54 first.
 * The one double-lane log series of the kernels (dc_vlog1p in simd_t.h keeps its own
 * reduction for u ≥ 0). */
DC_TARGET DC_VINLINE DC_VF64 DC_ISA_NAME(dc_vlog_corr, f64)(DC_VF64 x, DC_VF64 corr)
{
    const DC_VF64 zero = {0}, inf = zero + INFINITY;
    const DC_VIF64 tiny = x < 2.2250738585072014e-308; /* DBL_MIN */
    const DC_VF64 xs = DC_VSEL64(tiny, x * 18014398509481984.0, x); /* 2^54 */
    const DC_VIF64 hx = (DC_VIF64)xs;
    const DC_VIF64 k = (hx - (int64_t)0x3fe6a09e667f3bcdLL) >> 52;
    const DC_VF64 f = (DC_VF64)(hx - (k << 52));
    /* k (|k| < 2^11) as a double through the bits of 2^52 + 2^51 + k */
    const DC_VF64 kd = ((DC_VF64)(k + (int64_t)0x4338000000000000LL) - 6755399441055744.0) -
                       DC_VSEL64(tiny, zero + 54.0, zero);
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
    DC_VF64 r = kd * ln2_hi + (f1 - (h - (s * (h + R) + (kd * ln2_lo + corr))));
    r = DC_VSEL64(x == zero, zero - inf, r);
    r = DC_VSEL64(x == inf, inf, r);
    return DC_VSEL64((x < zero) | (x != x), zero + NAN, r);
}

/* double: log x (NaN stays NaN, log 0 = -inf, negative: NaN), < 1 ulp. */
DC_TARGET DC_VINLINE DC_VF64 DC_ISA_NAME(dc_vlog, f64)(DC_VF64 x)
{
    const DC_VF64 zero = {0};
    return DC_ISA_NAME(dc_vlog_corr, f64)(x, zero);
}

#endif /* DC_HAVE_VEC */
