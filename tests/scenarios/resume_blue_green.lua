-- A playbook (not a scenario) for tests/lua/test_rollout_resume.lua: playbooks/blue_green.lua with
-- wall-clock-friendly timings against `ecsplay sim serve --speed S` (the alarm gate is a state,
-- so it does not depend on the client's clock lining up with the world's minutes).
--   ecsplay --endpoint-url http://127.0.0.1:N tests/scenarios/resume_blue_green.lua keep_blue=3s
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local a = ecsplay.args
local report = rollout.blue_green {
  cluster = "production", image = a.image or "api:v2", container = "api",
  blue = { service = "api", target_group = "api-stable" },
  green = { service = "api-canary", target_group = "api-canary" },
  keep_blue = a.keep_blue or "3s", interval = a.interval or "1s",
  gates = { gate.alarm { "api-5xx-high" } },
}
print(string.format("blue_green: %s, %s now serves %s", report.status, report.serving,
  report.task_definition:match("task%-definition/(.+)$")))
