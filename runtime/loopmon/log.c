/* log.c: levelled logging that never blocks the caller: messages are formatted into a
 * bounded lock-free queue and a logger thread hands them to the sink (stderr by default). */
#include "loopmon.h"

#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define LOG_CAP 256 /* queued messages (power of two) */

enum { REC_TEXT, REC_SLOW };

typedef struct log_rec {
    int level, type;
    void *fn;
    uint64_t ns;
    char name[AT__SITE_NAME_MAX];
    char task[AT__EV_TASK_MAX];
    char msg[AT__LOG_MSG_MAX];
} log_rec_t;

typedef struct log_cell {
    _Atomic uint64_t seq;
    log_rec_t rec;
} log_cell_t;

/* Vyukov's bounded queue: producers claim a cell with a CAS on the tail, the consumer (the
 * logger thread) owns the head. Cell seq == pos: free for the producer at pos; pos + 1: full,
 * for the consumer at pos. */
static log_cell_t log_ring[LOG_CAP];
static _Atomic uint64_t log_tail, log_head;
static _Atomic uint64_t log_enqueued, log_done, log_drops;
static _Atomic int log_level = AT__LOG_INFO;
static _Atomic bool log_level_set; /* a level was chosen: debug mode no longer lowers it */

static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static at__log_sink_fn sink_fn; /* under sink_lock; NULL = stderr */
static void *sink_data;

/* Logger thread state: 0 not started, 1 starting, 2 running, 3 failed to start (then
 * messages are written synchronously by the caller). */
static _Atomic int log_state;
static _Atomic int log_stop;
static pthread_t log_thread;
static sem_t log_sem;

const char *at__log_level_name(int level)
{
    static const char *const names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};
    return level >= 0 && level <= AT__LOG_ERROR ? names[level] : "?";
}

void at__log_set_level(int level)
{
    atomic_store_explicit(&log_level, level, memory_order_relaxed);
    atomic_store_explicit(&log_level_set, true, memory_order_relaxed);
}

int at__log_get_level(void)
{
    return atomic_load_explicit(&log_level, memory_order_relaxed);
}

bool at__log_would_log(int level)
{
    int min = at__log_get_level();
    if (at__debug_enabled() && !atomic_load_explicit(&log_level_set, memory_order_relaxed))
        min = AT__LOG_DEBUG; /* debug mode's default, as asyncio's docs advise */
    return level >= min;
}

void at__log_set_sink(at__log_sink_fn fn, void *data)
{
    pthread_mutex_lock(&sink_lock);
    sink_fn = fn;
    sink_data = data;
    pthread_mutex_unlock(&sink_lock);
}

uint64_t at__log_dropped(void)
{
    return atomic_load_explicit(&log_drops, memory_order_relaxed);
}

static void sink_stderr(int level, const char *msg)
{
    char line[AT__LOG_MSG_MAX + 64];
    int n = snprintf(line, sizeof line, "asynctop: %s: %s\n", at__log_level_name(level), msg);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = (int)sizeof line - 1;
    fwrite(line, 1, (size_t)n, stderr);
    fflush(stderr);
}

/* Turns a record into its final text (symbolising slow-callback sites here, off the loop
 * thread) and gives it to the sink. */
static void deliver(log_rec_t *r)
{
    const char *msg = r->msg;
    if (r->type == REC_SLOW) {
        at__sym_t sym;
        int rc = at__sym_lookup(r->fn, false, &sym);
        char name[sizeof sym.func + 8], where[sizeof sym.file + 32];
        if (r->name[0])
            snprintf(name, sizeof name, "%s", r->name);
        else if (rc == 0 && sym.func[0])
            snprintf(name, sizeof name, "%s", sym.func);
        else
            snprintf(name, sizeof name, "%p", r->fn);
        if (rc == 0 && sym.file[0] && sym.line)
            snprintf(where, sizeof where, "%s:%u", sym.file, sym.line);
        else if (sym.lib[0])
            snprintf(where, sizeof where, "%s+0x%llx", sym.lib, (unsigned long long)sym.offset);
        else
            snprintf(where, sizeof where, "%p", r->fn);
        int n = snprintf(r->msg, sizeof r->msg, "Executing <%s at %s> took %.3f seconds", name,
                         where, (double)r->ns / 1e9);
        if (r->task[0] && n > 0 && (size_t)n < sizeof r->msg)
            snprintf(r->msg + n, sizeof r->msg - (size_t)n, " in task '%s'", r->task);
    }
    pthread_mutex_lock(&sink_lock);
    if (sink_fn)
        sink_fn(r->level, msg, sink_data);
    else
        sink_stderr(r->level, msg);
    pthread_mutex_unlock(&sink_lock);
}

static int ring_pop(log_rec_t *out)
{
    uint64_t pos = atomic_load_explicit(&log_head, memory_order_relaxed);
    log_cell_t *c = &log_ring[pos & (LOG_CAP - 1)];
    if (atomic_load_explicit(&c->seq, memory_order_acquire) != pos + 1)
        return 0;
    *out = c->rec;
    atomic_store_explicit(&c->seq, pos + LOG_CAP, memory_order_release);
    atomic_store_explicit(&log_head, pos + 1, memory_order_relaxed);
    return 1;
}

static void drain(void)
{
    log_rec_t r;
    while (ring_pop(&r)) {
        deliver(&r);
        atomic_fetch_add_explicit(&log_done, 1, memory_order_release);
    }
}

static void *logger_main(void *arg)
{
    (void)arg;
    for (;;) {
        while (sem_wait(&log_sem) != 0 && errno == EINTR)
            ;
        drain();
        if (atomic_load_explicit(&log_stop, memory_order_acquire)) {
            drain();
            return NULL;
        }
    }
}

static void ring_init_once(void)
{
    for (uint64_t i = 0; i < LOG_CAP; i++)
        atomic_store_explicit(&log_ring[i].seq, i, memory_order_relaxed);
}

static pthread_once_t ring_once = PTHREAD_ONCE_INIT;

/* fork() (rank AT__FORK_LOG): the forking thread holds the sink lock across the fork so that
 * the child never inherits it locked by the logger thread. The child has no logger thread and
 * must not print what the parent had queued (the parent will): it starts with an empty queue
 * and starts a new logger on its next message (also when another thread of the parent was
 * starting one at the fork). */
static void atfork_prepare(void)
{
    pthread_mutex_lock(&sink_lock);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&sink_lock);
}

static void atfork_child(void)
{
    for (uint64_t i = 0; i < LOG_CAP; i++)
        atomic_store_explicit(&log_ring[i].seq, i, memory_order_relaxed);
    atomic_store_explicit(&log_tail, 0, memory_order_relaxed);
    atomic_store_explicit(&log_head, 0, memory_order_relaxed);
    atomic_store_explicit(&log_enqueued, 0, memory_order_relaxed);
    atomic_store_explicit(&log_done, 0, memory_order_relaxed);
    atomic_store_explicit(&log_stop, 0, memory_order_relaxed);
    int st = atomic_load_explicit(&log_state, memory_order_relaxed);
    if (st == 1 || st == 2)
        atomic_store_explicit(&log_state, 0, memory_order_relaxed);
    pthread_mutex_unlock(&sink_lock);
}

static const at__fork_handlers_t fork_handlers = {atfork_prepare, atfork_parent, atfork_child};

__attribute__((constructor)) static void fork_register(void)
{
    at__fork_register(AT__FORK_LOG, &fork_handlers);
}

/* Starts the logger thread if nobody did; returns the state (2 running, 3 failed). */
static int logger_start(void)
{
    int st = atomic_load_explicit(&log_state, memory_order_acquire);
    if (AT__LIKELY(st == 2 || st == 3))
        return st;
    int zero = 0;
    if (atomic_compare_exchange_strong(&log_state, &zero, 1)) {
        atomic_store(&log_stop, 0);
        sem_init(&log_sem, 0, 0);
        /* The logger must not take signals meant for the program. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int rc = pthread_create(&log_thread, NULL, logger_main, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc == 0)
            pthread_setname_np(log_thread, "asynctop-log");
        atomic_store_explicit(&log_state, rc == 0 ? 2 : 3, memory_order_release);
        return rc == 0 ? 2 : 3;
    }
    /* Someone else is starting it: it will be running shortly; queue meanwhile. */
    return 2;
}

/* Queues a copy of *r (or delivers it synchronously if the logger thread cannot start). */
static void enqueue(const log_rec_t *r)
{
    pthread_once(&ring_once, ring_init_once);
    if (logger_start() == 3) { /* no thread (thread creation failed): deliver here */
        log_rec_t copy = *r;
        deliver(&copy);
        return;
    }
    uint64_t pos = atomic_load_explicit(&log_tail, memory_order_relaxed);
    log_cell_t *c;
    for (;;) {
        c = &log_ring[pos & (LOG_CAP - 1)];
        uint64_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        int64_t dif = (int64_t)(seq - pos);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&log_tail, &pos, pos + 1,
                                                      memory_order_relaxed, memory_order_relaxed))
                break;
        } else if (dif < 0) {
            atomic_fetch_add_explicit(&log_drops, 1, memory_order_relaxed);
            return;
        } else {
            pos = atomic_load_explicit(&log_tail, memory_order_relaxed);
        }
    }
    c->rec = *r;
    atomic_fetch_add_explicit(&log_enqueued, 1, memory_order_relaxed);
    atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
    sem_post(&log_sem);
}

/* A record's head: what every kind of record sets first. */
static void rec_init(log_rec_t *t, int level, int type, void *fn, uint64_t ns)
{
    t->level = level;
    t->type = type;
    t->fn = fn;
    t->ns = ns;
}

void at__logv(int level, const char *fmt, va_list ap)
{
    if (!at__log_would_log(level))
        return;
    log_rec_t t;
    rec_init(&t, level, REC_TEXT, NULL, 0);
    t.name[0] = t.task[0] = '\0';
    vsnprintf(t.msg, sizeof t.msg, fmt, ap);
    enqueue(&t);
}

void at__log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    at__logv(level, fmt, ap);
    va_end(ap);
}

void at__log_slow(void *fn, const char *name, const char *task_name, uint64_t ns)
{
    if (!at__log_would_log(AT__LOG_WARNING))
        return;
    log_rec_t t;
    rec_init(&t, AT__LOG_WARNING, REC_SLOW, fn, ns);
    snprintf(t.name, sizeof t.name, "%s", name ? name : "");
    snprintf(t.task, sizeof t.task, "%s", task_name ? task_name : "");
    t.msg[0] = '\0';
    enqueue(&t);
}

int at__log_flush(uint64_t timeout_ns)
{
    uint64_t want = atomic_load_explicit(&log_enqueued, memory_order_relaxed);
    uint64_t deadline = at__now_ns_slow() + timeout_ns;
    while (atomic_load_explicit(&log_done, memory_order_acquire) < want) {
        if (atomic_load_explicit(&log_state, memory_order_acquire) != 2)
            break;
        if (at__now_ns_slow() >= deadline)
            return -ETIMEDOUT;
        struct timespec d = {0, 200 * 1000};
        nanosleep(&d, NULL);
    }
    return 0;
}

void at__log_shutdown_thread(void);
void at__log_shutdown_thread(void)
{
    if (atomic_load_explicit(&log_state, memory_order_acquire) != 2)
        return;
    at__log_flush(1000ull * 1000 * 1000);
    atomic_store_explicit(&log_stop, 1, memory_order_release);
    sem_post(&log_sem);
    pthread_join(log_thread, NULL);
    sem_destroy(&log_sem);
    atomic_store_explicit(&log_state, 0, memory_order_release);
}
