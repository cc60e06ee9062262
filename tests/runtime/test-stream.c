/* test-stream.c: I/O for tasks — Unix-socket round trip, cancelling a read and
 * an accept, the unclosed-stream report at loop close, files and getaddrinfo. */
#include "test-core-util.h"

#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <unistd.h>

typedef struct ctx {
    at_loop_t *loop;
    at_stream_t *server;
    char path[64];
    int read_rc;
    int accept_rc;
    bool echoed;
} ctx_t;

static int unix_server(void *arg, void **result)
{
    ctx_t *c = arg;
    at_stream_t *conn;
    assert_int_equal(at_stream_accept(c->server, &conn), 0);
    char buf[64];
    ssize_t n = at_stream_read(conn, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal(at_stream_write(conn, buf, (size_t)n), 0);
    assert_int_equal(at_stream_shutdown(conn), 0);
    /* the peer closes: end of stream */
    assert_int_equal(at_stream_read(conn, buf, sizeof buf), 0);
    at_stream_close(conn);
    return 0;
}

static int unix_client(void *arg, void **result)
{
    ctx_t *c = arg;
    at_stream_t *s;
    assert_int_equal(at_unix_connect(c->loop, c->path, &s), 0);
    assert_int_equal(at_stream_write(s, "ping", 4), 0);
    char buf[8] = {0};
    assert_int_equal(at_stream_read(s, buf, sizeof buf), 4);
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(at_stream_read(s, buf, sizeof buf), 0); /* server shut down */
    at_stream_close(s);
    c->echoed = true;
    return 0;
}

static void test_unix_round_trip(void **state)
{
    ctx_t c = {0};
    assert_int_equal(at_loop_new(&c.loop, NULL), 0);
    snprintf(c.path, sizeof c.path, "/tmp/asynctop-test-stream-%d.sock", (int)getpid());
    unlink(c.path);
    assert_int_equal(at_unix_listen(c.loop, c.path, 16, &c.server), 0);
    assert_int_equal(at_task_spawn(c.loop, unix_server, &c, NULL, NULL), 0);
    assert_int_equal(at_task_spawn(c.loop, unix_client, &c, NULL, NULL), 0);
    while (!c.echoed || at_loop_tasks(c.loop, NULL, NULL) > 0)
        at_loop_run(c.loop, AT_RUN_ONCE);
    at_stream_close(c.server);
    unlink(c.path);
    at_close_report_t rep;
    assert_int_equal(at_loop_close(c.loop, &rep), 0);
    assert_int_equal(rep.unclosed_handles, 0);
}

static int blocked_reader(void *arg, void **result)
{
    ctx_t *c = arg;
    at_stream_t *s;
    assert_int_equal(at_tcp_connect(c->loop, "127.0.0.1", at_stream_port(c->server), &s), 0);
    char buf[16];
    c->read_rc = (int)at_stream_read(s, buf, sizeof buf); /* the server never writes */
    at_stream_close(s);
    return c->read_rc;
}

static int blocked_acceptor(void *arg, void **result)
{
    ctx_t *c = arg;
    at_stream_t *conn;
    assert_int_equal(at_stream_accept(c->server, &conn), 0); /* the reader's connection */
    c->accept_rc = at_stream_accept(c->server, &conn);       /* nobody else comes */
    at_stream_close(conn);
    return c->accept_rc;
}

static void test_cancel_read_and_accept(void **state)
{
    ctx_t c = {0};
    assert_int_equal(at_loop_new(&c.loop, NULL), 0);
    assert_int_equal(at_tcp_listen(c.loop, "127.0.0.1", 0, 16, &c.server), 0);
    at_task_t *acc, *rd;
    assert_int_equal(at_task_spawn(c.loop, blocked_acceptor, &c, NULL, &acc), 0);
    assert_int_equal(at_task_spawn(c.loop, blocked_reader, &c, NULL, &rd), 0);
    at_task_info_t ia, ir;
    for (int i = 0; i < 1000; i++) {
        at_loop_run(c.loop, AT_RUN_ONCE);
        at_task_info(acc, &ia);
        at_task_info(rd, &ir);
        if (ia.steps >= 2 && ia.state == AT_TASK_WAITING && ir.state == AT_TASK_WAITING &&
            ir.steps >= 2)
            break;
    }
    assert_int_equal(ia.wait_kind, AT_WAIT_STREAM);
    assert_int_equal(ir.wait_kind, AT_WAIT_STREAM);
    at_task_cancel(acc, NULL);
    at_task_cancel(rd, NULL);
    while (at_loop_tasks(c.loop, NULL, NULL) > 0)
        at_loop_run(c.loop, AT_RUN_ONCE);
    assert_int_equal(c.accept_rc, AT_ECANCELED);
    assert_int_equal(c.read_rc, AT_ECANCELED);
    at_task_unref(acc);
    at_task_unref(rd);
    at_stream_close(c.server);
    at_close_report_t rep;
    assert_int_equal(at_loop_close(c.loop, &rep), 0);
    assert_int_equal(rep.unclosed_handles, 0);
}

__attribute__((visibility("default"), noinline)) void opens_and_forgets(at_loop_t *loop);
__attribute__((visibility("default"), noinline)) void opens_and_forgets(at_loop_t *loop)
{
    at_stream_t *s;
    assert_int_equal(at_tcp_listen(loop, "127.0.0.1", 0, 16, &s), 0);
}

static void test_unclosed_stream_report(void **state)
{
    capture_begin();
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    opens_and_forgets(loop);
    at_close_report_t rep;
    assert_int_equal(at_loop_close(loop, &rep), 0);
    const char *log = capture_text();
    assert_contains(log, "unclosed stream");
    assert_contains(log, "listening");
    assert_contains(log, "opens_and_forgets");
    capture_end();
}

static int file_and_names(void *arg, void **result)
{
    at_loop_t *loop = arg;
    char path[64];
    snprintf(path, sizeof path, "/tmp/asynctop-test-fs-%d", (int)getpid());
    int fd = at_fs_open(loop, path, O_CREAT | O_TRUNC | O_RDWR, 0600);
    assert_true(fd >= 0);
    assert_int_equal(at_fs_write(loop, fd, "tasks on the pool", 17, 0), 17);
    char buf[32] = {0};
    assert_int_equal(at_fs_read(loop, fd, buf, sizeof buf, 6), 11);
    assert_string_equal(buf, "on the pool");
    assert_int_equal(at_fs_read(loop, fd, buf, sizeof buf, 17), 0); /* end of file */
    assert_int_equal(at_fs_close(loop, fd), 0);
    assert_true(at_fs_open(loop, "/nonexistent/dir/file", O_RDONLY, 0) == AT_ENOENT);
    unlink(path);

    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    assert_int_equal(at_getaddrinfo(loop, "127.0.0.1", "80", &hints, &res), 0);
    assert_non_null(res);
    assert_int_equal(res->ai_family, AF_INET);
    freeaddrinfo(res);
    hints.ai_flags = AI_NUMERICHOST;
    assert_true(at_getaddrinfo(loop, "not a numeric host", NULL, &hints, &res) < 0);
    return 0;
}

static void test_files_and_getaddrinfo(void **state)
{
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    at_task_t *t;
    assert_int_equal(at_task_spawn(loop, file_and_names, loop, NULL, &t), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(at_future_result(at_task_future(t), NULL), 0);
    at_task_unref(t);
    at_close_report_t rep;
    assert_int_equal(at_loop_close(loop, &rep), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unix_round_trip),
        cmocka_unit_test(test_cancel_read_and_accept),
        cmocka_unit_test(test_unclosed_stream_report),
        cmocka_unit_test(test_files_and_getaddrinfo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
