/* divcore/lanes_soft_t.h: short rows, one row per vector lane, for the operations that
 * need more than the log-sum-exp: a logits target (KL, CE, decompose, reverse KL) and
 * the entropy of logits. Type-generic body (DC_T, DC_SFX, DC_ISA_NAME, DC_TARGET defined;
 * included by isa_t.h after losses_t.h, and for the portable build by dispatch.h).
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

/* A column's lanes as double vectors d[0 .. DC_NH) (d must hold 2). */
DC_TARGET DC_VINLINE void DC_FN(dc_lanes_widen)(DC_V v, DC_VD *d)
{
    const DC_V pair[2] = {v, v};
    DC_ISA_NAME(dc_vload2, DC_SFX)((const DC_T *)pair, &d[0], &d[1]);
}

/* Lane values v[0 .. DC_VLEN) as double vectors d[0 .. DC_NH). */
DC_TARGET DC_VINLINE void DC_FN(dc_lanes_of)(const double *v, DC_VD *d)
{
    for (int h = 0; h < DC_NH; h++) memcpy(&d[h], v + h * DC_VDLEN, sizeof(DC_VD));
}

/* log x in double lanes, x ≥ 0 (NaN stays NaN, log 0 = -inf, negative: NaN): the
 * argument reduction and series of dc_vlog1p (simd_t.h), for any exponent:
 *     x = 2^k · f,  f ∈ [√½, √2),   log x = k·ln 2 + log f,
 *     log f = f1 - h + s·(h + R),   f1 = f - 1, h = f1²/2, s = f1 / (2 + f1)
 * (< 1 ulp); subnormal x is scaled by 2^54 first. The long-row kernels take the C
 * library's log of a target entry; this is the same function within an ulp. */
DC_TARGET DC_VINLINE DC_VD DC_FN(dc_lanes_vlog_corr)(DC_VD x, DC_VD corr);
DC_TARGET DC_VINLINE DC_VD DC_FN(dc_lanes_vlog)(DC_VD x)
{
    const DC_VD zero = {0};
    return DC_FN(dc_lanes_vlog_corr)(x, zero);
}

/* log x + corr, corr a small correction added with the low-order part (log1p below). */
DC_TARGET DC_VINLINE DC_VD DC_FN(dc_lanes_vlog_corr)(DC_VD x, DC_VD corr)
{
    typedef DC_ISA_NAME(dc_vi, f64) vdi;
    const DC_VD zero = {0}, inf = zero + INFINITY;
    const vdi tiny = x < 2.2250738585072014e-308; /* DBL_MIN */
    const DC_VD xs = DC_VDSEL(tiny, x * 18014398509481984.0, x) /* 2^54 */;
    const vdi hx = (vdi)xs;
    const vdi k = (hx - (int64_t)0x3fe6a09e667f3bcdLL) >> 52;
    const DC_VD f = (DC_VD)(hx - (k << 52));
    /* k (|k| < 2^11) as a double through the bits of 2^52 + 2^51 + k */
    const DC_VD kd = ((DC_VD)(k + (int64_t)0x4338000000000000LL) - 6755399441055744.0) -
                     DC_VDSEL(tiny, zero + 54.0, zero);
    const DC_VD f1 = f - 1.0, h = 0.5 * f1 * f1;
    const DC_VD s = f1 / (f1 + 2.0), z = s * s;
    DC_VD R = zero + 2.0 / 23.0;
    R = R * z + 2.0 / 21.0;
    R = R * z + 2.0 / 19.0;
    R = R * z + 2.0 / 17.0;
    R = R * z + 2.0 / 15.0;
    R = R * z + 2.0 / 13.0;
    R = R * z + 2.0 / 11.0;
    R = R * z + 2.0 / 9.0;
    R = R * z + 2.0 / 7.0;
    R = R * z + 2.0 / 5.0;
    R = R * z + 2.0 / 3.0;
    R = R * z;
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    DC_VD r = kd * ln2_hi + (f1 - (h - (s * (h + R) + (kd * ln2_lo + corr))));
    r = DC_VDSEL(x == zero, zero - inf, r);
    r = DC_VDSEL(x == inf, inf, r);
    return DC_VDSEL((x < zero) | (x != x), zero + NAN, r);
}

/* log1p(u) for u > -1 in double lanes (u = -1: -inf; NaN stays NaN): w = 1 + u rounded,
 * log1p(u) = log w + (u - (w - 1)) / w, the correction for the rounding of w (exact when
 * w - 1 = u). */
DC_TARGET DC_VINLINE DC_VD DC_FN(dc_lanes_vlog1p)(DC_VD u)
{
    const DC_VD zero = {0};
    const DC_VD w = u + 1.0;
    const DC_VD corr = DC_VDSEL(w == zero, zero, (u - (w - 1.0)) / w);
    return DC_FN(dc_lanes_vlog_corr)(w, corr);
}

/* expm1(d) in double lanes with relative precision near 0: for |d| < ln2 / 2 the series
 * d + d²·(1/2! + d·(1/3! + ...)) to d^15/15! (its remainder is below 2^-56 of the result),
 * elsewhere exp(d) - 1 (|exp(d) - 1| ≥ 0.29 there: an ulp or two). expm1(-inf) = -1. */
DC_TARGET DC_VINLINE DC_VD DC_FN(dc_lanes_vexpm1_of)(DC_VD d, DC_VD e);
DC_TARGET DC_VINLINE DC_VD DC_FN(dc_lanes_vexpm1)(DC_VD d)
{
    return DC_FN(dc_lanes_vexpm1_of)(d, DC_ISA_NAME(dc_vexp, f64)(d));
}

/* 1 if any lane of m is set. */
DC_TARGET DC_VINLINE int DC_FN(dc_lanes_any)(DC_VDI m)
{
    DC_VDI acc = m;
    int any = 0;
    for (ptrdiff_t q = 0; q < DC_VDLEN; q++) any |= acc[q] != 0;
    return any;
}

/* expm1(d) given e = exp(d) (dc_lanes_vexpm1). */
DC_TARGET DC_VINLINE DC_VD DC_FN(dc_lanes_vexpm1_of)(DC_VD d, DC_VD e)
{
    const DC_VD zero = {0};
    DC_VD r = zero + 1.0 / 1307674368000.0;          /* 1/15! */
    r = r * d + 1.0 / 87178291200.0;                  /* 1/14! */
    r = r * d + 1.0 / 6227020800.0;
    r = r * d + 1.0 / 479001600.0;
    r = r * d + 1.0 / 39916800.0;
    r = r * d + 1.0 / 3628800.0;
    r = r * d + 1.0 / 362880.0;
    r = r * d + 1.0 / 40320.0;
    r = r * d + 1.0 / 5040.0;
    r = r * d + 1.0 / 720.0;
    r = r * d + 1.0 / 120.0;
    r = r * d + 1.0 / 24.0;
    r = r * d + 1.0 / 6.0;
    r = r * d + 0.5;
    const DC_VD small = d + (d * d) * r;
    const DC_VD big = e - 1.0;
    const DC_VD ad = DC_VDSEL(d < zero, zero - d, d);
    return DC_VDSEL(ad < 0.34657359027997264, small, big);
}

/* log1p(c·expm1(d)) = log(1 - c + c·e^d), c in (0, 1), in double lanes: for d > 1 it is
 * d + log c + log1p((1-c)/c · e^-d) (expm1 would overflow long before the result does),
 * as dc_log1p_c_expm1 (losses.h). log_c = log c. */
DC_TARGET DC_VINLINE DC_VD DC_FN(dc_lanes_log1p_c_expm1)(double c, double log_c, DC_VD d)
{
    const DC_VD big = d + log_c +
                      DC_FN(dc_lanes_vlog1p)((1.0 - c) / c * DC_ISA_NAME(dc_vexp, f64)(-d));
    const DC_VD small = DC_FN(dc_lanes_vlog1p)(c * DC_FN(dc_lanes_vexpm1)(d));
    return DC_VDSEL(d > 1.0, big, small);
}

/* log of each lane of a column, computed in double and rounded once to DC_T. */
DC_TARGET DC_VINLINE DC_V DC_FN(dc_lanes_log)(DC_V v)
{
    DC_VD d[2];
    DC_V pair[2];
    DC_FN(dc_lanes_widen)(v, d);
    for (int h = 0; h < DC_NH; h++) d[h] = DC_FN(dc_lanes_vlog)(d[h]);
    DC_ISA_NAME(dc_vstore2, DC_SFX)((DC_T *)pair, d[0], d[1]);
    return pair[0];
}

/* A probability or log-probability target (is_log), the lanes of dc_soft_target_row
 * (losses_t.h), for rows first .. first + count - 1 of rx and rt:
 *     ce = Σ a_c (M - x_c) + (Σ a) log S,   a = w·p,
 * a term with no mass is 0 (also at x = -inf), mass at x = -inf gives +inf; with want_h
 *     h = -Σ a_c log p_c  (0 where p_c = 0),   kl = ce - h (clamped at 0 without w).
 * For probabilities the cross-entropy is dc_soft_probs_rows's, operation for operation
 * (the same value with or without want_h, and as cross_entropy gives it). psum, nbad,
 * asum, max, sum as dc_soft_target_row. */
DC_TARGET static inline void DC_FN(dc_soft_target_rows)(const dc_rows *rx, const dc_rows *rt,
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
DC_TARGET static inline void DC_FN(dc_kl_reverse_rows)(const dc_rows *rx, const dc_rows *rt,
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

/* Generalised Jensen-Shannon divergence with weight beta on the target, the lanes of
 * dc_js_row (losses_t.h), for rows first .. first + count - 1 of rx and rt (target kind
 * `kind`), into js[0 .. count) with the target sums into psum / nbad: in double lanes,
 * with d = log q - log p,
 *     log p - log m = -log1p((1-β)·expm1(d)),   log q - log m = -log1p(β·expm1(-d)),
 * terms with p = 0 (resp. q = 0) are 0; clamped to [0, h(β)]; β ∈ {0, 1} gives 0; a row
 * (or a logits target) without a distribution gives NaN. */
DC_TARGET static inline void DC_FN(dc_js_rows)(const dc_rows *rx, const dc_rows *rt, int kind,
                                              double beta, ptrdiff_t first, ptrdiff_t count,
                                              double *js, double *psum, ptrdiff_t *nbad)
{
    const DC_VD dzero = {0}, done = dzero + 1.0;
    const ptrdiff_t n = rx->n;
    const double top = dc_binary_entropy(beta);
    const double lb = beta > 0.0 ? log(beta) : 0.0, l1b = beta < 1.0 ? log1p(-beta) : 0.0;
    DC_V col[DC_LANES_MAX_N], tcol[DC_LANES_MAX_N];
    /* initialised only so that compilers which cannot follow `lanes` do not warn */
    dc_lse_state sx[DC_VLEN] = {{0.0, 0.0, 0.0, 0.0, 0}};
    dc_lse_state st[DC_VLEN] = {{0.0, 0.0, 0.0, 0.0, 0}};
    double lsx[DC_VLEN] = {0.0}, lst[DC_VLEN] = {0.0};
    double mv[DC_VLEN], lv[DC_VLEN], tv[DC_VLEN], ltv[DC_VLEN];
    int ok[DC_VLEN];
    for (ptrdiff_t g = 0; g < count; g += DC_VLEN) {
        const ptrdiff_t lanes = count - g < DC_VLEN ? count - g : DC_VLEN;
        DC_V m, at_max, rest;
        DC_FN(dc_rows_columns)(rx, first + g, lanes, col);
        DC_FN(dc_rows_columns)(rt, first + g, lanes, tcol);
        DC_FN(dc_columns_lse)(col, n, &m, &at_max, &rest);
        DC_FN(dc_lanes_states)(m, at_max, rest, lanes, sx, lsx);
        if (kind == DC_TARGET_LOGITS) {
            DC_FN(dc_columns_lse)(tcol, n, &m, &at_max, &rest);
            DC_FN(dc_lanes_states)(m, at_max, rest, lanes, st, lst);
        }
        for (ptrdiff_t j = 0; j < DC_VLEN; j++) {
            ok[j] = j < lanes && dc_lse_ok(&sx[j]) &&
                    (kind != DC_TARGET_LOGITS || dc_lse_ok(&st[j]));
            mv[j] = ok[j] ? sx[j].max : 0.0;
            lv[j] = ok[j] ? lsx[j] : 0.0;
            tv[j] = ok[j] && kind == DC_TARGET_LOGITS ? st[j].max : 0.0;
            ltv[j] = ok[j] && kind == DC_TARGET_LOGITS ? lst[j] : 0.0;
        }
        DC_VD mx[2], log_sx[2], mt[2], log_st[2];
        DC_FN(dc_lanes_of)(mv, mx);
        DC_FN(dc_lanes_of)(lv, log_sx);
        DC_FN(dc_lanes_of)(tv, mt);
        DC_FN(dc_lanes_of)(ltv, log_st);
        DC_VD acc[2] = {dzero, dzero}, ps[2] = {dzero, dzero}, bad[2] = {dzero, dzero};
        for (ptrdiff_t i = 0; i < n; i++) {
            DC_VD xd[2], td[2];
            DC_FN(dc_lanes_widen)(col[i], xd);
            DC_FN(dc_lanes_widen)(tcol[i], td);
            for (int h = 0; h < DC_NH; h++) {
                DC_VD lp, p;
                if (kind == DC_TARGET_PROBS) {
                    p = td[h];
                    lp = DC_FN(dc_lanes_vlog)(p);
                    bad[h] += DC_VDSEL(p >= dzero, dzero, done);
                } else {
                    lp = td[h];
                    if (kind == DC_TARGET_LOGITS) lp = (lp - mt[h]) - log_st[h];
                    p = DC_ISA_NAME(dc_vexp, f64)(lp);
                    if (kind == DC_TARGET_LOG_PROBS)
                        bad[h] += DC_VDSEL(td[h] != td[h], done, dzero);
                }
                ps[h] += p;
                const DC_VD lq = (xd[h] - mx[h]) - log_sx[h];
                const DC_VD q = DC_ISA_NAME(dc_vexp, f64)(lq);
                const DC_VD d = lq - lp;
                /* expm1(d) and expm1(-d) from one exp: with a = |d|, e = exp(-a),
                 * expm1(-a) = e - 1 (the series near 0) and expm1(a) = -expm1(-a) / e */
                const DC_VD ad = DC_VDSEL(d < dzero, dzero - d, d);
                const DC_VD e = DC_ISA_NAME(dc_vexp, f64)(dzero - ad);
                const DC_VD em = DC_FN(dc_lanes_vexpm1_of)(dzero - ad, e);
                const DC_VD ep = -em / e;
                const DC_VDI pos = d >= dzero;
                DC_VD lp_m = DC_FN(dc_lanes_vlog1p)((1.0 - beta) * DC_VDSEL(pos, ep, em));
                DC_VD lq_m = DC_FN(dc_lanes_vlog1p)(beta * DC_VDSEL(pos, em, ep));
                if (DC_FN(dc_lanes_any)(ad > 700.0)) { /* expm1 overflows: dc_log1p_c_expm1 */
                    lp_m = DC_VDSEL(ad > 700.0,
                                    DC_FN(dc_lanes_log1p_c_expm1)(1.0 - beta, l1b, d), lp_m);
                    lq_m = DC_VDSEL(ad > 700.0,
                                    DC_FN(dc_lanes_log1p_c_expm1)(beta, lb, dzero - d), lq_m);
                }
                const DC_VD tp = DC_VDSEL(p != dzero, -p * lp_m, dzero);
                const DC_VD tq = DC_VDSEL(q != dzero, -q * lq_m, dzero);
                acc[h] += DC_VDSEL((p == dzero) & (q == dzero), dzero,
                                   beta * tp + (1.0 - beta) * tq);
            }
        }
        for (ptrdiff_t j = 0; j < lanes; j++) {
            const int h = (int)(j / DC_VDLEN), q = (int)(j % DC_VDLEN);
            psum[g + j] = kind == DC_TARGET_LOGITS ? 1.0 : ps[h][q];
            nbad[g + j] = kind == DC_TARGET_LOGITS ? 0 : (ptrdiff_t)bad[h][q];
            if (!ok[j]) {
                js[g + j] = NAN;
            } else if (beta == 0.0 || beta == 1.0) {
                js[g + j] = 0.0;
            } else {
                const double v = dc_clamp_nonnegative(acc[h][q]);
                js[g + j] = v > top ? top : v;
            }
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
DC_TARGET static inline void DC_FN(dc_logits_rows)(const dc_rows *rx, const dc_rows *rt,
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
            const DC_VI lost = dx == ninf;
            a_sum += a;
            c += DC_VSEL(has, DC_VSEL(lost, inf, a * -dx), zero);
            h += DC_VSEL(has, a * (dt - log_st), zero);
            k += DC_VSEL(has, DC_VSEL(lost, inf, a * (dt - dx)), zero);
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
DC_TARGET static inline void DC_FN(dc_entropy_logits_rows)(const dc_rows *r, ptrdiff_t first,
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

DC_TARGET static inline void DC_FN(dc_logits_rows)(const dc_rows *rx, const dc_rows *rt,
                                                  const DC_T *w, ptrdiff_t first,
                                                  ptrdiff_t count, dc_soft_result *res)
{
    DC_T xb[DC_LANES_MAX_N], tb[DC_LANES_MAX_N];
    for (ptrdiff_t i = 0; i < count; i++)
        DC_FN(dc_soft_logits)(DC_CAT(dc_row, DC_SFX)(rx, first + i, -(DC_T)INFINITY, xb),
                              DC_CAT(dc_row, DC_SFX)(rt, first + i, -(DC_T)INFINITY, tb), w,
                              rx->n, res + i);
}

DC_TARGET static inline void DC_FN(dc_soft_target_rows)(const dc_rows *rx, const dc_rows *rt,
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

DC_TARGET static inline void DC_FN(dc_kl_reverse_rows)(const dc_rows *rx, const dc_rows *rt,
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

DC_TARGET static inline void DC_FN(dc_js_rows)(const dc_rows *rx, const dc_rows *rt, int kind,
                                              double beta, ptrdiff_t first, ptrdiff_t count,
                                              double *js, double *psum, ptrdiff_t *nbad)
{
    DC_T xb[DC_LANES_MAX_N], tb[DC_LANES_MAX_N];
    for (ptrdiff_t i = 0; i < count; i++)
        js[i] = DC_FN(dc_js_row)(DC_CAT(dc_row, DC_SFX)(rx, first + i, -(DC_T)INFINITY, xb),
                                 DC_CAT(dc_row, DC_SFX)(rt, first + i, -(DC_T)INFINITY, tb),
                                 rx->n, kind, beta, psum + i, nbad + i);
}

DC_TARGET static inline void DC_FN(dc_entropy_logits_rows)(const dc_rows *r, ptrdiff_t first,
                                                          ptrdiff_t count, double *out)
{
    DC_T xb[DC_LANES_MAX_N];
    for (ptrdiff_t i = 0; i < count; i++)
        out[i] = DC_FN(dc_entropy_logits)(
            DC_CAT(dc_row, DC_SFX)(r, first + i, -(DC_T)INFINITY, xb), r->n);
}
#endif

#undef DC_FN
