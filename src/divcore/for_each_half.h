/* divcore/for_each_half.h: include the template DC_TEMPLATE (a quoted file name) once for
 * float16 storage (names ending _f16) and once for bfloat16 (_bf16), as for_each_type.h
 * does for float and double. DC_HWIDEN widens a row, DC_HONE one value (half.h); float16
 * rows use the F16C instruction where the includer sets DC_HALF_USE_F16C (the AVX
 * builds: dispatch.h; 16 at a time in the AVX-512 build), the exact scalar widening
 * elsewhere. */
#define DC_HSFX f16
#if DC_HALF_USE_F16C && DC_VBYTES == 64
#define DC_HWIDEN dc_widen_f16_avx512 /* the AVX-512 build: its 16-wide conversion */
#elif DC_HALF_USE_F16C
#define DC_HWIDEN dc_widen_f16
#else
#define DC_HWIDEN dc_widen_f16_scalar
#endif
#define DC_HONE dc_f16_to_f32
#include DC_TEMPLATE
#undef DC_HSFX
#undef DC_HWIDEN
#undef DC_HONE

#define DC_HSFX bf16
#define DC_HWIDEN dc_widen_bf16
#define DC_HONE dc_bf16_to_f32
#include DC_TEMPLATE
#undef DC_HSFX
#undef DC_HWIDEN
#undef DC_HONE
