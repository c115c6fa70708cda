--[[
The Lua test harness. Run a test file with
  ./ecsplay tests/lua/harness.lua file=tests/lua/test_x.lua [only=PATTERN]
A test file does `local T = require "harness"` and registers tests with
T.test(name, fn). Each test runs in the scheduler's main task (it may sleep,
call AWS, spawn), isolated by pcall. The last line is "N passed, N failed".
]]
local T = { tests = {} }
package.loaded.harness = T

-- The binary under test for subprocesses: ECSPLAY_BIN (the sanitizer build sets it).
T.bin = os.getenv("ECSPLAY_BIN") or "./ecsplay"

function T.test(name, fn) T.tests[#T.tests + 1] = { name = name, fn = fn } end

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  local ok, s = pcall(function() return require("ecsplay.json").encode(v) end)
  return ok and s or tostring(v)
end

local function deep_eq(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do if not deep_eq(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
T.deep_eq = deep_eq

function T.eq(got, want, msg)
  if not deep_eq(got, want) then
    error(string.format("%sexpected %s, got %s", msg and (msg .. ": ") or "", show(want), show(got)), 2)
  end
end

function T.ok(v, msg)
  if not v then error((msg or "expected a true value") .. ", got " .. show(v), 2) end
  return v
end

function T.near(got, want, tol, msg)
  if type(got) ~= "number" or math.abs(got - want) > tol then
    error(string.format("%sexpected %s ± %s, got %s", msg and (msg .. ": ") or "", want, tol, show(got)), 2)
  end
end

-- Asserts fn raises; the error's text (tostring) must match the Lua pattern.
function T.raises(fn, pattern, msg)
  local ok, err = pcall(fn)
  if ok then error((msg and (msg .. ": ") or "") .. "expected an error, none was raised", 2) end
  local text = type(err) == "table" and (getmetatable(err) and getmetatable(err).__tostring
    and tostring(err) or show(err)) or tostring(err)
  if pattern and not text:find(pattern) then
    error(string.format("%serror %q does not match %q", msg and (msg .. ": ") or "", text, pattern), 2)
  end
  return err
end

-- Runs a shell command; returns its output and exit code.
function T.sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"__rc=$?\"")
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)%s*$"))
  return out:gsub("__rc=%d+%s*$", ""), rc
end

-- The paths a shell glob matches, in ls order ({} when none).
function T.files(glob)
  local out = {}
  local p = io.popen("ls " .. glob .. " 2>/dev/null")
  for f in p:lines() do out[#out + 1] = f end
  p:close()
  return out
end

function T.tmpdir()
  local out = T.sh("mktemp -d")
  return (out:gsub("%s+$", ""))
end

local file = ecsplay.args.file
assert(file, "usage: ecsplay tests/lua/harness.lua file=tests/lua/test_x.lua")
local only = ecsplay.args.only
local chunk = assert(loadfile(file))
chunk()
local passed, failed = 0, 0
for _, t in ipairs(T.tests) do
  if not only or t.name:find(only, 1, true) then
    local ok, err = xpcall(t.fn, function(e)
      local text = type(e) == "table" and show(e) or tostring(e)
      if type(e) == "table" and getmetatable(e) and getmetatable(e).__tostring then text = tostring(e) end
      return debug.traceback(text, 2)
    end)
    if ok then
      passed = passed + 1
      print("ok   " .. t.name)
    else
      failed = failed + 1
      print("FAIL " .. t.name .. "\n     " .. tostring(err):gsub("\n", "\n     "))
    end
  end
end
print(string.format("%d passed, %d failed", passed, failed))
if failed > 0 then error(string.format("%d test(s) failed", failed), 0) end
