-- ecsplay.sim.iam: the checks a call needs and the policy evaluator (docs/iam.md). The
-- end-to-end proofs (every shipped playbook under its own policy, a statement removed,
-- boto3's view of AccessDenied) are in tests/py/test_plan_iam.py.
local T = require "harness"
local iam = require "ecsplay.sim.iam"
local World = require "ecsplay.sim.world"

local world = World.new {}
local vars = { ["aws:principalaccount"] = world.account, ["aws:requestedregion"] = world.region }
local function policy(statements) return iam.check_policy({ Version = "2012-10-17", Statement = statements }) end
local function decide(doc, check) return iam.evaluate(doc, check, vars) end

local SVC = "arn:aws:ecs:us-east-1:123456789012:service/production/api"

T.test("service actions name the service and the ecs:cluster condition", function()
  local c = iam.checks(world, "ecs", "UpdateService", { cluster = "production", service = "api" })
  T.eq(c, { { action = "ecs:UpdateService", resource = SVC,
    context = { ["ecs:cluster"] = "arn:aws:ecs:us-east-1:123456789012:cluster/production" } } })
  T.eq(iam.checks(world, "elbv2", "DescribeRules", {})[1].resource, "*")
  T.eq(iam.checks(world, "sts", "GetCallerIdentity", {}), {})
end)

T.test("roles in a task definition are passed to ecs-tasks.amazonaws.com", function()
  local c = iam.checks(world, "ecs", "RegisterTaskDefinition", { family = "api",
    taskRoleArn = "arn:aws:iam::123456789012:role/task", executionRoleArn = "arn:aws:iam::123456789012:role/exec",
    tags = { { key = "k", value = "v" } } })
  T.eq(#c, 4)
  T.eq(c[2], { action = "iam:PassRole", resource = "arn:aws:iam::123456789012:role/task",
    context = { ["iam:PassedToService"] = "ecs-tasks.amazonaws.com" } })
  T.eq(c[4].action, "ecs:TagResource")
  T.eq(c[4].resource, "arn:aws:ecs:us-east-1:123456789012:task-definition/api:1")
  local doc = iam.policy_document(c, {})
  local text = iam.encode(doc)
  T.ok(text:find('"iam:PassedToService": "ecs-tasks.amazonaws.com"', 1, true), text)
  T.ok(text:find("task-definition/api:*", 1, true), text)
  for _, check in ipairs(c) do T.eq(decide(doc, check), "allow", check.action) end
end)

T.test("explicit deny wins; wildcards; NotAction; no match is an implicit deny", function()
  local check = { action = "ecs:UpdateService", resource = SVC }
  T.eq(decide(policy { { Effect = "Allow", Action = "ecs:*", Resource = "*" } }, check), "allow")
  T.eq(decide(policy { { Effect = "Allow", Action = "ECS:update?ervice", Resource = "arn:aws:ecs:*:*:service/production/*" } }, check), "allow")
  T.eq(decide(policy { { Effect = "Allow", Action = "ecs:*", Resource = "*" },
    { Effect = "Deny", Action = "ecs:UpdateService", Resource = SVC } }, check), "explicit")
  T.eq(decide(policy { { Effect = "Allow", NotAction = "ecs:UpdateService", Resource = "*" } }, check), "implicit")
  T.eq(decide(policy { { Effect = "Allow", Action = "ecs:UpdateService", NotResource = SVC } }, check), "implicit")
  T.eq(decide(policy { { Effect = "Allow", Action = "ecs:DescribeServices", Resource = "*" } }, check), "implicit")
end)

T.test("conditions and policy variables", function()
  local check = { action = "ecs:UpdateService", resource = SVC,
    context = { ["ecs:cluster"] = "arn:aws:ecs:us-east-1:123456789012:cluster/production" } }
  local function st(cond) return policy { { Effect = "Allow", Action = "ecs:UpdateService",
    Resource = "arn:aws:ecs:${aws:RequestedRegion}:${aws:PrincipalAccount}:service/production/api", Condition = cond } } end
  T.eq(decide(st { ArnEquals = { ["ecs:cluster"] = "arn:aws:ecs:${aws:RequestedRegion}:${aws:PrincipalAccount}:cluster/production" } }, check), "allow")
  T.eq(decide(st { ArnEquals = { ["ecs:cluster"] = "arn:aws:ecs:us-east-1:123456789012:cluster/staging" } }, check), "implicit")
  T.eq(decide(st { StringLike = { ["ECS:Cluster"] = { "x", "*/production" } } }, check), "allow")
  T.eq(decide(st { StringEquals = { ["iam:PassedToService"] = "ecs.amazonaws.com" } }, check), "implicit")
  T.eq(decide(st { StringNotEquals = { ["iam:PassedToService"] = "ecs.amazonaws.com" } }, check), "allow")
  T.eq(decide(st { StringEqualsIfExists = { ["iam:PassedToService"] = "ecs.amazonaws.com" } }, check), "allow")
  -- an unknown variable matches nothing
  T.eq(decide(policy { { Effect = "Allow", Action = "*", Resource = "arn:aws:ecs:${aws:nope}:*" } }, check), "implicit")
end)

T.test("a bad policy names the statement and field", function()
  T.raises(function() policy { { Effect = "allow", Action = "*", Resource = "*" } } end, "Statement%[1%]%.Effect")
  T.raises(function() policy { { Effect = "Allow", Action = "*" } } end, "Resource and NotResource")
  T.raises(function() policy { { Effect = "Allow", Action = "*", Resource = "*", Principal = "*" } } end, "no Principal")
  T.raises(function() policy { { Effect = "Allow", Action = "*", Resource = "*", Condition = { NumericLessThan = {} } } } end,
    "not supported")
  T.raises(function() iam.check_policy({ Version = "2020", Statement = {} }, "p.json") end, "p.json: Version")
end)

T.test("run-specific ids become wildcards; account and region variables or literals", function()
  T.eq(iam.generalize("arn:aws:ecs:us-east-1:123456789012:task-definition/api:7", {}),
    "arn:aws:ecs:${aws:RequestedRegion}:${aws:PrincipalAccount}:task-definition/api:*")
  T.eq(iam.generalize("arn:aws:iam::123456789012:role/r", { account = "111122223333" }), "arn:aws:iam::111122223333:role/r")
  T.eq(iam.generalize("arn:aws:ecs:us-east-1:1:service-deployment/c/s/abc", { account = "2", region = "eu-west-1" }),
    "arn:aws:ecs:eu-west-1:2:service-deployment/c/s/*")
end)

------------------------------------------------------------------ what AWS authorizes (SAR)

T.test("service deployments are authorized on the service and on the deployment (SAR: both required)", function()
  local dep = "arn:aws:ecs:us-east-1:123456789012:service-deployment/production/api/abc123"
  local cluster = "arn:aws:ecs:us-east-1:123456789012:cluster/production"
  for _, op in ipairs({ "ContinueServiceDeployment", "StopServiceDeployment" }) do
    local c = iam.checks(world, "ecs", op, { serviceDeploymentArn = dep })
    T.eq(c, {
      { action = "ecs:" .. op, resource = SVC, context = { ["ecs:cluster"] = cluster } },
      { action = "ecs:" .. op, resource = dep, context = { ["ecs:cluster"] = cluster, ["ecs:service"] = SVC } },
    }, op)
  end
  T.eq(#iam.checks(world, "ecs", "DescribeServiceDeployments", { serviceDeploymentArns = { dep, dep } }), 4)
end)

T.test("RegisterTaskDefinition names the revision it makes; StopDeployment and GetDeploymentTarget take *", function()
  T.eq(iam.checks(world, "ecs", "RegisterTaskDefinition", { family = "web" })[1].resource,
    "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1")
  T.eq(iam.checks(world, "codedeploy", "StopDeployment", { deploymentId = "d-1" })[1].resource, "*")
  T.eq(iam.checks(world, "codedeploy", "GetDeploymentTarget", { deploymentId = "d-1", targetId = "t" })[1].resource,
    "*")
  T.eq(iam.checks(world, "codedeploy", "GetDeploymentGroup", { applicationName = "a", deploymentGroupName = "g" })[1]
    .resource, "arn:aws:codedeploy:us-east-1:123456789012:deploymentgroup:a/g")
end)

------------------------------------------------------------------ a bad policy file

local dir = T.tmpdir()
local function write(name, text)
  local f = assert(io.open(dir .. "/" .. name, "wb"))
  f:write(text)
  f:close()
  return dir .. "/" .. name
end

T.test("a policy that is not a document, or has no statement, is refused naming the file", function()
  T.raises(function() iam.load_policy(write("list.json", "[1, 2]")) end,
    "list%.json: expected a policy document.-got a list")
  T.raises(function() iam.load_policy(write("none.json", '{"Version":"2012-10-17","Statement":[]}')) end,
    "none%.json: Statement: expected at least one statement")
  T.raises(function() iam.load_policy(write("text.json", "Version: 1")) end, "text%.json: not JSON")
  T.raises(function() iam.load_policy(dir .. "/missing.json") end,
    "cannot read IAM policy .-missing%.json: No such file")
  T.raises(function() iam.load_policy(dir) end, "cannot read IAM policy")
  T.raises(function() iam.load_policy(write("big.json", string.rep(" ", iam.MAX_POLICY_BYTES + 1))) end,
    "too large: at most 1048576 bytes")
  local e = T.raises(function() iam.load_policy(dir .. "/missing.json") end)
  T.eq({ e.kind, e.field }, { "scenario", "iam.policy" })
end)

-- The scenario key: every mistake stops the run before anything happens, exit 2, naming the
-- scenario's file and line, the field and the policy file.
T.test("scenario iam = { policy = } refuses a bad policy file with file, line and field, exit 2", function()
  write("ok.json", '{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}')
  write("shape.json", '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:*"}]}')
  local cases = {
    { "return {\n  iam = { policy = \"missing.json\" },\n}\n",
      "s%.lua:2: iam%.policy: cannot read IAM policy .-missing%.json: No such file" },
    { "return { iam = { policy = \"text.json\" } }\n", "s%.lua:1: iam%.policy: .-text%.json: not JSON" },
    { "return { iam = { policy = \"shape.json\" } }\n",
      "s%.lua:1: iam%.policy: .-shape%.json: Statement%[1%]: give exactly one of Resource and NotResource" },
    { "return { iam = { policy = { Version = \"2012-10-17\", Statement = { { Effect = \"Allow\", Action = \"*\", "
      .. "Resource = \"*\", Principal = \"*\" } } } } }\n",
      "s%.lua:1: iam%.policy: Statement%[1%]: unknown field \"Principal\"" },
    { "return { iam = { policy = 7 } }\n", "iam%.policy: expected a policy file name or a policy table, got number 7" },
    { "return { iam = { polcy = \"ok.json\" } }\n", "iam%.polcy: unknown field \"polcy\"; did you mean \"policy\"%?" },
  }
  for _, c in ipairs(cases) do
    write("s.lua", c[1])
    local out, rc = T.sh(T.bin .. " --simulate=" .. dir .. "/s.lua playbooks/rolling.lua")
    T.eq(rc, 2, out)
    T.ok(out:find(c[2]), "expected " .. c[2] .. " in:\n" .. out)
    T.ok(not out:find("traceback", 1, true), out)
  end
  -- the good file next to the scenario, by a relative name: the run goes on under it
  write("s.lua", "return { iam = { policy = \"ok.json\" } }\n")
  local out, rc = T.sh(T.bin .. " --simulate=" .. dir .. "/s.lua -q playbooks/rolling.lua bake=0")
  T.eq(rc, 0, out)
  os.execute("rm -rf '" .. dir .. "'")
end)

T.test("an empty list is written [] in a policy (IAM refuses \"Statement\": {} and \"Resource\": {})", function()
  local json = require "ecsplay.json"
  local empty = iam.policy_document({}, {})
  T.eq(iam.encode(empty), '{\n  "Statement": [],\n  "Version": "2012-10-17"\n}')
  T.eq(json.encode(empty.Statement), "[]")
  T.eq(iam.encode { Resource = json.array {}, Condition = {} }, '{\n  "Condition": {},\n  "Resource": []\n}')
  -- lists of several stay lists through both encoders; one value stays a string
  local two = iam.policy_document({ { action = "ecs:UpdateService", resource = SVC },
    { action = "ecs:DescribeServices", resource = SVC } }, {})
  local decoded = json.decode(iam.encode(two))
  T.eq(decoded.Statement[1].Action, { "ecs:DescribeServices", "ecs:UpdateService" })
  T.eq(decoded.Statement[1].Resource,
    (SVC:gsub("us%-east%-1:123456789012", "${aws:RequestedRegion}:${aws:PrincipalAccount}")))
  T.eq(json.decode(json.encode(two)).Statement[1].Action, { "ecs:DescribeServices", "ecs:UpdateService" })
end)

-- Every string an operation's input can hold set to `value`, every list one element long
-- (structures to a depth of four): what a request may name, however odd.
local function odd_input(m, shape, value, depth)
  if depth > 4 or shape == nil then return nil end
  if shape.type == "string" then return value end
  if shape.type == "list" then
    local v = odd_input(m, m.shapes[shape.member.shape], value, depth + 1)
    return v ~= nil and { v } or {}
  end
  if shape.type == "structure" then
    local out = {}
    for name, member in pairs(shape.members or {}) do
      out[name] = odd_input(m, m.shapes[member.shape], value, depth + 1)
    end
    return out
  end
  return nil
end

T.test("no request can make authorizing raise: empty, odd and half ARNs in every operation's input", function()
  local model = require "ecsplay.aws.model"
  local doc = policy { { Effect = "Allow", Action = "*",
    Resource = "arn:aws:*:${aws:RequestedRegion}:${aws:PrincipalAccount}:*",
    Condition = { StringLike = { ["ecs:cluster"] = "*/${aws:PrincipalAccount}" } } } }
  local sim = { scenario = { iam = { policy = doc } }, world = world }
  local values = { "", "/", "//", "a/", "arn:", "arn:aws:ecs:us-east-1:123456789012:service/",
    "arn:aws:ecs:us-east-1:123456789012:service//", "arn:aws:ecs:us-east-1:123456789012:cluster/",
    "arn:aws:ecs:us-east-1:123456789012:service-deployment///", "%", "${aws:x}", "*?" }
  local n = 0
  for _, service in ipairs({ "ecs", "elbv2", "codedeploy", "cloudwatch", "sts" }) do
    local m = model.load(service)
    for _, op in ipairs(model.operation_names(m)) do
      for _, v in ipairs(values) do
        local input = odd_input(m, model.input_shape(m, op), v, 0) or {}
        local ok, err = pcall(iam.authorize, sim, service, op, input, "json", world)
        T.ok(ok, string.format("%s %s with %q: %s", service, op, v, tostring(err)))
        n = n + 1
      end
    end
  end
  T.ok(n > 500, n)
  -- an empty service name is authorized on the ARN it stands for (the cluster's, ending in "/")
  T.eq(iam.checks(world, "ecs", "DescribeServices", { cluster = "production", services = { "" } })[1].resource,
    "arn:aws:ecs:us-east-1:123456789012:service/production/")
end)

T.test("DescribeServices of an empty name answers a MISSING failure, not an internal error", function()
  local R = require "rollout_sim"
  local warnings = {}
  local sim = R.fresh()
  sim.warn = function(msg) warnings[#warnings + 1] = msg end
  local out = require("ecsplay.ecs").describe_services { cluster = "production", services = { "", "api" } }
  T.eq(#out.services, 1)
  T.eq(out.services[1].serviceName, "api")
  T.eq(out.failures, { { arn = "arn:aws:ecs:us-east-1:123456789012:service/production/", reason = "MISSING" } })
  T.eq(warnings, {})
end)
