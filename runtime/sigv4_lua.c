/* sigv4_lua.c: the Lua face of the signer, ecsplay.core.sigv4 (the signer
 * itself is sigv4.c; policy such as URL parsing, time formatting and argument
 * checking lives in stdlib-lua/ecsplay/aws/sigv4.lua).
 *
 *   sign{...} -> {canonical_request=, string_to_sign=, signature=, ...}
 *   canonical_path(path [, normalize [, double_encode]]) -> string
 *   canonical_query(query) -> string
 *   canonical_header_value(value) -> string
 *   is_unsigned_header(name) -> boolean
 *   cache_clear()              cache_stats() -> hits, misses
 *   prepare{region=, service=, host=, path=, query=, ...} -> signer (sigv4_prepared.c)
 *   signer:sign(method, headers, body, time, access_key, secret_key [, token [, stages]])
 *     -> headers to send [, {canonical_request=, string_to_sign=, signature=, authorization=}] */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "ep.h"
#include "sigv4.h"

#define RESULT_MT "ecsplay.core.sigv4.result"

/* Strings are read with lua_getfield then popped: they stay alive because
 * the argument table still references them and nothing here modifies it. */
static const char *field_str(lua_State *L, int t, const char *field, size_t *len, int required)
{
    lua_getfield(L, t, field);
    int ty = lua_type(L, -1);
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        if (required)
            luaL_error(L, "sigv4: field '%s' is required (a string)", field);
        if (len)
            *len = 0;
        return NULL;
    }
    if (ty != LUA_TSTRING)
        luaL_error(L, "sigv4: field '%s' must be a string, got %s", field, lua_typename(L, ty));
    const char *s = lua_tolstring(L, -1, len);
    lua_pop(L, 1);
    return s;
}

static int field_bool(lua_State *L, int t, const char *field, int dflt)
{
    lua_getfield(L, t, field);
    int ty = lua_type(L, -1);
    int v = dflt;
    if (ty == LUA_TBOOLEAN)
        v = lua_toboolean(L, -1);
    else if (ty != LUA_TNIL)
        luaL_error(L, "sigv4: field '%s' must be a boolean, got %s", field, lua_typename(L, ty));
    lua_pop(L, 1);
    return v;
}

static int result_gc(lua_State *L)
{
    ep_sigv4_result_free(luaL_checkudata(L, 1, RESULT_MT));
    return 0;
}

static void set_str(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* The request and config fields of sign{}'s table (strings and booleans). */
static void read_fields(lua_State *L, ep_sigv4_request *req, ep_sigv4_config *cfg)
{
    req->method = field_str(L, 1, "method", NULL, 1);
    req->path = field_str(L, 1, "path", NULL, 0);
    req->query = field_str(L, 1, "query", NULL, 0);
    req->body = field_str(L, 1, "body", &req->body_len, 0);
    cfg->region = field_str(L, 1, "region", NULL, 1);
    cfg->service = field_str(L, 1, "service", NULL, 1);
    cfg->access_key = field_str(L, 1, "access_key", NULL, 1);
    cfg->secret_key = field_str(L, 1, "secret_key", &cfg->secret_len, 1);
    cfg->session_token = field_str(L, 1, "session_token", NULL, 0);
    cfg->amz_date = field_str(L, 1, "amz_date", NULL, 0);
    cfg->host = field_str(L, 1, "host", NULL, 0);
    cfg->normalize_path = field_bool(L, 1, "normalize", 1);
    cfg->double_encode = field_bool(L, 1, "double_encode", cfg->normalize_path);
    cfg->sign_body = field_bool(L, 1, "sign_body", 0);
    cfg->omit_session_token = field_bool(L, 1, "omit_session_token", 0);
    lua_getfield(L, 1, "presign_expires");
    if (!lua_isnil(L, -1)) {
        int isint = 0;
        lua_Integer ex = lua_tointegerx(L, -1, &isint);
        if (!isint || ex <= 0 || ex > 604800)
            luaL_error(
                L,
                "sigv4: field 'presign_expires' must be an integer number of seconds in 1..604800");
        cfg->presign_expires = (long)ex;
    }
    lua_pop(L, 1);
}

/* headers={{name, value},...} into an array that lives in a userdata left on
 * the stack, so a Lua error cannot leak it. */
static void read_headers(lua_State *L, ep_sigv4_request *req)
{
    lua_getfield(L, 1, "headers");
    if (lua_isnil(L, -1))
        return;
    luaL_argexpected(L, lua_istable(L, -1), 1, "headers as an array of {name, value}");
    lua_Integer n = luaL_len(L, -1);
    ep_sigv4_header *hs = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *hs, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, -2, i) != LUA_TTABLE)
            luaL_error(L, "sigv4: headers[%d] must be a {name, value} pair", (int)i);
        if (lua_rawgeti(L, -1, 1) != LUA_TSTRING || lua_rawgeti(L, -2, 2) != LUA_TSTRING)
            luaL_error(L, "sigv4: headers[%d] must be a {name, value} pair of strings", (int)i);
        hs[i - 1].name = lua_tolstring(L, -2, &hs[i - 1].name_len);
        hs[i - 1].value = lua_tolstring(L, -1, &hs[i - 1].value_len);
        lua_pop(L, 3);
    }
    req->headers = hs;
    req->nheaders = (size_t)n;
}

/* signed_headers={lowercase names} (verification mode), like read_headers. */
static void read_signed_headers(lua_State *L, ep_sigv4_config *cfg)
{
    lua_getfield(L, 1, "signed_headers");
    if (lua_isnil(L, -1))
        return;
    luaL_argexpected(L, lua_istable(L, -1), 1, "signed_headers as an array of lowercase names");
    lua_Integer n = luaL_len(L, -1);
    const char **names = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *names, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, -2, i) != LUA_TSTRING)
            luaL_error(L, "sigv4: signed_headers[%d] must be a string", (int)i);
        names[i - 1] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    cfg->signed_headers = names;
    cfg->nsigned_headers = (size_t)n;
}

static void push_result(lua_State *L, const ep_sigv4_result *r)
{
    lua_createtable(L, 0, 8);
    set_str(L, "canonical_request", r->canonical_request);
    set_str(L, "string_to_sign", r->string_to_sign);
    set_str(L, "signature", r->signature);
    set_str(L, "authorization", r->authorization);
    set_str(L, "signed_headers", r->signed_headers);
    set_str(L, "scope", r->scope);
    set_str(L, "amz_date", r->amz_date);
    if (r->presigned_query)
        set_str(L, "presigned_query", r->presigned_query);
    lua_createtable(L, (int)r->nadded, 0);
    for (size_t i = 0; i < r->nadded; i++) {
        lua_createtable(L, 2, 0);
        lua_pushstring(L, r->added[i].name);
        lua_rawseti(L, -2, 1);
        lua_pushstring(L, r->added[i].value);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "added");
}

/* sign{method=, path=, query=, headers={{name, value},...}, body=, region=,
 *      service=, access_key=, secret_key=, session_token=, amz_date=, host=,
 *      normalize=, double_encode=, sign_body=, omit_session_token=,
 *      presign_expires=, signed_headers={lowercase names}}
 *   (signed_headers = verification mode; presign_expires = presigned URL)
 * -> {canonical_request=, string_to_sign=, signature=, authorization=,
 *     signed_headers=, scope=, amz_date=, presigned_query=,
 *     added={{name, value},...}} */
static int l_sign(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    ep_sigv4_request req;
    ep_sigv4_config cfg;
    memset(&req, 0, sizeof req);
    memset(&cfg, 0, sizeof cfg);
    read_fields(L, &req, &cfg);
    read_headers(L, &req);
    read_signed_headers(L, &cfg);

    /* The result lives in a userdata too; its __gc frees it after an error. */
    ep_sigv4_result *r = lua_newuserdatauv(L, sizeof *r, 0);
    memset(r, 0, sizeof *r);
    luaL_setmetatable(L, RESULT_MT);
    char err[256];
    if (ep_sigv4_sign(&req, &cfg, r, err, sizeof err) != 0)
        return luaL_error(L, "%s", err);
    push_result(L, r);
    ep_sigv4_result_free(r); /* now, not at GC time: it holds the signature */
    return 1;
}

/* ---- the prepared signer: prepare{...} -> signer; signer:sign(...) ---------- */

#define PREPARED_MT "ecsplay.core.sigv4.prepared"
#define STACK_HEADERS 24

/* The userdata: the signer, and the last epoch second formatted. Its user values 1 and
 * 2 hold the access key and secret of its last signing (references to the caller's
 * strings, never copies), so the next signing knows whether its signing key still holds. */
typedef struct prepared_ud {
    ep_sigv4_prepared *p;
    lua_Integer last_epoch;
    char last_date[17];
} prepared_ud;

static int prepared_gc(lua_State *L)
{
    prepared_ud *u = luaL_checkudata(L, 1, PREPARED_MT);
    ep_sigv4_prepared_free(u->p);
    u->p = NULL;
    return 0;
}

/* prepare{region=, service=, host=, path=, query=, normalize=, double_encode=,
 *         sign_body=, omit_session_token=} -> signer */
static int l_prepare(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    ep_sigv4_prepare_config c;
    memset(&c, 0, sizeof c);
    c.region = field_str(L, 1, "region", NULL, 1);
    c.service = field_str(L, 1, "service", NULL, 1);
    c.host = field_str(L, 1, "host", NULL, 0);
    c.path = field_str(L, 1, "path", NULL, 0);
    c.query = field_str(L, 1, "query", NULL, 0);
    c.normalize_path = field_bool(L, 1, "normalize", 1);
    c.double_encode = field_bool(L, 1, "double_encode", c.normalize_path);
    c.sign_body = field_bool(L, 1, "sign_body", 0);
    c.omit_session_token = field_bool(L, 1, "omit_session_token", 0);
    prepared_ud *u = lua_newuserdatauv(L, sizeof *u, 2);
    memset(u, 0, sizeof *u);
    u->last_epoch = -1;
    luaL_setmetatable(L, PREPARED_MT);
    char err[256];
    u->p = ep_sigv4_prepare(&c, err, sizeof err);
    if (!u->p)
        return luaL_error(L, "%s", err);
    return 1;
}

/* Days since 1970-01-01 -> civil date (proleptic Gregorian; H. Hinnant's algorithm). */
static void civil_from_days(long long z, long long *y, unsigned *m, unsigned *d)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (long long)yoe + era * 400 + (*m <= 2);
}

static void put_digits(char *p, unsigned long long v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
}

/* time: epoch seconds (integer or float, floored) or "YYYYMMDDTHHMMSSZ". */
static const char *signing_date(lua_State *L, prepared_ud *u, int idx, const char *fn)
{
    if (lua_type(L, idx) == LUA_TSTRING)
        return lua_tostring(L, idx); /* checked by the signer */
    int isnum = 0;
    lua_Number f = lua_tonumberx(L, idx, &isnum);
    if (!isnum)
        luaL_error(L, "%s: time is required (epoch seconds or \"YYYYMMDDTHHMMSSZ\"), got %s", fn,
                   luaL_typename(L, idx));
    if (!(f >= 0 && f < 253402300800.0))
        luaL_error(L, "%s: time is out of range", fn);
    lua_Integer t = lua_isinteger(L, idx) ? lua_tointeger(L, idx) : (lua_Integer)f;
    if (t != u->last_epoch) {
        long long y;
        unsigned mo, d;
        lua_Integer secs = t % 86400;
        civil_from_days((long long)(t / 86400), &y, &mo, &d);
        put_digits(u->last_date, (unsigned long long)y, 4);
        put_digits(u->last_date + 4, mo, 2);
        put_digits(u->last_date + 6, d, 2);
        u->last_date[8] = 'T';
        put_digits(u->last_date + 9, (unsigned long long)(secs / 3600), 2);
        put_digits(u->last_date + 11, (unsigned long long)(secs / 60 % 60), 2);
        put_digits(u->last_date + 13, (unsigned long long)(secs % 60), 2);
        u->last_date[15] = 'Z';
        u->last_date[16] = '\0';
        u->last_epoch = t;
    }
    return u->last_date;
}

static void header_pair_error(lua_State *L, lua_Integer i, const char *what)
{
    luaL_error(L, "sigv4 signer:sign: headers[%d] %s", (int)i, what);
}

/* A header value as a string on the stack top: strings as they are, integers in decimal. */
static void header_value(lua_State *L, int is_array, lua_Integer i)
{
    if (lua_type(L, -1) == LUA_TSTRING)
        return;
    if (lua_isinteger(L, -1)) {
        lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, -1));
        lua_replace(L, -2);
        return;
    }
    if (is_array)
        header_pair_error(L, i, "value must be a string or an integer");
    luaL_error(L, "sigv4 signer:sign: value of header %s must be a string or an integer, got %s",
               lua_tostring(L, -2), luaL_typename(L, -1));
}

/* The caller's headers (a map name -> value, or an array of {name, value}) as name,
 * value pairs pushed on the stack from `base` on. -> how many; *is_array. */
static size_t push_headers(lua_State *L, int t, int *is_array)
{
    *is_array = 0;
    if (lua_isnoneornil(L, t))
        return 0;
    if (!lua_istable(L, t))
        luaL_error(L, "sigv4 signer:sign: headers must be a table, got %s", luaL_typename(L, t));
    size_t n = 0;
    int first = lua_rawgeti(L, t, 1);
    lua_pop(L, 1);
    if (first != LUA_TNIL) {
        *is_array = 1;
        lua_Integer len = (lua_Integer)lua_rawlen(L, t);
        for (lua_Integer i = 1; i <= len; i++) {
            luaL_checkstack(L, 3, "sigv4: too many headers");
            if (lua_rawgeti(L, t, i) != LUA_TTABLE)
                header_pair_error(L, i, "must be a {name, value} pair");
            if (lua_rawgeti(L, -1, 1) != LUA_TSTRING)
                header_pair_error(L, i, "must be a {name, value} pair");
            lua_rawgeti(L, -2, 2);
            header_value(L, 1, i);
            lua_remove(L, -3);
            n++;
        }
        return n;
    }
    lua_pushnil(L);
    while (lua_next(L, t)) {
        luaL_checkstack(L, 4, "sigv4: too many headers");
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "sigv4 signer:sign: header keys must be header names (strings)");
        header_value(L, 0, 0);
        n++;
        lua_pushvalue(L, -2); /* name, value stay; the copy is the iteration's key */
    }
    return n;
}

static void set_pair(lua_State *L, int is_array, lua_Integer *n, const char *name, const char *v,
                     size_t vlen)
{
    if (is_array) {
        lua_createtable(L, 2, 0);
        lua_pushstring(L, name);
        lua_rawseti(L, -2, 1);
        lua_pushlstring(L, v, vlen);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, ++*n);
    } else {
        lua_pushlstring(L, v, vlen);
        lua_setfield(L, -2, name);
    }
}

/* The headers to send: the caller's but Authorization, then those the signer adds in
 * ep_sigv4_sign's order (Host, X-Amz-Security-Token, X-Amz-Date, x-amz-content-sha256,
 * Authorization). */
static void push_sent(lua_State *L, int base, size_t nh, int is_array, const ep_sigv4_signed *s,
                      const char *token)
{
    lua_createtable(L, is_array ? (int)nh + 5 : 0, is_array ? 0 : (int)nh + 5);
    lua_Integer n = 0;
    for (size_t i = 0; i < nh; i++) {
        size_t nlen;
        const char *name = lua_tolstring(L, base + 2 * (int)i, &nlen);
        if (ep_sigv4_name_eq(name, nlen, "authorization"))
            continue;
        if (is_array) {
            lua_createtable(L, 2, 0);
            lua_pushvalue(L, base + 2 * (int)i);
            lua_rawseti(L, -2, 1);
            lua_pushvalue(L, base + 2 * (int)i + 1);
            lua_rawseti(L, -2, 2);
            lua_rawseti(L, -2, ++n);
        } else {
            lua_pushvalue(L, base + 2 * (int)i);
            lua_pushvalue(L, base + 2 * (int)i + 1);
            lua_rawset(L, -3);
        }
    }
    if (s->add_host)
        set_pair(L, is_array, &n, "Host", s->host, strlen(s->host));
    if (s->add_token)
        set_pair(L, is_array, &n, "X-Amz-Security-Token", token, strlen(token));
    if (s->add_date)
        set_pair(L, is_array, &n, "X-Amz-Date", s->amz_date, 16);
    if (s->add_content_sha)
        set_pair(L, is_array, &n, "x-amz-content-sha256", s->body_hex, 64);
    set_pair(L, is_array, &n, "Authorization", s->authorization, strlen(s->authorization));
}

/* signer:sign(method, headers, body, time, access_key, secret_key [, session_token
 *   [, stages]]) -> headers to send [, {canonical_request=, string_to_sign=,
 *   signature=, authorization=} when stages] */
/* Signs with the signer u (its userdata at stack index uidx): the credentials at ak_idx,
 * sk_idx and token (NULL = none). The key of the signer's last signing is reused while
 * the access key and secret are the same strings (its user values 1 and 2). Raises with
 * `fn` in the message on failure. Shared by signer:sign and http.start (ep_sigv4_http_sign). */
static void sign_with(lua_State *L, prepared_ud *u, int uidx, const char *fn, const char *method,
                      const ep_sigv4_header *hs, size_t nh, const char *body, size_t body_len,
                      const char *date, int ak_idx, int sk_idx, const char *token,
                      ep_sigv4_signed *out)
{
    size_t secret_len = 0;
    /* the types first: lua_tolstring would turn a number into a string in place */
    if (lua_type(L, ak_idx) != LUA_TSTRING)
        luaL_error(L, "%s: the access key must be a string, got %s", fn, luaL_typename(L, ak_idx));
    if (lua_type(L, sk_idx) != LUA_TSTRING)
        luaL_error(L, "%s: the secret key must be a string, got %s", fn, luaL_typename(L, sk_idx));
    const char *ak = lua_tostring(L, ak_idx);
    const char *sk = lua_tolstring(L, sk_idx, &secret_len);
    lua_getiuservalue(L, uidx, 1);
    lua_getiuservalue(L, uidx, 2);
    int same = lua_rawequal(L, -2, ak_idx) && lua_rawequal(L, -1, sk_idx);
    lua_pop(L, 2);
    char err[256];
    if (ep_sigv4_sign_prepared(u->p, method, hs, nh, body, body_len, date, ak, sk, secret_len,
                               token, same, out, err, sizeof err) != 0)
        luaL_error(L, "%s (%s)", err, fn);
    if (!same) {
        lua_pushvalue(L, ak_idx);
        lua_setiuservalue(L, uidx, 1);
        lua_pushvalue(L, sk_idx);
        lua_setiuservalue(L, uidx, 2);
    }
}

void ep_sigv4_http_sign(lua_State *L, int idx, const char *method, const struct ep_sigv4_header *hs,
                        size_t nh, const char *body, size_t body_len, int time_idx, int ak_idx,
                        int sk_idx, int token_idx, struct ep_sigv4_signed *out)
{
    prepared_ud *u = luaL_testudata(L, idx, PREPARED_MT);
    if (!u)
        luaL_error(L, "http.start: field 'signer' must be a signer made by sigv4.prepare, got %s",
                   luaL_typename(L, idx));
    if (!u->p)
        luaL_error(L, "http.start: the signer was freed");
    const char *date = signing_date(L, u, time_idx, "http.start");
    const char *token = NULL;
    if (!lua_isnil(L, token_idx)) {
        if (lua_type(L, token_idx) != LUA_TSTRING)
            luaL_error(L, "http.start: field 'session_token' must be a string, got %s",
                       luaL_typename(L, token_idx));
        token = lua_tostring(L, token_idx);
        if (!*token)
            token = NULL;
    }
    sign_with(L, u, idx, "http.start", method, hs, nh, body, body_len, date, ak_idx, sk_idx, token,
              out);
}

static int l_prepared_sign(lua_State *L)
{
    prepared_ud *u = luaL_checkudata(L, 1, PREPARED_MT);
    if (!u->p)
        return luaL_error(L, "sigv4 signer:sign: the signer was freed");
    const char *method = luaL_checkstring(L, 2);
    size_t body_len = 0;
    const char *body = luaL_optlstring(L, 4, "", &body_len);
    const char *date = signing_date(L, u, 5, "sigv4 signer:sign");
    luaL_checkstring(L, 6);
    luaL_checkstring(L, 7);
    const char *token = luaL_optstring(L, 8, NULL);
    int stages = lua_toboolean(L, 9);
    if (token && !*token)
        token = NULL;
    lua_settop(L, 9);
    int base = lua_gettop(L) + 1, is_array;
    size_t nh = push_headers(L, 3, &is_array);
    ep_sigv4_header stack_hs[STACK_HEADERS];
    ep_sigv4_header *hs = stack_hs;
    if (nh > STACK_HEADERS)
        hs = lua_newuserdatauv(L, nh * sizeof *hs, 0); /* owned by Lua: no leak on error */
    for (size_t i = 0; i < nh; i++) {
        hs[i].name = lua_tolstring(L, base + 2 * (int)i, &hs[i].name_len);
        hs[i].value = lua_tolstring(L, base + 2 * (int)i + 1, &hs[i].value_len);
    }
    ep_sigv4_signed s;
    sign_with(L, u, 1, "sigv4 signer:sign", method, hs, nh, body, body_len, date, 6, 7, token, &s);
    push_sent(L, base, nh, is_array, &s, token);
    if (!stages)
        return 1;
    lua_createtable(L, 0, 4);
    set_str(L, "canonical_request", s.canonical_request);
    set_str(L, "string_to_sign", s.string_to_sign);
    set_str(L, "signature", s.signature);
    set_str(L, "authorization", s.authorization);
    return 2;
}

static const luaL_Reg prepared_methods[] = {
    {"sign", l_prepared_sign},
    {NULL, NULL},
};

static int l_canonical_path(lua_State *L)
{
    const char *p = luaL_checkstring(L, 1);
    int normalize = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
    int dbl = lua_isnoneornil(L, 3) ? normalize : lua_toboolean(L, 3);
    char *s = ep_sigv4_canonical_path(p, normalize, dbl);
    if (!s)
        return luaL_error(L, "sigv4.canonical_path: out of memory");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

static int l_canonical_query(lua_State *L)
{
    char *s = ep_sigv4_canonical_query(luaL_optstring(L, 1, ""));
    if (!s)
        return luaL_error(L, "sigv4.canonical_query: out of memory");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

static int l_canonical_header_value(lua_State *L)
{
    size_t len;
    const char *v = luaL_checklstring(L, 1, &len);
    char *s = ep_sigv4_canonical_header_value(v, len);
    if (!s)
        return luaL_error(L, "sigv4.canonical_header_value: out of memory");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

static int l_is_unsigned_header(lua_State *L)
{
    size_t len;
    const char *n = luaL_checklstring(L, 1, &len);
    lua_pushboolean(L, ep_sigv4_is_unsigned_header(n, len));
    return 1;
}

static int l_cache_clear(lua_State *L)
{
    (void)L;
    ep_sigv4_cache_clear();
    return 0;
}

static int l_cache_stats(lua_State *L)
{
    unsigned long h, m;
    ep_sigv4_cache_stats(&h, &m);
    lua_pushinteger(L, (lua_Integer)h);
    lua_pushinteger(L, (lua_Integer)m);
    return 2;
}

static const luaL_Reg sigv4_funcs[] = {
    {"sign", l_sign},
    {"prepare", l_prepare},
    {"canonical_path", l_canonical_path},
    {"canonical_query", l_canonical_query},
    {"canonical_header_value", l_canonical_header_value},
    {"is_unsigned_header", l_is_unsigned_header},
    {"cache_clear", l_cache_clear},
    {"cache_stats", l_cache_stats},
    {NULL, NULL},
};

int luaopen_ecsplay_core_sigv4(lua_State *L)
{
    if (luaL_newmetatable(L, RESULT_MT)) {
        lua_pushcfunction(L, result_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, PREPARED_MT)) {
        lua_pushcfunction(L, prepared_gc);
        lua_setfield(L, -2, "__gc");
        luaL_newlib(L, prepared_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, sigv4_funcs);
    return 1;
}
