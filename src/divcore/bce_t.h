/* divcore/bce_t.h: binary cross-entropy on logits over 1-d operands, in double lanes.
 * Part of the type-generic body of losses.h, included by losses_t.h (DC_T, DC_SFX, DC_FN and
 * the DC_VD* macros defined there). Not to be included on its own.
 *
 * The loss of one element is dc_bce_logit's (losses.h),
 *     l = w·[a·softplus(-x) + b·softplus(x)],   a = pw·y,  b = 1 - y,
 * with both softplus from one exp and one log1p:
 *     L = log1p(e^-|x|),   softplus(x) = max(x, 0) + L,   softplus(-x) = max(-x, 0) + L,
 * the exp and log1p those of the vector kernels (simd_t.h: dc_vexp_nonpos, dc_vlog1p), so a
 * value is the same whatever the operands' strides: every element, the last partial block
 * too, goes through the same vector code. A term whose coefficient is exactly 0 is 0 (x = +inf
 * with y = 1 gives 0, not NaN); a NaN logit gives NaN in every term it enters. */

#ifdef DC_HAVE_VEC
/* The loss of each lane (before the weight w). */
DC_TARGET DC_VINLINE DC_VD DC_FN(dc_bce_lanes)(DC_VD x, DC_VD y, DC_VD pw)
{
    const DC_VD zero = {0};
    const DC_VD ax = DC_VDSEL(x < zero, zero - x, x);
    DC_VD l = DC_ISA_NAME(dc_vlog1p, f64)(DC_ISA_NAME(dc_vexp_nonpos, f64)(zero - ax));
    l = DC_VDSEL(x != x, x, l); /* dc_vlog1p does not keep a NaN */
    const DC_VD sp_pos = DC_VDSEL(x > zero, x, zero) + l;
    const DC_VD sp_neg = DC_VDSEL(x < zero, zero - x, zero) + l;
    const DC_VD a = pw * y, b = 1.0 - y;
    return DC_VDSEL(a != zero, a * sp_neg, zero) + DC_VDSEL(b != zero, b * sp_pos, zero);
}

/* Values i .. i + m of an operand (stride s bytes) as 2·DC_VDLEN contiguous values: in place
 * when they are a whole contiguous block, else copied into buf with `pad` after the m-th. */
DC_TARGET DC_VINLINE const DC_T *DC_FN(dc_bce_block)(const DC_T *v, ptrdiff_t s, ptrdiff_t i,
                                                     ptrdiff_t m, DC_T pad, DC_T *buf)
{
    if (m == 2 * DC_VDLEN && s == (ptrdiff_t)sizeof(DC_T)) return v + i;
    for (ptrdiff_t j = 0; j < m; j++) buf[j] = *(const DC_T *)((const char *)v + (i + j) * s);
    for (ptrdiff_t j = m; j < 2 * DC_VDLEN; j++) buf[j] = pad;
    return buf;
}
#endif

/* Binary cross-entropy of n elements: x (logits), y (targets), w (weights, NULL: 1) and pw
 * (positive-class weights, NULL: 1), each with its stride in bytes (0 for a broadcast
 * value). Each element's loss into out (stride so bytes) unless out is NULL; returns their
 * sum, in 2·DC_VDLEN double lanes then across the lanes in order (the portable build
 * without vectors: in element order). */
DC_TARGET DC_ENTRY double DC_FN(dc_bce_values)(const DC_T *x, ptrdiff_t sx, const DC_T *y,
                                               ptrdiff_t sy, const DC_T *w, ptrdiff_t sw,
                                               const DC_T *pw, ptrdiff_t spw, ptrdiff_t n,
                                               double *out, ptrdiff_t so)
{
#ifdef DC_HAVE_VEC
#define DC_BCE_W (2 * DC_VDLEN)
    const DC_VD zero = {0}, one = zero + 1.0;
    DC_T bx[DC_BCE_W], by[DC_BCE_W], bw[DC_BCE_W], bp[DC_BCE_W];
    DC_VD acc0 = zero, acc1 = zero;
    for (ptrdiff_t i = 0; i < n; i += DC_BCE_W) {
        const ptrdiff_t m = n - i < DC_BCE_W ? n - i : DC_BCE_W;
        /* the padding (x = 0, y = 1, pw = 0, w = 0) makes a loss of exactly +0 */
        DC_VD x0, x1, y0, y1, p0 = one, p1 = one;
        DC_VLOAD2(DC_FN(dc_bce_block)(x, sx, i, m, (DC_T)0, bx), &x0, &x1);
        DC_VLOAD2(DC_FN(dc_bce_block)(y, sy, i, m, (DC_T)1, by), &y0, &y1);
        if (pw != NULL) {
            DC_VLOAD2(DC_FN(dc_bce_block)(pw, spw, i, m, (DC_T)0, bp), &p0, &p1);
        } else if (m < DC_BCE_W) {
            for (ptrdiff_t j = 0; j < DC_BCE_W; j++) bp[j] = (DC_T)(j < m);
            DC_VLOAD2(bp, &p0, &p1);
        }
        DC_VD l0 = DC_FN(dc_bce_lanes)(x0, y0, p0), l1 = DC_FN(dc_bce_lanes)(x1, y1, p1);
        if (w != NULL) {
            DC_VD w0, w1;
            DC_VLOAD2(DC_FN(dc_bce_block)(w, sw, i, m, (DC_T)0, bw), &w0, &w1);
            l0 = w0 * l0;
            l1 = w1 * l1;
        }
        acc0 += l0;
        acc1 += l1;
        if (out != NULL) {
            if (m == DC_BCE_W && so == (ptrdiff_t)sizeof(double)) {
                *(DC_VD *)(out + i) = l0;
                *(DC_VD *)(out + i + DC_VDLEN) = l1;
            } else {
                for (ptrdiff_t j = 0; j < m; j++)
                    *(double *)((char *)out + (i + j) * so) =
                        j < DC_VDLEN ? l0[j] : l1[j - DC_VDLEN];
            }
        }
    }
    const DC_VD acc = acc0 + acc1;
    double total = 0.0;
    for (ptrdiff_t j = 0; j < DC_VDLEN; j++) total += acc[j];
    return total;
#undef DC_BCE_W
#else
    double total = 0.0;
    for (ptrdiff_t i = 0; i < n; i++) {
        const double xi = (double)*(const DC_T *)((const char *)x + i * sx);
        const double yi = (double)*(const DC_T *)((const char *)y + i * sy);
        const double pi = pw != NULL ? (double)*(const DC_T *)((const char *)pw + i * spw) : 1.0;
        double l = dc_bce_logit(xi, yi, pi);
        if (w != NULL) l = (double)*(const DC_T *)((const char *)w + i * sw) * l;
        if (out != NULL) *(double *)((char *)out + i * so) = l;
        total += l;
    }
    return total;
#endif
}
