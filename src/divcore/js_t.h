/* divcore/js_t.h: the generalised Jensen-Shannon divergence of a row.
 * Part of the type-generic body of losses.h, included by losses_t.h (DC_T, DC_SFX, DC_FN and
 * the DC_VD* macros defined there). Not to be included on its own. */

/* ------------------------------------------------------------------ Jensen-Shannon */

/* log p_i and p_i of a target entry (a logits target needs its row's M_t, S_t). */
DC_TARGET DC_INLINE double DC_FN(dc_target_log)(DC_T t, int kind, double tmax, double log_tsum)
{
    if (kind == DC_TARGET_PROBS) return log((double)t);
    if (kind == DC_TARGET_LOG_PROBS) return (double)t;
    return ((double)t - tmax) - log_tsum;
}

#ifdef DC_HAVE_VEC
/* A long row's values in double lanes (lanes_js_t.h, built after this file). */
DC_TARGET DC_ENTRY ptrdiff_t DC_FN(dc_js_values_vec)(const DC_T *x, const DC_T *t, ptrdiff_t n,
                                                     int kind, double xmax, double log_sx,
                                                     double tmax, double log_st, double beta,
                                                     double *js, double *ps, ptrdiff_t *bad);
#endif

/* dc_js_row's pass over the values x[0 .. n), t[0 .. n) of a row (or of a part of it) once
 * the whole row's scans are known (sx, st: a logits target's; ok: both define a
 * distribution): the terms added to *js (when ok), the target's mass and bad entries to
 * *ps, *bad. `vec`: the row is longer than the lanes take (its whole vectors in double
 * lanes). */
DC_TARGET DC_INLINE void DC_FN(dc_js_values)(const DC_T *x, const DC_T *t, ptrdiff_t n,
                                             int kind, int ok, int vec,
                                             const dc_lse_state *sx, double log_sx,
                                             const dc_lse_state *st, double log_st,
                                             double beta, double *js, double *ps,
                                             ptrdiff_t *bad)
{
    ptrdiff_t first = 0;
#ifdef DC_HAVE_VEC
    /* a long row: whole vectors in double lanes (the short ones take dc_js_rows' lanes) */
    if (vec)
        first = DC_FN(dc_js_values_vec)(x, t, n, kind, sx->max, log_sx, st->max, log_st, beta,
                                        js, ps, bad);
#else
    (void)vec;
#endif
    for (ptrdiff_t i = first; i < n; i++) {
        const double lp = DC_FN(dc_target_log)(t[i], kind, st->max, log_st);
        const double p = kind == DC_TARGET_PROBS ? (double)t[i] : dc_exp_f64(lp);
        *ps += p;
        *bad += kind == DC_TARGET_LOG_PROBS ? (t[i] != t[i]) : !(p >= 0.0);
        if (!ok) continue;
        const double lq = ((double)x[i] - sx->max) - log_sx;
        const double q = dc_exp_f64(lq);
        if (p == 0.0 && q == 0.0) continue;
        const double d = lq - lp;
        const double tp = p != 0.0 ? -p * dc_log1p_c_expm1(1.0 - beta, d) : 0.0;
        const double tq = q != 0.0 ? -q * dc_log1p_c_expm1(beta, -d) : 0.0;
        *js += beta * tp + (1.0 - beta) * tq;
    }
}

/* Generalised Jensen-Shannon divergence with weight β on the target p:
 *     JS_β = β KL(p ‖ m) + (1-β) KL(q ‖ m),   m = β p + (1-β) q.
 * In log space, with d = log q - log p, the two log-ratios are
 *     log p - log m = -log1p((1-β)·expm1(d)),   log q - log m = -log1p(β·expm1(-d))
 * which are exact for near-identical p and q (where m's log would cancel) and right at
 * p = 0 (d = +inf: -log(1-β)) or q = 0 (d = -inf: -log β). Computed in double; clamped
 * to [0, h(β)] so that rounding never gives a negative value (or a NaN) for p ≈ q. */
DC_TARGET DC_ENTRY double DC_FN(dc_js_row)(const DC_T *x, const DC_T *t, ptrdiff_t n, int kind,
                                      double beta, double *psum, ptrdiff_t *nbad)
{
    const dc_lse_state sx = DC_FN(dc_lse_scan)(x, n);
    dc_lse_state st;
    dc_lse_init(&st);
    if (kind == DC_TARGET_LOGITS) st = DC_FN(dc_lse_scan)(t, n);
    const int ok = dc_js_ok(&sx, &st, kind);
    const double log_sx = ok ? dc_lse_log_sum(&sx) : 0.0;
    const double log_st = ok && kind == DC_TARGET_LOGITS ? dc_lse_log_sum(&st) : 0.0;
    double js = 0.0, ps = 0.0;
    ptrdiff_t bad = 0;
    DC_FN(dc_js_values)(x, t, n, kind, ok, n > DC_LANES_MAX_N, &sx, log_sx, &st, log_st, beta,
                        &js, &ps, &bad);
    return dc_js_finish(ok, kind, beta, js, ps, bad, psum, nbad);
}
