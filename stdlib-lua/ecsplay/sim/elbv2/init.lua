--[[
The simulated Elastic Load Balancing v2 (Application Load Balancers only): the
service module the simulator loads (`{ name, init, tick, ops }`), the tag
operations, and the functions other simulated services call. Split by concern:
  state.lua           the state, look-ups, paging, names, tags, attributes, routing cache
  actions.lua         rule actions and conditions: reading requests, writing answers
  load_balancers.lua  load balancers and their attributes
  target_groups.lua   target groups and their attributes
  targets.lua         targets, health checks (the tick), registration by ECS
  listeners.lua       listeners and rules
  routing.lua         forward weights (get_forward/set_forward) and the traffic split
  hosts.lua           host-based traffic: which rule takes each host's requests

Cross-service functions (world.svc.elbv2.X): register, deregister,
target_group, target_health, healthy_count, get_forward, set_forward, traffic,
routed, production_listener, arn_suffix.
]]
local tables = require "ecsplay.util.tables"
local state = require "ecsplay.sim.elbv2.state"
local load_balancers = require "ecsplay.sim.elbv2.load_balancers"
local target_groups = require "ecsplay.sim.elbv2.target_groups"
local targets = require "ecsplay.sim.elbv2.targets"
local listeners = require "ecsplay.sim.elbv2.listeners"
local routing = require "ecsplay.sim.elbv2.routing"

local M = { name = "elbv2" }

function M.init(world)
  return state.new_state()
end

M.tick = targets.tick

---------------------------------------------------------------- tags

-- Every ARN of a tag request must name a resource; AWS answers with that kind's not-found error.
local function resource_exists(world, arn)
  local s = state.st(world)
  if s.lb_by_arn[arn] or s.tg_by_arn[arn] or s.listener_by_arn[arn] or s.rule_by_arn[arn] then return true end
  if arn:find(":targetgroup/", 1, true) then world:fail("TargetGroupNotFound", "Target groups '" .. arn .. "' not found") end
  if arn:find(":listener%-rule/") then world:fail("RuleNotFound", "One or more rules not found") end
  if arn:find(":listener/", 1, true) then world:fail("ListenerNotFound", "Listener '" .. arn .. "' not found") end
  world:fail("LoadBalancerNotFound", "Load balancer '" .. arn .. "' not found")
end

local tags = { ops = {} }

function tags.ops.AddTags(world, input)
  for _, arn in ipairs(input.ResourceArns or {}) do resource_exists(world, arn) end
  for _, arn in ipairs(input.ResourceArns or {}) do state.add_tags(world, arn, input.Tags) end
  return {}
end

function tags.ops.RemoveTags(world, input)
  local s = state.st(world)
  for _, arn in ipairs(input.ResourceArns or {}) do resource_exists(world, arn) end
  for _, arn in ipairs(input.ResourceArns or {}) do
    local list = s.tags[arn] or {}
    for _, key in ipairs(input.TagKeys or {}) do
      for i = #list, 1, -1 do if list[i].Key == key then table.remove(list, i) end end
    end
  end
  return {}
end

function tags.ops.DescribeTags(world, input)
  local s = state.st(world)
  local out = {}
  for _, arn in ipairs(input.ResourceArns or {}) do
    resource_exists(world, arn)
    out[#out + 1] = { ResourceArn = arn, Tags = tables.copy(s.tags[arn] or {}) }
  end
  return { TagDescriptions = out }
end

M.ops = {}
for _, part in ipairs({ load_balancers, target_groups, targets, listeners, tags }) do
  for name, fn in pairs(part.ops) do M.ops[name] = fn end
end

---------------------------------------------------------------- cross-service

M.register = targets.register
M.deregister = targets.deregister
M.target_health = targets.target_health
M.healthy_count = targets.healthy_count
M.health_version = targets.health_version
M.get_forward = routing.get_forward
M.set_forward = routing.set_forward
M.traffic = routing.traffic
M.routed = routing.routed
M.production_listener = routing.production_listener
M.arn_suffix = state.arn_suffix

--[[ target_group(world, arn_or_name) -> the target group's state table or nil:
     { arn, name, port, protocol, hc = {interval, healthy, ...}, attrs = {key=value},
       targets = { ["id:port"] = { id, port, task_arn, state, reason, ... } },
       target_list = { "id:port", ... } (registration order) } ]]
function M.target_group(world, arn_or_name)
  local s = state.st(world)
  return s.tg_by_arn[arn_or_name] or s.tg_by_name[arn_or_name]
end

return M
