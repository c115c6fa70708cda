/* Tests for ecsplay.core.xml, driven through a bare lua_State. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

int luaopen_ecsplay_core_xml(lua_State *L);

static int passed, failed;

/* Runs `code` with `doc` as its vararg; the chunk returns true, or false/nil plus a message. */
static void check(lua_State *L, const char *name, const char *doc, size_t doclen, const char *code)
{
    int top = lua_gettop(L);
    if (luaL_loadstring(L, code) != LUA_OK) {
        printf("FAIL %s: test code does not compile: %s\n", name, lua_tostring(L, -1));
        failed++;
        lua_settop(L, top);
        return;
    }
    if (doc)
        lua_pushlstring(L, doc, doclen);
    else
        lua_pushnil(L);
    if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
        printf("FAIL %s: %s\n", name, lua_tostring(L, -1));
        failed++;
    } else if (!lua_toboolean(L, -2)) {
        printf("FAIL %s: %s\n", name, lua_isstring(L, -1) ? lua_tostring(L, -1) : "(no message)");
        failed++;
    } else {
        passed++;
    }
    lua_settop(L, top);
}

static size_t slen(const char *s) { return s ? strlen(s) : 0; }
#define CHECK(L, name, doc, code) check(L, name, doc, slen(doc), code)

static const char *describe_tg =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<DescribeTargetGroupsResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\">\n"
    "  <DescribeTargetGroupsResult>\n"
    "    <TargetGroups>\n"
    "      <member>\n"
    "        <TargetGroupArn>arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-blue/73e2d6bc24d8a067</TargetGroupArn>\n"
    "        <TargetGroupName>web-blue</TargetGroupName>\n"
    "        <Protocol>HTTP</Protocol>\n"
    "        <Port>80</Port>\n"
    "        <VpcId>vpc-3ac0fb5f</VpcId>\n"
    "        <HealthCheckProtocol>HTTP</HealthCheckProtocol>\n"
    "        <HealthCheckPort>traffic-port</HealthCheckPort>\n"
    "        <HealthCheckEnabled>true</HealthCheckEnabled>\n"
    "        <HealthCheckIntervalSeconds>30</HealthCheckIntervalSeconds>\n"
    "        <HealthCheckTimeoutSeconds>5</HealthCheckTimeoutSeconds>\n"
    "        <HealthyThresholdCount>5</HealthyThresholdCount>\n"
    "        <UnhealthyThresholdCount>2</UnhealthyThresholdCount>\n"
    "        <HealthCheckPath>/health?a=1&amp;b=2</HealthCheckPath>\n"
    "        <Matcher><HttpCode>200</HttpCode></Matcher>\n"
    "        <LoadBalancerArns>\n"
    "          <member>arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/my-lb/50dc6c495c0c9188</member>\n"
    "        </LoadBalancerArns>\n"
    "        <TargetType>ip</TargetType>\n"
    "      </member>\n"
    "      <member>\n"
    "        <TargetGroupArn>arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-green/0a1b2c3d4e5f6a7b</TargetGroupArn>\n"
    "        <TargetGroupName>web-green</TargetGroupName>\n"
    "        <LoadBalancerArns/>\n"
    "      </member>\n"
    "    </TargetGroups>\n"
    "  </DescribeTargetGroupsResult>\n"
    "  <ResponseMetadata>\n"
    "    <RequestId>9ab4a9c7-1b2d-4f1b-9b7c-1c2d3e4f5a6b</RequestId>\n"
    "  </ResponseMetadata>\n"
    "</DescribeTargetGroupsResponse>\n";

int main(void)
{
    lua_State *L = luaL_newstate();
    if (!L) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    luaL_openlibs(L);
    luaL_requiref(L, "ecsplay.core.xml", luaopen_ecsplay_core_xml, 0);
    lua_pop(L, 1);

    CHECK(
        L, "DescribeTargetGroups: structure", describe_tg,
        "local xml = require 'ecsplay.core.xml'\n"
        "local r, err = xml.parse(...)\n"
        "if not r then return false, err end\n"
        "if r.name ~= 'DescribeTargetGroupsResponse' then return false, 'root ' .. r.name end\n"
        "if next(r.attrs) ~= nil then return false, 'xmlns must not appear in attrs' end\n"
        "if #r.children ~= 2 then return false, 'root children ' .. #r.children end\n"
        "if r.text ~= '' then return false, 'whitespace between children must be dropped' end\n"
        "local tgs = r.children[1].children[1]\n"
        "if tgs.name ~= 'TargetGroups' or #tgs.children ~= 2 then return false, 'TargetGroups' end\n"
        "local m = tgs.children[1]\n"
        "local f = {} for _, c in ipairs(m.children) do f[c.name] = c end\n"
        "if f.TargetGroupName.text ~= 'web-blue' then return false, 'name' end\n"
        "if f.Port.text ~= '80' then return false, 'port' end\n"
        "if f.HealthCheckPath.text ~= '/health?a=1&b=2' then return false, 'entity in text' end\n"
        "if f.Matcher.children[1].name ~= 'HttpCode' or f.Matcher.children[1].text ~= '200' then return false, 'matcher' end\n"
        "if #f.LoadBalancerArns.children ~= 1 then return false, 'one-member list' end\n"
        "if not f.LoadBalancerArns.children[1].text:find('loadbalancer/app/my-lb', 1, true) then return false, 'lb arn' end\n"
        "local g = tgs.children[2].children[3]\n"
        "if g.name ~= 'LoadBalancerArns' or #g.children ~= 0 or g.text ~= '' then return false, 'empty element' end\n"
        "if r.children[2].children[1].text ~= '9ab4a9c7-1b2d-4f1b-9b7c-1c2d3e4f5a6b' then return false, 'request id' end\n"
        "return true");

    CHECK(
        L, "empty elements", "<a><b/><c></c><d> </d></a>",
        "local r = assert(require('ecsplay.core.xml').parse(...))\n"
        "if #r.children ~= 3 then return false, 'children' end\n"
        "if r.children[1].text ~= '' or r.children[2].text ~= '' then return false, 'empty text' end\n"
        "if r.children[3].text ~= ' ' then return false, 'leaf whitespace is kept' end\n"
        "return true");

    CHECK(
        L, "attributes, prefixes and namespaces",
        "<ns:Root xmlns:ns='urn:x' xmlns='urn:y' a='1' ns:b='&lt;2&gt;'><ns:Child k=\"v\">t</ns:Child></ns:Root>",
        "local r, e = require('ecsplay.core.xml').parse(...)\n"
        "if not r then return false, e end\n"
        "if r.name ~= 'Root' then return false, 'prefix not stripped: ' .. r.name end\n"
        "if r.attrs.a ~= '1' or r.attrs.b ~= '<2>' then return false, 'attrs' end\n"
        "if r.attrs.xmlns or r.attrs.ns or r.attrs['xmlns:ns'] then return false, 'xmlns kept' end\n"
        "if r.children[1].name ~= 'Child' or r.children[1].attrs.k ~= 'v' then return false, 'child' end\n"
        "return r.text == '', 'root text'");

    CHECK(
        L, "entities and character references",
        "<m>a &amp; b &lt; c &gt; d &quot;e&quot; &apos;f&apos; &#233;&#x263A; <![CDATA[<raw>&]]></m>",
        "local r, e = require('ecsplay.core.xml').parse(...)\n"
        "if not r then return false, e end\n"
        "local want = 'a & b < c > d \"e\" \\'f\\' \\u{e9}\\u{263a} <raw>&'\n"
        "return r.text == want, 'got ' .. r.text");

    CHECK(L, "mixed content concatenates text", "<a>x<b>y</b>z</a>",
          "local r = assert(require('ecsplay.core.xml').parse(...))\n"
          "return r.text == 'xz' and r.children[1].text == 'y', r.text");

    CHECK(L, "malformed: mismatched tag", "<a>\n  <b></c>\n</a>",
          "local r, e = require('ecsplay.core.xml').parse(...)\n"
          "if r ~= nil then return false, 'parsed malformed input' end\n"
          "return e:find('^XML error at line 2, column %d+: mismatched tag') ~= nil, e");

    const char *bad[] = {"",
                         "   ",
                         "<",
                         "<a>",
                         "<a></a><b/>",
                         "text only",
                         "<a>&undefined;</a>",
                         "<a b='1' b='2'/>",
                         "<a>\x01</a>",
                         "<?xml version='1.0'?>",
                         "<a x=1/>",
                         "</a>",
                         "<a><!-- unterminated </a>",
                         "<p:a/>junk",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        char name[64];
        snprintf(name, sizeof name, "malformed input #%d", i + 1);
        CHECK(
            L, name, bad[i],
            "local r, e = require('ecsplay.core.xml').parse(...)\n"
            "return r == nil and type(e) == 'string' and e:find('^XML error at line') ~= nil, tostring(e)");
    }

    CHECK(L, "leaves share the document's one empty attrs and children; others have their own",
          "<a k='v'><b>1</b><c/><d x='y'><e/></d></a>",
          "local r = require('ecsplay.core.xml').parse(...)\n"
          "local b, c, d = r.children[1], r.children[2], r.children[3]\n"
          "local e = d.children[1]\n"
          "local empty = b.children\n"
          "if next(empty) ~= nil then return false, 'the shared table is not empty' end\n"
          "if not (b.attrs == empty and c.attrs == empty and c.children == empty and\n"
          "        e.attrs == empty and e.children == empty) then return false, 'not shared' end\n"
          "if r.attrs.k ~= 'v' or d.attrs.x ~= 'y' or #r.children ~= 3 or #d.children ~= 1 then\n"
          "  return false, 'attributes or children lost' end\n"
          "if r.attrs == empty or d.attrs == empty or d.children == empty then\n"
          "  return false, 'a non-empty table shared' end\n"
          "local other = require('ecsplay.core.xml').parse('<z/>')\n"
          "return other.children ~= empty, 'two documents share an empty table'");

    check(L, "embedded NUL is an error, not a crash", "<a>x\0y</a>", 10,
          "local r, e = require('ecsplay.core.xml').parse(...)\n"
          "return r == nil and e:find('XML error') ~= nil, tostring(e)");

    CHECK(L, "billion laughs is rejected",
          "<?xml version='1.0'?><!DOCTYPE l [<!ENTITY a 'aaaaaaaaaa'>"
          "<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'><!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'>"
          "<!ENTITY d '&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;'><!ENTITY e '&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;'>"
          "<!ENTITY f '&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;'><!ENTITY g '&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;'>"
          "<!ENTITY h '&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;'>]><l>&h;</l>",
          "local r, e = require('ecsplay.core.xml').parse(...)\n"
          "return r == nil, 'expanded ' .. (r and #r.text or 0) .. ' bytes'");

    CHECK(L, "external entities are never loaded",
          "<?xml version='1.0'?><!DOCTYPE a [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><a>&x;</a>",
          "local r, e = require('ecsplay.core.xml').parse(...)\n"
          "if r and r.text:find('root:', 1, true) then return false, 'external entity loaded' end\n"
          "return true");

    /* Nesting: 200 levels parse, 201 do not, 100000 do not crash. */
    int depths[] = {200, 201, 100000};
    for (int k = 0; k < 3; k++) {
        int d = depths[k];
        size_t cap = (size_t)d * 7 + 1;
        char *doc = malloc(cap);
        if (!doc) {
            failed++;
            continue;
        }
        size_t n = 0;
        for (int i = 0; i < d; i++) {
            memcpy(doc + n, "<e>", 3);
            n += 3;
        }
        for (int i = 0; i < d; i++) {
            memcpy(doc + n, "</e>", 4);
            n += 4;
        }
        char name[64];
        snprintf(name, sizeof name, "nesting depth %d", d);
        check(L, name, doc, n,
              d <= 200 ? "local r, e = require('ecsplay.core.xml').parse(...)\n"
                         "local n = 0 while r do n = n + 1 r = r.children[1] end\n"
                         "return n == 200, 'depth ' .. n .. ' ' .. tostring(e)"
                       : "local r, e = require('ecsplay.core.xml').parse(...)\n"
                         "return r == nil and e:find('deeper than 200') ~= nil, tostring(e)");
        free(doc);
    }

    CHECK(
        L, "wide document (10000 siblings)", NULL,
        "local xml = require 'ecsplay.core.xml'\n"
        "local r = assert(xml.parse('<l>' .. string.rep('<member>x</member>', 10000) .. '</l>'))\n"
        "return #r.children == 10000 and r.children[10000].text == 'x'");

    CHECK(
        L, "escape round trip", NULL,
        "local xml = require 'ecsplay.core.xml'\n"
        "local s = 'a<b>&c\"d\\'e\\r\\n\\tf \\u{263a}'\n"
        "local e = xml.escape(s)\n"
        "if e ~= 'a&lt;b&gt;&amp;c&quot;d&apos;e&#13;\\n\\tf \\u{263a}' then return false, e end\n"
        "local r = assert(xml.parse('<v a=\"' .. e .. '\">' .. e .. '</v>'))\n"
        "return r.text == s, 'text round trip'");

    CHECK(L, "escape rejects control characters", NULL,
          "local ok, e = pcall(require('ecsplay.core.xml').escape, 'ab\\1')\n"
          "return not ok and e:find('0x01 at position 3', 1, true) ~= nil, tostring(e)");

    CHECK(L, "parse rejects non-strings", NULL,
          "return not pcall(require('ecsplay.core.xml').parse, {})");

    lua_close(L);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
