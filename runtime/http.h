/*
 * http.h: what the parts of ecsplay.core.http share (internal to http.c, http_request.c
 * and http_response.c): a transfer, the request it is made from, and what happens to its
 * response.
 */
#ifndef EP_HTTP_H
#define EP_HTTP_H

#include <stddef.h>

#include <lua.h>

#include "netlib.h" /* libcurl's types; calls go through ep_curl */

/* Response headers are not bounded by max_size; a server streaming endless headers must
 * still be stopped. */
#define EP_HTTP_MAX_HEADER_BYTES (256 * 1024)

enum ep_xfer_state { XFER_SETUP, XFER_RUNNING, XFER_DONE };

struct ep_buf {
    char *data;
    size_t len, cap;
};

/* What an easy handle was last set up for, beyond one transfer's own options: a handle
 * reused for the same kind of request keeps these options instead of being reset and set
 * again (http.c's easy_get). */
struct ep_easy_conf {
    char method[24];
    char *ca; /* the CA bundle set (owned copy), NULL for libcurl's default */
    int has_body, verbose;
};

struct ep_xfer {
    struct ep_xfer *next;
    lua_Integer id;
    enum ep_xfer_state state;
    CURL *easy;
    struct ep_easy_conf conf; /* the easy handle's, moved with it to and from the pool */
    int conf_kept;            /* easy came from the pool set up as this request needs */
    /* The request headers as libcurl's list, made here in two blocks rather than a malloc
     * per line (curl_slist_append): the lines, NUL after each (wiped when freed: they carry
     * credentials), and the list's nodes pointing into them. */
    struct ep_buf req_lines;
    size_t n_req_lines;
    struct curl_slist *req_headers;
    struct ep_buf body;
    struct ep_buf raw_headers; /* header lines of the final response, CRLF kept */
    size_t max_size;
    int too_large;    /* body exceeded max_size */
    int headers_huge; /* header block exceeded EP_HTTP_MAX_HEADER_BYTES */
    int oom;
    CURLcode result;
    char method[24];
    char origin[160]; /* scheme://host[:port] only: safe to put in error messages */
    char errbuf[CURL_ERROR_SIZE];
};

#define EP_HTTP_DEFAULT_TIMEOUT 60.0
#define EP_HTTP_DEFAULT_CONNECT_TIMEOUT 10.0
#define EP_HTTP_DEFAULT_MAX_SIZE ((lua_Integer)64 * 1024 * 1024)

/* Stack slots start() fills, in this order, above the request table (1). */
enum {
    EP_HTTP_ARG_METHOD = 2,
    EP_HTTP_ARG_URL,
    EP_HTTP_ARG_BODY,
    EP_HTTP_ARG_CA,
    EP_HTTP_ARG_HEADERS,
    /* a request signed here (start's `signer`): the signer and the signing's inputs */
    EP_HTTP_ARG_SIGNER,
    EP_HTTP_ARG_SIGN_TIME,
    EP_HTTP_ARG_ACCESS_KEY,
    EP_HTTP_ARG_SECRET_KEY,
    EP_HTTP_ARG_SESSION_TOKEN,
    EP_HTTP_ARG_UNSIGNED /* headers sent after signing, not signed */
};

/* The request table's fields, read and checked before anything is allocated. The
 * strings stay alive in their stack slots until start() returns. */
struct ep_http_args {
    const char *method, *url, *body, *ca;
    size_t method_len, url_len, body_len;
    double timeout, connect_timeout, max_size;
    int verbose;
    int has_headers; /* a headers table sits in slot EP_HTTP_ARG_HEADERS */
    int sign;        /* sign here: a signer in slot EP_HTTP_ARG_SIGNER (ep_http_get_signing) */
};

/* http_request.c: start()'s request table (at stack index 1) read into *a, its strings
 * left in their stack slots (raises a Lua error on bad input, before any allocation). */
void ep_http_read_args(lua_State *L, struct ep_http_args *a);
/* Pushes the headers table (slot EP_HTTP_ARG_HEADERS); returns whether there is one. */
int ep_http_get_headers(lua_State *L);
/* Pushes the signing fields (slots EP_HTTP_ARG_SIGNER..EP_HTTP_ARG_UNSIGNED: signer,
 * sign_time, access_key, secret_key, session_token, unsigned_headers); returns whether
 * there is a signer (without one, only the signer's slot is pushed). */
int ep_http_get_signing(lua_State *L);
/* x->origin from url: scheme://host[:port], without any userinfo (safe in messages). */
void ep_http_set_origin(struct ep_xfer *x, const char *url);
/* The request headers, checked, as curl's list: 0, -1 (ENOMEM) or 1 when a header is not
 * fit to send (*why: the message, with a %s for the header's name, left on the stack).
 * With a->sign, the request is signed as its headers stand and the signer's headers are
 * added (a Lua error on bad signing input). */
int ep_http_build_header_list(lua_State *L, struct ep_xfer *x, const struct ep_http_args *a,
                              const char **why);

/* Room for n more bytes and a NUL in b; 0 or -1 (ENOMEM). */
int ep_http_buf_reserve(struct ep_buf *b, size_t n);
/* Appends n bytes to b (kept NUL-terminated after len); 0 or -1 (ENOMEM). */
int ep_http_buf_append(struct ep_buf *b, const char *p, size_t n);

/* libcurl's write and header callbacks (userdata: the struct ep_xfer): they fill
 * x->body and x->raw_headers, and stop the transfer at its limits. */
size_t ep_http_on_body(char *p, size_t size, size_t nmemb, void *ud);
size_t ep_http_on_header(char *p, size_t size, size_t nmemb, void *ud);

/* Pushes the completion table of a finished transfer: {id=, status=, headers=,
 * body=} or, when it failed, {id=, status=0, headers={}, body="", error=, kind=}. */
void ep_http_push_completion(lua_State *L, struct ep_xfer *x);

#endif
