-- lint fixture: gate options checked by the gates' own constructors
local gate = require "ecsplay.gate"
local tg = ecsplay.args.tg
local gates = {
  gate.alb_5xx_rate { target_group = "api-canary", below = 120 },
  gate.alb_latency { target_group = tg, p = 99, below_ms = 300, windw = "5m" },
  gate.alarm { "api-5xx-high", 5 },
  gate.alb_5xx { target_group = "api-canary", below = 1 },
  gate.alb_healthy_hosts { target_group = tg, at_least = -1 },
  gate.alb_latency { target_group = "api-canary", p = 99, below_ms = 300, window = "5 min" },
  gate.check("fleet", function() return true end, { failure_limit = 0 }),
}
return gates
