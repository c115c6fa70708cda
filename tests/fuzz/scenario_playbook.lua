-- The playbook tests/fuzz/fuzz_scenarios.py runs on each fuzzed scenario: it reads the world
-- (every cluster's services), lets 15 simulated minutes pass (ticks, alarms, faults, images'
-- behaviours all run) and reads it again.
local ecs, elbv2 = require "ecsplay.ecs", require "ecsplay.elbv2"
local function census()
  local services, tasks = 0, 0
  for _, cluster in ipairs(ecs.list_clusters{}.clusterArns) do
    local arns = ecs.list_services{ cluster = cluster, maxResults = 10 }.serviceArns
    if #arns > 0 then
      for _, s in ipairs(ecs.describe_services{ cluster = cluster, services = arns }.services) do
        services = services + 1
        tasks = tasks + (s.runningCount or 0)
      end
    end
  end
  return services, tasks, #elbv2.describe_target_groups{}.TargetGroups
end
print("before", census())
ecsplay.sleep("15m")
print("after", census())
