--[[
Client-side rate limiting, on the scheduler's clock (virtual under --simulate, so waiting
there costs no real time).

Two limiters, both token buckets:

1. Static limits (on by default): one bucket per service and operation class, holding the
   account limits AWS documents (AWS throttles per account and Region, with a token bucket
   whose capacity is the burst and whose refill rate is the sustained rate):
     ECS         the per-category table of "Request throttling for the Amazon ECS API"
                 https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html
     ELBv2       non-mutating (Describe*) actions: 40 tokens, 10 a second
                 https://docs.aws.amazon.com/elasticloadbalancing/latest/userguide/elb-api-throttling.html
     CloudWatch  "Rate of <Operation> requests" per second (a one-second bucket)
                 https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html
     CodeDeploy  no documented request rates: no static bucket (retries handle throttling)
   Operations the documents do not list get no bucket. A caller waits for its token instead
   of being throttled; tokens may be reserved ahead (the bucket goes into debt), so N
   callers waiting at once each sleep exactly until their own token, not N times.
   Configuration (docs/configuration.md): aws.configure{ rate_limits = false | { ["service.class"
   or "service.Operation"] = { rate =, burst = } | false } } and ECSPLAY_RATE_LIMITS
   ("off", or "ecs.service_read=10/40,cloudwatch.GetMetricData=100": rate[/burst]).

2. The adaptive limiter of AWS_RETRY_MODE=adaptive (retry.lua), as botocore implements it
   (botocore/retries/adaptive.py, throttling.py, bucket.py): a token bucket that is off until
   the first throttling answer; each response feeds a measured send rate (0.5 s time
   buckets, smoothing 0.8) and a CUBIC rate (beta 0.7, scale 0.4): a throttle sets the fill
   rate to beta × min(measured rate, fill rate), a success lets it grow back as
   0.4 × (t − last throttle − K)³ + W_max, K = ∛(W_max × (1 − beta) / 0.4); the fill rate is
   never above twice the measured rate nor below 0.5 a second, and the capacity follows it
   (at least 1). One deviation, because tasks here are coroutines and not threads: a caller
   already waiting keeps the slot it reserved when the rate changes.

Clock: both limiters count time on sched.now(), the clock the throttling side counts its
requests on: the virtual one under --simulate, the served simulator's over `sim serve` (this
process follows it from its first answer, which can be days from the machine's), the
machine's against AWS. Read as sched.steady_now(), so a jump of that clock (backwards, or
to another clock) counts as no time passed: no negative elapsed time, no burst granted or
withheld (an injected clock goes through M.steady, the same guard). botocore differs: its
bucket.Clock reads time.time() for the TokenBucket, the RateClocker and the CubicCalculator
alike, unguarded (a wall clock stepped back there makes the refill negative and freezes the
measured rate until it catches up). It never changes clocks mid-run; ecsplay does, on the
first answer of `sim serve`.

  ratelimit.settings(opts, getenv) → settings (raises a message on a bad value)
  ratelimit.new(settings, clock)   → limits; limits:acquire(service, op) → seconds waited
  limits:stats()                   → { [key] = { calls =, waits =, waited = } }
  ratelimit.adaptive(clock)        → a ClientRateLimiter: :acquire(), :on_response(throttled)
  ratelimit.bucket(capacity, rate, clock, start_full) → a token bucket
  ratelimit.steady(read)           → a clock that never jumps (read() → time [, clock name]):
                                     sched.steady
  (clock: a function → time [, the name of the clock it read], read through M.steady;
  default: sched.steady_now, already steady)
]]
local sched = require "ecsplay.sched"
local model = require "ecsplay.aws.model"
local strings = require "ecsplay.util.strings"

local M = {}

-- ECS: Request throttling for the Amazon ECS API (bucket maximum capacity, refill rate).
local ECS_CLASSES = {
  cluster_modify = { 20, 1, "CreateCluster DeleteCluster PutClusterCapacityProviders UpdateCluster UpdateClusterSettings" },
  cluster_read = { 50, 20, "DescribeClusters ListClusters" },
  task_definition_modify = { 20, 1, "DeregisterTaskDefinition RegisterTaskDefinition" },
  task_definition_read = { 50, 20, "DescribeTaskDefinition ListTaskDefinitions ListTaskDefinitionFamilies" },
  task_definition_delete = { 5, 1, "DeleteTaskDefinitions" },
  capacity_provider_modify = { 10, 1, "CreateCapacityProvider DeleteCapacityProvider UpdateCapacityProvider" },
  capacity_provider_read = { 50, 20, "DescribeCapacityProviders" },
  tag_modify = { 20, 10, "TagResource UntagResource" },
  tag_read = { 50, 20, "ListTagsForResource" },
  setting_modify = { 10, 1, "DeleteAccountSetting PutAccountSetting PutAccountSettingDefault" },
  setting_read = { 50, 20, "ListAccountSettings" },
  cluster_resource_modify = { 100, 40, "DeleteAttributes DeregisterContainerInstance ExecuteCommand "
    .. "PutAttributes RunTask StartTask StopTask UpdateContainerAgent UpdateContainerInstancesState" },
  cluster_resource_read = { 100, 20, "DescribeContainerInstances DescribeTasks ListAttributes "
    .. "ListContainerInstances ListTasks" },
  agent_modify = { 200, 120, "RegisterContainerInstance SubmitAttachmentStateChanges "
    .. "SubmitContainerStateChange SubmitTaskStateChange" },
  service_modify = { 50, 5, "CreateService DeleteService UpdateService" },
  service_read = { 100, 20, "DescribeServices ListServices" },
  service_deployment = { 50, 20, "DescribeServiceDeployments ListServiceDeployments" },
  service_revision = { 50, 20, "DescribeServiceRevisions" },
  task_protection = { 200, 80, "UpdateTaskProtection GetTaskProtection" },
  namespace_read = { 10, 1, "ListServicesByNamespace" },
}

-- CloudWatch: "Rate of <Operation> requests", per second in each account and Region.
local CLOUDWATCH_RATES = {
  GetMetricData = 500, GetMetricStatistics = 400, PutMetricData = 500, ListMetrics = 25,
  DescribeAlarms = 9, DescribeAlarmsForMetric = 9, DescribeAlarmHistory = 20,
  PutMetricAlarm = 3, PutCompositeAlarm = 3, DeleteAlarms = 3, SetAlarmState = 3,
  EnableAlarmActions = 3, DisableAlarmActions = 3, TagResource = 20, UntagResource = 20,
  ListTagsForResource = 10, DescribeAnomalyDetectors = 10, PutDashboard = 10, GetDashboard = 10,
  ListDashboards = 10, DeleteDashboards = 10,
}

-- The default buckets: DEFAULTS[key] = { burst =, rate = }, CLASS_OF[service][op] = key.
local DEFAULTS, CLASS_OF = {}, { ecs = {}, elbv2 = {}, cloudwatch = {}, codedeploy = {} }
for class, def in pairs(ECS_CLASSES) do
  local key = "ecs." .. class
  DEFAULTS[key] = { burst = def[1], rate = def[2] }
  for op in def[3]:gmatch("%S+") do CLASS_OF.ecs[op] = key end
end
DEFAULTS["elbv2.describe"] = { burst = 40, rate = 10 }
for op, rate in pairs(CLOUDWATCH_RATES) do
  local key = "cloudwatch." .. op
  DEFAULTS[key] = { burst = rate, rate = rate }
  CLASS_OF.cloudwatch[op] = key
end
M.DEFAULTS, M.CLASS_OF = DEFAULTS, CLASS_OF

-- The bucket key of an operation with no configured override: its class, or nil (no limit).
function M.class_of(service, op)
  local by_op = CLASS_OF[service]
  local key = by_op and by_op[op]
  if key then return key end
  if service == "elbv2" and op:find("^Describe") then return "elbv2.describe" end
  return nil
end

---------------------------------------------------------------------------------------
-- Clocks.

-- sched.now() and the name of the clock it read (the limiters' own: sched.steady_now).
function M.scheduler_clock() return sched.now(), sched.clock_name() end

--[[ A clock that never jumps (sched.steady): every timestamp a limiter keeps is on it, so a
     jump re-anchors them all at once: a bucket keeps the tokens (or the debt) it had, a
     waiting caller's slot stays where it was, and no elapsed time is ever negative. ]]
M.steady = sched.steady

-- A limiter's clock: the injected one made steady, else the scheduler's steady one.
local function steady_clock(clock)
  if clock then return M.steady(clock) end
  return sched.steady_now
end

---------------------------------------------------------------------------------------
-- A token bucket. start_full: AWS's buckets start full; botocore's adaptive one empty.
-- clock: a steady one (M.steady), shared with the limiter that owns the bucket.
local Bucket = {}
Bucket.__index = Bucket
M.Bucket = Bucket

function M.bucket(capacity, rate, clock, start_full)
  return setmetatable({ capacity = capacity, rate = rate,
    clock = clock or sched.steady_now,
    tokens = start_full and capacity or 0, last = nil }, Bucket)
end

-- Adds the tokens earned since the last refill. A time before it (a clock read unsteadily)
-- earns none and becomes the anchor, so the bucket refills from there at its rate.
function Bucket:refill()
  local t = self.clock()
  if self.last ~= nil and t > self.last then
    self.tokens = math.min(self.capacity, self.tokens + (t - self.last) * self.rate)
  end
  self.last = t
end

-- Takes one token; → seconds until it is due (0: now). The token is reserved either way.
function Bucket:reserve()
  self:refill()
  self.tokens = self.tokens - 1
  if self.tokens >= 0 then return 0 end
  return -self.tokens / self.rate
end

-- Sleeps until the reserved token is due (only inside a scheduler task: outside one
-- nothing can wait, and the call goes at once). → seconds waited
local function wait(seconds)
  if seconds > 0 and sched.in_task() then
    sched.sleep(seconds)
    return seconds
  end
  return 0
end
M.wait = wait

---------------------------------------------------------------------------------------
-- Settings: the defaults, overridden by ECSPLAY_RATE_LIMITS, overridden by configure.

local RATE_EXPECTED = "rate must be a number of requests a second above 0 (at most 1000000)"
local BURST_EXPECTED = "burst must be a number of tokens from 1 to 1000000"

-- A bad value as a message shows it: a number as a number (nan as nan), else with its type.
local function shown(v)
  if type(v) ~= "number" then return strings.describe_value(v) end
  if v ~= v then return "nan" end
  if math.type(v) == "float" then return string.format("%.14g", v) end
  return tostring(v)
end

local function limit_value(v, where)
  if v == false then return false end
  if type(v) ~= "table" then
    error(string.format("%s: expected { rate = per second, burst = tokens } or false, got %s",
      where, strings.describe_value(v)), 0)
  end
  for k in pairs(v) do
    if k ~= "rate" and k ~= "burst" then
      error(string.format("%s: unknown field %q%s (expected rate and burst)", where, tostring(k),
        strings.did_you_mean(tostring(k), { "rate", "burst" }, { quote = true })), 0)
    end
  end
  local rate, burst = v.rate, v.burst
  if type(rate) ~= "number" or rate ~= rate or rate <= 0 or rate > 1e6 then
    error(string.format("%s: %s, got %s", where, RATE_EXPECTED, shown(rate)), 0)
  end
  if burst == nil then burst = math.max(1, rate) end
  if type(burst) ~= "number" or burst ~= burst or burst < 1 or burst > 1e6 then
    error(string.format("%s: %s, got %s", where, BURST_EXPECTED, shown(burst)), 0)
  end
  return { rate = rate, burst = burst }
end

-- The keys of `service`'s classes and operations, sorted (for a did-you-mean).
local function known_keys(service, ops)
  local known = {}
  for k in pairs(DEFAULTS) do if k:find(service .. ".", 1, true) == 1 then known[#known + 1] = k end end
  for _, op in ipairs(ops or {}) do
    local key = service .. "." .. op
    if not DEFAULTS[key] then known[#known + 1] = key end
  end
  table.sort(known)
  return known
end

-- An operation each service's message can show as an example of a key.
local EXAMPLE_OPERATION = { ecs = "DescribeServices", elbv2 = "DescribeTargetHealth",
  cloudwatch = "GetMetricData", codedeploy = "GetDeployment" }

--[[ "ecs.service_read" or "ecs.DescribeServices": a known class, or an operation of the
     service's model (aws/models), so a misspelt override cannot leave the default in force
     unnoticed. ]]
local function check_key(key, where)
  local service, rest = tostring(key):match("^(%l[%w]*)%.([%w_]+)$")
  if not service or not CLASS_OF[service] then
    local known = {}
    for k in pairs(DEFAULTS) do known[#known + 1] = k end
    table.sort(known)
    error(string.format("%s: %q is not service.class or service.Operation (services ecs, elbv2, "
      .. "cloudwatch, codedeploy)%s", where, tostring(key),
      strings.did_you_mean(tostring(key), known, { quote = true })), 0)
  end
  if DEFAULTS[key] then return key end
  local m = model.load(service)
  if rest:find("^%u") and m.operations[rest] then return key end
  if rest:find("^%l") then
    -- a class name, or an operation's snake_case name ("describe_services")
    local op = m.by_snake[rest]
    local hint = op and string.format("; did you mean %q?", service .. "." .. op)
      or strings.did_you_mean(key, known_keys(service), { quote = true, list_all = true })
    error(string.format("%s: %s has no operation class %q%s", where, service, rest, hint), 0)
  end
  local hint = strings.did_you_mean(key, known_keys(service, model.operation_names(m)), { quote = true })
  if hint == "" then
    hint = string.format(" (expected one of %s's classes, or an operation as its API spells it, "
      .. "e.g. %q)", service, service .. "." .. EXAMPLE_OPERATION[service])
  end
  error(string.format("%s: %s has no operation %q%s", where, service, rest, hint), 0)
end

-- A number as ECSPLAY_RATE_LIMITS writes it: decimal ("10", "0.5", "1e3"), never hex.
local function decimal(text)
  if text:find("[xX]") then return nil end
  return tonumber(text)
end

local function parse_env(text)
  local out = {}
  if text:lower() == "off" or text == "0" or text:lower() == "false" then return false end
  local where = "ECSPLAY_RATE_LIMITS"
  for item in text:gmatch("[^,%s]+") do
    local key, rate_text, burst_text = item:match("^([^=/]+)=([^/]*)/?([^/]*)$")
    if not key or rate_text == "" then
      error(string.format("%s: %q is not service.class=rate[/burst] (e.g. ecs.service_read=10/40)",
        where, item), 0)
    end
    local at = where .. " " .. key
    check_key(key, where)
    local rate, burst = decimal(rate_text), nil
    if not rate then error(string.format("%s: %s, got %q", at, RATE_EXPECTED, rate_text), 0) end
    if burst_text ~= "" then
      burst = decimal(burst_text)
      if not burst then error(string.format("%s: %s, got %q", at, BURST_EXPECTED, burst_text), 0) end
    end
    out[key] = limit_value({ rate = rate, burst = burst }, at)
  end
  return out
end

--[[ → { enabled = bool, limits = { [key] = {rate=, burst=} | false } } or raises a message.
     opts.rate_limits (configure) wins over ECSPLAY_RATE_LIMITS. ]]
function M.settings(opts, getenv)
  opts = opts or {}
  getenv = getenv or os.getenv
  local overrides = {}
  local env = getenv("ECSPLAY_RATE_LIMITS")
  if env and env ~= "" then
    local parsed = parse_env(env)
    if parsed == false then return { enabled = false, limits = {} } end
    overrides = parsed
  end
  local conf = opts.rate_limits
  if conf == false then return { enabled = false, limits = {} } end
  if conf ~= nil then
    if type(conf) ~= "table" then
      error("configure{rate_limits=}: expected false or a table { [\"ecs.service_read\"] = "
        .. "{ rate =, burst = } }, got " .. strings.describe_value(conf), 0)
    end
    for k, v in pairs(conf) do
      local where = "configure{rate_limits=}"
      overrides[check_key(k, where)] = limit_value(v, where .. " " .. tostring(k))
    end
  end
  return { enabled = true, limits = overrides }
end

---------------------------------------------------------------------------------------
-- The static limiter of one client (one account and Region: aws.configure or a session).
local Limits = {}
Limits.__index = Limits
M.Limits = Limits

function M.new(settings, clock)
  settings = settings or { enabled = true, limits = {} }
  -- by_op[service][op] = { bucket, counter } | false (no limit): looked up once per operation
  return setmetatable({ settings = settings, clock = steady_clock(clock),
    buckets = {}, counters = {}, by_op = {} }, Limits)
end

-- The bucket key and limit for an operation: an operation override, else its class
-- (overridden or default). → key, {rate=, burst=} | nil
function Limits:limit_for(service, op)
  local over = self.settings.limits
  local own = service .. "." .. op
  if over[own] ~= nil then return own, over[own] or nil end
  local key = M.class_of(service, op)
  if not key then return nil end
  if over[key] ~= nil then return key, over[key] or nil end
  return key, DEFAULTS[key]
end

-- The operation's bucket and counters (shared by the operations of its class). → { b, c } | false
function Limits:entry(service, op)
  local by = self.by_op[service]
  if not by then by = {} self.by_op[service] = by end
  local e = false
  local key, limit = self:limit_for(service, op)
  if self.settings.enabled and limit then
    local b = self.buckets[key]
    if not b then
      b = M.bucket(limit.burst, limit.rate, self.clock, true)
      self.buckets[key] = b
    end
    local c = self.counters[key]
    if not c then c = { calls = 0, waits = 0, waited = 0 } self.counters[key] = c end
    e = { b, c }
  end
  by[op] = e
  return e
end

-- Waits for a token of the operation's bucket. → seconds waited (0 without a limit)
function Limits:acquire(service, op)
  local by = self.by_op[service]
  local e = by and by[op]
  if e == nil then e = self:entry(service, op) end
  if not e then return 0 end
  local b, c = e[1], e[2]
  c.calls = c.calls + 1
  local due = b:reserve()
  if due <= 0 then return 0 end
  c.waits = c.waits + 1
  c.waited = c.waited + due
  return wait(due)
end

function Limits:stats() return self.counters end

---------------------------------------------------------------------------------------
-- The adaptive mode's client rate limiter (botocore's ClientRateLimiter).
M.MIN_FILL_RATE = 0.5
M.MAX_RATE_ADJUST_SCALE = 2.0
M.SMOOTHING = 0.8
M.TIME_BUCKET_RANGE = 0.5
M.BETA = 0.7
M.SCALE_CONSTANT = 0.4

local Adaptive = {}
Adaptive.__index = Adaptive
M.Adaptive = Adaptive

function M.adaptive(clock)
  clock = steady_clock(clock)
  local t = clock()
  local self = setmetatable({ clock = clock, enabled = false,
    -- TokenBucket(max_rate = 1): starts empty
    bucket = M.bucket(1, 1, clock, false),
    -- RateClocker
    measured = 0, count = 0, last_bucket = math.floor(t),
    -- CubicCalculator(starting_max_rate = 0, start_time = now)
    w_max = 0, k = 0, last_fail = t,
    throttles = 0, waited = 0 }, Adaptive)
  self:set_max_rate(1)
  return self
end

-- TokenBucket.max_rate setter: tokens so far at the old rate, then the new rate and capacity.
function Adaptive:set_max_rate(value)
  local b = self.bucket
  b:refill()
  b.rate = math.max(value, M.MIN_FILL_RATE)
  b.capacity = value >= 1 and value or 1
  if b.tokens > b.capacity then b.tokens = b.capacity end
end

function Adaptive:fill_rate() return self.bucket.rate end
function Adaptive:measured_rate() return self.measured end

-- RateClocker.record: the send rate, measured over half-second buckets.
function Adaptive:record()
  local t = self.clock()
  local scale = 1 / M.TIME_BUCKET_RANGE
  local bucket = math.floor(t * scale) / scale
  self.count = self.count + 1
  if bucket > self.last_bucket then
    local rate = self.count / (bucket - self.last_bucket)
    self.measured = rate * M.SMOOTHING + self.measured * (1 - M.SMOOTHING)
    self.count = 0
    self.last_bucket = bucket
  end
  return self.measured
end

local function zero_point(w_max)
  return ((w_max * (1 - M.BETA)) / M.SCALE_CONSTANT) ^ (1 / 3)
end

-- before-send: a token, once the limiter is on. → seconds waited
function Adaptive:acquire()
  if not self.enabled then return 0 end
  local due = self.bucket:reserve()
  if due <= 0 then return 0 end
  self.waited = self.waited + due
  return wait(due)
end

-- needs-retry: every response, throttled (a throttling error) or not.
function Adaptive:on_response(throttled)
  local measured = self:record()
  local t = self.clock()
  local new_rate
  if not throttled then
    local dt = t - self.last_fail
    new_rate = M.SCALE_CONSTANT * (dt - self.k) ^ 3 + self.w_max
  else
    local rate = measured
    if self.enabled then rate = math.min(measured, self.bucket.rate) end
    self.w_max = rate
    self.k = zero_point(rate)
    self.last_fail = t
    new_rate = rate * M.BETA
    self.enabled = true
    self.throttles = self.throttles + 1
  end
  self:set_max_rate(math.min(new_rate, M.MAX_RATE_ADJUST_SCALE * measured))
  return self.bucket.rate
end

return M
