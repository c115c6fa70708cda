/* sigv4_prepared.c: the prepared signer (see sigv4.h): SigV4 header signing for a
 * caller that signs many requests to one URL.
 *
 * The stages are sigv4.c's (canonical request -> string to sign -> signature ->
 * Authorization) over the same canonical forms (sigv4_canon.c) and the same signing key
 * (sigv4_key.c); what differs is where the work goes. The canonical path and query,
 * region, service and Host are checked and made once, in ep_sigv4_prepare. A signing
 * lowercases and canonicalizes its headers into one buffer, sorts them by insertion (a
 * request has a handful), and builds its strings in buffers the signer keeps from one
 * signing to the next. The signing key is kept for its day while the caller says the
 * credentials are unchanged, so the secret is not hashed again per request, and with it
 * the HMAC's key pads already hashed (crypto.h's ep_hasher: two SHA-256 blocks fewer a
 * signature); one digest context serves every hash; the hash of the last body is kept
 * with a copy of it, so repeated polls with the same body hash it once.
 *
 * Owner of everything here: the ep_sigv4_prepared object (ep_sigv4_prepared_free). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "sbuf.h"
#include "sigv4.h"

/* One signed header occurrence: offsets into `arena` (which may move as it grows). */
typedef struct pentry {
    size_t name_off, name_len, value_off, value_len;
    size_t order; /* wire order, so duplicates keep it */
} pentry;

struct ep_sigv4_prepared {
    char *region, *service, *host; /* host may be NULL */
    char *cpath, *cquery;
    int sign_body, omit_session_token;
    /* per-signing scratch, reused */
    ep_sbuf arena; /* lowercase names and canonical values */
    ep_sbuf creq;  /* canonical request */
    ep_sbuf sts;   /* string to sign */
    ep_sbuf authz; /* Authorization */
    ep_sbuf signed_names;
    pentry *es;
    size_t es_cap;
    /* the signing key for key_date8, from the credentials of the last signing */
    int key_valid;
    char key_date8[9];
    unsigned char key[EP_SHA256_LEN];
    ep_hasher *hasher; /* made on the first signing; holds the key's pads while key_valid */
    /* the last body hashed (a copy, at most BODY_MEMO_MAX bytes) and its hash */
    char *memo_body;
    size_t memo_len, memo_cap;
    int memo_valid;
    char memo_hex[EP_SHA256_HEX_LEN + 1];
};

/* Bodies longer than this are hashed every time rather than copied. */
#define BODY_MEMO_MAX (64 * 1024)
/* SHA-256 of the empty body (GET and most query-less requests). */
static const char EMPTY_BODY_HEX[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char *dup_or_null(const char *s) { return s ? ep_sb_strndup(s, strlen(s)) : NULL; }

void ep_sigv4_prepared_free(ep_sigv4_prepared *p)
{
    if (!p)
        return;
    ep_wipe(p->key, sizeof p->key);
    ep_hasher_free(p->hasher);
    if (p->memo_body)
        ep_wipe(p->memo_body, p->memo_cap); /* a body may carry a playbook's secrets */
    free(p->memo_body);
    free(p->region);
    free(p->service);
    free(p->host);
    free(p->cpath);
    free(p->cquery);
    free(p->arena.p);
    free(p->creq.p);
    free(p->sts.p);
    free(p->authz.p);
    free(p->signed_names.p);
    free(p->es);
    free(p);
}

ep_sigv4_prepared *ep_sigv4_prepare(const ep_sigv4_prepare_config *c, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!c || !ep_sigv4_valid_scope_part(c->region)) {
        seterr(err, errlen, "sigv4: region is missing or has '/', ',', '=' or whitespace");
        return NULL;
    }
    if (!ep_sigv4_valid_scope_part(c->service)) {
        seterr(err, errlen, "sigv4: service is missing or has '/', ',', '=' or whitespace");
        return NULL;
    }
    ep_sigv4_prepared *p = calloc(1, sizeof *p);
    if (!p) {
        seterr(err, errlen, "sigv4: out of memory");
        return NULL;
    }
    p->region = dup_or_null(c->region);
    p->service = dup_or_null(c->service);
    p->host = c->host && *c->host ? dup_or_null(c->host) : NULL;
    p->cpath = ep_sigv4_canonical_path(c->path, c->normalize_path, c->double_encode);
    p->cquery = ep_sigv4_canonical_query(c->query);
    p->sign_body = c->sign_body;
    p->omit_session_token = c->omit_session_token;
    if (!p->region || !p->service || (c->host && *c->host && !p->host) || !p->cpath || !p->cquery) {
        ep_sigv4_prepared_free(p);
        seterr(err, errlen, "sigv4: out of memory");
        return NULL;
    }
    return p;
}

/* ---- one signing ---------------------------------------------------------- */

static int is_signed_name(const ep_sigv4_prepared *p, const char *name, size_t nlen)
{
    return !ep_sigv4_is_unsigned_header(name, nlen) &&
           !(p->omit_session_token && ep_sigv4_name_eq(name, nlen, "x-amz-security-token"));
}

/* Appends one header occurrence's lowercase name and canonical value. */
static int push(ep_sigv4_prepared *p, size_t *n, const char *name, size_t nlen, const char *value,
                size_t vlen)
{
    if (*n == p->es_cap) {
        size_t cap = p->es_cap ? p->es_cap * 2 : 16;
        pentry *es = realloc(p->es, cap * sizeof *es);
        if (!es)
            return EP_SIGV4_ENOMEM;
        p->es = es;
        p->es_cap = cap;
    }
    pentry *e = &p->es[*n];
    ep_sbuf *a = &p->arena;
    e->name_off = a->len;
    e->name_len = nlen;
    ep_sb_reserve(a, nlen);
    if (a->oom)
        return EP_SIGV4_ENOMEM;
    for (size_t i = 0; i < nlen; i++) {
        char ch = name[i];
        a->p[a->len + i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    a->len += nlen;
    e->value_off = a->len;
    ep_sigv4_append_header_value(a, value, vlen);
    e->value_len = a->len - e->value_off;
    e->order = *n;
    (*n)++;
    return a->oom ? EP_SIGV4_ENOMEM : 0;
}

static int entry_cmp(const ep_sigv4_prepared *p, const pentry *x, const pentry *y)
{
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(p->arena.p + x->name_off, p->arena.p + y->name_off, n);
    if (c)
        return c;
    if (x->name_len != y->name_len)
        return x->name_len < y->name_len ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int same_name(const ep_sigv4_prepared *p, const pentry *x, const pentry *y)
{
    return x->name_len == y->name_len &&
           memcmp(p->arena.p + x->name_off, p->arena.p + y->name_off, x->name_len) == 0;
}

/* Insertion sort: a request signs a handful of headers. */
static void sort_entries(ep_sigv4_prepared *p, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        pentry e = p->es[i];
        size_t j = i;
        while (j > 0 && entry_cmp(p, &p->es[j - 1], &e) > 0) {
            p->es[j] = p->es[j - 1];
            j--;
        }
        p->es[j] = e;
    }
}

/* The headers signed: the request's, then those the signer adds. Sets the add_* flags and
 * the payload hash (the body's, or the request's own x-amz-content-sha256). */
static int collect(ep_sigv4_prepared *p, const ep_sigv4_header *hs, size_t nh, const char *token,
                   ep_sigv4_signed *out, const char **payload, size_t *payload_len, size_t *ne,
                   char *err, size_t errlen)
{
    int have_host = 0, have_token = 0, have_sha = 0;
    const ep_sigv4_header *hdate = NULL;
    int rc;
    for (size_t i = 0; i < nh; i++) {
        const ep_sigv4_header *h = &hs[i];
        if (!h->name || !ep_sigv4_valid_header_name(h->name, h->name_len)) {
            seterr(err, errlen,
                   "sigv4: header #%zu has an invalid name (empty, or has ':', whitespace or "
                   "control characters)",
                   i + 1);
            return EP_SIGV4_EINVAL;
        }
        const char *v = h->value ? h->value : "";
        if (ep_sigv4_name_eq(h->name, h->name_len, "host"))
            have_host = 1;
        else if (ep_sigv4_name_eq(h->name, h->name_len, "x-amz-date"))
            hdate = h;
        else if (ep_sigv4_name_eq(h->name, h->name_len, "x-amz-security-token"))
            have_token = 1;
        else if (ep_sigv4_name_eq(h->name, h->name_len, "x-amz-content-sha256")) {
            have_sha = 1;
            *payload = v;
            *payload_len = h->value_len;
        }
        if (is_signed_name(p, h->name, h->name_len) &&
            (rc = push(p, ne, h->name, h->name_len, v, h->value_len)))
            return rc;
    }
    if (hdate && (hdate->value_len != 16 || memcmp(hdate->value, out->amz_date, 16) != 0)) {
        seterr(err, errlen,
               "sigv4: the request's X-Amz-Date header disagrees with the signing time %s",
               out->amz_date);
        return EP_SIGV4_EINVAL;
    }
    out->add_host = p->host && !have_host;
    out->add_token = token && !have_token;
    out->add_date = hdate == NULL;
    out->add_content_sha = p->sign_body && !have_sha;
    if (out->add_content_sha) {
        *payload = out->body_hex;
        *payload_len = EP_SHA256_HEX_LEN;
    }
    /* in the order sigv4.c adds them (the sort keeps duplicates in this order) */
    if (out->add_host && (rc = push(p, ne, "Host", 4, p->host, strlen(p->host))))
        return rc;
    if (out->add_token && !p->omit_session_token &&
        (rc = push(p, ne, "X-Amz-Security-Token", 20, token, strlen(token))))
        return rc;
    if (out->add_date && (rc = push(p, ne, "X-Amz-Date", 10, out->amz_date, 16)))
        return rc;
    if (out->add_content_sha &&
        (rc = push(p, ne, "x-amz-content-sha256", 20, out->body_hex, EP_SHA256_HEX_LEN)))
        return rc;
    sort_entries(p, *ne);
    return 0;
}

/* Canonical request and the signed-header list from the sorted entries. */
static void canonical_request(ep_sigv4_prepared *p, const char *method, size_t ne,
                              const char *payload, size_t payload_len)
{
    ep_sbuf *b = &p->creq, *names = &p->signed_names;
    const char *a = p->arena.p;
    ep_sb_adds(b, method);
    ep_sb_addc(b, '\n');
    ep_sb_adds(b, p->cpath);
    ep_sb_addc(b, '\n');
    ep_sb_adds(b, p->cquery);
    ep_sb_addc(b, '\n');
    for (size_t e = 0; e < ne; e++) {
        const pentry *x = &p->es[e];
        if (e > 0 && same_name(p, x, &p->es[e - 1])) {
            ep_sb_addc(b, ',');
            ep_sb_addn(b, a + x->value_off, x->value_len);
            continue;
        }
        if (e > 0) {
            ep_sb_addc(b, '\n');
            ep_sb_addc(names, ';');
        }
        ep_sb_addn(b, a + x->name_off, x->name_len);
        ep_sb_addc(b, ':');
        ep_sb_addn(b, a + x->value_off, x->value_len);
        ep_sb_addn(names, a + x->name_off, x->name_len);
    }
    if (ne)
        ep_sb_addc(b, '\n');
    ep_sb_addc(b, '\n');
    ep_sb_addn(b, ep_sb_str(names), names->len);
    ep_sb_addc(b, '\n');
    ep_sb_addn(b, payload, payload_len);
}

/* The body's hash: the empty body's is a constant, the last body's is remembered. */
static int body_hash(ep_sigv4_prepared *p, const char *body, size_t len,
                     char hex[EP_SHA256_HEX_LEN + 1])
{
    if (len == 0) {
        memcpy(hex, EMPTY_BODY_HEX, sizeof EMPTY_BODY_HEX);
        return 0;
    }
    if (p->memo_valid && p->memo_len == len && memcmp(p->memo_body, body, len) == 0) {
        memcpy(hex, p->memo_hex, sizeof p->memo_hex);
        return 0;
    }
    if (ep_hasher_sha256_hex(p->hasher, body, len, hex) != 0)
        return EP_SIGV4_ECRYPTO;
    if (len > BODY_MEMO_MAX)
        return 0;
    p->memo_valid = 0;
    if (len > p->memo_cap) {
        size_t cap = len < 256 ? 256 : len;
        char *m = malloc(cap);
        if (!m)
            return 0; /* not remembered: nothing else depends on it */
        if (p->memo_body)
            ep_wipe(p->memo_body, p->memo_cap);
        free(p->memo_body);
        p->memo_body = m;
        p->memo_cap = cap;
    }
    memcpy(p->memo_body, body, len);
    p->memo_len = len;
    memcpy(p->memo_hex, hex, sizeof p->memo_hex);
    p->memo_valid = 1;
    return 0;
}

/* String to sign, signature and Authorization. The scope sits in `sts`, after its date. */
static int sign_strings(ep_sigv4_prepared *p, const char *access_key, const char *secret_key,
                        size_t secret_len, int same_credentials, ep_sigv4_signed *out)
{
    char hex[EP_SHA256_HEX_LEN + 1], date8[9];
    if (ep_hasher_sha256_hex(p->hasher, p->creq.p, p->creq.len, hex) != 0)
        return EP_SIGV4_ECRYPTO;
    memcpy(date8, out->amz_date, 8);
    date8[8] = '\0';
    ep_sbuf *s = &p->sts;
    ep_sb_adds(s, EP_SIGV4_ALGORITHM "\n");
    ep_sb_addn(s, out->amz_date, 16);
    ep_sb_addc(s, '\n');
    size_t scope_off = s->len;
    ep_sb_addn(s, date8, 8);
    ep_sb_addc(s, '/');
    ep_sb_adds(s, p->region);
    ep_sb_addc(s, '/');
    ep_sb_adds(s, p->service);
    ep_sb_adds(s, "/aws4_request");
    size_t scope_len = s->len - scope_off;
    ep_sb_addc(s, '\n');
    ep_sb_addn(s, hex, EP_SHA256_HEX_LEN);
    if (s->oom)
        return EP_SIGV4_ENOMEM;
    if (!(same_credentials && p->key_valid && memcmp(p->key_date8, date8, 9) == 0)) {
        p->key_valid = 0;
        ep_wipe(p->key, sizeof p->key);
        if (ep_sigv4_signing_key(secret_key, secret_len, date8, p->region, p->service, access_key,
                                 p->key) != 0 ||
            ep_hasher_set_key(p->hasher, p->key, sizeof p->key) != 0)
            return EP_SIGV4_ECRYPTO;
        memcpy(p->key_date8, date8, 9);
        p->key_valid = 1;
    }
    unsigned char mac[EP_SHA256_LEN];
    if (ep_hasher_hmac(p->hasher, s->p, s->len, mac) != 0)
        return EP_SIGV4_ECRYPTO;
    ep_hex_encode(mac, sizeof mac, out->signature);
    ep_wipe(mac, sizeof mac);
    ep_sbuf *z = &p->authz;
    ep_sb_adds(z, EP_SIGV4_ALGORITHM " Credential=");
    ep_sb_adds(z, access_key);
    ep_sb_addc(z, '/');
    ep_sb_addn(z, s->p + scope_off, scope_len);
    ep_sb_adds(z, ", SignedHeaders=");
    ep_sb_addn(z, ep_sb_str(&p->signed_names), p->signed_names.len);
    ep_sb_adds(z, ", Signature=");
    ep_sb_addn(z, out->signature, 64);
    return z->oom ? EP_SIGV4_ENOMEM : 0;
}

static int valid_method(const char *m)
{
    if (!m || !*m)
        return 0;
    for (; *m; m++)
        if ((unsigned char)*m <= 0x20 || (unsigned char)*m >= 0x7f)
            return 0;
    return 1;
}

int ep_sigv4_sign_prepared(ep_sigv4_prepared *p, const char *method, const ep_sigv4_header *hs,
                           size_t nh, const char *body, size_t body_len, const char *amz_date,
                           const char *access_key, const char *secret_key, size_t secret_len,
                           const char *session_token, int same_credentials, ep_sigv4_signed *out,
                           char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    memset(out, 0, sizeof *out);
    if (!valid_method(method)) {
        seterr(err, errlen, "sigv4: method is empty or has whitespace or control characters");
        return EP_SIGV4_EINVAL;
    }
    if (!amz_date || !ep_sigv4_valid_amz_date(amz_date)) {
        seterr(err, errlen, "sigv4: time is not of the form YYYYMMDDTHHMMSSZ");
        return EP_SIGV4_EINVAL;
    }
    if (!ep_sigv4_valid_scope_part(access_key)) {
        seterr(err, errlen, "sigv4: access_key is missing or has '/', ',', '=' or whitespace");
        return EP_SIGV4_EINVAL;
    }
    if (!secret_key || !secret_len) {
        seterr(err, errlen, "sigv4: secret_key is missing or empty");
        return EP_SIGV4_EINVAL;
    }
    if ((nh && !hs) || (body_len && !body)) {
        seterr(err, errlen, "sigv4: headers or body is NULL but has a length");
        return EP_SIGV4_EINVAL;
    }
    const char *token = session_token && *session_token ? session_token : NULL;
    memcpy(out->amz_date, amz_date, 17);
    p->arena.len = p->creq.len = p->sts.len = p->authz.len = p->signed_names.len = 0;
    if (!p->hasher && !(p->hasher = ep_hasher_new())) {
        seterr(err, errlen, "sigv4: out of memory");
        return EP_SIGV4_ENOMEM;
    }
    char bhex[EP_SHA256_HEX_LEN + 1];
    if (body_hash(p, body, body_len, bhex) != 0) {
        seterr(err, errlen, "sigv4: OpenSSL hash/HMAC failure");
        return EP_SIGV4_ECRYPTO;
    }
    const char *payload = bhex;
    size_t payload_len = EP_SHA256_HEX_LEN, ne = 0;
    out->body_hex = bhex; /* moved to the arena's tail below, where it outlives the call */
    int rc = collect(p, hs, nh, token, out, &payload, &payload_len, &ne, err, errlen);
    if (rc == 0) {
        canonical_request(p, method, ne, payload, payload_len);
        rc = p->creq.oom || p->signed_names.oom ? EP_SIGV4_ENOMEM : 0;
    }
    if (rc == 0)
        rc = sign_strings(p, access_key, secret_key, secret_len, same_credentials, out);
    if (rc == 0) {
        /* copy the body hash where `out` may point after return */
        size_t off = p->arena.len;
        ep_sb_addn(&p->arena, bhex, EP_SHA256_HEX_LEN);
        if (p->arena.oom)
            rc = EP_SIGV4_ENOMEM;
        else
            out->body_hex = p->arena.p + off;
    }
    if (rc) {
        memset(out, 0, sizeof *out);
        if (rc == EP_SIGV4_ENOMEM)
            seterr(err, errlen, "sigv4: out of memory");
        else if (rc == EP_SIGV4_ECRYPTO)
            seterr(err, errlen, "sigv4: OpenSSL hash/HMAC failure");
        return rc;
    }
    out->canonical_request = p->creq.p;
    out->string_to_sign = p->sts.p;
    out->authorization = p->authz.p;
    out->host = p->host;
    return 0;
}
