-- service.build(name, extras) → a module whose fields are the model's operations under
-- boto3's snake_case names: ecs.update_service{...} == aws.call("ecs", "UpdateService", {...}).
-- Built lazily through __index: the model is loaded on first use, not at require time.
--   mod.wait.<waiter_snake>{ ...params, timeout = "10m" | seconds, delay = seconds }
--   mod.pages.<operation_snake>{ ... }  → iterator of pages
--   mod.all.<operation_snake>{ ... }    → every page's result list concatenated
-- service.bind(face, session) → the same face with every call run inside `session`
-- (aws/session.lua): operations, waiters, paginators (each page's request too).
local strings = require "ecsplay.util.strings"
local errors = require "ecsplay.errors"
local model = require "ecsplay.aws.model"
local aws = require "ecsplay.aws.call"
local waiter = require "ecsplay.aws.waiter"
local paginator = require "ecsplay.aws.paginator"

local M = {}

local NO_SUCH_CODE = { operation = "UnknownOperation", waiter = "UnknownWaiter",
  ["paginated operation"] = "UnknownPaginator" }

-- A name that is not in the model (`ecs.describe_servics`): bad input with a
-- did-you-mean, raised before anything is sent (exit 2 while nothing changed;
-- the runner names the playbook's line).
local function no_such(service, what, name, candidates)
  table.sort(candidates)
  error(errors.new("bad_input", { code = NO_SUCH_CODE[what], field = tostring(name),
    message = string.format("%s has no %s %q%s", service, what, tostring(name),
      strings.did_you_mean(tostring(name), candidates, { quote = true })) }), 0)
end

-- Keys the waiter takes for itself, unless the operation's input has a member so named.
local WAITER_OPTS = { "timeout", "delay" }

local function waiters(name)
  return setmetatable({}, { __index = function(t, k)
    local m = model.load(name)
    local wname
    for w in pairs(m.waiters or {}) do
      if model.xform_name(w) == k or w == k then wname = w break end
    end
    if not wname then
      local names = {}
      for w in pairs(m.waiters or {}) do names[#names + 1] = model.xform_name(w) end
      no_such(name, "waiter", k, names)
    end
    local def = m.waiters[wname]
    local input = model.input_shape(m, def.operation)
    local fn = function(params)
      local p, opts = {}, {}
      for key, v in pairs(params or {}) do p[key] = v end
      for _, o in ipairs(WAITER_OPTS) do
        if p[o] ~= nil and not (input and input.members and input.members[o]) then
          opts[o], p[o] = p[o], nil
        end
      end
      return waiter.wait(name, wname, p, opts)
    end
    rawset(t, k, fn)
    return fn
  end })
end

local function paginated(name, field)
  return setmetatable({}, { __index = function(t, k)
    local m = model.load(name)
    local op = model.operation(m, k)
    if not op or not (m.paginators and m.paginators[op.name]) then
      local names = {}
      for p in pairs(m.paginators or {}) do names[#names + 1] = model.snake(m, p) end
      no_such(name, "paginated operation", k, names)
    end
    local fn = function(params)
      return paginator[field](name, op.name, params)
    end
    rawset(t, k, fn)
    return fn
  end })
end

function M.build(name, extras)
  local mod = extras or {}
  mod.wait = waiters(name)
  mod.pages = paginated(name, "pages")
  mod.all = paginated(name, "all")
  mod.call = function(op, params) return aws.call(name, op, params) end
  return setmetatable(mod, {
    __index = function(t, k)
      if type(k) ~= "string" then return nil end
      local m = model.load(name)
      local op = model.operation(m, k)
      if not op then
        local names = {}
        for opname in pairs(m.operations) do names[#names + 1] = model.snake(m, opname) end
        no_such(name, "operation", k, names)
      end
      local opname = op.name
      local fn = function(params) return aws.call(name, opname, params) end
      rawset(t, k, fn)
      return fn
    end,
  })
end

local function bound(t, session, iterators)
  return setmetatable({}, { __index = function(p, k)
    local fn = t[k]
    if type(fn) ~= "function" then return fn end
    local w
    if iterators then
      w = function(...)
        local it = session:run(fn, ...)
        return function() return session:run(it) end
      end
    else
      w = function(...) return session:run(fn, ...) end
    end
    rawset(p, k, w)
    return w
  end })
end

function M.bind(face, session)
  local mod = { wait = bound(face.wait, session), pages = bound(face.pages, session, true),
    all = bound(face.all, session) }
  return bound(setmetatable(mod, { __index = face }), session)
end

return M
