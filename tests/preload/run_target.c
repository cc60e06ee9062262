/* run_target.c: a libuv program that ends the way its arguments say, for the tests of
 * `asynctop run` (tests/preload/test_preload_programs.py). Its loop runs a 20 ms timer; once
 * the file TRIGGER exists, `exit N` exits with status N and `signal S` kills itself with
 * signal S. `term N` ignores TRIGGER and exits with status N on SIGTERM (a uv_signal_t, as
 * servers such as kresd do).
 *   usage: run_target TRIGGER exit N | signal S | term N */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

static const char *trigger;
static int how_signal, value;

static void on_tick(uv_timer_t *t)
{
    (void)t;
    if (trigger == NULL || access(trigger, F_OK) != 0)
        return;
    if (how_signal) {
        signal(value, SIG_DFL);
        raise(value);
    }
    exit(value);
}

static void on_term(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    exit(value);
}

int main(int argc, char **argv)
{
    if (argc != 4 ||
        (strcmp(argv[2], "exit") && strcmp(argv[2], "signal") && strcmp(argv[2], "term"))) {
        fprintf(stderr, "usage: run_target TRIGGER exit N | signal S | term N\n");
        return 2;
    }
    value = atoi(argv[3]);
    how_signal = !strcmp(argv[2], "signal");
    trigger = strcmp(argv[2], "term") ? argv[1] : NULL;
    uv_loop_t *loop = uv_default_loop();
    uv_timer_t tick;
    uv_signal_t term;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 20, 20);
    if (trigger == NULL) {
        uv_signal_init(loop, &term);
        uv_signal_start(&term, on_term, SIGTERM);
    }
    printf("run_target: running\n");
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
