# divcore._core, part 6: TopK targets (SPEC §7). Each row: one scan of the student's row
# (the blocked log-sum-exp) and O(k) gathers, in dc_topk_row (src/divcore/topk_t.h); the
# gradient one more pass writing q. Rows are spread over OpenMP threads like run_rows.

cdef inline void topk_row(const real *x, Py_ssize_t n, const int64_t *idx, const real *v,
                          Py_ssize_t k, int is_log, int tail, double beta,
                          dc_topk_result *res) noexcept nogil:
    if real is float:
        dcd_dc_topk_row_f32(x, n, idx, v, k, is_log, tail, beta, res)
    else:
        dcd_dc_topk_row_f64(x, n, idx, v, k, is_log, tail, beta, res)


cdef inline void topk_grad(const real *x, Py_ssize_t n, const int64_t *idx, const real *v,
                           Py_ssize_t k, int is_log, int tail, const dc_topk_result *res,
                           double scale, real *g) noexcept nogil:
    if real is float:
        dcd_dc_topk_grad_f32(x, n, idx, v, k, is_log, tail, res, scale, g)
    else:
        dcd_dc_topk_grad_f64(x, n, idx, v, k, is_log, tail, res, scale, g)


cdef enum:
    TOPK_CE = 0
    TOPK_H = 1
    TOPK_KL = 2
    TOPK_KL_REV = 3
    TOPK_JS = 4
    TOPK_PSUM = 5
    TOPK_NBAD = 6
    TOPK_COLUMNS = 7


cdef inline void topk_one(const dc_rows *rx, Py_ssize_t i, const int64_t *idx,
                          const real *v, Py_ssize_t k, int is_log, int tail, double beta,
                          double scale, real *g, double *out, real *buf) noexcept nogil:
    """Row i: its results into out[i·TOPK_COLUMNS ..], its gradient into g (when not NULL)."""
    cdef Py_ssize_t n = rx.n
    cdef dc_topk_result res
    cdef const real *x = row_of(rx, i, <real>-INFINITY, buf)
    cdef double *o = out + i * TOPK_COLUMNS
    topk_row(x, n, idx + i * k, v + i * k, k, is_log, tail, beta, &res)
    o[TOPK_CE], o[TOPK_H], o[TOPK_KL] = res.ce, res.h, res.kl
    o[TOPK_KL_REV], o[TOPK_JS] = res.kl_rev, res.js
    o[TOPK_PSUM], o[TOPK_NBAD] = res.psum, <double>res.nbad
    if g != NULL:
        topk_grad(x, n, idx + i * k, v + i * k, k, is_log, tail, &res, scale, g + i * n)


cdef object _topk_typed(np.ndarray x, object where, double temperature,
                        const int64_t[:, ::1] idx, const real[:, ::1] values, str kind,
                        str tail, double beta, double scale, object grad):
    """Per-row columns (N, TOPK_COLUMNS) float64; the gradient into grad (or None)."""
    cdef Py_ssize_t n_rows = n_rows_of(x), n = n_classes_of(x), k = idx.shape[1], i
    cdef dc_rows rx = rows_of_array(x, where, temperature)
    out = np.full((n_rows, TOPK_COLUMNS), np.nan)
    if n_rows == 0:
        return out
    cdef double[:, ::1] o = out
    cdef real[:, ::1] gv
    cdef real *g = NULL
    if grad is not None and n > 0:
        gv = grad
        g = &gv[0, 0]
    cdef const int64_t *ip = &idx[0, 0] if k > 0 else <const int64_t *>NULL
    cdef const real *vp = &values[0, 0] if k > 0 else <const real *>NULL
    cdef int is_log = kind == "log_probs"
    cdef int tail_code = (DC_TAIL_BUCKET if tail == "bucket" else
                          DC_TAIL_DROP if tail == "drop" else DC_TAIL_RENORMALIZE)
    cdef Py_ssize_t nbuf = n if (n > 0 and not read_in_place(&rx, sizeof(real))) else 1
    cdef int nt = threads_for(n_rows, n)
    cdef int failed = 0
    cdef int *failed_p = &failed
    cdef real *buf = NULL
    if nt <= 1:
        buf = <real *>malloc(nbuf * sizeof(real))
        if buf == NULL:
            raise MemoryError(f"cannot allocate a row buffer of {n} values")
        with nogil:
            for i in range(n_rows):
                topk_one(&rx, i, ip, vp, k, is_log, tail_code, beta, scale, g, &o[0, 0], buf)
        free(buf)
        return out
    with nogil, parallel(num_threads=nt):
        buf = <real *>malloc(nbuf * sizeof(real))
        if buf == NULL:
            failed_p[0] = 1
        for i in prange(n_rows, schedule="static"):
            if buf != NULL:
                topk_one(&rx, i, ip, vp, k, is_log, tail_code, beta, scale, g, &o[0, 0],
                         buf)
        free(buf)
    if failed:
        raise MemoryError(f"cannot allocate row buffers of {n} values")
    return out


cdef object _topk_columns(plan, object grad, double scale, bint want_js):
    """beta < 0 when JS is not wanted: the kernel then skips its terms."""
    cdef double beta = plan.beta if want_js else -1.0
    if plan.dtype == np.float32:
        return _topk_typed[float](<np.ndarray>plan.rows, plan.where, plan.temperature,
                                  plan.topk_indices, plan.topk_values, plan.topk_kind,
                                  plan.tail, beta, scale, grad)
    return _topk_typed[double](<np.ndarray>plan.rows, plan.where, plan.temperature,
                               plan.topk_indices, plan.topk_values, plan.topk_kind, plan.tail,
                               beta, scale, grad)


_TOPK_NAMES = {"ce": TOPK_CE, "h": TOPK_H, "kl": TOPK_KL, "kl_rev": TOPK_KL_REV,
               "js": TOPK_JS}


def topk_rows(plan, tuple want):
    """Per-row losses against a TopK target: a dict of float64 arrays for the names in
    `want` ("ce", "h", "kl" — KL(q ‖ p) with plan.reverse — "js"); validated after the
    pass (divcore._topk.check_rows)."""
    from divcore import _topk
    cols = _topk_columns(plan, None, 1.0, "js" in want)
    _topk.check_rows(plan, cols[:, TOPK_PSUM], cols[:, TOPK_NBAD])
    res = {name: np.ascontiguousarray(cols[:, c]) for name, c in _TOPK_NAMES.items()}
    return _topk.row_results(plan, want, res)


def topk_grad_rows(plan, str loss, grad):
    """Per-row "ce" or "kl" against a TopK target, and into grad ((N, C), the compute
    dtype) each row's gradient of it, scaled by 1/(T·log_base)."""
    from divcore import _topk
    cols = _topk_columns(plan, grad, 1.0 / (plan.temperature * plan.log_base), False)
    _topk.check_rows(plan, cols[:, TOPK_PSUM], cols[:, TOPK_NBAD])
    return np.ascontiguousarray(cols[:, TOPK_KL if loss == "kl" else TOPK_CE])
