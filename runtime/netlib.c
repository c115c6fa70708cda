/*
 * netlib: dlopen libcurl / libmicrohttpd on first use and fill the function tables of
 * netlib.h. See there for why they are not linked.
 *
 * Neither library is ever dlclose'd: libcurl keeps process-wide state (its global init,
 * the TLS library's and its dependencies' atexit handlers and thread-locals) that does not
 * survive being unmapped, and a loaded library costs nothing once the mapping is done.
 * Loading is idempotent; thread-safety is not needed (the runtime is single-threaded).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "netlib.h"

struct ep_curl_api ep_curl;
struct ep_mhd_api ep_mhd;

struct ep_sym {
    const char *name;
    size_t offset; /* of the member in the table */
};

#define CURL_SYM(field, sym)                                                                       \
    {                                                                                              \
#sym, offsetof(struct ep_curl_api, field)                                                  \
    }
static const struct ep_sym curl_syms[] = {
    CURL_SYM(global_init, curl_global_init),
    CURL_SYM(global_cleanup, curl_global_cleanup),
    CURL_SYM(easy_init, curl_easy_init),
    CURL_SYM(easy_setopt, curl_easy_setopt),
    CURL_SYM(easy_getinfo, curl_easy_getinfo),
    CURL_SYM(easy_cleanup, curl_easy_cleanup),
    CURL_SYM(easy_strerror, curl_easy_strerror),
    CURL_SYM(multi_init, curl_multi_init),
    CURL_SYM(multi_add_handle, curl_multi_add_handle),
    CURL_SYM(multi_remove_handle, curl_multi_remove_handle),
    CURL_SYM(multi_perform, curl_multi_perform),
    CURL_SYM(multi_info_read, curl_multi_info_read),
    CURL_SYM(multi_poll, curl_multi_poll),
    CURL_SYM(multi_cleanup, curl_multi_cleanup),
    CURL_SYM(multi_strerror, curl_multi_strerror),
    CURL_SYM(share_init, curl_share_init),
    CURL_SYM(share_setopt, curl_share_setopt),
    CURL_SYM(share_cleanup, curl_share_cleanup),
    CURL_SYM(slist_append, curl_slist_append),
    CURL_SYM(slist_free_all, curl_slist_free_all),
};
#undef CURL_SYM

#define MHD_SYM(field, sym)                                                                        \
    {                                                                                              \
#sym, offsetof(struct ep_mhd_api, field)                                                   \
    }
static const struct ep_sym mhd_syms[] = {
    MHD_SYM(start_daemon, MHD_start_daemon),
    MHD_SYM(stop_daemon, MHD_stop_daemon),
    MHD_SYM(run, MHD_run),
    MHD_SYM(get_daemon_info, MHD_get_daemon_info),
    MHD_SYM(get_timeout, MHD_get_timeout),
    MHD_SYM(create_response_from_buffer, MHD_create_response_from_buffer),
    MHD_SYM(add_response_header, MHD_add_response_header),
    MHD_SYM(queue_response, MHD_queue_response),
    MHD_SYM(destroy_response, MHD_destroy_response),
    MHD_SYM(lookup_connection_value, MHD_lookup_connection_value),
    MHD_SYM(get_connection_values, MHD_get_connection_values),
    MHD_SYM(suspend_connection, MHD_suspend_connection),
    MHD_SYM(resume_connection, MHD_resume_connection),
};
#undef MHD_SYM

#define EP_SCRATCH 256
_Static_assert(sizeof(struct ep_curl_api) <= EP_SCRATCH, "grow EP_SCRATCH");
_Static_assert(sizeof(struct ep_mhd_api) <= EP_SCRATCH, "grow EP_SCRATCH");

/*
 * Opens soname and resolves syms into a scratch copy of the table, which is published
 * into *table only once every symbol is there: a half-filled table is never visible.
 * The function pointers are written with memcpy from dlsym's void *, which POSIX
 * guarantees round-trips (ISO C has no conversion between object and function pointers).
 */
static int load(const char *what, const char *soname, const char *install,
                const struct ep_sym *syms, size_t nsyms, void *table, size_t size, int *loaded,
                char *err, size_t n)
{
    if (*loaded)
        return 0;
    unsigned char scratch[EP_SCRATCH];
    /* RTLD_NOW: an unresolvable dependency fails here, with a message, rather than as a
     * crash in the middle of a transfer. RTLD_LOCAL: keep its symbols out of the way of
     * Lua C modules loaded later. */
    dlerror();
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(err, n, "cannot load %s (%s): %s; install %s", what, soname,
                 e ? e : "unknown error", install);
        return -1;
    }
    memset(scratch, 0, size);
    for (size_t i = 0; i < nsyms; i++) {
        dlerror();
        void *p = dlsym(h, syms[i].name);
        if (!p) {
            const char *e = dlerror();
            /* h stays open: see the top of the file. */
            snprintf(err, n, "cannot load %s (%s): it has no %s (%s); install a newer %s", what,
                     soname, syms[i].name, e ? e : "symbol not found", install);
            return -1;
        }
        memcpy(scratch + syms[i].offset, &p, sizeof p);
    }
    memcpy(table, scratch, size);
    *loaded = 1;
    return 0;
}

int ep_curl_load(char *err, size_t n)
{
    static int loaded;
    return load("libcurl", EP_CURL_SONAME, "libcurl4-openssl-dev or libcurl4", curl_syms,
                sizeof curl_syms / sizeof curl_syms[0], &ep_curl, sizeof ep_curl, &loaded, err, n);
}

int ep_mhd_load(char *err, size_t n)
{
    static int loaded;
    return load("libmicrohttpd", EP_MHD_SONAME, "libmicrohttpd-dev or libmicrohttpd12", mhd_syms,
                sizeof mhd_syms / sizeof mhd_syms[0], &ep_mhd, sizeof ep_mhd, &loaded, err, n);
}
