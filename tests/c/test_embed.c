/*
** test_embed.c: a small C program that embeds ecsplay through include/ecsplay.h,
** the way another tool would: options, arguments, a log sink, running a string
** and a file, reading the outcome. Run from the project root (the stdlib is
** found beside the test binary's build tree through ECSPLAY_STDLIB).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ecsplay.h"

static int passed, failed;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            passed++;                                                                              \
        } else {                                                                                   \
            failed++;                                                                              \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

struct sink {
    char buf[65536];
    size_t len;
    int lines;
};

static void on_log(void *ud, const char *level, const char *line)
{
    struct sink *s = ud;
    int n = snprintf(s->buf + s->len, sizeof s->buf - s->len, "%s %s\n", level, line);
    if (n > 0 && (size_t)n < sizeof s->buf - s->len)
        s->len += (size_t)n;
    s->lines++;
}

static void test_run_string(void)
{
    ecsplay_runtime *rt = ecsplay_new();
    int code;
    CHECK(rt != NULL, "ecsplay_new");
    ecsplay_set_arg(rt, "image", "api:v2");
    code = ecsplay_run_string(rt, "assert(ecsplay.args.image == 'api:v2', 'args')", "=embed");
    CHECK(code == 0, "run_string ok: code %d, error %s", code, ecsplay_error(rt));
    CHECK(ecsplay_exit_code(rt) == 0, "exit code recorded");

    code = ecsplay_run_string(rt, "error('boom')", "=embed");
    CHECK(code == 1, "a Lua error gives 1, got %d", code);
    CHECK(strstr(ecsplay_error(rt), "boom") != NULL, "message kept: %s", ecsplay_error(rt));
    CHECK(strstr(ecsplay_error(rt), "stack traceback") != NULL, "traceback kept");

    code = ecsplay_run_string(rt, "local x = = 1", "=embed");
    CHECK(code == 2, "a syntax error gives 2, got %d", code);
    CHECK(strstr(ecsplay_error(rt), "embed:1:") != NULL, "syntax error names the line: %s",
          ecsplay_error(rt));
    ecsplay_free(rt);
}

static void test_options_and_log(void)
{
    ecsplay_runtime *rt = ecsplay_new();
    struct sink s;
    int code;
    memset(&s, 0, sizeof s);
    CHECK(ecsplay_set(rt, "no_such_option", "x") == -1, "unknown option refused");
    CHECK(strstr(ecsplay_error(rt), "unknown option") != NULL, "and said so");
    CHECK(ecsplay_set(rt, "region", "eu-west-1") == 0, "region");
    CHECK(ecsplay_set(rt, "secret_access_key", "embedSECRETvalue1234") == 0, "secret");
    CHECK(ecsplay_set(rt, "access_key_id", "AKIDEMBED") == 0, "access key");
    ecsplay_set_log(rt, on_log, &s);
    code = ecsplay_run_string(rt,
                              "ecsplay.log.info('hello from lua', { n = 3 })\n"
                              "ecsplay.log.warn('the key is embedSECRETvalue1234')\n",
                              "=embed");
    CHECK(code == 0, "log run: %d %s", code, ecsplay_error(rt));
    CHECK(s.lines == 2, "two lines reached the sink, got %d", s.lines);
    CHECK(strstr(s.buf, "info") && strstr(s.buf, "hello from lua n=3"), "info line: %s", s.buf);
    CHECK(strstr(s.buf, "embedSECRETvalue1234") == NULL, "secret redacted in logs: %s", s.buf);
    ecsplay_free(rt);
}

static void test_simulated_file(void)
{
    ecsplay_runtime *rt = ecsplay_new();
    const char *path = "build/tests/embed_playbook.lua";
    FILE *f = fopen(path, "w");
    int code;
    CHECK(f != NULL, "write playbook");
    if (!f) {
        ecsplay_free(rt);
        return;
    }
    fputs(
        "local ecs = require 'ecsplay.ecs'\n"
        "local s = ecs.describe_services{ cluster = 'production', services = { 'api' } }.services[1]\n"
        "assert(s.desiredCount == 4, 'desired ' .. tostring(s.desiredCount))\n"
        "local t0 = ecsplay.now()\n"
        "ecsplay.sleep('2h')\n"
        "assert(ecsplay.now() - t0 == 7200, 'virtual clock')\n"
        "ecs.describe_services{ cluster = 'nope', services = { 'api' } }\n",
        f);
    fclose(f);
    ecsplay_set(rt, "simulate", "");
    code = ecsplay_run_file(rt, path);
    CHECK(code == 1, "an AWS error fails the run with 1, got %d: %s", code, ecsplay_error(rt));
    CHECK(strstr(ecsplay_error(rt), "ClusterNotFoundException") != NULL,
          "AWS error code in message: %s", ecsplay_error(rt));
    CHECK(strstr(ecsplay_error(rt), "embed_playbook.lua:7") != NULL, "file:line of the call: %s",
          ecsplay_error(rt));
    ecsplay_free(rt);
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* The whole set-up (standard libraries, preloads, package.path, requiring the
** runner, calling it and reading its answer) runs under lua_pcall: a runner
** that fails, or answers nonsense, ends the run with 1 and a message instead
** of aborting the process. */
static void test_setup_errors(void)
{
    const char *runner = "build/tests/embed_stdlib/ecsplay/cli/runner.lua";
    ecsplay_runtime *rt = ecsplay_new();
    int code;
    mkdir("build/tests/embed_stdlib", 0755);
    mkdir("build/tests/embed_stdlib/ecsplay", 0755);
    mkdir("build/tests/embed_stdlib/ecsplay/cli", 0755);
    CHECK(ecsplay_set(rt, "stdlib", "build/tests/embed_stdlib") == 0, "stdlib option");

    CHECK(write_file(runner, "error('the runner is broken', 0)\n") == 0, "write runner");
    code = ecsplay_run_string(rt, "return", "=embed");
    CHECK(code == 1, "a runner that fails to load gives 1, got %d", code);
    CHECK(strstr(ecsplay_error(rt), "the runner is broken") != NULL, "its message: %s",
          ecsplay_error(rt));

    CHECK(write_file(runner, "return { run_string = function() return {}, 'x' end }\n") == 0,
          "write runner");
    code = ecsplay_run_string(rt, "return", "=embed");
    CHECK(code == 1, "a runner answering a table as exit code gives 1, got %d", code);
    CHECK(strstr(ecsplay_error(rt), "number expected") != NULL, "and says why: %s",
          ecsplay_error(rt));

    CHECK(write_file(runner, "return {}\n") == 0, "write runner");
    code = ecsplay_run_string(rt, "return", "=embed");
    CHECK(code == 1, "a runner without the entry gives 1, got %d", code);
    CHECK(strcmp(ecsplay_error(rt), "ecsplay: runner has no entry 'run_string'") == 0,
          "names the entry: %s", ecsplay_error(rt));
    ecsplay_free(rt);
}

int main(void)
{
    if (!getenv("ECSPLAY_STDLIB"))
        setenv("ECSPLAY_STDLIB", "stdlib-lua", 1);
    test_run_string();
    test_options_and_log();
    test_simulated_file();
    test_setup_errors();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
