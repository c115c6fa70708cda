/* sbuf.h: a growable, always NUL-terminated string buffer for the signer
 * (sigv4.c, sigv4_canon.c).
 *
 * Appends never fail loudly: the first allocation failure sets the sticky
 * `oom` flag, later appends do nothing, and ep_sb_take() then frees the buffer
 * and returns NULL. So a caller builds a whole string and checks once. */
#ifndef EP_SBUF_H
#define EP_SBUF_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct ep_sbuf {
    char *p;
    size_t len, cap;
    int oom; /* sticky: once an append fails, the buffer is unusable */
} ep_sbuf;

static inline void ep_sb_reserve(ep_sbuf *b, size_t extra)
{
    if (b->oom)
        return;
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) {
            b->oom = 1;
            return;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static inline void ep_sb_addn(ep_sbuf *b, const char *s, size_t n)
{
    ep_sb_reserve(b, n);
    if (b->oom)
        return;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static inline void ep_sb_adds(ep_sbuf *b, const char *s) { ep_sb_addn(b, s, strlen(s)); }

static inline void ep_sb_addc(ep_sbuf *b, char c) { ep_sb_addn(b, &c, 1); }

/* The contents so far ("" when nothing was added; never NULL). */
static inline const char *ep_sb_str(const ep_sbuf *b) { return b->p ? b->p : ""; }

/* Hands the string to the caller (never NULL unless out of memory). */
static inline char *ep_sb_take(ep_sbuf *b)
{
    if (!b->oom && !b->p)
        ep_sb_reserve(b, 0);
    if (b->oom) {
        free(b->p);
        b->p = NULL;
        return NULL;
    }
    if (b->len == 0)
        b->p[0] = '\0';
    char *p = b->p;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

/* A malloc'd copy of s[0..n) with a NUL, or NULL. */
static inline char *ep_sb_strndup(const char *s, size_t n)
{
    ep_sbuf b = {0};
    ep_sb_addn(&b, s, n);
    return ep_sb_take(&b);
}

#endif
