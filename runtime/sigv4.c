/* sigv4.c: the AWS Signature Version 4 signer (see sigv4.h), in the stages
 * aws-c-auth uses:
 *
 *   canonical request -> string to sign -> signature -> Authorization header
 *                                                        (or presigned query)
 *
 * build() runs them in order over one `struct signing`; each stage is a
 * function of its own. The canonical forms of the request's parts (path,
 * query, header values) are in sigv4_canon.c, the signing key and its cache
 * in sigv4_key.c, the Lua face ecsplay.core.sigv4 in sigv4_lua.c.
 *
 * Conformance: runs every case (header and presigned) of AWS's original sigv4 test
 * suite and of aws-c-auth's v4 suite (tests/c/test_sigv4.c), stage by stage. */
#include "sigv4.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "sbuf.h"

/* ---- small helpers -------------------------------------------------------- */

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

int ep_sigv4_name_eq(const char *a, size_t alen, const char *lname)
{
    size_t n = strlen(lname);
    if (alen != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower(a[i]) != lname[i])
            return 0;
    return 1;
}

static int has_token(const ep_sigv4_config *cfg)
{
    return cfg->session_token && *cfg->session_token;
}

static void encode_str(ep_sbuf *b, const char *s) { ep_sigv4_uri_encode(b, s, strlen(s), 0, 0); }

/* ---- which headers are signed --------------------------------------------- */

static const char *const unsigned_headers[] = {
    "user-agent", "expect", "x-amzn-trace-id", "connection", "transfer-encoding", "authorization",
};

int ep_sigv4_is_unsigned_header(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof unsigned_headers / sizeof *unsigned_headers; i++)
        if (ep_sigv4_name_eq(name, len, unsigned_headers[i]))
            return 1;
    return 0;
}

/* ---- string to sign, signature, authorization ---------------------------- */

char *ep_sigv4_string_to_sign(const char *amz_date, const char *scope,
                              const char *canonical_request, size_t creq_len)
{
    char hex[EP_SHA256_HEX_LEN + 1];
    if (ep_sha256_hex(canonical_request, creq_len, hex) != 0)
        return NULL;
    ep_sbuf b = {0};
    /* each string below is sized once up front: no realloc on the way */
    ep_sb_reserve(&b, sizeof EP_SIGV4_ALGORITHM + strlen(amz_date) + strlen(scope) + 2 +
                          EP_SHA256_HEX_LEN);
    ep_sb_adds(&b, EP_SIGV4_ALGORITHM "\n");
    ep_sb_adds(&b, amz_date);
    ep_sb_addc(&b, '\n');
    ep_sb_adds(&b, scope);
    ep_sb_addc(&b, '\n');
    ep_sb_adds(&b, hex);
    return ep_sb_take(&b);
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

char *ep_sigv4_authorization(const char *access_key, const char *scope, const char *signed_headers,
                             const char *signature_hex)
{
    ep_sbuf b = {0};
    ep_sb_reserve(&b, sizeof EP_SIGV4_ALGORITHM + 40 + strlen(access_key) + strlen(scope) +
                          strlen(signed_headers) + strlen(signature_hex));
    ep_sb_adds(&b, EP_SIGV4_ALGORITHM " Credential=");
    ep_sb_adds(&b, access_key);
    ep_sb_addc(&b, '/');
    ep_sb_adds(&b, scope);
    ep_sb_adds(&b, ", SignedHeaders=");
    ep_sb_adds(&b, signed_headers);
    ep_sb_adds(&b, ", Signature=");
    ep_sb_adds(&b, signature_hex);
    return ep_sb_take(&b);
}

/* ---- one signing ---------------------------------------------------------- */

/* One occurrence of a signed header, in canonical form. */
typedef struct hentry {
    char *lname;  /* lowercase name */
    char *value;  /* canonical value */
    size_t order; /* wire order, so duplicates keep their order when sorted */
} hentry;

/* What the stages share: the inputs, then what each stage leaves for the next. */
typedef struct signing {
    const ep_sigv4_request *req;
    const ep_sigv4_config *cfg;
    ep_sigv4_result *out;
    char *err;
    size_t errlen;
    int verify;                   /* cfg->signed_headers: sign exactly those, add nothing */
    int presign;                  /* X-Amz-* query parameters instead of headers */
    const ep_sigv4_header *hdate; /* the request's own X-Amz-Date header, if any */
    char date[17];                /* YYYYMMDDTHHMMSSZ */
    char date8[9];                /* YYYYMMDD */
    char body_hex[EP_SHA256_HEX_LEN + 1];
    hentry *es; /* the signed headers' entries, sorted by name */
    size_t ne;
    const char *payload; /* the canonical request's last line: a payload hash */
    size_t payload_len;
    ep_sbuf params; /* presign: the X-Amz-* query parameters but the signature */
} signing;

/* Records a message for bad input (it never contains secrets). */
static int invalid(signing *s, const char *fmt, ...)
{
    if (s->err && s->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->err, s->errlen, fmt, ap);
        va_end(ap);
    }
    return EP_SIGV4_EINVAL;
}

static void signing_free(signing *s)
{
    for (size_t e = 0; e < s->ne; e++) {
        free(s->es[e].lname);
        free(s->es[e].value);
    }
    free(s->es);
    free(s->params.p);
}

/* ---- checking the input --------------------------------------------------- */

int ep_sigv4_valid_amz_date(const char *d)
{
    if (strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
        return 0;
    for (int i = 0; i < 15; i++)
        if (i != 8 && (d[i] < '0' || d[i] > '9'))
            return 0;
    return 1;
}

/* Scope parts go between '/' in the Credential: no '/', ',', whitespace or controls. */
int ep_sigv4_valid_scope_part(const char *s)
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

int ep_sigv4_valid_header_name(const char *s, size_t n)
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

static int check_headers(signing *s)
{
    const ep_sigv4_request *req = s->req;
    for (size_t i = 0; i < req->nheaders; i++) {
        const ep_sigv4_header *h = &req->headers[i];
        if (!h->name || !ep_sigv4_valid_header_name(h->name, h->name_len))
            return invalid(
                s,
                "sigv4: header #%zu has an invalid name (empty, or has ':', whitespace or control characters)",
                i + 1);
        if (!h->value && h->value_len)
            return invalid(s, "sigv4: header #%zu has a NULL value", i + 1);
    }
    return 0;
}

static int check_config(signing *s)
{
    const ep_sigv4_request *req = s->req;
    const ep_sigv4_config *cfg = s->cfg;
    if (!req->method || !*req->method)
        return invalid(s, "sigv4: method is empty; expected an HTTP method such as \"POST\"");
    for (const char *m = req->method; *m; m++)
        if ((unsigned char)*m <= 0x20 || (unsigned char)*m >= 0x7f)
            return invalid(s, "sigv4: method contains whitespace or a control character");
    if (!ep_sigv4_valid_scope_part(cfg->region))
        return invalid(s, "sigv4: region is missing or contains '/', ',', '=' or whitespace");
    if (!ep_sigv4_valid_scope_part(cfg->service))
        return invalid(s, "sigv4: service is missing or contains '/', ',', '=' or whitespace");
    if (!ep_sigv4_valid_scope_part(cfg->access_key))
        return invalid(s, "sigv4: access_key is missing or contains '/', ',', '=' or whitespace");
    if (!cfg->secret_key || cfg->secret_len == 0)
        return invalid(s, "sigv4: secret_key is missing or empty");
    if (req->nheaders && !req->headers)
        return invalid(s, "sigv4: headers is NULL but nheaders is %zu", req->nheaders);
    if (req->body_len && !req->body)
        return invalid(s, "sigv4: body is NULL but body_len is %zu", req->body_len);
    return check_headers(s);
}

static const ep_sigv4_header *find_header(const ep_sigv4_request *req, const char *lname)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (ep_sigv4_name_eq(req->headers[i].name, req->headers[i].name_len, lname))
            return &req->headers[i];
    return NULL;
}

/* ---- stage 0: time, payload hash, credential scope ------------------------ */

/* The timestamp: given, or from the request's X-Amz-Date header. */
static int signing_time(signing *s)
{
    const char *given = s->cfg->amz_date;
    const ep_sigv4_header *h = s->hdate;
    if (given) {
        if (!ep_sigv4_valid_amz_date(given))
            return invalid(s, "sigv4: time \"%.40s\" is not of the form YYYYMMDDTHHMMSSZ", given);
        if (h && (h->value_len != 16 || memcmp(h->value, given, 16) != 0))
            return invalid(
                s, "sigv4: the request's X-Amz-Date header disagrees with the signing time %s",
                given);
        memcpy(s->date, given, 17);
    } else {
        if (!h)
            return invalid(s, "sigv4: no signing time: give time or an X-Amz-Date header");
        if (h->value_len != 16)
            return invalid(s, "sigv4: X-Amz-Date header is not of the form YYYYMMDDTHHMMSSZ");
        memcpy(s->date, h->value, 16);
        s->date[16] = '\0';
        if (!ep_sigv4_valid_amz_date(s->date))
            return invalid(s, "sigv4: X-Amz-Date header is not of the form YYYYMMDDTHHMMSSZ");
    }
    memcpy(s->date8, s->date, 8);
    s->date8[8] = '\0';
    s->out->amz_date = ep_sb_strndup(s->date, 16);
    return s->out->amz_date ? 0 : EP_SIGV4_ENOMEM;
}

/* The credential scope: date8/region/service/aws4_request. */
static int credential_scope(signing *s)
{
    ep_sbuf b = {0};
    ep_sb_reserve(&b, 8 + strlen(s->cfg->region) + strlen(s->cfg->service) + 16);
    ep_sb_adds(&b, s->date8);
    ep_sb_addc(&b, '/');
    ep_sb_adds(&b, s->cfg->region);
    ep_sb_addc(&b, '/');
    ep_sb_adds(&b, s->cfg->service);
    ep_sb_adds(&b, "/aws4_request");
    s->out->scope = ep_sb_take(&b);
    return s->out->scope ? 0 : EP_SIGV4_ENOMEM;
}

/* ---- stage 1: the canonical request --------------------------------------- */

static int add_header(ep_sigv4_result *r, const char *name, const char *value, size_t vlen)
{
    char *n = ep_sb_strndup(name, strlen(name)), *v = ep_sb_strndup(value, vlen);
    if (!n || !v) {
        free(n);
        free(v);
        return EP_SIGV4_ENOMEM;
    }
    r->added[r->nadded].name = n;
    r->added[r->nadded].value = v;
    r->nadded++;
    return 0;
}

/* Headers the signer adds (normal mode only). Their order in out->added is
 * the order aws-c-auth writes them. */
static int add_signer_headers(signing *s)
{
    const ep_sigv4_request *req = s->req;
    const ep_sigv4_config *cfg = s->cfg;
    int rc;
    if (s->verify)
        return 0;
    if (cfg->host && *cfg->host && !find_header(req, "host") &&
        (rc = add_header(s->out, "Host", cfg->host, strlen(cfg->host))))
        return rc;
    if (s->presign)
        return 0;
    if (has_token(cfg) && !find_header(req, "x-amz-security-token") &&
        (rc = add_header(s->out, "X-Amz-Security-Token", cfg->session_token,
                         strlen(cfg->session_token))))
        return rc;
    if (!s->hdate && (rc = add_header(s->out, "X-Amz-Date", s->date, 16)))
        return rc;
    if (cfg->sign_body && !find_header(req, "x-amz-content-sha256") &&
        (rc = add_header(s->out, "x-amz-content-sha256", s->body_hex, EP_SHA256_HEX_LEN)))
        return rc;
    return 0;
}

/* The i-th header occurrence: the request's own, then those the signer added. */
static void header_at(const signing *s, size_t i, const char **name, size_t *nlen,
                      const char **value, size_t *vlen)
{
    const ep_sigv4_request *req = s->req;
    if (i < req->nheaders) {
        const ep_sigv4_header *h = &req->headers[i];
        *name = h->name;
        *nlen = h->name_len;
        *value = h->value ? h->value : "";
        *vlen = h->value_len;
    } else {
        const ep_sigv4_added *a = &s->out->added[i - req->nheaders];
        *name = a->name;
        *nlen = strlen(a->name);
        *value = a->value;
        *vlen = strlen(a->value);
    }
}

static int is_signed(const signing *s, const char *name, size_t nlen)
{
    const ep_sigv4_config *cfg = s->cfg;
    if (s->verify) {
        for (size_t k = 0; k < cfg->nsigned_headers; k++)
            if (ep_sigv4_name_eq(name, nlen, cfg->signed_headers[k]))
                return 1;
        return 0;
    }
    return !ep_sigv4_is_unsigned_header(name, nlen) &&
           !(cfg->omit_session_token && ep_sigv4_name_eq(name, nlen, "x-amz-security-token"));
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

static int hentry_cmp(const void *a, const void *b)
{
    const hentry *x = a, *y = b;
    int c = strcmp(x->lname, y->lname);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Verification: every header the client signed must be in the request. */
static int check_signed_present(signing *s)
{
    const ep_sigv4_config *cfg = s->cfg;
    for (size_t k = 0; k < cfg->nsigned_headers; k++) {
        const char *want = cfg->signed_headers[k];
        int found = 0;
        for (size_t e = 0; e < s->ne && !found; e++)
            found = strcmp(s->es[e].lname, want) == 0;
        if (!found)
            return invalid(s, "sigv4: signed header '%.60s' is not in the request",
                           want ? want : "(null)");
    }
    return 0;
}

/* The signed headers' canonical entries, sorted by name (duplicates in wire
 * order), and the payload hash: the body's, or an x-amz-content-sha256 value. */
static int collect_headers(signing *s)
{
    size_t total = s->req->nheaders + s->out->nadded;
    s->es = calloc(total ? total : 1, sizeof *s->es);
    if (!s->es)
        return EP_SIGV4_ENOMEM;
    s->payload = s->body_hex;
    s->payload_len = EP_SHA256_HEX_LEN;
    int rc = 0;
    for (size_t i = 0; i < total && rc == 0; i++) {
        const char *name, *value;
        size_t nlen, vlen;
        header_at(s, i, &name, &nlen, &value, &vlen);
        if (ep_sigv4_name_eq(name, nlen, "x-amz-content-sha256")) {
            s->payload = value;
            s->payload_len = vlen;
        }
        if (is_signed(s, name, nlen))
            rc = push_entry(s->es, &s->ne, name, nlen, value, vlen);
    }
    if (rc == 0 && s->verify)
        rc = check_signed_present(s);
    if (rc == 0)
        qsort(s->es, s->ne, sizeof *s->es, hentry_cmp);
    return rc;
}

/* "host;x-amz-date": each signed header's name once. */
static int signed_header_list(signing *s)
{
    ep_sbuf b = {0};
    for (size_t e = 0; e < s->ne; e++) {
        if (e > 0 && strcmp(s->es[e].lname, s->es[e - 1].lname) == 0)
            continue;
        if (b.len)
            ep_sb_addc(&b, ';');
        ep_sb_adds(&b, s->es[e].lname);
    }
    s->out->signed_headers = ep_sb_take(&b);
    return s->out->signed_headers ? 0 : EP_SIGV4_ENOMEM;
}

/* Presign: the X-Amz-* query parameters but the signature, in aws-c-auth's
 * order (the canonical query sorts them anyway). */
static int presign_params(signing *s)
{
    const ep_sigv4_config *cfg = s->cfg;
    ep_sbuf *b = &s->params;
    char num[32];
    snprintf(num, sizeof num, "%ld", cfg->presign_expires);
    ep_sb_adds(b, "X-Amz-Algorithm=" EP_SIGV4_ALGORITHM "&X-Amz-Credential=");
    encode_str(b, cfg->access_key);
    ep_sb_adds(b, "%2F");
    encode_str(b, s->out->scope);
    ep_sb_adds(b, "&X-Amz-Date=");
    ep_sb_adds(b, s->date);
    ep_sb_adds(b, "&X-Amz-SignedHeaders=");
    encode_str(b, s->out->signed_headers);
    ep_sb_adds(b, "&X-Amz-Expires=");
    ep_sb_adds(b, num);
    if (has_token(cfg) && !cfg->omit_session_token) {
        ep_sb_adds(b, "&X-Amz-Security-Token=");
        encode_str(b, cfg->session_token);
    }
    return b->oom ? EP_SIGV4_ENOMEM : 0;
}

/* Presign: the request's own query, then the X-Amz-* parameters. */
static void presign_query(const signing *s, ep_sbuf *q)
{
    if (s->req->query && *s->req->query) {
        ep_sb_adds(q, s->req->query);
        ep_sb_addc(q, '&');
    }
    ep_sb_addn(q, ep_sb_str(&s->params), s->params.len);
}

static char *canonical_query(const signing *s)
{
    if (!s->presign)
        return ep_sigv4_canonical_query(s->req->query);
    ep_sbuf q = {0};
    presign_query(s, &q);
    char *c = q.oom ? NULL : ep_sigv4_canonical_query(q.p);
    free(q.p);
    return c;
}

/* "name:value\n" per header; a repeated header's values joined with ','. */
static void add_canonical_headers(ep_sbuf *b, const hentry *es, size_t ne)
{
    for (size_t e = 0; e < ne; e++) {
        if (e > 0 && strcmp(es[e].lname, es[e - 1].lname) == 0) {
            ep_sb_addc(b, ',');
            ep_sb_adds(b, es[e].value);
            continue;
        }
        if (e > 0)
            ep_sb_addc(b, '\n');
        ep_sb_adds(b, es[e].lname);
        ep_sb_addc(b, ':');
        ep_sb_adds(b, es[e].value);
    }
    if (ne)
        ep_sb_addc(b, '\n');
}

/* method, path, query, headers, blank line, signed headers, payload hash. */
static int canonical_request(signing *s)
{
    const ep_sigv4_config *cfg = s->cfg;
    char *cpath = ep_sigv4_canonical_path(s->req->path, cfg->normalize_path, cfg->double_encode);
    char *cquery = canonical_query(s);
    if (cpath && cquery) {
        ep_sbuf b = {0};
        size_t size = strlen(s->req->method) + strlen(cpath) + strlen(cquery) +
                      strlen(s->out->signed_headers) + s->payload_len + 8;
        for (size_t e = 0; e < s->ne; e++)
            size += strlen(s->es[e].lname) + strlen(s->es[e].value) + 2;
        ep_sb_reserve(&b, size);
        ep_sb_adds(&b, s->req->method);
        ep_sb_addc(&b, '\n');
        ep_sb_adds(&b, cpath);
        ep_sb_addc(&b, '\n');
        ep_sb_adds(&b, cquery);
        ep_sb_addc(&b, '\n');
        add_canonical_headers(&b, s->es, s->ne);
        ep_sb_addc(&b, '\n');
        ep_sb_adds(&b, s->out->signed_headers);
        ep_sb_addc(&b, '\n');
        ep_sb_addn(&b, s->payload, s->payload_len);
        s->out->canonical_request = ep_sb_take(&b);
    }
    free(cpath);
    free(cquery);
    return s->out->canonical_request ? 0 : EP_SIGV4_ENOMEM;
}

/* ---- stages 2 and 3: string to sign, signature ---------------------------- */

static int signature(signing *s)
{
    const ep_sigv4_config *cfg = s->cfg;
    ep_sigv4_result *out = s->out;
    out->string_to_sign = ep_sigv4_string_to_sign(s->date, out->scope, out->canonical_request,
                                                  strlen(out->canonical_request));
    if (!out->string_to_sign)
        return EP_SIGV4_ENOMEM;
    unsigned char key[EP_SHA256_LEN];
    int rc = ep_sigv4_signing_key(cfg->secret_key, cfg->secret_len, s->date8, cfg->region,
                                  cfg->service, cfg->access_key, key);
    if (rc == 0)
        rc = ep_sigv4_signature(key, out->string_to_sign, strlen(out->string_to_sign),
                                out->signature);
    ep_wipe(key, sizeof key);
    return rc;
}

/* ---- stage 4: the Authorization header, or the presigned query ------------ */

static int presigned_query(signing *s)
{
    const ep_sigv4_config *cfg = s->cfg;
    ep_sbuf q = {0};
    presign_query(s, &q);
    /* A token kept out of the signature still travels with the URL. */
    if (has_token(cfg) && cfg->omit_session_token) {
        ep_sb_adds(&q, "&X-Amz-Security-Token=");
        encode_str(&q, cfg->session_token);
    }
    ep_sb_adds(&q, "&X-Amz-Signature=");
    ep_sb_adds(&q, s->out->signature);
    s->out->presigned_query = ep_sb_take(&q);
    return s->out->presigned_query ? 0 : EP_SIGV4_ENOMEM;
}

static int authorization(signing *s)
{
    ep_sigv4_result *out = s->out;
    out->authorization =
        ep_sigv4_authorization(s->cfg->access_key, out->scope, out->signed_headers, out->signature);
    if (!out->authorization)
        return EP_SIGV4_ENOMEM;
    if (s->verify)
        return 0;
    return add_header(out, "Authorization", out->authorization, strlen(out->authorization));
}

/* ---- the whole signer ----------------------------------------------------- */

static int build(signing *s)
{
    int rc = check_config(s);
    if (rc)
        return rc;
    s->hdate = find_header(s->req, "x-amz-date");
    if ((rc = signing_time(s)))
        return rc;
    if (ep_sha256_hex(s->req->body, s->req->body_len, s->body_hex) != 0)
        return EP_SIGV4_ECRYPTO;
    if ((rc = credential_scope(s)) || (rc = add_signer_headers(s)))
        return rc;
    if ((rc = collect_headers(s)) || (rc = signed_header_list(s)))
        return rc;
    if (s->presign && (rc = presign_params(s)))
        return rc;
    if ((rc = canonical_request(s)) || (rc = signature(s)))
        return rc;
    return s->presign ? presigned_query(s) : authorization(s);
}

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

int ep_sigv4_sign(const ep_sigv4_request *req, const ep_sigv4_config *cfg, ep_sigv4_result *out,
                  char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    memset(out, 0, sizeof *out);
    signing s = {.req = req, .cfg = cfg, .out = out, .err = err, .errlen = errlen};
    if (!req || !cfg) {
        seterr(err, errlen, "sigv4: request and config are required");
        return EP_SIGV4_EINVAL;
    }
    s.verify = cfg->signed_headers != NULL;
    s.presign = !s.verify && cfg->presign_expires > 0;
    int rc = build(&s);
    signing_free(&s);
    if (rc) {
        ep_sigv4_result_free(out);
        if (rc == EP_SIGV4_ENOMEM)
            seterr(err, errlen, "sigv4: out of memory");
        else if (rc == EP_SIGV4_ECRYPTO)
            seterr(err, errlen, "sigv4: OpenSSL hash/HMAC failure");
    }
    return rc;
}
