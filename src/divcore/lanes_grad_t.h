/* divcore/lanes_grad_t.h: gradients of short rows, one row per vector lane: cross-entropy
 * with a label, the forward soft-target gradient (probabilities, log-probabilities or
 * logits) and the reverse-KL gradient. Type-generic body (DC_T, DC_SFX, DC_ISA_NAME, DC_TARGET defined; included by
 * isa_t.h after lanes_soft_t.h, and for the portable build by lanes_more.h).
 *
 * The rows of a group are transposed into columns (dc_rows_columns, lanes_t.h); each
 * gradient value is the long-row kernel's formula (losses_t.h: dc_ce_label_grad,
 * dc_soft_grad), in double lanes from the DC_T values and rounded once, then written to
 * its row of the (rows, n) C-contiguous output. */

#define DC_FN(name) DC_ISA_NAME(name, DC_SFX)

#ifdef DC_HAVE_VEC
#define DC_VD DC_ISA_NAME(dc_v, f64)
#define DC_VDLEN ((ptrdiff_t)(sizeof(DC_VD) / sizeof(double)))
#define DC_NH ((int)(DC_VLEN / DC_VDLEN))
#define DC_VDEXP DC_ISA_NAME(dc_vexp, f64)
#define DC_VDSEL(mask, a, b) \
    ((DC_VD)(((mask) & (DC_ISA_NAME(dc_vi, f64))(a)) | (~(mask) & (DC_ISA_NAME(dc_vi, f64))(b))))

/* Cross-entropy with a label and its gradient, for rows first .. first + count - 1 of r:
 * row j's label is labels[j] (< 0: the row is ignored: loss 0 and a gradient of 0, its
 * logits unused) and its gradient scale scale[j];
 *     loss = (M - x_y) + log S,   g_c = scale·q_c (c ≠ y),   g_y = scale·expm1(-loss)
 * (q_y - 1 = expm1(-loss): exact for a confident prediction), as dc_ce_label_grad. The
 * gradient of row j goes to g + j·n; loss[j] is the unweighted loss. A row without a
 * distribution: NaN loss, NaN gradient. */
DC_TARGET DC_ENTRY void DC_FN(dc_ce_label_grad_rows)(const dc_rows *r,
                                                         const ptrdiff_t *labels,
                                                         const double *scale, ptrdiff_t first,
                                                         ptrdiff_t count, double *loss, DC_T *g)
{
    const ptrdiff_t n = r->n;
    DC_V col[DC_LANES_MAX_N];
    /* initialised only so that compilers which cannot follow `lanes` do not warn */
    dc_lse_state st[DC_VLEN] = {{0.0, 0.0, 0.0, 0.0, 0}};
    double log_sum[DC_VLEN] = {0.0}, mv[DC_VLEN], iv[DC_VLEN], sv[DC_VLEN];
    for (ptrdiff_t b = 0; b < count; b += DC_VLEN) {
        const ptrdiff_t lanes = count - b < DC_VLEN ? count - b : DC_VLEN;
        DC_V m, at_max, rest;
        DC_FN(dc_rows_columns)(r, first + b, lanes, col);
        DC_FN(dc_columns_lse)(col, n, &m, &at_max, &rest);
        DC_FN(dc_lanes_states)(m, at_max, rest, lanes, st, log_sum);
        for (ptrdiff_t j = 0; j < DC_VLEN; j++) {
            const int ok = j < lanes && dc_lse_ok(&st[j]);
            mv[j] = ok ? st[j].max : 0.0;
            iv[j] = ok ? 1.0 / dc_lse_sum(&st[j]) : 0.0;
            sv[j] = ok ? scale[b + j] : 0.0;
        }
        DC_VD md[2], inv[2], sc[2];
        DC_FN(dc_lanes_of)(mv, md);
        DC_FN(dc_lanes_of)(iv, inv);
        DC_FN(dc_lanes_of)(sv, sc);
        DC_T *gb = g + b * n;
        for (ptrdiff_t i = 0; i < n; i++) {
            DC_VD d[2];
            DC_FN(dc_lanes_widen)(col[i], d);
            for (int h = 0; h < DC_NH; h++) {
                const DC_VD v = sc[h] * (DC_VDEXP(d[h] - md[h]) * inv[h]);
                for (ptrdiff_t q = 0; q < DC_VDLEN && h * DC_VDLEN + q < lanes; q++)
                    gb[(h * DC_VDLEN + q) * n + i] = (DC_T)v[q];
            }
        }
        for (ptrdiff_t j = 0; j < lanes; j++) {
            DC_T *gr = gb + j * n;
            const ptrdiff_t y = labels[b + j];
            if (y < 0) {
                loss[b + j] = 0.0;
                for (ptrdiff_t c = 0; c < n; c++) gr[c] = 0;
            } else if (!dc_lse_ok(&st[j])) {
                loss[b + j] = NAN;
                for (ptrdiff_t c = 0; c < n; c++) gr[c] = (DC_T)NAN;
            } else {
                const double l = (st[j].max - (double)col[y][j]) + log_sum[j];
                loss[b + j] = l;
                gr[y] = (DC_T)(scale[b + j] * expm1(-l));
            }
        }
    }
}

/* The forward soft-target gradient, g_c = scale·(A·q_c - a_c), a = w·p, A = Σa, q =
 * softmax(x) (dc_soft_grad), for rows first .. first + count - 1 of rx and rt, with
 * res[j] the loss kernel's result for row first + j (its M, S, A and, for a logits
 * target, M_t and S_t). kind: how the target gives p (DC_TARGET_*). Row j's gradient goes
 * to g + j·n; a row without a distribution gets NaN. */
DC_TARGET DC_ENTRY void DC_FN(dc_soft_grad_rows)(const dc_rows *rx, const dc_rows *rt,
                                                     const DC_T *w, int kind,
                                                     const dc_soft_result *res, double scale,
                                                     ptrdiff_t first, ptrdiff_t count, DC_T *g)
{
    const ptrdiff_t n = rx->n;
    DC_V col[DC_LANES_MAX_N], tcol[DC_LANES_MAX_N];
    double mv[DC_VLEN], iv[DC_VLEN], av[DC_VLEN], tv[DC_VLEN], lv[DC_VLEN];
    int ok[DC_VLEN];
    for (ptrdiff_t b = 0; b < count; b += DC_VLEN) {
        const ptrdiff_t lanes = count - b < DC_VLEN ? count - b : DC_VLEN;
        DC_FN(dc_rows_columns)(rx, first + b, lanes, col);
        DC_FN(dc_rows_columns)(rt, first + b, lanes, tcol);
        for (ptrdiff_t j = 0; j < DC_VLEN; j++) {
            const dc_soft_result *r = res + b + j;
            ok[j] = j < lanes && r->max > -INFINITY && r->max < INFINITY && r->asum == r->asum;
            mv[j] = ok[j] ? r->max : 0.0;
            iv[j] = ok[j] ? 1.0 / r->sum : 0.0;
            av[j] = ok[j] ? r->asum : 0.0;
            tv[j] = ok[j] ? r->tmax : 0.0;
            lv[j] = ok[j] ? log(r->tsum) : 0.0;
        }
        DC_VD md[2], inv[2], mass[2], tmax[2], log_ts[2];
        DC_FN(dc_lanes_of)(mv, md);
        DC_FN(dc_lanes_of)(iv, inv);
        DC_FN(dc_lanes_of)(av, mass);
        DC_FN(dc_lanes_of)(tv, tmax);
        DC_FN(dc_lanes_of)(lv, log_ts);
        DC_T *gb = g + b * n;
        for (ptrdiff_t i = 0; i < n; i++) {
            DC_VD d[2], p[2];
            DC_FN(dc_lanes_widen)(col[i], d);
            DC_FN(dc_lanes_widen)(tcol[i], p);
            for (int h = 0; h < DC_NH; h++) {
                const DC_VD q = DC_VDEXP(d[h] - md[h]) * inv[h];
                DC_VD a = p[h];
                if (kind == DC_TARGET_LOG_PROBS) a = DC_VDEXP(a);
                else if (kind == DC_TARGET_LOGITS) a = DC_VDEXP((a - tmax[h]) - log_ts[h]);
                if (w != NULL) a = (double)w[i] * a;
                const DC_VD v = scale * (mass[h] * q - a);
                for (ptrdiff_t q2 = 0; q2 < DC_VDLEN && h * DC_VDLEN + q2 < lanes; q2++)
                    gb[(h * DC_VDLEN + q2) * n + i] = (DC_T)v[q2];
            }
        }
        for (ptrdiff_t j = 0; j < lanes; j++)
            if (!ok[j])
                for (ptrdiff_t c = 0; c < n; c++) gb[j * n + c] = (DC_T)NAN;
    }
}

/* The reverse-KL gradient g_c = scale·q_c·((log q_c - log p_c) - KL), 0 where q_c = 0
 * (dc_kl_reverse_grad), for rows first .. first + count - 1 of rx and rt, with res[j] the
 * loss kernel's result for row first + j (the model's M and S in max / sum, a logits
 * target's in tmax / tsum, KL in kl). Row j's gradient goes to g + j·n; a row without a
 * distribution or with a NaN KL gets NaN. */
DC_TARGET DC_ENTRY void DC_FN(dc_kl_reverse_grad_rows)(const dc_rows *rx, const dc_rows *rt,
                                                           int kind, const dc_soft_result *res,
                                                           double scale, ptrdiff_t first,
                                                           ptrdiff_t count, DC_T *g)
{
    const DC_VD dzero = {0};
    const ptrdiff_t n = rx->n;
    DC_V col[DC_LANES_MAX_N], tcol[DC_LANES_MAX_N];
    double mv[DC_VLEN], lsv[DC_VLEN], tv[DC_VLEN], ltv[DC_VLEN], kv[DC_VLEN];
    int ok[DC_VLEN];
    for (ptrdiff_t b = 0; b < count; b += DC_VLEN) {
        const ptrdiff_t lanes = count - b < DC_VLEN ? count - b : DC_VLEN;
        DC_FN(dc_rows_columns)(rx, first + b, lanes, col);
        DC_FN(dc_rows_columns)(rt, first + b, lanes, tcol);
        for (ptrdiff_t j = 0; j < DC_VLEN; j++) {
            const dc_soft_result *r = res + b + j;
            ok[j] = j < lanes && r->max > -INFINITY && r->max < INFINITY && r->kl == r->kl;
            mv[j] = ok[j] ? r->max : 0.0;
            lsv[j] = ok[j] ? log(r->sum) : 0.0;
            tv[j] = ok[j] ? r->tmax : 0.0;
            ltv[j] = ok[j] ? log(r->tsum) : 0.0;
            kv[j] = ok[j] ? r->kl : 0.0;
        }
        DC_VD md[2], log_s[2], tmax[2], log_ts[2], kl[2];
        DC_FN(dc_lanes_of)(mv, md);
        DC_FN(dc_lanes_of)(lsv, log_s);
        DC_FN(dc_lanes_of)(tv, tmax);
        DC_FN(dc_lanes_of)(ltv, log_ts);
        DC_FN(dc_lanes_of)(kv, kl);
        DC_T *gb = g + b * n;
        for (ptrdiff_t i = 0; i < n; i++) {
            DC_VD d[2], lp[2];
            DC_FN(dc_lanes_widen)(col[i], d);
            DC_FN(dc_lanes_widen)(tcol[i], lp);
            for (int h = 0; h < DC_NH; h++) {
                if (kind == DC_TARGET_PROBS) lp[h] = DC_FN(dc_lanes_vlog)(lp[h]);
                else if (kind == DC_TARGET_LOGITS) lp[h] = (lp[h] - tmax[h]) - log_ts[h];
                const DC_VD lq = (d[h] - md[h]) - log_s[h];
                const DC_VD q = DC_VDEXP(lq);
                const DC_VD v = DC_VDSEL(q != dzero, scale * q * ((lq - lp[h]) - kl[h]), dzero);
                for (ptrdiff_t q2 = 0; q2 < DC_VDLEN && h * DC_VDLEN + q2 < lanes; q2++)
                    gb[(h * DC_VDLEN + q2) * n + i] = (DC_T)v[q2];
            }
        }
        for (ptrdiff_t j = 0; j < lanes; j++)
            if (!ok[j])
                for (ptrdiff_t c = 0; c < n; c++) gb[j * n + c] = (DC_T)NAN;
    }
}

#undef DC_VDSEL
#undef DC_VDEXP
#undef DC_NH
#undef DC_VDLEN
#undef DC_VD
#else /* no vector extensions: the long-row kernels, a row at a time */

DC_TARGET DC_ENTRY void DC_FN(dc_ce_label_grad_rows)(const dc_rows *r,
                                                         const ptrdiff_t *labels,
                                                         const double *scale, ptrdiff_t first,
                                                         ptrdiff_t count, double *loss, DC_T *g)
{
    DC_T xb[DC_LANES_MAX_N];
    const ptrdiff_t n = r->n;
    for (ptrdiff_t j = 0; j < count; j++) {
        DC_T *gr = g + j * n;
        if (labels[j] < 0) {
            loss[j] = 0.0;
            for (ptrdiff_t c = 0; c < n; c++) gr[c] = 0;
            continue;
        }
        loss[j] = DC_FN(dc_ce_label_grad)(DC_CAT(dc_row, DC_SFX)(r, first + j, -(DC_T)INFINITY,
                                                                  xb),
                                          n, labels[j], scale[j], gr);
    }
}

DC_TARGET DC_ENTRY void DC_FN(dc_soft_grad_rows)(const dc_rows *rx, const dc_rows *rt,
                                                     const DC_T *w, int kind,
                                                     const dc_soft_result *res, double scale,
                                                     ptrdiff_t first, ptrdiff_t count, DC_T *g)
{
    DC_T xb[DC_LANES_MAX_N], tb[DC_LANES_MAX_N];
    const ptrdiff_t n = rx->n;
    for (ptrdiff_t j = 0; j < count; j++)
        DC_FN(dc_soft_grad)(DC_CAT(dc_row, DC_SFX)(rx, first + j, -(DC_T)INFINITY, xb),
                            DC_CAT(dc_row, DC_SFX)(rt, first + j, -(DC_T)INFINITY, tb), w, n,
                            kind, res + j, scale, g + j * n);
}
DC_TARGET DC_ENTRY void DC_FN(dc_kl_reverse_grad_rows)(const dc_rows *rx, const dc_rows *rt,
                                                           int kind, const dc_soft_result *res,
                                                           double scale, ptrdiff_t first,
                                                           ptrdiff_t count, DC_T *g)
{
    DC_T xb[DC_LANES_MAX_N], tb[DC_LANES_MAX_N];
    const ptrdiff_t n = rx->n;
    for (ptrdiff_t j = 0; j < count; j++)
        DC_FN(dc_kl_reverse_grad)(DC_CAT(dc_row, DC_SFX)(rx, first + j, -(DC_T)INFINITY, xb),
                                  DC_CAT(dc_row, DC_SFX)(rt, first + j, -(DC_T)INFINITY, tb), n,
                                  kind, res + j, res[j].kl, scale, g + j * n);
}
#endif

#undef DC_FN
