/* export_server.c: the exporter's life — start and stop (one exporter per process, counted
 * references), the thread with its own uv_loop_t, its tick and wake-up, the listening socket,
 * and fork and exit handling. Clients are export_client.c's, what they say export_dispatch.c's. */
#include "export_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

static void listen_cb(uv_poll_t *h, int status, int events);

/* ---- the listener --------------------------------------------------------------------------- */

static void listen_stop(at_export_srv_t *srv)
{
    if (srv->accepting) {
        uv_poll_stop(&srv->listen_poll);
        srv->accepting = false;
    }
}

static void backoff_cb(uv_timer_t *t)
{
    at__export_listen_start(t->data);
}

static void listen_cb(uv_poll_t *h, int status, int events)
{
    at_export_srv_t *srv = h->data;
    for (int i = 0; i < AT_EXPORT_ACCEPT_BURST; i++) {
        /* Beyond the limit plus a few (which are told why and closed), stop accepting:
         * connections wait in the backlog until someone leaves. */
        if (srv->nclients >= srv->cfg.max_clients + AT_EXPORT_ACCEPT_SLACK) {
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
                at__log(AT__LOG_WARNING, "exporter: accept: %s; pausing accepts for 1 s",
                        strerror(errno));
                listen_stop(srv);
                uv_timer_start(&srv->backoff, backoff_cb, AT_EXPORT_ACCEPT_BACKOFF_MS, 0);
            }
            return;
        }
        at__export_client_accept(srv, fd);
    }
}

void at__export_listen_start(at_export_srv_t *srv)
{
    if (srv->accepting || atomic_load(&srv->stopping))
        return;
    srv->accepting = uv_poll_start(&srv->listen_poll, UV_READABLE, listen_cb) == 0;
}

/* ---- the tick: drain, watch, send ----------------------------------------------------------- */

/* One client's turn in the tick: its deadlines (handshake, closing, stalled reader) and, when
 * due, its next update. */
static void client_tick(at_export_srv_t *srv, at_export_client_t *c, uint64_t now)
{
    /* requests left unread while its output was backed up, now that it has drained */
    if (at__export_client_frames_waiting(c))
        at__export_client_read(c);
    if (c->poll_closed)
        return;
    uint64_t stall_ns = (uint64_t)srv->cfg.stall_ms * 1000000u;
    switch (c->state) {
    case CL_HANDSHAKE:
        if (now - c->t_accept <= (uint64_t)srv->cfg.handshake_ms * 1000000u)
            return;
        /* What arrived before the deadline counts, even when this thread could not read it in
         * time (the process was stopped): read first, then judge. */
        at__export_client_read(c);
        if (!c->poll_closed && c->state == CL_HANDSHAKE)
            at__export_client_fail(c, AT_WIRE_ST_TIMEOUT,
                                   "no subscribe within the handshake timeout");
        return;
    case CL_CLOSING:
        if (now - c->t_closing > AT_EXPORT_CLOSING_GRACE_MS * 1000000ull)
            at__export_client_close(c);
        return;
    case CL_LIVE:
        if (c->oh != NULL && now - c->t_progress > stall_ns)
            at__export_client_flush(c); /* what it read while this thread could not run counts */
        if (c->poll_closed)
            return;
        if (c->oh != NULL && now - c->t_progress > stall_ns) {
            at__log(AT__LOG_WARNING,
                    "exporter: client %llu (pid %ld) read nothing for %u ms; "
                    "disconnecting",
                    (unsigned long long)c->id, (long)c->pid, srv->cfg.stall_ms);
            at__export_client_close(c);
            return;
        }
        if (c->paused || now < c->next_update_ns)
            return;
        if (c->first_wait_until_ns != 0) {
            if (now < c->first_wait_until_ns &&
                at__agg_tasks_pending(srv, at__agg_loop(srv, c->loop_id)))
                return;
            c->first_wait_until_ns = 0;
        }
        /* Still sending the previous update: skip this one. Deltas are computed from what the
         * client has seen, so nothing is lost, only merged. */
        if (c->oh == NULL)
            at__export_client_send_update(c, now);
        return;
    }
}

/* Every AT_EXPORT_TICK_MS: answers from loop threads, the rings drained into the mirror, the
 * watchdog, loop requests past their deadline, then each client's turn. */
static void tick_cb(uv_timer_t *t)
{
    at_export_srv_t *srv = t->data;
    uint64_t now = at__export_now_ns();
    at__export_loopreq_answer_done(srv);
    at__agg_sync_loops(srv);
    at__agg_drain(srv);
    at__agg_watchdog(srv);
    /* stacks are sampled before the inventory request, whose async wakes an idle loop: a
     * loop_stack request must find the loop as the program left it, not handling our wake */
    at__export_loop_stacks_service(srv, now);
    at__agg_inventory_request(srv, now);
    at__export_loopreq_expire(srv, now);
    at_export_client_t *next;
    for (at_export_client_t *c = srv->clients; c != NULL; c = next) {
        next = c->next;
        client_tick(srv, c, now);
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
    at__export_loopreq_answer_done(srv);
    if (!atomic_load(&srv->stopping))
        return;
    /* Stop: say bye to every client, close everything, let uv_run return. */
    at_wire_bye_t bye = {.reason = "process exiting"};
    while (srv->clients != NULL) {
        at_export_client_t *c = srv->clients;
        at_wire_buf_reset(&srv->wbuf);
        if (at_wire_encode_bye(&srv->wbuf, &bye) == 0)
            at__export_client_send_last(c, &srv->wbuf);
        at__export_client_close(c);
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
        at__log(AT__LOG_WARNING, "exporter: %s=%.64s is not a number in %u..%u; using %u", name, s,
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

/* The configuration in force: the caller's, its zero fields from the environment or the
 * defaults (export_limits.h). The caller's strings are not kept. */
static void srv_configure(at_export_srv_t *srv, const at_export_config_t *cfg)
{
    if (cfg != NULL)
        srv->cfg = *cfg;
    if (srv->cfg.max_clients == 0)
        srv->cfg.max_clients = env_uint("ASYNCTOP_MAX_CLIENTS", AT_EXPORT_DEFAULT_MAX_CLIENTS, 1,
                                        AT_EXPORT_MAX_CLIENTS_MAX);
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
}

/* Resolves the socket path, prepares its directory (removing stale sockets) and listens.
 * 0, 1 for ASYNCTOP_SOCKET=off, or a negative errno with the reason logged. */
static int srv_listen(at_export_srv_t *srv, const char *socket_path)
{
    char err[256] = "";
    int r = at__export_path_resolve(&srv->path, socket_path, srv->pid, err, sizeof err);
    if (r == 1)
        return 1;
    if (r == 0 && srv->path.dir[0] != '\0') {
        r = at__export_dir_prepare(srv->path.dir, geteuid(), err, sizeof err);
        if (r == 0) {
            int n = at__export_dir_clean_stale(srv->path.dir, srv->pid);
            if (n > 0)
                at__log(AT__LOG_INFO, "exporter: removed %d stale socket%s in %s", n,
                        n == 1 ? "" : "s", srv->path.dir);
        }
    }
    if (r == 0) {
        r = at__export_listen(srv->path.path, AT_EXPORT_LISTEN_BACKLOG, &srv->sock_id, err,
                              sizeof err);
        if (r >= 0) {
            srv->listen_fd = r;
            r = 0;
        }
    }
    if (r != 0)
        at__log(AT__LOG_ERROR, "exporter: refusing to start: %s", err);
    return r;
}

/* The exporter loop's handles (wake-up, listener, tick, backoff), the fd slots and the
 * scratch buffer; the listener and the tick are started. */
static void srv_open_loop(at_export_srv_t *srv)
{
    read_cmdline(srv);
    /* The fd slots: the listener, then one per client (at most max_clients + slack at once). */
    srv->nfd_slots = g_fd_nslots = AT_EXPORT_FD_SLOTS(srv->cfg.max_clients);
    for (unsigned i = 0; i < srv->nfd_slots; i++)
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
    at__profile_init(srv);
    at__export_listen_start(srv);
    uv_timer_start(&srv->tick, tick_cb, AT_EXPORT_TICK_MS, AT_EXPORT_TICK_MS);
    if (at__export_sample_install() != 0)
        at__log(AT__LOG_WARNING,
                "exporter: signal %d already has a handler in this program: blocked-loop "
                "stacks are off",
                at__export_sample_signal());
}

/* Starts the exporter thread with every signal blocked but the faults. 0 or a negative errno. */
static int srv_spawn(at_export_srv_t *srv)
{
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
    int r = -pthread_create(&srv->thread, NULL, thread_main, srv);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return r;
}

static int srv_start(const at_export_config_t *cfg, at_export_srv_t **out)
{
    at_export_srv_t *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return -ENOMEM;
    srv_configure(srv, cfg);
    int r = srv_listen(srv, cfg ? cfg->socket_path : NULL);
    if (r != 0) {
        free(srv);
        return r;
    }
    srv->fd_slots = malloc(sizeof(int) * AT_EXPORT_FD_SLOTS(srv->cfg.max_clients));
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
    srv_open_loop(srv);
    r = srv_spawn(srv);
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
