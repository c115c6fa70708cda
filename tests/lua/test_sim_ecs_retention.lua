-- What the simulated ECS forgets, as AWS does, so a long run's memory stays bounded: a
-- service keeps its 100 latest events (DescribeServices), a stopped task stays visible to
-- DescribeTasks and ListTasks for an hour after it stops (docs/simulator.md cites both).
local T = require "harness"
local World = require "ecsplay.sim.world"
local ecs = require "ecsplay.sim.ecs"
local U = require "ecsplay.sim.ecs.util"
local TK = require "ecsplay.sim.ecs.tasks"
local model = require("ecsplay.aws.model").load("ecs")
local validate = require "ecsplay.aws.validate"

local START = 1795687200
local NET = { awsvpcConfiguration = { subnets = { "subnet-0sima" }, assignPublicIp = "DISABLED" } }

local function call(w, op, input)
  validate.input(model, op, input)
  return ecs.ops[op](w, input)
end

local function new_world()
  local w = World.new { start = START, seed = 7 }
  w:add_service(ecs)
  call(w, "CreateCluster", { clusterName = "production" })
  call(w, "RegisterTaskDefinition", { family = "api", networkMode = "awsvpc",
    requiresCompatibilities = { "FARGATE" }, cpu = "256", memory = "512",
    containerDefinitions = { { name = "api", image = "api:v1", essential = true } } })
  return w
end

local function describe_service(w)
  return call(w, "DescribeServices", { cluster = "production", services = { "api" } }).services[1]
end

local function messages(events)
  local out = {}
  for i, e in ipairs(events) do out[i] = e.message end
  return out
end

T.test("events: a service keeps its 100 latest, newest first; the 101st drops the oldest", function()
  local w = new_world()
  call(w, "CreateService", { cluster = "production", serviceName = "api", taskDefinition = "api",
    desiredCount = 1, launchType = "FARGATE", networkConfiguration = NET })
  w:advance(w.now + 120)
  local real = messages(describe_service(w).events)
  T.ok(#real >= 2 and #real < U.MAX_EVENTS, "the deployment wrote a few events: " .. #real)
  T.eq(real[1], "(service api) has reached a steady state.")
  local svc = U.st(w).clusters.production.services.api
  for i = #real + 1, U.MAX_EVENTS do U.event(w, svc, "note " .. i) end
  local full = messages(describe_service(w).events)
  T.eq(#full, 100, "exactly AWS's 100")
  T.eq(full[1], "(service api) note 100")
  T.eq(full[100], real[#real], "the oldest is still the deployment's first event")
  U.event(w, svc, "note 101")
  local after = messages(describe_service(w).events)
  T.eq(#after, 100, "still 100 after the 101st")
  T.eq(after[1], "(service api) note 101", "the newest first")
  T.eq(after[100], full[99], "the second oldest is now the oldest")
  for i = 1, 99 do T.eq(after[i + 1], full[i], "the rest move down by one") end
end)

T.test("stopped tasks: visible for an hour after they stop, then forgotten", function()
  local w = new_world()
  local arn = call(w, "RunTask", { cluster = "production", taskDefinition = "api", launchType = "FARGATE",
    networkConfiguration = NET, startedBy = "retention-test" }).tasks[1].taskArn
  w:advance(w.now + 60)
  call(w, "StopTask", { cluster = "production", task = arn, reason = "done" })
  w:advance(w.now + TK.DEPROVISION)
  local t = call(w, "DescribeTasks", { cluster = "production", tasks = { arn } }).tasks[1]
  T.eq(t.lastStatus, "STOPPED")
  local stopped_at = t.stoppedAt
  local function listed()
    local arns = call(w, "ListTasks", { cluster = "production", desiredStatus = "STOPPED" }).taskArns
    for _, a in ipairs(arns) do if a == arn then return true end end
    return false
  end
  w:advance(stopped_at + TK.STOPPED_RETENTION - w.tick)
  local d = call(w, "DescribeTasks", { cluster = "production", tasks = { arn } })
  T.eq(#d.tasks, 1, "still described just before the hour")
  T.eq(d.tasks[1].stoppedReason, "done")
  T.ok(listed(), "still listed (desiredStatus STOPPED) just before the hour")
  w:advance(stopped_at + TK.STOPPED_RETENTION + 2 * w.tick)
  d = call(w, "DescribeTasks", { cluster = "production", tasks = { arn } })
  T.eq(#d.tasks, 0, "forgotten after the hour")
  T.eq(d.failures, { { arn = arn, reason = "MISSING" } })
  T.ok(not listed(), "no longer listed")
end)

T.test("stopped tasks: a running task is never forgotten, however long the run", function()
  local w = new_world()
  local arn = call(w, "RunTask", { cluster = "production", taskDefinition = "api", launchType = "FARGATE",
    networkConfiguration = NET }).tasks[1].taskArn
  w:advance(w.now + 3 * TK.STOPPED_RETENTION)
  local t = call(w, "DescribeTasks", { cluster = "production", tasks = { arn } }).tasks[1]
  T.eq(t.lastStatus, "RUNNING")
  T.eq(call(w, "ListTasks", { cluster = "production" }).taskArns, { arn })
end)
