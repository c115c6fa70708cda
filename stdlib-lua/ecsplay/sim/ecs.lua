--[[
The simulated Amazon ECS: the service module the simulator front end loads
(`{ name, init, tick, ops }`, see docs/internals.md "Simulator contracts").

This file holds the state, the tick, clusters, services and tags; the rest is
split by concern:
  ecs_util.lua      look-ups raising AWS's errors, ids, events
  ecs_taskdefs.lua  task definitions
  ecs_tasks.lua     tasks: lifecycle on the virtual clock, RunTask/StopTask/...
  ecs_deploy.lua    deployments, rolling scheduler, circuit breaker, alarms
  ecs_native.lua    native BLUE_GREEN / LINEAR / CANARY with lifecycle hooks
  ecs_taskset.lua   task sets (EXTERNAL and CODE_DEPLOY controllers)
  ecs_sd.lua        service deployments and revisions (Describe/List/Stop/Continue)
]]
local U = require "ecsplay.sim.ecs_util"
local T = require "ecsplay.sim.ecs_tasks"
local TD = require "ecsplay.sim.ecs_taskdefs"
local P = require "ecsplay.sim.ecs_deploy"
local S = require "ecsplay.sim.ecs_taskset"
local N = require "ecsplay.sim.ecs_native"
local SD = require "ecsplay.sim.ecs_sd"

local M = { name = "ecs" }

-- Stopped tasks stay visible (DescribeTasks, ListTasks STOPPED) this long, as on AWS.
local STOPPED_RETENTION = 3600

function M.init(world)
  return {
    clusters = {}, cluster_order = {},
    families = {}, family_order = {},
    tasks = {}, task_order = {},
    task_sets = {}, sds = {}, revisions = {},
    tags = {},             -- resource ARN -> { {key=, value=}, ... }
    image_first = {},      -- image -> epoch of its first RUNNING task
    ip_counter = 0,
    reg_notes = {},
  }
end

------------------------------------------------------------------ the tick

local function prune(world)
  local st = U.st(world)
  local cutoff = world.now - STOPPED_RETENTION
  local old = st.task_order[1]
  if not (old and old.last == "STOPPED" and old.stopped_at < cutoff) then
    -- cheap check first: prune only when something may be due
    local any = false
    for _, task in ipairs(st.task_order) do
      if task.last == "STOPPED" and task.stopped_at < cutoff then any = true break end
    end
    if not any then return end
  end
  local function keep(list)
    local out = {}
    for _, task in ipairs(list) do
      if not (task.last == "STOPPED" and task.stopped_at < cutoff) then out[#out + 1] = task end
    end
    return out
  end
  for _, task in ipairs(st.task_order) do
    if task.last == "STOPPED" and task.stopped_at < cutoff then st.tasks[task.arn] = nil end
  end
  st.task_order = keep(st.task_order)
  for _, cname in ipairs(st.cluster_order) do
    local c = st.clusters[cname]
    c.tasks = keep(c.tasks)
    for _, sname in ipairs(c.service_order) do
      local svc = c.services[sname]
      if svc then svc.tasks = keep(svc.tasks) end
    end
  end
end

local function drain(world, svc)
  local live = {}
  for _, task in ipairs(svc.tasks) do if T.live(task) then live[#live + 1] = task end end
  P.stop_tasks(world, svc, live, svc.deployments[1])
  local present = 0
  for _, task in ipairs(svc.tasks) do if task.last ~= "STOPPED" then present = present + 1 end end
  if present == 0 then
    svc.status = "INACTIVE"
    for _, d in ipairs(svc.deployments) do d.status = "INACTIVE" end
    svc.deployments = {}
    for _, ts in ipairs(svc.task_sets) do U.st(world).task_sets[ts.arn] = nil end
    svc.task_sets = {}
  end
end

function M.tick(world, t)
  local st = U.st(world)
  T.progress_all(world)
  for _, cname in ipairs(st.cluster_order) do
    local c = st.clusters[cname]
    for _, sname in ipairs(c.service_order) do
      local svc = c.services[sname]
      if svc.status == "DRAINING" then
        drain(world, svc)
      elseif svc.status == "ACTIVE" then
        if svc.controller == "ECS" then
          local dep = svc.deployments[1]
          if dep and dep.native and not dep.native.finished then N.step(world, svc, dep) else P.schedule(world, svc) end
        else
          S.schedule(world, svc)
        end
      end
    end
  end
  T.flush_notes(world)
  prune(world)
end

------------------------------------------------------------------ cross-service functions

function M.task_health(world, task_arn)
  local task = U.st(world).tasks[task_arn]
  return task and T.health(task) or nil
end

function M.task_info(world, task_arn)
  local task = U.st(world).tasks[task_arn]
  if not task then return nil end
  return {
    image = task.image, started_at = task.started_at,
    healthy_at = task.healthy and task.healthy_at or nil,
    service = task.svc and task.svc.name or nil,
    task_set = task.ts and task.ts.id or nil,
    deployment = task.dep and task.dep.id or nil,
    cluster = task.cluster.name, ip = task.ip,
    last_status = task.last, desired_status = task.desired,
  }
end

function M.image_first_start(world, image)
  return U.st(world).image_first[image]
end

------------------------------------------------------------------ clusters

local function describe_cluster(world, c, include)
  local st = U.st(world)
  local running, pending, services = 0, 0, 0
  for _, task in ipairs(c.tasks) do
    if T.running(task) then running = running + 1 elseif T.pending(task) then pending = pending + 1 end
  end
  for _, n in ipairs(c.service_order) do
    local s = c.services[n]
    if s and s.status == "ACTIVE" then services = services + 1 end
  end
  local out = {
    clusterArn = c.arn, clusterName = c.name, status = c.status,
    registeredContainerInstancesCount = 0, runningTasksCount = running, pendingTasksCount = pending,
    activeServicesCount = services, statistics = {}, tags = {},
    settings = U.copy(c.settings), capacityProviders = U.copy(c.capacity_providers),
    defaultCapacityProviderStrategy = U.copy(c.default_cps),
  }
  if include and include.TAGS then out.tags = U.copy(st.tags[c.arn] or {}) end
  return out
end

M.ops = {}

function M.ops.CreateCluster(world, input)
  local st = U.st(world)
  local name = input.clusterName or "default"
  if not name:match("^[%w_%-]+$") or #name > 255 then
    world:fail("InvalidParameterException",
      "Cluster name must be 1-255 characters: letters (uppercase and lowercase), numbers, underscores and hyphens.")
  end
  local c = st.clusters[name]
  if c and c.status == "ACTIVE" then return { cluster = describe_cluster(world, c) } end
  c = {
    name = name, arn = world:arn("ecs", "cluster/" .. name), status = "ACTIVE",
    services = {}, service_order = {}, tasks = {},
    settings = U.copy(input.settings or { { name = "containerInsights", value = "disabled" } }),
    capacity_providers = U.copy(input.capacityProviders or {}),
    default_cps = U.copy(input.defaultCapacityProviderStrategy or {}),
  }
  if not st.clusters[name] then st.cluster_order[#st.cluster_order + 1] = name end
  st.clusters[name] = c
  if input.tags and #input.tags > 0 then st.tags[c.arn] = U.copy(input.tags) end
  return { cluster = describe_cluster(world, c, { TAGS = true }) }
end

function M.ops.DescribeClusters(world, input)
  local st = U.st(world)
  local include = {}
  for _, f in ipairs(input.include or {}) do include[f] = true end
  local refs = input.clusters
  if not refs or #refs == 0 then refs = { "default" } end
  local out, failures = U.describe_each(refs,
    function(ref) return st.clusters[U.short_name(ref)] end,
    function(c) return describe_cluster(world, c, include) end,
    -- a cluster ARN is reported rebuilt from its name, whatever form the reference had
    function(ref) return world:arn("ecs", "cluster/" .. U.short_name(ref)) end)
  return { clusters = out, failures = failures }
end

function M.ops.ListClusters(world, input)
  local st = U.st(world)
  local list = {}
  for _, name in ipairs(st.cluster_order) do
    local c = st.clusters[name]
    if c.status == "ACTIVE" then list[#list + 1] = c.arn end
  end
  local page, token = U.paginate(list, input)
  return { clusterArns = page, nextToken = token }
end

function M.ops.DeleteCluster(world, input)
  local c = U.cluster(world, input.cluster)
  for _, n in ipairs(c.service_order) do
    local s = c.services[n]
    if s and s.status ~= "INACTIVE" then
      world:fail("ClusterContainsServicesException", "The Cluster cannot be deleted while Services are active.")
    end
  end
  for _, task in ipairs(c.tasks) do
    if task.last ~= "STOPPED" then
      world:fail("ClusterContainsTasksException", "The Cluster cannot be deleted while Tasks are active.")
    end
  end
  c.status = "INACTIVE"
  return { cluster = describe_cluster(world, c) }
end

------------------------------------------------------------------ services

local NATIVE = { BLUE_GREEN = true, LINEAR = true, CANARY = true }
M.NATIVE = NATIVE

-- Load balancer entries must name a container and port of the task definition.
function M.check_load_balancers(world, td, lbs)
  for _, lb in ipairs(lbs or {}) do
    if not lb.targetGroupArn and not lb.loadBalancerName then
      world:fail("InvalidParameterException", "Either targetGroupArn or loadBalancerName must be specified for a load balancer.")
    end
    local cd
    for _, c in ipairs(td.containerDefinitions or {}) do if c.name == lb.containerName then cd = c end end
    if not cd then
      world:fail("InvalidParameterException", string.format(
        "The container %s does not exist in the task definition.", tostring(lb.containerName)))
    end
    local port_ok = false
    for _, pm in ipairs(cd.portMappings or {}) do if pm.containerPort == lb.containerPort then port_ok = true end end
    if not port_ok then
      world:fail("InvalidParameterException", string.format(
        "The container %s did not have a container port %s defined.", tostring(lb.containerName), tostring(lb.containerPort)))
    end
    local elbv2 = world.svc.elbv2
    if elbv2 and elbv2.target_group and lb.targetGroupArn then
      for _, arn in ipairs({ lb.targetGroupArn, lb.advancedConfiguration and lb.advancedConfiguration.alternateTargetGroupArn }) do
        if arn and not elbv2.target_group(world, arn) then
          world:fail("InvalidParameterException", string.format(
            "The target group with targetGroupArn %s does not exist.", arn))
        end
      end
    end
  end
end

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

local function check_network(world, td, network, launch_type)
  if launch_type == "FARGATE" and td.networkMode ~= "awsvpc" then
    world:fail("InvalidParameterException", "Task definition does not support launch_type FARGATE.")
  end
  if td.networkMode == "awsvpc" then
    local vpc = network and network.awsvpcConfiguration
    if not vpc then
      world:fail("InvalidParameterException", "Network Configuration must be provided when networkMode 'awsvpc' is specified.")
    end
    if not vpc.subnets or #vpc.subnets == 0 then
      world:fail("InvalidParameterException", "subnets can not be empty.")
    end
  end
end

function M.describe_service(world, svc, include_tags)
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
    events = U.copy(svc.events),
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

function M.ops.CreateService(world, input, caller)
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
  local controller = (input.deploymentController or {}).type or "ECS"
  local td
  if input.taskDefinition then
    td = TD.resolve(world, input.taskDefinition, true)
  elseif controller ~= "EXTERNAL" then
    world:fail("InvalidParameterException", "TaskDefinition should not be null or empty.")
  end
  local launch_type = input.launchType or "FARGATE"
  if td then
    check_network(world, td, input.networkConfiguration, launch_type)
    M.check_load_balancers(world, td, input.loadBalancers)
  end
  local desired = input.desiredCount or 0
  if desired < 0 then world:fail("InvalidParameterException", "desiredCount must be greater than or equal to 0.") end
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
  c.services[name] = svc
  if input.tags and #input.tags > 0 then st.tags[svc.arn] = U.copy(input.tags) end
  if controller == "ECS" then
    P.new_deployment(world, svc, td)
  elseif controller == "CODE_DEPLOY" then
    S.create(world, svc, { td = td, lbs = svc.lbs, network = svc.network, launch_type = launch_type,
      scale = { value = 100, unit = "PERCENT" }, status = "PRIMARY" })
  end
  return { service = M.describe_service(world, svc, true) }
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

function M.ops.UpdateService(world, input, caller)
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
    check_network(world, td, network, svc.launch_type)
    M.check_load_balancers(world, td, lbs)
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
    if input.desiredCount < 0 then
      world:fail("InvalidParameterException", "desiredCount must be greater than or equal to 0.")
    end
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
      svc.network = U.copy(network)
      if input.loadBalancers then svc.lbs = U.copy(lbs); svc.prod_alt = {} end
      local cur = svc.deployments[1]
      if cur and cur.native and not cur.native.finished then N.abandon(world, svc, cur) end
      local prev = svc.last_completed
      local dep
      if NATIVE[svc.dc.strategy] and prev and prev.svc == svc and #svc.lbs > 0 then
        dep = P.new_deployment(world, svc, td, { lbs = N.green_lbs(svc) })
        N.begin(world, svc, dep, prev)
      else
        dep = P.new_deployment(world, svc, td)
      end
    else
      local dep = svc.deployments[1]
      if dep then dep.desired = svc.desired end
    end
  end
  return { service = M.describe_service(world, svc) }
end

function M.ops.DescribeServices(world, input)
  local c = U.cluster(world, input.cluster)
  U.check_refs(world, input.services, "Services", 10, true)
  local include_tags = U.wants_tags(input.include)
  local out, failures = U.describe_each(input.services,
    function(ref) return c.services[U.short_name(ref)] end,
    function(svc) return M.describe_service(world, svc, include_tags) end,
    function(ref) return U.ref_arn(world, c, "service", ref) end)
  return { services = out, failures = failures }
end

function M.ops.ListServices(world, input)
  local c = U.cluster(world, input.cluster)
  local list = {}
  for _, n in ipairs(c.service_order) do
    local s = c.services[n]
    if s and s.status ~= "INACTIVE" and (not input.launchType or s.launch_type == input.launchType)
      and (not input.schedulingStrategy or input.schedulingStrategy == "REPLICA") then
      list[#list + 1] = s.arn
    end
  end
  local page, token = U.paginate(list, input)
  return { serviceArns = page, nextToken = token }
end

function M.ops.DeleteService(world, input)
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
  return { service = M.describe_service(world, svc) }
end

------------------------------------------------------------------ tags

local function resource_exists(world, arn)
  local st = U.st(world)
  local kind, rest = arn:match("^arn:aws[%w-]*:ecs:[^:]*:%d*:([%w-]+)/(.+)$")
  if not kind then return false end
  if kind == "cluster" then
    local c = st.clusters[rest]
    if not c or c.status ~= "ACTIVE" then U.cluster_not_found(world) end
    return true
  elseif kind == "service" then
    local cname, sname = rest:match("^([^/]+)/([^/]+)$")
    local c = cname and st.clusters[cname]
    return c ~= nil and c.services[sname] ~= nil
  elseif kind == "task" then return st.tasks[arn] ~= nil
  elseif kind == "task-definition" then return TD.find(world, arn) ~= nil
  elseif kind == "task-set" then return st.task_sets[arn] ~= nil
  end
  return false
end

-- TagResource and UntagResource refuse an unknown resource alike (ListTagsForResource words it otherwise).
local function check_taggable(world, arn)
  if not resource_exists(world, arn) then
    world:fail("ResourceNotFoundException", "The specified resource wasn't found.")
  end
end

function M.ops.TagResource(world, input)
  local st = U.st(world)
  check_taggable(world, input.resourceArn)
  local tags = st.tags[input.resourceArn] or {}
  for _, t in ipairs(input.tags) do
    local found = false
    for _, old in ipairs(tags) do if old.key == t.key then old.value = t.value; found = true end end
    if not found then tags[#tags + 1] = { key = t.key, value = t.value } end
  end
  if #tags > 50 then world:fail("InvalidParameterException", "A resource can have at most 50 tags.") end
  st.tags[input.resourceArn] = tags
  return {}
end

function M.ops.UntagResource(world, input)
  local st = U.st(world)
  check_taggable(world, input.resourceArn)
  local drop = {}
  for _, k in ipairs(input.tagKeys) do drop[k] = true end
  local keep = {}
  for _, t in ipairs(st.tags[input.resourceArn] or {}) do if not drop[t.key] then keep[#keep + 1] = t end end
  st.tags[input.resourceArn] = keep
  return {}
end

function M.ops.ListTagsForResource(world, input)
  local st = U.st(world)
  if not resource_exists(world, input.resourceArn) then
    world:fail("InvalidParameterException", "The specified resource is not found.")
  end
  return { tags = U.copy(st.tags[input.resourceArn] or {}) }
end

------------------------------------------------------------------ the operation table

for _, mod in ipairs({ TD, T, S, SD }) do
  for name, fn in pairs(mod.ops) do M.ops[name] = fn end
end

return M
