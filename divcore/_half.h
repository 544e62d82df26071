/* divcore/_half.h: half-precision storage widened to float, for divcore._core
 * (_driver.pxi, _row_stats.pxi). The code is src/divcore/half.h, shared with the C API's
 * _f16 / _bf16 row kernels; this name stays so that the .pxi files' `cdef extern from
 * "_half.h"` keeps resolving next to _core.c. */
#ifndef DIVCORE_PKG_HALF_H
#define DIVCORE_PKG_HALF_H

#include "divcore/half.h"

#endif /* DIVCORE_PKG_HALF_H */
