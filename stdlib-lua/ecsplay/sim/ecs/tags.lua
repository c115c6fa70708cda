--[[
Tags of the simulated ECS resources (clusters, services, tasks, task
definitions, task sets): TagResource, UntagResource, ListTagsForResource.
Stored in world.state.ecs.tags: resource ARN -> { {key=, value=}, ... }.
]]
local U = require "ecsplay.sim.ecs.util"
local TD = require "ecsplay.sim.ecs.taskdefs"

local G = {}
G.ops = {}

local function resource_exists(world, arn)
  local st = U.st(world)
  local _, _, kind, rest = U.parse_arn(arn)
  if not kind or rest == "" then return false end
  if kind == "cluster" then
    local c = st.clusters[rest]
    if not c or c.status ~= "ACTIVE" then U.cluster_not_found(world) end
    return true
  elseif kind == "service" then
    local cname, sname = rest:match("^([^/]+)/([^/]+)$")
    local c = cname and st.clusters[cname]
    return c ~= nil and c.services[sname] ~= nil
  elseif kind == "task" then return st.tasks[arn] ~= nil
  elseif kind == "task-definition" then return TD.find(world, arn) ~= nil
  elseif kind == "task-set" then return st.task_sets[arn] ~= nil
  end
  return false
end

-- TagResource and UntagResource refuse an unknown resource alike (ListTagsForResource words it otherwise).
local function check_taggable(world, arn)
  if not resource_exists(world, arn) then
    world:fail("ResourceNotFoundException", "The specified resource wasn't found.")
  end
end

function G.ops.TagResource(world, input)
  local st = U.st(world)
  check_taggable(world, input.resourceArn)
  local tags = st.tags[input.resourceArn] or {}
  for _, t in ipairs(input.tags) do
    local found = false
    for _, old in ipairs(tags) do if old.key == t.key then old.value = t.value; found = true end end
    if not found then tags[#tags + 1] = { key = t.key, value = t.value } end
  end
  if #tags > 50 then world:fail("InvalidParameterException", "A resource can have at most 50 tags.") end
  st.tags[input.resourceArn] = tags
  return {}
end

function G.ops.UntagResource(world, input)
  local st = U.st(world)
  check_taggable(world, input.resourceArn)
  local drop = {}
  for _, k in ipairs(input.tagKeys) do drop[k] = true end
  local keep = {}
  for _, t in ipairs(st.tags[input.resourceArn] or {}) do if not drop[t.key] then keep[#keep + 1] = t end end
  st.tags[input.resourceArn] = keep
  return {}
end

function G.ops.ListTagsForResource(world, input)
  local st = U.st(world)
  if not resource_exists(world, input.resourceArn) then
    world:fail("InvalidParameterException", "The specified resource is not found.")
  end
  return { tags = U.copy(st.tags[input.resourceArn] or {}) }
end

return G
