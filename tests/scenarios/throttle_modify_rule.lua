-- ELBv2 throttles every ModifyRule for two minutes in the middle of a canary: from +17 min to
-- +19 min, from the moment playbooks/canary.lua shifts to 50 % (step 3) in the default world.
-- The shift is retried, with the same budget as its undo, until the throttle ends; the
-- rollout then continues and promotes. tests/lua/test_throttled_shift.lua:
--   ecsplay --simulate=tests/scenarios/throttle_modify_rule.lua playbooks/canary.lua
return {
  faults = {
    { service = "elbv2", operation = "ModifyRule", error = "Throttling", from = "17m", to = "19m" },
  },
}
