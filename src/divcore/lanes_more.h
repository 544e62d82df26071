/* divcore/lanes_more.h: the portable build of the short-row lane kernels beyond the
 * log-sum-exp (lanes_soft_t.h: logits targets, probability targets with their entropy,
 * reverse KL, entropy of logits; lanes_grad_t.h: gradients). They use dc_soft_result and,
 * without vector extensions, the long-row kernels, so they come after losses.h. isa_t.h
 * builds the same templates for AVX2 and AVX-512. */
#ifndef DIVCORE_LANES_MORE_H
#define DIVCORE_LANES_MORE_H

#include "losses.h"

#define DC_TEMPLATE "lanes_math_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

#define DC_TEMPLATE "lanes_soft_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

#define DC_TEMPLATE "lanes_js_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

#define DC_TEMPLATE "lanes_grad_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

#endif /* DIVCORE_LANES_MORE_H */
