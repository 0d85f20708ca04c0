#!/bin/sh
# Fails when a banned function (docs/ARCHITECTURE.md, "Rules of the code") is called in the
# C sources.
# Usage: tools/check-banned.sh [SRC_DIR]
cd "${1:-$(dirname "$0")/..}" || exit 2
banned='atoi|atol|strtok|sprintf|vsprintf|strcpy|strcat|gets|strerror|localtime|gmtime|rand|signal|sleep|usleep|pthread_cancel'
hits=$(grep -nE "(^|[^A-Za-z0-9_.>])($banned)[[:space:]]*\(" \
    $(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*') \
    | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/\*|\*)' )
if [ -n "$hits" ]; then
    echo "banned functions (docs/ARCHITECTURE.md, \"Rules of the code\"):"
    echo "$hits"
    exit 1
fi
echo "no banned function"
