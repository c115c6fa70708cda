--[[
SigV4 verification for the simulator: the same checks, codes and messages AWS gives, so a
playbook or SDK that signs wrongly fails here the way it would fail against AWS.

auth.new{ keys = {AKID = secret}, no_auth = bool, now = function() → epoch seconds }
a:verify(req, kind) → nil when the request is acceptable, else
   { code=, message=, status= } (the caller encodes it in the service's protocol)
   req  = { method=, path= (with query), headers= (lowercase names), body= }
   kind = "json" | "query" (the protocol the request speaks, which picks AWS's code)

Which clock: `now` is the clock the client signed with. In process that is the virtual
clock (aws.lua signs with sched.now()); in `sim serve` it is the real wall clock, because
boto3 and the AWS CLI sign with the machine's time whatever the simulated time is.

Secrets: neither the secret key nor any signature ever appears in a message.

The { code=, message=, status= } tables are answers the simulator serves, never
raised: they stay plain tables (ecsplay.errors is for what ecsplay raises).
]]
local crypto = require "ecsplay.core.crypto"
local timestamp = require "ecsplay.util.timestamp"
local sigv4 = require "ecsplay.aws.sigv4"

local M = {}

M.DEFAULT_KEYS = { AKIDSIMULATOR = "simulator-secret-key" }
local SKEW = 15 * 60

local CODES = {
  json = {
    missing = { "MissingAuthenticationTokenException", 400 },
    unknown = { "UnrecognizedClientException", 400 },
    bad = { "InvalidSignatureException", 400 },
    expired = { "InvalidSignatureException", 400 },
    incomplete = { "IncompleteSignatureException", 400 },
  },
  query = {
    missing = { "MissingAuthenticationToken", 403 },
    unknown = { "InvalidClientTokenId", 403 },
    bad = { "SignatureDoesNotMatch", 403 },
    expired = { "SignatureDoesNotMatch", 403 },
    incomplete = { "IncompleteSignature", 400 },
  },
}

local MESSAGES = {
  missing = "Missing Authentication Token",
  unknown = "The security token included in the request is invalid.",
  bad = "The request signature we calculated does not match the signature you provided. "
    .. "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
}

local A = {}
A.__index = A

function M.new(opts)
  opts = opts or {}
  return setmetatable({ keys = opts.keys or M.DEFAULT_KEYS, no_auth = opts.no_auth and true or false,
    now = opts.now or os.time }, A)
end

local function fail(kind, what, message)
  local c = CODES[kind == "query" and "query" or "json"][what]
  return { code = c[1], status = c[2], message = message or MESSAGES[what] }
end

-- "AWS4-HMAC-SHA256 Credential=AK/20261126/us-east-1/ecs/aws4_request, SignedHeaders=a;b, Signature=hex"
-- → {access_key=, date=, region=, service=, signed_headers={...}, signature=} or nil, message
M.parse_authorization = sigv4.parse_authorization

-- "20261126T101500Z" ↔ epoch seconds
local function parse_amz_date(s)
  local y, mo, d, h, mi, sec = tostring(s or ""):match("^(%d%d%d%d)(%d%d)(%d%d)T(%d%d)(%d%d)(%d%d)Z$")
  if not y then return nil end
  return timestamp.timegm(tonumber(y), tonumber(mo), tonumber(d),
    tonumber(h), tonumber(mi), tonumber(sec))
end
M.parse_amz_date = parse_amz_date

local function amz_date(t)
  local iso = timestamp.iso8601(math.floor(t), false)
  return (iso:gsub("[-:]", ""))
end
M.amz_date = amz_date

local constant_eq = crypto.equal

-- The signature the client should have sent, over exactly the headers it says it signed.
local function expected_signature(req, auth, secret, date_hdr)
  local path, query = req.path:match("^([^?]*)%??(.*)$")
  return sigv4.signature_for {
    method = req.method, path = path, query = query, headers = req.headers, body = req.body or "",
    signed_headers = auth.signed_headers, access_key = auth.access_key, secret_key = secret,
    region = auth.region, service = auth.service, amz_date = date_hdr,
  }
end

function A:verify(req, kind)
  if self.no_auth then return nil end
  local h = req.headers or {}
  local authz = h["authorization"]
  if not authz or authz == "" then
    -- presigned query-string auth is not something SDKs use for these APIs
    return fail(kind, "missing")
  end
  local auth, perr = M.parse_authorization(authz)
  if not auth then return fail(kind, "incomplete", perr) end
  local secret = self.keys[auth.access_key]
  if not secret then return fail(kind, "unknown") end
  local date_hdr = h["x-amz-date"]
  local signed_at = parse_amz_date(date_hdr)
  if not signed_at then
    return fail(kind, "incomplete", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
  end
  local now = math.floor(self.now())
  if signed_at < now - SKEW then
    return fail(kind, "expired", string.format("Signature expired: %s is now earlier than %s (%s - 15 min.)",
      date_hdr, amz_date(now - SKEW), amz_date(now)))
  elseif signed_at > now + SKEW then
    return fail(kind, "expired", string.format("Signature not yet current: %s is still later than %s (%s + 15 min.)",
      date_hdr, amz_date(now + SKEW), amz_date(now)))
  end
  if date_hdr:sub(1, 8) ~= auth.date then
    return fail(kind, "bad", string.format("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.",
      auth.date, date_hdr:sub(1, 8), date_hdr))
  end
  local has_host = false
  for _, n in ipairs(auth.signed_headers) do if n == "host" then has_host = true end end
  if not has_host then
    return fail(kind, "bad", "'Host' must be a 'SignedHeader' in the AWS Authorization.")
  end
  -- a failure inside the signer is our bug, not the client's: let it become a 500
  local want = expected_signature(req, auth, secret, date_hdr)
  if type(want) ~= "string" or not constant_eq(want, auth.signature) then
    return fail(kind, "bad")
  end
  return nil
end

return M
