-- ecsplay.errors (one constructor, is, describe) and the runner's exit code table
-- (ecsplay.cli.exit): for every kind, a real `ecsplay` run raising it, checked for its exit
-- code, a last line with the code and the reason, and no traceback frame from ecsplay's own
-- files (docs/errors.md).
local T = require "harness"
local errors = require "ecsplay.errors"
local exit = require "ecsplay.cli.exit"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local ROOT = (T.sh("pwd -P"):gsub("%s+$", ""))
local BIN = T.bin:sub(1, 1) == "/" and T.bin or (ROOT .. "/" .. T.bin:gsub("^%./", ""))
-- ecsplay's own files, wherever the binary finds them (the ASan build reaches them
-- through build-asan/stdlib-lua)
local STDLIB = "stdlib-lua/ecsplay/"
local TMP = T.tmpdir()

local function write(name, text)
  local path = TMP .. "/" .. name
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

--[[ run(args, env) → stdout, stderr, exit code: the binary in a clean environment (no AWS
     keys unless given, no metadata service, a region), from the temporary folder. ]]
local function run(args, env)
  local vars = { PATH = os.getenv("PATH"), HOME = TMP, AWS_EC2_METADATA_DISABLED = "true",
    AWS_REGION = "us-east-1", AWS_CONFIG_FILE = TMP .. "/none", AWS_SHARED_CREDENTIALS_FILE = TMP .. "/none",
    ECSPLAY_RUNS_DIR = TMP .. "/runs", AWS_MAX_ATTEMPTS = "1" }
  for k, v in pairs(env or {}) do vars[k] = v or nil end
  local parts = { "cd", q(TMP), "&&", "timeout", "-k", "5", "60", "env", "-i" }
  for k, v in pairs(vars) do parts[#parts + 1] = q(k .. "=" .. v) end
  parts[#parts + 1] = q(BIN) .. " " .. args .. " >" .. q(TMP .. "/out") .. " 2>" .. q(TMP .. "/err")
  local _, how, rc = os.execute(table.concat(parts, " "))
  if how ~= "exit" then rc = 128 + rc end
  local function slurp(p) local f = io.open(p) local s = f:read("a") f:close() return s end
  return slurp(TMP .. "/out"), slurp(TMP .. "/err"), rc
end

-- The last line names the code and says why; no frame of ecsplay's own files, no C frames.
local function check_failure(err, code, reason)
  T.ok(err:find("ecsplay: ", 1, true), "a last line starting `ecsplay: `:\n" .. err)
  T.ok(err:find(code, 1, true), "the last line names the code " .. code .. ":\n" .. err)
  T.ok(err:find(reason, 1, true), "the last line says why (" .. reason .. "):\n" .. err)
  T.ok(not err:find(STDLIB, 1, true), "a traceback frame from ecsplay's own files:\n" .. err)
  T.ok(not err:find("[C]:", 1, true), "a traceback frame of a C function:\n" .. err)
end

-- A one-line chunk raising errors.new(kind, fields) as a playbook would.
local function raise(kind, fields)
  local parts = {}
  for k, v in pairs(fields) do parts[#parts + 1] = string.format("%s = %s", k, v) end
  return "-e " .. q(string.format("local errors = require 'ecsplay.errors'\n"
    .. "error(errors.new(%q, { %s }), 0)", kind, table.concat(parts, ", ")))
end

---------------------------------------------------------------------------------------------
-- the module
---------------------------------------------------------------------------------------------

T.test("errors.new: kind, default code, one-line message, unknown fields dropped", function()
  local e = errors.new("bad_input", { message = "replicas:\n expected 1 to 10", field = "replicas",
    nonsense = 1 })
  T.eq(e.kind, "bad_input")
  T.eq(e.code, "BadInput")
  T.eq(e.message, "replicas: expected 1 to 10")
  T.eq(e.field, "replicas")
  T.eq(e.nonsense, nil)
  T.eq(e.retryable, false)
  T.eq(errors.new("transport", { message = "x" }).retryable, true, "transport errors retry by default")
  for kind in pairs(errors.KINDS) do
    local k = errors.new(kind, { message = "m" })
    T.ok(type(k.code) == "string" and k.code ~= "", kind .. " has a default code")
  end
  T.raises(function() errors.new("nope", {}) end, "unknown kind nope")
  T.eq(errors.bad_input("m", "f").code, "BadInput")
  T.eq(errors.param_validation({ message = "m" }).kind, "validation")
end)

T.test("errors.is: by kind or code, a list, plain tables by code", function()
  local e = errors.aws { service = "elbv2", operation = "ModifyRule", code = "RuleNotFound", message = "gone" }
  T.ok(errors.is(e))
  T.ok(errors.is(e, "service"))
  T.ok(errors.is(e, "RuleNotFound"))
  T.ok(errors.is(e, { "ListenerNotFound", "RuleNotFound" }))
  T.ok(not errors.is(e, "transport"))
  T.ok(errors.is({ code = "Throttling" }, "Throttling"), "a decoded AWS error body")
  T.ok(not errors.is({ code = "Throttling" }), "a plain table is not an error object")
  T.ok(not errors.is({ kind = "service" }, "service"), "kinds belong to error objects only")
  T.ok(not errors.is("RuleNotFound", "RuleNotFound"))
  T.ok(not errors.is(nil))
end)

T.test("errors.describe: strings, error objects, details, the code option, plain tables", function()
  T.eq(errors.describe("plain"), "plain")
  local e = errors.aws { service = "ecs", operation = "UpdateService", code = "ServiceNotFoundException",
    status = 400, message = "Service not found.", request_id = "r-1" }
  T.eq(errors.describe(e), "ecs UpdateService: ServiceNotFoundException (400): Service not found. [request r-1]")
  T.eq(errors.describe(e, { code = true }), errors.describe(e), "the code is in the text already")
  local b = errors.bad_input("replicas: expected 1 to 10")
  T.eq(errors.describe(b), "replicas: expected 1 to 10")
  T.eq(errors.describe(b, { code = true }), "replicas: expected 1 to 10 [BadInput]")
  local m = errors.new("bad_input", { code = "ModuleNotFound", message = "module 'x' not found",
    details = { "no file 'a/x.lua'", "no file 'b/x.lua'" } })
  T.eq(errors.describe(m), "module 'x' not found\n\tno file 'a/x.lua'\n\tno file 'b/x.lua'")
  T.eq(errors.describe({ code = "GateFailed", message = "p99 too high" }), "GateFailed: p99 too high")
  T.eq(errors.describe(42), "42")
  T.eq("why: " .. b, "why: replicas: expected 1 to 10", "error objects concatenate as their text")
end)

T.test("the exit code table: every kind", function()
  local function code(kind, fields) return exit.code_for(errors.new(kind, fields or {})) end
  T.eq(code("service"), 1)
  T.eq(code("transport"), 1)
  T.eq(code("response"), 1)
  T.eq(code("credentials"), 1)
  T.eq(code("waiter"), 1)
  T.eq(code("gate"), 1)
  T.eq(code("journal"), 1)
  T.eq(code("internal"), 1)
  T.eq(code("rollout"), 1)
  T.eq(code("rollback"), 3)
  T.eq(code("interrupted", { signal = 2 }), 130)
  T.eq(code("interrupted", { signal = 15 }), 143)
  T.eq(code("interrupted", { code = "Cancelled" }), 1, "a cancelled task is no signal")
  T.eq(code("rollout", { cause = errors.new("interrupted", { signal = 15 }) }), 143)
  T.eq(code("rollout", { cause = errors.new("gate", {}) }), 1)
  for _, kind in ipairs { "bad_input", "validation", "config", "scenario" } do
    T.eq(code(kind), 2, kind .. " while nothing changed")
  end
  T.eq(exit.code_for("a Lua error"), 1)
  T.eq(exit.code_for({ code = "Whatever" }), 1)
end)

---------------------------------------------------------------------------------------------
-- real runs, one per kind
---------------------------------------------------------------------------------------------

T.test("service: an AWS error answered by the simulator → 1", function()
  local _, err, rc = run("--simulate -e " .. q("require('ecsplay.ecs').update_service { cluster = 'production',\n"
    .. "  service = 'nope', desiredCount = 1 }"))
  T.eq(rc, 1, err)
  check_failure(err, "ServiceNotFoundException", "ecs UpdateService")
  T.ok(err:find("(command line):1:", 1, true), "where in the chunk:\n" .. err)
end)

T.test("transport: nothing listening → 1", function()
  local _, err, rc = run("--endpoint-url http://127.0.0.1:1 -e " .. q("require('ecsplay.ecs').list_clusters {}"),
    { AWS_ACCESS_KEY_ID = "AKIDERRORS", AWS_SECRET_ACCESS_KEY = "errors-test-secret" })
  T.eq(rc, 1, err)
  check_failure(err, "ConnectionError", "http://127.0.0.1:1")
end)

T.test("response: an answer that cannot be read → 1", function()
  local _, err, rc = run(raise("response", { service = "'ecs'", operation = "'ListClusters'",
    code = "'InvalidResponse'", message = "'not JSON'" }))
  T.eq(rc, 1, err)
  check_failure(err, "InvalidResponse", "not JSON")
end)

T.test("validation: bad parameters, nothing sent → 2", function()
  local _, err, rc = run("--simulate -e " .. q("require('ecsplay.ecs').update_service { cluster = 'production',\n"
    .. "  service = 'api', desiredcount = 2 }"))
  T.eq(rc, 2, err)
  check_failure(err, "ParamValidation", "unknown parameter `desiredcount`; did you mean `desiredCount`?")
end)

T.test("credentials: none anywhere → 1", function()
  local _, err, rc = run("--endpoint-url http://127.0.0.1:1 -e " .. q("require('ecsplay.ecs').list_clusters {}"))
  T.eq(rc, 1, err)
  check_failure(err, "NoCredentials", "no AWS credentials found")
end)

T.test("config: no region → 2", function()
  local _, err, rc = run("-e " .. q("require('ecsplay.ecs').list_clusters {}"),
    { AWS_REGION = false, AWS_ACCESS_KEY_ID = "AKIDERRORS", AWS_SECRET_ACCESS_KEY = "errors-test-secret" })
  T.eq(rc, 2, err)
  check_failure(err, "NoRegion", "no AWS region configured")
end)

T.test("waiter: a failure state → 1", function()
  local _, err, rc = run("--simulate -e " .. q("require('ecsplay.ecs').wait.services_stable {\n"
    .. "  cluster = 'production', services = { 'nope' }, timeout = '1m' }"))
  T.eq(rc, 1, err)
  check_failure(err, "WaiterFailed", "services_stable")
end)

T.test("bad_input: the documented way for a playbook → 2, no traceback", function()
  local pb = write("bad_input.lua", table.concat({
    "local errors = require 'ecsplay.errors'",
    "local replicas = tonumber(ecsplay.args.replicas)",
    "if not replicas or replicas > 10 then",
    "  error(errors.bad_input('replicas: expected 1 to 10, got ' .. tostring(ecsplay.args.replicas), 'replicas'), 0)",
    "end",
  }, "\n"))
  local out, err, rc = run(q(pb) .. " replicas=12")
  T.eq(rc, 2, err)
  T.eq(out, "")
  check_failure(err, "BadInput", "replicas: expected 1 to 10, got 12")
  T.ok(err:find(pb .. ":4: ", 1, true), "the playbook's line:\n" .. err)
  T.ok(not err:find("stack traceback", 1, true), err)
end)

T.test("bad_input after a change is a failure like any other → 1", function()
  local _, err, rc = run("--simulate -e " .. q("require('ecsplay.ecs').update_service { cluster = 'production',\n"
    .. "  service = 'api', desiredCount = 4 }\n"
    .. "error(require('ecsplay.errors').bad_input('too late'), 0)"))
  T.eq(rc, 1, err)
  check_failure(err, "BadInput", "too late")
end)

T.test("bad_input: a missing module → 2, the places searched, the user's traceback", function()
  local pb = write("needs_lib.lua", "local x = 1\nlocal lib = require 'no_such_team_lib'\n")
  local _, err, rc = run(q(pb))
  T.eq(rc, 2, err)
  check_failure(err, "ModuleNotFound", pb .. ":2: module 'no_such_team_lib' not found")
  T.ok(err:find("no file '" .. TMP .. "/no_such_team_lib.lua'", 1, true), err)
  T.ok(err:find("stack traceback:\n\t" .. pb .. ":2: in main chunk", 1, true), err)
end)

T.test("gate: a gate failure → 1", function()
  local _, err, rc = run(raise("gate", { gate = "'5xx rate api-canary'", value = "5.6",
    message = "'gate `5xx rate api-canary` failed: 5.6% (want < 1%)'" }))
  T.eq(rc, 1, err)
  check_failure(err, "GateFailed", "failed: 5.6%")
end)

T.test("rollout: a failed, rolled back rollout → 1 (130/143 when interrupted)", function()
  local _, err, rc = run(raise("rollout", { message = "'canary api rolled back: GateFailed: p99 too high'" }))
  T.eq(rc, 1, err)
  check_failure(err, "RolloutFailed", "canary api rolled back")
  _, err, rc = run(raise("rollout", { message = "'canary api rolled back: interrupted by SIGTERM'",
    cause = "errors.new('interrupted', { signal = 15, message = 'interrupted by SIGTERM' })" }))
  T.eq(rc, 143, err)
  check_failure(err, "RolloutFailed", "interrupted by SIGTERM")
end)

T.test("rollback: a rollback that could not complete → 3, what is left listed", function()
  local _, err, rc = run(raise("rollback", { message = "'rollback of canary api failed'",
    left = "{ 'set weights api-stable=100 api-canary=0', 'scale api-canary to 0' }" }))
  T.eq(rc, 3, err)
  check_failure(err, "RollbackFailed", "rollback of canary api failed")
  T.ok(err:find("what may be left in a mixed state:\n  set weights api-stable=100 api-canary=0\n"
    .. "  scale api-canary to 0", 1, true), err)
end)

T.test("interrupted: SIGTERM during a sleep → 143 after the abort handlers", function()
  local pb = write("sleepy.lua", "ecsplay.on_abort(function() print('undone') end, 'undo')\n"
    .. "print('ready') io.stdout:flush()\necsplay.sleep(30)\n")
  local out = T.sh(q(BIN) .. " " .. q(pb) .. " > " .. q(TMP .. "/sig") .. " 2>&1 & pid=$!; "
    .. "for i in $(seq 1 100); do grep -q ready " .. q(TMP .. "/sig") .. " 2>/dev/null && break; sleep 0.05; done; "
    .. "kill -TERM $pid; wait $pid; echo exit=$?; cat " .. q(TMP .. "/sig"))
  T.ok(out:find("exit=143", 1, true), out)
  T.ok(out:find("undone", 1, true), out)
  check_failure(out, "Interrupted", "interrupted by SIGTERM")
end)

T.test("journal: a journal that cannot be used → 1", function()
  local _, err, rc = run(raise("journal", { file = "'run.jsonl'", message = "'run.jsonl:3: not a journal line'" }))
  T.eq(rc, 1, err)
  check_failure(err, "JournalError", "not a journal line")
end)

T.test("scenario: a wrong scenario file → 2 naming the file, line and field", function()
  local sc = write("scenario.lua", "return {\n  seed = 1,\n  images = {\n    ['api:v9'] = { eror_rate = 0.5 },\n  },\n}\n")
  local out, err, rc = run("--simulate=" .. q(sc) .. " -e " .. q("print('ran')"))
  T.eq(rc, 2, err)
  T.eq(out, "")
  check_failure(err, "ScenarioError", sc .. ":4: images[\"api:v9\"].eror_rate: unknown field \"eror_rate\"; "
    .. "did you mean \"error_rate\"?")
end)

T.test("internal: tasks that wait on each other → 1", function()
  local _, err, rc = run("-e " .. q("local a, b\n"
    .. "a = ecsplay.spawn(function() ecsplay.sleep(0.01) b:join() end)\n"
    .. "b = ecsplay.spawn(function() ecsplay.sleep(0.01) a:join() end)\n"
    .. "a:join()"))
  T.eq(rc, 1, err)
  check_failure(err, "Deadlock", "every task is waiting on another task")
end)

T.test("a plain error('msg', 0) shows the message and only the playbook's frames", function()
  local lib = write("teamlib.lua", "local M = {}\nfunction M.check(v)\n  if not v then error('no version given', 0) end\nend\nreturn M\n")
  local pb = write("plain.lua", "package.path = " .. string.format("%q", TMP .. "/?.lua;") .. " .. package.path\n"
    .. "local lib = require 'teamlib'\nlib.check(ecsplay.args.version)\n")
  local _, err, rc = run(q(pb))
  T.eq(rc, 1, err)
  T.ok(err:find("ecsplay: no version given\n", 1, true), err)
  T.ok(err:find(lib .. ":3: in function 'teamlib.check'", 1, true), err)
  T.ok(err:find(pb .. ":3: in main chunk", 1, true), err)
  T.ok(not err:find(STDLIB, 1, true) and not err:find("[C]:", 1, true), err)
  -- -v shows every frame
  _, err, rc = run("-v " .. q(pb))
  T.eq(rc, 1, err)
  T.ok(err:find(STDLIB .. "cli/", 1, true), "-v: ecsplay's frames too:\n" .. err)
end)

T.test("cleanup", function()
  os.execute("rm -rf " .. q(TMP))
end)
