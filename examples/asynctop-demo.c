/* asynctop-demo.c: a small but realistic service on the asynctop runtime that exercises
 * everything asynctop shows: a key-value TCP server with a task per connection and clients
 * talking to it, a producer/consumer pipeline on a bounded queue with blocking work on the
 * executor, tasks waiting on locks and events, a periodic slow callback, an occasional stuck
 * one, tasks that fail and are never joined, a coroutine that is never awaited, a wrong-thread
 * call and a handle left open. It runs until SIGINT/SIGTERM (or --seconds), then shuts down
 * cleanly: every task is cancelled and joined, and the loop's close report is printed.
 *
 * The bugs are on purpose (each is marked "BUG (on purpose)"): they are what asynctop's
 * Exceptions and Slow screens are for. Start it and attach with `asynctop <pid>`. */
#include <asynctop.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Functions a task calls on its way to an await point stay real frames (not inlined, cloned
 * or tail-called: meson builds this file with -fno-optimize-sibling-calls), so that
 * suspension stacks read like the code: client_main > run_session > do_request > ... */
#if defined(__clang__)
#define STEP __attribute__((noinline))
#else
#define STEP __attribute__((noinline, noclone))
#endif

/* ---- options and shared state ------------------------------------------------------------ */

typedef struct demo_opts {
    int port;         /* 0: any free port */
    int clients;      /* client tasks */
    unsigned seconds; /* 0: until a signal */
    unsigned stuck_s; /* period of the stuck callback, 0: never */
    unsigned slow_ms; /* duration of the periodic slow callback */
    bool quiet;
} demo_opts_t;

typedef struct demo {
    at_loop_t *loop;
    demo_opts_t opts;
    at_stream_t *listener;
    int port;
    bool stopping;
    at_event_t *shutdown;     /* set by SIGINT/SIGTERM or --seconds */
    at_event_t *flush_wanted; /* set every few seconds; the metrics flusher waits on it */
    at_lock_t *store_lock;    /* the key-value store (held across the journal write) */
    at_lock_t *config_lock;   /* the configuration (held while it reloads) */
    at_queue_t *docs;         /* ingest -> indexer (bounded: the producer waits when full) */
    at_queue_t *audit;        /* connections -> audit writer (mostly empty: it waits) */
    at_semaphore_t *encoder;  /* one hardware encoder slot shared by the thumbnailers */
    uv_signal_t sigint, sigterm;
    at_handle_t routing_timer, journal_timer, flush_timer, stop_timer;
    uint64_t requests, indexed, audited, flushes, avatars;
    uint32_t rng;
} demo_t;

static demo_t demo;

/* A handle the program opens and forgets: at_loop_close reports it (ResourceWarning). */
static uv_timer_t legacy_watchdog;

static unsigned rand_below(unsigned n)
{
    demo.rng = demo.rng * 1103515245u + 12345u;
    return (demo.rng >> 16) % n;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    if (demo.opts.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

/* A macro, not a function, so that a task's creation site is the line that spawns it. */
#define spawn_named(fn, arg, task_name, out)                                                       \
    at_task_spawn(demo.loop, (fn), (arg), &(at_task_opts_t){.name = (task_name)}, (out))

/* ---- the key-value store and its journal ------------------------------------------------- */

#define STORE_SLOTS 64

typedef struct kv {
    char key[32];
    long value;
} kv_t;

static kv_t store[STORE_SLOTS];

static kv_t *store_slot(const char *key)
{
    for (size_t i = 0; i < STORE_SLOTS; i++) {
        if (store[i].key[0] == '\0') {
            snprintf(store[i].key, sizeof store[i].key, "%s", key);
            return &store[i];
        }
        if (strcmp(store[i].key, key) == 0)
            return &store[i];
    }
    return &store[rand_below(STORE_SLOTS)]; /* full: evict one */
}

/* The journal write of every update: 10-30 ms of "disk", with the store lock held. */
STEP static int journal_write(const char *key, long value)
{
    int rc = at_sleep(10 + rand_below(20));
    return rc;
}

STEP static int acquire_store_lock(void)
{
    int rc = at_lock_acquire(demo.store_lock);
    return rc;
}

/* INCR key: returns the new value through *out. */
STEP static int store_update(const char *key, long delta, long *out)
{
    int rc = acquire_store_lock();
    if (rc != 0)
        return rc;
    kv_t *kv = store_slot(key);
    kv->value += delta;
    *out = kv->value;
    rc = journal_write(key, kv->value);
    at_lock_release(demo.store_lock);
    return rc;
}

/* ---- the server: one task per connection ------------------------------------------------- */

typedef struct line_reader {
    at_stream_t *s;
    size_t len;
    char buf[512];
} line_reader_t;

/* Reads one '\n'-terminated line into out (NUL-terminated, without the '\n'). Returns its
 * length, 0 at end of stream, or a negative error (AT_ECANCELED when cancelled). */
STEP static ssize_t read_line(line_reader_t *r, char *out, size_t cap)
{
    for (;;) {
        char *nl = memchr(r->buf, '\n', r->len);
        if (nl) {
            size_t n = (size_t)(nl - r->buf);
            size_t copy = n < cap - 1 ? n : cap - 1;
            memcpy(out, r->buf, copy);
            out[copy] = '\0';
            r->len -= n + 1;
            memmove(r->buf, nl + 1, r->len);
            return (ssize_t)(copy + 1);
        }
        if (r->len == sizeof r->buf)
            return AT_EMSGSIZE;
        ssize_t got = at_stream_read(r->s, r->buf + r->len, sizeof r->buf - r->len);
        if (got <= 0)
            return got;
        r->len += (size_t)got;
    }
}

STEP static ssize_t read_command(line_reader_t *r, char *out, size_t cap)
{
    ssize_t n = read_line(r, out, cap);
    return n;
}

/* Executes one command line; writes the reply into reply. */
STEP static int handle_command(const char *line, char *reply, size_t cap)
{
    char key[32];
    long delta = 1, value = 0;
    if (sscanf(line, "INCR %31s %ld", key, &delta) >= 1) {
        int rc = store_update(key, delta, &value);
        if (rc != 0)
            return rc;
        snprintf(reply, cap, "OK %ld\n", value);
    } else if (sscanf(line, "GET %31s", key) == 1) {
        snprintf(reply, cap, "OK %ld\n", store_slot(key)->value);
    } else {
        snprintf(reply, cap, "ERR unknown command\n");
    }
    demo.requests++;
    return 0;
}

static int serve_connection(void *arg, void **result)
{
    line_reader_t r = {.s = arg};
    char line[128], reply[64];
    uintptr_t served = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read_command(&r, line, sizeof line);
        if (n <= 0) {
            rc = n == 0 || n == AT_EOF || n == AT_ECONNRESET ? 0 : (int)n;
            break;
        }
        rc = handle_command(line, reply, sizeof reply);
        if (rc == 0)
            rc = at_stream_write(r.s, reply, strlen(reply));
        if (rc != 0)
            break;
        served++;
    }
    at_stream_close(r.s);
    /* one audit record per finished session (the audit writer may be gone at shutdown) */
    if (!demo.stopping)
        at_queue_try_put(demo.audit, (void *)(served + 1));
    return rc == AT_ECANCELED ? rc : 0;
}

static int kv_server(void *arg, void **result)
{
    unsigned n = 0;
    for (;;) {
        at_stream_t *conn;
        int rc = at_stream_accept(demo.listener, &conn);
        if (rc == AT_ECANCELED)
            break;
        if (rc != 0) {
            at_stream_close(demo.listener);
            demo.listener = NULL;
            return at_task_raise(rc, "accept on port %d: %s", demo.port, at_strerror(rc));
        }
        char name[32];
        snprintf(name, sizeof name, "conn-%u", ++n);
        if (spawn_named(serve_connection, conn, name, NULL) != 0)
            at_stream_close(conn);
    }
    at_stream_close(demo.listener);
    demo.listener = NULL;
    return AT_ECANCELED;
}

/* ---- clients ------------------------------------------------------------------------------ */

STEP static int send_request(at_stream_t *s, const char *req)
{
    int rc = at_stream_write(s, req, strlen(req));
    return rc;
}

STEP static int await_reply(line_reader_t *r, char *reply, size_t cap)
{
    ssize_t n = read_line(r, reply, cap);
    return n > 0 ? 0 : n == 0 ? AT_EOF : (int)n;
}

STEP static int do_request(line_reader_t *r, const char *req, char *reply, size_t cap)
{
    int rc = send_request(r->s, req);
    if (rc == 0)
        rc = await_reply(r, reply, cap);
    return rc;
}

STEP static int think(unsigned base_ms, unsigned jitter_ms)
{
    int rc = at_sleep(base_ms + rand_below(jitter_ms));
    return rc;
}

/* One connection: 5-15 requests with think time between them. */
STEP static int run_session(int id)
{
    at_stream_t *s;
    int rc = at_tcp_connect(demo.loop, "127.0.0.1", demo.port, &s);
    if (rc != 0)
        return rc;
    line_reader_t r = {.s = s};
    char req[64], reply[64];
    unsigned n = 5 + rand_below(10);
    for (unsigned i = 0; i < n && rc == 0; i++) {
        if (i % 3 == 2)
            snprintf(req, sizeof req, "GET hits:%d\n", id);
        else
            snprintf(req, sizeof req, "INCR hits:%d %u\n", id, 1 + rand_below(3));
        rc = do_request(&r, req, reply, sizeof reply);
        if (rc == 0)
            rc = think(150, 600);
    }
    at_stream_close(s);
    return rc;
}

static int client_main(void *arg, void **result)
{
    int id = (int)(intptr_t)arg;
    for (;;) {
        int rc = run_session(id);
        if (rc == AT_ECANCELED)
            return rc;
        rc = think(rc == 0 ? 300 : 1000, 500); /* reconnect */
        if (rc == AT_ECANCELED)
            return rc;
    }
}

/* Joins its children in order (while they run, it waits on a task); when cancelled it stops
 * waiting and returns AT_ECANCELED (the shutdown cancels the children too). */
static int join_all(at_task_t **tasks, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc != AT_ECANCELED; i++)
        if (at_task_join(tasks[i], NULL) == AT_ECANCELED && at_task_cancel(tasks[i], NULL))
            rc = AT_ECANCELED; /* we were cancelled (the child had not ended) */
    for (size_t i = 0; i < n; i++)
        at_task_unref(tasks[i]);
    return rc;
}

static int clients(void *arg, void **result)
{
    at_task_t *t[64];
    size_t n = 0;
    for (int i = 1; i <= demo.opts.clients && n < 64; i++) {
        char name[32];
        snprintf(name, sizeof name, "client-%d", i);
        if (spawn_named(client_main, (void *)(intptr_t)i, name, &t[n]) == 0)
            n++;
    }
    return join_all(t, n);
}

/* ---- the pipeline: producer, bounded queue, consumer with blocking work ------------------ */

/* Blocking work on a pool thread: "parse and index" one document (100-150 ms). */
static void *index_document(void *arg, at_error_t **err)
{
    uintptr_t doc = (uintptr_t)arg;
    struct timespec ts = {0, (long)(100 + doc % 50) * 1000000L};
    nanosleep(&ts, NULL);
    return NULL;
}

static void noop_callback(at_loop_t *loop, void *arg)
{
}

/* BUG (on purpose): a pool thread schedules a callback directly instead of with
 * at_call_soon_threadsafe; the runtime refuses it (AT_EWRONGTHREAD) and reports it. */
static void *report_progress_from_worker(void *arg, at_error_t **err)
{
    at_call_soon(demo.loop, noop_callback, NULL, "report_progress", NULL);
    return NULL;
}

STEP static int run_on_executor(at_work_fn fn, void *arg, const char *name)
{
    at_future_t *fut;
    int rc = at_executor_submit(demo.loop, fn, arg, NULL, name, &fut);
    if (rc != 0)
        return rc;
    rc = at_await(fut, NULL);
    at_future_unref(fut);
    return rc;
}

STEP static int next_document(void **doc)
{
    int rc = at_queue_get(demo.docs, doc);
    return rc;
}

static int indexer(void *arg, void **result)
{
    for (;;) {
        void *doc;
        int rc = next_document(&doc);
        if (rc == 0)
            rc = run_on_executor(index_document, doc, "index_document");
        if (rc == AT_ECANCELED)
            return rc;
        demo.indexed++;
        if (demo.indexed == 10) { /* once, early */
            rc = run_on_executor(report_progress_from_worker, NULL, "report_progress_from_worker");
            if (rc == AT_ECANCELED) /* cancellation is delivered once: never drop it */
                return rc;
        }
    }
}

STEP static int publish_document(uintptr_t doc)
{
    int rc = at_queue_put(demo.docs, (void *)doc);
    return rc;
}

/* Produces a document every 40 ms, faster than the indexer takes them: it mostly waits for
 * room in the queue. */
static int ingest(void *arg, void **result)
{
    for (uintptr_t doc = 1;; doc++) {
        int rc = publish_document(doc);
        if (rc == 0)
            rc = at_sleep(40);
        if (rc == AT_ECANCELED)
            return rc;
    }
}

STEP static int write_audit_record(uintptr_t record)
{
    int rc = at_sleep(5); /* append to the audit log */
    return rc;
}

/* Consumes one record per finished client session: it mostly waits on an empty queue. */
static int audit_writer(void *arg, void **result)
{
    for (;;) {
        void *rec;
        int rc = at_queue_get(demo.audit, &rec);
        if (rc == 0)
            rc = write_audit_record((uintptr_t)rec);
        if (rc == AT_ECANCELED)
            return rc;
        demo.audited++;
    }
}

static int pipeline(void *arg, void **result)
{
    at_task_t *t[3];
    size_t n = 0;
    if (spawn_named(ingest, NULL, "ingest", &t[n]) == 0)
        n++;
    if (spawn_named(indexer, NULL, "indexer", &t[n]) == 0)
        n++;
    if (spawn_named(audit_writer, NULL, "audit-writer", &t[n]) == 0)
        n++;
    return join_all(t, n);
}

/* ---- configuration: one owner reloading under a lock, readers waiting on it ------------- */

STEP static int fetch_config_from_service(void)
{
    int rc = at_sleep(1500); /* a slow remote call, with the config lock held */
    return rc;
}

STEP static int reload_config(void)
{
    int rc = at_lock_acquire(demo.config_lock);
    if (rc != 0)
        return rc;
    rc = fetch_config_from_service();
    at_lock_release(demo.config_lock);
    return rc;
}

static int config_owner(void *arg, void **result)
{
    for (;;) {
        int rc = reload_config();
        if (rc == 0)
            rc = at_sleep(250);
        if (rc == AT_ECANCELED)
            return rc;
    }
}

STEP static int lookup_setting(const char *name)
{
    int rc = at_lock_acquire(demo.config_lock);
    if (rc == 0)
        at_lock_release(demo.config_lock);
    return rc;
}

static int config_reader(void *arg, void **result)
{
    unsigned period = 150 + 70 * (unsigned)(uintptr_t)arg;
    for (;;) {
        int rc = lookup_setting("max_connections");
        if (rc == 0)
            rc = at_sleep(period);
        if (rc == AT_ECANCELED)
            return rc;
    }
}

static int config(void *arg, void **result)
{
    at_task_t *t[4];
    size_t n = 0;
    if (spawn_named(config_owner, NULL, "config-owner", &t[n]) == 0)
        n++;
    for (uintptr_t i = 1; i <= 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "config-reader-%u", (unsigned)i);
        if (spawn_named(config_reader, (void *)i, name, &t[n]) == 0)
            n++;
    }
    return join_all(t, n);
}

/* ---- thumbnails: tasks sharing one slot through a semaphore ------------------------------ */

STEP static int encode_thumbnail(unsigned n)
{
    int rc = at_semaphore_acquire(demo.encoder);
    if (rc != 0)
        return rc;
    rc = at_sleep(400 + rand_below(200)); /* the encoder is busy */
    at_semaphore_release(demo.encoder);
    return rc;
}

static int thumbnailer(void *arg, void **result)
{
    for (unsigned n = 0;; n++) {
        int rc = encode_thumbnail(n);
        if (rc == 0)
            rc = at_sleep(50);
        if (rc == AT_ECANCELED)
            return rc;
    }
}

static int thumbnails(void *arg, void **result)
{
    at_task_t *t[2];
    size_t n = 0;
    for (int i = 1; i <= 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "thumbnailer-%d", i);
        if (spawn_named(thumbnailer, NULL, name, &t[n]) == 0)
            n++;
    }
    return join_all(t, n);
}

/* ---- metrics: a task waiting on an event -------------------------------------------------- */

STEP static int wait_for_flush_request(void)
{
    int rc = at_event_wait(demo.flush_wanted);
    return rc;
}

static int metrics_flusher(void *arg, void **result)
{
    for (;;) {
        int rc = wait_for_flush_request();
        if (rc == 0) {
            at_event_clear(demo.flush_wanted);
            rc = at_sleep(30); /* send the metrics */
        }
        if (rc == AT_ECANCELED)
            return rc;
        demo.flushes++;
    }
}

/* ---- profiles: tasks that fail and are never joined, a coroutine never awaited ---------- */

STEP static int open_upstream(at_stream_t **out)
{
    /* the avatar service is down: nobody listens on port 1 */
    int rc = at_tcp_connect(demo.loop, "127.0.0.1", 1, out);
    return rc;
}

static int fetch_avatar(void *arg, void **result)
{
    unsigned user = (unsigned)(uintptr_t)arg;
    at_stream_t *s;
    int rc = open_upstream(&s);
    if (rc == AT_ECANCELED)
        return rc;
    if (rc != 0)
        return at_task_raise(rc, "fetch avatar of user %u: avatar service: %s", user,
                             at_strerror(rc));
    at_stream_close(s);
    return at_task_raise(AT_EPROTO, "fetch avatar of user %u: unexpected answer", user);
}

/* Blocking work on a pool thread: the archive is not there. */
static void *read_profile_archive(void *arg, at_error_t **err)
{
    *err = at_error_new(AT_ENOENT, NULL, "profile archive /var/lib/profiles/%u.tar: %s",
                        (unsigned)(uintptr_t)arg, at_strerror(AT_ENOENT));
    return NULL;
}

static int warm_profile_cache(void *arg, void **result)
{
    return at_sleep(10);
}

STEP static void refresh_profiles(unsigned round)
{
    /* BUG (on purpose): the cache warm-up is created but never awaited or spawned. */
    at_coro_t *warm;
    at_task_opts_t opts = {.name = "warm_profile_cache"};
    if (at_coro_new(demo.loop, warm_profile_cache, NULL, &opts, &warm) == 0)
        at_coro_drop(warm);
    /* BUG (on purpose): blocking work whose future is dropped unread; it fails, and nobody
     * ever sees the error but the "Future exception was never retrieved" report. */
    at_future_t *fut;
    if (at_executor_submit(demo.loop, read_profile_archive, (void *)(uintptr_t)round, NULL,
                           "read_profile_archive", &fut) == 0)
        at_future_unref(fut);
}

static int profile_service(void *arg, void **result)
{
    for (unsigned round = 0;; round++) {
        /* BUG (on purpose): fire and forget; nobody joins the task or reads its error. */
        char name[32];
        unsigned user = 1000 + round * 7;
        snprintf(name, sizeof name, "fetch-avatar-%u", user);
        spawn_named(fetch_avatar, (void *)(uintptr_t)user, name, NULL);
        demo.avatars++;
        if (round % 5 == 0)
            refresh_profiles(round);
        int rc = at_sleep(6000);
        if (rc == AT_ECANCELED)
            return rc;
    }
}

/* ---- callbacks on the loop itself: a slow one, a stuck one, a flush request ------------- */

/* Burns CPU for `ms` (a CPU-bound computation done on the loop thread by mistake). */
STEP static uint64_t hash_prefixes(unsigned ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t h = 1469598103934665603u;
    for (;;) {
        for (int i = 0; i < 10000; i++)
            h = (h ^ (uint64_t)i) * 1099511628211u;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000000000LL + (t.tv_nsec - t0.tv_nsec) >= ms * 1000000LL)
            return h;
    }
}

STEP static uint64_t recompute_routes(unsigned ms)
{
    uint64_t h = hash_prefixes(ms);
    return h + 1;
}

static void rebuild_routing_table(at_loop_t *loop, void *arg)
{
    volatile uint64_t sink = recompute_routes(demo.opts.slow_ms + rand_below(100));
    (void)sink;
    if (!demo.stopping)
        at_call_later(loop, 2000, rebuild_routing_table, NULL, "rebuild_routing_table",
                      &demo.routing_timer);
}

/* A synchronous fsync on the loop thread: the loop is stuck for seconds. */
STEP static void fsync_journal(void)
{
    struct timespec ts = {4, 0};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void flush_journal_sync(at_loop_t *loop, void *arg)
{
    fsync_journal();
    if (!demo.stopping)
        at_call_later(loop, (uint64_t)demo.opts.stuck_s * 1000, flush_journal_sync, NULL,
                      "flush_journal_sync", &demo.journal_timer);
}

static void request_metrics_flush(at_loop_t *loop, void *arg)
{
    at_event_set(demo.flush_wanted);
    if (!demo.stopping)
        at_call_later(loop, 3000, request_metrics_flush, NULL, "request_metrics_flush",
                      &demo.flush_timer);
}

/* ---- start and shutdown ------------------------------------------------------------------ */

static void request_shutdown(at_loop_t *loop, void *arg)
{
    at_event_set(demo.shutdown);
}

static void on_signal(uv_signal_t *h, int signum)
{
    if (at_event_is_set(demo.shutdown)) {
        fprintf(stderr, "asynctop-demo: second signal, exiting at once\n");
        _exit(128 + signum);
    }
    say("asynctop-demo: %s, shutting down\n", strsignal(signum));
    at_event_set(demo.shutdown);
}

typedef struct task_list {
    at_task_t *self;
    at_task_t **v;
    size_t n, cap;
} task_list_t;

static void collect_task(at_task_t *task, void *arg)
{
    task_list_t *l = arg;
    if (task == l->self || l->n == l->cap)
        return;
    l->v[l->n++] = at_task_ref(task);
}

/* Cancels every other task and waits for each to end; repeats while tasks spawned
 * meanwhile remain. Returns how many were cancelled. */
STEP static size_t cancel_and_join_everything(void)
{
    size_t total = 0;
    for (int round = 0; round < 10; round++) {
        task_list_t l = {.self = at_task_current(), .cap = 4096};
        l.v = calloc(l.cap, sizeof *l.v);
        if (!l.v)
            return total;
        at_loop_tasks(demo.loop, collect_task, &l);
        for (size_t i = 0; i < l.n; i++)
            at_task_cancel(l.v[i], "shutdown");
        for (size_t i = 0; i < l.n; i++) {
            at_task_join(l.v[i], NULL);
            at_task_unref(l.v[i]);
        }
        free(l.v);
        total += l.n;
        if (l.n == 0)
            break;
    }
    return total;
}

static void signal_closed(uv_handle_t *h)
{
}

/* The root of the task tree: starts the services, waits for the shutdown event, then stops
 * everything in order. */
static int app(void *arg, void **result)
{
    spawn_named(kv_server, NULL, "kv-server", NULL);
    spawn_named(clients, NULL, "clients", NULL);
    spawn_named(pipeline, NULL, "pipeline", NULL);
    spawn_named(config, NULL, "config", NULL);
    spawn_named(thumbnails, NULL, "thumbnails", NULL);
    spawn_named(metrics_flusher, NULL, "metrics-flusher", NULL);
    spawn_named(profile_service, NULL, "profile-service", NULL);

    at_event_wait(demo.shutdown);

    demo.stopping = true;
    at_handle_cancel(demo.loop, demo.routing_timer);
    at_handle_cancel(demo.loop, demo.journal_timer);
    at_handle_cancel(demo.loop, demo.flush_timer);
    at_handle_cancel(demo.loop, demo.stop_timer);
    uv_close((uv_handle_t *)&demo.sigint, signal_closed);
    uv_close((uv_handle_t *)&demo.sigterm, signal_closed);
    size_t n = cancel_and_join_everything();
    say("asynctop-demo: %zu tasks cancelled and joined; %" PRIu64 " requests served, %" PRIu64
        " documents indexed, %" PRIu64 " sessions audited\n",
        n, demo.requests, demo.indexed, demo.audited);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: asynctop-demo [--port N] [--clients N] [--seconds N] [--stuck-every S]\n"
               "                     [--slow-ms MS] [--quiet]\n"
               "\n"
               "A small service on the asynctop runtime to try asynctop on: a key-value server on\n"
               "127.0.0.1 with a task per connection and clients talking to it, a producer and\n"
               "consumer on a bounded queue with blocking work on the executor, tasks waiting on\n"
               "locks and events, a slow callback every 2 s, a stuck one now and then, and a few\n"
               "bugs on purpose (failed tasks nobody joins, a coroutine never awaited, a wrong-\n"
               "thread call, a handle left open). Debug mode is on. Attach with: asynctop PID\n"
               "\n"
               "  --port N         the server's port (default 0: any free port)\n"
               "  --clients N      client tasks (default 4, at most 64)\n"
               "  --seconds N      stop after N seconds (default: run until SIGINT or SIGTERM)\n"
               "  --stuck-every S  block the loop for 4 s every S seconds, first after 12 s\n"
               "                   (default 20; 0: never)\n"
               "  --slow-ms MS     how long the periodic slow callback runs (default 250)\n"
               "  --quiet          print only the demo's own errors (not the runtime's reports)\n"
               "  -h, --help       this help\n");
}

static int parse_uint(const char *s, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, demo_opts_t *o)
{
    *o = (demo_opts_t){.clients = 4, .stuck_s = 20, .slow_ms = 250};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            o->quiet = true;
        } else if (i + 1 < argc && !strcmp(a, "--port") && !parse_uint(argv[i + 1], 65535, &v)) {
            o->port = (int)v, i++;
        } else if (i + 1 < argc && !strcmp(a, "--clients") && !parse_uint(argv[i + 1], 64, &v)) {
            o->clients = (int)v, i++;
        } else if (i + 1 < argc && !strcmp(a, "--seconds") &&
                   !parse_uint(argv[i + 1], 86400 * 365, &v)) {
            o->seconds = (unsigned)v, i++;
        } else if (i + 1 < argc && !strcmp(a, "--stuck-every") &&
                   !parse_uint(argv[i + 1], 86400, &v)) {
            o->stuck_s = (unsigned)v, i++;
        } else if (i + 1 < argc && !strcmp(a, "--slow-ms") && !parse_uint(argv[i + 1], 60000, &v)) {
            o->slow_ms = (unsigned)v, i++;
        } else {
            fprintf(stderr, "asynctop-demo: bad argument '%s'%s\n", a,
                    i + 1 < argc ? "" : " (or missing value)");
            usage(stderr);
            return -1;
        }
    }
    return 0;
}

static int setup(void)
{
    int rc;
    if ((rc = at_event_new(demo.loop, &demo.shutdown)) != 0 ||
        (rc = at_event_new(demo.loop, &demo.flush_wanted)) != 0 ||
        (rc = at_lock_new(demo.loop, &demo.store_lock)) != 0 ||
        (rc = at_lock_new(demo.loop, &demo.config_lock)) != 0 ||
        (rc = at_queue_new(demo.loop, 8, &demo.docs)) != 0 ||
        (rc = at_queue_new(demo.loop, 64, &demo.audit)) != 0 ||
        (rc = at_semaphore_new(demo.loop, 1, &demo.encoder)) != 0) {
        fprintf(stderr, "asynctop-demo: %s\n", at_strerror(rc));
        return rc;
    }
    rc = at_tcp_listen(demo.loop, "127.0.0.1", demo.opts.port, 128, &demo.listener);
    if (rc != 0) {
        fprintf(stderr, "asynctop-demo: cannot listen on 127.0.0.1:%d: %s\n", demo.opts.port,
                at_strerror(rc));
        return rc;
    }
    demo.port = at_stream_port(demo.listener);

    uv_loop_t *uv = at_loop_uv(demo.loop);
    uv_signal_init(uv, &demo.sigint);
    uv_signal_init(uv, &demo.sigterm);
    uv_signal_start(&demo.sigint, on_signal, SIGINT);
    uv_signal_start(&demo.sigterm, on_signal, SIGTERM);
    /* BUG (on purpose): opened and never closed; at_loop_close reports it. */
    uv_timer_init(uv, &legacy_watchdog);

    at_call_later(demo.loop, 1000, rebuild_routing_table, NULL, "rebuild_routing_table",
                  &demo.routing_timer);
    if (demo.opts.stuck_s)
        at_call_later(demo.loop, 1000 * (uint64_t)(demo.opts.stuck_s < 12 ? demo.opts.stuck_s : 12),
                      flush_journal_sync, NULL, "flush_journal_sync", &demo.journal_timer);
    at_call_later(demo.loop, 1500, request_metrics_flush, NULL, "request_metrics_flush",
                  &demo.flush_timer);
    if (demo.opts.seconds)
        at_call_later(demo.loop, (uint64_t)demo.opts.seconds * 1000, request_shutdown, NULL,
                      "request_shutdown", &demo.stop_timer);
    return 0;
}

/* Frees what setup made (any part of it). Every task has ended: nobody waits on these. */
static void teardown(void)
{
    void *item;
    if (demo.docs) {
        while (at_queue_try_get(demo.docs, &item) == 0)
            ;
        at_queue_free(demo.docs);
    }
    if (demo.audit) {
        while (at_queue_try_get(demo.audit, &item) == 0)
            ;
        at_queue_free(demo.audit);
    }
    if (demo.encoder)
        at_semaphore_free(demo.encoder);
    if (demo.store_lock)
        at_lock_free(demo.store_lock);
    if (demo.config_lock)
        at_lock_free(demo.config_lock);
    if (demo.flush_wanted)
        at_event_free(demo.flush_wanted);
    if (demo.shutdown)
        at_event_free(demo.shutdown);
}

/* How to run asynctop from here: the build tree's (../inspector/asynctop next to
 * examples/), the one installed next to us, else by name. */
static const char *inspector_path(void)
{
    static char path[PATH_MAX + 32];
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return "asynctop";
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return "asynctop";
    *slash = '\0';
    const char *tries[] = {"/../inspector/asynctop", "/asynctop"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s%s", self, tries[i]);
        char *real = realpath(path, NULL);
        if (real && access(real, X_OK) == 0) {
            snprintf(path, sizeof path, "%s", real);
            free(real);
            return path;
        }
        free(real);
    }
    return "asynctop";
}

/* --quiet: the runtime's reports go to the inspector only. */
static void quiet_sink(int level, const char *msg, void *arg)
{
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv, &demo.opts) != 0)
        return 2;
    demo.rng = (uint32_t)getpid();
    at_set_debug(true); /* creation stacks for tasks, futures and errors */
    if (demo.opts.quiet)
        at_set_log_sink(quiet_sink, NULL); /* debug mode logs everything otherwise */

    int rc = at_loop_new(&demo.loop, NULL);
    if (rc != 0) {
        fprintf(stderr, "asynctop-demo: cannot create the loop: %s\n", at_strerror(rc));
        return 1;
    }
    if (setup() != 0) {
        teardown();
        at_loop_close(demo.loop, NULL);
        return 1;
    }
    at_task_t *root;
    rc = spawn_named(app, NULL, "app", &root);
    if (rc != 0) {
        fprintf(stderr, "asynctop-demo: cannot spawn the app task: %s\n", at_strerror(rc));
        return 1;
    }
    say("asynctop-demo: pid %d, key-value server on 127.0.0.1:%d, %d clients, debug mode on\n"
        "attach with:   %s %d\n"
        "stop with:     Ctrl-C, or kill %d\n",
        (int)getpid(), demo.port, demo.opts.clients, inspector_path(), (int)getpid(),
        (int)getpid());

    at_loop_run(demo.loop, AT_RUN_DEFAULT);

    bool finished = at_future_done(at_task_future(root));
    at_task_unref(root);
    if (finished)
        teardown();
    else /* the primitives may still have waiters: at_loop_close reports the tasks */
        fprintf(stderr, "asynctop-demo: the loop ran out of work with tasks still waiting\n");
    at_close_report_t rep;
    rc = at_loop_close(demo.loop, &rep);
    say("asynctop-demo: loop closed: %zu unclosed handle(s) (the legacy watchdog timer, left "
        "open on purpose), %zu unretrieved error(s), %zu dropped callback(s)\n",
        rep.unclosed_handles, rep.unretrieved_errors, rep.dropped_callbacks);
    at_log_flush(1000);
    return rc == 0 ? 0 : 1;
}
