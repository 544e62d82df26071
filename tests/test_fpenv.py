"""The process floating-point environment is untouched by importing and using divcore
(SPEC §4, issue 6): no flush-to-zero (FTZ), no denormals-are-zero (DAZ), no change of
rounding mode or exception masks - on the calling thread and in the OpenMP threads.

A library built with -ffast-math (or linked with crtfastmath.o) sets FTZ/DAZ in MXCSR at
load time, for the whole process: every later subnormal becomes 0, in numpy too. Two
checks, each in a fresh interpreter (so that "before import" means something):
  - MXCSR itself, read by 9 bytes of x86-64 machine code (stmxcsr) called through ctypes;
  - behaviour: subnormals survive numpy arithmetic after the import and calls, and
    divcore's own results (computed on OpenMP threads too) keep their subnormals.
"""
import os
import platform
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# stmxcsr [rsp-4]; mov eax, [rsp-4]; ret  (the red zone below rsp is ours to use)
READ_MXCSR = textwrap.dedent("""
    import ctypes, mmap
    _code = bytes([0x0F, 0xAE, 0x5C, 0x24, 0xFC, 0x8B, 0x44, 0x24, 0xFC, 0xC3])
    _buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    _buf.write(_code)
    _addr = ctypes.addressof(ctypes.c_char.from_buffer(_buf))
    read_mxcsr = ctypes.CFUNCTYPE(ctypes.c_uint32)(_addr)
""")

EXERCISE = textwrap.dedent("""
    import numpy as np, divcore
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        x = (rng.standard_normal((300, 700)) * 3).astype(dtype)   # threaded sizes
        y = rng.integers(0, 700, 300)
        p = divcore.softmax(x)
        divcore.set_num_threads(2)
        for f in (lambda: divcore.logsumexp(x), lambda: divcore.cross_entropy(x, y),
                  lambda: divcore.kl_divergence(x, p), lambda: divcore.entropy(x),
                  lambda: divcore.js_divergence(x, p), lambda: divcore.decompose(x, y),
                  lambda: divcore.cross_entropy_and_grad(x, y),
                  lambda: divcore.binary_cross_entropy(x, p), lambda: divcore.cross_entropy(x[0], 3)):
            f()
""")


def _run(code):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64") or os.name != "posix",
                    reason="reads the x86-64 MXCSR register")
def test_mxcsr_is_unchanged_by_import_and_use():
    code = READ_MXCSR + textwrap.dedent("""
        before = read_mxcsr()
        import divcore
        after_import = read_mxcsr()
    """) + EXERCISE + "print(before, after_import, read_mxcsr())\n"
    try:
        out = _run(code)
    except AssertionError as exc:
        if "PermissionError" in str(exc) or "mmap" in str(exc):
            pytest.skip("no executable memory for the MXCSR reader here")
        raise
    before, after_import, after_use = map(int, out.split())
    ftz, daz = 1 << 15, 1 << 6
    assert not before & (ftz | daz), f"FTZ/DAZ already set before import: {before:#x}"
    assert after_import == before, f"import changed MXCSR {before:#x} -> {after_import:#x}"
    # ignore the sticky exception flags (bits 0-5), which any arithmetic may raise
    assert after_use & ~0x3F == before & ~0x3F, f"MXCSR {before:#x} -> {after_use:#x}"


def test_subnormals_survive_after_import_and_use():
    code = EXERCISE + textwrap.dedent("""
        tiny32 = np.float32(1e-45)                      # the smallest float32 subnormal
        assert tiny32 * np.float32(1) != 0, "DAZ: subnormal input read as 0"
        assert np.float32(1e-38) * np.float32(0.01) != 0, "FTZ: subnormal result flushed"
        assert np.float64(5e-324) * 1.0 != 0 and 1e-308 * 1e-3 != 0
        # divcore's own subnormal results, from a threaded call (OpenMP threads have their
        # own MXCSR): softmax of [0, -95, -inf, ...] in float32 is e^-95 = 5.5e-42,
        # subnormal
        x = np.full((400, 200), -np.inf, np.float32)
        x[:, 0] = 0.0
        x[:, 1] = -95.0
        sm = divcore.softmax(x)
        assert np.all(sm[:, 1] > 0), "subnormal probabilities flushed to 0"
        assert np.all(sm[:, 1] < np.finfo(np.float32).tiny)
        print("ok")
    """)
    assert _run(code).strip() == "ok"


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64") or os.name != "posix",
                    reason="reads the x86-64 MXCSR register")
def test_the_mxcsr_check_sees_a_fast_math_library(tmp_path):
    """The check above can fail: loading a library linked with -ffast-math (GCC adds
    crtfastmath.o, which sets FTZ/DAZ at load time) shows up in MXCSR."""
    import shutil
    cc = next((c for c in ("cc", "gcc") if shutil.which(c)), None)
    if cc is None:
        pytest.skip("no C compiler")
    src = tmp_path / "fm.c"
    src.write_text("int divcore_fm_probe(void) { return 0; }\n")
    lib = tmp_path / "libfm.so"
    proc = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-ffast-math", str(src), "-o", str(lib)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(proc.stderr[-200:])
    out = _run(READ_MXCSR + f"before = read_mxcsr()\nctypes.CDLL({str(lib)!r})\n"
               "print(before, read_mxcsr())\n")
    before, after = map(int, out.split())
    if after == before:
        pytest.skip(f"{cc} does not link crtfastmath.o into shared libraries")
    assert after & (1 << 15), f"{after:#x}"  # FTZ
