/*
 * timeit: wall time of a command over repeated runs (a tiny hyperfine, so
 * `make bench` needs nothing beyond a C compiler).
 *
 *   timeit [-n RUNS] [-w WARMUP] [-l LABEL] -- COMMAND [ARG...]
 *
 * Each run is fork + execvp with stdin, stdout and stderr on /dev/null; the
 * clock is CLOCK_MONOTONIC around fork..waitpid, so it includes process
 * creation, dynamic linking and exit, which is what a user waits for. Prints
 * one line:
 *
 *   LABEL median_ms p25_ms p75_ms min_ms max_ms runs cpu_median_ms
 *
 * where cpu is the child's user + system time (from wait4), which a busy
 * machine disturbs less than the wall clock.
 *
 * and exits non-zero if any run fails (a benchmark of a failing command
 * measures nothing).
 */
#define _DEFAULT_SOURCE /* wait4 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Linear interpolation between order statistics (the usual "type 7"). */
static double quantile(const double *sorted, int n, double q)
{
    double pos = q * (n - 1);
    int lo = (int)pos;
    if (lo >= n - 1)
        return sorted[n - 1];
    return sorted[lo] + (pos - lo) * (sorted[lo + 1] - sorted[lo]);
}

static long parse_count(const char *s, const char *what)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 100000) {
        fprintf(stderr, "timeit: %s must be an integer 0..100000, got '%s'\n", what, s);
        exit(2);
    }
    return v;
}

/* → elapsed ms, or a negative number when the command did not exit 0;
 * *cpu_ms gets the child's user + system time. */
static double run_once(char **argv, double *cpu_ms)
{
    double t0 = now_ms();
    pid_t pid = fork();
    if (pid < 0) {
        perror("timeit: fork");
        return -1;
    }
    if (pid == 0) {
        int fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, 0);
            dup2(fd, 1);
            dup2(fd, 2);
            if (fd > 2)
                close(fd);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("timeit: waitpid");
            return -1;
        }
    }
    double dt = now_ms() - t0;
    *cpu_ms = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
              (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "timeit: '%s' failed (status %d)\n", argv[0],
                WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        return -1;
    }
    return dt;
}

int main(int argc, char **argv)
{
    long runs = 20, warmup = 2;
    const char *label = NULL;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (i + 1 >= argc)
            break;
        if (strcmp(argv[i], "-n") == 0)
            runs = parse_count(argv[++i], "-n");
        else if (strcmp(argv[i], "-w") == 0)
            warmup = parse_count(argv[++i], "-w");
        else if (strcmp(argv[i], "-l") == 0)
            label = argv[++i];
        else
            break;
    }
    if (i >= argc || runs < 1) {
        fprintf(stderr, "usage: timeit [-n RUNS] [-w WARMUP] [-l LABEL] -- COMMAND [ARG...]\n");
        return 2;
    }
    char **cmd = argv + i;
    double *t = malloc(sizeof *t * (size_t)runs * 2);
    if (!t) {
        fprintf(stderr, "timeit: out of memory\n");
        return 1;
    }
    double *cpu = t + runs, ignored;
    for (long w = 0; w < warmup; w++) {
        if (run_once(cmd, &ignored) < 0) {
            free(t);
            return 1;
        }
    }
    for (long r = 0; r < runs; r++) {
        t[r] = run_once(cmd, &cpu[r]);
        if (t[r] < 0) {
            free(t);
            return 1;
        }
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    qsort(cpu, (size_t)runs, sizeof *cpu, cmp_double);
    int n = (int)runs;
    printf("%s %.2f %.2f %.2f %.2f %.2f %d %.2f\n", label ? label : cmd[0], quantile(t, n, 0.5),
           quantile(t, n, 0.25), quantile(t, n, 0.75), t[0], t[n - 1], n, quantile(cpu, n, 0.5));
    free(t);
    return 0;
}
