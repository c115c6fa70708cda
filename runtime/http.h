/*
 * http.h: what the two halves of ecsplay.core.http share (internal to http.c and
 * http_response.c): a transfer, and what happens to its response.
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
