/* export.h: the exporter's contract — one thread per process that serves every loop's live state
 * over a Unix socket, and the provider interface through which upper layers feed it tasks. */
#ifndef ASYNCTOP_EXPORT_H
#define ASYNCTOP_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "export_limits.h" /* the defaults below and every session limit */

/* Configuration of at__export_start(). Zero fields take the default (AT_EXPORT_DEFAULT_*,
 * export_limits.h), or the environment where one exists (ASYNCTOP_SOCKET, ASYNCTOP_MAX_CLIENTS).
 * The exporter's messages ("refusing to start: ...") go to loopmon's logger (at__log). */
typedef struct at_export_config {
    const char *socket_path; /* NULL: ASYNCTOP_SOCKET, else the per-user directory */
    unsigned max_clients;
    unsigned handshake_ms;
    size_t client_out_max;
    unsigned stall_ms;
    unsigned loop_request_ms;
    const char *program; /* NULL: /proc/self/comm */
} at_export_config_t;

/* Starts the process's exporter, or takes one more reference on the running one. Safe from any
 * thread. The socket is created and bound before this returns, so errors (an unsafe directory,
 * a path in use) are returned here — negative errno, with the reason logged — and the program
 * carries on without an exporter. Returns 1 (and starts nothing) when ASYNCTOP_SOCKET=off.
 * `cfg` may be NULL; it is read only by the call that actually starts the thread. */
int at__export_start(const at_export_config_t *cfg);

/* Drops one reference; the last one stops the thread, disconnects every client and removes the
 * socket. Blocks only for the exporter thread to finish its current step (it never waits on a
 * loop). Never call it from the exporter thread itself (a provider callback). */
void at__export_stop(void);

/* True while an exporter thread runs in this process. Any thread. */
bool at__export_running(void);

/* The socket path of the running exporter, copied into buf; 0, or -ENOENT if none runs. */
int at__export_socket_path(char *buf, size_t size);

/* Leaves the code in [lo, hi) out of every stack the exporter samples from a loop thread (the
 * slow-callback and blocked-loop stacks, loop_stack answers): frames whose pc lies there are
 * dropped, the others kept in order — except a blocked thread's system call site, the innermost
 * frame, which is the call the program made (the shim's epoll_wait polls itself). For the
 * preload shim, whose trampolines and wrappers sit
 * between libuv and every callback of the program but are not the program's code. One range
 * per process (a later call replaces it; lo == hi hides nothing). Any thread, any time. */
void at__export_hide_code(const void *lo, const void *hi);

/* ---- the provider interface --------------------------------------------------------------
 * Upper layers (core, tasks) describe tasks to the exporter without it including their headers.
 * A provider is attached to one uv_loop_t, on that loop's thread; its functions are called on
 * that loop's thread (through a uv_async_t the exporter owns on that loop), never on the
 * exporter's. Lifecycle events go through at__export_task_post(), which is wait-free and never
 * allocates: when its ring is full the event is dropped and counted, and the exporter asks the
 * provider for a full resync. Debug mode and the slow threshold are loopmon's process-wide
 * settings, which the exporter changes directly (at__debug_set, at__slow_threshold_set_ns). */

/* Task states: the numbers of docs/protocol.md's task row. */
typedef enum at_export_task_state {
    AT_EXPORT_TASK_READY = 0, /* created or woken, waiting for its turn */
    AT_EXPORT_TASK_RUNNING = 1,
    AT_EXPORT_TASK_WAITING = 2,
    AT_EXPORT_TASK_DONE = 3,
    AT_EXPORT_TASK_CANCELLED = 4,
    AT_EXPORT_TASK_FAILED = 5,
} at_export_task_state_t;

/* What a waiting task waits on: the numbers of docs/protocol.md's task row (field 3, the wire's
 * at_wire_wait_kind_t), for the kinds the runtime sends. */
typedef enum at_export_wait_kind {
    AT_EXPORT_WAIT_NONE = 0,
    AT_EXPORT_WAIT_FUTURE = 1, /* object: the future's id */
    AT_EXPORT_WAIT_TASK = 2,   /* object: the joined task's id */
    AT_EXPORT_WAIT_SLEEP = 3,
    AT_EXPORT_WAIT_READ = 4, /* object: the stream's id */
    AT_EXPORT_WAIT_WRITE = 5,
    AT_EXPORT_WAIT_CONNECT = 6,
    AT_EXPORT_WAIT_ACCEPT = 7,
    AT_EXPORT_WAIT_LOCK = 8, /* object: the primitive's id */
    AT_EXPORT_WAIT_EVENT = 9,
    AT_EXPORT_WAIT_SEMAPHORE = 10,
    AT_EXPORT_WAIT_QUEUE = 12,
    AT_EXPORT_WAIT_OTHER = 15,
} at_export_wait_kind_t;

/* One task as the inspector's table shows it. Times are at__now_ns() (CLOCK_MONOTONIC) ns;
 * wait_kind is an at_export_wait_kind_t (the wire's numbers). The name is copied into the event
 * (truncated). */
typedef struct at_export_task_row {
    uint64_t id;
    uint64_t parent_id; /* 0: none */
    uint64_t created_ns;
    uint64_t wait_since_ns;
    uint64_t busy_ns;
    uint64_t steps;
    uint64_t wait_obj;  /* id of what it waits on, 0 none */
    void *entry_fn;     /* the task's function (shown as its entry site), NULL unknown */
    void *create_pc;    /* a return address in the spawning code, NULL unknown */
    uint64_t wait_arg;  /* the provider's own detail of the wait (a sleep: its ms), for wait_desc */
    uint8_t state;      /* at_export_task_state_t */
    uint8_t wait_kind;  /* at_export_wait_kind_t */
    uint8_t wait_flags; /* the provider's own detail of the wait, for wait_desc */
    char name[37];
} at_export_task_row_t;

/* Why a task row is posted. */
typedef enum at_export_task_event_kind {
    AT_EXPORT_TASK_ADDED = 1,
    AT_EXPORT_TASK_CHANGED = 2,
    AT_EXPORT_TASK_REMOVED = 3, /* only row.id is read */
} at_export_task_event_kind_t;

#define AT_EXPORT_MAX_FRAMES 64

/* A stack as raw return addresses, innermost first; the exporter symbolises them on its own
 * thread. */
typedef struct at_export_stack {
    uint32_t depth;
    void *pc[AT_EXPORT_MAX_FRAMES];
} at_export_stack_t;

/* A task's step durations: counts of the wire histogram's buckets (docs/protocol.md
 * "Histogram") AT_EXPORT_STEP_HIST_LO .. LO + N - 1, i.e. 256 ns up to ~60 s; shorter steps
 * count in the first bucket, longer ones in the last. */
#define AT_EXPORT_STEP_HIST_LO 28u
#define AT_EXPORT_STEP_HIST_N  112u

/* Task detail, filled by the provider on its loop thread. */
typedef struct at_export_task_detail {
    at_export_task_row_t row;
    uint32_t step_hist[AT_EXPORT_STEP_HIST_N]; /* see AT_EXPORT_STEP_HIST_LO */
    at_export_stack_t creation;                /* debug mode; depth 0 when not recorded */
    at_export_stack_t suspension;              /* depth 0 when running or not suspended */
    char wait_desc[96];                        /* "sleep 5.000 s", "" */
    char error[160];                           /* failed tasks: the error message, "" */
} at_export_task_detail_t;

/* Capability bits a provider advertises (the hello lists the union). */
enum {
    AT_EXPORT_CAP_TASKS = 1u << 0,       /* lifecycle events and resync */
    AT_EXPORT_CAP_TASK_DETAIL = 1u << 1, /* task_detail */
    AT_EXPORT_CAP_CANCEL = 1u << 2,      /* task_cancel */
};

/* The executor (thread pool) of a loop, as its provider counts it. */
typedef struct at_export_exec_stats {
    uint64_t queued;  /* jobs waiting for a thread */
    uint64_t running; /* jobs running now */
    uint64_t threads; /* worker threads */
    uint64_t done;    /* jobs finished since start */
    uint64_t wait_ns; /* total queue wait of the finished jobs */
} at_export_exec_stats_t;

typedef struct at_export_resync_sink at_export_resync_sink_t;
typedef struct at_export_stack_sink at_export_stack_sink_t;

/* Adds one row to a resync in progress; only inside the provider's resync(). Returns 0, or
 * -ENOBUFS once the resync buffer is full (the rest is reported as dropped). */
int at__export_resync_add(at_export_resync_sink_t *sink, const at_export_task_row_t *row);

/* True when this resync is the first one of the exporter instance now running (a new exporter,
 * which knows nothing yet), false for a resync after dropped events. Inside resync() only. */
bool at__export_resync_first(const at_export_resync_sink_t *sink);

/* Reports where task `task_id` is suspended (its wait that began at `wait_since_ns`, as in its
 * row), innermost return address first; only inside the provider's stacks(). The pcs are
 * hashed here, on the loop thread, and copied only for a stack this exporter has not been sent
 * yet: 50,000 tasks suspended at the same place cost one copy. Returns 0, or -ENOBUFS once the
 * batch is full (the provider keeps the rest for the next call). depth 0 is ignored. */
int at__export_stack_add(at_export_stack_sink_t *sink, uint64_t task_id, uint64_t wait_since_ns,
                         void *const *pc, unsigned depth);

typedef struct at_export_provider {
    const char *name; /* "asynctop-core 0.1.0" */
    uint32_t caps;
    void *ctx;
    /* Every task that exists now, through at__export_resync_add(). Loop thread. */
    void (*resync)(void *ctx, at_export_resync_sink_t *sink);
    /* 0 and *out filled, or -ESRCH for an unknown task. Loop thread. */
    int (*task_detail)(void *ctx, uint64_t task_id, at_export_task_detail_t *out);
    /* 0 when cancellation was requested, -ESRCH, -EALREADY (already done). Loop thread. */
    int (*task_cancel)(void *ctx, uint64_t task_id);
    /* Optional (NULL: not shown): the executor's figures now. Loop thread; called about once
     * a second while a client watches, so it must be cheap. */
    void (*executor)(void *ctx, at_export_exec_stats_t *out);
    /* Optional (NULL: tasks are not grouped by stack): the suspension stacks of the tasks that
     * began a wait since the last call, through at__export_stack_add(). Loop thread, about
     * once a second while an exporter runs; it must only walk the tasks whose wait changed. */
    void (*stacks)(void *ctx, at_export_stack_sink_t *sink);
    /* Optional (NULL: no text): what a task row waits on, for a person ("sleep 5.000 s",
     * "queue #3 (full)"), from the row alone. A pure function: the exporter calls it on its
     * own thread. `buf` gets "" when the row does not wait. */
    void (*wait_desc)(const at_export_task_row_t *row, char *buf, size_t size);
} at_export_provider_t;

#define AT_EXPORT_WAIT_DESC_MAX 64 /* bytes of a row's wait_desc text, NUL included */

typedef struct uv_loop_s uv_loop_t;
typedef struct at_export_attach at_export_attach_t;

/* Attaches `p` (which must outlive the attachment) to `loop`, whether or not an exporter runs
 * now (one that starts later picks it up with a resync). Call on the loop's thread, after
 * loopmon watches the loop (at__mon_create). Adds an unref'd uv_async_t to the loop, which
 * at__export_detach closes. Returns the attachment, or NULL when memory is short or
 * uv_async_init fails (the provider then simply is not exported). */
at_export_attach_t *at__export_attach(uv_loop_t *loop, const at_export_provider_t *p);

/* Detaches and frees; call on the loop's thread before the loop closes. NULL is ignored.
 * Requests in flight for this loop are answered "loop closed". */
void at__export_detach(at_export_attach_t *a);

/* Posts one task lifecycle event from the loop thread. Wait-free, no allocation, no lock.
 * Returns false when the ring was full (the event is counted as dropped and a resync follows),
 * or when no exporter runs (then nothing is counted: the next exporter starts with a resync).
 * `a` may be NULL: returns false. */
bool at__export_task_post(at_export_attach_t *a, at_export_task_event_kind_t kind,
                          const at_export_task_row_t *row);

/* at__export_task_post without the copy: reserves the next ring slot for an event of `kind`
 * and returns its row for the caller to fill in place (a REMOVED event needs only row->id;
 * the name must be NUL-terminated), then at__export_task_commit(a) publishes it. NULL (and
 * nothing to commit) when the ring is full (counted as dropped, as by at__export_task_post)
 * or no exporter runs. Loop thread; nothing else may be posted between the two calls. */
at_export_task_row_t *at__export_task_reserve(at_export_attach_t *a,
                                              at_export_task_event_kind_t kind);
void at__export_task_commit(at_export_attach_t *a);

/* The attachment's "an exporter consumes posts" flag, for a provider's hot path: while a
 * relaxed load of it reads 0, at__export_task_post would drop the event uncounted, so the
 * provider need not even build the row. Valid until at__export_detach(a). Loop thread. */
const _Atomic int *at__export_posts_wanted(const at_export_attach_t *a);

#endif
