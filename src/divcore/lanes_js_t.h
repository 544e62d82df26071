/* divcore/lanes_js_t.h: the generalised Jensen-Shannon divergence of short rows, one row
 * per vector lane (type-generic body; DC_T, DC_SFX, DC_ISA_NAME, DC_TARGET defined;
 * included after lanes_math_t.h by isa_t.h and lanes_more.h). The terms are dc_js_row's
 * (losses_t.h) in double lanes, with the lanes' log, log1p and expm1 (lanes_math_t.h). */

#define DC_FN(name) DC_ISA_NAME(name, DC_SFX)

#ifdef DC_HAVE_VEC
#define DC_VD DC_ISA_NAME(dc_v, f64)
#define DC_VDLEN ((ptrdiff_t)(sizeof(DC_VD) / sizeof(double)))
#define DC_VDI DC_ISA_NAME(dc_vi, f64)
#define DC_VDSEL(mask, a, b) ((DC_VD)(((mask) & (DC_VDI)(a)) | (~(mask) & (DC_VDI)(b))))
/* double vectors per column: 2 for float lanes, 1 for double lanes */
#define DC_NH ((int)(DC_VLEN / DC_VDLEN))

/* One double vector of dc_js_row's loop: the target's p (and log p) by `kind` (a logits
 * target's row max and log-sum in mt, lst), the model's log q from x (mx, lsx), with
 * d = log q - log p the terms
 *     β·p·(-log1p((1-β)·expm1(d))) + (1-β)·q·(-log1p(β·expm1(-d)))
 * (0 where p = q = 0). Adds p to *ps and the bad entries (negative, NaN) to *bad. */
DC_TARGET DC_VINLINE DC_VD DC_FN(dc_lanes_js_terms)(DC_VD xd, DC_VD td, int kind, DC_VD mx,
                                                    DC_VD lsx, DC_VD mt, DC_VD lst,
                                                    double beta, double lb, double l1b,
                                                    DC_VD *ps, DC_VD *bad)
{
    const DC_VD dzero = {0}, done = dzero + 1.0;
    DC_VD lp, p;
    if (kind == DC_TARGET_PROBS) {
        p = td;
        lp = DC_FN(dc_lanes_vlog)(p);
        *bad += DC_VDSEL(p >= dzero, dzero, done);
    } else {
        lp = td;
        if (kind == DC_TARGET_LOGITS) lp = (lp - mt) - lst;
        p = DC_ISA_NAME(dc_vexp, f64)(lp);
        if (kind == DC_TARGET_LOG_PROBS) *bad += DC_VDSEL(td != td, done, dzero);
    }
    *ps += p;
    const DC_VD lq = (xd - mx) - lsx;
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
        lp_m = DC_VDSEL(ad > 700.0, DC_FN(dc_lanes_log1p_c_expm1)(1.0 - beta, l1b, d), lp_m);
        lq_m = DC_VDSEL(ad > 700.0, DC_FN(dc_lanes_log1p_c_expm1)(beta, lb, dzero - d), lq_m);
    }
    const DC_VD tp = DC_VDSEL(p != dzero, -p * lp_m, dzero);
    const DC_VD tq = DC_VDSEL(q != dzero, -q * lq_m, dzero);
    return DC_VDSEL((p == dzero) & (q == dzero), dzero, beta * tp + (1.0 - beta) * tq);
}

/* Generalised Jensen-Shannon divergence with weight beta on the target, the lanes of
 * dc_js_row (losses_t.h), for rows first .. first + count - 1 of rx and rt (target kind
 * `kind`), into js[0 .. count) with the target sums into psum / nbad: in double lanes,
 * with d = log q - log p,
 *     log p - log m = -log1p((1-β)·expm1(d)),   log q - log m = -log1p(β·expm1(-d)),
 * terms with p = 0 (resp. q = 0) are 0; clamped to [0, h(β)]; β ∈ {0, 1} gives 0; a row
 * (or a logits target) without a distribution gives NaN. */
DC_TARGET DC_ENTRY void DC_FN(dc_js_rows)(const dc_rows *rx, const dc_rows *rt, int kind,
                                              double beta, ptrdiff_t first, ptrdiff_t count,
                                              double *js, double *psum, ptrdiff_t *nbad)
{
    const DC_VD dzero = {0};
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
            for (int h = 0; h < DC_NH; h++)
                acc[h] += DC_FN(dc_lanes_js_terms)(xd[h], td[h], kind, mx[h], log_sx[h], mt[h],
                                                   log_st[h], beta, lb, l1b, &ps[h], &bad[h]);
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

/* The vector part of dc_js_row for a row longer than the lanes take: its values
 * DC_VLEN at a time in double lanes (dc_lanes_js_terms), added to *js, *ps and *bad;
 * returns how many values it took (dc_js_row's loop does the rest). */
DC_TARGET DC_ENTRY ptrdiff_t DC_FN(dc_js_values_vec)(const DC_T *x, const DC_T *t, ptrdiff_t n,
                                                     int kind, double xmax, double log_sx,
                                                     double tmax, double log_st, double beta,
                                                     double *js, double *ps, ptrdiff_t *bad)
{
    const DC_VD dzero = {0};
    const double lb = beta > 0.0 ? log(beta) : 0.0, l1b = beta < 1.0 ? log1p(-beta) : 0.0;
    const DC_VD mx = dzero + xmax, lsx = dzero + log_sx, mt = dzero + tmax, lst = dzero + log_st;
    DC_VD acc[2] = {dzero, dzero}, psv[2] = {dzero, dzero}, badv[2] = {dzero, dzero};
    const ptrdiff_t whole = n - n % DC_VLEN;
    for (ptrdiff_t i = 0; i < whole; i += DC_VLEN) {
        DC_VD xd[2], td[2];
        DC_FN(dc_lanes_widen)(*(const DC_V *)(x + i), xd);
        DC_FN(dc_lanes_widen)(*(const DC_V *)(t + i), td);
        for (int h = 0; h < DC_NH; h++)
            acc[h] += DC_FN(dc_lanes_js_terms)(xd[h], td[h], kind, mx, lsx, mt, lst, beta, lb,
                                               l1b, &psv[h], &badv[h]);
    }
    for (int h = 0; h < DC_NH; h++)
        for (ptrdiff_t j = 0; j < DC_VDLEN; j++) {
            *js += acc[h][j];
            *ps += psv[h][j];
            *bad += (ptrdiff_t)badv[h][j];
        }
    return whole;
}

#undef DC_NH
#undef DC_VDSEL
#undef DC_VDI
#undef DC_VDLEN
#undef DC_VD
#else /* no vector extensions: the long-row kernel, a row at a time */

DC_TARGET DC_ENTRY void DC_FN(dc_js_rows)(const dc_rows *rx, const dc_rows *rt, int kind,
                                              double beta, ptrdiff_t first, ptrdiff_t count,
                                              double *js, double *psum, ptrdiff_t *nbad)
{
    DC_T xb[DC_LANES_MAX_N], tb[DC_LANES_MAX_N];
    for (ptrdiff_t i = 0; i < count; i++)
        js[i] = DC_FN(dc_js_row)(DC_CAT(dc_row, DC_SFX)(rx, first + i, -(DC_T)INFINITY, xb),
                                 DC_CAT(dc_row, DC_SFX)(rt, first + i, -(DC_T)INFINITY, tb),
                                 rx->n, kind, beta, psum + i, nbad + i);
}
#endif

#undef DC_FN
