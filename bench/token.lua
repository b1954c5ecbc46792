-- wrk script for scenario 6: POST /token, each request with its own body
-- (a sealed code and a private_key_jwt assertion with a fresh jti). The
-- first script argument is a file prefix: thread N reads PREFIX.N (written
-- by `bench_harness token-prep`). A body is never sent twice: when a
-- thread runs out it sends a request naming an invalid client_id, which
-- the proxy refuses (401) without calling upstream, and wrk counts as a
-- status error, so running short shows in the results. done() writes the
-- summary as JSON to $WRK_JSON (latencies in microseconds).

local bodies = {}
local index = 0
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  local file = assert(io.open(args[1] .. "." .. (tid or 0), "r"))
  for line in file:lines() do
    bodies[#bodies + 1] = line
  end
  file:close()
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
  index = index + 1
  return wrk.format("POST", "/token", nil,
    bodies[index] or "grant_type=authorization_code&code=x&client_id=https%3A%2F%2Fexhausted.invalid")
end

function done(summary, latency, requests)
  local e = summary.errors
  local out = assert(io.open(os.getenv("WRK_JSON"), "w"))
  out:write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
  out:close()
end
