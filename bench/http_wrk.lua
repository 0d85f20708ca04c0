-- wrk script for bench/http_bench.py: POSTs the body file named by BODY (env) to PATH (env) and
-- prints one machine-readable RESULT line.
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.path = os.getenv("WPATH") or "/write?db=bench"
wrk.headers["Content-Type"] = "text/plain"

-- RATE (env, requests/s for the whole run, use with -t1): paced sends on a fixed schedule
-- (bench/spool_bench.py outage); a connection late on the schedule sends at once (catch-up).
local rate = tonumber(os.getenv("RATE") or "")
if rate then
    local ffi = require("ffi")
    ffi.cdef [[
        typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
        int clock_gettime(int clk, bench_timespec *ts);
    ]]
    local ts = ffi.new("bench_timespec")
    local interval = 1000 / rate
    local next_ms = nil
    local function now_ms()
        ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
        return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
    end
    function delay()
        local now = now_ms()
        next_ms = (next_ms or now) + interval
        if next_ms <= now then
            return 0
        end
        return next_ms - now
    end
end

done = function(summary, latency, requests)
    local secs = summary.duration / 1e6
    local bad = summary.errors.status + summary.errors.connect + summary.errors.read +
        summary.errors.write + summary.errors.timeout
    io.write(string.format("RESULT requests=%d secs=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d\n",
        summary.requests, secs, summary.requests / secs, latency:percentile(50) / 1000,
        latency:percentile(99) / 1000, bad))
end
