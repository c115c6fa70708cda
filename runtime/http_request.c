/*
 * http_request.c: the request table ecsplay.core.http's start() is given, read and checked
 * before anything is allocated (method, URL, body, timeouts, CA bundle), and its headers
 * as libcurl's list. The transfer itself is http.c's; its response, http_response.c's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>
#include <lua.h>

#include "crypto.h" /* ep_wipe */
#include "ep.h"     /* ep_sigv4_http_sign */
#include "http.h"
#include "sigv4.h" /* the signer's header list and answers */

/* RFC 7230's tchar: visible ASCII but the separators ()<>@,;:\"/[]?={}, as two 64-bit
 * masks (bit c of the pair): start() checks every character of every header name. */
static const uint64_t TCHAR_LO = 0x03ff6cfa00000000u, TCHAR_HI = 0x57ffffffc7fffffeu;

static int valid_token(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 128 || !((c < 64 ? TCHAR_LO >> c : TCHAR_HI >> (c - 64)) & 1u))
            return 0;
    }
    return 1;
}

static double opt_number(lua_State *L, int t, const char *field, double def)
{
    double v = def;
    if (lua_getfield(L, t, field) != LUA_TNIL) {
        if (!lua_isnumber(L, -1))
            luaL_error(L, "http.start: field '%s' must be a number, got %s", field,
                       luaL_typename(L, -1));
        v = lua_tonumber(L, -1);
        if (!(v > 0))
            luaL_error(L, "http.start: field '%s' must be > 0, got %f", field, v);
    }
    lua_pop(L, 1);
    return v;
}

/* Leaves the string on the stack (so the pointer stays valid) or pushes nil. */
static const char *opt_string(lua_State *L, int t, const char *field, size_t *len)
{
    int ty = lua_getfield(L, t, field);
    if (ty == LUA_TNIL) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (ty != LUA_TSTRING)
        luaL_error(L, "http.start: field '%s' must be a string, got %s", field,
                   luaL_typename(L, -1));
    return lua_tolstring(L, -1, len);
}

void ep_http_set_origin(struct ep_xfer *x, const char *url)
{
    const char *p = strstr(url, "://");
    size_t n = p ? (size_t)(p + 3 - url) : 0;
    if (p)
        while (url[n] && url[n] != '/' && url[n] != '?' && url[n] != '#')
            n++;
    if (n >= sizeof x->origin)
        n = sizeof x->origin - 1;
    /* Strip userinfo (user:password@) if somebody put it in the URL. */
    const char *at = memchr(url, '@', n);
    if (p && at) {
        size_t scheme = (size_t)(p + 3 - url);
        size_t rest = n - (size_t)(at + 1 - url);
        memcpy(x->origin, url, scheme);
        memcpy(x->origin + scheme, at + 1, rest);
        x->origin[scheme + rest] = '\0';
    } else {
        memcpy(x->origin, url, n);
        x->origin[n] = '\0';
    }
}

static void check_url(lua_State *L, const char *url, size_t url_len)
{
    if (!url)
        luaL_error(L, "http.start: field 'url' is required");
    if (strlen(url) != url_len ||
        (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
        luaL_error(L, "http.start: field 'url' must start with http:// or https://");
    for (size_t i = 0; i < url_len; i++)
        if ((unsigned char)url[i] <= 32 || url[i] == 127)
            luaL_error(L, "http.start: field 'url' contains whitespace or control characters");
}

/* AWS_CA_BUNDLE, read once: getenv walks the whole environment, on every request
 * otherwise, and a process's environment does not change under it. NULL when unset. */
static const char *env_ca_bundle(void)
{
    static int read;
    static const char *ca;
    if (!read) {
        const char *env = getenv("AWS_CA_BUNDLE");
        ca = env && *env ? env : NULL;
        read = 1;
    }
    return ca;
}

void ep_http_read_args(lua_State *L, struct ep_http_args *a)
{
    a->method = opt_string(L, 1, "method", &a->method_len); /* EP_HTTP_ARG_METHOD */
    a->url = opt_string(L, 1, "url", &a->url_len);          /* EP_HTTP_ARG_URL */
    a->body = opt_string(L, 1, "body", &a->body_len);       /* EP_HTTP_ARG_BODY */
    a->ca = opt_string(L, 1, "ca_bundle", NULL);            /* EP_HTTP_ARG_CA */
    if (!a->method) {
        a->method = "GET";
        a->method_len = 3;
    }
    if (!valid_token(a->method, a->method_len) || a->method_len >= 24)
        luaL_error(L, "http.start: field 'method' is not a valid HTTP method");
    check_url(L, a->url, a->url_len);
    a->timeout = opt_number(L, 1, "timeout", EP_HTTP_DEFAULT_TIMEOUT);
    a->connect_timeout = opt_number(L, 1, "connect_timeout", EP_HTTP_DEFAULT_CONNECT_TIMEOUT);
    a->max_size = opt_number(L, 1, "max_size", (double)EP_HTTP_DEFAULT_MAX_SIZE);
    lua_getfield(L, 1, "verbose");
    a->verbose = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!a->ca)
        a->ca = env_ca_bundle();
}

/* Pushes the headers table (slot EP_HTTP_ARG_HEADERS); returns whether there is one. */
int ep_http_get_headers(lua_State *L)
{
    int hty = lua_getfield(L, 1, "headers"); /* EP_HTTP_ARG_HEADERS */
    if (hty != LUA_TNIL && hty != LUA_TTABLE)
        luaL_error(L, "http.start: field 'headers' must be a table, got %s", luaL_typename(L, -1));
    return hty == LUA_TTABLE;
}

int ep_http_get_signing(lua_State *L)
{
    if (lua_getfield(L, 1, "signer") == LUA_TNIL) { /* EP_HTTP_ARG_SIGNER */
        if (lua_getfield(L, 1, "unsigned_headers") != LUA_TNIL)
            luaL_error(L, "http.start: field 'unsigned_headers' is for a request signed here "
                          "(signer=); put the headers of an unsigned request in 'headers'");
        lua_pop(L, 1);
        return 0;
    }
    lua_getfield(L, 1, "sign_time");                 /* EP_HTTP_ARG_SIGN_TIME */
    lua_getfield(L, 1, "access_key");                /* EP_HTTP_ARG_ACCESS_KEY */
    lua_getfield(L, 1, "secret_key");                /* EP_HTTP_ARG_SECRET_KEY */
    lua_getfield(L, 1, "session_token");             /* EP_HTTP_ARG_SESSION_TOKEN */
    int ty = lua_getfield(L, 1, "unsigned_headers"); /* EP_HTTP_ARG_UNSIGNED */
    if (ty != LUA_TNIL && ty != LUA_TTABLE)
        luaL_error(L, "http.start: field 'unsigned_headers' must be a table, got %s",
                   luaL_typename(L, -1));
    return 1;
}

/* The header at the top of a lua_next walk (value at -1, name at -2), checked: NULL and
 * *why set when it is not fit to send. */
static const char *check_header(lua_State *L, const char **v, size_t *nl, size_t *vl,
                                const char **why)
{
    if (lua_type(L, -2) != LUA_TSTRING) {
        *why = "header names must be strings";
        return NULL;
    }
    const char *name = lua_tolstring(L, -2, nl);
    if (!valid_token(name, *nl)) {
        *why = "header name '%s' is not a valid token";
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
        *why = "header '%s' must be a string or number";
        return NULL;
    }
    /* lua_tolstring on a number value (not the key) is safe during lua_next. */
    *v = lua_tolstring(L, -1, vl);
    /* never echo the value: it may be a credential */
    if (memchr(*v, '\r', *vl) || memchr(*v, '\n', *vl) || memchr(*v, '\0', *vl)) {
        *why = "header '%s' value contains CR, LF or NUL";
        return NULL;
    }
    return name;
}

/* Appends the line "Name: value" and its NUL to x->req_lines; 0 or -1 (ENOMEM). */
static int append_header(struct ep_xfer *x, const char *name, size_t nl, const char *v, size_t vl)
{
    struct ep_buf *b = &x->req_lines;
    if (nl > SIZE_MAX / 4 || vl > SIZE_MAX / 4 || ep_http_buf_reserve(b, nl + vl + 4) != 0)
        return -1;
    char *d = b->data + b->len;
    memcpy(d, name, nl);
    /* "Name;" is curl's syntax for an empty-valued header ("Name:" would remove it). */
    size_t n = nl;
    if (vl == 0) {
        d[n++] = ';';
    } else {
        d[n++] = ':';
        d[n++] = ' ';
        memcpy(d + n, v, vl);
        n += vl;
    }
    d[n++] = '\0';
    b->len += n;
    x->n_req_lines++;
    return 0;
}

/* libcurl's list over x->req_lines, once every line is in (the buffer no longer moves). */
static int link_header_list(struct ep_xfer *x)
{
    size_t n = x->n_req_lines;
    struct curl_slist *nodes = calloc(n ? n : 1, sizeof *nodes);
    if (!nodes)
        return -1;
    char *line = x->req_lines.data;
    for (size_t i = 0; i < n; i++) {
        nodes[i].data = line;
        nodes[i].next = i + 1 < n ? &nodes[i + 1] : NULL;
        line += strlen(line) + 1;
    }
    x->req_headers = nodes;
    return 0;
}

/* The request's header lines so far, as the signer reads them: views into x->req_lines
 * ("Name: value" or "Name;" for an empty value, each ending in a NUL). */
static void lines_as_headers(const struct ep_xfer *x, ep_sigv4_header *hs)
{
    const char *line = x->req_lines.data;
    for (size_t i = 0; i < x->n_req_lines; i++) {
        size_t len = strlen(line), nl = strcspn(line, ":;");
        hs[i].name = line;
        hs[i].name_len = nl;
        hs[i].value = line[nl] == ':' ? line + nl + 2 : line + nl + 1;
        hs[i].value_len = line[nl] == ':' ? len - nl - 2 : 0;
        line += len + 1;
    }
}

/* The lines the signer asks for, in its order: Host, X-Amz-Security-Token, X-Amz-Date,
 * x-amz-content-sha256 when the request lacks them, and Authorization. 0 or -1 (ENOMEM). */
static int append_signed(struct ep_xfer *x, const ep_sigv4_signed *s, const char *token, size_t tl)
{
    if (s->add_host && append_header(x, "Host", 4, s->host, strlen(s->host)) != 0)
        return -1;
    if (s->add_token && append_header(x, "X-Amz-Security-Token", 20, token, tl) != 0)
        return -1;
    if (s->add_date && append_header(x, "X-Amz-Date", 10, s->amz_date, 16) != 0)
        return -1;
    if (s->add_content_sha && append_header(x, "x-amz-content-sha256", 20, s->body_hex, 64) != 0)
        return -1;
    return append_header(x, "Authorization", 13, s->authorization, strlen(s->authorization));
}

/* Signs the request as its header lines stand, with start's signer and credentials
 * (a Lua error on bad input), then adds the lines the signer asks for, in its order:
 * Host, X-Amz-Security-Token, X-Amz-Date, x-amz-content-sha256 when the request lacks
 * them, and Authorization. The signature exists only in x->req_lines, wiped when the
 * transfer is freed: never in a Lua string (the token's line is wiped too; the token itself
 * came in as one). 0 or -1 (ENOMEM). */
static int sign_lines(lua_State *L, struct ep_xfer *x, const struct ep_http_args *a)
{
    size_t n = x->n_req_lines;
    ep_sigv4_header stack_hs[16];
    ep_sigv4_header *hs = n <= 16 ? stack_hs : lua_newuserdatauv(L, n * sizeof *hs, 0);
    lines_as_headers(x, hs);
    for (size_t i = 0; i < n; i++)
        if (ep_sigv4_name_eq(hs[i].name, hs[i].name_len, "authorization"))
            luaL_error(L, "http.start: a request signed here must not carry an Authorization "
                          "header");
    size_t tl = 0;
    const char *token = lua_tolstring(L, EP_HTTP_ARG_SESSION_TOKEN, &tl);
    if (token && (memchr(token, '\r', tl) || memchr(token, '\n', tl) || memchr(token, '\0', tl)))
        luaL_error(L, "http.start: field 'session_token' contains CR, LF or NUL");
    ep_sigv4_signed s;
    ep_sigv4_http_sign(L, EP_HTTP_ARG_SIGNER, x->method, hs, n, a->body ? a->body : "", a->body_len,
                       EP_HTTP_ARG_SIGN_TIME, EP_HTTP_ARG_ACCESS_KEY, EP_HTTP_ARG_SECRET_KEY,
                       EP_HTTP_ARG_SESSION_TOKEN, &s);
    int rc = append_signed(x, &s, token, tl);
    ep_wipe(&s, sizeof s); /* the signature is in the header buffer now, wiped with it */
    return rc;
}

/* 1 when a header line named name[0..nl) is already in x's lines (any case). */
static int has_line(const struct ep_xfer *x, const char *name, size_t nl)
{
    const char *line = x->req_lines.data;
    for (size_t i = 0; i < x->n_req_lines; i++) {
        size_t len = strlen(line);
        if (len > nl && (line[nl] == ':' || line[nl] == ';') && strncasecmp(line, name, nl) == 0)
            return 1;
        line += len + 1;
    }
    return 0;
}

/* The request headers, checked, as curl's list: 0, -1 (ENOMEM) or 1 when a header is not
 * fit to send (*why: the message, with a %s for the header's name, left on the stack). */
/* Appends the headers table at stack index t, each header checked: 0, -1 (ENOMEM) or 1
 * (*why set, the header's name left on the stack), as ep_http_build_header_list. */
static int append_table(lua_State *L, struct ep_xfer *x, int t, int fresh_names, const char **why)
{
    lua_pushnil(L);
    while (lua_next(L, t)) {
        size_t nl = 0, vl = 0;
        const char *v = NULL;
        const char *name = check_header(L, &v, &nl, &vl, why);
        if (!name || (fresh_names && has_line(x, name, nl))) {
            if (name)
                *why = "unsigned header '%s' is already among the signed ones";
            lua_pop(L, 1); /* the name stays on top for the message */
            return 1;
        }
        if (append_header(x, name, nl, v, vl) != 0) {
            lua_pop(L, 2);
            return -1;
        }
        lua_pop(L, 1);
    }
    return 0;
}

int ep_http_build_header_list(lua_State *L, struct ep_xfer *x, const struct ep_http_args *a,
                              const char **why)
{
    int rc = a->has_headers ? append_table(L, x, EP_HTTP_ARG_HEADERS, 0, why) : 0;
    if (rc != 0)
        return rc;
    if (a->sign && sign_lines(L, x, a) != 0)
        return -1;
    /* sent as they are, never signed (a simulator's hints, such as x-ecsplay-client) */
    if (a->sign && lua_istable(L, EP_HTTP_ARG_UNSIGNED) &&
        (rc = append_table(L, x, EP_HTTP_ARG_UNSIGNED, 1, why)) != 0)
        return rc;
    /* Expect: 100-continue costs a round trip (or a 1 s stall) per POST. */
    if (append_header(x, "Expect", 6, "", 0) != 0)
        return -1;
    x->req_lines.data[x->req_lines.len - 2] = ':'; /* "Expect:" removes the header */
    return link_header_list(x);
}
