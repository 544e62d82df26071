"""The one table of divcore's kernel signatures (issue 11: generated glue).

tools/generate.py makes every declaration of these kernels from it:
    src/divcore/dispatch_table.h   the dispatched dcd_* wrappers and the public dc_* names (C)
    src/divcore/kernels.pxd        the public kernels for Cython (also divcore/kernels.pxd)
    src/divcore/dispatch.pxd       dc_simd_select and the dcd_* aliases (also divcore/dispatch.pxd)
    divcore/_kernels_decl.pxi      what divcore/_core.pyx declares (structs, helpers, dcd_*)

A kernel is written once with T for its element type; it exists as NAME_f32 (T = float)
and NAME_f64 (T = double), each built for the portable baseline and for AVX2 and AVX-512
(NAME_f32_base, NAME_f32_avx2, NAME_f32_avx512; see src/divcore/dispatch.h). Parameters
are C declarations; ptrdiff_t becomes Py_ssize_t in Cython.
"""
from collections import namedtuple

Kernel = namedtuple("Kernel", "ret name params doc")


def K(ret, name, params, doc=""):
    return Kernel(ret, name, params, doc)


# The public kernels: dc_NAME_f32 / _f64, dispatched at run time (the portable build with
# DIVCORE_PORTABLE), documented in src/divcore/kernels.h and docs/c_api.md. dcd_dc_NAME_*
# is an alias of each (the names of divcore 0.1's dispatch.h).
PUBLIC = [
    K("double", "dc_logsumexp", "const T *x, ptrdiff_t n",
      "log sum exp(x): -inf for an empty or all -inf row, nan with a nan or +inf."),
    K("double", "dc_ce_label", "const T *x, ptrdiff_t n, ptrdiff_t label",
      "-log softmax(x)[label]; nan for a row without a distribution (empty, all -inf,\n"
      "nan, +inf); +inf when x[label] is -inf. label in [0, n): not checked."),
    K("double", "dc_ce_probs", "const T *logits, const T *p, ptrdiff_t n",
      "H(p, softmax(logits)) = sum p_i (lse - logits_i), p as given (not renormalised)."),
    K("double", "dc_kl_logits", "const T *target_logits, const T *logits, ptrdiff_t n",
      "KL(softmax(target_logits) || softmax(logits)), >= 0, exactly 0 for equal rows."),
    K("double", "dc_entropy_logits", "const T *x, ptrdiff_t n",
      "H(softmax(x)); nan for an empty or all -inf row."),
    K("int", "dc_log_softmax", "const T *x, ptrdiff_t n, T *out",
      "out[i] = log softmax(x)[i]. Returns 1, or 0 for a row without a distribution\n"
      "(then out is all nan). out may be x itself."),
    K("int", "dc_softmax", "const T *x, ptrdiff_t n, T *out",
      "out[i] = softmax(x)[i]; otherwise as dc_log_softmax_*."),
    K("ptrdiff_t", "dc_batch_logsumexp",
      "const T *x, ptrdiff_t n_rows, ptrdiff_t n, ptrdiff_t row_stride, ptrdiff_t col_stride, "
      "const unsigned char *mask, ptrdiff_t mask_row_stride, ptrdiff_t mask_col_stride, "
      "double *out",
      "Per-row log-sum-exp of n_rows rows (strides in bytes; mask NULL or 1 = keep) into\n"
      "out[n_rows]. Returns DC_BATCH_OK, or DC_BATCH_NO_MEMORY."),
    K("ptrdiff_t", "dc_batch_ce_labels",
      "const T *x, ptrdiff_t n_rows, ptrdiff_t n, ptrdiff_t row_stride, ptrdiff_t col_stride, "
      "const int64_t *labels, ptrdiff_t label_stride, const T *weight, int64_t ignore_index, "
      "const unsigned char *mask, ptrdiff_t mask_row_stride, ptrdiff_t mask_col_stride, "
      "double *out, dc_reduced *red",
      "Per-row w_y * (-log softmax(x)[y]) into out (NULL: none), 0 for rows labelled\n"
      "ignore_index; sum, weight (sum of w_y) and mean into red (NULL: none). label_stride\n"
      "in labels; weight NULL or n class weights. Returns DC_BATCH_OK, DC_BATCH_NO_MEMORY,\n"
      "or row + 1 of the first label out of [0, n) (nothing written)."),
    K("ptrdiff_t", "dc_batch_ce_probs",
      "const T *x, ptrdiff_t n_rows, ptrdiff_t n, ptrdiff_t row_stride, ptrdiff_t col_stride, "
      "const T *p, ptrdiff_t p_row_stride, ptrdiff_t p_col_stride, int is_log, "
      "const T *weight, "
      "const unsigned char *mask, ptrdiff_t mask_row_stride, ptrdiff_t mask_col_stride, "
      "double *out, dc_reduced *red",
      "Per-row H(p, softmax(x)) (is_log: p holds log-probabilities), class weights\n"
      "optional; out and red as dc_batch_ce_labels_*, every row weighing 1. Not validated."),
    K("ptrdiff_t", "dc_batch_kl_logits",
      "const T *x, ptrdiff_t n_rows, ptrdiff_t n, ptrdiff_t row_stride, ptrdiff_t col_stride, "
      "const T *target_logits, ptrdiff_t t_row_stride, ptrdiff_t t_col_stride, "
      "const unsigned char *mask, ptrdiff_t mask_row_stride, ptrdiff_t mask_col_stride, "
      "double *out, dc_reduced *red",
      "Per-row KL(softmax(target_logits) || softmax(x)) (both masked by mask); out and red\n"
      "as dc_batch_ce_probs_*."),
    K("double", "dc_topk_kl",
      "const T *logits, ptrdiff_t n, const int64_t *idx, const T *vals, ptrdiff_t k, "
      "int is_log, int tail",
      "KL against a sparse teacher: k classes idx (in [0, n), distinct: not checked) with\n"
      "their probabilities (is_log 0) or log-probabilities (is_log 1) vals; tail\n"
      "DC_TAIL_BUCKET, DC_TAIL_DROP or DC_TAIL_RENORMALIZE (divcore.kl_divergence with a\n"
      "divcore.TopK target). NaN for a row without a distribution."),
    K("double", "dc_topk_ce",
      "const T *logits, ptrdiff_t n, const int64_t *idx, const T *vals, ptrdiff_t k, "
      "int is_log, int tail",
      "Cross-entropy against a sparse teacher; arguments as dc_topk_kl_*."),
    K("void", "dc_row_stats",
      "const T *x, ptrdiff_t n, ptrdiff_t label, ptrdiff_t k, int64_t *topk_index, "
      "double *topk_log_prob, dc_row_stats *out",
      "One read of the row: its logsumexp, log softmax(x)[label] (label < 0: none, NaN),\n"
      "entropy and argmax into *out, and the k (0 <= k <= n) largest log-probabilities\n"
      "with their indices, best first (ties: lower index first), into topk_*[0 .. k)."),
]

# The public row kernels for half-precision storage: rows of uint16_t holding IEEE float16
# (dc_NAME_f16) or bfloat16 (dc_NAME_bf16) bits. Each gives the bits of dc_NAME_f32 on the
# exactly widened row at the same instruction set, allocating nothing (src/divcore/half_t.h);
# the writers write float. Dispatched and documented as the others (kernels.h, docs/c_api.md).
HALF_TYPES = ["f16", "bf16"]
HALF = [
    K("double", "dc_logsumexp", "const uint16_t *x, ptrdiff_t n",
      "dc_logsumexp_f32 of the widened row (uint16_t bits of float16 / bfloat16)."),
    K("double", "dc_ce_label", "const uint16_t *x, ptrdiff_t n, ptrdiff_t label",
      "dc_ce_label_f32 of the widened row."),
    K("double", "dc_ce_probs", "const uint16_t *logits, const uint16_t *p, ptrdiff_t n",
      "dc_ce_probs_f32 of the widened rows (logits and p both half)."),
    K("double", "dc_kl_logits",
      "const uint16_t *target_logits, const uint16_t *logits, ptrdiff_t n",
      "dc_kl_logits_f32 of the widened rows (both half)."),
    K("double", "dc_entropy_logits", "const uint16_t *x, ptrdiff_t n",
      "dc_entropy_logits_f32 of the widened row."),
    K("int", "dc_log_softmax", "const uint16_t *x, ptrdiff_t n, float *out",
      "dc_log_softmax_f32 of the widened row, into float out[n] (not overlapping x)."),
    K("int", "dc_softmax", "const uint16_t *x, ptrdiff_t n, float *out",
      "dc_softmax_f32 of the widened row, into float out[n] (not overlapping x)."),
]

# Kernels divcore._core calls through their dispatched dcd_* wrappers only (not public:
# they may change in any release). In the order of divcore 0.1's dispatch.h.
INTERNAL = [
    K("void", "dc_lse_update", "dc_lse_state *st, const T *x, ptrdiff_t n"),
    K("void", "dc_lse_scan_rows",
      "const dc_rows *r, ptrdiff_t first, ptrdiff_t count, dc_lse_state *out, double *log_sum"),
    K("void", "dc_lse_scan_adjacent",
      "const T *x, ptrdiff_t n, ptrdiff_t cs, ptrdiff_t count, dc_lse_state *st"),
    K("void", "dc_soft_probs_rows",
      "const dc_rows *rx, const dc_rows *rt, const T *w, ptrdiff_t first, ptrdiff_t count, "
      "dc_soft_result *res"),
    K("int", "dc_log_softmax_of_state",
      "const T *x, ptrdiff_t n, const dc_lse_state *st, double log_sum, int exponentiate, "
      "T *out"),
    K("int", "dc_log_softmax_row", "const T *x, ptrdiff_t n, int exponentiate, T *out"),
    K("void", "dc_soft_target_row",
      "const T *x, const T *t, const T *w, ptrdiff_t n, int is_log, int want_h, "
      "dc_soft_result *res"),
    K("void", "dc_soft_logits",
      "const T *x, const T *t, const T *w, ptrdiff_t n, dc_soft_result *res"),
    K("void", "dc_soft_logits_adjacent",
      "const T *x, const T *t, ptrdiff_t n, ptrdiff_t xcs, ptrdiff_t tcs, ptrdiff_t count, "
      "dc_soft_result *res"),
    K("void", "dc_split_part",
      "const T *x, const T *t, const T *w, ptrdiff_t n, int kind, int want_h, "
      "dc_soft_split *part"),
    K("void", "dc_split_join",
      "dc_soft_split *parts, ptrdiff_t count, int kind, int weighted, int want_h, "
      "dc_soft_result *res"),
    K("void", "dc_split_js_part",
      "const T *x, const T *t, ptrdiff_t n, int kind, double beta, const dc_lse_state *sx, "
      "const dc_lse_state *st, int vec, double *sums"),
    K("void", "dc_split_kl_reverse_part",
      "const T *x, const T *t, ptrdiff_t n, int is_log, const dc_lse_state *sx, double *sums"),
    K("void", "dc_log_softmax_adjacent",
      "const T *x, ptrdiff_t count, ptrdiff_t k, ptrdiff_t n, const double *m, const double *c, "
      "int exponentiate, T *out"),
    K("void", "dc_kl_reverse_target",
      "const T *x, const T *t, ptrdiff_t n, int is_log, dc_soft_result *res"),
    K("void", "dc_target_check",
      "const T *t, ptrdiff_t n, int is_log, double *psum, ptrdiff_t *nbad"),
    K("double", "dc_entropy_target",
      "const T *t, ptrdiff_t n, int is_log, double *psum, ptrdiff_t *nbad"),
    K("double", "dc_js_row",
      "const T *x, const T *t, ptrdiff_t n, int kind, double beta, double *psum, "
      "ptrdiff_t *nbad"),
    K("void", "dc_soft_grad",
      "const T *x, const T *t, const T *w, ptrdiff_t n, int kind, const dc_soft_result *r, "
      "double scale, T *g"),
    K("double", "dc_ce_label_grad",
      "const T *x, ptrdiff_t n, ptrdiff_t label, double scale, T *g"),
    K("void", "dc_kl_reverse_grad",
      "const T *x, const T *t, ptrdiff_t n, int kind, const dc_soft_result *r, double kl, "
      "double scale, T *g"),
    # short rows in lanes beyond the log-sum-exp (lanes_soft_t.h, lanes_js_t.h,
    # lanes_grad_t.h)
    K("void", "dc_logits_rows",
      "const dc_rows *rx, const dc_rows *rt, const T *w, ptrdiff_t first, ptrdiff_t count, "
      "dc_soft_result *res"),
    K("void", "dc_entropy_logits_rows",
      "const dc_rows *r, ptrdiff_t first, ptrdiff_t count, double *out"),
    K("void", "dc_ce_label_grad_rows",
      "const dc_rows *r, const ptrdiff_t *labels, const double *scale, ptrdiff_t first, "
      "ptrdiff_t count, double *loss, T *g"),
    K("void", "dc_soft_grad_rows",
      "const dc_rows *rx, const dc_rows *rt, const T *w, int kind, const dc_soft_result *res, "
      "double scale, ptrdiff_t first, ptrdiff_t count, T *g"),
    K("void", "dc_soft_target_rows",
      "const dc_rows *rx, const dc_rows *rt, const T *w, int is_log, int want_h, "
      "ptrdiff_t first, ptrdiff_t count, dc_soft_result *res"),
    K("void", "dc_kl_reverse_rows",
      "const dc_rows *rx, const dc_rows *rt, int is_log, ptrdiff_t first, ptrdiff_t count, "
      "dc_soft_result *res"),
    K("void", "dc_kl_reverse_grad_rows",
      "const dc_rows *rx, const dc_rows *rt, int kind, const dc_soft_result *res, "
      "double scale, ptrdiff_t first, ptrdiff_t count, T *g"),
    K("void", "dc_js_rows",
      "const dc_rows *rx, const dc_rows *rt, int kind, double beta, ptrdiff_t first, "
      "ptrdiff_t count, double *js, double *psum, ptrdiff_t *nbad"),
    # TopK targets (topk_t.h)
    K("void", "dc_topk_row",
      "const T *x, ptrdiff_t n, const int64_t *idx, const T *v, ptrdiff_t k, int is_log, "
      "int tail, double beta, dc_topk_result *res"),
    K("void", "dc_topk_grad",
      "const T *x, ptrdiff_t n, const int64_t *idx, const T *v, ptrdiff_t k, int is_log, "
      "int tail, const dc_topk_result *res, double scale, T *g"),
    # binary cross-entropy of 1-d operands (bce_t.h; strides in bytes)
    K("double", "dc_bce_values",
      "const T *x, ptrdiff_t sx, const T *y, ptrdiff_t sy, const T *w, ptrdiff_t sw, "
      "const T *pw, ptrdiff_t spw, ptrdiff_t n, double *out, ptrdiff_t so"),
]

# Public kernels whose dcd_* alias divcore._core also calls (declared in _kernels_decl.pxi).
CORE_USES_PUBLIC = ["dc_logsumexp", "dc_ce_label", "dc_entropy_logits", "dc_row_stats"]

# The half-precision kernels divcore._core calls (class-last half rows of the log-sum-exp
# and of cross-entropy with labels: widened a DC_BLOCK chunk at a time, in L1).
CORE_USES_HALF = ["dc_logsumexp", "dc_ce_label"]

# The dcd_* names of divcore 0.1's dispatch.pxd, kept there for extensions that use them.
DISPATCH_PXD_ALIASES = ["dc_logsumexp", "dc_ce_label", "dc_ce_probs", "dc_kl_logits",
                        "dc_entropy_logits"]
DISPATCH_PXD_INTERNAL = [  # documented in 0.1's dispatch.pxd (exponentiate: 0 log, 1 softmax)
    "dc_log_softmax_row"]

# What divcore/_core.pyx declares besides the dcd_* kernels: the structs it fills and reads,
# and helpers that are not built per instruction set. Cython declarations, verbatim.
CORE_TYPES = """\
ctypedef struct dc_rows:
    const char *data
    Py_ssize_t row_stride
    Py_ssize_t col_stride
    Py_ssize_t n
    const unsigned char *mask
    Py_ssize_t mask_row_stride
    Py_ssize_t mask_col_stride
    double temperature

ctypedef struct dc_soft_result:
    double ce
    double h
    double kl
    double psum
    Py_ssize_t nbad
    double asum
    double max
    double sum
    double tmax
    double tsum

ctypedef struct dc_row_stats:
    double logsumexp
    double log_prob
    double entropy
    Py_ssize_t argmax

ctypedef struct dc_lse_state:
    double max
    double at_max
    double rest
    double rest_c
    int nan

ctypedef struct dc_topk_result:
    double ce
    double h
    double kl
    double kl_rev
    double js
    double psum
    Py_ssize_t nbad
    double max
    double log_sum
    double log_pr
    double log_qr
    double log_q
    double log_p
    double mass

ctypedef struct dc_soft_split:  # one part of a long row over threads (only its size used)
    int ent_ok

enum:
    DC_SPLIT_ENTROPY
    DC_SPLIT_ENTROPY_PROBS
    DC_SPLIT_ENTROPY_LOG_PROBS
    DC_TAIL_BUCKET
    DC_TAIL_DROP
    DC_TAIL_RENORMALIZE
    DC_LANES_MAX_N
    DC_BLOCK
    DC_TARGET_PROBS
    DC_TARGET_LOG_PROBS
    DC_TARGET_LOGITS
"""

CORE_HELPERS = """\
const float *dc_row_f32(const dc_rows *r, Py_ssize_t i, float fill, float *buf)
const double *dc_row_f64(const dc_rows *r, Py_ssize_t i, double fill, double *buf)
float dc_row_value_f32(const dc_rows *r, Py_ssize_t i, Py_ssize_t c, float fill)
double dc_row_value_f64(const dc_rows *r, Py_ssize_t i, Py_ssize_t c, double fill)
void dc_smoothed_target_f32(const dc_rows *r, Py_ssize_t i, const float *p,
                            Py_ssize_t label, double eps, float *out)
void dc_smoothed_target_f64(const dc_rows *r, Py_ssize_t i, const double *p,
                            Py_ssize_t label, double eps, double *out)
void dc_lse_init(dc_lse_state *st)
void dc_lse_merge(dc_lse_state *into, const dc_lse_state *part)
int dc_lse_ok(const dc_lse_state *st)
double dc_lse_log_sum(const dc_lse_state *st)
double dc_lse_sum(const dc_lse_state *st)
int dc_js_ok(const dc_lse_state *sx, const dc_lse_state *st, int kind)
void dc_kl_reverse_finish(const dc_lse_state *sx, double kl, double psum, Py_ssize_t nbad,
                          dc_soft_result *res)
double dc_js_finish(int ok, int kind, double beta, double js, double ps, Py_ssize_t bad,
                    double *psum, Py_ssize_t *nbad)
double dc_lse_value_of_log_sum(const dc_lse_state *st, double log_sum)
double dc_ce_label_of_log_sum(const dc_lse_state *st, double log_sum, double x_y)
double dc_bce_logit(double x, double y, double pw)
int dc_simd_select()
const char *dc_simd_name(int level)
"""
