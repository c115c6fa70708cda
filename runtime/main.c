/*
** main.c: the `ecsplay` command line (docs/cli.md). It only turns argv into
** options of the public API and prints the outcome; the runtime does the rest.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ecsplay.h"
#include "ep.h"

static const char *ep_usage =
    "usage: ecsplay [options] FILE.lua [key=value ...]\n"
    "       ecsplay FILE.lua --help             the playbook's parameters\n"
    "       ecsplay [options] -e 'LUA CODE' [key=value ...]\n"
    "       ecsplay COMMAND [args]               ecsplay help lists the commands:\n"
    "         sim serve, rollback, resume, ... (ecsplay help COMMAND for one)\n"
    "       ecsplay --version | --help\n"
    "\n"
    "options:\n"
    "  --simulate[=SCENARIO.lua]  run against the in-process AWS simulator on a virtual clock\n"
    "  --region REGION            AWS region (else AWS_REGION, AWS_DEFAULT_REGION, profile)\n"
    "  --profile NAME             shared config/credentials profile (else AWS_PROFILE)\n"
    "  --endpoint-url URL         send every service's calls to URL (e.g. `ecsplay sim serve`)\n"
    "  --log-format text|json     one line per step for people, or one JSON object per line\n"
    "  --report FILE              write the run's report at its end (.html, .json, or .xml: JUnit)\n"
    "  -v, -q                     more or less output\n"
    "\n"
    "exit codes: 0 finished, 1 failed and rolled back, 2 bad usage or input (nothing changed),\n"
    "            3 rollback failed, 130/143 interrupted by SIGINT/SIGTERM after rollback\n";

static int ep_bad_usage(const char *what, const char *arg)
{
    fprintf(stderr, "ecsplay: %s%s%s\n\n%s", what, arg ? ": " : "", arg ? arg : "", ep_usage);
    return 2;
}

/* Options taking a value, as "--name value" or "--name=value". */
static const struct {
    const char *flag;
    const char *key;
} ep_valued[] = {
    {"--region", "region"},
    {"--profile", "profile"},
    {"--endpoint-url", "endpoint_url"},
    {"--log-format", "log_format"},
    {"--report", "report"}, /* the run's report (cli/run.lua) */
    {NULL, NULL},
};

static int ep_match_valued(const char *arg, const char **key, const char **inline_value)
{
    for (int i = 0; ep_valued[i].flag; i++) {
        size_t n = strlen(ep_valued[i].flag);
        if (strncmp(arg, ep_valued[i].flag, n) == 0 && (arg[n] == '\0' || arg[n] == '=')) {
            *key = ep_valued[i].key;
            *inline_value = arg[n] == '=' ? arg + n + 1 : NULL;
            return 1;
        }
    }
    return 0;
}

/* Index of the first argument that is neither an option nor an option's
** value (the playbook or a subcommand), or 0. */
static int ep_find_command(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *key, *inline_value;
        if (ep_match_valued(argv[i], &key, &inline_value)) {
            if (!inline_value)
                i++; /* skip its value */
        } else if (strcmp(argv[i], "-e") == 0) {
            return 0;
        } else if (argv[i][0] != '-') {
            return i;
        }
    }
    return 0;
}

static void ep_report(ecsplay_runtime *rt, int code)
{
    const char *err = ecsplay_error(rt);
    if (err && *err)
        fprintf(stderr, "%s\n", err);
    (void)code;
}

/* A command's name: a bare word (letters, digits, '-') that names no file,
** so `ecsplay deploy` still runs a playbook file called deploy. */
static int ep_is_command_word(const char *w)
{
    if (!*w)
        return 0;
    for (const char *p = w; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return 0;
    }
    return access(w, F_OK) != 0;
}

/* `ecsplay [options] COMMAND [args]` (sim, rollback, resume, help, ...: the
** registry is stdlib-lua/ecsplay/cli/commands/init.lua). The command gets every
** other word, the options before its name included, and parses them itself.
** Returns 1 and sets *code when argv is a command. */
static int ep_try_subcommand(ecsplay_runtime *rt, int argc, char **argv, int *code)
{
    int cmd = ep_find_command(argc, argv);
    char **rest;
    int n = 0;
    if (cmd <= 0 || !ep_is_command_word(argv[cmd]))
        return 0;
    rest = malloc(sizeof *rest * (size_t)argc);
    if (!rest) {
        fputs("ecsplay: out of memory\n", stderr);
        *code = 1;
        return 1;
    }
    for (int k = 1; k < argc; k++) {
        if (k != cmd)
            rest[n++] = argv[k];
    }
    ecsplay_handle_signals(rt, 1);
    *code = ep_run_command(rt, argv[cmd], n, rest);
    ep_report(rt, *code);
    free(rest);
    return 1;
}

/* What the command line asks for once the options are read. */
struct ep_cli {
    const char *file;  /* the playbook, or */
    const char *chunk; /* -e's Lua code */
    int verbosity;     /* -v and -q */
    int next;          /* argv index of the first key=value argument */
    int help;          /* --help or -h after the playbook */
};

/* ecsplay_set and ecsplay_set_arg refuse an unknown key or run out of
** memory: say why and end with 2 rather than run without the option. */
static int ep_set_failed(ecsplay_runtime *rt)
{
    fprintf(stderr, "ecsplay: %s\n", ecsplay_error(rt));
    return 2;
}

/* One option before the playbook (argv[*i], which may consume the next
** argument). Returns -1 to go on, or the exit code to end with. */
static int ep_option(ecsplay_runtime *rt, int argc, char **argv, int *i, struct ep_cli *cli)
{
    const char *a = argv[*i], *key, *inline_value;
    if (strcmp(a, "--version") == 0) {
        printf("ecsplay %s (%s)\n", ECSPLAY_VERSION, LUA_RELEASE);
        return 0;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
        fputs(ep_usage, stdout);
        return 0;
    } else if (strcmp(a, "--simulate") == 0) {
        if (ecsplay_set(rt, "simulate", "") != 0)
            return ep_set_failed(rt);
    } else if (strncmp(a, "--simulate=", 11) == 0) {
        if (ecsplay_set(rt, "simulate", a + 11) != 0)
            return ep_set_failed(rt);
    } else if (strcmp(a, "-v") == 0) {
        cli->verbosity++;
    } else if (strcmp(a, "-q") == 0) {
        cli->verbosity--;
    } else if (strcmp(a, "-e") == 0) {
        if (*i + 1 >= argc)
            return ep_bad_usage("-e needs a chunk of Lua", NULL);
        cli->chunk = argv[++*i];
    } else if (ep_match_valued(a, &key, &inline_value)) {
        if (!inline_value && *i + 1 >= argc)
            return ep_bad_usage("option needs a value", a);
        if (ecsplay_set(rt, key, inline_value ? inline_value : argv[++*i]) != 0)
            return ep_set_failed(rt);
    } else if (a[0] == '-' && a[1] != '\0') {
        return ep_bad_usage("unknown option", a);
    } else if (strchr(a, '=') != NULL) {
        return ep_bad_usage("key=value arguments come after the playbook", a);
    } else {
        cli->file = a;
    }
    return -1;
}

/* The options up to the playbook or -e chunk. Returns -1 to go on, or the
** exit code to end with. */
static int ep_parse_options(ecsplay_runtime *rt, int argc, char **argv, struct ep_cli *cli)
{
    int i = 1;
    for (; i < argc && cli->file == NULL && cli->chunk == NULL; i++) {
        int code = ep_option(rt, argc, argv, &i, cli);
        if (code >= 0)
            return code;
    }
    if (!cli->file && !cli->chunk)
        return ep_bad_usage("no playbook given", NULL);
    cli->next = i;
    return -1;
}

/* The key=value arguments after the playbook (and --help or -h, anywhere
** among them). -1 to go on, or 2. */
static int ep_parse_args(ecsplay_runtime *rt, int argc, char **argv, struct ep_cli *cli)
{
    for (int i = cli->next; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        char key[256];
        size_t klen;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cli->help = 1;
            continue;
        }
        if (!eq || eq == argv[i])
            return ep_bad_usage("expected key=value after the playbook", argv[i]);
        klen = (size_t)(eq - argv[i]);
        if (klen >= sizeof key)
            return ep_bad_usage("argument name too long", argv[i]);
        memcpy(key, argv[i], klen);
        key[klen] = '\0';
        if (ecsplay_set_arg(rt, key, eq + 1) != 0)
            return ep_set_failed(rt);
    }
    return -1;
}

static int ep_main(ecsplay_runtime *rt, int argc, char **argv)
{
    struct ep_cli cli = {NULL, NULL, 0, 0, 0};
    char vbuf[8];
    int code;
    if (ep_try_subcommand(rt, argc, argv, &code))
        return code;
    if ((code = ep_parse_options(rt, argc, argv, &cli)) >= 0)
        return code;
    if ((code = ep_parse_args(rt, argc, argv, &cli)) >= 0)
        return code;
    if (cli.help && cli.chunk) {
        fputs(ep_usage, stdout);
        return 0;
    }
    snprintf(vbuf, sizeof vbuf, "%d", cli.verbosity);
    if (ecsplay_set(rt, "verbosity", vbuf) != 0)
        return ep_set_failed(rt);
    ecsplay_handle_signals(rt, 1);
    if (cli.help) /* the playbook's parameters, nothing run past their declaration */
        code = ep_run_entry(rt, "help_file", 1, (char **)&cli.file);
    else
        code = cli.chunk ? ecsplay_run_string(rt, cli.chunk, "=(command line)")
                         : ecsplay_run_file(rt, cli.file);
    ep_report(rt, code);
    return code;
}

int main(int argc, char **argv)
{
    ecsplay_runtime *rt = ecsplay_new();
    int code;
    if (!rt) {
        fputs("ecsplay: out of memory\n", stderr);
        return 1;
    }
    code = ep_main(rt, argc, argv);
    ecsplay_free(rt);
    return code;
}
