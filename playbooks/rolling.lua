-- ECS's own rolling update of api, watched to completion; the circuit breaker's rollback is
-- reported as a failure (exit 1).
--   ecsplay --simulate playbooks/rolling.lua                 deploys api:v2
--   ecsplay --simulate playbooks/rolling.lua image=api:bad   ECS rolls back → exit 1
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local a = ecsplay.params {
  image = { type = "string", help = "the image to roll out (api:v2 when neither image= nor task_definition= is given)" },
  task_definition = { type = "string", help = "the version as a task definition instead: family, family:revision or ARN" },
  cluster = { type = "string", default = "production", help = "the ECS cluster" },
  service = { type = "string", default = "api", help = "the service to update" },
  container = { type = "string", default = "api", help = "the container whose image changes" },
  target_group = { type = "string", default = "api-stable", help = "the target group whose 5xx rate is gated" },
  timeout = { type = "duration", default = "20m", help = "how long the update may take" },
  bake = { type = "duration", default = "2m", help = "how long the gates measure after the update" },
}
local report = rollout.rolling {
  cluster = a.cluster, service = a.service,
  image = a.image or (not a.task_definition and "api:v2" or nil), task_definition = a.task_definition,
  container = a.container,
  circuit_breaker = true, timeout = a.timeout, bake = a.bake,
  gates = { gate.alb_5xx_rate { target_group = a.target_group, below = 1.0 } },
}
print(string.format("rolling: %s, %s runs %s", report.status, a.service,
  report.task_definition:match("task%-definition/(.+)$")))
