/* divcore/lanes_soft_t.h: short rows, one row per vector lane, for the soft targets and
 * the entropy: probabilities and log-probabilities (CE, entropy, KL, decompose), reverse
 * KL, logits targets (CE, entropy, KL) and the entropy of logits. Type-generic body (DC_T,
 * DC_SFX, DC_ISA_NAME, DC_TARGET defined; included after lanes_math_t.h by isa_t.h and,
 * for the portable build, lanes_more.h).
 *
 * The rows of a group are transposed into columns as in lanes_t.h (dc_rows_columns), the
 * log-sum-exp state of each lane comes from dc_columns_lse / dc_lanes_states (the lane
 * log-sum-exp of every other short-row operation), and the terms are the long-row
 * kernels' (losses_t.h), term by term; only the order of the additions differs (class
 * order, one lane per row). */

#define DC_FN(name) DC_ISA_NAME(name, DC_SFX)

#ifdef DC_HAVE_VEC
#define DC_VD DC_ISA_NAME(dc_v, f64)
#define DC_VDLEN ((ptrdiff_t)(sizeof(DC_VD) / sizeof(double)))
#define DC_VDI DC_ISA_NAME(dc_vi, f64)
#define DC_VDSEL(mask, a, b) ((DC_VD)(((mask) & (DC_VDI)(a)) | (~(mask) & (DC_VDI)(b))))
/* double vectors per column: 2 for float lanes, 1 for double lanes */
#define DC_NH ((int)(DC_VLEN / DC_VDLEN))

/* A probability or log-probability target (is_log), the lanes of dc_soft_target_row
 * (losses_t.h), for rows first .. first + count - 1 of rx and rt:
 *     ce = Σ a_c (M - x_c) + (Σ a) log S,   a = w·p,
 * a term with no mass is 0 (also at x = -inf), mass at x = -inf gives +inf; with want_h
 *     h = -Σ a_c log p_c  (0 where p_c = 0),   kl = ce - h (clamped at 0 without w).
 * For probabilities the cross-entropy is dc_soft_probs_rows's, operation for operation
 * (the same value with or without want_h, and as cross_entropy gives it). psum, nbad,
 * asum, max, sum as dc_soft_target_row. */
DC_TARGET DC_ENTRY void DC_FN(dc_soft_target_rows)(const dc_rows *rx, const dc_rows *rt,
                                                       const DC_T *w, int is_log, int want_h,
                                                       ptrdiff_t first, ptrdiff_t count,
                                                       dc_soft_result *res)
{
    const DC_V zero = {0}, one = zero + 1, inf = zero + (DC_T)INFINITY;
    const DC_V ninf = zero - (DC_T)INFINITY;
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
        DC_V sh = zero, ps = zero, as = zero, bad = zero, hs = zero;
        for (ptrdiff_t c = 0; c < n; c++) {
            const DC_V v = col[c], tv = tcol[c];
            if (!is_log) { /* dc_soft_probs_rows's loop */
                const DC_V pv = tv;
                DC_V a = pv;
                if (w != NULL) a = w[c] * pv;
                sh += DC_VSEL(a != zero, DC_VSEL(v == ninf, inf, a * (m - v)), zero);
                ps += pv;
                as += a;
                bad += DC_VSEL(pv >= zero, zero, one);
                if (want_h) hs += DC_VSEL(pv != zero, a * DC_FN(dc_lanes_log)(pv), zero);
            } else {
                const DC_V p = DC_VEXP(tv);
                DC_V a = p;
                DC_VI has = tv > ninf;
                if (w != NULL) {
                    a = w[c] * p;
                    has &= zero + w[c] != zero;
                }
                sh += DC_VSEL(has, DC_VSEL(v == ninf, inf, a * (m - v)), zero);
                ps += p;
                as += a;
                bad += DC_VSEL(tv != tv, one, zero);
                if (want_h) hs += DC_VSEL(p != zero, a * tv, zero);
            }
        }
        for (ptrdiff_t j = 0; j < lanes; j++) {
            dc_soft_result *r = res + g + j;
            r->max = st[j].max;
            r->sum = dc_lse_sum(&st[j]);
            r->psum = (double)ps[j];
            r->asum = (double)as[j];
            r->nbad = (ptrdiff_t)bad[j];
            r->tmax = 0.0;
            r->tsum = 1.0;
            r->h = r->kl = NAN;
            if (!dc_lse_ok(&st[j])) {
                r->ce = NAN;
                continue;
            }
            r->ce = (double)sh[j] + r->asum * log_sum[j];
            if (want_h) {
                r->h = -(double)hs[j];
                /* Only a true KL is ≥ 0: with class weights, CE_w - H_w may be negative. */
                r->kl = w != NULL ? r->ce - r->h : dc_clamp_nonnegative(r->ce - r->h);
            }
        }
    }
}

/* Reverse KL(q ‖ p) = Σ q_c (log q_c - log p_c) against a probability or log-probability
 * target (is_log), the lanes of dc_kl_reverse_target (losses_t.h), in DC_T:
 * q = exp(x - M) / S; a term with q = 0 (x = -inf) is 0, q > 0 where p = 0 gives +inf;
 * clamped at 0. psum and nbad of the target; asum = 1, max and sum of the model's row. */
DC_TARGET DC_ENTRY void DC_FN(dc_kl_reverse_rows)(const dc_rows *rx, const dc_rows *rt,
                                                      int is_log, ptrdiff_t first,
                                                      ptrdiff_t count, dc_soft_result *res)
{
    const DC_V zero = {0}, one = zero + 1, inf = zero + (DC_T)INFINITY;
    const DC_V ninf = zero - (DC_T)INFINITY;
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
        DC_V inv_s = zero, log_s = zero;
        for (ptrdiff_t j = 0; j < lanes; j++) {
            if (!dc_lse_ok(&st[j])) continue;
            inv_s[j] = (DC_T)(1.0 / dc_lse_sum(&st[j]));
            log_s[j] = (DC_T)log_sum[j];
        }
        DC_V k = zero, ps = zero, bad = zero;
        for (ptrdiff_t c = 0; c < n; c++) {
            const DC_V tv = tcol[c];
            const DC_V p = is_log ? DC_VEXP(tv) : tv;
            ps += p;
            bad += is_log ? DC_VSEL(tv != tv, one, zero) : DC_VSEL(p >= zero, zero, one);
            /* q > 0 exactly when x is finite (its exp may still underflow) */
            const DC_V dx = col[c] - m;
            const DC_V q = DC_VEXP(dx) * inv_s;
            const DC_V log_p = is_log ? tv : DC_FN(dc_lanes_log)(p);
            k += DC_VSEL(dx > ninf, DC_VSEL(log_p == ninf, inf, q * ((dx - log_s) - log_p)),
                         zero);
        }
        for (ptrdiff_t j = 0; j < lanes; j++) {
            dc_soft_result *r = res + g + j;
            r->psum = (double)ps[j];
            r->nbad = (ptrdiff_t)bad[j];
            r->asum = 1.0;
            r->max = st[j].max;
            r->sum = dc_lse_sum(&st[j]);
            r->tmax = 0.0;
            r->tsum = 1.0;
            r->ce = r->h = NAN;
            r->kl = dc_lse_ok(&st[j]) ? dc_clamp_nonnegative((double)k[j]) : NAN;
        }
    }
}

/* The target as logits t: the lanes of dc_soft_logits (losses_t.h), for rows first ..
 * first + count - 1 of rx (model) and rt (target, read with the same mask and
 * temperature). With both maxima final,
 *     ce = Σ a_i (M_x - x_i) + Σa·log S_x,      h = -Σ a_i ((t_i - M_t) - log S_t),
 *     kl = Σ a_i ((t_i - M_t) - (x_i - M_x)) + Σa·(log S_x - log S_t),
 * a = w·p, p = exp(t - M_t) / S_t in DC_T; a term with no mass (t = -inf, or w = 0) is 0,
 * mass on x = -inf gives +inf. kl is clamped at 0 (not with weights). A row of either side
 * without a distribution gives NaN. */
DC_TARGET DC_ENTRY void DC_FN(dc_logits_rows)(const dc_rows *rx, const dc_rows *rt,
                                                  const DC_T *w, ptrdiff_t first,
                                                  ptrdiff_t count, dc_soft_result *res)
{
    const DC_V zero = {0}, inf = zero + (DC_T)INFINITY, ninf = zero - (DC_T)INFINITY;
    const ptrdiff_t n = rx->n;
    DC_V col[DC_LANES_MAX_N], tcol[DC_LANES_MAX_N];
    /* initialised only so that compilers which cannot follow `lanes` do not warn */
    dc_lse_state sx[DC_VLEN] = {{0.0, 0.0, 0.0, 0.0, 0}};
    dc_lse_state st[DC_VLEN] = {{0.0, 0.0, 0.0, 0.0, 0}};
    double lsx[DC_VLEN] = {0.0}, lst[DC_VLEN] = {0.0};
    for (ptrdiff_t g = 0; g < count; g += DC_VLEN) {
        const ptrdiff_t lanes = count - g < DC_VLEN ? count - g : DC_VLEN;
        DC_V mx, mt, at_max, rest;
        DC_FN(dc_rows_columns)(rx, first + g, lanes, col);
        DC_FN(dc_rows_columns)(rt, first + g, lanes, tcol);
        DC_FN(dc_columns_lse)(col, n, &mx, &at_max, &rest);
        DC_FN(dc_lanes_states)(mx, at_max, rest, lanes, sx, lsx);
        DC_FN(dc_columns_lse)(tcol, n, &mt, &at_max, &rest);
        DC_FN(dc_lanes_states)(mt, at_max, rest, lanes, st, lst);
        DC_V inv_st = zero, log_st = zero;
        for (ptrdiff_t j = 0; j < lanes; j++) {
            if (!dc_lse_ok(&st[j])) continue;
            inv_st[j] = (DC_T)(1.0 / dc_lse_sum(&st[j]));
            log_st[j] = (DC_T)lst[j];
        }
        DC_V c = zero, h = zero, k = zero, a_sum = zero;
        for (ptrdiff_t i = 0; i < n; i++) {
            const DC_V dt = tcol[i] - mt, dx = col[i] - mx;
            const DC_V p = DC_VEXP_NONPOS(dt) * inv_st; /* dt ≤ 0: t ≤ its max */
            DC_V a = p;
            DC_VI has = dt > ninf;
            if (w != NULL) {
                const DC_V wv = zero + w[i];
                a = wv * p;
                has &= wv != zero;
            }
            /* lost: a -inf logit (not x - M overflowing for a finite x, where a term whose
             * mass underflowed to 0 is 0), as dc_soft_logits */
            const DC_VI lost = col[i] == ninf, none = a == zero;
            a_sum += a;
            c += DC_VSEL(has, DC_VSEL(lost, inf, DC_VSEL(none, zero, a * -dx)), zero);
            h += DC_VSEL(has, a * (dt - log_st), zero);
            k += DC_VSEL(has, DC_VSEL(lost, inf, DC_VSEL(none, zero, a * (dt - dx))), zero);
        }
        for (ptrdiff_t j = 0; j < lanes; j++) {
            dc_soft_result *r = res + g + j;
            r->psum = 1.0;
            r->nbad = 0;
            r->max = sx[j].max;
            r->sum = dc_lse_sum(&sx[j]);
            r->tmax = st[j].max;
            r->tsum = dc_lse_sum(&st[j]);
            if (!dc_lse_ok(&sx[j]) || !dc_lse_ok(&st[j])) {
                r->asum = r->ce = r->h = r->kl = NAN;
                continue;
            }
            const double asum = (double)a_sum[j];
            const double kl = (double)k[j] + asum * (lsx[j] - lst[j]);
            r->asum = asum;
            r->ce = (double)c[j] + asum * lsx[j];
            r->h = -(double)h[j];
            r->kl = w != NULL ? kl : dc_clamp_nonnegative(kl); /* weighted: any sign */
        }
    }
}

/* The entropy of softmax(x), the lanes of dc_entropy_logits (losses_t.h), for rows
 * first .. first + count - 1 of r, into out[0 .. count):
 *     H = log S + Σ e_i (M - x_i) / S,   e_i = exp(x_i - M),
 * the terms in double from the DC_T values (a peaked row's terms would be subnormal in
 * float); NaN for a row without a distribution. */
DC_TARGET DC_ENTRY void DC_FN(dc_entropy_logits_rows)(const dc_rows *r, ptrdiff_t first,
                                                          ptrdiff_t count, double *out)
{
    const DC_VD dzero = {0};
    const ptrdiff_t n = r->n;
    DC_V col[DC_LANES_MAX_N];
    /* initialised only so that compilers which cannot follow `lanes` do not warn */
    dc_lse_state st[DC_VLEN] = {{0.0, 0.0, 0.0, 0.0, 0}};
    double log_sum[DC_VLEN] = {0.0}, mv[DC_VLEN];
    for (ptrdiff_t g = 0; g < count; g += DC_VLEN) {
        const ptrdiff_t lanes = count - g < DC_VLEN ? count - g : DC_VLEN;
        DC_V m, at_max, rest;
        DC_FN(dc_rows_columns)(r, first + g, lanes, col);
        DC_FN(dc_columns_lse)(col, n, &m, &at_max, &rest);
        DC_FN(dc_lanes_states)(m, at_max, rest, lanes, st, log_sum);
        for (ptrdiff_t j = 0; j < DC_VLEN; j++)
            mv[j] = j < lanes && dc_lse_ok(&st[j]) ? st[j].max : 0.0;
        DC_VD md[2], u[2] = {dzero, dzero};
        DC_FN(dc_lanes_of)(mv, md);
        for (ptrdiff_t i = 0; i < n; i++) {
            DC_VD d[2];
            DC_FN(dc_lanes_widen)(col[i], d);
            for (int hh = 0; hh < DC_NH; hh++) {
                const DC_VD dd = d[hh] - md[hh];
                const DC_VD e = DC_ISA_NAME(dc_vexp, f64)(dd);
                u[hh] += DC_VDSEL(e != dzero, e * -dd, dzero);
            }
        }
        for (ptrdiff_t j = 0; j < lanes; j++)
            out[g + j] = dc_lse_ok(&st[j])
                             ? log_sum[j] + u[j / DC_VDLEN][j % DC_VDLEN] / dc_lse_sum(&st[j])
                             : NAN;
    }
}

#undef DC_NH
#undef DC_VDSEL
#undef DC_VDI
#undef DC_VDLEN
#undef DC_VD
#else /* no vector extensions: the long-row kernels, a row at a time */

DC_TARGET DC_ENTRY void DC_FN(dc_soft_target_rows)(const dc_rows *rx, const dc_rows *rt,
                                                       const DC_T *w, int is_log, int want_h,
                                                       ptrdiff_t first, ptrdiff_t count,
                                                       dc_soft_result *res)
{
    DC_T xb[DC_LANES_MAX_N], tb[DC_LANES_MAX_N];
    for (ptrdiff_t i = 0; i < count; i++) {
        DC_FN(dc_soft_target_row)(DC_CAT(dc_row, DC_SFX)(rx, first + i, -(DC_T)INFINITY, xb),
                                  DC_CAT(dc_row, DC_SFX)(rt, first + i, -(DC_T)INFINITY, tb),
                                  w, rx->n, is_log, want_h, res + i);
        res[i].tmax = 0.0;
        res[i].tsum = 1.0;
    }
}

DC_TARGET DC_ENTRY void DC_FN(dc_kl_reverse_rows)(const dc_rows *rx, const dc_rows *rt,
                                                      int is_log, ptrdiff_t first,
                                                      ptrdiff_t count, dc_soft_result *res)
{
    DC_T xb[DC_LANES_MAX_N], tb[DC_LANES_MAX_N];
    for (ptrdiff_t i = 0; i < count; i++) {
        DC_FN(dc_kl_reverse_target)(DC_CAT(dc_row, DC_SFX)(rx, first + i, -(DC_T)INFINITY, xb),
                                    DC_CAT(dc_row, DC_SFX)(rt, first + i, -(DC_T)INFINITY, tb),
                                    rx->n, is_log, res + i);
        res[i].tmax = 0.0;
        res[i].tsum = 1.0;
    }
}

DC_TARGET DC_ENTRY void DC_FN(dc_logits_rows)(const dc_rows *rx, const dc_rows *rt,
                                                  const DC_T *w, ptrdiff_t first,
                                                  ptrdiff_t count, dc_soft_result *res)
{
    DC_T xb[DC_LANES_MAX_N], tb[DC_LANES_MAX_N];
    for (ptrdiff_t i = 0; i < count; i++)
        DC_FN(dc_soft_logits)(DC_CAT(dc_row, DC_SFX)(rx, first + i, -(DC_T)INFINITY, xb),
                              DC_CAT(dc_row, DC_SFX)(rt, first + i, -(DC_T)INFINITY, tb), w,
                              rx->n, res + i);
}

DC_TARGET DC_ENTRY void DC_FN(dc_entropy_logits_rows)(const dc_rows *r, ptrdiff_t first,
                                                          ptrdiff_t count, double *out)
{
    DC_T xb[DC_LANES_MAX_N];
    for (ptrdiff_t i = 0; i < count; i++)
        out[i] = DC_FN(dc_entropy_logits)(
            DC_CAT(dc_row, DC_SFX)(r, first + i, -(DC_T)INFINITY, xb), r->n);
}
#endif

#undef DC_FN
