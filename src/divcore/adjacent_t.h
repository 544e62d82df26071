/* divcore/adjacent_t.h: the log-sum-exp scan of rows that lie next to each other in memory
 * while their classes are strided (a (C, N) array read along axis 0, torch's (B, C, d)
 * along axis 1), read in place, one row per vector lane (type-generic body of rows.h and
 * of each instruction set in dispatch.h; DC_T, DC_SFX defined).
 *
 * Value c of row j lies at x + j + c·cs/size: class c of a group of adjacent rows is one
 * contiguous vector. A row-by-row kernel would need each row gathered (a transposing copy
 * of the whole array); here the rows are scanned where they lie, DC_ADJ_ROWS rows (a cache
 * line's worth) at a time, with dc_lse_update's arithmetic mirrored lane by lane, so each
 * row's state has exactly the bits dc_lse_scan gives its contiguous copy:
 *   - the same blocks of DC_BLOCK classes, the same block max (skipping NaN), the same
 *     raise of the running max (dc_lse_raise_max, per lane), the same all -inf / NaN rule;
 *   - the same exp of each value, added to the same accumulator: dc_block_expsum sends
 *     value i of a block to lane i % DC_VLEN of vector (i / DC_VLEN) % DC_VACC, so here
 *     slot i % (DC_VACC·DC_VLEN) of an array of DC_VACC·DC_VLEN vectors (one row per lane)
 *     takes it, in the same order; a block's last partial vector is padded with -inf there,
 *     so its missing values add exp(-inf - M) here too;
 *   - the same reduction: (r0 + r1) + (r2 + r3) per lane in DC_T, the lanes pairwise in
 *     double (dc_vsum_pairwise), dc_sum_add into the row's compensated sum; the values
 *     equal to M are counted in one vector (counts up to DC_BLOCK are exact in any order).
 * Only a zero max can differ, in its sign, where a block holds both +0 and -0. */

#define DC_FN(name) DC_ISA_NAME(name, DC_SFX)

#ifdef DC_HAVE_VEC
#define DC_VACC 4 /* dc_block_expsum's accumulators (lse_t.h) */
#define DC_ADJ_SLOTS (DC_VACC * DC_VLEN)
/* vectors per class of a group: a cache line of rows, so every line read is used (two
 * lines, the pair the L2 fetches together, measured slower: the group's copy no longer
 * stays in L1) */
#define DC_ADJ_UNITS (64 / (ptrdiff_t)sizeof(DC_V))
#define DC_ADJ_ROWS (DC_ADJ_UNITS * DC_VLEN)
#define DC_ADJ_AHEAD 32 /* classes ahead to prefetch: about as many lines as L2 keeps in flight */

/* Class c of rows x .. x + lanes - 1 (lanes ≤ DC_VLEN) as a vector, -inf past `lanes`. */
DC_TARGET DC_VINLINE DC_V DC_FN(dc_adj_load)(const DC_T *x, ptrdiff_t lanes)
{
    return lanes >= DC_VLEN ? *(const DC_V *)x : DC_ISA_NAME(dc_vload_tail, DC_SFX)(x, lanes);
}

/* Σ of DC_VLEN values held lane by lane in s[], added as dc_vsum_pairwise adds a vector's
 * lanes (its very code: the vector built from them). */
DC_TARGET DC_INLINE double DC_FN(dc_adj_pairwise)(const DC_T *s)
{
    DC_V v;
    memcpy(&v, s, sizeof v);
    return DC_FN(dc_vsum_pairwise)(v);
}

/* Class c of the group into col[u][c], and into the lanes' running max b (NaN skipped, as
 * dc_block_max_skip_nan does), the line DC_ADJ_AHEAD classes on asked for. */
DC_TARGET DC_VINLINE void DC_FN(dc_adj_copy_class)(const char *p, ptrdiff_t cs, int ahead,
                                                   ptrdiff_t lanes, ptrdiff_t units,
                                                   DC_V *col, ptrdiff_t c, DC_V *b)
{
    if (ahead) __builtin_prefetch(p + DC_ADJ_AHEAD * cs, 0, 2);
    for (ptrdiff_t u = 0; u < units; u++) {
        const DC_V v = DC_FN(dc_adj_load)((const DC_T *)p + u * DC_VLEN, lanes - u * DC_VLEN);
        col[u * DC_BLOCK + c] = v;
        b[u] = DC_VMAX_KEEP(v, b[u]);
    }
}

/* One group of `lanes` ≤ DC_ADJ_ROWS adjacent rows (row j at x + j, class c at
 * c·cs bytes further), each folded into st[j] as dc_lse_update folds a row.
 *
 * Each block is copied into col as it is read (its lines lie a multiple of 4 KiB apart, in
 * the same few cache sets, so they would not stay cached for the exp pass), and the next
 * block is read while this one's exps are computed, so that memory and arithmetic overlap
 * (the hardware prefetchers do not follow a stride of many KiB: each line is asked for
 * DC_ADJ_AHEAD classes ahead). */
DC_TARGET DC_INLINE void DC_FN(dc_lse_adjacent_group)(const DC_T *x, ptrdiff_t n,
                                                       ptrdiff_t cs, ptrdiff_t lanes,
                                                       dc_lse_state *st)
{
    const DC_V zero = {0}, one = zero + 1, ninf = zero - (DC_T)INFINITY;
    const ptrdiff_t units = (lanes + DC_VLEN - 1) / DC_VLEN;
    const char *base = (const char *)x;
    DC_V col[2][DC_ADJ_UNITS * DC_BLOCK];
    DC_V r[DC_ADJ_UNITS][DC_ADJ_SLOTS], k[DC_ADJ_UNITS];
    DC_V b[DC_ADJ_UNITS], bn[DC_ADJ_UNITS], mu[DC_ADJ_UNITS];
    DC_T rs[sizeof(DC_V) / sizeof(DC_T)][sizeof(DC_V) / sizeof(DC_T)];
    DC_T m[DC_ADJ_ROWS];
    int live[DC_ADJ_ROWS];
    int cur = 0;
    for (ptrdiff_t u = 0; u < DC_ADJ_UNITS; u++) b[u] = bn[u] = mu[u] = ninf;
    /* the first block */
    for (ptrdiff_t c = 0; c < n && c < DC_BLOCK; c++)
        DC_FN(dc_adj_copy_class)(base + c * cs, cs, c + DC_ADJ_AHEAD < n, lanes, units,
                                 col[cur], c, b);
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK, cur ^= 1) {
        const ptrdiff_t len = n - start < DC_BLOCK ? n - start : DC_BLOCK;
        const DC_V *cv = col[cur];
        /* the next block (read in the exp loop): len == DC_BLOCK when there is one */
        const ptrdiff_t nstart = start + DC_BLOCK;
        const ptrdiff_t nlen = nstart >= n ? 0 : n - nstart < DC_BLOCK ? n - nstart : DC_BLOCK;
        const char *nblk = base + nstart * cs;
        DC_V *nv = col[cur ^ 1];
        for (ptrdiff_t u = 0; u < units; u++) bn[u] = ninf;
        /* dc_lse_update's per-block bookkeeping, lane by lane */
        int any = 0;
        for (ptrdiff_t j = 0; j < lanes; j++) {
            const DC_T bj = b[j / DC_VLEN][j % DC_VLEN];
            live[j] = 0;
            m[j] = 0;
            if (st[j].nan) continue;
            if (!(bj > -INFINITY)) { /* every exp is 0, unless there is a NaN */
                for (ptrdiff_t c = 0; c < len; c++) {
                    const DC_T v = cv[(j / DC_VLEN) * DC_BLOCK + c][j % DC_VLEN];
                    if (v != v) { st[j].nan = 1; break; }
                }
                continue;
            }
            if (bj > st[j].max) dc_lse_raise_max(&st[j], (double)bj);
            m[j] = (DC_T)st[j].max;
            live[j] = 1;
            any = 1;
        }
        if (!any) {
            for (ptrdiff_t c = 0; c < nlen; c++)
                DC_FN(dc_adj_copy_class)(nblk + c * cs, cs, nstart + c + DC_ADJ_AHEAD < n,
                                         lanes, units, nv, c, bn);
            for (ptrdiff_t u = 0; u < units; u++) b[u] = bn[u];
            continue;
        }
        /* dc_block_expsum, each value into its slot */
        for (ptrdiff_t u = 0; u < units; u++) {
            memcpy(&mu[u], m + u * DC_VLEN, sizeof mu[u]);
            k[u] = zero;
            for (ptrdiff_t s = 0; s < DC_ADJ_SLOTS; s++) r[u][s] = zero;
        }
        for (ptrdiff_t u = 0; u < units; u++) {
            const DC_V mv = mu[u];
            DC_V *ru = r[u], kv = zero;
            const DC_V *cu = cv + u * DC_BLOCK;
            for (ptrdiff_t c = 0; c < len; c++) {
                if (u == 0 && c < nlen)
                    DC_FN(dc_adj_copy_class)(nblk + c * cs, cs, nstart + c + DC_ADJ_AHEAD < n,
                                             lanes, units, nv, c, bn);
                const DC_V v = cu[c];
                const DC_VI top = v == mv;
                ru[c % DC_ADJ_SLOTS] += DC_VSEL(top, zero, DC_VEXP_NONPOS(v - mv));
                kv += DC_VSEL(top, one, zero);
            }
            k[u] = kv;
        }
        for (ptrdiff_t u = 0; u < units; u++) {
            /* the -inf padding of dc_block_expsum's last partial vector */
            const DC_V pad = DC_VSEL(ninf == mu[u], zero, DC_VEXP_NONPOS(ninf - mu[u]));
            for (ptrdiff_t c = len; c % DC_VLEN != 0; c++) r[u][c % DC_ADJ_SLOTS] += pad;
        }
        for (ptrdiff_t u = 0; u < units; u++) b[u] = bn[u];
        /* (r0 + r1) + (r2 + r3) per lane, then each row's lanes pairwise into its sum */
        for (ptrdiff_t u = 0; u < units; u++) {
            for (ptrdiff_t l = 0; l < DC_VLEN; l++) {
                const DC_V rl = (r[u][l] + r[u][DC_VLEN + l]) +
                                (r[u][2 * DC_VLEN + l] + r[u][3 * DC_VLEN + l]);
                for (ptrdiff_t q = 0; q < DC_VLEN; q++) rs[q][l] = rl[q];
            }
            for (ptrdiff_t q = 0; q < DC_VLEN && u * DC_VLEN + q < lanes; q++) {
                dc_lse_state *sj = &st[u * DC_VLEN + q];
                if (!live[u * DC_VLEN + q]) continue;
                dc_sum_add(&sj->rest, &sj->rest_c, DC_FN(dc_adj_pairwise)(rs[q]));
                sj->at_max += (double)k[u][q];
                if (sj->rest != sj->rest) sj->nan = 1;
            }
        }
    }
}

#undef DC_VACC
#undef DC_ADJ_SLOTS
#endif /* DC_HAVE_VEC */

/* Rows x .. x + count - 1, adjacent in memory, their class c at c·cs bytes from the row's
 * first value (cs > 0): each folded into st[0 .. count) as dc_lse_update folds a
 * contiguous row (st initialised by the caller: dc_lse_init). */
DC_TARGET DC_ENTRY void DC_FN(dc_lse_scan_adjacent)(const DC_T *x, ptrdiff_t n, ptrdiff_t cs,
                                                     ptrdiff_t count, dc_lse_state *st)
{
#ifdef DC_HAVE_VEC
    for (ptrdiff_t g = 0; g < count; g += DC_ADJ_ROWS)
        DC_FN(dc_lse_adjacent_group)(x + g, n, cs, count - g < DC_ADJ_ROWS ? count - g
                                                                            : DC_ADJ_ROWS,
                                     st + g);
#else
    /* no vectors: each row a block at a time through a buffer, into dc_lse_update */
    DC_T buf[DC_BLOCK];
    for (ptrdiff_t j = 0; j < count; j++)
        for (ptrdiff_t start = 0; start < n; start += DC_BLOCK) {
            const ptrdiff_t len = n - start < DC_BLOCK ? n - start : DC_BLOCK;
            for (ptrdiff_t c = 0; c < len; c++)
                buf[c] = *(const DC_T *)((const char *)(x + j) + (start + c) * cs);
            DC_FN(dc_lse_update)(&st[j], buf, len);
        }
#endif
}

#ifdef DC_HAVE_VEC
#undef DC_ADJ_UNITS
#undef DC_ADJ_ROWS
#undef DC_ADJ_AHEAD
#endif
#undef DC_FN
