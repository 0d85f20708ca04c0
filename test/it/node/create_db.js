// node-influx (npm `influx` 5.12) against the relay: createDatabase() sends CREATE DATABASE to
// /query; then getDatabaseNames() reads SHOW DATABASES back through the relay.
// Usage: node create_db.js HOST PORT DB   (exit 0 and "OK" when the database is listed)
"use strict";
const Influx = require("influx");

const [host, port, db] = [process.argv[2], Number(process.argv[3]), process.argv[4]];
const influx = new Influx.InfluxDB({ host, port });
influx
  .createDatabase(db)
  .then(() => influx.getDatabaseNames())
  .then((names) => {
    if (!names.includes(db)) {
      console.error("database not listed:", names);
      process.exit(1);
    }
    console.log("OK");
  })
  .catch((e) => {
    console.error("node-influx failed:", e && e.message ? e.message : e);
    process.exit(1);
  });
