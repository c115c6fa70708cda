/*
 * ecsplay.core.simserve: a loopback HTTP server (libmicrohttpd) answering with a Lua handler.
 *
 *   listen{port=0, host="127.0.0.1"} -> server
 *   server:port() -> integer
 *   server:run(timeout_s, handler [, stamp]) -> served, last_handler_error|nil
 *       handler(method, path_with_query, headers, body)
 *           -> status, headers, body [, delay_s [, wakeable]]
 *       (status 0: drop the connection without answering, after the delay if any;
 *        wakeable: server:wake() may send this answer before its delay is over)
 *       stamp() -> {name = value}: headers added to every answer just before it is sent,
 *       the handler's (after their delay) and the server's own (413, 500), so a value such
 *       as the simulated time is the one of the moment the answer leaves
 *   server:wake() -> n   sends the wakeable delayed answers at once (from the handler too)
 *   server:close()  (also __gc and __close)
 *
 * MHD runs in external-polling epoll mode: no thread of its own, so Lua is only ever
 * entered from run() on the calling thread. run() waits on MHD's epoll fd plus the
 * process's signal self-pipe (ep_signal_fd), so SIGINT/SIGTERM wake it at once.
 *
 * Lua errors never unwind through libmicrohttpd: everything that touches Lua during a
 * request runs inside lua_pcall, and the request's C state (struct ep_req) is owned by
 * MHD's connection and freed in the request-completed callback.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "ep.h"     /* luaopen_ecsplay_core_simserve, ep_signal_fd (core.c's self-pipe) */
#include "netlib.h" /* libmicrohttpd, dlopen'ed on first use: every call goes through ep_mhd */

#define EP_SIMSERVE_MT "ecsplay.core.simserve.server"
#define EP_SIMSERVE_MAX_BODY (10u * 1024u * 1024u)
#define EP_SIMSERVE_CONN_LIMIT 4096u
#define EP_SIMSERVE_CONN_TIMEOUT 30u

struct ep_srv;

struct ep_hdr {
    const char *name, *value;
}; /* point into MHD's per-request pool */

struct ep_req {
    struct ep_srv *srv;
    char *uri; /* raw request target, query string included */
    int seen;
    char *body;
    size_t body_len, body_cap;
    int too_large;
    int answered; /* a response was queued early (413); ignore the rest of the request */
    const char *method;
    struct ep_hdr *hdrs;
    size_t nhdrs, hdrs_cap;
    struct MHD_Response *response; /* built by the handler, queued now or after a delay */
    unsigned status;
    int drop; /* handler status 0: close the connection with no answer (a fault) */
    double delay;
    int wakeable; /* the delay may be cut short by server:wake() */
    struct MHD_Connection *conn;
    int suspended;
    double resume_at;
    struct ep_req *next_delayed;
};

struct ep_srv {
    struct MHD_Daemon *d;
    uint16_t port;
    lua_State *L; /* set only while run() is active */
    int handler_idx;
    int stamp_idx; /* 0: no stamp function */
    struct ep_req *delayed;
    lua_Integer served;
    int have_error;
    char last_error[512];
    char log[256]; /* last libmicrohttpd message, for listen() errors */
};

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_log(void *cls, const char *fm, va_list ap)
{
    struct ep_srv *s = cls;
    vsnprintf(s->log, sizeof s->log, fm, ap);
    size_t n = strlen(s->log);
    while (n > 0 && (s->log[n - 1] == '\n' || s->log[n - 1] == '\r'))
        s->log[--n] = '\0';
}

static struct ep_req *req_new(struct ep_srv *s, const char *uri)
{
    struct ep_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->srv = s;
    r->uri = strdup(uri ? uri : "/");
    if (!r->uri) {
        free(r);
        return NULL;
    }
    return r;
}

/* MHD calls this once per request before parsing headers; its result becomes *con_cls. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)conn;
    return req_new(cls, uri);
}

static void unlink_delayed(struct ep_srv *s, struct ep_req *r)
{
    for (struct ep_req **pp = &s->delayed; *pp; pp = &(*pp)->next_delayed)
        if (*pp == r) {
            *pp = r->next_delayed;
            r->next_delayed = NULL;
            return;
        }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    struct ep_srv *s = cls;
    struct ep_req *r = *con_cls;
    if (!r)
        return;
    unlink_delayed(s, r);
    if (r->response)
        ep_mhd.destroy_response(r->response);
    free(r->body);
    free(r->hdrs);
    free(r->uri);
    free(r);
    *con_cls = NULL;
}

static void remember_error(struct ep_srv *s, const char *msg);

static enum MHD_Result queue_owned(struct MHD_Connection *conn, unsigned status,
                                   struct MHD_Response *resp)
{
    if (!resp)
        return MHD_NO; /* out of memory: MHD drops the connection */
    enum MHD_Result ret = ep_mhd.queue_response(conn, status, resp);
    ep_mhd.destroy_response(resp);
    return ret;
}

/* Runs under lua_pcall: (stamp, response) -> adds the headers stamp() returns. */
static int add_stamp(lua_State *L)
{
    struct MHD_Response *resp = lua_touserdata(L, 2);
    lua_pushvalue(L, 1);
    lua_call(L, 0, 1);
    if (!lua_istable(L, -1))
        return 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING &&
            strcasecmp(lua_tostring(L, -2), "content-length") != 0)
            ep_mhd.add_response_header(resp, lua_tostring(L, -2), lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    return 0;
}

/* Every answer leaves through here: stamped (while run() is active), then queued. A failing
 * stamp function costs the answer its stamp, never the answer. */
static enum MHD_Result queue_answer(struct ep_srv *s, struct MHD_Connection *conn, unsigned status,
                                    struct MHD_Response *resp)
{
    lua_State *L = s->L;
    if (resp && L && s->stamp_idx && lua_checkstack(L, 8)) {
        int top = lua_gettop(L);
        lua_pushcfunction(L, add_stamp);
        lua_pushvalue(L, s->stamp_idx);
        lua_pushlightuserdata(L, resp);
        if (lua_pcall(L, 2, 0, 0) != LUA_OK)
            remember_error(s, lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                             : "simserve: stamp failed");
        lua_settop(L, top);
    }
    return queue_owned(conn, status, resp);
}

/* JSON error body in the shape AWS JSON services use, so clients parse it like any error. */
static struct MHD_Response *error_response(const char *type, const char *msg)
{
    char body[1024];
    size_t n = (size_t)snprintf(body, sizeof body, "{\"__type\":\"%s\",\"message\":\"", type);
    for (const unsigned char *p = (const unsigned char *)msg; *p && n + 8 < sizeof body; p++) {
        if (*p == '"' || *p == '\\') {
            body[n++] = '\\';
            body[n++] = (char)*p;
        } else if (*p < 0x20)
            n += (size_t)snprintf(body + n, sizeof body - n, "\\u%04x", *p);
        else
            body[n++] = (char)*p;
    }
    n += (size_t)snprintf(body + n, sizeof body - n, "\"}");
    if (n >= sizeof body)
        n = sizeof body - 1;
    struct MHD_Response *resp = ep_mhd.create_response_from_buffer(n, body, MHD_RESPMEM_MUST_COPY);
    if (resp)
        ep_mhd.add_response_header(resp, "Content-Type", "application/x-amz-json-1.1");
    return resp;
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    struct ep_req *r = cls;
    if (r->nhdrs == r->hdrs_cap) {
        size_t cap = r->hdrs_cap ? r->hdrs_cap * 2 : 16;
        struct ep_hdr *h = realloc(r->hdrs, cap * sizeof *h);
        if (!h)
            return MHD_NO; /* stop iterating; the handler sees fewer headers */
        r->hdrs = h;
        r->hdrs_cap = cap;
    }
    r->hdrs[r->nhdrs].name = key;
    r->hdrs[r->nhdrs].value = value ? value : "";
    r->nhdrs++;
    return MHD_YES;
}

static void push_headers(lua_State *L, struct ep_req *r)
{
    lua_createtable(L, 0, (int)r->nhdrs);
    int t = lua_gettop(L);
    for (size_t i = 0; i < r->nhdrs; i++) {
        luaL_Buffer b;
        const char *n = r->hdrs[i].name;
        luaL_buffinit(L, &b);
        for (; *n; n++)
            luaL_addchar(&b, (*n >= 'A' && *n <= 'Z') ? (char)(*n + 32) : *n);
        luaL_pushresult(&b);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, t) == LUA_TSTRING) { /* repeated header: join like a proxy would */
            lua_pushliteral(L, ", ");
            lua_pushstring(L, r->hdrs[i].value);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushstring(L, r->hdrs[i].value);
        }
        lua_rawset(L, t);
    }
}

static void remember_error(struct ep_srv *s, const char *msg)
{
    snprintf(s->last_error, sizeof s->last_error, "%s", msg);
    s->have_error = 1;
}

/* Runs under lua_pcall: (handler, req) -> fills req->response / status / delay
 * / wakeable. */
static int dispatch(lua_State *L)
{
    struct ep_req *r = lua_touserdata(L, 2);
    lua_pushvalue(L, 1);
    lua_pushstring(L, r->method);
    lua_pushstring(L, r->uri);
    push_headers(L, r);
    lua_pushlstring(L, r->body ? r->body : "", r->body_len);
    if (lua_pcall(L, 4, 5, 0) != LUA_OK) {
        const char *msg = luaL_tolstring(L, -1, NULL);
        remember_error(r->srv, msg);
        r->response = error_response("InternalFailure", msg);
        r->status = 500;
        return 0;
    }
    int top = lua_gettop(L) - 1; /* status at top-3, headers top-2, body top-1, delay top */
    r->wakeable = lua_toboolean(L, top + 1);
    int isnum;
    lua_Integer status = lua_tointegerx(L, top - 3, &isnum);
    if (isnum && status == 0) { /* an injected dropped connection */
        r->drop = 1;
        r->status = 0;
        r->delay = lua_isnumber(L, top) && lua_tonumber(L, top) > 0 ? lua_tonumber(L, top) : 0;
        return 0;
    }
    if (!isnum || status < 100 || status > 599)
        return luaL_error(L, "simserve handler returned status %s, expected an integer 100-599",
                          luaL_tolstring(L, top - 3, NULL));
    int hty = lua_type(L, top - 2);
    if (hty != LUA_TNIL && hty != LUA_TTABLE)
        return luaL_error(L, "simserve handler returned headers of type %s, expected a table",
                          luaL_typename(L, top - 2));
    int bty = lua_type(L, top - 1);
    if (bty != LUA_TNIL && bty != LUA_TSTRING)
        return luaL_error(L, "simserve handler returned body of type %s, expected a string",
                          luaL_typename(L, top - 1));
    double delay = 0;
    if (!lua_isnil(L, top)) {
        if (!lua_isnumber(L, top))
            return luaL_error(L, "simserve handler returned delay of type %s, expected seconds",
                              luaL_typename(L, top));
        delay = lua_tonumber(L, top);
    }
    size_t blen = 0;
    const char *body = bty == LUA_TSTRING ? lua_tolstring(L, top - 1, &blen) : "";
    r->response = ep_mhd.create_response_from_buffer(blen, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r->response)
        return luaL_error(L, "simserve: out of memory building a response");
    r->status = (unsigned)status;
    r->delay = delay > 0 && delay == delay ? delay : 0;
    if (hty == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, top - 2)) {
            if (lua_type(L, -2) != LUA_TSTRING ||
                (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
                return luaL_error(L, "simserve handler headers must map strings to strings");
            const char *k = lua_tostring(L, -2);
            const char *v = lua_tostring(L, -1);
            /* MHD computes Content-Length itself; a second one would corrupt framing. */
            if (strcasecmp(k, "content-length") != 0 &&
                ep_mhd.add_response_header(r->response, k, v) != MHD_YES)
                return luaL_error(L, "simserve handler header '%s' has an invalid name or value",
                                  k);
            lua_pop(L, 1);
        }
    }
    return 0;
}

static enum MHD_Result respond(struct ep_srv *s, struct ep_req *r, struct MHD_Connection *conn)
{
    r->response = NULL;
    lua_State *L = s->L;
    if (!L) /* only possible while close() flushes connections */
        return queue_answer(s, conn, 503,
                            error_response("ServiceUnavailable", "server is closing"));
    ep_mhd.get_connection_values(conn, MHD_HEADER_KIND, collect_header, r);
    int top = lua_gettop(L);
    if (!lua_checkstack(L, 8))
        return MHD_NO;
    lua_pushcfunction(L, dispatch);
    lua_pushvalue(L, s->handler_idx);
    lua_pushlightuserdata(L, r);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        const char *msg =
            lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "simserve: handler failed";
        remember_error(s, msg);
        if (r->response) {
            ep_mhd.destroy_response(r->response);
            r->response = NULL;
        }
        r->response = error_response("InternalFailure", msg);
        r->status = 500;
        r->delay = 0;
    }
    lua_settop(L, top);
    s->served++;
    if (r->drop && r->delay <= 0)
        return MHD_NO; /* MHD closes the connection without a response */
    if (r->delay > 0 && (r->response || r->drop)) {
        r->resume_at = now_mono() + r->delay;
        r->suspended = 1;
        r->conn = conn;
        r->next_delayed = s->delayed;
        s->delayed = r;
        ep_mhd.suspend_connection(conn);
        return MHD_YES;
    }
    struct MHD_Response *resp = r->response;
    r->response = NULL;
    return queue_answer(s, conn, r->status, resp);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    (void)version;
    struct ep_srv *s = cls;
    struct ep_req *r = *con_cls;
    if (!r) { /* the URI callback could not allocate */
        if (!(r = req_new(s, url)))
            return MHD_NO;
        *con_cls = r;
    }
    if (!r->seen) { /* headers are in; the body (if any) follows in later calls */
        r->seen = 1;
        r->method = method;
        const char *cl = ep_mhd.lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            errno = 0;
            unsigned long long n = strtoull(cl, NULL, 10);
            if (errno == 0 && n > EP_SIMSERVE_MAX_BODY) {
                r->too_large = 1;
                r->answered = 1;
                return queue_answer(
                    s, conn, 413,
                    error_response("RequestEntityTooLarge",
                                   "request body exceeds the simulator's 10 MiB limit"));
            }
        }
        return MHD_YES;
    }
    if (r->answered) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->too_large || n > EP_SIMSERVE_MAX_BODY - r->body_len) {
            r->too_large = 1;
            return MHD_YES;
        }
        if (r->body_len + n > r->body_cap) {
            size_t cap = r->body_cap ? r->body_cap : 16384;
            while (cap < r->body_len + n)
                cap *= 2;
            char *b = realloc(r->body, cap);
            if (!b)
                return MHD_NO;
            r->body = b;
            r->body_cap = cap;
        }
        memcpy(r->body + r->body_len, upload, n);
        r->body_len += n;
        return MHD_YES;
    }
    if (r->suspended) { /* resumed after its delay: the answer is ready */
        r->suspended = 0;
        if (r->drop)
            return MHD_NO;
        struct MHD_Response *resp = r->response;
        r->response = NULL;
        return queue_answer(s, conn, r->status, resp);
    }
    if (r->too_large)
        return queue_answer(s, conn, 413,
                            error_response("RequestEntityTooLarge",
                                           "request body exceeds the simulator's 10 MiB limit"));
    return respond(s, r, conn);
}

/* ---------- Lua interface ---------- */

static struct ep_srv *check_srv(lua_State *L)
{
    struct ep_srv *s = luaL_checkudata(L, 1, EP_SIMSERVE_MT);
    if (!s->d)
        luaL_error(L, "simserve: server is closed");
    return s;
}

static void resume_due(struct ep_srv *s, double now, int all)
{
    struct ep_req **pp = &s->delayed;
    while (*pp) {
        struct ep_req *r = *pp;
        if (all || r->resume_at <= now) {
            *pp = r->next_delayed;
            r->next_delayed = NULL;
            ep_mhd.resume_connection(r->conn);
        } else {
            pp = &r->next_delayed;
        }
    }
}

static void srv_close(struct ep_srv *s)
{
    if (!s->d)
        return;
    /* MHD forbids stopping with suspended connections: resume them, let them flush. */
    if (s->delayed) {
        resume_due(s, 0, 1);
        ep_mhd.run(s->d);
    }
    ep_mhd.stop_daemon(s->d);
    s->d = NULL;
}

static int l_close(lua_State *L)
{
    struct ep_srv *s = luaL_checkudata(L, 1, EP_SIMSERVE_MT);
    if (s->L)
        return luaL_error(L, "simserve: close() called from inside run()");
    srv_close(s);
    return 0;
}

static int l_gc(lua_State *L)
{
    struct ep_srv *s = luaL_checkudata(L, 1, EP_SIMSERVE_MT);
    if (!s->L)
        srv_close(s);
    return 0;
}

/* server:wake(): the wakeable delayed answers go out on run()'s next turn. */
static int l_wake(lua_State *L)
{
    struct ep_srv *s = check_srv(L);
    lua_Integer n = 0;
    for (struct ep_req *r = s->delayed; r; r = r->next_delayed)
        if (r->wakeable && r->resume_at > 0) {
            r->resume_at = 0;
            n++;
        }
    lua_pushinteger(L, n);
    return 1;
}

static int l_port(lua_State *L)
{
    lua_pushinteger(L, check_srv(L)->port);
    return 1;
}

static int signal_ready(int fd)
{
    if (fd < 0)
        return 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

static int l_run(lua_State *L)
{
    struct ep_srv *s = check_srv(L);
    double timeout = luaL_checknumber(L, 2);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    if (!lua_isnoneornil(L, 4))
        luaL_checktype(L, 4, LUA_TFUNCTION);
    lua_settop(L, 4);
    if (s->L)
        return luaL_error(L, "simserve: run() is not reentrant");
    if (!(timeout >= 0))
        timeout = 0;
    const union MHD_DaemonInfo *info = ep_mhd.get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
    if (!info)
        return luaL_error(L, "simserve: libmicrohttpd has no epoll fd");
    int epfd = info->epoll_fd;
    int sigfd = ep_signal_fd();
    double deadline = now_mono() + timeout;

    s->L = L;
    s->handler_idx = 3;
    s->stamp_idx = lua_isfunction(L, 4) ? 4 : 0;
    s->served = 0;
    s->have_error = 0;
    for (;;) {
        double now = now_mono();
        resume_due(s, now, 0);
        ep_mhd.run(s->d);
        if (signal_ready(sigfd))
            break;
        now = now_mono();
        if (now >= deadline)
            break;
        double wait = deadline - now;
        for (struct ep_req *r = s->delayed; r; r = r->next_delayed)
            if (r->resume_at - now < wait)
                wait = r->resume_at - now;
        double ms = wait > 0 ? wait * 1000.0 + 0.999 : 0;
        int wait_ms = ms > 3600000.0 ? 3600000 : (int)ms;
        MHD_UNSIGNED_LONG_LONG mt;
        if (ep_mhd.get_timeout(s->d, &mt) == MHD_YES && mt < (MHD_UNSIGNED_LONG_LONG)wait_ms)
            wait_ms = (int)mt;
        struct pollfd p[2] = {{.fd = epfd, .events = POLLIN}, {.fd = sigfd, .events = POLLIN}};
        int rc = poll(p, sigfd >= 0 ? 2 : 1, wait_ms);
        if (rc < 0 && errno != EINTR) {
            s->L = NULL;
            s->stamp_idx = 0;
            return luaL_error(L, "simserve: poll failed: %s", strerror(errno));
        }
    }
    s->L = NULL;
    s->stamp_idx = 0;
    lua_pushinteger(L, s->served);
    if (s->have_error)
        lua_pushstring(L, s->last_error);
    else
        lua_pushnil(L);
    return 2;
}

static int l_listen(lua_State *L)
{
    lua_Integer port = 0;
    const char *host = "127.0.0.1";
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        if (lua_getfield(L, 1, "port") != LUA_TNIL) {
            int isnum;
            port = lua_tointegerx(L, -1, &isnum);
            if (!isnum || port < 0 || port > 65535)
                return luaL_error(L, "simserve.listen: 'port' must be an integer 0-65535");
        }
        if (lua_getfield(L, 1, "host") != LUA_TNIL) {
            host = lua_tostring(L, -1);
            if (!host || lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "simserve.listen: 'host' must be a string");
        }
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    const char *addr = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    /* The simulator accepts any credentials: never expose it beyond loopback. */
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1 || (ntohl(sa.sin_addr.s_addr) >> 24) != 127)
        return luaL_error(
            L, "simserve.listen: host '%s' is not an IPv4 loopback address (127.x.x.x)", host);

    struct ep_srv *s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    luaL_setmetatable(L, EP_SIMSERVE_MT);
    errno = 0;
    s->d = ep_mhd.start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
                               (uint16_t)port, NULL, NULL, on_access, s, MHD_OPTION_EXTERNAL_LOGGER,
                               on_log, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                               MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_NOTIFY_COMPLETED,
                               on_completed, s, MHD_OPTION_CONNECTION_LIMIT, EP_SIMSERVE_CONN_LIMIT,
                               MHD_OPTION_CONNECTION_TIMEOUT, EP_SIMSERVE_CONN_TIMEOUT,
                               MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
    if (!s->d) {
        int e = errno;
        return luaL_error(L, "simserve.listen: cannot listen on %s:%d: %s", addr, (int)port,
                          s->log[0] ? s->log
                                    : (e ? strerror(e) : "libmicrohttpd refused to start"));
    }
    const union MHD_DaemonInfo *info = ep_mhd.get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : (uint16_t)port;
    return 1;
}

static const luaL_Reg srv_methods[] = {
    {"port", l_port}, {"run", l_run}, {"wake", l_wake}, {"close", l_close}, {NULL, NULL},
};

static const luaL_Reg simserve_funcs[] = {
    {"listen", l_listen},
    {NULL, NULL},
};

int luaopen_ecsplay_core_simserve(lua_State *L)
{
    /* libmicrohttpd is loaded here, not at program start (see netlib.h); a failure is an
     * ordinary Lua error from require. */
    char err[512];
    if (ep_mhd_load(err, sizeof err) != 0)
        return luaL_error(L, "ecsplay.core.simserve: %s", err);
    if (luaL_newmetatable(L, EP_SIMSERVE_MT)) {
        luaL_newlib(L, srv_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    luaL_newlib(L, simserve_funcs);
    return 1;
}
