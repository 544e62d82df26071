"""The C API's row kernels for half-precision storage (issue 13: dc_*_f16, dc_*_bf16;
src/divcore/half_t.h, documented in kernels.h and docs/c_api.md).

- tests/c/half_kernels.c, compiled from scratch with divcore's strict warning set as C and
  as C++ (and with DIVCORE_PORTABLE, and under AddressSanitizer + UBSan): every kernel
  against the float kernel on the widened rows, bit for bit, at every instruction set the
  CPU has, for short, medium and long rows and edge values; the widening of all 65536
  values of each format against an independent conversion;
- the kernels allocate nothing and keep their stack within a few KiB (-fstack-usage);
- a Cython consumer cimports them from divcore.kernels (bare cythonize) and gets the
  Python API's float32 results for float16 / bfloat16 input, to the bit.
"""
import os
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

import divcore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "tests", "c", "half_kernels.c")
HEADERS = os.path.join(ROOT, "src", "divcore")
STRICT = ["-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Wconversion", "-Wdouble-promotion",
          "-Wfloat-equal", "-Wcast-qual", "-Werror"]
# divcore's build flags for the bits of the AVX levels (setup.py)
CONTRACT = ["-ffp-contract=fast"]
HALF_KERNELS = ["dc_logsumexp", "dc_ce_label", "dc_ce_probs", "dc_kl_logits",
                "dc_entropy_logits", "dc_log_softmax", "dc_softmax"]
TWO_ROWS = ("dc_ce_probs", "dc_kl_logits")
WRITERS = ("dc_log_softmax", "dc_softmax")

if not os.path.isfile(SOURCE):  # e.g. a source distribution without tests/c
    pytest.skip("tests/c/half_kernels.c is not here", allow_module_level=True)


def _compiler(name):
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def _build_and_run(tmp_path, compiler, lang, std, extra=(), env=None):
    """Compile tests/c/half_kernels.c (as C, or copied to a .cpp as C++) with the strict
    warnings as errors and only src/ on the include path; run it; return its output."""
    src = SOURCE
    if lang == "c++":
        src = str(tmp_path / "half_kernels.cpp")
        shutil.copy(SOURCE, src)
    exe = str(tmp_path / f"half_kernels_{compiler.replace('+', 'x')}")
    cmd = [_compiler(compiler), f"-std={std}", "-O2", *STRICT, *CONTRACT, *extra,
           "-I", os.path.join(ROOT, "src"), src, "-o", exe, "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    run = subprocess.run([exe], capture_output=True, text=True, timeout=600, env=env,
                         check=False)
    return run.returncode, run.stdout + run.stderr


# (compiler, language, standard). The C++ build proves the headers and the bits as C++;
# the test program itself is C, so C++'s -Wold-style-cast is left to the header-only
# consumers of tests/test_c_api.py, which include the same kernels.
COMPILERS = [("gcc", "c", "c99"), ("clang", "c", "c99"), ("g++", "c++", "c++11"),
             ("clang++", "c++", "c++17")]


@pytest.mark.parametrize("compiler,lang,std", COMPILERS, ids=[c[0] for c in COMPILERS])
def test_half_kernels_give_the_float_kernels_bits(tmp_path, compiler, lang, std):
    status, out = _build_and_run(tmp_path, compiler, lang, std)
    assert status == 0, out
    summary = out.strip().splitlines()[-1]
    assert re.search(r"half_kernels: \d+ checks at baseline.*, 0 failure\(s\)", summary), out


def test_half_kernels_portable_build(tmp_path):
    """With DIVCORE_PORTABLE only the portable build exists (and float16 is widened by
    the scalar conversion): the same bits as its float kernels."""
    status, out = _build_and_run(tmp_path, "gcc", "c", "c99", extra=["-DDIVCORE_PORTABLE"])
    assert status == 0, out
    assert re.search(r"checks at baseline, 0 failure\(s\)", out), out


def test_half_kernels_under_asan_and_ubsan(tmp_path):
    """The stack buffers and the chunked reads stay in bounds (the rows are exactly-sized
    heap buffers: an over-read is an AddressSanitizer error)."""
    exe = str(tmp_path / "half_kernels_asan")
    cmd = [_compiler("gcc"), "-std=c99", "-O1", "-g", "-fno-omit-frame-pointer",
           "-fsanitize=address,undefined", *CONTRACT, "-I", os.path.join(ROOT, "src"), SOURCE,
           "-o", exe, "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        pytest.skip(f"the compiler cannot build with sanitizers here: {proc.stderr[-300:]}")
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    env.pop("LD_PRELOAD", None)
    run = subprocess.run([exe], capture_output=True, text=True, timeout=900, env=env,
                         check=False)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-3000:]
    assert "runtime error" not in report and "AddressSanitizer" not in report, report[-3000:]
    assert "0 failure(s)" in report


def test_half_kernels_allocate_nothing_and_use_little_stack(tmp_path):
    """Row kernels never allocate: the half-precision files call no allocator, and each
    kernel's own frame (its widening buffers) stays within 5 KiB, a bounded size (GCC's
    -fstack-usage; the float kernels it calls are the documented ones)."""
    for name in ("half.h", "half_rows.h", "half_t.h", "for_each_half.h"):
        with open(os.path.join(HEADERS, name), encoding="utf-8") as f:
            text = f.read()
        assert not re.search(r"\b(malloc|calloc|realloc|alloca|free)\s*\(", text), name
    src = tmp_path / "frames.c"
    calls = "".join(f"    r += {name}_{fmt}(x, 3{', x' if name in TWO_ROWS else ''}"
                    f"{', 0' if name == 'dc_ce_label' else ''}"
                    f"{', out' if name in WRITERS else ''});\n"
                    for name in HALF_KERNELS for fmt in ("f16", "bf16"))
    src.write_text('#include "divcore/kernels.h"\n'
                   "int main(void)\n{\n"
                   "    uint16_t x[3] = {0, 1, 2};\n    float out[3];\n    double r = 0;\n"
                   + calls + "    return r > 0;\n}\n")
    proc = subprocess.run([_compiler("gcc"), "-std=c99", "-O2", *CONTRACT, "-fstack-usage",
                           "-I", os.path.join(ROOT, "src"), "-c", str(src), "-o",
                           str(tmp_path / "frames.o")],
                          capture_output=True, text=True, cwd=str(tmp_path), timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    frames = {}
    for line in (tmp_path / "frames.su").read_text().splitlines():
        where, size, kind = line.rsplit("\t", 2)
        frames[where.rsplit(":", 1)[-1]] = (int(size), kind)
    for name in HALF_KERNELS:
        for fmt in ("f16", "bf16"):
            for isa in ("base", "avx2", "avx512"):
                fn = f"{name}_{fmt}_{isa}"
                assert fn in frames, fn
                size, kind = frames[fn]
                # bounded: the AVX builds realign the frame to their vector width
                assert kind in ("static", "dynamic,bounded"), (fn, kind)
                assert size <= 5 * 1024, (fn, size)


BARE_PYX = r"""
# cython: language_level=3
from libc.stdint cimport uint16_t
from divcore.kernels cimport (
    dc_logsumexp_f16, dc_logsumexp_bf16, dc_ce_label_f16, dc_ce_label_bf16,
    dc_ce_probs_f16, dc_ce_probs_bf16, dc_kl_logits_f16, dc_kl_logits_bf16,
    dc_entropy_logits_f16, dc_entropy_logits_bf16, dc_log_softmax_f16, dc_log_softmax_bf16,
    dc_softmax_f16, dc_softmax_bf16)

def rows(const uint16_t[:, ::1] x, const uint16_t[:, ::1] t, const uint16_t[:, ::1] p,
         const long long[::1] y, bint bf16, double[:, ::1] out, float[:, ::1] lsm,
         float[:, ::1] sm):
    cdef Py_ssize_t i, n = x.shape[1]
    with nogil:
        for i in range(x.shape[0]):
            if bf16:
                out[i, 0] = dc_logsumexp_bf16(&x[i, 0], n)
                out[i, 1] = dc_ce_label_bf16(&x[i, 0], n, y[i])
                out[i, 2] = dc_ce_probs_bf16(&x[i, 0], &p[i, 0], n)
                out[i, 3] = dc_kl_logits_bf16(&t[i, 0], &x[i, 0], n)
                out[i, 4] = dc_entropy_logits_bf16(&x[i, 0], n)
                dc_log_softmax_bf16(&x[i, 0], n, &lsm[i, 0])
                dc_softmax_bf16(&x[i, 0], n, &sm[i, 0])
            else:
                out[i, 0] = dc_logsumexp_f16(&x[i, 0], n)
                out[i, 1] = dc_ce_label_f16(&x[i, 0], n, y[i])
                out[i, 2] = dc_ce_probs_f16(&x[i, 0], &p[i, 0], n)
                out[i, 3] = dc_kl_logits_f16(&t[i, 0], &x[i, 0], n)
                out[i, 4] = dc_entropy_logits_f16(&x[i, 0], n)
                dc_log_softmax_f16(&x[i, 0], n, &lsm[i, 0])
                dc_softmax_f16(&x[i, 0], n, &sm[i, 0])
"""


@pytest.fixture(scope="module")
def bare_half_consumer(tmp_path_factory):
    """A Cython extension that cimports the half kernels from divcore.kernels, built with
    a bare cythonize() and only the headers on the C include path."""
    pytest.importorskip("Cython")
    folder = tmp_path_factory.mktemp("c_half_cython")
    (folder / "half_consumer.pyx").write_text(BARE_PYX)
    (folder / "setup.py").write_text(
        "import divcore\n"
        "from Cython.Build import cythonize\n"
        "from setuptools import Extension, setup\n"
        "setup(name='half-consumer', ext_modules=cythonize([Extension(\n"
        "    'half_consumer', ['half_consumer.pyx'], include_dirs=[divcore.get_include()],\n"
        "    extra_compile_args=['-ffp-contract=fast'])]))\n")
    parent = os.path.dirname(os.path.dirname(os.path.abspath(divcore.__file__)))
    env = dict(os.environ, PYTHONPATH=parent, CFLAGS="-O3 -g0")
    proc = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                          cwd=str(folder), env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    if proc.returncode != 0:
        pytest.fail(f"building the Cython consumer failed:\n{proc.stdout}\n{proc.stderr}")
    sys.path.insert(0, str(folder))
    try:
        import half_consumer
    finally:
        sys.path.remove(str(folder))
    return half_consumer


def _half_dtypes():
    dtypes = [np.float16]
    try:
        import ml_dtypes
        dtypes.append(ml_dtypes.bfloat16)
    except ImportError:  # pragma: no cover - ml_dtypes is optional
        pass
    return dtypes


@pytest.mark.skipif(divcore.backend() != "compiled", reason="compares with the compiled core")
@pytest.mark.parametrize("dtype", _half_dtypes(), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n", [5, 64, 300, 3000])
def test_cython_consumer_gives_the_python_api_bits(bare_half_consumer, rng, dtype, n):
    """The Python API computes half input as float32 on the widened values and rounds
    each result to float32 once; the cimported half kernels give those bits."""
    rows = 6
    x = (rng.standard_normal((rows, n)) * 4).astype(dtype)
    x[1, n // 3] = -np.inf
    x[2] = -np.inf
    x[3, n - 1] = np.nan
    t = (rng.standard_normal((rows, n)) * 4).astype(dtype)
    p = rng.random((rows, n))
    p = (p / p.sum(axis=1, keepdims=True)).astype(dtype)
    y = rng.integers(0, n, rows).astype(np.longlong)
    out = np.empty((rows, 5))
    lsm = np.empty((rows, n), dtype=np.float32)
    sm = np.empty((rows, n), dtype=np.float32)
    bare_half_consumer.rows(x.view(np.uint16), t.view(np.uint16), p.view(np.uint16), y,
                            np.dtype(dtype).name == "bfloat16", out, lsm, sm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        api = [divcore.logsumexp(x),
               divcore.cross_entropy(x, y.astype(np.int64), reduction="none"),
               divcore.cross_entropy(x, p, target_type="probs", reduction="none",
                                     validate=False),
               divcore.kl_divergence(x, t, target_type="logits", reduction="none"),
               divcore.entropy(x)]
        for k, expected in enumerate(api):
            assert expected.dtype == np.float32
            np.testing.assert_array_equal(out[:, k].astype(np.float32), expected, err_msg=str(k))
        np.testing.assert_array_equal(lsm, divcore.log_softmax(x))
        np.testing.assert_array_equal(sm, divcore.softmax(x))
