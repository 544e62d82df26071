# divcore._core, part 5: the compiled front. The public functions, compiled, with the
# signatures and docstrings of divcore.api.Functions (copied at import by divcore's
# __init__). A guard reads the arguments through numpy's C API and recognises ordinary
# calls: ndarrays of native float32/float64 whose leading axes collapse to rows, labels as
# native integer arrays or integer scalars, keyword values of the usual types. Those go
# straight to the batch driver (the same Jobs as the rules' path, so the same bits) and
# are reduced here in numpy's pairwise order; only the result is allocated. Anything else
# (other types, bad values, a label out of range, a target row that fails validation) goes
# to the rules' path with the caller's untouched arguments, which owns every message: the
# front never decides semantics and never raises on its own. DIVCORE_FRONT=0 turns it off.

from cpython.float cimport PyFloat_AS_DOUBLE
from libc.math cimport NAN, log, sqrt

from divcore.api import Decomposition

cdef extern from "numpy/arrayobject.h":
    # not declared in numpy's .pxd: a numpy scalar of the given dtype from a C value
    object array_scalar "PyArray_Scalar" (void *data, np.dtype descr, object base)

cdef object _slow = None     # the rules' path: divcore.api.Functions on this backend
cdef bint _front_on = False
cdef object _np_floating = np.floating
cdef object _np_integer = np.integer
cdef object _np_bool = np.bool_

cdef enum:
    MAX_DIMS = 32
    KIND_LABELS = -1
    ON_STACK = 64           # per-row results of up to this many rows live on the stack


def bind_front(functions, bint enabled):
    """Give the front its fallback (the rules' path) and switch it on or off."""
    global _slow, _front_on
    _slow = functions
    _front_on = enabled and functions is not None


def front_enabled():
    return _front_on


ctypedef struct Call:
    # An ordinary call, read: the logits' rows and what the Job needs.
    int typenum                         # NPY_FLOAT or NPY_DOUBLE
    int nd, axis
    np.npy_intp shape[MAX_DIMS]
    int lead_nd                         # the result's shape for reduction='none'
    np.npy_intp lead[MAX_DIMS]
    Py_ssize_t n_rows
    dc_rows rx, rt
    int kind                            # KIND_LABELS or DC_TARGET_*
    const int64_t *labels
    int64_t one_label
    bint has_ignore
    int64_t ignored
    const void *weight
    double eps, tol, beta, log_base
    int reduction


# ------------------------------------------------------------------ reading arguments

cdef inline bint read_real(object v, double *out):
    """A real keyword value of an ordinary type (not bool): Python or numpy float / int."""
    if type(v) is float:
        out[0] = PyFloat_AS_DOUBLE(v)
        return True
    if type(v) is int or isinstance(v, _np_floating) or isinstance(v, _np_integer):
        try:
            out[0] = float(v)
        except (OverflowError, ValueError, TypeError):
            return False
        return True
    return False


cdef inline bint read_int64(object v, int64_t *out):
    if type(v) is int or isinstance(v, _np_integer):
        try:
            out[0] = v
        except (OverflowError, ValueError, TypeError):
            return False
        return True
    return False


cdef inline int read_reduction(object r):
    if type(r) is not str:
        return -1
    if r == "mean":
        return RED_MEAN
    if r == "sum":
        return RED_SUM
    if r == "none":
        return RED_NONE
    return -1


cdef inline bint read_base(object base, double *log_base):
    """None, or a real number > 0, finite, != 1: log(base), as math.log computes it."""
    cdef double b = 0.5
    if base is None:
        log_base[0] = 1.0
        return True
    if not read_real(base, &b) or not (b > 0 and b < INFINITY) or b == 1.0:
        return False
    log_base[0] = log(b)  # math.log(b): the same libm call
    return True


cdef inline bint read_temperature(object temperature, double *t):
    return read_real(temperature, t) and t[0] > 0 and t[0] < INFINITY


cdef bint collapse(np.ndarray a, int axis, const np.npy_intp *shape, int nd,
                   Py_ssize_t itemsize, Py_ssize_t n, Py_ssize_t *row_stride,
                   Py_ssize_t *col_stride):
    """The strides of `a` (of `shape`, maybe broadcast: strides 0 where a has length 1 or
    lacks the axis) as (N, C) rows, the class axis removed and the other axes merged in C
    order, as divcore._rules.rows_view merges them; False when they do not merge."""
    cdef int k, ka, off = nd - np.PyArray_NDIM(a)
    cdef Py_ssize_t st, prev_st = 0, prev_len = 0
    cdef bint first = True
    cdef np.npy_intp *a_shape = np.PyArray_DIMS(a)
    cdef np.npy_intp *a_strides = np.PyArray_STRIDES(a)
    col_stride[0] = 0
    row_stride[0] = itemsize * (n if n > 1 else 1)
    for k in range(nd):
        ka = k - off
        st = 0 if ka < 0 or a_shape[ka] == 1 else a_strides[ka]
        if ka >= 0 and a_shape[ka] != shape[k] and a_shape[ka] != 1:
            return False
        if k == axis:
            col_stride[0] = st
            continue
        if shape[k] == 1:
            continue
        if not first and prev_st != st * shape[k]:
            return False
        first = False
        prev_st, prev_len = st, shape[k]
        row_stride[0] = st
    return True


cdef bint read_logits(Call *c, object x, object axis):
    """logits: a native, aligned float32/float64 ndarray whose rows collapse."""
    cdef np.ndarray a
    cdef int k, ax
    cdef Py_ssize_t n_rows = 1
    if type(x) is not np.ndarray or type(axis) is not int:
        return False
    a = <np.ndarray>x
    c.typenum = np.PyArray_TYPE(a)
    if c.typenum != np.NPY_FLOAT and c.typenum != np.NPY_DOUBLE:
        return False
    if not np.PyArray_ISNOTSWAPPED(a) or not np.PyArray_ISALIGNED(a):
        return False
    c.log_base, c.reduction, c.eps, c.tol, c.beta = 1.0, RED_NONE, 0.0, 1.0, 0.5
    c.weight, c.labels, c.has_ignore, c.ignored = NULL, NULL, False, 0
    c.nd = np.PyArray_NDIM(a)
    if c.nd == 0 or c.nd > MAX_DIMS or not -c.nd <= axis < c.nd:
        return False
    ax = axis
    c.axis = ax + c.nd if ax < 0 else ax
    c.lead_nd = 0
    for k in range(c.nd):
        c.shape[k] = np.PyArray_DIM(a, k)
        if k != c.axis:
            c.lead[c.lead_nd] = c.shape[k]
            c.lead_nd += 1
            n_rows *= c.shape[k]
    c.n_rows = n_rows
    c.rx.n = c.shape[c.axis]
    if n_rows == 0 or c.rx.n == 0:
        return False  # empty: the rules' path, where every such case is written down
    if not collapse(a, c.axis, c.shape, c.nd, np.PyArray_ITEMSIZE(a), c.rx.n,
                    &c.rx.row_stride, &c.rx.col_stride):
        return False
    c.rx.data = <const char *>np.PyArray_DATA(a)
    c.rx.mask = NULL
    c.rx.mask_row_stride = 0
    c.rx.mask_col_stride = 0
    c.rx.temperature = 1.0
    return True


cdef bint read_where(Call *c, object where):
    """where: None, or a bool ndarray broadcastable to the logits whose rows collapse."""
    cdef np.ndarray w
    if where is None:
        return True
    if type(where) is not np.ndarray:
        return False
    w = <np.ndarray>where
    if np.PyArray_TYPE(w) != np.NPY_BOOL or np.PyArray_NDIM(w) > c.nd:
        return False
    if not collapse(w, c.axis, c.shape, c.nd, 1, c.rx.n, &c.rx.mask_row_stride,
                    &c.rx.mask_col_stride):
        return False
    c.rx.mask = <const unsigned char *>np.PyArray_DATA(w)
    return True


cdef bint read_same_layout(Call *c, object target):
    """A soft target: an ndarray of the logits' shape and dtype whose rows collapse."""
    cdef np.ndarray t
    cdef int k
    if type(target) is not np.ndarray:
        return False
    t = <np.ndarray>target
    if np.PyArray_TYPE(t) != c.typenum or np.PyArray_NDIM(t) != c.nd:
        return False
    if not np.PyArray_ISNOTSWAPPED(t) or not np.PyArray_ISALIGNED(t):
        return False
    for k in range(c.nd):
        if np.PyArray_DIM(t, k) != c.shape[k]:
            return False
    c.rt.n = c.rx.n
    if not collapse(t, c.axis, c.shape, c.nd, np.PyArray_ITEMSIZE(t), c.rx.n,
                    &c.rt.row_stride, &c.rt.col_stride):
        return False
    c.rt.data = <const char *>np.PyArray_DATA(t)
    c.rt.mask = NULL
    c.rt.temperature = 1.0
    return True


cdef object read_labels(Call *c, object target):
    """Integer labels of the leading shape; returns what keeps them alive, or None when
    the call is not ordinary (a label out of range included: the rules word it)."""
    cdef np.ndarray a
    cdef int k, tn
    cdef Py_ssize_t i
    cdef int64_t y
    cdef object keep
    if c.lead_nd == 0 and type(target) is not np.ndarray:
        if not read_int64(target, &c.one_label):
            return None
        c.labels = &c.one_label
        keep = target
    else:
        if type(target) is not np.ndarray:
            return None
        a = <np.ndarray>target
        tn = np.PyArray_TYPE(a)
        if not (np.NPY_BYTE <= tn <= np.NPY_ULONGLONG) or tn == np.NPY_ULONGLONG \
                or tn == np.NPY_ULONG or not np.PyArray_ISNOTSWAPPED(a):
            return None
        if np.PyArray_NDIM(a) != c.lead_nd:
            return None
        for k in range(c.lead_nd):
            if np.PyArray_DIM(a, k) != c.lead[k]:
                return None
        if tn == np.NPY_INT64 and np.PyArray_ISCARRAY_RO(a):
            keep = a
        else:
            keep = np.PyArray_FROMANY(a, np.NPY_INT64, 0, 0,
                                      np.NPY_ARRAY_CARRAY_RO | np.NPY_ARRAY_FORCECAST)
        c.labels = <const int64_t *>np.PyArray_DATA(keep)
    for i in range(c.n_rows):
        y = c.labels[i]
        if (y < 0 or y >= c.rx.n) and not (c.has_ignore and y == c.ignored):
            return None
    return keep


cdef object read_weight(Call *c, object weight):
    """Class weights: a 1-d floating ndarray of C entries, in the compute dtype."""
    cdef np.ndarray w
    cdef int tn
    if weight is None:
        c.weight = NULL
        return True
    if type(weight) is not np.ndarray:
        return None
    w = <np.ndarray>weight
    tn = np.PyArray_TYPE(w)
    if (tn != np.NPY_FLOAT and tn != np.NPY_DOUBLE) \
            or np.PyArray_NDIM(w) != 1 or np.PyArray_DIM(w, 0) != c.rx.n \
            or not np.PyArray_ISNOTSWAPPED(w):
        return None
    if tn != c.typenum or not np.PyArray_ISCARRAY_RO(w):
        w = np.PyArray_FROMANY(w, c.typenum, 1, 1,
                               np.NPY_ARRAY_CARRAY_RO | np.NPY_ARRAY_FORCECAST)
    c.weight = np.PyArray_DATA(w)
    return w


cdef inline double default_tol(int typenum) noexcept nogil:
    """divcore._rules.sum_tolerance for a target of the logits' dtype."""
    cdef double eps = 1.1920928955078125e-07 if typenum == np.NPY_FLOAT \
        else 2.220446049250313e-16
    cdef double tol = sqrt(eps)
    return tol if tol > SUM_TOL_FLOOR else SUM_TOL_FLOOR


cdef double SUM_TOL_FLOOR = 1e-4   # divcore._rules.SUM_TOL_FLOOR (tested equal)


cdef inline bint read_tol(Call *c, object sum_tol):
    if sum_tol is None:
        c.tol = default_tol(c.typenum)
        return True
    return read_real(sum_tol, &c.tol) and c.tol >= 0.0


# ------------------------------------------------------------------ results

cdef double pairwise_sum(const double *a, Py_ssize_t n) noexcept nogil:
    """numpy's pairwise summation (np.add.reduce of a contiguous float64 array): blocks of
    up to 128 values in 8 accumulators, halves above that. The caller adds it to 0.0."""
    cdef double r[8]
    cdef double res
    cdef Py_ssize_t i, j, n2
    if n < 8:
        res = -0.0
        for i in range(n):
            res += a[i]
        return res
    if n <= 128:
        for j in range(8):
            r[j] = a[j]
        i = 8
        while i < n - (n % 8):
            for j in range(8):
                r[j] += a[i + j]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            res += a[i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2)


def _pairwise_sum_for_tests(double[::1] a):
    """pairwise_sum as the front reduces (tests compare it with np.sum)."""
    return 0.0 + pairwise_sum(&a[0] if a.shape[0] else NULL, a.shape[0])


cdef object scalar_of(const Call *c, double v):
    """A numpy scalar of the compute dtype."""
    cdef float f
    if c.typenum == np.NPY_FLOAT:
        f = <float>v
        return array_scalar(&f, np.PyArray_DescrFromType(c.typenum), None)
    return array_scalar(&v, np.PyArray_DescrFromType(c.typenum), None)


cdef object reduced(const Call *c, double *values, const double *row_weight):
    """divcore.api._reduce / Plan.finish of per-row float64 values (divided by log(base)
    first, as the rules' path divides them): the result the caller gets."""
    cdef Py_ssize_t i, n = c.n_rows
    cdef double total, denom
    cdef np.ndarray out
    if c.log_base != 1.0:
        for i in range(n):
            values[i] = values[i] / c.log_base
    if c.reduction == RED_NONE:
        if c.lead_nd == 0:
            return scalar_of(c, values[0])
        out = np.PyArray_EMPTY(c.lead_nd, <np.npy_intp *>c.lead, c.typenum, 0)
        if c.typenum == np.NPY_FLOAT:
            for i in range(n):
                (<float *>np.PyArray_DATA(out))[i] = <float>values[i]
        else:
            for i in range(n):
                (<double *>np.PyArray_DATA(out))[i] = values[i]
        return out
    total = 0.0 + pairwise_sum(values, n)
    if c.reduction == RED_SUM:
        return scalar_of(c, total)
    denom = <double>n if row_weight == NULL else 0.0 + pairwise_sum(row_weight, n)
    return scalar_of(c, total / denom if denom != 0.0 else NAN)


ctypedef struct RowBuffers:
    # Per-row results of one call: on the stack for a few rows, else on the heap.
    double *ce
    double *h
    double *kl
    double *row_weight
    unsigned char *bad
    double *psum
    Py_ssize_t *nbad
    void *heap
    double stack[4 * ON_STACK + ON_STACK]
    unsigned char stack_bad[ON_STACK]
    Py_ssize_t stack_nbad[ON_STACK]


cdef int row_buffers(RowBuffers *b, Py_ssize_t n, bint full=True) except -1:
    """Room for ce, h, kl, row_weight, psum (n doubles each) and the validation flags,
    ce / h / kl filled with nan (rows a kernel does not write stay nan, as np.full).
    full=False: ce alone (the others NULL), for the calls that read nothing else
    (logsumexp, entropy of logits): 8 bytes a row to write instead of 41, which on many
    short rows is a tenth of the call."""
    cdef Py_ssize_t i
    cdef double *d
    if not full and n > ON_STACK:
        b.heap = malloc(n * sizeof(double))
        if b.heap == NULL:
            raise MemoryError(f"cannot allocate per-row results for {n} rows")
        b.ce = <double *>b.heap
        b.h = b.kl = b.row_weight = b.psum = NULL
        b.bad = NULL
        b.nbad = NULL
        for i in range(n):
            b.ce[i] = NAN
        return 0
    if n <= ON_STACK:
        b.heap = NULL
        d = b.stack
        b.bad = b.stack_bad
        b.nbad = b.stack_nbad
    else:
        b.heap = malloc(n * (5 * sizeof(double) + sizeof(Py_ssize_t) + 1))
        if b.heap == NULL:
            raise MemoryError(f"cannot allocate per-row results for {n} rows")
        d = <double *>b.heap
        b.nbad = <Py_ssize_t *>(d + 5 * n)
        b.bad = <unsigned char *>(b.nbad + n)
    b.ce, b.h, b.kl, b.row_weight, b.psum = d, d + n, d + 2 * n, d + 3 * n, d + 4 * n
    for i in range(3 * n):
        d[i] = NAN
    for i in range(n):
        b.row_weight[i] = 0.0
        b.bad[i] = 0
    return 0


cdef inline void free_buffers(RowBuffers *b) noexcept:
    free(b.heap)


cdef inline bint any_bad(const RowBuffers *b, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if b.bad[i]:
            return True
    return False


cdef int run_call(Job *job, const Call *c) except -1:
    if c.typenum == np.NPY_FLOAT:
        return run_rows(job, c.n_rows, <float *>NULL)
    return run_rows(job, c.n_rows, <double *>NULL)


# ------------------------------------------------------------------ the operations

cdef enum:
    F_CE = 0
    F_KL = 1
    F_DECOMPOSE = 2
    F_JS = 3


cdef object read_loss(Call *c, object logits, object target, object axis,
                      object target_type, object weight, object ignore_index,
                      object label_smoothing, object temperature, object where,
                      object reduction, object base, object validate, object sum_tol,
                      bint labels_ok):
    """Reads an ordinary loss call into c; returns the objects that keep its arrays alive,
    or None when the call is not ordinary."""
    cdef double t = 1.0
    cdef object keep_target, keep_weight
    if not read_logits(c, logits, axis) or not read_where(c, where):
        return None
    if not read_tol(c, sum_tol):
        return None
    if not read_temperature(temperature, &t) or not read_base(base, &c.log_base):
        return None
    c.rx.temperature = t
    c.reduction = read_reduction(reduction)
    if c.reduction < 0 or type(validate) is not bool:
        return None
    if not read_real(label_smoothing, &c.eps) or not 0.0 <= c.eps <= 1.0:
        return None
    keep_weight = read_weight(c, weight)
    if keep_weight is None:
        return None
    if type(target_type) is not str:
        return None
    if target_type == "auto":
        if type(target) is np.ndarray and np.PyArray_ISFLOAT(<np.ndarray>target):
            c.kind = DC_TARGET_PROBS
        else:
            c.kind = KIND_LABELS
    elif target_type == "labels":
        c.kind = KIND_LABELS
    elif target_type == "probs":
        c.kind = DC_TARGET_PROBS
    elif target_type == "log_probs":
        c.kind = DC_TARGET_LOG_PROBS
    elif target_type == "logits":
        c.kind = DC_TARGET_LOGITS
    else:
        return None
    if c.kind == KIND_LABELS:
        if not labels_ok:
            return None
        c.has_ignore = ignore_index is not None
        if c.has_ignore and not read_int64(ignore_index, &c.ignored):
            return None
        keep_target = read_labels(c, target)
        if keep_target is None:
            return None
    else:
        # the rules refuse these (ignore_index, smoothing of a non-probability target)
        if ignore_index is not None and not (type(ignore_index) is int
                                             and ignore_index == -100):
            return None
        if c.eps != 0.0 and c.kind != DC_TARGET_PROBS:
            return None
        if not read_same_layout(c, target):
            return None
        keep_target = target
    return (keep_target, keep_weight)


cdef object loss_values(Call *c, int what, bint reverse, bint validate, double beta):
    """Runs an ordinary loss call read by read_loss; the reduced result(s), or None when a
    target row fails validation (the rules' path then raises the error)."""
    cdef RowBuffers b
    cdef Job job
    cdef const double *row_weight = NULL
    cdef Py_ssize_t i
    row_buffers(&b, c.n_rows)
    try:
        if c.kind == KIND_LABELS:
            job = label_job(OP_CE_LABEL, &c.rx, c.weight, c.labels, c.n_rows, c.has_ignore,
                            c.ignored, c.eps)
            job.want_h = what == F_DECOMPOSE
            job.ce = b.ce
            job.row_weight = b.row_weight
            if what == F_DECOMPOSE:
                for i in range(c.n_rows):
                    b.h[i] = 0.0
                    b.kl[i] = 0.0
                job.h, job.kl = b.h, b.kl
            run_call(&job, c)
            row_weight = b.row_weight
            if what == F_KL:   # with labels, KL = CE (the one-hot's entropy is 0)
                return reduced(c, b.ce, row_weight)
        else:
            job = soft_job_of(OP_JS if what == F_JS else OP_SOFT, &c.rx, &c.rt, c.kind,
                              c.weight, c.eps, reverse, validate, c.tol)
            job.beta = beta
            job.want_h = what == F_DECOMPOSE or what == F_KL
            job.ce = b.ce
            if what != F_JS:
                job.ce = b.ce if not reverse else NULL
                job.h = b.h if what == F_DECOMPOSE else NULL
                job.kl = b.kl if what != F_CE else NULL
            job.bad, job.psum, job.nbad = b.bad, b.psum, b.nbad
            run_call(&job, c)
            if job.check and any_bad(&b, c.n_rows):
                return None
            if what == F_KL:
                return reduced(c, b.kl, NULL)
        if what == F_DECOMPOSE:
            return Decomposition(reduced(c, b.ce, row_weight), reduced(c, b.h, row_weight),
                                 reduced(c, b.kl, row_weight))
        return reduced(c, b.ce, row_weight)
    finally:
        free_buffers(&b)


cdef object grad_values(Call *c, bint want_kl, bint reverse, bint validate):
    """(loss, gradient) of an ordinary call with the class axis last; None when a target
    row fails validation."""
    cdef RowBuffers b
    cdef Job job
    cdef np.ndarray grad
    cdef double denom
    cdef const double *row_weight = NULL
    cdef Py_ssize_t i
    grad = np.PyArray_EMPTY(c.nd, c.shape, c.typenum, 0)
    row_buffers(&b, c.n_rows)
    try:
        if c.kind == KIND_LABELS:
            for i in range(c.n_rows):
                b.ce[i] = 0.0
            denom = label_denominator(c.labels, c.n_rows, c.weight,
                                      c.typenum == np.NPY_FLOAT, c.has_ignore, c.ignored)
            job = label_job(OP_CE_LABEL_GRAD, &c.rx, c.weight, c.labels, c.n_rows,
                            c.has_ignore, c.ignored, c.eps)
            job.scale = grad_scale(c.reduction, denom, c.rx.temperature, c.log_base)
            job.ce, job.row_weight = b.ce, b.row_weight
            row_weight = b.row_weight
        else:
            job = soft_job_of(OP_SOFT_GRAD, &c.rx, &c.rt, c.kind, c.weight, c.eps, reverse,
                              validate, c.tol)
            job.want_kl = want_kl
            job.want_h = want_kl or reverse
            job.scale = grad_scale(c.reduction, <double>c.n_rows, c.rx.temperature,
                                   c.log_base)
            job.ce = b.ce
            job.bad, job.psum, job.nbad = b.bad, b.psum, b.nbad
        job.out = <char *>np.PyArray_DATA(grad)
        run_call(&job, c)
        if job.check and any_bad(&b, c.n_rows):
            return None
        return reduced(c, b.ce, row_weight), grad
    finally:
        free_buffers(&b)


cdef inline bint plain_call(object tail, object sample_weight, object z_loss, object softcap):
    """A call without SPEC §7's extras (those go to the rules' path: Functions._extended)."""
    cdef double z = 1.0
    return (sample_weight is None and softcap is None and type(tail) is str
            and tail == "bucket" and read_real(z_loss, &z) and z == 0.0)


# ------------------------------------------------------------------ public functions

def cross_entropy(logits, target, *, axis=-1, target_type="auto", weight=None,
                  ignore_index=-100, label_smoothing=0.0, temperature=1.0, where=None,
                  reduction="mean", base=None, validate=True, sum_tol=None, tail="bucket",
                  sample_weight=None, z_loss=0.0, softcap=None):
    cdef Call c
    cdef object result, keep = None
    # keep: the arrays the call's pointers read, alive until it returns
    if _front_on and plain_call(tail, sample_weight, z_loss, softcap):
        keep = read_loss(&c, logits, target, axis, target_type, weight, ignore_index,
                         label_smoothing, temperature, where, reduction, base, validate,
                         sum_tol, True)
    if keep is not None:
        result = loss_values(&c, F_CE, False, validate, 0.5)
        if result is not None:
            return result
    return _slow.cross_entropy(
        logits, target, axis=axis, target_type=target_type, weight=weight,
        ignore_index=ignore_index, label_smoothing=label_smoothing, temperature=temperature,
        where=where, reduction=reduction, base=base, validate=validate, sum_tol=sum_tol,
        tail=tail, sample_weight=sample_weight, z_loss=z_loss, softcap=softcap)


def decompose(logits, target, *, axis=-1, target_type="auto", weight=None,
              ignore_index=-100, label_smoothing=0.0, temperature=1.0, where=None,
              reduction="mean", base=None, validate=True, sum_tol=None, tail="bucket",
              sample_weight=None, softcap=None):
    cdef Call c
    cdef object result, keep = None
    if _front_on and plain_call(tail, sample_weight, 0.0, softcap):
        keep = read_loss(&c, logits, target, axis, target_type, weight, ignore_index,
                         label_smoothing, temperature, where, reduction, base, validate,
                         sum_tol, True)
    if keep is not None:
        result = loss_values(&c, F_DECOMPOSE, False, validate, 0.5)
        if result is not None:
            return result
    return _slow.decompose(
        logits, target, axis=axis, target_type=target_type, weight=weight,
        ignore_index=ignore_index, label_smoothing=label_smoothing, temperature=temperature,
        where=where, reduction=reduction, base=base, validate=validate, sum_tol=sum_tol,
        tail=tail, sample_weight=sample_weight, softcap=softcap)


def kl_divergence(logits, target, *, axis=-1, target_type="auto", reverse=False,
                  temperature=1.0, where=None, reduction="mean", base=None, validate=True,
                  sum_tol=None, tail="bucket", sample_weight=None, softcap=None):
    cdef Call c
    cdef object result, keep = None
    if _front_on and type(reverse) is bool and plain_call(tail, sample_weight, 0.0, softcap):
        keep = read_loss(&c, logits, target, axis, target_type, None, None, 0.0,
                         temperature, where, reduction, base, validate, sum_tol, not reverse)
    if keep is not None:
        result = loss_values(&c, F_KL, reverse, validate, 0.5)
        if result is not None:
            return result
    return _slow.kl_divergence(
        logits, target, axis=axis, target_type=target_type, reverse=reverse,
        temperature=temperature, where=where, reduction=reduction, base=base,
        validate=validate, sum_tol=sum_tol, tail=tail, sample_weight=sample_weight,
        softcap=softcap)


def js_divergence(logits, target, *, axis=-1, target_type="auto", beta=0.5,
                  temperature=1.0, where=None, reduction="mean", base=None, validate=True,
                  sum_tol=None, tail="bucket", sample_weight=None, softcap=None):
    cdef Call c
    cdef object result, keep = None
    cdef double b = 0.5
    if _front_on and read_real(beta, &b) and 0.0 <= b <= 1.0 \
            and plain_call(tail, sample_weight, 0.0, softcap):
        keep = read_loss(&c, logits, target, axis, target_type, None, None, 0.0,
                         temperature, where, reduction, base, validate, sum_tol, False)
    if keep is not None:
        result = loss_values(&c, F_JS, False, validate, b)
        if result is not None:
            return result
    return _slow.js_divergence(
        logits, target, axis=axis, target_type=target_type, beta=beta,
        temperature=temperature, where=where, reduction=reduction, base=base,
        validate=validate, sum_tol=sum_tol, tail=tail, sample_weight=sample_weight,
        softcap=softcap)


def cross_entropy_and_grad(logits, target, *, axis=-1, target_type="auto", weight=None,
                           ignore_index=-100, label_smoothing=0.0, temperature=1.0,
                           where=None, reduction="mean", base=None, validate=True,
                           sum_tol=None, tail="bucket", sample_weight=None, z_loss=0.0,
                           softcap=None, out=None):
    cdef Call c
    cdef object result, keep = None
    if _front_on and out is None and plain_call(tail, sample_weight, z_loss, softcap):
        keep = read_loss(&c, logits, target, axis, target_type, weight, ignore_index,
                         label_smoothing, temperature, where, reduction, base, validate,
                         sum_tol, True)
    if keep is not None and c.axis == c.nd - 1:
        result = grad_values(&c, False, False, validate)
        if result is not None:
            return result
    return _slow.cross_entropy_and_grad(
        logits, target, axis=axis, target_type=target_type, weight=weight,
        ignore_index=ignore_index, label_smoothing=label_smoothing, temperature=temperature,
        where=where, reduction=reduction, base=base, validate=validate, sum_tol=sum_tol,
        tail=tail, sample_weight=sample_weight, z_loss=z_loss, softcap=softcap, out=out)


def kl_divergence_and_grad(logits, target, *, axis=-1, target_type="auto", reverse=False,
                           temperature=1.0, where=None, reduction="mean", base=None,
                           validate=True, sum_tol=None, tail="bucket", sample_weight=None,
                           softcap=None, out=None):
    cdef Call c
    cdef object result, keep = None
    if (_front_on and out is None and type(reverse) is bool
            and plain_call(tail, sample_weight, 0.0, softcap)):
        keep = read_loss(&c, logits, target, axis, target_type, None, None, 0.0,
                         temperature, where, reduction, base, validate, sum_tol, False)
    if keep is not None and c.axis == c.nd - 1:
        result = grad_values(&c, True, reverse, validate)
        if result is not None:
            return result
    return _slow.kl_divergence_and_grad(
        logits, target, axis=axis, target_type=target_type, reverse=reverse,
        temperature=temperature, where=where, reduction=reduction, base=base,
        validate=validate, sum_tol=sum_tol, tail=tail, sample_weight=sample_weight,
        softcap=softcap, out=out)


def logsumexp(x, axis=-1, *, keepdims=False, where=None):
    cdef Call c
    cdef RowBuffers b
    cdef Job job
    cdef object out
    if _front_on and type(keepdims) is bool and read_logits(&c, x, axis) \
            and read_where(&c, where):
        row_buffers(&b, c.n_rows, False)
        try:
            job = new_job(OP_LSE)
            job.rx = c.rx
            job.ce = b.ce
            run_call(&job, &c)
            c.log_base, c.reduction = 1.0, RED_NONE
            out = reduced(&c, b.ce, NULL)
        finally:
            free_buffers(&b)
        if keepdims:
            c.shape[c.axis] = 1
            out = np.PyArray_Reshape(np.PyArray_FROMANY(out, c.typenum, 0, 0, 0),
                                     tuple([c.shape[k] for k in range(c.nd)]))
        return out
    return _slow.logsumexp(x, axis, keepdims=keepdims, where=where)


cdef object softmax_family(object x, object axis, object temperature, object where,
                           bint exponentiate):
    """log_softmax / softmax of an ordinary call with the class axis last; None else."""
    cdef Call c
    cdef Job job
    cdef double t = 1.0
    cdef np.ndarray out
    if not (read_logits(&c, x, axis) and c.axis == c.nd - 1 and read_where(&c, where)
            and read_temperature(temperature, &t)):
        return None
    c.rx.temperature = t
    out = np.PyArray_EMPTY(c.nd, c.shape, c.typenum, 0)
    job = new_job(OP_LOG_SOFTMAX)
    job.rx = c.rx
    job.exponentiate = exponentiate
    job.out = <char *>np.PyArray_DATA(out)
    run_call(&job, &c)
    return out


def log_softmax(x, axis=-1, *, temperature=1.0, where=None, softcap=None, out=None):
    cdef object result
    if _front_on and softcap is None and out is None:
        result = softmax_family(x, axis, temperature, where, False)
        if result is not None:
            return result
    return _slow.log_softmax(x, axis, temperature=temperature, where=where, softcap=softcap,
                       out=out)


def softmax(x, axis=-1, *, temperature=1.0, where=None, softcap=None, out=None):
    cdef object result
    if _front_on and softcap is None and out is None:
        result = softmax_family(x, axis, temperature, where, True)
        if result is not None:
            return result
    return _slow.softmax(x, axis, temperature=temperature, where=where, softcap=softcap,
                       out=out)


def entropy(x, *, axis=-1, input_type="logits", temperature=1.0, where=None,
            reduction="none", base=None, sum_tol=None, sample_weight=None, softcap=None):
    cdef Call c
    cdef RowBuffers b
    cdef Job job
    cdef double t = 1.0
    cdef int kind = -2
    if type(input_type) is str:
        kind = (DC_TARGET_LOGITS if input_type == "logits" else DC_TARGET_PROBS
                if input_type == "probs" else DC_TARGET_LOG_PROBS
                if input_type == "log_probs" else -2)
    if _front_on and kind != -2 and sample_weight is None and softcap is None \
            and read_logits(&c, x, axis) and read_where(&c, where) \
            and read_temperature(temperature, &t) and (t == 1.0 or kind == DC_TARGET_LOGITS) \
            and read_base(base, &c.log_base) and read_tol(&c, sum_tol):
        c.reduction = read_reduction(reduction)
        if c.reduction >= 0:
            c.rx.temperature = t
            row_buffers(&b, c.n_rows, kind != DC_TARGET_LOGITS)
            try:
                job = new_job(OP_ENTROPY)
                job.kind = kind
                job.rx = c.rx
                job.check = kind != DC_TARGET_LOGITS
                job.tol = c.tol
                job.ce = b.ce
                job.bad, job.psum, job.nbad = b.bad, b.psum, b.nbad
                run_call(&job, &c)
                if not (job.check and any_bad(&b, c.n_rows)):
                    return reduced(&c, b.ce, NULL)
            finally:
                free_buffers(&b)
    return _slow.entropy(x, axis=axis, input_type=input_type, temperature=temperature,
                         where=where, reduction=reduction, base=base, sum_tol=sum_tol,
                         sample_weight=sample_weight, softcap=softcap)


def binary_cross_entropy(logits, target, *, weight=None, pos_weight=None,
                         reduction="mean", base=None, sample_weight=None):
    cdef Call c
    cdef RowBuffers b
    cdef np.ndarray x, y
    cdef Py_ssize_t n
    cdef double total = 0.0
    cdef double *o
    cdef const char *xp
    cdef const char *yp
    cdef int red
    c.log_base = 1.0
    # One contiguous array of each, small enough that the rules' path passes it to
    # dc_bce_values in one buffered chunk, as here: the same bits.
    if _front_on and weight is None and pos_weight is None and sample_weight is None \
            and type(logits) is np.ndarray and type(target) is np.ndarray \
            and read_base(base, &c.log_base):
        x, y = <np.ndarray>logits, <np.ndarray>target
        c.typenum = np.PyArray_TYPE(x)
        red = read_reduction(reduction)
        n = np.PyArray_SIZE(x)
        if red >= 0 and (c.typenum == np.NPY_FLOAT or c.typenum == np.NPY_DOUBLE) \
                and np.PyArray_TYPE(y) == c.typenum and np.PyArray_ISCARRAY_RO(x) \
                and np.PyArray_ISCARRAY_RO(y) and np.PyArray_ISNOTSWAPPED(x) \
                and np.PyArray_ISNOTSWAPPED(y) and 0 < n <= 8192 \
                and np.PyArray_SAMESHAPE(x, y) and np.PyArray_NDIM(x) <= MAX_DIMS:
            xp, yp = <const char *>np.PyArray_DATA(x), <const char *>np.PyArray_DATA(y)
            if red == RED_NONE:
                out = np.PyArray_EMPTY(np.PyArray_NDIM(x), np.PyArray_DIMS(x),
                                       np.NPY_DOUBLE, 0)
            o = <double *>np.PyArray_DATA(out) if red == RED_NONE else NULL
            if c.typenum == np.NPY_FLOAT:
                total = dcd_dc_bce_values_f32(<const float *>xp, 4, <const float *>yp, 4,
                                              NULL, 0, NULL, 0, n, o, 8)
            else:
                total = dcd_dc_bce_values_f64(<const double *>xp, 8, <const double *>yp, 8,
                                              NULL, 0, NULL, 0, n, o, 8)
            if c.log_base != 1.0:
                total /= c.log_base
                if red == RED_NONE:
                    out /= c.log_base
            if red == RED_NONE:
                return np.PyArray_Cast(out, c.typenum) if np.PyArray_NDIM(x) else \
                    scalar_of(&c, (<double *>np.PyArray_DATA(out))[0])
            if red == RED_SUM:
                return scalar_of(&c, total)
            return scalar_of(&c, total / n)
    return _slow.binary_cross_entropy(logits, target, weight=weight, pos_weight=pos_weight,
                                      reduction=reduction, base=base,
                                      sample_weight=sample_weight)
