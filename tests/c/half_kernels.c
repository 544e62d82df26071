/* tests/c/half_kernels.c: the C API's row kernels for half-precision storage (dc_*_f16,
 * dc_*_bf16; src/divcore/half_t.h) against the float kernels (dc_*_f32) on the widened
 * rows, bit for bit, at every instruction set this CPU has (baseline, AVX2, AVX-512: the
 * level pinned through dc_simd_level, as kernels_selftest.c does; with -DDIVCORE_PORTABLE
 * only the portable build). Run by tests/test_c_half.py, compiled as C and C++ with
 * divcore's strict warning set.
 *
 * The rows: short (up to 64 values: the float kernels' lane path), medium (up to and
 * around DC_HALF_CHUNK: widened whole) and long (chunked, up to 100000 values, the max in
 * a late block, a NaN or +inf past the first chunk), with edge values: ±inf, NaN, ±0,
 * subnormal halves, the largest float16 (65504) and bfloat16 (~3.39e38), -inf masks.
 * The widening itself is checked for all 65536 values of each format against an
 * independent conversion (ldexp of the fields). Prints "N checks, F failure(s)" and exits
 * with status 1 if any check failed.
 *
 *     cc -O2 -std=c99 -ffp-contract=fast -I src tests/c/half_kernels.c -lm -o half_kernels
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "divcore/kernels.h"

static long checks = 0, failures = 0;
static char context[160] = "";

static void fail(const char *what, ptrdiff_t n, double got, double want)
{
    failures++;
    if (failures <= 40)
        printf("FAIL %s [%s, n=%ld]: got %.17g, want %.17g\n", what, context, (long)n, got,
               want);
}

static uint64_t bits64(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static uint32_t bits32(float v)
{
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

/* The same double, to the bit (any NaN matches any NaN: a signalling NaN half may come
 * out of F16C quieted). */
static void same(const char *what, ptrdiff_t n, double got, double want)
{
    checks++;
    if (isnan(got) && isnan(want)) return;
    if (bits64(got) != bits64(want)) fail(what, n, got, want);
}

static void same_row(const char *what, ptrdiff_t n, const float *got, const float *want)
{
    checks++;
    for (ptrdiff_t i = 0; i < n; i++) {
        if (isnan(got[i]) && isnan(want[i])) continue;
        if (bits32(got[i]) != bits32(want[i])) {
            fail(what, n, (double)got[i], (double)want[i]);
            return;
        }
    }
}

/* ------------------------------------------------------------ the formats, independently */

/* float16 bits to float from the fields, with ldexp (exact: every float16 is a float). */
static float ref_f16(uint16_t h)
{
    const int sign = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v;
    if (e == 31) v = m ? (double)NAN : (double)INFINITY;
    else if (e == 0) v = ldexp((double)m, -24);
    else v = ldexp((double)(m + 1024), e - 25);
    return (float)(sign ? -v : v);
}

static float ref_bf16(uint16_t h)
{
    const int sign = h >> 15, e = (h >> 7) & 0xff, m = h & 0x7f;
    double v;
    if (e == 255) v = m ? (double)NAN : (double)INFINITY;
    else if (e == 0) v = ldexp((double)m, -133);
    else v = ldexp((double)(m + 128), e - 134);
    return (float)(sign ? -v : v);
}

/* float to the nearest half bits below |v| (exact for values that are halves); enough to
 * make test rows: truncation of the float's bits, with the specials kept. */
static uint16_t to_f16(float v)
{
    const uint32_t b = bits32(v), sign = (b >> 16) & 0x8000u;
    const float a = fabsf(v);
    if (isnan(a)) return (uint16_t)(sign | 0x7e00u);
    if (a >= 65520.0f) return (uint16_t)(sign | 0x7c00u); /* past the largest: inf */
    if (a < 6.103515625e-05f) /* below the smallest normal: a multiple of 2^-24 */
        return (uint16_t)(sign | (uint32_t)(a * 16777216.0f));
    const uint32_t ab = bits32(a);
    return (uint16_t)(sign | ((((ab >> 23) - 112u) << 10) | ((ab >> 13) & 0x3ffu)));
}

static uint16_t to_bf16(float v) { return (uint16_t)(bits32(v) >> 16); }

typedef struct {
    const char *name;
    float (*ref)(uint16_t);
    uint16_t (*from)(float);
    uint16_t max_bits, min_sub_bits, max_sub_bits; /* largest finite, smallest and largest subnormal */
} format;

static const format FORMATS[2] = {
    {"f16", ref_f16, to_f16, 0x7bffu, 0x0001u, 0x03ffu},
    {"bf16", ref_bf16, to_bf16, 0x7f7fu, 0x0001u, 0x007fu},
};

/* The kernels of one format, by name. */
static double lse_h(int f, const uint16_t *x, ptrdiff_t n)
{
    return f ? dc_logsumexp_bf16(x, n) : dc_logsumexp_f16(x, n);
}
static double ce_label_h(int f, const uint16_t *x, ptrdiff_t n, ptrdiff_t y)
{
    return f ? dc_ce_label_bf16(x, n, y) : dc_ce_label_f16(x, n, y);
}
static double entropy_h(int f, const uint16_t *x, ptrdiff_t n)
{
    return f ? dc_entropy_logits_bf16(x, n) : dc_entropy_logits_f16(x, n);
}
static double kl_h(int f, const uint16_t *t, const uint16_t *x, ptrdiff_t n)
{
    return f ? dc_kl_logits_bf16(t, x, n) : dc_kl_logits_f16(t, x, n);
}
static double ce_probs_h(int f, const uint16_t *x, const uint16_t *p, ptrdiff_t n)
{
    return f ? dc_ce_probs_bf16(x, p, n) : dc_ce_probs_f16(x, p, n);
}
static int log_softmax_h(int f, const uint16_t *x, ptrdiff_t n, float *out)
{
    return f ? dc_log_softmax_bf16(x, n, out) : dc_log_softmax_f16(x, n, out);
}
static int softmax_h(int f, const uint16_t *x, ptrdiff_t n, float *out)
{
    return f ? dc_softmax_bf16(x, n, out) : dc_softmax_f16(x, n, out);
}

/* ------------------------------------------------------------------------ the widening */

static void check_widening(void)
{
    static uint16_t all[65536];
    static float got[65536];
    for (uint32_t i = 0; i < 65536u; i++) all[i] = (uint16_t)i;
    snprintf(context, sizeof context, "widening");
    /* every value one at a time, and rows through the F16C path where the CPU has it
     * (offsets 0 .. 7: the 8-value steps and the scalar tail) */
    for (uint32_t i = 0; i < 65536u; i++) {
        same("dc_f16_to_f32", (ptrdiff_t)i, (double)dc_f16_to_f32(all[i]), (double)ref_f16(all[i]));
        same("dc_bf16_to_f32", (ptrdiff_t)i, (double)dc_bf16_to_f32(all[i]), (double)ref_bf16(all[i]));
    }
    for (ptrdiff_t off = 0; off < 8; off++) {
        const ptrdiff_t n = 65536 - off;
        dc_widen_f16(all + off, n, got);
        for (ptrdiff_t i = 0; i < n; i++)
            same("dc_widen_f16", i, (double)got[i], (double)ref_f16(all[off + i]));
        dc_widen_f16_scalar(all + off, n, got);
        for (ptrdiff_t i = 0; i < n; i++)
            same("dc_widen_f16_scalar", i, (double)got[i], (double)ref_f16(all[off + i]));
        dc_widen_bf16(all + off, n, got);
        for (ptrdiff_t i = 0; i < n; i++)
            same("dc_widen_bf16", i, (double)got[i], (double)ref_bf16(all[off + i]));
    }
}

/* ------------------------------------------------------------------------- test rows */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double uniform(void) /* [0, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static double normal(void)
{
    const double u = uniform() + 1e-300, v = uniform();
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

enum {
    K_RANDOM,    /* N(0, 4²), a few -inf masks */
    K_EDGES,     /* random, with ±0, subnormals, the largest finite value, -inf */
    K_LATE_MAX,  /* random, the max near the end (a late block raises the max) */
    K_RISING,    /* increasing: the max grows in every block */
    K_NAN_LATE,  /* a NaN near the end */
    K_PINF_LATE, /* a +inf near the end */
    K_ALL_NINF,  /* no finite value */
    K_ONE,       /* one finite value among -inf */
    K_EQUAL,     /* all equal */
    K_HUGE,      /* ± the largest finite value only (differences overflow) */
    K_COUNT
};

static const char *KIND_NAMES[K_COUNT] = {"random", "edges", "late max", "rising", "nan late",
                                          "+inf late", "all -inf", "one finite", "equal",
                                          "huge"};

static void make_row(const format *fm, int kind, ptrdiff_t n, uint16_t *h)
{
    const uint16_t ninf = fm->from(-(float)INFINITY);
    for (ptrdiff_t i = 0; i < n; i++) {
        double v = 4.0 * normal();
        if (kind == K_RISING) v = -20.0 + 40.0 * (double)i / (double)n + 0.5 * normal();
        if (kind == K_HUGE) v = 0.0;
        h[i] = fm->from((float)v);
        if ((kind == K_RANDOM || kind == K_EDGES || kind == K_LATE_MAX) && uniform() < 0.05)
            h[i] = ninf;
        if (kind == K_ALL_NINF || kind == K_ONE) h[i] = ninf;
        if (kind == K_EQUAL) h[i] = fm->from(1.5f);
        if (kind == K_HUGE) h[i] = (uint16_t)(fm->max_bits | (uniform() < 0.5 ? 0x8000u : 0u));
    }
    if (n == 0) return;
    if (kind == K_EDGES) {
        const uint16_t edges[] = {0x0000u, 0x8000u, fm->min_sub_bits,
                                  (uint16_t)(fm->min_sub_bits | 0x8000u), fm->max_sub_bits,
                                  (uint16_t)(fm->max_bits | 0x8000u), ninf, fm->max_bits};
        for (int k = 0; k < 8; k++) h[(ptrdiff_t)(7 * k + 3) % n] = edges[k];
    }
    if (kind == K_LATE_MAX) h[n - 1 - n / 50] = fm->from(30.0f);
    if (kind == K_NAN_LATE) h[n - 1 - n / 7] = (uint16_t)(fm->from(-(float)INFINITY) | 1u);
    if (kind == K_PINF_LATE) h[n - 1 - n / 7] = fm->from((float)INFINITY);
    if (kind == K_ONE) h[n / 2] = fm->from(-3.0f);
}

/* Probabilities as halves: random, some exactly 0 (also on -inf logits), some subnormal;
 * one row in four puts mass on a -inf logit. Not normalised exactly: used as given. */
static void make_probs(const format *fm, const uint16_t *x, ptrdiff_t n, int masses_on_ninf,
                       uint16_t *p)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        const float xv = fm->ref(x[i]);
        double v = uniform() * 2.0 / (double)(n > 0 ? n : 1);
        if (uniform() < 0.2 || (isinf(xv) && xv < 0 && !masses_on_ninf)) v = 0.0;
        if (uniform() < 0.02) v = 1e-7;
        p[i] = fm->from((float)v);
    }
}

/* Each kernel of one format on (x, t, p) against the float kernel on the widened rows. */
static void check_row(int f, const uint16_t *x, const uint16_t *t, const uint16_t *p,
                      ptrdiff_t n, float *wx, float *wt, float *wp, float *out_h, float *out_f)
{
    const format *fm = &FORMATS[f];
    for (ptrdiff_t i = 0; i < n; i++) {
        wx[i] = fm->ref(x[i]);
        wt[i] = fm->ref(t[i]);
        wp[i] = fm->ref(p[i]);
    }
    same("logsumexp", n, lse_h(f, x, n), dc_logsumexp_f32(wx, n));
    same("entropy_logits", n, entropy_h(f, x, n), dc_entropy_logits_f32(wx, n));
    same("kl_logits", n, kl_h(f, t, x, n), dc_kl_logits_f32(wt, wx, n));
    same("kl_logits (t = x)", n, kl_h(f, x, x, n), dc_kl_logits_f32(wx, wx, n));
    same("ce_probs", n, ce_probs_h(f, x, p, n), dc_ce_probs_f32(wx, wp, n));
    if (n > 0) {
        /* labels: the max, a random class, the last class, a -inf class if any */
        ptrdiff_t labels[4] = {0, (ptrdiff_t)(uniform() * (double)n), n - 1, 0};
        for (ptrdiff_t i = 1; i < n; i++)
            if (wx[i] > wx[labels[0]]) labels[0] = i;
        for (ptrdiff_t i = 0; i < n; i++)
            if (isinf(wx[i]) && wx[i] < 0) labels[3] = i;
        for (int k = 0; k < 4; k++)
            same("ce_label", n, ce_label_h(f, x, n, labels[k]),
                 dc_ce_label_f32(wx, n, labels[k]));
    }
    for (int exponentiate = 0; exponentiate < 2; exponentiate++) {
        for (ptrdiff_t i = 0; i < n; i++) out_h[i] = out_f[i] = -1.0f;
        const int ok_h = exponentiate ? softmax_h(f, x, n, out_h) : log_softmax_h(f, x, n, out_h);
        const int ok_f = exponentiate ? dc_softmax_f32(wx, n, out_f) : dc_log_softmax_f32(wx, n, out_f);
        same(exponentiate ? "softmax ok" : "log_softmax ok", n, ok_h, ok_f);
        same_row(exponentiate ? "softmax" : "log_softmax", n, out_h, out_f);
    }
}

static const ptrdiff_t LENGTHS[] = {0,   1,   2,    3,    5,    7,    8,    9,    15,
                                    16,  17,  31,   33,   63,   64,   65,   100,  255,
                                    511, 512, 513,  700,  1000, 1023, 1024, 1025, 1536,
                                    2047, 2048, 2049, 4100, 20000, 100000};

int main(void)
{
    const ptrdiff_t nl = (ptrdiff_t)(sizeof LENGTHS / sizeof LENGTHS[0]);
    const ptrdiff_t most = LENGTHS[nl - 1];
    uint16_t *x = (uint16_t *)malloc((size_t)most * sizeof *x);
    uint16_t *t = (uint16_t *)malloc((size_t)most * sizeof *t);
    uint16_t *p = (uint16_t *)malloc((size_t)most * sizeof *p);
    float *w = (float *)malloc(5 * (size_t)most * sizeof *w);
    if (x == NULL || t == NULL || p == NULL || w == NULL) return 2;
    check_widening();
    const int best = dc_simd_select();
    char levels[64] = "";
    for (int level = DC_SIMD_BASELINE; level <= best; level++) {
        dc_simd_level = level;
        strcat(levels, " ");
        strcat(levels, dc_simd_name(level));
        for (int f = 0; f < 2; f++) {
            for (ptrdiff_t li = 0; li < nl; li++) {
                const ptrdiff_t n = LENGTHS[li];
                for (int kind = 0; kind < K_COUNT; kind++) {
                    snprintf(context, sizeof context, "%s %s %s", dc_simd_name(level),
                             FORMATS[f].name, KIND_NAMES[kind]);
                    make_row(&FORMATS[f], kind, n, x);
                    make_row(&FORMATS[f], kind == K_EDGES ? K_EDGES : K_RANDOM, n, t);
                    make_probs(&FORMATS[f], x, n, kind == K_RANDOM && li % 4 == 0, p);
                    check_row(f, x, t, p, n, w, w + most, w + 2 * most, w + 3 * most,
                              w + 4 * most);
                }
            }
        }
    }
    dc_simd_level = best;
    free(x);
    free(t);
    free(p);
    free(w);
    printf("half_kernels: %ld checks at%s, %ld failure(s)\n", checks, levels, failures);
    return failures ? 1 : 0;
}
