-- The credentials chain and region resolution, against loopback stand-ins for STS, IMDSv2 and
-- the ECS container endpoint (tests/wire/aws_stub.py). No secret may appear in any output.
local T = require "harness"
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local Stub = require "aws_stub_client"
local cjson = require "cjson"
local aws = require "ecsplay.aws"
local errors = require "ecsplay.errors"

local stub = Stub.start()
local dir = T.tmpdir()
local SECRETS = { "wJalrXUtnFEMI/K7MDENG+bPxRfiCYENVSECRET", "PROFILEsecretKEYabcdefghijklmnop1234",
  "BASEsecretKEYabcdefghijklmnopqrst5678", "PROCESSsecretKEY0987654321zyxwvut", "stubSECRET", "stubTOKEN",
  "ENVsessionTOKENxyz123456" }
local outputs = {}    -- every string we produced: errors, tostrings, log lines

local function write(name, text)
  local path = dir .. "/" .. name
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local NOFILES = { AWS_CONFIG_FILE = dir .. "/none-config", AWS_SHARED_CREDENTIALS_FILE = dir .. "/none-creds",
  AWS_EC2_METADATA_DISABLED = "true" }

-- configure aws with an environment (files default to missing, IMDS disabled)
local function setup(env, opts)
  local e = {}
  for k, v in pairs(NOFILES) do e[k] = v end
  for k, v in pairs(env or {}) do e[k] = v end
  local o = { env = e, rand = function() return 0 end,
    log = function(level, event, msg, fields)
      outputs[#outputs + 1] = tostring(msg) .. " " .. cjson.encode(fields or {})
    end }
  for k, v in pairs(opts or {}) do o[k] = v end
  aws.configure(o)
end

local function creds()
  local c = aws.credentials()
  outputs[#outputs + 1] = tostring(c)
  outputs[#outputs + 1] = cjson.encode(c)
  return c
end

local function fails(pattern)
  local ok, e = pcall(aws.credentials)
  T.ok(not ok, "expected credentials to fail")
  outputs[#outputs + 1] = tostring(e)
  if type(e) == "table" then outputs[#outputs + 1] = cjson.encode(e) end
  if pattern then T.ok(tostring(e):find(pattern), "error " .. tostring(e) .. " does not match " .. pattern) end
  return e
end

local ENV_KEYS = { AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = SECRETS[1],
  AWS_SESSION_TOKEN = SECRETS[7] }

T.test("explicit options, then environment", function()
  setup(ENV_KEYS, { access_key = "AKIDOPT", secret_key = "optSECRET0123456789" })
  T.eq(creds().access_key, "AKIDOPT")
  T.eq(creds().source, "options")
  setup(ENV_KEYS)
  local c = creds()
  T.eq(c.access_key, "AKIDENV")
  T.eq(c:secret_key(), SECRETS[1])
  T.eq(c:session_token(), SECRETS[7])
  T.eq(c.source, "environment")
  T.eq(c.secret, nil, "no secret field on the object")
  setup { AWS_ACCESS_KEY_ID = "AKIDENV" }
  fails("no secret access key")
end)

local CREDS_FILE = [[
# comment
[default]
aws_access_key_id = AKIDPROFILE
aws_secret_access_key = ]] .. SECRETS[2] .. [[

[base]
aws_access_key_id=AKIDBASE
aws_secret_access_key=]] .. SECRETS[3] .. "\n"

local CONFIG_FILE = [[
[default]
region = eu-central-1
[profile dev]
region = ap-southeast-2
role_arn = arn:aws:iam::123456789012:role/deployer
source_profile = base
role_session_name = ci-run
external_id = ext-1
[profile proc]
credential_process = ]] .. dir .. [[/proc.sh --flag
[profile badproc]
credential_process = ]] .. dir .. [[/badproc.sh
[profile webid]
role_arn = arn:aws:iam::123456789012:role/web
web_identity_token_file = ]] .. dir .. [[/token
[profile loop]
role_arn = arn:aws:iam::123456789012:role/x
source_profile = loop2
[profile loop2]
role_arn = arn:aws:iam::123456789012:role/y
source_profile = loop
[profile s3conf]
s3 =
  max_concurrent_requests = 10
aws_access_key_id = AKIDNESTED
aws_secret_access_key = nestedSECRETabcdefgh
]]

local function files_env(extra)
  local e = { AWS_CONFIG_FILE = write("config", CONFIG_FILE), AWS_SHARED_CREDENTIALS_FILE = write("credentials", CREDS_FILE),
    AWS_ENDPOINT_URL_STS = stub.base }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

T.test("shared files: default profile, AWS_PROFILE, nested keys, env beats files", function()
  setup(files_env())
  T.eq(creds().access_key, "AKIDPROFILE")
  T.eq(creds().source, "profile default (shared files)")
  setup(files_env { AWS_PROFILE = "base" })
  T.eq(creds().access_key, "AKIDBASE")
  setup(files_env { AWS_PROFILE = "s3conf" })
  T.eq(creds().access_key, "AKIDNESTED")
  local env = files_env()
  for k, v in pairs(ENV_KEYS) do env[k] = v end
  setup(env)
  T.eq(creds().access_key, "AKIDENV", "environment before files")
  setup(env, { profile = "base" })
  T.eq(creds().access_key, "AKIDBASE", "--profile skips the environment")
  setup(files_env(), { profile = "nosuch" })
  local e = fails("profile \"nosuch\"")
  T.eq(e.code, "ProfileNotFound")
  T.ok(tostring(e):find("base, default, dev"), tostring(e))
end)

T.test("region: option, AWS_REGION, AWS_DEFAULT_REGION, profile; none is an error", function()
  setup(files_env { AWS_REGION = "us-west-2", AWS_DEFAULT_REGION = "us-east-2" }, { region = "sa-east-1" })
  T.eq(aws.region(), "sa-east-1")
  setup(files_env { AWS_REGION = "us-west-2", AWS_DEFAULT_REGION = "us-east-2" })
  T.eq(aws.region(), "us-west-2")
  setup(files_env { AWS_DEFAULT_REGION = "us-east-2" })
  T.eq(aws.region(), "us-east-2")
  setup(files_env())
  T.eq(aws.region(), "eu-central-1")
  setup(files_env { AWS_PROFILE = "dev" })
  T.eq(aws.region(), "ap-southeast-2")
  setup {}
  local ok, e = pcall(aws.region)
  T.ok(not ok)
  T.eq(e.code, "NoRegion")
  T.ok(tostring(e):find("AWS_REGION"), tostring(e))
end)

T.test("role_arn + source_profile → STS AssumeRole signed with the source credentials", function()
  stub:reset()
  setup(files_env { AWS_PROFILE = "dev" })
  local c = creds()
  T.ok(c.access_key:find("^ASIASTUB"), c.access_key)
  T.ok(c:session_token():find("^stubTOKEN"), "session token")
  T.ok(c.expiration and c.expiration > os.time(), "expiration parsed")
  local reqs = stub:requests()
  T.eq(#reqs, 1)
  local r = reqs[1]
  T.ok(r.body:find("Action=AssumeRole&"), r.body)
  T.ok(r.body:find("RoleArn=arn%%3Aaws%%3Aiam%%3A%%3A123456789012%%3Arole%%2Fdeployer"), r.body)
  T.ok(r.body:find("RoleSessionName=ci%-run"), r.body)
  T.ok(r.body:find("ExternalId=ext%-1"), r.body)
  T.ok(r.headers.authorization:find("Credential=AKIDBASE/%d+/ap%-southeast%-2/sts/"), r.headers.authorization)
  -- the assumed credentials sign the next call
  stub:script { { status = 200, headers = { ["Content-Type"] = "application/x-amz-json-1.1" }, body = "{}",
    match = "POST / {}" } }
  aws.configure { env = files_env { AWS_PROFILE = "dev", AWS_ENDPOINT_URL = stub.base }, log = function() end }
  aws.call("ecs", "ListClusters", {})
  reqs = stub:requests()
  T.ok(reqs[#reqs].headers.authorization:find("Credential=ASIASTUB"), "signed with the assumed role")
  T.ok(reqs[#reqs].headers["x-amz-security-token"]:find("^stubTOKEN"), "token sent")
end)

T.test("AssumeRole failures and source_profile loops are clear errors", function()
  stub:reset()
  stub:config { sts_error = { code = "AccessDenied", message = "not authorized to assume", status = 403 } }
  setup(files_env { AWS_PROFILE = "dev" })
  local e = fails("AccessDenied")
  T.ok(tostring(e):find("profile dev"), tostring(e))
  stub:reset()
  setup(files_env { AWS_PROFILE = "loop" })
  fails("loops back")
end)

T.test("web identity from the environment: unsigned AssumeRoleWithWebIdentity", function()
  stub:reset()
  local token = write("token", "eyJhbGciOiJSUzI1NiJ9.webtoken\n")
  setup { AWS_WEB_IDENTITY_TOKEN_FILE = token, AWS_ROLE_ARN = "arn:aws:iam::123456789012:role/web",
    AWS_ROLE_SESSION_NAME = "gha", AWS_ENDPOINT_URL_STS = stub.base, AWS_REGION = "us-east-1" }
  local c = creds()
  T.ok(c.access_key:find("^ASIASTUB"))
  local r = stub:requests()[1]
  T.ok(r.body:find("Action=AssumeRoleWithWebIdentity"), r.body)
  T.ok(r.body:find("WebIdentityToken=eyJhbGciOiJSUzI1NiJ9.webtoken&") or
    r.body:find("WebIdentityToken=eyJhbGciOiJSUzI1NiJ9.webtoken$"), r.body)
  T.ok(r.body:find("RoleSessionName=gha"), r.body)
  T.eq(r.headers.authorization, nil, "unsigned")
  -- also from a profile
  stub:reset()
  setup(files_env { AWS_PROFILE = "webid" })
  T.ok(creds().access_key:find("^ASIASTUB"))
  setup { AWS_WEB_IDENTITY_TOKEN_FILE = dir .. "/missing-token", AWS_ROLE_ARN = "arn:x", AWS_ENDPOINT_URL_STS = stub.base }
  fails("cannot read the token file")
end)

T.test("credential_process: Version 1 JSON; failures never show the output", function()
  write("proc.sh", "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"AKIDPROC\", \"SecretAccessKey\": \""
    .. SECRETS[4] .. "\", \"SessionToken\": \"proctoken1234\", \"Expiration\": \"2099-01-01T00:00:00Z\"}'\n")
  os.execute("chmod +x " .. dir .. "/proc.sh")
  setup(files_env { AWS_PROFILE = "proc" })
  local c = creds()
  T.eq(c.access_key, "AKIDPROC")
  T.eq(c:secret_key(), SECRETS[4])
  T.eq(c.expiration, 4070908800)
  write("badproc.sh", "#!/bin/sh\necho '{\"Version\": 2, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \""
    .. SECRETS[4] .. "\"}'\n")
  os.execute("chmod +x " .. dir .. "/badproc.sh")
  setup(files_env { AWS_PROFILE = "badproc" })
  fails("unsupported Version 2")
  write("badproc.sh", "#!/bin/sh\necho 'not json " .. SECRETS[4] .. "'\n")
  setup(files_env { AWS_PROFILE = "badproc" })
  fails("not a JSON object")
  write("badproc.sh", "#!/bin/sh\necho '" .. SECRETS[4] .. "'; exit 3\n")
  setup(files_env { AWS_PROFILE = "badproc" })
  fails("exited with status 3")
end)

T.test("container credentials (full URI + authorization token / token file)", function()
  stub:reset()
  stub:config { container_token = "Bearer tok-123" }
  setup { AWS_CONTAINER_CREDENTIALS_FULL_URI = stub.base .. "/creds/task", AWS_CONTAINER_AUTHORIZATION_TOKEN = "Bearer tok-123" }
  local c = creds()
  T.ok(c.access_key:find("^ASIASTUB"))
  T.eq(c.source, "container credentials")
  local r = stub:requests()[1]
  T.eq(r.path, "/creds/task")
  T.eq(r.headers.authorization, "Bearer tok-123")
  setup { AWS_CONTAINER_CREDENTIALS_FULL_URI = stub.base .. "/creds/task",
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = write("ctoken", "Bearer tok-123\n") }
  T.ok(creds().access_key:find("^ASIASTUB"), "token file")
  setup { AWS_CONTAINER_CREDENTIALS_FULL_URI = stub.base .. "/creds/task", AWS_CONTAINER_AUTHORIZATION_TOKEN = "wrong" }
  fails("HTTP 403")
  setup { AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://example.com/creds" }
  fails("loopback")
end)

T.test("EC2 IMDSv2: token, role, credentials; refresh before expiry", function()
  stub:reset()
  stub:config { role = "app-role", ttl = 3600 }
  setup { AWS_EC2_METADATA_DISABLED = "false", AWS_EC2_METADATA_SERVICE_ENDPOINT = stub.base }
  local c = creds()
  T.ok(c.access_key:find("^ASIASTUB"))
  T.eq(c.source, "EC2 instance metadata (role app-role)")
  local reqs = stub:requests()
  T.eq(#reqs, 3)
  T.eq(reqs[1].method, "PUT")
  T.eq(reqs[1].path, "/latest/api/token")
  T.eq(reqs[1].headers["x-aws-ec2-metadata-token-ttl-seconds"], "21600")
  T.eq(reqs[2].path, "/latest/meta-data/iam/security-credentials/")
  T.ok(reqs[2].headers["x-aws-ec2-metadata-token"]:find("^IMDSTOKEN"), "token header")
  T.eq(reqs[3].path, "/latest/meta-data/iam/security-credentials/app-role")
  T.eq(creds().access_key, c.access_key, "cached while fresh")
  T.eq(#stub:requests(), 3, "no new fetch")
  -- credentials expiring within the refresh window are fetched again on each use
  stub:config { ttl = 120 }
  setup { AWS_EC2_METADATA_DISABLED = "false", AWS_EC2_METADATA_SERVICE_ENDPOINT = stub.base }
  local a = creds().access_key
  local b = creds().access_key
  T.ok(a ~= b, "refreshed: " .. a .. " then " .. b)
end)

T.test("nothing anywhere: one error listing every place looked; IMDS fails fast", function()
  setup { AWS_EC2_METADATA_DISABLED = "false", AWS_EC2_METADATA_SERVICE_ENDPOINT = "http://127.0.0.1:1" }
  local e = fails("no AWS credentials found")
  T.eq(e.code, "NoCredentials")
  local s = tostring(e)
  for _, want in ipairs { "(1) options", "(2) environment: AWS_ACCESS_KEY_ID not set",
    "(3) web identity: AWS_WEB_IDENTITY_TOKEN_FILE not set", "(4) shared files: profile default not in",
    "none-creds (not found)", "(5) container", "(6) instance metadata: EC2 instance metadata (http://127.0.0.1:1)" } do
    T.ok(s:find(want, 1, true), "missing " .. want .. " in " .. s)
  end
  setup {}
  fails("disabled by AWS_EC2_METADATA_DISABLED")
end)

T.test("malformed or unreadable files name the file and line", function()
  setup { AWS_CONFIG_FILE = write("bad-config", "[default]\nregion = us-east-1\nthis line is wrong\n") }
  local e = fails("bad%-config line 3")
  T.eq(e.code, "InvalidConfigFile")
  setup { AWS_SHARED_CREDENTIALS_FILE = write("bad-creds", "aws_access_key_id = " .. SECRETS[2] .. "\n") }
  e = fails("bad%-creds line 1")
  T.ok(not tostring(e):find(SECRETS[2], 1, true), "value not echoed")
  setup { AWS_SHARED_CREDENTIALS_FILE = dir }
  fails("cannot read " .. dir:gsub("%p", "%%%0"))
  setup { AWS_CONFIG_FILE = write("bad-config2", "[default\nregion=x\n") }
  fails("line 1: malformed section header")
end)

T.test("a failing call through every error path leaks no secret", function()
  -- signed call that fails at the service
  stub:reset()
  stub:script { { status = 403, headers = { ["Content-Type"] = "application/x-amz-json-1.1" },
    body = [[{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}]] } }
  setup({ AWS_ENDPOINT_URL = stub.base, AWS_REGION = "us-east-1" }, { access_key = "AKIDX", secret_key = SECRETS[1],
    session_token = SECRETS[7] })
  local ok, e = pcall(aws.call, "ecs", "ListClusters", {})
  T.ok(not ok)
  outputs[#outputs + 1] = tostring(e)
  outputs[#outputs + 1] = cjson.encode(e)
  -- transport error
  setup({ AWS_ENDPOINT_URL = "http://127.0.0.1:1", AWS_REGION = "us-east-1" },
    { access_key = "AKIDX", secret_key = SECRETS[1], max_attempts = 2 })
  ok, e = pcall(aws.call, "ecs", "ListClusters", {})
  outputs[#outputs + 1] = tostring(e)
  -- validation error
  ok, e = pcall(aws.call, "ecs", "ListClusters", { bogus = SECRETS[1]:sub(1, 3) })
  outputs[#outputs + 1] = tostring(e)
  local all = table.concat(outputs, "\n")
  T.ok(#outputs > 20, "collected outputs")
  for _, s in ipairs(SECRETS) do
    T.ok(not all:find(s, 1, true), "secret " .. s:sub(1, 6) .. "... appears in output")
  end
end)

T.test("stop stub", function()
  stub:stop()
  os.execute("rm -rf " .. dir)
end)
