/* divcore/kernels.h: everything divcore computes on one row, for C and C++ callers.
 * Header-only; needs no Python and no linking against divcore. */
#ifndef DIVCORE_KERNELS_H
#define DIVCORE_KERNELS_H

#define DIVCORE_VERSION_MAJOR 0
#define DIVCORE_VERSION_MINOR 1
#define DIVCORE_VERSION_PATCH 0
#define DIVCORE_VERSION "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

#include "lse.h"
#include "losses.h"
#include "rows.h"

#ifdef __cplusplus
}
#endif

#endif /* DIVCORE_KERNELS_H */
