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


cdef inline Py_ssize_t n_classes_of(np.ndarray x):
    return np.PyArray_DIM(x, np.PyArray_NDIM(x) - 1)


cdef Py_ssize_t n_rows_of(np.ndarray x):
    """Rows of an (N, C) array or of (B, R, C) blocks."""
    cdef Py_ssize_t k, n = 1
    for k in range(np.PyArray_NDIM(x) - 1):
        n *= np.PyArray_DIM(x, k)
    return n


cdef dc_rows rows_of_array(np.ndarray x, object mask, double temperature):
    """The kernels' view of a plan's rows: an (N, C) array, or the first block of a
    (B, R, C) one (describe() adds the block strides), of the compute dtype or half
    storage, with its mask (uint8, the same layout) and temperature."""
    cdef dc_rows r
    cdef int nd = np.PyArray_NDIM(x)
    cdef np.ndarray m
    cdef Py_ssize_t n_rows = n_rows_of(x)
    r.n = np.PyArray_DIM(x, nd - 1)
    r.row_stride = np.PyArray_STRIDE(x, nd - 2)
    r.col_stride = np.PyArray_STRIDE(x, nd - 1)
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
        m = <np.ndarray>mask
        r.mask = <const unsigned char *>np.PyArray_DATA(m)
        r.mask_row_stride = np.PyArray_STRIDE(m, nd - 2)
        r.mask_col_stride = np.PyArray_STRIDE(m, nd - 1)
    return r


cdef void describe(Job *job, np.ndarray x, object where) except *:
    """The logits' storage (half or not) and, for (B, R, C) blocks of rows, the block
    size and the strides from one block to the next (logits and mask)."""
    job.x_half = half_kind(x)
    if np.PyArray_NDIM(x) == 3 and np.PyArray_SIZE(x) > 0:
        job.block_rows = np.PyArray_DIM(x, 1)
        job.x_block = np.PyArray_STRIDE(x, 0)
        if where is not None:
            job.xm_block = np.PyArray_STRIDE(<np.ndarray>where, 0)


cdef void describe_target(Job *job, np.ndarray target) except *:
    job.t_half = half_kind(target)
    if np.PyArray_NDIM(target) == 3:
        job.t_block = np.PyArray_STRIDE(target, 0)


cdef object _lse_rows_typed(np.ndarray x, object where,
                            double temperature, real *typed):
    """Per-row log-sum-exp of x / T (masked classes left out)."""
    out = np.empty(n_rows_of(x), dtype=np.float64)
    cdef Job job = new_job(OP_LSE)
    job.rx = rows_of_array(x, where, temperature)
    job.ce = data_of(out)
    describe(&job, x, where)
    run_rows(&job, n_rows_of(x), typed)
    return out


cdef Job log_softmax_job(np.ndarray x, object where, double temperature,
                         bint exponentiate):
    cdef Job job = new_job(OP_LOG_SOFTMAX)
    job.rx = rows_of_array(x, where, temperature)
    job.exponentiate = exponentiate
    describe(&job, x, where)
    return job


cdef object _log_softmax_rows_typed(np.ndarray x, object where,
                                    double temperature, np.ndarray out, bint exponentiate,
                                    real *typed):
    """Write log_softmax(x / T) (or softmax with `exponentiate`) row by row into out: an
    (N, C) C-contiguous array, or a view of x's shape ((N, C) or (B, R, C)) whose rows are
    adjacent in memory (log_softmax_in_layout)."""
    if n_classes_of(x) == 0 or n_rows_of(x) == 0:
        return
    cdef Job job = log_softmax_job(x, where, temperature, exponentiate)
    cdef int nd = np.PyArray_NDIM(out)
    if np.PyArray_ITEMSIZE(out) != sizeof(real) or out.dtype.kind != "f":
        raise TypeError(f"log_softmax_rows: out has dtype {out.dtype}")
    if nd == 2 and np.PyArray_IS_C_CONTIGUOUS(out) and np.PyArray_DIM(out, 1) == job.rx.n:
        pass
    elif ((<object>out).shape == (<object>x).shape
          and np.PyArray_STRIDE(out, nd - 2) == sizeof(real)):
        job.out_col_stride = np.PyArray_STRIDE(out, nd - 1)
        job.out_block = np.PyArray_STRIDE(out, 0) if nd == 3 else 0
    else:
        raise ValueError("log_softmax_rows: out must be (N, C) C-contiguous or x's shape "
                         "with its rows adjacent")
    job.out = <char *>np.PyArray_DATA(out)
    run_rows(&job, n_rows_of(x), typed)


cdef object _ce_labels_rows_typed(np.ndarray x, const int64_t[:] labels,
                                  object where, double temperature,
                                  const real[:] weight, ignore_index, double label_smoothing,
                                  bint want_entropy, real *typed):
    """Per-row Σ_c w_c p'_c (lse - x_c) for integer labels (p' the smoothed one-hot), with
    want_entropy the target's weighted entropy and the KL, and each row's weight in the
    mean (0 when ignored). ignore_index None: no row is ignored."""
    cdef Py_ssize_t n_rows = n_rows_of(x)
    check_labels(labels, n_classes_of(x), ignore_index)
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
    describe(&job, x, where)
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
                  object where, double temperature, const real[:] weight,
                  double label_smoothing, bint reverse, bint validate, double tol):
    cdef dc_rows rx = rows_of_array(x, where, temperature)
    cdef dc_rows rt = rows_of_array(target, None, 1.0)
    cdef Job job = soft_job_of(op, &rx, &rt, target_kind_code(target_type),
                               weights_of(weight), label_smoothing, reverse, validate, tol)
    describe_target(&job, target)
    return job


cdef object _soft_rows_typed(np.ndarray x, np.ndarray target, str target_type,
                             object where, double temperature,
                             const real[:] weight, double label_smoothing, bint reverse,
                             bint validate, double tol, tuple want, real *typed):
    """Per-row cross-entropy, target entropy and KL for probs / log_probs / logits targets
    (docs/design.md, item 4). Returns (ce, h, kl), None for what is not in `want`."""
    cdef Py_ssize_t n_rows = n_rows_of(x)
    ce = np.full(n_rows, np.nan) if ("ce" in want and not reverse) else None
    h = np.full(n_rows, np.nan) if ("h" in want and not reverse) else None
    kl = np.full(n_rows, np.nan) if "kl" in want else None
    cdef Job job = soft_job(OP_SOFT, x, target, target_type, where, temperature, weight,
                            label_smoothing, reverse, validate, tol)
    job.want_h = ("h" in want) or ("kl" in want)
    job.ce, job.h, job.kl = data_of(ce), data_of(h), data_of(kl)
    describe(&job, x, where)
    run_rows_validated(&job, n_rows, <real *>NULL, "target", True)
    return ce, h, kl


cdef object _entropy_rows_typed(np.ndarray x, str input_type, object where,
                                double temperature, double tol, real *typed):
    """Per-row entropy of softmax(x / T), of probabilities, or of log-probabilities
    (masked entries left out); probability rows are always validated."""
    cdef Py_ssize_t n_rows = n_rows_of(x)
    out = np.empty(n_rows, dtype=np.float64)
    cdef Job job = new_job(OP_ENTROPY)
    job.kind = DC_TARGET_LOGITS if input_type == "logits" else target_kind_code(input_type)
    job.rx = rows_of_array(x, where, temperature)
    job.check = job.kind != DC_TARGET_LOGITS
    job.tol = tol
    job.ce = data_of(out)
    describe(&job, x, where)
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
                        object where, double temperature,
                        const real[:] weight, ignore_index, double label_smoothing,
                        str reduction, double log_base, real[:, ::1] grad, real *typed):
    """ce_labels_rows' per-row loss and row weights, and into `grad` the gradient of the
    reduced loss (in units of `base`) with respect to the logits before the temperature.
    Ignored rows get exactly 0. All labels are checked before anything is written."""
    cdef Py_ssize_t n_rows = n_rows_of(x), n = n_classes_of(x), i
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
    describe(&job, x, where)
    run_rows(&job, n_rows if n > 0 else 0, typed)
    return ce, row_weight


cdef object _soft_grad_rows_typed(np.ndarray x, np.ndarray target, str target_type,
                                  object where, double temperature,
                                  const real[:] weight, double label_smoothing, bint reverse,
                                  bint validate, double tol, str loss, str reduction,
                                  double log_base, real[:, ::1] grad, real *typed):
    """Per-row cross-entropy (loss='ce') or KL (loss='kl') against a soft target, and
    into `grad` the gradient of the reduced loss. For a fixed target the two gradients
    are the same array: KL = CE - H(p) and H(p) does not depend on the logits."""
    cdef Py_ssize_t n_rows = n_rows_of(x), n = n_classes_of(x)
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
    describe(&job, x, where)
    run_rows_validated(&job, n_rows, <real *>NULL, "target", True)
    return values


cdef object _js_rows_typed(np.ndarray x, np.ndarray target, str target_type,
            object where, double temperature, double beta, bint validate,
            double tol, real *typed):
    """Per-row generalised Jensen-Shannon divergence (weight beta on the target)."""
    cdef Py_ssize_t n_rows = n_rows_of(x)
    values = np.empty(n_rows, dtype=np.float64)
    cdef const real[:] no_weight = None
    cdef Job job = soft_job(OP_JS, x, target, target_type, where, temperature, no_weight,
                            0.0, False, validate, tol)
    job.beta = beta
    job.ce = data_of(values)
    describe(&job, x, where)
    run_rows_validated(&job, n_rows, <real *>NULL, "target", True)
    return values


cdef inline double bce_values(const real *x, Py_ssize_t sx, const real *y, Py_ssize_t sy,
                              const real *w, Py_ssize_t sw, const real *pw, Py_ssize_t spw,
                              Py_ssize_t n, double *out, Py_ssize_t so) noexcept nogil:
    """dc_bce_values (src/divcore/bce_t.h) for the type: strides in bytes."""
    if real is float:
        return dcd_dc_bce_values_f32(x, sx, y, sy, w, sw, pw, spw, n, out, so)
    else:
        return dcd_dc_bce_values_f64(x, sx, y, sy, w, sw, pw, spw, n, out, so)


def bce_flat(const real[:] x, const real[:] y, const real[:] weight,
             const real[:] pos_weight, double[:] out):
    """Binary cross-entropy on logits over 1-d (possibly broadcast, stride-0) operands:
    w·[pw·y·softplus(-x) + (1-y)·softplus(x)] into `out` (if given); returns the sum
    (the kernel dc_bce_values, as the compiled front calls it: the same bits)."""
    cdef Py_ssize_t n = x.shape[0]
    cdef const real *w = NULL
    cdef const real *pw = NULL
    cdef double *o = NULL
    cdef Py_ssize_t sw = 0, spw = 0, so = 0
    cdef double total
    if n == 0:
        return 0.0
    if weight is not None:
        w, sw = &weight[0], weight.strides[0]
    if pos_weight is not None:
        pw, spw = &pos_weight[0], pos_weight.strides[0]
    if out is not None:
        o, so = &out[0], out.strides[0]
    with nogil:
        total = bce_values(&x[0], x.strides[0], &y[0], y.strides[0], w, sw, pw, spw, n, o,
                           so)
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


def log_softmax_in_layout(plan):
    """Whether log_softmax_rows writes these rows' output laid out like the logits (rows
    adjacent in memory along a strided class axis, scanned in place): then `out` is a view
    of x's shape with adjacent rows (divcore._rules.empty_in_layout), written class by
    class in the arrays' order."""
    if n_classes_of(plan.rows) == 0 or n_rows_of(plan.rows) == 0:
        return False
    cdef Job job = log_softmax_job(<np.ndarray>plan.rows, plan.where, plan.temperature,
                                  False)
    job.out_col_stride = 1          # asked for
    return bool(scans_adjacent(&job, n_rows_of(plan.rows),
                               4 if plan.dtype == np.float32 else 8))


def log_softmax_rows(plan, out, bint exponentiate):
    """log_softmax(x / T) (softmax with `exponentiate`) into out, (N, C) C-contiguous or,
    where log_softmax_in_layout(plan), laid out like the logits."""
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
