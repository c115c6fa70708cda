--[[
SigV4 verification for the simulator: the same checks, codes and messages AWS gives, so a
playbook or SDK that signs wrongly fails here the way it would fail against AWS.

auth.new{ keys = {AKID = secret}, no_auth = bool, now = function() → epoch seconds,
           region = the simulated world's region (a credential scope naming another is refused),
           regions = { [name] = true } (several served Regions: any of them is accepted),
           accounts = {AKID = account}, account = the account of keys not listed there }
a:verify(req, kind) → nil, { access_key=, region=, account= } when the request is acceptable
   (the credential scope's Region and the key's account pick the world), else
   { code=, message=, status= } (the caller encodes it in the service's protocol)
a:add_temporary(access_key, secret, token, account, expires): STS's temporary credentials
   (sim/sts.lua): accepted with their session token (X-Amz-Security-Token) until they expire
   req  = { method=, path= (with query), headers= (lowercase names), body= }
   kind = "json" | "query" (the protocol the request speaks, which picks AWS's code)

Which clock: `now` is the clock the client signed with. In process that is the virtual
clock (aws.lua signs with sched.now()); in `sim serve` it is the real wall clock, because
boto3 and the AWS CLI sign with the machine's time whatever the simulated time is.

Strictness (auth.parse_strict): the Authorization header is read as AWS reads it. A component
that is not Name=value, a missing or duplicated Credential / SignedHeaders / Signature, or a
Credential that is not <key>/<YYYYMMDD>/<region>/<service>/aws4_request is
IncompleteSignature(Exception); a scope with the wrong region or terminator, or a signed
header the request lacks, is refused with AWS's words for it.

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
  local keys = {}
  for k, v in pairs(opts.keys or M.DEFAULT_KEYS) do keys[k] = v end
  return setmetatable({ keys = keys, no_auth = opts.no_auth and true or false,
    now = opts.now or os.time, region = opts.region, regions = opts.regions,
    accounts = opts.accounts or {}, account = opts.account, temporary = {} }, A)
end

function A:add_temporary(access_key, secret, token, account, expires)
  self.keys[access_key] = secret
  self.accounts[access_key] = account
  self.temporary[access_key] = { token = token, expires = expires }
end

-- The account of a key pair.
function A:account_of(access_key) return self.accounts[access_key] or self.account end

-- query_code: the query protocol's spelling, which a query-compatible JSON service (CloudWatch)
-- names in x-amzn-query-error (sim/frontend.lua error_response)
local function fail(kind, what, message)
  local c = CODES[kind == "query" and "query" or "json"][what]
  return { code = c[1], status = c[2], message = message or MESSAGES[what], query_code = CODES.query[what][1] }
end

-- "AWS4-HMAC-SHA256 Credential=AK/20261126/us-east-1/ecs/aws4_request, SignedHeaders=a;b, Signature=hex"
-- → {access_key=, date=, region=, service=, signed_headers={...}, signature=} or nil, message
M.parse_authorization = sigv4.parse_authorization

local COMPONENTS = { "Credential", "Signature", "SignedHeaders" }

-- A piece of the header for a message: short, printable, and never a signature's value.
local function shown(part)
  part = part:gsub("[%c]", "?")
  if part:find("Signature=", 1, true) then return "Signature=..." end
  return #part > 80 and (part:sub(1, 77) .. "...") or part
end

--[[ The Authorization header as AWS reads it.
     → auth {access_key=, date=, region=, service=, term=, signed_headers={...}, signature=}
     or nil, what ("incomplete" | "bad"), AWS's message. ]]
function M.parse_strict(value)
  local alg, rest = value:match("^%s*(%S+)%s*(.-)%s*$")
  local fields, missing = {}, {}
  if alg == "AWS4-HMAC-SHA256" then
    for part in (rest .. ","):gmatch("([^,]*),") do
      part = part:match("^%s*(.-)%s*$")
      local k, v = part:match("^([^=]+)=(.*)$")
      if not k then
        return nil, "incomplete", string.format("'%s' not a valid key=value pair (missing equal-sign) "
          .. "in Authorization header.", shown(part))
      end
      if fields[k] ~= nil then
        return nil, "incomplete", string.format("Authorization header has a duplicated '%s' "
          .. "parameter.", shown(k))
      end
      fields[k] = v
    end
  end
  for _, name in ipairs(COMPONENTS) do
    if not fields[name] or fields[name] == "" then
      missing[#missing + 1] = string.format("Authorization header requires '%s' parameter.", name)
    end
  end
  if #missing > 0 then return nil, "incomplete", table.concat(missing, " ") end
  local parts = {}
  for p in (fields.Credential .. "/"):gmatch("([^/]*)/") do parts[#parts + 1] = p end
  if #parts ~= 5 or parts[1] == "" then
    return nil, "incomplete", string.format("Credential must have exactly 5 slash-delimited elements, "
      .. "e.g. keyid/date/region/service/term, got '%s'", shown(fields.Credential))
  end
  local signed = {}
  for h in (fields.SignedHeaders .. ";"):gmatch("([^;]*);") do
    if h == "" or h ~= h:lower() then
      return nil, "incomplete", string.format("SignedHeaders must be lower-case header names "
        .. "separated by ';', got '%s'", shown(fields.SignedHeaders))
    end
    signed[#signed + 1] = h
  end
  return { access_key = parts[1], date = parts[2], region = parts[3], service = parts[4],
    term = parts[5], signed_headers = signed, signature = fields.Signature }
end

-- The credential scope's region and terminator, and the signed headers the request has.
-- → nil, or what, message.
local function region_list(regions)
  local list = {}
  for r in pairs(regions) do list[#list + 1] = r end
  table.sort(list)
  return table.concat(list, ", ")
end

local function check_scope(auth, headers, region, regions)
  if auth.term ~= "aws4_request" then
    return "bad", string.format("Credential should be scoped with a valid terminator: "
      .. "'aws4_request', not '%s'.", shown(auth.term))
  end
  if not auth.date:match("^%d%d%d%d%d%d%d%d$") then
    return "incomplete", string.format("Credential date must be YYYYMMDD, got '%s'", shown(auth.date))
  end
  if regions and not regions[auth.region] then
    return "bad", string.format("Credential should be scoped to a valid region, not '%s'. "
      .. "(The simulator serves %s.)", shown(auth.region), region_list(regions))
  end
  if region and not regions and auth.region ~= region then
    return "bad", string.format("Credential should be scoped to a valid region, not '%s'. "
      .. "(The simulated world is in %s.)", shown(auth.region), region)
  end
  for _, n in ipairs(auth.signed_headers) do
    if headers[n] == nil then
      return "incomplete", string.format("'%s' is named as a SignedHeader, but it does not exist in "
        .. "the HTTP request.", shown(n))
    end
  end
end

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

-- What a request's Authorization header says, for --no-auth (nothing is checked).
local function unchecked(self, h)
  local auth = h["authorization"] and M.parse_strict(h["authorization"])
  if not auth then return nil, { region = self.region, account = self.account } end
  return nil, { access_key = auth.access_key, region = auth.region,
    account = self:account_of(auth.access_key) }
end

-- Temporary credentials: the session token they came with, and not expired.
local function check_temporary(self, kind, access_key, h)
  local temp = self.temporary[access_key]
  if not temp then return nil end
  if h["x-amz-security-token"] ~= temp.token then return fail(kind, "unknown") end
  if math.floor(self.now()) >= temp.expires then
    local json = kind ~= "query"
    return { code = json and "ExpiredTokenException" or "ExpiredToken", status = json and 400 or 403,
      query_code = "ExpiredToken",
      message = "The security token included in the request is expired" }
  end
end

function A:verify(req, kind)
  local h = req.headers or {}
  if self.no_auth then return unchecked(self, h) end
  local authz = h["authorization"]
  if not authz or authz == "" then
    -- presigned query-string auth is not something SDKs use for these APIs
    return fail(kind, "missing")
  end
  local auth, what, perr = M.parse_strict(authz)
  if not auth then return fail(kind, what, perr) end
  local secret = self.keys[auth.access_key]
  if not secret then return fail(kind, "unknown") end
  what, perr = check_scope(auth, h, self.region, self.regions)
  if what then return fail(kind, what, perr) end
  local terr = check_temporary(self, kind, auth.access_key, h)
  if terr then return terr end
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
  return nil, { access_key = auth.access_key, region = auth.region,
    account = self:account_of(auth.access_key) }
end

return M
