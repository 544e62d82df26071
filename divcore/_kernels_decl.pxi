# The C kernels as divcore._core sees them (src/divcore/dispatch.h): the structs, the
# run-time dispatched dcd_* row kernels and the helpers the batch driver calls.

cdef extern from "divcore/dispatch.h" nogil:
    ctypedef struct dc_rows:
        const char *data
        Py_ssize_t row_stride
        Py_ssize_t col_stride
        Py_ssize_t n
        const unsigned char *mask
        Py_ssize_t mask_row_stride
        Py_ssize_t mask_col_stride
        double temperature

    ctypedef struct dc_soft_result:
        double ce
        double h
        double kl
        double psum
        Py_ssize_t nbad
        double asum
        double max
        double sum
        double tmax
        double tsum

    const float *dc_row_f32(const dc_rows *r, Py_ssize_t i, float fill, float *buf)
    const double *dc_row_f64(const dc_rows *r, Py_ssize_t i, double fill, double *buf)
    void dc_smoothed_target_f32(const dc_rows *r, Py_ssize_t i, const float *p,
                                Py_ssize_t label, double eps, float *out)
    void dc_smoothed_target_f64(const dc_rows *r, Py_ssize_t i, const double *p,
                                Py_ssize_t label, double eps, double *out)

    double dcd_dc_logsumexp_f32(const float *x, Py_ssize_t n)
    double dcd_dc_logsumexp_f64(const double *x, Py_ssize_t n)
    int dcd_dc_log_softmax_row_f32(const float *x, Py_ssize_t n, int exponentiate, float *out)
    int dcd_dc_log_softmax_row_f64(const double *x, Py_ssize_t n, int exponentiate, double *out)
    double dcd_dc_ce_label_f32(const float *x, Py_ssize_t n, Py_ssize_t label)
    double dcd_dc_ce_label_f64(const double *x, Py_ssize_t n, Py_ssize_t label)
    void dcd_dc_soft_target_row_f32(const float *x, const float *t, const float *w, Py_ssize_t n,
                                int is_log, int want_h, dc_soft_result *res)
    void dcd_dc_soft_target_row_f64(const double *x, const double *t, const double *w,
                                Py_ssize_t n, int is_log, int want_h, dc_soft_result *res)
    void dcd_dc_soft_logits_f32(const float *x, const float *t, const float *w, Py_ssize_t n,
                            dc_soft_result *res)
    void dcd_dc_soft_logits_f64(const double *x, const double *t, const double *w, Py_ssize_t n,
                            dc_soft_result *res)
    void dcd_dc_kl_reverse_target_f32(const float *x, const float *t, Py_ssize_t n, int is_log,
                                  dc_soft_result *res)
    void dcd_dc_kl_reverse_target_f64(const double *x, const double *t, Py_ssize_t n, int is_log,
                                  dc_soft_result *res)
    void dcd_dc_target_check_f32(const float *t, Py_ssize_t n, int is_log, double *psum,
                             Py_ssize_t *nbad)
    void dcd_dc_target_check_f64(const double *t, Py_ssize_t n, int is_log, double *psum,
                             Py_ssize_t *nbad)
    double dcd_dc_entropy_logits_f32(const float *x, Py_ssize_t n)
    double dcd_dc_entropy_logits_f64(const double *x, Py_ssize_t n)
    double dcd_dc_entropy_target_f32(const float *t, Py_ssize_t n, int is_log, double *psum,
                                 Py_ssize_t *nbad)
    double dcd_dc_entropy_target_f64(const double *t, Py_ssize_t n, int is_log, double *psum,
                                 Py_ssize_t *nbad)

    double dcd_dc_js_row_f32(const float *x, const float *t, Py_ssize_t n, int kind, double beta,
                         double *psum, Py_ssize_t *nbad)
    double dcd_dc_js_row_f64(const double *x, const double *t, Py_ssize_t n, int kind,
                         double beta, double *psum, Py_ssize_t *nbad)
    void dcd_dc_soft_grad_f32(const float *x, const float *t, const float *w, Py_ssize_t n,
                          int kind, const dc_soft_result *r, double scale, float *g)
    void dcd_dc_soft_grad_f64(const double *x, const double *t, const double *w, Py_ssize_t n,
                          int kind, const dc_soft_result *r, double scale, double *g)
    double dcd_dc_ce_label_grad_f32(const float *x, Py_ssize_t n, Py_ssize_t label, double scale,
                                float *g)
    double dcd_dc_ce_label_grad_f64(const double *x, Py_ssize_t n, Py_ssize_t label, double scale,
                                double *g)
    void dcd_dc_kl_reverse_grad_f32(const float *x, const float *t, Py_ssize_t n, int kind,
                                const dc_soft_result *r, double kl, double scale, float *g)
    void dcd_dc_kl_reverse_grad_f64(const double *x, const double *t, Py_ssize_t n, int kind,
                                const dc_soft_result *r, double kl, double scale, double *g)
    ctypedef struct dc_lse_state:
        double max
        double at_max
        double rest
        double rest_c
        int nan
    enum:
        DC_LANES_MAX_N
    void dcd_dc_lse_scan_rows_f32(const dc_rows *r, Py_ssize_t first, Py_ssize_t count,
                                  dc_lse_state *out, double *log_sum)
    void dcd_dc_lse_scan_rows_f64(const dc_rows *r, Py_ssize_t first, Py_ssize_t count,
                                  dc_lse_state *out, double *log_sum)
    void dcd_dc_soft_probs_rows_f32(const dc_rows *rx, const dc_rows *rt, const float *w,
                                    Py_ssize_t first, Py_ssize_t count, dc_soft_result *res)
    void dcd_dc_soft_probs_rows_f64(const dc_rows *rx, const dc_rows *rt, const double *w,
                                    Py_ssize_t first, Py_ssize_t count, dc_soft_result *res)
    int dcd_dc_log_softmax_of_state_f32(const float *x, Py_ssize_t n, const dc_lse_state *st,
                                        double log_sum, int exponentiate, float *out)
    int dcd_dc_log_softmax_of_state_f64(const double *x, Py_ssize_t n, const dc_lse_state *st,
                                        double log_sum, int exponentiate, double *out)
    void dc_lse_init(dc_lse_state *st)
    void dc_lse_merge(dc_lse_state *into, const dc_lse_state *part)
    int dc_lse_ok(const dc_lse_state *st)
    double dc_lse_log_sum(const dc_lse_state *st)
    void dcd_dc_lse_update_f32(dc_lse_state *st, const float *x, Py_ssize_t n)
    void dcd_dc_lse_update_f64(dc_lse_state *st, const double *x, Py_ssize_t n)
    enum:
        DC_BLOCK
    double dc_lse_value_of_log_sum(const dc_lse_state *st, double log_sum)
    double dc_ce_label_of_log_sum(const dc_lse_state *st, double log_sum, double x_y)
    float dc_row_value_f32(const dc_rows *r, Py_ssize_t i, Py_ssize_t c, float fill)
    double dc_row_value_f64(const dc_rows *r, Py_ssize_t i, Py_ssize_t c, double fill)
    double dc_bce_logit(double x, double y, double pw)
    int dc_simd_select()
    const char *dc_simd_name(int level)
    enum:
        DC_TARGET_PROBS
        DC_TARGET_LOG_PROBS
        DC_TARGET_LOGITS


# Short rows in lanes, more operations (src/divcore/lanes_soft_t.h, lanes_grad_t.h).
cdef extern from "divcore/dispatch.h" nogil:
    void dcd_dc_logits_rows_f32(const dc_rows *rx, const dc_rows *rt, const float *w,
                                Py_ssize_t first, Py_ssize_t count, dc_soft_result *res)
    void dcd_dc_logits_rows_f64(const dc_rows *rx, const dc_rows *rt, const double *w,
                                Py_ssize_t first, Py_ssize_t count, dc_soft_result *res)
    void dcd_dc_entropy_logits_rows_f32(const dc_rows *r, Py_ssize_t first, Py_ssize_t count,
                                        double *out)
    void dcd_dc_entropy_logits_rows_f64(const dc_rows *r, Py_ssize_t first, Py_ssize_t count,
                                        double *out)
    void dcd_dc_ce_label_grad_rows_f32(const dc_rows *r, const Py_ssize_t *labels,
                                       const double *scale, Py_ssize_t first, Py_ssize_t count,
                                       double *loss, float *g)
    void dcd_dc_ce_label_grad_rows_f64(const dc_rows *r, const Py_ssize_t *labels,
                                       const double *scale, Py_ssize_t first, Py_ssize_t count,
                                       double *loss, double *g)
    void dcd_dc_soft_grad_rows_f32(const dc_rows *rx, const dc_rows *rt, const float *w,
                                   int kind, const dc_soft_result *res, double scale,
                                   Py_ssize_t first, Py_ssize_t count, float *g)
    void dcd_dc_soft_grad_rows_f64(const dc_rows *rx, const dc_rows *rt, const double *w,
                                   int kind, const dc_soft_result *res, double scale,
                                   Py_ssize_t first, Py_ssize_t count, double *g)
    void dcd_dc_soft_target_rows_f32(const dc_rows *rx, const dc_rows *rt, const float *w,
                                     int is_log, int want_h, Py_ssize_t first,
                                     Py_ssize_t count, dc_soft_result *res)
    void dcd_dc_soft_target_rows_f64(const dc_rows *rx, const dc_rows *rt, const double *w,
                                     int is_log, int want_h, Py_ssize_t first,
                                     Py_ssize_t count, dc_soft_result *res)
    void dcd_dc_kl_reverse_rows_f32(const dc_rows *rx, const dc_rows *rt, int is_log,
                                    Py_ssize_t first, Py_ssize_t count, dc_soft_result *res)
    void dcd_dc_kl_reverse_rows_f64(const dc_rows *rx, const dc_rows *rt, int is_log,
                                    Py_ssize_t first, Py_ssize_t count, dc_soft_result *res)
    void dcd_dc_kl_reverse_grad_rows_f32(const dc_rows *rx, const dc_rows *rt, int kind,
                                         const dc_soft_result *res, double scale,
                                         Py_ssize_t first, Py_ssize_t count, float *g)
    void dcd_dc_kl_reverse_grad_rows_f64(const dc_rows *rx, const dc_rows *rt, int kind,
                                         const dc_soft_result *res, double scale,
                                         Py_ssize_t first, Py_ssize_t count, double *g)
    void dcd_dc_js_rows_f32(const dc_rows *rx, const dc_rows *rt, int kind, double beta,
                            Py_ssize_t first, Py_ssize_t count, double *js, double *psum,
                            Py_ssize_t *nbad)
    void dcd_dc_js_rows_f64(const dc_rows *rx, const dc_rows *rt, int kind, double beta,
                            Py_ssize_t first, Py_ssize_t count, double *js, double *psum,
                            Py_ssize_t *nbad)
