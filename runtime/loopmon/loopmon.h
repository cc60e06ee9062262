/* loopmon.h: the internal contract of the instrumentation layer (clock, per-loop monitor,
 * call sites, callback timing, "now running", slow callbacks, event rings, loop metrics,
 * debug flag, stacks, symbolisation, logging) that runtime/core, runtime/tasks and the
 * preload shim build on.
 *
 * Depends on libuv and libdw only, never on core/ or tasks/. Everything here is internal
 * (`at__` prefix, hidden visibility). Threads: "loop thread" means the thread that runs the
 * monitored uv_loop_t; "any thread" means any thread including the loop thread.
 * Fallible functions return 0 or a negative errno. */
#ifndef ASYNCTOP_LOOPMON_H
#define ASYNCTOP_LOOPMON_H

#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <ucontext.h>
#include <uv.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#define AT__LIKELY(x)   __builtin_expect(!!(x), 1)
#define AT__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Adds `v` to a counter that one thread writes and any thread reads (relaxed): a load and a
 * store, no locked read-modify-write. Only its single writer calls this. */
static inline void at__counter_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

/* ==== Clock ============================================================================== */

/* Parameters of the TSC clock; written once, by the first at__now_ns() call 5 ms or more
 * after load (the calibration window), then published by use_tsc (release); read-only
 * afterwards. Not for direct use: call at__now_ns(). */
typedef struct at__clock {
    uint64_t tsc0;       /* TSC at the anchor */
    uint64_t ns0;        /* CLOCK_MONOTONIC ns at the anchor */
    uint64_t mult;       /* ns per tick, as a 32.32 fixed-point number */
    _Atomic int use_tsc; /* 1 on x86_64 with an invariant TSC, once calibrated */
} at__clock_t;
extern at__clock_t at__clock;

/* CLOCK_MONOTONIC in ns through clock_gettime; the fallback of at__now_ns(), which also
 * finishes the TSC calibration when its window has passed. Any thread. */
uint64_t at__now_ns_slow(void);

/* Monotonic time in nanoseconds, in the CLOCK_MONOTONIC domain (same origin as
 * clock_gettime(CLOCK_MONOTONIC) and uv_hrtime(), within a few microseconds; the TSC rate is
 * calibrated against CLOCK_MONOTONIC over the first >= 5 ms after load, so the two drift
 * apart by ~1e-5 of elapsed time at most: use one clock for both ends of a duration).
 * About 10 ns (rdtsc) on x86_64 with an invariant TSC, else (and during the first 5 ms)
 * clock_gettime (about 20 ns). Any thread, never fails, no syscall on the TSC path. */
static inline uint64_t at__now_ns(void)
{
#if defined(__x86_64__)
    if (AT__LIKELY(atomic_load_explicit(&at__clock.use_tsc, memory_order_acquire))) {
        uint64_t t = __rdtsc();
        return at__clock.ns0 +
               (uint64_t)(((unsigned __int128)(t - at__clock.tsc0) * at__clock.mult) >> 32);
    }
#endif
    return at__now_ns_slow();
}

/* ==== Process-wide configuration ========================================================== */

/* Debug mode (creation stacks, thread checks): a process-wide flag. Initialised from
 * ASYNCTOP_DEBUG at start-up (accepted: 1/0, yes/no, true/false, on/off, case-insensitive,
 * empty = off; anything else: a warning naming the value, and off). Any thread; a change is
 * seen by other threads promptly (relaxed atomics: no ordering with other data). */
extern _Atomic int at__debug_flag;
static inline bool at__debug_enabled(void)
{
    return atomic_load_explicit(&at__debug_flag, memory_order_relaxed) != 0;
}
void at__debug_set(bool on);

/* Slow-callback threshold in ns, process-wide (every monitored loop). Default 100 ms, or
 * ASYNCTOP_SLOW_MS at start-up (see at__parse_ms for the accepted forms; a bad value gives
 * a warning naming it and the default). Any thread; applies from the next callback that
 * begins (a callback is slow when its exclusive duration is >= the threshold in force when it
 * began: a change while one runs does not judge that one by the new value). */
#define AT__SLOW_NS_DEFAULT (100ull * 1000 * 1000)
/* The range a threshold from the outside (ASYNCTOP_SLOW_MS, a client's set_config) must lie in:
 * 1 ms (below it nearly every callback would be reported) to 1 day; ASYNCTOP_SLOW_MS outside
 * it is a bad value. */
#define AT__SLOW_NS_MIN (1000ull * 1000)
#define AT__SLOW_NS_MAX (86400ull * 1000 * 1000 * 1000)
extern _Atomic uint64_t at__slow_ns;
static inline uint64_t at__slow_threshold_ns(void)
{
    return atomic_load_explicit(&at__slow_ns, memory_order_relaxed);
}
void at__slow_threshold_set_ns(uint64_t ns);

/* Strict parse of a millisecond count: decimal digits, optionally a '.' and 1-6 more digits
 * ("100", "0.5", "250.125"); no sign, exponent, hex, spaces or suffix; at most 86400000
 * (one day). Stores nanoseconds. Returns 0, -EINVAL for bad syntax, -ERANGE if too large.
 * Pure function, any thread. */
int at__parse_ms(const char *s, uint64_t *ns_out);

/* Strict parse of a boolean (1/0, yes/no, true/false, on/off, case-insensitive; "" is
 * false). Returns 0 or -EINVAL. Pure function, any thread. */
int at__parse_bool(const char *s, bool *out);

/* Re-read ASYNCTOP_DEBUG and ASYNCTOP_SLOW_MS (done once at start-up; exposed for tests).
 * Warnings for bad values are logged. Any thread. */
void at__config_from_env(void);

/* ==== Latency histograms ================================================================== */

/* Log-linear histogram of nanosecond values: values below 16 have one bucket each; above,
 * each power of two is split in 16 equal sub-buckets (bucket width <= 6.25% of its lower
 * edge, so a percentile read at the bucket midpoint is within ~3.1%). Values >= 2^40 ns
 * (~18 min) go to the last bucket. Single writer, lock-free readers (relaxed counters: a
 * reader may see a histogram a few samples behind or ahead of count/total). */
#define AT__HIST_SUB     16
#define AT__HIST_MAXLOG  40
#define AT__HIST_BUCKETS ((AT__HIST_MAXLOG - 3) * AT__HIST_SUB)
typedef struct at__hist {
    _Atomic uint64_t b[AT__HIST_BUCKETS];
} at__hist_t;

/* Bucket index of a value. Pure. */
static inline unsigned at__hist_index(uint64_t v)
{
    if (v < AT__HIST_SUB)
        return (unsigned)v;
    unsigned lg = 63u - (unsigned)__builtin_clzll(v); /* >= 4 */
    if (lg >= AT__HIST_MAXLOG)
        return AT__HIST_BUCKETS - 1;
    return (lg - 3) * AT__HIST_SUB + (unsigned)((v >> (lg - 4)) & (AT__HIST_SUB - 1));
}

/* Record one value. Single writer only (no read-modify-write atomics). */
static inline void at__hist_add(at__hist_t *h, uint64_t v)
{
    _Atomic uint64_t *c = &h->b[at__hist_index(v)];
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Lowest value of bucket i, and the value a percentile reports for it (the midpoint). */
uint64_t at__hist_bucket_low(unsigned i);
uint64_t at__hist_bucket_mid(unsigned i);

/* Copy of a histogram's counters (relaxed loads), for percentile reads. Any thread. */
typedef struct at__hist_snap {
    uint64_t b[AT__HIST_BUCKETS];
    uint64_t n; /* sum of b[] */
} at__hist_snap_t;
void at__hist_read(const at__hist_t *h, at__hist_snap_t *out);

/* The value at quantile q (0 < q <= 1, e.g. 0.5, 0.99) of a snapshot: the midpoint of the
 * bucket holding the ceil(q*n)-th smallest value; 0 when the snapshot is empty. Pure. */
uint64_t at__hist_quantile(const at__hist_snap_t *s, double q);

/* ==== Call sites ========================================================================== */

/* Kinds of callbacks (what ran it). Stable numbers: they go on the wire. */
typedef enum at__cb_kind {
    AT__CB_READY = 0,     /* a call-soon / ready-queue callback */
    AT__CB_TIMER = 1,     /* a timer (call-later / call-at, uv_timer_t) */
    AT__CB_IO = 2,        /* an I/O completion (streams, udp, fs, poll, signal...) */
    AT__CB_EXECUTOR = 3,  /* an executor (uv_queue_work) completion on the loop thread */
    AT__CB_TASK_STEP = 4, /* one step of a task, from switch-in to switch-out */
    AT__CB_OTHER = 5,
    AT__CB_KIND_MAX
} at__cb_kind_t;
/* "ready", "timer", "io", "executor", "task_step", "other"; "?" out of range. */
const char *at__cb_kind_name(int kind);

#define AT__SITE_NAME_MAX 64

/* Statistics of one call site (a callback function + optional name) on one loop. Created
 * by at__mon_site() on the loop thread and never freed before its monitor: pointers to a
 * site stay valid as long as the monitor. Written only by the loop thread; read from any
 * thread without locks through relaxed atomics — a reader may see count, total, max and the
 * histogram from slightly different moments (each is individually exact). */
typedef struct at__site {
    void *fn;                     /* the callback's address (the key) */
    char name[AT__SITE_NAME_MAX]; /* given name, or "" = use the symbolised function */
    _Atomic uint64_t count;
    _Atomic uint64_t total_ns; /* exclusive time: nested callbacks are not counted twice */
    _Atomic uint64_t max_ns;
    _Atomic uint64_t min_ns; /* meaningful once count > 0 */
    at__hist_t hist;
    struct at__site *_Atomic next_all; /* list of all sites of the monitor (readers) */
    struct at__site *hnext;            /* hash chain (loop thread only) */
    uint32_t hash;
} at__site_t;

typedef struct at__site_stats {
    uint64_t count, total_ns, max_ns, min_ns; /* min_ns: 0 while count is 0 */
    at__hist_snap_t hist;
} at__site_stats_t;

/* Copy of a site's statistics. Any thread, lock-free (see at__site_t on consistency). */
void at__site_read(const at__site_t *s, at__site_stats_t *out);

/* Record one callback of `ns` exclusive nanoseconds. Loop thread (single writer). */
static inline void at__site_record(at__site_t *s, uint64_t ns)
{
    uint64_t count = atomic_load_explicit(&s->count, memory_order_relaxed);
    if (count == 0 || ns < atomic_load_explicit(&s->min_ns, memory_order_relaxed))
        atomic_store_explicit(&s->min_ns, ns, memory_order_relaxed);
    atomic_store_explicit(&s->count, count + 1, memory_order_relaxed);
    at__counter_add(&s->total_ns, ns);
    if (ns > atomic_load_explicit(&s->max_ns, memory_order_relaxed))
        atomic_store_explicit(&s->max_ns, ns, memory_order_relaxed);
    at__hist_add(&s->hist, ns);
}

/* A display name for the site into buf (always NUL-terminated): its given name, else the
 * symbolised function ("parse_request"), else "library+0xoffset", else "0xaddress".
 * May symbolise (slow the first time, see at__sym_lookup): call it off the loop thread.
 * Any thread. Returns buf. */
char *at__site_display_name(const at__site_t *s, char *buf, size_t len);

/* ==== Events (loop -> consumer) ============================================================ */

typedef enum at__event_kind {
    AT__EV_SLOW = 0,    /* a slow callback (posted by loopmon itself) */
    AT__EV_ERROR = 1,   /* an exception: never-retrieved error, ... (core) */
    AT__EV_WARNING = 2, /* unclosed resource, wrong-thread call, never-awaited task... */
    AT__EV_KIND_MAX
} at__event_kind_t;

#define AT__EV_STACK_MAX  16
#define AT__EV_NAME_MAX   64
#define AT__EV_TASK_MAX   48
#define AT__EV_TEXT_MAX   200
#define AT__EV_CODE_MAX   32
#define AT__EV_DOMAIN_MAX 24

/* One fixed-size event record (no pointers to memory whose lifetime the consumer cannot
 * know, except `site`, valid as long as the monitor). Strings are NUL-terminated and
 * truncated to fit. Fields a kind does not use are zero. */
typedef struct at__event {
    uint8_t kind;               /* at__event_kind_t */
    uint8_t cb_kind;            /* AT__EV_SLOW: at__cb_kind_t of the callback */
    uint8_t nstack;             /* frames in stack[] */
    uint8_t nstack2;            /* frames in stack2[] */
    int32_t err_code;           /* errors: the error's own code (at_error_code), 0 none */
    uint64_t when_ns;           /* at__now_ns() when it happened (AT__EV_SLOW: when it ended) */
    uint64_t duration_ns;       /* AT__EV_SLOW: exclusive duration; others: an age if any, or 0 */
    uint64_t task_id;           /* 0 = none */
    at__site_t *site;           /* AT__EV_SLOW: the site (valid while the monitor lives) */
    void *fn;                   /* AT__EV_SLOW: the callback's address */
    char name[AT__EV_NAME_MAX]; /* site / object name ("" = symbolise fn) */
    char task_name[AT__EV_TASK_MAX]; /* "" = none */
    char code[AT__EV_CODE_MAX];      /* errors/warnings: short machine word, e.g.
                                        "never_retrieved", "unclosed", "wrong_thread" */
    char text[AT__EV_TEXT_MAX];      /* errors/warnings: the message */
    /* errors: the error's own domain (at_error_domain, e.g. "asynctop"), "" none. A copy, not
       the caller's pointer: domains are static strings, but one may live in a module that is
       dlclose'd while the event still waits in the ring or in the exporter's event log. */
    char err_domain[AT__EV_DOMAIN_MAX];
    /* raw return addresses, innermost first. AT__EV_SLOW: where the callback was scheduled
       from (debug mode). Errors: creation site in stack[], raise/detection site in stack2[]. */
    void *stack[AT__EV_STACK_MAX];
    void *stack2[AT__EV_STACK_MAX];
} at__event_t;

/* ==== Per-loop monitor ===================================================================== */

/* A callback being timed. Lives on the stack of whoever runs the callback, from
 * at__cb_begin to the matching at__cb_end (strictly nested, LIFO). Treat as opaque. */
typedef struct at__cb {
    at__site_t *site;
    uint64_t start_ns;
    uint64_t child_ns; /* inclusive time of callbacks nested in this one */
    struct at__cb *parent;
    uint64_t task_id;
    const char *task_name;
    void *const *sched_stack;
    uint64_t slow_ns; /* the slow threshold in force when it began (changes apply from the
                         next callback on) */
    uint8_t kind;
    uint8_t sched_n;
} at__cb_t;

#define AT__SITE_CACHE 256 /* direct-mapped site cache entries (power of two) */
#define AT__RING_CAP   256 /* event ring capacity in records (power of two) */

/* The "now running" record, published with a seqlock (see at__mon_running_read). */
typedef struct at__running {
    int has_task; /* writer-private: task fields are nonzero (saves loads on the hot path) */
    _Atomic uint32_t seq;                            /* odd while being written */
    _Atomic(at__site_t *) site;                      /* NULL: no callback running */
    _Atomic uint64_t since_ns;                       /* when it started */
    _Atomic uint64_t task_id;                        /* 0 = none */
    _Atomic uint32_t kind;                           /* at__cb_kind_t */
    _Atomic uint64_t task_name[AT__EV_TASK_MAX / 8]; /* NUL-terminated bytes, copied */
} at__running_t;

typedef struct at__ring_cell {
    _Atomic uint64_t seq;
    at__event_t ev;
} at__ring_cell_t;

/* Monitor of one uv_loop_t. Created and closed on the loop thread; fields are private to
 * loopmon except through the functions below (they are in the header only so that
 * begin/end can be inline). */
typedef struct at__mon {
    /* --- hot, loop thread only --- */
    at__cb_t *cur;         /* innermost running callback, or NULL */
    uint64_t chain_ns;     /* end time of the last top-level callback, 0 = chain broken */
    uint64_t chain_time;   /* loop->time when chain_ns was set (a new iteration breaks it) */
    int chain_enabled;     /* 0: never chain (closing) */
    int batch;             /* between at__mon_batch_begin and at__mon_batch_end */
    at__site_t *pend_site; /* batch: the last ended callback's site, its record not added yet */
    uint64_t pend_ns;      /* ... and its exclusive time */
    struct {
        void *fn;
        const char *name; /* the caller's pointer (NULL = unnamed) */
        at__site_t *site;
    } cache[AT__SITE_CACHE]; /* sites by (fn, name pointer), see at__mon_site */
    /* --- counters: loop thread writes, anyone reads (relaxed) --- */
    _Atomic uint64_t callbacks;  /* callbacks run (nested ones included) */
    _Atomic uint64_t busy_ns;    /* time in callbacks (sum of exclusive times) */
    _Atomic uint64_t slow_count; /* callbacks at or over the slow threshold */
    _Atomic uint64_t iterations; /* loop iterations (prepare phase count) */
    _Atomic uint64_t poll_ns;    /* time polling (prepare->check minus callbacks; external: see
                                    at__mon_create_flags) */
    _Atomic uint64_t poll_max_ns;
    _Atomic uint64_t idle_ns; /* uv_metrics_idle_time, sampled at most every 1 ms (external:
                                 unused, at__mon_stats reports poll_ns) */
    _Atomic uint64_t lag_max_ns;
    /* loop lag, one sample per iteration: from the poll's return to the next poll's start,
     * i.e. the longest any work that became ready meanwhile (I/O, a due timer, call_soon,
     * idle/check/prepare callbacks) waited before the loop looked for it again; an idle
     * loop reads microseconds, one spinning 200 ms reads 200 ms for that iteration */
    at__hist_t lag;
    at__running_t running;
    /* --- events (multi-producer, single consumer bounded ring) --- */
    _Atomic uint64_t ring_head; /* consumer position */
    _Atomic uint64_t ring_tail; /* producers' position */
    _Atomic uint64_t ev_produced[AT__EV_KIND_MAX];
    _Atomic uint64_t ev_dropped[AT__EV_KIND_MAX];
    at__ring_cell_t *ring; /* AT__RING_CAP cells */
    /* --- identity and bookkeeping --- */
    uv_loop_t *loop;
    pthread_t thread; /* the loop thread (the creator) */
    pid_t tid;        /* its kernel thread id */
    uint64_t id;      /* process-unique monitor id, from 1 */
    uint64_t created_ns;
    void *stack_lo, *stack_hi; /* the loop thread's stack bounds */
    at__site_t *_Atomic sites; /* newest first, linked by next_all */
    _Atomic uint64_t nsites;
    at__site_t **htab; /* hash table of sites (loop thread) */
    uint32_t hmask;
    uv_prepare_t *prepare; /* &prepare_h while open, NULL once closed */
    uv_check_t *check;     /* &check_h while open, NULL once closed */
    uv_prepare_t prepare_h;
    uv_check_t check_h;
    uint64_t prepare_ns, cb_at_prepare_ns; /* last prepare time, busy_ns then */
    uint64_t poll_end_ns;     /* when the last poll returned (loop lag's start), 0 = none */
    uint64_t idle_sampled_ns; /* last uv_metrics_idle_time sample */
    int open_handles;
    int closing;
    uint8_t external_poll; /* AT__MON_EXTERNAL_POLL: polls come from at__mon_poll_begin/end */
    uint8_t poll_inside;   /* the current poll began inside a callback (not counted) */
    _Atomic int refs;
    struct at__mon *reg_next; /* registry list (under the registry lock) */
} at__mon_t;

/* Create a monitor for `loop` on the calling thread, which must be the thread that runs the
 * loop (its pthread id, kernel tid and stack bounds are recorded). Installs the metrics:
 * unref'd prepare and check handles (they never keep the loop alive) and
 * UV_METRICS_IDLE_TIME. Registers the monitor in the process-wide registry. Returns 0 and
 * *out, or -ENOMEM, or a libuv error from the handle initialisation. One monitor per loop
 * is the caller's business; while two exist (a loop moving to another thread: create the
 * new monitor there, then close the old one), at__mon_find gives the newer. */
int at__mon_create(uv_loop_t *loop, at__mon_t **out);

/* As at__mon_create; with AT__MON_EXTERNAL_POLL the monitor installs no handles and does not
 * enable UV_METRICS_IDLE_TIME: the caller, which sees the loop's poll itself (the preload shim
 * interposes epoll_wait), calls at__mon_poll_begin right before the poll syscall and
 * at__mon_poll_end right after it, on the loop thread (a poll begun while a callback runs, a
 * uv_run nested in a callback, is left to that callback). Then iterations = completed polls,
 * poll_ns = idle_ns = the time from the end of the last callback before each poll (a fresh
 * clock read when there was none) to the poll's return, and the poll's end is the chained
 * start of the next callback (see at__cb_begin_full). `interrupted`: the poll returned early
 * (EINTR) and will be repeated (its time counts, the iteration does not). */
#define AT__MON_EXTERNAL_POLL 1u
int at__mon_create_flags(uv_loop_t *loop, unsigned flags, at__mon_t **out);
void at__mon_poll_begin(at__mon_t *m);
void at__mon_poll_end(at__mon_t *m, bool interrupted);

/* Start closing a monitor: closes its handles (as uv_close does, the caller must let the
 * loop run once more, e.g. uv_run(loop, UV_RUN_DEFAULT), before uv_loop_close), unregisters
 * it, and drops the creator's reference; the memory goes when the handles are closed and
 * the last at__mon_unref() is done. If someone else already closed the handles (a
 * uv_walk-close-everything), that is fine: the metrics stopped then, and if their close is
 * still pending loopmon takes over its close callback (the other closer's callback is not
 * called for loopmon's handles). Loop thread; no callback of this monitor may be running.
 * Do not use `m` on the loop side afterwards. */
void at__mon_close(at__mon_t *m);

/* Keep / release a monitor from another thread (the exporter): a monitor obtained from
 * at__mon_foreach may be used after the walk only with a reference. Any thread. */
void at__mon_ref(at__mon_t *m);
void at__mon_unref(at__mon_t *m);

/* Call fn(m, data) for every registered monitor, under the registry lock (keep fn short,
 * no loopmon registry calls inside; take a ref to keep one). Stops early and returns fn's
 * value if nonzero, else 0. Any thread. */
int at__mon_foreach(int (*fn)(at__mon_t *m, void *data), void *data);

/* The monitor registered for `loop` (the newest if there are two), or NULL. Any thread, O(number of
 * loops). No reference is taken: only for the loop thread of that loop (the monitor cannot go
 * meanwhile). */
at__mon_t *at__mon_find(uv_loop_t *loop);

/* True if the calling thread is the monitor's loop thread. Any thread, cheap. */
static inline bool at__mon_on_loop_thread(const at__mon_t *m)
{
    return pthread_equal(pthread_self(), m->thread) != 0;
}

/* The site for callback `fn` with optional `name` (NULL or "" = the symbolised function;
 * names longer than AT__SITE_NAME_MAX-1 are truncated; sites with different names are
 * distinct, compared by content). O(1): a direct-mapped cache keyed by (fn, name pointer)
 * answers repeated calls without touching the name; a miss goes to a hash map keyed by
 * (fn, name content) and fills the cache; a new site is allocated the first time only.
 * Because the cache compares the name's pointer, a name's bytes must not change while that
 * pointer may still be passed here (string literals, or strings that live as long as the
 * monitor: the public API asks for static storage). Loop thread. Returns NULL only on
 * out-of-memory (then do not time the callback). */
at__site_t *at__mon_site_slow(at__mon_t *m, void *fn, const char *name);
static inline unsigned at__mon_site_slot(void *fn, const char *name)
{
    uintptr_t k = (uintptr_t)fn ^ ((uintptr_t)name >> 3);
    return (unsigned)((k * 0x9E3779B97F4A7C15ull) >> 56) & (AT__SITE_CACHE - 1);
}
static inline at__site_t *at__mon_site(at__mon_t *m, void *fn, const char *name)
{
    unsigned i = at__mon_site_slot(fn, name);
    if (AT__LIKELY(m->cache[i].fn == fn && m->cache[i].name == name))
        return m->cache[i].site;
    return at__mon_site_slow(m, fn, name);
}

/* First site of the monitor (newest first), then s->next_all until NULL. Any thread,
 * lock-free; sites are only ever added. */
static inline at__site_t *at__mon_sites(const at__mon_t *m)
{
    return atomic_load_explicit(&m->sites, memory_order_acquire);
}

/* ---- timing a callback: begin / end / relabel, batches, "now running" (inline) -------- */

#include "loopmon_timing.h" /* IWYU pragma: export */

/* ---- loop statistics --------------------------------------------------------------------- */

typedef struct at__mon_stats {
    uint64_t iterations, callbacks, slow_count;
    uint64_t busy_ns; /* in callbacks */
    uint64_t idle_ns; /* uv_metrics_idle_time (blocked in poll; <= 1 ms old); external: poll_ns */
    uint64_t poll_ns; /* prepare->check minus callbacks run in between; external: see
                         at__mon_create_flags */
    uint64_t poll_max_ns;
    uint64_t lag_max_ns;
    at__hist_snap_t lag;
    uint64_t nsites;
    uint64_t uptime_ns; /* since the monitor was created */
} at__mon_stats_t;

/* Snapshot of the counters (each exact, not all from one instant). Any thread. */
void at__mon_stats(const at__mon_t *m, at__mon_stats_t *out);

/* The loop's idle time so far, as at__mon_stats reports it: libuv's idle-time metric, or for a
 * monitor whose polls are reported from outside (AT__MON_EXTERNAL_POLL: the preload shim, which
 * leaves libuv's metric off) the measured poll time. Any thread. */
static inline uint64_t at__mon_idle_ns(const at__mon_t *m)
{
    return atomic_load_explicit(m->external_poll ? &m->poll_ns : &m->idle_ns, memory_order_relaxed);
}

/* Handle inventory by type (uv_walk), excluding loopmon's own handles: total[t] and
 * active[t] for each uv_handle_type t < UV_HANDLE_TYPE_MAX. Loop thread only. */
typedef struct at__handle_counts {
    uint32_t total[UV_HANDLE_TYPE_MAX];
    uint32_t active[UV_HANDLE_TYPE_MAX];
} at__handle_counts_t;
void at__mon_handles(at__mon_t *m, at__handle_counts_t *out);

/* ---- events ------------------------------------------------------------------------------- */

/* Zero *ev and set its kind and when_ns. Any thread. */
void at__event_init(at__event_t *ev, at__event_kind_t kind);

/* Set the event's error identity: err_code = code, err_domain = a copy of domain (NULL or ""
 * leaves it empty; a domain longer than AT__EV_DOMAIN_MAX - 1 bytes is cut). No allocation.
 * Any thread. */
void at__event_set_error(at__event_t *ev, int code, const char *domain);

/* Post a copy of *ev to the monitor's bounded ring (AT__RING_CAP records). Lock-free and
 * allocation-free; safe from any thread (the loop thread, or a wrong thread reporting
 * itself). Returns 0, or -ENOBUFS when the ring is full: the event is dropped and counted
 * in the kind's dropped counter. Every post counts in the produced counter, so
 * produced = taken + dropped + still queued. */
int at__mon_post(at__mon_t *m, const at__event_t *ev);

/* Take the oldest event into *out. Returns 1 if one was taken, 0 if the ring is empty.
 * One consumer thread at a time (the exporter; tests). */
int at__mon_take(at__mon_t *m, at__event_t *out);

/* Produced and dropped counts of one event kind. Any thread. */
void at__mon_event_counts(const at__mon_t *m, at__event_kind_t kind, uint64_t *produced,
                          uint64_t *dropped);

/* ==== Stacks ================================================================================ */

/* The bounds [lo, hi) of the stack the calling thread runs on now. Frame-pointer walks
 * never read outside them. The tasks layer sets them on every switch into and out of a
 * coroutine; a thread that never set them gets its own thread stack
 * (pthread_getattr_np), computed on first use — call at__stack_bounds_init() early on a
 * thread whose stack may be walked from a signal handler. */
typedef struct at__stack_bounds {
    uintptr_t lo, hi;
} at__stack_bounds_t;
extern __thread at__stack_bounds_t at__stack_bounds;

static inline void at__stack_bounds_set(void *lo, void *hi)
{
    at__stack_bounds.lo = (uintptr_t)lo;
    at__stack_bounds.hi = (uintptr_t)hi;
}
/* Set the calling thread's bounds to its whole thread stack. Returns 0 or -errno. */
int at__stack_bounds_init(void);

/* Coroutine stacks seen from another thread: at__stack_bounds is thread-local, so a thread
 * that samples the loop thread while it is blocked (the exporter) asks the owner of the
 * coroutine stacks instead. The tasks layer registers a resolver mapping an address to the
 * bounds [lo, hi) of the coroutine stack holding it; the resolver must be lock-free,
 * async-signal-safe and callable from any thread. at__stack_resolve returns false when no
 * resolver is registered or addr is on no coroutine stack. Any thread. */
typedef bool (*at__stack_resolver_fn)(uintptr_t addr, uintptr_t *lo, uintptr_t *hi);
void at__stack_resolver_set(at__stack_resolver_fn fn);
bool at__stack_resolve(uintptr_t addr, uintptr_t *lo, uintptr_t *hi);

/* Walk frame pointers from fp, writing up to max raw return addresses (innermost first).
 * Stops at the first frame pointer outside [lo, hi - 16), misaligned, or not strictly
 * above the previous one, or at a zero return address: garbage never makes it fault.
 * Also stops after the first return address inside a shared libuv (Debian's has no frame
 * pointers, so nothing above its frames can be trusted; at__stack_bounds_init finds its text).
 * Returns the number written. Async-signal-safe; pure apart from reading the stack.
 * To sample a thread from a signal handler running on it (the exporter's "where is the loop
 * stuck"): take fp from the interrupted context (ucontext's REG_RBP), and the bounds from
 * at__stack_bounds (the stack it was running on: the thread's, or the coroutine's the tasks
 * layer set), read inside the handler; at__stack_bounds_init must have run on that thread
 * first (at__mon_create does it for the loop thread). */
int at__stack_walk(uintptr_t fp, uintptr_t lo, uintptr_t hi, void **out, int max);

/* Capture the calling thread's stack: up to max return addresses, innermost first, after
 * skipping the `skip` innermost ones. With skip 0, out[0] is an address in the function that
 * called at__stack_capture, out[1] one in its caller, and so on. Bounded by at__stack_bounds.
 * ~tens of ns for 16 frames. Any thread (async-signal-safe once at__stack_bounds_init ran
 * on this thread). Returns the number of frames written. */
int at__stack_capture(void **out, int max, int skip);

/* ==== CFI unwinding (unwind.c) ============================================================= */

/* The registers an unwind starts from, DWARF-numbered: x86_64 r[0..15] = rax, rdx, rcx, rbx,
 * rsi, rdi, rbp, rsp, r8-r15 and r[16] = rip; aarch64 r[0..30] = x0-x30, r[31] = sp. pc is
 * where the innermost frame is executing (an exact address, not a return address). */
#if defined(__aarch64__)
#define AT__UNWIND_NREGS 32
#else
#define AT__UNWIND_NREGS 17
#endif
typedef struct at__unwind_regs {
    uintptr_t r[AT__UNWIND_NREGS];
    uintptr_t pc;
} at__unwind_regs_t;

/* Fills out from a signal handler's (or getcontext's) ucontext. Async-signal-safe. */
void at__unwind_regs_from_ucontext(const ucontext_t *uc, at__unwind_regs_t *out);

/* Unwinds a stack of the own process with its DWARF call-frame information (.eh_frame, in
 * every binary and library, stripped or not) through libdw: right where frame pointers are
 * not (code built -O2 without -fno-omit-frame-pointer, libc, libuv). `regs` is the state of
 * the innermost frame; stack memory is read only from the snapshot `bytes`, the contents of
 * the addresses [lo, hi) (bytes == (void *)lo for a stack that cannot change meanwhile: a
 * suspended coroutine's, read on its own thread); an unwind stops at a frame whose caller
 * would be read outside it or has no CFI. Writes up to max pcs, innermost first: pcs[0] =
 * regs->pc, the others return addresses (symbolise them with is_return = true); *last_sp (if
 * not NULL) receives the stack pointer of the last frame reached, 0 if unknown. Returns the
 * number written, -EBUSY when !wait and another thread is unwinding, or -errno when the
 * process's modules cannot be read. Thread-safe (an internal lock, fork-safe); not
 * async-signal-safe: costs ~ms on first use and after a dlopen (modules and their CFI are
 * read and cached), microseconds after. Never on the hot path. */
int at__unwind(const at__unwind_regs_t *regs, uintptr_t lo, uintptr_t hi, const void *bytes,
               uintptr_t *pcs, int max, bool wait, uintptr_t *last_sp);

/* Drops the unwinder's libdw session (modules, cached CFI): the next unwind starts cold.
 * For benchmarks and tests; at exit nothing needs it. Thread-safe. */
void at__unwind_reset(void);

/* ==== Symbolisation ======================================================================== */

#define AT__BUILD_ID_HEX 81 /* hex build-id (up to 40 bytes) + NUL */

/* One symbolised address. Strings NUL-terminated, "" when unknown. */
typedef struct at__sym {
    char func[128];                  /* function name (demangled only if it is C) */
    char file[192];                  /* source file (full path as recorded in DWARF) */
    unsigned line;                   /* 0 = unknown */
    char lib[128];                   /* object file basename ("libfoo.so.1", "asynctop-demo") */
    uint64_t offset;                 /* addr - object's load address */
    uint64_t func_off;               /* addr - function start (0 if func unknown) */
    char build_id[AT__BUILD_ID_HEX]; /* lib's GNU build-id in lowercase hex, "" if none */
} at__sym_t;

/* Symbolise `addr` (a code address; for return addresses pass the raw return address and
 * is_return=true: the line is looked up at addr-1, the call instruction). Uses libdw on the
 * own process (functions, files, lines; separate debug info when installed), then dladdr.
 * Results are cached per address. Thread-safe (an internal lock: do not call on the loop
 * thread's hot path — the first lookup of a module costs milliseconds). Returns 0, or
 * -ENOENT when nothing at all is known (out has lib/offset as far as known; code in a mapping
 * of no file, such as JIT-compiled code, has lib "[anon]" and offset == addr). */
int at__sym_lookup(const void *addr, bool is_return, at__sym_t *out);

/* Format one frame as "func (file:line)" / "func (lib+0xoff)" / "lib+0xoff" / "0xaddr"
 * into buf. Any thread (as at__sym_lookup). Returns buf. */
char *at__sym_format(const void *addr, bool is_return, char *buf, size_t len);

/* Drop the cache and libdw state (tests; after dlclose). Any thread. */
void at__sym_reset(void);

/* ==== Logging ================================================================================ */

typedef enum at__log_level {
    AT__LOG_DEBUG = 0,
    AT__LOG_INFO = 1,
    AT__LOG_WARNING = 2,
    AT__LOG_ERROR = 3,
} at__log_level_t;
/* "DEBUG", "INFO", "WARNING", "ERROR". */
const char *at__log_level_name(int level);

#define AT__LOG_MSG_MAX 512

/* A sink receives whole messages (no trailing newline) on the logger thread, one at a time,
 * in order. The default writes "asynctop: LEVEL: message\n" to stderr. */
typedef void (*at__log_sink_fn)(int level, const char *msg, void *data);

/* Replace the sink (NULL: back to stderr). Messages already queued go to the new sink.
 * Any thread. */
void at__log_set_sink(at__log_sink_fn fn, void *data);

/* Messages below `level` are discarded at the call. Until a level is set, the default is
 * AT__LOG_INFO, lowered to AT__LOG_DEBUG while debug mode is on; once set, the level holds
 * whatever debug mode does. Any thread. */
void at__log_set_level(int level);
int at__log_get_level(void);
bool at__log_would_log(int level);

/* Log a message (printf format, truncated to AT__LOG_MSG_MAX-1 bytes). Formats on the
 * calling thread into a bounded lock-free queue; a logger thread (started on first use)
 * hands it to the sink. Never blocks and never allocates: when the queue is full the message
 * is dropped and counted (at__log_dropped). Any thread. */
void at__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void at__logv(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Log the asyncio-style slow-callback line for (fn, name, ns): the logger thread
 * symbolises fn and writes `Executing <name at file:line> took 0.123 seconds` (name is the
 * given name or the function; "at file:line" becomes "at lib+0xoff" without line info).
 * Loop thread friendly (no symbolisation here). Any thread. */
void at__log_slow(void *fn, const char *name, const char *task_name, uint64_t ns);

/* Wait until every message queued before the call has reached the sink, or timeout_ns
 * passed. Returns 0 or -ETIMEDOUT. Blocks: never on the loop thread's hot path (tests,
 * shutdown). Any thread. */
int at__log_flush(uint64_t timeout_ns);

/* Messages dropped because the queue was full. Any thread. */
uint64_t at__log_dropped(void);

/* Flush (up to 1 s), stop and join the logger thread and free libdw state. It restarts on
 * the next log. For tests and library teardown. Not concurrently with at__log calls. */
void at__loopmon_shutdown(void);

/* ==== fork() ============================================================================= */

/* The runtime's lock order, outermost first. A thread that holds a lock of one rank only ever
 * waits for locks of later ranks; a lock of a later rank is never held while one of an earlier
 * rank is taken. Just before fork() the forking thread takes every registered rank's locks in
 * this order (so no other thread — the exporter, the logger, a pool thread — holds one across
 * the fork), and releases them after it, in the parent and in the child, latest rank first.
 * A child therefore finds every lock free and the data behind it consistent. */
typedef enum {
    AT__FORK_EXPORT_SERVER, /* export_server.c: g_lock (start, stop, the one exporter) */
    AT__FORK_EXPORT_ATTACH, /* export_attach.c: g_reg_lock, then each attachment's mbox_lock */
    AT__FORK_MON_REGISTRY,  /* mon.c: reg_lock (the monitors) */
    AT__FORK_PRELOAD_LOOPS, /* preload.c: g_loops_lock (the shim's watched loops) */
    AT__FORK_PRELOAD_TABLE, /* table.c: the side table's 64 shard locks, in index order */
    AT__FORK_STACK_POOL,    /* stack_pool.c: chunks_lock */
    AT__FORK_CORO_SIGNAL,   /* coro.c: segv_lock (the SIGSEGV handler's installation) */
    AT__FORK_UNWIND,        /* unwind.c: unw_lock (the CFI unwinder's libdw session) */
    AT__FORK_SYM,           /* sym.c: sym_lock (the symbol cache and libdw) */
    AT__FORK_LOG,           /* log.c: sink_lock (the log sink) */
    AT__FORK_NRANKS
} at__fork_rank_t;

typedef struct at__fork_handlers {
    void (*prepare)(void); /* takes the rank's locks (the thread will fork) */
    void (*parent)(void);  /* releases them in the parent */
    void (*child)(void);   /* releases them in the child, and resets what the child must not
                              inherit (another thread's state: that thread is not there) */
} at__fork_handlers_t;

/* Registers the handlers of `rank` (once per rank; `h` lives forever). Meant for constructors,
 * so that every rank is registered before the program's first thread; a rank registered while
 * another thread forks is simply not part of that fork. The first call installs the one
 * pthread_atfork triple that runs every rank in order. Any thread. */
void at__fork_register(at__fork_rank_t rank, const at__fork_handlers_t *h);

/* The common case of at__fork_register: a rank that is one mutex, locked before the fork and
 * unlocked after it in parent and child (`m` lives forever). Same rules as above. */
void at__fork_register_mutex(at__fork_rank_t rank, pthread_mutex_t *m);

#endif
