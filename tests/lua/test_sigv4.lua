-- ecsplay.sigv4 at the Lua level, the way aws.lua and sim/auth.lua use it.
-- (The full AWS suites run in tests/c/test_sigv4.c, through C and Lua.)
local T = require "harness"
local sigv4 = require "ecsplay.aws.sigv4"
local crypto = require "ecsplay.core.crypto"

local SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
-- aws-c-auth-v4/get-vanilla and post-x-www-form-urlencoded-parameters
local VANILLA = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"

local function args(over)
  local t = { method = "GET", url = "https://example.amazonaws.com/", region = "us-east-1",
    service = "service", access_key = "AKIDEXAMPLE", secret_key = SECRET, time = 1440938160 }
  for k, v in pairs(over or {}) do t[k] = v end
  return t
end

T.test("sign: get-vanilla from epoch seconds, map headers in and out", function()
  local r = sigv4.sign(args())
  T.eq(r.signature, VANILLA)
  T.eq(r.headers, { Host = "example.amazonaws.com", ["X-Amz-Date"] = "20150830T123600Z",
    Authorization = r.authorization })
  T.eq(r.authorization, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
    .. "SignedHeaders=host;x-amz-date, Signature=" .. VANILLA)
end)

T.test("sign: User-Agent is sent but not signed", function()
  local r = sigv4.sign(args { headers = { ["User-Agent"] = "ecsplay/1.0" } })
  T.eq(r.signature, VANILLA)
  T.eq(r.headers["User-Agent"], "ecsplay/1.0")
end)

T.test("sign: sign_body and session token", function()
  local r = sigv4.sign(args { method = "POST", body = "Param1=value1", sign_body = true,
    session_token = "TOKEN", headers = { ["Content-Type"] = "application/x-amz-json-1.1" } })
  T.eq(r.headers["x-amz-content-sha256"], crypto.sha256_hex("Param1=value1"))
  T.eq(r.headers["X-Amz-Security-Token"], "TOKEN")
  T.ok(r.authorization:find("SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token", 1, true))
  T.eq(r.canonical_request:match("[^\n]*$"), crypto.sha256_hex("Param1=value1"))
end)

T.test("sign: the secret is in no returned string", function()
  local r = sigv4.sign(args { session_token = "TOKEN" })
  local function walk(v)
    if type(v) == "string" then T.ok(not v:find(SECRET, 1, true), "secret leaked") end
    if type(v) == "table" then for k, x in pairs(v) do walk(k) walk(x) end end
  end
  walk(r)
end)

T.test("sign: bad arguments name the field", function()
  T.raises(function() sigv4.sign(args { region = 5 }) end, "'region'")
  T.raises(function() sigv4.sign(args { access_key = "" }) end, "'access_key'")
  T.raises(function() sigv4.sign(args { time = "2015-08-30" }) end, "'time'")
  T.raises(function() sigv4.sign(args { url = "/relative" }) end, "'url'")
  T.raises(function() sigv4.sign(args { headers = { X = {} } }) end, "'headers'")
  T.raises(function() sigv4.sign(args { sign_body = 1 }) end, "'sign_body'")
  T.raises(function() sigv4.sign("nope") end, "expected a table")
end)

T.test("presign: a URL carrying the X-Amz-* parameters", function()
  local r = sigv4.presign(args { expires = 3600 })
  -- aws-c-auth-v4/get-vanilla/query-signature.txt
  T.eq(r.signature, "e93c787ed7f371d5c6b165c1b38ede9550f4dce4144713e844b25b7192d3865d")
  T.ok(r.url:find("^https://example%.amazonaws%.com/%?X%-Amz%-Algorithm=AWS4%-HMAC%-SHA256&"))
  T.ok(r.url:find("&X-Amz-Expires=3600&X-Amz-Signature=" .. r.signature, 1, true))
  T.eq(r.authorization, nil)
  T.raises(function() sigv4.presign(args { expires = 0 }) end, "'expires'")
end)

T.test("parse_authorization: round trip and refusals", function()
  local r = sigv4.sign(args { headers = { { "Host", "example.amazonaws.com" }, { "X-A", "1" } } })
  local p = T.ok(sigv4.parse_authorization(r.authorization))
  T.eq(p, { access_key = "AKIDEXAMPLE", date = "20150830", region = "us-east-1", service = "service",
    signed_headers = { "host", "x-a", "x-amz-date" }, signature = r.signature })
  local cases = {
    { "Basic Zm9v", "algorithm" },
    { "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=" .. VANILLA, "Credential" },
    { "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/svc/aws4_request, Signature=" .. VANILLA, "SignedHeaders" },
    { "AWS4-HMAC-SHA256 Credential=AK/2015/us-east-1/svc/aws4_request, SignedHeaders=host, Signature=" .. VANILLA, "Credential" },
    { "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/svc/aws4_request, SignedHeaders=host, Signature=abc", "Signature" },
  }
  for _, c in ipairs(cases) do
    local ok, msg = sigv4.parse_authorization(c[1])
    T.eq(ok, nil, c[1])
    T.ok(msg:find(c[2], 1, true), msg)
  end
end)

T.test("signature_for: verifies the way the simulator calls it", function()
  local r = sigv4.sign(args { method = "POST", body = "{}", session_token = "TOK",
    headers = { ["Content-Type"] = "application/x-amz-json-1.1", ["X-Amz-Target"] = "AmazonEC2ContainerServiceV20141113.ListClusters",
      ["User-Agent"] = "aws-cli/2" } })
  -- What a server sees: lowercase header names, path and query split.
  local seen = {}
  for k, v in pairs(r.headers) do seen[k:lower()] = v end
  local p = assert(sigv4.parse_authorization(seen.authorization))
  local function verify(over)
    local t = { method = "POST", path = "/", query = "", headers = seen, body = "{}",
      signed_headers = p.signed_headers, access_key = p.access_key, secret_key = SECRET,
      region = p.region, service = p.service, amz_date = seen["x-amz-date"] }
    for k, v in pairs(over or {}) do t[k] = v end
    return sigv4.signature_for(t)
  end
  T.eq(verify(), r.signature)
  T.ok(verify { body = "{ }" } ~= r.signature, "body change must change the signature")
  T.ok(verify { secret_key = "wrong" } ~= r.signature, "wrong secret must not verify")
  local sig, msg = verify { amz_date = "yesterday" }
  T.eq(sig, nil)
  T.ok(msg:find("time", 1, true), msg)
  seen["x-amz-target"] = nil
  sig, msg = verify()
  T.eq(sig, nil)
  T.ok(msg:find("x-amz-target", 1, true), msg)
end)

T.test("prepare: the prepared signer signs as sign{} does, and keeps its key per credentials", function()
  local hdrs = { ["Content-Type"] = "application/x-amz-json-1.1", ["X-Amz-Target"] = "A.B",
    ["User-Agent"] = "ecsplay/1.0", ["Content-Length"] = 2, Authorization = "stale" }
  local signer = sigv4.prepare { url = "https://example.amazonaws.com/", region = "us-east-1",
    service = "service" }
  local rounds = { { SECRET, nil }, { SECRET, "TOKEN" }, { SECRET .. "x", "TOKEN" }, { SECRET, nil } }
  for _, creds in ipairs(rounds) do
    local want = sigv4.sign(args { method = "POST", headers = hdrs, body = "{}",
      secret_key = creds[1], session_token = creds[2] })
    local sent, st = signer:sign("POST", hdrs, "{}", 1440938160, "AKIDEXAMPLE", creds[1], creds[2], true)
    T.eq(sent, want.headers)
    T.eq(st.signature, want.signature)
    T.eq(st.canonical_request, want.canonical_request)
  end
  -- array headers come back as an array, in sign{}'s order
  local want = sigv4.sign(args { headers = { { "My-Header", "b" }, { "my-header", "a" } } })
  local sent = signer:sign("GET", { { "My-Header", "b" }, { "my-header", "a" } }, nil, "20150830T123600Z",
    "AKIDEXAMPLE", SECRET)
  T.eq(sent, want.headers)
  T.ok(not pcall(signer.sign, signer, "GET", { ["Bad Name"] = "x" }, nil, 1440938160, "AKIDEXAMPLE",
    SECRET))
  T.ok(not pcall(signer.sign, signer, "GET", nil, nil, "yesterday", "AKIDEXAMPLE", SECRET))
  T.ok(not pcall(sigv4.prepare, { url = "example.com/", region = "us-east-1", service = "s" }))
  T.eq(sigv4.signer_for("https://example.amazonaws.com/", "us-east-1", "service"),
    sigv4.signer_for("https://example.amazonaws.com/", "us-east-1", "service"))
end)

T.test("crypto: digests, encodings, randomness", function()
  T.eq(crypto.sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
  T.eq(crypto.hex(crypto.hmac_sha256("Jefe", "what do ya want for nothing?")),
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
  T.eq(crypto.unhex(crypto.hex("\0\1\254\255")), "\0\1\254\255")
  T.eq(crypto.unbase64(crypto.base64("any carnal pleas")), "any carnal pleas")
  local bad, msg = crypto.unbase64("abc")
  T.eq(bad, nil)
  T.ok(msg:find("multiple of 4"), msg)
  T.eq(#crypto.random_bytes(32), 32)
  T.ok(crypto.uuid4():match("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$"))
  T.ok(crypto.equal("abc", "abc") and not crypto.equal("abc", "abd"))
end)
