--[[
Deployments of ECS-controlled services: creating them (with their service
revision and service deployment), the rolling-update scheduler, the deployment
circuit breaker, deployment alarms, completion and rollback.

The rolling scheduler runs once a tick per service:
  1. crashes and newly healthy tasks feed the circuit breaker of their deployment
  2. the circuit breaker / alarms may fail the primary deployment (and roll back)
  3. tasks of old deployments that are not healthy are stopped; healthy ones are
     stopped while the healthy total stays >= ceil(desired * minimumHealthyPercent)
  4. the primary deployment gets new tasks while the total of live tasks stays
     <= floor(desired * maximumPercent) (a FAILED primary launches nothing)
  5. the primary completes when it has `desired` healthy tasks and every task of
     the old deployments has STOPPED; old deployments then go INACTIVE and leave
     the list, as in DescribeServices.
Circuit breaker threshold (AWS's documented rule, thresholdConfiguration
BOUNDED_PERCENT 50 by default): max(3, min(200, ceil(0.5 * desiredCount))).
]]
local U = require "ecsplay.sim.ecs.util"
local T = require "ecsplay.sim.ecs.tasks"

local P = {}

------------------------------------------------------------------ revisions

--[[ Revisions, deployments and service deployments share the service's configuration tables
     (svc.lbs, svc.network, svc.dc) instead of copying them: those are never changed in place
     (CreateService and UpdateService store new ones), answers copy what they hand out, and a
     fleet's thousands of records then cost a reference each. ]]
function P.new_revision(world, svc, td, lbs)
  local st = U.st(world)
  local rev = {
    arn = world:arn("ecs", string.format("service-revision/%s/%s/%s", svc.cluster.name, svc.name,
      U.digits(world, 19))),
    svc = svc, td = td, lbs = lbs or svc.lbs, network = svc.network,
    launch_type = svc.launch_type, created_at = world.now,
  }
  st.revisions[rev.arn] = rev
  return rev
end

function P.describe_revision(world, rev)
  local images = {}
  for _, cd in ipairs(rev.td.containerDefinitions or {}) do
    local hex = {}
    for i = 1, 8 do hex[i] = string.format("%08x", math.floor(world:noise("digest", cd.image, i) * 4294967296)) end
    images[#images + 1] = { containerName = cd.name, image = cd.image,
      imageDigest = "sha256:" .. table.concat(hex) }
  end
  return {
    serviceRevisionArn = rev.arn, serviceArn = rev.svc.arn, clusterArn = rev.svc.cluster.arn,
    taskDefinition = rev.td.taskDefinitionArn, launchType = rev.launch_type,
    platformVersion = rev.launch_type == "FARGATE" and "1.4.0" or nil,
    platformFamily = rev.launch_type == "FARGATE" and "Linux" or nil,
    loadBalancers = U.copy(rev.lbs), serviceRegistries = {},
    networkConfiguration = U.copy(rev.network), containerImages = images,
    guardDutyEnabled = false, createdAt = rev.created_at,
  }
end

------------------------------------------------------------------ counting

-- Tasks of a deployment: live (desired RUNNING), running, pending, healthy, not yet STOPPED.
function P.counts(dep)
  return T.counts(dep.svc.tasks, "dep", dep)
end

function P.threshold(svc)
  local cb = svc.dc.deploymentCircuitBreaker or {}
  local tc = cb.thresholdConfiguration
  local d = svc.desired
  if tc and tc.type == "COUNT" then return math.max(1, tc.value or 1) end
  local pct = (tc and tc.value) or 50
  local n = math.ceil(pct / 100 * d)
  if tc and tc.type == "UNBOUNDED_PERCENT" then return math.max(1, n) end
  return math.max(3, math.min(200, n))
end

------------------------------------------------------------------ deployments

local function rollout_reason(dep, what)
  return string.format("ECS deployment %s %s.", dep.id, what)
end

-- The service deployment record of a new deployment `dep` (replacing `sources`).
local function new_service_deployment(world, svc, dep, rev, sources)
  local st = U.st(world)
  local now = world.now
  local cb = svc.dc.deploymentCircuitBreaker or {}
  local al = svc.dc.alarms or {}
  local sd = {
    arn = world:arn("ecs", string.format("service-deployment/%s/%s/%s", svc.cluster.name, svc.name,
      world:id(nil, 22))),
    svc = svc, created_at = now, started_at = now, updated_at = now, status = "IN_PROGRESS",
    stage = "SCALE_UP",
    target = rev, target_dep = dep, source_deps = sources, dc = svc.dc,
    cb = { status = cb.enable and "MONITORING" or "DISABLED", failureCount = 0, threshold = P.threshold(svc) },
    alarms = { status = al.enable and "MONITORING" or "DISABLED", alarmNames = U.copy(al.alarmNames or {}),
      triggeredAlarmNames = {} },
    hooks = {},
  }
  st.sds[sd.arn] = sd
  svc.sds[#svc.sds + 1] = sd
  return sd
end

--[[ Creates the new PRIMARY deployment of svc for task definition td.
     opts.sd: continue this service deployment (a rollback); opts.rev: re-use a
     revision; opts.reason: rolloutStateReason. ]]
function P.new_deployment(world, svc, td, opts)
  opts = opts or {}
  local now = world.now
  local rev = opts.rev or P.new_revision(world, svc, td, opts.lbs)
  local dep = {
    id = "ecs-svc/" .. U.digits(world, 19),
    svc = svc, td = td, rev = rev, status = "PRIMARY", desired = svc.desired, failed = 0,
    created_at = now, updated_at = now, rollout = "IN_PROGRESS",
    launch_type = svc.launch_type, network = svc.network,
    lbs = opts.lbs or {}, cb_count = 0,
  }
  dep.reason = opts.reason or rollout_reason(dep, "in progress")
  if not opts.lbs then
    -- rolling deployments register into the production target group (after a native
    -- blue/green deployment that may be the alternate one)
    for i, lb in ipairs(svc.lbs) do
      local ac = lb.advancedConfiguration
      local tg = lb.targetGroupArn
      if svc.prod_alt and svc.prod_alt[i] and ac and ac.alternateTargetGroupArn then tg = ac.alternateTargetGroupArn end
      dep.lbs[#dep.lbs + 1] = { tg = tg, port = lb.containerPort, name = lb.containerName }
    end
  end
  local sources = {}
  for _, old in ipairs(svc.deployments) do
    if old.status == "PRIMARY" then
      old.status = "ACTIVE"
      old.updated_at = now
      if old.sd and old.sd ~= opts.sd and (old.sd.status == "IN_PROGRESS" or old.sd.status == "PENDING") then
        old.sd.status = "STOPPED"
        old.sd.status_reason = "Service deployment superseded by a newer deployment."
        old.sd.stopped_at = now
        old.sd.updated_at = now
      end
    end
    sources[#sources + 1] = old
  end
  table.insert(svc.deployments, 1, dep)
  svc.td = td
  dep.sd = opts.sd or new_service_deployment(world, svc, dep, rev, sources)
  svc.current_sd = dep.sd
  svc.steady = false
  return dep
end

function P.primary(svc) return svc.deployments[1] end

--[[ Launches n tasks of service svc with the T.launch options `opts` (cluster, svc and the
     service's task group added here); one "has started" event. Deployments and task sets both
     start their tasks through this. ]]
function P.launch_tasks(world, svc, n, opts)
  if n <= 0 then return {} end
  local o = { cluster = svc.cluster, svc = svc, group = "service:" .. svc.name }
  for k, v in pairs(opts) do o[k] = v end
  local started = {}
  for i = 1, n do started[i] = T.launch(world, o) end
  U.event(world, svc, string.format("has started %d tasks: %s.", n, U.task_list(started)))
  return started
end

-- Launches n tasks for dep; one "has started" event.
function P.start_tasks(world, svc, dep, n, lbs)
  return P.launch_tasks(world, svc, n, { td = dep.td, dep = dep, lbs = lbs or dep.lbs, started_by = dep.id,
    network = dep.network, launch_type = svc.launch_type })
end

-- Scheduler-initiated stop of a list of tasks; one "has stopped" event. The stop reason names
-- `dep`'s id (task sets pass themselves: AWS names a task set's id there too), else each task's.
function P.stop_tasks(world, svc, tasks, dep)
  if #tasks == 0 then return end
  local done = {}
  for _, task in ipairs(tasks) do
    local reason = string.format("Scaling activity initiated by (deployment %s)", (dep or task.dep or {}).id or "")
    if T.stop(world, task, reason, "ServiceSchedulerInitiated", false) then done[#done + 1] = task end
  end
  if #done > 0 then
    U.event(world, svc, string.format("has stopped %d running tasks: %s.", #done, U.task_list(done)))
  end
end

-- Stops tasks of several deployments: one "has stopped" event per deployment, in first-seen order.
function P.stop_by_deployment(world, svc, tasks)
  local by_dep, order = {}, {}
  for _, task in ipairs(tasks) do
    if not by_dep[task.dep] then by_dep[task.dep] = {}; order[#order + 1] = task.dep end
    table.insert(by_dep[task.dep], task)
  end
  for _, d in ipairs(order) do P.stop_tasks(world, svc, by_dep[d], d) end
end

function P.finish_sd(world, sd, status, reason)
  sd.status = status
  sd.status_reason = reason
  sd.updated_at = world.now
  if status == "STOPPED" or status == "ROLLBACK_FAILED" then sd.stopped_at = world.now
  else sd.finished_at = world.now end
  if sd.cb.status == "MONITORING" then sd.cb.status = "MONITORING_COMPLETE" end
  if sd.alarms.status == "MONITORING" then sd.alarms.status = "MONITORING_COMPLETE" end
end

--[[ Fails the primary deployment. why: for the event ("tasks failed to start");
     reason: rolloutStateReason; rollback: roll back to the last completed
     deployment; kind: "circuit breaker" | "alarms" | "user". ]]
function P.fail(world, svc, dep, why, reason, rollback, kind)
  local now = world.now
  dep.rollout = "FAILED"
  dep.reason = reason
  dep.updated_at = now
  U.event(world, svc, string.format("(deployment %s) deployment failed: %s.", dep.id, why))
  local sd = dep.sd
  local target = svc.last_completed
  if rollback and target and target ~= dep then
    local r = P.new_deployment(world, svc, target.td, { sd = sd, rev = target.rev,
      reason = string.format("ECS deployment %s: rolling back to deploymentId %s.", kind or "circuit breaker", target.id) })
    r.rollback_of = dep
    if sd then
      sd.status = "ROLLBACK_IN_PROGRESS"
      sd.status_reason = reason
      sd.updated_at = now
      sd.rollback = { reason = reason, startedAt = now, serviceRevisionArn = target.rev.arn }
      svc.current_sd = sd
    end
    U.event(world, svc, string.format("rolling back to deployment %s.", target.id))
    return r
  end
  if sd then P.finish_sd(world, sd, "STOPPED", reason) end
  return nil
end

------------------------------------------------------------------ monitors

-- Crash / healthy notes of this tick into their deployments; true when any crashed.
function P.consume_task_notes(world, svc)
  local reset = true
  local cb = svc.dc.deploymentCircuitBreaker
  if cb and cb.resetOnHealthyTask == false then reset = false end
  for _, task in ipairs(svc.tasks) do
    local dep = task.dep
    if task.failed_new then
      task.failed_new = nil
      if dep then
        dep.failed = dep.failed + 1
        dep.updated_at = world.now
        if dep.rollout == "IN_PROGRESS" and dep.status == "PRIMARY" then
          dep.cb_count = dep.cb_count + 1
          if dep.sd and dep.sd.target_dep == dep then dep.sd.cb.failureCount = dep.sd.cb.failureCount + 1 end
        end
      end
    end
    if task.healthy_new then
      task.healthy_new = nil
      if dep and reset and dep.rollout == "IN_PROGRESS" then dep.cb_count = 0 end
    end
  end
end

--[[ The circuit breaker, then the deployment alarms, of svc as they stand for dep: nil, or
     what tripped { kind = "circuit breaker" | "alarms", why = (for the event), reason =
     (rolloutStateReason), rollback = (the configuration asks for one) }, the service
     deployment's monitor marked TRIGGERED. Rolling (P.monitors) and native (native.lua)
     deployments both watch through this; each fails in its own way. ]]
function P.tripped(world, svc, dep)
  local cb = svc.dc.deploymentCircuitBreaker
  if cb and cb.enable and dep.cb_count >= P.threshold(svc) then
    if dep.sd then dep.sd.cb.status = "TRIGGERED" end
    return { kind = "circuit breaker", why = "tasks failed to start",
      reason = "ECS deployment circuit breaker: tasks failed to start.", rollback = cb.rollback }
  end
  local al = svc.dc.alarms
  if al and al.enable then
    local firing = U.alarm_firing(world, al.alarmNames)
    if firing then
      if dep.sd then
        dep.sd.alarms.status = "TRIGGERED"
        dep.sd.alarms.triggeredAlarmNames = { firing }
      end
      return { kind = "alarms", why = "alarm detected",
        reason = string.format("ECS deployment failed: alarm(s) %s in ALARM state.", firing), rollback = al.rollback }
    end
  end
  return nil
end

-- Circuit breaker and deployment alarms on the primary; returns true when it failed.
function P.monitors(world, svc, dep)
  if dep.rollout ~= "IN_PROGRESS" then return false end
  local trip = P.tripped(world, svc, dep)
  if not trip then return false end
  -- the rolling scheduler reports the threshold as it stands now (desiredCount may have changed)
  if trip.kind == "circuit breaker" and dep.sd then dep.sd.cb.threshold = P.threshold(svc) end
  -- A rollback deployment is watched too, but does not roll back again.
  P.fail(world, svc, dep, trip.why, trip.reason, trip.rollback and not dep.rollback_of, trip.kind)
  return true
end

------------------------------------------------------------------ completion

function P.complete(world, svc, dep)
  local now = world.now
  dep.rollout = "COMPLETED"
  dep.reason = rollout_reason(dep, "completed")
  dep.updated_at = now
  for i = #svc.deployments, 1, -1 do
    local d = svc.deployments[i]
    if d ~= dep then
      d.status = "INACTIVE"
      table.remove(svc.deployments, i)
    end
  end
  svc.last_completed = dep
  local sd = dep.sd
  if sd then sd.stage = "CLEAN_UP" end
  if sd and (sd.status == "IN_PROGRESS" or sd.status == "ROLLBACK_IN_PROGRESS" or sd.status == "PENDING") then
    if dep.rollback_of then P.finish_sd(world, sd, "ROLLBACK_SUCCESSFUL", sd.status_reason)
    else P.finish_sd(world, sd, "SUCCESSFUL", nil) end
  end
  U.event(world, svc, string.format("(deployment %s) deployment completed.", dep.id))
end

-- The steady-state event when the service settles (once per settling).
function P.check_steady(world, svc)
  local dep = svc.deployments[1]
  local steady = false
  if dep and #svc.deployments == 1 and dep.rollout ~= "IN_PROGRESS" then
    local c = P.counts(dep)
    steady = c.live == svc.desired and c.healthy == svc.desired and c.present == c.live
  end
  if steady and not svc.steady then U.event(world, svc, "has reached a steady state.") end
  svc.steady = steady
end

------------------------------------------------------------------ the rolling scheduler

local function healthy_first_sort(list)
  -- not-yet-healthy first, then newest first: the scheduler sheds the least useful tasks
  table.sort(list, function(a, b)
    if (a.healthy and 1 or 0) ~= (b.healthy and 1 or 0) then return not a.healthy end
    if a.created_at ~= b.created_at then return a.created_at > b.created_at end
    return a.id < b.id
  end)
end

-- A StopServiceDeployment request recorded by service_deployments.lua, acted on at the next tick.
function P.handle_stop(world, svc, dep)
  local kind = dep.stop_request
  dep.stop_request = nil
  if not kind or dep.rollout ~= "IN_PROGRESS" then return end
  local sd = dep.sd
  if kind == "ROLLBACK" then
    local target = svc.last_completed
    if target and target ~= dep then
      P.fail(world, svc, dep, "rollback requested by StopServiceDeployment",
        "Service deployment rolled back by a StopServiceDeployment request.", true, "stop request")
    else
      dep.rollout = "FAILED"
      dep.reason = "ECS deployment stopped: no completed deployment to roll back to."
      dep.updated_at = world.now
      if sd then P.finish_sd(world, sd, "ROLLBACK_FAILED", dep.reason) end
    end
  else
    dep.rollout = "FAILED"
    dep.reason = "ECS deployment stopped by a StopServiceDeployment request."
    dep.updated_at = world.now
    U.event(world, svc, string.format("(deployment %s) deployment stopped.", dep.id))
    if sd then P.finish_sd(world, sd, "STOPPED", dep.reason) end
  end
end

-- The live tasks of svc: the primary's (live_p), the old deployments' (old_live), and totals.
local function live_tasks(svc, dep)
  local g = { live_p = {}, old_live = {}, healthy_total = 0, live_total = 0 }
  for _, task in ipairs(svc.tasks) do
    if T.live(task) then
      g.live_total = g.live_total + 1
      if task.healthy then g.healthy_total = g.healthy_total + 1 end
      if task.dep == dep then g.live_p[#g.live_p + 1] = task else g.old_live[#g.old_live + 1] = task end
    end
  end
  return g
end

-- The primary above its desired count (desiredCount lowered) stops the least useful extras.
local function shed_primary_extra(world, svc, dep, g, D)
  if #g.live_p <= D then return end
  healthy_first_sort(g.live_p)
  local extra = {}
  for i = 1, #g.live_p - D do
    extra[i] = g.live_p[i]
    if g.live_p[i].healthy then g.healthy_total = g.healthy_total - 1 end
  end
  P.stop_tasks(world, svc, extra, dep)
  g.live_total = g.live_total - #extra
end

-- Old deployments: shed what is not healthy, then healthy tasks above the floor (oldest deployment first).
local function shed_old(world, svc, g, min_healthy)
  table.sort(g.old_live, function(a, b)
    if (a.healthy and 1 or 0) ~= (b.healthy and 1 or 0) then return not a.healthy end
    if a.dep.created_at ~= b.dep.created_at then return a.dep.created_at < b.dep.created_at end
    return a.created_at < b.created_at or (a.created_at == b.created_at and a.id < b.id)
  end)
  local stop = {}
  local budget = g.healthy_total - min_healthy
  for _, task in ipairs(g.old_live) do
    if not task.healthy then stop[#stop + 1] = task
    elseif budget > 0 then
      stop[#stop + 1] = task
      budget = budget - 1
    end
  end
  P.stop_by_deployment(world, svc, stop)
  g.live_total = g.live_total - #stop
end

-- The primary's new tasks, within maximumPercent.
local function launch_primary(world, svc, dep, g, D, max_total)
  local live_count = math.min(#g.live_p, D)
  local want = D - live_count
  local room = max_total - g.live_total
  if room < 0 then room = 0 end
  -- maximumPercent 100 with nothing left to stop must still replace crashed tasks
  if room == 0 and #g.old_live == 0 and g.live_total < D then room = D - g.live_total end
  P.start_tasks(world, svc, dep, math.min(want, room))
end

-- The primary completes once it has D healthy tasks and the old deployments none left (after the bake time).
local function try_complete(world, svc, dep, D)
  local c = P.counts(dep)
  local olds_present = 0
  for i = 2, #svc.deployments do olds_present = olds_present + P.counts(svc.deployments[i]).present end
  if c.live == D and c.healthy == D and olds_present == 0 then
    local bake = (svc.dc.alarms and svc.dc.alarms.enable) and (svc.dc.bakeTimeInMinutes or 0) * 60 or 0
    if bake > 0 and not dep.bake_until then
      dep.bake_until = world.now + bake
      if dep.sd then dep.sd.stage = "BAKE_TIME" end
    end
    if not dep.bake_until or world.now >= dep.bake_until then P.complete(world, svc, dep) end
  end
end

-- One tick of the rolling scheduler for svc (the steps in this file's header).
function P.schedule(world, svc)
  P.consume_task_notes(world, svc)
  local dep = svc.deployments[1]
  if not dep then return end
  if dep.stop_request then P.handle_stop(world, svc, dep) end
  dep = svc.deployments[1]
  P.monitors(world, svc, dep)
  dep = svc.deployments[1]
  local D = svc.desired
  dep.desired = D
  local dc = svc.dc
  local max_total = (D * (dc.maximumPercent or 200)) // 100
  local min_healthy = math.ceil(D * (dc.minimumHealthyPercent or 100) / 100)
  local failed_primary = dep.rollout == "FAILED"
  local g = live_tasks(svc, dep)
  shed_primary_extra(world, svc, dep, g, D)
  if not failed_primary and #g.old_live > 0 then shed_old(world, svc, g, min_healthy) end
  if not failed_primary then launch_primary(world, svc, dep, g, D, max_total) end
  -- old deployments report the count they are scaling down from
  for i = 2, #svc.deployments do
    local d = svc.deployments[i]
    d.desired = P.counts(d).live
  end
  if dep.rollout == "IN_PROGRESS" then try_complete(world, svc, dep, D) end
  P.check_steady(world, svc)
end

return P
