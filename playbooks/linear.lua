-- Linear rollout of api: 20 % more of the traffic every 2 minutes while the gates hold.
--   ecsplay --simulate playbooks/linear.lua                 promotes api:v2
--   ecsplay --simulate playbooks/linear.lua image=api:slow  rolls back on p99 latency (exit 1)
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
  step = { type = "number", default = 20, help = "percent of the traffic added at each step" },
  every = { type = "duration", default = "2m", help = "how long each step bakes before the next" },
}
local canary_tg = a.canary_tg
local report = rollout.linear {
  cluster = a.cluster, container = a.container,
  image = a.image or (not a.task_definition and "api:v2" or nil), task_definition = a.task_definition,
  stable = { service = a.service, target_group = a.stable_tg },
  canary = { service = a.canary, target_group = canary_tg },
  rule = a.rule, step = a.step, every = a.every, interval = "1m",
  gates = {
    gate.alb_5xx_rate { target_group = canary_tg, below = 1.0 },
    gate.alb_latency { target_group = canary_tg, p = 99, below_ms = 300 },
  },
}
print(string.format("linear: %s, %s promoted in %d steps", report.status,
  a.task_definition or a.image or "api:v2", #report.steps))
