-- lint fixture: values known only when the playbook runs are never reported;
-- the literal mistakes next to them are
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local a = ecsplay.params {
  strategy = { type = "string", default = "CANARY" },
  image = { type = "string" },
  task_definition = { type = "string" },
  bake = { type = "duration", default = "3m" },
}
rollout.ecs_native {
  service = "api",
  image = a.image or (not a.task_definition and "api:v2" or nil), task_definition = a.task_definition,
  strategy = a.strategy,
  canary = a.strategy == "CANARY" and { percent = 10, bake = "1m" } or nil,
  linear = a.strategy == "LINEAR" and { step = 25, bake = "1m" } or nil,
  bake = a.bake, interval = "1m", pause_at = { "PRODUCTION_TRAFFIC_SHIF" },
  gates = function(green) return { gate.alb_5xx_rate { target_group = green.target_group, below = 1.0 } } end,
}
rollout.canary(a)
rollout.canary { image = a.image, stable = { service = a.service, target_groop = "api-stable" } }
