/* test-loopmon-ring.c: the bounded event ring: overflow counted exactly (produced =
 * delivered + dropped), FIFO order, and concurrent producers with a consumer thread. */
#include "test-loopmon-util.h"

#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_overflow_exact(void **state)
{
    (void)state;
    uv_loop_t loop;
    at__mon_t *m;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(at__mon_create(&loop, &m), 0);

    const int n = AT__RING_CAP + 44;
    int accepted = 0, refused = 0;
    for (int i = 0; i < n; i++) {
        at__event_t ev;
        at__event_init(&ev, i % 2 ? AT__EV_ERROR : AT__EV_WARNING);
        ev.task_id = (uint64_t)i;
        snprintf(ev.code, sizeof ev.code, "unclosed");
        int rc = at__mon_post(m, &ev);
        if (rc == 0)
            accepted++;
        else {
            assert_int_equal(rc, -ENOBUFS);
            refused++;
        }
    }
    assert_int_equal(accepted, AT__RING_CAP);
    assert_int_equal(refused, 44);
    uint64_t pe, de, pw, dw;
    at__mon_event_counts(m, AT__EV_ERROR, &pe, &de);
    at__mon_event_counts(m, AT__EV_WARNING, &pw, &dw);
    assert_int_equal(pe + pw, (uint64_t)n);
    assert_int_equal(de + dw, 44);
    assert_int_equal(de, 22);
    assert_int_equal(dw, 22);

    /* delivered in order: the first AT__RING_CAP posts */
    at__event_t ev;
    int delivered = 0;
    while (at__mon_take(m, &ev) == 1) {
        assert_int_equal(ev.task_id, (uint64_t)delivered);
        assert_string_equal(ev.code, "unclosed");
        delivered++;
    }
    assert_int_equal((uint64_t)delivered + de + dw, pe + pw);

    /* room again after draining */
    at__event_init(&ev, AT__EV_WARNING);
    assert_int_equal(at__mon_post(m, &ev), 0);
    assert_int_equal(at__mon_take(m, &ev), 1);
    assert_int_equal(at__mon_take(m, &ev), 0);

    close_loop(&loop, m);
    at__loopmon_shutdown();
}

#define PRODUCERS 2
static at__mon_t *cmon;
static _Atomic int producers_done;
static _Atomic int consumer_ready;
static int per_producer;

static void *producer(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    while (!atomic_load(&consumer_ready))
        sched_yield();
    for (int i = 0; i < per_producer; i++) {
        if (i % 64 == 63)
            sched_yield(); /* give the consumer a chance on a 2-core machine */
        at__event_t ev;
        at__event_init(&ev, AT__EV_WARNING);
        ev.task_id = id;
        ev.duration_ns = (uint64_t)i; /* sequence number */
        at__mon_post(cmon, &ev);
    }
    atomic_fetch_add(&producers_done, 1);
    return NULL;
}

typedef struct consumed {
    uint64_t total;
    int64_t last[PRODUCERS];
    int order_ok;
} consumed_t;

static void *consumer(void *arg)
{
    consumed_t *c = arg;
    at__event_t ev;
    atomic_store(&consumer_ready, 1);
    for (;;) {
        int done = atomic_load(&producers_done) == PRODUCERS;
        int got = 0;
        while (at__mon_take(cmon, &ev) == 1) {
            got = 1;
            c->total++;
            if ((int64_t)ev.duration_ns <= c->last[ev.task_id])
                c->order_ok = 0;
            c->last[ev.task_id] = (int64_t)ev.duration_ns;
        }
        if (done && !got)
            return NULL;
        if (!got)
            sched_yield();
    }
}

static void test_concurrent(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(at__mon_create(&loop, &cmon), 0);
    per_producer = getenv("LOOPMON_TEST_SHORT") ? 2000 : 50000;
    consumed_t c = {0, {-1, -1}, 1};
    pthread_t p[PRODUCERS], cons;
    atomic_store(&producers_done, 0);
    atomic_store(&consumer_ready, 0);
    assert_int_equal(pthread_create(&cons, NULL, consumer, &c), 0);
    for (int i = 0; i < PRODUCERS; i++)
        assert_int_equal(pthread_create(&p[i], NULL, producer, (void *)(uintptr_t)i), 0);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(p[i], NULL);
    pthread_join(cons, NULL);
    uint64_t produced, dropped;
    at__mon_event_counts(cmon, AT__EV_WARNING, &produced, &dropped);
    assert_int_equal(produced, (uint64_t)PRODUCERS * (uint64_t)per_producer);
    assert_int_equal(c.total + dropped, produced); /* nothing lost silently */
    assert_true(c.order_ok);                       /* FIFO per producer */
    printf("# produced %llu, delivered %llu, dropped %llu\n", (unsigned long long)produced,
           (unsigned long long)c.total, (unsigned long long)dropped);
    close_loop(&loop, cmon);
    at__loopmon_shutdown();
}

/* The log queue drops (and counts) instead of blocking when the logger cannot keep up. */
static _Atomic int sink_block;
static _Atomic int sink_calls;
static void blocking_sink(int level, const char *msg, void *data)
{
    (void)level;
    (void)msg;
    (void)data;
    atomic_fetch_add(&sink_calls, 1);
    while (atomic_load(&sink_block))
        sleep_ms(1);
}

static void test_log_never_blocks(void **state)
{
    (void)state;
    atomic_store(&sink_block, 1);
    atomic_store(&sink_calls, 0);
    at__log_set_sink(blocking_sink, NULL);
    uint64_t before = at__log_dropped();
    uint64_t t0 = at__now_ns();
    for (int i = 0; i < 1000; i++)
        at__log(AT__LOG_WARNING, "message %d", i);
    uint64_t took = at__now_ns() - t0;
    uint64_t dropped = at__log_dropped() - before;
    /* the sink holds one message, the queue 256: at least 1000 - 257 were dropped */
    assert_true(dropped >= 1000 - 257);
    assert_true(took < 5ull * 1000 * 1000 * 1000); /* did not wait for the sink */
    atomic_store(&sink_block, 0);
    assert_int_equal(at__log_flush(10ull * 1000 * 1000 * 1000), 0);
    assert_int_equal((uint64_t)atomic_load(&sink_calls) + dropped, 1000);
    at__log_set_sink(NULL, NULL);
    at__loopmon_shutdown();
}

/* After fork the child logs through a logger of its own, without the parent's backlog. */
static void test_log_after_fork(void **state)
{
    (void)state;
    capture_start();
    at__log(AT__LOG_INFO, "parent before fork");
    char text[4096];
    capture_take(text, sizeof text);
    assert_string_equal(text, "INFO: parent before fork\n");
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        capture_start();
        at__log(AT__LOG_INFO, "child %d", 7);
        char buf[4096];
        int ok = at__log_flush(5ull * 1000 * 1000 * 1000) == 0;
        pthread_mutex_lock(&cap.lock);
        snprintf(buf, sizeof buf, "%s", cap.text);
        pthread_mutex_unlock(&cap.lock);
        ssize_t n = write(fds[1], buf, strlen(buf));
        _exit(ok && n > 0 ? 0 : 1);
    }
    close(fds[1]);
    char got[4096];
    ssize_t n = read(fds[0], got, sizeof got - 1);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(n > 0);
    got[n] = '\0';
    assert_string_equal(got, "INFO: child 7\n");
    capture_stop();
    at__loopmon_shutdown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overflow_exact),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_log_never_blocks),
        cmocka_unit_test(test_log_after_fork),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
