"""The C-level API (SPEC §6, docs/c_api.md): divcore/kernels.h and divcore/kernels.pxd used
by other extensions, built from scratch in a temporary folder against divcore.get_include().

- plain C and C++ consumers (gcc, clang, g++, clang++ where installed), compiled with
  -Wall -Wextra -Werror and no Python.h, loaded with ctypes;
- the Cython example (examples/cython_extension), built with setuptools;
- the C example (examples/c_consumer), compiled as C and as C++ and run.

Their results are checked against the reference backend (the independent oracle), the
documented values for empty and all -inf rows (SPEC §4), and the Python API: equal to the
bit at DIVCORE_SIMD=baseline, where both run the same portable kernels.
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
STRICT = ["-Wall", "-Wextra", "-Werror"]

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
{ for (ptrdiff_t i = 0; i < rows; i++)                                                  \
      out[i] = dc_ce_label_##S(x + i * n, n, (ptrdiff_t)y[i]); }                        \
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
  return ok; }

ROW_LOOPS(float, f32)
ROW_LOOPS(double, f64)

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
{ for (ptrdiff_t i = 0; i < rows; i++)                                                  \
      out[i] = dcd_dc_ce_label_##S(x + i * n, n, (ptrdiff_t)y[i]); }                    \
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
    cmd = [_compiler_or_skip(compiler), f"-std={std}", "-O2", *STRICT, *extra,
           "-I", INCLUDE, src, "-o", out, "-lm"]
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
               # -O1: a third of -O3's build time; the results do not depend on it (no
               # fast-math, and the portable build has no FMA to contract into)
               CFLAGS="-O1 -g0")
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


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="elsewhere the portable build may fuse multiply-adds, by flags")
def test_same_bits_as_the_python_api(c_consumers, cython_example, rng, tmp_path):
    """One implementation, not a copy: at DIVCORE_SIMD=baseline the Python API runs the
    portable kernels the consumers compiled in, so their results are the API's to the bit
    (the API rounds float32 results to float32 once): on x86-64, SSE2 has no fused
    multiply-add for compilers or flags to differ on. The API runs in a subprocess,
    because the level is chosen when divcore is imported."""
    cases = {f"{np.dtype(dtype).name}_{k}": case
             for dtype in (np.float32, np.float64)
             for k, case in enumerate(_cases(rng, dtype))}
    inputs, outputs = str(tmp_path / "inputs.npz"), str(tmp_path / "outputs.npz")
    np.savez(inputs, **{f"{stem}_{key}": value for stem, case in cases.items()
                        for key, value in zip("xlpt", case)})
    script = (
        "import sys, numpy as np, divcore\n"
        "sys.path.insert(0, sys.argv[3])\n"
        "from test_c_api import _api_results\n"
        "if divcore.backend() != 'compiled' or divcore._core.simd_path() != 'baseline':\n"
        "    print('skip: backend', divcore.backend()); sys.exit(0)\n"
        "data = np.load(sys.argv[1])\n"
        "out = {}\n"
        "for key in data.files:\n"
        "    if key.endswith('_x'):\n"
        "        stem = key[:-2]\n"
        "        case = [data[stem + '_' + k] for k in 'xlpt']\n"
        "        for name, value in _api_results(divcore, *case).items():\n"
        "            out[stem + '_' + name] = value\n"
        "np.savez(sys.argv[2], **out)\n"
    )
    env = dict(os.environ, DIVCORE_SIMD="baseline", PYTHONPATH=DIVCORE_PARENT)
    env.pop("DIVCORE_BACKEND", None)
    proc = _run([sys.executable, "-c", script, inputs, outputs, HERE], env=env, cwd=HERE)
    if proc.stdout.startswith("skip"):
        pytest.skip(f"compiled core not live at the baseline level ({proc.stdout.strip()})")
    api = np.load(outputs)
    consumers = {"cython": CythonRows(cython_example)}
    consumers.update({c: c_consumers(c) for c in C_KINDS if shutil.which(c)})
    for kind, consumer in consumers.items():
        for stem, case in cases.items():
            for name, value in _consumer_results(consumer, *case).items():
                expected = api[f"{stem}_{name}"]
                np.testing.assert_array_equal(np.asarray(value).astype(expected.dtype),
                                              expected, err_msg=f"{kind}: {name} {stem}")


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
