/* divcore/kernels.h: divcore's C-level API, the row kernels for C and C++ callers.
 *
 *     #include "divcore/kernels.h"
 *     cc -std=c99 -O2 -I"$(python -c 'import divcore; print(divcore.get_include())')" app.c -lm
 *
 * Header-only: every function is `static inline` and is compiled into the caller. There is
 * no divcore library to link against and no Python: the header needs only the C library
 * (<math.h>, link with -lm where the platform wants it). Tested warning-free at
 * -Wall -Wextra as C99 and as C++ (extern "C" below) with GCC and clang. Cython callers
 * use the same functions through divcore/kernels.pxd (`from divcore.kernels cimport ...`,
 * with divcore.get_include() on Cython's include path too); see docs/c_api.md.
 *
 * These are the kernels divcore's Python API runs, not a copy of them: divcore._core
 * compiles the same templates (losses_t.h, lse_t.h).
 *
 * ------------------------------------------------------------------ versions and ABI
 * There is no ABI: nothing of divcore is linked, so an extension carries the kernels of
 * the headers it was compiled against and keeps working whatever divcore is installed
 * later (or if none is). DIVCORE_VERSION (below) says which headers those were; it equals
 * divcore.__version__ of the package that shipped them. Upgrading divcore changes an
 * extension's results only when the extension is rebuilt. What is stable within a major
 * version: the names, signatures and documented results of the functions listed below
 * and of the DIVCORE_VERSION* macros. Everything else in these headers (dc_lse_state,
 * dc_soft_result, dc_rows, the dc_block_* helpers, the *_avx2 / *_avx512 builds, DC_*
 * macros) is internal to divcore._core and may change in any release.
 *
 * ------------------------------------------------------------------------ conventions
 * - T is float for the names ending _f32 and double for those ending _f64. A row is n
 *   contiguous values of T; n is a ptrdiff_t >= 0 (Py_ssize_t in the .pxd).
 * - Every value is returned as a double, for float rows too: float rows are summed in
 *   float lanes within a block of 512 values and in double across blocks (the error does
 *   not grow with n). Rows of at most 64 values are summed in one float lane each (the
 *   order a batch of short rows, one row per vector lane, uses: lanes_t.h), so a short row
 *   gives the same bits alone as among many. The Python API rounds a float32 input's results to float32 once,
 *   at the end.
 * - Notation: M = max x, S = Σ exp(x_i - M), lse = M + log S, log q_i = x_i - lse
 *   (q = softmax(x)). Every kernel shifts by M first, so no exp overflows.
 * - A row "has a distribution" when it holds no NaN, no +inf, and at least one finite
 *   value. A row without one (empty, all -inf, or holding a NaN or +inf) gives NaN for
 *   every loss and entropy, an all-NaN row from the row writers, and -inf (no finite
 *   value) or NaN (a NaN or +inf value) from dc_logsumexp_*.
 * - -inf logits are legal (masked classes). 0·log 0 = 0: a class with target probability
 *   exactly 0 contributes nothing, even where its logit is -inf; target mass on a -inf
 *   logit makes the loss +inf.
 * - Nothing is validated: a label must be in [0, n); probabilities are used as given
 *   (not checked for NaN, sign or a sum of 1; the Python API checks them). The kernels
 *   never allocate (a few KiB of stack), keep no state, do not change the floating-point
 *   environment and are safe to call from many threads at once (in Cython: nogil).
 * - The results are the Python API's results for one contiguous row at temperature 1
 *   (divcore.logsumexp, cross_entropy(..., reduction="none"), ...): on x86-64 equal to the
 *   bit with the process at DIVCORE_SIMD=baseline (SSE2 has no fused multiply-add to
 *   contract into, unless the extension is built with -march= flags that add FMA), within
 *   a few ulp at the AVX2 / AVX-512 level (FMA; see "dispatched builds" below).
 *
 * ---------------------------------------------------------------------- the functions
 * double dc_logsumexp_f32(const float *x, ptrdiff_t n)
 * double dc_logsumexp_f64(const double *x, ptrdiff_t n)
 *     log Σ_i exp(x_i) = M + log1p((count(x_i == M) - 1) + Σ_{x_i < M} exp(x_i - M)),
 *     one blocked, max-shifted pass over the row.
 *     Empty or all -inf: -inf (the log of an empty sum). A NaN or a +inf: NaN.
 *
 * double dc_ce_label_f32(const float *x, ptrdiff_t n, ptrdiff_t label)
 * double dc_ce_label_f64(const double *x, ptrdiff_t n, ptrdiff_t label)
 *     Cross-entropy with a class label, -log q_label = (M - x_label) + log S. Both terms
 *     are >= 0; when x_label is the max the loss keeps its relative precision however
 *     small (a loss of 1e-20 comes back as 1e-20, not 0). x_label = -inf gives +inf.
 *     label must be in [0, n) (not checked). Without a distribution (empty, all -inf,
 *     NaN, +inf): NaN, and x[label] is not read.
 *
 * double dc_ce_probs_f32(const float *logits, const float *p, ptrdiff_t n)
 * double dc_ce_probs_f64(const double *logits, const double *p, ptrdiff_t n)
 *     Cross-entropy against a probability row p, H(p, q) = Σ p_i (lse - logits_i),
 *     summed as Σ p_i (M - logits_i) + (Σ p_i) log S (non-negative terms for p >= 0; p
 *     is not renormalised, so a p summing to 2 gives twice the loss). p_i = 0 contributes
 *     0 (also at a -inf logit); p_i > 0 at a -inf logit gives +inf; a NaN in p gives
 *     NaN. Empty, or logits without a distribution: NaN.
 *
 * double dc_kl_logits_f32(const float *target_logits, const float *logits, ptrdiff_t n)
 * double dc_kl_logits_f64(const double *target_logits, const double *logits, ptrdiff_t n)
 *     KL(softmax(target_logits) ‖ softmax(logits)), with t = target_logits, x = logits:
 *         Σ p_i ((t_i - M_t) - (x_i - M_x)) + log S_x - log S_t,   p = softmax(t)
 *     Exactly 0 when the rows are equal or differ by a constant; clamped at 0 from below
 *     (rounding never makes it negative; NaN stays NaN). A class with t_i = -inf
 *     contributes 0; t_i finite where x_i = -inf gives +inf. Empty, or either row without
 *     a distribution: NaN. Argument order: the target (teacher) first.
 *
 * double dc_entropy_logits_f32(const float *x, ptrdiff_t n)
 * double dc_entropy_logits_f64(const double *x, ptrdiff_t n)
 *     Entropy of softmax(x), H(q) = -Σ q_i log q_i = log S + Σ e_i (M - x_i) / S with
 *     e_i = exp(x_i - M) (non-negative terms, computed in double). -inf entries contribute
 *     0. One class: 0; n equal values: log n. Empty or no distribution: NaN.
 *
 * int dc_log_softmax_f32(const float *x, ptrdiff_t n, float *out)
 * int dc_log_softmax_f64(const double *x, ptrdiff_t n, double *out)
 *     Writes out_i = log q_i = (x_i - M) - log S (computed in double, rounded once to T;
 *     the largest entry's value is exactly -log S rounded). -inf in, -inf out. Returns 1
 *     when the row has a distribution; 0 otherwise, with all n outputs NaN (nothing
 *     written for n = 0). out must hold n values; out == x (in place) is allowed, any
 *     other overlap is not.
 *
 * int dc_softmax_f32(const float *x, ptrdiff_t n, float *out)
 * int dc_softmax_f64(const double *x, ptrdiff_t n, double *out)
 *     Writes out_i = q_i = exp(x_i - M) / S; otherwise exactly as dc_log_softmax_*
 *     (return value, NaN row, in place). -inf in, 0 out.
 *
 * ------------------------------------------------------------------ dispatched builds
 * The functions above are the portable build (SSE2 on x86-64, plain C elsewhere). The
 * Python API calls the same templates compiled also for AVX2 and AVX-512 and chosen at
 * run time. To get those, include "divcore/dispatch.h" instead (it includes this file;
 * GCC or clang on x86-64, elsewhere they fall back to the portable build), call
 *     dc_simd_select();   (once, before the first call; returns DC_SIMD_BASELINE,
 *                          DC_SIMD_AVX2 or DC_SIMD_AVX512, capped by the DIVCORE_SIMD
 *                          environment variable: baseline | avx2)
 * and call the dcd_dc_* names, with the same arguments and meaning (the results may differ
 * from the portable build's in the last bits where the AVX builds fuse multiply-adds):
 *     dcd_dc_logsumexp_f32/_f64, dcd_dc_ce_label_f32/_f64, dcd_dc_entropy_logits_f32/_f64,
 *     dcd_dc_ce_probs_f32/_f64, dcd_dc_kl_logits_f32/_f64,
 *     dcd_dc_log_softmax_row_f32/_f64(x, n, exponentiate, out)   (exponentiate = 0:
 *                          dc_log_softmax_*, 1: dc_softmax_*).
 * The selected level is a static variable of dispatch.h, so each translation unit (each
 * Cython module) calls dc_simd_select() itself; until it does, it runs the portable build.
 * Compile with -ffp-contract=fast, as divcore._core is, to get the FMA builds it runs (GCC's
 * default in its GNU C modes, not with -std=c99; clang by default fuses only within one
 * expression).
 */
#ifndef DIVCORE_KERNELS_H
#define DIVCORE_KERNELS_H

#define DIVCORE_VERSION_MAJOR 0
#define DIVCORE_VERSION_MINOR 1
#define DIVCORE_VERSION_PATCH 0
#define DIVCORE_VERSION "0.1.0"
/* One number for #if tests: 10000·major + 100·minor + patch (0.1.0 is 100). */
#define DIVCORE_VERSION_NUMBER \
    (DIVCORE_VERSION_MAJOR * 10000 + DIVCORE_VERSION_MINOR * 100 + DIVCORE_VERSION_PATCH)

/* The C library headers the kernels use, included before the extern "C" block below:
 * a C++ standard library may implement them with templates and overloads, which must not
 * get C linkage. Included here, they are already done when the kernel headers ask again. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "lse.h"
#include "losses.h"
#include "rows.h"

#ifdef __cplusplus
}
#endif

#endif /* DIVCORE_KERNELS_H */
