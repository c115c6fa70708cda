-- One signed call, many times: ecs.list_clusters{} in a loop, through the whole call path
-- (validate, serialize, sign, send, parse). Prints, for each round, the mean wall-clock and
-- CPU (this process only) microseconds per call, "WALL CPU" a line (bench/run.sh takes
-- median and spread).
--   ecsplay --endpoint-url URL bench/ecsplay_calls.lua [calls=1000] [rounds=5]   over HTTP (curl)
--   ecsplay --simulate bench/ecsplay_calls.lua                                  in process
--   ecsplay bench/ecsplay_calls.lua endpoint=URL dump=FILE   write the signed request that
--     ecsplay sends (headers, empty line, body) for bench/curl_raw.c to replay
local ecs = require "ecsplay.ecs"
local loop = require "loop" -- bench/loop.lua, beside this file
local a = ecsplay.args

if a.dump then
  -- Same client as the runner sets up, but a transport that keeps a copy of the request.
  local aws, sched = require "ecsplay.aws", require "ecsplay.sched"
  local seen
  aws.configure { endpoint_url = a.endpoint, transport = function(req)
    seen = req
    local c = sched.http(req)
    if c.error then return nil, c.error, c.kind end
    return c
  end }
  ecs.list_clusters {}
  local f = assert(io.open(a.dump, "wb"))
  local names = {}
  for k in pairs(seen.headers) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do f:write(k, ": ", seen.headers[k], "\n") end
  f:write("\n", seen.body or "")
  f:close()
  print(seen.url)
  return
end

local calls, rounds = loop.count(a, "calls", 1000), loop.count(a, "rounds", 5)
-- The account's rate limits (aws/ratelimit.lua) hold ListClusters to 20 a second, so the
-- loop would measure waiting. The same client with a bucket too large to run dry: the
-- limiter's per-call work stays in the measurement, its waits do not.
do
  local aws = require "ecsplay.aws.call"
  local conf = {}
  for k, v in pairs(aws.client_settings().opts) do conf[k] = v end
  conf.rate_limits = { ["ecs.cluster_read"] = { rate = 1000000, burst = 1000000 } }
  aws.configure(conf)
end
local r = ecs.list_clusters {}
assert(#r.clusterArns >= 1, "bench: list_clusters returned no cluster")
for _ = 1, 20 do ecs.list_clusters {} end -- warm-up: model loaded, connection open
loop.rounds(calls, rounds, function() ecs.list_clusters {} end)
