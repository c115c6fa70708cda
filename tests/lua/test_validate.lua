-- ecsplay.validate against the generated models: each error kind, with exact paths.
local T = require "harness"
local model = require "ecsplay.aws.model"
local validate = require "ecsplay.aws.validate"

local ecs = model.load("ecs")
local elbv2 = model.load("elbv2")
local cw = model.load("cloudwatch")

-- Run validate.input and return the error it raised (fails the test if it did not raise).
local function verr(m, op, params)
  local ok, e = pcall(validate.input, m, op, params)
  T.ok(not ok, "validate.input should have raised for " .. op)
  T.eq(type(e), "table", "error is a table")
  T.eq(e.code, "ParamValidation", "code")
  return e
end

T.test("valid parameters pass", function()
  T.eq(validate.input(ecs, "UpdateService", {
    cluster = "production", service = "api", desiredCount = 4, forceNewDeployment = true,
    deploymentConfiguration = { maximumPercent = 200, minimumHealthyPercent = 100,
      deploymentCircuitBreaker = { enable = true, rollback = true } },
  }), true)
  T.eq(validate.input(elbv2, "DescribeTargetGroups", {}), true, "no params")
  T.eq(validate.input(elbv2, "DescribeTargetGroups", nil), true, "nil params")
  T.eq(validate.input(cw, "GetMetricData", {
    StartTime = "2026-11-26T10:00:00Z", EndTime = 1795000000,
    MetricDataQueries = { { Id = "m1", Expression = "SUM(METRICS())" } },
  }), true, "timestamps as ISO string and epoch")
end)

T.test("unknown member: message, path and did-you-mean (case-insensitive)", function()
  local e = verr(ecs, "UpdateService", { cluster = "c", service = "api", desiredcount = 3 })
  T.eq(e.message, "ecs UpdateService: unknown parameter `desiredcount`; did you mean `desiredCount`?")
  T.eq(e.path, "desiredcount")
  T.eq(tostring(e), e.message, "tostring is the message")
  T.eq(e.service, "ecs")
  T.eq(e.operation, "UpdateService")
end)

T.test("unknown nested member: dotted path, suggestion by edit distance", function()
  local e = verr(ecs, "UpdateService", { service = "api",
    deploymentConfiguration = { maxPercent = 200 } })
  T.eq(e.path, "deploymentConfiguration.maxPercent")
  T.ok(e.message:find("did you mean `maximumPercent`?", 1, true), e.message)
  local e2 = verr(ecs, "UpdateService", { service = "api", zzzqqq = 1 })
  T.ok(not e2.message:find("did you mean", 1, true), "no suggestion for a far-off name")
end)

T.test("missing required member, top level and inside a list", function()
  local e = verr(ecs, "UpdateService", { cluster = "production" })
  T.eq(e.path, "service")
  T.eq(e.message, "ecs UpdateService: missing required parameter `service`")
  local e2 = verr(elbv2, "ModifyRule", { RuleArn = "arn:r",
    Actions = { { Type = "forward", TargetGroupArn = "arn:tg" }, { Order = 2 } } })
  T.eq(e2.path, "Actions[2].Type")
end)

T.test("wrong types: scalar, list, structure, boolean, list item", function()
  T.eq(verr(ecs, "UpdateService", { service = "api", desiredCount = "3" }).path, "desiredCount")
  local e = verr(ecs, "UpdateService", { service = "api", desiredCount = "3" })
  T.ok(e.message:find("expected an integer, got string \"3\"", 1, true), e.message)
  T.eq(verr(ecs, "UpdateService", { service = "api", desiredCount = 2.5 }).path, "desiredCount")
  T.eq(verr(ecs, "DescribeServices", { services = "api" }).path, "services")
  T.eq(verr(ecs, "DescribeServices", { services = { "api", 7 } }).path, "services[2]")
  T.eq(verr(ecs, "UpdateService", { service = "api", forceNewDeployment = "yes" }).path,
    "forceNewDeployment")
  T.eq(verr(ecs, "UpdateService", { service = "api", deploymentConfiguration = 5 }).path,
    "deploymentConfiguration")
  T.eq(verr(ecs, "TagResource", { resourceArn = "arn", tags = { { key = "a", value = "b" },
    { key = 5 } } }).path, "tags[2].key")
  local e2 = verr(ecs, "DescribeServices", { services = { "a", x = "b" } })
  T.eq(e2.path, "services")
  T.ok(e2.message:find("found key \"x\"", 1, true), e2.message)
end)

T.test("bad enum value lists the allowed values", function()
  local e = verr(ecs, "UpdateService", { service = "api", deploymentController = { type = "BLUE" } })
  T.eq(e.path, "deploymentController.type")
  T.ok(e.message:find('invalid value "BLUE" at `deploymentController.type`; expected one of: '
    .. "ECS, CODE_DEPLOY, EXTERNAL", 1, true), e.message)
  local e2 = verr(elbv2, "ModifyRule", { RuleArn = "a", Actions = { { Type = "Forward" } } })
  T.eq(e2.path, "Actions[1].Type")
  T.ok(e2.message:find('did you mean "forward"?', 1, true), e2.message)
end)

T.test("min and max from the model", function()
  local e = verr(elbv2, "DescribeTargetGroups", { PageSize = 0 })
  T.eq(e.path, "PageSize")
  T.ok(e.message:find("the minimum is 1", 1, true), e.message)
  local e2 = verr(elbv2, "DescribeTargetGroups", { PageSize = 401 })
  T.ok(e2.message:find("the maximum is 400", 1, true), e2.message)
end)

T.test("timestamps: bad ISO string, wrong type", function()
  local q = { { Id = "m1", Expression = "1" } }
  local e = verr(cw, "GetMetricData", { MetricDataQueries = q, StartTime = "yesterday", EndTime = 1 })
  T.eq(e.path, "StartTime")
  local e2 = verr(cw, "GetMetricData", { MetricDataQueries = q, StartTime = true, EndTime = 1 })
  T.eq(e2.path, "StartTime")
end)

T.test("several problems are all reported, first one in path", function()
  local e = verr(ecs, "UpdateService", { desiredCount = "x", bogus = 1 })
  T.eq(#e.errors, 3, "three errors")
  T.ok(e.message:find("^ecs UpdateService: 3 invalid parameters: %(1%) unknown parameter `bogus`"), e.message)
  T.eq(e.path, "bogus", "sorted: unknown key first")
end)

T.test("operation by boto3 name; unknown operation", function()
  T.eq(validate.input(ecs, "describe_services", { services = { "api" } }), true)
  local e = verr(ecs, "describe_services", { services = "api" })
  T.eq(e.operation, "DescribeServices")
  T.raises(function() validate.input(ecs, "NoSuchOp", {}) end, "unknown operation")
end)

T.test("params that are not a table", function()
  local e = verr(ecs, "DescribeServices", "api")
  T.ok(e.message:find("parameters must be a table", 1, true), e.message)
end)

T.test("every problem carries its kind (the simulator decides by kind, not by the words)", function()
  local cd = model.load("codedeploy")
  local function kinds(e)
    local out = {}
    for i, p in ipairs(e.errors) do
      T.ok(p.path and p.message, "problem " .. i .. " has a path and a message")
      out[p.path] = p.kind
    end
    return out
  end
  T.eq(kinds(verr(ecs, "UpdateService", { desiredcount = 3, desiredCount = "3",
    deploymentController = { type = "BLUE" } })), {
    desiredcount = "unknown_member", service = "missing_required", desiredCount = "type",
    ["deploymentController.type"] = "enum" })
  T.eq(kinds(verr(elbv2, "DescribeTargetGroups", { PageSize = 0 })), { PageSize = "range" })
  T.eq(kinds(verr(cw, "PutMetricData", { Namespace = "n", MetricData = { { MetricName = "m", Value = 0 / 0 } } })),
    { ["MetricData[1].Value"] = "range" }, "NaN")
  T.eq(kinds(verr(cd, "GetApplication", { applicationName = string.rep("a", 101) })),
    { applicationName = "length" }, "a string too long")
  T.eq(kinds(verr(ecs, "TagResource", { resourceArn = "a", tags = (function()
    local t = {}
    for i = 1, 51 do t[i] = { key = "k" .. i, value = "v" } end
    return t
  end)() })), { tags = "length" }, "a list too long")
  T.eq(kinds(verr(cw, "GetMetricData", { MetricDataQueries = {}, StartTime = "yesterday", EndTime = 1 })),
    { StartTime = "type" }, "a bad timestamp")
  T.eq(kinds(verr(ecs, "DescribeServices", "api")), { [""] = "type" })
end)

T.test("suggest and levenshtein", function()
  T.eq(validate.levenshtein("kitten", "sitting"), 3)
  T.eq(validate.suggest("DESIREDCOUNT", { "cluster", "desiredCount" }), "desiredCount")
  T.eq(validate.suggest("clustr", { "cluster", "service" }), "cluster")
  T.eq(validate.suggest("x", { "cluster" }), nil)
end)

T.test("idempotency tokens are filled only when unset", function()
  local p = validate.fill_idempotency_tokens(ecs, "RunTask", { taskDefinition = "td" })
  T.ok(type(p.clientToken) == "string" and
    p.clientToken:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x+$"), p.clientToken)
  T.eq(#p.clientToken, 36)
  local p2 = validate.fill_idempotency_tokens(ecs, "RunTask", { clientToken = "mine" })
  T.eq(p2.clientToken, "mine")
  local p3 = validate.fill_idempotency_tokens(ecs, "UpdateService", { service = "a" })
  T.eq(p3.clientToken, nil, "no token member")
end)

-- aws/call.lua validates through the operation's fast pass and asks validate.input only
-- when it says no: the two must agree on every input, valid or not.
T.test("input_fit says yes exactly when validate.input accepts", function()
  local cases = {
    { ecs, "ListClusters", nil }, { ecs, "ListClusters", {} }, { ecs, "ListClusters", { maxResults = 5 } },
    { ecs, "ListClusters", { maxResults = "5" } }, { ecs, "ListClusters", { bogus = 1 } },
    { ecs, "ListClusters", "not a table" }, { ecs, "ListClusters", { 1, 2 } },
    { ecs, "UpdateService", { cluster = "production", service = "api", desiredCount = 4 } },
    { ecs, "UpdateService", { cluster = "production" } }, { ecs, "UpdateService", {} },
    { ecs, "UpdateService", nil },
    { ecs, "DescribeServices", { cluster = "c", services = { "a", "b" } } },
    { ecs, "DescribeServices", { cluster = "c", services = { "a", 2 } } },
    { elbv2, "DescribeTargetGroups", {} }, { elbv2, "DescribeTargetGroups", { Names = { "x" } } },
    { elbv2, "DescribeTargetGroups", { Names = "x" } },
    { cw, "GetMetricData", { StartTime = 1, EndTime = 2, MetricDataQueries = { { Id = "m1", Expression = "1" } } } },
    { cw, "GetMetricData", { StartTime = 1, EndTime = 2 } },
  }
  local yes, no = 0, 0
  for i, c in ipairs(cases) do
    local m, opname, params = c[1], c[2], c[3]
    local op = m.operations[opname]
    local fit = validate.input_fit(m, op)(params)
    local accepted = pcall(validate.input, m, opname, params)
    T.eq(fit, accepted, string.format("case %d: %s %s", i, opname, tostring(params)))
    if accepted then yes = yes + 1 else no = no + 1 end
  end
  T.ok(yes >= 6 and no >= 6, "both answers are exercised")
end)
