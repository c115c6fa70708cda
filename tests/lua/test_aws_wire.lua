-- aws.call over a real loopback socket against tests/wire/aws_stub.py: exact requests per
-- protocol, response parsing, errors, retries, transport failures, validation before sending.
local T = require "harness"
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local Stub = require "aws_stub_client"
local cjson = require "cjson"
local aws = require "ecsplay.aws"
local errors = require "ecsplay.errors"

local stub = Stub.start()
local SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

local function configure(extra)
  local o = { region = "us-east-1", endpoint_url = stub.base, access_key = "AKIDEXAMPLE",
    secret_key = SECRET, env = {}, rand = function() return 0 end, log = function() end }
  for k, v in pairs(extra or {}) do o[k] = v end
  aws.configure(o)
end

local function fresh(extra)
  stub:reset()
  configure(extra)
end

local function json_ok(body)
  return { status = 200, body = body, headers = { ["Content-Type"] = "application/x-amz-json-1.1" } }
end

local function xml_ok(body)
  return { status = 200, body = body, headers = { ["Content-Type"] = "text/xml" } }
end

local function call_err(service, op, params)
  local ok, e = pcall(aws.call, service, op, params)
  T.ok(not ok, "expected " .. service .. " " .. op .. " to fail")
  T.ok(errors.is(e), "error object, got " .. tostring(e))
  T.ok(not tostring(e):find(SECRET, 1, true), "secret in error text")
  return e
end

local function decode_form(body)
  local t = {}
  for k, v in body:gmatch("([^&=]+)=([^&]*)") do
    t[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return t
end

T.test("ECS json 1.1: exact request and parsed response", function()
  fresh()
  stub:script { json_ok([[{"services":[{"serviceName":"api","status":"ACTIVE","runningCount":2,
    "desiredCount":2,"createdAt":1.7e9,"deployments":[{"id":"ecs-svc/1","status":"PRIMARY",
    "rolloutState":"COMPLETED","runningCount":2}]}],"failures":[]}]]) }
  local out = aws.call("ecs", "DescribeServices", { cluster = "production", services = { "api" } })
  local reqs = stub:requests()
  T.eq(#reqs, 1, "one request")
  local r = reqs[1]
  T.eq(r.method, "POST")
  T.eq(r.path, "/")
  T.eq(r.headers["x-amz-target"], "AmazonEC2ContainerServiceV20141113.DescribeServices")
  T.eq(r.headers["content-type"], "application/x-amz-json-1.1")
  T.eq(cjson.decode(r.body), { cluster = "production", services = { "api" } }, "body")
  T.ok(r.headers["authorization"]:find("^AWS4%-HMAC%-SHA256 Credential=AKIDEXAMPLE/%d+/us%-east%-1/ecs/aws4_request"),
    "authorization: " .. tostring(r.headers["authorization"]))
  T.ok(r.headers["x-amz-date"]:match("^%d+T%d+Z$"), "x-amz-date")
  T.ok(r.headers["user-agent"]:find("^ecsplay/"), "user agent")
  -- the signature verifies over the headers as the server received them
  local sigv4 = require "ecsplay.aws.sigv4"
  local auth = assert(sigv4.parse_authorization(r.headers["authorization"]))
  local sig = sigv4.signature_for { method = r.method, path = r.path, headers = r.headers, body = r.body,
    region = auth.region, service = auth.service, access_key = auth.access_key, secret_key = SECRET,
    signed_headers = auth.signed_headers }
  T.eq(sig, auth.signature, "signature verifies")
  T.eq(out.services[1].serviceName, "api")
  T.eq(out.services[1].deployments[1].rolloutState, "COMPLETED")
  T.eq(out.services[1].createdAt, 1.7e9, "timestamp as epoch number")
  T.eq(#out.failures, 0)
end)

T.test("session token is sent as X-Amz-Security-Token", function()
  fresh { session_token = "FwoGZXIvYXdzEXAMPLETOKEN" }
  stub:script { json_ok("{}") }
  aws.call("ecs", "ListClusters", {})
  T.eq(stub:requests()[1].headers["x-amz-security-token"], "FwoGZXIvYXdzEXAMPLETOKEN")
end)

T.test("CloudWatch json 1.0: target, content type, signing name, timestamps", function()
  fresh()
  stub:script { { status = 200, headers = { ["Content-Type"] = "application/x-amz-json-1.0" },
    body = [[{"MetricDataResults":[{"Id":"m1","Label":"5xx","Timestamps":[1700000060,1700000000],
    "Values":[1.5,0],"StatusCode":"Complete"}],"Messages":[]}]] } }
  local out = aws.call("cloudwatch", "GetMetricData", { StartTime = 1700000000, EndTime = "2023-11-14T22:15:00Z",
    MetricDataQueries = { { Id = "m1", Expression = "SUM(METRICS())" } } })
  local r = stub:requests()[1]
  T.eq(r.headers["x-amz-target"], "GraniteServiceVersion20100801.GetMetricData")
  T.eq(r.headers["content-type"], "application/x-amz-json-1.0")
  T.ok(r.headers["authorization"]:find("/us%-east%-1/monitoring/aws4_request"), "signing name monitoring")
  local body = cjson.decode(r.body)
  T.eq(body.StartTime, 1700000000)
  T.eq(body.EndTime, 1700000100)
  T.eq(out.MetricDataResults[1].Values, { 1.5, 0 })
  T.eq(out.MetricDataResults[1].Timestamps[1], 1700000060)
end)

local ELB_NS = 'xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"'

local function tg_xml(members)
  local parts = {}
  for _, m in ipairs(members) do
    parts[#parts + 1] = string.format("<member><TargetGroupName>%s</TargetGroupName><Port>%d</Port>"
      .. "<Matcher><HttpCode>200-299</HttpCode></Matcher><LoadBalancerArns><member>arn:lb/1</member>"
      .. "</LoadBalancerArns></member>", m, 80)
  end
  return string.format("<DescribeTargetGroupsResponse %s><DescribeTargetGroupsResult><TargetGroups>%s"
    .. "</TargetGroups></DescribeTargetGroupsResult><ResponseMetadata><RequestId>rid-1</RequestId>"
    .. "</ResponseMetadata></DescribeTargetGroupsResponse>", ELB_NS, table.concat(parts))
end

T.test("ELBv2 query: exact form body; XML lists of one and many, nested, empty", function()
  fresh()
  stub:script { xml_ok(tg_xml { "a" }), xml_ok(tg_xml { "a", "b", "c" }), xml_ok(string.format(
    "<DescribeTargetGroupsResponse %s><DescribeTargetGroupsResult><TargetGroups/>"
    .. "</DescribeTargetGroupsResult></DescribeTargetGroupsResponse>", ELB_NS)) }
  local one = aws.call("elbv2", "DescribeTargetGroups", { Names = { "a", "b c" }, PageSize = 10 })
  local r = stub:requests()[1]
  T.eq(r.method, "POST")
  T.eq(r.path, "/")
  T.eq(r.headers["content-type"], "application/x-www-form-urlencoded; charset=utf-8")
  T.eq(r.headers["x-amz-target"], nil, "no target header on query")
  T.eq(decode_form(r.body), { Action = "DescribeTargetGroups", Version = "2015-12-01",
    ["Names.member.1"] = "a", ["Names.member.2"] = "b c", PageSize = "10" }, "form")
  T.ok(r.body:find("^Action=DescribeTargetGroups&Version=2015%-12%-01&"), "Action first: " .. r.body)
  T.ok(r.headers["authorization"]:find("/elasticloadbalancing/aws4_request"), "signing name")
  T.eq(#one.TargetGroups, 1, "list of one")
  T.eq(one.TargetGroups[1].TargetGroupName, "a")
  T.eq(one.TargetGroups[1].Port, 80, "integer parsed")
  T.eq(one.TargetGroups[1].Matcher.HttpCode, "200-299", "nested structure")
  T.eq(one.TargetGroups[1].LoadBalancerArns, { "arn:lb/1" }, "nested list")
  local many = aws.call("elbv2", "DescribeTargetGroups", {})
  T.eq(#many.TargetGroups, 3, "list of many")
  T.eq(many.TargetGroups[3].TargetGroupName, "c")
  local empty = aws.call("elbv2", "DescribeTargetGroups", {})
  T.eq(empty.TargetGroups == nil or #empty.TargetGroups == 0, true, "empty result")
end)

T.test("JSON error body → error object with code, status, request id, one-line tostring", function()
  fresh()
  stub:script { { status = 400, headers = { ["Content-Type"] = "application/x-amz-json-1.1",
    ["x-amzn-RequestId"] = "req-json-1" },
    body = [[{"__type":"ServiceNotFoundException","message":"Service not found."}]] } }
  local e = call_err("ecs", "UpdateService", { service = "api", desiredCount = 1 })
  T.eq(e.code, "ServiceNotFoundException")
  T.eq(e.status, 400)
  T.eq(e.request_id, "req-json-1")
  T.eq(e.service, "ecs")
  T.eq(e.operation, "UpdateService")
  T.eq(e.retryable, false)
  T.eq(tostring(e), "ecs UpdateService: ServiceNotFoundException (400): Service not found. [request req-json-1]")
  T.ok(errors.is(e, "ServiceNotFoundException"))
  T.eq(#stub:requests(), 1, "not retried")
end)

T.test("XML error body → error object", function()
  fresh()
  stub:script { { status = 400, headers = { ["Content-Type"] = "text/xml" }, body = string.format(
    "<ErrorResponse %s><Error><Type>Sender</Type><Code>RuleNotFound</Code><Message>The specified "
    .. "rule does not exist.</Message></Error><RequestId>1234-abcd</RequestId></ErrorResponse>", ELB_NS) } }
  local e = call_err("elbv2", "ModifyRule", { RuleArn = "arn:rule/1" })
  T.eq(tostring(e), "elbv2 ModifyRule: RuleNotFound (400): The specified rule does not exist. [request 1234-abcd]")
end)

T.test("retries ThrottlingException, then succeeds (server saw 3 attempts)", function()
  fresh()
  local throttle = { status = 400, headers = { ["Content-Type"] = "application/x-amz-json-1.1" },
    body = [[{"__type":"ThrottlingException","message":"Rate exceeded"}]], times = 2 }
  stub:script { throttle, json_ok([[{"clusterArns":["arn:c/1"]}]]) }
  local out = aws.call("ecs", "ListClusters", {})
  T.eq(out.clusterArns, { "arn:c/1" })
  T.eq(#stub:requests(), 3)
end)

T.test("gives up after max attempts (default 3; AWS_MAX_ATTEMPTS=5)", function()
  fresh()
  stub:script { { status = 503, body = "<html>busy</html>", headers = { ["Content-Type"] = "text/html" }, times = 10 } }
  local e = call_err("ecs", "ListClusters", {})
  T.eq(e.status, 503)
  T.eq(e.retryable, true)
  T.eq(e.attempts, 3)
  T.eq(#stub:requests(), 3, "3 attempts by default")
  fresh { env = { AWS_MAX_ATTEMPTS = "5" } }
  stub:script { { status = 503, body = "", times = 10 } }
  call_err("ecs", "ListClusters", {})
  T.eq(#stub:requests(), 5, "AWS_MAX_ATTEMPTS=5")
  fresh { max_attempts = 1, env = { AWS_MAX_ATTEMPTS = "5" } }
  stub:script { { status = 503, body = "", times = 10 } }
  call_err("ecs", "ListClusters", {})
  T.eq(#stub:requests(), 1, "configure{max_attempts=1} wins over the environment")
end)

T.test("aws.stats counts mutating requests (not Describe/List/Get)", function()
  fresh()
  stub:script { json_ok("{}"), json_ok("{}"), json_ok("{}") }
  local before = aws.stats.mutating_calls
  aws.call("ecs", "ListClusters", {})
  aws.call("ecs", "DescribeServices", { services = { "a" } })
  T.eq(aws.stats.mutating_calls, before, "read-only calls")
  aws.call("ecs", "UpdateService", { service = "a", desiredCount = 1 })
  T.eq(aws.stats.mutating_calls, before + 1)
end)

T.test("503 then success is retried once", function()
  fresh()
  stub:script { { status = 503, body = "" }, json_ok("{}") }
  aws.call("ecs", "ListClusters", {})
  T.eq(#stub:requests(), 2)
end)

T.test("retry waits via sched.sleep with the backoff delay", function()
  fresh { rand = function() return 0.01 end }
  stub:script { { status = 500, body = "", times = 2 }, json_ok("{}") }
  local sched = require "ecsplay.sched"
  local t0 = sched.now()
  aws.call("ecs", "ListClusters", {})
  T.eq(#stub:requests(), 3)
  T.ok(sched.now() - t0 >= 0.03 - 0.005, "slept 0.01 + 0.02 s")
end)

T.test("a reset connection is retried; persistent resets fail with a transport error", function()
  fresh()
  stub:script { { action = "reset" }, json_ok("{}") }
  aws.call("ecs", "ListClusters", {})
  T.eq(#stub:requests(), 2, "reset then success")
  fresh()
  stub:script { { action = "reset", times = 5 } }
  local e = call_err("ecs", "ListClusters", {})
  T.eq(e.kind, "transport")
  T.ok(e.code == "ConnectionReset" or e.code == "TransportError", "code " .. tostring(e.code))
  T.eq(e.retryable, true)
  T.eq(e.attempts, 3)
  -- libcurl itself resends once when a reused connection turns out dead, so the server may
  -- see up to two requests per attempt
  T.ok(#stub:requests() >= 3 and #stub:requests() <= 6, "requests: " .. #stub:requests())
end)

T.test("a timeout becomes a Timeout error", function()
  fresh { timeout = 0.3, max_attempts = 1 }
  stub:script { { delay = 1.2, status = 200, body = "{}" } }
  local e = call_err("ecs", "ListClusters", {})
  T.eq(e.code, "Timeout")
  T.eq(e.kind, "transport")
  T.ok(tostring(e):find("ecs ListClusters: Timeout"), tostring(e))
end)

T.test("connection refused → ConnectionError", function()
  configure { endpoint_url = "http://127.0.0.1:1", max_attempts = 2 }
  local e = call_err("ecs", "ListClusters", {})
  T.eq(e.code, "ConnectionError")
  T.eq(e.attempts, 2)
end)

T.test("bad parameters raise ParamValidation naming the path; nothing is sent", function()
  fresh()
  local e = call_err("ecs", "UpdateService", { service = "api", desiredcount = 3 })
  T.eq(e.code, "ParamValidation")
  T.ok(tostring(e):find("desiredcount"), tostring(e))
  T.ok(tostring(e):find("did you mean `desiredCount`", 1, true), tostring(e))
  e = call_err("ecs", "UpdateService", { desiredCount = 3 })
  T.ok(tostring(e):find("missing required parameter `service`", 1, true), tostring(e))
  e = call_err("ecs", "UpdateService", { service = "api", desiredCount = "3" })
  T.eq(e.path, "desiredCount")
  T.ok(tostring(e):find("expected an integer"), tostring(e))
  e = call_err("ecs", "UpdateService", { service = "api", deploymentConfiguration = {
    deploymentCircuitBreaker = { enable = "yes", rollback = true } } })
  T.eq(e.path, "deploymentConfiguration.deploymentCircuitBreaker.enable")
  e = call_err("elbv2", "DescribeTargetHealth", { TargetGroupArn = "arn", Include = { "AnomalyDetection", "Bogus" } })
  T.ok(tostring(e):find("Include%[2%]"), tostring(e))
  e = call_err("ecs", "NoSuchOperation", {})
  T.eq(e.code, "ParamValidation")
  T.eq(#stub:requests(), 0, "the stub received nothing")
end)

T.test("idempotency tokens are filled in and reused across retries", function()
  fresh()
  stub:script { { status = 500, body = "" }, json_ok([[{"tasks":[],"failures":[]}]]) }
  local params = { taskDefinition = "web:1" }
  aws.call("ecs", "RunTask", params)
  T.eq(params.clientToken, nil, "caller's table untouched")
  local reqs = stub:requests()
  local a, b = cjson.decode(reqs[1].body).clientToken, cjson.decode(reqs[2].body).clientToken
  T.ok(type(a) == "string" and #a >= 32, "token generated")
  T.eq(a, b, "same token on the retry")
end)

T.test("malformed JSON, malformed XML, wrong content type, huge response → clear errors", function()
  fresh()
  stub:script { json_ok("{\"services\": [") }
  local e = call_err("ecs", "DescribeServices", { services = { "a" } })
  T.eq(e.code, "InvalidResponse")
  T.ok(tostring(e):find("JSON"), tostring(e))
  stub:script { xml_ok("<DescribeTargetGroupsResponse><Oops></DescribeTargetGroupsResponse>") }
  e = call_err("elbv2", "DescribeTargetGroups", {})
  T.eq(e.code, "InvalidResponse")
  T.ok(tostring(e):find("XML"), tostring(e))
  stub:script { { status = 200, headers = { ["Content-Type"] = "text/html" }, body = "<html>login</html>" } }
  e = call_err("ecs", "ListClusters", {})
  -- the Content-Type is not checked (as botocore); the body is not JSON, the error names both
  T.eq(e.code, "InvalidResponse")
  T.ok(tostring(e):find("Content-Type text/html", 1, true), tostring(e))
  fresh { max_size = 100000 }
  stub:script { { status = 200, headers = { ["Content-Type"] = "application/x-amz-json-1.1" }, fill = 300000 } }
  e = call_err("ecs", "ListClusters", {})
  T.eq(e.code, "ResponseTooLarge")
  T.eq(#stub:requests(), 1, "not retried")
end)

T.test("endpoints: AWS_ENDPOINT_URL_<SERVICE> over AWS_ENDPOINT_URL; partition template", function()
  stub:reset()
  aws.configure { region = "eu-west-1", access_key = "AKIDEXAMPLE", secret_key = SECRET,
    env = { AWS_ENDPOINT_URL = "http://127.0.0.1:1", AWS_ENDPOINT_URL_ECS = stub.base }, log = function() end }
  stub:script { json_ok("{}") }
  aws.call("ecs", "ListClusters", {})
  T.eq(#stub:requests(), 1, "ECS went to AWS_ENDPOINT_URL_ECS")
  T.ok(stub:requests()[1].headers["authorization"]:find("/eu%-west%-1/ecs/"), "region in scope")
  local endpoints = require "ecsplay.aws.endpoints"
  T.eq(endpoints.resolve("elbv2", "eu-west-1", { getenv = function() end }),
    "https://elasticloadbalancing.eu-west-1.amazonaws.com")
  T.eq(endpoints.resolve("ecs", "cn-north-1", { getenv = function() end }), "https://ecs.cn-north-1.amazonaws.com.cn")
  T.eq(endpoints.resolve("cloudwatch", "us-gov-west-1", { getenv = function() end }),
    "https://monitoring.us-gov-west-1.amazonaws.com")
  T.eq(endpoints.env_name("Elastic Load Balancing v2"), "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2")
  local ok, err = endpoints.resolve("ecs", "us-east-1", { endpoint_url = "ftp://x" })
  T.eq(ok, nil)
  T.ok(err:find("invalid endpoint URL"), err)
end)

T.test("a transport function replaces HTTP (the in-process simulator's hook)", function()
  local seen
  aws.configure { region = "us-east-1", access_key = "AKIDEXAMPLE", secret_key = SECRET, env = {},
    log = function() end, transport = function(req)
      seen = req
      return { status = 200, headers = { ["content-type"] = "application/x-amz-json-1.1" },
        body = [[{"clusterArns":["x"]}]] }
    end }
  local out = aws.call("ecs", "ListClusters", {})
  T.eq(out.clusterArns, { "x" })
  T.eq(seen.url, "https://ecs.us-east-1.amazonaws.com/")
  T.ok(seen.headers.Authorization, "signed")
  local n = 0
  aws.configure { region = "us-east-1", access_key = "AKIDEXAMPLE", secret_key = SECRET, env = {},
    log = function() end, rand = function() return 0 end,
    transport = function() n = n + 1 return nil, "boom", "connect" end }
  local e = call_err("ecs", "ListClusters", {})
  T.eq(e.code, "ConnectionError")
  T.eq(n, 3)
end)

T.test("service modules: snake_case operations, paginators, waiters, lazy models", function()
  fresh()
  local ecs = require "ecsplay.ecs"
  stub:script { json_ok([[{"serviceArns":["a","b"],"nextToken":"t1"}]]), json_ok([[{"serviceArns":["c"]}]]) }
  local got = {}
  for page in ecs.pages.list_services { cluster = "prod" } do
    for _, a in ipairs(page.serviceArns) do got[#got + 1] = a end
  end
  T.eq(got, { "a", "b", "c" })
  local reqs = stub:requests()
  T.eq(cjson.decode(reqs[2].body), { cluster = "prod", nextToken = "t1" })
  T.raises(function() return ecs.updat_service end, "did you mean \"update_service\"")
  T.raises(function() return ecs.wait.service_stable end, "services_stable")
  -- a fresh process: requiring a service module does not load its model
  local exe = T.sh("readlink /proc/" .. require("ecsplay.core").pid() .. "/exe"):gsub("%s+$", "")
  local out = T.sh(exe .. " -e 'local e = require \"ecsplay.ecs\"; print(package.loaded[\"ecsplay.aws.models.ecs\"] == nil, type(e.update_service), package.loaded[\"ecsplay.aws.models.ecs\"] ~= nil)'")
  T.eq(out:gsub("%s+$", ""), "true\tfunction\ttrue")
end)

local function svc(running, desired, deployments, status)
  return { serviceName = "api", status = status or "ACTIVE", runningCount = running,
    desiredCount = desired, deployments = deployments }
end

T.test("waiter services_stable: polls until stable", function()
  fresh()
  local ecs = require "ecsplay.ecs"
  local two = { { id = "1", status = "PRIMARY" }, { id = "0", status = "ACTIVE" } }
  stub:script {
    json_ok(cjson.encode { services = { svc(1, 2, two) }, failures = {} }),
    json_ok(cjson.encode { services = { svc(2, 2, { { id = "1", status = "PRIMARY" } }) }, failures = {} }),
  }
  local out = ecs.wait.services_stable { cluster = "prod", services = { "api" }, delay = 0.01 }
  T.eq(out.services[1].runningCount, 2)
  T.eq(#stub:requests(), 2)
  T.eq(cjson.decode(stub:requests()[1].body), { cluster = "prod", services = { "api" } }, "waiter options not sent")
end)

T.test("waiter failure and timeout errors name the waiter and the last state", function()
  fresh()
  local ecs = require "ecsplay.ecs"
  stub:script { json_ok([[{"services":[],"failures":[{"arn":"x","reason":"MISSING"}]}]]) }
  local e = T.raises(function() ecs.wait.services_stable { services = { "api" }, delay = 0.01 } end,
    "WaiterFailed")
  T.eq(e.waiter, "services_stable")
  T.ok(tostring(e):find("MISSING"), tostring(e))
  fresh()
  stub:script { json_ok(cjson.encode { services = { svc(1, 2, { { id = "1" } }) }, failures = {} }), }
  stub:script { { status = 200, headers = { ["Content-Type"] = "application/x-amz-json-1.1" }, times = 100,
    body = cjson.encode { services = { svc(1, 2, { { id = "1" } }) }, failures = {} } } }
  e = T.raises(function() ecs.wait.services_stable { services = { "api" }, delay = 0.02, timeout = 0.1 } end,
    "WaiterTimeout")
  T.ok(tostring(e):find("services_stable timed out", 1, true), tostring(e))
  T.ok(tostring(e):find("services[].status = [\"ACTIVE\"]", 1, true), tostring(e))
  T.ok(#stub:requests() >= 2, "polled more than once")
end)

T.test("waiter error matcher (elbv2 target_deregistered on InvalidTarget)", function()
  fresh()
  local elbv2 = require "ecsplay.elbv2"
  stub:script { { status = 400, headers = { ["Content-Type"] = "text/xml" }, body = string.format(
    "<ErrorResponse %s><Error><Code>InvalidTarget</Code><Message>gone</Message></Error></ErrorResponse>", ELB_NS) } }
  elbv2.wait.target_deregistered { TargetGroupArn = "arn:tg", delay = 0.01 }
  T.eq(#stub:requests(), 1)
end)

T.test("jmespath subset: every waiter/paginator expression of the models compiles and evaluates", function()
  local J = require "ecsplay.aws.jmespath"
  local model = require "ecsplay.aws.model"
  local n = 0
  for _, name in ipairs { "ecs", "elbv2", "codedeploy", "cloudwatch", "sts" } do
    local m = model.load(name)
    for _, w in pairs(m.waiters or {}) do
      for _, a in ipairs(w.acceptors) do
        if a.argument then J.compile(a.argument) n = n + 1 end
      end
    end
    for _, p in pairs(m.paginators or {}) do
      for _, k in ipairs(type(p.result_key) == "table" and p.result_key or { p.result_key }) do
        J.compile(k) n = n + 1
      end
    end
  end
  T.ok(n > 40, "expressions checked: " .. n)
  local stable = "length(services[?!(length(deployments) == `1` && runningCount == desiredCount)]) == `0`"
  T.eq(J.search(stable, { services = { svc(2, 2, { {} }), svc(1, 1, { {} }) } }), true)
  T.eq(J.search(stable, { services = { svc(2, 2, { {} }), svc(1, 2, { {} }) } }), false)
  T.eq(J.search(stable, { services = { svc(2, 2, { {}, {} }) } }), false)
  T.eq(J.search("services[].deployments[].rolloutState",
    { services = { svc(1, 1, { { rolloutState = "A" }, { rolloutState = "B" } }), svc(1, 1, { { rolloutState = "C" } }) } }),
    { "A", "B", "C" }, "nested flatten")
  T.eq(J.search("LoadBalancers[].State.Code", { LoadBalancers = { { State = { Code = "active" } } } }), { "active" })
  T.eq(J.search("length(MetricAlarms[]) > `0`", { MetricAlarms = {} }), false)
  T.eq(J.search("length(MetricAlarms[]) > `0`", { MetricAlarms = { { AlarmName = "a" } } }), true)
  T.eq(J.search("deploymentInfo.status", { deploymentInfo = { status = "Succeeded" } }), "Succeeded")
  T.raises(function() J.compile("foo | bar") end, "jmespath")
end)

T.test("ecs.reuse keeps only RegisterTaskDefinition input members", function()
  local ecs = require "ecsplay.ecs"
  local td = { taskDefinitionArn = "arn:td/web:3", revision = 3, status = "ACTIVE", family = "web",
    requiresAttributes = { { name = "x" } }, compatibilities = { "FARGATE" }, registeredAt = 1,
    registeredBy = "me", cpu = "256", memory = "512", networkMode = "awsvpc",
    containerDefinitions = { { name = "api", image = "api:v1" } }, someFutureField = true }
  local r = ecs.reuse(td)
  T.eq(r, { family = "web", cpu = "256", memory = "512", networkMode = "awsvpc",
    containerDefinitions = { { name = "api", image = "api:v1" } } })
  r.containerDefinitions[1].image = "api:v2"
  T.eq(td.containerDefinitions[1].image, "api:v1", "deep copy")
  require("ecsplay.aws.validate").input(require("ecsplay.aws.model").load("ecs"), "RegisterTaskDefinition", r)
end)

T.test("stop stub", function() stub:stop() end)
