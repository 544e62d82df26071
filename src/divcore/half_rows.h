/* divcore/half_rows.h: the row kernels for half-precision storage, the portable build
 * (half_t.h: dc_logsumexp_f16_base, ...; dispatch.h builds them again for AVX2 and
 * AVX-512 and defines the public names dc_logsumexp_f16, dc_ce_label_bf16, ...).
 *
 * A row of n uint16_t values holds float16 (IEEE binary16) or bfloat16 bits; each kernel
 * gives exactly the float kernel's result on the widened row (half.h: widening is
 * exact), at the same instruction set, and allocates nothing: a row is widened into a
 * stack buffer of DC_HALF_CHUNK floats a chunk at a time (half_t.h says why that gives
 * the same bits). */
#ifndef DIVCORE_HALF_ROWS_H
#define DIVCORE_HALF_ROWS_H

#include <stddef.h>
#include <stdint.h>
#include "half.h"
#include "losses.h"

/* Floats widened at a time: one block of the blocked kernels (2 KiB of stack per row,
 * 4 KiB for the kernels of two rows). It must be a multiple of DC_BLOCK (the float
 * kernels' state is the same for any split of a row at block boundaries, not elsewhere)
 * and above DC_LANES_MAX_N (a row that is chunked takes the float kernels' long-row
 * path, never their short-row lanes). */
#define DC_HALF_CHUNK DC_BLOCK
typedef char dc_half_chunk_is_whole_blocks[(DC_HALF_CHUNK % DC_BLOCK == 0 &&
                                            DC_HALF_CHUNK > DC_LANES_MAX_N) ? 1 : -1];

#define DC_HALF_USE_F16C 0 /* the portable build: no instruction beyond the baseline */
#define DC_TEMPLATE "half_t.h"
#include "for_each_half.h"
#undef DC_TEMPLATE
#undef DC_HALF_USE_F16C

#endif /* DIVCORE_HALF_ROWS_H */
