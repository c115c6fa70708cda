/*
 * ecsplay.core.http: asynchronous HTTP(S) on one libcurl multi handle per lua_State.
 *
 * Mechanism only: Lua (sched.lua) decides when to poll and what to do with completions.
 *   start(req) -> id          poll(timeout_s) -> {completion...}
 *   cancel(id) -> bool        pending() -> integer
 *
 * Ownership: every transfer (struct ep_xfer) belongs to the per-state struct ep_http, which
 * lives in a full userdata whose __gc frees everything. A transfer is freed when its
 * completion table has been fully built for Lua, when it is cancelled, or at __gc.
 * A Lua error can only interrupt us between these points, never leak.
 */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "ep.h" /* luaopen_ecsplay_core_http, ep_signal_fd (sched.c's self-pipe) */
#include "netlib.h" /* libcurl, dlopen'ed on first use: every call goes through ep_curl */

#define EP_HTTP_MT "ecsplay.core.http.state"
#define EP_HTTP_DEFAULT_TIMEOUT 60.0
#define EP_HTTP_DEFAULT_CONNECT_TIMEOUT 10.0
#define EP_HTTP_DEFAULT_MAX_SIZE ((lua_Integer)64 * 1024 * 1024)
/* Response headers are not bounded by max_size; a server streaming endless headers must
 * still be stopped. */
#define EP_HTTP_MAX_HEADER_BYTES (256 * 1024)

enum ep_xfer_state { XFER_SETUP, XFER_RUNNING, XFER_DONE };

struct ep_buf {
    char *data;
    size_t len, cap;
};

struct ep_xfer {
    struct ep_xfer *next;
    lua_Integer id;
    enum ep_xfer_state state;
    CURL *easy;
    struct curl_slist *req_headers;
    struct ep_buf body;
    struct ep_buf raw_headers; /* header lines of the final response, CRLF kept */
    size_t max_size;
    int too_large;    /* body exceeded max_size */
    int headers_huge; /* header block exceeded EP_HTTP_MAX_HEADER_BYTES */
    int oom;
    CURLcode result;
    char method[24];
    char origin[160]; /* scheme://host[:port] only: safe to put in error messages */
    char errbuf[CURL_ERROR_SIZE];
};

struct ep_http {
    CURLM *multi;
    CURLSH *share;
    struct ep_xfer *active; /* SETUP and RUNNING */
    struct ep_xfer *done_head, *done_tail;
    lua_Integer next_id;
    int global_inited;
};

/* ---------- buffers ---------- */

static int buf_append(struct ep_buf *b, const char *p, size_t n)
{
    if (n > SIZE_MAX - b->len - 1) return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2) { cap = b->len + n + 1; break; }
            cap *= 2;
        }
        char *d = realloc(b->data, cap);
        if (!d) return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static void buf_free(struct ep_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---------- transfer lifecycle ---------- */

static void xfer_free(struct ep_http *h, struct ep_xfer *x)
{
    if (x->easy) {
        if (x->state == XFER_RUNNING && h->multi) ep_curl.multi_remove_handle(h->multi, x->easy);
        ep_curl.easy_cleanup(x->easy);
    }
    ep_curl.slist_free_all(x->req_headers);
    buf_free(&x->body);
    buf_free(&x->raw_headers);
    free(x);
}

/* Unlink x from whichever list holds it (it is in exactly one). */
static void xfer_unlink(struct ep_http *h, struct ep_xfer *x)
{
    struct ep_xfer **pp;
    for (pp = &h->active; *pp; pp = &(*pp)->next)
        if (*pp == x) { *pp = x->next; x->next = NULL; return; }
    struct ep_xfer *prev = NULL;
    for (pp = &h->done_head; *pp; prev = *pp, pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            if (h->done_tail == x) h->done_tail = prev;
            x->next = NULL;
            return;
        }
}

/* A start() interrupted by a Lua error leaves a SETUP transfer behind; sweep those. */
static void sweep_setup(struct ep_http *h)
{
    struct ep_xfer **pp = &h->active;
    while (*pp) {
        struct ep_xfer *x = *pp;
        if (x->state == XFER_SETUP) {
            *pp = x->next;
            xfer_free(h, x);
        } else {
            pp = &x->next;
        }
    }
}

static void http_close(struct ep_http *h)
{
    while (h->active) {
        struct ep_xfer *x = h->active;
        h->active = x->next;
        xfer_free(h, x);
    }
    while (h->done_head) {
        struct ep_xfer *x = h->done_head;
        h->done_head = x->next;
        xfer_free(h, x);
    }
    h->done_tail = NULL;
    if (h->multi) { ep_curl.multi_cleanup(h->multi); h->multi = NULL; }
    /* The share can only go once no easy handle references it. */
    if (h->share) { ep_curl.share_cleanup(h->share); h->share = NULL; }
    if (h->global_inited) { ep_curl.global_cleanup(); h->global_inited = 0; }
}

static int http_gc(lua_State *L)
{
    http_close(luaL_checkudata(L, 1, EP_HTTP_MT));
    return 0;
}

static struct ep_http *get_state(lua_State *L)
{
    struct ep_http *h = lua_touserdata(L, lua_upvalueindex(1));
    if (!h || !h->multi) luaL_error(L, "ecsplay.core.http: state already closed");
    return h;
}

/* ---------- libcurl callbacks ---------- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct ep_xfer *x = ud;
    size_t n = size * nmemb;
    if (n > x->max_size || x->body.len > x->max_size - n) {
        x->too_large = 1;
        return 0; /* any short count aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (buf_append(&x->body, p, n) != 0) { x->oom = 1; return 0; }
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct ep_xfer *x = ud;
    size_t n = size * nmemb;
    /* A new status line starts a new header block (100 Continue, proxy CONNECT, ...):
     * only the final response's headers are reported. */
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) x->raw_headers.len = 0;
    if (x->raw_headers.len + n > EP_HTTP_MAX_HEADER_BYTES) { x->headers_huge = 1; return 0; }
    if (buf_append(&x->raw_headers, p, n) != 0) { x->oom = 1; return 0; }
    return n;
}

/* verbose=true output goes through here so credentials never reach stderr. */
static int on_debug(CURL *easy, curl_infotype type, char *data, size_t size, void *ud)
{
    (void)easy; (void)ud;
    if (type != CURLINFO_TEXT && type != CURLINFO_HEADER_IN && type != CURLINFO_HEADER_OUT)
        return 0;
    const char *tag = type == CURLINFO_TEXT ? "*" : type == CURLINFO_HEADER_IN ? "<" : ">";
    size_t i = 0;
    while (i < size) {
        size_t j = i;
        while (j < size && data[j] != '\n') j++;
        size_t len = j - i;
        while (len > 0 && (data[i + len - 1] == '\r')) len--;
        const char *line = data + i;
        static const char *const secret[] = {"authorization:", "x-amz-security-token:",
                                             "proxy-authorization:", "cookie:", NULL};
        int redact = 0;
        for (int k = 0; secret[k]; k++) {
            size_t sl = strlen(secret[k]);
            if (len >= sl && strncasecmp(line, secret[k], sl) == 0) {
                fprintf(stderr, "curl %s %.*s <redacted>\n", tag, (int)(sl - 1), line);
                redact = 1;
                break;
            }
        }
        if (!redact && len > 0) fprintf(stderr, "curl %s %.*s\n", tag, (int)len, line);
        i = j + 1;
    }
    return 0;
}

/* ---------- start ---------- */

static int valid_token(const char *s, size_t n)
{
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"/[]?={}", c)) return 0;
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
    if (ty == LUA_TNIL) { if (len) *len = 0; return NULL; }
    if (ty != LUA_TSTRING)
        luaL_error(L, "http.start: field '%s' must be a string, got %s", field,
                   luaL_typename(L, -1));
    return lua_tolstring(L, -1, len);
}

static long to_ms(double seconds)
{
    double ms = seconds * 1000.0;
    if (ms > 2147483647.0) return 2147483647L;
    if (ms < 1.0) return 1L;
    return (long)ms;
}

static void set_origin(struct ep_xfer *x, const char *url)
{
    const char *p = strstr(url, "://");
    size_t n = p ? (size_t)(p + 3 - url) : 0;
    if (p) while (url[n] && url[n] != '/' && url[n] != '?' && url[n] != '#') n++;
    if (n >= sizeof x->origin) n = sizeof x->origin - 1;
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

static int l_start(lua_State *L)
{
    struct ep_http *h = get_state(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    sweep_setup(h);

    size_t method_len, url_len, body_len;
    const char *method = opt_string(L, 1, "method", &method_len);     /* idx 2 */
    const char *url = opt_string(L, 1, "url", &url_len);              /* idx 3 */
    const char *body = opt_string(L, 1, "body", &body_len);           /* idx 4 */
    const char *ca = opt_string(L, 1, "ca_bundle", NULL);             /* idx 5 */
    if (!method) { method = "GET"; method_len = 3; }
    if (!valid_token(method, method_len) || method_len >= 24)
        return luaL_error(L, "http.start: field 'method' is not a valid HTTP method");
    if (!url) return luaL_error(L, "http.start: field 'url' is required");
    if (strlen(url) != url_len || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
        return luaL_error(L, "http.start: field 'url' must start with http:// or https://");
    for (size_t i = 0; i < url_len; i++)
        if ((unsigned char)url[i] <= 32 || url[i] == 127)
            return luaL_error(L, "http.start: field 'url' contains whitespace or control characters");
    double timeout = opt_number(L, 1, "timeout", EP_HTTP_DEFAULT_TIMEOUT);
    double ctimeout = opt_number(L, 1, "connect_timeout", EP_HTTP_DEFAULT_CONNECT_TIMEOUT);
    double max_size = opt_number(L, 1, "max_size", (double)EP_HTTP_DEFAULT_MAX_SIZE);
    lua_getfield(L, 1, "verbose");
    int verbose = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!ca) {
        const char *env = getenv("AWS_CA_BUNDLE");
        if (env && *env) ca = env;
    }

    /* Validate headers before allocating anything curl-side. */
    int hty = lua_getfield(L, 1, "headers"); /* idx 6 */
    if (hty != LUA_TNIL && hty != LUA_TTABLE)
        return luaL_error(L, "http.start: field 'headers' must be a table, got %s",
                          luaL_typename(L, -1));
    if (hty == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, 6)) {
            size_t nl, vl;
            if (lua_type(L, -2) != LUA_TSTRING)
                return luaL_error(L, "http.start: header names must be strings");
            const char *name = lua_tolstring(L, -2, &nl);
            if (!valid_token(name, nl))
                return luaL_error(L, "http.start: header name '%s' is not a valid token", name);
            if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
                return luaL_error(L, "http.start: header '%s' must be a string or number", name);
            /* lua_tolstring on a number value (not the key) is safe during lua_next. */
            const char *v = lua_tolstring(L, -1, &vl);
            for (size_t i = 0; i < vl; i++)
                if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0')
                    /* never echo the value: it may be a credential */
                    return luaL_error(L, "http.start: header '%s' value contains CR, LF or NUL", name);
            lua_pop(L, 1);
        }
    }

    /* From here on only C work; the transfer is owned by h->active from the first line. */
    struct ep_xfer *x = calloc(1, sizeof *x);
    if (!x) return luaL_error(L, "http.start: out of memory");
    x->state = XFER_SETUP;
    x->next = h->active;
    h->active = x;
    x->id = ++h->next_id;
    x->max_size = max_size >= 9.0e18 ? SIZE_MAX : (size_t)max_size;
    memcpy(x->method, method, method_len);
    x->method[method_len] = '\0';
    set_origin(x, url);

    int ok = 1;
    if (hty == LUA_TTABLE) {
        lua_pushnil(L);
        while (ok && lua_next(L, 6)) {
            size_t nl, vl;
            const char *name = lua_tolstring(L, -2, &nl);
            const char *v = lua_tolstring(L, -1, &vl);
            /* "Name;" is curl's syntax for an empty-valued header ("Name:" would remove it). */
            size_t cap = nl + vl + 4;
            char *line = malloc(cap);
            if (!line) { ok = 0; lua_pop(L, 2); break; }
            if (vl == 0) snprintf(line, cap, "%s;", name);
            else snprintf(line, cap, "%s: %s", name, v);
            struct curl_slist *s = ep_curl.slist_append(x->req_headers, line);
            memset(line, 0, cap); /* header values may be credentials */
            free(line);
            if (!s) { ok = 0; lua_pop(L, 2); break; }
            x->req_headers = s;
            lua_pop(L, 1);
        }
    }
    if (ok) {
        /* Expect: 100-continue costs a round trip (or a 1 s stall) per POST. */
        struct curl_slist *s = ep_curl.slist_append(x->req_headers, "Expect:");
        if (s) x->req_headers = s; else ok = 0;
    }
    if (ok) ok = (x->easy = ep_curl.easy_init()) != NULL;
    if (!ok) {
        xfer_unlink(h, x);
        xfer_free(h, x);
        return luaL_error(L, "http.start: out of memory");
    }

    CURL *e = x->easy;
    CURLcode rc = CURLE_OK;
#define SETOPT(opt, val) do { if (rc == CURLE_OK) rc = ep_curl.easy_setopt(e, opt, val); } while (0)
    SETOPT(CURLOPT_URL, url);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_SHARE, h->share);
    SETOPT(CURLOPT_PRIVATE, (void *)x);
    SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, (void *)x);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, (void *)x);
    SETOPT(CURLOPT_HTTPHEADER, x->req_headers);
    SETOPT(CURLOPT_TIMEOUT_MS, to_ms(timeout));
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, to_ms(ctimeout));
    SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)(max_size >= 9.0e18 ? 0 : (curl_off_t)max_size));
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    if (ca) SETOPT(CURLOPT_CAINFO, ca);
    if (verbose) {
        SETOPT(CURLOPT_DEBUGFUNCTION, on_debug);
        SETOPT(CURLOPT_VERBOSE, 1L);
    }
    if (strcmp(x->method, "HEAD") == 0) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else if (strcmp(x->method, "GET") == 0 && !body) {
        SETOPT(CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(x->method, "POST") != 0) SETOPT(CURLOPT_CUSTOMREQUEST, x->method);
        if (body || strcmp(x->method, "POST") == 0 || strcmp(x->method, "PUT") == 0 ||
            strcmp(x->method, "PATCH") == 0) {
            SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            SETOPT(CURLOPT_COPYPOSTFIELDS, body ? body : "");
        }
    }
#undef SETOPT
    if (rc != CURLE_OK) {
        xfer_unlink(h, x);
        xfer_free(h, x);
        return luaL_error(L, "http.start: cannot configure transfer: %s", ep_curl.easy_strerror(rc));
    }
    CURLMcode mrc = ep_curl.multi_add_handle(h->multi, e);
    if (mrc != CURLM_OK) {
        xfer_unlink(h, x);
        xfer_free(h, x);
        return luaL_error(L, "http.start: cannot add transfer: %s", ep_curl.multi_strerror(mrc));
    }
    x->state = XFER_RUNNING;
    lua_pushinteger(L, x->id);
    return 1;
}

/* ---------- poll ---------- */

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int signal_pending(void)
{
    int fd = ep_signal_fd();
    if (fd < 0) return 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP));
}

/* Moves finished transfers from the multi handle onto the done queue (in completion order). */
static void harvest(struct ep_http *h)
{
    int left;
    ep_curl.multi_perform(h->multi, &left);
    CURLMsg *m;
    while ((m = ep_curl.multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        struct ep_xfer *x = NULL;
        ep_curl.easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode result = m->data.result; /* m is invalid after remove_handle */
        ep_curl.multi_remove_handle(h->multi, m->easy_handle);
        if (!x) continue;
        x->result = result;
        xfer_unlink(h, x);
        x->state = XFER_DONE;
        if (h->done_tail) h->done_tail->next = x; else h->done_head = x;
        h->done_tail = x;
    }
}

static const char *error_kind(struct ep_xfer *x)
{
    if (x->too_large || x->result == CURLE_FILESIZE_EXCEEDED) return "too_large";
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

/* headers table from the raw block: lowercase names, duplicates joined with ", ". */
static void push_headers(lua_State *L, const struct ep_buf *raw)
{
    lua_newtable(L);
    int t = lua_gettop(L);
    const char *p = raw->data, *end = raw->data + raw->len;
    if (!p) return;
    char name[256];
    size_t last_nl = 0; /* length of the last header name, for obsolete line folding */
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        const char *le = eol;
        while (le > p && (le[-1] == '\r' || le[-1] == ' ' || le[-1] == '\t')) le--;
        if (le > p && (p[0] == ' ' || p[0] == '\t') && last_nl > 0) {
            const char *v = p;
            while (v < le && (*v == ' ' || *v == '\t')) v++;
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
                for (size_t i = 0; i < nl; i++) name[i] = (char)tolower((unsigned char)p[i]);
                last_nl = nl;
                const char *v = colon + 1;
                while (v < le && (*v == ' ' || *v == '\t')) v++;
                lua_pushlstring(L, name, nl);
                if (lua_rawget(L, t) == LUA_TSTRING) {
                    lua_pushliteral(L, ", ");
                    lua_pushlstring(L, v, (size_t)(le - v));
                    lua_concat(L, 3);
                } else {
                    lua_pop(L, 1);
                    lua_pushlstring(L, v, (size_t)(le - v));
                }
                lua_pushlstring(L, name, nl);
                lua_insert(L, -2);
                lua_rawset(L, t);
            } else {
                last_nl = 0; /* status line or junk */
            }
        }
        p = eol + 1;
    }
}

static void push_completion(lua_State *L, struct ep_xfer *x)
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
        if (x->body.data) lua_pushlstring(L, x->body.data, x->body.len);
        else lua_pushliteral(L, "");
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
        lua_pushfstring(L, "%s %s: response body exceeds max_size (%I bytes)", x->method,
                        x->origin, (lua_Integer)x->max_size);
    else if (x->headers_huge)
        lua_pushfstring(L, "%s %s: response headers exceed %d bytes", x->method, x->origin,
                        EP_HTTP_MAX_HEADER_BYTES);
    else if (x->oom)
        lua_pushfstring(L, "%s %s: out of memory while receiving the response", x->method,
                        x->origin);
    else
        lua_pushfstring(L, "%s %s: %s (curl error %d: %s)", x->method, x->origin,
                        x->errbuf[0] ? x->errbuf : ep_curl.easy_strerror(x->result),
                        (int)x->result, ep_curl.easy_strerror(x->result));
    lua_setfield(L, -2, "error");
    lua_pushstring(L, x->headers_huge ? "too_large" : kind);
    lua_setfield(L, -2, "kind");
}

static int l_poll(lua_State *L)
{
    struct ep_http *h = get_state(L);
    double timeout = luaL_optnumber(L, 1, 0.0);
    if (timeout != timeout || timeout < 0) timeout = 0; /* NaN or negative: do not block */
    double deadline = now_mono() + timeout;

    harvest(h);
    if (!h->done_head && timeout > 0 && !signal_pending()) {
        int sfd = ep_signal_fd();
        for (;;) {
            double remain = deadline - now_mono();
            if (remain <= 0) break;
            double ms = remain * 1000.0 + 0.999; /* round up: never spin on 0 ms */
            struct curl_waitfd wfd = {.fd = sfd, .events = CURL_WAIT_POLLIN, .revents = 0};
            CURLMcode mrc = ep_curl.multi_poll(h->multi, sfd >= 0 ? &wfd : NULL, sfd >= 0 ? 1 : 0,
                                            ms > 2147483647.0 ? 2147483647 : (int)ms, NULL);
            if (mrc != CURLM_OK)
                return luaL_error(L, "http.poll: curl_multi_poll failed: %s", ep_curl.multi_strerror(mrc));
            harvest(h);
            if (h->done_head) break;
            if (sfd >= 0 && (wfd.revents & (CURL_WAIT_POLLIN | POLLHUP))) break;
        }
    }

    lua_newtable(L);
    lua_Integer n = 0;
    while (h->done_head) {
        struct ep_xfer *x = h->done_head;
        push_completion(L, x); /* may raise: x is still queued and will be reported next time */
        lua_rawseti(L, -2, ++n);
        h->done_head = x->next;
        if (!h->done_head) h->done_tail = NULL;
        x->next = NULL;
        xfer_free(h, x);
    }
    return 1;
}

static int l_cancel(lua_State *L)
{
    struct ep_http *h = get_state(L);
    lua_Integer id = luaL_checkinteger(L, 1);
    struct ep_xfer *lists[2] = {h->active, h->done_head};
    for (int i = 0; i < 2; i++)
        for (struct ep_xfer *x = lists[i]; x; x = x->next)
            if (x->id == id && x->state != XFER_SETUP) {
                xfer_unlink(h, x);
                xfer_free(h, x);
                lua_pushboolean(L, 1);
                return 1;
            }
    lua_pushboolean(L, 0);
    return 1;
}

static int l_pending(lua_State *L)
{
    struct ep_http *h = get_state(L);
    lua_Integer n = 0;
    for (struct ep_xfer *x = h->active; x; x = x->next)
        if (x->state == XFER_RUNNING) n++;
    for (struct ep_xfer *x = h->done_head; x; x = x->next) n++;
    lua_pushinteger(L, n);
    return 1;
}

static const luaL_Reg http_funcs[] = {
    {"start", l_start},
    {"poll", l_poll},
    {"cancel", l_cancel},
    {"pending", l_pending},
    {NULL, NULL},
};

int luaopen_ecsplay_core_http(lua_State *L)
{
    /* libcurl is loaded here, not at program start (see netlib.h); a failure is an
     * ordinary Lua error from require. */
    char err[512];
    if (ep_curl_load(err, sizeof err) != 0) return luaL_error(L, "ecsplay.core.http: %s", err);
    /* One state per lua_State: reuse it if the module is opened twice. */
    if (lua_getfield(L, LUA_REGISTRYINDEX, EP_HTTP_MT ".instance") != LUA_TUSERDATA) {
        lua_pop(L, 1);
        struct ep_http *h = lua_newuserdatauv(L, sizeof *h, 0);
        memset(h, 0, sizeof *h);
        if (luaL_newmetatable(L, EP_HTTP_MT)) {
            lua_pushcfunction(L, http_gc);
            lua_setfield(L, -2, "__gc");
            lua_pushliteral(L, "ecsplay.core.http state");
            lua_setfield(L, -2, "__name");
        }
        lua_setmetatable(L, -2);
        if (ep_curl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return luaL_error(L, "ecsplay.core.http: curl_global_init failed");
        h->global_inited = 1;
        h->multi = ep_curl.multi_init();
        h->share = ep_curl.share_init();
        if (!h->multi || !h->share)
            return luaL_error(L, "ecsplay.core.http: cannot create curl handles (out of memory)");
        ep_curl.share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
        ep_curl.share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        ep_curl.share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, EP_HTTP_MT ".instance");
    }
    luaL_newlibtable(L, http_funcs);
    lua_insert(L, -2);
    luaL_setfuncs(L, http_funcs, 1);
    return 1;
}
