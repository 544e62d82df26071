/* divcore/_gather.h: rows that lie next to each other in memory, with a strided class
 * axis (a (C, N) array read along axis 0, torch's (N, C, d) along axis 1), copied into a
 * tile of contiguous rows: a transpose.
 *
 *     dc_gather_rows_f32(base, n, col_stride, count, tile)
 *     dc_gather_rows_f64(base, n, col_stride, count, tile)
 *
 * tile[j * n + c] = value of row j, class c, at byte base + c * col_stride + j * itemsize,
 * for j < count, c < n. The values are copied as they are (a copy changes no bits).
 *
 * Each class's `count` values are one contiguous read (whole cache lines: the driver's
 * tiles are 16 to 64 float rows, or 8 to 64 double rows, that start at an aligned row),
 * read for a block of classes at a time, all rows back to back, while the next block's
 * lines are prefetched. The copy goes through in-register transposes of square blocks,
 * 16 x 16 floats or 8 x 8 doubles with AVX-512, 8 x 8 floats or 4 x 4 doubles with AVX2,
 * instead of one value at a time. The instruction set is chosen at run time (the build
 * has no -march flag; a wheel runs on any x86-64), as _half.h chooses F16C; elsewhere,
 * and for the classes and rows left over, a portable scalar loop. A block of rows shorter than
 * the transpose (the tile's last rows) is read with masked loads, which touch no memory
 * past the rows asked for. */
#ifndef DIVCORE_GATHER_H
#define DIVCORE_GATHER_H

#include <stddef.h>
#include <stdint.h>

/* The portable copy of rows [j0, j1) and classes [c0, n). */
#define DC_GATHER_SCALAR(T)                                                                \
    static inline void dc_gather_scalar_##T(const char *base, ptrdiff_t n, ptrdiff_t cs,   \
                                            ptrdiff_t c0, ptrdiff_t j0, ptrdiff_t j1,      \
                                            T *tile)                                       \
    {                                                                                      \
        for (ptrdiff_t c = c0; c < n; c++) {                                               \
            const T *src = (const T *)(base + c * cs);                                     \
            for (ptrdiff_t j = j0; j < j1; j++) tile[j * n + c] = src[j];                  \
        }                                                                                  \
    }
DC_GATHER_SCALAR(float)
DC_GATHER_SCALAR(double)
#undef DC_GATHER_SCALAR

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && \
    !defined(DIVCORE_NO_INTRINSICS)
#include <immintrin.h>
#define DC_GATHER_SIMD 1

/* The lines of the next block of classes (`classes` classes from src, `bytes` bytes of
 * each), asked for while this block is copied: the class stride is many KiB, which the
 * hardware prefetchers do not follow. A prefetch never faults. */
static inline void dc_gather_prefetch(const char *src, ptrdiff_t cs, int classes,
                                      ptrdiff_t bytes)
{
    int i;
    ptrdiff_t off;
    for (i = 0; i < classes; i++) {
        const char *p = src + i * cs;
        for (off = 0; off < bytes; off += 64) _mm_prefetch(p + off, _MM_HINT_T0);
        _mm_prefetch(p + bytes - 1, _MM_HINT_T0);
    }
}

/* ------------------------------------------------------------------------ AVX-512 */

/* r[i] = 16 rows of class i  ->  r[j] = 16 classes of row j (8 x 8 doubles below alike). */
__attribute__((target("avx512f"))) static inline void dc_transpose16_ps(__m512 r[16])
{
    __m512 t[16], v[8];
    int i, k;
    for (i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    /* r[4g + k], 128-bit lane L: classes 4g .. 4g + 3 of row 4L + k */
    for (i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xee);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    for (k = 0; k < 4; k++) {
        /* lanes: classes 0-3 and 4-7 of rows k and 8 + k (v[0]), 4 + k and 12 + k (v[1]);
         * classes 8-11 and 12-15 of the same rows (v[2], v[3]) */
        v[0] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x88);
        v[1] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xdd);
        v[2] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x88);
        v[3] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xdd);
        t[k] = _mm512_shuffle_f32x4(v[0], v[2], 0x88);      /* row k */
        t[8 + k] = _mm512_shuffle_f32x4(v[0], v[2], 0xdd);  /* row 8 + k */
        t[4 + k] = _mm512_shuffle_f32x4(v[1], v[3], 0x88);  /* row 4 + k */
        t[12 + k] = _mm512_shuffle_f32x4(v[1], v[3], 0xdd); /* row 12 + k */
    }
    for (i = 0; i < 16; i++) r[i] = t[i];
}

__attribute__((target("avx512f"))) static inline void dc_transpose8_pd(__m512d r[8])
{
    __m512d t[8], v[4];
    int i, k;
    for (i = 0; i < 8; i += 2) {
        t[i] = _mm512_unpacklo_pd(r[i], r[i + 1]);     /* lane L: classes i, i+1 of row 2L */
        t[i + 1] = _mm512_unpackhi_pd(r[i], r[i + 1]); /* ... of row 2L + 1 */
    }
    for (k = 0; k < 2; k++) {
        v[0] = _mm512_shuffle_f64x2(t[k], t[2 + k], 0x88); /* classes 0-3: L0, L2 */
        v[1] = _mm512_shuffle_f64x2(t[k], t[2 + k], 0xdd); /* classes 0-3: L1, L3 */
        v[2] = _mm512_shuffle_f64x2(t[4 + k], t[6 + k], 0x88);
        v[3] = _mm512_shuffle_f64x2(t[4 + k], t[6 + k], 0xdd);
        r[k] = _mm512_shuffle_f64x2(v[0], v[2], 0x88);     /* row k */
        r[4 + k] = _mm512_shuffle_f64x2(v[0], v[2], 0xdd); /* row 4 + k */
        r[2 + k] = _mm512_shuffle_f64x2(v[1], v[3], 0x88); /* row 2 + k */
        r[6 + k] = _mm512_shuffle_f64x2(v[1], v[3], 0xdd); /* row 6 + k */
    }
}

__attribute__((target("avx512f"))) static void dc_gather_avx512_f32(
    const char *base, ptrdiff_t n, ptrdiff_t cs, ptrdiff_t count, float *tile)
{
    const ptrdiff_t n16 = n - n % 16;
    const ptrdiff_t rows = count % 16;                   /* in the last, partial group */
    const __mmask16 m = (__mmask16)((1u << rows) - 1u);
    ptrdiff_t c, j0;
    int i;
    /* class by class (16 at a time), all rows of a class together: the tile's values of
     * a class are one contiguous read of whole lines, back to back */
    for (c = 0; c < n16; c += 16) {
        const char *src = base + c * cs;
        float *dst = tile + c;
        if (c + 32 <= n) dc_gather_prefetch(src + 16 * cs, cs, 16, count * 4);
        for (j0 = 0; j0 + 16 <= count; j0 += 16) {
            __m512 r[16];
            for (i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * cs + j0 * 4);
            dc_transpose16_ps(r);
            for (i = 0; i < 16; i++) _mm512_storeu_ps(dst + (j0 + i) * n, r[i]);
        }
        if (rows) {
            __m512 r[16];
            for (i = 0; i < 16; i++) r[i] = _mm512_maskz_loadu_ps(m, src + i * cs + j0 * 4);
            dc_transpose16_ps(r);
            for (i = 0; i < rows; i++) _mm512_storeu_ps(dst + (j0 + i) * n, r[i]);
        }
    }
    if (n16 < n) dc_gather_scalar_float(base, n, cs, n16, 0, count, tile);
}

__attribute__((target("avx512f"))) static void dc_gather_avx512_f64(
    const char *base, ptrdiff_t n, ptrdiff_t cs, ptrdiff_t count, double *tile)
{
    const ptrdiff_t n8 = n - n % 8;
    const ptrdiff_t rows = count % 8;
    const __mmask8 m = (__mmask8)((1u << rows) - 1u);
    ptrdiff_t c, j0;
    int i;
    for (c = 0; c < n8; c += 8) {
        const char *src = base + c * cs;
        double *dst = tile + c;
        if (c + 16 <= n) dc_gather_prefetch(src + 8 * cs, cs, 8, count * 8);
        for (j0 = 0; j0 + 8 <= count; j0 += 8) {
            __m512d r[8];
            for (i = 0; i < 8; i++) r[i] = _mm512_loadu_pd(src + i * cs + j0 * 8);
            dc_transpose8_pd(r);
            for (i = 0; i < 8; i++) _mm512_storeu_pd(dst + (j0 + i) * n, r[i]);
        }
        if (rows) {
            __m512d r[8];
            for (i = 0; i < 8; i++) r[i] = _mm512_maskz_loadu_pd(m, src + i * cs + j0 * 8);
            dc_transpose8_pd(r);
            for (i = 0; i < rows; i++) _mm512_storeu_pd(dst + (j0 + i) * n, r[i]);
        }
    }
    if (n8 < n) dc_gather_scalar_double(base, n, cs, n8, 0, count, tile);
}

/* --------------------------------------------------------------------------- AVX2 */

__attribute__((target("avx2"))) static inline void dc_transpose8_ps(__m256 r[8])
{
    __m256 t[8], u[8];
    int i;
    for (i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    for (i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x20);
        r[4 + i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x31);
    }
}

__attribute__((target("avx2"))) static inline void dc_transpose4_pd(__m256d r[4])
{
    const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

__attribute__((target("avx2"))) static void dc_gather_avx2_f32(
    const char *base, ptrdiff_t n, ptrdiff_t cs, ptrdiff_t count, float *tile)
{
    const ptrdiff_t n8 = n - n % 8;
    const ptrdiff_t rows = count % 8;
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rows),
                                         _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    ptrdiff_t c, j0;
    int i;
    for (c = 0; c < n8; c += 8) {
        const char *src = base + c * cs;
        float *dst = tile + c;
        if (c + 16 <= n) dc_gather_prefetch(src + 8 * cs, cs, 8, count * 4);
        for (j0 = 0; j0 + 8 <= count; j0 += 8) {
            __m256 r[8];
            for (i = 0; i < 8; i++) r[i] = _mm256_loadu_ps((const float *)(src + i * cs) + j0);
            dc_transpose8_ps(r);
            for (i = 0; i < 8; i++) _mm256_storeu_ps(dst + (j0 + i) * n, r[i]);
        }
        if (rows) {
            __m256 r[8];
            for (i = 0; i < 8; i++)
                r[i] = _mm256_maskload_ps((const float *)(src + i * cs) + j0, m);
            dc_transpose8_ps(r);
            for (i = 0; i < rows; i++) _mm256_storeu_ps(dst + (j0 + i) * n, r[i]);
        }
    }
    if (n8 < n) dc_gather_scalar_float(base, n, cs, n8, 0, count, tile);
}

__attribute__((target("avx2"))) static void dc_gather_avx2_f64(
    const char *base, ptrdiff_t n, ptrdiff_t cs, ptrdiff_t count, double *tile)
{
    const ptrdiff_t n4 = n - n % 4;
    const ptrdiff_t rows = count % 4;
    const __m256i m = _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)rows),
                                         _mm256_setr_epi64x(0, 1, 2, 3));
    ptrdiff_t c, j0;
    int i;
    for (c = 0; c < n4; c += 4) {
        const char *src = base + c * cs;
        double *dst = tile + c;
        if (c + 8 <= n) dc_gather_prefetch(src + 4 * cs, cs, 4, count * 8);
        for (j0 = 0; j0 + 4 <= count; j0 += 4) {
            __m256d r[4];
            for (i = 0; i < 4; i++) r[i] = _mm256_loadu_pd((const double *)(src + i * cs) + j0);
            dc_transpose4_pd(r);
            for (i = 0; i < 4; i++) _mm256_storeu_pd(dst + (j0 + i) * n, r[i]);
        }
        if (rows) {
            __m256d r[4];
            for (i = 0; i < 4; i++)
                r[i] = _mm256_maskload_pd((const double *)(src + i * cs) + j0, m);
            dc_transpose4_pd(r);
            for (i = 0; i < rows; i++) _mm256_storeu_pd(dst + (j0 + i) * n, r[i]);
        }
    }
    if (n4 < n) dc_gather_scalar_double(base, n, cs, n4, 0, count, tile);
}

/* The CPU's level, 2: AVX-512, 1: AVX2, 0: neither (-1: not yet asked), and the level
 * used, which dc_gather_set_level may cap (tests: every level gives the same bits). */
static int dc_gather_cpu = -1;
static int dc_gather_level = -1;

static inline int dc_gather_simd(void)
{
    if (dc_gather_level < 0) {
        if (dc_gather_cpu < 0) {
            int level = 0;
            __builtin_cpu_init();
            if (__builtin_cpu_supports("avx512f"))
                level = 2;
            else if (__builtin_cpu_supports("avx2"))
                level = 1;
            dc_gather_cpu = level;
        }
        dc_gather_level = dc_gather_cpu;
    }
    return dc_gather_level;
}
#else
static inline int dc_gather_simd(void) { return 0; }
#endif

/* The level used from now on: the CPU's, capped at `cap` when cap >= 0 (cap < 0 only
 * asks); returns it. */
static inline int dc_gather_set_level(int cap)
{
#ifdef DC_GATHER_SIMD
    if (cap >= 0) {
        dc_gather_level = -1;
        dc_gather_simd();
        if (cap < dc_gather_level) dc_gather_level = cap;
    }
#else
    (void)cap;
#endif
    return dc_gather_simd();
}

static inline void dc_gather_rows_f32(const char *base, ptrdiff_t n, ptrdiff_t col_stride,
                                      ptrdiff_t count, float *tile)
{
#ifdef DC_GATHER_SIMD
    const int level = dc_gather_simd();
    if (level == 2) {
        dc_gather_avx512_f32(base, n, col_stride, count, tile);
        return;
    }
    if (level == 1) {
        dc_gather_avx2_f32(base, n, col_stride, count, tile);
        return;
    }
#endif
    dc_gather_scalar_float(base, n, col_stride, 0, 0, count, tile);
}

static inline void dc_gather_rows_f64(const char *base, ptrdiff_t n, ptrdiff_t col_stride,
                                      ptrdiff_t count, double *tile)
{
#ifdef DC_GATHER_SIMD
    const int level = dc_gather_simd();
    if (level == 2) {
        dc_gather_avx512_f64(base, n, col_stride, count, tile);
        return;
    }
    if (level == 1) {
        dc_gather_avx2_f64(base, n, col_stride, count, tile);
        return;
    }
#endif
    dc_gather_scalar_double(base, n, col_stride, 0, 0, count, tile);
}

#endif /* DIVCORE_GATHER_H */
