/* sigv4_lua.h: a Lua state with the signer's C modules preloaded and the build tree's
 * Lua library on its path (tests run from the project root), for the SigV4 tests. */
#ifndef EP_TEST_SIGV4_LUA_H
#define EP_TEST_SIGV4_LUA_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "../../runtime/ep.h"

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
