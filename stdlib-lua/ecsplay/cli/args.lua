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
    spec.unexpected(arg)   → message   for an argument that fits nothing

Every problem raises errors.bad_input(message, flag): bad usage, exit 2.
]]
local errors = require "ecsplay.errors"

local M = {}

local function bad(message, field) error(errors.bad_input(message, field), 0) end

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
      bad(spec.unexpected(a), a)
    end
    i = i + 1
  end
  return into, positionals
end

return M
