/* at_wire.h: the asynctop wire protocol v1 — typed message structs, encode and decode. */
#ifndef AT_WIRE_H
#define AT_WIRE_H

/*
 * Every message on the wire is one frame: a 4-byte big-endian length, then
 * exactly one CBOR data item, a definite-length map with at least the keys
 * "t" (message type, text) and "v" (protocol version, unsigned). The full
 * specification, with every key, type and unit, is docs/protocol.md; the
 * schema is docs/protocol.cddl. This header is its C mirror.
 *
 * Conventions of the structs:
 *  - Strings are NUL-terminated UTF-8; NULL means "absent" (encoded as null or
 *    left out, as the spec says for that field). Decoded strings never
 *    contain NUL.
 *  - Arrays are (n_x, x) pairs. Decoded arrays and strings live in the
 *    message's arena and die with at_wire_msg_free().
 *  - Times named *_ns are nanoseconds; *_us microseconds. "Process time" is
 *    the monotonic clock of the inspected process measured from its start
 *    (hello.start_time_ns gives the wall-clock time of that start).
 *  - Id 0 means "none" for task, object, site and stack ids.
 *
 * Threads: every function here is reentrant; a message, buffer or reader
 * must not be used by two threads at once.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "at_wire_limits.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bump this only for an incompatible change; adding keys or trailing row
 * elements is compatible and does not bump it (see docs/protocol.md). */
#define AT_WIRE_VERSION 1

/* ---- error codes ------------------------------------------------------------
 * Returned (all < 0) by the encode, decode and reader functions. */
typedef enum at_wire_errcode {
    AT_WIRE_OK = 0,
    AT_WIRE_ETRUNCATED = -1001,   /* the frame ends inside the item (or a count is too big) */
    AT_WIRE_EMALFORMED = -1002,   /* not well-formed CBOR, or a kind we never use */
    AT_WIRE_ENOTMAP = -1003,      /* the frame's item is not a definite-length map */
    AT_WIRE_EMISSING = -1004,     /* a required key is missing (err.key names it) */
    AT_WIRE_ETYPE = -1005,        /* a key's value has the wrong type (err.key) */
    AT_WIRE_EUNKNOWNTYPE = -1006, /* "t" names a message type we do not know */
    AT_WIRE_EVERSION = -1007,     /* "v" is a protocol version we do not speak */
    AT_WIRE_ELIMIT = -1008,      /* a limit of at_wire_limits.h was exceeded (err.msg says which) */
    AT_WIRE_ETRAILING = -1009,   /* bytes follow the map inside the frame */
    AT_WIRE_EVALUE = -1010,      /* a value is out of range (err.key names it) */
    AT_WIRE_EFRAME = -1011,      /* bad framing: a zero-length frame */
    AT_WIRE_ENOMEM = -1012,      /* out of memory */
    AT_WIRE_EUNEXPECTED = -1013, /* a valid message, but not the type the caller expected */
} at_wire_errcode_t;

/* Error detail filled by decoders. `code` is the first error met (latched);
 * `msg` is a sentence a person can act on, e.g. `missing required key "pid"
 * in hello`. */
typedef struct at_wire_err {
    int code;
    const char *key; /* static string: the key concerned, or NULL */
    size_t offset;   /* byte offset in the CBOR item where it was noticed */
    char msg[192];
    /* The protocol version the frame's "v" said, as soon as it was read (0: not read). Set
     * in particular with AT_WIRE_EVERSION, so a client can say "the process speaks version
     * N, this asynctop speaks AT_WIRE_VERSION" without parsing msg. */
    uint64_t peer_version;
} at_wire_err_t;

/* A static, one-line description of an error code (any int; unknown codes
 * get "unknown wire error"). */
const char *at_wire_strerror(int code);

/* ---- enumerations (values are on the wire; unknown values are kept) -------- */

typedef enum at_wire_type {
    AT_WIRE_HELLO = 1, /* "hello"     server -> client, first frame */
    AT_WIRE_SUBSCRIBE, /* "subscribe" client -> server */
    AT_WIRE_UPDATE,    /* "update"    server -> client */
    AT_WIRE_REQUEST,   /* "request"   client -> server */
    AT_WIRE_RESPONSE,  /* "response"  server -> client */
    AT_WIRE_ERROR,     /* "error"     either way */
    AT_WIRE_BYE,       /* "bye"       either way, last frame */
} at_wire_type_t;

/* The wire name of a message type ("hello", ...), NULL if out of range. */
const char *at_wire_type_name(int type);

typedef enum at_wire_task_state {
    AT_WIRE_TASK_READY = 0,     /* created or woken, waiting for its turn */
    AT_WIRE_TASK_RUNNING = 1,   /* on the loop thread right now */
    AT_WIRE_TASK_WAITING = 2,   /* suspended in an await */
    AT_WIRE_TASK_DONE = 3,      /* returned */
    AT_WIRE_TASK_CANCELLED = 4, /* finished by cancellation */
    AT_WIRE_TASK_FAILED = 5,    /* finished with an error */
    AT_WIRE_TASK_NSTATES = 6
} at_wire_task_state_t;

typedef enum at_wire_wait_kind {
    AT_WIRE_WAIT_NONE = 0,
    AT_WIRE_WAIT_FUTURE = 1, /* object = future id */
    AT_WIRE_WAIT_TASK = 2,   /* object = task id (join/await of a task) */
    AT_WIRE_WAIT_SLEEP = 3,  /* object = timer id */
    AT_WIRE_WAIT_READ = 4,   /* object = handle id (stream/socket/pipe read) */
    AT_WIRE_WAIT_WRITE = 5,  /* object = handle id */
    AT_WIRE_WAIT_CONNECT = 6,
    AT_WIRE_WAIT_ACCEPT = 7,
    AT_WIRE_WAIT_LOCK = 8,
    AT_WIRE_WAIT_EVENT = 9,
    AT_WIRE_WAIT_SEMAPHORE = 10,
    AT_WIRE_WAIT_CONDITION = 11,
    AT_WIRE_WAIT_QUEUE = 12,
    AT_WIRE_WAIT_EXECUTOR = 13, /* object = work item id */
    AT_WIRE_WAIT_GATHER = 14,   /* object = the gather future */
    AT_WIRE_WAIT_OTHER = 15,
} at_wire_wait_kind_t;

/* What kind of callback ran (slow events, running state, site stats). */
typedef enum at_wire_cb_kind {
    AT_WIRE_CB_OTHER = 0,
    AT_WIRE_CB_TIMER = 1,
    AT_WIRE_CB_IO = 2, /* uv_poll / stream read / write / connect completion */
    AT_WIRE_CB_IDLE = 3,
    AT_WIRE_CB_PREPARE = 4,
    AT_WIRE_CB_CHECK = 5,
    AT_WIRE_CB_ASYNC = 6,
    AT_WIRE_CB_SIGNAL = 7,
    AT_WIRE_CB_PROCESS = 8,
    AT_WIRE_CB_FS = 9,
    AT_WIRE_CB_WORK = 10, /* after_work of the thread pool */
    AT_WIRE_CB_CLOSE = 11,
    AT_WIRE_CB_TASK_STEP = 12, /* one resumption of a task */
    AT_WIRE_CB_CALL_SOON = 13, /* at_call_soon callback */
} at_wire_cb_kind_t;

typedef enum at_wire_exc_kind {
    AT_WIRE_EXC_WARNING = 0,           /* any other warning (message says) */
    AT_WIRE_EXC_NEVER_RETRIEVED = 1,   /* a future's error nobody retrieved */
    AT_WIRE_EXC_NEVER_AWAITED = 2,     /* a coroutine/task created and never awaited */
    AT_WIRE_EXC_DESTROYED_PENDING = 3, /* a task destroyed while still pending */
    AT_WIRE_EXC_UNCLOSED = 4,          /* a resource (handle, stream) never closed */
    AT_WIRE_EXC_WRONG_THREAD = 5,      /* a loop-only call made from another thread */
    AT_WIRE_EXC_UNHANDLED = 6,         /* an error that escaped a callback */
} at_wire_exc_kind_t;

/* Capability / subscription bits; on the wire as arrays of these names. */
enum {
    AT_WIRE_CAP_TASKS = 1u << 0,      /* "tasks" */
    AT_WIRE_CAP_SLOW = 1u << 1,       /* "slow" */
    AT_WIRE_CAP_EXCEPTIONS = 1u << 2, /* "exceptions" */
    AT_WIRE_CAP_LOOP = 1u << 3,       /* "loop": loop stats */
    AT_WIRE_CAP_STACKS = 1u << 4,     /* "stacks": sampled/suspension stacks */
    AT_WIRE_CAP_SITES = 1u << 5,      /* "sites": per-call-site aggregates */
    AT_WIRE_CAP_INFLIGHT = 1u << 6,   /* "inflight": in-flight request rows */
    AT_WIRE_CAP_SET_CONFIG = 1u << 7, /* "set_config" request accepted */
    AT_WIRE_CAP_CANCEL = 1u << 8,     /* "cancel" request accepted */
    AT_WIRE_CAP_LOOP_STACK = 1u << 9, /* "loop_stack" request accepted */
    AT_WIRE_CAP_PAUSE = 1u << 10,     /* "pause"/"resume" accepted */
    AT_WIRE_CAP_DEBUG = 1u << 11,     /* debug mode can be toggled */
    AT_WIRE_CAP_COUNT = 12
};
/* The wire name of capability bit number `bit` (0..AT_WIRE_CAP_COUNT-1). */
const char *at_wire_cap_name(unsigned bit);

typedef enum at_wire_op {
    AT_WIRE_OP_UNKNOWN = 0,     /* decoded from an op name we do not know (see op_name) */
    AT_WIRE_OP_TASK_DETAIL = 1, /* "task_detail" */
    AT_WIRE_OP_SET_CONFIG = 2,  /* "set_config" */
    AT_WIRE_OP_CANCEL = 3,      /* "cancel" */
    AT_WIRE_OP_LOOP_STACK = 4,  /* "loop_stack" */
    AT_WIRE_OP_PAUSE = 5,       /* "pause" */
    AT_WIRE_OP_RESUME = 6,      /* "resume" */
} at_wire_op_t;
const char *at_wire_op_name(int op);

/* Codes of the "error" message and of failed responses (on the wire). */
typedef enum at_wire_status {
    AT_WIRE_ST_OK = 0,
    AT_WIRE_ST_BAD_FRAME = 1,  /* undecodable frame (reason says why) */
    AT_WIRE_ST_TOO_LARGE = 2,  /* frame over the limit */
    AT_WIRE_ST_VERSION = 3,    /* unsupported protocol version */
    AT_WIRE_ST_PERMISSION = 4, /* peer uid not allowed */
    AT_WIRE_ST_TOO_MANY_CLIENTS = 5,
    AT_WIRE_ST_TIMEOUT = 6,       /* handshake / subscribe timeout */
    AT_WIRE_ST_UNKNOWN_TYPE = 7,  /* message type not expected here */
    AT_WIRE_ST_SHUTDOWN = 8,      /* the process is exiting */
    AT_WIRE_ST_SLOW_CONSUMER = 9, /* client did not read; disconnected */
    AT_WIRE_ST_INTERNAL = 10,
    AT_WIRE_ST_BAD_REQUEST = 11, /* a request with bad arguments */
    AT_WIRE_ST_NO_SUCH_TASK = 12,
    AT_WIRE_ST_UNSUPPORTED = 13, /* op or capability not available */
    AT_WIRE_ST_RATE_LIMITED = 14,
} at_wire_status_t;

/* Short lower-case names of enumeration values, for display and JSON:
 * "waiting", "sleep", "timer", "never_retrieved", "no_such_task"... NULL for
 * a value this build does not know (show the number instead). */
const char *at_wire_task_state_name(int state);
const char *at_wire_wait_kind_name(int kind);
const char *at_wire_cb_kind_name(int kind);
const char *at_wire_exc_kind_name(int kind);
const char *at_wire_status_name(int status);

/* ---- where a process's socket is (the rule is part of the protocol: docs/protocol.md) ---- */

/* Writes the socket directory into buf: "$XDG_RUNTIME_DIR/asynctop" when XDG_RUNTIME_DIR is an
 * absolute path, else "/tmp/asynctop-<euid>". The effective uid, on both sides: the process
 * creates the directory (so it is owned by its effective uid) and checks that owner against
 * geteuid(), and its SO_PEERCRED check compares the client's effective uid with its own; a
 * client must look where the processes it may attach to are. Returns what snprintf returns
 * (the result is cut when that is >= len). Reads the environment: one thread at a time. */
int at_wire_socket_dir(char *buf, size_t len);
/* Writes "<at_wire_socket_dir()>/<pid>.sock" into buf; returns as at_wire_socket_dir. (The
 * ASYNCTOP_SOCKET override is each side's own business.) */
int at_wire_socket_path(char *buf, size_t len, uint64_t pid);

/* ---- building blocks ------------------------------------------------------ */

/* One symbolised stack frame. func/file NULL when not symbolised; line 0
 * when unknown; build_id: the GNU build-id of the module (executable or
 * shared object) holding addr, in lowercase hex, NULL when unknown (then not
 * sent), so that a frame named module+0xoffset can be symbolised offline.
 * Wire: [addr, func|null, file|null, line] or [addr, func|null, file|null,
 * line, build_id]. */
typedef struct at_wire_loc {
    uint64_t addr;
    const char *func;
    const char *file;
    uint32_t line;
    const char *build_id;
} at_wire_loc_t;

/* An interned code location: sent once per connection (per snapshot) in an
 * update's "sites" table, referenced by id (>= 1) afterwards.
 * Wire: [id, addr, func|null, file|null, line], and build_id (text) as a 6th
 * element when known. */
typedef struct at_wire_site {
    uint32_t id;
    at_wire_loc_t loc;
} at_wire_site_t;

/* An interned stack: a list of site ids, innermost frame first.
 * Wire: [id, [site, ...]]. */
typedef struct at_wire_stack {
    uint32_t id;
    uint32_t n_sites;
    const uint32_t *sites;
} at_wire_stack_t;

/* A latency histogram, log-linear: see at_wire_hist_index(). counts[i] is
 * the number of samples in bucket i; trailing empty buckets may be left out.
 * Wire: [count, ...]. */
typedef struct at_wire_hist {
    uint32_t n;
    const uint64_t *counts;
} at_wire_hist_t;

/* Bucket scheme shared by both sides: 4 buckets per power of two, values in
 * ns. Values 0..3 have their own buckets; for v >= 4 with e = floor(log2 v),
 * bucket = 4*(e-1) + ((v >> (e-2)) & 3). Relative width <= 25%. */
#define AT_WIRE_HIST_BUCKETS 252
/* The bucket of value v. Inline: the runtime counts task steps with it on its hot path. */
static inline unsigned at_wire_hist_index(uint64_t v)
{
    if (v < 4)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    return 4u * (e - 1u) + (unsigned)((v >> (e - 2u)) & 3u);
}
/* Smallest value that falls in bucket i (i < AT_WIRE_HIST_BUCKETS). */
uint64_t at_wire_hist_lower(unsigned i);
/* One past the largest value that falls in bucket i (i < AT_WIRE_HIST_BUCKETS);
 * UINT64_MAX for the last bucket. */
uint64_t at_wire_hist_upper(unsigned i);
/* The q-quantile (0 < q <= 1, clamped into that range) of a histogram; 0 when it is empty.
 * The sample of rank q*total is found in its bucket and the value is interpolated
 * linearly across the bucket's range by the rank's position among the bucket's count
 * (samples assumed spread evenly inside a bucket), so the error is at most the bucket's
 * width (25% of its lower bound). The result is then clamped to [min_ns, max_ns], the
 * smallest and largest samples recorded, where the caller knows them: pass 0 and
 * UINT64_MAX when it does not. Buckets past AT_WIRE_HIST_BUCKETS are ignored. Pure. */
uint64_t at_wire_hist_quantile(const at_wire_hist_t *h, double q, uint64_t min_ns, uint64_t max_ns);

/* A named counter (handles by type, dropped events by kind).
 * Wire: [name, count]. */
typedef struct at_wire_count {
    const char *name;
    uint64_t n;
} at_wire_count_t;

/* Runtime configuration: in hello, in every update, in set_config requests
 * (only the has_ fields are changed) and their responses (value in force). */
typedef struct at_wire_config {
    bool has_slow_ns;
    uint64_t slow_ns; /* slow-callback threshold */
    bool has_debug;
    bool debug; /* debug mode (creation stacks, thread checks) */
} at_wire_config_t;

/* One event loop of the process (a process may export several, issue 9), in hello.loops and
 * update.loops. Wire: [id, name|null, tid] with optional trailing elements, each group sent
 * only when set (a receiver reads what is there):
 *   3..5  thread|null, kind|null, addr            (when thread, kind or addr is set, or stats)
 *   6..11 busy_ns, idle_ns, callbacks, slow, pending, running_ns  (when has_stats; a row of 11
 *         elements, without running_ns, is read too)
 * Older peers read the first three and ignore the rest. */
typedef struct at_wire_loop_info {
    uint32_t id;         /* 0 = the main loop */
    const char *name;    /* e.g. "main", "worker-2", NULL */
    uint64_t tid;        /* Linux thread id running it, 0 unknown */
    const char *thread;  /* optional: the thread's name (/proc comm), NULL unknown */
    const char *kind;    /* optional: "at_loop" (asynctop runtime), "uv" (a libuv loop under the
                            preload shim), NULL unknown */
    uint64_t addr;       /* optional: the uv_loop_t's address in the process, 0 unknown */
    bool has_stats;      /* the five counters below are present (update.loops) */
    uint64_t busy_ns;    /* cumulative, as stats.busy_ns of that loop */
    uint64_t idle_ns;    /* cumulative, as stats.idle_ns */
    uint64_t callbacks;  /* cumulative, as stats.callbacks */
    uint64_t slow;       /* cumulative, as stats.slow */
    uint64_t pending;    /* now: tasks/in-flight requests not finished (ready+running+waiting) */
    uint64_t running_ns; /* how long the callback running now has run (0: none), so a client
                            sees another loop blocked and counts it as busy */
} at_wire_loop_info_t;

/* ---- hello: server -> client, the first frame ----------------------------- */
typedef struct at_wire_hello {
    uint32_t version; /* protocol version the server speaks (AT_WIRE_VERSION) */
    uint64_t pid;
    const char *program; /* short name (comm / basename of argv[0]) */
    uint32_t n_argv;
    const char *const *argv;
    const char *runtime_version; /* libasynctop version, e.g. "0.1.0" */
    uint64_t start_time_ns;      /* wall clock (Unix epoch ns) at process start */
    uint64_t now_ns;             /* process time when hello was sent */
    at_wire_config_t config;     /* in force */
    uint32_t caps;               /* AT_WIRE_CAP_* */
    uint32_t n_loops;            /* issue 9: loops exported; 0 = just the main loop, id 0 */
    const struct at_wire_loop_info *loops;
} at_wire_hello_t;

/* ---- subscribe: client -> server ------------------------------------------ */
typedef struct at_wire_subscribe {
    uint32_t version;
    uint32_t interval_ms; /* updates at most this often; server clamps to >= 100 */
    uint32_t what;        /* AT_WIRE_CAP_* data wanted; 0 on the wire = absent = all */
    uint32_t loop;        /* reserved: which loop (0 = main) */
} at_wire_subscribe_t;

/* ---- update: server -> client ---------------------------------------------- */

/* A task row (compact: positional array on the wire, see docs/protocol.md).
 * Sent in tasks_new when first seen and tasks_changed when any field moved. */
typedef struct at_wire_task {
    uint64_t id;
    const char *name;       /* NULL = unnamed */
    uint8_t state;          /* at_wire_task_state_t */
    uint8_t wait_kind;      /* at_wire_wait_kind_t */
    uint64_t wait_obj;      /* id of what it waits on, 0 none */
    uint64_t wait_since_us; /* process time (us) when the current wait began */
    uint64_t busy_ns;       /* total time spent running */
    uint64_t steps;         /* number of resumptions */
    uint64_t parent;        /* task that spawned it, 0 none */
    uint64_t created_us;    /* process time (us) of creation */
    uint32_t create_site;   /* site id of the spawn call, 0 unknown */
    uint32_t entry_site;    /* site id of the task's function, 0 unknown */
    uint32_t stack;         /* suspension stack id (groups tasks), 0 unknown */
    /* Optional trailing element 13: what it waits on, for a person ("sleep 5.000 s",
     * "read tcp fd 7", "lock #4 held by task 3"); NULL = not sent (the row then has 13
     * elements, as before). */
    const char *wait_desc;
} at_wire_task_t;

/* Aggregate per call site (callback function), cumulative since start. */
typedef struct at_wire_site_stats {
    uint32_t site; /* site id of the callback function */
    uint8_t kind;  /* at_wire_cb_kind_t */
    uint64_t count;
    uint64_t total_ns;
    uint64_t max_ns;
    uint64_t slow; /* how many were over the threshold in force then */
    at_wire_hist_t hist;
    /* Optional trailing element 8: the shortest callback; false = not sent (a row of 7,
     * as before; quantiles are then clamped to max_ns only). */
    bool has_min;
    uint64_t min_ns;
} at_wire_site_stats_t;

/* One stack of a stall's profile: how many samples found the loop thread in it. */
typedef struct at_wire_profile_stack {
    uint32_t stack; /* interned stack id (never 0) */
    uint32_t count; /* samples in it */
} at_wire_profile_stack_t;

/* The profile of a callback that ran past the threshold: the loop thread's stack sampled every
 * interval_ns while it ran (docs/exporter.md, "Profiling a stall"). Key `profile` of a slow
 * event and of `running`; samples == 0: none (the key is not sent). */
typedef struct at_wire_profile {
    uint32_t samples;                      /* samples taken in all (stacks + other) */
    uint64_t interval_ns;                  /* the sampling interval */
    uint32_t other;                        /* samples in no listed stack */
    uint32_t n_stacks;                     /* our server sends at most 32 */
    const at_wire_profile_stack_t *stacks; /* heaviest first */
} at_wire_profile_t;

/* One slow callback (ran longer than the threshold). */
typedef struct at_wire_slow {
    uint64_t seq;         /* event number (gaps = dropped events) */
    uint64_t start_ns;    /* process time it started */
    uint64_t dur_ns;      /* how long it ran */
    uint8_t kind;         /* at_wire_cb_kind_t */
    uint32_t site;        /* callback function site id, 0 unknown */
    const char *name;     /* callback name if the runtime knows one, else NULL */
    uint64_t task;        /* task it ran for, 0 none */
    uint32_t stack;       /* stack sampled while it was blocking, 0 none */
    uint32_t sched_stack; /* where it was scheduled from (debug mode), 0 none */
    /* the stacks that took its time (with a profile, `stack` is its heaviest); samples 0: none */
    at_wire_profile_t profile;
} at_wire_slow_t;

/* One exception or warning event. */
typedef struct at_wire_exc {
    uint64_t seq;
    uint64_t time_ns;      /* process time it was detected */
    uint8_t kind;          /* at_wire_exc_kind_t */
    int64_t code;          /* the error's own code (e.g. -errno), 0 none */
    const char *domain;    /* the error's domain ("asynctop", "uv", "errno", "app"), NULL none */
    const char *message;   /* human-readable */
    uint64_t object;       /* future / task / handle id concerned, 0 none */
    const char *obj_type;  /* "future", "task", "tcp", ... NULL none */
    uint64_t task;         /* task involved, 0 none */
    uint32_t raise_stack;  /* where the error was set/raised, 0 none */
    uint32_t create_stack; /* where the object was created (debug), 0 none */
    const char *severity;  /* "error" or "warning" (another word from a newer peer), NULL none */
} at_wire_exc_t;

/* The callback running on the loop thread when the update was built. */
typedef struct at_wire_running {
    bool present;      /* false: the loop was idle / polling */
    uint64_t since_ns; /* process time it started */
    uint8_t kind;      /* at_wire_cb_kind_t */
    uint32_t site;
    const char *name;
    uint64_t task;
    uint32_t stack;        /* sampled stack once over the threshold, 0 none */
    const char *task_name; /* the task's name, so a client need not know the task; NULL */
    /* its profile so far, once over the threshold (`stack` is its heaviest); samples 0: none */
    at_wire_profile_t profile;
} at_wire_running_t;

/* Loop statistics; counters are cumulative since start (clients diff them). */
typedef struct at_wire_loop_stats {
    uint64_t busy_ns;    /* time inside callbacks */
    uint64_t idle_ns;    /* time blocked in the poll (uv_metrics_idle_time) */
    uint64_t iterations; /* loop iterations */
    uint64_t callbacks;  /* callbacks run */
    uint64_t slow;       /* slow callbacks */
    uint64_t errors;     /* exception/warning events */
    at_wire_hist_t lag;  /* loop lag samples (ns), one per loop iteration */
    uint64_t lag_max_ns; /* optional: the largest lag sample since start; 0 = not sent */
    /* tasks the server currently reports, by at_wire_task_state_t; a
     * finished task counts under its final state until it is in tasks_gone */
    uint64_t tasks_by_state[AT_WIRE_TASK_NSTATES];
    uint32_t n_handles;
    const at_wire_count_t *handles; /* live handles by type ("tcp": 12) */
    uint64_t exec_queued;           /* executor: jobs waiting */
    uint64_t exec_running;          /* jobs running */
    uint64_t exec_threads;          /* worker threads */
    uint64_t exec_done;             /* jobs finished (cumulative) */
    uint64_t exec_wait_ns;          /* total queue wait of finished jobs */
} at_wire_loop_stats_t;

/* Issue 9: one in-flight request (a libuv request under the preload shim,
 * or an application-level request). Wire: [id, kind, name, task, start_us, stack]. */
typedef struct at_wire_inflight {
    uint64_t id;
    const char *kind;  /* "fs", "work", "connect", "write", "getaddrinfo", "http"... */
    const char *name;  /* e.g. "open /etc/hosts", "GET /users/7", NULL */
    uint64_t task;     /* task waiting for it, 0 none */
    uint64_t start_us; /* process time (us) it was issued */
    uint32_t stack;    /* where it was issued (debug mode), 0 none */
} at_wire_inflight_t;

typedef struct at_wire_update {
    uint32_t version;
    uint64_t seq;            /* 0, 1, 2, ... on this connection */
    uint64_t ts_ns;          /* process time the update describes */
    uint32_t loop;           /* reserved: 0 = main loop */
    bool full;               /* snapshot: drop all state (tasks, sites, stacks) first */
    at_wire_config_t config; /* in force */
    bool has_stats;
    at_wire_loop_stats_t stats;
    at_wire_running_t running;
    uint32_t n_dropped;
    const at_wire_count_t *dropped; /* dropped events per kind, cumulative */
    uint32_t n_sites;
    const at_wire_site_t *sites; /* newly interned sites */
    uint32_t n_stacks;
    const at_wire_stack_t *stacks; /* newly interned stacks */
    uint32_t n_tasks_new;
    const at_wire_task_t *tasks_new;
    uint32_t n_tasks_changed;
    const at_wire_task_t *tasks_changed;
    uint32_t n_tasks_gone;
    const uint64_t *tasks_gone; /* ids of tasks that no longer exist */
    uint32_t n_site_stats;
    const at_wire_site_stats_t *site_stats; /* sites whose aggregate changed */
    uint32_t n_slow;
    const at_wire_slow_t *slow;
    uint32_t n_exc;
    const at_wire_exc_t *exc;
    uint32_t n_inflight; /* reserved (issue 9) */
    const at_wire_inflight_t *inflight;
    uint32_t n_inflight_gone;
    const uint64_t *inflight_gone;
    /* optional: every loop the process exports now, with its counters (has_stats), so a
     * client can offer a choice of loop and notice one that closed; 0 = not sent */
    uint32_t n_loops;
    const at_wire_loop_info_t *loops;
    /* optional: the loop this connection watches has closed (its last events were sent);
     * the connection stays up, a client subscribes again (a new connection) for another */
    bool loop_gone;
    /* optional: the final state (at_wire_task_state_t) of each task of tasks_gone, same order
     * and count; a task may end and be released within one interval, and without this a
     * client that last saw it waiting cannot tell cancelled or failed from done. 0 = absent */
    uint32_t n_tasks_gone_state;
    const uint64_t *tasks_gone_state;
} at_wire_update_t;

/* ---- request: client -> server, response: server -> client ---------------- */
typedef struct at_wire_request {
    uint32_t version;
    uint64_t id;             /* chosen by the client; echoed in the response */
    uint8_t op;              /* at_wire_op_t */
    const char *op_name;     /* the wire name when op == AT_WIRE_OP_UNKNOWN */
    uint64_t task;           /* task_detail, cancel */
    at_wire_config_t config; /* set_config: fields to change */
    uint32_t loop;           /* reserved: 0 = main */
} at_wire_request_t;

/* Task detail: the row plus what only a request may ask for. */
typedef struct at_wire_task_detail {
    at_wire_task_t task;
    const char *wait_desc; /* "sleep 5.000 s", "read tcp fd 7", NULL */
    uint32_t n_create;
    const at_wire_loc_t *create; /* creation stack, innermost first (debug mode) */
    uint32_t n_suspend;
    const at_wire_loc_t *suspend; /* where it is suspended now */
    uint32_t n_children;
    const uint64_t *children;
    at_wire_hist_t step_hist; /* step durations (ns) */
    const char *error;        /* failed tasks: the error message, else NULL */
} at_wire_task_detail_t;

typedef struct at_wire_response {
    uint32_t version;
    uint64_t id;         /* the request's id */
    uint8_t op;          /* the request's op (AT_WIRE_OP_UNKNOWN if it was unknown) */
    const char *op_name; /* the request's op name when op == AT_WIRE_OP_UNKNOWN */
    uint32_t status;     /* at_wire_status_t; 0 = ok */
    const char *reason;  /* when status != 0: why, for a person */
    bool has_detail;
    at_wire_task_detail_t detail; /* task_detail */
    bool has_config;
    at_wire_config_t config; /* set_config: the values now in force */
    bool has_stack;
    uint32_t n_stack;
    const at_wire_loc_t *stack; /* loop_stack: the loop thread's stack now */
    at_wire_running_t running;  /* loop_stack: what runs (present=false: idle) */
} at_wire_response_t;

/* ---- error and bye: either direction ------------------------------------- */
typedef struct at_wire_error {
    uint32_t version;
    uint32_t code;      /* at_wire_status_t */
    const char *reason; /* for a person */
    bool fatal;         /* the sender closes the connection after this frame */
} at_wire_error_t;

typedef struct at_wire_bye {
    uint32_t version;
    const char *reason; /* NULL or e.g. "process exiting" */
} at_wire_bye_t;

/* ---- a decoded message ----------------------------------------------------- */
typedef struct at_wire_msg {
    int type; /* at_wire_type_t */
    union {
        at_wire_hello_t hello;
        at_wire_subscribe_t subscribe;
        at_wire_update_t update;
        at_wire_request_t request;
        at_wire_response_t response;
        at_wire_error_t error;
        at_wire_bye_t bye;
    } u;
    void *arena_; /* private: owns every pointer above */
} at_wire_msg_t;

/* Decode limits (see at_wire_limits.h for the numbers and why). */
typedef struct at_wire_limits {
    size_t max_frame;    /* bytes of one frame's CBOR item */
    uint32_t max_depth;  /* nesting of arrays/maps */
    uint32_t max_items;  /* elements of one array / pairs of one map */
    uint32_t max_string; /* bytes of one text/byte string */
    uint64_t max_total;  /* data items in one frame */
    size_t max_memory;   /* bytes the decoder may allocate for one message */
} at_wire_limits_t;

/* What a server accepts from a client (small), and what a client accepts
 * from a server (large enough for a snapshot of many tasks). */
extern const at_wire_limits_t at_wire_limits_c2s;
extern const at_wire_limits_t at_wire_limits_s2c;

/* Decodes one CBOR item (a frame's payload, without the 4-byte length) into
 * *out. Untrusted input is fine: every limit of `lim` is enforced before the
 * matching allocation, and memory stays under lim->max_memory. On success
 * returns 0 and *out owns its memory until at_wire_msg_free(out). On error
 * returns the (first) AT_WIRE_E* code, fills *err if not NULL, and *out
 * holds nothing to free (at_wire_msg_free on it is still safe). *out is
 * overwritten: free a previous message first. */
int at_wire_decode(const uint8_t *cbor, size_t len, const at_wire_limits_t *lim, at_wire_msg_t *out,
                   at_wire_err_t *err);

/* Like at_wire_decode, but a well-formed message of another type than
 * `type` is AT_WIRE_EUNEXPECTED (out is then freed). */
int at_wire_decode_expect(const uint8_t *cbor, size_t len, int type, const at_wire_limits_t *lim,
                          at_wire_msg_t *out, at_wire_err_t *err);

/* Frees what a decode put in *m (idempotent; m->type is reset to 0). */
void at_wire_msg_free(at_wire_msg_t *m);

/* ---- encoding ---------------------------------------------------------------- */

/* A growable output buffer. Encoders append whole frames (length prefix and
 * CBOR item); on failure the buffer is left as it was before the call. */
typedef struct at_wire_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} at_wire_buf_t;

/* An empty buffer; allocates nothing until the first encode. */
void at_wire_buf_init(at_wire_buf_t *b);
/* Releases the memory; the buffer is then empty and usable again. */
void at_wire_buf_free(at_wire_buf_t *b);
/* Forgets the content, keeps the memory (for reuse by the next frames). */
void at_wire_buf_reset(at_wire_buf_t *b);

/* Each appends one frame to *b and returns 0, or AT_WIRE_ENOMEM, or
 * AT_WIRE_ELIMIT when the item would exceed 4 GiB - 1 (the length prefix).
 * The struct's `version` field is ignored: AT_WIRE_VERSION is written.
 * Encoding is deterministic (fixed key order, shortest integer forms), so
 * golden frames can be compared byte for byte. Invalid UTF-8 in strings is
 * replaced by '?'. Precondition: pointers with n > 0 are non-NULL. */
int at_wire_encode_hello(at_wire_buf_t *b, const at_wire_hello_t *m);
int at_wire_encode_subscribe(at_wire_buf_t *b, const at_wire_subscribe_t *m);
int at_wire_encode_update(at_wire_buf_t *b, const at_wire_update_t *m);
int at_wire_encode_request(at_wire_buf_t *b, const at_wire_request_t *m);
int at_wire_encode_response(at_wire_buf_t *b, const at_wire_response_t *m);
int at_wire_encode_error(at_wire_buf_t *b, const at_wire_error_t *m);
int at_wire_encode_bye(at_wire_buf_t *b, const at_wire_bye_t *m);
/* Dispatches on m->type; AT_WIRE_EUNKNOWNTYPE for an unknown type. */
int at_wire_encode(at_wire_buf_t *b, const at_wire_msg_t *m);

#ifdef __cplusplus
}
#endif

#endif
