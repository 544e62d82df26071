/* divcore/soft_target_t.h: cross-entropy, entropy and KL against a probability or
 * log-probability target row (and short rows of probabilities in lanes).
 * Part of the type-generic body of losses.h, included by losses_t.h (DC_T, DC_SFX, DC_FN and
 * the DC_VD* macros defined there). Not to be included on its own. */

/* ------------------------------------------------------------------ soft-target rows */

/* Target side of a block: p from probabilities or log-probabilities, a = w·p into a_out,
 * the target's entropy sum Σ a·log p (when want_h) and, with want_sums, the sums for
 * validation and the mass Σa. */
DC_TARGET DC_INLINE void DC_FN(dc_block_target)(const DC_T *t, const DC_T *w, ptrdiff_t n,
                                          int is_log, int want_h, int want_sums, DC_T *a_out,
                                          dc_target_sums *s)
{
    DC_T ps[DC_LANES], as[DC_LANES], hs[DC_LANES];
    int bad[DC_LANES];
    for (int j = 0; j < DC_LANES; j++) { ps[j] = 0; as[j] = 0; hs[j] = 0; bad[j] = 0; }
    for (ptrdiff_t i = 0; i < n; i++) {
        const int j = (int)(i % DC_LANES);
        const DC_T tv = t[i];
        const DC_T p = is_log ? DC_EXP(tv) : tv;
        const DC_T a = w != NULL ? w[i] * p : p;
        ps[j] += p;
        as[j] += a;
        bad[j] += is_log ? (tv != tv) : !(p >= 0);
        if (want_h) hs[j] += p != 0 ? a * (is_log ? tv : DC_LOG(p)) : (DC_T)0;
        a_out[i] = a;
    }
    for (int j = 0; j < DC_LANES; j++) {
        s->hsum += hs[j];
        if (!want_sums) continue; /* the vector loop has them (dc_block_target_vec) */
        s->psum += ps[j];
        s->asum += as[j];
        s->nbad += bad[j];
    }
}

/* Logit side of a block at running max m: Σ a·(m - x) (terms with a == 0 are 0), and the
 * block's part of S (see lse.h). A log-probability target has mass exactly where it is
 * > -inf, even where exp underflows a to 0: mass on a -inf logit is +inf. */
DC_TARGET DC_INLINE double DC_FN(dc_block_soft)(const DC_T *x, const DC_T *a, const DC_T *t,
                                          const DC_T *w, int is_log, ptrdiff_t n, DC_T m,
                                          dc_lse_state *st)
{
    DC_T sh[DC_LANES], r[DC_LANES], k[DC_LANES];
    for (int j = 0; j < DC_LANES; j++) { sh[j] = 0; r[j] = 0; k[j] = 0; }
    for (ptrdiff_t i = 0; i < n; i++) {
        const int j = (int)(i % DC_LANES);
        const DC_T v = x[i];
        const int top = v == m;
        const int has = is_log ? (t[i] > -INFINITY && (w == NULL || w[i] != 0)) : a[i] != 0;
        sh[j] += has ? (v == -INFINITY ? (DC_T)INFINITY : a[i] * (m - v)) : (DC_T)0;
        k[j] += top;
        r[j] += top ? (DC_T)0 : DC_EXP(v - m);
    }
    double shift = 0.0;
    for (int j = 0; j < DC_LANES; j++) {
        shift += sh[j];
        st->at_max += k[j];
        dc_sum_add(&st->rest, &st->rest_c, (double)r[j]);
    }
    return shift;
}

#ifdef DC_HAVE_VEC
/* dc_block_target and dc_block_soft in one loop over a block's whole vectors (n, a
 * multiple of DC_VLEN): the target's Σp, Σa, bad entries and, with want_h, its entropy sum
 * Σ a·log p (0 where p = 0; a log-probability target is its own log) into *s; with `soft`
 * (the logits' running max m is finite) also Σ a·(m - x) and the block's part of S into
 * st. `below`: the block's max is below m, no value is counted at the max. Returns
 * Σ a·(m - x). One read of each row, the exp of a log-probability target taken once. */
DC_TARGET DC_INLINE double DC_FN(dc_block_soft_vec)(const DC_T *x, const DC_T *t,
                                                       const DC_T *w, int is_log, int want_h,
                                                       ptrdiff_t n, int soft, int below,
                                                       DC_T m, dc_lse_state *st,
                                                       dc_target_sums *s)
{
    const DC_V zero = {0}, one = zero + 1, inf = zero + (DC_T)INFINITY;
    const DC_V ninf = zero - (DC_T)INFINITY;
    DC_V ps = zero, as = zero, bad = zero, hs = zero, sh = zero, r = zero, k = zero;
    for (ptrdiff_t i = 0; i < n; i += DC_VLEN) {
        const DC_V tv = *(const DC_V *)(t + i);
        DC_V p = tv, a;
        DC_VI has;
        if (is_log) {
            p = DC_VEXP(tv);
            bad += DC_VSEL(tv != tv, one, zero);
            has = tv > ninf;
        } else {
            bad += DC_VSEL(p >= zero, zero, one);
            has = p != zero;
        }
        a = p;
        if (w != NULL) {
            const DC_V wv = *(const DC_V *)(w + i);
            a = wv * p;
            if (is_log) has &= wv != zero;
            else has = a != zero;
        }
        ps += p;
        as += a;
        if (want_h)
            hs += DC_VSEL(p != zero, a * (is_log ? tv : DC_VLOG(p)), zero);
        if (!soft) continue;
        const DC_V v = *(const DC_V *)(x + i);
        sh += DC_VSEL(has, DC_VSEL(v == ninf, inf, a * (m - v)), zero);
        if (below) {
            r += DC_VEXP_NONPOS(v - m);
        } else {
            const DC_VI top = v == m;
            k += DC_VSEL(top, one, zero);
            r += DC_VSEL(top, zero, DC_VEXP_NONPOS(v - m));
        }
    }
    double shift = 0.0;
    for (int j = 0; j < DC_VLEN; j++) {
        s->psum += ps[j];
        s->asum += as[j];
        s->nbad += (ptrdiff_t)bad[j];
        s->hsum += hs[j];
        if (!soft) continue;
        shift += sh[j];
        st->at_max += k[j];
        dc_sum_add(&st->rest, &st->rest_c, (double)r[j]);
    }
    return shift;
}
#endif

/* Cross-entropy (and, with want_h, entropy and KL) of a probability or log-probability
 * target against softmax(x), in one pass over both rows, with optional class weights w:
 *     ce = Σ a_i (lse - x_i) = A + (Σ a) log S,   A = Σ a_i (M - x_i),  a = w·p
 * A is kept online: when the max grows from M to M', every term counted so far grows by
 * (M' - M), so A += (M' - M)·Σa_seen. Terms are ≥ 0 for w ≥ 0: no cancellation.
 *     h = -Σ a_i log p_i,   kl = ce - h (clamped at 0).
 * The target sums (psum, nbad) cover the whole row even when x holds a NaN.
 * dc_soft_target_update folds x[0 .. n), t[0 .. n) (and w) into the running state *s, a
 * block of DC_BLOCK values at a time, the state carried from block to block: a row cut at
 * multiples of DC_BLOCK gives the same state, a part per call (half_t.h widens a long row
 * a chunk at a time and calls this same function). */
DC_TARGET DC_ENTRY void DC_FN(dc_soft_target_update)(dc_soft_state *s, const DC_T *x,
                                                    const DC_T *t, const DC_T *w,
                                                    ptrdiff_t n, int is_log, int want_h)
{
    DC_T a[DC_BLOCK];
    /* in locals while the blocks run, as when this was one function with the row's end */
    dc_lse_state st = s->st;
    dc_target_sums ts = s->ts;
    double shift = s->shift, a_seen = s->a_seen;
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK) {
        const ptrdiff_t len = DC_MIN_LEN(DC_BLOCK, n - start);
        const DC_T *xb = x + start;
        const double a_before = ts.asum;
        const DC_T *tb = t + start, *wb = w != NULL ? w + start : NULL;
        int below = 0;
        if (!st.nan) {
            DC_T b;
            if (DC_FN(dc_block_max)(xb, len, &b)) {
                st.nan = 1;
            } else if (b > st.max) {
                /* With no finite max yet, the terms seen so far sit on -inf logits: +inf
                 * if any has mass (0·inf is not formed when a_seen == 0). */
                if (a_seen != 0.0) shift += ((double)b - st.max) * a_seen;
                dc_lse_raise_max(&st, (double)b);
            } else {
                below = b < st.max;
            }
        }
        /* The target sums cover the whole row, also past a NaN in x. */
        const int soft = !st.nan && st.max > -INFINITY;
        ptrdiff_t done = 0;
#ifdef DC_HAVE_VEC
        /* Σp, Σa and the bad count come from the same vector loop with or without the
         * entropy, so the mass (and with it the gradient) is the same number for CE and
         * KL. */
        done = len - len % DC_VLEN;
        /* the common blocks (no weights, below the max) with constant flags, so that each
         * gets a loop of its own */
        if (done > 0 && wb == NULL && soft && below) {
            const DC_T m = (DC_T)st.max;
            if (is_log && want_h)
                shift += DC_FN(dc_block_soft_vec)(xb, tb, NULL, 1, 1, done, 1, 1, m, &st, &ts);
            else if (is_log)
                shift += DC_FN(dc_block_soft_vec)(xb, tb, NULL, 1, 0, done, 1, 1, m, &st, &ts);
            else if (want_h)
                shift += DC_FN(dc_block_soft_vec)(xb, tb, NULL, 0, 1, done, 1, 1, m, &st, &ts);
            else
                shift += DC_FN(dc_block_soft_vec)(xb, tb, NULL, 0, 0, done, 1, 1, m, &st, &ts);
        } else if (done > 0) {
            shift += DC_FN(dc_block_soft_vec)(xb, tb, wb, is_log, want_h, done, soft, below,
                                              (DC_T)st.max, &st, &ts);
        }
#else
        (void)below; /* only the vector loop has a form for the blocks below the max */
#endif
        DC_FN(dc_block_target)(tb + done, wb != NULL ? wb + done : NULL, len - done, is_log,
                               want_h, 1, a + done, &ts);
        a_seen += ts.asum - a_before;
        if (soft)
            shift += DC_FN(dc_block_soft)(xb + done, a + done, tb + done,
                                          wb != NULL ? wb + done : NULL, is_log, len - done,
                                          (DC_T)st.max, &st);
    }
    s->st = st;
    s->ts = ts;
    s->shift = shift;
    s->a_seen = a_seen;
}

/* dc_soft_target_row's result from its state after the whole row (a function of its own,
 * shared with half_t.h, as its multiply-add may be fused). */
DC_TARGET DC_ENTRY void DC_FN(dc_soft_target_finish)(const dc_soft_state *s, int weighted,
                                                    int want_h, dc_soft_result *res)
{
    const dc_lse_state *st = &s->st;
    res->psum = s->ts.psum;
    res->nbad = s->ts.nbad;
    res->asum = s->ts.asum;
    res->max = st->max;
    res->sum = dc_lse_sum(st);
    if (!dc_lse_ok(st)) {
        res->ce = res->h = res->kl = NAN;
        return;
    }
    res->ce = s->shift + s->ts.asum * dc_lse_log_sum(st);
    if (want_h) {
        res->h = -s->ts.hsum;
        /* Only a true KL is ≥ 0: with class weights, CE_w - H_w may be negative. */
        res->kl = weighted ? res->ce - res->h : dc_clamp_nonnegative(res->ce - res->h);
    }
}

/* The whole row: dc_soft_target_update once, then dc_soft_target_finish. */
DC_TARGET DC_ENTRY void DC_FN(dc_soft_target_row)(const DC_T *x, const DC_T *t, const DC_T *w,
                                             ptrdiff_t n, int is_log, int want_h,
                                             dc_soft_result *res)
{
    dc_soft_state s;
    dc_soft_state_init(&s);
    DC_FN(dc_soft_target_update)(&s, x, t, w, n, is_log, want_h);
    DC_FN(dc_soft_target_finish)(&s, w != NULL, want_h, res);
}

DC_TARGET DC_INLINE void DC_FN(dc_soft_probs)(const DC_T *x, const DC_T *p, const DC_T *w,
                                        ptrdiff_t n, int want_h, dc_soft_result *res)
{
    DC_FN(dc_soft_target_row)(x, p, w, n, 0, want_h, res);
}

DC_TARGET DC_INLINE void DC_FN(dc_soft_log_probs)(const DC_T *x, const DC_T *lp, const DC_T *w,
                                            ptrdiff_t n, int want_h, dc_soft_result *res)
{
    DC_FN(dc_soft_target_row)(x, lp, w, n, 1, want_h, res);
}

/* The values pass of dc_kl_reverse_target over x[0 .. n), t[0 .. n) (a whole row, or a part
 * of one that starts at a multiple of DC_BLOCK) once the whole row's scan sx is known:
 * the terms into *kl (when the row has a distribution), the target's mass and bad entries
 * into *psum, *nbad, each block's in DC_LANES partial sums (value i into i % DC_LANES). */
DC_TARGET DC_INLINE void DC_FN(dc_kl_reverse_values)(const DC_T *x, const DC_T *t, ptrdiff_t n,
                                                     int is_log, const dc_lse_state *sx,
                                                     double *kl, double *psum, ptrdiff_t *nbad)
{
    const int ok = dc_lse_ok(sx);
    const DC_T m = (DC_T)sx->max;
    const DC_T inv_s = ok ? (DC_T)(1.0 / dc_lse_sum(sx)) : (DC_T)0;
    const DC_T log_s = ok ? (DC_T)dc_lse_log_sum(sx) : (DC_T)0;
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK) {
        const ptrdiff_t len = DC_MIN_LEN(DC_BLOCK, n - start);
        DC_T k_[DC_LANES], p_[DC_LANES];
        int b_[DC_LANES];
        for (int j = 0; j < DC_LANES; j++) { k_[j] = 0; p_[j] = 0; b_[j] = 0; }
        ptrdiff_t i = start;
#ifdef DC_HAVE_VEC
        /* the block's whole vectors: the same terms with the vector exp and log (value i
         * into lane i % DC_VLEN), their lanes added to the scalar ones below */
        const DC_V zero = {0}, one = zero + 1, inf = zero + (DC_T)INFINITY;
        DC_V kv = zero, pv = zero, bv = zero;
        for (; i + DC_VLEN <= start + len; i += DC_VLEN) {
            const DC_V tv = *(const DC_V *)(t + i);
            const DC_V p = is_log ? DC_VEXP(tv) : tv;
            pv += p;
            bv += is_log ? DC_VSEL(tv != tv, one, zero) : DC_VSEL(p >= zero, zero, one);
            if (!ok) continue;
            const DC_V dx = *(const DC_V *)(x + i) - m;
            const DC_V q = DC_VEXP_NONPOS(dx) * inv_s;
            const DC_V log_p = is_log ? tv : DC_VLOG(p);
            kv += DC_VSEL(dx > -inf, DC_VSEL(log_p == -inf, inf, q * ((dx - log_s) - log_p)),
                          zero);
        }
        for (ptrdiff_t j = 0; j < DC_VLEN; j++) {
            k_[j % DC_LANES] += kv[j];
            p_[j % DC_LANES] += pv[j];
            b_[j % DC_LANES] += (int)bv[j];
        }
#endif
        for (; i < start + len; i++) {
            const int j = (int)(i % DC_LANES);
            const DC_T tv = t[i];
            const DC_T p = is_log ? DC_EXP(tv) : tv;
            p_[j] += p;
            b_[j] += is_log ? (tv != tv) : !(p >= 0);
            if (ok) {
                /* q > 0 exactly when x is finite (its exp may still underflow); where
                 * p = 0 the term is +inf. */
                const DC_T dx = x[i] - m;
                const DC_T q = DC_EXP(dx) * inv_s;
                const DC_T log_p = is_log ? tv : DC_LOG(p);
                k_[j] += dx > -INFINITY
                             ? (log_p == -INFINITY ? (DC_T)INFINITY : q * ((dx - log_s) - log_p))
                             : (DC_T)0;
            }
        }
        for (int j = 0; j < DC_LANES; j++) { *kl += k_[j]; *psum += p_[j]; *nbad += b_[j]; }
    }
}

/* Reverse KL(q ‖ p) = Σ q_i (log q_i - log p_i) for a probability or log-probability
 * target p. Terms with q_i == 0 are 0; q_i > 0 where p_i == 0 gives +inf. */
DC_TARGET DC_ENTRY void DC_FN(dc_kl_reverse_target)(const DC_T *x, const DC_T *t, ptrdiff_t n,
                                               int is_log, dc_soft_result *res)
{
    const dc_lse_state sx = DC_FN(dc_lse_scan)(x, n);
    double kl = 0.0, psum = 0.0;
    ptrdiff_t nbad = 0;
    DC_FN(dc_kl_reverse_values)(x, t, n, is_log, &sx, &kl, &psum, &nbad);
    dc_kl_reverse_finish(&sx, kl, psum, nbad, res);
}

/* The sums of a whole target row (see dc_block_target), a block at a time. */
DC_TARGET DC_INLINE dc_target_sums DC_FN(dc_target_sums_row)(const DC_T *t, ptrdiff_t n, int is_log,
                                                       int want_h)
{
    DC_T a[DC_BLOCK];
    dc_target_sums ts = {0.0, 0.0, 0.0, 0};
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK) {
        const ptrdiff_t len = DC_MIN_LEN(DC_BLOCK, n - start);
        ptrdiff_t done = 0;
#ifdef DC_HAVE_VEC
        done = len - len % DC_VLEN; /* the target half of the fused loop */
        if (done > 0)
            DC_FN(dc_block_soft_vec)(t + start, t + start, NULL, is_log, want_h, done, 0, 0,
                                     (DC_T)0, NULL, &ts);
#endif
        DC_FN(dc_block_target)(t + start + done, NULL, len - done, is_log, want_h, 1, a, &ts);
    }
    return ts;
}

/* Σ p and the bad entries of a target row, nothing else: validation of a target that is
 * transformed before use (label smoothing). */
DC_TARGET DC_ENTRY void DC_FN(dc_target_check)(const DC_T *t, ptrdiff_t n, int is_log,
                                          double *psum, ptrdiff_t *nbad)
{
    const dc_target_sums ts = DC_FN(dc_target_sums_row)(t, n, is_log, 0);
    *psum = ts.psum;
    *nbad = ts.nbad;
}

/* H(p) = -Σ p_i log p_i (0·log 0 = 0) for probabilities, or -Σ exp(l_i)·l_i for
 * log-probabilities l; *psum and *nbad as in dc_soft_result. */
DC_TARGET DC_ENTRY double DC_FN(dc_entropy_target)(const DC_T *t, ptrdiff_t n, int is_log,
                                              double *psum, ptrdiff_t *nbad)
{
    const dc_target_sums ts = DC_FN(dc_target_sums_row)(t, n, is_log, 1);
    *psum = ts.psum;
    *nbad = ts.nbad;
    return -ts.hsum;
}

/* ----------------------------------------- short rows against probabilities, in lanes */

#ifdef DC_HAVE_VEC
/* Cross-entropy against probability targets for rows first .. first + count - 1, one row
 * per lane, as dc_soft_target_row computes it with is_log = 0 and want_h = 0 (one block:
 * the max is final before the terms are summed):
 *     ce = Σ a_c (M - x_c) + (Σ a) log S,   a = w·p,
 * a term with a = 0 is 0 (also at x = -inf), a > 0 at x = -inf gives +inf; psum, nbad and
 * asum for validation and the mean; max and sum of the logits' row. w: NULL or n class
 * weights. The target rows are read through rt (no mask for probabilities). */
DC_TARGET DC_ENTRY void DC_FN(dc_soft_probs_rows)(const dc_rows *rx, const dc_rows *rt,
                                                      const DC_T *w, ptrdiff_t first,
                                                      ptrdiff_t count, dc_soft_result *res)
{
    const DC_V zero = {0}, one = zero + 1, inf = zero + (DC_T)INFINITY, ninf = zero - (DC_T)INFINITY;
    const ptrdiff_t n = rx->n;
    DC_V col[DC_LANES_MAX_N], tcol[DC_LANES_MAX_N];
    /* initialised only so that compilers which cannot follow `lanes` do not warn */
    dc_lse_state st[DC_VLEN] = {{0.0, 0.0, 0.0, 0.0, 0}};
    double log_sum[DC_VLEN] = {0.0};
    for (ptrdiff_t g = 0; g < count; g += DC_VLEN) {
        const ptrdiff_t lanes = count - g < DC_VLEN ? count - g : DC_VLEN;
        DC_V m, at_max, rest;
        DC_FN(dc_rows_columns)(rx, first + g, lanes, col);
        DC_FN(dc_rows_columns)(rt, first + g, lanes, tcol);
        DC_FN(dc_columns_lse)(col, n, &m, &at_max, &rest);
        DC_FN(dc_lanes_states)(m, at_max, rest, lanes, st, log_sum);
        DC_V sh = zero, ps = zero, as = zero, bad = zero;
        for (ptrdiff_t c = 0; c < n; c++) {
            const DC_V v = col[c], pv = tcol[c];
            DC_V a = pv;
            if (w != NULL) a = w[c] * pv;
            sh += DC_VSEL(a != zero, DC_VSEL(v == ninf, inf, a * (m - v)), zero);
            ps += pv;
            as += a;
            bad += DC_VSEL(pv >= zero, zero, one);
        }
        for (ptrdiff_t j = 0; j < lanes; j++) {
            dc_soft_result *r = res + g + j;
            r->max = st[j].max;
            r->sum = dc_lse_sum(&st[j]);
            r->psum = (double)ps[j];
            r->asum = (double)as[j];
            r->nbad = (ptrdiff_t)bad[j];
            r->ce = dc_lse_ok(&st[j]) ? (double)sh[j] + r->asum * log_sum[j] : NAN;
            r->h = r->kl = NAN;
            r->tmax = 0.0;
            r->tsum = 1.0;
        }
    }
}
#else
DC_TARGET DC_ENTRY void DC_FN(dc_soft_probs_rows)(const dc_rows *rx, const dc_rows *rt,
                                                      const DC_T *w, ptrdiff_t first,
                                                      ptrdiff_t count, dc_soft_result *res)
{
    DC_T xb[DC_LANES_MAX_N], tb[DC_LANES_MAX_N];
    for (ptrdiff_t i = 0; i < count; i++)
        DC_FN(dc_soft_target_row)(DC_CAT(dc_row, DC_SFX)(rx, first + i, -(DC_T)INFINITY, xb),
                                  DC_CAT(dc_row, DC_SFX)(rt, first + i, -(DC_T)INFINITY, tb),
                                  w, rx->n, 0, 0, res + i);
}
#endif

/* H(p, q) for one row; a row of at most DC_LANES_MAX_N values takes the steps of its lane in
 * dc_soft_probs_rows, so it gives the bits the Python API gives it in a batch. */
DC_TARGET DC_ENTRY double DC_FN(dc_ce_probs)(const DC_T *x, const DC_T *p, ptrdiff_t n)
{
    dc_soft_result r;
    if (n > 0 && n <= DC_LANES_MAX_N) {
        const dc_rows rx = {(const char *)x, n * (ptrdiff_t)sizeof(DC_T),
                            (ptrdiff_t)sizeof(DC_T), n, NULL, 0, 0, 1.0};
        const dc_rows rt = {(const char *)p, n * (ptrdiff_t)sizeof(DC_T),
                            (ptrdiff_t)sizeof(DC_T), n, NULL, 0, 0, 1.0};
        DC_FN(dc_soft_probs_rows)(&rx, &rt, NULL, 0, 1, &r);
        return r.ce;
    }
    DC_FN(dc_soft_probs)(x, p, NULL, n, 0, &r);
    return r.ce;
}
