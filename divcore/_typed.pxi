# divcore._core, part 2: the fused type `real` and one typed name per dispatched kernel, so
# the batch driver is written once for float and double rows.

ctypedef fused real:
    float
    double


# ------------------------------------------------------------ typed views of the kernels

cdef inline const real *row_of(const dc_rows *r, Py_ssize_t i, real fill,
                               real *buf) noexcept nogil:
    if real is float:
        return dc_row_f32(r, i, fill, buf)
    else:
        return dc_row_f64(r, i, fill, buf)


cdef inline double row_value(const dc_rows *r, Py_ssize_t i, Py_ssize_t c,
                             real fill) noexcept nogil:
    if real is float:
        return dc_row_value_f32(r, i, c, fill)
    else:
        return dc_row_value_f64(r, i, c, fill)


cdef inline void lse_scan_rows(const dc_rows *r, Py_ssize_t first, Py_ssize_t count,
                               dc_lse_state *out, double *log_sum, real *typed) noexcept nogil:
    if real is float:
        dcd_dc_lse_scan_rows_f32(r, first, count, out, log_sum)
    else:
        dcd_dc_lse_scan_rows_f64(r, first, count, out, log_sum)


cdef inline void soft_probs_rows(const dc_rows *rx, const dc_rows *rt, const real *w,
                                 Py_ssize_t first, Py_ssize_t count,
                                 dc_soft_result *res) noexcept nogil:
    if real is float:
        dcd_dc_soft_probs_rows_f32(rx, rt, w, first, count, res)
    else:
        dcd_dc_soft_probs_rows_f64(rx, rt, w, first, count, res)


cdef inline void lse_scan_adjacent(const real *x, Py_ssize_t n, Py_ssize_t cs,
                                   Py_ssize_t count, dc_lse_state *st) noexcept nogil:
    if real is float:
        dcd_dc_lse_scan_adjacent_f32(x, n, cs, count, st)
    else:
        dcd_dc_lse_scan_adjacent_f64(x, n, cs, count, st)


cdef inline void soft_logits_adjacent(const real *x, const real *t, Py_ssize_t n,
                                      Py_ssize_t xcs, Py_ssize_t tcs, Py_ssize_t count,
                                      dc_soft_result *res) noexcept nogil:
    if real is float:
        dcd_dc_soft_logits_adjacent_f32(x, t, n, xcs, tcs, count, res)
    else:
        dcd_dc_soft_logits_adjacent_f64(x, t, n, xcs, tcs, count, res)


cdef inline void split_part(const real *x, const real *t, const real *w, Py_ssize_t n,
                            int kind, int want_h, dc_soft_split *part) noexcept nogil:
    if real is float:
        dcd_dc_split_part_f32(x, t, w, n, kind, want_h, part)
    else:
        dcd_dc_split_part_f64(x, t, w, n, kind, want_h, part)


cdef inline void split_join(dc_soft_split *parts, Py_ssize_t count, int kind, int weighted,
                            int want_h, dc_soft_result *res, const real *typed) noexcept nogil:
    if real is float:
        dcd_dc_split_join_f32(parts, count, kind, weighted, want_h, res)
    else:
        dcd_dc_split_join_f64(parts, count, kind, weighted, want_h, res)


cdef inline void split_js_part(const real *x, const real *t, Py_ssize_t n, int kind,
                               double beta, const dc_lse_state *sx, const dc_lse_state *st,
                               int vec, double *sums) noexcept nogil:
    if real is float:
        dcd_dc_split_js_part_f32(x, t, n, kind, beta, sx, st, vec, sums)
    else:
        dcd_dc_split_js_part_f64(x, t, n, kind, beta, sx, st, vec, sums)


cdef inline void split_kl_reverse_part(const real *x, const real *t, Py_ssize_t n,
                                       int is_log, const dc_lse_state *sx,
                                       double *sums) noexcept nogil:
    if real is float:
        dcd_dc_split_kl_reverse_part_f32(x, t, n, is_log, sx, sums)
    else:
        dcd_dc_split_kl_reverse_part_f64(x, t, n, is_log, sx, sums)


cdef inline void log_softmax_adjacent(const real *x, Py_ssize_t count, Py_ssize_t k,
                                      Py_ssize_t n, const double *m, const double *c,
                                      int exponentiate, real *out) noexcept nogil:
    if real is float:
        dcd_dc_log_softmax_adjacent_f32(x, count, k, n, m, c, exponentiate, out)
    else:
        dcd_dc_log_softmax_adjacent_f64(x, count, k, n, m, c, exponentiate, out)


cdef inline void lse_update(dc_lse_state *st, const real *x, Py_ssize_t n) noexcept nogil:
    if real is float:
        dcd_dc_lse_update_f32(st, x, n)
    else:
        dcd_dc_lse_update_f64(st, x, n)


cdef inline void log_softmax_of_state(const real *x, Py_ssize_t n, const dc_lse_state *st,
                                      double log_sum, int exponentiate,
                                      real *out) noexcept nogil:
    if real is float:
        dcd_dc_log_softmax_of_state_f32(x, n, st, log_sum, exponentiate, out)
    else:
        dcd_dc_log_softmax_of_state_f64(x, n, st, log_sum, exponentiate, out)


cdef inline void smoothed_target(const dc_rows *r, Py_ssize_t i, const real *p,
                                 Py_ssize_t label, double eps, real *out) noexcept nogil:
    if real is float:
        dc_smoothed_target_f32(r, i, p, label, eps, out)
    else:
        dc_smoothed_target_f64(r, i, p, label, eps, out)


cdef inline double logsumexp_row(const real *x, Py_ssize_t n) noexcept nogil:
    if real is float:
        return dcd_dc_logsumexp_f32(x, n)
    else:
        return dcd_dc_logsumexp_f64(x, n)


cdef inline void log_softmax_row(const real *x, Py_ssize_t n, int exponentiate,
                                 real *out) noexcept nogil:
    if real is float:
        dcd_dc_log_softmax_row_f32(x, n, exponentiate, out)
    else:
        dcd_dc_log_softmax_row_f64(x, n, exponentiate, out)


cdef inline double ce_label_row(const real *x, Py_ssize_t n, Py_ssize_t label) noexcept nogil:
    if real is float:
        return dcd_dc_ce_label_f32(x, n, label)
    else:
        return dcd_dc_ce_label_f64(x, n, label)


cdef inline void soft_target_row(const real *x, const real *t, const real *w, Py_ssize_t n,
                                 int is_log, int want_h, dc_soft_result *res) noexcept nogil:
    if real is float:
        dcd_dc_soft_target_row_f32(x, t, w, n, is_log, want_h, res)
    else:
        dcd_dc_soft_target_row_f64(x, t, w, n, is_log, want_h, res)


cdef inline void soft_logits_row(const real *x, const real *t, const real *w, Py_ssize_t n,
                                 dc_soft_result *res) noexcept nogil:
    if real is float:
        dcd_dc_soft_logits_f32(x, t, w, n, res)
    else:
        dcd_dc_soft_logits_f64(x, t, w, n, res)


cdef inline void kl_reverse_row(const real *x, const real *t, Py_ssize_t n, int is_log,
                                dc_soft_result *res) noexcept nogil:
    if real is float:
        dcd_dc_kl_reverse_target_f32(x, t, n, is_log, res)
    else:
        dcd_dc_kl_reverse_target_f64(x, t, n, is_log, res)


cdef inline void target_check_row(const real *t, Py_ssize_t n, int is_log, double *psum,
                                  Py_ssize_t *nbad) noexcept nogil:
    if real is float:
        dcd_dc_target_check_f32(t, n, is_log, psum, nbad)
    else:
        dcd_dc_target_check_f64(t, n, is_log, psum, nbad)


cdef inline double entropy_logits_row(const real *x, Py_ssize_t n) noexcept nogil:
    if real is float:
        return dcd_dc_entropy_logits_f32(x, n)
    else:
        return dcd_dc_entropy_logits_f64(x, n)


cdef inline double entropy_target_row(const real *t, Py_ssize_t n, int is_log, double *psum,
                                      Py_ssize_t *nbad) noexcept nogil:
    if real is float:
        return dcd_dc_entropy_target_f32(t, n, is_log, psum, nbad)
    else:
        return dcd_dc_entropy_target_f64(t, n, is_log, psum, nbad)


cdef inline double js_row(const real *x, const real *t, Py_ssize_t n, int kind, double beta,
                          double *psum, Py_ssize_t *nbad) noexcept nogil:
    if real is float:
        return dcd_dc_js_row_f32(x, t, n, kind, beta, psum, nbad)
    else:
        return dcd_dc_js_row_f64(x, t, n, kind, beta, psum, nbad)


cdef inline void soft_grad_row(const real *x, const real *t, const real *w, Py_ssize_t n,
                               int kind, const dc_soft_result *r, double scale,
                               real *g) noexcept nogil:
    if real is float:
        dcd_dc_soft_grad_f32(x, t, w, n, kind, r, scale, g)
    else:
        dcd_dc_soft_grad_f64(x, t, w, n, kind, r, scale, g)


cdef inline double ce_label_grad_row(const real *x, Py_ssize_t n, Py_ssize_t label,
                                     double scale, real *g) noexcept nogil:
    if real is float:
        return dcd_dc_ce_label_grad_f32(x, n, label, scale, g)
    else:
        return dcd_dc_ce_label_grad_f64(x, n, label, scale, g)


cdef inline void kl_reverse_grad_row(const real *x, const real *t, Py_ssize_t n, int kind,
                                     const dc_soft_result *r, double kl, double scale,
                                     real *g) noexcept nogil:
    if real is float:
        dcd_dc_kl_reverse_grad_f32(x, t, n, kind, r, kl, scale, g)
    else:
        dcd_dc_kl_reverse_grad_f64(x, t, n, kind, r, kl, scale, g)


cdef int target_kind_code(str target_type) except -1:
    if target_type == "probs":
        return DC_TARGET_PROBS
    if target_type == "log_probs":
        return DC_TARGET_LOG_PROBS
    if target_type == "logits":
        return DC_TARGET_LOGITS
    raise ValueError(f"target_type {target_type!r} has no row kernel")
