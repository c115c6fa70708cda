-- ecsplay.gate: the tracker's limits with scripted gates, every gate kind measured against the
-- in-process simulator (virtual clock), Mann-Whitney U against exact permutation p-values,
-- and bad input (each a BadInput error naming the field, nothing sent).
local T = require "harness"
local R = require "rollout_sim"
local gate = require "ecsplay.gate"
local sched = require "ecsplay.sched"
local aws = require "ecsplay.aws"

---------------------------------------------------------------- scripted gates and the tracker

-- A gate.check whose successive measurements follow `script`: "pass", "fail",
-- "inconclusive" or "error" (the provider raises); the last entry repeats.
local function scripted(name, script, opts)
  local i = 0
  return gate.check(name, function()
    i = math.min(i + 1, #script)
    local r = script[i]
    if r == "error" then error("provider down (scripted)") end
    if r == "inconclusive" then return nil end
    return r == "pass", i
  end, opts)
end

-- Feeds the tracker `rounds` measurements; returns the verdicts, one a round.
local function run(tr, rounds)
  local verdicts = {}
  for r = 1, rounds do
    tr:measure { now = 1e9 + 60 * r, interval = 60 }
    verdicts[r] = (tr:verdict())
  end
  return verdicts
end

T.test("failure_limit counts consecutive failures: fail, pass, fail does not abort at limit 2", function()
  local tr = gate.tracker({ scripted("g", { "fail", "pass", "fail", "pass" }) }, { failure_limit = 2 })
  T.eq(run(tr, 4), { "ok", "ok", "ok", "ok" })
end)

T.test("failure_limit 2: fail, fail aborts, and the reason names the gate and the limit", function()
  local tr = gate.tracker({ scripted("queue drains", { "fail", "fail" }) }, { failure_limit = 2 })
  T.eq(run(tr, 1), { "ok" })
  tr:measure { now = 1e9, interval = 60 }
  local v, why = tr:verdict()
  T.eq(v, "abort")
  T.ok(why:find("queue drains", 1, true) and why:find("limit 2", 1, true), why)
end)

T.test("the default failure_limit is 1; a gate's own limit overrides the rollout's", function()
  T.eq(run(gate.tracker { scripted("g", { "fail" }) }, 1), { "abort" })
  local tr = gate.tracker({ scripted("g", { "fail", "fail", "fail" }, { failure_limit = 3 }) },
    { failure_limit = 1 })
  T.eq(run(tr, 3), { "ok", "ok", "abort" })
end)

T.test("only a pass ends a failure streak: no data in between does not reset it", function()
  local tr = gate.tracker({ scripted("g", { "fail", "inconclusive", "fail" }) }, { failure_limit = 2 })
  T.eq(run(tr, 3), { "ok", "ok", "abort" })
end)

T.test("inconclusive_limit: aborts at the limit of measurements without data in a row", function()
  local tr = gate.tracker({ scripted("quiet", { "inconclusive" }) }, { inconclusive_limit = 3 })
  local v = run(tr, 3)
  T.eq(v, { "ok", "ok", "abort" })
  local _, why = tr:verdict()
  T.ok(why:find("inconclusive 3 time", 1, true), why)
  -- a pass in between starts the count again
  tr = gate.tracker({ scripted("quiet", { "inconclusive", "inconclusive", "pass", "inconclusive",
    "inconclusive", "pass" }) }, { inconclusive_limit = 3 })
  T.eq(run(tr, 6), { "ok", "ok", "ok", "ok", "ok", "ok" })
end)

T.test("error_limit: a provider that raises aborts after error_limit errors, with its message", function()
  local tr = gate.tracker({ scripted("broken", { "error" }) }, { error_limit = 2 })
  T.eq(run(tr, 2), { "ok", "abort" })
  local _, why = tr:verdict()
  T.ok(why:find("could not be measured 2 time", 1, true) and why:find("provider down", 1, true), why)
  T.eq(tr.entries[1].last.result, "error")
  -- errors interleaved with answers are not consecutive
  tr = gate.tracker({ scripted("flaky provider", { "error", "pass", "error", "pass" }) }, { error_limit = 2 })
  T.eq(run(tr, 4), { "ok", "ok", "ok", "ok" })
end)

T.test("an error object from the provider is described by its one-line text", function()
  local tr = gate.tracker({ gate.check("aws", function()
    error(require("ecsplay.errors").aws { service = "cloudwatch", operation = "GetMetricData",
      code = "InternalFailure", message = "try again", status = 500 })
  end) }, {})
  local out = tr:measure { now = 1e9 }
  T.eq(out[1].m.result, "error")
  T.ok(out[1].m.detail:find("InternalFailure", 1, true), out[1].m.detail)
end)

T.test("dry_run never aborts, even with every measurement failing, and does not block promotion", function()
  local tr = gate.tracker({
    scripted("dry fail", { "fail" }, { dry_run = true }),
    scripted("dry error", { "error" }, { dry_run = true }),
    scripted("dry quiet", { "inconclusive" }, { dry_run = true }),
    scripted("real", { "pass" }),
  }, { failure_limit = 1, inconclusive_limit = 1, error_limit = 1 })
  T.eq(run(tr, 10), { "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok" })
  T.ok(tr:all_passed(), "dry-run gates do not hold a step back")
  -- and they were measured and reported all the same
  T.eq(tr.entries[1].last.result, "fail")
  T.eq(tr.entries[2].last.result, "error")
end)

T.test("all_passed: only when each non-dry-run gate's last measurement passed", function()
  local a, b = { "pass" }, { "inconclusive", "pass", "fail", "pass" }
  local tr = gate.tracker({ scripted("a", a), scripted("b", b) }, { failure_limit = 5 })
  T.eq(tr:all_passed(), false, "nothing measured yet")
  local seen = {}
  for r = 1, 4 do
    tr:measure { now = 1e9 + r }
    seen[r] = tr:all_passed()
  end
  T.eq(seen, { false, true, false, true })
  T.ok(gate.tracker({}, {}):all_passed(), "no gates: nothing to wait for")
end)

T.test("a measurement that is not one breaks nothing: counted as an error naming the gate", function()
  local weird = { name = "custom", measure = function() return { result = "passed" } end }
  local none = { name = "nothing", measure = function() end }
  local tr = gate.tracker({ weird, none }, { error_limit = 1 })
  local out = tr:measure { now = 1e9 }
  T.eq(out[1].m.result, "error")
  T.ok(out[1].m.detail:find("passed", 1, true), out[1].m.detail)
  T.eq(out[2].m.result, "error")
  T.eq((tr:verdict()), "abort")
end)

T.test("gate.check: true/false/nil, a second value, and \"pass\"/\"fail\" strings", function()
  local function one(fn) return gate.tracker({ gate.check("c", fn) }):measure({ now = 1 })[1].m end
  T.eq(one(function() return true, 3 end).result, "pass")
  T.eq(one(function() return true, 3 end).value, 3)
  T.eq(one(function() return false end).result, "fail")
  T.eq(one(function() return nil end).result, "inconclusive")
  T.eq(one(function() return "fail" end).result, "fail")
  T.eq(one(function() return "inconclusive" end).result, "inconclusive")
  T.eq(one(function() return { result = "fail", value = 7, threshold = "< 5" } end).value, 7)
  T.eq(gate.check(function() return true end).name, "check")
end)

T.test("describe() shows result, value and threshold", function()
  local s = gate.describe { result = "fail", value = 6.1234, threshold = "< 1%", detail = "61 of 1000 requests" }
  T.ok(s:find("fail", 1, true) and s:find("6.123", 1, true) and s:find("< 1%", 1, true)
    and s:find("61 of 1000", 1, true), s)
  T.eq(gate.describe(nil), "not measured")
  -- and the abort reason carries them too
  local tr = gate.tracker({ gate.check("depth", function()
    return { result = "fail", value = 250, threshold = "< 100" } end) }, {})
  tr:measure { now = 1 }
  local _, why = tr:verdict()
  T.ok(why:find("250", 1, true) and why:find("< 100", 1, true), why)
end)

T.test("prepare_all rejects something that is not a gate, naming its index", function()
  local e = T.raises(function() gate.prepare_all({ gate.check("x", function() end), "oops" }, {}) end,
    "gates%[2%]")
  T.eq(e.code, "BadInput")
end)

---------------------------------------------------------------- against the simulator

local ecs = require "ecsplay.ecs"
local ecs_util = require "ecsplay.rollout.ecs_util"
local traffic = require "ecsplay.rollout.traffic"

--[[ A fresh default world with api-canary running `image` (2 tasks), `weight` percent of
     the rule's traffic on it, after `minutes` of that traffic. ]]
local function world(image, weight, minutes)
  R.fresh()
  local stable, canary = traffic.target_group_arn("api-stable"), traffic.target_group_arn("api-canary")
  if image then
    local td = ecs_util.register_with_image("api:1", image, "api", "image")
    ecs.update_service { cluster = "production", service = "api-canary", taskDefinition = td, desiredCount = 2 }
    ecs_util.wait_ready("production", "api-canary", td, 2, { canary }, 600)
  end
  if weight and weight > 0 then
    traffic.set(traffic.resolve(nil, { stable, canary }), { [stable] = 100 - weight, [canary] = weight })
  end
  sched.sleep((minutes or 0) * 60)
end

local function measure(g, extra)
  gate.prepare_all({ g }, {})
  local ctx = { now = sched.now(), interval = 60 }
  for k, v in pairs(extra or {}) do ctx[k] = v end
  local m = gate.tracker({ g }):measure(ctx)[1].m
  return m, gate.describe(m)
end

T.test("alb_5xx_rate: api:flaky at 25% fails with a value near 6%", function()
  world("api:flaky", 25, 4)
  local m, text = measure(gate.alb_5xx_rate { target_group = "api-canary", below = 1.0, window = "3m" })
  T.eq(m.result, "fail", text)
  T.near(m.value, 6, 1.0, text)
  T.ok(text:find("< 1%", 1, true), text)
end)

T.test("alb_5xx_rate: a healthy canary (api:v2 at 25%) passes", function()
  world("api:v2", 25, 4)
  local m, text = measure(gate.alb_5xx_rate { target_group = "api-canary", below = 1.0, window = "3m" })
  T.eq(m.result, "pass", text)
  T.ok(m.value < 1, text)
end)

T.test("alb_5xx_rate: no traffic (weight 0) is inconclusive from the min_requests guard", function()
  world("api:flaky", 0, 4)
  local m, text = measure(gate.alb_5xx_rate { target_group = "api-canary", below = 1.0, window = "3m" })
  T.eq(m.result, "inconclusive", text)
  T.ok(text:find("requests", 1, true), text)
  -- a guard above what the canary gets is inconclusive too
  world("api:v2", 1, 3) -- 1% of 200 rps: 120 requests a minute
  m, text = measure(gate.alb_5xx_rate { target_group = "api-canary", below = 1.0, min_requests = 10000 })
  T.eq(m.result, "inconclusive", text)
  m, text = measure(gate.alb_5xx_rate { target_group = "api-canary", below = 5.0, min_requests = 50 })
  T.ok(m.result ~= "inconclusive", text)
end)

T.test("alb_latency: api:slow fails p99 < 300 ms; api:v2 passes", function()
  world("api:slow", 25, 3)
  local m, text = measure(gate.alb_latency { target_group = "api-canary", p = 99, below_ms = 300 })
  T.eq(m.result, "fail", text)
  T.ok(m.value > 800 and m.value < 2000, text)
  T.ok(text:find("< 300 ms", 1, true), text)
  local m50 = measure(gate.alb_latency { target_group = "api-canary", p = 50, below_ms = 1000 })
  T.eq(m50.result, "pass")
  T.near(m50.value, 300, 60, "p50 of api:slow")
  world("api:v2", 25, 3)
  local p99, text99 = measure(gate.alb_latency { target_group = "api-canary", below_ms = 300 })
  T.eq(p99.result, "pass", text99)
  T.near(p99.value, 150, 40, text99) -- the default image's p99 is 150 ms
  m, text = measure(gate.alb_latency { target_group = "api-canary", p = 99.9, below_ms = 300 })
  T.ok(m.value > p99.value, text)
  T.ok(text:find("p99.9", 1, true) == nil and m.threshold == "< 300 ms", text)
  T.eq(gate.alb_latency { target_group = "api-canary", p = 99.9, below_ms = 300 }.name,
    "p99.9 latency api-canary")
end)

T.test("alb_latency: no traffic is inconclusive", function()
  world(nil, 0, 2)
  local m, text = measure(gate.alb_latency { target_group = "api-canary", below_ms = 300 })
  T.eq(m.result, "inconclusive", text)
end)

T.test("alb_healthy_hosts: counts healthy targets now", function()
  world("api:v2", 0, 0)
  local m, text = measure(gate.alb_healthy_hosts { target_group = "api-canary", at_least = 2 })
  T.eq({ m.result, m.value }, { "pass", 2 }, text)
  m, text = measure(gate.alb_healthy_hosts { target_group = "api-stable", at_least = 5 })
  T.eq({ m.result, m.value }, { "fail", 4 }, text)
  T.ok(text:find(">= 5", 1, true), text)
end)

T.test("alarm: OK passes, ALARM fails naming it, INSUFFICIENT_DATA is inconclusive", function()
  world(nil, 0, 0)
  local cloudwatch = require "ecsplay.cloudwatch"
  local g = gate.alarm { "api-5xx-high" }
  T.eq(measure(g).result, "pass")
  cloudwatch.set_alarm_state { AlarmName = "api-5xx-high", StateValue = "ALARM", StateReason = "test" }
  local m, text = measure(g)
  T.eq(m.result, "fail", text)
  T.ok(text:find("api-5xx-high", 1, true), text)
  cloudwatch.set_alarm_state { AlarmName = "api-5xx-high", StateValue = "INSUFFICIENT_DATA", StateReason = "test" }
  T.eq(measure(g).result, "inconclusive")
  T.eq(measure(gate.alarm "api-5xx-high").result, "inconclusive", "a single name as a string")
end)

T.test("alarm: a name that does not exist is BadInput at prepare", function()
  world(nil, 0, 0)
  local e = T.raises(function() gate.prepare_all({ gate.alarm { "api-5xx-high", "no-such-alarm" } }, {}) end,
    "no%-such%-alarm")
  T.eq(e.code, "BadInput")
end)

T.test("cloudwatch: an expression m1/m2*100 over 5xx and RequestCount", function()
  world("api:flaky", 25, 4)
  local dims = gate.alb_dimensions("api-canary")
  local function g(threshold)
    local o = { name = "canary 5xx %", expression = "m1/m2*100", aggregate = "avg", window = "3m",
      metrics = {
        m1 = { namespace = "AWS/ApplicationELB", metric = "HTTPCode_Target_5XX_Count", dimensions = dims, stat = "Sum" },
        m2 = { namespace = "AWS/ApplicationELB", metric = "RequestCount", dimensions = dims, stat = "Sum" },
      } }
    for k, v in pairs(threshold) do o[k] = v end
    return gate.cloudwatch(o)
  end
  local m, text = measure(g { below = 1 })
  T.eq(m.result, "fail", text)
  T.near(m.value, 6, 1.0, text)
  m, text = measure(g { below = 10 })
  T.eq(m.result, "pass", text)
  m, text = measure(g { above = 3, below = 10 })
  T.eq(m.result, "pass", text)
  T.ok(text:find("> 3", 1, true) and text:find("< 10", 1, true), text)
  -- a single metric, with the dimensions as a map
  m, text = measure(gate.cloudwatch { namespace = "AWS/ApplicationELB", metric = "RequestCount",
    dimensions = { TargetGroup = dims[1].Value, LoadBalancer = dims[2].Value }, stat = "Sum", above = 1000 })
  T.eq(m.result, "pass", text) -- 25% of 200 rps: ~3000 a minute
  T.near(m.value, 3000, 300, text)
  -- the window's datapoints aggregated: three minutes of ~3000 requests
  local function agg(a)
    return (measure(gate.cloudwatch { namespace = "AWS/ApplicationELB", metric = "RequestCount",
      dimensions = dims, stat = "Sum", above = 0, aggregate = a, window = "3m" })).value
  end
  local total, lo, hi, avg = agg("sum"), agg("min"), agg("max"), agg("avg")
  T.near(total, 9000, 900, "sum")
  T.ok(lo <= avg and avg <= hi and hi < total, string.format("min %s avg %s max %s", lo, avg, hi))
  T.near(avg, total / 3, 1e-6, "avg of three minutes")
  -- a metric nobody publishes: no data
  m, text = measure(gate.cloudwatch { namespace = "Custom", metric = "Nothing", below = 1 })
  T.eq(m.result, "inconclusive", text)
end)

-- The loopback stub (tests/wire/http_stub.py): /status?code=N answers N.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local function with_stub(fn)
  local stub = io.popen("exec /usr/bin/python3 " .. here .. "/../wire/http_stub.py --port 0", "r")
  local port = tonumber(stub:read("l"))
  assert(port, "http_stub.py did not report its port")
  local ok, err = pcall(fn, "http://127.0.0.1:" .. port)
  require("ecsplay.http").request { url = "http://127.0.0.1:" .. port .. "/quit", timeout = 5 }
  stub:close()
  if not ok then error(err, 0) end
  return port
end

T.test("http: 200 passes, 500 fails with the status, a body pattern, connection refused fails", function()
  local port = with_stub(function(base)
    local m, text = measure(gate.http { url = base .. "/status?code=200&body=ready" })
    T.eq({ m.result, m.value }, { "pass", 200 }, text)
    m, text = measure(gate.http { url = base .. "/status?code=500" })
    T.eq({ m.result, m.value }, { "fail", 500 }, text)
    T.ok(text:find("status 200", 1, true), text)
    m, text = measure(gate.http { url = base .. "/status?code=503", status = 503 })
    T.eq(m.result, "pass", text)
    m = measure(gate.http { url = base .. "/status?code=200&body=ready", body = "^ready$" })
    T.eq(m.result, "pass")
    m, text = measure(gate.http { url = base .. "/status?code=200&body=starting", body = "ready" })
    T.eq(m.result, "fail", text)
  end)
  -- the stub has quit: nothing listens on its port any more
  local m, text = measure(gate.http { url = "http://127.0.0.1:" .. port .. "/health", timeout = "2s" })
  T.eq(m.result, "fail", text)
  T.ok(m.detail and #m.detail > 0, "the connection error is shown")
end)

-- canary and stable series for the baseline gate, baked for `minutes`
local function baseline_measure(opts, minutes)
  local started = sched.now()
  sched.sleep(minutes * 60)
  local o = { canary = "api-canary", stable = "api-stable", metric = "5xx_rate" }
  for k, v in pairs(opts or {}) do o[k] = v end
  return measure(gate.baseline(o), { bake_started = started })
end

T.test("baseline: api:flaky against api:v1 at 50/50 fails", function()
  world("api:flaky", 50, 0)
  local m, text = baseline_measure({}, 8)
  T.eq(m.result, "fail", text)
  T.ok(m.value < 0.05, text)
end)

T.test("baseline: the same image on both sides passes", function()
  world("api:v1", 50, 0)
  local m, text = baseline_measure({}, 8)
  T.eq(m.result, "pass", text)
  T.ok(m.value > 0.05 and text:find("no evidence", 1, true), text)
end)

T.test("baseline: latency of api:slow against api:v1 fails; too few samples is inconclusive", function()
  world("api:slow", 50, 0)
  local m, text = baseline_measure({ metric = "latency", p = 99 }, 7)
  T.eq(m.result, "fail", text)
  world("api:flaky", 50, 0)
  m, text = baseline_measure({ min_samples = 5 }, 2)
  T.eq(m.result, "inconclusive", text)
  T.ok(text:find("samples", 1, true), text)
end)

T.test("baseline: a canary without traffic is inconclusive, not a pass", function()
  world("api:v2", 0, 0)
  local m, text = baseline_measure({}, 8)
  T.eq(m.result, "inconclusive", text)
end)

---------------------------------------------------------------- Mann-Whitney U

-- The exact one-sided p-value P(U >= u_observed) over every split of the pooled values
-- (brute force, for tiny samples), with mid-ranks for ties.
local function exact_p(a, b)
  local pool = {}
  for _, v in ipairs(a) do pool[#pool + 1] = v end
  for _, v in ipairs(b) do pool[#pool + 1] = v end
  local n, n1 = #pool, #a
  local function u_of(idx)
    local u = 0
    local inside = {}
    for _, i in ipairs(idx) do inside[i] = true end
    for _, i in ipairs(idx) do
      for j = 1, n do
        if not inside[j] then
          if pool[i] > pool[j] then u = u + 1 elseif pool[i] == pool[j] then u = u + 0.5 end
        end
      end
    end
    return u
  end
  local obs = {}
  for i = 1, n1 do obs[i] = i end
  local u_obs = u_of(obs)
  local total, hits = 0, 0
  local pick = {}
  local function rec(start, k)
    if k > n1 then
      total = total + 1
      if u_of(pick) >= u_obs - 1e-9 then hits = hits + 1 end
      return
    end
    for i = start, n - (n1 - k) do
      pick[k] = i
      rec(i + 1, k + 1)
    end
    pick[k] = nil
  end
  rec(1, 1)
  return hits / total, u_obs
end

T.test("mann_whitney: textbook exact values for fully separated samples", function()
  T.near((gate.mann_whitney({ 4, 5, 6 }, { 1, 2, 3 })), 1 / 20, 1e-9, "3 vs 3")
  T.near((gate.mann_whitney({ 5, 6, 7, 8 }, { 1, 2, 3, 4 })), 1 / 70, 1e-9, "4 vs 4")
  T.near((gate.mann_whitney({ 6, 7, 8, 9, 10 }, { 1, 2, 3, 4, 5 })), 1 / 252, 1e-9, "5 vs 5")
  local p, u = gate.mann_whitney({ 6, 7, 8, 9, 10 }, { 1, 2, 3, 4, 5 })
  T.eq(u, 25.0)
  T.near(p, 1 / 252, 1e-9)
  -- the other direction: the canary is better, nowhere near significant
  T.near((gate.mann_whitney({ 1, 2, 3 }, { 4, 5, 6 })), 1, 1e-9)
end)

T.test("mann_whitney: matches a brute-force permutation test, with and without ties", function()
  local cases = {
    { { 1.1, 2.4, 3.9, 5.0 }, { 0.5, 2.0, 2.2 } },
    { { 3, 4, 2, 6, 2, 5 }, { 9, 7, 5, 10, 6, 8 } },
    { { 7, 3, 9, 4, 8 }, { 1, 3, 2, 5, 3, 4 } },
    { { 0.9, 1.2, 1.0, 1.5 }, { 1.0, 1.1, 0.8, 1.2, 0.7 } },
    { { 2, 2, 2, 3 }, { 1, 2, 2, 2 } },
    { { 12, 15, 11, 19, 14, 18, 16 }, { 10, 13, 9, 12, 8, 11, 14 } },
  }
  for i, c in ipairs(cases) do
    local want, u_want = exact_p(c[1], c[2])
    local got, u = gate.mann_whitney(c[1], c[2])
    T.near(u, u_want, 1e-9, "U of case " .. i)
    T.near(got, want, 1e-9, "p of case " .. i)
  end
end)

T.test("mann_whitney: large samples (normal approximation) behave", function()
  local lo, hi, same_a, same_b = {}, {}, {}, {}
  for i = 1, 40 do
    lo[i], hi[i] = i, i + 100
    same_a[i], same_b[i] = (i * 7) % 40, (i * 11) % 40 -- the same values in another order
  end
  local p = gate.mann_whitney(hi, lo)
  T.ok(p < 1e-9, "separated: " .. p)
  T.near((gate.mann_whitney(same_a, same_b)), 0.5, 0.05, "same distribution")
  -- a textbook normal-approximation value: n1 = n2 = 40, U = 1000 (z ~ 2.06) -> p ~ 0.02
  local a, b = {}, {}
  for i = 1, 40 do b[i] = i * 2 end -- 2,4,...,80
  for i = 1, 40 do a[i] = i * 2 + 25 end -- shifted by 12.5 positions
  local pa, ua = gate.mann_whitney(a, b)
  T.ok(ua > 800 and ua < 1400, "U " .. ua)
  T.ok(pa > 0 and pa < 0.05, "p " .. pa)
  -- degenerate inputs do not divide by zero
  T.eq((gate.mann_whitney({}, { 1, 2 })), 1)
  T.eq((gate.mann_whitney({ 3 }, {})), 1)
  T.near((gate.mann_whitney({ 2, 2 }, { 2, 2 })), 1, 1e-9, "all tied: no evidence")
end)

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
  world(nil, 0, 0)
  bad(function() gate.prepare_all({ gate.alb_5xx_rate { target_group = "nope", below = 1 } }, {}) end,
    "target_group.*`nope` does not exist")
  bad(function() gate.prepare_all({ gate.alb_healthy_hosts { target_group = "nope", at_least = 1 } }, {}) end,
    "target_group.*`nope`")
  bad(function() gate.prepare_all({ gate.baseline { canary = "api-canary", stable = "nope",
    metric = "5xx_rate" } }, {}) end, "stable.*`nope`")
  bad(function() gate.prepare_all({ gate.alb_latency { target_group =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/gone/0123456789abcdef", below_ms = 1 } }, {}) end,
    "target_group.*gone")
end)

T.test("a canary whose gate names a missing target group: exit 2, nothing changed", function()
  world(nil, 0, 0)
  local rollout = require "ecsplay.rollout"
  local before = aws.stats.mutating_calls
  local code, err = R.call(function()
    return rollout.canary { image = "api:v2", container = "api", steps = { 50 }, bake = "1m",
      gates = { gate.alb_5xx_rate { target_group = "api-canray", below = 1 } } }
  end)
  T.eq(code, 2, err)
  T.ok(err:find("api-canray", 1, true) and err:find("target_group", 1, true), err)
  T.eq(aws.stats.mutating_calls, before, "no mutating call was sent")
  T.eq(R.weights(), { ["api-stable"] = 100, ["api-canary"] = 0 })
  T.eq(R.revisions("api"), 1)
  T.eq({ R.service("api").td, R.service("api-canary").desired }, { "api:1", 0 })
  -- and the same through the command line
  local out, rc = T.sh(R.bin .. " --simulate -e 'local rollout, gate = require \"ecsplay.rollout\", "
    .. "require \"ecsplay.gate\"; rollout.canary{ image = \"api:v2\", container = \"api\", steps = {50}, "
    .. "bake = \"1m\", gates = { gate.alb_5xx_rate{ target_group = \"nope\", below = 1 } } }'")
  T.eq(rc, 2, out)
  T.ok(out:find("nope", 1, true) and out:find("target_group", 1, true), out)
end)

T.test("a canary with only a dry-run 5xx gate on api:flaky is promoted; the failures are reported", function()
  world(nil, 0, 0)
  local rollout = require "ecsplay.rollout"
  local code, err, report = R.call(function()
    return rollout.canary { image = "api:flaky", container = "api", steps = { 50 }, bake = "3m",
      interval = "1m", failure_limit = 1,
      gates = { gate.alb_5xx_rate { target_group = "api-canary", below = 1.0, dry_run = true, min_requests = 1 } } }
  end)
  T.eq(code, 0, err)
  local fails = 0
  for _, round in ipairs(report.steps[1].measurements) do
    for _, m in ipairs(round) do
      if m.result == "fail" then fails = fails + 1; T.eq(m.dry_run, true) end
    end
  end
  T.ok(fails >= 2, "the dry-run gate measured failures: " .. fails)
  T.eq(R.service("api").td, "api:2", "promoted")
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
