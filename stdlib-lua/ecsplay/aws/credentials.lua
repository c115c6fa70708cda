-- AWS credentials and region, resolved in the SDKs' order:
--   0. a role to assume (opts.role_arn, with external_id: aws.session{}): STS AssumeRole with
--      the credentials the rest of this chain finds, assumed again before they expire
--   1. explicit options (configure{access_key=, secret_key=, session_token=})
--   2. environment: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN
--      (skipped when a profile was chosen explicitly with --profile or aws.session{profile=},
--      as botocore does; a profile's credential_source = Environment still reads them)
--   3. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN → STS AssumeRoleWithWebIdentity
--   4. the shared files (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, ~/.aws/...), profile
--      from --profile / AWS_PROFILE / "default": role_arn (+ source_profile, credential_source
--      or web_identity_token_file) → STS AssumeRole; static keys; credential_process
--   5. ECS container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI)
--   6. EC2 instance metadata (IMDSv2), unless AWS_EC2_METADATA_DISABLED=true
-- Temporary credentials are fetched again REFRESH_WINDOW seconds before they expire.
--
-- Secrets: a credentials object holds only the access key id, the expiry and where it came
-- from; the secret key and token live in a weak table keyed by the object and are read with
-- creds:secret_key() / creds:session_token(). Nothing here puts them in a message.
local errors = require "ecsplay.errors"
local log = require "ecsplay.log"
local json = require "ecsplay.json"
local sched = require "ecsplay.sched"
local config_files = require "ecsplay.aws.config_files"
local strings = require "ecsplay.util.strings"
local timestamp = require "ecsplay.util.timestamp"

local M = {}
M.REFRESH_WINDOW = 300
M.CONTAINER_HOST = "http://169.254.170.2"
M.IMDS_ENDPOINT = "http://169.254.169.254"
M.IMDS_TIMEOUT = 1
M.CONTAINER_TIMEOUT = 2

local function json_decode(s)
  return (json.decode(s))
end

local function cred_error(code, fmt, ...)
  error(errors.credentials { code = code, message = string.format(fmt, ...) }, 0)
end

--[[ A configuration ecsplay refuses (exit 2 while nothing changed). `at` is where the
     setting was read ({ file =, line = }, from config_files) or nil for the environment.
     InvalidConfigFile: a line or value of a file that cannot be used as written;
     InvalidConfig: a setting ecsplay does not support or that contradicts another. ]]
local function config_error(code, at, fmt, ...)
  local msg = string.format(fmt, ...)
  if at then msg = string.format("%s (%s line %d)", msg, at.file, at.line) end
  error(errors.config { code = code, message = msg, file = at and at.file, line = at and at.line }, 0)
end

-- What sigv4 and the HTTP layer cannot carry: an access key id with a separator of the
-- Authorization header or whitespace, a session token with a control character (it
-- becomes a header line). → the problem, or nil.
local function key_problem(ak, token)
  if ak ~= nil and (type(ak) ~= "string" or ak == "" or ak:find("[/,=%s%c]")) then
    return "the access key id is empty or contains '/', ',', '=', whitespace or a control character"
  end
  if token ~= nil and (type(token) ~= "string" or token:find("%c")) then
    return "the session token contains a control character (such as a line break)"
  end
end
M.key_problem = key_problem

---------------------------------------------------------------------------------------
-- The credentials object.
local vault = setmetatable({}, { __mode = "k" })

local Creds = {}
Creds.__index = Creds
M.Creds = Creds

local function mask(ak)
  ak = tostring(ak or "")
  if #ak <= 8 then return string.rep("*", #ak) end
  return ak:sub(1, 4) .. string.rep("*", #ak - 8) .. ak:sub(-4)
end
M.mask = mask

Creds.__tostring = function(c)
  return string.format("<AWS credentials %s from %s%s>", mask(c.access_key), c.source or "?",
    c.expiration and (", expires " .. timestamp.iso8601(c.expiration, false)) or "")
end

function Creds:secret_key() return vault[self] and vault[self].secret end
function Creds:session_token() return vault[self] and vault[self].token end
function Creds:temporary() return vault[self] and vault[self].token ~= nil end

-- new{access_key=, secret_key=, session_token=, expiration=, source=} → creds
function M.new(t)
  local problem = key_problem(t.access_key, t.session_token ~= "" and t.session_token or nil)
  if problem then
    cred_error("InvalidCredentials", "credentials from %s: %s", t.source or "options", problem)
  end
  local c = setmetatable({ access_key = t.access_key, expiration = t.expiration,
    source = t.source or "options" }, Creds)
  local token = t.session_token
  if token == "" then token = nil end
  vault[c] = { secret = t.secret_key, token = token }
  -- Defence in depth: the log layer masks these wherever they would appear.
  log.add_secret(t.secret_key)
  log.add_secret(token)
  return c
end

---------------------------------------------------------------------------------------
-- A resolver: one per aws.configure().
local Resolver = {}
Resolver.__index = Resolver
M.Resolver = Resolver

-- opts: { env = table|function(name) (default os.getenv), profile = (explicit --profile),
--   profile_source = where that profile was named, for messages (default "--profile"),
--   region=, access_key=, secret_key=, session_token=, config_file=, credentials_file=,
--   http = function(req) → resp | nil, message, kind  (IMDS and container endpoints),
--   sts = function(op, params, creds_or_nil, region) → output (raises on error),
--   now = function() → epoch seconds, run = function(cmd) → output, ok, exit_code,
--   refresh_window = seconds, role_arn=, external_id=, role_session_name=, duration_seconds= }
function M.resolver(opts)
  opts = opts or {}
  local env = opts.env
  local getenv
  if type(env) == "function" then
    getenv = env
  elseif type(env) == "table" then
    getenv = function(k) return env[k] end
  else
    getenv = os.getenv
  end
  local self = setmetatable({ opts = opts, getenv = function(k)
    local v = getenv(k)
    if v == "" then return nil end
    return v
  end }, Resolver)
  self.now = opts.now or function() return os.time() end
  self.window = opts.refresh_window or M.REFRESH_WINDOW
  return self
end

function Resolver:home()
  return self.getenv("HOME") or "~"
end

function Resolver:paths()
  local home = self:home()
  local cfg = self.opts.config_file or self.getenv("AWS_CONFIG_FILE") or (home .. "/.aws/config")
  local crd = self.opts.credentials_file or self.getenv("AWS_SHARED_CREDENTIALS_FILE")
    or (home .. "/.aws/credentials")
  return config_files.expand(cfg, home), config_files.expand(crd, home)
end

-- Both files parsed once per resolver; unreadable or malformed files raise a config error.
function Resolver:files()
  if self._files then return self._files end
  local cfg_path, crd_path = self:paths()
  local out = { config_path = cfg_path, credentials_path = crd_path }
  for key, path in pairs { config = cfg_path, credentials = crd_path } do
    local sections, err, why = config_files.read(path)
    if sections then
      out[key] = sections
    elseif why == "missing" then
      out[key .. "_missing"] = true
    else
      error(errors.config { code = "InvalidConfigFile", message = err }, 0)
    end
  end
  self._files = out
  return out
end

-- The profile name and whether it was chosen (explicitly or via AWS_PROFILE).
function Resolver:profile_name()
  if self.opts.profile then return self.opts.profile, self.opts.profile_source or "--profile" end
  local p = self.getenv("AWS_PROFILE")
  if p then return p, "AWS_PROFILE" end
  p = self.getenv("AWS_DEFAULT_PROFILE")
  if p then return p, "AWS_DEFAULT_PROFILE" end
  return "default", nil
end

-- The settings ecsplay reads from a profile: each must be a value, not indented sub-keys.
local STRING_KEYS = { "region", "role_arn", "source_profile", "credential_source",
  "web_identity_token_file", "role_session_name", "external_id", "duration_seconds",
  "mfa_serial", "aws_access_key_id", "aws_secret_access_key", "aws_session_token",
  "aws_security_token", "credential_process", "sso_start_url", "sso_session" }

-- → settings table of a profile, or nil when it does not exist. Where each setting was
-- read is kept for Resolver:at.
function Resolver:profile(name)
  local f = self:files()
  local t, found, origin = config_files.profile(f.config, f.credentials, name)
  if not found then return nil end
  self.origins = self.origins or setmetatable({}, { __mode = "k" })
  self.origins[t] = origin
  for _, k in ipairs(STRING_KEYS) do
    local v = t[k]
    if type(v) == "table" then
      if next(v) ~= nil then
        config_error("InvalidConfigFile", origin[k], "profile %s: `%s` has indented sub-keys "
          .. "where a value was expected", name, k)
      end
      t[k] = nil   -- `key =` with nothing after it: not set
    end
  end
  return t
end

-- Where setting `key` of profile table p was read ({ file =, line = }; the profile's
-- header when key is nil or not in the files).
function Resolver:at(p, key)
  local origin = self.origins and self.origins[p]
  if not origin then return nil end
  return (key and origin[key]) or origin[1]
end

-- The chosen profile; an explicitly named profile that does not exist is an error.
-- Where profile `name` was looked for and not found, the profiles there and a did-you-mean:
-- "not found in CONFIG or CREDENTIALS; profiles there: a, b; did you mean \"b\"?".
function Resolver:profile_missing(name)
  local f = self:files()
  local names = config_files.profile_names(f.config, f.credentials)
  return string.format("not found in %s or %s%s", f.config_path, f.credentials_path, #names > 0
    and ("; profiles there: " .. table.concat(names, ", ") .. strings.did_you_mean(name, names, { quote = true }))
    or " (no profiles there)")
end

function Resolver:chosen_profile()
  local name, how = self:profile_name()
  local p = self:profile(name)
  if not p and how then
    error(errors.config { code = "ProfileNotFound", message = string.format("profile %q (from %s) %s",
      name, how, self:profile_missing(name)) }, 0)
  end
  return p, name
end

---------------------------------------------------------------------------------------
-- Region: option → AWS_REGION → AWS_DEFAULT_REGION → the profile's `region`.
-- A region name as botocore accepts it: letters, digits and inner hyphens, at most 63.
local function region_ok(r)
  return #r <= 63 and (r:match("^%w$") or r:match("^%w[%w%-]*%w$")) ~= nil
end

function Resolver:region()
  local r, how = self.opts.region, "--region"
  if not r then r, how = self.getenv("AWS_REGION"), "AWS_REGION" end
  if not r then r, how = self.getenv("AWS_DEFAULT_REGION"), "AWS_DEFAULT_REGION" end
  if r then
    if not region_ok(r) then
      config_error("InvalidConfig", nil, "invalid region %q from %s: expected letters, digits "
        .. "and hyphens (e.g. us-east-1)", r:sub(1, 40), how)
    end
    return r, how
  end
  local p, name = self:chosen_profile()
  if p and type(p.region) == "string" and p.region ~= "" then
    if not region_ok(p.region) then
      config_error("InvalidConfigFile", self:at(p, "region"), "profile %s: invalid `region`: "
        .. "expected letters, digits and hyphens (e.g. us-east-1)", name)
    end
    return p.region, string.format("profile %s in %s", name, self:files().config_path)
  end
  return nil
end

---------------------------------------------------------------------------------------
-- Providers. Each returns creds, or nil and a short reason (for the "looked in" list);
-- a provider that is configured but fails raises.

local function check_pair(ak, sk, where)
  if ak and not sk then
    config_error("InvalidConfig", nil, "%s has an access key id but no secret access key", where)
  elseif sk and not ak then
    config_error("InvalidConfig", nil, "%s has a secret access key but no access key id", where)
  end
  return ak ~= nil
end

function Resolver:from_options()
  local o = self.opts
  if not check_pair(o.access_key, o.secret_key, "configure{}") then return nil, "not given" end
  return M.new { access_key = o.access_key, secret_key = o.secret_key,
    session_token = o.session_token, source = "options" }
end

function Resolver:from_env()
  if self.opts.profile then
    return nil, string.format("skipped (%s given)", self.opts.profile_source or "--profile")
  end
  return self:env_keys()
end

-- The environment's keys, whatever profile is in effect (credential_source = Environment).
function Resolver:env_keys()
  local g = self.getenv
  local ak, sk = g("AWS_ACCESS_KEY_ID"), g("AWS_SECRET_ACCESS_KEY")
  if not check_pair(ak, sk, "the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)") then
    return nil, "AWS_ACCESS_KEY_ID not set"
  end
  local token = g("AWS_SESSION_TOKEN") or g("AWS_SECURITY_TOKEN")
  local problem = key_problem(ak, token)
  if problem then
    config_error("InvalidConfig", nil, "AWS_ACCESS_KEY_ID / AWS_SESSION_TOKEN in the environment: %s",
      problem)
  end
  return M.new { access_key = ak, secret_key = sk, session_token = token, source = "environment" }
end

local function expiry(s, where)
  if s == nil then return nil end
  local t, err = timestamp.parse(s)
  if not t then cred_error("InvalidCredentials", "%s: bad Expiration: %s", where, err) end
  return t
end

-- STS Credentials {AccessKeyId, SecretAccessKey, SessionToken, Expiration} → creds
local function from_sts_output(out, source)
  local c = type(out) == "table" and out.Credentials
  if type(c) ~= "table" or not c.AccessKeyId or not c.SecretAccessKey then
    cred_error("InvalidCredentials", "%s: STS answered without credentials", source)
  end
  local exp = c.Expiration
  if type(exp) == "string" then exp = expiry(exp, source) end
  return M.new { access_key = c.AccessKeyId, secret_key = c.SecretAccessKey,
    session_token = c.SessionToken, expiration = exp, source = source }
end

function Resolver:sts(op, params, creds, region, source)
  if not self.opts.sts then
    cred_error("NoCredentials", "%s needs STS, which is not available here", source)
  end
  local ok, out = pcall(self.opts.sts, op, params, creds, region or self:region() or "us-east-1")
  if not ok then
    local e = out
    -- interrupts and Lua errors pass through
    if not errors.is_error(e) or errors.is(e, "interrupted") then error(e, 0) end
    local msg = e.message and e.message ~= "" and (e.code .. ": " .. e.message) or e.code
    error(errors.credentials { code = e.code or "AssumeRoleFailed", status = e.status,
      request_id = e.request_id, message = string.format("%s: STS %s failed: %s", source, op, msg) }, 0)
  end
  return from_sts_output(out, source)
end

function Resolver:session_name(given)
  return given or string.format("ecsplay-%d", math.floor(self.now()))
end

function Resolver:web_identity(token_file, role_arn, session, region, source)
  local f, err = io.open(token_file, "rb")
  if not f then
    cred_error("InvalidWebIdentityToken", "%s: cannot read the token file: %s", source, tostring(err))
  end
  local token = f:read("a") or ""
  f:close()
  token = token:gsub("%s+$", "")
  if token == "" then cred_error("InvalidWebIdentityToken", "%s: the token file %s is empty", source, token_file) end
  return self:sts("AssumeRoleWithWebIdentity", { RoleArn = role_arn,
    RoleSessionName = self:session_name(session), WebIdentityToken = token }, nil, region, source)
end

function Resolver:from_web_identity_env()
  local g = self.getenv
  local file, arn = g("AWS_WEB_IDENTITY_TOKEN_FILE"), g("AWS_ROLE_ARN")
  if not file then return nil, "AWS_WEB_IDENTITY_TOKEN_FILE not set" end
  if not arn then
    config_error("InvalidConfig", nil, "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not")
  end
  return self:web_identity(file, arn, g("AWS_ROLE_SESSION_NAME"), nil,
    "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)")
end

function Resolver:run_process(cmd)
  if self.opts.run then return self.opts.run(cmd) end
  local p = io.popen(cmd, "r")
  if not p then return nil, false, -1 end
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok, code
end

function Resolver:credential_process(cmd, pname)
  local where = string.format("credential_process of profile %s (%s ...)", pname,
    cmd:match("^%s*(%S+)") or "")
  local out, ok, code = self:run_process(cmd)
  if not ok then
    cred_error("CredentialProcessFailed", "%s exited with status %s", where, tostring(code))
  end
  local v = out and json_decode(out)
  if type(v) ~= "table" then
    cred_error("CredentialProcessFailed", "%s: output is not a JSON object", where)
  end
  if v.Version ~= 1 then
    cred_error("CredentialProcessFailed", "%s: unsupported Version %s (expected 1)", where,
      tostring(v.Version))
  end
  if type(v.AccessKeyId) ~= "string" or type(v.SecretAccessKey) ~= "string" then
    cred_error("CredentialProcessFailed", "%s: output lacks AccessKeyId or SecretAccessKey", where)
  end
  return M.new { access_key = v.AccessKeyId, secret_key = v.SecretAccessKey,
    session_token = type(v.SessionToken) == "string" and v.SessionToken or nil,
    expiration = type(v.Expiration) == "string" and expiry(v.Expiration, where) or nil,
    source = string.format("credential_process (profile %s)", pname) }
end

-- Settings ecsplay does not support, refused before any call: assuming a role with an MFA
-- prompt, and SSO (only when the profile has no keys nor credential_process, as botocore).
function Resolver:refuse_mfa(name, p)
  if p.mfa_serial then
    config_error("InvalidConfig", self:at(p, "mfa_serial"), "profile %s: mfa_serial (MFA prompts) "
      .. "is not supported; use credential_process or export temporary credentials", name)
  end
end

function Resolver:refuse_sso(name, p)
  if p.sso_start_url or p.sso_session then
    config_error("InvalidConfig", self:at(p, p.sso_start_url and "sso_start_url" or "sso_session"),
      "profile %s uses AWS SSO, which ecsplay does not support; use credential_process "
      .. "(e.g. aws configure export-credentials) instead", name)
  end
end

-- The AssumeRole parameters of a profile with role_arn (duration_seconds: STS's range).
function Resolver:assume_role_params(name, p)
  local params = { RoleArn = p.role_arn, RoleSessionName = self:session_name(p.role_session_name) }
  if p.external_id then params.ExternalId = p.external_id end
  if p.duration_seconds then
    local d = math.tointeger(tonumber(p.duration_seconds))
    if not d or d < 900 or d > 43200 then
      config_error("InvalidConfigFile", self:at(p, "duration_seconds"), "profile %s: "
        .. "`duration_seconds` must be a whole number of seconds from 900 to 43200", name)
    end
    params.DurationSeconds = d
  end
  return params
end

-- The credentials a role_arn profile assumes the role with: its source_profile's (followed
-- recursively; `chain` lists the profiles seen, to refuse a loop) or its credential_source.
function Resolver:role_source(name, p, chain)
  local where = string.format("profile %s", name)
  if p.source_profile then
    local sp = self:profile(p.source_profile)
    if not sp then
      local f = self:files()
      config_error("InvalidConfig", self:at(p, "source_profile"), "%s: source_profile %s not found "
        .. "in %s or %s", where, p.source_profile, f.config_path, f.credentials_path)
    end
    -- botocore: a profile that is its own source_profile uses its own static keys.
    if p.source_profile == name then
      local source = self:static_profile(name, p)
      if not source then
        config_error("InvalidConfig", self:at(p, "source_profile"), "%s: source_profile is "
          .. "itself but the profile has no keys", where)
      end
      return source
    end
    return self:profile_creds(p.source_profile, sp, chain, self:at(p, "source_profile"))
  end
  local cs = p.credential_source
  if not cs then
    config_error("InvalidConfig", self:at(p, "role_arn"), "%s has role_arn but neither "
      .. "source_profile, credential_source nor web_identity_token_file", where)
  end
  -- Environment: the keys even with an explicit profile (botocore's EnvProvider there)
  local providers = { Environment = "env_keys", EcsContainer = "from_container",
    Ec2InstanceMetadata = "from_imds" }
  if not providers[cs] then
    config_error("InvalidConfig", self:at(p, "credential_source"), "%s: credential_source is not "
      .. "one of Environment, EcsContainer, Ec2InstanceMetadata", where)
  end
  local source = self[providers[cs]](self)
  if not source then cred_error("NoCredentials", "%s: credential_source %s has no credentials", where, cs) end
  return source
end

-- Credentials of profile `name`. chain: the profiles that led here through source_profile
-- (a name seen twice is a loop); at: where the source_profile naming this one was read.
function Resolver:profile_creds(name, p, chain, at)
  chain = chain or {}
  for _, seen in ipairs(chain) do
    if seen == name then
      chain[#chain + 1] = name
      config_error("InvalidConfig", at or self:at(p, "source_profile"), "profile %s: "
        .. "source_profile chain loops back to itself (%s)", chain[1], table.concat(chain, " -> "))
    end
  end
  chain[#chain + 1] = name
  local where = string.format("profile %s", name)
  if p.role_arn then
    if p.web_identity_token_file then
      return self:web_identity(p.web_identity_token_file, p.role_arn, p.role_session_name, p.region,
        where .. " (web_identity_token_file)")
    end
    self:refuse_mfa(name, p)
    local source = self:role_source(name, p, chain)
    return self:sts("AssumeRole", self:assume_role_params(name, p), source, p.region,
      where .. " (role_arn)")
  end
  local c = self:static_profile(name, p)
  if c then return c end
  if p.credential_process then return self:credential_process(p.credential_process, name) end
  self:refuse_sso(name, p)
  return nil
end

-- A profile's static keys, or nil when it has none; a half pair or a value sigv4 cannot
-- carry is refused with the line it is on.
function Resolver:static_profile(name, p)
  local ak, sk = p.aws_access_key_id, p.aws_secret_access_key
  if ak and not sk then
    config_error("InvalidConfigFile", self:at(p, "aws_access_key_id"), "profile %s has "
      .. "aws_access_key_id but no aws_secret_access_key", name)
  elseif sk and not ak then
    config_error("InvalidConfigFile", self:at(p, "aws_secret_access_key"), "profile %s has "
      .. "aws_secret_access_key but no aws_access_key_id", name)
  end
  if not ak then return nil end
  local token_key = p.aws_session_token and "aws_session_token" or "aws_security_token"
  local token = p[token_key]
  if key_problem(ak) then
    config_error("InvalidConfigFile", self:at(p, "aws_access_key_id"), "profile %s: %s", name,
      key_problem(ak))
  elseif key_problem(nil, token) then
    config_error("InvalidConfigFile", self:at(p, token_key), "profile %s: %s", name,
      key_problem(nil, token))
  end
  return M.new { access_key = ak, secret_key = sk, session_token = token,
    source = string.format("profile %s (shared files)", name) }
end

function Resolver:from_profile()
  local p, name = self:chosen_profile()
  local f = self:files()
  local files = string.format("%s (%s), %s (%s)", f.credentials_path,
    f.credentials_missing and "not found" or "read", f.config_path,
    f.config_missing and "not found" or "read")
  if not p then return nil, string.format("profile %s not in %s", name, files) end
  local c = self:profile_creds(name, p)
  if c then return c end
  return nil, string.format("profile %s in %s has no credentials", name, files)
end

-- HTTP for the metadata endpoints: opts.http, else ecsplay.sched.http.
function Resolver:get(req)
  if self.opts.http then return self.opts.http(req) end
  local r = sched.http(req)
  if r.error then return nil, r.error, r.kind end
  return r
end

local LOOPBACK_OK = { ["169.254.170.2"] = true, ["169.254.170.23"] = true, ["[fd00:ec2::23]"] = true,
  localhost = true, ["[::1]"] = true }

local function container_url_ok(url)
  if url:match("^https://") then return true end
  local host = url:match("^http://(%[[^%]]+%])") or url:match("^http://([^/:]+)")
  if not host then return false end
  return LOOPBACK_OK[host] or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

local function parse_creds_json(body, where)
  local v = body and json_decode(body)
  if type(v) ~= "table" or type(v.AccessKeyId) ~= "string" or type(v.SecretAccessKey) ~= "string" then
    cred_error("InvalidCredentials", "%s: the answer is not a credentials JSON object", where)
  end
  return v
end

function Resolver:from_container()
  local g = self.getenv
  local rel, full = g("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"), g("AWS_CONTAINER_CREDENTIALS_FULL_URI")
  local url
  if rel then
    url = M.CONTAINER_HOST .. (rel:sub(1, 1) == "/" and rel or ("/" .. rel))
  elseif full then
    if not container_url_ok(full) then
      config_error("InvalidConfig", nil, "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https or http to a "
        .. "loopback or the ECS/EKS agent address, got %s", full:match("^[^?]*"))
    end
    url = full
  else
    return nil, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI not set"
  end
  local where = "container credentials (" .. url:match("^[^?]*") .. ")"
  local headers = { Accept = "application/json" }
  local tfile = g("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
  if tfile then
    local f, err = io.open(tfile, "rb")
    if not f then config_error("InvalidConfig", nil, "%s: cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: %s", where, tostring(err)) end
    headers.Authorization = (f:read("a") or ""):gsub("%s+$", "")
    f:close()
  elseif g("AWS_CONTAINER_AUTHORIZATION_TOKEN") then
    headers.Authorization = g("AWS_CONTAINER_AUTHORIZATION_TOKEN")
  end
  local resp, err, kind
  for _ = 1, 2 do
    resp, err, kind = self:get { method = "GET", url = url, headers = headers,
      timeout = M.CONTAINER_TIMEOUT, connect_timeout = M.CONTAINER_TIMEOUT }
    if resp and resp.status < 500 then break end
  end
  if not resp then cred_error("CredentialsEndpointError", "%s: %s (%s)", where, tostring(err), tostring(kind)) end
  if resp.status ~= 200 then cred_error("CredentialsEndpointError", "%s: HTTP %d", where, resp.status) end
  local v = parse_creds_json(resp.body, where)
  return M.new { access_key = v.AccessKeyId, secret_key = v.SecretAccessKey,
    session_token = type(v.Token) == "string" and v.Token or nil,
    expiration = type(v.Expiration) == "string" and expiry(v.Expiration, where) or nil,
    source = "container credentials" }
end

function Resolver:from_imds()
  local g = self.getenv
  if (g("AWS_EC2_METADATA_DISABLED") or ""):lower() == "true" then
    return nil, "disabled by AWS_EC2_METADATA_DISABLED"
  end
  local base = (g("AWS_EC2_METADATA_SERVICE_ENDPOINT") or M.IMDS_ENDPOINT):gsub("/+$", "")
  local where = "EC2 instance metadata (" .. base .. ")"
  local t = M.IMDS_TIMEOUT
  local resp, err, kind = self:get { method = "PUT", url = base .. "/latest/api/token",
    headers = { ["X-aws-ec2-metadata-token-ttl-seconds"] = "21600" }, body = "",
    timeout = t, connect_timeout = t }
  if not resp then return nil, string.format("%s: %s", where, kind or err) end
  if resp.status ~= 200 or not resp.body or resp.body == "" then
    return nil, string.format("%s: token request answered HTTP %d", where, resp.status)
  end
  local h = { ["X-aws-ec2-metadata-token"] = resp.body }
  local path = base .. "/latest/meta-data/iam/security-credentials/"
  resp, err, kind = self:get { method = "GET", url = path, headers = h, timeout = t, connect_timeout = t }
  if not resp then return nil, string.format("%s: %s", where, kind or err) end
  if resp.status == 404 then return nil, where .. ": no instance role attached" end
  if resp.status ~= 200 then return nil, string.format("%s: role request answered HTTP %d", where, resp.status) end
  local role = (resp.body or ""):match("^%s*([^%s]+)")
  if not role then return nil, where .. ": no instance role attached" end
  resp, err, kind = self:get { method = "GET", url = path .. role, headers = h, timeout = t, connect_timeout = t }
  if not resp then cred_error("CredentialsEndpointError", "%s: %s", where, kind or err) end
  if resp.status ~= 200 then
    cred_error("CredentialsEndpointError", "%s: credentials of role %s answered HTTP %d", where, role, resp.status)
  end
  local v = parse_creds_json(resp.body, where)
  if v.Code and v.Code ~= "Success" then
    cred_error("CredentialsEndpointError", "%s: role %s: Code %s", where, role, tostring(v.Code))
  end
  return M.new { access_key = v.AccessKeyId, secret_key = v.SecretAccessKey,
    session_token = type(v.Token) == "string" and v.Token or nil,
    expiration = type(v.Expiration) == "string" and expiry(v.Expiration, where) or nil,
    source = "EC2 instance metadata (role " .. role .. ")" }
end

-- A setting of the chosen profile (retry_mode, max_attempts, ...): → value, where | nil.
function Resolver:profile_setting(key)
  local p, name = self:chosen_profile()
  if not p or type(p[key]) ~= "string" or p[key] == "" then return nil end
  local at = self:at(p, key)
  return p[key], string.format("profile %s's %s%s", name, key,
    at and string.format(" (%s line %d)", at.file, at.line) or "")
end

--[[ opts.role_arn (aws.session{ role_arn=, external_id= }): AssumeRole with the credentials
     of the rest of the chain (a resolver of the same options without the role, kept so its
     own refresh works). Called again by credentials() near the expiry. ]]
function Resolver:from_role_option()
  local o = self.opts
  if not self.role_base then
    local base = {}
    for k, v in pairs(o) do base[k] = v end
    base.role_arn, base.external_id, base.role_session_name, base.duration_seconds = nil, nil, nil, nil
    self.role_base = M.resolver(base)
  end
  local params = { RoleArn = o.role_arn, RoleSessionName = self:session_name(o.role_session_name) }
  if o.external_id then params.ExternalId = o.external_id end
  if o.duration_seconds then params.DurationSeconds = o.duration_seconds end
  return self:sts("AssumeRole", params, self.role_base:credentials(), o.region,
    "role " .. tostring(o.role_arn))
end

local CHAIN = {
  { "options", "from_options" },
  { "environment", "from_env" },
  { "web identity", "from_web_identity_env" },
  { "shared files", "from_profile" },
  { "container", "from_container" },
  { "instance metadata", "from_imds" },
}

-- Walk the chain. → creds, the provider method name
function Resolver:resolve()
  if self.opts.role_arn then return self:from_role_option(), "from_role_option" end
  local looked = {}
  for i, step in ipairs(CHAIN) do
    local c, why = self[step[2]](self)
    if c then return c, step[2] end
    looked[#looked + 1] = string.format("(%d) %s: %s", i, step[1], why or "none")
  end
  cred_error("NoCredentials", "no AWS credentials found; looked in: %s. Set AWS_ACCESS_KEY_ID and "
    .. "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE / --profile with a profile in ~/.aws",
    table.concat(looked, "; "))
end

local function fresh(self, c)
  return c.expiration == nil or self.now() < c.expiration - self.window
end

-- credentials() → creds; cached, fetched again (by the provider that gave them) when they
-- are within the refresh window of their expiry. If that fails while the old ones are still
-- valid, the old ones are used.
function Resolver:credentials()
  local c = self.current
  if c and fresh(self, c) then return c end
  if c and self.provider then
    local ok, nc = pcall(self[self.provider], self)
    if ok and nc then
      self.current = nc
      return nc
    end
    -- an interrupt or a Lua error: not a provider failing
    if not ok and (not errors.is_error(nc) or errors.is(nc, "interrupted")) then error(nc, 0) end
    if self.now() < c.expiration then return c end
    if not ok then error(nc, 0) end
  end
  local provider
  c, provider = self:resolve()
  self.current, self.provider = c, provider
  return c
end

return M
