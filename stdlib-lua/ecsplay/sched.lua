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
waits (ecsplay.sched_clock, whose public functions this module re-exports).
Nothing is ever sent to find out (a real AWS endpoint sees only the calls
made); requests are still signed with the machine's time (signing_time).
steady_now() counts time across these switches of clock without a jump.

Signals: at the next safe point (a task's yield), each task that is waiting
gets errors.new("interrupted", { signal = n }) raised where it waits, once.
Its pcall-protected rollback code then runs normally, and may yield again.
A cancelled task gets the same kind with code "Cancelled" (no signal).
]]
local core = require "ecsplay.core"
local errors = require "ecsplay.errors"
local clock = require "ecsplay.sched_clock"

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

local function http_core()
  -- lazy: libcurl is loaded on the first HTTP wait, so a playbook that only sleeps never pays for it
  if not http_mod then http_mod = require "ecsplay.core.http" end
  return http_mod
end

-- following a served simulator's clock (set here at the switches, so now() reads a local)
local following = false
local served_now = clock.served_now

function M.now()
  if virtual then return virtual_now end
  if following then return served_now() end
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

--[[ steady(read): a clock that moves as read() does but never jumps: when read()'s time
     goes back, or the name of the clock it read changes, the time between the last reading
     and this one counts as none, and the steady clock carries on from where it was.
     (read() → time [, the name of the clock it read]) ]]
function M.steady(read)
  local last_t, last_name, offset = nil, nil, 0
  return function()
    local t, name = read()
    if last_t ~= nil and (t < last_t or name ~= last_name) then offset = offset + (last_t - t) end
    last_t, last_name = t, name
    return t + offset
  end
end

--[[ steady_now(): now() without its jumps: a switch of clock (to the virtual one, back to
     the machine's, to a served simulator's on its first answer: days from the machine's)
     re-anchors it where it was, so the time it counts is the time elapsed on the clock in
     effect, summed across switches; nor does it ever go back. clock_switches names the
     clock in effect (a new virtual clock is another clock, even with the same name), and
     switching() reads steady_now on the old clock at the switch, so that the time up to
     the switch counts too. ]]
local clock_switches = 0
M.steady_now = M.steady(function() return M.now(), clock_switches end)

local function switching()
  M.steady_now()
  clock_switches = clock_switches + 1
end

function M.use_virtual_clock(start)
  switching()
  virtual = true
  virtual_now = start or core.realtime()
  following = false
  clock.reset(true)
end

function M.use_real_clock()
  switching()
  virtual = false
  following = false
  clock.reset(false)
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

-- A served simulator's clock (ecsplay.sched_clock) ---------------------------------------
clock.setup {
  now = function() return M.now() end,
  http = function(req) return M.http(req) end,
  http_core = http_core,
  -- the first answer of a served simulator is in: timers already set keep the time they had left
  before_follow = function(delta)
    switching()
    following = true
    for _, item in ipairs(timers) do item.t = item.t + delta end
  end,
}
-- the module's own functions, not wrappers: aws/call.lua calls two of them on every AWS call
M.observe_server_clock = clock.observe_server_clock
M.follow_served_clock = clock.follow_served_clock
M.clock_name = clock.clock_name
M.server_clock = clock.server_clock
M.add_clock_headers = clock.add_clock_headers
M.clock_headers = clock.clock_headers
M.is_loopback_url = clock.is_loopback_url

-- Wall seconds until `deadline` passes on the clock followed.
local function wall_seconds_until(deadline)
  local left = deadline - M.now()
  if left <= 0 then return 0 end
  return clock.wall_seconds(left)
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
  clock.cancel_wait()
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
  local done = (http_mod or http_core()).poll(timeout)
  for i = 1, #done do
    local c = done[i]
    local task = http_waiting[c.id]
    if task then
      http_waiting[c.id] = nil
      http_count = http_count - 1
      make_ready(task, true, c)
    else
      clock.answered(c) -- the wait on a served simulator's clock, if it is that one
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
      elseif following and http_count == 0 and deadline and deadline > served_now() then
        if clock.wait_on(deadline) then poll_http(wall_cap(60)) end
      else
        local timeout = 60
        if deadline then timeout = wall_cap(wall_seconds_until(deadline)) end
        if virtual then timeout = math.min(timeout, 0.05) end
        if http_count > 0 or clock.waiting() then
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
  clock.leave()
  if main.err ~= nil then return false, main.err end
  return true, table.unpack(main.results or {}, 1, main.results and main.results.n or 0)
end

-- For tests and the runner: how many tasks, timers and transfers are pending.
function M.stats()
  return { alive = alive, timers = #timers, http = http_count }
end

M.Task = Task
return M
