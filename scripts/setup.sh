#!/bin/sh
# Installs what building, running and testing the relay needs on Debian 12 (as root, or with
# sudo). Idempotent: packages already present are not fetched again.
set -eu
# Every tool a test calls is here: a missing one fails its test, it is never skipped.
#   lint.format, lint.tidy: clang-format, clang-tidy (14), git (the files to check)
#   it.*: influxdb (influxd), nginx + modules, haproxy, openssl (certificates), python3 with
#   prometheus-client, yaml and snappy (Prometheus remote-write bodies; also unit.util_snappy),
#   util-linux (setpriv: a check as an unprivileged user; unshare: a private trust store) and
#   mount; Node.js and npm (it.apis_node: the official InfluxDB v2 client, test/it/node);
#   prometheus (it.dashboard evaluates the Grafana dashboard's queries against a real
#   Prometheus scraping a relay)
pkgs="build-essential cmake pkg-config libmicrohttpd-dev libinih-dev libcurl4-openssl-dev
zlib1g-dev influxdb nginx libnginx-mod-http-echo haproxy python3 python3-prometheus-client
clang libclang-rt-14-dev rpm lintian file curl libnginx-mod-stream clang-format clang-tidy
git python3-yaml openssl util-linux mount ca-certificates python3-snappy
prometheus"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
# Debian's nodejs and npm, unless a Node.js with its npm is there already (NodeSource's nodejs
# package ships npm and conflicts with Debian's).
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # policy-rc.d keeps the packages' own services (influxdb, nginx, haproxy, prometheus) from
    # starting: the tests start their own instances on free loopback ports.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
# The npm packages of the tests (test/it/node: package.json + package-lock.json, exact
# versions and integrity hashes), installed from the npm registry when the lock file changed.
node_dir="$(dirname "$0")/../test/it/node"
if ! cmp -s "$node_dir/package-lock.json" "$node_dir/node_modules/.installed-lock.json"; then
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error &&
        cp package-lock.json node_modules/.installed-lock.json)
fi
