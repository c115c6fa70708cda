--[[
The layer check: every `require` in the Lua library must point one way.
  ecsplay tools/check_layers.lua [root=stdlib-lua]
Reads every .lua file under ROOT/ecsplay (generated models excepted), finds
each require of a literal module name and checks three rules:
  1. the importing module's layer may import the imported module's layer
     (the table LAYERS below; docs/internals.md prints the same table);
  2. a require stands at the top of its file, at column 0, unless its line
     (or the line before) says `-- lazy: why` (a module loaded on first use on
     purpose: start-up cost, or a layer that is optional at run time);
  3. no require cycle between modules.
Prints one line per finding (file:line: message) and the closing
"N passed, N failed" line that tests/run.sh adds up; exits 1 on findings.
]]
local root = (ecsplay and ecsplay.args and ecsplay.args.root) or "stdlib-lua"

-- Layers, lowest first. A module belongs to the first layer whose pattern
-- matches its name; `may` lists the layers it may import (its own included
-- where said). C modules (ecsplay.core*) and cjson are `c`.
local LAYERS = {
  { name = "c",        match = { "^ecsplay%.core$", "^ecsplay%.core%.", "^cjson$" }, may = {} },
  { name = "util",     match = { "^ecsplay%.util%." }, may = { "util" } },
  { name = "base",     match = { "^ecsplay%.errors$", "^ecsplay%.duration$", "^ecsplay%.json$",
                                 "^ecsplay%.log$", "^ecsplay%.sched$", "^ecsplay%.sched_clock$",
                                 "^ecsplay%.http$",
                                 "^ecsplay%.notify$", "^ecsplay%.context$", "^ecsplay%.undo$", "^ecsplay$" },
    may = { "c", "util", "base" } },
  { name = "aws",      match = { "^ecsplay%.aws$", "^ecsplay%.aws%." }, may = { "c", "util", "base", "aws" } },
  { name = "services", match = { "^ecsplay%.ecs$", "^ecsplay%.elbv2$", "^ecsplay%.codedeploy$",
                                 "^ecsplay%.cloudwatch$", "^ecsplay%.sts$" },
    may = { "c", "util", "base", "aws" } },
  { name = "gate",     match = { "^ecsplay%.gate$", "^ecsplay%.gate%." },
    may = { "c", "util", "base", "aws", "services", "gate" } },
  { name = "rollout",  match = { "^ecsplay%.rollout$", "^ecsplay%.rollout%." },
    may = { "c", "util", "base", "aws", "services", "gate", "rollout" } },
  { name = "sim",      match = { "^ecsplay%.sim$", "^ecsplay%.sim%." },
    may = { "c", "util", "base", "aws", "sim" } },
  { name = "report",   match = { "^ecsplay%.report$", "^ecsplay%.report%." },
    may = { "c", "util", "base", "rollout", "report" } },
  { name = "cli",      match = { "^ecsplay%.cli%." },
    may = { "c", "util", "base", "aws", "services", "gate", "rollout", "sim", "report", "cli", "testing" } },
  -- playbook tests run playbooks as cli/run.lua does (cli/exit.lua's codes); `ecsplay test` drives them
  { name = "testing",  match = { "^ecsplay%.testing$", "^ecsplay%.testing%." },
    may = { "c", "util", "base", "aws", "services", "gate", "rollout", "sim", "cli", "testing" } },
}

local function layer_of(mod)
  for _, l in ipairs(LAYERS) do
    for _, p in ipairs(l.match) do
      if mod:find(p) then return l end
    end
  end
end

local function allowed(from, to)
  for _, n in ipairs(from.may) do
    if n == to.name then return true end
  end
  return false
end

local function module_name(path)
  local rel = path:sub(#root + 2):gsub("%.lua$", ""):gsub("/init$", "")
  return (rel:gsub("/", "."))
end

local function files()
  local out = {}
  local p = assert(io.popen("find '" .. root .. "/ecsplay' -name '*.lua' | sort"))
  for line in p:lines() do
    if not line:find("/aws/models/", 1, true) then out[#out + 1] = line end
  end
  p:close()
  return out
end

-- Every literal require in a file: { line=, mod=, prefix=bool, top=bool, lazy=bool }.
local function requires_in(path)
  local found, prev = {}, ""
  local n = 0
  for text in io.lines(path) do
    n = n + 1
    local code = text:gsub("%-%-.*$", "")
    for mod in code:gmatch("require%s*%(?%s*[\"']([%w_%.]+)[\"']") do
      found[#found + 1] = { line = n, mod = mod, top = text:match("^%S") ~= nil,
        lazy = (text .. prev):find("%-%- *lazy:") ~= nil }
    end
    for mod in code:gmatch("pcall%(%s*require%s*,%s*[\"']([%w_%.]+)[\"']") do
      found[#found + 1] = { line = n, mod = mod, top = false,
        lazy = (text .. prev):find("%-%- *lazy:") ~= nil }
    end
    prev = text
  end
  return found
end

local findings, checked = {}, 0
local function finding(path, line, msg) findings[#findings + 1] = string.format("%s:%d: %s", path, line, msg) end

local graph = {}
for _, path in ipairs(files()) do
  local me = module_name(path)
  local my_layer = layer_of(me)
  graph[me] = graph[me] or {}
  if not my_layer then
    finding(path, 1, "module " .. me .. " is in no layer (add it to tools/check_layers.lua and docs/internals.md)")
  end
  for _, r in ipairs(requires_in(path)) do
    checked = checked + 1
    local mod = r.mod:gsub("%.$", "")
    local to = layer_of(mod)
    if to and my_layer and not allowed(my_layer, to) then
      finding(path, r.line, string.format("%s (layer %s) may not require %s (layer %s)",
        me, my_layer.name, mod, to.name))
    end
    if to and to.name ~= "c" and not r.top and not r.lazy then
      finding(path, r.line, "require of " .. mod .. " inside a block: move it to the top of the file, "
        .. "or say why it loads late with a `-- lazy: reason` comment")
    end
    if to and r.top and not r.lazy and mod ~= me then graph[me][mod] = r.line end
  end
end

-- Cycles among top-level requires (a lazy require breaks a cycle on purpose).
local state = {}
local function visit(m, stack)
  state[m] = "open"
  stack[#stack + 1] = m
  for dep in pairs(graph[m] or {}) do
    if state[dep] == "open" then
      local i = #stack
      while stack[i] ~= dep do i = i - 1 end
      local cycle = table.concat(stack, " -> ", i) .. " -> " .. dep
      findings[#findings + 1] = "require cycle: " .. cycle
    elseif not state[dep] and graph[dep] then
      visit(dep, stack)
    end
  end
  stack[#stack] = nil
  state[m] = "done"
end
local names = {}
for m in pairs(graph) do names[#names + 1] = m end
table.sort(names)
for _, m in ipairs(names) do
  if not state[m] then visit(m, {}) end
end

for _, f in ipairs(findings) do print(f) end
print(string.format("layers: %d passed, %d failed", checked - #findings > 0 and checked - #findings or 0, #findings))
if #findings > 0 then os.exit(1) end
