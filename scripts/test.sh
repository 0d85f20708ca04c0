#!/bin/sh
# Sets up a Debian 12 machine and runs every test: the whole ctest suite on a Debug build
# (build/), the same suite under ASan+UBSan (build-asan/) with the fuzz targets, the unit and
# black-box tests under TSan (build-tsan/), then the package test (scripts/package-test.sh).
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

# Data races: the unit and black-box tests again under ThreadSanitizer (clang).
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DRELAY_SANITIZE=thread \
    -DCMAKE_C_COMPILER=clang >/dev/null
cmake --build build-tsan -j"$jobs"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ctest --test-dir build-tsan --output-on-failure -j2 -R '^(unit|it)\.'

sh scripts/package-test.sh
