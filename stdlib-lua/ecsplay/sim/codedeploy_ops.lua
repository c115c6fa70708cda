--[[
The CodeDeploy API operations of the simulator (sim/codedeploy.lua owns the
deployment flow; this file owns validation and the output shapes).

Outputs use the model's member names exactly (including ECSTaskSet's
"identifer"). Everything returned is a copy: callers may keep or change it
without touching the simulator's state.
]]
return function(M, H)
  local copy, contains, sorted_keys, state = H.copy, H.contains, H.sorted_keys, H.state
  local get_app, get_group, get_config, get_deployment = H.get_app, H.get_group, H.get_config, H.get_deployment
  local TERMINAL = H.TERMINAL
  local ops = {}
  M.ops = ops

  local function uuid(world)
    local h = world:id(nil, 32)
    return string.format("%s-%s-%s-%s-%s", h:sub(1, 8), h:sub(9, 12), h:sub(13, 16), h:sub(17, 20), h:sub(21, 32))
  end

  -- ------------------------------------------------------------ applications

  local function app_info(a)
    return { applicationId = a.applicationId, applicationName = a.applicationName, createTime = a.createTime,
             linkedToGitHub = false, computePlatform = a.computePlatform }
  end

  function ops.CreateApplication(world, input)
    local st = state(world)
    local name = input.applicationName
    if name == nil or name == "" then world:fail("ApplicationNameRequiredException", "The application name is required.") end
    if st.apps[name] then world:fail("ApplicationAlreadyExistsException", "An application with name " .. name .. " already exists.") end
    local platform = input.computePlatform or "Server"
    if platform ~= "ECS" then
      world:fail("InvalidComputePlatformException", "computePlatform " .. platform
        .. " is not simulated: the simulator runs ECS applications only (set computePlatform = \"ECS\")")
    end
    local a = { applicationId = uuid(world), applicationName = name, createTime = world.now,
                computePlatform = platform, groups = {}, tags = copy(input.tags) }
    st.apps[name] = a
    return { applicationId = a.applicationId }
  end

  function ops.GetApplication(world, input)
    return { application = app_info(get_app(world, input.applicationName)) }
  end

  function ops.BatchGetApplications(world, input)
    local names = input.applicationNames or {}
    if #names > 100 then world:fail("BatchLimitExceededException", "The maximum number of names is 100, got " .. #names .. ".") end
    local out = {}
    for i, n in ipairs(names) do out[i] = app_info(get_app(world, n)) end
    return { applicationsInfo = out }
  end

  function ops.ListApplications(world)
    return { applications = sorted_keys(state(world).apps) }
  end

  -- AWS answers success for a name that does not exist.
  function ops.DeleteApplication(world, input)
    if input.applicationName == nil or input.applicationName == "" then
      world:fail("ApplicationNameRequiredException", "The application name is required.")
    end
    state(world).apps[input.applicationName] = nil
    return {}
  end

  -- ------------------------------------------------------------ deployment configs

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

  function ops.CreateDeploymentConfig(world, input)
    local st = state(world)
    local name = input.deploymentConfigName
    if name == nil or name == "" then world:fail("DeploymentConfigNameRequiredException", "The deployment configuration name is required.") end
    if st.configs[name] then world:fail("DeploymentConfigAlreadyExistsException", "A deployment configuration named " .. name .. " already exists.") end
    if name:find("^CodeDeployDefault%.") then
      world:fail("InvalidDeploymentConfigNameException", "The CodeDeployDefault. prefix is reserved for predefined configurations: " .. name)
    end
    local platform = input.computePlatform or "Server"
    if platform ~= "ECS" then
      world:fail("InvalidComputePlatformException", "computePlatform " .. platform .. " is not simulated: use computePlatform = \"ECS\"")
    end
    local trc = input.trafficRoutingConfig
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
    local c = { deploymentConfigId = uuid(world), deploymentConfigName = name, createTime = world.now,
                computePlatform = platform, trafficRoutingConfig = copy(trc) }
    st.configs[name] = c
    return { deploymentConfigId = c.deploymentConfigId }
  end

  function ops.GetDeploymentConfig(world, input)
    return { deploymentConfigInfo = config_info(get_config(world, input.deploymentConfigName)) }
  end

  function ops.ListDeploymentConfigs(world)
    return { deploymentConfigsList = sorted_keys(state(world).configs) }
  end

  function ops.DeleteDeploymentConfig(world, input)
    local st = state(world)
    local name = input.deploymentConfigName
    if name == nil or name == "" then world:fail("DeploymentConfigNameRequiredException", "The deployment configuration name is required.") end
    local c = st.configs[name]
    if not c then return {} end
    if c.predefined then world:fail("InvalidOperationException", "Predefined deployment configuration " .. name .. " cannot be deleted.") end
    for _, an in ipairs(sorted_keys(st.apps)) do
      for _, gn in ipairs(sorted_keys(st.apps[an].groups)) do
        if st.apps[an].groups[gn].info.deploymentConfigName == name then
          world:fail("DeploymentConfigInUseException", "Deployment configuration " .. name .. " is used by deployment group " .. an .. "/" .. gn .. ".")
        end
      end
    end
    st.configs[name] = nil
    return {}
  end

  -- ------------------------------------------------------------ deployment groups

  local GROUP_FIELDS = { "deploymentConfigName", "serviceRoleArn", "alarmConfiguration", "autoRollbackConfiguration",
    "deploymentStyle", "blueGreenDeploymentConfiguration", "loadBalancerInfo", "ecsServices",
    "triggerConfigurations", "outdatedInstancesStrategy", "terminationHookEnabled" }

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
    local ecs = world.svc.ecs
    if ecs and ecs.ops and ecs.ops.DescribeServices then
      local ok, svc = pcall(H.describe_service, world, svcs[1].clusterName, svcs[1].serviceName)
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

  function ops.CreateDeploymentGroup(world, input)
    local app = get_app(world, input.applicationName)
    local name = input.deploymentGroupName
    if name == nil or name == "" then world:fail("DeploymentGroupNameRequiredException", "The deployment group name is required.") end
    if app.groups[name] then
      world:fail("DeploymentGroupAlreadyExistsException", "A deployment group named " .. name .. " already exists in application " .. app.applicationName .. ".")
    end
    if not input.serviceRoleArn or input.serviceRoleArn == "" then world:fail("RoleRequiredException", "serviceRoleArn is required.") end
    local info = {}
    apply_group_fields(info, input)
    check_group(world, app, info)
    local g = { id = uuid(world), name = name, info = info, tags = copy(input.tags) }
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
    return { applicationName = app.applicationName, deploymentGroups = sorted_keys(app.groups) }
  end

  function ops.UpdateDeploymentGroup(world, input)
    local app = get_app(world, input.applicationName)
    local g = get_group(world, app, input.currentDeploymentGroupName)
    local new = input.newDeploymentGroupName
    if new and new ~= g.name and app.groups[new] then
      world:fail("DeploymentGroupAlreadyExistsException", "A deployment group named " .. new .. " already exists in application " .. app.applicationName .. ".")
    end
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
    if input.deploymentGroupName == nil or input.deploymentGroupName == "" then
      world:fail("DeploymentGroupNameRequiredException", "The deployment group name is required.")
    end
    app.groups[input.deploymentGroupName] = nil
    return { hooksNotCleanedUp = {} }
  end

  -- ------------------------------------------------------------ deployments

  local function sha256_hex(s)
    local ok, crypto = pcall(require, "ecsplay.core.crypto")
    if ok and crypto and crypto.sha256_hex then return crypto.sha256_hex(s) end
    return nil
  end

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
      local sum = sha256_hex(body.content)
      if sum and sum ~= body.sha256:lower() then
        world:fail("InvalidRevisionException", "revision.appSpecContent.sha256 does not match the content (sha256 of the content is " .. sum .. ")")
      end
    end
    local doc, where = H.appspec.parse(body.content)
    if not doc then world:fail("InvalidRevisionException", "The AppSpec content is invalid: " .. where) end
    local spec, err = H.appspec.ecs(doc, where)
    if not spec then world:fail("InvalidRevisionException", "The AppSpec content is invalid: " .. err) end
    return spec
  end

  function ops.CreateDeployment(world, input)
    local st = state(world)
    local app = get_app(world, input.applicationName)
    local g = get_group(world, app, input.deploymentGroupName)
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
    local spec = read_revision(world, input.revision)
    local info = g.info
    local pair = info.loadBalancerInfo.targetGroupPairInfoList[1]
    local svc = info.ecsServices[1]
    local id = "d-" .. world:id(nil, 9):upper()
    local d = {
      id = id, app = app.applicationName, group = g, group_name = g.name,
      config_name = config_name, config = copy(config),
      status = "Created", target_status = "Pending", creator = "user",
      create_time = world.now, updated = world.now, description = input.description,
      revision = copy(input.revision), previous_revision = copy(g.last_revision), spec = spec,
      auto_rollback = copy(ar or info.autoRollbackConfiguration),
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
      phase = "start", start_at = world.now + H.START_DELAY, events = {},
    }
    local hooks = {}
    for _, h in ipairs(spec.hooks) do hooks[h.event] = h.fn end
    for i, name in ipairs(H.EVENTS) do d.events[i] = { name = name, status = "Pending", fn = hooks[name] } end
    st.deployments[id] = d
    st.order[#st.order + 1] = id
    st.active[#st.active + 1] = d
    g.active = d
    H.schedule(world, d, d.start_at)
    return { deploymentId = id }
  end

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
    if #ids > 25 then world:fail("BatchLimitExceededException", "The maximum number of deployment IDs is 25, got " .. #ids .. ".") end
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

  -- ------------------------------------------------------------ targets

  local function task_sets_info(world, d)
    local ok, svc = pcall(H.describe_service, world, d.cluster, d.service)
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
      local ts = ok and H.find_task_set(svc, ref)
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

  -- ------------------------------------------------------------ controlling a deployment

  local function not_completed(world, d)
    if TERMINAL[d.status] then
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
    H.step(world, d)
    return {}
  end

  function ops.StopDeployment(world, input)
    local d = get_deployment(world, input.deploymentId)
    not_completed(world, d)
    local rb = input.autoRollbackEnabled
    if rb == nil then rb = H.rollback_on(d, "DEPLOYMENT_STOP_ON_REQUEST") end
    H.stop_deployment(world, d, "MANUAL_STOP", "The deployment was stopped by a StopDeployment request.", rb)
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
    H.step(world, d)
    return { lifecycleEventHookExecutionId = hid }
  end

  return M
end
