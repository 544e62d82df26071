/* divcore/losses_t.h: type-generic body of losses.h (DC_T, DC_SFX defined by the includer). */

#define DC_FN(name) DC_CAT(name, DC_SFX)
#define DC_EXP DC_FN(dc_exp)
#define DC_LOG DC_FN(dc_log)
#define DC_MIN_LEN(a, b) ((a) < (b) ? (a) : (b))

/* ---------------------------------------------------------------- log-sum-exp, softmax */

/* log Σ exp(x_i): NaN for a NaN or +inf value, -inf for an empty or all -inf row. */
static inline double DC_FN(dc_logsumexp)(const DC_T *x, ptrdiff_t n)
{
    dc_lse_state st = DC_FN(dc_lse_scan)(x, n);
    return dc_lse_value(&st);
}

/* out_i = log q_i = (x_i - M) - log S, or q_i = exp(x_i - M) / S with `exponentiate`.
 * Subtracting M first keeps the largest entry's log q exact (-log S, not lse - M rounded).
 * A row without a distribution is all NaN. Returns 1 if it had one. */
static inline int DC_FN(dc_log_softmax_row)(const DC_T *x, ptrdiff_t n, int exponentiate,
                                            DC_T *out)
{
    dc_lse_state st = DC_FN(dc_lse_scan)(x, n);
    if (!dc_lse_ok(&st)) {
        for (ptrdiff_t i = 0; i < n; i++) out[i] = (DC_T)NAN;
        return 0;
    }
    const DC_T m = (DC_T)st.max;
    if (exponentiate) {
        const DC_T inv_s = (DC_T)(1.0 / dc_lse_sum(&st));
        for (ptrdiff_t i = 0; i < n; i++) out[i] = DC_EXP(x[i] - m) * inv_s;
    } else {
        const DC_T log_s = (DC_T)dc_lse_log_sum(&st);
        for (ptrdiff_t i = 0; i < n; i++) out[i] = (x[i] - m) - log_s;
    }
    return 1;
}

static inline int DC_FN(dc_log_softmax)(const DC_T *x, ptrdiff_t n, DC_T *out)
{
    return DC_FN(dc_log_softmax_row)(x, n, 0, out);
}

static inline int DC_FN(dc_softmax)(const DC_T *x, ptrdiff_t n, DC_T *out)
{
    return DC_FN(dc_log_softmax_row)(x, n, 1, out);
}

/* ------------------------------------------------------------- cross-entropy, a label */

/* -log q_y = lse - x_y = (M - x_y) + log1p((at_max - 1) + rest), label in [0, n).
 * Both terms are ≥ 0, so there is no cancellation; when x_y is the max the first is 0 and
 * the loss keeps its relative precision however small it is. x_y = -inf gives +inf. */
static inline double DC_FN(dc_ce_label)(const DC_T *x, ptrdiff_t n, ptrdiff_t label)
{
    dc_lse_state st = DC_FN(dc_lse_scan)(x, n);
    if (!dc_lse_ok(&st)) return NAN;
    return (st.max - (double)x[label]) + dc_lse_log_sum(&st);
}

/* ------------------------------------------------------------------ soft-target rows */

/* Target side of a block: p from probabilities or log-probabilities, a = w·p into a_out,
 * and the sums for validation and the target's entropy (Σ a·log p, when want_h). */
static inline void DC_FN(dc_block_target)(const DC_T *t, const DC_T *w, ptrdiff_t n,
                                          int is_log, int want_h, DC_T *a_out,
                                          dc_target_sums *s)
{
    DC_T ps[DC_LANES], as[DC_LANES], hs[DC_LANES];
    int bad[DC_LANES];
    for (int j = 0; j < DC_LANES; j++) { ps[j] = 0; as[j] = 0; hs[j] = 0; bad[j] = 0; }
    for (ptrdiff_t i = 0; i < n; i++) {
        const int j = (int)(i % DC_LANES);
        const DC_T tv = t[i];
        const DC_T p = is_log ? DC_EXP(tv) : tv;
        const DC_T a = w != NULL ? w[i] * p : p;
        ps[j] += p;
        as[j] += a;
        bad[j] += is_log ? (tv != tv) : !(p >= 0);
        if (want_h) hs[j] += p != 0 ? a * (is_log ? tv : DC_LOG(p)) : (DC_T)0;
        a_out[i] = a;
    }
    for (int j = 0; j < DC_LANES; j++) {
        s->psum += ps[j];
        s->asum += as[j];
        s->hsum += hs[j];
        s->nbad += bad[j];
    }
}

/* Logit side of a block at running max m: Σ a·(m - x) (terms with a == 0 are 0), and the
 * block's part of S (see lse.h). */
static inline double DC_FN(dc_block_soft)(const DC_T *x, const DC_T *a, ptrdiff_t n, DC_T m,
                                          dc_lse_state *st)
{
    DC_T sh[DC_LANES], r[DC_LANES], k[DC_LANES];
    for (int j = 0; j < DC_LANES; j++) { sh[j] = 0; r[j] = 0; k[j] = 0; }
    for (ptrdiff_t i = 0; i < n; i++) {
        const int j = (int)(i % DC_LANES);
        const DC_T v = x[i];
        const int top = v == m;
        sh[j] += a[i] != 0 ? a[i] * (m - v) : (DC_T)0;
        k[j] += top;
        r[j] += top ? (DC_T)0 : DC_EXP(v - m);
    }
    double shift = 0.0;
    for (int j = 0; j < DC_LANES; j++) {
        shift += sh[j];
        st->at_max += k[j];
        st->rest += r[j];
    }
    return shift;
}

/* Cross-entropy (and, with want_h, entropy and KL) of a probability or log-probability
 * target against softmax(x), in one pass over both rows, with optional class weights w:
 *     ce = Σ a_i (lse - x_i) = A + (Σ a) log S,   A = Σ a_i (M - x_i),  a = w·p
 * A is kept online: when the max grows from M to M', every term counted so far grows by
 * (M' - M), so A += (M' - M)·Σa_seen. Terms are ≥ 0 for w ≥ 0: no cancellation.
 *     h = -Σ a_i log p_i,   kl = ce - h (clamped at 0).
 * The target sums (psum, nbad) cover the whole row even when x holds a NaN. */
static inline void DC_FN(dc_soft_target_row)(const DC_T *x, const DC_T *t, const DC_T *w,
                                             ptrdiff_t n, int is_log, int want_h,
                                             dc_soft_result *res)
{
    DC_T a[DC_BLOCK];
    dc_lse_state st;
    dc_lse_init(&st);
    dc_target_sums ts = {0.0, 0.0, 0.0, 0};
    double shift = 0.0, a_seen = 0.0;
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK) {
        const ptrdiff_t len = DC_MIN_LEN(DC_BLOCK, n - start);
        const DC_T *xb = x + start;
        const double a_before = ts.asum;
        DC_FN(dc_block_target)(t + start, w != NULL ? w + start : NULL, len, is_log, want_h,
                               a, &ts);
        if (st.nan) continue;
        DC_T b;
        if (DC_FN(dc_block_max)(xb, len, &b)) { st.nan = 1; continue; }
        if (b > st.max) {
            /* With no finite max yet, the terms seen so far sit on -inf logits: +inf if
             * any has mass (0·inf is not formed when a_seen == 0). */
            if (a_seen != 0.0) shift += ((double)b - st.max) * a_seen;
            dc_lse_raise_max(&st, (double)b);
        }
        a_seen += ts.asum - a_before;
        if (st.max > -INFINITY)
            shift += DC_FN(dc_block_soft)(xb, a, len, (DC_T)st.max, &st);
    }
    res->psum = ts.psum;
    res->nbad = ts.nbad;
    if (!dc_lse_ok(&st)) {
        res->ce = res->h = res->kl = NAN;
        return;
    }
    res->ce = shift + ts.asum * dc_lse_log_sum(&st);
    if (want_h) {
        res->h = -ts.hsum;
        res->kl = dc_clamp_nonnegative(res->ce - res->h);
    }
}

static inline void DC_FN(dc_soft_probs)(const DC_T *x, const DC_T *p, const DC_T *w,
                                        ptrdiff_t n, int want_h, dc_soft_result *res)
{
    DC_FN(dc_soft_target_row)(x, p, w, n, 0, want_h, res);
}

static inline void DC_FN(dc_soft_log_probs)(const DC_T *x, const DC_T *lp, const DC_T *w,
                                            ptrdiff_t n, int want_h, dc_soft_result *res)
{
    DC_FN(dc_soft_target_row)(x, lp, w, n, 1, want_h, res);
}

/* Target given as logits t: p = softmax(t). Two passes: the log-sum-exp of both rows,
 * then with both maxima final,
 *     log p_i - log q_i = (t_i - M_t) - (x_i - M_x) + (log S_x - log S_t)
 *     ce = Σ a_i (M_x - x_i) + Σa·log S_x,     h = -Σ a_i log p_i,
 *     kl = Σ a_i ((t_i - M_t) - (x_i - M_x)) + Σa·(log S_x - log S_t)
 * so that kl is exactly 0 when t == x, and every term is invariant to adding a constant
 * to either row. A target without a distribution gives NaN. */
static inline void DC_FN(dc_soft_logits)(const DC_T *x, const DC_T *t, const DC_T *w,
                                         ptrdiff_t n, dc_soft_result *res)
{
    const dc_lse_state sx = DC_FN(dc_lse_scan)(x, n);
    const dc_lse_state st = DC_FN(dc_lse_scan)(t, n);
    res->psum = 1.0;
    res->nbad = 0;
    if (!dc_lse_ok(&sx) || !dc_lse_ok(&st)) {
        res->ce = res->h = res->kl = NAN;
        return;
    }
    const DC_T mx = (DC_T)sx.max, mt = (DC_T)st.max;
    const DC_T inv_st = (DC_T)(1.0 / dc_lse_sum(&st));
    const DC_T log_st = (DC_T)dc_lse_log_sum(&st);
    double ce = 0.0, hs = 0.0, kl = 0.0, asum = 0.0;
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK) {
        const ptrdiff_t len = DC_MIN_LEN(DC_BLOCK, n - start);
        DC_T c_[DC_LANES], h_[DC_LANES], k_[DC_LANES], a_[DC_LANES];
        for (int j = 0; j < DC_LANES; j++) { c_[j] = 0; h_[j] = 0; k_[j] = 0; a_[j] = 0; }
        for (ptrdiff_t i = start; i < start + len; i++) {
            const int j = (int)(i % DC_LANES);
            const DC_T dt = t[i] - mt, dx = x[i] - mx;
            const DC_T p = DC_EXP(dt) * inv_st;
            const DC_T a = w != NULL ? w[i] * p : p;
            const int has = p != 0;
            a_[j] += a;
            c_[j] += has ? a * -dx : (DC_T)0;
            h_[j] += has ? a * (dt - log_st) : (DC_T)0;
            k_[j] += has ? a * (dt - dx) : (DC_T)0;
        }
        for (int j = 0; j < DC_LANES; j++) { ce += c_[j]; hs += h_[j]; kl += k_[j]; asum += a_[j]; }
    }
    const double log_sx = dc_lse_log_sum(&sx);
    res->ce = ce + asum * log_sx;
    res->h = -hs;
    res->kl = dc_clamp_nonnegative(kl + asum * (log_sx - dc_lse_log_sum(&st)));
}

/* Reverse KL(q ‖ p) = Σ q_i (log q_i - log p_i) for a probability or log-probability
 * target p. Terms with q_i == 0 are 0; q_i > 0 where p_i == 0 gives +inf. */
static inline void DC_FN(dc_kl_reverse_target)(const DC_T *x, const DC_T *t, ptrdiff_t n,
                                               int is_log, dc_soft_result *res)
{
    const dc_lse_state sx = DC_FN(dc_lse_scan)(x, n);
    const int ok = dc_lse_ok(&sx);
    const DC_T m = (DC_T)sx.max;
    const DC_T inv_s = ok ? (DC_T)(1.0 / dc_lse_sum(&sx)) : (DC_T)0;
    const DC_T log_s = ok ? (DC_T)dc_lse_log_sum(&sx) : (DC_T)0;
    double kl = 0.0, psum = 0.0;
    ptrdiff_t nbad = 0;
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK) {
        const ptrdiff_t len = DC_MIN_LEN(DC_BLOCK, n - start);
        DC_T k_[DC_LANES], p_[DC_LANES];
        int b_[DC_LANES];
        for (int j = 0; j < DC_LANES; j++) { k_[j] = 0; p_[j] = 0; b_[j] = 0; }
        for (ptrdiff_t i = start; i < start + len; i++) {
            const int j = (int)(i % DC_LANES);
            const DC_T tv = t[i];
            const DC_T p = is_log ? DC_EXP(tv) : tv;
            p_[j] += p;
            b_[j] += is_log ? (tv != tv) : !(p >= 0);
            if (ok) {
                const DC_T dx = x[i] - m;
                const DC_T q = DC_EXP(dx) * inv_s;
                const DC_T log_p = is_log ? tv : DC_LOG(p);
                k_[j] += q != 0 ? q * ((dx - log_s) - log_p) : (DC_T)0;
            }
        }
        for (int j = 0; j < DC_LANES; j++) { kl += k_[j]; psum += p_[j]; nbad += b_[j]; }
    }
    res->psum = psum;
    res->nbad = nbad;
    res->ce = res->h = NAN;
    res->kl = ok ? dc_clamp_nonnegative(kl) : NAN;
}

/* Σ p and the bad entries of a target row, nothing else: validation of a target that is
 * transformed before use (label smoothing). */
static inline void DC_FN(dc_target_check)(const DC_T *t, ptrdiff_t n, int is_log,
                                          double *psum, ptrdiff_t *nbad)
{
    DC_T a[DC_BLOCK];
    dc_target_sums ts = {0.0, 0.0, 0.0, 0};
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK)
        DC_FN(dc_block_target)(t + start, NULL, DC_MIN_LEN(DC_BLOCK, n - start), is_log, 0, a,
                               &ts);
    *psum = ts.psum;
    *nbad = ts.nbad;
}

/* ------------------------------------------------------------------------- entropy */

/* H(softmax(x)) = Σ q_i (lse - x_i) = log S + Σ e_i (M - x_i) / S,  e_i = exp(x_i - M):
 * non-negative terms only. */
static inline double DC_FN(dc_entropy_logits)(const DC_T *x, ptrdiff_t n)
{
    const dc_lse_state st = DC_FN(dc_lse_scan)(x, n);
    if (!dc_lse_ok(&st)) return NAN;
    const DC_T m = (DC_T)st.max;
    double u = 0.0;
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK) {
        const ptrdiff_t len = DC_MIN_LEN(DC_BLOCK, n - start);
        DC_T u_[DC_LANES];
        for (int j = 0; j < DC_LANES; j++) u_[j] = 0;
        for (ptrdiff_t i = start; i < start + len; i++) {
            const DC_T e = DC_EXP(x[i] - m);
            u_[i % DC_LANES] += e != 0 ? e * (m - x[i]) : (DC_T)0;
        }
        for (int j = 0; j < DC_LANES; j++) u += u_[j];
    }
    return dc_lse_log_sum(&st) + u / dc_lse_sum(&st);
}

/* H(p) = -Σ p_i log p_i (0·log 0 = 0) for probabilities, or -Σ exp(l_i)·l_i for
 * log-probabilities l; *psum and *nbad as in dc_soft_result. */
static inline double DC_FN(dc_entropy_target)(const DC_T *t, ptrdiff_t n, int is_log,
                                              double *psum, ptrdiff_t *nbad)
{
    DC_T a[DC_BLOCK];
    dc_target_sums ts = {0.0, 0.0, 0.0, 0};
    for (ptrdiff_t start = 0; start < n; start += DC_BLOCK)
        DC_FN(dc_block_target)(t + start, NULL, DC_MIN_LEN(DC_BLOCK, n - start), is_log, 1, a,
                               &ts);
    *psum = ts.psum;
    *nbad = ts.nbad;
    return -ts.hsum;
}

/* ------------------------------------------ the flat C-level API (one value per row) */

/* H(p, softmax(x)) for a probability row p (no weights, no validation). */
static inline double DC_FN(dc_ce_probs)(const DC_T *x, const DC_T *p, ptrdiff_t n)
{
    dc_soft_result r;
    DC_FN(dc_soft_probs)(x, p, NULL, n, 0, &r);
    return r.ce;
}

/* KL(softmax(t) ‖ softmax(x)). */
static inline double DC_FN(dc_kl_logits)(const DC_T *t, const DC_T *x, ptrdiff_t n)
{
    dc_soft_result r;
    DC_FN(dc_soft_logits)(x, t, NULL, n, &r);
    return r.kl;
}

#undef DC_MIN_LEN
#undef DC_LOG
#undef DC_EXP
#undef DC_FN
