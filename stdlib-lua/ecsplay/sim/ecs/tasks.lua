--[[
Tasks of the simulated ECS: launch, the lifecycle on the virtual clock, stop,
target registration, and the task operations (RunTask, StopTask, ListTasks,
DescribeTasks).

Lifecycle (Fargate-like, fixed so runs are reproducible):
  launch           PROVISIONING
  +5 s             PENDING (image pull)
  +15 s            RUNNING; registered into the service's target groups
  launch + start   healthy (start = the image's behaviour, default 30 s; never
                   before RUNNING)
  crash=on_start   exits 5 s after RUNNING, before it can become healthy
  crash=after      exits `after` seconds after RUNNING
  stop             desiredStatus STOPPED, deregistered at once, DEPROVISIONING,
                   STOPPED 10 s later (the ENI is released then)
The schedulers (deploy.lua, taskset.lua, native.lua) read `task.healthy`,
`task.failed_new` (a crash not yet counted by a circuit breaker) and
`task.healthy_new` (just became healthy).
]]
local U = require "ecsplay.sim.ecs.util"
local TD = require "ecsplay.sim.ecs.taskdefs"

local T = {}

T.PENDING_AFTER = 5
T.RUNNING_AFTER = 15
T.CRASH_AFTER_RUNNING = 5
T.DEPROVISION = 10
-- Stopped tasks stay visible (DescribeTasks, ListTasks STOPPED) this long, as on AWS.
T.STOPPED_RETENTION = 3600

local function essential_image(td)
  for _, cd in ipairs(td.containerDefinitions or {}) do
    if cd.essential ~= false then return cd.image end
  end
  local first = (td.containerDefinitions or {})[1]
  return first and first.image or ""
end
T.essential_image = essential_image

-- The behaviour value `v` of an image at this moment (constants or functions of ctx).
local function eval(world, image, v)
  local st = U.st(world)
  local first = st.image_first[image]
  local ctx = { t = first and (world.now - first) or 0, weight = 0, now = world.now }
  return world:eval(v, ctx)
end

local function next_ip(st)
  local n = st.ip_counter
  st.ip_counter = n + 1
  return string.format("10.0.%d.%d", (n // 250) % 256, n % 250 + 4)
end

-- When a task launched at created_at pulls its image (PENDING) and runs: fixed offsets,
-- computed rather than kept in each task.
function T.pending_at(task) return task.created_at + T.PENDING_AFTER end
function T.running_at(task) return task.created_at + T.RUNNING_AFTER end

-- The MAC address of a task's ENI, "0e:" and five byte pairs of its id.
local function mac_of(eni)
  return string.format("0e:%s:%s:%s:%s:%s", eni:sub(5, 6), eni:sub(7, 8), eni:sub(9, 10), eni:sub(11, 12),
    eni:sub(13, 14))
end

--[[ Starts one task. opts: cluster, td (task definition record), svc, dep, ts,
     lbs ({{tg=, name=, port=}}), group, started_by, network, launch_type.
     Memory: what can be computed (PENDING and RUNNING times, the MAC) is not a field, so a
     stopped task keeps at most 32 fields (Lua sizes a table's hash part in powers of two: 33
     would double it), and a fleet's thousands of stopped tasks (kept an hour) cost half. ]]
function T.launch(world, opts)
  local st = U.st(world)
  local c = opts.cluster
  local id = world:id(nil, 32)
  local image = essential_image(opts.td)
  local b = world:behaviour(image)
  local now = world.now
  local start = tonumber(eval(world, image, b.start)) or 30
  local crash = eval(world, image, b.crash)
  local task = {
    id = id,
    arn = world:arn("ecs", "task/" .. c.name .. "/" .. id),
    cluster = c, svc = opts.svc, dep = opts.dep, ts = opts.ts, td = opts.td,
    image = image,
    group = opts.group or ("family:" .. opts.td.family),
    started_by = opts.started_by,
    launch_type = opts.launch_type or "FARGATE",
    network = opts.network,
    lbs = opts.lbs or {},
    ip = next_ip(st),
    eni = "eni-" .. world:id(nil, 17),
    attach_id = U.uuid(world),
    last = "PROVISIONING", desired = "RUNNING",
    created_at = now,
    version = 1,
    registered = {},
  }
  local running_at = T.running_at(task)
  task.healthy_at = math.max(running_at, now + start)
  if crash == "on_start" then
    task.crash_at = running_at + T.CRASH_AFTER_RUNNING
    task.healthy_at = nil
  elseif crash == "after" then
    task.crash_at = running_at + (tonumber(eval(world, image, b.after)) or 180)
    if task.crash_at <= task.healthy_at then task.healthy_at = nil end
  end
  st.tasks[task.arn] = task
  st.task_order[#st.task_order + 1] = task
  st.task_seq = (st.task_seq or 0) + 1
  task.seq = st.task_seq
  T.wake(st, task)
  c.tasks[#c.tasks + 1] = task
  if opts.svc then opts.svc.tasks[#opts.svc.tasks + 1] = task end
  return task
end

local function note_registration(st, task, tg, kind)
  if not task.svc then return end
  local key = task.svc.arn
  st.reg_notes[#st.reg_notes + 1] = { svc = task.svc, tg = tg, kind = kind, key = key }
end

-- A full target group (ELB's TooManyTargets) leaves the task unregistered, and says so in
-- the service's events as ECS does.
local function register(world, task)
  local elbv2 = world.svc.elbv2
  for _, lb in ipairs(task.lbs) do
    if lb.tg and lb.port then
      local why
      if elbv2 and elbv2.register then
        local _, refused = elbv2.register(world, lb.tg, task.ip, lb.port, task.arn)
        why = refused
      end
      if not why then
        task.registered[#task.registered + 1] = { tg = lb.tg, port = lb.port }
        note_registration(U.st(world), task, lb.tg, "registered")
      elseif task.svc then
        U.event(world, task.svc, string.format("failed to register targets in (target-group %s) with "
          .. "(error %s)", lb.tg, tostring(why)))
      end
    end
  end
end

local function deregister(world, task)
  local elbv2 = world.svc.elbv2
  for _, r in ipairs(task.registered) do
    if elbv2 and elbv2.deregister then elbv2.deregister(world, r.tg, task.ip, r.port) end
    note_registration(U.st(world), task, r.tg, "deregistered")
  end
  task.registered = {}
end

--[[ Asks a task to stop. code: a TaskStopCode; failed: true for a crash
     (counted by circuit breakers). Idempotent. ]]
function T.stop(world, task, reason, code, failed)
  if task.desired == "STOPPED" then return false end
  T.wake(U.st(world), task)
  task.desired = "STOPPED"
  task.stopping_at = world.now
  task.stop_reason = reason
  task.stop_code = code
  task.version = task.version + 1
  if task.svc then U.dirty(U.st(world), task.svc) end -- its scheduler looks again (ecs/init.lua's tick)
  if failed then
    task.failed = true
    task.failed_new = true
    task.exit_code = 1
  elseif task.last == "RUNNING" then
    task.exit_code = 0
  end
  deregister(world, task)
  if task.last == "PROVISIONING" or task.last == "PENDING" then
    task.last = "STOPPED"
    task.stopped_at = world.now
    T.note_stopped(U.st(world), task)
  else
    task.last = "DEPROVISIONING"
    task.stopped_at = world.now + T.DEPROVISION
  end
  return true
end

--[[ For a service behind load balancers, ECS counts a task healthy once its
     targets pass the ELB health checks (as AWS does); without a simulated ELBv2
     (or for a target group no load balancer uses) the container's own health
     decides. ]]
local function lb_healthy(world, task)
  local elbv2 = world.svc.elbv2
  if not (elbv2 and elbv2.target_health) then return true end
  for _, r in ipairs(task.registered) do
    local h = elbv2.target_health(world, r.tg, task.ip, r.port)
    if h ~= nil and h ~= "healthy" and h ~= "unused" then return false end
  end
  return true
end

-- Moves one task along its lifecycle to world.now.
local function progress(world, task)
  local now = world.now
  local st = U.st(world)
  if task.last == "STOPPED" then return end
  if task.desired == "STOPPED" then
    if now >= task.stopped_at then
      task.last = "STOPPED"
      T.note_stopped(st, task)
      task.version = task.version + 1
      if task.svc then U.dirty(st, task.svc) end
    end
    return
  end
  if task.last == "PROVISIONING" and now >= T.pending_at(task) then
    task.last = "PENDING"
    task.version = task.version + 1
    if task.svc then U.dirty(st, task.svc) end
  end
  if task.last == "PENDING" and now >= T.running_at(task) then
    task.last = "RUNNING"
    task.started_at = T.running_at(task)
    task.version = task.version + 1
    if task.svc then U.dirty(st, task.svc) end
    if not st.image_first[task.image] then st.image_first[task.image] = task.started_at end
    register(world, task)
  end
  if task.last == "RUNNING" then
    if task.healthy_at and not task.c_healthy and now >= task.healthy_at then task.c_healthy = true end
    if task.c_healthy and not task.healthy and lb_healthy(world, task) then
      task.healthy = true
      task.healthy_new = true
      if task.svc then U.dirty(st, task.svc) end
    end
    if task.crash_at and now >= task.crash_at then
      task.healthy = false
      task.c_healthy = false
      T.stop(world, task, "Essential container in task exited", "EssentialContainerExited", true)
    end
  end
end

--[[ Tasks the tick moves along: the busy ones (st.busy, in launch order, as task_order). A
     task is inert once STOPPED, or RUNNING and healthy with nothing due (no crash to come, not
     asked to stop): the tick would change nothing in it, so it leaves the list until T.stop
     wakes it. A fleet's thousands of steady tasks then cost a tick nothing. ]]
local function inert(task)
  return task.last == "STOPPED" or (task.desired == "RUNNING" and task.last == "RUNNING" and task.healthy
    and task.c_healthy and not task.crash_at)
end
T.inert = inert

-- Puts a task (back) among the busy ones, in launch order.
function T.wake(st, task)
  if task.busy then return end
  task.busy = true
  local list = st.busy
  local i = #list
  while i >= 1 and list[i].seq > task.seq do i = i - 1 end
  table.insert(list, i + 1, task)
end

-- A task just became STOPPED: when the tick is next to forget stopped tasks (ecs/init.lua).
function T.note_stopped(st, task)
  local due = task.stopped_at + T.STOPPED_RETENTION
  if not st.prune_at or due < st.prune_at then st.prune_at = due end
end

function T.progress_all(world)
  local st = U.st(world)
  local list, keep = st.busy, {}
  st.busy = {} -- tasks woken while this pass runs land here, then join in launch order
  for _, task in ipairs(list) do
    progress(world, task)
    if inert(task) then task.busy = nil else keep[#keep + 1] = task end
  end
  local woken = st.busy
  st.busy = keep
  for _, task in ipairs(woken) do
    task.busy = nil
    T.wake(st, task)
  end
end

-- Flushes the target (de)registration notes of this tick into service events.
function T.flush_notes(world)
  local st = U.st(world)
  local counts, order = {}, {}
  for _, n in ipairs(st.reg_notes) do
    local k = n.key .. "\0" .. n.tg .. "\0" .. n.kind
    if not counts[k] then counts[k] = { n = 0, note = n }; order[#order + 1] = k end
    counts[k].n = counts[k].n + 1
  end
  for _, k in ipairs(order) do
    local e = counts[k]
    if e.note.kind == "deregistered" then
      U.event(world, e.note.svc, string.format("has begun draining connections on %d tasks.", e.n))
    end
    U.event(world, e.note.svc, string.format("%s %d targets in (target-group %s)", e.note.kind, e.n, e.note.tg))
  end
  st.reg_notes = {}
end

function T.live(task) return task.desired == "RUNNING" end

-- Deployments (key "dep") and task sets (key "ts") own tasks; these read a group by its owner.

-- The live tasks among `tasks` whose task[key] is `owner`, in their order.
function T.live_of(tasks, key, owner)
  local out = {}
  for _, task in ipairs(tasks) do if task[key] == owner and T.live(task) then out[#out + 1] = task end end
  return out
end

-- Counts of the tasks among `tasks` whose task[key] is `owner`: live (desired RUNNING), running,
-- pending, healthy, present (not yet STOPPED).
function T.counts(tasks, key, owner)
  local c = { live = 0, running = 0, pending = 0, healthy = 0, present = 0 }
  for _, task in ipairs(tasks) do
    if task[key] == owner then
      if task.last ~= "STOPPED" then c.present = c.present + 1 end
      if T.live(task) then
        c.live = c.live + 1
        if T.running(task) then c.running = c.running + 1 end
        if T.pending(task) then c.pending = c.pending + 1 end
        if task.healthy then c.healthy = c.healthy + 1 end
      end
    end
  end
  return c
end

--[[ Sorts a group's live tasks into the order a scheduler scaling it in stops them: not yet
     healthy first (they serve nothing), then newest first, the larger id first on a tie so the
     order never depends on table.sort. ]]
function T.shed_order(list)
  table.sort(list, function(a, b)
    if (a.healthy and 1 or 0) ~= (b.healthy and 1 or 0) then return not a.healthy end
    return a.created_at > b.created_at or (a.created_at == b.created_at and a.id > b.id)
  end)
end
function T.pending(task) return task.desired == "RUNNING" and (task.last == "PROVISIONING" or task.last == "PENDING") end
function T.running(task) return task.desired == "RUNNING" and task.last == "RUNNING" end

-- "starting" | "healthy" | "unhealthy" | "stopped" for the cross-service contract.
function T.health(task)
  if task.desired == "STOPPED" or task.last == "STOPPED" then return "stopped" end
  if task.c_healthy then return "healthy" end
  return "starting"
end

------------------------------------------------------------------ output

local function ts_or_nil(t, now) if t and t <= now then return t end return nil end

-- The containers of a task as DescribeTasks shows them (one per container definition).
local function describe_containers(world, task)
  local containers = {}
  local container_status = task.last
  if container_status == "PROVISIONING" or container_status == "PENDING" then container_status = "PENDING"
  elseif container_status == "DEPROVISIONING" then container_status = "STOPPED" end
  if task.desired == "STOPPED" and container_status ~= "PENDING" then container_status = "STOPPED" end
  for _, cd in ipairs(task.td.containerDefinitions or {}) do
    containers[#containers + 1] = {
      containerArn = world:arn("ecs", "container/" .. task.cluster.name .. "/" .. task.id .. "/" .. (cd.name or "")),
      taskArn = task.arn,
      name = cd.name,
      image = cd.image,
      runtimeId = task.id .. "-" .. tostring(cd.name),
      lastStatus = container_status,
      exitCode = (container_status == "STOPPED") and task.exit_code or nil,
      reason = task.failed and "Essential container in task exited" or nil,
      networkBindings = {},
      networkInterfaces = { { attachmentId = task.attach_id, privateIpv4Address = task.ip } },
      healthStatus = (task.c_healthy and "HEALTHY") or "UNKNOWN",
      cpu = tostring(cd.cpu or 0),
      memory = cd.memory and tostring(cd.memory) or nil,
    }
  end
  return containers
end

function T.describe(world, task, include_tags)
  local st = U.st(world)
  local now = world.now
  local td = task.td
  local pending_at = T.pending_at(task)
  local containers = describe_containers(world, task)
  local subnet = "subnet-0sima"
  local net = task.network and task.network.awsvpcConfiguration
  if net and net.subnets and net.subnets[1] then subnet = net.subnets[1] end
  local eni_status = "ATTACHED"
  if task.last == "PROVISIONING" then eni_status = "PRECREATED"
  elseif task.last == "STOPPED" then eni_status = "DELETED"
  elseif task.desired == "STOPPED" then eni_status = "DELETING" end
  local health = "UNKNOWN"
  if task.c_healthy then health = "HEALTHY" elseif task.failed then health = "UNHEALTHY" end
  local out = {
    taskArn = task.arn,
    clusterArn = task.cluster.arn,
    taskDefinitionArn = td.taskDefinitionArn,
    group = task.group,
    startedBy = task.started_by,
    launchType = task.launch_type,
    platformVersion = task.launch_type == "FARGATE" and "1.4.0" or nil,
    platformFamily = task.launch_type == "FARGATE" and "Linux" or nil,
    availabilityZone = (subnet:sub(-1) == "b") and (world.region .. "b") or (world.region .. "a"),
    lastStatus = task.last,
    desiredStatus = task.desired,
    healthStatus = health,
    cpu = td.cpu, memory = td.memory,
    createdAt = task.created_at,
    pullStartedAt = ts_or_nil(pending_at, now),
    pullStoppedAt = task.started_at and (T.running_at(task) - 1) or nil,
    startedAt = task.started_at,
    connectivity = (task.last ~= "PROVISIONING") and "CONNECTED" or nil,
    connectivityAt = ts_or_nil(pending_at, now),
    stoppingAt = task.stopping_at,
    executionStoppedAt = task.stopping_at and ts_or_nil(task.stopped_at, now),
    stoppedAt = task.last == "STOPPED" and task.stopped_at or nil,
    stoppedReason = task.stop_reason,
    stopCode = task.stop_code,
    version = task.version,
    enableExecuteCommand = false,
    containers = containers,
    attachments = { {
      id = task.attach_id, type = "ElasticNetworkInterface", status = eni_status,
      details = {
        { name = "subnetId", value = subnet },
        { name = "networkInterfaceId", value = task.eni },
        { name = "macAddress", value = mac_of(task.eni) },
        { name = "privateDnsName", value = "ip-" .. task.ip:gsub("%.", "-") .. ".ec2.internal" },
        { name = "privateIPv4Address", value = task.ip },
      } } },
    overrides = { containerOverrides = {} },
  }
  if include_tags then out.tags = U.copy(st.tags[task.arn] or {}) end
  return out
end

------------------------------------------------------------------ operations

T.ops = {}

local function find_task(world, c, ref)
  U.check_cluster(world, c, ref)
  local st = U.st(world)
  local task = st.tasks[ref]
  if not task then
    local id = U.short_name(ref)
    task = st.tasks[world:arn("ecs", "task/" .. c.name .. "/" .. id)]
  end
  if task and task.cluster ~= c then return nil end
  return task
end
T.find = find_task

function T.ops.ListTasks(world, input)
  local c = U.cluster(world, input.cluster)
  local svc
  if input.serviceName then svc = U.service(world, c, input.serviceName, true) end
  local want = input.desiredStatus or "RUNNING"
  local family = input.family
  local list = {}
  for _, task in ipairs(c.tasks) do
    -- a task's desiredStatus is RUNNING or STOPPED, so PENDING lists nothing (as on AWS)
    local ok = task.desired == want
    if ok and svc and task.svc ~= svc then ok = false end
    if ok and family and task.td.family ~= family then ok = false end
    if ok and input.startedBy and task.started_by ~= input.startedBy then ok = false end
    if ok and input.launchType and task.launch_type ~= input.launchType then ok = false end
    if ok then list[#list + 1] = task.arn end
  end
  return U.list_answer(list, input, "taskArns")
end

function T.ops.DescribeTasks(world, input)
  local tasks, failures = U.describe_in_cluster(world, input, "tasks", "Tasks", 100, "task",
    function(c, ref) return find_task(world, c, ref) end,
    function(task, include_tags) return T.describe(world, task, include_tags) end)
  return { tasks = tasks, failures = failures }
end

function T.ops.StopTask(world, input)
  local c = U.cluster(world, input.cluster)
  local task = find_task(world, c, input.task)
  if not task then
    world:fail("InvalidParameterException", "The referenced task was not found.")
  end
  T.stop(world, task, input.reason or "Task stopped by user", "UserInitiated", false)
  return { task = T.describe(world, task) }
end

function T.ops.RunTask(world, input)
  local c = U.cluster(world, input.cluster)
  local td = TD.resolve(world, input.taskDefinition, true)
  local count = input.count or 1
  if count < 1 or count > 10 then
    world:fail("InvalidParameterException", "Task count must be between 1 and 10.")
  end
  local out = {}
  for _ = 1, count do
    local task = T.launch(world, { cluster = c, td = td, group = input.group, started_by = input.startedBy,
      network = input.networkConfiguration, launch_type = input.launchType })
    out[#out + 1] = T.describe(world, task)
  end
  return { tasks = out, failures = {} }
end

return T
