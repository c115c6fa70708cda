-- A simulator that stays up (issue 12, items 6 and 7): AWS's quotas answered with AWS's
-- errors (docs/simulator.md "Limits"), clock jumps bounded, the SigV4 parser as strict as
-- AWS's, and every refusal cheap: the request after an abusive one answers at once.
local T = require "harness"
local simlib = require "ecsplay.sim"
local limits = require "ecsplay.sim.limits"
local sigv4 = require "ecsplay.aws.sigv4"
local json = require "ecsplay.json"
local core = require "ecsplay.core"

local START = 1795687200 -- 2026-11-26T10:00:00Z
local AK, SK = "AKIDSIMULATOR", "simulator-secret-key"
local TARGETS = { ecs = "AmazonEC2ContainerServiceV20141113", codedeploy = "CodeDeploy_20141006",
  cloudwatch = "GraniteServiceVersion20100801" }
local SIGNING = { ecs = "ecs", codedeploy = "codedeploy", cloudwatch = "monitoring",
  elbv2 = "elasticloadbalancing" }

local function quiet_sim(scn) return simlib.new(scn, { warn = function() end }) end

-- A signed request as an SDK sends it (JSON for ecs/codedeploy/cloudwatch, query for elbv2).
local function request(service, op, params, opts)
  opts = opts or {}
  local headers, body = {}, nil
  if service == "elbv2" then
    headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
    local parts = { "Action=" .. op, "Version=2015-12-01" }
    for k, v in pairs(params or {}) do parts[#parts + 1] = k .. "=" .. tostring(v) end
    body = table.concat(parts, "&")
  else
    headers["Content-Type"] = "application/x-amz-json-1.1"
    headers["X-Amz-Target"] = TARGETS[service] .. "." .. op
    body = json.encode(params or {})
    if body == "[]" then body = "{}" end
  end
  local s = sigv4.sign { method = "POST", url = "http://127.0.0.1:4566/", headers = headers, body = body,
    region = opts.region or "us-east-1", service = SIGNING[service], access_key = AK, secret_key = SK,
    time = opts.time or START }
  return { method = "POST", path = "/", headers = s.headers, body = body }
end

local function error_of(r)
  if r.body:find("^%s*<") then return r.body:match("<Code>(.-)</Code>"), r.body:match("<Message>(.-)</Message>") end
  local v = json.decode(r.body)
  return v.__type, v.message
end

-- Calls sim:call and returns the AWS error it raised (code, status, message checked).
local function refused(sim, code, service, op, params, pattern)
  local ok, e = pcall(sim.call, sim, service, op, params, "test")
  T.ok(not ok, string.format("%s %s should be refused with %s", service, op, code))
  T.eq(e.code, code, string.format("%s %s: %s", service, op, tostring(e.message)))
  T.eq(e.status, 400, "HTTP status of " .. code)
  if pattern then T.ok(tostring(e.message):find(pattern), tostring(e.message)) end
  return e
end

-- Runs fn with limits[group][key] = value, restoring it afterwards.
local function with_limit(group, key, value, fn)
  local old = limits[group][key]
  limits[group][key] = value
  local ok, err = pcall(fn)
  limits[group][key] = old
  if not ok then error(err, 0) end
end

-- The next request answers within a second of wall time.
local function still_answers(sim)
  local t0 = core.monotonic()
  local r = sim:handle(request("ecs", "ListClusters", {}, { time = math.floor(sim:clock()) }))
  T.eq(r.status, 200, "a request after the refused one")
  T.ok(core.monotonic() - t0 < 1, "answered within a second")
end

---------------------------------------------------------------- ECS

T.test("ECS: desiredCount above 5000 tasks per service is InvalidParameterException, at once", function()
  local sim = quiet_sim()
  for _, n in ipairs { 5001, 2147483647 } do
    local t0 = core.monotonic()
    local r = sim:handle(request("ecs", "UpdateService", { cluster = "production", service = "api-canary",
      desiredCount = n }))
    local code, msg = error_of(r)
    T.eq({ r.status, code }, { 400, "InvalidParameterException" }, msg)
    T.ok(msg:find("Desired count exceeds limit", 1, true) and msg:find("5000", 1, true), msg)
    T.ok(core.monotonic() - t0 < 1, "refused at once")
  end
  refused(sim, "InvalidParameterException", "ecs", "CreateService", { cluster = "production",
    serviceName = "big", taskDefinition = "api:1", desiredCount = 10000, networkConfiguration = {
      awsvpcConfiguration = { subnets = { "subnet-0sima" } } } }, "exceeds limit")
  still_answers(sim)
  -- the limit itself is allowed (set back to 0 before any task launches)
  sim:call("ecs", "UpdateService", { cluster = "production", service = "api-canary", desiredCount = 5000 })
  sim:call("ecs", "UpdateService", { cluster = "production", service = "api-canary", desiredCount = 0 })
end)

T.test("ECS: services per cluster and clusters per account", function()
  local sim = quiet_sim()
  with_limit("ECS", "SERVICES_PER_CLUSTER", 3, function()
    refused(sim, "InvalidParameterException", "ecs", "CreateService", { cluster = "production",
      serviceName = "fourth", taskDefinition = "api:1" }, "Services per cluster")
  end)
  with_limit("ECS", "CLUSTERS", 1, function()
    refused(sim, "InvalidParameterException", "ecs", "CreateCluster", { clusterName = "second" }, "Clusters")
    sim:call("ecs", "CreateCluster", { clusterName = "production" }) -- idempotent: not a new one
  end)
end)

T.test("ECS: 10 containers and 64 KiB per task definition are ClientException", function()
  local sim = quiet_sim()
  local cds = {}
  for i = 1, 11 do cds[i] = { name = "c" .. i, image = "api:v2", memory = 128 } end
  refused(sim, "ClientException", "ecs", "RegisterTaskDefinition", { family = "many",
    containerDefinitions = cds }, "^Too many containers%.$")
  local big = { { name = "c", image = "api:v2", memory = 128,
    environment = { { name = "BLOB", value = string.rep("x", 70000) } } } }
  refused(sim, "ClientException", "ecs", "RegisterTaskDefinition", { family = "big",
    containerDefinitions = big }, "Max allowed length is '65536' bytes")
  cds[11] = nil
  sim:call("ecs", "RegisterTaskDefinition", { family = "ten", containerDefinitions = cds })
end)

---------------------------------------------------------------- ELBv2

local function arns(sim)
  local tg = sim:call("elbv2", "DescribeTargetGroups", { Names = { "api-canary" } }).TargetGroups[1]
  local lb = sim:call("elbv2", "DescribeLoadBalancers", { Names = { "web" } }).LoadBalancers[1]
  local ls = sim:call("elbv2", "DescribeListeners", { LoadBalancerArn = lb.LoadBalancerArn }).Listeners
  return tg.TargetGroupArn, lb.LoadBalancerArn, ls[1].ListenerArn
end

T.test("ELBv2: 1000 targets per target group is TooManyTargets; ECS tasks past it get an event", function()
  local sim = quiet_sim()
  local tg = arns(sim)
  local targets = {}
  for i = 1, 1001 do targets[i] = { Id = string.format("10.9.%d.%d", i // 250, i % 250), Port = 8080 } end
  refused(sim, "TooManyTargets", "elbv2", "RegisterTargets", { TargetGroupArn = tg, Targets = targets },
    "limit on the number of targets")
  T.eq(#sim:call("elbv2", "DescribeTargetHealth", { TargetGroupArn = tg }).TargetHealthDescriptions, 0,
    "nothing registered by the refused call")
  targets[1001] = nil
  sim:call("elbv2", "RegisterTargets", { TargetGroupArn = tg, Targets = targets })
  -- the group is full: tasks of api-canary start but cannot join it
  sim:call("ecs", "UpdateService", { cluster = "production", service = "api-canary", desiredCount = 2 })
  sim:advance(60)
  local svc = sim:call("ecs", "DescribeServices", { cluster = "production", services = { "api-canary" } }).services[1]
  local found = false
  for _, e in ipairs(svc.events) do
    if e.message:find("failed to register targets in (target-group " .. tg, 1, true) then found = true end
  end
  T.ok(found, "a service event names the full target group")
end)

T.test("ELBv2: rules, listeners, load balancers, target groups and weights", function()
  local sim = quiet_sim()
  local tg, lb, listener = arns(sim)
  local fwd = { { Type = "forward", TargetGroupArn = tg } }
  local cond = { { Field = "path-pattern", Values = { "/x" } } }
  with_limit("ELBV2", "RULES_PER_LOAD_BALANCER", 1, function()
    refused(sim, "TooManyRules", "elbv2", "CreateRule", { ListenerArn = listener, Priority = 20,
      Conditions = cond, Actions = fwd })
  end)
  with_limit("ELBV2", "LISTENERS_PER_LOAD_BALANCER", 2, function()
    refused(sim, "TooManyListeners", "elbv2", "CreateListener", { LoadBalancerArn = lb, Port = 8080,
      Protocol = "HTTP", DefaultActions = fwd })
  end)
  with_limit("ELBV2", "LOAD_BALANCERS", 1, function()
    refused(sim, "TooManyLoadBalancers", "elbv2", "CreateLoadBalancer", { Name = "second",
      Subnets = { "subnet-0sima", "subnet-0simb" } })
  end)
  with_limit("ELBV2", "TARGET_GROUPS", 4, function()
    refused(sim, "TooManyTargetGroups", "elbv2", "CreateTargetGroup", { Name = "fifth", Protocol = "HTTP",
      Port = 80, VpcId = "vpc-0sim", TargetType = "ip" })
  end)
  refused(sim, "ValidationError", "elbv2", "CreateRule", { ListenerArn = listener, Priority = 21,
    Conditions = cond, Actions = { { Type = "forward", ForwardConfig = { TargetGroups = {
      { TargetGroupArn = tg, Weight = 1000 } } } } } }, "between 0 and 999, inclusive")
end)

---------------------------------------------------------------- CloudWatch

local function query(i)
  return { Id = "m" .. i, MetricStat = { Metric = { Namespace = "AWS/ApplicationELB",
    MetricName = "RequestCount" }, Period = 60, Stat = "Sum" } }
end

T.test("CloudWatch: GetMetricData and PutMetricData limits are refused", function()
  local sim = quiet_sim()
  local qs = {}
  for i = 1, 501 do qs[i] = query(i) end
  refused(sim, "ValidationError", "cloudwatch", "GetMetricData", { StartTime = START - 600, EndTime = START,
    MetricDataQueries = qs }, "greater than 500")
  refused(sim, "ValidationError", "cloudwatch", "GetMetricData", { StartTime = START - 600, EndTime = START,
    MetricDataQueries = { query(1) }, MaxDatapoints = 0 }, "MaxDatapoints")
  local data = {}
  for i = 1, 1001 do data[i] = { MetricName = "m", Value = i } end
  refused(sim, "InvalidParameterValue", "cloudwatch", "PutMetricData", { Namespace = "App", MetricData = data },
    "greater than 1000")
  local values = {}
  for i = 1, 151 do values[i] = i end
  refused(sim, "InvalidParameterValue", "cloudwatch", "PutMetricData", { Namespace = "App",
    MetricData = { { MetricName = "m", Values = values } } }, "greater than 150")
  for _, v in ipairs { 1 / 0, -1 / 0, 2.0 ^ 361 } do
    refused(sim, "InvalidParameterValue", "cloudwatch", "PutMetricData", { Namespace = "App",
      MetricData = { { MetricName = "m", Value = v } } }, "2%^360")
  end
  refused(sim, "InvalidParameterValue", "cloudwatch", "PutMetricData", { Namespace = "App",
    MetricData = { { MetricName = "m", Value = 1, Timestamp = START - 15 * 86400 } } }, "two weeks")
  refused(sim, "InvalidParameterValue", "cloudwatch", "PutMetricData", { Namespace = "App",
    MetricData = { { MetricName = "m", Value = 1, Timestamp = START + 3 * 3600 } } }, "two hours")
  sim:call("cloudwatch", "PutMetricData", { Namespace = "App", MetricData = { { MetricName = "m", Value = 1 } } })
end)

T.test("CloudWatch: an alarm's evaluation range is at most 7 days (1 day under an hour)", function()
  local sim = quiet_sim()
  local function alarm(period, n)
    return { AlarmName = "a", Namespace = "App", MetricName = "m", Statistic = "Sum", Period = period,
      EvaluationPeriods = n, Threshold = 1, ComparisonOperator = "GreaterThanThreshold" }
  end
  refused(sim, "ValidationError", "cloudwatch", "PutMetricAlarm", alarm(60, 1441), "at most 86400")
  refused(sim, "ValidationError", "cloudwatch", "PutMetricAlarm", alarm(3600, 169), "at most 604800")
  refused(sim, "ValidationError", "cloudwatch", "PutMetricAlarm", alarm(60, 2147483647))
  sim:call("cloudwatch", "PutMetricAlarm", alarm(60, 1440))
  sim:call("cloudwatch", "PutMetricAlarm", alarm(3600, 168))
end)

T.test("CloudWatch keeps 15 days of datapoints, then drops them", function()
  local sim = quiet_sim { world = "empty" }
  local put = function(t) sim:call("cloudwatch", "PutMetricData", { Namespace = "App",
    MetricData = { { MetricName = "m", Value = 1, Timestamp = t } } }) end
  put(START - 13 * 86400)
  put(START)
  local function count()
    local out = sim:call("cloudwatch", "GetMetricData", { StartTime = START - 14 * 86400, EndTime = START + 86400,
      MetricDataQueries = { { Id = "m", MetricStat = { Metric = { Namespace = "App", MetricName = "m" },
        Period = 60, Stat = "SampleCount" } } } })
    return #out.MetricDataResults[1].Values
  end
  T.eq(count(), 2)
  for _ = 1, 12 do sim:advance(sim.MAX_ADVANCE) end    -- 3 days: the first is now 16 days old
  T.eq(count(), 1, "the datapoint older than 15 days is gone")
end)

---------------------------------------------------------------- CodeDeploy

T.test("CodeDeploy: applications, deployment groups and custom configurations", function()
  local sim = quiet_sim()
  with_limit("CODEDEPLOY", "APPLICATIONS", 1, function()
    refused(sim, "ApplicationLimitExceededException", "codedeploy", "CreateApplication",
      { applicationName = "second", computePlatform = "ECS" })
  end)
  local group = sim:call("codedeploy", "GetDeploymentGroup", { applicationName = "app-deploy",
    deploymentGroupName = "app-dg" }).deploymentGroupInfo
  with_limit("CODEDEPLOY", "DEPLOYMENT_GROUPS_PER_APPLICATION", 1, function()
    refused(sim, "DeploymentGroupLimitExceededException", "codedeploy", "CreateDeploymentGroup",
      { applicationName = "app-deploy", deploymentGroupName = "dg2", serviceRoleArn = group.serviceRoleArn })
  end)
  with_limit("CODEDEPLOY", "CUSTOM_DEPLOYMENT_CONFIGS", 0, function()
    refused(sim, "DeploymentConfigLimitExceededException", "codedeploy", "CreateDeploymentConfig",
      { deploymentConfigName = "mine", computePlatform = "ECS",
        trafficRoutingConfig = { type = "AllAtOnce" } })
  end)
end)

---------------------------------------------------------------- the clock

local function advance(sim, body)
  local t0 = core.monotonic()
  local r = sim:handle { method = "POST", path = "/_sim/advance", headers = {}, body = body }
  return r, core.monotonic() - t0
end

T.test("POST /_sim/advance refuses a jump over 6 h (or a non-finite one) with 400 and the maximum", function()
  local sim = quiet_sim()
  for _, body in ipairs { '{"seconds": 1e9}', '{"seconds": 1e400}', '{"seconds": 21601}',
      '{"seconds": "1000000000s"}', '{"seconds": 9223372036854775807}' } do
    local r, secs = advance(sim, body)
    T.eq(r.status, 400, body)
    T.ok(json.decode(r.body).error:find("at most 21600", 1, true), r.body)
    T.ok(secs < 1, "refused at once")
  end
  for _, body in ipairs { '{"seconds": -1}', '{"seconds": null}', '{"seconds": "soon"}' } do
    T.eq(advance(sim, body).status, 400, body)
  end
  local r = advance(sim, '{"seconds": 21600}')
  T.eq({ r.status, json.decode(r.body).elapsed }, { 200, 21600 })
  still_answers(sim)
end)

T.test("sim:advance jumps at most 6 h per call (a lockstep waiter asks again)", function()
  local sim = quiet_sim { world = "empty" }
  local now = sim:advance(10 * 86400)
  T.eq(now, START + sim.MAX_ADVANCE)
  T.eq(sim:advance(0 / 0), START + sim.MAX_ADVANCE, "NaN moves nothing")
end)

---------------------------------------------------------------- SigV4

-- A request signed for real, whose Authorization header is then rewritten by `edit`.
local function with_authorization(service, edit)
  local req = request(service, service == "elbv2" and "DescribeTargetGroups" or "ListClusters", {})
  for k, v in pairs(req.headers) do
    if k:lower() == "authorization" then req.headers[k] = edit(v) end
  end
  return req
end

T.test("SigV4: duplicated or missing components are IncompleteSignature, as AWS answers", function()
  local sim = quiet_sim()
  local cases = {
    { function(a) return a .. ", Signature=" .. string.rep("0", 64) end, "duplicated 'Signature'" },
    { function(a) return a .. ", Credential=x/20261126/us-east-1/ecs/aws4_request" end, "duplicated 'Credential'" },
    { function(a) return (a:gsub(", SignedHeaders=[^,]*", "")) end, "requires 'SignedHeaders'" },
    { function(a) return (a:gsub("Signature=%x+", "Signature=")) end, "requires 'Signature'" },
    { function(a) return a .. ", garbage" end, "not a valid key=value pair" },
    { function(a) return (a:gsub("/aws4_request", "")) end, "exactly 5 slash%-delimited" },
    { function(a) return (a:gsub("SignedHeaders=", "SignedHeaders=x-not-sent;")) end, "does not exist in the HTTP request" },
    { function(a) return (a:gsub("^AWS4%-HMAC%-SHA256", "AWS4-HMAC-SHA512")) end, "requires 'Credential'" },
  }
  for _, c in ipairs(cases) do
    for _, svc in ipairs { "ecs", "elbv2" } do
      local r = sim:handle(with_authorization(svc, c[1]))
      local code, msg = error_of(r)
      T.eq({ r.status, code }, { 400, svc == "ecs" and "IncompleteSignatureException" or "IncompleteSignature" },
        c[2] .. ": " .. tostring(msg))
      T.ok(msg:find(c[2]), msg)
      T.ok(not r.body:find(SK, 1, true) and not r.body:find("Signature=%x%x%x%x"), "no secret or signature")
    end
  end
  still_answers(sim)
end)

T.test("SigV4: a scope with another terminator or region is refused with AWS's words", function()
  local sim = quiet_sim()
  local r = sim:handle(with_authorization("ecs", function(a) return (a:gsub("/aws4_request", "/aws5_request")) end))
  local code, msg = error_of(r)
  T.eq({ r.status, code }, { 400, "InvalidSignatureException" })
  T.ok(msg:find("valid terminator: 'aws4_request', not 'aws5_request'", 1, true), msg)
  r = sim:handle(request("elbv2", "DescribeTargetGroups", {}, { region = "eu-west-1" }))
  code, msg = error_of(r)
  T.eq({ r.status, code }, { 403, "SignatureDoesNotMatch" })
  T.ok(msg:find("Credential should be scoped to a valid region, not 'eu-west-1'", 1, true), msg)
end)

---------------------------------------------------------------- scenarios

T.test("scenario codedeploy.hooks is accepted and drives the hooks", function()
  local sim = quiet_sim { codedeploy = { hooks = { ["*"] = "fail" }, hook_timeout = "10m" } }
  local appspec = 'version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\n'
    .. '      Properties:\n        TaskDefinition: "app:1"\n        LoadBalancerInfo:\n'
    .. '          ContainerName: "app"\n          ContainerPort: 8080\nHooks:\n  - BeforeInstall: PreFn\n'
  local id = sim:call("codedeploy", "CreateDeployment", { applicationName = "app-deploy",
    deploymentGroupName = "app-dg", revision = { revisionType = "AppSpecContent",
      appSpecContent = { content = appspec } } }).deploymentId
  sim:advance(300)
  local d = sim:call("codedeploy", "GetDeployment", { deploymentId = id }).deploymentInfo
  T.eq({ d.status, d.errorInformation and d.errorInformation.code }, { "Failed", "HOOK_EXECUTION_FAILURE" })
end)

T.test("scenario alarms: `then` as a list of state changes", function()
  local sim = quiet_sim { world = "empty", alarms = { a = { state = "OK", ["then"] = {
    { at = "2m", state = "ALARM" }, { at = "4m", state = "OK" } } } } }
  local function state()
    return sim:call("cloudwatch", "DescribeAlarms", { AlarmNames = { "a" } }).MetricAlarms[1].StateValue
  end
  T.eq(state(), "OK")
  sim:advance(150)
  T.eq(state(), "ALARM")
  sim:advance(120)
  T.eq(state(), "OK")
  local ok, e = pcall(simlib.new, { alarms = { a = { ["then"] = { { at = "4m", state = "OK" },
    { at = "2m", state = "ALARM" } } } } })
  T.ok(not ok and tostring(e):find("alarms.a.then[2].at: must be after the previous step's `at`", 1, true),
    tostring(e))
end)

T.test("ELBv2: DescribeTargetGroups names at most 20 target groups a call, as AWS", function()
  local sim = quiet_sim()
  local tg = sim:call("elbv2", "DescribeTargetGroups", { Names = { "api-canary" } }).TargetGroups[1]
  local names, arns_list = {}, {}
  for i = 1, 21 do names[i], arns_list[i] = "api-canary", tg.TargetGroupArn end
  refused(sim, "ValidationError", "elbv2", "DescribeTargetGroups", { Names = names },
    "You cannot describe more than '20' target groups at a time")
  refused(sim, "ValidationError", "elbv2", "DescribeTargetGroups", { TargetGroupArns = arns_list },
    "You cannot describe more than '20' target groups at a time")
  names[21], arns_list[21] = nil, nil
  T.eq(#sim:call("elbv2", "DescribeTargetGroups", { Names = names }).TargetGroups >= 1, true, "20 names are answered")
  T.eq(#sim:call("elbv2", "DescribeTargetGroups", { TargetGroupArns = arns_list }).TargetGroups >= 1, true,
    "20 ARNs are answered")
end)
