--[[
Task sets: the deployment unit of services whose deploymentController is
EXTERNAL (managed through the public API) or CODE_DEPLOY (managed by the
simulated CodeDeploy, which calls these operations with caller "codedeploy";
the public API refuses task set management on such services, as AWS does).

A task set runs ceil(desiredCount * scale% / 100) tasks (computedDesiredCount),
registered into its own load balancers' target groups. DRAINING task sets
(deleted) stop their tasks and disappear once every task has STOPPED.
]]
local U = require "ecsplay.sim.ecs.util"
local T = require "ecsplay.sim.ecs.tasks"
local TD = require "ecsplay.sim.ecs.taskdefs"
local P = require "ecsplay.sim.ecs.deploy"
local limits = require "ecsplay.sim.limits"

local S = {}

local MAX_TASK_SETS = limits.ECS.TASK_SETS_PER_SERVICE

function S.computed(svc, ts)
  if ts.status == "DRAINING" then return 0 end
  local v = ts.scale.value or 0
  return math.ceil(svc.desired * v / 100 - 1e-9)
end

local function counts(svc, ts)
  return T.counts(svc.tasks, "ts", ts)
end
S.counts = counts

function S.describe(world, svc, ts, include_tags)
  local c = counts(svc, ts)
  local out = {
    id = ts.id, taskSetArn = ts.arn, serviceArn = svc.arn, clusterArn = svc.cluster.arn,
    startedBy = ts.started_by, externalId = ts.external_id, status = ts.status,
    taskDefinition = ts.td.taskDefinitionArn, computedDesiredCount = S.computed(svc, ts),
    pendingCount = c.pending, runningCount = c.running,
    createdAt = ts.created_at, updatedAt = ts.updated_at,
    launchType = ts.launch_type,
    platformVersion = ts.launch_type == "FARGATE" and "1.4.0" or nil,
    platformFamily = ts.launch_type == "FARGATE" and "Linux" or nil,
    networkConfiguration = U.copy(ts.network), loadBalancers = U.copy(ts.load_balancers),
    serviceRegistries = {}, scale = U.copy(ts.scale),
    stabilityStatus = ts.stability, stabilityStatusAt = ts.stability_at,
  }
  if include_tags then out.tags = U.copy(U.st(world).tags[ts.arn] or {}) end
  return out
end

local function check_controller(world, svc, caller)
  local ctl = svc.controller
  if ctl == "EXTERNAL" or (ctl == "CODE_DEPLOY" and (caller == "codedeploy" or caller == "setup")) then return end
  world:fail("InvalidParameterException",
    "Amazon ECS only supports task set management on services configured to use external deployment controllers.")
end

local function find(world, svc, ref)
  for _, ts in ipairs(svc.task_sets) do
    if ts.id == ref or ts.arn == ref then return ts end
  end
  world:fail("TaskSetNotFoundException", "The specified task set does not exist.")
end

--[[ Creates a task set (also used by CreateService for CODE_DEPLOY services).
     spec: td, lbs (LoadBalancers input shape), network, launch_type, scale,
     external_id, started_by, status. ]]
function S.create(world, svc, spec)
  local st = U.st(world)
  local id = "ecs-svc/" .. U.digits(world, 19)
  local now = world.now
  local ts = {
    id = id,
    arn = world:arn("ecs", string.format("task-set/%s/%s/%s", svc.cluster.name, svc.name, id)),
    svc = svc, td = spec.td, load_balancers = U.copy(spec.lbs or {}),
    network = U.copy(spec.network), launch_type = spec.launch_type or svc.launch_type or "FARGATE",
    scale = U.copy(spec.scale or { value = 100, unit = "PERCENT" }),
    external_id = spec.external_id, started_by = spec.started_by,
    status = spec.status or "ACTIVE", created_at = now, updated_at = now,
    stability = "STABILIZING", stability_at = now,
  }
  ts.scale.unit = ts.scale.unit or "PERCENT"
  ts.lbs = {}
  for _, lb in ipairs(ts.load_balancers) do
    ts.lbs[#ts.lbs + 1] = { tg = lb.targetGroupArn, port = lb.containerPort, name = lb.containerName }
  end
  svc.task_sets[#svc.task_sets + 1] = ts
  st.task_sets[ts.arn] = ts
  if ts.status == "PRIMARY" then svc.td = ts.td end
  return ts
end

function S.primary(svc)
  for _, ts in ipairs(svc.task_sets) do if ts.status == "PRIMARY" then return ts end end
  return nil
end

-- One tick: each task set moves toward its computed count; crashed tasks are replaced.
function S.schedule(world, svc)
  for _, task in ipairs(svc.tasks) do task.failed_new = nil; task.healthy_new = nil end
  for i = #svc.task_sets, 1, -1 do
    local ts = svc.task_sets[i]
    local want = S.computed(svc, ts)
    local live = T.live_of(svc.tasks, "ts", ts)
    if #live > want then
      T.shed_order(live)
      local extra = {}
      for k = 1, #live - want do extra[k] = live[k] end
      -- the stop reason names the task set's id, as AWS names the deployment's
      P.stop_tasks(world, svc, extra, ts)
    elseif #live < want then
      P.launch_tasks(world, svc, want - #live, { td = ts.td, ts = ts, lbs = ts.lbs,
        started_by = ts.started_by or ts.id, network = ts.network, launch_type = ts.launch_type })
    end
    local c = counts(svc, ts)
    local stable = c.live == want and c.healthy == want and c.present == c.live
    local status = stable and "STEADY_STATE" or "STABILIZING"
    if status ~= ts.stability then
      ts.stability = status
      ts.stability_at = world.now
    end
    if ts.status == "DRAINING" and c.present == 0 then
      table.remove(svc.task_sets, i)
      U.st(world).task_sets[ts.arn] = nil
    end
  end
  -- the service's steady state: one task set, stable
  local steady = #svc.task_sets >= 1
  for _, ts in ipairs(svc.task_sets) do
    if ts.stability ~= "STEADY_STATE" or ts.status == "DRAINING" then steady = false end
  end
  if steady and not svc.steady then U.event(world, svc, "has reached a steady state.") end
  svc.steady = steady
end

------------------------------------------------------------------ operations

S.ops = {}

local function service_for(world, input, caller)
  local c = U.cluster(world, input.cluster)
  local svc = U.service(world, c, input.service, true)
  if svc.status ~= "ACTIVE" then world:fail("ServiceNotActiveException", "Service was not ACTIVE.") end
  check_controller(world, svc, caller)
  return svc
end

function S.ops.CreateTaskSet(world, input, caller)
  local svc = service_for(world, input, caller)
  local td = TD.resolve(world, input.taskDefinition, true)
  if #svc.task_sets >= MAX_TASK_SETS then
    world:fail("InvalidParameterException", string.format(
      "%d deployments exist on the service. Unable to create new TaskSet since this exceeds the maximum limit.",
      #svc.task_sets))
  end
  local network = input.networkConfiguration or svc.network
  if td.networkMode == "awsvpc" and not network then
    world:fail("InvalidParameterException", "Network Configuration must be provided when networkMode 'awsvpc' is specified.")
  end
  local lbs = input.loadBalancers or svc.lbs
  TD.check_load_balancers(world, td, lbs)
  local ts = S.create(world, svc, {
    td = td, lbs = lbs, network = network, launch_type = input.launchType or svc.launch_type,
    scale = input.scale, external_id = input.externalId,
    started_by = caller == "codedeploy" and "CodeDeploy" or nil,
    status = #svc.task_sets == 0 and "PRIMARY" or "ACTIVE",
  })
  if input.tags and #input.tags > 0 then U.st(world).tags[ts.arn] = U.copy(input.tags) end
  return { taskSet = S.describe(world, svc, ts) }
end

function S.ops.UpdateTaskSet(world, input, caller)
  local svc = service_for(world, input, caller)
  local ts = find(world, svc, input.taskSet)
  local v = input.scale.value
  if v == nil or v < 0 or v > 100 then
    world:fail("InvalidParameterException", "Scale value must be between 0 and 100.")
  end
  ts.scale = { value = v, unit = input.scale.unit or "PERCENT" }
  ts.updated_at = world.now
  return { taskSet = S.describe(world, svc, ts) }
end

function S.ops.DeleteTaskSet(world, input, caller)
  local svc = service_for(world, input, caller)
  local ts = find(world, svc, input.taskSet)
  if ts.status == "PRIMARY" and not input.force then
    world:fail("InvalidParameterException",
      "Cannot delete the PRIMARY task set of a service; make another task set primary with UpdateServicePrimaryTaskSet first, or pass force.")
  end
  if ts.scale.value > 0 and not input.force and ts.status ~= "DRAINING" then
    local c = counts(svc, ts)
    if c.live > 0 then
      world:fail("InvalidParameterException",
        "The task set cannot be deleted while it is scaled above 0. Scale it to 0 with UpdateTaskSet first, or pass force.")
    end
  end
  ts.status = "DRAINING"
  ts.updated_at = world.now
  return { taskSet = S.describe(world, svc, ts) }
end

function S.ops.DescribeTaskSets(world, input, caller)
  local c = U.cluster(world, input.cluster)
  local svc = U.service(world, c, input.service, true)
  if svc.status ~= "ACTIVE" then world:fail("ServiceNotActiveException", "Service was not ACTIVE.") end
  if svc.controller == "ECS" then check_controller(world, svc, caller) end
  local include_tags = U.wants_tags(input.include)
  local function describe(ts) return S.describe(world, svc, ts, include_tags) end
  local out, failures = {}, {}
  if input.taskSets and #input.taskSets > 0 then
    out, failures = U.describe_each(input.taskSets, function(ref)
      local found
      for _, ts in ipairs(svc.task_sets) do if ts.id == ref or ts.arn == ref then found = ts end end
      return found
    end, describe)
  else
    for _, ts in ipairs(svc.task_sets) do out[#out + 1] = describe(ts) end
  end
  return { taskSets = out, failures = failures }
end

function S.ops.UpdateServicePrimaryTaskSet(world, input, caller)
  local svc = service_for(world, input, caller)
  local ts = find(world, svc, input.primaryTaskSet)
  if ts.status == "DRAINING" then
    world:fail("InvalidParameterException", "A DRAINING task set cannot be made the primary task set.")
  end
  for _, other in ipairs(svc.task_sets) do
    if other ~= ts and other.status == "PRIMARY" then
      other.status = "ACTIVE"
      other.updated_at = world.now
    end
  end
  ts.status = "PRIMARY"
  ts.updated_at = world.now
  svc.td = ts.td
  return { taskSet = S.describe(world, svc, ts) }
end

return S
