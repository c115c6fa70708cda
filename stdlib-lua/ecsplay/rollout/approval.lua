--[[
Approval steps: { approval = { timeout =, on_timeout =, approvers =, min =,
http = } } in a canary's step list (rollout/options.lua checks it). The run
holds the current weights, its gates still measuring every interval (a gate
that fails rolls back, or pauses by its on_failure), and waits for approvals:
`ecsplay promote RUN` (the approver is the user running it, or `--as NAME`),
ecsplay.rollout.control(...):approve(NAME) from the playbook, the scenario's
`approvals` under --simulate, or the HTTP callback when `http` is given. It
goes on once `min` different approvers (from `approvers` when listed) have
approved; `abort` (or a rejection) rolls back; at the timeout, on_timeout
decides ("rollback", the default, or "promote").

  approval.wait(watcher, a, extra, label)   returns when approved; raises otherwise

The HTTP callback listens on a loopback port while the step waits (a chat
bot or a reverse proxy on the same host forwards to it):
  POST /approve?token=T&by=NAME   an approval by NAME   → 202 {"accepted":true}
  POST /reject?token=T&by=NAME    roll back             → 202 {"accepted":true}
  wrong or missing token → 403, another path → 404, another method → 405.
The token (random, one per step) is in the URLs of the "approval" event (the
notify hook's event: chat buttons) and of the run's state file.
]]
local sched = require "ecsplay.sched"
local json = require "ecsplay.json"
local errors = require "ecsplay.errors"
local duration = require "ecsplay.duration"
local crypto = require "ecsplay.core.crypto"
local control = require "ecsplay.rollout.control"

local M = {}

local function url_decode(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function query(path)
  local q = {}
  for k, v in (path:match("%?(.*)$") or ""):gmatch("([^&=]+)=([^&]*)") do q[url_decode(k)] = url_decode(v) end
  return q
end

local function answer(status, obj)
  return status, { ["Content-Type"] = "application/json" }, json.encode(obj)
end

--[[ The callback listener: { poll() → commands, serve(seconds), close(), url }.
     Requests are taken while the step's waits serve it (control.lua). ]]
local function listen(spec, token, live)
  -- lazy: libmicrohttpd is loaded only for an approval step that asks for a callback
  local simserve = require "ecsplay.core.simserve"
  local ok, server = pcall(simserve.listen, { port = spec.port, host = spec.host })
  if not ok then
    error(errors.bad_input(string.format("approval: cannot listen on %s:%d for the HTTP callback (%s)", spec.host,
      spec.port, errors.one_line(tostring(server), 200)), "approval.http"), 0)
  end
  local base = string.format("http://%s:%d", spec.host == "localhost" and "127.0.0.1" or spec.host, server:port())
  local queue = {}
  local function handler(method, path)
    local route = path:match("^([^?]*)")
    if route ~= "/approve" and route ~= "/reject" then return answer(404, { error = "not found" }) end
    if method ~= "POST" then return answer(405, { error = "use POST" }) end
    local q = query(path)
    if type(q.token) ~= "string" or #q.token ~= #token or not crypto.equal(q.token, token) then
      return answer(403, { error = "wrong or missing token" })
    end
    local by = (q.by and q.by ~= "") and q.by or "http"
    queue[#queue + 1] = { id = crypto.hex(crypto.random_bytes(6)), command = route == "/approve" and "approve"
      or "reject", as = by, user = by, host = "http", sent = sched.now(), source = "http" }
    return answer(202, { accepted = true, run = live.id })
  end
  return {
    url = base,
    poll = function()
      local out = queue
      queue = {}
      return out
    end,
    serve = function(_, seconds) server:run(seconds, handler) end,
    close = function() server:close() end,
  }
end

local function approvers_text(a)
  return a.approvers and (" from " .. table.concat(a.approvers, ", ")) or ""
end

-- After the approval, a run paused meanwhile stays held until unpause or promote.
local function hold_while_paused(w, extra)
  local live = w.live
  if not live.paused then return end
  live:set_state("paused", live.paused_reason or "paused")
  while live.paused and not w.promoted do
    local gated = #w.gates > 0
    local t = gated and w.next_at or (sched.now() + w.c.interval)
    if w:wait_until(t) then break end
    if gated and sched.now() >= w.next_at then w:measure(extra) end
  end
  live.paused = false
end

-- The approval's decision: returns once approved, raises on abort, rejection or timeout.
local function decide(w, a, extra, tally, deadline, label)
  local live = w.live
  if #tally.approved_by >= a.min then return end -- resumed with the approvals it needed
  for _, cmd in ipairs(live:take_early_approvals()) do
    local r = live:apply(cmd, "approval", tally)
    if r == "abort" then error(control.aborted(cmd), 0) end
    if r == "end" then return end
  end
  while true do
    local gated = #w.gates > 0
    local t = gated and math.min(deadline, w.next_at) or deadline
    for _, cmd in ipairs(live:sleep_until(t)) do
      local r = live:apply(cmd, "approval", tally)
      if r == "abort" then error(control.aborted(cmd), 0) end
      if r == "end" then return end
    end
    local now = sched.now()
    if now >= deadline then
      local got = string.format("%d of %d approval(s)", #tally.approved_by, a.min)
      if a.on_timeout == "promote" then
        live:record({ command = "timeout", source = "timer", user = "ecsplay", host = live.host },
          string.format("%s: no decision after %s with %s: going on (on_timeout = promote)", label,
            duration.format(a.timeout), got))
        return
      end
      live:record({ command = "timeout", source = "timer", user = "ecsplay", host = live.host },
        string.format("%s: no decision after %s with %s: rolling back (on_timeout = rollback)", label,
          duration.format(a.timeout), got))
      error(errors.new("rollout", { code = "ApprovalTimedOut", message = string.format(
        "the approval %s timed out after %s with %s%s (on_timeout = rollback)", label, duration.format(a.timeout),
        got, approvers_text(a)) }), 0)
    end
    if gated and now >= w.next_at then
      w:measure(extra)
      if w.promoted then return end
    end
  end
end

-- Whether the resumed run had stopped inside an approval step (begun, not done).
local function stopped_in_approval(run)
  for key in pairs(run.resume and run.resume.intent or {}) do
    if type(key) == "string" and key:match("^approval:") then return true end
  end
  return false
end

--[[ `ecsplay resume` of a run that stopped while this approval waited: the wait
     starts again (with its whole timeout: nobody could approve while the run was
     gone), the approvals already given counted (control.lua restores them from
     the journal's control lines), and the log says so. ]]
local function count_earlier_approvals(run, live, a, tally, label)
  local before = live.resumed_approvals and live.resumed_approvals[label]
  if not before and not (stopped_in_approval(run) and not live.approval_restarted) then return end
  live.approval_restarted = true
  if live.resumed_approvals then live.resumed_approvals[label] = nil end
  for _, who in ipairs(before or {}) do
    if type(who) == "string" and (not tally.allowed or tally.allowed[who]) and not tally.by_set[who] then
      tally.by_set[who] = true
      tally.approved_by[#tally.approved_by + 1] = who
    end
  end
  local n = #tally.approved_by
  run:log("info", "approval", string.format("%s: resumed: the approval wait starts again (up to %s) with %d of %d "
    .. "approval(s) already given%s", label, duration.format(a.timeout), n, a.min,
    n > 0 and (" (" .. table.concat(tally.approved_by, ", ") .. ")") or ""), { resumed = true, approved_by = tally.approved_by })
end

--[[ Waits for the approval a (rollout/options.lua approval) with watcher w
     (its gates measure meanwhile); label: "before step 2" and the like. ]]
function M.wait(w, a, extra, label)
  local live, run = w.live, w.run
  local now = sched.now()
  w.started, w.step_started, w.seconds = now, now, a.timeout
  w.can_hold, w.promoted = true, false
  local deadline = now + a.timeout
  local allowed
  if a.approvers then
    allowed = {}
    for _, n in ipairs(a.approvers) do allowed[n] = true end
  end
  local approved_by = json.array {}
  local tally = { allowed = allowed, by_set = {}, approved_by = approved_by, min = a.min, approvers = a.approvers,
    label = label }
  count_earlier_approvals(run, live, a, tally, label)
  local fields = { step = extra and extra.step, timeout = a.timeout, on_timeout = a.on_timeout,
    approvers = a.approvers, min = a.min }
  local state = { step = label, approvers = a.approvers, min = a.min, approved_by = approved_by,
    deadline = deadline, on_timeout = a.on_timeout }
  if a.http then
    local token = crypto.hex(crypto.random_bytes(16))
    live.http = listen(a.http, token, live)
    fields.approve_url = live.http.url .. "/approve?token=" .. token
    fields.reject_url = live.http.url .. "/reject?token=" .. token
    state.approve_url, state.reject_url = fields.approve_url, fields.reject_url
  end
  live.approval = state
  live:set_state("awaiting-approval")
  run:log("info", "approval", string.format("%s: waiting for %d approval(s)%s for up to %s (`ecsplay promote %s`); "
    .. "then: %s", label, a.min, approvers_text(a), duration.format(a.timeout), tostring(run.id), a.on_timeout), fields)
  local ok, err = pcall(decide, w, a, extra, tally, deadline, label)
  if live.http then live.http.close() live.http = nil end
  live.approval = nil
  if not ok then error(err, 0) end
  live:set_state(live.paused and "paused" or "running")
  hold_while_paused(w, extra)
  live:set_state("running")
  w.can_hold = false
end

return M
