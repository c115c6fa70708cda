-- The wire codecs, both halves: client build → server decode gives the same params; server
-- encode → client parse gives the same output; AWS-documented literals parse as boto3 would.
local T = require "harness"
local model = require "ecsplay.aws.model"
local protocol = require "ecsplay.aws.protocol"
local json = require "ecsplay.aws.protocol.json"
local query = require "ecsplay.aws.protocol.query"
local timestamp = require "ecsplay.util.timestamp"

local ecs, elbv2, cw = model.load("ecs"), model.load("elbv2"), model.load("cloudwatch")
local cd, sts = model.load("codedeploy"), model.load("sts")

---------------------------------------------------------------------------------------
-- The runtime's XML parser is C (ecsplay.core.xml); under plain lua5.4 use a tiny one
-- with the same contract: {name=, attrs=, children=, text=}, whitespace-only text dropped
-- when an element has children.
local function tiny_xml(s)
  local ents = { amp = "&", lt = "<", gt = ">", quot = '"', apos = "'" }
  local function unent(t)
    return (t:gsub("&(#?x?)(%w+);", function(kind, v)
      if kind == "#x" then return utf8.char(tonumber(v, 16)) end
      if kind == "#" then return utf8.char(tonumber(v)) end
      return ents[v] or ("&" .. v .. ";")
    end))
  end
  s = s:gsub("^%s*<%?xml.-%?>", ""):gsub("<!%-%-.-%-%->", "")
  local root, stack, pos = nil, {}, 1
  local function add_text(t)
    local top = stack[#stack]
    if top then top.parts[#top.parts + 1] = unent(t) end
  end
  while true do
    local lt = s:find("<", pos, true)
    if not lt then break end
    if lt > pos then add_text(s:sub(pos, lt - 1)) end
    local close, name, attrs, selfclose, gt = s:match("^<(/?)([%w_:%.%-]+)(.-)(/?)>()", lt)
    if not name then return nil, "XML error at character " .. lt end
    if close == "/" then
      local el = table.remove(stack)
      if not el or el.name ~= name then return nil, "mismatched tag " .. name end
      local text = table.concat(el.parts)
      el.parts = nil
      if #el.children > 0 and text:match("^%s*$") then text = nil end
      el.text = text
    else
      local el = { name = name, attrs = {}, children = {}, parts = {} }
      for k, v in attrs:gmatch('([%w_:%-]+)%s*=%s*"([^"]*)"') do el.attrs[k] = unent(v) end
      local parent = stack[#stack]
      if parent then parent.children[#parent.children + 1] = el else root = el end
      if selfclose == "/" then el.parts = nil el.text = "" else stack[#stack + 1] = el end
    end
    pos = gt
  end
  if #stack > 0 or not root then return nil, "XML error: unclosed element" end
  return root
end
local ok_xml, core_xml = pcall(require, "ecsplay.core.xml")
if not (ok_xml and type(core_xml) == "table" and core_xml.parse) then query.set_xml_parser(tiny_xml) end

-- Deep equality with the path of the first difference (numbers compare by value).
local function same(a, b, path)
  path = path or "$"
  if type(a) ~= type(b) then
    return false, string.format("%s: %s vs %s", path, type(a), type(b))
  end
  if type(a) ~= "table" then
    if a ~= b then return false, string.format("%s: %s vs %s", path, tostring(a), tostring(b)) end
    return true
  end
  for k, v in pairs(a) do
    local ok, d = same(v, b[k], path .. "." .. tostring(k))
    if not ok then return false, d end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) .. ": missing on the left" end
  end
  return true
end
local function same_ok(a, b, msg)
  local ok, d = same(a, b)
  T.ok(ok, (msg or "tables differ") .. ": " .. tostring(d))
end

-- Client build → server decode; returns the decoded params.
local function request_trip(codec, m, op, params)
  local req = codec.build_request(m, op, params)
  local got_op, got = codec.decode_request(m, req.body, req.headers)
  T.eq(got_op, op, "decoded operation")
  same_ok(got, params, op .. " params round trip")
  return req
end

-- Server encode → client parse; returns the parsed output.
local function response_trip(codec, m, op, output)
  local status, headers, body = codec.encode_response(m, op, output, "req-1")
  T.eq(status, 200)
  local ok, got = codec.parse_response(m, op, status, headers, body)
  T.ok(ok, "parse_response ok: " .. tostring(got and got.message))
  same_ok(got, output, op .. " output round trip")
  return body, headers
end

---------------------------------------------------------------------------------------
T.test("timestamps: ISO 8601 ↔ epoch", function()
  T.eq(timestamp.parse("2026-11-26T10:00:00Z"), 1795687200)
  T.eq(math.type(timestamp.parse("2026-11-26T10:00:00Z")), "integer")
  T.eq(timestamp.parse("2026-11-26T10:00:00.250Z"), 1795687200.25)
  T.eq(timestamp.parse("2026-11-26T12:00:00+02:00"), 1795687200)
  T.eq(timestamp.parse("2024-02-29T23:59:59Z"), 1709251199)
  T.eq(timestamp.parse("2000-01-01"), 946684800)
  T.eq(timestamp.iso8601(1795687200), "2026-11-26T10:00:00.000Z")
  T.eq(timestamp.iso8601(1795687200.5), "2026-11-26T10:00:00.500Z")
  T.eq(timestamp.iso8601(1709251199, false), "2024-02-29T23:59:59Z")
  T.eq(timestamp.iso8601(0), "1970-01-01T00:00:00.000Z")
  T.eq(timestamp.iso8601_compact(1458820800), "2016-03-24T12:00:00Z")
  T.eq(timestamp.to_epoch("1795687200"), 1795687200)
  local v, err = timestamp.parse("yesterday")
  T.eq(v, nil)
  T.ok(err:find("ISO 8601", 1, true), err)
  T.eq(timestamp.parse("2026-13-01T00:00:00Z"), nil, "month 13")
end)

T.test("protocol.for_model / for_request pick the codec", function()
  T.eq(protocol.for_model(ecs), json)
  T.eq(protocol.for_model(cd), json)
  T.eq(protocol.for_model(cw), json, "CloudWatch client defaults to json 1.0")
  T.eq(protocol.for_model(cw, "query"), query)
  T.eq(protocol.for_model(elbv2), query)
  T.eq(protocol.for_model(sts), query)
  T.raises(function() protocol.for_model(elbv2, "json") end, "does not speak")
  T.eq(protocol.for_request(cw, { ["X-Amz-Target"] = "GraniteServiceVersion20100801.GetMetricData",
    ["Content-Type"] = "application/x-amz-json-1.0" }), json)
  T.eq(protocol.for_request(cw, { ["content-type"] = "application/x-www-form-urlencoded; charset=utf-8" }),
    query)
  local c, err = protocol.for_request(elbv2, { ["Content-Type"] = "application/x-amz-json-1.1" })
  T.eq(c, nil)
  T.ok(err:find("json", 1, true), err)
end)

T.test("base64 and number formatting", function()
  T.eq(protocol.base64("hello!?"), "aGVsbG8hPw==")
  T.eq(protocol.unbase64("aGVsbG8hPw=="), "hello!?")
  T.eq(protocol.unbase64(protocol.base64("\0\1\2\255")), "\0\1\2\255")
  T.eq(protocol.format_number(3), "3")
  T.eq(protocol.format_number(3.0), "3.0")
  T.eq(protocol.format_number(0.1), "0.1")
  T.eq(protocol.format_number(1795687200.123), "1795687200.123")
  T.eq(protocol.format_number(0 / 0), nil)
end)

T.test("numbers written again get the same text: an integer and its float, zero's sign", function()
  -- each value twice, the second time from what the first remembered, in an order where an
  -- integer and the float of the same value (one table key) follow each other
  local cases = { { 2, "2" }, { 2.0, "2.0" }, { 2, "2" }, { -0.0, "-0.0" }, { 0.0, "0.0" },
    { 0, "0" }, { -0.0, "-0.0" }, { 1795687200, "1795687200" }, { 1795687200.0, "1795687200.0" },
    { 1795687200.5, "1795687200.5" }, { 1 / 3, "0.3333333333333333" }, { 1e300, "1e+300" },
    { math.mininteger, "-9223372036854775808" } }
  for round = 1, 2 do
    for _, c in ipairs(cases) do
      T.eq(protocol.format_number(c[1]), c[2], ("round %d, %s %s"):format(round, math.type(c[1]), c[2]))
    end
  end
  -- past the bound of remembered numbers, old and new ones still get their own text
  for i = 1, 10000 do T.eq(protocol.format_number(i + 0.5), tostring(i + 0.5)) end
  T.eq(protocol.format_number(7), "7")
  T.eq(protocol.format_number(7.0), "7.0")
end)

---------------------------------------------------------------------------------------
-- JSON (ECS, CodeDeploy, CloudWatch json 1.0)

T.test("json: UpdateService request headers and body", function()
  local req = json.build_request(ecs, "UpdateService", { cluster = "production", service = "api",
    desiredCount = 4, forceNewDeployment = true })
  T.eq(req.method, "POST")
  T.eq(req.path, "/")
  T.eq(req.headers["Content-Type"], "application/x-amz-json-1.1")
  T.eq(req.headers["X-Amz-Target"], "AmazonEC2ContainerServiceV20141113.UpdateService")
  T.eq(req.body, '{"cluster":"production","service":"api","desiredCount":4,"forceNewDeployment":true}',
    "model order, integer stays integer")
  T.eq(json.build_request(ecs, "ListClusters", {}).body, "{}")
  T.eq(json.build_request(ecs, "DescribeServices", { services = {} }).body, '{"services":[]}',
    "an empty list is an array")
end)

T.test("json: UpdateService and DescribeServices round trips", function()
  request_trip(json, ecs, "UpdateService", {
    cluster = "production", service = "api", desiredCount = 4, taskDefinition = "api:2",
    deploymentConfiguration = { maximumPercent = 200, minimumHealthyPercent = 100,
      deploymentCircuitBreaker = { enable = true, rollback = true } },
    loadBalancers = { { targetGroupArn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api-stable/1",
      containerName = "api", containerPort = 8080 } },
  })
  request_trip(json, ecs, "DescribeServices", { cluster = "production", services = { "api", "api-canary" },
    include = { "TAGS" } })
  response_trip(json, ecs, "DescribeServices", {
    services = { {
      serviceName = "api", status = "ACTIVE", desiredCount = 4, runningCount = 3, pendingCount = 1,
      createdAt = 1795687200.123, taskDefinition = "arn:aws:ecs:us-east-1:123456789012:task-definition/api:2",
      deploymentConfiguration = { maximumPercent = 200, minimumHealthyPercent = 100,
        deploymentCircuitBreaker = { enable = true, rollback = true } },
      deployments = {
        { id = "ecs-svc/1", status = "PRIMARY", rolloutState = "IN_PROGRESS", desiredCount = 4,
          runningCount = 3, failedTasks = 0, createdAt = 1795687200, updatedAt = 1795687260.5 },
        { id = "ecs-svc/0", status = "ACTIVE", rolloutState = "COMPLETED", desiredCount = 0,
          runningCount = 1, failedTasks = 0, createdAt = 1795600000, updatedAt = 1795687200 },
      },
      events = { { id = "e1", createdAt = 1795687201, message = "(service api) has started 1 tasks: (task abc)." } },
      loadBalancers = {},
    } },
    failures = {},
  })
end)

T.test("json: RegisterTaskDefinition round trip (nested lists, maps, empty list)", function()
  local params = {
    family = "api", networkMode = "awsvpc", requiresCompatibilities = { "FARGATE" },
    cpu = "256", memory = "512",
    containerDefinitions = { {
      name = "api", image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/api:v2.0", essential = true,
      portMappings = { { containerPort = 8080, protocol = "tcp" } },
      environment = { { name = "MODE", value = "canary \"quoted\"\n" } },
      command = {},
      dockerLabels = { team = "payments", ["com.example/tier"] = "web" },
      healthCheck = { command = { "CMD-SHELL", "curl -f http://localhost:8080/health || exit 1" },
        interval = 10, retries = 3 },
    } },
    tags = { { key = "env", value = "prod" } },
  }
  local req = request_trip(json, ecs, "RegisterTaskDefinition", params)
  T.ok(req.body:find('"command":[]', 1, true), "empty command list encodes as []")
  T.ok(req.body:find('"value":"canary \\"quoted\\"\\n"', 1, true), "string escaping")
  response_trip(json, ecs, "RegisterTaskDefinition", { taskDefinition = {
    taskDefinitionArn = "arn:aws:ecs:us-east-1:123456789012:task-definition/api:2", family = "api",
    revision = 2, status = "ACTIVE", registeredAt = 1795687200.25,
    containerDefinitions = params.containerDefinitions, requiresCompatibilities = { "FARGATE" },
  }, tags = params.tags })
end)

T.test("json: CodeDeploy CreateDeployment round trip", function()
  local req = request_trip(json, cd, "CreateDeployment", {
    applicationName = "app-deploy", deploymentGroupName = "app-dg",
    deploymentConfigName = "CodeDeployDefault.ECSCanary10Percent5Minutes",
    revision = { revisionType = "AppSpecContent", appSpecContent = {
      content = '{"version":0.0,"Resources":[{"TargetService":{"Type":"AWS::ECS::Service"}}]}' } },
    autoRollbackConfiguration = { enabled = true, events = { "DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM" } },
  })
  T.eq(req.headers["X-Amz-Target"], "CodeDeploy_20141006.CreateDeployment")
  response_trip(json, cd, "CreateDeployment", { deploymentId = "d-ABCDEF123" })
end)

T.test("json: CloudWatch GetMetricData over json 1.0", function()
  local params = {
    StartTime = 1795687200, EndTime = 1795687500,
    MetricDataQueries = {
      { Id = "m1", ReturnData = false, MetricStat = { Period = 60, Stat = "Sum",
        Metric = { Namespace = "AWS/ApplicationELB", MetricName = "HTTPCode_Target_5XX_Count",
          Dimensions = { { Name = "TargetGroup", Value = "targetgroup/api-canary/1" },
                         { Name = "LoadBalancer", Value = "app/web/1" } } } } },
      { Id = "e1", Expression = "100 * m1 / m2", Label = "5xx rate" },
    },
  }
  local req = request_trip(json, cw, "GetMetricData", params)
  T.eq(req.headers["Content-Type"], "application/x-amz-json-1.0")
  T.eq(req.headers["X-Amz-Target"], "GraniteServiceVersion20100801.GetMetricData")
  T.eq(req.headers["x-amzn-query-mode"], "true", "awsQueryCompatible")
  T.ok(req.body:find('"StartTime":1795687200', 1, true), "timestamps as epoch seconds")
  local iso = json.build_request(cw, "GetMetricData", { StartTime = "2026-11-26T10:00:00Z",
    EndTime = "2026-11-26T10:05:00Z", MetricDataQueries = {} })
  T.ok(iso.body:find('"StartTime":1795687200,"EndTime":1795687500', 1, true), iso.body)
  response_trip(json, cw, "GetMetricData", { MetricDataResults = {
    { Id = "e1", Label = "5xx rate", StatusCode = "Complete",
      Timestamps = { 1795687440, 1795687380 }, Values = { 0.5, 1.25 } },
  }, Messages = {} })
end)

T.test("json: a literal AWS error body, with and without namespace", function()
  local ok, e = json.parse_response(ecs, "DescribeServices", 400,
    { ["x-amzn-requestid"] = "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111", ["content-type"] = "application/x-amz-json-1.1" },
    '{"__type":"ClusterNotFoundException","message":"Cluster not found."}')
  T.eq(ok, false)
  T.eq(e.code, "ClusterNotFoundException")
  T.eq(e.message, "Cluster not found.")
  T.eq(e.status, 400)
  T.eq(e.request_id, "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111")
  local _, e2 = json.parse_response(cd, "CreateDeployment", 400, {},
    '{"__type":"com.amazonaws.codedeploy#DeploymentGroupDoesNotExistException","Message":"No group"}')
  T.eq(e2.code, "DeploymentGroupDoesNotExistException")
  T.eq(e2.message, "No group")
  local _, e3 = json.parse_response(ecs, "ListClusters", 400,
    { ["X-Amzn-ErrorType"] = "ThrottlingException:http://internal.amazon.com/coral/" }, '{"message":"Rate exceeded"}')
  T.eq(e3.code, "ThrottlingException")
  local _, e4 = json.parse_response(ecs, "ListClusters", 503, {}, "<html>Service Unavailable</html>")
  T.eq(e4.code, "503")
  T.eq(e4.status, 503)
  local _, e5 = json.parse_response(cw, "GetMetricData", 400,
    { ["x-amzn-query-error"] = "InvalidParameterValue;Sender" },
    '{"__type":"com.amazonaws.cloudwatch#InvalidParameterValueException","message":"bad"}')
  T.eq(e5.code, "InvalidParameterValue", "query-compatible code wins")
  T.eq(e5.type, "Sender")
end)

T.test("json server: encode_error as AWS sends it, statuses from the model", function()
  local status, headers, body = json.encode_error(ecs, "ClusterNotFoundException", "Cluster not found.", nil, "rid-1")
  T.eq(status, 400)
  T.eq(body, '{"__type":"ClusterNotFoundException","message":"Cluster not found."}')
  T.eq(headers["x-amzn-RequestId"], "rid-1")
  T.eq(headers["Content-Type"], "application/x-amz-json-1.1")
  T.eq((json.encode_error(ecs, "ServerException", "boom")), 500, "fault → 500")
  T.eq((json.encode_error(ecs, "ThrottlingException", "Rate exceeded")), 400, "unmodelled code")
  local s2, h2, b2 = json.encode_error(cw, "ResourceNotFound", "no such alarm")
  T.eq(s2, 404)
  T.eq(h2["x-amzn-query-error"], "ResourceNotFound;Sender")
  local ok, e = json.parse_response(cw, "DescribeAlarms", s2, h2, b2)
  T.eq(ok, false)
  T.eq(e.code, "ResourceNotFound")
  T.eq(e.message, "no such alarm")
  -- A client parses its own server's error back to the same code.
  local _, e2 = json.parse_response(ecs, "DescribeServices", json.encode_error(ecs, "AccessDeniedException", "no"))
  T.eq(e2.code, "AccessDeniedException")
end)

T.test("json server: malformed requests", function()
  local h = { ["X-Amz-Target"] = "AmazonEC2ContainerServiceV20141113.UpdateService" }
  local op, e = json.decode_request(ecs, '{"service": "api", ', h)
  T.eq(op, nil)
  T.eq(e.code, "SerializationException")
  T.eq(e.status, 400)
  local _, e2 = json.decode_request(ecs, '{"service":"api","desiredCount":"four"}', h)
  T.eq(e2.code, "SerializationException")
  T.ok(e2.message:find("desiredCount", 1, true), e2.message)
  local _, e3 = json.decode_request(ecs, "{}", { ["X-Amz-Target"] = "AmazonEC2ContainerServiceV20141113.Nope" })
  T.eq(e3.code, "UnknownOperationException")
  local _, e4 = json.decode_request(ecs, "{}", {})
  T.eq(e4.code, "UnknownOperationException")
  local op5, p5 = json.decode_request(ecs, "", h)
  T.eq(op5, "UpdateService")
  same_ok(p5, {}, "empty body")
  local op6, p6 = json.decode_request(ecs, '{"service":"api","unknownThing":1,"desiredCount":null}', h)
  T.eq(op6, "UpdateService")
  same_ok(p6, { service = "api" }, "unknown members and nulls dropped")
end)

T.test("json: both decoders (cjson and the Lua fallback) on the hard cases", function()
  for _, dec in ipairs { json.decode, json.lua_decode } do
    local v = dec('{"a":[1,2.5,-3e2],"b":"\\u00e9\\ud83d\\ude00\\n\\"","c":true,"d":null,"e":{}}')
    T.eq(v.a[3], -300)
    T.eq(v.a[2], 2.5)
    T.eq(v.b, "é😀\n\"")
    T.eq(v.c, true)
    T.eq(type(v.e), "table")
    T.eq(select(1, dec("{bad")), nil)
    T.eq(select(1, dec('{"a":1} x')), nil)
    local m, err = dec('[1,2')
    T.eq(m, nil)
    T.eq(type(err), "string")
  end
end)

---------------------------------------------------------------------------------------
-- Query (ELBv2, STS, CloudWatch query)

T.test("query: DescribeTargetGroups request body", function()
  local req = query.build_request(elbv2, "DescribeTargetGroups", { Names = { "api-stable" } })
  T.eq(req.body, "Action=DescribeTargetGroups&Version=2015-12-01&Names.member.1=api-stable")
  T.eq(req.headers["Content-Type"], "application/x-www-form-urlencoded; charset=utf-8")
  T.eq(req.method, "POST")
  local many = query.build_request(elbv2, "DescribeTargetGroups", { Names = { "a", "b c", "d&e=f" }, PageSize = 10 })
  T.eq(many.body, "Action=DescribeTargetGroups&Version=2015-12-01&Names.member.1=a"
    .. "&Names.member.2=b%20c&Names.member.3=d%26e%3Df&PageSize=10")
  local empty = query.build_request(elbv2, "DescribeTargetGroups", { Names = {} })
  T.eq(empty.body, "Action=DescribeTargetGroups&Version=2015-12-01&Names=")
  request_trip(query, elbv2, "DescribeTargetGroups", { Names = { "a", "b c", "d&e=f", "ü" }, PageSize = 10 })
  request_trip(query, elbv2, "DescribeTargetGroups", { Names = {} })
end)

T.test("query: ModifyRule with a weighted forward action", function()
  local params = {
    RuleArn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/1/2/3",
    Actions = { { Type = "forward", Order = 1, ForwardConfig = {
      TargetGroups = {
        { TargetGroupArn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api-stable/1", Weight = 90 },
        { TargetGroupArn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api-canary/2", Weight = 10 },
      },
      TargetGroupStickinessConfig = { Enabled = false } } } },
    Conditions = { { Field = "path-pattern", PathPatternConfig = { Values = { "/*" } } } },
  }
  local req = request_trip(query, elbv2, "ModifyRule", params)
  T.ok(req.body:find("&Actions.member.1.ForwardConfig.TargetGroups.member.2.Weight=10&", 1, true), req.body)
  T.ok(req.body:find("TargetGroupStickinessConfig.Enabled=false", 1, true), req.body)
  T.ok(req.body:find("Conditions.member.1.PathPatternConfig.Values.member.1=%2F%2A", 1, true), req.body)
  response_trip(query, elbv2, "ModifyRule", { Rules = { {
    RuleArn = params.RuleArn, Priority = "10", IsDefault = false,
    Conditions = { { Field = "path-pattern", Values = { "/*" }, PathPatternConfig = { Values = { "/*" } } } },
    Actions = params.Actions } } })
end)

T.test("query: DescribeRules and DescribeTargetGroups responses (one, many, empty)", function()
  response_trip(query, elbv2, "DescribeRules", { Rules = {
    { RuleArn = "arn:r1", Priority = "10", IsDefault = false, Conditions = {},
      Actions = { { Type = "forward", ForwardConfig = { TargetGroups = {
        { TargetGroupArn = "arn:tg1", Weight = 100 }, { TargetGroupArn = "arn:tg2", Weight = 0 } } } } } },
    { RuleArn = "arn:r2", Priority = "default", IsDefault = true, Conditions = {},
      Actions = { { Type = "forward", TargetGroupArn = "arn:tg3" } } },
  }, NextMarker = "m2" })
  local one = { TargetGroups = { { TargetGroupArn = "arn:tg1", TargetGroupName = "api-stable",
    Protocol = "HTTP", Port = 8080, HealthCheckEnabled = true, HealthCheckPath = "/health",
    Matcher = { HttpCode = "200" }, LoadBalancerArns = { "arn:lb" } } } }
  local body = response_trip(query, elbv2, "DescribeTargetGroups", one)
  T.eq(body:find('<DescribeTargetGroupsResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">\n'
    .. "  <DescribeTargetGroupsResult>\n    <TargetGroups>\n      <member>\n", 1, true), 1, body)
  T.ok(body:find("<RequestId>req%-1</RequestId>"), body)
  local many = { TargetGroups = {} }
  for i = 1, 3 do
    many.TargetGroups[i] = { TargetGroupArn = "arn:tg" .. i, TargetGroupName = "tg" .. i, LoadBalancerArns = {} }
  end
  response_trip(query, elbv2, "DescribeTargetGroups", many)
  local _, _, b = query.encode_response(elbv2, "DescribeTargetGroups", { TargetGroups = {} }, "r")
  T.ok(b:find("<TargetGroups/>", 1, true), b)
  local ok, out = query.parse_response(elbv2, "DescribeTargetGroups", 200, {}, b)
  T.ok(ok)
  T.eq(type(out.TargetGroups), "table")
  T.eq(#out.TargetGroups, 0)
end)

-- From the ELBv2 API reference, DescribeTargetGroups "Sample Response".
local DOC_TG = [[
<DescribeTargetGroupsResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">
  <DescribeTargetGroupsResult>
    <TargetGroups>
      <member>
        <TargetGroupArn>arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067</TargetGroupArn>
        <HealthCheckTimeoutSeconds>5</HealthCheckTimeoutSeconds>
        <HealthCheckPort>traffic-port</HealthCheckPort>
        <Matcher>
          <HttpCode>200</HttpCode>
        </Matcher>
        <TargetGroupName>my-targets</TargetGroupName>
        <HealthCheckProtocol>HTTP</HealthCheckProtocol>
        <HealthCheckPath>/</HealthCheckPath>
        <Protocol>HTTP</Protocol>
        <Port>80</Port>
        <VpcId>vpc-3ac0fb5f</VpcId>
        <HealthyThresholdCount>5</HealthyThresholdCount>
        <HealthCheckIntervalSeconds>30</HealthCheckIntervalSeconds>
        <LoadBalancerArns>
          <member>arn:aws:elasticloadbalancing:us-west-2:123456789012:loadbalancer/app/my-load-balancer/50dc6c495c0c9188</member>
        </LoadBalancerArns>
        <UnhealthyThresholdCount>2</UnhealthyThresholdCount>
      </member>
    </TargetGroups>
  </DescribeTargetGroupsResult>
  <ResponseMetadata>
    <RequestId>70092c0e-f3a9-11e5-ae48-cff02092876b</RequestId>
  </ResponseMetadata>
</DescribeTargetGroupsResponse>
]]

T.test("query: the documented DescribeTargetGroups sample response", function()
  local ok, out = query.parse_response(elbv2, "DescribeTargetGroups", 200, {}, DOC_TG)
  T.ok(ok)
  T.eq(#out.TargetGroups, 1, "a one-member list is still an array")
  local tg = out.TargetGroups[1]
  same_ok(tg, {
    TargetGroupArn = "arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067",
    HealthCheckTimeoutSeconds = 5, HealthCheckPort = "traffic-port", Matcher = { HttpCode = "200" },
    TargetGroupName = "my-targets", HealthCheckProtocol = "HTTP", HealthCheckPath = "/",
    Protocol = "HTTP", Port = 80, VpcId = "vpc-3ac0fb5f", HealthyThresholdCount = 5,
    HealthCheckIntervalSeconds = 30, UnhealthyThresholdCount = 2,
    LoadBalancerArns = { "arn:aws:elasticloadbalancing:us-west-2:123456789012:loadbalancer/app/my-load-balancer/50dc6c495c0c9188" },
  }, "typed like boto3")
  T.eq(math.type(tg.Port), "integer")
end)

T.test("query: a literal XML error response", function()
  local body = [[<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">
  <Error>
    <Type>Sender</Type>
    <Code>RuleNotFound</Code>
    <Message>One or more rules not found</Message>
  </Error>
  <RequestId>9d3c5e2a-1111-2222-3333-444455556666</RequestId>
</ErrorResponse>]]
  local ok, e = query.parse_response(elbv2, "ModifyRule", 400, { ["content-type"] = "text/xml" }, body)
  T.eq(ok, false)
  T.eq(e.code, "RuleNotFound")
  T.eq(e.message, "One or more rules not found")
  T.eq(e.type, "Sender")
  T.eq(e.status, 400)
  T.eq(e.request_id, "9d3c5e2a-1111-2222-3333-444455556666")
  local _, e2 = query.parse_response(elbv2, "ModifyRule", 503, {}, "")
  T.eq(e2.code, "503")
end)

T.test("query server: encode_error like AWS (wire code, status, escaping)", function()
  local status, headers, body = query.encode_error(elbv2, "RuleNotFoundException", "Rule <x> & co", nil, "rid-9")
  T.eq(status, 400)
  T.eq(headers["Content-Type"], "text/xml")
  T.eq(body, '<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">\n'
    .. "  <Error>\n    <Type>Sender</Type>\n    <Code>RuleNotFound</Code>\n"
    .. "    <Message>Rule &lt;x&gt; &amp; co</Message>\n  </Error>\n"
    .. "  <RequestId>rid-9</RequestId>\n</ErrorResponse>\n")
  local ok, e = query.parse_response(elbv2, "ModifyRule", status, headers, body)
  T.eq(ok, false)
  T.eq(e.code, "RuleNotFound")
  T.eq(e.message, "Rule <x> & co")
  T.eq((query.encode_error(cw, "ResourceNotFound", "x")), 404)
  T.eq((query.encode_error(elbv2, "Throttling", "Rate exceeded", 400)), 400)
  local s5, _, b5 = query.encode_error(cw, "InternalServiceFault", "x")
  T.eq(s5, 500)
  T.ok(b5:find("<Type>Receiver</Type>", 1, true) and b5:find("<Code>InternalServiceError</Code>", 1, true), b5)
end)

T.test("query: CloudWatch GetMetricData and PutMetricData (Debian boto3's protocol)", function()
  local params = {
    StartTime = 1795687200, EndTime = 1795687500.5, ScanBy = "TimestampDescending",
    MetricDataQueries = {
      { Id = "m1", ReturnData = false, MetricStat = { Period = 60, Stat = "Sum",
        Metric = { Namespace = "AWS/ApplicationELB", MetricName = "RequestCount",
          Dimensions = { { Name = "TargetGroup", Value = "targetgroup/api-canary/1" } } } } },
      { Id = "e1", Expression = "m1 / 60", Label = "rps" },
    },
  }
  local req = request_trip(query, cw, "GetMetricData", params)
  T.ok(req.body:find("&StartTime=2026-11-26T10%3A00%3A00Z&EndTime=2026-11-26T10%3A05%3A00.500Z&", 1, true), req.body)
  T.ok(req.body:find("MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Name=TargetGroup", 1, true))
  local body = response_trip(query, cw, "GetMetricData", { MetricDataResults = {
    { Id = "e1", Label = "rps", StatusCode = "Complete", Timestamps = { 1795687440, 1795687380 },
      Values = { 200.5, 12.0 } } }, Messages = {} })
  T.ok(body:find("<member>2026-11-26T10:04:00.000Z</member>", 1, true), body)
  T.ok(body:find("<member>12.0</member>", 1, true), body)
  request_trip(query, cw, "PutMetricData", { Namespace = "Canary/Gates", MetricData = {
    { MetricName = "Latency", Unit = "Milliseconds", Timestamp = 1795687200, Value = 12.5,
      Dimensions = { { Name = "Service", Value = "api" } }, Values = { 1.0, 2.5 }, Counts = { 3.0, 1.0 } } } })
  local status, _, pbody = query.encode_response(cw, "PutMetricData", nil, "rid")
  T.eq(status, 200)
  T.eq(pbody, '<PutMetricDataResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/">\n'
    .. "  <ResponseMetadata>\n    <RequestId>rid</RequestId>\n  </ResponseMetadata>\n</PutMetricDataResponse>\n")
  local ok, out = query.parse_response(cw, "PutMetricData", 200, {}, pbody)
  T.ok(ok)
  same_ok(out, {}, "no output")
end)

T.test("query: STS AssumeRole output with a timestamp", function()
  local out = { Credentials = { AccessKeyId = "ASIAEXAMPLE", SecretAccessKey = "s3cr3t", SessionToken = "tok",
    Expiration = 1795690800 }, AssumedRoleUser = { AssumedRoleId = "AROA:x", Arn = "arn:aws:sts::123456789012:assumed-role/r/x" } }
  local body = response_trip(query, sts, "AssumeRole", out)
  T.ok(body:find("<Expiration>2026-11-26T11:00:00.000Z</Expiration>", 1, true), body)
  T.ok(body:find('xmlns="https://sts.amazonaws.com/doc/2011-06-15/"', 1, true))
end)

T.test("query server: malformed requests", function()
  local op, e = query.decode_request(elbv2, "Version=2015-12-01", {})
  T.eq(op, nil)
  T.eq(e.code, "MissingAction")
  local _, e2 = query.decode_request(elbv2, "Action=Nope&Version=2015-12-01", {})
  T.eq(e2.code, "InvalidAction")
  T.eq(e2.status, 400)
  local _, e3 = query.decode_request(elbv2, "Action=DescribeTargetGroups&Version=2015-12-01&PageSize=ten", {})
  T.eq(e3.code, "ValidationError")
  T.ok(e3.message:find("PageSize", 1, true), e3.message)
  local op4, p4 = query.decode_request(elbv2, "Action=DescribeTargetGroups&Version=2015-12-01&Names.member.1=a+b", {})
  T.eq(op4, "DescribeTargetGroups")
  same_ok(p4, { Names = { "a b" } }, "+ is a space")
end)

T.test("operations by boto3 name in codecs", function()
  local req = query.build_request(elbv2, "describe_target_groups", {})
  T.eq(req.body, "Action=DescribeTargetGroups&Version=2015-12-01")
  T.eq(json.build_request(ecs, "list_clusters", {}).headers["X-Amz-Target"],
    "AmazonEC2ContainerServiceV20141113.ListClusters")
  T.eq(model.snake(ecs, "ListTagsForResource"), "list_tags_for_resource")
  T.eq(model.snake(cw, "GetMetricData"), "get_metric_data")
  T.eq(model.xform_name("DescribeARNs"), "describe_arns")
end)
