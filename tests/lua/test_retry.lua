-- retry.lua: classification, settings, backoff and the retry quota (standard mode).
local T = require "harness"
local retry = require "ecsplay.aws.retry"
local errors = require "ecsplay.errors"

local function svc_err(code, status)
  return errors.aws { service = "ecs", operation = "X", code = code, status = status or 400 }
end

T.test("classification: throttling, transient, status, transport, validation", function()
  for _, c in ipairs { "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
    "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException" } do
    T.ok(retry.is_throttling(svc_err(c)), c)
    T.ok(retry.is_retryable(svc_err(c)), c)
  end
  for _, c in ipairs { "RequestTimeout", "RequestTimeoutException" } do
    T.ok(retry.is_retryable(svc_err(c)), c)
    T.ok(not retry.is_throttling(svc_err(c)), c)
  end
  for _, s in ipairs { 500, 502, 503, 504 } do T.ok(retry.is_retryable(svc_err(tostring(s), s)), s) end
  T.ok(not retry.is_retryable(svc_err("InternalFailure", 501)), "501")
  T.ok(not retry.is_retryable(svc_err("ServiceNotFoundException", 400)), "client error")
  T.ok(retry.is_retryable(errors.transport { code = "ConnectionError" }))
  T.ok(retry.is_retryable(errors.transport { code = "Timeout" }))
  T.ok(retry.is_retryable(errors.transport { code = "ConnectionReset" }))
  T.ok(not retry.is_retryable(errors.transport { code = "TLSError" }), "TLS")
  T.ok(not retry.is_retryable(errors.param_validation { message = "x" }), "validation")
end)

T.test("settings: defaults, AWS_MAX_ATTEMPTS, AWS_RETRY_MODE, options win", function()
  local function env(t) return function(k) return t[k] end end
  T.eq(retry.settings({}, env {}), { mode = "standard", max_attempts = 3 })
  T.eq(retry.settings({}, env { AWS_MAX_ATTEMPTS = "7" }), { mode = "standard", max_attempts = 7 })
  T.eq(retry.settings({}, env { AWS_RETRY_MODE = "adaptive" }), { mode = "adaptive", max_attempts = 3 })
  T.eq(retry.settings({}, env { AWS_RETRY_MODE = "legacy" }), { mode = "legacy", max_attempts = 5 })
  T.eq(retry.settings({ max_attempts = 2 }, env { AWS_MAX_ATTEMPTS = "7" }).max_attempts, 2)
  T.raises(function() retry.settings({}, env { AWS_MAX_ATTEMPTS = "zero" }) end, "AWS_MAX_ATTEMPTS")
  T.raises(function() retry.settings({}, env { AWS_RETRY_MODE = "fast" }) end, "invalid retry mode")
end)

T.test("backoff: full jitter of 2^(i-1) seconds, capped at 20 s", function()
  T.eq(retry.delay(1, function() return 0.5 end), 0.5)
  T.eq(retry.delay(2, function() return 0.5 end), 1.0)
  T.eq(retry.delay(4, function() return 1 end), 8.0)
  T.eq(retry.delay(10, function() return 0.99 end), 20)
  T.eq(retry.delay(3, function() return 0 end), 0)
  for i = 1, 200 do
    local d = retry.delay(3)
    T.ok(d >= 0 and d < 4, "jitter range")
  end
end)

T.test("quota: 500 tokens, 5 per retry, 10 per timeout, refunds on success", function()
  local q = retry.Quota.new()
  T.eq(q.available, 500)
  T.eq(q:acquire(svc_err("ThrottlingException")), 5)
  T.eq(q.available, 495)
  T.eq(q:acquire(errors.transport { code = "Timeout" }), 10)
  T.eq(q.available, 485)
  q:release(10)
  T.eq(q.available, 495)
  q:release(nil)
  T.eq(q.available, 496, "success without retry gives 1")
  q:release(nil)
  q:release(nil)
  q:release(nil)
  q:release(nil)
  T.eq(q.available, 500, "never above the maximum")
  local n = 0
  while q:acquire(svc_err("Throttling")) do n = n + 1 end
  T.eq(n, 100, "100 retries drain 500 tokens")
  T.eq(q:acquire(svc_err("Throttling")), nil)
end)

T.test("retryer: attempts, quota exhaustion, non-retryable", function()
  local r = retry.new({ mode = "standard", max_attempts = 3 })
  r.rand = function() return 0 end
  local ctx = {}
  T.eq(r:on_error(ctx, 1, svc_err("Throttling")), 0)
  T.eq(ctx.cost, 5)
  T.eq(r:on_error(ctx, 2, svc_err("Throttling")), 0)
  local d, why = r:on_error(ctx, 3, svc_err("Throttling"))
  T.eq(d, nil)
  T.eq(why, "max attempts reached")
  d, why = r:on_error({}, 1, svc_err("AccessDenied"))
  T.eq(why, "not retryable")
  r.quota.available = 4
  d, why = r:on_error({}, 1, svc_err("Throttling"))
  T.eq(why, "retry quota exhausted")
  local legacy = retry.new({ mode = "legacy", max_attempts = 5 })
  T.eq(legacy.quota, nil, "legacy mode has no quota")
end)

T.test("error objects: tostring, is, ParamValidation variant", function()
  local e = errors.aws { service = "elbv2", operation = "ModifyRule", code = "RuleNotFound", status = 400,
    message = "The specified rule\ndoes not exist.", request_id = "1234" }
  T.eq(tostring(e), "elbv2 ModifyRule: RuleNotFound (400): The specified rule does not exist. [request 1234]")
  T.ok(errors.is(e, "RuleNotFound"))
  T.ok(errors.is(e, { "X", "RuleNotFound" }))
  T.ok(not errors.is(e, "Other"))
  T.ok(errors.is(e))
  T.ok(not errors.is("RuleNotFound"))
  local p = errors.param_validation { service = "ecs", operation = "UpdateService", path = "x",
    message = "ecs UpdateService: unknown parameter `x`" }
  T.eq(p.code, "ParamValidation")
  T.eq(tostring(p), "ecs UpdateService: unknown parameter `x`")
  T.ok(errors.is(p, "ParamValidation"))
  T.eq(errors.scrub("a SECRETVALUE b", { "SECRETVALUE" }), "a [redacted] b")
end)
