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

-- Profiles: the client configured as from a shell (a config file, an environment, the
-- simulator's transport; no configure{} keys).
local CONFIG = [[
[default]
region = us-east-1
aws_access_key_id = AKIDSIMULATOR
aws_secret_access_key = simulator-secret-key

[profile ops]
region = eu-west-1
aws_access_key_id = AKIDOTHER
aws_secret_access_key = other-secret

[profile noregion]
aws_access_key_id = AKIDSIMULATOR
aws_secret_access_key = simulator-secret-key

[profile srcenv]
role_arn = arn:aws:iam::210987654321:role/deploy
external_id = ext-123
credential_source = Environment
region = eu-west-1
]]
local ENV_KEYS = { AWS_ACCESS_KEY_ID = "AKIDSIMULATOR", AWS_SECRET_ACCESS_KEY = "simulator-secret-key" }

local function from_files(config, env, opts)
  local dir = T.tmpdir()
  local f = assert(io.open(dir .. "/config", "w"))
  f:write(config)
  f:close()
  local sim = R.sim
  local o = { endpoint_url = "https://simulator.ecsplay.invalid", config_file = dir .. "/config",
    credentials_file = dir .. "/credentials", env = env,
    transport = function(req) return sim:transport(req) end }
  for k, v in pairs(opts or {}) do o[k] = v end
  aws.configure(o)
  return dir .. "/config"
end

T.test("a session with a profile runs in the profile's Region, as boto3.Session(profile_name=)", function()
  fresh()
  from_files(CONFIG, {})
  local ops = aws.session { profile = "ops" }
  T.eq(ops.region, "eu-west-1")
  T.eq(ops.ecs.list_clusters {}.clusterArns[1], "arn:aws:ecs:eu-west-1:333333333333:cluster/production")
  T.eq(aws.session { profile = "ops", region = "us-east-1" }.region, "us-east-1", "region= first")
  T.eq(aws.session { profile = "noregion" }.region, "us-east-1", "no region in the profile: the client's")
  T.eq(aws.session {}.region, "us-east-1", "no profile: the client's")
  -- boto3: AWS_DEFAULT_REGION before the profile's region
  from_files(CONFIG, { AWS_DEFAULT_REGION = "ap-southeast-1" })
  T.eq(aws.session { profile = "ops" }.region, "ap-southeast-1")
end)

T.test("a session profile without a Region, and none elsewhere: the error names that profile", function()
  fresh()
  local path = from_files("[profile noregion]\naws_access_key_id = AKIDSIMULATOR\n"
    .. "aws_secret_access_key = simulator-secret-key\n", {}, { endpoint_url = false })
  local e = T.raises(function() aws.session { profile = "noregion" } end)
  T.eq(e.code, "NoRegion")
  T.ok(e.message:find("`region` in profile noregion of " .. path, 1, true), e.message)
  T.ok(not e.message:find("profile default", 1, true), e.message)
end)

T.test("credential_source = Environment: AssumeRole with the environment's keys", function()
  fresh()
  local ASSUMED = "^arn:aws:sts::210987654321:assumed%-role/deploy/"
  from_files(CONFIG, ENV_KEYS)
  local s = aws.session { profile = "srcenv" }
  T.eq(s.region, "eu-west-1")
  T.ok(s.sts.get_caller_identity {}.Arn:find(ASSUMED), "aws.session{ profile = }")
  from_files(CONFIG, ENV_KEYS, { profile = "srcenv" })
  T.ok(aws.call("sts", "GetCallerIdentity", {}).Arn:find(ASSUMED), "--profile")
  -- AWS_PROFILE does not set the profile explicitly: the environment's keys come first in the
  -- chain and are used as they are (botocore: boto3.Session() with AWS_PROFILE → method "env")
  local env = { AWS_PROFILE = "srcenv" }
  for k, v in pairs(ENV_KEYS) do env[k] = v end
  from_files(CONFIG, env)
  T.eq(aws.call("sts", "GetCallerIdentity", {}).Account, "123456789012", "AWS_PROFILE")
  from_files(CONFIG, {})
  local e = T.raises(function() aws.session { profile = "srcenv" }.sts.get_caller_identity {} end)
  T.ok(errors.is(e, "NoCredentials") and e.message:find("credential_source Environment has no credentials", 1, true),
    errors.describe(e))
end)

T.test("an unknown session profile fails at aws.session, naming the field and the profiles there", function()
  fresh()
  local path = from_files(CONFIG, ENV_KEYS)
  local e = T.raises(function() aws.session { profile = "opz" } end)
  T.ok(errors.is(e, "bad_input"), errors.describe(e))
  T.eq(e.field, "profile")
  T.ok(e.message:find("^aws%.session: profile: profile \"opz\" not found in " .. path:gsub("%p", "%%%0")), e.message)
  T.ok(e.message:find("profiles there: default, noregion, ops, srcenv; did you mean \"ops\"?", 1, true), e.message)
  T.ok(not e.message:find("--profile", 1, true), e.message)
  -- from the command line: the aws.session line, exit 2
  local dir = T.tmpdir()
  local f = assert(io.open(dir .. "/p.lua", "w"))
  f:write('local aws = require "ecsplay.aws"\nlocal s = aws.session { profile = "nosuch" }\n'
    .. 's.ecs.list_clusters {}\n')
  f:close()
  local out, rc = T.sh("AWS_CONFIG_FILE=" .. path .. " " .. T.bin .. " --simulate " .. dir .. "/p.lua")
  T.eq(rc, 2, out)
  T.ok(out:find(dir .. "/p.lua:2: aws.session: profile: profile \"nosuch\" not found", 1, true), out)
end)

T.test("a Region no partition lists is bad input, with a did-you-mean; endpoint_url lets it through", function()
  fresh()
  local e = T.raises(function() aws.session { region = "mars-north-1" } end)
  T.ok(errors.is(e, "bad_input") and e.field == "region", errors.describe(e))
  T.ok(e.message:find("unknown Region \"mars-north-1\"", 1, true), e.message)
  e = T.raises(function() aws.session { region = "eu-west1" } end)
  T.ok(e.message:find("did you mean \"eu-west-1\"?", 1, true), e.message)
  e = T.raises(function() aws.session { region = "us-east-7" } end)
  T.ok(e.message:find("did you mean \"us-east-1\"?", 1, true), e.message)
  T.eq(aws.session { region = "mars-north-1", endpoint_url = "https://x.example" }.region, "mars-north-1")
  T.eq(aws.session { region = "us-gov-west-1" }.region, "us-gov-west-1", "other partitions' Regions")
  -- a scenario's Regions too
  e = T.raises(function() scenario.check({ regions = { "us-east-1", "eu-west1" } }, "s") end)
  T.ok(errors.describe(e):find("regions[2]: expected a Region name such as \"eu-west-1\", got string "
    .. "\"eu-west1\"; did you mean \"eu-west-1\"?", 1, true), errors.describe(e))
  e = T.raises(function() scenario.check({ regions = { "us-east-1", "mars-north-1" } }, "s") end)
  T.ok(errors.describe(e):find("regions[2]: unknown Region \"mars-north-1\"", 1, true), errors.describe(e))
end)
