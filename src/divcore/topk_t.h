/* divcore/topk_t.h: type-generic body of topk.h (DC_T, DC_SFX defined by the includer;
 * DC_ISA_NAME and DC_TARGET name and target one instruction set, see dispatch.h). After
 * losses_t.h: the gradient writes q with the softmax writer's vector loop. */

#define DC_FN(name) DC_ISA_NAME(name, DC_SFX)
/* log √eps of T: a rest of mass below this is rounding where the other side has none */
#define DC_TOPK_LOG_NOISE (sizeof(DC_T) == sizeof(float) ? -7.97 : -18.02)
/* log of the rest below which it is summed directly: 2^-7 (float), 2^-10 (double) */
#define DC_TOPK_LOG_SMALL_REST (sizeof(DC_T) == sizeof(float) ? -4.852 : -6.931)

/* log q_r = log Σ_{j ∉ K} exp(x_j - M) - log S, summed over the runs of classes between
 * K's indices (found in increasing order by O(k) scans: no scratch memory) with the
 * blocked log-sum-exp. -inf when no class outside K has mass. */
DC_TARGET DC_INLINE double DC_FN(dc_topk_log_rest)(const DC_T *x, ptrdiff_t n,
                                                     const int64_t *idx, ptrdiff_t k,
                                                     double m, double log_sum)
{
    dc_lse_state st;
    dc_lse_init(&st);
    ptrdiff_t start = 0;
    for (;;) {
        ptrdiff_t next = n; /* the smallest index of K at or after start */
        for (ptrdiff_t j = 0; j < k; j++)
            if ((ptrdiff_t)idx[j] >= start && (ptrdiff_t)idx[j] < next) next = (ptrdiff_t)idx[j];
        if (next > start) DC_FN(dc_lse_update)(&st, x + start, next - start);
        if (next >= n) break;
        start = next + 1;
    }
    if (st.max == -INFINITY) return -INFINITY;
    return ((st.max - m) + dc_lse_log_sum(&st)) - log_sum;
}

/* Every loss of one row against its TopK target (see topk.h); res gets the lot (JS only
 * for beta in [0, 1]: a negative beta skips its terms and leaves res->js 0). The row
 * is scanned once (dc_lse_update); the teacher's k entries and the student's k gathered
 * logits are read twice: for the maxima, then for the sums, two exponentials (or a log
 * and an exponential for probabilities) an entry. The tails that renormalise are sums
 * over K scaled after the loop: with p̂ = p / P and log q̃ = log q - log Q,
 *     Σ p̂ (log p̂ - log q) = Σ p (log p - log q) / P - log P,
 *     Σ p̂ (log p̂ - log q̃) = that + log Q,   Σ q̃ (log q̃ - log p̂) = Σ q (...) / Q - log Q + log P.
 * idx must be in [0, n) (not checked here). */
DC_TARGET DC_ENTRY void DC_FN(dc_topk_row)(const DC_T *x, ptrdiff_t n, const int64_t *idx,
                                             const DC_T *v, ptrdiff_t k, int is_log, int tail,
                                             double beta, dc_topk_result *res)
{
    dc_lse_state st;
    dc_lse_init(&st);
    DC_FN(dc_lse_update)(&st, x, n);
    /* the maxima of log p (from the largest value) and of log q on K; bad entries */
    double vmax = -INFINITY, mq = -INFINITY;
    ptrdiff_t nbad = 0;
    for (ptrdiff_t j = 0; j < k; j++) {
        const double vj = (double)v[j];
        nbad += is_log ? !(vj <= 0.0) : !(vj >= 0.0 && vj <= 1.0);
        if (vj > vmax) vmax = vj;
        if ((double)x[idx[j]] > mq) mq = (double)x[idx[j]];
    }
    res->nbad = nbad;
    res->max = st.max;
    if (!dc_lse_ok(&st)) { /* every loss NaN; the teacher's sum still validated */
        double psum = 0.0;
        for (ptrdiff_t j = 0; j < k; j++) psum += is_log ? exp((double)v[j]) : (double)v[j];
        res->psum = psum;
        res->log_sum = res->log_pr = res->log_qr = res->log_q = res->log_p = NAN;
        res->ce = res->h = res->kl = res->kl_rev = res->js = res->mass = NAN;
        return;
    }
    const double m = st.max, log_sum = dc_lse_log_sum(&st);
    res->log_sum = log_sum;
    const double mp = is_log ? vmax : log(vmax);
    mq = (mq - m) - log_sum;
    const double ep = exp(mp), eq = exp(mq);
    /* Σ exp(l - max) as (entries at the max) + (the rest), so that log1p keeps a sum
     * whose rest is tiny exact (as lse.h does); the loss sums over K on the way */
    double at_p = 0.0, rest_p = 0.0, at_q = 0.0, rest_q = 0.0;
    double s_ce = 0.0, s_h = 0.0, s_kl = 0.0, s_rev = 0.0;
    for (ptrdiff_t j = 0; j < k; j++) {
        const double vj = (double)v[j];
        const double lp = is_log ? vj : log(vj);
        const double lq = ((double)x[idx[j]] - m) - log_sum;
        const double rp = is_log ? exp(lp - mp) : vj / vmax, rq = exp(lq - mq);
        if (lp == mp) at_p += 1.0; else rest_p += rp;
        if (lq == mq) at_q += 1.0; else rest_q += rq;
        const double p = is_log ? rp * ep : vj, q = rq * eq;
        if (p != 0.0) {
            s_ce += p * -lq;
            s_h += p * -lp;
            s_kl += p * (lp - lq);
        }
        if (q != 0.0) s_rev += q * (lq - lp);
    }
    const double log_p = mp > -INFINITY ? mp + log1p((at_p - 1.0) + rest_p) : mp;
    const double log_q = mq > -INFINITY ? mq + log1p((at_q - 1.0) + rest_q) : mq;
    res->psum = mp > -INFINITY ? ep * (at_p + rest_p) : 0.0;
    double log_pr = tail == DC_TAIL_BUCKET ? dc_log1mexp(log_p) : -INFINITY;
    double log_qr = dc_log1mexp(log_q);
    /* 1 - Q carries the rounding of Q (and of log S: float rows sum in float lanes), so a
     * small rest is summed over the classes outside K instead: one more scan of the row,
     * for such rows only. Exact 0 when K is every class or the rest is masked. */
    if (log_qr < DC_TOPK_LOG_SMALL_REST)
        log_qr = DC_FN(dc_topk_log_rest)(x, n, idx, k, m, log_sum);
    /* A teacher's rest against an empty one is +inf, unless it is rounding: below √eps of
     * T it counts as 0 (log-probabilities of a complete teacher that sum to 1 only up to
     * rounding, against k = n or a masked rest). */
    if (log_qr == -INFINITY && log_pr < DC_TOPK_LOG_NOISE) log_pr = -INFINITY;
    res->log_p = log_p;
    res->log_q = log_q;
    res->log_pr = log_pr;
    res->log_qr = log_qr;
    if (tail == DC_TAIL_BUCKET) {
        const double pr = exp(log_pr), qr = exp(log_qr);
        if (pr != 0.0) {
            s_ce += pr * -log_qr;
            s_h += pr * -log_pr;
            s_kl += pr * (log_pr - log_qr);
        }
        if (qr != 0.0) s_rev += qr * (log_qr - log_pr);
        res->mass = res->psum + pr;
    } else {
        const double inv_p = exp(-log_p);
        s_ce = s_ce * inv_p;
        s_h = s_h * inv_p + log_p;
        s_kl = s_kl * inv_p - log_p;
        if (tail == DC_TAIL_RENORMALIZE) {
            s_ce += log_q;
            s_kl += log_q;
            s_rev = s_rev * exp(-log_q) - log_q + log_p;
        }
        res->mass = res->psum * inv_p;
    }
    res->ce = s_ce;
    res->h = s_h;
    res->kl = dc_clamp_nonnegative(s_kl);
    res->kl_rev = dc_clamp_nonnegative(s_rev);
    res->js = 0.0;
    if (beta > 0.0 && beta < 1.0) { /* JS: a third read of K, with the cells' shifts */
        const double p_shift = tail == DC_TAIL_BUCKET ? 0.0 : log_p;
        const double q_shift = tail == DC_TAIL_RENORMALIZE ? log_q : 0.0;
        dc_topk_sums s = {0.0, 0.0, 0.0, 0.0, 0.0};
        for (ptrdiff_t j = 0; j < k; j++) {
            const double vj = (double)v[j];
            const double lp = (is_log ? vj : log(vj)) - p_shift;
            const double lq = (((double)x[idx[j]] - m) - log_sum) - q_shift;
            dc_topk_cell(&s, exp(lp), lp, exp(lq), lq, beta);
        }
        const double lqr = tail == DC_TAIL_RENORMALIZE ? -INFINITY : log_qr;
        dc_topk_cell(&s, exp(log_pr), log_pr, exp(lqr), lqr, beta);
        const double top = dc_binary_entropy(beta);
        const double js = dc_clamp_nonnegative(s.js);
        res->js = js != js ? js : js > top ? top : js;
    }
}

/* The gradient of the row's CE (or KL: the same) with respect to its logits, times
 * `scale`, into g (n values), from dc_topk_row's res (see topk.h for the formulas). The
 * classes outside K take one vector pass, g_j = scale·c·q_j = exp(x_j - M)·(scale·c / S);
 * when q_r is so small that p_r / q_r would overflow (or lose q_j's precision in T), they
 * take g_j = scale·(A·q_j - p_r·exp(log q_j - log q_r)) instead. K is written last. */
DC_TARGET DC_ENTRY void DC_FN(dc_topk_grad)(const DC_T *x, ptrdiff_t n, const int64_t *idx,
                                              const DC_T *v, ptrdiff_t k, int is_log, int tail,
                                              const dc_topk_result *res, double scale,
                                              DC_T *g)
{
    if (!(res->max > -INFINITY && res->max < INFINITY) || res->log_sum != res->log_sum) {
        for (ptrdiff_t i = 0; i < n; i++) g[i] = (DC_T)NAN;
        return;
    }
    const double m = res->max, log_sum = res->log_sum, a = res->mass;
    const double pr = exp(res->log_pr);
    /* log q_r below this: p_r / q_r is not taken as a number times q_j */
    const double tiny = sizeof(DC_T) == sizeof(float) ? -60.0 : -600.0;
    if (tail == DC_TAIL_RENORMALIZE) {
        for (ptrdiff_t i = 0; i < n; i++) g[i] = (DC_T)0;
    } else if (pr == 0.0 || res->log_qr > tiny) {
        const double c = pr == 0.0 ? a : a - exp(res->log_pr - res->log_qr);
        const double f = scale * c * exp(-log_sum);
        ptrdiff_t i = 0;
#ifdef DC_HAVE_VEC
        i = DC_FN(dc_log_softmax_vec)(x, n, 1, m, f, g);
#endif
        for (; i < n; i++) g[i] = (DC_T)(dc_exp_f64((double)x[i] - m) * f);
    } else {
        for (ptrdiff_t i = 0; i < n; i++) {
            const double lq = ((double)x[i] - m) - log_sum;
            g[i] = lq > -INFINITY
                ? (DC_T)(scale * (a * exp(lq) - exp(res->log_pr + lq - res->log_qr)))
                : (DC_T)0;
        }
    }
    const double p_shift = tail == DC_TAIL_BUCKET ? 0.0 : res->log_p;
    const double q_shift = tail == DC_TAIL_RENORMALIZE ? res->log_q : 0.0;
    for (ptrdiff_t j = 0; j < k; j++) {
        const double vj = (double)v[j];
        const double p = exp((is_log ? vj : log(vj)) - p_shift);
        const double q = exp((((double)x[idx[j]] - m) - log_sum) - q_shift);
        g[idx[j]] = (DC_T)(scale * (a * q - p));
    }
}

/* The public row kernels (kernels.h): temperature 1, no mask. */
DC_TARGET DC_ENTRY double DC_FN(dc_topk_kl)(const DC_T *logits, ptrdiff_t n, const int64_t *idx,
                                              const DC_T *vals, ptrdiff_t k, int is_log,
                                              int tail)
{
    dc_topk_result res;
    DC_FN(dc_topk_row)(logits, n, idx, vals, k, is_log, tail, -1.0, &res);
    return res.kl;
}

DC_TARGET DC_ENTRY double DC_FN(dc_topk_ce)(const DC_T *logits, ptrdiff_t n, const int64_t *idx,
                                              const DC_T *vals, ptrdiff_t k, int is_log,
                                              int tail)
{
    dc_topk_result res;
    DC_FN(dc_topk_row)(logits, n, idx, vals, k, is_log, tail, -1.0, &res);
    return res.ce;
}

#undef DC_TOPK_LOG_NOISE
#undef DC_TOPK_LOG_SMALL_REST
#undef DC_FN
