/* divcore/_threads.h: what the compiled core needs to know of OpenMP, with or without it.
 * Builds without OpenMP (e.g. Apple clang) run every loop on the calling thread. */
#ifndef DIVCORE_THREADS_H
#define DIVCORE_THREADS_H
#ifdef _OPENMP
#include <omp.h>
static int dc_omp_max_threads(void) { return omp_get_max_threads(); }
static int dc_have_openmp(void) { return 1; }
#else
static int dc_omp_max_threads(void) { return 1; }
static int dc_have_openmp(void) { return 0; }
#endif
#endif
