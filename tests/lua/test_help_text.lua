-- Error and help text as a new user meets it (issue 11, items 6 and 7): each message from a
-- real `ecsplay` process, with its exit code, and no traceback where the message says it all.
local T = require "harness"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs `ecsplay ARGS` (a shell-quoted string); returns stdout, stderr, exit code.
local function run(args)
  local err_file = os.tmpname()
  local out, rc = T.sh("{ " .. T.bin .. " " .. args .. " 2>" .. err_file .. "; }")
  local f = io.open(err_file, "r")
  local err = f:read("a")
  f:close()
  os.remove(err_file)
  return out, err, rc
end

-- "PATH:LINE" of the playbook's ecsplay.params declaration (where its argument errors point)
local function decl(path)
  local n = 0
  for line in io.lines(path) do
    n = n + 1
    if line:find("ecsplay.params", 1, true) then return path .. ":" .. n end
  end
end

-- The last line on stderr must be exactly `want`, with exit code `code` and no traceback.
local function expect(args, code, want)
  local out, err, rc = run(args)
  T.eq(rc, code, "exit code of ecsplay " .. args .. " (" .. err .. ")")
  T.ok(not err:find("stack traceback", 1, true), "no traceback: " .. err)
  T.eq(err:gsub("\n$", ""):match("[^\n]*$"), want, "the last line")
  return out, err
end

T.test("playbook arguments: unknown (did-you-mean), missing, wrongly typed: exit 2", function()
  expect("--simulate playbooks/canary.lua imgae=api:v3", 2, 'ecsplay: ' .. decl("playbooks/canary.lua") .. ': unknown argument '
    .. '"imgae"; did you mean "image"? (--help after the playbook lists its parameters) [BadInput]')
  expect("--simulate playbooks/canary.lua bake=soon", 2, 'ecsplay: ' .. decl("playbooks/canary.lua") .. ': argument bake: '
    .. 'expected a duration like "90s", "5m" or "1h30m", got string "soon" [BadInput]')
  expect("--simulate playbooks/codedeploy.lua port=80.5", 2, 'ecsplay: ' .. decl("playbooks/codedeploy.lua") .. ': argument '
    .. 'port: expected an integer, got string "80.5" [BadInput]')
  expect("--simulate playbooks/codedeploy.lua metrics=4", 2, 'ecsplay: ' .. decl("playbooks/codedeploy.lua") .. ': argument '
    .. 'metrics: expected a boolean (true/false, yes/no, on/off, 1/0), got string "4" [BadInput]')
  expect("--simulate playbooks/ecs_native.lua strategy=CANARI", 2, 'ecsplay: ' .. decl("playbooks/ecs_native.lua") .. ': '
    .. 'argument strategy: expected one of "CANARY", "LINEAR", "BLUE_GREEN", got string "CANARI"; '
    .. 'did you mean "CANARY"? [BadInput]')
  expect("-e " .. q('ecsplay.params { image = { type = "string", required = true, help = "the image" } }'),
    2, "ecsplay: (command line):1: missing required argument image= (the image) [BadInput]")
end)

T.test("a playbook that declares nothing takes any argument", function()
  local out, err, rc = run("-e " .. q("print(ecsplay.args.anything)") .. " anything=goes")
  T.eq({ out, err, rc }, { "goes\n", "", 0 })
end)

T.test("a converted playbook still takes today's arguments", function()
  local out, err, rc = run("--simulate playbooks/canary.lua image=api:flaky bake=2m alarm=api-5xx-high")
  T.eq(rc, 1, err)
  T.ok(out:find("step 2/4", 1, true), out)
end)

T.test("a misspelt operation, waiter or strategy: exit 2 with a suggestion, no traceback", function()
  expect("--simulate -e " .. q('require("ecsplay.ecs").describe_servics { cluster = "production" }'), 2,
    'ecsplay: (command line):1: ecs has no operation "describe_servics"; did you mean "describe_services"? '
    .. "[UnknownOperation]")
  expect("--simulate -e " .. q('require("ecsplay.ecs").wait.services_stabl {}'), 2,
    'ecsplay: (command line):1: ecs has no waiter "services_stabl"; did you mean "services_stable"? [UnknownWaiter]')
  expect("--simulate -e " .. q('require("ecsplay.rollout").canari {}'), 2,
    'ecsplay: (command line):1: ecsplay.rollout has no strategy "canari"; did you mean "canary"? [UnknownStrategy]')
  expect("--simulate -e " .. q('require("ecsplay.rollout").zzzzzzzz {}'), 2,
    'ecsplay: (command line):1: ecsplay.rollout has no strategy "zzzzzzzz"; expected one of blue_green, '
    .. "canary, codedeploy, ecs_native, linear, rolling [UnknownStrategy]")
end)

T.test("an unknown strategy option gets a suggestion; a bad value is shown with its type", function()
  local base = 'cluster = "production", image = "api:v2", stable = { service = "api", target_group = "api-stable" }, '
    .. 'canary = { service = "api-canary", target_group = "api-canary" }, '
  expect("--simulate -e " .. q('require("ecsplay.rollout").canary { ' .. base .. 'bkae = "5m" }'), 2,
    "ecsplay: (command line):1: rollout.canary: bkae: unknown option; did you mean `bake`? [BadInput]")
  expect("--simulate -e " .. q('require("ecsplay.rollout").canary { ' .. base .. 'bake = true }'), 2,
    'ecsplay: (command line):1: rollout.canary: bake: expected a duration (seconds, or a string like "90s", '
    .. '"5m", "1h30m"), got boolean true [BadInput]')
end)

T.test("FILE.lua --help lists the parameters, runs nothing, needs no credentials: exit 0", function()
  local out, err, rc = run("playbooks/canary.lua --help image=ignored")
  T.eq({ err, rc }, { "", 0 })
  T.ok(out:find("^Canary rollout of api"), out)
  T.ok(out:find("usage: ecsplay [options] playbooks/canary.lua [key=value ...]", 1, true), out)
  T.ok(out:find("\n  name             type      default       help\n", 1, true), out)
  T.ok(out:find("\n  bake             duration  5m            how long each step bakes while the gates measure\n",
    1, true), out)
  T.ok(not out:find("registered", 1, true), "nothing ran: " .. out)
  out, err, rc = run("--simulate playbooks/codedeploy.lua -h")
  T.eq({ err, rc }, { "", 0 })
  T.ok(out:find("\n  port +integer +8080 +the container port"), out)
  T.ok(out:find("\n  metrics +boolean +false +also gate"), out)
end)

T.test("--help of a playbook that declares nothing stops at its first AWS call", function()
  local dir = T.tmpdir()
  local path = dir .. "/nodecl.lua"
  local f = assert(io.open(path, "w"))
  f:write('-- Scales s to 1.\nrequire("ecsplay.ecs").update_service { cluster = "c", service = "s", desiredCount = 1 }\n'
    .. 'print("ran past the call")\n')
  f:close()
  local out, err, rc = run(q(path) .. " --help")
  T.eq({ err, rc }, { "", 0 })
  T.ok(out:find("^Scales s to 1%.\n"), out)
  T.ok(out:find("declares no parameters", 1, true), out)
  T.ok(not out:find("ran past", 1, true), out)
  os.remove(path)
end)

T.test("sim serve --help and sim --help: the options, exit 0", function()
  for _, args in ipairs { "sim serve --help", "sim serve -h", "sim --help", "sim -h" } do
    local out, err, rc = run(args)
    T.eq({ err, rc }, { "", 0 }, args)
    T.ok(out:find("^usage: ecsplay sim serve %[%-%-port N%]"), out)
    T.ok(out:find("\n  --lockstep ", 1, true), out)
  end
  local _, err = expect("sim serve --bogus", 2, "ecsplay: sim serve: unknown argument --bogus (expected --port N, "
    .. "--scenario FILE, --speed X, --lockstep, --no-auth, --iam-policy FILE; --help explains them)")
  T.ok(err ~= "")
end)

T.test("sim serve on a port in use: one line, exit 2", function()
  -- a first server holds a port; the second is refused with one line
  local dir = T.tmpdir()
  local pidfile, outfile = dir .. "/pid", dir .. "/out"
  os.execute("{ " .. T.bin .. " sim serve --port 0 >" .. outfile .. " 2>&1 & echo $! >" .. pidfile .. "; }")
  local port
  for _ = 1, 100 do
    local f = io.open(outfile, "r")
    local text = f and f:read("a") or ""
    if f then f:close() end
    port = text:match("listening on http://127%.0%.0%.1:(%d+)")
    if port then break end
    os.execute("sleep 0.05")
  end
  local pid = io.open(pidfile, "r"):read("l")
  local ok, e = pcall(function()
    T.ok(port, "the first server started")
    local out, err, rc = run("sim serve --port " .. port)
    T.eq({ out, rc }, { "", 2 }, err)
    T.eq(err, "ecsplay: sim serve: cannot listen on 127.0.0.1:" .. port .. ": Failed to bind to port " .. port
      .. ": Address already in use (choose another --port, or --port 0 for a free one) [CannotListen]\n")
  end)
  os.execute("kill " .. pid)
  if not ok then error(e, 0) end
end)

T.test("-e with --help prints the usage", function()
  local out, err, rc = run("-e 'print(1)' --help")
  T.eq({ err, rc }, { "", 0 })
  T.ok(out:find("^usage: ecsplay %[options%] FILE%.lua"), out)
end)
