--[[
The whole state of the simulator's worlds as one deterministic JSON text, for
checking that something changed nothing (`ecsplay plan --simulate --world-dump`):
more than GET /_sim/world's summary (sim/control.lua), which leaves out task
definitions, tags, deployment configurations and the like. For every world, in
build order: its Region, account, clock, next tick, id counter, the times of its
pending events, and each service's state tables with their keys sorted.

A table met a second time is written as {"$ref":"PATH"} (the path where it was
first written), a function as "<function>" (a scenario's behaviour functions),
any other non-JSON value as "<TYPE>". Numbers keep every digit (%.17g), so a
value that moved by the last bit shows.

  dump.state(sim) → text
]]
local json = require "ecsplay.json"

local M = {}

local TYPE_ORDER = { number = 1, string = 2, boolean = 3 }

local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return (TYPE_ORDER[ta] or 9) < (TYPE_ORDER[tb] or 9) end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function number_text(v)
  if math.type(v) == "integer" then return string.format("%d", v) end
  if v ~= v then return '"NaN"' end
  if v == math.huge then return '"Infinity"' end
  if v == -math.huge then return '"-Infinity"' end
  return string.format("%.17g", v)
end

local encode

-- A key's name in the dump. A table used as a key (an index keyed by the
-- listener itself, say) is named by where it was first written, or by its
-- contents — never by its address, which differs from run to run. Its
-- contents are encoded against a copy of `seen`, so naming a key does not
-- change how the values after it are written.
local function key_name(k, path, seen)
  if type(k) == "string" then return k end
  if type(k) ~= "table" then return "[" .. tostring(k) .. "]" end
  if seen[k] then return "[$ref " .. seen[k] .. "]" end
  local copy, out = {}, {}
  for t, p in pairs(seen) do copy[t] = p end
  encode(k, path .. "/[key]", copy, out)
  return "[" .. table.concat(out) .. "]"
end

function encode(v, path, seen, out)
  local t = type(v)
  if t == "table" then
    if seen[v] then
      out[#out + 1] = '{"$ref":' .. json.encode(seen[v]) .. "}"
      return
    end
    seen[v] = path
    local keys, names = {}, {}
    for k in pairs(v) do
      keys[#keys + 1] = k
      if type(k) == "table" then names[k] = key_name(k, path, seen) end
    end
    table.sort(keys, function(a, b)
      if type(a) == "table" and type(b) == "table" then return names[a] < names[b] end
      return key_less(a, b)
    end)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      local name = names[k] or key_name(k, path, seen)
      out[#out + 1] = (i > 1 and "," or "") .. json.encode(name) .. ":"
      encode(v[k], path .. "/" .. name, seen, out)
    end
    out[#out + 1] = "}"
  elseif t == "number" then
    out[#out + 1] = number_text(v)
  elseif t == "string" or t == "boolean" then
    out[#out + 1] = json.encode(v)
  else
    out[#out + 1] = json.encode("<" .. t .. ">")
  end
end

function M.state(sim)
  local out, seen = { "[" }, {}
  for i, w in ipairs(sim.world_list or { sim.world }) do
    local events = {}
    for j, ev in ipairs(w.events or {}) do events[j] = ev.t end
    local world = { region = w.region, account = w.account, now = w.now, next_tick = w.next_tick,
      counter = w.counter, events = events, state = w.state }
    if i > 1 then out[#out + 1] = "," end
    encode(world, "/" .. tostring(w.region) .. "/" .. tostring(w.account), seen, out)
  end
  out[#out + 1] = "]"
  return table.concat(out)
end

return M
