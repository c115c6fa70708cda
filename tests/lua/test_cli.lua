-- The `ecsplay` command line as a user meets it (CLI.md, docs/cli.md): each test runs the
-- real binary in a child process, from a folder other than the project, with a clean
-- environment holding known AWS secrets, and checks the exit code, where the text went and
-- what it says. Every run's stdout + stderr is checked for the secrets, for signatures and
-- for crashes; every run has a time limit, so a hang fails instead of stalling `make check`.
local T = require "harness"
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local Stub = require "aws_stub_client"

local function trim(s) return (s:gsub("%s+$", "")) end
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function plain(s) return (s:gsub("%p", "%%%0")) end

local ROOT = trim(T.sh("cd " .. q(here .. "/../..") .. " && pwd -P"))
-- the binary under test: ECSPLAY_BIN (the sanitizer build sets it), else the build tree's
local BIN = os.getenv("ECSPLAY_BIN") or (ROOT .. "/ecsplay")
if BIN:sub(1, 1) ~= "/" then BIN = ROOT .. "/" .. BIN end
-- the folder as the host sees it (/proc/self/exe: no symlinks, no "./")
local BIN_DIR = trim(T.sh("cd " .. q(BIN:match("^(.*)/[^/]*$")) .. " && pwd -P"))
BIN = BIN_DIR .. "/" .. BIN:match("[^/]*$")
local TMP = T.tmpdir()
local ELSEWHERE = TMP .. "/elsewhere"     -- the working folder of every run
local PLAY = TMP .. "/play"               -- playbooks and their team modules

local SECRET = "cliSECRETwJalrXUtnFEMI/K7MDENG+bPxRfiCYzz"
local TOKEN = "cliTOKENIQoJb3JpZ2luX2VjEMr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ"
local FILE_SECRET = "fileSECRETbPxRfiCYEXAMPLEKEYwJalrXUtn"
local SECRETS = { SECRET, TOKEN, FILE_SECRET }

local function write(path, text)
  os.execute("mkdir -p " .. q(path:match("^(.*)/[^/]*$")))
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local function read(path)
  local f = io.open(path, "r")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

os.execute("mkdir -p " .. q(ELSEWHERE) .. " " .. q(PLAY))

local runs = 0

--[[ run{ args = "shell words", env = {NAME = value | false}, cwd = dir } → out, err, rc
     The environment is built from scratch (env -i): PATH, HOME (an empty folder), no IMDS,
     static credentials with the known secrets, a region; env = {X = false} removes one. ]]
local function run(o)
  local env = { PATH = os.getenv("PATH"), HOME = TMP .. "/home", AWS_EC2_METADATA_DISABLED = "true",
    AWS_ACCESS_KEY_ID = "AKIDCLITEST", AWS_SECRET_ACCESS_KEY = SECRET, AWS_SESSION_TOKEN = TOKEN,
    AWS_REGION = "us-east-1", ECSPLAY_RUNS_DIR = TMP .. "/runs",
    ASAN_OPTIONS = os.getenv("ASAN_OPTIONS"), UBSAN_OPTIONS = os.getenv("UBSAN_OPTIONS") }
  for k, v in pairs(o.env or {}) do env[k] = v or nil end
  local parts = { "cd", q(o.cwd or ELSEWHERE), "&&", "exec", "timeout", "-k", "5", "120", "env", "-i" }
  local keys = {}
  for k in pairs(env) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = q(k .. "=" .. env[k]) end
  parts[#parts + 1] = q(o.bin or BIN)
  parts[#parts + 1] = o.args or ""
  local outf, errf = TMP .. "/stdout", TMP .. "/stderr"
  local cmd = table.concat(parts, " ") .. " >" .. q(outf) .. " 2>" .. q(errf) .. " </dev/null"
  local ok, how, rc = os.execute(cmd)
  if how ~= "exit" then rc = 128 + (rc or 0) end
  local out, err = read(outf), read(errf)
  runs = runs + 1
  local all = out .. err
  local label = "`ecsplay " .. (o.args or "") .. "`"
  T.ok(rc ~= 124 and rc ~= 137, label .. " hung (killed by timeout)")
  T.ok(rc < 128, label .. " crashed with signal " .. (rc - 128) .. ":\n" .. all)
  T.ok(not all:find("AddressSanitizer", 1, true) and not all:find("runtime error:", 1, true),
    label .. " sanitizer report:\n" .. all)
  for _, s in ipairs(SECRETS) do
    T.ok(not all:find(s, 1, true), label .. " printed a secret (" .. s:sub(1, 10) .. "...):\n" .. all)
    T.ok(not all:find(s:sub(1, 24), 1, true), label .. " printed part of a secret:\n" .. all)
  end
  T.ok(not all:find("Signature=%x"), label .. " printed a signature:\n" .. all)
  T.ok(not all:find(string.rep("%x", 64)), label .. " printed a 64-hex-digit value (signature?):\n" .. all)
  return out, err, rc
end

local function has(s, want, what)
  T.ok(s:find(want, 1, true), (what or "output") .. " lacks " .. string.format("%q", want)
    .. ":\n" .. s)
end

local function lacks(s, bad, what)
  T.ok(not s:find(bad, 1, true), (what or "output") .. " has " .. string.format("%q", bad)
    .. ":\n" .. s)
end

---------------------------------------------------------------------------------------------
-- --version, --help, exit codes
---------------------------------------------------------------------------------------------

T.test("--version prints the version of include/ecsplay.h and Lua; --help the usage; exit 0", function()
  local out, err, rc = run { args = "--version" }
  T.eq(rc, 0)
  T.eq(err, "")
  local want = read(ROOT .. "/include/ecsplay.h"):match('#define ECSPLAY_VERSION "([^"]+)"')
  T.ok(want, "version in ecsplay.h")
  T.ok(out:match("^ecsplay " .. plain(want) .. " %(Lua 5%.4%.%d+%)\n$"), out)
  out, err, rc = run { args = "--help" }
  T.eq(rc, 0)
  T.eq(err, "")
  for _, w in ipairs { "usage: ecsplay", "-e 'LUA CODE'", "sim serve", "--simulate", "--region",
    "--profile", "--endpoint-url", "--log-format text|json", "-v, -q", "exit codes", "130/143" } do
    has(out, w, "--help")
  end
  local out2, _, rc2 = run { args = "-h" }
  T.eq(rc2, 0)
  T.eq(out2, out, "-h is --help")
end)

T.test("exit codes: 0 finished, 1 failed (rollbacks ran), 2 bad input, 3 rollback failed", function()
  local _, _, rc = run { args = "-e " .. q("local x = 1") }
  T.eq(rc, 0)
  write(PLAY .. "/rolled.lua", table.concat({
    "ecsplay.on_abort(function() print('undo ran') end, 'undo')",
    "error('deploy broke')",
  }, "\n"))
  local out, err
  out, err, rc = run { args = q(PLAY .. "/rolled.lua") }
  T.eq(rc, 1, err)
  has(out .. err, "undo ran")
  has(err, "rolled.lua:2: deploy broke")
  write(PLAY .. "/rollbroke.lua", table.concat({
    "ecsplay.on_abort(function() error('cannot restore weights') end, 'restore weights')",
    "error('deploy broke')",
  }, "\n"))
  out, err, rc = run { args = q(PLAY .. "/rollbroke.lua") }
  T.eq(rc, 3, err)
  has(err, "rollback FAILED")
  has(err, "restore weights FAILED: ")
  has(err, "cannot restore weights")
  _, err, rc = run { args = "-e " .. q("local = 1") }
  T.eq(rc, 2, err)
end)

---------------------------------------------------------------------------------------------
-- bad usage: exit 2, one clear message on stderr naming what was wrong, nothing on stdout
---------------------------------------------------------------------------------------------

local function bad_usage(args, wants, opts)
  local out, err, rc = run { args = args, env = opts and opts.env }
  T.eq(rc, 2, "`ecsplay " .. args .. "` exit code; stderr:\n" .. err)
  T.eq(out, "", "`ecsplay " .. args .. "` wrote to stdout")
  for _, w in ipairs(wants) do has(err, w, "stderr of `ecsplay " .. args .. "`") end
  lacks(err, "stack traceback", "stderr of `ecsplay " .. args .. "`")
  lacks(err, "(null)", "stderr of `ecsplay " .. args .. "`")
  return err
end

T.test("bad arguments: not key=value, unknown option, option without value, no playbook", function()
  write(PLAY .. "/ok.lua", "print('should not run')\n")
  local pb = q(PLAY .. "/ok.lua")
  bad_usage(pb .. " notkeyvalue", { "ecsplay: expected key=value after the playbook: notkeyvalue", "usage:" })
  bad_usage(pb .. " =value", { "expected key=value after the playbook: =value" })
  bad_usage(pb .. " a=1 stray", { "expected key=value after the playbook: stray" })
  bad_usage("--bogus " .. pb, { "ecsplay: unknown option: --bogus", "usage:" })
  bad_usage("-x " .. pb, { "unknown option: -x" })
  bad_usage("--region", { "option needs a value: --region" })
  bad_usage("--endpoint-url", { "option needs a value: --endpoint-url" })
  bad_usage("image=x " .. pb, { "key=value arguments come after the playbook: image=x" })
  bad_usage("", { "no playbook given", "usage:" })
  bad_usage("-v", { "no playbook given" })
  bad_usage("sim bogus", { "unknown sim command", "bogus" })
  bad_usage("sim serve --port nope", { "--port: expected a number from 0 to 65535" })
  bad_usage("sim serve --frobnicate", { "sim serve: unknown argument --frobnicate" })
end)

T.test("--log-format xml is bad usage naming the option, the value and the choices", function()
  bad_usage("--log-format xml -e " .. q("print('ran')"), { "--log-format", "xml", "text or json" })
  bad_usage("--log-format=yaml " .. q(PLAY .. "/ok.lua"), { "--log-format", "yaml", "text or json" })
  local out, err, rc = run { args = "--log-format json -e " .. q("ecsplay.log.info('hi', {n = 1})") }
  T.eq(rc, 0, err)
  T.ok(out:match('^{.*"message":"hi".*}\n$'), "one JSON object: " .. out)
end)

T.test("-e without its chunk; -e with a syntax error names (command line):LINE", function()
  bad_usage("-e", { "-e needs a chunk of Lua" })
  bad_usage("--simulate -e", { "-e needs a chunk of Lua" })
  bad_usage("-e " .. q("x = 1\nlocal y = = 2"), { "ecsplay: (command line):2:", "near '='" })
end)

T.test("a missing playbook, a directory, an unreadable file: exit 2 naming the path", function()
  bad_usage(q(TMP .. "/no/such/playbook.lua"), { "cannot read playbook", TMP .. "/no/such/playbook.lua" })
  bad_usage(q(PLAY), { "cannot read", PLAY, "directory" })
  local locked = write(PLAY .. "/locked.lua", "print('secret plan')\n")
  os.execute("chmod 000 " .. q(locked))
  local readable = io.open(locked, "r")
  if readable then readable:close() else    -- root reads everything; the check needs a user
    bad_usage(q(locked), { "cannot read playbook", locked })
  end
  os.execute("chmod 644 " .. q(locked))
end)

T.test("a syntax error in a playbook: exit 2, file:line and what Lua expected", function()
  local pb = write(PLAY .. "/syntax.lua", "local a = 1\nlocal b = {\n  x = 1,\n  y = = 2,\n}\n")
  bad_usage(q(pb), { "ecsplay: " .. pb .. ":4:", "unexpected symbol near '='" })
  pb = write(PLAY .. "/unclosed.lua", "if true then\n  print(1)\n")
  bad_usage(q(pb), { pb .. ":3:", "'end' expected (to close 'if' at line 1)" })
end)

T.test("a missing scenario file for --simulate is bad input naming the file", function()
  bad_usage("--simulate=" .. q(TMP .. "/nope-scenario.lua") .. " -e " .. q("print(1)"),
    { TMP .. "/nope-scenario.lua" })
end)

---------------------------------------------------------------------------------------------
-- require: modules and where they are searched
---------------------------------------------------------------------------------------------

T.test("an unknown module names the module, the playbook line and every path searched", function()
  local epath = TMP .. "/teamlibs"
  local pb = write(PLAY .. "/usesnope.lua", "local x = 1\nlocal m = require 'nope_not_here'\n")
  local out, err, rc = run { args = q(pb), env = { ECSPLAY_PATH = epath,
    LUA_PATH_5_4 = TMP .. "/rocks/?.lua;;" } }
  T.eq(rc, 2, err) -- bad input: nothing was changed
  T.eq(out, "")
  has(err, "ecsplay: " .. pb .. ":2: module 'nope_not_here' not found")
  has(err, "no file '" .. BIN_DIR .. "/stdlib-lua/nope_not_here.lua'", "stdlib searched")
  has(err, "no file '" .. PLAY .. "/nope_not_here.lua'", "playbook folder searched")
  has(err, "no file '" .. epath .. "/nope_not_here.lua'", "ECSPLAY_PATH searched")
  has(err, "no file '" .. TMP .. "/rocks/nope_not_here.lua'", "LUA_PATH_5_4 searched")
  has(err, "stack traceback:")
end)

T.test("require finds team modules beside the playbook, in ECSPLAY_PATH, LUA_PATH_5_4, LUA_CPATH_5_4", function()
  local ep1, ep2, pat = TMP .. "/ep1", TMP .. "/ep2", TMP .. "/pat"
  local lp, cp = TMP .. "/luapath", TMP .. "/cpath"
  write(PLAY .. "/team_beside.lua", "return { from = 'beside the playbook' }\n")
  write(PLAY .. "/team_pkg/init.lua", "return { from = 'package beside the playbook' }\n")
  write(ep1 .. "/team_ep1.lua", "return { from = 'ECSPLAY_PATH 1' }\n")
  write(ep2 .. "/team_ep2/init.lua", "return { from = 'ECSPLAY_PATH 2 package' }\n")
  write(pat .. "/team_pat.lua", "return { from = 'ECSPLAY_PATH pattern' }\n")
  write(lp .. "/team_lp.lua", "return { from = 'LUA_PATH_5_4' }\n")
  -- the same name in several places: the playbook's folder, then ECSPLAY_PATH, then LUA_PATH
  write(PLAY .. "/dup_a.lua", "return { from = 'beside' }\n")
  write(ep1 .. "/dup_a.lua", "return { from = 'ep1' }\n")
  write(lp .. "/dup_a.lua", "return { from = 'luapath' }\n")
  write(ep1 .. "/dup_b.lua", "return { from = 'ep1' }\n")
  write(lp .. "/dup_b.lua", "return { from = 'luapath' }\n")
  -- a team file named like a stdlib module does not replace it
  write(PLAY .. "/ecsplay/json.lua", "return { from = 'shadow' }\n")
  local pb = write(PLAY .. "/uses_team.lua", table.concat({
    "for _, name in ipairs { 'team_beside', 'team_pkg', 'team_ep1', 'team_ep2', 'team_pat',",
    "    'team_lp', 'dup_a', 'dup_b' } do",
    "  print(name .. ': ' .. require(name).from)",
    "end",
    "print('json: ' .. (require('ecsplay.json').from or 'stdlib'))",
    "if ecsplay.args.cmod then print('cmod: ' .. require('team_cmod').hello()) end",
  }, "\n"))
  -- a C module through LUA_CPATH_5_4 (the binary exports the Lua API)
  write(cp .. "/team_cmod.c", table.concat({
    "#include <lua.h>", "#include <lauxlib.h>",
    "static int hello(lua_State *L) { lua_pushliteral(L, \"C module\"); return 1; }",
    "int luaopen_team_cmod(lua_State *L) {",
    "  lua_newtable(L); lua_pushcfunction(L, hello); lua_setfield(L, -2, \"hello\"); return 1; }",
  }, "\n"))
  local cc_out, cc_rc = T.sh("cc -shared -fPIC -o " .. q(cp .. "/team_cmod.so") .. " " .. q(cp .. "/team_cmod.c")
    .. " $(pkg-config --cflags lua5.4)")
  T.eq(cc_rc, 0, "compiling the C module: " .. cc_out)
  local out, err, rc = run { args = q(pb) .. " cmod=1", env = {
    ECSPLAY_PATH = ep1 .. ":" .. ep2 .. ":" .. pat .. "/?.lua",
    LUA_PATH_5_4 = lp .. "/?.lua;;", LUA_CPATH_5_4 = cp .. "/?.so;;" } }
  T.eq(rc, 0, err)
  T.eq(out, table.concat({
    "team_beside: beside the playbook", "team_pkg: package beside the playbook",
    "team_ep1: ECSPLAY_PATH 1", "team_ep2: ECSPLAY_PATH 2 package", "team_pat: ECSPLAY_PATH pattern",
    "team_lp: LUA_PATH_5_4", "dup_a: beside", "dup_b: ep1", "json: stdlib", "cmod: C module", "" }, "\n"))
  -- without the variables, only the playbook's folder (and the stdlib) remain
  out, err, rc = run { args = q(pb) }
  T.eq(rc, 2)
  has(out, "team_pkg: package beside the playbook")
  has(err, "module 'team_ep1' not found")
end)

T.test("a relative playbook path works from its own folder and from elsewhere", function()
  write(PLAY .. "/rel/helper_mod.lua", "return 'helper found'\n")
  write(PLAY .. "/rel/rel.lua", "print((require 'helper_mod'))\n")
  local out, err, rc = run { args = "rel/rel.lua", cwd = PLAY }
  T.eq(rc, 0, err)
  T.eq(out, "helper found\n")
  out, err, rc = run { args = "../play/rel/rel.lua", cwd = ELSEWHERE }
  T.eq(rc, 0, err)
  T.eq(out, "helper found\n")
end)

---------------------------------------------------------------------------------------------
-- arguments, -e, --simulate
---------------------------------------------------------------------------------------------

T.test("key=value arguments land in ecsplay.args as strings (file and -e)", function()
  local pb = write(PLAY .. "/args.lua", table.concat({
    "local keys = {}",
    "for k in pairs(ecsplay.args) do keys[#keys + 1] = k end",
    "table.sort(keys)",
    "for _, k in ipairs(keys) do print(k .. '=[' .. ecsplay.args[k] .. '] ' .. type(ecsplay.args[k])) end",
  }, "\n"))
  local out, err, rc = run { args = q(pb) .. " image=repo/api:v2 count=3 empty= eq=a=b " .. q("msg=two words") }
  T.eq(rc, 0, err)
  T.eq(out, "count=[3] string\nempty=[] string\neq=[a=b] string\nimage=[repo/api:v2] string\n"
    .. "msg=[two words] string\n")
  out, err, rc = run { args = "-e " .. q("print(ecsplay.args.k, ecsplay.args.other)") .. " k=v other=w" }
  T.eq(rc, 0, err)
  T.eq(out, "v\tw\n")
  out, err, rc = run { args = "-e " .. q("print(next(ecsplay.args))") }
  T.eq(out, "nil\n", "no arguments: an empty table")
end)

T.test("-e with --simulate runs against the in-process simulator", function()
  local chunk = table.concat({
    "local ecs = require 'ecsplay.ecs'",
    "local arns = ecs.list_clusters {}.clusterArns",
    "print(ecsplay.simulating(), #arns > 0, arns[1]:match('^arn:aws:ecs:') ~= nil, ecsplay.args.k)",
    "print(ecsplay.simulated)",
  }, "\n")
  local out, err, rc = run { args = "--simulate -e " .. q(chunk) .. " k=v" }
  T.eq(rc, 0, err)
  T.eq(out, "true\ttrue\ttrue\tv\ntrue\n", "ecsplay.simulating(), and the older field")
  out, err, rc = run { args = "--simulate=" .. q(ROOT .. "/tests/scenarios/empty.lua") .. " -e "
    .. q("print(#require('ecsplay.ecs').list_clusters{}.clusterArns)") }
  T.eq(rc, 0, err)
  T.eq(out, "0\n", "the empty scenario has no clusters")
  out, err, rc = run { args = "-e " .. q("print(ecsplay.simulating(), ecsplay.simulated)") }
  T.eq(out, "false\tfalse\n")
end)

---------------------------------------------------------------------------------------------
-- failures at run time: file:line, message, traceback
---------------------------------------------------------------------------------------------

T.test("a failing playbook prints file:line, the message and a traceback through team code", function()
  write(PLAY .. "/teamfail.lua", table.concat({
    "local M = {}",
    "function M.boom(cfg)",
    "  return cfg.field",
    "end",
    "return M",
  }, "\n"))
  local pb = write(PLAY .. "/fails.lua", "local t = require 'teamfail'\nlocal x = 2\nt.boom(nil)\n")
  local out, err, rc = run { args = q(pb) }
  T.eq(rc, 1)
  T.eq(out, "")
  has(err, "ecsplay: " .. PLAY .. "/teamfail.lua:3: attempt to index a nil value (local 'cfg')")
  has(err, "stack traceback:")
  has(err, "teamfail.lua:3: in function 'teamfail.boom'")
  has(err, "fails.lua:3: in main chunk")
  pb = write(PLAY .. "/errtable.lua", "local x = 1\nerror({ code = 'GateFailed', message = 'p99 too high' })\n")
  out, err, rc = run { args = q(pb) }
  T.eq(rc, 1)
  has(err, "errtable.lua:2: GateFailed: p99 too high")
end)

---------------------------------------------------------------------------------------------
-- credentials and config files
---------------------------------------------------------------------------------------------

local CALL_PB
T.test("a malformed or unreadable credentials/config file: exit 2 naming the file and line", function()
  CALL_PB = write(PLAY .. "/call.lua", "local ecs = require 'ecsplay.ecs'\nlocal n = 1\nprint(#ecs.list_clusters{}.clusterArns)\n")
  local nokeys = { AWS_ACCESS_KEY_ID = false, AWS_SECRET_ACCESS_KEY = false, AWS_SESSION_TOKEN = false,
    AWS_CONFIG_FILE = TMP .. "/none-config" }
  local creds = write(TMP .. "/files/credentials", "[default]\naws_access_key_id = AKIDFILE\n"
    .. "aws_secret_access_key " .. FILE_SECRET .. "\n")
  nokeys.AWS_SHARED_CREDENTIALS_FILE = creds
  local err = bad_usage(q(CALL_PB), { "ecsplay: " .. CALL_PB .. ":3:", "InvalidConfigFile",
    creds .. " line 3" }, { env = nokeys })
  nokeys.AWS_SHARED_CREDENTIALS_FILE = TMP .. "/files"  -- a directory: cannot be read
  bad_usage(q(CALL_PB), { "cannot read " .. TMP .. "/files" }, { env = nokeys })
  local cfg = write(TMP .. "/files/config", "[default]\nregion = us-east-1\n[profile broken\n")
  nokeys.AWS_SHARED_CREDENTIALS_FILE = TMP .. "/none-creds"
  nokeys.AWS_CONFIG_FILE = cfg
  bad_usage(q(CALL_PB), { cfg .. " line 3" }, { env = nokeys })
  local locked = write(TMP .. "/files/locked-creds", "[default]\naws_access_key_id = AKIDFILE\n"
    .. "aws_secret_access_key = " .. FILE_SECRET .. "\n")
  os.execute("chmod 000 " .. q(locked))
  local readable = io.open(locked, "r")
  if readable then readable:close() else
    nokeys.AWS_CONFIG_FILE = TMP .. "/none-config"
    nokeys.AWS_SHARED_CREDENTIALS_FILE = locked
    bad_usage(q(CALL_PB), { locked }, { env = nokeys })
  end
  os.execute("chmod 644 " .. q(locked))
  -- no region anywhere: bad input naming every place to set one
  bad_usage(q(CALL_PB), { CALL_PB .. ":3:", "NoRegion", "--region", "AWS_REGION" },
    { env = { AWS_REGION = false, AWS_CONFIG_FILE = TMP .. "/none-config" } })
  -- a profile that does not exist
  bad_usage("--profile ghost " .. q(CALL_PB), { "ghost" },
    { env = { AWS_ACCESS_KEY_ID = false, AWS_SECRET_ACCESS_KEY = false, AWS_SESSION_TOKEN = false,
      AWS_CONFIG_FILE = cfg:gsub("config$", "none") } })
end)

---------------------------------------------------------------------------------------------
-- against a server: --region / --endpoint-url, bad answers
---------------------------------------------------------------------------------------------

local stub = Stub.start()

local function json_ok(body, extra)
  local r = { status = 200, body = body, times = 5,
    headers = { ["Content-Type"] = "application/x-amz-json-1.1", ["x-amzn-RequestId"] = "req-cli-1" } }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

T.test("--region and --endpoint-url reach the AWS client (over AWS_REGION / AWS_ENDPOINT_URL)", function()
  stub:reset()
  stub:script { json_ok('{"clusterArns":["arn:aws:ecs:eu-central-1:1:cluster/a","arn:aws:ecs:eu-central-1:1:cluster/b"]}') }
  local chunk = "print((require('ecsplay.aws').region())) print(#require('ecsplay.ecs').list_clusters{}.clusterArns)"
  local out, err, rc = run { args = "--region eu-central-1 --endpoint-url " .. q(stub.base) .. " -e " .. q(chunk),
    env = { AWS_ENDPOINT_URL = "http://127.0.0.1:1" } }
  T.eq(rc, 0, err)
  T.eq(out, "eu-central-1\n2\n")
  local reqs = stub:requests()
  T.eq(#reqs, 1, "one request reached the stub")
  T.eq(reqs[1].path, "/")
  T.eq(reqs[1].headers.host, "127.0.0.1:" .. stub.port)
  T.eq(reqs[1].headers["x-amz-target"], "AmazonEC2ContainerServiceV20141113.ListClusters")
  T.ok(reqs[1].headers.authorization:find("Credential=AKIDCLITEST/%d+/eu%-central%-1/ecs/aws4_request"),
    reqs[1].headers.authorization)
  T.eq(reqs[1].headers["x-amz-security-token"], TOKEN, "the session token went to the server only")
  -- the inline forms, and the profile's region
  stub:reset()
  stub:script { json_ok('{"clusterArns":[]}') }
  -- (--profile skips the environment's keys, as the SDKs do: the profile has its own)
  local cfg = write(TMP .. "/files/profiles", "[profile team]\nregion = sa-east-1\n")
  local creds = write(TMP .. "/files/team-creds", "[team]\naws_access_key_id = AKIDTEAM\n"
    .. "aws_secret_access_key = " .. FILE_SECRET .. "\n")
  out, err, rc = run { args = "--profile=team --endpoint-url=" .. q(stub.base) .. " -e " .. q(chunk),
    env = { AWS_REGION = false, AWS_CONFIG_FILE = cfg, AWS_SHARED_CREDENTIALS_FILE = creds } }
  T.eq(rc, 0, err)
  T.eq(out, "sa-east-1\n0\n")
  T.ok(stub:requests()[1].headers.authorization:find("Credential=AKIDTEAM/%d+/sa%-east%-1/ecs/"),
    "signed with the profile's keys and region")
  -- without --endpoint-url, AWS_ENDPOINT_URL_ECS from the environment
  stub:reset()
  stub:script { json_ok('{"clusterArns":[]}') }
  out, err, rc = run { args = "--region=ap-south-1 -e " .. q(chunk),
    env = { AWS_ENDPOINT_URL = "http://127.0.0.1:1", AWS_ENDPOINT_URL_ECS = stub.base } }
  T.eq(rc, 0, err)
  T.eq(out, "ap-south-1\n0\n")
  T.eq(#stub:requests(), 1)
end)

-- Runs CALL-style playbook `body` (the call on line 3) against the stub scripted with
-- `responses`; returns stderr and rc.
local function against_stub(name, body, responses, extra_args, env)
  stub:reset()
  stub:script(responses)
  local pb = write(PLAY .. "/" .. name .. ".lua", "local ecs = require 'ecsplay.ecs'\n"
    .. "local elbv2 = require 'ecsplay.elbv2'\n" .. body .. "\n")
  local e = { AWS_MAX_ATTEMPTS = "1" }
  for k, v in pairs(env or {}) do e[k] = v end
  local out, err, rc = run { args = (extra_args or "") .. " --endpoint-url " .. q(stub.base) .. " " .. q(pb), env = e }
  return out, err, rc, pb
end

T.test("malformed JSON, malformed XML, wrong content type, huge body: exit 1, file:line, clear error", function()
  local out, err, rc, pb = against_stub("badjson", "print(ecs.list_clusters{})",
    { json_ok('{"clusterArns": [') })
  T.eq(rc, 1, err)
  T.eq(out, "")
  has(err, "ecsplay: " .. pb .. ":3: ecs ListClusters: InvalidResponse")
  has(err, "JSON")
  has(err, stub.base)
  lacks(err, "stack traceback", "structured errors print no trace without -v")

  out, err, rc, pb = against_stub("badxml", "print(elbv2.describe_target_groups{})",
    { { status = 200, times = 5, headers = { ["Content-Type"] = "text/xml" },
        body = "<DescribeTargetGroupsResponse><DescribeTargetGroupsResult><TargetGroups><member>" } })
  T.eq(rc, 1, err)
  has(err, pb .. ":3: elbv2 DescribeTargetGroups: InvalidResponse")
  has(err, "XML")

  out, err, rc, pb = against_stub("htmlpage", "print(ecs.list_clusters{})",
    { { status = 200, times = 5, headers = { ["Content-Type"] = "text/html" }, body = "<html>captive portal</html>" } })
  T.eq(rc, 1, err)
  has(err, pb .. ":3: ecs ListClusters: InvalidResponse") -- any Content-Type is read (as botocore); the body is not JSON
  has(err, "text/html")

  -- bigger than the default 64 MiB limit: refused, not buffered without end
  out, err, rc, pb = against_stub("huge", "print(ecs.list_clusters{})",
    { { status = 200, headers = { ["Content-Type"] = "application/x-amz-json-1.1" }, fill = 64 * 1024 * 1024 + 1 } })
  T.eq(rc, 1, err)
  has(err, pb .. ":3: ecs ListClusters: ResponseTooLarge")
end)

T.test("an AWS error names file:line, service, operation, code, status and request id", function()
  local _, err, rc, pb = against_stub("awserr", "ecs.describe_services{ cluster = 'prod', services = { 'api' } }",
    { { status = 400, times = 5, headers = { ["Content-Type"] = "application/x-amz-json-1.1",
      ["x-amzn-RequestId"] = "req-cli-42" },
      body = '{"__type":"ClusterNotFoundException","message":"Cluster not found."}' } })
  T.ok(rc == 1 or rc == 2, "failed (nothing changed): " .. rc)
  has(err, "ecsplay: " .. pb .. ":3: ecs DescribeServices: ClusterNotFoundException (400): "
    .. "Cluster not found. [request req-cli-42]")
  -- a refused connection is a transport error with the URL, not a crash
  local out
  out, err, rc = run { args = "--endpoint-url http://127.0.0.1:1 " .. q(CALL_PB), env = { AWS_MAX_ATTEMPTS = "1" } }
  T.eq(rc, 1, err)
  has(err, CALL_PB .. ":3: ecs ListClusters: ConnectionError")
  has(err, "http://127.0.0.1:1")
end)

T.test("-v and --log-format json runs of failing calls leak no secret either", function()
  local out, err, rc = against_stub("verbose", "print(#ecs.list_clusters{}.clusterArns)\necs.list_services{ cluster = 'x' }",
    { json_ok('{"clusterArns":["a"]}', { times = 1 }),
      { status = 403, headers = { ["Content-Type"] = "application/x-amz-json-1.1" },
        body = '{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}' } },
    "-v --log-format json")
  T.eq(rc, 1, err)
  has(out, '"event":"print","message":"1"', "print() is a JSON event in JSON mode")
  has(err, "UnrecognizedClientException")
  has(err, "stack traceback", "-v shows the trace")
  -- the secrets really were used: the stub saw the token (so the checks above could fail)
  local reqs = stub:requests()
  T.eq(reqs[1].headers["x-amz-security-token"], TOKEN)
  out, err, rc = run { args = "-v -e " .. q("local ecs = require 'ecsplay.ecs'\n"
    .. "local ok, e = pcall(ecs.list_clusters, {})\nprint(tostring(e))\n"
    .. "print(require('ecsplay.json').encode(e))\nerror(e)"),
    env = { AWS_ENDPOINT_URL = "http://127.0.0.1:1", AWS_MAX_ATTEMPTS = "2" } }
  T.eq(rc, 1, err)
  has(out, "ConnectionError")
end)

T.test("every run was checked for secrets, signatures, crashes and hangs", function()
  T.ok(runs >= 50, "runs checked: " .. runs)
end)

T.test("cleanup", function()
  stub:stop()
  os.execute("chmod -R u+rwX " .. q(TMP) .. " && rm -rf " .. q(TMP))
end)
