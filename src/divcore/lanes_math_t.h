/* divcore/lanes_math_t.h: the lane helpers of the short-row kernels beyond the
 * log-sum-exp (lanes_soft_t.h, lanes_js_t.h, lanes_grad_t.h): columns of DC_T lanes as
 * double vectors, and log, log1p, expm1 in double lanes for the terms the long-row kernels
 * take from the C library a value at a time. Type-generic body (DC_T, DC_SFX, DC_ISA_NAME,
 * DC_TARGET defined); included before the kernels that use it (isa_t.h, lanes_more.h). */

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

/* log x in double lanes, x ≥ 0 (NaN stays NaN, log 0 = -inf, negative: NaN), and
 * log x + corr: simd_log_t.h's dc_vlog_corr (< 1 ulp; subnormal x scaled first). The
 * long-row kernels take the C library's log of a target entry; this is the same function
 * within an ulp. */
DC_TARGET DC_VINLINE DC_VD DC_FN(dc_lanes_vlog_corr)(DC_VD x, DC_VD corr)
{
    return DC_ISA_NAME(dc_vlog_corr, f64)(x, corr);
}

DC_TARGET DC_VINLINE DC_VD DC_FN(dc_lanes_vlog)(DC_VD x)
{
    const DC_VD zero = {0};
    return DC_FN(dc_lanes_vlog_corr)(x, zero);
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

/* The reduction of a ≥ 0 (finite) for the logs below: a = 2^k·f, f1 = f - 1, k as a
 * double, 2^-k (0 for k ≥ 1023, where the correction is negligible) and (2 + f1)·f, the
 * denominator of s and of the correction. */
DC_TARGET DC_VINLINE void DC_FN(dc_lanes_vlog_reduce)(DC_VD a, DC_VD *f1, DC_VD *kd, DC_VD *sc,
                                                      DC_VD *den)
{
    typedef DC_ISA_NAME(dc_vi, f64) vdi;
    const DC_VD zero = {0};
    const vdi hx = (vdi)a;
    const vdi k = (hx - (int64_t)0x3fe6a09e667f3bcdLL) >> 52; /* f = a / 2^k ∈ [√½, √2) */
    const DC_VD f = (DC_VD)(hx - (k << 52));
    *kd = ((DC_VD)(k + (int64_t)0x4338000000000000LL) - 6755399441055744.0);
    *sc = DC_VDSEL(k >= 1023, zero, (DC_VD)(((int64_t)1023 - k) << 52));
    *f1 = f - 1.0;
    *den = (*f1 + 2.0) * f;
}

/* log(a + c) from dc_lanes_vlog_reduce's parts of a and inv_den ≈ 1/den. */
DC_TARGET DC_VINLINE DC_VD DC_FN(dc_lanes_vlog_finish)(DC_VD a, DC_VD c, DC_VD f1, DC_VD kd,
                                                       DC_VD sc, DC_VD inv_den)
{
    const DC_VD zero = {0};
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const DC_VD f = f1 + 1.0;
    const DC_VD s = f1 * f * inv_den, z = s * s, h = 0.5 * f1 * f1;
    const DC_VD corr = c * sc * (f1 + 2.0) * inv_den;
    DC_VD R = zero + 1.479819860511658591e-01;
    R = R * z + 1.531383769920937332e-01;
    R = R * z + 1.818357216161805012e-01;
    R = R * z + 2.222219843214978396e-01;
    R = R * z + 2.857142874366239149e-01;
    R = R * z + 3.999999999940941908e-01;
    R = R * z + 6.666666666666735130e-01;
    R = R * z;
    const DC_VD r = kd * ln2_hi + (f1 - (h - (s * (h + R) + (kd * ln2_lo + corr))));
    return DC_VDSEL(a == zero, zero - INFINITY, r);
}

/* log(a + ca) and log(b + cb) in double lanes, with one division for both (JS,
 * lanes_js_t.h, takes two per value): a, b > 0 finite or 0 (log 0 = -inf), ca and cb
 * corrections below an ulp of a and b (what a rounded 1 + u misses of it, for log1p).
 * dc_lanes_vlog1p's reduction,
 *     a = 2^k·f,  log(a + ca) = k·ln 2 + log f + ca/a,
 *     log f = f1 - h + s·(h + R),   s = f1 / (2 + f1),
 * with s and ca/a = ca·2^-k / f both taken from 1/((2 + f1)·f) and b's from the same
 * reciprocal of the product (a few roundings more in s, whose term is below 5% of log f,
 * and in the correction); R is fdlibm's minimax polynomial for |s| ≤ 0.1716
 * (|error| < 2^-58.45). */
DC_TARGET DC_VINLINE void DC_FN(dc_lanes_vlog_pair)(DC_VD a, DC_VD ca, DC_VD b, DC_VD cb,
                                                     DC_VD *la, DC_VD *lb)
{
    DC_VD f1a, kda, sca, da, f1b, kdb, scb, db;
    DC_FN(dc_lanes_vlog_reduce)(a, &f1a, &kda, &sca, &da);
    DC_FN(dc_lanes_vlog_reduce)(b, &f1b, &kdb, &scb, &db);
    const DC_VD inv = 1.0 / (da * db);
    *la = DC_FN(dc_lanes_vlog_finish)(a, ca, f1a, kda, sca, db * inv);
    *lb = DC_FN(dc_lanes_vlog_finish)(b, cb, f1b, kdb, scb, da * inv);
}

/* log(a + ca) alone, as dc_lanes_vlog_pair computes each (one division). */
DC_TARGET DC_VINLINE DC_VD DC_FN(dc_lanes_vlog_one)(DC_VD a, DC_VD ca)
{
    DC_VD f1, kd, sc, den;
    DC_FN(dc_lanes_vlog_reduce)(a, &f1, &kd, &sc, &den);
    return DC_FN(dc_lanes_vlog_finish)(a, ca, f1, kd, sc, 1.0 / den);
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

/* log of each lane of a column: divcore's vector log of the column's own precision (float:
 * < 1 ulp over every positive float32), what the long-row kernels take for a probability
 * target's log (soft_target_t.h), so that short and long rows compute the same terms. */
DC_TARGET DC_VINLINE DC_V DC_FN(dc_lanes_log)(DC_V v)
{
    return DC_VLOG(v);
}

#undef DC_NH
#undef DC_VDSEL
#undef DC_VDI
#undef DC_VDLEN
#undef DC_VD
#endif

#undef DC_FN
