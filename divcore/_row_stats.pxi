# divcore._core, part 6: row_stats (SPEC §7). One C kernel per row (dc_row_stats_*,
# src/divcore/row_stats.h) reads the row once for its log-sum-exp, the label's
# log-probability, the entropy, the argmax and the top-k; this driver only finds each row
# (blocks of rows, half storage widened, mask and temperature applied by dc_row_*), walks
# the rows over threads as run_rows does, and applies the mask's two rules the kernel
# cannot see (a masked class is never the argmax, and comes after the unmasked -inf ones
# in a short top-k).

ctypedef struct RowStatsJob:
    dc_rows rx                  # the logits (the first block of (B, R, C) blocks)
    int x_half                  # HALF_*: float16 / bfloat16 storage, widened a row at a time
    Py_ssize_t block_rows       # rows per block (0: one block) and the byte strides from
    Py_ssize_t x_block          # one block to the next (logits, mask)
    Py_ssize_t xm_block
    const int64_t *labels       # (N,) in range, or NULL
    Py_ssize_t k
    double *lse                 # per-row results
    double *log_prob            # NULL without labels
    double *entropy
    int64_t *argmax
    int64_t *topk_index         # (N, k), or NULL for k = 0
    double *topk_log_prob


cdef inline void row_stats_kernel(const real *x, Py_ssize_t n, Py_ssize_t label, Py_ssize_t k,
                                  int64_t *ti, double *tl, dc_row_stats *out) noexcept nogil:
    if real is float:
        dcd_dc_row_stats_f32(x, n, label, k, ti, tl, out)
    else:
        dcd_dc_row_stats_f64(x, n, label, k, ti, tl, out)


cdef inline bint kept(const dc_rows *one, Py_ssize_t c) noexcept nogil:
    return one.mask[c * one.mask_col_stride] != 0


cdef void masked_row_rules(const dc_rows *one, const real *x, Py_ssize_t k,
                           dc_row_stats *st, int64_t *ti, double *tl) noexcept nogil:
    """A row with a mask: the argmax of a row with no value above -inf is its first kept
    class (-1 with none kept); a top-k that ends with -inf entries takes the kept ones
    first, then the masked ones, each in index order."""
    cdef Py_ssize_t n = one.n, c, j, start
    cdef int pass_
    if st.logsumexp == -INFINITY:
        st.argmax = -1
        for c in range(n):
            if kept(one, c):
                st.argmax = c
                break
    if k == 0 or not (tl[k - 1] == -INFINITY):
        return
    start = k - 1
    while start > 0 and tl[start - 1] == -INFINITY:
        start -= 1
    j = start
    for pass_ in range(2):
        for c in range(n):
            if j == k:
                return
            if x[c] == -INFINITY and kept(one, c) == (pass_ == 0):
                ti[j] = c
                j += 1


cdef void row_stats_row(const RowStatsJob *job, Py_ssize_t i, real *buf,
                        real *wide) noexcept nogil:
    """Row i of the job, with this thread's buffers (the gathered row; the widened row)."""
    cdef dc_rows one = job.rx
    cdef Py_ssize_t n = job.rx.n, c, b = 0, r = i
    cdef Py_ssize_t k = job.k
    cdef dc_row_stats st
    cdef int64_t *ti = job.topk_index + i * k if k > 0 else NULL
    cdef double *tl = job.topk_log_prob + i * k if k > 0 else NULL
    cdef const real *x
    cdef unsigned short h
    if job.block_rows > 0:
        b = i // job.block_rows
        r = i - b * job.block_rows
    one.data = job.rx.data + b * job.x_block + r * job.rx.row_stride
    if job.rx.mask != NULL:
        one.mask = job.rx.mask + b * job.xm_block + r * job.rx.mask_row_stride
    if job.x_half != HALF_NONE and n > 0:   # (real is float)
        if one.col_stride == 2:
            if job.x_half == HALF_F16:
                dc_widen_f16(<const unsigned short *>one.data, n, <float *>wide)
            else:
                dc_widen_bf16(<const unsigned short *>one.data, n, <float *>wide)
        else:
            for c in range(n):
                h = (<const unsigned short *>(one.data + c * one.col_stride))[0]
                wide[c] = <real>(dc_f16_to_f32(h) if job.x_half == HALF_F16
                                 else dc_bf16_to_f32(h))
        one.data = <const char *>wide
        one.col_stride = sizeof(real)
    x = row_of(&one, 0, <real>-INFINITY, buf)
    row_stats_kernel(x, n, job.labels[i] if job.labels != NULL else -1, k, ti, tl, &st)
    if one.mask != NULL:
        masked_row_rules(&one, x, k, &st, ti, tl)
    job.lse[i] = st.logsumexp
    job.entropy[i] = st.entropy
    job.argmax[i] = st.argmax
    if job.log_prob != NULL:
        job.log_prob[i] = st.log_prob


cdef int run_row_stats(const RowStatsJob *job, Py_ssize_t n_rows, real *typed) except -1:
    """Every row: on the calling thread for small inputs, else over OpenMP threads (static
    schedule, so the results do not depend on the thread count), each with its own two
    one-row buffers. The GIL is released."""
    cdef Py_ssize_t n = job.rx.n, i
    cdef Py_ssize_t nbuf = n if n > 0 else 1
    cdef int nt = threads_for(n_rows, n)
    cdef int failed = 0
    cdef int *failed_p = &failed
    cdef real *buf = NULL
    if nt <= 1:
        buf = <real *>malloc(2 * nbuf * sizeof(real))
        if buf == NULL:
            raise MemoryError(f"cannot allocate row buffers of {n} values")
        with nogil:
            for i in range(n_rows):
                row_stats_row(job, i, buf, buf + nbuf)
        free(buf)
        return 0
    with nogil, parallel(num_threads=nt):
        buf = <real *>malloc(2 * nbuf * sizeof(real))
        if buf == NULL:
            failed_p[0] = 1
        for i in prange(n_rows, schedule="static"):
            if buf != NULL:
                row_stats_row(job, i, buf, buf + nbuf)
        free(buf)
    if failed:
        raise MemoryError(f"cannot allocate row buffers of {n} values")
    return 0


cdef object _row_stats_rows_typed(np.ndarray x, object labels, object where,
                                  double temperature, Py_ssize_t k, real *typed):
    cdef Py_ssize_t n_rows = n_rows_of(x), n = n_classes_of(x)
    cdef RowStatsJob job
    cdef const int64_t[::1] y
    memset(&job, 0, sizeof(RowStatsJob))
    lse = np.empty(n_rows, dtype=np.float64)
    entropy = np.empty(n_rows, dtype=np.float64)
    argmax = np.empty(n_rows, dtype=np.int64)
    log_prob = np.empty(n_rows, dtype=np.float64) if labels is not None else None
    topk_index = np.empty((n_rows, k), dtype=np.int64)
    topk_log_prob = np.empty((n_rows, k), dtype=np.float64)
    if n_rows == 0:
        return lse, log_prob, entropy, argmax, topk_index, topk_log_prob
    job.rx = rows_of_array(x, where, temperature)
    job.x_half = half_kind(x)
    if np.PyArray_NDIM(x) == 3:
        job.block_rows = np.PyArray_DIM(x, 1)
        job.x_block = np.PyArray_STRIDE(x, 0)
        if where is not None:
            job.xm_block = np.PyArray_STRIDE(<np.ndarray>where, 0)
    if labels is not None:
        y = labels
        job.labels = &y[0]
    job.k = k
    job.lse, job.entropy, job.log_prob = data_of(lse), data_of(entropy), data_of(log_prob)
    job.argmax = <int64_t *>np.PyArray_DATA(argmax)
    if k > 0:
        job.topk_index = <int64_t *>np.PyArray_DATA(topk_index)
        job.topk_log_prob = <double *>np.PyArray_DATA(topk_log_prob)
    run_row_stats(&job, n_rows, typed)
    return lse, log_prob, entropy, argmax, topk_index, topk_log_prob


def row_stats_rows(plan, Py_ssize_t k):
    """(lse, log_prob or None, entropy, argmax, topk_index (N, k), topk_log_prob (N, k))
    per row of x / T (float64 values, int64 indices); labels, when the plan has them, are
    in range (checked by the rules)."""
    if plan.dtype == np.float32:
        return _row_stats_rows_typed[float](<np.ndarray>plan.rows, plan.labels, plan.where,
                                            plan.temperature, k, <float *>NULL)
    return _row_stats_rows_typed[double](<np.ndarray>plan.rows, plan.labels, plan.where,
                                         plan.temperature, k, <double *>NULL)
