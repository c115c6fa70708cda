/*
 * Tests for ecsplay.core.simserve: the parent embeds Lua and serves; a forked child acts as
 * the HTTP client over raw sockets (re-executing this binary with --client, so it shares no
 * state with the parent) and reports its tallies through a pipe.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

int luaopen_ecsplay_core_simserve(lua_State *L);

/* Stand-in for runtime/core.c's self-pipe, so the test can "deliver a signal". */
static int sig_pipe[2] = {-1, -1};
int ep_signal_fd(void) { return sig_pipe[0]; }

static int passed, failed;
static pid_t child_pid = -1;
static int child_status = -1;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond)                                                                                  \
            passed++;                                                                              \
        else {                                                                                     \
            failed++;                                                                              \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            fflush(stdout);                                                                        \
        }                                                                                          \
    } while (0)

/* ---------- client side (child process) ---------- */

static int port;

static int connect_srv(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

struct resp {
    int status;
    char *raw;
    size_t len;
    const char *body;
    size_t body_len;
};

static void resp_free(struct resp *r)
{
    free(r->raw);
    memset(r, 0, sizeof *r);
}

/* Reads until EOF (requests carry Connection: close) and splits off the final response. */
static int read_resp(int fd, struct resp *r)
{
    memset(r, 0, sizeof *r);
    size_t cap = 65536;
    r->raw = malloc(cap + 1);
    if (!r->raw)
        return -1;
    for (;;) {
        if (r->len == cap) {
            char *p = realloc(r->raw, cap * 2 + 1);
            if (!p)
                return -1;
            r->raw = p;
            cap *= 2;
        }
        ssize_t n = recv(fd, r->raw + r->len, cap - r->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        r->len += (size_t)n;
    }
    r->raw[r->len] = '\0';
    char *p = r->raw;
    for (;;) {
        if (strncmp(p, "HTTP/1.", 7) != 0)
            return -1;
        r->status = (int)strtol(p + 9, NULL, 10);
        char *end = strstr(p, "\r\n\r\n");
        if (!end)
            return -1;
        if (r->status == 100) {
            p = end + 4;
            continue;
        }
        r->body = end + 4;
        r->body_len = r->len - (size_t)(r->body - r->raw);
        return 0;
    }
}

static int request(const char *raw, size_t len, struct resp *r)
{
    int fd = connect_srv();
    if (fd < 0)
        return -1;
    int rc = send_all(fd, raw, len) == 0 ? read_resp(fd, r) : -1;
    close(fd);
    return rc;
}

static int has(const struct resp *r, const char *needle)
{
    return r->raw && strstr(r->raw, needle) != NULL;
}

static void client_tests(void)
{
    struct resp r;
    const char *get = "GET /a/b?x=1&y=%20z HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Custom: Value\r\n"
                      "X-Dup: 1\r\nX-Dup: 2\r\nConnection: close\r\n\r\n";
    CHECK(request(get, strlen(get), &r) == 0, "GET echo: no response");
    CHECK(r.status == 201, "GET echo status %d", r.status);
    CHECK(has(&r, "X-Path: /a/b?x=1&y=%20z\r\n"), "raw path with query is handed to Lua: %s",
          r.raw);
    CHECK(has(&r, "x-custom=Value"), "lowercased header name: %s", r.raw);
    CHECK(has(&r, "x-dup=1, 2"), "duplicate headers joined: %s", r.raw);
    CHECK(has(&r, "\r\n\r\nGET\n"), "method passed: %s", r.raw);
    resp_free(&r);

    /* POST with a 100 kB body, sent in pieces. */
    size_t blen = 100000;
    char *req = malloc(blen + 256);
    int hl = snprintf(
        req, 256,
        "POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", blen);
    for (size_t i = 0; i < blen; i++)
        req[hl + (int)i] = (char)('a' + i % 26);
    CHECK(request(req, (size_t)hl + blen, &r) == 0, "POST: no response");
    CHECK(r.status == 201, "POST status %d", r.status);
    CHECK(r.body_len > blen && memcmp(r.body + r.body_len - blen, req + hl, blen) == 0,
          "POST body round trip (%zu bytes back)", r.body_len);
    resp_free(&r);
    free(req);

    const char *boom = "GET /boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    CHECK(request(boom, strlen(boom), &r) == 0, "boom: no response");
    CHECK(r.status == 500, "handler error gives 500, got %d", r.status);
    CHECK(has(&r, "\"__type\":\"InternalFailure\"") && has(&r, "kaboom"), "error body: %s", r.raw);
    resp_free(&r);

    const char *bad = "GET /badstatus HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    CHECK(request(bad, strlen(bad), &r) == 0 && r.status == 500 && has(&r, "status"),
          "bad status from handler gives 500: %s", r.raw);
    resp_free(&r);

    const char *delay = "GET /delay HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    CHECK(request(delay, strlen(delay), &r) == 0, "delay: no response");
    CHECK(r.status == 200 && has(&r, "X-Delayed: 1") && r.body_len == 4 &&
              memcmp(r.body, "late", 4) == 0,
          "delayed answer: %s", r.raw);
    resp_free(&r);

    const char *big = "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    CHECK(request(big, strlen(big), &r) == 0 && r.status == 200 && r.body_len == 1000000,
          "1 MB response (%zu bytes)", r.body_len);
    resp_free(&r);

    const char *huge_cl =
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20971520\r\nConnection: close\r\n\r\n";
    CHECK(request(huge_cl, strlen(huge_cl), &r) == 0 && r.status == 413,
          "Content-Length over cap: %d", r.status);
    resp_free(&r);

    /* 11 MiB chunked upload: no length up front, the cap applies while reading. */
    int fd = connect_srv();
    const char *ch =
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    int ok = fd >= 0 && send_all(fd, ch, strlen(ch)) == 0;
    static char chunk[65536 + 16];
    int n = snprintf(chunk, sizeof chunk, "10000\r\n");
    memset(chunk + n, 'z', 65536);
    memcpy(chunk + n + 65536, "\r\n", 2);
    for (int i = 0; ok && i < 176; i++)
        ok = send_all(fd, chunk, (size_t)n + 65536 + 2) == 0;
    ok = ok && send_all(fd, "0\r\n\r\n", 5) == 0;
    CHECK(ok && read_resp(fd, &r) == 0 && r.status == 413, "chunked upload over cap: %d", r.status);
    resp_free(&r);
    if (fd >= 0)
        close(fd);

    /* 1000 garbage connections held open, then a real request must still be served. */
    enum { NG = 1000 };
    static int g[NG];
    int opened = 0;
    for (int i = 0; i < NG; i++) {
        g[i] = connect_srv();
        if (g[i] < 0)
            continue;
        opened++;
        char junk[64];
        int k = snprintf(junk, sizeof junk,
                         i % 3 == 0   ? "\x16\x03\x01garbage %d"
                         : i % 3 == 1 ? "NOT HTTP AT ALL %d\r\n\r\n"
                                      : "GET / HTTP/9.%d\r\nX",
                         i);
        send_all(g[i], junk, (size_t)k);
    }
    CHECK(opened == NG, "opened %d of %d garbage connections", opened, NG);
    CHECK(request(get, strlen(get), &r) == 0 && r.status == 201,
          "served while %d garbage connections are open", opened);
    resp_free(&r);
    for (int i = 0; i < NG; i++)
        if (g[i] >= 0)
            close(g[i]);
    CHECK(request(get, strlen(get), &r) == 0 && r.status == 201,
          "served after garbage connections closed");
    resp_free(&r);
}

/* ---------- server side (parent) ---------- */

static int l_child_running(lua_State *L)
{
    int st;
    if (child_pid > 0 && waitpid(child_pid, &st, WNOHANG) == child_pid) {
        child_status = st;
        child_pid = -1;
    }
    lua_pushboolean(L, child_pid > 0);
    return 1;
}

static const char *setup_lua =
    "local simserve = require 'ecsplay.core.simserve'\n"
    "SRV = simserve.listen { port = 0 }\n"
    "HANDLER = function(method, path, headers, body)\n"
    "  if path == '/boom' then error('kaboom') end\n"
    "  if path == '/badstatus' then return 42, {}, '' end\n"
    "  if path == '/delay' then return 200, { ['X-Delayed'] = '1' }, 'late', 0.2 end\n"
    "  if path == '/delay-long' then return 200, nil, 'later', 3600 end\n"
    "  if path == '/big' then return 200, nil, string.rep('b', 1000000) end\n"
    "  local hs = {}\n"
    "  for k, v in pairs(headers) do hs[#hs + 1] = k .. '=' .. v end\n"
    "  table.sort(hs)\n"
    "  return 201, { ['Content-Type'] = 'text/plain', ['X-Path'] = path, ['Content-Length'] = '1' },\n"
    "         method .. '\\n' .. table.concat(hs, ';') .. '\\n' .. body\n"
    "end\n"
    "return SRV:port()\n";

static const char *serve_lua = "local child_running = ...\n"
                               "local total, errs = 0, {}\n"
                               "while child_running() do\n"
                               "  local n, err = SRV:run(0.05, HANDLER)\n"
                               "  total = total + n\n"
                               "  if err then errs[#errs + 1] = err end\n"
                               "end\n"
                               "local n = SRV:run(0, HANDLER)\n"
                               "return total + n, table.concat(errs, '|')\n";

static int run_lua(lua_State *L, const char *code, int nargs, int nres)
{
    if (luaL_loadstring(L, code) != LUA_OK) {
        printf("FAIL lua: %s\n", lua_tostring(L, -1));
        failed++;
        lua_pop(L, 1 + nargs);
        return -1;
    }
    if (nargs)
        lua_insert(L, -1 - nargs);
    if (lua_pcall(L, nargs, nres, 0) != LUA_OK) {
        printf("FAIL lua: %s\n", lua_tostring(L, -1));
        failed++;
        lua_pop(L, 1);
        return -1;
    }
    return 0;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--client") == 0) {
        /* Re-executed child: a fresh image, so no inherited Lua state or daemon to leak. */
        port = (int)strtol(argv[2], NULL, 10);
        int fd = (int)strtol(argv[3], NULL, 10);
        client_tests();
        char line[64];
        int n = snprintf(line, sizeof line, "%d %d\n", passed, failed);
        return write(fd, line, (size_t)n) == n ? 0 : 1;
    }
    /* 1000 held connections need more than the usual 1024-descriptor soft limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
        rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (pipe(sig_pipe) != 0) {
        printf("0 passed, 1 failed\n");
        return 1;
    }

    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "ecsplay.core.simserve", luaopen_ecsplay_core_simserve, 0);
    lua_pop(L, 1);
    if (run_lua(L, setup_lua, 0, 1) != 0) {
        printf("%d passed, %d failed\n", passed, failed);
        return 1;
    }
    port = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    CHECK(port > 0, "port() reports the bound port (%d)", port);

    int res[2];
    if (pipe(res) != 0)
        return 1;
    fflush(stdout);
    child_pid = fork();
    if (child_pid == 0) {
        close(res[0]);
        char p[16], f[16];
        snprintf(p, sizeof p, "%d", port);
        snprintf(f, sizeof f, "%d", res[1]);
        execl(argv[0], argv[0], "--client", p, f,
              (char *)NULL); /* argv[0]: /proc/self/exe would be valgrind */
        _exit(127);
    }
    close(res[1]);

    lua_pushcfunction(L, l_child_running);
    if (run_lua(L, serve_lua, 1, 2) == 0) {
        lua_Integer served = lua_tointeger(L, -2);
        const char *errs = lua_tostring(L, -1);
        CHECK(served == 8, "run() counted %lld handler calls, expected 8", (long long)served);
        CHECK(errs && (strstr(errs, "kaboom") || strstr(errs, "status 42")),
              "run() reports the last handler error: %s", errs ? errs : "nil");
        lua_pop(L, 2);
    }
    char buf[64] = {0};
    ssize_t n = read(res[0], buf, sizeof buf - 1);
    close(res[0]);
    int cp = 0, cf = 0;
    CHECK(n > 0 && sscanf(buf, "%d %d", &cp, &cf) == 2, "child reported its results");
    CHECK(child_status == 0, "child exited cleanly");
    passed += cp;
    failed += cf;

    /* A pending "signal" makes run() return at once instead of after 60 s. */
    if (write(sig_pipe[1], "x", 1) == 1) {
        double t0 = mono();
        run_lua(L, "return SRV:run(60, HANDLER)", 0, 1);
        lua_pop(L, 1);
        CHECK(mono() - t0 < 30, "signal fd wakes run()");
        char c;
        CHECK(read(sig_pipe[0], &c, 1) == 1, "run() does not drain the signal fd");
    }

    /* A response delayed past close(): close() must resume and release the connection. */
    int dfd = connect_srv();
    const char *dl = "GET /delay-long HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    CHECK(dfd >= 0 && send_all(dfd, dl, strlen(dl)) == 0, "delay-long request sent");
    for (int i = 0; i < 100; i++) { /* until the handler has run (it runs exactly once) */
        run_lua(L, "return SRV:run(0.05, HANDLER)", 0, 1);
        lua_Integer got = lua_tointeger(L, -1);
        lua_pop(L, 1);
        if (got > 0)
            break;
    }

    run_lua(
        L,
        "local simserve = require 'ecsplay.core.simserve'\n"
        "local ok, e = pcall(simserve.listen, { port = SRV:port() })\n"
        "assert(not ok and e:find('cannot listen on 127.0.0.1:' .. SRV:port(), 1, true), 'port in use: ' .. tostring(e))\n"
        "ok, e = pcall(simserve.listen, { host = '0.0.0.0' })\n"
        "assert(not ok and e:find('loopback'), 'non-loopback host: ' .. tostring(e))\n"
        "ok, e = pcall(simserve.listen, { port = 70000 })\n"
        "assert(not ok and e:find('0-65535'), tostring(e))\n"
        "local n, err = SRV:run(0, HANDLER)\n"
        "assert(n == 0 and err == nil, 'idle run')\n"
        "SRV:close()\n"
        "SRV:close()\n"
        "assert(not pcall(SRV.port, SRV), 'port() after close')\n"
        "assert(not pcall(SRV.run, SRV, 0, HANDLER), 'run() after close')\n"
        "do local s <close> = simserve.listen {} assert(s:port() > 0) end\n"
        "LEAK = simserve.listen { host = 'localhost' } -- freed by __gc at lua_close\n"
        "return true",
        0, 1);
    CHECK(lua_toboolean(L, -1), "listen errors, close, __close and __gc");
    lua_pop(L, 1);
    if (dfd >= 0) {
        struct resp r;
        int rc = read_resp(dfd, &r);
        CHECK(rc == 0 ? r.status == 200 && r.body_len == 5 : r.len == 0,
              "delayed answer flushed or connection closed at close() (rc %d, %zu bytes)", rc,
              r.len);
        resp_free(&r);
        close(dfd);
    }

    lua_close(L);
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
