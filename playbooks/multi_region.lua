-- api, Region by Region: a canary in us-east-1, then eu-west-1, then ap-southeast-1, each wave
-- in its own session (aws.session), with a soak between waves: the Region just promoted must
-- keep its gates passing before the next one starts. The Regions of one wave go out as a
-- fleet (rollout.fleet, on_failure = "abort_all"): a failure in one stops the others of its
-- wave at once (each rolls itself back; one already promoted is put back). A failure anywhere
-- rolls back the failing wave and then every wave already promoted, newest first; the waves
-- after it never start. Before wave 1, every Region of `waves=` is checked (a Region name,
-- listed once, its session made and the cluster read there): a bad one is bad input (exit 2)
-- and nothing changes.
--   ecsplay --simulate=playbooks/scenarios/multi_region.lua playbooks/multi_region.lua
--   ecsplay --simulate=playbooks/scenarios/multi_region.lua playbooks/multi_region.lua \
--     waves=us-east-1,eu-west-1+ap-southeast-1      (the last two together, in one wave)
--   ecsplay playbooks/multi_region.lua role_arn=arn:aws:iam::210987654321:role/deploy external_id=...
local aws, rollout, gate = require "ecsplay.aws", require "ecsplay.rollout", require "ecsplay.gate"
local revert = require "ecsplay.rollout.revert"
local errors = require "ecsplay.errors"
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

local function bad_waves(region, msg)
  error(errors.bad_input(string.format("waves: %s%s", region and (region .. ": ") or "", msg), "waves"), 0)
end

local waves, wave_of = {}, {}
for wave in a.waves:gmatch("[^,%s]+") do
  local regions = {}
  for region in wave:gmatch("[^+]+") do
    if wave_of[region] then
      bad_waves(region, string.format("listed twice (wave %d and wave %d)", wave_of[region], #waves + 1))
    end
    wave_of[region] = #waves + 1
    regions[#regions + 1] = region
  end
  waves[#waves + 1] = regions
end
if #waves == 0 then bad_waves(nil, "expected Regions such as us-east-1,eu-west-1+ap-southeast-1") end

--[[ Every Region up front, before wave 1 changes anything: its session (a Region name
     aws.session knows, the role assumed there) and one read of the cluster in it, so a
     mistyped Region, one the account cannot use or one without the cluster is bad input
     (exit 2) now rather than after the waves before it were promoted. A network failure
     stays what it is. ]]
local sessions = {}
local function check_region(region)
  local ok, s = pcall(aws.session, { region = region, role_arn = a.role_arn, external_id = a.external_id })
  if not ok then
    if errors.is(s, "bad_input") and s.field == "region" then
      bad_waves(region, (s.message:gsub("^aws%.session: region: ", "")))
    end
    error(s, 0)
  end
  sessions[region] = s
  local rok, out = s:pcall("ecs", "DescribeClusters", { clusters = { a.cluster } })
  if not rok then
    if errors.is(out, { "service", "credentials" }) then
      bad_waves(region, "cannot read cluster " .. a.cluster .. " there: " .. errors.describe(out))
    end
    error(out, 0)
  end
  local c = out.clusters and out.clusters[1]
  if not c or c.status ~= "ACTIVE" then
    bad_waves(region, string.format("no ACTIVE cluster %q there (check waves= and cluster=)", a.cluster))
  end
end
local regions = {}
for _, wave in ipairs(waves) do
  for _, region in ipairs(wave) do regions[#regions + 1] = region end
end
ecsplay.map(regions, check_region)

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
  local s = sessions[region]
  local name = string.format("%s in %s", a.service, region)
  local report = rollout.canary {
    session = s, name = name,
    cluster = a.cluster, image = a.image, container = a.service,
    stable = { service = a.service, target_group = a.stable_tg },
    canary = { service = a.canary, target_group = a.canary_tg },
    steps = { 10, 50, 100 }, bake = a.bake, interval = "1m", gates = gates(s, a.canary_tg),
  }
  local forget = ecsplay.on_abort(function(reason)
    revert.succeeded(report, reason)
  end, string.format("%s back to the version it ran before", name))
  return { region = region, session = s, report = report, forget = forget }
end

-- A wave: its Regions as a fleet; one failing stops the others (abort_all), and one already
-- promoted is put back at once (undo; its on_abort is then not needed).
local function wave_error(i, wave, err)
  local lines = {}
  for _, m in ipairs(err.report.members) do
    if m.error then lines[#lines + 1] = m.name .. ": " .. m.error end
  end
  local fields = {}
  for k, v in pairs(err) do fields[k] = v end
  fields.message = string.format("wave %d (%s) failed: %s", i, table.concat(wave, " + "),
    table.concat(lines, "; "))
  return errors.new(err.kind, fields)
end

local function roll_wave(i, wave)
  local ok, summary = pcall(rollout.fleet, { wave, run = roll, on_failure = "abort_all",
    name = function(region) return string.format("%s in %s", a.service, region) end,
    undo = function(_, w)
      revert.succeeded(w.report, "another Region of its wave failed")
      w.forget()
    end })
  if ok then
    local done = {}
    for _, m in ipairs(summary.members) do done[#done + 1] = m.report end
    return done
  end
  if errors.is(summary, { "FleetFailed", "FleetRollbackFailed" }) then error(wave_error(i, wave, summary), 0) end
  error(summary, 0)
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
  local done = roll_wave(i, wave)
  for _, w in ipairs(done) do results[#results + 1] = w end
  if i < #waves and a.soak > 0 then soak(done) end
end
local parts = {}
for _, w in ipairs(results) do parts[#parts + 1] = w.region .. " " .. w.report.status end
print("multi_region: " .. table.concat(parts, ", "))
