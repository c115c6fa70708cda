-- The one generic AWS call path: aws.call(service, operation, params)
--   model → validate (nothing is sent on bad params) → idempotency tokens → serialize
--   (protocol codec) → endpoint → credentials → SigV4 → transport → parse → retry (standard).
-- Results are plain tables in AWS casing; failures raise an ecsplay.errors object.
--
-- aws.configure{ region=, profile=, endpoint_url=, access_key=, secret_key=, session_token=,
--   transport = fn(req) → {status=, headers=, body=} | nil, message, kind,
--   max_attempts=, retry_mode=, log = fn(level, event, message, fields),
--   timeout=, connect_timeout=, max_size=, ca_bundle=,
--   -- for tests: env = table|fn, config_file=, credentials_file=, http = fn (metadata
--   -- endpoints), rand = fn() → [0,1) (retry jitter), now = fn() → epoch }
local core = require "ecsplay.core"
local sched = require "ecsplay.sched"
local log = require "ecsplay.log"
local errors = require "ecsplay.errors"
local tables = require "ecsplay.util.tables"
local model = require "ecsplay.aws.model"
local validate = require "ecsplay.aws.validate"
local protocol = require "ecsplay.aws.protocol"
local endpoints = require "ecsplay.aws.endpoints"
local credentials = require "ecsplay.aws.credentials"
local retry = require "ecsplay.aws.retry"
local sigv4 = require "ecsplay.aws.sigv4"

local M = {}

M.DEFAULT_TIMEOUT = 60
M.DEFAULT_CONNECT_TIMEOUT = 10
M.DEFAULT_MAX_SIZE = 64 * 1024 * 1024

local state

-- Counters for the runner: `mutating_calls` counts requests sent for operations that may
-- change something (not Describe*/List*/Get*/BatchGet*), so a failed run can tell whether
-- anything was changed (exit code 2 means nothing was).
M.stats = { calls = 0, mutating_calls = 0 }

local function read_only(opname)
  return opname:find("^Describe") or opname:find("^List") or opname:find("^Get")
    or opname:find("^BatchGet")
end

local USER_AGENT = "ecsplay/" .. core.version

local function now(opts)
  if opts.now then return opts.now() end
  return sched.now()
end

local function default_log(level, event, message, fields)
  log.event(level, event, message, fields)
end

-- Reset everything to `opts` (a fresh resolver, fresh retry quotas).
function M.configure(opts)
  opts = opts or {}
  local getenv
  if type(opts.env) == "function" then
    getenv = opts.env
  elseif type(opts.env) == "table" then
    local env = opts.env
    getenv = function(k) return env[k] end
  else
    getenv = os.getenv
  end
  state = { opts = opts, getenv = getenv, retryers = {}, log = opts.log or default_log }
  state.resolver = credentials.resolver {
    env = getenv, profile = opts.profile, region = opts.region,
    access_key = opts.access_key, secret_key = opts.secret_key, session_token = opts.session_token,
    config_file = opts.config_file, credentials_file = opts.credentials_file,
    http = opts.http, now = function() return now(opts) end, run = opts.run,
    sts = function(op, params, creds, region)
      return M.request("sts", op, params, { credentials = creds, anonymous = creds == nil,
        region = region })
    end,
  }
  return M
end

local function st()
  if not state then M.configure {} end
  return state
end

-- The region in effect. → region, source (raises a config error when there is none).
function M.region()
  local s = st()
  if s.region then return s.region, s.region_source end
  local r, src = s.resolver:region()
  if not r then
    if s.opts.endpoint_url or s.getenv("AWS_ENDPOINT_URL") then
      r, src = "us-east-1", "default with a custom endpoint"
    else
      local name = s.resolver:profile_name()
      error(errors.config { code = "NoRegion", message = string.format("no AWS region configured: "
        .. "use --region, AWS_REGION, AWS_DEFAULT_REGION or `region` in profile %s of %s", name,
        (s.resolver:paths())) }, 0)
    end
  end
  s.region, s.region_source = r, src
  return r, src
end

-- The credentials in effect (refreshed when near expiry). Never print their secrets.
function M.credentials()
  return st().resolver:credentials()
end

local function retryer(service)
  local s = st()
  local r = s.retryers[service]
  if not r then
    local ok, settings = pcall(retry.settings, s.opts, s.getenv)
    if not ok then error(errors.config { code = "InvalidConfig", message = settings }, 0) end
    r = retry.new(settings)
    r.rand = s.opts.rand
    s.retryers[service] = r
  end
  return r
end
M.retryer = retryer

-- The default transport: the scheduler's HTTP (libcurl).
local function http_transport(req)
  local c = sched.http(req)
  if c.error then return nil, c.error, c.kind or "other" end
  return c
end

local TRANSPORT_CODES = { timeout = "Timeout", connect = "ConnectionError", reset = "ConnectionReset",
  too_large = "ResponseTooLarge", tls = "TLSError", other = "TransportError" }

local function header(h, name) return protocol.header(h, name) end

-- Is the content type one this protocol could have answered with?
local function content_type_problem(proto_name, status, ct)
  if not ct or status < 200 or status >= 300 then return nil end
  local l = ct:lower()
  if proto_name == "json" then
    if l:find("json", 1, true) or l:find("octet-stream", 1, true) then return nil end
    return "application/x-amz-json"
  end
  if l:find("xml", 1, true) then return nil end
  return "text/xml"
end

local function transport_error(service, opname, url, err, kind)
  local code = TRANSPORT_CODES[kind or "other"] or "TransportError"
  local msg = string.format("%s (%s)", tostring(err or code), url)
  if code == "ResponseTooLarge" then
    return errors.response { service = service, operation = opname, code = code, message = msg }
  end
  return errors.transport { service = service, operation = opname, code = code, message = msg,
    retryable = retry.TRANSPORT_CODES[code] == true }
end

-- One HTTP exchange. → output | nil, error object
local function attempt(s, ctx)
  local o = s.opts
  local creds = ctx.creds
  local headers = tables.shallow_copy(ctx.req.headers)
  headers["User-Agent"] = USER_AGENT
  local signed_headers = headers
  if creds then
    local sig = sigv4.sign { method = ctx.req.method, url = ctx.url, headers = headers,
      body = ctx.req.body, region = ctx.region, service = ctx.signing_name,
      access_key = creds.access_key, secret_key = creds:secret_key(),
      session_token = creds:session_token(), time = math.floor(now(o)) }
    signed_headers = sig.headers
  end
  local max_size = o.max_size or M.DEFAULT_MAX_SIZE
  local req = { method = ctx.req.method, url = ctx.url, headers = signed_headers,
    body = ctx.req.body, timeout = o.timeout or M.DEFAULT_TIMEOUT,
    connect_timeout = o.connect_timeout or M.DEFAULT_CONNECT_TIMEOUT, max_size = max_size,
    ca_bundle = o.ca_bundle or s.getenv("AWS_CA_BUNDLE") }
  M.stats.calls = M.stats.calls + 1
  if ctx.service ~= "sts" and not read_only(ctx.op) then M.stats.mutating_calls = M.stats.mutating_calls + 1 end
  local resp, err, kind = (o.transport or http_transport)(req)
  local service, opname = ctx.service, ctx.op
  if not resp then return nil, transport_error(service, opname, ctx.url, err, kind) end
  if resp.body and #resp.body > max_size then
    return nil, transport_error(service, opname, ctx.url, string.format(
      "response of %d bytes exceeds the %d-byte limit", #resp.body, max_size), "too_large")
  end
  local status = tonumber(resp.status) or 0
  local rid = header(resp.headers, "x-amzn-requestid") or header(resp.headers, "x-amz-request-id")
  local ct = header(resp.headers, "content-type")
  local want = content_type_problem(ctx.proto_name, status, ct)
  if want then
    return nil, errors.response { service = service, operation = opname, code = "UnexpectedContentType",
      status = status, request_id = rid, message = string.format(
        "expected %s from %s, got Content-Type %s", want, ctx.url, ct) }
  end
  local ok, out = ctx.codec.parse_response(ctx.model, opname, status, resp.headers or {}, resp.body or "")
  if ok then return out end
  local e = type(out) == "table" and out or { code = "InvalidResponse", message = tostring(out) }
  if e.code == "InvalidResponse" then
    return nil, errors.response { service = service, operation = opname, code = e.code,
      status = status, request_id = e.request_id or rid, message = string.format("%s (HTTP %d, "
        .. "Content-Type %s, from %s)", e.message or "unreadable response", status, ct or "none", ctx.url) }
  end
  local msg = e.message
  if service == "sts" and (msg or ""):find("SecretAccessKey", 1, true) then msg = "(redacted)" end
  return nil, errors.aws { service = service, operation = opname, code = e.code or tostring(status),
    message = msg, status = e.status or status, request_id = e.request_id or rid }
end

-- request(service, operation, params, ropts) — aws.call with per-call options:
--   credentials = creds object (sign with these), anonymous = true (unsigned),
--   region = (override)
function M.request(service, opname, params, ropts)
  ropts = ropts or {}
  local s = st()
  local ok, m = pcall(model.load, service)
  if not ok then
    error(errors.config { code = "UnknownService", service = tostring(service), message = tostring(m) }, 0)
  end
  local op = model.operation(m, opname)
  local vok, verr = pcall(validate.input, m, opname, params)
  if not vok then
    if errors.is(verr, "validation") then verr.service = verr.service or service end
    error(verr, 0)
  end
  opname = op.name
  params = validate.fill_idempotency_tokens(m, opname, tables.shallow_copy(params))
  local codec, proto_name = protocol.for_model(m)
  local bok, req = pcall(codec.build_request, m, opname, params)
  if not bok then
    error(errors.param_validation { service = service, operation = opname, path = "",
      message = string.format("%s %s: %s", service, opname, tostring(req)) }, 0)
  end
  local region = ropts.region or M.region()
  local base, uerr = endpoints.resolve(service, region, { endpoint_url = s.opts.endpoint_url,
    getenv = s.getenv })
  if not base then error(errors.config { code = "InvalidEndpoint", service = service,
    operation = opname, message = uerr }, 0) end
  local ctx = { model = m, service = service, op = opname, codec = codec, proto_name = proto_name,
    req = req, region = region, url = base .. (req.path ~= "/" and req.path or "/"),
    signing_name = m.metadata.signingName or m.metadata.endpointPrefix }
  local r = retryer(service)
  local rctx = {}
  local n = 0
  while true do
    n = n + 1
    if ropts.anonymous then
      ctx.creds = nil
    else
      ctx.creds = ropts.credentials or s.resolver:credentials()
    end
    local out, e = attempt(s, ctx)
    if out then
      r:on_success(rctx)
      s.log("debug", "aws.call", string.format("%s %s ok", service, opname),
        { service = service, operation = opname, attempts = n })
      return out
    end
    e.retryable = retry.is_retryable(e)
    e.attempts = n
    local delay, why = r:on_error(rctx, n, e)
    if not delay then
      if n > 1 then e.message = string.format("%s (after %d attempts; %s)", e.message or "", n, why) end
      error(e, 0)
    end
    s.log("info", "aws.retry", string.format("%s %s: %s; retrying in %.2fs", service, opname,
      tostring(e.code), delay), { service = service, operation = opname, code = e.code,
      status = e.status, attempt = n, delay = delay })
    sched.sleep(delay)
  end
end

-- aws.call(service, operation, params) → output table (raises an error object)
function M.call(service, opname, params)
  return M.request(service, opname, params)
end

-- aws.pcall(...) → true, output | false, error object
function M.pcall(service, opname, params)
  return pcall(M.request, service, opname, params)
end

return M
