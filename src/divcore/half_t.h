/* divcore/half_t.h: the row kernels for half-precision storage (float16 or bfloat16 bits in
 * uint16_t), for one instruction set (DC_ISA_NAME, DC_TARGET) and one format: DC_HSFX
 * (f16, bf16), DC_HWIDEN (widen a contiguous row into floats) and DC_HONE (widen one
 * value), defined by for_each_half.h. Included by half_rows.h (portable build) and isa_t.h
 * (AVX2, AVX-512). Not to be included on its own.
 *
 * Every kernel gives the bits of the float kernel of the same instruction set on the
 * widened row (widening is exact: half.h), without allocating:
 *   - a row of at most DC_HALF_CHUNK values is widened into a stack buffer and handed to
 *     the float kernel itself;
 *   - a longer row is widened a chunk of DC_HALF_CHUNK values at a time (a multiple of
 *     DC_BLOCK), once per read the float kernel makes of it, and each chunk goes to the
 *     float kernel's own block loop (dc_lse_update, dc_entropy_update, dc_logits_update,
 *     dc_soft_target_update), whose state is carried from block to block and is the same
 *     for any split of the row at multiples of DC_BLOCK; the end of the computation is the
 *     float kernel's too (dc_soft_logits_finish, dc_soft_target_finish), and what is
 *     computed here is the same expressions (sums and log1p, no product to be fused);
 *   - the writers widen the row into their float output and run the float writer in place
 *     (allowed there), for any n.
 * So a float16 row costs the float kernel's time plus one widening per read. */

#define DC_HFN(name) DC_ISA_NAME(name, DC_HSFX)
#define DC_F32(name) DC_ISA_NAME(name, f32)
#define DC_HMIN(a, b) ((a) < (b) ? (a) : (b))

/* dc_lse_scan of the widened row, a chunk at a time through buf (DC_HALF_CHUNK floats). */
DC_TARGET DC_INLINE dc_lse_state DC_HFN(dc_half_lse_scan)(const uint16_t *x, ptrdiff_t n,
                                                          float *buf)
{
    dc_lse_state st;
    dc_lse_init(&st);
    for (ptrdiff_t start = 0; start < n && !st.nan; start += DC_HALF_CHUNK) {
        const ptrdiff_t len = DC_HMIN(DC_HALF_CHUNK, n - start);
        DC_HWIDEN(x + start, len, buf);
        DC_F32(dc_lse_update)(&st, buf, len); /* after a NaN it would change nothing */
    }
    return st;
}

/* log Σ exp(x_i): dc_logsumexp_f32 of the widened row (for a long row, its dc_lse_scan and
 * then dc_lse_scan_log_sum's and dc_logsumexp's own expressions). */
DC_TARGET DC_ENTRY double DC_HFN(dc_logsumexp)(const uint16_t *x, ptrdiff_t n)
{
    float buf[DC_HALF_CHUNK];
    if (n <= DC_HALF_CHUNK) {
        DC_HWIDEN(x, n, buf);
        return DC_F32(dc_logsumexp)(buf, n);
    }
    const dc_lse_state st = DC_HFN(dc_half_lse_scan)(x, n, buf);
    return dc_lse_value_of_log_sum(&st, dc_lse_ok(&st) ? dc_lse_log_sum(&st) : 0.0);
}

/* -log q_label: dc_ce_label_f32 of the widened row. */
DC_TARGET DC_ENTRY double DC_HFN(dc_ce_label)(const uint16_t *x, ptrdiff_t n, ptrdiff_t label)
{
    float buf[DC_HALF_CHUNK];
    if (n <= DC_HALF_CHUNK) {
        DC_HWIDEN(x, n, buf);
        return DC_F32(dc_ce_label)(buf, n, label);
    }
    const dc_lse_state st = DC_HFN(dc_half_lse_scan)(x, n, buf);
    const double log_sum = dc_lse_ok(&st) ? dc_lse_log_sum(&st) : 0.0;
    return dc_ce_label_of_log_sum(&st, log_sum, (double)DC_HONE(x[label]));
}

/* H(softmax(x)): dc_entropy_logits_f32 of the widened row (a long row: its one read,
 * dc_entropy_update, a chunk at a time, then dc_entropy_of_sums). */
DC_TARGET DC_ENTRY double DC_HFN(dc_entropy_logits)(const uint16_t *x, ptrdiff_t n)
{
    float buf[DC_HALF_CHUNK];
    if (n <= DC_HALF_CHUNK) {
        DC_HWIDEN(x, n, buf);
        return DC_F32(dc_entropy_logits)(buf, n);
    }
    dc_lse_state st;
    dc_lse_init(&st);
    double u = 0.0;
    for (ptrdiff_t start = 0; start < n; start += DC_HALF_CHUNK) {
        const ptrdiff_t len = DC_HMIN(DC_HALF_CHUNK, n - start);
        DC_HWIDEN(x + start, len, buf);
        if (!DC_F32(dc_entropy_update)(buf, len, &st, &u)) return NAN;
    }
    if (!dc_lse_ok(&st)) return NAN;
    return dc_entropy_of_sums(&st, u);
}

/* KL(softmax(t) ‖ softmax(x)), the target first: dc_kl_logits_f32 of the widened rows (a
 * long row: dc_soft_logits' one read of both rows, dc_logits_update, a chunk at a time,
 * then dc_soft_logits_finish). */
DC_TARGET DC_ENTRY double DC_HFN(dc_kl_logits)(const uint16_t *t, const uint16_t *x,
                                               ptrdiff_t n)
{
    float bt[DC_HALF_CHUNK], bx[DC_HALF_CHUNK];
    if (n <= DC_HALF_CHUNK) {
        DC_HWIDEN(t, n, bt);
        DC_HWIDEN(x, n, bx);
        return DC_F32(dc_kl_logits)(bt, bx, n);
    }
    dc_logits_sums s;
    dc_logits_sums_init(&s);
    for (ptrdiff_t start = 0; start < n; start += DC_HALF_CHUNK) {
        const ptrdiff_t len = DC_HMIN(DC_HALF_CHUNK, n - start);
        DC_HWIDEN(t + start, len, bt);
        DC_HWIDEN(x + start, len, bx);
        DC_F32(dc_logits_update)(bx, bt, NULL, len, &s);
    }
    dc_soft_result r;
    DC_F32(dc_soft_logits_finish)(&s, 0, &r);
    return r.kl;
}

/* H(p, softmax(x)) with p half too: dc_ce_probs_f32 of the widened rows (a long row: the
 * one read of dc_soft_target_row, dc_soft_target_update a chunk at a time, then
 * dc_soft_target_finish). */
DC_TARGET DC_ENTRY double DC_HFN(dc_ce_probs)(const uint16_t *x, const uint16_t *p,
                                              ptrdiff_t n)
{
    float bx[DC_HALF_CHUNK], bp[DC_HALF_CHUNK];
    if (n <= DC_HALF_CHUNK) {
        DC_HWIDEN(x, n, bx);
        DC_HWIDEN(p, n, bp);
        return DC_F32(dc_ce_probs)(bx, bp, n);
    }
    dc_soft_state s;
    dc_soft_state_init(&s);
    for (ptrdiff_t start = 0; start < n; start += DC_HALF_CHUNK) {
        const ptrdiff_t len = DC_HMIN(DC_HALF_CHUNK, n - start);
        DC_HWIDEN(x + start, len, bx);
        DC_HWIDEN(p + start, len, bp);
        DC_F32(dc_soft_target_update)(&s, bx, bp, NULL, len, 0, 0);
    }
    dc_soft_result r;
    DC_F32(dc_soft_target_finish)(&s, 0, 0, &r);
    return r.ce;
}

/* The writers: the row widened into out, then the float writer in place. */
DC_TARGET DC_ENTRY int DC_HFN(dc_log_softmax)(const uint16_t *x, ptrdiff_t n, float *out)
{
    DC_HWIDEN(x, n, out);
    return DC_F32(dc_log_softmax)(out, n, out);
}

DC_TARGET DC_ENTRY int DC_HFN(dc_softmax)(const uint16_t *x, ptrdiff_t n, float *out)
{
    DC_HWIDEN(x, n, out);
    return DC_F32(dc_softmax)(out, n, out);
}

#undef DC_HMIN
#undef DC_F32
#undef DC_HFN
