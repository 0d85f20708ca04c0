#!/bin/sh
# conf.NAME: run --check-config on NAME.ini and diff stderr with NAME.err byte for byte.
# An empty NAME.err means the config is valid: exit 0 expected; otherwise exit 1.
bin=$1 name=$2
out=$(mktemp) || exit 2
"$bin" -config "$name.ini" --check-config 2>"$out" >/dev/null
rc=$?
if [ -s "$name.err" ]; then want=1; else want=0; fi
if ! diff -u "$name.err" "$out"; then rm -f "$out"; exit 1; fi
rm -f "$out"
if [ "$rc" -ne "$want" ]; then echo "exit $rc, want $want"; exit 1; fi
exit 0
