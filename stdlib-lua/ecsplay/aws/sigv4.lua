-- ecsplay.sigv4: AWS Signature Version 4 for requests (the Lua face of
-- runtime/sigv4.c). Policy lives here: argument checking, URL parsing, time
-- formatting, header shapes. The canonicalization and crypto are in C.
--
--   sigv4.sign{method=, url=, headers=, body=, region=, service=, access_key=,
--              secret_key=, session_token=, time=, normalize=true, sign_body=false,
--              double_encode=<normalize>, omit_session_token=false}
--     -> {authorization=, canonical_request=, string_to_sign=, signature=, headers=}
--   sigv4.presign{<as sign>, expires=seconds} -> {url=, canonical_request=, ...}
--   sigv4.prepare{url=, region=, service=, normalize=true, double_encode=<normalize>,
--                 sign_body=false, omit_session_token=false} -> signer
--   signer:sign(method, headers, body, time, access_key, secret_key [, session_token [, stages]])
--     -> headers to send [, {canonical_request=, string_to_sign=, signature=, authorization=}]
--     (the same signing as sign{}, for a caller that signs many requests to one URL with
--     values it has already checked: the URL's parts are checked and canonicalized once,
--     headers are sorted in C, the signing key is kept for its day; time is epoch seconds
--     or "YYYYMMDDTHHMMSSZ")
--   sigv4.signer_for(url, region, service) -> a prepared signer with the defaults, kept for
--     the URLs signed lately (aws/call.lua's)
--   sigv4.parse_authorization(value) -> {access_key=, date=, region=, service=,
--              signed_headers={...}, signature=} | nil, message
--   sigv4.signature_for{<as sign>, signed_headers={...}} -> signature, details | nil, message
--
-- The secret key is never stored in any returned table.
local core = require("ecsplay.core.sigv4")

local M = {}

local function argerr(fn, field, msg)
  error(("sigv4.%s: field '%s' %s"):format(fn, field, msg), 0)
end

local function need_string(fn, t, field)
  local v = t[field]
  if type(v) ~= "string" or v == "" then
    argerr(fn, field, "is required (a non-empty string), got " .. (v == "" and "an empty string" or type(v)))
  end
  return v
end

local function opt_string(fn, t, field)
  local v = t[field]
  if v ~= nil and type(v) ~= "string" then argerr(fn, field, "must be a string, got " .. type(v)) end
  return v
end

local function opt_bool(fn, t, field, default)
  local v = t[field]
  if v == nil then return default end
  if type(v) ~= "boolean" then argerr(fn, field, "must be a boolean, got " .. type(v)) end
  return v
end

-- The last epoch second formatted: a client signs many requests a second (os.date is
-- dear next to the signing itself).
local last_epoch, last_amz_date

-- time: epoch seconds, "YYYYMMDDTHHMMSSZ" or ISO "YYYY-MM-DDTHH:MM:SSZ".
local function amz_date(fn, v)
  if type(v) == "number" then
    if v ~= v or v < 0 or v >= 253402300800 then argerr(fn, "time", "is out of range: " .. tostring(v)) end
    v = math.floor(v)
    if v ~= last_epoch then last_epoch, last_amz_date = v, os.date("!%Y%m%dT%H%M%SZ", v) end
    return last_amz_date
  elseif type(v) == "string" then
    if v:match("^%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ$") then return v end
    local y, mo, d, h, mi, s = v:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)Z$")
    if y then return y .. mo .. d .. "T" .. h .. mi .. s .. "Z" end
    argerr(fn, "time", ("%q is not of the form YYYYMMDDTHHMMSSZ"):format(v))
  end
  argerr(fn, "time", "is required (epoch seconds or \"YYYYMMDDTHHMMSSZ\"), got " .. type(v))
end

-- "https://host:port/path?query#frag" -> host header value, path, query
local function parse_url(fn, url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then argerr(fn, "url", ("%q is not an absolute http(s) URL"):format(url)) end
  scheme = scheme:lower()
  local authority = rest:match("^[^/?#]*")
  local tail = rest:sub(#authority + 1):gsub("#.*$", "")
  local path, query = tail:match("^([^?]*)%?(.*)$")
  if not path then path, query = tail, nil end
  authority = authority:gsub("^.*@", "")
  if authority == "" then argerr(fn, "url", ("%q has no host"):format(url)) end
  local host, port = authority:match("^(.*):(%d+)$")
  if host and ((scheme == "https" and port == "443") or (scheme == "http" and port == "80")) then
    authority = host
  end
  if path == "" then path = "/" end
  return authority, path, query
end

--[[ parse_url's answers for the URLs signed lately: a run signs thousands of requests to a
     handful of endpoints. Bounded: emptied when it holds URL_CACHE_MAX of them. Only
     successful parses are kept (a bad URL raises every time). ]]
local URL_CACHE_MAX = 64
local url_cache, url_cache_n = {}, 0

local function parse_url_cached(fn, url)
  local hit = url_cache[url]
  if hit then return hit[1], hit[2], hit[3] end
  local host, path, query = parse_url(fn, url)
  if url_cache_n >= URL_CACHE_MAX then url_cache, url_cache_n = {}, 0 end
  url_cache[url] = { host, path, query }
  url_cache_n = url_cache_n + 1
  return host, path, query
end

local function header_value(fn, name, v)
  if type(v) == "string" then return v end
  if math.type(v) == "integer" then return string.format("%d", v) end
  argerr(fn, "headers", ("value of %q must be a string or an integer, got %s"):format(tostring(name), type(v)))
end

local function by_name(a, b) return a[1] < b[1] end

-- headers: map name -> value, or array of {name, value}. Returns the array
-- form for C and whether the caller gave an array.
local function normalize_headers(fn, h)
  if h == nil then return {}, false end
  if type(h) ~= "table" then argerr(fn, "headers", "must be a table, got " .. type(h)) end
  local list = {}
  if h[1] ~= nil then
    for i, pair in ipairs(h) do
      if type(pair) ~= "table" or type(pair[1]) ~= "string" then
        argerr(fn, "headers", ("[%d] must be a {name, value} pair"):format(i))
      end
      list[i] = { pair[1], header_value(fn, pair[1], pair[2]) }
    end
    return list, true
  end
  local n = 0
  for name, v in pairs(h) do
    if type(name) ~= "string" then argerr(fn, "headers", "keys must be header names (strings)") end
    n = n + 1
    list[n] = { name, type(v) == "string" and v or header_value(fn, name, v) }
  end
  if n > 1 then table.sort(list, by_name) end -- deterministic order
  return list, false
end

local function core_args(fn, t)
  if type(t) ~= "table" then error(("sigv4.%s: expected a table of arguments, got %s"):format(fn, type(t)), 0) end
  local a = {
    method = need_string(fn, t, "method"),
    region = need_string(fn, t, "region"),
    service = need_string(fn, t, "service"),
    access_key = need_string(fn, t, "access_key"),
    secret_key = need_string(fn, t, "secret_key"),
    session_token = opt_string(fn, t, "session_token"),
    body = opt_string(fn, t, "body"),
    normalize = opt_bool(fn, t, "normalize", true),
    sign_body = opt_bool(fn, t, "sign_body", false),
    omit_session_token = opt_bool(fn, t, "omit_session_token", false),
  }
  a.double_encode = opt_bool(fn, t, "double_encode", a.normalize)
  if a.session_token == "" then a.session_token = nil end
  return a
end

local function sign(fn, t, expires)
  local a = core_args(fn, t)
  local url = need_string(fn, t, "url")
  a.host, a.path, a.query = parse_url_cached(fn, url)
  a.amz_date = amz_date(fn, t.time)
  a.presign_expires = expires
  local list, as_array = normalize_headers(fn, t.headers)
  a.headers = list
  local r = core.sign(a)

  -- Headers to send: the caller's (minus any stale Authorization) plus ours.
  local out, n = {}, 0
  for i = 1, #list do
    local p = list[i]
    local name = p[1]
    if #name ~= 13 or name:lower() ~= "authorization" then
      if as_array then n = n + 1 out[n] = { name, p[2] } else out[name] = p[2] end
    end
  end
  local added = r.added
  for i = 1, #added do
    local p = added[i]
    if as_array then n = n + 1 out[n] = p else out[p[1]] = p[2] end
  end
  return {
    authorization = r.authorization,
    canonical_request = r.canonical_request,
    string_to_sign = r.string_to_sign,
    signature = r.signature,
    headers = out,
    url = r.presigned_query and (url:gsub("[?#].*$", "") .. "?" .. r.presigned_query),
  }
end

function M.sign(t)
  return sign("sign", t, nil)
end

-- A prepared signer for one URL (see the top of the file).
function M.prepare(t)
  if type(t) ~= "table" then error("sigv4.prepare: expected a table of arguments, got " .. type(t), 0) end
  local url = need_string("prepare", t, "url")
  local host, path, query = parse_url_cached("prepare", url)
  local normalize = opt_bool("prepare", t, "normalize", true)
  return core.prepare { region = need_string("prepare", t, "region"),
    service = need_string("prepare", t, "service"), host = host, path = path, query = query,
    normalize = normalize, double_encode = opt_bool("prepare", t, "double_encode", normalize),
    sign_body = opt_bool("prepare", t, "sign_body", false),
    omit_session_token = opt_bool("prepare", t, "omit_session_token", false) }
end

--[[ signer_for's signers: signers[url][region][service]. Bounded like url_cache: emptied
     when it holds SIGNER_CACHE_MAX of them (a signer is small; it keeps a signing key). ]]
local SIGNER_CACHE_MAX = 64
local signers, signers_n = {}, 0

function M.signer_for(url, region, service)
  local by_region = signers[url]
  local by_service = by_region and by_region[region]
  local signer = by_service and by_service[service]
  if signer then return signer end
  signer = M.prepare { url = url, region = region, service = service }
  if signers_n >= SIGNER_CACHE_MAX then signers, signers_n = {}, 0 end
  by_region = signers[url] or {}
  signers[url] = by_region
  by_service = by_region[region] or {}
  by_region[region] = by_service
  by_service[service] = signer
  signers_n = signers_n + 1
  return signer
end

-- Presigned URL: as sign, plus expires= (seconds, 1..604800). Returns
-- {url=, canonical_request=, string_to_sign=, signature=, headers=}.
function M.presign(t)
  local e = type(t) == "table" and t.expires or nil
  if math.type(e) ~= "integer" or e < 1 or e > 604800 then
    error("sigv4.presign: field 'expires' must be an integer number of seconds in 1..604800", 0)
  end
  return sign("presign", t, e)
end

-- "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/svc/aws4_request,
--  SignedHeaders=host;x-amz-date, Signature=<64 hex>"
function M.parse_authorization(value)
  if type(value) ~= "string" then return nil, "Authorization header is missing" end
  local alg, rest = value:match("^%s*(%S+)%s+(.-)%s*$")
  if alg ~= "AWS4-HMAC-SHA256" then
    return nil, ("Authorization header: unsupported algorithm %q, expected AWS4-HMAC-SHA256"):format(alg or value)
  end
  local fields = {}
  for part in (rest .. ","):gmatch("([^,]*),") do
    local k, v = part:match("^%s*([%w]+)=(.-)%s*$")
    if not k then return nil, ("Authorization header: malformed component %q"):format(part) end
    fields[k] = v
  end
  local cred, sh, sig = fields.Credential, fields.SignedHeaders, fields.Signature
  if not cred then return nil, "Authorization header: missing Credential" end
  if not sh then return nil, "Authorization header: missing SignedHeaders" end
  if not sig then return nil, "Authorization header: missing Signature" end
  local ak, date, region, service, term = cred:match("^([^/]+)/(%d%d%d%d%d%d%d%d)/([^/]+)/([^/]+)/([^/]+)$")
  if not ak then
    return nil, "Authorization header: Credential must be <access key>/<YYYYMMDD>/<region>/<service>/aws4_request"
  end
  if term ~= "aws4_request" then
    return nil, ("Authorization header: Credential scope must end in aws4_request, got %q"):format(term)
  end
  if not sig:match("^%x+$") or #sig ~= 64 then
    return nil, "Authorization header: Signature must be 64 hex digits"
  end
  local names = {}
  for name in (sh .. ";"):gmatch("([^;]*);") do
    if name == "" or name ~= name:lower() then
      return nil, ("Authorization header: SignedHeaders %q must be lowercase names separated by ';'"):format(sh)
    end
    names[#names + 1] = name
  end
  return { access_key = ak, date = date, region = region, service = service,
           signed_headers = names, signature = sig:lower() }
end

-- Recomputes the signature of a received request over exactly signed_headers
-- (from parse_authorization). Takes url, or path (+ query). time (or
-- amz_date) is optional: without it the request's X-Amz-Date header is used. Returns the signature
-- and {canonical_request=, string_to_sign=}, or nil and a message when the
-- request cannot match (e.g. a signed header is missing).
function M.signature_for(t)
  local a = core_args("signature_for", t)
  if t.url ~= nil then
    local _
    _, a.path, a.query = parse_url("signature_for", need_string("signature_for", t, "url"))
  else
    a.path = opt_string("signature_for", t, "path") or "/"
    a.query = opt_string("signature_for", t, "query")
  end
  -- The time comes off the wire here: a malformed one is a failed match, not a crash.
  local tm = t.time
  if tm == nil then tm = t.amz_date end
  if tm ~= nil then
    local ok, d = pcall(amz_date, "signature_for", tm)
    if not ok then return nil, d end
    a.amz_date = d
  end
  local sh = t.signed_headers
  if type(sh) ~= "table" or sh[1] == nil then
    argerr("signature_for", "signed_headers", "is required (a non-empty array of lowercase header names)")
  end
  for i, name in ipairs(sh) do
    if type(name) ~= "string" then argerr("signature_for", "signed_headers", ("[%d] must be a string"):format(i)) end
  end
  a.signed_headers = sh
  a.headers = normalize_headers("signature_for", t.headers)
  a.sign_body, a.omit_session_token, a.session_token = false, false, nil
  local ok, r = pcall(core.sign, a)
  if not ok then return nil, (tostring(r):gsub("^sigv4: ", "")) end
  return r.signature, { canonical_request = r.canonical_request, string_to_sign = r.string_to_sign }
end

return M
