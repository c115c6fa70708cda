--[[
luacheck (Debian's lua-check) inside ecsplay's own Lua 5.4, for `ecsplay lint`.

luacheck is pure Lua and runs unchanged on 5.4; Debian installs it for 5.1
only (/usr/share/lua/5.1/luacheck), so its modules are loaded from the first
Lua tree that has them, without touching package.path for anything else.

  luacheck.load() → true | nil, message        (message: how to install it)
  luacheck.warnings(src, spec) → { { line=, col=, message=, code= }, ... }
      syntax errors and undefined globals only (ecsplay's own globals and the
      fields of the `ecsplay` table defined; busted's too for a spec file);
      luacheck's inline options
      (`-- luacheck: ignore 113`) apply
  luacheck.parse(src) → ast, column(line, offset) | nil   (nil: a syntax error)
      the AST of luacheck's parser (tags Call, Index, Id, String, Table,
      Pair, ...; nodes carry line and byte offset) for the literal checks
]]
local ecsplay = require "ecsplay"

local M = {}

-- Where a Lua tree may hold luacheck: the 5.4 trees first, Debian's 5.1 last.
M.TREES = {
  "/usr/local/share/lua/5.4", "/usr/share/lua/5.4", "/usr/local/share/lua/5.3", "/usr/share/lua/5.3",
  "/usr/share/lua/5.2", "/usr/local/share/lua/5.1", "/usr/share/lua/5.1",
}

-- Warning codes reported: syntax errors (0xx), undefined globals set,
-- mutated or read (111-113), undefined fields of a known global (142, 143:
-- `string.fromat`, `ecsplay.sleeep`). Style warnings are luacheck's own business.
local CODES = { ["111"] = true, ["112"] = true, ["113"] = true, ["142"] = true, ["143"] = true }

-- Fields of `ecsplay` that init.lua loads on first access (its `lazy` table
-- and `simulated`): not visible in pairs() of the table.
local LAZY_FIELDS = { "http", "json", "simulated" }

local lc, parser, decoder

local function find_tree()
  for _, dir in ipairs(M.TREES) do
    local f = io.open(dir .. "/luacheck/init.lua", "r")
    if f then f:close() return dir end
  end
end

function M.load()
  if lc then return true end
  local dir = find_tree()
  if not dir then
    return nil, "luacheck is not installed (Debian: apt-get install lua-check; looked in "
      .. table.concat(M.TREES, ", ") .. ")"
  end
  local saved = package.path
  package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. saved
  local ok, err = pcall(function()
    -- lazy: luacheck is optional and only `ecsplay lint` loads it
    lc, parser, decoder = require "luacheck", require "luacheck.parser", require "luacheck.decoder"
  end)
  package.path = saved
  if not ok then
    lc = nil
    return nil, "luacheck (in " .. dir .. ") does not load in ecsplay's Lua: " .. tostring(err)
  end
  return true
end

-- The `ecsplay` global as luacheck sees it: its real fields, each open.
local function ecsplay_global()
  local fields = {}
  for k in pairs(ecsplay) do
    if type(k) == "string" then fields[k] = { other_fields = true, read_only = false } end
  end
  for _, k in ipairs(LAZY_FIELDS) do fields[k] = { other_fields = true, read_only = false } end
  return { fields = fields }
end

-- spec: a spec file (*_spec.lua, run by `ecsplay test`): busted's globals
-- (describe, it, assert.*, ...) are defined too.
function M.warnings(src, spec)
  local report = lc.check_strings({ src }, { std = spec and "lua54+busted" or "lua54",
    read_globals = { ecsplay = ecsplay_global() } })
  local out = {}
  for _, w in ipairs(report[1]) do
    if w.code:sub(1, 1) == "0" or CODES[w.code] then
      out[#out + 1] = { line = w.line, col = w.column, code = w.code, message = lc.get_message(w) }
    end
  end
  return out
end

function M.parse(src)
  local ok, ast, _, _, _, _, offsets = pcall(parser.parse, decoder.decode(src))
  if not ok then return nil end
  return ast, function(line, offset) return offset - (offsets[line] or 1) + 1 end
end

return M
