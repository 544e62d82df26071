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

/* The terms of dc_js_row's loop in log space, from p, q and their logs: with
 * d = log q - log p,
 *     β·p·(-log1p((1-β)·expm1(d))) + (1-β)·q·(-log1p(β·expm1(-d)))
 * (0 where p = q = 0; the terms with p = 0 or q = 0 are 0). What dc_lanes_js_many takes
 * for the lanes its ratio form does not (subnormal or huge p or q, NaN, negative p). */
DC_TARGET DC_VINLINE DC_VD DC_FN(dc_lanes_js_log_terms)(DC_VD lp, DC_VD p, DC_VD lq, DC_VD q,
                                                        double beta, double lb, double l1b)
{
    const DC_VD dzero = {0};
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

/* exp(x) as dc_vexp computes it, 0 below -746 without computing it there: the exp of a
 * masked class (-inf) or of a missing lane would round a subnormal product to 0, which
 * costs a microcode assist per instruction on many x86 CPUs. */
DC_TARGET DC_VINLINE DC_VD DC_FN(dc_lanes_js_exp)(DC_VD x)
{
    const DC_VD dzero = {0};
    const DC_VDI under = x < -746.0;
    return DC_VDSEL(under, dzero, DC_ISA_NAME(dc_vexp, f64)(DC_VDSEL(under, dzero, x)));
}

/* The target's p (and log p, but not for probabilities) by `kind` (a logits target's row
 * max and log-sum in mt, lst), the model's q and log q from x (mx, lsx). Adds p to *ps
 * and the bad entries (negative, NaN) to *bad. */
DC_TARGET DC_VINLINE void DC_FN(dc_lanes_js_pq)(DC_VD xd, DC_VD td, int kind, DC_VD mx,
                                                DC_VD lsx, DC_VD mt, DC_VD lst, DC_VD *p,
                                                DC_VD *lp, DC_VD *q, DC_VD *lq, DC_VD *ps,
                                                DC_VD *bad)
{
    const DC_VD dzero = {0}, done = dzero + 1.0;
    if (kind == DC_TARGET_PROBS) {
        *p = td;
        *lp = dzero;
        *bad += DC_VDSEL(td >= dzero, dzero, done);
    } else {
        *lp = td;
        if (kind == DC_TARGET_LOGITS) *lp = (td - mt) - lst;
        *p = DC_FN(dc_lanes_js_exp)(*lp);
        if (kind == DC_TARGET_LOG_PROBS) *bad += DC_VDSEL(td != td, done, dzero);
    }
    *ps += *p;
    *lq = (xd - mx) - lsx;
    *q = DC_FN(dc_lanes_js_exp)(*lq);
}

/* The lanes the ratio forms below take: p and q each 0 or in [2^-500, 2^16] (so that the
 * ratios neither overflow nor lose their precision in the subnormals); not NaN, not
 * negative. */
DC_TARGET DC_VINLINE DC_VDI DC_FN(dc_lanes_js_usual)(DC_VD p, DC_VD q)
{
    const DC_VD dzero = {0};
    const double tiny = 3.054936363499605e-151 /* 2^-500 */, huge = 65536.0;
    return ((p == dzero) | ((p >= tiny) & (p <= huge))) &
           ((q == dzero) | ((q >= tiny) & (q <= huge)));
}

/* The terms β·p·log(p/m) + (1-β)·q·log(q/m), m = β·p + (1-β)·q (0 where p = q = 0), with
 * the two logs from the ratios, no log of p and no exp of their difference:
 *     log(m/p) = log1p((1-β)·(q - p)/p),   log(m/q) = log1p(β·(p - q)/q)
 * (q - p is exact where p and q are close, so near-equal rows keep their relative
 * precision as in the log-space form), or where m/p < ½, log(β + (1-β)·q/p) (and the
 * same for m/q): p = 0 gives log(m/q) = log(1-β), q = 0 log(m/p) = log β. Lanes that
 * are not dc_lanes_js_usual are cleared in *usual: they take the log-space form
 * (dc_lanes_js_log_terms). */
DC_TARGET DC_VINLINE DC_VD DC_FN(dc_lanes_js_ratio_terms)(DC_VD p, DC_VD q, double beta,
                                                          DC_VDI *usual)
{
    const DC_VD dzero = {0}, done = dzero + 1.0;
    const DC_VDI p0 = p == dzero, q0 = q == dzero;
    const DC_VD pd = DC_VDSEL(p0, done, p), qd = DC_VDSEL(q0, done, q);
    /* 1/p and 1/q from one division (p·q ≥ 2^-1000 in the usual lanes) */
    const DC_VD inv = 1.0 / (pd * qd);
    const DC_VD ip = qd * inv, iq = pd * inv;
    /* m/p = 1 + u (u rounded, the rounding of 1 + u kept as a correction) where m/p ≥ ½;
     * below, m/p = β + (1-β)·q/p directly (1 + u would keep u's rounding error, large
     * against a small m/p); likewise m/q */
    const DC_VD u = (1.0 - beta) * (q - p) * ip, v = beta * (p - q) * iq;
    const DC_VDI u_low = (u < -0.5) | q0, v_low = (v < -0.5) | p0;
    const DC_VD wu = u + 1.0, wv = v + 1.0;
    const DC_VD a = DC_VDSEL(u_low, beta + (1.0 - beta) * q * ip, wu);
    const DC_VD b = DC_VDSEL(v_low, (1.0 - beta) + beta * p * iq, wv);
    const DC_VD ca = DC_VDSEL(u_low, dzero, u - (wu - 1.0));
    const DC_VD cb = DC_VDSEL(v_low, dzero, v - (wv - 1.0));
    DC_VD lm_p, lm_q;
    DC_FN(dc_lanes_vlog_pair)(a, ca, b, cb, &lm_p, &lm_q);
    const DC_VD tp = DC_VDSEL(p0, dzero, -p * lm_p);
    const DC_VD tq = DC_VDSEL(q0, dzero, -q * lm_q);
    *usual = DC_FN(dc_lanes_js_usual)(p, q);
    return DC_VDSEL(p0 & q0, dzero, beta * tp + (1.0 - beta) * tq);
}

/* The terms for β = ½ with the target's logs at hand (logits, log-probabilities): with
 * s = p + q, t = (p - q)/s, m = s/2,
 *     ½·p·log(p/m) + ½·q·log(q/m) = (s/4)·g(t),
 *     g(t) = (1+t)·log1p(t) + (1-t)·log1p(-t) = log1p(-t²) + t·log(p/q) ≥ 0,
 * log(p/q) = log p - log q given: one log, of 1 - t² (+ the rounding of 1 - t², or
 * 4pq/s² directly where t² > ½). Near p = q both parts are second order in t (no
 * cancellation of first-order terms as in the general form); where p/q is far from 1,
 * g ≈ 2 log 2 is the difference of two logs of size |log(p/q)|, which costs
 * |log(p/q)|·ε of absolute precision. p = 0 or q = 0: g = 2 log 2. *usual as
 * dc_lanes_js_ratio_terms. */
DC_TARGET DC_VINLINE DC_VD DC_FN(dc_lanes_js_half_terms)(DC_VD p, DC_VD q, DC_VD lp, DC_VD lq,
                                                         DC_VDI *usual)
{
    const DC_VD dzero = {0}, done = dzero + 1.0;
    const DC_VDI p0 = p == dzero, q0 = q == dzero;
    const DC_VD s = p + q;
    const DC_VD is = 1.0 / DC_VDSEL(p0 & q0, done, s);
    const DC_VD t = (p - q) * is, t2 = t * t;
    const DC_VDI big = t2 > 0.5;
    const DC_VD w1 = 1.0 - t2;
    const DC_VD w = DC_VDSEL(big, (4.0 * p * q) * (is * is), w1);
    const DC_VD c = DC_VDSEL(big, dzero, ((1.0 - w1) - t2));
    DC_VD g = DC_FN(dc_lanes_vlog_one)(w, c) + t * (lp - lq);
    g = DC_VDSEL(p0 | q0, dzero + 1.3862943611198906 /* 2 log 2 */, g);
    *usual = DC_FN(dc_lanes_js_usual)(p, q);
    return DC_VDSEL(p0 & q0, dzero, 0.25 * s * g);
}

/* dc_js_row's terms of m double vectors xd[k], td[k] (the model's values and the target's,
 * by `kind`) into out[k]; vector k is lane group k % nh (its row maxima and log-sums in
 * mx, lsx, mt, lst[k % nh], its sums in ps, bad[k % nh]). In passes over the m vectors
 * (p and q, then the ratio terms, then the log-space form for the unusual lanes), so
 * that the long chains of one vector (exp, division, log) overlap with the others'
 * instead of waiting on each other. m ≤ 2·DC_LANES_MAX_N. */
DC_TARGET DC_VINLINE void DC_FN(dc_lanes_js_many)(const DC_VD *xd, const DC_VD *td, ptrdiff_t m,
                                                  int nh, int kind, const DC_VD *mx,
                                                  const DC_VD *lsx, const DC_VD *mt,
                                                  const DC_VD *lst, double beta, double lb,
                                                  double l1b, DC_VD *ps, DC_VD *bad,
                                                  DC_VD *out)
{
    DC_VD p[2 * DC_LANES_MAX_N], q[2 * DC_LANES_MAX_N], lp[2 * DC_LANES_MAX_N],
        lq[2 * DC_LANES_MAX_N];
    DC_VDI odd = {0};
    /* β = ½ with the target's logs at hand: one log per value (dc_lanes_js_half_terms) */
    const int half = kind != DC_TARGET_PROBS && beta == 0.5;
    for (ptrdiff_t k = 0; k < m; k++) {
        const int h = (int)(k % nh);
        DC_FN(dc_lanes_js_pq)(xd[k], td[k], kind, mx[h], lsx[h], mt[h], lst[h], &p[k], &lp[k],
                              &q[k], &lq[k], &ps[h], &bad[h]);
    }
    for (ptrdiff_t k = 0; k < m; k++) {
        DC_VDI usual;
        out[k] = half ? DC_FN(dc_lanes_js_half_terms)(p[k], q[k], lp[k], lq[k], &usual)
                      : DC_FN(dc_lanes_js_ratio_terms)(p[k], q[k], beta, &usual);
        odd |= ~usual;
    }
    if (!DC_FN(dc_lanes_any)(odd)) return;
    for (ptrdiff_t k = 0; k < m; k++) {
        const DC_VDI usual = DC_FN(dc_lanes_js_usual)(p[k], q[k]);
        if (!DC_FN(dc_lanes_any)(~usual)) continue;
        const DC_VD lpk = kind == DC_TARGET_PROBS ? DC_FN(dc_lanes_vlog)(p[k]) : lp[k];
        out[k] = DC_VDSEL(usual, out[k],
                          DC_FN(dc_lanes_js_log_terms)(lpk, p[k], lq[k], q[k], beta, lb, l1b));
    }
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
        if (kind == DC_TARGET_PROBS && lanes < DC_VLEN) /* missing lanes: p = 0, not -inf */
            for (ptrdiff_t i = 0; i < n; i++)
                for (ptrdiff_t j = lanes; j < DC_VLEN; j++) tcol[i][j] = (DC_T)0;
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
        DC_VD xd[2 * DC_LANES_MAX_N], td[2 * DC_LANES_MAX_N], terms[2 * DC_LANES_MAX_N];
        for (ptrdiff_t i = 0; i < n; i++) {
            DC_FN(dc_lanes_widen)(col[i], xd + i * DC_NH);
            DC_FN(dc_lanes_widen)(tcol[i], td + i * DC_NH);
        }
        DC_FN(dc_lanes_js_many)(xd, td, n * DC_NH, DC_NH, kind, mx, log_sx, mt, log_st, beta,
                                lb, l1b, ps, bad, terms);
        for (ptrdiff_t i = 0; i < n; i++)
            for (int h = 0; h < DC_NH; h++) acc[h] += terms[i * DC_NH + h];
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
 * DC_VLEN at a time in double lanes (dc_lanes_js_many), added to *js, *ps and *bad;
 * returns how many values it took (dc_js_row's loop does the rest). */
DC_TARGET DC_ENTRY ptrdiff_t DC_FN(dc_js_values_vec)(const DC_T *x, const DC_T *t, ptrdiff_t n,
                                                     int kind, double xmax, double log_sx,
                                                     double tmax, double log_st, double beta,
                                                     double *js, double *ps, ptrdiff_t *bad)
{
    const DC_VD dzero = {0};
    const double lb = beta > 0.0 ? log(beta) : 0.0, l1b = beta < 1.0 ? log1p(-beta) : 0.0;
    const DC_VD mx[2] = {dzero + xmax, dzero + xmax}, lsx[2] = {dzero + log_sx, dzero + log_sx};
    const DC_VD mt[2] = {dzero + tmax, dzero + tmax}, lst[2] = {dzero + log_st, dzero + log_st};
    DC_VD acc[2] = {dzero, dzero}, psv[2] = {dzero, dzero}, badv[2] = {dzero, dzero};
    DC_VD xd[2 * DC_LANES_MAX_N], td[2 * DC_LANES_MAX_N], terms[2 * DC_LANES_MAX_N];
    const ptrdiff_t whole = n - n % DC_VLEN;
    /* DC_LANES_MAX_N vectors of values at a time */
    for (ptrdiff_t i0 = 0; i0 < whole; i0 += DC_LANES_MAX_N * DC_VLEN) {
        const ptrdiff_t end = whole - i0 < DC_LANES_MAX_N * DC_VLEN ? whole
                                                                     : i0 + DC_LANES_MAX_N * DC_VLEN;
        ptrdiff_t m = 0;
        for (ptrdiff_t i = i0; i < end; i += DC_VLEN, m += DC_NH) {
            DC_FN(dc_lanes_widen)(*(const DC_V *)(x + i), xd + m);
            DC_FN(dc_lanes_widen)(*(const DC_V *)(t + i), td + m);
        }
        DC_FN(dc_lanes_js_many)(xd, td, m, DC_NH, kind, mx, lsx, mt, lst, beta, lb, l1b, psv,
                                badv, terms);
        for (ptrdiff_t k = 0; k < m; k++) acc[k % DC_NH] += terms[k];
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
