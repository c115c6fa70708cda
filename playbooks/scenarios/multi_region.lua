-- The world of playbooks/multi_region.lua: the default world (docs/simulator.md) in three
-- Regions of one account, each with its own api, api-canary, target groups and alarm.
--   ecsplay --simulate=playbooks/scenarios/multi_region.lua playbooks/multi_region.lua
return {
  regions = { "us-east-1", "eu-west-1", "ap-southeast-1" },
}
