--[[
The simulated AWS CodeDeploy: applications, deployment configs, deployment
groups and ECS blue/green deployments on the world's virtual clock. This file
is the service module the simulator loads (`{ name, init, tick, ops }`); the
parts:
  records.lua      the state, constants, look-ups, views of ECS and ELBv2
  flow.lua         the deployment state machine (the lifecycle below)
  apps.lua         applications, deployment configs, deployment groups
  deployments.lua  deployment operations (create, read, targets, continue/stop, hooks)
  appspec.lua      AppSpec files (YAML subset or JSON) and their ECS fields

Lifecycle (AWS's order for ECS):
  BeforeInstall, Install (create the green task set, wait until its target
  group has desiredCount healthy targets), AfterInstall, AllowTestTraffic
  (test listeners -> green), AfterAllowTestTraffic, [Ready wait],
  BeforeAllowTraffic, AllowTraffic (prod listeners shifted per the config),
  AfterAllowTraffic (green made primary once it has 100%), then the
  termination wait (status stays InProgress, instanceTerminationWaitTimeStarted
  true) and the blue task set is deleted -> Succeeded.

Lambda hooks cannot run here. Each hook gets a lifecycleEventHookExecutionId,
shown in the event's diagnostics.message as "lifecycleEventHookExecutionId=<id>"
(GetDeploymentTarget / BatchGetDeploymentTargets) and by
M.hook_executions(world, deployment_id). What the "Lambda" does comes from the
scenario: `codedeploy = { hooks = P }` (or top-level `hooks = P`), where P is a
policy or a table { [function_name] = policy, ["*"] = policy }:
  "succeed" (default: rehearsals work without Lambdas), "fail",
  "wait" (until PutLifecycleEventHookExecutionStatus, or the hook timeout),
  a duration ("30s", or seconds) = succeed after that long.
Other scenario settings under `codedeploy`: hook_timeout (default 60m, AWS's
one-hour hook limit), install_timeout (default 60m: AWS's Install step gives
up after an hour; the deployment then fails with ECS_UPDATE_ERROR).
]]
local R = require "ecsplay.sim.codedeploy.records"
local flow = require "ecsplay.sim.codedeploy.flow"
local apps = require "ecsplay.sim.codedeploy.apps"
local deployments = require "ecsplay.sim.codedeploy.deployments"

local M = { name = "codedeploy" }

function M.init(world)
  return R.new_state()
end

M.tick = flow.tick

-- Simulator-only: the hook executions of a deployment (ids for PutLifecycleEventHookExecutionStatus).
function M.hook_executions(world, deployment_id)
  local d = R.state(world).deployments[deployment_id]
  local out = {}
  for _, e in ipairs(d and d.events or {}) do
    if e.hook_id then
      out[#out + 1] = { lifecycleEventName = e.name, functionName = e.fn,
                        lifecycleEventHookExecutionId = e.hook_id, status = e.status }
    end
  end
  return out
end

M.ops = {}
for _, part in ipairs({ apps, deployments }) do
  for name, fn in pairs(part.ops) do M.ops[name] = fn end
end

return M
