-- wrk script of perf/gateway.sh: prints wrk's own figures as one JSON object on stdout at the end
-- of a run (`keel-perf measurement --tool wrk` turns it into the harness's measurement line).
--
-- Only `done` is defined: a script with `request` or `response` hooks makes wrk run Lua for every
-- request, which would slow the load generator down and lower every figure.
-- Latencies are in microseconds, as wrk keeps them.

function done(summary, latency, requests)
    local errors = summary.errors
    io.write(string.format(
        '{"tool":"wrk","duration_us":%d,"requests":%d,"bytes":%d,' ..
        '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
        '"latency_us":{"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p99.9":%d}}\n',
        summary.duration, summary.requests, summary.bytes,
        errors.connect, errors.read, errors.write, errors.status, errors.timeout,
        latency.mean, latency.max,
        latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency:percentile(99.9)))
end
