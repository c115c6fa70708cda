-- The SDKs' retry policy ("standard" mode, as botocore's retries/standard.py):
--   * at most max_attempts attempts (default 3; AWS_MAX_ATTEMPTS / configure{max_attempts=});
--   * retry throttling codes, transient codes, HTTP 500/502/503/504 and transport errors;
--   * delay before retry i (1-based) = random() * 2^(i-1) seconds, capped at 20 s (full jitter);
--   * a retry quota per service: 500 tokens, a retry costs 5 (10 after a timeout), a success
--     gives back what its retry took, or 1 when it needed none. No tokens → no retry.
-- "adaptive" is standard plus botocore's client-side rate limiter (aws/ratelimit.lua,
-- M.Adaptive: a token bucket that turns on at the first throttle and follows a CUBIC send
-- rate); "legacy" has no quota and 5 attempts by default.
-- Settings come from configure{}, then the environment, then the profile (retry_mode,
-- max_attempts), as the SDKs read them.
local ratelimit = require "ecsplay.aws.ratelimit"
local strings = require "ecsplay.util.strings"

local M = {}

local function set(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

M.THROTTLING_CODES = set {
  "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
  "TooManyRequestsException", "ProvisionedThroughputExceededException",
  "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
  "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
  "EC2ThrottledException",
}
M.TRANSIENT_CODES = set { "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete" }
M.TRANSIENT_STATUS = set { 500, 502, 503, 504 }
-- Transport error codes (errors.transport) that are worth another attempt.
M.TRANSPORT_CODES = set { "ConnectionError", "Timeout", "ConnectionReset", "TransportError" }

M.DEFAULT_MAX_ATTEMPTS = 3
M.LEGACY_MAX_ATTEMPTS = 5
M.MAX_BACKOFF = 20
M.INITIAL_CAPACITY = 500
M.RETRY_COST = 5
M.TIMEOUT_RETRY_COST = 10
M.NO_RETRY_INCREMENT = 1

function M.is_throttling(e)
  return type(e) == "table" and M.THROTTLING_CODES[e.code] == true
end

function M.is_timeout(e)
  return type(e) == "table" and e.kind == "transport" and e.code == "Timeout"
end

-- Would standard mode retry this error (ignoring attempts and quota)?
function M.is_retryable(e)
  if type(e) ~= "table" then return false end
  if e.kind == "validation" or e.kind == "credentials" or e.kind == "config" then return false end
  if e.kind == "transport" then return M.TRANSPORT_CODES[e.code] == true end
  if M.THROTTLING_CODES[e.code] or M.TRANSIENT_CODES[e.code] then return true end
  if e.status and M.TRANSIENT_STATUS[e.status] then return true end
  return false
end

--[[ A max attempts value → an integer, or nil. Text (AWS_MAX_ATTEMPTS, a profile's
     max_attempts, or a string given to configure) is read as botocore reads it, with
     Python's int(): decimal digits, a sign and blanks around allowed; "2.0", "0x3" and "1e1"
     refused. A Lua number must be whole (configure{max_attempts = 2.0} is 2). ]]
local function attempts(n)
  if type(n) == "string" then
    local digits = n:match("^%s*([+-]?%d+)%s*$")
    return digits and math.tointeger(tonumber(digits)) or nil
  end
  if type(n) == "number" then return math.tointeger(n) end
  return nil
end

-- Resolve the settings: opts (configure) win over the environment (a function name → value),
-- which wins over the profile (profile(key) → value, where | nil).
-- → { mode = "standard"|"adaptive"|"legacy", max_attempts = n } or raises a config error message.
function M.settings(opts, getenv, profile)
  opts = opts or {}
  getenv = getenv or os.getenv
  profile = profile or function() return nil end
  local mode, msrc = opts.retry_mode, "configure{retry_mode=}"
  if mode == nil then mode, msrc = getenv("AWS_RETRY_MODE"), "AWS_RETRY_MODE" end
  if mode == nil then
    local where
    mode, where = profile("retry_mode")
    msrc = where or "the profile's retry_mode"
  end
  mode = tostring(mode or "standard"):lower()
  if mode ~= "standard" and mode ~= "legacy" and mode ~= "adaptive" then
    error(string.format("invalid retry mode %q (from %s): expected standard, legacy or adaptive",
      mode, msrc), 0)
  end
  local n, src = opts.max_attempts, "configure{max_attempts=}"
  if n == nil then n, src = getenv("AWS_MAX_ATTEMPTS"), "AWS_MAX_ATTEMPTS" end
  if n == nil then
    local where
    n, where = profile("max_attempts")
    src = where or "the profile's max_attempts"
  end
  if n ~= nil then
    local v = attempts(n)
    if not v or v < 1 then
      local text = type(n) == "string"
      error(string.format("invalid max attempts %s (from %s): expected a whole number of attempts, "
        .. "1 or more%s", text and string.format("%q", n) or strings.describe_value(n), src,
        text and " (decimal digits)" or ""), 0)
    end
    n = v
  else
    n = mode == "legacy" and M.LEGACY_MAX_ATTEMPTS or M.DEFAULT_MAX_ATTEMPTS
  end
  return { mode = mode, max_attempts = n }
end

-- Seconds to wait before retry number `attempt` (the attempt that just failed, 1-based).
function M.delay(attempt, rand)
  rand = rand or math.random
  local d = rand() * (2 ^ (attempt - 1))
  if d > M.MAX_BACKOFF then d = M.MAX_BACKOFF end
  return d
end

-- The retry quota (token bucket).
local Quota = {}
Quota.__index = Quota
M.Quota = Quota

function Quota.new(capacity)
  capacity = capacity or M.INITIAL_CAPACITY
  return setmetatable({ max = capacity, available = capacity }, Quota)
end

-- Take the cost of retrying after error e. → cost taken, or nil when the bucket is too low.
function Quota:acquire(e)
  local cost = M.is_timeout(e) and M.TIMEOUT_RETRY_COST or M.RETRY_COST
  if self.available < cost then return nil end
  self.available = self.available - cost
  return cost
end

-- After a successful response: give back what the last retry took, or 1 if none.
function Quota:release(cost)
  self.available = math.min(self.max, self.available + (cost or M.NO_RETRY_INCREMENT))
end

-- A retryer for one service client. quota=false disables the bucket (legacy mode).
local Retryer = {}
Retryer.__index = Retryer
M.Retryer = Retryer

-- clock: the adaptive limiter's (default: the scheduler's).
function M.new(settings, quota, clock)
  settings = settings or { mode = "standard", max_attempts = M.DEFAULT_MAX_ATTEMPTS }
  if quota == nil and settings.mode ~= "legacy" then quota = Quota.new() end
  local r = setmetatable({ settings = settings, quota = quota or nil }, Retryer)
  if settings.mode == "adaptive" then r.limiter = ratelimit.adaptive(clock) end
  return r
end

-- Before each attempt is sent: adaptive mode's token (waits on the scheduler's clock).
function Retryer:before_send()
  if self.limiter then return self.limiter:acquire() end
  return 0
end

-- Decide after a failed attempt. → delay in seconds to retry, or nil, reason.
-- ctx is per call: { cost = last quota taken }.
function Retryer:on_error(ctx, attempt, e)
  -- adaptive: every answer moves the send rate, a throttle down, anything else up
  if self.limiter and type(e) == "table" and e.kind ~= "transport" then
    self.limiter:on_response(M.is_throttling(e))
  end
  if not M.is_retryable(e) then return nil, "not retryable" end
  if attempt >= self.settings.max_attempts then return nil, "max attempts reached" end
  if self.quota then
    local cost = self.quota:acquire(e)
    if not cost then return nil, "retry quota exhausted" end
    ctx.cost = cost
  end
  return M.delay(attempt, self.rand)
end

function Retryer:on_success(ctx)
  if self.limiter then self.limiter:on_response(false) end
  local q = self.quota
  -- a full quota stays full (every call's path: no release to make)
  if q and (q.available < q.max or ctx.cost) then q:release(ctx.cost) end
end

return M
