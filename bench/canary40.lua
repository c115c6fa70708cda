-- A 40-minute canary, rehearsed: five steps (5 → 10 → 25 → 50 → 100 %), each baking 8
-- simulated minutes with the three gates checked every minute — 40 simulated minutes of
-- baking, ~130 gate checks, a few hundred signed calls to the in-process simulator.
--   ecsplay --simulate bench/canary40.lua
-- Prints "simulated_minutes N" so bench/run.sh can show what was rehearsed.
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local t0 = ecsplay.now()
local report = rollout.canary {
  cluster = "production", image = "api:v2", container = "api",
  stable = { service = "api", target_group = "api-stable" },
  canary = { service = "api-canary", target_group = "api-canary" },
  steps = { 5, 10, 25, 50, 100 }, bake = "8m", interval = "1m",
  gates = {
    gate.alb_5xx_rate { target_group = "api-canary", below = 1.0 },
    gate.alb_latency { target_group = "api-canary", p = 99, below_ms = 300 },
    gate.alarm { "api-5xx-high" },
  },
}
assert(report.status == "succeeded", "bench: the canary did not succeed: " .. tostring(report.status))
local aws = require "ecsplay.aws"
print(string.format("simulated_minutes %.1f", (ecsplay.now() - t0) / 60))
print(string.format("aws_calls %d", aws.stats.calls))
