--[[
The CodeDeploy operations on deployments: CreateDeployment (the revision's
AppSpec read and checked, sim/codedeploy/appspec.lua), GetDeployment,
BatchGetDeployments, ListDeployments, the deployment's target
(ListDeploymentTargets, GetDeploymentTarget, BatchGetDeploymentTargets, with
ECSTaskSet's "identifer" spelled as the model spells it), and steering one:
ContinueDeployment, StopDeployment, PutLifecycleEventHookExecutionStatus.
The flow itself is sim/codedeploy/flow.lua.
]]
local tables = require "ecsplay.util.tables"
local crypto = require "ecsplay.core.crypto"
local R = require "ecsplay.sim.codedeploy.records"
local flow = require "ecsplay.sim.codedeploy.flow"
local apps = require "ecsplay.sim.codedeploy.apps"
local appspec = require "ecsplay.sim.codedeploy.appspec"

local copy, contains, state = tables.copy, R.contains, R.state
local get_app, get_group, get_config, get_deployment = R.get_app, R.get_group, R.get_config, R.get_deployment

local M = {}
M.ops = {}
local ops = M.ops

-- ---------------------------------------------------------------- creating one

-- The revision's AppSpec, read and checked: the ECS fields (appspec.ecs) or an InvalidRevisionException.
local function read_revision(world, rev)
  if type(rev) ~= "table" then world:fail("RevisionRequiredException", "A revision is required (revisionType AppSpecContent).") end
  local body
  if rev.revisionType == "AppSpecContent" then body = rev.appSpecContent
  elseif rev.revisionType == "String" then body = rev.string
  else
    world:fail("InvalidRevisionException", "ECS deployments take revisionType AppSpecContent (the AppSpec as a string), got " .. tostring(rev.revisionType))
  end
  if type(body) ~= "table" or type(body.content) ~= "string" or body.content == "" then
    world:fail("InvalidRevisionException", "revision.appSpecContent.content is missing: it holds the AppSpec file (YAML or JSON)")
  end
  if body.sha256 and body.sha256 ~= "" then
    local sum = crypto.sha256_hex(body.content)
    if sum ~= body.sha256:lower() then
      world:fail("InvalidRevisionException", "revision.appSpecContent.sha256 does not match the content (sha256 of the content is " .. sum .. ")")
    end
  end
  local doc, where = appspec.parse(body.content)
  if not doc then world:fail("InvalidRevisionException", "The AppSpec content is invalid: " .. where) end
  local spec, err = appspec.ecs(doc, where)
  if not spec then world:fail("InvalidRevisionException", "The AppSpec content is invalid: " .. err) end
  return spec
end

-- CreateDeployment's checks (no active deployment, an ECS config, the description, rollback); returns the config.
local function check_new_deployment(world, input, app, g)
  if g.active then
    world:fail("DeploymentLimitExceededException", "The Deployment Group '" .. g.name .. "' already has an active Deployment '" .. g.active.id .. "'")
  end
  local config_name = input.deploymentConfigName or g.info.deploymentConfigName
  local config = get_config(world, config_name)
  if config.computePlatform ~= app.computePlatform then
    world:fail("InvalidDeploymentConfigNameException", "Deployment configuration " .. config_name .. " is not an " .. app.computePlatform .. " configuration")
  end
  if input.description and #input.description > 100 then
    world:fail("DescriptionTooLongException", "The description is " .. #input.description .. " characters; the limit is 100.")
  end
  local ar = input.autoRollbackConfiguration
  if ar and ar.enabled and (not ar.events or #ar.events == 0) then
    world:fail("InvalidAutoRollbackConfigException", "autoRollbackConfiguration is enabled but lists no events")
  end
  return config_name, config
end

-- A new deployment record: what the group and the request say, frozen at creation.
local function new_deployment(world, input, app, g, config_name, config, spec)
  local info = g.info
  local pair = info.loadBalancerInfo.targetGroupPairInfoList[1]
  local svc = info.ecsServices[1]
  local d = {
    id = "d-" .. world:id(nil, 9):upper(), app = app.applicationName, group = g, group_name = g.name,
    config_name = config_name, config = copy(config),
    status = "Created", target_status = "Pending", creator = "user",
    create_time = world.now, updated = world.now, description = input.description,
    revision = copy(input.revision), previous_revision = copy(g.last_revision), spec = spec,
    auto_rollback = copy(input.autoRollbackConfiguration or info.autoRollbackConfiguration),
    override_alarm = copy(input.overrideAlarmConfiguration),
    alarm_config = copy(input.overrideAlarmConfiguration or info.alarmConfiguration),
    bg = copy(info.blueGreenDeploymentConfiguration), lb = copy(info.loadBalancerInfo),
    style = copy(info.deploymentStyle),
    cluster = svc.clusterName, service = svc.serviceName,
    target_id = svc.clusterName .. ":" .. svc.serviceName,
    target_arn = world:arn("ecs", "service/" .. svc.clusterName .. "/" .. svc.serviceName),
    prod_listeners = copy(pair.prodTrafficRoute.listenerArns),
    test_listeners = copy(pair.testTrafficRoute and pair.testTrafficRoute.listenerArns or {}),
    saved_prod = {}, saved_test = {},
    phase = "start", start_at = world.now + R.START_DELAY, events = {},
  }
  local hooks = {}
  for _, h in ipairs(spec.hooks) do hooks[h.event] = h.fn end
  for i, name in ipairs(R.EVENTS) do d.events[i] = { name = name, status = "Pending", fn = hooks[name] } end
  return d
end

function ops.CreateDeployment(world, input)
  local st = state(world)
  local app = get_app(world, input.applicationName)
  local g = get_group(world, app, input.deploymentGroupName)
  local config_name, config = check_new_deployment(world, input, app, g)
  local spec = read_revision(world, input.revision)
  local d = new_deployment(world, input, app, g, config_name, config, spec)
  st.deployments[d.id] = d
  st.order[#st.order + 1] = d.id
  st.active[#st.active + 1] = d
  g.active = d
  flow.schedule(world, d, d.start_at)
  return { deploymentId = d.id }
end

-- ---------------------------------------------------------------- reading them

local OVERVIEW = { "Pending", "InProgress", "Succeeded", "Failed", "Skipped", "Ready" }

local function deployment_info(d)
  local overview = {}
  for _, k in ipairs(OVERVIEW) do overview[k] = 0 end
  overview[d.target_status] = 1
  return {
    applicationName = d.app, deploymentGroupName = d.group_name, deploymentConfigName = d.config_name,
    deploymentId = d.id, previousRevision = copy(d.previous_revision), revision = copy(d.revision),
    status = d.status, errorInformation = copy(d.error),
    createTime = d.create_time, startTime = d.start_time, completeTime = d.complete_time,
    deploymentOverview = overview, description = d.description, creator = d.creator,
    ignoreApplicationStopFailures = false, updateOutdatedInstancesOnly = false,
    autoRollbackConfiguration = copy(d.auto_rollback), rollbackInfo = copy(d.rollback_info),
    deploymentStyle = copy(d.style), instanceTerminationWaitTimeStarted = d.term_started == true,
    blueGreenDeploymentConfiguration = copy(d.bg), loadBalancerInfo = copy(d.lb),
    computePlatform = "ECS", overrideAlarmConfiguration = copy(d.override_alarm),
  }
end

function ops.GetDeployment(world, input)
  return { deploymentInfo = deployment_info(get_deployment(world, input.deploymentId)) }
end

-- Unknown ids are left out, as AWS does.
function ops.BatchGetDeployments(world, input)
  local ids = input.deploymentIds or {}
  if #ids == 0 then world:fail("DeploymentIdRequiredException", "At least one deployment ID is required.") end
  apps.batch_limit(world, ids, 25, "deployment IDs")
  local out = {}
  for _, id in ipairs(ids) do
    local d = state(world).deployments[id]
    if d then out[#out + 1] = deployment_info(d) end
  end
  return { deploymentsInfo = out }
end

function ops.ListDeployments(world, input)
  local st = state(world)
  local app_name, group_name = input.applicationName, input.deploymentGroupName
  if group_name and not app_name then
    world:fail("ApplicationNameRequiredException", "applicationName is required when deploymentGroupName is given.")
  end
  if app_name then
    local app = get_app(world, app_name)
    if group_name then get_group(world, app, group_name) end
  end
  local range = input.createTimeRange or {}
  local out = {}
  for i = #st.order, 1, -1 do -- newest first
    local d = st.deployments[st.order[i]]
    if (not app_name or d.app == app_name) and (not group_name or d.group_name == group_name)
        and (not input.includeOnlyStatuses or contains(input.includeOnlyStatuses, d.status))
        and (not range.start or d.create_time >= range.start) and (not range["end"] or d.create_time <= range["end"]) then
      out[#out + 1] = d.id
    end
  end
  return { deployments = out }
end

-- ---------------------------------------------------------------- the deployment's target

-- The blue and green task sets as ECSTarget.taskSetsInfo shows them (with production weights).
local function task_sets_info(world, d)
  local ok, svc = pcall(R.describe_service, world, d.cluster, d.service)
  if not ok then
    if world:is_error(svc) or (type(svc) == "table" and svc.deploy_error) then return {} end
    error(svc, 0)
  end
  local weights = {}
  local lb = world.svc.elbv2
  if lb and lb.get_forward and d.prod_listeners and d.prod_listeners[1] then
    local okf, f = pcall(lb.get_forward, world, d.prod_listeners[1])
    if okf and type(f) == "table" then weights = f end
  end
  local out = {}
  for _, pair in ipairs({ { d.blue, "Blue" }, { d.green, "Green" } }) do
    local ref, label = pair[1], pair[2]
    local ts = ok and R.find_task_set(svc, ref)
    if ts then
      out[#out + 1] = {
        identifer = ts.id, desiredCount = ts.computedDesiredCount, pendingCount = ts.pendingCount,
        runningCount = ts.runningCount, status = ts.status,
        trafficWeight = (weights[ref.tg_arn] or 0) + 0.0,
        targetGroup = { name = ref.tg_name }, taskSetLabel = label,
      }
    end
  end
  return out
end

local function lifecycle_events(d)
  local out = {}
  for i, e in ipairs(d.events) do
    local diag
    if e.hook_id then
      diag = { scriptName = e.fn, errorCode = e.diag_code,
               message = "lifecycleEventHookExecutionId=" .. e.hook_id }
    elseif e.diag_message then
      diag = { errorCode = "UnknownError", message = e.diag_message }
    end
    out[i] = { lifecycleEventName = e.name, startTime = e.start, endTime = e.finish,
               status = e.status, diagnostics = diag }
  end
  return out
end

local function target_of(world, d)
  return {
    deploymentTargetType = "ECSTarget",
    ecsTarget = {
      deploymentId = d.id, targetId = d.target_id, targetArn = d.target_arn, lastUpdatedAt = d.updated,
      lifecycleEvents = lifecycle_events(d), status = d.target_status, taskSetsInfo = task_sets_info(world, d),
    },
  }
end

local function started(world, input)
  local d = get_deployment(world, input.deploymentId)
  if not d.started then world:fail("DeploymentNotStartedException", "The deployment " .. d.id .. " has not started yet.") end
  return d
end

local function target_check(world, d, tid)
  if tid == nil or tid == "" then world:fail("DeploymentTargetIdRequiredException", "A target ID is required.") end
  if tid ~= d.target_id then
    world:fail("DeploymentTargetDoesNotExistException", "Deployment " .. d.id .. " has no target " .. tid .. " (its target is " .. d.target_id .. ")")
  end
end

function ops.ListDeploymentTargets(world, input)
  local d = started(world, input)
  local f = input.targetFilters and input.targetFilters.TargetStatus
  if f and not contains(f, d.target_status) then return { targetIds = {} } end
  return { targetIds = { d.target_id } }
end

function ops.GetDeploymentTarget(world, input)
  local d = started(world, input)
  target_check(world, d, input.targetId)
  return { deploymentTarget = target_of(world, d) }
end

function ops.BatchGetDeploymentTargets(world, input)
  local d = started(world, input)
  local ids = input.targetIds or {}
  if #ids > 25 then world:fail("DeploymentTargetListSizeExceededException", "At most 25 target IDs, got " .. #ids .. ".") end
  local out = {}
  for _, tid in ipairs(ids) do
    target_check(world, d, tid)
    out[#out + 1] = target_of(world, d)
  end
  return { deploymentTargets = out }
end

-- ---------------------------------------------------------------- steering one

local function not_completed(world, d)
  if R.TERMINAL[d.status] then
    world:fail("DeploymentAlreadyCompletedException", "The deployment " .. d.id .. " has already completed (" .. d.status .. ").")
  end
end

function ops.ContinueDeployment(world, input)
  local d = get_deployment(world, input.deploymentId)
  not_completed(world, d)
  local wait = input.deploymentWaitType or "READY_WAIT"
  if wait == "READY_WAIT" then
    if d.status ~= "Ready" then
      world:fail("DeploymentIsNotInReadyStateException", "The deployment " .. d.id .. " is " .. d.status .. ", not Ready: there is no ready wait to continue.")
    end
    d.continue_ready = true
  elseif wait == "TERMINATION_WAIT" then
    if not d.term_started then
      world:fail("DeploymentIsNotInReadyStateException", "The deployment " .. d.id .. " is not waiting to terminate the original task set yet.")
    end
    d.skip_term = true
  else
    world:fail("InvalidDeploymentWaitTypeException", "deploymentWaitType must be READY_WAIT or TERMINATION_WAIT, got " .. tostring(wait))
  end
  flow.step(world, d)
  return {}
end

function ops.StopDeployment(world, input)
  local d = get_deployment(world, input.deploymentId)
  not_completed(world, d)
  local rb = input.autoRollbackEnabled
  if rb == nil then rb = flow.rollback_on(d, "DEPLOYMENT_STOP_ON_REQUEST") end
  flow.stop_deployment(world, d, "MANUAL_STOP", "The deployment was stopped by a StopDeployment request.", rb)
  local msg = "Deployment " .. d.id .. " stopped"
  if d.rollback_info then msg = msg .. "; rolled back by deployment " .. d.rollback_info.rollbackDeploymentId end
  return { status = "Succeeded", statusMessage = msg }
end

function ops.PutLifecycleEventHookExecutionStatus(world, input)
  local d = get_deployment(world, input.deploymentId)
  local hid = input.lifecycleEventHookExecutionId
  local ev
  for _, e in ipairs(d.events) do
    if hid ~= nil and e.hook_id == hid then ev = e end
  end
  if not ev then
    world:fail("InvalidLifecycleEventHookExecutionIdException", "No lifecycle hook execution " .. tostring(hid) .. " in deployment " .. d.id
      .. " (the ids are in GetDeploymentTarget lifecycleEvents[].diagnostics.message)")
  end
  if input.status ~= "Succeeded" and input.status ~= "Failed" then
    world:fail("InvalidLifecycleEventHookExecutionStatusException", "status must be Succeeded or Failed, got " .. tostring(input.status))
  end
  if ev.status ~= "InProgress" or ev.result then
    world:fail("LifecycleEventAlreadyCompletedException", "The " .. ev.name .. " lifecycle event of deployment " .. d.id .. " has already completed (" .. ev.status .. ").")
  end
  ev.result = input.status
  flow.step(world, d)
  return { lifecycleEventHookExecutionId = hid }
end

return M
