/* divcore/row_stats_t.h: the type-generic body of row_stats.h, included once per type with
 * DC_T (float, double) and DC_SFX (f32, f64) defined, and once more per instruction set by
 * dispatch.h (isa_t.h). Not to be included on its own. */

#define DC_FN(name) DC_ISA_NAME(name, DC_SFX)
#define DC_EXP DC_CAT(dc_exp, DC_SFX)

#ifdef DC_HAVE_VEC
#define DC_VACC 4
#define DC_VLOAD_TAIL DC_ISA_NAME(dc_vload_tail, DC_SFX)

/* A block's S and U terms at the running max m, as dc_block_expsum (lse_t.h) sums S:
 * values equal to m are counted, the others add e = exp(x - m) to S and e·(m - x) to U,
 * in DC_VACC vector accumulators of the input's precision; lanes are added pairwise and
 * the block's totals go to the row's sums in double. A -inf adds 0 to both (its e is 0);
 * a NaN makes both NaN. */
DC_TARGET DC_INLINE void DC_FN(dc_rs_block_sums)(const DC_T *x, ptrdiff_t n, DC_T m, int below,
                                                 dc_lse_state *st, double *u)
{
    /* d = x - m clamped at `low`, far below where exp(d) is 0: e·d is then 0·low = 0 for a
     * -inf x (not 0·inf); a NaN x is kept out of U by the clamp but makes S NaN. */
    const DC_V zero = {0}, one = zero + 1, low = zero - (DC_T)(sizeof(DC_T) == 4 ? 200 : 2000);
    DC_V r[DC_VACC], k[DC_VACC], w[DC_VACC];
    for (int a = 0; a < DC_VACC; a++) { r[a] = zero; k[a] = zero; w[a] = zero; }
    const ptrdiff_t step = DC_VACC * DC_VLEN, whole = n - n % step;
    ptrdiff_t i = 0;
    if (below) {
        for (; i < whole; i += step)
            for (int a = 0; a < DC_VACC; a++) {
                const DC_V d = *(const DC_V *)(x + i + a * DC_VLEN) - m;
                const DC_V e = DC_VEXP_NONPOS(d);
                r[a] += e;
                w[a] -= e * DC_VMAX_KEEP(d, low);
            }
    } else {
        for (; i < whole; i += step)
            for (int a = 0; a < DC_VACC; a++) {
                const DC_V v = *(const DC_V *)(x + i + a * DC_VLEN);
                const DC_VI top = v == m;
                const DC_V d = v - m, e = DC_VEXP_NONPOS(d);
                r[a] += DC_VSEL(top, zero, e);
                k[a] += DC_VSEL(top, one, zero);
                w[a] -= DC_VSEL(top, zero, e * DC_VMAX_KEEP(d, low));
            }
    }
    for (int a = 0; i < n; i += DC_VLEN, a = (a + 1) % DC_VACC) {
        const DC_V v = n - i >= DC_VLEN ? *(const DC_V *)(x + i) : DC_VLOAD_TAIL(x + i, n - i);
        const DC_VI top = v == m;
        const DC_V d = v - m, e = DC_VEXP_NONPOS(d);
        r[a] += DC_VSEL(top, zero, e);
        k[a] += DC_VSEL(top, one, zero);
        w[a] -= DC_VSEL(top, zero, e * DC_VMAX_KEEP(d, low));
    }
    const DC_V rsum = (r[0] + r[1]) + (r[2] + r[3]), ksum = (k[0] + k[1]) + (k[2] + k[3]);
    const DC_V wsum = (w[0] + w[1]) + (w[2] + w[3]);
    dc_sum_add(&st->rest, &st->rest_c, DC_FN(dc_vsum_pairwise)(rsum));
    st->at_max += DC_FN(dc_vsum_pairwise)(ksum);
    *u += DC_FN(dc_vsum_pairwise)(wsum);
}

/* The lanes of a comparison's result as bits (lane j: bit j), from their sign bits: one
 * movemask where the intrinsics are there, else lane by lane. */
DC_TARGET DC_INLINE uint64_t DC_FN(dc_rs_bits)(DC_VI mask)
{
#if defined(DC_X86_INTRINSICS) && DC_VBYTES == 64
    return sizeof(DC_T) == 4 ? (uint64_t)_mm512_movepi32_mask((__m512i)mask)
                             : (uint64_t)_mm512_movepi64_mask((__m512i)mask);
#elif defined(DC_X86_INTRINSICS) && DC_VBYTES == 32
    return sizeof(DC_T) == 4 ? (uint64_t)_mm256_movemask_ps((__m256)mask)
                             : (uint64_t)_mm256_movemask_pd((__m256d)mask);
#elif defined(DC_X86_INTRINSICS) && DC_VBYTES == 16
    return sizeof(DC_T) == 4 ? (uint64_t)_mm_movemask_ps((__m128)mask)
                             : (uint64_t)_mm_movemask_pd((__m128d)mask);
#else
    uint64_t bits = 0;
    for (ptrdiff_t j = 0; j < DC_VLEN; j++) bits |= (uint64_t)(mask[j] != 0) << j;
    return bits;
#endif
}

/* Offer a block's values above the top-k's threshold to it: whole vectors below it
 * are skipped with one compare (the threshold only grows, so a stale one only lets more
 * through to the exact test). */
DC_TARGET DC_INLINE void DC_FN(dc_rs_block_topk)(const DC_T *x, ptrdiff_t n, ptrdiff_t first,
                                                 ptrdiff_t k, double *v, int64_t *idx,
                                                 ptrdiff_t *len)
{
    const DC_V zero = {0};
    const ptrdiff_t step = DC_VACC * DC_VLEN, whole = n - n % step;
    DC_T thr = *len < k ? (DC_T)-INFINITY : (DC_T)dc_topk_threshold(v, k);
    ptrdiff_t i = 0;
    for (; i < whole; i += step) {
        const DC_V t = zero + thr;
        DC_VI hit[DC_VACC];
        for (int a = 0; a < DC_VACC; a++) hit[a] = *(const DC_V *)(x + i + a * DC_VLEN) > t;
        if (DC_FN(dc_rs_bits)((hit[0] | hit[1]) | (hit[2] | hit[3])) == 0) continue;
        for (int a = 0; a < DC_VACC; a++) {
            /* only the lanes above the threshold, in index order */
            for (uint64_t bits = DC_FN(dc_rs_bits)(hit[a]); bits != 0; bits &= bits - 1) {
                const ptrdiff_t j = i + a * DC_VLEN + __builtin_ctzll(bits);
                if (x[j] > thr) {
                    dc_topk_offer(v, idx, len, k, (double)x[j], first + j);
                    thr = *len < k ? (DC_T)-INFINITY : (DC_T)dc_topk_threshold(v, k);
                }
            }
        }
    }
    for (; i < n; i++)
        if (x[i] > thr) {
            dc_topk_offer(v, idx, len, k, (double)x[i], first + i);
            thr = *len < k ? (DC_T)-INFINITY : (DC_T)dc_topk_threshold(v, k);
        }
}
#undef DC_VACC
#undef DC_VLOAD_TAIL
#else
DC_TARGET DC_INLINE void DC_FN(dc_rs_block_sums)(const DC_T *x, ptrdiff_t n, DC_T m, int below,
                                                 dc_lse_state *st, double *u)
{
    (void)below;
    DC_T r[DC_LANES], k[DC_LANES], w[DC_LANES];
    for (int j = 0; j < DC_LANES; j++) { r[j] = 0; k[j] = 0; w[j] = 0; }
    for (ptrdiff_t i = 0; i < n; i++) {
        const int j = (int)(i % DC_LANES);
        if (x[i] == m) { k[j] += 1; continue; }
        const DC_T d = x[i] - m, e = DC_EXP(d);
        r[j] += e;
        w[j] += e != 0 ? e * -d : (DC_T)0;
    }
    double ks = 0.0, ws = 0.0;
    for (int j = 0; j < DC_LANES; j++) {
        dc_sum_add(&st->rest, &st->rest_c, (double)r[j]);
        ks += k[j];
        ws += w[j];
    }
    st->at_max += ks;
    *u += ws;
}

DC_TARGET DC_INLINE void DC_FN(dc_rs_block_topk)(const DC_T *x, ptrdiff_t n, ptrdiff_t first,
                                                 ptrdiff_t k, double *v, int64_t *idx,
                                                 ptrdiff_t *len)
{
    for (ptrdiff_t i = 0; i < n; i++)
        if (x[i] > -INFINITY) dc_topk_offer(v, idx, len, k, (double)x[i], first + i);
}
#endif /* DC_HAVE_VEC */

/* The statistics of one row (row_stats.h): lse, the label's log-probability (label in
 * [0, n), or < 0 for none), the entropy, the argmax, and the k largest log-probabilities
 * (0 <= k <= n) with their indices, best first (ties: the lower index first). A row
 * without a distribution (NaN, +inf, no finite value, n = 0) gives NaN log-probabilities
 * and the indices 0 .. k-1 (a stable sort of NaNs); a row with fewer than k values above
 * -inf ends its top-k with the -inf ones, in index order (log-probability -inf). */
DC_TARGET DC_ENTRY void DC_FN(dc_row_stats)(const DC_T *x, ptrdiff_t n, ptrdiff_t label,
                                            ptrdiff_t k, int64_t *topk_index,
                                            double *topk_log_prob, dc_row_stats *out)
{
    dc_lse_state st;
    dc_lse_init(&st);
    double u = 0.0;
    ptrdiff_t argmax = n > 0 ? 0 : -1, len = 0;
    for (ptrdiff_t start = 0; start < n && !st.nan; start += DC_BLOCK) {
        const ptrdiff_t blen = n - start < DC_BLOCK ? n - start : DC_BLOCK;
        const DC_T *xb = x + start;
        const DC_T b = DC_FN(dc_block_max_skip_nan)(xb, blen);
        if (!(b > -INFINITY)) { /* every exp is 0, unless there is a NaN */
            if (DC_FN(dc_has_nan)(xb, blen)) st.nan = 1;
            continue;
        }
        const int below = b < st.max;
        if (b > st.max) {
            ptrdiff_t j = 0;
            while (xb[j] != b) j++;
            argmax = start + j;
            const double old = st.max, s = dc_lse_sum(&st);
            dc_lse_raise_max(&st, (double)b);
            if (s != 0.0) u = (u + ((double)b - old) * s) * exp(old - (double)b);
        }
        /* a block whose max does not beat the heap's root has nothing for the top-k */
        if (k > 0 && (len < k || (double)b > dc_topk_threshold(topk_log_prob, k)))
            DC_FN(dc_rs_block_topk)(xb, blen, start, k, topk_log_prob, topk_index, &len);
        DC_FN(dc_rs_block_sums)(xb, blen, (DC_T)st.max, below, &st, &u);
        if (st.rest != st.rest || u != u) st.nan = 1;
    }
    if (st.nan) { /* numpy's argmax: the first NaN */
        for (ptrdiff_t i = 0; i < n; i++)
            if (x[i] != x[i]) { argmax = i; break; }
    }
    out->argmax = argmax;
    const int ok = dc_lse_ok(&st);
    const double log_sum = ok ? dc_lse_log_sum(&st) : 0.0;
    out->logsumexp = dc_lse_value_of_log_sum(&st, log_sum);
    out->log_prob = NAN;
    out->entropy = NAN;
    if (!ok) {
        for (ptrdiff_t j = 0; j < k; j++) {
            topk_index[j] = j;
            topk_log_prob[j] = NAN;
        }
        return;
    }
    if (label >= 0) out->log_prob = -((st.max - (double)x[label]) + log_sum);
    double h = log_sum + u / dc_lse_sum(&st);
    if (sizeof(DC_T) < sizeof(double) && h < DC_ROW_STATS_H_RECHECK)
        h = DC_FN(dc_entropy_logits_read)(x, n); /* the float exp of a peaked row's terms */
    out->entropy = h;
    dc_topk_sort(topk_log_prob, topk_index, len, k);
    for (ptrdiff_t j = 0; j < len; j++)
        topk_log_prob[j] = (topk_log_prob[j] - st.max) - log_sum;
    for (ptrdiff_t i = 0; len < k && i < n; i++) /* fewer than k values above -inf */
        if (x[i] == -INFINITY) {
            topk_index[len] = i;
            topk_log_prob[len] = -INFINITY;
            len++;
        }
}

#undef DC_EXP
#undef DC_FN
