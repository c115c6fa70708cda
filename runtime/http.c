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
 *
 * This file: the module's state, start() (a curl easy handle from a request table),
 * poll(), cancel() and pending(). Reading the request table is http_request.c; receiving
 * a response and handing it to Lua, http_response.c.
 */
#include <dlfcn.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "crypto.h" /* ep_wipe */
#include "ep.h"     /* luaopen_ecsplay_core_http, ep_signal_fd (core.c's self-pipe) */
#include "http.h"   /* struct ep_xfer, and what http_response.c does with a response */
#include "netlib.h" /* libcurl, dlopen'ed on first use: every call goes through ep_curl */

#define EP_HTTP_MT "ecsplay.core.http.state"
/* Idle easy handles kept for the next transfers: creating one (curl_easy_init) and
 * freeing it cost about as much as the rest of start() together. More transfers than
 * this at once still work; the extra handles are freed as usual. A handle set up for the
 * same kind of request (method, body or not, CA bundle, verbose) is reused as it is, with
 * only the transfer's own options set again; another is reset to defaults first. */
#define EP_HTTP_POOL 16
struct ep_pooled {
    CURL *easy;
    struct ep_easy_conf conf;
};
struct ep_http {
    CURLM *multi;
    CURLSH *share;
    struct ep_xfer *active; /* SETUP and RUNNING */
    struct ep_xfer *done_head, *done_tail;
    lua_Integer next_id;
    int global_inited;
    struct ep_pooled pool[EP_HTTP_POOL]; /* idle handles */
    int npool;
};

/* curl_easy_reset, looked up beside the pool that needs it (from the libcurl netlib.c
 * loaded; NULL if that libcurl lacks it: then handles are not reused). */
typedef void (*easy_reset_fn)(CURL *);
static easy_reset_fn easy_reset;
static int easy_reset_looked_up;

static easy_reset_fn find_easy_reset(void)
{
    if (!easy_reset_looked_up) {
        easy_reset_looked_up = 1;
        void *lib = dlopen(EP_CURL_SONAME, RTLD_NOW | RTLD_NOLOAD);
        if (lib) {
            /* POSIX: a function pointer converts from dlsym's void * this way */
            *(void **)&easy_reset = dlsym(lib, "curl_easy_reset");
            dlclose(lib); /* only drops the reference RTLD_NOLOAD added */
        }
    }
    return easy_reset;
}

static void conf_clear(struct ep_easy_conf *c)
{
    free(c->ca);
    memset(c, 0, sizeof *c);
}

static int conf_same(const struct ep_easy_conf *c, const char *method, int has_body, const char *ca,
                     int verbose)
{
    return strcmp(c->method, method) == 0 && c->has_body == has_body && c->verbose == verbose &&
           (c->ca ? ca && strcmp(c->ca, ca) == 0 : ca == NULL);
}

/* The easy handle of a new transfer: an idle one set up for the same kind of request
 * (x->conf_kept), else an idle one reset to defaults, else a new one. */
static CURL *easy_get(struct ep_http *h, struct ep_xfer *x, const char *ca, int has_body,
                      int verbose)
{
    if (h->npool == 0)
        return ep_curl.easy_init();
    struct ep_pooled *pe = &h->pool[--h->npool];
    CURL *e = pe->easy;
    x->conf = pe->conf; /* the copy of the CA path moves to the transfer */
    memset(&pe->conf, 0, sizeof pe->conf);
    if (x->conf.method[0] && conf_same(&x->conf, x->method, has_body, ca, verbose)) {
        x->conf_kept = 1;
    } else {
        conf_clear(&x->conf);
        easy_reset(e);
    }
    return e;
}

/* A transfer's handle no transfer uses any more (already out of the multi handle); the
 * transfer gives up its conf with it. */
static void easy_put(struct ep_http *h, struct ep_xfer *x)
{
    if (h->npool < EP_HTTP_POOL && find_easy_reset()) {
        struct ep_pooled *pe = &h->pool[h->npool++];
        pe->easy = x->easy;
        pe->conf = x->conf;
        memset(&x->conf, 0, sizeof x->conf);
    } else {
        ep_curl.easy_cleanup(x->easy);
    }
    x->easy = NULL;
}

/* ---------- buffers ---------- */

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
        if (x->state == XFER_RUNNING && h->multi)
            ep_curl.multi_remove_handle(h->multi, x->easy);
        if (h->multi)
            easy_put(h, x);
        else
            ep_curl.easy_cleanup(x->easy);
    }
    conf_clear(&x->conf);
    free(x->req_headers);
    if (x->req_lines.data)
        ep_wipe(x->req_lines.data, x->req_lines.len); /* header values may be credentials */
    buf_free(&x->req_lines);
    buf_free(&x->body);
    buf_free(&x->raw_headers);
    free(x);
}

/* Unlink x from whichever list holds it (it is in exactly one). */
static void xfer_unlink(struct ep_http *h, struct ep_xfer *x)
{
    struct ep_xfer **pp;
    for (pp = &h->active; *pp; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            x->next = NULL;
            return;
        }
    struct ep_xfer *prev = NULL;
    for (pp = &h->done_head; *pp; prev = *pp, pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            if (h->done_tail == x)
                h->done_tail = prev;
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
    while (h->npool > 0) {
        struct ep_pooled *pe = &h->pool[--h->npool];
        ep_curl.easy_cleanup(pe->easy);
        conf_clear(&pe->conf);
    }
    if (h->multi) {
        ep_curl.multi_cleanup(h->multi);
        h->multi = NULL;
    }
    /* The share can only go once no easy handle references it. */
    if (h->share) {
        ep_curl.share_cleanup(h->share);
        h->share = NULL;
    }
    if (h->global_inited) {
        ep_curl.global_cleanup();
        h->global_inited = 0;
    }
}

static int http_gc(lua_State *L)
{
    http_close(luaL_checkudata(L, 1, EP_HTTP_MT));
    return 0;
}

static struct ep_http *get_state(lua_State *L)
{
    struct ep_http *h = lua_touserdata(L, lua_upvalueindex(1));
    if (!h || !h->multi)
        luaL_error(L, "ecsplay.core.http: state already closed");
    return h;
}

/* ---------- verbose output ---------- */

/* verbose=true output goes through here so credentials never reach stderr. */
static int on_debug(CURL *easy, curl_infotype type, char *data, size_t size, void *ud)
{
    (void)easy;
    (void)ud;
    if (type != CURLINFO_TEXT && type != CURLINFO_HEADER_IN && type != CURLINFO_HEADER_OUT)
        return 0;
    const char *tag = type == CURLINFO_TEXT ? "*" : type == CURLINFO_HEADER_IN ? "<" : ">";
    size_t i = 0;
    while (i < size) {
        size_t j = i;
        while (j < size && data[j] != '\n')
            j++;
        size_t len = j - i;
        while (len > 0 && (data[i + len - 1] == '\r'))
            len--;
        const char *line = data + i;
        static const char *const secret[] = {
            "authorization:", "x-amz-security-token:", "proxy-authorization:", "cookie:", NULL};
        int redact = 0;
        for (int k = 0; secret[k]; k++) {
            size_t sl = strlen(secret[k]);
            if (len >= sl && strncasecmp(line, secret[k], sl) == 0) {
                fprintf(stderr, "curl %s %.*s <redacted>\n", tag, (int)(sl - 1), line);
                redact = 1;
                break;
            }
        }
        if (!redact && len > 0)
            fprintf(stderr, "curl %s %.*s\n", tag, (int)len, line);
        i = j + 1;
    }
    return 0;
}

/* ---------- start ---------- */

static long to_ms(double seconds)
{
    double ms = seconds * 1000.0;
    if (ms > 2147483647.0)
        return 2147483647L;
    if (ms < 1.0)
        return 1L;
    return (long)ms;
}

/* A new transfer in SETUP state, owned by h->active from the start (so a Lua
 * error before it runs leaves it to sweep_setup), or NULL. */
static struct ep_xfer *xfer_new(struct ep_http *h, const struct ep_http_args *a)
{
    struct ep_xfer *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->state = XFER_SETUP;
    x->next = h->active;
    h->active = x;
    x->id = ++h->next_id;
    x->max_size = a->max_size >= 9.0e18 ? SIZE_MAX : (size_t)a->max_size;
    memcpy(x->method, a->method, a->method_len);
    x->method[a->method_len] = '\0';
    ep_http_set_origin(x, a->url);
    return x;
}

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = ep_curl.easy_setopt(e, opt, val);                                                 \
    } while (0)

/* The options every request of a kind shares: set on a new or reset handle, kept by a
 * handle reused for the same kind (easy_get). Records that kind in x->conf. */
static CURLcode set_kind_options(struct ep_http *h, struct ep_xfer *x, const struct ep_http_args *a)
{
    CURL *e = x->easy;
    CURLcode rc = CURLE_OK;
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_SHARE, h->share);
    SETOPT(CURLOPT_WRITEFUNCTION, ep_http_on_body);
    SETOPT(CURLOPT_HEADERFUNCTION, ep_http_on_header);
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    if (a->ca)
        SETOPT(CURLOPT_CAINFO, a->ca);
    if (a->verbose) {
        SETOPT(CURLOPT_DEBUGFUNCTION, on_debug);
        SETOPT(CURLOPT_VERBOSE, 1L);
    }
    if (rc == CURLE_OK) {
        /* not recorded (so the next use resets the handle) if the copy cannot be made */
        char *ca = a->ca ? strdup(a->ca) : NULL;
        if (!a->ca || ca) {
            memcpy(x->conf.method, x->method, sizeof x->method);
            x->conf.ca = ca;
            x->conf.has_body = a->body != NULL;
            x->conf.verbose = a->verbose;
        }
    }
    return rc;
}

/* Where to send, what to do with the answer, limits and TLS. */
static CURLcode set_transfer_options(struct ep_http *h, struct ep_xfer *x,
                                     const struct ep_http_args *a)
{
    CURL *e = x->easy;
    CURLcode rc = x->conf_kept ? CURLE_OK : set_kind_options(h, x, a);
    SETOPT(CURLOPT_URL, a->url);
    SETOPT(CURLOPT_PRIVATE, (void *)x);
    SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
    SETOPT(CURLOPT_WRITEDATA, (void *)x);
    SETOPT(CURLOPT_HEADERDATA, (void *)x);
    SETOPT(CURLOPT_HTTPHEADER, x->req_headers);
    SETOPT(CURLOPT_TIMEOUT_MS, to_ms(a->timeout));
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, to_ms(a->connect_timeout));
    SETOPT(CURLOPT_MAXFILESIZE_LARGE,
           (curl_off_t)(a->max_size >= 9.0e18 ? 0 : (curl_off_t)a->max_size));
    return rc;
}

/* The method, and the body for methods that carry one. */
static CURLcode set_method_and_body(struct ep_xfer *x, const struct ep_http_args *a)
{
    CURL *e = x->easy;
    CURLcode rc = CURLE_OK;
    const char *m = x->method;
    if (strcmp(m, "HEAD") == 0) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else if (strcmp(m, "GET") == 0 && !a->body) {
        SETOPT(CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(m, "POST") != 0)
            SETOPT(CURLOPT_CUSTOMREQUEST, m);
        if (a->body || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0) {
            SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)a->body_len);
            SETOPT(CURLOPT_COPYPOSTFIELDS, a->body ? a->body : "");
        }
    }
    return rc;
}

#undef SETOPT

/* Frees a transfer start() could not hand to curl, then raises. */
static int start_failed(lua_State *L, struct ep_http *h, struct ep_xfer *x, const char *why,
                        const char *detail)
{
    xfer_unlink(h, x);
    xfer_free(h, x);
    if (detail)
        return luaL_error(L, "http.start: %s: %s", why, detail);
    return luaL_error(L, "http.start: %s", why);
}

/* start{method=, url=, headers=, body=, timeout=, connect_timeout=, max_size=,
 *       ca_bundle=, verbose= [, signer=, sign_time=, access_key=, secret_key=,
 *       session_token=, unsigned_headers=]} -> id
 * With a signer (sigv4.prepare's), the request is signed here with SigV4 as it is sent:
 * one call instead of signing in Lua and handing the signed headers back in a table;
 * unsigned_headers are sent after the signer's, not signed. */
static int l_start(lua_State *L)
{
    struct ep_http *h = get_state(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    sweep_setup(h);
    struct ep_http_args a;
    memset(&a, 0, sizeof a);
    ep_http_read_args(L, &a);
    a.has_headers = ep_http_get_headers(L);
    a.sign = ep_http_get_signing(L);

    /* The transfer is owned by h->active from the first line; a failure frees it. */
    struct ep_xfer *x = xfer_new(h, &a);
    if (!x)
        return luaL_error(L, "http.start: out of memory");
    const char *why = NULL;
    int hrc = ep_http_build_header_list(L, x, &a, &why);
    if (hrc > 0) {
        xfer_unlink(h, x);
        xfer_free(h, x);
        return luaL_error(L, "http.start: %s", lua_pushfstring(L, why, lua_tostring(L, -1)));
    }
    if (hrc != 0 || !(x->easy = easy_get(h, x, a.ca, a.body != NULL, a.verbose)))
        return start_failed(L, h, x, "out of memory", NULL);
    CURLcode rc = set_transfer_options(h, x, &a);
    if (rc == CURLE_OK)
        rc = set_method_and_body(x, &a);
    if (rc != CURLE_OK)
        return start_failed(L, h, x, "cannot configure transfer", ep_curl.easy_strerror(rc));
    CURLMcode mrc = ep_curl.multi_add_handle(h->multi, x->easy);
    if (mrc != CURLM_OK)
        return start_failed(L, h, x, "cannot add transfer", ep_curl.multi_strerror(mrc));
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
    if (fd < 0)
        return 0;
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
        if (m->msg != CURLMSG_DONE)
            continue;
        struct ep_xfer *x = NULL;
        ep_curl.easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode result = m->data.result; /* m is invalid after remove_handle */
        ep_curl.multi_remove_handle(h->multi, m->easy_handle);
        if (!x)
            continue;
        x->result = result;
        xfer_unlink(h, x);
        x->state = XFER_DONE;
        if (h->done_tail)
            h->done_tail->next = x;
        else
            h->done_head = x;
        h->done_tail = x;
    }
}

static int l_poll(lua_State *L)
{
    struct ep_http *h = get_state(L);
    double timeout = luaL_optnumber(L, 1, 0.0);
    if (timeout != timeout || timeout < 0)
        timeout = 0; /* NaN or negative: do not block */
    double deadline = now_mono() + timeout;

    harvest(h);
    if (!h->done_head && timeout > 0 && !signal_pending()) {
        int sfd = ep_signal_fd();
        for (;;) {
            double remain = deadline - now_mono();
            if (remain <= 0)
                break;
            double ms = remain * 1000.0 + 0.999; /* round up: never spin on 0 ms */
            struct curl_waitfd wfd = {.fd = sfd, .events = CURL_WAIT_POLLIN, .revents = 0};
            CURLMcode mrc = ep_curl.multi_poll(h->multi, sfd >= 0 ? &wfd : NULL, sfd >= 0 ? 1 : 0,
                                               ms > 2147483647.0 ? 2147483647 : (int)ms, NULL);
            if (mrc != CURLM_OK)
                return luaL_error(L, "http.poll: curl_multi_poll failed: %s",
                                  ep_curl.multi_strerror(mrc));
            harvest(h);
            if (h->done_head)
                break;
            if (sfd >= 0 && (wfd.revents & (CURL_WAIT_POLLIN | POLLHUP)))
                break;
        }
    }

    lua_newtable(L);
    lua_Integer n = 0;
    while (h->done_head) {
        struct ep_xfer *x = h->done_head;
        ep_http_push_completion(
            L, x); /* may raise: x is still queued and will be reported next time */
        lua_rawseti(L, -2, ++n);
        h->done_head = x->next;
        if (!h->done_head)
            h->done_tail = NULL;
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
        if (x->state == XFER_RUNNING)
            n++;
    for (struct ep_xfer *x = h->done_head; x; x = x->next)
        n++;
    lua_pushinteger(L, n);
    return 1;
}

static const luaL_Reg http_funcs[] = {
    {"start", l_start},     {"poll", l_poll}, {"cancel", l_cancel},
    {"pending", l_pending}, {NULL, NULL},
};

int luaopen_ecsplay_core_http(lua_State *L)
{
    /* libcurl is loaded here, not at program start (see netlib.h); a failure is an
     * ordinary Lua error from require. */
    char err[512];
    if (ep_curl_load(err, sizeof err) != 0)
        return luaL_error(L, "ecsplay.core.http: %s", err);
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
