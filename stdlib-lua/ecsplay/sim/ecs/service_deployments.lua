--[[
Service deployments and service revisions of the simulated ECS: the records
deploy.lua/native.lua keep (sd = { arn, svc, status, stage, target, source_deps,
cb, alarms, hooks, rollback, ... }) and the operations that read and steer them:
DescribeServiceDeployments, ListServiceDeployments, StopServiceDeployment,
ContinueServiceDeployment, DescribeServiceRevisions.
Stop and continue only record the request; the service's next tick acts on it
(as AWS answers first and acts asynchronously).
]]
local U = require "ecsplay.sim.ecs.util"
local P = require "ecsplay.sim.ecs.deploy"

local SD = {}

local function rev_summary(world, svc, rev, native_role, sd)
  local requested, running, pending = 0, 0, 0
  for _, d in ipairs(svc.deployments) do
    if d.rev == rev then
      local c = P.counts(d)
      requested = requested + d.desired
      running = running + c.running
      pending = pending + c.pending
    end
  end
  local out = { arn = rev.arn, requestedTaskCount = requested, runningTaskCount = running,
    pendingTaskCount = pending }
  local dep = sd.target_dep
  if dep and dep.native then
    local w = dep.native.weight or 0
    local tw = dep.native.test_weight or 0
    if native_role == "target" then
      out.requestedProductionTrafficWeight = w
      out.requestedTestTrafficWeight = tw
    else
      out.requestedProductionTrafficWeight = 100 - w
      out.requestedTestTrafficWeight = 100 - tw
    end
  end
  return out
end

function SD.describe(world, sd)
  local svc = sd.svc
  local sources = {}
  for _, d in ipairs(sd.source_deps or {}) do
    sources[#sources + 1] = rev_summary(world, svc, d.rev, "source", sd)
  end
  local hooks = {}
  for _, h in ipairs(sd.hooks) do
    hooks[#hooks + 1] = { hookId = h.hookId, targetType = h.targetType, targetArn = h.targetArn,
      status = h.status, expiresAt = h.expiresAt, timeoutAction = h.timeoutAction }
  end
  return {
    serviceDeploymentArn = sd.arn, serviceArn = svc.arn, clusterArn = svc.cluster.arn,
    createdAt = sd.created_at, startedAt = sd.started_at, finishedAt = sd.finished_at,
    stoppedAt = sd.stopped_at, updatedAt = sd.updated_at,
    sourceServiceRevisions = sources,
    targetServiceRevision = rev_summary(world, svc, sd.target, "target", sd),
    status = sd.status, statusReason = sd.status_reason,
    lifecycleStage = sd.stage,
    lifecycleHookDetails = hooks,
    deploymentConfiguration = U.copy(sd.dc),
    rollback = U.copy(sd.rollback),
    deploymentCircuitBreaker = U.copy(sd.cb),
    alarms = U.copy(sd.alarms),
  }
end

local function find(world, arn)
  local sd = U.st(world).sds[arn]
  if not sd then
    world:fail("ServiceDeploymentNotFoundException", "The service deployment does not exist.")
  end
  return sd
end

SD.ops = {}

--[[ DescribeServiceDeployments and DescribeServiceRevisions: by ARN alone (the parameter
     `param`), up to 20 at a time, from the state table `index` keyed by ARN; each described
     by `describe`, answered under `out` with the failures. ]]
local function describe_by_arn(param, index, describe, out)
  return function(world, input)
    local arns = input[param]
    U.check_refs(world, arns, param, 20)
    local by_arn = U.st(world)[index]
    local found, failures = U.describe_each(arns, function(arn) return by_arn[arn] end,
      function(x) return describe(world, x) end)
    return { [out] = found, failures = failures }
  end
end

SD.ops.DescribeServiceDeployments = describe_by_arn("serviceDeploymentArns", "sds",
  function(world, sd) return SD.describe(world, sd) end, "serviceDeployments")

function SD.ops.ListServiceDeployments(world, input)
  local c = U.cluster(world, input.cluster)
  local svc = U.service(world, c, input.service, true)
  local want
  if input.status and #input.status > 0 then
    want = {}
    for _, s in ipairs(input.status) do want[s] = true end
  end
  local ca = input.createdAt or {}
  local list = {}
  for i = #svc.sds, 1, -1 do
    local sd = svc.sds[i]
    if (not want or want[sd.status]) and (not ca.before or sd.created_at < ca.before)
      and (not ca.after or sd.created_at > ca.after) then
      list[#list + 1] = {
        serviceDeploymentArn = sd.arn, serviceArn = svc.arn, clusterArn = c.arn,
        startedAt = sd.started_at, createdAt = sd.created_at, finishedAt = sd.finished_at,
        targetServiceRevisionArn = sd.target.arn, status = sd.status, statusReason = sd.status_reason,
      }
    end
  end
  return U.list_answer(list, input, "serviceDeployments")
end

local ACTIVE_SD = { PENDING = true, IN_PROGRESS = true }

function SD.ops.StopServiceDeployment(world, input)
  local sd = find(world, input.serviceDeploymentArn)
  if not ACTIVE_SD[sd.status] then
    world:fail("ConflictException",
      string.format("The service deployment is in status %s and cannot be stopped.", sd.status))
  end
  local stop_type = input.stopType or "ROLLBACK"
  local dep = sd.target_dep
  dep.stop_request = stop_type
  sd.status = stop_type == "ROLLBACK" and "ROLLBACK_REQUESTED" or "STOP_REQUESTED"
  sd.updated_at = world.now
  return { serviceDeploymentArn = sd.arn }
end

function SD.ops.ContinueServiceDeployment(world, input)
  local sd = find(world, input.serviceDeploymentArn)
  local hook
  for _, h in ipairs(sd.hooks) do if h.hookId == input.hookId then hook = h end end
  if not hook then
    world:fail("InvalidParameterException", string.format(
      "The lifecycle hook %s does not exist in service deployment %s.", tostring(input.hookId), sd.arn))
  end
  if hook.status ~= "AWAITING_ACTION" or not ACTIVE_SD[sd.status] then
    world:fail("InvalidParameterException", string.format(
      "The lifecycle hook %s is not awaiting action (status %s).", hook.hookId, hook.status))
  end
  hook.status = "SUCCEEDED"
  hook.action = input.action or "CONTINUE"
  sd.updated_at = world.now
  return { serviceDeploymentArn = sd.arn }
end

SD.ops.DescribeServiceRevisions = describe_by_arn("serviceRevisionArns", "revisions", P.describe_revision,
  "serviceRevisions")

return SD
