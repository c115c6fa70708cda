--[[
Flag parsing shared by the commands that read their own arguments
(`ecsplay sim serve ...`, `ecsplay rollback|resume ...`; the C host parses
the options of a playbook run itself).

  args.parse(argv, spec, into) → into, positionals
    spec.valued   { ["--port"] = "port", ... }   flags that take a value, as
                  `--port 8080` or `--port=8080`; the value goes to into[key]
    spec.switches { ["-v"] = function(into) ... end, ... }   flags without a value
    spec.max_positional   how many plain arguments are allowed (default 0)
    spec.needs_value(flag) → message   (default "FLAG needs a value")
    spec.unexpected(arg, hint) → message   for an argument that fits nothing;
                  hint: "; did you mean `--port`?" when arg is a flag close to
                  one the spec takes, else ""
  args.wants_help(argv) → true when a word of argv is --help or -h (the
                  runner answers it for every command: cli/runner.lua)
  args.usage_error(command, message, usage) → exit code 2 and the text
                  "ecsplay: COMMAND: MESSAGE\nusage: USAGE", the one shape of a
                  usage error

Every problem raises errors.bad_input(message, flag): bad usage, exit 2.
]]
local errors = require "ecsplay.errors"
local strings = require "ecsplay.util.strings"
local exit = require "ecsplay.cli.exit"

local M = {}

local function bad(message, field) error(errors.bad_input(message, field), 0) end

M.HELP_FLAGS = { ["--help"] = true, ["-h"] = true }

function M.wants_help(argv)
  for _, a in ipairs(argv) do
    if M.HELP_FLAGS[a] then return true end
  end
  return false
end

function M.usage_error(command, message, usage)
  local text = "ecsplay: " .. (command and (command .. ": ") or "") .. message
  if usage then text = text .. "\nusage: " .. usage end
  return exit.BAD_INPUT, text
end

-- "; did you mean `--flag`?" for a word that looks like a misspelt flag of spec, else "".
local function flag_hint(a, spec)
  if a:sub(1, 1) ~= "-" then return "" end
  local known = {}
  for f in pairs(spec.valued or {}) do known[#known + 1] = f end
  for f in pairs(spec.switches or {}) do known[#known + 1] = f end
  table.sort(known)
  return strings.did_you_mean(a:match("^([^=]*)"), known)
end

function M.parse(argv, spec, into)
  into = into or {}
  local positionals = {}
  local max_positional = spec.max_positional or 0
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local flag, inline = a:match("^(%-%-[%w-]+)=(.*)$")
    local name = flag or a
    if spec.valued and spec.valued[name] then
      local v = inline
      if v == nil then
        i = i + 1
        v = argv[i]
      end
      if v == nil or v == "" then
        bad(spec.needs_value and spec.needs_value(name) or (name .. " needs a value"), name)
      end
      into[spec.valued[name]] = v
    elseif not flag and spec.switches and spec.switches[a] then
      spec.switches[a](into)
    elseif a:sub(1, 1) ~= "-" and #positionals < max_positional then
      positionals[#positionals + 1] = a
    else
      local hint = flag_hint(a, spec)
      bad(spec.unexpected and spec.unexpected(a, hint) or ("unexpected argument " .. a .. hint), a)
    end
    i = i + 1
  end
  return into, positionals
end

return M
