/* divcore/exp.h: the elementary functions the kernels use, one place to swap them.
 *
 * Today these are the C library's exp/log (correctly rounded to < 1 ulp on glibc). The
 * kernels call only these names, so a vectorisable polynomial exp/log can replace them
 * without touching any formula.
 */
#ifndef DIVCORE_EXP_H
#define DIVCORE_EXP_H

#include <math.h>

static inline float dc_exp_f32(float x) { return expf(x); }
static inline double dc_exp_f64(double x) { return exp(x); }
static inline float dc_log_f32(float x) { return logf(x); }
static inline double dc_log_f64(double x) { return log(x); }

#endif /* DIVCORE_EXP_H */
