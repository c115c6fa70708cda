--[[
IAM in the simulator: which IAM actions and resources each API call needs, a
small identity-based policy evaluator, and the answer AWS gives when a policy
does not allow a call (docs/iam.md; the sources are cited in docs/simulator.md).

  iam.checks(world, service, op, input) → { {action=, resource=, context={key=value}}, ... }
      what AWS authorizes for one call: the operation's own action on each
      resource it names ("*" for actions without resource-level permissions),
      plus iam:PassRole for a role the call passes (task and execution roles,
      a load balancer's infrastructure role) and ecs:TagResource for tags on
      a task definition being registered
  iam.check_policy(doc, name) → doc (a policy table; raises kind `scenario`
      naming the statement and field)
  iam.load_policy(path) → doc (a JSON file)
  iam.evaluate(doc, check, vars) → "allow" | "explicit" (an explicit Deny) | "implicit"
  iam.authorize(sim, service, op, input, kind) → nil | {code=, status=, message=}:
      records the checks (sim.iam_recorder(service, op, checks)) and, when the
      scenario has a policy (scenario iam = { policy = }), evaluates them;
      denials are counted in sim.iam_denials
  iam.policy_document(checks, opts) → a policy table from recorded checks
      (opts.account / opts.region: literal values, else IAM policy variables)
  iam.encode(doc) → the JSON text (two-space indent, sorted keys; a list marked with
      json.array is a JSON array even when empty)

Evaluation follows AWS's identity-policy logic for one principal: an explicit
Deny wins, else an Allow that matches, else an implicit deny. Action and
NotAction, Resource and NotResource take `*` and `?` wildcards (actions match
case-insensitively, resources case-sensitively); the variables
${aws:PrincipalAccount} and ${aws:RequestedRegion} (and ${*} ${?} ${$}) are
replaced in Resource and in condition values. Conditions: the String*, Arn*
operators (with IfExists) on the keys the checks carry; several keys or
operators all hold, several values of one key any.
]]
local errors = require "ecsplay.errors"
local json = require "ecsplay.json"
local strings = require "ecsplay.util.strings"

local M = {}

-- The IAM service prefix of each simulated service (CloudWatch's is not its signing name).
M.PREFIX = { ecs = "ecs", elbv2 = "elasticloadbalancing", codedeploy = "codedeploy",
  cloudwatch = "cloudwatch", sts = "sts" }

-- Calls AWS answers without asking IAM (sts:GetCallerIdentity needs no permission).
M.FREE = { ["sts:GetCallerIdentity"] = true }

M.VARIABLES = { account = "${aws:PrincipalAccount}", region = "${aws:RequestedRegion}" }

local function principal(world) return string.format("arn:aws:iam::%s:user/simulator", world.account) end
M.principal = principal

-- The name a reference ends with; "" for one that ends in "/" or is empty (a request may name
-- anything: authorizing it must never raise, the operation answers what AWS answers).
local function last(s) return strings.last_segment(tostring(s or "")) or "" end
local function is_arn(s) return type(s) == "string" and s:sub(1, 4) == "arn:" end

-- ECS names may be given as names or ARNs; AWS authorizes the ARN.
local function ecs_cluster(world, ref)
  if is_arn(ref) then return ref end
  return world:arn("ecs", "cluster/" .. tostring(ref or "default"))
end

local function ecs_service(world, cluster, ref)
  if is_arn(ref) and ref:find(":service/[^/]+/") then return ref end
  return world:arn("ecs", "service/" .. last(ecs_cluster(world, cluster)) .. "/" .. last(ref))
end

local function one(resource, context) return { resource = resource, context = context } end

local function service_checks(world, cluster, names)
  local ctx = { ["ecs:cluster"] = ecs_cluster(world, cluster) }
  local out = {}
  for _, s in ipairs(names) do out[#out + 1] = one(ecs_service(world, cluster, s), ctx) end
  return out
end

local function group_arn(world, app, group)
  if not (app and group) then return "*" end
  return world:arn("codedeploy", "deploymentgroup:" .. tostring(app) .. "/" .. tostring(group))
end

-- The deployment group of deployment `id` (read from the world, as AWS resolves it).
local function deployment_group(world, id)
  local st = world.state.codedeploy
  local d = st and st.deployments and st.deployments[id]
  if not d then return "*" end
  return group_arn(world, d.app, d.group_name)
end

local function config_arn(world, name) return world:arn("codedeploy", "deploymentconfig:" .. tostring(name)) end

--[[ A service deployment is authorized on its service (with ecs:cluster) and on itself
     (with ecs:cluster and ecs:service): both resource types are required in the SAR. ]]
local function service_deployment_checks(world, arn, out)
  local cluster, svc = tostring(arn):match(":service%-deployment/([^/]+)/([^/]+)/")
  if not cluster then
    out[#out + 1] = one(arn)
    return out
  end
  local service_arn = ecs_service(world, cluster, svc)
  local ctx = { ["ecs:cluster"] = ecs_cluster(world, cluster) }
  out[#out + 1] = one(service_arn, ctx)
  out[#out + 1] = one(arn, { ["ecs:cluster"] = ctx["ecs:cluster"], ["ecs:service"] = service_arn })
  return out
end

-- The ARN the revision being registered in `family` will have.
local function next_revision(world, family)
  local st = world.state.ecs
  local f = st and st.families and st.families[family]
  return world:arn("ecs", string.format("task-definition/%s:%d", tostring(family), (f and f.latest or 0) + 1))
end

--[[ The resources of each operation that supports resource-level permissions
     (the Service Authorization Reference's "Resource types" column, cited in
     docs/simulator.md). Every other operation is authorized on "*". ]]
local RESOURCES = {
  ecs = {
    DescribeServices = function(w, i) return service_checks(w, i.cluster, i.services or {}) end,
    UpdateService = function(w, i) return service_checks(w, i.cluster, { i.service }) end,
    CreateService = function(w, i) return service_checks(w, i.cluster, { i.serviceName }) end,
    DeleteService = function(w, i) return service_checks(w, i.cluster, { i.service }) end,
    DescribeServiceDeployments = function(w, i)
      local out = {}
      for _, a in ipairs(i.serviceDeploymentArns or {}) do service_deployment_checks(w, a, out) end
      return out
    end,
    ContinueServiceDeployment = function(w, i) return service_deployment_checks(w, i.serviceDeploymentArn, {}) end,
    StopServiceDeployment = function(w, i) return service_deployment_checks(w, i.serviceDeploymentArn, {}) end,
    RegisterTaskDefinition = function(w, i) return { one(next_revision(w, i.family)) } end,
  },
  elbv2 = {
    ModifyRule = function(_, i) return { one(i.RuleArn) } end,
    ModifyListener = function(_, i) return { one(i.ListenerArn) } end,
  },
  codedeploy = {
    GetDeploymentGroup = function(w, i) return { one(group_arn(w, i.applicationName, i.deploymentGroupName)) } end,
    ListDeployments = function(w, i) return { one(group_arn(w, i.applicationName, i.deploymentGroupName)) } end,
    CreateDeployment = function(w, i) return { one(group_arn(w, i.applicationName, i.deploymentGroupName)) } end,
    GetDeployment = function(w, i) return { one(deployment_group(w, i.deploymentId)) } end,
    BatchGetDeployments = function(w, i)
      local out = {}
      for _, id in ipairs(i.deploymentIds or {}) do out[#out + 1] = one(deployment_group(w, id)) end
      return out
    end,
    GetDeploymentConfig = function(w, i) return { one(config_arn(w, i.deploymentConfigName)) } end,
    CreateDeploymentConfig = function(w, i) return { one(config_arn(w, i.deploymentConfigName)) } end,
  },
  cloudwatch = {
    DescribeAlarms = function(w, i)
      local names = i.AlarmNames or {}
      if #names == 0 then return { one(w:arn("cloudwatch", "alarm:*")) } end
      local out = {}
      for _, n in ipairs(names) do out[#out + 1] = one(w:arn("cloudwatch", "alarm:" .. tostring(n))) end
      return out
    end,
  },
}

local function pass_role(list, role, to_service)
  if type(role) == "string" and role ~= "" then
    list[#list + 1] = { action = "iam:PassRole", resource = role,
      context = { ["iam:PassedToService"] = to_service } }
  end
end

-- What a call needs besides its own action: roles it passes, tags it creates.
local EXTRA = {
  ecs = {
    RegisterTaskDefinition = function(w, i, list)
      pass_role(list, i.taskRoleArn, "ecs-tasks.amazonaws.com")
      pass_role(list, i.executionRoleArn, "ecs-tasks.amazonaws.com")
      if i.tags and #i.tags > 0 then
        list[#list + 1] = { action = "ecs:TagResource", resource = next_revision(w, i.family),
          context = { ["ecs:CreateAction"] = "RegisterTaskDefinition" } }
      end
    end,
    UpdateService = function(_, i, list)
      for _, lb in ipairs(i.loadBalancers or {}) do
        pass_role(list, lb.advancedConfiguration and lb.advancedConfiguration.roleArn, "ecs.amazonaws.com")
      end
    end,
  },
}

function M.checks(world, service, op, input)
  local action = (M.PREFIX[service] or service) .. ":" .. op
  if M.FREE[action] then return {} end
  local by_service = RESOURCES[service]
  local fn = by_service and by_service[op]
  local list = {}
  for _, r in ipairs(fn and fn(world, input or {}) or { one("*") }) do
    list[#list + 1] = { action = action, resource = r.resource or "*", context = r.context }
  end
  local extra = EXTRA[service] and EXTRA[service][op]
  if extra then extra(world, input or {}, list) end
  return list
end

-- Matching ----------------------------------------------------------------

-- A policy glob (`*` any run, `?` one character) as an anchored Lua pattern.
local function glob_pattern(glob)
  local p = glob:gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".")
  return "^" .. p .. "$"
end

local function glob_match(glob, s, ignore_case)
  if ignore_case then glob, s = glob:lower(), s:lower() end
  return s:find(glob_pattern(glob)) ~= nil
end
M.glob_match = glob_match

-- Policy variables in a Resource or condition value; nil when one cannot be resolved
-- (AWS: the element then matches nothing).
local function substitute(s, vars)
  local unresolved = false
  local out = s:gsub("%${([^}]*)}", function(name)
    if name == "*" then return "*" elseif name == "?" then return "?" elseif name == "$" then return "$" end
    local v = vars[name:lower()]
    if v == nil then unresolved = true return "" end
    return v
  end)
  if unresolved then return nil end
  return out
end

local function list_of(v) return type(v) == "table" and v or { v } end

local function any_match(globs, s, ignore_case, vars)
  for _, g in ipairs(list_of(globs)) do
    local pattern = vars and substitute(g, vars) or g
    if pattern and glob_match(pattern, s, ignore_case) then return true end
  end
  return false
end

-- Condition operators: base name → compare(policy_value, context_value).
local OPERATORS = {
  StringEquals = function(p, v) return p == v end,
  StringEqualsIgnoreCase = function(p, v) return p:lower() == v:lower() end,
  StringLike = function(p, v) return glob_match(p, v) end,
  ArnEquals = function(p, v) return p == v end,
  ArnLike = function(p, v) return glob_match(p, v) end,
}
local NEGATED = { StringNotEquals = "StringEquals", StringNotEqualsIgnoreCase = "StringEqualsIgnoreCase",
  StringNotLike = "StringLike", ArnNotEquals = "ArnEquals", ArnNotLike = "ArnLike" }

local function operator(name)
  local base, if_exists = name:gsub("IfExists$", "")
  if OPERATORS[base] then return OPERATORS[base], false, if_exists > 0 end
  if NEGATED[base] then return OPERATORS[NEGATED[base]], true, if_exists > 0 end
  return nil
end

local function context_value(context, key)
  key = key:lower()
  for k, v in pairs(context or {}) do if k:lower() == key then return v end end
  return nil
end

local function condition_holds(cond, context, vars)
  for op_name, keys in pairs(cond or {}) do
    local compare, negated, if_exists = operator(op_name)
    for key, values in pairs(keys) do
      local v = context_value(context, key)
      if v == nil then
        -- a missing key: positive operators fail, negated ones (and ...IfExists) hold
        if not (negated or if_exists) then return false end
      else
        local hit = false
        for _, p in ipairs(list_of(values)) do
          local pv = substitute(tostring(p), vars)
          if pv and compare(pv, v) then hit = true break end
        end
        if hit == negated then return false end
      end
    end
  end
  return true
end

local function statement_matches(st, check, vars)
  if st.Action then
    if not any_match(st.Action, check.action, true) then return false end
  elseif any_match(st.NotAction, check.action, true) then
    return false
  end
  if st.Resource then
    if not any_match(st.Resource, check.resource, false, vars) then return false end
  elseif any_match(st.NotResource, check.resource, false, vars) then
    return false
  end
  return condition_holds(st.Condition, check.context, vars)
end

function M.evaluate(doc, check, vars)
  local allowed = false
  for _, st in ipairs(doc.Statement) do
    if statement_matches(st, check, vars) then
      if st.Effect == "Deny" then return "explicit" end
      allowed = true
    end
  end
  return allowed and "allow" or "implicit"
end

-- Checking a policy document ------------------------------------------------

local STATEMENT_FIELDS = { Sid = true, Effect = true, Action = true, NotAction = true, Resource = true,
  NotResource = true, Condition = true }

local function strings_field(fail, st, field, where)
  local v = st[field]
  if v == nil then return end
  if type(v) == "string" then return end
  if type(v) == "table" and #v > 0 then
    for i, s in ipairs(v) do
      if type(s) ~= "string" then fail(string.format("%s.%s[%d]: expected a string", where, field, i)) end
    end
    return
  end
  fail(string.format("%s.%s: expected a string or a non-empty list of strings", where, field))
end

-- name: the policy's file, said first in a message (nil: a policy table, the caller says where).
function M.check_policy(doc, name)
  local function fail(msg)
    error(errors.new("scenario", { code = "InvalidPolicy", file = name, field = "iam.policy",
      message = name and string.format("%s: %s", name, msg) or msg }), 0)
  end
  if type(doc) ~= "table" or (#doc > 0 and doc.Statement == nil) then
    fail("expected a policy document (a JSON object with Version and Statement), got "
      .. (type(doc) == "table" and "a list" or strings.describe_value(doc)))
  end
  if doc.Version ~= "2012-10-17" and doc.Version ~= "2008-10-17" then
    fail("Version: expected \"2012-10-17\", got " .. strings.describe_value(doc.Version))
  end
  local list = doc.Statement
  if type(list) ~= "table" then fail("Statement: expected a statement or a list of statements") end
  if list.Effect then list = { list } end
  if #list == 0 then fail("Statement: expected at least one statement") end
  for i, st in ipairs(list) do
    local where = string.format("Statement[%d]", i)
    if type(st) ~= "table" then fail(where .. ": expected an object") end
    for k in pairs(st) do
      if not STATEMENT_FIELDS[k] then
        fail(string.format("%s: unknown field %q%s%s", where, tostring(k),
          strings.did_you_mean(tostring(k), STATEMENT_FIELDS),
          k == "Principal" and " (an identity-based policy names no Principal)" or ""))
      end
    end
    if st.Effect ~= "Allow" and st.Effect ~= "Deny" then
      fail(where .. ".Effect: expected \"Allow\" or \"Deny\", got " .. strings.describe_value(st.Effect))
    end
    if (st.Action == nil) == (st.NotAction == nil) then fail(where .. ": give exactly one of Action and NotAction") end
    if (st.Resource == nil) == (st.NotResource == nil) then
      fail(where .. ": give exactly one of Resource and NotResource")
    end
    for _, f in ipairs({ "Action", "NotAction", "Resource", "NotResource" }) do strings_field(fail, st, f, where) end
    if st.Condition ~= nil then
      if type(st.Condition) ~= "table" then fail(where .. ".Condition: expected an object") end
      for op_name, keys in pairs(st.Condition) do
        if not operator(tostring(op_name)) then
          fail(string.format("%s.Condition: operator %q is not supported by the simulator (String*, Arn*)",
            where, tostring(op_name)))
        end
        if type(keys) ~= "table" then fail(string.format("%s.Condition.%s: expected an object", where, op_name)) end
      end
    end
  end
  return { Version = doc.Version, Statement = list }
end

-- The largest policy file read (a simulator bound: AWS's own quotas are far below it).
M.MAX_POLICY_BYTES = 1024 * 1024

function M.load_policy(path)
  local function fail(msg)
    error(errors.new("scenario", { code = "InvalidPolicy", file = path, field = "iam.policy", message = msg }), 0)
  end
  local f, err = io.open(path, "rb")
  if not f then
    -- io.open's message starts with the path already
    fail(string.format("cannot read IAM policy %s: %s", path, (tostring(err):gsub("^.-: ", ""))))
  end
  local text, rerr = f:read(M.MAX_POLICY_BYTES + 1)
  f:close()
  if text == nil and rerr then fail(string.format("cannot read IAM policy %s: %s", path, tostring(rerr))) end
  text = text or ""
  if #text > M.MAX_POLICY_BYTES then
    fail(string.format("%s: too large: at most %d bytes (1 MiB)", path, M.MAX_POLICY_BYTES))
  end
  local doc, derr = json.decode(text)
  if doc == nil then fail(string.format("%s: not JSON: %s", path, tostring(derr))) end
  return M.check_policy(doc, path)
end

-- Enforcing -----------------------------------------------------------------

local function denied(world, check, how, kind)
  local action = check.action
  local message = string.format("User: %s is not authorized to perform: %s on resource: %s %s", principal(world),
    action, check.resource, how == "explicit" and "with an explicit deny in an identity-based policy"
      or ("because no identity-based policy allows the " .. action .. " action"))
  if kind == "query" then return { code = "AccessDenied", status = 403, message = message } end
  return { code = "AccessDeniedException", status = 400, message = message, query_code = "AccessDenied" }
end

function M.authorize(sim, service, op, input, kind, world)
  world = world or sim.world -- the request's world (one per Region and account)
  local list = M.checks(world, service, op, input)
  if sim.iam_recorder then sim.iam_recorder(service, op, list) end
  local iam = sim.scenario and sim.scenario.iam
  if not (iam and iam.policy) then return nil end
  local vars = { ["aws:principalaccount"] = world.account, ["aws:requestedregion"] = world.region }
  for _, check in ipairs(list) do
    local how = M.evaluate(iam.policy, check, vars)
    if how ~= "allow" then
      local answer = denied(world, check, how, kind)
      sim.iam_denials = sim.iam_denials or {}
      sim.iam_denials[#sim.iam_denials + 1] = { action = check.action, resource = check.resource, how = how,
        code = answer.code }
      return answer
    end
  end
  return nil
end

-- Writing a policy from recorded checks --------------------------------------

-- Identifiers that change with every run, as wildcards: a policy must hold next time too.
local RUN_SPECIFIC = {
  { "(:task%-definition/[^:]+:)%d+$", "%1*" },
  { "(:service%-deployment/[^/]+/[^/]+/).+$", "%1*" },
  { "(:task%-set/[^/]+/[^/]+/).+$", "%1*" },
  { "(:task/[^/]+/).+$", "%1*" },
}

function M.generalize(resource, opts)
  if resource == "*" then return resource end
  for _, r in ipairs(RUN_SPECIFIC) do resource = resource:gsub(r[1], r[2]) end
  local account = opts.account or M.VARIABLES.account
  local region = opts.region or M.VARIABLES.region
  local partition, svc, reg, acct, rest = resource:match("^arn:([^:]+):([^:]+):([^:]*):([^:]*):(.*)$")
  if not partition then return resource end
  return string.format("arn:%s:%s:%s:%s:%s", partition, svc, reg ~= "" and region or "",
    acct ~= "" and account or "", rest)
end

local function condition_of(context, opts)
  if not context or next(context) == nil then return nil end
  local cond = {}
  local keys = {}
  for k in pairs(context) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = context[k]
    local op_name = is_arn(v) and "ArnEquals" or "StringEquals"
    cond[op_name] = cond[op_name] or {}
    cond[op_name][k] = is_arn(v) and M.generalize(v, opts) or v
  end
  return cond
end

local function sorted(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  return list
end

-- The metatable json.array puts on a list, so that an empty one is written [] (IAM refuses
-- `"Statement": {}` and `"Resource": {}`: an object where it wants a list).
local ARRAY_MT = getmetatable(json.array {})
local function is_array(v) return getmetatable(v) == ARRAY_MT end

local function one_or_list(list) return #list == 1 and list[1] or json.array(list) end

--[[ checks: every recorded check. Statements: one per (condition, resource set), each
     listing the actions that need exactly those resources under that condition. ]]
function M.policy_document(checks, opts)
  opts = opts or {}
  -- action + condition → set of resources
  local by_action = {}
  for _, c in ipairs(checks) do
    local cond = condition_of(c.context, opts)
    local ckey = cond and M.encode(cond) or ""
    local key = c.action .. "\0" .. ckey
    local e = by_action[key]
    if not e then
      e = { action = c.action, cond = cond, ckey = ckey, resources = {} }
      by_action[key] = e
    end
    e.resources[M.generalize(c.resource, opts)] = true
  end
  -- resources + condition → set of actions
  local groups = {}
  for _, e in pairs(by_action) do
    if e.resources["*"] then e.resources = { ["*"] = true } end
    local rlist = sorted(e.resources)
    local key = table.concat(rlist, "\n") .. "\0" .. e.ckey
    local g = groups[key]
    if not g then
      g = { resources = rlist, cond = e.cond, actions = {} }
      groups[key] = g
    end
    g.actions[e.action] = true
  end
  local statements = {}
  for _, key in ipairs(sorted(groups)) do
    local g = groups[key]
    local actions = sorted(g.actions)
    statements[#statements + 1] = { Effect = "Allow", Action = one_or_list(actions),
      Resource = one_or_list(g.resources), Condition = g.cond, first = actions[1] }
  end
  table.sort(statements, function(a, b)
    if a.first ~= b.first then return a.first < b.first end
    return M.encode(a.Resource) < M.encode(b.Resource)
  end)
  for _, st in ipairs(statements) do st.first = nil end
  return { Version = "2012-10-17", Statement = json.array(statements) }
end

-- JSON with sorted keys and two-space indentation (stable output for diffs and tests).
local function encode(v, indent, out)
  local t = type(v)
  if t == "table" then
    local pad, inner = string.rep("  ", indent), string.rep("  ", indent + 1)
    if #v > 0 then
      out[#out + 1] = "[\n"
      for i, x in ipairs(v) do
        out[#out + 1] = inner
        encode(x, indent + 1, out)
        out[#out + 1] = i < #v and ",\n" or "\n"
      end
      out[#out + 1] = pad .. "]"
    else
      local keys = sorted(v)
      if #keys == 0 then out[#out + 1] = is_array(v) and "[]" or "{}" return end
      out[#out + 1] = "{\n"
      for i, k in ipairs(keys) do
        out[#out + 1] = inner .. json.encode(k) .. ": "
        encode(v[k], indent + 1, out)
        out[#out + 1] = i < #keys and ",\n" or "\n"
      end
      out[#out + 1] = pad .. "}"
    end
  else
    out[#out + 1] = json.encode(v)
  end
end

function M.encode(v)
  local out = {}
  encode(v, 0, out)
  return table.concat(out)
end

return M
