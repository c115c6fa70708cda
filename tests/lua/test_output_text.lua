-- Output for people when standard output is not a terminal (issue 11, item 3), and the
-- messages of item 7 with their exit codes: plain lines with no escape codes and no \r, one
-- line per measurement round with each gate's value, unit and threshold, the failure's reason
-- said once, -q still showing what was undone, and a summary table per rollout.
-- The terminal's own output (progress line, colours) is tests/py/test_terminal_output.py.
local T = require "harness"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs `ecsplay ARGS` with both streams piped; returns stdout, stderr, exit code.
local function run(args)
  local err_file = os.tmpname()
  local out, rc = T.sh("{ " .. T.bin .. " " .. args .. " 2>" .. err_file .. "; }")
  local f = io.open(err_file, "r")
  local err = f:read("a")
  f:close()
  os.remove(err_file)
  return out, err, rc
end

local function count(s, plain)
  local n, i = 0, 1
  while true do
    local a, b = s:find(plain, i, true)
    if not a then return n end
    n, i = n + 1, b + 1
  end
end

local function lines_of(s)
  local out = {}
  for l in s:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

local ESC = string.char(27)

T.test("piped: plain lines, no escape codes, no carriage returns", function()
  for _, args in ipairs { "--simulate playbooks/canary.lua image=api:flaky", "--simulate playbooks/codedeploy.lua" } do
    local out, err = run(args)
    T.ok(out:find("step", 1, true), out)
    T.ok(not out:find(ESC, 1, true) and not err:find(ESC, 1, true), "no escape code: " .. out .. err)
    T.ok(not out:find("\r", 1, true) and not err:find("\r", 1, true), "no \\r: " .. out .. err)
  end
end)

T.test("one line per round: every gate's value, unit and threshold; no per-gate pass lines", function()
  local out, err, rc = run("--simulate playbooks/canary.lua")
  T.eq(rc, 0, err)
  T.eq(count(out, "gate 5xx rate"), 0, "no per-gate lines:\n" .. out)
  local rounds = 0
  for _, l in ipairs(lines_of(out)) do
    if l:match("^%[%d%d:%d%d:%d%d%] step %d/4 %d+%% %[") then
      rounds = rounds + 1
      T.ok(l:find(" alarm 0 ✓", 1, true), l)
      if l:find("5xx", 1, true) then
        -- "5xx 0.17% < 1% ✓  p99 148 ms < 300 ms ✓"
        T.ok(l:match(" 5xx %d+%.%d%d%% < 1%% ✓  p99 %d+ ms < 300 ms ✓  alarm 0 ✓  %[%d%d:%d%d%-%d%d:%d%d%]$"), l)
      end
    end
  end
  T.ok(rounds >= 4 * 5, "a round line per measurement of each 5-minute step: " .. rounds)
  -- what a 34-minute canary with three gates prints: its steps, its rounds, a few lines around them
  local total = #lines_of(out)
  T.ok(total <= rounds + 25, total .. " lines for " .. rounds .. " rounds:\n" .. out)
  -- -v still shows each measurement on its own line
  local verbose = run("-v --simulate playbooks/canary.lua")
  T.ok(verbose:find("gate 5xx rate api-canary: pass ", 1, true), verbose)
end)

T.test("a failure's reason is said once: the last line; the abort and rollback lines do not repeat it", function()
  local out, err, rc = run("--simulate playbooks/canary.lua image=api:flaky")
  T.eq(rc, 1, err)
  local reason = "gate `alarm api-5xx-high` failed 1 time(s) in a row (limit 1)"
  T.eq(count(out .. err, reason), 1, out .. err)
  T.ok(err:match("ecsplay: playbooks/canary.lua:%d+: canary api rolled back: GateFailed: " .. reason:gsub("%p", "%%%0")),
    err)
  -- the failed measurement itself is in its round's line, with the value
  T.ok(err:find("warning: step 2/4 25% [3m/5m]  alarm 1 ✗ (in ALARM: api-5xx-high)", 1, true), err)
  T.ok(err:find("error: canary api aborted\n", 1, true), err)
  T.ok(err:find("warning: rolling back 2 change(s)\n", 1, true), err)
end)

T.test("the summary table: each step, its weight, time held and each gate's min/max/last", function()
  local out = run("--simulate playbooks/canary.lua image=api:flaky")
  -- 12m to the abort, then the rollback: traffic home at once, the canary's scale-in waited for (15 s)
  local at = out:find("summary: canary api rolled back in 12m15s (api:1 → api:2)\n", 1, true)
  T.ok(at, out)
  local tbl = lines_of(out:sub(at))
  T.ok(tbl[2]:match("^  step +weight +held +5xx %(%%%) min/max/last +p99 %(ms%) min/max/last +alarm min/max/last$"),
    tbl[2])
  T.ok(tbl[3]:match("^  1/4 +10%% +8m +%d%.%d%d/%d%.%d%d/%d%.%d%d +%d+/%d+/%d+ +0/0/0$"), tbl[3])
  -- step 2 failed on its third minute: no 5xx period judged yet, the alarm went from 0 to 1; its
  -- row closes at the abort (3m), not after the rollback's scale-in wait (15 s more)
  T.ok(tbl[4]:match("^  2/4 +25%% +3m +%- +%- +0/1/1$"), tbl[4])
  T.eq(#tbl, 4, out:sub(at))
end)

T.test("-q: warnings, errors and what was undone; no rounds that passed, no table", function()
  local out, err, rc = run("-q --simulate playbooks/canary.lua image=api:flaky")
  T.eq(rc, 1, err)
  T.ok(out:find("undone: traffic back to api-canary=0 api-stable=100\n", 1, true), out)
  T.ok(out:find("undone: service api-canary back to task definition api:1, desired count 0\n", 1, true), out)
  T.ok(not out:find("✓", 1, true) and not out:find("summary:", 1, true), out)
  T.ok(err:find("alarm 1 ✗", 1, true), err)
end)

T.test("other strategies: their rounds and tables, durations as durations", function()
  local out, err, rc = run("--simulate playbooks/blue_green.lua")
  T.eq(rc, 0, err)
  T.ok(out:find("keeping blue api for 5m\n", 1, true), out)
  T.ok(out:match("keep_blue %[%d+m/5m%]  5xx [%d.]+%% < 1%% ✓  p99 %d+ ms < 300 ms ✓"), out)
  T.ok(out:find("summary: blue_green api succeeded in 9m (api:1 → api:2)", 1, true), out)
  out, err, rc = run("--simulate playbooks/rolling.lua")
  T.eq(rc, 0, err)
  T.ok(out:find("baking 2m with 1 gate(s)\n", 1, true), out)
  out, err, rc = run("--simulate playbooks/codedeploy.lua")
  T.eq(rc, 0, err)
  -- the rounds fall on the minutes (bake.lua's grid), CodeDeploy shifts at :45: "[1m15s]", "4m45s"
  T.ok(out:match("shifting 10%% %[%d+m%d*s?%]  healthy 3 >= 3 ✓"), out)
  T.ok(out:match("\n  shifting +10%% +%d+m%d*s? +3/3/3\n  shifting +100%% +%d+m%d*s? +3/3/3\n"), out)
end)

T.test("gate values carry their unit in the failure's reason", function()
  local out, err, rc = run("--simulate playbooks/linear.lua image=api:slow")
  T.eq(rc, 1, err)
  T.ok(err:match("failed 1 time%(s%) in a row %(limit 1%): fail %d+ ms %(want < 300 ms%)"), err)
  T.ok((out .. err):match("p99 %d+ ms < 300 ms ✗"), out .. err)
end)

---------------------------------------------------------------- item 7: messages and exit codes

-- The last line on stderr must be exactly `want`, with exit code `code` and no traceback.
local function expect(args, code, want)
  local out, err, rc = run(args)
  T.eq(rc, code, "exit code of ecsplay " .. args .. " (" .. err .. ")")
  T.ok(not err:find("stack traceback", 1, true), "no traceback: " .. err)
  T.eq(err:gsub("\n$", ""):match("[^\n]*$"), want, "the last line")
  return out, err
end

local function canary(opts)
  if not opts:find("steps", 1, true) then opts = "steps = { 10, 100 }, " .. opts end
  return "--simulate -e " .. q('require("ecsplay.rollout").canary { image = "api:v2", ' .. opts .. " }")
end

T.test("strategy option errors show the value as the parameter checker does: exit 2", function()
  local pre = "ecsplay: (command line):1: rollout.canary: "
  expect(canary('steps = { 10, "25" }'), 2, pre .. 'steps[2]: expected a percentage, got string "25" [BadInput]')
  expect(canary("steps = { 10, 250 }"), 2, pre .. "steps[2]: expected a percentage above 0 and at most 100, "
    .. "got integer 250 [BadInput]")
  expect(canary("steps = {}"), 2, pre .. "steps: expected a non-empty list of percentages, like { 10, 25, 50, 100 }, "
    .. "got an empty table [BadInput]")
  expect(canary('failure_limit = "2"'), 2, pre .. 'failure_limit: expected an integer, got string "2" [BadInput]')
  expect(canary("canary_count = 0"), 2, pre .. "canary_count: expected an integer from 1 to inf, got integer 0 "
    .. "[BadInput]")
  expect(canary('promote = "yes"'), 2, pre .. 'promote: expected true or false, got string "yes" [BadInput]')
  expect(canary("interval = 0"), 2, pre .. "interval: expected a duration above 0, got integer 0 [BadInput]")
  expect(canary("cluster = 5"), 2, pre .. "cluster: expected a non-empty string, got integer 5 [BadInput]")
  expect(canary("on_abort = true"), 2, pre .. "on_abort: expected a function, got boolean true [BadInput]")
  expect(canary('stable = 4'), 2, pre .. 'stable: expected { service = "...", target_group = "..." }, got integer 4 '
    .. "[BadInput]")
  expect(canary('gates = "all"'), 2, pre .. 'gates: expected a list of gates (or a function(green) returning one), '
    .. 'got string "all" [BadInput]')
  expect("--simulate -e " .. q('require("ecsplay.rollout").linear { image = "api:v2", step = "10" }'), 2,
    'ecsplay: (command line):1: rollout.linear: step: expected a percentage above 0 and at most 100, got string "10" '
    .. "[BadInput]")
end)

T.test("unknown strategy options and values get a suggestion: exit 2", function()
  expect(canary("stabel = {}"), 2, "ecsplay: (command line):1: rollout.canary: stabel: unknown option; "
    .. "did you mean `stable`? [BadInput]")
  expect(canary('canary = { servcie = "api-canary" }'), 2, "ecsplay: (command line):1: rollout.canary: "
    .. "canary.servcie: unknown option; did you mean `service`? [BadInput]")
  expect("--simulate -e " .. q('require("ecsplay.rollout").ecs_native { image = "api:v2", strategy = "CANARI" }'), 2,
    'ecsplay: (command line):1: rollout.ecs_native: strategy: expected "BLUE_GREEN", "LINEAR" or "CANARY", '
    .. 'got string "CANARI"; did you mean "CANARY"? [BadInput]')
end)

T.test("gate option errors show the value with its type: exit 2", function()
  local function g(src) return "--simulate -e " .. q('local gate = require("ecsplay.gate") ' .. src) end
  expect(g('gate.alb_5xx_rate { target_group = "api-canary", below = "1" }'), 2,
    'ecsplay: (command line):1: gate.alb_5xx_rate: below: expected a percentage from 0 to 100, got string "1" '
    .. "[BadInput]")
  expect(g('gate.alb_latency { target_group = "api-canary", below_ms = -5 }'), 2,
    "ecsplay: (command line):1: gate.alb_latency: below_ms: expected milliseconds above 0, got integer -5 [BadInput]")
  expect(g('gate.alb_healthy_hosts { target_group = "api-canary", at_least = 1.5 }'), 2,
    "ecsplay: (command line):1: gate.alb_healthy_hosts: at_least: expected an integer of 1 or more, got number 1.5 "
    .. "[BadInput]")
  expect(g('gate.cloudwatch { namespace = "N", metric = "M", below = 1, unit = 7 }'), 2,
    'ecsplay: (command line):1: gate.cloudwatch: unit: expected the unit its values are in, like "%", "ms" or '
    .. '"count", got integer 7 [BadInput]')
end)

T.test("a timeout names its duration as a duration: exit 1", function()
  local dir = T.tmpdir()
  local scn = dir .. "/late.lua"
  local f = assert(io.open(scn, "w"))
  f:write('return { images = { ["api:late"] = { start = "20m" } } }\n')
  f:close()
  local _, err, rc = run("--simulate=" .. q(scn) .. " -e "
    .. q('require("ecsplay.rollout").canary { image = "api:late", ready_timeout = "2m", steps = { 10, 100 } }'))
  T.eq(rc, 1, err)
  T.ok(not err:find("stack traceback", 1, true), err)
  T.ok(err:match("\necsplay: %(command line%):1: canary api rolled back: Timeout: service api%-canary not ready "
    .. "after 2m: [^\n]+ %[RolloutFailed%]\n$"), err)
  T.ok(not err:find("120s", 1, true), err)
  os.remove(scn)
end)

T.test("the steps of the run journal's rollback plan and undo lines are the same with and without -q", function()
  local out = run("--simulate playbooks/canary.lua image=api:flaky")
  local quiet = run("-q --simulate playbooks/canary.lua image=api:flaky")
  local function undone(s)
    local list = {}
    for l in s:gmatch("undone: [^\n]+") do list[#list + 1] = l end
    return list
  end
  T.eq(undone(quiet), undone(out))
  T.eq(#undone(out), 2)
end)

T.test("a chat notification of an abort says why (the log says it once, at the end)", function()
  local notify = require "ecsplay.notify"
  T.eq(notify.text { strategy = "canary", event = "abort", message = "canary api aborted",
    reason = "GateFailed: gate `5xx rate api-canary` failed" },
    ":x: [canary] canary api aborted: GateFailed: gate `5xx rate api-canary` failed")
  T.eq(notify.text { strategy = "canary", event = "rollback", message = "rolling back 2 change(s)", reason = "x" },
    ":leftwards_arrow_with_hook: [canary] rolling back 2 change(s)")
end)
