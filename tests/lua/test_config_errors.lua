-- Every bad credentials/config input refused clearly (issue 12, item 7): InvalidConfigFile
-- or InvalidConfig naming the file and line, exit code 2, no traceback, no value echoed;
-- then a seeded mutation loop over the two files in which every case either works or is
-- refused that way (never a Lua error from deeper down: sigv4, the HTTP layer).
local T = require "harness"
local aws = require "ecsplay.aws"
local errors = require "ecsplay.errors"
local exit = require "ecsplay.cli.exit"

local dir = T.tmpdir()
local SECRET = "fileSECRETvalue0123456789abcdef"

local function write(name, text)
  local path = dir .. "/" .. name
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- A stand-in for the network: every call answers an empty ECS/STS result.
local function transport(req)
  if req.body and req.body:find("GetCallerIdentity", 1, true) then
    return { status = 200, headers = { ["content-type"] = "text/xml" }, body = "<GetCallerIdentityResponse>"
      .. "<GetCallerIdentityResult><Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>" }
  end
  return { status = 200, headers = { ["content-type"] = "application/x-amz-json-1.1" }, body = '{"clusterArns":[]}' }
end

-- Configures aws with these files (and env), resolves credentials and region, and signs one
-- call. → true, or the error raised.
local function try(config, creds, env)
  local e = { AWS_CONFIG_FILE = write("config", config), AWS_SHARED_CREDENTIALS_FILE = write("credentials", creds or ""),
    AWS_EC2_METADATA_DISABLED = "true", AWS_ENDPOINT_URL = "http://127.0.0.1:1" }
  for k, v in pairs(env or {}) do e[k] = v end
  aws.configure { env = e, transport = transport, max_attempts = 1, log = function() end }
  local ok, err = pcall(aws.call, "ecs", "ListClusters", {})
  if ok then return true end
  return err
end

-- The refusal: its code, exit code 2, the file and line named, the secret not echoed.
local function refused(err, code, path_name, line, pattern)
  T.ok(errors.is_error(err), "an ecsplay error, not " .. tostring(err))
  T.eq(err.code, code, errors.describe(err))
  T.eq(err.kind, "config", errors.describe(err))
  T.eq(exit.code_for(err), 2, "exit code of " .. errors.describe(err))
  local text = errors.describe(err)
  if path_name then
    T.ok(text:find(dir .. "/" .. path_name .. " line " .. line, 1, true), "names the file and line: " .. text)
    T.eq({ err.file, err.line }, { dir .. "/" .. path_name, line })
  end
  if pattern then T.ok(text:find(pattern), text) end
  T.ok(not text:find(SECRET, 1, true), "no secret in " .. text)
  return err
end

local KEYS = "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = " .. SECRET .. "\n"

T.test("mfa_serial is refused (not supported), exit 2, with its line", function()
  local cfg = "[default]\nregion = us-east-1\n[profile m]\nrole_arn = arn:aws:iam::1:role/r\n"
    .. "source_profile = default\nmfa_serial = arn:aws:iam::1:mfa/me\n"
  refused(try(cfg, KEYS, { AWS_PROFILE = "m" }), "InvalidConfig", "config", 6, "mfa_serial.*not supported")
end)

T.test("a source_profile loop names the chain and the line that closes it", function()
  local cfg = "[default]\nregion = us-east-1\n[profile a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = b\n"
    .. "[profile b]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = a\n"
  refused(try(cfg, "", { AWS_PROFILE = "a" }), "InvalidConfig", "config", 8, "a %-> b %-> a")
end)

T.test("a missing source_profile, SSO, a bad credential_source, role_arn alone", function()
  local base = "[default]\nregion = us-east-1\n"
  refused(try(base .. "[profile x]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = nope\n", "",
    { AWS_PROFILE = "x" }), "InvalidConfig", "config", 5, "source_profile nope not found")
  refused(try(base .. "[profile s]\nsso_start_url = https://sso.example/start\n", "", { AWS_PROFILE = "s" }),
    "InvalidConfig", "config", 4, "AWS SSO")
  refused(try(base .. "[profile c]\nrole_arn = arn:aws:iam::1:role/c\ncredential_source = Bogus\n", "",
    { AWS_PROFILE = "c" }), "InvalidConfig", "config", 5, "credential_source")
  refused(try(base .. "[profile r]\nrole_arn = arn:aws:iam::1:role/r\n", "", { AWS_PROFILE = "r" }),
    "InvalidConfig", "config", 4, "neither source_profile")
  refused(try(base .. "[profile d]\nrole_arn = arn:aws:iam::1:role/d\nsource_profile = default\n"
    .. "duration_seconds = 1e999\n", KEYS, { AWS_PROFILE = "d" }), "InvalidConfigFile", "config", 6, "900 to 43200")
end)

T.test("values sigv4 or HTTP cannot carry are refused with their line, never echoed", function()
  local cfg = "[default]\nregion = us-east-1\n"
  refused(try(cfg, "[default]\naws_access_key_id = AKID/WITH=SEP\naws_secret_access_key = " .. SECRET .. "\n"),
    "InvalidConfigFile", "credentials", 2, "access key id")
  refused(try(cfg, KEYS .. "aws_session_token = tok\rX-Injected: 1\n"), "InvalidConfigFile", "credentials", 4,
    "session token contains a control character")
  refused(try("[default]\nregion = us east 1\n", KEYS), "InvalidConfigFile", "config", 2, "invalid `region`")
  refused(try("[default]\nregion =\n  sub = 1\n", KEYS), "InvalidConfigFile", "config", 2, "indented sub%-keys")
  refused(try(cfg, "[default]\naws_secret_access_key = " .. SECRET .. "\n"), "InvalidConfigFile", "credentials", 2,
    "no aws_access_key_id")
end)

T.test("the environment: a bad region or key is InvalidConfig naming the variable", function()
  refused(try("", "", { AWS_REGION = "us-east-1\n", AWS_ACCESS_KEY_ID = "AKID", AWS_SECRET_ACCESS_KEY = SECRET }),
    "InvalidConfig", nil, nil, "AWS_REGION")
  refused(try("", "", { AWS_REGION = "us-east-1", AWS_ACCESS_KEY_ID = "AK ID", AWS_SECRET_ACCESS_KEY = SECRET }),
    "InvalidConfig", nil, nil, "AWS_ACCESS_KEY_ID")
  refused(try("", "", { AWS_REGION = "us-east-1", AWS_ACCESS_KEY_ID = "AKID" }), "InvalidConfig", nil, nil,
    "no secret access key")
end)

T.test("from the command line: exit 2, the file and line, no traceback", function()
  local cfg = write("cli-config", "[default]\nregion = us-east-1\n[profile m]\nrole_arn = arn:aws:iam::1:role/r\n"
    .. "source_profile = default\nmfa_serial = arn:aws:iam::1:mfa/me\n")
  local creds = write("cli-credentials", KEYS)
  local cmd = string.format("env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY AWS_CONFIG_FILE=%s "
    .. "AWS_SHARED_CREDENTIALS_FILE=%s AWS_PROFILE=m AWS_EC2_METADATA_DISABLED=true "
    .. "%s --endpoint-url http://127.0.0.1:1 -e 'require(\"ecsplay.ecs\").list_clusters{}' 2>&1; echo \"rc=$?\"",
    cfg, creds, T.bin)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  T.ok(out:find("rc=2", 1, true), out)
  T.ok(out:find("InvalidConfig", 1, true) and out:find(cfg .. " line 6", 1, true), out)
  T.ok(not out:find("stack traceback", 1, true), out)
end)

---------------------------------------------------------------- answers without an AWS error

-- Configures aws with static keys and `answer` as the whole network.
local function answering(answer)
  aws.configure { env = { AWS_REGION = "us-east-1", AWS_ACCESS_KEY_ID = "AKIDX", AWS_SECRET_ACCESS_KEY = SECRET,
    AWS_ENDPOINT_URL = "http://127.0.0.1:1", AWS_EC2_METADATA_DISABLED = "true" },
    transport = function() return answer end, max_attempts = 1, log = function() end }
end

T.test("an HTTP error with no AWS error in it has a code (HttpError<status>) and a reason", function()
  for _, status in ipairs { 400, 413, 502 } do
    answering { status = status, headers = {}, body = "" }
    local ok, e = pcall(aws.call, "ecs", "DescribeServices", { cluster = "c", services = { "s" } })
    T.ok(not ok and errors.is_error(e), tostring(e))
    T.eq(e.code, "HttpError" .. status)
    local text = errors.describe(e)
    T.ok(text:find("HTTP " .. status .. " .* and no AWS error in the answer"), text)
  end
  answering { status = 404, headers = { ["content-type"] = "text/html" }, body = "<html>Not Found</html>" }
  local ok, e = pcall(aws.call, "ecs", "ListClusters", {})
  T.ok(not ok and e.code ~= "404" and e.message ~= "", errors.describe(e))
end)

T.test("a pagination token that is not a string is a malformed answer (exit 1), not bad input", function()
  answering { status = 200, headers = { ["content-type"] = "application/x-amz-json-1.1" },
    body = '{"serviceArns":[],"nextToken":0}' }
  local ecs = require "ecsplay.ecs"
  local ok, e = pcall(function() for _ in ecs.pages.list_services { cluster = "c" } do end end)
  T.ok(not ok and errors.is_error(e), tostring(e))
  T.eq({ e.kind, e.code }, { "response", "InvalidResponse" }, errors.describe(e))
  T.eq(exit.code_for(e), 1)
end)

---------------------------------------------------------------- the mutation loop

local CONFIG = [[
[default]
region = us-east-1
[profile dev]
region = us-west-2
role_arn = arn:aws:iam::123456789012:role/dev
source_profile = base
duration_seconds = 3600
[profile base]
region = us-east-1
[profile loop-a]
role_arn = arn:aws:iam::123456789012:role/a
source_profile = loop-b
[profile loop-b]
role_arn = arn:aws:iam::123456789012:role/b
source_profile = loop-a
[profile mfa]
role_arn = arn:aws:iam::123456789012:role/m
source_profile = base
mfa_serial = arn:aws:iam::123456789012:mfa/me
[profile sso]
sso_start_url = https://sso.invalid/start
[profile nested]
region = eu-west-1
s3 =
  max_concurrent_requests = 20
]]
local CREDS = "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = " .. SECRET
  .. "\n[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = base-secret\naws_session_token = tok\n"
local PROFILES = { "default", "dev", "base", "loop-a", "mfa", "sso", "nested", "missing" }
local KEYNAMES = { "region", "role_arn", "source_profile", "mfa_serial", "credential_source", "duration_seconds",
  "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "sso_session", "web_identity_token_file", "s3" }
local VALUES = { "", " ", "us-east-1 us-west-2", "x/y=z", "99999999999999999999", "-1", "1e999", "nan",
  "base", "dev", "loop-a", "nonexistent", "Environment", "Bogus", "\0", "\t", "a\rb", "[x]", "= = =",
  string.rep("x", 3000) }

-- One mutation of the text (seeded): drop, duplicate, indent or swap a line, insert a
-- setting, change a value, insert a stray byte.
local function mutate(rng, text)
  local lines = {}
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  for _ = 1, rng(1, 3) do
    local i = rng(1, math.max(1, #lines))
    local op = rng(1, 7)
    if op == 1 then table.remove(lines, i)
    elseif op == 2 then table.insert(lines, i, lines[i] or "")
    elseif op == 3 then lines[i] = "  " .. (lines[i] or "")
    elseif op == 4 then table.insert(lines, i, KEYNAMES[rng(1, #KEYNAMES)] .. " = " .. VALUES[rng(1, #VALUES)])
    elseif op == 5 and (lines[i] or ""):find("=") then
      lines[i] = lines[i]:gsub("=.*$", "= " .. VALUES[rng(1, #VALUES)])
    elseif op == 6 then
      local l = lines[i] or ""
      local at = rng(0, #l)
      lines[i] = l:sub(1, at) .. string.char(rng(0, 255)) .. l:sub(at + 1)
    else
      local j = rng(1, math.max(1, #lines))
      lines[i], lines[j] = lines[j], lines[i]
    end
  end
  return table.concat(lines, "\n")
end

local OK_CODES = { InvalidConfigFile = true, InvalidConfig = true, ProfileNotFound = true, NoRegion = true }

T.test("300 seeded mutations of the two files: each works or is refused as bad config (exit 2)", function()
  math.randomseed(12)
  local rng = math.random
  local worked, refused_n = 0, 0
  for n = 1, 300 do
    local cfg, creds = CONFIG, CREDS
    local which = rng(1, 3)
    if which ~= 2 then cfg = mutate(rng, cfg) end
    if which ~= 1 then creds = mutate(rng, creds) end
    local profile = PROFILES[rng(1, #PROFILES)]
    local r = try(cfg, creds, { AWS_PROFILE = profile, AWS_ENDPOINT_URL_STS = "http://127.0.0.1:1" })
    if r == true then
      worked = worked + 1
    else
      local where = string.format("case %d (profile %s)", n, profile)
      T.ok(errors.is_error(r), where .. ": a plain Lua error: " .. tostring(r))
      T.ok(type(r.code) == "string" and r.code ~= "" and type(r.message) == "string" and r.message ~= "",
        where .. ": an error without a code and a message: " .. errors.describe(r))
      T.ok(not errors.describe(r):find(SECRET, 1, true), where .. ": the secret echoed")
      if OK_CODES[r.code] then
        T.eq(exit.code_for(r), 2, where .. ": " .. errors.describe(r))
        if r.code == "InvalidConfigFile" then
          T.ok(errors.describe(r):find(" line %d+"), where .. ": no line in " .. errors.describe(r))
        end
      else
        -- credentials that exist but fail (STS unreachable here, no credentials at all)
        T.ok(r.kind == "credentials" or r.kind == "transport", where .. ": " .. r.kind .. " " .. errors.describe(r))
      end
      refused_n = refused_n + 1
    end
  end
  T.ok(worked > 20 and refused_n > 20, string.format("a mix: %d worked, %d refused", worked, refused_n))
end)

T.test("clean up", function() os.execute("rm -rf " .. dir) end)
