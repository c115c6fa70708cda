-- Waiters from the models (waiters-2.json semantics, as botocore runs them):
-- call the operation every `delay` seconds; the first acceptor that matches decides:
-- success → return the output, failure → raise WaiterFailed, retry → poll again.
-- An error no acceptor matched is raised as is. Polling stops at the timeout
-- (default delay * maxAttempts) with a WaiterTimeout that names the waiter and the last state.
--   waiter.wait(service, "ServicesStable", params, { timeout = "10m" | seconds, delay = s })
local errors = require "ecsplay.errors"
local sched = require "ecsplay.sched"
local duration = require "ecsplay.duration"
local jmespath = require "ecsplay.aws.jmespath"
local model = require "ecsplay.aws.model"
local aws = require "ecsplay.aws.call"

local M = {}

local function seconds(v, what)
  local s, err = duration.parse(v)
  if not s then
    error(errors.param_validation { message = string.format("waiter %s: %s", what, tostring(err)),
      path = what }, 0)
  end
  return s
end

-- A compact, bounded rendering of a value for messages.
local function show(v, depth)
  depth = depth or 0
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  if depth > 2 then return "{...}" end
  local parts = {}
  if v[1] ~= nil or next(v) == nil then
    for i, x in ipairs(v) do
      if i > 8 then parts[#parts + 1] = "..." break end
      parts[#parts + 1] = show(x, depth + 1)
    end
    return "[" .. table.concat(parts, ", ") .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for i, k in ipairs(keys) do
    if i > 6 then parts[#parts + 1] = "..." break end
    parts[#parts + 1] = k .. "=" .. show(v[k], depth + 1)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end
M.show = show

-- Does acceptor `a` match this outcome? out = output table or nil; err = error or nil.
function M.matches(a, out, err)
  local m = a.matcher
  if m == "error" then
    if a.expected == true then return err ~= nil end
    if a.expected == false then return err == nil end
    return err ~= nil and err.code == a.expected
  elseif m == "status" then
    if err then return err.status == a.expected end
    return a.expected == 200
  end
  if err then return false end
  local v = jmespath.search(a.argument, out)
  if m == "path" then
    return jmespath.equal(v, a.expected)
  elseif m == "pathAll" then
    if type(v) ~= "table" or v[1] == nil then return false end
    for _, x in ipairs(v) do
      if not jmespath.equal(x, a.expected) then return false end
    end
    return true
  elseif m == "pathAny" then
    if type(v) ~= "table" then return false end
    for _, x in ipairs(v) do
      if jmespath.equal(x, a.expected) then return true end
    end
    return false
  end
  error("waiter: unsupported matcher " .. tostring(m), 0)
end

-- "services[].status = ["ACTIVE"]; ..." for the distinct path arguments, or the error.
local function describe_state(def, out, err)
  if err then return string.format("error %s", tostring(err.code)) end
  local seen, parts = {}, {}
  for _, a in ipairs(def.acceptors) do
    if a.argument and not seen[a.argument] then
      seen[a.argument] = true
      local ok, v = pcall(jmespath.search, a.argument, out)
      parts[#parts + 1] = string.format("%s = %s", a.argument, ok and show(v) or "?")
    end
  end
  return table.concat(parts, "; ")
end
M.describe_state = describe_state

-- wait(service, waiter_name, params, opts) → the output that satisfied the waiter.
-- opts.call(service, op, params) defaults to aws.call.
function M.wait(service, wname, params, opts)
  opts = opts or {}
  local m = model.load(service)
  local def = m.waiters and m.waiters[wname]
  if not def then error(string.format("%s has no waiter %q", service, tostring(wname)), 2) end
  local snake = model.xform_name(wname)
  local call = opts.call or aws.call
  local delay = opts.delay and seconds(opts.delay, "delay") or def.delay
  local timeout = opts.timeout and seconds(opts.timeout, "timeout") or def.delay * def.maxAttempts
  local s = sched
  local start = s.now()
  local deadline = start + timeout
  local checks, last = 0, nil
  while true do
    checks = checks + 1
    local ok, out = pcall(call, service, def.operation, params)
    local err = nil
    if not ok then
      -- Only AWS outcomes go to the acceptors; Lua errors, interrupts and bad parameters
      -- propagate untouched.
      if not errors.is_error(out) or errors.is(out, { "validation", "interrupted" }) then error(out, 0) end
      err, out = out, nil
    end
    local state = nil
    for _, a in ipairs(def.acceptors) do
      if M.matches(a, out, err) then
        state = a.state
        break
      end
    end
    last = describe_state(def, out, err)
    if state == "success" then return out or {} end
    if state == "failure" then
      error(errors.new("waiter", { service = service, operation = def.operation,
        code = "WaiterFailed", waiter = snake, last_state = last,
        message = string.format("waiter %s reached a failure state after %d check%s: %s", snake,
          checks, checks == 1 and "" or "s", last) }), 0)
    end
    if state == nil and err then error(err, 0) end
    if s.now() + delay > deadline - 1e-6 then
      error(errors.new("waiter", { service = service, operation = def.operation,
        code = "WaiterTimeout", waiter = snake, last_state = last,
        message = string.format("waiter %s timed out after %s (%d check%s); last state: %s", snake,
          duration.format(timeout), checks, checks == 1 and "" or "s", last) }), 0)
    end
    s.sleep(delay)
  end
end

return M
