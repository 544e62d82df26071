/* tests/c/kernels_selftest.c: the C row kernels (the headers in src/divcore) on their own, without
 * Python, checked against plain double loops with compensated sums - for valgrind (tools/valgrind.sh) and
 * for the test suite (tests/test_c_kernels.py compiles and runs it).
 *
 * Every kernel at every instruction set this CPU has (baseline, AVX2, AVX-512, through
 * dispatch.h), float and double, on:
 *   - random rows of every length around the vector widths and the 512-value block, read
 *     from exactly-sized heap buffers at aligned and misaligned addresses (an over-read
 *     is a memcheck error);
 *   - special values: -inf, all -inf, NaN, +inf, ±0, subnormals, ±max, confident rows;
 *   - empty rows;
 *   - with --huge: one row of 2^31 + 17 floats (calloc'd, pages never written) and row
 *     offsets past 2^31 elements (64-bit index arithmetic).
 * Exit status 0 when every check passes; each failure is printed.
 *
 *     cc -O2 -std=c99 -I src tests/c/kernels_selftest.c -lm -o kernels_selftest
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "divcore/dispatch.h"

static long checks = 0, failures = 0;

/* The references are plain double loops with compensated (Neumaier) sums, not long
 * double: valgrind emulates the x87 80-bit type with 64-bit doubles (and mangles its
 * infinities), so double would not mean the same under memcheck. */
typedef struct {
    double s, c;
} acc_t;

static void acc_add(acc_t *a, double v)
{
    const double t = a->s + v;
    if (isfinite(t)) /* an infinite term makes the sum infinite: no error to keep */
        a->c += fabs(a->s) >= fabs(v) ? (a->s - t) + v : (v - t) + a->s;
    a->s = t;
}

static double acc_val(acc_t a) { return isfinite(a.s) ? a.s + a.c : a.s; }
static const char *context = "";

static void fail(const char *what, ptrdiff_t n, double got, double want)
{
    failures++;
    if (failures <= 30)
        fprintf(stderr, "FAIL %s [%s, n=%ld]: got %.17g, want %.17g\n", what, context,
                (long)n, got, want);
}

/* got is want within tol·(scale) absolutely, or both the same non-finite value. */
static void expect(const char *what, ptrdiff_t n, double got, double want, double tol)
{
    checks++;
    if (isnan(want)) {
        if (!isnan(got)) fail(what, n, got, want);
        return;
    }
    if (isinf(want) || isinf(got)) {
        if (got != (double)want) fail(what, n, got, want);
        return;
    }
    if (!(fabs((double)got - want) <= tol)) fail(what, n, got, want);
}

/* ------------------------------------------------------------------ test data */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static double uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return ((double)(rng_state >> 11) + 0.5) / 9007199254740992.0;
}

static double normal(void)
{
    return sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform());
}

/* A row of n values of either type, in a heap block of exactly its size (+ `shift`
 * values before it, so that the row is misaligned when shift is odd). */
typedef struct {
    int f32;
    ptrdiff_t n;
    void *block;
    void *x;    /* the row */
    double *d;  /* the same values as double (what the reference reads) */
} row_t;

static row_t row_new(int f32, ptrdiff_t n, int shift)
{
    row_t r;
    const size_t size = f32 ? sizeof(float) : sizeof(double);
    r.f32 = f32;
    r.n = n;
    r.block = malloc(n + shift > 0 ? (size_t)(n + shift) * size : 1);
    r.x = (char *)r.block + (size_t)shift * size;
    r.d = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    if (r.block == NULL || r.d == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return r;
}

static void row_set(row_t *r, ptrdiff_t i, double v)
{
    if (r->f32) {
        ((float *)r->x)[i] = (float)v;
        r->d[i] = (double)(float)v;
    } else {
        ((double *)r->x)[i] = v;
        r->d[i] = v;
    }
}

static void row_free(row_t *r)
{
    free(r->block);
    free(r->d);
}

/* ----------------------------------------------------------------- references */

static double ref_lse(const double *x, ptrdiff_t n)
{
    double m = -INFINITY, s = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        if (isnan(x[i]) || x[i] == INFINITY) return NAN;
        if (x[i] > m) m = x[i];
    }
    if (m == -INFINITY) return -INFINITY;
    acc_t sum = {0, 0};
    for (ptrdiff_t i = 0; i < n; i++) acc_add(&sum, exp(x[i] - m));
    s = acc_val(sum);
    return m + log(s);
}

/* The tolerance for a result built from terms of size `scale`. */
static double tol_of(int f32, double scale)
{
    const double eps = f32 ? FLT_EPSILON : DBL_EPSILON;
    return 16.0 * eps * (double)(1.0 + fabs(scale));
}

static double row_scale(const row_t *r)
{
    double s = log((double)r->n + 1);
    for (ptrdiff_t i = 0; i < r->n; i++)
        if (isfinite(r->d[i]) && fabs(r->d[i]) > s) s = fabs(r->d[i]);
    return 2 * s;
}

/* ------------------------------------------------------ kernels of either type */

static double k_lse(const row_t *r)
{
    return r->f32 ? dcd_dc_logsumexp_f32(r->x, r->n) : dcd_dc_logsumexp_f64(r->x, r->n);
}

static double k_ce_label(const row_t *r, ptrdiff_t y)
{
    return r->f32 ? dcd_dc_ce_label_f32(r->x, r->n, y) : dcd_dc_ce_label_f64(r->x, r->n, y);
}

static double k_entropy(const row_t *r)
{
    return r->f32 ? dcd_dc_entropy_logits_f32(r->x, r->n)
                  : dcd_dc_entropy_logits_f64(r->x, r->n);
}

/* ------------------------------------------------------------------ the checks */

static void check_row(const row_t *r)
{
    const ptrdiff_t n = r->n;
    const double lse = ref_lse(r->d, n);
    const double tol = tol_of(r->f32, row_scale(r));
    const int has_dist = isfinite(lse);
    expect("logsumexp", n, k_lse(r), lse, tol);

    /* log_softmax and softmax into exactly-sized outputs */
    const size_t size = r->f32 ? sizeof(float) : sizeof(double);
    void *out = malloc((size_t)(n > 0 ? n : 1) * size);
    for (int e = 0; e <= 1; e++) {
        int ok = r->f32 ? dcd_dc_log_softmax_row_f32(r->x, n, e, out)
                        : dcd_dc_log_softmax_row_f64(r->x, n, e, out);
        checks++;
        if (ok != has_dist) fail(e ? "softmax ok flag" : "log_softmax ok flag", n, ok, has_dist);
        for (ptrdiff_t i = 0; i < n; i++) {
            double v = r->f32 ? ((float *)out)[i] : ((double *)out)[i];
            double want = !has_dist ? (double)NAN
                               : e ? exp((double)r->d[i] - lse)
                                   : (double)r->d[i] - lse;
            /* softmax: relative error ~ eps·|x - lse|, plus float32's subnormal spacing */
            double t = e ? tol * (double)(fabs(want) + 1e-37) + (r->f32 ? 1e-44 : 0) : tol;
            expect(e ? "softmax" : "log_softmax", n, v, want, t);
        }
    }

    /* cross-entropy with a label: every label for short rows, a few for long ones */
    for (ptrdiff_t y = 0; y < n; y += n <= 70 ? 1 : n / 5 + 1) {
        double want = has_dist ? lse - (double)r->d[y] : (double)NAN;
        if (has_dist && r->d[y] == -INFINITY) want = INFINITY;
        expect("ce_label", n, k_ce_label(r, y), want, tol);
    }
    if (n > 0 && has_dist) {
        ptrdiff_t y = n - 1;
        double want = r->d[y] == -INFINITY ? (double)INFINITY : lse - r->d[y];
        expect("ce_label last", n, k_ce_label(r, y), want, tol);
    }

    /* entropy of softmax(x) */
    double h = 0;
    if (has_dist) {
        acc_t hs = {0, 0};
        for (ptrdiff_t i = 0; i < n; i++) {
            double q = exp((double)r->d[i] - lse);
            if (q > 0) acc_add(&hs, q * (lse - r->d[i]));
        }
        h = acc_val(hs);
    } else {
        h = NAN;
    }
    expect("entropy_logits", n, k_entropy(r), h, tol);

    /* soft targets: p = a random distribution with zeros; CE, H, KL, JS, the gradient */
    if (n > 0) {
        row_t p = row_new(r->f32, n, 0), lg = row_new(r->f32, n, 0);
        double psum = 0;
        for (ptrdiff_t i = 0; i < n; i++) {
            double v = uniform() < 0.2 ? 0.0 : exp(2 * normal());
            row_set(&p, i, v);
            psum += v;
        }
        if (psum == 0) {  /* no all-zero target */
            row_set(&p, 0, 1.0);
            psum = 1.0;
        }
        for (ptrdiff_t i = 0; i < n; i++) row_set(&p, i, p.d[i] / (double)psum);
        double ce, hp, kl, js, total;
        acc_t ce_s = {0, 0}, hp_s = {0, 0}, js_s = {0, 0}, total_s = {0, 0};
        for (ptrdiff_t i = 0; i < n; i++) {
            acc_add(&total_s, p.d[i]);
            if (p.d[i] > 0) {
                acc_add(&ce_s, p.d[i] * (lse - r->d[i]));
                acc_add(&hp_s, -p.d[i] * log(p.d[i]));
            }
        }
        ce = acc_val(ce_s);
        hp = acc_val(hp_s);
        total = acc_val(total_s);
        kl = ce - hp < 0 ? 0 : ce - hp;
        if (!has_dist) ce = hp = kl = NAN;
        dc_soft_result res;
        if (r->f32)
            dcd_dc_soft_target_row_f32(r->x, p.x, NULL, n, 0, 1, &res);
        else
            dcd_dc_soft_target_row_f64(r->x, p.x, NULL, n, 0, 1, &res);
        expect("soft ce", n, res.ce, ce, tol);
        expect("soft h", n, res.h, has_dist ? hp : (double)res.h, tol);
        expect("soft kl", n, res.kl, kl, tol);
        expect("soft psum", n, res.psum, total, tol_of(r->f32, 1));
        checks++;
        if (res.nbad != 0) fail("soft nbad", n, (double)res.nbad, 0);

        /* the same target as log-probabilities (log 0 = -inf); then one NaN in it */
        row_t lp = row_new(r->f32, n, 1);
        for (ptrdiff_t i = 0; i < n; i++) row_set(&lp, i, log(p.d[i]));
        if (r->f32)
            dcd_dc_soft_target_row_f32(r->x, lp.x, NULL, n, 1, 1, &res);
        else
            dcd_dc_soft_target_row_f64(r->x, lp.x, NULL, n, 1, 1, &res);
        expect("soft ce, log-probabilities", n, res.ce, ce, 2 * tol);
        expect("soft kl, log-probabilities", n, res.kl, kl, 2 * tol);
        row_set(&lp, n / 2, NAN);
        if (r->f32)
            dcd_dc_soft_target_row_f32(r->x, lp.x, NULL, n, 1, 1, &res);
        else
            dcd_dc_soft_target_row_f64(r->x, lp.x, NULL, n, 1, 1, &res);
        checks++;
        if (res.nbad != 1) fail("soft nbad, a NaN log-probability", n, (double)res.nbad, 1);
        row_free(&lp);

        /* JS_½(p, q), the plain formula in double */
        for (ptrdiff_t i = 0; i < n && has_dist; i++) {
            double q = exp((double)r->d[i] - lse), pi = p.d[i], m = (pi + q) / 2;
            if (pi > 0) acc_add(&js_s, 0.5 * pi * log(pi / m));
            if (q > 0) acc_add(&js_s, 0.5 * q * log(q / m));
        }
        js = acc_val(js_s);
        if (js < 0) js = 0;
        double ps;
        ptrdiff_t nb;
        double got_js = r->f32 ? dcd_dc_js_row_f32(r->x, p.x, n, DC_TARGET_PROBS, 0.5, &ps, &nb)
                               : dcd_dc_js_row_f64(r->x, p.x, n, DC_TARGET_PROBS, 0.5, &ps, &nb);
        expect("js", n, got_js, has_dist ? js : (double)NAN, tol);

        /* KL(softmax(t) || softmax(x)) for a logits target t */
        for (ptrdiff_t i = 0; i < n; i++) row_set(&lg, i, 3 * normal());
        double lt = ref_lse(lg.d, n), klt;
        acc_t klt_s = {0, 0};
        for (ptrdiff_t i = 0; i < n && has_dist; i++) {
            double pt = exp((double)lg.d[i] - lt);
            if (pt > 0) acc_add(&klt_s, pt * (((double)lg.d[i] - lt) - ((double)r->d[i] - lse)));
        }
        klt = acc_val(klt_s);
        if (klt < 0) klt = 0;
        if (r->f32)
            dcd_dc_soft_logits_f32(r->x, lg.x, NULL, n, &res);
        else
            dcd_dc_soft_logits_f64(r->x, lg.x, NULL, n, &res);
        expect("kl logits", n, res.kl, has_dist ? klt : (double)NAN,
               tol + tol_of(r->f32, row_scale(&lg)));

        /* gradient of CE with label y: softmax(x) - onehot(y) */
        void *g = malloc((size_t)n * size);
        ptrdiff_t y = n / 2;
        double loss = r->f32 ? dcd_dc_ce_label_grad_f32(r->x, n, y, 1.0, g)
                             : dcd_dc_ce_label_grad_f64(r->x, n, y, 1.0, g);
        if (has_dist && isfinite(r->d[y])) {
            expect("ce_label_grad loss", n, loss, lse - r->d[y], tol);
            for (ptrdiff_t i = 0; i < n; i++) {
                double v = r->f32 ? ((float *)g)[i] : ((double *)g)[i];
                expect("ce_label_grad", n, v, exp((double)r->d[i] - lse) - (i == y), tol);
            }
        }
        free(g);
        row_free(&p);
        row_free(&lg);
    }
    free(out);
}

static void random_rows(int f32)
{
    static const ptrdiff_t lengths[] = {0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63,
                                        64, 65, 127, 128, 129, 511, 512, 513, 1023, 1024,
                                        1025, 1537, 4099};
    static const double scales[] = {0.1, 1.0, 4.0, 30.0};
    static const double offsets[] = {0.0, -80.0, 300.0};
    for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
        for (int s = 0; s < 4; s++) {
            const ptrdiff_t n = lengths[k];
            row_t r = row_new(f32, n, (int)(k + s) % 3);
            const double off = offsets[(k + s) % 3];
            for (ptrdiff_t i = 0; i < n; i++)
                row_set(&r, i, uniform() < 0.1 * (s == 2) ? -INFINITY : off + scales[s] * normal());
            check_row(&r);
            row_free(&r);
        }
    }
}

static void special_rows(int f32)
{
    const double big = f32 ? FLT_MAX : DBL_MAX, tiny = f32 ? 1.4e-45 : 4.9e-324;
    const double rows[][6] = {
        {0.0, -INFINITY, 1.0, -INFINITY, 2.0, 0.5},
        {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY},
        {1.0, NAN, 2.0, 0.0, 0.0, 0.0},
        {0.0, INFINITY, 1.0, 0.0, 0.0, 0.0},
        {INFINITY, -INFINITY, NAN, 0.0, 1.0, 2.0},
        {0.0, -0.0, 0.0, -0.0, 0.0, -0.0},
        {tiny, -tiny, 0.0, tiny, 0.0, -tiny},
        {big, big, 0.0, -1.0, 1.0, 2.0},
        {-big, 0.0, -big, 1.0, -1.0, -big},
        {40.0, 0.0, 0.0, 0.0, 0.0, 0.0},
        {100.0, -100.0, -100.0, -100.0, -100.0, -100.0},
        {7.0, 7.0, 7.0, 7.0, 7.0, 7.0},
    };
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        for (ptrdiff_t n = 1; n <= 6; n++) {
            row_t r = row_new(f32, n, (int)k % 2);
            for (ptrdiff_t i = 0; i < n; i++) row_set(&r, i, rows[k][i]);
            /* rows with ±max: lse - x_i overflows for the reference's double too
             * rarely to matter, but the soft-target checks would compare inf - inf */
            check_row(&r);
            row_free(&r);
        }
    }
    /* a confident correct prediction keeps its tiny loss in relative precision */
    for (ptrdiff_t n = 2; n <= 600; n = n * 3 + 1) {
        row_t r = row_new(f32, n, 1);
        for (ptrdiff_t i = 0; i < n; i++) row_set(&r, i, i == 0 ? 50.0 : 0.0);
        double want = log1p((double)(n - 1) * exp(-50.0));
        expect("confident ce_label (relative)", n, k_ce_label(&r, 0) / (double)want, 1.0,
               tol_of(r.f32, 4));
        row_free(&r);
    }
}

/* rows.h: a strided, masked, tempered row gathered into a buffer */
static void gathered_rows(void)
{
    enum { ROWS = 3, COLS = 37, STRIDE = 2 };
    double data[ROWS][COLS * STRIDE];
    unsigned char mask[ROWS][COLS];
    for (int i = 0; i < ROWS; i++)
        for (int c = 0; c < COLS; c++) {
            data[i][c * STRIDE] = normal() * 3;
            data[i][c * STRIDE + 1] = NAN; /* never read */
            mask[i][c] = uniform() < 0.8;
        }
    dc_rows r = {(const char *)data, sizeof data[0], STRIDE * sizeof(double), COLS,
                 &mask[0][0], COLS, 1, 2.5};
    double buf[COLS];
    for (int i = 0; i < ROWS; i++) {
        const double *row = dc_row_f64(&r, i, -INFINITY, buf);
        for (int c = 0; c < COLS; c++) {
            double want = mask[i][c] ? data[i][c * STRIDE] / 2.5 : -INFINITY;
            expect("dc_row gather", COLS, row[c], want, 0);
        }
    }
}

/* binary cross-entropy on one logit against log1p/exp in double */
static void bce_values(void)
{
    const double xs[] = {-800, -40, -3, -1e-9, 0, 1e-9, 2, 40, 800, INFINITY, -INFINITY};
    const double ys[] = {0.0, 1.0, 0.3};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++)
        for (size_t j = 0; j < 3; j++) {
            const double x = xs[i], y = ys[j];
            double sp_neg = x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x));
            double sp_pos = x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
            double want = (y != 0 ? y * sp_neg : 0) + (1 - y != 0 ? (1 - y) * sp_pos : 0);
            expect("bce_logit", 1, dc_bce_logit(xs[i], ys[j], 1.0), want,
                   tol_of(0, isfinite(want) ? want : 1));
        }
}

/* 64-bit indexes: one row of 2^31 + 17 floats, and rows 2^30 + 3 values apart */
static void huge_rows(void)
{
    const ptrdiff_t n = ((ptrdiff_t)1 << 31) + 17;
    float *x = calloc((size_t)n, sizeof(float));
    if (x == NULL) {
        printf("kernels_selftest: --huge skipped (cannot map 8 GiB)\n");
        return;
    }
    context = "huge";
    x[n - 3] = 3.0f;
    const double lse = log((double)(n - 1) + exp(3.0));
    expect("huge logsumexp", n, dcd_dc_logsumexp_f32(x, n), lse, 1e-6 * lse);
    expect("huge ce_label near the end", n, dcd_dc_ce_label_f32(x, n, n - 3), lse - 3, 1e-6 * lse);
    expect("huge ce_label at 0", n, dcd_dc_ce_label_f32(x, n, 0), lse, 1e-6 * lse);
    /* rows 2^30 + 3 floats apart: row 2 starts past element 2^31 (byte 2^33) */
    const ptrdiff_t stride = ((ptrdiff_t)1 << 30) + 3;
    for (int c = 0; c < 16; c++) x[2 * stride + c] = (float)c;
    dc_rows r = {(const char *)x, stride * (ptrdiff_t)sizeof(float), sizeof(float), 16,
                 NULL, 0, 0, 1.0};
    float buf[16];
    const float *row = dc_row_f32(&r, 2, -INFINITY, buf);
    double want = 0;
    for (int c = 0; c < 16; c++) want += exp((double)c - 15);
    expect("huge row offset", 16, dcd_dc_logsumexp_f32(row, 16), 15 + log(want), 1e-5);
    free(x);
}

int main(int argc, char **argv)
{
    int huge = argc > 1 && strcmp(argv[1], "--huge") == 0;
    const int best = dc_simd_select();
    char levels[64] = "";
    for (int level = DC_SIMD_BASELINE; level <= best; level++) {
        dc_simd_level = level;
        strcat(levels, " ");
        strcat(levels, dc_simd_name(level));
        for (int f32 = 0; f32 <= 1; f32++) {
            context = f32 ? (level == 2 ? "avx512 float" : level == 1 ? "avx2 float" : "baseline float")
                          : (level == 2 ? "avx512 double" : level == 1 ? "avx2 double" : "baseline double");
            random_rows(f32);
            special_rows(f32);
        }
    }
    dc_simd_level = best;
    context = "rows.h";
    gathered_rows();
    context = "bce";
    bce_values();
    if (huge) huge_rows();
    printf("kernels_selftest: %ld checks at%s, %ld failure(s)\n", checks, levels, failures);
    return failures != 0;
}
