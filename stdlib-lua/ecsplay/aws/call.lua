-- The one generic AWS call path: aws.call(service, operation, params)
--   model → validate (nothing is sent on bad params) → idempotency tokens → serialize
--   (protocol codec) → endpoint → credentials → SigV4 → transport → parse → retry (standard).
-- Results are plain tables in AWS casing; failures raise an ecsplay.errors object.
--
-- aws.configure{ region=, profile=, endpoint_url=, access_key=, secret_key=, session_token=,
--   transport = fn(req) → {status=, headers=, body=} | nil, message, kind,
--   max_attempts=, retry_mode=, log = fn(level, event, message, fields),
--   rate_limits = false | { ["service.class" | "service.Operation"] = {rate=, burst=} | false }
--     (client-side rate limits, aws/ratelimit.lua; ECSPLAY_RATE_LIMITS),
--   timeout=, connect_timeout=, max_size=, ca_bundle=,
--   protocols = { cloudwatch = "query" } (per service: speak only this protocol),
--   -- for tests: env = table|fn, config_file=, credentials_file=, http = fn (metadata
--   -- endpoints), rand = fn() → [0,1) (retry jitter), now = fn() → epoch }
local core = require "ecsplay.core"
local sched = require "ecsplay.sched"
local log = require "ecsplay.log"
local errors = require "ecsplay.errors"
local tables = require "ecsplay.util.tables"
local strings = require "ecsplay.util.strings"
local model = require "ecsplay.aws.model"
local validate = require "ecsplay.aws.validate"
local protocol = require "ecsplay.aws.protocol"
local endpoints = require "ecsplay.aws.endpoints"
local credentials = require "ecsplay.aws.credentials"
local retry = require "ecsplay.aws.retry"
local ratelimit = require "ecsplay.aws.ratelimit"
local sigv4 = require "ecsplay.aws.sigv4"

local M = {}

M.DEFAULT_TIMEOUT = 60
M.DEFAULT_CONNECT_TIMEOUT = 10
M.DEFAULT_MAX_SIZE = 64 * 1024 * 1024

local state

-- Counters for the runner: `mutating_calls` counts requests sent for operations that may
-- change something (not Describe*/List*/Get*/BatchGet*), so a failed run can tell whether
-- anything was changed (exit code 2 means nothing was).
-- aws.stats() → { ["service.Operation"] = { calls = requests sent (retries included),
-- items = what callers asked aws/batch.lua for: services, queries, names... } } (a copy).
local per_op = {}
local function op_stats(service, op)
  local key = service .. "." .. op
  local e = per_op[key]
  if not e then e = { calls = 0 } per_op[key] = e end
  return e
end
M.stats = setmetatable({ calls = 0, mutating_calls = 0 }, { __call = function()
  local out = {}
  for k, e in pairs(per_op) do out[k] = { calls = e.calls, items = e.items } end
  return out
end })
function M.count_items(service, op, n)
  local e = op_stats(service, op)
  e.items = (e.items or 0) + n
end

-- `ecsplay plan`: refuse(service, operation, wire_request|nil) → an error object for a call
-- that must not be sent; asked before the request is built and again at the transport.
M.refuse = nil

local function read_only(opname)
  return opname:find("^Describe") or opname:find("^List") or opname:find("^Get")
    or opname:find("^BatchGet")
end

M.read_only = read_only

local USER_AGENT = "ecsplay/" .. core.version

-- Signing and credential expiry: the machine's clock, even while sched.now() follows a
-- served simulator's (which checks X-Amz-Date against the machine's clock too).
local function now(opts)
  if opts.now then return opts.now() end
  return sched.signing_time()
end

local function default_log(level, event, message, fields)
  log.event(level, event, message, fields)
end

-- The debug line of a call that succeeded (built only when shown: log.lazy_event).
local function call_ok_event(service, op, attempts, proto)
  return string.format("%s %s ok", service, op),
    { service = service, operation = op, attempts = attempts, protocol = proto }
end

--[[ configure{ protocols = { service = "json"|"query" } }: checked here, so a bad override
     is a config error naming its field before anything is sent. → the table (or {}). ]]
local function check_protocols(protocols)
  if protocols == nil then return {} end
  local function bad(field, msg)
    error(errors.config { code = "InvalidConfig", field = field, message = field .. ": " .. msg }, 0)
  end
  if type(protocols) ~= "table" then
    bad("protocols", "expected a table such as { cloudwatch = \"query\" }, got " .. type(protocols))
  end
  local services, known = model.services(), {}
  for _, name in ipairs(services) do known[name] = true end
  local keys = {}
  for k in pairs(protocols) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for _, service in ipairs(keys) do
    if not known[service] then
      bad("protocols", string.format("unknown service %q%s", service,
        strings.did_you_mean(service, services, { quote = true, list_all = true })))
    end
    local ok, err = pcall(protocol.candidates, model.load(service), protocols[service])
    if not ok then bad("protocols." .. service, err) end
  end
  return protocols
end

-- Reset everything to `opts` (a fresh resolver, fresh retry quotas, protocols to be learnt).
function M.configure(opts)
  opts = opts or {}
  local protocols = check_protocols(opts.protocols)
  local getenv
  if type(opts.env) == "function" then
    getenv = opts.env
  elseif type(opts.env) == "table" then
    local env = opts.env
    getenv = function(k) return env[k] end
  else
    getenv = os.getenv
  end
  local lok, limits = pcall(ratelimit.settings, opts, getenv)
  if not lok then error(errors.config { code = "InvalidConfig", field = "rate_limits", message = limits }, 0) end
  state = { opts = opts, getenv = getenv, retryers = {}, log = opts.log or default_log,
    protocols = protocols, spoken = {}, limit_settings = limits, limits = ratelimit.new(limits),
    owners = setmetatable({}, { __mode = "k" }), candidates = {} }
  state.resolver = credentials.resolver {
    env = getenv, profile = opts.profile, region = opts.region,
    access_key = opts.access_key, secret_key = opts.secret_key, session_token = opts.session_token,
    config_file = opts.config_file, credentials_file = opts.credentials_file,
    http = opts.http, now = function() return now(opts) end, run = opts.run,
    sts = function(op, params, creds, region)
      return M.request("sts", op, params, { credentials = creds, anonymous = creds == nil,
        region = region, session = false })
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

-- A retryer for one service of a client whose credentials come from `resolver` (its
-- profile's retry_mode and max_attempts count after configure{} and the environment).
function M.new_retryer(resolver)
  local s = st()
  local ok, settings = pcall(retry.settings, s.opts, s.getenv,
    function(key) return resolver:profile_setting(key) end)
  if not ok then
    if errors.is_error(settings) then error(settings, 0) end
    error(errors.config { code = "InvalidConfig", message = settings }, 0)
  end
  local r = retry.new(settings)
  r.rand = s.opts.rand
  return r
end

local function retryer(service)
  local s = st()
  local r = s.retryers[service]
  if not r then
    r = M.new_retryer(s.resolver)
    s.retryers[service] = r
  end
  return r
end
M.retryer = retryer

-- The client's static rate limiter (aws/ratelimit.lua), for stats and tests.
function M.limits() return st().limits end

--[[ Sessions (aws/session.lua): a session is in effect for the coroutine that runs
     with_session(session, fn, ...) until fn returns or raises; a call made then uses the
     session's region, endpoint, credentials, retryers and rate limits. Keyed by coroutine,
     so tasks running at once each keep their own; a task spawned inside (ecsplay.spawn,
     parallel, map) starts with it (sched.inherit). ]]
local current_sessions = setmetatable({}, { __mode = "k" })
sched.inherit(current_sessions)

function M.current_session() return current_sessions[coroutine.running()] end

function M.with_session(session, fn, ...)
  local co = coroutine.running()
  local previous = current_sessions[co]
  current_sessions[co] = session
  -- restored on return and on error alike; a to-be-closed variable, not pcall, so an
  -- error keeps the traceback of where it was raised
  local restore <close> = setmetatable({}, { __close = function() current_sessions[co] = previous end })
  return fn(...)
end

-- aws.session{ region=, profile=, role_arn=, external_id=, endpoint_url=, ... } → session
function M.session(opts)
  -- lazy: aws/session.lua requires this module (a cycle if required at the top)
  return require("ecsplay.aws.session").new(opts)
end

-- What a session copies from the client (aws/session.lua): the configure{} options, the
-- environment reader, the rate-limit settings.
function M.client_settings()
  local s = st()
  return { opts = s.opts, getenv = s.getenv, limit_settings = s.limit_settings,
    now = function() return now(s.opts) end }
end

-- The default transport: the scheduler's HTTP (libcurl).
local function http_transport(req)
  local c = sched.http(req)
  if c.error then return nil, c.error, c.kind or "other" end
  return c
end

local TRANSPORT_CODES = { timeout = "Timeout", connect = "ConnectionError", reset = "ConnectionReset",
  too_large = "ResponseTooLarge", tls = "TLSError", other = "TransportError" }

local function header(h, name) return protocol.header(h, name) end
local NO_HEADERS = {}

local function transport_error(service, opname, url, err, kind)
  local code = TRANSPORT_CODES[kind or "other"] or "TransportError"
  local msg = string.format("%s (%s)", tostring(err or code), url)
  if code == "ResponseTooLarge" then
    return errors.response { service = service, operation = opname, code = code, message = msg }
  end
  return errors.transport { service = service, operation = opname, code = code, message = msg,
    retryable = retry.TRANSPORT_CODES[code] == true }
end

-- The HTTP limits and CA bundle of this configuration (configure{}'s, else the defaults
-- and AWS_CA_BUNDLE), worked out on its first request: the environment and configure{}'s
-- options do not change under a run.
local function http_settings(s)
  local o = s.opts
  local ca_bundle = o.ca_bundle
  if ca_bundle == nil then ca_bundle = s.getenv("AWS_CA_BUNDLE") end
  s.http = { timeout = o.timeout or M.DEFAULT_TIMEOUT, max_size = o.max_size or M.DEFAULT_MAX_SIZE,
    connect_timeout = o.connect_timeout or M.DEFAULT_CONNECT_TIMEOUT, ca_bundle = ca_bundle }
  return s.http
end

--[[ One HTTP exchange. → output | nil, error object
     The request is signed as it is sent: by the HTTP layer in C (http.start's signer=,
     one call, the signature never a Lua string), or, for a transport of the caller's
     (configure{ transport = }), here, so that the transport sees the signed request. ]]
local function attempt(s, route, built, url, creds)
  local o = s.opts
  local p = route.plan
  -- the codec's headers are this request's own (with the User-Agent); signing adds to a
  -- copy (or to the wire), so a retry signs the same headers again
  local headers = built.headers
  local signer, sign_time, access_key, secret_key, token
  -- names this client to a simulator (lockstep); never signed
  local clock_headers = sched.clock_headers(url)
  if creds then
    -- the prepared signer of this URL (aws/sigv4.lua): sigv4.sign's signing, with the URL's
    -- parts worked out once and the signing key kept for its day
    signer = sigv4.signer_for(url, route.region, p.signing_name)
    sign_time, access_key = math.floor(now(o)), creds.access_key
    secret_key, token = creds:secret_key(), creds:session_token()
    if o.transport then
      headers = signer:sign(built.method, headers, built.body, sign_time, access_key,
        secret_key, token)
      signer = nil
    end
  end
  if clock_headers and not signer then headers = sched.add_clock_headers(headers, url) end
  local h = s.http or http_settings(s)
  local max_size = h.max_size
  local req = { method = built.method, url = url, headers = headers, body = built.body,
    timeout = h.timeout, connect_timeout = h.connect_timeout, max_size = max_size,
    ca_bundle = h.ca_bundle, signer = signer, sign_time = signer and sign_time,
    access_key = signer and access_key, secret_key = signer and secret_key,
    session_token = signer and token, unsigned_headers = signer and clock_headers }
  local service, opname = p.service, p.opname
  if M.refuse then
    local refused = M.refuse(service, opname, req)
    if refused then error(refused, 0) end
  end
  M.stats.calls = M.stats.calls + 1
  local per = p.per
  per.calls = per.calls + 1
  if p.mutating then M.stats.mutating_calls = M.stats.mutating_calls + 1 end
  local resp, err, kind = (o.transport or http_transport)(req)
  if not resp then return nil, transport_error(service, opname, url, err, kind) end
  local rh = resp.headers
  -- a served simulator's time (sched.lua); libcurl's header names are lowercase
  sched.observe_server_clock(rh, url, o.transport == nil)
  local body = resp.body or ""
  if #body > max_size then
    return nil, transport_error(service, opname, url, string.format(
      "response of %d bytes exceeds the %d-byte limit", #body, max_size), "too_large")
  end
  local status = tonumber(resp.status) or 0
  local ok, out = route.codec.parse_response(p.m, opname, status, rh or NO_HEADERS, body)
  if ok then return out end
  local rid = header(rh, "x-amzn-requestid") or header(rh, "x-amz-request-id")
  local e = type(out) == "table" and out or { code = "InvalidResponse", message = tostring(out) }
  if e.code == "InvalidResponse" then
    -- the Content-Type is not checked: botocore's parsers never read it (moto answers JSON
    -- as text/html), so the body alone says whether the answer is readable
    local ct = header(rh, "content-type")
    return nil, errors.response { service = service, operation = opname, code = e.code,
      status = status, request_id = e.request_id or rid, message = string.format("%s (HTTP %d, "
        .. "Content-Type %s, from %s)", e.message or "unreadable response", status, ct or "none", url) }
  end
  local msg = e.message
  if service == "sts" and (msg or ""):find("SecretAccessKey", 1, true) then msg = "(redacted)" end
  return nil, errors.aws { service = service, operation = opname, code = e.code or tostring(status),
    message = msg, status = e.status or status, request_id = e.request_id or rid }
end

-- The retry context of a call that has not failed yet (on_success only reads it).
local NO_RETRY = setmetatable({}, { __newindex = function() error("NO_RETRY is read-only", 2) end })

-- The attempts of one request in one protocol, retried as the SDKs do. → output | nil, error
local function exchange(s, route, built, url, ropts)
  local sess, sp, p = route.session, route.owner, route.plan
  local service, opname = p.service, p.opname
  local r = sp.retryer
  if not r then
    r = sess and sess:retryer(service) or retryer(service)
    sp.retryer = r
  end
  local rctx = NO_RETRY
  local n = 0
  while true do
    n = n + 1
    local creds = nil
    if not ropts.anonymous then
      -- cached by the resolver; fetched again only near their expiry
      creds = ropts.credentials or (sess or s.resolver):credentials()
    end
    -- client-side rate limits (aws/ratelimit.lua): the account's bucket, then adaptive mode's
    sp.limits:acquire(service, opname)
    if r.limiter then r:before_send() end -- adaptive mode's token
    local out, e = attempt(s, route, built, url, creds)
    if out then
      r:on_success(rctx)
      if s.log ~= default_log then
        s.log("debug", "aws.call", call_ok_event(service, opname, n, route.proto_name))
      else
        log.lazy_event("debug", "aws.call", call_ok_event, service, opname, n, route.proto_name)
      end
      return out
    end
    e.retryable = retry.is_retryable(e)
    e.attempts = n
    if rctx == NO_RETRY then rctx = {} end
    local delay, why = r:on_error(rctx, n, e)
    if not delay then
      if n > 1 then e.message = string.format("%s (after %d attempts; %s)", e.message or "", n, why) end
      return nil, e
    end
    s.log("info", "aws.retry", string.format("%s %s: %s; retrying in %.2fs", service, opname,
      tostring(e.code), delay), { service = service, operation = opname, code = e.code,
      status = e.status, attempt = n, delay = delay })
    sched.sleep(delay)
  end
end

--[[ Did the endpoint not answer in the request's protocol (so another may do)? Yes for an
     answer that protocol cannot read (InvalidResponse: an XML or HTML body to a JSON
     request), an error that carries no code of that protocol (HTTP 4xx/5xx with a body that
     is not its error shape: a 404 page, 415, a proxy's 500 page; after the SDK's retries),
     HTTP 501, and the codes by which servers say they know no such operation or service.
     No for transport errors (nothing was heard) and for any error in the protocol's own
     shape (ValidationError, ThrottlingException, ...): that proves the endpoint speaks it. ]]
local UNKNOWN_TARGET = { UnknownOperationException = true, UnknownOperation = true,
  UnknownService = true, UnknownServiceException = true, InvalidAction = true, MissingAction = true }

local function unanswered(e)
  if e.kind == "response" then return e.code == "InvalidResponse" end
  if e.kind ~= "service" then return false end
  if UNKNOWN_TARGET[e.code] or e.status == 501 then return true end
  return (e.status or 0) >= 400 and e.code == tostring(e.status)
end

--[[ Per-operation plans: what every call of an operation shares, worked out on its first
     call and kept, so that a call then only validates, serializes, signs and sends.
       op_plans[service][name as called] = { m, op, service, opname, per = its stats entry,
         mutating = counts in stats.mutating_calls, tokens = has idempotency-token members,
         signing_name, fits = validation's fast pass (validate.input_fit) }
         (the models never change under a run)
       state.owners[session or state][service] = { retryer, limits, bases = { [region] =
         { url = the endpoint_url it was resolved with, base, spoken_key, urls = { [path] } } } }
         (a session has its own region, endpoint, retryers and limits; configure{} starts a
         new state, so nothing resolved before it survives it) ]]
local op_plans = {}

local function has_token_members(m, op)
  local input = op.input and m.shapes[op.input]
  for _, mem in pairs(input and input.members or {}) do
    if mem.idempotencyToken then return true end
  end
  return false
end

-- → plan, or nil, model for a name the model does not have (validation then says so)
local function op_plan(service, name)
  local by_service = op_plans[service]
  local p = by_service and by_service[name]
  if p then return p end
  local ok, m = pcall(model.load, service)
  if not ok then
    error(errors.config { code = "UnknownService", service = tostring(service), message = tostring(m) }, 0)
  end
  local op = model.operation(m, name)
  if not op then return nil, m end
  local opname = op.name
  p = { m = m, op = op, service = service, opname = opname, per = op_stats(service, opname),
    mutating = service ~= "sts" and not read_only(opname), tokens = has_token_members(m, op),
    signing_name = m.metadata.signingName or m.metadata.endpointPrefix,
    fits = validate.input_fit(m, op) }
  if not by_service then by_service = {} op_plans[service] = by_service end
  by_service[name] = p
  return p
end

local function owner_plan(s, sess, service)
  local owner = sess or s
  local by_owner = s.owners[owner]
  if not by_owner then by_owner = {} s.owners[owner] = by_owner end
  local sp = by_owner[service]
  if not sp then
    sp = { limits = sess and sess.limits or s.limits, bases = {} }
    by_owner[service] = sp
  end
  return sp
end

-- Where `service` is in `region` for this owner. → { base, spoken_key, urls } (raises)
local function endpoint_of(s, sess, sp, service, opname, region)
  local url = sess and sess.endpoint_url or s.opts.endpoint_url
  local at = sp.bases[region]
  if at and at.url == url then return at end
  local base, uerr = endpoints.resolve(service, region, { endpoint_url = url, getenv = s.getenv })
  if not base then error(errors.config { code = "InvalidEndpoint", service = service,
    operation = opname, message = uerr }, 0) end
  at = { url = url, base = base, spoken_key = service .. " " .. base, urls = {}, only = {},
    routes = {} }
  sp.bases[region] = at
  return at
end

--[[ The protocols to try for `service` at `at.base`, best first: the one this endpoint
     answered in before (remembered for the rest of the run), else the configured override,
     else the model's order of those ecsplay speaks (CloudWatch: json, then query). ]]
local function protocols_for(s, m, service, at)
  local known = s.spoken[at.spoken_key]
  if known then
    local list = at.only[known]
    if not list then list = { known } at.only[known] = list end
    return list
  end
  local list = s.candidates[service]
  if not list then
    list = protocol.candidates(m, s.protocols[service])
    s.candidates[service] = list
  end
  return list
end

--[[ A route: what every request of one operation in one protocol to one endpoint shares
     (the plan, codec, region, session, owner), made on its first request and kept with the
     endpoint (at.routes[plan][protocol]). ]]
local function route_of(p, name, region, at, sess, sp)
  local by_plan = at.routes[p]
  if not by_plan then by_plan = {} at.routes[p] = by_plan end
  local route = by_plan[name]
  if not route then
    route = { plan = p, codec = protocol.codec(name), proto_name = name, region = region,
      session = sess or nil, owner = sp }
    by_plan[name] = route
  end
  return route
end

-- The request in the route's protocol (nothing sent yet). → request, its URL
local function build(route, params, at)
  local p = route.plan
  local ok, req = pcall(route.codec.build_request, p.m, p.opname, params, USER_AGENT)
  if not ok then
    error(errors.param_validation { service = p.service, operation = p.opname, path = "",
      message = string.format("%s %s: %s", p.service, p.opname, tostring(req)) }, 0)
  end
  local path = req.path or "/"
  local url = at.urls[path]
  if not url then
    url = at.base .. (path ~= "/" and path or "/")
    at.urls[path] = url
  end
  return req, url
end

--[[ An HTTP error whose body held no AWS error (an empty 400, a proxy's page, a redirect)
     comes out of the parsers with its bare status as code and no message. It leaves
     M.request named HttpError<status> with a reason, so that no error is a bare number. ]]
local HTTP_REASONS = { [301] = "Moved Permanently", [302] = "Found", [304] = "Not Modified",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout", [413] = "Payload Too Large",
  [415] = "Unsupported Media Type", [429] = "Too Many Requests", [500] = "Internal Server Error",
  [501] = "Not Implemented", [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout" }

local function with_code(e)
  if e.kind ~= "service" or not (e.code == nil or e.code == tostring(e.status)) then return e end
  local status = math.tointeger(tonumber(e.status)) or 0
  e.code = "HttpError" .. status
  local reason = string.format("HTTP %d%s and no AWS error in the answer", status,
    HTTP_REASONS[status] and (" " .. HTTP_REASONS[status]) or "")
  local msg = e.message or ""
  if msg:match("^%s*$") or msg:match("^%s*%(") then
    e.message = reason .. msg
  else
    e.message = reason .. ": " .. msg
  end
  return e
end

local function code_status(e)
  local c = tostring(e.code)
  if e.status and c ~= tostring(e.status) then c = c .. " " .. tostring(e.status) end
  return c
end

local NO_OPTS = {}

-- request(service, operation, params, ropts) — aws.call with per-call options:
--   credentials = creds object (sign with these), anonymous = true (unsigned),
--   region = (override), session = a session | false (none; default: the coroutine's)
function M.request(service, opname, params, ropts)
  ropts = ropts or NO_OPTS
  local s = state or st()
  local sess = ropts.session
  if sess == nil then sess = current_sessions[coroutine.running()] end
  local p, m = op_plan(service, opname)
  if not (p and p.fits(params)) then
    -- the checker words what is wrong (the plan's fast pass only says whether)
    local vok, verr = pcall(validate.input, p and p.m or m, opname, params)
    if not vok then
      if errors.is(verr, "validation") then verr.service = verr.service or service end
      error(verr, 0)
    end
  end
  m = p.m
  opname = p.opname
  if M.refuse then
    local refused = M.refuse(service, opname)
    if refused then error(refused, 0) end
  end
  if p.tokens then
    params = validate.fill_idempotency_tokens(m, opname, tables.shallow_copy(params))
  elseif params == nil then
    params = {}
  end
  local region = ropts.region or (sess and sess.region) or s.region or M.region()
  local sp = owner_plan(s, sess, service)
  local at = endpoint_of(s, sess, sp, service, opname, region)
  local list, tried = protocols_for(s, m, service, at), nil
  for i, name in ipairs(list) do
    local route = route_of(p, name, region, at, sess, sp)
    local req, url = build(route, params, at)
    local out, e = exchange(s, route, req, url, ropts)
    if out or e.kind == "service" and not unanswered(e) then
      s.spoken[at.spoken_key] = name
    end
    if out then return out end
    tried = tried or {}
    tried[#tried + 1] = name .. " " .. code_status(e)
    if not unanswered(e) then error(with_code(e), 0) end
    if i == #list then
      if #tried > 1 then
        e.message = string.format("%s (answered in no protocol: %s)", e.message or "", table.concat(tried, ", "))
      end
      error(with_code(e), 0)
    end
    s.log("info", "aws.protocol", string.format("%s at %s did not answer %s in %s (%s); trying %s",
      service, at.base, opname, name, code_status(e), list[i + 1]), { service = service, operation = opname,
      endpoint = at.base, from = name, protocol = list[i + 1], code = e.code, status = e.status })
  end
end

--[[ aws.input_fits(service, operation, params) → whether M.request's validation accepts
     params (the same fast pass; nothing is built or sent). aws/batch.lua asks it of each
     caller's request before merging it with others', so that an invalid one goes alone and
     gets its own error, never the merged request's. ]]
function M.input_fits(service, opname, params)
  local p = op_plan(service, opname)
  return p ~= nil and p.fits(params)
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
