-- api, Region by Region: a canary in us-east-1, then eu-west-1, then ap-southeast-1, each wave
-- in its own session (aws.session), with a soak between waves: the Region just promoted must
-- keep its gates passing before the next one starts. A failure anywhere rolls back the
-- failing wave (its canary's own rollback) and then every wave already promoted, newest
-- first; the waves after it never start.
--   ecsplay --simulate=playbooks/scenarios/multi_region.lua playbooks/multi_region.lua
--   ecsplay --simulate=playbooks/scenarios/multi_region.lua playbooks/multi_region.lua \
--     waves=us-east-1,eu-west-1+ap-southeast-1      (the last two together, in one wave)
--   ecsplay playbooks/multi_region.lua role_arn=arn:aws:iam::210987654321:role/deploy external_id=...
local aws, rollout, gate = require "ecsplay.aws", require "ecsplay.rollout", require "ecsplay.gate"
local revert = require "ecsplay.rollout.revert"
local a = ecsplay.params {
  image = { type = "string", default = "api:v2", help = "the image to roll out" },
  waves = { type = "string", default = "us-east-1,eu-west-1,ap-southeast-1",
    help = "the Regions in order, one wave each (comma-separated); Regions joined by + go out together" },
  cluster = { type = "string", default = "production", help = "the ECS cluster (the same name in every Region)" },
  service = { type = "string", default = "api", help = "the stable service" },
  canary = { type = "string", default = "api-canary", help = "the canary service" },
  stable_tg = { type = "string", default = "api-stable", help = "the stable service's target group" },
  canary_tg = { type = "string", default = "api-canary", help = "the canary service's target group" },
  alarm = { type = "string", default = "api-5xx-high", help = "a CloudWatch alarm that must not be in ALARM" },
  bake = { type = "duration", default = "3m", help = "how long each canary step bakes" },
  soak = { type = "duration", default = "5m",
    help = "how long a promoted wave must stay healthy before the next starts" },
  role_arn = { type = "string", help = "a role to assume in every Region (cross-account deploys)" },
  external_id = { type = "string", help = "the external id the role's trust policy requires" },
}

local waves = {}
for wave in a.waves:gmatch("[^,%s]+") do
  local regions = {}
  for region in wave:gmatch("[^+]+") do regions[#regions + 1] = region end
  waves[#waves + 1] = regions
end

-- The gates of a Region: its canary's during the rollout; its stable side's during the soak.
local function gates(s, tg)
  return {
    gate.alb_5xx_rate { target_group = tg, below = 1.0, session = s },
    gate.alb_latency { target_group = tg, p = 99, below_ms = 300, session = s },
    gate.alarm { a.alarm, session = s },
  }
end

-- One Region: the canary; once promoted, an on_abort that puts the old version back if a
-- later wave fails (ecsplay carries out on_abort handlers newest first when the run fails):
-- the canary's own revert (rollout/revert.lua), which puts both services back as they were,
-- capacity before traffic, in the Region's session.
local function roll(region)
  local s = aws.session { region = region, role_arn = a.role_arn, external_id = a.external_id }
  local name = string.format("%s in %s", a.service, region)
  local report = rollout.canary {
    session = s, name = name,
    cluster = a.cluster, image = a.image, container = a.service,
    stable = { service = a.service, target_group = a.stable_tg },
    canary = { service = a.canary, target_group = a.canary_tg },
    steps = { 10, 50, 100 }, bake = a.bake, interval = "1m", gates = gates(s, a.canary_tg),
  }
  ecsplay.on_abort(function(reason)
    revert.succeeded(report, reason)
  end, string.format("%s back to the version it ran before", name))
  return { region = region, session = s, report = report }
end

-- The soak: the stable side of each Region of the wave just promoted, measured every minute
-- for `soak` by the gate tracker (as a bake does); its abort stops the run, which rolls every
-- wave back.
local function soak(done)
  local started = ecsplay.now()
  local list = {}
  for _, w in ipairs(done) do
    for _, g in ipairs(gates(w.session, a.stable_tg)) do
      g.name = string.format("%s %s", w.region, g.name)
      list[#list + 1] = g
    end
  end
  gate.prepare_all(list, {})
  local tracker = gate.tracker(list, { failure_limit = 1, inconclusive_limit = 3, error_limit = 3 })
  while ecsplay.now() < started + a.soak do
    ecsplay.sleep(math.min(60, started + a.soak - ecsplay.now()))
    tracker:measure { now = ecsplay.now(), step_started = started, bake = a.soak, interval = 60 }
    local verdict, reason = tracker:verdict()
    if verdict == "abort" then error("soak after wave: " .. tostring(reason), 0) end
  end
end

local results = {}
for i, wave in ipairs(waves) do
  local done = ecsplay.map(wave, roll)
  for _, w in ipairs(done) do results[#results + 1] = w end
  if i < #waves and a.soak > 0 then soak(done) end
end
local parts = {}
for _, w in ipairs(results) do parts[#parts + 1] = w.region .. " " .. w.report.status end
print("multi_region: " .. table.concat(parts, ", "))
