--[[
rollout.rolling: ECS's own rolling update, watched to completion.

The service is updated to the new task definition (with the deployment
circuit breaker switched on, rollback included, unless circuit_breaker =
false) and followed until its primary deployment is COMPLETED. Gates, when
given, are measured while it runs (and for `bake` after it completes).
When ECS itself rolls back (the circuit breaker or a deployment alarm fails
the new deployment and a new primary deployment of the old task definition
appears), that is reported as such and the run fails with exit code 1.
The undo is an update back to the previous task definition, in case ECS did
not roll back (no circuit breaker, a failing gate, a timeout, Ctrl-C).
The options every strategy takes, and the run around the body, are in
rollout/strategy.lua.
]]
local duration = require "ecsplay.duration"
local sched = require "ecsplay.sched"
local errors = require "ecsplay.errors"
local ecs = require "ecsplay.ecs"
local tables = require "ecsplay.util.tables"
local strategy = require "ecsplay.rollout.strategy"
local options = require "ecsplay.rollout.options"
local ecs_util = require "ecsplay.rollout.ecs_util"
local bake = require "ecsplay.rollout.bake"
local control = require "ecsplay.rollout.control"
local batch = require "ecsplay.aws.batch"

local S = "rolling"

-- polled by every rollout of a fleet: the shared batcher merges them (aws/batch.lua)
local ecs_reads = batch.face "ecs"

local short = ecs_util.short
local primary = ecs_util.primary

local function check(c, o)
  c.service = options.string(S, o, "service", "api")
  c.circuit_breaker = options.boolean(S, o, "circuit_breaker", true)
end

local function prepare(c, r)
  local svc = ecs_util.services(c.cluster, { c.service }, { "service" })[1]
  local ctl = svc.deploymentController and svc.deploymentController.type or "ECS"
  if ctl ~= "ECS" then
    options.bad(S, "service", string.format("service `%s` uses the %s deployment controller; "
      .. "a rolling update needs the ECS controller%s", c.service, ctl,
      ctl == "CODE_DEPLOY" and " (use rollout.codedeploy)" or ""))
  end
  local dc = svc.deploymentConfiguration or {}
  if dc.strategy and dc.strategy ~= "ROLLING" then
    options.bad(S, "service", string.format("service `%s` deploys with the %s strategy; use "
      .. "rollout.ecs_native for it", c.service, dc.strategy))
  end
  if #(svc.deployments or {}) > 1 and not r.resuming then
    options.bad(S, "service", string.format("service `%s` already has a deployment in progress "
      .. "(%d deployments); wait for it to finish", c.service, #svc.deployments))
  end
  -- the version to go back to is the run's first journaled step ("plan"): resumed after the
  -- update was sent, the service shows the new version (or ECS's rollback of it) instead
  local old_td = r.plan and r.plan.old_td or svc.taskDefinition
  -- with it the revision asked for (task_definition=), so that a playbook that chose it from
  -- the world before the run (playbooks/rollback.lua) chooses the same one on resume
  -- (journal.resumed_plan)
  local ctx = { svc = svc, old_td = old_td, base_td = old_td, green = { service = c.service },
    plan = { old_td = old_td, task_definition = c.version.task_definition } }
  ctx.report = { service = c.service, previous_task_definition = ctx.old_td }
  local tgs = {}
  for _, lb in ipairs(svc.loadBalancers or {}) do tgs[#tgs + 1] = lb.targetGroupArn end
  ctx.tgs = tgs
  -- the deployment configuration with the circuit breaker on (AWS replaces the whole structure)
  local cb = dc.deploymentCircuitBreaker or {}
  if c.circuit_breaker and not (cb.enable and cb.rollback) then
    ctx.new_dc = tables.shallow_copy(dc)
    ctx.new_dc.deploymentCircuitBreaker = { enable = true, rollback = true }
  end
  ctx.stable_tg = tgs[1]
  ctx.names = {}
  for _, arn in ipairs(tgs) do ctx.names[arn] = ecs_util.tg_name(arn) end
  return ctx
end

local function ours(svc, td)
  for _, d in ipairs(svc.deployments or {}) do
    if d.taskDefinition == td and d.status ~= "PRIMARY" then return d end
  end
end

-- Waits for ECS's own rollback deployment to finish (bounded), then fails.
local function ecs_rolled_back(run, c, failed, deadline)
  local reason = failed and failed.rolloutStateReason or "no reason given"
  run:log("error", "ecs_rollback", string.format("ECS rolled back %s: deployment of %s %s: %s",
    c.service, short(failed and failed.taskDefinition), failed and failed.rolloutState or "FAILED", reason))
  while sched.now() < deadline do
    local svc = ecs_reads.describe_services({ cluster = c.cluster, services = { c.service } }).services[1]
    local p = primary(svc)
    if p and p.rolloutState == "COMPLETED" and #svc.deployments == 1 then
      run:log("info", "ecs_rollback", string.format("ECS rollback complete: %s runs %s on %d task(s)",
        c.service, short(p.taskDefinition), p.runningCount or 0))
      break
    end
    sched.sleep_to_tick(c.poll) -- on the grid of c.poll: a fleet's polls merge (aws/batch.lua)
  end
  error(ecs_util.failed("EcsRolledBack", "ECS rolled back the deployment of %s: %s",
    short(failed and failed.taskDefinition), reason), 0)
end

--[[ What the commands can do while ECS rolls the tasks over: ECS has no pause
     and no way to speed a rolling update, so pause and a plain promote are
     not applicable (pause holds the bake that follows, if any); promote
     --full skips that bake; abort rolls back now (the run's undo). ]]
local function steering(run, c, ctx, new_td)
  local bakes = c.bake > 0 or #ctx.gates > 0
  local what = string.format("ECS rolls %s over to %s", c.service, short(new_td))
  local after = bakes and ("; send it again during the bake that follows the update (" .. duration.format(c.bake)
    .. ")") or "; this run has no bake after it"
  return {
    what = what,
    cannot_hold = "ECS has no pause for a rolling update (" .. what .. ")" .. after,
    promote = function(cmd)
      if cmd.full and bakes then
        control.of(run).full = true
        return "promoting: the bake after ECS's rolling update is skipped (the update itself runs to its end)"
      end
      return nil, "no bake to end while " .. what .. (bakes and " (promote --full skips the bake that follows)" or "")
    end,
  }
end

-- Follows the deployment to COMPLETED; gates measured every interval meanwhile. `updated`: the
-- service as UpdateService answered just now (its first look, instead of reading it again).
local function watch(run, c, ctx, new_td, watcher, updated)
  local deadline = sched.now() + c.timeout
  watcher:moving(steering(run, c, ctx, new_td))
  local last
  while true do
    local svc = updated or ecs_reads.describe_services({ cluster = c.cluster, services = { c.service } }).services[1]
    updated = nil
    local p = primary(svc)
    if p and p.taskDefinition ~= new_td then
      local failed = ours(svc, new_td)
      if failed or (p.rolloutStateReason or ""):find("rolling back", 1, true) then
        ecs_rolled_back(run, c, failed or { taskDefinition = new_td }, deadline + c.timeout)
      end
      error(ecs_util.failed("DeploymentReplaced", "service %s now deploys %s, not %s (changed by someone "
        .. "else)", c.service, short(p.taskDefinition), short(new_td)), 0)
    end
    if p and p.rolloutState == "FAILED" then
      error(ecs_util.failed("DeploymentFailed", "deployment of %s failed (no ECS rollback): %s", short(new_td),
        p.rolloutStateReason or "no reason given"), 0)
    end
    if p and p.rolloutState == "COMPLETED" and #svc.deployments == 1 then return svc, p end
    local note = string.format("%s: %d/%d running of %s, %d old deployment(s)", c.service,
      p and p.runningCount or 0, p and p.desiredCount or 0, short(new_td), #svc.deployments - 1)
    if note ~= last then run:log("info", "progress", note) last = note end
    if sched.now() >= deadline then
      error(ecs_util.failed("Timeout", "deployment of %s not complete after %s: %s", short(new_td),
        duration.format(c.timeout), note), 0)
    end
    watcher:tick({ phase = "deploying" })
    -- polls on the grid of c.poll (a fleet's polls merge: aws/batch.lua), and at the gates' rounds
    local t = sched.next_tick(c.poll)
    if #watcher.gates > 0 then t = math.min(t, math.max(sched.now() + 1, watcher.next_at)) end
    watcher:wait_moving(t)
  end
end

local ROLLED_BACK = { "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED" }

--[[ ECS's own rollback of a deployment of new_td created since `since` (a
     service deployment whose target is new_td, rolled back by the circuit
     breaker or an alarm), or nil. Read with ListServiceDeployments and
     DescribeServiceRevisions; when those cannot be read (a role without
     them), nil: nothing is known. ]]
local function rolled_back_by_ecs(run, c, new_td, since)
  local ok, res = pcall(function()
    local list = ecs.list_service_deployments { cluster = c.cluster, service = c.service,
      -- a few seconds early: the journal's clock and ECS's may differ a little
      status = ROLLED_BACK, createdAt = { after = since - 5 } }.serviceDeployments or {}
    if #list == 0 then return nil end
    local arns = {}
    for _, sd in ipairs(list) do arns[#arns + 1] = sd.targetServiceRevisionArn end
    local revs = ecs.describe_service_revisions { serviceRevisionArns = arns }.serviceRevisions or {}
    for _, rev in ipairs(revs) do
      if rev.taskDefinition == new_td then
        for _, sd in ipairs(list) do
          if sd.targetServiceRevisionArn == rev.serviceRevisionArn then return sd end
        end
      end
    end
  end)
  if ok then return res end
  if sched.is_interrupt(res) then error(res, 0) end
  run:log("warn", "deploy", "cannot read the service deployments of " .. c.service .. " ("
    .. errors.describe(res) .. "): assuming the update was not sent")
  return nil
end

--[[ Resumed after the deploy step began (its line journaled, no answer
     recorded): whether the update reached ECS. "sent" when the service has a
     deployment of new_td (in progress, or failed while ECS rolls back: watch
     follows it), "rolled_back" (with the service deployment) when ECS has
     already rolled it back. Sending it again would start a new deployment
     over ECS's own rollback. nil: it never reached ECS. ]]
local function sent_before(run, c, new_td)
  local svc = ecs_reads.describe_services({ cluster = c.cluster, services = { c.service } }).services[1]
  for _, d in ipairs(svc and svc.deployments or {}) do
    if d.taskDefinition == new_td then return "sent" end
  end
  local since = run.resume.intent_time and run.resume.intent_time.deploy or run.resume.start.time
  local sd = type(since) == "number" and rolled_back_by_ecs(run, c, new_td, since) or nil
  if sd then return "rolled_back", sd end
  return nil
end

local function body(run, c, ctx, new_td)
  local report = run.report
  local ecs_rollback, updated
  run:step("deploy", "update the service to the new task definition", function()
    if run:started("deploy") then
      local sent, sd = sent_before(run, c, new_td)
      if sent then
        run:log("info", "deploy", string.format("%s: the update to %s reached ECS before the run was stopped%s",
          c.service, short(new_td), sent == "rolled_back" and " and ECS has rolled it back" or "; following it"))
        ecs_rollback = sd
        return
      end
    end
    updated = ecs.update_service({ cluster = c.cluster, service = c.service, taskDefinition = new_td,
      deploymentConfiguration = ctx.new_dc }).service
    run:log("info", "deploy", string.format("%s: rolling update %s → %s%s", c.service, short(ctx.old_td),
      short(new_td), ctx.new_dc and " (circuit breaker switched on, with rollback)" or ""))
  end, { op = "update_service", cluster = c.cluster, service = c.service, taskDefinition = ctx.old_td,
         wait = { timeout = c.timeout } })
  if ecs_rollback then
    ecs_rolled_back(run, c, { taskDefinition = new_td, rolloutState = ecs_rollback.status,
      rolloutStateReason = ecs_rollback.statusReason }, sched.now() + c.timeout)
  end
  local watcher = bake.watcher(run, c, ctx.gates, { stable_target_group = ctx.stable_tg,
    canary_target_group = ctx.stable_tg, service = c.service })
  local svc, p = watch(run, c, ctx, new_td, watcher, updated)
  report.deployment = { id = p.id, rolloutState = p.rolloutState, runningCount = p.runningCount }
  -- `ecsplay promote --full` (now, or before a resume): no bake
  if (c.bake > 0 or (#ctx.gates > 0 and not watcher:all_passed())) and not control.of(run).full then
    run:log("info", "bake", string.format("baking %s with %d gate(s)", duration.format(c.bake), #ctx.gates))
    watcher:bake(c.bake, { phase = "bake" })
  end
  report.measurements = watcher.rounds
  local healthy = {}
  for _, arn in ipairs(ctx.tgs) do
    healthy[#healthy + 1] = ctx.names[arn] .. " " .. ecs_util.healthy_targets(arn) .. " healthy"
  end
  run:log("info", "summary", string.format("%s deployed: %s runs %s on %d task(s)%s", c.name, c.service,
    short(new_td), svc.runningCount or 0, #healthy > 0 and ("; " .. table.concat(healthy, ", ")) or ""))
end

return strategy.define {
  name = S,
  takes = { cluster = "production", timeout = 1800, poll = 15, bake = 0 },
  own = { "service", "circuit_breaker" },
  check = check,
  bakes = { "bake" },
  default_name = function(c) return S .. " " .. c.service end,
  prepare = prepare,
  plan_desc = "the version to go back to",
  body = body,
}
