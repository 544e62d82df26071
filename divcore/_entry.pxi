# divcore._core, part 4: the backend's entry points. Each takes a Plan (divcore._rules),
# fills a Job and runs it; divcore.api shapes and reduces what comes back.

# --------------------------------------------------------------------- row functions

cdef int half_kind(np.ndarray a) except -1:
    """HALF_F16 / HALF_BF16 for half-precision storage (read as stored, widened row by row),
    HALF_NONE for float32 / float64 rows."""
    if np.PyArray_ITEMSIZE(a) != 2:
        return HALF_NONE
    if a.dtype.char == "e":
        return HALF_F16
    if a.dtype.name == "bfloat16":
        return HALF_BF16
    raise TypeError(f"rows of dtype {a.dtype} have no kernel")


cdef dc_rows rows_of_array(np.ndarray x, const unsigned char[:, :] mask,
                           double temperature):
    """rows_of for a 2-D ndarray of the compute dtype or of half storage."""
    cdef dc_rows r
    cdef Py_ssize_t n_rows = np.PyArray_DIM(x, 0)
    r.n = np.PyArray_DIM(x, 1)
    r.row_stride = np.PyArray_STRIDE(x, 0)
    r.col_stride = np.PyArray_STRIDE(x, 1)
    if n_rows > 0 and r.n > 0:
        r.data = <const char *>np.PyArray_DATA(x)
    else:  # nothing will be read; keep pointer arithmetic on a real object
        r.data = <const char *>_no_values
        r.row_stride = 0
    r.temperature = temperature
    r.mask = NULL
    r.mask_row_stride = 0
    r.mask_col_stride = 0
    if mask is not None and n_rows > 0 and r.n > 0:
        r.mask = &mask[0, 0]
        r.mask_row_stride = mask.strides[0]
        r.mask_col_stride = mask.strides[1]
    return r


cdef object _lse_rows_typed(np.ndarray x, const unsigned char[:, :] where,
                            double temperature, real *typed):
    """Per-row log-sum-exp of x / T (masked classes left out)."""
    out = np.empty(np.PyArray_DIM(x, 0), dtype=np.float64)
    cdef Job job = new_job(OP_LSE)
    job.rx = rows_of_array(x, where, temperature)
    job.ce = data_of(out)
    job.x_half = half_kind(x)
    run_rows(&job, np.PyArray_DIM(x, 0), typed)
    return out


cdef object _log_softmax_rows_typed(np.ndarray x, const unsigned char[:, :] where,
                                    double temperature, real[:, ::1] out, bint exponentiate,
                                    real *typed):
    """Write log_softmax(x / T) (or softmax with `exponentiate`) row by row into out."""
    if np.PyArray_DIM(x, 1) == 0 or np.PyArray_DIM(x, 0) == 0:
        return
    cdef Job job = new_job(OP_LOG_SOFTMAX)
    job.rx = rows_of_array(x, where, temperature)
    job.exponentiate = exponentiate
    job.out = <char *>&out[0, 0]
    job.x_half = half_kind(x)
    run_rows(&job, np.PyArray_DIM(x, 0), typed)


cdef object _ce_labels_rows_typed(np.ndarray x, const int64_t[:] labels,
                                  const unsigned char[:, :] where, double temperature,
                                  const real[:] weight, ignore_index, double label_smoothing,
                                  bint want_entropy, real *typed):
    """Per-row Σ_c w_c p'_c (lse - x_c) for integer labels (p' the smoothed one-hot), with
    want_entropy the target's weighted entropy and the KL, and each row's weight in the
    mean (0 when ignored). ignore_index None: no row is ignored."""
    cdef Py_ssize_t n_rows = np.PyArray_DIM(x, 0)
    check_labels(labels, np.PyArray_DIM(x, 1), ignore_index)
    ce = np.empty(n_rows, dtype=np.float64)
    h = np.zeros(n_rows, dtype=np.float64) if want_entropy else None
    kl = np.zeros(n_rows, dtype=np.float64) if want_entropy else None
    row_weight = np.empty(n_rows, dtype=np.float64)
    cdef dc_rows rx = rows_of_array(x, where, temperature)
    cdef bint has_ignore = ignore_index is not None
    cdef Job job = label_job(OP_CE_LABEL, &rx, weights_of(weight),
                             &labels[0] if n_rows > 0 else NULL, n_rows, has_ignore,
                             ignore_index if has_ignore else 0, label_smoothing)
    job.want_h = want_entropy
    job.ce, job.h, job.kl = data_of(ce), data_of(h), data_of(kl)
    job.row_weight = data_of(row_weight)
    job.x_half = half_kind(x)
    run_rows(&job, n_rows, typed)
    return ce, h, kl, row_weight


cdef Job label_job(int op, const dc_rows *rx, const void *weight, const int64_t *labels,
                   Py_ssize_t n_rows, bint has_ignore, int64_t ignored, double eps):
    """A job over rows against integer labels (checked in range before it runs)."""
    cdef Job job = new_job(op)
    job.rx = rx[0]
    job.weight = weight
    job.labels = labels if n_rows > 0 else NULL
    job.has_ignore = has_ignore
    job.ignored = ignored if has_ignore else 0
    job.eps = eps
    return job


cdef Job soft_job_of(int op, const dc_rows *rx, const dc_rows *rt, int kind,
                     const void *weight, double eps, bint reverse, bint validate,
                     double tol):
    """A job over rows against a soft target. rt: the target's data and strides; a logits
    target is masked and tempered like the logits (rx), probabilities are not."""
    cdef Job job = new_job(op)
    job.kind = kind
    job.rx = rx[0]
    job.rt = rt[0]
    if kind == DC_TARGET_LOGITS:
        job.rt.mask = rx.mask
        job.rt.mask_row_stride = rx.mask_row_stride
        job.rt.mask_col_stride = rx.mask_col_stride
        job.rt.temperature = rx.temperature
    else:
        job.rt.mask = NULL
        job.rt.mask_row_stride = 0
        job.rt.mask_col_stride = 0
        job.rt.temperature = 1.0
    job.weight = weight
    job.eps = eps
    job.reverse = reverse
    job.check = validate and kind != DC_TARGET_LOGITS
    job.tol = tol
    return job


cdef Job soft_job(int op, np.ndarray x, np.ndarray target, str target_type,
                  const unsigned char[:, :] where, double temperature, const real[:] weight,
                  double label_smoothing, bint reverse, bint validate, double tol):
    cdef const unsigned char[:, :] no_mask = None
    cdef dc_rows rx = rows_of_array(x, where, temperature)
    cdef dc_rows rt = rows_of_array(target, no_mask, 1.0)
    cdef Job job = soft_job_of(op, &rx, &rt, target_kind_code(target_type),
                               weights_of(weight), label_smoothing, reverse, validate, tol)
    job.t_half = half_kind(target)
    return job


cdef object _soft_rows_typed(np.ndarray x, np.ndarray target, str target_type,
                             const unsigned char[:, :] where, double temperature,
                             const real[:] weight, double label_smoothing, bint reverse,
                             bint validate, double tol, tuple want, real *typed):
    """Per-row cross-entropy, target entropy and KL for probs / log_probs / logits targets
    (docs/design.md, item 4). Returns (ce, h, kl), None for what is not in `want`."""
    cdef Py_ssize_t n_rows = np.PyArray_DIM(x, 0)
    ce = np.full(n_rows, np.nan) if ("ce" in want and not reverse) else None
    h = np.full(n_rows, np.nan) if ("h" in want and not reverse) else None
    kl = np.full(n_rows, np.nan) if "kl" in want else None
    cdef Job job = soft_job(OP_SOFT, x, target, target_type, where, temperature, weight,
                            label_smoothing, reverse, validate, tol)
    job.want_h = ("h" in want) or ("kl" in want)
    job.ce, job.h, job.kl = data_of(ce), data_of(h), data_of(kl)
    job.x_half = half_kind(x)
    run_rows_validated(&job, n_rows, <real *>NULL, "target", True)
    return ce, h, kl


cdef object _entropy_rows_typed(np.ndarray x, str input_type, const unsigned char[:,
                                :] where, double temperature, double tol, real *typed):
    """Per-row entropy of softmax(x / T), of probabilities, or of log-probabilities
    (masked entries left out); probability rows are always validated."""
    cdef Py_ssize_t n_rows = np.PyArray_DIM(x, 0)
    out = np.empty(n_rows, dtype=np.float64)
    cdef Job job = new_job(OP_ENTROPY)
    job.kind = DC_TARGET_LOGITS if input_type == "logits" else target_kind_code(input_type)
    job.rx = rows_of_array(x, where, temperature)
    job.check = job.kind != DC_TARGET_LOGITS
    job.tol = tol
    job.ce = data_of(out)
    job.x_half = half_kind(x)
    run_rows_validated(&job, n_rows, <real *>NULL, "x", False)
    return out


# ------------------------------------------------------------ gradients, JS, BCE (issue 3)

cdef enum:
    RED_NONE = 0
    RED_SUM = 1
    RED_MEAN = 2


cdef inline int reduction_code(str reduction):
    return RED_MEAN if reduction == "mean" else RED_SUM if reduction == "sum" else RED_NONE


cdef double grad_scale(int reduction, double denom, double temperature,
                       double log_base) noexcept nogil:
    """d(reduced loss)/d(row loss) · dx/dz: 1/denom for a mean (0 when nothing counts),
    then 1/T for the temperature and 1/log(base) for the unit."""
    cdef double s = 1.0 / (temperature * log_base)
    if reduction == RED_MEAN:
        return s / denom if denom != 0.0 else 0.0
    return s


cdef double label_denominator(const int64_t *labels, Py_ssize_t n_rows, const void *weight,
                              bint is_float, bint has_ignore,
                              int64_t ignored) noexcept nogil:
    """Σ w_y over the rows that count (their number without class weights), in row order:
    the mean's denominator as the gradient scales by it."""
    cdef double denom = 0.0
    cdef Py_ssize_t i
    for i in range(n_rows):
        if not (has_ignore and labels[i] == ignored):
            if weight == NULL:
                denom += 1.0
            elif is_float:
                denom += (<const float *>weight)[labels[i]]
            else:
                denom += (<const double *>weight)[labels[i]]
    return denom


cdef object _ce_labels_grad_rows_typed(np.ndarray x, const int64_t[:] labels,
                        const unsigned char[:, :] where, double temperature,
                        const real[:] weight, ignore_index, double label_smoothing,
                        str reduction, double log_base, real[:, ::1] grad, real *typed):
    """ce_labels_rows' per-row loss and row weights, and into `grad` the gradient of the
    reduced loss (in units of `base`) with respect to the logits before the temperature.
    Ignored rows get exactly 0. All labels are checked before anything is written."""
    cdef Py_ssize_t n_rows = np.PyArray_DIM(x, 0), n = np.PyArray_DIM(x, 1), i
    cdef bint has_ignore = ignore_index is not None
    cdef int64_t ignored = ignore_index if has_ignore else 0
    cdef const real *w = weights_of(weight)
    check_labels(labels, n, ignore_index)
    cdef const int64_t *y = &labels[0] if n_rows > 0 else NULL
    cdef double denom = label_denominator(y, n_rows, w, real is float, has_ignore, ignored)
    ce = np.zeros(n_rows, dtype=np.float64)
    row_weight = np.zeros(n_rows, dtype=np.float64)
    cdef dc_rows rx = rows_of_array(x, where, temperature)
    cdef Job job = label_job(OP_CE_LABEL_GRAD, &rx, w, y, n_rows, has_ignore, ignored,
                             label_smoothing)
    job.scale = grad_scale(reduction_code(reduction), denom, temperature, log_base)
    job.ce, job.row_weight = data_of(ce), data_of(row_weight)
    job.out = <char *>&grad[0, 0] if n_rows > 0 and n > 0 else NULL
    job.x_half = half_kind(x)
    run_rows(&job, n_rows if n > 0 else 0, typed)
    return ce, row_weight


cdef object _soft_grad_rows_typed(np.ndarray x, np.ndarray target, str target_type,
                                  const unsigned char[:, :] where, double temperature,
                                  const real[:] weight, double label_smoothing, bint reverse,
                                  bint validate, double tol, str loss, str reduction,
                                  double log_base, real[:, ::1] grad, real *typed):
    """Per-row cross-entropy (loss='ce') or KL (loss='kl') against a soft target, and
    into `grad` the gradient of the reduced loss. For a fixed target the two gradients
    are the same array: KL = CE - H(p) and H(p) does not depend on the logits."""
    cdef Py_ssize_t n_rows = np.PyArray_DIM(x, 0), n = np.PyArray_DIM(x, 1)
    values = np.full(n_rows, np.nan)
    cdef Job job = soft_job(OP_SOFT_GRAD, x, target, target_type, where, temperature,
                            weight, label_smoothing, reverse, validate, tol)
    job.want_kl = loss == "kl"
    job.want_h = job.want_kl or reverse
    job.scale = grad_scale(reduction_code(reduction), <double>n_rows, temperature, log_base)
    job.ce = data_of(values)
    job.out = <char *>&grad[0, 0] if n_rows > 0 and n > 0 else NULL
    # rows of no class still run: their targets are validated (and their gradient, with
    # job.out NULL, has no entry to write)
    job.x_half = half_kind(x)
    run_rows_validated(&job, n_rows, <real *>NULL, "target", True)
    return values


cdef object _js_rows_typed(np.ndarray x, np.ndarray target, str target_type,
            const unsigned char[:, :] where, double temperature, double beta, bint validate,
            double tol, real *typed):
    """Per-row generalised Jensen-Shannon divergence (weight beta on the target)."""
    cdef Py_ssize_t n_rows = np.PyArray_DIM(x, 0)
    values = np.empty(n_rows, dtype=np.float64)
    cdef const real[:] no_weight = None
    cdef Job job = soft_job(OP_JS, x, target, target_type, where, temperature, no_weight,
                            0.0, False, validate, tol)
    job.beta = beta
    job.ce = data_of(values)
    job.x_half = half_kind(x)
    run_rows_validated(&job, n_rows, <real *>NULL, "target", True)
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


# ------------------------------------------------------------------- the entry points
# (each calls the typed function above for the compute dtype: float for float32 and half
# storage, double for float64)

def lse_rows(plan):
    """Per-row log-sum-exp of x / T (masked classes left out), float64."""
    if plan.dtype == np.float32:
        return _lse_rows_typed[float](<np.ndarray>plan.rows, plan.where, plan.temperature,
                                      <float *>NULL)
    return _lse_rows_typed[double](<np.ndarray>plan.rows, plan.where, plan.temperature,
                                   <double *>NULL)


def log_softmax_rows(plan, out, bint exponentiate):
    """log_softmax(x / T) (softmax with `exponentiate`) into out, (N, C) C-contiguous."""
    if plan.dtype == np.float32:
        _log_softmax_rows_typed[float](<np.ndarray>plan.rows, plan.where, plan.temperature,
                                       out, exponentiate, <float *>NULL)
    else:
        _log_softmax_rows_typed[double](<np.ndarray>plan.rows, plan.where, plan.temperature,
                                        out, exponentiate, <double *>NULL)


def ce_labels_rows(plan, bint want_entropy):
    """(ce, h, kl, row_weight) per row against integer labels."""
    if plan.dtype == np.float32:
        return _ce_labels_rows_typed[float](<np.ndarray>plan.rows, plan.labels, plan.where,
                                            plan.temperature, plan.weight, plan.ignore_index,
                                            plan.smoothing, want_entropy, <float *>NULL)
    return _ce_labels_rows_typed[double](<np.ndarray>plan.rows, plan.labels, plan.where,
                                         plan.temperature, plan.weight, plan.ignore_index,
                                         plan.smoothing, want_entropy, <double *>NULL)


def soft_rows(plan, tuple want):
    """(ce, h, kl) per row against a soft target, None for what is not in `want`."""
    if plan.dtype == np.float32:
        return _soft_rows_typed[float](<np.ndarray>plan.rows, <np.ndarray>plan.target,
                                       plan.target_kind, plan.where, plan.temperature,
                                       plan.weight, plan.smoothing, plan.reverse,
                                       plan.validate, plan.tol, want, <float *>NULL)
    return _soft_rows_typed[double](<np.ndarray>plan.rows, <np.ndarray>plan.target,
                                    plan.target_kind, plan.where, plan.temperature,
                                    plan.weight, plan.smoothing, plan.reverse, plan.validate,
                                    plan.tol, want, <double *>NULL)


def entropy_rows(plan):
    """Per-row entropy of logits, probabilities or log-probabilities."""
    if plan.dtype == np.float32:
        return _entropy_rows_typed[float](<np.ndarray>plan.rows, plan.target_kind,
                                          plan.where, plan.temperature, plan.tol,
                                          <float *>NULL)
    return _entropy_rows_typed[double](<np.ndarray>plan.rows, plan.target_kind, plan.where,
                                       plan.temperature, plan.tol, <double *>NULL)


def ce_labels_grad_rows(plan, grad):
    """(per-row loss, row weights) against labels; the reduced loss's gradient into grad."""
    if plan.dtype == np.float32:
        return _ce_labels_grad_rows_typed[float](<np.ndarray>plan.rows, plan.labels,
                                                 plan.where, plan.temperature, plan.weight,
                                                 plan.ignore_index, plan.smoothing,
                                                 plan.reduction, plan.log_base, grad,
                                                 <float *>NULL)
    return _ce_labels_grad_rows_typed[double](<np.ndarray>plan.rows, plan.labels, plan.where,
                                              plan.temperature, plan.weight,
                                              plan.ignore_index, plan.smoothing,
                                              plan.reduction, plan.log_base, grad,
                                              <double *>NULL)


def soft_grad_rows(plan, str loss, grad):
    """Per-row CE or KL (`loss`) against a soft target; the gradient into grad."""
    if plan.dtype == np.float32:
        return _soft_grad_rows_typed[float](<np.ndarray>plan.rows, <np.ndarray>plan.target,
                                            plan.target_kind, plan.where, plan.temperature,
                                            plan.weight, plan.smoothing, plan.reverse,
                                            plan.validate, plan.tol, loss, plan.reduction,
                                            plan.log_base, grad, <float *>NULL)
    return _soft_grad_rows_typed[double](<np.ndarray>plan.rows, <np.ndarray>plan.target,
                                         plan.target_kind, plan.where, plan.temperature,
                                         plan.weight, plan.smoothing, plan.reverse,
                                         plan.validate, plan.tol, loss, plan.reduction,
                                         plan.log_base, grad, <double *>NULL)


def js_rows(plan):
    """Per-row generalised Jensen-Shannon divergence (weight plan.beta on the target)."""
    if plan.dtype == np.float32:
        return _js_rows_typed[float](<np.ndarray>plan.rows, <np.ndarray>plan.target,
                                     plan.target_kind, plan.where, plan.temperature,
                                     plan.beta, plan.validate, plan.tol, <float *>NULL)
    return _js_rows_typed[double](<np.ndarray>plan.rows, <np.ndarray>plan.target,
                                  plan.target_kind, plan.where, plan.temperature, plan.beta,
                                  plan.validate, plan.tol, <double *>NULL)
