-- The commands as a new user meets them (docs/cli.md): --help on every command, bad usage and
-- bad input with one clear message and exit 2, Ctrl-C with 130, os.exit inside a rehearsal or
-- a spec, nothing half-written. Each message from a real `ecsplay` process, with its exit code.
local T = require "harness"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local TMP = T.tmpdir()

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local function slurp(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Runs `ecsplay ARGS` (shell-quoted); returns stdout, stderr, exit code.
local function run(args, env)
  local err_file = TMP .. "/stderr"
  local out, rc = T.sh("{ " .. (env or "") .. " " .. T.bin .. " " .. args .. " 2>" .. err_file .. "; }")
  return out, slurp(err_file) or "", rc
end

-- exit code `code`, stderr exactly `want` (lines), stdout empty, no traceback.
local function expect(args, code, want)
  local out, err, rc = run(args)
  T.eq(rc, code, "exit code of ecsplay " .. args .. " (" .. err .. ")")
  T.ok(not err:find("traceback", 1, true), "no traceback: " .. err)
  T.eq(err, want .. "\n", "stderr of ecsplay " .. args)
  T.eq(out, "", "stdout of ecsplay " .. args)
end

local SYNTAX = write(TMP .. "/syntax.lua", "local x =\nif then\n")
local EMPTY = write(TMP .. "/empty.jsonl", "")
local EXIT7 = write(TMP .. "/exit7.lua", "print('before')\nos.exit(7)\n")
local EXIT0 = write(TMP .. "/exit0.lua", "os.exit(0)\n")
os.execute("mkdir -p " .. q(TMP .. "/folder"))
local FOLDER = TMP .. "/folder"

T.test("every command's --help and -h print its usage, exit 0, wherever the flag is", function()
  local names = { "rollback", "resume", "status", "promote", "pause", "unpause", "abort", "report", "plan",
    "lint", "test", "iam-policy", "new", "sim", "help" }
  for _, name in ipairs(names) do
    for _, form in ipairs { name .. " --help", name .. " -h", name .. " x.lua --help" } do
      local out, err, rc = run(form)
      T.eq(rc, 0, "ecsplay " .. form .. ": " .. err)
      T.ok(out:find("^usage: ecsplay " .. name:gsub("%-", "%%-")), "ecsplay " .. form .. ": " .. out)
      T.eq(err, "", "ecsplay " .. form)
    end
  end
end)

T.test("ecsplay help: the commands grouped by what they are for, in a fixed order", function()
  local out, err, rc = run("help")
  T.eq({ rc, err }, { 0, "" })
  local order = {}
  for name in out:gmatch("\n  ([%w-]+) ") do order[#order + 1] = name end
  T.eq(order, { "rollback", "resume", "status", "promote", "pause", "unpause", "abort", "report", "plan", "lint",
    "test", "iam-policy", "new", "sim", "help" })
  -- options given before the command reach it too
  local out2, _, rc2 = run("--log-format json help plan")
  T.eq(rc2, 0)
  T.ok(out2:find("^usage: ecsplay plan "), out2)
  expect("help libary", 2, "ecsplay: help: no command `libary`; expected one of abort, help, iam-policy, lint, "
    .. "new, pause, plan, promote, report, resume, rollback, sim, status, test, unpause\nusage: ecsplay help [COMMAND]")
end)

T.test("misspelt commands, subcommands and flags get a suggestion: exit 2", function()
  expect("sim serv", 2, "ecsplay: sim: unknown sim command `serv`; did you mean `serve`?\nusage: ecsplay sim serve "
    .. "[--port N] [--scenario FILE] [--speed X | --lockstep] [--no-auth] [--iam-policy FILE]")
  expect("new libary x", 2, 'ecsplay: new: unknown kind "libary"; did you mean "library"?\n'
    .. "usage: ecsplay new library NAME [--dir DIR]")
  expect("new library x --dri y", 2, "ecsplay: new: unexpected argument --dri; did you mean `--dir`?\n"
    .. "usage: ecsplay new library NAME [--dir DIR]")
  expect("lint --log-fomat json x.lua", 2, "ecsplay: lint: unknown option --log-fomat; did you mean `--log-format`?\n"
    .. "usage: ecsplay lint FILE.lua... [--log-format text|json]")
  expect("test --jnit x.xml", 2, "ecsplay: test: unknown option --jnit; did you mean `--junit`?\n"
    .. "usage: ecsplay test [--tap] [--junit FILE] [--log-format text|json] [-v] [PATH ...]")
  local _, err, rc = run("iam-policy playbooks/canary.lua --verfy p.json")
  T.eq(rc, 2, err)
  T.ok(err:find("^ecsplay: iam%-policy: unexpected argument %-%-verfy; did you mean `%-%-verify`%?\nusage: "), err)
end)

T.test("no arguments and flags missing their value: what is missing, then the usage", function()
  expect("sim", 2, "ecsplay: sim: which sim command? (`serve` is the one)\nusage: ecsplay sim serve [--port N] "
    .. "[--scenario FILE] [--speed X | --lockstep] [--no-auth] [--iam-policy FILE]")
  expect("new", 2, "ecsplay: new: what to make? (`library` is the one kind)\n"
    .. "usage: ecsplay new library NAME [--dir DIR]")
  expect("new library", 2, "ecsplay: new: which name? (a lowercase Lua module name, e.g. team_rollouts)\n"
    .. "usage: ecsplay new library NAME [--dir DIR]")
  expect("new library x --dir", 2, "ecsplay: new: --dir needs a value (the folder to write)\n"
    .. "usage: ecsplay new library NAME [--dir DIR]")
  expect("lint", 2, "ecsplay: lint: no file given\nusage: ecsplay lint FILE.lua... [--log-format text|json]")
  expect("report", 2, "ecsplay: report: which journal? (a run's .jsonl file, in .ecsplay/runs by default)\n"
    .. "usage: ecsplay report JOURNAL.jsonl [-o FILE.html|FILE.json|FILE.xml]")
  expect("report j.jsonl -o", 2, "ecsplay: report: -o needs a value (the report file to write)\n"
    .. "usage: ecsplay report JOURNAL.jsonl [-o FILE.html|FILE.json|FILE.xml]")
  local plan_usage = "usage: ecsplay plan FILE.lua [--simulate[=SCENARIO] | --endpoint-url URL] [--region R] "
    .. "[--profile P] [--log-format text|json] [--world-dump FILE] [key=value ...]"
  expect("plan", 2, "ecsplay: plan: no playbook given\n" .. plan_usage)
  expect("plan --simulate playbooks/canary.lua --log-format xml", 2,
    "ecsplay: plan: --log-format: expected text or json, got xml\n" .. plan_usage)
  expect("plan --simulate playbooks/canary.lua stray", 2, "ecsplay: plan: unexpected argument stray (the playbook "
    .. "is playbooks/canary.lua; its arguments are key=value)\n" .. plan_usage)
  expect("lint --log-format yaml x.lua", 2, "ecsplay: lint: --log-format: expected text or json, got yaml\n"
    .. "usage: ecsplay lint FILE.lua... [--log-format text|json]")
end)

T.test("a missing file, a folder, a syntax error: plan and iam-policy refuse it before anything runs", function()
  for _, cmd in ipairs { "plan --simulate", "plan --log-format json --simulate", "iam-policy" } do
    local name = cmd:match("^(%S+)")
    expect(cmd .. " " .. q(TMP .. "/missing.lua"), 2, "ecsplay: " .. name .. ": cannot read playbook " .. TMP
      .. "/missing.lua: no such file or not readable")
    expect(cmd .. " " .. q(FOLDER), 2, "ecsplay: " .. name .. ": " .. FOLDER .. " is a folder, not a playbook: give "
      .. "its FILE.lua")
    expect(cmd .. " " .. q(SYNTAX), 2, "ecsplay: " .. name .. ": " .. SYNTAX .. ":2: unexpected symbol near 'if'")
  end
  local out, err, rc = run("lint " .. q(FOLDER))
  T.eq({ out, rc }, { "", 2 }, err)
  T.eq(err, "ecsplay lint: " .. FOLDER .. " is a folder: give the .lua files in it (ecsplay lint " .. FOLDER
    .. "/*.lua)\n")
end)

T.test("a misspelt playbook argument under iam-policy: the argument's message alone, exit 2", function()
  local _, err, rc = run("iam-policy playbooks/canary.lua imgae=api:v2")
  T.eq(rc, 2, err)
  T.ok(err:find('unknown argument "imgae"; did you mean "image"?', 1, true), err)
  T.ok(not err:find("success path failed", 1, true), "no second, misleading line: " .. err)
end)

T.test("os.exit in a playbook under plan and iam-policy ends the playbook, not the command", function()
  local out, err, rc = run("plan --simulate " .. q(EXIT7))
  T.eq(rc, 2, err)
  T.ok(out:find("PROBLEM: " .. EXIT7 .. ":2: the playbook called os.exit(7): a rehearsal ends the playbook there",
    1, true), out)
  T.ok(out:find("the run could not start", 1, true), out)
  out, err, rc = run("plan --simulate " .. q(EXIT0))
  T.eq(rc, 0, err)
  T.ok(out:find("the run could start (exit 0)", 1, true), out)
  expect("iam-policy " .. q(EXIT7), 2, "ecsplay: " .. EXIT7 .. ":2: the playbook called os.exit(7): a rehearsal ends "
    .. "the playbook there [PlaybookExited]")
  expect("iam-policy " .. q(EXIT0), 0, "ecsplay: iam-policy: the playbook made no AWS call on any path: it needs no "
    .. "IAM permission; no policy written")
end)

T.test("ecsplay test: os.exit in a spec fails that test; a table error says what it is", function()
  local dir = TMP .. "/specs"
  os.execute("mkdir -p " .. q(dir))
  write(dir .. "/exit_spec.lua", 'it("exits", function() os.exit(5) end)\nit("goes on", function() end)\n')
  write(dir .. "/table_spec.lua", "error({})\n")
  local out, err, rc = run("test " .. q(dir))
  T.eq(rc, 2, err)
  T.ok(out:find("os.exit(5) called during `ecsplay test`: a test cannot end the process", 1, true), out)
  T.ok(out:find("ok   goes on", 1, true), "the next test still runs: " .. out)
  T.ok(out:find("table_spec.lua:1: an error raised with a table value", 1, true), out)
  T.ok(out:find("1 passed, 2 failed\n", 1, true), out)
end)

T.test("ecsplay test --log-format json: JSON lines only on standard output", function()
  local dir = TMP .. "/jspecs"
  os.execute("mkdir -p " .. q(dir))
  write(dir .. "/a_spec.lua", 'it("passes", function() end)\nit("fails", function() assert.equals(1, 2) end)\n')
  local out, err, rc = run("--log-format json test " .. q(dir))
  T.eq(rc, 1, err)
  local json = require "ecsplay.json"
  local events = {}
  for line in out:gmatch("[^\n]+") do
    local v = json.decode(line)
    T.ok(type(v) == "table", "a JSON line: " .. line)
    events[#events + 1] = v.event .. ":" .. tostring(v.status or math.tointeger(v.failed))
  end
  T.eq(events, { "test:success", "test:failure", "summary:1" })
  expect("test --tap --log-format json " .. q(dir), 2, "ecsplay: test: give --tap or --log-format json, not both\n"
    .. "usage: ecsplay test [--tap] [--junit FILE] [--log-format text|json] [-v] [PATH ...]")
end)

T.test("lint --log-format json: one object per finding", function()
  local out, err, rc = run("--log-format json lint " .. q(SYNTAX))
  T.eq(rc, 1, err)
  local v = require("ecsplay.json").decode(out)
  T.eq({ v.file, v.line, v.col }, { SYNTAX, 2, 1 })
  T.eq(err, "ecsplay lint: 1 finding\n")
end)

T.test("output files that cannot be written: exit 2 before anything runs, nothing left behind", function()
  local spec = write(TMP .. "/one_spec.lua", 'it("runs", function() end)\n')
  expect("test --junit /nonexistent/dir/j.xml " .. q(spec), 2,
    "ecsplay: test: cannot write --junit file: /nonexistent/dir/j.xml: No such file or directory")
  expect("report " .. q(EMPTY) .. " -o /proc/x.html", 2,
    "ecsplay: report: cannot write the report /proc/x.html: No such file or directory")
  expect("report " .. q(EMPTY) .. " -o /nonexistent/dir/r.html", 2,
    "ecsplay: report: cannot write the report /nonexistent/dir/r.html: No such file or directory")
  expect("new library zz --dir /proc/zz", 2, "ecsplay: new: cannot create folder /proc/zz: No such file or directory")
  -- an existing --junit file is not emptied by the check
  local keep = write(TMP .. "/keep.xml", "old")
  local _, _, rc = run("test --junit " .. q(keep) .. " " .. q(TMP .. "/missing_spec.lua"))
  T.eq(rc, 2)
  T.eq(slurp(keep), "old")
end)

T.test("report of an empty journal: exit 2, nothing to report", function()
  expect("report " .. q(EMPTY), 2, "ecsplay: report: " .. EMPTY .. " is empty: the run was stopped before it "
    .. "recorded anything; there is nothing to report")
end)

-- Starts `ecsplay ARGS` in the background, sends SIGINT after `delay` seconds; → stdout, stderr, exit code.
local function interrupted(args, delay)
  local out_file, err_file, rc_file = TMP .. "/int.out", TMP .. "/int.err", TMP .. "/int.rc"
  T.sh(string.format("{ %s %s >%s 2>%s & pid=$!; sleep %s; kill -INT $pid; wait $pid; echo $? >%s; }",
    T.bin, args, q(out_file), q(err_file), delay, q(rc_file)))
  return slurp(out_file), slurp(err_file), tonumber(slurp(rc_file))
end

T.test("Ctrl-C during test (even in a busy loop) and iam-policy: exit 130, no traceback, no half output", function()
  local dir = TMP .. "/loop"
  os.execute("mkdir -p " .. q(dir))
  write(dir .. "/loop_spec.lua", 'it("spins", function() while true do end end)\nit("never", function() end)\n')
  local out, err, rc = interrupted("test " .. q(dir), 1)
  T.eq(rc, 130, err)
  T.ok(out:find("interrupted by SIGINT", 1, true), out)
  T.ok(not out:find("never", 1, true), "no test starts after the signal: " .. out)
  T.ok(not err:find("traceback", 1, true), err)
  write(dir .. "/load_spec.lua", "while true do end\n")
  local _, err2, rc2 = interrupted("test " .. q(dir .. "/load_spec.lua"), 1)
  T.eq(rc2, 130, err2)
  -- iam-policy: the signal ends every path, and no policy is printed
  -- a playbook that is still calling AWS when the signal comes, however fast the machine is
  write(dir .. "/busy.lua", 'local ecs = require "ecsplay.ecs"\nfor _ = 1, 1e7 do ecs.list_clusters{} end\n')
  out, err, rc = interrupted("iam-policy " .. q(dir .. "/busy.lua"), 0.5)
  T.eq(rc, 130, err)
  T.eq(out, "", "no policy on standard output")
  T.ok(err:find("ecsplay: iam-policy: interrupted by signal; no policy written", 1, true), err)
  T.ok(not err:find("traceback", 1, true), err)
end)


T.test("status, promote, pause, unpause, abort: a misspelt flag gets the flag parser's did-you-mean, exit 2", function()
  expect("status --wach", 2, "ecsplay: status: unexpected argument --wach; did you mean `--watch`?\n"
    .. "usage: ecsplay status [RUN] [--watch] [--log-format text|json]")
  expect("promote 2026 --ful", 2, "ecsplay: promote: unexpected argument --ful; did you mean `--full`?\n"
    .. "usage: ecsplay promote RUN [--full] [--as NAME] [--log-format text|json]")
  expect("pause 2026 --a bob", 2, "ecsplay: pause: unexpected argument --a; did you mean `--as`?\n"
    .. "usage: ecsplay pause RUN [--as NAME] [--log-format text|json]")
  expect("unpause 2026 --log-fromat=json", 2, "ecsplay: unpause: unexpected argument --log-fromat=json; did you mean "
    .. "`--log-format`?\nusage: ecsplay unpause RUN [--as NAME] [--log-format text|json]")
  expect("abort --fulll 2026", 2, "ecsplay: abort: unexpected argument --fulll\n"
    .. "usage: ecsplay abort RUN [--as NAME] [--log-format text|json]")
end)

T.test("status and the steering commands in JSON mode: one JSON document, errors as an error event", function()
  local runs = TMP .. "/no-runs"
  os.execute("mkdir -p " .. q(runs))
  local env = "ECSPLAY_RUNS_DIR=" .. q(runs)
  local json = require "ecsplay.json"
  -- no run at all: still one JSON document (an empty output is no JSON)
  for _, form in ipairs { "status --log-format json", "--log-format json status", "status --log-format=json" } do
    local out, err, rc = run(form, env)
    T.eq({ out, err, rc }, { '{"runs":[]}\n', "", 0 }, form)
    T.eq(json.decode(out).runs, {}, form)
  end
  local out, err, rc = run("status", env)
  T.eq({ out, err, rc }, { "no runs in " .. runs .. "\n", "", 0 })
  -- a RUN that matches nothing, a misspelt flag: the error event on stdout, the line on stderr, exit 2
  local cases = {
    { "status nosuch --log-format json", "RunNotFound", 'status: no run "nosuch" in ' .. runs },
    { "--log-format json promote nosuch --full", "RunNotFound", 'promote: no run "nosuch" in ' .. runs },
    { "abort --log-format json", "BadInput", "abort: which run? (RUN: a run id" },
    { "status --wach --log-format json", "BadInput", "status: unexpected argument --wach; did you mean `--watch`?" },
  }
  for _, c in ipairs(cases) do
    out, err, rc = run(c[1], env)
    T.eq(rc, 2, c[1] .. ": " .. err)
    T.eq(select(2, out:gsub("\n", "")), 1, "one line on stdout: " .. out)
    local ev = json.decode(out)
    T.ok(type(ev) == "table", c[1] .. ": JSON on stdout: " .. out)
    T.eq({ ev.event, ev.level, ev.code, ev.kind, math.tointeger(ev.exit_code) },
      { "error", "error", c[2], "bad_input", 2 }, c[1])
    T.eq(ev.message:sub(1, #c[3]), c[3], c[1])
    T.eq(err:match("^[^\n]*"), "ecsplay: " .. ev.message, c[1] .. ": the same line for people on stderr")
  end
  -- text mode: nothing on stdout
  out, err, rc = run("status nosuch", env)
  T.eq({ out, err, rc }, { "", "ecsplay: status: no run \"nosuch\" in " .. runs .. " (0 run(s) there; `ecsplay status` "
    .. "lists them)\n", 2 })
end)

T.test("sim serve: an unknown argument gets a did-you-mean and the list of every option --help explains", function()
  local listed = "(expected --port N, --scenario FILE, --speed X, --lockstep, --no-auth, --iam-policy FILE; --help "
    .. "explains them)"
  expect("sim serve --iam-polcy p.json", 2, "ecsplay: sim serve: unknown argument --iam-polcy; did you mean "
    .. "`--iam-policy`? " .. listed)
  expect("sim serve --sped 2", 2, "ecsplay: sim serve: unknown argument --sped; did you mean `--speed`? " .. listed)
  expect("sim serve stray", 2, "ecsplay: sim serve: unknown argument stray " .. listed)
  expect("sim serve --iam-policy", 2, "ecsplay: sim serve: --iam-policy needs a value")
  -- the list is every option of --help (but --help itself), in its order
  local help = run("sim serve --help")
  local options = {}
  for flag, arg in help:gmatch("\n  (%-%-[%w-]+) ?([A-Z]*)") do
    if flag ~= "--help" then options[#options + 1] = arg ~= "" and (flag .. " " .. arg) or flag end
  end
  T.eq("(expected " .. table.concat(options, ", ") .. "; --help explains them)", listed)
end)

T.test("sim serve: a scenario whose setup fails is one line naming file:line and what failed, exit 2, as --simulate", function()
  local aws_err = write(TMP .. "/setup_aws.lua", 'return { setup = function(aws)\n'
    .. '  aws.ecs.create_service{ cluster = "production", serviceName = "x", taskDefinition = "api:1" }\nend }\n')
  local lua_err = write(TMP .. "/setup_lua.lua", "return { setup = function(aws)\n  local t = nil\n  return t.x\nend }\n")
  local want_aws = "ecsplay: " .. aws_err .. ":2: scenario setup: ecs CreateService failed: InvalidParameterException: "
    .. "Network Configuration must be provided when networkMode 'awsvpc' is specified. [SetupFailed]"
  expect("sim serve --port 0 --scenario " .. q(aws_err), 2, want_aws)
  local _, err = run("--simulate=" .. q(aws_err) .. " -e 'return'")
  T.eq(err, want_aws .. "\n")
  local _, lerr, rc = run("sim serve --port 0 --scenario " .. q(lua_err))
  T.eq(rc, 2, lerr)
  T.ok(lerr:find("^ecsplay: " .. lua_err:gsub("%p", "%%%0") .. ":3: scenario setup failed: .*nil.*%[SetupFailed%]\n$"), lerr)
  T.ok(not lerr:find("traceback", 1, true), lerr)
end)
