/*
** host.c: the runtime object of the public API (include/ecsplay.h).
**
** A run gets a fresh lua_State: the C modules are preloaded, package.path is
** set so the stdlib, the playbook's folder, ECSPLAY_PATH and the user's own
** LUA_PATH_5_4 (LuaRocks trees) are all found, and everything else, from
** argument handling to exit codes, happens in Lua (ecsplay.cli.runner). All
** of it, the set-up included, runs under one lua_pcall (ep_host_main), so no
** error or allocation failure can abort the process. C keeps only what Lua
** cannot do: finding the stdlib next to the binary, signals, and holding
** secrets until they are handed over.
*/
/* dladdr() and Dl_info are GNU extensions (in libc since glibc 2.34). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lualib.h>
#include <openssl/crypto.h>

#include "ecsplay.h"
#include "ep.h"
#include "mempool.h"

/* The generational collector's multipliers (percent), see ecsplay_run's lua_gc call. */
#define EP_GC_MINOR_MUL 20
#define EP_GC_MAJOR_MUL 35

#ifndef ECSPLAY_STDLIB_DIR
#define ECSPLAY_STDLIB_DIR "/usr/local/share/ecsplay/lua"
#endif

#define EP_MAX_ARGS 256

/* Options the runtime knows, in the order runner.lua documents them. */
static const char *const ep_option_keys[] = {
    "region",   "profile",    "endpoint_url", "access_key_id", "secret_access_key", "session_token",
    "simulate", "log_format", "verbosity",    "stdlib",        "no_auth",           "report",
    NULL};

struct ecsplay_runtime {
    char *options[sizeof ep_option_keys / sizeof ep_option_keys[0]];
    char *arg_keys[EP_MAX_ARGS];
    char *arg_values[EP_MAX_ARGS];
    int nargs;
    ecsplay_log_fn log_fn;
    void *log_ud;
    int handle_signals;
    int exit_code;
    char *error;
};

static int ep_option_index(const char *key)
{
    for (int i = 0; ep_option_keys[i]; i++) {
        if (strcmp(ep_option_keys[i], key) == 0)
            return i;
    }
    return -1;
}

static int ep_is_secret(int idx)
{
    return strcmp(ep_option_keys[idx], "secret_access_key") == 0 ||
           strcmp(ep_option_keys[idx], "session_token") == 0;
}

static void ep_free_str(char **p, int wipe)
{
    if (*p) {
        if (wipe)
            OPENSSL_cleanse(*p, strlen(*p));
        free(*p);
        *p = NULL;
    }
}

static char *ep_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static void ep_set_error(ecsplay_runtime *rt, const char *msg)
{
    ep_free_str(&rt->error, 0);
    rt->error = ep_strdup(msg ? msg : "");
}

ecsplay_runtime *ecsplay_new(void)
{
    ecsplay_runtime *rt = calloc(1, sizeof *rt);
    return rt;
}

void ecsplay_free(ecsplay_runtime *rt)
{
    if (!rt)
        return;
    for (int i = 0; ep_option_keys[i]; i++)
        ep_free_str(&rt->options[i], ep_is_secret(i));
    for (int i = 0; i < rt->nargs; i++) {
        ep_free_str(&rt->arg_keys[i], 0);
        ep_free_str(&rt->arg_values[i], 0);
    }
    ep_free_str(&rt->error, 0);
    free(rt);
}

int ecsplay_set(ecsplay_runtime *rt, const char *key, const char *value)
{
    int idx = ep_option_index(key);
    char *copy;
    if (idx < 0) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "unknown option '%s' (known: region, profile, endpoint_url, "
                 "access_key_id, secret_access_key, session_token, simulate, log_format, "
                 "verbosity, stdlib, no_auth, report)",
                 key);
        ep_set_error(rt, msg);
        return -1;
    }
    copy = value ? ep_strdup(value) : NULL;
    if (value && !copy) {
        ep_set_error(rt, "out of memory");
        return -1;
    }
    ep_free_str(&rt->options[idx], ep_is_secret(idx));
    rt->options[idx] = copy;
    return 0;
}

int ecsplay_set_arg(ecsplay_runtime *rt, const char *key, const char *value)
{
    if (rt->nargs >= EP_MAX_ARGS) {
        ep_set_error(rt, "too many key=value arguments (at most 256)");
        return -1;
    }
    rt->arg_keys[rt->nargs] = ep_strdup(key);
    rt->arg_values[rt->nargs] = ep_strdup(value);
    if (!rt->arg_keys[rt->nargs] || !rt->arg_values[rt->nargs]) {
        ep_free_str(&rt->arg_keys[rt->nargs], 0);
        ep_free_str(&rt->arg_values[rt->nargs], 0);
        ep_set_error(rt, "out of memory");
        return -1;
    }
    rt->nargs++;
    return 0;
}

void ecsplay_set_log(ecsplay_runtime *rt, ecsplay_log_fn fn, void *ud)
{
    rt->log_fn = fn;
    rt->log_ud = ud;
}

void ecsplay_handle_signals(ecsplay_runtime *rt, int on) { rt->handle_signals = on; }

const char *ecsplay_error(const ecsplay_runtime *rt) { return rt->error ? rt->error : ""; }

int ecsplay_exit_code(const ecsplay_runtime *rt) { return rt->exit_code; }

static int ep_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Looks for the stdlib beside the file `path` (a binary or libecsplay.so):
** <dir>/stdlib-lua (build tree) or <dir>/../share/ecsplay/lua (installed). */
static int ep_stdlib_beside(const char *path, char *out, size_t outlen)
{
    char dir[PATH_MAX];
    char *slash;
    if ((size_t)snprintf(dir, sizeof dir, "%s", path) >= sizeof dir)
        return 0;
    slash = strrchr(dir, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    if ((size_t)snprintf(out, outlen, "%s/stdlib-lua", dir) < outlen && ep_is_dir(out))
        return 1;
    if ((size_t)snprintf(out, outlen, "%s/../share/ecsplay/lua", dir) < outlen && ep_is_dir(out))
        return 1;
    return 0;
}

/*
** The stdlib folder: the "stdlib" option, then ECSPLAY_STDLIB, then beside the
** binary (build tree: <bin>/stdlib-lua; installed: <bin>/../share/ecsplay/lua),
** then beside libecsplay.so (a program embedding an installed library lives
** anywhere, and the library may be installed under another PREFIX than the
** one compiled in), then the folder compiled in for `make install`.
*/
static int ep_find_stdlib(const ecsplay_runtime *rt, char *out, size_t outlen)
{
    const char *opt = rt->options[ep_option_index("stdlib")];
    const char *env = getenv("ECSPLAY_STDLIB");
    char exe[PATH_MAX - 64]; /* leaves room for the suffixes below */
    ssize_t n;
    if (opt && *opt) {
        snprintf(out, outlen, "%s", opt);
        return ep_is_dir(out);
    }
    if (env && *env) {
        snprintf(out, outlen, "%s", env);
        return ep_is_dir(out);
    }
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        if (ep_stdlib_beside(exe, out, outlen))
            return 1;
    }
    {
        /* The object holding this function: libecsplay.so when linked
        ** dynamically (for a static link it is the program, tried above). */
        Dl_info info;
        if (dladdr((void *)ep_stdlib_beside, &info) && info.dli_fname && info.dli_fname[0] == '/' &&
            ep_stdlib_beside(info.dli_fname, out, outlen))
            return 1;
    }
    snprintf(out, outlen, "%s", ECSPLAY_STDLIB_DIR);
    return ep_is_dir(out);
}

static void ep_preload(lua_State *L, const char *name, lua_CFunction fn)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, fn);
    lua_setfield(L, -2, name);
    lua_pop(L, 1); /* preload table */
}

/* The modules written in C (ep.h), found by require like any other. */
static void ep_preload_modules(lua_State *L)
{
    ep_preload(L, "ecsplay.core", luaopen_ecsplay_core);
    ep_preload(L, "ecsplay.core.http", luaopen_ecsplay_core_http);
    ep_preload(L, "ecsplay.core.xml", luaopen_ecsplay_core_xml);
    ep_preload(L, "ecsplay.core.crypto", luaopen_ecsplay_core_crypto);
    ep_preload(L, "ecsplay.core.sigv4", luaopen_ecsplay_core_sigv4);
    ep_preload(L, "ecsplay.core.simserve", luaopen_ecsplay_core_simserve);
}

/* package.path = stdlib first, so ecsplay.* cannot be shadowed by accident */
static void ep_set_package_path(lua_State *L, const char *stdlib)
{
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", stdlib, stdlib);
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
}

/* The log sink handed to Lua: log_sink(level, line). */
static int ep_log_sink(lua_State *L)
{
    ecsplay_runtime *rt = lua_touserdata(L, lua_upvalueindex(1));
    const char *level = luaL_checkstring(L, 1);
    const char *line = luaL_checkstring(L, 2);
    if (rt->log_fn)
        rt->log_fn(rt->log_ud, level, line);
    return 0;
}

/* Builds the options table runner.lua takes. Secrets stay in the runtime (so a
** second run works) and are wiped in ecsplay_free or when replaced. */
static void ep_push_options(lua_State *L, ecsplay_runtime *rt, const char *stdlib)
{
    lua_newtable(L);
    for (int i = 0; ep_option_keys[i]; i++) {
        if (rt->options[i]) {
            lua_pushstring(L, rt->options[i]);
            lua_setfield(L, -2, ep_option_keys[i]);
        }
    }
    lua_pushstring(L, stdlib);
    lua_setfield(L, -2, "stdlib");
    lua_newtable(L);
    for (int i = 0; i < rt->nargs; i++) {
        lua_pushstring(L, rt->arg_values[i]);
        lua_setfield(L, -2, rt->arg_keys[i]);
    }
    lua_setfield(L, -2, "args");
    lua_newtable(L); /* the order of the args, for error messages */
    for (int i = 0; i < rt->nargs; i++) {
        lua_pushstring(L, rt->arg_keys[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "arg_order");
    if (rt->log_fn) {
        lua_pushlightuserdata(L, rt);
        lua_pushcclosure(L, ep_log_sink, 1);
        lua_setfield(L, -2, "log_sink");
    }
}

/* Message handler for the outermost pcall: the runner catches everything it
** can, so reaching this means a bug in the runner itself; keep the trace. */
static int ep_msgh(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* One run: what ep_run hands to ep_host_main through lua_pcall. */
struct ep_run_call {
    ecsplay_runtime *rt;
    const char *entry, *target, *name, *stdlib;
    int argc;
    char **argv;
};

/*
** Everything a run does with its lua_State, called under lua_pcall so that an
** error or an allocation failure anywhere (the standard libraries, the
** preloads, package.path, requiring the runner, building its arguments,
** reading its results) ends the run with exit code 1 and a message instead of
** aborting the process. Calls runner[entry](options, target[, name],
** argv...) and records the exit code and message it returns.
*/
static int ep_host_main(lua_State *L)
{
    struct ep_run_call *c = lua_touserdata(L, 1);
    ecsplay_runtime *rt = c->rt;
    int nargs = 2;
    luaL_openlibs(L);
    ep_preload_modules(L);
    ep_set_package_path(L, c->stdlib);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "ecsplay.cli.runner");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, c->entry);
    if (!lua_isfunction(L, -1)) {
        rt->exit_code = 1;
        ep_set_error(rt, lua_pushfstring(L, "ecsplay: runner has no entry '%s'", c->entry));
        return 0;
    }
    ep_push_options(L, rt, c->stdlib);
    lua_pushstring(L, c->target ? c->target : "");
    if (c->name) {
        lua_pushstring(L, c->name);
        nargs++;
    }
    for (int i = 0; i < c->argc; i++) {
        lua_pushstring(L, c->argv[i]);
        nargs++;
    }
    lua_call(L, nargs, 2);
    rt->exit_code = (int)luaL_optinteger(L, -2, 1);
    ep_set_error(rt, lua_tostring(L, -1));
    return 0;
}

/* luaL_newstate's panic and warning handlers, which lauxlib keeps to itself: lua_newstate
** (to give the state its allocator) leaves a state without them. Warnings start off, and
** "@on" / "@off" switch them, as in the stand-alone lua. */
static int ep_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "PANIC: unprotected error in call to Lua API (%s)\n",
            msg ? msg : "error object is not a string");
    fflush(stderr);
    return 0; /* Lua then aborts */
}

static void ep_warn_off(void *ud, const char *msg, int tocont);
static void ep_warn_on(void *ud, const char *msg, int tocont);
static void ep_warn_cont(void *ud, const char *msg, int tocont);

static void ep_warn_control(lua_State *L, const char *msg)
{
    if (strcmp(msg, "@on") == 0)
        lua_setwarnf(L, ep_warn_on, L);
    else if (strcmp(msg, "@off") == 0)
        lua_setwarnf(L, ep_warn_off, L);
}

static void ep_warn_off(void *ud, const char *msg, int tocont)
{
    if (!tocont && *msg == '@')
        ep_warn_control(ud, msg);
}

/* A message's first piece: a control message, or "Lua warning: " and the text. */
static void ep_warn_on(void *ud, const char *msg, int tocont)
{
    if (!tocont && *msg == '@') {
        ep_warn_control(ud, msg);
        return;
    }
    fputs("Lua warning: ", stderr);
    ep_warn_cont(ud, msg, tocont);
}

/* The rest of a message in pieces; its end restores ep_warn_on for the next one. */
static void ep_warn_cont(void *ud, const char *msg, int tocont)
{
    fputs(msg, stderr);
    if (tocont) {
        lua_setwarnf(ud, ep_warn_cont, ud);
    } else {
        fputs("\n", stderr);
        fflush(stderr);
        lua_setwarnf(ud, ep_warn_on, ud);
    }
}

/*
** Runs runner[entry](options, target, argv...) in a fresh lua_State and
** records its exit code and message. entry is "run_file", "run_string", or a
** subcommand.
*/
static int ep_run(ecsplay_runtime *rt, const char *entry, const char *target, const char *name,
                  int argc, char **argv)
{
    char stdlib[PATH_MAX];
    struct ep_run_call call = {rt, entry, target, name, stdlib, argc, argv};
    ep_mempool *pool;
    lua_State *L;
    int status;
    rt->exit_code = 2;
    ep_set_error(rt, "");
    if (!ep_find_stdlib(rt, stdlib, sizeof stdlib)) {
        char msg[PATH_MAX + 200];
        snprintf(msg, sizeof msg,
                 "ecsplay: cannot find the Lua standard library (looked in %s); "
                 "set ECSPLAY_STDLIB to the folder holding ecsplay/init.lua",
                 stdlib);
        ep_set_error(rt, msg);
        return rt->exit_code;
    }
    pool = ep_mempool_new();
    L = pool ? lua_newstate(ep_mempool_lua_alloc, pool) : NULL;
    if (!L) {
        ep_mempool_free(pool);
        ep_set_error(rt, "ecsplay: out of memory");
        return rt->exit_code;
    }
    lua_atpanic(L, ep_panic);
    lua_setwarnf(L, ep_warn_off, L);
    /* Generational collection, as Lua 5.4's own lua.c runs: a rollout's garbage is mostly
    ** young (decoded answers, request buffers), and a fleet's heap peaks lower than under
    ** the incremental collector. A major collection once memory is 35 % above what the last
    ** one kept (Lua's default: 100 %): a fleet's state grows all through its run, and
    ** letting the heap double before each major showed as peak RSS (1,000 services: 204 →
    ** 154 MB) for no CPU time the runs could tell apart (bench/fleet_notes.md). The minor
    ** multiplier stays Lua's default, 20 %. */
    lua_gc(L, LUA_GCGEN, EP_GC_MINOR_MUL, EP_GC_MAJOR_MUL);
    if (rt->handle_signals)
        ep_signals_install();
    ep_signal_clear();

    /* As lua.c does: only pushes that fit the initial stack happen outside the
    ** protected call. A memory error skips the handler (it has no traceback). */
    lua_pushcfunction(L, ep_msgh);
    lua_pushcfunction(L, ep_host_main);
    lua_pushlightuserdata(L, &call);
    status = lua_pcall(L, 1, 0, 1);
    if (status != LUA_OK) {
        rt->exit_code = 1;
        ep_set_error(rt, lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                        : "ecsplay: error object is not a string");
    }
    lua_close(L);
    ep_mempool_free(pool);
    if (rt->handle_signals)
        ep_signals_restore();
    return rt->exit_code;
}

int ecsplay_run_file(ecsplay_runtime *rt, const char *path)
{
    return ep_run(rt, "run_file", path, NULL, 0, NULL);
}

int ecsplay_run_string(ecsplay_runtime *rt, const char *chunk, const char *name)
{
    return ep_run(rt, "run_string", chunk, name ? name : "=(command line)", 0, NULL);
}

int ep_run_entry(ecsplay_runtime *rt, const char *entry, int argc, char **argv)
{
    return ep_run(rt, entry, NULL, NULL, argc, argv);
}

int ep_run_command(ecsplay_runtime *rt, const char *name, int argc, char **argv)
{
    return ep_run(rt, "command", name, NULL, argc, argv);
}
