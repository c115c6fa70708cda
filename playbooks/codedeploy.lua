-- CodeDeploy blue/green of app (deployment group app-dg): CodeDeploy shifts 10 % for 5
-- minutes, then the rest; ecsplay's gates watch the green target group and stop the
-- deployment with rollback when one fails.
--   ecsplay --simulate playbooks/codedeploy.lua                 deploys app:v2
--   ecsplay --simulate=tests/scenarios/rollout_app_traffic.lua playbooks/codedeploy.lua \
--       image=app:flaky metrics=on                               stops it, CodeDeploy rolls back
--   ecsplay --simulate playbooks/codedeploy.lua config=linear    custom 20 %-a-minute linear config
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local a = ecsplay.params {
  image = { type = "string", help = "the image to roll out (app:v2 when neither image= nor task_definition= is given)" },
  task_definition = { type = "string", help = "the version as a task definition instead: family, family:revision or ARN" },
  application = { type = "string", default = "app-deploy", help = "the CodeDeploy application" },
  group = { type = "string", default = "app-dg", help = "the deployment group" },
  container = { type = "string", default = "app", help = "the container whose image changes" },
  port = { type = "integer", default = 8080, help = "the container port behind the load balancer" },
  config = { type = "string", default = "canary",
    help = "canary, linear, custom_canary, or a CodeDeploy deployment config name" },
  metrics = { type = "boolean", default = false, help = "also gate on green's 5xx rate and p99 latency" },
  min_healthy = { type = "integer", default = 3, help = "green's healthy hosts needed" },
}
local configs = {
  canary = "CodeDeployDefault.ECSCanary10Percent5Minutes",
  linear = { linear = { 20, "1m" } },
  custom_canary = { canary = { 25, "3m" } },
}
-- In the built-in default world the api rule (path /*) takes all of the :443 listener's
-- requests, so app-green sees no traffic and ALB metric gates could only be inconclusive:
-- they are on with metrics=on (see tests/scenarios/rollout_app_traffic.lua for a world where
-- app is served), and green's healthy hosts are always checked.
local metrics = a.metrics
local report = rollout.codedeploy {
  application = a.application, group = a.group,
  image = a.image or (not a.task_definition and "app:v2" or nil), task_definition = a.task_definition,
  container = a.container, port = a.port,
  config = configs[a.config] or a.config,
  interval = "1m",
  gates = function(green)  -- green.target_group: the group CodeDeploy shifts traffic to
    local g = { gate.alb_healthy_hosts { target_group = green.target_group,
      at_least = a.min_healthy } }
    if metrics then
      g[#g + 1] = gate.alb_5xx_rate { target_group = green.target_group, below = 1.0 }
      g[#g + 1] = gate.alb_latency { target_group = green.target_group, p = 99, below_ms = 300 }
    end
    return g
  end,
}
print(string.format("codedeploy: %s, deployment %s, app runs %s", report.status, report.deployment_id,
  report.task_definition:match("task%-definition/(.+)$")))
