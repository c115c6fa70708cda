-- A playbook (not a scenario) for tests/lua/test_rollout_resume.lua: playbooks/ecs_native.lua with
-- wall-clock-friendly timings against `ecsplay sim serve --speed S`: ECS's CANARY strategy pauses
-- at PRODUCTION_TRAFFIC_SHIFT (10 % on the alternate group, then 100 %), ecsplay bakes the alarm
-- gate `bake` at each pause; the hook timeout is long enough not to fire at speed 60.
--   ecsplay --endpoint-url http://127.0.0.1:N tests/scenarios/resume_ecs_native.lua bake=3s
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local a = ecsplay.args
local report = rollout.ecs_native {
  cluster = "production", service = "api", image = a.image or "api:v2", container = "api",
  strategy = "CANARY", canary = { percent = 10, bake = "1m" },
  alternate_target_group = "api-canary", pause_at = { "PRODUCTION_TRAFFIC_SHIFT" },
  hook_timeout = "600m", bake = a.bake or "3s", interval = a.interval or "1s", poll = "1s",
  gates = { gate.alarm { "api-5xx-high" } },
}
print(string.format("ecs_native: %s, api runs %s after %d pause(s)", report.status,
  report.task_definition:match("task%-definition/(.+)$"), #report.pauses))
