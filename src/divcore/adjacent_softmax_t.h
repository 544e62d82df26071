/* divcore/adjacent_softmax_t.h: the log_softmax / softmax writer of rows adjacent in memory
 * with a strided class axis, in the arrays' own order (type-generic, after losses_t.h: it
 * uses dc_log_softmax_of_state's vector exp; DC_T, DC_SFX defined).
 *
 * Once every row's scan is done (dc_lse_scan_adjacent), the output of class k of a run of
 * adjacent rows is a run of adjacent values too: out_j = (x_j - M_j) - log S_j reads and
 * writes both arrays contiguously, one class after the other, as a copy does. Each value
 * takes the formula dc_log_softmax_of_state gives class k of a contiguous row (its vector exp
 * for k below the row's last whole vector pair, the scalar exp after), so the bits are the
 * class-last ones. */

#define DC_FN(name) DC_ISA_NAME(name, DC_SFX)
#ifdef DC_HAVE_VEC
#define DC_VD DC_ISA_NAME(dc_v, f64)
#define DC_VDLEN ((ptrdiff_t)(sizeof(DC_VD) / sizeof(double)))
#define DC_VLOAD2 DC_ISA_NAME(dc_vload2, DC_SFX)
#define DC_VSTORE2 DC_ISA_NAME(dc_vstore2, DC_SFX)
#define DC_ADJS_PAIR (2 * sizeof(DC_VD) / sizeof(double)) /* values in a vector pair */
#endif

#ifdef DC_HAVE_VEC
/* One vector pair of dc_log_softmax_adjacent's outputs: values x[0 .. 2·DC_VDLEN) with
 * their rows' m and c, in dc_log_softmax_vec's formulas (its vector exp with
 * `exponentiate`). */
DC_TARGET DC_VINLINE void DC_FN(dc_log_softmax_adjacent_pair)(const DC_T *x, const double *m,
                                                              const double *c,
                                                              int exponentiate, DC_T *out)
{
    DC_VD lo, hi, mlo, mhi, clo, chi;
    DC_VLOAD2(x, &lo, &hi);
    memcpy(&mlo, m, sizeof mlo);
    memcpy(&mhi, m + DC_VDLEN, sizeof mhi);
    memcpy(&clo, c, sizeof clo);
    memcpy(&chi, c + DC_VDLEN, sizeof chi);
    if (exponentiate)
        DC_VSTORE2(out, DC_FN(dc_vdexp_rounded)(lo - mlo) * clo,
                   DC_FN(dc_vdexp_rounded)(hi - mhi) * chi);
    else
        DC_VSTORE2(out, (lo - mlo) - clo, (hi - mhi) - chi);
}
#endif

/* Class k (of n) of rows j < count adjacent in memory, x[j] into out[j], from each row's max
 * m[j] and c[j] (log S, or 1/S with `exponentiate`; NaN for a row without a distribution,
 * whose values come out NaN): out_j = (x_j - m_j) - c_j, or exp(x_j - m_j)·c_j, in double,
 * rounded once. */
DC_TARGET DC_ENTRY void DC_FN(dc_log_softmax_adjacent)(const DC_T *x, ptrdiff_t count,
                                                        ptrdiff_t k, ptrdiff_t n,
                                                        const double *m, const double *c,
                                                        int exponentiate, DC_T *out)
{
    ptrdiff_t j = 0;
#ifdef DC_HAVE_VEC
    const ptrdiff_t step = DC_ADJS_PAIR;
    /* dc_log_softmax_vec takes classes below n - n % step, the scalar loop the rest */
    const int vec_exp = k < n - n % step;
    if (!exponentiate || vec_exp) {
        for (; j + step <= count; j += step)
            DC_FN(dc_log_softmax_adjacent_pair)(x + j, m + j, c + j, exponentiate, out + j);
        if (exponentiate && j < count) {
            /* the last rows through one padded vector pair: the vector exp's bits */
            DC_T tx[DC_ADJS_PAIR], to[DC_ADJS_PAIR];
            double tm[DC_ADJS_PAIR], tc[DC_ADJS_PAIR];
            const ptrdiff_t left = count - j;
            for (ptrdiff_t l = 0; l < step; l++) {
                tx[l] = l < left ? x[j + l] : 0;
                tm[l] = l < left ? m[j + l] : 0.0;
                tc[l] = l < left ? c[j + l] : 0.0;
            }
            DC_FN(dc_log_softmax_adjacent_pair)(tx, tm, tc, 1, to);
            for (ptrdiff_t l = 0; l < left; l++) out[j + l] = to[l];
            return;
        }
    }
#else
    (void)k;
    (void)n;
#endif
    if (exponentiate)
        for (; j < count; j++) out[j] = (DC_T)(dc_exp_f64((double)x[j] - m[j]) * c[j]);
    else
        for (; j < count; j++) out[j] = (DC_T)(((double)x[j] - m[j]) - c[j]);
}

#ifdef DC_HAVE_VEC
#undef DC_VD
#undef DC_VDLEN
#undef DC_VLOAD2
#undef DC_VSTORE2
#undef DC_ADJS_PAIR
#endif
#undef DC_FN
