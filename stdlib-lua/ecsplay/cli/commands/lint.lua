--[[
`ecsplay lint FILE.lua...`: finds mistakes in playbooks and team libraries
without running them (offline: no AWS call, no simulator).

  - Lua syntax and undefined globals: luacheck, Debian's lua-check, run in
    this process (cli/lint/luacheck.lua); ecsplay's globals are known to it
  - ecsplay's own rules on arguments written out in the source: strategy
    options and steps, gate options, durations, ecsplay.params declarations
    and the parameters of AWS calls, checked by the code the run uses
    (cli/lint/rules.lua)

One line per finding, `file:line:col: message`, sorted by position. Exit 0
when every file is clean, 1 on findings, 2 when a file cannot be read (or
luacheck is missing, or the usage is wrong).
]]
local args = require "ecsplay.cli.args"
local exit = require "ecsplay.cli.exit"
local errors = require "ecsplay.errors"
local json = require "ecsplay.json"
local luacheck = require "ecsplay.cli.lint.luacheck"
local rules = require "ecsplay.cli.lint.rules"

local M = {}

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local src = f:read("a")
  f:close()
  return src
end

-- Lua's own verdict on a chunk luacheck's parser accepted: "line: message".
local function load_error(src, path)
  local _, err = load(src, "=" .. path)
  if not err then return nil end
  local line, msg = err:match("^[^\n]-:(%d+): (.*)$")
  return tonumber(line) or 1, msg or err
end

--[[ lint_source(src, path) → findings { { line=, col=, message= } }, sorted.
     Syntax errors stop there: the literal rules need a parsed file. ]]
function M.lint_source(src, path)
  local out = {}
  for _, w in ipairs(luacheck.warnings(src, path:match("_spec%.lua$") ~= nil)) do
    out[#out + 1] = { line = w.line, col = w.col, message = w.message, syntax = w.code:sub(1, 1) == "0" }
  end
  local syntax = false
  for _, f in ipairs(out) do syntax = syntax or f.syntax end
  if not syntax then
    local line, msg = load_error(src, path)
    if line then
      out[#out + 1] = { line = line, col = 1, message = msg }
      syntax = true
    end
  end
  if not syntax then
    local ast, column = luacheck.parse(src)
    if ast then
      for _, f in ipairs(rules.check(ast)) do
        out[#out + 1] = { line = f.node.line, col = column(f.node.line, f.node.offset), message = f.message }
      end
    end
  end
  table.sort(out, function(a, b)
    if a.line ~= b.line then return a.line < b.line end
    if a.col ~= b.col then return a.col < b.col end
    return a.message < b.message
  end)
  return out
end

M.summary = "check playbooks without running them: syntax, undefined globals, options, AWS parameters"
M.usage = "ecsplay lint FILE.lua... [--log-format text|json]"

-- "cannot read PATH: why" for a path that is not a readable file (a folder says so).
local function unreadable_reason(path)
  local f = io.open(path, "r")
  if f then
    local _, _, code = f:read(1)
    f:close()
    -- reading a folder fails with EISDIR (21)
    if code == 21 then return path .. " is a folder: give the .lua files in it (ecsplay lint " .. path .. "/*.lua)" end
  end
  return "cannot read " .. path .. ": no such file or not readable"
end

local function write_finding(path, f, format)
  if format == "json" then
    io.stdout:write(json.encode({ file = path, line = f.line, col = f.col, message = f.message }), "\n")
  else
    io.stdout:write(string.format("%s:%d:%d: %s\n", path, f.line, f.col, f.message))
  end
end

local SPEC = {
  -- the host's own options may come before the command (`ecsplay --log-format json lint F`)
  valued = { ["--log-format"] = "log_format" },
  switches = { ["-v"] = function() end, ["-q"] = function() end },
  max_positional = math.huge,
  unexpected = function(a, hint) return "unknown option " .. a .. hint end,
}

--[[ --log-format json: one object per finding on standard output,
     {"file","line","col","message"}; the count and errors stay on standard error. ]]
function M.run(_, argv)
  local parsed, into, files = pcall(args.parse, argv, SPEC)
  if not parsed then return args.usage_error("lint", errors.describe(into), M.usage) end
  local format = into.log_format or "text"
  if format ~= "text" and format ~= "json" then
    return args.usage_error("lint", "--log-format: expected text or json, got " .. format, M.usage)
  end
  if #files == 0 then return args.usage_error("lint", "no file given", M.usage) end
  local ok, why = luacheck.load()
  if not ok then return exit.BAD_INPUT, "ecsplay lint: " .. why end
  local found, unreadable = 0, {}
  for _, path in ipairs(files) do
    local src = read(path)
    if not src then
      unreadable[#unreadable + 1] = "ecsplay lint: " .. unreadable_reason(path)
    else
      local lint_ok, findings = pcall(M.lint_source, src, path)
      if not lint_ok then
        return exit.FAILED, "ecsplay lint: internal error on " .. path .. ": " .. errors.describe(findings)
      end
      for _, f in ipairs(findings) do write_finding(path, f, format) end
      found = found + #findings
    end
  end
  io.stdout:flush()
  if #unreadable > 0 then return exit.BAD_INPUT, table.concat(unreadable, "\n") end
  if found > 0 then return exit.FAILED, string.format("ecsplay lint: %d finding%s", found, found == 1 and "" or "s") end
  return exit.FINISHED
end

return M
