-- Blue/green of api across two services: the idle one (green) gets the new version, then
-- production swaps to it; blue is kept for `keep_blue` and then scaled to zero. The side with
-- all the traffic is blue, so running this twice deploys back and forth.
--   ecsplay --simulate playbooks/blue_green.lua               swaps api → api-canary with api:v2
--   ecsplay --simulate playbooks/blue_green.lua image=api:slow swaps back at once (exit 1)
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local a = ecsplay.params {
  image = { type = "string", help = "the image to roll out (api:v2 when neither image= nor task_definition= is given)" },
  task_definition = { type = "string", help = "the version as a task definition instead: family, family:revision or ARN" },
  cluster = { type = "string", default = "production", help = "the ECS cluster" },
  blue = { type = "string", default = "api", help = "one of the two services" },
  blue_tg = { type = "string", default = "api-stable", help = "blue's target group" },
  green = { type = "string", default = "api-canary", help = "the other service" },
  green_tg = { type = "string", default = "api-canary", help = "green's target group" },
  rule = { type = "string", help = "the production listener rule or listener ARN (found when not given)" },
  test_listener = { type = "string", help = "a listener or rule ARN pointed at the new side first (no test phase when not given)" },
  container = { type = "string", default = "api", help = "the container whose image changes" },
  keep_blue = { type = "duration", default = "5m", help = "how long the old side keeps running while the gates measure" },
}
local report = rollout.blue_green {
  cluster = a.cluster,
  blue = { service = a.blue, target_group = a.blue_tg },
  green = { service = a.green, target_group = a.green_tg },
  rule = a.rule, test_listener = a.test_listener,   -- the default world has no test route for api
  image = a.image or (not a.task_definition and "api:v2" or nil), task_definition = a.task_definition,
  container = a.container,
  keep_blue = a.keep_blue, interval = "1m",
  gates = function(green)  -- green: whichever side receives the new version this time
    return {
      gate.alb_5xx_rate { target_group = green.target_group, below = 1.0 },
      gate.alb_latency { target_group = green.target_group, p = 99, below_ms = 300 },
    }
  end,
}
print(string.format("blue_green: %s, %s now serves %s", report.status, report.serving,
  report.task_definition:match("task%-definition/(.+)$")))
