--[[
Native ECS blue/green deployments: deploymentConfiguration.strategy BLUE_GREEN,
LINEAR or CANARY on services whose loadBalancers carry an advancedConfiguration
{ alternateTargetGroupArn, productionListenerRule, testListenerRule, roleArn }.

A deployment (the green revision) walks the lifecycle stages of the model:
  RECONCILE_SERVICE (only with more than one ACTIVE revision) -> PRE_SCALE_UP ->
  SCALE_UP (green tasks to desiredCount, registered into the non-production
  target group) -> POST_SCALE_UP -> TEST_TRAFFIC_SHIFT (testListenerRule forwards
  100% to green) -> POST_TEST_TRAFFIC_SHIFT -> PRODUCTION_TRAFFIC_SHIFT
  (productionListenerRule weights: BLUE_GREEN 100 at once; CANARY canaryPercent,
  canaryBakeTimeInMinutes, then 100; LINEAR +stepPercent every
  stepBakeTimeInMinutes) -> POST_PRODUCTION_TRAFFIC_SHIFT -> BAKE_TIME
  (bakeTimeInMinutes) -> CLEAN_UP (blue tasks stopped; the green target group is
  production from now on).

Lifecycle hooks: the simulator invokes no Lambda function. Every hook, whatever
its targetType (AWS_LAMBDA or PAUSE), pauses the deployment at its stage with a
lifecycleHookDetails entry in AWAITING_ACTION until ContinueServiceDeployment
(CONTINUE or ROLLBACK) or its timeout (timeoutConfiguration, default 1440
minutes, then its action, default ROLLBACK). PRE_PRODUCTION_TRAFFIC_SHIFT and
PRODUCTION_TRAFFIC_SHIFT hooks run at every production traffic step.

Rollback (circuit breaker, alarms, hook, StopServiceDeployment ROLLBACK): traffic
returns to blue at once, green tasks stop, then the service deployment is
ROLLBACK_SUCCESSFUL and the blue deployment PRIMARY again.
]]
local U = require "ecsplay.sim.ecs.util"
local T = require "ecsplay.sim.ecs.tasks"
local P = require "ecsplay.sim.ecs.deploy"

local N = {}

local function num(x)
  return math.tointeger(x) or x
end

local function prod_tg(svc, i)
  local lb = svc.lbs[i]
  local ac = lb.advancedConfiguration
  if ac and ac.alternateTargetGroupArn and svc.prod_alt[i] then return ac.alternateTargetGroupArn end
  return lb.targetGroupArn
end

local function other_tg(svc, i)
  local lb = svc.lbs[i]
  local ac = lb.advancedConfiguration
  if not (ac and ac.alternateTargetGroupArn) then return lb.targetGroupArn end
  if svc.prod_alt[i] then return lb.targetGroupArn end
  return ac.alternateTargetGroupArn
end

-- The task registrations of the next (green) deployment: the non-production target groups.
function N.green_lbs(svc)
  local out = {}
  for i, lb in ipairs(svc.lbs) do
    out[#out + 1] = { tg = other_tg(svc, i), port = lb.containerPort, name = lb.containerName }
  end
  return out
end

-- Production weight w% (and test weight tw%) to green, the rest to blue.
local function set_traffic(world, svc, w, tw)
  local elbv2 = world.svc.elbv2
  if not (elbv2 and elbv2.set_forward) then return end
  for i, lb in ipairs(svc.lbs) do
    local ac = lb.advancedConfiguration
    if ac and ac.alternateTargetGroupArn then
      local blue, green = prod_tg(svc, i), other_tg(svc, i)
      if w and ac.productionListenerRule then
        elbv2.set_forward(world, ac.productionListenerRule, { [blue] = num(100 - w), [green] = num(w) })
      end
      if tw and ac.testListenerRule then
        elbv2.set_forward(world, ac.testListenerRule, { [blue] = num(100 - tw), [green] = num(tw) })
      end
    end
  end
end

local function steps_of(dc)
  local s = dc.strategy
  if s == "CANARY" then
    local cc = dc.canaryConfiguration or {}
    local pct = cc.canaryPercent or 5
    if pct >= 100 then return { 100 }, { 0 } end
    return { pct, 100 }, { cc.canaryBakeTimeInMinutes or 10, 0 }
  elseif s == "LINEAR" then
    local lc = dc.linearConfiguration or {}
    local step = lc.stepPercent or 10
    local bake = lc.stepBakeTimeInMinutes or 6
    local steps, bakes = {}, {}
    local w = step
    while w < 100 - 1e-9 do
      steps[#steps + 1] = w
      bakes[#bakes + 1] = bake
      w = w + step
    end
    steps[#steps + 1] = 100
    bakes[#bakes + 1] = 0
    return steps, bakes
  end
  return { 100 }, { 0 }
end

local function go(world, dep, stage)
  dep.native.stage = stage
  if dep.sd then
    dep.sd.stage = stage
    dep.sd.updated_at = world.now
  end
end

function N.begin(world, svc, dep, blue)
  local steps, bakes = steps_of(svc.dc)
  dep.native = { blue = blue, weight = 0, test_weight = 0, hooks = {}, steps = steps, bakes = bakes,
    step = 0 }
  local active = 0
  for _, d in ipairs(svc.deployments) do if d ~= dep then active = active + 1 end end
  go(world, dep, active > 1 and "RECONCILE_SERVICE" or "PRE_SCALE_UP")
end

--[[ Hooks of `hook_stage` at occurrence `key`: true when all are done, false
     while one waits, "rollback" when one asked for (or timed out into) a rollback. ]]
local function hooks(world, svc, dep, hook_stage, key)
  local nat = dep.native
  for i, hook in ipairs(svc.dc.lifecycleHooks or {}) do
    local applies = false
    for _, s in ipairs(hook.lifecycleStages or {}) do if s == hook_stage then applies = true end end
    if applies then
      local k = key .. "#" .. i
      local h = nat.hooks[k]
      if not h then
        local tc = hook.timeoutConfiguration or {}
        local target_type = hook.targetType or "AWS_LAMBDA"
        h = { hookId = world:id(nil, 32), targetType = target_type,
          targetArn = target_type ~= "PAUSE" and hook.hookTargetArn or nil,
          status = "AWAITING_ACTION", expiresAt = world.now + (tc.timeoutInMinutes or 1440) * 60,
          timeoutAction = tc.action or "ROLLBACK" }
        nat.hooks[k] = h
        if dep.sd then table.insert(dep.sd.hooks, h) end
        return false
      end
      if h.status == "AWAITING_ACTION" then
        if world.now < h.expiresAt then return false end
        h.status = "TIMED_OUT"
        h.action = h.timeoutAction
      end
      if h.action == "ROLLBACK" then return "rollback" end
    end
  end
  return true
end

function N.rollback(world, svc, dep, reason)
  local nat = dep.native
  local sd = dep.sd
  nat.rolling_back = true
  nat.weight, nat.test_weight = 0, 0
  set_traffic(world, svc, 0, 0)
  dep.rollout = "FAILED"
  dep.reason = reason
  dep.updated_at = world.now
  if sd then
    sd.status = "ROLLBACK_IN_PROGRESS"
    sd.status_reason = reason
    sd.updated_at = world.now
    sd.rollback = { reason = reason, startedAt = world.now, serviceRevisionArn = nat.blue.rev.arn }
  end
  U.event(world, svc, string.format("rolling back to deployment %s.", nat.blue.id))
end

-- The deployment is replaced or the service deleted: traffic back to blue, green tasks go.
function N.abandon(world, svc, dep)
  local nat = dep.native
  set_traffic(world, svc, 0, 0)
  nat.weight, nat.test_weight = 0, 0
  nat.finished = true
  P.stop_tasks(world, svc, T.live_of(svc.tasks, "dep", dep), dep)
  if dep.sd and (dep.sd.status == "IN_PROGRESS" or dep.sd.status == "PENDING") then
    P.finish_sd(world, dep.sd, "STOPPED", "Service deployment superseded by a newer deployment.")
  end
end

local function fail(world, svc, dep, why, reason, rollback)
  U.event(world, svc, string.format("(deployment %s) deployment failed: %s.", dep.id, why))
  if rollback then
    N.rollback(world, svc, dep, reason)
  else
    dep.rollout = "FAILED"
    dep.reason = reason
    dep.updated_at = world.now
    dep.native.finished = true
    if dep.sd then P.finish_sd(world, dep.sd, "STOPPED", reason) end
  end
end

local function monitors(world, svc, dep)
  local trip = P.tripped(world, svc, dep)
  if not trip then return false end
  fail(world, svc, dep, trip.why, trip.reason, trip.rollback)
  return true
end

-- Keeps deployment d at n live tasks (crashed tasks replaced, extras stopped).
local function keep_at(world, svc, d, n)
  local live = T.live_of(svc.tasks, "dep", d)
  if #live < n then
    P.start_tasks(world, svc, d, n - #live)
  elseif #live > n then
    T.shed_order(live)
    local extra = {}
    for i = 1, #live - n do extra[i] = live[i] end
    P.stop_tasks(world, svc, extra, d)
  end
end

local function stop_others(world, svc, keep1, keep2)
  local stop = {}
  for _, task in ipairs(svc.tasks) do
    if T.live(task) and task.dep ~= keep1 and task.dep ~= keep2 then stop[#stop + 1] = task end
  end
  P.stop_by_deployment(world, svc, stop)
end

local function handle_hook_result(world, svc, dep, r)
  if r == "rollback" then
    U.event(world, svc, string.format("(deployment %s) deployment failed: lifecycle hook requested a rollback.", dep.id))
    N.rollback(world, svc, dep, "Service deployment rolled back by a lifecycle hook.")
    return false
  end
  return r
end

--[[ The lifecycle stages: STAGES[stage](world, svc, dep) moves the deployment on when it can
     and returns true when the stage changed (N.step loops while it does). ]]
local STAGES = {}

-- Runs the hooks of `hook_stage` at occurrence `key`; once they are all done, on to `next_stage`.
local function after_hooks(world, svc, dep, hook_stage, key, next_stage)
  local r = handle_hook_result(world, svc, dep, hooks(world, svc, dep, hook_stage, key))
  if r == true then go(world, dep, next_stage) return true end
  return false
end

-- A stage that only runs its hooks, then moves on.
local function hook_stage(stage, next_stage)
  STAGES[stage] = function(world, svc, dep) return after_hooks(world, svc, dep, stage, stage, next_stage) end
end
hook_stage("RECONCILE_SERVICE", "PRE_SCALE_UP")
hook_stage("PRE_SCALE_UP", "SCALE_UP")
hook_stage("POST_SCALE_UP", "TEST_TRAFFIC_SHIFT")
hook_stage("POST_TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT")

function STAGES.SCALE_UP(world, svc, dep)
  local D = svc.desired
  dep.native.scaling = true
  keep_at(world, svc, dep, D)
  local c = P.counts(dep)
  if c.live == D and c.healthy == D then go(world, dep, "POST_SCALE_UP") return true end
  return false
end

function STAGES.TEST_TRAFFIC_SHIFT(world, svc, dep)
  local nat = dep.native
  if not nat.test_shifted then
    nat.test_shifted = true
    nat.test_weight = 100
    set_traffic(world, svc, nil, 100)
  end
  return after_hooks(world, svc, dep, "TEST_TRAFFIC_SHIFT", "TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT")
end

-- One production step at a time: its PRE_ hooks, the shift, its hooks, then the step's bake.
function STAGES.PRODUCTION_TRAFFIC_SHIFT(world, svc, dep)
  local nat = dep.native
  if nat.wait_until then
    if world.now < nat.wait_until then return false end
    nat.wait_until = nil
  end
  local i = nat.step + 1
  if nat.shifted ~= i then
    local r = handle_hook_result(world, svc, dep,
      hooks(world, svc, dep, "PRE_PRODUCTION_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT:" .. i))
    if r ~= true then return false end
    nat.shifted = i
    nat.weight = nat.steps[i]
    set_traffic(world, svc, nat.weight, nil)
    if dep.sd then dep.sd.updated_at = world.now end
  end
  local r = handle_hook_result(world, svc, dep,
    hooks(world, svc, dep, "PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT:" .. i))
  if r ~= true then return false end
  nat.step = i
  if nat.steps[i] >= 100 then go(world, dep, "POST_PRODUCTION_TRAFFIC_SHIFT") return true end
  nat.wait_until = world.now + (nat.bakes[i] or 0) * 60
  return true
end

function STAGES.POST_PRODUCTION_TRAFFIC_SHIFT(world, svc, dep)
  local r = after_hooks(world, svc, dep, "POST_PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT", "BAKE_TIME")
  if r then dep.native.bake_until = world.now + (svc.dc.bakeTimeInMinutes or 0) * 60 end
  return r
end

function STAGES.BAKE_TIME(world, svc, dep)
  if world.now >= dep.native.bake_until then go(world, dep, "CLEAN_UP") return true end
  return false
end

-- Blue's tasks stop; once they are gone, green's target groups become production.
function STAGES.CLEAN_UP(world, svc, dep)
  stop_others(world, svc, dep, nil)
  local present = 0
  for i = 2, #svc.deployments do present = present + P.counts(svc.deployments[i]).present end
  if present == 0 then
    for i, lb in ipairs(svc.lbs) do
      if lb.advancedConfiguration and lb.advancedConfiguration.alternateTargetGroupArn then
        svc.prod_alt[i] = not svc.prod_alt[i]
      end
    end
    dep.native.finished = true
    P.complete(world, svc, dep)
    if dep.sd then dep.sd.stage = "CLEAN_UP" end
    P.check_steady(world, svc)
  end
  return false
end

-- One stage transition; true when the stage changed (the caller loops).
local function advance(world, svc, dep)
  local stage = STAGES[dep.native.stage]
  if not stage then return false end
  return stage(world, svc, dep)
end

local function rollback_progress(world, svc, dep)
  local nat = dep.native
  local blue = nat.blue
  keep_at(world, svc, blue, svc.desired)
  stop_others(world, svc, blue, nil)
  if P.counts(dep).present > 0 then return end
  for i = #svc.deployments, 1, -1 do
    if svc.deployments[i] ~= blue then
      svc.deployments[i].status = "INACTIVE"
      table.remove(svc.deployments, i)
    end
  end
  blue.status = "PRIMARY"
  blue.updated_at = world.now
  svc.td = blue.td
  svc.last_completed = blue
  nat.rolling_back = false
  nat.finished = true
  if dep.sd then P.finish_sd(world, dep.sd, "ROLLBACK_SUCCESSFUL", dep.sd.status_reason) end
  P.check_steady(world, svc)
end

function N.step(world, svc, dep)
  P.consume_task_notes(world, svc)
  local nat = dep.native
  local blue = nat.blue
  if nat.rolling_back then return rollback_progress(world, svc, dep) end
  if dep.stop_request then
    local kind = dep.stop_request
    dep.stop_request = nil
    if kind == "ROLLBACK" then
      U.event(world, svc, string.format("(deployment %s) deployment stopped: rollback requested.", dep.id))
      N.rollback(world, svc, dep, "Service deployment rolled back by a StopServiceDeployment request.")
    else
      fail(world, svc, dep, "stopped by StopServiceDeployment",
        "ECS deployment stopped by a StopServiceDeployment request.", false)
    end
    return
  end
  if monitors(world, svc, dep) then return end
  if nat.stage ~= "CLEAN_UP" then
    keep_at(world, svc, blue, svc.desired)
    stop_others(world, svc, dep, blue)
    if nat.scaling then keep_at(world, svc, dep, svc.desired) end
    blue.desired = svc.desired
  end
  dep.desired = svc.desired
  for _ = 1, 32 do
    if nat.rolling_back or nat.finished or not advance(world, svc, dep) then break end
  end
end

return N
