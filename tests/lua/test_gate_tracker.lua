-- ecsplay.gate.tracker (and gate.check, gate.describe, gate.prepare_all): the tracker's limits
-- with scripted gates, no AWS involved.
local T = require "harness"
local gate = require "ecsplay.gate"

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

T.test("gate.check: a function returning something else is an error of the gate, naming it", function()
  local tr = gate.tracker({ gate.check("depth", function() return 42 end) }, { error_limit = 1 })
  local m = tr:measure({ now = 1 })[1].m
  T.eq(m.result, "error")
  T.ok(m.detail:find("gate.check `depth`: the function returned 42", 1, true), m.detail)
  T.eq((tr:verdict()), "abort")
end)

---------------------------------------------------------------- a round's gates at once

local sched = require "ecsplay.sched"

-- fn() on the virtual clock (sleeps take no wall time), the real one restored after.
local function on_virtual_clock(fn)
  sched.use_virtual_clock(1e9)
  local ok, err = pcall(fn)
  sched.use_real_clock()
  if not ok then error(err, 0) end
end

T.test("a round's gates are measured at once; the measurements keep the gates' order", function()
  on_virtual_clock(function()
    local events = {}
    local function slow(name, seconds, passes)
      return gate.check(name, function()
        events[#events + 1] = name .. " starts"
        sched.sleep(seconds)
        events[#events + 1] = name .. " ends"
        return passes, seconds
      end)
    end
    local tr = gate.tracker({ slow("a", 30, true), slow("b", 10, false), slow("c", 20, true) }, {})
    local t0 = sched.now()
    local out = tr:measure { now = 1e9 }
    T.eq(events, { "a starts", "b starts", "c starts", "b ends", "c ends", "a ends" })
    T.eq(sched.now() - t0, 30, "the round lasts as long as its slowest gate, not the sum")
    T.eq({ out[1].gate.name, out[2].gate.name, out[3].gate.name }, { "a", "b", "c" })
    T.eq({ out[1].m.value, out[2].m.value, out[3].m.value }, { 30, 10, 20 })
    T.eq({ out[1].m.result, out[2].m.result, out[3].m.result }, { "pass", "fail", "pass" })
    local v, why = tr:verdict()
    T.eq(v, "abort")
    T.ok(why:find("`b`", 1, true), why)
  end)
end)

T.test("a round whose task is cancelled raises only once every gate's task has ended", function()
  on_virtual_clock(function()
    local ended = {}
    local function waits(name)
      return gate.check(name, function()
        local ok, e = pcall(sched.sleep, 600)
        ended[#ended + 1] = name
        if not ok then error(e, 0) end
        return true
      end)
    end
    local tr = gate.tracker({ waits("a"), waits("b"), waits("c") }, {})
    local before, t0 = sched.stats().alive, sched.now()
    local measuring = sched.spawn(function() return tr:measure { now = 1e9 } end)
    sched.sleep(5)
    T.eq(sched.stats().alive, before + 3, "the round's task and a task for each other gate")
    T.eq(measuring:cancel("stop measuring"), true)
    local ok, err = measuring:result()
    T.eq(ok, false)
    T.eq(err.code, "Cancelled")
    table.sort(ended)
    T.eq(ended, { "a", "b", "c" }, "every gate's wait was cut short")
    T.eq(sched.stats().alive, before, "no gate's task left running")
    T.ok(sched.now() - t0 < 600, "nobody waited the gates' 600 s out")
  end)
end)
