-- The journal cannot stop a rollback, and every journal problem is said clearly (issue 12, item 4).
-- A canary that fails its gate (api:flaky) runs in process on the default world with its journal in
-- a temporary folder while the journal's file meets a fault: the disk full from some line on (the
-- fallback copy still works, or nothing works at all), a real tmpfs made read-only (when this
-- runs as root and may mount one), the file deleted mid-run, `ecsplay rollback` of a journal it
-- cannot write. Each case checks the world: the
-- rollback ran to its end (traffic 100 % stable, the canary scaled to zero on its old task
-- definition), the exit code (1: failed and rolled back), and where the records went. Then the
-- journals that cannot be used as they are: a folder, empty, not a journal, a damaged line, no
-- start line, a torn last line; each gets its message, and `ecsplay rollback` does what it safely
-- can, checked on the world as well.
local T = require "harness"
local R = require "rollout_sim"
local json = require "ecsplay.json"
local core = require "ecsplay.core"
local journal = require "ecsplay.rollout.journal"

local HOME = { ["api-stable"] = 100, ["api-canary"] = 0 }
local BIN = R.bin

------------------------------------------------------------------ helpers

local real_getenv = os.getenv
local real_append = core.fsync_append

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function lines(text)
  local out = {}
  for line in (text or ""):gmatch("([^\n]*)\n") do out[#out + 1] = json.decode(line) or { raw = line } end
  return out
end

-- The lines of changes (start, do, done, undone, end, rollout): the run report's step and gate
-- lines aside, which come and go with the gates' measurement rounds.
local REPORT_LINES = { step = true, gate = true }
local function changes(text)
  local out = {}
  for _, l in ipairs(lines(text)) do if not REPORT_LINES[l.t] then out[#out + 1] = l end end
  return out
end

local function last_end(text)
  local status
  for _, l in ipairs(lines(text)) do if l.t == "end" then status = l.status end end
  return status
end

local function ls(dir) return T.files(dir .. "/*.jsonl") end

-- Runs fn with the journal in dir/runs (ECSPLAY_RUNS_DIR) and TMPDIR=dir/tmp, while every journal
-- write goes through fault(path, data, n) (n: the lines of changes written so far, the report's
-- step and gate lines not counted) when given, and after(path, n) runs after each one written.
local function journaled(dir, fn, fault, after)
  os.execute("mkdir -p " .. dir .. "/tmp")
  os.getenv = function(k) -- luacheck: ignore
    if k == "ECSPLAY_RUNS_DIR" then return dir .. "/runs" end
    if k == "TMPDIR" then return dir .. "/tmp" end
    return real_getenv(k)
  end
  local n = 0
  if fault or after then
    core.fsync_append = function(path, data)
      local ok, err
      if fault then ok, err = fault(path, data, n) end
      if ok == nil and err == nil then ok, err = real_append(path, data) end
      if ok and not REPORT_LINES[data:match('^{[^\n]-"t":"(%a+)"') or ""] then
        n = n + 1
        if after then after(path, n) end
      end
      return ok, err
    end
  end
  local ok, a, b, c, d = pcall(fn)
  os.getenv = real_getenv -- luacheck: ignore
  core.fsync_append = real_append
  if not ok then error(a, 0) end
  return a, b, c, d
end

-- A fault: writes under dir/runs fail with `why` once `from` lines were written.
local function fails_in(folder, from, why)
  return function(path, _, n)
    if n >= from and path:find(folder, 1, true) then
      return false, "cannot write " .. path .. ": " .. (why or "No space left on device")
    end
  end
end

local function flaky_canary()
  return R.playbook("playbooks/canary.lua", { image = "api:flaky" })
end

local function check_home(what)
  T.eq(R.weights(), HOME, (what or "") .. " traffic back on stable")
  local canary, api = R.service("api-canary"), R.service("api")
  T.eq({ canary.desired, canary.td }, { 0, "api:1" }, (what or "") .. " canary scaled to zero, old version")
  T.eq(api.td, "api:1", (what or "") .. " stable untouched")
end

local function rollback(path)
  return R.call(function() return journal.rollback(path, { simulate = true }) end)
end

-- A canary journal as a kill -9 right after `done weight:2` leaves it (the world at 25 %).
local function killed_at_step_2(dir, after)
  R.fresh()
  local path
  journaled(dir, function()
    local rollout = require "ecsplay.rollout"
    R.call(function()
      return rollout.canary { image = "api:v2", steps = { 10, 25, 50, 100 }, bake = "1m",
        after_step = function(s) if s.index == 2 then error("stop here", 0) end end,
        on_abort = function() end }
    end)
  end, nil, after)
  path = ls(dir .. "/runs")[1]
  -- the run rolled itself back; put the world and the journal where a kill would have left them
  local kept = {}
  for line in read(path):gmatch("([^\n]*)\n") do
    kept[#kept + 1] = line
    local l = json.decode(line)
    if l.t == "done" and l.key == "weight:2" then break end
  end
  write(path, table.concat(kept, "\n") .. "\n")
  local ecs = require "ecsplay.ecs"
  local traffic = require "ecsplay.rollout.traffic"
  for _, l in ipairs(lines(read(path))) do
    if l.t == "do" and l.key == "weight:1" then
      local w = {}
      for arn, v in pairs(l.undo.weights) do w[arn] = v == 100 and 75 or 25 end
      traffic.set(l.undo.point, w)
    end
  end
  ecs.update_service { cluster = "production", service = "api-canary", desiredCount = 4,
    taskDefinition = "api:2" }
  R.settle(120)
  T.eq(R.weights(), { ["api-stable"] = 75, ["api-canary"] = 25 }, "the world as killed")
  return path
end

------------------------------------------------------------------ the journal cannot stop a rollback

for _, from in ipairs { 3, 9, 10, 11 } do
  T.test("disk full from journal line " .. (from + 1) .. ": the rollback runs to its end, records in "
    .. "the fallback copy, exit 1 naming it", function()
    R.fresh()
    local dir = T.tmpdir()
    local code, err = journaled(dir, flaky_canary, fails_in(dir .. "/runs/", from))
    T.eq(code, 1, err)
    check_home()
    local primary = ls(dir .. "/runs")[1]
    local copy = dir .. "/" .. primary:match("([^/]+)$")
    T.ok(err:find("could not be written (No space left on device)", 1, true), err)
    T.ok(err:find("its records continue in " .. copy, 1, true), err)
    -- the copy is a whole journal: every line of the run, ending rolled_back
    local text = read(copy)
    T.eq(lines(text)[1].t, "start")
    T.eq(last_end(text), "rolled_back")
    T.eq(#changes(read(primary)), from, "the journal itself stops where the disk filled")
    -- `ecsplay rollback` of the journal reads the fuller copy: nothing left to do
    local code2, err2 = rollback(primary)
    T.eq(code2, 0, err2)
    check_home("after rollback:")
    os.execute("rm -rf " .. dir)
  end)
end

T.test("no journal can be written anywhere: the rollback still completes, the records go to "
  .. "standard error, exit 1 says so", function()
  R.fresh()
  local dir = T.tmpdir()
  local code, err = journaled(dir, flaky_canary, function(path, _, n)
    if n >= 9 then return false, "cannot write " .. path .. ": Read-only file system" end
  end)
  T.eq(code, 1, err)
  check_home()
  T.ok(err:find("could not be written (Read-only file system), nor a copy in", 1, true), err)
  T.ok(err:find("its records went to standard error", 1, true), err)
  os.execute("rm -rf " .. dir)
end)

T.test("the disk fills before a step's change: the change is not made, the run rolls back", function()
  R.fresh()
  local dir = T.tmpdir()
  -- the disk fills at the line `do weight:2` (the report's step and gate lines come before it)
  local full = false
  local code, err = journaled(dir, flaky_canary, function(path, data)
    full = full or (data:find('"t":"do"', 1, true) and data:find('"key":"weight:2"', 1, true)) ~= nil
    if full and path:find(dir .. "/runs/", 1, true) then
      return false, "cannot write " .. path .. ": No space left on device"
    end
  end)
  T.eq(code, 1, err)
  check_home()
  local copy = ls(dir)[1]
  local keys, at = {}, nil
  for _, l in ipairs(lines(read(copy))) do
    keys[#keys + 1] = l.t .. (l.key and (":" .. l.key) or "")
    if keys[#keys] == "do:weight:2" then at = at or #keys end
  end
  T.ok(at, "do:weight:2 in the copy: " .. table.concat(keys, " "))
  T.eq(#lines(read(ls(dir .. "/runs")[1])), at - 1, "the journal itself stops right before do:weight:2")
  T.ok(not read(copy):find('"t":"done","key":"weight:2"', 1, true) and keys[at + 1] ~= "done:weight:2",
    "weight:2 was made: " .. table.concat(keys, " "))
  T.ok(err:find("JournalUnwritable", 1, true) or err:find("could not be written", 1, true), err)
  os.execute("rm -rf " .. dir)
end)

T.test("the runs folder cannot be written at the start: the journal lives in the fallback folder, "
  .. "announced; nowhere at all: exit 2, nothing changed", function()
  R.fresh()
  local dir = T.tmpdir()
  local code, err = journaled(dir, function()
    return R.playbook("playbooks/canary.lua", { image = "api:v2", bake = "1m" })
  end, fails_in(dir .. "/runs/", 0, "Read-only file system"))
  T.eq(code, 0, err)
  local copy = ls(dir)[1]
  T.ok(copy, "a journal in " .. dir)
  T.eq(last_end(read(copy)), "succeeded")
  R.fresh()
  local revisions = R.revisions("api")
  local code2, err2 = journaled(dir, flaky_canary, function(path)
    return false, "cannot write " .. path .. ": Read-only file system"
  end)
  T.eq(code2, 2, err2)
  T.ok(err2:find("cannot write a run journal in", 1, true), err2)
  T.eq(R.revisions("api"), revisions, "no task definition registered")
  T.eq(R.weights(), HOME)
  os.execute("rm -rf " .. dir)
end)

T.test("the journal deleted mid-run: noticed, recreated with its start line and every line so far; "
  .. "a later rollback uses it", function()
  R.fresh()
  local dir = T.tmpdir()
  local code, err = journaled(dir, flaky_canary, nil, function(path, n)
    if n == 5 then os.remove(path) end
  end)
  T.eq(code, 1, err)
  check_home()
  local path = ls(dir .. "/runs")[1]
  local all = lines(read(path))
  T.eq(all[1].t, "start", "the start line first")
  T.eq(#changes(read(path)), 12, "every line of the run")
  T.eq(last_end(read(path)), "rolled_back")
  -- and a journal deleted before a kill: `ecsplay rollback` accepts it and finds every undo
  local dir2 = T.tmpdir()
  local kpath = killed_at_step_2(dir2, function(p, n) if n == 4 then os.remove(p) end end)
  T.eq(lines(read(kpath))[1].t, "start")
  local code2, err2 = rollback(kpath)
  T.eq(code2, 0, err2)
  check_home("after rollback:")
  os.execute("rm -rf " .. dir .. " " .. dir2)
end)

T.test("`ecsplay rollback` of a journal that cannot be written: it runs to its end (exit 0), the records "
  .. "go to the fallback copy, and a second rollback reads that copy", function()
  local dir = T.tmpdir()
  local path = killed_at_step_2(dir)
  local before = read(path)
  local code, err = journaled(dir, function() return rollback(path) end,
    fails_in(dir .. "/runs/", 0, "Read-only file system"))
  T.eq(code, 0, err)
  check_home("after rollback:")
  T.eq(read(path), before, "the journal itself could not change")
  local copy = dir .. "/" .. path:match("([^/]+)$")
  T.eq(last_end(read(copy)), "rolled_back", "the copy records the rollback")
  local code2, err2 = rollback(path)
  T.eq(code2, 0, err2)
  check_home("after a second rollback:")
  os.execute("rm -rf " .. dir)
end)

-- A real file system: a 64 kB tmpfs made read-only between step 1 and step 2. (A full one is
-- the fault above: a real one only fails once the journal's last page is full.)
local function mounted(fn)
  local dir = T.tmpdir()
  local mnt = dir .. "/runs"
  os.execute("mkdir -p " .. mnt)
  local _, rc = T.sh("mount -t tmpfs -o size=64k tmpfs " .. mnt)
  if rc ~= 0 then
    print("note: cannot mount a tmpfs here (not root?): the real-disk case was not run")
    os.execute("rm -rf " .. dir)
    return
  end
  local ok, err = pcall(fn, dir, mnt)
  os.execute("umount " .. mnt .. " 2>/dev/null; rm -rf " .. dir)
  if not ok then error(err, 0) end
end

for _, how in ipairs {
  { "read-only", "mount -o remount,ro %s", "Read-only file system" },
} do
  T.test("a real " .. how[1] .. " tmpfs mid-run: the rollback completes, exit 1, records in the fallback", function()
    mounted(function(dir, mnt)
      R.fresh()
      local rollout = require "ecsplay.rollout"
      local code, err = journaled(dir, function()
        return R.call(function()
          return rollout.canary { image = "api:v2", steps = { 10, 25, 50, 100 }, bake = "1m",
            after_step = function(s)
              if s.index == 1 then os.execute(string.format(how[2], mnt)) end
              if s.index == 2 then error("gate failed (test)", 0) end
            end }
        end)
      end)
      T.eq(code, 1, err)
      check_home()
      T.ok(err:find(how[3], 1, true), err)
      local copy = ls(dir)[1]
      T.ok(copy and err:find(copy, 1, true), err)
      T.eq(last_end(read(copy)), "rolled_back")
    end)
  end)
end

------------------------------------------------------------------ journals that cannot be used as they are

T.test("a folder given as the journal: exit 2, says so, no traceback", function()
  local dir = T.tmpdir()
  os.execute("mkdir -p " .. dir .. "/run.jsonl")
  for _, cmd in ipairs { "rollback", "resume" } do
    local out, rc = T.sh(BIN .. " " .. cmd .. " " .. dir .. "/run.jsonl")
    T.eq(rc, 2, out)
    T.ok(out:find(dir .. "/run.jsonl is a folder, not a run journal", 1, true), out)
    T.ok(not out:find("traceback", 1, true), out)
  end
  os.execute("rm -rf " .. dir)
end)

T.test("an empty journal, and a file that is not a journal: clear messages", function()
  local dir = T.tmpdir()
  write(dir .. "/empty.jsonl", "")
  local out, rc = T.sh(BIN .. " rollback " .. dir .. "/empty.jsonl")
  T.eq(rc, 0, out)
  T.ok(out:find("nothing to roll back in " .. dir .. "/empty.jsonl (it is empty", 1, true), out)
  out, rc = T.sh(BIN .. " resume " .. dir .. "/empty.jsonl")
  T.eq(rc, 2, out)
  T.ok(out:find("is empty: the run was stopped before it recorded anything", 1, true), out)
  write(dir .. "/other.jsonl", '{"a":1}\n')
  out, rc = T.sh(BIN .. " rollback " .. dir .. "/other.jsonl")
  T.eq(rc, 2, out)
  T.ok(out:find("not an ecsplay run journal (no start line)", 1, true), out)
  os.execute("rm -rf " .. dir)
end)

T.test("a damaged line in the middle: the rollback undoes what it can read, then exit 3 names the line; "
  .. "resume refuses (exit 2)", function()
  local dir = T.tmpdir()
  local path = killed_at_step_2(dir)
  local text = read(path)
  local out = {}
  for line in text:gmatch("([^\n]*)\n") do
    out[#out + 1] = line:find('"done"', 1, true) and line:find('"register"', 1, true) and line:sub(1, 20) or line
  end
  write(path, table.concat(out, "\n") .. "\n")
  local code, err, _, raw = rollback(path)
  T.eq(code, 3, err)
  check_home("partial rollback:")
  local left = require("ecsplay.errors").describe(raw.left)
  T.ok(left:find("line 3 does not read back", 1, true), left)
  local _, rerr = R.call(function() return journal.resume(path, { simulate = true }) end)
  T.ok(tostring(rerr):find("is damaged", 1, true), tostring(rerr))
  local rc_out, rc = T.sh(BIN .. " resume " .. path)
  T.eq(rc, 2, rc_out)
  os.execute("rm -rf " .. dir)
end)

T.test("a journal with no start line (recreated by an older ecsplay): rolled back as far as it goes, "
  .. "exit 3 says the first lines were lost", function()
  local dir = T.tmpdir()
  local path = killed_at_step_2(dir)
  write(path, (read(path):gsub("^[^\n]*\n", "")))
  local code, err, _, raw = rollback(path)
  T.eq(code, 3, err)
  check_home("partial rollback:")
  local left = require("ecsplay.errors").describe(raw.left)
  T.ok(left:find("no start line", 1, true), left)
  os.execute("rm -rf " .. dir)
end)

T.test("a torn last line: dropped, the rollback completes (exit 0)", function()
  local dir = T.tmpdir()
  local path = killed_at_step_2(dir)
  write(path, read(path) .. '{"t":"do","key":"weight:3","undo":nu')
  local code, err = rollback(path)
  T.eq(code, 0, err)
  check_home("after rollback:")
  local text = read(path)
  T.eq(text:sub(-1), "\n")
  T.eq(last_end(text), "rolled_back")
  os.execute("rm -rf " .. dir)
end)

T.test("the journal deleted right after the run's last step, just before its end line: the end line "
  .. "recreates it, start line first, ended succeeded", function()
  R.fresh()
  local dir = T.tmpdir()
  local last_line
  local code, err = journaled(dir, function() return R.playbook("playbooks/canary.lua", {}) end,
    function(_, data) last_line = data end,
    function(path)
      local l = json.decode(last_line or "")
      if type(l) == "table" and l.t == "done" and l.key == "scale_down" then os.remove(path) end
    end)
  T.eq(code, 0, err)
  local path = ls(dir .. "/runs")[1]
  T.ok(path, "the journal exists after the run")
  local all = lines(read(path))
  T.eq(all[1].t, "start", "the start line first")
  local keys = {}
  for _, l in ipairs(all) do if l.t == "done" then keys[#keys + 1] = l.key end end
  T.eq(keys[#keys], "scale_down", "every step's line kept")
  T.eq(last_end(read(path)), "succeeded")
  os.execute("rm -rf " .. dir)
end)
