-- A fleet: the same canary on n services at once (`limit` at a time), as one change. A member
-- that fails rolls itself back; once failures pass `max_failures`, no member starts, and with
-- on_failure=abort_all the members still rolling are stopped (each rolls itself back) and
-- those already promoted are put back on their previous task definition, newest first.
--   ecsplay --simulate=playbooks/scenarios/fleet.lua playbooks/fleet.lua
--   ecsplay --simulate=playbooks/scenarios/fleet.lua playbooks/fleet.lua bad=5 limit=4
--     (svc5 gets api:bad, whose tasks crash: the fleet stops and puts everything back)
--   ... on_failure=continue max_failures=1 bad=2     (one failure tolerated; the rest go on)
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local revert = require "ecsplay.rollout.revert"
local a = ecsplay.params {
  n = { type = "integer", default = 8, help = "how many services: svc1 .. svc<n> (and svc<i>-canary)" },
  image = { type = "string", default = "api:v2", help = "the image to roll out" },
  bad = { type = "integer", help = "give this member api:bad instead (its tasks crash), to see a failure" },
  limit = { type = "integer", default = 4, help = "members rolling at once" },
  max_failures = { type = "integer", default = 0, help = "failures the fleet tolerates" },
  on_failure = { type = "string", default = "abort_all", one_of = { "abort_all", "continue" },
    help = "past the budget: stop and put everything back, or let running members finish" },
  cluster = { type = "string", default = "production", help = "the ECS cluster" },
  bake = { type = "duration", default = "2m", help = "how long each canary step bakes" },
}

local members = {}
for i = 1, a.n do members[i] = "svc" .. i end

local summary_ok, summary = pcall(rollout.fleet, {
  members, limit = a.limit, max_failures = a.max_failures, on_failure = a.on_failure,
  run = function(svc, i)
    local canary_tg = svc .. "-canary"
    return rollout.canary {
      name = svc, cluster = a.cluster, image = i == a.bad and "api:bad" or a.image, container = "api",
      canary_count = 1,
      stable = { service = svc, target_group = svc .. "-stable" },
      canary = { service = svc .. "-canary", target_group = canary_tg },
      steps = { 10, 50, 100 }, bake = a.bake, interval = "1m",
      gates = {
        gate.alb_5xx_rate { target_group = canary_tg, below = 1.0 },
        gate.alb_latency { target_group = canary_tg, p = 99, below_ms = 300 },
      },
    }
  end,
  -- a promoted member back on the version it ran before (abort_all): its canary's own revert
  -- (rollout/revert.lua), both services as they were, capacity before traffic
  undo = function(svc, report)
    revert.succeeded(report, "the fleet failed: putting back " .. svc)
  end,
})
local s = summary_ok and summary or (type(summary) == "table" and summary.report)
if s then
  for _, m in ipairs(s.members) do
    print(string.format("fleet: %-8s %-11s %s", m.name, m.status,
      m.duration and ecsplay.duration.format(m.duration) or "-"))
  end
end
if not summary_ok then error(summary, 0) end
