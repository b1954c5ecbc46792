-- wrk script for scenario 1: GET /authorize for many cached clients.
-- The first script argument is a file of request paths, one per line
-- (written by `bench_harness paths`); each thread cycles through all of
-- them from its own starting point. done() writes the summary as JSON to
-- $WRK_JSON (latencies in microseconds).

local reqs = {}
local index = 0
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  local file = assert(io.open(args[1], "r"))
  for path in file:lines() do
    reqs[#reqs + 1] = wrk.format("GET", path)
  end
  file:close()
  index = ((tid or 0) * 7919) % #reqs
end

function request()
  index = index % #reqs + 1
  return reqs[index]
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
