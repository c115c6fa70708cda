/*
 * http_response.c: the response half of ecsplay.core.http (see http.c): libcurl's
 * callbacks that receive a response within its limits, and the completion table
 * that hands it, or what went wrong, to Lua.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "http.h"

/* ---------- receiving ---------- */

int ep_http_buf_reserve(struct ep_buf *b, size_t n)
{
    if (n > SIZE_MAX - b->len - 1)
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2) {
                cap = b->len + n + 1;
                break;
            }
            cap *= 2;
        }
        char *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    return 0;
}

int ep_http_buf_append(struct ep_buf *b, const char *p, size_t n)
{
    if (ep_http_buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

size_t ep_http_on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct ep_xfer *x = ud;
    size_t n = size * nmemb;
    if (n > x->max_size || x->body.len > x->max_size - n) {
        x->too_large = 1;
        return 0; /* any short count aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (ep_http_buf_append(&x->body, p, n) != 0) {
        x->oom = 1;
        return 0;
    }
    return n;
}

size_t ep_http_on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct ep_xfer *x = ud;
    size_t n = size * nmemb;
    /* A new status line starts a new header block (100 Continue, proxy CONNECT, ...):
     * only the final response's headers are reported. */
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0)
        x->raw_headers.len = 0;
    if (x->raw_headers.len + n > EP_HTTP_MAX_HEADER_BYTES) {
        x->headers_huge = 1;
        return 0;
    }
    if (ep_http_buf_append(&x->raw_headers, p, n) != 0) {
        x->oom = 1;
        return 0;
    }
    return n;
}

/* ---------- the completion table ---------- */

static const char *error_kind(struct ep_xfer *x)
{
    if (x->too_large || x->result == CURLE_FILESIZE_EXCEEDED)
        return "too_large";
    switch (x->result) {
    case CURLE_OPERATION_TIMEDOUT: return "timeout";
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return "connect";
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return "reset";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT: return "tls";
    default: return "other";
    }
}

/* The lowercase names a headers table has so far: only a name seen before needs a lookup
 * in the table (a duplicate to join). Past its room every name is looked up. */
struct seen_names {
    char buf[1024];
    size_t len;
    size_t off[32], nl[32];
    int n, full;
};

/* 1 when the name may already be in the table; else records it and returns 0. */
static int seen_before(struct seen_names *s, const char *name, size_t nl)
{
    for (int i = 0; i < s->n; i++)
        if (s->nl[i] == nl && memcmp(s->buf + s->off[i], name, nl) == 0)
            return 1;
    if (s->full || s->n == 32 || nl > sizeof s->buf - s->len) {
        s->full = 1;
        return 1;
    }
    memcpy(s->buf + s->len, name, nl);
    s->off[s->n] = s->len;
    s->nl[s->n++] = nl;
    s->len += nl;
    return 0;
}

/* headers table from the raw block: lowercase names, duplicates joined with ", ". */
static void push_headers(lua_State *L, const struct ep_buf *raw)
{
    /* sized at the count of header lines (all lines but the status line and the blank
     * one): no rehash, and no room left unused (a 16-node table costs twice an 8-node one) */
    const char *p = raw->data, *end = raw->data + raw->len;
    int lines = 0;
    for (const char *q = p; q && q < end && (q = memchr(q, '\n', (size_t)(end - q))); q++)
        lines++;
    lua_createtable(L, 0, lines > 2 ? lines - 2 : 0);
    int t = lua_gettop(L);
    if (!p)
        return;
    char name[256];
    size_t last_nl = 0; /* length of the last header name, for obsolete line folding */
    struct seen_names seen;
    seen.len = 0;
    seen.n = seen.full = 0;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        const char *le = eol;
        while (le > p && (le[-1] == '\r' || le[-1] == ' ' || le[-1] == '\t'))
            le--;
        if (le > p && (p[0] == ' ' || p[0] == '\t') && last_nl > 0) {
            const char *v = p;
            while (v < le && (*v == ' ' || *v == '\t'))
                v++;
            lua_pushlstring(L, name, last_nl);
            lua_rawget(L, t);
            lua_pushlstring(L, name, last_nl);
            lua_insert(L, -2);
            lua_pushliteral(L, " ");
            lua_pushlstring(L, v, (size_t)(le - v));
            lua_concat(L, 3);
            lua_rawset(L, t);
        } else {
            const char *colon = memchr(p, ':', (size_t)(le - p));
            if (colon && colon > p && (size_t)(colon - p) < sizeof name) {
                size_t nl = (size_t)(colon - p);
                for (size_t i = 0; i < nl; i++) {
                    char c = p[i]; /* ASCII only: tolower() follows the locale */
                    name[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
                }
                last_nl = nl;
                const char *v = colon + 1;
                while (v < le && (*v == ' ' || *v == '\t'))
                    v++;
                lua_pushlstring(L, name, nl); /* the key, made once: kept for rawset */
                if (!seen_before(&seen, name, nl)) {
                    lua_pushlstring(L, v, (size_t)(le - v));
                } else {
                    lua_pushvalue(L, -1);
                    if (lua_rawget(L, t) == LUA_TSTRING) {
                        lua_pushliteral(L, ", ");
                        lua_pushlstring(L, v, (size_t)(le - v));
                        lua_concat(L, 3);
                    } else {
                        lua_pop(L, 1);
                        lua_pushlstring(L, v, (size_t)(le - v));
                    }
                }
                lua_rawset(L, t);
            } else {
                last_nl = 0; /* status line or junk */
            }
        }
        p = eol + 1;
    }
}

void ep_http_push_completion(lua_State *L, struct ep_xfer *x)
{
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, x->id);
    lua_setfield(L, -2, "id");
    if (x->result == CURLE_OK) {
        long status = 0;
        ep_curl.easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
        lua_pushinteger(L, status);
        lua_setfield(L, -2, "status");
        push_headers(L, &x->raw_headers);
        lua_setfield(L, -2, "headers");
        if (x->body.data)
            lua_pushlstring(L, x->body.data, x->body.len);
        else
            lua_pushliteral(L, "");
        lua_setfield(L, -2, "body");
        return;
    }
    /* Failed: status 0, empty headers/body, so callers never act on a partial response. */
    lua_pushinteger(L, 0);
    lua_setfield(L, -2, "status");
    lua_newtable(L);
    lua_setfield(L, -2, "headers");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "body");
    const char *kind = error_kind(x);
    if (x->too_large)
        lua_pushfstring(L, "%s %s: response body exceeds max_size (%I bytes)", x->method, x->origin,
                        (lua_Integer)x->max_size);
    else if (x->headers_huge)
        lua_pushfstring(L, "%s %s: response headers exceed %d bytes", x->method, x->origin,
                        EP_HTTP_MAX_HEADER_BYTES);
    else if (x->oom)
        lua_pushfstring(L, "%s %s: out of memory while receiving the response", x->method,
                        x->origin);
    else
        lua_pushfstring(L, "%s %s: %s (curl error %d: %s)", x->method, x->origin,
                        x->errbuf[0] ? x->errbuf : ep_curl.easy_strerror(x->result), (int)x->result,
                        ep_curl.easy_strerror(x->result));
    lua_setfield(L, -2, "error");
    lua_pushstring(L, x->headers_huge ? "too_large" : kind);
    lua_setfield(L, -2, "kind");
}
