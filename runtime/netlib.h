/*
 * netlib: libcurl and libmicrohttpd, loaded with dlopen on first use.
 *
 * Linking them pulls in ~30 shared libraries (gnutls, krb5, ldap, ssh2, ...) whose
 * mapping and relocation cost more than the rest of a short run put together, yet most
 * runs (--simulate, -e chunks, --version) never touch the network. So ecsplay is not
 * linked with either: http.c and simserve.c call them through the tables below, filled
 * by ep_curl_load() / ep_mhd_load() from their luaopen_ functions.
 *
 * The headers are still used for types and constants, and every member's type is taken
 * from the library's own declaration (__typeof__), so a prototype mismatch is a compile
 * error. Variadic functions (curl_easy_setopt, MHD_start_daemon, ...) keep their variadic
 * type, so calls through the table pass arguments exactly as a direct call would.
 */
#ifndef EP_NETLIB_H
#define EP_NETLIB_H

#include <stddef.h>

/* Calls go through ep_curl.*, so curl's checking macros would never apply; disabling them
 * also turns any stray direct curl_easy_setopt() call into a link error. */
#ifndef CURL_DISABLE_TYPECHECK
#define CURL_DISABLE_TYPECHECK
#endif
#include <curl/curl.h>
#include <microhttpd.h>

/* The sonames loaded: the ABI versions the headers above describe (libcurl.so.4 is the
 * OpenSSL flavour on Debian). Overridable at build time, e.g. for a system that only has
 * libcurl-gnutls.so.4: make EXTRA_CFLAGS='-DEP_CURL_SONAME=\"libcurl-gnutls.so.4\"'. */
#ifndef EP_CURL_SONAME
#define EP_CURL_SONAME "libcurl.so.4"
#endif
#ifndef EP_MHD_SONAME
#define EP_MHD_SONAME "libmicrohttpd.so.12"
#endif

#define EP_FN(name) __typeof__(name) *

struct ep_curl_api {
    EP_FN(curl_global_init) global_init;
    EP_FN(curl_global_cleanup) global_cleanup;
    EP_FN(curl_easy_init) easy_init;
    EP_FN(curl_easy_setopt) easy_setopt;
    EP_FN(curl_easy_getinfo) easy_getinfo;
    EP_FN(curl_easy_cleanup) easy_cleanup;
    EP_FN(curl_easy_strerror) easy_strerror;
    EP_FN(curl_multi_init) multi_init;
    EP_FN(curl_multi_add_handle) multi_add_handle;
    EP_FN(curl_multi_remove_handle) multi_remove_handle;
    EP_FN(curl_multi_perform) multi_perform;
    EP_FN(curl_multi_info_read) multi_info_read;
    EP_FN(curl_multi_poll) multi_poll;
    EP_FN(curl_multi_cleanup) multi_cleanup;
    EP_FN(curl_multi_strerror) multi_strerror;
    EP_FN(curl_share_init) share_init;
    EP_FN(curl_share_setopt) share_setopt;
    EP_FN(curl_share_cleanup) share_cleanup;
    EP_FN(curl_slist_append) slist_append;
    EP_FN(curl_slist_free_all) slist_free_all;
};

struct ep_mhd_api {
    EP_FN(MHD_start_daemon) start_daemon;
    EP_FN(MHD_stop_daemon) stop_daemon;
    EP_FN(MHD_run) run;
    EP_FN(MHD_get_daemon_info) get_daemon_info;
    EP_FN(MHD_get_timeout) get_timeout;
    EP_FN(MHD_create_response_from_buffer) create_response_from_buffer;
    EP_FN(MHD_add_response_header) add_response_header;
    EP_FN(MHD_queue_response) queue_response;
    EP_FN(MHD_destroy_response) destroy_response;
    EP_FN(MHD_lookup_connection_value) lookup_connection_value;
    EP_FN(MHD_get_connection_values) get_connection_values;
    EP_FN(MHD_suspend_connection) suspend_connection;
    EP_FN(MHD_resume_connection) resume_connection;
};

#undef EP_FN

/* Valid (every member non-NULL) once the matching load has returned 0. */
extern struct ep_curl_api ep_curl;
extern struct ep_mhd_api ep_mhd;

/* Load the library and resolve every function above: 0, or -1 with a message in err
 * (what failed and which package to install). Idempotent: after a success, later calls
 * return 0 at once; after a failure, the next call tries again. Never unloaded. */
int ep_curl_load(char *err, size_t n);
int ep_mhd_load(char *err, size_t n);

#endif
