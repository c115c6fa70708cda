--[[
Sessions: one Region and one account (a profile, an assumed role) from the same process.

  local s = aws.session{ region = "eu-west-1", profile = "prod", role_arn = "arn:aws:iam::
    210987654321:role/deploy", external_id = "...", endpoint_url = "https://...",
    role_session_name = "ecsplay-deploy", duration_seconds = 3600 }
  s.ecs.describe_services{ ... }          the service modules, bound to the session
  s.elbv2, s.cloudwatch, s.codedeploy, s.sts
  s:call(service, Operation, params)      aws.call in the session; s:pcall(...) too
  s:run(fn, ...)                          fn runs with the session in effect: every AWS call
                                          it makes (strategies and gates included, and the
                                          tasks it spawns) uses it
  rollout.canary{ session = s, ... }, gate.alarm{ "x", session = s }   (the same, per rollout
                                          or gate)
  s.region, s.role_arn, s.profile, s.endpoint_url; s:credentials()

What a session owns: its credentials chain (a resolver of its own, refreshed near expiry;
with role_arn, STS AssumeRole with the external id over the credentials the rest of the
chain finds, assumed again before they expire), its Region (region=; with a profile, as
boto3.Session(profile_name=) finds it: AWS_REGION / AWS_DEFAULT_REGION, then the profile's
`region`; else the client's), its endpoint (default: the client's), its retryers (retry
quotas and adaptive mode are per client in the SDKs) and its client-side rate limits (AWS's
limits are per account and Region). What it shares with aws.configure{}: the transport,
timeouts, the configure{} keys when no profile is named, the config files and the
environment.

A bad option is bad input naming the field (exit 2, nothing sent).
]]
local errors = require "ecsplay.errors"
local strings = require "ecsplay.util.strings"
local call = require "ecsplay.aws.call"
local credentials = require "ecsplay.aws.credentials"
local endpoints = require "ecsplay.aws.endpoints"
local ratelimit = require "ecsplay.aws.ratelimit"
local service = require "ecsplay.aws.service"

local M = {}

local Session = {}
local SERVICES = { ecs = true, elbv2 = true, codedeploy = true, cloudwatch = true, sts = true }

local OPTIONS = { region = true, profile = true, role_arn = true, external_id = true,
  endpoint_url = true, role_session_name = true, duration_seconds = true }

local function bad(field, msg)
  error(errors.bad_input("aws.session: " .. field .. ": " .. msg, field), 0)
end

local function string_option(opts, field, pattern, expected)
  local v = opts[field]
  if v == nil then return nil end
  if type(v) ~= "string" or not v:match(pattern) then
    bad(field, string.format("expected %s, got %s", expected,
      type(v) == "string" and string.format("%q", v:sub(1, 60)) or type(v)))
  end
  return v
end

--[[ region=: a Region the partition data (endpoints.lua, generated from botocore's
     partitions.json) lists. One it does not list (a Region newer than that data, or a
     private one) is taken with an endpoint_url = of the session's own, in the xx-name-N
     shape; botocore checks only the shape, so a typo would surface at the first call as a
     DNS or signing error. ]]
local function region_option(v, endpoint_url)
  if v == nil then return nil end
  local shaped = type(v) == "string" and v:match("^%l%l[%l%-]*%-%d+$") ~= nil
  if shaped and (endpoints.known_region(v) or endpoint_url) then return v end
  if type(v) ~= "string" then
    bad("region", "expected a Region name such as \"eu-west-1\", got " .. type(v))
  end
  local hint = endpoints.region_hint(v)
  if not shaped then
    bad("region", string.format("expected a Region name such as \"eu-west-1\", got %q%s",
      v:sub(1, 60), hint))
  end
  bad("region", string.format("unknown Region %q: not a Region of ecsplay's partition data%s "
    .. "(a Region not listed there needs endpoint_url = too)", v, hint))
end

local function check(opts)
  if type(opts) ~= "table" then
    error(errors.bad_input("aws.session: expected a table of options { region =, profile =, "
      .. "role_arn =, external_id =, endpoint_url = }, got " .. type(opts)), 0)
  end
  for k in pairs(opts) do
    if not OPTIONS[k] then
      error(errors.bad_input(string.format("aws.session: unknown option `%s`%s", tostring(k),
        strings.did_you_mean(tostring(k), OPTIONS, { list_all = true })), tostring(k)), 0)
    end
  end
  local o = {}
  o.endpoint_url = string_option(opts, "endpoint_url", "^https?://[^%s]+$",
    "an http:// or https:// URL")
  o.region = region_option(opts.region, o.endpoint_url)
  o.profile = string_option(opts, "profile", "^[%w%._%-@/+]+$", "a profile name")
  o.role_arn = string_option(opts, "role_arn", "^arn:aws[%w%-]*:iam::%d+:role/[%w+=,%.@_/%-]+$",
    "an IAM role ARN such as \"arn:aws:iam::210987654321:role/deploy\"")
  -- STS: 2 to 1224 characters of [\w+=,.@:/-]
  o.external_id = string_option(opts, "external_id", "^[%w+=,%.@:/_%-]+$",
    "2 to 1224 letters, digits and +=,.@:/-_")
  if o.external_id and (#o.external_id < 2 or #o.external_id > 1224) then
    bad("external_id", "expected 2 to 1224 characters, got " .. #o.external_id)
  end
  if o.external_id and not o.role_arn then bad("external_id", "is only used with role_arn") end
  o.role_session_name = string_option(opts, "role_session_name", "^[%w+=,%.@_%-]+$",
    "2 to 64 letters, digits and +=,.@-_")
  local d = opts.duration_seconds
  if d ~= nil and (math.type(d) ~= "integer" or d < 900 or d > 43200) then
    bad("duration_seconds", "expected a whole number of seconds from 900 to 43200, got " .. tostring(d))
  end
  o.duration_seconds = d
  if (o.role_session_name or d) and not o.role_arn then
    bad(o.role_session_name and "role_session_name" or "duration_seconds", "is only used with role_arn")
  end
  return o
end

-- Rate limits per account and Region: sessions for the same Region, profile, role and
-- endpoint of one client configuration share their buckets.
local shared_limits = setmetatable({}, { __mode = "k" })

local function limits_for(base, o, region)
  local by_opts = shared_limits[base.opts]
  if not by_opts then by_opts = {} shared_limits[base.opts] = by_opts end
  local key = table.concat({ region, o.profile or "", o.role_arn or "", o.endpoint_url or "" }, "|")
  local l = by_opts[key]
  if not l then l = ratelimit.new(base.limit_settings) by_opts[key] = l end
  return l
end

-- A named profile must exist when the session is made (not at its first call).
local function check_profile(resolver, name)
  if resolver:profile(name) then return end
  bad("profile", string.format("profile %q %s", name, resolver:profile_missing(name)))
end

--[[ The session's Region: region=; with a profile of its own, what boto3.Session(
     profile_name=) takes (the environment's AWS_REGION / AWS_DEFAULT_REGION, then the
     profile's `region`); else, or when that finds none, the client's. ]]
local function session_region(o, resolver)
  if o.region then return o.region end
  if o.profile then
    local r = resolver:region()
    if r then return r end
  end
  local ok, r = pcall(call.region)
  if ok then return r end
  if o.profile and errors.is(r, "NoRegion") then
    error(errors.config { code = "NoRegion", field = "region", message = string.format(
      "aws.session: no Region for profile %s: give region =, or set `region` in profile %s of %s "
      .. "(or AWS_REGION, AWS_DEFAULT_REGION, --region)", o.profile, o.profile,
      (resolver:paths())) }, 0)
  end
  error(r, 0)
end

-- The session's credentials chain; configure{}'s keys carry over unless the session names
-- a profile of its own.
local function session_resolver(self, o, base)
  local b = base.opts
  local keys = o.profile == nil
  return credentials.resolver {
    env = base.getenv, profile = o.profile or b.profile,
    profile_source = o.profile and "aws.session{ profile = }" or nil, region = o.region,
    access_key = keys and b.access_key or nil, secret_key = keys and b.secret_key or nil,
    session_token = keys and b.session_token or nil,
    config_file = b.config_file, credentials_file = b.credentials_file, http = b.http,
    now = base.now, run = b.run,
    role_arn = o.role_arn, external_id = o.external_id, role_session_name = o.role_session_name,
    duration_seconds = o.duration_seconds,
    sts = function(op, params, creds, r)
      return call.request("sts", op, params, { credentials = creds, anonymous = creds == nil,
        region = r or self.region, session = self })
    end,
  }
end

function M.new(opts)
  local o = check(opts)
  local base = call.client_settings()
  local self = setmetatable({ profile = o.profile, role_arn = o.role_arn,
    endpoint_url = o.endpoint_url, retryers = {}, faces = {} }, Session)
  self.resolver = session_resolver(self, o, base)
  if o.profile then check_profile(self.resolver, o.profile) end
  local region = session_region(o, self.resolver)
  self.region = region
  self.resolver.opts.region = region
  -- what rebuilds this session elsewhere (Session:options): names, never credentials
  self.rebuild = { region = region, profile = o.profile, role_arn = o.role_arn, external_id = o.external_id,
    endpoint_url = o.endpoint_url, role_session_name = o.role_session_name, duration_seconds = o.duration_seconds }
  self.limits = limits_for(base, o, region)
  return self
end

function M.is_session(v) return getmetatable(v) == Session end

Session.__index = function(self, k)
  local method = rawget(Session, k)
  if method ~= nil then return method end
  if type(k) == "string" and SERVICES[k] then
    local face = self.faces[k]
    if not face then
      face = service.bind(service.build(k), self)
      self.faces[k] = face
    end
    return face
  end
  return nil
end

Session.__tostring = function(self)
  local parts = { "region " .. self.region }
  if self.profile then parts[#parts + 1] = "profile " .. self.profile end
  if self.role_arn then parts[#parts + 1] = "role " .. self.role_arn end
  if self.endpoint_url then parts[#parts + 1] = "endpoint " .. self.endpoint_url end
  return "<aws session " .. table.concat(parts, ", ") .. ">"
end

function Session:credentials() return self.resolver:credentials() end

function Session:retryer(service_name)
  local r = self.retryers[service_name]
  if not r then
    r = call.new_retryer(self.resolver)
    self.retryers[service_name] = r
  end
  return r
end

function Session:run(fn, ...) return call.with_session(self, fn, ...) end

function Session:call(service_name, op, params)
  return call.request(service_name, op, params, { session = self })
end

function Session:pcall(service_name, op, params)
  return pcall(call.request, service_name, op, params, { session = self })
end

--[[ The options that make the same session again (aws.session(s:options())), for the run
     journal's start line: its Region (the default it took included), profile, role, external
     id, endpoint; never credentials. A copy. ]]
function Session:options()
  local out = {}
  for k, v in pairs(self.rebuild) do out[k] = v end
  return out
end

-- A one-line description for logs and reports (never a secret).
function Session:describe() return tostring(self):match("^<aws session (.*)>$") end

return M
