--[=[
`ecsplay iam-policy FILE.lua [--simulate[=S]] [--account ID] [--region R] [--verify POLICY.json |
--prove] [-v] [key=value ...]`: rehearses the playbook on the simulator and prints the IAM
policy it needs (docs/iam.md). The paths rehearsed, each on a fresh world of scenario S
(default: the built-in world), are cli/iam_paths.lua's: success, rollback, resume (killed
mid-run, then `ecsplay resume`), journal-rollback (killed, then `ecsplay rollback JOURNAL`)
abort (`ecsplay abort RUN` mid-run) and promote (`ecsplay promote RUN` at every wait).
Every call's IAM checks (ecsplay.sim.iam: the action, the resources, roles
passed, condition keys) are recorded and become the policy document, on
standard output; account and region are the IAM policy variables
${aws:PrincipalAccount} and ${aws:RequestedRegion} unless --account/--region
give them.
--verify POLICY.json: every path under that policy (enforced); exit 1 when a call was denied.
--prove: the policy, then every path under it, then every path under it with each one
statement removed (up to the first path denied): a JSON report on standard output, exit 0
when every path passes under the whole policy and each removal is denied, else 1.
]=]
local errors = require "ecsplay.errors"
local core = require "ecsplay.core"
local iam = require "ecsplay.sim.iam"
local exit = require "ecsplay.cli.exit"
local args = require "ecsplay.cli.args"
local json = require "ecsplay.json"
local rehearse = require "ecsplay.cli.rehearse"
local paths = require "ecsplay.cli.iam_paths"

local USAGE = "ecsplay iam-policy FILE.lua [--simulate[=SCENARIO]] [--account ID] [--region R] "
  .. "[--verify POLICY.json | --prove] [-v] [key=value ...]"

local function tmpdir()
  local p = io.popen("mktemp -d -t ecsplay-iam.XXXXXX")
  local d = p and p:read("l")
  if p then p:close() end
  return d
end

local function parse(argv)
  local conf = rehearse.parse(argv, {
    valued = { ["--account"] = "account", ["--region"] = "region", ["--log-format"] = "log_format",
      ["--verify"] = "verify" },
    switches = { ["-v"] = function(c) c.verbose = true end, ["--prove"] = function(c) c.prove = true end },
  })
  if conf.account and not conf.account:match("^%d%d%d%d%d%d%d%d%d%d%d%d$") then
    error(errors.bad_input("--account: expected a 12-digit AWS account id, got " .. conf.account, "--account"), 0)
  end
  if conf.region and not conf.region:match("^[a-z][a-z0-9%-]+$") then
    error(errors.bad_input("--region: expected a region such as us-east-1, got " .. conf.region, "--region"), 0)
  end
  return conf
end

-- How each path ends when it goes as meant (cli/iam_paths.lua).
local EXPECTED = { success = exit.FINISHED, rollback = exit.FAILED, resume = exit.FINISHED,
  ["journal-rollback"] = exit.FINISHED, abort = exit.FAILED, promote = exit.FINISHED }

local function first_line(text) return ((text or ""):gsub("^ecsplay: ", ""):gsub("\n.*", "")) end

-- "path: exit N, ..." for standard error (the policy) or output (--verify).
local function path_line(r)
  if r.skipped then return string.format("%s: skipped (%s)", r.path, r.skipped) end
  local text = string.format("%s: exit %d, %d call(s) denied", r.path, r.code, #r.denials)
  if r.code ~= exit.FINISHED and r.message and r.message ~= "" then
    text = text .. " (" .. first_line(r.message) .. ")"
  end
  if r.note then text = text .. "; note: " .. r.note end
  return text
end

-- A path that did not go as meant: what the policy may lack.
local function unlike(r)
  if r.skipped then return nil end
  if r.note then return r.path .. ": " .. r.note .. ": the calls it did not make are not in the policy" end
  if r.code ~= EXPECTED[r.path] then
    return string.format("%s: exit %d, expected %d (%s): the calls it did not make are not in the policy", r.path,
      r.code, EXPECTED[r.path], first_line(r.message))
  end
end

local function denied_count(results)
  local n = 0
  for _, r in ipairs(results) do n = n + #r.denials end
  return n
end

-- A rehearsal ended by SIGINT/SIGTERM: its exit code (130/143), nothing on standard output.
local function interrupted(results)
  return results.interrupted, "ecsplay: iam-policy: interrupted by signal; no policy written"
end

-- --verify POLICY.json: every path under the policy; exit 1 when a call was denied.
local function verify(results)
  for _, r in ipairs(results) do
    io.write(path_line(r), "\n")
    for _, d in ipairs(r.denials) do
      io.write(string.format("  denied: %s on %s (%s deny)\n", d.action, d.resource, d.how))
    end
  end
  io.flush()
  local denied = denied_count(results)
  if denied > 0 then return exit.FAILED, "ecsplay: iam-policy: the policy denied " .. denied .. " call(s)" end
  return exit.FINISHED, ""
end

local function all_checks(results)
  local checks = {}
  for _, r in ipairs(results) do
    for _, c in ipairs(r.checks) do checks[#checks + 1] = c end
  end
  return checks
end

-- The actions each path needed that no earlier path did (what the path adds to the policy).
local function new_actions(results)
  local seen, out = {}, {}
  for _, r in ipairs(results) do
    local mine = {}
    for _, c in ipairs(r.checks) do
      if not seen[c.action] then seen[c.action] = true mine[#mine + 1] = c.action end
    end
    table.sort(mine)
    out[r.path] = mine
  end
  return out
end

local function list_of(v) return type(v) == "table" and v or { v } end

local function path_report(r)
  return { path = r.path, code = r.code, skipped = r.skipped, note = r.note, abort_taken = r.abort_taken,
    message = r.code ~= exit.FINISHED and first_line(r.message) or nil, denials = json.array(r.denials) }
end

--[[ --prove: the policy from every path (results), then every path under it (each must
     end as it did without a policy, with no call denied), then each statement removed
     in turn (every path up to the first one denied: one must be). ]]
local function prove(opts, conf, results, doc, fresh_dir)
  local ok_all = true
  local added = new_actions(results)
  local report = { playbook = conf.file, policy = doc, paths = json.array() }
  for _, r in ipairs(results) do
    local pr = path_report(r)
    pr.adds = json.array(added[r.path])
    report.paths[#report.paths + 1] = pr
  end
  local policy = iam.check_policy(doc, "generated")
  local under = paths.run_all(opts, conf, { policy = policy, verbose = conf.verbose }, fresh_dir())
  if under.interrupted then return interrupted(under) end
  report.under_policy = json.array()
  for i, r in ipairs(under) do
    local pr = path_report(r)
    pr.expected_code = results[i] and results[i].code
    pr.passed = #r.denials == 0 and r.code == pr.expected_code and (r.skipped == nil) == (results[i].skipped == nil)
    ok_all = ok_all and pr.passed
    report.under_policy[#report.under_policy + 1] = pr
  end
  report.removed = json.array()
  for i, st in ipairs(doc.Statement) do
    local less = { Version = doc.Version, Statement = {} }
    for j, other in ipairs(doc.Statement) do if j ~= i then less.Statement[#less.Statement + 1] = other end end
    -- no statement left: a statement that applies to no action (IAM refuses an empty list)
    if #less.Statement == 0 then less.Statement[1] = { Effect = "Deny", NotAction = "*", Resource = "*" } end
    local rs = paths.run_all(opts, conf, { policy = iam.check_policy(less, "generated"), stop_on_denial = true,
      verbose = conf.verbose }, fresh_dir())
    if rs.interrupted then return interrupted(rs) end
    local entry = { statement = i, actions = json.array(list_of(st.Action)) }
    for _, r in ipairs(rs) do
      if #r.denials > 0 then
        entry.path, entry.denied, entry.code, entry.message = r.path, r.denials[1], r.code, first_line(r.message)
        break
      end
    end
    ok_all = ok_all and entry.denied ~= nil
    report.removed[#report.removed + 1] = entry
  end
  report.proven = ok_all
  io.write(json.encode(report), "\n")
  io.flush()
  if not ok_all then return exit.FAILED, "ecsplay: iam-policy: --prove: not proven (see the report)" end
  return exit.FINISHED, ""
end

local function run(opts, argv)
  local ok, conf = pcall(parse, argv)
  if not ok then return args.usage_error("iam-policy", errors.describe(conf), USAGE) end
  local runnable, why = rehearse.check_file(conf.file)
  if not runnable then return args.usage_error("iam-policy", why) end
  local policy
  if conf.verify then
    if conf.prove then
      return args.usage_error("iam-policy", "give --verify or --prove, not both", USAGE)
    end
    local okp, doc = pcall(iam.load_policy, conf.verify)
    if not okp then return exit.BAD_INPUT, "ecsplay: iam-policy: --verify: " .. errors.describe(doc) end
    policy = doc
  end
  local policy_opts = { account = conf.account, region = conf.region }
  conf.region = nil -- the rehearsal's region is the simulator's
  conf.simulate = conf.simulate or ""
  conf.verbosity = conf.verbose and 0 or -1
  local base = tmpdir()
  if not base then return exit.FAILED, "ecsplay: iam-policy: cannot make a temporary folder for the journals" end
  local made = 0
  local function fresh_dir()
    made = made + 1
    return base .. "/" .. made
  end
  local okr, code, message = pcall(function()
    local results = paths.run_all(opts, conf, { policy = policy, verbose = conf.verbose }, fresh_dir())
    if results.interrupted then return interrupted(results) end
    if policy then return verify(results) end
    local success = results[1]
    -- bad input (a misspelt or missing argument): its message says it all
    if success.code == exit.BAD_INPUT then return success.code, success.message end
    if success.code ~= exit.FINISHED then
      return success.code, (success.message or "")
        .. "\necsplay: iam-policy: the success path failed; no policy written"
    end
    local checks = all_checks(results)
    local doc = iam.policy_document(checks, policy_opts)
    if #doc.Statement == 0 then
      -- IAM refuses a policy without a statement: say so instead of printing one
      return exit.FINISHED, "ecsplay: iam-policy: the playbook made no AWS call on any path: it needs no IAM "
        .. "permission; no policy written"
    end
    if conf.prove then return prove(opts, conf, results, doc, fresh_dir) end
    io.write(iam.encode(doc), "\n")
    io.flush()
    local names = {}
    for _, r in ipairs(results) do
      io.stderr:write("ecsplay: iam-policy: ", path_line(r), "\n")
      local why = unlike(r)
      if why then io.stderr:write("ecsplay: iam-policy: note: ", why, "\n") end
      if not r.skipped then names[#names + 1] = r.path end
    end
    io.stderr:write(string.format("ecsplay: iam-policy: %d statement(s) from %d authorization check(s) on the "
      .. "%s paths (ecsplay %s)\n", #doc.Statement, #checks, table.concat(names, ", "), core.version))
    return exit.FINISHED, ""
  end)
  os.execute("rm -rf '" .. base .. "'")
  if not okr then return exit.FAILED, "ecsplay: iam-policy: " .. errors.describe(code) end
  return code, message
end

return { summary = "rehearse a playbook and print the least-privilege IAM policy it needs", usage = USAGE, run = run }
