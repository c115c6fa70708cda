--[[
The simulated Amazon ECS: the service module the simulator front end loads
(`{ name, init, tick, ops }`, see docs/internals.md "Simulator contracts").

This file holds the state, the tick and the functions other simulated services
call (task_health, task_info, image_first_start); the rest is split by concern:
  util.lua                 look-ups raising AWS's errors, ids, events, paging
  clusters.lua             clusters
  services.lua             services (create, update, describe, list, delete)
  tags.lua                 tags of every ECS resource
  taskdefs.lua             task definitions, and what services ask of one
  tasks.lua                tasks: lifecycle on the virtual clock, RunTask/StopTask/...
  deploy.lua               deployments, rolling scheduler, circuit breaker, alarms
  native.lua               native BLUE_GREEN / LINEAR / CANARY with lifecycle hooks
  taskset.lua              task sets (EXTERNAL and CODE_DEPLOY controllers)
  service_deployments.lua  service deployments and revisions (Describe/List/Stop/Continue)
]]
local U = require "ecsplay.sim.ecs.util"
local T = require "ecsplay.sim.ecs.tasks"
local TD = require "ecsplay.sim.ecs.taskdefs"
local P = require "ecsplay.sim.ecs.deploy"
local S = require "ecsplay.sim.ecs.taskset"
local N = require "ecsplay.sim.ecs.native"
local SD = require "ecsplay.sim.ecs.service_deployments"
local C = require "ecsplay.sim.ecs.clusters"
local V = require "ecsplay.sim.ecs.services"
local G = require "ecsplay.sim.ecs.tags"

local M = { name = "ecs" }

local STOPPED_RETENTION = T.STOPPED_RETENTION

function M.init(world)
  return {
    clusters = {}, cluster_order = {},
    families = {}, family_order = {},
    tasks = {}, task_order = {},
    busy = {},             -- the tasks the tick moves along (tasks.lua), in launch order
    restless = {},         -- ARN -> service the tick visits every time (not settled, draining, ...)
    woken = {},            -- ARN -> service something changed since the last tick (util.lua's U.dirty)
    ranks_stale = false,   -- a service was added: its place in the tick's order is not known yet
    prune_at = nil,        -- when the oldest STOPPED task is past STOPPED_RETENTION
    task_sets = {}, sds = {}, revisions = {},
    tags = {},             -- resource ARN -> { {key=, value=}, ... }
    image_first = {},      -- image -> epoch of its first RUNNING task
    ip_counter = 0,
    reg_notes = {},
  }
end

------------------------------------------------------------------ the tick

local function prune(world)
  local st = U.st(world)
  local cutoff = world.now - STOPPED_RETENTION
  -- nothing to forget before the oldest stopped task's time is up (tasks.lua notes it)
  if not (st.prune_at and world.now > st.prune_at) then return end
  local function keep(list)
    local out = {}
    for _, task in ipairs(list) do
      if not (task.last == "STOPPED" and task.stopped_at < cutoff) then out[#out + 1] = task end
    end
    return out
  end
  for _, task in ipairs(st.task_order) do
    if task.last == "STOPPED" and task.stopped_at < cutoff then st.tasks[task.arn] = nil end
  end
  st.task_order = keep(st.task_order)
  for _, cname in ipairs(st.cluster_order) do
    local c = st.clusters[cname]
    c.tasks = keep(c.tasks)
    for _, sname in ipairs(c.service_order) do
      local svc = c.services[sname]
      if svc then svc.tasks = keep(svc.tasks) end
    end
  end
  st.prune_at = nil
  for _, task in ipairs(st.task_order) do
    if task.last == "STOPPED" then T.note_stopped(st, task) end
  end
end

local function drain(world, svc)
  local live = {}
  for _, task in ipairs(svc.tasks) do if T.live(task) then live[#live + 1] = task end end
  P.stop_tasks(world, svc, live, svc.deployments[1])
  local present = 0
  for _, task in ipairs(svc.tasks) do if task.last ~= "STOPPED" then present = present + 1 end end
  if present == 0 then
    svc.status = "INACTIVE"
    for _, d in ipairs(svc.deployments) do d.status = "INACTIVE" end
    svc.deployments = {}
    for _, ts in ipairs(svc.task_sets) do U.st(world).task_sets[ts.arn] = nil end
    svc.task_sets = {}
  end
end

--[[ A service the rolling scheduler left settled: one deployment, not in progress, steady,
     every task either STOPPED or RUNNING and healthy with nothing due (no crash to come, no
     note for the scheduler). Its next tick would change nothing, so the tick skips it until
     something wakes it (svc.dirty): a task of it moving on (tasks.lua), or an API call
     naming it (the ops wrapper below). A fleet's thousand steady services then cost a tick
     nothing; the few rolling out cost what they do. ]]
local function settled(svc)
  local dep = svc.deployments[1]
  if #svc.deployments ~= 1 or dep.rollout == "IN_PROGRESS" or dep.stop_request or not svc.steady then
    return false
  end
  for _, task in ipairs(svc.tasks) do
    if task.last ~= "STOPPED" and not (task.desired == "RUNNING" and task.last == "RUNNING" and task.healthy
        and not task.crash_at and not task.failed_new and not task.healthy_new) then
      return false
    end
  end
  return true
end

local function schedule_service(world, st, svc)
  if svc.controller ~= "ECS" then return S.schedule(world, svc) end
  local dep = svc.deployments[1]
  if dep and dep.native and not dep.native.finished then return N.step(world, svc, dep) end
  if svc.settled and not svc.dirty and not st.wake_all then return end
  svc.dirty = nil
  P.schedule(world, svc)
  svc.settled = settled(svc)
end

-- One service's turn in the tick; afterwards, is it restless (to be visited next tick anyway)?
local function visit(world, st, svc)
  if svc.status == "DRAINING" then
    drain(world, svc)
  elseif svc.status == "ACTIVE" then
    schedule_service(world, st, svc)
  end
  local dep = svc.deployments[1]
  local resting = svc.status ~= "ACTIVE" and svc.status ~= "DRAINING" or (svc.controller == "ECS"
    and not (dep and dep.native and not dep.native.finished) and svc.settled and not svc.dirty)
  st.restless[svc.arn] = not resting and svc or nil
end

-- Each service's place in cluster order, then service order: the order the tick visits them in.
local function rank_services(st)
  local i = 0
  for _, cname in ipairs(st.cluster_order) do
    for _, sname in ipairs(st.clusters[cname].service_order) do
      i = i + 1
      st.clusters[cname].services[sname].rank = i
    end
  end
  st.ranks_stale = false
end

--[[ The services of this tick, in cluster and service order: all of them after an API call
     that named no service (wake_all); else the restless ones and those woken since the last
     tick. A service left out is settled and nothing about it changed: its turn would have
     returned at once. ]]
local function services_to_visit(st)
  if st.ranks_stale then rank_services(st) end
  local list = {}
  if st.wake_all then
    for _, cname in ipairs(st.cluster_order) do
      local c = st.clusters[cname]
      for _, sname in ipairs(c.service_order) do list[#list + 1] = c.services[sname] end
    end
    return list
  end
  for _, svc in pairs(st.restless) do list[#list + 1] = svc end
  for arn, svc in pairs(st.woken) do
    if st.restless[arn] ~= svc then list[#list + 1] = svc end
  end
  table.sort(list, function(a, b) return a.rank < b.rank end)
  return list
end

function M.tick(world, t)
  local st = U.st(world)
  T.progress_all(world)
  local list = services_to_visit(st)
  st.woken = {} -- what changes from here on is for the next tick
  for _, svc in ipairs(list) do visit(world, st, svc) end
  st.wake_all = nil
  T.flush_notes(world)
  prune(world)
end

------------------------------------------------------------------ cross-service functions

function M.task_health(world, task_arn)
  local task = U.st(world).tasks[task_arn]
  return task and T.health(task) or nil
end

function M.task_info(world, task_arn)
  local task = U.st(world).tasks[task_arn]
  if not task then return nil end
  return {
    image = task.image, started_at = task.started_at,
    healthy_at = task.healthy and task.healthy_at or nil,
    service = task.svc and task.svc.name or nil,
    task_set = task.ts and task.ts.id or nil,
    deployment = task.dep and task.dep.id or nil,
    cluster = task.cluster.name, ip = task.ip,
    last_status = task.last, desired_status = task.desired,
  }
end

--[[ Is the task healthy for good, until something asks it to stop (which deregisters its
     targets first)? ELBv2 then need not health-check its targets (sim/elbv2/targets.lua). ]]
function M.task_settled(world, task_arn)
  local task = U.st(world).tasks[task_arn]
  return task ~= nil and task.last == "RUNNING" and T.inert(task)
end

-- The image a task runs (nil: no such task), without task_info's table.
function M.task_image(world, task_arn)
  local task = U.st(world).tasks[task_arn]
  return task and task.image
end

function M.image_first_start(world, image)
  return U.st(world).image_first[image]
end

------------------------------------------------------------------ the operation table

-- Operations that cannot change what a service's scheduler does (reads aside).
local NO_WAKE = { RegisterTaskDefinition = true, DeregisterTaskDefinition = true, DeleteTaskDefinitions = true,
  TagResource = true, UntagResource = true, CreateCluster = true, CreateService = true }

--[[ Wakes the service an operation names (input.cluster, input.service: names or ARNs) for
     the next tick; an operation that names none wakes them all. ]]
local function wake(world, input)
  local st = U.st(world)
  local ref = type(input) == "table" and input.service
  if type(ref) == "string" then
    local cname = type(input.cluster) == "string" and U.last_segment(input.cluster) or "default"
    local c = st.clusters[cname]
    local svc = c and c.services[U.last_segment(ref)]
    if svc then U.dirty(st, svc) return end
  end
  st.wake_all = true
end

M.ops = {}
for _, part in ipairs({ C, V, G, TD, T, S, SD }) do
  for name, fn in pairs(part.ops) do
    if name:find("^Describe") or name:find("^List") or NO_WAKE[name] then
      M.ops[name] = function(world, input, caller)
        U.check_arns(world, input)
        return fn(world, input, caller)
      end
    else
      M.ops[name] = function(world, input, caller)
        U.check_arns(world, input)
        wake(world, input)
        return fn(world, input, caller)
      end
    end
  end
end

return M
