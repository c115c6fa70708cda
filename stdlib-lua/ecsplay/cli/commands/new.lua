--[[
`ecsplay new library NAME [--dir DIR]`: writes a team library as a LuaRocks
package into DIR (default ./NAME): NAME-0.1.0-1.rockspec, NAME/init.lua (the
module), NAME_spec.lua (its specs, for `ecsplay test`), README.md and
.gitignore. The text is ecsplay.cli.templates.library; docs/libraries.md
says what to do next. Refuses (exit 2) a name that is not a module name, a
kind it does not know and a folder that already exists.
]]
local core = require "ecsplay.core"
local ecsplay = require "ecsplay"
local errors = require "ecsplay.errors"
local strings = require "ecsplay.util.strings"
local args = require "ecsplay.cli.args"
local exit = require "ecsplay.cli.exit"
local library = require "ecsplay.cli.templates.library"

local M = {}

M.summary = "start a team library as a LuaRocks package (rockspec, module, spec, README)"
M.usage = "ecsplay new library NAME [--dir DIR]"

local KINDS = { library = library }
local KIND_NAMES = { "library" }

local function bad(message) error(errors.bad_input(message), 0) end

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

-- mkdir -p for the folders of path (relative to root).
local function make_parents(root, path)
  local dir = root
  for part in path:gmatch("([^/]+)/") do
    dir = dir .. "/" .. part
    local ok, err = core.mkdir(dir)
    if not ok then bad("ecsplay new: cannot make " .. dir .. ": " .. tostring(err)) end
  end
end

local function write(path, text)
  local f, err = io.open(path, "w")
  if not f then bad("ecsplay new: cannot write " .. path .. ": " .. tostring(err)) end
  f:write(text)
  f:close()
end

local function create(kind, name, dir)
  local template = KINDS[kind]
  if not template then
    bad(string.format("ecsplay new: unknown kind %q%s (usage: %s)", tostring(kind),
      strings.did_you_mean(tostring(kind), KIND_NAMES, { quote = true, list_all = true }), M.usage))
  end
  if not name then bad("usage: " .. M.usage) end
  if not name:match("^[a-z][a-z0-9_]*$") then
    bad(string.format("ecsplay new: library name %q: expected a lowercase Lua module name "
      .. "(letters, digits and _, starting with a letter), e.g. team_rollouts", name))
  end
  if name == "ecsplay" then bad("ecsplay new: a library cannot be called ecsplay (it would hide ecsplay's own)") end
  dir = dir or name
  if exists(dir) then bad("ecsplay new: " .. dir .. " already exists; nothing was written") end
  local ok, err = core.mkdir(dir)
  if not ok then bad("ecsplay new: cannot make " .. dir .. ": " .. tostring(err)) end
  local version = tostring(ecsplay.version):match("^%d+%.%d+") or "0.1"
  local files = template.render(name, version)
  files[#files + 1] = { path = ".gitignore", text = "lua_modules/\n*.rock\n" }
  for _, f in ipairs(files) do
    make_parents(dir, f.path)
    write(dir .. "/" .. f.path, f.text)
    io.stdout:write("  wrote ", dir, "/", f.path, "\n")
  end
  io.stdout:write(string.format("library %s: next, `cd %s && ecsplay test %s_spec.lua`; "
    .. "docs/libraries.md says how to build, install and publish it\n", name, dir, name))
end

function M.run(_, argv)
  local ok, err = pcall(function()
    local o, words = args.parse(argv, {
      valued = { ["--dir"] = "dir" },
      max_positional = 2,
      unexpected = function(a) return "ecsplay new: unexpected " .. a .. " (usage: " .. M.usage .. ")" end,
    })
    if #words == 0 then bad("usage: " .. M.usage) end
    create(words[1], words[2], o.dir)
  end)
  if not ok then
    if errors.is(err, "bad_input") then return exit.BAD_INPUT, err.message end
    error(err, 0)
  end
  return exit.FINISHED
end

return M
