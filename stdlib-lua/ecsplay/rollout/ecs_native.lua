--[[
rollout.ecs_native: ECS's own BLUE_GREEN / LINEAR / CANARY deployment strategy
(deploymentConfiguration.strategy) with PAUSE lifecycle hooks. ECS moves the
traffic on the production listener rule between the service's target group
and its alternate; at every stage listed in `pause_at` ECS pauses, ecsplay
bakes its gates for `bake` and then continues (ContinueServiceDeployment
CONTINUE) or rolls back (StopServiceDeployment stopType ROLLBACK).

The service needs loadBalancers[].advancedConfiguration (alternate target
group, production listener rule, role). When it has none, give
alternate_target_group= (and optionally rule=, test_rule=, role=): the
configuration is set in the same UpdateService and kept afterwards.
`gates` may be a function(green) returning the list; green = { service=,
target_group= } is the target group receiving the new version this time.
Which group is green (and the task definition to go back to) is the run's
first journaled step ("plan"): `ecsplay resume` takes it from the journal,
since mid-deployment the traffic is split and the service shows the new
task definition.
The options every strategy takes, and the run around the body, are in
rollout/strategy.lua.
]]
local sched = require "ecsplay.sched"
local duration = require "ecsplay.duration"
local strings = require "ecsplay.util.strings"
local tables = require "ecsplay.util.tables"
local ecs = require "ecsplay.ecs"
local strategy = require "ecsplay.rollout.strategy"
local options = require "ecsplay.rollout.options"
local traffic = require "ecsplay.rollout.traffic"
local ecs_util = require "ecsplay.rollout.ecs_util"
local bake = require "ecsplay.rollout.bake"
local control = require "ecsplay.rollout.control"
local batch = require "ecsplay.aws.batch"

local S = "ecs_native"

local STAGES = { RECONCILE_SERVICE = true, PRE_SCALE_UP = true, POST_SCALE_UP = true,
  TEST_TRAFFIC_SHIFT = true, POST_TEST_TRAFFIC_SHIFT = true, PRE_PRODUCTION_TRAFFIC_SHIFT = true,
  PRODUCTION_TRAFFIC_SHIFT = true, POST_PRODUCTION_TRAFFIC_SHIFT = true }

local short = ecs_util.short

local function minutes(field, v, default)
  if v == nil then return default end
  local s, err = duration.parse(v)
  if not s then options.bad(S, field, err) end
  if s % 60 ~= 0 then
    options.bad(S, field, "ECS bake times are whole minutes, got " .. strings.describe_value(v))
  end
  return math.tointeger(s // 60)
end

-- ECS's deploymentConfiguration for the strategy and its canary/linear settings.
-- The canary = { percent, bake } and linear = { step, bake } options: which
-- strategy each goes with and the deploymentConfiguration fields they fill.
local SHIFTS = {
  { field = "canary", strategy = "CANARY", percent = "percent", default = 10, bake = 5,
    example = "{ percent = 10, bake = \"5m\" }",
    config = "canaryConfiguration", percent_key = "canaryPercent", bake_key = "canaryBakeTimeInMinutes" },
  { field = "linear", strategy = "LINEAR", percent = "step", default = 25, bake = 1,
    example = "{ step = 25, bake = \"1m\" }",
    config = "linearConfiguration", percent_key = "stepPercent", bake_key = "stepBakeTimeInMinutes" },
}

local function strategy_config(c, o)
  local dc = { strategy = c.strategy }
  for _, sh in ipairs(SHIFTS) do
    local v = o[sh.field]
    if c.strategy == sh.strategy then
      v = v or {}
      if type(v) ~= "table" then options.bad(S, sh.field, "expected " .. sh.example) end
      local pct = v[sh.percent] or v[1] or sh.default
      if type(pct) ~= "number" or pct <= 0 or pct >= 100 then
        options.bad(S, sh.field .. "." .. sh.percent, "expected a percentage above 0 and below 100, got "
          .. tostring(pct))
      end
      dc[sh.config] = { [sh.percent_key] = pct + 0.0,
        [sh.bake_key] = minutes(sh.field .. ".bake", v.bake or v[2], sh.bake) }
    elseif v ~= nil then
      options.bad(S, sh.field, "only with strategy = \"" .. sh.strategy .. "\"")
    end
  end
  dc.bakeTimeInMinutes = minutes("bake_time", o.bake_time, 0)
  return dc
end

local function check(c, o)
  c.service = options.string(S, o, "service", "api")
  c.strategy = options.string(S, o, "strategy", "CANARY")
  if c.strategy ~= "BLUE_GREEN" and c.strategy ~= "LINEAR" and c.strategy ~= "CANARY" then
    options.bad(S, "strategy", "expected \"BLUE_GREEN\", \"LINEAR\" or \"CANARY\", got "
      .. strings.describe_value(c.strategy) .. strings.did_you_mean(c.strategy, { "BLUE_GREEN", "LINEAR", "CANARY" },
      { quote = true }))
  end
  local dc = strategy_config(c, o)
  local pause = o.pause_at or { "PRODUCTION_TRAFFIC_SHIFT" }
  if type(pause) ~= "table" or #pause == 0 then
    options.bad(S, "pause_at", "expected a non-empty list of lifecycle stages, like { \"PRODUCTION_TRAFFIC_SHIFT\" }")
  end
  for i, st in ipairs(pause) do
    if not STAGES[st] then
      options.bad(S, "pause_at[" .. i .. "]", "unknown lifecycle stage " .. tostring(st)
        .. strings.did_you_mean(tostring(st), STAGES))
    end
  end
  c.pause_at = pause
  c.hook_timeout = minutes("hook_timeout", o.hook_timeout, 60)
  dc.lifecycleHooks = { { targetType = "PAUSE", lifecycleStages = pause,
    timeoutConfiguration = { timeoutInMinutes = c.hook_timeout, action = "ROLLBACK" } } }
  c.dc = dc
  c.alternate_target_group = options.string(S, o, "alternate_target_group")
  c.rule = o.rule
  c.test_rule = o.test_rule
  c.role = options.string(S, o, "role")
end

--[[ The advancedConfiguration to set when the service has none: the
     alternate target group, the production (and test) rule, the role.
     Returns it and the service's load balancers with it. ]]
local function new_advanced_config(c, svc, lbs)
  local lb = lbs[1]
  if not c.alternate_target_group then
    options.bad(S, "alternate_target_group", string.format("service `%s` has no advancedConfiguration "
      .. "on its load balancer; name the alternate target group (and rule=, role=) to set one", c.service))
  end
  local alt = traffic.target_group_arn(c.alternate_target_group, "alternate_target_group")
  if alt == lb.targetGroupArn then
    options.bad(S, "alternate_target_group", "must differ from the service's target group")
  end
  local point = traffic.resolve(c.rule, { lb.targetGroupArn, alt }, "rule")
  if point.kind ~= "rule" then
    options.bad(S, "rule", "ECS needs a listener rule (not a listener's default action) to shift")
  end
  local test
  if c.test_rule ~= nil then
    test = traffic.resolve(c.test_rule, {}, "test_rule")
    if test.kind ~= "rule" then options.bad(S, "test_rule", "expected a listener rule ARN") end
  end
  local account = svc.serviceArn:match("^arn:[^:]+:ecs:[^:]*:(%d+):") or "123456789012"
  local ac = { alternateTargetGroupArn = alt, productionListenerRule = point.arn,
    testListenerRule = test and test.arn or nil,
    roleArn = c.role or ("arn:aws:iam::" .. account .. ":role/ecsInfrastructureRoleForLoadBalancers") }
  local new_lbs = {}
  for i, l in ipairs(lbs) do
    new_lbs[i] = { targetGroupArn = l.targetGroupArn, containerName = l.containerName,
      containerPort = l.containerPort, loadBalancerName = l.loadBalancerName }
  end
  new_lbs[1].advancedConfiguration = ac
  return ac, new_lbs
end

-- green: the target group of the two that the production rule does not send traffic to
local function pick_green(c, ctx, main_tg, alt_tg, plan)
  if plan then
    local known = { [main_tg] = true, [alt_tg] = true }
    if not (known[plan.blue_tg] and known[plan.green_tg] and plan.blue_tg ~= plan.green_tg) then
      options.bad(S, "service", string.format("the journal's plan names target groups %s and %s, but "
        .. "service `%s` now uses %s and %s; resume with the same arguments", tostring(plan.blue_tg),
        tostring(plan.green_tg), c.service, main_tg, alt_tg))
    end
    return plan.blue_tg, plan.green_tg
  end
  local pct = traffic.percent(traffic.get(ctx.point))
  if (pct[main_tg] or 0) >= 99.5 then return main_tg, alt_tg end
  if (pct[alt_tg] or 0) >= 99.5 then return alt_tg, main_tg end
  options.bad(S, "rule", string.format("production traffic is split between the service's target "
    .. "groups (%.0f%% / %.0f%%); a deployment may be in progress", pct[main_tg] or 0, pct[alt_tg] or 0))
end

local function prepare(c, r)
  local svc = ecs_util.services(c.cluster, { c.service }, { "service" })[1]
  local ctl = svc.deploymentController and svc.deploymentController.type or "ECS"
  if ctl ~= "ECS" then
    options.bad(S, "service", string.format("service `%s` uses the %s deployment controller; ECS "
      .. "deployment strategies need the ECS controller", c.service, ctl))
  end
  local lbs = ecs_util.require_load_balancer(svc, "service")
  -- resumed: the journaled plan says which group was blue and what ran before
  local plan = r.plan
  local ctx = { svc = svc, old_td = plan and plan.old_td or svc.taskDefinition }
  if #(svc.deployments or {}) > 1 and not r.resuming then
    options.bad(S, "service", string.format("service `%s` already has a deployment in progress", c.service))
  end
  local ac = lbs[1].advancedConfiguration
  if not (ac and ac.alternateTargetGroupArn and ac.productionListenerRule) then
    ac, ctx.new_lbs = new_advanced_config(c, svc, lbs)
  end
  ctx.point = { kind = "rule", arn = ac.productionListenerRule }
  ctx.blue_tg, ctx.green_tg = pick_green(c, ctx, lbs[1].targetGroupArn, ac.alternateTargetGroupArn, plan)
  ctx.names = { [ctx.blue_tg] = ecs_util.tg_name(ctx.blue_tg), [ctx.green_tg] = ecs_util.tg_name(ctx.green_tg) }
  ctx.dc = tables.shallow_copy(svc.deploymentConfiguration)
  for k, v in pairs(c.dc) do ctx.dc[k] = v end
  ctx.base_td = ctx.old_td
  ctx.green = { service = c.service, target_group = ctx.names[ctx.green_tg] }
  ctx.plan = { blue_tg = ctx.blue_tg, green_tg = ctx.green_tg, old_td = ctx.old_td }
  ctx.report = { service = c.service, previous_task_definition = ctx.old_td }
  return ctx
end

-- polled by every rollout of a fleet: the shared batcher merges them (aws/batch.lua)
local ecs_reads = batch.face "ecs"

local function describe_sd(arn)
  local res = ecs_reads.describe_service_deployments { serviceDeploymentArns = { arn } }
  local sd = res.serviceDeployments and res.serviceDeployments[1]
  if not sd then
    error(ecs_util.failed("ServiceDeploymentMissing", "service deployment %s not found", arn), 0)
  end
  return sd
end

local ROLLED_BACK = { ROLLBACK_REQUESTED = true, ROLLBACK_IN_PROGRESS = true, ROLLBACK_SUCCESSFUL = true,
  ROLLBACK_FAILED = true, STOPPED = true, STOP_REQUESTED = true }

-- ECS rolled back (or stopped) on its own: wait for it to settle, then fail.
local function ecs_stopped(run, c, sd, arn, deadline)
  local reason = sd.statusReason or (sd.rollback and sd.rollback.reason) or "no reason given"
  run:log("error", "ecs_rollback", string.format("ECS %s the deployment: %s",
    sd.status:find("ROLLBACK") and "is rolling back" or "stopped", reason))
  while (sd.status == "ROLLBACK_REQUESTED" or sd.status == "ROLLBACK_IN_PROGRESS"
         or sd.status == "STOP_REQUESTED") and sched.now() < deadline do
    sched.sleep_to_tick(c.poll) -- on the grid of c.poll: a fleet's polls merge (aws/batch.lua)
    sd = describe_sd(arn)
  end
  error(ecs_util.failed("EcsRolledBack", "ECS ended the deployment with %s: %s", sd.status, reason), 0)
end

-- Updates the service with the strategy; returns the service deployment's ARN. The undo
-- (after ECS finished, or once the "track" undo's ECS rollback is done): the previous
-- version again, deployed without the PAUSE hooks and waited for until ECS has finished.
local function deploy(run, c, ctx, new_td)
  local arn = run:step("deploy", "update the service with the " .. c.strategy .. " strategy", function()
    local res = ecs.update_service { cluster = c.cluster, service = c.service, taskDefinition = new_td,
      deploymentConfiguration = ctx.dc, loadBalancers = ctx.new_lbs }
    run:log("info", "deploy", string.format("%s: %s deployment %s → %s, green %s%s", c.service, c.strategy,
      short(ctx.old_td), short(new_td), ctx.names[ctx.green_tg],
      ctx.new_lbs and " (advancedConfiguration set)" or ""))
    return res.service.currentServiceDeployment
  end, { op = "update_service", cluster = c.cluster, service = c.service, taskDefinition = ctx.old_td,
         wait = { timeout = c.timeout } })
  if not arn then
    local svc = ecs_reads.describe_services({ cluster = c.cluster, services = { c.service } }).services[1]
    arn = svc.currentServiceDeployment
  end
  if not arn then
    error(ecs_util.failed("NoServiceDeployment", "ECS reported no service deployment for the update"), 0)
  end
  run:step("track", "watch service deployment", function() end,
    { op = "stop_service_deployment", serviceDeploymentArn = arn })
  return arn
end

-- The lifecycle stages in ECS's order (PRE_/PRODUCTION_TRAFFIC_SHIFT repeat at every traffic step).
local ORDER = { "RECONCILE_SERVICE", "PRE_SCALE_UP", "SCALE_UP", "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT",
  "POST_TEST_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT",
  "POST_PRODUCTION_TRAFFIC_SHIFT", "BAKE_TIME", "CLEAN_UP" }
local RANK = {}
for i, st in ipairs(ORDER) do RANK[st] = i end
local REPEATS = { PRE_PRODUCTION_TRAFFIC_SHIFT = true, PRODUCTION_TRAFFIC_SHIFT = true }

-- The next stage of pause_at where ECS will pause, from `stage` at green `weight` (nil: none left).
local function next_pause(c, stage, weight)
  local here = RANK[tostring(stage)] or 0
  local best
  for _, st in ipairs(c.pause_at) do
    local r = RANK[st]
    local ahead = r > here or (REPEATS[st] and weight < 100 and r >= RANK.PRE_PRODUCTION_TRAFFIC_SHIFT
      and here >= RANK.PRE_PRODUCTION_TRAFFIC_SHIFT and here <= RANK.PRODUCTION_TRAFFIC_SHIFT)
    if ahead and (not best or r < RANK[best]) then best = st end
  end
  return best
end

--[[ What the commands can do while ECS moves on between its pause hooks (cur:
     the last service deployment read): pause holds at the next hook, promote
     --full answers every remaining hook CONTINUE at once; a plain promote has
     no hook to answer. abort: the run's undo (StopServiceDeployment ROLLBACK). ]]
local function steering(run, c, cur)
  local function where()
    local sd = cur.sd or {}
    return tostring(sd.lifecycleStage or "starting"), cur.weight or 0
  end
  local how = {}
  function how.what()
    local stage, weight = where()
    return string.format("ECS deploys %s (stage %s, green %.0f%%)", c.service, stage, weight)
  end
  function how.hold_at()
    local nxt = next_pause(c, where())
    return nxt and string.format("paused: ECS moves on to its next pause hook (%s), where the run holds until "
      .. "unpause or promote (ECS cannot be held between its hooks)", nxt) or nil
  end
  function how.cannot_hold()
    return string.format("ECS deploys %s (stage %s) with no pause hook ahead (pause_at = %s): it finishes on its "
      .. "own; `ecsplay abort` rolls back", c.service, (where()), table.concat(c.pause_at, ", "))
  end
  function how.promote(cmd)
    local stage, weight = where()
    local nxt = next_pause(c, stage, weight)
    if cmd.full and nxt then
      control.of(run).full = true
      return string.format("promoting: every remaining pause hook (next: %s) is answered CONTINUE at once, "
        .. "without baking (ECS's own bake times still run)", nxt)
    end
    return nil, string.format("no pause hook awaits action (ECS is at stage %s, green %.0f%%)%s", stage, weight,
      nxt and ("; promote answers the next one (" .. nxt .. ") with CONTINUE, --full every one left")
        or "; none is ahead: ECS finishes on its own")
  end
  return how
end

-- At a PAUSE hook: bake the gates (unless resumed past it, or promoted --full), then continue.
local function at_pause(run, c, ctx, arn, sd, waiting, weight)
  local stage = tostring(sd.lifecycleStage)
  local live = control.of(run)
  run:log("info", "pause", string.format("paused at %s (green %.0f%%): %s", stage, weight,
    live.full and "promoted --full: continuing at once" or string.format("baking %s with %d gate(s)",
      duration.format(c.bake), #ctx.gates)), { weight = weight })
  -- resumed: a pause whose continue is journaled baked already
  local rounds = {}
  if not run:done("continue:" .. waiting.hookId) and not live.full then
    local w = bake.watcher(run, c, ctx.gates, { service = c.service, stable_target_group = ctx.blue_tg,
      canary_target_group = ctx.green_tg })
    -- a hold (pause, on_failure = "pause") ends before ECS's own timeout for the hook ends it
    local expires = tonumber(waiting.expiresAt)
    if expires then
      w.hold_until = expires - math.max(c.poll, c.interval)
      w.hold_what = string.format("held at the pause hook %s until close to its timeout (%s): rolling back "
        .. "before ECS does it by itself (timeoutAction %s)", stage, duration.format(c.hook_timeout * 60),
        tostring(waiting.timeoutAction or "ROLLBACK"))
    end
    w:bake(c.bake, { phase = stage, weight = weight })
    rounds = w.rounds
  end
  local pauses = run.report.pauses
  pauses[#pauses + 1] = { stage = stage, weight = weight, measurements = rounds }
  run:step("continue:" .. waiting.hookId, "continue after " .. stage, function()
    ecs.continue_service_deployment { serviceDeploymentArn = arn, hookId = waiting.hookId,
      action = "CONTINUE" }
  end)
  run:log("info", "continue", "gates passed at " .. stage .. ": continuing")
end

-- Follows the service deployment to SUCCESSFUL, baking at every pause.
local function follow(run, c, ctx, arn)
  local handled = {}
  local deadline = sched.now() + c.timeout
  local last_note
  local cur = {}
  -- between the hooks: no gates, only the commands (bake.lua wait_moving)
  local between = bake.watcher(run, c, {}, {})
  between:moving(steering(run, c, cur))
  while true do
    local sd = describe_sd(arn)
    cur.sd = sd
    if sd.status == "SUCCESSFUL" then return end
    if ROLLED_BACK[sd.status] then ecs_stopped(run, c, sd, arn, deadline + c.timeout) end
    local weight = sd.targetServiceRevision and sd.targetServiceRevision.requestedProductionTrafficWeight or 0
    cur.weight = weight
    local note = string.format("service deployment %s, stage %s, green %s%%", sd.status,
      tostring(sd.lifecycleStage), string.format("%.0f", weight))
    if note ~= last_note then run:log("info", "progress", note) last_note = note end
    local waiting
    for _, h in ipairs(sd.lifecycleHookDetails or {}) do
      if h.status == "AWAITING_ACTION" and not handled[h.hookId] then waiting = h break end
    end
    if waiting then
      handled[waiting.hookId] = true
      at_pause(run, c, ctx, arn, sd, waiting, weight)
    else
      if sched.now() >= deadline then
        error(ecs_util.failed("Timeout", "service deployment not finished after %s: %s",
          duration.format(c.timeout), note), 0)
      end
      between:wait_moving(sched.next_tick(c.poll)) -- on the grid: a fleet's polls merge
    end
  end
end

local function body(run, c, ctx, new_td)
  local arn = deploy(run, c, ctx, new_td)
  run.report.service_deployment = arn
  run.report.pauses = {}
  follow(run, c, ctx, arn)
  local w = traffic.get(ctx.point)
  run:log("info", "summary", string.format("%s succeeded: %s runs %s; production rule %s", c.name,
    c.service, short(new_td), traffic.describe(w, ctx.names)))
end

return strategy.define {
  name = S,
  takes = { cluster = "production", bake = 120, timeout = 3600, poll = 15 },
  own = { "service", "strategy", "canary", "linear", "bake_time", "pause_at", "alternate_target_group",
    "rule", "test_rule", "role", "hook_timeout" },
  check = check,
  bakes = { "bake" },
  default_name = function(c) return S .. " " .. c.service end,
  prepare = prepare,
  plan_desc = "which target group is green",
  body = body,
}
