"""The C kernels' own test (tests/c/kernels_selftest.c), compiled and run from the suite:
once as the build compiles them, once with AddressSanitizer + UndefinedBehaviorSanitizer.
Skipped where there is no C compiler (or no sanitizer runtime). tools/valgrind.sh runs the
same program under valgrind memcheck. DIVCORE_SLOW_TESTS=1 adds its --huge checks (one
row of 2**31 + 17 floats, 8 GiB of zero pages)."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "tests", "c", "kernels_selftest.c")
SUPPRESSIONS = os.path.join(ROOT, "tools", "ubsan.supp")
# the build's flags (setup.py): no -ffast-math, no -march=native
FLAGS = ["-std=c99", "-ffp-contract=fast", "-Wall", "-Wno-unused-function",
         "-I", os.path.join(ROOT, "src")]


if not os.path.isfile(SOURCE):  # e.g. a source distribution without tests/c
    pytest.skip("tests/c/kernels_selftest.c is not here", allow_module_level=True)


def _compiler():
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    pytest.skip("no C compiler")


def _build(tmp_path, extra, name):
    exe = str(tmp_path / name)
    proc = subprocess.run([_compiler(), "-O2", *FLAGS, *extra, SOURCE, "-o", exe, "-lm"],
                          capture_output=True, text=True, timeout=300, check=False)
    return exe, proc


def test_kernels_selftest(tmp_path):
    exe, proc = _build(tmp_path, [], "kernels_selftest")
    assert proc.returncode == 0, proc.stderr
    args = [exe, "--huge"] if os.environ.get("DIVCORE_SLOW_TESTS") else [exe]
    run = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 failure(s)" in run.stdout


def test_kernels_selftest_under_asan_and_ubsan(tmp_path):
    exe, proc = _build(tmp_path, ["-O1", "-g", "-fno-omit-frame-pointer",
                                  "-fsanitize=address,undefined"], "kernels_selftest_asan")
    if proc.returncode != 0:
        pytest.skip(f"the compiler cannot build with sanitizers here: {proc.stderr[-300:]}")
    env = dict(os.environ,
               ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS=f"print_stacktrace=1:suppressions={SUPPRESSIONS}")
    env.pop("LD_PRELOAD", None)
    run = subprocess.run([exe], capture_output=True, text=True, timeout=600, env=env,
                         check=False)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    assert "runtime error" not in report and "ERROR: AddressSanitizer" not in report, report
    assert "0 failure(s)" in run.stdout
