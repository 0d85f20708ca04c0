-- wrk script for bench/http_bench.py: POSTs the body file named by BODY (env) to PATH (env) and
-- prints one machine-readable RESULT line.
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.path = os.getenv("WPATH") or "/write?db=bench"
wrk.headers["Content-Type"] = "text/plain"

done = function(summary, latency, requests)
    local secs = summary.duration / 1e6
    local bad = summary.errors.status + summary.errors.connect + summary.errors.read +
        summary.errors.write + summary.errors.timeout
    io.write(string.format("RESULT requests=%d secs=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d\n",
        summary.requests, secs, summary.requests / secs, latency:percentile(50) / 1000,
        latency:percentile(99) / 1000, bad))
end
