-- Blue/green of api across two services: the idle one (green) gets the new version, then
-- production swaps to it; blue is kept for `keep_blue` and then scaled to zero. The side with
-- all the traffic is blue, so running this twice deploys back and forth.
--   ecsplay --simulate playbooks/blue_green.lua               swaps api → api-canary with api:v2
--   ecsplay --simulate playbooks/blue_green.lua image=api:slow swaps back at once (exit 1)
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local a = ecsplay.args
local report = rollout.blue_green {
  cluster = a.cluster or "production",
  blue = { service = a.blue or "api", target_group = a.blue_tg or "api-stable" },
  green = { service = a.green or "api-canary", target_group = a.green_tg or "api-canary" },
  rule = a.rule, test_listener = a.test_listener,   -- the default world has no test route for api
  image = a.image or (not a.task_definition and "api:v2" or nil), task_definition = a.task_definition,
  container = a.container or "api",
  keep_blue = a.keep_blue or "5m", interval = "1m",
  gates = function(green)  -- green: whichever side receives the new version this time
    return {
      gate.alb_5xx_rate { target_group = green.target_group, below = 1.0 },
      gate.alb_latency { target_group = green.target_group, p = 99, below_ms = 300 },
    }
  end,
}
print(string.format("blue_green: %s, %s now serves %s", report.status, report.serving,
  report.task_definition:match("task%-definition/(.+)$")))
