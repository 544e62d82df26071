/* divcore/kernels.h: divcore's C-level API, the row kernels for C and C++ callers.
 *
 *     #include "divcore/kernels.h"
 *     cc -O2 -I"$(python -c 'import divcore; print(divcore.get_include())')" app.c -lm
 *
 * Header-only: every function is `static` and is compiled into the caller. There is
 * no divcore library to link against and no Python: the header needs only the C library
 * (<math.h>, link with -lm where the platform wants it). Tested warning-free at
 * -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wdouble-promotion -Wfloat-equal
 * -Wcast-qual (and -Wold-style-cast -Wuseless-cast in C++) as C99 and as C++ (extern "C"
 * below) with GCC and clang. Cython callers use the same functions through
 * divcore/kernels.pxd (`from divcore.kernels cimport ...`; the .pxd files are in the
 * installed package, so no include path is needed); see docs/c_api.md.
 *
 * Not under -ffast-math, -Ofast or -ffinite-math-only: the kernels rely on infinities
 * and NaN, which those flags let the compiler assume away, so the headers stop with an
 * #error there (config.h).
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
 * (and the fields of dc_row_stats) and of the DIVCORE_VERSION* macros. Everything else in these headers (dc_lse_state,
 * dc_soft_result, dc_rows, the dc_block_* helpers, the *_avx2 / *_avx512 builds, DC_*
 * macros) is internal to divcore._core and may change in any release.
 *
 * ------------------------------------------------------------------------ conventions
 * - T is float for the names ending _f32 and double for those ending _f64. A row is n
 *   contiguous values of T; n is a ptrdiff_t >= 0 (Py_ssize_t in the .pxd). The names
 *   ending _f16 and _bf16 read rows of half-precision bits (see "half-precision storage").
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
 * - Nothing is validated by the row kernels: a label must be in [0, n) (the batch kernels
 *   check it); probabilities are used as given (not checked for NaN, sign or a sum of 1;
 *   the Python API checks them). The row kernels never allocate (a few KiB of stack; the
 *   batch kernels one row buffer, only for strided or masked rows), keep no state but the
 *   chosen instruction set, do not change the floating-point environment and are safe to
 *   call from many threads at once (in Cython: nogil).
 * - The results are the Python API's results for one contiguous row at temperature 1
 *   (divcore.logsumexp, cross_entropy(..., reduction="none"), ...), to the bit, at the
 *   instruction set both run (see "instruction sets" below).
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
 * double dc_topk_kl_f32(const float *logits, ptrdiff_t n, const int64_t *idx,
 *                       const float *vals, ptrdiff_t k, int is_log, int tail)
 * double dc_topk_kl_f64(const double *logits, ptrdiff_t n, const int64_t *idx,
 *                       const double *vals, ptrdiff_t k, int is_log, int tail)
 * double dc_topk_ce_f32(...), dc_topk_ce_f64(...)   (the same arguments)
 *     KL (resp. cross-entropy) of a sparse teacher against softmax(logits): the teacher
 *     gives k distinct classes idx[0 .. k) (in [0, n): not checked) with probabilities
 *     (is_log 0) or log-probabilities (is_log 1) vals; tail DC_TAIL_BUCKET (the classes
 *     of idx and one "rest" class holding 1 - Σ p and 1 - Σ q, computed without
 *     cancellation), DC_TAIL_DROP (the teacher renormalised on idx) or
 *     DC_TAIL_RENORMALIZE (both renormalised on idx). divcore.kl_divergence(logits,
 *     divcore.TopK(idx, vals, kind=...), tail=..., reduction="none") for one row; the
 *     formulas are in topk.h. Values are not validated. No distribution: NaN.
 * void dc_row_stats_f32(const float *x, ptrdiff_t n, ptrdiff_t label, ptrdiff_t k,
 *                       int64_t *topk_index, double *topk_log_prob, dc_row_stats *out)
 * void dc_row_stats_f64(const double *x, ...)
 *     One read of the row (row_stats.h) for divcore.row_stats: out->logsumexp = M + log S,
 *     out->log_prob = log q_label = -((M - x_label) + log S) (label < 0: none, NaN),
 *     out->entropy = log S + Σ e_i (M - x_i) / S, out->argmax = the first index of the max
 *     (the first NaN if any, numpy's argmax; 0 when every value is -inf, -1 for n = 0);
 *     topk_index / topk_log_prob[0 .. k) (0 <= k <= n, not checked; used as the heap while
 *     the row streams by): the k largest log q_i, best first, ties by the lower index; a
 *     row with fewer than k values above -inf ends with its -inf ones in index order
 *     (log q = -inf). A row without a distribution: NaN log_prob and entropy, top-k
 *     indices 0 .. k-1 with NaN log-probabilities.
 *
 * ------------------------------------------------------------ half-precision storage
 * Rows of n uint16_t values holding IEEE float16 bits (names ending _f16) or bfloat16 bits
 * (_bf16): a numpy float16 / ml_dtypes.bfloat16 array or a torch half tensor, passed as
 * its raw bits.
 *
 * double dc_logsumexp_f16(const uint16_t *x, ptrdiff_t n)          (and _bf16)
 * double dc_ce_label_f16(const uint16_t *x, ptrdiff_t n, ptrdiff_t label)
 * double dc_ce_probs_f16(const uint16_t *logits, const uint16_t *p, ptrdiff_t n)
 * double dc_kl_logits_f16(const uint16_t *target_logits, const uint16_t *logits,
 *                         ptrdiff_t n)
 * double dc_entropy_logits_f16(const uint16_t *x, ptrdiff_t n)
 * int dc_log_softmax_f16(const uint16_t *x, ptrdiff_t n, float *out)
 * int dc_softmax_f16(const uint16_t *x, ptrdiff_t n, float *out)
 *     The _f32 kernel of the same name on the row(s) widened to float, to the bit, at the
 *     same instruction set (so also divcore's Python API on a float16 / bfloat16 row,
 *     which computes it as float32; the API then rounds to float32): formulas, edge cases
 *     and return values as documented above. Widening is exact (half.h: every half value
 *     is a float; float16 by the F16C instruction at the AVX2 / AVX-512 levels where the
 *     CPU has it, found at run time, by an exact scalar conversion at the baseline level
 *     and with DIVCORE_PORTABLE; bfloat16 by a 16-bit shift). They never allocate: a row
 *     of at most DC_HALF_CHUNK (= DC_BLOCK, 512) values is widened into a stack buffer and
 *     handed to the _f32 kernel; a longer row is widened DC_HALF_CHUNK values at a time,
 *     once (the _f32 kernels read a row once), each chunk
 *     run through the _f32 kernel's own block loop, whose running state is the same for
 *     any split of a row at block boundaries (half_t.h). 2 KiB of stack per row, 4 KiB
 *     for dc_ce_probs and dc_kl_logits. The writers widen x into out (n floats) and run
 *     the _f32 writer in place there: out must not overlap x.
 *
 * ------------------------------------------------------------------------ batch kernels
 * Many rows per call, as divcore's Python API walks them (batch.h): short rows (at most
 * 64 values) one per vector lane, long rows in blocks, strided or masked rows read in
 * place or gathered into one buffer (malloc'ed only then). A batch is n_rows rows of n
 * values of T: value (i, c) at byte offset i·row_stride + c·col_stride from the first
 * (numpy's strides); mask is NULL or an unsigned char array of the same shape with its
 * own byte strides (0 = the class is left out, as a -inf logit). Per-row results go to
 * out[0 .. n_rows) (double; NULL: not wanted); the reductions to *red (NULL: not wanted):
 * red->sum, red->weight and red->mean = sum / weight (NaN for weight 0), each the bits
 * of divcore's reduction="sum" / "mean" in double (numpy's pairwise summation; the Python
 * API then rounds a float32 input's result to float32). They return DC_BATCH_OK (0),
 * DC_BATCH_NO_MEMORY (-1), or, for labels, row + 1 of the first label outside [0, n)
 * that is not ignore_index (nothing is computed then). They start no threads: split the
 * rows among your own (each call is independent; see docs/c_api.md).
 *
 * ptrdiff_t dc_batch_logsumexp_f32(const float *x, ptrdiff_t n_rows, ptrdiff_t n,
 *         ptrdiff_t row_stride, ptrdiff_t col_stride, const unsigned char *mask,
 *         ptrdiff_t mask_row_stride, ptrdiff_t mask_col_stride, double *out)
 *     divcore.logsumexp(x, where=mask), per row.
 * ptrdiff_t dc_batch_ce_labels_f32(x, n_rows, n, row_stride, col_stride,
 *         const int64_t *labels, ptrdiff_t label_stride, const float *weight,
 *         int64_t ignore_index, mask, mask_row_stride, mask_col_stride,
 *         double *out, dc_reduced *red)
 *     divcore.cross_entropy(x, labels, weight=weight, ignore_index=ignore_index,
 *     where=mask): per row w_y·(-log q_y) (0 for an ignored row), weight = Σ w_y over the
 *     rows not ignored (the number of such rows without class weights). label_stride
 *     counts labels, not bytes; weight is NULL or n class weights.
 * ptrdiff_t dc_batch_ce_probs_f32(x, n_rows, n, row_stride, col_stride, const float *p,
 *         ptrdiff_t p_row_stride, ptrdiff_t p_col_stride, int is_log,
 *         const float *weight, mask, mask_row_stride, mask_col_stride, out, red)
 *     divcore.cross_entropy(x, p, target_type="log_probs" if is_log else "probs",
 *     weight=weight, where=mask): every row weighs 1. p is not validated.
 * ptrdiff_t dc_batch_kl_logits_f32(x, n_rows, n, row_stride, col_stride,
 *         const float *target_logits, ptrdiff_t t_row_stride, ptrdiff_t t_col_stride,
 *         mask, mask_row_stride, mask_col_stride, out, red)
 *     divcore.kl_divergence(x, target_logits, target_type="logits", where=mask): the
 *     teacher is masked as x is; every row weighs 1.
 * (and the same ending _f64, with double rows and weights.)
 *
 * -------------------------------------------------------------------- instruction sets
 * Every function above runs the best build the CPU has, as divcore's Python API does:
 * the same templates compiled for the portable baseline (SSE2 on x86-64), AVX2+FMA and
 * AVX-512, chosen at run time (dispatch.h; GCC or clang on x86-64, elsewhere the portable
 * build). The level is chosen at the first call of a translation unit (each extension
 * module has its own), capped by the DIVCORE_SIMD environment variable (baseline | avx2),
 * from any thread; dc_simd_select() chooses it now and returns it (DC_SIMD_BASELINE,
 * DC_SIMD_AVX2, DC_SIMD_AVX512), dc_simd_name(level) names it. At each level the bits are
 * the Python API's at that level when the consumer lets the compiler fuse multiply-adds
 * as divcore's build does: -ffp-contract=fast, GCC's default in its GNU modes (not with
 * -std=c99: add -ffp-contract=fast there), and clang's with that flag.
 *
 * #define DIVCORE_PORTABLE before the include (or -DDIVCORE_PORTABLE) to compile only the
 * portable build: every name then gives the same bits on every x86-64 CPU (those of the
 * Python API at DIVCORE_SIMD=baseline), at its speed.
 *
 * dcd_dc_NAME_f32 / _f64 (divcore 0.1's names of the dispatched builds) are aliases of
 * dc_NAME_f32 / _f64 (and dcd_dc_NAME_f16 / _bf16 of the half kernels). Every name is
 * generated from tools/kernel_table.py (dispatch_table.h).
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
#include <stdlib.h>
#include <string.h>
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && \
    !defined(DIVCORE_NO_VECTORS) && !defined(DIVCORE_NO_INTRINSICS)
#include <cpuid.h>
#include <immintrin.h>
#endif

#include "config.h" /* #error under -ffast-math, -Ofast, -ffinite-math-only */

/* Warnings that a C++ or a strict C build raises against code that is right as written
 * here, silenced for these headers only (the includer's own code keeps them):
 *   -Wold-style-cast, -Wuseless-cast: the headers are C, whose casts are C casts; a cast
 *     that is useless for one element type is needed for the other (one template).
 *   -Wfloat-equal: exact comparisons are the algorithm (values equal to the max are
 *     counted, not summed; a weight of exactly 0 removes a class).
 *   -Wdouble-promotion, -Wconversion: float rows are summed in float within a block and
 *     in double across blocks; each widening and each rounding is deliberate.
 *   -Wpedantic: GCC vector extensions and __attribute__((target)) for the AVX builds.
 *   -Wsign-conversion, -Wcast-qual, -Wshadow: nothing to report today; kept quiet so
 *     that a compiler's new diagnostics do not break an includer's -Werror build. */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wfloat-equal"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wcast-qual"
#if defined(__cplusplus)
#pragma GCC diagnostic ignored "-Wold-style-cast"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuseless-cast"
#endif
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

#include "dispatch.h" /* every kernel (lse.h, losses.h, rows.h, batch.h), at every level */

#ifdef __cplusplus
}
#endif

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#endif /* DIVCORE_KERNELS_H */
