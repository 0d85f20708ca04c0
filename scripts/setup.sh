#!/bin/sh
# Installs what building, running and testing the relay needs on Debian 12 (as root, or with
# sudo). Idempotent: packages already present are not fetched again.
set -eu
# Every tool a test calls is here: a missing one fails its test, it is never skipped.
#   lint.format, lint.tidy: clang-format, clang-tidy (14), git (the files to check)
#   it.*: influxdb (influxd), nginx + modules, haproxy, openssl (certificates), python3 with
#   prometheus-client and yaml, util-linux (setpriv: a check as an unprivileged user; unshare:
#   a private trust store) and mount
pkgs="build-essential cmake pkg-config libmicrohttpd-dev libinih-dev libcurl4-openssl-dev
zlib1g-dev influxdb nginx libnginx-mod-http-echo haproxy python3 python3-prometheus-client
clang libclang-rt-14-dev rpm lintian file curl libnginx-mod-stream clang-format clang-tidy
git python3-yaml openssl util-linux mount ca-certificates nodejs"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
# npm comes with nodesource's nodejs; Debian's nodejs needs Debian's npm.
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # policy-rc.d keeps the packages' own services (influxdb, nginx, haproxy) from starting: the
    # tests start their own instances on free loopback ports.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
# Real InfluxDB clients from npm for the black-box tests (it.query: node-influx's
# createDatabase()), installed in the project, never globally: test/it/node/node_modules.
node_dir=$(dirname "$0")/../test/it/node
if [ ! -d "$node_dir/node_modules/influx" ]; then
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
