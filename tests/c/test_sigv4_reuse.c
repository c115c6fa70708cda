/*
 * test_sigv4_reuse: what a prepared signer keeps from one signing to the next (the
 * hasher's digest context and HMAC key pads, the last body's hash, the day's key) never
 * changes a signature: a sequence of signings whose body, day and secret change, each
 * compared with ep_sigv4_sign; and the hasher (crypto.h) against RFC 4231 and FIPS 180-2.
 */
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "sigv4.h"

#include "check.h"
#include "sigv4_test.h"

/* One prepared signer over a sequence of signings whose body, day and secret change
 * (the remembered body hash, the kept key and its HMAC pads must follow each change):
 * every signature equals ep_sigv4_sign's for the same request. */
static void prepared_sequence(void)
{
    static const struct {
        const char *body, *date, *secret;
        int same;
    } seq[] = {
        {"{}", "20150830T123600Z", SK, 0},
        {"{}", "20150830T123601Z", SK, 1},
        {"{\"a\":1}", "20150830T123602Z", SK, 1},
        {"{}", "20150830T123603Z", SK, 1},
        {"", "20150830T123604Z", SK, 1},
        {"{}", "20150831T000000Z", SK, 1},
        {"{}", "20150831T000001Z", "another-secret", 0},
        {"{\"a\":2}", "20150831T000002Z", "another-secret", 1},
        {"{\"a\":2}", "20150831T000003Z", SK, 0},
    };
    ep_sigv4_prepare_config pc = {"us-east-1", "service", "example.amazonaws.com", "/", NULL, 1, 1,
                                  0,           0};
    char err[256];
    ep_sigv4_prepared *pp = ep_sigv4_prepare(&pc, err, sizeof err);
    check(pp != NULL, "prepare for the sequence");
    if (!pp)
        return;
    ep_sigv4_header hs[] = {{"Content-Type", 12, "application/x-amz-json-1.1", 26}};
    int all = 1;
    for (size_t i = 0; i < sizeof seq / sizeof *seq; i++) {
        ep_sigv4_signed got;
        size_t blen = strlen(seq[i].body);
        int rc = ep_sigv4_sign_prepared(pp, "POST", hs, 1, seq[i].body, blen, seq[i].date, AK,
                                        seq[i].secret, strlen(seq[i].secret), NULL, seq[i].same,
                                        &got, err, sizeof err);
        ep_sigv4_header full[] = {hs[0], {"Host", 4, "example.amazonaws.com", 21}};
        ep_sigv4_request r = {"POST", "/", NULL, full, 2, seq[i].body, blen};
        ep_sigv4_config c = sigv4_suite_config();
        c.secret_key = seq[i].secret;
        c.secret_len = strlen(seq[i].secret);
        c.amz_date = seq[i].date;
        ep_sigv4_result want;
        int wrc = ep_sigv4_sign(&r, &c, &want, err, sizeof err);
        if (rc != 0 || wrc != 0 || strcmp(got.signature, want.signature) != 0 ||
            strcmp(got.canonical_request, want.canonical_request) != 0) {
            printf("FAIL prepared sequence step %zu (body \"%s\", %s)\n", i, seq[i].body,
                   seq[i].date);
            all = 0;
        } else {
            passed++;
        }
        if (wrc == 0)
            ep_sigv4_result_free(&want);
    }
    check(all, "a prepared signer follows body, day and secret changes");
    ep_sigv4_prepared_free(pp);

    /* the hasher: RFC 4231 case 2 twice from the same pads, then after a new key */
    ep_hasher *h = ep_hasher_new();
    unsigned char mac[32];
    char hex[65];
    int ok = h && ep_hasher_set_key(h, "Jefe", 4) == 0;
    for (int i = 0; ok && i < 2; i++) {
        ok = ep_hasher_hmac(h, "what do ya want for nothing?", 28, mac) == 0;
        ep_hex_encode(mac, 32, hex);
        ok = ok &&
             strcmp(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843") == 0;
    }
    check(ok, "hasher HMAC (RFC 4231 case 2), twice from the kept pads");
    /* RFC 4231 case 1: key 0x0b x 20, "Hi There" */
    unsigned char k1[20];
    memset(k1, 0x0b, sizeof k1);
    ok =
        h && ep_hasher_set_key(h, k1, sizeof k1) == 0 && ep_hasher_hmac(h, "Hi There", 8, mac) == 0;
    ep_hex_encode(mac, 32, hex);
    check(ok &&
              strcmp(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7") == 0,
          "hasher HMAC after a new key (RFC 4231 case 1)");
    ok = h && ep_hasher_sha256_hex(h, "abc", 3, hex) == 0;
    check(ok &&
              strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0,
          "hasher SHA-256 of \"abc\" between HMACs");
    ok = h && ep_hasher_hmac(h, "Hi There", 8, mac) == 0;
    ep_hex_encode(mac, 32, hex);
    check(ok &&
              strcmp(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7") == 0,
          "hasher HMAC unchanged by a plain hash in between");
    ep_hasher_free(h);
}

int main(void)
{
    prepared_sequence();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
