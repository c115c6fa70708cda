-- ecsplay's transport alone: the scheduler's HTTP (sched.http: a coroutine yield, libcurl's
-- multi interface, the answer as a Lua table with its headers) replaying one signed
-- request, as bench/curl_raw.c replays it with libcurl's easy interface. No validation,
-- encoding, signing, parsing or policy: the floor under a whole call (bench/ecsplay_calls.lua).
--   ecsplay bench/transport_calls.lua url=URL request=FILE [calls=1000] [rounds=5]
-- FILE: as bench/ecsplay_calls.lua dump=FILE writes it ("Name: value" lines, an empty line,
-- the body). Prints, per round, the mean wall-clock and CPU microseconds per call,
-- "WALL CPU" a line. Every answer must be HTTP 200 (a stale signature fails the run).
local sched = require "ecsplay.sched"
local loop = require "loop" -- bench/loop.lua, beside this file
local a = ecsplay.args

if not (a.url and a.request) then error("bench: url=URL and request=FILE are required", 0) end
local f, ferr = io.open(a.request, "rb")
if not f then error("bench: " .. ferr, 0) end
local headers, body = {}, ""
for line in f:lines() do
  if line == "" then body = f:read("a") break end
  local name, value = line:match("^([^:]+): (.*)$")
  if not name then error("bench: " .. a.request .. ": not a header line: " .. line, 0) end
  headers[name] = value
end
f:close()

local req = { method = "POST", url = a.url, headers = headers, body = body, timeout = 60,
  connect_timeout = 10, max_size = 64 * 1024 * 1024 }
local function call()
  local c = sched.http(req)
  if c.status ~= 200 then
    error(("bench: HTTP %s from %s: %s"):format(tostring(c.status), a.url, c.error or c.body or ""), 0)
  end
end

local calls, rounds = loop.count(a, "calls", 1000), loop.count(a, "rounds", 5)
for _ = 1, 20 do call() end -- warm-up: connection open
loop.rounds(calls, rounds, call)
