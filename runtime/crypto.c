/* crypto.c: hashing, HMAC, hex/base64 and randomness for the runtime and for
 * Lua (module ecsplay.core.crypto). Mechanism only; no policy lives here. */
#include "crypto.h"
#include "ep.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

/* ---- C helpers ---------------------------------------------------------- */

/*
 * SHA-256 and HMAC-SHA-256. OpenSSL 3's EVP_sha256() and HMAC() look the
 * algorithm up in the provider store on every call (EVP_MD_fetch,
 * EVP_Q_mac), which costs more than hashing a signed request; here it is
 * fetched once per process and HMAC is RFC 2104's two digests over it. One
 * signed call hashes five times (body, canonical request, key cache id, two
 * HMAC halves), so it matters (bench/per_call.md). Thread-safe: the fetched
 * EVP_MD is read-only once published (pthread_once) and each call has its own
 * EVP_MD_CTX. When the fetch fails (a provider configuration without
 * SHA2-256 under that name) the one-shot functions are used.
 */
#define SHA256_BLOCK 64

static EVP_MD *sha256_md; /* never freed: one per process, like OpenSSL's own tables */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void) { sha256_md = EVP_MD_fetch(NULL, "SHA2-256", NULL); }

static const EVP_MD *sha256_fetched(void)
{
    pthread_once(&sha256_once, fetch_sha256);
    return sha256_md;
}

/* Hashes the concatenation of two parts (either may be empty); 0 or -1. */
static int digest2(EVP_MD_CTX *ctx, const EVP_MD *md, const void *a, size_t alen, const void *b,
                   size_t blen, unsigned char out[EP_SHA256_LEN])
{
    unsigned int n = 0;
    return EVP_DigestInit_ex2(ctx, md, NULL) == 1 &&
                   (alen == 0 || EVP_DigestUpdate(ctx, a, alen) == 1) &&
                   (blen == 0 || EVP_DigestUpdate(ctx, b, blen) == 1) &&
                   EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == EP_SHA256_LEN
               ? 0
               : -1;
}

static int sha256_one_shot(const void *data, size_t len, unsigned char out[EP_SHA256_LEN])
{
    unsigned int n = 0;
    /* EVP_Digest accepts NULL data only with len 0; pass a valid pointer. */
    if (EVP_Digest(len ? data : "", len, out, &n, EVP_sha256(), NULL) != 1 || n != EP_SHA256_LEN)
        return -1;
    return 0;
}

int ep_sha256(const void *data, size_t len, unsigned char out[EP_SHA256_LEN])
{
    const EVP_MD *md = sha256_fetched();
    if (!md)
        return sha256_one_shot(data, len, out);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return -1;
    int rc = digest2(ctx, md, data, len, NULL, 0, out);
    EVP_MD_CTX_free(ctx);
    return rc;
}

static int hmac_one_shot(const void *key, size_t key_len, const void *data, size_t len,
                         unsigned char out[EP_SHA256_LEN])
{
    unsigned int n = 0;
    /* The one-shot HMAC() is not deprecated in OpenSSL 3 (HMAC_CTX is). */
    if (key_len > (size_t)0x7fffffff)
        return -1;
    if (!HMAC(EVP_sha256(), key_len ? key : "", (int)key_len,
              len ? (const unsigned char *)data : (const unsigned char *)"", len, out, &n) ||
        n != EP_SHA256_LEN)
        return -1;
    return 0;
}

int ep_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                   unsigned char out[EP_SHA256_LEN])
{
    const EVP_MD *md = sha256_fetched();
    if (!md)
        return hmac_one_shot(key, key_len, data, len, out);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return -1;
    /* RFC 2104: a key longer than the block is hashed first; then
     * H((K ^ opad) || H((K ^ ipad) || data)). */
    unsigned char k[SHA256_BLOCK], inner[EP_SHA256_LEN];
    memset(k, 0, sizeof k);
    int rc = 0;
    if (key_len > SHA256_BLOCK)
        rc = digest2(ctx, md, key, key_len, NULL, 0, k);
    else if (key_len)
        memcpy(k, key, key_len);
    for (size_t i = 0; i < SHA256_BLOCK; i++)
        k[i] ^= 0x36;
    if (rc == 0)
        rc = digest2(ctx, md, k, sizeof k, data, len, inner);
    for (size_t i = 0; i < SHA256_BLOCK; i++)
        k[i] ^= 0x36 ^ 0x5c;
    if (rc == 0)
        rc = digest2(ctx, md, k, sizeof k, inner, sizeof inner, out);
    ep_wipe(k, sizeof k);
    ep_wipe(inner, sizeof inner);
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* ---- the reusable hasher (crypto.h) ---------------------------------------- */

struct ep_hasher {
    EVP_MD_CTX *ctx;                 /* the digest being made */
    EVP_MD_CTX *ipad, *opad;         /* (K ^ ipad) and (K ^ opad) absorbed; NULL until a key */
    unsigned char key[SHA256_BLOCK]; /* the key itself, for the one-shot fallback */
    size_t key_len;
    int has_key;
};

ep_hasher *ep_hasher_new(void)
{
    ep_hasher *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    if (sha256_fetched()) {
        h->ctx = EVP_MD_CTX_new();
        h->ipad = EVP_MD_CTX_new();
        h->opad = EVP_MD_CTX_new();
        if (!h->ctx || !h->ipad || !h->opad) {
            ep_hasher_free(h);
            return NULL;
        }
    }
    return h;
}

void ep_hasher_free(ep_hasher *h)
{
    if (!h)
        return;
    /* OpenSSL's SHA-256 frees its state with OPENSSL_clear_free: the pads go wiped */
    EVP_MD_CTX_free(h->ctx);
    EVP_MD_CTX_free(h->ipad);
    EVP_MD_CTX_free(h->opad);
    ep_wipe(h->key, sizeof h->key);
    free(h);
}

int ep_hasher_sha256_hex(ep_hasher *h, const void *data, size_t len,
                         char out[EP_SHA256_HEX_LEN + 1])
{
    if (!h->ctx)
        return ep_sha256_hex(data, len, out);
    unsigned char md[EP_SHA256_LEN];
    if (digest2(h->ctx, sha256_md, data, len, NULL, 0, md) != 0)
        return -1;
    ep_hex_encode(md, sizeof md, out);
    return 0;
}

/* Absorbs K ^ pad (one block) into ctx. */
static int absorb_pad(EVP_MD_CTX *ctx, const unsigned char *key, size_t key_len, unsigned char pad)
{
    unsigned char k[SHA256_BLOCK];
    memset(k, 0, sizeof k);
    memcpy(k, key, key_len);
    for (size_t i = 0; i < SHA256_BLOCK; i++)
        k[i] ^= pad;
    int ok =
        EVP_DigestInit_ex2(ctx, sha256_md, NULL) == 1 && EVP_DigestUpdate(ctx, k, sizeof k) == 1;
    ep_wipe(k, sizeof k);
    return ok ? 0 : -1;
}

int ep_hasher_set_key(ep_hasher *h, const void *key, size_t key_len)
{
    h->has_key = 0;
    ep_wipe(h->key, sizeof h->key);
    if (key_len > SHA256_BLOCK)
        return -1;
    memcpy(h->key, key, key_len);
    h->key_len = key_len;
    if (h->ctx && (absorb_pad(h->ipad, h->key, key_len, 0x36) != 0 ||
                   absorb_pad(h->opad, h->key, key_len, 0x5c) != 0))
        return -1;
    h->has_key = 1;
    return 0;
}

int ep_hasher_hmac(ep_hasher *h, const void *data, size_t len, unsigned char out[EP_SHA256_LEN])
{
    if (!h->has_key)
        return -1;
    if (!h->ctx)
        return ep_hmac_sha256(h->key, h->key_len, data, len, out);
    /* RFC 2104 from the absorbed pads: H((K ^ opad) || H((K ^ ipad) || data)) */
    unsigned char inner[EP_SHA256_LEN];
    unsigned int n = 0, m = 0;
    int ok = EVP_MD_CTX_copy_ex(h->ctx, h->ipad) == 1 &&
             (len == 0 || EVP_DigestUpdate(h->ctx, data, len) == 1) &&
             EVP_DigestFinal_ex(h->ctx, inner, &n) == 1 && n == EP_SHA256_LEN &&
             EVP_MD_CTX_copy_ex(h->ctx, h->opad) == 1 &&
             EVP_DigestUpdate(h->ctx, inner, sizeof inner) == 1 &&
             EVP_DigestFinal_ex(h->ctx, out, &m) == 1 && m == EP_SHA256_LEN;
    ep_wipe(inner, sizeof inner);
    return ok ? 0 : -1;
}

void ep_hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int ep_sha256_hex(const void *data, size_t len, char out[EP_SHA256_HEX_LEN + 1])
{
    unsigned char md[EP_SHA256_LEN];
    if (ep_sha256(data, len, md) != 0)
        return -1;
    ep_hex_encode(md, sizeof md, out);
    return 0;
}

int ep_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen)
        return 0;
    if (alen == 0)
        return 1;
    return CRYPTO_memcmp(a, b, alen) == 0;
}

void ep_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

/* ---- Lua face ----------------------------------------------------------- */

static int l_sha256(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    unsigned char md[EP_SHA256_LEN];
    if (ep_sha256(s, len, md) != 0)
        return luaL_error(L, "crypto.sha256: OpenSSL digest failed");
    lua_pushlstring(L, (const char *)md, sizeof md);
    return 1;
}

static int l_sha256_hex(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char hex[EP_SHA256_HEX_LEN + 1];
    if (ep_sha256_hex(s, len, hex) != 0)
        return luaL_error(L, "crypto.sha256_hex: OpenSSL digest failed");
    lua_pushlstring(L, hex, EP_SHA256_HEX_LEN);
    return 1;
}

static int l_hmac_sha256(lua_State *L)
{
    size_t klen, len;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *s = luaL_checklstring(L, 2, &len);
    unsigned char md[EP_SHA256_LEN];
    if (ep_hmac_sha256(key, klen, s, len, md) != 0)
        return luaL_error(L, "crypto.hmac_sha256: OpenSSL HMAC failed");
    lua_pushlstring(L, (const char *)md, sizeof md);
    ep_wipe(md, sizeof md);
    return 1;
}

static int l_hex(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    static const char digits[] = "0123456789abcdef";
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, len * 2);
    for (size_t i = 0; i < len; i++) {
        p[2 * i] = digits[s[i] >> 4];
        p[2 * i + 1] = digits[s[i] & 15];
    }
    luaL_pushresultsize(&b, len * 2);
    return 1;
}

int ep_hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int l_unhex(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    if (len % 2) {
        lua_pushnil(L);
        lua_pushfstring(L, "crypto.unhex: odd length %d, expected pairs of hex digits", (int)len);
        return 2;
    }
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, len / 2);
    for (size_t i = 0; i < len; i += 2) {
        int hi = ep_hexval(s[i]), lo = ep_hexval(s[i + 1]);
        if (hi < 0 || lo < 0) {
            lua_pushnil(L);
            lua_pushfstring(L, "crypto.unhex: invalid hex digit at offset %d",
                            (int)(hi < 0 ? i : i + 1));
            return 2;
        }
        p[i / 2] = (char)(hi << 4 | lo);
    }
    luaL_pushresultsize(&b, len / 2);
    return 1;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int l_base64(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    size_t olen = (len + 2) / 3 * 4;
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, olen);
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        p[o++] = b64chars[v >> 18 & 63];
        p[o++] = b64chars[v >> 12 & 63];
        p[o++] = b64chars[v >> 6 & 63];
        p[o++] = b64chars[v & 63];
    }
    if (i < len) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < len ? (unsigned)s[i + 1] << 8 : 0);
        p[o++] = b64chars[v >> 18 & 63];
        p[o++] = b64chars[v >> 12 & 63];
        p[o++] = i + 1 < len ? b64chars[v >> 6 & 63] : '=';
        p[o++] = '=';
    }
    luaL_pushresultsize(&b, o);
    return 1;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict standard base64 (RFC 4648 section 4): padding required, no
 * whitespace, so a corrupted value is reported instead of half-decoded. */
static int l_unbase64(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    if (len % 4) {
        lua_pushnil(L);
        lua_pushfstring(L, "crypto.unbase64: length %d is not a multiple of 4", (int)len);
        return 2;
    }
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, len / 4 * 3);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = s[i + k];
            if (c == '=' && i + 4 == len && k >= 2 && (k == 3 || s[i + 3] == '=')) {
                v[k] = 0;
                pad++;
                continue;
            }
            v[k] = b64val(c);
            if (v[k] < 0 || pad) {
                lua_pushnil(L);
                lua_pushfstring(L, "crypto.unbase64: invalid character at offset %d", (int)(i + k));
                return 2;
            }
        }
        unsigned w =
            (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
        p[o++] = (char)(w >> 16 & 255);
        if (pad < 2)
            p[o++] = (char)(w >> 8 & 255);
        if (pad < 1)
            p[o++] = (char)(w & 255);
    }
    luaL_pushresultsize(&b, o);
    return 1;
}

static int l_random_bytes(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0 && n <= 1 << 20, 1, "expected a byte count between 0 and 1048576");
    luaL_Buffer b;
    unsigned char *p = (unsigned char *)luaL_buffinitsize(L, &b, (size_t)n);
    if (n > 0 && RAND_bytes(p, (int)n) != 1)
        return luaL_error(L, "crypto.random_bytes: OpenSSL RAND_bytes failed (no entropy?)");
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

/* RFC 4122 version 4 UUID, lowercase: xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx */
static int l_uuid4(lua_State *L)
{
    unsigned char r[16];
    char hex[33], out[37];
    if (RAND_bytes(r, sizeof r) != 1)
        return luaL_error(L, "crypto.uuid4: OpenSSL RAND_bytes failed (no entropy?)");
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    ep_hex_encode(r, sizeof r, hex);
    memcpy(out, hex, 8);
    out[8] = '-';
    memcpy(out + 9, hex + 8, 4);
    out[13] = '-';
    memcpy(out + 14, hex + 12, 4);
    out[18] = '-';
    memcpy(out + 19, hex + 16, 4);
    out[23] = '-';
    memcpy(out + 24, hex + 20, 12);
    lua_pushlstring(L, out, 36);
    return 1;
}

/* Constant-time string equality, for comparing signatures and tokens. */
static int l_equal(lua_State *L)
{
    size_t alen, blen;
    const char *a = luaL_checklstring(L, 1, &alen);
    const char *b = luaL_checklstring(L, 2, &blen);
    lua_pushboolean(L, ep_ct_equal(a, alen, b, blen));
    return 1;
}

/*
** fnv1a32(s) -> integer in [0, 2^32): FNV-1a then the murmur3 finaliser, so
** near keys land far apart. Not cryptographic: the simulator's deterministic
** noise and ids hash short keys millions of times in a long rehearsal, and a
** byte loop in Lua was its hottest spot. Same values as sim/world.lua's
** pure-Lua fallback.
*/
static int l_fnv1a32(lua_State *L)
{
    size_t n;
    const unsigned char *p = (const unsigned char *)luaL_checklstring(L, 1, &n);
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    lua_pushinteger(L, (lua_Integer)h);
    return 1;
}

static const luaL_Reg crypto_funcs[] = {
    {"fnv1a32", l_fnv1a32},
    {"sha256", l_sha256},
    {"sha256_hex", l_sha256_hex},
    {"hmac_sha256", l_hmac_sha256},
    {"hex", l_hex},
    {"unhex", l_unhex},
    {"base64", l_base64},
    {"unbase64", l_unbase64},
    {"random_bytes", l_random_bytes},
    {"uuid4", l_uuid4},
    {"equal", l_equal},
    {NULL, NULL},
};

int luaopen_ecsplay_core_crypto(lua_State *L)
{
    luaL_newlib(L, crypto_funcs);
    return 1;
}
