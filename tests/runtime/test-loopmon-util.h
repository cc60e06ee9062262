/* test-loopmon-util.h: helpers shared by the loopmon tests (log capture, sleeping, a loop
 * with a monitor that is torn down and checked for leaks). */
#ifndef TEST_LOOPMON_UTIL_H
#define TEST_LOOPMON_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "loopmon.h"

/* Captured log messages (the sink runs on the logger thread). */
typedef struct captured {
    pthread_mutex_t lock;
    char text[16384];
    size_t len;
    int count;
} captured_t;

static captured_t cap = {PTHREAD_MUTEX_INITIALIZER, {0}, 0, 0};

static void capture_sink(int level, const char *msg, void *data)
{
    captured_t *c = data;
    pthread_mutex_lock(&c->lock);
    int n = snprintf(c->text + c->len, sizeof c->text - c->len, "%s: %s\n",
                     at__log_level_name(level), msg);
    if (n > 0 && (size_t)n < sizeof c->text - c->len)
        c->len += (size_t)n;
    c->count++;
    pthread_mutex_unlock(&c->lock);
}

static inline void capture_start(void)
{
    pthread_mutex_lock(&cap.lock);
    cap.len = 0;
    cap.text[0] = '\0';
    cap.count = 0;
    pthread_mutex_unlock(&cap.lock);
    at__log_set_sink(capture_sink, &cap);
}

/* Flushes the logger and copies what was captured into buf. */
static inline void capture_take(char *buf, size_t len)
{
    assert_int_equal(at__log_flush(10ull * 1000 * 1000 * 1000), 0);
    pthread_mutex_lock(&cap.lock);
    snprintf(buf, len, "%s", cap.text);
    pthread_mutex_unlock(&cap.lock);
}

static inline void capture_stop(void)
{
    at__log_flush(10ull * 1000 * 1000 * 1000);
    at__log_set_sink(NULL, NULL);
}

static inline void sleep_ms(unsigned ms)
{
    struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&d, &d) != 0)
        ;
}

/* Closes the monitor, runs the loop until its handles are closed, closes the loop and
 * asserts it had nothing left. */
static inline void close_loop(uv_loop_t *loop, at__mon_t *m)
{
    if (m)
        at__mon_close(m);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(loop), 0);
}

#endif
