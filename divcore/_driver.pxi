# divcore._core, part 3: the batch driver. A Job says what to compute on which rows;
# run_rows walks them (lanes for short rows, split rows for huge ones, OpenMP threads for
# large inputs) with the GIL released, and the validation flags name the first bad row.

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


# ------------------------------------------------------------------ jobs and threads

cdef extern from "_threads.h" nogil:
    int dc_omp_max_threads()
    int dc_have_openmp()


cdef enum:
    OP_LSE
    OP_LOG_SOFTMAX
    OP_CE_LABEL
    OP_CE_LABEL_GRAD
    OP_SOFT
    OP_SOFT_GRAD
    OP_ENTROPY
    OP_JS


ctypedef struct Job:
    # One batch of rows for run_rows: what to compute, on what, and where to put it.
    int op
    dc_rows rx                  # the logits (or entropy input)
    dc_rows rt                  # a soft target
    const void *weight          # (C,) class weights of the rows' dtype, or NULL
    const int64_t *labels
    int has_ignore
    int64_t ignored
    int kind                    # DC_TARGET_*: the soft target's (or entropy input's) kind
    int reverse
    int want_h
    int want_kl                 # OP_SOFT_GRAD: the loss is the KL
    int check                   # validate the targets
    int exponentiate            # OP_LOG_SOFTMAX: softmax instead
    double eps
    double tol
    double beta
    double scale                # gradients: d(reduced loss)/d(row loss) · 1/(T log base)
    double *ce                  # per-row results (NULL when not wanted)
    double *h
    double *kl
    double *row_weight
    double *psum                # per-row target sums, kept for the message of a bad row
    Py_ssize_t *nbad
    unsigned char *bad          # 1 where a row failed validation
    char *out                   # (N, C) C-contiguous output of the rows' dtype, or,
    Py_ssize_t out_col_stride   # when this is not 0, laid out like the logits (rows
    Py_ssize_t out_block        # adjacent, in_adjacent_rows): its class and block strides
    double *row_max             # log_softmax in the logits' layout: each row's max M and
    double *row_c               # log S (1/S for softmax), NaN without a distribution
    int x_half                  # HALF_*: rx (rt) stores float16 or bfloat16, widened a tile
    int t_half                  # of rows at a time (run_tile; the compute dtype is float)
    Py_ssize_t block_rows       # rows in blocks of this many (0: one block), and the
    Py_ssize_t x_block          # byte strides from one block to the next: logits, their
    Py_ssize_t xm_block         # mask, the target (whose mask, for a logits target, is
    Py_ssize_t t_block          # the logits')


cdef int _threads_wanted = 0     # 0: OpenMP's own count (OMP_NUM_THREADS, threadpoolctl)
# Below this many values a call stays on the calling thread: entering a parallel region
# costs microseconds, more than small inputs take.
cdef Py_ssize_t PARALLEL_MIN_VALUES = 1 << 16


def set_num_threads(int n):
    """Threads for large inputs; 0 (the default) follows OpenMP (OMP_NUM_THREADS,
    threadpoolctl)."""
    global _threads_wanted
    if n < 0:
        raise ValueError(f"the number of threads must be >= 0, got {n}")
    _threads_wanted = n


cdef inline int configured_threads() noexcept nogil:
    """Threads a large call may use: set_num_threads's count, else OpenMP's own; 1 in a
    build without OpenMP."""
    if not dc_have_openmp():
        return 1
    return _threads_wanted if _threads_wanted > 0 else dc_omp_max_threads()


def get_num_threads():
    """Threads a large call will use (1 in a build without OpenMP)."""
    return configured_threads()


def has_openmp():
    return bool(dc_have_openmp())


cdef int threads_for(Py_ssize_t n_rows, Py_ssize_t n) noexcept nogil:
    cdef int t
    if n_rows < 2 or n_rows * n < PARALLEL_MIN_VALUES:
        return 1
    t = configured_threads()
    return <int>n_rows if n_rows < t else t


cdef inline bint label_row_ignored(const Job *job, Py_ssize_t i, int64_t y) noexcept nogil:
    """A row whose label is ignore_index: its loss is 0 and it weighs 0 in the mean."""
    if job.has_ignore and y == job.ignored:
        job.ce[i] = 0.0
        job.row_weight[i] = 0.0
        return True
    return False


cdef inline double label_weight(const Job *job, Py_ssize_t i, int64_t y,
                                const real *w) noexcept nogil:
    """w_y (1 without class weights), kept as the row's weight in the mean."""
    cdef double wy = w[y] if w != NULL else 1.0
    job.row_weight[i] = wy
    return wy


cdef inline void store_label_loss(const Job *job, Py_ssize_t i, double weighted) noexcept nogil:
    """Row i's weighted -log q_y; with labels the target's entropy is 0, so KL = CE."""
    job.ce[i] = weighted
    if job.kl != NULL:
        job.kl[i] = weighted


cdef inline bint flagged_bad_row(const Job *job, Py_ssize_t i, double psum,
                                 Py_ssize_t nbad) noexcept nogil:
    """Whether row i's target fails the job's validation (job.check): then the row is
    flagged, its sums kept for the message of the first bad row, and it gets no loss."""
    if not (job.check and target_row_bad(psum, nbad, job.tol)):
        return False
    job.bad[i] = 1
    job.psum[i] = psum
    job.nbad[i] = nbad
    return True


cdef inline void store_soft_row(const Job *job, Py_ssize_t i,
                                const dc_soft_result *res) noexcept nogil:
    """Row i's losses against a soft target (those the job wants), unless its target fails
    validation (flagged_bad_row)."""
    if flagged_bad_row(job, i, res.psum, res.nbad):
        return
    if job.ce != NULL:
        job.ce[i] = res.ce
    if job.h != NULL:
        job.h[i] = res.h
    if job.kl != NULL:
        job.kl[i] = res.kl


cdef inline void store_lse_row(const Job *job, Py_ssize_t i, const dc_lse_state *st,
                               double log_sum, const real *w) noexcept nogil:
    """Row i's result from its finished scan `st` (log_sum: dc_lse_log_sum of it, 0 when
    the row has no finite value): the log-sum-exp (OP_LSE) or the loss of its label
    (OP_CE_LABEL without smoothing, w the class weights): one ending for every scan that
    goes in parts or lanes (run_lane_chunk, run_tile_adjacent, run_split_row)."""
    cdef int64_t y
    if job.op == OP_LSE:
        job.ce[i] = dc_lse_value_of_log_sum(st, log_sum)
        return
    y = job.labels[i]           # in range: checked before the loop
    if not label_row_ignored(job, i, y):
        store_label_loss(job, i, label_weight(job, i, y, w) * dc_ce_label_of_log_sum(
            st, log_sum, row_value(&job.rx, i, y, <real>-INFINITY)))


cdef extern from "_half.h" nogil:
    float dc_f16_to_f32(unsigned short h)
    float dc_bf16_to_f32(unsigned short h)
    void dc_widen_f16(const unsigned short *src, Py_ssize_t n, float *dst)
    void dc_widen_bf16(const unsigned short *src, Py_ssize_t n, float *dst)


cdef enum:
    HALF_NONE = 0
    HALF_F16 = 1
    HALF_BF16 = 2


cdef void run_row(const Job *job, Py_ssize_t i, real *xbuf, real *tbuf,
                  real *sbuf) noexcept nogil:
    """Row i of the job, with this thread's one-row buffers."""
    cdef Py_ssize_t n = job.rx.n, c
    cdef const real *w = <const real *>job.weight
    cdef const real *xr
    cdef const real *tr
    cdef const real *used
    cdef real *out = (<real *>job.out) + i * n if job.out != NULL else NULL
    cdef dc_soft_result res
    cdef int64_t y
    cdef double wy, psum
    cdef Py_ssize_t nbad
    cdef int grad = job.op == OP_CE_LABEL_GRAD or job.op == OP_SOFT_GRAD
    res.tmax, res.tsum = 0.0, 1.0  # set by the logits-target kernels only
    if job.op == OP_LSE:
        job.ce[i] = logsumexp_row(row_of(&job.rx, i, <real>-INFINITY, xbuf), n)
    elif job.op == OP_LOG_SOFTMAX:
        log_softmax_row(row_of(&job.rx, i, <real>-INFINITY, xbuf), n, job.exponentiate, out)
    elif job.op == OP_CE_LABEL or job.op == OP_CE_LABEL_GRAD:
        y = job.labels[i]           # in range: checked before the loop
        if label_row_ignored(job, i, y):
            if grad:
                for c in range(n):
                    out[c] = 0
            return
        wy = label_weight(job, i, y, w)
        xr = row_of(&job.rx, i, <real>-INFINITY, xbuf)
        if job.eps == 0.0:
            if grad:
                job.ce[i] = wy * ce_label_grad_row(xr, n, y, job.scale * wy, out)
            else:
                store_label_loss(job, i, wy * ce_label_row(xr, n, y))
            return
        smoothed_target(&job.rx, i, <const real *>NULL, y, job.eps, sbuf)
        soft_target_row(xr, <const real *>sbuf, w, n, 0, job.want_h, &res)
        job.ce[i] = res.ce
        if job.h != NULL:
            job.h[i] = res.h
            job.kl[i] = res.kl
        if grad:
            soft_grad_row(xr, <const real *>sbuf, w, n, DC_TARGET_PROBS, &res, job.scale, out)
    elif job.op == OP_SOFT or job.op == OP_SOFT_GRAD:
        xr = row_of(&job.rx, i, <real>-INFINITY, xbuf)
        tr = row_of(&job.rt, i, <real>-INFINITY, tbuf)
        used = soft_row(&job.rx, i, xr, tr, w, n, job.kind, job.reverse, job.eps,
                        job.want_h, sbuf, &res)
        if not grad:
            store_soft_row(job, i, &res)
        elif flagged_bad_row(job, i, res.psum, res.nbad):
            return
        elif job.reverse:
            job.ce[i] = res.kl
            kl_reverse_grad_row(xr, tr, n, job.kind, &res, res.kl, job.scale, out)
        else:
            job.ce[i] = res.kl if job.want_kl else res.ce
            soft_grad_row(xr, used, w, n, DC_TARGET_PROBS if job.eps != 0.0 else job.kind,
                          &res, job.scale, out)
    elif job.op == OP_ENTROPY:
        if job.kind == DC_TARGET_LOGITS:
            job.ce[i] = entropy_logits_row(row_of(&job.rx, i, <real>-INFINITY, xbuf), n)
            return
        # masked entries are left out: probability 0, log-probability -inf
        xr = row_of(&job.rx, i,
                    <real>0 if job.kind == DC_TARGET_PROBS else <real>-INFINITY, xbuf)
        job.ce[i] = entropy_target_row(xr, n, job.kind == DC_TARGET_LOG_PROBS, &psum, &nbad)
        flagged_bad_row(job, i, psum, nbad)
    elif job.op == OP_JS:
        job.ce[i] = js_row(row_of(&job.rx, i, <real>-INFINITY, xbuf),
                           row_of(&job.rt, i, <real>-INFINITY, tbuf), n, job.kind,
                           job.beta, &psum, &nbad)
        flagged_bad_row(job, i, psum, nbad)


cdef enum:
    LANE_CHUNK = 256    # short rows scanned per dc_lse_scan_rows call (states on the stack)


# Typed views of the lane kernels for the operations beyond the log-sum-exp
# (src/divcore/lanes_soft_t.h, lanes_grad_t.h).

cdef inline void lanes_logits(const dc_rows *rx, const dc_rows *rt, const real *w,
                             Py_ssize_t first, Py_ssize_t count,
                             dc_soft_result *res) noexcept nogil:
    if real is float:
        dcd_dc_logits_rows_f32(rx, rt, w, first, count, res)
    else:
        dcd_dc_logits_rows_f64(rx, rt, w, first, count, res)


cdef inline void lanes_entropy_logits(const dc_rows *r, Py_ssize_t first, Py_ssize_t count,
                                     double *out, real *typed) noexcept nogil:
    if real is float:
        dcd_dc_entropy_logits_rows_f32(r, first, count, out)
    else:
        dcd_dc_entropy_logits_rows_f64(r, first, count, out)


cdef inline void lanes_label_grad(const dc_rows *r, const Py_ssize_t *labels,
                                    const double *scale, Py_ssize_t first, Py_ssize_t count,
                                    double *loss, real *g) noexcept nogil:
    if real is float:
        dcd_dc_ce_label_grad_rows_f32(r, labels, scale, first, count, loss, g)
    else:
        dcd_dc_ce_label_grad_rows_f64(r, labels, scale, first, count, loss, g)


cdef inline void lanes_soft_grad(const dc_rows *rx, const dc_rows *rt, const real *w, int kind,
                                const dc_soft_result *res, double scale, Py_ssize_t first,
                                Py_ssize_t count, real *g) noexcept nogil:
    if real is float:
        dcd_dc_soft_grad_rows_f32(rx, rt, w, kind, res, scale, first, count, g)
    else:
        dcd_dc_soft_grad_rows_f64(rx, rt, w, kind, res, scale, first, count, g)


cdef inline void lanes_soft_target(const dc_rows *rx, const dc_rows *rt, const real *w,
                                   int is_log, int want_h, Py_ssize_t first, Py_ssize_t count,
                                   dc_soft_result *res) noexcept nogil:
    if real is float:
        dcd_dc_soft_target_rows_f32(rx, rt, w, is_log, want_h, first, count, res)
    else:
        dcd_dc_soft_target_rows_f64(rx, rt, w, is_log, want_h, first, count, res)


cdef inline void lanes_kl_reverse(const dc_rows *rx, const dc_rows *rt, int is_log,
                                  Py_ssize_t first, Py_ssize_t count, dc_soft_result *res,
                                  const real *typed) noexcept nogil:
    if real is float:
        dcd_dc_kl_reverse_rows_f32(rx, rt, is_log, first, count, res)
    else:
        dcd_dc_kl_reverse_rows_f64(rx, rt, is_log, first, count, res)


cdef inline void lanes_kl_reverse_grad(const dc_rows *rx, const dc_rows *rt, int kind,
                                       const dc_soft_result *res, double scale,
                                       Py_ssize_t first, Py_ssize_t count,
                                       real *g) noexcept nogil:
    if real is float:
        dcd_dc_kl_reverse_grad_rows_f32(rx, rt, kind, res, scale, first, count, g)
    else:
        dcd_dc_kl_reverse_grad_rows_f64(rx, rt, kind, res, scale, first, count, g)


cdef inline void lanes_js(const dc_rows *rx, const dc_rows *rt, int kind, double beta,
                          Py_ssize_t first, Py_ssize_t count, double *js, double *psum,
                          Py_ssize_t *nbad, const real *typed) noexcept nogil:
    if real is float:
        dcd_dc_js_rows_f32(rx, rt, kind, beta, first, count, js, psum, nbad)
    else:
        dcd_dc_js_rows_f64(rx, rt, kind, beta, first, count, js, psum, nbad)


cdef inline bint in_lanes(const Job *job) noexcept nogil:
    """Short rows scanned many rows at a time, one row per vector lane (lanes_t.h,
    lanes_soft_t.h, lanes_grad_t.h), instead of one short row at a time: the log-sum-exp
    operations, labels (loss and gradient), soft targets of every kind (CE, entropy, KL,
    reverse KL, decompose, and their gradients; label smoothing of labels and
    probabilities), the entropy of logits and Jensen-Shannon."""
    if not (0 < job.rx.n <= DC_LANES_MAX_N):
        return False
    if job.op == OP_LSE or job.op == OP_LOG_SOFTMAX:
        return True
    if job.op == OP_CE_LABEL or job.op == OP_CE_LABEL_GRAD:
        return True
    if job.op == OP_SOFT or job.op == OP_SOFT_GRAD:
        return job.eps == 0.0 or (job.kind == DC_TARGET_PROBS and not job.reverse)
    if job.op == OP_ENTROPY:
        return job.kind == DC_TARGET_LOGITS
    return job.op == OP_JS


cdef void run_lane_soft(const Job *job, Py_ssize_t first, Py_ssize_t count,
                        real *xbuf) noexcept nogil:
    """OP_SOFT / OP_SOFT_GRAD rows of an in_lanes job (run_row's soft branch)."""
    cdef dc_soft_result res[LANE_CHUNK]
    cdef Py_ssize_t n = job.rx.n, j, i
    cdef const real *w = <const real *>job.weight
    cdef double m, s
    cdef bint grad = job.op == OP_SOFT_GRAD
    if job.kind == DC_TARGET_LOGITS and job.reverse:
        # KL(q ‖ p): the model's softmax plays the target; res.max/sum are the model's
        lanes_logits(&job.rt, &job.rx, <const real *>NULL, first, count, res)
        for j in range(count):
            m, s = res[j].max, res[j].sum
            res[j].max, res[j].sum = res[j].tmax, res[j].tsum
            res[j].tmax, res[j].tsum = m, s
    elif job.reverse:
        lanes_kl_reverse(&job.rx, &job.rt, job.kind == DC_TARGET_LOG_PROBS, first, count,
                         res, w)
    elif job.kind == DC_TARGET_LOGITS:
        lanes_logits(&job.rx, &job.rt, w, first, count, res)
    elif job.kind == DC_TARGET_PROBS and not job.want_h:
        # cross-entropy only: the kernel dc_ce_probs takes for a short row
        soft_probs_rows(&job.rx, &job.rt, w, first, count, res)
    else:
        lanes_soft_target(&job.rx, &job.rt, w, job.kind == DC_TARGET_LOG_PROBS, job.want_h,
                          first, count, res)
    for j in range(count):
        i = first + j
        if not grad:
            store_soft_row(job, i, &res[j])
        elif not flagged_bad_row(job, i, res[j].psum, res[j].nbad):
            job.ce[i] = res[j].kl if job.want_kl or job.reverse else res[j].ce
    if grad and job.reverse:
        lanes_kl_reverse_grad(&job.rx, &job.rt, job.kind, res, job.scale, first, count,
                              (<real *>job.out) + first * n)
    elif grad:
        lanes_soft_grad(&job.rx, &job.rt, w, job.kind, res, job.scale, first, count,
                        (<real *>job.out) + first * n)


cdef enum:
    SMOOTH_ROWS = 32    # smoothed target rows built at a time (on the stack)


cdef inline dc_rows rows_from(const dc_rows *r, Py_ssize_t first) noexcept nogil:
    """r's rows from `first` on, as rows 0, 1, ..."""
    cdef dc_rows out = r[0]
    out.data = r.data + first * r.row_stride
    if r.mask != NULL:
        out.mask = r.mask + first * r.mask_row_stride
    return out


cdef void run_lane_smoothed(const Job *job, Py_ssize_t first, Py_ssize_t count,
                            real *xbuf) noexcept nogil:
    """Label smoothing (labels, or probability targets) of an in_lanes job: the smoothed
    target rows p' = (1 - eps)·p + eps/kept are built as run_row builds them
    (dc_smoothed_target), SMOOTH_ROWS at a time, then go through the probability lanes
    (loss, entropy, KL, gradient). Validation sums are the raw target's."""
    cdef real sbuf[SMOOTH_ROWS * DC_LANES_MAX_N]
    cdef dc_soft_result res[SMOOTH_ROWS]
    cdef double psum[SMOOTH_ROWS]
    cdef Py_ssize_t nbad[SMOOTH_ROWS]
    cdef bint skip[SMOOTH_ROWS]
    cdef Py_ssize_t n = job.rx.n, j, i, c, sub, cnt
    cdef const real *w = <const real *>job.weight
    cdef real *tbuf = xbuf + n
    cdef const real *tr
    cdef int64_t y
    cdef dc_rows rx, rs
    cdef bint labels = job.op == OP_CE_LABEL or job.op == OP_CE_LABEL_GRAD
    cdef bint grad = job.op == OP_CE_LABEL_GRAD or job.op == OP_SOFT_GRAD
    rs.data = <const char *>sbuf
    rs.row_stride = n * sizeof(real)
    rs.col_stride = sizeof(real)
    rs.n = n
    rs.mask = NULL
    rs.mask_row_stride = 0
    rs.mask_col_stride = 0
    rs.temperature = 1.0
    sub = first
    while sub < first + count:
        cnt = min(<Py_ssize_t>SMOOTH_ROWS, first + count - sub)
        for j in range(cnt):
            i = sub + j
            skip[j] = False
            if labels:
                y = job.labels[i]           # in range: checked before the loop
                if label_row_ignored(job, i, y):
                    skip[j] = True          # loss 0 (set), gradient 0, logits unused
                    for c in range(n):
                        sbuf[j * n + c] = 0
                    continue
                label_weight(job, i, y, w)
                smoothed_target(&job.rx, i, <const real *>NULL, y, job.eps, sbuf + j * n)
            else:
                tr = row_of(&job.rt, i, <real>-INFINITY, tbuf)
                target_check_row(tr, n, 0, &psum[j], &nbad[j])
                smoothed_target(&job.rx, i, tr, -1, job.eps, sbuf + j * n)
        rx = rows_from(&job.rx, sub)
        lanes_soft_target(&rx, &rs, w, 0, job.want_h, 0, cnt, res)
        for j in range(cnt):
            i = sub + j
            if skip[j]:
                continue
            if not labels:
                res[j].psum = psum[j]
                res[j].nbad = nbad[j]
                if flagged_bad_row(job, i, psum[j], nbad[j]):
                    continue
            if grad:
                job.ce[i] = res[j].kl if job.want_kl else res[j].ce
                continue
            if job.ce != NULL:
                job.ce[i] = res[j].ce
            if job.h != NULL:
                job.h[i] = res[j].h
            if job.kl != NULL:
                job.kl[i] = res[j].kl
        if grad:
            lanes_soft_grad(&rx, &rs, w, DC_TARGET_PROBS, res, job.scale, 0, cnt,
                            (<real *>job.out) + sub * n)
            for j in range(cnt):
                if skip[j]:
                    for c in range(n):
                        (<real *>job.out)[(sub + j) * n + c] = 0
        sub += cnt


cdef void run_lane_label_grad(const Job *job, Py_ssize_t first, Py_ssize_t count,
                              real *xbuf) noexcept nogil:
    """OP_CE_LABEL_GRAD rows of an in_lanes job (no smoothing): run_row's label branch."""
    cdef Py_ssize_t labels[LANE_CHUNK]
    cdef double scale[LANE_CHUNK]
    cdef double loss[LANE_CHUNK]
    cdef Py_ssize_t n = job.rx.n, j, i
    cdef const real *w = <const real *>job.weight
    cdef int64_t y
    for j in range(count):
        i = first + j
        y = job.labels[i]           # in range: checked before the loop
        if label_row_ignored(job, i, y):
            labels[j] = -1          # loss 0, gradient 0, logits unused
            scale[j] = 0.0
        else:
            labels[j] = <Py_ssize_t>y
            scale[j] = job.scale * label_weight(job, i, y, w)
    lanes_label_grad(&job.rx, labels, scale, first, count, loss,
                       (<real *>job.out) + first * n)
    for j in range(count):
        if labels[j] >= 0:
            job.ce[first + j] = job.row_weight[first + j] * loss[j]


cdef void run_lane_chunk(const Job *job, Py_ssize_t first, Py_ssize_t count,
                         real *xbuf) noexcept nogil:
    """Rows first .. first + count - 1 of an in_lanes job: the same results as run_row."""
    cdef dc_lse_state st[LANE_CHUNK]
    cdef double log_sum[LANE_CHUNK]     # (JS: the target sums)
    cdef Py_ssize_t nbad[LANE_CHUNK]
    cdef Py_ssize_t n = job.rx.n, j, i
    cdef const real *w = <const real *>job.weight
    cdef int64_t y
    if job.eps != 0.0:
        run_lane_smoothed(job, first, count, xbuf)
        return
    if job.op == OP_SOFT or job.op == OP_SOFT_GRAD:
        run_lane_soft(job, first, count, xbuf)
        return
    if job.op == OP_CE_LABEL_GRAD:
        run_lane_label_grad(job, first, count, xbuf)
        return
    if job.op == OP_ENTROPY:  # of logits
        lanes_entropy_logits(&job.rx, first, count, job.ce + first, xbuf)
        return
    if job.op == OP_JS:
        lanes_js(&job.rx, &job.rt, job.kind, job.beta, first, count, job.ce + first, log_sum,
                 nbad, xbuf)
        for j in range(count):
            i = first + j
            flagged_bad_row(job, i, log_sum[j], nbad[j])
        return
    lse_scan_rows(&job.rx, first, count, st, log_sum, xbuf)
    for j in range(count):
        i = first + j
        if job.op == OP_LOG_SOFTMAX:
            log_softmax_of_state(row_of(&job.rx, i, <real>-INFINITY, xbuf), n, &st[j],
                                 log_sum[j], job.exponentiate, (<real *>job.out) + i * n)
        else:
            store_lse_row(job, i, &st[j], log_sum[j], w)


cdef extern from "_gather.h" nogil:
    void dc_gather_rows_f32(const char *base, Py_ssize_t n, Py_ssize_t col_stride,
                            Py_ssize_t count, float *tile)
    void dc_gather_rows_f64(const char *base, Py_ssize_t n, Py_ssize_t col_stride,
                            Py_ssize_t count, double *tile)
    int dc_gather_set_level(int cap)


def _gather_level(int cap=-1):
    """The instruction set of the strided-axis gather (2 AVX-512, 1 AVX2, 0 portable),
    capped at `cap` when cap >= 0 (tests: every level gives the same bits)."""
    return dc_gather_set_level(cap)


cdef enum:
    LINE_BYTES = 64         # a cache line
    PAIR_BYTES = 128        # two lines, which the CPU's spatial prefetcher fetches together

# ... fewer rows when they would not fit in _tile_bytes (L2), but at least one cache line's
# worth, unless that exceeds _tile_max_bytes
cdef Py_ssize_t _tile_bytes = 1 << 20
cdef Py_ssize_t _tile_max_bytes = 1 << 23
cdef Py_ssize_t TILE_ROWS = 64  # adjacent rows gathered together when the class axis is strided


cdef enum:
    ADJACENT_ROWS_MAX = 64  # rows per run_tile_adjacent call (their states on the stack)

# Rows are scanned in place (run_tile_adjacent) when consecutive classes lie at least this
# many bytes apart: then each line of a group of rows sits in a page of its own. Closer
# (torch's (16, 32000, 256): 1 KiB), the L2 streamer fetches the rest of each page, lines
# that belong to the next groups of rows and are gone before they are read, and the
# gathered tile, which reads every line of a class at once, was measured faster.
cdef Py_ssize_t ADJACENT_MIN_STRIDE = 4096


def _adjacent_min_stride(Py_ssize_t stride=-1):
    """The class stride (bytes) from which adjacent rows are scanned in place; a stride
    >= 0 sets it (tests: 0 takes every adjacent layout in place). Returns the old value."""
    global ADJACENT_MIN_STRIDE
    old = ADJACENT_MIN_STRIDE
    if stride >= 0:
        ADJACENT_MIN_STRIDE = stride
    return old


def _tile_config(Py_ssize_t tile_bytes=0, Py_ssize_t max_bytes=0, Py_ssize_t rows=0):
    """Tile sizes of the strided-axis gather (benchmarks and tests); 0 keeps a value."""
    global _tile_bytes, _tile_max_bytes, TILE_ROWS
    if tile_bytes > 0:
        _tile_bytes = tile_bytes
    if max_bytes > 0:
        _tile_max_bytes = max_bytes
    if rows > 0:
        TILE_ROWS = rows
    return _tile_bytes, _tile_max_bytes, TILE_ROWS


cdef inline Py_ssize_t tile_rows(Py_ssize_t n, Py_ssize_t itemsize) noexcept nogil:
    """Rows per tile, whole cache lines of rows (16 float or 8 double a line) so that each
    class's values of a tile are whole lines, each read once: TILE_ROWS, or as many
    pairs of lines' worth as fit in _tile_bytes, else one line's worth (even past
    _tile_bytes); fewer, down to 4, only for rows so long that one line's worth would
    exceed _tile_max_bytes."""
    cdef Py_ssize_t line = LINE_BYTES // itemsize, pair = PAIR_BYTES // itemsize
    cdef Py_ssize_t rows = _tile_bytes // (n * itemsize) if n > 0 else TILE_ROWS
    if rows >= TILE_ROWS:
        return TILE_ROWS
    if rows >= pair:
        return rows // pair * pair
    if rows >= line or _tile_max_bytes // (n * itemsize) >= line:
        return line
    rows = _tile_max_bytes // (n * itemsize)
    return rows if rows > 4 else 4


# Half storage whose rows are not adjacent in memory (class-last rows) is widened into
# tiles of this many bytes at most (at least one row): the kernels read a widened row
# twice or more, so it should stay in the L2 cache; whole cache lines of rows matter only
# when rows are adjacent (a strided class axis, tile_rows).
cdef Py_ssize_t HALF_TILE_BYTES = 1 << 18


cdef inline Py_ssize_t half_tile_rows(const Job *job, Py_ssize_t n) noexcept nogil:
    """Rows per tile of a job with half storage (the tile holds float rows)."""
    cdef Py_ssize_t rows
    if (job.x_half != HALF_NONE and job.rx.row_stride == 2) or (
            job.t_half != HALF_NONE and job.rt.row_stride == 2):
        return tile_rows(n, sizeof(float))
    rows = HALF_TILE_BYTES // (n * <Py_ssize_t>sizeof(float)) if n > 0 else TILE_ROWS
    return TILE_ROWS if rows >= TILE_ROWS else (rows if rows > 1 else 1)


cdef inline Py_ssize_t tile_shift(const dc_rows *r, Py_ssize_t per_tile,
                                  Py_ssize_t itemsize) noexcept nogil:
    """Tiles start at aligned rows (addresses a multiple of the tile's bytes' largest
    power-of-two factor, at most PAIR_BYTES): a tile is rows u·per_tile - shift ..
    (u + 1)·per_tile - shift - 1 (those that exist), so the first tile is shorter and
    the others read whole cache lines."""
    cdef Py_ssize_t bytes = per_tile * itemsize
    cdef Py_ssize_t align = bytes & -bytes
    cdef Py_ssize_t offset
    if align > PAIR_BYTES:
        align = PAIR_BYTES
    if r.row_stride != itemsize:
        return 0
    offset = <Py_ssize_t>(<size_t>r.data % <size_t>align)
    if offset % itemsize:
        return 0
    return offset // itemsize


cdef inline bint in_tiles(const Job *job, Py_ssize_t itemsize) noexcept nogil:
    """Rows that lie next to each other in memory with a strided class axis (a (C, N)
    array read along axis 0): gathered a tile of rows at a time, so that each class's
    values of the tile are one contiguous read (whole cache lines), instead of one row at
    a time across C cache lines and pages."""
    return (job.rx.n > 0 and job.rx.col_stride != itemsize and job.rx.row_stride == itemsize
            and job.x_half == HALF_NONE and job.t_half == HALF_NONE)


cdef void gather_tile(const dc_rows *r, int half, Py_ssize_t first, Py_ssize_t count,
                      real *tile) noexcept nogil:
    """Rows first .. first + count - 1 of r as count contiguous rows of values as stored
    (no temperature, no mask): half storage widened row by row (adjacent half rows with a
    strided class axis: class by class); rows adjacent in memory through the transposing
    copy of _gather.h (one contiguous read per class); any other rows value by value."""
    cdef Py_ssize_t n = r.n, c, j
    cdef const char *base = r.data + first * r.row_stride
    cdef const char *row
    cdef const unsigned short *hsrc
    cdef unsigned short h
    if half != HALF_NONE:
        if r.row_stride == 2 and r.col_stride != 2:
            for c in range(n):
                hsrc = <const unsigned short *>(base + c * r.col_stride)
                for j in range(count):
                    tile[j * n + c] = <real>(dc_f16_to_f32(hsrc[j]) if half == HALF_F16
                                             else dc_bf16_to_f32(hsrc[j]))
            return
        for j in range(count):
            row = base + j * r.row_stride
            if real is float and r.col_stride == 2:
                if half == HALF_F16:
                    dc_widen_f16(<const unsigned short *>row, n, tile + j * n)
                else:
                    dc_widen_bf16(<const unsigned short *>row, n, tile + j * n)
            else:
                for c in range(n):
                    h = (<const unsigned short *>(row + c * r.col_stride))[0]
                    tile[j * n + c] = <real>(dc_f16_to_f32(h) if half == HALF_F16
                                             else dc_bf16_to_f32(h))
        return
    if r.row_stride == sizeof(real):
        if real is float:
            dc_gather_rows_f32(base, n, r.col_stride, count, tile)
        else:
            dc_gather_rows_f64(base, n, r.col_stride, count, tile)
        return
    for j in range(count):
        row = base + j * r.row_stride
        for c in range(n):
            tile[j * n + c] = (<const real *>(row + c * r.col_stride))[0]


cdef void offset_rows(Job *sub, const Job *job, Py_ssize_t first,
                      Py_ssize_t itemsize) noexcept nogil:
    """sub's per-row arrays (labels, results, flags, output rows) start at job's row
    `first`."""
    if job.labels != NULL:
        sub.labels = job.labels + first
    if job.ce != NULL:
        sub.ce = job.ce + first
    if job.h != NULL:
        sub.h = job.h + first
    if job.kl != NULL:
        sub.kl = job.kl + first
    if job.row_weight != NULL:
        sub.row_weight = job.row_weight + first
    if job.bad != NULL:
        sub.bad, sub.psum, sub.nbad = job.bad + first, job.psum + first, job.nbad + first
    if job.out != NULL:
        sub.out = job.out + first * (itemsize if job.out_col_stride != 0
                                     else job.rx.n * itemsize)
    if job.row_max != NULL:
        sub.row_max, sub.row_c = job.row_max + first, job.row_c + first


cdef inline void block_of(Job *sub, const Job *job, Py_ssize_t b,
                          Py_ssize_t itemsize) noexcept nogil:
    """sub = block b of a job over (B, R, C) blocks: an (R, C) job of its own, its rows
    and per-row arrays offset (the gradient's scale, computed for the whole batch, is the
    same for every block)."""
    sub[0] = job[0]
    sub.block_rows = 0
    sub.rx.data = job.rx.data + b * job.x_block
    if job.rx.mask != NULL:
        sub.rx.mask = job.rx.mask + b * job.xm_block
    if job.rt.data != NULL:
        sub.rt.data = job.rt.data + b * job.t_block
        if job.rt.mask != NULL:
            sub.rt.mask = job.rt.mask + b * job.xm_block
    offset_rows(sub, job, b * job.block_rows, itemsize)
    if job.out != NULL and job.out_col_stride != 0:
        sub.out = job.out + b * job.out_block


cdef int run_blocks(const Job *job, Py_ssize_t n_rows, real *typed) except -1:
    """A job over (B, R, C) blocks of rows, one block (block_of) after the other."""
    cdef Job sub
    cdef Py_ssize_t b
    for b in range(n_rows // job.block_rows):
        block_of(&sub, job, b, sizeof(real))
        run_rows(&sub, job.block_rows, typed)
    return 0


cdef void run_tile(const Job *job, Py_ssize_t first, Py_ssize_t count, Py_ssize_t per_tile,
                   real *buf, Py_ssize_t nbuf, bint adjacent) noexcept nogil:
    """Rows first .. first + count - 1 of a tiled job (half storage, or a strided class
    axis with adjacent rows), through a copy of the job whose rows are the gathered tile
    of float rows and whose per-row arrays start at row `first`: in lanes when the rows
    are short, so that half input gives the bits of its widened values. adjacent (run_rows'
    in_adjacent_rows, decided once per call): the rows are scanned where they lie."""
    cdef Job sub = job[0]
    cdef Py_ssize_t n = job.rx.n, j
    cdef real *xtile = buf + 3 * nbuf
    cdef real *ttile = xtile + per_tile * n
    if adjacent:
        run_tile_adjacent(job, first, count, xtile)
        return
    gather_tile(&job.rx, job.x_half, first, count, xtile)
    sub.x_half = HALF_NONE
    sub.rx.data = <const char *>xtile
    sub.rx.row_stride = n * sizeof(real)
    sub.rx.col_stride = sizeof(real)
    if job.rx.mask != NULL:
        sub.rx.mask = job.rx.mask + first * job.rx.mask_row_stride
    if job.rt.data != NULL:
        if job.t_half != HALF_NONE or (job.rt.col_stride != sizeof(real)
                                       and job.rt.row_stride == sizeof(real)):
            gather_tile(&job.rt, job.t_half, first, count, ttile)
            sub.t_half = HALF_NONE
            sub.rt.data = <const char *>ttile
            sub.rt.row_stride = n * sizeof(real)
            sub.rt.col_stride = sizeof(real)
        else:
            sub.rt.data = job.rt.data + first * job.rt.row_stride
        if job.rt.mask != NULL:
            sub.rt.mask = job.rt.mask + first * job.rt.mask_row_stride
    offset_rows(&sub, job, first, sizeof(real))
    if in_lanes(&sub):
        run_lane_chunk(&sub, 0, count, buf)
        return
    for j in range(count):
        run_row(&sub, j, buf, buf + nbuf, buf + 2 * nbuf)


cdef inline bint in_adjacent_rows(const Job *job, Py_ssize_t itemsize) noexcept nogil:
    """A tiled job (in_tiles) whose rows are scanned where they lie, one row per vector lane
    (run_tile_adjacent), with no copy: the log-sum-exp, cross-entropy with labels (no
    smoothing), the losses against a teacher's logits, and log_softmax / softmax written
    in the logits' layout (out_col_stride; its rows' maxima and sums first, then
    write_log_softmax_adjacent), unmasked, at temperature 1."""
    if not (in_tiles(job, itemsize) and job.rx.mask == NULL and job.rx.temperature == 1.0
            and job.rx.n > DC_LANES_MAX_N
            and (job.rx.col_stride >= ADJACENT_MIN_STRIDE
                 or -job.rx.col_stride >= ADJACENT_MIN_STRIDE)):
        return False
    if job.rt.data == NULL:
        return (job.op == OP_LSE or (job.op == OP_CE_LABEL and job.eps == 0.0)
                or (job.op == OP_LOG_SOFTMAX and job.out_col_stride != 0))
    # KL / CE / decompose against a teacher's logits laid out alike (no class weights)
    return (job.op == OP_SOFT and job.kind == DC_TARGET_LOGITS and not job.reverse
            and job.eps == 0.0 and job.weight == NULL and job.rt.mask == NULL
            and job.rt.temperature == 1.0 and job.rt.row_stride == itemsize)


cdef void run_tile_adjacent(const Job *job, Py_ssize_t first, Py_ssize_t count,
                            real *typed) noexcept nogil:
    """Rows first .. first + count - 1 (count <= ADJACENT_ROWS_MAX) of an in_adjacent_rows
    job: their scans in place (dc_lse_scan_adjacent, which mirrors dc_lse_update lane by
    lane), so the results are run_row's bits on the gathered rows. (typed: only its type
    is used.)"""
    cdef dc_lse_state st[ADJACENT_ROWS_MAX]
    cdef dc_soft_result res[ADJACENT_ROWS_MAX]
    cdef Py_ssize_t j, i
    cdef const real *w = <const real *>job.weight
    if job.op == OP_SOFT:
        soft_logits_adjacent(<const real *>(job.rx.data + first * job.rx.row_stride),
                             <const real *>(job.rt.data + first * job.rt.row_stride),
                             job.rx.n, job.rx.col_stride, job.rt.col_stride, count, res)
        for j in range(count):
            store_soft_row(job, first + j, &res[j])
        return
    for j in range(count):
        dc_lse_init(&st[j])
    lse_scan_adjacent(<const real *>(job.rx.data + first * job.rx.row_stride), job.rx.n,
                      job.rx.col_stride, count, st)
    if job.op == OP_LOG_SOFTMAX:   # M and c of dc_log_softmax_of_state, for the writer
        for j in range(count):
            i = first + j
            if dc_lse_ok(&st[j]):
                job.row_max[i] = st[j].max
                job.row_c[i] = (1.0 / dc_lse_sum(&st[j]) if job.exponentiate
                                else dc_lse_log_sum(&st[j]))
            else:
                job.row_max[i] = job.row_c[i] = NAN
        return
    for j in range(count):
        store_lse_row(job, first + j, &st[j],
                      dc_lse_log_sum(&st[j]) if dc_lse_ok(&st[j]) else 0.0, w)


cdef void run_block_tile(const Job *job, Py_ssize_t unit, Py_ssize_t per_block,
                         Py_ssize_t per_tile, real *buf, Py_ssize_t nbuf,
                         bint adjacent) noexcept nogil:
    """Unit `unit` of a job over (B, R, C) blocks whose rows go in tiles: tile
    unit % per_block of block unit // per_block (per_block: enough tiles for R rows
    whatever the block's alignment; the ones past its rows are empty)."""
    cdef Job sub
    cdef Py_ssize_t t = unit % per_block, shift, first, end
    block_of(&sub, job, unit // per_block, sizeof(real))
    shift = tile_shift(&sub.rx, per_tile, sizeof(real))
    first = max(<Py_ssize_t>0, t * per_tile - shift)
    end = min(job.block_rows, (t + 1) * per_tile - shift)
    if first < end:
        run_tile(&sub, first, end - first, per_tile, buf, nbuf, adjacent)


cdef inline void run_span(const Job *job, Py_ssize_t unit, Py_ssize_t n_rows, bint lanes,
                          Py_ssize_t per_tile, Py_ssize_t shift, Py_ssize_t per_block,
                          bint adjacent, real *buf, Py_ssize_t nbuf) noexcept nogil:
    """Work unit `unit` of run_rows: one chunk of rows in lanes, one tile of at most
    per_tile rows (per_tile > 0; the first `shift` rows short, tile_shift; of a block when
    per_block > 0, run_block_tile), else one row."""
    cdef Py_ssize_t first, end
    if per_block > 0:
        run_block_tile(job, unit, per_block, per_tile, buf, nbuf, adjacent)
    elif lanes:
        first = unit * LANE_CHUNK
        run_lane_chunk(job, first, min(<Py_ssize_t>LANE_CHUNK, n_rows - first), buf)
    elif per_tile > 0:
        first = max(<Py_ssize_t>0, unit * per_tile - shift)
        end = min(n_rows, (unit + 1) * per_tile - shift)
        run_tile(job, first, end - first, per_tile, buf, nbuf, adjacent)
    else:
        run_row(job, unit, buf, buf + nbuf, buf + 2 * nbuf)


cdef enum:
    MAX_ROW_PARTS = 64


# A row at least this long, in a call with fewer rows than threads, is itself split into
# block-aligned parts scanned by different threads (log-sum-exp, labels, log_softmax, the
# losses, entropies and Jensen-Shannon against a soft target: splits_rows).
cdef Py_ssize_t SPLIT_ROW_MIN_VALUES = 1 << 20


cdef inline bint splits_rows(const Job *job, Py_ssize_t n_rows, int threads,
                             Py_ssize_t itemsize) noexcept nogil:
    """Whether each of the job's rows is split across threads (run_split_row): unmasked,
    untempered rows of at least SPLIT_ROW_MIN_VALUES values, fewer than the threads, of an
    operation whose parts' states merge (a soft target read in place, no smoothing)."""
    if not (threads > 1 and n_rows < threads and job.rx.n >= SPLIT_ROW_MIN_VALUES
            and job.rx.mask == NULL and job.rx.temperature == 1.0):
        return False
    if job.op == OP_LSE or job.op == OP_LOG_SOFTMAX or (job.op == OP_CE_LABEL
                                                         and job.eps == 0.0):
        return True
    # the entropies, the losses and Jensen-Shannon against a soft target read in place
    # (split_t.h)
    if job.op == OP_ENTROPY:
        return True
    return ((job.op == OP_JS or (job.op == OP_SOFT and job.eps == 0.0))
            and job.rt.mask == NULL and job.rt.temperature == 1.0
            and job.rt.col_stride == itemsize)


cdef void run_split_row(const Job *job, Py_ssize_t i, int nt, real *buf) noexcept nogil:
    """Row i of a splits_rows job, over nt threads: each scans a part into its own state,
    the states are merged in order (dc_lse_merge), and log_softmax writes its parts in
    parallel again; against a soft target, run_split_soft_row / run_split_twice_row. buf:
    room for one row when the row cannot be read in place."""
    cdef dc_lse_state parts[MAX_ROW_PARTS]
    cdef Py_ssize_t n = job.rx.n, part, lo, hi
    cdef Py_ssize_t span = ((n + nt - 1) // nt + DC_BLOCK - 1) // DC_BLOCK * DC_BLOCK
    cdef const real *x = row_of(&job.rx, i, <real>-INFINITY, buf)
    cdef const real *w = <const real *>job.weight
    cdef double log_sum
    cdef int64_t y = 0
    if (job.op == OP_SOFT and not (job.reverse and job.kind != DC_TARGET_LOGITS)
            or job.op == OP_ENTROPY):
        run_split_soft_row(job, i, nt, span, x)
        return
    if job.op == OP_JS or (job.op == OP_SOFT and job.reverse
                           and job.kind != DC_TARGET_LOGITS):
        run_split_twice_row(job, i, nt, span, x)
        return
    if job.op == OP_CE_LABEL:
        y = job.labels[i]
        if label_row_ignored(job, i, y):
            return
    for part in prange(nt, num_threads=nt, schedule="static"):
        lo = part * span
        hi = min(n, lo + span)
        dc_lse_init(&parts[part])
        if lo < hi:
            lse_update(&parts[part], x + lo, hi - lo)
    for part in range(1, nt):
        dc_lse_merge(&parts[0], &parts[part])
    log_sum = dc_lse_log_sum(&parts[0]) if dc_lse_ok(&parts[0]) else 0.0
    if job.op == OP_LOG_SOFTMAX:
        for part in prange(nt, num_threads=nt, schedule="static"):
            lo = part * span
            hi = min(n, lo + span)
            if lo < hi:
                log_softmax_of_state(x + lo, hi - lo, &parts[0], log_sum, job.exponentiate,
                                     (<real *>job.out) + i * n + lo)
    else:
        store_lse_row(job, i, &parts[0], log_sum, w)


cdef void run_split_soft_row(const Job *job, Py_ssize_t i, int nt, Py_ssize_t span,
                             const real *x) noexcept nogil:
    """Row i of a splits_rows job against a soft target, or its entropy, over nt threads in
    parts of `span` values: each part's one-read state (dc_split_part), merged in order and
    finished (dc_split_join); then run_row's stores and validation. Reverse KL against
    logits is the forward one with the rows' roles swapped (as soft_row computes it)."""
    cdef dc_soft_split parts[MAX_ROW_PARTS]
    cdef dc_soft_result res
    cdef Py_ssize_t n = job.rx.n, part, lo, hi, used = (n + span - 1) // span
    cdef const real *w = <const real *>job.weight
    cdef const real *t = (<const real *>(job.rt.data + i * job.rt.row_stride)
                          if job.rt.data != NULL else NULL)
    cdef int kind = job.kind
    cdef const real *a = x
    cdef const real *b = t
    if job.op == OP_ENTROPY:
        kind = (DC_SPLIT_ENTROPY if job.kind == DC_TARGET_LOGITS else DC_SPLIT_ENTROPY_PROBS
                if job.kind == DC_TARGET_PROBS else DC_SPLIT_ENTROPY_LOG_PROBS)
    elif job.reverse:     # KL(q ‖ p) = KL of x's softmax as the target of t's (no weights)
        a, b, w = t, x, NULL
    for part in prange(used, num_threads=nt, schedule="static"):
        lo = part * span
        hi = min(n, lo + span)
        split_part(a + lo, b + lo if b != NULL else NULL, w + lo if w != NULL else NULL,
                   hi - lo, kind, job.want_h, &parts[part])
    split_join(parts, used, kind, w != NULL, job.want_h, &res, x)
    if job.op == OP_ENTROPY:
        job.ce[i] = res.ce
        flagged_bad_row(job, i, res.psum, res.nbad)
        return
    store_soft_row(job, i, &res)


cdef void run_split_twice_row(const Job *job, Py_ssize_t i, int nt, Py_ssize_t span,
                              const real *x) noexcept nogil:
    """Row i over nt threads of a splits_rows job that reads its row twice (Jensen-Shannon,
    reverse KL against probabilities or log-probabilities): the parts' scans of x (and of a
    logits target) merged in order, then each part's values pass against the whole row's
    (dc_split_js_part, dc_split_kl_reverse_part), their sums added in order and finished
    (dc_js_finish, dc_kl_reverse_finish); then run_row's stores and validation."""
    cdef dc_lse_state sx[MAX_ROW_PARTS]
    cdef dc_lse_state st[MAX_ROW_PARTS]
    cdef double sums[3 * MAX_ROW_PARTS]
    cdef Py_ssize_t n = job.rx.n, part, lo, hi, used = (n + span - 1) // span, nbad
    cdef const real *t = <const real *>(job.rt.data + i * job.rt.row_stride)
    cdef bint logits = job.kind == DC_TARGET_LOGITS
    cdef double js = 0.0, ps = 0.0, bad = 0.0, psum
    cdef dc_soft_result res
    res.kl = NAN
    for part in prange(used, num_threads=nt, schedule="static"):
        lo = part * span
        hi = min(n, lo + span)
        dc_lse_init(&sx[part])
        dc_lse_init(&st[part])
        lse_update(&sx[part], x + lo, hi - lo)
        if logits:
            lse_update(&st[part], t + lo, hi - lo)
    for part in range(1, used):
        dc_lse_merge(&sx[0], &sx[part])
        dc_lse_merge(&st[0], &st[part])
    for part in prange(used, num_threads=nt, schedule="static"):
        lo = part * span
        hi = min(n, lo + span)
        if job.op == OP_JS:
            split_js_part(x + lo, t + lo, hi - lo, job.kind, job.beta, &sx[0], &st[0],
                          n > DC_LANES_MAX_N, &sums[3 * part])
        else:
            split_kl_reverse_part(x + lo, t + lo, hi - lo, job.kind == DC_TARGET_LOG_PROBS,
                                  &sx[0], &sums[3 * part])
    for part in range(used):
        js += sums[3 * part]
        ps += sums[3 * part + 1]
        bad += sums[3 * part + 2]
    if job.op == OP_JS:
        job.ce[i] = dc_js_finish(dc_js_ok(&sx[0], &st[0], job.kind), job.kind, job.beta, js,
                                 ps, <Py_ssize_t>bad, &psum, &nbad)
    else:
        dc_kl_reverse_finish(&sx[0], js, ps, <Py_ssize_t>bad, &res)
        psum, nbad = res.psum, res.nbad
    if not flagged_bad_row(job, i, psum, nbad) and job.op == OP_SOFT and job.kl != NULL:
        job.kl[i] = res.kl


cdef inline bint read_in_place(const dc_rows *r, Py_ssize_t itemsize) noexcept nogil:
    """dc_row returns a pointer into the array itself (no buffer needed), or r is unused."""
    return r.data == NULL or (r.mask == NULL and r.temperature == 1.0
                              and r.col_stride == itemsize)


cdef inline bint half_rows_direct(const Job *job) noexcept nogil:
    """Class-last half rows of the log-sum-exp or of cross-entropy with labels (no mask,
    temperature 1, no smoothing) longer than the lanes take: each row goes to the C API's
    half kernel, which widens a DC_BLOCK chunk at a time in L1 and runs the float kernel's
    own block loop (the float kernel's bits: half_t.h), instead of a widened tile in L2."""
    return (job.x_half != HALF_NONE and job.rx.col_stride == 2 and job.rx.mask == NULL
            and job.rx.temperature == 1.0 and job.rx.n > DC_LANES_MAX_N
            and job.rt.data == NULL and job.block_rows == 0
            and (job.op == OP_LSE or (job.op == OP_CE_LABEL and job.eps == 0.0)))


cdef void half_row(const Job *job, Py_ssize_t i) noexcept nogil:
    """Row i of a half_rows_direct job (run_row's OP_LSE / OP_CE_LABEL branches)."""
    cdef const uint16_t *x = <const uint16_t *>(job.rx.data + i * job.rx.row_stride)
    cdef Py_ssize_t n = job.rx.n
    cdef bint f16 = job.x_half == HALF_F16
    cdef int64_t y
    cdef double wy
    if job.op == OP_LSE:
        job.ce[i] = dcd_dc_logsumexp_f16(x, n) if f16 else dcd_dc_logsumexp_bf16(x, n)
        return
    y = job.labels[i]           # in range: checked before the loop
    if label_row_ignored(job, i, y):
        return
    wy = label_weight(job, i, y, <const float *>job.weight)
    store_label_loss(job, i, wy * (dcd_dc_ce_label_f16(x, n, y) if f16
                                   else dcd_dc_ce_label_bf16(x, n, y)))


cdef void run_half_rows(const Job *job, Py_ssize_t n_rows) noexcept nogil:
    cdef int nt = threads_for(n_rows, job.rx.n)
    cdef Py_ssize_t i
    if nt > n_rows:
        nt = <int>n_rows
    if nt <= 1:
        for i in range(n_rows):
            half_row(job, i)
        return
    for i in prange(n_rows, num_threads=nt, schedule="static"):
        half_row(job, i)


cdef bint scans_adjacent(const Job *job, Py_ssize_t n_rows, Py_ssize_t itemsize) noexcept nogil:
    """run_rows' choice for the job's n_rows rows: in tiles of float rows (not half, not
    short rows in lanes, more than one row per block) scanned where they lie
    (in_adjacent_rows)."""
    cdef Py_ssize_t rows = (job.block_rows if job.block_rows > 0 and n_rows > job.block_rows
                            else n_rows)
    return (rows > 1 and job.x_half == HALF_NONE and job.t_half == HALF_NONE
            and not in_lanes(job) and in_adjacent_rows(job, itemsize))


cdef int run_log_softmax_adjacent(const Job *job, Py_ssize_t n_rows, real *typed) except -1:
    """log_softmax / softmax of a scans_adjacent job whose output is laid out like its
    logits: every row's scan in place first (run_rows with row_max / row_c set, into which
    run_tile_adjacent puts each row's M and c), then write_log_softmax_adjacent."""
    cdef Job sub = job[0]
    cdef double *state = <double *>malloc(max(<Py_ssize_t>1, 2 * n_rows) * sizeof(double))
    if state == NULL:
        raise MemoryError(f"cannot allocate the maxima and sums of {n_rows} rows")
    sub.row_max, sub.row_c = state, state + n_rows
    try:
        run_rows(&sub, n_rows, typed)
        with nogil:
            write_log_softmax_adjacent(&sub, n_rows, typed)
    finally:
        free(state)
    return 0


cdef void write_log_softmax_adjacent(const Job *job, Py_ssize_t n_rows,
                                     real *typed) noexcept nogil:
    """The output of a run_log_softmax_adjacent job, once its rows' M and c are known: for
    each block, class k of its adjacent rows at a time (a contiguous run in both arrays),
    out = (x - M) - c or exp(x - M)·c (dc_log_softmax_adjacent), in the arrays' order, the
    classes split over threads. (typed: only its type is used.)"""
    cdef Py_ssize_t n = job.rx.n, u
    cdef Py_ssize_t rows = (job.block_rows if job.block_rows > 0 and n_rows > job.block_rows
                            else n_rows)
    cdef Py_ssize_t units = n_rows // rows * n
    cdef int nt = threads_for(n_rows, n)
    if nt <= 1:
        for u in range(units):
            write_class_adjacent(job, u // n, u % n, rows, typed)
        return
    for u in prange(units, num_threads=nt, schedule="static"):
        write_class_adjacent(job, u // n, u % n, rows, typed)


cdef inline void write_class_adjacent(const Job *job, Py_ssize_t b, Py_ssize_t k,
                                      Py_ssize_t rows, real *typed) noexcept nogil:
    """Class k of block b's rows (write_log_softmax_adjacent)."""
    log_softmax_adjacent(
        <const real *>(job.rx.data + b * job.x_block + k * job.rx.col_stride), rows, k,
        job.rx.n, job.row_max + b * rows, job.row_c + b * rows, job.exponentiate,
        <real *>(job.out + b * job.out_block + k * job.out_col_stride))


cdef int run_rows(const Job *job, Py_ssize_t n_rows, real *typed) except -1:
    """Every row of the job: on the calling thread for small inputs, else spread over
    OpenMP threads, each with its own three one-row buffers. The GIL is released. The
    buffers hold a row only when some row must be gathered (strided, masked, tempered) or
    smoothed: a row of 2^31 values read in place needs no copy of itself. A job over
    (B, R, C) blocks goes block by block (run_blocks), or, when its rows go in tiles, as
    one loop over every block's tiles (one parallel region, not B)."""
    cdef Py_ssize_t n = job.rx.n, u
    cdef bint blocks = job.block_rows > 0 and n_rows > job.block_rows
    cdef Py_ssize_t rows = job.block_rows if blocks else n_rows   # of one block
    cdef bint half = job.x_half != HALF_NONE or job.t_half != HALF_NONE
    cdef bint gathers = (not read_in_place(&job.rx, sizeof(real))
                         or not read_in_place(&job.rt, sizeof(real)) or job.eps != 0.0
                         or half)
    cdef Py_ssize_t nbuf = n if n > 0 and gathers else 1
    cdef bint lanes = in_lanes(job) and not half   # the lanes read float rows
    # half storage is widened a tile of rows at a time (then in lanes if they are short)
    cdef bint tiles = rows > 0 and (half or (not lanes and rows > 1
                                             and in_tiles(job, sizeof(real))))
    cdef bint adjacent = scans_adjacent(job, n_rows, sizeof(real))
    cdef Py_ssize_t per_tile = (<Py_ssize_t>ADJACENT_ROWS_MAX if adjacent else
                                (half_tile_rows(job, n) if half else tile_rows(n, sizeof(real)))
                                if tiles else 0)
    cdef Py_ssize_t shift = tile_shift(&job.rx, per_tile, sizeof(real)) if tiles else 0
    cdef Py_ssize_t per_block = (rows + 2 * per_tile - 2) // per_tile if tiles and blocks else 0
    cdef Py_ssize_t units = ((n_rows + LANE_CHUNK - 1) // LANE_CHUNK if lanes else
                             (n_rows + shift + per_tile - 1) // per_tile if tiles else n_rows)
    cdef Py_ssize_t nalloc = 3 * nbuf + (0 if adjacent else 2 * per_tile * n)
    cdef int nt = threads_for(n_rows, n)
    cdef int failed = 0
    cdef int *failed_p = &failed
    cdef real *buf = NULL
    cdef int threads = configured_threads()
    if job.out_col_stride != 0 and not adjacent:
        raise RuntimeError("divcore internal error: an output laid out like the logits "
                           "needs rows adjacent in memory (scans_adjacent)")
    if adjacent and job.op == OP_LOG_SOFTMAX and job.row_max == NULL:
        return run_log_softmax_adjacent(job, n_rows, typed)
    if real is float and half_rows_direct(job):
        with nogil:
            run_half_rows(job, n_rows)
        return 0
    if blocks and not tiles:
        return run_blocks(job, n_rows, typed)
    if blocks:
        units = n_rows // rows * per_block
    if splits_rows(job, n_rows, threads, sizeof(real)) and not half and not tiles:
        if threads > MAX_ROW_PARTS:
            threads = MAX_ROW_PARTS
        buf = <real *>malloc(nbuf * sizeof(real))
        if buf == NULL:
            raise MemoryError(f"cannot allocate a row buffer of {n} values")
        with nogil:
            for u in range(n_rows):
                run_split_row(job, u, threads, buf)
        free(buf)
        return 0
    if nt > units:
        nt = <int>units
    if nt <= 1:
        buf = <real *>malloc(nalloc * sizeof(real))
        if buf == NULL:
            raise MemoryError(f"cannot allocate row buffers of {n} values")
        with nogil:
            for u in range(units):
                run_span(job, u, n_rows, lanes, per_tile, shift, per_block, adjacent, buf,
                         nbuf)
        free(buf)
        return 0
    with nogil, parallel(num_threads=nt):
        buf = <real *>malloc(nalloc * sizeof(real))
        if buf == NULL:
            failed_p[0] = 1
        for u in prange(units, schedule="static"):
            if buf != NULL:
                run_span(job, u, n_rows, lanes, per_tile, shift, per_block, adjacent, buf,
                         nbuf)
        free(buf)
    if failed:
        raise MemoryError(f"cannot allocate row buffers of {n} values")
    return 0


cdef Job new_job(int op):
    cdef Job job
    memset(&job, 0, sizeof(Job))
    job.op = op
    return job


cdef class _Validation:
    """Per-row flags and sums of a validated batch, for the message of the first bad row."""
    cdef object bad, psum, nbad

    def __cinit__(self, Py_ssize_t n_rows):
        self.bad = np.zeros(n_rows, dtype=np.uint8)
        self.psum = np.zeros(n_rows, dtype=np.float64)
        self.nbad = np.zeros(n_rows, dtype=np.intp)

    cdef void attach(self, Job *job):
        cdef unsigned char[::1] b = self.bad
        cdef double[::1] p = self.psum
        cdef Py_ssize_t[::1] k = self.nbad
        if b.shape[0] > 0:
            job.bad, job.psum, job.nbad = &b[0], &p[0], &k[0]

    def raise_first(self, double tol, str argument, bint can_skip):
        if self.bad.shape[0] and self.bad.any():
            row = int(np.argmax(self.bad))
            _check_target_row(row, float(self.psum[row]), int(self.nbad[row]), tol,
                              argument, can_skip)


cdef int run_rows_validated(Job *job, Py_ssize_t n_rows, real *typed, str argument,
                            bint can_skip) except -1:
    """run_rows, then the error of the first row that failed validation (if the job
    validates): the flags are per row, so a threaded run reports the same row."""
    cdef _Validation checks = _Validation(n_rows if job.check else 0)
    checks.attach(job)
    run_rows(job, n_rows, typed)
    checks.raise_first(job.tol, argument, can_skip)
    return 0


cdef double *data_of(object arr):
    """The first element of a float64 per-row result (None: NULL)."""
    cdef double[::1] v
    if arr is None:
        return NULL
    v = arr
    return &v[0] if v.shape[0] > 0 else NULL


cdef check_labels(const int64_t[:] labels, Py_ssize_t n, object ignore_index):
    """IndexError for the first label out of [0, n) that is not ignore_index."""
    cdef Py_ssize_t i
    cdef bint has_ignore = ignore_index is not None
    cdef int64_t ignored = ignore_index if has_ignore else 0
    cdef int64_t y
    for i in range(labels.shape[0]):
        y = labels[i]
        if (y < 0 or y >= n) and not (has_ignore and y == ignored):
            raise _errors.label_out_of_range(i, y, n)


cdef char *rows_out(object out):
    """The (N, C) C-contiguous output array's first byte."""
    return <char *>np.PyArray_DATA(out) if out is not None else NULL
