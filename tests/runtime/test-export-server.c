/* test-export-server.c: the exporter thread seen from a client — the task ring to aggregator
 * path (with drops and the resync that repairs them), the client limit, bounded per-client
 * output, request floods and a loop that does not answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "at_wire.h"
#include "at_wire_frame.h"
#include "export_int.h" /* white box: the ring and its counters */

static char g_dir[64];
static char g_path[96];
static uv_loop_t g_loop;
static at__mon_t *g_mon;
static uv_timer_t g_keepalive; /* a running program's loop has work: uv_run(NOWAIT) polls */

static void keepalive_cb(uv_timer_t *t)
{
}

/* ---- a provider with a plain table of tasks ----------------------------------------------- */

#define NT 20000
static at_export_task_row_t g_rows[NT];
static size_t g_n;
static int g_resyncs;

static void p_resync(void *ctx, at_export_resync_sink_t *sink)
{
    g_resyncs++;
    for (size_t i = 0; i < g_n; i++)
        at__export_resync_add(sink, &g_rows[i]);
}

#define SLOW_TASK 99              /* its detail keeps the loop thread busy in g_slow_hook */
static void (*g_slow_hook)(void); /* runs on the loop thread inside that request */

static int p_detail(void *ctx, uint64_t id, at_export_task_detail_t *out)
{
    if (id == SLOW_TASK) {
        g_slow_hook();
        return -ESRCH;
    }
    for (size_t i = 0; i < g_n; i++)
        if (g_rows[i].id == id) {
            out->row = g_rows[i];
            return 0;
        }
    return -ESRCH;
}

static int g_cancels; /* task_cancel calls carried out */

static int p_cancel(void *ctx, uint64_t id)
{
    g_cancels++;
    return 0;
}

static const at_export_provider_t g_prov = {
    .name = "test",
    .caps = AT_EXPORT_CAP_TASKS | AT_EXPORT_CAP_TASK_DETAIL | AT_EXPORT_CAP_CANCEL,
    .resync = p_resync,
    .task_detail = p_detail,
    .task_cancel = p_cancel,
};

static void add_task(at_export_attach_t *a, uint64_t id, uint8_t state)
{
    at_export_task_row_t *r = &g_rows[g_n++];
    memset(r, 0, sizeof *r);
    r->id = id;
    r->state = state;
    r->created_ns = at__now_ns();
    snprintf(r->name, sizeof r->name, "t%llu", (unsigned long long)id);
    at__export_task_post(a, AT_EXPORT_TASK_ADDED, r);
}

/* ---- a minimal client on the wire library --------------------------------------------------- */

typedef struct client {
    int fd;
    at_wire_reader_t rd;
    uint64_t tasks;   /* live tasks in the client's mirror */
    uint64_t dropped; /* "task" dropped counter last seen */
    uint64_t seq;
} client_t;

static int client_connect(client_t *c)
{
    memset(c, 0, sizeof *c);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", g_path);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    at_wire_reader_init(&c->rd, AT_WIRE_MAX_FRAME_S2C);
    return connect(c->fd, (struct sockaddr *)&sa, sizeof sa);
}

static void client_free(client_t *c)
{
    close(c->fd);
    at_wire_reader_free(&c->rd);
}

static void client_send(client_t *c, at_wire_buf_t *b)
{
    assert_int_equal(send(c->fd, b->data, b->len, MSG_NOSIGNAL), (ssize_t)b->len);
    at_wire_buf_reset(b);
}

/* The next message, pumping the application loop meanwhile. 1, 0 on EOF, -1 on timeout. */
static int client_next(client_t *c, at_wire_msg_t *m, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 5) {
        const uint8_t *body;
        size_t len;
        int r = at_wire_reader_next(&c->rd, &body, &len);
        assert_true(r >= 0);
        if (r == 1) {
            at_wire_err_t err;
            assert_int_equal(at_wire_decode(body, len, &at_wire_limits_s2c, m, &err), 0);
            if (m->type == AT_WIRE_UPDATE) {
                const at_wire_update_t *u = &m->u.update;
                if (u->full)
                    c->tasks = 0;
                c->tasks += u->n_tasks_new;
                c->tasks -= u->n_tasks_gone;
                for (uint32_t i = 0; i < u->n_dropped; i++)
                    if (strcmp(u->dropped[i].name, "task") == 0)
                        c->dropped = u->dropped[i].n;
                c->seq = u->seq;
            }
            return 1;
        }
        uv_run(&g_loop, UV_RUN_NOWAIT);
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (poll(&pfd, 1, 5) == 1) {
            uint8_t buf[65536];
            ssize_t n = recv(c->fd, buf, sizeof buf, 0);
            if (n <= 0)
                return 0;
            assert_int_equal(at_wire_reader_push(&c->rd, buf, (size_t)n), 0);
        }
    }
    return -1;
}

static void expect_type(client_t *c, int type)
{
    at_wire_msg_t m;
    for (;;) {
        assert_int_equal(client_next(c, &m, 10000), 1);
        int t = m.type;
        at_wire_msg_free(&m);
        if (t == type)
            return;
    }
}

static void subscribe(client_t *c)
{
    at_wire_buf_t b;
    at_wire_buf_init(&b);
    at_wire_subscribe_t s = {.interval_ms = 100};
    assert_int_equal(at_wire_encode_subscribe(&b, &s), 0);
    client_send(c, &b);
    at_wire_buf_free(&b);
}

/* ---- fixtures ------------------------------------------------------------------------------- */

static int setup(void **state)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/at-export-srv-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    snprintf(g_path, sizeof g_path, "%s/x.sock", g_dir);
    assert_int_equal(uv_loop_init(&g_loop), 0);
    assert_int_equal(at__stack_bounds_init(), 0);
    assert_int_equal(at__mon_create(&g_loop, &g_mon), 0);
    uv_timer_init(&g_loop, &g_keepalive);
    uv_timer_start(&g_keepalive, keepalive_cb, 1000, 1000);
    g_n = 0;
    g_resyncs = 0;
    g_cancels = 0;
    return 0;
}

static int teardown(void **state)
{
    uv_close((uv_handle_t *)&g_keepalive, NULL);
    at__mon_close(g_mon);
    uv_run(&g_loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&g_loop), 0);
    rmdir(g_dir);
    return 0;
}

static at_export_config_t config(void)
{
    at_export_config_t cfg = {.socket_path = g_path, .program = "test-export-server"};
    return cfg;
}

/* ---- tests ------------------------------------------------------------------------------------
 */

static void test_post_without_exporter(void **state)
{
    at_export_attach_t *a = at__export_attach(&g_loop, &g_prov);
    assert_non_null(a);
    at_export_task_row_t row = {.id = 1};
    /* nobody consumes: nothing is queued or counted */
    assert_false(at__export_task_post(a, AT_EXPORT_TASK_ADDED, &row));
    assert_int_equal(atomic_load(&a->produced), 0);
    assert_false(at__export_task_post(NULL, AT_EXPORT_TASK_ADDED, &row));
    at__export_detach(a);
}

static void test_ring_to_aggregator(void **state)
{
    at_export_config_t cfg = config();
    assert_int_equal(at__export_start(&cfg), 0);
    at_export_attach_t *a = at__export_attach(&g_loop, &g_prov);
    assert_non_null(a);
    for (uint64_t i = 1; i <= 1000; i++)
        add_task(a, i, AT_EXPORT_TASK_READY);

    client_t c;
    assert_int_equal(client_connect(&c), 0);
    expect_type(&c, AT_WIRE_HELLO);
    subscribe(&c);
    /* updates until the mirror holds the 1000 tasks (ring events and/or the first resync) */
    at_wire_msg_t m;
    for (int i = 0; i < 100 && (c.tasks != 1000 || g_resyncs == 0); i++) {
        assert_int_equal(client_next(&c, &m, 5000), 1);
        at_wire_msg_free(&m);
    }
    assert_int_equal(c.tasks, 1000);
    assert_true(g_resyncs >= 1); /* a new attachment is resynced once */

    /* changes and removals flow as deltas */
    g_rows[0].state = AT_EXPORT_TASK_WAITING;
    assert_true(at__export_task_post(a, AT_EXPORT_TASK_CHANGED, &g_rows[0]));
    for (int k = 0; k < 10; k++)
        at__export_task_post(a, AT_EXPORT_TASK_REMOVED, &g_rows[--g_n]);
    bool seen_change = false;
    for (int i = 0; i < 100 && (c.tasks != 990 || !seen_change); i++) {
        assert_int_equal(client_next(&c, &m, 5000), 1);
        if (m.type == AT_WIRE_UPDATE)
            for (uint32_t j = 0; j < m.u.update.n_tasks_changed; j++)
                if (m.u.update.tasks_changed[j].id == 1) {
                    assert_int_equal(m.u.update.tasks_changed[j].state, AT_WIRE_TASK_WAITING);
                    seen_change = true;
                }
        at_wire_msg_free(&m);
    }
    assert_int_equal(c.tasks, 990);
    assert_true(seen_change);

    /* overflow the ring: drops are counted, and a resync makes the mirror exact again */
    int resyncs = g_resyncs;
    size_t posted = 0, refused = 0;
    for (uint64_t i = 2000; i < 2000 + 3 * AT_EXPORT_TASK_RING; i++) {
        add_task(a, i, AT_EXPORT_TASK_READY);
        posted++;
    }
    refused = (size_t)atomic_load(&a->dropped);
    assert_true(refused > 0);
    uint64_t want = 990 + posted;
    for (int i = 0; i < 200 && (c.tasks != want || c.dropped == 0); i++) {
        assert_int_equal(client_next(&c, &m, 5000), 1);
        at_wire_msg_free(&m);
    }
    assert_int_equal(c.tasks, want);
    assert_int_equal(c.dropped, refused);
    assert_true(g_resyncs > resyncs);

    client_free(&c);
    at__export_detach(a);
    at__export_stop();
    assert_false(at__export_running());
    assert_int_equal(access(g_path, F_OK), -1); /* socket removed on stop */
}

/* Tasks seen by a fresh client within `updates` updates (stops early at `want`). */
static uint64_t tasks_after(client_t *c, uint64_t want, int updates)
{
    at_wire_msg_t m;
    for (int i = 0; i < updates && c->tasks != want; i++) {
        assert_int_equal(client_next(c, &m, 5000), 1);
        at_wire_msg_free(&m);
    }
    return c->tasks;
}

/* An exporter stopped and started again in one process: the new one knows nothing of the
 * tasks, so it must ask each provider for a resync of its own (the first exporter's "synced"
 * must not carry over, else the new snapshot has no tasks at all). */
static void test_restart_resyncs(void **state)
{
    at_export_config_t cfg = config();
    assert_int_equal(at__export_start(&cfg), 0);
    at_export_attach_t *a = at__export_attach(&g_loop, &g_prov);
    assert_non_null(a);
    for (uint64_t i = 1; i <= 50; i++)
        add_task(a, i, AT_EXPORT_TASK_WAITING);
    client_t c;
    assert_int_equal(client_connect(&c), 0);
    expect_type(&c, AT_WIRE_HELLO);
    subscribe(&c);
    assert_int_equal(tasks_after(&c, 50, 100), 50);
    client_free(&c);
    at__export_stop();

    /* while no exporter runs, nothing is posted: the next one can only learn by a resync */
    for (uint64_t i = 51; i <= 60; i++)
        add_task(a, i, AT_EXPORT_TASK_WAITING);
    int resyncs = g_resyncs;
    assert_int_equal(at__export_start(&cfg), 0);
    assert_int_equal(client_connect(&c), 0);
    expect_type(&c, AT_WIRE_HELLO);
    subscribe(&c);
    assert_int_equal(tasks_after(&c, 60, 30), 60);
    assert_true(g_resyncs > resyncs);
    client_free(&c);
    at__export_detach(a);
    at__export_stop();
}

/* A task cancelled and released within one exporter tick is never sent as a changed row:
 * its final state goes with its id in tasks_gone_state, so a client that last saw it waiting
 * shows it cancelled, not done. */
static void test_gone_final_state(void **state)
{
    at_export_config_t cfg = config();
    assert_int_equal(at__export_start(&cfg), 0);
    at_export_attach_t *a = at__export_attach(&g_loop, &g_prov);
    assert_non_null(a);
    for (uint64_t i = 1; i <= 3; i++)
        add_task(a, i, AT_EXPORT_TASK_WAITING);
    client_t c;
    assert_int_equal(client_connect(&c), 0);
    expect_type(&c, AT_WIRE_HELLO);
    subscribe(&c);
    assert_int_equal(tasks_after(&c, 3, 100), 3);

    /* back to back on the loop thread: the exporter drains both in the same tick */
    g_rows[1].state = AT_EXPORT_TASK_CANCELLED;
    assert_true(at__export_task_post(a, AT_EXPORT_TASK_CHANGED, &g_rows[1]));
    assert_true(at__export_task_post(a, AT_EXPORT_TASK_REMOVED, &g_rows[1]));
    g_rows[1] = g_rows[--g_n];
    int final = -1;
    at_wire_msg_t m;
    for (int i = 0; i < 100 && final < 0; i++) {
        assert_int_equal(client_next(&c, &m, 5000), 1);
        if (m.type == AT_WIRE_UPDATE) {
            const at_wire_update_t *u = &m.u.update;
            for (uint32_t j = 0; j < u->n_tasks_changed; j++)
                if (u->tasks_changed[j].id == 2) /* an update went out between the two posts */
                    final = u->tasks_changed[j].state;
            for (uint32_t j = 0; j < u->n_tasks_gone; j++)
                if (u->tasks_gone[j] == 2 && final < 0) {
                    assert_int_equal(u->n_tasks_gone_state, u->n_tasks_gone);
                    final = (int)u->tasks_gone_state[j];
                }
        }
        at_wire_msg_free(&m);
    }
    assert_int_equal(final, AT_WIRE_TASK_CANCELLED);
    assert_int_equal(c.tasks, 2);
    client_free(&c);
    at__export_detach(a);
    at__export_stop();
}

static void test_client_limit(void **state)
{
    at_export_config_t cfg = config();
    cfg.max_clients = 2;
    assert_int_equal(at__export_start(&cfg), 0);
    client_t c[3];
    for (int i = 0; i < 2; i++) { /* two live clients: the server is full */
        assert_int_equal(client_connect(&c[i]), 0);
        expect_type(&c[i], AT_WIRE_HELLO);
        subscribe(&c[i]);
        expect_type(&c[i], AT_WIRE_UPDATE);
    }
    assert_int_equal(client_connect(&c[2]), 0);
    at_wire_msg_t m;
    assert_int_equal(client_next(&c[2], &m, 5000), 1);
    assert_int_equal(m.type, AT_WIRE_ERROR);
    assert_int_equal(m.u.error.code, AT_WIRE_ST_TOO_MANY_CLIENTS);
    assert_true(m.u.error.fatal);
    assert_non_null(strstr(m.u.error.reason, "at most 2"));
    at_wire_msg_free(&m);
    assert_int_equal(client_next(&c[2], &m, 5000), 0); /* then closed */
    client_free(&c[2]);
    /* one leaves: the next one gets in */
    client_free(&c[0]);
    usleep(100000);
    assert_int_equal(client_connect(&c[0]), 0);
    expect_type(&c[0], AT_WIRE_HELLO);
    client_free(&c[0]);
    client_free(&c[1]);
    at__export_stop();
}

/* Connections that never subscribe cannot lock new clients out: when the server is full,
 * the oldest one still in the handshake makes room (told why); live clients are never
 * evicted. */
static void test_handshakers_do_not_lock_out(void **state)
{
    at_export_config_t cfg = config();
    cfg.max_clients = 3;
    cfg.handshake_ms = 60000; /* the handshake timeout is not what frees the slots here */
    assert_int_equal(at__export_start(&cfg), 0);
    client_t live, silent[2], fresh[2];
    assert_int_equal(client_connect(&live), 0);
    expect_type(&live, AT_WIRE_HELLO);
    subscribe(&live);
    expect_type(&live, AT_WIRE_UPDATE);
    for (int i = 0; i < 2; i++) { /* connect, read the hello, never subscribe */
        assert_int_equal(client_connect(&silent[i]), 0);
        expect_type(&silent[i], AT_WIRE_HELLO);
        usleep(20000); /* silent[0] is the older */
    }
    /* the server is full; two newcomers get in, each in place of the oldest silent one */
    at_wire_msg_t m;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(client_connect(&fresh[i]), 0);
        expect_type(&fresh[i], AT_WIRE_HELLO);
        assert_int_equal(client_next(&silent[i], &m, 5000), 1);
        assert_int_equal(m.type, AT_WIRE_ERROR);
        assert_int_equal(m.u.error.code, AT_WIRE_ST_TOO_MANY_CLIENTS);
        assert_true(m.u.error.fatal);
        assert_non_null(strstr(m.u.error.reason, "had not subscribed"));
        at_wire_msg_free(&m);
        assert_int_equal(client_next(&silent[i], &m, 5000), 0); /* closed */
        client_free(&silent[i]);
        subscribe(&fresh[i]);
        expect_type(&fresh[i], AT_WIRE_UPDATE);
    }
    /* now all three are live: a fourth is refused, and no live client was evicted */
    client_t extra;
    assert_int_equal(client_connect(&extra), 0);
    assert_int_equal(client_next(&extra, &m, 5000), 1);
    assert_int_equal(m.type, AT_WIRE_ERROR);
    assert_int_equal(m.u.error.code, AT_WIRE_ST_TOO_MANY_CLIENTS);
    at_wire_msg_free(&m);
    client_free(&extra);
    expect_type(&live, AT_WIRE_UPDATE);
    for (int i = 0; i < 2; i++) {
        expect_type(&fresh[i], AT_WIRE_UPDATE);
        client_free(&fresh[i]);
    }
    client_free(&live);
    at__export_stop();
}

static void test_bounded_output(void **state)
{
    at_export_config_t cfg = config();
    cfg.client_out_max = 16384;
    cfg.stall_ms = 500;
    assert_int_equal(at__export_start(&cfg), 0);
    at_export_attach_t *a = at__export_attach(&g_loop, &g_prov);
    for (uint64_t i = 1; i <= 4000; i++)
        add_task(a, i, AT_EXPORT_TASK_READY);

    /* 1: a request flood from a client that does not read its responses */
    client_t f;
    assert_int_equal(client_connect(&f), 0);
    int rcv = 4096;
    setsockopt(f.fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    subscribe(&f);
    at_wire_buf_t b;
    at_wire_buf_init(&b);
    bool cut = false;
    for (uint64_t id = 1; id < 200000 && !cut; id++) {
        at_wire_request_t rq = {.id = id, .op = AT_WIRE_OP_PAUSE};
        assert_int_equal(at_wire_encode_request(&b, &rq), 0);
        ssize_t n = send(f.fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        at_wire_buf_reset(&b);
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
            cut = true;
        else if (n < 0) {
            uv_run(&g_loop, UV_RUN_NOWAIT);
            usleep(1000);
        }
    }
    assert_true(cut); /* not read while backed up, then cut off as stalled: never buffered
                       * without bound */
    client_free(&f);

    /* 2: a subscriber that never reads is dropped after the stall time */
    client_t s;
    assert_int_equal(client_connect(&s), 0);
    setsockopt(s.fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    subscribe(&s);
    /* meanwhile a reading client keeps getting updates */
    client_t g;
    assert_int_equal(client_connect(&g), 0);
    subscribe(&g);
    at_wire_msg_t m;
    uint64_t seq0 = 0;
    for (int i = 0; i < 30; i++) {
        /* every task changes: each delta is big, the stalled client's socket fills up */
        for (size_t k = 0; k < g_n; k++) {
            g_rows[k].steps++;
            at__export_task_post(a, AT_EXPORT_TASK_CHANGED, &g_rows[k]);
        }
        assert_int_equal(client_next(&g, &m, 5000), 1);
        if (m.type == AT_WIRE_UPDATE && seq0 == 0)
            seq0 = m.u.update.seq + 1;
        at_wire_msg_free(&m);
    }
    assert_true(g.seq >= seq0 + 5);
    /* the stalled one: its socket now ends (reset or EOF after the queued bytes) */
    char buf[65536];
    ssize_t n;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while ((n = recv(s.fd, buf, sizeof buf, 0)) > 0)
        ;
    assert_true(n == 0 || errno == ECONNRESET); /* not EAGAIN: the server closed it */
    client_free(&s);
    client_free(&g);
    at_wire_buf_free(&b);
    at__export_detach(a);
    at__export_stop();
}

static void test_loop_busy(void **state)
{
    at_export_config_t cfg = config();
    cfg.loop_request_ms = 200;
    assert_int_equal(at__export_start(&cfg), 0);
    at_export_attach_t *a = at__export_attach(&g_loop, &g_prov);
    add_task(a, 7, AT_EXPORT_TASK_READY);
    client_t c;
    assert_int_equal(client_connect(&c), 0);
    subscribe(&c);
    expect_type(&c, AT_WIRE_UPDATE);
    at_wire_buf_t b;
    at_wire_buf_init(&b);
    at_wire_request_t rq = {.id = 42, .op = AT_WIRE_OP_TASK_DETAIL, .task = 7};
    assert_int_equal(at_wire_encode_request(&b, &rq), 0);
    client_send(&c, &b);
    /* read without pumping the loop: the loop is "stuck", the answer must still come */
    uint8_t buf[65536];
    at_wire_msg_t m;
    bool got = false;
    for (int i = 0; i < 400 && !got; i++) {
        const uint8_t *body;
        size_t len;
        while (!got && at_wire_reader_next(&c.rd, &body, &len) == 1) {
            at_wire_err_t err;
            assert_int_equal(at_wire_decode(body, len, &at_wire_limits_s2c, &m, &err), 0);
            if (m.type == AT_WIRE_RESPONSE) {
                assert_int_equal(m.u.response.id, 42);
                assert_int_equal(m.u.response.status, AT_WIRE_ST_TIMEOUT);
                assert_non_null(strstr(m.u.response.reason, "busy"));
                got = true;
            }
            at_wire_msg_free(&m);
        }
        struct pollfd pfd = {.fd = c.fd, .events = POLLIN};
        if (!got && poll(&pfd, 1, 10) == 1) {
            ssize_t n = recv(c.fd, buf, sizeof buf, 0);
            assert_true(n > 0);
            at_wire_reader_push(&c.rd, buf, (size_t)n);
        }
    }
    assert_true(got);
    /* once the loop runs again, the same request is answered */
    rq.id = 43;
    assert_int_equal(at_wire_encode_request(&b, &rq), 0);
    client_send(&c, &b);
    for (;;) {
        assert_int_equal(client_next(&c, &m, 5000), 1);
        if (m.type == AT_WIRE_RESPONSE) {
            assert_int_equal(m.u.response.id, 43);
            assert_int_equal(m.u.response.status, 0);
            assert_true(m.u.response.has_detail);
            assert_int_equal(m.u.response.detail.task.id, 7);
            at_wire_msg_free(&m);
            break;
        }
        at_wire_msg_free(&m);
    }
    at_wire_buf_free(&b);
    client_free(&c);
    at__export_detach(a);
    /* the late answer to request 42 and the detach ran on the loop; let the close finish */
    uv_run(&g_loop, UV_RUN_NOWAIT);
    at__export_stop();
}

/* The response to request `id`, read without running the application loop (it is "blocked"). */
static void response_unpumped(client_t *c, uint64_t id, at_wire_msg_t *m)
{
    uint8_t buf[65536];
    for (int i = 0; i < 1000; i++) {
        const uint8_t *body;
        size_t len;
        while (at_wire_reader_next(&c->rd, &body, &len) == 1) {
            at_wire_err_t err;
            assert_int_equal(at_wire_decode(body, len, &at_wire_limits_s2c, m, &err), 0);
            if (m->type == AT_WIRE_RESPONSE && m->u.response.id == id)
                return;
            at_wire_msg_free(m);
        }
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (poll(&pfd, 1, 10) == 1) {
            ssize_t n = recv(c->fd, buf, sizeof buf, 0);
            assert_true(n > 0);
            at_wire_reader_push(&c->rd, buf, (size_t)n);
        }
    }
    fail_msg("no response to request %llu", (unsigned long long)id);
}

/* Client requests in a's mailbox (the exporter's own inventory requests left out). */
static size_t mailbox_len(at_export_attach_t *a)
{
    size_t n = 0;
    pthread_mutex_lock(&a->mbox_lock);
    for (at_export_loopreq_t *r = a->mbox; r != NULL; r = r->next)
        n += r->client_id != 0;
    pthread_mutex_unlock(&a->mbox_lock);
    return n;
}

/* What a client was told was refused ("loop busy") is never carried out, and leaves the
 * blocked loop's queue at once: a client asking again and again makes nothing pile up. */
static void test_refused_never_runs(void **state)
{
    at_export_config_t cfg = config();
    cfg.loop_request_ms = 100;
    assert_int_equal(at__export_start(&cfg), 0);
    at_export_attach_t *a = at__export_attach(&g_loop, &g_prov);
    add_task(a, 7, AT_EXPORT_TASK_READY);
    client_t c;
    assert_int_equal(client_connect(&c), 0);
    subscribe(&c);
    expect_type(&c, AT_WIRE_UPDATE);
    at_wire_buf_t b;
    at_wire_buf_init(&b);
    at_wire_msg_t m;
    /* the loop is blocked from here on (not run): 40 cancels, each answered "loop busy" */
    for (uint64_t id = 100; id < 140; id++) {
        at_wire_request_t rq = {.id = id, .op = AT_WIRE_OP_CANCEL, .task = 7};
        assert_int_equal(at_wire_encode_request(&b, &rq), 0);
        client_send(&c, &b);
        response_unpumped(&c, id, &m);
        assert_int_equal(m.u.response.status, AT_WIRE_ST_TIMEOUT);
        assert_non_null(strstr(m.u.response.reason, "busy"));
        at_wire_msg_free(&m);
    }
    assert_int_equal(mailbox_len(a), 0); /* nothing queued for the blocked loop */
    /* the loop returns: once it has answered a request sent after them, no cancel ran */
    at_wire_request_t rq = {.id = 200, .op = AT_WIRE_OP_TASK_DETAIL, .task = 7};
    assert_int_equal(at_wire_encode_request(&b, &rq), 0);
    client_send(&c, &b);
    for (;;) {
        assert_int_equal(client_next(&c, &m, 5000), 1);
        bool done = m.type == AT_WIRE_RESPONSE && m.u.response.id == 200;
        at_wire_msg_free(&m);
        if (done)
            break;
    }
    while (mailbox_len(a) != 0)
        uv_run(&g_loop, UV_RUN_NOWAIT);
    assert_int_equal(g_cancels, 0);
    /* a cancel the loop answers is carried out, one answered "loop busy" is not (which of
     * the two depends on the machine's speed; either way the answer tells the truth) */
    rq = (at_wire_request_t){.id = 201, .op = AT_WIRE_OP_CANCEL, .task = 7};
    assert_int_equal(at_wire_encode_request(&b, &rq), 0);
    client_send(&c, &b);
    uint32_t status;
    for (;;) {
        assert_int_equal(client_next(&c, &m, 5000), 1);
        bool done = m.type == AT_WIRE_RESPONSE && m.u.response.id == 201;
        status = done ? m.u.response.status : 0;
        at_wire_msg_free(&m);
        if (done)
            break;
    }
    while (mailbox_len(a) != 0)
        uv_run(&g_loop, UV_RUN_NOWAIT);
    uv_run(&g_loop, UV_RUN_NOWAIT);
    assert_true(status == 0 || status == AT_WIRE_ST_TIMEOUT);
    assert_int_equal(g_cancels, status == 0 ? 1 : 0);
    at_wire_buf_free(&b);
    client_free(&c);
    at__export_detach(a);
    uv_run(&g_loop, UV_RUN_NOWAIT);
    at__export_stop();
}

static client_t *g_slow_client;

/* The loop thread stays in the slow request until the exporter has answered the cancel
 * queued behind it "loop busy" (read from the client meanwhile). */
static void slow_until_cancel_refused(void)
{
    at_wire_msg_t m;
    response_unpumped(g_slow_client, 2, &m);
    assert_int_equal(m.u.response.status, AT_WIRE_ST_TIMEOUT);
    at_wire_msg_free(&m);
}

/* The loop thread has taken a batch from its mailbox and is busy with the first request
 * past the second one's deadline: the second, answered "loop busy", is handed back unrun;
 * the first, already running, is not refused (its real answer comes). */
static void test_refused_after_taken_never_runs(void **state)
{
    at_export_config_t cfg = config();
    cfg.loop_request_ms = 2000; /* far more than the loop's turn that takes both needs */
    assert_int_equal(at__export_start(&cfg), 0);
    at_export_attach_t *a = at__export_attach(&g_loop, &g_prov);
    add_task(a, 7, AT_EXPORT_TASK_READY);
    client_t c;
    assert_int_equal(client_connect(&c), 0);
    subscribe(&c);
    expect_type(&c, AT_WIRE_UPDATE);
    at_wire_buf_t b;
    at_wire_buf_init(&b);
    at_wire_request_t slow = {.id = 1, .op = AT_WIRE_OP_TASK_DETAIL, .task = SLOW_TASK};
    at_wire_request_t cancel = {.id = 2, .op = AT_WIRE_OP_CANCEL, .task = 7};
    assert_int_equal(at_wire_encode_request(&b, &slow), 0);
    client_send(&c, &b);
    assert_int_equal(at_wire_encode_request(&b, &cancel), 0);
    client_send(&c, &b);
    while (mailbox_len(a) < 2) /* both queued, the loop not run yet */
        usleep(1000);
    /* one turn of the loop: it takes both, and stays in the first until the second was
     * answered "loop busy" */
    g_slow_client = &c;
    g_slow_hook = slow_until_cancel_refused;
    uv_run(&g_loop, UV_RUN_NOWAIT);
    at_wire_msg_t m;
    for (;;) {
        assert_int_equal(client_next(&c, &m, 5000), 1);
        assert_false(m.type == AT_WIRE_RESPONSE && m.u.response.id == 2); /* answered once */
        bool real1 = m.type == AT_WIRE_RESPONSE && m.u.response.id == 1;
        if (real1) /* its own answer, not "loop busy" */
            assert_int_equal(m.u.response.status, AT_WIRE_ST_NO_SUCH_TASK);
        at_wire_msg_free(&m);
        if (real1)
            break;
    }
    assert_int_equal(g_cancels, 0);
    at_wire_buf_free(&b);
    client_free(&c);
    at__export_detach(a);
    uv_run(&g_loop, UV_RUN_NOWAIT);
    at__export_stop();
}

/* Requests to a blocked loop are capped per loop (32), whoever sends them. */
static void test_loop_queue_capped(void **state)
{
    at_export_config_t cfg = config();
    cfg.loop_request_ms = 60000; /* never "busy" here: the queue itself is the bound */
    assert_int_equal(at__export_start(&cfg), 0);
    at_export_attach_t *a = at__export_attach(&g_loop, &g_prov);
    add_task(a, 7, AT_EXPORT_TASK_READY);
    enum { NCL = 5 };
    client_t c[NCL];
    for (int i = 0; i < NCL; i++) {
        assert_int_equal(client_connect(&c[i]), 0);
        subscribe(&c[i]);
        expect_type(&c[i], AT_WIRE_UPDATE);
    }
    at_wire_buf_t b;
    at_wire_buf_init(&b);
    at_wire_msg_t m;
    int limited = 0;
    for (int i = 0; i < NCL; i++)
        for (uint64_t id = 1; id <= 8; id++) { /* 8 each: within the per-client limit */
            at_wire_request_t rq = {.id = id, .op = AT_WIRE_OP_TASK_DETAIL, .task = 7};
            assert_int_equal(at_wire_encode_request(&b, &rq), 0);
            client_send(&c[i], &b);
        }
    /* 40 sent, 32 queued: the other 8 are refused at once, the loop still blocked */
    uint8_t buf[65536];
    for (int round = 0; round < 1000 && limited < 8; round++) {
        for (int i = 0; i < NCL; i++) {
            const uint8_t *body;
            size_t len;
            while (at_wire_reader_next(&c[i].rd, &body, &len) == 1) {
                at_wire_err_t err;
                assert_int_equal(at_wire_decode(body, len, &at_wire_limits_s2c, &m, &err), 0);
                if (m.type == AT_WIRE_RESPONSE) {
                    assert_int_equal(m.u.response.status, AT_WIRE_ST_RATE_LIMITED);
                    assert_non_null(strstr(m.u.response.reason, "wait for this loop"));
                    limited++;
                }
                at_wire_msg_free(&m);
            }
            ssize_t n = recv(c[i].fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0)
                at_wire_reader_push(&c[i].rd, buf, (size_t)n);
        }
        usleep(10000);
    }
    assert_int_equal(limited, 8);
    assert_int_equal(mailbox_len(a), 32);
    at_wire_buf_free(&b);
    for (int i = 0; i < NCL; i++)
        client_free(&c[i]);
    at__export_detach(a);
    uv_run(&g_loop, UV_RUN_NOWAIT);
    at__export_stop();
}

static void test_no_provider_unsupported(void **state)
{
    at_export_config_t cfg = config();
    assert_int_equal(at__export_start(&cfg), 0);
    client_t c;
    assert_int_equal(client_connect(&c), 0);
    at_wire_msg_t m;
    assert_int_equal(client_next(&c, &m, 5000), 1);
    assert_int_equal(m.type, AT_WIRE_HELLO);
    /* without a task provider the hello does not promise tasks or cancel */
    assert_int_equal(m.u.hello.caps & (AT_WIRE_CAP_TASKS | AT_WIRE_CAP_CANCEL), 0);
    assert_true(m.u.hello.caps & AT_WIRE_CAP_LOOP_STACK);
    assert_int_equal(m.u.hello.n_loops, 1);
    assert_int_equal(m.u.hello.loops[0].id, 0);
    assert_string_equal(m.u.hello.loops[0].name, "main");
    assert_int_equal(m.u.hello.loops[0].tid, g_mon->tid);
    at_wire_msg_free(&m);
    subscribe(&c);
    expect_type(&c, AT_WIRE_UPDATE);
    at_wire_buf_t b;
    at_wire_buf_init(&b);
    at_wire_request_t rq = {.id = 5, .op = AT_WIRE_OP_CANCEL, .task = 1};
    assert_int_equal(at_wire_encode_request(&b, &rq), 0);
    client_send(&c, &b);
    for (;;) {
        assert_int_equal(client_next(&c, &m, 5000), 1);
        if (m.type == AT_WIRE_RESPONSE) {
            assert_int_equal(m.u.response.id, 5);
            assert_int_equal(m.u.response.status, AT_WIRE_ST_UNSUPPORTED);
            assert_non_null(strstr(m.u.response.reason, "not supported by this runtime"));
            at_wire_msg_free(&m);
            break;
        }
        at_wire_msg_free(&m);
    }
    /* the connection stays up: updates keep coming */
    expect_type(&c, AT_WIRE_UPDATE);
    at_wire_buf_free(&b);
    client_free(&c);
    at__export_stop();
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL); /* the exporter must never raise it */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_post_without_exporter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_to_aggregator, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_resyncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gone_final_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshakers_do_not_lock_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_never_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_after_taken_never_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_queue_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_provider_unsupported, setup, teardown),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    at__loopmon_shutdown();
    return r;
}
