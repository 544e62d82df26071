/* divcore/batch.h: batch kernels, many rows per call, with per-row outputs and the sums
 * the reductions need (the instruction-set-independent part; batch_t.h has the rest).
 *
 * A batch is n_rows rows of n values: row i, class c at byte offset
 * i·row_stride + c·col_stride (numpy's strides), optionally with a mask of the same shape
 * (1 = keep, 0 = masked, read as a -inf logit). The rows take the steps divcore's Python
 * API takes for them (divcore/_core.pyx): rows of at most DC_LANES_MAX_N values are scanned
 * many at a time, one row per vector lane (lanes_t.h); longer rows one at a time with the
 * blocked log-sum-exp (lse_t.h), read in place when they are contiguous and unmasked, else
 * gathered into one buffer. So every row gives the bits the Python API gives it.
 *
 * The reductions are those of the Python API too: Σ of the per-row values and Σ of the
 * rows' weights in numpy's pairwise order (np.sum of a contiguous float64 array: blocks of
 * at most 128 values summed in 8 accumulators, halved recursively above that), and their
 * quotient for the mean. The values are computed a leaf of the pairwise tree at a time
 * into a buffer on the stack, so no per-row array is needed when only the sum is wanted.
 */
#ifndef DIVCORE_BATCH_H
#define DIVCORE_BATCH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "losses.h"
#include "rows.h"

/* The reductions of a batch, as the Python API's reduction="sum" and "mean" compute them
 * (before they round a float32 input's result to float32). */
typedef struct {
    double sum;    /* Σ of the per-row values */
    double weight; /* Σ of the rows' weights: the number of rows, or Σ w_label over the rows
                      not ignored (labels) */
    double mean;   /* sum / weight; NaN when weight is 0 (an empty or fully ignored batch) */
} dc_reduced;

/* What a batch kernel returns. */
enum {
    DC_BATCH_OK = 0,
    DC_BATCH_NO_MEMORY = -1 /* a row had to be gathered and its buffer could not be allocated */
    /* > 0: row + 1 of the first label outside [0, n) that is not ignore_index */
};

/* Rows per leaf of the pairwise tree: numpy's PW_BLOCKSIZE. */
#define DC_BATCH_LEAF 128

/* What the leaves of one batch call read. */
typedef struct {
    dc_rows x;              /* the logits */
    dc_rows t;              /* the target rows (probabilities, log-probabilities, logits) */
    const void *weight;     /* class weights (of the batch's type) or NULL */
    const int64_t *labels;  /* labels: label i at labels[i * label_stride] */
    ptrdiff_t label_stride; /* in labels, not bytes */
    int64_t ignore_index;
    int is_log;             /* the target holds log-probabilities */
    void *buf;              /* 2·n values of the batch's type, when rows are gathered */
} dc_batch_job;

/* Values of rows first .. first + count - 1 (count ≤ DC_BATCH_LEAF) into val, and their
 * weights into wt. */
typedef void (*dc_batch_leaf_fn)(const dc_batch_job *job, ptrdiff_t first, ptrdiff_t count,
                                 double *val, double *wt);

/* numpy's pairwise_sum for n ≤ DC_BATCH_LEAF values: fewer than 8 in order; else 8
 * accumulators over the whole groups of 8, combined as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)),
 * then the rest in order. */
static inline double dc_pairwise_leaf(const double *a, ptrdiff_t n)
{
    double res = 0.0;
    ptrdiff_t i;
    if (n < 8) {
        for (i = 0; i < n; i++) res += a[i];
        return res;
    }
    double r[8];
    for (int j = 0; j < 8; j++) r[j] = a[j];
    for (i = 8; i < n - (n % 8); i += 8)
        for (int j = 0; j < 8; j++) r[j] += a[i + j];
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) res += a[i];
    return res;
}

/* Rows first .. first + n - 1 through `leaf`, each leaf's values written to out (unless
 * NULL: then to the stack) and summed, with their weights, in numpy's pairwise order: a range of more than
 * DC_BATCH_LEAF rows splits at n/2 rounded down to a multiple of 8. */
static inline void dc_batch_tree(const dc_batch_job *job, dc_batch_leaf_fn leaf,
                                 ptrdiff_t first, ptrdiff_t n, double *out, double *sum,
                                 double *wsum)
{
    if (n <= DC_BATCH_LEAF) {
        double val[DC_BATCH_LEAF], wt[DC_BATCH_LEAF];
        double *v = out != NULL ? out + first : val;
        leaf(job, first, n, v, wt);
        *sum = dc_pairwise_leaf(v, n);
        *wsum = dc_pairwise_leaf(wt, n);
        return;
    }
    ptrdiff_t half = n / 2;
    half -= half % 8;
    double s0, w0, s1, w1;
    dc_batch_tree(job, leaf, first, half, out, &s0, &w0);
    dc_batch_tree(job, leaf, first + half, n - half, out, &s1, &w1);
    *sum = s0 + s1;
    *wsum = w0 + w1;
}

/* The whole batch: per-row values into out (unless NULL), reductions into red (unless
 * NULL). np.sum starts from 0.0 (so a sum of -0.0 is 0.0). */
static inline void dc_batch_run(const dc_batch_job *job, dc_batch_leaf_fn leaf,
                                ptrdiff_t n_rows, double *out, dc_reduced *red)
{
    if (red == NULL) { /* no sums: the leaves in order, writing straight into out */
        double val[DC_BATCH_LEAF], wt[DC_BATCH_LEAF];
        for (ptrdiff_t first = 0; first < n_rows; first += DC_BATCH_LEAF) {
            const ptrdiff_t count = n_rows - first < DC_BATCH_LEAF ? n_rows - first
                                                                   : DC_BATCH_LEAF;
            leaf(job, first, count, out != NULL ? out + first : val, wt);
        }
        return;
    }
    double sum = 0.0, wsum = 0.0;
    dc_batch_tree(job, leaf, 0, n_rows, out, &sum, &wsum);
    if (red != NULL) {
        red->sum = 0.0 + sum;
        red->weight = 0.0 + wsum;
        red->mean = red->weight != 0.0 ? red->sum / red->weight : NAN;
    }
}

/* The kernels' view of a strided batch (rows.h). */
static inline dc_rows dc_batch_rows(const void *data, ptrdiff_t n, ptrdiff_t row_stride,
                                    ptrdiff_t col_stride, const unsigned char *mask,
                                    ptrdiff_t mask_row_stride, ptrdiff_t mask_col_stride)
{
    dc_rows r;
    r.data = (const char *)data;
    r.row_stride = row_stride;
    r.col_stride = col_stride;
    r.n = n;
    r.mask = mask;
    r.mask_row_stride = mask_row_stride;
    r.mask_col_stride = mask_col_stride;
    r.temperature = 1.0;
    return r;
}

/* The first row whose label is outside [0, n) and not ignore_index, or -1. */
static inline ptrdiff_t dc_batch_bad_label(const int64_t *labels, ptrdiff_t stride,
                                           ptrdiff_t n_rows, ptrdiff_t n, int64_t ignore_index)
{
    for (ptrdiff_t i = 0; i < n_rows; i++) {
        const int64_t y = labels[i * stride];
        if ((y < 0 || y >= (int64_t)n) && y != ignore_index) return i;
    }
    return -1;
}

/* Room for two gathered rows (logits and target) of n values of `size` bytes, when a row
 * of r (or of t, unless NULL) cannot be read in place and is longer than the lanes take;
 * NULL when none is needed. *failed is set when one is needed and malloc fails. */
static inline void *dc_batch_buffer(const dc_rows *r, const dc_rows *t, size_t size,
                                    int *failed)
{
    *failed = 0;
    const int gathers = r->mask != NULL || r->col_stride != (ptrdiff_t)size ||
                        (t != NULL && (t->mask != NULL || t->col_stride != (ptrdiff_t)size));
    if (!gathers || r->n <= 0) return NULL;
    void *buf = malloc(2 * (size_t)r->n * size);
    *failed = buf == NULL;
    return buf;
}

#define DC_TEMPLATE "batch_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

#endif /* DIVCORE_BATCH_H */
