/*
** Internal declarations shared by the runtime's C files. Every internal
** symbol starts with ep_; the public API (include/ecsplay.h) with ecsplay_.
*/
#ifndef EP_H
#define EP_H

#include <lauxlib.h>
#include <lua.h>

/* Lua modules written in C, preloaded by host.c (one file each). */
int luaopen_ecsplay_core(lua_State *L);          /* core.c: clocks, signals, files */
int luaopen_ecsplay_core_http(lua_State *L);     /* http.c: libcurl multi */
int luaopen_ecsplay_core_xml(lua_State *L);      /* xml.c: expat */
int luaopen_ecsplay_core_crypto(lua_State *L);   /* crypto.c: OpenSSL digests */
int luaopen_ecsplay_core_sigv4(lua_State *L);    /* sigv4_lua.c: the signer (sigv4.c) */
int luaopen_ecsplay_core_simserve(lua_State *L); /* simserve.c: libmicrohttpd */

/* sigv4_lua.c, for http.start's signed requests (http_request.c): signs with the prepared
** signer at stack index idx (sigv4.prepare's), the time at time_idx (epoch seconds or
** "YYYYMMDDTHHMMSSZ"), the credentials at ak_idx, sk_idx and token_idx (nil or "" = no
** token). *out as ep_sigv4_sign_prepared's (sigv4.h). Raises a Lua error on bad input. */
struct ep_sigv4_header;
struct ep_sigv4_signed;
void ep_sigv4_http_sign(lua_State *L, int idx, const char *method, const struct ep_sigv4_header *hs,
                        size_t nh, const char *body, size_t body_len, int time_idx, int ak_idx,
                        int sk_idx, int token_idx, struct ep_sigv4_signed *out);

/* core.c: signal plumbing. The handler records the signal and writes a
** byte to a self-pipe so that any poll() including ep_signal_fd() wakes. */
int ep_signal_fd(void);
int ep_signals_install(void); /* 0 or -1 */
void ep_signals_restore(void);
int ep_signal_pending(void); /* 0 or the signal number */
void ep_signal_clear(void);

/* host.c: runs an entry point of ecsplay.runner (used by main.c for the
** subcommands that are not playbooks: "sim_serve", "rollback", "resume"). */
struct ecsplay_runtime;
int ep_run_entry(struct ecsplay_runtime *rt, const char *entry, int argc, char **argv);
/* runner.command(options, name, argv...): `ecsplay NAME ...` (cli/commands/). */
int ep_run_command(struct ecsplay_runtime *rt, const char *name, int argc, char **argv);

#endif
