/*
** mempool.c: the Lua state's allocator (see mempool.h for why).
**
** Size class c (1 .. EP_POOL_MAX / EP_POOL_GRAIN) holds blocks of c * EP_POOL_GRAIN bytes.
** A free block's first word links it to the next free block of its class. New blocks are
** cut from the current chunk; what is left of a chunk when the next is needed becomes one
** free block of the class it fits, so nothing is wasted. Freed blocks stay in their class
** for reuse (a run's mix of sizes is steady) and go back to the system with their chunks
** when the pool is freed.
**
** Under AddressSanitizer a free block and a chunk's uncut space are poisoned, so a use
** after free or an overflow into a neighbour is reported as it would be with malloc.
*/
#include <stdlib.h>
#include <string.h>

#include "mempool.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define EP_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define EP_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define EP_POISON(p, n) ((void)(p), (void)(n))
#define EP_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#if defined(__GNUC__)
#define EP_PREFETCH(p) __builtin_prefetch((p), 1)
#else
#define EP_PREFETCH(p) ((void)(p))
#endif

#define EP_POOL_CLASSES (EP_POOL_MAX / EP_POOL_GRAIN)

/* A chunk's header, padded to the grain so the blocks after it are aligned. */
typedef union ep_pool_chunk {
    union ep_pool_chunk *next;
    char pad[EP_POOL_GRAIN];
} ep_pool_chunk;

struct ep_mempool {
    void *free[EP_POOL_CLASSES + 1]; /* [c]: the first free block of class c */
    char *cut;                       /* the current chunk's uncut space: [cut, end) */
    char *end;
    ep_pool_chunk *chunks; /* every chunk, to free them with the pool */
    size_t chunk_bytes;
};

static size_t class_of(size_t size) { return (size + EP_POOL_GRAIN - 1) / EP_POOL_GRAIN; }

ep_mempool *ep_mempool_new(void) { return calloc(1, sizeof(ep_mempool)); }

void ep_mempool_free(ep_mempool *pool)
{
    if (!pool)
        return;
    for (ep_pool_chunk *c = pool->chunks; c;) {
        ep_pool_chunk *next = c->next;
        EP_UNPOISON(c, EP_POOL_CHUNK);
        free(c);
        c = next;
    }
    free(pool);
}

size_t ep_mempool_chunk_bytes(const ep_mempool *pool) { return pool ? pool->chunk_bytes : 0; }

static void give(ep_mempool *pool, void *block, size_t cls)
{
    EP_UNPOISON(block, sizeof(void *));
    *(void **)block = pool->free[cls];
    pool->free[cls] = block;
    EP_POISON(block, cls * EP_POOL_GRAIN);
}

/* A new chunk to cut from; the old one's rest becomes a free block. 0 when out of memory. */
static int next_chunk(ep_mempool *pool)
{
    ep_pool_chunk *c = malloc(EP_POOL_CHUNK);
    if (!c)
        return 0;
    if (pool->end > pool->cut) {
        give(pool, pool->cut, (size_t)(pool->end - pool->cut) / EP_POOL_GRAIN);
    }
    c->next = pool->chunks;
    pool->chunks = c;
    pool->chunk_bytes += EP_POOL_CHUNK;
    pool->cut = (char *)(c + 1);
    pool->end = (char *)c + EP_POOL_CHUNK;
    EP_POISON(pool->cut, (size_t)(pool->end - pool->cut));
    return 1;
}

/* A block of class cls (size bytes asked for), or NULL when out of memory. */
static void *take(ep_mempool *pool, size_t cls, size_t size)
{
    void *block = pool->free[cls];
    if (block) {
        EP_UNPOISON(block, sizeof(void *));
        pool->free[cls] = *(void **)block;
        /* the next block of this class is likely out of cache (freed by a sweep long
        ** ago): fetch it now, so that taking it does not wait */
        EP_PREFETCH(pool->free[cls]);
    } else {
        size_t bytes = cls * EP_POOL_GRAIN;
        if ((size_t)(pool->end - pool->cut) < bytes && !next_chunk(pool))
            return NULL;
        block = pool->cut;
        pool->cut += bytes;
    }
    EP_UNPOISON(block, size);
    return block;
}

/* A block of any size: pooled when small. */
static void *take_any(ep_mempool *pool, size_t size)
{
    return size <= EP_POOL_MAX ? take(pool, class_of(size), size) : malloc(size);
}

static void give_any(ep_mempool *pool, void *block, size_t size)
{
    if (size <= EP_POOL_MAX)
        give(pool, block, class_of(size));
    else
        free(block);
}

void *ep_mempool_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    ep_mempool *pool = ud;
    if (nsize == 0) {
        if (ptr)
            give_any(pool, ptr, osize);
        return NULL;
    }
    if (!ptr) /* osize is then the kind of object, not a size */
        return take_any(pool, nsize);
    if (osize > EP_POOL_MAX && nsize > EP_POOL_MAX)
        return realloc(ptr, nsize);
    if (osize <= EP_POOL_MAX && nsize <= EP_POOL_MAX && class_of(osize) == class_of(nsize)) {
        EP_UNPOISON(ptr, nsize);
        return ptr;
    }
    void *block = take_any(pool, nsize);
    if (!block)
        return NULL; /* Lua keeps ptr and raises its memory error */
    memcpy(block, ptr, osize < nsize ? osize : nsize);
    give_any(pool, ptr, osize);
    return block;
}
