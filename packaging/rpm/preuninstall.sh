# influxdb-relay %preun: on erase (not upgrade) disables and stops the service; SIGTERM
# drains the queues for up to shutdown-timeout.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now influxdb-relay.service >/dev/null 2>&1 || :
fi
exit 0
