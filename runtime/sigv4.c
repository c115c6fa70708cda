/* sigv4.c: AWS Signature Version 4 header signing, stage by stage (see
 * sigv4.h), plus its Lua face ecsplay.core.sigv4 (policy such as URL parsing,
 * time formatting and argument checking lives in stdlib-lua/ecsplay/aws/sigv4.lua).
 *
 * Conformance: runs every case (header and presigned) of AWS's original sigv4 test
 * suite and of aws-c-auth's v4 suite (tests/c/test_sigv4.c). */
#include "sigv4.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <openssl/evp.h>

#include "crypto.h"
#include "ep.h"

/* ---- growable string buffer --------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom; /* sticky: once an append fails, the buffer is unusable */
} sbuf;

static void sb_reserve(sbuf *b, size_t extra)
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

static void sb_addn(sbuf *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    if (b->oom)
        return;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_adds(sbuf *b, const char *s) { sb_addn(b, s, strlen(s)); }

static void sb_addc(sbuf *b, char c) { sb_addn(b, &c, 1); }

/* Hands the string to the caller (never NULL unless out of memory). */
static char *sb_take(sbuf *b)
{
    if (!b->oom && !b->p)
        sb_reserve(b, 0);
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

static char *xstrdup(const char *s)
{
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p)
        memcpy(p, s, n + 1);
    return p;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

static int name_eq(const char *a, size_t alen, const char *lname)
{
    size_t n = strlen(lname);
    if (alen != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower(a[i]) != lname[i])
            return 0;
    return 1;
}

/* ---- URI encoding --------------------------------------------------------- */

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static void pct(sbuf *b, unsigned char c)
{
    static const char digits[] = "0123456789ABCDEF";
    char e[3] = {'%', digits[c >> 4], digits[c & 15]};
    sb_addn(b, e, 3);
}

/* RFC 3986 encoding of n bytes; keep_slash for paths; keep_pct keeps
 * existing %XX escapes (S3: the wire path is already encoded once). */
static void uri_encode(sbuf *b, const char *s, size_t n, int keep_slash, int keep_pct)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/'))
            sb_addc(b, (char)c);
        else if (keep_pct && c == '%' && i + 2 < n && ep_hexval((unsigned char)s[i + 1]) >= 0 &&
                 ep_hexval((unsigned char)s[i + 2]) >= 0) {
            sb_addc(b, '%');
            sb_addc(b, (char)(s[i + 1] >= 'a' ? s[i + 1] - 32 : s[i + 1]));
            sb_addc(b, (char)(s[i + 2] >= 'a' ? s[i + 2] - 32 : s[i + 2]));
            i += 2;
        } else
            pct(b, c);
    }
}

/* Percent-decodes into b; a '%' not followed by two hex digits stays literal. */
static void uri_decode(sbuf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = ep_hexval((unsigned char)s[i + 1])) >= 0 &&
            (lo = ep_hexval((unsigned char)s[i + 2])) >= 0) {
            sb_addc(b, (char)(hi << 4 | lo));
            i += 2;
        } else
            sb_addc(b, s[i]);
    }
}

/* ---- canonical URI -------------------------------------------------------- */

char *ep_sigv4_canonical_path(const char *path, int normalize, int double_encode)
{
    if (!path || !*path)
        path = "/";
    size_t n = strlen(path);
    sbuf norm = {0}, out = {0};
    const char *src = path;
    size_t srclen = n;
    if (normalize) {
        /* botocore's remove_dot_segments: empty and "." segments vanish (which
         * also collapses "//"), ".." pops; a trailing '/' survives only when
         * something is left. Segments are (offset, length) pairs into path. */
        size_t maxseg = n / 2 + 2, nseg = 0;
        size_t *seg = malloc(maxseg * 2 * sizeof *seg);
        if (!seg)
            return NULL;
        size_t i = 0;
        while (i <= n) {
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
        sb_addc(&norm, '/');
        for (size_t k = 0; k < nseg; k++) {
            if (k)
                sb_addc(&norm, '/');
            sb_addn(&norm, path + seg[2 * k], seg[2 * k + 1]);
        }
        if (nseg && path[n - 1] == '/')
            sb_addc(&norm, '/');
        free(seg);
        if (norm.oom) {
            free(norm.p);
            return NULL;
        }
        src = norm.p;
        srclen = norm.len;
    }
    if (src[0] != '/')
        sb_addc(&out, '/');
    uri_encode(&out, src, srclen, 1, !double_encode);
    free(norm.p);
    return sb_take(&out);
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
    sbuf dec = {0}, enc = {0};
    uri_decode(&dec, s, n);
    if (dec.oom) {
        free(dec.p);
        return NULL;
    }
    uri_encode(&enc, dec.p ? dec.p : "", dec.len, 0, 0);
    free(dec.p);
    return sb_take(&enc);
}

char *ep_sigv4_canonical_query(const char *query)
{
    if (!query || !*query)
        return xstrdup("");
    size_t n = strlen(query), cap = 1;
    for (size_t i = 0; i < n; i++)
        cap += query[i] == '&';
    qparam *ps = calloc(cap, sizeof *ps);
    if (!ps)
        return NULL;
    size_t np = 0;
    int oom = 0;
    for (size_t i = 0; i <= n && !oom;) {
        size_t j = i;
        while (j < n && query[j] != '&')
            j++;
        if (j > i) {
            const char *eq = memchr(query + i, '=', j - i);
            size_t klen = eq ? (size_t)(eq - (query + i)) : j - i;
            ps[np].k = reencode(query + i, klen);
            ps[np].v = eq ? reencode(eq + 1, (size_t)(query + j - (eq + 1))) : xstrdup("");
            if (!ps[np].k || !ps[np].v)
                oom = 1;
            np++;
        }
        i = j + 1;
    }
    sbuf out = {0};
    if (!oom) {
        qsort(ps, np, sizeof *ps, qparam_cmp);
        for (size_t k = 0; k < np; k++) {
            if (k)
                sb_addc(&out, '&');
            sb_adds(&out, ps[k].k);
            sb_addc(&out, '=');
            sb_adds(&out, ps[k].v);
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
    return sb_take(&out);
}

/* ---- canonical headers ---------------------------------------------------- */

static const char *const unsigned_headers[] = {
    "user-agent", "expect", "x-amzn-trace-id", "connection", "transfer-encoding", "authorization",
};

int ep_sigv4_is_unsigned_header(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof unsigned_headers / sizeof *unsigned_headers; i++)
        if (name_eq(name, len, unsigned_headers[i]))
            return 1;
    return 0;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

char *ep_sigv4_canonical_header_value(const char *value, size_t len)
{
    sbuf b = {0};
    size_t i = 0, end = len;
    while (i < end && is_space(value[i]))
        i++;
    while (end > i && is_space(value[end - 1]))
        end--;
    /* Folded continuation lines arrive as "v1\n  v2": the newline and the
     * indentation are one whitespace run, so they become one space. */
    for (; i < end; i++) {
        if (is_space(value[i])) {
            while (i + 1 < end && is_space(value[i + 1]))
                i++;
            sb_addc(&b, ' ');
        } else
            sb_addc(&b, value[i]);
    }
    return sb_take(&b);
}

typedef struct hentry {
    char *lname;  /* lowercase name */
    char *value;  /* canonical value */
    size_t order; /* wire order, so duplicates keep their order when sorted */
} hentry;

static int hentry_cmp(const void *a, const void *b)
{
    const hentry *x = a, *y = b;
    int c = strcmp(x->lname, y->lname);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int valid_header_name(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == ':')
            return 0;
    }
    return 1;
}

/* ---- signing key cache ---------------------------------------------------- */

#define EP_SIGV4_CACHE_SLOTS 8

static struct {
    int used;
    unsigned long stamp;
    unsigned char id[EP_SHA256_LEN];
    unsigned char key[EP_SHA256_LEN];
} key_cache[EP_SIGV4_CACHE_SLOTS];
static unsigned long cache_clock, cache_hits, cache_misses;
/* The simulator's HTTP server may sign/verify off the main thread. */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static int digest_field(EVP_MD_CTX *ctx, const void *p, size_t n)
{
    /* Length-prefixed, so ("ab","c") and ("a","bc") never share an id. */
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    return EVP_DigestUpdate(ctx, len, sizeof len) == 1 && (n == 0 || EVP_DigestUpdate(ctx, p, n) == 1);
}

static int cache_id(const char *secret, size_t secret_len, const char *date8, const char *region,
                    const char *service, const char *access_key, unsigned char id[EP_SHA256_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
             digest_field(ctx, "ecsplay-sigv4-key-id", 20) &&
             digest_field(ctx, secret, secret_len) && digest_field(ctx, date8, strlen(date8)) &&
             digest_field(ctx, region, strlen(region)) &&
             digest_field(ctx, service, strlen(service)) &&
             digest_field(ctx, access_key, strlen(access_key)) &&
             EVP_DigestFinal_ex(ctx, id, &n) == 1 && n == EP_SHA256_LEN;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

static int derive_key(const char *secret, size_t secret_len, const char *date8, const char *region,
                      const char *service, unsigned char out[EP_SHA256_LEN])
{
    unsigned char k1[EP_SHA256_LEN], k2[EP_SHA256_LEN], k3[EP_SHA256_LEN];
    size_t klen = secret_len + 4;
    unsigned char *k0 = malloc(klen);
    if (!k0)
        return EP_SIGV4_ENOMEM;
    memcpy(k0, "AWS4", 4);
    if (secret_len)
        memcpy(k0 + 4, secret, secret_len);
    int rc = ep_hmac_sha256(k0, klen, date8, strlen(date8), k1) == 0 &&
                     ep_hmac_sha256(k1, sizeof k1, region, strlen(region), k2) == 0 &&
                     ep_hmac_sha256(k2, sizeof k2, service, strlen(service), k3) == 0 &&
                     ep_hmac_sha256(k3, sizeof k3, "aws4_request", 12, out) == 0
                 ? 0
                 : EP_SIGV4_ECRYPTO;
    ep_wipe(k0, klen);
    free(k0);
    ep_wipe(k1, sizeof k1);
    ep_wipe(k2, sizeof k2);
    ep_wipe(k3, sizeof k3);
    return rc;
}

int ep_sigv4_signing_key(const char *secret, size_t secret_len, const char *date8,
                         const char *region, const char *service, const char *access_key,
                         unsigned char key_out[32])
{
    unsigned char id[EP_SHA256_LEN];
    if (cache_id(secret, secret_len, date8, region, service, access_key, id) != 0)
        return EP_SIGV4_ECRYPTO;
    pthread_mutex_lock(&cache_lock);
    size_t victim = 0;
    for (size_t i = 0; i < EP_SIGV4_CACHE_SLOTS; i++) {
        if (key_cache[i].used && ep_ct_equal(key_cache[i].id, EP_SHA256_LEN, id, EP_SHA256_LEN)) {
            key_cache[i].stamp = ++cache_clock;
            memcpy(key_out, key_cache[i].key, EP_SHA256_LEN);
            cache_hits++;
            pthread_mutex_unlock(&cache_lock);
            return 0;
        }
        if (!key_cache[i].used || (key_cache[victim].used && key_cache[i].stamp < key_cache[victim].stamp))
            victim = i;
    }
    cache_misses++;
    int rc = derive_key(secret, secret_len, date8, region, service, key_out);
    if (rc == 0) {
        /* Least recently used slot goes; its key is wiped before reuse. */
        ep_wipe(key_cache[victim].key, EP_SHA256_LEN);
        memcpy(key_cache[victim].id, id, EP_SHA256_LEN);
        memcpy(key_cache[victim].key, key_out, EP_SHA256_LEN);
        key_cache[victim].used = 1;
        key_cache[victim].stamp = ++cache_clock;
    }
    pthread_mutex_unlock(&cache_lock);
    return rc;
}

void ep_sigv4_cache_clear(void)
{
    pthread_mutex_lock(&cache_lock);
    for (size_t i = 0; i < EP_SIGV4_CACHE_SLOTS; i++) {
        ep_wipe(key_cache[i].key, EP_SHA256_LEN);
        ep_wipe(key_cache[i].id, EP_SHA256_LEN);
        key_cache[i].used = 0;
        key_cache[i].stamp = 0;
    }
    pthread_mutex_unlock(&cache_lock);
}

void ep_sigv4_cache_stats(unsigned long *hits, unsigned long *misses)
{
    pthread_mutex_lock(&cache_lock);
    if (hits)
        *hits = cache_hits;
    if (misses)
        *misses = cache_misses;
    pthread_mutex_unlock(&cache_lock);
}

/* ---- string to sign, signature, authorization ---------------------------- */

char *ep_sigv4_string_to_sign(const char *amz_date, const char *scope,
                              const char *canonical_request, size_t creq_len)
{
    char hex[EP_SHA256_HEX_LEN + 1];
    if (ep_sha256_hex(canonical_request, creq_len, hex) != 0)
        return NULL;
    sbuf b = {0};
    sb_adds(&b, EP_SIGV4_ALGORITHM "\n");
    sb_adds(&b, amz_date);
    sb_addc(&b, '\n');
    sb_adds(&b, scope);
    sb_addc(&b, '\n');
    sb_adds(&b, hex);
    return sb_take(&b);
}

int ep_sigv4_signature(const unsigned char key[32], const char *string_to_sign, size_t len,
                       char hex_out[65])
{
    unsigned char mac[EP_SHA256_LEN];
    if (ep_hmac_sha256(key, 32, string_to_sign, len, mac) != 0)
        return EP_SIGV4_ECRYPTO;
    ep_hex_encode(mac, sizeof mac, hex_out);
    return 0;
}

char *ep_sigv4_authorization(const char *access_key, const char *scope,
                             const char *signed_headers, const char *signature_hex)
{
    sbuf b = {0};
    sb_adds(&b, EP_SIGV4_ALGORITHM " Credential=");
    sb_adds(&b, access_key);
    sb_addc(&b, '/');
    sb_adds(&b, scope);
    sb_adds(&b, ", SignedHeaders=");
    sb_adds(&b, signed_headers);
    sb_adds(&b, ", Signature=");
    sb_adds(&b, signature_hex);
    return sb_take(&b);
}

/* ---- the whole signer ------------------------------------------------------ */

void ep_sigv4_result_free(ep_sigv4_result *r)
{
    if (!r)
        return;
    free(r->canonical_request);
    free(r->string_to_sign);
    free(r->signed_headers);
    free(r->scope);
    free(r->amz_date);
    free(r->authorization);
    free(r->presigned_query);
    for (size_t i = 0; i < r->nadded; i++) {
        free(r->added[i].name);
        free(r->added[i].value);
    }
    ep_wipe(r->signature, sizeof r->signature);
    memset(r, 0, sizeof *r);
}

static int valid_amz_date(const char *d)
{
    if (strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
        return 0;
    for (int i = 0; i < 15; i++)
        if (i != 8 && (d[i] < '0' || d[i] > '9'))
            return 0;
    return 1;
}

/* Scope parts go between '/' in the Credential: no '/', ',', whitespace or controls. */
static int valid_scope_part(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c == 0x7f || c == '/' || c == ',' || c == '=')
            return 0;
    }
    return 1;
}

static const ep_sigv4_header *find_header(const ep_sigv4_request *req, const char *lname)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (name_eq(req->headers[i].name, req->headers[i].name_len, lname))
            return &req->headers[i];
    return NULL;
}

static int add_header(ep_sigv4_result *r, const char *name, const char *value, size_t vlen)
{
    char *n = xstrdup(name), *v = malloc(vlen + 1);
    if (!n || !v) {
        free(n);
        free(v);
        return EP_SIGV4_ENOMEM;
    }
    memcpy(v, value, vlen);
    v[vlen] = '\0';
    r->added[r->nadded].name = n;
    r->added[r->nadded].value = v;
    r->nadded++;
    return 0;
}

/* Appends a canonical entry for one header occurrence. */
static int push_entry(hentry *es, size_t *n, const char *name, size_t nlen, const char *value,
                      size_t vlen)
{
    char *ln = malloc(nlen + 1);
    char *v = ep_sigv4_canonical_header_value(value, vlen);
    if (!ln || !v) {
        free(ln);
        free(v);
        return EP_SIGV4_ENOMEM;
    }
    for (size_t i = 0; i < nlen; i++)
        ln[i] = lower(name[i]);
    ln[nlen] = '\0';
    es[*n].lname = ln;
    es[*n].value = v;
    es[*n].order = *n;
    (*n)++;
    return 0;
}

static int check_config(const ep_sigv4_request *req, const ep_sigv4_config *cfg, char *err, size_t errlen)
{
    if (!req->method || !*req->method)
        return seterr(err, errlen, "sigv4: method is empty; expected an HTTP method such as \"POST\""), EP_SIGV4_EINVAL;
    for (const char *m = req->method; *m; m++)
        if ((unsigned char)*m <= 0x20 || (unsigned char)*m >= 0x7f)
            return seterr(err, errlen, "sigv4: method contains whitespace or a control character"), EP_SIGV4_EINVAL;
    if (!valid_scope_part(cfg->region))
        return seterr(err, errlen, "sigv4: region is missing or contains '/', ',', '=' or whitespace"), EP_SIGV4_EINVAL;
    if (!valid_scope_part(cfg->service))
        return seterr(err, errlen, "sigv4: service is missing or contains '/', ',', '=' or whitespace"), EP_SIGV4_EINVAL;
    if (!valid_scope_part(cfg->access_key))
        return seterr(err, errlen, "sigv4: access_key is missing or contains '/', ',', '=' or whitespace"), EP_SIGV4_EINVAL;
    if (!cfg->secret_key || cfg->secret_len == 0)
        return seterr(err, errlen, "sigv4: secret_key is missing or empty"), EP_SIGV4_EINVAL;
    if (req->nheaders && !req->headers)
        return seterr(err, errlen, "sigv4: headers is NULL but nheaders is %zu", req->nheaders), EP_SIGV4_EINVAL;
    if (req->body_len && !req->body)
        return seterr(err, errlen, "sigv4: body is NULL but body_len is %zu", req->body_len), EP_SIGV4_EINVAL;
    for (size_t i = 0; i < req->nheaders; i++) {
        const ep_sigv4_header *h = &req->headers[i];
        if (!h->name || !valid_header_name(h->name, h->name_len))
            return seterr(err, errlen, "sigv4: header #%zu has an invalid name (empty, or has ':', whitespace or control characters)", i + 1), EP_SIGV4_EINVAL;
        if (!h->value && h->value_len)
            return seterr(err, errlen, "sigv4: header #%zu has a NULL value", i + 1), EP_SIGV4_EINVAL;
    }
    return 0;
}

static int build(const ep_sigv4_request *req, const ep_sigv4_config *cfg, ep_sigv4_result *out,
                 char *err, size_t errlen)
{
    int rc = check_config(req, cfg, err, errlen);
    if (rc)
        return rc;
    const int verify = cfg->signed_headers != NULL;
    const int presign = !verify && cfg->presign_expires > 0;

    /* The timestamp: given, or from the request's X-Amz-Date header. */
    const ep_sigv4_header *hdate = find_header(req, "x-amz-date");
    char date[17];
    if (cfg->amz_date) {
        if (!valid_amz_date(cfg->amz_date))
            return seterr(err, errlen, "sigv4: time \"%.40s\" is not of the form YYYYMMDDTHHMMSSZ", cfg->amz_date), EP_SIGV4_EINVAL;
        if (hdate && (hdate->value_len != 16 || memcmp(hdate->value, cfg->amz_date, 16) != 0))
            return seterr(err, errlen, "sigv4: the request's X-Amz-Date header disagrees with the signing time %s", cfg->amz_date), EP_SIGV4_EINVAL;
        memcpy(date, cfg->amz_date, 17);
    } else {
        if (!hdate)
            return seterr(err, errlen, "sigv4: no signing time: give time or an X-Amz-Date header"), EP_SIGV4_EINVAL;
        if (hdate->value_len != 16)
            return seterr(err, errlen, "sigv4: X-Amz-Date header is not of the form YYYYMMDDTHHMMSSZ"), EP_SIGV4_EINVAL;
        memcpy(date, hdate->value, 16);
        date[16] = '\0';
        if (!valid_amz_date(date))
            return seterr(err, errlen, "sigv4: X-Amz-Date header is not of the form YYYYMMDDTHHMMSSZ"), EP_SIGV4_EINVAL;
    }
    out->amz_date = xstrdup(date);
    if (!out->amz_date)
        return EP_SIGV4_ENOMEM;

    char body_hex[EP_SHA256_HEX_LEN + 1];
    if (ep_sha256_hex(req->body, req->body_len, body_hex) != 0)
        return EP_SIGV4_ECRYPTO;

    /* The credential scope: date8/region/service/aws4_request. */
    char date8[9];
    memcpy(date8, date, 8);
    date8[8] = '\0';
    sbuf scope = {0};
    sb_adds(&scope, date8);
    sb_addc(&scope, '/');
    sb_adds(&scope, cfg->region);
    sb_addc(&scope, '/');
    sb_adds(&scope, cfg->service);
    sb_adds(&scope, "/aws4_request");
    out->scope = sb_take(&scope);
    if (!out->scope)
        return EP_SIGV4_ENOMEM;

    /* Headers the signer adds (normal mode only). Their order in out->added
     * is the order aws-c-auth writes them. */
    if (!verify && cfg->host && *cfg->host && !find_header(req, "host") &&
        (rc = add_header(out, "Host", cfg->host, strlen(cfg->host))))
        return rc;
    if (!verify && !presign) {
        if (cfg->session_token && *cfg->session_token && !find_header(req, "x-amz-security-token") &&
            (rc = add_header(out, "X-Amz-Security-Token", cfg->session_token, strlen(cfg->session_token))))
            return rc;
        if (!hdate && (rc = add_header(out, "X-Amz-Date", date, 16)))
            return rc;
        if (cfg->sign_body && !find_header(req, "x-amz-content-sha256") &&
            (rc = add_header(out, "x-amz-content-sha256", body_hex, EP_SHA256_HEX_LEN)))
            return rc;
    }

    /* Canonical header entries: request headers, then added ones. */
    size_t cap = req->nheaders + out->nadded, ne = 0;
    hentry *es = calloc(cap ? cap : 1, sizeof *es);
    if (!es)
        return EP_SIGV4_ENOMEM;
    const char *payload = body_hex;
    size_t payload_len = EP_SHA256_HEX_LEN;
    for (size_t i = 0; i < req->nheaders + out->nadded && rc == 0; i++) {
        const char *name, *value;
        size_t nlen, vlen;
        if (i < req->nheaders) {
            name = req->headers[i].name;
            nlen = req->headers[i].name_len;
            value = req->headers[i].value ? req->headers[i].value : "";
            vlen = req->headers[i].value_len;
        } else {
            name = out->added[i - req->nheaders].name;
            nlen = strlen(name);
            value = out->added[i - req->nheaders].value;
            vlen = strlen(value);
        }
        if (name_eq(name, nlen, "x-amz-content-sha256")) {
            payload = value;
            payload_len = vlen;
        }
        int take;
        if (verify) {
            take = 0;
            for (size_t k = 0; k < cfg->nsigned_headers && !take; k++)
                take = name_eq(name, nlen, cfg->signed_headers[k]);
        } else {
            take = !ep_sigv4_is_unsigned_header(name, nlen) &&
                   !(cfg->omit_session_token && name_eq(name, nlen, "x-amz-security-token"));
        }
        if (take)
            rc = push_entry(es, &ne, name, nlen, value, vlen);
    }
    if (rc == 0 && verify) {
        for (size_t k = 0; k < cfg->nsigned_headers; k++) {
            const char *want = cfg->signed_headers[k];
            int found = 0;
            for (size_t e = 0; e < ne && !found; e++)
                found = strcmp(es[e].lname, want) == 0;
            if (!found) {
                seterr(err, errlen, "sigv4: signed header '%.60s' is not in the request", want ? want : "(null)");
                rc = EP_SIGV4_EINVAL;
                break;
            }
        }
    }
    if (rc == 0)
        qsort(es, ne, sizeof *es, hentry_cmp);

    sbuf creq = {0}, sh = {0}, extra = {0};
    char *cpath = NULL, *cquery = NULL;
    for (size_t e = 0; rc == 0 && e < ne; e++) {
        if (e > 0 && strcmp(es[e].lname, es[e - 1].lname) == 0)
            continue;
        if (sh.len)
            sb_addc(&sh, ';');
        sb_adds(&sh, es[e].lname);
    }
    if (rc == 0 && presign) {
        /* aws-c-auth's parameter order; the canonical query sorts anyway. */
        char num[32];
        snprintf(num, sizeof num, "%ld", cfg->presign_expires);
        sb_adds(&extra, "X-Amz-Algorithm=" EP_SIGV4_ALGORITHM "&X-Amz-Credential=");
        uri_encode(&extra, cfg->access_key, strlen(cfg->access_key), 0, 0);
        sb_adds(&extra, "%2F");
        uri_encode(&extra, out->scope, strlen(out->scope), 0, 0);
        sb_adds(&extra, "&X-Amz-Date=");
        sb_adds(&extra, date);
        sb_adds(&extra, "&X-Amz-SignedHeaders=");
        uri_encode(&extra, sh.p ? sh.p : "", sh.len, 0, 0);
        sb_adds(&extra, "&X-Amz-Expires=");
        sb_adds(&extra, num);
        if (cfg->session_token && *cfg->session_token && !cfg->omit_session_token) {
            sb_adds(&extra, "&X-Amz-Security-Token=");
            uri_encode(&extra, cfg->session_token, strlen(cfg->session_token), 0, 0);
        }
        sbuf q = {0};
        if (req->query && *req->query) {
            sb_adds(&q, req->query);
            sb_addc(&q, '&');
        }
        sb_addn(&q, extra.p ? extra.p : "", extra.len);
        if (q.oom || extra.oom)
            rc = EP_SIGV4_ENOMEM;
        else
            cquery = ep_sigv4_canonical_query(q.p);
        free(q.p);
    }
    if (rc == 0) {
        cpath = ep_sigv4_canonical_path(req->path, cfg->normalize_path, cfg->double_encode);
        if (!presign)
            cquery = ep_sigv4_canonical_query(req->query);
        if (!cpath || !cquery)
            rc = EP_SIGV4_ENOMEM;
    }
    if (rc == 0) {
        sb_adds(&creq, req->method);
        sb_addc(&creq, '\n');
        sb_adds(&creq, cpath);
        sb_addc(&creq, '\n');
        sb_adds(&creq, cquery);
        sb_addc(&creq, '\n');
        for (size_t e = 0; e < ne; e++) {
            int dup = e > 0 && strcmp(es[e].lname, es[e - 1].lname) == 0;
            if (dup) {
                /* Repeated header: values joined with ',' in wire order. */
                sb_addc(&creq, ',');
                sb_adds(&creq, es[e].value);
                continue;
            }
            if (e > 0)
                sb_addc(&creq, '\n');
            sb_adds(&creq, es[e].lname);
            sb_addc(&creq, ':');
            sb_adds(&creq, es[e].value);
        }
        if (ne)
            sb_addc(&creq, '\n');
        sb_addc(&creq, '\n');
        sb_adds(&creq, sh.p ? sh.p : "");
        sb_addc(&creq, '\n');
        sb_addn(&creq, payload, payload_len);
        out->canonical_request = sb_take(&creq);
        out->signed_headers = sb_take(&sh);
        if (!out->canonical_request || !out->signed_headers)
            rc = EP_SIGV4_ENOMEM;
    } else {
        free(creq.p);
        free(sh.p);
    }
    free(cpath);
    free(cquery);
    for (size_t e = 0; e < ne; e++) {
        free(es[e].lname);
        free(es[e].value);
    }
    free(es);

    /* String to sign, key, signature, then Authorization or the query. */
    if (rc == 0) {
        out->string_to_sign = ep_sigv4_string_to_sign(date, out->scope, out->canonical_request,
                                                      strlen(out->canonical_request));
        if (!out->string_to_sign)
            rc = EP_SIGV4_ENOMEM;
    }
    unsigned char key[EP_SHA256_LEN];
    if (rc == 0)
        rc = ep_sigv4_signing_key(cfg->secret_key, cfg->secret_len, date8, cfg->region, cfg->service,
                                  cfg->access_key, key);
    if (rc == 0)
        rc = ep_sigv4_signature(key, out->string_to_sign, strlen(out->string_to_sign), out->signature);
    ep_wipe(key, sizeof key);
    if (rc == 0 && presign) {
        sbuf q = {0};
        if (req->query && *req->query) {
            sb_adds(&q, req->query);
            sb_addc(&q, '&');
        }
        sb_addn(&q, extra.p ? extra.p : "", extra.len);
        /* A token kept out of the signature still travels with the URL. */
        if (cfg->session_token && *cfg->session_token && cfg->omit_session_token) {
            sb_adds(&q, "&X-Amz-Security-Token=");
            uri_encode(&q, cfg->session_token, strlen(cfg->session_token), 0, 0);
        }
        sb_adds(&q, "&X-Amz-Signature=");
        sb_adds(&q, out->signature);
        out->presigned_query = sb_take(&q);
        if (!out->presigned_query)
            rc = EP_SIGV4_ENOMEM;
    }
    free(extra.p);
    if (rc || presign)
        return rc;
    out->authorization = ep_sigv4_authorization(cfg->access_key, out->scope, out->signed_headers,
                                                out->signature);
    if (!out->authorization)
        return EP_SIGV4_ENOMEM;
    if (!verify) {
        if ((rc = add_header(out, "Authorization", out->authorization, strlen(out->authorization))))
            return rc;
    }
    return 0;
}

int ep_sigv4_sign(const ep_sigv4_request *req, const ep_sigv4_config *cfg, ep_sigv4_result *out,
                  char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    memset(out, 0, sizeof *out);
    if (!req || !cfg) {
        seterr(err, errlen, "sigv4: request and config are required");
        return EP_SIGV4_EINVAL;
    }
    int rc = build(req, cfg, out, err, errlen);
    if (rc) {
        ep_sigv4_result_free(out);
        if (rc == EP_SIGV4_ENOMEM)
            seterr(err, errlen, "sigv4: out of memory");
        else if (rc == EP_SIGV4_ECRYPTO)
            seterr(err, errlen, "sigv4: OpenSSL hash/HMAC failure");
    }
    return rc;
}

/* ---- Lua face: ecsplay.core.sigv4 ------------------------------------------ */

#define RESULT_MT "ecsplay.core.sigv4.result"

/* Strings are read with lua_getfield then popped: they stay alive because
 * the argument table still references them and nothing here modifies it. */
static const char *field_str(lua_State *L, int t, const char *field, size_t *len, int required)
{
    lua_getfield(L, t, field);
    int ty = lua_type(L, -1);
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        if (required)
            luaL_error(L, "sigv4: field '%s' is required (a string)", field);
        if (len)
            *len = 0;
        return NULL;
    }
    if (ty != LUA_TSTRING)
        luaL_error(L, "sigv4: field '%s' must be a string, got %s", field, lua_typename(L, ty));
    const char *s = lua_tolstring(L, -1, len);
    lua_pop(L, 1);
    return s;
}

static int field_bool(lua_State *L, int t, const char *field, int dflt)
{
    lua_getfield(L, t, field);
    int ty = lua_type(L, -1);
    int v = dflt;
    if (ty == LUA_TBOOLEAN)
        v = lua_toboolean(L, -1);
    else if (ty != LUA_TNIL)
        luaL_error(L, "sigv4: field '%s' must be a boolean, got %s", field, lua_typename(L, ty));
    lua_pop(L, 1);
    return v;
}

static int result_gc(lua_State *L)
{
    ep_sigv4_result_free(luaL_checkudata(L, 1, RESULT_MT));
    return 0;
}

static void set_str(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* sign{method=, path=, query=, headers={{name, value},...}, body=, region=,
 *      service=, access_key=, secret_key=, session_token=, amz_date=, host=,
 *      normalize=, double_encode=, sign_body=, omit_session_token=,
 *      presign_expires=, signed_headers={lowercase names}}
 *   (signed_headers = verification mode; presign_expires = presigned URL)
 * -> {canonical_request=, string_to_sign=, signature=, authorization=,
 *     signed_headers=, scope=, amz_date=, presigned_query=,
 *     added={{name, value},...}} */
static int l_sign(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    ep_sigv4_request req;
    ep_sigv4_config cfg;
    memset(&req, 0, sizeof req);
    memset(&cfg, 0, sizeof cfg);
    req.method = field_str(L, 1, "method", NULL, 1);
    req.path = field_str(L, 1, "path", NULL, 0);
    req.query = field_str(L, 1, "query", NULL, 0);
    req.body = field_str(L, 1, "body", &req.body_len, 0);
    cfg.region = field_str(L, 1, "region", NULL, 1);
    cfg.service = field_str(L, 1, "service", NULL, 1);
    cfg.access_key = field_str(L, 1, "access_key", NULL, 1);
    cfg.secret_key = field_str(L, 1, "secret_key", &cfg.secret_len, 1);
    cfg.session_token = field_str(L, 1, "session_token", NULL, 0);
    cfg.amz_date = field_str(L, 1, "amz_date", NULL, 0);
    cfg.host = field_str(L, 1, "host", NULL, 0);
    cfg.normalize_path = field_bool(L, 1, "normalize", 1);
    cfg.double_encode = field_bool(L, 1, "double_encode", cfg.normalize_path);
    cfg.sign_body = field_bool(L, 1, "sign_body", 0);
    cfg.omit_session_token = field_bool(L, 1, "omit_session_token", 0);
    lua_getfield(L, 1, "presign_expires");
    if (!lua_isnil(L, -1)) {
        int isint = 0;
        lua_Integer ex = lua_tointegerx(L, -1, &isint);
        if (!isint || ex <= 0 || ex > 604800)
            return luaL_error(L, "sigv4: field 'presign_expires' must be an integer number of seconds in 1..604800");
        cfg.presign_expires = (long)ex;
    }
    lua_pop(L, 1);

    /* Arrays live in userdata so a Lua error cannot leak them. */
    lua_getfield(L, 1, "headers");
    if (!lua_isnil(L, -1)) {
        luaL_argexpected(L, lua_istable(L, -1), 1, "headers as an array of {name, value}");
        lua_Integer n = luaL_len(L, -1);
        ep_sigv4_header *hs = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *hs, 0);
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_rawgeti(L, -2, i) != LUA_TTABLE)
                return luaL_error(L, "sigv4: headers[%d] must be a {name, value} pair", (int)i);
            if (lua_rawgeti(L, -1, 1) != LUA_TSTRING || lua_rawgeti(L, -2, 2) != LUA_TSTRING)
                return luaL_error(L, "sigv4: headers[%d] must be a {name, value} pair of strings", (int)i);
            hs[i - 1].name = lua_tolstring(L, -2, &hs[i - 1].name_len);
            hs[i - 1].value = lua_tolstring(L, -1, &hs[i - 1].value_len);
            lua_pop(L, 3);
        }
        req.headers = hs;
        req.nheaders = (size_t)n;
    }
    lua_getfield(L, 1, "signed_headers");
    if (!lua_isnil(L, -1)) {
        luaL_argexpected(L, lua_istable(L, -1), 1, "signed_headers as an array of lowercase names");
        lua_Integer n = luaL_len(L, -1);
        const char **names = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *names, 0);
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_rawgeti(L, -2, i) != LUA_TSTRING)
                return luaL_error(L, "sigv4: signed_headers[%d] must be a string", (int)i);
            names[i - 1] = lua_tostring(L, -1);
            lua_pop(L, 1);
        }
        cfg.signed_headers = names;
        cfg.nsigned_headers = (size_t)n;
    }

    ep_sigv4_result *r = lua_newuserdatauv(L, sizeof *r, 0);
    memset(r, 0, sizeof *r);
    luaL_setmetatable(L, RESULT_MT);
    char err[256];
    int rc = ep_sigv4_sign(&req, &cfg, r, err, sizeof err);
    if (rc)
        return luaL_error(L, "%s", err);
    lua_createtable(L, 0, 8);
    set_str(L, "canonical_request", r->canonical_request);
    set_str(L, "string_to_sign", r->string_to_sign);
    set_str(L, "signature", r->signature);
    set_str(L, "authorization", r->authorization);
    set_str(L, "signed_headers", r->signed_headers);
    set_str(L, "scope", r->scope);
    set_str(L, "amz_date", r->amz_date);
    if (r->presigned_query)
        set_str(L, "presigned_query", r->presigned_query);
    lua_createtable(L, (int)r->nadded, 0);
    for (size_t i = 0; i < r->nadded; i++) {
        lua_createtable(L, 2, 0);
        lua_pushstring(L, r->added[i].name);
        lua_rawseti(L, -2, 1);
        lua_pushstring(L, r->added[i].value);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "added");
    ep_sigv4_result_free(r); /* now, not at GC time: it holds the signature */
    return 1;
}

static int l_canonical_path(lua_State *L)
{
    const char *p = luaL_checkstring(L, 1);
    int normalize = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
    int dbl = lua_isnoneornil(L, 3) ? normalize : lua_toboolean(L, 3);
    char *s = ep_sigv4_canonical_path(p, normalize, dbl);
    if (!s)
        return luaL_error(L, "sigv4.canonical_path: out of memory");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

static int l_canonical_query(lua_State *L)
{
    char *s = ep_sigv4_canonical_query(luaL_optstring(L, 1, ""));
    if (!s)
        return luaL_error(L, "sigv4.canonical_query: out of memory");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

static int l_canonical_header_value(lua_State *L)
{
    size_t len;
    const char *v = luaL_checklstring(L, 1, &len);
    char *s = ep_sigv4_canonical_header_value(v, len);
    if (!s)
        return luaL_error(L, "sigv4.canonical_header_value: out of memory");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

static int l_is_unsigned_header(lua_State *L)
{
    size_t len;
    const char *n = luaL_checklstring(L, 1, &len);
    lua_pushboolean(L, ep_sigv4_is_unsigned_header(n, len));
    return 1;
}

static int l_cache_clear(lua_State *L)
{
    (void)L;
    ep_sigv4_cache_clear();
    return 0;
}

static int l_cache_stats(lua_State *L)
{
    unsigned long h, m;
    ep_sigv4_cache_stats(&h, &m);
    lua_pushinteger(L, (lua_Integer)h);
    lua_pushinteger(L, (lua_Integer)m);
    return 2;
}

static const luaL_Reg sigv4_funcs[] = {
    {"sign", l_sign},
    {"canonical_path", l_canonical_path},
    {"canonical_query", l_canonical_query},
    {"canonical_header_value", l_canonical_header_value},
    {"is_unsigned_header", l_is_unsigned_header},
    {"cache_clear", l_cache_clear},
    {"cache_stats", l_cache_stats},
    {NULL, NULL},
};

int luaopen_ecsplay_core_sigv4(lua_State *L)
{
    if (luaL_newmetatable(L, RESULT_MT)) {
        lua_pushcfunction(L, result_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newlib(L, sigv4_funcs);
    return 1;
}
