/* export_client.c: one client of the exporter — accepting it (peer credentials, the client
 * limit), reading its frames (paused while its output is backed up), and its bounded output
 * queue; the encoders' last step, sending. Exporter thread. */
#include "export_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

static void client_update_poll(at_export_client_t *c);
static void client_poll_cb(uv_poll_t *h, int status, int events);

/* ---- fd slots (for the fork child) ------------------------------------------------------- */

static void fd_slot_set(at_export_srv_t *srv, int fd, bool add)
{
    for (unsigned i = 0; i < srv->nfd_slots; i++) {
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

void at__export_client_close(at_export_client_t *c)
{
    at_export_srv_t *srv = c->srv;
    if (c->poll_closed)
        return;
    c->poll_closed = true;
    at_export_client_t **pp = &srv->clients;
    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
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
        at__export_listen_start(srv);
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
                c->t_progress = at__export_now_ns();
            return n;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        at__export_client_close(c); /* EPIPE, ECONNRESET: the peer is gone */
        return -1;
    }
}

void at__export_client_flush(at_export_client_t *c)
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
        at__export_client_close(c);
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
        at__log(AT__LOG_WARNING,
                "exporter: client %llu (pid %ld) is not reading: %zu bytes queued; disconnecting",
                (unsigned long long)c->id, (long)c->pid, c->obytes);
        at__export_client_close(c);
        return -ENOBUFS;
    }
    outchunk_t *o = outchunk_new(len);
    if (o == NULL) {
        at__export_client_close(c);
        return -ENOMEM;
    }
    memcpy(o->data, data, len);
    o->len = len;
    *(c->ot != NULL ? &c->ot->next : &c->oh) = o; /* appended to the queue */
    c->ot = o;
    c->obytes += o->size;
    client_update_poll(c);
    return 0;
}

void at__export_client_send_last(at_export_client_t *c, const at_wire_buf_t *b)
{
    if (c->oh == NULL)
        (void)!send(c->fd, b->data, b->len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

int at__export_client_send_update(at_export_client_t *c, uint64_t now)
{
    at_export_srv_t *srv = c->srv;
    at_wire_update_t u;
    int r = at__agg_build_update(srv, c, now, &u);
    if (r != 0)
        return r;
    at_wire_buf_reset(&srv->wbuf);
    r = at_wire_encode_update(&srv->wbuf, &u);
    if (r != 0) {
        at__log(AT__LOG_ERROR, "exporter: cannot encode an update: %s", at_wire_strerror(r));
        return r;
    }
    /* what the update held is the client's from now on */
    c->need_full = false;
    c->seen_gen = srv->agg.gen;
    c->upd_seq++;
    c->next_update_ns = now + (uint64_t)c->interval_ms * 1000000u;
    return at__export_client_send(c, &srv->wbuf);
}

void at__export_send_response(at_export_client_t *c, const at_wire_response_t *r)
{
    at_export_srv_t *srv = c->srv;
    at_wire_buf_reset(&srv->wbuf);
    if (at_wire_encode_response(&srv->wbuf, r) == 0)
        at__export_client_send(c, &srv->wbuf);
}

void at__export_send_error(at_export_client_t *c, uint32_t code, const char *reason, bool fatal)
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
    at__export_send_error(c, code, reason, true);
    if (c->poll_closed)
        return;
    c->state = CL_CLOSING;
    c->t_closing = at__export_now_ns();
    shutdown(c->fd, SHUT_RD);
    at__export_client_flush(c);
}

void at__export_respond_error(at_export_client_t *c, uint64_t id, uint8_t op, uint32_t status,
                              const char *reason)
{
    at_wire_response_t r = {.id = id, .op = op, .status = status, .reason = reason};
    at__export_send_response(c, &r);
}
at_export_client_t *at__export_client_find(at_export_srv_t *srv, uint64_t id)
{
    for (at_export_client_t *c = srv->clients; c != NULL; c = c->next)
        if (c->id == id && !c->poll_closed && c->state != CL_CLOSING)
            return c;
    return NULL;
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
        at__export_dispatch_frame(c, body, len);
        if (c->poll_closed || c->state == CL_CLOSING)
            return false;
    }
    return false;
}

void at__export_client_read(at_export_client_t *c)
{
    for (int rounds = 0; !c->poll_closed && c->state != CL_CLOSING; rounds++) {
        if (!client_take_frames(c) || rounds == AT_EXPORT_READ_ROUNDS)
            break;
        size_t avail = 0;
        uint8_t *p = at_wire_reader_space(&c->rd, AT_EXPORT_RECV_CHUNK, &avail);
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
            at__export_client_close(c);
            return;
        }
        if (n == 0) {
            if (at_wire_reader_pending(&c->rd) != 0)
                at__log(AT__LOG_INFO,
                        "exporter: client %llu (pid %ld) went away in the middle of a frame",
                        (unsigned long long)c->id, (long)c->pid);
            at__export_client_close(c);
            return;
        }
        at_wire_reader_commit(&c->rd, (size_t)n);
    }
    client_update_poll(c);
}

bool at__export_client_frames_waiting(const at_export_client_t *c)
{
    return !c->poll_closed && c->state != CL_CLOSING && !client_backed_up(c) &&
           c->rd.start != c->rd.scan;
}

static void client_poll_cb(uv_poll_t *h, int status, int events)
{
    at_export_client_t *c = h->data;
    if (status < 0) {
        at__export_client_close(c);
        return;
    }
    if (events & UV_WRITABLE)
        at__export_client_flush(c);
    /* readable, or drained enough to handle the requests left waiting */
    if (!c->poll_closed && ((events & UV_READABLE) || at__export_client_frames_waiting(c)))
        at__export_client_read(c);
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
    at__log(AT__LOG_INFO,
            "exporter: client %llu (pid %ld) had not subscribed when the server was full; closed "
            "to make room",
            (unsigned long long)old->id, (long)old->pid);
    at_wire_error_t e = {.code = AT_WIRE_ST_TOO_MANY_CLIENTS,
                         .reason = "too many clients: this connection had not subscribed and "
                                   "a new one took its place",
                         .fatal = true};
    at_wire_buf_reset(&srv->wbuf);
    if (at_wire_encode_error(&srv->wbuf, &e) == 0)
        at__export_client_send_last(old, &srv->wbuf);
    at__export_client_close(old); /* at once: its slot is the newcomer's */
}

void at__export_client_accept(at_export_srv_t *srv, int fd)
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
    c->t_accept = c->t_progress = at__export_now_ns();
    at_wire_reader_init(&c->rd, AT_WIRE_MAX_FRAME_C2S);
    c->next = srv->clients;
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
        at__log(AT__LOG_WARNING, "exporter: refused client pid %ld: %s", (long)cred.pid, reason);
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
    at__export_send_hello(c);
}
