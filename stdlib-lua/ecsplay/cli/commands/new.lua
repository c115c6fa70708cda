--[[
`ecsplay new library NAME [--dir DIR]`: writes a team library as a LuaRocks
package into DIR (default ./NAME): NAME-0.1.0-1.rockspec, NAME/init.lua (the
module), NAME_spec.lua (its specs, for `ecsplay test`), README.md and
.gitignore. The text is ecsplay.cli.templates.library; docs/libraries.md
says what to do next. Refuses (exit 2) a name that is not a module name, a
kind it does not know and a folder that already exists.
]]
local core = require "ecsplay.core"
local files = require "ecsplay.util.files"
local ecsplay = require "ecsplay"
local errors = require "ecsplay.errors"
local json = require "ecsplay.json"
local strings = require "ecsplay.util.strings"
local args = require "ecsplay.cli.args"
local exit = require "ecsplay.cli.exit"
local library = require "ecsplay.cli.templates.library"

local M = {}

M.summary = "start a team library as a LuaRocks package (rockspec, module, spec, README)"
M.usage = "ecsplay new library NAME [--dir DIR]"

local KINDS = { library = library }
local KIND_NAMES = { "library" }

-- field "path": the folder or a file cannot be made (no usage line under it)
local function bad(message, field) error(errors.bad_input(message, field), 0) end

-- mkdir -p for the folders of path (relative to root).
local function make_parents(root, path)
  local dir = root
  for part in path:gmatch("([^/]+)/") do
    dir = dir .. "/" .. part
    local ok, err = core.mkdir(dir)
    if not ok then bad(tostring(err), "path") end
  end
end

local function write(path, text)
  local f, err = io.open(path, "w")
  if not f then bad("cannot write " .. path .. ": " .. tostring(err), "path") end
  f:write(text)
  f:close()
end

local function create(kind, name, dir, format)
  local template = KINDS[kind]
  if not template then
    bad(string.format("unknown kind %q%s", tostring(kind),
      strings.did_you_mean(tostring(kind), KIND_NAMES, { quote = true, list_all = true })))
  end
  if not name then bad("which name? (a lowercase Lua module name, e.g. team_rollouts)") end
  if not name:match("^[a-z][a-z0-9_]*$") then
    bad(string.format("library name %q: expected a lowercase Lua module name "
      .. "(letters, digits and _, starting with a letter), e.g. team_rollouts", name))
  end
  if name == "ecsplay" then bad("a library cannot be called ecsplay (it would hide ecsplay's own)") end
  dir = dir or name
  if files.exists(dir) then bad(dir .. " already exists; nothing was written", "path") end
  local ok, err = core.mkdir(dir)
  if not ok then bad(tostring(err), "path") end
  local version = tostring(ecsplay.version):match("^%d+%.%d+") or "0.1"
  local files = template.render(name, version)
  files[#files + 1] = { path = ".gitignore", text = "lua_modules/\n*.rock\n" }
  local written = {}
  local wrote, werr = pcall(function()
    for _, f in ipairs(files) do
      make_parents(dir, f.path)
      write(dir .. "/" .. f.path, f.text)
      written[#written + 1] = dir .. "/" .. f.path
    end
  end)
  if not wrote then
    -- no half-made library: the folder is ours (it did not exist), so it goes
    os.execute("rm -rf -- '" .. dir:gsub("'", "'\\''") .. "'")
    error(werr, 0)
  end
  if format ~= "json" then
    for _, w in ipairs(written) do io.stdout:write("  wrote ", w, "\n") end
  end
  if format == "json" then
    io.stdout:write(json.encode({ library = name, dir = dir, files = written }), "\n")
    return
  end
  io.stdout:write(string.format("library %s: next, `cd %s && ecsplay test %s_spec.lua`; "
    .. "docs/libraries.md says how to build, install and publish it\n", name, dir, name))
end

function M.run(_, argv)
  local ok, err = pcall(function()
    local o, words = args.parse(argv, {
      -- the host's own options may come before the command (`ecsplay --log-format json new ...`)
      valued = { ["--dir"] = "dir", ["--log-format"] = "log_format" },
      switches = { ["-v"] = function() end, ["-q"] = function() end },
      max_positional = 2,
      needs_value = function(flag) return flag .. " needs a value" .. (flag == "--dir" and " (the folder to write)" or "") end,
      unexpected = function(a, hint) return "unexpected argument " .. a .. hint end,
    })
    if o.log_format and o.log_format ~= "text" and o.log_format ~= "json" then
      bad("--log-format: expected text or json, got " .. o.log_format)
    end
    if #words == 0 then bad("what to make? (`library` is the one kind)") end
    create(words[1], words[2], o.dir, o.log_format)
  end)
  if not ok then
    if errors.is(err, "bad_input") then
      return args.usage_error("new", err.message, err.field ~= "path" and M.usage or nil)
    end
    error(err, 0)
  end
  return exit.FINISHED
end

return M
