"""The C-level API (SPEC §6, docs/c_api.md, issue 17): divcore/kernels.h and the .pxd files
used by other extensions, built from scratch in a temporary folder.

- plain C and C++ consumers (gcc, clang, g++, clang++ where installed), compiled with a
  strict warning set and -Werror, only divcore.get_include() on the include path and no
  Python.h, loaded with ctypes; one with -ffast-math, which must not compile;
- a Cython consumer built with a bare cythonize() (its .pxd found in the installed
  package, no include path), and the Cython example (examples/cython_extension);
- the C example (examples/c_consumer), compiled as C and as C++ and run.

Their results are checked against the reference backend (the independent oracle), the
documented values for empty and all -inf rows (SPEC §4), and the Python API: equal to the
bit at every instruction-set level (DIVCORE_SIMD), the documented dc_* names being the
dispatched kernels, and at the baseline level for a consumer built with DIVCORE_PORTABLE.
The batch kernels are checked against the Python API's batch calls (per row and reduced).
"""
import ctypes
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
from _helpers import EPS32, assert_allclose_nan, random_logits, random_probs

import divcore
import divcore.reference

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(os.path.dirname(HERE), "examples")
INCLUDE = divcore.get_include()
# The folder holding the divcore package these tests imported: subprocesses that import
# divcore (a setup.py calling get_include) must find the same one.
DIVCORE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(divcore.__file__)))

# (compiler, language, standard)
COMPILERS = [
    ("gcc", "c", "c99"),
    ("clang", "c", "c99"),
    ("g++", "c++", "c++11"),
    ("clang++", "c++", "c++17"),
]
STRICT = ["-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Wconversion", "-Wdouble-promotion",
          "-Wfloat-equal", "-Wcast-qual", "-Werror"]
STRICT_CXX = {"g++": ["-Wold-style-cast", "-Wuseless-cast"], "clang++": ["-Wold-style-cast"]}
# Fuse multiply-adds as divcore's own build does (setup.py), for the Python API's bits at the
# AVX levels (GCC's default in its GNU modes, not with -std=c99).
CONTRACT = ["-ffp-contract=fast"]

# A consumer of divcore/kernels.h: row loops over a C-contiguous (rows, n) array, exported
# for ctypes. The same text is compiled as C and as C++.
CONSUMER = r"""
#ifdef __cplusplus
#include <cmath>   /* a C++ header first: kernels.h must coexist with it */
#include <vector>
#define EXPORT extern "C"
#else
#define EXPORT
#endif
#include <stdint.h>
#include "divcore/kernels.h"

#define ROW_LOOPS(T, S)                                                                   \
EXPORT void lse_##S(const T *x, ptrdiff_t rows, ptrdiff_t n, double *out)                \
{ for (ptrdiff_t i = 0; i < rows; i++) out[i] = dc_logsumexp_##S(x + i * n, n); }       \
EXPORT void ce_label_##S(const T *x, const int64_t *y, ptrdiff_t rows, ptrdiff_t n,      \
                         double *out)                                                   \
{ for (ptrdiff_t i = 0; i < rows; i++) {                                                \
      const ptrdiff_t label = y[i];                                                     \
      out[i] = dc_ce_label_##S(x + i * n, n, label); } }                                \
EXPORT void ce_probs_##S(const T *x, const T *p, ptrdiff_t rows, ptrdiff_t n,           \
                         double *out)                                                   \
{ for (ptrdiff_t i = 0; i < rows; i++)                                                  \
      out[i] = dc_ce_probs_##S(x + i * n, p + i * n, n); }                              \
EXPORT void kl_logits_##S(const T *t, const T *x, ptrdiff_t rows, ptrdiff_t n,          \
                          double *out)                                                  \
{ for (ptrdiff_t i = 0; i < rows; i++)                                                  \
      out[i] = dc_kl_logits_##S(t + i * n, x + i * n, n); }                             \
EXPORT void entropy_##S(const T *x, ptrdiff_t rows, ptrdiff_t n, double *out)            \
{ for (ptrdiff_t i = 0; i < rows; i++) out[i] = dc_entropy_logits_##S(x + i * n, n); }  \
EXPORT ptrdiff_t log_softmax_##S(const T *x, ptrdiff_t rows, ptrdiff_t n, T *out)        \
{ ptrdiff_t ok = 0;                                                                     \
  for (ptrdiff_t i = 0; i < rows; i++) ok += dc_log_softmax_##S(x + i * n, n, out + i * n); \
  return ok; }                                                                          \
EXPORT ptrdiff_t softmax_##S(const T *x, ptrdiff_t rows, ptrdiff_t n, T *out)            \
{ ptrdiff_t ok = 0;                                                                     \
  for (ptrdiff_t i = 0; i < rows; i++) ok += dc_softmax_##S(x + i * n, n, out + i * n); \
  return ok; }                                                                          \
EXPORT ptrdiff_t batch_lse_##S(const T *x, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t rs,     \
                               ptrdiff_t cs, const unsigned char *m, ptrdiff_t mrs,     \
                               ptrdiff_t mcs, double *out)                              \
{ return dc_batch_logsumexp_##S(x, rows, n, rs, cs, m, mrs, mcs, out); }                 \
EXPORT ptrdiff_t batch_ce_labels_##S(const T *x, ptrdiff_t rows, ptrdiff_t n,            \
                                     ptrdiff_t rs, ptrdiff_t cs, const int64_t *y,       \
                                     ptrdiff_t ys, const T *w, int64_t ignore,           \
                                     const unsigned char *m, ptrdiff_t mrs,              \
                                     ptrdiff_t mcs, double *out, dc_reduced *red)        \
{ return dc_batch_ce_labels_##S(x, rows, n, rs, cs, y, ys, w, ignore, m, mrs, mcs, out, red); } \
EXPORT ptrdiff_t batch_ce_probs_##S(const T *x, ptrdiff_t rows, ptrdiff_t n,             \
                                    ptrdiff_t rs, ptrdiff_t cs, const T *p, ptrdiff_t prs, \
                                    ptrdiff_t pcs, int is_log, const T *w,               \
                                    const unsigned char *m, ptrdiff_t mrs,               \
                                    ptrdiff_t mcs, double *out, dc_reduced *red)         \
{ return dc_batch_ce_probs_##S(x, rows, n, rs, cs, p, prs, pcs, is_log, w, m, mrs, mcs,  \
                               out, red); }                                             \
EXPORT ptrdiff_t batch_kl_logits_##S(const T *x, ptrdiff_t rows, ptrdiff_t n,            \
                                     ptrdiff_t rs, ptrdiff_t cs, const T *t,             \
                                     ptrdiff_t trs, ptrdiff_t tcs,                       \
                                     const unsigned char *m, ptrdiff_t mrs,              \
                                     ptrdiff_t mcs, double *out, dc_reduced *red)        \
{ return dc_batch_kl_logits_##S(x, rows, n, rs, cs, t, trs, tcs, m, mrs, mcs, out, red); }

ROW_LOOPS(float, f32)
ROW_LOOPS(double, f64)

/* The level of this library: -1 until its first dispatched call chooses it. */
EXPORT int chosen_level(void) { return dc_simd_level; }

EXPORT const char *header_version(void) { return DIVCORE_VERSION; }
EXPORT int header_version_number(void) { return DIVCORE_VERSION_NUMBER; }

#ifdef __cplusplus
/* The kernels from C++ containers. */
EXPORT double lse_copy_f64(const double *x, ptrdiff_t n)
{
    const std::vector<double> v(x, x + n);
    return dc_logsumexp_f64(v.data(), static_cast<ptrdiff_t>(v.size()));
}
#endif
"""

# A consumer of divcore/dispatch.h: the run-time dispatched builds.
DISPATCH_CONSUMER = r"""
#include "divcore/dispatch.h"
#ifdef __cplusplus
#define EXPORT extern "C"
#else
#define EXPORT
#endif

EXPORT int select_level(void) { return dc_simd_select(); }
EXPORT const char *level_name(int level) { return dc_simd_name(level); }

#define ROW_LOOPS(T, S)                                                                   \
EXPORT void lse_##S(const T *x, ptrdiff_t rows, ptrdiff_t n, double *out)                \
{ for (ptrdiff_t i = 0; i < rows; i++) out[i] = dcd_dc_logsumexp_##S(x + i * n, n); }   \
EXPORT void entropy_##S(const T *x, ptrdiff_t rows, ptrdiff_t n, double *out)            \
{ for (ptrdiff_t i = 0; i < rows; i++)                                                  \
      out[i] = dcd_dc_entropy_logits_##S(x + i * n, n); }                               \
EXPORT void ce_label_##S(const T *x, const long long *y, ptrdiff_t rows, ptrdiff_t n,    \
                         double *out)                                                   \
{ for (ptrdiff_t i = 0; i < rows; i++) {                                                \
      const ptrdiff_t label = y[i];                                                     \
      out[i] = dcd_dc_ce_label_##S(x + i * n, n, label); } }                            \
EXPORT ptrdiff_t log_softmax_##S(const T *x, ptrdiff_t rows, ptrdiff_t n, T *out)        \
{ ptrdiff_t ok = 0;                                                                     \
  for (ptrdiff_t i = 0; i < rows; i++)                                                  \
      ok += dcd_dc_log_softmax_row_##S(x + i * n, n, 0, out + i * n);                   \
  return ok; }

ROW_LOOPS(float, f32)
ROW_LOOPS(double, f64)
"""


# ------------------------------------------------------------------------- building


def _run(cmd, **kw):
    """Run a build step; on failure, fail the test with its output."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
                    f"{proc.stdout}\n{proc.stderr}")
    return proc


def _compiler_or_skip(compiler):
    path = shutil.which(compiler)
    if path is None:
        pytest.skip(f"{compiler} is not installed")
    return path


def _compile(compiler, lang, std, source_text, folder, name, extra=(), shared=True):
    """Compile source_text with only divcore.get_include() on the include path (no
    Python.h) and warnings as errors; return the output's path."""
    ext = ".c" if lang == "c" else ".cpp"
    src = os.path.join(folder, name + ext)
    with open(src, "w", encoding="utf-8") as f:
        f.write(source_text)
    out = os.path.join(folder, name + (".so" if shared else ""))
    cmd = [_compiler_or_skip(compiler), f"-std={std}", "-O3", *STRICT,
           *STRICT_CXX.get(compiler, []), *CONTRACT, *extra, "-I", INCLUDE, src, "-o", out,
           "-lm"]
    if shared:
        cmd[1:1] = ["-shared", "-fPIC"]
    _run(cmd)
    return out


def _row_library(path, functions, label_type):
    lib = ctypes.CDLL(path)
    vp, sz = ctypes.c_void_p, ctypes.c_ssize_t
    for sfx in ("f32", "f64"):
        for fn in functions:
            f = getattr(lib, f"{fn}_{sfx}")
            if fn in ("log_softmax", "softmax"):
                f.argtypes, f.restype = [vp, sz, sz, vp], sz
            elif fn in ("ce_label", "ce_probs", "kl_logits"):  # two input pointers
                f.argtypes, f.restype = [vp, vp, sz, sz, vp], None
            else:
                f.argtypes, f.restype = [vp, sz, sz, vp], None
    lib.label_type = label_type
    return lib


class CRows:
    """The exported row loops of a consumer library, called on numpy arrays."""

    def __init__(self, lib):
        self.lib = lib

    @staticmethod
    def _ptr(a):
        return a.ctypes.data_as(ctypes.c_void_p)

    def _fn(self, name, x):
        return getattr(self.lib, f"{name}_{'f32' if x.dtype == np.float32 else 'f64'}")

    def rowwise(self, name, x, *others):
        x = np.ascontiguousarray(x)
        out = np.empty(x.shape[0])
        args = [self._ptr(np.ascontiguousarray(a, dtype=x.dtype)) for a in (x, *others)]
        self._fn(name, x)(*args, x.shape[0], x.shape[1], self._ptr(out))
        return out

    def kl_logits(self, target_logits, logits):
        return self.rowwise("kl_logits", np.ascontiguousarray(target_logits), logits)

    def ce_label(self, x, labels):
        x = np.ascontiguousarray(x)
        y = np.ascontiguousarray(labels, dtype=self.lib.label_type)
        out = np.empty(x.shape[0])
        self._fn("ce_label", x)(self._ptr(x), self._ptr(y), x.shape[0], x.shape[1],
                                self._ptr(out))
        return out

    def row_writer(self, name, x, out=None):
        x = np.ascontiguousarray(x)
        out = np.empty_like(x) if out is None else out
        ok = self._fn(name, x)(self._ptr(x), x.shape[0], x.shape[1], self._ptr(out))
        return ok, out


C_KINDS = [c[0] for c in COMPILERS]


@pytest.fixture(scope="module")
def c_consumers(tmp_path_factory):
    """c_consumers(compiler): CONSUMER built with that compiler (once per module)."""
    built = {}

    def get(compiler):
        if compiler not in built:
            _, lang, std = next(c for c in COMPILERS if c[0] == compiler)
            folder = str(tmp_path_factory.mktemp(f"c_api_{compiler}"))
            path = _compile(compiler, lang, std, CONSUMER, folder, "consumer")
            lib = _row_library(path, ("lse", "ce_label", "ce_probs", "kl_logits", "entropy",
                                      "log_softmax", "softmax"), np.int64)
            lib.header_version.restype = ctypes.c_char_p
            lib.header_version_number.restype = ctypes.c_int
            if lang == "c++":
                lib.lse_copy_f64.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t]
                lib.lse_copy_f64.restype = ctypes.c_double
            lib.lang = lang
            built[compiler] = CRows(lib)
        return built[compiler]

    return get


@pytest.fixture(params=C_KINDS)
def c_consumer(request, c_consumers):
    return c_consumers(request.param)


@pytest.fixture(scope="module")
def cython_example(tmp_path_factory):
    """examples/cython_extension, built as its README says, in a temporary folder."""
    pytest.importorskip("Cython")
    pytest.importorskip("setuptools")
    source = os.path.join(EXAMPLES, "cython_extension")
    if not os.path.isdir(source):
        pytest.skip("examples/cython_extension is not in this tree")
    folder = str(tmp_path_factory.mktemp("cython_example"))
    for name in os.listdir(source):
        if name.endswith((".py", ".pyx")):
            shutil.copy(os.path.join(source, name), folder)
    env = dict(os.environ, PYTHONPATH=DIVCORE_PARENT,
               # -O3, as divcore's build (setuptools' CFLAGS replace Python's own): the
               # AVX levels' bits depend on the multiply-adds the compiler fuses
               CFLAGS="-O3 -g0")
    _run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=folder, env=env)
    sys.path.insert(0, folder)
    try:
        import row_scores
    finally:
        sys.path.remove(folder)
    row_scores.build_folder = folder
    return row_scores


class CythonRows:
    """The Cython example's functions, with the same calls as CRows."""

    def __init__(self, module):
        self.m = module

    def rowwise(self, name, x, *others):
        x = np.ascontiguousarray(x)
        out = np.empty(x.shape[0])
        fn = {"lse": self.m.logsumexp, "entropy": self.m.entropy,
              "ce_probs": self.m.cross_entropy_probs}[name]
        fn(x, *[np.ascontiguousarray(a, dtype=x.dtype) for a in others], out)
        return out

    def kl_logits(self, target_logits, logits):
        logits = np.ascontiguousarray(logits)
        out = np.empty(logits.shape[0])
        self.m.kl_logits(np.ascontiguousarray(target_logits, dtype=logits.dtype), logits, out)
        return out

    def ce_label(self, x, labels):
        x = np.ascontiguousarray(x)
        out = np.empty(x.shape[0])
        self.m.cross_entropy_labels(x, np.ascontiguousarray(labels, dtype=np.int64), out)
        return out

    def row_writer(self, name, x, out=None):
        x = np.ascontiguousarray(x)
        out = np.empty_like(x) if out is None else out
        ok = self.m.log_softmax(x, out, exponentiate=(name == "softmax"))
        return ok, out


@pytest.fixture(params=C_KINDS + ["cython"])
def consumer(request, c_consumers):
    """Each consumer in turn: the C / C++ libraries and the Cython example."""
    if request.param == "cython":
        return CythonRows(request.getfixturevalue("cython_example"))
    return c_consumers(request.param)


# --------------------------------------------------------------------------- inputs


def _cases(rng, dtype):
    """(x, labels, p, t) batches of several widths: random rows (some with -inf entries),
    and rows without a distribution (all -inf, a NaN, a +inf). n = 700 spans two blocks
    of the blocked log-sum-exp."""
    cases = []
    for n in (1, 2, 7, 64, 700):
        x = random_logits(rng, (8, n), dtype, p_neginf=0.15)
        x[1] = random_logits(rng, (n,), dtype, scale=30.0, offset=-500.0)
        x[2] = -np.inf
        x[3, n // 2] = np.nan
        x[4, n // 3] = np.inf
        x[5, :] = x[5, 0]  # uniform
        finite = np.isfinite(x)
        # labels on finite logits where the row has one, on a -inf logit for row 6
        labels = np.array([rng.choice(np.flatnonzero(r)) if r.any() else 0 for r in finite])
        if (~finite[6]).any():
            labels[6] = np.flatnonzero(~finite[6])[0]
        # probabilities: no mass on -inf logits, except in row 6
        p = random_probs(rng, (8, n), p_zero=0.2, zero_where=~finite)
        p[6] = random_probs(rng, (n,))
        t = random_logits(rng, (8, n), dtype, p_neginf=0.1)
        t[7] = x[7]  # KL exactly 0
        cases.append((x, labels, p.astype(dtype), t))
    return cases


def _api_results(mod, x, labels, p, t):
    """The Python API's values for the kernels (one per row, or the log-softmax rows)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "lse": mod.logsumexp(x),
            "ce_label": mod.cross_entropy(x, labels, reduction="none"),
            "ce_probs": mod.cross_entropy(x, p, target_type="probs", reduction="none",
                                          validate=False),
            "kl_logits": mod.kl_divergence(x, t, target_type="logits", reduction="none"),
            "entropy": mod.entropy(x),
            "log_softmax": mod.log_softmax(x),
            "softmax": mod.softmax(x),
        }


def _consumer_results(c, x, labels, p, t):
    return {
        "lse": c.rowwise("lse", x),
        "ce_label": c.ce_label(x, labels),
        "ce_probs": c.rowwise("ce_probs", x, p),
        "kl_logits": c.kl_logits(t, x),
        "entropy": c.rowwise("entropy", x),
        "log_softmax": c.row_writer("log_softmax", x)[1],
        "softmax": c.row_writer("softmax", x)[1],
    }


def _tolerances(name, x):
    """(rtol, atol) between two correct implementations: a few ulp of the dtype, scaled
    by the size of the terms (|x| + log n), as in test_vs_reference."""
    finite = np.abs(x[np.isfinite(x)])
    scale = (float(finite.max()) if finite.size else 0.0) + math.log(max(x.shape[1], 1)) + 1
    eps = 16 * EPS32 if x.dtype == np.float32 else 1e-12
    if name == "softmax":  # exp(x - lse): relative error about eps·|x - lse|
        return eps * scale, 1e-37 if x.dtype == np.float32 else 1e-300
    return eps, eps * scale


# ---------------------------------------------------------------------------- tests


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_consumers_match_the_reference(consumer, rng, dtype):
    """Every kernel, through a C / C++ / Cython consumer, against the pure-Python
    reference (which implements SPEC §4 independently of the C code)."""
    for x, labels, p, t in _cases(rng, dtype):
        got = _consumer_results(consumer, x, labels, p, t)
        ref = _api_results(divcore.reference, x, labels, p, t)
        for name, value in got.items():
            rtol, atol = _tolerances(name, x)
            assert_allclose_nan(value, ref[name], rtol, atol,
                                f"{name} {np.dtype(dtype).name} n={x.shape[1]}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_without_a_distribution(consumer, dtype):
    """The documented values (kernels.h, SPEC §4): an empty or all -inf row has
    logsumexp -inf and no distribution: nan losses and entropy, an all-nan log_softmax
    row and a return value of 0."""
    for n in (0, 3, 600):
        x = np.full((2, n), -np.inf, dtype=dtype)
        assert np.all(consumer.rowwise("lse", x) == -np.inf)
        assert np.all(np.isnan(consumer.rowwise("entropy", x)))
        assert np.all(np.isnan(consumer.rowwise("ce_probs", x, np.full_like(x, 1 / max(n, 1)))))
        assert np.all(np.isnan(consumer.kl_logits(x, x)))
        assert np.all(np.isnan(consumer.kl_logits(np.zeros_like(x), x)))
        assert np.all(np.isnan(consumer.kl_logits(x, np.zeros_like(x))))
        for name in ("log_softmax", "softmax"):
            ok, out = consumer.row_writer(name, x)
            assert ok == 0
            assert np.all(np.isnan(out))
        if n > 0:
            assert np.all(np.isnan(consumer.ce_label(x, np.zeros(2, dtype=np.int64))))


def test_ce_label_of_an_empty_row_reads_nothing(c_consumer):
    """An empty row has no distribution: nan, whatever the label (the kernel returns
    before it reads x[label]; here x is a null pointer)."""
    lib = c_consumer.lib
    out = np.empty(1)
    labels = np.zeros(1, dtype=np.int64)
    lib.ce_label_f64(None, labels.ctypes.data_as(ctypes.c_void_p), 1, 0,
                     out.ctypes.data_as(ctypes.c_void_p))
    assert np.isnan(out[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_softmax_in_place(consumer, rng, dtype):
    """out == x is allowed (documented): the same values as into a separate buffer."""
    x = random_logits(rng, (4, 1500), dtype, p_neginf=0.1)
    for name in ("log_softmax", "softmax"):
        _, expected = consumer.row_writer(name, x)
        inplace = x.copy()
        ok, _ = consumer.row_writer(name, inplace, out=inplace)
        assert ok == 4
        np.testing.assert_array_equal(inplace, expected)


def test_tiny_loss_keeps_its_relative_precision(consumer):
    """SPEC §4: a confident correct prediction's loss log1p(e^-50) ~ 1.9e-22, not 0."""
    x = np.array([[0.0, -50.0]])
    loss = consumer.ce_label(x, np.array([0]))[0]
    assert loss == pytest.approx(math.log1p(math.exp(-50.0)), rel=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kl_of_a_row_with_itself_is_zero(consumer, rng, dtype):
    """SPEC §4: KL(p || p) is 0, exactly (and never negative)."""
    x = random_logits(rng, (6, 900), dtype, scale=20.0, p_neginf=0.2)
    assert np.all(consumer.kl_logits(x, x) == 0.0)


def test_header_version_is_the_package_version(c_consumer):
    version = c_consumer.lib.header_version().decode()
    assert version == divcore.__version__
    major, minor, patch = (int(v) for v in version.split("."))
    assert c_consumer.lib.header_version_number() == 10000 * major + 100 * minor + patch


def test_cython_example_reports_the_header_version(cython_example):
    assert cython_example.divcore_version() == divcore.__version__


@pytest.mark.parametrize("compiler", [c[0] for c in COMPILERS if c[1] == "c++"])
def test_cplusplus_consumer_with_std_vector(c_consumers, compiler, rng):
    consumer = c_consumers(compiler)
    x = random_logits(rng, (37,), np.float64)
    got = consumer.lib.lse_copy_f64(x.ctypes.data_as(ctypes.c_void_p), x.size)
    assert got == consumer.rowwise("lse", x[None, :])[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cython_example_dispatched(cython_example, rng, dtype):
    """The example's run-time dispatched logsumexp (divcore/dispatch.pxd)."""
    assert cython_example.simd_level() in ("baseline", "avx2", "avx512")
    for x, _, _, _ in _cases(rng, dtype):
        out = np.empty(x.shape[0])
        cython_example.logsumexp_dispatched(np.ascontiguousarray(x), out)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = divcore.reference.logsumexp(x)
        assert_allclose_nan(out, ref, *_tolerances("lse", x))


def test_cython_example_checks_labels(cython_example):
    x = np.zeros((2, 3))
    with pytest.raises(IndexError, match="row 1: label 3"):
        cython_example.cross_entropy_labels(x, np.array([0, 3]), np.empty(2))


def test_cython_example_runs_without_divcore(cython_example):
    """Header-only: the built extension neither imports nor needs divcore. Run it in an
    interpreter without site-packages (-S), where divcore cannot be imported."""
    script = (
        "import array, math\n"
        "import row_scores\n"
        "try:\n"
        "    import divcore\n"
        "    print('divcore importable')\n"
        "except ImportError:\n"
        "    pass\n"
        "x = array.array('d', [1.0, 2.0, 3.0])\n"
        "out = array.array('d', [0.0])\n"
        "row_scores.logsumexp(memoryview(x).cast('B').cast('d', [1, 3]), out)\n"
        "print(repr(out[0]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = _run([sys.executable, "-S", "-c", script], cwd=cython_example.build_folder, env=env)
    assert "divcore importable" not in proc.stdout
    expected = 3.0 + math.log1p(math.exp(-1.0) + math.exp(-2.0))
    assert float(proc.stdout.strip()) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("compiler,lang,std", COMPILERS, ids=[c[0] for c in COMPILERS])
def test_dispatched_kernels(compiler, lang, std, tmp_path, rng):
    """dispatch.h compiles warning-free too, and its dcd_dc_* kernels (at the CPU's level)
    agree with the reference like the portable ones."""
    path = _compile(compiler, lang, std, DISPATCH_CONSUMER, str(tmp_path), "dispatched")
    lib = _row_library(path, ("lse", "entropy", "ce_label", "log_softmax"), np.longlong)
    lib.select_level.restype = ctypes.c_int
    lib.level_name.restype = ctypes.c_char_p
    level = lib.level_name(lib.select_level()).decode()
    assert level in ("baseline", "avx2", "avx512")
    rows = CRows(lib)
    for dtype in (np.float32, np.float64):
        for x, labels, p, t in _cases(rng, dtype)[::2]:
            ref = _api_results(divcore.reference, x, labels, p, t)
            got = {"lse": rows.rowwise("lse", x), "entropy": rows.rowwise("entropy", x),
                   "ce_label": rows.ce_label(x, labels),
                   "log_softmax": rows.row_writer("log_softmax", x)[1]}
            for name, value in got.items():
                rtol, atol = _tolerances(name, x)
                assert_allclose_nan(value, ref[name], rtol, atol, f"{level} {name}")


ROW_KERNELS = ("lse", "ce_label", "ce_probs", "kl_logits", "entropy", "log_softmax", "softmax")
LEVELS = ["baseline", "avx2", "avx512"]

# Run in a subprocess per level (the level is chosen when divcore is imported, and when a
# consumer makes its first call, both from DIVCORE_SIMD): the Python API and every consumer
# on the same inputs, compared to the bit; prints "ok", "skip: ..." or the mismatches.
SAME_BITS_SCRIPT = r"""
import sys, numpy as np, divcore
sys.path.insert(0, sys.argv[1])
import test_c_api as t
level = sys.argv[2]
if divcore.backend() != "compiled" or divcore._core.simd_path() != level:
    print("skip: the compiled core does not run", level); sys.exit(0)
data = np.load(sys.argv[3])
consumers = {}
for spec in sys.argv[4:]:
    kind, path = spec.split("=", 1)
    if kind == "cython":
        sys.path.insert(0, path)
        import row_scores
        consumers[kind] = t.CythonRows(row_scores)
    else:
        consumers[kind] = t.CRows(t._row_library(path, t.ROW_KERNELS, np.int64))
bad = []
for key in data.files:
    if not key.endswith("_x"):
        continue
    stem = key[:-2]
    case = [data[stem + "_" + k] for k in "xlpt"]
    api = t._api_results(divcore, *case)
    for kind, c in consumers.items():
        if kind == "portable" and level != "baseline":
            continue
        for name, value in t._consumer_results(c, *case).items():
            expected = np.asarray(api[name])
            if not np.array_equal(np.asarray(value).astype(expected.dtype), expected,
                                  equal_nan=True):
                bad.append(f"{kind} {name} {stem}")
for kind, c in consumers.items():
    if kind not in ("cython", "portable"):
        bad += [f"{kind} {m}" for m in t._batch_mismatches(t.CBatch(c.lib),
                                                           np.random.default_rng(7))]
print("bad: " + "; ".join(bad[:30]) if bad else "ok")
"""


@pytest.fixture(scope="module")
def portable_consumer(tmp_path_factory):
    """CONSUMER built with -DDIVCORE_PORTABLE (gcc): the portable kernels only."""
    folder = str(tmp_path_factory.mktemp("c_api_portable"))
    return _compile("gcc", "c", "c99", CONSUMER, folder, "portable", extra=["-DDIVCORE_PORTABLE"])


@pytest.mark.parametrize("level", LEVELS)
def test_same_bits_as_the_python_api(c_consumers, cython_example, portable_consumer, rng,
                                     tmp_path, level):
    """One implementation, not a copy: at each instruction-set level the documented dc_*
    names of every consumer (C, C++, Cython) give the Python API's bits (the API rounds
    float32 results to float32 once), row kernels and batch kernels alike; a consumer
    built with DIVCORE_PORTABLE gives the API's bits at the baseline level."""
    cases = {f"{np.dtype(dtype).name}_{k}": case
             for dtype in (np.float32, np.float64)
             for k, case in enumerate(_cases(rng, dtype))}
    inputs = str(tmp_path / "inputs.npz")
    np.savez(inputs, **{f"{stem}_{key}": value for stem, case in cases.items()
                        for key, value in zip("xlpt", case)})
    specs = [f"cython={cython_example.build_folder}", f"portable={portable_consumer}"]
    specs += [f"{c}={c_consumers(c).lib._name}" for c in C_KINDS if shutil.which(c)]
    env = dict(os.environ, PYTHONPATH=DIVCORE_PARENT)
    env.pop("DIVCORE_BACKEND", None)
    env.pop("DIVCORE_SIMD", None)
    if level != "avx512":
        env["DIVCORE_SIMD"] = level
    proc = _run([sys.executable, "-c", SAME_BITS_SCRIPT, HERE, level, inputs, *specs],
                env=env, cwd=HERE)
    out = proc.stdout.strip().splitlines()[-1]
    if out.startswith("skip"):
        pytest.skip(out)
    assert out == "ok", out


# ---------------------------------------------------------------------- batch kernels


class CBatch:
    """The exported batch kernels of a consumer library (CONSUMER), on numpy arrays."""

    def __init__(self, lib):
        self.lib = lib
        vp, sz, i64 = ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int64
        for sfx in ("f32", "f64"):
            for name, args in (
                    ("batch_lse", [vp, sz, sz, sz, sz, vp, sz, sz, vp]),
                    ("batch_ce_labels", [vp, sz, sz, sz, sz, vp, sz, vp, i64, vp, sz, sz, vp, vp]),
                    ("batch_ce_probs", [vp, sz, sz, sz, sz, vp, sz, sz, ctypes.c_int, vp, vp,
                                        sz, sz, vp, vp]),
                    ("batch_kl_logits", [vp, sz, sz, sz, sz, vp, sz, sz, vp, sz, sz, vp, vp])):
                f = getattr(lib, f"{name}_{sfx}")
                f.argtypes, f.restype = args, sz

    @staticmethod
    def _m(a):
        """pointer, row stride, column stride (bytes) of a 2-D array, or of None."""
        if a is None:
            return [None, 0, 0]
        return [a.ctypes.data, a.strides[0], a.strides[1]]

    def _fn(self, name, x):
        return getattr(self.lib, f"{name}_{'f32' if x.dtype == np.float32 else 'f64'}")

    def lse(self, x, mask):
        out = np.empty(x.shape[0])
        status = self._fn("batch_lse", x)(x.ctypes.data, x.shape[0], x.shape[1],
                                          *self._m(x)[1:], *self._m(mask), out.ctypes.data)
        return status, out

    def ce_labels(self, x, labels, weight, mask, ignore_index=-100):
        out, red = np.empty(x.shape[0]), np.empty(3)
        status = self._fn("batch_ce_labels", x)(
            x.ctypes.data, x.shape[0], x.shape[1], *self._m(x)[1:], labels.ctypes.data,
            labels.strides[0] // labels.itemsize,
            None if weight is None else weight.ctypes.data, ignore_index, *self._m(mask),
            out.ctypes.data, red.ctypes.data)
        return status, out, red

    def ce_probs(self, x, p, is_log, weight, mask):
        out, red = np.empty(x.shape[0]), np.empty(3)
        status = self._fn("batch_ce_probs", x)(
            x.ctypes.data, x.shape[0], x.shape[1], *self._m(x)[1:], *self._m(p), int(is_log),
            None if weight is None else weight.ctypes.data, *self._m(mask), out.ctypes.data,
            red.ctypes.data)
        return status, out, red

    def kl_logits(self, x, t, mask):
        out, red = np.empty(x.shape[0]), np.empty(3)
        status = self._fn("batch_kl_logits", x)(
            x.ctypes.data, x.shape[0], x.shape[1], *self._m(x)[1:], *self._m(t), *self._m(mask),
            out.ctypes.data, red.ctypes.data)
        return status, out, red


def _layout(a, kind):
    """a as a C-contiguous, column-strided or Fortran-ordered array (same values)."""
    if kind == "strided":
        wide = np.zeros((a.shape[0], 2 * a.shape[1]), dtype=a.dtype)
        wide[:, ::2] = a
        return wide[:, ::2]
    if kind == "fortran":
        return np.asfortranarray(a)
    return np.ascontiguousarray(a)


def _batch_cases(rng):
    """(x, labels, p, t, mask, weight) batches: short rows (lanes), long rows (blocks),
    more than one leaf of the pairwise sum (rows > 128), masks, strides, class weights,
    ignored rows."""
    shapes = [(9, 1), (200, 3), (300, 10), (1000, 10), (130, 64), (50, 65), (20, 700)]
    for k, (rows, n) in enumerate(shapes):
        for dtype in (np.float32, np.float64):
            layout = ("c", "strided", "fortran")[k % 3]
            x = random_logits(rng, (rows, n), dtype, p_neginf=0.05)
            x[rows // 2] = np.nan if rows > 2 else x[rows // 2]
            mask = None
            if k % 2:
                mask = rng.random((rows, n)) < 0.85
                mask[:, 0] = True
            labels = rng.integers(0, n, rows)
            labels[rng.random(rows) < 0.1] = -100
            p = random_probs(rng, (rows, n), p_zero=0.2)
            if mask is not None:
                p[~mask] = 0.0
            t = random_logits(rng, (rows, n), dtype, p_neginf=0.05)
            weight = (rng.random(n) + 0.5).astype(dtype) if k % 3 == 1 else None
            yield (_layout(x, layout), labels, _layout(p.astype(dtype), layout),
                   _layout(t, layout), None if mask is None else _layout(mask, layout), weight)


def _same(got, expected):
    expected = np.asarray(expected)
    return np.array_equal(np.asarray(got).astype(expected.dtype), expected, equal_nan=True)


def _batch_mismatches(batch, rng):
    """The batch kernels against the Python API's batch calls: per-row values, sums and
    means, to the bit. Returns what differs (empty when all agree)."""
    bad = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for x, labels, p, t, mask, weight in _batch_cases(rng):
            tag = f"{x.dtype.name} {x.shape} mask={mask is not None} w={weight is not None}"
            mask8 = None if mask is None else mask.view(np.uint8)
            status, out = batch.lse(x, mask8)
            if status != 0 or not _same(out, divcore.logsumexp(x, where=mask)):
                bad.append(f"logsumexp {tag}")
            status, out, red = batch.ce_labels(x, labels, weight, mask8)
            kw = dict(weight=weight, where=mask)
            if status != 0 or not (
                    _same(out, divcore.cross_entropy(x, labels, reduction="none", **kw))
                    and _same(red[0], divcore.cross_entropy(x, labels, reduction="sum", **kw))
                    and _same(red[2], divcore.cross_entropy(x, labels, reduction="mean", **kw))):
                bad.append(f"ce_labels {tag}")
            for is_log in (False, True):
                target = np.log(p) if is_log else p
                kw = dict(target_type="log_probs" if is_log else "probs", weight=weight,
                          where=mask, validate=False)
                status, out, red = batch.ce_probs(x, target, is_log, weight, mask8)
                if status != 0 or not (
                        _same(out, divcore.cross_entropy(x, target, reduction="none", **kw))
                        and _same(red[0], divcore.cross_entropy(x, target, reduction="sum", **kw))
                        and _same(red[2], divcore.cross_entropy(x, target, reduction="mean",
                                                                **kw))):
                    bad.append(f"ce_probs is_log={is_log} {tag}")
            kw = dict(target_type="logits", where=mask)
            status, out, red = batch.kl_logits(x, t, mask8)
            if status != 0 or not (
                    _same(out, divcore.kl_divergence(x, t, reduction="none", **kw))
                    and _same(red[0], divcore.kl_divergence(x, t, reduction="sum", **kw))
                    and _same(red[2], divcore.kl_divergence(x, t, reduction="mean", **kw))):
                bad.append(f"kl_logits {tag}")
    return bad


@pytest.mark.skipif(divcore.backend() != "compiled", reason="needs the compiled core")
@pytest.mark.parametrize("compiler", ["gcc", "g++"])
def test_batch_kernels_match_the_python_api(c_consumers, compiler, rng):
    """Per-row values and reductions of the batch kernels are the Python API's, to the bit,
    at the level this process runs (the consumer chooses the same one)."""
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed")
    assert _batch_mismatches(CBatch(c_consumers(compiler).lib), rng) == []


def test_batch_reductions_of_ignored_and_empty_batches(c_consumer):
    """The mean over no row (or only ignored rows) is nan, as in the Python API; the sum
    is 0; ignored rows give 0 and weigh 0."""
    batch = CBatch(c_consumer.lib)
    x = np.zeros((3, 4))
    status, out, red = batch.ce_labels(x, np.full(3, -100), None, None)
    assert status == 0 and np.all(out == 0.0) and red[0] == 0.0 and red[1] == 0.0
    assert np.isnan(red[2])
    status, out, red = batch.ce_labels(x[:0], np.zeros(0, dtype=np.int64), None, None)
    assert status == 0 and red[0] == 0.0 and np.isnan(red[2])
    status, out, red = batch.ce_labels(x, np.array([1, -100, 2]), None, None)
    assert red[1] == 2.0 and red[2] == pytest.approx(math.log(4.0), rel=1e-15)


def test_batch_labels_out_of_range(c_consumer):
    """A label outside [0, n) that is not ignore_index: row + 1 is returned and nothing is
    written (memory safety is not optional)."""
    batch = CBatch(c_consumer.lib)
    x = np.zeros((4, 3))
    for labels, row in (([0, 1, 3, 0], 2), ([0, -1, 0, 0], 1), ([0, 0, 0, 7], 3)):
        status, out, red = batch.ce_labels(x, np.array(labels, dtype=np.int64), None, None,
                                           ignore_index=-100)
        assert status == row + 1
    status, _, _ = batch.ce_labels(x, np.array([0, -1, 2, 1]), None, None, ignore_index=-1)
    assert status == 0


def test_level_is_chosen_at_the_first_call(tmp_path, rng):
    """A consumer that never calls dc_simd_select(): its level is unset (-1) until its
    first call, which chooses the level divcore's own core runs (same CPU, same
    DIVCORE_SIMD)."""
    path = _compile("gcc", "c", "c99", CONSUMER, str(tmp_path), "lazy")
    lib = _row_library(path, ROW_KERNELS, np.int64)
    lib.chosen_level.restype = ctypes.c_int
    assert lib.chosen_level() == -1
    x = random_logits(rng, (3, 20), np.float64)
    CRows(lib).rowwise("lse", x)
    level = ("baseline", "avx2", "avx512")[lib.chosen_level()]
    if divcore.backend() == "compiled":
        assert level == divcore._core.simd_path()


@pytest.mark.parametrize("flag", ["-ffast-math", "-ffinite-math-only"])
@pytest.mark.parametrize("compiler,lang,std", COMPILERS, ids=[c[0] for c in COMPILERS])
def test_fast_math_consumer_does_not_compile(compiler, lang, std, flag, tmp_path):
    """Under -ffast-math the kernels would return wrong numbers (issue 17: CE 0 for a
    confident prediction, finite for a NaN row): the headers stop the build, saying why."""
    src = tmp_path / ("fast" + (".c" if lang == "c" else ".cpp"))
    src.write_text('#include "divcore/kernels.h"\nint main(void) { return 0; }\n')
    proc = subprocess.run([_compiler_or_skip(compiler), f"-std={std}", "-O2", flag, "-I", INCLUDE,
                           "-c", str(src), "-o", str(tmp_path / "fast.o")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "divcore: compiled with" in proc.stderr
    assert "NaN" in proc.stderr


def test_bare_cythonize_consumer(tmp_path, rng):
    """A third-party Cython extension as extension authors write it: `from divcore.kernels
    cimport ...` and a bare cythonize() (no include_path). Cython finds the .pxd files in
    the divcore package on sys.path; the C compiler gets a folder holding only the headers
    (no .pxd), so nothing else could have resolved the cimport. Results: the Python API's."""
    pytest.importorskip("Cython")
    headers = tmp_path / "headers" / "divcore"
    headers.mkdir(parents=True)
    for name in os.listdir(os.path.join(INCLUDE, "divcore")):
        if name.endswith(".h"):
            shutil.copy(os.path.join(INCLUDE, "divcore", name), headers)
    (tmp_path / "bare_consumer.pyx").write_text(
        "# cython: language_level=3\n"
        "from libc.stdint cimport int64_t\n"
        "from divcore.kernels cimport dc_ce_label_f32, dc_batch_ce_labels_f32, dc_reduced\n"
        "def ce_rows(const float[:, ::1] x, const int64_t[::1] y, double[::1] out):\n"
        "    cdef Py_ssize_t i\n"
        "    with nogil:\n"
        "        for i in range(x.shape[0]):\n"
        "            out[i] = dc_ce_label_f32(&x[i, 0], x.shape[1], y[i])\n"
        "def ce_mean(const float[:, :] x, const int64_t[::1] y):\n"
        "    cdef dc_reduced red\n"
        "    cdef Py_ssize_t status\n"
        "    with nogil:\n"
        "        status = dc_batch_ce_labels_f32(&x[0, 0], x.shape[0], x.shape[1],\n"
        "            x.strides[0], x.strides[1], &y[0], 1, NULL, -100, NULL, 0, 0, NULL, &red)\n"
        "    return status, red.mean\n")
    (tmp_path / "setup.py").write_text(
        "from Cython.Build import cythonize\n"
        "from setuptools import Extension, setup\n"
        "setup(name='bare-consumer', ext_modules=cythonize([Extension(\n"
        f"    'bare_consumer', ['bare_consumer.pyx'], include_dirs=[{str(headers.parent)!r}])]))\n")
    env = dict(os.environ, PYTHONPATH=DIVCORE_PARENT, CFLAGS="-O3 -g0")
    _run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=str(tmp_path), env=env)
    sys.path.insert(0, str(tmp_path))
    try:
        import bare_consumer
    finally:
        sys.path.remove(str(tmp_path))
    x = random_logits(rng, (300, 10), np.float32, p_neginf=0.05)
    y = rng.integers(0, 10, 300)
    out = np.empty(300)
    bare_consumer.ce_rows(x, y, out)
    status, mean = bare_consumer.ce_mean(x[:, :7], y % 7)
    assert status == 0
    if divcore.backend() == "compiled":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            np.testing.assert_array_equal(out.astype(np.float32),
                                          divcore.cross_entropy(x, y, reduction="none"))
            assert np.float32(mean) == divcore.cross_entropy(x[:, :7], y % 7)


def test_cython_example_batch_and_prange(cython_example, rng):
    """The example's batch call (any strides) and its prange loop (OpenMP threads): the
    Python API's values."""
    x = random_logits(rng, (500, 12), np.float64, p_neginf=0.05)[:, ::2]
    y = rng.integers(0, 6, 500)
    out = np.empty(500)
    mean = cython_example.cross_entropy_batch(x, y, out)
    assert np.array_equal(out, divcore.cross_entropy(x, y, reduction="none"))
    assert mean == divcore.cross_entropy(x, y)
    with pytest.raises(IndexError, match="row 3: label 6"):
        cython_example.cross_entropy_batch(x, np.array([0, 1, 2, 6] * 125), out)
    xc = np.ascontiguousarray(x)
    serial, parallel = np.empty(500), np.empty(500)
    cython_example.logsumexp(xc, serial)
    cython_example.logsumexp_parallel(xc, parallel, num_threads=2)
    assert np.array_equal(serial, parallel)
    assert np.array_equal(serial, divcore.logsumexp(xc))


def test_headers_need_no_python():
    """The headers include nothing from Python (the consumers above compile with only
    get_include() on the include path; this names the rule)."""
    folder = os.path.join(INCLUDE, "divcore")
    for name in os.listdir(folder):
        if name.endswith(".h"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                included = re.findall(r"^\s*#\s*include\s*[<\"]([^>\"]+)[>\"]", f.read(), re.MULTILINE)
            assert not [h for h in included if "Python" in h or h.startswith("numpy/")], name


@pytest.mark.parametrize("compiler,lang,std", COMPILERS, ids=[c[0] for c in COMPILERS])
def test_c_example(compiler, lang, std, tmp_path):
    """examples/c_consumer builds warning-free as C and C++ and runs."""
    source = os.path.join(EXAMPLES, "c_consumer", "score_rows.c")
    if not os.path.exists(source):
        pytest.skip("examples/c_consumer is not in this tree")
    with open(source, encoding="utf-8") as f:
        text = f.read()
    exe = _compile(compiler, lang, std, text, str(tmp_path), "score_rows", shared=False)
    proc = _run([exe])
    assert f"divcore headers {divcore.__version__}" in proc.stdout
