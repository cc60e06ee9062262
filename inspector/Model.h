/* Model.h: the inspector's mirror of one target process (tasks, slow callbacks,
 * exceptions, loop statistics), bounded and validated so that a hostile or
 * buggy runtime cannot make it grow without limit or crash it. */
#ifndef ASYNCTOP_MODEL_H
#define ASYNCTOP_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "at_wire.h"

/* Limits on what one target can make us hold. Everything past them is
 * dropped and counted in Model.rejected. */
#define MODEL_MAX_TASKS    1000000u /* tasks mirrored at once */
#define MODEL_MAX_STR      256u     /* bytes kept of any name/location string */
#define MODEL_MAX_FRAMES   64u      /* frames kept of any stack */
#define MODEL_MAX_SLOW     2048u    /* recent slow-callback events kept (ring) */
#define MODEL_MAX_SITES    4096u    /* distinct slow call sites aggregated */
#define MODEL_MAX_EXC      2048u    /* recent exception/warning events kept (ring) */
#define MODEL_MAX_HANDLES  32u      /* handle types shown */
#define MODEL_HISTORY      240u     /* loop samples kept for sparklines */
#define MODEL_HIST_BUCKETS 32u      /* log2 buckets of histograms */
#define MODEL_MAX_DROPPED  16u      /* dropped-event counter kinds */
#define MODEL_LINGER_MS    4000u    /* finished tasks stay visible (dimmed) this long */

typedef struct StackFrame {
    char *func; /* never NULL once stored ("?" when unknown) */
    char *file; /* may be NULL */
    uint32_t line;
    uint64_t addr;
    char *build_id; /* the module's GNU build-id, lowercase hex; NULL when not sent */
} StackFrame;

typedef struct Stack {
    uint32_t n;
    StackFrame *f;
} Stack;

typedef enum TaskState { /* same numbers as the wire's task states */
                         TS_READY,
                         TS_RUNNING,
                         TS_WAITING,
                         TS_DONE,
                         TS_CANCELLED,
                         TS_FAILED,
                         TS_OTHER, /* a state this inspector does not know (a newer runtime) */
                         TS_COUNT
} TaskState;

/* Short lower-case name of a state, the wire's (at_wire_task_state_name: "waiting"); "other"
 * for TS_OTHER, "?" when out of range. */
const char *TaskState_name(unsigned state);

typedef struct Task {
    uint64_t id;
    uint64_t parent;      /* 0: none */
    char *name;           /* never NULL */
    char *waits_on;       /* never NULL ("" when not waiting) */
    char *created_at;     /* "func file:line", never NULL */
    char *where;          /* top of the suspension stack, never NULL */
    uint64_t stack_key;   /* the wire's id of the suspension stack (valid until the next full
                           * update); 0 unknown */
    uint64_t group_key;   /* the suspension stack by content (its frames as shown), the same
                           * whatever id the stack has; 0 unknown */
    bool waits_described; /* waits_on is the runtime's own description (not "kind #obj") */
    uint8_t state;
    uint64_t created_ns;    /* target clock */
    uint64_t wait_since_ns; /* target clock; 0 not waiting */
    uint64_t busy_ns;
    uint64_t steps;
    uint64_t gone_ms; /* local clock when it finished or was removed; 0 = alive */
    uint32_t mark;    /* scratch for traversals (tree), owned by the traversal */
} Task;

/* What an update says about one task; strings are borrowed, any may be NULL. */
typedef struct TaskRow {
    uint64_t id, parent;
    const char *name, *waits_on, *created_at, *where;
    size_t name_len, waits_on_len, created_at_len, where_len; /* SIZE_MAX: use strlen */
    uint64_t stack_key;                                       /* the wire's stack id */
    uint64_t group_key;   /* the stack by content, 0 unknown (see Task) */
    bool waits_described; /* waits_on is the runtime's own words (see Task) */
    int state;            /* TaskState, validated */
    uint64_t created_ns, wait_since_ns, busy_ns, steps;
} TaskRow;

/* A stall's profile (wire `profile`): the loop thread's stack sampled every interval_ns while
 * one callback ran past the threshold, counted per stack, heaviest first. */
#define MODEL_MAX_PROFILE 32u /* stacks kept of one profile (more count as other) */
typedef struct Profile {
    uint32_t samples;     /* in all */
    uint32_t other;       /* samples in no stack below */
    uint64_t interval_ns; /* 0: one sample per stall (profiling off in the process) */
    uint32_t n;
    uint32_t count[MODEL_MAX_PROFILE];
    Stack stack[MODEL_MAX_PROFILE];
} Profile;

/* Frees p and its stacks (NULL is fine). */
void Profile_free(Profile *p);

typedef struct SlowEvent {
    uint64_t when_ns; /* target clock */
    uint64_t duration_ns;
    uint64_t task_id;     /* 0: not in a task */
    char *callback;       /* never NULL */
    char *site;           /* call site key, never NULL */
    char *task_name;      /* may be "" */
    Stack stack;          /* sampled while blocking */
    Stack scheduled_from; /* where the callback was scheduled */
    Profile *profile;     /* the stacks that took its time, NULL none (owned) */
} SlowEvent;

typedef struct SlowSite {
    char *site;
    uint64_t count, max_ns, total_ns, min_ns; /* slow events seen since we attached */
    uint64_t hist[AT_WIRE_HIST_BUCKETS];      /* their durations, wire buckets, for p99 */
    bool runtime;                             /* the runtime sent cumulative figures (below) */
    uint64_t calls;                           /* all callbacks at this site since start */
    uint64_t slow;                            /* of which slow */
    uint64_t rt_max_ns, rt_p99_ns;            /* p99 by at_wire_hist_quantile, within min..max */
} SlowSite;

typedef enum ExcKind { /* same numbers as the wire's exception kinds */
                       EXC_WARNING,
                       EXC_NEVER_RETRIEVED,
                       EXC_NEVER_AWAITED,
                       EXC_DESTROYED_PENDING,
                       EXC_UNCLOSED_RESOURCE,
                       EXC_WRONG_THREAD,
                       EXC_UNHANDLED,
                       EXC_COUNT
} ExcKind;

/* The wire's name of an exception kind (at_wire_exc_kind_name: "never_retrieved"), except
 * EXC_UNCLOSED_RESOURCE, which dump --json has always called "unclosed_resource" (the wire:
 * "unclosed"); "?" when out of range. */
const char *ExcKind_name(unsigned kind);

typedef struct ExcEvent {
    uint64_t when_ns;
    uint8_t kind;
    uint64_t task_id;
    const char *severity; /* "error", "warning", or "?" for a word this inspector does not know
                             (static), never NULL after Model_addException */
    int64_t code;         /* the error's own code (e.g. -111), 0 when none was sent */
    char *domain;         /* the error's own domain ("asynctop", "uv"), "" when none was sent */
    char *message;        /* never NULL; may hold line breaks (the process's own text) */
    char *site;           /* raise site / where detected, never NULL */
    char *object;         /* "future #12", may be "" */
    Stack raised;         /* where it was raised / detected */
    Stack stack;          /* creation traceback (debug mode) */
} ExcEvent;

typedef struct Counter {
    char *name;
    uint64_t value;
} Counter;

typedef struct LoopStats {
    double utilisation; /* 0..1 */
    double callbacks_per_s;
    uint64_t lag_p50_ns, lag_p99_ns;
    uint64_t lag_hist[MODEL_HIST_BUCKETS]; /* log2(ns) buckets */
    uint32_t nhandles;
    Counter handles[MODEL_MAX_HANDLES];
    uint64_t exec_queue, exec_threads, exec_busy, exec_done;
    uint64_t exec_wait_avg_ns;
    uint64_t slow_total;   /* slow callbacks so far, as the runtime counts them */
    uint64_t errors_total; /* exception/warning events so far */
    uint64_t iterations;
    bool has_tasks_by_state;
    uint64_t tasks_by_state[TS_COUNT]; /* as the runtime counts them */
} LoopStats;

/* One event loop of the target (a process may run several, each on its own thread: issue 9).
 * The model keeps every loop the process reported, closed ones too (marked gone), ordered by
 * id: 0 is the main loop, the others by age. Plain data: no pointers. */
#define MODEL_MAX_LOOPS 64u
typedef struct LoopInfo {
    uint32_t id;     /* the wire's loop id: 0 = main */
    uint64_t tid;    /* thread running it, 0 unknown */
    uint64_t addr;   /* uv_loop_t address in the process, 0 unknown */
    char name[32];   /* "main", or "" */
    char thread[32]; /* the thread's name, "" unknown */
    char kind[16];   /* "at_loop", "uv", "" unknown */
    bool gone;       /* closed: no longer reported */
    bool has_stats;  /* the figures below were reported at least once */
    double utilisation, callbacks_per_s;
    uint64_t slow, pending; /* slow callbacks since start; unfinished tasks/requests now */
    uint64_t running_ns;    /* how long its current callback had run when reported, 0 none */
    /* previous cumulative counters, for the rates */
    bool have_prev;
    uint64_t prev_ts, prev_busy, prev_idle, prev_callbacks;
} LoopInfo;

/* What the process says about one loop (hello.loops, update.loops); strings borrowed, any
 * may be NULL; the counters are cumulative and read only when has_stats. */
typedef struct LoopRow {
    uint32_t id;
    uint64_t tid, addr;
    const char *name, *thread, *kind;
    bool has_stats;
    uint64_t busy_ns, idle_ns, callbacks, slow, pending, running_ns;
} LoopRow;

typedef enum ConnState {
    CONN_NONE,
    CONN_CONNECTING,
    CONN_LIVE,
    CONN_PAUSED,
    CONN_EXITED,
    CONN_LOST
} ConnState;

typedef struct Model {
    /* identity, from hello */
    uint64_t pid;
    char *program;
    char *argv;             /* joined with spaces */
    uint64_t start_wall_ns; /* Unix ns at process start */
    char *runtime_version;
    uint32_t protocol;
    uint64_t start_ns;     /* target clock at process start */
    uint64_t now_ns;       /* target clock of the latest update */
    uint64_t now_local_ms; /* local clock when the latest update arrived */
    /* config in force, as the runtime reports it */
    uint64_t slow_threshold_ns;
    bool debug;
    /* tasks: individually allocated so pointers are stable until purge */
    Task **tasks;
    uint32_t ntasks, cap;
    uint32_t *hash; /* open addressing, id -> index+1, 0 empty; size hcap (power of 2) */
    uint32_t hcap;
    uint32_t nlinger; /* tasks with gone_ms != 0 */
    uint32_t by_state[TS_COUNT];
    uint64_t gen; /* bumps whenever the task set or any task changes */
    /* slow callbacks */
    SlowEvent slow[MODEL_MAX_SLOW];
    uint64_t nslow; /* total ever added; ring index = nslow % MODEL_MAX_SLOW */
    SlowSite *sites;
    uint32_t nsites;
    uint64_t slow_gen;
    /* exceptions */
    ExcEvent exc[MODEL_MAX_EXC];
    uint64_t nexc;
    uint64_t exc_by_kind[EXC_COUNT];
    /* loop */
    LoopStats loop;
    float util_hist[MODEL_HISTORY];
    float lag_hist_ms[MODEL_HISTORY];
    uint32_t nhistory; /* samples ever added */
    Counter dropped[MODEL_MAX_DROPPED];
    uint32_t ndropped;
    /* the blocked state */
    bool blocked;
    uint64_t blocked_for_ns;   /* as reported */
    uint64_t blocked_local_ms; /* local clock when reported */
    char *blocked_callback;
    char *blocked_task;
    Stack blocked_stack;
    Profile *blocked_profile; /* the blocked callback's profile so far, NULL none (owned) */
    /* what `update` ids refer to is resolved by the applier; this is what
     * the screens need of a task's detail (task_detail response) */
    uint64_t detail_id; /* task the detail below is about; 0 none */
    bool detail_ready;
    char *detail_wait;
    char *detail_error;
    Stack detail_create, detail_suspend;
    uint64_t *detail_children;
    uint32_t detail_nchildren;
    uint64_t detail_hist[MODEL_HIST_BUCKETS]; /* step durations, log2(us) */
    char *detail_status;                      /* why the detail is missing (error response) */
    /* loops of the process; the one shown is loop_id (all per-loop state above is its) */
    LoopInfo loops[MODEL_MAX_LOOPS];
    uint32_t nloops;     /* entries held, closed ones included */
    uint32_t loops_seen; /* most live loops reported at once (>= 2: the header names the loop) */
    uint32_t loop_id;    /* the loop this connection watches */
    bool loop_gone;      /* ... and it has closed */
    ConnState conn;
    uint64_t rejected; /* items refused (over a limit or invalid) */
    uint64_t missed;   /* slow/exception events never received (gaps in their seq) */
} Model;

void Model_init(Model *this);
/* Frees everything the model holds; the struct may be re-initialised. */
void Model_done(Model *this);
/* Drops all state about the target (on reconnect), keeps nothing. */
void Model_reset(Model *this);

/* Drops all state about the loop shown (tasks, events, statistics, detail) but keeps what
 * is about the process: identity, config and the loop table. For switching loops. */
void Model_resetLoop(Model *this);

/* Records the loops the process reports now (n rows; authoritative: any loop held and not
 * listed has closed and is marked gone; a listed one that was gone is not revived, ids are not
 * reused). Rates are derived from the counters of rows with has_stats against the previous
 * report, ts_ns apart (the process clock). Bounded: past MODEL_MAX_LOOPS the oldest closed
 * entries make room, then rows are refused (counted in rejected). */
void Model_setLoops(Model *this, const LoopRow *rows, uint32_t n, uint64_t ts_ns);
/* The entry of loop id, or NULL. */
const LoopInfo *Model_loop(const Model *this, uint32_t id);
/* True when the loop shown is a plain libuv loop under the preload shim (kind "uv"): its
 * pending rows are in-flight requests, not tasks, and the screens say so. */
bool Model_showsRequests(const Model *this);
/* Live (not closed) loops held. */
uint32_t Model_liveLoops(const Model *this);
/* 1-based position of loop id among the live loops in id order (0 when not live). */
uint32_t Model_loopPosition(const Model *this, uint32_t id);
/* The live loop after (dir > 0) or before (dir < 0) loop `from` in id order, wrapping around;
 * `from` need not be live (then the nearest in that direction). false when no live loop other
 * than `from` exists. */
bool Model_nextLoop(const Model *this, uint32_t from, int dir, uint32_t *out);
/* Where to go when the loop shown closed: the main loop (0) if live, else the oldest live
 * one. false when no loop is live. */
bool Model_fallbackLoop(const Model *this, uint32_t *out);
/* True when loop l is stuck in one callback: its current one has run at least the slow
 * threshold in force. */
bool LoopInfo_blocked(const LoopInfo *l, const Model *m);
/* "thread 12345 'worker', uv loop 0x7f..": what identifies loop l, for a person. */
void LoopInfo_describe(const LoopInfo *l, char *buf, size_t len);

/* Sets an owned string field: copies at most MODEL_MAX_STR bytes of s
 * (len SIZE_MAX means strlen; a NUL ends it), replaces invalid UTF-8 bytes
 * with U+FFFD, and frees the old value. s NULL stores "". The text is kept as
 * the process sent it otherwise (line breaks, controls): it is untrusted, and
 * every output sanitises it (Sanitise.h). */
void Model_setString(char **field, const char *s, size_t len);

/* Inserts or replaces the task row->id. Validates: id 0, an unknown state,
 * or a full model are refused (returns -1 and counts in rejected). A task
 * whose state is finished starts lingering. now_ms is the local clock. */
int Model_upsertTask(Model *this, const TaskRow *row, uint64_t now_ms);
/* Marks task id as gone: it lingers MODEL_LINGER_MS then is purged, with its
 * final state: final_state when that is a finished state (done, cancelled,
 * failed: the process said how it ended), else the last one seen when finished,
 * else done (one last seen pending ended normally), waiting on nothing. Pass -1
 * when the process did not say. Unknown ids are ignored. */
void Model_removeTask(Model *this, uint64_t id, uint64_t now_ms, int final_state);
/* Frees every task at once (a full snapshot replaces them). */
void Model_dropTasks(Model *this);
/* Frees tasks whose linger time is over. Returns how many. */
uint32_t Model_purge(Model *this, uint64_t now_ms);
/* The task with this id or NULL. O(1). */
Task *Model_findTask(const Model *this, uint64_t id);

/* Appends a slow event; takes ownership of ev's strings and stacks (the
 * caller's struct is zeroed). Updates the per-site aggregate. */
void Model_addSlow(Model *this, SlowEvent *ev);
/* The aggregate of call site `name`, created if new; NULL when
 * MODEL_MAX_SITES are already held. Linear in the number of sites. */
SlowSite *Model_site(Model *this, const char *name);
/* The i-th most recent slow event (0 = newest) or NULL. */
const SlowEvent *Model_slowAt(const Model *this, uint64_t i);
/* Number of slow events held (at most MODEL_MAX_SLOW). */
uint64_t Model_slowCount(const Model *this);
/* p-th percentile (0..100) of a site's slow durations seen since attach, by
 * at_wire_hist_quantile: interpolated within its bucket, within the site's min..max;
 * 0 when none was seen. */
uint64_t SlowSite_percentile(const SlowSite *s, double p);

void Model_addException(Model *this, ExcEvent *ev);
const ExcEvent *Model_excAt(const Model *this, uint64_t i);
uint64_t Model_excCount(const Model *this);

/* Records loop statistics (values are clamped to sane ranges) and appends
 * a sample to the sparkline history. */
void Model_setLoop(Model *this, const LoopStats *stats);
/* Sets dropped counter `name` to value (creates it; bounded). */
void Model_setDropped(Model *this, const char *name, size_t len, uint64_t value);
/* Sum of all dropped counters. */
uint64_t Model_droppedTotal(const Model *this);
/* Forgets the task detail and, if id != 0, waits for the one of task id. */
void Model_clearDetail(Model *this, uint64_t id);
/* Sets the blocked state; callback/task may be NULL. Takes the stack. */
void Model_setBlocked(Model *this, bool blocked, uint64_t for_ns, const char *callback,
                      const char *task, Stack *stack, uint64_t now_ms);

/* Sets the blocked callback's profile (takes p; NULL: none); cleared with the blocked state. */
void Model_setBlockedProfile(Model *this, Profile *p);

/* Stack helpers: frees frames; copies a frame in with validation. */
void Stack_free(Stack *s);
/* Appends a frame (strings copied, bounded); refuses past MODEL_MAX_FRAMES. */
int Stack_push(Stack *s, const char *func, size_t func_len, const char *file, size_t file_len,
               uint32_t line, uint64_t addr);
/* A build-id as the process sent it (untrusted), copied when it is 2..80 lowercase hex
 * digits, else NULL. The result is malloc'ed (free it). */
char *BuildId_dup(const char *hex);
/* Sets the last frame's build-id (BuildId_dup's rules; NULL clears it). No frame: nothing. */
void Stack_setBuildId(Stack *s, const char *hex);
void SlowEvent_free(SlowEvent *ev);
void ExcEvent_free(ExcEvent *ev);

/* log2 bucket of a duration in ns (0..MODEL_HIST_BUCKETS-1). */
unsigned Hist_bucket(uint64_t ns);
/* Upper bound in ns of bucket b. */
uint64_t Hist_bucketMax(unsigned b);

#endif
