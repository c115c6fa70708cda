-- ECS's own rolling update of api, watched to completion; the circuit breaker's rollback is
-- reported as a failure (exit 1).
--   ecsplay --simulate playbooks/rolling.lua                 deploys api:v2
--   ecsplay --simulate playbooks/rolling.lua image=api:bad   ECS rolls back → exit 1
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local a = ecsplay.args
local report = rollout.rolling {
  cluster = a.cluster or "production", service = a.service or "api",
  image = a.image or (not a.task_definition and "api:v2" or nil), task_definition = a.task_definition,
  container = a.container or "api",
  circuit_breaker = true, timeout = a.timeout or "20m", bake = a.bake or "2m",
  gates = { gate.alb_5xx_rate { target_group = a.target_group or "api-stable", below = 1.0 } },
}
print(string.format("rolling: %s, %s runs %s", report.status, a.service or "api",
  report.task_definition:match("task%-definition/(.+)$")))
