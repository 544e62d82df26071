# cython: language_level=3, boundscheck=False, wraparound=False
"""The compiled backend: loops over the rows of (N, C) arrays, calling the C row kernels
of src/divcore/. Same functions and semantics as divcore._refkernels (docs/design.md).

No formula lives here: this module only walks rows, gathers strided or masked rows into a
one-row buffer (rows.h), applies class weights and reports the first bad row.
"""
from libc.math cimport INFINITY, NAN, fabs
from libc.stdint cimport int64_t, uint16_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset
from cython.parallel cimport parallel, prange
cimport numpy as np

import numpy as np

from divcore import _errors

np.import_array()


include "_kernels_decl.pxi"


cdef int _simd_level = dc_simd_select()


def simd_path():
    """The instruction set the kernels run with: 'avx512', 'avx2' or 'baseline' (the
    best the CPU supports, capped by DIVCORE_SIMD at import)."""
    return dc_simd_name(_simd_level).decode()


include "_typed.pxi"
include "_driver.pxi"
include "_entry.pxi"
include "_front.pxi"
include "_topk.pxi"
include "_row_stats.pxi"
include "_torch_front.pxi"
