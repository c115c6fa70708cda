-- The simulated ECS: clusters, task definitions, services and rolling deployments on
-- the virtual clock, circuit breaker and alarm rollbacks, task sets, native
-- CANARY deployments with lifecycle hooks, and AWS's errors. Fake ELBv2/CloudWatch
-- modules record what ECS asks of them.
local T = require "harness"
local World = require "ecsplay.sim.world"
local ecs = require "ecsplay.sim.ecs"

local START = 1795687200
local TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api-stable/0123456789abcdef"
local TG_ALT = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api-green/fedcba9876543210"
local RULE = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/1/2/3"
local TEST_RULE = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/1/4/5"

local function fake_elbv2(log)
  return {
    name = "elbv2", init = function() return {} end,
    register = function(_, tg, id, port, arn) log[#log + 1] = { op = "register", tg = tg, id = id, port = port, task = arn } end,
    deregister = function(_, tg, id, port) log[#log + 1] = { op = "deregister", tg = tg, id = id, port = port } end,
    target_group = function(_, arn) if arn:find("missing", 1, true) then return nil end return { arn = arn } end,
    set_forward = function(_, rule, fwd) log[#log + 1] = { op = "forward", rule = rule, fwd = fwd } end,
  }
end

local function fake_cloudwatch(alarms)
  return { name = "cloudwatch", init = function() return {} end,
    alarm_state = function(_, name) return alarms[name] end }
end

local function new_world(opts)
  opts = opts or {}
  local w = World.new { start = START, seed = 3, images = {
    { key = "~:bad$", behaviour = { crash = "on_start" } },
    { key = "~:slow$", behaviour = { start = 120 } },
    { key = "~:oom$", behaviour = { crash = "after", after = 60 } },
  } }
  w:add_service(ecs)
  if opts.log then w:add_service(fake_elbv2(opts.log)) end
  if opts.alarms then w:add_service(fake_cloudwatch(opts.alarms)) end
  return w
end

local model = require("ecsplay.aws.model").load("ecs")
local validate = require "ecsplay.aws.validate"

-- Every output must be what the model allows: known members, right types, enum values.
local function conform(shape_name, v, path)
  local sh = model.shapes[shape_name]
  local t = sh.type
  local function bad(what) error(string.format("output %s: %s (shape %s)", path, what, shape_name), 0) end
  if t == "structure" then
    if type(v) ~= "table" then bad("not an object") end
    for k, x in pairs(v) do
      local mem = sh.members[k]
      if not mem then bad("unknown member " .. tostring(k)) end
      conform(mem.shape, x, path .. "." .. k)
    end
  elseif t == "list" then
    if type(v) ~= "table" then bad("not a list") end
    for k in pairs(v) do if math.type(k) ~= "integer" then bad("list with key " .. tostring(k)) end end
    for i, x in ipairs(v) do conform(sh.member.shape, x, path .. "[" .. i .. "]") end
  elseif t == "string" then
    if type(v) ~= "string" then bad("not a string: " .. tostring(v)) end
    if sh.enum then
      local ok = false
      for _, e in ipairs(sh.enum) do if e == v then ok = true end end
      if not ok then bad("not in the enum: " .. v) end
    end
  elseif t == "integer" or t == "long" then
    if math.type(v) ~= "integer" then bad("not an integer: " .. tostring(v)) end
  elseif t == "double" or t == "float" or t == "timestamp" then
    if type(v) ~= "number" then bad("not a number: " .. tostring(v)) end
  elseif t == "boolean" then
    if type(v) ~= "boolean" then bad("not a boolean") end
  end
end

local function call(w, op, input, caller)
  input = input or {}
  validate.input(model, op, input)
  local out = ecs.ops[op](w, input, caller)
  conform(model.operations[op].output, out, op)
  return out
end

local function fails(w, op, input, code, pattern, caller)
  local err = T.raises(function() call(w, op, input, caller) end)
  T.ok(w:is_error(err), op .. ": expected a simulator error, got " .. tostring(err))
  T.eq(err.code, code, op .. " error code (" .. tostring(err.message) .. ")")
  T.eq(err.status, 400, op .. " status")
  if pattern then T.ok(err.message:find(pattern, 1, true), op .. " message: " .. err.message) end
  return err
end

local function run(w, secs) w:advance(w.now + secs) end

local NET = { awsvpcConfiguration = { subnets = { "subnet-0sima", "subnet-0simb" }, assignPublicIp = "DISABLED" } }

local function register(w, image, family)
  return call(w, "RegisterTaskDefinition", {
    family = family or "api", networkMode = "awsvpc", requiresCompatibilities = { "FARGATE" },
    cpu = "256", memory = "512",
    containerDefinitions = { { name = "api", image = image, essential = true,
      portMappings = { { containerPort = 8080 } } } },
  }).taskDefinition
end

local function setup(w, opts)
  opts = opts or {}
  call(w, "CreateCluster", { clusterName = "production" })
  register(w, "api:v1")
  local input = {
    cluster = "production", serviceName = "api", taskDefinition = "api", desiredCount = opts.desired or 4,
    launchType = "FARGATE", networkConfiguration = NET,
    loadBalancers = { { targetGroupArn = TG, containerName = "api", containerPort = 8080,
      advancedConfiguration = opts.advanced } },
    deploymentConfiguration = opts.dc or { deploymentCircuitBreaker = { enable = true, rollback = true } },
  }
  return call(w, "CreateService", input).service
end

local function svc(w, name)
  return call(w, "DescribeServices", { cluster = "production", services = { name or "api" } }).services[1]
end

local function has_event(s, pattern)
  for _, e in ipairs(s.events) do if e.message:find(pattern, 1, true) then return e.message end end
  return nil
end

local function live_tasks(w, name)
  local arns = call(w, "ListTasks", { cluster = "production", serviceName = name or "api" }).taskArns
  if #arns == 0 then return {} end
  return call(w, "DescribeTasks", { cluster = "production", tasks = arns }).tasks
end

------------------------------------------------------------------ clusters, task definitions

T.test("an ECS ARN of another Region is InvalidParameterException 'Invalid Region in ARN', whatever the operation", function()
  local w = new_world()
  call(w, "CreateCluster", { clusterName = "production" })
  local eu = "arn:aws:ecs:eu-west-1:123456789012:"
  fails(w, "DescribeClusters", { clusters = { "production", eu .. "cluster/production" } },
    "InvalidParameterException", "Invalid Region in ARN")
  fails(w, "ListServices", { cluster = eu .. "cluster/production" }, "InvalidParameterException", "Invalid Region in ARN")
  fails(w, "DescribeServices", { cluster = "production", services = { eu .. "service/production/api" } },
    "InvalidParameterException", "Invalid Region in ARN")
  fails(w, "UpdateService", { cluster = "production", service = "api", taskDefinition = eu .. "task-definition/api:1" },
    "InvalidParameterException", "Invalid Region in ARN")
  -- this Region's ARNs and other services' ARNs are not refused
  local d = call(w, "DescribeClusters", { clusters = { "arn:aws:ecs:us-east-1:123456789012:cluster/production" } })
  T.eq(#d.clusters, 1)
  T.eq(call(w, "DescribeClusters", { clusters = { "arn:aws:ecs:us-east-1:123456789012:cluster/gone" } }).failures,
    { { arn = "arn:aws:ecs:us-east-1:123456789012:cluster/gone", reason = "MISSING" } })
end)

T.test("a service ARN of another cluster is InvalidParameterException 'Identifier is for cluster'", function()
  local w = new_world()
  call(w, "CreateCluster", { clusterName = "production" })
  local arn = "arn:aws:ecs:us-east-1:123456789012:service/"
  local why = "Invalid identifier: Identifier is for cluster staging. Your cluster is production"
  fails(w, "DescribeServices", { cluster = "production", services = { arn .. "staging/api" } },
    "InvalidParameterException", why)
  fails(w, "UpdateService", { cluster = "production", service = arn .. "staging/api", desiredCount = 1 },
    "InvalidParameterException", why)
  -- this cluster's ARN, in either format, names the service as its name does
  T.eq(call(w, "DescribeServices", { cluster = "production",
    services = { arn .. "production/nope", arn .. "nope" } }).failures[1].reason, "MISSING")
end)

T.test("an ECS ARN of another account is InvalidParameterException 'Identifier is for ACCOUNT', whatever the operation", function()
  local w = new_world()
  setup(w)
  run(w, 120)
  local task = call(w, "ListTasks", { cluster = "production" }).taskArns[1]
  local own, other = "arn:aws:ecs:us-east-1:123456789012:", "arn:aws:ecs:us-east-1:210987654321:"
  local why = "Identifier is for 210987654321. Your accountId is 123456789012"
  local function refused(op, input)
    T.eq(fails(w, op, input, "InvalidParameterException").message, why, op)
  end
  refused("DescribeClusters", { clusters = { "production", other .. "cluster/production" } })
  refused("ListTasks", { cluster = other .. "cluster/production" })
  refused("DescribeServices", { cluster = "production", services = { "api", other .. "service/production/api" } })
  refused("DescribeServices", { cluster = other .. "cluster/production", services = { "api" } })
  refused("UpdateService", { cluster = "production", service = other .. "service/production/api", desiredCount = 1 })
  refused("UpdateService", { cluster = "production", service = "api", taskDefinition = other .. "task-definition/api:1" })
  refused("DescribeTaskDefinition", { taskDefinition = other .. "task-definition/api:1" })
  refused("DescribeTasks", { cluster = "production", tasks = { (task:gsub("123456789012", "210987654321")) } })
  refused("CreateService", { cluster = other .. "cluster/production", serviceName = "x", taskDefinition = "api",
    launchType = "FARGATE", networkConfiguration = NET })
  refused("CreateService", { cluster = "production", serviceName = "x", taskDefinition = other .. "task-definition/api:1",
    launchType = "FARGATE", networkConfiguration = NET })
  refused("DeleteService", { cluster = "production", service = other .. "service/production/api" })
  -- refused before anything was looked up or changed
  T.eq(svc(w).desiredCount, 4)
  T.eq(svc(w).taskDefinition, own .. "task-definition/api:1")
  T.eq(#call(w, "ListServices", { cluster = "production" }).serviceArns, 1)
  -- the caller's own account's ARNs name what its names name
  local d = call(w, "DescribeServices", { cluster = own .. "cluster/production", services = { own .. "service/production/api" } })
  T.eq(d.services[1].serviceName, "api")
  T.eq(call(w, "DescribeTaskDefinition", { taskDefinition = own .. "task-definition/api:1" }).taskDefinition.revision, 1)
  T.eq(#call(w, "DescribeTasks", { cluster = own .. "cluster/production", tasks = { task } }).tasks, 1)
  T.eq(call(w, "UpdateService", { cluster = own .. "cluster/production", service = own .. "service/production/api",
    desiredCount = 2, taskDefinition = own .. "task-definition/api:1" }).service.desiredCount, 2)
end)

T.test("another account's world: its own ARNs work, the default account's are another account's", function()
  local w = World.new { start = START, seed = 3, account = "210987654321" }
  w:add_service(ecs)
  local arn = call(w, "CreateCluster", { clusterName = "production" }).cluster.clusterArn
  T.eq(arn, "arn:aws:ecs:us-east-1:210987654321:cluster/production")
  T.eq(#call(w, "DescribeClusters", { clusters = { arn } }).clusters, 1)
  T.eq(fails(w, "DescribeClusters", { clusters = { "arn:aws:ecs:us-east-1:123456789012:cluster/production" } },
    "InvalidParameterException").message, "Identifier is for 123456789012. Your accountId is 210987654321")
end)

T.test("a task ARN of another cluster is InvalidParameterException 'Identifier is for cluster'", function()
  local w = new_world()
  setup(w)
  run(w, 120)
  call(w, "CreateCluster", { clusterName = "staging" })
  local task = call(w, "ListTasks", { cluster = "production" }).taskArns[1]
  local why = "Invalid identifier: Identifier is for cluster production. Your cluster is staging"
  T.eq(fails(w, "DescribeTasks", { cluster = "staging", tasks = { task } }, "InvalidParameterException").message, why)
  T.eq(fails(w, "StopTask", { cluster = "staging", task = task }, "InvalidParameterException").message, why)
  -- its own cluster describes it; its bare id is no task of staging's
  T.eq(#call(w, "DescribeTasks", { cluster = "production", tasks = { task } }).tasks, 1)
  local id = task:match("[^/]+$")
  T.eq(call(w, "DescribeTasks", { cluster = "staging", tasks = { id } }).failures[1].reason, "MISSING")
  T.eq(call(w, "DescribeTasks", { cluster = "production", tasks = { task } }).tasks[1].lastStatus, "RUNNING",
    "the refused StopTask stopped nothing")
end)

T.test("clusters: create (idempotent), describe with MISSING failures, list, delete", function()
  local w = new_world()
  local c = call(w, "CreateCluster", { clusterName = "production" }).cluster
  T.eq(c.clusterArn, "arn:aws:ecs:us-east-1:123456789012:cluster/production")
  T.eq(c.status, "ACTIVE")
  T.eq(call(w, "CreateCluster", { clusterName = "production" }).cluster.clusterArn, c.clusterArn)
  local d = call(w, "DescribeClusters", { clusters = { "production", "nope" } })
  T.eq(#d.clusters, 1)
  T.eq(d.failures[1], { arn = "arn:aws:ecs:us-east-1:123456789012:cluster/nope", reason = "MISSING" })
  T.eq(call(w, "ListClusters").clusterArns, { c.clusterArn })
  T.eq(call(w, "DeleteCluster", { cluster = c.clusterArn }).cluster.status, "INACTIVE")
  T.eq(call(w, "ListClusters").clusterArns, {})
  fails(w, "DeleteCluster", { cluster = "production" }, "ClusterNotFoundException", "Cluster not found.")
end)

T.test("task definitions: revisions, references, deregister, families", function()
  local w = new_world()
  local td1 = register(w, "api:v1")
  local td2 = register(w, "api:v2")
  T.eq(td1.taskDefinitionArn, "arn:aws:ecs:us-east-1:123456789012:task-definition/api:1")
  T.eq(td2.revision, 2)
  T.eq(td2.status, "ACTIVE")
  T.eq(td2.registeredAt, START)
  T.eq(td2.requiresCompatibilities, { "FARGATE" })
  T.eq(td2.compatibilities[2], "FARGATE")
  T.eq(call(w, "DescribeTaskDefinition", { taskDefinition = "api" }).taskDefinition.revision, 2)
  T.eq(call(w, "DescribeTaskDefinition", { taskDefinition = "api:1" }).taskDefinition.containerDefinitions[1].image, "api:v1")
  T.eq(call(w, "DescribeTaskDefinition", { taskDefinition = td1.taskDefinitionArn }).taskDefinition.revision, 1)
  T.eq(call(w, "DeregisterTaskDefinition", { taskDefinition = "api:2" }).taskDefinition.status, "INACTIVE")
  T.eq(call(w, "DescribeTaskDefinition", { taskDefinition = "api" }).taskDefinition.revision, 1,
    "the family resolves to the latest ACTIVE revision")
  T.eq(call(w, "ListTaskDefinitions", { familyPrefix = "api" }).taskDefinitionArns, { td1.taskDefinitionArn })
  T.eq(call(w, "ListTaskDefinitions", { status = "INACTIVE" }).taskDefinitionArns, { td2.taskDefinitionArn })
  T.eq(call(w, "ListTaskDefinitionFamilies").families, { "api" })
  fails(w, "DescribeTaskDefinition", { taskDefinition = "nope:3" }, "ClientException", "Unable to describe task definition.")
  local del = call(w, "DeleteTaskDefinitions", { taskDefinitions = { "api:2", "api:1" } })
  T.eq(del.taskDefinitions[1].status, "DELETE_IN_PROGRESS")
  T.eq(#del.failures, 1)
end)

------------------------------------------------------------------ services and rolling deployments

T.test("CreateService: tasks start on the clock, register, deployment completes, steady state", function()
  local log = {}
  local w = new_world { log = log }
  local s = setup(w)
  T.eq(s.serviceArn, "arn:aws:ecs:us-east-1:123456789012:service/production/api")
  T.eq(s.status, "ACTIVE")
  T.eq(s.deploymentConfiguration.maximumPercent, 200)
  T.eq(s.deploymentConfiguration.minimumHealthyPercent, 100)
  T.eq(#s.deployments, 1)
  local dep = s.deployments[1]
  T.ok(dep.id:match("^ecs%-svc/%d+$") and #dep.id == 27, dep.id)
  T.eq(dep.status, "PRIMARY")
  T.eq(dep.rolloutState, "IN_PROGRESS")
  T.eq(dep.runningCount, 0)

  run(w, 5)
  s = svc(w)
  T.eq(s.pendingCount, 4)
  T.ok(has_event(s, "has started 4 tasks: (task "), "started event")
  local tasks = live_tasks(w)
  T.eq(#tasks, 4)
  T.eq(tasks[1].lastStatus, "PROVISIONING", "launched at the first tick")
  T.eq(tasks[1].desiredStatus, "RUNNING")
  run(w, 5)
  tasks = live_tasks(w)
  T.eq(tasks[1].lastStatus, "PENDING")
  T.eq(tasks[1].group, "service:api")
  T.eq(tasks[1].taskDefinitionArn, "arn:aws:ecs:us-east-1:123456789012:task-definition/api:1")
  T.eq(tasks[1].containers[1].image, "api:v1")
  local ip
  for _, d in ipairs(tasks[1].attachments[1].details) do if d.name == "privateIPv4Address" then ip = d.value end end
  T.ok(ip and ip:match("^10%.0%.%d+%.%d+$"), "ENI private IP")
  T.eq(#log, 0, "nothing registered before RUNNING")

  run(w, 10)
  s = svc(w)
  T.eq(s.runningCount, 4)
  T.eq(s.deployments[1].rolloutState, "IN_PROGRESS", "not healthy yet")
  T.eq(#log, 4)
  T.eq(log[1].op, "register")
  T.eq(log[1].tg, TG)
  T.eq(log[1].port, 8080)
  T.eq(log[1].id, ip)
  T.ok(has_event(s, "registered 4 targets in (target-group " .. TG .. ")"), "registration event")
  T.eq(live_tasks(w)[1].startedAt, START + 20)

  run(w, 20)
  s = svc(w)
  T.eq(s.deployments[1].rolloutState, "COMPLETED")
  T.eq(s.deployments[1].rolloutStateReason, "ECS deployment " .. dep.id .. " completed.")
  T.eq(s.events[1].message, "(service api) has reached a steady state.")
  T.eq(s.events[2].message, "(service api) (deployment " .. dep.id .. ") deployment completed.")
  T.eq(live_tasks(w)[1].healthStatus, "HEALTHY")
  T.eq(ecs.task_health(w, live_tasks(w)[1].taskArn), "healthy")
  T.eq(ecs.image_first_start(w, "api:v1"), START + 20)
  local info = ecs.task_info(w, live_tasks(w)[1].taskArn)
  T.eq(info.image, "api:v1")
  T.eq(info.service, "api")
  local sds = call(w, "ListServiceDeployments", { cluster = "production", service = "api" }).serviceDeployments
  T.eq(#sds, 1)
  T.eq(sds[1].status, "SUCCESSFUL")
end)

T.test("rolling update to a healthy image: within maximumPercent, old tasks stop, COMPLETED", function()
  local log = {}
  local w = new_world { log = log }
  setup(w)
  run(w, 60)
  register(w, "api:v2")
  local s = call(w, "UpdateService", { cluster = "production", service = "api", taskDefinition = "api:2" }).service
  T.eq(#s.deployments, 2)
  T.eq(s.deployments[1].status, "PRIMARY")
  T.eq(s.deployments[1].taskDefinition, "arn:aws:ecs:us-east-1:123456789012:task-definition/api:2")
  T.eq(s.deployments[2].status, "ACTIVE")
  T.eq(s.taskDefinition, "arn:aws:ecs:us-east-1:123456789012:task-definition/api:2")
  local max_live = 0
  for _ = 1, 20 do
    run(w, 5)
    local n = #call(w, "ListTasks", { cluster = "production", serviceName = "api" }).taskArns
    if n > max_live then max_live = n end
  end
  T.eq(max_live, 8, "maximumPercent 200 of 4")
  s = svc(w)
  T.eq(#s.deployments, 1)
  T.eq(s.deployments[1].rolloutState, "COMPLETED")
  T.eq(s.runningCount, 4)
  for _, t in ipairs(live_tasks(w)) do
    T.eq(t.taskDefinitionArn, "arn:aws:ecs:us-east-1:123456789012:task-definition/api:2")
  end
  T.ok(has_event(s, "has stopped 4 running tasks:"), "stop event")
  T.ok(has_event(s, "has begun draining connections on 4 tasks."), "draining event")
  local dereg = 0
  for _, e in ipairs(log) do if e.op == "deregister" then dereg = dereg + 1 end end
  T.eq(dereg, 4)
  local stopped = call(w, "ListTasks", { cluster = "production", serviceName = "api", desiredStatus = "STOPPED" }).taskArns
  T.eq(#stopped, 4)
  local st = call(w, "DescribeTasks", { cluster = "production", tasks = { stopped[1] } }).tasks[1]
  T.eq(st.lastStatus, "STOPPED")
  T.eq(st.stopCode, "ServiceSchedulerInitiated")
  T.ok(st.stoppedReason:find("Scaling activity initiated by (deployment ecs-svc/", 1, true), st.stoppedReason)
end)

T.test("minimumHealthyPercent 50 / maximumPercent 100: stops before it starts", function()
  local w = new_world()
  setup(w, { dc = { maximumPercent = 100, minimumHealthyPercent = 50 } })
  run(w, 60)
  register(w, "api:v2")
  call(w, "UpdateService", { cluster = "production", service = "api", taskDefinition = "api:2" })
  run(w, 5)
  T.eq(#call(w, "ListTasks", { cluster = "production", serviceName = "api" }).taskArns, 4, "never above 100%")
  local s = svc(w)
  T.ok(has_event(s, "has stopped 2 running tasks:"), "two stopped first")
  run(w, 120)
  s = svc(w)
  T.eq(#s.deployments, 1)
  T.eq(s.deployments[1].rolloutState, "COMPLETED")
end)

T.test("circuit breaker: crash on start -> FAILED after the threshold, rollback runs the old revision", function()
  local w = new_world { log = {} }
  setup(w)
  run(w, 60)
  local first = svc(w).deployments[1].id
  register(w, "api:bad")
  local s = call(w, "UpdateService", { cluster = "production", service = "api", taskDefinition = "api:2" }).service
  local bad = s.deployments[1].id
  local sd_arn = s.currentServiceDeployment
  run(w, 15)
  T.eq(live_tasks(w)[1].lastStatus, "RUNNING")
  run(w, 10)
  s = svc(w)
  T.ok(has_event(s, "(deployment " .. bad .. ") deployment failed: tasks failed to start."), "failure event")
  T.ok(has_event(s, "rolling back to deployment " .. first .. "."), "rollback event")
  local failed
  for _, d in ipairs(s.deployments) do if d.id == bad then failed = d end end
  T.eq(failed.rolloutState, "FAILED")
  T.eq(failed.rolloutStateReason, "ECS deployment circuit breaker: tasks failed to start.")
  T.ok(failed.failedTasks >= 3, "threshold max(3, ceil(0.5 * 4)) = 3 failures")
  T.eq(s.deployments[1].taskDefinition, "arn:aws:ecs:us-east-1:123456789012:task-definition/api:1")
  T.eq(s.deployments[1].rolloutState, "IN_PROGRESS")
  T.ok(s.deployments[1].rolloutStateReason:find("rolling back to deploymentId " .. first, 1, true))
  local stopped = call(w, "ListTasks", { cluster = "production", serviceName = "api", desiredStatus = "STOPPED" }).taskArns
  local t = call(w, "DescribeTasks", { cluster = "production", tasks = { stopped[1] } }).tasks[1]
  T.eq(t.stoppedReason, "Essential container in task exited")
  T.eq(t.stopCode, "EssentialContainerExited")
  T.eq(t.containers[1].exitCode, 1)
  local d = call(w, "DescribeServiceDeployments", { serviceDeploymentArns = { sd_arn } }).serviceDeployments[1]
  T.eq(d.status, "ROLLBACK_IN_PROGRESS")
  T.eq(d.deploymentCircuitBreaker.status, "TRIGGERED")
  T.eq(d.deploymentCircuitBreaker.threshold, 3)
  run(w, 180)
  s = svc(w)
  T.eq(#s.deployments, 1)
  T.eq(s.deployments[1].rolloutState, "COMPLETED")
  T.eq(s.taskDefinition, "arn:aws:ecs:us-east-1:123456789012:task-definition/api:1")
  T.eq(s.runningCount, 4)
  T.eq(s.events[1].message, "(service api) has reached a steady state.")
  d = call(w, "DescribeServiceDeployments", { serviceDeploymentArns = { sd_arn } }).serviceDeployments[1]
  T.eq(d.status, "ROLLBACK_SUCCESSFUL")
  T.eq(d.rollback.serviceRevisionArn, d.sourceServiceRevisions[1].arn)
end)

T.test("circuit breaker threshold rule and rollback = false", function()
  local w = new_world()
  setup(w, { desired = 10, dc = { deploymentCircuitBreaker = { enable = true, rollback = false } } })
  local P = require "ecsplay.sim.ecs.deploy"
  local st = w.state.ecs.clusters.production.services.api
  T.eq(P.threshold(st), 5)
  st.desired = 500
  T.eq(P.threshold(st), 200)
  st.desired = 2
  T.eq(P.threshold(st), 3)
  st.desired = 10
  run(w, 60)
  register(w, "api:bad")
  call(w, "UpdateService", { cluster = "production", service = "api", taskDefinition = "api:2" })
  run(w, 120)
  local s = svc(w)
  T.eq(#s.deployments, 2, "no rollback: the old deployment keeps serving")
  T.eq(s.deployments[1].rolloutState, "FAILED")
  T.eq(s.runningCount, 10)
  T.eq(s.deployments[2].runningCount, 10)
  local sd = call(w, "DescribeServiceDeployments", { serviceDeploymentArns = { s.currentServiceDeployment } })
  T.eq(sd.serviceDeployments[1].status, "STOPPED")
end)

T.test("desiredCount changes scale the primary up and down without a new deployment", function()
  local w = new_world()
  setup(w)
  run(w, 60)
  local id = svc(w).deployments[1].id
  call(w, "UpdateService", { cluster = "production", service = "api", desiredCount = 6 })
  run(w, 40)
  local s = svc(w)
  T.eq(s.runningCount, 6)
  T.eq(s.deployments[1].id, id)
  T.eq(s.deployments[1].desiredCount, 6)
  T.eq(s.events[1].message, "(service api) has reached a steady state.")
  call(w, "UpdateService", { cluster = "production", service = "api", desiredCount = 2 })
  run(w, 15)
  s = svc(w)
  T.eq(s.runningCount, 2)
  T.ok(has_event(s, "has stopped 4 running tasks:"))
end)

T.test("crash after running: tasks are replaced once the deployment completed", function()
  local w = new_world()
  call(w, "CreateCluster", { clusterName = "production" })
  register(w, "api:oom")
  call(w, "CreateService", { cluster = "production", serviceName = "api", taskDefinition = "api",
    desiredCount = 2, networkConfiguration = NET })
  run(w, 40)
  T.eq(svc(w).deployments[1].rolloutState, "COMPLETED")
  run(w, 45)
  local stopped = call(w, "ListTasks", { cluster = "production", desiredStatus = "STOPPED" }).taskArns
  T.eq(#stopped, 2)
  T.eq(#live_tasks(w), 2, "replacements launched")
end)

T.test("StopTask: the scheduler replaces the stopped task", function()
  local w = new_world()
  setup(w)
  run(w, 60)
  local arn = live_tasks(w)[1].taskArn
  local t = call(w, "StopTask", { cluster = "production", task = arn, reason = "testing" }).task
  T.eq(t.desiredStatus, "STOPPED")
  T.eq(t.stoppedReason, "testing")
  T.eq(t.stopCode, "UserInitiated")
  run(w, 40)
  T.eq(svc(w).runningCount, 4)
  T.eq(call(w, "DescribeTasks", { cluster = "production", tasks = { arn } }).tasks[1].lastStatus, "STOPPED")
end)

T.test("deployment alarms: ALARM during the deployment fails it and rolls back", function()
  local alarms = { ["api-5xx"] = "OK" }
  local w = new_world { alarms = alarms }
  setup(w, { dc = { alarms = { alarmNames = { "api-5xx" }, enable = true, rollback = true } } })
  run(w, 60)
  register(w, "api:slow")
  call(w, "UpdateService", { cluster = "production", service = "api", taskDefinition = "api:2" })
  run(w, 30)
  T.eq(svc(w).deployments[1].rolloutState, "IN_PROGRESS")
  alarms["api-5xx"] = "ALARM"
  run(w, 5)
  local s = svc(w)
  T.ok(has_event(s, "deployment failed: alarm detected."), "alarm failure event")
  T.eq(s.deployments[1].taskDefinition, "arn:aws:ecs:us-east-1:123456789012:task-definition/api:1")
  local sd = call(w, "DescribeServiceDeployments", { serviceDeploymentArns = { s.currentServiceDeployment } })
    .serviceDeployments[1]
  T.eq(sd.alarms.status, "TRIGGERED")
  T.eq(sd.alarms.triggeredAlarmNames, { "api-5xx" })
  alarms["api-5xx"] = "OK"
  run(w, 120)
  s = svc(w)
  T.eq(#s.deployments, 1)
  T.eq(s.deployments[1].rolloutState, "COMPLETED")
  T.eq(s.taskDefinition, "arn:aws:ecs:us-east-1:123456789012:task-definition/api:1")
end)

T.test("StopServiceDeployment ROLLBACK on a rolling deployment", function()
  local w = new_world()
  setup(w)
  run(w, 60)
  register(w, "api:slow")
  local s = call(w, "UpdateService", { cluster = "production", service = "api", taskDefinition = "api:2" }).service
  run(w, 20)
  local arn = call(w, "StopServiceDeployment", { serviceDeploymentArn = s.currentServiceDeployment }).serviceDeploymentArn
  T.eq(arn, s.currentServiceDeployment)
  local sd = call(w, "DescribeServiceDeployments", { serviceDeploymentArns = { arn } }).serviceDeployments[1]
  T.eq(sd.status, "ROLLBACK_REQUESTED")
  run(w, 5)
  sd = call(w, "DescribeServiceDeployments", { serviceDeploymentArns = { arn } }).serviceDeployments[1]
  T.eq(sd.status, "ROLLBACK_IN_PROGRESS")
  run(w, 120)
  sd = call(w, "DescribeServiceDeployments", { serviceDeploymentArns = { arn } }).serviceDeployments[1]
  T.eq(sd.status, "ROLLBACK_SUCCESSFUL")
  T.eq(svc(w).taskDefinition, "arn:aws:ecs:us-east-1:123456789012:task-definition/api:1")
  local err = T.raises(function() call(w, "StopServiceDeployment", { serviceDeploymentArn = arn }) end)
  T.eq(err.code, "ConflictException")
  fails(w, "StopServiceDeployment", { serviceDeploymentArn = arn .. "x" }, "ServiceDeploymentNotFoundException")
end)

------------------------------------------------------------------ errors

T.test("errors: AWS codes and messages", function()
  local w = new_world { log = {} }
  setup(w)
  fails(w, "CreateService", { cluster = "nope", serviceName = "x", taskDefinition = "api" },
    "ClusterNotFoundException", "Cluster not found.")
  fails(w, "UpdateService", { cluster = "production", service = "nope", desiredCount = 1 },
    "ServiceNotFoundException", "Service not found.")
  fails(w, "UpdateService", { cluster = "production", service = "api", taskDefinition = "nope:9" },
    "ClientException", "TaskDefinition not found.")
  fails(w, "CreateService", { cluster = "production", serviceName = "api", taskDefinition = "api",
    networkConfiguration = NET }, "InvalidParameterException", "Creation of service was not idempotent.")
  fails(w, "CreateService", { cluster = "production", serviceName = "x", taskDefinition = "api" },
    "InvalidParameterException", "Network Configuration must be provided when networkMode 'awsvpc' is specified.")
  fails(w, "CreateService", { cluster = "production", serviceName = "x", taskDefinition = "api", networkConfiguration = NET,
    loadBalancers = { { targetGroupArn = TG, containerName = "web", containerPort = 8080 } } },
    "InvalidParameterException", "The container web does not exist in the task definition.")
  fails(w, "CreateService", { cluster = "production", serviceName = "x", taskDefinition = "api", networkConfiguration = NET,
    loadBalancers = { { targetGroupArn = TG .. "missing", containerName = "api", containerPort = 8080 } } },
    "InvalidParameterException", "does not exist")
  local d = call(w, "DescribeServices", { cluster = "production", services = { "api", "ghost" } })
  T.eq(#d.services, 1)
  T.eq(d.failures[1], { arn = "arn:aws:ecs:us-east-1:123456789012:service/production/ghost", reason = "MISSING" })
  fails(w, "DeleteService", { cluster = "production", service = "api" },
    "InvalidParameterException", "The service cannot be stopped while it is scaled above 0.")
  fails(w, "CreateTaskSet", { cluster = "production", service = "api", taskDefinition = "api" },
    "InvalidParameterException", "Amazon ECS only supports task set management on services configured to use external deployment controllers.")
  fails(w, "ListTasks", { cluster = "production", serviceName = "ghost" }, "ServiceNotFoundException")
  local dt = call(w, "DescribeTasks", { cluster = "production", tasks = { "0123" } })
  T.eq(dt.failures[1].reason, "MISSING")
  T.eq(call(w, "DeleteService", { cluster = "production", service = "api", force = true }).service.status, "DRAINING")
  fails(w, "UpdateService", { cluster = "production", service = "api", desiredCount = 1 },
    "ServiceNotActiveException", "Service was not ACTIVE.")
  run(w, 30)
  T.eq(svc(w).status, "INACTIVE")
  T.eq(call(w, "ListServices", { cluster = "production" }).serviceArns, {})
end)

------------------------------------------------------------------ task sets

T.test("EXTERNAL task sets: scale, primary, delete", function()
  local log = {}
  local w = new_world { log = log }
  call(w, "CreateCluster", { clusterName = "production" })
  register(w, "api:v1")
  register(w, "api:v2")
  local s = call(w, "CreateService", { cluster = "production", serviceName = "ext", desiredCount = 4,
    deploymentController = { type = "EXTERNAL" } }).service
  T.eq(s.taskSets, {})
  T.eq(s.deployments, {})
  local ts = call(w, "CreateTaskSet", { cluster = "production", service = "ext", taskDefinition = "api:1",
    networkConfiguration = NET, externalId = "blue",
    loadBalancers = { { targetGroupArn = TG, containerName = "api", containerPort = 8080 } },
    scale = { value = 50, unit = "PERCENT" } }).taskSet
  T.ok(ts.id:match("^ecs%-svc/%d+$"), ts.id)
  T.eq(ts.taskSetArn, "arn:aws:ecs:us-east-1:123456789012:task-set/production/ext/" .. ts.id)
  T.eq(ts.status, "PRIMARY")
  T.eq(ts.computedDesiredCount, 2)
  T.eq(ts.stabilityStatus, "STABILIZING")
  run(w, 40)
  local d = call(w, "DescribeTaskSets", { cluster = "production", service = "ext" }).taskSets[1]
  T.eq(d.runningCount, 2)
  T.eq(d.stabilityStatus, "STEADY_STATE")
  T.eq(#log, 2)
  T.eq(log[1].tg, TG)
  call(w, "UpdateTaskSet", { cluster = "production", service = "ext", taskSet = ts.id, scale = { value = 100, unit = "PERCENT" } })
  run(w, 40)
  T.eq(svc(w, "ext").runningCount, 4)
  local green = call(w, "CreateTaskSet", { cluster = "production", service = "ext", taskDefinition = "api:2",
    networkConfiguration = NET, scale = { value = 100, unit = "PERCENT" },
    loadBalancers = { { targetGroupArn = TG_ALT, containerName = "api", containerPort = 8080 } } }).taskSet
  T.eq(green.status, "ACTIVE")
  run(w, 40)
  T.eq(svc(w, "ext").runningCount, 8)
  local p = call(w, "UpdateServicePrimaryTaskSet", { cluster = "production", service = "ext", primaryTaskSet = green.taskSetArn }).taskSet
  T.eq(p.status, "PRIMARY")
  s = svc(w, "ext")
  T.eq(s.taskDefinition, "arn:aws:ecs:us-east-1:123456789012:task-definition/api:2")
  T.eq(s.taskSets[1].status, "ACTIVE")
  T.eq(call(w, "DeleteTaskSet", { cluster = "production", service = "ext", taskSet = ts.id, force = true }).taskSet.status, "DRAINING")
  run(w, 30)
  s = svc(w, "ext")
  T.eq(#s.taskSets, 1)
  T.eq(s.runningCount, 4)
  fails(w, "UpdateTaskSet", { cluster = "production", service = "ext", taskSet = ts.id, scale = { value = 10 } },
    "TaskSetNotFoundException")
  local miss = call(w, "DescribeTaskSets", { cluster = "production", service = "ext", taskSets = { "ecs-svc/1" } })
  T.eq(miss.failures[1].reason, "MISSING")
end)

T.test("CODE_DEPLOY services: primary task set, public task set calls and task definition updates refused", function()
  local w = new_world()
  call(w, "CreateCluster", { clusterName = "production" })
  register(w, "app:v1", "app")
  register(w, "app:v2", "app")
  local s = call(w, "CreateService", { cluster = "production", serviceName = "app", taskDefinition = "app:1",
    desiredCount = 3, networkConfiguration = NET, deploymentController = { type = "CODE_DEPLOY" },
    loadBalancers = { { targetGroupArn = TG, containerName = "api", containerPort = 8080 } } }).service
  T.eq(#s.taskSets, 1)
  T.eq(s.taskSets[1].status, "PRIMARY")
  T.eq(s.taskSets[1].computedDesiredCount, 3)
  run(w, 40)
  T.eq(svc(w, "app").runningCount, 3)
  fails(w, "UpdateService", { cluster = "production", service = "app", taskDefinition = "app:2" },
    "InvalidParameterException",
    "Unable to update task definition on services with a CODE_DEPLOY deployment controller. Use AWS CodeDeploy to trigger a new deployment.")
  fails(w, "CreateTaskSet", { cluster = "production", service = "app", taskDefinition = "app:2" },
    "InvalidParameterException", "external deployment controllers")
  local ts = call(w, "CreateTaskSet", { cluster = "production", service = "app", taskDefinition = "app:2",
    externalId = "d-123", scale = { value = 100, unit = "PERCENT" } }, "codedeploy").taskSet
  T.eq(ts.startedBy, "CodeDeploy")
  T.eq(ts.externalId, "d-123")
  call(w, "UpdateService", { cluster = "production", service = "app", desiredCount = 2 })
  run(w, 40)
  T.eq(svc(w, "app").runningCount, 4, "2 per task set at 100%")
end)

------------------------------------------------------------------ native blue/green

local function native_setup(w, dc)
  return setup(w, { advanced = { alternateTargetGroupArn = TG_ALT, productionListenerRule = RULE,
    testListenerRule = TEST_RULE, roleArn = "arn:aws:iam::123456789012:role/ecs-bg" }, dc = dc })
end

local function last_forward(log, rule)
  for i = #log, 1, -1 do if log[i].op == "forward" and log[i].rule == rule then return log[i].fwd end end
  return nil
end

T.test("native CANARY with a paused hook: continue, canary weight, bake, 100%, clean-up", function()
  local log = {}
  local w = new_world { log = log }
  native_setup(w, { strategy = "CANARY", bakeTimeInMinutes = 2,
    canaryConfiguration = { canaryPercent = 10, canaryBakeTimeInMinutes = 5 },
    lifecycleHooks = { { hookTargetArn = "arn:aws:lambda:us-east-1:123456789012:function:check",
      roleArn = "arn:aws:iam::123456789012:role/hook", lifecycleStages = { "POST_SCALE_UP" } } } })
  run(w, 60)
  T.eq(svc(w).deployments[1].rolloutState, "COMPLETED", "the first deployment is a plain scale-up")
  register(w, "api:v2")
  local s = call(w, "UpdateService", { cluster = "production", service = "api", taskDefinition = "api:2" }).service
  local arn = s.currentServiceDeployment
  run(w, 60)
  local sd = call(w, "DescribeServiceDeployments", { serviceDeploymentArns = { arn } }).serviceDeployments[1]
  T.eq(sd.status, "IN_PROGRESS")
  T.eq(sd.lifecycleStage, "POST_SCALE_UP")
  T.eq(#sd.lifecycleHookDetails, 1)
  local hook = sd.lifecycleHookDetails[1]
  T.eq(hook.status, "AWAITING_ACTION")
  T.eq(hook.targetArn, "arn:aws:lambda:us-east-1:123456789012:function:check")
  T.eq(svc(w).runningCount, 8, "blue and green both at full size")
  local green_regs = 0
  for _, e in ipairs(log) do if e.op == "register" and e.tg == TG_ALT then green_regs = green_regs + 1 end end
  T.eq(green_regs, 4, "green tasks register into the alternate target group")
  T.eq(last_forward(log, RULE), nil, "no production shift while paused")
  run(w, 300)
  T.eq(call(w, "DescribeServiceDeployments", { serviceDeploymentArns = { arn } }).serviceDeployments[1].lifecycleStage,
    "POST_SCALE_UP", "still paused")
  call(w, "ContinueServiceDeployment", { serviceDeploymentArn = arn, hookId = hook.hookId, action = "CONTINUE" })
  fails(w, "ContinueServiceDeployment", { serviceDeploymentArn = arn, hookId = hook.hookId }, "InvalidParameterException")
  run(w, 5)
  T.eq(last_forward(log, TEST_RULE), { [TG] = 0, [TG_ALT] = 100 })
  T.eq(last_forward(log, RULE), { [TG] = 90, [TG_ALT] = 10 })
  sd = call(w, "DescribeServiceDeployments", { serviceDeploymentArns = { arn } }).serviceDeployments[1]
  T.eq(sd.lifecycleStage, "PRODUCTION_TRAFFIC_SHIFT")
  T.eq(sd.targetServiceRevision.requestedProductionTrafficWeight, 10)
  T.eq(sd.sourceServiceRevisions[1].requestedProductionTrafficWeight, 90)
  run(w, 240)
  T.eq(last_forward(log, RULE), { [TG] = 90, [TG_ALT] = 10 }, "canary bake not over")
  run(w, 60)
  T.eq(last_forward(log, RULE), { [TG] = 0, [TG_ALT] = 100 })
  sd = call(w, "DescribeServiceDeployments", { serviceDeploymentArns = { arn } }).serviceDeployments[1]
  T.eq(sd.lifecycleStage, "BAKE_TIME")
  run(w, 150)
  sd = call(w, "DescribeServiceDeployments", { serviceDeploymentArns = { arn } }).serviceDeployments[1]
  T.eq(sd.status, "SUCCESSFUL")
  T.eq(sd.lifecycleStage, "CLEAN_UP")
  s = svc(w)
  T.eq(#s.deployments, 1)
  T.eq(s.deployments[1].rolloutState, "COMPLETED")
  T.eq(s.runningCount, 4)
  for _, t in ipairs(live_tasks(w)) do T.eq(t.containers[1].image, "api:v2") end
  -- the next deployment goes to the other target group: the original one
  register(w, "api:v3")
  call(w, "UpdateService", { cluster = "production", service = "api", taskDefinition = "api:3" })
  local before = #log
  run(w, 40)
  local tgs = {}
  for i = before + 1, #log do if log[i].op == "register" then tgs[log[i].tg] = true end end
  T.eq(tgs, { [TG] = true })
end)

T.test("native BLUE_GREEN: StopServiceDeployment ROLLBACK returns traffic and blue stays", function()
  local log = {}
  local w = new_world { log = log }
  native_setup(w, { strategy = "BLUE_GREEN", bakeTimeInMinutes = 10 })
  run(w, 60)
  register(w, "api:v2")
  local s = call(w, "UpdateService", { cluster = "production", service = "api", taskDefinition = "api:2" }).service
  local arn = s.currentServiceDeployment
  run(w, 60)
  T.eq(last_forward(log, RULE), { [TG] = 0, [TG_ALT] = 100 })
  local sd = call(w, "DescribeServiceDeployments", { serviceDeploymentArns = { arn } }).serviceDeployments[1]
  T.eq(sd.lifecycleStage, "BAKE_TIME")
  call(w, "StopServiceDeployment", { serviceDeploymentArn = arn, stopType = "ROLLBACK" })
  run(w, 5)
  T.eq(last_forward(log, RULE), { [TG] = 100, [TG_ALT] = 0 })
  sd = call(w, "DescribeServiceDeployments", { serviceDeploymentArns = { arn } }).serviceDeployments[1]
  T.eq(sd.status, "ROLLBACK_IN_PROGRESS")
  run(w, 30)
  sd = call(w, "DescribeServiceDeployments", { serviceDeploymentArns = { arn } }).serviceDeployments[1]
  T.eq(sd.status, "ROLLBACK_SUCCESSFUL")
  T.ok(sd.rollback and sd.rollback.reason:find("StopServiceDeployment", 1, true))
  s = svc(w)
  T.eq(#s.deployments, 1)
  T.eq(s.taskDefinition, "arn:aws:ecs:us-east-1:123456789012:task-definition/api:1")
  T.eq(s.runningCount, 4)
  for _, t in ipairs(live_tasks(w)) do T.eq(t.containers[1].image, "api:v1") end
end)

T.test("native LINEAR: steps of stepPercent every stepBakeTimeInMinutes", function()
  local log = {}
  local w = new_world { log = log }
  native_setup(w, { strategy = "LINEAR", linearConfiguration = { stepPercent = 25, stepBakeTimeInMinutes = 1 } })
  run(w, 60)
  register(w, "api:v2")
  call(w, "UpdateService", { cluster = "production", service = "api", taskDefinition = "api:2" })
  local weights = {}
  for _ = 1, 80 do
    run(w, 5)
    local f = last_forward(log, RULE)
    local g = f and f[TG_ALT]
    if g and weights[#weights] ~= g then weights[#weights + 1] = g end
  end
  T.eq(weights, { 25, 50, 75, 100 })
  T.eq(svc(w).deployments[1].rolloutState, "COMPLETED")
end)

T.test("native strategy needs advancedConfiguration", function()
  local w = new_world()
  call(w, "CreateCluster", { clusterName = "production" })
  register(w, "api:v1")
  fails(w, "CreateService", { cluster = "production", serviceName = "x", taskDefinition = "api", networkConfiguration = NET,
    loadBalancers = { { targetGroupArn = TG, containerName = "api", containerPort = 8080 } },
    deploymentConfiguration = { strategy = "CANARY" } }, "InvalidParameterException", "advancedConfiguration")
end)

------------------------------------------------------------------ determinism, tags

T.test("same operations, same world: identical ids, IPs and events", function()
  local function trace()
    local w = new_world()
    setup(w)
    run(w, 60)
    register(w, "api:bad")
    call(w, "UpdateService", { cluster = "production", service = "api", taskDefinition = "api:2" })
    run(w, 200)
    local s = svc(w)
    local out = {}
    for _, e in ipairs(s.events) do out[#out + 1] = e.message end
    for _, t in ipairs(live_tasks(w)) do out[#out + 1] = t.taskArn .. t.attachments[1].details[5].value end
    return out
  end
  T.eq(trace(), trace())
end)

T.test("tags on clusters, services and task definitions", function()
  local w = new_world()
  local s = setup(w)
  call(w, "TagResource", { resourceArn = s.serviceArn, tags = { { key = "team", value = "web" } } })
  call(w, "TagResource", { resourceArn = s.serviceArn, tags = { { key = "team", value = "api" }, { key = "env", value = "prod" } } })
  T.eq(call(w, "ListTagsForResource", { resourceArn = s.serviceArn }).tags,
    { { key = "team", value = "api" }, { key = "env", value = "prod" } })
  call(w, "UntagResource", { resourceArn = s.serviceArn, tagKeys = { "team" } })
  T.eq(call(w, "ListTagsForResource", { resourceArn = s.serviceArn }).tags, { { key = "env", value = "prod" } })
  fails(w, "TagResource", { resourceArn = "arn:aws:ecs:us-east-1:123456789012:cluster/ghost", tags = {} },
    "ClusterNotFoundException")
end)
