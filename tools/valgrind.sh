#!/usr/bin/env bash
# Run the C kernels' own test (tests/c/kernels_selftest.c) under valgrind memcheck:
# every read of a row comes from a heap block of exactly its size, so an over-read, an
# uninitialised value feeding a result, or a leak is an error (exit status 1).
#
#   tools/valgrind.sh            the kernels at -O2 and -O3 (the build's level)
#   CC=clang tools/valgrind.sh   another compiler
#
# valgrind emulates up to AVX2: the AVX-512 kernels are not reached under it (the
# selftest runs every level the CPU reports, and valgrind reports none above AVX2).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cc="${CC:-gcc}"
out="$(mktemp -d /tmp/divcore-valgrind.XXXXXX)"
trap 'rm -rf "$out"' EXIT

if ! command -v valgrind >/dev/null; then
    echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2
    exit 2
fi

status=0
for opt in -O2 -O3; do
    # the flags of setup.py's build (no -ffast-math, no -march=native), with debug info
    "$cc" "$opt" -g -std=c99 -ffp-contract=fast -Wall -Wno-unused-function -I "$repo/src" \
        "$repo/tests/c/kernels_selftest.c" -lm -o "$out/kernels_selftest$opt"
    echo "valgrind.sh: kernels_selftest built with $cc $opt"
    valgrind --quiet --error-exitcode=1 --leak-check=full --show-leak-kinds=all \
        --errors-for-leak-kinds=all --track-origins=yes --partial-loads-ok=no \
        "$out/kernels_selftest$opt" || status=1
done
if [ "$status" -eq 0 ]; then
    echo "valgrind.sh: no memcheck errors, no leaks"
else
    echo "valgrind.sh: memcheck reported errors (above)"
fi
exit "$status"
