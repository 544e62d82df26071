/* divcore/grad_t.h: gradients with respect to the logits (soft targets, labels,
 * reverse KL).
 * Part of the type-generic body of losses.h, included by losses_t.h (DC_T, DC_SFX, DC_FN and
 * the DC_VD* macros defined there). Not to be included on its own. */

/* ------------------------------------------------------------------------ gradients */

#ifdef DC_HAVE_VEC
/* The three gradient loops below over the row's whole vector pairs, the same formulas in
 * double lanes; each returns how many values it wrote (the rest is the scalar loop's). */

/* dc_soft_grad's g = scale·(mass·q - a). */
DC_TARGET DC_INLINE ptrdiff_t DC_FN(dc_soft_grad_vec)(const DC_T *x, const DC_T *t,
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
DC_TARGET DC_INLINE ptrdiff_t DC_FN(dc_ce_label_grad_vec)(const DC_T *x, ptrdiff_t n,
                                                             double m, double inv_s,
                                                             double scale, DC_T *g)
{
    const ptrdiff_t step = 2 * DC_VDLEN, whole = n - n % step;
    for (ptrdiff_t i = 0; i < whole; i += step) {
        DC_VD x0, x1;
        DC_VLOAD2(x + i, &x0, &x1);
        DC_VSTORE2(g + i, scale * (DC_FN(dc_vdexp_rounded)(x0 - m) * inv_s),
                   scale * (DC_FN(dc_vdexp_rounded)(x1 - m) * inv_s));
    }
    return whole;
}

/* dc_kl_reverse_grad's g = scale·q·((log q - log p) - kl), 0 where q = 0. The log of a
 * probability target is the C library's, a lane at a time. */
DC_TARGET DC_INLINE ptrdiff_t DC_FN(dc_kl_reverse_grad_vec)(const DC_T *x, const DC_T *t,
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
DC_TARGET DC_ENTRY void DC_FN(dc_soft_grad)(const DC_T *x, const DC_T *t, const DC_T *w,
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
DC_TARGET DC_ENTRY double DC_FN(dc_ce_label_grad)(const DC_T *x, ptrdiff_t n, ptrdiff_t label,
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
DC_TARGET DC_ENTRY void DC_FN(dc_kl_reverse_grad)(const DC_T *x, const DC_T *t, ptrdiff_t n,
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
