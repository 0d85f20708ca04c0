#!/bin/sh
# Sets up a Debian 12 machine and runs every test: the whole ctest suite on a Debug build
# (build/), the same suite under ASan+UBSan (build-asan/), and the fuzz targets (clang).
# Usage: scripts/test.sh            (FUZZ_SECONDS=60 by default)
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j2

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DRELAY_SANITIZE=address,undefined \
    -DRELAY_FUZZ=ON -DCMAKE_C_COMPILER=clang -DIR_FUZZ_SECONDS="${FUZZ_SECONDS:-60}" >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j2
sh scripts/package-test.sh
