/* divcore/dispatch.h: the kernels built for several instruction sets, chosen at run time.
 *
 * The default build must run on any x86-64 (SSE2), so it is never compiled with
 * -march=native. Instead the same templates (lse_t.h, losses_t.h) are compiled twice more
 * with a target attribute, under suffixed names (dc_ce_label_f32_avx2, ..._avx512), and
 * dcd_* wrappers switch on dc_simd_level, set once by dc_simd_select() from the CPU (and
 * the DIVCORE_SIMD environment variable, to force a lower level). The compiler vectorises
 * the block loops for each target: 4, 8 or 16 float lanes.
 *
 * GCC and clang on x86-64 only; elsewhere every dcd_* is the portable kernel.
 */
#ifndef DIVCORE_DISPATCH_H
#define DIVCORE_DISPATCH_H

#include <stdlib.h>
#include <string.h>
#include "kernels.h"

enum { DC_SIMD_BASELINE = 0, DC_SIMD_AVX2 = 1, DC_SIMD_AVX512 = 2 };

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define DC_HAVE_DISPATCH 1

#undef DC_ISA_NAME
#undef DC_TARGET
#define DC_CAT3_(a, b, c) a##_##b##_##c
#define DC_CAT3(a, b, c) DC_CAT3_(a, b, c)

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

#define DC_ISA_NAME(name, sfx) DC_CAT(name, sfx)
#define DC_TARGET
#endif

static int dc_simd_level = DC_SIMD_BASELINE;

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
    dc_simd_level = level;
    return level;
}

static inline const char *dc_simd_name(int level)
{
    return level == DC_SIMD_AVX512 ? "avx512" : level == DC_SIMD_AVX2 ? "avx2" : "baseline";
}

/* dcd_NAME(args): NAME_avx512, NAME_avx2 or NAME, as dc_simd_level says. */
#ifdef DC_HAVE_DISPATCH
#define DC_DISPATCH(ret, name, params, args)                                   \
    static inline ret dcd_##name params                                        \
    {                                                                          \
        if (dc_simd_level == DC_SIMD_AVX512) return name##_avx512 args;        \
        if (dc_simd_level == DC_SIMD_AVX2) return name##_avx2 args;            \
        return name args;                                                      \
    }
#else
#define DC_DISPATCH(ret, name, params, args) \
    static inline ret dcd_##name params { return name args; }
#endif

#define DC_DISPATCH_BOTH(ret_f32, ret_f64, name, params_f32, params_f64, args) \
    DC_DISPATCH(ret_f32, name##_f32, params_f32, args)                          \
    DC_DISPATCH(ret_f64, name##_f64, params_f64, args)

DC_DISPATCH_BOTH(void, void, dc_lse_update, (dc_lse_state *st, const float *x, ptrdiff_t n),
                 (dc_lse_state *st, const double *x, ptrdiff_t n), (st, x, n))
DC_DISPATCH_BOTH(double, double, dc_ce_probs, (const float *x, const float *p, ptrdiff_t n),
                 (const double *x, const double *p, ptrdiff_t n), (x, p, n))
DC_DISPATCH_BOTH(double, double, dc_kl_logits, (const float *t, const float *x, ptrdiff_t n),
                 (const double *t, const double *x, ptrdiff_t n), (t, x, n))
DC_DISPATCH_BOTH(double, double, dc_logsumexp, (const float *x, ptrdiff_t n),
                 (const double *x, ptrdiff_t n), (x, n))
DC_DISPATCH_BOTH(void, void, dc_lse_scan_rows,
                 (const dc_rows *r, ptrdiff_t first, ptrdiff_t count, dc_lse_state *out,
                  double *log_sum),
                 (const dc_rows *r, ptrdiff_t first, ptrdiff_t count, dc_lse_state *out,
                  double *log_sum),
                 (r, first, count, out, log_sum))
DC_DISPATCH_BOTH(void, void, dc_soft_probs_rows,
                 (const dc_rows *rx, const dc_rows *rt, const float *w, ptrdiff_t first,
                  ptrdiff_t count, dc_soft_result *res),
                 (const dc_rows *rx, const dc_rows *rt, const double *w, ptrdiff_t first,
                  ptrdiff_t count, dc_soft_result *res),
                 (rx, rt, w, first, count, res))
DC_DISPATCH_BOTH(int, int, dc_log_softmax_of_state,
                 (const float *x, ptrdiff_t n, const dc_lse_state *st, double log_sum, int e,
                  float *out),
                 (const double *x, ptrdiff_t n, const dc_lse_state *st, double log_sum, int e,
                  double *out),
                 (x, n, st, log_sum, e, out))
DC_DISPATCH_BOTH(int, int, dc_log_softmax_row,
                 (const float *x, ptrdiff_t n, int e, float *out),
                 (const double *x, ptrdiff_t n, int e, double *out), (x, n, e, out))
DC_DISPATCH_BOTH(double, double, dc_ce_label, (const float *x, ptrdiff_t n, ptrdiff_t y),
                 (const double *x, ptrdiff_t n, ptrdiff_t y), (x, n, y))
DC_DISPATCH_BOTH(void, void, dc_soft_target_row,
                 (const float *x, const float *t, const float *w, ptrdiff_t n, int is_log,
                  int want_h, dc_soft_result *r),
                 (const double *x, const double *t, const double *w, ptrdiff_t n, int is_log,
                  int want_h, dc_soft_result *r),
                 (x, t, w, n, is_log, want_h, r))
DC_DISPATCH_BOTH(void, void, dc_soft_logits,
                 (const float *x, const float *t, const float *w, ptrdiff_t n,
                  dc_soft_result *r),
                 (const double *x, const double *t, const double *w, ptrdiff_t n,
                  dc_soft_result *r),
                 (x, t, w, n, r))
DC_DISPATCH_BOTH(void, void, dc_kl_reverse_target,
                 (const float *x, const float *t, ptrdiff_t n, int is_log, dc_soft_result *r),
                 (const double *x, const double *t, ptrdiff_t n, int is_log,
                  dc_soft_result *r),
                 (x, t, n, is_log, r))
DC_DISPATCH_BOTH(void, void, dc_target_check,
                 (const float *t, ptrdiff_t n, int is_log, double *psum, ptrdiff_t *nbad),
                 (const double *t, ptrdiff_t n, int is_log, double *psum, ptrdiff_t *nbad),
                 (t, n, is_log, psum, nbad))
DC_DISPATCH_BOTH(double, double, dc_entropy_logits, (const float *x, ptrdiff_t n),
                 (const double *x, ptrdiff_t n), (x, n))
DC_DISPATCH_BOTH(double, double, dc_entropy_target,
                 (const float *t, ptrdiff_t n, int is_log, double *psum, ptrdiff_t *nbad),
                 (const double *t, ptrdiff_t n, int is_log, double *psum, ptrdiff_t *nbad),
                 (t, n, is_log, psum, nbad))
DC_DISPATCH_BOTH(double, double, dc_js_row,
                 (const float *x, const float *t, ptrdiff_t n, int kind, double beta,
                  double *psum, ptrdiff_t *nbad),
                 (const double *x, const double *t, ptrdiff_t n, int kind, double beta,
                  double *psum, ptrdiff_t *nbad),
                 (x, t, n, kind, beta, psum, nbad))
DC_DISPATCH_BOTH(void, void, dc_soft_grad,
                 (const float *x, const float *t, const float *w, ptrdiff_t n, int kind,
                  const dc_soft_result *r, double scale, float *g),
                 (const double *x, const double *t, const double *w, ptrdiff_t n, int kind,
                  const dc_soft_result *r, double scale, double *g),
                 (x, t, w, n, kind, r, scale, g))
DC_DISPATCH_BOTH(double, double, dc_ce_label_grad,
                 (const float *x, ptrdiff_t n, ptrdiff_t y, double scale, float *g),
                 (const double *x, ptrdiff_t n, ptrdiff_t y, double scale, double *g),
                 (x, n, y, scale, g))
DC_DISPATCH_BOTH(void, void, dc_kl_reverse_grad,
                 (const float *x, const float *t, ptrdiff_t n, int kind,
                  const dc_soft_result *r, double kl, double scale, float *g),
                 (const double *x, const double *t, ptrdiff_t n, int kind,
                  const dc_soft_result *r, double kl, double scale, double *g),
                 (x, t, n, kind, r, kl, scale, g))

/* ------------------------------------------------ short rows in lanes, more operations
 * (lanes_soft_t.h, lanes_grad_t.h): the portable build (lanes_more.h) here, where
 * DC_ISA_NAME and DC_TARGET name it again; isa_t.h built the AVX2 and AVX-512 ones. */
#include "lanes_more.h"

DC_DISPATCH_BOTH(void, void, dc_logits_rows,
                 (const dc_rows *rx, const dc_rows *rt, const float *w, ptrdiff_t first,
                  ptrdiff_t count, dc_soft_result *res),
                 (const dc_rows *rx, const dc_rows *rt, const double *w, ptrdiff_t first,
                  ptrdiff_t count, dc_soft_result *res),
                 (rx, rt, w, first, count, res))
DC_DISPATCH_BOTH(void, void, dc_entropy_logits_rows,
                 (const dc_rows *r, ptrdiff_t first, ptrdiff_t count, double *out),
                 (const dc_rows *r, ptrdiff_t first, ptrdiff_t count, double *out),
                 (r, first, count, out))
DC_DISPATCH_BOTH(void, void, dc_ce_label_grad_rows,
                 (const dc_rows *r, const ptrdiff_t *labels, const double *scale,
                  ptrdiff_t first, ptrdiff_t count, double *loss, float *g),
                 (const dc_rows *r, const ptrdiff_t *labels, const double *scale,
                  ptrdiff_t first, ptrdiff_t count, double *loss, double *g),
                 (r, labels, scale, first, count, loss, g))
DC_DISPATCH_BOTH(void, void, dc_soft_grad_rows,
                 (const dc_rows *rx, const dc_rows *rt, const float *w, int kind,
                  const dc_soft_result *res, double scale, ptrdiff_t first, ptrdiff_t count,
                  float *g),
                 (const dc_rows *rx, const dc_rows *rt, const double *w, int kind,
                  const dc_soft_result *res, double scale, ptrdiff_t first, ptrdiff_t count,
                  double *g),
                 (rx, rt, w, kind, res, scale, first, count, g))

DC_DISPATCH_BOTH(void, void, dc_soft_target_rows,
                 (const dc_rows *rx, const dc_rows *rt, const float *w, int is_log, int want_h,
                  ptrdiff_t first, ptrdiff_t count, dc_soft_result *res),
                 (const dc_rows *rx, const dc_rows *rt, const double *w, int is_log,
                  int want_h, ptrdiff_t first, ptrdiff_t count, dc_soft_result *res),
                 (rx, rt, w, is_log, want_h, first, count, res))
DC_DISPATCH_BOTH(void, void, dc_kl_reverse_rows,
                 (const dc_rows *rx, const dc_rows *rt, int is_log, ptrdiff_t first,
                  ptrdiff_t count, dc_soft_result *res),
                 (const dc_rows *rx, const dc_rows *rt, int is_log, ptrdiff_t first,
                  ptrdiff_t count, dc_soft_result *res),
                 (rx, rt, is_log, first, count, res))
DC_DISPATCH_BOTH(void, void, dc_kl_reverse_grad_rows,
                 (const dc_rows *rx, const dc_rows *rt, int kind, const dc_soft_result *res,
                  double scale, ptrdiff_t first, ptrdiff_t count, float *g),
                 (const dc_rows *rx, const dc_rows *rt, int kind, const dc_soft_result *res,
                  double scale, ptrdiff_t first, ptrdiff_t count, double *g),
                 (rx, rt, kind, res, scale, first, count, g))

DC_DISPATCH_BOTH(void, void, dc_js_rows,
                 (const dc_rows *rx, const dc_rows *rt, int kind, double beta, ptrdiff_t first,
                  ptrdiff_t count, double *js, double *psum, ptrdiff_t *nbad),
                 (const dc_rows *rx, const dc_rows *rt, int kind, double beta, ptrdiff_t first,
                  ptrdiff_t count, double *js, double *psum, ptrdiff_t *nbad),
                 (rx, rt, kind, beta, first, count, js, psum, nbad))

#endif /* DIVCORE_DISPATCH_H */
