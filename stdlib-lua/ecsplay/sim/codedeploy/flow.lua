--[[
The deployment flow of the simulated CodeDeploy: a deployment is a small
state machine (`step`) that moves as far as it can each time it is poked: by a
`world:at` wake-up for timed steps (canary intervals, ready and termination
waits, hook timeouts) and by the tick for conditions it has to poll (green
tasks healthy, alarms). Because every wait re-checks its condition against
`world.now`, poking early or twice is harmless, and the deployment at minute 7
is the same whoever is polling.

Phases: start (resolve blue and green) -> event (the lifecycle events in
order, each through its handler) -> [ready_enter/ready: the ready wait] ->
termination (the wait before blue is deleted) -> Succeeded. Anything that
fails a deployment goes through fail_deployment or stop_deployment, which
roll back when the deployment's autoRollbackConfiguration asks for it.
]]
local tables = require "ecsplay.util.tables"
local errors = require "ecsplay.errors"
local sim_util = require "ecsplay.sim.util"
local R = require "ecsplay.sim.codedeploy.records"

local copy, contains, state = tables.copy, R.contains, R.state
local abort, attempt = R.abort, R.attempt
local elbv2, ecs, tg_arn_of, describe_service = R.elbv2, R.ecs, R.tg_arn_of, R.describe_service
local TERMINAL, MINUTE = R.TERMINAL, R.MINUTE

local M = {}

-- ---------------------------------------------------------------- scenario settings

-- "90s", "5m", "1h", "250ms" or a number of seconds, from the scenario's codedeploy table.
local function duration(v, what)
  return sim_util.duration(v, "scenario codedeploy." .. what)
end

-- A setting of the scenario's `codedeploy` table (hooks also at the top level), or `default`.
local function setting(world, key, default)
  local sc = world.scenario or {}
  local v = type(sc.codedeploy) == "table" and sc.codedeploy[key] or nil
  if v == nil and key == "hooks" then v = sc.hooks end
  if v == nil then return default end
  return v
end

-- What the simulated Lambda of hook function `fn` does: "succeed", "fail", "wait" or seconds.
local function hook_policy(world, fn)
  local p = setting(world, "hooks", "succeed")
  if type(p) == "table" then p = p[fn] or p["*"] or p.default or "succeed" end
  if p == "succeed" or p == "fail" or p == "wait" then return p end
  return duration(p, "hooks")
end

-- ---------------------------------------------------------------- deployment bookkeeping

local step -- forward: the state machine driver

local function touch(world, d) d.updated = world.now end

local function schedule(world, d, t)
  world:at(math.max(t, world.now), function(w) step(w, d) end)
end

local function remove_active(world, d)
  local act = state(world).active
  for i, x in ipairs(act) do
    if x == d then table.remove(act, i) return end
  end
end

local function last_info(d)
  return { deploymentId = d.id, status = d.status, endTime = d.complete_time, createTime = d.create_time }
end

local function complete(world, d, status)
  d.status = status
  d.complete_time = world.now
  d.target_status = status == "Succeeded" and "Succeeded" or "Failed"
  for _, e in ipairs(d.events) do
    if e.status == "InProgress" then e.status = "Failed"; e.finish = world.now
    elseif e.status == "Pending" then e.status = "Skipped" end
  end
  touch(world, d)
  remove_active(world, d)
  local g = d.group
  if g.active == d then g.active = nil end
  if d.creator == "user" then
    g.last_attempt = last_info(d)
    if status == "Succeeded" then
      g.last_success = last_info(d)
      g.last_revision = copy(d.revision)
    end
  end
end

local function rollback_on(d, event)
  local ar = d.auto_rollback
  return ar ~= nil and ar.enabled == true and contains(ar.events, event)
end

-- A rollback deployment record, as AWS shows one: a new id, creator codeDeployRollback.
local function record_rollback(world, d, message, ok)
  local st = state(world)
  local rid = "d-" .. world:id(nil, 9):upper()
  local rd = {
    id = rid, app = d.app, group = d.group, group_name = d.group_name, config_name = d.config_name,
    creator = "codeDeployRollback", status = ok and "Succeeded" or "Failed",
    create_time = world.now, start_time = world.now, complete_time = world.now, updated = world.now,
    revision = copy(d.previous_revision), previous_revision = copy(d.revision),
    auto_rollback = copy(d.auto_rollback), style = copy(d.style), bg = copy(d.bg), lb = copy(d.lb),
    cluster = d.cluster, service = d.service, target_id = d.target_id, target_arn = d.target_arn,
    events = {}, target_status = ok and "Succeeded" or "Failed", blue = d.blue, started = true,
    rollback_info = { rollbackTriggeringDeploymentId = d.id, rollbackMessage = message },
    error = (not ok) and { code = "INTERNAL_ERROR", message = message } or nil,
  }
  st.deployments[rid] = rd
  st.order[#st.order + 1] = rid
  d.rollback_info = { rollbackDeploymentId = rid, rollbackMessage = message }
end

--[[ Undo what the deployment changed: listeners restored to what they were,
     blue made primary again, green deleted. Each step is tried even if an
     earlier one failed, so a half-broken world is undone as far as it can be. ]]
local function rollback(world, d, why)
  if not d.started then return end
  local problems = {}
  local function try(what, fn, ...)
    local ok, err = pcall(fn, ...)
    if not ok then
      if world:is_error(err) or (type(err) == "table" and err.deploy_error) then
        problems[#problems + 1] = what .. ": " .. err.code .. ": " .. err.message
      else
        error(err, 0)
      end
    end
  end
  for _, s in ipairs(d.saved_prod) do
    try("restoring listener " .. s.listener, function() elbv2(world).set_forward(world, s.listener, copy(s.forward)) end)
  end
  for _, s in ipairs(d.saved_test) do
    try("restoring listener " .. s.listener, function() elbv2(world).set_forward(world, s.listener, copy(s.forward)) end)
  end
  local base = { cluster = d.cluster, service = d.service }
  if d.primary_switched and d.blue and d.blue.arn then
    try("UpdateServicePrimaryTaskSet", function()
      ecs(world).ops.UpdateServicePrimaryTaskSet(world,
        { cluster = base.cluster, service = base.service, primaryTaskSet = d.blue.arn }, "codedeploy")
    end)
    d.primary_switched = false
  end
  if d.green and d.green.arn and not d.green.deleted then
    try("DeleteTaskSet", function()
      ecs(world).ops.DeleteTaskSet(world,
        { cluster = base.cluster, service = base.service, taskSet = d.green.arn, force = true }, "codedeploy")
    end)
    d.green.deleted = true
  end
  local msg = "Deployment " .. d.id .. " was rolled back: " .. why
  if #problems > 0 then msg = msg .. " (rollback problems: " .. table.concat(problems, "; ") .. ")" end
  record_rollback(world, d, msg, #problems == 0)
end

local function fail_deployment(world, d, code, message)
  d.error = { code = code, message = message }
  complete(world, d, "Failed")
  if rollback_on(d, "DEPLOYMENT_FAILURE") then rollback(world, d, message) end
end

local function stop_deployment(world, d, code, message, with_rollback)
  d.error = { code = code, message = message }
  complete(world, d, "Stopped")
  if with_rollback then rollback(world, d, message) end
end

-- ---------------------------------------------------------------- the flow

local function begin_event(world, d, e)
  if e.status == "Pending" then
    e.status = "InProgress"
    e.start = world.now
    touch(world, d)
  end
end

local function finish_event(world, d, e, status)
  e.status = status
  e.finish = world.now
  touch(world, d)
end

-- Which target group is blue (serving prod now), which task set is primary.
local function resolve(world, d)
  local svc = attempt(world, "INVALID_ECS_SERVICE", "DescribeServices", describe_service, world, d.cluster, d.service)
  if not svc then
    abort("INVALID_ECS_SERVICE", "The ECS service " .. d.service .. " in cluster " .. d.cluster .. " was not found or is not ACTIVE")
  end
  d.target_arn = svc.serviceArn or d.target_arn
  local pair = d.lb.targetGroupPairInfoList[1]
  local lb = elbv2(world)
  local tgs = {}
  for i = 1, 2 do
    local name = pair.targetGroups[i].name
    local tg = lb.target_group(world, name)
    if not tg then abort("ELASTIC_LOAD_BALANCING_INVALID", "The target group " .. tostring(name) .. " was not found") end
    tgs[i] = { tg_name = name, tg_arn = tg_arn_of(tg) }
  end
  local primary
  for _, ts in ipairs(svc.taskSets or {}) do
    if ts.status == "PRIMARY" then primary = ts break end
  end
  local fwd = lb.get_forward(world, d.prod_listeners[1]) or {}
  local w1, w2 = fwd[tgs[1].tg_arn] or 0, fwd[tgs[2].tg_arn] or 0
  local blue_i = 1
  if w2 > w1 then
    blue_i = 2
  elseif w1 == w2 and primary then
    -- no listener preference: the primary task set's target group is blue
    local lbs = primary.loadBalancers or {}
    if lbs[1] and lbs[1].targetGroupArn == tgs[2].tg_arn then blue_i = 2 end
  end
  d.blue, d.green = tgs[blue_i], tgs[3 - blue_i]
  if primary then d.blue.arn, d.blue.id = primary.taskSetArn, primary.id end
  d.desired = svc.desiredCount
  d.service_defaults = {
    launchType = primary and primary.launchType or svc.launchType,
    platformVersion = primary and primary.platformVersion or svc.platformVersion,
    networkConfiguration = copy(primary and primary.networkConfiguration or svc.networkConfiguration),
  }
end

local function create_green(world, d)
  local spec = d.spec
  local input = {
    cluster = d.cluster, service = d.service, externalId = d.id,
    taskDefinition = spec.task_definition,
    loadBalancers = { { targetGroupArn = d.green.tg_arn, containerName = spec.container_name,
                        containerPort = spec.container_port } },
    networkConfiguration = copy(spec.network_configuration) or d.service_defaults.networkConfiguration,
    launchType = d.service_defaults.launchType,
    platformVersion = spec.platform_version or d.service_defaults.platformVersion,
    scale = { value = 100, unit = "PERCENT" },
  }
  local out = attempt(world, "ECS_UPDATE_ERROR", "CreateTaskSet", ecs(world).ops.CreateTaskSet, world, input, "codedeploy")
  local ts = out.taskSet or {}
  d.green.arn, d.green.id = ts.taskSetArn, ts.id
  if d.desired == nil then d.desired = ts.computedDesiredCount or 0 end
end

local HANDLERS = {}

-- The five hook events: run the (simulated) Lambda per the scenario policy.
local function hook_event(world, d, e)
  if e.status == "Pending" then
    begin_event(world, d, e)
    if not e.fn then finish_event(world, d, e, "Succeeded") return true end
    e.hook_id = world:id(nil, 32)
    e.deadline = world.now + duration(setting(world, "hook_timeout", 3600), "hook_timeout")
    local policy = hook_policy(world, e.fn)
    if policy == "succeed" then e.result = "Succeeded"
    elseif policy == "fail" then e.result = "Failed"
    elseif policy == "wait" then schedule(world, d, e.deadline)
    else
      e.auto_at = world.now + policy
      schedule(world, d, e.auto_at)
    end
  end
  if not e.result and e.auto_at and world.now >= e.auto_at then e.result = "Succeeded" end
  if e.result == "Succeeded" then
    e.diag_code = "Success"
    finish_event(world, d, e, "Succeeded")
    return true
  elseif e.result == "Failed" then
    e.diag_code = "ScriptFailed"
    finish_event(world, d, e, "Failed")
    fail_deployment(world, d, "HOOK_EXECUTION_FAILURE",
      "The " .. e.name .. " lifecycle hook " .. e.fn .. " reported Failed (execution " .. e.hook_id .. ")")
    return false
  elseif world.now >= e.deadline then
    e.diag_code = "ScriptTimedOut"
    finish_event(world, d, e, "Failed")
    fail_deployment(world, d, "HOOK_EXECUTION_FAILURE",
      "The " .. e.name .. " lifecycle hook " .. e.fn .. " did not report a status (PutLifecycleEventHookExecutionStatus) within "
        .. math.floor((e.deadline - e.start) / MINUTE) .. " minutes")
    return false
  end
  return false
end

HANDLERS.Install = function(world, d, e)
  if e.status == "Pending" then
    begin_event(world, d, e)
    create_green(world, d)
    e.deadline = world.now + duration(setting(world, "install_timeout", 3600), "install_timeout")
    schedule(world, d, e.deadline)
  end
  -- Install waits for the replacement task set to run its tasks (ECS steady
  -- state), not for load balancer health: the replacement target group may
  -- have no listener yet (after an earlier deployment both listeners point at
  -- the other group), and ELB does not check targets nobody routes to. Health
  -- is awaited once test traffic reaches green, before production moves.
  local running = 0
  local ok, out = pcall(ecs(world).ops.DescribeTaskSets, world,
    { cluster = d.cluster, service = d.service, taskSets = { d.green.arn } }, "codedeploy")
  if ok and out.taskSets and out.taskSets[1] then
    running = out.taskSets[1].runningCount or 0
  else -- an ECS stand-in without task set reads: fall back to target health
    running = elbv2(world).healthy_count(world, d.green.tg_arn) or 0
  end
  if running >= (d.desired or 0) then
    finish_event(world, d, e, "Succeeded")
    return true
  end
  if world.now >= e.deadline then
    e.diag_message = running .. " of " .. d.desired .. " replacement tasks running in task set " .. tostring(d.green.id)
    finish_event(world, d, e, "Failed")
    fail_deployment(world, d, "ECS_UPDATE_ERROR",
      "The replacement task set did not become healthy within " .. math.floor((e.deadline - e.start) / MINUTE)
        .. " minutes: " .. e.diag_message)
  end
  return false
end

HANDLERS.AllowTestTraffic = function(world, d, e)
  begin_event(world, d, e)
  if #d.test_listeners == 0 then finish_event(world, d, e, "Skipped") return true end
  local lb = elbv2(world)
  for _, l in ipairs(d.test_listeners) do
    d.saved_test[#d.saved_test + 1] = { listener = l, forward = copy(lb.get_forward(world, l) or {}) }
    attempt(world, "ELASTIC_LOAD_BALANCING_INVALID", "Routing test listener " .. l,
      lb.set_forward, world, l, { [d.green.tg_arn] = 100 })
  end
  finish_event(world, d, e, "Succeeded")
  return true
end

-- Whole percents: JSON decoders hand numbers over as floats, listeners take integers.
local function int(x) return math.tointeger(x) or math.floor(x + 0.5) end

-- The prod shifts as { at = seconds after AllowTraffic starts, green = percent }.
local function shift_plan(config)
  local trc = config.trafficRoutingConfig or { type = "AllAtOnce" }
  local plan = {}
  if trc.type == "TimeBasedCanary" then
    local c = trc.timeBasedCanary
    plan[1] = { at = 0, green = int(c.canaryPercentage) }
    plan[2] = { at = c.canaryInterval * MINUTE, green = 100 }
  elseif trc.type == "TimeBasedLinear" then
    local l = trc.timeBasedLinear
    local k = 0
    repeat
      k = k + 1
      plan[k] = { at = (k - 1) * l.linearInterval * MINUTE, green = int(math.min(100, k * l.linearPercentage)) }
    until plan[k].green >= 100
  else
    plan[1] = { at = 0, green = 100 }
  end
  return plan
end

local function set_prod(world, d, green)
  local lb = elbv2(world)
  local weights = green >= 100 and { [d.green.tg_arn] = 100 }
    or { [d.blue.tg_arn] = 100 - green, [d.green.tg_arn] = green }
  for _, l in ipairs(d.prod_listeners) do
    attempt(world, "ELASTIC_LOAD_BALANCING_INVALID", "Shifting production listener " .. l,
      lb.set_forward, world, l, copy(weights))
  end
  d.green_weight = green
  touch(world, d)
end

HANDLERS.AllowTraffic = function(world, d, e)
  begin_event(world, d, e)
  if #d.test_listeners > 0 and not d.green_checked then
    -- green now receives test traffic, so ELB checks it: production moves only
    -- once every replacement target is healthy
    local healthy = elbv2(world).healthy_count(world, d.green.tg_arn) or 0
    if healthy < (d.desired or 0) then
      d.health_deadline = d.health_deadline
        or (world.now + duration(setting(world, "install_timeout", 3600), "install_timeout"))
      if world.now >= d.health_deadline then
        e.diag_message = healthy .. " of " .. d.desired .. " replacement targets healthy in " .. d.green.tg_name
        finish_event(world, d, e, "Failed")
        fail_deployment(world, d, "ECS_UPDATE_ERROR", "The replacement targets did not become healthy: " .. e.diag_message)
      end
      return false
    end
    d.green_checked = true
  end
  if not d.plan then
    d.plan, d.plan_i, d.plan_start = shift_plan(d.config), 0, world.now
    local lb = elbv2(world)
    for _, l in ipairs(d.prod_listeners) do
      d.saved_prod[#d.saved_prod + 1] = { listener = l, forward = copy(lb.get_forward(world, l) or {}) }
    end
  end
  while true do
    local nxt = d.plan[d.plan_i + 1]
    if not nxt then break end
    local due = d.plan_start + nxt.at
    if world.now < due then schedule(world, d, due) return false end
    set_prod(world, d, nxt.green)
    d.plan_i = d.plan_i + 1
  end
  -- green has all the traffic: it becomes the service's primary task set
  if d.green.arn and d.blue then
    attempt(world, "ECS_UPDATE_ERROR", "UpdateServicePrimaryTaskSet", ecs(world).ops.UpdateServicePrimaryTaskSet,
      world, { cluster = d.cluster, service = d.service, primaryTaskSet = d.green.arn }, "codedeploy")
    d.primary_switched = true
  end
  finish_event(world, d, e, "Succeeded")
  return true
end

local PHASES = {}

PHASES.start = function(world, d)
  if world.now < d.start_at then return false end
  d.status, d.target_status, d.start_time, d.started = "InProgress", "InProgress", world.now, true
  touch(world, d)
  resolve(world, d)
  d.phase, d.ev = "event", 1
  return true
end

PHASES.event = function(world, d)
  local e = d.events[d.ev]
  if not e then d.phase = "termination" return true end
  local done = (HANDLERS[e.name] or hook_event)(world, d, e)
  if not done then return false end
  d.ev = d.ev + 1
  if e.name == "AfterAllowTestTraffic" then d.phase = "ready_enter" end
  return true
end

-- deploymentReadyOption: CONTINUE_DEPLOYMENT with a wait reroutes by itself at
-- the end of the wait; STOP_DEPLOYMENT waits for ContinueDeployment and stops
-- at the end of the wait (no wait time: waits indefinitely).
PHASES.ready_enter = function(world, d)
  local ro = (d.bg and d.bg.deploymentReadyOption) or {}
  local wait = (ro.waitTimeInMinutes or 0) * MINUTE
  d.phase = "event"
  if ro.actionOnTimeout == "STOP_DEPLOYMENT" or wait > 0 then
    d.status, d.target_status = "Ready", "Ready"
    d.ready_action = ro.actionOnTimeout or "CONTINUE_DEPLOYMENT"
    d.ready_deadline = wait > 0 and world.now + wait or nil
    if d.ready_deadline then schedule(world, d, d.ready_deadline) end
    d.phase = "ready"
    touch(world, d)
  end
  return true
end

PHASES.ready = function(world, d)
  local go = d.continue_ready
  if not go and d.ready_deadline and world.now >= d.ready_deadline then
    if d.ready_action ~= "CONTINUE_DEPLOYMENT" then
      stop_deployment(world, d, "TIMEOUT", "The deployment was not continued (ContinueDeployment READY_WAIT) within "
        .. math.floor((d.ready_deadline - d.start_time) / MINUTE) .. " minutes of being ready; actionOnTimeout is STOP_DEPLOYMENT",
        rollback_on(d, "DEPLOYMENT_STOP_ON_REQUEST"))
      return false
    end
    go = true
  end
  if not go then return false end
  d.status, d.target_status, d.phase = "InProgress", "InProgress", "event"
  touch(world, d)
  return true
end

PHASES.termination = function(world, d)
  if not d.term_started then
    local opt = (d.bg and d.bg.terminateBlueInstancesOnDeploymentSuccess) or {}
    d.term_started = true
    d.keep_blue = opt.action == "KEEP_ALIVE"
    d.term_at = world.now + (opt.terminationWaitTimeInMinutes or 0) * MINUTE
    if d.term_at > world.now then schedule(world, d, d.term_at) end
    touch(world, d)
  end
  if not d.skip_term and world.now < d.term_at then return false end
  if not d.keep_blue and d.blue and d.blue.arn then
    attempt(world, "ECS_UPDATE_ERROR", "DeleteTaskSet", ecs(world).ops.DeleteTaskSet, world,
      { cluster = d.cluster, service = d.service, taskSet = d.blue.arn, force = true }, "codedeploy")
    d.blue.deleted = true
  end
  complete(world, d, "Succeeded")
  return false
end

-- Any alarm in ALARM stops the deployment (ALARM_ACTIVE).
local function check_alarms(world, d)
  local cfg = d.alarm_config
  local cw = world.svc.cloudwatch
  if not (cfg and cfg.enabled and cw and cw.alarm_state) then return false end
  local firing = {}
  for _, a in ipairs(cfg.alarms or {}) do
    if cw.alarm_state(world, a.name) == "ALARM" then firing[#firing + 1] = a.name end
  end
  if #firing == 0 then return false end
  stop_deployment(world, d, "ALARM_ACTIVE",
    "One or more alarms have been activated according to the Amazon CloudWatch metrics you selected, and the affected deployments have been stopped. Activated alarms: <"
      .. table.concat(firing, ", ") .. ">",
    rollback_on(d, "DEPLOYMENT_STOP_ON_ALARM"))
  return true
end

local function run(world, d)
  if d.started and check_alarms(world, d) then return end
  for _ = 1, 1000 do
    if TERMINAL[d.status] then return end
    if not PHASES[d.phase](world, d) then return end
  end
  -- a bug in the phases: the front end answers InternalFailure and logs it
  error(errors.new("internal", { code = "DeploymentDidNotSettle", message = "codedeploy simulator: deployment "
    .. d.id .. " did not settle (phase " .. tostring(d.phase) .. ")" }), 0)
end

function step(world, d)
  if TERMINAL[d.status] or d.busy then return end
  d.busy = true
  local ok, err = pcall(run, world, d)
  d.busy = false
  if ok then return end
  if type(err) == "table" and err.deploy_error then
    if not TERMINAL[d.status] then
      local e = d.events[d.ev or 0]
      if e and e.status == "InProgress" then
        e.diag_message = err.message
        finish_event(world, d, e, "Failed")
      end
      fail_deployment(world, d, err.code, err.message)
    end
    return
  end
  error(err, 0)
end

-- Pokes every active deployment (a copy of the list: steps may complete and remove them).
function M.tick(world, t)
  local act = state(world).active
  local list = {}
  for i, d in ipairs(act) do list[i] = d end
  for _, d in ipairs(list) do step(world, d) end
end

M.step = step
M.schedule = schedule
M.stop_deployment = stop_deployment
M.rollback_on = rollback_on

return M
