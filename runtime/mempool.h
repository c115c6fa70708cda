/* mempool.h: the Lua state's allocator (runtime/mempool.c).
 *
 * A run allocates and frees millions of small blocks (tables, strings, closures, a decoded
 * answer's pieces): a fleet rehearsal spent about a fifth of its CPU time in malloc and free.
 * Blocks of up to EP_POOL_MAX bytes come from per-size free lists carved from large chunks;
 * bigger ones go to malloc. Lua passes a block's size back when it frees or resizes it, so
 * blocks carry no header. Not shared between threads. Owner: the caller, who frees the pool
 * after lua_close (ep_mempool_free releases every chunk at once).
 */
#ifndef EP_MEMPOOL_H
#define EP_MEMPOOL_H

#include <stddef.h>

/* Sizes are rounded up to a multiple of EP_POOL_GRAIN (malloc's alignment on 64-bit
 * Linux, so a pool block is aligned as a malloc'ed one is). */
#define EP_POOL_GRAIN 16
#define EP_POOL_MAX 256
#define EP_POOL_CHUNK (256 * 1024)

typedef struct ep_mempool ep_mempool;

ep_mempool *ep_mempool_new(void); /* NULL when out of memory */
void ep_mempool_free(ep_mempool *pool);

/* A lua_Alloc (lua_newstate's first argument), with the pool as its ud. */
void *ep_mempool_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* Bytes held in chunks (pooled blocks, in use or free), for the tests and benchmarks. */
size_t ep_mempool_chunk_bytes(const ep_mempool *pool);

#endif
