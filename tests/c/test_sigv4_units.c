/* test_sigv4_units.c: unit checks of crypto and the SigV4 signer: SHA-256 and HMAC
 * against their published values, canonical paths and queries, unsigned headers, the
 * signing-key cache, verification mode, and errors that name their field without the
 * secret; then the Lua face (ecsplay.aws.sigv4, ecsplay.core.crypto) the same way.
 * AWS's suites, case by case and stage by stage, are test_sigv4.c. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/crypto.h"
#include "../../runtime/sigv4.h"
#include "check.h"
#include "sigv4_test.h"

static lua_State *L;

static void unit_c(void)
{
    char hex[65];
    unsigned char mac[32];
    check(ep_sha256_hex("", 0, hex) == 0 &&
              strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0,
          "sha256_hex of empty string");
    /* RFC 4231 test case 2 */
    ep_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac);
    ep_hex_encode(mac, 32, hex);
    check(strcmp(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843") == 0,
          "hmac_sha256 RFC 4231 case 2");
    check(ep_ct_equal("abc", 3, "abc", 3) && !ep_ct_equal("abc", 3, "abd", 3) &&
              !ep_ct_equal("ab", 2, "abc", 3),
          "constant-time equal");

    struct {
        const char *in;
        int norm, dbl;
        const char *want;
    } paths[] = {
        {"/my-object//example//photo.user", 0, 0, "/my-object//example//photo.user"},
        {"/a%2Fb", 0, 0, "/a%2Fb"},
        {"/a%2fb", 0, 0, "/a%2Fb"},
        {"/a%2Fb", 1, 1, "/a%252Fb"},
        {"/a/b/../c/./d/", 1, 1, "/a/c/d/"},
        {"/a/b/..", 1, 1, "/a"},
        {"/../..", 1, 1, "/"},
        {"", 1, 1, "/"},
        {"/%zz", 0, 0, "/%25zz"},
    };
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        char *got = ep_sigv4_canonical_path(paths[i].in, paths[i].norm, paths[i].dbl);
        char what[160];
        snprintf(what, sizeof what, "canonical_path(\"%s\", %d, %d) = \"%s\", got \"%s\"",
                 paths[i].in, paths[i].norm, paths[i].dbl, paths[i].want, got ? got : "(null)");
        check(got && strcmp(got, paths[i].want) == 0, what);
        free(got);
    }
    struct {
        const char *in, *want;
    } qs[] = {
        {"b=2&a=1&a=0", "a=0&a=1&b=2"},
        {"Action=List&Version=2&x=a%20b+c", "Action=List&Version=2&x=a%20b%2Bc"},
        {"flag&&k=", "flag=&k="},
        {"k=%2f%zz", "k=%2F%25zz"},
    };
    for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
        char *got = ep_sigv4_canonical_query(qs[i].in);
        char what[160];
        snprintf(what, sizeof what, "canonical_query(\"%s\") = \"%s\", got \"%s\"", qs[i].in,
                 qs[i].want, got ? got : "(null)");
        check(got && strcmp(got, qs[i].want) == 0, what);
        free(got);
    }

    /* Unsigned headers never make it into SignedHeaders; the cache hits. */
    ep_sigv4_header hs[] = {
        {"Host", 4, "example.amazonaws.com", 21}, {"User-Agent", 10, "ecsplay/1", 9},
        {"Expect", 6, "100-continue", 12},        {"X-Amzn-Trace-Id", 15, "Root=1", 6},
        {"Connection", 10, "keep-alive", 10},     {"Transfer-Encoding", 17, "chunked", 7},
        {"Authorization", 13, "stale", 5},
    };
    ep_sigv4_request r = {"GET", "/", NULL, hs, sizeof hs / sizeof *hs, NULL, 0};
    ep_sigv4_config c = sigv4_suite_config();
    c.amz_date = "20150830T123600Z";
    ep_sigv4_result res;
    char err[256];
    unsigned long h0, m0, h1, m1;
    ep_sigv4_cache_clear();
    ep_sigv4_cache_stats(&h0, &m0);
    int rc = ep_sigv4_sign(&r, &c, &res, err, sizeof err);
    check(rc == 0 && strcmp(res.signed_headers, "host;x-amz-date") == 0,
          "unsigned headers are not signed");
    check(rc == 0 &&
              strcmp(res.signature,
                     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31") == 0,
          "get-vanilla signature with unsigned headers present");
    ep_sigv4_result_free(&res);
    rc = ep_sigv4_sign(&r, &c, &res, err, sizeof err);
    ep_sigv4_result_free(&res);
    ep_sigv4_cache_stats(&h1, &m1);
    check(rc == 0 && h1 == h0 + 1 && m1 == m0 + 1, "second signing hits the signing-key cache");
    c.secret_key = "another-secret";
    c.secret_len = strlen(c.secret_key);
    rc = ep_sigv4_sign(&r, &c, &res, err, sizeof err);
    check(rc == 0 &&
              strcmp(res.signature,
                     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31") != 0,
          "a different secret for the same access key is not served from the cache");
    ep_sigv4_result_free(&res);
    /* Evict: more distinct scopes than slots, all still correct. */
    for (int i = 0; i < 20; i++) {
        char region[32];
        snprintf(region, sizeof region, "region-%d", i);
        c.region = region;
        rc = ep_sigv4_sign(&r, &c, &res, err, sizeof err);
        ep_sigv4_result_free(&res);
        if (rc)
            break;
    }
    check(rc == 0, "signing across more scopes than cache slots");
    c.secret_key = SK;
    c.secret_len = strlen(SK);

    /* Verification mode signs exactly the listed headers. */
    c.region = "us-east-1";
    const char *names[] = {"host", "x-amz-date"};
    ep_sigv4_header vh[] = {{"Host", 4, "example.amazonaws.com", 21},
                            {"X-Amz-Date", 10, "20150830T123600Z", 16},
                            {"X-Extra", 7, "not signed", 10}};
    ep_sigv4_request vr = {"GET", "/", NULL, vh, 3, NULL, 0};
    c.amz_date = NULL;
    c.signed_headers = names;
    c.nsigned_headers = 2;
    rc = ep_sigv4_sign(&vr, &c, &res, err, sizeof err);
    check(rc == 0 &&
              strcmp(res.signature,
                     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31") == 0 &&
              res.nadded == 0,
          "verification mode reproduces get-vanilla over host;x-amz-date");
    ep_sigv4_result_free(&res);
    const char *missing[] = {"host", "x-amz-date", "x-amz-target"};
    c.signed_headers = missing;
    c.nsigned_headers = 3;
    rc = ep_sigv4_sign(&vr, &c, &res, err, sizeof err);
    check(rc == EP_SIGV4_EINVAL && strstr(err, "x-amz-target"),
          "verification names a missing signed header");
    c.signed_headers = NULL;
    c.nsigned_headers = 0;

    /* Errors name the field and never leak the secret. */
    c.amz_date = "2015-08-30";
    rc = ep_sigv4_sign(&r, &c, &res, err, sizeof err);
    check(rc == EP_SIGV4_EINVAL && strstr(err, "time") && !strstr(err, SK), "bad time is reported");
    c.amz_date = "20150830T123600Z";
    c.region = "";
    rc = ep_sigv4_sign(&r, &c, &res, err, sizeof err);
    check(rc == EP_SIGV4_EINVAL && strstr(err, "region"), "empty region is reported");
    c.region = "us-east-1";
    c.access_key = "AK/X";
    rc = ep_sigv4_sign(&r, &c, &res, err, sizeof err);
    check(rc == EP_SIGV4_EINVAL && strstr(err, "access_key"), "access key with '/' is reported");
    ep_sigv4_cache_clear();
}

static const char *lua_unit =
    "local crypto = require 'ecsplay.core.crypto'\n"
    "local s = require 'ecsplay.aws.sigv4'\n"
    "local fails, count = {}, 0\n"
    "local function ok(c, m) count = count + 1 if not c then fails[#fails+1] = m end end\n"
    "ok(crypto.sha256_hex('') == 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'lua sha256_hex')\n"
    "ok(crypto.hex(crypto.sha256('abc')) == crypto.sha256_hex('abc'), 'lua sha256 raw vs hex')\n"
    "ok(crypto.hex(crypto.hmac_sha256('Jefe', 'what do ya want for nothing?')) == "
    "'5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843', 'lua hmac')\n"
    "ok(crypto.base64('') == '' and crypto.base64('f') == 'Zg==' and crypto.base64('fo') == 'Zm8=' and "
    "crypto.base64('foobar') == 'Zm9vYmFy', 'lua base64')\n"
    "ok(crypto.unbase64('Zm8=') == 'fo' and crypto.unbase64('Zg==') == 'f' and crypto.unbase64('Zm9vYmFy') == 'foobar', 'lua unbase64')\n"
    "ok(crypto.unbase64('Zm8') == nil and crypto.unbase64('Z=8=') == nil and crypto.unbase64('Zm 8') == nil, 'lua unbase64 rejects bad input')\n"
    "ok(select(2, crypto.unbase64('Zm8')):find('multiple of 4'), 'unbase64 message')\n"
    "ok(crypto.unhex('00ff10') == '\\0\\255\\16' and crypto.unhex('zz') == nil and crypto.unhex('abc') == nil, 'lua unhex')\n"
    "ok(#crypto.random_bytes(16) == 16 and crypto.random_bytes(0) == '', 'lua random_bytes')\n"
    "local u1, u2 = crypto.uuid4(), crypto.uuid4()\n"
    "ok(u1:match('^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$') and u1 ~= u2, 'lua uuid4')\n"
    "ok(crypto.equal('a', 'a') and not crypto.equal('a', 'b'), 'lua equal')\n"
    "local secret = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY'\n"
    "local base = {method='GET', url='https://example.amazonaws.com/', region='us-east-1', service='service',\n"
    "  access_key='AKIDEXAMPLE', secret_key=secret, time=1440938160}\n"
    "local function with(t) local r = {} for k, v in pairs(base) do r[k] = v end for k, v in pairs(t) do r[k] = v end return r end\n"
    "local r = s.sign(base)\n"
    "ok(r.signature == '5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31', 'lua epoch time get-vanilla')\n"
    "ok(r.headers.Host == 'example.amazonaws.com' and r.headers['X-Amz-Date'] == '20150830T123600Z' and r.headers.Authorization == r.authorization, 'lua added headers (map)')\n"
    "ok(s.sign(with{time='2015-08-30T12:36:00Z'}).signature == r.signature, 'lua ISO time')\n"
    "ok(s.sign(with{url='https://example.amazonaws.com:443/'}).signature == r.signature, 'default port dropped from Host')\n"
    "ok(s.sign(with{url='http://example.amazonaws.com:8080/'}).headers.Host == 'example.amazonaws.com:8080', 'non-default port kept')\n"
    "local function scan(t, seen) seen = seen or {} if seen[t] then return true end seen[t] = true\n"
    "  for k, v in pairs(t) do if v == secret or k == secret then return false end\n"
    "    if type(v) == 'string' and v:find(secret, 1, true) then return false end\n"
    "    if type(v) == 'table' and not scan(v, seen) then return false end end return true end\n"
    "ok(scan(r), 'secret not in result')\n"
    "local b = s.sign(with{method='POST', body='Param1=value1', sign_body=true, headers={['Content-Type']='application/x-www-form-urlencoded'}})\n"
    "ok(b.headers['x-amz-content-sha256'] == '9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e', 'sign_body adds x-amz-content-sha256')\n"
    "ok(b.canonical_request:find('content-type;host;x-amz-content-sha256;x-amz-date', 1, true), 'sign_body signs it')\n"
    "ok(s.sign(with{body='x'}).headers['x-amz-content-sha256'] == nil, 'no content sha header by default')\n"
    "local t = s.sign(with{session_token='TOKEN'})\n"
    "ok(t.headers['X-Amz-Security-Token'] == 'TOKEN' and t.canonical_request:find('x-amz-security-token:TOKEN', 1, true), 'session token signed')\n"
    "local a = s.sign(with{headers={{'Host','example.amazonaws.com'},{'X-A','1'},{'X-A','2'},{'Authorization','old'}}})\n"
    "ok(#a.headers == 5 and a.headers[5][1] == 'Authorization' and a.headers[4][1] == 'X-Amz-Date', 'array headers in, array out, stale Authorization dropped')\n"
    "ok(a.canonical_request:find('x-a:1,2', 1, true), 'duplicate headers joined')\n"
    "local function err(t) local okk, e = pcall(s.sign, t) return (not okk) and e or '' end\n"
    "ok(err(with{region=false}):find(\"'region'\"), 'error names region')\n"
    "ok(err(with{secret_key=''}):find(\"'secret_key'\"), 'error names secret_key')\n"
    "ok(err(with{time='yesterday'}):find(\"'time'\"), 'error names time')\n"
    "ok(err(with{url='example.com/'}):find(\"'url'\"), 'error names url')\n"
    "ok(err(with{headers={{'A'}}}):find(\"'headers'\"), 'error names headers')\n"
    "ok(err(with{normalize='yes'}):find(\"'normalize'\"), 'error names normalize')\n"
    "ok(not err(with{secret_key=false}):find(secret, 1, true), 'errors do not leak')\n"
    "local p = s.parse_authorization(a.authorization)\n"
    "ok(p and p.access_key == 'AKIDEXAMPLE' and p.date == '20150830' and p.region == 'us-east-1' and p.service == 'service'\n"
    "  and table.concat(p.signed_headers, ';') == 'host;x-a;x-amz-date' and p.signature == a.signature, 'parse_authorization')\n"
    "ok(s.parse_authorization('AWS4-HMAC-SHA256 Credential=AK/2015/us/svc/aws4_request, SignedHeaders=host, Signature=00') == nil, 'parse_authorization rejects bad credential')\n"
    "ok(s.parse_authorization('Basic abc') == nil, 'parse_authorization rejects other schemes')\n"
    "local incoming = {{'host','example.amazonaws.com'},{'x-a','1'},{'x-a','2'},{'X-Amz-Date','20150830T123600Z'},{'User-Agent','aws-cli'}}\n"
    "local sig = s.signature_for{method='GET', path='/', headers=incoming, region=p.region, service=p.service,\n"
    "  access_key=p.access_key, secret_key=secret, signed_headers=p.signed_headers}\n"
    "ok(sig == a.signature, 'signature_for reproduces the client signature')\n"
    "incoming[2][2] = '9'\n"
    "local sig2 = s.signature_for{method='GET', path='/', headers=incoming, region=p.region, service=p.service,\n"
    "  access_key=p.access_key, secret_key=secret, signed_headers=p.signed_headers}\n"
    "ok(sig2 and sig2 ~= a.signature, 'tampered header changes the signature')\n"
    "local sig3, msg = s.signature_for{method='GET', path='/', headers={{'host','h'},{'X-Amz-Date','20150830T123600Z'}}, region=p.region,\n"
    "  service=p.service, access_key=p.access_key, secret_key=secret, signed_headers=p.signed_headers}\n"
    "ok(sig3 == nil and msg:find('x-a', 1, true), 'signature_for reports a missing signed header')\n"
    "return fails, count\n";

static void unit_lua(void)
{
    if (luaL_dostring(L, lua_unit) != LUA_OK) {
        failed++;
        printf("FAIL unit lua: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
        return;
    }
    lua_Integer total = lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_Integer n = luaL_len(L, -1);
    passed += (int)(total - n);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        printf("FAIL unit lua: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
        failed++;
    }
    lua_pop(L, 1);
}
int main(void)
{
    L = sigv4_lua_state();
    unit_c();
    unit_lua();
    lua_close(L);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
