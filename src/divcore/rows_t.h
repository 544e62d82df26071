/* divcore/rows_t.h: type-generic body of rows.h (DC_T, DC_SFX defined by the includer). */

#define DC_FN(name) DC_CAT(name, DC_SFX)

/* Row i of r as contiguous values: a pointer into the array when it can be read in place,
 * else `buf` (n values) filled with x / T, and `fill` at masked classes. */
DC_INLINE const DC_T *DC_FN(dc_row)(const dc_rows *r, ptrdiff_t i, DC_T fill, DC_T *buf)
{
    const char *src = r->data + i * r->row_stride;
    const ptrdiff_t n = r->n;
    if (r->mask == NULL && r->temperature == 1.0 && r->col_stride == (ptrdiff_t)sizeof(DC_T))
        return (const DC_T *)src;
    if (r->temperature == 1.0) {
        for (ptrdiff_t c = 0; c < n; c++) buf[c] = *(const DC_T *)(src + c * r->col_stride);
    } else {
        const double t = r->temperature;
        for (ptrdiff_t c = 0; c < n; c++)
            buf[c] = (DC_T)((double)*(const DC_T *)(src + c * r->col_stride) / t);
    }
    if (r->mask != NULL) {
        const unsigned char *m = r->mask + i * r->mask_row_stride;
        for (ptrdiff_t c = 0; c < n; c++)
            if (!m[c * r->mask_col_stride]) buf[c] = fill;
    }
    return buf;
}

/* Value c of row i as dc_row gives it (x / T, or `fill` at a masked class). */
DC_INLINE DC_T DC_FN(dc_row_value)(const dc_rows *r, ptrdiff_t i, ptrdiff_t c, DC_T fill)
{
    if (r->mask != NULL && !r->mask[i * r->mask_row_stride + c * r->mask_col_stride])
        return fill;
    const DC_T v = *(const DC_T *)(r->data + i * r->row_stride + c * r->col_stride);
    return r->temperature == 1.0 ? v : (DC_T)((double)v / r->temperature);
}

/* A label-smoothed target p' = (1 - eps)·p + (eps / kept)·[class kept], written to out.
 * p == NULL means the one-hot target of `label`. The mask is r's (kept = unmasked). */
DC_INLINE void DC_FN(dc_smoothed_target)(const dc_rows *r, ptrdiff_t i, const DC_T *p,
                                             ptrdiff_t label, double eps, DC_T *out)
{
    const ptrdiff_t n = r->n;
    const ptrdiff_t kept = dc_rows_count_kept(r, i);
    const double share = kept > 0 ? eps / (double)kept : 0.0;
    const unsigned char *m = r->mask ? r->mask + i * r->mask_row_stride : NULL;
    for (ptrdiff_t c = 0; c < n; c++) {
        double pc = p != NULL ? (double)p[c] : (double)(c == label);
        int keep = m == NULL || m[c * r->mask_col_stride] != 0;
        out[c] = (DC_T)((1.0 - eps) * pc + (keep ? share : 0.0));
    }
}

#undef DC_FN
