-- The simulator's front end: routing, SigV4 verification, AWS's pre-operation errors,
-- faults, control endpoints, and the default world.
local T = require "harness"
local simlib = require "ecsplay.sim"
local sigv4 = require "ecsplay.aws.sigv4"
local json = require "ecsplay.json"

local START = 1795687200 -- 2026-11-26T10:00:00Z
local AK, SK = "AKIDSIMULATOR", "simulator-secret-key"

local TARGETS = { ecs = "AmazonEC2ContainerServiceV20141113", codedeploy = "CodeDeploy_20141006",
  cloudwatch = "GraniteServiceVersion20100801" }
local SIGNING = { ecs = "ecs", codedeploy = "codedeploy", cloudwatch = "monitoring",
  elbv2 = "elasticloadbalancing", sts = "sts" }
local VERSIONS = { elbv2 = "2015-12-01", cloudwatch = "2010-08-01", sts = "2011-06-15" }

-- A request as an SDK would send it. opts: kind ("json"|"query"), time, ak, sk, unsigned,
-- body (overrides), tamper (changes the body after signing).
local function request(service, op, params, opts)
  opts = opts or {}
  local kind = opts.kind or ((service == "elbv2" or service == "sts") and "query" or "json")
  local headers, body = {}, opts.body
  if kind == "json" then
    headers["Content-Type"] = service == "cloudwatch" and "application/x-amz-json-1.0" or "application/x-amz-json-1.1"
    headers["X-Amz-Target"] = TARGETS[service] .. "." .. op
    body = body or json.encode(params or {})
    if body == "[]" then body = "{}" end
  else
    headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
    if not body then
      local parts = { "Action=" .. op, "Version=" .. VERSIONS[service] }
      for k, v in pairs(params or {}) do parts[#parts + 1] = k .. "=" .. tostring(v) end
      body = table.concat(parts, "&")
    end
  end
  if not opts.unsigned then
    local s = sigv4.sign { method = "POST", url = "http://127.0.0.1:4566/", headers = headers, body = body,
      region = "us-east-1", service = SIGNING[service], access_key = opts.ak or AK,
      secret_key = opts.sk or SK, time = opts.time or START }
    headers = s.headers
  end
  if opts.tamper then body = body .. " " end
  return { method = "POST", path = "/", headers = headers, body = body }
end

local function hdr(r, name)
  for k, v in pairs(r.headers or {}) do if k:lower() == name then return v end end
end

local function json_err(r)
  local v = json.decode(r.body)
  return v.__type, v.message
end

local function xml_code(r) return r.body:match("<Code>(.-)</Code>"), r.body:match("<Message>(.-)</Message>") end

-- An empty world with stand-in service modules, so routing tests do not depend on the
-- real state machines.
local function fake_sim(scn, opts)
  scn = scn or {}
  scn.world = "empty"
  local sim = simlib.new(scn, { warn = function() end, no_auth = opts and opts.no_auth, services = {} })
  local calls = {}
  sim.calls = calls
  sim.world:add_service { name = "ecs", ops = {
    ListClusters = function(world, input, caller)
      calls[#calls + 1] = { "ListClusters", caller }
      return { clusterArns = { world:arn("ecs", "cluster/production") } }
    end,
    DescribeServices = function() return { services = {} } end,
    DescribeClusters = function(world) world:fail("ClusterNotFoundException", "Cluster not found.", 400) end,
    ListServices = function() error("boom: a bug in an operation") end,
  } }
  sim.world:add_service { name = "elbv2", ops = {
    DescribeTargetGroups = function() return { TargetGroups = { { TargetGroupName = "tg-1", Port = 8080 } } } end,
    DescribeRules = function(world) world:fail("ListenerNotFound", "One or more listeners not found", 400) end,
    ModifyRule = function() return { Rules = {} } end,
  } }
  sim.world:add_service { name = "codedeploy", ops = {
    ListApplications = function() return { applications = { "app-deploy" } } end,
  } }
  sim.world:add_service { name = "cloudwatch", ops = {
    DescribeAlarms = function() return { MetricAlarms = { { AlarmName = "a1", StateValue = "OK" } } } end,
    GetMetricData = function() return { MetricDataResults = {} } end,
  } }
  return sim
end

-- Routing ---------------------------------------------------------------------------

T.test("ECS JSON 1.1 request reaches the operation and answers like AWS", function()
  local sim = fake_sim()
  local r = sim:handle(request("ecs", "ListClusters", {}))
  T.eq(r.status, 200, r.body)
  T.eq(hdr(r, "content-type"), "application/x-amz-json-1.1")
  T.ok(hdr(r, "x-amzn-requestid"):match("^%x+%-%x+%-%x+%-%x+%-%x+$"), "request id")
  T.eq(json.decode(r.body).clusterArns, { "arn:aws:ecs:us-east-1:123456789012:cluster/production" })
  T.eq(sim.calls[1], { "ListClusters" }, "API requests call ops with caller nil")
end)

T.test("ELBv2 query request answers XML with the request id in ResponseMetadata", function()
  local sim = fake_sim()
  local r = sim:handle(request("elbv2", "DescribeTargetGroups", {}))
  T.eq(r.status, 200, r.body)
  T.ok(hdr(r, "content-type"):find("text/xml", 1, true))
  T.ok(r.body:find("<TargetGroupName>tg-1</TargetGroupName>", 1, true), r.body)
  local rid = r.body:match("<RequestId>(.-)</RequestId>")
  T.ok(rid and rid == hdr(r, "x-amzn-requestid"), "same request id in XML and header")
end)

T.test("CloudWatch answers JSON 1.0 and query, each in the protocol asked", function()
  local sim = fake_sim()
  local r = sim:handle(request("cloudwatch", "DescribeAlarms", {}, { kind = "json" }))
  T.eq(r.status, 200, r.body)
  T.eq(hdr(r, "content-type"), "application/x-amz-json-1.0")
  T.eq(json.decode(r.body).MetricAlarms[1].AlarmName, "a1")
  r = sim:handle(request("cloudwatch", "DescribeAlarms", {}, { kind = "query" }))
  T.eq(r.status, 200, r.body)
  T.ok(r.body:find("<DescribeAlarmsResponse", 1, true) and r.body:find("<AlarmName>a1</AlarmName>", 1, true), r.body)
end)

T.test("CodeDeploy and STS route by their credential scope", function()
  local sim = fake_sim()
  local r = sim:handle(request("codedeploy", "ListApplications", {}))
  T.eq(json.decode(r.body).applications, { "app-deploy" })
  r = sim:handle(request("sts", "GetCallerIdentity", {}))
  T.eq(r.status, 200, r.body)
  T.ok(r.body:find("<Account>123456789012</Account>", 1, true), r.body)
end)

T.test("unsigned requests (--no-auth) route by X-Amz-Target or Version", function()
  local sim = fake_sim(nil, { no_auth = true })
  T.eq(sim:handle(request("ecs", "ListClusters", {}, { unsigned = true })).status, 200)
  local r = sim:handle(request("elbv2", "DescribeTargetGroups", {}, { unsigned = true }))
  T.eq(r.status, 200, r.body)
  r = sim:handle(request("cloudwatch", "DescribeAlarms", {}, { unsigned = true, kind = "query" }))
  T.eq(r.status, 200, r.body)
end)

-- Auth --------------------------------------------------------------------------------

T.test("missing Authorization: MissingAuthenticationToken in each protocol", function()
  local sim = fake_sim()
  local r = sim:handle(request("ecs", "ListClusters", {}, { unsigned = true }))
  T.eq(r.status, 400)
  T.eq({ json_err(r) }, { "MissingAuthenticationTokenException", "Missing Authentication Token" })
  r = sim:handle(request("elbv2", "DescribeTargetGroups", {}, { unsigned = true }))
  T.eq(r.status, 403)
  T.eq(xml_code(r), "MissingAuthenticationToken")
end)

T.test("unknown access key: UnrecognizedClientException / InvalidClientTokenId", function()
  local sim = fake_sim()
  local r = sim:handle(request("ecs", "ListClusters", {}, { ak = "AKIDNOBODY" }))
  T.eq({ r.status, (json_err(r)) }, { 400, "UnrecognizedClientException" })
  r = sim:handle(request("elbv2", "DescribeTargetGroups", {}, { ak = "AKIDNOBODY" }))
  T.eq({ r.status, (xml_code(r)) }, { 403, "InvalidClientTokenId" })
end)

T.test("bad signature: AWS's code and message, and no secret in the answer", function()
  local sim = fake_sim()
  local want = "The request signature we calculated does not match the signature you provided. "
    .. "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
  local r = sim:handle(request("ecs", "ListClusters", {}, { sk = "wrong-secret" }))
  T.eq({ r.status, json_err(r) }, { 400, "InvalidSignatureException", want })
  r = sim:handle(request("elbv2", "DescribeTargetGroups", {}, { tamper = true }))
  local code, msg = xml_code(r)
  T.eq({ r.status, code, msg }, { 403, "SignatureDoesNotMatch", want })
  T.ok(not r.body:find(SK, 1, true), "secret key must not appear")
end)

T.test("a signature older than 15 minutes (sim clock) is expired", function()
  local sim = fake_sim()
  sim:advance(3600 + 1) -- now 11:00:01; signed at 10:15:00
  local r = sim:handle(request("ecs", "ListClusters", {}, { time = START + 900 }))
  T.eq({ r.status, json_err(r) }, { 400, "InvalidSignatureException",
    "Signature expired: 20261126T101500Z is now earlier than 20261126T104501Z (20261126T110001Z - 15 min.)" })
  r = sim:handle(request("elbv2", "DescribeTargetGroups", {}, { time = START + 900 }))
  T.eq({ r.status, (xml_code(r)) }, { 403, "SignatureDoesNotMatch" })
  -- 14 minutes old is fine
  r = sim:handle(request("ecs", "ListClusters", {}, { time = START + 3600 + 1 - 14 * 60 }))
  T.eq(r.status, 200, r.body)
  -- and from the future
  r = sim:handle(request("ecs", "ListClusters", {}, { time = START + 3600 + 1 + 16 * 60 }))
  local _, m = json_err(r)
  T.ok(m:find("^Signature not yet current: 20261126T111601Z is still later than"), m)
end)

T.test("scenario keys replace the default pair", function()
  local sim = fake_sim { keys = { AKIDMINE = "my-secret" } }
  T.eq(sim:handle(request("ecs", "ListClusters", {}, { ak = "AKIDMINE", sk = "my-secret" })).status, 200)
  T.eq(sim:handle(request("ecs", "ListClusters", {})).status, 400, "the default pair is gone")
  T.eq(sim:credentials(), { access_key = "AKIDMINE", secret_key = "my-secret" })
end)

-- Errors before and inside the operation ---------------------------------------------

T.test("malformed bodies and unknown operations", function()
  local sim = fake_sim()
  local r = sim:handle(request("ecs", "ListClusters", nil, { body = "{not json" }))
  T.eq({ r.status, (json_err(r)) }, { 400, "SerializationException" })
  r = sim:handle(request("ecs", "FlyToTheMoon", {}))
  T.eq({ r.status, (json_err(r)) }, { 400, "UnknownOperationException" })
  r = sim:handle(request("elbv2", "FlyToTheMoon", {}))
  T.eq({ r.status, (xml_code(r)) }, { 400, "InvalidAction" })
  r = sim:handle(request("elbv2", nil, nil, { body = "Version=2015-12-01" }))
  T.eq({ r.status, (xml_code(r)) }, { 400, "MissingAction" })
  -- in the model, not implemented by the (fake) module
  r = sim:handle(request("ecs", "DeleteCluster", { cluster = "x" }))
  local code, msg = json_err(r)
  T.eq({ r.status, code }, { 400, "UnknownOperationException" })
  T.ok(msg:find("does not implement ecs DeleteCluster", 1, true), msg)
end)

T.test("model validation: ValidationException (json) / ValidationError (query)", function()
  local sim = fake_sim()
  local r = sim:handle(request("ecs", "DescribeServices", { cluster = "production" }))
  T.eq({ r.status, json_err(r) }, { 400, "ValidationException",
    "1 validation error detected: Value null at 'services' failed to satisfy constraint: Member must not be null" })
  r = sim:handle(request("elbv2", "DescribeRules", { PageSize = 0 }))
  local code, msg = xml_code(r)
  T.eq({ r.status, code }, { 400, "ValidationError" })
  T.ok(msg:find("PageSize", 1, true), msg)
  -- by the validator's problem kinds: an unknown member is ignored (as AWS does), a missing
  -- one worded as AWS words it, others keep the validator's message
  r = sim:handle(request("ecs", "ListClusters", { maxResultz = 5 }))
  T.eq(r.status, 200, "an unknown member alone is not an error: " .. r.body)
  local frontend = require "ecsplay.sim.frontend"
  local ecs_model = require("ecsplay.aws.model").load("ecs")
  T.eq(frontend.validate(ecs_model, "json", "ListClusters", { maxResultz = 5 }), nil)
  local v = frontend.validate(ecs_model, "json", "DescribeServices",
    { servicez = { "a" }, include = { "NOPE" } })
  T.eq(v.code, "ValidationException")
  T.ok(v.message:find("^2 validation errors detected: "), v.message)
  T.ok(v.message:find("Value null at 'services' failed to satisfy constraint: Member must not be null", 1, true), v.message)
  T.ok(v.message:find('invalid value "NOPE" at `include[1]`', 1, true), v.message)
  T.ok(not v.message:find("servicez", 1, true), "the unknown member is ignored: " .. v.message)
end)

T.test("world:fail becomes the service's error; a Lua error becomes InternalFailure", function()
  local sim = fake_sim()
  local r = sim:handle(request("ecs", "DescribeClusters", {}))
  T.eq({ r.status, json_err(r) }, { 400, "ClusterNotFoundException", "Cluster not found." })
  r = sim:handle(request("elbv2", "DescribeRules", { ListenerArn = "arn:x" }))
  T.eq({ r.status, (xml_code(r)) }, { 400, "ListenerNotFound" })
  local warned
  sim.warn = function(m) warned = m end
  r = sim:handle(request("ecs", "ListServices", {}))
  local code, msg = json_err(r)
  T.eq({ r.status, code }, { 500, "InternalFailure" })
  T.ok(msg:find("boom: a bug in an operation", 1, true), msg)
  T.ok(hdr(r, "x-amzn-requestid"), "request id on a 500")
  T.ok(warned and warned:find("boom", 1, true), "the bug is reported with a traceback")
end)

-- Faults ------------------------------------------------------------------------------

T.test("fault times: throttling twice, spelled per protocol, then through", function()
  local sim = fake_sim { faults = {
    { service = "elbv2", operation = "ModifyRule", error = "ThrottlingException", times = 2 },
    { service = "ecs", operation = "ListClusters", error = "Throttling", times = 1 },
  } }
  local req = request("elbv2", "ModifyRule", { RuleArn = "arn:r" })
  for _ = 1, 2 do
    local r = sim:handle(req)
    local code, msg = xml_code(r)
    T.eq({ r.status, code, msg }, { 400, "Throttling", "Rate exceeded" })
  end
  T.eq(sim:handle(req).status, 200)
  local r = sim:handle(request("ecs", "ListClusters", {}))
  T.eq({ r.status, (json_err(r)) }, { 400, "ThrottlingException" })
  T.eq(sim:handle(request("ecs", "ListClusters", {})).status, 200)
end)

T.test("CloudWatch JSON errors name their query code in x-amzn-query-error (awsQueryCompatible)", function()
  local iam = require "ecsplay.sim.iam"
  local sim = fake_sim { faults = {
    { service = "cloudwatch", operation = "DescribeAlarms", rate = 1, per = "minute", burst = 1 },
    { service = "cloudwatch", operation = "DescribeAlarmHistory", status = 503 },
  } }
  local function answer(op, params, opts)
    local r = sim:handle(request("cloudwatch", op, params or {}, opts))
    return { r.status, (json_err(r)), hdr(r, "x-amzn-query-error") }
  end
  T.eq(answer("DescribeAlarms")[1], 200)
  T.eq(answer("DescribeAlarms"), { 400, "ThrottlingException", "Throttling;Sender" })
  T.eq(answer("DescribeAlarmHistory"), { 503, "ServiceUnavailableException", "ServiceUnavailable;Receiver" })
  T.eq(answer("DescribeAlarms", { MaxRecords = 0 }), { 400, "ValidationException", "ValidationError;Sender" })
  T.eq(answer("ListMetrics", {}, { ak = "AKIDNOBODY" }), { 400, "UnrecognizedClientException",
    "InvalidClientTokenId;Sender" })
  T.eq(answer("ListMetrics", {}, { sk = "wrong" }), { 400, "InvalidSignatureException", "SignatureDoesNotMatch;Sender" })
  T.eq(answer("ListDashboards"), { 400, "UnknownOperationException", "InvalidAction;Sender" })
  sim.scenario.iam = { policy = iam.check_policy { Version = "2012-10-17",
    Statement = { { Effect = "Deny", Action = "cloudwatch:GetMetricData", Resource = "*" } } } }
  T.eq(answer("GetMetricData", { MetricDataQueries = {}, StartTime = START, EndTime = START + 60 }),
    { 400, "AccessDeniedException", "AccessDenied;Sender" })
  -- ECS is not query-compatible: no such header
  local r = sim:handle(request("ecs", "ListServices", {}))
  T.eq(hdr(r, "x-amzn-query-error"), nil)
end)

T.test("fault window: 503 between from and to only", function()
  local sim = fake_sim { faults = { { service = "cloudwatch", operation = "GetMetricData", status = 503,
    from = "10m", to = "12m" } } }
  local function status()
    return sim:handle(request("cloudwatch", "GetMetricData", { MetricDataQueries = {}, StartTime = START,
      EndTime = START + 60 }, { time = math.floor(sim:clock()) })).status
  end
  T.eq(status(), 200)
  sim:advance(600)
  local r = sim:handle(request("cloudwatch", "GetMetricData", { MetricDataQueries = {}, StartTime = START,
    EndTime = START + 60 }, { time = START + 600 }))
  T.eq({ r.status, (json_err(r)) }, { 503, "ServiceUnavailableException" })
  sim:advance(120)
  T.eq(status(), 200)
end)

T.test("fault delay and drop, and the in-process transport's view of them", function()
  local sim = fake_sim { faults = {
    { service = "ecs", operation = "*", delay = "2s" },
    { service = "elbv2", operation = "ModifyRule", drop = true, times = 1, at = "20m" },
  } }
  local r = sim:handle(request("ecs", "ListClusters", {}))
  T.eq({ r.status, r.delay }, { 200, 2 })
  local req = request("elbv2", "ModifyRule", { RuleArn = "arn:r" })
  T.eq(sim:handle(req).status, 200, "before 20m")
  sim:advance(1200)
  req = request("elbv2", "ModifyRule", { RuleArn = "arn:r" }, { time = START + 1200 })
  local d = sim:handle(req)
  T.eq({ d.status, d.drop }, { 0, true })
  T.eq(sim:handle(req).status, 200, "times = 1")
  -- transport: a drop is a reset connection
  sim.faults:add(require("ecsplay.sim.scenario").check_fault { service = "elbv2", drop = true, times = 1 })
  local ok, msg, kind = sim:transport { method = "POST", url = "http://127.0.0.1:4566/", headers = req.headers, body = req.body }
  T.eq({ ok, kind }, { nil, "reset" })
  T.ok(msg:find("reset", 1, true))
end)

-- Control endpoints -------------------------------------------------------------------

T.test("/_sim/ time, advance, faults", function()
  local sim = fake_sim()
  local r = sim:handle { method = "GET", path = "/_sim/time", headers = {}, body = "" }
  T.eq(json.decode(r.body), { now = START, iso = "2026-11-26T10:00:00Z", start = START, elapsed = 0 })
  r = sim:handle { method = "POST", path = "/_sim/advance", headers = {}, body = '{"seconds": 90}' }
  T.eq(json.decode(r.body).elapsed, 90)
  T.eq(sim.world.now, START + 90)
  r = sim:handle { method = "POST", path = "/_sim/advance", headers = {}, body = '{"seconds": -1}' }
  T.eq(r.status, 400)
  r = sim:handle { method = "POST", path = "/_sim/faults", headers = {},
    body = '{"service":"ecs","operation":"ListClusters","error":"ThrottlingException","times":1}' }
  T.eq({ r.status, json.decode(r.body) }, { 200, { added = 1 } })
  T.eq(sim:handle(request("ecs", "ListClusters", {}, { time = START + 90 })).status, 400)
  r = sim:handle { method = "POST", path = "/_sim/faults", headers = {}, body = '{"service":"ecs","eror":"X"}' }
  T.eq(r.status, 400)
  T.ok(json.decode(r.body).error:find('did you mean "error"', 1, true), r.body)
  r = sim:handle { method = "GET", path = "/_sim/faults", headers = {}, body = "" }
  T.eq(json.decode(r.body).faults[1].hits, 1)
  r = sim:handle { method = "DELETE", path = "/_sim/faults", headers = {}, body = "" }
  T.eq(json.decode(r.body), { removed = 1 })
  T.eq(sim:handle { method = "GET", path = "/_sim/nope", headers = {}, body = "" }.status, 404)
  T.eq(sim:handle { method = "PUT", path = "/_sim/world", headers = {}, body = "" }.status, 405)
end)

-- Setup -------------------------------------------------------------------------------

T.test("scenario setup errors point at the setup's line", function()
  local err = T.raises(function()
    simlib.new({ world = "empty", setup = function(aws)
      aws.elbv2.create_target_group { Nmae = "x" } -- this line
    end }, { warn = function() end, services = {} })
  end)
  local text = tostring(err)
  T.ok(text:find("test_sim_frontend.lua:%d+: scenario setup: elbv2 CreateTargetGroup failed"), text)
  T.ok(text:find("unknown parameter `Nmae`", 1, true), text)
  T.raises(function()
    simlib.new({ world = "empty", setup = function(aws) aws.ecs.fly_away {} end }, { warn = function() end, services = {} })
  end, "aws%.ecs%.fly_away is not an operation")
end)

-- The default world (needs the four service modules) -----------------------------------

local function need_modules()
  for _, name in ipairs({ "ecs", "elbv2", "codedeploy", "cloudwatch" }) do
    if not package.searchpath("ecsplay.sim." .. name, package.path) then
      error("service module ecsplay.sim." .. name .. " is missing: the default world cannot be built", 0)
    end
  end
end

local function world_summary(sim)
  local r = sim:handle { method = "GET", path = "/_sim/world", headers = {}, body = "" }
  T.eq(r.status, 200, r.body)
  return json.decode(r.body), r.body
end

T.test("the default world matches docs/simulator.md", function()
  need_modules()
  local sim = simlib.new(nil, { warn = function(m) error(m, 0) end })
  T.eq(sim.world.now, START)
  local w = world_summary(sim)
  local svc = {}
  for _, s in ipairs(w.services) do svc[s.name] = s end
  T.eq({ svc.api.desired, svc.api.running }, { 4, 4 }, "api")
  T.ok(svc.api.task_definition:find("task%-definition/api:1$"), svc.api.task_definition)
  T.eq({ svc["api-canary"].desired, svc["api-canary"].running }, { 0, 0 }, "api-canary")
  T.eq({ svc.app.desired, svc.app.running }, { 3, 3 }, "app")
  local tgs = {}
  for _, tg in ipairs(w.target_groups) do tgs[tg.name] = tg.health end
  T.eq(tgs["api-stable"].healthy, 4)
  T.eq(tgs["app-blue"].healthy, 3)
  T.ok(tgs["api-canary"] and tgs["app-green"], "all four target groups")
  local prod
  for _, l in ipairs(w.listeners) do if l.port == 443 then prod = l end end
  local rule10
  for _, rule in ipairs(prod.rules) do if rule.priority == "10" or rule.priority == 10 then rule10 = rule end end
  T.eq(rule10.weights, { ["api-stable"] = 100, ["api-canary"] = 0 })
  T.eq(w.alarms, { { name = "api-5xx-high", state = "OK" } })
  -- CODE_DEPLOY wiring, through the API
  local dg = sim:call("codedeploy", "GetDeploymentGroup", { applicationName = "app-deploy",
    deploymentGroupName = "app-dg" }, "control").deploymentGroupInfo
  T.eq(dg.ecsServices[1].serviceName, "app")
  T.eq(dg.deploymentStyle.deploymentType, "BLUE_GREEN")
  local svcs = sim:call("ecs", "DescribeServices", { cluster = "production", services = { "app" } }, "control").services
  T.eq(svcs[1].deploymentController.type, "CODE_DEPLOY")
end)

T.test("the same scenario and seed give the same world, byte for byte", function()
  need_modules()
  local a = simlib.new({ seed = 7 }, { warn = function() end })
  local b = simlib.new({ seed = 7 }, { warn = function() end })
  a:advance(600)
  b:advance(600)
  local _, ba = world_summary(a)
  local _, bb = world_summary(b)
  T.eq(ba, bb)
end)

T.test("default images: :bad crashes, :flaky fails at weight >= 25, scenario images first", function()
  need_modules()
  local sim = simlib.new({ world = "default", images = { ["api:bad"] = { start = "5s" } } },
    { warn = function() end })
  T.eq(sim.world:behaviour("api:bad").crash, nil, "the scenario's entry wins")
  T.eq(sim.world:behaviour("web:bad").crash, "on_start")
  T.eq(sim.world:behaviour("api:slow").latency_ms, { p50 = 300, p99 = 1200 })
  local flaky = sim.world:behaviour("api:flaky").error_rate
  T.eq({ flaky { weight = 25 }, flaky { weight = 10 } }, { 0.06, 0.001 })
end)

-- sim serve's loop, over a stand-in for ecsplay.core.simserve -----------------------

T.test("serve.run: first line, handler mapping (drop → status 0), clean close", function()
  local calls, closed, lines = 0, false, {}
  local fake_server = {
    port = function() return 45678 end,
    close = function() closed = true end,
    run = function(self, timeout, handler)
      calls = calls + 1
      if calls == 1 then
        self.r1 = { handler("GET", "/_sim/time", {}, "") }
      elseif calls == 2 then
        self.r2 = { handler("POST", "/_sim/faults", {}, '{"service":"*","drop":true,"times":1}') }
      elseif calls == 3 then
        self.r3 = { handler("POST", "/", { ["content-type"] = "application/x-amz-json-1.1",
          ["x-amz-target"] = "AmazonEC2ContainerServiceV20141113.ListClusters" }, "{}") }
      end
    end,
  }
  local saved = package.loaded["ecsplay.core.simserve"]
  package.loaded["ecsplay.core.simserve"] = { listen = function(o)
    T.eq(o, { port = 0, host = "127.0.0.1" })
    return fake_server
  end }
  local ok, sim = pcall(require("ecsplay.sim.serve").run, { port = 0, scenario = { world = "empty" },
    speed = 60, no_auth = true, services = {}, warn = function() end,
    out = function(l) lines[#lines + 1] = l end, stop = function() return calls >= 3 end })
  package.loaded["ecsplay.core.simserve"] = saved
  T.ok(ok, tostring(sim))
  T.eq(lines, { "listening on http://127.0.0.1:45678" })
  T.ok(closed, "server closed")
  T.eq(fake_server.r1[1], 200)
  T.eq(json.decode(fake_server.r1[3]).start, START)
  T.eq(fake_server.r2[1], 200)
  T.eq(fake_server.r3[1], 0, "a dropped connection is status 0")
  T.ok(sim:clock() >= START, "clock runs from the scenario start")
end)
