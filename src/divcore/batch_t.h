/* divcore/batch_t.h: type-generic body of batch.h (DC_T, DC_SFX defined by the includer;
 * DC_ISA_NAME and DC_TARGET name and target one instruction set, see dispatch.h). The
 * leaves walk rows as divcore/_core.pyx's run_row and run_lane_chunk do, calling the same
 * kernels of the same instruction set, so a row's value is the Python API's to the bit. */

#define DC_FN(name) DC_ISA_NAME(name, DC_SFX)
#define DC_ROW DC_CAT(dc_row, DC_SFX)
#define DC_ROW_VALUE DC_CAT(dc_row_value, DC_SFX)

/* Rows of at most DC_LANES_MAX_N values are scanned in lanes (as _core.pyx's in_lanes);
 * without vector extensions dc_lse_scan_rows takes them one at a time itself. */
static inline int DC_FN(dc_batch_in_lanes)(ptrdiff_t n)
{
    return n > 0 && n <= DC_LANES_MAX_N;
}

/* Per-row log-sum-exp; every row weighs 1. */
DC_TARGET DC_ENTRY void DC_FN(dc_batch_lse_leaf)(const dc_batch_job *job, ptrdiff_t first,
                                                     ptrdiff_t count, double *val, double *wt)
{
    const dc_rows *r = &job->x;
    const ptrdiff_t n = r->n;
    if (DC_FN(dc_batch_in_lanes)(n)) {
        dc_lse_state st[DC_BATCH_LEAF];
        double log_sum[DC_BATCH_LEAF];
        DC_FN(dc_lse_scan_rows)(r, first, count, st, log_sum);
        for (ptrdiff_t j = 0; j < count; j++) {
            val[j] = dc_lse_value_of_log_sum(&st[j], log_sum[j]);
            wt[j] = 1.0;
        }
        return;
    }
    for (ptrdiff_t j = 0; j < count; j++) {
        const DC_T *x = DC_ROW(r, first + j, -(DC_T)INFINITY, (DC_T *)job->buf);
        val[j] = DC_FN(dc_logsumexp)(x, n);
        wt[j] = 1.0;
    }
}

/* Per-row w_y·(-log q_y) with the row's weight w_y (1 without class weights); a row whose
 * label is ignore_index gives 0 and weighs 0. Labels are in range (checked before). */
DC_TARGET DC_ENTRY void DC_FN(dc_batch_ce_labels_leaf)(const dc_batch_job *job,
                                                           ptrdiff_t first, ptrdiff_t count,
                                                           double *val, double *wt)
{
    const dc_rows *r = &job->x;
    const ptrdiff_t n = r->n;
    const DC_T *w = (const DC_T *)job->weight;
    const int lanes = DC_FN(dc_batch_in_lanes)(n);
    dc_lse_state st[DC_BATCH_LEAF];
    double log_sum[DC_BATCH_LEAF];
    if (lanes) DC_FN(dc_lse_scan_rows)(r, first, count, st, log_sum);
    for (ptrdiff_t j = 0; j < count; j++) {
        const ptrdiff_t i = first + j;
        const int64_t y = job->labels[i * job->label_stride];
        if (y == job->ignore_index) {
            val[j] = 0.0;
            wt[j] = 0.0;
            continue;
        }
        const double wy = w != NULL ? (double)w[y] : 1.0;
        double loss;
        if (lanes) {
            loss = dc_ce_label_of_log_sum(&st[j], log_sum[j],
                                          (double)DC_ROW_VALUE(r, i, (ptrdiff_t)y,
                                                               -(DC_T)INFINITY));
        } else {
            const DC_T *x = DC_ROW(r, i, -(DC_T)INFINITY, (DC_T *)job->buf);
            loss = DC_FN(dc_ce_label)(x, n, (ptrdiff_t)y);
        }
        val[j] = wy * loss;
        wt[j] = wy;
    }
}

/* Per-row Σ w_c p_c (lse - x_c) against probabilities (or log-probabilities); every row
 * weighs 1. Short probability rows in lanes (dc_soft_probs_rows), as _core.pyx does for a
 * cross-entropy without label smoothing. */
DC_TARGET DC_ENTRY void DC_FN(dc_batch_ce_probs_leaf)(const dc_batch_job *job,
                                                          ptrdiff_t first, ptrdiff_t count,
                                                          double *val, double *wt)
{
    const ptrdiff_t n = job->x.n;
    const DC_T *w = (const DC_T *)job->weight;
    dc_soft_result res[DC_BATCH_LEAF];
    if (!job->is_log && DC_FN(dc_batch_in_lanes)(n)) {
        DC_FN(dc_soft_probs_rows)(&job->x, &job->t, w, first, count, res);
    } else if (DC_FN(dc_batch_in_lanes)(n)) { /* log-probabilities: their lanes */
        DC_FN(dc_soft_target_rows)(&job->x, &job->t, w, 1, 0, first, count, res);
    } else {
        DC_T *xbuf = (DC_T *)job->buf, *tbuf = xbuf != NULL ? xbuf + n : NULL;
        for (ptrdiff_t j = 0; j < count; j++) {
            const DC_T *x = DC_ROW(&job->x, first + j, -(DC_T)INFINITY, xbuf);
            const DC_T *t = DC_ROW(&job->t, first + j, -(DC_T)INFINITY, tbuf);
            DC_FN(dc_soft_target_row)(x, t, w, n, job->is_log, 0, &res[j]);
        }
    }
    for (ptrdiff_t j = 0; j < count; j++) {
        val[j] = res[j].ce;
        wt[j] = 1.0;
    }
}

/* Per-row KL(softmax(t) ‖ softmax(x)) for teacher logits t (masked as x is); every row
 * weighs 1. */
DC_TARGET DC_ENTRY void DC_FN(dc_batch_kl_logits_leaf)(const dc_batch_job *job,
                                                           ptrdiff_t first, ptrdiff_t count,
                                                           double *val, double *wt)
{
    const ptrdiff_t n = job->x.n;
    DC_T *xbuf = (DC_T *)job->buf, *tbuf = xbuf != NULL ? xbuf + n : NULL;
    if (DC_FN(dc_batch_in_lanes)(n)) { /* short rows in lanes, as _core.pyx runs them */
        dc_soft_result res[DC_BATCH_LEAF];
        DC_FN(dc_logits_rows)(&job->x, &job->t, NULL, first, count, res);
        for (ptrdiff_t j = 0; j < count; j++) {
            val[j] = res[j].kl;
            wt[j] = 1.0;
        }
        return;
    }
    for (ptrdiff_t j = 0; j < count; j++) {
        dc_soft_result res;
        const DC_T *x = DC_ROW(&job->x, first + j, -(DC_T)INFINITY, xbuf);
        const DC_T *t = DC_ROW(&job->t, first + j, -(DC_T)INFINITY, tbuf);
        DC_FN(dc_soft_logits)(x, t, NULL, n, &res);
        val[j] = res.kl;
        wt[j] = 1.0;
    }
}

/* ------------------------------------------------------------- the public batch kernels */

DC_ENTRY ptrdiff_t DC_FN(dc_batch_logsumexp)(const DC_T *x, ptrdiff_t n_rows, ptrdiff_t n,
                                                 ptrdiff_t row_stride, ptrdiff_t col_stride,
                                                 const unsigned char *mask,
                                                 ptrdiff_t mask_row_stride,
                                                 ptrdiff_t mask_col_stride, double *out)
{
    dc_batch_job job;
    int failed;
    memset(&job, 0, sizeof job);
    job.x = dc_batch_rows(x, n, row_stride, col_stride, mask, mask_row_stride,
                          mask_col_stride);
    job.buf = dc_batch_buffer(&job.x, NULL, sizeof(DC_T), &failed);
    if (failed) return DC_BATCH_NO_MEMORY;
    dc_batch_run(&job, DC_FN(dc_batch_lse_leaf), n_rows, out, NULL);
    free(job.buf);
    return DC_BATCH_OK;
}

DC_ENTRY ptrdiff_t DC_FN(dc_batch_ce_labels)(
    const DC_T *x, ptrdiff_t n_rows, ptrdiff_t n, ptrdiff_t row_stride, ptrdiff_t col_stride,
    const int64_t *labels, ptrdiff_t label_stride, const DC_T *weight, int64_t ignore_index,
    const unsigned char *mask, ptrdiff_t mask_row_stride, ptrdiff_t mask_col_stride,
    double *out, dc_reduced *red)
{
    dc_batch_job job;
    int failed;
    const ptrdiff_t bad = dc_batch_bad_label(labels, label_stride, n_rows, n, ignore_index);
    if (bad >= 0) return bad + 1;
    memset(&job, 0, sizeof job);
    job.x = dc_batch_rows(x, n, row_stride, col_stride, mask, mask_row_stride,
                          mask_col_stride);
    job.labels = labels;
    job.label_stride = label_stride;
    job.ignore_index = ignore_index;
    job.weight = weight;
    job.buf = dc_batch_buffer(&job.x, NULL, sizeof(DC_T), &failed);
    if (failed) return DC_BATCH_NO_MEMORY;
    dc_batch_run(&job, DC_FN(dc_batch_ce_labels_leaf), n_rows, out, red);
    free(job.buf);
    return DC_BATCH_OK;
}

DC_ENTRY ptrdiff_t DC_FN(dc_batch_ce_probs)(
    const DC_T *x, ptrdiff_t n_rows, ptrdiff_t n, ptrdiff_t row_stride, ptrdiff_t col_stride,
    const DC_T *p, ptrdiff_t p_row_stride, ptrdiff_t p_col_stride, int is_log,
    const DC_T *weight, const unsigned char *mask, ptrdiff_t mask_row_stride,
    ptrdiff_t mask_col_stride, double *out, dc_reduced *red)
{
    dc_batch_job job;
    int failed;
    memset(&job, 0, sizeof job);
    job.x = dc_batch_rows(x, n, row_stride, col_stride, mask, mask_row_stride,
                          mask_col_stride);
    /* the target is not masked: a masked class with mass gives +inf, as in the Python API */
    job.t = dc_batch_rows(p, n, p_row_stride, p_col_stride, NULL, 0, 0);
    job.is_log = is_log != 0;
    job.weight = weight;
    job.buf = dc_batch_buffer(&job.x, &job.t, sizeof(DC_T), &failed);
    if (failed) return DC_BATCH_NO_MEMORY;
    dc_batch_run(&job, DC_FN(dc_batch_ce_probs_leaf), n_rows, out, red);
    free(job.buf);
    return DC_BATCH_OK;
}

DC_ENTRY ptrdiff_t DC_FN(dc_batch_kl_logits)(
    const DC_T *x, ptrdiff_t n_rows, ptrdiff_t n, ptrdiff_t row_stride, ptrdiff_t col_stride,
    const DC_T *target_logits, ptrdiff_t t_row_stride, ptrdiff_t t_col_stride,
    const unsigned char *mask, ptrdiff_t mask_row_stride, ptrdiff_t mask_col_stride,
    double *out, dc_reduced *red)
{
    dc_batch_job job;
    int failed;
    memset(&job, 0, sizeof job);
    job.x = dc_batch_rows(x, n, row_stride, col_stride, mask, mask_row_stride,
                          mask_col_stride);
    job.t = dc_batch_rows(target_logits, n, t_row_stride, t_col_stride, mask,
                          mask_row_stride, mask_col_stride);
    job.buf = dc_batch_buffer(&job.x, &job.t, sizeof(DC_T), &failed);
    if (failed) return DC_BATCH_NO_MEMORY;
    dc_batch_run(&job, DC_FN(dc_batch_kl_logits_leaf), n_rows, out, red);
    free(job.buf);
    return DC_BATCH_OK;
}

#undef DC_ROW_VALUE
#undef DC_ROW
#undef DC_FN
