--[[
ecsplay's own lint rules: the calls of a playbook whose arguments are
written out in the source, checked by the code the run itself uses, without
running anything or calling AWS.

  rollout.<strategy>{...}   rollout/strategy.lua's check_options (the option
                            check a run starts with; linear through canary's
                            linear_options); a strategy that does not exist
                            is rollout's own "no strategy" error
  gate.<kind>{...}          the gate's constructor (gate/options.lua and the kind's
                            own checks: options, thresholds, durations)
  ecs.<operation>{...}      (and elbv2, codedeploy, cloudwatch, sts; also
                            .pages.<op> / .all.<op>): the parameters against the
                            service model (aws/validate.lua); an operation or
                            waiter the model does not have is the service
                            face's own error
  ecsplay.sleep(d)          duration.parse
  ecsplay.params{...}       the declaration check of ecsplay.params, one
                            parameter at a time

A call is recognised by what its name refers to: a local (or global) set
from `require "ecsplay.rollout"` and friends (also `require(...).canary`),
or the `ecsplay` global. A value the source does not spell out (`a.bake`,
`f()`) is not known: the checks run with stand-ins for it and report only
what the source itself gets wrong (cli/lint/literal.lua).

  rules.check(ast, where) → findings { { node =, message = } }
]]
local errors = require "ecsplay.errors"
local strings = require "ecsplay.util.strings"
local context = require "ecsplay.context"
local ecsplay = require "ecsplay"
local duration = require "ecsplay.duration"
local validate = require "ecsplay.aws.validate"
local model = require "ecsplay.aws.model"
local rollout = require "ecsplay.rollout"
local strategy = require "ecsplay.rollout.strategy"
local options = require "ecsplay.rollout.options"
local gate = require "ecsplay.gate"
local literal = require "ecsplay.cli.lint.literal"

local M = {}

-- The service faces and their model names.
local SERVICES = { ["ecsplay.ecs"] = "ecs", ["ecsplay.elbv2"] = "elbv2",
  ["ecsplay.codedeploy"] = "codedeploy", ["ecsplay.cloudwatch"] = "cloudwatch", ["ecsplay.sts"] = "sts" }

-- The gate constructors of ecsplay.gate (gate/init.lua's "The gates"); its
-- other fields are helpers that take no literal options.
M.GATE_KINDS = { "alb_5xx_rate", "alb_latency", "alb_healthy_hosts", "cloudwatch", "alarm", "http",
  "check", "baseline" }

local function is_require(node)
  return node.tag == "Call" and node[1].tag == "Id" and node[1][1] == "require"
    and node[2] and node[2].tag == "String" and #node == 2
end

-- Calls every node of the tree (depth first), parents before children.
local function walk(node, fn)
  if type(node) ~= "table" then return end
  if node.tag then fn(node) end
  for _, child in ipairs(node) do walk(child, fn) end
end

-- name → module for every `local X = require "M"` (or `X = ...`, or
-- `require("M").field`) in the file. Shadowing is not followed: a name bound
-- to a module anywhere in the file is taken to mean it everywhere.
local function aliases(ast)
  local out = {}
  walk(ast, function(n)
    if (n.tag == "Local" or n.tag == "Set") and n[2] then
      for i, target in ipairs(n[1]) do
        local value = n[2][i]
        local name = target.tag == "Id" and target[1]
        if name and value then
          if is_require(value) then
            out[name] = value[2][1]
          elseif value.tag == "Index" and is_require(value[1]) and value[2].tag == "String" then
            out[name] = value[1][2][1] .. "." .. value[2][1]
          end
        end
      end
    end
  end)
  return out
end

-- The dotted name a call's function stands for ("ecsplay.rollout.canary"), or nil.
local function qualified(node, names)
  if node.tag == "Id" then
    return names[node[1]] or (node[1] == "ecsplay" and "ecsplay" or nil)
  elseif node.tag == "Paren" then
    return qualified(node[1], names)
  elseif node.tag == "Index" and node[2].tag == "String" then
    local base = qualified(node[1], names)
    return base and (base .. "." .. node[2][1])
  elseif is_require(node) then
    return node[2][1]
  end
end

-- The error a face raises when indexed with a name it does not have, or nil.
local function index_error(mod, name)
  local ok, err = pcall(function() return mod[name] end)
  if not ok then return err end
end

local function finding(node, message) return { { node = node, message = message } } end

-- The keys canary.linear_options turns into canary's own options.
local LINEAR_OWN = { step = true, every = true }

--[[ Keys the strategy does not take, each reported at its key by the run's
     own key check (options.check_keys), whatever its value: the search below
     cannot tell a wrong key from a wrong value it does not know. → findings,
     the paths to leave out of the search ]]
local function unknown_keys(label, spec, shape, extra)
  local allowed = {}
  for k in pairs(spec.allowed) do allowed[k] = true end
  for k in pairs(extra or {}) do allowed[k] = true end
  local out, absent = {}, {}
  for _, e in ipairs(shape.entries) do
    if type(e.key) == "string" and not allowed[e.key] then
      local ok, err = pcall(options.check_keys, label, { [e.key] = true }, allowed)
      if not ok then
        out[#out + 1] = { node = e.node, message = errors.describe(err) }
        absent[#absent + 1] = e.key
      end
    end
  end
  return out, absent
end

local function check_strategy(name, call, shapes)
  local err = index_error(rollout, name)
  if err then return finding(call, errors.describe(err)) end
  local shape = shapes[1] or { kind = "value" }
  if shape.kind == "unknown" then return {} end
  local fn, spec_name, extra
  if name == "linear" then
    local canary = require "ecsplay.rollout.canary" -- lazy: strategies load only when a playbook uses them
    fn = function(o) return strategy.check_options("canary", canary.linear_options(o), "linear") end
    spec_name, extra = "canary", LINEAR_OWN
  else
    -- a field of ecsplay.rollout that is no strategy has no spec and is left alone
    -- lazy: as above (defining the strategy registers its spec)
    if not pcall(require, "ecsplay.rollout." .. name) or not strategy.SPECS[name] then return {} end
    fn = function(o) return strategy.check_options(name, o) end
    spec_name = name
  end
  local out, absent = {}, {}
  if shape.kind == "table" then out, absent = unknown_keys(name, strategy.SPECS[spec_name], shape, extra) end
  for _, f in ipairs(literal.search(fn, { shape }, call, nil, absent)) do out[#out + 1] = f end
  return out
end

local function check_gate(name, call, shapes)
  local is_kind = false
  for _, k in ipairs(M.GATE_KINDS) do is_kind = is_kind or k == name end
  if not is_kind then
    if gate[name] ~= nil then return {} end
    return finding(call, string.format("ecsplay.gate has no gate %q%s", name,
      strings.did_you_mean(name, M.GATE_KINDS, { quote = true })))
  end
  -- an options table is checked at the root ("" paths); other arguments by position
  local roots, any_known = {}, #shapes == 0
  for i, s in ipairs(shapes) do
    roots[i] = s.kind == "table" and "" or ("#" .. i)
    any_known = any_known or s.kind ~= "unknown"
  end
  if not any_known then return {} end
  return literal.search(gate[name], shapes, call, roots)
end

-- A service operation's literal parameters against its model: every problem
-- of the validator, less those about values the source does not give.
local function check_operation(service, opname, call, shape)
  if not shape or shape.kind ~= "table" then return {} end
  local m = model.load(service)
  local op = model.operation(m, opname)
  if not op then return {} end
  local known, unknown = literal.slots({ shape })
  local params = literal.materialize(shape, setmetatable({}, { __index = function() return #literal.STANDINS end }))
  local ok, err = pcall(validate.input, m, op.name, params)
  if ok or not errors.is(err, "validation") then return {} end
  local out = {}
  for _, p in ipairs(err.errors or {}) do
    local skip = false
    for _, u in ipairs(unknown) do skip = skip or literal.under(p.path, u) end
    if not skip then
      local best
      for path in pairs(known) do
        if literal.under(p.path, path) and (not best or #path > #best) then best = path end
      end
      out[#out + 1] = { node = best and known[best] or call,
        message = string.format("%s %s: %s", service, op.name, p.message) }
    end
  end
  return out
end

local function check_service(modname, rest, call, shapes)
  local service = SERVICES[modname]
  -- lazy: a service face (and its model) loads only when a playbook calls it
  local face = require(modname)
  local group, name = rest:match("^(%w+)%.([%w_]+)$")
  if group == "wait" or group == "pages" or group == "all" then
    local err = index_error(face[group], name)
    if err then return finding(call, errors.describe(err)) end
    if group == "wait" then return {} end
    return check_operation(service, name, call, shapes[1])
  end
  if rest:find(".", 1, true) then return {} end
  local err = index_error(face, rest)
  if err then return finding(call, errors.describe(err)) end
  return check_operation(service, rest, call, shapes[1])
end

local function check_sleep(call, shapes)
  local s = shapes[1]
  if not s or s.kind ~= "value" then return {} end
  local _, err = duration.parse(s.value)
  if err then return finding(call, "ecsplay.sleep: " .. err) end
  return {}
end

-- ecsplay.params's own declaration check, one parameter at a time (so each
-- finding sits at its parameter); under a help signal it stops right after.
-- A parameter whose declaration holds a value the source does not give is left alone.
local function check_params(_, shapes)
  local s = shapes[1]
  if not s or s.kind ~= "table" then return {} end
  local out = {}
  for _, e in ipairs(s.entries) do
    local _, unknown = literal.slots({ e.shape })
    if e.shape.kind == "table" and #unknown == 0 then
      local declared = literal.materialize(e.shape)
      local signal = {}
      context.params_help = signal
      local ok, err = pcall(ecsplay.params, { [e.key] = declared })
      context.params_help = nil
      if not ok and err ~= signal then
        -- a plain Lua error at the caller's line: keep only its text
        local text = type(err) == "string" and err:gsub("^[^\n]-:%d+: ", "") or errors.describe(err)
        out[#out + 1] = { node = e.node, message = text }
      end
    end
  end
  return out
end

-- The findings of one call node.
local function check_call(call, names)
  local q = qualified(call[1], names)
  if not q then return {} end
  local shapes = {}
  for i = 2, #call do shapes[#shapes + 1] = literal.shape(call[i]) end
  local name = q:match("^ecsplay%.rollout%.([%w_]+)$")
  if name then return check_strategy(name, call, shapes) end
  name = q:match("^ecsplay%.gate%.([%w_]+)$")
  if name then return check_gate(name, call, shapes) end
  for modname in pairs(SERVICES) do
    local rest = q:sub(#modname + 2)
    if q:sub(1, #modname + 1) == modname .. "." and rest ~= "" then
      return check_service(modname, rest, call, shapes)
    end
  end
  if q == "ecsplay.sleep" then return check_sleep(call, shapes) end
  if q == "ecsplay.params" then return check_params(call, shapes) end
  return {}
end

function M.check(ast)
  local names = aliases(ast)
  local out = {}
  walk(ast, function(n)
    if n.tag == "Call" then
      for _, f in ipairs(check_call(n, names)) do out[#out + 1] = f end
    end
  end)
  return out
end

return M
