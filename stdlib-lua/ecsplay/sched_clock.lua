--[[
A served simulator's clock, as the scheduler (ecsplay.sched) follows it. `ecsplay sim serve`
says its time on every answer (x-ecsplay-sim-time, -mode, -speed); from the first such answer
sched.now() is the world's time and a sleep waits on the server (POST /_sim/wait): at
--speed X it lasts simulated time / X, in --lockstep until every client waits. Nothing is
ever sent to find out (a real AWS endpoint sees only the calls made).

sched requires this module and re-exports its public functions under their own names
(sched.observe_server_clock, .follow_served_clock, .clock_name, .server_clock,
.add_clock_headers, .is_loopback_url), the same functions, not wrappers: aws/call.lua calls two
of them on every AWS call. This module never requires sched: what it needs of the scheduler
is passed to M.setup. The scheduler's parts:
  M.setup { now, http, http_core, before_follow }   once, by sched
  M.reset(virtual)              sched.use_virtual_clock / use_real_clock: follow no server
  M.served_now()                → the served clock's time (while one is followed)
  M.wall_seconds(left)          → wall seconds for `left` simulated ones on the clock followed
  M.wait_on(deadline)           → true: a POST /_sim/wait is out (poll for it); false: time passed here
  M.waiting()                   → a POST /_sim/wait is out
  M.answered(c)                 → true when the completed transfer c was that wait (and takes it)
  M.cancel_wait(), M.leave()    on a signal; after a run (DELETE /_sim/wait)
]]
local core = require "ecsplay.core"
local errors = require "ecsplay.errors"
local json = require "ecsplay.json"

local M = {}

--[[ The served simulator whose clock this process follows, once one of its answers said
     what time it is: { base = "http://127.0.0.1:N", mode = "speed"|"lockstep", speed =,
     time = its time when last heard, mono = our monotonic clock then, last = the last
     now() given (never goes back), wait = { id, until } while a POST /_sim/wait is out,
     mode_text, speed_text = its mode and speed headers as last read (the fast path) } ]]
local server = nil
-- sched's virtual clock is on (--simulate): set only by M.reset, from sched's use_*_clock
local virtual = false
local client_id = nil
local TIME_HEADER, MODE_HEADER = "x-ecsplay-sim-time", "x-ecsplay-sim-mode"
local SPEED_HEADER = "x-ecsplay-sim-speed"
local CLIENT_HEADER = "x-ecsplay-client"
-- ECSPLAY_SIM_CLOCK=own keeps this process's own clock even against a simulator; so does
-- libfaketime's FAKETIME (the clock is already made to agree with it: following the server
-- as well would count its speed twice), unless ECSPLAY_SIM_CLOCK=follow.
local clock_setting = os.getenv("ECSPLAY_SIM_CLOCK")
local follow_servers = clock_setting == "follow"
  or (clock_setting ~= "own" and not os.getenv("FAKETIME"))

--[[ The scheduler's: now() (its clock as read now), http(req) (a wait in a task),
     http_core() (ecsplay.core.http, loaded lazily), before_follow(delta) (called once the
     first answer is in, before now() moves by delta to the served clock: timers keep the
     time they had left). ]]
local sched

function M.setup(fns) sched = fns end

function M.reset(is_virtual)
  virtual = is_virtual
  server = nil
end

-- mono: core.monotonic() already read by the caller (set_server_time), else nil
local function server_now(mono)
  if server.mode ~= "speed" then return server.time end
  local t = server.time + ((mono or core.monotonic()) - server.mono) * server.speed
  if t < server.last then t = server.last end
  server.last = t
  return t
end

-- While one is followed (sched knows when: it is told before the first answer's switch).
M.served_now = server_now

--[[ A header by its lowercase name, whatever the case of the answer's (libcurl's are
     lowercase; a transport's may be mixed): the exact name, then the spelling it had last
     time, then a search that remembers the spelling it finds. ]]
local spellings = {}
local function header(h, name)
  local v = h[name]
  if v ~= nil then return v end
  local spelt = spellings[name]
  if spelt then
    v = h[spelt]
    if v ~= nil then return v end
  end
  for k, x in pairs(h) do
    if type(k) == "string" and #k == #name and k:lower() == name then
      spellings[name] = k
      return x
    end
  end
  return nil
end

--[[ The scheme://host[:port] of a request URL, and whether its host is a loopback one,
     remembered for the URLs used lately (a run sends thousands of requests to a handful
     of endpoints; bounded: emptied when it holds URL_CACHE_MAX). ]]
local URL_CACHE_MAX = 64
local url_bases, url_loopback, url_cache_n = {}, {}, 0
local is_loopback_url

local function url_base(url)
  local base = url_bases[url]
  if base == nil then
    if url_cache_n >= URL_CACHE_MAX then url_bases, url_loopback, url_cache_n = {}, {}, 0 end
    base = url:match("^(https?://[^/?#]+)") or false
    url_bases[url] = base
    url_cache_n = url_cache_n + 1
  end
  return base or nil
end

local function client_name()
  if not client_id then
    local r = math.random
    client_id = string.format("ecsplay-%08x%08x", r(0, 0x7fffffff), r(0, 0x7fffffff))
  end
  return client_id
end

local function set_server_time(t)
  local mono = core.monotonic()
  local now = server_now(mono)
  server.time = t > now and t or now
  server.mono, server.last = mono, server.time
end

--[[ Takes the time from an answer (headers, the request's url). The first answer that
     carries it makes this process follow that server's clock: timers already set keep
     the time they had left. Answers from elsewhere (AWS) change nothing.
     lowercase: every name in headers is lowercase (libcurl's answers), so a name missing
     as spelt here is missing: no search through an AWS answer's headers on every call. ]]
function M.observe_server_clock(headers, url, lowercase)
  if virtual or not follow_servers or type(headers) ~= "table" then return end
  -- header() only when the exact name is missing and the names may be in any case
  local t = headers[TIME_HEADER]
  if t == nil then
    if lowercase then return end
    t = header(headers, TIME_HEADER)
  end
  t = tonumber(t)
  if not t or type(url) ~= "string" then return end
  local base = url_bases[url]
  if base == nil then base = url_base(url) end
  if not base then return end
  -- every answer after the first from the server followed, at the same speed and mode:
  -- only its time is new (the path of every call against `sim serve`; compared with the
  -- followed server's own texts, never another server's)
  if lowercase and server and base == server.base and headers[SPEED_HEADER] == server.speed_text
    and headers[MODE_HEADER] == server.mode_text then
    return set_server_time(t)
  end
  local speed_text = headers[SPEED_HEADER]
  if speed_text == nil and not lowercase then speed_text = header(headers, SPEED_HEADER) end
  local speed = tonumber(speed_text)
  local mode_text = headers[MODE_HEADER]
  if mode_text == nil and not lowercase then mode_text = header(headers, MODE_HEADER) end
  local mode = mode_text == "lockstep" and "lockstep" or "speed"
  if not server then
    sched.before_follow(t - sched.now())
    server = { base = base, mode = mode, speed = 1, time = t, mono = core.monotonic(), last = t }
  elseif base ~= server.base then
    return
  end
  server.mode, server.speed = mode, (speed and speed > 0) and speed or 1
  server.mode_text, server.speed_text = mode_text, speed_text
  set_server_time(t)
end
local observe_server_clock = M.observe_server_clock

--[[ Names this process on its requests to the simulator it follows, and before it follows
     one on those to loopback endpoints (`sim serve` listens on nothing else), so a
     simulator knows it from its first request (--lockstep). Never to anywhere else.
     clock_headers(url) → the headers to add, one shared table (read-only), or nil. ]]
local client_headers = nil
function M.clock_headers(url)
  if not follow_servers or virtual or type(url) ~= "string" then return nil end
  local named
  if server then
    named = (url_bases[url] or url_base(url)) == server.base
  else
    named = url_loopback[url]
    if named == nil then
      named = is_loopback_url(url)
      url_base(url) -- counts the entry, so the bound holds for both tables
      url_loopback[url] = named
    end
  end
  if not named then return nil end
  if not client_headers then client_headers = { [CLIENT_HEADER] = client_id or client_name() } end
  return client_headers
end

-- add_clock_headers(h, url) → h, with clock_headers(url) added
function M.add_clock_headers(h, url)
  local c = M.clock_headers(url)
  if c then h[CLIENT_HEADER] = c[CLIENT_HEADER] end
  return h
end

function is_loopback_url(url)
  if type(url) ~= "string" then return false end
  url = url:lower()
  local host = url:match("^https?://%[([^%]]+)%]") or url:match("^https?://([^/:?#]+)")
  return host == "localhost" or host == "::1" or (host or ""):match("^127%.%d+%.%d+%.%d+$") ~= nil
end
M.is_loopback_url = is_loopback_url

--[[ Follows a served simulator's clock from a run's start, before its first AWS call, so that
     the run's first log lines, its journals' names and every clock read before that call are
     on the served clock, not the machine's (which a scenario's clock may be days away from).
     url: the run's endpoint; only a loopback one is asked (`sim serve` listens on nothing
     else), with GET /_sim/clock; an endpoint that is not a simulator (moto, LocalStack)
     answers without the clock header, or not at all, and nothing changes. In a task. ]]
function M.follow_served_clock(url)
  if virtual or server or not follow_servers or not is_loopback_url(url) then return end
  local base = url_base(url)
  if not base then return end
  local ok, c = pcall(sched.http, { method = "GET", url = base .. "/_sim/clock",
    headers = M.add_clock_headers({}, url), timeout = 5, connect_timeout = 2 })
  if not ok then
    if errors.is(c, "interrupted") then error(c, 0) end
    return
  end
  if type(c) == "table" and not c.error then observe_server_clock(c.headers, url, true) end
end

-- The name of the clock now() reads: "virtual" (--simulate), the base URL of the served
-- simulator it follows, or "machine"; times read on two clocks are never to be compared.
function M.clock_name()
  if virtual then return "virtual" end
  return server and server.base or "machine"
end

-- The served clock followed, if any: { base=, mode=, speed=, client= } (a copy).
function M.server_clock()
  if not server then return nil end
  return { base = server.base, mode = server.mode, speed = server.speed, client = client_name() }
end

-- Waiting on the server -------------------------------------------------------------------
-- Time passes here when the simulator does not answer a wait: at its speed (lockstep:
-- the wall clock's), a little at a time, so the playbook's next call finds out.
local function wait_without_server(deadline)
  local speed = server.mode == "speed" and server.speed or 1
  local secs = math.min(0.2, math.max(0, (deadline - server_now()) / speed))
  if secs > 0 then core.wait(secs) end
  if server.mode ~= "speed" then set_server_time(math.min(deadline, server.time + secs)) end
end

--[[ Idle until `deadline` (simulated): one POST /_sim/wait out at a time. → true when
     it is out (poll for it), false when time passed here instead. ]]
function M.wait_on(deadline)
  if not server.wait then
    local ok, id = pcall(function()
      return sched.http_core().start { method = "POST", url = server.base .. "/_sim/wait",
        headers = { [CLIENT_HEADER] = client_name(), ["Content-Type"] = "application/json" },
        body = string.format('{"until":%.17g}', deadline), timeout = 30, connect_timeout = 5 }
    end)
    if not ok then
      wait_without_server(deadline)
      return false
    end
    server.wait = { id = id, ["until"] = deadline }
  end
  return true
end

function M.waiting() return server ~= nil and server.wait ~= nil end

-- c: a completed transfer that is no task's. → true when it was the wait on the server.
function M.answered(c)
  if not (server and server.wait and c.id == server.wait.id) then return false end
  local asked = server.wait["until"]
  server.wait = nil
  if c.status ~= 200 or not tonumber(header(c.headers or {}, TIME_HEADER)) then
    wait_without_server(asked)
    return true
  end
  observe_server_clock(c.headers, server.base)
  local answer = json.decode(c.body or "")
  -- the time asked for has come (the header's milliseconds may round below it)
  if type(answer) == "table" and answer.reached == true then set_server_time(asked) end
  return true
end

function M.cancel_wait()
  if server and server.wait then
    pcall(sched.http_core().cancel, server.wait.id)
    server.wait = nil
  end
end

-- Wall seconds for `left` (> 0) seconds on the clock followed (lockstep: only answers move it).
function M.wall_seconds(left)
  if not server then return left end
  if server.mode ~= "speed" then return 60 end
  return left / server.speed
end

-- After a run: tell the simulator this client takes no further part (DELETE /_sim/wait).
function M.leave()
  if not server then return end
  M.cancel_wait()
  pcall(function()
    local h = sched.http_core()
    local id = h.start { method = "DELETE", url = server.base .. "/_sim/wait",
      headers = { [CLIENT_HEADER] = client_name() }, timeout = 1, connect_timeout = 1 }
    local give_up = core.monotonic() + 1.5
    while core.monotonic() < give_up do
      for _, c in ipairs(h.poll(0.1)) do
        if c.id == id then return end
      end
    end
    h.cancel(id)
  end)
end

return M
