/* uv_peer.c: the raw-libuv peer of `make bench` — an idle-callback chain, a TCP echo server and
 * the TCP echo client that drives every echo server (ours and the peers') in the same way.
 *
 *   uv-peer chain [N]                     ns of thread CPU per callback of an N-callback chain
 *   uv-peer echo-server                   prints its port, echoes until stdin reaches EOF
 *   uv-peer echo-client PORT CONNS REQS   CONNS connections, each REQS 64-byte round trips;
 *                                         prints the wall seconds it took */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- chain: an idle handle counting to N, one callback per loop iteration ------------------ */

typedef struct chain {
    uv_idle_t idle;
    long left;
} chain_t;

static void chain_cb(uv_idle_t *h)
{
    chain_t *c = (chain_t *)h;
    if (--c->left == 0)
        uv_idle_stop(h);
}

static int run_chain(long n)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    chain_t c = {.left = n};
    uv_idle_init(&loop, &c.idle);
    uint64_t t0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    uv_idle_start(&c.idle, chain_cb);
    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t t1 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    uv_close((uv_handle_t *)&c.idle, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    printf("%.3f\n", (double)(t1 - t0) / (double)n);
    return 0;
}

/* ---- echo server: read, write back (try_write first, as our server does) ----------------- */

typedef struct conn {
    uv_tcp_t tcp;
    char buf[4096];
} conn_t;

typedef struct wreq {
    uv_write_t req;
    char data[];
} wreq_t;

static void srv_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)sz;
    conn_t *c = h->data;
    b->base = c->buf;
    b->len = sizeof c->buf;
}

static void srv_closed(uv_handle_t *h)
{
    free(h->data);
}

static void srv_written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void srv_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n < 0) {
        uv_close((uv_handle_t *)s, srv_closed);
        return;
    }
    if (n == 0)
        return;
    uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
    int w = uv_try_write(s, &out, 1);
    if (w == n)
        return;
    if (w < 0)
        w = 0;
    wreq_t *r = malloc(sizeof *r + (size_t)(n - w));
    memcpy(r->data, b->base + w, (size_t)(n - w));
    out = uv_buf_init(r->data, (unsigned)(n - w));
    uv_write(&r->req, s, &out, 1, srv_written);
}

static void srv_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    conn_t *c = malloc(sizeof *c);
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) == 0) {
        uv_tcp_nodelay(&c->tcp, 1);
        uv_read_start((uv_stream_t *)&c->tcp, srv_alloc, srv_read);
    } else {
        uv_close((uv_handle_t *)&c->tcp, srv_closed);
    }
}

static char stdin_buf[256];

static void stdin_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)h;
    (void)sz;
    b->base = stdin_buf;
    b->len = sizeof stdin_buf;
}

static void stdin_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    if (n < 0)
        uv_stop(s->loop); /* the driver closed our stdin: done */
}

static int run_echo_server(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_tcp_t server;
    uv_tcp_init(&loop, &server);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    int rc = uv_listen((uv_stream_t *)&server, 256, srv_connection);
    if (rc != 0) {
        fprintf(stderr, "uv-peer: listen: %s\n", uv_strerror(rc));
        return 1;
    }
    struct sockaddr_in bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &len);
    printf("%d\n", ntohs(bound.sin_port));
    fflush(stdout);
    uv_pipe_t in;
    uv_pipe_init(&loop, &in, 0);
    uv_pipe_open(&in, 0);
    uv_read_start((uv_stream_t *)&in, stdin_alloc, stdin_read);
    uv_run(&loop, UV_RUN_DEFAULT);
    return 0; /* exit without tearing down: the process ends */
}

/* ---- echo client --------------------------------------------------------------------------- */

#define MSG 64

typedef struct cconn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    char buf[MSG];
    size_t got;
    long reqs;
} cconn_t;

static long client_reqs;
static int client_closed, client_failed;
static char client_msg[MSG];

static void cl_send(cconn_t *c);

static void cl_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)sz;
    cconn_t *c = h->data;
    b->base = c->buf + c->got;
    b->len = MSG - c->got;
}

static void cl_closed(uv_handle_t *h)
{
    (void)h;
    client_closed++;
}

static void cl_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    cconn_t *c = s->data;
    if (n < 0) {
        client_failed = 1;
        uv_close((uv_handle_t *)s, cl_closed);
        return;
    }
    c->got += (size_t)n;
    if (c->got < MSG)
        return;
    c->got = 0;
    if (++c->reqs == client_reqs)
        uv_close((uv_handle_t *)s, cl_closed);
    else
        cl_send(c);
}

static void cl_written(uv_write_t *w, int status)
{
    free(w);
    if (status < 0)
        client_failed = 1;
}

static void cl_send(cconn_t *c)
{
    /* One request in flight per connection; a write request each: the previous one's
     * callback may still be due when its echo has arrived. */
    uv_buf_t b = uv_buf_init(client_msg, MSG);
    uv_write_t *w = malloc(sizeof *w);
    uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, cl_written);
}

static void cl_connected(uv_connect_t *req, int status)
{
    cconn_t *c = req->data;
    if (status != 0) {
        fprintf(stderr, "uv-peer: connect: %s\n", uv_strerror(status));
        client_failed = 1;
        uv_close((uv_handle_t *)&c->tcp, cl_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, cl_alloc, cl_read);
    cl_send(c);
}

static int run_echo_client(int port, int conns, long reqs)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    client_reqs = reqs;
    memset(client_msg, 'x', sizeof client_msg);
    cconn_t *cs = calloc((size_t)conns, sizeof *cs);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
    for (int i = 0; i < conns; i++) {
        cconn_t *c = &cs[i];
        uv_tcp_init(&loop, &c->tcp);
        c->tcp.data = c;
        c->connect.data = c;
        uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&addr, cl_connected);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t t1 = clock_ns(CLOCK_MONOTONIC);
    uv_loop_close(&loop);
    free(cs);
    if (client_failed || client_closed != conns) {
        fprintf(stderr, "uv-peer: echo client failed (%d of %d connections finished)\n",
                client_closed, conns);
        return 1;
    }
    printf("%.6f\n", (double)(t1 - t0) / 1e9);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "chain"))
        return run_chain(argc >= 3 ? atol(argv[2]) : 1000000);
    if (argc == 2 && !strcmp(argv[1], "echo-server"))
        return run_echo_server();
    if (argc == 5 && !strcmp(argv[1], "echo-client"))
        return run_echo_client(atoi(argv[2]), atoi(argv[3]), atol(argv[4]));
    fprintf(stderr, "usage: uv-peer chain [N] | echo-server | echo-client PORT CONNS REQS\n");
    return 2;
}
