#!/usr/bin/env bash
# Build divcore's compiled core with AddressSanitizer + UndefinedBehaviorSanitizer and run
# the test suite against that build.
#
#   tools/sanitize.sh                 the whole suite (minutes: everything runs ~2-3x slower)
#   tools/sanitize.sh tests/test_bad_input.py -k labels     any pytest arguments
#
# The build goes to a copy of the source tree ($DIVCORE_SANITIZE_DIR, default a fresh
# temporary folder), so the normal in-place build in the checkout is left alone.
#
# Why each setting:
#   -fsanitize=address,undefined   out-of-bounds reads/writes, use-after-free, and UB
#                                  (signed overflow, misaligned loads, bad shifts, ...)
#   -fno-omit-frame-pointer -g     readable stack traces
#   LD_PRELOAD=libasan.so          python itself is not built with ASan; the runtime must
#                                  be loaded before anything else
#   detect_leaks=0                 CPython keeps interned objects and arenas alive until
#                                  exit by design; leaks are checked by tests/test_leaks.py
#   allocator_may_return_null=1    a malloc that cannot be satisfied returns NULL, as it
#                                  does without ASan, so the MemoryError paths run
#                                  (ASan would abort the process instead)
#   PYTHONMALLOC=malloc            Python objects come from malloc, so ASan guards them too
#   DIVCORE_SIMD                   unset: the best instruction set of this CPU; run again
#                                  with DIVCORE_SIMD=baseline to check the portable kernels
#
# ASan errors abort the process; UBSan reports and goes on (so one run lists every kind of
# UB it meets). Each report goes to $work/sanitizer-report.<pid> too, and any report makes
# the script exit non-zero. tools/ubsan.supp holds the known, reported UB (see
# docs/RELIABILITY.md); DIVCORE_UBSAN_NO_SUPPRESS=1 shows it as well.
# GCC or clang on Linux (the sanitizer runtimes libasan / libubsan must be installed).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cc="${CC:-gcc}"
work="${DIVCORE_SANITIZE_DIR:-$(mktemp -d /tmp/divcore-asan.XXXXXX)}"

libasan="$("$cc" -print-file-name=libasan.so)"
libubsan="$("$cc" -print-file-name=libubsan.so)"
if [ ! -e "$libasan" ]; then
    echo "sanitize.sh: $cc has no libasan.so (install libasan / the compiler's sanitizer runtime)" >&2
    exit 2
fi

echo "sanitize.sh: building a sanitized copy in $work"
mkdir -p "$work"
# the sources and tests only: no previous build, no compiled module of the checkout
tar -C "$repo" --exclude=./.git --exclude=./build --exclude='*.so' --exclude=./divcore/_core.c \
    --exclude=.hypothesis --exclude=__pycache__ -cf - \
    setup.py pyproject.toml MANIFEST.in README.md divcore src tests tools | tar -C "$work" -xf -

flags="-fsanitize=address,undefined -fno-omit-frame-pointer -g"
(
    cd "$work"
    CC="$cc" CFLAGS="$flags" LDFLAGS="-fsanitize=address,undefined" \
        python setup.py build_ext --inplace -q >build.log 2>&1 || { cat build.log; exit 1; }
)

export LD_PRELOAD="$libasan${libubsan:+:$libubsan}"
# Reports go to files as well as stderr: pytest captures a test's stderr, and a process
# that the sanitizer stops in the middle of a test never prints what it captured.
rm -f "$work"/sanitizer-report.*
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:strict_string_checks=1:check_initialization_order=1:log_path=$work/sanitizer-report:${ASAN_OPTIONS:-}"
supp=""
if [ -z "${DIVCORE_UBSAN_NO_SUPPRESS:-}" ]; then
    supp="suppressions=$repo/tools/ubsan.supp:"
fi
export UBSAN_OPTIONS="print_stacktrace=1:${supp}log_path=$work/sanitizer-report:${UBSAN_OPTIONS:-}"
export PYTHONMALLOC=malloc
# tests that measure memory (test_leaks.py) skip: ASan's quarantine holds freed blocks
export DIVCORE_SANITIZED=1

cd "$work"
# The sanitized module must be the one imported: check before running the tests.
python -c "import divcore, divcore._core as c; assert divcore.backend() == 'compiled'; \
print('sanitize.sh: testing', c.__file__, 'simd', c.simd_path())"
if [ "$#" -eq 0 ]; then
    # torch's own libraries are not built for ASan and only serve as a peer here
    set -- tests -p no:cacheprovider -q -x --ignore=tests/test_torch_parity.py --ignore=tests/test_peers.py
fi
start=$(date +%s)
status=0
python -m pytest "$@" || status=$?
for report in "$work"/sanitizer-report.*; do
    [ -e "$report" ] || continue
    echo "sanitize.sh: sanitizer report $report:"
    head -c 4000 "$report"
    if [ "$status" -eq 0 ]; then status=1; fi
done
echo "sanitize.sh: pytest exit status $status after $(( $(date +%s) - start )) s (ASan+UBSan build in $work)"
exit "$status"
