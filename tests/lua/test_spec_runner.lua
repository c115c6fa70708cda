-- `ecsplay test` itself (docs/testing.md): spec files written into a temporary folder, run by
-- the real binary in a child process from that folder; the exit code and each output format
-- (plain, TAP, JUnit XML parsed back) are checked, and what ecsplay.testing gives a spec.
local T = require "harness"
local xml = require "ecsplay.core.xml"

local function trim(s) return (s:gsub("%s+$", "")) end
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local ROOT = trim(T.sh("cd " .. q(here .. "/../..") .. " && pwd -P"))
local BIN = os.getenv("ECSPLAY_BIN") or (ROOT .. "/ecsplay")
if BIN:sub(1, 1) ~= "/" then BIN = ROOT .. "/" .. BIN end

local function write(path, text)
  os.execute("mkdir -p " .. q(path:match("^(.*)/[^/]*$")))
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local function read(path)
  local f = assert(io.open(path, "r"))
  local s = f:read("a")
  f:close()
  return s
end

-- A fresh folder holding `files` ({ [relative path] = text }); returns its path.
local function project(files)
  local dir = T.tmpdir()
  for name, text in pairs(files) do write(dir .. "/" .. name, text) end
  return dir
end

-- `ecsplay test ARGS` run from `dir`; returns output (stdout + stderr) and exit code.
local function ecsplay_test(dir, args)
  return T.sh("cd " .. q(dir) .. " && timeout 120 " .. q(BIN) .. " test " .. (args or ""))
end

local function lines_of(s)
  local out = {}
  for line in s:gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

local MIXED = [[
describe("numbers", function()
  it("adds", function() assert.equals(4, 2 + 2) end)
  it("compares tables", function()
    assert.same({ a = 1 }, { a = 2 })
  end)
  pending("one day")
end)
]]

T.test("a passing and a failing test: exit 1, FAIL with file:line and expected vs actual, closing line", function()
  local dir = project { ["spec/math_spec.lua"] = MIXED }
  local out, rc = ecsplay_test(dir, "")
  T.eq(rc, 1, out)
  T.ok(out:find("ok   numbers adds\n", 1, true), out)
  T.ok(out:find("FAIL numbers compares tables\n     spec/math_spec.lua:4: Expected objects to be the same.", 1, true), out)
  T.ok(out:find("%[a%] = 2"), out)   -- what was passed in
  T.ok(out:find("%[a%] = 1"), out)   -- what was expected
  T.ok(out:find("PEND numbers one day", 1, true), out)
  T.eq(lines_of(out)[#lines_of(out)], "1 passed, 1 failed, 1 skipped")
end)

T.test("every test passing: exit 0 and the plain closing line", function()
  local dir = project { ["a/b/ok_spec.lua"] = 'it("works", function() assert.is_true(true) end)\n',
    ["a/helper.lua"] = 'error("must not be loaded")\n', ["a/spec.lua"] = 'error("nor this")\n' }
  local out, rc = ecsplay_test(dir, "a")
  T.eq(rc, 0, out)
  T.eq(lines_of(out), { "ok   works", "1 passed, 0 failed" })
end)

T.test("no PATH and no spec/: the current folder is searched, hidden folders left out", function()
  local dir = project { ["x/one_spec.lua"] = 'it("one", function() end)\n',
    [".hidden/two_spec.lua"] = 'it("two", function() error("hidden folders are skipped") end)\n' }
  local out, rc = ecsplay_test(dir, "")
  T.eq(rc, 0, out)
  T.eq(lines_of(out), { "ok   one", "1 passed, 0 failed" })
end)

T.test("before_each and after_each run outermost first / innermost first around every test", function()
  local dir = project { ["spec/order_spec.lua"] = [[
local function ev(s) io.stdout:write("EV ", s, "\n") end
describe("outer", function()
  before_each(function() ev("outer before") end)
  after_each(function() ev("outer after") end)
  it("first", function() ev("first") end)
  describe("inner", function()
    before_each(function() ev("inner before") end)
    after_each(function() ev("inner after") end)
    it("second", function() ev("second") end)
  end)
end)
]] }
  local out, rc = ecsplay_test(dir, "")
  T.eq(rc, 0, out)
  local events = {}
  for e in out:gmatch("EV ([^\n]+)") do events[#events + 1] = e end
  T.eq(events, { "outer before", "first", "outer after",
    "outer before", "inner before", "second", "inner after", "outer after" })
  T.ok(out:find("ok   outer inner second", 1, true), out)
end)

T.test("--tap: TAP 13 with ok / not ok and a YAML block, SKIP, the plan last", function()
  local dir = project { ["spec/math_spec.lua"] = MIXED }
  local out, rc = ecsplay_test(dir, "--tap")
  T.eq(rc, 1, out)
  local l = lines_of(out)
  T.eq(l[1], "TAP version 13")
  T.eq(l[2], "ok 1 - numbers adds")
  T.eq(l[3], "not ok 2 - numbers compares tables")
  T.eq(l[4], "  ---")
  T.eq(l[5], "  message: |")
  T.ok(l[6]:find("^    spec/math_spec.lua:4: Expected objects to be the same%.$"), l[6])
  T.ok(out:find("\n  severity: failure\n  file: spec/math_spec.lua\n  line: 3\n  ...\n", 1, true), out)
  T.ok(out:find("\nok 3 - numbers one day # SKIP", 1, true), out)
  T.eq(l[#l - 1], "1..3")
  T.eq(l[#l], "# 1 passed, 1 failed, 1 skipped")
end)

-- The child elements of an XML element named `name`.
local function children(el, name)
  local out = {}
  for _, c in ipairs(el.children or {}) do if c.name == name then out[#out + 1] = c end end
  return out
end

T.test("--junit FILE: one testsuite per spec file, failure / skipped / error elements", function()
  local dir = project { ["spec/math_spec.lua"] = MIXED, ["spec/other_spec.lua"] = [[
describe("other", function()
  it("raises", function() error("boom") end)
  it("fine", function() end)
end)
]] }
  local out, rc = ecsplay_test(dir, "--junit out.xml")
  T.eq(rc, 1, out)
  T.eq(lines_of(out)[#lines_of(out)], "2 passed, 2 failed, 1 skipped")
  local doc = assert(xml.parse(read(dir .. "/out.xml")))
  T.eq(doc.name, "testsuites")
  T.eq({ doc.attrs.tests, doc.attrs.failures, doc.attrs.errors, doc.attrs.skipped }, { "5", "1", "1", "1" })
  local suites = children(doc, "testsuite")
  T.eq(#suites, 2)
  T.eq({ suites[1].attrs.name, suites[1].attrs.tests, suites[1].attrs.failures, suites[1].attrs.skipped },
    { "spec/math_spec.lua", "3", "1", "1" })
  local cases = children(suites[1], "testcase")
  T.eq({ cases[1].attrs.name, cases[1].attrs.classname, cases[1].attrs.line }, { "numbers adds", "spec/math_spec.lua", "2" })
  T.eq(#(cases[1].children or {}), 0)
  local failure = children(cases[2], "failure")[1]
  T.eq(failure.attrs.type, "assertion")
  T.eq(failure.attrs.message, "spec/math_spec.lua:4: Expected objects to be the same.")
  T.ok(failure.text:find("Passed in:", 1, true), failure.text)
  T.eq(#children(cases[3], "skipped"), 1)
  local err = children(children(suites[2], "testcase")[1], "error")[1]
  T.eq(err.attrs.type, "error")
  T.ok(err.attrs.message:find("spec/other_spec.lua:2: boom", 1, true), err.attrs.message)
end)

T.test("a spec with a syntax error: exit 2 with file:line, the other files still run", function()
  local dir = project { ["spec/bad_spec.lua"] = 'describe("x", function()\n  it("y", function()\nend)\n',
    ["spec/good_spec.lua"] = 'it("good", function() end)\n' }
  local out, rc = ecsplay_test(dir, "")
  T.eq(rc, 2, out)
  T.ok(out:find("spec/bad_spec.lua:4: 'end' expected", 1, true), out)
  T.ok(out:find("ok   good", 1, true), out)
  T.ok(out:find("spec file did not load", 1, true), out)
end)

T.test("a spec that raises at its top level or in a describe body: exit 2 with file:line", function()
  for name, text in pairs {
    top = 'local x = nil\nlocal y = x.field\nit("never", function() end)\n',
    describe = 'describe("d", function()\n  it("a", function() end)\n  error("broken describe")\nend)\n',
  } do
    local dir = project { ["spec/" .. name .. "_spec.lua"] = text }
    local out, rc = ecsplay_test(dir, "")
    T.eq(rc, 2, name .. ": " .. out)
    T.ok(out:find("spec/" .. name .. "_spec.lua:" .. (name == "top" and 2 or 3) .. ":", 1, true), name .. ": " .. out)
    T.ok(not out:find("ok   never", 1, true), out)
  end
end)

T.test("bad usage: exit 2 (unknown option, missing path, no spec files, --junit without a file)", function()
  local dir = project { ["empty/readme.txt"] = "nothing\n" }
  for args, text in pairs {
    ["--fast"] = "unknown option --fast",
    ["nosuch"] = "no such file or folder: nosuch",
    ["empty"] = "no *_spec.lua files in empty",
    ["--junit"] = "--junit needs a value",
  } do
    local out, rc = ecsplay_test(dir, args)
    T.eq(rc, 2, args .. ": " .. out)
    T.ok(out:find(text, 1, true), args .. ": " .. out)
    T.ok(out:find("usage: ecsplay test", 1, true), out)
  end
end)

T.test("--help: the usage, exit 0", function()
  local out, rc = ecsplay_test(T.tmpdir(), "--help")
  T.eq(rc, 0, out)
  T.ok(out:find("^usage: ecsplay test %[%-%-tap%] %[%-%-junit FILE%]"), out)
end)

T.test("a Lua error inside the library called from a test names the spec's line", function()
  local dir = project { ["spec/deep_spec.lua"] = [[
local testing = require "ecsplay.testing"
it("bad call", function()
  local world = testing.world()
  world:weights(42)
end)
]] }
  local out, rc = ecsplay_test(dir, "")
  T.eq(rc, 1, out)
  T.ok(out:find("FAIL bad call\n     spec/deep_spec.lua:4: ", 1, true), out)
end)

T.test("an error in before_each fails the test as '<describe> before_each'", function()
  local dir = project { ["spec/setup_spec.lua"] = [[
describe("broken setup", function()
  before_each(function() error("no fixture") end)
  it("never runs", function() io.stdout:write("RAN\n") end)
end)
]] }
  local out, rc = ecsplay_test(dir, "")
  T.eq(rc, 1, out)
  T.ok(out:find("FAIL broken setup before_each\n     spec/setup_spec.lua:2: no fixture", 1, true), out)
  T.ok(not out:find("RAN", 1, true), out)
end)

T.test("each test starts with no world: AWS calls fail with NoSimulatedWorld; worlds do not leak", function()
  local dir = project { ["spec/world_spec.lua"] = [[
local testing = require "ecsplay.testing"
local ecs = require "ecsplay.ecs"
describe("worlds", function()
  it("changes its own world", function()
    local world = testing.world()
    ecs.update_service { cluster = "production", service = "api", desiredCount = 1 }
    assert.equals(1, world:service("api").desired)
  end)
  it("has no world of its own", function()
    local ok, err = pcall(ecs.list_clusters, {})
    assert.is_false(ok)
    assert.equals("NoSimulatedWorld", err.code)
    assert.equals("bad_input", err.kind)
  end)
  it("gets the default world back", function()
    assert.equals(4, testing.world():service("api").desired)
  end)
end)
]] }
  local out, rc = ecsplay_test(dir, "")
  T.eq(rc, 0, out)
  T.eq(lines_of(out)[#lines_of(out)], "3 passed, 0 failed")
end)

T.test("ecsplay.testing: calls as the simulator saw them, error codes, scenario tables, bad input", function()
  local dir = project { ["spec/api_spec.lua"] = [[
local testing = require "ecsplay.testing"
local ecs = require "ecsplay.ecs"
it("records calls", function()
  local world = testing.world { seed = 3 }
  ecs.describe_services { cluster = "production", services = { "api" } }
  pcall(ecs.describe_services, { cluster = "nosuch", services = { "api" } })
  world:service("api")  -- the helpers' own calls are not recorded
  local calls = world:calls { operation = "DescribeServices" }
  assert.equals(2, #calls)
  assert.equals("ecs", calls[1].service)
  assert.equals("production", calls[1].params.cluster)
  assert.equals(200, calls[1].status)
  assert.is_nil(calls[1].error)
  assert.equals("ClusterNotFoundException", calls[2].error)
  assert.equals(2, #world:calls())
  assert.same({}, world:calls { service = "elbv2" })
end)
it("moves the clock", function()
  local world = testing.world()
  local t0 = world:now()
  assert.equals(t0 + 300, world:advance("5m"))
  assert.has_error(function() world:advance("soon") end)
end)
it("two worlds in one test keep their own state and clocks", function()
  local a = testing.world()
  local t0 = a:now()
  a:advance("1h")
  local b = testing.world()
  assert.equals(t0, b:now())
  ecs.update_service { cluster = "production", service = "api", desiredCount = 1 } -- the last world made
  assert.equals(4, a:service("api").desired)
  assert.equals(t0 + 3600, a:now())
  assert.equals(1, b:service("api").desired)
  assert.equals(1, #b:calls { operation = "UpdateService" })
  assert.same({}, a:calls { operation = "UpdateService" })
end)
it("an empty world has no weighted rule", function()
  local world = testing.world { world = "empty" }
  assert.error_matches(function() world:weights() end, "no listener rule has a weighted forward")
  assert.has_error(function() world:service("api") end) -- no cluster
  assert.same({}, world:calls())
end)
it("a playbook file that does not exist is exit 2", function()
  local r = testing.run("nosuch.lua", {})
  assert.equals(2, r.code)
  assert.matches("cannot read playbook nosuch.lua", r.message, 1, true)
end)
it("a bad scenario is an error in the test", function()
  assert.has_error(function() testing.world { sede = 1 } end)
end)
it("ecsplay.testing is the module", function()
  assert.equals(testing, ecsplay.testing)
end)
]] }
  local out, rc = ecsplay_test(dir, "")
  T.eq(rc, 0, out)
  T.eq(lines_of(out)[#lines_of(out)], "7 passed, 0 failed")
end)

T.test("a playbook run from a spec: exit code, report, output, on_abort handlers and team libraries", function()
  local dir = project {
    ["lib/team.lua"] = 'return { loaded = (package.loaded["lib.team"] == nil) and 1 or 2 }\n',
    ["deploy.lua"] = [[
local team = require "lib.team"
local a = ecsplay.params { image = { type = "string", default = "api:v2" }, fail = { type = "boolean", default = false } }
ecsplay.on_abort(function() print("aborted") end)
local ecs = require "ecsplay.ecs"
ecs.update_service { cluster = "production", service = "api", desiredCount = 2 }
print("team " .. team.loaded .. " image " .. a.image)
if a.fail then error("asked to fail") end
]],
    ["spec/deploy_spec.lua"] = [[
local testing = require "ecsplay.testing"
it("runs", function()
  local r = testing.run("deploy.lua", { image = "api:v9" })
  assert.equals(0, r.code)
  assert.equals("team 1 image api:v9", r.output)
  assert.equals(2, r.world:service("api").desired)
  assert.is_nil(r.report)
  assert.is_nil(package.loaded["lib.team"])
end)
it("fails after a change: exit 1, the on_abort handler ran, the message names the line", function()
  local r = testing.run(testing.relative("../deploy.lua"), { fail = true })
  assert.equals(1, r.code)
  assert.matches("deploy.lua:7: asked to fail", r.message, 1, true)
  assert.equals("team 1 image api:v2\naborted", r.output)
end)
it("bad arguments: exit 2", function()
  local r = testing.run("deploy.lua", { fail = "maybe" })
  assert.equals(2, r.code)
  assert.equals(4, r.world:service("api").desired)
end)
]] }
  local out, rc = ecsplay_test(dir, "")
  T.eq(rc, 0, out)
  T.eq(lines_of(out)[#lines_of(out)], "3 passed, 0 failed")
end)
