-- ecsplay.core.http's signed requests (http.start's signer=, runtime/http_request.c): the
-- request is signed with SigV4 as it is sent, which must put on the wire exactly what
-- signing in Lua (signer:sign) and sending the result puts there. Against the loopback stub
-- server tests/wire/http_stub.py (/echo answers with the request it got).
local T = require "harness"
local cjson = require "cjson"
local sigv4 = require "ecsplay.aws.sigv4"

local stub = require "http_stub_client"
local fetch = stub.fetch

local AK, SK, TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token-1"
local TIME = 1440938160 -- 20150830T123600Z, the AWS suite's date

local function echo(req)
  local c = fetch(req)
  T.eq(c.error, nil, "transport error")
  T.eq(c.status, 200, "status")
  return cjson.decode(c.body)
end

local function signer()
  return sigv4.prepare { url = stub.base .. "/echo", region = "us-east-1", service = "ecs" }
end

-- The headers signer:sign returns, by lowercase name.
local function lua_signed(s, method, headers, body, time, ak, sk, token)
  local out = {}
  for k, v in pairs(s:sign(method, headers, body, time, ak, sk, token)) do out[k:lower()] = v end
  return out
end

local function codec_headers()
  return { ["Content-Type"] = "application/x-amz-json-1.1", ["User-Agent"] = "ecsplay/test",
    ["X-Amz-Target"] = "AmazonEC2ContainerServiceV20141113.ListClusters" }
end

T.test("a request signed by http.start carries what signer:sign gives for it", function()
  for _, token in ipairs { false, TOKEN } do
    local s = signer()
    local got = echo { method = "POST", url = "/echo", headers = codec_headers(), body = "{}",
      signer = s, sign_time = TIME, access_key = AK, secret_key = SK, session_token = token or nil }
    local want = lua_signed(signer(), "POST", codec_headers(), "{}", TIME, AK, SK, token or nil)
    for _, name in ipairs { "authorization", "x-amz-date", "host", "content-type",
      "x-amz-target", "user-agent", "x-amz-security-token" } do
      T.eq(got.headers[name], want[name], name .. (token and " (with a session token)" or ""))
    end
    T.ok(got.headers.authorization:find("^AWS4%-HMAC%-SHA256 Credential=AKIDEXAMPLE/20150830/"),
      "an Authorization header: " .. tostring(got.headers.authorization))
    T.eq(got.body, "{}")
  end
end)

T.test("one signer over changing bodies, times and secrets signs each as signer:sign does", function()
  local s, ref = signer(), signer()
  local cases = {
    { "{}", TIME, SK }, { '{"cluster":"a"}', TIME, SK }, { '{"cluster":"a"}', TIME + 86400, SK },
    { "{}", TIME + 86400, SK .. "2" }, { "", TIME + 86400, SK .. "2" },
  }
  for i, c in ipairs(cases) do
    local got = echo { method = "POST", url = "/echo", headers = codec_headers(), body = c[1],
      signer = s, sign_time = c[2], access_key = AK, secret_key = c[3] }
    local want = lua_signed(ref, "POST", codec_headers(), c[1], c[2], AK, c[3])
    T.eq(got.headers.authorization, want.authorization, "case " .. i)
  end
end)

T.test("unsigned_headers go on the wire after signing and are not signed", function()
  local got = echo { method = "POST", url = "/echo", headers = codec_headers(), body = "{}",
    signer = signer(), sign_time = TIME, access_key = AK, secret_key = SK,
    unsigned_headers = { ["x-ecsplay-client"] = "ecsplay-test" } }
  T.eq(got.headers["x-ecsplay-client"], "ecsplay-test")
  local signed_list = got.headers.authorization:match("SignedHeaders=([^,]+)")
  T.ok(signed_list and not signed_list:find("x-ecsplay-client", 1, true),
    "not in SignedHeaders: " .. tostring(signed_list))
  local want = lua_signed(signer(), "POST", codec_headers(), "{}", TIME, AK, SK)
  T.eq(got.headers.authorization, want.authorization, "the same signature as without it")
end)

T.test("a signed request's bad input is refused before anything is sent", function()
  local function start(extra)
    local req = { method = "POST", url = stub.base .. "/echo", headers = codec_headers(), body = "{}",
      signer = signer(), sign_time = TIME, access_key = AK, secret_key = SK }
    for k, v in pairs(extra) do req[k] = v end
    if extra.headers == false then req.headers = nil end
    if extra.signer == false then req.signer = nil end
    local http = require "ecsplay.core.http"
    local ok, err = pcall(http.start, req)
    T.eq(ok, false, "refused")
    return tostring(err)
  end
  T.ok(start { signer = {} }:find("field 'signer' must be a signer made by sigv4.prepare", 1, true))
  T.ok(start { access_key = false }:find("the access key must be a string", 1, true))
  T.ok(start { secret_key = 42 }:find("the secret key must be a string", 1, true))
  T.ok(start { sign_time = "yesterday" }:find("http.start", 1, true))
  T.ok(start { sign_time = {} }:find("time is required", 1, true))
  local h = codec_headers()
  h.Authorization = "AWS4-HMAC-SHA256 stale"
  T.ok(start { headers = h }:find("must not carry an Authorization header", 1, true))
  local e = start { session_token = "tok\r\nX-Evil: 1" }
  T.ok(e:find("'session_token' contains CR, LF or NUL", 1, true), e)
  T.ok(not e:find("tok\r", 1, true) and not e:find("X-Evil", 1, true), "the token is not echoed: " .. e)
  T.ok(start { unsigned_headers = "x" }:find("'unsigned_headers' must be a table", 1, true))
  T.ok(start { unsigned_headers = { ["bad name"] = "v" } }:find("not a valid token", 1, true))
  -- an unsigned header never stands in for a signed one
  for _, name in ipairs { "authorization", "X-Amz-Date", "host", "Content-Type" } do
    local msg = start { unsigned_headers = { [name] = "x" } }
    T.ok(msg:find("is already among the signed ones", 1, true), name .. ": " .. msg)
  end
  -- unsigned_headers belong to a request signed here; elsewhere they are refused, not dropped
  local msg = start { signer = false, unsigned_headers = { ["x-ecsplay-client"] = "c" } }
  T.ok(msg:find("'unsigned_headers' is for a request signed here", 1, true), msg)
  -- none of the messages carries the secret
  for _, msg in ipairs { start { signer = {} }, start { sign_time = {} } } do
    T.ok(not msg:find(SK, 1, true), "no secret in: " .. msg)
  end
end)

T.test("stop the stub", stub.stop)
