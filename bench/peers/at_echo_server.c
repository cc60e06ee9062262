/* at_echo_server.c: our side of `make bench`'s TCP echo — the same server as bench_task.c's
 * (a task per connection on libasynctop), as a process of its own so that the same external
 * client (uv-peer echo-client) drives it and every peer alike. Prints its port, then serves
 * until killed. The exporter is on as in any program on the runtime (ASYNCTOP_SOCKET decides). */
#include <stdio.h>
#include <stdlib.h>

#include "asynctop.h"

static int conn_task(void *arg, void **result)
{
    (void)result;
    at_stream_t *conn = arg;
    char buf[4096];
    ssize_t n;
    while ((n = at_stream_read(conn, buf, sizeof buf)) > 0)
        if (at_stream_write(conn, buf, (size_t)n) != 0)
            break;
    at_stream_close(conn);
    return 0;
}

static int serve_task(void *arg, void **result)
{
    (void)result;
    at_stream_t *server = arg;
    for (;;) {
        at_stream_t *conn;
        int rc = at_stream_accept(server, &conn);
        if (rc != 0) {
            at_stream_close(server);
            return rc;
        }
        at_task_spawn(at_task_loop(at_task_current()), conn_task, conn, NULL, NULL);
    }
}

int main(void)
{
    at_loop_t *loop;
    at_stream_t *server;
    int rc = at_loop_new(&loop, NULL);
    if (rc == 0)
        rc = at_tcp_listen(loop, "127.0.0.1", 0, 256, &server);
    if (rc != 0) {
        fprintf(stderr, "at-echo-server: %s\n", at_err_name(rc));
        return 1;
    }
    printf("%d\n", at_stream_port(server));
    fflush(stdout);
    at_task_t *t;
    at_task_spawn(loop, serve_task, server, NULL, &t);
    at_loop_run(loop, AT_RUN_DEFAULT);
    return 0;
}
