/* preload_target.c: a plain libuv program for tests/preload/test_preload_programs.py — two
 * loops on two threads (the main one ticks quickly, the other has a 150 ms timer callback every
 * 300 ms) and requests left in flight (a read of stdin on the thread pool, a work item waiting
 * for it) until a line arrives on stdin, then everything is closed and it exits 0. A third
 * request, a work item that sleeps 3 s, is issued with them before the first uv_run (before the
 * shim watches the loop) and completes on its own. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static uv_loop_t loop_a, loop_b;
static uv_timer_t tick_a, slow_t;
static uv_async_t stop_b;
static uv_fs_t stdin_req;
static uv_work_t work, sleepy;
static char line[256];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int released;

static void on_tick_a(uv_timer_t *t)
{
    (void)t;
}

static void slow_on_b(uv_timer_t *t)
{
    (void)t;
    /* 150 ms of blocking; nanosleep again after EINTR (the exporter samples a blocked loop
     * thread's stack with a signal) */
    uint64_t end = uv_hrtime() + 150 * 1000 * 1000;
    for (uint64_t now; (now = uv_hrtime()) < end;) {
        struct timespec d = {0, (long)(end - now)};
        nanosleep(&d, NULL);
    }
}

static void on_stop_b(uv_async_t *a)
{
    uv_close((uv_handle_t *)&slow_t, NULL);
    uv_close((uv_handle_t *)a, NULL);
}

static void waiting_work(uv_work_t *w)
{
    (void)w;
    pthread_mutex_lock(&mu);
    while (!released)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void after_waiting_work(uv_work_t *w, int status)
{
    (void)w;
    (void)status;
}

static void sleepy_work(uv_work_t *w)
{
    (void)w;
    struct timespec d = {3, 0};
    while (nanosleep(&d, &d) != 0)
        ;
}

static void on_stdin(uv_fs_t *req)
{
    uv_fs_req_cleanup(req);
    pthread_mutex_lock(&mu);
    released = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    uv_close((uv_handle_t *)&tick_a, NULL);
    uv_async_send(&stop_b);
}

static void *run_b(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "net-0002"); /* the loop's name under the shim */
    uv_run(&loop_b, UV_RUN_DEFAULT);
    return NULL;
}

int main(void)
{
    uv_loop_init(&loop_a);
    uv_loop_init(&loop_b);
    uv_timer_init(&loop_a, &tick_a);
    uv_timer_start(&tick_a, on_tick_a, 50, 50);
    uv_timer_init(&loop_b, &slow_t);
    uv_timer_start(&slow_t, slow_on_b, 300, 300);
    uv_async_init(&loop_b, &stop_b, on_stop_b);
    uv_buf_t b = uv_buf_init(line, sizeof line);
    uv_fs_read(&loop_a, &stdin_req, 0, &b, 1, -1, on_stdin);
    uv_queue_work(&loop_a, &work, waiting_work, after_waiting_work);
    uv_queue_work(&loop_a, &sleepy, sleepy_work, after_waiting_work);
    pthread_t tb;
    pthread_create(&tb, NULL, run_b, NULL);
    uv_run(&loop_a, UV_RUN_DEFAULT);
    pthread_join(tb, NULL);
    int ra = uv_loop_close(&loop_a), rb = uv_loop_close(&loop_b);
    printf("closed %d %d\n", ra, rb);
    return ra != 0 || rb != 0;
}
