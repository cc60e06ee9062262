/* stream.c: TCP and Unix-socket streams for tasks, on libuv streams and the tasks layer's wait
 * queues (task_wait.c). */
#include "tasks.h"

#include "asynctop/stream.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct at_stream {
    union {
        uv_handle_t h;
        uv_stream_t s;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } u;
    at_loop_t *loop;
    uint64_t id;
    bool is_tcp;
    bool listening;
    at__waitq_t readers; /* a reader, or acceptors */
    char *rbuf;          /* the waiting reader's buffer, or NULL */
    size_t rlen;
    ssize_t rresult;
    bool rdone;
    bool reading; /* uv_read_start is in effect */
    int rerr;     /* end of stream (UV_EOF) or an error, delivered to every later read */
    char *ibuf;   /* data that arrived while no task was reading */
    size_t ioff, ilen;
    int pending_conns;
    struct at_stream *prev, *next; /* open streams of this thread */
    uint8_t ncreate;
    void *create[AT_STACK_MAX];
};

/* A libuv request a task waits for; not cancellable half-way. */
typedef struct op {
    at__waitq_t wq;
    bool done;
    int status;
} op_t;

static __thread at_stream_t *open_streams;

static AT__AWAIT_TEXT int op_wait(op_t *op, uint64_t id)
{
    bool cancelled = false;
    while (!op->done) {
        at__waiter_t w;
        int rc = at__waitq_wait(&op->wq, &w, AT_WAIT_STREAM, id);
        if (rc == AT_ECANCELED)
            cancelled = true; /* libuv still uses the request: wait for it */
        else if (rc != 0)
            return rc;
    }
    return cancelled ? AT_ECANCELED : op->status;
}

static void op_done(op_t *op, int status)
{
    op->done = true;
    op->status = status;
    at__waitq_wake_one(&op->wq, NULL);
}

static at_stream_t *stream_new(at_loop_t *loop, bool tcp, void *ra)
{
    at_stream_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    int rc = tcp ? uv_tcp_init(at_loop_uv(loop), &s->u.tcp)
                 : uv_pipe_init(at_loop_uv(loop), &s->u.pipe, 0);
    if (rc != 0) {
        free(s);
        return NULL;
    }
    s->u.h.data = s;
    s->loop = loop;
    s->is_tcp = tcp;
    s->id = at__tasks_next_object_id();
    at__capture_site(s->create, &s->ncreate, ra);
    s->next = open_streams;
    if (open_streams)
        open_streams->prev = s;
    open_streams = s;
    return s;
}

/* Bytes kept for a stream while no task reads it; reading pauses when full. */
#define STREAM_IBUF 65536

static void on_closed(uv_handle_t *h)
{
    at_stream_t *s = h->data;
    free(s->ibuf);
    free(s);
}

void at_stream_close(at_stream_t *s)
{
    if (!s)
        return;
    assert(s->readers.n == 0);
    if (s->prev)
        s->prev->next = s->next;
    else
        open_streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_close(&s->u.h, on_closed);
}

void at__streams_close(at_loop_t *loop)
{
    at_stream_t *s = open_streams;
    while (s) {
        at_stream_t *next = s->next;
        if (s->loop == loop) {
            char buf[4096];
            size_t pos = 0;
            int w = snprintf(buf, sizeof buf,
                             "unclosed stream id=%" PRIu64 " (%s%s) at loop close\n"
                             "Stream opened at (most recent call first):\n",
                             s->id, s->is_tcp ? "tcp" : "unix", s->listening ? ", listening" : "");
            if (w > 0)
                pos = (size_t)w;
            at__format_stack(buf, sizeof buf, &pos, s->create, s->ncreate);
            buf[sizeof buf - 1] = '\0';
            at__log_long(AT__LOG_WARNING, buf);
            if (loop->mon) {
                at__event_t ev;
                at__event_init(&ev, AT__EV_WARNING);
                snprintf(ev.code, sizeof ev.code, "unclosed_stream");
                snprintf(ev.name, sizeof ev.name, "stream %" PRIu64, s->id);
                snprintf(ev.text, sizeof ev.text, "unclosed stream id=%" PRIu64, s->id);
                ev.nstack = s->ncreate;
                memcpy(ev.stack, s->create, s->ncreate * sizeof(void *));
                at__mon_post(loop->mon, &ev);
            }
            s->readers = (at__waitq_t){0}; /* its tasks were destroyed before */
            at_stream_close(s);
        }
        s = next;
    }
}

static int parse_addr(const char *host, int port, struct sockaddr_storage *ss)
{
    if (strchr(host, ':'))
        return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss);
    return uv_ip4_addr(host, port, (struct sockaddr_in *)ss);
}

/* ---- listening and accepting ------------------------------------------------ */

static void on_connection(uv_stream_t *server, int status)
{
    at_stream_t *s = server->data;
    if (status == 0)
        s->pending_conns++;
    at__waitq_wake_one(&s->readers, NULL);
}

/* The end of both listens: `bind_rc` is the bind's result; listens and gives the stream to
 * *out, or closes it and returns the error. */
static int listen_bound(at_stream_t *s, int bind_rc, int backlog, at_stream_t **out)
{
    int rc =
        bind_rc != 0 ? bind_rc : uv_listen(&s->u.s, backlog > 0 ? backlog : 128, on_connection);
    if (rc != 0) {
        at_stream_close(s);
        return rc;
    }
    s->listening = true;
    s->readers.role = AT__WQ_ACCEPT; /* its waiters accept */
    *out = s;
    return 0;
}

int at_tcp_listen(at_loop_t *loop, const char *host, int port, int backlog, at_stream_t **out)
{
    AT__CHECK_THREAD(loop, "at_tcp_listen");
    struct sockaddr_storage ss;
    int rc = parse_addr(host, port, &ss);
    if (rc != 0)
        return rc;
    at_stream_t *s = stream_new(loop, true, __builtin_return_address(0));
    if (!s)
        return AT_ENOMEM;
    return listen_bound(s, uv_tcp_bind(&s->u.tcp, (const struct sockaddr *)&ss, 0), backlog, out);
}

int at_unix_listen(at_loop_t *loop, const char *path, int backlog, at_stream_t **out)
{
    AT__CHECK_THREAD(loop, "at_unix_listen");
    at_stream_t *s = stream_new(loop, false, __builtin_return_address(0));
    if (!s)
        return AT_ENOMEM;
    return listen_bound(s, uv_pipe_bind(&s->u.pipe, path), backlog, out);
}

int at_stream_port(const at_stream_t *s)
{
    if (!s->is_tcp)
        return -1;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&s->u.tcp, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

AT__AWAIT_TEXT int at_stream_accept(at_stream_t *server, at_stream_t **out)
{
    if (!at__task_current())
        return AT_EINVALSTATE;
    while (server->pending_conns == 0) {
        at__waiter_t w;
        int rc = at__waitq_wait(&server->readers, &w, AT_WAIT_STREAM, server->id);
        if (rc != 0)
            return rc;
    }
    at_stream_t *c = stream_new(server->loop, server->is_tcp, __builtin_return_address(0));
    if (!c)
        return AT_ENOMEM;
    server->pending_conns--;
    int rc = uv_accept(&server->u.s, &c->u.s);
    if (rc != 0) {
        at_stream_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- connecting ------------------------------------------------------------ */

static void on_connect(uv_connect_t *req, int status)
{
    op_done(req->data, status);
}

static AT__AWAIT_TEXT int connect_wait(at_stream_t *s, uv_connect_t *req, op_t *op,
                                       at_stream_t **out)
{
    int rc = op_wait(op, s->id);
    (void)req;
    if (rc != 0) {
        at_stream_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* Both connects: a TCP stream to `ss`, or (ss NULL) a Unix-socket stream to `path`; `ra` is
 * the creation site (the public function's caller). */
AT__AWAIT_TEXT static int stream_connect(at_loop_t *loop, const struct sockaddr_storage *ss,
                                         const char *path, void *ra, at_stream_t **out)
{
    at_stream_t *s = stream_new(loop, ss != NULL, ra);
    if (!s)
        return AT_ENOMEM;
    op_t op = {.wq.role = AT__WQ_CONNECT};
    uv_connect_t req;
    req.data = &op;
    if (ss) {
        int rc = uv_tcp_connect(&req, &s->u.tcp, (const struct sockaddr *)ss, on_connect);
        if (rc != 0) {
            at_stream_close(s);
            return rc;
        }
    } else {
        uv_pipe_connect(&req, &s->u.pipe, path, on_connect);
    }
    return connect_wait(s, &req, &op, out);
}

AT__AWAIT_TEXT int at_tcp_connect(at_loop_t *loop, const char *host, int port, at_stream_t **out)
{
    if (!at__task_current())
        return AT_EINVALSTATE;
    struct sockaddr_storage ss;
    int rc = parse_addr(host, port, &ss);
    if (rc != 0)
        return rc;
    return stream_connect(loop, &ss, NULL, __builtin_return_address(0), out);
}

AT__AWAIT_TEXT int at_unix_connect(at_loop_t *loop, const char *path, at_stream_t **out)
{
    if (!at__task_current())
        return AT_EINVALSTATE;
    return stream_connect(loop, NULL, path, __builtin_return_address(0), out);
}

/* ---- reading and writing --------------------------------------------------- */

/* Reading stays on between reads (no epoll_ctl per read): the bytes go
 * straight into a waiting reader's buffer, else into the stream's own buffer
 * until the next read. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    at_stream_t *s = h->data;
    if (s->rbuf) {
        buf->base = s->rbuf;
        buf->len = s->rlen;
        return;
    }
    if (!s->ibuf) {
        s->ibuf = malloc(STREAM_IBUF);
        s->ioff = s->ilen = 0;
    }
    if (s->ioff > 0 && s->ilen == 0)
        s->ioff = 0;
    size_t end = s->ioff + s->ilen;
    buf->base = s->ibuf ? s->ibuf + end : NULL;
    buf->len = s->ibuf ? STREAM_IBUF - end : 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    at_stream_t *s = stream->data;
    if (nread == 0)
        return; /* EAGAIN */
    if (nread < 0) {
        s->rerr = (int)nread;
        uv_read_stop(stream);
        s->reading = false;
    } else if (s->rbuf && buf->base == s->rbuf) {
        s->rresult = nread;
    } else {
        s->ilen += (size_t)nread;
        if (s->ioff + s->ilen == STREAM_IBUF) {
            uv_read_stop(stream); /* nobody reads: stop taking more */
            s->reading = false;
        }
        if (!s->rbuf)
            return;
    }
    if (s->rbuf) {
        if (nread < 0)
            s->rresult = nread == UV_EOF ? 0 : nread;
        s->rbuf = NULL;
        s->rdone = true;
        at__waitq_wake_one_now(&s->readers, NULL);
    }
}

AT__AWAIT_TEXT ssize_t at_stream_read(at_stream_t *s, void *buf, size_t len)
{
    if (!at__task_current())
        return AT_EINVALSTATE;
    assert(s->readers.n == 0); /* one reader at a time */
    if (s->ilen > 0) {
        size_t n = s->ilen < len ? s->ilen : len;
        memcpy(buf, s->ibuf + s->ioff, n);
        s->ioff += n;
        s->ilen -= n;
        if (!s->reading && !s->rerr)
            s->reading = uv_read_start(&s->u.s, on_alloc, on_read) == 0;
        return (ssize_t)n;
    }
    if (s->rerr)
        return s->rerr == UV_EOF ? 0 : s->rerr;
    if (!s->reading) {
        int rc = uv_read_start(&s->u.s, on_alloc, on_read);
        if (rc != 0)
            return rc;
        s->reading = true;
    }
    s->rbuf = buf;
    s->rlen = len;
    s->rdone = false;
    while (!s->rdone) {
        at__waiter_t w;
        int rc = at__waitq_wait(&s->readers, &w, AT_WAIT_STREAM, s->id);
        if (rc != 0 && !s->rdone) {
            s->rbuf = NULL; /* later bytes wait in the stream's buffer */
            return rc;
        }
    }
    return s->rresult;
}

static void on_write(uv_write_t *req, int status)
{
    op_done(req->data, status);
}

AT__AWAIT_TEXT int at_stream_write(at_stream_t *s, const void *buf, size_t len)
{
    if (!at__task_current())
        return AT_EINVALSTATE;
    /* Fast path: the kernel takes it all now. */
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    int n = uv_try_write(&s->u.s, &b, 1);
    if (n == (int)len)
        return 0;
    if (n > 0) {
        b.base += n;
        b.len -= (size_t)n;
    } else if (n != UV_EAGAIN) {
        return n;
    }
    op_t op = {.wq.role = AT__WQ_WRITE};
    uv_write_t req;
    req.data = &op;
    int rc = uv_write(&req, &s->u.s, &b, 1, on_write);
    if (rc != 0)
        return rc;
    return op_wait(&op, s->id);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    op_done(req->data, status);
}

AT__AWAIT_TEXT int at_stream_shutdown(at_stream_t *s)
{
    if (!at__task_current())
        return AT_EINVALSTATE;
    op_t op = {.wq.role = AT__WQ_WRITE};
    uv_shutdown_t req;
    req.data = &op;
    int rc = uv_shutdown(&req, &s->u.s, on_shutdown);
    if (rc != 0)
        return rc;
    return op_wait(&op, s->id);
}
