/*
 * test_mempool: the Lua state's allocator (runtime/mempool.c) keeps every byte a block
 * held through resizes within and across size classes and to and from malloc'ed sizes,
 * hands a freed block back out for its class, cuts a chunk's rest into a free block
 * rather than losing it, and carries a whole Lua state (a garbage-heavy script, then
 * lua_close) with every chunk released (valgrind and AddressSanitizer see the rest).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "mempool.h"

#include "check.h"

static void *alloc(ep_mempool *p, void *ptr, size_t osize, size_t nsize)
{
    return ep_mempool_lua_alloc(p, ptr, osize, nsize);
}

static void fill(unsigned char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(seed + i * 7);
}

static int holds(const unsigned char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(seed + i * 7))
            return 0;
    return 1;
}

/* Every resize keeps the bytes both sizes share, whichever side of EP_POOL_MAX each is on. */
static void resizes_keep_bytes(void)
{
    static const size_t sizes[] = {1, 8, 15, 16, 17, 100, 255, 256, 257, 300, 512, 4096, 70000};
    const size_t n = sizeof sizes / sizeof *sizes;
    ep_mempool *p = ep_mempool_new();
    int all = 1;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            unsigned char *b = alloc(p, NULL, 0, sizes[i]);
            if (!b) {
                all = 0;
                continue;
            }
            fill(b, sizes[i], (unsigned)(i * 31 + j));
            unsigned char *r = alloc(p, b, sizes[i], sizes[j]);
            size_t keep = sizes[i] < sizes[j] ? sizes[i] : sizes[j];
            if (!r || !holds(r, keep, (unsigned)(i * 31 + j))) {
                printf("  resize %zu -> %zu lost bytes\n", sizes[i], sizes[j]);
                all = 0;
            }
            if (r) {
                fill(r, sizes[j], 3); /* the whole new size is writable */
                alloc(p, r, sizes[j], 0);
            }
        }
    }
    check(all, "resizes between pooled and malloc'ed sizes keep the shared bytes");
    ep_mempool_free(p);
}

/* A freed block is the next one its class hands out; another class does not take it; a
 * resize within a class keeps the block where it is. */
static void reuse_by_class(void)
{
    ep_mempool *p = ep_mempool_new();
    void *a = alloc(p, NULL, 0, 40);
    void *b = alloc(p, NULL, 0, 40);
    check(a && b && a != b, "two live blocks of a class are distinct");
    check(((uintptr_t)a % EP_POOL_GRAIN) == 0 && ((uintptr_t)b % EP_POOL_GRAIN) == 0,
          "pooled blocks are aligned to the grain");
    alloc(p, a, 40, 0);
    void *other = alloc(p, NULL, 0, 100);
    check(other != a, "a freed block is not handed to another class");
    void *again = alloc(p, NULL, 0, 33); /* 33 and 40 round to the same class */
    check(again == a, "a freed block is the next its class hands out");
    check(alloc(p, again, 33, 48) == again, "a resize within the class keeps the block");
    alloc(p, again, 48, 0);
    alloc(p, b, 40, 0);
    alloc(p, other, 100, 0);
    ep_mempool_free(p);
}

/* Filling chunks with blocks that do not divide a chunk evenly: each chunk's rest becomes a
 * free block of the class it fits, handed out before anything new is cut. */
static void chunk_rest_is_kept(void)
{
    ep_mempool *p = ep_mempool_new();
    const size_t big = EP_POOL_MAX;
    size_t per_chunk = (EP_POOL_CHUNK - EP_POOL_GRAIN) / big;
    size_t rest = (EP_POOL_CHUNK - EP_POOL_GRAIN) - per_chunk * big;
    void *first = NULL;
    for (size_t i = 0; i <= per_chunk; i++) { /* one more than a chunk holds */
        void *b = alloc(p, NULL, 0, big);
        if (i == 0)
            first = b;
    }
    check(ep_mempool_chunk_bytes(p) == 2 * (size_t)EP_POOL_CHUNK,
          "a second chunk when the first is full");
    if (rest > 0) {
        unsigned char *r = alloc(p, NULL, 0, rest);
        unsigned char *start = first;
        check(r == start + per_chunk * big, "the first chunk's rest is the next block of its size");
    } else {
        check(1, "the chunk divides evenly (no rest to keep)");
    }
    ep_mempool_free(p); /* frees every block with its chunk */
}

/* A Lua state on the pool: tables, strings and closures made and dropped through many
 * collections, the results checked, then closed and the pool freed. */
static void lua_state_runs(void)
{
    ep_mempool *p = ep_mempool_new();
    lua_State *L = lua_newstate(ep_mempool_lua_alloc, p);
    check(L != NULL, "a state on the pool");
    if (!L) {
        ep_mempool_free(p);
        return;
    }
    luaL_openlibs(L);
    const char *script =
        "local keep, sum = {}, 0\n"
        "for i = 1, 20000 do\n"
        "  local t = { i, tostring(i), name = 'n' .. i, f = function() return i end }\n"
        "  if i % 100 == 0 then keep[#keep + 1] = t end\n"
        "  local s = string.rep('x', i % 700)\n"
        "  sum = sum + #s + t.f()\n"
        "end\n"
        "collectgarbage() collectgarbage('generational') collectgarbage()\n"
        "local ok = #keep == 200\n"
        "for k, t in ipairs(keep) do ok = ok and t[1] == k * 100 and t.name == 'n' .. k * 100 end\n"
        "return ok, sum\n";
    int rc = luaL_dostring(L, script);
    check(rc == LUA_OK, "the script runs");
    if (rc == LUA_OK) {
        check(lua_toboolean(L, -2), "kept tables hold what they were given");
        long long want = 0;
        for (long long i = 1; i <= 20000; i++)
            want += i % 700 + i;
        check(lua_tointeger(L, -1) == want, "the sum over made and dropped values");
    } else {
        printf("  %s\n", lua_tostring(L, -1));
    }
    check(ep_mempool_chunk_bytes(p) > 0, "the state's small blocks came from the pool");
    lua_close(L);
    ep_mempool_free(p);
}

int main(void)
{
    resizes_keep_bytes();
    reuse_by_class();
    chunk_rest_is_kept();
    lua_state_runs();
    ep_mempool_free(NULL);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
