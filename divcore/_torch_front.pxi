# divcore._core, part 8: the torch bridge's door to the compiled front (divcore._torch_ops'
# plain cross-entropy). The front's cross_entropy and cross_entropy_and_grad (read_loss,
# loss_values, grad_values: the same Calls and Jobs, so the same bits) on the memory of
# CPU tensors, read here through their data_ptr(), shape and stride() into numpy views
# (torch's .numpy() costs about a microsecond a tensor, more than a small call's kernel),
# the loss returned as an array (torch.from_numpy takes it as is). None when the front
# would not take the call (it is off, the dtype is not float32/float64, a label is out of
# range, ...): the bridge then calls the numpy API, which owns every message.

from cpython.object cimport PyTypeObject
from cpython.ref cimport Py_INCREF


cdef extern from "numpy/arrayobject.h":
    object new_from_descr "PyArray_NewFromDescr" (
        PyTypeObject *subtype, np.dtype descr, int nd, np.npy_intp *dims, np.npy_intp *strides,
        void *data, int flags, void *obj)
    object array_of_scalar "PyArray_FromScalar" (object scalar, void *outcode)


cdef np.dtype _int64 = np.dtype(np.int64)


cdef inline object array_result(object value):
    """A result of `reduced` as an array: a numpy scalar becomes a 0-d array."""
    return value if type(value) is np.ndarray else array_of_scalar(value, NULL)


cdef object tensor_view(object t, np.dtype descr):
    """A writeable numpy view of a dense CPU tensor's memory (as tensor.numpy() gives,
    with `descr` as its dtype), kept alive by the tensor; None beyond MAX_DIMS dims."""
    cdef np.npy_intp dims[MAX_DIMS]
    cdef np.npy_intp strides[MAX_DIMS]
    cdef object shape = t.shape, stride = t.stride()
    cdef Py_ssize_t ptr = t.data_ptr()
    cdef int k, nd = len(shape)
    cdef np.ndarray a
    if nd > MAX_DIMS:
        return None
    for k in range(nd):
        dims[k] = shape[k]
        strides[k] = <np.npy_intp>stride[k] * descr.itemsize
    Py_INCREF(descr)  # PyArray_NewFromDescr steals a reference to its dtype
    a = new_from_descr(<PyTypeObject *>np.ndarray, descr, nd, dims, strides, <void *>ptr,
                       np.NPY_ARRAY_WRITEABLE, NULL)
    np.set_array_base(a, t)
    return a


def _torch_cross_entropy(x, np.dtype x_dtype, target, reduction, ignore_index,
                         label_smoothing, bint with_grad):
    """The front's cross_entropy(x, target, ignore_index=, label_smoothing=, reduction=)
    (with_grad: cross_entropy_and_grad's (loss, gradient)) of dense CPU tensors, x of
    `x_dtype` with the classes along its last dim and int64 labels; the loss as an array;
    None when the front does not take the call."""
    cdef Call c
    cdef object keep, result, xa, ta
    if not _front_on or x_dtype.type_num not in (np.NPY_FLOAT, np.NPY_DOUBLE):
        return None
    xa = tensor_view(x, x_dtype)
    ta = tensor_view(target, _int64)
    if xa is None or ta is None:
        return None
    keep = read_loss(&c, xa, ta, -1, "auto", None, ignore_index, label_smoothing, 1.0,
                     None, reduction, None, True, None, True)
    if keep is None:
        return None
    if with_grad:
        result = grad_values(&c, False, False, True)
        if result is None:
            return None
        return array_result(result[0]), result[1]
    result = loss_values(&c, F_CE, False, True, 0.5)
    return None if result is None else array_result(result)
