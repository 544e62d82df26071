/* divcore/isa_t.h: every kernel template, for the instruction set that dispatch.h names
 * with DC_ISA_NAME, DC_TARGET and DC_VBYTES. */
#include "simd_t.h"

#define DC_TEMPLATE "lse_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

#define DC_TEMPLATE "lanes_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

#define DC_TEMPLATE "adjacent_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

#define DC_TEMPLATE "losses_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

/* KL against a teacher's logits of rows adjacent in memory (after losses_t.h: it mirrors
 * dc_logits_update) */
#define DC_TEMPLATE "adjacent_logits_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

/* log_softmax / softmax written in the arrays' order (after losses_t.h: its vector exp) */
#define DC_TEMPLATE "adjacent_softmax_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

/* One long row over threads (after losses_t.h: the one-read kernels' updates) */
#define DC_TEMPLATE "split_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

/* Short rows in lanes for the operations beyond the log-sum-exp (after losses_t.h: they
 * use dc_soft_result, and the long-row kernels where there are no vectors). */
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

/* TopK targets (after losses_t.h: the gradient uses the softmax writer's vector loop) */
#define DC_TEMPLATE "topk_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

#define DC_TEMPLATE "batch_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

#define DC_TEMPLATE "row_stats_t.h"
#include "for_each_type.h"
#undef DC_TEMPLATE

/* Half-precision storage (after every float kernel it calls); float16 rows widened with
 * F16C where the CPU has it (half.h) */
#define DC_HALF_USE_F16C 1
#define DC_TEMPLATE "half_t.h"
#include "for_each_half.h"
#undef DC_TEMPLATE
#undef DC_HALF_USE_F16C
