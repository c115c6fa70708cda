/*
** core.c: the module ecsplay.core, what only C can give the Lua side: clocks
** (realtime, monotonic), the signal self-pipe that wakes curl_multi_poll,
** core.wait and the simulator's server, a durable append for run journals
** (fsync_append), mkdir, isatty and pid; and byte_set, the codecs' test for
** strings that need escaping.
**
** The scheduler's policy (which coroutine runs, timers, the virtual clock)
** lives in Lua (stdlib-lua/ecsplay/sched.lua); this file is its mechanism.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ecsplay.h"
#include "ep.h"

static volatile sig_atomic_t ep_pending_signal = 0;
static volatile sig_atomic_t ep_signal_count = 0;
/* Set by the handler after it writes a wake-up byte: core.signal() reads the pipe only
** then, not once per scheduler pass (a failed read() is a system call). */
static volatile sig_atomic_t ep_pipe_dirty = 0;
static int ep_pipe[2] = {-1, -1};
static struct sigaction ep_old_int, ep_old_term;
static int ep_installed = 0;

/*
** Async-signal-safe: record, wake the loop. A third signal while the first is
** still being handled (say, a rollback that hangs) restores the default
** disposition, so a fourth ends the process the ordinary way.
*/
static void ep_on_signal(int sig)
{
    int saved = errno;
    if (ep_pending_signal == 0)
        ep_pending_signal = sig;
    ep_signal_count++;
    if (ep_pipe[1] >= 0) {
        char b = (char)sig;
        ssize_t n = write(ep_pipe[1], &b, 1);
        (void)n;
        ep_pipe_dirty = 1;
    }
    if (ep_signal_count >= 3)
        signal(sig, SIG_DFL);
    errno = saved;
}

static int ep_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL, 0);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

int ep_signals_install(void)
{
    struct sigaction sa;
    if (ep_installed)
        return 0;
    if (ep_pipe[0] < 0) {
        if (pipe(ep_pipe) != 0)
            return -1;
        if (ep_set_nonblock(ep_pipe[0]) != 0 || ep_set_nonblock(ep_pipe[1]) != 0)
            return -1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ep_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: let poll() return EINTR too */
    if (sigaction(SIGINT, &sa, &ep_old_int) != 0)
        return -1;
    if (sigaction(SIGTERM, &sa, &ep_old_term) != 0)
        return -1;
    ep_installed = 1;
    return 0;
}

void ep_signals_restore(void)
{
    if (!ep_installed)
        return;
    sigaction(SIGINT, &ep_old_int, NULL);
    sigaction(SIGTERM, &ep_old_term, NULL);
    ep_installed = 0;
}

int ep_signal_fd(void) { return ep_pipe[0]; }

int ep_signal_pending(void) { return (int)ep_pending_signal; }

/* Forgets the pending signal and drains the pipe (called once delivered). */
void ep_signal_clear(void)
{
    char buf[64];
    ep_pending_signal = 0;
    ep_pipe_dirty = 0;
    if (ep_pipe[0] >= 0) {
        while (read(ep_pipe[0], buf, sizeof buf) > 0) {
        }
    }
}

/* Only drains the wake-up bytes; the signal stays pending. The flag is cleared before the
** reads, so a signal that lands between them leaves it set and its byte is read next time. */
static void ep_signal_drain(void)
{
    char buf[64];
    if (!ep_pipe_dirty)
        return;
    ep_pipe_dirty = 0;
    if (ep_pipe[0] >= 0) {
        while (read(ep_pipe[0], buf, sizeof buf) > 0) {
        }
    }
}

static double ep_clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int l_realtime(lua_State *L)
{
    lua_pushnumber(L, ep_clock(CLOCK_REALTIME));
    return 1;
}

static int l_monotonic(lua_State *L)
{
    lua_pushnumber(L, ep_clock(CLOCK_MONOTONIC));
    return 1;
}

/* core.signal() -> pending signal number, or nil */
static int l_signal(lua_State *L)
{
    int sig = ep_signal_pending();
    ep_signal_drain();
    if (sig == 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, sig);
    return 1;
}

static int l_clear_signal(lua_State *L)
{
    (void)L;
    ep_signal_clear();
    return 0;
}

static int l_signal_fd(lua_State *L)
{
    lua_pushinteger(L, ep_signal_fd());
    return 1;
}

/* core.sleep_real(seconds): a plain blocking sleep that a signal cuts short;
** for the rare places with nothing to poll (sim serve without clients). */
static int l_sleep_real(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    struct timespec ts;
    if (s <= 0)
        return 0;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
    return 0;
}

/*
** core.wait(seconds) -> true if a signal cut the wait short, else false.
** The scheduler's wait when only the clock is pending (a real-clock sleep, no
** transfer in flight): it polls the signal self-pipe alone, so a SIGINT still
** ends it at once, without loading libcurl just to call its poll. Like
** http.poll it leaves the pipe's bytes for core.signal() to consume.
*/
static int l_wait(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    int fd = ep_signal_fd();
    double deadline;
    if (!(s > 0)) { /* 0, negative or NaN: do not block */
        lua_pushboolean(L, 0);
        return 1;
    }
    deadline = ep_clock(CLOCK_MONOTONIC) + s;
    for (;;) {
        struct pollfd p;
        double remain = deadline - ep_clock(CLOCK_MONOTONIC), ms;
        int rc;
        if (remain <= 0)
            break;
        ms = remain * 1000.0 + 0.999; /* round up: never spin on 0 ms */
        p.fd = fd;
        p.events = POLLIN;
        p.revents = 0;
        rc = poll(&p, fd >= 0 ? 1 : 0, ms > (double)INT_MAX ? INT_MAX : (int)ms);
        if (rc > 0 && (p.revents & (POLLIN | POLLHUP))) {
            lua_pushboolean(L, 1);
            return 1;
        }
        /* rc == 0: time is up (checked above); EINTR: the handler wrote to the pipe,
        ** which the next poll sees at once. */
        if (rc < 0 && errno != EINTR)
            return luaL_error(L, "core.wait: poll failed: %s", strerror(errno));
    }
    lua_pushboolean(L, 0);
    return 1;
}

static int l_isatty(lua_State *L)
{
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

static int l_pid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

/*
** core.fsync_append(path, data) -> true | nil, message
** Appends and fsyncs, so a journal line survives kill -9 and power loss once
** this returns; the journal is only useful if it is never behind reality.
*/
static int l_fsync_append(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    size_t off = 0;
    if (fd < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot open %s: %s", path, strerror(errno));
        return 2;
    }
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            lua_pushnil(L);
            lua_pushfstring(L, "cannot write %s: %s", path, strerror(e));
            return 2;
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        lua_pushnil(L);
        lua_pushfstring(L, "cannot fsync %s: %s", path, strerror(e));
        return 2;
    }
    close(fd);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.mkdir(path) -> true | nil, message (an existing folder is fine) */
static int l_mkdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot create folder %s: %s", path, strerror(errno));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* has(s) of core.byte_set: whether s holds a byte of the set (a 256-bit map, upvalue 1). */
static int l_byte_set_has(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    const unsigned char *set = lua_touserdata(L, lua_upvalueindex(1));
    for (size_t i = 0; i < len; i++) {
        if (set[s[i] >> 3] & (1u << (s[i] & 7))) {
            lua_pushboolean(L, 1);
            return 1;
        }
    }
    lua_pushboolean(L, 0);
    return 1;
}

/* core.byte_set(chars) -> has(s): whether a string holds any byte of chars. The codecs ask
** it of each new string they write (does it need escaping?); a Lua pattern with a set
** costs some thirty instructions a byte, this loop a few. */
static int l_byte_set(lua_State *L)
{
    size_t len;
    const unsigned char *chars = (const unsigned char *)luaL_checklstring(L, 1, &len);
    unsigned char *set = lua_newuserdatauv(L, 32, 0);
    memset(set, 0, 32);
    for (size_t i = 0; i < len; i++)
        set[chars[i] >> 3] |= (unsigned char)(1u << (chars[i] & 7));
    lua_pushcclosure(L, l_byte_set_has, 1);
    return 1;
}

static const luaL_Reg core_lib[] = {{"byte_set", l_byte_set},
                                    {"clear_signal", l_clear_signal},
                                    {"fsync_append", l_fsync_append},
                                    {"isatty", l_isatty},
                                    {"mkdir", l_mkdir},
                                    {"monotonic", l_monotonic},
                                    {"pid", l_pid},
                                    {"realtime", l_realtime},
                                    {"signal", l_signal},
                                    {"signal_fd", l_signal_fd},
                                    {"sleep_real", l_sleep_real},
                                    {"wait", l_wait},
                                    {NULL, NULL}};

int luaopen_ecsplay_core(lua_State *L)
{
    luaL_newlib(L, core_lib);
    lua_pushliteral(L, ECSPLAY_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
