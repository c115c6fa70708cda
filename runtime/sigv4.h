/* sigv4.h: AWS Signature Version 4 (headers, or a presigned URL), stage by stage.
 *
 * The stages follow the AWS documentation and the published test suites:
 *   canonical request -> string to sign -> signing key -> signature -> Authorization.
 * Each stage is callable on its own so tests can compare every stage, and so
 * the simulator can verify an incoming request over exactly the headers the
 * client signed (cfg.signed_headers).
 *
 * The signer is sigv4.c (the stages and the whole), sigv4_canon.c (canonical
 * forms), sigv4_key.c (signing key and cache; digests are crypto.c's); its
 * Lua face is sigv4_lua.c.
 *
 * Strings handed out in ep_sigv4_result are malloc'd and owned by the result;
 * release them with ep_sigv4_result_free(). The secret key is only read; the
 * derived signing key lives in a small cache keyed by a SHA-256 over
 * (secret, date, region, service, access key), never by the secret itself,
 * and is wiped with OPENSSL_cleanse on eviction and in ep_sigv4_cache_clear().
 */
#ifndef EP_SIGV4_H
#define EP_SIGV4_H

#include <stddef.h>

#define EP_SIGV4_ALGORITHM "AWS4-HMAC-SHA256"

typedef struct ep_sigv4_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} ep_sigv4_header;

typedef struct ep_sigv4_request {
    const char *method;             /* "GET", "POST", ... */
    const char *path;               /* raw path as on the wire, without query; NULL or "" = "/" */
    const char *query;              /* raw query without '?', NULL or "" = none */
    const ep_sigv4_header *headers; /* in wire order; duplicates allowed */
    size_t nheaders;
    const char *body; /* may be NULL when body_len is 0 */
    size_t body_len;
} ep_sigv4_request;

typedef struct ep_sigv4_config {
    const char *region;
    const char *service;
    const char *access_key;
    const char *secret_key;
    size_t secret_len;
    const char *session_token; /* NULL = none */
    /* "YYYYMMDDTHHMMSSZ"; NULL = take it from the request's X-Amz-Date header. */
    const char *amz_date;
    /* Host header value to add when the request has none; NULL = add nothing. */
    const char *host;
    int normalize_path;     /* remove dot segments, collapse '//' (all but S3) */
    int double_encode;      /* encode '%' in the path again (all but S3) */
    int sign_body;          /* add and sign x-amz-content-sha256 */
    int omit_session_token; /* add X-Amz-Security-Token after signing (unsigned) */
    /* Presigned URL mode (X-Amz-* query parameters instead of headers) when
     * > 0: the URL stays valid this many seconds. Only Host may be added. */
    long presign_expires;
    /* Verification mode: sign exactly these (lowercase) header names, in any
     * order, and add no header. NULL = normal signing. */
    const char *const *signed_headers;
    size_t nsigned_headers;
} ep_sigv4_config;

/* A header the signer adds to the request (name and value are NUL-terminated). */
typedef struct ep_sigv4_added {
    char *name;
    char *value;
} ep_sigv4_added;

typedef struct ep_sigv4_result {
    char *canonical_request;
    char *string_to_sign;
    char *signed_headers;  /* "host;x-amz-date" */
    char *scope;           /* "20150830/us-east-1/service/aws4_request" */
    char *amz_date;        /* the timestamp actually signed */
    char signature[65];    /* lowercase hex */
    char *authorization;   /* full Authorization header value (NULL when presigning) */
    char *presigned_query; /* presign mode: the query string to send (no '?'), else NULL */
    /* Headers to add, in this order: Host, X-Amz-Security-Token, X-Amz-Date,
     * x-amz-content-sha256, Authorization (each only when needed). */
    ep_sigv4_added added[5];
    size_t nadded;
} ep_sigv4_result;

enum {
    EP_SIGV4_OK = 0,
    EP_SIGV4_EINVAL = -1, /* bad input; err says which field and why */
    EP_SIGV4_ENOMEM = -2,
    EP_SIGV4_ECRYPTO = -3
};

/* ---- the whole thing -------------------------------------------------- */

/* Fills *out (zeroed first). On failure everything in *out is freed and err
 * (if non-NULL) holds a message naming the field; it never contains secrets. */
int ep_sigv4_sign(const ep_sigv4_request *req, const ep_sigv4_config *cfg, ep_sigv4_result *out,
                  char *err, size_t errlen);
void ep_sigv4_result_free(ep_sigv4_result *r);

/* ---- stage by stage ---------------------------------------------------- */

/* Canonical URI of a raw path. Returns a malloc'd string or NULL (ENOMEM). */
char *ep_sigv4_canonical_path(const char *path, int normalize, int double_encode);
/* Canonical query string of a raw query (no '?'). malloc'd or NULL. */
char *ep_sigv4_canonical_query(const char *query);
/* Header value canonical form: trimmed, inner whitespace runs (incl. CR/LF
 * of folded lines) collapsed to one space. malloc'd or NULL. */
char *ep_sigv4_canonical_header_value(const char *value, size_t len);
/* 1 if the header is never signed (user-agent, expect, x-amzn-trace-id,
 * connection, transfer-encoding, authorization); case-insensitive. */
int ep_sigv4_is_unsigned_header(const char *name, size_t len);

/* "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256 of creq>". malloc'd or NULL. */
char *ep_sigv4_string_to_sign(const char *amz_date, const char *scope,
                              const char *canonical_request, size_t creq_len);

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date8), region), service), "aws4_request"),
 * served from the cache when possible. date8 is "YYYYMMDD". 0 or EP_SIGV4_ECRYPTO. */
int ep_sigv4_signing_key(const char *secret, size_t secret_len, const char *date8,
                         const char *region, const char *service, const char *access_key,
                         unsigned char key_out[32]);
/* Hex HMAC(key, string_to_sign). 0 or EP_SIGV4_ECRYPTO. */
int ep_sigv4_signature(const unsigned char key[32], const char *string_to_sign, size_t len,
                       char hex_out[65]);
/* "AWS4-HMAC-SHA256 Credential=AK/scope, SignedHeaders=..., Signature=...". malloc'd or NULL. */
char *ep_sigv4_authorization(const char *access_key, const char *scope, const char *signed_headers,
                             const char *signature_hex);

/* Wipes and empties the signing-key cache. */
void ep_sigv4_cache_clear(void);
/* Cache hit/miss counters since start (for tests). */
void ep_sigv4_cache_stats(unsigned long *hits, unsigned long *misses);

/* ---- the prepared signer (sigv4_prepared.c) ------------------------------ */

/* For a caller that signs many requests to one URL (aws/call.lua): what never changes
 * between them (region, service, Host, canonical path and query, the options) is worked
 * out once, the signing key is kept for its day, and each signing builds its strings in
 * buffers the signer keeps, so a signing allocates nothing once warm. Header mode only
 * (no presigning, no verification). The stages are those of ep_sigv4_sign, so both give
 * the same canonical request, string to sign, signature and Authorization. */
typedef struct ep_sigv4_prepared ep_sigv4_prepared;

typedef struct ep_sigv4_prepare_config {
    const char *region, *service;
    const char *host;         /* Host value to add when a request has none; NULL = none */
    const char *path, *query; /* raw, as for ep_sigv4_request */
    int normalize_path, double_encode, sign_body, omit_session_token;
} ep_sigv4_prepare_config;

/* NULL on bad input (err names the field) or out of memory. */
ep_sigv4_prepared *ep_sigv4_prepare(const ep_sigv4_prepare_config *c, char *err, size_t errlen);
/* Wipes the kept signing key and frees everything. NULL is fine. */
void ep_sigv4_prepared_free(ep_sigv4_prepared *p);

/* One signing's answers: views into the signer's buffers, valid until its next
 * signing or its free. add_* say which headers the request lacks (Host, X-Amz-Date,
 * X-Amz-Security-Token, x-amz-content-sha256), to be sent with `authorization`. */
typedef struct ep_sigv4_signed {
    const char *canonical_request;
    const char *string_to_sign;
    const char *authorization;
    const char *host;
    const char *body_hex;
    char signature[65];
    char amz_date[17];
    int add_host, add_date, add_token, add_content_sha;
} ep_sigv4_signed;

/* Signs method + headers + body at amz_date ("YYYYMMDDTHHMMSSZ") with the credentials
 * (session_token NULL or "" = none). same_credentials != 0 is the caller's promise that
 * access key and secret are those of this signer's previous signing: its key is reused
 * for the same day without hashing the secret again. EP_SIGV4_* codes, as ep_sigv4_sign. */
int ep_sigv4_sign_prepared(ep_sigv4_prepared *p, const char *method, const ep_sigv4_header *hs,
                           size_t nh, const char *body, size_t body_len, const char *amz_date,
                           const char *access_key, const char *secret_key, size_t secret_len,
                           const char *session_token, int same_credentials, ep_sigv4_signed *out,
                           char *err, size_t errlen);

/* ---- shared by the signer's files (sigv4.c, sigv4_canon.c) ------------- */

/* Checks the signer's inputs share (sigv4.c): 1 = valid. */
int ep_sigv4_valid_amz_date(const char *d);   /* "YYYYMMDDTHHMMSSZ" */
int ep_sigv4_valid_scope_part(const char *s); /* region, service, access key */
int ep_sigv4_valid_header_name(const char *s, size_t n);
/* 1 if a[0..alen) equals the lowercase name, ignoring case. */
int ep_sigv4_name_eq(const char *a, size_t alen, const char *lname);

struct ep_sbuf;
/* Appends the canonical form of a header value (ep_sigv4_canonical_header_value's). */
void ep_sigv4_append_header_value(struct ep_sbuf *b, const char *value, size_t len);
/* Appends the RFC 3986 encoding of s[0..n) to b (sbuf.h): unreserved bytes as
 * they are, '/' too when keep_slash, existing %XX escapes (in uppercase) when
 * keep_pct (S3: the wire path is already encoded once), any other byte as %XX. */
void ep_sigv4_uri_encode(struct ep_sbuf *b, const char *s, size_t n, int keep_slash, int keep_pct);

#endif
