-- ecsplay.gate.options: bad input, each a BadInput error naming the field, nothing sent: when a
-- gate is built (its options) and at prepare (AWS names that do not exist, a query that breaks
-- CloudWatch's model).
local T = require "harness"
local R = require "rollout_sim"
local gate = require "ecsplay.gate"

---------------------------------------------------------------- bad input

local function bad(fn, pattern)
  local e = T.raises(fn, pattern)
  T.eq(type(e) == "table" and e.code, "BadInput", tostring(e))
  return e
end

T.test("an unknown option is rejected with a did-you-mean naming it", function()
  bad(function() gate.alb_5xx_rate { target_group = "api-canary", bellow = 1 } end,
    "unknown option `bellow`; did you mean `below`")
  bad(function() gate.alb_latency { targt_group = "api-canary", below_ms = 300 } end,
    "did you mean `target_group`")
  bad(function() gate.cloudwatch { metric = "X", namespace = "N", below = 1, failure_limt = 2 } end,
    "did you mean `failure_limit`")
  bad(function() gate.alarm { "x", dryrun = true } end, "did you mean `dry_run`")
  bad(function() gate.http { url = "http://127.0.0.1/", stauts = 200 } end, "did you mean `status`")
  bad(function() gate.baseline { canary = "a", stable = "b", metric = "latency", min_sample = 3 } end,
    "did you mean `min_samples`")
  -- options for another kind of gate are unknown here
  bad(function() gate.alarm { "x", min_requests = 10 } end, "unknown option `min_requests`")
  bad(function() gate.http { url = "http://127.0.0.1/", window = "5m" } end, "unknown option `window`")
  bad(function() gate.alb_healthy_hosts { target_group = "a", at_least = 1, below = 3 } end,
    "unknown option `below`")
end)

T.test("bad thresholds name the field", function()
  bad(function() gate.alb_5xx_rate { target_group = "a" } end, "below")
  bad(function() gate.alb_5xx_rate { target_group = "a", below = 120 } end, "below")
  bad(function() gate.alb_5xx_rate { target_group = "a", below = "1%" } end, "below")
  bad(function() gate.alb_5xx_rate { target_group = "a", below = 1, min_requests = -1 } end, "min_requests")
  bad(function() gate.alb_5xx_rate { target_group = "a", below = 1, min_requests = "many" } end, "min_requests")
  bad(function() gate.alb_latency { target_group = "a", below_ms = 0 } end, "below_ms")
  bad(function() gate.alb_latency { target_group = "a" } end, "below_ms")
  bad(function() gate.alb_healthy_hosts { target_group = "a", at_least = 1.5 } end, "at_least")
  bad(function() gate.alb_healthy_hosts { target_group = "a" } end, "at_least")
  bad(function() gate.cloudwatch { metric = "M", namespace = "N" } end, "above= or below=")
  bad(function() gate.cloudwatch { metric = "M", namespace = "N", below = "5" } end, "below")
  bad(function() gate.cloudwatch { metric = "M", namespace = "N", above = 5, below = 1 } end, "above")
  bad(function() gate.cloudwatch { metric = "M", namespace = "N", below = 1, aggregate = "median" } end,
    "aggregate")
  bad(function() gate.cloudwatch { metric = "M", namespace = "N", below = 1, period = 45 } end, "period")
  bad(function() gate.cloudwatch { metric = "M", namespace = "N", below = 1, stat = "Mean" } end, "stat")
  bad(function() gate.cloudwatch { expression = "m1/m2", below = 1 } end, "metrics")
  bad(function() gate.cloudwatch { metric = "M", below = 1 } end, "namespace")
  bad(function() gate.http { url = "ftp://x" } end, "url")
  bad(function() gate.http { url = "http://x/", status = 99 } end, "status")
  bad(function() gate.http { url = "http://x/", timeout = "soon" } end, "timeout")
  bad(function() gate.http { url = "http://x/", body = "[unclosed" } end, "body")
  bad(function() gate.baseline { canary = "a", stable = "b", metric = "errors" } end, "metric")
  bad(function() gate.baseline { canary = "a", stable = "b", metric = "latency", confidence = 95 } end,
    "confidence")
  bad(function() gate.baseline { canary = "a", stable = "b", metric = "latency", min_samples = 1 } end,
    "min_samples")
  bad(function() gate.check("x", function() end, { failure_limit = 0 }) end, "failure_limit")
  bad(function() gate.check("x", function() end, { inconclusive_limit = 1.5 }) end, "inconclusive_limit")
  bad(function() gate.check("x", function() end, { error_limit = "3" }) end, "error_limit")
  bad(function() gate.check("x", function() end, { dry_run = "yes" }) end, "dry_run")
  bad(function() gate.check("x", "not a function") end, "function")
  bad(function() gate.alb_5xx_rate { target_group = "a", below = 1, window = "forever" } end, "window")
end)

T.test("bad percentiles name the field", function()
  bad(function() gate.alb_latency { target_group = "a", p = 100, below_ms = 300 } end, "p:")
  bad(function() gate.alb_latency { target_group = "a", p = 0, below_ms = 300 } end, "p:")
  bad(function() gate.alb_latency { target_group = "a", p = "p99", below_ms = 300 } end, "p:")
  bad(function() gate.baseline { canary = "a", stable = "b", metric = "latency", p = 101 } end, "p:")
  bad(function() gate.baseline { canary = "a", stable = "b", metric = "latency", p = "99" } end, "p:")
end)

T.test("a missing target group names the field", function()
  bad(function() gate.alb_5xx_rate { below = 1 } end, "target_group")
  bad(function() gate.alb_latency { below_ms = 1 } end, "target_group")
  bad(function() gate.alb_healthy_hosts { at_least = 1 } end, "target_group")
  bad(function() gate.baseline { stable = "b", metric = "latency" } end, "canary")
  bad(function() gate.baseline { canary = "a", metric = "latency" } end, "stable")
  -- and one that does not exist, at prepare (before any change), names the field and the group
  R.fresh()
  bad(function() gate.prepare_all({ gate.alb_5xx_rate { target_group = "nope", below = 1 } }, {}) end,
    "target_group.*`nope` does not exist in Region us%-east%-1")
  bad(function() gate.prepare_all({ gate.alb_healthy_hosts { target_group = "nope", at_least = 1 } }, {}) end,
    "target_group.*`nope`")
  bad(function() gate.prepare_all({ gate.baseline { canary = "api-canary", stable = "nope",
    metric = "5xx_rate" } }, {}) end, "stable.*`nope`")
  bad(function() gate.prepare_all({ gate.alb_latency { target_group =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/gone/0123456789abcdef", below_ms = 1 } }, {}) end,
    "target_group.*gone")
end)

T.test("a cloudwatch gate whose query breaks CloudWatch's model is rejected at prepare, before any change", function()
  local g = gate.cloudwatch { name = "orders", expression = "m1/m2", above = 0.95, metrics = {
    m1 = { namespace = "AWS/ApplicationELB", metric = "HTTPCode_Target_2XX_Count", stat = "Sum",
           dimensions = { TargetGroup = "" } },
    m2 = { namespace = "AWS/ApplicationELB", metric = "RequestCount", stat = "Sum",
           dimensions = { TargetGroup = "" } } } }
  local e = T.raises(function() gate.prepare_all({ g }, {}) end,
    "gate%.cloudwatch: `orders`: its query is not valid: .*MetricDataQueries%[1%]%.MetricStat%.Metric%.Dimensions%[1%]%.Value")
  T.eq(e.kind, "bad_input")
end)

T.test("the error's field is the option it names, for code that reads it rather than the text", function()
  T.eq(bad(function() gate.alb_5xx_rate { target_group = "a", below = 120 } end, "below").field, "below")
  T.eq(bad(function() gate.cloudwatch { expression = "m1", below = 1, metrics = { m1 = { namespace = "N" } } } end,
    "metrics%.m1%.metric").field, "metrics.m1.metric")
  T.eq(bad(function() gate.alarm { "x", dryrun = true } end, "dryrun").field, "dryrun")
  T.eq(bad(function() gate.prepare_all({ "oops" }, {}) end, "gates%[1%]").field, "gates")
  T.eq(bad(function() gate.check("x", function() end, { error_limit = 0 }) end, "error_limit").kind, "bad_input")
end)

T.test("a cloudwatch expression naming a metric id that metrics= lacks is bad input when built", function()
  local m = { m1 = { namespace = "AWS/ApplicationELB", metric = "RequestCount", stat = "Sum",
    dimensions = { TargetGroup = "x" } } }
  local e = bad(function() gate.cloudwatch { name = "ratio", expression = "m1/m3", below = 1, metrics = m } end,
    "gate%.cloudwatch: expression: names metric id `m3`, which metrics= does not define; did you mean `m1`%?")
  T.eq(e.field, "expression")
  -- functions, keywords, numbers and quoted strings name no ids
  local g = gate.cloudwatch { name = "ok", below = 1, metrics = m,
    expression = "FILL(m1, 0) * 100 / 1e3 + SUM(METRICS('m9')) * 0" }
  T.ok(g, "a valid expression is accepted")
end)
