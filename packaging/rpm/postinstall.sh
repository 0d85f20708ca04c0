# influxdb-relay %post: makes systemd see the unit; on upgrade, restarts a running relay
# (%systemd_post semantics: a fresh install is not enabled or started).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 2 ]; then
        systemctl try-restart influxdb-relay.service >/dev/null 2>&1 || :
    fi
fi
exit 0
