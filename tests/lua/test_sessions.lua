-- aws.session: Regions and accounts kept apart, role assumption with an external id,
-- credentials refreshed per session, options checked; the simulator's worlds per Region and
-- account (sim/regions.lua, sim/sts.lua).
local T = require "harness"
local ecsplay = require "ecsplay"
local R = require "rollout_sim"
local aws = require "ecsplay.aws"
local ecs = require "ecsplay.ecs"
local errors = require "ecsplay.errors"
local sched = require "ecsplay.sched"
local rollout = require "ecsplay.rollout"
local gate = require "ecsplay.gate"
local scenario = require "ecsplay.sim.scenario"

local ROLE = "arn:aws:iam::210987654321:role/deploy"
local WORLD = { regions = { "us-east-1", "eu-west-1" }, roles = { [ROLE] = { external_id = "ext-123" } },
  keys = { AKIDSIMULATOR = "simulator-secret-key",
    AKIDOTHER = { secret = "other-secret", account = "333333333333" } } }

local function fresh() return R.fresh(scenario.check(WORLD, "sessions")) end

local TD = { family = "only-eu", containerDefinitions = { { name = "x", image = "x:1", essential = true,
  memory = 128 } } }

T.test("a call in one Region never sees another's resources", function()
  fresh()
  local eu = aws.session { region = "eu-west-1" }
  local arn = eu.ecs.register_task_definition(TD).taskDefinition.taskDefinitionArn
  T.ok(arn:find("^arn:aws:ecs:eu%-west%-1:123456789012:task%-definition/only%-eu:1$"), arn)
  eu.ecs.create_service { cluster = "production", serviceName = "only-eu", taskDefinition = "only-eu:1",
    desiredCount = 0, launchType = "EC2" }
  -- the client's default Region (us-east-1) has neither
  local out = ecs.describe_services { cluster = "production", services = { "only-eu" } }
  T.eq(#out.services, 0, "no only-eu service in us-east-1")
  T.eq(out.failures[1].reason, "MISSING")
  local e = T.raises(function() ecs.describe_task_definition { taskDefinition = "only-eu" } end)
  T.ok(errors.is(e, "ClientException"), errors.describe(e))
  T.eq(#eu.ecs.describe_services { cluster = "production", services = { "only-eu" } }.services, 1)
  -- the same names exist in both, each with its own Region's ARN
  T.ok(eu.ecs.describe_services { cluster = "production", services = { "api" } }.services[1]
    .serviceArn:find(":eu-west-1:", 1, true))
  T.ok(ecs.describe_services { cluster = "production", services = { "api" } }.services[1]
    .serviceArn:find(":us-east-1:", 1, true))
end)

T.test("a Region the simulator does not serve is refused as AWS refuses a wrong scope", function()
  fresh()
  local e = T.raises(function() aws.session { region = "sa-east-1" }.ecs.list_clusters {} end)
  T.ok(errors.is(e, "InvalidSignatureException"), errors.describe(e))
end)

T.test("sessions in tasks running at once each keep their own Region", function()
  fresh()
  local east, eu = aws.session { region = "us-east-1" }, aws.session { region = "eu-west-1" }
  local seen = {}
  local function probe(s, key)
    return function()
      for _ = 1, 3 do
        s:run(function()
          sched.sleep(1)
          local arn = ecs.list_clusters {}.clusterArns[1]
          seen[#seen + 1] = key .. " " .. arn:match("^arn:aws:ecs:([^:]+):")
        end)
      end
    end
  end
  ecsplay.parallel { probe(east, "east"), probe(eu, "eu") }
  table.sort(seen)
  T.eq(seen, { "east us-east-1", "east us-east-1", "east us-east-1", "eu eu-west-1", "eu eu-west-1",
    "eu eu-west-1" })
  T.eq(aws.current_session(), nil, "no session left in effect")
end)

T.test("role_arn with external_id: STS AssumeRole into the role's account", function()
  local sim = fresh()
  local s = aws.session { region = "eu-west-1", role_arn = ROLE, external_id = "ext-123" }
  local who = s.sts.get_caller_identity {}
  T.eq(who.Account, "210987654321")
  T.ok(who.Arn:find("^arn:aws:sts::210987654321:assumed%-role/deploy/"), who.Arn)
  T.ok(s:credentials().access_key:find("^ASIA"), "temporary credentials")
  local arn = s.ecs.list_clusters {}.clusterArns[1]
  T.eq(arn, "arn:aws:ecs:eu-west-1:210987654321:cluster/production", "the role account's own world")
  -- a change in that account is not in the default account
  s.ecs.register_task_definition(TD)
  local e = T.raises(function()
    aws.session { region = "eu-west-1" }.ecs.describe_task_definition { taskDefinition = "only-eu" }
  end)
  T.ok(errors.is(e, "ClientException"), errors.describe(e))
  T.ok(sim.worlds["eu-west-1/210987654321"], "the role's account has its worlds")
end)

T.test("a wrong or missing external id, or an unlisted role, is AccessDenied", function()
  fresh()
  for _, o in ipairs {
    { role_arn = ROLE, external_id = "wrong" },
    { role_arn = ROLE },
    { role_arn = "arn:aws:iam::210987654321:role/other" },
  } do
    o.region = "us-east-1"
    local e = T.raises(function() aws.session(o).ecs.list_clusters {} end)
    T.ok(errors.is(e, "credentials") and errors.is(e, "AccessDenied"), errors.describe(e))
    T.ok(errors.describe(e):find("not authorized to perform: sts:AssumeRole", 1, true), errors.describe(e))
  end
end)

T.test("an account per key pair", function()
  fresh()
  -- a second key pair of another account, through configure{} keys: the session inherits them
  local sim = R.sim
  aws.configure { region = "us-east-1", endpoint_url = "https://simulator.ecsplay.invalid",
    access_key = "AKIDOTHER", secret_key = "other-secret", transport = function(req) return sim:transport(req) end }
  local other = aws.session { region = "eu-west-1" }
  T.eq(other.sts.get_caller_identity {}.Account, "333333333333")
  T.eq(other.ecs.list_clusters {}.clusterArns[1], "arn:aws:ecs:eu-west-1:333333333333:cluster/production")
end)

T.test("the role is assumed again before its credentials expire", function()
  local sim = fresh()
  local s = aws.session { region = "us-east-1", role_arn = ROLE, external_id = "ext-123",
    duration_seconds = 900 }
  local first = s:credentials().access_key
  s.ecs.list_clusters {}
  sched.sleep(700) -- within the refresh window (5 minutes) of the 15-minute expiry
  s.ecs.list_clusters {}
  local second = s:credentials().access_key
  T.ok(first ~= second, "new temporary credentials")
  local n = 0
  for _ in pairs(sim.auth.temporary) do n = n + 1 end
  T.eq(n, 2, "AssumeRole twice")
  -- the first pair, once expired, is refused by the simulator
  sched.sleep(300)
  local r = sim:handle { method = "POST", path = "/", headers = {}, body = "" }
  T.ok(r.status >= 400)
end)

T.test("bad options are bad input naming the field", function()
  fresh()
  for field, o in pairs {
    region = { region = "Europe" },
    role_arn = { role_arn = "deploy" },
    external_id = { external_id = "abc" },
    endpoint_url = { endpoint_url = "ftp://x" },
    duration_seconds = { role_arn = ROLE, duration_seconds = 60 },
    reigon = { reigon = "eu-west-1" },
  } do
    local e = T.raises(function() aws.session(o) end)
    T.ok(errors.is(e, "bad_input"), errors.describe(e))
    T.eq(e.field, field)
  end
  local e = T.raises(function() rollout.canary { session = "eu-west-1", image = "api:v2" } end)
  T.ok(errors.is(e, "bad_input") and e.field == "session", errors.describe(e))
  e = T.raises(function() gate.alarm { "x", session = {} } end)
  T.ok(errors.is(e, "bad_input") and e.field == "session", errors.describe(e))
end)

T.test("a gate's session: its look-ups in its own Region", function()
  fresh()
  local eu = aws.session { region = "eu-west-1" }
  eu.cloudwatch.put_metric_alarm { AlarmName = "only-in-eu", Namespace = "X", MetricName = "Y",
    Statistic = "Sum", Period = 60, EvaluationPeriods = 1, Threshold = 1, ComparisonOperator =
    "GreaterThanThreshold" }
  local g = gate.alarm { "only-in-eu", session = eu }
  gate.prepare_all({ g }, {})
  local e = T.raises(function() gate.prepare_all({ gate.alarm { "only-in-eu" } }, {}) end)
  T.ok(errors.is(e, "bad_input"), errors.describe(e))
end)
