/* test-core-util.h: helpers shared by the runtime/core tests (log capture, a clean-close check,
 * sleeping). */
#ifndef TEST_CORE_UTIL_H
#define TEST_CORE_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "asynctop.h"

/* Every message logged through the library (the sink runs on the logger thread). */
typedef struct core_capture {
    pthread_mutex_t lock;
    char text[65536];
    size_t len;
    int count;
} core_capture_t;

static core_capture_t core_cap = {PTHREAD_MUTEX_INITIALIZER, {0}, 0, 0};

static const char *const core_level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

static void core_capture_sink(int level, const char *msg, void *data)
{
    core_capture_t *c = data;
    pthread_mutex_lock(&c->lock);
    int n = snprintf(c->text + c->len, sizeof c->text - c->len, "%s: %s\n",
                     level >= 0 && level <= 3 ? core_level_names[level] : "?", msg);
    if (n > 0 && (size_t)n < sizeof c->text - c->len)
        c->len += (size_t)n;
    c->count++;
    pthread_mutex_unlock(&c->lock);
}

/* Starts capturing (forgetting what was captured before). */
static inline void capture_begin(void)
{
    at_log_flush(10000);
    pthread_mutex_lock(&core_cap.lock);
    core_cap.len = 0;
    core_cap.text[0] = '\0';
    core_cap.count = 0;
    pthread_mutex_unlock(&core_cap.lock);
    at_set_log_sink(core_capture_sink, &core_cap);
}

/* Flushes the logger and returns a copy of what was captured (static buffer). */
static inline const char *capture_text(void)
{
    static char copy[sizeof core_cap.text];
    assert_int_equal(at_log_flush(10000), 0);
    pthread_mutex_lock(&core_cap.lock);
    memcpy(copy, core_cap.text, core_cap.len + 1);
    pthread_mutex_unlock(&core_cap.lock);
    return copy;
}

static inline void capture_end(void)
{
    at_log_flush(10000);
    at_set_log_sink(NULL, NULL);
}

/* Asserts that `needle` occurs in `hay`, printing hay when it does not. */
#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        const char *h_ = (hay);                                                                    \
        if (!strstr(h_, (needle))) {                                                               \
            print_error("expected to find \"%s\" in:\n%s\n", (needle), h_);                        \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

#define assert_not_contains(hay, needle)                                                           \
    do {                                                                                           \
        const char *h_ = (hay);                                                                    \
        if (strstr(h_, (needle))) {                                                                \
            print_error("did not expect \"%s\" in:\n%s\n", (needle), h_);                          \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* Closes the loop and asserts that nothing was left open or pending, but for `held` futures
 * (tasks) the test still holds and releases after the close. */
static inline void close_clean_holding(at_loop_t *loop, size_t held)
{
    at_close_report_t rep;
    assert_int_equal(at_loop_close(loop, &rep), 0);
    assert_int_equal(rep.unclosed_handles, 0);
    assert_int_equal(rep.unretrieved_errors, 0);
    assert_int_equal(rep.dropped_callbacks, 0);
    assert_int_equal(rep.pending_work, 0);
    assert_int_equal(rep.live_futures, held);
}

/* Closes the loop and asserts that nothing was left open or pending. */
static inline void close_clean(at_loop_t *loop)
{
    close_clean_holding(loop, 0);
}

static inline void sleep_ms(unsigned ms)
{
    struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&d, &d) != 0)
        ;
}

#endif
