/*
 * curl_raw: the floor for one AWS call on a reused connection — libcurl's
 * easy interface, one handle (so one keep-alive connection), posting the same
 * pre-signed request again and again. No signing, no serialization, no
 * parsing: what is left is HTTP over loopback plus the server's own work.
 *
 *   curl_raw URL REQUEST_FILE CALLS ROUNDS [--sigv4=aws:amz:REGION:SERVICE]
 *
 * REQUEST_FILE holds "Name: value" header lines, one empty line, then the
 * body (as bench/ecsplay_calls.lua dump=FILE writes it). Prints, per round,
 * the mean wall-clock and CPU (this process) microseconds per call, "WALL CPU"
 * a line. Every answer must be
 * HTTP 200, so a rejected signature cannot pass for a fast call.
 *
 * --sigv4: a C client that signs every call itself, with libcurl's own SigV4
 * (CURLOPT_AWS_SIGV4, the key pair from AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY): the file's Authorization, X-Amz-Date and Host lines
 * (its earlier signature) are left out and libcurl makes its own per call.
 */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct buf {
    char *data;
    size_t len;
};

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* The answer is counted and dropped: keeping it would add a copy the
 * ecsplay path also pays, but we want the floor. */
static size_t sink(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    size_t *total = ud;
    *total += size * nmemb;
    return size * nmemb;
}

static int read_file(const char *path, struct buf *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "curl_raw: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    char *p = malloc(cap + 1);
    size_t n;
    while (p && (n = fread(p + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            char *q = realloc(p, cap * 2 + 1);
            if (!q) {
                free(p);
                p = NULL;
                break;
            }
            p = q;
            cap *= 2;
        }
    }
    fclose(f);
    if (!p) {
        fprintf(stderr, "curl_raw: out of memory reading %s\n", path);
        return -1;
    }
    p[len] = '\0';
    out->data = p;
    out->len = len;
    return 0;
}

/* Lines a --sigv4 run leaves out: the replayed signature, which libcurl makes
 * anew per call. */
static int is_signature_line(const char *line)
{
    return strncasecmp(line, "authorization:", 14) == 0 ||
           strncasecmp(line, "x-amz-date:", 11) == 0 || strncasecmp(line, "host:", 5) == 0;
}

static long parse_count(const char *s, const char *what)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > 10000000) {
        fprintf(stderr, "curl_raw: %s must be a positive integer, got '%s'\n", what, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *sigv4 = NULL;
    if (argc == 6 && strncmp(argv[5], "--sigv4=", 8) == 0)
        sigv4 = argv[5] + 8;
    if (argc != 5 && !(sigv4 && *sigv4)) {
        fprintf(stderr, "usage: curl_raw URL REQUEST_FILE CALLS ROUNDS "
                        "[--sigv4=aws:amz:REGION:SERVICE]\n");
        return 2;
    }
    char userpwd[512];
    if (sigv4) {
        const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
        if (!ak || !sk ||
            snprintf(userpwd, sizeof userpwd, "%s:%s", ak, sk) >= (int)sizeof userpwd) {
            fprintf(stderr,
                    "curl_raw: --sigv4 needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n");
            return 2;
        }
    }
    long calls = parse_count(argv[3], "CALLS"), rounds = parse_count(argv[4], "ROUNDS");
    struct buf req;
    if (read_file(argv[2], &req) != 0)
        return 1;

    /* Split the file into header lines and the body at the first empty line. */
    struct curl_slist *headers = NULL;
    char *line = req.data, *body = NULL;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (!nl)
            break;
        *nl = '\0';
        if (nl > line && nl[-1] == '\r')
            nl[-1] = '\0';
        if (*line == '\0') {
            body = nl + 1;
            break;
        }
        if (!sigv4 || !is_signature_line(line))
            headers = curl_slist_append(headers, line);
        line = nl + 1;
    }
    if (!body) {
        fprintf(stderr, "curl_raw: %s has no empty line between headers and body\n", argv[2]);
        curl_slist_free_all(headers);
        free(req.data);
        return 1;
    }
    /* libcurl would otherwise add "Expect: 100-continue" to large POSTs and
     * its own Content-Type; the signed request has neither. Not with --sigv4:
     * libcurl 7.88 signs the removal as an empty "expect" header, which the
     * server then finds named in SignedHeaders but not sent (and the body here
     * is far below the size that brings Expect). */
    if (!sigv4)
        headers = curl_slist_append(headers, "Expect:");
    size_t body_len = req.len - (size_t)(body - req.data);

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *h = curl_easy_init();
    size_t received = 0;
    curl_easy_setopt(h, CURLOPT_URL, argv[1]);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body_len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &received);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (sigv4) {
        curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4);
        curl_easy_setopt(h, CURLOPT_USERPWD, userpwd);
    }

    int rc = 0;
    for (long r = -1; r < rounds && rc == 0; r++) { /* round -1 warms the connection up */
        long n = r < 0 ? 20 : calls;
        double t0 = now_us();
        clock_t c0 = clock();
        for (long i = 0; i < n; i++) {
            CURLcode res = curl_easy_perform(h);
            long status = 0;
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
            if (res != CURLE_OK || status != 200) {
                fprintf(stderr, "curl_raw: call %ld: %s, HTTP %ld\n", i,
                        res != CURLE_OK ? curl_easy_strerror(res) : "ok", status);
                rc = 1;
                break;
            }
        }
        if (r >= 0 && rc == 0)
            printf("%.2f %.2f\n", (now_us() - t0) / (double)n,
                   (double)(clock() - c0) * 1e6 / CLOCKS_PER_SEC / (double)n);
    }
    long conns = 0;
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &conns);
    if (rc == 0 && conns != 0) {
        /* NUM_CONNECTS is for the last transfer: 0 means it reused the connection. */
        fprintf(stderr, "curl_raw: the last call opened a new connection (not reused)\n");
    }
    curl_easy_cleanup(h);
    curl_global_cleanup();
    curl_slist_free_all(headers);
    free(req.data);
    return rc;
}
