# divcore/dispatch.pxd: the same row kernels as divcore/kernels.pxd, built also for AVX2
# and AVX-512 and chosen at run time, as divcore's Python API runs them (divcore/dispatch.h;
# GCC or clang on x86-64, elsewhere the portable build).
#
#     from divcore.dispatch cimport dc_simd_select, dcd_dc_logsumexp_f64
#     dc_simd_select()     # once, at module import: the level is per extension module
#
# Until dc_simd_select() has run, every dcd_dc_* call runs the portable build. The
# results are those of the matching dc_* function in kernels.pxd, to within the rounding of
# fused multiply-adds (compile with -ffp-contract=fast to get divcore's own FMA builds).

cdef extern from "divcore/dispatch.h" nogil:
    enum:
        DC_SIMD_BASELINE
        DC_SIMD_AVX2
        DC_SIMD_AVX512

    # Picks the best level the CPU supports, capped by the DIVCORE_SIMD environment
    # variable (baseline | avx2), for this module; returns it.
    int dc_simd_select()
    # "baseline", "avx2" or "avx512".
    const char *dc_simd_name(int level)

    double dcd_dc_logsumexp_f32(const float *x, Py_ssize_t n)
    double dcd_dc_logsumexp_f64(const double *x, Py_ssize_t n)
    double dcd_dc_ce_label_f32(const float *x, Py_ssize_t n, Py_ssize_t label)
    double dcd_dc_ce_label_f64(const double *x, Py_ssize_t n, Py_ssize_t label)
    double dcd_dc_ce_probs_f32(const float *logits, const float *p, Py_ssize_t n)
    double dcd_dc_ce_probs_f64(const double *logits, const double *p, Py_ssize_t n)
    double dcd_dc_kl_logits_f32(const float *target_logits, const float *logits, Py_ssize_t n)
    double dcd_dc_kl_logits_f64(const double *target_logits, const double *logits,
                                Py_ssize_t n)
    double dcd_dc_entropy_logits_f32(const float *x, Py_ssize_t n)
    double dcd_dc_entropy_logits_f64(const double *x, Py_ssize_t n)
    # exponentiate = 0: dc_log_softmax_*, 1: dc_softmax_*.
    int dcd_dc_log_softmax_row_f32(const float *x, Py_ssize_t n, int exponentiate, float *out)
    int dcd_dc_log_softmax_row_f64(const double *x, Py_ssize_t n, int exponentiate,
                                   double *out)
