/* divcore/split_t.h: one long row split across threads, for the losses against a soft
 * target (forward and reverse KL, CE), the entropies and Jensen-Shannon (type-generic, after
 * losses_t.h; DC_T, DC_SFX defined).
 *
 * Each thread folds its part of the row (block-aligned, so that every block is the one the
 * whole row's read takes) into the running state of the kind's one-read kernel
 * (dc_split_part); the states are then merged in order, each moved to the common maxima as
 * the kernel moves its own state when a block raises the max (losses.h: dc_soft_state_merge,
 * dc_logits_sums_merge, dc_entropy_sums_merge), and finished as the whole row's state is
 * (dc_split_join). The results agree with the one-thread read to rounding (the parts' sums
 * are added in another order), as the log-sum-exp's split rows do. Jensen-Shannon reads
 * its row twice, as reverse KL against probabilities does: the parts' scans are merged
 * first, then each part's values pass (dc_split_js_part, dc_split_kl_reverse_part) takes
 * the whole row's. */

#define DC_FN(name) DC_ISA_NAME(name, DC_SFX)

/* x[0 .. n) (and t, w: NULL for none) of one part into *part, for `kind`: DC_TARGET_PROBS,
 * DC_TARGET_LOG_PROBS or DC_TARGET_LOGITS (cross-entropy, entropy and KL against that
 * target; want_h: the entropy and KL too), DC_SPLIT_ENTROPY (H(softmax(x)); t unused), or
 * DC_SPLIT_ENTROPY_PROBS / _LOG_PROBS (H of x as probabilities / log-probabilities). */
DC_TARGET DC_ENTRY void DC_FN(dc_split_part)(const DC_T *x, const DC_T *t, const DC_T *w,
                                             ptrdiff_t n, int kind, int want_h,
                                             dc_soft_split *part)
{
    if (kind == DC_SPLIT_ENTROPY_PROBS || kind == DC_SPLIT_ENTROPY_LOG_PROBS) {
        part->h = DC_FN(dc_entropy_target)(x, n, kind == DC_SPLIT_ENTROPY_LOG_PROBS,
                                           &part->psum, &part->nbad);
    } else if (kind == DC_SPLIT_ENTROPY) {
        dc_lse_init(&part->ent);
        part->u = 0.0;
        part->ent_ok = DC_FN(dc_entropy_update)(x, n, &part->ent, &part->u);
    } else if (kind == DC_TARGET_LOGITS) {
        dc_logits_sums_init(&part->logits);
        DC_FN(dc_logits_update)(x, t, w, n, &part->logits);
    } else {
        dc_soft_state_init(&part->soft);
        DC_FN(dc_soft_target_update)(&part->soft, x, t, w, n, kind == DC_TARGET_LOG_PROBS,
                                     want_h);
    }
}

/* The row's result from its parts[0 .. count) (in the row's order; parts[0] is merged
 * into): res as dc_soft_target_row / dc_soft_logits give it (weighted: class weights were
 * given), or for the DC_SPLIT_ENTROPY* kinds the entropy in res->ce (and a target's sums
 * in res->psum, res->nbad). */
DC_TARGET DC_ENTRY void DC_FN(dc_split_join)(dc_soft_split *parts, ptrdiff_t count, int kind,
                                             int weighted, int want_h, dc_soft_result *res)
{
    dc_soft_split *p = &parts[0];
    if (kind == DC_SPLIT_ENTROPY_PROBS || kind == DC_SPLIT_ENTROPY_LOG_PROBS) {
        for (ptrdiff_t i = 1; i < count; i++) {   /* sums: the parts' add */
            p->h += parts[i].h;
            p->psum += parts[i].psum;
            p->nbad += parts[i].nbad;
        }
        res->ce = p->h;
        res->psum = p->psum;
        res->nbad = p->nbad;
    } else if (kind == DC_SPLIT_ENTROPY) {
        for (ptrdiff_t i = 1; i < count; i++)
            dc_entropy_sums_merge(&p->ent, &p->u, &p->ent_ok, &parts[i].ent, parts[i].u,
                                  parts[i].ent_ok);
        res->ce = p->ent_ok && dc_lse_ok(&p->ent) ? dc_entropy_of_sums(&p->ent, p->u) : NAN;
    } else if (kind == DC_TARGET_LOGITS) {
        for (ptrdiff_t i = 1; i < count; i++) dc_logits_sums_merge(&p->logits, &parts[i].logits);
        DC_FN(dc_soft_logits_finish)(&p->logits, weighted, res);
    } else {
        for (ptrdiff_t i = 1; i < count; i++) dc_soft_state_merge(&p->soft, &parts[i].soft);
        DC_FN(dc_soft_target_finish)(&p->soft, weighted, want_h, res);
    }
}

/* Jensen-Shannon over a split row: one part's values pass (dc_js_values) once the whole
 * row's scans sx (and a logits target's st) are merged; its sums into
 * sums[0 .. 3) = {js, the target's mass, its bad entries}, for dc_js_finish. `vec`: the
 * whole row is longer than the lanes take. */
DC_TARGET DC_ENTRY void DC_FN(dc_split_js_part)(const DC_T *x, const DC_T *t, ptrdiff_t n,
                                                int kind, double beta, const dc_lse_state *sx,
                                                const dc_lse_state *st, int vec, double *sums)
{
    const int ok = dc_js_ok(sx, st, kind);
    const double log_sx = ok ? dc_lse_log_sum(sx) : 0.0;
    const double log_st = ok && kind == DC_TARGET_LOGITS ? dc_lse_log_sum(st) : 0.0;
    double js = 0.0, ps = 0.0;
    ptrdiff_t bad = 0;
    DC_FN(dc_js_values)(x, t, n, kind, ok, vec, sx, log_sx, st, log_st, beta, &js, &ps, &bad);
    sums[0] = js;
    sums[1] = ps;
    sums[2] = (double)bad;
}

/* Reverse KL against probabilities or log-probabilities over a split row: one part's
 * values pass (dc_kl_reverse_values; parts start at multiples of DC_BLOCK) once the whole
 * row's scan sx is merged; sums[0 .. 3) = {kl, the target's mass, its bad entries}, for
 * dc_kl_reverse_finish. */
DC_TARGET DC_ENTRY void DC_FN(dc_split_kl_reverse_part)(const DC_T *x, const DC_T *t,
                                                        ptrdiff_t n, int is_log,
                                                        const dc_lse_state *sx, double *sums)
{
    double kl = 0.0, ps = 0.0;
    ptrdiff_t bad = 0;
    DC_FN(dc_kl_reverse_values)(x, t, n, is_log, sx, &kl, &ps, &bad);
    sums[0] = kl;
    sums[1] = ps;
    sums[2] = (double)bad;
}

#undef DC_FN
