/* sigv4_key.c: the SigV4 signing key (see sigv4.h): derived from the secret
 * by four HMACs, and kept in a small least-recently-used cache so a run that
 * signs thousands of requests derives it once a day per region and service.
 *
 * The cache is keyed by a SHA-256 over (secret, date, region, service, access
 * key), never by the secret itself; an evicted key is wiped before its slot is
 * reused, and ep_sigv4_cache_clear() wipes them all. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "sbuf.h"
#include "sigv4.h"

/* ---- signing key cache ---------------------------------------------------- */

#define EP_SIGV4_CACHE_SLOTS 8

static struct {
    int used;
    unsigned long stamp;
    unsigned char id[EP_SHA256_LEN];
    unsigned char key[EP_SHA256_LEN];
} key_cache[EP_SIGV4_CACHE_SLOTS];
static unsigned long cache_clock, cache_hits, cache_misses;
/* The simulator's HTTP server may sign/verify off the main thread. */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

/* Length-prefixed, so ("ab","c") and ("a","bc") never share an id. */
static void id_field(ep_sbuf *b, const void *p, size_t n)
{
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    ep_sb_addn(b, (const char *)len, sizeof len);
    ep_sb_addn(b, p, n);
}

/* One digest over the fields laid out in a buffer (wiped after: it holds the
 * secret), rather than a digest context fed field by field. */
static int cache_id(const char *secret, size_t secret_len, const char *date8, const char *region,
                    const char *service, const char *access_key, unsigned char id[EP_SHA256_LEN])
{
    ep_sbuf b = {0};
    size_t date_len = strlen(date8), region_len = strlen(region), service_len = strlen(service),
           ak_len = strlen(access_key);
    /* sized once, so no realloc leaves a copy of the secret behind unwiped */
    ep_sb_reserve(&b, 6 * 8 + 20 + secret_len + date_len + region_len + service_len + ak_len);
    id_field(&b, "ecsplay-sigv4-key-id", 20);
    id_field(&b, secret, secret_len);
    id_field(&b, date8, date_len);
    id_field(&b, region, region_len);
    id_field(&b, service, service_len);
    id_field(&b, access_key, ak_len);
    int rc = b.oom ? -1 : ep_sha256(b.p, b.len, id);
    ep_wipe(b.p, b.cap);
    free(b.p);
    return rc;
}

static int derive_key(const char *secret, size_t secret_len, const char *date8, const char *region,
                      const char *service, unsigned char out[EP_SHA256_LEN])
{
    unsigned char k1[EP_SHA256_LEN], k2[EP_SHA256_LEN], k3[EP_SHA256_LEN];
    size_t klen = secret_len + 4;
    unsigned char *k0 = malloc(klen);
    if (!k0)
        return EP_SIGV4_ENOMEM;
    memcpy(k0, "AWS4", 4);
    if (secret_len)
        memcpy(k0 + 4, secret, secret_len);
    int rc = ep_hmac_sha256(k0, klen, date8, strlen(date8), k1) == 0 &&
                     ep_hmac_sha256(k1, sizeof k1, region, strlen(region), k2) == 0 &&
                     ep_hmac_sha256(k2, sizeof k2, service, strlen(service), k3) == 0 &&
                     ep_hmac_sha256(k3, sizeof k3, "aws4_request", 12, out) == 0
                 ? 0
                 : EP_SIGV4_ECRYPTO;
    ep_wipe(k0, klen);
    free(k0);
    ep_wipe(k1, sizeof k1);
    ep_wipe(k2, sizeof k2);
    ep_wipe(k3, sizeof k3);
    return rc;
}

int ep_sigv4_signing_key(const char *secret, size_t secret_len, const char *date8,
                         const char *region, const char *service, const char *access_key,
                         unsigned char key_out[32])
{
    unsigned char id[EP_SHA256_LEN];
    if (cache_id(secret, secret_len, date8, region, service, access_key, id) != 0)
        return EP_SIGV4_ECRYPTO;
    pthread_mutex_lock(&cache_lock);
    size_t victim = 0;
    for (size_t i = 0; i < EP_SIGV4_CACHE_SLOTS; i++) {
        if (key_cache[i].used && ep_ct_equal(key_cache[i].id, EP_SHA256_LEN, id, EP_SHA256_LEN)) {
            key_cache[i].stamp = ++cache_clock;
            memcpy(key_out, key_cache[i].key, EP_SHA256_LEN);
            cache_hits++;
            pthread_mutex_unlock(&cache_lock);
            return 0;
        }
        if (!key_cache[i].used ||
            (key_cache[victim].used && key_cache[i].stamp < key_cache[victim].stamp))
            victim = i;
    }
    cache_misses++;
    int rc = derive_key(secret, secret_len, date8, region, service, key_out);
    if (rc == 0) {
        /* Least recently used slot goes; its key is wiped before reuse. */
        ep_wipe(key_cache[victim].key, EP_SHA256_LEN);
        memcpy(key_cache[victim].id, id, EP_SHA256_LEN);
        memcpy(key_cache[victim].key, key_out, EP_SHA256_LEN);
        key_cache[victim].used = 1;
        key_cache[victim].stamp = ++cache_clock;
    }
    pthread_mutex_unlock(&cache_lock);
    return rc;
}

void ep_sigv4_cache_clear(void)
{
    pthread_mutex_lock(&cache_lock);
    for (size_t i = 0; i < EP_SIGV4_CACHE_SLOTS; i++) {
        ep_wipe(key_cache[i].key, EP_SHA256_LEN);
        ep_wipe(key_cache[i].id, EP_SHA256_LEN);
        key_cache[i].used = 0;
        key_cache[i].stamp = 0;
    }
    pthread_mutex_unlock(&cache_lock);
}

void ep_sigv4_cache_stats(unsigned long *hits, unsigned long *misses)
{
    pthread_mutex_lock(&cache_lock);
    if (hits)
        *hits = cache_hits;
    if (misses)
        *misses = cache_misses;
    pthread_mutex_unlock(&cache_lock);
}
