-- Canary rollout of api: 10 → 25 → 50 → 100 % of the traffic, gated on the canary's metrics.
--   ecsplay --simulate playbooks/canary.lua                 promotes api:v2
--   ecsplay --simulate playbooks/canary.lua image=api:flaky  rolls back (exit 1)
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local a = ecsplay.args
local canary_tg = a.canary_tg or "api-canary"
local report = rollout.canary {
  cluster = a.cluster or "production", container = a.container or "api",
  -- the version: image= (default api:v2) or task_definition= (family, family:revision or ARN)
  image = a.image or (not a.task_definition and "api:v2" or nil), task_definition = a.task_definition,
  stable = { service = a.service or "api", target_group = a.stable_tg or "api-stable" },
  canary = { service = a.canary or "api-canary", target_group = canary_tg },
  rule = a.rule, steps = { 10, 25, 50, 100 }, bake = a.bake or "5m", interval = "1m",
  gates = {
    gate.alb_5xx_rate { target_group = canary_tg, below = 1.0 },
    gate.alb_latency { target_group = canary_tg, p = 99, below_ms = 300 },
    gate.alarm { a.alarm or "api-5xx-high" },
  },
}
print(string.format("canary: %s, %s promoted in %d steps", report.status,
  a.task_definition or a.image or "api:v2", #report.steps))
