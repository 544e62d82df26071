/* divcore/logits_target_t.h: cross-entropy, entropy and KL against a target given as
 * logits (a teacher), p = softmax(t).
 * Part of the type-generic body of losses.h, included by losses_t.h (DC_T, DC_SFX, DC_FN and
 * the DC_VD* macros defined there). Not to be included on its own. */

/* One value of dc_logits_block's scalar tail: x_i, t_i (and its weight, w NULL: none) at
 * the maxima mx, mt, into the block's sums b[] and the rows' rests rxs, rts. */
DC_TARGET DC_INLINE void DC_FN(dc_logits_tail_value)(DC_T xi, DC_T ti, const DC_T *w,
                                                     DC_T mx, DC_T mt, dc_logits_sums *s,
                                                     double *rxs, double *rts, double *b)
{
    const DC_T sc = sizeof(DC_T) == sizeof(double) ? (DC_T)(1.0 / 1024.0) : (DC_T)1;
    const DC_T dx = xi - mx, dt = ti - mt;
    const DC_T ex = DC_EXP(dx), et = DC_EXP(dt);
    if (xi == mx) s->sx.at_max += 1.0; else *rxs += (double)ex;
    if (ti == mt) s->st.at_max += 1.0; else *rts += (double)et;
    const DC_T a = w != NULL ? *w * (et * sc) : et * sc;
    const int has = dt > -INFINITY && (w == NULL || *w != 0);
    b[0] += (double)a;
    if (has) b[2] += (double)(a * dt);
    if (has && xi == -INFINITY) {
        s->lost += 1.0;
    } else if (has) {
        b[1] += (double)(a * -dx);
        b[3] += (double)(a * (dt - dx));
    }
}

/* dc_logits_update's step before a block whose maxima are bx, bt: both running maxima
 * raised, the normalised sums moved with them (c' = c + δx·ea, h' = h - δt·ea,
 * k' = k + (δx - δt)·ea); the maxima the block's exps take (0 while a row has no finite
 * value) into *mx, *mt. */
DC_TARGET DC_INLINE void DC_FN(dc_logits_raise)(dc_logits_sums *s, DC_T bx, DC_T bt,
                                                DC_T *mx, DC_T *mt)
{
    dc_logits_move(s, (double)bx, (double)bt);
    *mx = s->sx.max > -INFINITY ? (DC_T)s->sx.max : (DC_T)0;
    *mt = s->st.max > -INFINITY ? (DC_T)s->st.max : (DC_T)0;
}

/* One block of dc_logits_update: n ≤ DC_BLOCK values of x, t (and the weights w, NULL:
 * none) at the running maxima mx, mt (each its row's max so far, or 0 while the row has no
 * finite value: every exp is then 0), every value at or below them. Both rows' log-sum-exp
 * parts take the same steps (a value equal to its max counted in at_max, the others' exp
 * in rest), so that t == x gives the same two states and KL exactly 0. With e = exp(t - mt),
 * a = w·e (has: t finite and w ≠ 0), the terms of dc_logits_sums in DC_T lanes, summed
 * into b[] = {ea, c, h, k} at the end of the block (the target's own h with every class
 * that has mass); a class with mass on a -inf logit is counted in `lost` instead of its
 * infinite c and k terms. */
DC_TARGET DC_INLINE void DC_FN(dc_logits_block)(const DC_T *x, const DC_T *t, const DC_T *w,
                                               ptrdiff_t n, DC_T mx, DC_T mt,
                                               dc_logits_sums *s, double *b)
{
    /* double terms reach DBL_MAX where x spans it: scaled by 2^-10 exactly, the block's
     * 512 terms cannot overflow their sums (float terms can, as their differences can) */
    const DC_T sc = sizeof(DC_T) == sizeof(double) ? (DC_T)(1.0 / 1024.0) : (DC_T)1;
    ptrdiff_t i = 0;
#ifdef DC_HAVE_VEC
    const DC_V zero = {0}, one = zero + 1, ninf = zero - (DC_T)INFINITY;
    DC_V rx = zero, kx = zero, rt = zero, kt = zero;
    DC_V ea = zero, c = zero, h = zero, k = zero, lost = zero;
    const ptrdiff_t whole = n - n % DC_VLEN;
    for (; i < whole; i += DC_VLEN) {
        const DC_V vx = *(const DC_V *)(x + i), vt = *(const DC_V *)(t + i);
        const DC_V dx = vx - mx, dt = vt - mt;
        const DC_V ex = DC_VEXP_NONPOS(dx), et = DC_VEXP_NONPOS(dt);
        const DC_VI topx = vx == mx, topt = vt == mt;
        rx += DC_VSEL(topx, zero, ex);
        kx += DC_VSEL(topx, one, zero);
        rt += DC_VSEL(topt, zero, et);
        kt += DC_VSEL(topt, one, zero);
        DC_V a = et * sc;
        DC_VI has = dt > ninf;
        if (w != NULL) {
            const DC_V wv = *(const DC_V *)(w + i);
            a = wv * a;
            has &= wv != zero;
        }
        const DC_VI gone = vx == ninf, kept = has & ~gone;
        lost += DC_VSEL(has & gone, one, zero);
        ea += a;
        h += DC_VSEL(has, a * dt, zero);
        c += DC_VSEL(kept, a * -dx, zero);
        k += DC_VSEL(kept, a * (dt - dx), zero);
    }
    dc_sum_add(&s->sx.rest, &s->sx.rest_c, DC_FN(dc_vsum_pairwise)(rx));
    s->sx.at_max += DC_FN(dc_vsum_pairwise)(kx);
    dc_sum_add(&s->st.rest, &s->st.rest_c, DC_FN(dc_vsum_pairwise)(rt));
    s->st.at_max += DC_FN(dc_vsum_pairwise)(kt);
    b[0] += DC_FN(dc_vsum_pairwise)(ea);
    b[1] += DC_FN(dc_vsum_pairwise)(c);
    b[2] += DC_FN(dc_vsum_pairwise)(h);
    b[3] += DC_FN(dc_vsum_pairwise)(k);
    s->lost += DC_FN(dc_vsum_pairwise)(lost);
#endif
    /* the block's last values (every value without vectors), one at a time */
    double rxs = 0.0, rts = 0.0;
    for (; i < n; i++)
        DC_FN(dc_logits_tail_value)(x[i], t[i], w != NULL ? &w[i] : NULL, mx, mt, s, &rxs,
                                    &rts, b);
    dc_sum_add(&s->sx.rest, &s->sx.rest_c, rxs);
    dc_sum_add(&s->st.rest, &s->st.rest_c, rts);
}

/* dc_soft_logits' one read of x[0 .. n), t[0 .. n) and the weights w (NULL: none), a block
 * of DC_BLOCK values at a time, into s (dc_logits_sums_init). The sums are kept divided by
 * S_t, the target's sum so far, so that they stay below the largest |x_i - M_x| (an
 * unnormalised Σ e_i·|x_i - M_x| overflows where x spans the double range). When a block
 * raises M_x by δx and M_t by δt, each M_x - x_i grows by δx, each t_i - M_t drops by δt,
 * and e_i and S_t both scale by e^-δt, which the normalised sums do not see:
 *     c' = c + δx·ea,  h' = h - δt·ea,  k' = k + (δx - δt)·ea.
 * Then the block's own sums at those maxima join them: Σ' = Σ·(S_before/S_after) +
 * block/S_after. A row cut at multiples of DC_BLOCK gives the same sums, a part per call:
 * the half-precision kernels (half_t.h) widen a long row a chunk at a time and call this
 * same function. */
DC_TARGET DC_ENTRY void DC_FN(dc_logits_update)(const DC_T *x, const DC_T *t, const DC_T *w,
                                                ptrdiff_t n, dc_logits_sums *s)
{
    const double unscale = sizeof(DC_T) == sizeof(double) ? 1024.0 : 1.0; /* dc_logits_block */
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK) {
        const ptrdiff_t len = DC_MIN_LEN(DC_BLOCK, n - start);
        const DC_T *xb = x + start, *tb = t + start;
        const DC_T bx = DC_FN(dc_block_max_skip_nan)(xb, len);
        const DC_T bt = DC_FN(dc_block_max_skip_nan)(tb, len);
        DC_T mx, mt;
        DC_FN(dc_logits_raise)(s, bx, bt, &mx, &mt);
        const double before = dc_lse_sum(&s->st);
        double blk[4] = {0.0, 0.0, 0.0, 0.0}; /* ea, c, h, k of the block, scaled */
        DC_FN(dc_logits_block)(xb, tb, w != NULL ? w + start : NULL, len, mx, mt, s, blk);
        dc_logits_join(s, before, blk, unscale);
    }
}

/* dc_soft_logits' losses from the sums of its read (dc_logits_update), which are those of
 * a = w·p (p = e / S_t):
 *     ce = c + Σa·log S_x,     h = Σa·log S_t - h,     kl = k + Σa·(log S_x - log S_t)
 * (+inf ce and kl where target mass sits on a -inf logit). A NaN in either row (its rest
 * is NaN) or a row without a distribution gives NaN. */
DC_TARGET DC_ENTRY void DC_FN(dc_soft_logits_finish)(dc_logits_sums *s, int weighted,
                                                     dc_soft_result *res)
{
    if (s->sx.rest != s->sx.rest) s->sx.nan = 1;
    if (s->st.rest != s->st.rest) s->st.nan = 1;
    if (!dc_soft_logits_begin(&s->sx, &s->st, res)) return;
    const double log_sx = dc_lse_log_sum(&s->sx), log_st = dc_lse_log_sum(&s->st);
    const double asum = s->ea;
    res->asum = asum;
    res->ce = s->lost > 0.0 ? INFINITY : s->c + asum * log_sx;
    res->h = asum * log_st - s->h;
    const double kl = s->lost > 0.0 ? INFINITY : s->k + asum * (log_sx - log_st);
    res->kl = weighted ? kl : dc_clamp_nonnegative(kl); /* weighted: CE_w - H_w, any sign */
}

/* Target given as logits t: p = softmax(t). One read of both rows (dc_logits_update), the
 * sums moved along with both running maxima, so that with the maxima M final
 *     log p_i - log q_i = (t_i - M_t) - (x_i - M_x) + (log S_x - log S_t)
 *     ce = Σ a_i (M_x - x_i) + Σa·log S_x,     h = -Σ a_i log p_i,
 *     kl = Σ a_i ((t_i - M_t) - (x_i - M_x)) + Σa·(log S_x - log S_t)
 * kl is exactly 0 when t == x, and every term is invariant to adding a constant to either
 * row (to rounding). A target without a distribution gives NaN. */
DC_TARGET DC_ENTRY void DC_FN(dc_soft_logits)(const DC_T *x, const DC_T *t, const DC_T *w,
                                         ptrdiff_t n, dc_soft_result *res)
{
    dc_logits_sums s;
    dc_logits_sums_init(&s);
    DC_FN(dc_logits_update)(x, t, w, n, &s);
    DC_FN(dc_soft_logits_finish)(&s, w != NULL, res);
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
