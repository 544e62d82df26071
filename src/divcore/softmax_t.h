/* divcore/softmax_t.h: the kernels that need only a row's log-sum-exp: logsumexp,
 * log_softmax / softmax writers, cross-entropy with a label, entropy of softmax(x).
 * Part of the type-generic body of losses.h, included by losses_t.h (DC_T, DC_SFX, DC_FN and
 * the DC_VD* macros defined there). Not to be included on its own. */

/* ---------------------------------------------------------------- log-sum-exp, softmax */

/* log Σ exp(x_i): NaN for a NaN or +inf value, -inf for an empty or all -inf row. */
DC_TARGET DC_ENTRY double DC_FN(dc_logsumexp)(const DC_T *x, ptrdiff_t n)
{
    double log_sum;
    const dc_lse_state st = DC_FN(dc_lse_scan_log_sum)(x, n, &log_sum);
    return dc_lse_value_of_log_sum(&st, log_sum);
}

#ifdef DC_HAVE_VEC
/* dc_log_softmax_row's outputs over the row's whole vector pairs, the same formulas in
 * double lanes: c is log S, or 1/S with `exponentiate`. Returns how many it wrote. */
DC_TARGET DC_INLINE ptrdiff_t DC_FN(dc_log_softmax_vec)(const DC_T *x, ptrdiff_t n,
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
DC_TARGET DC_ENTRY int DC_FN(dc_log_softmax_of_state)(const DC_T *x, ptrdiff_t n,
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
DC_TARGET DC_ENTRY int DC_FN(dc_log_softmax_row)(const DC_T *x, ptrdiff_t n, int exponentiate,
                                            DC_T *out)
{
    double log_sum;
    const dc_lse_state st = DC_FN(dc_lse_scan_log_sum)(x, n, &log_sum);
    return DC_FN(dc_log_softmax_of_state)(x, n, &st, log_sum, exponentiate, out);
}

DC_TARGET DC_ENTRY int DC_FN(dc_log_softmax)(const DC_T *x, ptrdiff_t n, DC_T *out)
{
    return DC_FN(dc_log_softmax_row)(x, n, 0, out);
}

DC_TARGET DC_ENTRY int DC_FN(dc_softmax)(const DC_T *x, ptrdiff_t n, DC_T *out)
{
    return DC_FN(dc_log_softmax_row)(x, n, 1, out);
}

/* ------------------------------------------------------------- cross-entropy, a label */

/* -log q_y for a label in [0, n): see dc_ce_label_of_log_sum. */
DC_TARGET DC_ENTRY double DC_FN(dc_ce_label)(const DC_T *x, ptrdiff_t n, ptrdiff_t label)
{
    double log_sum;
    const dc_lse_state st = DC_FN(dc_lse_scan_log_sum)(x, n, &log_sum);
    return dc_ce_label_of_log_sum(&st, log_sum, n > 0 ? (double)x[label] : 0.0);
}

/* ------------------------------------------------------------------------- entropy */

#ifdef DC_HAVE_VEC
/* dc_entropy_logits' terms over a block's whole groups of DC_LANES values, added to u_:
 * lane j of accumulator a is u_[a·DC_VDLEN + j], which takes the same values (those at
 * i % DC_LANES == a·DC_VDLEN + j, i counted from the block's start) in the same order as
 * in the scalar loop, so the sum is the same at every instruction set (DC_LANES is a
 * multiple of 2·DC_VDLEN). Returns how many values it took. */
DC_TARGET DC_INLINE ptrdiff_t DC_FN(dc_entropy_terms_vec)(const DC_T *x, ptrdiff_t n,
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

#ifdef DC_HAVE_VEC
/* Short rows in lanes (lanes_soft_t.h, built after this file). */
DC_TARGET DC_ENTRY void DC_FN(dc_entropy_logits_rows)(const dc_rows *r, ptrdiff_t first,
                                                     ptrdiff_t count, double *out);
#endif

/* H(softmax(x)) = Σ q_i (lse - x_i) = log S + Σ e_i (M - x_i) / S,  e_i = exp(x_i - M):
 * non-negative terms only. A row of at most DC_LANES_MAX_N values takes the steps of its
 * lane in dc_entropy_logits_rows, so it gives the bits the Python API gives it in a batch
 * (without vectors the lane kernel is this function, hence the guard). */
DC_TARGET DC_ENTRY double DC_FN(dc_entropy_logits)(const DC_T *x, ptrdiff_t n)
{
#ifdef DC_HAVE_VEC
    if (n > 0 && n <= DC_LANES_MAX_N) {
        const dc_rows r = {(const char *)x, n * (ptrdiff_t)sizeof(DC_T),
                           (ptrdiff_t)sizeof(DC_T), n, NULL, 0, 0, 1.0};
        double h;
        DC_FN(dc_entropy_logits_rows)(&r, 0, 1, &h);
        return h;
    }
#endif
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
