# divcore/kernels.pxd: divcore's C-level API for Cython, the row kernels of
# divcore/kernels.h (documented there: formula, edge cases, empty and all -inf rows).
#
#     from divcore.kernels cimport dc_logsumexp_f64, dc_ce_label_f32
#
# divcore.get_include() holds divcore/kernels.pxd and divcore/kernels.h: give it to Cython
# (cythonize(..., include_path=[...]), or `cython -I`) and to the C compiler (the
# Extension's include_dirs; setuptools' build_ext without cythonize uses these for both).
# Nothing to link: the functions are static inline C, compiled into your extension, which
# then neither imports nor needs divcore at run time. All of them are nogil and noexcept.
# Sizes and labels are Py_ssize_t (ptrdiff_t in C). Every result is a double, for float
# rows too. A label must be in [0, n): it is not checked.

cdef extern from "divcore/kernels.h" nogil:
    # The version of the headers compiled in ("0.1.0"; 10000*major + 100*minor + patch).
    const char *DIVCORE_VERSION
    enum:
        DIVCORE_VERSION_MAJOR
        DIVCORE_VERSION_MINOR
        DIVCORE_VERSION_PATCH
        DIVCORE_VERSION_NUMBER

    # log sum exp(x): -inf for an empty or all -inf row, nan with a nan or +inf.
    double dc_logsumexp_f32(const float *x, Py_ssize_t n)
    double dc_logsumexp_f64(const double *x, Py_ssize_t n)

    # -log softmax(x)[label]; nan for a row without a distribution (empty, all -inf,
    # nan, +inf); +inf when x[label] is -inf.
    double dc_ce_label_f32(const float *x, Py_ssize_t n, Py_ssize_t label)
    double dc_ce_label_f64(const double *x, Py_ssize_t n, Py_ssize_t label)

    # H(p, softmax(logits)) = sum p_i (lse - logits_i), p as given (not renormalised).
    double dc_ce_probs_f32(const float *logits, const float *p, Py_ssize_t n)
    double dc_ce_probs_f64(const double *logits, const double *p, Py_ssize_t n)

    # KL(softmax(target_logits) || softmax(logits)), >= 0, exactly 0 for equal rows.
    double dc_kl_logits_f32(const float *target_logits, const float *logits, Py_ssize_t n)
    double dc_kl_logits_f64(const double *target_logits, const double *logits, Py_ssize_t n)

    # H(softmax(x)); nan for an empty or all -inf row.
    double dc_entropy_logits_f32(const float *x, Py_ssize_t n)
    double dc_entropy_logits_f64(const double *x, Py_ssize_t n)

    # Row writers: out[i] = log softmax(x)[i] (or softmax(x)[i]). Return 1, or 0 for a row
    # without a distribution (then out is all nan). out may be x itself.
    int dc_log_softmax_f32(const float *x, Py_ssize_t n, float *out)
    int dc_log_softmax_f64(const double *x, Py_ssize_t n, double *out)
    int dc_softmax_f32(const float *x, Py_ssize_t n, float *out)
    int dc_softmax_f64(const double *x, Py_ssize_t n, double *out)
