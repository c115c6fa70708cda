-- n services' canaries at once in one process (playbooks/scenarios/fleet.lua with N = n):
-- a canary (10 → 50 → 100 %, bake 3 m, two gates every minute) on each
-- pair through ecsplay.map. Prints the simulated minutes and the AWS calls, in all and per
-- operation, for bench/run.sh's fleet table.
--   sed 's/^local N = 8$/local N = 50/' playbooks/scenarios/fleet.lua > /tmp/fleet50.lua
--   ecsplay --simulate=/tmp/fleet50.lua bench/fleet.lua n=50
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local aws = require "ecsplay.aws"
local args = ecsplay.params {
  n = { type = "integer", default = 50, help = "how many services (the scenario's N)" },
}
local list = {}
for i = 1, args.n do list[i] = i end
local t0 = math.huge
local reports = ecsplay.map(list, function(i)
  local canary_tg = ("svc%d-canary"):format(i)
  return rollout.canary {
    cluster = "production", image = "api:v2", container = "api", canary_count = 1,
    stable = { service = "svc" .. i, target_group = ("svc%d-stable"):format(i) },
    canary = { service = ("svc%d-canary"):format(i), target_group = canary_tg },
    steps = { 10, 50, 100 }, bake = "3m", interval = "1m",
    gates = {
      gate.alb_5xx_rate { target_group = canary_tg, below = 1.0 },
      gate.alb_latency { target_group = canary_tg, p = 99, below_ms = 300 },
    },
  }
end)
for i, r in ipairs(reports) do
  assert(r.status == "succeeded", ("bench: canary %d: %s"):format(i, tostring(r.status)))
end
-- from the first rollout's start: over HTTP the clock follows the server from its first answer
for _, r in ipairs(reports) do if r.started and r.started < t0 then t0 = r.started end end
print(string.format("simulated_minutes %.1f", (ecsplay.now() - t0) / 60))
print(string.format("aws_calls %d", aws.stats.calls))
print(string.format("calls_per_service %.1f", aws.stats.calls / args.n))
local per_op, names = aws.stats(), {}
for name in pairs(per_op) do names[#names + 1] = name end
table.sort(names)
for _, name in ipairs(names) do
  print(string.format("op %s %d %d", name, per_op[name].calls, per_op[name].items or 0))
end
