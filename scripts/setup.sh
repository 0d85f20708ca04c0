#!/bin/sh
# Installs what building, running and testing the relay needs on Debian 12 (as root, or with
# sudo). Idempotent: packages already present are not fetched again.
set -eu
# Every tool a test calls is here: a missing one fails its test, it is never skipped.
#   lint.format, lint.tidy: clang-format, clang-tidy (14), git (the files to check)
#   it.*: influxdb (influxd), nginx + modules, haproxy, openssl (certificates), python3 with
#   prometheus-client and yaml, util-linux (setpriv: a check as an unprivileged user; unshare:
#   a private trust store) and mount, prometheus (it.dashboard evaluates the Grafana dashboard's
#   queries against a real Prometheus scraping a relay)
pkgs="build-essential cmake pkg-config libmicrohttpd-dev libinih-dev libcurl4-openssl-dev
zlib1g-dev influxdb nginx libnginx-mod-http-echo haproxy python3 python3-prometheus-client
clang libclang-rt-14-dev rpm lintian file curl libnginx-mod-stream clang-format clang-tidy
git python3-yaml openssl util-linux mount ca-certificates prometheus"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
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
