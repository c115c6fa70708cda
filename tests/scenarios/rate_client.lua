-- A client (not a scenario) for tests/lua/test_ratelimit.lua: n= sequential DescribeServices of
-- production/api against the endpoint given, then one JSON line: each answer's time on the
-- clock followed (ecsplay.now()), the failures, the machine's time, whether the served clock
-- was followed, the static limiter's counters and adaptive mode's throttles.
local aws = require "ecsplay.aws"
local ecs = require "ecsplay.ecs"
local json = require "ecsplay.json"
local sched = require "ecsplay.sched"

local times, failures = {}, {}
for i = 1, tonumber(ecsplay.args.n or 16) do
  local ok, e = pcall(ecs.describe_services, { cluster = "production", services = { "api" } })
  if not ok then failures[#failures + 1] = tostring(type(e) == "table" and e.code or e) end
  times[i] = ecsplay.now()
end
local limiter = aws.retryer("ecs").limiter
print(json.encode {
  times = times, failures = failures, machine = os.time(), followed = sched.server_clock() ~= nil,
  limits = aws.limits():stats()["ecs.service_read"] or json.null,
  calls = aws.stats()["ecs.DescribeServices"].calls,
  throttles = limiter and limiter.throttles or 0,
})
