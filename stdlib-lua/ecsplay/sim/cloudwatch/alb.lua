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

Noise comes from world:noise keyed by (target group, minute, what), so a
minute's numbers do not depend on the order anything is asked in. Each
minute's datapoints become visible the publishing delay (state.delay, the
scenario's metrics.delay) after the minute ends.

Why samples are stamped at the start of their minute: CloudWatch labels a
datapoint with the start of its period, and a tick at 10:05:00 describes the
minute 10:04:00-10:05:00.
]]
local stats = require "ecsplay.sim.cloudwatch.stats"
local store = require "ecsplay.sim.cloudwatch.store"

local M = {}

M.NAMESPACE = "AWS/ApplicationELB"
local NS = M.NAMESPACE

--[[ Stores the datapoint of minute [m-60, m), stamped with its start as
     CloudWatch labels a period, and visible to queries and alarms only the
     publishing delay (scenario metrics.delay) after the minute's end. ]]
local function publish(world, m, name, dims, value, unit)
  store.put(world, NS, name, dims, m - 60, value, unit, m + (store.st(world).delay or 0))
end

local function noisy_count(world, expected, ...)
  if expected <= 0 then return 0 end
  local v = expected + math.sqrt(expected) * world:normal(...)
  return math.max(0, math.floor(v + 0.5))
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

-- Healthy and unhealthy targets of a target group; the healthy ones counted by image (sorted).
local function targets_by_image(world, elb, ecs, tg_arn)
  local tg = elb.target_group(world, tg_arn)
  local healthy, unhealthy, by_image, images = 0, 0, {}, {}
  for _, key in ipairs(tg.target_list) do
    local t = tg.targets[key]
    local state = elb.target_health(world, tg_arn, t.id, t.port)
    if state == "healthy" then
      healthy = healthy + 1
      local info = t.task_arn and ecs and ecs.task_info and ecs.task_info(world, t.task_arn)
      local image = info and info.image or ""
      if not by_image[image] then by_image[image] = 0; images[#images + 1] = image end
      by_image[image] = by_image[image] + 1
    elseif state == "unhealthy" then
      unhealthy = unhealthy + 1
    end
  end
  table.sort(images)
  return healthy, unhealthy, by_image, images
end

--[[ The minute's answers of the healthy targets to `requests`: the expected errors and the
     TargetResponseTime sample (a lognormal mixture over images, weighted by their share). ]]
local function answers(world, ecs, tg_arn, e, m, requests, healthy, by_image, images)
  local expected_errors, dists, sum, lo, hi = 0, {}, 0, math.huge, 0
  for _, image in ipairs(images) do
    local share = requests * by_image[image] / healthy
    local b = world:behaviour(image)
    local first = ecs and ecs.image_first_start and image ~= "" and ecs.image_first_start(world, image)
    local ctx = { t = m - (first or m), weight = e.weight, now = m }
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

-- One target group's minute [m-60, m); adds its requests and 5xx to its load balancer's totals.
local function target_group_minute(world, elb, ecs, tg_arn, e, m, lbt)
  local dims = { LoadBalancer = elb.arn_suffix(e.lb, "lb"), TargetGroup = elb.arn_suffix(tg_arn, "tg") }
  local healthy, unhealthy, by_image, images = targets_by_image(world, elb, ecs, tg_arn)
  publish(world, m, "HealthyHostCount", dims, healthy, "Count")
  publish(world, m, "UnHealthyHostCount", dims, unhealthy, "Count")
  local requests = 0
  if e.rps > 0 then
    requests = math.max(0, math.floor(e.rps * 60 * (1 + 0.02 * world:normal(tg_arn, m, "RequestCount")) + 0.5))
  end
  if requests <= 0 then return end
  publish(world, m, "RequestCount", dims, requests, "Count")
  lbt.req = lbt.req + requests
  if healthy == 0 then
    publish(world, m, "HTTPCode_ELB_5XX_Count", dims, requests, "Count")
    lbt.e5 = lbt.e5 + requests
    return
  end
  local expected_errors, latency = answers(world, ecs, tg_arn, e, m, requests, healthy, by_image, images)
  local errors = math.min(requests, noisy_count(world, expected_errors, tg_arn, m, "5xx"))
  publish(world, m, "HTTPCode_Target_5XX_Count", dims, errors, "Count")
  publish(world, m, "HTTPCode_Target_2XX_Count", dims, requests - errors, "Count")
  publish(world, m, "TargetResponseTime", dims, latency, "Seconds")
  lbt.t5 = lbt.t5 + errors
end

--[[ Publishes one minute [m-60, m) of ALB metrics for every target group attached to a load
     balancer (in ARN order), then the load-balancer-wide counts. Without a simulated ELBv2:
     nothing. ]]
function M.publish_minute(world, m)
  local elb = world.svc.elbv2
  if not (elb and elb.traffic) then return end
  local ecs = world.svc.ecs
  local traffic = elb.traffic(world)
  local arns = {}
  for arn, e in pairs(traffic) do if e.lb then arns[#arns + 1] = arn end end
  table.sort(arns)
  local lb_totals, lb_order = {}, {}
  for _, tg_arn in ipairs(arns) do
    local e = traffic[tg_arn]
    local lb_dim = elb.arn_suffix(e.lb, "lb")
    local lbt = lb_totals[lb_dim]
    if not lbt then
      lbt = { req = 0, t5 = 0, e5 = 0 }
      lb_totals[lb_dim] = lbt
      lb_order[#lb_order + 1] = lb_dim
    end
    target_group_minute(world, elb, ecs, tg_arn, e, m, lbt)
  end
  for _, lb_dim in ipairs(lb_order) do
    local lbt = lb_totals[lb_dim]
    local dims = { LoadBalancer = lb_dim }
    if lbt.req > 0 then
      publish(world, m, "RequestCount", dims, lbt.req, "Count")
      publish(world, m, "HTTPCode_Target_5XX_Count", dims, lbt.t5, "Count")
      if lbt.e5 > 0 then publish(world, m, "HTTPCode_ELB_5XX_Count", dims, lbt.e5, "Count") end
    end
  end
end

return M
