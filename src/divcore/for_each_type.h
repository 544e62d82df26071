/* divcore/for_each_type.h: include the template DC_TEMPLATE (a quoted file name) once for
 * float (DC_T float, names ending _f32) and once for double (_f64). */
#define DC_T float
#define DC_SFX f32
#include DC_TEMPLATE
#undef DC_T
#undef DC_SFX

#define DC_T double
#define DC_SFX f64
#include DC_TEMPLATE
#undef DC_T
#undef DC_SFX
