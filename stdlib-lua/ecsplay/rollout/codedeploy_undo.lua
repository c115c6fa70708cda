--[[
The CodeDeploy deployments a rollout creates: marked so they can be found
again, and undone (the undo action `stop_codedeploy`, rollout/actions.lua).

Intent before effect: rollout/codedeploy.lua journals the undo before it
calls CreateDeployment, when the deployment's id is not known yet. The
deployment's description carries the run's marker ("ecsplay run <run id>"),
so a kill at any instant leaves nothing untracked: M.find lists the group's
deployments (newest first) and picks the one with the marker, for a resumed
run (which adopts it instead of creating another) and for the undo.

  { op = "stop_codedeploy", deploymentId = id?, application=, group=, marker=,
    revert = { taskDefinition=, container=, port= }? }

M.stop(action): a deployment still in progress is stopped with rollback
(CodeDeploy moves the traffic back to blue itself) and waited for; one that
failed or was stopped is left alone; one never created is nothing to undo.
One that succeeded is reverted: a new deployment of `revert.taskDefinition`
(all at once: CodeDeploy starts the previous version, waits until it is
healthy, then moves the traffic and only then removes the new version),
followed to Succeeded; it is marked too, so a second `ecsplay rollback`
follows the same revert instead of starting another. Without `revert` (a
journal of an older ecsplay), or when a newer deployment followed, it
refuses (bad input, code AlreadySucceeded: nothing changed) and says how
to revert.
]]
local duration = require "ecsplay.duration"
local sched = require "ecsplay.sched"
local json = require "ecsplay.json"
local errors = require "ecsplay.errors"
local log = require "ecsplay.log"
local crypto = require "ecsplay.core.crypto"
local codedeploy = require "ecsplay.codedeploy"

local M = {}

-- CodeDeploy's limit on a deployment's description.
local DESCRIPTION_MAX = 100
-- How many of the group's newest deployments M.find reads.
local SCAN = 25
local ACTIVE = { Created = true, Queued = true, InProgress = true, Ready = true, Baking = true }

M.REVERT_CONFIG = "CodeDeployDefault.ECSAllAtOnce"
M.revert_timeout = 3600
M.poll = 15

function M.marker(run_id) return "ecsplay run " .. run_id end

local function revert_marker(marker) return (marker:gsub("^ecsplay run ", "ecsplay revert of ")) end

-- base, then the marker in parentheses, within CodeDeploy's 100 characters.
function M.description(base, marker)
  local room = DESCRIPTION_MAX - #marker - 3
  if #base > room then base = base:sub(1, math.max(room - 3, 0)) .. "..." end
  return base .. " (" .. marker .. ")"
end

-- The AppSpec of an ECS deployment, as JSON.
function M.appspec(task_definition, container, port)
  return json.encode {
    version = 0.0,
    Resources = { { TargetService = { Type = "AWS::ECS::Service", Properties = {
      TaskDefinition = task_definition,
      LoadBalancerInfo = { ContainerName = container, ContainerPort = port },
    } } } },
  }
end

-- The revision of an AppSpecContent deployment.
function M.revision(task_definition, container, port)
  local content = M.appspec(task_definition, container, port)
  return { revisionType = "AppSpecContent", appSpecContent = { content = content,
    sha256 = crypto.sha256_hex(content) } }
end

--[[ The id of the newest deployment of application/group whose description
     carries `marker` (among the SCAN newest), or nil. ]]
function M.find(application, group, marker)
  local ids = codedeploy.list_deployments({ applicationName = application,
    deploymentGroupName = group }).deployments or {}
  local batch = {}
  for i = 1, math.min(#ids, SCAN) do batch[i] = ids[i] end
  if #batch == 0 then return nil end
  local infos = codedeploy.batch_get_deployments({ deploymentIds = batch }).deploymentsInfo or {}
  local by_id = {}
  for _, info in ipairs(infos) do by_id[info.deploymentId] = info end
  for _, id in ipairs(batch) do
    local d = by_id[id]
    if d and type(d.description) == "string" and d.description:find(marker, 1, true) then return id end
  end
  return nil
end

function M.describe(a)
  local what = a.deploymentId or ("of " .. tostring(a.marker))
  return "stop CodeDeploy deployment " .. what .. " with rollback (or revert it, once it has succeeded)"
end

local function get(id) return codedeploy.get_deployment({ deploymentId = id }).deploymentInfo end

-- Follows deployment `id` until `done(status)`; raises on Failed/Stopped (unless done says so) or timeout.
local function follow(id, done, timeout, what)
  local deadline = sched.now() + timeout
  while true do
    local info = get(id)
    if done(info.status) then return info end
    if info.status == "Failed" or info.status == "Stopped" then
      local e = info.errorInformation or {}
      error(errors.new("rollback", { code = "RevertFailed", message = string.format("%s %s %s: %s%s", what,
        id, info.status:lower(), e.code and (e.code .. ": ") or "", e.message or "no error information") }), 0)
    end
    if sched.now() >= deadline then
      error(errors.new("waiter", { code = "Timeout", message = string.format("%s %s not finished after %s "
        .. "(status %s)", what, id, duration.format(timeout), tostring(info.status)) }), 0)
    end
    sched.sleep(M.poll)
  end
end

local function refuse(message)
  error(errors.new("bad_input", { code = "AlreadySucceeded", message = message }), 0)
end

local function short(td) return tostring(td):match("task%-definition/(.+)$") or tostring(td) end

-- A succeeded deployment `id`: deploy the previous version again (see the file comment).
function M.revert(a, id)
  local how = "to revert, deploy the previous task definition again (a playbook run with task_definition=...)"
  if not (a.revert and a.revert.taskDefinition and a.application and a.group and a.marker) then
    refuse(string.format("CodeDeploy deployment %s already succeeded: stopping it cannot undo it, and the "
      .. "journal does not record the previous version; %s", id, how))
  end
  local mark = revert_marker(a.marker)
  local rid = M.find(a.application, a.group, mark)
  if not rid then
    local newest = (codedeploy.list_deployments({ applicationName = a.application,
      deploymentGroupName = a.group }).deployments or {})[1]
    if newest ~= id then
      refuse(string.format("CodeDeploy deployment %s already succeeded and deployment %s came after it: "
        .. "not reverting over a newer deployment; %s", id, tostring(newest), how))
    end
    rid = codedeploy.create_deployment({ applicationName = a.application, deploymentGroupName = a.group,
      deploymentConfigName = M.REVERT_CONFIG,
      description = M.description("ecsplay: back to " .. short(a.revert.taskDefinition), mark),
      revision = M.revision(a.revert.taskDefinition, a.revert.container, a.revert.port) }).deploymentId
  end
  log.event("warn", "undo", string.format("CodeDeploy deployment %s had succeeded: reverting to %s with "
    .. "deployment %s (the previous version healthy first, then the traffic, then the new version removed)",
    id, short(a.revert.taskDefinition), rid))
  follow(rid, function(s) return s == "Succeeded" end, M.revert_timeout, "revert deployment")
end

function M.stop(a)
  local id = a.deploymentId
  if not id and a.marker then id = M.find(a.application, a.group, a.marker) end
  if not id then return end -- never created: nothing to undo
  local info = get(id)
  if info.status == "Succeeded" then return M.revert(a, id) end
  if not ACTIVE[info.status] then return end
  codedeploy.stop_deployment { deploymentId = id, autoRollbackEnabled = true }
  info = follow(id, function(s) return s == "Stopped" or s == "Failed" or s == "Succeeded" end, 600, "deployment")
  -- it finished before the stop reached it
  if info.status == "Succeeded" then return M.revert(a, id) end
end

return M
