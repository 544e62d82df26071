/* divcore/lse_t.h: the type-generic body of lse.h, included once per type with
 * DC_T (float, double) and DC_SFX (f32, f64) defined. Not to be included on its own. */

#define DC_FN(name) DC_CAT(name, DC_SFX)
#define DC_EXP DC_FN(dc_exp)

/* The block's max into *out; returns 1 if the block holds a NaN. */
static inline int DC_FN(dc_block_max)(const DC_T *x, ptrdiff_t n, DC_T *out)
{
    DC_T m[DC_LANES];
    int bad[DC_LANES];
    for (int j = 0; j < DC_LANES; j++) { m[j] = -INFINITY; bad[j] = 0; }
    ptrdiff_t i = 0;
    for (; i + DC_LANES <= n; i += DC_LANES) {
        for (int j = 0; j < DC_LANES; j++) {
            DC_T v = x[i + j];
            m[j] = v > m[j] ? v : m[j];
            bad[j] |= v != v;
        }
    }
    for (; i < n; i++) {
        DC_T v = x[i];
        m[0] = v > m[0] ? v : m[0];
        bad[0] |= v != v;
    }
    int any_bad = 0;
    DC_T best = -INFINITY;
    for (int j = 0; j < DC_LANES; j++) {
        best = m[j] > best ? m[j] : best;
        any_bad |= bad[j];
    }
    *out = best;
    return any_bad;
}

/* For a block below or at the running max M: how many values equal M, and Σ exp(x - M)
 * over the others, summed in DC_T lanes. */
static inline void DC_FN(dc_block_expsum)(const DC_T *x, ptrdiff_t n, DC_T m,
                                          double *at_max, double *rest)
{
    DC_T r[DC_LANES], k[DC_LANES];
    for (int j = 0; j < DC_LANES; j++) { r[j] = 0; k[j] = 0; }
    ptrdiff_t i = 0;
    for (; i + DC_LANES <= n; i += DC_LANES) {
        for (int j = 0; j < DC_LANES; j++) {
            DC_T v = x[i + j];
            DC_T e = DC_EXP(v - m);
            int top = v == m;
            k[j] += top;
            r[j] += top ? (DC_T)0 : e;
        }
    }
    for (; i < n; i++) {
        DC_T v = x[i];
        int top = v == m;
        k[0] += top;
        r[0] += top ? (DC_T)0 : DC_EXP(v - m);
    }
    double rs = 0.0, ks = 0.0;
    for (int j = 0; j < DC_LANES; j++) { rs += r[j]; ks += k[j]; }
    *at_max += ks;
    *rest += rs;
}

/* Fold x[0..n) into the running state (any number of calls, in any split of the row). */
static inline void DC_FN(dc_lse_update)(dc_lse_state *st, const DC_T *x, ptrdiff_t n)
{
    if (st->nan) return;
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK) {
        ptrdiff_t len = n - start < DC_BLOCK ? n - start : DC_BLOCK;
        const DC_T *xb = x + start;
        DC_T b;
        if (DC_FN(dc_block_max)(xb, len, &b)) { st->nan = 1; return; }
        if (!(b > -INFINITY)) continue; /* only -inf: every exp is 0 */
        if (b > st->max) dc_lse_raise_max(st, (double)b);
        DC_FN(dc_block_expsum)(xb, len, (DC_T)st->max, &st->at_max, &st->rest);
    }
}

/* The whole row's state in one call. */
static inline dc_lse_state DC_FN(dc_lse_scan)(const DC_T *x, ptrdiff_t n)
{
    dc_lse_state st;
    dc_lse_init(&st);
    DC_FN(dc_lse_update)(&st, x, n);
    return st;
}

#undef DC_EXP
#undef DC_FN
