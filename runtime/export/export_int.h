/* export_int.h: what the exporter's files share — the server, its clients, the aggregator that
 * mirrors every loop's state on the exporter thread, provider attachments and stack sampling. */
#ifndef ASYNCTOP_EXPORT_INT_H
#define ASYNCTOP_EXPORT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "at_wire.h"
#include "at_wire_frame.h"
#include "export.h"
#include "export_path.h"
#include "loopmon.h"

/* The exporter's clock: CLOCK_MONOTONIC ns (libuv's), for its timeouts and intervals. */
static inline uint64_t at__export_now_ns(void)
{
    return uv_hrtime();
}

/* ---- growable arrays and open-addressed indexes (export_grow.c) --------------------------- */

/* Grows *p (an array of `size`-byte elements with capacity *cap) to hold n elements: the
 * capacity doubles from 16. 0 or -ENOMEM (the array is left as it was). */
int at__export_grow(void **p, size_t *cap, size_t n, size_t size);
/* A 64-bit mix (murmur3's finaliser), and FNV-1a of a string (NULL hashes as ""). */
static inline uint64_t at__export_hash64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}
uint64_t at__export_hash_str(const char *s);
/* An index of n entries numbered 1..n (0 = empty slot), open addressing with linear probing
 * over a power-of-two table: rebuilds *idx at twice its capacity (1024 at first) from the
 * entries' keys (key(ctx, i) for entry i + 1). 0 or -ENOMEM (the index is left as it was). */
int at__export_idx_rehash(uint32_t **idx, size_t *cap, size_t n, uint64_t (*key)(void *, size_t),
                          void *ctx);
/* Puts entry number `id` (>= 1) with hash `h` in the first free slot of its probe sequence;
 * the caller has made room (at most half full). */
void at__export_idx_put(uint32_t *idx, size_t cap, uint64_t h, uint32_t id);

/* ---- provider attachments ---------------------------------------------------------------- */

typedef struct at_export_task_ev {
    uint8_t kind; /* at_export_task_event_kind_t */
    at_export_task_row_t row;
} at_export_task_ev_t;

/* Suspension stacks taken on a loop thread (at__export_stack_add): which stack each task waits
 * at, by hash, and the pcs of the hashes this exporter has not been sent yet. */
typedef struct at_export_stk_ent {
    uint64_t task_id, wait_since_ns, hash;
} at_export_stk_ent_t;

typedef struct at_export_stk_new {
    uint64_t hash;
    uint32_t depth;
    void *pc[AT_EXPORT_MAX_FRAMES];
} at_export_stk_new_t;

/* A request that must run on a loop thread (task detail, cancel, resync). Owned by the
 * exporter; handed to the loop thread through the attachment's mailbox and back through the
 * exporter's done list. */
typedef struct at_export_loopreq {
    struct at_export_loopreq *next;  /* mailbox / done list (handed between threads) */
    struct at_export_loopreq *pnext; /* the exporter's pending list (exporter thread only) */
    int op;             /* AT_WIRE_OP_TASK_DETAIL, AT_WIRE_OP_CANCEL, or LOOPREQ_RESYNC */
    uint64_t client_id; /* 0 for the exporter's own (resync) */
    uint64_t req_id;    /* the client's request id */
    uint64_t task_id;
    uint64_t deadline_ns; /* answer "loop busy" after this */
    bool abandoned;       /* answered "loop busy": discard what comes back */
    /* Who owns the running of it: AT_EXPORT_REQ_QUEUED until the loop thread claims it
     * (TAKEN) or the exporter withdraws it (WITHDRAWN, then it is never run). */
    _Atomic int claim;
    struct at_export_attach *att;
    int result;          /* 0 or negative errno, set on the loop thread */
    uint64_t resync_pos; /* resync: the ring position at the time of the resync */
    at_export_task_detail_t *detail;
    uint64_t att_id;            /* the attachment's id (it may be gone when the answer comes) */
    at_export_task_row_t *rows; /* resync */
    size_t nrows, caprows;
    bool rows_truncated;
    bool resync_first;           /* resync: the first of this exporter instance */
    at__handle_counts_t handles; /* inventory: uv_walk by type (loopmon's own excluded) */
    bool has_exec;               /* inventory: the provider reported its executor */
    at_export_exec_stats_t exec;
    uint64_t epoch; /* inventory: the exporter instance (agg_t.epoch) asking for stacks */
    at_export_stk_ent_t *stk_ent; /* inventory: tasks and the hash of their stack */
    size_t nstk_ent, capstk_ent;
    at_export_stk_new_t *stk_new; /* inventory: stacks not sent to this exporter before */
    size_t nstk_new, capstk_new;
} at_export_loopreq_t;

enum { AT_EXPORT_REQ_QUEUED = 0, AT_EXPORT_REQ_TAKEN = 1, AT_EXPORT_REQ_WITHDRAWN = 2 };

/* Frees a request and everything it owns. Any thread. */
void at__export_loopreq_free(at_export_loopreq_t *r);

#define AT_EXPORT_LOOPREQ_RESYNC    100
#define AT_EXPORT_LOOPREQ_INVENTORY 101 /* handles by type and executor figures */

struct at_export_resync_sink {
    at_export_loopreq_t *req;
};

struct at_export_stack_sink {
    at_export_loopreq_t *req;
    struct at_export_attach *att;
};

struct at_export_attach {
    struct at_export_attach *next; /* registry list (under the registry lock) */
    uv_loop_t *loop;
    const at_export_provider_t *p;
    uv_async_t *async; /* on `loop`: runs the mailbox on the loop thread */
    uint64_t id;
    /* SPSC ring: the loop thread produces, the exporter consumes. */
    _Atomic uint64_t head, tail;
    _Atomic uint64_t produced, dropped;
    _Atomic int consumer; /* 1 while an exporter runs: posts are only worth it then */
    at_export_task_ev_t ring[AT_EXPORT_TASK_RING];
    /* exporter -> loop mailbox; the loop thread takes the lock only in the async callback */
    pthread_mutex_t mbox_lock;
    at_export_loopreq_t *mbox;
    bool detached;
    /* exporter thread only */
    uint64_t skip_until;   /* ring positions below this are superseded by a resync */
    uint64_t dropped_seen; /* drops already covered by a resync */
    uint64_t resync_at_ns; /* last resync sent (at most one a second) */
    bool resync_inflight;
    bool synced; /* a resync since this exporter started */
    bool inventory_inflight;
    uint64_t inventory_at_ns; /* last inventory request sent */
    /* loop thread only: hashes of the stacks sent to exporter instance stk_epoch (an open
     * addressed set, 0 = empty slot) */
    uint64_t *stk_sent;
    size_t stk_sent_cap, stk_sent_n;
    uint64_t stk_epoch;
};

/* Locks the attachment registry; the exporter walks it with at__export_attach_first/next.
 * Any thread; never held across a wait. */
void at__export_attach_lock(void);
void at__export_attach_unlock(void);
at_export_attach_t *at__export_attach_first(void);
/* Forgets what a previous exporter instance knew of every attachment (its first resync, a
 * resync or inventory request it had in flight), so that the next one starts with a resync
 * of its own. Call before the new exporter thread starts (nothing else then touches these
 * exporter-thread fields). Takes the registry lock. */
void at__export_attach_reset(void);
/* Sets the consumer flag of every attachment (an exporter started or stopped). */
void at__export_attach_set_consumer(int on);
/* Hands `r` to its attachment's loop thread. Exporter thread. Returns 0, or -ESHUTDOWN when
 * the attachment is detaching (then `r` is not taken). Caller holds the registry lock. */
int at__export_loopreq_send(at_export_loopreq_t *r);
/* Withdraws a request the exporter is about to refuse ("loop busy"), so that it is never run.
 * 1: it was still in the mailbox and is taken out (the caller owns it again); 0: withdrawn,
 * but the loop thread holds it and gives it back unrun (result -ECANCELED); -EINPROGRESS: the
 * loop thread is running it or ran it (its answer comes; refuse nothing). Exporter thread;
 * takes the registry lock and the mailbox lock (in that order). */
int at__export_loopreq_withdraw(at_export_loopreq_t *r);
/* Hands an answered request back to the exporter (or frees it when none runs). The loop
 * thread that ran it, or the detaching one; takes the exporter lock briefly. */
void at__export_loopreq_done(at_export_loopreq_t *r);
/* Takes one task event off `a`'s ring: 1 and *out, 0 when empty; *pos gets its position.
 * Exporter thread only (single consumer). */
int at__export_task_take(at_export_attach_t *a, at_export_task_ev_t *out, uint64_t *pos);

/* ---- stack sampling by signal -------------------------------------------------------------- */

/* The real-time signal the exporter sends to a loop thread to sample its stack
 * (SIGRTMIN + 7; docs/exporter.md). */
int at__export_sample_signal(void);
/* Installs the handler (SA_RESTART | SA_SIGINFO) unless the program already handles that
 * signal. 0, or -EBUSY (someone else's handler: sampling is off, said in the log). */
int at__export_sample_install(void);
/* Asks thread `tid` (whose own stack is [lo, hi)) for its stack. A running thread gets the
 * signal; a thread blocked in a system call is never signalled (its sleep or poll would end
 * early with EINTR): its stack is read at once from its user sp and pc
 * (/proc/self/task/TID/syscall) and the answer is ready for the next poll; one that wakes
 * between the reads is read again. 0 (the answer comes later: at__export_sample_poll), -EBUSY
 * when a sample is already in flight or the thread kept waking (ask again later), -ENOENT when a
 * blocked thread's sp is on no known stack, -EAGAIN for a stopped thread, -ENOTSUP for a
 * running one when the handler is not installed, or a negative errno. Exporter thread. */
int at__export_sample_request(pid_t tid, const void *lo, const void *hi);
/* 1 and the stack when the requested sample is in, 0 while waiting, -ETIMEDOUT (and the
 * request is cancelled) when it has waited longer than timeout_ns. Exporter thread. */
int at__export_sample_poll(uint64_t now_ns, uint64_t timeout_ns, at_export_stack_t *out);
/* True while a request is outstanding. */
bool at__export_sample_busy(void);
/* Thread tid's state letter from /proc/self/task/TID/stat ('R' running or runnable, 'S'/'D'
 * blocked, ...), 0 if unknown. Exporter thread. */
char at__export_sample_thread_state(pid_t tid);
/* In a fork child: forgets a request the parent's exporter had in flight (the thread that made
 * it is not in the child, whose own exporter must find the slot free). */
void at__export_sample_atfork_child(void);

/* ---- the aggregator ------------------------------------------------------------------------ */

/* ---- profiling a stall (export_profile.c) ------------------------------------------------- */

/* The profile of the callback a loop runs past the threshold: samples counted per stack
 * (frames compared by function, not by instruction). Fixed size, in the loop's mirror. */
typedef struct at_export_profile {
    at__site_t *site;  /* the callback profiled (running record), NULL none */
    uint64_t since;    /* its start (running record's since_ns) */
    bool active;       /* still running: sampled every interval */
    bool attached;     /* handed to its slow event */
    bool seen_running; /* the thread's state was 'R' when last looked at (request_next) */
    uint32_t samples, other, n;
    struct {
        uint64_t key;   /* hash of the frames' functions */
        uint32_t stack; /* interned stack id of the first sample with that key */
        uint32_t count;
    } e[AT_EXPORT_PROFILE_STACKS];
    at_wire_profile_stack_t sorted[AT_EXPORT_PROFILE_STACKS]; /* at__profile_running's output */
} at_export_profile_t;

typedef struct agg_event {
    uint64_t seq;
    bool is_slow;
    at__site_t *site;    /* slow: the callback's site */
    at_wire_slow_t slow; /* strings point into the fields below when sent */
    at_wire_exc_t exc;
    at_wire_profile_stack_t *prof; /* slow: slow.profile's stacks (malloc'd), NULL none */
    char name[AT__EV_NAME_MAX];
    char text[AT__EV_TEXT_MAX];
    char domain[AT__EV_DOMAIN_MAX]; /* exception: the error's domain, "" none */
} agg_event_t;

typedef struct agg_site {
    at__site_t *s;
    uint32_t wire_id;
    uint8_t kind;
    uint64_t count; /* last count read */
    uint64_t gen;   /* generation it last changed */
    at_wire_site_stats_t st;
    uint64_t hist[AT_WIRE_HIST_BUCKETS];
    uint64_t slow;
} agg_site_t;

typedef struct agg_task {
    at_export_task_row_t row;
    uint64_t gen_added, gen_changed;
    uint32_t entry_site, create_site;
    uint32_t stack;       /* interned suspension stack of the wait that began at stack_since */
    uint64_t stack_since; /* the row's wait_since_ns when the stack was taken */
    bool used;
} agg_task_t;

typedef struct agg_gone {
    uint64_t id, gen;
    uint8_t state; /* its last state (final, when it ended before it was released) */
} agg_gone_t;

/* The mirror of one loop (one loopmon monitor). */
typedef struct agg_loop {
    struct agg_loop *next;
    at__mon_t *mon; /* referenced */
    uint64_t id;    /* the monitor's id: the wire's loop number */
    bool gone;      /* unregistered: kept until no client uses it */
    /* the task provider's wait_desc (a pure function), NULL: rows carry no wait text */
    void (*wait_desc)(const at_export_task_row_t *row, char *buf, size_t size);
    /* call sites */
    agg_site_t *sites;
    size_t nsites, capsites;
    uint32_t *site_idx; /* open addressing on at__site_t*, index+1 */
    size_t site_idx_cap;
    /* events */
    agg_event_t evlog[AT_EXPORT_EVLOG];
    uint64_t ev_next;                  /* next seq to assign (seq starts at 1) */
    uint64_t dropped[AT__EV_KIND_MAX]; /* loopmon's dropped counters, last read */
    /* tasks (from the attachments on this loop) */
    agg_task_t *tasks; /* open addressing on id */
    size_t task_cap, ntasks;
    agg_gone_t *gone_log;
    size_t ngone, capgone;
    uint64_t gone_horizon; /* deltas older than this generation need a snapshot */
    uint64_t by_state[AT_WIRE_TASK_NSTATES];
    uint64_t task_dropped; /* task events dropped by this loop's attachments */
    uint64_t refreshed_ns; /* when the sites were last re-read */
    /* blocked-loop sampling of the callback running now */
    at__site_t *sample_site;
    uint64_t sample_since;
    uint32_t sample_stack; /* wire stack id, 0 none */
    bool sample_tried;
    at_export_profile_t prof; /* the running callback's profile (export_profile.c) */
    /* the latest inventory from the loop thread (export_inventory.c) */
    uint32_t nhandles;
    at_wire_count_t handles[UV_HANDLE_TYPE_MAX]; /* names are libuv's static strings */
    bool has_exec;
    at_export_exec_stats_t exec;
    char running_task[AT__EV_TASK_MAX]; /* the running task's name (at__agg_running) */
    char thread[16];                    /* the loop thread's name (/proc comm), "" unknown */
    uint64_t thread_read_ns;            /* when `thread` was last read */
} agg_loop_t;

/* The arrays an update points into, kept from one update to the next (an update is encoded
 * before the next one is built) and grown only when one needs more: building an update
 * allocates nothing once they have reached the process's size. */
typedef struct agg_update_bufs {
    at_wire_task_t *tasks; /* new tasks from the front, changed ones after them */
    size_t cap_tasks;
    char (*descs)[AT_EXPORT_WAIT_DESC_MAX]; /* wait_desc texts, by the index in tasks */
    size_t cap_descs;
    uint64_t *gone; /* ids of the tasks gone, then their states */
    size_t cap_gone;
    at_wire_site_stats_t *site_stats;
    size_t cap_site_stats;
    at_wire_slow_t *slow; /* AT_EXPORT_EVLOG each, once */
    at_wire_exc_t *exc;
    at_wire_stack_t *stacks;
    size_t cap_stacks;
    at_wire_site_t *sites;
    size_t cap_sites;
    /* what the update's fixed parts point to */
    at_wire_loop_info_t loops[AT_EXPORT_LOOPS_LISTED];
    char run_name[AT__SITE_NAME_MAX + 64];
    at_wire_count_t dropped[5];
    uint64_t lag[AT_WIRE_HIST_BUCKETS];
} agg_update_bufs_t;

/* The interned tables, shared by every loop. */
typedef struct agg_intern_site {
    uintptr_t addr;
    char *name; /* given callback name or NULL */
    at_wire_site_t ws;
} agg_intern_site_t;

typedef struct agg_intern_stack {
    uint64_t hash;
    at_wire_stack_t wst;
} agg_intern_stack_t;

typedef struct agg {
    uint64_t gen; /* bumped by every change */
    agg_loop_t *loops;
    agg_intern_site_t *isites; /* index = id - 1 */
    size_t nisites, capisites;
    uint32_t *isite_idx;
    size_t isite_idx_cap;
    agg_intern_stack_t *istacks;
    size_t nistacks, capistacks;
    uint32_t *istack_idx;
    size_t istack_idx_cap;
    uint64_t t0_ns;         /* CLOCK_MONOTONIC at process start: process time origin */
    uint64_t start_wall_ns; /* wall clock at process start */
    uint64_t epoch;         /* this exporter instance, unique in the process */
    uint64_t main_id;       /* monitor id of the main loop (wire id 0): the one on the main
                               thread, else the oldest; 0 until one was seen */
    bool main_fixed;        /* a client has seen the loop ids: main_id stays */
    uint64_t *sh_key;       /* suspension stack hash (loop thread's) -> interned stack id */
    uint32_t *sh_id;
    size_t sh_cap, sh_n;
    agg_update_bufs_t ub; /* the arrays of the update being built (export_update.c) */
} agg_t;

/* ---- the server ----------------------------------------------------------------------------- */

/* Queued output: page-aligned mappings of their own (at least AT_EXPORT_OUTCHUNK bytes, small
 * messages share one), so that what a client's queue holds is exactly what is counted against
 * its bound, header included, and a drained queue goes back to the system at once (munmap)
 * instead of staying in the allocator's heap. */
typedef struct outchunk {
    struct outchunk *next;
    size_t size;     /* the mapping's length (this header included) */
    size_t len, off; /* bytes written into data[], bytes of them sent */
    uint8_t data[];
} outchunk_t;

enum { CL_HANDSHAKE = 0, CL_LIVE = 1, CL_CLOSING = 2 };

typedef struct at_export_client {
    struct at_export_client *next; /* the server's list of clients */
    struct at_export_srv *srv;
    uint64_t id;
    int fd;
    uv_poll_t poll;
    int poll_events;
    bool poll_closed;
    uid_t uid;
    pid_t pid;
    int state;
    uint64_t t_accept;   /* ns */
    uint64_t t_progress; /* last time output drained (or accept) */
    uint64_t t_closing;
    at_wire_reader_t rd;
    outchunk_t *oh, *ot;
    size_t obytes; /* memory the queue holds: the sum of its chunks' mappings */
    uint32_t interval_ms;
    uint32_t what;
    uint64_t loop_id;
    bool paused;
    bool need_full;
    uint64_t first_wait_until_ns; /* first snapshot held for a pending task resync */
    uint64_t next_update_ns;
    uint64_t upd_seq;
    uint64_t seen_gen;
    uint32_t sites_sent; /* interned site ids <= this are known to the client */
    uint32_t stacks_sent;
    uint64_t ev_seen;   /* event seqs <= this were sent */
    bool ev_started;    /* an update with events went out (ev_seen is meaningful) */
    uint64_t ev_lagged; /* events evicted from the log before this client got them */
    int inflight;       /* loop requests outstanding */
    int bad_frames;
    uint64_t pending_stack_req; /* loop_stack request id waiting for the sample, 0 none */
    bool pending_stack;
} at_export_client_t;

typedef struct at_export_srv {
    at_export_config_t cfg;
    char program[64];
    char *cmdline;     /* /proc/self/cmdline, NUL-separated (argv for hello) */
    const char **argv; /* pointers into cmdline */
    uint32_t argc;
    pid_t pid;
    at_export_path_t path;
    at_export_sockid_t sock_id;
    int listen_fd;
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t wake;
    uv_poll_t listen_poll;
    bool accepting;
    uv_timer_t tick;
    uv_timer_t backoff;
    _Atomic int stopping;
    at_export_client_t *clients;
    unsigned nclients;
    uint64_t next_client_id;
    int *fd_slots; /* fds to close in a fork child: [0] listener, then clients */
    unsigned nfd_slots;
    /* requests to loop threads */
    pthread_mutex_t done_lock;
    at_export_loopreq_t *done;    /* answered by loop threads, not yet processed */
    at_export_loopreq_t *pending; /* sent, not yet answered (exporter thread) */
    agg_t agg;
    at_wire_buf_t wbuf;
    /* loop_stack / blocked sampling queue */
    uint64_t sample_mon;      /* monitor id being sampled, 0 none */
    bool sample_for_block;    /* the sample is for the blocked state (else for requests) */
    uv_timer_t profile_timer; /* runs only while some loop's callback is over the threshold */
    uint64_t profile_ns;      /* sampling interval (ASYNCTOP_PROFILE_MS), 0 = one sample */
    uint64_t profile_last;    /* monitor id sampled last (round-robin) */
} at_export_srv_t;

/* ---- the server's rooms (all on the exporter thread) -----------------------------------------
 * export_server.c: start/stop/fork/exit, the thread, its tick and wake-up, the listener.
 * export_client.c: accepting a client, its input and its bounded output queue.
 * export_dispatch.c: one client frame to its handler (hello, subscribe, requests).
 * export_loopreq.c: requests that run on a loop thread, their answers and timeouts.
 * export_watch.c: stack sampling for the blocked-loop watchdog and loop_stack requests.
 * export_agg.c, export_intern.c, export_update.c: the aggregator (mirror, interning, updates). */

/* Resumes accepting unless stopping or accepting already (a client left; the backoff ended). */
void at__export_listen_start(at_export_srv_t *srv);

/* Takes an accepted connection: checks the peer's credentials and the client limit (telling a
 * refused peer why), then says hello. Takes `fd` whatever happens. */
void at__export_client_accept(at_export_srv_t *srv, int fd);
/* Frees the client. Closes its fd at once (peers see EOF now), the poll handle later. */
void at__export_client_close(at_export_client_t *c);
/* Writes what the socket takes of c's queue; closes c when it was closing and is drained. */
void at__export_client_flush(at_export_client_t *c);
/* Reads and handles c's requests: first the frames read before (left while its output was
 * backed up), then more from the socket, and none while its output is backed up. */
void at__export_client_read(at_export_client_t *c);
/* True when c has whole frames read but not handled, and may handle them now. */
bool at__export_client_frames_waiting(const at_export_client_t *c);
/* Queues one encoded frame buffer (copied) on a client and tries to write it. 0, or -ENOBUFS
 * when the client's queue is over its bound (the client is then being closed). */
int at__export_client_send(at_export_client_t *c, const at_wire_buf_t *b);
/* Sends b to c now, without queueing, if nothing is queued (a last word before a close). */
void at__export_client_send_last(at_export_client_t *c, const at_wire_buf_t *b);
/* Has the aggregator build c's next update (full when c->need_full), encodes it into the
 * server's scratch buffer and sends it. 0 or a negative errno. */
int at__export_client_send_update(at_export_client_t *c, uint64_t now);
/* Sends a fatal error frame and closes the client once it is flushed (or soon). */
void at__export_client_fail(at_export_client_t *c, uint32_t code, const char *reason);
/* Encodes a response (or a non-fatal error frame) into the server's scratch buffer and sends
 * it to c. */
void at__export_send_response(at_export_client_t *c, const at_wire_response_t *r);
void at__export_send_error(at_export_client_t *c, uint32_t code, const char *reason, bool fatal);
/* Sends a response with a failure status. */
void at__export_respond_error(at_export_client_t *c, uint64_t id, uint8_t op, uint32_t status,
                              const char *reason);
/* The live (not closing) client with that id, or NULL. */
at_export_client_t *at__export_client_find(at_export_srv_t *srv, uint64_t id);

/* Sends the hello, the server's first words to a client it accepted. */
void at__export_send_hello(at_export_client_t *c);
/* Handles one whole frame from a client: decodes it and runs what it asks. */
void at__export_dispatch_frame(at_export_client_t *c, const uint8_t *body, size_t len);

/* Sends a task_detail or cancel request to the loop thread of c's loop (or refuses it:
 * unsupported, rate limited, out of memory, loop closing). */
void at__export_loop_request(at_export_client_t *c, const at_wire_request_t *rq);
/* Answers the requests the loop threads have given back, in the order they were made. */
void at__export_loopreq_answer_done(at_export_srv_t *srv);
/* Answers "loop busy" to the client requests past their deadline and withdraws them. */
void at__export_loopreq_expire(at_export_srv_t *srv, uint64_t now);

/* Queues a loop_stack request (answered by at__export_loop_stacks_service). */
void at__export_loop_stack_request(at_export_client_t *c, const at_wire_request_t *rq);
/* Starts a sample for a loop_stack request when none is in flight, and answers with it. */
void at__export_loop_stacks_service(at_export_srv_t *srv, uint64_t now);

/* Aggregator (exporter thread). */
int at__agg_init(agg_t *a);
void at__agg_free(agg_t *a);
uint64_t at__agg_proc_ns(const agg_t *a, uint64_t mono_ns);
/* Follows the monitor registry: new loops are added, unregistered ones marked gone. */
void at__agg_sync_loops(at_export_srv_t *srv);
/* Drains every ring (loopmon events, task events) into the mirror. */
void at__agg_drain(at_export_srv_t *srv);
/* Re-reads call-site statistics (cheap when nothing ran). */
void at__agg_refresh_sites(at_export_srv_t *srv, agg_loop_t *l);
/* Watches each loop's running callback; profiles it once it passes the threshold. */
void at__agg_watchdog(at_export_srv_t *srv);

/* Profiling (export_profile.c), exporter thread. Sets up the profile timer on srv->loop and
 * reads ASYNCTOP_PROFILE_MS (a bad value: a warning and the default). */
void at__profile_init(at_export_srv_t *srv);
/* The watchdog, per tick: collects a sample that came in, begins the profile of every
 * callback that has run for the threshold and starts the timer (one sample at once). */
void at__profile_watch(at_export_srv_t *srv);
/* A slow event of loop l for the callback of `site` that started at start_ns (monotonic ns):
 * when it is the one profiled, the profile ends (no more samples) and goes to e->slow.profile
 * (heaviest first, e->prof allocated) and its heaviest stack to e->slow.stack. */
void at__profile_slow_event(agg_loop_t *l, const at__site_t *site, uint64_t start_ns,
                            agg_event_t *e);
/* Counts one sample (st, depth 0: a sample with no stack) in l's profile: under its stack's
 * key (the frames' functions), interned with at__agg_intern_stack when the key is new and the
 * table has room, else in `other`. Exporter thread (public for the benchmark). */
void at__profile_add(agg_t *a, agg_loop_t *l, const at_export_stack_t *st);
/* Frees what at__profile_slow_event allocated for e (before e is reused or freed). */
void at__profile_event_free(agg_event_t *e);
/* The running callback's profile so far into out (stacks point into l, valid until the next
 * call), when snap is the callback profiled; out untouched otherwise. */
void at__profile_running(agg_loop_t *l, const at__running_snap_t *snap, at_wire_profile_t *out);
/* The sampling interval in ns, ASYNCTOP_PROFILE_MS parsed (0 = off), default 5 ms. *bad is
 * set when the variable was set and invalid. Any thread. */
uint64_t at__profile_interval_from_env(bool *bad);
/* The loop a wire loop id names: 0 is the main loop (agg.main_id) while it lives, else the
 * oldest live loop; any other id the loop of that monitor id, gone or not. NULL if none.
 * Wire ids are stable: a loop keeps its id until it closes, and the main loop's 0 never
 * passes to another loop of a connection (a client stores the resolved monitor id). */
agg_loop_t *at__agg_loop(at_export_srv_t *srv, uint64_t id);
/* The wire id of a loop (the inverse of at__agg_loop): 0 for the main loop, else its
 * monitor id. */
uint32_t at__agg_wire_loop_id(at_export_srv_t *srv, const agg_loop_t *l);
/* Fills a wire loop info row for l: id, name ("main" for 0; under the preload shim, kind "uv",
 * the thread's name, "main" only for the main thread's loop), tid, thread name, kind ("at_loop",
 * "uv" or NULL, from the attached provider), the uv_loop_t address, and with `stats` its
 * cumulative counters, pending task count and how long its running callback has run. Strings point
 * into *l or are static. Exporter thread. */
void at__agg_loop_info(at_export_srv_t *srv, agg_loop_t *l, bool stats, at_wire_loop_info_t *out);
/* Fills out[] with the live loops (at most max), oldest first; returns how many. */
uint32_t at__agg_loop_infos(at_export_srv_t *srv, bool stats, at_wire_loop_info_t *out,
                            uint32_t max);
/* Builds client c's next update into *u (full when c->need_full), and notes in c what it
 * will have seen (events, interned sites and stacks). u points into srv->agg.ub and into the
 * mirror: valid until the mirror next changes. Builds, nothing else: the caller encodes and
 * sends it, then marks it sent. 0, or -ENOMEM (nothing to send). */
int at__agg_build_update(at_export_srv_t *srv, at_export_client_t *c, uint64_t now,
                         at_wire_update_t *u);
/* Frees the interned tables (sites, stacks, the stack-hash map). */
void at__agg_intern_free(agg_t *a);
/* Frees the update buffers. */
void at__agg_update_bufs_free(agg_update_bufs_t *b);
/* Interns the code location `addr` (a function for callbacks, a return address for stack
 * frames) with an optional given name; returns its wire site id (>= 1) or 0. */
uint32_t at__agg_intern_site(agg_t *a, uintptr_t addr, const char *name, bool is_return);
/* Converts loopmon's finer histogram to the wire's 4-buckets-per-octave one; returns n. */
uint32_t at__agg_hist_to_wire(const at__hist_snap_t *h, uint64_t *out);
/* The wire row of a mirrored task: its suspension stack only while it still waits in the wait
 * the stack was taken in. */
void at__agg_task_wire(agg_t *a, const agg_task_t *t, at_wire_task_t *out);
/* Interns a stack of raw return addresses, symbolising new frames; the wire stack id or 0. */
uint32_t at__agg_intern_stack(agg_t *a, void *const *pc, unsigned n);
/* Symbolised frames of a raw stack for a response (arrays owned by the caller, freed with
 * at__agg_locs_free). */
at_wire_loc_t *at__agg_locs(void *const *pc, unsigned n);
void at__agg_locs_free(at_wire_loc_t *locs, unsigned n);
/* Applies an answered resync to the loop's task mirror. */
void at__agg_apply_resync(at_export_srv_t *srv, at_export_loopreq_t *r);
/* Fills a wire task row from the mirror's row (interning its sites). */
void at__agg_task_to_wire(agg_t *a, const at_export_task_row_t *row, at_wire_task_t *out);
/* Inventory (export_inventory.c): asks each loop thread, about once a second, for its handles
 * by type and its executor figures (one async wake-up a second). Exporter thread. */
void at__agg_inventory_request(at_export_srv_t *srv, uint64_t now);
/* Stores an answered inventory request in its loop's mirror. Exporter thread. */
void at__agg_inventory_apply(at_export_srv_t *srv, at_export_loopreq_t *r);
/* True while a task provider of loop l has not answered its first resync since this exporter
 * started (a snapshot now would show no tasks). Exporter thread. */
bool at__agg_tasks_pending(at_export_srv_t *srv, const agg_loop_t *l);

/* Interns the suspension stacks an inventory request brought (new ones by their pcs, known
 * ones by hash) and sets them on l's tasks. Exporter thread. */
void at__agg_stacks_apply(agg_t *a, agg_loop_t *l, const at_export_loopreq_t *r);
/* Puts the loop's latest inventory in an update's statistics (pointers into *l). */
void at__agg_inventory_fill(const agg_loop_t *l, at_wire_loop_stats_t *st);
/* The running callback of a loop as on the wire (name points into `name`). */
void at__agg_running(at_export_srv_t *srv, agg_loop_t *l, at_wire_running_t *out, char *name,
                     size_t namesize);

#endif
