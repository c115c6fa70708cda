--[[
Helpers (not a scenario) for tests/lua/test_rollout_interrupts.lua and test_rollout_journal.lua:
real `ecsplay sim serve` servers and real ecsplay client processes, driven from scheduler
tasks so several cases run at once (the client's waits are wall-clock seconds).

  local L = dofile "tests/scenarios/interrupt_lib.lua"
  local srv = L.serve(dir, speed)          -> { port=, pid=, url= }   (kill with L.stop(srv))
  local p = L.start(dir, "run", srv, { "tests/scenarios/interrupt_canary.lua", "bake=3s" })
  L.wait_journal(dir, function(lines) ... end, timeout)  -> the journal's lines (decoded)
  L.kill(p, "INT"|"TERM"|"KILL"); local rc, out = L.wait_exit(p, timeout)
  L.world(srv) -> decoded GET /_sim/world;  L.state(world) -> { weights=, api=, canary= }
Every wait is a sched.sleep poll, so it must run inside the scheduler (a test or a task).
]]
local sched = require "ecsplay.sched"
local json = require "ecsplay.json"

local L = {}

local ROOT = os.getenv("PWD") or "."
L.ROOT = ROOT
L.BIN = os.getenv("ECSPLAY_BIN") or (ROOT .. "/ecsplay")

local function read(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
L.read = read

local function write(path, s)
  local f = assert(io.open(path, "w"))
  f:write(s)
  f:close()
end
L.write = write

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
L.q = q

function L.tmpdir()
  local p = io.popen("mktemp -d")
  local d = p:read("l")
  p:close()
  return d
end

-- Polls fn() every 50 ms until it returns a value or `timeout` wall seconds pass.
function L.poll(fn, timeout, what)
  local deadline = require("ecsplay.core").monotonic() + (timeout or 30)
  while true do
    local v = fn()
    if v then return v end
    if require("ecsplay.core").monotonic() > deadline then
      error("timed out after " .. (timeout or 30) .. "s waiting for " .. (what or "a condition"), 0)
    end
    sched.sleep(0.05)
  end
end

local function alive(pid)
  return pid and os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end
L.alive = alive

-- Starts `ecsplay sim serve --port 0 --speed S [--scenario F]`; returns once it listens.
function L.serve(dir, speed, scenario)
  os.execute(string.format("%s sim serve --port 0 --speed %s%s > %s/serve.out 2>&1 & echo $! > %s/serve.pid",
    q(L.BIN), tostring(speed or 60), scenario and (" --scenario " .. q(scenario)) or "", dir, dir))
  local srv = { dir = dir, wall_clock_clients = true }
  srv.pid = L.poll(function() return tonumber((read(dir .. "/serve.pid") or ""):match("%d+")) end, 5, "serve.pid")
  local ok, err = pcall(function()
    srv.port = L.poll(function()
      return tonumber((read(dir .. "/serve.out") or ""):match("listening on http://127%.0%.0%.1:(%d+)"))
    end, 10, "sim serve to listen")
  end)
  if not ok then L.stop(srv) error(err, 0) end
  srv.url = "http://127.0.0.1:" .. srv.port
  return srv
end

-- Stops a server (SIGTERM, then SIGKILL after 5 s); safe to call twice.
function L.stop(srv)
  if not srv or not srv.pid then return end
  os.execute("kill -TERM " .. srv.pid .. " 2>/dev/null")
  local deadline = require("ecsplay.core").monotonic() + 5
  while alive(srv.pid) and require("ecsplay.core").monotonic() < deadline do
    if sched.in_task() then sched.sleep(0.05) else os.execute("sleep 0.05") end
  end
  if alive(srv.pid) then os.execute("kill -KILL " .. srv.pid .. " 2>/dev/null") end
  srv.pid = nil
end

--[[ Starts `ecsplay ARGS...` in the background with the simulator's keys and
     ECSPLAY_RUNS_DIR=dir/runs; `name` tells its files apart (out.NAME, rc.NAME).
     srv: when given, --endpoint-url/--region go before the arguments (playbook runs). ]]
function L.start(dir, name, srv, args, env)
  local script = dir .. "/run.sh"
  if not read(script) then
    write(script, table.concat({
      "#!/bin/sh",
      "n=$1; shift",
      "cd " .. q(ROOT),
      "\"$@\" > " .. dir .. "/out.$n 2>&1 &",
      "echo $! > " .. dir .. "/pid.$n",
      "wait $!",
      "echo $? > " .. dir .. "/rc.$n",
    }, "\n") .. "\n")
  end
  local parts = { q(L.BIN) }
  if srv then
    parts[#parts + 1] = "--endpoint-url " .. q(srv.url) .. " --region us-east-1"
  end
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  local envs = { "AWS_ACCESS_KEY_ID=AKIDSIMULATOR", "AWS_SECRET_ACCESS_KEY=simulator-secret-key",
    "ECSPLAY_RUNS_DIR=" .. q(dir .. "/runs") }
  -- against L.serve's server the client keeps its own (wall) clock, not the server's: a 3 s
  -- bake lasts 3 wall seconds, long enough to signal the client inside one step
  if srv and srv.wall_clock_clients then envs[#envs + 1] = "ECSPLAY_SIM_CLOCK=own" end
  for k, v in pairs(env or {}) do envs[#envs + 1] = k .. "=" .. q(v) end
  os.execute(string.format("env -u AWS_ENDPOINT_URL -u AWS_PROFILE -u AWS_REGION -u AWS_DEFAULT_REGION "
    .. "%s sh %s %s %s > /dev/null 2>&1 &", table.concat(envs, " "), q(script), name,
    table.concat(parts, " ")))
  local p = { dir = dir, name = name }
  p.pid = L.poll(function() return tonumber((read(dir .. "/pid." .. name) or ""):match("%d+")) end, 5,
    "the client's pid")
  return p
end

function L.kill(p, sig)
  if p and p.pid then os.execute("kill -" .. sig .. " " .. p.pid .. " 2>/dev/null") end
end

-- Waits for the process to end; returns its exit code and its output.
function L.wait_exit(p, timeout)
  local rc = L.poll(function() return tonumber((read(p.dir .. "/rc." .. p.name) or ""):match("%d+")) end,
    timeout or 30, "ecsplay " .. p.name .. " to exit")
  p.done = true
  return rc, read(p.dir .. "/out." .. p.name) or ""
end

-- Ends a client that is still running (cleanup paths).
function L.reap(p)
  if p and not p.done and alive(p.pid) then L.kill(p, "KILL") end
end

-- Runs `ecsplay ARGS...` (no endpoint options: the journal's start line has them) to
-- its end; the process is added to `procs` so the file can check nothing is left.
function L.command(r, name, args, procs, timeout)
  local p = L.start(r.dir, name, nil, args)
  procs[#procs + 1] = p
  local ok, rc, out = pcall(L.wait_exit, p, timeout or 60)
  if not ok then L.reap(p) error(rc, 0) end
  return rc, out
end

function L.journal_file(dir)
  local pp = io.popen("ls " .. q(dir .. "/runs") .. "/*.jsonl 2>/dev/null")
  local f = pp:read("l")
  pp:close()
  return f
end

-- The journal's complete lines, decoded (a torn last line is left out).
function L.journal(path)
  local out = {}
  for line in ((read(path) or "") .. ""):gmatch("([^\n]*)\n") do
    local obj = json.decode(line)
    if obj then out[#out + 1] = obj end
  end
  return out
end

function L.has(lines, t, key)
  for _, l in ipairs(lines) do if l.t == t and (key == nil or l.key == key) then return l end end
  return nil
end

-- Waits until the run in dir has journaled `t` for `key` (e.g. "done", "weight:2").
function L.wait_journal(dir, t, key, timeout)
  return L.poll(function()
    local f = L.journal_file(dir)
    if not f then return nil end
    local lines = L.journal(f)
    if L.has(lines, t, key) then return lines end
    if L.has(lines, "end") then error("the run ended before journaling " .. t .. " " .. key, 0) end
    return nil
  end, timeout or 60, t .. " " .. key .. " in the journal")
end

function L.world(srv)
  local res = sched.http { method = "GET", url = srv.url .. "/_sim/world", headers = {}, timeout = 10 }
  if res.error or res.status ~= 200 then
    error("GET /_sim/world: " .. tostring(res.error or res.status), 0)
  end
  return assert(json.decode(res.body))
end

-- { weights = {["api-stable"]=, ["api-canary"]=}, api = {desired=, td=}, canary = {...} }
function L.state(world)
  local s = {}
  for _, l in ipairs(world.listeners) do
    if l.port == 443 then
      for _, r in ipairs(l.rules) do if r.priority == "10" then s.weights = r.weights end end
    end
  end
  for _, svc in ipairs(world.services) do
    local v = { desired = svc.desired, td = svc.task_definition:match("task%-definition/(.+)$"),
      running = svc.running }
    if svc.name == "api" then s.api = v elseif svc.name == "api-canary" then s.canary = v end
  end
  return s
end

return L
