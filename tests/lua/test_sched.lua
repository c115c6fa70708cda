-- The scheduler: tasks, timers, the virtual clock, joins, errors, signals.
local T = require "harness"
local sched = require "ecsplay.sched"

T.test("sleep orders tasks by deadline on the real clock", function()
  local order = {}
  local a = ecsplay.spawn(function() ecsplay.sleep(0.06) order[#order + 1] = "a" end)
  local b = ecsplay.spawn(function() ecsplay.sleep(0.02) order[#order + 1] = "b" end)
  local c = ecsplay.spawn(function() ecsplay.sleep("40ms") order[#order + 1] = "c" end)
  a:join() b:join() c:join()
  T.eq(order, { "b", "c", "a" })
end)

T.test("parallel returns results in order and raises the first error after all finish", function()
  local r = ecsplay.parallel { function() ecsplay.sleep(0.01) return 1 end, function() return 2 end }
  T.eq(r, { 1, 2 })
  local finished = false
  T.raises(function()
    ecsplay.parallel {
      function() error("boom") end,
      function() ecsplay.sleep(0.01) finished = true end,
    }
  end, "boom")
  T.ok(finished, "the other function ran to the end")
end)

T.test("map never runs more than limit at once", function()
  local running, peak = 0, 0
  local out = ecsplay.map({ 1, 2, 3, 4, 5, 6, 7 }, function(x)
    running = running + 1
    peak = math.max(peak, running)
    ecsplay.sleep(0.005)
    running = running - 1
    return x * 10
  end, { limit = 3 })
  T.eq(out, { 10, 20, 30, 40, 50, 60, 70 })
  T.eq(peak, 3)
  T.raises(function() ecsplay.map({ 1 }, function() end, { limit = 0 }) end, "limit must be")
end)

T.test("join re-raises the task's error; result() returns it", function()
  local t = ecsplay.spawn(function() error({ code = "X" }) end)
  local ok, e = t:result()
  T.eq(ok, false)
  T.eq(e.code, "X")
  T.raises(function() t:join() end)
end)

T.test("error() with no value is a failure everywhere, never a success", function()
  local errors = require "ecsplay.errors"
  local t = ecsplay.spawn(function() error() end)
  local ok, e = t:result()
  T.eq({ ok, e }, { false, errors.NO_VALUE }, "a task")
  T.raises(function() t:join() end, "no value", "join")
  local mok, merr = pcall(ecsplay.map, { 1, 2, 3 }, function(i) if i == 2 then error(nil) end return i end)
  T.eq(mok, false, "map")
  T.ok(errors.describe(merr):find("no value", 1, true), errors.describe(merr))
  T.raises(function() ecsplay.parallel { function() return 1 end, function() error() end } end, "no value",
    "parallel")
  -- the playbook itself: exit 1, the line that raised it
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write("local x = 1\nerror(nil)\n")
  f:close()
  local out, rc = T.sh(T.bin .. " " .. file .. " 2>&1")
  os.remove(file)
  T.eq(rc, 1, out)
  T.ok(out:find(file .. ":2: " .. errors.NO_VALUE, 1, true), out)
end)

T.test("yields cross pcall and xpcall", function()
  local ok, v = pcall(function() ecsplay.sleep(0.001) return 7 end)
  T.eq({ ok, v }, { true, 7 })
  local ok2 = xpcall(function() ecsplay.sleep(0.001) error("x") end, function(e) return e end)
  T.eq(ok2, false)
end)

T.test("durations are checked", function()
  T.raises(function() ecsplay.sleep("5 parsecs") end, "bad duration")
  T.raises(function() ecsplay.sleep({}) end, "expected a duration")
  T.eq(require("ecsplay.duration").parse("1h30m"), 5400)
  T.eq(require("ecsplay.duration").parse("250ms"), 0.25)
  T.eq(require("ecsplay.duration").format(330), "5m30s")
end)

T.test("the virtual clock jumps: an hour of sleeps costs no wall time", function()
  local ecs = ecsplay -- keep the global in reach
  local out, rc = T.sh(T.bin .. [[ -e '
    local sched = require "ecsplay.sched"
    sched.use_virtual_clock(1000)
    local seen = {}
    local a = ecsplay.spawn(function() for i = 1, 60 do ecsplay.sleep("1m") end seen[#seen+1] = "a" .. ecsplay.now() end)
    local b = ecsplay.spawn(function() ecsplay.sleep("30m") seen[#seen+1] = "b" .. ecsplay.now() end)
    a:join() b:join()
    print(table.concat(seen, " "))']])
  T.eq(rc, 0, out)
  T.ok(out:find("b2800 a4600", 1, true), out)
  _ = ecs
end)

T.test("a task left waiting when the playbook ends is cancelled and can clean up", function()
  local out, rc = T.sh(T.bin .. [[ -e '
    ecsplay.spawn(function()
      local ok, e = pcall(ecsplay.sleep, 3600)
      print("cleanup", ok, e.code)
    end)
    ecsplay.sleep(0.01)']])
  T.eq(rc, 0, out)
  T.ok(out:find("cleanup\tfalse\tCancelled", 1, true), out)
end)

T.test("SIGINT during a sleep runs on_abort handlers newest first and exits 130", function()
  local dir = T.tmpdir()
  local f = io.open(dir .. "/p.lua", "w")
  f:write([[
    ecsplay.on_abort(function() print("undo first") end)
    ecsplay.on_abort(function() print("undo second") ecsplay.sleep(0.01) print("still yields") end)
    print("ready") io.stdout:flush()
    ecsplay.sleep(30)
    print("not reached")
  ]])
  f:close()
  local out, rc = T.sh(T.bin .. " " .. dir .. "/p.lua > " .. dir .. "/out 2>&1 & pid=$!; "
    .. "for i in $(seq 1 100); do grep -q ready " .. dir .. "/out 2>/dev/null && break; sleep 0.05; done; "
    .. "kill -INT $pid; wait $pid; echo exit=$?; cat " .. dir .. "/out")
  T.ok(out:find("exit=130", 1, true), out)
  local s, fi = out:find("undo second", 1, true), out:find("undo first", 1, true)
  T.ok(s and fi and s < fi, "newest first: " .. out)
  T.ok(out:find("still yields", 1, true), out)
  T.ok(not out:find("not reached", 1, true), out)
  T.ok(out:find("interrupted by SIGINT", 1, true), out)
end)

T.test("SIGTERM exits 143 after the handlers", function()
  local dir = T.tmpdir()
  local out = T.sh(T.bin .. " -e 'ecsplay.on_abort(function() print(\"undone\") end) print(\"ready\") "
    .. "io.stdout:flush() ecsplay.sleep(30)' > " .. dir .. "/out 2>&1 & pid=$!; "
    .. "for i in $(seq 1 100); do grep -q ready " .. dir .. "/out 2>/dev/null && break; sleep 0.05; done; "
    .. "kill -TERM $pid; wait $pid; echo exit=$?; cat " .. dir .. "/out")
  T.ok(out:find("exit=143", 1, true), out)
  T.ok(out:find("undone", 1, true), out)
end)

T.test("a waiting outside a task is a clear error", function()
  local out, rc = T.sh(T.bin .. [[ -e 'local co = coroutine.wrap(function() require("ecsplay.sched").sleep(1) end) co()']])
  T.eq(rc, 1, out)
  T.ok(out:find("coroutine.yield", 1, true) or out:find("outside", 1, true), out)
  _ = sched
end)
