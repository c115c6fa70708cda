-- ECS's own canary deployment of api (deploymentConfiguration.strategy CANARY): ECS shifts 10 %
-- to the alternate target group, pauses (a PAUSE lifecycle hook) for ecsplay's gates, then
-- shifts the rest. The default world's api has no advancedConfiguration yet, so this sets it:
-- alternate target group api-canary, the priority-10 rule of the :443 listener.
--   ecsplay --simulate playbooks/ecs_native.lua                  deploys api:v2
--   ecsplay --simulate playbooks/ecs_native.lua image=api:slow   rolls back via StopServiceDeployment
--   ecsplay --simulate playbooks/ecs_native.lua strategy=LINEAR
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local a = ecsplay.args
local strategy = a.strategy or "CANARY"
local report = rollout.ecs_native {
  cluster = a.cluster or "production", service = a.service or "api",
  image = a.image or (not a.task_definition and "api:v2" or nil), task_definition = a.task_definition,
  container = a.container or "api",
  strategy = strategy,
  canary = strategy == "CANARY" and { percent = tonumber(a.percent or 10), bake = "1m" } or nil,
  linear = strategy == "LINEAR" and { step = tonumber(a.step or 25), bake = "1m" } or nil,
  alternate_target_group = a.alternate or "api-canary", rule = a.rule,
  pause_at = { "PRODUCTION_TRAFFIC_SHIFT" }, bake = a.bake or "3m", interval = "1m",
  gates = function(green)
    return {
      gate.alb_5xx_rate { target_group = green.target_group, below = 1.0 },
      gate.alb_latency { target_group = green.target_group, p = 99, below_ms = 300 },
    }
  end,
}
print(string.format("ecs_native: %s, %s runs %s after %d pause(s)", report.status, a.service or "api",
  report.task_definition:match("task%-definition/(.+)$"), #report.pauses))
