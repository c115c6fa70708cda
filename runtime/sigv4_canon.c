/* sigv4_canon.c: the canonical forms SigV4 signs (see sigv4.h): URI
 * encoding, the canonical path, the canonical query string, and the
 * canonical form of a header value. Pure string functions: no state, no
 * secrets; sigv4.c assembles them into the canonical request. */
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "sbuf.h"
#include "sigv4.h"

/* ---- URI encoding --------------------------------------------------------- */

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static void pct(ep_sbuf *b, unsigned char c)
{
    static const char digits[] = "0123456789ABCDEF";
    char e[3] = {'%', digits[c >> 4], digits[c & 15]};
    ep_sb_addn(b, e, 3);
}

static char upper_hex(char c) { return (char)(c >= 'a' ? c - 32 : c); }

/* A "%XX" escape at s[i] (two hex digits follow within n bytes). */
static int is_escape(const char *s, size_t i, size_t n)
{
    return s[i] == '%' && i + 2 < n && ep_hexval((unsigned char)s[i + 1]) >= 0 &&
           ep_hexval((unsigned char)s[i + 2]) >= 0;
}

void ep_sigv4_uri_encode(ep_sbuf *b, const char *s, size_t n, int keep_slash, int keep_pct)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/')) {
            ep_sb_addc(b, (char)c);
        } else if (keep_pct && is_escape(s, i, n)) {
            ep_sb_addc(b, '%');
            ep_sb_addc(b, upper_hex(s[i + 1]));
            ep_sb_addc(b, upper_hex(s[i + 2]));
            i += 2;
        } else {
            pct(b, c);
        }
    }
}

/* Percent-decodes into b; a '%' not followed by two hex digits stays literal. */
static void uri_decode(ep_sbuf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (is_escape(s, i, n)) {
            int hi = ep_hexval((unsigned char)s[i + 1]), lo = ep_hexval((unsigned char)s[i + 2]);
            ep_sb_addc(b, (char)(hi << 4 | lo));
            i += 2;
        } else {
            ep_sb_addc(b, s[i]);
        }
    }
}

/* ---- canonical URI -------------------------------------------------------- */

/* botocore's remove_dot_segments: empty and "." segments vanish (which also
 * collapses "//"), ".." pops; a trailing '/' survives only when something is
 * left. Segments are (offset, length) pairs into path. 0 or -1 (ENOMEM). */
static int remove_dot_segments(ep_sbuf *norm, const char *path, size_t n)
{
    size_t maxseg = n / 2 + 2, nseg = 0;
    size_t *seg = malloc(maxseg * 2 * sizeof *seg);
    if (!seg)
        return -1;
    for (size_t i = 0; i <= n;) {
        size_t j = i;
        while (j < n && path[j] != '/')
            j++;
        size_t len = j - i;
        if (len == 0 || (len == 1 && path[i] == '.')) {
            /* skip */
        } else if (len == 2 && path[i] == '.' && path[i + 1] == '.') {
            if (nseg)
                nseg--;
        } else if (nseg < maxseg) {
            seg[2 * nseg] = i;
            seg[2 * nseg + 1] = len;
            nseg++;
        }
        i = j + 1;
    }
    ep_sb_addc(norm, '/');
    for (size_t k = 0; k < nseg; k++) {
        if (k)
            ep_sb_addc(norm, '/');
        ep_sb_addn(norm, path + seg[2 * k], seg[2 * k + 1]);
    }
    if (nseg && path[n - 1] == '/')
        ep_sb_addc(norm, '/');
    free(seg);
    return norm->oom ? -1 : 0;
}

char *ep_sigv4_canonical_path(const char *path, int normalize, int double_encode)
{
    if (!path || !*path)
        path = "/";
    ep_sbuf norm = {0}, out = {0};
    const char *src = path;
    size_t srclen = strlen(path);
    if (normalize) {
        if (remove_dot_segments(&norm, path, srclen) != 0) {
            free(norm.p);
            return NULL;
        }
        src = norm.p;
        srclen = norm.len;
    }
    if (src[0] != '/')
        ep_sb_addc(&out, '/');
    ep_sigv4_uri_encode(&out, src, srclen, 1, !double_encode);
    free(norm.p);
    return ep_sb_take(&out);
}

/* ---- canonical query ------------------------------------------------------ */

typedef struct qparam {
    char *k, *v;
} qparam;

static int qparam_cmp(const void *a, const void *b)
{
    const qparam *x = a, *y = b;
    int c = strcmp(x->k, y->k);
    return c ? c : strcmp(x->v, y->v);
}

/* Decodes then re-encodes s[0..n) so "%E1%88%B4" and raw UTF-8 agree. */
static char *reencode(const char *s, size_t n)
{
    ep_sbuf dec = {0}, enc = {0};
    uri_decode(&dec, s, n);
    if (dec.oom) {
        free(dec.p);
        return NULL;
    }
    ep_sigv4_uri_encode(&enc, ep_sb_str(&dec), dec.len, 0, 0);
    free(dec.p);
    return ep_sb_take(&enc);
}

/* Splits query at '&' into ps (re-encoded key and value of each non-empty
 * part); *np counts the parts taken, even a half-built last one, so the
 * caller frees them all. 0 or -1 (ENOMEM). */
static int split_query(const char *query, size_t n, qparam *ps, size_t *np)
{
    for (size_t i = 0; i <= n;) {
        size_t j = i;
        while (j < n && query[j] != '&')
            j++;
        if (j > i) {
            const char *eq = memchr(query + i, '=', j - i);
            size_t klen = eq ? (size_t)(eq - (query + i)) : j - i;
            qparam *p = &ps[(*np)++];
            p->k = reencode(query + i, klen);
            p->v = eq ? reencode(eq + 1, (size_t)(query + j - (eq + 1))) : ep_sb_strndup("", 0);
            if (!p->k || !p->v)
                return -1;
        }
        i = j + 1;
    }
    return 0;
}

char *ep_sigv4_canonical_query(const char *query)
{
    if (!query || !*query)
        return ep_sb_strndup("", 0);
    size_t n = strlen(query), cap = 1;
    for (size_t i = 0; i < n; i++)
        cap += query[i] == '&';
    qparam *ps = calloc(cap, sizeof *ps);
    if (!ps)
        return NULL;
    size_t np = 0;
    int oom = split_query(query, n, ps, &np) != 0;
    ep_sbuf out = {0};
    if (!oom) {
        qsort(ps, np, sizeof *ps, qparam_cmp);
        for (size_t k = 0; k < np; k++) {
            if (k)
                ep_sb_addc(&out, '&');
            ep_sb_adds(&out, ps[k].k);
            ep_sb_addc(&out, '=');
            ep_sb_adds(&out, ps[k].v);
        }
    }
    for (size_t k = 0; k < np; k++) {
        free(ps[k].k);
        free(ps[k].v);
    }
    free(ps);
    if (oom) {
        free(out.p);
        return NULL;
    }
    return ep_sb_take(&out);
}

/* ---- canonical header value ----------------------------------------------- */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

void ep_sigv4_append_header_value(ep_sbuf *b, const char *value, size_t len)
{
    size_t i = 0, end = len;
    while (i < end && is_space(value[i]))
        i++;
    while (end > i && is_space(value[end - 1]))
        end--;
    ep_sb_reserve(b, end - i);
    /* Folded continuation lines arrive as "v1\n  v2": the newline and the
     * indentation are one whitespace run, so they become one space. */
    while (i < end) {
        size_t j = i;
        if (is_space(value[i])) {
            while (j < end && is_space(value[j]))
                j++;
            ep_sb_addc(b, ' ');
        } else {
            while (j < end && !is_space(value[j]))
                j++;
            ep_sb_addn(b, value + i, j - i);
        }
        i = j;
    }
}

char *ep_sigv4_canonical_header_value(const char *value, size_t len)
{
    ep_sbuf b = {0};
    ep_sigv4_append_header_value(&b, value, len);
    return ep_sb_take(&b);
}
