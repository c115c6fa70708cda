--[[
The spec suite of `ecsplay test` (docs/testing.md): finds the *_spec.lua
files and runs them with busted's core (Debian's lua-busted: describe/it/
before_each/pending/insulate, luassert, spies) on ecsplay's scheduler, so a
test that calls AWS or sleeps yields like a playbook and a bake costs no
wall time. busted.runner is not used: it reads `arg`, prints its own output
and exits the process. Each result is handed to the caller as it ends.

  suite.find(paths) → files | nil, message       (paths: files or folders)
  suite.run(files, on_result) → { results..., interrupted = signal|nil }   inside sched.run
  result = { name=, file=, line=, status = "success"|"failure"|"error"|"pending",
             message=, load_error = true|nil, descriptor= }
A spec file that does not load (a syntax error, an error at its top level or in
a describe body) is a result with load_error = true: `ecsplay test` exits 2.
]]
local core = require "ecsplay.core"
local errors = require "ecsplay.errors"
local sched = require "ecsplay.sched"
local run = require "ecsplay.testing.run"

local M = {}

M.PATTERN = "_spec%.lua$"

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function kind_of(path)
  local p = io.popen("test -d " .. shell_quote(path) .. " && echo dir || { test -f " .. shell_quote(path)
    .. " && echo file; }")
  local kind = p:read("l")
  p:close()
  return kind
end

-- Every *_spec.lua under a folder, sorted, hidden folders and lua_modules left out.
local function specs_under(dir)
  local out = {}
  local p = io.popen("find " .. shell_quote(dir) .. " \\( -name '.?*' -o -name lua_modules \\) -prune"
    .. " -o -type f -name '*_spec.lua' -print 2>/dev/null | LC_ALL=C sort")
  for line in p:lines() do out[#out + 1] = (line:gsub("^%./", "")) end
  p:close()
  return out
end

--[[ The spec files of the command line's paths: a file is taken as it is, a
     folder searched recursively. No paths: spec/ when it exists, else the
     current folder. nil, message for a path that does not exist or when no
     spec file is found (bad usage). ]]
function M.find(paths)
  if #paths == 0 then
    paths = { kind_of("spec") == "dir" and "spec" or "." }
  end
  local files, seen = {}, {}
  for _, path in ipairs(paths) do
    local kind = kind_of(path)
    local found
    if kind == "file" then
      found = { path }
    elseif kind == "dir" then
      found = specs_under(path)
    else
      return nil, "no such file or folder: " .. path
    end
    for _, f in ipairs(found) do
      if not seen[f] then seen[f], files[#files + 1] = true, f end
    end
  end
  if #files == 0 then
    return nil, "no *_spec.lua files in " .. table.concat(paths, ", ")
  end
  return files
end

-- busted itself: optional, so a missing lua-busted is a clear message, not a trace.
local function load_busted()
  -- lazy: Debian's lua-busted is needed only by `ecsplay test` and may be missing
  local ok, busted_core = pcall(require, "busted.core")
  if not ok then
    return nil, "ecsplay test needs busted and luassert for Lua 5.4 (Debian: apt-get install lua-busted): "
      .. errors.describe(busted_core):gsub("\n.*", "")
  end
  local busted = busted_core()
  require("busted")(busted) -- lazy: as above (installs describe/it/assert/... for spec files)
  return busted
end

-- The names of the describe blocks around an element and its own: "canary.lua rolls back".
local function full_name(busted, element)
  local parts = { element.name }
  local parent = busted.context.parent(element)
  while parent and parent.descriptor ~= "file" and parent.name do
    table.insert(parts, 1, parent.name)
    parent = busted.context.parent(parent)
  end
  return table.concat(parts, " ")
end

local function file_of(busted, element)
  local e = element
  while e do
    if e.descriptor == "file" then return e.name end
    e = busted.context.parent(e)
  end
end

--[[ busted finds where an error happened from the raising frame up to the
     first C frame, which for an error raised inside ecsplay (an AWS error,
     bad input) is a library file. Wrapped: the trace also keeps the first
     frame in a spec file (spec_where = "file:line"). ]]
local function trace_spec_frames(busted, files)
  local is_spec = {}
  for _, f in ipairs(files) do is_spec[f] = true end
  local get_trace = busted.getTrace
  busted.getTrace = function(element, level, msg)
    local info = get_trace(element, (level or 3) + 1, msg)
    for l = level or 3, 200 do
      local frame = debug.getinfo(l, "Sl")
      if not frame then break end
      if frame.source:sub(1, 1) == "@" and is_spec[frame.source:sub(2)] and frame.currentline > 0 then
        info.spec_where = frame.source:sub(2) .. ":" .. frame.currentline
        break
      end
    end
    return info
  end
end

-- A problem as text: luassert's failures already read "file:line: ...";
-- anything else (an error object, a Lua error) gets the spec's own frame in front.
local function message_text(message, trace)
  local raw = trace and trace.message
  if raw == nil or type(message) ~= "string" then raw = message end
  if type(raw) == "table" and getmetatable(raw) and getmetatable(raw).__type == "failure" then
    return tostring(message)
  end
  local text = errors.describe(raw)
  if type(raw) == "table" and not errors.is_error(raw) and not getmetatable(raw) then
    -- error({...}): a table says nothing as "table: 0x..."
    text = "an error raised with a table value (no message; raise a string or errors.new(...))"
  end
  local where = trace and trace.spec_where
  if where and text:sub(1, #where + 1) ~= where .. ":" then text = where .. ": " .. text end
  return text
end

local LOAD_TIME = { file = true, describe = true }

--[[ Guards while the specs run. A spec (or the playbook it runs) that never
     waits -- `while true do end` -- never gives the scheduler a chance to see
     Ctrl-C: a count hook looks for the signal itself and raises the
     interruption where the code runs (coroutines made later inherit the hook).
     os.exit would end `ecsplay test` with no result and no closing line: it
     fails the test instead. → { taken = function() → the signal the hook took
     or nil, remove = function() ... } ]]
local HOOK_EVERY = 1000000 -- VM instructions between two looks

local function guard()
  local taken
  local real_exit = os.exit
  os.exit = function(code) -- luacheck: ignore
    error(errors.new("bad_input", { code = "SpecExited", message = "os.exit(" .. tostring(code == nil and "" or code)
      .. ") called during `ecsplay test`: a test cannot end the process (return or raise an error instead)" }), 2)
  end
  debug.sethook(function()
    if taken or sched.signal_received() then return end
    local sig = core.signal()
    if sig then
      taken = sig
      error(errors.new("interrupted", { signal = sig, message = "interrupted by " .. (sig == 15 and "SIGTERM"
        or sig == 2 and "SIGINT" or ("signal " .. sig)) .. " (the code was busy, not waiting)" }), 2)
    end
  end, "", HOOK_EVERY)
  return {
    taken = function() return taken end,
    remove = function()
      debug.sethook()
      os.exit = real_exit -- luacheck: ignore
    end,
  }
end

function M.run(files, on_result)
  local busted, problem = load_busted()
  if not busted then error(errors.bad_input(problem, "busted"), 0) end
  trace_spec_frames(busted, files)
  local guarded = guard()
  local results, problem_msg = {}, {}
  local function add(r)
    results[#results + 1] = r
    on_result(r)
  end
  local function problem_of(element, parent, message, trace)
    local file = file_of(busted, element) or element.name
    local text = message_text(message, trace)
    if element.descriptor == "it" then
      problem_msg[element] = text
    elseif LOAD_TIME[element.descriptor] then
      add { name = full_name(busted, element), file = file, status = "error", message = text,
        load_error = true, descriptor = element.descriptor }
    else
      -- before_each, after_each, setup, teardown, finally: a failure of its own
      local owner = parent and parent.descriptor ~= "file" and full_name(busted, parent) or file
      add { name = owner .. " " .. element.descriptor, file = file, status = "error", message = text,
        line = trace and trace.currentline, descriptor = element.descriptor }
    end
    return nil, true
  end
  busted.subscribe({ "failure" }, problem_of)
  busted.subscribe({ "error" }, problem_of)
  busted.subscribe({ "pending" }, function(element, _, message)
    if element.descriptor == "it" and message then problem_msg[element] = tostring(message) end
    return nil, true
  end)
  busted.subscribe({ "file", "start" }, function()
    -- first of every test's before_each: a fresh start, no world until the test makes one
    busted.executors.before_each(function() run.reset() end)
    return nil, true
  end)
  busted.subscribe({ "test", "end" }, function(element, _, status)
    -- SIGINT/SIGTERM: the test that met it ends (its rollouts rolled back), no other starts
    if sched.signal_received() or guarded.taken() then busted.skipAll = true end
    local trace = element.trace or {}
    add { name = full_name(busted, element), file = file_of(busted, element), line = trace.currentline,
      status = status, message = problem_msg[element], descriptor = element.descriptor }
    return nil, true
  end)

  run.reset()
  -- lazy: busted's file loader, as load_busted
  local load_files = require("busted.modules.test_file_loader")(busted, { "lua" })
  local ran, failure = pcall(function()
    load_files(files, { M.PATTERN }, { excludes = {}, recursive = false })
    require("busted.execute")(busted)(1, {}) -- lazy: as load_busted
  end)
  guarded.remove()
  if not ran then error(failure, 0) end
  run.reset()
  results.interrupted = sched.signal_received() or guarded.taken()
  return results
end

return M
