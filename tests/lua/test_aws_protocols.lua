-- The AWS wire as other implementations speak it (issue 8, item 4), through aws.call with a
-- scripted transport: a JSON answer is read whatever its Content-Type (as botocore's
-- JSONParser does: it never looks at the header); a service with several protocols
-- (CloudWatch: smithy-rpc-v2-cbor, json, query) is spoken in the model's order of those
-- ecsplay has, falling back to the next when an endpoint does not answer in one, and the
-- choice is remembered per endpoint; aws.configure{ protocols = { cloudwatch = "query" } }.
-- tests/py/test_moto.py proves the same against moto.
local T = require "harness"
local aws = require "ecsplay.aws"
local errors = require "ecsplay.errors"
local scenario = require "ecsplay.sim.scenario"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local R = require "rollout_sim"

local sent, answers, logged

-- answer(req) → response: `answers` is a list of functions or response tables, used in order
-- (the last one repeats).
local function transport(req)
  local ct = req.headers["Content-Type"] or ""
  sent[#sent + 1] = { proto = ct:find("json", 1, true) and "json" or "query", url = req.url,
    target = req.headers["X-Amz-Target"], body = req.body }
  local a = answers[math.min(#sent, #answers)]
  if type(a) == "function" then return a(req) end
  return a
end

local function configure(extra)
  sent, answers, logged = {}, {}, {}
  local o = { region = "us-east-1", access_key = "AKIDEXAMPLE", secret_key = "secret", env = {},
    rand = function() return 0 end, transport = transport,
    log = function(level, event, message, fields)
      logged[#logged + 1] = { level = level, event = event, message = message, fields = fields }
    end }
  for k, v in pairs(extra or {}) do o[k] = v end
  aws.configure(o)
end

local function protos()
  local out = {}
  for i, s in ipairs(sent) do out[i] = s.proto end
  return out
end

local function json_answer(body, ct)
  return { status = 200, headers = { ["Content-Type"] = ct }, body = body }
end

local XML_METRICS = [[<ListMetricsResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/">
<ListMetricsResult><Metrics><member><Namespace>AWS/ApplicationELB</Namespace><MetricName>RequestCount</MetricName>
<Dimensions/></member></Metrics></ListMetricsResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>
</ListMetricsResponse>]]
local JSON_METRICS = '{"Metrics":[{"Namespace":"AWS/ApplicationELB","MetricName":"RequestCount"}]}'

local function xml_answer(body) return { status = 200, headers = { ["Content-Type"] = "text/xml" }, body = body } end

-- Answers JSON requests with `json` and query requests with `query`.
local function by_protocol(json, query)
  return function(req)
    if (req.headers["Content-Type"] or ""):find("json", 1, true) then return json end
    return query
  end
end

local function call_err(...)
  local ok, e = pcall(aws.call, ...)
  T.ok(not ok, "expected an error")
  T.ok(errors.is(e), "an error object: " .. tostring(e))
  return e
end

---------------------------------------------------------------- Content-Type

T.test("a JSON answer is read whatever its Content-Type, or without one (as botocore)", function()
  for _, ct in ipairs { "application/x-amz-json-1.1", "text/html; charset=utf-8", "text",
    "application/json", "application/octet-stream" } do
    configure()
    answers = { json_answer('{"clusterArns":["arn:aws:ecs:us-east-1:123456789012:cluster/a"]}', ct) }
    T.eq(aws.call("ecs", "ListClusters", {}).clusterArns, { "arn:aws:ecs:us-east-1:123456789012:cluster/a" }, ct)
  end
  configure()
  answers = { { status = 200, headers = {}, body = '{"applications":["app"]}' } }
  T.eq(aws.call("codedeploy", "ListApplications", {}).applications, { "app" }, "no Content-Type")
end)

T.test("a body that is not JSON is still an InvalidResponse naming the Content-Type", function()
  configure()
  answers = { json_answer("<html>login</html>", "text/html") }
  local e = call_err("ecs", "ListClusters", {})
  T.eq(e.kind, "response")
  T.eq(e.code, "InvalidResponse")
  T.ok(tostring(e):find("Content-Type text/html", 1, true), tostring(e))
  T.eq(#sent, 1, "not retried")
end)

T.test("an XML answer is read whatever its Content-Type; an HTML page is not a result", function()
  configure()
  answers = { { status = 200, headers = { ["Content-Type"] = "application/xml" }, body =
    '<DescribeTargetGroupsResponse><DescribeTargetGroupsResult><TargetGroups><member>'
    .. '<TargetGroupName>tg</TargetGroupName></member></TargetGroups></DescribeTargetGroupsResult>'
    .. '</DescribeTargetGroupsResponse>' } }
  T.eq(aws.call("elbv2", "DescribeTargetGroups", {}).TargetGroups[1].TargetGroupName, "tg")
  configure()
  answers = { { status = 200, headers = { ["Content-Type"] = "text/html" }, body =
    "<html><body>Sign in</body></html>" } }
  local e = call_err("elbv2", "DescribeTargetGroups", {})
  T.eq(e.code, "InvalidResponse", tostring(e))
  T.ok(tostring(e):find("DescribeTargetGroupsResponse", 1, true), tostring(e))
end)

---------------------------------------------------------------- protocol choice and fallback

T.test("CloudWatch: the model's order minus CBOR is json, query", function()
  local protocol = require "ecsplay.aws.protocol"
  local model = require "ecsplay.aws.model"
  T.eq(model.load("cloudwatch").metadata.protocols, { "smithy-rpc-v2-cbor", "json", "query" })
  T.eq(protocol.candidates(model.load("cloudwatch")), { "json", "query" })
  T.eq(protocol.candidates(model.load("ecs")), { "json" })
  T.eq(protocol.candidates(model.load("elbv2")), { "query" })
  T.eq(protocol.candidates(model.load("cloudwatch"), "query"), { "query" })
  T.raises(function() protocol.candidates(model.load("elbv2"), "json") end, "does not speak")
end)

T.test("CloudWatch answered in JSON: json, remembered", function()
  configure()
  answers = { json_answer(JSON_METRICS, "text") }
  T.eq(aws.call("cloudwatch", "ListMetrics", {}).Metrics[1].MetricName, "RequestCount")
  aws.call("cloudwatch", "ListMetrics", {})
  T.eq(protos(), { "json", "json" })
  T.eq(sent[1].target, "GraniteServiceVersion20100801.ListMetrics")
end)

-- Each way an endpoint may say it does not speak JSON: query next, and query from then on.
local NOT_JSON = {
  ["404 with an HTML page"] = { status = 404, headers = { ["Content-Type"] = "text/html" }, body = "<h1>Not Found</h1>" },
  ["404 without a body"] = { status = 404, headers = {}, body = "" },
  ["415 Unsupported Media Type"] = { status = 415, headers = {}, body = "Unsupported Media Type" },
  ["501 Not Implemented with a JSON code"] = { status = 501, headers = { ["Content-Type"] = "application/json" },
    body = '{"__type":"InternalFailure","message":"not yet implemented"}' },
  ["UnknownOperationException"] = { status = 400, headers = { ["Content-Type"] = "application/x-amz-json-1.0" },
    body = '{"__type":"com.amazon.coral.service#UnknownOperationException"}' },
  ["UnknownService (an emulator without JSON for CloudWatch)"] = { status = 400, headers = {},
    body = '{"__type":"UnknownService","message":"Unknown service: GraniteServiceVersion20100801"}' },
  ["a 200 XML answer (an emulator that reads the target and answers in query)"] = xml_answer(XML_METRICS),
  ["a 500 HTML page, after the SDK's retries"] = { status = 500, headers = { ["Content-Type"] = "text/html" },
    body = "<html><title>500 Internal Server Error</title></html>" },
}

for what, answer in pairs(NOT_JSON) do
  T.test("JSON answered with " .. what .. ": falls back to query, remembered", function()
    configure()
    answers = { by_protocol(answer, xml_answer(XML_METRICS)) }
    T.eq(aws.call("cloudwatch", "ListMetrics", {}).Metrics[1].MetricName, "RequestCount")
    local first = #sent
    T.eq(sent[first].proto, "query")
    aws.call("cloudwatch", "ListMetrics", {})
    T.eq(#sent, first + 1, "one request for the second call")
    T.eq(sent[#sent].proto, "query", "query remembered")
    local note
    for _, l in ipairs(logged) do if l.event == "aws.protocol" then note = l end end
    T.ok(note, "the fallback is logged")
    T.ok(note.message:find("json", 1, true) and note.message:find("query", 1, true), note.message)
    T.eq({ note.fields.service, note.fields.protocol }, { "cloudwatch", "query" })
  end)
end

T.test("the same request is sent again in query (same parameters)", function()
  configure()
  answers = { by_protocol(NOT_JSON["404 without a body"], xml_answer(
    "<PutMetricDataResponse><ResponseMetadata><RequestId>x</RequestId></ResponseMetadata></PutMetricDataResponse>")) }
  aws.call("cloudwatch", "PutMetricData", { Namespace = "App", MetricData = {
    { MetricName = "Hits", Value = 3, Timestamp = 1700000000 } } })
  T.eq(protos(), { "json", "query" })
  T.ok(sent[1].body:find('"Namespace":"App"', 1, true), sent[1].body)
  T.ok(sent[2].body:find("Action=PutMetricData", 1, true), sent[2].body)
  T.ok(sent[2].body:find("MetricData.member.1.MetricName=Hits", 1, true), sent[2].body)
end)

T.test("remembered per endpoint: another region's endpoint is asked in JSON again", function()
  configure()
  answers = { function(req)
    if req.url:find("us%-east%-1") then
      return by_protocol(NOT_JSON["404 without a body"], xml_answer(XML_METRICS))(req)
    end
    return json_answer(JSON_METRICS, "application/x-amz-json-1.0")
  end }
  aws.call("cloudwatch", "ListMetrics", {})
  aws.request("cloudwatch", "ListMetrics", {}, { region = "eu-west-1" })
  aws.call("cloudwatch", "ListMetrics", {})
  aws.request("cloudwatch", "ListMetrics", {}, { region = "eu-west-1" })
  T.eq(protos(), { "json", "query", "json", "query", "json" })
  T.ok(sent[3].url:find("monitoring.eu-west-1", 1, true), sent[3].url)
end)

T.test("an error in JSON proves JSON is spoken: raised as is, no fallback", function()
  configure()
  answers = { { status = 400, headers = { ["Content-Type"] = "application/x-amz-json-1.0" },
    body = '{"__type":"com.amazonaws.monitoring#InvalidParameterValueException","message":"bad period"}' } }
  local e = call_err("cloudwatch", "ListMetrics", {})
  T.eq(e.code, "InvalidParameterValueException")
  T.eq(protos(), { "json" })
  answers = { json_answer(JSON_METRICS, "text") }
  aws.call("cloudwatch", "ListMetrics", {})
  T.eq(protos(), { "json", "json" }, "json remembered")
end)

T.test("a dead endpoint is a transport error: no fallback, nothing remembered", function()
  configure { max_attempts = 1 }
  answers = { function() return nil, "connection refused", "connect" end }
  local e = call_err("cloudwatch", "ListMetrics", {})
  T.eq({ e.kind, e.code }, { "transport", "ConnectionError" })
  T.eq(protos(), { "json" })
  answers = { json_answer(JSON_METRICS, "text") }
  aws.call("cloudwatch", "ListMetrics", {})
  T.eq(protos(), { "json", "json" })
end)

T.test("throttled in JSON: retried in JSON, never sent in query", function()
  configure()
  answers = { { status = 400, headers = {}, body = '{"__type":"ThrottlingException","message":"Rate exceeded"}' },
    json_answer(JSON_METRICS, "text") }
  aws.call("cloudwatch", "ListMetrics", {})
  T.eq(protos(), { "json", "json" })
end)

T.test("neither protocol answers: the error says so for both", function()
  configure()
  answers = { NOT_JSON["404 with an HTML page"] }
  local e = call_err("cloudwatch", "ListMetrics", {})
  T.eq(protos(), { "json", "query" })
  T.eq(e.status, 404)
  T.ok(tostring(e):find("json", 1, true) and tostring(e):find("query", 1, true), tostring(e))
  -- nothing remembered: the next call asks in JSON again
  answers = { json_answer(JSON_METRICS, "text") }
  aws.call("cloudwatch", "ListMetrics", {})
  T.eq(sent[#sent].proto, "json")
end)

T.test("a service with one protocol never falls back", function()
  configure()
  answers = { NOT_JSON["404 with an HTML page"] }
  local e = call_err("ecs", "ListClusters", {})
  T.eq(e.status, 404)
  T.eq(protos(), { "json" })
end)

---------------------------------------------------------------- configure{ protocols = }

T.test("protocols = { cloudwatch = \"query\" }: query only, no fallback", function()
  configure { protocols = { cloudwatch = "query" } }
  answers = { xml_answer(XML_METRICS) }
  T.eq(aws.call("cloudwatch", "ListMetrics", {}).Metrics[1].MetricName, "RequestCount")
  T.eq(protos(), { "query" })
  answers = { NOT_JSON["404 with an HTML page"] }
  local e = call_err("cloudwatch", "ListMetrics", {})
  T.eq(e.status, 404)
  T.eq(protos(), { "query", "query" })
  configure { protocols = { cloudwatch = "json" } }
  answers = { NOT_JSON["404 with an HTML page"] }
  call_err("cloudwatch", "ListMetrics", {})
  T.eq(protos(), { "json" }, "json only")
end)

T.test("a bad protocols override is a config error that names it", function()
  local function bad(protocols, pattern)
    local ok, e = pcall(function()
      configure { protocols = protocols }
      answers = { json_answer("{}", "text") }
      aws.call("cloudwatch", "ListMetrics", {})
      aws.call("elbv2", "DescribeLoadBalancers", {})
    end)
    T.ok(not ok, "expected a config error for " .. pattern)
    T.eq(e.kind, "config", tostring(e))
    T.ok(tostring(e):find(pattern), tostring(e))
    T.eq(#sent, 0, "nothing sent")
  end
  bad({ cloudwatch = "cbor" }, 'protocols%.cloudwatch: .*"json" or "query"')
  bad({ elbv2 = "json" }, "protocols%.elbv2: elbv2 does not speak the json protocol")
  bad({ cloudwach = "query" }, 'protocols: unknown service "cloudwach"; did you mean "cloudwatch"')
  bad("query", "protocols: expected a table")
end)

---------------------------------------------------------------- the simulator speaks both

T.test("the in-process simulator answers CloudWatch in json and in query", function()
  for _, p in ipairs { "json", "query" } do
    R.fresh(scenario.check({}, "protocols test"))
    local conf = { protocols = { cloudwatch = p } }
    -- keep the simulator's wiring, add the override
    local sim = R.sim
    local creds = sim:credentials()
    local seen = {}
    aws.configure { region = sim.world.region, endpoint_url = "https://simulator.ecsplay.invalid",
      access_key = creds.access_key, secret_key = creds.secret_key, protocols = conf.protocols,
      transport = function(req)
        seen[#seen + 1] = (req.headers["Content-Type"] or ""):find("json", 1, true) and "json" or "query"
        return sim:transport(req)
      end }
    local alarms = aws.call("cloudwatch", "DescribeAlarms", {}).MetricAlarms
    T.ok(#alarms >= 1, p .. ": the default world's alarm")
    T.eq(seen, { p })
  end
end)
