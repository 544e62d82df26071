/* divcore/lse_t.h: the type-generic body of lse.h, included once per type with
 * DC_T (float, double) and DC_SFX (f32, f64) defined, and once more per instruction set
 * by dispatch.h (DC_ISA, DC_TARGET). Not to be included on its own. */

#define DC_FN(name) DC_ISA_NAME(name, DC_SFX)
#define DC_EXP DC_CAT(dc_exp, DC_SFX)

#ifdef DC_HAVE_VEC
#define DC_VACC 4

/* The last n < DC_VLEN values of a block as a vector, the missing lanes -inf (simd_t.h):
 * a -inf lane is never the max and its exp is 0, so short rows stay in vector code. */
#define DC_VLOAD_TAIL DC_ISA_NAME(dc_vload_tail, DC_SFX)

/* Σ of a vector's lanes in double, pairwise (halving), so equal lanes add exactly. */
DC_TARGET DC_INLINE double DC_FN(dc_vsum_pairwise)(DC_V v)
{
    double lanes[sizeof(DC_V) / sizeof(DC_T)];
    ptrdiff_t len = DC_VLEN;
    for (ptrdiff_t j = 0; j < len; j++) lanes[j] = (double)v[j];
    for (; len > 1; len /= 2)
        for (ptrdiff_t j = 0; j < len / 2; j++) lanes[j] = lanes[2 * j] + lanes[2 * j + 1];
    return lanes[0];
}

/* The block's max into *out; returns 1 if the block holds a NaN. */
DC_TARGET DC_INLINE int DC_FN(dc_block_max)(const DC_T *x, ptrdiff_t n, DC_T *out)
{
    const DC_V zero = {0};
    DC_V m = zero - (DC_T)INFINITY;
    DC_VI nan = {0};
    const ptrdiff_t whole = n - n % DC_VLEN;
    for (ptrdiff_t i = 0; i < whole; i += DC_VLEN) {
        const DC_V v = *(const DC_V *)(x + i);
        nan |= v != v;
        m = DC_VSEL(v > m, v, m);
    }
    if (whole < n) {
        const DC_V v = DC_VLOAD_TAIL(x + whole, n - whole);
        nan |= v != v;
        m = DC_VSEL(v > m, v, m);
    }
    int bad = 0;
    DC_T best = -INFINITY;
    for (int j = 0; j < DC_VLEN; j++) {
        bad |= nan[j] != 0;
        best = m[j] > best ? m[j] : best;
    }
    *out = best;
    return bad;
}

/* The block's max over its values other than NaN (-inf if there are none): the NaN test
 * is left to the exp-sum, where a NaN reaches the sum by itself (dc_lse_update), so this
 * pass is one max instruction per vector. */
DC_TARGET DC_INLINE DC_T DC_FN(dc_block_max_skip_nan)(const DC_T *x, ptrdiff_t n)
{
    const DC_V zero = {0};
    DC_V m = zero - (DC_T)INFINITY;
    const ptrdiff_t whole = n - n % DC_VLEN;
    for (ptrdiff_t i = 0; i < whole; i += DC_VLEN) m = DC_VMAX_KEEP(*(const DC_V *)(x + i), m);
    if (whole < n) m = DC_VMAX_KEEP(DC_VLOAD_TAIL(x + whole, n - whole), m);
    DC_T best = -INFINITY;
    for (int j = 0; j < DC_VLEN; j++) best = m[j] > best ? m[j] : best;
    return best;
}

/* For a block below or at the running max m: how many values equal m (each contributes
 * exp(0) = 1 exactly: counted, not summed), and Σ exp(x - m) over the others, summed in
 * vector lanes of the input's precision, then pairwise across lanes and added to the
 * row's compensated sum once per block. Most blocks of a long row lie strictly below the
 * max (`below`): they hold no value to count, and skip the compare. */
DC_TARGET DC_INLINE void DC_FN(dc_block_expsum)(const DC_T *x, ptrdiff_t n, DC_T m,
                                                   int below, dc_lse_state *st)
{
    /* DC_VACC independent accumulators: short dependency chains, and few additions per
     * lane even for the 2-lane SSE2 double vectors (so rounding does not pile up). */
    const DC_V zero = {0}, one = zero + 1;
    DC_V r[DC_VACC], k[DC_VACC];
    for (int a = 0; a < DC_VACC; a++) { r[a] = zero; k[a] = zero; }
    const ptrdiff_t step = DC_VACC * DC_VLEN, whole = n - n % step;
    ptrdiff_t i = 0;
    if (below) {
        for (; i < whole; i += step)
            for (int a = 0; a < DC_VACC; a++)
                r[a] += DC_VEXP_NONPOS(*(const DC_V *)(x + i + a * DC_VLEN) - m);
    } else {
        for (; i < whole; i += step) {
            for (int a = 0; a < DC_VACC; a++) {
                const DC_V v = *(const DC_V *)(x + i + a * DC_VLEN);
                const DC_VI top = v == m;
                r[a] += DC_VSEL(top, zero, DC_VEXP_NONPOS(v - m));
                k[a] += DC_VSEL(top, one, zero);
            }
        }
    }
    for (int a = 0; i < n; i += DC_VLEN, a = (a + 1) % DC_VACC) {
        const DC_V v = n - i >= DC_VLEN ? *(const DC_V *)(x + i)
                                        : DC_VLOAD_TAIL(x + i, n - i);
        const DC_VI top = v == m;
        r[a] += DC_VSEL(top, zero, DC_VEXP_NONPOS(v - m));
        k[a] += DC_VSEL(top, one, zero);
    }
    const DC_V rsum = (r[0] + r[1]) + (r[2] + r[3]), ksum = (k[0] + k[1]) + (k[2] + k[3]);
    dc_sum_add(&st->rest, &st->rest_c, DC_FN(dc_vsum_pairwise)(rsum));
    st->at_max += DC_FN(dc_vsum_pairwise)(ksum);
}

#undef DC_VACC
#undef DC_VLOAD_TAIL
#else
/* The block's max into *out; returns 1 if the block holds a NaN. A NaN sticks in its lane
 * (nothing compares greater than it), so one pass finds both. */
DC_TARGET DC_INLINE int DC_FN(dc_block_max)(const DC_T *x, ptrdiff_t n, DC_T *out)
{
    DC_T m[DC_LANES];
    for (int j = 0; j < DC_LANES; j++) m[j] = -INFINITY;
    ptrdiff_t i = 0;
    for (; i + DC_LANES <= n; i += DC_LANES) {
        for (int j = 0; j < DC_LANES; j++) {
            const DC_T v = x[i + j];
            m[j] = ((v > m[j]) | (v != v)) ? v : m[j];
        }
    }
    for (; i < n; i++) {
        const DC_T v = x[i];
        m[0] = ((v > m[0]) | (v != v)) ? v : m[0];
    }
    int nan = 0;
    DC_T best = -INFINITY;
    for (int j = 0; j < DC_LANES; j++) {
        nan |= m[j] != m[j];
        best = m[j] > best ? m[j] : best;
    }
    *out = best;
    return nan;
}

/* The block's max over its values other than NaN (-inf if there are none). */
DC_TARGET DC_INLINE DC_T DC_FN(dc_block_max_skip_nan)(const DC_T *x, ptrdiff_t n)
{
    DC_T m[DC_LANES];
    for (int j = 0; j < DC_LANES; j++) m[j] = -INFINITY;
    ptrdiff_t i = 0;
    for (; i + DC_LANES <= n; i += DC_LANES)
        for (int j = 0; j < DC_LANES; j++) m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
    for (; i < n; i++) m[0] = x[i] > m[0] ? x[i] : m[0];
    DC_T best = -INFINITY;
    for (int j = 0; j < DC_LANES; j++) best = m[j] > best ? m[j] : best;
    return best;
}

/* e_i = exp(x_i - m) into e, except 0 where x_i == m (those are counted, not summed): a
 * plain map, which compilers vectorise with the exp inlined. */
DC_TARGET DC_INLINE void DC_FN(dc_block_exp_below)(const DC_T *x, ptrdiff_t n, DC_T m,
                                                      DC_T *e)
{
    for (ptrdiff_t i = 0; i < n; i++) e[i] = x[i] == m ? (DC_T)0 : DC_EXP(x[i] - m);
}

/* For a block below or at the running max M: how many values equal M, and Σ exp(x - M)
 * over the others, summed in DC_T lanes. */
DC_TARGET DC_INLINE void DC_FN(dc_block_expsum)(const DC_T *x, ptrdiff_t n, DC_T m,
                                                   int below, dc_lse_state *st)
{
    (void)below;
    DC_T e[DC_BLOCK];
    DC_FN(dc_block_exp_below)(x, n, m, e);
    DC_T r[DC_LANES], k[DC_LANES];
    for (int j = 0; j < DC_LANES; j++) { r[j] = 0; k[j] = 0; }
    ptrdiff_t i = 0;
    for (; i + DC_LANES <= n; i += DC_LANES) {
        for (int j = 0; j < DC_LANES; j++) {
            r[j] += e[i + j];
            k[j] += x[i + j] == m ? (DC_T)1 : (DC_T)0;
        }
    }
    for (; i < n; i++) {
        r[0] += e[i];
        k[0] += x[i] == m ? (DC_T)1 : (DC_T)0;
    }
    double ks = 0.0;
    for (int j = 0; j < DC_LANES; j++) {
        dc_sum_add(&st->rest, &st->rest_c, (double)r[j]);
        ks += k[j];
    }
    st->at_max += ks;
}

#endif /* DC_HAVE_VEC */

DC_TARGET DC_INLINE int DC_FN(dc_has_nan)(const DC_T *x, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        if (x[i] != x[i]) return 1;
    return 0;
}

/* Fold x[0..n) into the running state (any number of calls, in any split of the row).
 * A NaN is found without a test of its own: it is skipped by the block's max, and its
 * exp(NaN - M) = NaN then makes the block's sum NaN (the values equal to M, +inf
 * included, are counted rather than summed, so inf - inf never enters the sum). Only a
 * block with no other value than -inf and NaN is not summed, and is scanned for NaN. */
DC_TARGET DC_ENTRY void DC_FN(dc_lse_update)(dc_lse_state *st, const DC_T *x, ptrdiff_t n)
{
    if (st->nan) return;
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK) {
        ptrdiff_t len = n - start < DC_BLOCK ? n - start : DC_BLOCK;
        const DC_T *xb = x + start;
        const DC_T b = DC_FN(dc_block_max_skip_nan)(xb, len);
        if (!(b > -INFINITY)) { /* every exp is 0, unless there is a NaN */
            if (DC_FN(dc_has_nan)(xb, len)) { st->nan = 1; return; }
            continue;
        }
        const int below = b < st->max;
        if (b > st->max) dc_lse_raise_max(st, (double)b);
        DC_FN(dc_block_expsum)(xb, len, (DC_T)st->max, below, st);
        if (st->rest != st->rest) { st->nan = 1; return; }
    }
}

/* The whole row's state in one call. */
DC_TARGET DC_INLINE dc_lse_state DC_FN(dc_lse_scan)(const DC_T *x, ptrdiff_t n)
{
    dc_lse_state st;
    dc_lse_init(&st);
    DC_FN(dc_lse_update)(&st, x, n);
    return st;
}

#undef DC_EXP
#undef DC_FN
