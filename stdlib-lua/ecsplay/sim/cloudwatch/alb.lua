--[[
The world's traffic model, published as the Application Load Balancer metrics
in CloudWatch's AWS/ApplicationELB namespace, one minute at a time.

Each minute, for every target group a load balancer routes to:
  requests  = the rate ELBv2 routes to it (elbv2.traffic: listener rates x
              forward weights) x 60, with 2 % normal noise
  split     over its healthy targets, grouped by the image their ECS task runs
  errors    = sum over images of share x error_rate (the image's behaviour,
              evaluated with ctx = { t = seconds since the image first ran,
              weight = the target group's percent of the traffic, now }),
              with Poisson-like noise
  latency   = a lognormal per image from its p50/p99, mixed by share
              (TargetResponseTime keeps the mixture, so percentiles are exact)
Published: HealthyHostCount, UnHealthyHostCount, RequestCount,
HTTPCode_Target_2XX/5XX_Count, TargetResponseTime per (TargetGroup,
LoadBalancer); RequestCount and the 5XX counts per LoadBalancer. No requests:
no request datapoints, as AWS. Traffic but no healthy target: every request
is an HTTPCode_ELB_5XX_Count (the simulator does not model ALB's fail-open).

Synthesised when read, not when published. What a minute's numbers depend on
is small and changes rarely: per target group its load balancer, request rate
and weight, and its healthy targets counted by image (with when each image
first ran). The tick records only that, as runs (a new entry when something
changed), and creates the series the minute publishes (so ListMetrics lists
them in the order AWS's publishing would); the values are computed when a
query or an alarm reads a minute of a series: a pure function of (target
group, minute) and its recorded inputs, so the numbers are the same whatever
order, or however late, they are asked for. A world of a thousand target
groups that nobody reads costs no noise draws and keeps no samples.

Noise comes from world:noise keyed by (target group, minute, what). Each
minute's datapoints become visible the publishing delay (state.delay, the
scenario's metrics.delay) after the minute ends.

Why samples are stamped at the start of their minute: CloudWatch labels a
datapoint with the start of its period, and a tick at 10:05:00 describes the
minute 10:04:00-10:05:00.

State (world.state.cloudwatch.alb): from (the first minute published), tgs
(target group ARN -> { runs = { {m=, inp=} ... }, series =, arn =, dim = }), lbs (load
balancer dimension -> { tgs = set of target group ARNs, series = }), active
(ARNs whose latest run has inputs). Synthesised minutes are kept outside the
state (world.memo.alb, a ring per target group and load balancer), as the
values can always be computed again.
]]
local stats = require "ecsplay.sim.cloudwatch.stats"
local store = require "ecsplay.sim.cloudwatch.store"

local M = {}

M.NAMESPACE = "AWS/ApplicationELB"
local NS = M.NAMESPACE

-- Synthesised minutes remembered per target group (and load balancer): enough for the windows
-- gates and alarms read again minute after minute (eight minutes: a fleet's thousands
-- of rings are memory); older minutes are computed again, the same, if asked.
local RING = 8

local COUNT_METRICS = { HealthyHostCount = true, UnHealthyHostCount = true, RequestCount = true,
  HTTPCode_ELB_5XX_Count = true, HTTPCode_Target_5XX_Count = true, HTTPCode_Target_2XX_Count = true }

local function alb_state(world)
  local s = store.st(world)
  local a = s.alb
  if not a then
    a = { tgs = {}, lbs = {}, active = {} }
    s.alb = a
  end
  return a
end

---------------------------------------------------------------- synthesis (on read)

local function noisy_count(world, expected, ...)
  if expected <= 0 then return 0 end
  local v = expected + math.sqrt(expected) * world:normal(...)
  return math.max(0, math.floor(v + 0.5))
end

-- The minute's requests to a target group receiving `rps` (the draw is keyed by group and minute).
local function request_count(world, tg_arn, m, rps)
  if rps <= 0 then return 0 end
  return math.max(0, math.floor(rps * 60 * (1 + 0.02 * world:normal(tg_arn, m, "RequestCount")) + 0.5))
end

--[[ Does a target group receiving `rps` get any request in minute m? Without a draw when the
     rate makes it certain: the noise factor 1 + 0.02 z is at least 0.85 (Box-Muller over
     draws >= 1e-12 keeps |z| < 7.5), so rps x 60 x 0.85 >= 0.5 always rounds to one or more. ]]
local function any_requests(world, tg_arn, m, rps)
  if rps <= 0 then return false end
  if rps * 60 * 0.85 >= 0.5 then return true end
  return request_count(world, tg_arn, m, rps) > 0
end

-- The lognormal (mu, sigma; seconds) of an image's latency from its behaviour's p50 and p99 (ms).
local function latency_dist(world, b, ctx, image, ...)
  local what = "latency_ms of " .. image
  local lat = world:eval(b.latency_ms, ctx, what) or {}
  local p50 = world:eval(lat.p50, ctx, what .. ".p50") or 40
  local p99 = world:eval(lat.p99, ctx, what .. ".p99") or math.max(p50 * 3, p50 + 1)
  p50 = math.max(p50, 0.001)
  p99 = math.max(p99, p50 * 1.0001)
  local sigma = (math.log(p99) - math.log(p50)) / stats.probit(0.99)
  local mu = math.log(p50 / 1000) + 0.02 * world:normal(...)
  return mu, math.max(sigma, 1e-3)
end

--[[ The minute's answers of the healthy targets to `requests`: the expected errors and the
     TargetResponseTime sample (a lognormal mixture over images, weighted by their share). ]]
local function answers(world, tg_arn, inp, m, requests)
  local expected_errors, dists, sum, lo, hi = 0, {}, 0, math.huge, 0
  local by_image = inp.by_image
  for i = 1, #by_image, 3 do
    local image, count, first = by_image[i], by_image[i + 1], by_image[i + 2]
    local share = requests * count / inp.healthy
    local b = world:behaviour(image)
    local ctx = { t = m - (first or m), weight = inp.weight, now = m }
    local rate = tonumber(world:eval(b.error_rate, ctx, "error_rate of " .. image)) or 0
    rate = math.min(1, math.max(0, rate))
    expected_errors = expected_errors + share * rate
    local mu, sigma = latency_dist(world, b, ctx, image, tg_arn, m, image, "latency")
    dists[#dists + 1] = { mu, sigma, share }
    sum = sum + share * math.exp(mu + sigma * sigma / 2)
    lo = math.min(lo, math.exp(mu - 3 * sigma))
    hi = math.max(hi, math.exp(mu + 3.7 * sigma))
  end
  return expected_errors, { n = requests, sum = sum, min = lo, max = hi, dists = dists }
end

-- One target group's minute [m-60, m) from its inputs: { [metric] = value } (what it publishes).
local function synth_tg(world, tg_arn, inp, m)
  local rec = { HealthyHostCount = inp.healthy, UnHealthyHostCount = inp.unhealthy }
  local requests = request_count(world, tg_arn, m, inp.rps)
  if requests <= 0 then return rec end
  rec.RequestCount = requests
  if inp.healthy == 0 then
    rec.HTTPCode_ELB_5XX_Count = requests
    return rec
  end
  local expected_errors, latency = answers(world, tg_arn, inp, m, requests)
  local errs = math.min(requests, noisy_count(world, expected_errors, tg_arn, m, "5xx"))
  rec.HTTPCode_Target_5XX_Count = errs
  rec.HTTPCode_Target_2XX_Count = requests - errs
  rec.TargetResponseTime = latency
  return rec
end

-- The recorded inputs of a target group at minute m (nil: no load balancer routed to it).
local function inputs_at(tg, m)
  local runs = tg and tg.runs
  if not runs then return nil end
  local lo, hi = 1, #runs
  if hi == 0 or runs[1].m > m then return nil end
  while lo < hi do
    local mid = (lo + hi + 1) // 2
    if runs[mid].m <= m then lo = mid else hi = mid - 1 end
  end
  return runs[lo].inp or nil
end

-- The ring of synthesised minutes of `key` (outside the world's state: it can be recomputed).
local function memo_ring(world, key)
  local memo = world.memo.alb
  if not memo then memo = {} world.memo.alb = memo end
  local ring = memo[key]
  if not ring then ring = {} memo[key] = ring end
  return ring
end

-- A ring is flat (slot k: minute at 2k+1, record at 2k+2): no table per remembered minute.
local function remembered(world, key, m, make)
  local ring = memo_ring(world, key)
  local at = (m // 60) % RING * 2 + 1
  if ring[at] == m then return ring[at + 1] end
  local rec = make()
  ring[at], ring[at + 1] = m, rec
  return rec
end

local function tg_minute(world, a, tg_arn, m)
  local inp = inputs_at(a.tgs[tg_arn], m)
  if not inp then return nil, nil end
  return remembered(world, tg_arn, m, function() return synth_tg(world, tg_arn, inp, m) end), inp
end

-- A load balancer's minute: the sums over the target groups it routed to in that minute.
local function lb_minute(world, a, lb_dim, m)
  local lb = a.lbs[lb_dim]
  if not lb then return nil end
  return remembered(world, "lb " .. lb_dim, m, function()
    local req, t5, e5 = 0, 0, 0
    for tg_arn in pairs(lb.tgs) do
      local rec, inp = tg_minute(world, a, tg_arn, m)
      if rec and inp.lb_dim == lb_dim then
        req = req + (rec.RequestCount or 0)
        t5 = t5 + (rec.HTTPCode_Target_5XX_Count or 0)
        e5 = e5 + (rec.HTTPCode_ELB_5XX_Count or 0)
      end
    end
    local rec = {}
    if req > 0 then rec.RequestCount, rec.HTTPCode_Target_5XX_Count = req, t5 end
    if e5 > 0 then rec.HTTPCode_ELB_5XX_Count = e5 end
    return rec
  end)
end

-- A sample as store.put would have stored it (sim/cloudwatch/stats.lua describes samples).
local function sample(name, value, t, visible)
  if COUNT_METRICS[name] then
    return { t = t, n = 1, sum = value, min = value, max = value, vals = { { value, 1 } }, unit = "Count",
      visible = visible }
  end
  return { t = t, n = value.n, sum = value.sum, min = value.min, max = value.max, dists = value.dists,
    unit = "Seconds", visible = visible }
end

--[[ The samples of a series of this model stamped in [from, stop), oldest first, leaving out
     the minutes not yet visible at `now` (nil: all published ones). store.buckets reads them. ]]
function M.samples(world, ser, from, stop, now)
  local s = store.st(world)
  local a = s.alb
  local out = {}
  if not (a and a.from and s.last_minute) then return out end
  local delay = s.delay or 0
  local first = math.max(a.from, math.ceil(from / 60) * 60 + 60)
  local last = math.min(s.last_minute, math.ceil(stop / 60) * 60)
  if now then last = math.min(last, math.floor((now - delay) / 60) * 60) end
  for m = first, last, 60 do
    if m - 60 < stop then
      local rec
      if ser.lazy.lb then
        rec = lb_minute(world, a, ser.lazy.lb, m)
      else
        local inp
        rec, inp = tg_minute(world, a, ser.lazy.tg, m)
        if inp and inp.lb_dim ~= ser.lazy.lb_dim then rec = nil end
      end
      local v = rec and rec[ser.name]
      if v ~= nil then out[#out + 1] = sample(ser.name, v, m - 60, m + delay) end
    end
  end
  return out
end

store.register_source(NS, M.samples)

---------------------------------------------------------------- recording (the tick)

-- The image an ECS task runs (the simulated ECS's task_image; a stand-in's task_info will do).
local function task_image(world, ecs, task_arn)
  if not (task_arn and ecs) then return nil end
  if ecs.task_image then return ecs.task_image(world, task_arn) end
  local info = ecs.task_info and ecs.task_info(world, task_arn)
  return info and info.image
end

--[[ A target group's inputs at this minute: its routing and healthy targets counted by image,
     by_image = { image, count, first start, ... } in image order. Memory: a fleet keeps a few
     of these a target group for CloudWatch's retention, so eight fields (one hash size) and
     one list; the group's ARN and dimension are its record's (record_tg). ]]
local function snapshot(world, elb, ecs, tg_arn, e)
  local tg = elb.target_group(world, tg_arn)
  local healthy, unhealthy, count, images = 0, 0, {}, {}
  for _, key in ipairs(tg.target_list) do
    local t = tg.targets[key]
    local state = elb.target_health(world, tg_arn, t.id, t.port)
    if state == "healthy" then
      healthy = healthy + 1
      local image = task_image(world, ecs, t.task_arn) or ""
      if not count[image] then count[image] = 0; images[#images + 1] = image end
      count[image] = count[image] + 1
    elseif state == "unhealthy" then
      unhealthy = unhealthy + 1
    end
  end
  table.sort(images)
  local by_image = {}
  for i, image in ipairs(images) do
    by_image[3 * i - 2], by_image[3 * i - 1] = image, count[image]
    by_image[3 * i] = image ~= "" and ecs and ecs.image_first_start and ecs.image_first_start(world, image) or false
  end
  return { lb_dim = elb.arn_suffix(e.lb, "lb"), rps = e.rps, weight = e.weight, healthy = healthy,
    unhealthy = unhealthy, by_image = by_image }
end

-- Would two inputs give the same numbers (the same routing and healthy targets by image)?
local function same_inputs(a, b)
  if a.lb_dim ~= b.lb_dim or a.rps ~= b.rps or a.weight ~= b.weight or a.healthy ~= b.healthy
      or a.unhealthy ~= b.unhealthy or #a.by_image ~= #b.by_image then
    return false
  end
  local x, y = a.by_image, b.by_image
  for i = 1, #x do
    if x[i] ~= y[i] then return false end
  end
  return true
end

-- A new run when the inputs differ from the last one's (inp false: not routed to any more).
local function record(a, tg_arn, m, inp)
  local tg = a.tgs[tg_arn]
  if not tg then tg = { runs = {}, series = {} } a.tgs[tg_arn] = tg end
  local last = tg.runs[#tg.runs]
  if last and last.inp and inp and same_inputs(last.inp, inp) then
    last.inp.version = inp.version -- the same inputs, recounted: no new run
  elseif (last and (last.inp or inp)) or (not last and inp) then
    tg.runs[#tg.runs + 1] = { m = m, inp = inp }
  end
  return tg
end

-- The inputs of minute m: the last run's while nothing they come from moved, else counted anew.
local function current_inputs(world, a, elb, ecs, tg_arn, e)
  local tg = a.tgs[tg_arn]
  local last = tg and tg.runs[#tg.runs]
  local version = elb.health_version and elb.health_version(world, tg_arn)
  local inp = last and last.inp
  if inp and version and inp.version == version and inp.lb == e.lb and inp.rps == e.rps
      and inp.weight == e.weight then
    return inp, tg
  end
  inp = snapshot(world, elb, ecs, tg_arn, e)
  inp.lb, inp.version = e.lb, version
  return inp, nil
end

-- The series `names` (in that order) of an owner (target group or load balancer) under load
-- balancer lb_dim, each made on first use (make(key) → their dimensions and what the lazy
-- series reads); their newest sample is now the minute before m (ListMetrics' RecentlyActive,
-- retention). Every routed target group comes here every minute: one look-up per owner.
local function touch(world, owner, names, lb_dim, m, make, key)
  local by_lb = owner.series[lb_dim]
  if not by_lb then
    -- the series of one owner under one load balancer share their dimensions and source
    local dims, lazy = make(key, lb_dim)
    by_lb = { dims = store.norm_dims(dims), lazy = lazy, by_name = {} }
    owner.series[lb_dim] = by_lb
  end
  local by_name, last = by_lb.by_name, m - 60
  for i = 1, #names do
    local name = names[i]
    local ser = by_name[name]
    if not ser then
      ser = store.get_series(world, NS, name, by_lb.dims, true)
      ser.lazy = by_lb.lazy
      by_name[name] = ser
    end
    ser.last_t = last
  end
end

-- The series a target group's minute publishes, in the order publishing creates them.
local IDLE = { "HealthyHostCount", "UnHealthyHostCount" }
local NO_HEALTHY = { "HealthyHostCount", "UnHealthyHostCount", "RequestCount", "HTTPCode_ELB_5XX_Count" }
local SERVING = { "HealthyHostCount", "UnHealthyHostCount", "RequestCount", "HTTPCode_Target_5XX_Count",
  "HTTPCode_Target_2XX_Count", "TargetResponseTime" }
-- and a load balancer's, after its target groups'
local LB_SERVED = { "RequestCount", "HTTPCode_Target_5XX_Count" }
local LB_SERVED_E5 = { "RequestCount", "HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count" }

local function tg_series(tg, lb_dim) -- (a target group's record)
  return { LoadBalancer = lb_dim, TargetGroup = tg.dim }, { tg = tg.arn, lb_dim = lb_dim }
end

local function lb_series(_, lb_dim) return { LoadBalancer = lb_dim }, { lb = lb_dim } end

-- Records minute m of one target group; notes what its load balancer's totals will have.
local function record_tg(world, a, elb, ecs, tg_arn, e, m, lbt)
  local inp, tg = current_inputs(world, a, elb, ecs, tg_arn, e)
  if not tg then tg = record(a, tg_arn, m, inp) end
  if not tg.dim then tg.arn, tg.dim = tg_arn, elb.arn_suffix(tg_arn, "tg") end
  a.active[tg_arn] = true
  local names = IDLE
  if any_requests(world, tg_arn, m, inp.rps) then
    lbt.req = true
    if inp.healthy == 0 then lbt.e5 = true names = NO_HEALTHY else names = SERVING end
  end
  touch(world, tg, names, inp.lb_dim, m, tg_series, tg)
end

--[[ Records minute [m-60, m) for every target group attached to a load balancer (in ARN order,
     the order their series are created in), then the load-balancer-wide series. Without a
     simulated ELBv2: nothing. ]]
-- The routed target groups in ARN order, { {arn=, rps=, weight=, lb=, lb_dim=}, ... }: kept by
-- the simulated ELBv2 between routing changes (elb.routed), else made from elb.traffic.
local function routed(world, elb)
  if elb.routed then return elb.routed(world) end
  local list = {}
  for arn, e in pairs(elb.traffic(world)) do
    if e.lb then
      list[#list + 1] = { arn = arn, rps = e.rps, weight = e.weight, lb = e.lb, lb_dim = elb.arn_suffix(e.lb, "lb") }
    end
  end
  table.sort(list, function(x, y) return x.arn < y.arn end)
  return list
end

function M.publish_minute(world, m)
  local elb = world.svc.elbv2
  if not (elb and elb.traffic) then return end
  local ecs = world.svc.ecs
  local a = alb_state(world)
  a.from = a.from or m
  local lb_totals, lb_order, seen = {}, {}, {}
  local list = routed(world, elb)
  -- the very list the last minute published (elb.routed keeps it between routing changes):
  -- the active target groups are its own, none stopped being routed to, no scan for those
  local same = list == world.memo.alb_routed
  world.memo.alb_routed = list
  for _, e in ipairs(list) do
    local tg_arn, lb_dim = e.arn, e.lb_dim
    local lbt = lb_totals[lb_dim]
    if not lbt then
      lbt = {}
      lb_totals[lb_dim] = lbt
      lb_order[#lb_order + 1] = lb_dim
    end
    local lb = a.lbs[lb_dim]
    if not lb then lb = { tgs = {}, series = {} } a.lbs[lb_dim] = lb end
    lb.tgs[tg_arn] = true
    if not same then seen[tg_arn] = true end
    record_tg(world, a, elb, ecs, tg_arn, e, m, lbt)
  end
  -- target groups no load balancer routes to any more publish nothing from this minute
  if not same then
    for tg_arn in pairs(a.active) do
      if not seen[tg_arn] then
        record(a, tg_arn, m, false)
        a.active[tg_arn] = nil
      end
    end
  end
  for _, lb_dim in ipairs(lb_order) do
    local lbt, lb = lb_totals[lb_dim], a.lbs[lb_dim]
    if lbt.req then touch(world, lb, lbt.e5 and LB_SERVED_E5 or LB_SERVED, lb_dim, m, lb_series) end
  end
end

--[[ Forgets the inputs no minute at or after `cutoff` uses (CloudWatch's retention; store.prune
     drops the series themselves). ]]
function M.prune(world, cutoff)
  local a = store.st(world).alb
  if not a then return end
  for tg_arn, tg in pairs(a.tgs) do
    local runs, keep, n = tg.runs, 1, #tg.runs
    while keep < n and runs[keep + 1].m <= cutoff do keep = keep + 1 end
    if keep > 1 then
      table.move(runs, keep, n, 1)
      for k = n - keep + 2, n do runs[k] = nil end
    end
    if #runs == 1 and not runs[1].inp and runs[1].m <= cutoff then
      a.tgs[tg_arn] = nil
      for _, lb in pairs(a.lbs) do lb.tgs[tg_arn] = nil end
    end
  end
end

return M
