/*
** ecsplay: embed the ecsplay runtime (Lua 5.4 + the AWS ECS, ELBv2, CodeDeploy,
** CloudWatch and STS operations, the rollout library and the simulator) in
** another C program.
**
**   ecsplay_runtime *rt = ecsplay_new();
**   ecsplay_set(rt, "region", "eu-west-1");
**   ecsplay_set_arg(rt, "image", "repo/api:v2");
**   int code = ecsplay_run_file(rt, "deploy.lua");
**   if (code != 0) fprintf(stderr, "%s\n", ecsplay_error(rt));
**   ecsplay_free(rt);
**
** Exit codes are those of the command line (docs/cli.md): 0 finished, 1 failed
** and rolled back, 2 bad input (nothing changed), 3 rollback failed,
** 130/143 interrupted. A runtime runs one playbook at a time and is not
** thread-safe; separate runtimes are independent.
*/
#ifndef ECSPLAY_H
#define ECSPLAY_H

#ifdef __cplusplus
extern "C" {
#endif

#define ECSPLAY_VERSION "0.1.0"

typedef struct ecsplay_runtime ecsplay_runtime;

/* Log sink: level is "debug", "info", "warn" or "error"; line is one
** formatted line without its newline (secrets are already redacted). */
typedef void (*ecsplay_log_fn)(void *ud, const char *level, const char *line);

/* A new runtime, or NULL when memory is short. */
ecsplay_runtime *ecsplay_new(void);
void ecsplay_free(ecsplay_runtime *rt);

/* Sets an option; returns 0, or -1 for an unknown key (see ecsplay_error).
** Keys: "region", "profile", "endpoint_url", "access_key_id",
** "secret_access_key", "session_token", "simulate" ("" for the built-in
** world, or a scenario file), "log_format" ("text" or "json"),
** "verbosity" ("-1" quiet, "0", "1" verbose), "stdlib" (folder of the Lua
** library), "no_auth" ("1": simulator accepts unsigned requests), "report"
** (a file the run's report is written to at its end: .html, .json or .xml).
** Secret values are copied and kept for every run of this runtime; the copy
** is wiped (OPENSSL_cleanse) when replaced and by ecsplay_free. */
int ecsplay_set(ecsplay_runtime *rt, const char *key, const char *value);

/* Adds one key=value argument to the playbook's ecsplay.args. */
int ecsplay_set_arg(ecsplay_runtime *rt, const char *key, const char *value);

/* Sends log lines to fn instead of standard output. */
void ecsplay_set_log(ecsplay_runtime *rt, ecsplay_log_fn fn, void *ud);

/* Makes SIGINT and SIGTERM stop a running playbook at its next safe point
** (rollbacks then run, and the exit code is 130 or 143). Off by default for
** embedders, since it installs process-wide handlers. */
void ecsplay_handle_signals(ecsplay_runtime *rt, int on);

/* Runs a playbook file or a chunk of Lua; returns the exit code. */
int ecsplay_run_file(ecsplay_runtime *rt, const char *path);
int ecsplay_run_string(ecsplay_runtime *rt, const char *chunk, const char *name);

/* The last run's error message (file:line, message and traceback), or "". */
const char *ecsplay_error(const ecsplay_runtime *rt);

/* The last run's exit code. */
int ecsplay_exit_code(const ecsplay_runtime *rt);

#ifdef __cplusplus
}
#endif
#endif
