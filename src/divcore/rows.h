/* divcore/rows.h: one row of a strided 2-D array, as a contiguous run of values.
 *
 * The kernels read contiguous rows. A row that is already contiguous, unmasked and at
 * temperature 1 is read in place; any other row is first gathered into a buffer of n
 * values (one row, never the whole array), applying on the way
 *     x -> x / T              (temperature; done in double, rounded once to the type)
 *     x -> fill where mask 0  (-inf for logits: a masked class leaves the distribution)
 */
#ifndef DIVCORE_ROWS_H
#define DIVCORE_ROWS_H

#include <stddef.h>
#include "lse.h"

typedef struct {
    const char *data;          /* first value of row 0 (NULL when there are no values) */
    ptrdiff_t row_stride;      /* bytes between rows */
    ptrdiff_t col_stride;      /* bytes between classes */
    ptrdiff_t n;               /* classes per row */
    const unsigned char *mask; /* NULL, or 1 = keep / 0 = masked, same shape */
    ptrdiff_t mask_row_stride;
    ptrdiff_t mask_col_stride;
    double temperature;        /* divides every value; 1.0 leaves them as they are */
} dc_rows;

/* Unmasked classes in row i. */
DC_INLINE ptrdiff_t dc_rows_count_kept(const dc_rows *r, ptrdiff_t i)
{
    if (r->mask == NULL) return r->n;
    const unsigned char *m = r->mask + i * r->mask_row_stride;
    ptrdiff_t kept = 0;
    for (ptrdiff_t c = 0; c < r->n; c++) kept += m[c * r->mask_col_stride] != 0;
    return kept;
}

#define DC_TEMPLATE "rows_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

/* The longest rows dc_lse_scan_rows takes (its columns live on the stack). */
#define DC_LANES_MAX_N 64

#define DC_TEMPLATE "lanes_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

/* Rows adjacent in memory with a strided class axis, scanned in place (adjacent_t.h). */
#define DC_TEMPLATE "adjacent_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

#endif /* DIVCORE_ROWS_H */
