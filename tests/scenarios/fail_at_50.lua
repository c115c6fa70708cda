-- An image that is healthy until its target group gets half of the load balancer's
-- traffic, then answers a fifth of its requests with a 5xx; CloudWatch publishes each
-- minute three minutes after it ends. tests/lua/test_gate_windows.lua:
--   ecsplay --simulate=tests/scenarios/fail_at_50.lua playbooks/canary.lua image=api:fail50
-- is rolled back at the 50 % step, never reaching 100 %.
return {
  metrics = { delay = "3m" },
  images = {
    ["api:fail50"] = {
      error_rate = function(ctx) return (ctx.weight or 0) >= 50 and 0.2 or 0.001 end,
    },
  },
}
