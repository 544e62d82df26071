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

DC_TARGET DC_VINLINE DC_VF32 DC_ISA_NAME(dc_vexp, f32)(DC_VF32 x)
{
    const DC_VF32 zero = {0};
    const DC_VF32 lo = zero - 104.0f, hi = zero + 89.0f;
    DC_VF32 xc = DC_VSEL32(x < lo, lo, x);
    xc = DC_VSEL32(xc > hi, hi, xc);
    const float shifter = 12582912.0f;
    const DC_VF32 t = xc * 1.44269504088896341f + shifter;
    const DC_VF32 n = t - shifter;
    DC_VF32 r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    DC_VF32 p = zero + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const DC_VIF32 ni = (DC_VIF32)t - (int32_t)0x4b400000; /* bits of the shifter */
    const DC_VIF32 n1 = ni >> 1, n2 = ni - n1;
    return p * (DC_VF32)((n1 + 127) << 23) * (DC_VF32)((n2 + 127) << 23);
}

DC_TARGET DC_VINLINE DC_VF64 DC_ISA_NAME(dc_vexp, f64)(DC_VF64 x)
{
    const DC_VF64 zero = {0};
    const DC_VF64 lo = zero - 746.0, hi = zero + 710.0;
    DC_VF64 xc = DC_VSEL64(x < lo, lo, x);
    xc = DC_VSEL64(xc > hi, hi, xc);
    const double shifter = 6755399441055744.0;
    const DC_VF64 t = xc * 1.4426950408889634 + shifter;
    const DC_VF64 n = t - shifter;
    DC_VF64 r = xc - n * 6.93147180369123816490e-01;
    r = r - n * 1.90821492927058770002e-10;
    DC_VF64 p = zero + 1.0 / 6227020800.0;
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
    const DC_VF64 n1 = (n * 0.5 + shifter) - shifter;
    const int64_t sbits = (int64_t)0x4338000000000000LL; /* bits of the shifter */
    const DC_VIF64 i1 = (DC_VIF64)(n1 + shifter) - sbits;
    const DC_VIF64 i2 = (DC_VIF64)((n - n1) + shifter) - sbits;
    return p * (DC_VF64)((i1 + 1023) << 52) * (DC_VF64)((i2 + 1023) << 52);
}

#undef DC_VF32
#undef DC_VIF32
#undef DC_VF64
#undef DC_VIF64
#undef DC_VSEL32
#undef DC_VSEL64
#endif /* DC_HAVE_VEC */
