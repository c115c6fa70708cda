/* sigv4_test.h: what the SigV4 tests share: the suites' example key pair and signing
 * context, and a Lua state with the signer's C modules preloaded and the build tree's Lua
 * library on its path (tests run from the project root). */
#ifndef EP_TEST_SIGV4_TEST_H
#define EP_TEST_SIGV4_TEST_H

#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "../../runtime/ep.h"
#include "../../runtime/sigv4.h"

#define AK "AKIDEXAMPLE"
#define SK "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

/* The suites' context: us-east-1, service "service", the example key pair, paths
 * normalized and double-encoded; no date (each test sets its own). */
static inline ep_sigv4_config sigv4_suite_config(void)
{
    ep_sigv4_config c;
    memset(&c, 0, sizeof c);
    c.region = "us-east-1";
    c.service = "service";
    c.access_key = AK;
    c.secret_key = SK;
    c.secret_len = strlen(SK);
    c.normalize_path = c.double_encode = 1;
    return c;
}

static inline lua_State *sigv4_lua_state(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_ecsplay_core_sigv4);
    lua_setfield(L, -2, "ecsplay.core.sigv4");
    lua_pushcfunction(L, luaopen_ecsplay_core_crypto);
    lua_setfield(L, -2, "ecsplay.core.crypto");
    lua_pop(L, 1);
    lua_getglobal(L, "package");
    lua_pushstring(L, "stdlib-lua/?.lua;stdlib-lua/?/init.lua");
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    return L;
}

#endif
