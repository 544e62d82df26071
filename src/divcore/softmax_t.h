/* divcore/softmax_t.h: the kernels that need only a row's log-sum-exp: logsumexp,
 * log_softmax / softmax writers, cross-entropy with a label, entropy of softmax(x).
 * Part of the type-generic body of losses.h, included by losses_t.h (DC_T, DC_SFX, DC_FN and
 * the DC_VD* macros defined there). Not to be included on its own. */

/* ---------------------------------------------------------------- log-sum-exp, softmax */

/* log Σ exp(x_i): NaN for a NaN or +inf value, -inf for an empty or all -inf row. */
DC_TARGET DC_ENTRY double DC_FN(dc_logsumexp)(const DC_T *x, ptrdiff_t n)
{
    double log_sum;
    const dc_lse_state st = DC_FN(dc_lse_scan_log_sum)(x, n, &log_sum);
    return dc_lse_value_of_log_sum(&st, log_sum);
}

#ifdef DC_HAVE_VEC
/* exp(d) in double lanes for d ≤ 0, for an output rounded to DC_T: for double rows the full
 * DC_VDEXP; for float rows the same reduction with the series to r^10 (remainder
 * < |r|^11/11! ≤ 2.2e-13 relative for |r| ≤ ln2/2: 10^-5 of a float32 ulp, so the value is
 * still rounded once, as by the full exp but for one value in about 10^5 that lies that
 * close to a rounding boundary), three multiply-adds less per double vector. */
DC_TARGET DC_VINLINE DC_VD DC_FN(dc_vdexp_rounded)(DC_VD d)
{
    if (sizeof(DC_T) == sizeof(double)) return DC_VDEXP(d);
    const DC_VD zero = {0};
    const DC_VD xc = DC_ISA_NAME(dc_vmax_keep, f64)(zero + DC_EXP_F64_LO, d);
    const DC_VD n = (xc * DC_EXP_F64_LOG2E + DC_EXP_F64_SHIFTER) - DC_EXP_F64_SHIFTER;
    DC_VD r = xc - n * DC_EXP_F64_LN2_HI;
    r = r - n * DC_EXP_F64_LN2_LO;
    DC_VD p = zero + 1.0 / 3628800.0; /* 1/10! */
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r * r + r + 1.0;
    return DC_ISA_NAME(dc_vscale, f64)(p, n);
}
#endif

#ifdef DC_HAVE_VEC
/* dc_log_softmax_row's outputs over the row's whole vector pairs, the same formulas in
 * double lanes: c is log S, or 1/S with `exponentiate`. Returns how many it wrote. */
DC_TARGET DC_INLINE ptrdiff_t DC_FN(dc_log_softmax_vec)(const DC_T *x, ptrdiff_t n,
                                                           int exponentiate, double m,
                                                           double c, DC_T *out)
{
    const ptrdiff_t step = 2 * DC_VDLEN, whole = n - n % step;
    DC_VD lo, hi;
    if (exponentiate) {
        for (ptrdiff_t i = 0; i < whole; i += step) {
            DC_VLOAD2(x + i, &lo, &hi);
            DC_VSTORE2(out + i, DC_FN(dc_vdexp_rounded)(lo - m) * c,
                       DC_FN(dc_vdexp_rounded)(hi - m) * c);
        }
    } else {
        for (ptrdiff_t i = 0; i < whole; i += step) {
            DC_VLOAD2(x + i, &lo, &hi);
            DC_VSTORE2(out + i, (lo - m) - c, (hi - m) - c);
        }
    }
    return whole;
}
#endif

/* out_i = log q_i = (x_i - M) - log S, or q_i = exp(x_i - M) / S with `exponentiate`,
 * from the row's scan st and its log S = dc_lse_log_sum(st) (unused with `exponentiate`).
 * Subtracting M first keeps the largest entry's log q exact (-log S, not lse - M
 * rounded). A row without a distribution is all NaN. Returns 1 if it had one. */
DC_TARGET DC_ENTRY int DC_FN(dc_log_softmax_of_state)(const DC_T *x, ptrdiff_t n,
                                                         const dc_lse_state *st,
                                                         double log_sum, int exponentiate,
                                                         DC_T *out)
{
    if (!dc_lse_ok(st)) {
        for (ptrdiff_t i = 0; i < n; i++) out[i] = (DC_T)NAN;
        return 0;
    }
    /* In double, rounded once: exp(x - M) has relative error |x - M|·eps when x - M is
     * rounded first, which float32 cannot afford for tiny probabilities. */
    const double m = st->max;
    const double c = exponentiate ? 1.0 / dc_lse_sum(st) : log_sum;
    ptrdiff_t i = 0;
#ifdef DC_HAVE_VEC
    i = DC_FN(dc_log_softmax_vec)(x, n, exponentiate, m, c, out);
#endif
    if (exponentiate)
        for (; i < n; i++) out[i] = (DC_T)(dc_exp_f64((double)x[i] - m) * c);
    else
        for (; i < n; i++) out[i] = (DC_T)(((double)x[i] - m) - c);
    return 1;
}

/* log_softmax (or softmax with `exponentiate`) of the row x into out. */
DC_TARGET DC_ENTRY int DC_FN(dc_log_softmax_row)(const DC_T *x, ptrdiff_t n, int exponentiate,
                                            DC_T *out)
{
    double log_sum;
    const dc_lse_state st = DC_FN(dc_lse_scan_log_sum)(x, n, &log_sum);
    return DC_FN(dc_log_softmax_of_state)(x, n, &st, log_sum, exponentiate, out);
}

DC_TARGET DC_ENTRY int DC_FN(dc_log_softmax)(const DC_T *x, ptrdiff_t n, DC_T *out)
{
    return DC_FN(dc_log_softmax_row)(x, n, 0, out);
}

DC_TARGET DC_ENTRY int DC_FN(dc_softmax)(const DC_T *x, ptrdiff_t n, DC_T *out)
{
    return DC_FN(dc_log_softmax_row)(x, n, 1, out);
}

/* ------------------------------------------------------------- cross-entropy, a label */

/* -log q_y for a label in [0, n): see dc_ce_label_of_log_sum. */
DC_TARGET DC_ENTRY double DC_FN(dc_ce_label)(const DC_T *x, ptrdiff_t n, ptrdiff_t label)
{
    double log_sum;
    const dc_lse_state st = DC_FN(dc_lse_scan_log_sum)(x, n, &log_sum);
    return dc_ce_label_of_log_sum(&st, log_sum, n > 0 ? (double)x[label] : 0.0);
}

/* ------------------------------------------------------------------------- entropy */

#ifdef DC_HAVE_VEC
/* Short rows in lanes (lanes_soft_t.h, built after this file). */
DC_TARGET DC_ENTRY void DC_FN(dc_entropy_logits_rows)(const dc_rows *r, ptrdiff_t first,
                                                     ptrdiff_t count, double *out);
#endif

#ifdef DC_HAVE_VEC
/* A block's part of S and of U = Σ e_i (M - x_i) at the running max m, in vector lanes of
 * the input's precision (4 accumulators each, added pairwise, then in double into the
 * row's sums). The values equal to m are counted in at_max, as dc_block_expsum does (lse_t.h),
 * so that log S = log1p((at_max - 1) + rest) keeps a tiny entropy; `below`: the block has
 * none. d = x - m is rounded; its exact rounding error c (two-sum) corrects the exp,
 * e = exp(d)·(1 + c), so a term's relative error does not grow with |d| (as it would:
 * exp(d)'s relative error is the absolute error of d). A -inf value adds 0 to both (c is
 * kept finite by the max with -1, d by the max with -200 where e is 0); a NaN makes S NaN. */
DC_TARGET DC_INLINE void DC_FN(dc_entropy_block_sums)(const DC_T *x, ptrdiff_t n, DC_T m,
                                                         int below, dc_lse_state *st,
                                                         double *u)
{
    const DC_V zero = {0}, one = zero + 1, low = zero - (DC_T)200, mone = zero - 1;
    const DC_V negm = zero - m;
    DC_V r[4], k[4], w[4];
    for (int a = 0; a < 4; a++) { r[a] = zero; k[a] = zero; w[a] = zero; }
    const ptrdiff_t step = 4 * DC_VLEN, whole = n - n % step;
    ptrdiff_t i = 0;
#define DC_ENTROPY_TERM(v, e, dl)                                                       \
    const DC_V d = (v) - m, bb = d - (v);                                               \
    const DC_V c = DC_VMAX_KEEP(((v) - (d - bb)) + (negm - bb), mone);                  \
    const DC_V e0 = DC_VEXP_NONPOS(d), e = e0 + e0 * c;                                 \
    const DC_V dl = DC_VMAX_KEEP(d, low)
    if (below) {
        for (; i < whole; i += step)
            for (int a = 0; a < 4; a++) {
                const DC_V v = *(const DC_V *)(x + i + a * DC_VLEN);
                DC_ENTROPY_TERM(v, e, dl);
                r[a] += e;
                w[a] -= e * dl;
            }
    }
    for (int a = 0; i < n; i += DC_VLEN, a = (a + 1) % 4) {
        const DC_V v = n - i >= DC_VLEN ? *(const DC_V *)(x + i)
                                        : DC_ISA_NAME(dc_vload_tail, DC_SFX)(x + i, n - i);
        DC_ENTROPY_TERM(v, e, dl);
        const DC_VI top = v == m;
        r[a] += DC_VSEL(top, zero, e);
        k[a] += DC_VSEL(top, one, zero);
        w[a] -= DC_VSEL(top, zero, e * dl);
    }
#undef DC_ENTROPY_TERM
    const DC_V rsum = (r[0] + r[1]) + (r[2] + r[3]), ksum = (k[0] + k[1]) + (k[2] + k[3]);
    const DC_V wsum = (w[0] + w[1]) + (w[2] + w[3]);
    dc_sum_add(&st->rest, &st->rest_c, DC_FN(dc_vsum_pairwise)(rsum));
    st->at_max += DC_FN(dc_vsum_pairwise)(ksum);
    *u += DC_FN(dc_vsum_pairwise)(wsum);
}
#endif

/* The terms of dc_entropy_update a value at a time, in double at the running max m, added
 * to sums[] = {Σ e over the values below m, how many equal m, Σ e·(m - x)}; the scalar
 * exp (dc_exp_f64). The last values of a block after the vector lanes, and every value
 * without vectors. */
DC_TARGET DC_INLINE void DC_FN(dc_entropy_values)(const DC_T *x, ptrdiff_t n, double m,
                                                  double *sums)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        const double d = (double)x[i] - m;
        if (d == 0.0) {
            sums[1] += 1.0;
        } else if (d == d) {
            const double e = dc_exp_f64(d);
            sums[0] += e;
            sums[2] -= e * (d > -800.0 ? d : -800.0);
        } else {
            sums[0] += d; /* NaN */
        }
    }
}

#ifdef DC_HAVE_VEC
/* dc_entropy_block_sums for float rows, in double lanes: d = x - m is exact in double (x
 * and m are floats), e = exp(d) to 2.2e-13 relative (dc_vdexp_rounded), S's part and U's
 * in double, so no correction of e is needed: the float32 entropy within its rounding
 * (~1 ulp), as the two-read form (float log-sum-exp, float64 terms) gave, in one read and
 * one exp per value. The values equal to m are counted in at_max (see above); d is kept
 * at or above -800 in the product (e is 0 there: 0·(-inf) would be NaN). The last
 * n % (2·DC_VDLEN) values take the scalar exp. */
DC_TARGET DC_INLINE void DC_FN(dc_entropy_block_sums_wide)(const DC_T *x, ptrdiff_t n, double m,
                                                              int below, dc_lse_state *st,
                                                              double *u)
{
    const DC_VD zero = {0}, one = zero + 1.0, low = zero - 800.0;
    DC_VD r[4], k[4], w[4];
    for (int a = 0; a < 4; a++) { r[a] = zero; k[a] = zero; w[a] = zero; }
    const ptrdiff_t step = 4 * DC_VDLEN, pair = 2 * DC_VDLEN;
    ptrdiff_t i = 0;
    if (below) {
        for (; i + step <= n; i += step) {
            DC_VD v[4];
            DC_VLOAD2(x + i, &v[0], &v[1]);
            DC_VLOAD2(x + i + pair, &v[2], &v[3]);
            for (int a = 0; a < 4; a++) {
                const DC_VD d = v[a] - m;
                const DC_VD e = DC_FN(dc_vdexp_rounded)(d);
                r[a] += e;
                w[a] -= e * DC_ISA_NAME(dc_vmax_keep, f64)(d, low);
            }
        }
    }
    for (int a = 0; i + pair <= n; i += pair, a = (a + 2) % 4) {
        DC_VD v[2];
        DC_VLOAD2(x + i, &v[0], &v[1]);
        for (int h = 0; h < 2; h++) {
            const DC_VD d = v[h] - m;
            const DC_VD e = DC_FN(dc_vdexp_rounded)(d);
            const DC_VDI top = v[h] == m;
            r[a + h] += DC_VDSEL(top, zero, e);
            k[a + h] += DC_VDSEL(top, one, zero);
            w[a + h] -= DC_VDSEL(top, zero, e * DC_ISA_NAME(dc_vmax_keep, f64)(d, low));
        }
    }
    double sums[3] = {0.0, 0.0, 0.0};
    DC_FN(dc_entropy_values)(x + i, n - i, m, sums);
    const DC_VD rsum = (r[0] + r[1]) + (r[2] + r[3]), ksum = (k[0] + k[1]) + (k[2] + k[3]);
    const DC_VD wsum = (w[0] + w[1]) + (w[2] + w[3]);
    double rv = 0.0, kv = 0.0, wv = 0.0;
    for (ptrdiff_t j = 0; j < DC_VDLEN; j++) {
        rv += rsum[j];
        kv += ksum[j];
        wv += wsum[j];
    }
    dc_sum_add(&st->rest, &st->rest_c, rv + sums[0]);
    st->at_max += kv + sums[1];
    *u += wv + sums[2];
}
#endif

/* dc_entropy_logits' one read of x[0 .. n), a block of DC_BLOCK values at a time, into
 * the row's state st (its log-sum-exp's) and U = Σ e_i (M - x_i), both started by the
 * caller (dc_lse_init, 0) and moved along with the running max as the log-sum-exp's sum
 * is: when M grows to M',
 *     U' = Σ e_i e^(M - M') (M' - x_i) = e^(M - M') (U + (M' - M) S).
 * Returns 0 after a NaN (the entropy is NaN). A row cut at multiples of DC_BLOCK gives the
 * same state, a part per call: the half-precision kernels (half_t.h) widen a long row a
 * chunk at a time and call this same function. Float rows take their blocks' sums in
 * double lanes (dc_entropy_block_sums_wide), double rows in their own lanes with the
 * two-sum correction of each exp (dc_entropy_block_sums). */
DC_TARGET DC_ENTRY int DC_FN(dc_entropy_update)(const DC_T *x, ptrdiff_t n, dc_lse_state *st,
                                                double *u)
{
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK) {
        const ptrdiff_t len = DC_MIN_LEN(DC_BLOCK, n - start);
        const DC_T *xb = x + start;
        const DC_T b = DC_FN(dc_block_max_skip_nan)(xb, len);
        if (!(b > -INFINITY)) { /* every exp is 0, unless there is a NaN */
            if (DC_FN(dc_has_nan)(xb, len)) return 0;
            continue;
        }
        const int below = b < st->max;
        if (b > st->max) {
            const double old = st->max, s = dc_lse_sum(st);
            dc_lse_raise_max(st, (double)b);
            if (s != 0.0) *u = (*u + ((double)b - old) * s) * exp(old - (double)b);
        }
#ifdef DC_HAVE_VEC
        if (sizeof(DC_T) < sizeof(double))
            DC_FN(dc_entropy_block_sums_wide)(xb, len, st->max, below, st, u);
        else
            DC_FN(dc_entropy_block_sums)(xb, len, (DC_T)st->max, below, st, u);
#else
        (void)below;
        double sums[3] = {0.0, 0.0, 0.0};
        DC_FN(dc_entropy_values)(xb, len, st->max, sums);
        dc_sum_add(&st->rest, &st->rest_c, sums[0]);
        st->at_max += sums[1];
        *u += sums[2];
#endif
        if (st->rest != st->rest) return 0;
    }
    return 1;
}

/* H(softmax(x)) of a row of any length by dc_entropy_update alone (no lanes): what
 * dc_entropy_logits computes for a long row, and what row_stats takes again for a float
 * row whose one-pass float sums are not precise enough (row_stats_t.h). */
DC_TARGET DC_INLINE double DC_FN(dc_entropy_logits_read)(const DC_T *x, ptrdiff_t n)
{
    dc_lse_state st;
    dc_lse_init(&st);
    double u = 0.0;
    if (!DC_FN(dc_entropy_update)(x, n, &st, &u) || !dc_lse_ok(&st)) return NAN;
    return dc_entropy_of_sums(&st, u);
}

/* H(softmax(x)) = Σ q_i (lse - x_i) = log S + U / S,  U = Σ e_i (M - x_i),  e_i = exp(x_i - M):
 * non-negative terms only, in one read of the row (dc_entropy_update). A row of at most
 * DC_LANES_MAX_N values takes the steps of its lane in dc_entropy_logits_rows, so it gives
 * the bits the Python API gives it in a batch (without vectors the lane kernel is this
 * function, hence the guard). */
DC_TARGET DC_ENTRY double DC_FN(dc_entropy_logits)(const DC_T *x, ptrdiff_t n)
{
#ifdef DC_HAVE_VEC
    if (n > 0 && n <= DC_LANES_MAX_N) {
        const dc_rows r = {(const char *)x, n * (ptrdiff_t)sizeof(DC_T),
                           (ptrdiff_t)sizeof(DC_T), n, NULL, 0, 0, 1.0};
        double h;
        DC_FN(dc_entropy_logits_rows)(&r, 0, 1, &h);
        return h;
    }
#endif
    return DC_FN(dc_entropy_logits_read)(x, n);
}
