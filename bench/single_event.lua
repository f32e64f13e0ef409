-- wrk script: one usage event per POST, each with a unique event id.
-- Environment: BENCH_TOKEN (a kernel JWT), BENCH_RUN (a run id), BENCH_TS (an ISO timestamp).
local threads = {}
local token, run, ts = os.getenv("BENCH_TOKEN"), os.getenv("BENCH_RUN"), os.getenv("BENCH_TS")

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  headers = {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"event_id":"w%s-%d-%d","tenant_id":"bench-single","timestamp":"%s","usage":{"executions":1}}',
    run, id, counter, ts)
  return wrk.format("POST", "/api/v1/usage", headers, body)
end
