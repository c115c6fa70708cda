--[[
The CodeDeploy operations on what deployments are made from: applications,
deployment configurations and deployment groups (Create, Get, BatchGet, List,
Update, Delete). Outputs use the model's member names exactly; everything
returned is a copy.
]]
local tables = require "ecsplay.util.tables"
local R = require "ecsplay.sim.codedeploy.records"
local limits = require "ecsplay.sim.limits"

local copy, state, required = tables.copy, R.state, R.required
local get_app, get_group, get_config = R.get_app, R.get_group, R.get_config

local M = {}
M.ops = {}
local ops = M.ops

-- BatchGet* refuse more than `max` names, as AWS does.
local function batch_limit(world, list, max, what)
  if #list > max then
    world:fail("BatchLimitExceededException", "The maximum number of " .. what .. " is " .. max .. ", got " .. #list .. ".")
  end
end
M.batch_limit = batch_limit

-- ---------------------------------------------------------------- applications

local function app_info(a)
  return { applicationId = a.applicationId, applicationName = a.applicationName, createTime = a.createTime,
           linkedToGitHub = false, computePlatform = a.computePlatform }
end

function ops.CreateApplication(world, input)
  local st = state(world)
  local name = required(world, input.applicationName, "ApplicationNameRequiredException", "The application name is required.")
  if st.apps[name] then world:fail("ApplicationAlreadyExistsException", "An application with name " .. name .. " already exists.") end
  if limits.count(st.apps) >= limits.CODEDEPLOY.APPLICATIONS then
    world:fail("ApplicationLimitExceededException", string.format("More applications were attempted to be "
      .. "created than are allowed (%d per account and region).", limits.CODEDEPLOY.APPLICATIONS))
  end
  local platform = input.computePlatform or "Server"
  if platform ~= "ECS" then
    world:fail("InvalidComputePlatformException", "computePlatform " .. platform
      .. " is not simulated: the simulator runs ECS applications only (set computePlatform = \"ECS\")")
  end
  local a = { applicationId = R.uuid(world), applicationName = name, createTime = world.now,
              computePlatform = platform, groups = {}, tags = copy(input.tags) }
  st.apps[name] = a
  return { applicationId = a.applicationId }
end

function ops.GetApplication(world, input)
  return { application = app_info(get_app(world, input.applicationName)) }
end

function ops.BatchGetApplications(world, input)
  local names = input.applicationNames or {}
  batch_limit(world, names, 100, "names")
  local out = {}
  for i, n in ipairs(names) do out[i] = app_info(get_app(world, n)) end
  return { applicationsInfo = out }
end

function ops.ListApplications(world)
  return { applications = tables.keys(state(world).apps) }
end

-- AWS answers success for a name that does not exist.
function ops.DeleteApplication(world, input)
  required(world, input.applicationName, "ApplicationNameRequiredException", "The application name is required.")
  state(world).apps[input.applicationName] = nil
  return {}
end

-- ---------------------------------------------------------------- deployment configs

local function config_info(c)
  return { deploymentConfigId = c.deploymentConfigId, deploymentConfigName = c.deploymentConfigName,
           createTime = c.createTime, computePlatform = c.computePlatform,
           trafficRoutingConfig = copy(c.trafficRoutingConfig) }
end

local function check_percent_interval(world, t, pct_field, int_field, what, max_pct)
  if type(t) ~= "table" then
    world:fail("InvalidTrafficRoutingConfigurationException", "trafficRoutingConfig." .. what .. " is required for this type")
  end
  local p, i = t[pct_field], t[int_field]
  if type(p) ~= "number" or p < 1 or p > max_pct then
    world:fail("InvalidTrafficRoutingConfigurationException",
      "trafficRoutingConfig." .. what .. "." .. pct_field .. " must be 1.." .. max_pct .. ", got " .. tostring(p))
  end
  if type(i) ~= "number" or i < 1 then
    world:fail("InvalidTrafficRoutingConfigurationException",
      "trafficRoutingConfig." .. what .. "." .. int_field .. " must be at least 1 (minutes), got " .. tostring(i))
  end
end

local function check_traffic_routing(world, trc)
  if type(trc) ~= "table" or trc.type == nil then
    world:fail("InvalidTrafficRoutingConfigurationException", "ECS deployment configurations need trafficRoutingConfig.type (TimeBasedCanary, TimeBasedLinear or AllAtOnce)")
  end
  if trc.type == "TimeBasedCanary" then
    check_percent_interval(world, trc.timeBasedCanary, "canaryPercentage", "canaryInterval", "timeBasedCanary", 99)
  elseif trc.type == "TimeBasedLinear" then
    check_percent_interval(world, trc.timeBasedLinear, "linearPercentage", "linearInterval", "timeBasedLinear", 99)
  elseif trc.type ~= "AllAtOnce" then
    world:fail("InvalidTrafficRoutingConfigurationException", "Unknown trafficRoutingConfig.type " .. tostring(trc.type))
  end
end

function ops.CreateDeploymentConfig(world, input)
  local st = state(world)
  local name = required(world, input.deploymentConfigName, "DeploymentConfigNameRequiredException",
    "The deployment configuration name is required.")
  if st.configs[name] then world:fail("DeploymentConfigAlreadyExistsException", "A deployment configuration named " .. name .. " already exists.") end
  if name:find("^CodeDeployDefault%.") then
    world:fail("InvalidDeploymentConfigNameException", "The CodeDeployDefault. prefix is reserved for predefined configurations: " .. name)
  end
  local custom = 0
  for n in pairs(st.configs) do if not n:find("^CodeDeployDefault%.") then custom = custom + 1 end end
  if custom >= limits.CODEDEPLOY.CUSTOM_DEPLOYMENT_CONFIGS then
    world:fail("DeploymentConfigLimitExceededException", string.format("The deployment configurations limit "
      .. "was exceeded (%d custom configurations per account).", limits.CODEDEPLOY.CUSTOM_DEPLOYMENT_CONFIGS))
  end
  local platform = input.computePlatform or "Server"
  if platform ~= "ECS" then
    world:fail("InvalidComputePlatformException", "computePlatform " .. platform .. " is not simulated: use computePlatform = \"ECS\"")
  end
  local trc = input.trafficRoutingConfig
  check_traffic_routing(world, trc)
  local c = { deploymentConfigId = R.uuid(world), deploymentConfigName = name, createTime = world.now,
              computePlatform = platform, trafficRoutingConfig = copy(trc) }
  st.configs[name] = c
  return { deploymentConfigId = c.deploymentConfigId }
end

function ops.GetDeploymentConfig(world, input)
  return { deploymentConfigInfo = config_info(get_config(world, input.deploymentConfigName)) }
end

function ops.ListDeploymentConfigs(world)
  return { deploymentConfigsList = tables.keys(state(world).configs) }
end

function ops.DeleteDeploymentConfig(world, input)
  local st = state(world)
  local name = required(world, input.deploymentConfigName, "DeploymentConfigNameRequiredException",
    "The deployment configuration name is required.")
  local c = st.configs[name]
  if not c then return {} end
  if c.predefined then world:fail("InvalidOperationException", "Predefined deployment configuration " .. name .. " cannot be deleted.") end
  for _, an in ipairs(tables.keys(st.apps)) do
    for _, gn in ipairs(tables.keys(st.apps[an].groups)) do
      if st.apps[an].groups[gn].info.deploymentConfigName == name then
        world:fail("DeploymentConfigInUseException", "Deployment configuration " .. name .. " is used by deployment group " .. an .. "/" .. gn .. ".")
      end
    end
  end
  st.configs[name] = nil
  return {}
end

-- ---------------------------------------------------------------- deployment groups

local GROUP_FIELDS = { "deploymentConfigName", "serviceRoleArn", "alarmConfiguration", "autoRollbackConfiguration",
  "deploymentStyle", "blueGreenDeploymentConfiguration", "loadBalancerInfo", "ecsServices",
  "triggerConfigurations", "outdatedInstancesStrategy", "terminationHookEnabled" }

-- The target group pair of an ECS group: two different target groups, one production listener,
-- at most one test listener (and the target groups must exist when ELBv2 is simulated).
local function check_target_group_pair(world, info)
  local lbi = info.loadBalancerInfo
  local pairs_ = type(lbi) == "table" and lbi.targetGroupPairInfoList
  if type(pairs_) ~= "table" or #pairs_ ~= 1 then
    world:fail("InvalidLoadBalancerInfoException", "loadBalancerInfo.targetGroupPairInfoList must hold exactly one target group pair for ECS")
  end
  local pair = pairs_[1]
  if type(pair.targetGroups) ~= "table" or #pair.targetGroups ~= 2 or not pair.targetGroups[1].name or not pair.targetGroups[2].name
      or pair.targetGroups[1].name == pair.targetGroups[2].name then
    world:fail("InvalidTargetGroupPairException", "loadBalancerInfo.targetGroupPairInfoList[0].targetGroups must name two different target groups")
  end
  local prod = pair.prodTrafficRoute and pair.prodTrafficRoute.listenerArns
  if type(prod) ~= "table" or #prod ~= 1 then
    world:fail("InvalidTargetGroupPairException", "loadBalancerInfo.targetGroupPairInfoList[0].prodTrafficRoute.listenerArns must hold exactly one listener")
  end
  local test = pair.testTrafficRoute and pair.testTrafficRoute.listenerArns
  if test ~= nil and #test > 1 then
    world:fail("InvalidTargetGroupPairException", "testTrafficRoute.listenerArns takes at most one listener")
  end
  local lb = world.svc.elbv2
  if lb and lb.target_group then
    for i = 1, 2 do
      if not lb.target_group(world, pair.targetGroups[i].name) then
        world:fail("InvalidTargetGroupPairException", "Target group " .. pair.targetGroups[i].name .. " does not exist")
      end
    end
  end
end

-- The group's ECS service must exist and use the CODE_DEPLOY controller (checked when ECS is simulated).
local function check_ecs_service(world, svcs)
  local ecs = world.svc.ecs
  if not (ecs and ecs.ops and ecs.ops.DescribeServices) then return end
  local ok, svc = pcall(R.describe_service, world, svcs[1].clusterName, svcs[1].serviceName)
  if not ok and not world:is_error(svc) then error(svc, 0) end
  if not ok or not svc then
    world:fail("InvalidECSServiceException", "ECS service " .. svcs[1].serviceName .. " not found in cluster " .. svcs[1].clusterName)
  end
  local ctl = svc.deploymentController and svc.deploymentController.type
  if ctl ~= "CODE_DEPLOY" then
    world:fail("InvalidECSServiceException", "ECS service " .. svcs[1].serviceName
      .. " must use deploymentController type CODE_DEPLOY (it uses " .. tostring(ctl or "ECS") .. ")")
  end
end

local function check_group(world, app, info)
  local cfg = get_config(world, info.deploymentConfigName)
  if cfg.computePlatform ~= app.computePlatform then
    world:fail("InvalidDeploymentConfigNameException", "Deployment configuration " .. info.deploymentConfigName
      .. " is for " .. cfg.computePlatform .. ", application " .. app.applicationName .. " is " .. app.computePlatform)
  end
  local svcs = info.ecsServices
  if type(svcs) ~= "table" or #svcs ~= 1 or not svcs[1].serviceName or not svcs[1].clusterName then
    world:fail("InvalidECSServiceException", "ecsServices must hold exactly one {serviceName, clusterName} for an ECS deployment group")
  end
  local style = info.deploymentStyle
  if style.deploymentType ~= "BLUE_GREEN" or style.deploymentOption ~= "WITH_TRAFFIC_CONTROL" then
    world:fail("InvalidDeploymentStyleException", "ECS deployment groups need deploymentStyle {deploymentType = BLUE_GREEN, deploymentOption = WITH_TRAFFIC_CONTROL}")
  end
  check_target_group_pair(world, info)
  check_ecs_service(world, svcs)
  local ac = info.alarmConfiguration
  if ac and ac.enabled then
    if not ac.alarms or #ac.alarms == 0 then
      world:fail("InvalidAlarmConfigException", "alarmConfiguration is enabled but lists no alarms")
    end
    if #ac.alarms > 10 then world:fail("AlarmsLimitExceededException", "At most 10 alarms per deployment group, got " .. #ac.alarms) end
  end
  local ar = info.autoRollbackConfiguration
  if ar and ar.enabled and (not ar.events or #ar.events == 0) then
    world:fail("InvalidAutoRollbackConfigException", "autoRollbackConfiguration is enabled but lists no events")
  end
end

local function apply_group_fields(info, input)
  for _, f in ipairs(GROUP_FIELDS) do
    if input[f] ~= nil then info[f] = copy(input[f]) end
  end
  info.deploymentConfigName = info.deploymentConfigName or "CodeDeployDefault.ECSAllAtOnce"
  info.deploymentStyle = info.deploymentStyle or { deploymentType = "BLUE_GREEN", deploymentOption = "WITH_TRAFFIC_CONTROL" }
  info.blueGreenDeploymentConfiguration = info.blueGreenDeploymentConfiguration or {}
  local bg = info.blueGreenDeploymentConfiguration
  bg.terminateBlueInstancesOnDeploymentSuccess = bg.terminateBlueInstancesOnDeploymentSuccess
    or { action = "TERMINATE", terminationWaitTimeInMinutes = 0 }
  bg.deploymentReadyOption = bg.deploymentReadyOption
    or { actionOnTimeout = "CONTINUE_DEPLOYMENT", waitTimeInMinutes = 0 }
end

local function group_info(app, g)
  local out = copy(g.info)
  out.applicationName = app.applicationName
  out.deploymentGroupId = g.id
  out.deploymentGroupName = g.name
  out.computePlatform = app.computePlatform
  out.lastSuccessfulDeployment = copy(g.last_success)
  out.lastAttemptedDeployment = copy(g.last_attempt)
  out.targetRevision = copy(g.last_revision)
  return out
end

local function group_exists(world, app, name)
  world:fail("DeploymentGroupAlreadyExistsException", "A deployment group named " .. name .. " already exists in application " .. app.applicationName .. ".")
end

function ops.CreateDeploymentGroup(world, input)
  local app = get_app(world, input.applicationName)
  local name = required(world, input.deploymentGroupName, "DeploymentGroupNameRequiredException",
    "The deployment group name is required.")
  if app.groups[name] then group_exists(world, app, name) end
  if limits.count(app.groups) >= limits.CODEDEPLOY.DEPLOYMENT_GROUPS_PER_APPLICATION then
    world:fail("DeploymentGroupLimitExceededException", string.format("The deployment groups limit was "
      .. "exceeded (%d per application).", limits.CODEDEPLOY.DEPLOYMENT_GROUPS_PER_APPLICATION))
  end
  if not input.serviceRoleArn or input.serviceRoleArn == "" then world:fail("RoleRequiredException", "serviceRoleArn is required.") end
  local info = {}
  apply_group_fields(info, input)
  check_group(world, app, info)
  local g = { id = R.uuid(world), name = name, info = info, tags = copy(input.tags) }
  app.groups[name] = g
  return { deploymentGroupId = g.id }
end

function ops.GetDeploymentGroup(world, input)
  local app = get_app(world, input.applicationName)
  return { deploymentGroupInfo = group_info(app, get_group(world, app, input.deploymentGroupName)) }
end

function ops.BatchGetDeploymentGroups(world, input)
  local app = get_app(world, input.applicationName)
  local out, missing = {}, {}
  for _, n in ipairs(input.deploymentGroupNames or {}) do
    local g = app.groups[n]
    if g then out[#out + 1] = group_info(app, g) else missing[#missing + 1] = n end
  end
  return { deploymentGroupsInfo = out,
           errorMessage = #missing > 0 and ("Deployment groups not found: " .. table.concat(missing, ", ")) or nil }
end

function ops.ListDeploymentGroups(world, input)
  local app = get_app(world, input.applicationName)
  return { applicationName = app.applicationName, deploymentGroups = tables.keys(app.groups) }
end

function ops.UpdateDeploymentGroup(world, input)
  local app = get_app(world, input.applicationName)
  local g = get_group(world, app, input.currentDeploymentGroupName)
  local new = input.newDeploymentGroupName
  if new and new ~= g.name and app.groups[new] then group_exists(world, app, new) end
  local info = copy(g.info)
  apply_group_fields(info, input)
  check_group(world, app, info)
  g.info = info
  if new and new ~= g.name then
    app.groups[g.name] = nil
    g.name = new
    app.groups[new] = g
  end
  return { hooksNotCleanedUp = {} }
end

-- AWS answers success for a group that does not exist.
function ops.DeleteDeploymentGroup(world, input)
  local app = get_app(world, input.applicationName)
  required(world, input.deploymentGroupName, "DeploymentGroupNameRequiredException", "The deployment group name is required.")
  app.groups[input.deploymentGroupName] = nil
  return { hooksNotCleanedUp = {} }
end

return M
