-- Canary rollout of api: 10 → 25 → 50 → 100 % of the traffic, gated on the canary's metrics.
--   ecsplay --simulate playbooks/canary.lua                 promotes api:v2
--   ecsplay --simulate playbooks/canary.lua image=api:flaky  rolls back (exit 1)
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local a = ecsplay.params {
  image = { type = "string", help = "the image to roll out (api:v2 when neither image= nor task_definition= is given)" },
  task_definition = { type = "string", help = "the version as a task definition instead: family, family:revision or ARN" },
  cluster = { type = "string", default = "production", help = "the ECS cluster" },
  container = { type = "string", default = "api", help = "the container whose image changes" },
  service = { type = "string", default = "api", help = "the stable service" },
  canary = { type = "string", default = "api-canary", help = "the canary service" },
  stable_tg = { type = "string", default = "api-stable", help = "the stable service's target group" },
  canary_tg = { type = "string", default = "api-canary", help = "the canary service's target group" },
  rule = { type = "string", help = "the weighted listener rule or listener ARN (found from the target groups when not given)" },
  bake = { type = "duration", default = "5m", help = "how long each step bakes while the gates measure" },
  alarm = { type = "string", default = "api-5xx-high", help = "a CloudWatch alarm that must not be in ALARM" },
}
local canary_tg = a.canary_tg
local report = rollout.canary {
  cluster = a.cluster, container = a.container,
  -- the version: image= (default api:v2) or task_definition= (family, family:revision or ARN)
  image = a.image or (not a.task_definition and "api:v2" or nil), task_definition = a.task_definition,
  stable = { service = a.service, target_group = a.stable_tg },
  canary = { service = a.canary, target_group = canary_tg },
  rule = a.rule, steps = { 10, 25, 50, 100 }, bake = a.bake, interval = "1m",
  gates = {
    gate.alb_5xx_rate { target_group = canary_tg, below = 1.0 },
    gate.alb_latency { target_group = canary_tg, p = 99, below_ms = 300 },
    gate.alarm { a.alarm },
  },
}
print(string.format("canary: %s, %s promoted in %d steps", report.status,
  a.task_definition or a.image or "api:v2", #report.steps))
