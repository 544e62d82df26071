/* divcore/adjacent_logits_t.h: dc_soft_logits (cross-entropy, entropy and KL against a
 * teacher's logits) of rows adjacent in memory with a strided class axis, read in place one
 * row per vector lane, as adjacent_t.h does for the log-sum-exp (type-generic, after
 * losses_t.h; DC_T, DC_SFX defined).
 *
 * dc_logits_update's arithmetic mirrored lane by lane, so each row's result has the bits of
 * dc_soft_logits on its contiguous copy: the same blocks, block maxima and moves of the
 * normalised sums (per lane, in double, as dc_logits_update does them); in dc_logits_block,
 * value i < whole of a block goes to lane i % DC_VLEN of each of its nine vector sums, so
 * here slot s = i % DC_VLEN keeps nine vector sums (one row per lane) over i = s, s + DC_VLEN,
 * ... in the same order, and the lanes are added pairwise per row as dc_vsum_pairwise adds
 * them; the block's last len % DC_VLEN values take the scalar tail's steps per row. */

#define DC_FN(name) DC_ISA_NAME(name, DC_SFX)
#ifdef DC_HAVE_VEC
#define DC_ADJ_AHEAD 32 /* classes ahead to prefetch (adjacent_t.h) */
#define DC_ADJ_W ((ptrdiff_t)(sizeof(DC_V) / sizeof(DC_T)))

/* Class c of x's and t's rows into cx[c], ct[c] and the lanes' running maxima (NaN skipped). */
DC_TARGET DC_VINLINE void DC_FN(dc_adjl_copy_class)(const char *px, const char *pt,
                                                    ptrdiff_t xcs, ptrdiff_t tcs, int ahead,
                                                    ptrdiff_t lanes, DC_V *cx, DC_V *ct,
                                                    ptrdiff_t c, DC_V *bx, DC_V *bt)
{
    if (ahead) {
        __builtin_prefetch(px + DC_ADJ_AHEAD * xcs, 0, 2);
        __builtin_prefetch(pt + DC_ADJ_AHEAD * tcs, 0, 2);
    }
    const DC_V vx = DC_FN(dc_adj_load)((const DC_T *)px, lanes);
    const DC_V vt = DC_FN(dc_adj_load)((const DC_T *)pt, lanes);
    cx[c] = vx;
    ct[c] = vt;
    *bx = DC_VMAX_KEEP(vx, *bx);
    *bt = DC_VMAX_KEEP(vt, *bt);
}

/* One group of lanes ≤ DC_VLEN rows into s[0 .. lanes) (dc_logits_sums_init'ed), as
 * dc_logits_update(x_j, t_j, NULL, n, &s[j]) would fill them. */
DC_TARGET DC_INLINE void DC_FN(dc_logits_adjacent_group)(const DC_T *x, const DC_T *t,
                                                          ptrdiff_t n, ptrdiff_t xcs,
                                                          ptrdiff_t tcs, ptrdiff_t lanes,
                                                          dc_logits_sums *s)
{
    const double unscale = sizeof(DC_T) == sizeof(double) ? 1024.0 : 1.0;
    const DC_T sc = sizeof(DC_T) == sizeof(double) ? (DC_T)(1.0 / 1024.0) : (DC_T)1;
    const DC_V zero = {0}, one = zero + 1, ninf = zero - (DC_T)INFINITY;
    const char *xb = (const char *)x, *tb = (const char *)t;
    DC_V cx[2][DC_BLOCK], ct[2][DC_BLOCK];
    /* the nine sums of each slot: rx, kx, rt, kt, ea, c, h, k, lost */
    DC_V acc[9][DC_ADJ_W];
    DC_T lane[DC_ADJ_W];
    DC_T mxs[DC_ADJ_W], mts[DC_ADJ_W];
    double before[DC_ADJ_W];
    DC_V bx = ninf, bt = ninf, bxn = ninf, btn = ninf;
    int cur = 0;
    for (ptrdiff_t c = 0; c < n && c < DC_BLOCK; c++)
        DC_FN(dc_adjl_copy_class)(xb + c * xcs, tb + c * tcs, xcs, tcs, c + DC_ADJ_AHEAD < n,
                                  lanes, cx[cur], ct[cur], c, &bx, &bt);
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK, cur ^= 1) {
        const ptrdiff_t len = n - start < DC_BLOCK ? n - start : DC_BLOCK;
        const ptrdiff_t whole = len - len % DC_VLEN;
        const ptrdiff_t nstart = start + DC_BLOCK;
        const ptrdiff_t nlen = nstart >= n ? 0 : n - nstart < DC_BLOCK ? n - nstart : DC_BLOCK;
        const DC_V *vx = cx[cur], *vt = ct[cur];
        /* dc_logits_update's moves of the sums, lane by lane */
        for (ptrdiff_t j = 0; j < lanes; j++) {
            DC_FN(dc_logits_raise)(&s[j], bx[j], bt[j], &mxs[j], &mts[j]);
            before[j] = dc_lse_sum(&s[j].st);
        }
        for (ptrdiff_t j = lanes; j < DC_VLEN; j++) mxs[j] = mts[j] = 0;
        DC_V mx, mt;
        memcpy(&mx, mxs, sizeof mx);
        memcpy(&mt, mts, sizeof mt);
        /* dc_logits_block's vector loop, slot by slot; the next block read meanwhile */
        bxn = btn = ninf;
        ptrdiff_t q = 0; /* classes of the next block read so far */
        for (ptrdiff_t l = 0; l < DC_VLEN; l++) {
            DC_V rx = zero, kx = zero, rt = zero, kt = zero;
            DC_V ea = zero, c = zero, h = zero, k = zero, lost = zero;
            for (ptrdiff_t i = l; i < whole; i += DC_VLEN) {
                if (q < nlen) {
                    DC_FN(dc_adjl_copy_class)(xb + (nstart + q) * xcs, tb + (nstart + q) * tcs,
                                              xcs, tcs, nstart + q + DC_ADJ_AHEAD < n, lanes,
                                              cx[cur ^ 1], ct[cur ^ 1], q, &bxn, &btn);
                    q++;
                }
                const DC_V wx = vx[i], wt = vt[i];
                const DC_V dx = wx - mx, dt = wt - mt;
                const DC_V ex = DC_VEXP_NONPOS(dx), et = DC_VEXP_NONPOS(dt);
                const DC_VI topx = wx == mx, topt = wt == mt;
                rx += DC_VSEL(topx, zero, ex);
                kx += DC_VSEL(topx, one, zero);
                rt += DC_VSEL(topt, zero, et);
                kt += DC_VSEL(topt, one, zero);
                const DC_V a = et * sc;
                const DC_VI has = dt > ninf;
                const DC_VI gone = wx == ninf, kept = has & ~gone;
                lost += DC_VSEL(has & gone, one, zero);
                ea += a;
                h += DC_VSEL(has, a * dt, zero);
                c += DC_VSEL(kept, a * -dx, zero);
                k += DC_VSEL(kept, a * (dt - dx), zero);
            }
            acc[0][l] = rx; acc[1][l] = kx; acc[2][l] = rt; acc[3][l] = kt;
            acc[4][l] = ea; acc[5][l] = c; acc[6][l] = h; acc[7][l] = k; acc[8][l] = lost;
        }
        for (; q < nlen; q++)
            DC_FN(dc_adjl_copy_class)(xb + (nstart + q) * xcs, tb + (nstart + q) * tcs, xcs,
                                      tcs, nstart + q + DC_ADJ_AHEAD < n, lanes, cx[cur ^ 1],
                                      ct[cur ^ 1], q, &bxn, &btn);
        /* per row: the lanes pairwise (dc_vsum_pairwise), the scalar tail, the block's
         * sums into the normalised ones */
        for (ptrdiff_t j = 0; j < lanes; j++) {
            dc_logits_sums *sj = &s[j];
            double sum[9];
            for (int v = 0; v < 9; v++) {
                for (ptrdiff_t l = 0; l < DC_VLEN; l++) lane[l] = acc[v][l][j];
                sum[v] = DC_FN(dc_adj_pairwise)(lane);
            }
            double blk[4] = {0.0, 0.0, 0.0, 0.0};
            dc_sum_add(&sj->sx.rest, &sj->sx.rest_c, sum[0]);
            sj->sx.at_max += sum[1];
            dc_sum_add(&sj->st.rest, &sj->st.rest_c, sum[2]);
            sj->st.at_max += sum[3];
            blk[0] += sum[4];
            blk[1] += sum[5];
            blk[2] += sum[6];
            blk[3] += sum[7];
            sj->lost += sum[8];
            double rxs = 0.0, rts = 0.0;
            for (ptrdiff_t i = whole; i < len; i++)
                DC_FN(dc_logits_tail_value)(vx[i][j], vt[i][j], NULL, mxs[j], mts[j], sj,
                                            &rxs, &rts, blk);
            dc_sum_add(&sj->sx.rest, &sj->sx.rest_c, rxs);
            dc_sum_add(&sj->st.rest, &sj->st.rest_c, rts);
            dc_logits_join(sj, before[j], blk, unscale);
        }
        bx = bxn;
        bt = btn;
    }
}

#undef DC_ADJ_AHEAD
#undef DC_ADJ_W
#endif /* DC_HAVE_VEC */

/* dc_soft_logits(x_j, t_j, NULL, n, &res[j]) for rows j < count adjacent in memory (row j
 * of x at x + j, its class c c·xcs bytes further; t alike with tcs). */
DC_TARGET DC_ENTRY void DC_FN(dc_soft_logits_adjacent)(const DC_T *x, const DC_T *t,
                                                        ptrdiff_t n, ptrdiff_t xcs,
                                                        ptrdiff_t tcs, ptrdiff_t count,
                                                        dc_soft_result *res)
{
#ifdef DC_HAVE_VEC
    dc_logits_sums s[sizeof(DC_V) / sizeof(DC_T)];
    for (ptrdiff_t g = 0; g < count; g += DC_VLEN) {
        const ptrdiff_t lanes = count - g < DC_VLEN ? count - g : DC_VLEN;
        for (ptrdiff_t j = 0; j < lanes; j++) dc_logits_sums_init(&s[j]);
        DC_FN(dc_logits_adjacent_group)(x + g, t + g, n, xcs, tcs, lanes, s);
        for (ptrdiff_t j = 0; j < lanes; j++) DC_FN(dc_soft_logits_finish)(&s[j], 0, &res[g + j]);
    }
#else
    /* no vectors: each row a block at a time through buffers, into dc_logits_update */
    DC_T bx[DC_BLOCK], bt[DC_BLOCK];
    for (ptrdiff_t j = 0; j < count; j++) {
        dc_logits_sums s;
        dc_logits_sums_init(&s);
        for (ptrdiff_t start = 0; start < n; start += DC_BLOCK) {
            const ptrdiff_t len = n - start < DC_BLOCK ? n - start : DC_BLOCK;
            for (ptrdiff_t c = 0; c < len; c++) {
                bx[c] = *(const DC_T *)((const char *)(x + j) + (start + c) * xcs);
                bt[c] = *(const DC_T *)((const char *)(t + j) + (start + c) * tcs);
            }
            DC_FN(dc_logits_update)(bx, bt, NULL, len, &s);
        }
        DC_FN(dc_soft_logits_finish)(&s, 0, &res[j]);
    }
#endif
}

#undef DC_FN
