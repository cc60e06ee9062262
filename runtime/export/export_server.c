/* export_server.c: the exporter thread — its own uv_loop_t, the listening socket, clients and
 * their bounded output, the handshake, request dispatch, and start/stop/fork/exit handling. */
#include "export_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* One exporter per process. g_lock serialises start/stop and fork. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static at_export_srv_t *g_srv;
static int g_refs;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* What the exit handler and the fork child need, readable without the lock: the socket to
 * remove (and by whom) and the fds to drop. */
static char g_exit_path[AT_EXPORT_PATH_MAX + 1];
static at_export_sockid_t g_exit_id;
static _Atomic pid_t g_exit_owner;
static int *_Atomic g_fd_slots;
static unsigned g_fd_nslots;

static _Atomic(at_export_log_fn) g_log_fn;

static void client_close(at_export_client_t *c);
static void client_flush(at_export_client_t *c);
static void client_update_poll(at_export_client_t *c);
static void client_poll_cb(uv_poll_t *h, int status, int events);
static void listen_start(at_export_srv_t *srv);

/* ---- logging ------------------------------------------------------------------------------ */

void at__export_set_log(at_export_log_fn fn)
{
    atomic_store(&g_log_fn, fn);
}

void at__export_log(int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    at_export_log_fn fn = atomic_load(&g_log_fn);
    if (fn != NULL) {
        fn(level, msg);
        return;
    }
    /* loopmon's logger never blocks the caller; its levels differ in order. */
    int l = level == AT_EXPORT_LOG_ERROR  ? AT__LOG_ERROR
            : level == AT_EXPORT_LOG_WARN ? AT__LOG_WARNING
                                          : AT__LOG_INFO;
    at__log(l, "exporter: %s", msg);
}

int at__export_grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < n)
        nc *= 2;
    void *q = realloc(*p, nc * size);
    if (q == NULL)
        return -ENOMEM;
    *p = q;
    *cap = nc;
    return 0;
}

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

/* ---- fd slots (for the fork child) ------------------------------------------------------- */

static void fd_slot_set(at_export_srv_t *srv, int fd, bool add)
{
    for (unsigned i = 0; i < g_fd_nslots; i++) {
        int want = add ? -1 : fd;
        if (__atomic_load_n(&srv->fd_slots[i], __ATOMIC_RELAXED) == want) {
            __atomic_store_n(&srv->fd_slots[i], add ? fd : -1, __ATOMIC_RELAXED);
            return;
        }
    }
}

/* ---- output -------------------------------------------------------------------------------- */

static void client_poll_close_cb(uv_handle_t *h)
{
    at_export_client_t *c = h->data;
    free(c);
}

static void outchunk_free(outchunk_t *o)
{
    munmap(o, o->size);
}

/* The mapping size of a chunk holding `len` bytes. */
static size_t outchunk_size(size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t want = sizeof(outchunk_t) + (len > AT_EXPORT_OUTCHUNK ? len : AT_EXPORT_OUTCHUNK);
    return (want + page - 1) / page * page;
}

/* A chunk with room for at least `len` bytes, or NULL. */
static outchunk_t *outchunk_new(size_t len)
{
    size_t size = outchunk_size(len);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    outchunk_t *o = p;
    o->next = NULL;
    o->size = size;
    o->len = o->off = 0;
    return o;
}

/* Frees the client. Closes its fd at once (peers see EOF now), the poll handle later. */
static void client_close(at_export_client_t *c)
{
    at_export_srv_t *srv = c->srv;
    if (c->poll_closed)
        return;
    c->poll_closed = true;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nclients--;
    for (outchunk_t *o = c->oh, *n; o != NULL; o = n) {
        n = o->next;
        outchunk_free(o);
    }
    c->oh = c->ot = NULL;
    c->obytes = 0;
    at_wire_reader_free(&c->rd);
    /* uv_close takes the fd out of the epoll set (EPOLL_CTL_DEL) at once: before close(),
     * while the number is still ours, not after, when another thread may have reused it. */
    uv_close((uv_handle_t *)&c->poll, client_poll_close_cb);
    fd_slot_set(srv, c->fd, false);
    close(c->fd);
    c->fd = -1;
    /* a listener paused at the client limit may accept again */
    if (!srv->accepting && !uv_is_active((uv_handle_t *)&srv->backoff))
        listen_start(srv);
}

/* True while so much of c's output is queued that its requests are not read. */
static bool client_backed_up(const at_export_client_t *c)
{
    return c->obytes >= AT_EXPORT_READ_PAUSE;
}

/* Sends what the socket takes of buf; the count sent, or -1 when the peer is gone (c is then
 * closed). */
static ssize_t client_write(at_export_client_t *c, const uint8_t *buf, size_t len)
{
    for (;;) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            if (n > 0)
                c->t_progress = now_ns();
            return n;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        client_close(c); /* EPIPE, ECONNRESET: the peer is gone */
        return -1;
    }
}

static void client_flush(at_export_client_t *c)
{
    while (c->oh != NULL) {
        outchunk_t *o = c->oh;
        ssize_t n = client_write(c, o->data + o->off, o->len - o->off);
        if (n < 0)
            return;
        if (n == 0)
            break;
        o->off += (size_t)n;
        if (o->off == o->len) {
            c->oh = o->next;
            if (c->oh == NULL)
                c->ot = NULL;
            c->obytes -= o->size;
            outchunk_free(o);
        }
    }
    if (c->oh == NULL && c->state == CL_CLOSING) {
        client_close(c);
        return;
    }
    client_update_poll(c);
}

int at__export_client_send(at_export_client_t *c, const at_wire_buf_t *b)
{
    at_export_srv_t *srv = c->srv;
    if (c->poll_closed || b->len == 0)
        return 0;
    const uint8_t *data = b->data;
    size_t len = b->len;
    if (c->oh == NULL) {
        /* nothing queued: most messages go straight out and are never copied */
        ssize_t n = client_write(c, data, len);
        if (n < 0)
            return 0;
        data += n;
        len -= (size_t)n;
        if (len == 0)
            return 0;
    }
    outchunk_t *t = c->ot;
    if (t != NULL && t->size - sizeof *t - t->len >= len) {
        memcpy(t->data + t->len, data, len); /* room in the last chunk: no new memory */
        t->len += len;
        return 0;
    }
    /* One message may always be queued (a snapshot can be bigger than the bound; updates
     * are not built while one is still queued); beyond it, what the queue holds (its
     * mappings, headers included) is bounded. */
    if (c->oh != NULL && c->obytes + outchunk_size(len) > srv->cfg.client_out_max) {
        at__export_log(AT_EXPORT_LOG_WARN,
                       "client %llu (pid %ld) is not reading: %zu bytes queued; disconnecting",
                       (unsigned long long)c->id, (long)c->pid, c->obytes);
        client_close(c);
        return -ENOBUFS;
    }
    outchunk_t *o = outchunk_new(len);
    if (o == NULL) {
        client_close(c);
        return -ENOMEM;
    }
    memcpy(o->data, data, len);
    o->len = len;
    if (c->ot)
        c->ot->next = o;
    else
        c->oh = o;
    c->ot = o;
    c->obytes += o->size;
    client_update_poll(c);
    return 0;
}

/* Encodes a response into the server's scratch buffer and sends it to c. */
static void send_response(at_export_client_t *c, const at_wire_response_t *r)
{
    at_export_srv_t *srv = c->srv;
    at_wire_buf_reset(&srv->wbuf);
    if (at_wire_encode_response(&srv->wbuf, r) == 0)
        at__export_client_send(c, &srv->wbuf);
}

static void send_error(at_export_client_t *c, uint32_t code, const char *reason, bool fatal)
{
    at_export_srv_t *srv = c->srv;
    at_wire_error_t e = {.code = code, .reason = reason, .fatal = fatal};
    at_wire_buf_reset(&srv->wbuf);
    if (at_wire_encode_error(&srv->wbuf, &e) == 0)
        at__export_client_send(c, &srv->wbuf);
}

void at__export_client_fail(at_export_client_t *c, uint32_t code, const char *reason)
{
    if (c->poll_closed || c->state == CL_CLOSING)
        return;
    send_error(c, code, reason, true);
    if (c->poll_closed)
        return;
    c->state = CL_CLOSING;
    c->t_closing = now_ns();
    shutdown(c->fd, SHUT_RD);
    client_flush(c);
}

void at__export_respond_error(at_export_client_t *c, uint64_t id, uint8_t op, uint32_t status,
                              const char *reason)
{
    at_wire_response_t r = {.id = id, .op = op, .status = status, .reason = reason};
    send_response(c, &r);
}

static void send_config_response(at_export_client_t *c, uint64_t id)
{
    at_wire_response_t r = {.id = id, .op = AT_WIRE_OP_SET_CONFIG, .has_config = true};
    r.config.has_slow_ns = r.config.has_debug = true;
    r.config.slow_ns = at__slow_threshold_ns();
    r.config.debug = at__debug_enabled();
    send_response(c, &r);
}

at_export_client_t *at__export_client_find(at_export_srv_t *srv, uint64_t id)
{
    for (at_export_client_t *c = srv->clients; c != NULL; c = c->next)
        if (c->id == id && !c->poll_closed && c->state != CL_CLOSING)
            return c;
    return NULL;
}

/* ---- requests --------------------------------------------------------------------------- */

/* Sends a request that must run on the loop thread of the client's loop. */
static void loop_request(at_export_client_t *c, const at_wire_request_t *rq)
{
    at_export_srv_t *srv = c->srv;
    at__agg_sync_loops(srv);
    agg_loop_t *l = at__agg_loop(srv, c->loop_id);
    uint32_t need = rq->op == AT_WIRE_OP_CANCEL ? AT_EXPORT_CAP_CANCEL : AT_EXPORT_CAP_TASK_DETAIL;
    if (c->inflight >= AT_EXPORT_CLIENT_INFLIGHT_MAX) {
        at__export_respond_error(c, rq->id, rq->op, AT_WIRE_ST_RATE_LIMITED,
                                 "too many requests in flight on this connection (8, counting "
                                 "those answered \"loop busy\" until the loop takes them back)");
        return;
    }
    at__export_attach_lock();
    at_export_attach_t *a = at__export_attach_first();
    for (; a != NULL; a = a->next)
        if (l != NULL && !l->gone && a->loop == l->mon->loop && (a->p->caps & need) && !a->detached)
            break;
    if (a == NULL) {
        at__export_attach_unlock();
        at__export_respond_error(c, rq->id, rq->op, AT_WIRE_ST_UNSUPPORTED,
                                 "not supported by this runtime: no task provider is attached "
                                 "to this loop");
        return;
    }
    unsigned queued = 0;
    for (at_export_loopreq_t *p = srv->pending; p != NULL; p = p->pnext)
        if (p->att_id == a->id && p->client_id != 0)
            queued++;
    if (queued >= AT_EXPORT_LOOP_QUEUE_MAX) {
        at__export_attach_unlock();
        at__export_respond_error(c, rq->id, rq->op, AT_WIRE_ST_RATE_LIMITED,
                                 "too many requests wait for this loop (32; it may be blocked)");
        return;
    }
    at_export_loopreq_t *r = calloc(1, sizeof *r);
    if (r != NULL && rq->op == AT_WIRE_OP_TASK_DETAIL)
        r->detail = calloc(1, sizeof *r->detail);
    if (r == NULL || (rq->op == AT_WIRE_OP_TASK_DETAIL && r->detail == NULL)) {
        at__export_attach_unlock();
        if (r)
            free(r);
        at__export_respond_error(c, rq->id, rq->op, AT_WIRE_ST_INTERNAL, "out of memory");
        return;
    }
    r->op = rq->op;
    r->client_id = c->id;
    r->req_id = rq->id;
    r->task_id = rq->task;
    r->att = a;
    r->att_id = a->id;
    r->deadline_ns = now_ns() + (uint64_t)srv->cfg.loop_request_ms * 1000000u;
    int err = at__export_loopreq_send(r);
    at__export_attach_unlock();
    if (err != 0) {
        free(r->detail);
        free(r);
        at__export_respond_error(c, rq->id, rq->op, AT_WIRE_ST_UNSUPPORTED, "loop is closing");
        return;
    }
    r->pnext = srv->pending;
    srv->pending = r;
    c->inflight++;
}

static void request_loop_stack(at_export_client_t *c, const at_wire_request_t *rq)
{
    at_export_srv_t *srv = c->srv;
    agg_loop_t *l = at__agg_loop(srv, c->loop_id);
    if (l == NULL || l->gone) {
        at__export_respond_error(c, rq->id, rq->op, AT_WIRE_ST_UNSUPPORTED,
                                 "no loop is being monitored");
        return;
    }
    if (c->pending_stack) {
        at__export_respond_error(c, rq->id, rq->op, AT_WIRE_ST_RATE_LIMITED,
                                 "a loop_stack request is already in flight");
        return;
    }
    c->pending_stack = true;
    c->pending_stack_req = rq->id;
    /* the tick starts the sample (one at a time, process-wide) and answers */
}

static void handle_request(at_export_client_t *c, const at_wire_request_t *rq)
{
    if (c->state != CL_LIVE) {
        at__export_respond_error(c, rq->id, rq->op, AT_WIRE_ST_BAD_REQUEST,
                                 "subscribe first: requests are accepted after subscribe");
        return;
    }
    switch (rq->op) {
    case AT_WIRE_OP_SET_CONFIG:
        if (!rq->config.has_slow_ns && !rq->config.has_debug) {
            at__export_respond_error(c, rq->id, rq->op, AT_WIRE_ST_BAD_REQUEST,
                                     "set_config needs config.slow_ns and/or config.debug");
            return;
        }
        if (rq->config.has_slow_ns &&
            (rq->config.slow_ns < 1000000u || rq->config.slow_ns > 86400000000000ull)) {
            at__export_respond_error(c, rq->id, rq->op, AT_WIRE_ST_BAD_REQUEST,
                                     "slow_ns must be between 1 ms and 1 day (in ns)");
            return;
        }
        if (rq->config.has_slow_ns) {
            at__slow_threshold_set_ns(rq->config.slow_ns);
            at__export_log(AT_EXPORT_LOG_INFO, "slow-callback threshold set to %.3f ms by pid %ld",
                           (double)rq->config.slow_ns / 1e6, (long)c->pid);
        }
        if (rq->config.has_debug)
            at__debug_set(rq->config.debug);
        /* every client sees the new config in its next update */
        send_config_response(c, rq->id);
        return;
    case AT_WIRE_OP_PAUSE:
    case AT_WIRE_OP_RESUME: {
        bool resume = rq->op == AT_WIRE_OP_RESUME;
        if (resume && c->paused) {
            c->need_full = true;
            c->next_update_ns = 0;
        }
        c->paused = !resume;
        at_wire_response_t r = {.id = rq->id, .op = rq->op};
        send_response(c, &r);
        return;
    }
    case AT_WIRE_OP_TASK_DETAIL:
    case AT_WIRE_OP_CANCEL:
        if (rq->task == 0) {
            at__export_respond_error(c, rq->id, rq->op, AT_WIRE_ST_BAD_REQUEST,
                                     "this op needs a task id (key \"task\", >= 1)");
            return;
        }
        loop_request(c, rq);
        return;
    case AT_WIRE_OP_LOOP_STACK:
        request_loop_stack(c, rq);
        return;
    default: {
        char reason[128];
        snprintf(reason, sizeof reason, "unknown op \"%.40s\"", rq->op_name ? rq->op_name : "?");
        /* the response echoes the op as the client spelled it */
        at_wire_response_t r = {.id = rq->id,
                                .op = rq->op,
                                .op_name = rq->op_name,
                                .status = AT_WIRE_ST_UNSUPPORTED,
                                .reason = reason};
        send_response(c, &r);
        return;
    }
    }
}

static void handle_subscribe(at_export_client_t *c, const at_wire_subscribe_t *s)
{
    at_export_srv_t *srv = c->srv;
    at__agg_sync_loops(srv);
    uint32_t iv = s->interval_ms ? s->interval_ms : AT_EXPORT_DEFAULT_INTERVAL_MS;
    if (iv < AT_EXPORT_MIN_INTERVAL_MS)
        iv = AT_EXPORT_MIN_INTERVAL_MS;
    c->interval_ms = iv;
    c->what = s->what;
    agg_loop_t *sl = at__agg_loop(srv, s->loop);
    if (s->loop != 0 && (sl == NULL || sl->gone)) {
        at__export_client_fail(c, AT_WIRE_ST_BAD_REQUEST, "subscribe: no such loop");
        return;
    }
    /* The connection keeps this loop, by its monitor id, until it closes (then the updates say
     * loop_gone): "0" never silently becomes another loop. No loop yet: the first one that
     * appears (at__agg_send_update pins it). */
    c->loop_id = sl != NULL ? sl->id : 0;
    c->state = CL_LIVE;
    c->need_full = true;
    c->next_update_ns = 0; /* the snapshot goes out on this tick */
    uint64_t now = now_ns();
    if (at__agg_tasks_pending(srv, at__agg_loop(srv, c->loop_id))) {
        /* A provider's first resync is on its way (a program that just started): the snapshot
         * waits for it, briefly, rather than going out without the tasks. */
        at__agg_drain(srv); /* asks for it now if not yet asked */
        c->first_wait_until_ns = now + AT_EXPORT_FIRST_SNAPSHOT_WAIT_MS * 1000000ull;
        return;
    }
    at__agg_send_update(srv, c, now);
}

/* One whole frame from a client. */
static void handle_frame(at_export_client_t *c, const uint8_t *body, size_t len)
{
    at_wire_msg_t m;
    at_wire_err_t err;
    int r = at_wire_decode(body, len, &at_wire_limits_c2s, &m, &err);
    if (r != 0) {
        if (r == AT_WIRE_EVERSION) {
            at__export_client_fail(c, AT_WIRE_ST_VERSION, err.msg);
            return;
        }
        /* The framing is intact, so one bad frame does not cost the connection; many do. */
        if (++c->bad_frames > 16) {
            at__export_client_fail(c, AT_WIRE_ST_BAD_FRAME, "too many undecodable frames");
            return;
        }
        send_error(c, AT_WIRE_ST_BAD_FRAME, err.msg, false);
        return;
    }
    switch (m.type) {
    case AT_WIRE_SUBSCRIBE:
        if (c->state == CL_HANDSHAKE)
            handle_subscribe(c, &m.u.subscribe);
        else
            send_error(c, AT_WIRE_ST_UNKNOWN_TYPE, "already subscribed", false);
        break;
    case AT_WIRE_REQUEST:
        handle_request(c, &m.u.request);
        break;
    case AT_WIRE_BYE:
    case AT_WIRE_ERROR:
        c->state = CL_CLOSING;
        c->t_closing = now_ns();
        client_flush(c);
        break;
    default: {
        char reason[96];
        snprintf(reason, sizeof reason, "a client may not send \"%s\"",
                 at_wire_type_name(m.type) ? at_wire_type_name(m.type) : "?");
        send_error(c, AT_WIRE_ST_UNKNOWN_TYPE, reason, false);
        break;
    }
    }
    at_wire_msg_free(&m);
}

/* ---- client I/O ------------------------------------------------------------------------------ */

static void client_update_poll(at_export_client_t *c)
{
    if (c->poll_closed)
        return;
    /* A client whose output is backed up is not read: its requests wait in its socket (and
     * its sends block) until it reads what it was sent. */
    int ev = (c->state != CL_CLOSING && !client_backed_up(c) ? UV_READABLE : 0) |
             (c->oh != NULL ? UV_WRITABLE : 0);
    if (ev == c->poll_events)
        return;
    c->poll_events = ev;
    if (ev == 0)
        uv_poll_stop(&c->poll);
    else
        uv_poll_start(&c->poll, ev, client_poll_cb);
}

/* Handles the whole frames already read, until none is left or c's output is backed up.
 * False when c is closed or closing, or stopped (backed up) with frames left. */
static bool client_take_frames(at_export_client_t *c)
{
    while (!client_backed_up(c)) {
        const uint8_t *body;
        size_t len;
        int r = at_wire_reader_next(&c->rd, &body, &len);
        if (r == 0)
            return true;
        if (r < 0) {
            at__export_client_fail(
                c, r == AT_WIRE_ELIMIT ? AT_WIRE_ST_TOO_LARGE : AT_WIRE_ST_BAD_FRAME, c->rd.msg);
            return false;
        }
        handle_frame(c, body, len);
        if (c->poll_closed || c->state == CL_CLOSING)
            return false;
    }
    return false;
}

/* Reads and handles c's requests: first the frames read before (left while its output was
 * backed up), then more from the socket, and none while its output is backed up. */
static void client_read(at_export_client_t *c)
{
    for (int rounds = 0; !c->poll_closed && c->state != CL_CLOSING; rounds++) {
        if (!client_take_frames(c) || rounds == 4)
            break;
        size_t avail = 0;
        uint8_t *p = at_wire_reader_space(&c->rd, 16384, &avail);
        if (p == NULL) {
            at__export_client_fail(c, AT_WIRE_ST_INTERNAL, "out of memory");
            return;
        }
        ssize_t n = recv(c->fd, p, avail, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            client_close(c);
            return;
        }
        if (n == 0) {
            if (at_wire_reader_pending(&c->rd) != 0)
                at__export_log(AT_EXPORT_LOG_INFO,
                               "client %llu (pid %ld) went away in the middle of a frame",
                               (unsigned long long)c->id, (long)c->pid);
            client_close(c);
            return;
        }
        at_wire_reader_commit(&c->rd, (size_t)n);
    }
    client_update_poll(c);
}

/* True when c has whole frames read but not handled, and may handle them now. */
static bool client_frames_waiting(const at_export_client_t *c)
{
    return !c->poll_closed && c->state != CL_CLOSING && !client_backed_up(c) &&
           c->rd.start != c->rd.scan;
}

static void client_poll_cb(uv_poll_t *h, int status, int events)
{
    at_export_client_t *c = h->data;
    if (status < 0) {
        client_close(c);
        return;
    }
    if (events & UV_WRITABLE)
        client_flush(c);
    /* readable, or drained enough to handle the requests left waiting */
    if (!c->poll_closed && ((events & UV_READABLE) || client_frames_waiting(c)))
        client_read(c);
}

static void send_hello(at_export_client_t *c)
{
    at_export_srv_t *srv = c->srv;
    at__agg_sync_loops(srv); /* a loop created since the last tick counts already */
    at_wire_hello_t h = {0};
    h.pid = (uint64_t)srv->pid;
    h.program = srv->program;
    const char *argv0[1] = {srv->program};
    h.n_argv = srv->argc ? srv->argc : 1;
    h.argv = srv->argc ? srv->argv : argv0;
    h.runtime_version = "0.1.0";
    h.start_time_ns = srv->agg.start_wall_ns;
    h.now_ns = at__agg_proc_ns(&srv->agg, at__now_ns());
    h.config.has_slow_ns = h.config.has_debug = true;
    h.config.slow_ns = at__slow_threshold_ns();
    h.config.debug = at__debug_enabled();
    h.caps = AT_WIRE_CAP_SLOW | AT_WIRE_CAP_EXCEPTIONS | AT_WIRE_CAP_LOOP | AT_WIRE_CAP_STACKS |
             AT_WIRE_CAP_SITES | AT_WIRE_CAP_SET_CONFIG | AT_WIRE_CAP_LOOP_STACK |
             AT_WIRE_CAP_PAUSE | AT_WIRE_CAP_DEBUG;
    at__export_attach_lock();
    for (at_export_attach_t *a = at__export_attach_first(); a != NULL; a = a->next) {
        if (a->p->caps & AT_EXPORT_CAP_TASKS)
            h.caps |= AT_WIRE_CAP_TASKS;
        if (a->p->caps & AT_EXPORT_CAP_CANCEL)
            h.caps |= AT_WIRE_CAP_CANCEL;
    }
    at__export_attach_unlock();
    /* every live loop, oldest first: the main one as 0, the others by monitor id */
    at_wire_loop_info_t loops[64];
    h.n_loops = at__agg_loop_infos(srv, false, loops, 64);
    srv->agg.main_fixed = srv->agg.main_id != 0; /* ids are public from now on */
    h.loops = loops;
    at_wire_buf_reset(&srv->wbuf);
    if (at_wire_encode_hello(&srv->wbuf, &h) == 0)
        at__export_client_send(c, &srv->wbuf);
}

/* ---- accepting ---------------------------------------------------------------------------- */

/* The server is full: closes the connection that has been in the handshake longest (not
 * `keep`, the newcomer), telling it why, so that connections that never subscribe (or
 * subscribe slowly) cannot lock new clients out. Nothing when every other one is live. */
static void evict_oldest_handshake(at_export_srv_t *srv, at_export_client_t *keep)
{
    at_export_client_t *old = NULL;
    for (at_export_client_t *c = srv->clients; c != NULL; c = c->next)
        if (c != keep && !c->poll_closed && c->state == CL_HANDSHAKE &&
            (old == NULL || c->t_accept < old->t_accept))
            old = c;
    if (old == NULL)
        return;
    at__export_log(AT_EXPORT_LOG_INFO,
                   "client %llu (pid %ld) had not subscribed when the server was full; closed "
                   "to make room",
                   (unsigned long long)old->id, (long)old->pid);
    at_wire_error_t e = {.code = AT_WIRE_ST_TOO_MANY_CLIENTS,
                         .reason = "too many clients: this connection had not subscribed and "
                                   "a new one took its place",
                         .fatal = true};
    at_wire_buf_reset(&srv->wbuf);
    if (old->oh == NULL && at_wire_encode_error(&srv->wbuf, &e) == 0)
        (void)!send(old->fd, srv->wbuf.data, srv->wbuf.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    client_close(old); /* at once: its slot is the newcomer's */
}

static void accept_one(at_export_srv_t *srv, int fd)
{
    struct ucred cred;
    socklen_t clen = sizeof cred;
    at_export_client_t *c = calloc(1, sizeof *c);
    if (c == NULL || uv_poll_init(&srv->loop, &c->poll, fd) != 0) {
        free(c);
        close(fd);
        return;
    }
    c->poll.data = c;
    c->srv = srv;
    c->fd = fd;
    c->id = ++srv->next_client_id;
    c->t_accept = c->t_progress = now_ns();
    at_wire_reader_init(&c->rd, AT_WIRE_MAX_FRAME_C2S);
    c->next = srv->clients;
    if (srv->clients)
        srv->clients->prev = c;
    srv->clients = c;
    srv->nclients++;
    fd_slot_set(srv, fd, true);
    c->poll_events = UV_READABLE;
    uv_poll_start(&c->poll, UV_READABLE, client_poll_cb);

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) {
        at__export_client_fail(c, AT_WIRE_ST_PERMISSION, "cannot read peer credentials");
        return;
    }
    c->uid = cred.uid;
    c->pid = cred.pid;
    if (cred.uid != geteuid() && cred.uid != 0) {
        char reason[128];
        snprintf(reason, sizeof reason,
                 "permission denied: uid %lu may not inspect a process of uid %lu",
                 (unsigned long)cred.uid, (unsigned long)geteuid());
        at__export_log(AT_EXPORT_LOG_WARN, "refused client pid %ld: %s", (long)cred.pid, reason);
        at__export_client_fail(c, AT_WIRE_ST_PERMISSION, reason);
        return;
    }
    if (srv->nclients > srv->cfg.max_clients)
        evict_oldest_handshake(srv, c);
    if (srv->nclients > srv->cfg.max_clients) {
        char reason[128];
        snprintf(reason, sizeof reason, "too many clients (at most %u; ASYNCTOP_MAX_CLIENTS)",
                 srv->cfg.max_clients);
        at__export_client_fail(c, AT_WIRE_ST_TOO_MANY_CLIENTS, reason);
        return;
    }
    send_hello(c);
}

static void listen_stop(at_export_srv_t *srv)
{
    if (srv->accepting) {
        uv_poll_stop(&srv->listen_poll);
        srv->accepting = false;
    }
}

static void backoff_cb(uv_timer_t *t)
{
    listen_start(t->data);
}

static void listen_cb(uv_poll_t *h, int status, int events)
{
    at_export_srv_t *srv = h->data;
    for (int i = 0; i < 64; i++) {
        /* Beyond the limit plus a few (which are told why and closed), stop accepting:
         * connections wait in the backlog until someone leaves. */
        if (srv->nclients >= srv->cfg.max_clients + 4) {
            listen_stop(srv);
            return;
        }
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* As tmux does: out of descriptors, stop accepting for a second instead of
                 * spinning on a listener that stays readable. */
                at__export_log(AT_EXPORT_LOG_WARN, "accept: %s; pausing accepts for 1 s",
                               strerror(errno));
                listen_stop(srv);
                uv_timer_start(&srv->backoff, backoff_cb, 1000, 0);
            }
            return;
        }
        accept_one(srv, fd);
    }
}

static void listen_start(at_export_srv_t *srv)
{
    if (srv->accepting || atomic_load(&srv->stopping))
        return;
    srv->accepting = uv_poll_start(&srv->listen_poll, UV_READABLE, listen_cb) == 0;
}

/* ---- loop requests: answers and timeouts -------------------------------------------------- */

static void remove_pending(at_export_srv_t *srv, at_export_loopreq_t *r)
{
    for (at_export_loopreq_t **pp = &srv->pending; *pp != NULL; pp = &(*pp)->pnext)
        if (*pp == r) {
            *pp = r->pnext;
            return;
        }
}

static void loopreq_free(at_export_loopreq_t *r)
{
    at__export_loopreq_free(r);
}

/* A client's request is back from the loop thread (or out of its mailbox): it no longer
 * counts against the client's in-flight limit. */
static void client_request_back(at_export_srv_t *srv, const at_export_loopreq_t *r)
{
    if (r->client_id == 0)
        return;
    for (at_export_client_t *c = srv->clients; c != NULL; c = c->next)
        if (c->id == r->client_id) {
            c->inflight--;
            return;
        }
}

static void answer_detail(at_export_srv_t *srv, at_export_client_t *c, at_export_loopreq_t *r)
{
    at_export_task_detail_t *d = r->detail;
    at_wire_response_t resp = {.id = r->req_id, .op = AT_WIRE_OP_TASK_DETAIL, .has_detail = true};
    at__agg_task_to_wire(&srv->agg, &d->row, &resp.detail.task);
    resp.detail.wait_desc = d->wait_desc[0] ? d->wait_desc : NULL;
    resp.detail.error = d->error[0] ? d->error : NULL;
    unsigned nc =
        d->creation.depth > AT_EXPORT_MAX_FRAMES ? AT_EXPORT_MAX_FRAMES : d->creation.depth;
    unsigned ns =
        d->suspension.depth > AT_EXPORT_MAX_FRAMES ? AT_EXPORT_MAX_FRAMES : d->suspension.depth;
    at_wire_loc_t *cl = at__agg_locs(d->creation.pc, nc);
    at_wire_loc_t *sl = at__agg_locs(d->suspension.pc, ns);
    resp.detail.n_create = cl ? nc : 0;
    resp.detail.create = cl;
    resp.detail.n_suspend = sl ? ns : 0;
    resp.detail.suspend = sl;
    uint64_t steps[AT_EXPORT_STEP_HIST_LO + AT_EXPORT_STEP_HIST_N] = {0};
    uint32_t nsteps = 0;
    for (unsigned i = 0; i < AT_EXPORT_STEP_HIST_N; i++)
        if ((steps[AT_EXPORT_STEP_HIST_LO + i] = d->step_hist[i]) != 0)
            nsteps = AT_EXPORT_STEP_HIST_LO + i + 1;
    resp.detail.step_hist = (at_wire_hist_t){nsteps, steps};
    send_response(c, &resp);
    at__agg_locs_free(cl, nc);
    at__agg_locs_free(sl, ns);
}

static void answer(at_export_srv_t *srv, at_export_loopreq_t *r)
{
    if (r->op == AT_EXPORT_LOOPREQ_RESYNC) {
        at__agg_apply_resync(srv, r);
        return;
    }
    if (r->op == AT_EXPORT_LOOPREQ_INVENTORY) {
        at__agg_inventory_apply(srv, r);
        return;
    }
    at_export_client_t *c = at__export_client_find(srv, r->client_id);
    if (c == NULL)
        return;
    if (r->result == -ESRCH) {
        at__export_respond_error(c, r->req_id, (uint8_t)r->op, AT_WIRE_ST_NO_SUCH_TASK,
                                 "no such task");
    } else if (r->result == -EALREADY) {
        at__export_respond_error(c, r->req_id, (uint8_t)r->op, AT_WIRE_ST_BAD_REQUEST,
                                 "the task has already finished");
    } else if (r->result == -ESHUTDOWN) {
        at__export_respond_error(c, r->req_id, (uint8_t)r->op, AT_WIRE_ST_UNSUPPORTED,
                                 "the loop closed before answering");
    } else if (r->result < 0) {
        char reason[96];
        snprintf(reason, sizeof reason, "the runtime failed: %s", strerror(-r->result));
        at__export_respond_error(c, r->req_id, (uint8_t)r->op, AT_WIRE_ST_INTERNAL, reason);
    } else if (r->op == AT_WIRE_OP_TASK_DETAIL) {
        answer_detail(srv, c, r);
    } else {
        at_wire_response_t resp = {.id = r->req_id, .op = (uint8_t)r->op};
        send_response(c, &resp);
    }
}

static void process_done(at_export_srv_t *srv)
{
    pthread_mutex_lock(&srv->done_lock);
    at_export_loopreq_t *list = srv->done;
    srv->done = NULL;
    pthread_mutex_unlock(&srv->done_lock);
    /* answers came in LIFO order; reverse to keep the order of requests */
    at_export_loopreq_t *rev = NULL;
    while (list) {
        at_export_loopreq_t *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    while (rev) {
        at_export_loopreq_t *r = rev;
        rev = r->next;
        remove_pending(srv, r);
        client_request_back(srv, r);
        if (!r->abandoned)
            answer(srv, r);
        loopreq_free(r);
    }
}

static void expire_pending(at_export_srv_t *srv, uint64_t now)
{
    at_export_loopreq_t *next;
    for (at_export_loopreq_t *r = srv->pending; r != NULL; r = next) {
        next = r->pnext;
        /* A resync is never abandoned: however late, its rows are right as of its ring
         * position, and the next resync waits for it. */
        if (r->abandoned || now < r->deadline_ns || r->op == AT_EXPORT_LOOPREQ_RESYNC ||
            r->op == AT_EXPORT_LOOPREQ_INVENTORY)
            continue;
        /* "Loop busy" is an answer: what it refuses must never run. A request the loop thread
         * has already taken is being carried out; its real answer comes. */
        int w = at__export_loopreq_withdraw(r);
        if (w < 0)
            continue;
        r->abandoned = true;
        at_export_client_t *c = at__export_client_find(srv, r->client_id);
        uint64_t req_id = r->req_id;
        uint8_t op = (uint8_t)r->op;
        if (w == 1) { /* out of the mailbox: ours again, nothing holds it any more */
            remove_pending(srv, r);
            client_request_back(srv, r);
            loopreq_free(r);
        } /* else it counts against the client until the loop thread gives it back */
        if (c == NULL)
            continue;
        char reason[128];
        snprintf(reason, sizeof reason,
                 "loop busy: the loop thread did not answer within %u ms (it may be blocked)",
                 srv->cfg.loop_request_ms);
        at__export_respond_error(c, req_id, op, AT_WIRE_ST_TIMEOUT, reason);
    }
}

/* ---- loop_stack requests -------------------------------------------------------------------- */

static void answer_loop_stacks(at_export_srv_t *srv, uint64_t mon_id, const at_export_stack_t *st,
                               const char *fail)
{
    for (at_export_client_t *c = srv->clients; c != NULL; c = c->next) {
        if (!c->pending_stack || c->poll_closed)
            continue;
        agg_loop_t *l = at__agg_loop(srv, c->loop_id);
        if (l == NULL || l->id != mon_id)
            continue;
        c->pending_stack = false;
        if (fail != NULL) {
            at__export_respond_error(c, c->pending_stack_req, AT_WIRE_OP_LOOP_STACK,
                                     AT_WIRE_ST_TIMEOUT, fail);
            continue;
        }
        at_wire_response_t resp = {
            .id = c->pending_stack_req, .op = AT_WIRE_OP_LOOP_STACK, .has_stack = true};
        char name[AT__SITE_NAME_MAX + 64];
        at__agg_running(srv, l, &resp.running, name, sizeof name);
        at_wire_loc_t *locs = at__agg_locs(st->pc, st->depth);
        resp.n_stack = locs ? st->depth : 0;
        resp.stack = locs;
        send_response(c, &resp);
        at__agg_locs_free(locs, st->depth);
    }
}

/* Starts a sample for a loop_stack request when none is in flight, and answers with it. */
static void service_loop_stacks(at_export_srv_t *srv, uint64_t now)
{
    if (srv->sample_mon != 0 && !srv->sample_for_block) {
        at_export_stack_t st;
        int r = at__export_sample_poll(now, 500000000u, &st);
        if (r == 0)
            return;
        answer_loop_stacks(srv, srv->sample_mon, &st,
                           r < 0 ? "the loop thread did not answer the stack signal in 500 ms"
                                 : NULL);
        srv->sample_mon = 0;
    }
    if (srv->sample_mon != 0 || at__export_sample_busy())
        return;
    for (at_export_client_t *c = srv->clients; c != NULL; c = c->next) {
        if (!c->pending_stack || c->poll_closed)
            continue;
        agg_loop_t *l = at__agg_loop(srv, c->loop_id);
        if (l == NULL || l->gone) {
            c->pending_stack = false;
            at__export_respond_error(c, c->pending_stack_req, AT_WIRE_OP_LOOP_STACK,
                                     AT_WIRE_ST_UNSUPPORTED, "the loop is gone");
            continue;
        }
        int r = at__export_sample_request(l->mon->tid, l->mon->stack_lo, l->mon->stack_hi);
        if (r == 0) {
            srv->sample_mon = l->id;
            srv->sample_for_block = false;
        } else if (r != -EBUSY) {
            char reason[128];
            snprintf(reason, sizeof reason, "cannot sample the loop thread: %s", strerror(-r));
            c->pending_stack = false;
            at__export_respond_error(c, c->pending_stack_req, AT_WIRE_OP_LOOP_STACK,
                                     AT_WIRE_ST_UNSUPPORTED, reason);
            continue;
        }
        return;
    }
}

/* ---- the tick: drain, watch, send ----------------------------------------------------------- */

static void tick_cb(uv_timer_t *t)
{
    at_export_srv_t *srv = t->data;
    uint64_t now = now_ns();
    process_done(srv);
    at__agg_sync_loops(srv);
    at__agg_drain(srv);
    at__agg_watchdog(srv);
    /* stacks are sampled before the inventory request, whose async wakes an idle loop: a
     * loop_stack request must find the loop as the program left it, not handling our wake */
    service_loop_stacks(srv, now);
    at__agg_inventory_request(srv, now);
    expire_pending(srv, now);

    at_export_client_t *next;
    for (at_export_client_t *c = srv->clients; c != NULL; c = next) {
        next = c->next;
        /* requests left unread while its output was backed up, now that it has drained */
        if (client_frames_waiting(c))
            client_read(c);
        if (c->poll_closed)
            continue;
        switch (c->state) {
        case CL_HANDSHAKE:
            if (now - c->t_accept <= (uint64_t)srv->cfg.handshake_ms * 1000000u)
                break;
            /* What arrived before the deadline counts, even when this thread could not read
             * it in time (the process was stopped): read first, then judge. */
            client_read(c);
            if (!c->poll_closed && c->state == CL_HANDSHAKE)
                at__export_client_fail(c, AT_WIRE_ST_TIMEOUT,
                                       "no subscribe within the handshake timeout");
            break;
        case CL_CLOSING:
            if (now - c->t_closing > 1000000000u)
                client_close(c);
            break;
        case CL_LIVE:
            if (c->oh != NULL && now - c->t_progress > (uint64_t)srv->cfg.stall_ms * 1000000u)
                client_flush(c); /* what it read while this thread could not run counts */
            if (c->poll_closed)
                break;
            if (c->oh != NULL && now - c->t_progress > (uint64_t)srv->cfg.stall_ms * 1000000u) {
                at__export_log(AT_EXPORT_LOG_WARN,
                               "client %llu (pid %ld) read nothing for %u ms; disconnecting",
                               (unsigned long long)c->id, (long)c->pid, srv->cfg.stall_ms);
                client_close(c);
                break;
            }
            if (c->paused || now < c->next_update_ns)
                break;
            if (c->first_wait_until_ns != 0) {
                if (now < c->first_wait_until_ns &&
                    at__agg_tasks_pending(srv, at__agg_loop(srv, c->loop_id)))
                    break;
                c->first_wait_until_ns = 0;
            }
            if (c->oh != NULL) {
                /* Still sending the previous update: skip this one. Deltas are computed from
                 * what the client has seen, so nothing is lost, only merged. */
                break;
            }
            at__agg_send_update(srv, c, now);
            break;
        }
    }
}

/* ---- thread, wake-up and stop ---------------------------------------------------------------- */

/* Closes the server's own handles (clients are closed before this runs). */
static void walk_close_cb(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void wake_cb(uv_async_t *a)
{
    at_export_srv_t *srv = a->data;
    process_done(srv);
    if (!atomic_load(&srv->stopping))
        return;
    /* Stop: say bye to every client, close everything, let uv_run return. */
    at_wire_bye_t bye = {.reason = "process exiting"};
    while (srv->clients != NULL) {
        at_export_client_t *c = srv->clients;
        at_wire_buf_reset(&srv->wbuf);
        if (at_wire_encode_bye(&srv->wbuf, &bye) == 0 && c->oh == NULL)
            (void)!send(c->fd, srv->wbuf.data, srv->wbuf.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        client_close(c);
    }
    listen_stop(srv);
    uv_walk(&srv->loop, walk_close_cb, srv);
}

static void *thread_main(void *arg)
{
    at_export_srv_t *srv = arg;
    pthread_setname_np(pthread_self(), "asynctop-export");
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void srv_free(at_export_srv_t *srv)
{
    /* Requests still pending sit in a loop's mailbox: that loop thread frees them when it
     * answers (at__export_loopreq_done finds no exporter), or its detach does. */
    at__agg_free(&srv->agg);
    at_wire_buf_free(&srv->wbuf);
    pthread_mutex_destroy(&srv->done_lock);
    free(srv->fd_slots);
    free(srv->cmdline);
    free(srv->argv);
    free(srv);
}

static void on_exit_unlink(void)
{
    if (atomic_load(&g_exit_owner) == getpid())
        at__export_unlink_if_ours(g_exit_path, &g_exit_id);
}

/* fork(): g_lock is taken before the fork (rank AT__FORK_EXPORT_SERVER, loopmon.h), so the
 * exporter cannot be started or stopped across it. */
static void atfork_prepare(void)
{
    pthread_mutex_lock(&g_lock);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&g_lock);
}

/* The child has no exporter thread. Its copy of the exporter is abandoned (never touched: the
 * thread may have been anywhere when the parent forked, short of holding a lock of the
 * runtime); the descriptors it shares with the parent are closed so that clients see the
 * parent's closes, and the child may start its own exporter on its own pid's socket. Runs
 * after the later ranks' child handlers: the attachment registry's lock is free again. */
static void atfork_child(void)
{
    int *slots = atomic_load(&g_fd_slots);
    if (slots != NULL)
        for (unsigned i = 0; i < g_fd_nslots; i++)
            if (slots[i] >= 0)
                close(slots[i]);
    atomic_store(&g_fd_slots, NULL);
    g_srv = NULL;
    g_refs = 0;
    at__export_attach_set_consumer(0);
    at__export_sample_atfork_child();
    pthread_mutex_unlock(&g_lock);
}

static const at__fork_handlers_t fork_handlers = {atfork_prepare, atfork_parent, atfork_child};

__attribute__((constructor)) static void fork_register(void)
{
    at__fork_register(AT__FORK_EXPORT_SERVER, &fork_handlers);
}

static void once_init(void)
{
    atexit(on_exit_unlink);
}

static unsigned env_uint(const char *name, unsigned def, unsigned lo, unsigned hi)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return def;
    unsigned v;
    if (at__export_parse_uint(s, lo, hi, &v) != 0) {
        at__export_log(AT_EXPORT_LOG_WARN, "%s=%.64s is not a number in %u..%u; using %u", name, s,
                       lo, hi, def);
        return def;
    }
    return v;
}

static void read_program(char *buf, size_t size)
{
    snprintf(buf, size, "?");
    int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n > 0) {
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
    }
}

/* The command line from /proc/self/cmdline (at most 64 arguments, 16 KiB). */
static void read_cmdline(at_export_srv_t *srv)
{
    enum { MAXLEN = 16384, MAXARGS = 64 };
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char *buf = malloc(MAXLEN + 1);
    ssize_t n = buf ? read(fd, buf, MAXLEN) : -1;
    close(fd);
    srv->argv = malloc(MAXARGS * sizeof *srv->argv);
    if (n <= 0 || srv->argv == NULL) {
        free(buf);
        free(srv->argv);
        srv->argv = NULL;
        return;
    }
    buf[n] = '\0';
    srv->cmdline = buf;
    for (ssize_t i = 0; i < n && srv->argc < MAXARGS; i += (ssize_t)strlen(buf + i) + 1)
        srv->argv[srv->argc++] = buf + i;
}

static int srv_start(const at_export_config_t *cfg, at_export_srv_t **out)
{
    char err[256] = "";
    at_export_srv_t *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return -ENOMEM;
    if (cfg != NULL)
        srv->cfg = *cfg;
    if (srv->cfg.max_clients == 0)
        srv->cfg.max_clients =
            env_uint("ASYNCTOP_MAX_CLIENTS", AT_EXPORT_DEFAULT_MAX_CLIENTS, 1, 1024);
    if (srv->cfg.handshake_ms == 0)
        srv->cfg.handshake_ms = AT_EXPORT_DEFAULT_HANDSHAKE_MS;
    if (srv->cfg.client_out_max == 0)
        srv->cfg.client_out_max = AT_EXPORT_DEFAULT_CLIENT_OUT_MAX;
    if (srv->cfg.stall_ms == 0)
        srv->cfg.stall_ms = AT_EXPORT_DEFAULT_STALL_MS;
    if (srv->cfg.loop_request_ms == 0)
        srv->cfg.loop_request_ms = AT_EXPORT_DEFAULT_LOOP_REQUEST_MS;
    if (srv->cfg.program != NULL)
        snprintf(srv->program, sizeof srv->program, "%s", srv->cfg.program);
    else
        read_program(srv->program, sizeof srv->program);
    srv->cfg.socket_path = NULL; /* not kept: the caller's string */
    srv->cfg.program = NULL;
    srv->pid = getpid();
    srv->listen_fd = -1;

    int r = at__export_path_resolve(&srv->path, cfg ? cfg->socket_path : NULL, srv->pid, err,
                                    sizeof err);
    if (r == 1) {
        free(srv);
        return 1;
    }
    if (r == 0 && srv->path.dir[0] != '\0') {
        r = at__export_dir_prepare(srv->path.dir, geteuid(), err, sizeof err);
        if (r == 0) {
            int n = at__export_dir_clean_stale(srv->path.dir, srv->pid);
            if (n > 0)
                at__export_log(AT_EXPORT_LOG_INFO, "removed %d stale socket%s in %s", n,
                               n == 1 ? "" : "s", srv->path.dir);
        }
    }
    if (r == 0) {
        r = at__export_listen(srv->path.path, 128, &srv->sock_id, err, sizeof err);
        if (r >= 0) {
            srv->listen_fd = r;
            r = 0;
        }
    }
    if (r != 0) {
        at__export_log(AT_EXPORT_LOG_ERROR, "refusing to start: %s", err);
        free(srv);
        return r;
    }

    srv->fd_slots = malloc(sizeof(int) * (srv->cfg.max_clients + 8));
    r = srv->fd_slots ? at__agg_init(&srv->agg) : -ENOMEM;
    if (r == 0)
        r = uv_loop_init(&srv->loop);
    if (r != 0) {
        at__export_unlink_if_ours(srv->path.path, &srv->sock_id);
        close(srv->listen_fd);
        at__agg_free(&srv->agg);
        free(srv->fd_slots);
        free(srv);
        return r;
    }
    read_cmdline(srv);
    /* The fd slots: the listener, then one per client (at most max_clients + 4 at once). */
    g_fd_nslots = srv->cfg.max_clients + 8;
    for (unsigned i = 0; i < g_fd_nslots; i++)
        srv->fd_slots[i] = -1;
    srv->fd_slots[0] = srv->listen_fd;
    pthread_mutex_init(&srv->done_lock, NULL);
    at_wire_buf_init(&srv->wbuf);
    uv_async_init(&srv->loop, &srv->wake, wake_cb);
    srv->wake.data = srv;
    uv_poll_init(&srv->loop, &srv->listen_poll, srv->listen_fd);
    srv->listen_poll.data = srv;
    uv_timer_init(&srv->loop, &srv->tick);
    srv->tick.data = srv;
    uv_timer_init(&srv->loop, &srv->backoff);
    srv->backoff.data = srv;
    listen_start(srv);
    uv_timer_start(&srv->tick, tick_cb, AT_EXPORT_TICK_MS, AT_EXPORT_TICK_MS);
    if (at__export_sample_install() != 0)
        at__export_log(AT_EXPORT_LOG_WARN,
                       "signal %d already has a handler in this program: blocked-loop stacks "
                       "are off",
                       at__export_sample_signal());

    /* The thread gets every signal blocked: the program's signals go to its own threads. */
    sigset_t all, old;
    sigfillset(&all);
    /* ...except faults, which must reach the program's handlers (sanitizers, crash reporters)
     * rather than kill the process silently. */
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGABRT);
    sigdelset(&all, SIGTRAP);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* what an earlier exporter in this process knew of the attachments is not ours */
    at__export_attach_reset();
    r = -pthread_create(&srv->thread, NULL, thread_main, srv);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        uv_walk(&srv->loop, walk_close_cb, NULL);
        uv_run(&srv->loop, UV_RUN_DEFAULT);
        uv_loop_close(&srv->loop);
        at__export_unlink_if_ours(srv->path.path, &srv->sock_id);
        close(srv->listen_fd);
        srv_free(srv);
        return r;
    }
    snprintf(g_exit_path, sizeof g_exit_path, "%s", srv->path.path);
    g_exit_id = srv->sock_id;
    atomic_store(&g_exit_owner, srv->pid);
    atomic_store(&g_fd_slots, srv->fd_slots);
    at__export_attach_set_consumer(1);
    *out = srv;
    return 0;
}

int at__export_start(const at_export_config_t *cfg)
{
    pthread_once(&g_once, once_init);
    pthread_mutex_lock(&g_lock);
    int r = 0;
    if (g_srv == NULL) {
        r = srv_start(cfg, &g_srv);
        if (r != 0)
            g_srv = NULL;
    }
    if (r == 0)
        g_refs++;
    pthread_mutex_unlock(&g_lock);
    return r;
}

void at__export_stop(void)
{
    pthread_mutex_lock(&g_lock);
    at_export_srv_t *srv = g_srv;
    if (srv == NULL || --g_refs > 0) {
        pthread_mutex_unlock(&g_lock);
        return;
    }
    assert(!pthread_equal(pthread_self(), srv->thread));
    at__export_attach_set_consumer(0);
    atomic_store(&g_fd_slots, NULL);
    atomic_store(&srv->stopping, 1);
    uv_async_send(&srv->wake);
    pthread_join(srv->thread, NULL);
    uv_loop_close(&srv->loop);
    at__export_unlink_if_ours(srv->path.path, &srv->sock_id);
    atomic_store(&g_exit_owner, 0);
    close(srv->listen_fd);
    g_srv = NULL;
    pthread_mutex_unlock(&g_lock);
    srv_free(srv);
}

bool at__export_running(void)
{
    pthread_mutex_lock(&g_lock);
    bool r = g_srv != NULL;
    pthread_mutex_unlock(&g_lock);
    return r;
}

int at__export_socket_path(char *buf, size_t size)
{
    pthread_mutex_lock(&g_lock);
    int r = -ENOENT;
    if (g_srv != NULL) {
        snprintf(buf, size, "%s", g_srv->path.path);
        r = 0;
    }
    pthread_mutex_unlock(&g_lock);
    return r;
}

void at__export_loopreq_done(at_export_loopreq_t *r)
{
    pthread_mutex_lock(&g_lock);
    at_export_srv_t *srv = g_srv;
    if (srv != NULL) {
        pthread_mutex_lock(&srv->done_lock);
        r->next = srv->done;
        srv->done = r;
        pthread_mutex_unlock(&srv->done_lock);
        uv_async_send(&srv->wake);
    } else {
        at__export_loopreq_free(r);
    }
    pthread_mutex_unlock(&g_lock);
}
