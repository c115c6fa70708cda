-- Linear rollout of api: 20 % more of the traffic every 2 minutes while the gates hold.
--   ecsplay --simulate playbooks/linear.lua                 promotes api:v2
--   ecsplay --simulate playbooks/linear.lua image=api:slow  rolls back on p99 latency (exit 1)
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local a = ecsplay.args
local canary_tg = a.canary_tg or "api-canary"
local report = rollout.linear {
  cluster = a.cluster or "production", container = a.container or "api",
  image = a.image or (not a.task_definition and "api:v2" or nil), task_definition = a.task_definition,
  stable = { service = a.service or "api", target_group = a.stable_tg or "api-stable" },
  canary = { service = a.canary or "api-canary", target_group = canary_tg },
  rule = a.rule, step = tonumber(a.step or 20), every = a.every or "2m", interval = "1m",
  gates = {
    gate.alb_5xx_rate { target_group = canary_tg, below = 1.0 },
    gate.alb_latency { target_group = canary_tg, p = 99, below_ms = 300 },
  },
}
print(string.format("linear: %s, %s promoted in %d steps", report.status,
  a.task_definition or a.image or "api:v2", #report.steps))
