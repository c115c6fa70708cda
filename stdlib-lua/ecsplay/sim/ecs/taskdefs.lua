--[[
Task definitions of the simulated ECS: families, revisions, ACTIVE/INACTIVE/
DELETE_IN_PROGRESS, the five operations on them, and the checks of what
services and task sets ask of a task definition (load balancer containers and
ports, network mode).
st.families[family] = { name=, revisions = { [n] = record }, latest = n }
A record is the TaskDefinition output shape itself (AWS casing), so describing
one is a copy.
]]
local U = require "ecsplay.sim.ecs.util"
local json = require "ecsplay.json"
local limits = require "ecsplay.sim.limits"

local D = {}

local function parse_ref(ref)
  if type(ref) ~= "string" or ref == "" then return nil end
  local body = ref
  if ref:sub(1, 4) == "arn:" then
    body = ref:match(":task%-definition/(.+)$")
    if not body then return nil end
  end
  local family, rev = body:match("^([%w_%-]+):(%d+)$")
  if family then return family, tonumber(rev) end
  if body:match("^[%w_%-]+$") then return body, nil end
  return nil
end

--[[ The record named by ref ("family", "family:rev" or an ARN). Without a
     revision: the latest ACTIVE one. `msg` is the ClientException message
     when nothing matches (it differs by operation). With `active`, an
     INACTIVE revision is refused as well. ]]
function D.find(world, ref)
  local st = U.st(world)
  local family, rev = parse_ref(ref)
  if not family then return nil end
  local f = st.families[family]
  if not f then return nil end
  if rev then return f.revisions[rev] end
  for n = f.latest, 1, -1 do
    local r = f.revisions[n]
    if r and r.status == "ACTIVE" then return r end
  end
  return nil
end

function D.resolve(world, ref, active, msg)
  local td = D.find(world, ref)
  if not td or td.status == "DELETE_IN_PROGRESS" then
    world:fail("ClientException", msg or "TaskDefinition not found.")
  end
  if active and td.status ~= "ACTIVE" then
    world:fail("ClientException", "TaskDefinition is inactive")
  end
  return td
end

------------------------------------------------------------------ what services ask of a task definition

-- Load balancer entries must name a container and port of the task definition (and existing target groups).
function D.check_load_balancers(world, td, lbs)
  for _, lb in ipairs(lbs or {}) do
    if not lb.targetGroupArn and not lb.loadBalancerName then
      world:fail("InvalidParameterException", "Either targetGroupArn or loadBalancerName must be specified for a load balancer.")
    end
    local cd
    for _, c in ipairs(td.containerDefinitions or {}) do if c.name == lb.containerName then cd = c end end
    if not cd then
      world:fail("InvalidParameterException", string.format(
        "The container %s does not exist in the task definition.", tostring(lb.containerName)))
    end
    local port_ok = false
    for _, pm in ipairs(cd.portMappings or {}) do if pm.containerPort == lb.containerPort then port_ok = true end end
    if not port_ok then
      world:fail("InvalidParameterException", string.format(
        "The container %s did not have a container port %s defined.", tostring(lb.containerName), tostring(lb.containerPort)))
    end
    local elbv2 = world.svc.elbv2
    if elbv2 and elbv2.target_group and lb.targetGroupArn then
      for _, arn in ipairs({ lb.targetGroupArn, lb.advancedConfiguration and lb.advancedConfiguration.alternateTargetGroupArn }) do
        if arn and not elbv2.target_group(world, arn) then
          world:fail("InvalidParameterException", string.format(
            "The target group with targetGroupArn %s does not exist.", arn))
        end
      end
    end
  end
end

-- FARGATE needs awsvpc; awsvpc needs a network configuration with subnets.
function D.check_network(world, td, network, launch_type)
  if launch_type == "FARGATE" and td.networkMode ~= "awsvpc" then
    world:fail("InvalidParameterException", "Task definition does not support launch_type FARGATE.")
  end
  if td.networkMode == "awsvpc" then
    local vpc = network and network.awsvpcConfiguration
    if not vpc then
      world:fail("InvalidParameterException", "Network Configuration must be provided when networkMode 'awsvpc' is specified.")
    end
    if not vpc.subnets or #vpc.subnets == 0 then
      world:fail("InvalidParameterException", "subnets can not be empty.")
    end
  end
end

------------------------------------------------------------------ operations

D.ops = {}

-- RegisterTaskDefinition's checks of the family, the containers and Fargate's requirements.
local function check_registration(world, input)
  local family = input.family
  if not family:match("^[%w_%-]+$") or #family > 255 then
    world:fail("ClientException", "Family contains invalid characters; up to 255 letters (uppercase and lowercase), numbers, hyphens, and underscores are allowed.")
  end
  if #input.containerDefinitions == 0 then
    world:fail("ClientException", "Container list cannot be empty.")
  end
  -- AWS's quotas: 10 containers, 64 KiB of task definition (its JSON)
  if #input.containerDefinitions > limits.ECS.CONTAINERS_PER_TASK_DEFINITION then
    world:fail("ClientException", "Too many containers.")
  end
  local size = #(json.encode(input) or "")
  if size > limits.ECS.TASK_DEFINITION_BYTES then
    world:fail("ClientException", string.format("Actual length: '%d'. Max allowed length is '%d' bytes.",
      size, limits.ECS.TASK_DEFINITION_BYTES))
  end
  for _, cd in ipairs(input.containerDefinitions) do
    if not cd.name or cd.name == "" then
      world:fail("ClientException", "Container.name should not be null or empty.")
    end
    if not cd.image or cd.image == "" then
      world:fail("ClientException", "Container.image should not be null or empty.")
    end
  end
  local req = input.requiresCompatibilities or {}
  for _, rc in ipairs(req) do
    if rc == "FARGATE" then
      if input.networkMode ~= "awsvpc" then
        world:fail("ClientException", "Fargate only supports network mode 'awsvpc'.")
      end
      if not input.cpu or not input.memory then
        world:fail("ClientException", "Fargate requires that 'cpu' and 'memory' be defined at the task level.")
      end
    end
  end
end

function D.ops.RegisterTaskDefinition(world, input, caller)
  local st = U.st(world)
  local family = input.family
  check_registration(world, input)
  local f = st.families[family]
  if not f then
    f = { name = family, revisions = {}, latest = 0 }
    st.families[family] = f
    st.family_order[#st.family_order + 1] = family
  end
  f.latest = f.latest + 1
  local rec = U.copy(input)
  rec.tags = nil
  rec.revision = f.latest
  rec.taskDefinitionArn = world:arn("ecs", "task-definition/" .. family .. ":" .. f.latest)
  rec.status = "ACTIVE"
  rec.registeredAt = world.now
  rec.registeredBy = string.format("arn:aws:iam::%s:root", world.account)
  rec.networkMode = input.networkMode or "bridge"
  rec.volumes = rec.volumes or {}
  rec.placementConstraints = rec.placementConstraints or {}
  local compat = { "EC2" }
  if rec.networkMode == "awsvpc" then compat[#compat + 1] = "FARGATE" end
  if rec.networkMode == "awsvpc" or rec.networkMode == "host" or rec.networkMode == "bridge" then
    compat[#compat + 1] = "MANAGED_INSTANCES"
  end
  rec.compatibilities = compat
  rec.requiresAttributes = {}
  for _, cd in ipairs(rec.containerDefinitions) do
    if cd.essential == nil then cd.essential = true end
    cd.portMappings = cd.portMappings or {}
    for _, pm in ipairs(cd.portMappings) do
      pm.protocol = pm.protocol or "tcp"
      if rec.networkMode == "awsvpc" and pm.hostPort == nil then pm.hostPort = pm.containerPort end
    end
    cd.environment = cd.environment or {}
    cd.mountPoints = cd.mountPoints or {}
    cd.volumesFrom = cd.volumesFrom or {}
    cd.cpu = cd.cpu or 0
  end
  f.revisions[f.latest] = rec
  if input.tags and #input.tags > 0 then st.tags[rec.taskDefinitionArn] = U.copy(input.tags) end
  return { taskDefinition = U.copy(rec), tags = U.copy(input.tags or {}) }
end

function D.ops.DescribeTaskDefinition(world, input)
  local st = U.st(world)
  local td = D.find(world, input.taskDefinition)
  if not td then world:fail("ClientException", "Unable to describe task definition.") end
  local out = { taskDefinition = U.copy(td) }
  if U.wants_tags(input.include) then out.tags = U.copy(st.tags[td.taskDefinitionArn] or {}) end
  return out
end

-- The families whose name starts with `prefix` (all when nil), in registration order.
local function families(st, prefix)
  local out = {}
  for _, name in ipairs(st.family_order) do
    if not prefix or name:sub(1, #prefix) == prefix then out[#out + 1] = st.families[name] end
  end
  return out
end

-- ListTaskDefinitions and ListTaskDefinitionFamilies: what `pick(family, status, list)` adds
-- from each family matching familyPrefix (status: the one asked for, ACTIVE by default).
local function from_families(world, input, pick)
  local list = {}
  for _, f in ipairs(families(U.st(world), input.familyPrefix)) do pick(f, input.status or "ACTIVE", list) end
  return list
end

function D.ops.ListTaskDefinitions(world, input)
  local list = from_families(world, input, function(f, want, out)
    for n = 1, f.latest do
      local r = f.revisions[n]
      if r and r.status == want then out[#out + 1] = r.taskDefinitionArn end
    end
  end)
  if input.sort == "DESC" then
    local rev = {}
    for i = #list, 1, -1 do rev[#rev + 1] = list[i] end
    list = rev
  end
  return U.list_answer(list, input, "taskDefinitionArns")
end

function D.ops.ListTaskDefinitionFamilies(world, input)
  local list = from_families(world, input, function(f, want, out)
    local active = false
    for n = 1, f.latest do
      if f.revisions[n] and f.revisions[n].status == "ACTIVE" then active = true end
    end
    if want == "ALL" or (want == "ACTIVE" and active) or (want == "INACTIVE" and not active) then
      out[#out + 1] = f.name
    end
  end)
  return U.list_answer(list, input, "families")
end

function D.ops.DeregisterTaskDefinition(world, input)
  local family, rev = parse_ref(input.taskDefinition)
  if not family or not rev then
    world:fail("ClientException", "Revision should not be null or empty.")
  end
  local td = D.find(world, input.taskDefinition)
  if not td or td.status == "DELETE_IN_PROGRESS" then
    world:fail("ClientException", "The specified task definition does not exist.")
  end
  if td.status == "ACTIVE" then
    td.status = "INACTIVE"
    td.deregisteredAt = world.now
  end
  return { taskDefinition = U.copy(td) }
end

function D.ops.DeleteTaskDefinitions(world, input)
  local out, failures = {}, {}
  for _, ref in ipairs(input.taskDefinitions) do
    local td = D.find(world, ref)
    if not td then
      failures[#failures + 1] = { arn = ref, reason = "TASK_DEFINITION_NOT_FOUND" }
    elseif td.status == "ACTIVE" then
      failures[#failures + 1] = { arn = td.taskDefinitionArn, reason = "The specified task definition is still in ACTIVE status. Please deregister the target and try again." }
    else
      td.status = "DELETE_IN_PROGRESS"
      td.deleteRequestedAt = world.now
      out[#out + 1] = U.copy(td)
    end
  end
  return { taskDefinitions = out, failures = failures }
end

return D
