/* divcore/simd.h: explicit SIMD vectors for the hot block loops (GCC and clang).
 *
 * simd_t.h defines, once per instruction set, vector types as wide as its registers
 * (16 bytes for the portable SSE2 build, 32 for AVX2, 64 for AVX-512) and a vector exp
 * that computes exactly what exp.h's scalar dc_exp does (same reduction, same polynomial,
 * same two-factor scaling), so a value is the same in a vector lane and in the scalar
 * tail. Compilers without vector extensions use scalar lane loops (DC_HAVE_VEC unset).
 */
#ifndef DIVCORE_SIMD_H
#define DIVCORE_SIMD_H

#include <stdint.h>
#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && \
    !defined(DIVCORE_NO_VECTORS) && !defined(DIVCORE_NO_INTRINSICS)
/* A few single instructions the vector extensions cannot spell (max with x86's NaN rule,
 * AVX-512's scalef); GCC and clang allow them inside functions with a matching target
 * attribute, without compiling the whole file for that target. */
#include <immintrin.h>
#define DC_X86_INTRINSICS 1
#endif

#if (defined(__GNUC__) || defined(__clang__)) && !defined(DIVCORE_NO_VECTORS)
#define DC_HAVE_VEC 1

/* The vector types and exp of the template being compiled: DC_SFX and DC_ISA_NAME are the
 * includer's, and expand where these are used. */
#define DC_V DC_ISA_NAME(dc_v, DC_SFX)
#define DC_VI DC_ISA_NAME(dc_vi, DC_SFX)
#define DC_VLEN ((ptrdiff_t)(sizeof(DC_V) / sizeof(DC_T)))
#define DC_VSEL(mask, a, b) ((DC_V)(((mask) & (DC_VI)(a)) | (~(mask) & (DC_VI)(b))))
#define DC_VEXP DC_ISA_NAME(dc_vexp, DC_SFX)
#define DC_VEXP_NONPOS DC_ISA_NAME(dc_vexp_nonpos, DC_SFX)
#define DC_VLOG DC_ISA_NAME(dc_vlog, DC_SFX) /* simd_log_t.h */
#define DC_VMAX_KEEP DC_ISA_NAME(dc_vmax_keep, DC_SFX)

/* Vector functions are always inlined: called out of line, a function compiled for one
 * target would pass vectors differently from a caller compiled for another. */
#define DC_VINLINE static inline __attribute__((always_inline))
#endif

#endif /* DIVCORE_SIMD_H */
