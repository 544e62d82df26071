# cython: language_level=3, boundscheck=False, wraparound=False
"""row_scores: a tiny extension built on divcore's C-level API (divcore/kernels.pxd).

Each function scores the rows of a C-contiguous (N, C) float32 or float64 array into a
caller's float64 buffer of N values, the way a decoder's inner loop would: no Python
objects and no GIL inside the loop, and no divcore at run time (the kernels are compiled
into this module). The dc_* kernels run the best instruction set of the CPU, chosen at
their first call: the same bits as divcore's Python API.
"""
from cython cimport floating
from cython.parallel cimport prange

from divcore.kernels cimport (
    DIVCORE_VERSION,
    DC_BATCH_OK,
    dc_reduced,
    dc_batch_ce_labels_f32, dc_batch_ce_labels_f64,
    dc_ce_label_f32, dc_ce_label_f64,
    dc_ce_probs_f32, dc_ce_probs_f64,
    dc_entropy_logits_f32, dc_entropy_logits_f64,
    dc_kl_logits_f32, dc_kl_logits_f64,
    dc_log_softmax_f32, dc_log_softmax_f64,
    dc_logsumexp_f32, dc_logsumexp_f64,
    dc_softmax_f32, dc_softmax_f64,
)
from divcore.dispatch cimport (
    dc_simd_name, dc_simd_select, dcd_dc_logsumexp_f32, dcd_dc_logsumexp_f64,
)
from libc.stdint cimport int64_t


def divcore_version():
    """The version of the divcore headers this module was compiled against."""
    return DIVCORE_VERSION.decode()


def simd_level():
    """The instruction set this module's kernels run: baseline, avx2 or avx512 (chosen
    once; calling dc_simd_select() is optional, the first kernel call would choose it)."""
    return dc_simd_name(dc_simd_select()).decode()


cdef void _check_rows(Py_ssize_t rows, Py_ssize_t out_len) except *:
    if out_len != rows:
        raise ValueError(f"out holds {out_len} values for {rows} rows")


def logsumexp(const floating[:, ::1] x, double[::1] out):
    """out[i] = log sum_j exp(x[i, j]) (-inf for an empty or all -inf row)."""
    cdef Py_ssize_t i, n = x.shape[1]
    _check_rows(x.shape[0], out.shape[0])
    with nogil:
        for i in range(x.shape[0]):
            if floating is float:
                out[i] = dc_logsumexp_f32(&x[i, 0], n)
            else:
                out[i] = dc_logsumexp_f64(&x[i, 0], n)


def logsumexp_dispatched(const floating[:, ::1] x, double[::1] out):
    """logsumexp through divcore 0.1's name for the dispatched build (dcd_*, an alias of
    dc_logsumexp_* now)."""
    cdef Py_ssize_t i, n = x.shape[1]
    _check_rows(x.shape[0], out.shape[0])
    with nogil:
        for i in range(x.shape[0]):
            if floating is float:
                out[i] = dcd_dc_logsumexp_f32(&x[i, 0], n)
            else:
                out[i] = dcd_dc_logsumexp_f64(&x[i, 0], n)


def cross_entropy_labels(const floating[:, ::1] logits, const int64_t[::1] labels,
                         double[::1] out):
    """out[i] = -log softmax(logits[i])[labels[i]]. The kernel does not check the label:
    this loop does, before it runs (a label out of range raises IndexError)."""
    cdef Py_ssize_t i, n = logits.shape[1]
    _check_rows(logits.shape[0], out.shape[0])
    _check_rows(logits.shape[0], labels.shape[0])
    for i in range(labels.shape[0]):
        if not 0 <= labels[i] < n:
            raise IndexError(f"row {i}: label {labels[i]} is not in [0, {n})")
    with nogil:
        for i in range(logits.shape[0]):
            if floating is float:
                out[i] = dc_ce_label_f32(&logits[i, 0], n, <Py_ssize_t>labels[i])
            else:
                out[i] = dc_ce_label_f64(&logits[i, 0], n, <Py_ssize_t>labels[i])


def cross_entropy_probs(const floating[:, ::1] logits, const floating[:, ::1] p,
                        double[::1] out):
    """out[i] = H(p[i], softmax(logits[i])), p used as given (not validated)."""
    cdef Py_ssize_t i, n = logits.shape[1]
    _check_rows(logits.shape[0], out.shape[0])
    if p.shape[0] != logits.shape[0] or p.shape[1] != n:
        raise ValueError("p and logits differ in shape")
    with nogil:
        for i in range(logits.shape[0]):
            if floating is float:
                out[i] = dc_ce_probs_f32(&logits[i, 0], &p[i, 0], n)
            else:
                out[i] = dc_ce_probs_f64(&logits[i, 0], &p[i, 0], n)


def kl_logits(const floating[:, ::1] teacher, const floating[:, ::1] student,
              double[::1] out):
    """out[i] = KL(softmax(teacher[i]) || softmax(student[i]))."""
    cdef Py_ssize_t i, n = student.shape[1]
    _check_rows(student.shape[0], out.shape[0])
    if teacher.shape[0] != student.shape[0] or teacher.shape[1] != n:
        raise ValueError("teacher and student differ in shape")
    with nogil:
        for i in range(student.shape[0]):
            if floating is float:
                out[i] = dc_kl_logits_f32(&teacher[i, 0], &student[i, 0], n)
            else:
                out[i] = dc_kl_logits_f64(&teacher[i, 0], &student[i, 0], n)


def entropy(const floating[:, ::1] x, double[::1] out):
    """out[i] = H(softmax(x[i]))."""
    cdef Py_ssize_t i, n = x.shape[1]
    _check_rows(x.shape[0], out.shape[0])
    with nogil:
        for i in range(x.shape[0]):
            if floating is float:
                out[i] = dc_entropy_logits_f32(&x[i, 0], n)
            else:
                out[i] = dc_entropy_logits_f64(&x[i, 0], n)


def log_softmax(const floating[:, ::1] x, floating[:, ::1] out, bint exponentiate=False):
    """out = log_softmax(x) row by row (softmax(x) with exponentiate=True); out may be x.
    Returns how many rows had a distribution (the others are written as NaN)."""
    cdef Py_ssize_t i, n = x.shape[1], ok = 0
    if out.shape[0] != x.shape[0] or out.shape[1] != n:
        raise ValueError("out and x differ in shape")
    with nogil:
        for i in range(x.shape[0]):
            if floating is float:
                if exponentiate:
                    ok += dc_softmax_f32(&x[i, 0], n, &out[i, 0])
                else:
                    ok += dc_log_softmax_f32(&x[i, 0], n, &out[i, 0])
            else:
                if exponentiate:
                    ok += dc_softmax_f64(&x[i, 0], n, &out[i, 0])
                else:
                    ok += dc_log_softmax_f64(&x[i, 0], n, &out[i, 0])
    return ok


def logsumexp_parallel(const floating[:, ::1] x, double[::1] out, int num_threads=0):
    """logsumexp with the rows spread over OpenMP threads (prange): the kernels keep no
    state, so any number of threads may call them at once. Built with -fopenmp (setup.py);
    without OpenMP, prange runs on one thread. num_threads 0: OpenMP's default."""
    cdef Py_ssize_t i, n = x.shape[1]
    _check_rows(x.shape[0], out.shape[0])
    if num_threads <= 0:
        for i in prange(x.shape[0], nogil=True, schedule="static"):
            if floating is float:
                out[i] = dc_logsumexp_f32(&x[i, 0], n)
            else:
                out[i] = dc_logsumexp_f64(&x[i, 0], n)
    else:
        for i in prange(x.shape[0], nogil=True, schedule="static", num_threads=num_threads):
            if floating is float:
                out[i] = dc_logsumexp_f32(&x[i, 0], n)
            else:
                out[i] = dc_logsumexp_f64(&x[i, 0], n)


def cross_entropy_batch(const floating[:, :] logits, const int64_t[:] labels, double[::1] out,
                        int64_t ignore_index=-100):
    """Per-row cross-entropy with labels into out, and its mean over the rows not ignored
    (returned): one call of the batch kernel, which takes any strides (the memoryviews here
    accept non-contiguous arrays) and short rows many at a time. The same values as
    divcore.cross_entropy(logits, labels, reduction="none") and reduction="mean"."""
    cdef dc_reduced red
    cdef Py_ssize_t status
    cdef Py_ssize_t n_rows = logits.shape[0], n = logits.shape[1]
    _check_rows(n_rows, out.shape[0])
    _check_rows(n_rows, labels.shape[0])
    if n_rows == 0:
        return float("nan")
    with nogil:
        if floating is float:
            status = dc_batch_ce_labels_f32(
                &logits[0, 0], n_rows, n, logits.strides[0], logits.strides[1],
                &labels[0], labels.strides[0] // sizeof(int64_t), NULL, ignore_index,
                NULL, 0, 0, &out[0], &red)
        else:
            status = dc_batch_ce_labels_f64(
                &logits[0, 0], n_rows, n, logits.strides[0], logits.strides[1],
                &labels[0], labels.strides[0] // sizeof(int64_t), NULL, ignore_index,
                NULL, 0, 0, &out[0], &red)
    if status > 0:
        raise IndexError(f"row {status - 1}: label {labels[status - 1]} is not in [0, {n})")
    if status != DC_BATCH_OK:
        raise MemoryError("no memory for a row buffer")
    return red.mean
