-- ECS's own canary deployment of api (deploymentConfiguration.strategy CANARY): ECS shifts 10 %
-- to the alternate target group, pauses (a PAUSE lifecycle hook) for ecsplay's gates, then
-- shifts the rest. The default world's api has no advancedConfiguration yet, so this sets it:
-- alternate target group api-canary, the priority-10 rule of the :443 listener.
--   ecsplay --simulate playbooks/ecs_native.lua                  deploys api:v2
--   ecsplay --simulate playbooks/ecs_native.lua image=api:slow   rolls back via StopServiceDeployment
--   ecsplay --simulate playbooks/ecs_native.lua strategy=LINEAR
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local a = ecsplay.params {
  image = { type = "string", help = "the image to roll out (api:v2 when neither image= nor task_definition= is given)" },
  task_definition = { type = "string", help = "the version as a task definition instead: family, family:revision or ARN" },
  cluster = { type = "string", default = "production", help = "the ECS cluster" },
  service = { type = "string", default = "api", help = "the service to deploy" },
  container = { type = "string", default = "api", help = "the container whose image changes" },
  strategy = { type = "string", default = "CANARY", one_of = { "CANARY", "LINEAR", "BLUE_GREEN" },
    help = "ECS's deployment strategy" },
  percent = { type = "number", default = 10, help = "CANARY: percent of the traffic shifted first" },
  step = { type = "number", default = 25, help = "LINEAR: percent of the traffic shifted at each step" },
  alternate = { type = "string", default = "api-canary", help = "the alternate target group, when the service has none" },
  rule = { type = "string", help = "the production listener rule ARN, when the service has none" },
  bake = { type = "duration", default = "3m", help = "how long the gates measure at each pause" },
}
local strategy = a.strategy
local report = rollout.ecs_native {
  cluster = a.cluster, service = a.service,
  image = a.image or (not a.task_definition and "api:v2" or nil), task_definition = a.task_definition,
  container = a.container,
  strategy = strategy,
  canary = strategy == "CANARY" and { percent = a.percent, bake = "1m" } or nil,
  linear = strategy == "LINEAR" and { step = a.step, bake = "1m" } or nil,
  alternate_target_group = a.alternate, rule = a.rule,
  pause_at = { "PRODUCTION_TRAFFIC_SHIFT" }, bake = a.bake, interval = "1m",
  gates = function(green)
    return {
      gate.alb_5xx_rate { target_group = green.target_group, below = 1.0 },
      gate.alb_latency { target_group = green.target_group, p = 99, below_ms = 300 },
    }
  end,
}
print(string.format("ecs_native: %s, %s runs %s after %d pause(s)", report.status, a.service,
  report.task_definition:match("task%-definition/(.+)$"), #report.pauses))
