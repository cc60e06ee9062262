/* Client.c: the inspector side of one wire connection (see Client.h). */
#include "Client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HELLO_TIMEOUT_MS 3000

const char *Client_endName(ClientEnd e)
{
    switch (e) {
    case END_NONE:
        return "closed";
    case END_EOF:
        return "process exited";
    case END_NOSOCKET:
        return "no socket";
    case END_REFUSED:
        return "stale socket";
    case END_PERMISSION:
        return "permission refused";
    case END_VERSION:
        return "protocol version";
    case END_PROTOCOL:
        return "protocol error";
    case END_TIMEOUT:
        return "no answer";
    case END_ERROR:
        return "error";
    }
    return "?";
}

static void on_handle_closed(uv_handle_t *h)
{
    Client *c = h->data;
    if (--c->open_handles == 0) {
        c->state = CL_CLOSED;
        at_wire_reader_free(&c->reader);
        if (c->on_closed)
            c->on_closed(c);
    }
}

__attribute__((format(printf, 3, 4))) static void finish(Client *c, ClientEnd end, const char *fmt,
                                                         ...)
{
    if (c->state == CL_CLOSING || c->state == CL_CLOSED)
        return;
    c->state = CL_CLOSING;
    c->end = end;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->error, sizeof c->error, fmt, ap);
        va_end(ap);
    }
    if (c->on_end)
        c->on_end(c);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->pipe, on_handle_closed);
}

static void on_write(uv_write_t *req, int status)
{
    free(req->data);
    free(req);
    (void)status; /* a failed write shows up as a read error / EOF */
}

static int send_buf(Client *c, at_wire_buf_t *b)
{
    uv_write_t *req = malloc(sizeof *req);
    if (!req) {
        at_wire_buf_free(b);
        return -ENOMEM;
    }
    req->data = b->data; /* ownership moves to the request */
    uv_buf_t ub = uv_buf_init((char *)b->data, (unsigned)b->len);
    int r = uv_write(req, (uv_stream_t *)&c->pipe, &ub, 1, on_write);
    if (r < 0) {
        free(req->data);
        free(req);
    }
    b->data = NULL;
    b->len = b->cap = 0;
    return r;
}

static void send_subscribe(Client *c)
{
    at_wire_buf_t b;
    at_wire_subscribe_t s;
    memset(&s, 0, sizeof s);
    s.version = AT_WIRE_VERSION;
    s.interval_ms = c->interval_ms;
    s.loop = c->loop_id;
    at_wire_buf_init(&b);
    if (at_wire_encode_subscribe(&b, &s) == 0)
        send_buf(c, &b);
    else
        at_wire_buf_free(&b);
}

uint64_t Client_request(Client *c, at_wire_request_t *req)
{
    if (c->state != CL_LIVE)
        return 0;
    req->version = AT_WIRE_VERSION;
    req->id = ++c->next_id;
    at_wire_buf_t b;
    at_wire_buf_init(&b);
    if (at_wire_encode_request(&b, req) != 0) {
        at_wire_buf_free(&b);
        return 0;
    }
    return send_buf(c, &b) == 0 ? req->id : 0;
}

static void handle_frame(Client *c, const uint8_t *body, size_t len)
{
    at_wire_msg_t msg;
    at_wire_err_t err;
    memset(&msg, 0, sizeof msg);
    memset(&err, 0, sizeof err);
    int r = at_wire_decode(body, len, &at_wire_limits_s2c, &msg, &err);
    if (r == AT_WIRE_EVERSION) {
        finish(c, END_VERSION,
               "the process speaks asynctop protocol version %llu; this asynctop speaks version "
               "%d: use the asynctop that came with the process's runtime",
               (unsigned long long)err.peer_version, AT_WIRE_VERSION);
        return;
    }
    if (r != 0) {
        finish(c, END_PROTOCOL, "bad frame from the process: %s",
               err.msg[0] ? err.msg : at_wire_strerror(r));
        return;
    }
    c->frames_in++;
    if (c->state == CL_HELLO) {
        if (msg.type == AT_WIRE_ERROR) {
            ClientEnd e = msg.u.error.code == AT_WIRE_ST_PERMISSION ? END_PERMISSION
                          : msg.u.error.code == AT_WIRE_ST_VERSION  ? END_VERSION
                                                                    : END_ERROR;
            finish(c, e, "the process refused the connection: %s",
                   msg.u.error.reason ? msg.u.error.reason : "no reason given");
            at_wire_msg_free(&msg);
            return;
        }
        if (msg.type != AT_WIRE_HELLO) {
            finish(c, END_PROTOCOL, "the process did not start with hello");
            at_wire_msg_free(&msg);
            return;
        }
        if (msg.u.hello.version != AT_WIRE_VERSION) {
            finish(c, END_VERSION,
                   "the process speaks asynctop protocol version %u; this asynctop speaks "
                   "version %d",
                   msg.u.hello.version, AT_WIRE_VERSION);
            at_wire_msg_free(&msg);
            return;
        }
        uv_timer_stop(&c->timer);
        c->state = CL_LIVE;
        if (c->subscribe)
            send_subscribe(c);
    }
    if (c->on_msg)
        c->on_msg(c, &msg);
    if (msg.type == AT_WIRE_ERROR && msg.u.error.fatal && c->state == CL_LIVE)
        finish(c, msg.u.error.code == AT_WIRE_ST_SHUTDOWN ? END_EOF : END_ERROR,
               "the process closed the connection: %s",
               msg.u.error.reason ? msg.u.error.reason : "error");
    else if (msg.type == AT_WIRE_BYE && c->state == CL_LIVE)
        finish(c, END_EOF, "the process said bye%s%s", msg.u.bye.reason ? ": " : "",
               msg.u.bye.reason ? msg.u.bye.reason : "");
    at_wire_msg_free(&msg);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    Client *c = h->data;
    size_t avail = 0;
    uint8_t *p = at_wire_reader_space(&c->reader, 64 * 1024, &avail);
    (void)suggested;
    *buf = uv_buf_init((char *)p, p ? (unsigned)avail : 0);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    Client *c = s->data;
    (void)buf;
    if (nread == UV_EOF) {
        finish(c, END_EOF,
               c->state == CL_HELLO ? "the process closed the connection before hello"
                                    : "the process closed the connection");
        return;
    }
    if (nread < 0) {
        if (nread == UV_ENOBUFS)
            finish(c, END_PROTOCOL, "frame from the process too large or out of memory: %s",
                   c->reader.msg);
        else
            finish(c, END_ERROR, "read error: %s", uv_strerror((int)nread));
        return;
    }
    if (nread == 0)
        return;
    c->bytes_in += (uint64_t)nread;
    if (at_wire_reader_commit(&c->reader, (size_t)nread) != 0) {
        finish(c, END_PROTOCOL, "bad framing from the process: %s", c->reader.msg);
        return;
    }
    for (;;) {
        const uint8_t *body;
        size_t len;
        int r = at_wire_reader_next(&c->reader, &body, &len);
        if (r == 0)
            break;
        if (r < 0) {
            finish(c, END_PROTOCOL, "bad framing from the process: %s", c->reader.msg);
            return;
        }
        handle_frame(c, body, len);
        if (c->state == CL_CLOSING || c->state == CL_CLOSED)
            return;
    }
}

static void on_timeout(uv_timer_t *t)
{
    Client *c = t->data;
    finish(c, END_TIMEOUT,
           "the process did not say hello within %d ms (is its loop stuck since start?)",
           HELLO_TIMEOUT_MS);
}

static void on_connect(uv_connect_t *req, int status)
{
    Client *c = req->data;
    if (c->state != CL_CONNECTING)
        return;
    if (status == UV_ENOENT) {
        finish(c, END_NOSOCKET, "no socket at %s", c->path);
        return;
    }
    if (status == UV_ECONNREFUSED) {
        finish(c, END_REFUSED, "nobody answers on %s (a stale socket: its process has exited)",
               c->path);
        return;
    }
    if (status == UV_EACCES || status == UV_EPERM) {
        finish(c, END_PERMISSION,
               "permission refused on %s: only the user running the process (or root) may "
               "attach",
               c->path);
        return;
    }
    if (status < 0) {
        finish(c, END_ERROR, "cannot connect to %s: %s", c->path, uv_strerror(status));
        return;
    }
    c->state = CL_HELLO;
    int r = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
    if (r < 0)
        finish(c, END_ERROR, "cannot read from %s: %s", c->path, uv_strerror(r));
}

int Client_connect(Client *c, uv_loop_t *loop, const char *path, uint32_t interval_ms,
                   bool subscribe)
{
    memset(c->error, 0, sizeof c->error);
    c->loop = loop;
    c->interval_ms = interval_ms;
    c->subscribe = subscribe;
    c->state = CL_IDLE;
    c->end = END_NONE;
    c->next_id = 0;
    c->bytes_in = c->frames_in = 0;
    /* 108: sun_path, whatever c->path's size becomes */
    // NOLINTNEXTLINE(misc-redundant-expression)
    if (strlen(path) >= sizeof c->path || strlen(path) >= 108) {
        snprintf(c->error, sizeof c->error, "socket path too long: %s", path);
        return -ENAMETOOLONG;
    }
    snprintf(c->path, sizeof c->path, "%s", path);
    at_wire_reader_init(&c->reader, AT_WIRE_MAX_FRAME_S2C);
    uv_pipe_init(loop, &c->pipe, 0);
    uv_timer_init(loop, &c->timer);
    c->pipe.data = c;
    c->timer.data = c;
    c->connect_req.data = c;
    c->open_handles = 2;
    c->state = CL_CONNECTING;
    uv_pipe_connect(&c->connect_req, &c->pipe, c->path, on_connect);
    uv_timer_start(&c->timer, on_timeout, HELLO_TIMEOUT_MS, 0);
    return 0;
}

void Client_close(Client *c)
{
    if (c->state == CL_LIVE) {
        at_wire_buf_t b;
        at_wire_bye_t bye = {AT_WIRE_VERSION, "inspector leaving"};
        at_wire_buf_init(&b);
        if (at_wire_encode_bye(&b, &bye) == 0)
            send_buf(c, &b);
        else
            at_wire_buf_free(&b);
    }
    if (c->state == CL_IDLE || c->state == CL_CLOSED || c->state == CL_CLOSING)
        return;
    finish(c, END_NONE, NULL);
}
