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

/* exp.h's dc_exp_f32 / dc_exp_f64 lane by lane: the same constants and polynomial. */
DC_TARGET DC_VINLINE DC_VF32 DC_ISA_NAME(dc_vexp, f32)(DC_VF32 x)
{
    const DC_VF32 zero = {0};
    const DC_VF32 lo = zero + DC_EXP_F32_LO, hi = zero + DC_EXP_F32_HI;
    DC_VF32 xc = DC_VSEL32(x < lo, lo, x);
    xc = DC_VSEL32(xc > hi, hi, xc);
    const DC_VF32 t = xc * DC_EXP_F32_LOG2E + DC_EXP_F32_SHIFTER;
    const DC_VF32 n = t - DC_EXP_F32_SHIFTER;
    DC_VF32 r = xc - n * DC_EXP_F32_LN2_HI;
    r = r - n * DC_EXP_F32_LN2_LO;
    DC_VF32 p;
    DC_EXP_F32_POLY(p, r, zero);
    const DC_VIF32 ni = (DC_VIF32)t - (int32_t)DC_EXP_F32_SHIFTER_BITS;
    const DC_VIF32 n1 = ni >> 1, n2 = ni - n1;
    return p * (DC_VF32)((n1 + 127) << 23) * (DC_VF32)((n2 + 127) << 23);
}

DC_TARGET DC_VINLINE DC_VF64 DC_ISA_NAME(dc_vexp, f64)(DC_VF64 x)
{
    const DC_VF64 zero = {0};
    const DC_VF64 lo = zero + DC_EXP_F64_LO, hi = zero + DC_EXP_F64_HI;
    DC_VF64 xc = DC_VSEL64(x < lo, lo, x);
    xc = DC_VSEL64(xc > hi, hi, xc);
    const DC_VF64 n = (xc * DC_EXP_F64_LOG2E + DC_EXP_F64_SHIFTER) - DC_EXP_F64_SHIFTER;
    DC_VF64 r = xc - n * DC_EXP_F64_LN2_HI;
    r = r - n * DC_EXP_F64_LN2_LO;
    DC_VF64 p;
    DC_EXP_F64_POLY(p, r, zero);
    const DC_VF64 n1 = (n * 0.5 + DC_EXP_F64_SHIFTER) - DC_EXP_F64_SHIFTER;
    const int64_t sbits = (int64_t)DC_EXP_F64_SHIFTER_BITS;
    const DC_VIF64 i1 = (DC_VIF64)(n1 + DC_EXP_F64_SHIFTER) - sbits;
    const DC_VIF64 i2 = (DC_VIF64)((n - n1) + DC_EXP_F64_SHIFTER) - sbits;
    return p * (DC_VF64)((i1 + 1023) << 52) * (DC_VF64)((i2 + 1023) << 52);
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

#undef DC_VW32
#undef DC_VH32
#undef DC_VF32
#undef DC_VIF32
#undef DC_VF64
#undef DC_VIF64
#undef DC_VSEL32
#undef DC_VSEL64
#endif /* DC_HAVE_VEC */
