--[[
Undo actions: data, not closures, so they can be written to the run
journal and carried out by `ecsplay rollback JOURNAL` in another process after
a kill -9. Each action sets a state (it does not toggle one), so running it
twice, or for a change that never happened, is harmless.

  { op = "set_weights", point = {kind=, arn=}, weights = {[tg_arn]=w} }
  { op = "update_service", cluster=, service=, taskDefinition=?, desiredCount=? }
  { op = "stop_codedeploy", deploymentId= }
  { op = "stop_service_deployment", serviceDeploymentArn= }
  { op = "delete_task_set", cluster=, service=, taskSet= }

M.undo(entries, hooks) carries out a stack of { action = } entries through
ecsplay.undo, the one undo loop: a rollout's rollback (rollout/run.lua) and
`ecsplay rollback JOURNAL` (rollout/journal.lua) both use it.
]]
local sched = require "ecsplay.sched"
local errors = require "ecsplay.errors"
local undo = require "ecsplay.undo"
local ecs = require "ecsplay.ecs"
local codedeploy = require "ecsplay.codedeploy"
local traffic = require "ecsplay.rollout.traffic"
local ecs_util = require "ecsplay.rollout.ecs_util"
local tables = require "ecsplay.util.tables"

local M = {}

local function describe(a)
  if a.op == "set_weights" then
    local parts = {}
    for _, arn in ipairs(tables.keys(a.weights)) do
      parts[#parts + 1] = ecs_util.tg_name(arn) .. "=" .. a.weights[arn]
    end
    return "traffic back to " .. table.concat(parts, " ")
  elseif a.op == "update_service" then
    local what = {}
    if a.taskDefinition then what[#what + 1] = "task definition " .. ecs_util.short(a.taskDefinition) end
    -- counts read back from a journal are JSON floats: print 0, not 0.0
    if a.desiredCount then what[#what + 1] = "desired count " .. string.format("%d", a.desiredCount) end
    return "service " .. a.service .. " back to " .. table.concat(what, ", ")
  elseif a.op == "stop_codedeploy" then
    return "stop CodeDeploy deployment " .. a.deploymentId .. " with rollback"
  elseif a.op == "stop_service_deployment" then
    return "roll back ECS service deployment " .. a.serviceDeploymentArn
  elseif a.op == "delete_task_set" then
    return "delete task set " .. a.taskSet
  end
  return a.op
end
M.describe = describe

local apply = {}

function apply.set_weights(a)
  traffic.set(a.point, a.weights)
end

function apply.update_service(a)
  ecs.update_service { cluster = a.cluster, service = a.service,
    taskDefinition = a.taskDefinition, desiredCount = a.desiredCount }
end

function apply.stop_codedeploy(a)
  local info = codedeploy.get_deployment({ deploymentId = a.deploymentId }).deploymentInfo
  if info.status == "Succeeded" or info.status == "Failed" or info.status == "Stopped" then
    if info.status == "Succeeded" then
      error(errors.new("rollback", { code = "AlreadySucceeded", message = "deployment " .. a.deploymentId
        .. " already succeeded; CodeDeploy cannot roll it back by stopping it" }), 0)
    end
    return
  end
  codedeploy.stop_deployment { deploymentId = a.deploymentId, autoRollbackEnabled = true }
  for _ = 1, 120 do
    info = codedeploy.get_deployment({ deploymentId = a.deploymentId }).deploymentInfo
    if info.status == "Stopped" or info.status == "Failed" then return end
    sched.sleep(5)
  end
  error(errors.new("waiter", { code = "Timeout",
    message = "deployment " .. a.deploymentId .. " did not stop in 10 minutes" }), 0)
end

-- Idempotent: a deployment already rolled back or stopped is left alone; a
-- finished one cannot be rolled back this way (the update_service undo
-- recorded before it then puts the old task definition back). Waits until
-- ECS reports the rollback done.
function apply.stop_service_deployment(a)
  local function status()
    local res = ecs.describe_service_deployments { serviceDeploymentArns = { a.serviceDeploymentArn } }
    local sd = res.serviceDeployments and res.serviceDeployments[1]
    return sd and sd.status, sd
  end
  local st = status()
  if st == nil or st == "ROLLBACK_SUCCESSFUL" or st == "STOPPED" then return end
  if st == "SUCCESSFUL" then return end
  if st == "ROLLBACK_FAILED" then
    error(errors.new("rollback", { message = "ECS could not roll back " .. a.serviceDeploymentArn }), 0)
  end
  if st == "PENDING" or st == "IN_PROGRESS" then
    ecs.stop_service_deployment { serviceDeploymentArn = a.serviceDeploymentArn, stopType = "ROLLBACK" }
  end
  for _ = 1, 120 do
    local s2, sd = status()
    if s2 == "ROLLBACK_SUCCESSFUL" or s2 == "STOPPED" then return end
    if s2 == "ROLLBACK_FAILED" then
      error(errors.new("rollback", { message = "ECS could not roll back " .. a.serviceDeploymentArn
        .. ": " .. tostring(sd.statusReason) }), 0)
    end
    sched.sleep(5)
  end
  error(errors.new("waiter", { code = "Timeout", message = "service deployment " .. a.serviceDeploymentArn
    .. " did not finish rolling back in 10 minutes" }), 0)
end

function apply.delete_task_set(a)
  ecs.delete_task_set { cluster = a.cluster, service = a.service,
    taskSet = a.taskSet, force = true }
end

--[[ Carries out one undo action. A rollback must not give up on the first
     throttle or blip: giving up leaves traffic half-shifted for a human to fix,
     so while the error is a transient one (throttling, 5xx, a dropped
     connection: the SDK's `retryable`) the action is tried again with capped
     backoff for up to M.retry_budget seconds; any other error gets `tries`
     tries (default 5). ]]
M.retry_budget = 300

function M.run(a, tries)
  local fn = apply[a.op]
  if not fn then
    error(errors.new("journal", { code = "BadJournal", message = "unknown undo action " .. tostring(a.op) }), 0)
  end
  tries = tries or 5
  local deadline = sched.now() + M.retry_budget
  local last
  local attempt = 0
  while true do
    attempt = attempt + 1
    local ok, err = pcall(fn, a)
    if ok then return true end
    last = err
    if errors.is(err, "AlreadySucceeded") then break end
    -- a second Ctrl-C does not stop a rollback: it counts as a blip and the action is tried again
    local transient = sched.is_interrupt(err) or (type(err) == "table" and err.retryable == true)
    if not transient and attempt >= tries then break end
    local wait = math.min(2 ^ math.min(attempt, 5), 20)
    if sched.now() + wait > deadline then break end
    sched.sleep(wait)
  end
  error(last, 0)
end

--[[ Carries out `entries` ({ action = }, oldest first) newest first through
     ecsplay.undo. hooks: on_done(entry), on_failed(entry, err, text),
     skip(entry) → true to count an entry done without running it. A failed
     traffic move stops the loop: scaling down or replacing what still
     receives traffic would make things worse, so the rest is left (and
     reported) for a human or a second `ecsplay rollback`. Returns
     failures, left as undo.run does. ]]
function M.undo(entries, hooks)
  hooks = hooks or {}
  return undo.run(entries, {
    exec = function(entry)
      if hooks.skip and hooks.skip(entry) then return end
      M.run(entry.action)
    end,
    describe = function(entry) return describe(entry.action) end,
    on_done = hooks.on_done,
    on_failed = hooks.on_failed,
    stop = function(entry) return entry.action.op == "set_weights" end,
  })
end

--[[ What a failed rollback leaves, as text for RollbackFailed's `left`: each
     failure, then each entry not tried after the loop stopped. ]]
function M.left_text(failures, left)
  local out = undo.texts(failures)
  for i = 2, #left do out[#out + 1] = describe(left[i].action) .. " (not tried)" end
  return table.concat(out, "; ")
end

return M
