-- 50 services' canaries at once in one process: ecsplay.map over bench/fleet_scenario.lua's
-- pairs, each 10 → 50 → 100 % with a 3-minute bake and two gates checked every minute.
--   ecsplay --simulate=bench/fleet_scenario.lua bench/map50.lua
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local list = {}
for i = 1, 50 do list[i] = i end
local t0 = ecsplay.now()
local reports = ecsplay.map(list, function(i)
  local canary_tg = ("svc%d-canary"):format(i)
  return rollout.canary {
    cluster = "production", image = "api:v2", container = "api", canary_count = 1,
    stable = { service = "svc" .. i, target_group = ("svc%d-stable"):format(i) },
    canary = { service = ("svc%d-canary"):format(i), target_group = canary_tg },
    steps = { 10, 50, 100 }, bake = "3m", interval = "1m",
    gates = {
      gate.alb_5xx_rate { target_group = canary_tg, below = 1.0 },
      gate.alb_latency { target_group = canary_tg, p = 99, below_ms = 300 },
    },
  }
end)
for i, r in ipairs(reports) do
  assert(r.status == "succeeded", ("bench: canary %d: %s"):format(i, tostring(r.status)))
end
print(string.format("simulated_minutes %.1f", (ecsplay.now() - t0) / 60))
print(string.format("aws_calls %d", require("ecsplay.aws").stats.calls))
