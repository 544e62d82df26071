/* divcore/losses_t.h: type-generic body of losses.h (DC_T, DC_SFX defined by the includer;
 * DC_ISA_NAME and DC_TARGET name and target one instruction set, see dispatch.h). */

#define DC_FN(name) DC_ISA_NAME(name, DC_SFX)
#define DC_EXP DC_CAT(dc_exp, DC_SFX)
#define DC_LOG DC_CAT(dc_log, DC_SFX)
#define DC_MIN_LEN(a, b) ((a) < (b) ? (a) : (b))
#ifdef DC_HAVE_VEC
/* Double vectors, for the outputs computed in double from DC_T values (see simd_t.h):
 * the loops below take 2·DC_VDLEN values at a time (one float vector), through
 * DC_VLOAD2 / DC_VSTORE2, and leave the rest to the scalar loop. */
#define DC_VD DC_ISA_NAME(dc_v, f64)
#define DC_VDI DC_ISA_NAME(dc_vi, f64)
#define DC_VDLEN ((ptrdiff_t)(sizeof(DC_VD) / sizeof(double)))
#define DC_VDSEL(mask, a, b) ((DC_VD)(((mask) & (DC_VDI)(a)) | (~(mask) & (DC_VDI)(b))))
#define DC_VDEXP DC_ISA_NAME(dc_vexp, f64)
#define DC_VLOAD2 DC_ISA_NAME(dc_vload2, DC_SFX)
#define DC_VSTORE2 DC_ISA_NAME(dc_vstore2, DC_SFX)
#endif

/* ---------------------------------------------------------------- log-sum-exp, softmax */

/* log Σ exp(x_i): NaN for a NaN or +inf value, -inf for an empty or all -inf row. */
DC_TARGET static inline double DC_FN(dc_logsumexp)(const DC_T *x, ptrdiff_t n)
{
    double log_sum;
    const dc_lse_state st = DC_FN(dc_lse_scan_log_sum)(x, n, &log_sum);
    return dc_lse_value_of_log_sum(&st, log_sum);
}

#ifdef DC_HAVE_VEC
/* dc_log_softmax_row's outputs over the row's whole vector pairs, the same formulas in
 * double lanes: c is log S, or 1/S with `exponentiate`. Returns how many it wrote. */
DC_TARGET static inline ptrdiff_t DC_FN(dc_log_softmax_vec)(const DC_T *x, ptrdiff_t n,
                                                           int exponentiate, double m,
                                                           double c, DC_T *out)
{
    const ptrdiff_t step = 2 * DC_VDLEN, whole = n - n % step;
    DC_VD lo, hi;
    if (exponentiate) {
        for (ptrdiff_t i = 0; i < whole; i += step) {
            DC_VLOAD2(x + i, &lo, &hi);
            DC_VSTORE2(out + i, DC_VDEXP(lo - m) * c, DC_VDEXP(hi - m) * c);
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
DC_TARGET static inline int DC_FN(dc_log_softmax_of_state)(const DC_T *x, ptrdiff_t n,
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
DC_TARGET static inline int DC_FN(dc_log_softmax_row)(const DC_T *x, ptrdiff_t n, int exponentiate,
                                            DC_T *out)
{
    double log_sum;
    const dc_lse_state st = DC_FN(dc_lse_scan_log_sum)(x, n, &log_sum);
    return DC_FN(dc_log_softmax_of_state)(x, n, &st, log_sum, exponentiate, out);
}

DC_TARGET static inline int DC_FN(dc_log_softmax)(const DC_T *x, ptrdiff_t n, DC_T *out)
{
    return DC_FN(dc_log_softmax_row)(x, n, 0, out);
}

DC_TARGET static inline int DC_FN(dc_softmax)(const DC_T *x, ptrdiff_t n, DC_T *out)
{
    return DC_FN(dc_log_softmax_row)(x, n, 1, out);
}

/* ------------------------------------------------------------- cross-entropy, a label */

/* -log q_y for a label in [0, n): see dc_ce_label_of_log_sum. */
DC_TARGET static inline double DC_FN(dc_ce_label)(const DC_T *x, ptrdiff_t n, ptrdiff_t label)
{
    double log_sum;
    const dc_lse_state st = DC_FN(dc_lse_scan_log_sum)(x, n, &log_sum);
    return dc_ce_label_of_log_sum(&st, log_sum, n > 0 ? (double)x[label] : 0.0);
}

/* ------------------------------------------------------------------ soft-target rows */

/* Target side of a block: p from probabilities or log-probabilities, a = w·p into a_out,
 * the target's entropy sum Σ a·log p (when want_h) and, with want_sums, the sums for
 * validation and the mass Σa. */
DC_TARGET static inline void DC_FN(dc_block_target)(const DC_T *t, const DC_T *w, ptrdiff_t n,
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
DC_TARGET static inline double DC_FN(dc_block_soft)(const DC_T *x, const DC_T *a, const DC_T *t,
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
/* dc_block_target without the entropy sum, over a block's whole vectors: Σp, Σa and the
 * bad entries into *s; returns how many values it took. */
DC_TARGET static inline ptrdiff_t DC_FN(dc_block_target_vec)(const DC_T *t, const DC_T *w,
                                                            ptrdiff_t n, int is_log,
                                                            dc_target_sums *s)
{
    const DC_V zero = {0}, one = zero + 1;
    DC_V ps = zero, as = zero, bad = zero;
    const ptrdiff_t whole = n - n % DC_VLEN;
    for (ptrdiff_t i = 0; i < whole; i += DC_VLEN) {
        const DC_V tv = *(const DC_V *)(t + i);
        DC_V p = tv, a;
        if (is_log) {
            p = DC_VEXP(tv);
            bad += DC_VSEL(tv != tv, one, zero);
        } else {
            bad += DC_VSEL(p >= zero, zero, one);
        }
        a = p;
        if (w != NULL) a = *(const DC_V *)(w + i) * p;
        ps += p;
        as += a;
    }
    for (int j = 0; j < DC_VLEN; j++) {
        s->psum += ps[j];
        s->asum += as[j];
        s->nbad += (ptrdiff_t)bad[j];
    }
    return whole;
}

/* dc_block_soft over a block's whole vectors, with a = w·p recomputed from the target;
 * returns Σ a·(m - x) over them and their part of S into st; *taken: how many values. */
DC_TARGET static inline double DC_FN(dc_block_soft_vec)(const DC_T *x, const DC_T *t,
                                                       const DC_T *w, int is_log, ptrdiff_t n,
                                                       DC_T m, dc_lse_state *st,
                                                       ptrdiff_t *taken)
{
    const DC_V zero = {0}, one = zero + 1, inf = zero + (DC_T)INFINITY;
    const DC_V ninf = zero - (DC_T)INFINITY;
    DC_V sh = zero, r = zero, k = zero;
    const ptrdiff_t whole = n - n % DC_VLEN;
    for (ptrdiff_t i = 0; i < whole; i += DC_VLEN) {
        const DC_V v = *(const DC_V *)(x + i), tv = *(const DC_V *)(t + i);
        DC_V a = tv;
        DC_VI has;
        if (is_log) {
            a = DC_VEXP(tv);
            has = tv > ninf;
        } else {
            has = a != zero;
        }
        if (w != NULL) {
            const DC_V wv = *(const DC_V *)(w + i);
            a = wv * a;
            if (is_log) has &= wv != zero;
            else has = a != zero;
        }
        const DC_VI top = v == m;
        sh += DC_VSEL(has, DC_VSEL(v == ninf, inf, a * (m - v)), zero);
        k += DC_VSEL(top, one, zero);
        r += DC_VSEL(top, zero, DC_VEXP_NONPOS(v - m));
    }
    double shift = 0.0;
    for (int j = 0; j < DC_VLEN; j++) {
        shift += sh[j];
        st->at_max += k[j];
        dc_sum_add(&st->rest, &st->rest_c, (double)r[j]);
    }
    *taken = whole;
    return shift;
}
#endif

/* Cross-entropy (and, with want_h, entropy and KL) of a probability or log-probability
 * target against softmax(x), in one pass over both rows, with optional class weights w:
 *     ce = Σ a_i (lse - x_i) = A + (Σ a) log S,   A = Σ a_i (M - x_i),  a = w·p
 * A is kept online: when the max grows from M to M', every term counted so far grows by
 * (M' - M), so A += (M' - M)·Σa_seen. Terms are ≥ 0 for w ≥ 0: no cancellation.
 *     h = -Σ a_i log p_i,   kl = ce - h (clamped at 0).
 * The target sums (psum, nbad) cover the whole row even when x holds a NaN. */
DC_TARGET static inline void DC_FN(dc_soft_target_row)(const DC_T *x, const DC_T *t, const DC_T *w,
                                             ptrdiff_t n, int is_log, int want_h,
                                             dc_soft_result *res)
{
    DC_T a[DC_BLOCK];
    dc_lse_state st;
    dc_lse_init(&st);
    dc_target_sums ts = {0.0, 0.0, 0.0, 0};
    double shift = 0.0, a_seen = 0.0;
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK) {
        const ptrdiff_t len = DC_MIN_LEN(DC_BLOCK, n - start);
        const DC_T *xb = x + start;
        const double a_before = ts.asum;
        const DC_T *tb = t + start, *wb = w != NULL ? w + start : NULL;
        ptrdiff_t vec_taken = 0;
#ifdef DC_HAVE_VEC
        /* Σp, Σa and the bad count always come from the vector loop, with or without the
         * entropy, so the mass (and with it the gradient) is the same number for CE and
         * KL. The entropy (a log per entry) is a scalar sum. */
        vec_taken = DC_FN(dc_block_target_vec)(tb, wb, len, is_log, &ts);
        if (want_h && vec_taken > 0)
            DC_FN(dc_block_target)(tb, wb, vec_taken, is_log, 1, 0, a, &ts);
#endif
        DC_FN(dc_block_target)(tb + vec_taken, wb != NULL ? wb + vec_taken : NULL,
                               len - vec_taken, is_log, want_h, 1, a + vec_taken, &ts);
        if (st.nan) continue;
        DC_T b;
        if (DC_FN(dc_block_max)(xb, len, &b)) { st.nan = 1; continue; }
        if (b > st.max) {
            /* With no finite max yet, the terms seen so far sit on -inf logits: +inf if
             * any has mass (0·inf is not formed when a_seen == 0). */
            if (a_seen != 0.0) shift += ((double)b - st.max) * a_seen;
            dc_lse_raise_max(&st, (double)b);
        }
        a_seen += ts.asum - a_before;
        if (st.max > -INFINITY) {
            ptrdiff_t done = 0;
#ifdef DC_HAVE_VEC
            if (vec_taken > 0)
                shift += DC_FN(dc_block_soft_vec)(xb, tb, wb, is_log, vec_taken,
                                                  (DC_T)st.max, &st, &done);
#endif
            shift += DC_FN(dc_block_soft)(xb + done, a + done, tb + done,
                                          wb != NULL ? wb + done : NULL, is_log, len - done,
                                          (DC_T)st.max, &st);
        }
    }
    res->psum = ts.psum;
    res->nbad = ts.nbad;
    res->asum = ts.asum;
    res->max = st.max;
    res->sum = dc_lse_sum(&st);
    if (!dc_lse_ok(&st)) {
        res->ce = res->h = res->kl = NAN;
        return;
    }
    res->ce = shift + ts.asum * dc_lse_log_sum(&st);
    if (want_h) {
        res->h = -ts.hsum;
        /* Only a true KL is ≥ 0: with class weights, CE_w - H_w may be negative. */
        res->kl = w != NULL ? res->ce - res->h : dc_clamp_nonnegative(res->ce - res->h);
    }
}

DC_TARGET static inline void DC_FN(dc_soft_probs)(const DC_T *x, const DC_T *p, const DC_T *w,
                                        ptrdiff_t n, int want_h, dc_soft_result *res)
{
    DC_FN(dc_soft_target_row)(x, p, w, n, 0, want_h, res);
}

DC_TARGET static inline void DC_FN(dc_soft_log_probs)(const DC_T *x, const DC_T *lp, const DC_T *w,
                                            ptrdiff_t n, int want_h, dc_soft_result *res)
{
    DC_FN(dc_soft_target_row)(x, lp, w, n, 1, want_h, res);
}

#ifdef DC_HAVE_VEC
/* The terms of dc_soft_logits' second pass over the whole vectors of a block (the same
 * formulas, in lanes); adds to sums[] = {ce, h, kl, Σa} and returns how many values it
 * took (the rest is the scalar loop's). */
DC_TARGET static inline ptrdiff_t DC_FN(dc_logits_terms_vec)(
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
        const DC_VI lost = dx == ninf;
        a_sum += a;
        c += DC_VSEL(has, DC_VSEL(lost, inf, a * -dx), zero);
        h += DC_VSEL(has, a * (dt - log_st), zero);
        k += DC_VSEL(has, DC_VSEL(lost, inf, a * (dt - dx)), zero);
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

/* Target given as logits t: p = softmax(t). Two passes: the log-sum-exp of both rows,
 * then with both maxima final,
 *     log p_i - log q_i = (t_i - M_t) - (x_i - M_x) + (log S_x - log S_t)
 *     ce = Σ a_i (M_x - x_i) + Σa·log S_x,     h = -Σ a_i log p_i,
 *     kl = Σ a_i ((t_i - M_t) - (x_i - M_x)) + Σa·(log S_x - log S_t)
 * so that kl is exactly 0 when t == x, and every term is invariant to adding a constant
 * to either row. A target without a distribution gives NaN. */
DC_TARGET static inline void DC_FN(dc_soft_logits)(const DC_T *x, const DC_T *t, const DC_T *w,
                                         ptrdiff_t n, dc_soft_result *res)
{
    const dc_lse_state sx = DC_FN(dc_lse_scan)(x, n);
    const dc_lse_state st = DC_FN(dc_lse_scan)(t, n);
    res->psum = 1.0;
    res->nbad = 0;
    res->asum = NAN;
    res->max = sx.max;
    res->sum = dc_lse_sum(&sx);
    res->tmax = st.max;
    res->tsum = dc_lse_sum(&st);
    if (!dc_lse_ok(&sx) || !dc_lse_ok(&st)) {
        res->ce = res->h = res->kl = NAN;
        return;
    }
    const DC_T mx = (DC_T)sx.max, mt = (DC_T)st.max;
    const DC_T inv_st = (DC_T)(1.0 / dc_lse_sum(&st));
    const DC_T log_st = (DC_T)dc_lse_log_sum(&st);
    double sums[4] = {0.0, 0.0, 0.0, 0.0}; /* ce, h, kl, Σa */
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
            const int lost = dx == -INFINITY;
            a_[j] += a;
            c_[j] += has ? (lost ? (DC_T)INFINITY : a * -dx) : (DC_T)0;
            h_[j] += has ? a * (dt - log_st) : (DC_T)0;
            k_[j] += has ? (lost ? (DC_T)INFINITY : a * (dt - dx)) : (DC_T)0;
        }
        for (int j = 0; j < DC_LANES; j++) {
            sums[0] += c_[j];
            sums[1] += h_[j];
            sums[2] += k_[j];
            sums[3] += a_[j];
        }
    }
    const double ce = sums[0], hs = sums[1], asum = sums[3];
    double kl = sums[2];
    const double log_sx = dc_lse_log_sum(&sx);
    res->asum = asum;
    res->ce = ce + asum * log_sx;
    res->h = -hs;
    kl += asum * (log_sx - dc_lse_log_sum(&st));
    res->kl = w != NULL ? kl : dc_clamp_nonnegative(kl); /* weighted: CE_w - H_w, any sign */
}

/* Reverse KL(q ‖ p) = Σ q_i (log q_i - log p_i) for a probability or log-probability
 * target p. Terms with q_i == 0 are 0; q_i > 0 where p_i == 0 gives +inf. */
DC_TARGET static inline void DC_FN(dc_kl_reverse_target)(const DC_T *x, const DC_T *t, ptrdiff_t n,
                                               int is_log, dc_soft_result *res)
{
    const dc_lse_state sx = DC_FN(dc_lse_scan)(x, n);
    const int ok = dc_lse_ok(&sx);
    const DC_T m = (DC_T)sx.max;
    const DC_T inv_s = ok ? (DC_T)(1.0 / dc_lse_sum(&sx)) : (DC_T)0;
    const DC_T log_s = ok ? (DC_T)dc_lse_log_sum(&sx) : (DC_T)0;
    double kl = 0.0, psum = 0.0;
    ptrdiff_t nbad = 0;
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK) {
        const ptrdiff_t len = DC_MIN_LEN(DC_BLOCK, n - start);
        DC_T k_[DC_LANES], p_[DC_LANES];
        int b_[DC_LANES];
        for (int j = 0; j < DC_LANES; j++) { k_[j] = 0; p_[j] = 0; b_[j] = 0; }
        for (ptrdiff_t i = start; i < start + len; i++) {
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
        for (int j = 0; j < DC_LANES; j++) { kl += k_[j]; psum += p_[j]; nbad += b_[j]; }
    }
    res->psum = psum;
    res->nbad = nbad;
    res->asum = 1.0;
    res->max = sx.max;
    res->sum = dc_lse_sum(&sx);
    res->ce = res->h = NAN;
    res->kl = ok ? dc_clamp_nonnegative(kl) : NAN;
}

/* The sums of a whole target row (see dc_block_target), a block at a time. */
DC_TARGET static inline dc_target_sums DC_FN(dc_target_sums_row)(const DC_T *t, ptrdiff_t n, int is_log,
                                                       int want_h)
{
    DC_T a[DC_BLOCK];
    dc_target_sums ts = {0.0, 0.0, 0.0, 0};
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK)
        DC_FN(dc_block_target)(t + start, NULL, DC_MIN_LEN(DC_BLOCK, n - start), is_log,
                               want_h, 1, a, &ts);
    return ts;
}

/* Σ p and the bad entries of a target row, nothing else: validation of a target that is
 * transformed before use (label smoothing). */
DC_TARGET static inline void DC_FN(dc_target_check)(const DC_T *t, ptrdiff_t n, int is_log,
                                          double *psum, ptrdiff_t *nbad)
{
    const dc_target_sums ts = DC_FN(dc_target_sums_row)(t, n, is_log, 0);
    *psum = ts.psum;
    *nbad = ts.nbad;
}

/* ------------------------------------------------------------------------- entropy */

#ifdef DC_HAVE_VEC
/* dc_entropy_logits' terms over a block's whole groups of DC_LANES values, added to u_:
 * lane j of accumulator a is u_[a·DC_VDLEN + j], which takes the same values (those at
 * i % DC_LANES == a·DC_VDLEN + j, i counted from the block's start) in the same order as
 * in the scalar loop, so the sum is the same at every instruction set (DC_LANES is a
 * multiple of 2·DC_VDLEN). Returns how many values it took. */
DC_TARGET static inline ptrdiff_t DC_FN(dc_entropy_terms_vec)(const DC_T *x, ptrdiff_t n,
                                                             double m, double *u_)
{
    enum { NACC = DC_LANES / (sizeof(DC_VD) / sizeof(double)) };
    const DC_VD zero = {0};
    DC_VD u[NACC];
    for (int a = 0; a < NACC; a++) u[a] = zero;
    const ptrdiff_t whole = n - n % DC_LANES;
    for (ptrdiff_t i = 0; i < whole; i += DC_LANES) {
        for (int a = 0; a < NACC; a += 2) {
            DC_VD d0, d1;
            DC_VLOAD2(x + i + a * DC_VDLEN, &d0, &d1);
            d0 = d0 - m;
            d1 = d1 - m;
            const DC_VD e0 = DC_VDEXP(d0), e1 = DC_VDEXP(d1);
            u[a] += DC_VDSEL(e0 != zero, e0 * -d0, zero);
            u[a + 1] += DC_VDSEL(e1 != zero, e1 * -d1, zero);
        }
    }
    for (int a = 0; a < NACC; a++)
        for (int j = 0; j < DC_VDLEN; j++) u_[a * DC_VDLEN + j] += u[a][j];
    return whole;
}
#endif

/* H(softmax(x)) = Σ q_i (lse - x_i) = log S + Σ e_i (M - x_i) / S,  e_i = exp(x_i - M):
 * non-negative terms only. */
DC_TARGET static inline double DC_FN(dc_entropy_logits)(const DC_T *x, ptrdiff_t n)
{
    const dc_lse_state st = DC_FN(dc_lse_scan)(x, n);
    if (!dc_lse_ok(&st)) return NAN;
    /* In double: for a peaked row the entropy is made of tiny e_i·(M - x_i) terms, whose
     * float32 exp would be subnormal. */
    const double m = st.max;
    double u = 0.0;
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK) {
        const ptrdiff_t len = DC_MIN_LEN(DC_BLOCK, n - start);
        double u_[DC_LANES];
        for (int j = 0; j < DC_LANES; j++) u_[j] = 0;
        ptrdiff_t i = 0;
#ifdef DC_HAVE_VEC
        i = DC_FN(dc_entropy_terms_vec)(x + start, len, m, u_);
#endif
        for (; i < len; i++) {
            const double d = (double)x[start + i] - m;
            const double e = dc_exp_f64(d);
            u_[i % DC_LANES] += e != 0 ? e * -d : 0.0;
        }
        for (int j = 0; j < DC_LANES; j++) u += u_[j];
    }
    return dc_lse_log_sum(&st) + u / dc_lse_sum(&st);
}

/* H(p) = -Σ p_i log p_i (0·log 0 = 0) for probabilities, or -Σ exp(l_i)·l_i for
 * log-probabilities l; *psum and *nbad as in dc_soft_result. */
DC_TARGET static inline double DC_FN(dc_entropy_target)(const DC_T *t, ptrdiff_t n, int is_log,
                                              double *psum, ptrdiff_t *nbad)
{
    const dc_target_sums ts = DC_FN(dc_target_sums_row)(t, n, is_log, 1);
    *psum = ts.psum;
    *nbad = ts.nbad;
    return -ts.hsum;
}

/* ------------------------------------------------------------------ Jensen-Shannon */

/* log p_i and p_i of a target entry (a logits target needs its row's M_t, S_t). */
DC_TARGET static inline double DC_FN(dc_target_log)(DC_T t, int kind, double tmax, double log_tsum)
{
    if (kind == DC_TARGET_PROBS) return log((double)t);
    if (kind == DC_TARGET_LOG_PROBS) return (double)t;
    return ((double)t - tmax) - log_tsum;
}

/* Generalised Jensen-Shannon divergence with weight β on the target p:
 *     JS_β = β KL(p ‖ m) + (1-β) KL(q ‖ m),   m = β p + (1-β) q.
 * In log space, with d = log q - log p, the two log-ratios are
 *     log p - log m = -log1p((1-β)·expm1(d)),   log q - log m = -log1p(β·expm1(-d))
 * which are exact for near-identical p and q (where m's log would cancel) and right at
 * p = 0 (d = +inf: -log(1-β)) or q = 0 (d = -inf: -log β). Computed in double; clamped
 * to [0, h(β)] so that rounding never gives a negative value (or a NaN) for p ≈ q. */
DC_TARGET static inline double DC_FN(dc_js_row)(const DC_T *x, const DC_T *t, ptrdiff_t n, int kind,
                                      double beta, double *psum, ptrdiff_t *nbad)
{
    const dc_lse_state sx = DC_FN(dc_lse_scan)(x, n);
    dc_lse_state st;
    dc_lse_init(&st);
    if (kind == DC_TARGET_LOGITS) st = DC_FN(dc_lse_scan)(t, n);
    const int ok = dc_lse_ok(&sx) && (kind != DC_TARGET_LOGITS || dc_lse_ok(&st));
    const double log_sx = ok ? dc_lse_log_sum(&sx) : 0.0;
    const double log_st = ok && kind == DC_TARGET_LOGITS ? dc_lse_log_sum(&st) : 0.0;
    double js = 0.0, ps = 0.0;
    ptrdiff_t bad = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        const double lp = DC_FN(dc_target_log)(t[i], kind, st.max, log_st);
        const double p = kind == DC_TARGET_PROBS ? (double)t[i] : dc_exp_f64(lp);
        ps += p;
        bad += kind == DC_TARGET_LOG_PROBS ? (t[i] != t[i]) : !(p >= 0.0);
        if (!ok) continue;
        const double lq = ((double)x[i] - sx.max) - log_sx;
        const double q = dc_exp_f64(lq);
        if (p == 0.0 && q == 0.0) continue;
        const double d = lq - lp;
        const double tp = p != 0.0 ? -p * dc_log1p_c_expm1(1.0 - beta, d) : 0.0;
        const double tq = q != 0.0 ? -q * dc_log1p_c_expm1(beta, -d) : 0.0;
        js += beta * tp + (1.0 - beta) * tq;
    }
    *psum = kind == DC_TARGET_LOGITS ? 1.0 : ps;
    *nbad = kind == DC_TARGET_LOGITS ? 0 : bad;
    if (!ok) return NAN;
    if (beta == 0.0 || beta == 1.0) return 0.0;
    const double top = dc_binary_entropy(beta);
    js = dc_clamp_nonnegative(js);
    return js > top ? top : js;
}

/* ------------------------------------------------------------------------ gradients */

#ifdef DC_HAVE_VEC
/* The three gradient loops below over the row's whole vector pairs, the same formulas in
 * double lanes; each returns how many values it wrote (the rest is the scalar loop's). */

/* dc_soft_grad's g = scale·(mass·q - a). */
DC_TARGET static inline ptrdiff_t DC_FN(dc_soft_grad_vec)(const DC_T *x, const DC_T *t,
                                                         const DC_T *w, ptrdiff_t n, int kind,
                                                         double m, double inv_s, double tmax,
                                                         double log_ts, double mass,
                                                         double scale, DC_T *g)
{
    const ptrdiff_t step = 2 * DC_VDLEN, whole = n - n % step;
    for (ptrdiff_t i = 0; i < whole; i += step) {
        DC_VD x0, x1, p0, p1;
        DC_VLOAD2(x + i, &x0, &x1);
        DC_VLOAD2(t + i, &p0, &p1);
        const DC_VD q0 = DC_VDEXP(x0 - m) * inv_s, q1 = DC_VDEXP(x1 - m) * inv_s;
        if (kind == DC_TARGET_LOG_PROBS) {
            p0 = DC_VDEXP(p0);
            p1 = DC_VDEXP(p1);
        } else if (kind == DC_TARGET_LOGITS) {
            p0 = DC_VDEXP((p0 - tmax) - log_ts);
            p1 = DC_VDEXP((p1 - tmax) - log_ts);
        }
        if (w != NULL) {
            DC_VD w0, w1;
            DC_VLOAD2(w + i, &w0, &w1);
            p0 = w0 * p0;
            p1 = w1 * p1;
        }
        DC_VSTORE2(g + i, scale * (mass * q0 - p0), scale * (mass * q1 - p1));
    }
    return whole;
}

/* dc_ce_label_grad's g = scale·q (the label's entry is the caller's). */
DC_TARGET static inline ptrdiff_t DC_FN(dc_ce_label_grad_vec)(const DC_T *x, ptrdiff_t n,
                                                             double m, double inv_s,
                                                             double scale, DC_T *g)
{
    const ptrdiff_t step = 2 * DC_VDLEN, whole = n - n % step;
    for (ptrdiff_t i = 0; i < whole; i += step) {
        DC_VD x0, x1;
        DC_VLOAD2(x + i, &x0, &x1);
        DC_VSTORE2(g + i, scale * (DC_VDEXP(x0 - m) * inv_s),
                   scale * (DC_VDEXP(x1 - m) * inv_s));
    }
    return whole;
}

/* dc_kl_reverse_grad's g = scale·q·((log q - log p) - kl), 0 where q = 0. The log of a
 * probability target is the C library's, a lane at a time. */
DC_TARGET static inline ptrdiff_t DC_FN(dc_kl_reverse_grad_vec)(const DC_T *x, const DC_T *t,
                                                               ptrdiff_t n, int kind, double m,
                                                               double log_s, double tmax,
                                                               double log_ts, double kl,
                                                               double scale, DC_T *g)
{
    const DC_VD zero = {0};
    const ptrdiff_t step = 2 * DC_VDLEN, whole = n - n % step;
    for (ptrdiff_t i = 0; i < whole; i += step) {
        DC_VD x0, x1, lp0, lp1;
        DC_VLOAD2(x + i, &x0, &x1);
        DC_VLOAD2(t + i, &lp0, &lp1);
        if (kind == DC_TARGET_PROBS) {
            for (int j = 0; j < DC_VDLEN; j++) {
                lp0[j] = log(lp0[j]);
                lp1[j] = log(lp1[j]);
            }
        } else if (kind == DC_TARGET_LOGITS) {
            lp0 = (lp0 - tmax) - log_ts;
            lp1 = (lp1 - tmax) - log_ts;
        }
        const DC_VD lq0 = (x0 - m) - log_s, lq1 = (x1 - m) - log_s;
        const DC_VD q0 = DC_VDEXP(lq0), q1 = DC_VDEXP(lq1);
        DC_VSTORE2(g + i, DC_VDSEL(q0 != zero, scale * q0 * ((lq0 - lp0) - kl), zero),
                   DC_VDSEL(q1 != zero, scale * q1 * ((lq1 - lp1) - kl), zero));
    }
    return whole;
}
#endif

/* ∂/∂x of the cross-entropy Σ a_c (lse - x_c), a = w·p, written to g:
 *     g_c = scale · (A·q_c - a_c),   A = Σ a,   q = softmax(x) = exp(x - M) / S
 * The same for KL(p ‖ q), which differs from it by the constant H(p). M, S and A come
 * from the loss kernel's pass (dc_soft_result). Classes with q_c = 0 and a_c = 0 (masked,
 * -inf) get exactly 0. A row without a distribution gets NaN. */
DC_TARGET static inline void DC_FN(dc_soft_grad)(const DC_T *x, const DC_T *t, const DC_T *w,
                                       ptrdiff_t n, int kind, const dc_soft_result *r,
                                       double scale, DC_T *g)
{
    if (!(r->max > -INFINITY && r->max < INFINITY) || r->asum != r->asum) {
        for (ptrdiff_t i = 0; i < n; i++) g[i] = (DC_T)NAN;
        return;
    }
    const double inv_s = 1.0 / r->sum, log_ts = log(r->tsum);
    const double mass = r->asum;
    ptrdiff_t i = 0;
#ifdef DC_HAVE_VEC
    i = DC_FN(dc_soft_grad_vec)(x, t, w, n, kind, r->max, inv_s, r->tmax, log_ts, mass, scale,
                                g);
#endif
    for (; i < n; i++) {
        const double q = dc_exp_f64((double)x[i] - r->max) * inv_s;
        double p = kind == DC_TARGET_PROBS ? (double)t[i]
                   : dc_exp_f64(DC_FN(dc_target_log)(t[i], kind, r->tmax, log_ts));
        const double a = w != NULL ? (double)w[i] * p : p;
        g[i] = (DC_T)(scale * (mass * q - a));
    }
}

/* Cross-entropy with a label and its gradient, g_c = scale·(q_c - [c == label]);
 * returns the loss lse - x_label (see dc_ce_label). */
DC_TARGET static inline double DC_FN(dc_ce_label_grad)(const DC_T *x, ptrdiff_t n, ptrdiff_t label,
                                             double scale, DC_T *g)
{
    const dc_lse_state st = DC_FN(dc_lse_scan)(x, n);
    if (!dc_lse_ok(&st)) {
        for (ptrdiff_t i = 0; i < n; i++) g[i] = (DC_T)NAN;
        return NAN;
    }
    const double inv_s = 1.0 / dc_lse_sum(&st);
    ptrdiff_t i = 0;
#ifdef DC_HAVE_VEC
    i = DC_FN(dc_ce_label_grad_vec)(x, n, st.max, inv_s, scale, g);
#endif
    for (; i < n; i++)
        g[i] = (DC_T)(scale * (dc_exp_f64((double)x[i] - st.max) * inv_s));
    /* q_y - 1 = expm1(-loss): exact for a confident prediction, where q_y - 1 cancels. */
    const double loss = (st.max - (double)x[label]) + dc_lse_log_sum(&st);
    g[label] = (DC_T)(scale * expm1(-loss));
    return loss;
}

/* ∂/∂x of the reverse KL(q ‖ p) = Σ q_c (log q_c - log p_c):
 *     g_c = scale · q_c · ((log q_c - log p_c) - KL)
 * (0 where q_c = 0). `kl` is the row's value from dc_kl_reverse_target / dc_soft_logits. */
DC_TARGET static inline void DC_FN(dc_kl_reverse_grad)(const DC_T *x, const DC_T *t, ptrdiff_t n,
                                             int kind, const dc_soft_result *r, double kl,
                                             double scale, DC_T *g)
{
    if (!(r->max > -INFINITY && r->max < INFINITY) || kl != kl) {
        for (ptrdiff_t i = 0; i < n; i++) g[i] = (DC_T)NAN;
        return;
    }
    const double log_s = log(r->sum), log_ts = log(r->tsum);
    ptrdiff_t i = 0;
#ifdef DC_HAVE_VEC
    i = DC_FN(dc_kl_reverse_grad_vec)(x, t, n, kind, r->max, log_s, r->tmax, log_ts, kl, scale,
                                      g);
#endif
    for (; i < n; i++) {
        const double lq = ((double)x[i] - r->max) - log_s;
        const double q = dc_exp_f64(lq);
        const double lp = DC_FN(dc_target_log)(t[i], kind, r->tmax, log_ts);
        g[i] = q != 0.0 ? (DC_T)(scale * q * ((lq - lp) - kl)) : (DC_T)0;
    }
}

/* ------------------------------------------ the flat C-level API (one value per row) */

/* H(p, softmax(x)) for a probability row p (no weights, no validation). */
DC_TARGET static inline void DC_FN(dc_soft_probs_rows)(const dc_rows *rx, const dc_rows *rt,
                                                      const DC_T *w, ptrdiff_t first,
                                                      ptrdiff_t count, dc_soft_result *res);

/* H(p, q) for one row; a row of at most DC_LANES_MAX_N values takes the steps of its lane in
 * dc_soft_probs_rows, so it gives the bits the Python API gives it in a batch. */
DC_TARGET static inline double DC_FN(dc_ce_probs)(const DC_T *x, const DC_T *p, ptrdiff_t n)
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

/* KL(softmax(t) ‖ softmax(x)). */
DC_TARGET static inline double DC_FN(dc_kl_logits)(const DC_T *t, const DC_T *x, ptrdiff_t n)
{
    dc_soft_result r;
    DC_FN(dc_soft_logits)(x, t, NULL, n, &r);
    return r.kl;
}

#ifdef DC_HAVE_VEC
#undef DC_VD
#undef DC_VDI
#undef DC_VDLEN
#undef DC_VDSEL
#undef DC_VDEXP
#undef DC_VLOAD2
#undef DC_VSTORE2
#endif
#undef DC_MIN_LEN
#undef DC_LOG
#undef DC_EXP
#ifdef DC_HAVE_VEC
/* Cross-entropy against probability targets for rows first .. first + count - 1, one row
 * per lane, as dc_soft_target_row computes it with is_log = 0 and want_h = 0 (one block:
 * the max is final before the terms are summed):
 *     ce = Σ a_c (M - x_c) + (Σ a) log S,   a = w·p,
 * a term with a = 0 is 0 (also at x = -inf), a > 0 at x = -inf gives +inf; psum, nbad and
 * asum for validation and the mean; max and sum of the logits' row. w: NULL or n class
 * weights. The target rows are read through rt (no mask for probabilities). */
DC_TARGET static inline void DC_FN(dc_soft_probs_rows)(const dc_rows *rx, const dc_rows *rt,
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
DC_TARGET static inline void DC_FN(dc_soft_probs_rows)(const dc_rows *rx, const dc_rows *rt,
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


#undef DC_FN
