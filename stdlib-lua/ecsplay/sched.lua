--[[
The scheduler: every wait in ecsplay (an HTTP call, a sleep, a join) is a
coroutine yield to this one loop, so playbooks read as straight-line code and
still run many rollouts at once in one process.

Policy lives here; the waiting itself is C: ecsplay.core.http.poll blocks in
curl_multi_poll, which a SIGINT/SIGTERM wakes through the self-pipe in sched.c.

Clock: real by default. use_virtual_clock(t0) makes time jump: when every task
waits on a timer and no real I/O is in flight, now() moves straight to the
next deadline, which is how a 30-minute canary rehearses in milliseconds.
A simulator served over HTTP (`ecsplay sim serve`) says its time on every
answer (x-ecsplay-sim-time, -mode, -speed); from the first such answer now()
is the world's time and a sleep waits on the server (POST /_sim/wait): at
--speed X it lasts simulated time / X, in --lockstep until every client
waits. Nothing is ever sent to find out (a real AWS endpoint sees only the
calls made); requests are still signed with the machine's time (signing_time).

Signals: at the next safe point (a task's yield), each task that is waiting
gets errors.new("interrupted", { signal = n }) raised where it waits, once.
Its pcall-protected rollback code then runs normally, and may yield again.
A cancelled task gets the same kind with code "Cancelled" (no signal).
]]
local core = require "ecsplay.core"
local errors = require "ecsplay.errors"
local json = require "ecsplay.json"

local M = {}

local TOKEN = {}                 -- marks yields that belong to the scheduler
local tasks_by_co = setmetatable({}, { __mode = "k" })
-- FIFO of (task, ok, value) in three parallel arrays, [head..tail]: no table per entry
local ready, ready_ok, ready_value = {}, {}, {}
local ready_head, ready_tail = 1, 0
local timers = {}                -- binary heap of { t, seq, task, wall_at }
local wall_timers = {}           -- the timers with a wall-clock cap (sleep's `wall`)
local timer_seq = 0
local http_waiting = {}          -- http id -> task
local http_count = 0
local alive = 0                  -- tasks not yet finished
local running_loop = false
local virtual = false
local virtual_now = 0
local signal_seen = nil          -- the signal being handled, once delivered
local http_mod
--[[ The served simulator whose clock this process follows, once one of its answers said
     what time it is: { base = "http://127.0.0.1:N", mode = "speed"|"lockstep", speed =,
     time = its time when last heard, mono = our monotonic clock then, last = the last
     now() given (never goes back), wait = { id, until } while a POST /_sim/wait is out } ]]
local server = nil
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

local function http_core()
  -- lazy: libcurl is loaded on the first HTTP wait, so a playbook that only sleeps never pays for it
  if not http_mod then http_mod = require "ecsplay.core.http" end
  return http_mod
end

-- mono: core.monotonic() already read by the caller (set_server_time), else nil
local function server_now(mono)
  if server.mode ~= "speed" then return server.time end
  local t = server.time + ((mono or core.monotonic()) - server.mono) * server.speed
  if t < server.last then t = server.last end
  server.last = t
  return t
end

function M.now()
  if virtual then return virtual_now end
  if server then return server_now() end
  return core.realtime()
end

--[[ The time to sign requests with: the machine's, which AWS and `sim serve` check
     X-Amz-Date against, even while now() follows a served simulator; in process
     (--simulate) the virtual one, which the simulator checks against there. ]]
function M.signing_time()
  if virtual then return virtual_now end
  return core.realtime()
end

function M.is_virtual() return virtual end

function M.use_virtual_clock(start)
  virtual = true
  virtual_now = start or core.realtime()
  server = nil
end

function M.use_real_clock()
  virtual = false
  server = nil
end

-- Timer heap ------------------------------------------------------------------
local function less(a, b)
  if a.t ~= b.t then return a.t < b.t end
  return a.seq < b.seq
end

local function heap_push(item)
  timers[#timers + 1] = item
  local i = #timers
  while i > 1 do
    local p = i // 2
    if less(timers[i], timers[p]) then
      timers[i], timers[p] = timers[p], timers[i]
      i = p
    else
      break
    end
  end
end

local function heap_pop()
  local n = #timers
  if n == 0 then return nil end
  local top = timers[1]
  timers[1] = timers[n]
  timers[n] = nil
  n = n - 1
  local i = 1
  while true do
    local l, r, s = 2 * i, 2 * i + 1, i
    if l <= n and less(timers[l], timers[s]) then s = l end
    if r <= n and less(timers[r], timers[s]) then s = r end
    if s == i then break end
    timers[i], timers[s] = timers[s], timers[i]
    i = s
  end
  return top
end

-- A served simulator's clock ---------------------------------------------------------
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

-- The speed header's text and its number, as last read (it seldom changes).
local last_speed_text, last_speed = nil, nil

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
  local speed_text = headers[SPEED_HEADER]
  if speed_text == nil and not lowercase then speed_text = header(headers, SPEED_HEADER) end
  local speed = last_speed
  if speed_text ~= last_speed_text then
    speed = tonumber(speed_text)
    last_speed_text, last_speed = speed_text, speed
  end
  local mode_text = headers[MODE_HEADER]
  if mode_text == nil and not lowercase then mode_text = header(headers, MODE_HEADER) end
  local mode = mode_text == "lockstep" and "lockstep" or "speed"
  if not server then
    local delta = t - M.now()
    for _, item in ipairs(timers) do item.t = item.t + delta end
    server = { base = base, mode = mode, speed = 1, time = t, mono = core.monotonic(), last = t }
  elseif base ~= server.base then
    return
  end
  server.mode, server.speed = mode, (speed and speed > 0) and speed or 1
  set_server_time(t)
end

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
  local ok, c = pcall(M.http, { method = "GET", url = base .. "/_sim/clock",
    headers = M.add_clock_headers({}, url), timeout = 5, connect_timeout = 2 })
  if not ok then
    if M.is_interrupt(c) then error(c, 0) end
    return
  end
  if type(c) == "table" and not c.error then M.observe_server_clock(c.headers, url, true) end
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

--[[ Names this process on its requests to the simulator it follows, and before it follows
     one on those to loopback endpoints (`sim serve` listens on nothing else), so a
     simulator knows it from its first request (--lockstep). Never to anywhere else.
     clock_headers(url) → the headers to add, one shared table (read-only), or nil. ]]
local client_headers = nil
function M.clock_headers(url)
  if not follow_servers or virtual or type(url) ~= "string" then return nil end
  local named
  if server then
    named = url_base(url) == server.base
  else
    named = url_loopback[url]
    if named == nil then
      named = is_loopback_url(url)
      url_base(url) -- counts the entry, so the bound holds for both tables
      url_loopback[url] = named
    end
  end
  if not named then return nil end
  if not client_headers then client_headers = { [CLIENT_HEADER] = client_name() } end
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
local function wait_on_server(deadline)
  if not server.wait then
    local ok, id = pcall(function()
      return http_core().start { method = "POST", url = server.base .. "/_sim/wait",
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

local function server_waited(c)
  local asked = server.wait["until"]
  server.wait = nil
  if c.status ~= 200 or not tonumber(header(c.headers or {}, TIME_HEADER)) then
    return wait_without_server(asked)
  end
  M.observe_server_clock(c.headers, server.base)
  local answer = json.decode(c.body or "")
  -- the time asked for has come (the header's milliseconds may round below it)
  if type(answer) == "table" and answer.reached == true then set_server_time(asked) end
end

local function cancel_server_wait()
  if server and server.wait then
    pcall(http_core().cancel, server.wait.id)
    server.wait = nil
  end
end

-- Wall seconds until `deadline` passes on the clock followed (lockstep: only answers move it).
local function wall_seconds_until(deadline)
  local left = deadline - M.now()
  if left <= 0 then return 0 end
  if not server then return left end
  if server.mode ~= "speed" then return 60 end
  return left / server.speed
end

-- After a run: tell the simulator this client takes no further part (DELETE /_sim/wait).
local function leave_server()
  if not server then return end
  cancel_server_wait()
  pcall(function()
    local h = http_core()
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

-- Tasks -------------------------------------------------------------------------
local Task = {}
Task.__index = Task

local function make_ready(task, ok, value)
  local i = ready_tail + 1
  ready_tail = i
  ready[i], ready_ok[i], ready_value[i] = task, ok, value
end

local function has_ready() return ready_head <= ready_tail end

--[[ Per-coroutine tables whose entry a spawned task starts with a copy of its spawner's
     (M.inherit): aws/call.lua's session in effect, so a task spawned inside s:run(fn) makes
     its calls in that session too. ]]
local inherited = {}

local function finish(task, ok, ...)
  task.done = true
  alive = alive - 1
  -- an ended task is nobody's current task: its coroutine leaves the weak tables now, so a
  -- fleet's thousands of short tasks (gate rounds, batches) are young garbage at once
  local co = task.co
  tasks_by_co[co] = nil
  for _, t in ipairs(inherited) do t[co] = nil end
  -- its stack, grown by the calls it made, shrinks to a few slots now rather than when the
  -- coroutine is collected (a major collection, once it outlived a few minor ones)
  coroutine.close(co)
  if ok then
    task.results = table.pack(...)
  else
    task.err = errors.caught((...))
  end
  for _, j in ipairs(task.joiners) do make_ready(j, true, nil) end
  task.joiners = {}
end

local function start_http(req) return http_core().start(req) end

-- What a task's resume gave back: (false, err) | its results when it ended | (TOKEN, kind,
-- arg) when it waits. Taken as varargs, not packed into a table per resume.
local function resumed(task, resumed_ok, first, ...)
  if not resumed_ok then
    return finish(task, false, first)
  end
  -- TOKEN comes only from wait()'s yield (no task can return it: it never leaves this
  -- file), so a wait needs no coroutine.status()
  if first ~= TOKEN then
    if coroutine.status(task.co) == "dead" then
      return finish(task, true, first, ...)
    end
    -- a bare coroutine.yield() at the top of a task: not ours to handle
    return finish(task, false, "coroutine.yield() called outside a coroutine the playbook created; "
      .. "use ecsplay.sleep / ecsplay.spawn for waiting")
  end
  local kind, arg = ...
  if kind == "sleep" then
    timer_seq = timer_seq + 1
    local seconds, wall = arg, nil
    if type(arg) == "table" then seconds, wall = arg.seconds, arg.wall end
    local item = { t = M.now() + seconds, seq = timer_seq, task = task }
    task.wait = item
    heap_push(item)
    if wall and not virtual then
      item.wall_at = core.monotonic() + wall
      wall_timers[#wall_timers + 1] = item
    end
  elseif kind == "http" then
    -- inside the pcall: loading libcurl on first use may fail too, and that failure
    -- belongs to the playbook's HTTP call, not to the scheduler
    local ok_start, id = pcall(start_http, arg)
    if not ok_start then
      make_ready(task, false, id)
    else
      -- the task's own wait record, kept for its next HTTP wait (task.wait is cleared per resume)
      local w = task.http_wait
      if not w then
        w = {}
        task.http_wait = w
      end
      w.http = id
      task.wait = w
      http_waiting[id] = task
      http_count = http_count + 1
    end
  elseif kind == "join" then
    if arg.done then
      make_ready(task, true, nil)
    else
      task.wait = { join = arg }
      arg.joiners[#arg.joiners + 1] = task
    end
  elseif kind == "yield" then
    make_ready(task, true, nil)
  end
end

-- Resumes a task with (ok, value) and files it under whatever it waits on next.
local function step(task, ok, value)
  task.wait = nil
  return resumed(task, coroutine.resume(task.co, ok, value))
end

function M.inherit(by_coroutine) inherited[#inherited + 1] = by_coroutine end

local function new_task(fn, name, ...)
  local args = table.pack(...)
  local task = setmetatable({ joiners = {}, name = name }, Task)
  task.co = coroutine.create(function(ok, value)
    -- the first resume carries no wait result
    return fn(table.unpack(args, 1, args.n))
  end)
  local parent = coroutine.running()
  for _, t in ipairs(inherited) do t[task.co] = t[parent] end
  tasks_by_co[task.co] = task
  alive = alive + 1
  make_ready(task, true, nil)
  return task
end

local function current_task()
  local co = coroutine.running()
  return tasks_by_co[co]
end

-- The error raised inside a waiting task when a signal arrives.
-- "SIGTERM", "SIGINT", else "signal N": how messages name a signal.
function M.signal_name(sig)
  return sig == 15 and "SIGTERM" or sig == 2 and "SIGINT" or ("signal " .. tostring(sig))
end

local function interrupted(sig)
  return errors.new("interrupted", { signal = sig, message = "interrupted by " .. M.signal_name(sig) })
end

-- An interruption (a signal, or a cancelled task): code that catches errors
-- to retry or to carry on re-raises these, so the task stops.
function M.is_interrupt(e) return errors.is(e, "interrupted") end

-- The one place every wait goes through.
local function wait(kind, arg)
  if not current_task() then
    error("ecsplay: waiting (" .. kind .. ") outside the scheduler; call this from a playbook, "
      .. "ecsplay.spawn or a function run by ecsplay", 3)
  end
  local ok, value = coroutine.yield(TOKEN, kind, arg)
  if not ok then error(value, 0) end
  return value
end

-- Public API -------------------------------------------------------------------
--[[ sleep(seconds [, wall]): `wall` caps the sleep in wall-clock seconds too (it ends at
     whichever comes first), for a task that must look at something outside the world
     (a run's control file) while a served simulator's clock may stand still (--lockstep:
     the world waits for a busy client). The simulator still sees this process waiting
     for the full time, so a capped sleep never holds the world back. In process
     (virtual clock) the cap means nothing: time jumps. ]]
function M.sleep(seconds, wall)
  seconds = tonumber(seconds) or 0
  if seconds < 0 then seconds = 0 end
  wall = tonumber(wall)
  if wall and wall > 0 then return wait("sleep", { seconds = seconds, wall = wall }) end
  return wait("sleep", seconds)
end

--[[ next_tick(period, t, anchor): the first instant after t (default: now) of the
     grid anchor + k * period (anchor default 0: multiples of period since the epoch).
     Periodic polls sleep to it instead of "period from now", so every task polling with
     the same period reads at the same instant and the shared batcher (aws/batch.lua)
     merges their reads, however staggered the tasks started.
     sleep_to_tick(period, anchor): sleeps until then. ]]
function M.next_tick(period, t, anchor)
  t, anchor = t or M.now(), anchor or 0
  return anchor + (math.floor((t - anchor) / period) + 1) * period
end

function M.sleep_to_tick(period, anchor)
  local now = M.now()
  return M.sleep(M.next_tick(period, now, anchor) - now)
end

function M.yield() return wait("yield") end

function M.http(req) return wait("http", req) end

function M.spawn(fn, ...)
  if type(fn) ~= "function" then
    error("ecsplay.spawn: expected a function, got " .. type(fn), 2)
  end
  return new_task(fn, nil, ...)
end

function M.in_task() return current_task() ~= nil end

-- Waits for the task; returns its results or raises its error.
function Task:join()
  if not self.done then wait("join", self) end
  if self.err ~= nil then error(self.err, 0) end
  return table.unpack(self.results, 1, self.results.n)
end

-- Joins without raising: ok, results... | false, err
function Task:result()
  if not self.done then wait("join", self) end
  if self.err ~= nil then return false, self.err end
  return true, table.unpack(self.results, 1, self.results.n)
end

-- Cancels a waiting task: it receives a "Cancelled" error where it waits.
function Task:cancel(reason)
  if self.done or self == current_task() then return false end
  local w = self.wait
  if w then
    if w.http then
      http_waiting[w.http] = nil
      http_count = http_count - 1
      pcall(http_core().cancel, w.http)
    elseif w.join then
      local js = w.join.joiners
      for i = #js, 1, -1 do if js[i] == self then table.remove(js, i) end end
    elseif w.t then
      w.cancelled = true
    end
    self.wait = nil
    make_ready(self, false, errors.new("interrupted", { code = "Cancelled",
      message = reason or "task cancelled" }))
    return true
  end
  return false
end

--[[ Cancels every task of the list still running (each rolls itself back where it waits, as
     on a signal). One in the ready queue cannot be cancelled until it waits again: tries
     until each is cancelled or done. ]]
function M.cancel_all(tasks, reason)
  while true do
    local pending = false
    for _, t in ipairs(tasks) do
      if not t.done and not t.cancel_asked then
        if t:cancel(reason) then t.cancel_asked = true else pending = true end
      end
    end
    if not pending then return end
    M.yield()
  end
end

--[[ Waits for task to end, also when an interruption reaches the waiting caller: a signal
     reached the members too (each rolls itself back meanwhile); a cancellation of the
     caller is passed on to every member of `group`. → ok, value, the interruption's
     error if one came while waiting. ]]
function M.settle(task, group)
  local interrupt
  while true do
    local waited, ok, value = pcall(task.result, task)
    if waited then return ok, value, interrupt end
    if not M.is_interrupt(ok) then error(ok, 0) end
    interrupt = interrupt or ok
    if ok.code == "Cancelled" then M.cancel_all(group, errors.describe(ok)) end
  end
end

-- Delivers a signal to every waiting task, once.
local function deliver_signal(sig)
  signal_seen = sig
  cancel_server_wait()
  local err = interrupted(sig)
  for _, task in pairs(tasks_by_co) do
    if not task.done and task.wait then
      local w = task.wait
      if w.http then
        http_waiting[w.http] = nil
        http_count = http_count - 1
        pcall(http_core().cancel, w.http)
      elseif w.join then
        local js = w.join.joiners
        for i = #js, 1, -1 do if js[i] == task then table.remove(js, i) end end
      elseif w.t then
        w.cancelled = true
      end
      task.wait = nil
      make_ready(task, false, err)
    end
  end
end

function M.signal_received() return signal_seen end

local function run_ready()
  local any = false
  while ready_head <= ready_tail do
    local i = ready_head
    local task, ok, value = ready[i], ready_ok[i], ready_value[i]
    ready[i], ready_ok[i], ready_value[i] = nil, nil, nil
    ready_head = i + 1
    any = true
    step(task, ok, value)
  end
  ready_head, ready_tail = 1, 0
  return any
end

local function fire_due_timers()
  if not timers[1] and #wall_timers == 0 then return end -- nothing to fire: no clock read
  local now = M.now()
  while timers[1] and (timers[1].cancelled or timers[1].t <= now) do
    local item = heap_pop()
    if not item.cancelled then
      item.cancelled = true -- fired: its wall cap (if any) must not fire it again
      make_ready(item.task, true, nil)
    end
  end
  if #wall_timers == 0 then return end
  local mono, keep = core.monotonic(), {}
  for _, item in ipairs(wall_timers) do
    if not item.cancelled and item.wall_at <= mono then
      item.cancelled = true -- left in the heap, skipped when popped
      make_ready(item.task, true, nil)
    elseif not item.cancelled then
      keep[#keep + 1] = item
    end
  end
  wall_timers = keep
end

-- Wall seconds until the earliest wall cap (sleep's `wall`), at most `limit`.
local function wall_cap(limit)
  local mono = core.monotonic()
  for _, item in ipairs(wall_timers) do
    if not item.cancelled then limit = math.min(limit, math.max(0, item.wall_at - mono)) end
  end
  return limit
end

local function poll_http(timeout)
  local done = http_core().poll(timeout)
  for _, c in ipairs(done) do
    local task = http_waiting[c.id]
    if server and server.wait and c.id == server.wait.id then
      server_waited(c)
    elseif task then
      http_waiting[c.id] = nil
      http_count = http_count - 1
      make_ready(task, true, c)
    end
  end
end

local function fail_deadlock(main)
  local js = main.wait.join.joiners
  for i = #js, 1, -1 do if js[i] == main then table.remove(js, i) end end
  main.wait = nil
  make_ready(main, false, errors.new("internal", { code = "Deadlock",
    message = "every task is waiting on another task" }))
end

--[[ Runs the loop until `main` is done, then until every other task is done
     (tasks still waiting when main ends are cancelled, so their cleanup
     runs). Returns main's ok, results... like pcall. ]]
local function loop(main)
  running_loop = true
  while true do
    run_ready()
    if not signal_seen then
      local sig = core.signal()
      if sig then deliver_signal(sig) end
    end
    if has_ready() then goto continue end
    if main.done then
      if alive == 0 then break end
      -- cancel stragglers once; they may still need the loop to clean up
      for _, task in pairs(tasks_by_co) do
        if not task.done and task.wait and not task.cancel_sent then
          task.cancel_sent = true
          task:cancel("the playbook finished")
        end
      end
      if has_ready() then goto continue end
    end
    while timers[1] and timers[1].cancelled do heap_pop() end
    if http_count == 0 and not timers[1] then
      if alive > 0 and not has_ready() then
        -- every task waits on another: a deadlock; fail the main task
        if not main.done and main.wait and main.wait.join then
          fail_deadlock(main)
        else
          break
        end
      end
      goto continue
    end
    do
      local deadline = timers[1] and timers[1].t
      if virtual and http_count == 0 then
        if deadline and deadline > virtual_now then virtual_now = deadline end
      elseif server and http_count == 0 and deadline and deadline > server_now() then
        if wait_on_server(deadline) then poll_http(wall_cap(60)) end
      else
        local timeout = 60
        if deadline then timeout = wall_cap(wall_seconds_until(deadline)) end
        if virtual then timeout = math.min(timeout, 0.05) end
        if http_count > 0 or (server and server.wait) then
          poll_http(timeout)
        elseif timeout > 0 then
          -- nothing to poll but the clock: core.wait still lets a signal cut the
          -- wait short, and does not load libcurl for a plain sleep
          core.wait(timeout)
        end
      end
      fire_due_timers()
    end
    ::continue::
  end
  running_loop = false
end

function M.run(fn, ...)
  if running_loop then error("ecsplay: the scheduler is already running", 2) end
  signal_seen = nil
  local main = new_task(fn, "main", ...)
  loop(main)
  leave_server()
  if main.err ~= nil then return false, main.err end
  return true, table.unpack(main.results or {}, 1, main.results and main.results.n or 0)
end

-- For tests and the runner: how many tasks, timers and transfers are pending.
function M.stats()
  return { alive = alive, timers = #timers, http = http_count }
end

M.Task = Task
return M
