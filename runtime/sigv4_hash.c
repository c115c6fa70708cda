/* sigv4_hash.c: SHA-256 and HMAC-SHA-256 for the signer (sigv4.c, sigv4_key.c).
 *
 * The same digests as crypto.c's ep_sha256/ep_hmac_sha256, minus OpenSSL 3's
 * per-call cost: EVP_sha256() and HMAC() look the algorithm up in the provider
 * store on every call (EVP_MD_fetch, EVP_Q_mac), which cost more than hashing
 * a request. Here the algorithm is fetched once per process and HMAC is the
 * two-digest construction of RFC 2104 over it. One signed call hashes five
 * times (body, canonical request, cache id, two HMAC halves), so it matters.
 *
 * Thread-safe: the fetched EVP_MD is read-only once published (pthread_once),
 * and each call has its own EVP_MD_CTX. When the fetch fails (a provider
 * configuration without SHA2-256 under that name) crypto.c's functions do. */
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

#include "crypto.h"
#include "sigv4.h"

#define SHA256_BLOCK 64

static EVP_MD *sha256_md; /* never freed: one per process, like OpenSSL's own tables */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void) { sha256_md = EVP_MD_fetch(NULL, "SHA2-256", NULL); }

static const EVP_MD *sha256(void)
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

int ep_sigv4_sha256(const void *data, size_t len, unsigned char out[EP_SHA256_LEN])
{
    const EVP_MD *md = sha256();
    if (!md)
        return ep_sha256(data, len, out);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return -1;
    int rc = digest2(ctx, md, data, len, NULL, 0, out);
    EVP_MD_CTX_free(ctx);
    return rc;
}

int ep_sigv4_sha256_hex(const void *data, size_t len, char out[EP_SHA256_HEX_LEN + 1])
{
    unsigned char md[EP_SHA256_LEN];
    if (ep_sigv4_sha256(data, len, md) != 0)
        return -1;
    ep_hex_encode(md, sizeof md, out);
    return 0;
}

int ep_sigv4_hmac(const void *key, size_t key_len, const void *data, size_t len,
                  unsigned char out[EP_SHA256_LEN])
{
    const EVP_MD *md = sha256();
    if (!md)
        return ep_hmac_sha256(key, key_len, data, len, out);
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
