--[[
Services of the simulated ECS: CreateService, UpdateService, DescribeServices,
ListServices, DeleteService and what a service looks like in their answers.
The deployment controller decides what runs a service's tasks: ECS
(deployments: the rolling scheduler in deploy.lua, or native blue/green in
native.lua), CODE_DEPLOY and EXTERNAL (task sets, taskset.lua).
]]
local U = require "ecsplay.sim.ecs.util"
local limits = require "ecsplay.sim.limits"
local T = require "ecsplay.sim.ecs.tasks"
local TD = require "ecsplay.sim.ecs.taskdefs"
local P = require "ecsplay.sim.ecs.deploy"
local S = require "ecsplay.sim.ecs.taskset"
local N = require "ecsplay.sim.ecs.native"

local V = {}
V.ops = {}

local NATIVE = { BLUE_GREEN = true, LINEAR = true, CANARY = true }

local function check_strategy(world, dc, lbs, controller)
  local strategy = dc.strategy or "ROLLING"
  if not NATIVE[strategy] then return end
  if controller ~= "ECS" then
    world:fail("InvalidParameterException", string.format(
      "The %s deployment strategy is only supported for services using the ECS deployment controller.", strategy))
  end
  if not lbs or #lbs == 0 then
    world:fail("InvalidParameterException", string.format(
      "The %s deployment strategy requires a load balancer with an advancedConfiguration.", strategy))
  end
  for _, lb in ipairs(lbs) do
    local ac = lb.advancedConfiguration
    if not ac or not ac.alternateTargetGroupArn or not ac.productionListenerRule then
      world:fail("InvalidParameterException", string.format(
        "loadBalancers[].advancedConfiguration must specify alternateTargetGroupArn and productionListenerRule for the %s deployment strategy.",
        strategy))
    end
  end
end

-- The stored deploymentConfiguration, with AWS's defaults filled in.
local function normalize_dc(dc, controller)
  dc = U.copy(dc or {})
  if dc.maximumPercent == nil then dc.maximumPercent = 200 end
  if dc.minimumHealthyPercent == nil then dc.minimumHealthyPercent = 100 end
  if controller == "ECS" then
    dc.deploymentCircuitBreaker = dc.deploymentCircuitBreaker or { enable = false, rollback = false }
    dc.strategy = dc.strategy or "ROLLING"
  end
  return dc
end

local function check_dc(world, dc)
  if dc.maximumPercent < 0 or dc.minimumHealthyPercent < 0 then
    world:fail("InvalidParameterException", "maximumPercent and minimumHealthyPercent must not be negative.")
  end
  if dc.maximumPercent < dc.minimumHealthyPercent then
    world:fail("InvalidParameterException",
      "The maximumPercent value must be greater than or equal to the minimumHealthyPercent value.")
  end
end

function V.describe_service(world, svc, include_tags)
  local st = U.st(world)
  local running, pending = 0, 0
  for _, task in ipairs(svc.tasks) do
    if T.running(task) then running = running + 1 elseif T.pending(task) then pending = pending + 1 end
  end
  local deployments, revisions = {}, {}
  for _, d in ipairs(svc.deployments) do
    local c = P.counts(d)
    deployments[#deployments + 1] = {
      id = d.id, status = d.status, taskDefinition = d.td.taskDefinitionArn,
      desiredCount = d.desired, pendingCount = c.pending, runningCount = c.running,
      failedTasks = d.failed, createdAt = d.created_at, updatedAt = d.updated_at,
      launchType = d.launch_type,
      platformVersion = d.launch_type == "FARGATE" and "1.4.0" or nil,
      platformFamily = d.launch_type == "FARGATE" and "Linux" or nil,
      networkConfiguration = U.copy(d.network),
      rolloutState = d.rollout, rolloutStateReason = d.reason,
    }
    revisions[#revisions + 1] = { arn = d.rev.arn, requestedTaskCount = d.desired,
      runningTaskCount = c.running, pendingTaskCount = c.pending }
  end
  local out = {
    serviceArn = svc.arn, serviceName = svc.name, clusterArn = svc.cluster.arn,
    loadBalancers = U.copy(svc.lbs), serviceRegistries = {},
    status = svc.status, desiredCount = svc.desired, runningCount = running, pendingCount = pending,
    launchType = svc.launch_type,
    platformVersion = svc.launch_type == "FARGATE" and "LATEST" or nil,
    platformFamily = svc.launch_type == "FARGATE" and "Linux" or nil,
    taskDefinition = svc.td and svc.td.taskDefinitionArn or nil,
    deploymentConfiguration = U.copy(svc.dc),
    deployments = deployments,
    roleArn = svc.role,
    events = U.events_out(svc),
    createdAt = svc.created_at,
    placementConstraints = {}, placementStrategy = {},
    networkConfiguration = U.copy(svc.network),
    healthCheckGracePeriodSeconds = svc.hcgp,
    schedulingStrategy = "REPLICA",
    deploymentController = { type = svc.controller },
    createdBy = string.format("arn:aws:iam::%s:root", world.account),
    enableECSManagedTags = svc.managed_tags or false,
    propagateTags = svc.propagate_tags or "NONE",
    enableExecuteCommand = svc.exec or false,
    availabilityZoneRebalancing = svc.az_rebalancing or "DISABLED",
  }
  if svc.controller ~= "ECS" then
    out.taskSets = {}
    for _, ts in ipairs(svc.task_sets) do out.taskSets[#out.taskSets + 1] = S.describe(world, svc, ts) end
  else
    out.currentServiceDeployment = svc.current_sd and svc.current_sd.arn or nil
    out.currentServiceRevisions = revisions
  end
  if include_tags then out.tags = U.copy(st.tags[svc.arn] or {}) end
  return out
end

-- desiredCount: 0 up to AWS's Tasks per service quota.
local function check_desired(world, n)
  if n < 0 then world:fail("InvalidParameterException", "desiredCount must be greater than or equal to 0.") end
  if n > limits.ECS.TASKS_PER_SERVICE then
    world:fail("InvalidParameterException", string.format("Desired count exceeds limit (at most %d tasks "
      .. "per service).", limits.ECS.TASKS_PER_SERVICE))
  end
end

function V.ops.CreateService(world, input, caller)
  local st = U.st(world)
  local c = U.cluster(world, input.cluster)
  local name = input.serviceName
  if not name:match("^[%w_%-]+$") or #name > 255 then
    world:fail("InvalidParameterException",
      "Service name must be 1-255 characters: letters (uppercase and lowercase), numbers, underscores and hyphens.")
  end
  local existing = c.services[name]
  if existing and existing.status ~= "INACTIVE" then
    world:fail("InvalidParameterException", "Creation of service was not idempotent.")
  end
  if not existing and #c.service_order >= limits.ECS.SERVICES_PER_CLUSTER then
    world:fail("InvalidParameterException", string.format("Services per cluster exceeds limit "
      .. "(at most %d services in cluster %s).", limits.ECS.SERVICES_PER_CLUSTER, c.name))
  end
  local controller = (input.deploymentController or {}).type or "ECS"
  local td
  if input.taskDefinition then
    td = TD.resolve(world, input.taskDefinition, true)
  elseif controller ~= "EXTERNAL" then
    world:fail("InvalidParameterException", "TaskDefinition should not be null or empty.")
  end
  local launch_type = input.launchType or "FARGATE"
  if td then
    TD.check_network(world, td, input.networkConfiguration, launch_type)
    TD.check_load_balancers(world, td, input.loadBalancers)
  end
  local desired = input.desiredCount or 0
  check_desired(world, desired)
  local dc = normalize_dc(input.deploymentConfiguration, controller)
  check_dc(world, dc)
  check_strategy(world, dc, input.loadBalancers, controller)
  if controller ~= "ECS" and input.deploymentConfiguration and input.deploymentConfiguration.deploymentCircuitBreaker
    and input.deploymentConfiguration.deploymentCircuitBreaker.enable then
    world:fail("InvalidParameterException",
      "The deployment circuit breaker is only supported for services using the rolling update (ECS) deployment controller.")
  end
  local svc = {
    name = name, arn = world:arn("ecs", "service/" .. c.name .. "/" .. name), cluster = c,
    status = "ACTIVE", desired = desired, launch_type = launch_type, td = td,
    lbs = U.copy(input.loadBalancers or {}), network = U.copy(input.networkConfiguration),
    dc = dc, controller = controller, role = input.role, hcgp = input.healthCheckGracePeriodSeconds,
    created_at = world.now, managed_tags = input.enableECSManagedTags, propagate_tags = input.propagateTags,
    exec = input.enableExecuteCommand, az_rebalancing = input.availabilityZoneRebalancing,
    deployments = {}, events = {}, tasks = {}, task_sets = {}, sds = {}, steady = false,
    prod_alt = {},   -- per load balancer index: true when the alternate target group is production
  }
  if not existing then c.service_order[#c.service_order + 1] = name end
  st.ranks_stale = true
  c.services[name] = svc
  -- its first deployment: the tick schedules it until it settles (by ARN: a service created
  -- again under its name takes the old one's place)
  st.restless[svc.arn] = svc
  st.woken[svc.arn] = nil
  if input.tags and #input.tags > 0 then st.tags[svc.arn] = U.copy(input.tags) end
  if controller == "ECS" then
    P.new_deployment(world, svc, td)
  elseif controller == "CODE_DEPLOY" then
    S.create(world, svc, { td = td, lbs = svc.lbs, network = svc.network, launch_type = launch_type,
      scale = { value = 100, unit = "PERCENT" }, status = "PRIMARY" })
  end
  return { service = V.describe_service(world, svc, true) }
end

local function refuse_for_controller(world, svc, input)
  local ctl = svc.controller
  if ctl == "ECS" then return end
  if input.taskDefinition and (not svc.td or input.taskDefinition ~= svc.td.taskDefinitionArn) then
    if ctl == "CODE_DEPLOY" then
      world:fail("InvalidParameterException",
        "Unable to update task definition on services with a CODE_DEPLOY deployment controller. Use AWS CodeDeploy to trigger a new deployment.")
    end
    world:fail("InvalidParameterException",
      "Unable to update task definition on services with a EXTERNAL deployment controller. Use task sets (CreateTaskSet) to deploy a new task definition.")
  end
  if input.networkConfiguration or input.platformVersion or input.loadBalancers or input.forceNewDeployment then
    if ctl == "CODE_DEPLOY" then
      world:fail("InvalidParameterException",
        "Unable to update network parameters on services with a CODE_DEPLOY deployment controller. Use AWS CodeDeploy to trigger a new deployment.")
    end
    world:fail("InvalidParameterException",
      "Unable to update network parameters on services with a EXTERNAL deployment controller. Use task sets (CreateTaskSet) instead.")
  end
end

--[[ An UpdateService that changes what an ECS-controlled service runs starts a new deployment:
     native blue/green when the strategy asks for it and there is a completed deployment to
     shift traffic from, rolling otherwise (an unfinished native deployment is abandoned first). ]]
local function redeploy(world, svc, input, td, network, lbs)
  -- a new table only when it changed: deployments share the old one (deploy.lua, revisions)
  if network ~= svc.network then svc.network = U.copy(network) end
  if input.loadBalancers then svc.lbs = U.copy(lbs); svc.prod_alt = {} end
  local cur = svc.deployments[1]
  if cur and cur.native and not cur.native.finished then N.abandon(world, svc, cur) end
  local prev = svc.last_completed
  if NATIVE[svc.dc.strategy] and prev and prev.svc == svc and #svc.lbs > 0 then
    local dep = P.new_deployment(world, svc, td, { lbs = N.green_lbs(svc) })
    N.begin(world, svc, dep, prev)
  else
    P.new_deployment(world, svc, td)
  end
end

function V.ops.UpdateService(world, input, caller)
  local c = U.cluster(world, input.cluster)
  local svc = U.active_service(world, c, input.service)
  refuse_for_controller(world, svc, input)
  if input.deploymentController and input.deploymentController.type ~= svc.controller then
    world:fail("InvalidParameterException", string.format(
      "Unable to change the deployment controller of service %s from %s to %s while it is ACTIVE.",
      svc.name, svc.controller, tostring(input.deploymentController.type)))
  end
  local td = svc.td
  if input.taskDefinition then td = TD.resolve(world, input.taskDefinition, true) end
  local network = input.networkConfiguration or svc.network
  local lbs = input.loadBalancers or svc.lbs
  if svc.controller == "ECS" then
    TD.check_network(world, td, network, svc.launch_type)
    TD.check_load_balancers(world, td, lbs)
  end
  local dc = svc.dc
  if input.deploymentConfiguration then
    dc = U.copy(svc.dc)
    for k, v in pairs(input.deploymentConfiguration) do dc[k] = U.copy(v) end
    dc = normalize_dc(dc, svc.controller)
    check_dc(world, dc)
    check_strategy(world, dc, lbs, svc.controller)
  end
  if input.desiredCount then
    check_desired(world, input.desiredCount)
    svc.desired = input.desiredCount
    svc.steady = false
  end
  svc.dc = dc
  if input.healthCheckGracePeriodSeconds then svc.hcgp = input.healthCheckGracePeriodSeconds end
  if input.enableExecuteCommand ~= nil then svc.exec = input.enableExecuteCommand end
  if svc.controller == "ECS" then
    local changed = input.forceNewDeployment
      or (input.taskDefinition and td ~= svc.td)
      or input.networkConfiguration ~= nil or input.loadBalancers ~= nil
    if changed then
      redeploy(world, svc, input, td, network, lbs)
    else
      local dep = svc.deployments[1]
      if dep then dep.desired = svc.desired end
    end
  end
  return { service = V.describe_service(world, svc) }
end

function V.ops.DescribeServices(world, input)
  local out, failures = U.describe_in_cluster(world, input, "services", "Services", 10, "service",
    function(c, ref) return c.services[U.service_name(world, c, ref)] end,
    function(svc, include_tags) return V.describe_service(world, svc, include_tags) end)
  return { services = out, failures = failures }
end

function V.ops.ListServices(world, input)
  local c = U.cluster(world, input.cluster)
  local list = {}
  for _, n in ipairs(c.service_order) do
    local s = c.services[n]
    if s and s.status ~= "INACTIVE" and (not input.launchType or s.launch_type == input.launchType)
      and (not input.schedulingStrategy or input.schedulingStrategy == "REPLICA") then
      list[#list + 1] = s.arn
    end
  end
  return U.list_answer(list, input, "serviceArns")
end

function V.ops.DeleteService(world, input)
  local c = U.cluster(world, input.cluster)
  local svc = U.service(world, c, input.service, true)
  if svc.status == "INACTIVE" then U.service_not_found(world) end
  if svc.status == "DRAINING" then
    world:fail("ServiceNotActiveException", "Service was not ACTIVE.")
  end
  if svc.desired > 0 and not input.force then
    world:fail("InvalidParameterException", "The service cannot be stopped while it is scaled above 0.")
  end
  svc.desired = 0
  svc.status = "DRAINING"
  local dep = svc.deployments[1]
  if dep and dep.native and not dep.native.finished then N.abandon(world, svc, dep) end
  return { service = V.describe_service(world, svc) }
end

return V
