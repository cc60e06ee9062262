/* bench_main.c: runs every registered benchmark, prints a table or --json. */
#include "bench.h"

#include <fnmatch.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bench_t *bench_list;

void bench_register(bench_t *b)
{
    /* keep registration order stable: append */
    bench_t **p = &bench_list;
    while (*p)
        p = &(*p)->next;
    b->next = NULL;
    *p = b;
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

size_t bench_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, rss = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

/* The watchdog: a repetition that does not finish in `watchdog_s` seconds (a hung benchmark,
 * e.g. a lost wake-up) ends the program with a message naming it, instead of hanging `make
 * bench`. */
static unsigned watchdog_s = 120;
static const char *running_name;

static void on_alarm(int sig)
{
    (void)sig;
    static const char a[] = "asynctop-bench: benchmark ", b[] = " did not finish in time "
                                                                "(hung?); giving up\n";
    (void)!write(2, a, sizeof a - 1);
    if (running_name)
        (void)!write(2, running_name, strlen(running_name));
    (void)!write(2, b, sizeof b - 1);
    _exit(3);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(FILE *f, int with_list)
{
    fprintf(f, "usage: asynctop-bench [--json] [--list] [--reps N] [--timeout S] [PATTERN...]\n"
               "  Runs every benchmark (or those whose name matches a glob PATTERN) and prints\n"
               "  a table: the median of N repetitions (default 5, some benchmarks fewer: each\n"
               "  of those is already a median of interleaved runs), min, max, unit, what.\n"
               "  --json    print one JSON object {\"name\": median, ...} instead; each value is\n"
               "            in its benchmark's unit (below, and in docs/performance.md)\n"
               "  --list    print name, unit and description of each benchmark, run nothing\n"
               "  --reps N  N repetitions for every benchmark\n"
               "  --timeout S  give up (exit 3) if one repetition takes over S seconds\n"
               "            (default 120; 0 = never)\n"
               "  Units: ns/... and ms are thread CPU time where the benchmark says so (see\n"
               "  docs/performance.md), x / ratio are same-run ratios, req/cpu-s are requests\n"
               "  per CPU second of the server thread.\n"
               "  Exit status: 0, 1 if any benchmark failed (the reason is on stderr), 3 if\n"
               "  one hung.\n");
    if (!with_list)
        return;
    fprintf(f, "\nbenchmarks (name, unit, what):\n");
    for (bench_t *b = bench_list; b; b = b->next)
        fprintf(f, "  %-36s %-14s %s\n", b->name, b->unit, b->what);
}

int main(int argc, char **argv)
{
    int json = 0, list = 0, reps_override = 0, npat = 0;
    char **pats = calloc((size_t)argc, sizeof *pats);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--list"))
            list = 1;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps_override = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
            watchdog_s = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout, 1);
            free(pats);
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "asynctop-bench: unknown option '%s'\n", argv[i]);
            usage(stderr, 0);
            free(pats);
            return 2;
        } else
            pats[npat++] = argv[i];
    signal(SIGALRM, on_alarm);
    int failed = 0, first = 1;
    if (json)
        printf("{");
    for (bench_t *b = bench_list; b; b = b->next) {
        int match = npat == 0;
        for (int i = 0; i < npat && !match; i++)
            match = fnmatch(pats[i], b->name, 0) == 0;
        if (!match)
            continue;
        if (list) {
            printf("%-36s %-14s %s\n", b->name, b->unit, b->what);
            continue;
        }
        int reps = reps_override > 0 ? reps_override : (b->reps > 0 ? b->reps : 5);
        double *v = calloc((size_t)reps, sizeof *v);
        int ok = 1;
        for (int r = 0; r < reps && ok; r++) {
            running_name = b->name;
            alarm(watchdog_s);
            v[r] = b->run();
            alarm(0);
            if (v[r] < 0)
                ok = 0;
        }
        if (!ok) {
            fprintf(stderr, "asynctop-bench: %s failed\n", b->name);
            failed = 1;
            free(v);
            continue;
        }
        qsort(v, (size_t)reps, sizeof *v, cmp_double);
        double med = reps % 2 ? v[reps / 2] : (v[reps / 2 - 1] + v[reps / 2]) / 2;
        if (json)
            printf(isfinite(med) ? "%s\"%s\": %.6g" : "%s\"%s\": null", first ? "" : ", ", b->name,
                   med);
        else
            printf("%-36s %14.4g %-14s (min %.4g, max %.4g, n=%d)  %s\n", b->name, med, b->unit,
                   v[0], v[reps - 1], reps, b->what);
        fflush(stdout);
        first = 0;
        free(v);
    }
    if (json)
        printf("}\n");
    free(pats);
    return failed;
}
