/* sigv4_lua.c: the Lua face of the signer, ecsplay.core.sigv4 (the signer
 * itself is sigv4.c; policy such as URL parsing, time formatting and argument
 * checking lives in stdlib-lua/ecsplay/aws/sigv4.lua).
 *
 *   sign{...} -> {canonical_request=, string_to_sign=, signature=, ...}
 *   canonical_path(path [, normalize [, double_encode]]) -> string
 *   canonical_query(query) -> string
 *   canonical_header_value(value) -> string
 *   is_unsigned_header(name) -> boolean
 *   cache_clear()              cache_stats() -> hits, misses */
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
    luaL_newlib(L, sigv4_funcs);
    return 1;
}
