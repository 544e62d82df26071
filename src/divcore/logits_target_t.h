/* divcore/logits_target_t.h: cross-entropy, entropy and KL against a target given as
 * logits (a teacher), p = softmax(t).
 * Part of the type-generic body of losses.h, included by losses_t.h (DC_T, DC_SFX, DC_FN and
 * the DC_VD* macros defined there). Not to be included on its own. */

#ifdef DC_HAVE_VEC
/* The terms of dc_soft_logits' second pass over the whole vectors of a block (the same
 * formulas, in lanes); adds to sums[] = {ce, h, kl, Σa} and returns how many values it
 * took (the rest is the scalar loop's). */
DC_TARGET DC_INLINE ptrdiff_t DC_FN(dc_logits_terms_vec)(
    const DC_T *x, const DC_T *t, const DC_T *w, ptrdiff_t n, DC_T mx, DC_T mt, DC_T inv_st,
    DC_T log_st, double *sums)
{
    const DC_V zero = {0}, inf = zero + (DC_T)INFINITY, ninf = zero - (DC_T)INFINITY;
    DC_V c = zero, h = zero, k = zero, a_sum = zero;
    const ptrdiff_t whole = n - n % DC_VLEN;
    for (ptrdiff_t i = 0; i < whole; i += DC_VLEN) {
        const DC_V dt = *(const DC_V *)(t + i) - mt, dx = *(const DC_V *)(x + i) - mx;
        const DC_V p = DC_VEXP_NONPOS(dt) * inv_st; /* dt ≤ 0: t ≤ its max */
        DC_V a = p;
        DC_VI has = dt > ninf;
        if (w != NULL) {
            const DC_V wv = *(const DC_V *)(w + i);
            a = wv * p;
            has &= wv != zero;
        }
        /* lost: a -inf logit (not x - M overflowing for a finite x, where a term whose
         * mass underflowed to 0 is 0, not 0·inf) */
        const DC_VI lost = *(const DC_V *)(x + i) == ninf, none = a == zero;
        a_sum += a;
        c += DC_VSEL(has, DC_VSEL(lost, inf, DC_VSEL(none, zero, a * -dx)), zero);
        h += DC_VSEL(has, a * (dt - log_st), zero);
        k += DC_VSEL(has, DC_VSEL(lost, inf, DC_VSEL(none, zero, a * (dt - dx))), zero);
    }
    for (int j = 0; j < DC_VLEN; j++) {
        sums[0] += c[j];
        sums[1] += h[j];
        sums[2] += k[j];
        sums[3] += a_sum[j];
    }
    return whole;
}
#endif

/* The second pass of dc_soft_logits (below) over x[0 .. n), t[0 .. n) and the weights w
 * (NULL: none), a block of DC_BLOCK values at a time, each block's lanes added to
 * sums[] = {ce, h, kl, Σa} in order. c holds M_x, M_t, 1/S_t and log S_t rounded to DC_T
 * (dc_logits_consts). A row cut at multiples of DC_BLOCK gives the same sums, a part per
 * call: the half-precision kernels (half_t.h) widen a long row a chunk at a time and
 * call this same function. */
DC_TARGET DC_ENTRY void DC_FN(dc_logits_terms)(const DC_T *x, const DC_T *t, const DC_T *w,
                                               ptrdiff_t n, const DC_T *c, double *sums)
{
    const DC_T mx = c[0], mt = c[1], inv_st = c[2], log_st = c[3];
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK) {
        const ptrdiff_t len = DC_MIN_LEN(DC_BLOCK, n - start);
        ptrdiff_t first = start;
#ifdef DC_HAVE_VEC
        first += DC_FN(dc_logits_terms_vec)(x + start, t + start, w != NULL ? w + start : NULL,
                                            len, mx, mt, inv_st, log_st, sums);
#endif
        DC_T c_[DC_LANES], h_[DC_LANES], k_[DC_LANES], a_[DC_LANES];
        for (int j = 0; j < DC_LANES; j++) { c_[j] = 0; h_[j] = 0; k_[j] = 0; a_[j] = 0; }
        for (ptrdiff_t i = first; i < start + len; i++) {
            const int j = (int)(i % DC_LANES);
            const DC_T dt = t[i] - mt, dx = x[i] - mx;
            const DC_T p = DC_EXP(dt) * inv_st;
            const DC_T a = w != NULL ? w[i] * p : p;
            /* p > 0 exactly when t is finite (its exp may still underflow); mass on a
             * -inf logit makes the loss infinite. */
            const int has = dt > -INFINITY && (w == NULL || w[i] != 0);
            /* lost: a -inf logit, not x - M overflowing for a finite x (there a term
             * whose mass underflowed to 0 is 0, not 0·inf) */
            const int lost = x[i] == -INFINITY, none = a == (DC_T)0;
            a_[j] += a;
            c_[j] += has ? (lost ? (DC_T)INFINITY : none ? (DC_T)0 : a * -dx) : (DC_T)0;
            h_[j] += has ? a * (dt - log_st) : (DC_T)0;
            k_[j] += has ? (lost ? (DC_T)INFINITY : none ? (DC_T)0 : a * (dt - dx)) : (DC_T)0;
        }
        for (int j = 0; j < DC_LANES; j++) {
            sums[0] += c_[j];
            sums[1] += h_[j];
            sums[2] += k_[j];
            sums[3] += a_[j];
        }
    }
}

/* The constants of dc_logits_terms from the rows' scans (both with a distribution). */
DC_TARGET DC_INLINE void DC_FN(dc_logits_consts)(const dc_lse_state *sx, const dc_lse_state *st,
                                                 DC_T *c)
{
    c[0] = (DC_T)sx->max;
    c[1] = (DC_T)st->max;
    c[2] = (DC_T)(1.0 / dc_lse_sum(st));
    c[3] = (DC_T)dc_lse_log_sum(st);
}

/* dc_soft_logits' losses from the rows' scans and the sums of dc_logits_terms (a function
 * of its own, shared with half_t.h, as its multiply-adds may be fused). */
DC_TARGET DC_ENTRY void DC_FN(dc_soft_logits_finish)(const dc_lse_state *sx,
                                                     const dc_lse_state *st, int weighted,
                                                     const double *sums, dc_soft_result *res)
{
    const double ce = sums[0], hs = sums[1], asum = sums[3];
    double kl = sums[2];
    const double log_sx = dc_lse_log_sum(sx);
    res->asum = asum;
    res->ce = ce + asum * log_sx;
    res->h = -hs;
    kl += asum * (log_sx - dc_lse_log_sum(st));
    res->kl = weighted ? kl : dc_clamp_nonnegative(kl); /* weighted: CE_w - H_w, any sign */
}

/* Target given as logits t: p = softmax(t). Two passes: the log-sum-exp of both rows,
 * then with both maxima final (dc_logits_terms),
 *     log p_i - log q_i = (t_i - M_t) - (x_i - M_x) + (log S_x - log S_t)
 *     ce = Σ a_i (M_x - x_i) + Σa·log S_x,     h = -Σ a_i log p_i,
 *     kl = Σ a_i ((t_i - M_t) - (x_i - M_x)) + Σa·(log S_x - log S_t)
 * so that kl is exactly 0 when t == x, and every term is invariant to adding a constant
 * to either row. A target without a distribution gives NaN. */
DC_TARGET DC_ENTRY void DC_FN(dc_soft_logits)(const DC_T *x, const DC_T *t, const DC_T *w,
                                         ptrdiff_t n, dc_soft_result *res)
{
    const dc_lse_state sx = DC_FN(dc_lse_scan)(x, n);
    const dc_lse_state st = DC_FN(dc_lse_scan)(t, n);
    if (!dc_soft_logits_begin(&sx, &st, res)) return;
    DC_T c[4];
    DC_FN(dc_logits_consts)(&sx, &st, c);
    double sums[4] = {0.0, 0.0, 0.0, 0.0}; /* ce, h, kl, Σa */
    DC_FN(dc_logits_terms)(x, t, w, n, c, sums);
    DC_FN(dc_soft_logits_finish)(&sx, &st, w != NULL, sums, res);
}

/* Short rows in lanes (lanes_soft_t.h, built after this file). */
DC_TARGET DC_ENTRY void DC_FN(dc_logits_rows)(const dc_rows *rx, const dc_rows *rt,
                                             const DC_T *w, ptrdiff_t first, ptrdiff_t count,
                                             dc_soft_result *res);

/* KL(softmax(t) ‖ softmax(x)); a row of at most DC_LANES_MAX_N values takes the steps of
 * its lane in dc_logits_rows, so it gives the bits the Python API gives it in a batch. */
DC_TARGET DC_ENTRY double DC_FN(dc_kl_logits)(const DC_T *t, const DC_T *x, ptrdiff_t n)
{
    dc_soft_result r;
    if (n > 0 && n <= DC_LANES_MAX_N) {
        const dc_rows rx = {(const char *)x, n * (ptrdiff_t)sizeof(DC_T),
                            (ptrdiff_t)sizeof(DC_T), n, NULL, 0, 0, 1.0};
        const dc_rows rt = {(const char *)t, n * (ptrdiff_t)sizeof(DC_T),
                            (ptrdiff_t)sizeof(DC_T), n, NULL, 0, 0, 1.0};
        DC_FN(dc_logits_rows)(&rx, &rt, NULL, 0, 1, &r);
        return r.kl;
    }
    DC_FN(dc_soft_logits)(x, t, NULL, n, &r);
    return r.kl;
}
