#!/bin/sh
# Builds the .deb and the .rpm the release way (Release, RELAY_WERROR=OFF, -O2 with Debian's
# hardening flags, the default CMAKE_INSTALL_PREFIX: packages must not depend on it, so they are
# built again from the tree configured with another prefix and must list the same files) and
# checks them: contents, conffile / %config(noreplace),
# dependencies (shlibdeps, rpm autoreq), lintian (no errors). Then installs the .deb on this
# machine with apt-get and checks files, user and unit (systemd-analyze verify), runs the
# installed relay with --check-config and as the service user on the installed config, checks
# that a local config edit survives a reinstall, removes and purges the package and checks that
# exactly the expected things are left / gone. The machine is left as found, even on failure.
# Needs root on Debian 12 with scripts/setup.sh's packages (CI: scripts/test.sh runs it last).
# Usage: sh scripts/package-test.sh          (builds in build-pkg/, or $PKG_BUILD_DIR)
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
bdir=${PKG_BUILD_DIR:-build-pkg}
pkg=influxdb-relay
conf=/etc/influxdb-relay/influxdb-relay.conf
unit=/lib/systemd/system/influxdb-relay.service

step() { echo "package-test: $*"; }
fail() {
    echo "package-test: FAIL: $*" >&2
    exit 1
}
installed() { dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed"; }
have_user() { getent passwd "$pkg" >/dev/null; }

[ "$(id -u)" -eq 0 ] || fail "run as root: the test installs the package"
installed && fail "$pkg is already installed here; this test installs and purges it"
have_user && fail "a user $pkg already exists here; this test creates and removes it"

# Leave the machine as found, whatever happens below.
relay_pid=""
cleanup() {
    if [ -n "$relay_pid" ]; then
        kill -KILL "$relay_pid" 2>/dev/null || true
    fi
    if installed; then
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "$pkg" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

# ----------------------------------------------------------------------------- build
# dpkg-buildflags gives what a Debian package build uses (-O2, -D_FORTIFY_SOURCE=2,
# -fstack-protector-strong, relro, with hardening=+all also PIE and bindnow). Its -Werror=...
# flags are dropped for the reason RELAY_WERROR is OFF: a newer compiler must not break the
# package build. CMAKE_C_FLAGS_RELEASE is set so Release does not override -O2 with -O3.
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
cflags=$(echo "$(dpkg-buildflags --get CPPFLAGS) $(dpkg-buildflags --get CFLAGS)" |
    tr ' ' '\n' | grep -v '^-Werror' | tr '\n' ' ')
ldflags=$(dpkg-buildflags --get LDFLAGS)
step "configure $bdir (Release, CFLAGS: $cflags)"
rm -rf "$bdir"
cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=Release -DRELAY_WERROR=OFF \
    -DCMAKE_C_FLAGS="$cflags" -DCMAKE_C_FLAGS_RELEASE="-DNDEBUG" \
    -DCMAKE_EXE_LINKER_FLAGS="$ldflags" >/dev/null
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$bdir/CMakeCache.txt")
[ "$prefix" = /usr/local ] || fail "the build tree's prefix is $prefix, want the default /usr/local"
cmake --build "$bdir" -j2 >/dev/null
(cd "$bdir" && cpack -G DEB >/dev/null && cpack -G RPM >/dev/null) ||
    fail "cpack failed (rerun: cd $bdir && cpack -G DEB / -G RPM)"
deb=$(ls "$src/$bdir"/${pkg}_*.deb)
rpm=$(ls "$src/$bdir"/${pkg}-*.rpm)
step "built $(basename "$deb") ($(stat -c %s "$deb") bytes), $(basename "$rpm") ($(stat -c %s "$rpm") bytes)"

# The same packages from the tree configured with another prefix (the binaries are unchanged:
# only the install scripts are regenerated), then back to the default.
cmake -S . -B "$bdir" -DCMAKE_INSTALL_PREFIX=/opt/influxdb-relay >/dev/null
other="$src/$bdir/other-prefix"
(cd "$bdir" && cpack -G DEB -B "$other" >/dev/null && cpack -G RPM -B "$other" >/dev/null) ||
    fail "cpack failed with CMAKE_INSTALL_PREFIX=/opt/influxdb-relay"
cmake -S . -B "$bdir" -UCMAKE_INSTALL_PREFIX >/dev/null
[ "$(dpkg-deb -c "$deb" | awk '{print $1, $6}')" = \
    "$(dpkg-deb -c "$(ls "$other"/${pkg}_*.deb)" | awk '{print $1, $6}')" ] ||
    fail "the .deb depends on CMAKE_INSTALL_PREFIX"
[ "$(rpm -qpl "$rpm")" = "$(rpm -qpl "$(ls "$other"/${pkg}-*.rpm)")" ] ||
    fail "the .rpm depends on CMAKE_INSTALL_PREFIX"
rm -rf "$other"
step "packages built from /usr/local (default) and /opt/influxdb-relay prefixes list the same files"

# The hardening the flags promise, read from the binary itself.
bin="$src/$bdir/influxdb-relay"
readelf -d "$bin" | grep -q 'BIND_NOW' || fail "binary lacks BIND_NOW"
readelf -l "$bin" | grep -q 'GNU_RELRO' || fail "binary lacks RELRO"
readelf -h "$bin" | grep -q 'DYN (Position-Independent Executable' || fail "binary is not PIE"
nchk=$(nm -D "$bin" | grep -c '__.*_chk' || true)
step "binary: PIE, full RELRO, $nchk fortified libc calls (_chk)"

# ----------------------------------------------------------------------------- contents
expected="./usr/bin/influxdb-relay
./usr/bin/influxdb-relay-convert
./etc/influxdb-relay/influxdb-relay.conf
./lib/systemd/system/influxdb-relay.service
./usr/share/man/man8/influxdb-relay.8.gz
./usr/share/man/man5/influxdb-relay.conf.5.gz
./usr/share/doc/influxdb-relay/copyright
./usr/share/doc/influxdb-relay/changelog.gz
./usr/share/doc/influxdb-relay/operations.md
./usr/share/doc/influxdb-relay/queue-and-retry.md"
step "deb contents:"
dpkg-deb -c "$deb" | awk '{print "    " $1, $2, $6}'
for f in $expected; do
    dpkg-deb -c "$deb" | awk '{print $6}' | grep -qx "$f" || fail "deb lacks $f"
done
dpkg-deb -c "$deb" | awk '{print $1, $6}' | grep -qx "drwxr-x--- ./var/lib/$pkg/" ||
    dpkg-deb -c "$deb" | awk '{print $6}' | grep -qx "./var/lib/$pkg/" ||
    fail "deb lacks the spool directory /var/lib/$pkg"
ctl=$(mktemp -d)
dpkg-deb -e "$deb" "$ctl"
grep -qx "$conf" "$ctl/conffiles" || fail "deb: $conf is not a conffile"
for s in postinst prerm postrm; do
    [ -x "$ctl/$s" ] || fail "deb: no executable $s"
done
depends=$(dpkg-deb -f "$deb" Depends)
rm -rf "$ctl"
step "deb Depends: $depends"
# Every library the binaries link (NEEDED) must come from a package named in Depends.
needed=$(objdump -p "$src/$bdir/influxdb-relay" "$src/$bdir/influxdb-relay-convert" |
    awk '/NEEDED/ {print $2}' | sort -u)
for lib in $needed; do
    owner=$(dpkg -S "*/$lib" 2>/dev/null | grep -v -- '-dev' | head -1 | cut -d: -f1)
    [ -n "$owner" ] || fail "no package provides $lib"
    echo "$depends" | grep -q "$owner" || fail "deb Depends lacks $owner (for $lib)"
done
echo "$depends" | grep -q adduser || fail "deb Depends lacks adduser (postinst)"

step "rpm -qpl:"
rpm -qpl "$rpm" | sed 's/^/    /'
for f in $expected; do
    rpm -qpl "$rpm" | grep -qx "${f#.}" || fail "rpm lacks ${f#.}"
done
rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" | grep -qx "cn $conf" ||
    fail "rpm: $conf is not %config(noreplace)"
rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" | grep -qx " $unit" ||
    fail "rpm: $unit must be a plain file, not %config"
rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]' "$rpm" |
    grep -qx "drwxr-x--- $pkg:$pkg /var/lib/$pkg" ||
    fail "rpm: /var/lib/$pkg must be a directory of $pkg, mode 0750"
rpm -qp --scripts "$rpm" | grep -q 'useradd' || fail "rpm: %pre does not create the user"
step "rpm Requires: $(rpm -qpR "$rpm" | grep -v '^rpmlib(' | tr '\n' ' ')"
for lib in $needed; do
    rpm -qpR "$rpm" | grep -q "^$lib" || fail "rpm Requires lacks $lib (autoreq)"
done

# The rpm's payload installs into an empty root (no scripts: no RPM system here to run them).
rroot=$(mktemp -d)
rpm --root "$rroot" --initdb
# (Debian's rpm warns on stderr that alien should be used: kept out of the output.)
rpm --root "$rroot" -i --nodeps --noscripts --nosignature "$rpm" 2>"$rroot.err" ||
    fail "rpm -i into an empty root failed: $(cat "$rroot.err")"
for f in $expected; do
    [ -e "$rroot/${f#./}" ] || fail "rpm -i did not install ${f#.}"
done
rpm --root "$rroot" -V --nodeps --nomode --nouser --nogroup "$pkg" || fail "rpm -V failed"
rpm --root "$rroot" -e --nodeps --noscripts "$pkg" 2>"$rroot.err" ||
    fail "rpm -e failed: $(cat "$rroot.err")"
[ ! -e "$rroot/usr/bin/influxdb-relay" ] || fail "rpm -e left /usr/bin/influxdb-relay"
rm -rf "$rroot" "$rroot.err"
step "rpm: installs into and erases from an empty root"

# ----------------------------------------------------------------------------- lintian
# No errors allowed; warnings are printed so the report can list what is kept and why.
step "lintian:"
lint=$(mktemp)
lrc=0
lintian --fail-on error --display-info "$deb" >"$lint" 2>&1 || lrc=$?
sed 's/^/    /' "$lint"
rm -f "$lint"
[ "$lrc" -eq 0 ] || fail "lintian reports errors (exit $lrc)"

# ----------------------------------------------------------------------------- install
step "apt-get install ./$(basename "$deb")"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >/dev/null ||
    fail "apt-get install failed"
installed || fail "dpkg does not list $pkg as installed"
for f in /usr/bin/influxdb-relay /usr/bin/influxdb-relay-convert; do
    [ -x "$f" ] || fail "$f missing or not executable"
done
for f in "$conf" "$unit" /usr/share/doc/influxdb-relay/copyright; do
    [ -f "$f" ] || fail "$f missing"
done
[ "$(stat -c '%U:%G %a' "$conf")" = "root:root 644" ] ||
    fail "$conf: owner/mode $(stat -c '%U:%G %a' "$conf")"
dpkg-query -W -f='${Conffiles}\n' "$pkg" | grep -q "$conf" || fail "dpkg: $conf not a conffile"
[ "$(stat -c '%U:%G %a' /var/lib/$pkg)" = "$pkg:$pkg 750" ] ||
    fail "/var/lib/$pkg: owner/mode $(stat -c '%U:%G %a' /var/lib/$pkg), want $pkg:$pkg 750"
grep -qx "spool-dir = /var/lib/$pkg" "$conf" || fail "$conf does not use /var/lib/$pkg"
grep -qx "StateDirectory=$pkg" "$unit" || fail "$unit lacks StateDirectory=$pkg"
pw=$(getent passwd "$pkg") || fail "user $pkg not created"
getent group "$pkg" >/dev/null || fail "group $pkg not created"
uid=$(echo "$pw" | cut -d: -f3)
[ "$uid" -lt 1000 ] || fail "user $pkg is not a system user (uid $uid)"
case "$pw" in
*:/nonexistent:/usr/sbin/nologin) ;;
*) fail "user $pkg: unexpected home/shell: $pw" ;;
esac
step "user: $pw"

if command -v systemd-analyze >/dev/null; then
    man_opt=--man=yes
    command -v man >/dev/null || man_opt=--man=no
    systemd-analyze verify "$man_opt" "$unit" || fail "systemd-analyze verify $unit"
    step "systemd-analyze verify $man_opt: ok; $(systemd-analyze security --offline=true "$unit" |
        grep 'Overall exposure')"
else
    step "systemd-analyze not available: unit verification skipped"
fi
if [ -d /run/systemd/system ]; then
    # A systemd machine: postinst enabled and started the service under the unit's hardening.
    systemctl is-enabled "$pkg" >/dev/null || fail "service not enabled after install"
    systemctl is-active "$pkg" >/dev/null || {
        journalctl -u "$pkg" --no-pager | tail -20
        fail "service not active after install"
    }
    step "systemd: service enabled and active"
else
    step "systemd is not running here: service start not checked (unit verified offline)"
fi

# --check-config on the installed config, as root and as the service user (who must be able
# to read it).
out=$(/usr/bin/influxdb-relay -config "$conf" --check-config 2>&1) ||
    fail "installed relay rejects the installed config: $out"
out=$(setpriv --reuid="$pkg" --regid="$pkg" --clear-groups \
    /usr/bin/influxdb-relay -config "$conf" --check-config 2>&1) ||
    fail "as user $pkg, --check-config fails: $out"
example=/usr/share/doc/influxdb-relay/examples/influxdb-relay.conf
out=$(/usr/bin/influxdb-relay -config "$example" --check-config 2>&1) ||
    fail "the deployment example $example is rejected: $out"
step "--check-config on $conf: ok (root and $pkg); on $example: ok"
/usr/bin/influxdb-relay --version >/dev/null 2>&1 || fail "influxdb-relay --version fails"

# The installed relay serves on the installed config as the service user (under systemd the
# service already does: just ask it).
ping() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:9096/ping || true; }
if [ -d /run/systemd/system ]; then
    [ "$(ping)" = 204 ] || fail "the service does not answer /ping on 127.0.0.1:9096"
    step "the service answers /ping"
elif [ "$(ping)" != "000" ]; then
    step "127.0.0.1:9096 is busy here: run as $pkg not checked"
else
    rlog=$(mktemp)
    setpriv --reuid="$pkg" --regid="$pkg" --clear-groups \
        /usr/bin/influxdb-relay -config "$conf" 2>"$rlog" &
    relay_pid=$!
    tries=0
    until [ "$(ping)" = 204 ]; do
        tries=$((tries + 1))
        [ "$tries" -lt 50 ] || fail "installed relay does not answer /ping: $(cat "$rlog")"
        sleep 0.2
    done
    [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9096/metrics)" = 200 ] ||
        fail "installed relay: /metrics"
    kill -TERM "$relay_pid"
    rc=0
    wait "$relay_pid" || rc=$?
    relay_pid=""
    [ "$rc" -eq 0 ] || fail "installed relay exited $rc after SIGTERM: $(cat "$rlog")"
    rm -f "$rlog"
    [ -f /var/lib/$pkg/example-http/local1/lock ] || fail "the relay made no spool in /var/lib/$pkg"
    step "installed relay ran as $pkg: /ping 204, /metrics 200, spool in /var/lib/$pkg, SIGTERM -> exit 0"
fi

# A local edit of the conffile survives a reinstall (the upgrade path: prerm upgrade, postinst
# configure with the old version).
echo "; local edit by package-test" >>"$conf"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall "$deb" >/dev/null ||
    fail "reinstall failed"
grep -q "local edit by package-test" "$conf" || fail "reinstall overwrote the edited $conf"
step "reinstall kept the local edit of $conf"

# ----------------------------------------------------------------------------- remove, purge
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq "$pkg" >/dev/null || fail "remove failed"
for f in /usr/bin/influxdb-relay /usr/bin/influxdb-relay-convert "$unit"; do
    [ ! -e "$f" ] || fail "$f still there after remove"
done
[ -f "$conf" ] || fail "remove deleted the conffile (only purge may)"
have_user || fail "remove deleted the user (only purge may)"
step "remove: binaries and unit gone; config and user kept"

DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "$pkg" >/dev/null || fail "purge failed"
installed && fail "$pkg still installed after purge"
dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "config-files" &&
    fail "$pkg left in config-files state after purge"
for f in /etc/influxdb-relay /usr/share/doc/influxdb-relay /usr/share/man/man8/influxdb-relay.8.gz \
    /etc/systemd/system/influxdb-relay.service \
    /etc/systemd/system/multi-user.target.wants/influxdb-relay.service \
    /var/lib/systemd/deb-systemd-helper-enabled/influxdb-relay.service.dsh-also \
    /var/lib/systemd/deb-systemd-helper-masked/influxdb-relay.service /var/lib/influxdb-relay; do
    [ ! -e "$f" ] && [ ! -L "$f" ] || fail "$f still there after purge"
done
have_user && fail "user $pkg still there after purge"
getent group "$pkg" >/dev/null && fail "group $pkg still there after purge"
step "purge: files, unit state, user and group gone"
step "PASS"
