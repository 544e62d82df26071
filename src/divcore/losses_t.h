/* divcore/losses_t.h: type-generic body of losses.h (DC_T, DC_SFX defined by the includer;
 * DC_ISA_NAME and DC_TARGET name and target one instruction set, see dispatch.h). */

#define DC_FN(name) DC_ISA_NAME(name, DC_SFX)
#define DC_EXP DC_CAT(dc_exp, DC_SFX)
#define DC_LOG DC_CAT(dc_log, DC_SFX)
#define DC_MIN_LEN(a, b) ((a) < (b) ? (a) : (b))
#ifdef DC_HAVE_VEC
/* Double vectors, for the outputs computed in double from DC_T values (see simd_t.h):
 * the loops below take 2·DC_VDLEN values at a time (one float vector), through
 * DC_VLOAD2 / DC_VSTORE2, and leave the rest to the scalar loop. */
#define DC_VD DC_ISA_NAME(dc_v, f64)
#define DC_VDI DC_ISA_NAME(dc_vi, f64)
#define DC_VDLEN ((ptrdiff_t)(sizeof(DC_VD) / sizeof(double)))
#define DC_VDSEL(mask, a, b) ((DC_VD)(((mask) & (DC_VDI)(a)) | (~(mask) & (DC_VDI)(b))))
#define DC_VDEXP DC_ISA_NAME(dc_vexp, f64)
#define DC_VLOAD2 DC_ISA_NAME(dc_vload2, DC_SFX)
#define DC_VSTORE2 DC_ISA_NAME(dc_vstore2, DC_SFX)
#endif

/* One file per family; the order matters only in that later families call earlier ones
 * (JS and the gradients use dc_lse_scan and dc_target_log; BCE uses none). */
#include "softmax_t.h"
#include "soft_target_t.h"
#include "logits_target_t.h"
#include "js_t.h"
#include "grad_t.h"
#include "bce_t.h"

#ifdef DC_HAVE_VEC
#undef DC_VD
#undef DC_VDI
#undef DC_VDLEN
#undef DC_VDSEL
#undef DC_VDEXP
#undef DC_VLOAD2
#undef DC_VSTORE2
#endif
#undef DC_MIN_LEN
#undef DC_LOG
#undef DC_EXP

#undef DC_FN
