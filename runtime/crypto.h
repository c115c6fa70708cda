/* crypto.h: small OpenSSL 3 wrappers shared by the C modules (sigv4.c, the
 * simulator's server half) and exposed to Lua as ecsplay.core.crypto. */
#ifndef EP_CRYPTO_H
#define EP_CRYPTO_H

#include <stddef.h>

#define EP_SHA256_LEN 32
#define EP_SHA256_HEX_LEN 64

/* All return 0 on success, -1 on an OpenSSL failure. */
int ep_sha256(const void *data, size_t len, unsigned char out[EP_SHA256_LEN]);
/* out gets 64 lowercase hex digits and a NUL. */
int ep_sha256_hex(const void *data, size_t len, char out[EP_SHA256_HEX_LEN + 1]);
int ep_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                   unsigned char out[EP_SHA256_LEN]);

/*
 * A hasher for a caller that hashes many times (the prepared SigV4 signer): one digest
 * context kept from one digest to the next, and an HMAC key whose inner and outer pads
 * are absorbed once (ep_hasher_set_key), so each HMAC costs two fewer SHA-256 blocks.
 * Not shared between threads. Owner: the caller (ep_hasher_free wipes the key state).
 */
typedef struct ep_hasher ep_hasher;
ep_hasher *ep_hasher_new(void); /* NULL when out of memory */
void ep_hasher_free(ep_hasher *h);
int ep_hasher_sha256_hex(ep_hasher *h, const void *data, size_t len,
                         char out[EP_SHA256_HEX_LEN + 1]);
/* The HMAC key for ep_hasher_hmac (at most 64 bytes, SHA-256's block). */
int ep_hasher_set_key(ep_hasher *h, const void *key, size_t key_len);
int ep_hasher_hmac(ep_hasher *h, const void *data, size_t len, unsigned char out[EP_SHA256_LEN]);

/* Lowercase hex of n bytes into out (2n chars + NUL). */
void ep_hex_encode(const unsigned char *in, size_t n, char *out);

/* The value of one hex digit (either case), or -1. */
int ep_hexval(unsigned char c);

/* Constant-time comparison: 1 when equal (same length and bytes), else 0. */
int ep_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Overwrites n bytes so the compiler cannot elide it (OPENSSL_cleanse). */
void ep_wipe(void *p, size_t n);

struct lua_State;
int luaopen_ecsplay_core_crypto(struct lua_State *L);

#endif
