#!/bin/sh
# Every header compiles on its own (docs/ARCHITECTURE.md, "Rules of the code"): a one-line
# .c per header.
# Usage: tools/check-headers.sh SRC_DIR CC CFLAGS...
src=$1; cc=$2; shift 2
cd "$src" || exit 2
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
rc=0
for h in $(git ls-files '*.h' 2>/dev/null || find . -name '*.h' -not -path './build*'); do
    case "$h" in test/*|bench/*) continue ;; esac
    printf '#include "%s"\n' "$h" >"$tmp/one.c"
    inc=$(pkg-config --cflags libmicrohttpd libcurl inih zlib)
    # shellcheck disable=SC2086
    if ! $cc -std=c11 -D_POSIX_C_SOURCE=200809L -DZLIB_CONST -I. $inc -Wall -Wextra -Werror \
        -fsyntax-only "$tmp/one.c" 2>"$tmp/err"; then
        echo "$h does not compile on its own:"; cat "$tmp/err"; rc=1
    fi
done
[ $rc -eq 0 ] && echo "every header compiles on its own"
exit $rc
