-- A playbook (not a scenario) for the interrupt and journal tests: playbooks/canary.lua with
-- wall-clock-friendly timings. Against `ecsplay sim serve --speed S` the client's clock is the
-- real one while the world runs S times faster, so CloudWatch windows measured on the client's
-- clock do not line up with the world's minutes; the alarm gate (a state, not a window) does.
--   ecsplay --endpoint-url http://127.0.0.1:N tests/scenarios/interrupt_canary.lua bake=3s
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local a = ecsplay.args
local report = rollout.canary {
  cluster = "production", image = a.image or "api:v2", container = "api",
  stable = { service = "api", target_group = "api-stable" },
  canary = { service = "api-canary", target_group = "api-canary" },
  steps = { 10, 25, 50, 100 }, bake = a.bake or "3s", interval = a.interval or "1s",
  gates = { gate.alarm { "api-5xx-high" } },
}
print(string.format("canary: %s, %s promoted in %d steps", report.status, a.image or "api:v2", #report.steps))
