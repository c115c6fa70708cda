/* test_sigv4.c: runs every header-signing case of AWS's two published SigV4
 * suites against the C signer, stage by stage, then the same cases through
 * the Lua face (ecsplay.sigv4) and the prepared signer. The unit checks of
 * crypto and the signer are test_sigv4_units.c.
 *
 * Usage: test_sigv4 [VECTORS_DIR]   (or env ECSPLAY_VECTORS; default
 * tests/vectors/sigv4, relative to the project root, where tests run).
 * Counts are per check: one per (case, stage) for the suites, one per
 * assertion for the unit checks. aws-c-auth's query-*.txt (presigned URL)
 * variants run too. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "../../runtime/crypto.h"
#include "../../runtime/ep.h"
#include "../../runtime/sigv4.h"

#include "check.h"
#include "sigv4_test.h"

static int skipped;

/* ---- small utilities ------------------------------------------------------ */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *p = malloc(cap);
    for (;;) {
        if (!p) {
            fclose(f);
            return NULL;
        }
        n += fread(p + n, 1, cap - n - 1, f);
        if (n < cap - 1)
            break;
        cap *= 2;
        char *q = realloc(p, cap);
        if (!q)
            free(p);
        p = q;
    }
    fclose(f);
    p[n] = '\0';
    if (len)
        *len = n;
    return p;
}

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *join3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *p = malloc(la + lb + lc + 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    memcpy(p, a, la);
    memcpy(p + la, b, lb);
    memcpy(p + la + lb, c, lc);
    p[la + lb + lc] = '\0';
    return p;
}

/* Prints where two texts first differ (line and both versions). */
static void diff_hint(const char *want, const char *got)
{
    int line = 1;
    const char *w = want, *g = got;
    while (*w && *w == *g) {
        if (*w == '\n')
            line++;
        w++;
        g++;
    }
    while (w > want && w[-1] != '\n') /* back to line starts */
        w--, g--;
    int wl = (int)strcspn(w, "\n"), gl = (int)strcspn(g, "\n");
    printf("      first difference at line %d\n      want: %.*s\n      got:  %.*s\n", line, wl, w,
           gl, g);
}

static void check_text(const char *cas, const char *stage, const char *want, const char *got)
{
    if (!want) {
        printf("SKIP %s [%s]: expected file missing\n", cas, stage);
        skipped++;
        return;
    }
    if (got && strcmp(want, got) == 0) {
        passed++;
        return;
    }
    failed++;
    printf("FAIL %s [%s]\n", cas, stage);
    if (got)
        diff_hint(want, got);
    else
        printf("      (no output)\n");
}

/* ---- request files --------------------------------------------------------- */

enum { SUITE_ORIGINAL, SUITE_CAUTH };

typedef struct parsed {
    char *request_line, *method, *path, *query; /* query NULL when no '?' */
    char **names, **values;
    size_t nh;
    char **raw_lines; /* header lines exactly as in the file */
    size_t nraw;
    char *body;
    size_t body_len;
    ep_sigv4_header *hs;
} parsed;

static void parsed_free(parsed *p)
{
    free(p->request_line);
    free(p->method);
    free(p->path);
    free(p->query);
    for (size_t i = 0; i < p->nh; i++) {
        free(p->names[i]);
        free(p->values[i]);
    }
    for (size_t i = 0; i < p->nraw; i++)
        free(p->raw_lines[i]);
    free(p->names);
    free(p->values);
    free(p->raw_lines);
    free(p->body);
    free(p->hs);
    memset(p, 0, sizeof *p);
}

/* A continuation line (leading whitespace) is a separate value of the same
 * header in the original suite (values joined with ','), but part of the
 * previous value in aws-c-auth's (whitespace collapsed to one space). */
static int parse_request(const char *text, size_t len, int suite, parsed *p)
{
    memset(p, 0, sizeof *p);
    const char *end = text + len, *s = text;
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    const char *le = nl ? nl : end;
    p->request_line = dupn(s, (size_t)(le - s));
    const char *sp1 = strchr(p->request_line, ' ');
    const char *sp2 = sp1 ? strrchr(p->request_line, ' ') : NULL;
    if (!sp1 || sp2 == sp1)
        return -1;
    p->method = dupn(p->request_line, (size_t)(sp1 - p->request_line));
    const char *target = sp1 + 1;
    size_t tlen = (size_t)(sp2 - target);
    const char *q = memchr(target, '?', tlen);
    p->path = dupn(target, q ? (size_t)(q - target) : tlen);
    p->query = q ? dupn(q + 1, (size_t)(target + tlen - q - 1)) : NULL;
    size_t cap = 16;
    p->names = calloc(cap, sizeof *p->names);
    p->values = calloc(cap, sizeof *p->values);
    p->raw_lines = calloc(cap, sizeof *p->raw_lines);
    s = nl ? nl + 1 : end;
    while (s < end) {
        nl = memchr(s, '\n', (size_t)(end - s));
        le = nl ? nl : end;
        if (le == s) { /* blank line: body follows */
            s = le + 1;
            p->body = dupn(s, s < end ? (size_t)(end - s) : 0);
            p->body_len = s < end ? (size_t)(end - s) : 0;
            break;
        }
        if (p->nraw == cap || p->nh == cap)
            return -1; /* the suites have a handful of headers */
        p->raw_lines[p->nraw++] = dupn(s, (size_t)(le - s));
        if ((*s == ' ' || *s == '\t') && p->nh > 0) {
            const char *v = s;
            while (v < le && (*v == ' ' || *v == '\t'))
                v++;
            if (suite == SUITE_ORIGINAL) {
                p->names[p->nh] = dupn(p->names[p->nh - 1], strlen(p->names[p->nh - 1]));
                p->values[p->nh] = dupn(v, (size_t)(le - v));
                p->nh++;
            } else {
                char *line = dupn(s, (size_t)(le - s));
                char *joined = join3(p->values[p->nh - 1], "\n", line);
                free(line);
                free(p->values[p->nh - 1]);
                p->values[p->nh - 1] = joined;
            }
        } else {
            const char *colon = memchr(s, ':', (size_t)(le - s));
            if (!colon)
                return -1;
            p->names[p->nh] = dupn(s, (size_t)(colon - s));
            p->values[p->nh] = dupn(colon + 1, (size_t)(le - colon - 1));
            p->nh++;
        }
        s = nl ? nl + 1 : end;
    }
    if (!p->body)
        p->body = dupn("", 0);
    p->hs = calloc(p->nh ? p->nh : 1, sizeof *p->hs);
    for (size_t i = 0; i < p->nh; i++) {
        p->hs[i].name = p->names[i];
        p->hs[i].name_len = strlen(p->names[i]);
        p->hs[i].value = p->values[i];
        p->hs[i].value_len = strlen(p->values[i]);
    }
    return 0;
}

static const char *find_value(const parsed *p, const char *lname)
{
    for (size_t i = 0; i < p->nh; i++)
        if (strcasecmp(p->names[i], lname) == 0)
            return p->values[i];
    return NULL;
}

/* The signed request as the suite writes it. */
static char *render_signed(const parsed *p, const ep_sigv4_result *r, int suite)
{
    size_t cap = 256 + strlen(p->request_line) + p->body_len;
    for (size_t i = 0; i < p->nraw; i++)
        cap += strlen(p->raw_lines[i]) + 1;
    for (size_t i = 0; i < r->nadded; i++)
        cap += strlen(r->added[i].name) + strlen(r->added[i].value) + 3;
    char *out = malloc(cap);
    size_t n = 0;
#define PUT(s, l) (memcpy(out + n, (s), (l)), n += (l))
    PUT(p->request_line, strlen(p->request_line));
    for (size_t i = 0; i < p->nraw; i++) {
        PUT("\n", 1);
        PUT(p->raw_lines[i], strlen(p->raw_lines[i]));
    }
    for (size_t i = 0; i < r->nadded; i++) {
        PUT("\n", 1);
        PUT(r->added[i].name, strlen(r->added[i].name));
        /* The original suite writes "Authorization: ", aws-c-auth "Authorization:". */
        if (suite == SUITE_ORIGINAL && strcmp(r->added[i].name, "Authorization") == 0)
            PUT(": ", 2);
        else
            PUT(":", 1);
        PUT(r->added[i].value, strlen(r->added[i].value));
    }
    if (suite == SUITE_CAUTH)
        PUT("\n\n", 2);
    else if (p->body_len)
        PUT("\n\n", 2);
    PUT(p->body, p->body_len);
#undef PUT
    out[n] = '\0';
    return out;
}

/* ---- context.json (small and flat: find "key": and read the value) --------- */

static char *json_str(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *k = strstr(json, pat);
    if (!k)
        return NULL;
    const char *v = strchr(k + strlen(pat), ':');
    if (!v)
        return NULL;
    v++;
    while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
        v++;
    if (*v == '"') {
        const char *e = strchr(v + 1, '"');
        return e ? dupn(v + 1, (size_t)(e - v - 1)) : NULL;
    }
    size_t n = strcspn(v, ",}\n \t\r");
    return dupn(v, n);
}

static int json_bool(const char *json, const char *key, int dflt)
{
    char *v = json_str(json, key);
    int r = v ? strcmp(v, "true") == 0 : dflt;
    free(v);
    return r;
}

/* ---- the Lua face, run on the same case ------------------------------------ */

static lua_State *L;

static void lua_field(const char *k, const char *v)
{
    if (!v)
        return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static void lua_case(const char *cas, const char *fn, const parsed *p, const ep_sigv4_config *cfg,
                     const char *want_creq, const char *want_sts, const char *want_sig,
                     const char *want_authz)
{
    int top = lua_gettop(L);
    char chunk[400], stage[64];
    if (strcmp(fn, "prepared") == 0) /* the prepared signer: sigv4.prepare{...}:sign(...) */
        snprintf(chunk, sizeof chunk,
                 "local m = require('ecsplay.aws.sigv4') return function(t) local h, st = "
                 "m.prepare(t):sign(t.method, t.headers, t.body, t.time, t.access_key, "
                 "t.secret_key, t.session_token, true) st.headers = h return st end");
    else
        snprintf(chunk, sizeof chunk, "return require('ecsplay.aws.sigv4').%s", fn);
    if (luaL_dostring(L, chunk) != LUA_OK) {
        check_text(cas, "lua: require ecsplay.sigv4", "ok", lua_tostring(L, -1));
        lua_settop(L, top);
        return;
    }
    lua_createtable(L, 0, 16);
    lua_field("method", p->method);
    const char *host = find_value(p, "host");
    char *url = join3("https://", host ? host : "example.amazonaws.com", p->path);
    char *url2 = p->query ? join3(url, "?", p->query) : NULL;
    lua_field("url", url2 ? url2 : url);
    free(url);
    free(url2);
    lua_createtable(L, (int)p->nh, 0);
    for (size_t i = 0; i < p->nh; i++) {
        lua_createtable(L, 2, 0);
        lua_pushstring(L, p->names[i]);
        lua_rawseti(L, -2, 1);
        lua_pushstring(L, p->values[i]);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, p->body, p->body_len);
    lua_setfield(L, -2, "body");
    lua_field("region", cfg->region);
    lua_field("service", cfg->service);
    lua_field("access_key", cfg->access_key);
    lua_field("secret_key", cfg->secret_key);
    lua_field("session_token", cfg->session_token);
    lua_field("time", "20150830T123600Z");
    lua_pushboolean(L, cfg->normalize_path);
    lua_setfield(L, -2, "normalize");
    lua_pushboolean(L, cfg->sign_body);
    lua_setfield(L, -2, "sign_body");
    lua_pushboolean(L, cfg->omit_session_token);
    lua_setfield(L, -2, "omit_session_token");
    if (cfg->presign_expires) {
        lua_pushinteger(L, cfg->presign_expires);
        lua_setfield(L, -2, "expires");
    }
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        snprintf(stage, sizeof stage, "lua %s", fn);
        check_text(cas, stage, "no error", lua_tostring(L, -1));
        lua_settop(L, top);
        return;
    }
    int res = lua_gettop(L);
    lua_getfield(L, res, "canonical_request");
    snprintf(stage, sizeof stage, "lua %s canonical request", fn);
    check_text(cas, stage, want_creq, lua_tostring(L, -1));
    lua_getfield(L, res, "string_to_sign");
    snprintf(stage, sizeof stage, "lua %s string to sign", fn);
    check_text(cas, stage, want_sts, lua_tostring(L, -1));
    if (want_sig) {
        lua_getfield(L, res, "signature");
        snprintf(stage, sizeof stage, "lua %s signature", fn);
        check_text(cas, stage, want_sig, lua_tostring(L, -1));
    }
    if (want_authz) {
        lua_getfield(L, res, "authorization");
        check_text(cas, "lua authorization", want_authz, lua_tostring(L, -1));
    }
    lua_settop(L, top);
}

/* The prepared signer (sigv4_prepared.c) on a case: the same stages as ep_sigv4_sign's,
 * twice (the second signing reuses the kept signing key and the signer's buffers). */
static void prepared_case(const char *cas, const parsed *p, const ep_sigv4_config *cfg,
                          const ep_sigv4_result *want)
{
    char name[600], err[256];
    snprintf(name, sizeof name, "%s (prepared)", cas);
    ep_sigv4_prepare_config pc = {cfg->region,
                                  cfg->service,
                                  NULL,
                                  p->path,
                                  p->query,
                                  cfg->normalize_path,
                                  cfg->double_encode,
                                  cfg->sign_body,
                                  cfg->omit_session_token};
    ep_sigv4_prepared *pp = ep_sigv4_prepare(&pc, err, sizeof err);
    if (!pp) {
        printf("FAIL %s [prepare]: %s\n", name, err);
        failed++;
        return;
    }
    for (int round = 0; round < 2; round++) {
        ep_sigv4_signed s;
        if (ep_sigv4_sign_prepared(pp, p->method, p->hs, p->nh, p->body, p->body_len,
                                   want->amz_date, cfg->access_key, cfg->secret_key,
                                   cfg->secret_len, cfg->session_token, round > 0, &s, err,
                                   sizeof err) != 0) {
            printf("FAIL %s [sign]: %s\n", name, err);
            failed++;
            break;
        }
        check_text(name, "canonical request", want->canonical_request, s.canonical_request);
        check_text(name, "string to sign", want->string_to_sign, s.string_to_sign);
        check_text(name, "signature", want->signature, s.signature);
        check_text(name, "authorization", want->authorization, s.authorization);
        size_t nadd = (size_t)(s.add_host + s.add_token + s.add_date + s.add_content_sha + 1);
        check(nadd == want->nadded, "the prepared signer adds the headers ep_sigv4_sign adds");
    }
    ep_sigv4_prepared_free(pp);
}

/* ---- one case -------------------------------------------------------------- */

static void trim_trailing_newlines(char *s)
{
    if (!s)
        return;
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

/* aws-c-auth's query-*.txt: the same request presigned (X-Amz-* query). */
static void run_presign(const char *dir, const char *cas, const parsed *p,
                        const ep_sigv4_config *base, const char *ctx)
{
    char path[4096], name[600];
    snprintf(path, sizeof path, "%s/query-canonical-request.txt", dir);
    char *want_creq = read_file(path, NULL);
    if (!want_creq) {
        printf("SKIP %s [query]: no query-canonical-request.txt\n", cas);
        skipped++;
        return;
    }
    snprintf(path, sizeof path, "%s/query-string-to-sign.txt", dir);
    char *want_sts = read_file(path, NULL);
    snprintf(path, sizeof path, "%s/query-signature.txt", dir);
    char *want_sig = read_file(path, NULL);
    trim_trailing_newlines(want_sig);
    snprintf(path, sizeof path, "%s/query-signed-request.txt", dir);
    char *want_sreq = read_file(path, NULL);
    ep_sigv4_config cfg = *base;
    char *ex = json_str(ctx, "expiration_in_seconds");
    cfg.presign_expires = ex ? strtol(ex, NULL, 10) : 3600;
    free(ex);
    ep_sigv4_request r = {p->method, p->path, p->query, p->hs, p->nh, p->body, p->body_len};
    ep_sigv4_result res;
    char err[256];
    snprintf(name, sizeof name, "%s (presigned)", cas);
    if (ep_sigv4_sign(&r, &cfg, &res, err, sizeof err) != 0) {
        printf("FAIL %s [sign]: %s\n", name, err);
        failed++;
    } else {
        check_text(name, "canonical request", want_creq, res.canonical_request);
        check_text(name, "string to sign", want_sts, res.string_to_sign);
        check_text(name, "signature", want_sig, res.signature);
        size_t cap =
            strlen(p->method) + strlen(p->path) + strlen(res.presigned_query) + p->body_len + 64;
        for (size_t i = 0; i < p->nraw; i++)
            cap += strlen(p->raw_lines[i]) + 1;
        char *sreq = malloc(cap);
        size_t n = (size_t)snprintf(sreq, cap, "%s %s?%s HTTP/1.1\n", p->method, p->path,
                                    res.presigned_query);
        for (size_t i = 0; i < p->nraw; i++)
            n += (size_t)snprintf(sreq + n, cap - n, "%s\n", p->raw_lines[i]);
        n += (size_t)snprintf(sreq + n, cap - n, "\n");
        memcpy(sreq + n, p->body, p->body_len);
        sreq[n + p->body_len] = '\0';
        check_text(name, "signed request", want_sreq, sreq);
        check(res.authorization == NULL && res.nadded == 0, "presigning adds no header");
        free(sreq);
        lua_case(name, "presign", p, &cfg, want_creq, want_sts, want_sig, NULL);
        ep_sigv4_result_free(&res);
    }
    free(want_creq);
    free(want_sts);
    free(want_sig);
    free(want_sreq);
}

static void run_case(const char *dir, const char *name, int suite)
{
    char path[4096], cas[512];
    const char *rel = strstr(dir, "sigv4/");
    snprintf(cas, sizeof cas, "%s", rel ? rel + 6 : dir);
    ep_sigv4_config cfg = sigv4_suite_config();
    char *ctx = NULL, *ctx_ak = NULL, *ctx_sk = NULL, *ctx_tok = NULL, *ctx_ts = NULL;
    char *ctx_region = NULL, *ctx_service = NULL;
    char *req, *want_creq, *want_sts, *want_sig = NULL, *want_authz = NULL, *want_sreq;
    size_t reqlen;
    char date[17] = "";
    if (suite == SUITE_CAUTH) {
        snprintf(path, sizeof path, "%s/context.json", dir);
        ctx = read_file(path, NULL);
        if (!ctx) {
            printf("SKIP %s: cannot read context.json\n", cas);
            skipped++;
            return;
        }
        ctx_ak = json_str(ctx, "access_key_id");
        ctx_sk = json_str(ctx, "secret_access_key");
        ctx_tok = json_str(ctx, "token");
        ctx_ts = json_str(ctx, "timestamp");
        ctx_region = json_str(ctx, "region");
        ctx_service = json_str(ctx, "service");
        if (ctx_ak)
            cfg.access_key = ctx_ak;
        if (ctx_sk) {
            cfg.secret_key = ctx_sk;
            cfg.secret_len = strlen(ctx_sk);
        }
        if (ctx_region)
            cfg.region = ctx_region;
        if (ctx_service)
            cfg.service = ctx_service;
        cfg.session_token = ctx_tok;
        cfg.normalize_path = cfg.double_encode = json_bool(ctx, "normalize", 1);
        cfg.sign_body = json_bool(ctx, "sign_body", 0);
        cfg.omit_session_token = json_bool(ctx, "omit_session_token", 0);
        /* "2015-08-30T12:36:00Z" -> "20150830T123600Z" */
        size_t k = 0;
        for (const char *t = ctx_ts ? ctx_ts : ""; *t && k < 16; t++)
            if (*t != '-' && *t != ':')
                date[k++] = *t;
        date[k] = '\0';
        cfg.amz_date = date;
        snprintf(path, sizeof path, "%s/request.txt", dir);
        req = read_file(path, &reqlen);
        snprintf(path, sizeof path, "%s/header-canonical-request.txt", dir);
        want_creq = read_file(path, NULL);
        snprintf(path, sizeof path, "%s/header-string-to-sign.txt", dir);
        want_sts = read_file(path, NULL);
        snprintf(path, sizeof path, "%s/header-signature.txt", dir);
        want_sig = read_file(path, NULL);
        trim_trailing_newlines(want_sig);
        snprintf(path, sizeof path, "%s/header-signed-request.txt", dir);
        want_sreq = read_file(path, NULL);
    } else {
        snprintf(path, sizeof path, "%s/%s.req", dir, name);
        req = read_file(path, &reqlen);
        snprintf(path, sizeof path, "%s/%s.creq", dir, name);
        want_creq = read_file(path, NULL);
        snprintf(path, sizeof path, "%s/%s.sts", dir, name);
        want_sts = read_file(path, NULL);
        snprintf(path, sizeof path, "%s/%s.authz", dir, name);
        want_authz = read_file(path, NULL);
        snprintf(path, sizeof path, "%s/%s.sreq", dir, name);
        want_sreq = read_file(path, NULL);
        /* post-sts-token/readme.txt: the token is signed when it is in the
         * request ("before"), added after signing in "after". */
        if (strcmp(name, "post-sts-header-after") == 0) {
            snprintf(path, sizeof path, "%s/%s.sreq", dir, name);
            const char *t = want_sreq ? strstr(want_sreq, "X-Amz-Security-Token:") : NULL;
            if (t) {
                t += strlen("X-Amz-Security-Token:");
                ctx_tok = dupn(t, strcspn(t, "\n"));
                cfg.session_token = ctx_tok;
                cfg.omit_session_token = 1;
            }
        }
    }
    parsed p;
    if (!req || parse_request(req, reqlen, suite, &p) != 0) {
        printf("FAIL %s [parse request]: unreadable or malformed request file\n", cas);
        failed++;
        if (req)
            parsed_free(&p);
    } else {
        ep_sigv4_request r = {p.method, p.path, p.query, p.hs, p.nh, p.body, p.body_len};
        ep_sigv4_result res;
        char err[256];
        if (ep_sigv4_sign(&r, &cfg, &res, err, sizeof err) != 0) {
            printf("FAIL %s [sign]: %s\n", cas, err);
            failed++;
        } else {
            check_text(cas, "canonical request", want_creq, res.canonical_request);
            check_text(cas, "string to sign", want_sts, res.string_to_sign);
            if (want_sig)
                check_text(cas, "signature", want_sig, res.signature);
            if (want_authz)
                check_text(cas, "authorization", want_authz, res.authorization);
            char *sreq = render_signed(&p, &res, suite);
            check_text(cas, "signed request", want_sreq, sreq);
            free(sreq);
            /* The Lua face on the same case, and the prepared signer (C, then Lua). */
            lua_case(cas, "sign", &p, &cfg, want_creq, want_sts, want_sig, want_authz);
            prepared_case(cas, &p, &cfg, &res);
            lua_case(cas, "prepared", &p, &cfg, want_creq, want_sts, want_sig, want_authz);
            if (suite == SUITE_CAUTH)
                run_presign(dir, cas, &p, &cfg, ctx);
            ep_sigv4_result_free(&res);
        }
        parsed_free(&p);
    }
    free(req);
    free(want_creq);
    free(want_sts);
    free(want_sig);
    free(want_authz);
    free(want_sreq);
    free(ctx);
    free(ctx_ak);
    free(ctx_sk);
    free(ctx_tok);
    free(ctx_ts);
    free(ctx_region);
    free(ctx_service);
}

/* ---- walking the suites ---------------------------------------------------- */

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn)
                break;
            names = nn;
        }
        names[n++] = dupn(e->d_name, strlen(e->d_name));
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmpstr);
    int cases = 0;
    for (size_t i = 0; i < n; i++) {
        char sub[4096], probe[4200];
        snprintf(sub, sizeof sub, "%s/%s", dir, names[i]);
        if (is_dir(sub)) {
            snprintf(probe, sizeof probe, "%s/context.json", sub);
            if (exists(probe)) {
                run_case(sub, names[i], SUITE_CAUTH);
                cases++;
            } else {
                snprintf(probe, sizeof probe, "%s/%s.req", sub, names[i]);
                if (exists(probe)) {
                    run_case(sub, names[i], SUITE_ORIGINAL);
                    cases++;
                } else if (depth < 4)
                    cases += walk(sub, depth + 1);
            }
        }
        free(names[i]);
    }
    free(names);
    return cases;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : getenv("ECSPLAY_VECTORS");
    if (!dir || !*dir)
        dir = "tests/vectors/sigv4";
    if (!is_dir(dir)) {
        printf("cannot open the SigV4 vectors at %s (give a path as argv[1] or ECSPLAY_VECTORS)\n",
               dir);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    L = sigv4_lua_state();
    int cases = walk(dir, 0);
    printf("%d suite cases run\n", cases);
    if (cases < 60) {
        printf("FAIL expected at least 60 suite cases under %s, found %d\n", dir, cases);
        failed++;
    }
    lua_close(L);
    printf("counts are per check (one per case and stage)\n");
    printf("%d skipped\n", skipped);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
