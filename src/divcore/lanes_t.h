/* divcore/lanes_t.h: log-sum-exp of many short rows, one row per vector lane (type-generic
 * body of rows.h and of each instruction set in dispatch.h; DC_T, DC_SFX defined).
 *
 * A row of C = 10 values fills less than one AVX-512 vector, so scanning it along the row
 * spends its time on a partial vector and on reducing lanes. For rows of at most
 * DC_LANES_MAX_N values the rows are instead transposed, DC_VLEN at a time, into columns
 * col[c] = (value c of each row) and scanned with whole vectors:
 *     M = max_c col[c],   S = (count of col[c] == M) + Σ_{col[c] < M} exp(col[c] - M)
 * per lane, which is exactly what dc_lse_scan computes for one row (the values equal to the
 * max counted, not summed; a NaN found through the sum; float rows summed in float lanes).
 * Only the order of the additions differs. */

#define DC_FN(name) DC_ISA_NAME(name, DC_SFX)

#ifdef DC_HAVE_VEC
/* Column c of DC_VLEN rows whose values lie at base + j·rs + c·cs (j the lane) in one
 * hardware gather where the instruction set has one (AVX2, AVX-512): a class-last batch
 * of short rows (rows contiguous, rs = n·size) would otherwise be read value by value
 * into the lanes, a load and an insert per value. The same values, so the same bits.
 * idx holds j·rs for each lane (32-bit: the caller checks that DC_VLEN rows fit). The
 * masked forms, all lanes on, with a zero source: the plain ones start from an undefined
 * register, which strict C++ builds of the headers reject (-Werror=maybe-uninitialized). */
#if defined(DC_X86_INTRINSICS) && (DC_VBYTES == 64 || DC_VBYTES == 32)
#define DC_HAVE_COLUMN_GATHER 1
DC_TARGET DC_VINLINE DC_V DC_FN(dc_gather_column)(const char *base, const int32_t *idx)
{
#if DC_VBYTES == 64
    if (sizeof(DC_T) == sizeof(float))
        return (DC_V)_mm512_mask_i32gather_ps(_mm512_setzero_ps(), (__mmask16)0xFFFF,
                                              _mm512_loadu_si512((const void *)idx),
                                              (const void *)base, 1);
    return (DC_V)_mm512_mask_i32gather_pd(_mm512_setzero_pd(), (__mmask8)0xFF,
                                          _mm256_loadu_si256((const __m256i *)idx),
                                          (const void *)base, 1);
#else
    if (sizeof(DC_T) == sizeof(float))
        return (DC_V)_mm256_mask_i32gather_ps(_mm256_setzero_ps(), (const float *)base,
                                              _mm256_loadu_si256((const __m256i *)idx),
                                              _mm256_castsi256_ps(_mm256_set1_epi32(-1)), 1);
    return (DC_V)_mm256_mask_i32gather_pd(_mm256_setzero_pd(), (const double *)base,
                                          _mm_loadu_si128((const __m128i *)idx),
                                          _mm256_castsi256_pd(_mm256_set1_epi64x(-1)), 1);
#endif
}
#endif

/* Rows first .. first + count - 1 (count ≤ DC_VLEN) of r as columns, read as dc_row reads
 * them (x / T in double rounded once, -inf at masked classes); missing lanes are -inf. */
DC_TARGET DC_INLINE void DC_FN(dc_rows_columns)(const dc_rows *r, ptrdiff_t first,
                                                   ptrdiff_t count, DC_V *col)
{
    const DC_V zero = {0};
    const ptrdiff_t n = r->n, rs = r->row_stride, cs = r->col_stride;
    const char *base = r->data + first * rs;
    /* Rows adjacent in memory (a class axis that is not last, as torch's (N, C, d) along
     * dim 1): a column is DC_VLEN consecutive values, read in place as one vector rather
     * than gathered value by value. The same values, so the same bits. */
    const int adjacent = rs == (ptrdiff_t)sizeof(DC_T) && count == DC_VLEN;
    if (adjacent && r->temperature == 1.0) {
        for (ptrdiff_t c = 0; c < n; c++) col[c] = *(const DC_V *)(base + c * cs);
    } else if (adjacent) {
        const double t = r->temperature;
        for (ptrdiff_t c = 0; c < n; c++) {
            const DC_V v = *(const DC_V *)(base + c * cs);
            for (ptrdiff_t j = 0; j < DC_VLEN; j++) col[c][j] = (DC_T)((double)v[j] / t);
        }
    }
#ifdef DC_HAVE_COLUMN_GATHER
    else if (count == DC_VLEN && r->temperature == 1.0 && rs > 0 && cs > 0 &&
             (DC_VLEN - 1) * rs < ((ptrdiff_t)1 << 31)) {
        int32_t idx[DC_VLEN];
        for (ptrdiff_t j = 0; j < DC_VLEN; j++) idx[j] = (int32_t)(j * rs);
        for (ptrdiff_t c = 0; c < n; c++) col[c] = DC_FN(dc_gather_column)(base + c * cs, idx);
    }
#endif
    else {
        for (ptrdiff_t c = 0; c < n; c++) col[c] = zero - (DC_T)INFINITY;
        if (r->temperature == 1.0) {
            for (ptrdiff_t c = 0; c < n; c++)
                for (ptrdiff_t j = 0; j < count; j++)
                    col[c][j] = *(const DC_T *)(base + j * rs + c * cs);
        } else {
            const double t = r->temperature;
            for (ptrdiff_t c = 0; c < n; c++)
                for (ptrdiff_t j = 0; j < count; j++)
                    col[c][j] = (DC_T)((double)*(const DC_T *)(base + j * rs + c * cs) / t);
        }
    }
    if (r->mask != NULL) {
        for (ptrdiff_t j = 0; j < count; j++) {
            const unsigned char *m = r->mask + (first + j) * r->mask_row_stride;
            for (ptrdiff_t c = 0; c < n; c++)
                if (!m[c * r->mask_col_stride]) col[c][j] = -(DC_T)INFINITY;
        }
    }
}

/* Over the columns of a group of rows (dc_rows_columns), per lane: the max M (NaN
 * skipped), how many values equal M, and Σ exp(x - M) over the others, added in column
 * order in DC_T; a NaN reaches the sum. */
DC_TARGET DC_VINLINE void DC_FN(dc_columns_lse)(const DC_V *col, ptrdiff_t n, DC_V *m,
                                                DC_V *at_max, DC_V *rest)
{
    const DC_V zero = {0}, one = zero + 1;
    DC_V mx = zero - (DC_T)INFINITY, s = zero, k = zero;
    for (ptrdiff_t c = 0; c < n; c++) mx = DC_VMAX_KEEP(col[c], mx);
    for (ptrdiff_t c = 0; c < n; c++) {
        const DC_VI top = col[c] == mx;
        s += DC_VSEL(top, zero, DC_VEXP_NONPOS(col[c] - mx));
        k += DC_VSEL(top, one, zero);
    }
    *m = mx;
    *at_max = k;
    *rest = s;
}

/* The lanes' states into st[0 .. lanes), and, unless log_sum is NULL, each one's
 * log S = log1p((at_max - 1) + rest) (dc_lse_log_sum) into log_sum[0 .. lanes), computed
 * in double lanes too (dc_vlog1p, < 1 ulp). */
DC_TARGET DC_VINLINE void DC_FN(dc_lanes_states)(DC_V m, DC_V at_max, DC_V rest,
                                                 ptrdiff_t lanes, dc_lse_state *st,
                                                 double *log_sum)
{
    typedef DC_ISA_NAME(dc_v, f64) vd;
    const ptrdiff_t vdlen = (ptrdiff_t)(sizeof(vd) / sizeof(double));
    double u[DC_VLEN];
    for (ptrdiff_t j = 0; j < DC_VLEN; j++) {
        u[j] = 0.0;
        if (j >= lanes) continue;
        st[j].max = (double)m[j];
        st[j].at_max = (double)at_max[j];
        st[j].rest = (double)rest[j];
        st[j].rest_c = 0.0;
        st[j].nan = rest[j] != rest[j];
        u[j] = (st[j].at_max - 1.0) + st[j].rest;
    }
    if (log_sum == NULL) return;
    for (ptrdiff_t j = 0; j < lanes; j += vdlen) {
        const vd l = DC_ISA_NAME(dc_vlog1p, f64)(*(const vd *)(u + j));
        for (ptrdiff_t q = 0; q < vdlen && j + q < lanes; q++) log_sum[j + q] = l[q];
    }
}

/* The running state dc_lse_scan would return, for rows first .. first + count - 1 of r
 * (any count; r->n ≤ DC_LANES_MAX_N), into out[0 .. count), and, unless log_sum is NULL,
 * each row's log S into log_sum[0 .. count) (dc_lanes_states). */
DC_TARGET DC_ENTRY void DC_FN(dc_lse_scan_rows)(const dc_rows *r, ptrdiff_t first,
                                                    ptrdiff_t count, dc_lse_state *out,
                                                    double *log_sum)
{
    DC_V col[DC_LANES_MAX_N];
    for (ptrdiff_t g = 0; g < count; g += DC_VLEN) {
        const ptrdiff_t lanes = count - g < DC_VLEN ? count - g : DC_VLEN;
        DC_V m, at_max, rest;
        DC_FN(dc_rows_columns)(r, first + g, lanes, col);
        DC_FN(dc_columns_lse)(col, r->n, &m, &at_max, &rest);
        DC_FN(dc_lanes_states)(m, at_max, rest, lanes, out + g,
                               log_sum != NULL ? log_sum + g : NULL);
    }
}
#endif

#ifndef DC_HAVE_VEC
DC_TARGET DC_ENTRY void DC_FN(dc_lse_scan_rows)(const dc_rows *r, ptrdiff_t first,
                                                    ptrdiff_t count, dc_lse_state *out,
                                                    double *log_sum)
{
    DC_T buf[DC_LANES_MAX_N];
    for (ptrdiff_t i = 0; i < count; i++) {
        out[i] = DC_FN(dc_lse_scan)(DC_CAT(dc_row, DC_SFX)(r, first + i, -(DC_T)INFINITY, buf),
                                    r->n);
        if (log_sum != NULL) log_sum[i] = dc_lse_log_sum(&out[i]);
    }
}
#endif

#ifdef DC_HAVE_VEC
/* One contiguous row of at most DC_LANES_MAX_N values, with the same arithmetic as its lane
 * in dc_lse_scan_rows: the same max, the same exp of each value, the same sequence of
 * additions 0 + e_0 + e_1 + ... in DC_T, the same dc_vlog1p. Here the row runs along the
 * vector (a whole row per few vectors) and only the sum is taken lane by lane. */
DC_TARGET DC_INLINE dc_lse_state DC_FN(dc_lse_scan_short)(const DC_T *x, ptrdiff_t n,
                                                             double *log_sum)
{
    const DC_V zero = {0};
    DC_V m = zero - (DC_T)INFINITY;
    ptrdiff_t i;
    for (i = 0; i < n; i += DC_VLEN)
        m = DC_VMAX_KEEP(n - i >= DC_VLEN ? *(const DC_V *)(x + i)
                                          : DC_ISA_NAME(dc_vload_tail, DC_SFX)(x + i, n - i),
                         m);
    DC_T mx = -(DC_T)INFINITY;
    for (int j = 0; j < DC_VLEN; j++) mx = m[j] > mx ? m[j] : mx;
    DC_T s = 0, k = 0;
    for (i = 0; i < n; i += DC_VLEN) {
        const ptrdiff_t len = n - i < DC_VLEN ? n - i : DC_VLEN;
        const DC_V v = len == DC_VLEN ? *(const DC_V *)(x + i)
                                      : DC_ISA_NAME(dc_vload_tail, DC_SFX)(x + i, len);
        const DC_VI top = v == mx;
        const DC_V e = DC_VSEL(top, zero, DC_VEXP_NONPOS(v - mx));
        for (ptrdiff_t j = 0; j < len; j++) {
            s += e[j];
            k += top[j] ? (DC_T)1 : (DC_T)0;
        }
    }
    dc_lse_state st = {0.0, 0.0, 0.0, 0.0, 0}; /* filled by dc_lanes_states */
    DC_FN(dc_lanes_states)(zero + mx, zero + k, zero + s, 1, &st, log_sum);
    return st;
}
#endif

/* One contiguous row's scan and log S = dc_lse_log_sum: a row of at most DC_LANES_MAX_N
 * values gets the same bits from a one-row kernel (dc_ce_label, dc_logsumexp,
 * dc_log_softmax_row) as from a batch of rows (dc_lse_scan_rows). */
DC_TARGET DC_INLINE dc_lse_state DC_FN(dc_lse_scan_log_sum)(const DC_T *x, ptrdiff_t n,
                                                               double *log_sum)
{
    dc_lse_state st;
#ifdef DC_HAVE_VEC
    if (n > 0 && n <= DC_LANES_MAX_N) return DC_FN(dc_lse_scan_short)(x, n, log_sum);
#endif
    st = DC_FN(dc_lse_scan)(x, n);
    *log_sum = dc_lse_ok(&st) ? dc_lse_log_sum(&st) : 0.0;
    return st;
}

#undef DC_FN
#undef DC_HAVE_COLUMN_GATHER
