--[[
The `ecsplay` table every playbook sees (docs/playbooks.md): arguments,
time, concurrency, abort handlers, logging, HTTP and JSON. Heavier modules
(the AWS services, rollout, the simulator) load on first `require`.
]]
local core = require "ecsplay.core"
local sched = require "ecsplay.sched"
local duration = require "ecsplay.duration"
local log = require "ecsplay.log"
local context = require "ecsplay.context"
local errors = require "ecsplay.errors"
local strings = require "ecsplay.util.strings"

local M = {
  version = core.version,
  args = {},
  log = log,
  duration = duration,
}

-- ecsplay.http and ecsplay.json (cjson, a shared object to map) load on first use.
-- ecsplay.simulated: ecsplay.simulating() for older playbooks, read from the run
-- context on each access (no run state is kept in this table).
local lazy = { http = "ecsplay.http", json = "ecsplay.json" }
setmetatable(M, { __index = function(t, k)
  if k == "simulated" then return context.simulated == true end
  local modname = lazy[k]
  if modname then
    local v = require(modname) -- lazy: start-up cost (libcurl, cjson) for playbooks that never use them
    rawset(t, k, v)
    return v
  end
end })

-- true under --simulate (the in-process simulator on a virtual clock).
function M.simulating() return context.simulated == true end

function M.now() return sched.now() end

function M.sleep(d)
  -- under --help, a playbook that waits before declaring its parameters stops here
  if context.params_help then error(context.params_help, 0) end
  return sched.sleep(duration.check(d, "ecsplay.sleep", 2))
end

function M.spawn(fn, ...) return sched.spawn(fn, ...) end

--[[ Members of ecsplay.parallel / ecsplay.map that failed: the error the run raises is the
     worst of theirs, so the exit code never says less than what happened (cli/exit.lua):
     a rollback that did not complete (exit 3) over an interruption (130/143) over a failure
     that rolled back (1) over any other error. Equal ranks: the first in list order. ]]
local function severity(e)
  if errors.is(e, "rollback") then return 4 end
  if errors.is(e, "interrupted") then return 3 end
  if errors.is(e, "rollout") and errors.is(e.cause, "interrupted") then return 3 end
  if errors.is(e, "rollout") or (type(e) == "table" and e.rolled_back == true) then return 2 end
  return 1
end

--[[ failures: { {index=, err=}, ... } in list order (a signal that reached the waiting
     caller is one too, index nil); total: how many members. Raises the worst error; with
     more than one member failed, a copy of it whose message says how many, and `others`
     the other distinct errors (one signal reaches every waiting task as the same error).
     note(failed, total) → the count's text instead of "N of M <what> members failed"
     (map's opts.note: rollout.fleet counts in its own words). ]]
local function raise_worst(what, failures, total, note_fn)
  local worst
  for _, f in ipairs(failures) do
    if worst == nil or severity(f.err) > severity(worst.err) then worst = f end
  end
  local members = 0
  for _, f in ipairs(failures) do if f.index then members = members + 1 end end
  if members <= 1 and (#failures == 1 or worst.index) then error(worst.err, 0) end
  local others, texts, seen = {}, {}, { [worst.err] = true }
  local said = { [strings.one_line(errors.describe(worst.err), 200)] = true }
  for _, f in ipairs(failures) do
    if not seen[f.err] then
      seen[f.err] = true
      others[#others + 1] = f.err
      local text = strings.one_line(errors.describe(f.err), 200)
      if not said[text] then said[text] = true texts[#texts + 1] = text end
    end
  end
  local note = note_fn and note_fn(members, total)
    or string.format("%d of %d %s members failed", members, total, what)
  if #texts > 0 then note = note .. "; also: " .. table.concat(texts, "; ") end
  local err = worst.err
  if type(err) ~= "table" then error(tostring(err) .. " (" .. note .. ")", 0) end
  local copy = setmetatable({}, getmetatable(err))
  for k, v in pairs(err) do copy[k] = v end
  copy.message = (err.message or errors.describe(err)) .. " (" .. note .. ")"
  copy.others = others
  error(copy, 0)
end

local settle = sched.settle -- waits for a task; a cancellation of the waiter goes to the group

-- Runs the functions concurrently; returns their first results in order. Every member
-- ends before this returns or raises (a signal included: members roll themselves back);
-- a failure raises the worst member error (see raise_worst).
function M.parallel(fns)
  if type(fns) ~= "table" then error("ecsplay.parallel: expected a list of functions", 2) end
  local tasks = {}
  for i, fn in ipairs(fns) do
    if type(fn) ~= "function" then
      error(string.format("ecsplay.parallel: item %d is a %s, expected a function", i, type(fn)), 2)
    end
    tasks[i] = sched.spawn(fn)
  end
  local results, failures, signal_err = {}, {}, nil
  for i, t in ipairs(tasks) do
    local ok, value, sig = settle(t, tasks)
    signal_err = signal_err or sig
    if ok then results[i] = value else failures[#failures + 1] = { index = i, err = value } end
  end
  if signal_err then failures[#failures + 1] = { err = signal_err } end
  if #failures > 0 then raise_worst("parallel", failures, #tasks) end
  return results
end

-- fn(item, index) over the list with at most opts.limit running at once. After a signal
-- no further item starts; every item running ends (rolling itself back) before this
-- returns or raises; failures raise the worst (see raise_worst; opts.note words its count).
function M.map(list, fn, opts)
  if type(list) ~= "table" then error("ecsplay.map: expected a list", 2) end
  if type(fn) ~= "function" then error("ecsplay.map: expected a function", 2) end
  local limit = opts and opts.limit or #list
  if math.type(limit) ~= "integer" or limit < 1 then
    error("ecsplay.map: limit must be an integer of 1 or more, got " .. tostring(limit), 2)
  end
  local results, errs, next_i, stopped = {}, {}, 1, false
  local function worker()
    while next_i <= #list and not stopped do
      local i = next_i
      next_i = next_i + 1
      local ok, r = pcall(fn, list[i], i)
      if ok then results[i] = r
      else
        r = errors.caught(r)
        errs[i] = r
        if sched.is_interrupt(r) then stopped = true end
      end
    end
  end
  local workers = {}
  for w = 1, math.min(limit, #list) do workers[w] = sched.spawn(worker) end
  local failures, signal_err = {}, nil
  for _, w in ipairs(workers) do
    local ok, e, sig = settle(w, workers)
    signal_err = signal_err or sig
    if not ok then failures[#failures + 1] = { err = e } end -- the worker itself (a bug)
  end
  for i = 1, #list do
    if errs[i] ~= nil then failures[#failures + 1] = { index = i, err = errs[i] } end
  end
  if signal_err then failures[#failures + 1] = { err = signal_err } end
  if #failures > 0 then raise_worst("map", failures, #list, opts and opts.note) end
  return results
end

-- Abort handlers: run newest first when the playbook fails or is interrupted
-- (the runner carries them out through ecsplay.undo).
function M.on_abort(fn, name)
  if type(fn) ~= "function" then error("ecsplay.on_abort: expected a function", 2) end
  local entry = { fn = fn, name = name }
  local aborts = context.aborts
  aborts[#aborts + 1] = entry
  return function()
    for i = #aborts, 1, -1 do
      if aborts[i] == entry then table.remove(aborts, i) return true end
    end
    return false
  end
end

--[[ ecsplay.require_version(">=0.3" [, who]): a team library's (or playbook's)
     requirement on the ecsplay running it, in LuaRocks's constraint syntax:
     "OP VERSION" joined by commas, OP one of == ~= >= <= > < ~> ("~> 0.3" is
     0.3.x: >= 0.3, < 0.4; no OP is ==). Unmet (or unreadable): bad input (exit 2
     while nothing changed) naming `who` (default: the calling file) and both
     versions. Returns true. docs/libraries.md. ]]
local function version_parts(v)
  local parts = {}
  for n in tostring(v):match("^[%d.]*"):gmatch("%d+") do parts[#parts + 1] = tonumber(n) end
  return parts
end

local function compare_versions(a, b)
  for i = 1, math.max(#a, #b) do
    local x, y = a[i] or 0, b[i] or 0
    if x ~= y then return x < y and -1 or 1 end
  end
  return 0
end

local VERSION_OPS = {
  ["=="] = function(c) return c == 0 end, ["~="] = function(c) return c ~= 0 end,
  [">="] = function(c) return c >= 0 end, ["<="] = function(c) return c <= 0 end,
  [">"] = function(c) return c > 0 end, ["<"] = function(c) return c < 0 end,
}

function M.require_version(constraint, who)
  who = who or debug.getinfo(2, "S").short_src
  local have = version_parts(M.version)
  for part in tostring(constraint):gmatch("[^,]+") do
    local op, v = part:match("^%s*([=~<>]*)%s*(%d[%d.]*)%s*$")
    if not op or (op ~= "" and op ~= "~>" and not VERSION_OPS[op]) then
      error(errors.new("bad_input", { code = "BadVersionConstraint", field = who, message = string.format(
        "%s: bad ecsplay version constraint %q: expected e.g. \">=0.3\", \">= 0.3, < 1.0\" or \"~> 0.3\"",
        who, tostring(constraint)) }), 2)
    end
    local want = version_parts(v)
    local ok
    if op == "~>" then
      local upper = { table.unpack(want) }
      upper[#upper] = upper[#upper] + 1
      ok = compare_versions(have, want) >= 0 and compare_versions(have, upper) < 0
    else
      ok = VERSION_OPS[op == "" and "==" or op](compare_versions(have, want))
    end
    if not ok then
      error(errors.new("bad_input", { code = "EcsplayVersion", field = who, message = string.format(
        "%s needs ecsplay %s; this is ecsplay %s (upgrade ecsplay, or use a version of it made for %s)",
        who, tostring(constraint), tostring(M.version), tostring(M.version)) }), 2)
    end
  end
  return true
end

--[[ Playbook parameters (docs/playbooks.md "Parameters").

  local args = ecsplay.params {
    image = { type = "string", required = true, help = "the image to roll out" },
    bake  = { type = "duration", default = "5m", help = "how long each step bakes" },
  }

Checks ecsplay.args (the key=value strings) against the declaration and
returns a new table of converted values, defaults filled in. Refused with bad
input (exit 2, nothing changed): an undeclared argument (with a did-you-mean),
a missing required one, a value that does not convert. Reading an undeclared
name from the returned table is a mistake in the playbook (a Lua error).
Under `ecsplay FILE.lua --help` the runner sets context.params_help: then the
declaration is recorded there and raised as that table, so nothing past it
runs (cli/run.lua catches it and prints the parameters). ]]

local BOOLEANS = { ["true"] = true, yes = true, on = true, ["1"] = true,
  ["false"] = false, no = false, off = false, ["0"] = false }

-- type → { expected = what the message says was expected, convert = fn(v) → value | nil }
local PARAM_TYPES = {
  string = { expected = "a string",
    convert = function(v) if type(v) == "string" then return v end end },
  number = { expected = "a number",
    convert = function(v)
      local n = tonumber(v)
      if n and n == n and n ~= math.huge and n ~= -math.huge then return n end
    end },
  integer = { expected = "an integer",
    convert = function(v) return math.tointeger(tonumber(v)) end },
  boolean = { expected = "a boolean (true/false, yes/no, on/off, 1/0)",
    convert = function(v)
      if type(v) == "boolean" then return v end
      if type(v) == "string" then return BOOLEANS[v:lower()] end
    end },
  duration = { expected = "a duration like \"90s\", \"5m\" or \"1h30m\"",
    convert = function(v)
      if type(v) == "boolean" then return nil end
      return (duration.parse(v))
    end },
}
M.PARAM_TYPES = PARAM_TYPES

local PARAM_FIELDS = { "type", "default", "required", "help", "one_of" }

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  return keys
end

-- value (a string from the command line, or already of the type) → converted | nil, message
local function convert_param(name, p, v)
  local kind = PARAM_TYPES[p.type]
  local out = kind.convert(v)
  if out == nil then
    return nil, string.format("argument %s: expected %s, got %s", name, kind.expected,
      strings.describe_value(v))
  end
  if p.one_of then
    for _, allowed in ipairs(p.one_of) do
      if allowed == out then return out end
    end
    local names = {}
    for i, allowed in ipairs(p.one_of) do names[i] = string.format("%q", tostring(allowed)) end
    return nil, string.format("argument %s: expected one of %s, got %s%s", name,
      table.concat(names, ", "), strings.describe_value(v),
      type(v) == "string" and strings.did_you_mean(v, p.one_of, { quote = true }) or "")
  end
  return out
end

-- A mistake in the declaration itself is a bug in the playbook: a Lua error at its line.
local function check_declaration(spec)
  if type(spec) ~= "table" then
    error("ecsplay.params: expected a table of parameters, got " .. strings.describe_value(spec), 3)
  end
  for _, name in ipairs(sorted_keys(spec)) do
    local p = spec[name]
    local where = "ecsplay.params: parameter " .. name
    if type(p) ~= "table" then
      error(where .. ": expected a table such as { type = \"string\", help = \"...\" }, got "
        .. strings.describe_value(p), 3)
    end
    for _, field in ipairs(sorted_keys(p)) do
      local known = false
      for _, f in ipairs(PARAM_FIELDS) do known = known or f == field end
      if not known then
        error(string.format("%s: unknown field %q%s", where, field,
          strings.did_you_mean(field, PARAM_FIELDS, { quote = true, list_all = true })), 3)
      end
    end
    if not PARAM_TYPES[p.type] then
      error(string.format("%s: unknown type %s%s", where, strings.describe_value(p.type),
        strings.did_you_mean(tostring(p.type), PARAM_TYPES, { quote = true, list_all = true })), 3)
    end
    if p.required and p.default ~= nil then
      error(where .. ": a required parameter has no default", 3)
    end
    if p.one_of ~= nil and (type(p.one_of) ~= "table" or p.one_of[1] == nil) then
      error(where .. ": one_of must be a list of the allowed values", 3)
    end
    if p.default ~= nil then
      local _, err = convert_param(name, p, p.default)
      if err then error(where .. ": bad default: " .. err, 3) end
    end
  end
end

-- The returned table: reading a name the playbook did not declare is its own typo.
local function guarded(values, spec)
  return setmetatable(values, { __index = function(_, k)
    if spec[k] == nil then
      error(string.format("ecsplay.params: %q is not a declared parameter%s", tostring(k),
        strings.did_you_mean(tostring(k), spec, { quote = true })), 2)
    end
  end })
end

function M.params(spec)
  check_declaration(spec)
  local help = context.params_help
  if help then
    help.declared = spec
    error(help, 0)
  end
  local given = M.args or {}
  for _, name in ipairs(sorted_keys(given)) do
    if spec[name] == nil then
      local hint = next(spec) == nil and "; this playbook takes no arguments"
        or (strings.did_you_mean(name, spec, { quote = true, list_all = true })
          .. " (--help after the playbook lists its parameters)")
      error(errors.bad_input(string.format("unknown argument %q%s", name, hint), name), 0)
    end
  end
  local values = {}
  for _, name in ipairs(sorted_keys(spec)) do
    local p, v = spec[name], given[name]
    if v == nil then v = p.default end
    if v == nil and p.required then
      error(errors.bad_input(string.format("missing required argument %s=%s", name,
        p.help and (" (" .. p.help .. ")") or ""), name), 0)
    end
    if v ~= nil then
      local out, err = convert_param(name, p, v)
      if err then error(errors.bad_input(err, name), 0) end
      values[name] = out
    end
  end
  return guarded(values, spec)
end

return M
