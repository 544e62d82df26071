/* divcore/dispatch.h: the kernels built for several instruction sets, chosen at run time.
 *
 * The default build must run on any x86-64 (SSE2), so it is never compiled with
 * -march=native. Instead the same templates (lse_t.h, lanes_t.h, losses_t.h, batch_t.h,
 * half_t.h, ...: isa_t.h) are compiled three times: the portable build (NAME_f32_base,
 * lse.h) and, with a target attribute, NAME_f32_avx2 and NAME_f32_avx512. dcd_NAME_f32 switches on dc_simd_level,
 * and the public names of kernels.h (dc_ce_label_f32, ...) are dcd_* (dispatch_table.h,
 * generated). The level is chosen once per translation unit (each extension module has
 * its own copy of this static variable): by dc_simd_select(), or else by the first
 * dispatched call, so a consumer need not call anything first.
 *
 * GCC and clang on x86-64 only; elsewhere, and with DIVCORE_PORTABLE defined (the same
 * bits on every CPU), every name is the portable kernel.
 *
 * Included by kernels.h inside its extern "C" block; including this file first includes
 * kernels.h, which comes back here.
 */
#ifndef DIVCORE_KERNELS_H
#include "kernels.h"
#elif !defined(DIVCORE_DISPATCH_H)
#define DIVCORE_DISPATCH_H

#include <stdlib.h>
#include <string.h>
#include "lse.h"
#include "losses.h"
#include "rows.h"
#include "batch.h"
#include "topk.h"
#include "row_stats.h"
#include "half_rows.h"

enum { DC_SIMD_BASELINE = 0, DC_SIMD_AVX2 = 1, DC_SIMD_AVX512 = 2 };

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && \
    !defined(DIVCORE_PORTABLE)
#define DC_HAVE_DISPATCH 1

#undef DC_ISA_NAME
#undef DC_TARGET

#define DC_ISA_NAME(name, sfx) DC_CAT3(name, sfx, avx2)
#define DC_TARGET __attribute__((target("avx2,fma")))
#define DC_VBYTES 32
#include "isa_t.h"
#undef DC_ISA_NAME
#undef DC_TARGET
#undef DC_VBYTES

#define DC_ISA_NAME(name, sfx) DC_CAT3(name, sfx, avx512)
#define DC_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")))
#define DC_VBYTES 64
#include "isa_t.h"
#undef DC_ISA_NAME
#undef DC_TARGET
#undef DC_VBYTES

#define DC_ISA_NAME(name, sfx) DC_CAT3(name, sfx, base)
#define DC_TARGET
#endif

/* The level of this translation unit: -1 until chosen. Read and written with relaxed
 * atomics, so that threads making their first calls at once may all choose it (they
 * choose the same) without a data race; a relaxed load costs a plain load. */
static int dc_simd_level = -1;

/* The best level this CPU (and OS) supports, capped by DIVCORE_SIMD=baseline|avx2|avx512. */
static inline int dc_simd_select(void)
{
    int level = DC_SIMD_BASELINE;
#ifdef DC_HAVE_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) level = DC_SIMD_AVX2;
    if (level == DC_SIMD_AVX2 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw"))
        level = DC_SIMD_AVX512;
#endif
    const char *cap = getenv("DIVCORE_SIMD");
    if (cap != NULL) {
        if (strcmp(cap, "baseline") == 0) level = DC_SIMD_BASELINE;
        else if (strcmp(cap, "avx2") == 0 && level > DC_SIMD_AVX2) level = DC_SIMD_AVX2;
    }
#ifdef DC_HAVE_DISPATCH
    __atomic_store_n(&dc_simd_level, level, __ATOMIC_RELAXED);
#else
    dc_simd_level = level;
#endif
    return level;
}

/* The level chosen, choosing it at the first call. */
static inline int dc_simd_current(void)
{
#ifdef DC_HAVE_DISPATCH
    const int level = __atomic_load_n(&dc_simd_level, __ATOMIC_RELAXED);
    return level >= 0 ? level : dc_simd_select();
#else
    return DC_SIMD_BASELINE;
#endif
}

static inline const char *dc_simd_name(int level)
{
    return level == DC_SIMD_AVX512 ? "avx512" : level == DC_SIMD_AVX2 ? "avx2" : "baseline";
}

/* dcd_NAME(args): NAME_avx512, NAME_avx2 or NAME_base, as the level says. */
#ifdef DC_HAVE_DISPATCH
#define DC_DISPATCH(ret, name, params, args)                                   \
    static inline ret dcd_##name params                                        \
    {                                                                          \
        const int level_ = dc_simd_current();                                  \
        if (level_ == DC_SIMD_AVX512) return name##_avx512 args;               \
        if (level_ == DC_SIMD_AVX2) return name##_avx2 args;                   \
        return name##_base args;                                               \
    }
#define DC_DISPATCH_VOID(name, params, args)                                   \
    static inline void dcd_##name params                                       \
    {                                                                          \
        const int level_ = dc_simd_current();                                  \
        if (level_ == DC_SIMD_AVX512) name##_avx512 args;                      \
        else if (level_ == DC_SIMD_AVX2) name##_avx2 args;                     \
        else name##_base args;                                                 \
    }
#else
#define DC_DISPATCH(ret, name, params, args) \
    static inline ret dcd_##name params { return name##_base args; }
#define DC_DISPATCH_VOID(name, params, args) \
    static inline void dcd_##name params { name##_base args; }
#endif

/* The documented name of a public kernel: its dispatched build. */
#define DC_PUBLIC(ret, name, params, args) \
    static inline ret name params { return dcd_##name args; }
#define DC_PUBLIC_VOID(name, params, args) \
    static inline void name params { dcd_##name args; }

#include "dispatch_table.h"

#endif /* DIVCORE_DISPATCH_H */
