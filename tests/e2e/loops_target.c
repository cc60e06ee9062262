/* loops_target.c: a plain libuv program with two loops on two threads for the loop picker's
 * end-to-end test (tests/e2e/test-tui-loops.py), run under libasynctop-preload.so. Each loop
 * has callbacks and requests of its own, named so that a screen shows whose they are: the
 * main loop ("alpha") a 50 ms tick, a 120 ms slow callback every second and one work item in
 * flight (issued by start_alpha_work); the thread "beta-worker" ("beta") a 20 ms tick, a 150 ms
 * slow callback every 700 ms and two work items in flight (start_beta_work). Commands, one per
 * line on stdin: "close-b" closes the beta loop (its thread exits), "start-c" starts a third
 * loop on the thread "gamma-worker" (a 30 ms tick, one work item in flight from
 * start_gamma_work), "spin-b MS" makes the beta loop stuck MS ms in one callback (beta_stuck),
 * "quit" ends the program. Prints "READY pid" once both loops run, "OK cmd"
 * after each command (after start-c: once the new loop runs). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static uv_loop_t loop_a, loop_b;
static uv_timer_t alpha_tick_t, alpha_slow_t, beta_tick_t, beta_slow_t, start_t;
static uv_async_t stop_b, spin_b;
static unsigned spin_ms;
static uv_fs_t stdin_req;
static uv_work_t alpha_work[1], beta_work[2];
static char buf[256], line[256];
static size_t linelen;
static pthread_t thread_b;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int release_alpha, release_beta, b_running, b_closed, ready_said;
/* gamma: the loop started on command */
static uv_loop_t loop_c;
static uv_timer_t gamma_tick_t;
static uv_async_t stop_c;
static uv_work_t gamma_work[1];
static pthread_t thread_c;
static int c_started, c_running, release_gamma;

static void block_ms(unsigned ms)
{
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
    for (uint64_t now; (now = uv_hrtime()) < end;) {
        struct timespec d = {0, (long)(end - now)};
        nanosleep(&d, NULL); /* again after EINTR: the exporter samples stacks by signal */
    }
}

/* ---- beta: the second loop, on its own thread ---------------------------------------------- */

static void beta_tick(uv_timer_t *t)
{
    (void)t;
    pthread_mutex_lock(&mu);
    b_running = 1;
    pthread_mutex_unlock(&mu);
}

__attribute__((noinline)) static void beta_slow(uv_timer_t *t)
{
    (void)t;
    block_ms(150);
}

static void beta_waiting(uv_work_t *w)
{
    (void)w;
    pthread_mutex_lock(&mu);
    while (!release_beta)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void beta_done(uv_work_t *w, int status)
{
    (void)w;
    (void)status;
}

static volatile int g_sink; /* keeps the calls below from being tail calls */

__attribute__((noinline)) static void start_beta_work(void)
{
    for (int i = 0; i < 2; i++)
        uv_queue_work(&loop_b, &beta_work[i], beta_waiting, beta_done);
    g_sink++;
}

static void on_stop_b(uv_async_t *a)
{
    uv_close((uv_handle_t *)&beta_tick_t, NULL);
    uv_close((uv_handle_t *)&beta_slow_t, NULL);
    uv_close((uv_handle_t *)&spin_b, NULL);
    uv_close((uv_handle_t *)a, NULL);
}

/* "spin-b MS": the beta loop stuck in one callback */
__attribute__((noinline)) static void beta_stuck(uv_async_t *a)
{
    (void)a;
    pthread_mutex_lock(&mu);
    unsigned ms = spin_ms;
    pthread_mutex_unlock(&mu);
    block_ms(ms);
}

static void *run_b(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "beta-worker");
    uv_loop_init(&loop_b);
    uv_timer_init(&loop_b, &beta_tick_t);
    uv_timer_start(&beta_tick_t, beta_tick, 20, 20);
    uv_timer_init(&loop_b, &beta_slow_t);
    uv_timer_start(&beta_slow_t, beta_slow, 700, 700);
    uv_async_init(&loop_b, &stop_b, on_stop_b);
    uv_async_init(&loop_b, &spin_b, beta_stuck);
    start_beta_work();
    uv_run(&loop_b, UV_RUN_DEFAULT);
    int r = uv_loop_close(&loop_b);
    pthread_mutex_lock(&mu);
    b_closed = r == 0 ? 1 : -1;
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* ---- gamma: a loop that appears while asynctop watches ----------------------------------------
 */

static void gamma_tick(uv_timer_t *t)
{
    (void)t;
    pthread_mutex_lock(&mu);
    c_running = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void gamma_waiting(uv_work_t *w)
{
    (void)w;
    pthread_mutex_lock(&mu);
    while (!release_gamma)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

__attribute__((noinline)) static void start_gamma_work(void)
{
    uv_queue_work(&loop_c, &gamma_work[0], gamma_waiting, beta_done);
    g_sink++;
}

static void on_stop_c(uv_async_t *a)
{
    uv_close((uv_handle_t *)&gamma_tick_t, NULL);
    uv_close((uv_handle_t *)a, NULL);
}

static void *run_c(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "gamma-worker");
    uv_loop_init(&loop_c);
    uv_timer_init(&loop_c, &gamma_tick_t);
    uv_timer_start(&gamma_tick_t, gamma_tick, 30, 30);
    uv_async_init(&loop_c, &stop_c, on_stop_c);
    start_gamma_work();
    uv_run(&loop_c, UV_RUN_DEFAULT);
    uv_loop_close(&loop_c);
    return NULL;
}

static void start_c(void)
{
    if (c_started)
        return;
    c_started = 1;
    pthread_create(&thread_c, NULL, run_c, NULL);
    pthread_mutex_lock(&mu);
    while (!c_running)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void close_c(void)
{
    if (!c_started)
        return;
    pthread_mutex_lock(&mu);
    release_gamma = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    uv_async_send(&stop_c);
    pthread_join(thread_c, NULL);
    c_started = 0;
}

/* ---- alpha: the main loop ------------------------------------------------------------------- */

static void alpha_tick(uv_timer_t *t)
{
    (void)t;
    pthread_mutex_lock(&mu);
    int go = b_running && !ready_said;
    ready_said |= go;
    pthread_mutex_unlock(&mu);
    if (go) {
        printf("READY %ld\n", (long)getpid());
        fflush(stdout);
    }
}

__attribute__((noinline)) static void alpha_slow(uv_timer_t *t)
{
    (void)t;
    block_ms(120);
}

static void alpha_waiting(uv_work_t *w)
{
    (void)w;
    pthread_mutex_lock(&mu);
    while (!release_alpha)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void alpha_done(uv_work_t *w, int status)
{
    (void)w;
    (void)status;
}

__attribute__((noinline)) static void start_alpha_work(void)
{
    uv_queue_work(&loop_a, &alpha_work[0], alpha_waiting, alpha_done);
    g_sink++;
}

static void read_command(void);

static void release(int *flag)
{
    pthread_mutex_lock(&mu);
    *flag = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void close_b(void)
{
    pthread_mutex_lock(&mu);
    int closed = b_closed;
    pthread_mutex_unlock(&mu);
    if (closed)
        return;
    release(&release_beta);
    uv_async_send(&stop_b);
    pthread_join(thread_b, NULL); /* the beta loop closes on its thread */
}

static void command(const char *cmd)
{
    if (strcmp(cmd, "close-b") == 0) {
        close_b();
    } else if (strcmp(cmd, "start-c") == 0) {
        start_c();
    } else if (strncmp(cmd, "spin-b ", 7) == 0) {
        pthread_mutex_lock(&mu);
        spin_ms = (unsigned)atoi(cmd + 7);
        pthread_mutex_unlock(&mu);
        uv_async_send(&spin_b);
    } else if (strcmp(cmd, "quit") == 0) {
        close_b();
        close_c();
        release(&release_alpha);
        uv_close((uv_handle_t *)&alpha_tick_t, NULL);
        uv_close((uv_handle_t *)&alpha_slow_t, NULL);
    }
    printf("OK %s\n", cmd);
    fflush(stdout);
}

static void on_stdin(uv_fs_t *req)
{
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    if (n <= 0) {
        command("quit");
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] != '\n') {
            if (linelen + 1 < sizeof line)
                line[linelen++] = buf[i];
            continue;
        }
        line[linelen] = '\0';
        linelen = 0;
        command(line);
        if (strcmp(line, "quit") == 0)
            return;
    }
    read_command();
}

__attribute__((noinline)) static void read_command(void)
{
    uv_buf_t b = uv_buf_init(buf, sizeof buf);
    uv_fs_read(&loop_a, &stdin_req, 0, &b, 1, -1, on_stdin);
    g_sink++;
}

/* The first read of stdin is issued once the loop runs. (Issued before the first uv_run,
 * the shim of this writing never removes its row once it completes: a row "fs.read" would
 * linger as waiting beside the next read's.) */
static void on_start(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, NULL);
    read_command();
}

int main(void)
{
    setenv("UV_THREADPOOL_SIZE", "8", 1); /* the waiting work items hold pool threads */
    uv_loop_init(&loop_a);
    uv_timer_init(&loop_a, &alpha_tick_t);
    uv_timer_start(&alpha_tick_t, alpha_tick, 50, 50);
    uv_timer_init(&loop_a, &alpha_slow_t);
    uv_timer_start(&alpha_slow_t, alpha_slow, 1000, 1000);
    start_alpha_work();
    uv_timer_init(&loop_a, &start_t);
    uv_timer_start(&start_t, on_start, 0, 0);
    pthread_create(&thread_b, NULL, run_b, NULL);
    uv_run(&loop_a, UV_RUN_DEFAULT);
    int ra = uv_loop_close(&loop_a);
    return ra != 0 || b_closed != 1;
}
