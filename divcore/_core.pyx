# cython: language_level=3
"""The compiled backend: loops over the rows of (N, C) arrays, calling the C row kernels
of src/divcore/. Same functions and semantics as divcore._refkernels (docs/design.md).

No formula lives here: this module only walks rows, gathers strided or masked rows into a
one-row buffer (rows.h), applies class weights and reports the first bad row.
"""
from libc.math cimport INFINITY, fabs
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

import numpy as np

from divcore import _errors


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
    double dc_bce_logit(double x, double y, double pw)
    int dc_simd_select()
    const char *dc_simd_name(int level)
    enum:
        DC_TARGET_PROBS
        DC_TARGET_LOG_PROBS
        DC_TARGET_LOGITS


cdef int _simd_level = dc_simd_select()


def simd_path():
    """The instruction set the kernels run with: 'avx512', 'avx2' or 'baseline' (the
    best the CPU supports, capped by DIVCORE_SIMD at import)."""
    return dc_simd_name(_simd_level).decode()


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


# ------------------------------------------------------------------------ row plumbing

cdef double _no_values[1]


cdef dc_rows rows_of(const real[:, :] x, const unsigned char[:, :] mask,
                     double temperature):
    """The kernels' view of a 2-D array (any strides), its mask and temperature."""
    cdef dc_rows r
    r.n = x.shape[1]
    r.row_stride = x.strides[0]
    r.col_stride = x.strides[1]
    if x.shape[0] > 0 and x.shape[1] > 0:
        r.data = <const char *>&x[0, 0]
    else:  # nothing will be read; keep pointer arithmetic on a real object
        r.data = <const char *>_no_values
        r.row_stride = 0
    r.temperature = temperature
    r.mask = NULL
    r.mask_row_stride = 0
    r.mask_col_stride = 0
    if mask is not None and x.shape[0] > 0 and x.shape[1] > 0:
        r.mask = &mask[0, 0]
        r.mask_row_stride = mask.strides[0]
        r.mask_col_stride = mask.strides[1]
    return r


cdef class RowBuffer:
    """Scratch space for one row (gathered logits, target, smoothed target)."""
    cdef void *data

    def __cinit__(self, Py_ssize_t n_values, Py_ssize_t itemsize):
        self.data = malloc((n_values if n_values > 0 else 1) * itemsize)
        if self.data == NULL:
            raise MemoryError(f"cannot allocate a row buffer of {n_values} values")

    def __dealloc__(self):
        free(self.data)


cdef inline const real *weights_of(const real[:] weight):
    if weight is None or weight.shape[0] == 0:
        return NULL
    return &weight[0]


def _check_target_row(Py_ssize_t row, double psum, Py_ssize_t nbad, double tol,
                      str argument, bint can_skip):
    """Raise for a row that is not a distribution; silent otherwise."""
    if nbad > 0:
        raise _errors.bad_target_row(argument, row, _errors.BAD_ENTRY, can_skip=can_skip)
    if not fabs(psum - 1.0) <= tol:
        raise _errors.bad_target_row(argument, row, _errors.bad_sum(psum, tol),
                                     can_skip=can_skip)


cdef inline bint target_row_bad(double psum, Py_ssize_t nbad, double tol) noexcept nogil:
    return nbad > 0 or not (fabs(psum - 1.0) <= tol)


cdef inline const real *soft_row(const dc_rows *rx, Py_ssize_t i, const real *xr,
                                 const real *tr, const real *w, Py_ssize_t n, int kind,
                                 bint reverse, double eps, int want_h, real *sbuf,
                                 dc_soft_result *res) noexcept nogil:
    """One row against a soft target: fills res (for reverse KL, res.max/sum are the
    model's row and res.tmax/tsum the target's, as the gradient kernels read them) and
    returns the target row the loss was computed against (the smoothed one with label
    smoothing, whose validation sums are those of the raw target)."""
    cdef double psum, m, s
    cdef Py_ssize_t nbad
    cdef int is_log = kind == DC_TARGET_LOG_PROBS
    if reverse:
        if kind == DC_TARGET_LOGITS:  # KL(q ‖ p): the model's softmax plays the target
            soft_logits_row(tr, xr, <const real *>NULL, n, res)
            m, s = res.max, res.sum
            res.max, res.sum = res.tmax, res.tsum
            res.tmax, res.tsum = m, s
        else:
            kl_reverse_row(xr, tr, n, is_log, res)
        return tr
    if kind == DC_TARGET_LOGITS:
        soft_logits_row(xr, tr, w, n, res)
        return tr
    if eps != 0.0:
        target_check_row(tr, n, is_log, &psum, &nbad)
        smoothed_target(rx, i, tr, -1, eps, sbuf)
        soft_target_row(xr, <const real *>sbuf, w, n, 0, want_h, res)
        res.psum = psum
        res.nbad = nbad
        return <const real *>sbuf
    soft_target_row(xr, tr, w, n, is_log, want_h, res)
    return tr


# --------------------------------------------------------------------- row functions

def lse_rows(const real[:, :] x, const unsigned char[:, :] where, double temperature):
    """Per-row log-sum-exp of x / T (masked classes left out)."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    out = np.empty(n_rows, dtype=np.float64)
    cdef double[::1] o = out
    cdef dc_rows r = rows_of(x, where, temperature)
    cdef RowBuffer xbuf = RowBuffer(n, sizeof(real))
    with nogil:
        for i in range(n_rows):
            o[i] = logsumexp_row(row_of(&r, i, <real>-INFINITY, <real *>xbuf.data), n)
    return out


def log_softmax_rows(const real[:, :] x, const unsigned char[:, :] where, double temperature,
                     real[:, ::1] out, bint exponentiate):
    """Write log_softmax(x / T) (or softmax with `exponentiate`) row by row into out."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef dc_rows r = rows_of(x, where, temperature)
    cdef RowBuffer xbuf = RowBuffer(n, sizeof(real))
    if n == 0:
        return
    with nogil:
        for i in range(n_rows):
            log_softmax_row(row_of(&r, i, <real>-INFINITY, <real *>xbuf.data), n,
                            exponentiate, &out[i, 0])


def ce_labels_rows(const real[:, :] x, const int64_t[:] labels,
                   const unsigned char[:, :] where, double temperature, const real[:] weight,
                   ignore_index, double label_smoothing, bint want_entropy):
    """Per-row Σ_c w_c p'_c (lse - x_c) for integer labels (p' the smoothed one-hot), with
    want_entropy the target's weighted entropy and the KL, and each row's weight in the
    mean (0 when ignored). ignore_index None: no row is ignored."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef Py_ssize_t bad_row = -1
    cdef bint has_ignore = ignore_index is not None
    cdef int64_t ignored = ignore_index if has_ignore else 0
    cdef int64_t y, bad_label = 0
    cdef double wy
    cdef dc_soft_result res
    ce = np.empty(n_rows, dtype=np.float64)
    h = np.zeros(n_rows, dtype=np.float64) if want_entropy else None
    kl = np.zeros(n_rows, dtype=np.float64) if want_entropy else None
    row_weight = np.empty(n_rows, dtype=np.float64)
    cdef double[::1] ce_v = ce, rw_v = row_weight
    cdef double[::1] h_v = h
    cdef double[::1] kl_v = kl
    cdef dc_rows r = rows_of(x, where, temperature)
    cdef RowBuffer xbuf = RowBuffer(n, sizeof(real))
    cdef RowBuffer pbuf = RowBuffer(n, sizeof(real))
    cdef const real *w = weights_of(weight)
    cdef const real *row
    with nogil:
        for i in range(n_rows):
            y = labels[i]
            if has_ignore and y == ignored:
                ce_v[i] = 0.0
                rw_v[i] = 0.0
                continue
            if y < 0 or y >= n:
                bad_row = i
                bad_label = y
                break
            wy = w[y] if w != NULL else 1.0
            rw_v[i] = wy
            row = row_of(&r, i, <real>-INFINITY, <real *>xbuf.data)
            if label_smoothing == 0.0:
                ce_v[i] = wy * ce_label_row(row, n, y)
                if want_entropy:
                    kl_v[i] = ce_v[i]
            else:
                smoothed_target(&r, i, <const real *>NULL, y, label_smoothing,
                                <real *>pbuf.data)
                soft_target_row(row, <const real *>pbuf.data, w, n, 0, want_entropy, &res)
                ce_v[i] = res.ce
                if want_entropy:
                    h_v[i] = res.h
                    kl_v[i] = res.kl
    if bad_row >= 0:
        raise _errors.label_out_of_range(bad_row, bad_label, n)
    return ce, h, kl, row_weight


def soft_rows(const real[:, :] x, const real[:, :] target, str target_type,
              const unsigned char[:, :] where, double temperature, const real[:] weight,
              double label_smoothing, bint reverse, bint validate, double tol, tuple want):
    """Per-row cross-entropy, target entropy and KL for probs / log_probs / logits targets
    (docs/design.md, item 4). Returns (ce, h, kl), None for what is not in `want`."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef int kind = target_kind_code(target_type)
    cdef int check = validate and kind != DC_TARGET_LOGITS
    cdef int want_h = ("h" in want) or ("kl" in want)
    cdef Py_ssize_t bad_row = -1
    cdef dc_soft_result res
    ce = np.full(n_rows, np.nan) if ("ce" in want and not reverse) else None
    h = np.full(n_rows, np.nan) if ("h" in want and not reverse) else None
    kl = np.full(n_rows, np.nan) if "kl" in want else None
    cdef double[::1] ce_v = ce
    cdef double[::1] h_v = h
    cdef double[::1] kl_v = kl
    cdef dc_rows rx = rows_of(x, where, temperature)
    cdef const unsigned char[:, :] no_mask = None
    # A logits target is masked and tempered like the logits; probabilities are not.
    cdef dc_rows rt = rows_of(target, where if kind == DC_TARGET_LOGITS else no_mask,
                              temperature if kind == DC_TARGET_LOGITS else 1.0)
    cdef RowBuffer xbuf = RowBuffer(n, sizeof(real))
    cdef RowBuffer tbuf = RowBuffer(n, sizeof(real))
    cdef RowBuffer sbuf = RowBuffer(n, sizeof(real))
    cdef const real *w = weights_of(weight)
    cdef const real *xr
    cdef const real *tr
    with nogil:
        for i in range(n_rows):
            xr = row_of(&rx, i, <real>-INFINITY, <real *>xbuf.data)
            tr = row_of(&rt, i, <real>-INFINITY, <real *>tbuf.data)
            soft_row(&rx, i, xr, tr, w, n, kind, reverse, label_smoothing, want_h,
                     <real *>sbuf.data, &res)
            if check and target_row_bad(res.psum, res.nbad, tol):
                bad_row = i
                break
            if ce_v is not None:
                ce_v[i] = res.ce
            if h_v is not None:
                h_v[i] = res.h
            if kl_v is not None:
                kl_v[i] = res.kl
    if bad_row >= 0:
        _check_target_row(bad_row, res.psum, res.nbad, tol, "target", True)
    return ce, h, kl


def entropy_rows(const real[:, :] x, str input_type, const unsigned char[:, :] where,
                 double temperature, double tol):
    """Per-row entropy of softmax(x / T), of probabilities, or of log-probabilities
    (masked entries left out); probability rows are always validated."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef int is_logits = input_type == "logits"
    cdef int is_log = input_type == "log_probs"
    cdef real fill = <real>0 if input_type == "probs" else <real>-INFINITY
    cdef Py_ssize_t bad_row = -1, nbad = 0
    cdef double psum = 0.0
    out = np.empty(n_rows, dtype=np.float64)
    cdef double[::1] o = out
    cdef dc_rows r = rows_of(x, where, temperature)
    cdef RowBuffer xbuf = RowBuffer(n, sizeof(real))
    cdef const real *row
    with nogil:
        for i in range(n_rows):
            row = row_of(&r, i, fill, <real *>xbuf.data)
            if is_logits:
                o[i] = entropy_logits_row(row, n)
            else:
                o[i] = entropy_target_row(row, n, is_log, &psum, &nbad)
                if target_row_bad(psum, nbad, tol):
                    bad_row = i
                    break
    if bad_row >= 0:
        _check_target_row(bad_row, psum, nbad, tol, "x", False)
    return out


# ------------------------------------------------------------ gradients, JS, BCE (issue 3)

cdef double _grad_scale(str reduction, double denom, double temperature, double log_base):
    """d(reduced loss)/d(row loss) · dx/dz: 1/denom for a mean (0 when nothing counts),
    then 1/T for the temperature and 1/log(base) for the unit."""
    cdef double s = 1.0 / (temperature * log_base)
    if reduction == "mean":
        return s / denom if denom != 0.0 else 0.0
    return s


def ce_labels_grad_rows(const real[:, :] x, const int64_t[:] labels,
                        const unsigned char[:, :] where, double temperature,
                        const real[:] weight, ignore_index, double label_smoothing,
                        str reduction, double log_base, real[:, ::1] grad):
    """ce_labels_rows' per-row loss and row weights, and into `grad` the gradient of the
    reduced loss (in units of `base`) with respect to the logits before the temperature.
    Ignored rows get exactly 0. All labels are checked before anything is written."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i, c
    cdef bint has_ignore = ignore_index is not None
    cdef int64_t ignored = ignore_index if has_ignore else 0
    cdef int64_t y
    cdef double denom = 0.0, scale, wy
    cdef dc_soft_result res
    cdef const real *w = weights_of(weight)
    ce = np.zeros(n_rows, dtype=np.float64)
    row_weight = np.zeros(n_rows, dtype=np.float64)
    cdef double[::1] ce_v = ce, rw_v = row_weight
    for i in range(n_rows):  # the weights of the mean, and every label's range first
        y = labels[i]
        if has_ignore and y == ignored:
            continue
        if y < 0 or y >= n:
            raise _errors.label_out_of_range(i, y, n)
        rw_v[i] = w[y] if w != NULL else 1.0
        denom += rw_v[i]
    scale = _grad_scale(reduction, denom, temperature, log_base)
    cdef dc_rows r = rows_of(x, where, temperature)
    cdef RowBuffer xbuf = RowBuffer(n, sizeof(real))
    cdef RowBuffer pbuf = RowBuffer(n, sizeof(real))
    cdef const real *row
    with nogil:
        for i in range(n_rows):
            y = labels[i]
            if has_ignore and y == ignored:
                for c in range(n):
                    grad[i, c] = 0
                continue
            wy = rw_v[i]
            row = row_of(&r, i, <real>-INFINITY, <real *>xbuf.data)
            if label_smoothing == 0.0:
                ce_v[i] = wy * ce_label_grad_row(row, n, y, scale * wy, &grad[i, 0])
            else:
                smoothed_target(&r, i, <const real *>NULL, y, label_smoothing,
                                <real *>pbuf.data)
                soft_target_row(row, <const real *>pbuf.data, w, n, 0, 0, &res)
                ce_v[i] = res.ce
                soft_grad_row(row, <const real *>pbuf.data, w, n, DC_TARGET_PROBS, &res,
                              scale, &grad[i, 0])
    return ce, row_weight


def soft_grad_rows(const real[:, :] x, const real[:, :] target, str target_type,
                   const unsigned char[:, :] where, double temperature, const real[:] weight,
                   double label_smoothing, bint reverse, bint validate, double tol,
                   str loss, str reduction, double log_base, real[:, ::1] grad):
    """Per-row cross-entropy (loss='ce') or KL (loss='kl') against a soft target, and
    into `grad` the gradient of the reduced loss. For a fixed target the two gradients
    are the same array: KL = CE - H(p) and H(p) does not depend on the logits."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef int kind = target_kind_code(target_type)
    cdef int check = validate and kind != DC_TARGET_LOGITS
    cdef int want_kl = loss == "kl"
    cdef int want_h = want_kl or reverse
    # the kind of the row the gradient reads: a smoothed target is probabilities
    cdef int used_kind = DC_TARGET_PROBS if label_smoothing != 0.0 else kind
    cdef double scale = _grad_scale(reduction, <double>n_rows, temperature, log_base)
    cdef Py_ssize_t bad_row = -1
    cdef dc_soft_result res
    values = np.full(n_rows, np.nan)
    cdef double[::1] v = values
    cdef const unsigned char[:, :] no_mask = None
    cdef dc_rows rx = rows_of(x, where, temperature)
    cdef dc_rows rt = rows_of(target, where if kind == DC_TARGET_LOGITS else no_mask,
                              temperature if kind == DC_TARGET_LOGITS else 1.0)
    cdef RowBuffer xbuf = RowBuffer(n, sizeof(real))
    cdef RowBuffer tbuf = RowBuffer(n, sizeof(real))
    cdef RowBuffer sbuf = RowBuffer(n, sizeof(real))
    cdef const real *w = weights_of(weight)
    cdef const real *xr
    cdef const real *tr
    cdef const real *used
    with nogil:
        for i in range(n_rows):
            xr = row_of(&rx, i, <real>-INFINITY, <real *>xbuf.data)
            tr = row_of(&rt, i, <real>-INFINITY, <real *>tbuf.data)
            used = soft_row(&rx, i, xr, tr, w, n, kind, reverse, label_smoothing, want_h,
                            <real *>sbuf.data, &res)
            if check and target_row_bad(res.psum, res.nbad, tol):
                bad_row = i
                break
            if reverse:
                v[i] = res.kl
                kl_reverse_grad_row(xr, tr, n, kind, &res, res.kl, scale, &grad[i, 0])
            else:
                v[i] = res.kl if want_kl else res.ce
                soft_grad_row(xr, used, w, n, used_kind, &res, scale, &grad[i, 0])
    if bad_row >= 0:
        _check_target_row(bad_row, res.psum, res.nbad, tol, "target", True)
    return values


def js_rows(const real[:, :] x, const real[:, :] target, str target_type,
            const unsigned char[:, :] where, double temperature, double beta, bint validate,
            double tol):
    """Per-row generalised Jensen-Shannon divergence (weight beta on the target)."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef int kind = target_kind_code(target_type)
    cdef int check = validate and kind != DC_TARGET_LOGITS
    cdef double psum = 0.0
    cdef Py_ssize_t nbad = 0, bad_row = -1
    values = np.empty(n_rows, dtype=np.float64)
    cdef double[::1] v = values
    cdef const unsigned char[:, :] no_mask = None
    cdef dc_rows rx = rows_of(x, where, temperature)
    cdef dc_rows rt = rows_of(target, where if kind == DC_TARGET_LOGITS else no_mask,
                              temperature if kind == DC_TARGET_LOGITS else 1.0)
    cdef RowBuffer xbuf = RowBuffer(n, sizeof(real))
    cdef RowBuffer tbuf = RowBuffer(n, sizeof(real))
    with nogil:
        for i in range(n_rows):
            v[i] = js_row(row_of(&rx, i, <real>-INFINITY, <real *>xbuf.data),
                          row_of(&rt, i, <real>-INFINITY, <real *>tbuf.data), n, kind, beta,
                          &psum, &nbad)
            if check and target_row_bad(psum, nbad, tol):
                bad_row = i
                break
    if bad_row >= 0:
        _check_target_row(bad_row, psum, nbad, tol, "target", True)
    return values


def bce_flat(const real[:] x, const real[:] y, const real[:] weight,
             const real[:] pos_weight, double[:] out):
    """Binary cross-entropy on logits over 1-d (possibly broadcast, stride-0) operands:
    w·[pw·y·softplus(-x) + (1-y)·softplus(x)] into `out` (if given); returns the sum."""
    cdef Py_ssize_t n = x.shape[0], i
    cdef bint has_w = weight is not None, has_pw = pos_weight is not None
    cdef bint has_out = out is not None
    cdef double total = 0.0, l
    with nogil:
        for i in range(n):
            l = dc_bce_logit(x[i], y[i], pos_weight[i] if has_pw else 1.0)
            if has_w:
                l = weight[i] * l
            if has_out:
                out[i] = l
            total += l
    return total
