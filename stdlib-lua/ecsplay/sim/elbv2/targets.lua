--[[
Targets of the simulated ELBv2 and their health: RegisterTargets,
DeregisterTargets, DescribeTargetHealth, the health checks run by the tick, and
the functions ECS registers its tasks through.

Every tick, a target group used by a load balancer health-checks each
registered target at its HealthCheckIntervalSeconds cadence. A check passes
when the target has no ECS task (plain RegisterTargets) or its task is
"healthy" (ecs.task_health); "starting" keeps an initial target initial (the
container is booting: counted as neither pass nor failure, which is how ECS's
health check grace period makes it look); "unhealthy" fails with
Target.ResponseCodeMismatch, "stopped"/unknown with Target.FailedHealthChecks.
HealthyThresholdCount consecutive passes make a target healthy,
UnhealthyThresholdCount consecutive failures unhealthy. Deregistered targets
drain for deregistration_delay.timeout_seconds, then disappear.
]]
local state = require "ecsplay.sim.elbv2.state"
local limits = require "ecsplay.sim.limits"

local M = {}
M.ops = {}
local ops = M.ops

-- Seconds between registration and the first health check.
local REGISTRATION_SECONDS = 5

local REASON_TEXT = {
  ["Elb.RegistrationInProgress"] = "Target registration is in progress",
  ["Elb.InitialHealthChecking"] = "Initial health checks in progress",
  ["Target.ResponseCodeMismatch"] = "Health checks failed with these codes: [500]",
  ["Target.FailedHealthChecks"] = "Health checks failed",
  ["Target.NotInUse"] = "Target group is not configured to receive traffic from the load balancer",
  ["Target.DeregistrationInProgress"] = "Target deregistration is in progress",
  ["Target.NotRegistered"] = "Target is not registered to the target group",
}

local function target_key(id, port) return tostring(id) .. ":" .. tostring(port) end

-- AWS's quota: Targets per Target Group (draining targets still count, as they are registered).
local MAX_TARGETS = limits.ELBV2.TARGETS_PER_TARGET_GROUP
local TOO_MANY_TARGETS = "You've reached the limit on the number of targets."

---------------------------------------------------------------- registration

--[[ Counts the changes of what a target group's targets show (registered, gone, draining, a
     health state changed): the ALB metrics (sim/cloudwatch/alb.lua) recount a group's healthy
     targets only when this moved, not every minute. ]]
local function health_changed(world, tg)
  tg.health_version = (tg.health_version or 0) + 1
  state.wake(world, tg) -- the tick visits it again (state.awake)
end

local function register(world, tg, id, port, task_arn, az)
  port = port or tg.port
  local key = target_key(id, port)
  local t = {
    id = id, port = port, az = az, task_arn = task_arn, registered_at = world.now,
    state = "initial", reason = "Elb.RegistrationInProgress", passes = 0, fails = 0,
    next_check = world.now + REGISTRATION_SECONDS,
  }
  if not tg.targets[key] then tg.target_list[#tg.target_list + 1] = key end
  tg.targets[key] = t
  health_changed(world, tg)
  return t
end

local function drop_target(world, tg, key)
  tg.targets[key] = nil
  state.remove_value(tg.target_list, key)
  health_changed(world, tg)
end

-- Starts draining a target (gone at once without a delay or a load balancer); false if it was not there.
local function deregister(world, tg, key)
  local t = tg.targets[key]
  if not t or t.state == "draining" then return false end
  local delay = tonumber(tg.attrs["deregistration_delay.timeout_seconds"]) or 300
  if delay <= 0 or not state.tg_in_use(world, tg) then
    drop_target(world, tg, key)
    return true
  end
  t.state, t.reason = "draining", "Target.DeregistrationInProgress"
  health_changed(world, tg)
  t.drain_until = world.now + delay
  world:at(t.drain_until, function()
    if tg.targets[key] == t then drop_target(world, tg, key) end
  end)
  return true
end

function ops.RegisterTargets(world, input)
  local tg = state.tg_or_fail(world, input.TargetGroupArn)
  local new = {}
  for i, t in ipairs(input.Targets or {}) do
    if not t.Id then world:fail("ValidationError", "Targets.member." .. i .. ".Id is required") end
    local port = t.Port or tg.port
    if not port then world:fail("ValidationError", "Targets.member." .. i .. ": a port is required") end
    local key = target_key(t.Id, port)
    if not tg.targets[key] and not new[key] then
      new[key] = true
      new[#new + 1] = key
      if #tg.target_list + #new > MAX_TARGETS then
        world:fail("TooManyTargets", string.format("%s A target group can have at most %d targets.",
          TOO_MANY_TARGETS, MAX_TARGETS))
      end
    end
  end
  for _, t in ipairs(input.Targets or {}) do
    local existing = tg.targets[target_key(t.Id, t.Port or tg.port)]
    if not existing or existing.state == "draining" then
      register(world, tg, t.Id, t.Port, nil, t.AvailabilityZone)
    end
  end
  return {}
end

function ops.DeregisterTargets(world, input)
  local tg = state.tg_or_fail(world, input.TargetGroupArn)
  local missing = {}
  for _, t in ipairs(input.Targets or {}) do
    if not tg.targets[target_key(t.Id, t.Port or tg.port)] then missing[#missing + 1] = "'" .. t.Id .. "'" end
  end
  if #missing > 0 then
    world:fail("InvalidTarget", "The following targets are not registered: " .. table.concat(missing, ", "))
  end
  for _, t in ipairs(input.Targets or {}) do deregister(world, tg, target_key(t.Id, t.Port or tg.port)) end
  return {}
end

---------------------------------------------------------------- health as shown

-- The state a target shows now (a target group without a load balancer shows "unused").
local function shown_state(t, in_use)
  if t.state == "draining" then return "draining", "Target.DeregistrationInProgress" end
  if not in_use then return "unused", "Target.NotInUse" end
  return t.state, t.reason
end

local function out_health(tg, t, health, reason)
  return {
    Target = { Id = t.id, Port = t.port, AvailabilityZone = t.az },
    HealthCheckPort = tg.hc.port == "traffic-port" and tostring(t.port) or tg.hc.port,
    TargetHealth = { State = health, Reason = reason, Description = reason and REASON_TEXT[reason] or nil },
  }
end

function ops.DescribeTargetHealth(world, input)
  local tg = state.tg_or_fail(world, input.TargetGroupArn)
  local in_use = state.tg_in_use(world, tg)
  local out = {}
  if input.Targets and #input.Targets > 0 then
    for _, q in ipairs(input.Targets) do
      local t = tg.targets[target_key(q.Id, q.Port or tg.port)]
      if t then
        out[#out + 1] = out_health(tg, t, shown_state(t, in_use))
      else
        out[#out + 1] = out_health(tg, { id = q.Id, port = q.Port or tg.port }, "unused", "Target.NotRegistered")
      end
    end
  else
    for _, key in ipairs(tg.target_list) do
      local t = tg.targets[key]
      out[#out + 1] = out_health(tg, t, shown_state(t, in_use))
    end
  end
  return { TargetHealthDescriptions = out }
end

---------------------------------------------------------------- health checks

-- One health check of target t: true (pass), false, reason (fail) or nil (no verdict).
local function check(world, t)
  if not t.task_arn then return true end
  local ecs = world.svc.ecs
  local h = ecs and ecs.task_health and ecs.task_health(world, t.task_arn)
  if h == "healthy" then return true end
  if h == "starting" then return nil end
  if h == "unhealthy" then return false, "Target.ResponseCodeMismatch" end
  return false, "Target.FailedHealthChecks"
end

-- A due health check of target t and what it does to its state.
local function run_check(world, tg, t)
  local before = t.state
  if not tg.hc.enabled then
    t.state, t.reason = "healthy", nil
    if before ~= t.state then health_changed(world, tg) end
    return
  end
  local ok, why = check(world, t)
  if ok == true then
    t.passes, t.fails = t.passes + 1, 0
    if t.state ~= "healthy" then
      if t.passes >= tg.hc.healthy then t.state, t.reason = "healthy", nil
      elseif t.state == "initial" then t.reason = "Elb.InitialHealthChecking" end
    end
  elseif ok == false then
    t.fails, t.passes = t.fails + 1, 0
    if t.fails >= tg.hc.unhealthy then t.state, t.reason = "unhealthy", why
    elseif t.state == "initial" then t.reason = "Elb.InitialHealthChecking" end
  elseif t.state == "initial" then
    t.reason = "Elb.InitialHealthChecking"
  end
  if before ~= t.state then health_changed(world, tg) end
end

--[[ A target group whose targets are all healthy (or draining), each with no ECS task or one
     the simulated ECS calls settled (healthy until something asks it to stop, which deregisters
     its targets first), stays so until one of them changes (health_version): every check would
     pass. Such a group is not visited until something moves (its checks would only count
     passes, which nothing shows); a fleet's settled target groups then cost a tick nothing. ]]
local function quiet(world, tg)
  local ecs = world.svc.ecs
  for _, key in ipairs(tg.target_list) do
    local t = tg.targets[key]
    if t.state ~= "draining" then
      if t.state ~= "healthy" then return false end
      if t.task_arn and not (ecs and ecs.task_settled and ecs.task_settled(world, t.task_arn)) then
        return false
      end
    end
  end
  return true
end

--[[ One tick of a target group's health checks. → whether the next tick would change nothing
     (until something wakes the group, state.awake): settled, or not used (its targets wait,
     reset, for a load balancer). ]]
local function tick_tg(world, tg, now)
  local in_use = state.tg_in_use(world, tg)
  if in_use and tg.quiet_version ~= nil and tg.quiet_version == (tg.health_version or 0) then return true end
  tg.quiet_version = nil
  for _, key in ipairs(tg.target_list) do
    local t = tg.targets[key]
    if t.state ~= "draining" then
      if not in_use then
        -- no checks without a load balancer; restart from scratch once attached
        if t.state ~= "initial" then health_changed(world, tg) end
        t.state, t.reason, t.passes, t.fails, t.next_check = "initial", "Elb.RegistrationInProgress", 0, 0, nil
      elseif not t.next_check then
        t.next_check = now + REGISTRATION_SECONDS
      elseif now >= t.next_check then
        t.next_check = t.next_check + tg.hc.interval
        if t.next_check <= now then t.next_check = now + tg.hc.interval end
        run_check(world, tg, t)
      end
    end
  end
  if in_use and quiet(world, tg) then tg.quiet_version = tg.health_version or 0 end
  return not in_use or tg.quiet_version ~= nil
end

local function by_seq(a, b) return a.seq < b.seq end

--[[ Visits the target groups that may change (state.awake), in creation order as a visit of
     every group would: a settled or unused group would do nothing, so it is left out until
     something wakes it. ]]
function M.tick(world, t)
  local s = state.refresh_routing(world) -- routing changes wake the groups they concern
  local awake = state.awake(world)
  local list = {}
  for tg in pairs(awake) do
    if s.tg_by_arn[tg.arn] == tg then list[#list + 1] = tg else awake[tg] = nil end
  end
  table.sort(list, by_seq)
  for _, tg in ipairs(list) do
    if tick_tg(world, tg, t) then awake[tg] = nil end
  end
end

---------------------------------------------------------------- cross-service

--[[ register(world, tg_arn, target_id, port, task_arn): an ECS task joins a target group.
     → the target, or nil and AWS's message when the group is full (TooManyTargets). ]]
function M.register(world, tg_arn, target_id, port, task_arn)
  local tg = state.tg_or_fail(world, tg_arn)
  if not tg.targets[target_key(target_id, port or tg.port)] and #tg.target_list >= MAX_TARGETS then
    return nil, TOO_MANY_TARGETS
  end
  return register(world, tg, target_id, port, task_arn)
end

-- deregister(world, tg_arn, target_id, port) -> true if the target was registered.
function M.deregister(world, tg_arn, target_id, port)
  local tg = state.st(world).tg_by_arn[tg_arn]
  if not tg then return false end
  return deregister(world, tg, target_key(target_id, port or tg.port))
end

-- target_health(world, tg_arn, id, port) -> state, reason as DescribeTargetHealth shows them.
function M.target_health(world, tg_arn, target_id, port)
  local tg = state.st(world).tg_by_arn[tg_arn]
  if not tg then return nil end
  local t = tg.targets[target_key(target_id, port or tg.port)]
  if not t then return "unused", "Target.NotRegistered" end
  return shown_state(t, state.tg_in_use(world, tg))
end

-- health_version(world, tg_arn) -> a number that changes whenever a target of the group does.
function M.health_version(world, tg_arn)
  local tg = state.st(world).tg_by_arn[tg_arn]
  return tg and (tg.health_version or 0) or nil
end

-- healthy_count(world, tg_arn) -> number of targets in state "healthy".
function M.healthy_count(world, tg_arn)
  local tg = state.st(world).tg_by_arn[tg_arn]
  if not tg or not state.tg_in_use(world, tg) then return 0 end
  local n = 0
  for _, key in ipairs(tg.target_list) do
    if tg.targets[key].state == "healthy" then n = n + 1 end
  end
  return n
end

return M
