-- `ecsplay lint` (docs/cli.md): every shipped playbook, team library and spec lints clean;
-- each broken fixture in tests/lint_fixtures/NAME.lua prints exactly NAME.expected (its
-- `line:col: message` lines, after the file's name) and exits 1; an unreadable file exits
-- 2. Every run is the real binary in a child process with an empty environment: no AWS
-- credentials, region or network settings (lint never calls AWS).
local T = require "harness"
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local function trim(s) return (s:gsub("%s+$", "")) end
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local ROOT = trim(T.sh("cd " .. q(here .. "/../..") .. " && pwd -P"))
local BIN = os.getenv("ECSPLAY_BIN") or (ROOT .. "/ecsplay")
if BIN:sub(1, 1) ~= "/" then BIN = ROOT .. "/" .. BIN end
local TMP = T.tmpdir()
local FIXTURES = "tests/lint_fixtures"

local function read(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

-- ecsplay(args) → stdout, stderr, exit code (run from the project root, empty environment)
local function ecsplay_run(args, cwd)
  local out, err = TMP .. "/out", TMP .. "/err"
  local _, rc = T.sh(string.format("(cd %s && env -i PATH=%s HOME=%s timeout -k 5 60 %s %s >%s 2>%s)",
    q(cwd or ROOT), q(os.getenv("PATH")), q(TMP), q(BIN), args, q(out), q(err)))
  return read(out) or "", read(err) or "", rc
end

local function lint(args) return ecsplay_run("lint " .. args) end

local function lines_of(cmd)
  local out = {}
  for line in T.sh(cmd):gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

T.test("every shipped playbook, library and spec lints clean", function()
  local files = lines_of("cd " .. q(ROOT) .. " && find playbooks -name '*.lua' | sort")
  T.ok(#files >= 9, "expected the shipped playbooks, found " .. #files)
  local list = {}
  for i, f in ipairs(files) do list[i] = q(f) end
  local out, err, rc = lint(table.concat(list, " "))
  T.eq(out, "", "findings on shipped files")
  T.eq(rc, 0, "exit code (stderr: " .. err .. ")")
end)

local fixtures = lines_of("cd " .. q(ROOT) .. " && ls " .. FIXTURES .. "/*.lua")
T.test("there are fixtures, each with its expected output", function()
  T.ok(#fixtures >= 6, "fixtures found: " .. #fixtures)
  for _, f in ipairs(fixtures) do
    T.ok(read(ROOT .. "/" .. f:gsub("%.lua$", ".expected")), f .. " has no .expected file")
  end
end)

for _, f in ipairs(fixtures) do
  T.test("fixture " .. f, function()
    local want = {}
    for line in (read(ROOT .. "/" .. f:gsub("%.lua$", ".expected")) or ""):gmatch("[^\n]+") do
      want[#want + 1] = f .. ":" .. line
    end
    T.ok(#want > 0, "an expected output with at least one finding")
    local out, err, rc = lint(q(f))
    local got = {}
    for line in out:gmatch("[^\n]+") do got[#got + 1] = line end
    T.eq(got, want, "output of ecsplay lint " .. f)
    T.eq(rc, 1, "exit code")
    T.eq(trim(err), string.format("ecsplay lint: %d finding%s", #want, #want == 1 and "" or "s"))
  end)
end

T.test("fixing a fixture's findings makes it clean (the rule, not the file, is what fails)", function()
  local src = read(ROOT .. "/" .. FIXTURES .. "/strategy_options.lua")
  local fixed = src:gsub("{ 10, 50, 25 }", "{ 10, 25, 50 }"):gsub('"5 minutes"', '"5m"')
    :gsub("failure_limt", "failure_limit"):gsub("step = 150", "step = 15")
    :gsub(', task_definition = "api:3"', ""):gsub('rollout.blue_green { service = "api" }',
      'rollout.blue_green { image = "api:v2" }'):gsub("rollout.canari", "rollout.canary")
    :gsub("poll = 0", "poll = 5")
  local path = write(TMP .. "/fixed.lua", fixed)
  local out, _, rc = lint(q(path))
  local want = { path .. ':13:1: rollout.canary: steps: expected a non-empty list of percentages, like '
    .. '{ 10, 25, 50, 100 }, got nothing' }
  local got = {}
  for line in out:gmatch("[^\n]+") do got[#got + 1] = line end
  T.eq(got, want)
  T.eq(rc, 1)
  out, _, rc = lint(q(write(TMP .. "/fixed2.lua", fixed:gsub('rollout.canary { image = "api:v2" }',
    'rollout.canary { image = "api:v2", steps = { 50, 100 } }'))))
  T.eq(out, "")
  T.eq(rc, 0)
end)

T.test("luacheck's inline options apply", function()
  local path = write(TMP .. "/inline.lua", "-- luacheck: globals team_default\nprint(team_default)\n"
    .. "print(undefined_one) -- luacheck: ignore 113\n")
  local out, _, rc = lint(q(path))
  T.eq(out, "")
  T.eq(rc, 0)
end)

T.test("unreadable files exit 2 after the others are linted", function()
  local out, err, rc = lint(q(TMP .. "/missing.lua") .. " " .. q(FIXTURES .. "/syntax.lua"))
  T.eq(rc, 2)
  T.ok(err:find("cannot read " .. TMP .. "/missing.lua", 1, true), err)
  T.ok(out:find(FIXTURES .. "/syntax.lua:5:20: ", 1, true), "the readable file is still linted: " .. out)
end)

T.test("usage: no file, an unknown option", function()
  local _, err, rc = lint("")
  T.eq(rc, 2)
  T.ok(err:find("usage: ecsplay lint FILE.lua", 1, true), err)
  _, err, rc = lint("--fix playbooks/canary.lua")
  T.eq(rc, 2)
  T.ok(err:find("unknown option --fix", 1, true), err)
end)

T.test("the library template lints clean", function()
  local _, _, rc = ecsplay_run("new library tl_lint --dir " .. q(TMP .. "/tl"))
  T.eq(rc, 0)
  local out, err
  out, err, rc = lint(q(TMP .. "/tl/tl_lint/init.lua") .. " " .. q(TMP .. "/tl/tl_lint_spec.lua"))
  T.eq(out, "", err)
  T.eq(rc, 0)
end)
