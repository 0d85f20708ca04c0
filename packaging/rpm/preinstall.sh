# influxdb-relay %pre: creates the system user the service runs as (kept on erase, as the
# Fedora packaging guidelines ask).
getent group influxdb-relay >/dev/null || groupadd -r influxdb-relay
getent passwd influxdb-relay >/dev/null || useradd -r -g influxdb-relay -d /nonexistent \
    -M -s /sbin/nologin -c "InfluxDB Relay" influxdb-relay
exit 0
