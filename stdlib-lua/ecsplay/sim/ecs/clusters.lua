--[[
Clusters of the simulated ECS: CreateCluster, DescribeClusters, ListClusters,
DeleteCluster. A cluster holds its services (by name, in creation order) and
its tasks.
]]
local U = require "ecsplay.sim.ecs.util"
local limits = require "ecsplay.sim.limits"
local T = require "ecsplay.sim.ecs.tasks"

local C = {}
C.ops = {}

local function describe_cluster(world, c, include)
  local st = U.st(world)
  local running, pending, services = 0, 0, 0
  for _, task in ipairs(c.tasks) do
    if T.running(task) then running = running + 1 elseif T.pending(task) then pending = pending + 1 end
  end
  for _, n in ipairs(c.service_order) do
    local s = c.services[n]
    if s and s.status == "ACTIVE" then services = services + 1 end
  end
  local out = {
    clusterArn = c.arn, clusterName = c.name, status = c.status,
    registeredContainerInstancesCount = 0, runningTasksCount = running, pendingTasksCount = pending,
    activeServicesCount = services, statistics = {}, tags = {},
    settings = U.copy(c.settings), capacityProviders = U.copy(c.capacity_providers),
    defaultCapacityProviderStrategy = U.copy(c.default_cps),
  }
  if include and include.TAGS then out.tags = U.copy(st.tags[c.arn] or {}) end
  return out
end


function C.ops.CreateCluster(world, input)
  local st = U.st(world)
  local name = input.clusterName or "default"
  if not name:match("^[%w_%-]+$") or #name > 255 then
    world:fail("InvalidParameterException",
      "Cluster name must be 1-255 characters: letters (uppercase and lowercase), numbers, underscores and hyphens.")
  end
  local c = st.clusters[name]
  if c and c.status == "ACTIVE" then return { cluster = describe_cluster(world, c) } end
  if not c and #st.cluster_order >= limits.ECS.CLUSTERS then
    world:fail("InvalidParameterException", string.format("Clusters per account exceeds limit "
      .. "(at most %d clusters).", limits.ECS.CLUSTERS))
  end
  c = {
    name = name, arn = world:arn("ecs", "cluster/" .. name), status = "ACTIVE",
    services = {}, service_order = {}, tasks = {},
    settings = U.copy(input.settings or { { name = "containerInsights", value = "disabled" } }),
    capacity_providers = U.copy(input.capacityProviders or {}),
    default_cps = U.copy(input.defaultCapacityProviderStrategy or {}),
  }
  if not st.clusters[name] then st.cluster_order[#st.cluster_order + 1] = name end
  st.clusters[name] = c
  if input.tags and #input.tags > 0 then st.tags[c.arn] = U.copy(input.tags) end
  return { cluster = describe_cluster(world, c, { TAGS = true }) }
end

function C.ops.DescribeClusters(world, input)
  local st = U.st(world)
  local include = {}
  for _, f in ipairs(input.include or {}) do include[f] = true end
  local refs = input.clusters
  if not refs or #refs == 0 then refs = { "default" } end
  local out, failures = U.describe_each(refs,
    function(ref) return st.clusters[U.short_name(ref)] end,
    function(c) return describe_cluster(world, c, include) end,
    -- a cluster ARN is reported rebuilt from its name, whatever form the reference had
    function(ref) return world:arn("ecs", "cluster/" .. U.short_name(ref)) end)
  return { clusters = out, failures = failures }
end

function C.ops.ListClusters(world, input)
  local st = U.st(world)
  local list = {}
  for _, name in ipairs(st.cluster_order) do
    local c = st.clusters[name]
    if c.status == "ACTIVE" then list[#list + 1] = c.arn end
  end
  return U.list_answer(list, input, "clusterArns")
end

function C.ops.DeleteCluster(world, input)
  local c = U.cluster(world, input.cluster)
  for _, n in ipairs(c.service_order) do
    local s = c.services[n]
    if s and s.status ~= "INACTIVE" then
      world:fail("ClusterContainsServicesException", "The Cluster cannot be deleted while Services are active.")
    end
  end
  for _, task in ipairs(c.tasks) do
    if task.last ~= "STOPPED" then
      world:fail("ClusterContainsTasksException", "The Cluster cannot be deleted while Tasks are active.")
    end
  end
  c.status = "INACTIVE"
  return { cluster = describe_cluster(world, c) }
end

return C
