--[[
Literal values in a playbook's source, for `ecsplay lint`: what a call's
arguments are when the code says so (`{ bake = "5m", steps = { 10, 50 } }`),
and which parts are not known until the playbook runs (`a.bake`, `f()`).

  literal.shape(node) → shape       from a node of luacheck's AST:
      { kind = "value", value = v }      a constant (numbers, strings, booleans,
                                         nil, -N, a function literal as a function)
      { kind = "table", entries = { { key =, shape =, node = }, ... } }
                                         a table constructor whose keys are all known
      { kind = "unknown" }               anything else
  literal.slots(shapes) → known, unknown  the paths ("stable.service", "steps[2]",
      as ecsplay's errors name fields) of the known entries (path → node) and of
      the unknown values (a list)
  literal.materialize(shape, choice) → a Lua value: unknown values replaced by
      stand-ins (choice: path → index into STANDINS; nil by default)
  literal.search(call, shapes, where) → findings { { node =, message = } }
      runs call(values...) — the very check the run does — and reports each
      bad_input / validation error that no stand-in for an unknown value
      explains; see search() below.
]]
local errors = require "ecsplay.errors"

local M = {}

-- Stand-ins for a value the source does not give, tried in this order: one
-- value of each type, then absent (an expression like `a.image` may be nil).
M.STANDINS = {
  function() return "x" end,
  function() return 60 end,
  function() return true end,
  function() return function() end end,
  function() return {} end,
  function() return { 100 } end,
  function() return nil end,
}
local ABSENT = #M.STANDINS

local MAX_STEPS = 60

local function unknown() return { kind = "unknown" } end

-- Nodes that may stand for several values at the end of a list.
local MULTI = { Call = true, Invoke = true, Dots = true }

local shape

local function table_shape(node)
  local entries, n = {}, 0
  for i, item in ipairs(node) do
    if item.tag == "Pair" then
      local key = shape(item[1])
      if key.kind ~= "value" or key.value == nil then return unknown() end
      entries[#entries + 1] = { key = key.value, shape = shape(item[2]), node = item[1] }
    else
      if MULTI[item.tag] and i == #node then return unknown() end -- may expand to several values
      n = n + 1
      entries[#entries + 1] = { key = n, shape = shape(item), node = item }
    end
  end
  return { kind = "table", entries = entries, node = node }
end

function shape(node)
  local tag = node.tag
  if tag == "Number" then
    local v = tonumber(node[1])
    return v and { kind = "value", value = v } or unknown()
  elseif tag == "String" then return { kind = "value", value = node[1] }
  elseif tag == "True" then return { kind = "value", value = true }
  elseif tag == "False" then return { kind = "value", value = false }
  elseif tag == "Nil" then return { kind = "value", value = nil }
  elseif tag == "Function" then return { kind = "value", value = function() end }
  elseif tag == "Paren" then return shape(node[1])
  elseif tag == "Table" then return table_shape(node)
  elseif tag == "Op" and node[1] == "unm" and #node == 2 then
    local inner = shape(node[2])
    if inner.kind == "value" and type(inner.value) == "number" then
      return { kind = "value", value = -inner.value }
    end
  end
  return unknown()
end
M.shape = shape

-- How ecsplay's errors name a field below `prefix`.
local function join(prefix, key)
  if math.type(key) == "integer" then return prefix .. "[" .. key .. "]" end
  if prefix == "" then return tostring(key) end
  return prefix .. "." .. tostring(key)
end
M.join = join

function M.slots(shapes, roots)
  local known, unknown_paths = {}, {}
  local function walk(s, path)
    if s.kind == "unknown" then
      unknown_paths[#unknown_paths + 1] = path
    elseif s.kind == "table" then
      for _, e in ipairs(s.entries) do
        local p = join(path, e.key)
        known[p] = e.node
        walk(e.shape, p)
      end
    end
  end
  for i, s in ipairs(shapes) do walk(s, roots and roots[i] or "") end
  return known, unknown_paths
end

-- forced: paths whose known value is set aside (a finding was reported there).
function M.materialize(s, choice, path, forced)
  path = path or ""
  if s.kind == "unknown" or (forced and forced[path]) then
    return M.STANDINS[choice and choice[path] or 1]()
  elseif s.kind == "value" then
    return s.value
  end
  local t = {}
  for _, e in ipairs(s.entries) do t[e.key] = M.materialize(e.shape, choice, join(path, e.key), forced) end
  return t
end

-- Is `a` the path `b` or below it?
local function under(a, b)
  if a == b then return true end
  local rest = a:sub(#b + 1)
  return a:sub(1, #b) == b and (b == "" or rest:sub(1, 1) == "." or rest:sub(1, 1) == "[")
end
M.under = under

local function related(field, path)
  return type(field) == "string" and (under(field, path) or under(path, field))
end

-- The deepest known path that field names (or is below); nil when none.
local function deepest(known, field)
  if type(field) ~= "string" then return nil end
  local best
  for p in pairs(known) do
    if under(field, p) and (not best or #p > #best) then best = p end
  end
  return best
end

local function choice_key(choice)
  local keys = {}
  for k, v in pairs(choice) do keys[#keys + 1] = k .. "=" .. v end
  table.sort(keys)
  return table.concat(keys, ";")
end

local function outcome(err) return tostring(err.field) .. "\0" .. errors.describe(err) end

--[[ Runs call on the literal arguments until it passes, reporting each error
     that is the source's own:
     - an error about an unknown value (its field is that value's path, or
       above or below it; an error naming no field is about any argument
       the source does not give) tries the next stand-in there; the last one
       is "absent", and when even that fails the search ends;
     - an error that changing one unknown value makes go away (or turns into
       an error about something else) is an artifact of the stand-ins: that
       change is kept and the search goes on;
     - anything else is a finding, at the deepest known entry its field names
       (else at `where`); that entry is then set aside like an unknown value so
       the next problem can show.
     An unknown value is never reported: `{ failure_limt = a.n }` is wrong
     whatever a.n is, but telling that apart from a bad value takes the list of
     allowed keys (rules.lua checks those first where it has it). Only errors
     of kind bad_input or validation count; any other error (a stand-in a check
     did not expect) ends the search quietly.
     roots[i]: the path prefix of argument i ("" for an options table);
     absent: paths whose entry counts as not there (reported already). ]]
function M.search(call, shapes, where, roots, absent)
  local known, unknown_paths = M.slots(shapes, roots)
  local forced, choice, visited, findings = {}, {}, {}, {}
  for _, p in ipairs(absent or {}) do forced[p], choice[p] = true, ABSENT end
  local function attempt(ch)
    local args = {}
    for i, s in ipairs(shapes) do args[i] = M.materialize(s, ch, roots and roots[i] or "", forced) end
    local ok, err = pcall(call, table.unpack(args, 1, #shapes))
    if ok then return nil end
    return err
  end
  local function slot_for(field)
    for _, u in ipairs(unknown_paths) do
      if related(field, u) or (field == nil and (u == "" or u:match("^#%d+$"))) then return u end
    end
  end
  local function vary(err)
    for _, u in ipairs(unknown_paths) do
      for j = 1, #M.STANDINS do
        if j ~= (choice[u] or 1) then
          local ch = {}
          for k, v in pairs(choice) do ch[k] = v end
          ch[u] = j
          local key = choice_key(ch)
          if not visited[key] then
            local e = attempt(ch)
            if e == nil or (errors.is_error(e) and outcome(e) ~= outcome(err) and not slot_for(e.field)) then
              visited[key] = true
              choice = ch
              return true
            end
          end
        end
      end
    end
    return false
  end
  local function report(node, err)
    findings[#findings + 1] = { node = node or where, message = errors.describe(err) }
  end
  for _ = 1, MAX_STEPS do
    visited[choice_key(choice)] = true
    local err = attempt(choice)
    if err == nil then break end
    if not (errors.is(err, "bad_input") or errors.is(err, "validation")) then break end
    local slot = slot_for(err.field)
    if slot and (choice[slot] or 1) < ABSENT then
      choice[slot] = (choice[slot] or 1) + 1
    elseif not vary(err) then -- (when it does, the error was an artifact of another stand-in)
      if slot then break end -- about a value the source does not give: nothing to report
      local path = deepest(known, err.field)
      report(path and known[path], err)
      if not path then break end
      forced[path] = true
      unknown_paths[#unknown_paths + 1] = path
    end
  end
  return findings
end

return M
