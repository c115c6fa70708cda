-- The simulated CodeDeploy (sim/codedeploy/) against small fake ecs/elbv2/
-- cloudwatch modules that record the calls CodeDeploy makes, so the flow is
-- checked on its own: order of traffic shifts, times, rollbacks, hooks, errors.
local T = require "harness"
local World = require "ecsplay.sim.world"
local codedeploy = require "ecsplay.sim.codedeploy"

local PROD, TEST = "arn:listener/prod", "arn:listener/test"
local BLUE, GREEN = "arn:tg/app-blue", "arn:tg/app-green"

-- ------------------------------------------------------------------ fakes

-- elbv2: two target groups, listener forwards, healthy counts set by the fake ecs.
local function fake_elbv2()
  local M = { name = "elbv2" }
  function M.init()
    return { forward = { [PROD] = { [BLUE] = 100 }, [TEST] = { [GREEN] = 100 } },
             healthy = { [BLUE] = 3, [GREEN] = 0 }, calls = {},
             tgs = { ["app-blue"] = BLUE, ["app-green"] = GREEN } }
  end
  function M.target_group(world, ref)
    local s = world.state.elbv2
    for name, arn in pairs(s.tgs) do
      if ref == name or ref == arn then return { TargetGroupArn = arn, TargetGroupName = name } end
    end
  end
  function M.set_forward(world, l, weights)
    local s = world.state.elbv2
    s.forward[l] = weights
    s.calls[#s.calls + 1] = { t = world.now, listener = l, weights = weights }
  end
  function M.get_forward(world, l) return world.state.elbv2.forward[l] end
  function M.healthy_count(world, tg) return world.state.elbv2.healthy[tg] or 0 end
  M.ops = {}
  return M
end

-- ecs: one CODE_DEPLOY service "app" with a PRIMARY blue task set; a created task
-- set becomes healthy 30 s later unless its task definition contains "bad".
local function fake_ecs()
  local M = { name = "ecs" }
  function M.init()
    return { calls = {}, n = 1, desired = 3,
             sets = { { id = "ecs-svc/1", taskSetArn = "arn:ts/1", status = "PRIMARY", computedDesiredCount = 3,
                        pendingCount = 0, runningCount = 3, taskDefinition = "app:1",
                        loadBalancers = { { targetGroupArn = BLUE } } } } }
  end
  local function rec(world, op, input, caller)
    local s = world.state.ecs
    s.calls[#s.calls + 1] = { op = op, input = input, caller = caller, t = world.now }
    return s
  end
  local function find(s, ref)
    for i, ts in ipairs(s.sets) do if ts.taskSetArn == ref or ts.id == ref then return ts, i end end
  end
  M.ops = {
    DescribeServices = function(world, input)
      local s = world.state.ecs
      if input.services[1] ~= "app" or input.cluster ~= "production" then
        return { services = {}, failures = { { reason = "MISSING" } } }
      end
      local sets = {}
      for i, ts in ipairs(s.sets) do sets[i] = ts end
      return { services = { { serviceName = "app", status = "ACTIVE", desiredCount = s.desired,
        serviceArn = "arn:aws:ecs:us-east-1:123456789012:service/production/app",
        deploymentController = { type = "CODE_DEPLOY" }, launchType = "FARGATE", taskSets = sets } } }
    end,
    CreateTaskSet = function(world, input, caller)
      local s = rec(world, "CreateTaskSet", input, caller)
      if caller ~= "codedeploy" then world:fail("InvalidParameterException", "CODE_DEPLOY service") end
      s.n = s.n + 1
      local ts = { id = "ecs-svc/" .. s.n, taskSetArn = "arn:ts/" .. s.n, status = "ACTIVE",
                   computedDesiredCount = s.desired, pendingCount = s.desired, runningCount = 0,
                   taskDefinition = input.taskDefinition, loadBalancers = input.loadBalancers }
      s.sets[#s.sets + 1] = ts
      if not input.taskDefinition:find("bad") then
        world:at(world.now + 30, function(w)
          ts.pendingCount, ts.runningCount = 0, s.desired
          w.state.elbv2.healthy[input.loadBalancers[1].targetGroupArn] = s.desired
        end)
      end
      return { taskSet = ts }
    end,
    DeleteTaskSet = function(world, input, caller)
      local s = rec(world, "DeleteTaskSet", input, caller)
      local ts, i = find(s, input.taskSet)
      if not ts then world:fail("TaskSetNotFoundException", "no task set " .. input.taskSet) end
      table.remove(s.sets, i)
      world.state.elbv2.healthy[ts.loadBalancers[1].targetGroupArn] = 0
      return { taskSet = ts }
    end,
    UpdateServicePrimaryTaskSet = function(world, input, caller)
      local s = rec(world, "UpdateServicePrimaryTaskSet", input, caller)
      for _, ts in ipairs(s.sets) do
        ts.status = (ts.taskSetArn == input.primaryTaskSet) and "PRIMARY" or "ACTIVE"
      end
      return { taskSet = find(s, input.primaryTaskSet) }
    end,
  }
  return M
end

local function fake_cloudwatch()
  local M = { name = "cloudwatch", ops = {} }
  function M.init() return { alarms = { ["app-5xx"] = "OK" } } end
  function M.alarm_state(world, name) return world.state.cloudwatch.alarms[name] end
  return M
end

-- ------------------------------------------------------------------ helpers

local APPSPEC = [[
version: 0.0
Resources:
  - TargetService:
      Type: AWS::ECS::Service
      Properties:
        TaskDefinition: "%s"
        LoadBalancerInfo:
          ContainerName: "app"
          ContainerPort: 8080
%s]]

local function revision(taskdef, hooks)
  return { revisionType = "AppSpecContent", appSpecContent = { content = APPSPEC:format(taskdef or "app:2", hooks or "") } }
end

local function new_world(scenario)
  local w = World.new { scenario = scenario or {} }
  w:add_service(fake_ecs())
  w:add_service(fake_elbv2())
  w:add_service(fake_cloudwatch())
  w:add_service(codedeploy)
  return w
end

local function op(w, name, input) return codedeploy.ops[name](w, input or {}) end

-- Calls fn and returns the simulator error it raised, checking its code.
local function fails(code, fn)
  local ok, e = pcall(fn)
  T.ok(not ok, "expected " .. code .. " but the call succeeded")
  T.ok(type(e) == "table" and e.sim_error, "expected a simulator error, got " .. tostring(e))
  T.eq(e.code, code, "error code (" .. tostring(e.message) .. ")")
  T.eq(e.status, 400, "status")
  return e
end

local function setup(w, group)
  op(w, "CreateApplication", { applicationName = "app-deploy", computePlatform = "ECS" })
  local input = {
    applicationName = "app-deploy", deploymentGroupName = "app-dg",
    serviceRoleArn = "arn:aws:iam::123456789012:role/codedeploy",
    deploymentConfigName = "CodeDeployDefault.ECSCanary10Percent5Minutes",
    ecsServices = { { serviceName = "app", clusterName = "production" } },
    loadBalancerInfo = { targetGroupPairInfoList = { {
      targetGroups = { { name = "app-blue" }, { name = "app-green" } },
      prodTrafficRoute = { listenerArns = { PROD } }, testTrafficRoute = { listenerArns = { TEST } } } } },
    deploymentStyle = { deploymentType = "BLUE_GREEN", deploymentOption = "WITH_TRAFFIC_CONTROL" },
    blueGreenDeploymentConfiguration = {
      terminateBlueInstancesOnDeploymentSuccess = { action = "TERMINATE", terminationWaitTimeInMinutes = 5 },
      deploymentReadyOption = { actionOnTimeout = "CONTINUE_DEPLOYMENT", waitTimeInMinutes = 0 } },
    autoRollbackConfiguration = { enabled = true, events = { "DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST" } },
    alarmConfiguration = { enabled = true, alarms = { { name = "app-5xx" } } },
  }
  for k, v in pairs(group or {}) do input[k] = v end
  return op(w, "CreateDeploymentGroup", input)
end

local function deploy(w, extra)
  local input = { applicationName = "app-deploy", deploymentGroupName = "app-dg", revision = revision() }
  for k, v in pairs(extra or {}) do input[k] = v end
  return op(w, "CreateDeployment", input).deploymentId
end

local function info(w, id) return op(w, "GetDeployment", { deploymentId = id }).deploymentInfo end
local function target(w, id)
  return op(w, "GetDeploymentTarget", { deploymentId = id, targetId = "production:app" }).deploymentTarget.ecsTarget
end

-- Advances in small steps until pred() holds; returns the time it first held.
local function run_until(w, pred, limit)
  local stop = w.now + (limit or 7200)
  while w.now < stop do
    if pred() then return w.now end
    w:advance(w.now + 1)
  end
  error("condition not reached within " .. (limit or 7200) .. " s")
end

local function ecs_calls(w, name)
  local out = {}
  for _, c in ipairs(w.state.ecs.calls) do if c.op == name then out[#out + 1] = c end end
  return out
end

local function shifts(w, listener)
  local out = {}
  for _, c in ipairs(w.state.elbv2.calls) do if c.listener == listener then out[#out + 1] = c end end
  return out
end

-- ------------------------------------------------------------------ tests

T.test("the predefined ECS deployment configurations exist from the start", function()
  local w = new_world()
  T.eq(op(w, "ListDeploymentConfigs").deploymentConfigsList, {
    "CodeDeployDefault.ECSAllAtOnce", "CodeDeployDefault.ECSCanary10Percent15Minutes",
    "CodeDeployDefault.ECSCanary10Percent5Minutes", "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery3Minutes" })
  local c = op(w, "GetDeploymentConfig", { deploymentConfigName = "CodeDeployDefault.ECSCanary10Percent5Minutes" }).deploymentConfigInfo
  T.eq(c.computePlatform, "ECS")
  T.eq(c.trafficRoutingConfig, { type = "TimeBasedCanary", timeBasedCanary = { canaryPercentage = 10, canaryInterval = 5 } })
  fails("InvalidOperationException", function()
    op(w, "DeleteDeploymentConfig", { deploymentConfigName = "CodeDeployDefault.ECSAllAtOnce" })
  end)
  fails("DeploymentConfigDoesNotExistException", function() op(w, "GetDeploymentConfig", { deploymentConfigName = "nope" }) end)
end)

T.test("applications and deployment groups: create, get, list, update, delete", function()
  local w = new_world()
  setup(w)
  T.eq(op(w, "ListApplications").applications, { "app-deploy" })
  local a = op(w, "GetApplication", { applicationName = "app-deploy" }).application
  T.eq(a.computePlatform, "ECS")
  T.eq(#a.applicationId, 36, "application id is a UUID")
  T.eq(op(w, "ListDeploymentGroups", { applicationName = "app-deploy" }).deploymentGroups, { "app-dg" })
  local g = op(w, "GetDeploymentGroup", { applicationName = "app-deploy", deploymentGroupName = "app-dg" }).deploymentGroupInfo
  T.eq(g.deploymentConfigName, "CodeDeployDefault.ECSCanary10Percent5Minutes")
  T.eq(g.ecsServices, { { serviceName = "app", clusterName = "production" } })
  T.eq(g.computePlatform, "ECS")
  T.eq(g.blueGreenDeploymentConfiguration.terminateBlueInstancesOnDeploymentSuccess.terminationWaitTimeInMinutes, 5)
  fails("ApplicationAlreadyExistsException", function() op(w, "CreateApplication", { applicationName = "app-deploy", computePlatform = "ECS" }) end)
  fails("DeploymentGroupAlreadyExistsException", function() op(w, "CreateDeploymentGroup", {
    applicationName = "app-deploy", deploymentGroupName = "app-dg", serviceRoleArn = "r" }) end)
  op(w, "UpdateDeploymentGroup", { applicationName = "app-deploy", currentDeploymentGroupName = "app-dg",
    newDeploymentGroupName = "app-dg2", deploymentConfigName = "CodeDeployDefault.ECSAllAtOnce" })
  g = op(w, "GetDeploymentGroup", { applicationName = "app-deploy", deploymentGroupName = "app-dg2" }).deploymentGroupInfo
  T.eq(g.deploymentConfigName, "CodeDeployDefault.ECSAllAtOnce")
  T.eq(g.alarmConfiguration.alarms, { { name = "app-5xx" } }, "fields not given are kept")
  op(w, "DeleteDeploymentGroup", { applicationName = "app-deploy", deploymentGroupName = "app-dg2" })
  T.eq(op(w, "ListDeploymentGroups", { applicationName = "app-deploy" }).deploymentGroups, {})
  op(w, "DeleteApplication", { applicationName = "app-deploy" })
  T.eq(op(w, "ListApplications").applications, {})
end)

T.test("deployment group validation: service, controller, target groups, config", function()
  local w = new_world()
  fails("ApplicationDoesNotExistException", function() setup(w) ; op(w, "CreateDeploymentGroup", {
    applicationName = "missing", deploymentGroupName = "x", serviceRoleArn = "r" }) end)
  local e = fails("InvalidECSServiceException", function()
    op(w, "CreateDeploymentGroup", { applicationName = "app-deploy", deploymentGroupName = "g2", serviceRoleArn = "r",
      ecsServices = { { serviceName = "nope", clusterName = "production" } },
      loadBalancerInfo = { targetGroupPairInfoList = { { targetGroups = { { name = "app-blue" }, { name = "app-green" } },
        prodTrafficRoute = { listenerArns = { PROD } } } } } })
  end)
  T.ok(e.message:find("nope"), "names the service")
  fails("InvalidTargetGroupPairException", function()
    op(w, "CreateDeploymentGroup", { applicationName = "app-deploy", deploymentGroupName = "g2", serviceRoleArn = "r",
      ecsServices = { { serviceName = "app", clusterName = "production" } },
      loadBalancerInfo = { targetGroupPairInfoList = { { targetGroups = { { name = "app-blue" }, { name = "other" } },
        prodTrafficRoute = { listenerArns = { PROD } } } } } })
  end)
  fails("DeploymentConfigDoesNotExistException", function()
    op(w, "CreateDeploymentGroup", { applicationName = "app-deploy", deploymentGroupName = "g2", serviceRoleArn = "r",
      deploymentConfigName = "missing" })
  end)
  fails("InvalidComputePlatformException", function() op(w, "CreateApplication", { applicationName = "srv" }) end)
end)

T.test("canary deployment: test listener, prod 10/90, 100 after 5 min, blue deleted after the termination wait", function()
  local w = new_world()
  setup(w)
  local t0 = w.now
  local id = deploy(w)
  T.ok(id:match("^d%-[A-Z0-9]+$") and #id == 11, "deployment id format: " .. id)
  local d = info(w, id)
  T.eq(d.status, "Created")
  T.eq(d.creator, "user")
  T.eq(d.computePlatform, "ECS")
  T.eq(d.deploymentConfigName, "CodeDeployDefault.ECSCanary10Percent5Minutes")
  fails("DeploymentNotStartedException", function() op(w, "ListDeploymentTargets", { deploymentId = id }) end)

  w:advance(t0 + 10)
  d = info(w, id)
  T.eq(d.status, "InProgress")
  T.eq(d.startTime, t0 + 1)
  local creates = ecs_calls(w, "CreateTaskSet")
  T.eq(#creates, 1)
  local c = creates[1]
  T.eq(c.caller, "codedeploy")
  T.eq(c.input.taskDefinition, "app:2")
  T.eq(c.input.scale, { value = 100, unit = "PERCENT" })
  T.eq(c.input.loadBalancers, { { targetGroupArn = GREEN, containerName = "app", containerPort = 8080 } })
  T.eq(c.input.externalId, id)
  T.eq(#w.state.elbv2.calls, 0, "no traffic moves before green is healthy")
  T.eq(op(w, "ListDeploymentTargets", { deploymentId = id }).targetIds, { "production:app" })
  local tg = target(w, id)
  T.eq(tg.lifecycleEvents[2].lifecycleEventName, "Install")
  T.eq(tg.lifecycleEvents[2].status, "InProgress")
  T.eq(tg.status, "InProgress")
  T.eq(#tg.taskSetsInfo, 2)
  T.eq(tg.taskSetsInfo[1].taskSetLabel, "Blue")
  T.eq(tg.taskSetsInfo[1].trafficWeight, 100.0)
  T.eq(tg.taskSetsInfo[2].taskSetLabel, "Green")
  T.eq(tg.taskSetsInfo[2].targetGroup, { name = "app-green" })
  T.eq(tg.taskSetsInfo[2].identifer, "ecs-svc/2")

  -- green healthy at t0+31 (created at t0+1, healthy 30 s later): test traffic then prod 10 %
  w:advance(t0 + 40)
  local calls = w.state.elbv2.calls
  T.eq(#calls, 2)
  T.eq(calls[1].listener, TEST)
  T.eq(calls[1].weights, { [GREEN] = 100 })
  T.eq(calls[2].listener, PROD)
  T.eq(calls[2].weights, { [BLUE] = 90, [GREEN] = 10 })
  -- health is polled on the world's 5 s tick: the first tick after green is healthy
  T.ok(calls[1].t >= t0 + 31 and calls[1].t < t0 + 31 + w.tick, "test traffic at " .. (calls[1].t - t0))
  local shifted = calls[2].t
  T.eq(target(w, id).taskSetsInfo[2].trafficWeight, 10.0)

  w:advance(shifted + 299)
  T.eq(#w.state.elbv2.calls, 2, "canary holds for the interval")
  w:advance(shifted + 300)
  calls = w.state.elbv2.calls
  T.eq(#calls, 3)
  T.eq(calls[3].listener, PROD)
  T.eq(calls[3].weights, { [GREEN] = 100 })
  T.eq(calls[3].t, shifted + 300, "100 % exactly 5 minutes after the canary step")
  local prim = ecs_calls(w, "UpdateServicePrimaryTaskSet")
  T.eq(#prim, 1)
  T.eq(prim[1].input.primaryTaskSet, "arn:ts/2")
  d = info(w, id)
  T.eq(d.status, "InProgress", "still InProgress during the termination wait")
  T.eq(d.instanceTerminationWaitTimeStarted, true)
  T.eq(#ecs_calls(w, "DeleteTaskSet"), 0)

  w:advance(shifted + 300 + 299)
  T.eq(#ecs_calls(w, "DeleteTaskSet"), 0, "blue kept for the whole termination wait")
  w:advance(shifted + 300 + 300)
  local del = ecs_calls(w, "DeleteTaskSet")
  T.eq(#del, 1)
  T.eq(del[1].input.taskSet, "arn:ts/1")
  d = info(w, id)
  T.eq(d.status, "Succeeded")
  T.eq(d.completeTime, shifted + 600)
  T.eq(d.deploymentOverview, { Pending = 0, InProgress = 0, Succeeded = 1, Failed = 0, Skipped = 0, Ready = 0 })
  tg = target(w, id)
  T.eq(tg.status, "Succeeded")
  for i, e in ipairs(tg.lifecycleEvents) do
    T.eq(e.status, "Succeeded", "event " .. i .. " " .. e.lifecycleEventName)
  end
  T.eq(#tg.lifecycleEvents, 8)
  local g = op(w, "GetDeploymentGroup", { applicationName = "app-deploy", deploymentGroupName = "app-dg" }).deploymentGroupInfo
  T.eq(g.lastSuccessfulDeployment.deploymentId, id)
  T.eq(op(w, "ListDeployments", { applicationName = "app-deploy", includeOnlyStatuses = { "Succeeded" } }).deployments, { id })

  -- the next deployment goes the other way: app-blue is now the idle target group
  local id2 = deploy(w, { deploymentConfigName = "CodeDeployDefault.ECSAllAtOnce" })
  run_until(w, function() return info(w, id2).status == "Succeeded" end)
  local last = ecs_calls(w, "CreateTaskSet")[2]
  T.eq(last.input.loadBalancers[1].targetGroupArn, BLUE)
  T.eq(w.state.elbv2.forward[PROD], { [BLUE] = 100 })
  T.eq(info(w, id2).previousRevision, revision())
end)

T.test("custom TimeBasedLinear config shifts in equal steps", function()
  local w = new_world()
  op(w, "CreateDeploymentConfig", { deploymentConfigName = "linear-25-2", computePlatform = "ECS",
    trafficRoutingConfig = { type = "TimeBasedLinear", timeBasedLinear = { linearPercentage = 25.0, linearInterval = 2.0 } } }) -- floats, as cjson decodes them
  fails("DeploymentConfigAlreadyExistsException", function()
    op(w, "CreateDeploymentConfig", { deploymentConfigName = "linear-25-2", computePlatform = "ECS",
      trafficRoutingConfig = { type = "AllAtOnce" } })
  end)
  fails("InvalidTrafficRoutingConfigurationException", function()
    op(w, "CreateDeploymentConfig", { deploymentConfigName = "bad", computePlatform = "ECS",
      trafficRoutingConfig = { type = "TimeBasedCanary", timeBasedCanary = { canaryPercentage = 0, canaryInterval = 5 } } })
  end)
  setup(w, { deploymentConfigName = "linear-25-2" })
  fails("DeploymentConfigInUseException", function() op(w, "DeleteDeploymentConfig", { deploymentConfigName = "linear-25-2" }) end)
  local id = deploy(w)
  run_until(w, function() return info(w, id).status == "Succeeded" end)
  local prod = shifts(w, PROD)
  T.eq(#prod, 4)
  local want = { 25, 50, 75, 100 }
  for i, c in ipairs(prod) do
    T.eq(c.weights[GREEN], want[i], "step " .. i)
    T.eq(math.type(c.weights[GREEN]), "integer", "weights are whole percents")
    if i > 1 then T.eq(c.t - prod[i - 1].t, 120, "2 minutes between steps") end
  end
  T.eq(prod[2].weights[BLUE], 50)
end)

T.test("StopDeployment with rollback: Stopped, prod back to blue, green deleted, rollback deployment", function()
  local w = new_world()
  setup(w)
  local id = deploy(w)
  run_until(w, function() return #shifts(w, PROD) == 1 end)
  T.eq(w.state.elbv2.forward[PROD], { [BLUE] = 90, [GREEN] = 10 })
  local out = op(w, "StopDeployment", { deploymentId = id, autoRollbackEnabled = true })
  T.eq(out.status, "Succeeded")
  local d = info(w, id)
  T.eq(d.status, "Stopped")
  T.eq(d.errorInformation.code, "MANUAL_STOP")
  T.eq(w.state.elbv2.forward[PROD], { [BLUE] = 100 }, "prod back to blue")
  T.eq(w.state.elbv2.forward[TEST], { [GREEN] = 100 }, "test listener restored to what it was")
  local del = ecs_calls(w, "DeleteTaskSet")
  T.eq(#del, 1)
  T.eq(del[1].input.taskSet, "arn:ts/2", "green deleted, blue kept")
  local rid = d.rollbackInfo.rollbackDeploymentId
  T.ok(rid and rid ~= id, "a rollback deployment id")
  local r = info(w, rid)
  T.eq(r.creator, "codeDeployRollback")
  T.eq(r.status, "Succeeded")
  T.eq(r.rollbackInfo.rollbackTriggeringDeploymentId, id)
  local tg = target(w, id)
  T.eq(tg.status, "Failed")
  T.eq(tg.lifecycleEvents[7].status, "Failed", "AllowTraffic was interrupted")
  T.eq(tg.lifecycleEvents[8].status, "Skipped")
  fails("DeploymentAlreadyCompletedException", function() op(w, "StopDeployment", { deploymentId = id }) end)
  -- the group is free again
  T.ok(deploy(w), "a new deployment can start")
end)

T.test("StopDeployment without rollback leaves traffic where it is", function()
  local w = new_world()
  setup(w, { autoRollbackConfiguration = { enabled = false } })
  local id = deploy(w)
  run_until(w, function() return #shifts(w, PROD) == 1 end)
  op(w, "StopDeployment", { deploymentId = id })
  T.eq(info(w, id).status, "Stopped")
  T.eq(info(w, id).rollbackInfo, nil)
  T.eq(w.state.elbv2.forward[PROD], { [BLUE] = 90, [GREEN] = 10 })
  T.eq(#ecs_calls(w, "DeleteTaskSet"), 0)
end)

T.test("an alarm in ALARM stops the deployment and rolls back", function()
  local w = new_world()
  setup(w)
  local id = deploy(w)
  local t_shift = run_until(w, function() return #shifts(w, PROD) == 1 end)
  w:at(t_shift + 120, function(ww) ww.state.cloudwatch.alarms["app-5xx"] = "ALARM" end)
  run_until(w, function() return info(w, id).status ~= "InProgress" end)
  local d = info(w, id)
  T.eq(d.status, "Stopped")
  T.eq(d.errorInformation.code, "ALARM_ACTIVE")
  T.ok(d.errorInformation.message:find("app%-5xx"), "names the alarm")
  T.ok(d.completeTime >= t_shift + 120 and d.completeTime <= t_shift + 125, "stopped within a tick")
  T.eq(w.state.elbv2.forward[PROD], { [BLUE] = 100 })
  T.eq(#ecs_calls(w, "DeleteTaskSet"), 1)
  T.eq(info(w, d.rollbackInfo.rollbackDeploymentId).creator, "codeDeployRollback")
end)

T.test("alarm during the termination wait switches the primary task set back", function()
  local w = new_world()
  setup(w, { deploymentConfigName = "CodeDeployDefault.ECSAllAtOnce" })
  local id = deploy(w)
  run_until(w, function() return info(w, id).instanceTerminationWaitTimeStarted end)
  w.state.cloudwatch.alarms["app-5xx"] = "ALARM"
  w:advance(w.now + 5)
  T.eq(info(w, id).status, "Stopped")
  local prim = ecs_calls(w, "UpdateServicePrimaryTaskSet")
  T.eq(#prim, 2)
  T.eq(prim[2].input.primaryTaskSet, "arn:ts/1", "blue is primary again")
  T.eq(w.state.elbv2.forward[PROD], { [BLUE] = 100 })
end)

T.test("hooks: wait for PutLifecycleEventHookExecutionStatus; ids in diagnostics", function()
  local w = new_world { codedeploy = { hooks = { CheckFn = "wait" } } }
  setup(w, { deploymentConfigName = "CodeDeployDefault.ECSAllAtOnce" })
  local id = deploy(w, { revision = revision("app:2", "Hooks:\n  - BeforeInstall: PreFn\n  - AfterAllowTestTraffic: CheckFn\n") })
  run_until(w, function() return #shifts(w, TEST) == 1 end)
  w:advance(w.now + 600)
  T.eq(#shifts(w, PROD), 0, "prod waits for the hook")
  local ev = target(w, id).lifecycleEvents
  T.eq(ev[1].status, "Succeeded", "PreFn succeeds by default")
  T.eq(ev[1].diagnostics.errorCode, "Success")
  T.eq(ev[5].lifecycleEventName, "AfterAllowTestTraffic")
  T.eq(ev[5].status, "InProgress")
  T.eq(ev[5].diagnostics.scriptName, "CheckFn")
  local hid = ev[5].diagnostics.message:match("lifecycleEventHookExecutionId=(%w+)")
  T.ok(hid, "execution id exposed")
  T.eq(codedeploy.hook_executions(w, id)[2].lifecycleEventHookExecutionId, hid)
  fails("InvalidLifecycleEventHookExecutionIdException", function()
    op(w, "PutLifecycleEventHookExecutionStatus", { deploymentId = id, lifecycleEventHookExecutionId = "nope", status = "Succeeded" })
  end)
  local pre = ev[1].diagnostics.message:match("=(%w+)")
  fails("LifecycleEventAlreadyCompletedException", function()
    op(w, "PutLifecycleEventHookExecutionStatus", { deploymentId = id, lifecycleEventHookExecutionId = pre, status = "Succeeded" })
  end)
  local out = op(w, "PutLifecycleEventHookExecutionStatus", { deploymentId = id, lifecycleEventHookExecutionId = hid, status = "Succeeded" })
  T.eq(out.lifecycleEventHookExecutionId, hid)
  T.eq(#shifts(w, PROD), 1, "prod shifted as soon as the hook reported")
  run_until(w, function() return info(w, id).status == "Succeeded" end)
end)

T.test("hooks: a failing hook fails the deployment and rolls back", function()
  local w = new_world { hooks = "fail" }
  setup(w)
  local id = deploy(w, { revision = revision("app:2", "Hooks:\n- AfterAllowTestTraffic: CheckFn\n") })
  run_until(w, function() return info(w, id).status ~= "Created" and info(w, id).status ~= "InProgress" end)
  local d = info(w, id)
  T.eq(d.status, "Failed")
  T.eq(d.errorInformation.code, "HOOK_EXECUTION_FAILURE")
  T.ok(d.errorInformation.message:find("CheckFn"), "names the function")
  T.eq(w.state.elbv2.forward[TEST], { [GREEN] = 100 }, "test listener restored (it pointed at app-green before)")
  T.eq(#shifts(w, PROD), 0, "prod never moved")
  T.eq(#ecs_calls(w, "DeleteTaskSet"), 1)
  T.eq(target(w, id).lifecycleEvents[5].diagnostics.errorCode, "ScriptFailed")
end)

T.test("hooks: a waiting hook fails after the hook timeout", function()
  local w = new_world { codedeploy = { hooks = "wait", hook_timeout = "10m" } }
  setup(w)
  local id = deploy(w, { revision = revision("app:2", "Hooks:\n  - BeforeInstall: PreFn\n") })
  w:advance(w.now + 599)
  T.eq(info(w, id).status, "InProgress")
  w:advance(w.now + 2)
  T.eq(info(w, id).status, "Failed")
  T.eq(target(w, id).lifecycleEvents[1].diagnostics.errorCode, "ScriptTimedOut")
  T.eq(#ecs_calls(w, "CreateTaskSet"), 0)
end)

T.test("green never healthy: ECS_UPDATE_ERROR after the install timeout, rolled back", function()
  local w = new_world()
  setup(w)
  local t0 = w.now
  local id = deploy(w, { revision = revision("app:bad") })
  w:advance(t0 + 3600)
  T.eq(info(w, id).status, "InProgress")
  w:advance(t0 + 3601)
  local d = info(w, id)
  T.eq(d.status, "Failed")
  T.eq(d.errorInformation.code, "ECS_UPDATE_ERROR")
  T.ok(d.errorInformation.message:find("0 of 3"), d.errorInformation.message)
  T.eq(#ecs_calls(w, "DeleteTaskSet"), 1)
  T.eq(#w.state.elbv2.calls, 0)
end)

T.test("ready wait: status Ready until ContinueDeployment(READY_WAIT); TERMINATION_WAIT ends early", function()
  local w = new_world()
  setup(w, { deploymentConfigName = "CodeDeployDefault.ECSAllAtOnce",
    blueGreenDeploymentConfiguration = {
      terminateBlueInstancesOnDeploymentSuccess = { action = "TERMINATE", terminationWaitTimeInMinutes = 60 },
      deploymentReadyOption = { actionOnTimeout = "STOP_DEPLOYMENT", waitTimeInMinutes = 30 } } })
  local id = deploy(w)
  fails("DeploymentIsNotInReadyStateException", function() op(w, "ContinueDeployment", { deploymentId = id }) end)
  run_until(w, function() return info(w, id).status == "Ready" end)
  T.eq(target(w, id).status, "Ready")
  T.eq(info(w, id).deploymentOverview.Ready, 1)
  w:advance(w.now + 600)
  T.eq(#shifts(w, PROD), 0)
  op(w, "ContinueDeployment", { deploymentId = id, deploymentWaitType = "READY_WAIT" })
  T.eq(info(w, id).status, "InProgress")
  T.eq(#shifts(w, PROD), 1)
  T.eq(info(w, id).instanceTerminationWaitTimeStarted, true)
  w:advance(w.now + 60)
  T.eq(#ecs_calls(w, "DeleteTaskSet"), 0)
  op(w, "ContinueDeployment", { deploymentId = id, deploymentWaitType = "TERMINATION_WAIT" })
  T.eq(info(w, id).status, "Succeeded")
  T.eq(#ecs_calls(w, "DeleteTaskSet"), 1)
  fails("DeploymentAlreadyCompletedException", function() op(w, "ContinueDeployment", { deploymentId = id }) end)
end)

T.test("ready wait with STOP_DEPLOYMENT times out to Stopped", function()
  local w = new_world()
  setup(w, { blueGreenDeploymentConfiguration = {
      deploymentReadyOption = { actionOnTimeout = "STOP_DEPLOYMENT", waitTimeInMinutes = 5 } } })
  local id = deploy(w)
  local t_ready = run_until(w, function() return info(w, id).status == "Ready" end)
  run_until(w, function() return info(w, id).status ~= "Ready" end)
  local d = info(w, id)
  T.eq(d.status, "Stopped")
  T.eq(d.errorInformation.code, "TIMEOUT")
  T.ok(d.completeTime - t_ready <= 300, "stopped at the end of the wait")
  T.eq(#shifts(w, PROD), 0)
end)

T.test("errors: unknown application/group/config/deployment, second deployment, revision", function()
  local w = new_world()
  setup(w)
  fails("ApplicationDoesNotExistException", function() op(w, "CreateDeployment", { applicationName = "x", deploymentGroupName = "app-dg", revision = revision() }) end)
  fails("DeploymentGroupDoesNotExistException", function() op(w, "CreateDeployment", { applicationName = "app-deploy", deploymentGroupName = "x", revision = revision() }) end)
  fails("DeploymentConfigDoesNotExistException", function() deploy(w, { deploymentConfigName = "x" }) end)
  fails("RevisionRequiredException", function() deploy(w, { revision = false }) end)
  fails("InvalidRevisionException", function() deploy(w, { revision = { revisionType = "S3", s3Location = {} } }) end)
  fails("DeploymentDoesNotExistException", function() info(w, "d-ABCDEFGHI") end)
  fails("InvalidDeploymentIdException", function() info(w, "deployment-1") end)
  fails("ApplicationDoesNotExistException", function() op(w, "GetApplication", { applicationName = "x" }) end)

  local bad = { revisionType = "AppSpecContent", appSpecContent = { content =
    "version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\n     Properties: {}\n" } }
  local e = fails("InvalidRevisionException", function() deploy(w, { revision = bad }) end)
  T.ok(e.message:find("line 5"), "names the line: " .. e.message)
  bad.appSpecContent.content = APPSPEC:format("app:2", "Hooks:\n  - AfterDinner: Fn\n")
  e = fails("InvalidRevisionException", function() deploy(w, { revision = bad }) end)
  T.ok(e.message:find("AfterDinner") and e.message:find("line 11"), e.message)
  bad.appSpecContent.content = '{"Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {"TaskDefinition": "app:3"}}}]}'
  e = fails("InvalidRevisionException", function() deploy(w, { revision = bad }) end)
  T.ok(e.message:find("LoadBalancerInfo"), e.message)

  local id = deploy(w)
  e = fails("DeploymentLimitExceededException", function() deploy(w) end)
  T.ok(e.message:find(id, 1, true), "names the active deployment")
  fails("DeploymentTargetDoesNotExistException", function()
    w:advance(w.now + 5)
    op(w, "GetDeploymentTarget", { deploymentId = id, targetId = "production:other" })
  end)
end)

T.test("JSON AppSpec is accepted; deployments listed newest first", function()
  local w = new_world()
  setup(w, { deploymentConfigName = "CodeDeployDefault.ECSAllAtOnce" })
  local json = '{"version": 0.0, "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": '
    .. '{"TaskDefinition": "app:7", "LoadBalancerInfo": {"ContainerName": "app", "ContainerPort": 8080}}}}]}'
  local id1 = deploy(w, { revision = { revisionType = "AppSpecContent", appSpecContent = { content = json } } })
  run_until(w, function() return info(w, id1).status == "Succeeded" end)
  T.eq(ecs_calls(w, "CreateTaskSet")[1].input.taskDefinition, "app:7")
  local id2 = deploy(w)
  T.eq(op(w, "ListDeployments", { applicationName = "app-deploy", deploymentGroupName = "app-dg" }).deployments, { id2, id1 })
  T.eq(#op(w, "BatchGetDeployments", { deploymentIds = { id1, id2, "d-NOTTHERE1" } }).deploymentsInfo, 2)
end)
