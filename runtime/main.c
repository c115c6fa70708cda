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
  "       ecsplay [options] -e 'LUA CODE' [key=value ...]\n"
  "       ecsplay sim serve [--port N] [--scenario FILE] [--speed X] [--no-auth]\n"
  "       ecsplay rollback JOURNAL.jsonl | ecsplay resume JOURNAL.jsonl\n"
  "       ecsplay --version | --help\n"
  "\n"
  "options:\n"
  "  --simulate[=SCENARIO.lua]  run against the in-process AWS simulator on a virtual clock\n"
  "  --region REGION            AWS region (else AWS_REGION, AWS_DEFAULT_REGION, profile)\n"
  "  --profile NAME             shared config/credentials profile (else AWS_PROFILE)\n"
  "  --endpoint-url URL         send every service's calls to URL (e.g. `ecsplay sim serve`)\n"
  "  --log-format text|json     one line per step for people, or one JSON object per line\n"
  "  -v, -q                     more or less output\n"
  "\n"
  "exit codes: 0 finished, 1 failed and rolled back, 2 bad usage or input (nothing changed),\n"
  "            3 rollback failed, 130/143 interrupted by SIGINT/SIGTERM after rollback\n";

static int ep_bad_usage(const char *what, const char *arg) {
  fprintf(stderr, "ecsplay: %s%s%s\n\n%s", what, arg ? ": " : "", arg ? arg : "", ep_usage);
  return 2;
}

/* Options taking a value, as "--name value" or "--name=value". */
static const struct {
  const char *flag;
  const char *key;
} ep_valued[] = {
  { "--region", "region" },
  { "--profile", "profile" },
  { "--endpoint-url", "endpoint_url" },
  { "--log-format", "log_format" },
  { NULL, NULL },
};

static int ep_match_valued(const char *arg, const char **key, const char **inline_value) {
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
static int ep_find_command(int argc, char **argv) {
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

static void ep_report(ecsplay_runtime *rt, int code) {
  const char *err = ecsplay_error(rt);
  if (err && *err)
    fprintf(stderr, "%s\n", err);
  (void)code;
}

/* `ecsplay sim serve ...`, `ecsplay rollback J`, `ecsplay resume J`: the
** runner parses their arguments itself. */
static int ep_subcommand(ecsplay_runtime *rt, const char *entry, int argc, char **argv) {
  int code;
  ecsplay_handle_signals(rt, 1);
  code = ep_run_entry(rt, entry, argc, argv);
  ep_report(rt, code);
  return code;
}

int main(int argc, char **argv) {
  ecsplay_runtime *rt;
  const char *file = NULL, *chunk = NULL;
  int i = 1, code, verbosity = 0;
  char vbuf[8];

  rt = ecsplay_new();
  if (!rt) {
    fputs("ecsplay: out of memory\n", stderr);
    return 1;
  }
  if (argc >= 3 && strcmp(argv[1], "sim") == 0 && strcmp(argv[2], "serve") == 0) {
    code = ep_subcommand(rt, "sim_serve", argc - 3, argv + 3);
    ecsplay_free(rt);
    return code;
  }
  {
    /* `ecsplay [options] rollback|resume JOURNAL [options]`: the runner takes
    ** the options (--endpoint-url, --region, ...) from anywhere in the line. */
    int cmd = ep_find_command(argc, argv);
    if (cmd > 0 && (strcmp(argv[cmd], "rollback") == 0 || strcmp(argv[cmd], "resume") == 0)) {
      char *rest[256];
      int n = 0;
      for (int k = 1; k < argc && n < 256; k++) {
        if (k != cmd)
          rest[n++] = argv[k];
      }
      code = ep_subcommand(rt, argv[cmd], n, rest);
      ecsplay_free(rt);
      return code;
    }
  }
  if (argc >= 2 && strcmp(argv[1], "sim") == 0) {
    ecsplay_free(rt);
    return ep_bad_usage("unknown sim command (expected `ecsplay sim serve`)",
                        argc >= 3 ? argv[2] : NULL);
  }

  for (; i < argc && file == NULL && chunk == NULL; i++) {
    const char *a = argv[i], *key, *inline_value;
    if (strcmp(a, "--version") == 0) {
      printf("ecsplay %s (%s)\n", ECSPLAY_VERSION, LUA_RELEASE);
      ecsplay_free(rt);
      return 0;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(ep_usage, stdout);
      ecsplay_free(rt);
      return 0;
    } else if (strcmp(a, "--simulate") == 0) {
      ecsplay_set(rt, "simulate", "");
    } else if (strncmp(a, "--simulate=", 11) == 0) {
      ecsplay_set(rt, "simulate", a + 11);
    } else if (strcmp(a, "-v") == 0) {
      verbosity++;
    } else if (strcmp(a, "-q") == 0) {
      verbosity--;
    } else if (strcmp(a, "-e") == 0) {
      if (i + 1 >= argc) {
        ecsplay_free(rt);
        return ep_bad_usage("-e needs a chunk of Lua", NULL);
      }
      chunk = argv[++i];
    } else if (ep_match_valued(a, &key, &inline_value)) {
      const char *value = inline_value;
      if (!value) {
        if (i + 1 >= argc) {
          ecsplay_free(rt);
          return ep_bad_usage("option needs a value", a);
        }
        value = argv[++i];
      }
      ecsplay_set(rt, key, value);
    } else if (a[0] == '-' && a[1] != '\0') {
      ecsplay_free(rt);
      return ep_bad_usage("unknown option", a);
    } else if (strchr(a, '=') != NULL) {
      ecsplay_free(rt);
      return ep_bad_usage("key=value arguments come after the playbook", a);
    } else {
      file = a;
    }
  }
  if (!file && !chunk) {
    ecsplay_free(rt);
    return ep_bad_usage("no playbook given", NULL);
  }
  for (; i < argc; i++) {
    const char *eq = strchr(argv[i], '=');
    char key[256];
    size_t klen;
    if (!eq || eq == argv[i]) {
      ecsplay_free(rt);
      return ep_bad_usage("expected key=value after the playbook", argv[i]);
    }
    klen = (size_t)(eq - argv[i]);
    if (klen >= sizeof key) {
      ecsplay_free(rt);
      return ep_bad_usage("argument name too long", argv[i]);
    }
    memcpy(key, argv[i], klen);
    key[klen] = '\0';
    ecsplay_set_arg(rt, key, eq + 1);
  }
  snprintf(vbuf, sizeof vbuf, "%d", verbosity);
  ecsplay_set(rt, "verbosity", vbuf);
  ecsplay_handle_signals(rt, 1);
  code = chunk ? ecsplay_run_string(rt, chunk, "=(command line)") : ecsplay_run_file(rt, file);
  ep_report(rt, code);
  ecsplay_free(rt);
  return code;
}
