--[[
Undo actions: data, not closures, so they can be written to the run
journal and carried out by `ecsplay rollback JOURNAL` in another process after
a kill -9. Each action sets a state (it does not toggle one), so running it
twice, or for a change that never happened, is harmless.

  { op = "set_weights", point = {kind=, arn=}, weights = {[tg_arn]=w}, test = true? }
  { op = "update_service", cluster=, service=, taskDefinition=?, desiredCount=?,
    wait = { target_groups = {arn...}, timeout = s }? }
  { op = "stop_codedeploy", deploymentId=?, application=, group=, marker=, revert=? }
                     (rollout/codedeploy_undo.lua)
  { op = "stop_service_deployment", serviceDeploymentArn= }
  { op = "delete_task_set", cluster=, service=, taskSet= }

M.undo(entries, hooks) carries out a stack of { action = } entries through
ecsplay.undo, the one undo loop: a rollout's rollback (rollout/run.lua) and
`ecsplay rollback JOURNAL` (rollout/journal.lua) both use it.

The stack is a plan that never makes things worse. Strategies record, for
every step that removes capacity (blue scaled to zero), an undo that puts it
back and waits until it is healthy, so newest first means: capacity back,
then traffic, then the new side down. And every action looks before it acts:
  set_weights        refuses (NoHealthyTargets) to give a target group more
                     traffic while it has no healthy target (test = true: a
                     test listener, put back as it was whatever its targets)
  update_service     refuses (StillReceivesTraffic) to lower the desired count
                     of a service whose target groups still receive traffic;
                     sends nothing when the service already is as asked; a
                     new task definition goes out without PAUSE lifecycle
                     hooks (nobody would be there to continue them); then
                     waits, when the service keeps tasks and the action names
                     a task definition or `wait`, until ECS has finished and
                     the targets are healthy, and, when it scales the service
                     to zero, until ECS has finished the scale-in (the last
                     undo of a stack: traffic has moved home before it)
  delete_task_set    refuses while the task set's target group receives traffic
A refusal, a failed traffic move and a capacity that did not come back stop
the loop there (M.undo): what is left is kept as it is, reported, and
`ecsplay rollback JOURNAL` retries it.
]]
local sched = require "ecsplay.sched"
local errors = require "ecsplay.errors"
local undo = require "ecsplay.undo"
local ecs = require "ecsplay.ecs"
local traffic = require "ecsplay.rollout.traffic"
local ecs_util = require "ecsplay.rollout.ecs_util"
local codedeploy_undo = require "ecsplay.rollout.codedeploy_undo"
local tables = require "ecsplay.util.tables"
local batch = require "ecsplay.aws.batch"

local M = {}

-- "api-canary=0 api-stable=100" (counts from a journal are floats: 100, not 100.0).
local function weights_text(weights)
  local parts = {}
  for _, arn in ipairs(tables.keys(weights)) do
    parts[#parts + 1] = ecs_util.tg_name(arn) .. "=" .. string.format("%.0f", weights[arn])
  end
  return table.concat(parts, " ")
end
M.weights_text = weights_text

local function describe(a)
  if a.op == "set_weights" then
    return (a.test and "test traffic back to " or "traffic back to ") .. weights_text(a.weights)
  elseif a.op == "update_service" then
    local what = {}
    if a.taskDefinition then what[#what + 1] = "task definition " .. ecs_util.short(a.taskDefinition) end
    -- counts read back from a journal are JSON floats: print 0, not 0.0
    if a.desiredCount then what[#what + 1] = "desired count " .. string.format("%d", a.desiredCount) end
    return "service " .. a.service .. " back to " .. table.concat(what, ", ")
      .. (a.wait and " (and healthy)" or "")
  elseif a.op == "stop_codedeploy" then
    return codedeploy_undo.describe(a)
  elseif a.op == "stop_service_deployment" then
    return "roll back ECS service deployment " .. a.serviceDeploymentArn
  elseif a.op == "delete_task_set" then
    return "delete task set " .. a.taskSet
  end
  return a.op
end
M.describe = describe

local apply = {}

-- A refusal: doing the action now would make things worse (kind rollback, exit 3).
local function refuse(code, fmt, ...)
  error(errors.new("rollback", { code = code, message = string.format(fmt, ...) }), 0)
end
M.REFUSALS = { "NoHealthyTargets", "StillReceivesTraffic" }

-- Traffic only goes to a target group that can serve it: every group whose
-- share grows must have a healthy target (a test listener is put back as it was).
local function check_targets_for(a, now)
  if a.test then return end
  local have, want = traffic.percent(now), traffic.percent(a.weights)
  for _, arn in ipairs(tables.keys(a.weights)) do
    if (want[arn] or 0) > (have[arn] or 0) + 0.5 and ecs_util.healthy_targets(arn) == 0 then
      refuse("NoHealthyTargets", "%s has no healthy target, so no traffic was moved to it (traffic stays "
        .. "%s); scale its service up until its targets are healthy, then run the rollback again",
        ecs_util.tg_name(arn), weights_text(now))
    end
  end
end

function apply.set_weights(a)
  check_targets_for(a, traffic.get(a.point))
  traffic.set(a.point, a.weights)
end

local NATIVE = { BLUE_GREEN = true, LINEAR = true, CANARY = true }

-- the undo's reads go through the shared batcher (aws/batch.lua): a fleet's rollbacks that read
-- at the same instant share their DescribeServices / DescribeServiceDeployments calls
local ecs_reads = batch.face "ecs"

local function service_of(a)
  local svc = ecs_reads.describe_services({ cluster = a.cluster, services = { a.service } }).services[1]
  if not svc or svc.status ~= "ACTIVE" then
    error(errors.new("rollback", { code = "ServiceNotFound", message = string.format(
      "service %s not found (or not ACTIVE) in cluster %s", a.service, tostring(a.cluster)) }), 0)
  end
  return svc
end

-- The target groups a service's tasks register in (with ECS's alternate ones).
local function target_groups_of(svc)
  local out = {}
  for _, lb in ipairs(svc.loadBalancers or {}) do
    out[#out + 1] = lb.targetGroupArn
    local ac = lb.advancedConfiguration
    if ac and ac.alternateTargetGroupArn then out[#out + 1] = ac.alternateTargetGroupArn end
  end
  return out
end

-- Capacity only leaves a side that receives no traffic: read the weights back first.
local function check_no_traffic(tg_arns, what)
  for _, arn in ipairs(tg_arns) do
    local where = traffic.receiving(arn)[1]
    if where then
      refuse("StillReceivesTraffic", "%s still receives %.0f%% of the traffic on port %s through %s, so it "
        .. "was left as it is; move that traffic away first", what, where.percent, tostring(where.port),
        ecs_util.tg_name(arn))
    end
  end
end

-- The service's deployment configuration without PAUSE lifecycle hooks (nil: it has none).
local function without_pause_hooks(dc)
  local hooks, kept = dc and dc.lifecycleHooks, {}
  if type(hooks) ~= "table" or #hooks == 0 then return nil end
  for _, h in ipairs(hooks) do if h.targetType ~= "PAUSE" then kept[#kept + 1] = h end end
  if #kept == #hooks then return nil end
  local out = tables.shallow_copy(dc)
  out.lifecycleHooks = kept
  return out
end

-- Waits until the service has finished: one deployment, `want` tasks running
-- and (for a service ECS itself does not shift) healthy in its target groups.
-- A service scaled to zero has no target to be healthy in: only its deployment is waited for.
local function settle(a, svc, want)
  local native = NATIVE[(svc.deploymentConfiguration or {}).strategy or ""]
  local tgs = a.wait and a.wait.target_groups
  if not tgs and not native then tgs = target_groups_of(svc) end
  if want == 0 then tgs = nil end
  ecs_util.wait_ready(a.cluster, a.service, a.taskDefinition or svc.taskDefinition, want, tgs,
    a.wait and a.wait.timeout or 900)
end

local IN_FLIGHT = ecs_util.IN_FLIGHT

--[[ A service with an ECS deployment strategy whose deployment is still in
     flight (a run killed before it journaled the deployment, so no
     stop_service_deployment undo names it): ECS rolls it back, which puts
     the traffic and the previous revision back as they were, instead of a
     second deployment on top. Returns the service read again. ]]
local function stop_in_flight(a, svc)
  local arn = svc.currentServiceDeployment
  if not (arn and NATIVE[(svc.deploymentConfiguration or {}).strategy or ""]) then return svc end
  local sd = (ecs_reads.describe_service_deployments { serviceDeploymentArns = { arn } }.serviceDeployments
    or {})[1]
  if not (sd and IN_FLIGHT[sd.status]) then return svc end
  apply.stop_service_deployment { serviceDeploymentArn = arn }
  return service_of(a)
end

--[[ Idempotent: reads the service, sends only what differs (a retried or
     repeated undo sends nothing), and refuses to lower the count of a side
     that still receives traffic. ]]
function apply.update_service(a)
  local svc = service_of(a)
  if a.taskDefinition and a.taskDefinition ~= svc.taskDefinition then svc = stop_in_flight(a, svc) end
  local req = { cluster = a.cluster, service = a.service }
  local want = svc.desiredCount
  if a.desiredCount and a.desiredCount ~= svc.desiredCount then
    if a.desiredCount < svc.desiredCount then
      check_no_traffic(target_groups_of(svc), "service " .. a.service)
    end
    req.desiredCount = math.tointeger(a.desiredCount) or a.desiredCount
    want = a.desiredCount
  end
  if a.taskDefinition and a.taskDefinition ~= svc.taskDefinition then
    req.taskDefinition = a.taskDefinition
    req.deploymentConfiguration = without_pause_hooks(svc.deploymentConfiguration)
  end
  local sent = req.desiredCount or req.taskDefinition
  if sent then ecs.update_service(req) end
  -- a scale-in is waited for too (back on its previous task definition it is a new deployment,
  -- IN_PROGRESS until the old tasks have stopped), unless nothing was sent to a service already
  -- at rest: no deployment is left in progress, and a repeated undo costs no wait
  if want > 0 and (a.wait or a.taskDefinition) then settle(a, svc, want)
  elseif want == 0 and (sent or not ecs_util.at_rest(svc)) then settle(a, svc, 0) end
end

-- Found by id or by the run's marker, stopped with rollback, or reverted once
-- it succeeded (rollout/codedeploy_undo.lua).
apply.stop_codedeploy = codedeploy_undo.stop

-- Idempotent: a deployment already rolled back or stopped is left alone; a
-- finished one cannot be rolled back this way (the update_service undo
-- recorded before it then puts the old task definition back). Waits until
-- ECS reports the rollback done.
function apply.stop_service_deployment(a)
  local function status()
    local res = ecs_reads.describe_service_deployments { serviceDeploymentArns = { a.serviceDeploymentArn } }
    local sd = res.serviceDeployments and res.serviceDeployments[1]
    return sd and sd.status, sd
  end
  local st = status()
  if st == nil or st == "ROLLBACK_SUCCESSFUL" or st == "STOPPED" then return end
  if st == "SUCCESSFUL" then return end
  if st == "ROLLBACK_FAILED" then
    error(errors.new("rollback", { message = "ECS could not roll back " .. a.serviceDeploymentArn }), 0)
  end
  if st == "PENDING" or st == "IN_PROGRESS" then
    ecs.stop_service_deployment { serviceDeploymentArn = a.serviceDeploymentArn, stopType = "ROLLBACK" }
  end
  local deadline = sched.now() + 600
  while true do
    local s2, sd = status()
    if s2 == "ROLLBACK_SUCCESSFUL" or s2 == "STOPPED" then return end
    if s2 == "ROLLBACK_FAILED" then
      error(errors.new("rollback", { message = "ECS could not roll back " .. a.serviceDeploymentArn
        .. ": " .. tostring(sd.statusReason) }), 0)
    end
    if sched.now() >= deadline then break end
    -- on the shared 5 s grid: a fleet's rollbacks read together, in one batched call
    sched.sleep_to_tick(5)
  end
  error(errors.new("waiter", { code = "Timeout", message = "service deployment " .. a.serviceDeploymentArn
    .. " did not finish rolling back in 10 minutes" }), 0)
end

function apply.delete_task_set(a)
  local res = ecs.describe_task_sets { cluster = a.cluster, service = a.service, taskSets = { a.taskSet } }
  local ts = res.taskSets and res.taskSets[1]
  if not ts or ts.status == "DRAINING" then return end
  local tgs = {}
  for _, lb in ipairs(ts.loadBalancers or {}) do tgs[#tgs + 1] = lb.targetGroupArn end
  check_no_traffic(tgs, "task set " .. a.taskSet)
  ecs.delete_task_set { cluster = a.cluster, service = a.service,
    taskSet = a.taskSet, force = true }
end

--[[ Carries out one undo action. A rollback must not give up on the first
     throttle or blip: giving up leaves traffic half-shifted for a human to fix,
     so while the error is a transient one (throttling, 5xx, a dropped
     connection: the SDK's `retryable`) the action is tried again with capped
     backoff for up to M.retry_budget seconds; any other error gets `tries`
     tries (default 5). The budget is the one a forward weight shift has
     (traffic.set), so a throttle is waited out the same way in both directions. ]]
M.retry_budget = traffic.retry_budget

function M.run(a, tries)
  local fn = apply[a.op]
  if not fn then
    error(errors.new("journal", { code = "BadJournal", message = "unknown undo action " .. tostring(a.op) }), 0)
  end
  tries = tries or 5
  local deadline = sched.now() + M.retry_budget
  local last
  local attempt = 0
  while true do
    attempt = attempt + 1
    local ok, err = pcall(fn, a)
    if ok then return true end
    last = err
    if errors.is(err, "AlreadySucceeded") then break end
    -- the world said no (a refusal), or a wait already used its whole timeout: final
    if errors.is(err, M.REFUSALS) or errors.is(err, "waiter") then break end
    -- a second Ctrl-C does not stop a rollback: it counts as a blip and the action is tried again
    local transient = sched.is_interrupt(err) or (type(err) == "table" and err.retryable == true)
    if not transient and attempt >= tries then break end
    local wait = math.min(2 ^ math.min(attempt, 5), 20)
    if sched.now() + wait > deadline then break end
    sched.sleep(wait)
  end
  error(last, 0)
end

-- Undos that move traffic (or have ECS move it back).
local MOVES_TRAFFIC = { set_weights = true, stop_service_deployment = true }

--[[ Whether a failed entry stops the loop: after a traffic move that did not
     happen, a refusal, or capacity that did not come back (an update_service
     with `wait`), going on would remove capacity from, or send traffic to, the
     wrong side. Other failures (a task definition not put back on a side that
     serves anyway) are reported and the loop goes on: each later action
     still looks before it acts. ]]
function M.stops(action, err)
  if MOVES_TRAFFIC[action.op] or errors.is(err, M.REFUSALS) then return true end
  return action.op == "update_service" and action.wait ~= nil
end

--[[ Carries out `entries` ({ action = }, oldest first) newest first through
     ecsplay.undo. hooks: on_done(entry), on_failed(entry, err, text),
     skip(entry) → true to count an entry done without running it. The loop
     stops where M.stops says; the rest is left as it is and reported for a
     second `ecsplay rollback`. Returns failures, left as undo.run does. ]]
function M.undo(entries, hooks)
  hooks = hooks or {}
  return undo.run(entries, {
    exec = function(entry)
      if hooks.skip and hooks.skip(entry) then return end
      M.run(entry.action)
    end,
    describe = function(entry) return describe(entry.action) end,
    on_done = hooks.on_done,
    on_failed = hooks.on_failed,
    stop = function(entry, err) return M.stops(entry.action, err) end,
  })
end

-- The plan: the entries' descriptions in the order they will run (newest first).
function M.plan(entries)
  local out = {}
  for i = #entries, 1, -1 do out[#out + 1] = (#out + 1) .. ". " .. describe(entries[i].action) end
  return table.concat(out, "; ")
end

-- The traffic where a failed traffic move left it, read back ("" when unreadable).
local function traffic_now(action)
  if action.op ~= "set_weights" then return "" end
  local ok, now = pcall(traffic.get, action.point)
  return ok and (" (traffic now " .. weights_text(now) .. ")") or ""
end

--[[ What a failed rollback leaves, as text for RollbackFailed's `left`: each
     failure (with where the traffic is for a failed traffic move), then
     each entry not tried after the loop stopped. ]]
function M.left_text(failures, left)
  local out = {}
  for i, f in ipairs(failures) do
    out[i] = f.text .. (f == failures[#failures] and left[1] and traffic_now(f.entry.action) or "")
  end
  for i = 2, #left do out[#out + 1] = describe(left[i].action) .. " (not tried)" end
  return table.concat(out, "; ")
end

--[[ How a stopped rollback continues: the command, when there is a journal. ]]
function M.continue_text(journal_path)
  if journal_path then
    return "`ecsplay rollback " .. journal_path .. "` continues it (every step looks before it acts, "
      .. "so it is safe to run again)"
  end
  return "no run journal was written, so `ecsplay rollback` cannot continue it: what is left must be "
    .. "fixed by hand (journal = true keeps one, also under --simulate)"
end

return M
