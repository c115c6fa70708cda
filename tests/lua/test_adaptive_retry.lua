-- AWS_RETRY_MODE=adaptive: botocore's client rate limiter (aws/ratelimit.lua M.Adaptive) —
-- off until a throttle, then a CUBIC send rate that drops on throttling and recovers.
local T = require "harness"
local ecsplay = require "ecsplay"
local R = require "rollout_sim"
local aws = require "ecsplay.aws"
local retry = require "ecsplay.aws.retry"
local ratelimit = require "ecsplay.aws.ratelimit"
local scenario = require "ecsplay.sim.scenario"

T.test("the algorithm: measured rate, beta on a throttle, cubic recovery, the floor", function()
  local now = 1000.0
  local a = ratelimit.adaptive(function() return now end)
  T.eq(a.enabled, false, "off until the first throttle")
  T.eq(a:acquire(), 0)
  -- 40 successes a second for 3 s: the measured rate follows (smoothing 0.8 per half second)
  for _ = 1, 120 do now = now + 0.025 a:on_response(false) end
  T.near(a:measured_rate(), 40, 2, "measured send rate")
  local measured = a:measured_rate()
  local rate = a:on_response(true)
  T.eq(a.enabled, true)
  T.near(rate, 0.7 * math.min(a:measured_rate(), 2 * measured), 0.5, "beta × the rate at the throttle")
  local after_throttle = rate
  -- successes: the rate climbs back (W_max reached at K seconds, then beyond), capped at 2 × measured
  local k = ((a.w_max * 0.3) / 0.4) ^ (1 / 3)
  for _ = 1, 160 do now = now + 0.025 a:on_response(false) end
  T.ok(a:fill_rate() > after_throttle, string.format("recovered from %.1f to %.1f", after_throttle, a:fill_rate()))
  T.ok(now - a.last_fail > k, "past the cubic's zero point")
  -- throttle after throttle: down to the 0.5 a second floor, never below
  for _ = 1, 30 do now = now + 1 a:on_response(true) end
  T.eq(a:fill_rate(), 0.5, "MIN_FILL_RATE")
  T.eq(a.bucket.capacity, 1, "capacity at least one token")
end)

T.test("settings: environment, configure and the profile's retry_mode", function()
  T.eq(retry.settings({}, function(k) return ({ AWS_RETRY_MODE = "ADAPTIVE" })[k] end).mode, "adaptive")
  T.eq(retry.settings({}, function() return nil end, function(k)
    if k == "retry_mode" then return "adaptive", "profile p's retry_mode" end end).mode, "adaptive")
  T.eq(retry.settings({ retry_mode = "standard" },
    function(k) return k == "AWS_RETRY_MODE" and "adaptive" or nil end).mode, "standard")
  local e = T.raises(function() retry.settings({}, function() return nil end,
    function(k) if k == "retry_mode" then return "fast", "profile p's retry_mode (x line 3)" end end) end)
  T.ok(tostring(e):find("profile p's retry_mode (x line 3)", 1, true), tostring(e))
  local r = retry.new({ mode = "adaptive", max_attempts = 3 })
  T.ok(r.limiter ~= nil, "an adaptive retryer has a limiter")
  T.eq(retry.new({ mode = "standard", max_attempts = 3 }).limiter, nil)
end)

T.test("max attempts: text is read as botocore's int() reads it; the message says what was expected", function()
  local function attempts(v, opts)
    return retry.settings(opts or {}, function(k) return k == "AWS_MAX_ATTEMPTS" and v or nil end).max_attempts
  end
  T.eq({ attempts("3"), attempts(" 3"), attempts("+3 "), attempts("10") }, { 3, 3, 3, 10 })
  for _, bad in ipairs { "2.0", "0x3", "1.5", "1e1", "abc", "", "0", "-1", "99999999999999999999" } do
    local ok, e = pcall(attempts, bad)
    T.eq({ ok, e }, { false, string.format("invalid max attempts %q (from AWS_MAX_ATTEMPTS): expected a "
      .. "whole number of attempts, 1 or more (decimal digits)", bad) })
  end
  -- configure{} takes a whole Lua number, in either subtype
  T.eq(attempts(nil, { max_attempts = 2.0 }), 2)
  T.eq(math.type(attempts(nil, { max_attempts = 2.0 })), "integer")
  local ok, e = pcall(attempts, nil, { max_attempts = 2.5 })
  T.eq({ ok, e }, { false, "invalid max attempts number 2.5 (from configure{max_attempts=}): expected a whole "
    .. "number of attempts, 1 or more" })
  ok, e = pcall(attempts, nil, { max_attempts = true })
  T.eq({ ok, e }, { false, "invalid max attempts boolean true (from configure{max_attempts=}): expected a "
    .. "whole number of attempts, 1 or more" })
  -- the profile's value is text too
  ok, e = pcall(retry.settings, {}, function() return nil end, function(k)
    if k == "max_attempts" then return "2.0", "profile p's max_attempts (x line 4)" end end)
  T.ok(not ok and e:find('"2.0" (from profile p\'s max_attempts (x line 4))', 1, true), tostring(e))
end)

-- 100 callers × 5 DescribeServices against a 10-a-second account limit, the static limits off.
local function load(mode)
  local sim = R.fresh(scenario.check({ faults = {
    { service = "ecs", operation = "DescribeServices", rate = 10, burst = 10 } } }, "adaptive"))
  local creds = sim:credentials()
  aws.configure { region = "us-east-1", endpoint_url = "https://simulator.ecsplay.invalid",
    access_key = creds.access_key, secret_key = creds.secret_key, retry_mode = mode, max_attempts = 20,
    rate_limits = false, rand = function() return 0.5 end, log = function() end,
    transport = function(req) return sim:transport(req) end }
  local list, failed = {}, 0
  for i = 1, 100 do list[i] = i end
  local trace = {}
  ecsplay.map(list, function()
    for _ = 1, 5 do
      local ok = aws.pcall("ecs", "DescribeServices", { cluster = "production", services = { "api" } })
      if not ok then failed = failed + 1 end
      local l = aws.retryer("ecs").limiter
      if l then trace[#trace + 1] = { enabled = l.enabled, rate = l:fill_rate() } end
    end
  end)
  return sim.faults:list()[1].hits, failed, aws.retryer("ecs").limiter, trace
end

T.test("adaptive mode backs off on throttling and recovers; standard mode keeps hammering", function()
  local standard_throttles = load("standard")
  local throttles, failed, limiter, trace = load("adaptive")
  T.eq(failed, 0, "every call got through")
  T.ok(limiter.enabled and limiter.throttles > 0, "throttled, so the limiter is on")
  T.ok(throttles < standard_throttles / 2, string.format("adaptive %d throttles, standard %d",
    throttles, standard_throttles))
  -- the send rate dropped below the account's 10 a second after throttles, then rose again
  local low, recovered = math.huge, false
  for _, p in ipairs(trace) do
    if p.enabled then
      if p.rate < low then low = p.rate end
      if p.rate > low * 1.5 then recovered = true end
    end
  end
  T.ok(low < 10, "the fill rate dropped to " .. low)
  T.ok(recovered, "and recovered after it")
end)
