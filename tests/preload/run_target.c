/* run_target.c: a libuv program that ends the way its arguments say, for the tests of
 * `asynctop run` (tests/preload/test_preload_programs.py). Its loop runs a 20 ms timer; once
 * the file TRIGGER exists, `exit N` exits with status N and `signal S` kills itself with
 * signal S. `term N` ignores TRIGGER and exits with status N on SIGTERM (a uv_signal_t, as
 * servers such as kresd do). `stuck N`: the first timer callback, on_tick, spins (busy,
 * calling only its own functions) until TRIGGER exists, then exits with status N — a loop
 * blocked in a known callback, for the tests of the stacks sampled under the shim.
 *   usage: run_target TRIGGER exit N | signal S | term N | stuck N */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

static const char *trigger;
static int how_signal, how_stuck, value;

static _Atomic int triggered;

/* Watches for TRIGGER off the loop thread, so that the spinning loop thread calls nothing: a
 * stack sampled inside a libc call would lack the caller's own frame (the frame-pointer walk
 * starts from the caller's frame record). */
static void *watch_trigger(void *arg)
{
    (void)arg;
    while (access(trigger, F_OK) != 0)
        usleep(10000);
    atomic_store(&triggered, 1);
    return NULL;
}

static __attribute__((noinline)) void spin_once(void)
{
    for (volatile int i = 0; i < 1000; i++)
        ;
}

/* Not a leaf (a leaf keeps no frame record here, so a sample taken in it would skip its
 * caller): wherever the loop thread is sampled, the walk goes through on_tick. */
static __attribute__((noinline)) void spin_until_trigger(void)
{
    while (!atomic_load(&triggered))
        spin_once();
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    if (how_stuck)
        spin_until_trigger();
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
    if (argc != 4 || (strcmp(argv[2], "exit") && strcmp(argv[2], "signal") &&
                      strcmp(argv[2], "term") && strcmp(argv[2], "stuck"))) {
        fprintf(stderr, "usage: run_target TRIGGER exit N | signal S | term N | stuck N\n");
        return 2;
    }
    value = atoi(argv[3]);
    how_signal = !strcmp(argv[2], "signal");
    how_stuck = !strcmp(argv[2], "stuck");
    trigger = strcmp(argv[2], "term") ? argv[1] : NULL;
    pthread_t watcher;
    if (how_stuck && pthread_create(&watcher, NULL, watch_trigger, NULL) != 0)
        return 1;
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
