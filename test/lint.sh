#!/bin/sh
# The lint.format and lint.tidy tests (test/CMakeLists.txt).
# Usage: test/lint.sh format|tidy SRC_DIR BUILD_DIR TOOL
#   format: clang-format --dry-run --Werror on every C file (*.c, *.h)
#   tidy:   clang-tidy with the repo's .clang-tidy on every C source outside test/ and bench/,
#           with the compile database of BUILD_DIR, diagnostics in our headers included
# The files are those git tracks, or every C file under SRC_DIR (build trees excluded) outside
# a git checkout. Fails when the tool is missing, when there is nothing to check, when the
# compile database is missing, and on any finding; says how many files it checked.
set -u
what=$1 src=$2 build=$3 tool=$4
if ! command -v "$tool" >/dev/null 2>&1; then
    echo "lint.$what: $tool not found: run scripts/setup.sh" >&2
    exit 1
fi
cd "$src" || exit 1
list=$(mktemp) || exit 1
trap 'rm -f "$list"' EXIT
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -- '*.c' '*.h' >"$list" || exit 1
else
    find . -path './build*' -prune -o -path ./.git -prune -o -name '*.[ch]' -print |
        sed 's|^\./||' | sort >"$list"
fi
case $what in
format) ;;
tidy)
    if [ ! -f "$build/compile_commands.json" ]; then
        echo "lint.tidy: $build/compile_commands.json missing (CMAKE_EXPORT_COMPILE_COMMANDS)" >&2
        exit 1
    fi
    grep -E '\.c$' "$list" | grep -vE '^(test|bench)/' >"$list.c"
    mv "$list.c" "$list"
    ;;
*)
    echo "usage: $0 format|tidy SRC_DIR BUILD_DIR TOOL" >&2
    exit 2
    ;;
esac
n=$(wc -l <"$list")
if [ "$n" -eq 0 ]; then
    echo "lint.$what: no file to check in $src" >&2
    exit 1
fi
if [ "$what" = format ]; then
    xargs "$tool" --dry-run --Werror <"$list"
else
    # Our own headers are checked where they are included; system headers are not.
    xargs -P2 -n4 "$tool" -p "$build" --quiet --header-filter="^$(pwd)/[a-z]+/[^/]+\.h\$" \
        <"$list"
fi
rc=$?
if [ $rc -ne 0 ]; then
    echo "lint.$what: findings in the $n files checked" >&2
    exit 1
fi
echo "lint.$what: $n files checked, clean"
