// Writes points through a relay's /api/v2/write with the official InfluxDB v2 client
// (@influxdata/influxdb-client), the way an application of InfluxDB 1.8 does:
//   node v2_write.js URL TOKEN BUCKET PRECISION POINTS MEASUREMENT
// TOKEN is "user:password" (InfluxDB 1.8 style) or anything; BUCKET is "db" or "db/rp".
// Points: MEASUREMENT,n=<i mod 10> v=<i>i,s="..." at a fixed time plus i units, in requests of
// 500 (bodies gzipped by the client: it compresses those above 1000 bytes).
// Exit 0 when every point was acknowledged; otherwise prints the client's error (status,
// code, message as the client read them) on stderr and exits 1.
'use strict';
const {InfluxDB, Point, HttpError} = require('@influxdata/influxdb-client');

async function main() {
    const [url, token, bucket, precision, count, measurement] = process.argv.slice(2);
    const influx = new InfluxDB({url, token, timeout: 20000});
    // Batches are flushed (and awaited) here every 500 points: a batch the client sends on its
    // own when full is not awaited by close().
    const writeApi = influx.getWriteApi('', bucket, precision, {
        batchSize: Number(count) + 1,
        flushInterval: 0,
        maxRetries: 0,
        gzipThreshold: 1000,
    });
    const base = 1700000000;
    for (let i = 0; i < Number(count); i++) {
        const p = new Point(measurement)
            .tag('n', String(i % 10))
            .intField('v', i)
            .stringField('s', 'padding to make the body worth compressing ' + i)
            .timestamp(String(BigInt(base) * unitsPerSecond(precision) + BigInt(i)));
        writeApi.writePoint(p);
        if (i % 500 === 499) {
            await writeApi.flush();
        }
    }
    await writeApi.close();
}

function unitsPerSecond(precision) {
    return {s: 1n, ms: 1000n, us: 1000000n, ns: 1000000000n}[precision];
}

main().then(
    () => process.exit(0),
    (e) => {
        if (e instanceof HttpError) {
            console.error(`HttpError status=${e.statusCode} code=${e.code} message=${e.message}`);
        } else {
            console.error(`error: ${e && e.stack ? e.stack : e}`);
        }
        process.exit(1);
    });
